"""Langevin kernels for the localised tempered posterior: SGLD and MALA (blackjax-style).

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

Each kernel is ``init(w, ...) -> state`` and ``step(key, state, ...) -> (state, info)`` for
ONE chain; the estimator vmaps them over chains and scans them over draws. The loss function
has the signature ``loss_fn(w, data)`` (``batch_loss_fn(w, data, idx)`` for minibatches),
with ``data`` a pytree passed as an argument so new data never recompiles.

Step-size adaptation: dual averaging (Nesterov 2009; Hoffman & Gelman 2014, Alg. 5) of
``log eps`` towards a target acceptance (0.574 is MALA's optimum for Gaussian-like targets,
Roberts & Rosenthal 1998; the estimator uses 0.8, see :mod:`slt.learning_coefficient`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

GAUSSIAN_OPTIMAL_ACCEPT = 0.574  # MALA's optimum for Gaussian-like targets (Roberts & Rosenthal 1998)


class LangevinState(NamedTuple):
    """One chain: position and the quantities of the target at it."""

    w: jax.Array            # (d,)
    loss: jax.Array         # L(w) (the minibatch loss for minibatch SGLD)
    logdensity: jax.Array   # log pi(w)
    grad: jax.Array         # (d,) grad log pi(w)


class SGLDState(NamedTuple):
    """SGLD chain: the current position and the previous state (for the acceptance estimate)."""

    w: jax.Array
    prev: LangevinState
    prev_eps: jax.Array     # step size of the move prev -> w
    started: jax.Array      # bool: prev holds a real state


class StepInfo(NamedTuple):
    loss: jax.Array         # L at the recorded position
    accept_prob: jax.Array  # MH acceptance probability (MALA), or its estimate (SGLD)
    nonfinite: jax.Array | None = None   # MALA: the proposal's log density or gradient was NaN/inf


def evaluate(loss_fn: Callable, w, data, w_star, nbeta, gamma) -> LangevinState:
    """``L(w)``, ``log pi(w)`` and ``grad log pi(w)`` with one value-and-grad pass."""
    loss, grad_loss = jax.value_and_grad(loss_fn)(w, data)
    diff = w - w_star
    logdensity = -nbeta * loss - 0.5 * gamma * jnp.vdot(diff, diff)
    return LangevinState(w, loss, logdensity, -nbeta * grad_loss - gamma * diff)


def model_nan(state: LangevinState) -> jax.Array:
    """``L`` or its gradient is NaN at a finite position: a hole in the target (:mod:`slt.health`
    withholds the estimate) when it is reached from a calm state; a diverging trajectory can also
    overflow into NaN (inf - inf), which the HMC kernel tells apart by the energy error before it."""
    return jnp.all(jnp.isfinite(state.w)) & (jnp.isnan(state.loss) | jnp.any(jnp.isnan(state.grad)))


def _log_q(to, frm: LangevinState, eps, inv_mass=1.0):
    """log N(to; frm.w + (eps/2) M^-1 grad log pi(frm.w), eps M^-1), up to a constant."""
    r = to - frm.w - 0.5 * eps * inv_mass * frm.grad
    return -0.5 * jnp.sum(r * r / inv_mass) / eps


def mh_accept_prob(old: LangevinState, new: LangevinState, eps, inv_mass=1.0):
    """Metropolis-Hastings acceptance probability of the Langevin move old -> new
    (diagonal preconditioner ``inv_mass``; 1 for plain Langevin)."""
    log_ratio = (new.logdensity - old.logdensity + _log_q(old.w, new, eps, inv_mass)
                 - _log_q(new.w, old, eps, inv_mass))
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    return jnp.exp(jnp.minimum(log_ratio, 0.0))


# ----------------------------------------------------------------------------- MALA
def mala_init(loss_fn, w, data, w_star, nbeta, gamma) -> LangevinState:
    return evaluate(loss_fn, w, data, w_star, nbeta, gamma)


def mala_step(key, state: LangevinState, eps, loss_fn, data, w_star, nbeta, gamma, inv_mass=1.0):
    """One MALA transition; ``info.loss`` is L at the new state. With a diagonal preconditioner
    ``inv_mass`` (M^-1) the proposal is ``w + (eps/2) M^-1 grad log pi + N(0, eps M^-1)``."""
    k_noise, k_accept = jax.random.split(key)
    noise = jax.random.normal(k_noise, state.w.shape, state.w.dtype)
    proposal = state.w + 0.5 * eps * inv_mass * state.grad + jnp.sqrt(eps * inv_mass) * noise
    new = evaluate(loss_fn, proposal, data, w_star, nbeta, gamma)
    accept_prob = mh_accept_prob(state, new, eps, inv_mass)
    accept = jax.random.uniform(k_accept, dtype=accept_prob.dtype) < accept_prob
    state = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, state)
    nonfinite = model_nan(new)
    return state, StepInfo(state.loss, accept_prob, nonfinite)


# ----------------------------------------------------------------------------- SGLD
def sgld_init(w) -> SGLDState:
    z = jnp.zeros((), w.dtype)
    prev = LangevinState(w, z, z, jnp.zeros_like(w))
    return SGLDState(w, prev, jnp.ones((), w.dtype), jnp.asarray(False))


def sgld_step(key, state: SGLDState, eps, loss_fn, data, w_star, nbeta, gamma,
              batch_loss_fn=None, n=None, batch_size=None):
    """One SGLD step from ``state.w``; ``info.loss`` is the (minibatch) loss AT ``state.w``
    (before the move, as devinterp records it) and ``info.accept_prob`` the MH acceptance
    probability of the previous move (prev -> state.w), evaluated with the values at both ends.
    Minibatch indices are drawn uniformly with replacement from ``key``."""
    k_batch, k_noise = jax.random.split(key)
    if batch_size is None:
        cur = evaluate(loss_fn, state.w, data, w_star, nbeta, gamma)
    else:
        idx = jax.random.randint(k_batch, (batch_size,), 0, n)
        cur = evaluate(lambda w, d: batch_loss_fn(w, d, idx), state.w, data, w_star, nbeta, gamma)
    accept_prob = jnp.where(state.started, mh_accept_prob(state.prev, cur, state.prev_eps), jnp.nan)
    noise = jax.random.normal(k_noise, state.w.shape, state.w.dtype)
    w_new = state.w + 0.5 * eps * cur.grad + jnp.sqrt(eps) * noise
    return SGLDState(w_new, cur, jnp.asarray(eps, w_new.dtype), jnp.asarray(True)), StepInfo(cur.loss, accept_prob)


# ----------------------------------------------------------------------------- adaptation
class DualAveraging(NamedTuple):
    log_eps: jax.Array
    log_eps_bar: jax.Array
    h_bar: jax.Array
    t: jax.Array
    mu: jax.Array


def da_init(eps0) -> DualAveraging:
    log0 = jnp.log(eps0)
    z = jnp.zeros_like(log0)
    return DualAveraging(log0, log0, z, z, jnp.log(10.0) + log0)


def da_update(state: DualAveraging, accept_prob, target, t0=10.0, gamma=0.05, kappa=0.75):
    """Hoffman & Gelman (2014) Algorithm 5 on log eps; ``accept_prob`` NaN-safe."""
    accept_prob = jnp.where(jnp.isnan(accept_prob), 0.0, accept_prob)
    t = state.t + 1
    w = 1.0 / (t + t0)
    h_bar = (1 - w) * state.h_bar + w * (target - accept_prob)
    log_eps = state.mu - jnp.sqrt(t) / gamma * h_bar
    eta = t ** (-kappa)
    log_eps_bar = eta * log_eps + (1 - eta) * state.log_eps_bar
    return DualAveraging(log_eps, log_eps_bar, h_bar, t, state.mu)
