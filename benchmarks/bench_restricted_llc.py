"""Every layer's restricted LLC of a [10, 20, 20, 10] deep linear network (identity, no bias)
in ONE compiled program (slt.estimators.restricted.per_layer_llc) against looping the single restricted
estimate (slt.estimators.restricted.restricted_llc; its program is compiled once and reused for every
layer), side by side, with the exact Gaussian answer of every layer (slt.estimators.exact.restricted_llc_gaussian).

    python benchmarks/bench_restricted_llc.py [--num-draws 400] [--num-chains 4] [--out benchmarks/restricted_llc.json]

Timings: wall seconds in this process, the first call (compilation included) and later calls
(same shapes, compiled programs reused), batch and loop alternating; the estimators block on
their results (numpy conversion). Also the process CPU seconds of each call (all threads),
less sensitive than wall time to other jobs on a shared machine. The load
average is recorded before and after: the machine is shared.
"""
import argparse
import json
import os
import time

import jax
import numpy as np

from slt import data, models
from slt.estimators import exact, restricted
from slt.posterior import Problem


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--num-draws", type=int, default=400)
    ap.add_argument("--num-chains", type=int, default=4)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--sampler", default="hmc")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/restricted_llc.json")
    a = ap.parse_args()
    widths = [10, 20, 20, 10]
    tspec, tparams, w_star = models.deep_linear_truth(jax.random.key(0), widths, rank=3)
    ds = data.synthesize(jax.random.key(1), tspec, tparams, a.n, 1.0, dist="normal")
    p = Problem.make(models.make_mlp(widths, "identity", False), ds)
    nbeta = a.n / np.log(a.n)
    kw = dict(nbeta=nbeta, gamma=a.gamma, sampler=a.sampler, num_chains=a.num_chains, num_draws=a.num_draws)
    groups = restricted.layer_groups(p.model)
    key = jax.random.key(2)
    load = [os.getloadavg()[0]]
    times = {"batch": [], "loop": []}
    cpu = {"batch": [], "loop": []}
    out = loop = None
    for rep in range(a.repeats):          # alternate, so both see the same load on average
        t0, c0 = time.perf_counter(), time.process_time()
        out = restricted.per_layer_llc(key, p, w_star, **kw)
        times["batch"].append(time.perf_counter() - t0)
        cpu["batch"].append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        loop = [restricted.restricted_llc(jax.random.fold_in(key, j), p, w_star, g, **kw) for j, g in enumerate(groups)]
        times["loop"].append(time.perf_counter() - t0)
        cpu["loop"].append(time.process_time() - c0)
        load.append(os.getloadavg()[0])
    times = {"batch_first_s": times["batch"][0], "loop_first_s": times["loop"][0],
             "batch_later_s": times["batch"][1:], "loop_later_s": times["loop"][1:],
             "batch_later_median_s": float(np.median(times["batch"][1:])) if a.repeats > 1 else None,
             "loop_later_median_s": float(np.median(times["loop"][1:])) if a.repeats > 1 else None,
             "batch_cpu_s": cpu["batch"], "loop_cpu_s": cpu["loop"]}
    rows = []
    for g, rb, rl in zip(groups, out.results, loop):
        t = restricted.linear_terms(p, w_star, g)
        ex = exact.restricted_llc_gaussian(t.H, t.g, t.u_star, nbeta, a.gamma)
        rank = int(np.linalg.matrix_rank(t.H, tol=1e-8 * np.abs(t.H).max()))
        rows.append({"weights": g, "exact": ex, "rank_H_over_2": rank / 2,
                     "batch": rb.mean, "batch_se": restricted.stderr(rb), "batch_converged": rb.converged,
                     "batch_z": (rb.mean - ex) / restricted.stderr(rb),
                     "loop": rl.mean, "loop_se": restricted.stderr(rl), "loop_converged": rl.converged,
                     "loop_z": (rl.mean - ex) / restricted.stderr(rl)})
    res = {"widths": widths, "n": a.n, "nbeta": nbeta, **{k: v for k, v in kw.items() if k != "nbeta"},
           "devices": jax.local_device_count(), "cpus": os.cpu_count(), "load_avg_1min": load,
           **times, "layers": rows}
    print(json.dumps(res, indent=1))
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
