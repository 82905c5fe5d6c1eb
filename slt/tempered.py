"""Many temperatures at once: fixed-length HMC over (betas x chains) in one compiled program.

Why not NUTS here: vmapped NUTS runs every chain for as many leapfrog steps as the deepest
tree in the batch, and across a grid from beta = 0 (the prior) to beta = 1 the tree depths
differ a lot, so most of the batch idles (measured: see notes/free_energy.md). Fixed-length
HMC with a *per-chain* adapted step size and diagonal mass matrix does the same work in every
lane; because the step size adapts to each tempered posterior's scale, ``num_steps`` leapfrog
steps cover a comparable fraction of every posterior. The step size is jittered uniformly in
``[0.5, 1.5] x eps`` each transition (Neal 2011, "MCMC using Hamiltonian dynamics", 5.4.2.2)
to avoid periodic orbits.

Warmup (per chain, Stan-like windows): steps ``[0, 15%)`` adapt the step size only (dual
averaging, Hoffman & Gelman 2014, target acceptance ``target_accept``); ``[15%, 75%)`` also
accumulate the positions' variance (Welford); at 75% the inverse mass matrix becomes the
regularised variance ``(m/(m+5)) var + 1e-3 (5/(m+5))`` (Stan's) and dual averaging restarts;
the final step size is the dual-averaging average.

The kernel is ``init(position, beta) -> state`` / ``step(key, state, beta) -> (state, info)``
on one chain; the driver vmaps it over the flattened (betas x chains) axis and shards that
axis over the local devices. ``beta`` and the problem's data are arguments: new betas, data
or seeds of the same shapes never recompile.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from slt.posterior import Problem


JITTER = 0.5


class HMCState(NamedTuple):
    position: jax.Array      # (d,)
    potential: jax.Array     # -log p_beta(w)
    grad: jax.Array          # (d,)
    loss: jax.Array          # L_n(w)


class HMCInfo(NamedTuple):
    accept_prob: jax.Array
    diverging: jax.Array
    loss: jax.Array


class AdaptState(NamedTuple):
    log_step: jax.Array
    log_step_avg: jax.Array
    h_bar: jax.Array
    mu: jax.Array
    t: jax.Array             # dual-averaging iteration count
    inv_mass: jax.Array      # (d,) diagonal inverse mass
    count: jax.Array         # Welford
    mean: jax.Array
    m2: jax.Array


class TemperedResult(NamedTuple):
    """Draws at every beta. Leading axes ``(num_betas, num_chains)``."""

    betas: np.ndarray        # (num_betas,)
    loss: np.ndarray         # (num_betas, chains, draws)  L_n of every draw
    accept_prob: np.ndarray  # (num_betas, chains, draws)
    diverging: np.ndarray    # (num_betas, chains, draws)  bool
    step_size: np.ndarray    # (num_betas, chains)         adapted step size
    positions: np.ndarray    # (num_betas, chains, d)      final positions


def _potential_and_grad(problem: Problem, beta, w):
    def pot(w):
        loss = problem.loss(w)
        return -problem.log_prior(w) + problem.n * beta * loss, loss

    (u, loss), g = jax.value_and_grad(pot, has_aux=True)(w)
    return u, g, loss


def init(problem: Problem, position: jax.Array, beta) -> HMCState:
    u, g, loss = _potential_and_grad(problem, beta, position)
    return HMCState(position, u, g, loss)


def step(key: jax.Array, state: HMCState, problem: Problem, beta, step_size, inv_mass,
         num_steps: int) -> tuple[HMCState, HMCInfo]:
    """One HMC transition on ``p_beta`` of ``problem``: :func:`hmc_step` with its potential."""
    return hmc_step(key, state, lambda w: _potential_and_grad(problem, beta, w), step_size, inv_mass,
                    num_steps)


def hmc_step(key: jax.Array, state: HMCState, potential_and_grad, step_size, inv_mass,
             num_steps: int) -> tuple[HMCState, HMCInfo]:
    """One HMC transition on any potential: ``num_steps`` leapfrog steps of size ``step_size``
    (jittered), diagonal mass ``1/inv_mass``, Metropolis correction; energy errors > 1000 count
    as divergent. ``potential_and_grad(w) -> (U(w), grad U(w), L_n(w))``."""
    # one threefry call per transition (they dominate compile time): d momenta + 2 uniforms
    d = state.position.shape[0]
    z = jax.random.normal(key, (d + 2,), state.position.dtype)
    u_jitter, u_accept = jax.scipy.special.ndtr(z[d]), jax.scipy.special.ndtr(z[d + 1])
    eps = step_size * (1.0 - JITTER + 2 * JITTER * u_jitter)
    p0 = z[:d] / jnp.sqrt(inv_mass)

    def leapfrog(_, carry):
        w, p, g, u, loss = carry
        p = p - 0.5 * eps * g
        w = w + eps * inv_mass * p
        u, g, loss = potential_and_grad(w)
        p = p - 0.5 * eps * g
        return w, p, g, u, loss

    w, p, g, u, loss = jax.lax.fori_loop(0, num_steps, leapfrog,
                                         (state.position, p0, state.grad, state.potential, state.loss))
    h0 = state.potential + 0.5 * jnp.sum(inv_mass * p0 ** 2)
    h1 = u + 0.5 * jnp.sum(inv_mass * p ** 2)
    delta = h0 - h1
    delta = jnp.where(jnp.isfinite(delta), delta, -jnp.inf)
    accept_prob = jnp.minimum(1.0, jnp.exp(delta))
    accept = u_accept < accept_prob
    new = HMCState(jnp.where(accept, w, state.position), jnp.where(accept, u, state.potential),
                   jnp.where(accept, g, state.grad), jnp.where(accept, loss, state.loss))
    return new, HMCInfo(accept_prob, delta < -1000.0, new.loss)


# ----------------------------------------------------------------------------- adaptation
def _da_init(step_size, d, dtype) -> AdaptState:
    log_eps = jnp.log(step_size)
    z = jnp.zeros((), dtype)
    return AdaptState(log_eps, z, z, jnp.log(10.0) + log_eps, z, jnp.ones((d,), dtype), z,
                      jnp.zeros((d,), dtype), jnp.zeros((d,), dtype))


def _da_update(a: AdaptState, accept_prob, target, gamma=0.05, t0=10.0, kappa=0.75) -> AdaptState:
    t = a.t + 1
    h_bar = (1 - 1 / (t + t0)) * a.h_bar + (target - accept_prob) / (t + t0)
    log_step = a.mu - jnp.sqrt(t) / gamma * h_bar
    eta = t ** (-kappa)
    log_avg = eta * log_step + (1 - eta) * a.log_step_avg
    return a._replace(log_step=log_step, log_step_avg=log_avg, h_bar=h_bar, t=t)


def _welford(a: AdaptState, w) -> AdaptState:
    count = a.count + 1
    delta = w - a.mean
    mean = a.mean + delta / count
    return a._replace(count=count, mean=mean, m2=a.m2 + delta * (w - mean))


def mass_switch(a: AdaptState, d: int, dtype) -> AdaptState:
    """End of a Welford window: the inverse mass becomes the regularised variance
    ``(m/(m+5)) var + 1e-3 (5/(m+5))`` (Stan's), the step is rescaled to the new metric and
    dual averaging restarts from there."""
    m = a.count
    var = a.m2 / jnp.maximum(m - 1, 1)
    inv_mass = (m / (m + 5)) * var + 1e-3 * (5 / (m + 5))
    log_eps = a.log_step_avg + 0.5 * jnp.log(jnp.mean(1.0 / inv_mass) * jnp.mean(a.inv_mass))
    fresh = _da_init(jnp.exp(log_eps), d, dtype)
    return fresh._replace(inv_mass=inv_mass)


def _warmup_one(key, position, problem, beta, step_size, num_warmup: int, num_steps: int, target):
    d, dtype = position.shape[0], position.dtype
    state = init(problem, position, beta)
    adapt = _da_init(jnp.asarray(step_size, dtype), d, dtype)
    w_start, w_end = int(0.15 * num_warmup), int(0.75 * num_warmup)

    def body(carry, i):
        state, adapt = carry
        eps = jnp.exp(adapt.log_step)
        state, info = step(jax.random.fold_in(key, i), state, problem, beta, eps, adapt.inv_mass, num_steps)
        adapt = _da_update(adapt, info.accept_prob, target)
        in_window = (i >= w_start) & (i < w_end)
        adapt = jax.tree.map(lambda new, old: jnp.where(in_window, new, old), _welford(adapt, state.position), adapt)

        adapt = jax.tree.map(lambda new, old: jnp.where(i == w_end - 1, new, old),
                             mass_switch(adapt, d, dtype), adapt)
        return (state, adapt), info.loss

    (state, adapt), warm_loss = jax.lax.scan(body, (state, adapt), jnp.arange(num_warmup))
    return state, jnp.exp(adapt.log_step_avg) if num_warmup else jnp.asarray(step_size, dtype), adapt.inv_mass, warm_loss


def _sample_one(key, state, problem, beta, step_size, inv_mass, num_samples: int, num_steps: int):
    def body(state, i):
        state, info = step(jax.random.fold_in(key, i), state, problem, beta, step_size, inv_mass, num_steps)
        return state, info

    return jax.lax.scan(body, state, jnp.arange(num_samples))


@functools.lru_cache(maxsize=None)
def _compiled(num_warmup: int, num_samples: int, num_steps: int, target: float, num_devices: int):
    def run_one(key, position, problem, beta, step_size):
        key_w, key_s = jax.random.split(key)
        state, eps, inv_mass, _ = _warmup_one(key_w, position, problem, beta, step_size,
                                               num_warmup, num_steps, target)
        state, info = _sample_one(key_s, state, problem, beta, eps, inv_mass, num_samples, num_steps)
        return info.loss, info.accept_prob, info.diverging, eps, state.position

    fn = jax.vmap(run_one, in_axes=(0, 0, None, 0, 0))
    if num_devices > 1:
        mesh = Mesh(np.array(jax.devices()[:num_devices]), ("chains",))
        fn = jax.shard_map(fn, mesh=mesh, in_specs=(P("chains"), P("chains"), P(), P("chains"), P("chains")),
                           out_specs=P("chains"), check_vma=False)
    return jax.jit(fn)


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
    ndev = jax.local_device_count()
    while ndev > 1 and total % ndev:
        ndev -= 1
    fn = _compiled(int(num_warmup), int(num_samples), int(num_steps), float(target_accept), ndev)
    loss, acc, div, eps, pos = fn(keys, init_positions.reshape(total, d), problem, flat_beta, eps0)
    shape = (nb, nc)
    return TemperedResult(betas=np.asarray(betas, float),
                          loss=np.asarray(loss).reshape(shape + (num_samples,)),
                          accept_prob=np.asarray(acc).reshape(shape + (num_samples,)),
                          diverging=np.asarray(div).reshape(shape + (num_samples,)),
                          step_size=np.asarray(eps).reshape(shape),
                          positions=np.asarray(pos).reshape(shape + (d,)))
