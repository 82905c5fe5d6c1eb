"""slt's self-sizing replica exchange against the hand-written numpyro peer, side by side.

One process, the peer's data and its own dispersed starting points for both (see
``bench_sampling.py``: ``../shared/bench/numpyro_baseline.py``'s model, n = 1000, 4 chains x (1000
warmup + 1000 draws)); every timed call pays its compilation (``cold()``, no persistent cache), as
the peer's fresh ``MCMC.run`` does. Figure of merit: bulk ESS of L_n per second of wall time, and
its ratio to the peer's on the same seed. Variants of slt's replica exchange (item 5 of issue 20):
the default (``num_temperatures='auto'``, 16 leapfrog steps, a swap every transition) and cheaper
trajectories or swap intervals. One JSON line per (seed, sampler) with the load average.

Run:  nice python benchmarks/bench_replica_peer.py --seeds 0 1 2 --out benchmarks/replica_peer.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

if __name__ == "__main__":
    from slt.cli import configure_jax

    configure_jax(cache=False)

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import bench_sampling as bs  # noqa: E402
from bench_replica import emit  # noqa: E402

from slt.samplers import diagnostics, replica  # noqa: E402

VARIANTS = {
    "default": dict(),
    "steps8": dict(num_steps=8),
    "steps8_swap2": dict(num_steps=8, swap_interval=2),
    "steps4": dict(num_steps=4),
}


def run_replica(problem, init, seed, variant, num_warmup, num_samples):
    kw = {"num_temperatures": "auto", "num_steps": 16, "swap_interval": 1, **VARIANTS[variant]}
    bs.cold()
    t0 = time.perf_counter()
    res = replica.sample_problem(jax.random.key(seed), problem, init, num_warmup=num_warmup,
                                 num_samples=num_samples, **kw)
    wall = time.perf_counter() - t0
    k = res.betas.shape[1]
    grads = k * (kw["num_steps"] + 1.0 / kw["swap_interval"])
    lam = float(replica.barriers(res.betas, res.swap_accept)[0].mean())
    return res.loss, wall, {"num_temperatures": k, "num_steps": kw["num_steps"], "swap_interval": kw["swap_interval"],
                            "grads_per_transition": grads, "global_barrier": lam,
                            "pilot_barrier": res.pilot_barrier, "round_trips": res.round_trips.tolist(),
                            "restarts": res.restarts.tolist(), "divergences": int(res.diverging.sum())}


def stats(loss):
    loss = np.asarray(loss, float)
    return {"rhat_L_n": float(diagnostics.rhat(loss[..., None])[0]),
            "ess_L_n": float(diagnostics.ess_bulk(loss[..., None])[0])}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["default", "steps8"])
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    x, y = bs.peer_data(1000)
    problem = bs.problem_for(x, y)
    for seed in a.seeds:
        init = bs.peer_init(x, y, 4, seed)
        flat, wall, steps, div = bs.run_peer(x, y, 4, a.warmup, a.samples, seed=seed)
        loss = np.asarray(jax.jit(jax.vmap(jax.vmap(problem.loss)))(flat))
        rows = [{"sampler": "numpyro peer", "seed": seed, "wall_s": wall, **stats(loss),
                 "grads_per_transition": steps, "divergences": div}]
        for v in a.variants:
            loss, wall, extra = run_replica(problem, init, seed, v, a.warmup, a.samples)
            rows.append({"sampler": f"slt replica {v}", "seed": seed, "wall_s": wall, **stats(loss), **extra})
        peer = rows[0]["ess_L_n"] / rows[0]["wall_s"]
        for r in rows:
            r["ess_per_s"] = r["ess_L_n"] / r["wall_s"]
            r["ratio_vs_peer"] = r["ess_per_s"] / peer
            r["load"] = os.getloadavg()[0]
            r["ok"] = bool(r["rhat_L_n"] <= 1.01 and r["ess_L_n"] >= 400)
            emit(r, a.out)


if __name__ == "__main__":
    sys.exit(main())
