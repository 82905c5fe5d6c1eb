"""Gradient throughput: slt's log density vs a hand-fused ``jax.grad`` of the same loss.

Both evaluate ``grad_w [log phi(w) - n beta L_n(w)]`` for ``num_chains`` parameter vectors at
once (vmapped), inside one compiled ``lax.scan`` of ``steps`` iterations (as a sampler would:
each step moves ``w`` a little along the gradient, so nothing is hoisted or CSE'd away).

- slt: ``jax.grad(Problem.logdensity)`` on the flat vector, the Problem passed as a jit
  *argument* (data and beta traced, as in the samplers);
- ceiling: the same loss written inline over explicit weight matrices, data closed over as
  constants, no flat-vector slicing, no Gaussian constants: what a user would hand-fuse.

Reported: gradient evaluations per second (chains x steps / seconds, compile excluded,
best of ``repeats``) and the ratio ceiling / slt (goal: <= 2).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from slt import models
from slt.data import Dataset
from slt.posterior import Problem


def make_problem(widths, n, activation="relu", bias=True, seed=0, dtype=np.float32) -> Problem:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, widths[0])).astype(dtype)
    y = rng.normal(size=(n, widths[-1])).astype(dtype)
    return Problem.make(models.make_mlp(widths, activation, bias), Dataset(x, y), 1.0, 1.0)


def _scan_driver(grad_fn, steps):
    def run(w, *args):
        def body(w, _):
            g = grad_fn(w, *args)
            return jax.tree.map(lambda a, b: a + 1e-6 * b, w, g), None
        return jax.lax.scan(body, w, None, length=steps)[0]
    return jax.jit(run)


def slt_grad(problem: Problem):
    """Chains-vmapped gradient of the tempered log density, as the samplers call it."""
    g = jax.grad(lambda w, p, beta: p.logdensity(w, beta))
    return jax.vmap(g, in_axes=(0, None, None))


def fused_grad(problem: Problem):
    """The hand-fused ceiling: explicit matrices, inline loss, data as constants."""
    spec = problem.spec
    x, y = problem.x, problem.y
    act = models.ACTIVATIONS[spec.activation]

    def neg_energy(params):
        h = x
        for i, layer in enumerate(params):
            h = h @ layer["W"].T + (layer["b"] if "b" in layer else 0.0)
            if i < len(params) - 1:
                h = act(h)
        r = y - h
        sq = sum(jnp.sum(v ** 2) for layer in params for v in layer.values())
        return -0.5 * jnp.sum(r * r) - 0.5 * sq

    return jax.vmap(jax.grad(neg_energy))  # the scan carries explicit matrices, not a flat w


def measure(problem: Problem, num_chains=4, steps=200, repeats=3):
    """Return (slt grads/s, ceiling grads/s)."""
    key = jax.random.key(0)
    w = 0.5 * jax.random.normal(key, (num_chains, problem.d), problem.x.dtype)
    beta = jnp.asarray(1.0, problem.x.dtype)
    run_slt = _scan_driver(slt_grad(problem), steps)
    params = models.unflatten(problem.spec, w)
    run_fused = _scan_driver(fused_grad(problem), steps)

    def best(fn, *args):
        jax.block_until_ready(fn(*args))  # compile
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - t0)
        return num_chains * steps / min(times)

    return best(run_slt, w, problem, beta), best(run_fused, params)


CASES = [  # (label, widths, n)
    ("headline [2,2,1], n=1000", (2, 2, 1), 1000),
    ("[2,2,1], n=100000", (2, 2, 1), 100_000),
    ("[8,64,1], n=1000", (8, 64, 1), 1000),
    ("RRR [100,50,100] identity, n=1000", (100, 50, 100), 1000),
]


def main(cases=CASES, num_chains=4, steps=200, repeats=3, log=print):
    rows = []
    for label, widths, n in cases:
        act, bias = ("identity", False) if label.startswith("RRR") else ("relu", True)
        p = make_problem(widths, n, act, bias)
        s, f = measure(p, num_chains, steps, repeats)
        rows.append(dict(name=label, d=p.d, n=n, chains=num_chains, slt_grads_per_s=round(s, 1),
                         fused_grads_per_s=round(f, 1), ceiling_over_slt=round(f / s, 3)))
        log(f"{label:<36s} d={p.d:<6d} slt={s:12.0f} grad/s  fused={f:12.0f} grad/s  "
            f"ceiling/slt={f / s:.2f}")
    return rows


if __name__ == "__main__":
    from slt.cli import configure_jax

    configure_jax(cache=False)
    main()
