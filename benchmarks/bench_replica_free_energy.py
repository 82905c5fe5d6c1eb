"""Free energy of the headline ReLU posterior (configs/relu2_truth1_free_energy.yaml, n = 1000,
seed 0) from replica ladders started at prior draws, against the fixed 16-point grid of
slt.samplers.tempered started at the truth (the free-energy stage's path with free_energy.init: truth).

Measured 2026-11-26 (2-core machine, load ~8; walls compile included):
    fixed grid, truth starts: TI 1415.25 ± 0.11  SS 1415.31 ± 0.10  22 s
    replica K=12 prior starts: TI 1415.60 ± 0.08  SS 1415.33 ± 0.05  41 s  (round trips 34-40 per chain)
    replica K=16 prior starts: TI 1415.35 ± 0.07  SS 1415.27 ± 0.07  54 s  (round trips 34-41 per chain)
Stepping stone from prior starts agrees with the truth-start grid; TI on the 12-level adapted
ladder is 0.35 nats high with a quadrature-error estimate that misses it.

Run:  nice -n 10 python benchmarks/bench_replica_free_energy.py
"""
import os, time
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
import jax, jax.numpy as jnp, numpy as np
from slt.pipeline import config, runs
from slt.samplers import tempered, replica, nuts as samplers
from slt.estimators import free_energy as fe
from slt.estimators import replica_free_energy as rfe
cfg = config.load("configs/relu2_truth1_free_energy.yaml")
ctx = runs.build_context(cfg); p = ctx.problem; n = p.n
betas = fe.ti_grid(16)
t = time.perf_counter()
init = ctx.truth_w[None, None, :] + 1e-3 * jax.random.normal(jax.random.key(1), (16, 4, p.d))
tr = tempered.sample_tempered(jax.random.key(2), p, init, betas, num_warmup=400, num_samples=800, num_steps=4)
m = fe.beta_means(betas, n * tr.loss)
ti = fe.thermodynamic_integration(betas, m.mean, m.mcse)
ss = fe.stepping_stone(betas, n * tr.loss)
print(f"fixed grid, truth starts: TI {ti.free_energy:.2f} ± {ti.stderr:.2f}  SS {ss.free_energy:.2f} ± {ss.stderr:.2f}  {time.perf_counter()-t:.0f}s", flush=True)
for K in (12, 16):
    t = time.perf_counter()
    init = samplers.prior_draws(jax.random.key(3), 4, p.d, p.prior_std)
    res = replica.sample_problem(jax.random.key(4), p, init, num_temperatures=K, beta_min=0.0,
                                 num_warmup=1000, num_samples=1000, num_steps=8)
    r = rfe.free_energy(res, n)
    print(f"replica K={K} prior starts: TI {r.ti:.2f} ± {r.ti_stderr:.2f}  SS {r.stepping_stone:.2f} ± {r.stepping_stone_stderr:.2f}  {time.perf_counter()-t:.0f}s",
          "per chain TI", r.ti_per_chain.round(2), "SS", r.stepping_stone_per_chain.round(2), "trips", res.round_trips, "swap", res.swap_accept.mean(0).round(2), flush=True)
