"""The target's state and the one integrator: leapfrog (velocity Verlet) with a diagonal metric.

Velocity Verlet for ``H(w, p) = -log pi(w) + p^T M^-1 p / 2`` (Leimkuhler & Reich 2004; Neal
2011, "MCMC using Hamiltonian dynamics", eq. 5.18-5.20), one step of size ``h``::

    p <- p + (h/2) grad log pi(w);   w <- w + h M^-1 p;   p <- p + (h/2) grad log pi(w)

one gradient per step (carried in :class:`State`). Not blackjax 1.7.1's ``velocity_verlet``: its
state has no slot for ``L_n``, recorded at every draw (a second forward pass otherwise), and the
LLC's kernel looks at every step (``flag_fn``).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class State(NamedTuple):
    """A position with the target's values at it (what every kernel carries)."""

    position: jax.Array     # (d,)
    logdensity: jax.Array   # log pi(position), unnormalised
    grad: jax.Array         # (d,) grad log pi(position)
    loss: jax.Array         # L_n(position) (the minibatch loss for minibatch SGLD)


def model_nan(state: State) -> jax.Array:
    """``L`` or its gradient is NaN at a finite position: a hole in the target (:mod:`slt.samplers.health`
    withholds the estimate) when reached from a calm state; a diverging trajectory can also
    overflow into NaN (inf - inf), which :func:`slt.kernels.hmc.step` tells apart by the energy error before it."""
    return (jnp.all(jnp.isfinite(state.position))
            & (jnp.isnan(state.loss) | jnp.any(jnp.isnan(state.grad))))


def kinetic_energy(momentum, inv_mass=None):
    """``p^T M^-1 p / 2`` for a diagonal ``inv_mass`` (None: the identity)."""
    if inv_mass is None:
        return 0.5 * jnp.vdot(momentum, momentum)
    return 0.5 * jnp.sum(inv_mass * momentum ** 2)


def leapfrog(target: Callable, state: State, momentum, step_size, num_steps, inv_mass=None,
             flag_fn: Callable | None = None):
    """``num_steps`` velocity-Verlet steps (a ``fori_loop``) from ``(state, momentum)``.

    ``flag_fn(state, momentum, new_state) -> bool``, evaluated after every step, is OR-ed over the
    trajectory (False without it). Returns ``(state, momentum, flag)``."""
    def body(_, carry):
        s, p, flag = carry
        p_half = p + 0.5 * step_size * s.grad
        w = s.position + (step_size * p_half if inv_mass is None else step_size * inv_mass * p_half)
        new = target(w)
        if flag_fn is not None:
            flag = flag | flag_fn(s, p, new)
        return new, p_half + 0.5 * step_size * new.grad, flag

    return jax.lax.fori_loop(0, num_steps, body, (state, momentum, jnp.asarray(False)))
