"""Adaptation, each written once: dual averaging, Welford's variance, Stan's regularised metric.

Dual averaging (Nesterov 2009; Hoffman & Gelman 2014, Algorithm 5) on ``log eps`` towards a
target acceptance ``delta``, ``mu = log(10 eps0)``, ``gamma = 0.05, t0 = 10, kappa = 0.75``::

    H_t = (1 - w) H_{t-1} + w (delta - a_t),  w = 1/(t + t0);   log eps_t = mu - sqrt(t) H_t / gamma
    log eps_bar_t = t^-kappa log eps_t + (1 - t^-kappa) log eps_bar_{t-1}     (the final step)

Welford (1962) keeps a running mean and ``M2``; Stan's regularised diagonal metric after ``m``
draws is ``M^-1 = (m/(m+5)) var + 1e-3 (5/(m+5))``. The updates take any NamedTuple with the
fields they name (``_replace``), so :class:`WindowAdaptState` carries both, flat.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class DualAveragingState(NamedTuple):
    log_step: jax.Array       # log eps_t (the step while adapting)
    log_step_avg: jax.Array   # log eps_bar_t (the step after)
    h_bar: jax.Array
    mu: jax.Array
    t: jax.Array


class WelfordState(NamedTuple):
    count: jax.Array
    mean: jax.Array           # (d,)
    m2: jax.Array             # (d,) sum of squared deviations


class WindowAdaptState(NamedTuple):
    """Dual averaging, the diagonal inverse mass (d,) and Welford in one flat state."""

    log_step: jax.Array
    log_step_avg: jax.Array
    h_bar: jax.Array
    mu: jax.Array
    t: jax.Array
    inv_mass: jax.Array
    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def dual_averaging_init(step_size) -> DualAveragingState:
    log0 = jnp.log(step_size)
    z = jnp.zeros_like(log0)
    return DualAveragingState(log0, log0, z, jnp.log(10.0) + log0, z)


def dual_averaging_update(state, accept_prob, target, gamma=0.05, t0=10.0, kappa=0.75):
    """One dual-averaging step (module docstring); ``state`` any NamedTuple with the fields of
    :class:`DualAveragingState`."""
    accept_prob = jnp.where(jnp.isnan(accept_prob), 0.0, accept_prob)
    t = state.t + 1
    w = 1.0 / (t + t0)
    h_bar = (1 - w) * state.h_bar + w * (target - accept_prob)
    log_step = state.mu - jnp.sqrt(t) / gamma * h_bar
    eta = t ** (-kappa)
    log_step_avg = eta * log_step + (1 - eta) * state.log_step_avg
    return state._replace(log_step=log_step, log_step_avg=log_step_avg, h_bar=h_bar, t=t)


def welford_init(position) -> WelfordState:
    return WelfordState(jnp.zeros((), position.dtype), jnp.zeros_like(position), jnp.zeros_like(position))


def welford_update(state, x):
    """Add ``x`` to the running mean and ``M2``; ``state`` any NamedTuple with the fields of
    :class:`WelfordState`."""
    count = state.count + 1
    delta = x - state.mean
    mean = state.mean + delta / count
    return state._replace(count=count, mean=mean, m2=state.m2 + delta * (x - mean))


def regularized_inv_mass(state):
    """Stan's regularised variance ``(m/(m+5)) var + 1e-3 (5/(m+5))`` of a Welford state."""
    m = state.count
    var = state.m2 / jnp.maximum(m - 1, 1)
    return (m / (m + 5)) * var + 1e-3 * (5 / (m + 5))


def window_init(step_size, d: int, dtype) -> WindowAdaptState:
    ones = jnp.ones((d,), dtype)
    return WindowAdaptState(*dual_averaging_init(jnp.asarray(step_size, dtype)), ones, *welford_init(jnp.zeros((d,), dtype)))


def mass_switch(state: WindowAdaptState) -> WindowAdaptState:
    """End of a Welford window (HMC): the inverse mass becomes :func:`regularized_inv_mass`, the
    step is rescaled to the new metric, ``eps_bar sqrt(mean(1/M^-1_new) mean(M^-1_old))``, and dual
    averaging and Welford restart from there."""
    inv_mass = regularized_inv_mass(state)
    log_step = state.log_step_avg + 0.5 * jnp.log(jnp.mean(1.0 / inv_mass) * jnp.mean(state.inv_mass))
    return window_init(jnp.exp(log_step), inv_mass.shape[0], inv_mass.dtype)._replace(inv_mass=inv_mass)
