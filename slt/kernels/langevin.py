"""Langevin kernels: MALA and SGLD (for the localised posterior of the LLC).

Target (Lau et al. 2023, arXiv:2308.12108)::

    log pi(w) = -nbeta L(w) - (gamma/2) ||w - w*||^2

Both kernels share the Langevin proposal with step size ``eps`` (devinterp's ``lr``)::

    w' = w + (eps/2) grad log pi(w) + sqrt(eps) xi,      xi ~ N(0, I)
       = w - (eps/2) (nbeta grad L(w) + gamma (w - w*)) + N(0, eps)

* **SGLD** (Welling & Teh 2011) takes every proposal; ``grad L`` may come from a minibatch.
  Its stationary law is biased by O(eps). We also report the Metropolis-Hastings acceptance
  probability the move *would* have had (devinterp's ``MalaAcceptanceRate``), computed from
  the values at consecutive states, so no extra gradient is needed.
* **MALA** (Roberts & Tweedie 1996) accepts ``w'`` with probability
  ``min(1, pi(w') q(w | w') / (pi(w) q(w' | w)))``, ``q(a | b) = N(a; b + (eps/2) grad log pi(b), eps I)``:
  exact for any step size (full-batch gradients only).

Each kernel is ``init(position, target) -> state`` and ``step(key, state, target, eps, ...) ->
(state, info)`` for ONE chain, ``target`` a function ``position -> State``
(:func:`slt.posterior.localized_target`); the estimator vmaps them over chains and scans them
over draws. Step-size adaptation: :mod:`slt.kernels.adaptation` (0.574 is MALA's optimum for
Gaussian-like targets, Roberts & Rosenthal 1998; the estimator uses 0.8).

Not blackjax 1.7.1's ``mala``/``sgld``: its MALA (measured the same speed, 2.4-2.7 s both, 64
chains x 2000 steps, relu posterior, CPU) has no diagonal preconditioner and no NaN flag; its
SGLD reports no acceptance estimate; neither records ``L_n`` at each draw.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from slt.kernels.integrators import State, model_nan

GAUSSIAN_OPTIMAL_ACCEPT = 0.574  # MALA's optimum for Gaussian-like targets (Roberts & Rosenthal 1998)


class SGLDState(NamedTuple):
    """SGLD chain: the current position and the previous state (for the acceptance estimate)."""

    position: jax.Array
    prev: State
    prev_eps: jax.Array     # step size of the move prev -> position
    started: jax.Array      # bool: prev holds a real state


class LangevinInfo(NamedTuple):
    loss: jax.Array         # L at the recorded position
    accept_prob: jax.Array  # MH acceptance probability (MALA), or its estimate (SGLD)
    nonfinite: jax.Array | None = None   # MALA: the proposal's log density or gradient was NaN/inf


def _log_q(to, frm: State, eps, inv_mass=1.0):
    """log N(to; frm + (eps/2) M^-1 grad log pi(frm), eps M^-1), up to a constant."""
    r = to - frm.position - 0.5 * eps * inv_mass * frm.grad
    return -0.5 * jnp.sum(r * r / inv_mass) / eps


def mh_accept_prob(old: State, new: State, eps, inv_mass=1.0):
    """Metropolis-Hastings acceptance probability of the Langevin move old -> new
    (diagonal preconditioner ``inv_mass``; 1 for plain Langevin)."""
    log_ratio = (new.logdensity - old.logdensity + _log_q(old.position, new, eps, inv_mass)
                 - _log_q(new.position, old, eps, inv_mass))
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    return jnp.exp(jnp.minimum(log_ratio, 0.0))


# ----------------------------------------------------------------------------- MALA
def mala_init(position, target: Callable) -> State:
    return target(position)


def mala_step(key, state: State, target: Callable, eps, inv_mass=1.0) -> tuple[State, LangevinInfo]:
    """One MALA transition; ``info.loss`` is L at the new state. With a diagonal preconditioner
    ``inv_mass`` (M^-1) the proposal is ``w + (eps/2) M^-1 grad log pi + N(0, eps M^-1)``."""
    k_noise, k_accept = jax.random.split(key)
    w = state.position
    noise = jax.random.normal(k_noise, w.shape, w.dtype)
    new = target(w + 0.5 * eps * inv_mass * state.grad + jnp.sqrt(eps * inv_mass) * noise)
    accept_prob = mh_accept_prob(state, new, eps, inv_mass)
    accept = jax.random.uniform(k_accept, dtype=accept_prob.dtype) < accept_prob
    state = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, state)
    return state, LangevinInfo(state.loss, accept_prob, model_nan(new))


# ----------------------------------------------------------------------------- SGLD
def sgld_init(position) -> SGLDState:
    z = jnp.zeros((), position.dtype)
    prev = State(position, z, jnp.zeros_like(position), z)
    return SGLDState(position, prev, jnp.ones((), position.dtype), jnp.asarray(False))


def sgld_step(key, state: SGLDState, target: Callable, eps, batch_target: Callable | None = None,
              n=None, batch_size=None) -> tuple[SGLDState, LangevinInfo]:
    """One SGLD step from ``state.position``; ``info.loss`` is the (minibatch) loss AT
    ``state.position`` (before the move, as devinterp records it) and ``info.accept_prob`` the MH
    acceptance probability of the previous move (prev -> state.position), evaluated with the
    values at both ends. Minibatches: ``batch_size`` indices drawn uniformly with replacement
    from ``[0, n)``, ``batch_target(idx)`` the target on them."""
    k_batch, k_noise = jax.random.split(key)
    if batch_size is None:
        cur = target(state.position)
    else:
        cur = batch_target(jax.random.randint(k_batch, (batch_size,), 0, n))(state.position)
    accept_prob = jnp.where(state.started, mh_accept_prob(state.prev, cur, state.prev_eps), jnp.nan)
    noise = jax.random.normal(k_noise, state.position.shape, state.position.dtype)
    w_new = state.position + 0.5 * eps * cur.grad + jnp.sqrt(eps) * noise
    return (SGLDState(w_new, cur, jnp.asarray(eps, w_new.dtype), jnp.asarray(True)),
            LangevinInfo(cur.loss, accept_prob))
