"""The local learning coefficient along training (devinterp's main use: the LLC at each
checkpoint shows the stages of development; Lau et al. 2023, arXiv:2308.12108; Hoogland et
al. 2024, "The developmental landscape of in-context learning", arXiv:2402.02364)::

    llc(w_t) = nbeta (E_{w | w_t, nbeta, gamma}[L_n(w)] - L_n(w_t)),   t in the checkpoint steps

The model is trained with Adam or SGD from a seeded N(0, prior_std^2) draw
(:func:`train_checkpoints`), its flat parameters are kept at ``K`` log-spaced steps
(:func:`checkpoint_schedule`), and the LLC at every checkpoint is estimated with the same
sampler settings as :func:`slt.learning_coefficient.estimate_llc` (w* = the checkpoint as it
is, no refinement).

Speed: all checkpoints' chains run in ONE compiled program (:func:`estimate_llc_batch`): the
single-point programs of :mod:`slt.llc_chains` are ``vmap``-ed over the checkpoint axis (w* and
the keys batched, data, nbeta and gamma shared), so K checkpoints compile once, not K times.
``num_draws: "auto"`` advances every checkpoint's chains together, by the same doubling chunks
as the single-point estimator, until every checkpoint passes the trend test or the cap. HMC's
leapfrog loop runs as long as the longest trajectory in the batch (masked for the others).
Measured on 2 CPU cores (benchmarks/llc_trajectory.md) the batch runs at 0.5-1.7x the speed of
a loop over the (equally compiled-once) single-point estimator: the CPU's work grows linearly
with the chains; the batch is built for devices that run it in parallel.

Correspondence: checkpoint ``j`` uses ``key_j = jax.random.fold_in(key, j)``, so with a fixed
``num_draws`` its result equals ``estimate_llc(key_j, loss_fn, w_stars[j], ...)`` up to float
rounding (tests/test_llc_trajectory.py). With ``num_draws: "auto"`` every checkpoint keeps all
the draws the batch ran (possibly more than it alone would have needed).
"""
from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from slt import learning_coefficient as lc
from slt import llc_chains
from slt.posterior import Problem


# ----------------------------------------------------------------------------- training
def checkpoint_schedule(steps: int, num: int) -> np.ndarray:
    """``num`` unique integer steps in ``[1, steps]``, log-spaced (``geomspace(1, steps, num)``
    rounded) and pushed apart where rounding collides; always includes ``1`` and ``steps``."""
    steps, num = int(steps), int(num)
    if num < 2:
        raise ValueError(f"checkpoints: need at least 2, got {num}")
    if num > steps:
        raise ValueError(f"checkpoints: {num} distinct steps do not fit into {steps} training steps")
    s = np.rint(np.geomspace(1, steps, num)).astype(np.int64)
    for i in range(1, num):                 # strictly increasing
        s[i] = max(s[i], s[i - 1] + 1)
    s[-1] = steps
    for i in range(num - 2, -1, -1):        # ... and back under the last step
        s[i] = min(s[i], s[i + 1] - 1)
    return s


class Checkpoints(NamedTuple):
    steps: np.ndarray        # (K,) optimiser steps taken at each checkpoint
    w: jax.Array             # (K, d) flat parameters after that many steps
    loss: np.ndarray         # (K,) L_n at each checkpoint
    loss_trace: np.ndarray   # (steps + 1,) L_n after 0, 1, ..., steps optimiser steps


def train_checkpoints(key: jax.Array, problem: Problem, steps: int, learning_rate: float,
                      schedule, optimizer: str = "adam", init=None) -> Checkpoints:
    """Train with ``optimizer`` (optax ``adam`` or ``sgd``, full batch) for ``steps`` steps from
    ``init`` (default ``prior_std * N(0, I)`` from ``key``, as :func:`slt.optimize.train`) and
    keep the parameters after each number of steps in ``schedule`` (one ``lax.scan``)."""
    from slt.optimize import OPTIMIZERS

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    schedule = np.asarray(schedule, np.int64)
    if schedule.ndim != 1 or len(schedule) == 0 or schedule.min() < 0 or schedule.max() > steps \
            or (np.diff(schedule) <= 0).any():
        raise ValueError(f"schedule must be increasing steps in [0, {steps}], got {schedule}")
    dtype = problem.x.dtype
    w0 = (problem.prior_std * jax.random.normal(key, (problem.d,), dtype) if init is None
          else jnp.asarray(init, dtype))
    slot = np.full(steps + 1, -1, np.int32)
    slot[schedule] = np.arange(len(schedule))
    w, trace = _train_keep(problem, w0, jnp.asarray(slot), int(steps), len(schedule),
                           jnp.asarray(learning_rate, dtype), optimizer)
    trace = np.asarray(trace, np.float64)
    return Checkpoints(schedule, w, trace[schedule], trace)


@jax.jit(static_argnames=("steps", "num", "optimizer"))
def _train_keep(problem, w0, slot, steps, num, learning_rate, optimizer):
    """``(kept (num, d), L_n after 0..steps steps)``; ``slot[t]`` = where w_t goes, or -1."""
    from slt.optimize import OPTIMIZERS

    opt = OPTIMIZERS[optimizer](learning_rate)
    value_and_grad = jax.value_and_grad(problem.loss)

    def keep(kept, w, t):
        j = slot[t]
        return kept.at[jnp.maximum(j, 0)].set(jnp.where(j >= 0, w, kept[jnp.maximum(j, 0)]))

    def step(carry, t):
        w, state, kept = carry
        value, g = value_and_grad(w)           # L_n(w_t), then the update to w_{t+1}
        kept = keep(kept, w, t)
        updates, state = opt.update(g, state, w)
        return (optax.apply_updates(w, updates), state, kept), value

    kept = jnp.zeros((num, w0.shape[0]), w0.dtype)
    (w, _, kept), trace = jax.lax.scan(step, (w0, opt.init(w0), kept), jnp.arange(steps))
    kept = keep(kept, w, steps)
    return kept, jnp.concatenate([trace, problem.loss(w)[None]])


# ----------------------------------------------------------------------------- batched LLC
def estimate_llc_batch(key: jax.Array, loss_fn: Callable, w_stars, *, nbeta: float | None = None,
                       n: int | None = None, data=None, gamma: float = 1.0, sampler: str = "hmc",
                       num_chains: int = 8, num_draws: int | str = "auto", max_draws: int | None = None,
                       num_burnin: int | None = None, num_adapt: int | None = None,
                       step_size: float | None = None, target_accept: float | None = None,
                       batch_loss_fn: Callable | None = None, batch_size: int | None = None,
                       max_tree_depth: int = 8, trajectory_length: float | None = None,
                       max_steps: int = lc.HMC_MAX_STEPS, progress: Callable | None = None,
                       data_axes=None) -> list:
    """:func:`slt.learning_coefficient.estimate_llc` at every row of ``w_stars`` (K, d) in one
    compiled program; returns K :class:`LLCResult`. Arguments as there (``loss_fn(w, data)``;
    ``data`` is shared by all checkpoints unless ``data_axes``, a ``vmap`` in_axes prefix of
    ``data``, batches parts of it over the K axis: e.g. ``(None, 0, None)`` for the weight
    masks of :func:`slt.restricted.per_layer_llc`); checkpoint ``j`` runs on ``fold_in(key, j)``.
    ``sampling_s`` of every result is the wall time of the whole batch."""
    if sampler not in lc.SAMPLERS:
        raise ValueError(f"sampler must be one of {lc.SAMPLERS}, got {sampler!r}")
    w_stars = jnp.asarray(w_stars, jnp.result_type(float))
    if w_stars.ndim != 2:
        raise ValueError(f"w_stars must be (num_checkpoints, d), got shape {w_stars.shape}")
    loss_fn, nbeta, auto, chunk, cap, num_burnin, num_adapt, target_accept = lc.resolve_settings(
        sampler, loss_fn, data, batch_loss_fn, batch_size, nbeta, n, gamma, num_draws, max_draws,
        num_burnin, num_adapt, step_size, target_accept)       # the same checks and defaults as estimate_llc
    K, d = w_stars.shape
    dtype = w_stars.dtype
    ndev = lc._num_devices_for(num_chains)
    ckpt_keys = jax.vmap(lambda j: jax.random.fold_in(key, j))(jnp.arange(K))
    pair = jax.vmap(jax.random.split)(ckpt_keys)          # as estimate_llc splits its key
    k_curv, k_run = pair[:, 0], pair[:, 1]
    keys = jax.vmap(lambda k: jax.random.split(k, num_chains))(k_run)           # (K, C)
    eps0 = jnp.full((K, num_chains), jnp.nan if step_size is None else step_size, dtype)
    nbeta_a, gamma_a = jnp.asarray(nbeta, dtype), jnp.asarray(gamma, dtype)
    t0 = time.perf_counter()
    traj = steps_per_draw = None
    if sampler in lc.RESUMABLE:
        warm = _batched(llc_chains.warmup_program(sampler, loss_fn, int(num_adapt), int(num_burnin),
                                                  float(target_accept), int(max_steps), ndev),
                        (0, 0, 0, data_axes, None, None, 0, None))
        given_t = jnp.asarray(math.nan if trajectory_length is None else trajectory_length, dtype)
        states, eps, inv_mass, traj, loss_star = warm(keys, eps0, w_stars, data, nbeta_a, gamma_a,
                                                      k_curv, given_t)
        draw = _batched(llc_chains.draw_program(sampler, loss_fn, int(chunk), int(max_steps), ndev),
                        (0, 0, 0, 0, 0, data_axes, None, None, 0))
        fold = jax.jit(jax.vmap(lambda k, i: jax.random.split(jax.random.fold_in(k, 1000 + i), num_chains),
                                in_axes=(0, None)))
        loss_star_np = np.asarray(loss_star, np.float64)
        nonfinite = []   # per chunk, (K, C) transitions that met a NaN of the model

        def draw_chunk(i):
            nonlocal states
            states, loss, acc, st, nf = draw(fold(k_run, i), states, eps, inv_mass, w_stars, data,
                                             nbeta_a, gamma_a, traj)
            nonfinite.append(np.asarray(nf).sum(axis=2))
            return loss, acc, st

        def converged(losses):   # every checkpoint passes its trend test (or went non-finite)
            excess = float(nbeta) * (np.concatenate(losses, axis=2) - loss_star_np[:, None, None])
            return all(not np.isfinite(e).all() or lc.trend_test(e).converged for e in excess)

        losses, accepts, steps = lc.draw_until_converged(draw_chunk, chunk, cap, auto, converged, progress)
        loss, accept = np.concatenate(losses, axis=2), np.concatenate(accepts, axis=2)
        steps_per_draw = np.concatenate(steps, axis=2).mean(axis=(1, 2))
        traj = np.asarray(traj, np.float64)
    else:
        program = _batched(lc._program(sampler, loss_fn, batch_loss_fn, int(num_adapt), int(num_burnin),
                                       int(chunk), batch_size, float(target_accept), int(max_tree_depth),
                                       ndev),
                           (0, 0, 0, data_axes, None, None, None, 0))
        loss, accept, eps, loss_star = program(keys, eps0, w_stars, data, nbeta_a, gamma_a,
                                               jnp.asarray(n or 1, jnp.int32), k_curv)
        loss, accept = np.asarray(jax.block_until_ready(loss), np.float64), np.asarray(accept, np.float64)
        steps_per_draw = np.full(K, 1.0 if sampler != "nuts" else np.nan)
    eps, loss_star = np.asarray(eps, np.float64), np.asarray(loss_star, np.float64)
    sampling_s = time.perf_counter() - t0
    results = []
    for j in range(K):
        res = lc.summarize(loss[j], accept[j], eps[j], float(loss_star[j]), nbeta=float(nbeta),
                           gamma=float(gamma), sampler=sampler, num_burnin=int(num_burnin),
                           num_adapt=int(num_adapt), batch_size=batch_size, d=int(d),
                           sampling_s=sampling_s,
                           draws_cap=cap if auto and sampler in lc.RESUMABLE else None,
                           nonfinite=np.sum(nonfinite, axis=0)[j] if sampler in lc.RESUMABLE else None)
        spd = float(steps_per_draw[j]) if np.isfinite(steps_per_draw[j]) else None
        results.append(res._replace(trajectory_length=None if traj is None else float(traj[j]),
                                    steps_per_draw=spd))
    return results


_BATCHED = {}


def _batched(program, in_axes):
    """``jit(vmap(program))`` over the checkpoint axis, cached per program (no recompilation
    when the same configuration runs again)."""
    key = (program, in_axes)
    if key not in _BATCHED:
        _BATCHED[key] = jax.jit(jax.vmap(program, in_axes=in_axes))
    return _BATCHED[key]


def llc_batch_for_problem(key: jax.Array, problem: Problem, w_stars, *, nbeta: float | None = None,
                          batch_size: int | None = None, **kwargs) -> list:
    """:func:`estimate_llc_batch` for a :class:`Problem`, wired exactly as
    :func:`slt.learning_coefficient.llc_for_problem` (linear networks through their sufficient
    statistics; minibatch SGLD when ``batch_size < n``)."""
    return estimate_llc_batch(key, w_stars=w_stars, **lc.problem_arguments(problem, nbeta, batch_size), **kwargs)


class Trajectory(NamedTuple):
    """The LLC along training: checkpoints and one :class:`LLCResult` per checkpoint."""

    checkpoints: Checkpoints
    results: list

    def stderr(self) -> np.ndarray:
        """Per checkpoint: max(MCSE, between-chain standard error), as the llc stage reports."""
        return np.array([np.nan if r.mean is None else
                         max(r.mcse or 0.0, (r.std or 0.0) / math.sqrt(r.num_chains))
                         for r in self.results])


def llc_trajectory(key: jax.Array, problem: Problem, *, steps: int, learning_rate: float,
                   num_checkpoints: int, optimizer: str = "adam", train_key: jax.Array | None = None,
                   **llc_kwargs) -> Trajectory:
    """Train (:func:`train_checkpoints` from ``train_key``, default ``key``), then the LLC at
    every checkpoint of :func:`checkpoint_schedule` (:func:`llc_batch_for_problem`, ``key``)."""
    ck = train_checkpoints(key if train_key is None else train_key, problem, steps, learning_rate,
                           checkpoint_schedule(steps, num_checkpoints), optimizer)
    return Trajectory(ck, llc_batch_for_problem(key, problem, ck.w, **llc_kwargs))
