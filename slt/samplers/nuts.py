"""NUTS/HMC through numpyro's functional kernels, many chains in one compiled program.

numpyro's ``hmc(potential_fn_gen, algo=...)`` gives pure ``init_kernel``/``sample_kernel``
functions (Hoffman & Gelman 2014 NUTS; windowed step-size and diagonal/dense mass-matrix
adaptation as in Stan). We ``vmap`` them over chains (and over ``beta`` when several
temperatures are sampled), and ``shard_map`` the chain axis over every local device, so
each device runs its own chains without synchronising their tree depths with the others.
The problem's data and ``beta`` are *arguments* of the compiled program: a new ``beta``,
seed or data set of the same shape never recompiles.

The run is split into chunks of iterations, each one call of the same compiled function,
so a progress bar can advance between them; the chunking does not change the draws.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc

from slt.kernels import devices
from slt.samplers.diagnostics import AUTO_FIRST
from slt.kernels.devices import num_devices_for as _num_devices_for
from slt.posterior import Problem


class SampleResult(NamedTuple):
    """Posterior draws after warmup.

    Axes are ``(num_chains, num_samples)``; a per-chain ``beta`` array gives each chain its own
    temperature (``slt.samplers.tempered`` is the fixed-length HMC path for whole beta grids).
    """

    positions: np.ndarray      # (chains, draws, d)  flat parameters (thinned)
    loss: np.ndarray           # (chains, draws)     L_n of every draw
    diverging: np.ndarray      # (chains, draws)     bool
    accept_prob: np.ndarray    # (chains, draws)
    num_steps: np.ndarray      # (chains, draws)     leapfrog steps per transition
    step_size: np.ndarray      # (chains,)               adapted step size
    warmup_loss: np.ndarray    # (chains, num_warmup) L_n during warmup (for trace plots)
    replica: object = None  # slt.samplers.replica.ReplicaResult when sampled by replica exchange
    sampling_rounds: list | None = None   # num_samples auto: draws and the converged_fn's numbers per check
    converged: bool | None = None         # num_samples auto: converged_fn passed before max_samples


def _potential_fn_gen(problem: Problem, beta):
    return lambda w: -problem.logdensity(w, beta)


def progress_enabled(flag: bool | None = None) -> bool:
    """Progress bars on interactive terminals only (never under CI, never with ``--quiet``):
    :func:`slt.progress.enabled` unless ``flag`` forces it."""
    if flag is not None:
        return flag
    from slt import progress

    return progress.enabled()


@functools.lru_cache(maxsize=None)
def _kernel(method: str, num_warmup: int, num_steps: int | None, max_tree_depth: int,
            dense_mass: bool, target_accept: float):
    """One numpyro ``(init_kernel, sample_kernel)`` pair per kernel configuration.

    numpyro's ``sample_kernel`` reads settings (tree depth, warmup length, adaptation) that
    ``init_kernel`` stores in their shared closure, so every advance program (any chunk
    length, any thinning) must come from the pair whose ``init_kernel`` ran first (a fresh
    pair per chunk length and thinning failed with ``sampler.thinning > 1``)."""
    return hmc(potential_fn_gen=_potential_fn_gen, algo="NUTS" if method == "nuts" else "HMC")


@functools.lru_cache(maxsize=None)
def _compiled(method: str, num_warmup: int, chunk: int, thinning: int, num_steps: int | None,
              max_tree_depth: int, dense_mass: bool, target_accept: float, num_devices: int,
              batched_beta: bool):
    """Build (init, advance) jitted functions for one static configuration."""
    init_kernel, sample_kernel = _kernel(method, num_warmup, num_steps, max_tree_depth, dense_mass,
                                         target_accept)

    def init_one(key, w0, step_size, problem, beta):
        # HMC with a fixed number of leapfrog steps: no fixed trajectory length (numpyro's
        # default 2 pi would override the step size with 2 pi / num_steps)
        return init_kernel(w0, num_warmup, step_size=step_size, dense_mass=dense_mass,
                           target_accept_prob=target_accept, num_steps=num_steps,
                           trajectory_length=None if num_steps is not None else 2 * math.pi,
                           max_tree_depth=max_tree_depth, model_args=(problem, beta),
                           rng_key=key)

    def advance_one(state, problem, beta):
        def thin_step(state, _):
            def one(state, _):
                return sample_kernel(state, model_args=(problem, beta)), None
            state, _ = jax.lax.scan(one, state, None, length=thinning - 1) if thinning > 1 else (state, None)
            state = sample_kernel(state, model_args=(problem, beta))
            out = (state.z, problem.loss(state.z), state.diverging, state.mean_accept_prob,
                   state.num_steps, state.adapt_state.step_size)
            return state, out

        return jax.lax.scan(thin_step, state, None, length=chunk)

    # vmap over chains; beta is per-row when batched over temperatures
    in_beta = 0 if batched_beta else None
    return (jax.jit(devices.shard_chains(init_one, num_devices, (0, 0, None, None, in_beta))),
            jax.jit(devices.shard_chains(advance_one, num_devices, (0, None, in_beta))))


def sample(key: jax.Array, problem: Problem, init_positions: jax.Array, beta=1.0, *,
           method: str = "nuts", num_warmup: int = 500, num_samples: int = 1000,
           step_size: float | None = None, num_steps: int = 16, max_tree_depth: int = 8,
           dense_mass: bool = False, target_accept: float = 0.8, thinning: int = 1,
           progress_bar: bool | None = None, chunk_size: int = 250,
           desc: str = "sampling", max_samples: int = 16000, converged_fn=None) -> SampleResult:
    """Sample ``p_beta(w) ∝ phi(w) exp(-n beta L_n(w))`` with NUTS or HMC.

    Args:
      key: PRNG key; chain ``c`` uses ``fold_in(key, c)``.
      problem: model + data.
      init_positions: (num_chains, d) starting points (e.g. prior draws: dispersed starts).
      beta: inverse temperature — a scalar, or an array (num_chains,) giving each chain its own
        beta (used by the multi-temperature driver).
      method: ``"nuts"`` or ``"hmc"`` (fixed ``num_steps`` leapfrog steps).
      thinning: keep every ``thinning``-th draw (memory stays O(num_samples / thinning)).
      num_samples: draws per chain, or ``"auto"``: ``AUTO_FIRST`` draws, then the same chains
        continue (doubling the total) until ``converged_fn(result) -> (ok, numbers)`` passes or
        ``max_samples``; ``result.converged`` and ``result.sampling_rounds`` say how it ended.
        The draws are those of one long run: stopping earlier never changes them.

    Returns: :class:`SampleResult` with axes (chains, draws).
    """
    if method not in ("nuts", "hmc"):
        raise ValueError(f"method must be 'nuts' or 'hmc' (replica exchange is slt.samplers.replica.sample), got {method!r}")
    init_positions = jnp.asarray(init_positions, problem.x.dtype)
    num_chains = init_positions.shape[0]
    beta = jnp.asarray(beta, problem.x.dtype)
    batched_beta = beta.ndim == 1
    ndev = _num_devices_for(num_chains)
    auto = num_samples == "auto"
    if auto and (converged_fn is None or max_samples < AUTO_FIRST):
        raise ValueError(f"num_samples='auto' needs a converged_fn and max_samples >= {AUTO_FIRST}")
    num_samples = AUTO_FIRST if auto else int(num_samples)
    total = num_warmup + num_samples * thinning
    chunk = _chunk_length(num_warmup, num_samples, chunk_size)
    # the warmup must end on a chunk boundary, so warmup draws (not thinned) and samples split cleanly
    init_fn, _ = _compiled(method, num_warmup, chunk, 1, num_steps if method == "hmc" else None,
                           max_tree_depth, dense_mass, target_accept, ndev, batched_beta)
    keys = jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(num_chains))
    state = init_fn(keys, init_positions, 1.0 if step_size is None else step_size, problem, beta)

    bar = _progress(total, desc) if progress_enabled(progress_bar) else None
    warm_parts, parts = [], []

    def advance_by(phase_len, thin, store):
        nonlocal state
        remaining = phase_len
        while remaining > 0:
            length = min(chunk, remaining)
            _, advance = _compiled(method, num_warmup, length, thin,
                                   num_steps if method == "hmc" else None, max_tree_depth,
                                   dense_mass, target_accept, ndev, batched_beta)
            state, out = advance(state, problem, beta)
            store.append(out)
            remaining -= length
            if bar is not None:
                bar.update(length * thin)

    advance_by(num_warmup, 1, warm_parts)
    advance_by(num_samples, thinning, parts)
    res, rounds, converged = _assemble(parts, warm_parts, num_chains), [], None
    while auto:
        ok, numbers = converged_fn(res)
        rounds.append({"num_samples": int(res.loss.shape[1]), **numbers})
        if ok or num_samples >= max_samples:
            converged = bool(ok)
            break
        more = min(num_samples, max_samples - num_samples)   # double the draws, up to the cap
        if bar is not None:
            bar.total += more * thinning
        advance_by(more, thinning, parts)
        num_samples += more
        res = _assemble(parts, warm_parts, num_chains)
    if bar is not None:
        bar.close()
    return res._replace(sampling_rounds=rounds or None, converged=converged)




def _assemble(parts, warm_parts, num_chains) -> SampleResult:
    def cat(parts, i, empty_shape):
        if not parts:
            return np.zeros(empty_shape)
        return np.concatenate([np.asarray(p[i]) for p in parts], axis=1)

    z, loss, div, acc, nsteps, eps = (cat(parts, i, (num_chains, 0)) for i in range(6))
    warm_loss = cat(warm_parts, 1, (num_chains, 0))
    return SampleResult(positions=z, loss=loss, diverging=div.astype(bool), accept_prob=acc,
                        num_steps=nsteps, step_size=eps[:, -1], warmup_loss=warm_loss)


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def prior_draws(key: jax.Array, num: int, d: int, prior_std, dtype=None) -> jax.Array:
    """Dispersed starting points: ``num`` draws from the N(0, prior_std^2) prior."""
    return prior_std * jax.random.normal(key, (num, d), dtype=dtype or jnp.result_type(float))


def _chunk_length(num_warmup: int, num_samples: int, cap: int) -> int:
    """A chunk length dividing both phases, so one compiled program serves the whole run."""
    g = math.gcd(num_warmup, num_samples) if num_warmup else num_samples
    best = max((c for c in range(1, min(g, cap) + 1) if g % c == 0), default=1)
    return best if best >= min(25, g) else min(cap, max(num_warmup, num_samples))


def wbic_beta(n: int) -> float:
    return 1.0 / math.log(n)
