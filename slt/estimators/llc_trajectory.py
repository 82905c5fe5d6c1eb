"""The local learning coefficient along training (devinterp's main use: the LLC at each
checkpoint shows the stages of development; Lau et al. 2023, arXiv:2308.12108; Hoogland et
al. 2024, "The developmental landscape of in-context learning", arXiv:2402.02364)::

    llc(w_t) = nbeta (E_{w | w_t, nbeta, gamma}[L_n(w)] - L_n(w_t)),   t in the checkpoint steps

The model is trained with Adam or SGD from a seeded N(0, prior_std^2) draw
(:func:`train_checkpoints`), its flat parameters are kept at ``K`` log-spaced steps
(:func:`checkpoint_schedule`), and the LLC at every checkpoint is estimated with the same
sampler settings as :func:`slt.estimators.learning_coefficient.estimate_llc` (w* = the checkpoint as it
is, no refinement).

Speed: all checkpoints' chains run in ONE compiled program (:func:`slt.estimators.llc_batch.estimate_llc_batch`,
re-exported here; lambda_hat's data subsets use the same function): the single-point programs of
:mod:`slt.samplers.llc_chains` are ``vmap``-ed over the checkpoint axis (w* and the keys batched, data,
nbeta and gamma shared), so K checkpoints compile once, not K times.
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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
    ``init`` (default ``prior_std * N(0, I)`` from ``key``, as :func:`slt.estimators.optimize.train`) and
    keep the parameters after each number of steps in ``schedule`` (one ``lax.scan``)."""
    from slt.estimators.optimize import OPTIMIZERS

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
    from slt.estimators.optimize import OPTIMIZERS

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
# one implementation of the LLC at K points in one program, shared with lambda_hat's subsets
from slt.estimators.llc_batch import _batched, estimate_llc_batch, llc_batch_for_problem  # noqa: E402,F401


class Trajectory(NamedTuple):
    """The LLC along training: checkpoints and one :class:`LLCResult` per checkpoint."""

    checkpoints: Checkpoints
    results: list

    def stderr(self) -> np.ndarray:
        """Per checkpoint: the reported standard error (:func:`slt.estimators.llc_summary.stderr`)."""
        from slt.estimators.llc_summary import stderr

        return np.array([np.nan if r.mean is None else stderr(r) for r in self.results])


def llc_trajectory(key: jax.Array, problem: Problem, *, steps: int, learning_rate: float,
                   num_checkpoints: int, optimizer: str = "adam", train_key: jax.Array | None = None,
                   **llc_kwargs) -> Trajectory:
    """Train (:func:`train_checkpoints` from ``train_key``, default ``key``), then the LLC at
    every checkpoint of :func:`checkpoint_schedule` (:func:`llc_batch_for_problem`, ``key``)."""
    ck = train_checkpoints(key if train_key is None else train_key, problem, steps, learning_rate,
                           checkpoint_schedule(steps, num_checkpoints), optimizer)
    return Trajectory(ck, llc_batch_for_problem(key, problem, ck.w, **llc_kwargs))
