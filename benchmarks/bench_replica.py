"""Replica exchange against plain NUTS on the headline posterior, from prior starts.

For each seed: the default config (`slt/defaults/relu2_truth1.yaml`, n = 1000) with a data
seed and chain starts derived from that seed, `sampler.init: prior` (no screening); the same
starts for both samplers. Reports R-hat(L_n), bulk ESS(L_n), wall time (compile included,
first call; `--warm` repeats each run once more and reports the second), ESS/s, and for
replica the swap rates and round trips. The issue's goal: R-hat <= 1.01 and ESS >= 400 in at
least 9 of 10 seeds.

Run:  nice -n 10 python benchmarks/bench_replica.py --seeds 0 1 2 --out benchmarks/replica.json
      nice -n 10 python benchmarks/bench_replica.py --methods stage --set sampler.num_samples=auto \
          --out benchmarks/replica_auto.jsonl      (what `slt run` does: the sample stage at its defaults)
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax
import numpy as np

from slt.pipeline import config, runs
from slt.samplers import diagnostics, replica, nuts as samplers


def problem_for(seed: int):
    cfg = config.load(config.default_config_path(), [f"seed={seed}", "sampler.init=prior"])
    ctx = runs.build_context(cfg)
    return cfg, ctx


def stage_run(cfg):
    """The sampling stage of ``cfg`` timed: ``(ctx, result, beta, wall seconds, diagnostics on the
    invariants)`` (shared by bench_replica_phases.py)."""
    import jax.numpy as jnp

    from slt.pipeline.stages import sampling

    ctx = runs.build_context(cfg)
    t0 = time.perf_counter()
    res, beta, _ = sampling.sample_posterior(ctx)
    wall = time.perf_counter() - t0
    p = ctx.problem
    xf = sampling.fixed_inputs(ctx, cfg.sampler.num_predict_inputs)
    outputs = np.asarray(jax.vmap(jax.vmap(lambda w: p.predict(w, xf)))(jnp.asarray(res.positions)))
    return ctx, res, beta, wall, diagnostics.summarize(res.loss, outputs, res.positions, res.diverging)


def emit(row: dict, out: str | None) -> None:
    """Print a result row as a JSON line, and append it to ``out`` (shared by the replica benches)."""
    print(json.dumps(row), flush=True)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


def measure_stage(seed: int, args) -> dict:
    """What ``slt run`` does at its defaults (num_temperatures auto) with ``args.set`` overrides
    (e.g. sampler.num_samples=auto): the sample stage's draws, R-hat / ESS of L_n and of the
    invariants (L_n and the outputs at fixed inputs), the ladder and the round trips."""
    cfg = config.load(config.default_config_path(), [f"seed={seed}", "sampler.init=prior", *args.set])
    ctx, res, _, wall, diag = stage_run(cfg)
    p = ctx.problem
    rep = res.replica
    return {"method": "slt run (stage)", "seed": seed, "set": list(args.set), "wall_s": wall,
            "rhat_L_n": diag.rhat_loss, "ess_L_n": diag.ess_bulk_loss, "ess_per_s": diag.ess_bulk_loss / wall,
            "rhat_max_invariant": diag.rhat_max_invariant, "ess_bulk_min_invariant": diag.ess_bulk_min_invariant,
            "num_temperatures": int(rep.betas.shape[1]), "num_samples": int(res.loss.shape[1]),
            "num_steps": int(rep.num_steps), "beta_min": float(cfg.sampler.beta_min),
            "global_barrier": float((1 - rep.swap_accept).sum(1).mean()), "pilot_barrier": rep.pilot_barrier,
            "round_trips": rep.round_trips.tolist(), "restarts": rep.restarts.tolist(),
            "swap_accept_mean": rep.swap_accept.mean(0).round(3).tolist(), "converged_auto": rep.converged,
            "divergences": int(res.diverging.sum()), "warnings": list(ctx.warnings),
            "ok": bool(diag.rhat_max_invariant <= 1.01 and diag.ess_bulk_min_invariant >= 400)}


def measure(method: str, seed: int, args) -> dict:
    if method == "stage":
        return measure_stage(seed, args)
    cfg, ctx = problem_for(seed)
    p = ctx.problem
    s = cfg.sampler
    init = samplers.prior_draws(ctx.key("init"), args.chains, p.d, p.prior_std)
    key = ctx.key("sample")
    reps = 2 if args.warm else 1
    for _ in range(reps):
        t0 = time.perf_counter()
        if method == "nuts":
            res = samplers.sample(key, p, init, 1.0, method="nuts", num_warmup=s.num_warmup,
                                  num_samples=s.num_samples, max_tree_depth=s.max_tree_depth,
                                  target_accept=s.target_accept, progress_bar=False)
            loss, extra = res.loss, {"mean_num_steps": float(res.num_steps.mean())}
        else:
            res = replica.sample_problem(key, p, init, num_temperatures=args.num_temperatures,
                                         beta_min=args.beta_min, num_warmup=s.num_warmup,
                                         num_samples=s.num_samples, num_steps=args.num_steps,
                                         swap_interval=args.swap_interval, target_accept=s.target_accept)
            loss = res.loss
            extra = {"round_trips": res.round_trips.tolist(),
                     "swap_accept_mean": res.swap_accept.mean(0).round(3).tolist(),
                     "betas_chain0": res.betas[0].round(5).tolist(),
                     "nan_chains": int((~res.valid).sum()),
                     "accept_beta1": float(res.accept_prob.mean()),
                     "divergences": int(res.diverging.sum()), "target_accept": float(s.target_accept)}
        jax.block_until_ready(loss)
        wall = time.perf_counter() - t0
    rhat = float(diagnostics.rhat(loss[..., None])[0])
    ess = float(diagnostics.ess_bulk(loss[..., None])[0])
    return {"method": method, "seed": seed, "wall_s": wall, "rhat_L_n": rhat, "ess_L_n": ess,
            "ess_per_s": ess / wall, "chain_mean_L_n": loss.mean(1).round(5).tolist(),
            "ok": bool(rhat <= 1.01 and ess >= 400), **extra}


def gradients_per_transition(row: dict) -> float:
    """Gradient evaluations per chain per kept draw: NUTS's mean leapfrog steps; replica's
    K x num_steps plus K re-evaluations after each swap event (swap_interval 1)."""
    if row["method"] == "nuts":
        return row["mean_num_steps"]
    return row["num_temperatures"] * (row["num_steps"] + 1)   # stage rows: K of the sized ladder


def label(row: dict) -> str:
    if row["method"] == "nuts":
        return "nuts"
    if row["method"] == "slt run (stage)":
        return "slt run defaults " + " ".join(row.get("set", []))
    return f"replica K={row['num_temperatures']}, {row['num_steps']} steps, beta_min {row['beta_min']:g}"


def table(path: str) -> str:
    """A markdown table of one JSON-lines results file."""
    rows = [json.loads(line) for line in open(path)]
    out = ["| method | seed | R-hat(L_n) | ESS(L_n) | ok | wall s | ESS/s | grads/draw | ESS per 1e4 grads | "
           "round trips | min swap rate | load |", "|" + " --- |" * 12]
    for r in rows:
        g = gradients_per_transition(r)
        total = g * r["chains"] * (1000 + r.get("num_samples", 1000))   # warmup 1000 + the draws
        out.append(f"| {label(r)} | {r['seed']} | {r['rhat_L_n']:.4f} | {r['ess_L_n']:.0f} | "
                   f"{'yes' if r['ok'] else '**no**'} | {r['wall_s']:.1f} | {r['ess_per_s']:.1f} | {g:.0f} | "
                   f"{1e4 * r['ess_L_n'] / total:.1f} | {r.get('round_trips', '')} | "
                   f"{format(min(r['swap_accept_mean']), '.2f') if 'swap_accept_mean' in r else ''} | {r['load']:.1f} |")
    for m in sorted({label(r) for r in rows}):
        sel = [r for r in rows if label(r) == m]
        out.append(f"\n{m}: {sum(r['ok'] for r in sel)}/{len(sel)} seeds meet R-hat <= 1.01 and ESS >= 400; "
                   f"median ESS {np.median([r['ess_L_n'] for r in sel]):.0f}, median ESS/s "
                   f"{np.median([r['ess_per_s'] for r in sel]):.1f}, median wall {np.median([r['wall_s'] for r in sel]):.1f} s")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--methods", nargs="+", default=["nuts", "replica"])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--num-temperatures", type=int, default=8)
    ap.add_argument("--beta-min", type=float, default=1e-3)
    ap.add_argument("--num-steps", type=int, default=16)
    ap.add_argument("--swap-interval", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], help="method stage: config overrides (key=value)")
    ap.add_argument("--warm", action="store_true", help="time a second (compiled) run")
    ap.add_argument("--out", default=None, help="append one JSON line per run here")
    ap.add_argument("--table", default=None, help="print the markdown table of this results file and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    for seed in args.seeds:
        for method in args.methods:
            row = measure(method, seed, args)
            row.update(load=os.getloadavg()[0], chains=args.chains,
                       **({"num_temperatures": args.num_temperatures, "beta_min": args.beta_min,
                           "num_steps": args.num_steps} if method == "replica" else {}))
            if method == "stage":
                row["chains"] = len(row["round_trips"])
            emit(row, args.out)


if __name__ == "__main__":
    sys.exit(main())
