"""NUTS on the headline two-node ReLU posterior: slt vs the hand-written numpyro peer.

Both run in ONE process on the SAME data: the peer's model, data and settings are those of
``../shared/bench/numpyro_baseline.py`` (copied verbatim below; n = 1000, x ~ U[-2, 2]^2,
its own one-node truth, ``MCMC(NUTS(model))`` with 4 chains x (1000 warmup + 1000 draws),
``chain_method="vectorized"``). slt samples the same posterior with :func:`slt.samplers.nuts.sample`.

Rows: the peer from its own dispersed starts; "slt default", what ``slt run`` does (replica
exchange, 8 temperatures x 16 leapfrog steps, from the peer's starting points; its
"leapfrog/iter" counts the gradients of all levels); "slt NUTS, screened starts" (every chain at
the best of 16 Adam-optimised prior draws, the screening inside the timed wall); "slt NUTS from
the same starts", slt's NUTS from exactly the peer's starting points (paired: the sampler alone,
trapping luck included). With ``--start truth`` both start every chain near the truth.

The figure of merit is ESS per second on ``L_n``: ArviZ bulk ESS of the per-draw empirical
loss (computed identically for both from the draws), divided by the wall time of the whole
sampling call *including compilation* (the persistent compilation cache is off here unless
``--cache``, so neither side reuses compiled code from an earlier process). The minimum bulk
ESS over raw parameters is printed for reference only: it is meaningless under the hidden-node
permutation symmetry (chains sit in different labellings), which is why ``L_n`` is the target.

Run:  python benchmarks/bench_sampling.py [--levers] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import sys
import time

if __name__ == "__main__":  # before jax is imported: one XLA CPU device per core
    from slt.cli import configure_jax

    configure_jax(cache="--cache" in sys.argv)

import jax
import jax.numpy as jnp
import numpy as np

from slt import models
from slt.samplers import diagnostics, nuts as samplers
from slt.estimators import optimize
from slt.data import Dataset
from slt.posterior import Problem


# ------------------------------------------------------------------ the peer (verbatim model)
def peer_data(n: int):
    """The peer's data: numpy seed 0, x ~ U[-2,2]^2, one-node truth, unit noise (float32)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(n, 2)).astype(np.float32)
    w0, b0, q0, c0 = np.array([[1.0, 0.5]]), np.array([-0.3]), np.array([1.2]), 0.1
    y = (np.maximum(x @ w0.T + b0, 0) @ q0 + c0 + rng.normal(size=n)).astype(np.float32)
    return x, y


def _peer_model():
    import numpyro
    import numpyro.distributions as dist

    def f(x, w1, b1, q, c):
        return jnp.maximum(x @ w1.T + b1, 0.0) @ q + c

    def model(x, y=None):
        w1 = numpyro.sample("w1", dist.Normal(0, 1).expand([2, 2]).to_event(2))
        b1 = numpyro.sample("b1", dist.Normal(0, 1).expand([2]).to_event(1))
        q = numpyro.sample("q", dist.Normal(0, 1).expand([2]).to_event(1))
        c = numpyro.sample("c", dist.Normal(0, 1))
        numpyro.sample("y", dist.Normal(f(x, w1, b1, q, c), 1.0), obs=y)

    return model


def run_peer(x, y, num_chains=4, num_warmup=1000, num_samples=1000, chain_method="vectorized",
             seed=0, init=None):
    """The peer script's MCMC call, timed the same way; returns flat draws (chains, draws, 9)."""
    from numpyro.infer import MCMC, NUTS

    cold()
    t0 = time.perf_counter()
    mcmc = MCMC(NUTS(_peer_model()), num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, chain_method=chain_method, progress_bar=False)
    init_params = None if init is None else {  # only for --start truth (not the peer's default)
        "w1": init[:, :4].reshape(-1, 2, 2), "b1": init[:, 4:6], "q": init[:, 6:8], "c": init[:, 8]}
    mcmc.run(jax.random.PRNGKey(seed), x, y, extra_fields=("num_steps", "diverging"),
             init_params=init_params)
    s = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    wall = time.perf_counter() - t0
    c, k = s["c"].shape
    # slt's flat order for [2, 2, 1]: W1 row-major, b1, W2 = q, b2 = c
    flat = np.concatenate([np.asarray(s["w1"]).reshape(c, k, 4), np.asarray(s["b1"]),
                           np.asarray(s["q"]), np.asarray(s["c"])[..., None]], axis=-1)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    steps = np.asarray(extra["num_steps"])
    return flat, wall, float(steps.mean()), int(np.asarray(extra["diverging"]).sum())


def peer_init(x, y, num_chains=4, seed=0):
    """The peer's starting points, flattened in slt's order: numpyro's own ``NUTS.init`` (its
    default init_to_uniform(-2, 2)) under ``vmap`` over ``split(PRNGKey(seed), num_chains)``,
    exactly as ``MCMC.run`` with ``chain_method="vectorized"`` does; so both samplers start
    every chain from the same point (checked: passing these as the peer's ``init_params``
    reproduces its draws)."""
    from numpyro.infer import NUTS

    keys = jax.random.split(jax.random.PRNGKey(seed), num_chains)
    z = jax.vmap(lambda k: NUTS(_peer_model()).init(k, 10, model_args=(x, y)).z)(keys)
    return jnp.concatenate([z["w1"].reshape(num_chains, 4), z["b1"], z["q"], z["c"][:, None]], -1)


# the peer's one-node truth embedded in [2, 2, 1] (second node off): W1, b1, q, c
TRUTH_W = jnp.array([1.0, 0.5, 0.0, 0.0, -0.3, 0.0, 1.2, 0.0, 0.1])


def problem_for(x, y) -> Problem:
    spec = models.make_mlp([2, 2, 1], "relu", True)
    return Problem.make(spec, Dataset(np.asarray(x), np.asarray(y).reshape(-1, 1)), 1.0, 1.0)


def run_slt(problem: Problem, num_chains=4, num_warmup=1000, num_samples=1000, seed=0, init=None,
            **kwargs):
    """slt's sampler on the same posterior; ``init`` (chains, d) defaults to prior draws (as
    ``slt run`` does)."""
    devices, x64 = kwargs.pop("devices", None), kwargs.pop("x64", False)
    if x64:
        jax.config.update("jax_enable_x64", True)
        problem = Problem.make(problem.spec, Dataset(np.asarray(problem.x), np.asarray(problem.y)))
    orig = samplers._num_devices_for
    if devices is not None:
        samplers._num_devices_for = lambda c: devices
    try:
        return _run_slt(problem, num_chains, num_warmup, num_samples, seed, init, **kwargs)
    finally:
        samplers._num_devices_for = orig
        if x64:
            jax.config.update("jax_enable_x64", False)


def cold():
    """Forget every compiled program, so each timed run pays its compilation (as the peer's
    fresh ``MCMC.run`` does) whatever ran before it in this process."""
    jax.clear_caches()   # also the executables behind slt's cached jitted functions


def _run_slt(problem, num_chains, num_warmup, num_samples, seed, init, screen=False, replica=False,
             **kwargs):
    key = jax.random.key(seed)
    cold()
    t0 = time.perf_counter()
    if replica:  # slt's default sampler (sampler.method: replica, init: prior) from the given starts
        from slt.samplers import replica as replica_mod

        res = replica_mod.sample_problem(key, problem, init, num_warmup=num_warmup, num_samples=num_samples)
        wall = time.perf_counter() - t0
        grads = res.betas.shape[1] * (res.num_steps + 1)     # per chain per transition, all levels
        return res.positions, wall, float(grads), int(res.diverging.sum()), res.loss
    if screen:  # slt's default (sampler.init: screen), timed: its own candidates, not ``init``
        init = optimize.screened_starts(jax.random.fold_in(key, 1), problem, num_chains).starts
    elif init is None or len(init) != num_chains:
        init = samplers.prior_draws(jax.random.fold_in(key, 1), num_chains, problem.d,
                                    problem.prior_std)
        t0 = time.perf_counter()
    res = samplers.sample(key, problem, init, 1.0, num_warmup=num_warmup,
                          num_samples=num_samples, progress_bar=False, **kwargs)
    wall = time.perf_counter() - t0
    return res.positions, wall, float(res.num_steps.mean()), int(res.diverging.sum()), res.loss


def score(name, problem, positions, wall, mean_steps, divergences, loss=None, **extra):
    """ESS/s on L_n (ArviZ bulk ESS of per-draw L_n), identically for every sampler."""
    if loss is None:
        loss = np.asarray(jax.jit(jax.vmap(jax.vmap(problem.loss)))(jnp.asarray(positions)))
    loss = np.asarray(loss, dtype=float)
    ess_loss = float(diagnostics.ess_bulk(loss[..., None])[0])
    ess_raw = float(np.min(diagnostics.ess_bulk(np.asarray(positions, float))))
    rhat_loss = float(diagnostics.rhat(loss[..., None])[0])
    return dict(name=name, wall_s=round(wall, 3), ess_loss=round(ess_loss, 1),
                ess_per_s=round(ess_loss / wall, 2), ess_raw_min=round(ess_raw, 1),
                rhat_loss=round(rhat_loss, 4), mean_leapfrog=round(mean_steps, 1),
                divergences=divergences, E_L_n=round(float(loss.mean()), 5), **extra)


# (name, slt kwargs) -- the rows; the first is what `slt run configs/relu2_truth1.yaml` does
DEFAULT = "slt default (replica, same starts)"
SCREENED = "slt NUTS, screened starts"
SAME_STARTS = "slt NUTS from the same starts"


def lever_grid(num_warmup: int, start: str = "peer", levers: bool = False):
    rows = [(DEFAULT, dict(num_warmup=num_warmup, replica=True))]
    if start == "peer":
        rows.append((SCREENED, dict(num_warmup=num_warmup, screen=True)))
    rows.append((SAME_STARTS, dict(num_warmup=num_warmup)))
    if levers:  # each lever changes one setting of the same-starts row
        rows += [
            ("slt warmup 500", dict(num_warmup=500)),
            ("slt max_tree_depth 6", dict(num_warmup=num_warmup, max_tree_depth=6)),
            ("slt max_tree_depth 10", dict(num_warmup=num_warmup, max_tree_depth=10)),
            ("slt dense mass", dict(num_warmup=num_warmup, dense_mass=True)),
            ("slt chunk 1000", dict(num_warmup=num_warmup, chunk_size=1000)),
            ("slt chunk 50", dict(num_warmup=num_warmup, chunk_size=50)),
            ("slt 8 chains x 500 draws", dict(num_warmup=num_warmup, num_chains=8, num_samples=500)),
            ("slt one device (no sharding)", dict(num_warmup=num_warmup, devices=1)),
            ("slt float64", dict(num_warmup=num_warmup, x64=True)),
            ("slt target_accept 0.65", dict(num_warmup=num_warmup, target_accept=0.65)),
        ]
    return rows


def main(n=1000, num_chains=4, num_warmup=1000, num_samples=1000, levers=False, peer=True,
         seeds=1, first_seed=0, start="peer", log=print):
    """Run the peer and slt side by side for each seed (seed 0 is the peer script exactly);
    return one row per sampler configuration with median-over-seeds numbers."""
    x, y = peer_data(n)
    problem = problem_for(x, y)
    configs = lever_grid(num_warmup, start, levers)
    per = {}
    for seed in range(first_seed, first_seed + seeds):
        # paired starts: ESS(L_n) depends on which local mode each chain falls into (R-hat
        # on L_n flags a split), so both samplers start every chain from the same point
        if start == "peer":
            init = peer_init(x, y, num_chains, seed)
        else:  # every chain near the truth (main basin): mixing speed without trapping luck
            init = TRUTH_W + 0.1 * jax.random.normal(jax.random.key(100 + seed), (num_chains, 9))
        if peer:
            flat, wall, steps, div = run_peer(x, y, num_chains, num_warmup, num_samples, seed=seed,
                                              init=None if start == "peer" else init)
            r = score("numpyro peer (vectorized)", problem, flat, wall, steps, div,
                      num_warmup=num_warmup)
            per.setdefault(r["name"], []).append(r)
            log(f"seed {seed} " + _fmt(r))
        for name, kw in configs:
            kw = dict(kw)
            chains = kw.pop("num_chains", num_chains)
            draws = kw.pop("num_samples", num_samples)
            kw["num_warmup"] = min(kw["num_warmup"], num_warmup)
            pos, wall, steps, div, loss = run_slt(problem, chains, num_samples=draws, init=init,
                                                  seed=seed, **kw)
            r = score(name, problem, pos, wall, steps, div, loss, num_warmup=kw["num_warmup"])
            per.setdefault(name, []).append(r)
            log(f"seed {seed} " + _fmt(r))
    rows = []
    for name, rs in per.items():
        row = {k: (float(np.median([r[k] for r in rs])) if isinstance(rs[0][k], (int, float))
                   and not isinstance(rs[0][k], bool) else rs[0][k]) for k in rs[0]}
        row.update(seeds=len(rs), per_seed=" ".join(f"{r['ess_per_s']:.2f}" for r in rs),
                   devices=jax.local_device_count(), n=n)
        rows.append(row)
    if peer:
        base = rows[0]["ess_per_s"]
        for r in rows:
            r["ratio_vs_peer"] = round(r["ess_per_s"] / base, 2) if base > 0 else float("nan")
            # the same ratio seed by seed (paired), then its median
            ratios = [a["ess_per_s"] / b["ess_per_s"] for a, b in
                      zip(per[r["name"]], per[rows[0]["name"]]) if b["ess_per_s"] > 0]
            r["median_paired_ratio"] = round(float(np.median(ratios)), 2) if ratios else None
            r["time_ratio_vs_peer"] = round(rows[0]["wall_s"] / r["wall_s"], 2)
    return rows


def _fmt(r):
    return (f"{r['name']:<32s} wall={r['wall_s']:7.2f}s ESS(L_n)={r['ess_loss']:7.1f} "
            f"ESS/s={r['ess_per_s']:7.2f} minESS(raw)={r['ess_raw_min']:6.1f} "
            f"Rhat(L_n)={r['rhat_loss']:.3f} leapfrog={r['mean_leapfrog']:.1f} div={r['divergences']}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000, help="warmup of the peer and of slt (the headline config uses 1000)")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--levers", action="store_true", help="also measure each slt lever")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--cache", action="store_true", help="use the persistent compilation cache")
    ap.add_argument("--seeds", type=int, default=1, help="repeat with seeds 0..K-1; medians")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--start", choices=("peer", "truth"), default="peer",
                    help="peer: the peer's own starting points (default); truth: both start near "
                         "the truth (0.1 jitter), which removes trapping in local modes")
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    out = main(n=a.n, num_chains=a.chains, num_warmup=a.warmup, num_samples=a.samples,
               levers=a.levers, peer=not a.no_peer, seeds=a.seeds,
               first_seed=a.first_seed, start=a.start)
    for r in out:
        if "ratio_vs_peer" in r:
            print(f"{r['name']:<32s} ESS/s ratio vs peer: {r['ratio_vs_peer']:.2f}x")
    if a.csv:
        import csv

        keys = sorted({k for r in out for k in r})
        with open(a.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, keys)
            w.writeheader()
            w.writerows(out)
