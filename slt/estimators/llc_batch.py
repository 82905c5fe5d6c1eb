"""The LLC at K points in ONE compiled program: :func:`slt.estimators.learning_coefficient.estimate_llc`
``vmap``-ed over a leading batch axis of w* (and, optionally, of the data and of nbeta).

Two callers, one implementation:

* the LLC along training (:mod:`slt.estimators.llc_trajectory`): K checkpoints w*_j, the same data and nbeta;
* lambda_hat's data subsets (:func:`slt.estimators.lambda_hat.lambda_hat`): K disjoint subsets of
  equal size, so their data are arrays of the same shape stacked on a leading axis
  (``data_batched=True``), each with its own minimiser w*_k and its own nbeta_k.

The single-point programs of :mod:`slt.samplers.llc_chains` are ``vmap``-ed over the batch axis (keys and
w* batched; data and nbeta batched or shared; gamma shared), so K points compile once, not K
times. ``num_draws: "auto"`` advances every member's chains together, by the same doubling
chunks as the single-point estimator, until every member passes the trend test or the cap.
HMC's leapfrog loop runs as long as the longest trajectory in the batch (masked for the others).

Correspondence: member ``j`` uses ``key_j = jax.random.fold_in(key, j)``, so with a fixed
``num_draws`` its result equals ``estimate_llc(key_j, loss_fn, w_stars[j], data=data_j,
nbeta=nbeta_j, ...)`` up to float rounding (SGLD exactly so; HMC's accept decisions can turn
rounding into different, equally valid chains). With ``num_draws: "auto"`` every member keeps all
the draws the batch ran (possibly more than it alone would have needed).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from slt.estimators import learning_coefficient as lc
from slt.kernels.devices import num_devices_for
from slt.samplers import llc_chains
from slt.posterior import Problem


def estimate_llc_batch(key: jax.Array, loss_fn: Callable, w_stars, *, nbeta=None,
                       n: int | None = None, data=None, data_batched: bool = False,
                       gamma: float = 1.0, sampler: str = "hmc",
                       num_chains: int = 8, num_draws: int | str = "auto", max_draws: int | None = None,
                       num_burnin: int | None = None, num_adapt: int | None = None,
                       step_size: float | None = None, target_accept: float | None = None,
                       batch_loss_fn: Callable | None = None, batch_size: int | None = None,
                       max_tree_depth: int = 8, trajectory_length: float | None = None,
                       max_steps: int = lc.HMC_MAX_STEPS, progress: Callable | None = None,
                       data_axes=None) -> list:
    """:func:`slt.estimators.learning_coefficient.estimate_llc` at every row of ``w_stars`` (K, d) in one
    compiled program; returns K :class:`LLCResult`. Arguments as there (``loss_fn(w, data)``),
    plus:

      data_batched: ``data``'s leaves carry a leading axis of length K (member j sees
        ``data[j]``); otherwise ``data`` is shared by all members.
      nbeta: a scalar (shared) or a (K,) array (member j samples at ``nbeta[j]``).
      data_axes: finer than ``data_batched``: a pytree prefix of ``data`` giving each part's
        batch axis (0) or None (shared), e.g. ``(None, 0, None)`` for per-member weight masks
        (:func:`slt.estimators.restricted.per_layer_llc`).

    Member ``j`` runs on ``fold_in(key, j)``. ``sampling_s`` of every result is the wall time of
    the whole batch."""
    if sampler not in lc.SAMPLERS:
        raise ValueError(f"sampler must be one of {lc.SAMPLERS}, got {sampler!r}")
    w_stars = jnp.asarray(w_stars, jnp.result_type(float))
    if w_stars.ndim != 2:
        raise ValueError(f"w_stars must be (K, d), got shape {w_stars.shape}")
    K, d = w_stars.shape
    if data_batched:
        sizes = {int(leaf.shape[0]) for leaf in jax.tree.leaves(data)}
        if sizes != {K}:
            raise ValueError(f"data_batched: every leaf of data needs a leading axis of {K}, got {sizes}")
    nbeta_vec = None if nbeta is None or np.ndim(nbeta) == 0 else np.asarray(nbeta, np.float64)
    if nbeta_vec is not None:
        if nbeta_vec.shape != (K,) or not (nbeta_vec > 0).all():
            raise ValueError(f"nbeta: a scalar or ({K},) positive values, got {nbeta_vec}")
    loss_fn, nbeta, auto, chunk, cap, num_burnin, num_adapt, target_accept = lc.resolve_settings(
        sampler, loss_fn, data, batch_loss_fn, batch_size,
        nbeta if nbeta_vec is None else float(nbeta_vec.min()), n, gamma, num_draws, max_draws,
        num_burnin, num_adapt, step_size, target_accept)     # the same checks and defaults as estimate_llc
    nbetas = np.full(K, float(nbeta)) if nbeta_vec is None else nbeta_vec
    dtype = w_stars.dtype
    ndev = num_devices_for(num_chains)
    k_curv, k_run, keys = llc_chains.member_keys(K, num_chains)(key)   # as estimate_llc splits its key
    eps0 = jnp.asarray(np.full((K, num_chains), np.nan if step_size is None else step_size), dtype)
    # nbeta and data: batched (axis 0) or shared (None)
    nb_axis, data_axis = (None if nbeta_vec is None else 0), (0 if data_batched else None)
    if data_axes is not None:
        data_axis = data_axes
    nbeta_a = jnp.asarray(nbeta if nbeta_vec is None else nbetas, dtype)
    gamma_a = jnp.asarray(gamma, dtype)
    t0 = time.perf_counter()
    first = int(chunk) if sampler in llc_chains.IN_WARMUP else 0   # as estimate_llc
    warm, draw = llc_chains.programs(sampler, loss_fn, int(num_adapt), int(num_burnin), float(target_accept),
                                     int(chunk), int(max_steps), ndev, batch_loss_fn=batch_loss_fn,
                                     batch_size=batch_size, max_tree_depth=int(max_tree_depth), first_draws=first)
    warm = _batched(warm, (0, 0, 0, data_axis, nb_axis, None, 0, None, None))
    draw = _batched(draw, (0, 0, 0, 0, 0, data_axis, nb_axis, None, 0, None))
    given_t = jnp.asarray(math.nan if trajectory_length is None else trajectory_length, dtype)
    n_a = jnp.asarray(n or 1, jnp.int32)
    states, eps, inv_mass, traj, loss_star, *first_out = warm(keys, eps0, w_stars, data, nbeta_a, gamma_a,
                                                              k_curv, given_t, n_a)
    fold = llc_chains.member_chunk_keys(num_chains)
    loss_star_np = np.asarray(loss_star, np.float64)
    nonfinite = []   # per chunk, (K, C) transitions that met a NaN of the model

    def draw_chunk(i):
        nonlocal states
        if i == 0 and first:
            loss, acc, st, nf = first_out[0]
        else:
            states, loss, acc, st, nf = draw(fold(k_run, i), states, eps, inv_mass, w_stars, data,
                                             nbeta_a, gamma_a, traj, n_a)
        nonfinite.append(np.asarray(nf).sum(axis=2))
        return loss, acc, st

    def converged(losses):   # every member passes its trend test (or went non-finite)
        excess = nbetas[:, None, None] * (np.concatenate(losses, axis=2) - loss_star_np[:, None, None])
        return all(not np.isfinite(e).all() or lc.trend_test(e).converged for e in excess)

    losses, accepts, steps = lc.draw_until_converged(draw_chunk, chunk, cap, auto, converged, progress)
    loss, accept = np.concatenate(losses, axis=2), np.concatenate(accepts, axis=2)
    steps_per_draw = np.concatenate(steps, axis=2).mean(axis=(1, 2))
    traj = np.asarray(traj, np.float64) if sampler in ("hmc", "mala") else None
    eps, loss_star = np.asarray(eps, np.float64), np.asarray(loss_star, np.float64)
    sampling_s = time.perf_counter() - t0
    results = []
    for j in range(K):
        res = lc.summarize(loss[j], accept[j], eps[j], float(loss_star[j]), nbeta=float(nbetas[j]),
                           gamma=float(gamma), sampler=sampler, num_burnin=int(num_burnin),
                           num_adapt=int(num_adapt), batch_size=batch_size, d=int(d),
                           sampling_s=sampling_s,
                           draws_cap=cap if auto else None, nonfinite=np.sum(nonfinite, axis=0)[j])
        spd = float(steps_per_draw[j]) if np.isfinite(steps_per_draw[j]) else None
        results.append(res._replace(trajectory_length=None if traj is None else float(traj[j]),
                                    steps_per_draw=spd))
    return results


_BATCHED = {}


def clear_caches() -> None:
    """Drop the compiled batch programs kept by :func:`_batched`."""
    _BATCHED.clear()


def _batched(program, in_axes):
    """``jit(vmap(program))`` over the batch axis (on CPU a sequential ``lax.map``,
    :func:`slt.samplers.llc_chains.batch_map`), cached per program and axes (no recompilation when the
    same configuration runs again)."""
    key = (program, in_axes)
    if key not in _BATCHED:
        _BATCHED[key] = jax.jit(llc_chains.batch_map(program, in_axes))
    return _BATCHED[key]


def llc_batch_for_problem(key: jax.Array, problem: Problem, w_stars, *, nbeta: float | None = None,
                          batch_size: int | None = None, **kwargs) -> list:
    """:func:`estimate_llc_batch` for a :class:`Problem` (data shared by all members), wired
    exactly as :func:`slt.estimators.learning_coefficient.llc_for_problem` (linear networks through their
    sufficient statistics; minibatch SGLD when ``batch_size < n``)."""
    return estimate_llc_batch(key, w_stars=w_stars, **lc.problem_arguments(problem, nbeta, batch_size), **kwargs)


def stack(trees: list):
    """Pytrees of identical structure and shapes stacked on a new leading axis (the
    ``data_batched`` form of equal-size data subsets)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def llc_subsets_for_problem(key: jax.Array, subsets: list, w_stars, *, nbeta, **kwargs) -> list:
    """:func:`estimate_llc_batch` over equal-size data subsets (a list of K :class:`Problem`
    with the same shapes), member k on ``subsets[k]``'s data at ``w_stars[k]`` and ``nbeta[k]``
    (or a shared scalar): full-batch samplers, linear networks through their sufficient
    statistics (stacked per subset), as :func:`slt.estimators.learning_coefficient.llc_for_problem`."""
    loss_fn, data = subsets_loss(subsets)
    return estimate_llc_batch(key, loss_fn, w_stars, nbeta=nbeta, n=subsets[0].n, data=data,
                              data_batched=True, **kwargs)


def subsets_loss(subsets: list):
    """``(loss_fn, data)`` of equal-size data subsets (K :class:`Problem` of the same shapes),
    ``data`` stacked on a leading K axis: linear networks through their sufficient statistics
    (as :func:`slt.estimators.learning_coefficient.problem_arguments`), else the problems' L_n."""
    from slt.posterior import has_linear_stats, linear_loss, linear_stats

    sizes = {(p.x.shape, p.y.shape) for p in subsets}
    if len(sizes) != 1:
        raise ValueError(f"subsets must have equal shapes, got {sorted(sizes)}")
    if has_linear_stats(subsets[0]):
        return linear_loss, stack([linear_stats(p) for p in subsets])
    return lc.problem_loss, stack(subsets)
