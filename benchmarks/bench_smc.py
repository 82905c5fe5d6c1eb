"""Benchmark: do TI, stepping stone and adaptive tempered SMC agree on the shipped free-energy configs?

For every config the ``free_energy`` stage runs once with ``methods: [ti, stepping_stone, smc]``
(TI and stepping stone share the config's tempered HMC draws; SMC is independent: its own
runs from prior draws, :mod:`slt.samplers.smc`). Reported per config: each estimate with its standard
error, the exact F_n where a closed form exists, the wall time of the tempered sampling
(TI + SS) and of SMC (both compile included, persistent cache off), the largest pairwise gap
in combined standard errors (agreement: <= 2) and whether each standard error is <= 0.15
nats (issue 12's goal).

Usage::

    nice -n 10 python benchmarks/bench_smc.py                       # all five configs -> benchmarks/smc.{md,json}
    nice -n 10 python benchmarks/bench_smc.py --configs configs/linreg_free_energy.yaml --set free_energy.smc_particles=1024
    python benchmarks/bench_smc.py --blackjax                       # also: blackjax adaptive_tempered_smc on linreg
    python benchmarks/bench_smc.py --render                         # rewrite smc.md from smc.json (+ smc.notes.md)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SLT_NO_COMPILATION_CACHE", "1")

from slt import cli  # noqa: E402

cli.configure_jax(cache=False)

import numpy as np  # noqa: E402

CONFIGS = ["configs/linreg_free_energy.yaml", "configs/rrr_free_energy.yaml",
           "configs/relu2_truth0_free_energy.yaml", "configs/relu2_truth1_free_energy.yaml",
           "configs/relu2_truth2_free_energy.yaml"]
GOAL_SE = 0.15


def one(path: str, overrides: list[str]) -> dict:
    from slt.pipeline import config as config_mod, runs

    sets = ["free_energy.methods=[ti, stepping_stone, smc]", "output.figures=false", *overrides]
    cfg = config_mod.load(ROOT / path, sets)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_dir = runs.execute(cfg, stages=["free_energy"], out_dir=Path(tmp))
        wall = time.perf_counter() - t0
        s = json.loads((run_dir / "summary.json").read_text())
    f, t = s["free_energy"], s["timing"]
    rec = {"config": path, "n": s.get("n"), "exact": f.get("exact"), "wall_s": wall,
           "tempered_s": t.get("free_energy_sampling_s"), "smc_s": t.get("free_energy_smc_s"),
           "agree": f.get("agree"), "agreement": f.get("agreement"),
           "max_z": max((p["z"] for p in f.get("agreement") or []), default=None),
           "smc_detail": f.get("smc_detail"), "warnings": s["diagnostics"]["warnings"],
           "fe_config": s.get("config", {}).get("free_energy")}
    for k in ("ti", "stepping_stone", "smc"):
        rec[k], rec[f"{k}_stderr"] = f.get(k), f.get(f"{k}_stderr")
    rec["se_goal_met"] = all(rec[f"{k}_stderr"] is not None and rec[f"{k}_stderr"] <= GOAL_SE
                             for k in ("ti", "stepping_stone", "smc"))
    return rec


def blackjax_linreg(num_particles: int = 512, num_runs: int = 4, seed: int = 0) -> dict:
    """blackjax 1.7.1 ``adaptive_tempered_smc`` wrapped in ``inner_kernel_tuning`` (HMC mutation,
    5 transitions x 4 leapfrog steps, diagonal mass = the particles' variance after every step,
    step size 0.5 in those units: the library has no acceptance feedback) on the linreg config's
    data, against slt.samplers.smc with the same budget (512 particles x 4 runs, target ESS 0.5)."""
    import blackjax
    import jax
    import jax.numpy as jnp

    from slt.pipeline import config as config_mod, runs
    from slt.estimators import free_energy as fe
    from slt.samplers import smc

    cfg = config_mod.load(ROOT / CONFIGS[0])
    p = runs.build_context(cfg).problem
    exact = fe.linear_gaussian_free_energy(np.asarray(p.x, np.float64), np.asarray(p.y, np.float64))
    n, d = p.n, p.d

    def params(inv_mass):
        return {"step_size": jnp.full((1,), 0.5), "inverse_mass_matrix": inv_mass[None],
                "num_integration_steps": jnp.full((1,), 4, jnp.int32)}

    def update(key, state, info):         # mass matrix from the particles, as slt.samplers.smc
        return params(jnp.var(state.particles, axis=0))

    def one_run(key):
        k0, k1 = jax.random.split(key)
        algo = blackjax.inner_kernel_tuning(
            smc_algorithm=blackjax.adaptive_tempered_smc, logprior_fn=p.log_prior,
            loglikelihood_fn=lambda w: -n * p.loss(w), mcmc_step_fn=blackjax.hmc.build_kernel(),
            mcmc_init_fn=blackjax.hmc.init, resampling_fn=blackjax.smc.resampling.systematic,
            mcmc_parameter_update_fn=update, initial_parameter_value=params(jnp.ones(d)),
            num_mcmc_steps=5, target_ess=0.5)
        state = algo.init(jax.random.normal(k0, (num_particles, d)))
        state = state._replace(sampler_state=state.sampler_state._replace(tempering_param=jnp.zeros(())))

        def cond(c):
            return c[0].sampler_state.tempering_param < 1.0

        def body(c):
            s, logz, k, i = c
            k, sub = jax.random.split(k)
            s, info = algo.step(sub, s)
            return s, logz + info.log_likelihood_increment, k, i + 1

        s, logz, _, steps = jax.lax.while_loop(cond, body, (state, jnp.zeros(()), k1, jnp.zeros((), jnp.int32)))
        return -logz, steps

    fn = jax.jit(jax.vmap(one_run))
    out = {}
    for name, call in (("blackjax", lambda k: fn(jax.random.split(k, num_runs))),
                       ("slt", lambda k: smc.free_energy_problem(k, p, num_particles=num_particles,
                                                                 num_runs=num_runs))):
        times, vals = [], []
        for rep in range(2):                       # first call compiles, second is warm
            t0 = time.perf_counter()
            r = call(jax.random.key(seed + rep))
            if name == "blackjax":
                f, steps = (np.asarray(a) for a in jax.block_until_ready(r))
                est, se, nsteps = f.mean(), f.std(ddof=1) / math.sqrt(num_runs), steps.tolist()
            else:
                est, se, nsteps = r.free_energy, r.stderr, r.num_steps.tolist()
            times.append(time.perf_counter() - t0)
            vals.append({"F": float(est), "stderr": float(se), "error": float(est - exact), "steps": nsteps})
        out[name] = {"cold_s": times[0], "warm_s": times[1], "runs": vals}
    out["exact"] = exact
    return out


def _over(r: dict) -> str:
    """The methods whose standard error misses the goal (none: every se <= GOAL_SE)."""
    names = {"ti": "TI", "stepping_stone": "SS", "smc": "SMC"}
    bad = [names[k] for k in names if r[f"{k}_stderr"] is None or r[f"{k}_stderr"] > GOAL_SE]
    return ", ".join(bad) if bad else "none"


def markdown(rows: list[dict], bj: dict | None, note: str) -> str:
    def v(x, se=None):
        if x is None:
            return "—"
        return f"{x:.2f}" if se is None else f"{x:.2f} ± {se:.2f}"

    lines = ["# TI, stepping stone and SMC on the shipped free-energy configs", "",
             "Generated by `benchmarks/bench_smc.py` (free_energy stage with methods [ti, stepping_stone, smc]; "
             "times compile included, persistent cache off). TI and stepping stone share the config's tempered "
             "HMC draws (their starts: the config's `free_energy.init`); SMC is independent (its own runs "
             "from prior draws). Agreement: largest pairwise |gap| / combined se (<= 2 passes). Goal: every "
             f"se <= {GOAL_SE} nats.", "", note, "",
             "| config | n | exact | TI | stepping stone | SMC | TI+SS time (s) | SMC time (s) | SMC temperatures | max gap (se) | agree | se > 0.15 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        det = r.get("smc_detail") or {}
        temps = det.get("num_temperatures")
        lines.append(
            f"| `{Path(r['config']).stem}` | {r['n']} | {v(r['exact'])} | {v(r['ti'], r['ti_stderr'])} | "
            f"{v(r['stepping_stone'], r['stepping_stone_stderr'])} | {v(r['smc'], r['smc_stderr'])} | "
            f"{r['tempered_s']:.0f} | {r['smc_s']:.0f} | {min(temps)}-{max(temps) if temps else ''} | "
            f"{r['max_z']:.1f} | {'yes' if r['agree'] else 'NO'} | {_over(r)} |")
    if bj:
        lines += ["", f"## blackjax 1.7.1 `adaptive_tempered_smc` vs `slt.samplers.smc` (linreg, exact F_n = {bj['exact']:.3f})",
                  "", "| implementation | cold (s) | warm (s) | F_n (warm run) | error | temperatures |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name in ("blackjax", "slt"):
            b = bj[name]
            r = b["runs"][1]
            lines.append(f"| {name} | {b['cold_s']:.1f} | {b['warm_s']:.1f} | {r['F']:.3f} ± {r['stderr']:.3f} | "
                         f"{r['error']:+.3f} | {r['steps']} |")
    return "\n".join(lines) + "\n"


def _notes(out: str) -> str:
    """Hand-written findings kept below the generated tables (OUT.notes.md, if present)."""
    p = Path(out + ".notes.md")
    return "\n" + p.read_text() if p.is_file() else ""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="*", default=CONFIGS)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override for every config")
    ap.add_argument("--blackjax", action="store_true", help="also compare with blackjax's adaptive_tempered_smc")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "smc"), help="writes OUT.md and OUT.json")
    ap.add_argument("--note", default="", help="a line for the markdown (machine, load)")
    ap.add_argument("--render", action="store_true", help="rewrite OUT.md from OUT.json without running")
    args = ap.parse_args(argv)
    if args.render:
        doc = json.loads(Path(args.out + ".json").read_text())
        text = markdown(doc["rows"], doc["blackjax"], args.note or doc.get("note", ""))
        Path(args.out + ".md").write_text(text + _notes(args.out))
        print(text)
        return
    rows = []
    for c in args.configs:
        print(f"[bench_smc] {c}", file=sys.stderr, flush=True)
        r = one(c, args.overrides)
        print(json.dumps({k: r[k] for k in ("config", "exact", "ti", "ti_stderr", "stepping_stone",
                                            "stepping_stone_stderr", "smc", "smc_stderr", "tempered_s",
                                            "smc_s", "max_z", "agree")}), flush=True)
        rows.append(r)
    bj = blackjax_linreg() if args.blackjax else None
    Path(args.out + ".json").write_text(json.dumps({"rows": rows, "blackjax": bj, "overrides": args.overrides,
                                                    "note": args.note}, indent=1, default=float))
    Path(args.out + ".md").write_text(markdown(rows, bj, args.note) + _notes(args.out))
    print(markdown(rows, bj, args.note))


if __name__ == "__main__":
    main()
