"""Many temperatures at once: fixed-length HMC over (betas x chains) in one compiled program.

Why not NUTS here: vmapped NUTS runs every chain for as many leapfrog steps as the deepest
tree in the batch, and across a grid from beta = 0 (the prior) to beta = 1 the tree depths
differ a lot, so most of the batch idles (measured: see notes/free_energy.md). Fixed-length
HMC with a *per-chain* adapted step size and diagonal mass matrix does the same work in every
lane; because the step size adapts to each tempered posterior's scale, ``num_steps`` leapfrog
steps cover a comparable fraction of every posterior. The transition is
:func:`slt.kernels.hmc.step` (step jittered in ``[0.5, 1.5] x eps``, Neal 2011, 5.4.2.2).

Warmup (per chain, Stan-like windows): steps ``[0, 15%)`` adapt the step size only (dual
averaging, Hoffman & Gelman 2014, target acceptance ``target_accept``); ``[15%, 75%)`` also
accumulate the positions' variance (Welford); at 75% the inverse mass matrix becomes the
regularised variance ``(m/(m+5)) var + 1e-3 (5/(m+5))`` (Stan's) and dual averaging restarts;
the final step size is the dual-averaging average.

Adaptation: :mod:`slt.kernels.adaptation`. The driver vmaps one chain's program over the
flattened (betas x chains) axis and shards that axis over the local devices. ``beta`` and the problem's data are arguments: new betas, data
or seeds of the same shapes never recompile.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from slt.kernels import adaptation, devices, hmc
from slt.posterior import Problem, problem_log_prior, problem_loss, tempered_target


class TemperedResult(NamedTuple):
    """Draws at every beta. Leading axes ``(num_betas, num_chains)``."""

    betas: np.ndarray        # (num_betas,)
    loss: np.ndarray         # (num_betas, chains, draws)  L_n of every draw
    accept_prob: np.ndarray  # (num_betas, chains, draws)
    diverging: np.ndarray    # (num_betas, chains, draws)  bool
    step_size: np.ndarray    # (num_betas, chains)         adapted step size
    positions: np.ndarray    # (num_betas, chains, d)      final positions


def _target(problem: Problem, beta):
    return tempered_target(problem_log_prior, problem_loss, problem, problem.n, beta)


def _warmup_one(key, position, problem, beta, step_size, num_warmup: int, num_steps: int, target):
    d, dtype = position.shape[0], position.dtype
    density = _target(problem, beta)
    state = hmc.init(position, density)
    adapt = adaptation.window_init(step_size, d, dtype)
    w_start, w_end = int(0.15 * num_warmup), int(0.75 * num_warmup)

    def body(carry, i):
        state, adapt = carry
        eps = jnp.exp(adapt.log_step)
        state, info = hmc.step(jax.random.fold_in(key, i), state, density, eps, num_steps, adapt.inv_mass)
        adapt = adaptation.dual_averaging_update(adapt, info.accept_prob, target)
        in_window = (i >= w_start) & (i < w_end)
        adapt = jax.tree.map(lambda new, old: jnp.where(in_window, new, old),
                             adaptation.welford_update(adapt, state.position), adapt)
        adapt = jax.tree.map(lambda new, old: jnp.where(i == w_end - 1, new, old),
                             adaptation.mass_switch(adapt), adapt)
        return (state, adapt), state.loss

    (state, adapt), warm_loss = jax.lax.scan(body, (state, adapt), jnp.arange(num_warmup))
    return state, jnp.exp(adapt.log_step_avg) if num_warmup else jnp.asarray(step_size, dtype), adapt.inv_mass, warm_loss


@functools.lru_cache(maxsize=None)
def _compiled(num_warmup: int, num_samples: int, num_steps: int, target: float, num_devices: int):
    def run_one(key, position, problem, beta, step_size):
        key_w, key_s = jax.random.split(key)
        state, eps, inv_mass, _ = _warmup_one(key_w, position, problem, beta, step_size,
                                               num_warmup, num_steps, target)

        def draw(state, i):
            state, info = hmc.step(jax.random.fold_in(key_s, i), state, _target(problem, beta), eps,
                                   num_steps, inv_mass)
            return state, (state.loss, info.accept_prob, info.diverging)

        state, (loss, accept_prob, diverging) = jax.lax.scan(draw, state, jnp.arange(num_samples))
        return loss, accept_prob, diverging, eps, state.position

    return jax.jit(devices.shard_chains(run_one, num_devices, (0, 0, None, 0, 0)))


def initial_step_size(problem: Problem, betas) -> jax.Array:
    """A scale guess ``0.5 s / sqrt(1 + n beta s^2)`` per beta (dual averaging refines it)."""
    s = problem.prior_std
    return 0.5 * s / jnp.sqrt(1.0 + problem.n * jnp.asarray(betas) * s ** 2)


def sample_tempered(key: jax.Array, problem: Problem, init_positions: jax.Array, betas, *,
                    num_warmup: int = 400, num_samples: int = 800, num_steps: int = 8,
                    target_accept: float = 0.8) -> TemperedResult:
    """Sample ``p_beta(w) ∝ phi(w) exp(-n beta L_n(w))`` at every ``beta`` in ``betas`` at once.

    Args:
      key: PRNG key; chain ``c`` at beta index ``b`` uses ``fold_in(fold_in(key, b), c)``.
      problem: model + data (a jit argument: same shapes never recompile).
      init_positions: (num_betas, num_chains, d) starts (e.g. prior draws).
      betas: (num_betas,) inverse temperatures (0 samples the prior).
      num_steps: leapfrog steps per transition (fixed: every lane does the same work).

    Returns: :class:`TemperedResult` (num_betas, chains, draws) arrays.
    """
    dtype = problem.x.dtype
    betas = jnp.asarray(betas, dtype)
    init_positions = jnp.asarray(init_positions, dtype)
    nb, nc, d = init_positions.shape
    if betas.shape != (nb,):
        raise ValueError(f"betas must have shape ({nb},), got {betas.shape}")
    keys = jax.vmap(lambda b: jax.vmap(lambda c: jax.random.fold_in(jax.random.fold_in(key, b), c))(
        jnp.arange(nc)))(jnp.arange(nb)).reshape(nb * nc)
    flat_beta = jnp.repeat(betas, nc)
    eps0 = initial_step_size(problem, flat_beta).astype(dtype)
    total = nb * nc
    ndev = devices.num_devices_for(total)
    fn = _compiled(int(num_warmup), int(num_samples), int(num_steps), float(target_accept), ndev)
    loss, acc, div, eps, pos = fn(keys, init_positions.reshape(total, d), problem, flat_beta, eps0)
    shape = (nb, nc)
    return TemperedResult(betas=np.asarray(betas, float),
                          loss=np.asarray(loss).reshape(shape + (num_samples,)),
                          accept_prob=np.asarray(acc).reshape(shape + (num_samples,)),
                          diverging=np.asarray(div).reshape(shape + (num_samples,)),
                          step_size=np.asarray(eps).reshape(shape),
                          positions=np.asarray(pos).reshape(shape + (d,)))
