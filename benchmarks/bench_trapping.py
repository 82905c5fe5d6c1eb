"""How often does a NUTS chain get trapped in a local mode of the headline posterior?

Same data, same starting points (the numpyro peer's own init for C chains) for the peer's
``MCMC(NUTS)`` and slt's sampler; W warmup + S draws per chain; a chain is "trapped" when its
mean L_n > 1.40 (the L_n ≈ 1.455 basin) and in the "c-mode" when 1.3982 < mean L_n < 1.40.
Measured 2026-11-21 (C=8, W=300, S=40, seeds 5-7): trapped peer 4/24, slt 4/24; c-mode 8/24, 6/24.

Run:  python benchmarks/bench_trapping.py
"""
import os, sys, time
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax, jax.numpy as jnp, numpy as np
import bench_sampling as bs
from numpyro.infer import MCMC, NUTS
x, y = bs.peer_data(1000); p = bs.problem_for(x, y)
lossf = jax.jit(jax.vmap(jax.vmap(p.loss)))
C, W, S = 8, 300, 40
for seed in (5, 6, 7):
    init = bs.peer_init(x, y, C, seed)
    t0=time.perf_counter()
    m = MCMC(NUTS(bs._peer_model()), num_warmup=W, num_samples=S, num_chains=C, chain_method="vectorized", progress_bar=False)
    m.run(jax.random.PRNGKey(seed), x, y)
    s = m.get_samples(group_by_chain=True)
    flat = np.concatenate([np.asarray(s["w1"]).reshape(C,S,4), np.asarray(s["b1"]), np.asarray(s["q"]), np.asarray(s["c"])[...,None]], -1)
    Lp = np.asarray(lossf(jnp.asarray(flat))).mean(1); tp=time.perf_counter()-t0
    t0=time.perf_counter()
    pos, wall, steps, div, L = bs.run_slt(p, C, num_warmup=W, num_samples=S, seed=seed, init=init, max_tree_depth=10)
    Ls = L.mean(1); ts=time.perf_counter()-t0
    print("seed", seed, "peer trapped(L>1.40)", int((Lp>1.40).sum()), "c-mode", int(((Lp>1.3982)&(Lp<1.40)).sum()), f"{tp:.0f}s", "| slt trapped", int((Ls>1.40).sum()), "c-mode", int(((Ls>1.3982)&(Ls<1.40)).sum()), f"{ts:.0f}s", flush=True)
    print("  peer", np.sort(Lp).round(4)); print("  slt ", np.sort(Ls).round(4), flush=True)
