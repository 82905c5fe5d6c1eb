"""The LLC along training: 16 checkpoints of a d ~ 1e3 model at n = 1e4, wall time.

Goal (issue 13): all 16 checkpoints in under 3 minutes on this 2-core machine. Two cases:

* ``tanh``: a [10, 30, 30, 1] tanh network with biases (d = 1291), data from a random truth of
  the same shape (x ~ U(-1, 1)^10, unit noise), n = 10000. Full-batch gradients cost
  ~10 ms per chain here, so the exact samplers (HMC: up to 128 gradients per draw) cannot fit
  16 checkpoints into 3 minutes; the case runs devinterp's kind of estimate: minibatch SGLD
  (batch 512, step size adapted from the curvature, 2000 draws, 4 chains).
* ``dln``: a deep linear network [10, 20, 20, 20, 10] without biases (d = 1200), truth a
  rank-3 product (a [10, 3, 10] network), x ~ N(0, I), n = 10000, prior_std 0.3; slt's
  defaults: HMC, ``num_draws: auto`` (the trend test on every checkpoint), 8 chains; the loss
  through the sufficient statistics (cost independent of n). The last checkpoint's LLC is
  compared with Aoyagi's lambda.

Both: Adam (lr 0.01) from a prior draw, 16 log-spaced checkpoints, nbeta = n / log n,
gamma = 1; timings are wall seconds in a fresh process WITHOUT the persistent compilation
cache (compilation included). ``--sequential`` also times the single-point estimator at two
checkpoints and extrapolates the loop over 16 (what the batch replaces).

Run: nice -n 10 python benchmarks/bench_llc_trajectory.py [--case tanh|dln|all] [--sequential]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

if __name__ == "__main__":  # before jax is imported: one XLA CPU device per core
    from slt.cli import configure_jax

    configure_jax(cache=False)

import jax
import numpy as np

from slt import data, models
from slt.estimators import exact
from slt.estimators import learning_coefficient as lc
from slt.estimators import llc_trajectory as lt
from slt.posterior import Problem

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "tanh": dict(widths=[10, 30, 30, 1], activation="tanh", bias=True, truth=[10, 30, 30, 1],
                 dist="uniform", prior_std=1.0, steps=2000,
                 llc=dict(sampler="sgld", batch_size=512, num_chains=4, num_draws="auto")),
    "dln": dict(widths=[10, 20, 20, 20, 10], activation="identity", bias=False, truth=[10, 3, 10],
                dist="normal", prior_std=0.3, steps=3000,
                llc=dict(sampler="hmc", num_chains=8, num_draws="auto")),
}


def problem(case: dict, n: int):
    spec = models.make_mlp(case["widths"], case["activation"], case["bias"])
    tspec = models.make_mlp(case["truth"], case["activation"], case["bias"])
    truth = models.init(jax.random.key(0), tspec)
    ds = data.synthesize(jax.random.key(1), tspec, truth, n, 1.0, dist=case["dist"])
    return Problem.make(spec, ds, noise_std=1.0, prior_std=case["prior_std"]), tspec


def run_case(name: str, n: int, num_checkpoints: int, sequential: bool) -> dict:
    case = CASES[name]
    p, tspec = problem(case, n)
    t0 = time.perf_counter()
    sched = lt.checkpoint_schedule(case["steps"], num_checkpoints)
    ck = lt.train_checkpoints(jax.random.key(2), p, case["steps"], 0.01, sched)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = lt.llc_batch_for_problem(jax.random.key(3), p, ck.w, **case["llc"])
    llc_s = time.perf_counter() - t1
    total_s = time.perf_counter() - t0
    out = {"case": name, "d": p.d, "n": p.n, "checkpoints": len(sched), "train_steps": case["steps"],
           "settings": case["llc"], "train_s": train_s, "llc_s": llc_s, "total_s": total_s,
           "num_draws": res[-1].num_draws, "steps": [int(s) for s in ck.steps],
           "L_n": [float(v) for v in ck.loss],
           "llc": [r.mean for r in res], "stderr": list(lt.Trajectory(ck, res).stderr()),
           "converged": [r.converged for r in res],
           "steps_per_draw": [r.steps_per_draw for r in res],
           "load_before": os.getloadavg()[0]}
    if case["activation"] == "identity":
        prod = None
        for layer in models.init(jax.random.key(0), tspec):
            prod = np.asarray(layer["W"]) if prod is None else np.asarray(layer["W"]) @ prod
        out["exact_lambda"] = exact.dln_lambda(case["widths"], int(np.linalg.matrix_rank(prod))).lam
    if sequential:
        times = []
        for j in (len(sched) - 1, len(sched) - 2):    # the first includes compilation
            t = time.perf_counter()
            lc.llc_for_problem(jax.random.fold_in(jax.random.key(3), j), p, ck.w[j], **case["llc"])
            times.append(time.perf_counter() - t)
        out["sequential_first_s"], out["sequential_next_s"] = times
        out["sequential_16_estimate_s"] = times[0] + (num_checkpoints - 1) * times[1]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="all", choices=["all", *CASES])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--checkpoints", type=int, default=16)
    ap.add_argument("--sequential", action="store_true",
                    help="also time the single-point estimator at 2 checkpoints (16 extrapolated)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override the case's LLC settings, e.g. max_steps=32 num_chains=4")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "llc_trajectory.json"))
    args = ap.parse_args(argv)
    for item in args.set:
        key, value = item.split("=", 1)
        for case in CASES.values():
            case["llc"] = {**case["llc"], key: int(value) if value.isdigit() else value}
    rows = []
    for name in (CASES if args.case == "all" else [args.case]):
        r = run_case(name, args.n, args.checkpoints, args.sequential)
        r["load_after"] = os.getloadavg()[0]
        rows.append(r)
        print(f"{name}: d={r['d']} n={r['n']} {r['checkpoints']} checkpoints: train {r['train_s']:.1f} s, "
              f"LLC {r['llc_s']:.1f} s ({r['num_draws']} draws), total {r['total_s']:.1f} s; "
              f"load {r['load_before']:.1f} -> {r['load_after']:.1f}", flush=True)
        for s, L, m, e, c in zip(r["steps"], r["L_n"], r["llc"], r["stderr"], r["converged"]):
            print(f"  step {s:5d}  L_n {L:9.4f}  llc {m if m is None else round(m, 3)} +- {e:.3f}"
                  f"{'' if c else '  (not converged)'}")
        print(f"  settings {r['settings']}, steps per draw {r['steps_per_draw']}")
        if "exact_lambda" in r:
            print(f"  exact lambda {r['exact_lambda']}")
        if "sequential_16_estimate_s" in r:
            print(f"  sequential: first {r['sequential_first_s']:.1f} s, next {r['sequential_next_s']:.1f} s, "
                  f"16 checkpoints ~ {r['sequential_16_estimate_s']:.0f} s")
    out = Path(args.out)   # rows of other cases already there are kept
    old = [r for r in json.loads(out.read_text()) if r["case"] not in {r["case"] for r in rows}] \
        if out.exists() else []
    out.write_text(json.dumps(old + rows, indent=1, default=float))


if __name__ == "__main__":
    main()
