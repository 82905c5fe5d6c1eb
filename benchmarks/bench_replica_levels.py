"""Issue 20, item 5: would per-level trajectory lengths (short at the hot levels) make replica
exchange cheaper? Every chain's ladder is one vmapped program (chains x levels), so a level's
leapfrog loop with its own trip count becomes a batched while loop that runs until the longest
level is done, the finished levels masked. This times one trajectory of the headline posterior's
gradient (4 chains x 10 levels) with 16 steps everywhere, 16 down to 2 across the levels (54% of
the gradients), and 2 everywhere.

    python benchmarks/bench_replica_levels.py
"""
import os, time
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
import jax, jax.numpy as jnp
from slt.pipeline import config, runs
ctx = runs.build_context(config.load("configs/relu2_truth1.yaml"))
p = ctx.problem
K, C = 10, 4
g = jax.grad(lambda w: p.loss(w))
def traj(w, steps):
    def body(i, w):
        return w - 1e-3 * g(w)
    return jax.lax.fori_loop(0, steps, body, w)
f = jax.jit(jax.vmap(jax.vmap(traj)))  # chains x levels
w = jnp.zeros((C, K, p.d)) + 0.1
cases = {"all 16": jnp.full((C, K), 16),
         "per level 16..2": jnp.broadcast_to(jnp.linspace(16, 2, K).astype(jnp.int32), (C, K)),
         "all 2": jnp.full((C, K), 2)}
best = {}
for name, steps in cases.items():
    jax.block_until_ready(f(w, steps))
for _ in range(5):   # interleaved rounds: the machine's load hits every case alike
    for name, steps in cases.items():
        for _ in range(10):
            t0 = time.perf_counter(); jax.block_until_ready(f(w, steps))
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t0)
for name, steps in cases.items():
    print(f"{name:18s} {1e3 * best[name]:.2f} ms  (gradients asked: {int(steps.sum())})")
