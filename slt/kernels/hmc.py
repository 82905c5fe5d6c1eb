"""Fixed-length HMC with a jittered step size and a diagonal metric (the one HMC transition).

One transition: momentum ``p ~ N(0, M)``, ``num_steps`` leapfrog steps
(:func:`slt.kernels.integrators.leapfrog`) of size ``h = eps u``, ``u ~ U[1 - JITTER, 1 + JITTER]``
(varies the trajectory length and avoids periodic orbits, Neal 2011, "MCMC using Hamiltonian
dynamics", 5.4.2.2), then Metropolis on the total energy; a step and a length drawn
independently of the state keep the chain exact (Bou-Rabee & Sanz-Serna 2017). Energy errors
above ``DIVERGENCE`` count as divergent.

``jitter`` defaults to ``JITTER = 0.5`` (read when the step is traced; fixed ``num_steps``:
tempered grid, replica, SMC); the LLC passes 0.2 (:mod:`slt.kernels.localized_hmc`). Why two
values (issue 19 asked for one; both measured): the fixed grid at its default 4 leapfrog steps
walks about half an oscillation of a near-Gaussian ``n L_n``, which +-20% keeps near pi and
+-50% spreads out: ESS per gradient 2.7x lower at 0.2 on linear regression (20 seeds, against the
exact per-beta means), 13% lower on the ReLU posterior; replica (16 steps) and SMC equal within
their errors (``benchmarks/jitter_tempered.md``). The LLC at 0.5 mixes as well (variance per
gradient 0.90-1.06x on four models) but its control-variate error bars on ``x w1 w2^2`` at 500
draws were overconfident in 2 of 12 seeds at |z| 5.2 (at 0.2: |z| 3.4-3.5), so the LLC keeps 0.2
(``benchmarks/llc_jitter.md``).

Multi-scale steps (``max_steps``, the LLC's kernel, :mod:`slt.kernels.localized_hmc`): with probability
``SMALL_STEP_PROB`` a transition takes ``h = eps / max_steps^u`` (u the jitter's uniform) and
``ceil(num_steps eps / h)`` steps, at most ``max_steps``. ``watch_nonfinite`` reports whether
``L_n`` or its gradient was NaN at a finite point of a calm trajectory (:mod:`slt.samplers.health`).

Not blackjax 1.7.1's ``hmc`` (measured no faster: 4.29 vs 4.30 s, 64 chains x 500 transitions x
8 steps, relu posterior, CPU): it has no jitter, multi-scale step, NaN flag or ``L_n`` slot. One
normal draw of ``d + 2`` (``d + 3`` multi-scale) numbers per transition (threefry compile time).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from slt.kernels.integrators import State, kinetic_energy, leapfrog, model_nan

JITTER = 0.5
SMALL_STEP_PROB = 0.5   # share of multi-scale transitions with a log-uniform small step
DIVERGENCE = 1000.0     # energy error counted as a divergence


class HMCInfo(NamedTuple):
    accept_prob: jax.Array   # Metropolis acceptance probability
    diverging: jax.Array     # energy error > DIVERGENCE
    num_steps: jax.Array     # leapfrog steps of the transition
    nonfinite: jax.Array     # the model was NaN at a finite point of a calm trajectory
    small_step: jax.Array    # a multi-scale small-step transition (not for step adaptation)


def init(position, target: Callable) -> State:
    return target(position)


def step(key, state: State, target: Callable, step_size, num_steps, inv_mass=None, *,
         jitter: float | None = None, max_steps: int | None = None,
         watch_nonfinite: bool = False) -> tuple[State, HMCInfo]:
    """One transition on ``target`` (``position -> State``); ``inv_mass`` the diagonal ``M^-1``
    (None: the identity); ``jitter`` None: ``JITTER`` as it is when traced; ``max_steps``:
    multi-scale steps (module docstring)."""
    jitter = JITTER if jitter is None else jitter
    d = state.position.shape[0]
    z = jax.random.normal(key, (d + 2 + (max_steps is not None),), state.position.dtype)
    u_jitter, u_accept = jax.scipy.special.ndtr(z[d]), jax.scipy.special.ndtr(z[d + 1])
    h = step_size * (1.0 - jitter + 2.0 * jitter * u_jitter)
    small = jnp.zeros((), bool)
    if max_steps is not None and max_steps > 1:
        small = jax.scipy.special.ndtr(z[d + 2]) < SMALL_STEP_PROB
        h = jnp.where(small, step_size * jnp.exp(-math.log(max_steps) * u_jitter), h)
        more = jnp.ceil(num_steps * step_size / h).astype(num_steps.dtype)
        num_steps = jnp.where(small, jnp.clip(more, 1, max_steps), num_steps)
    p0 = z[:d] if inv_mass is None else z[:d] / jnp.sqrt(inv_mass)
    energy0 = kinetic_energy(p0, inv_mass) - state.logdensity

    def calm_nan(s, p, new):
        # a NaN right after a step that was not diverging is the model's, not an overflow of a
        # diverging trajectory (those go through huge finite energies first)
        calm = jnp.abs(kinetic_energy(p, inv_mass) - s.logdensity - energy0) < DIVERGENCE
        return calm & model_nan(new)

    new, p, nonfinite = leapfrog(target, state, p0, h, num_steps, inv_mass,
                                 calm_nan if watch_nonfinite else None)
    delta = (new.logdensity - kinetic_energy(p, inv_mass)) - (state.logdensity - kinetic_energy(p0, inv_mass))
    delta = jnp.where(jnp.isfinite(delta), delta, -jnp.inf)
    accept_prob = jnp.exp(jnp.minimum(delta, 0.0))
    accept = u_accept < accept_prob
    state = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, state)
    return state, HMCInfo(accept_prob, delta < -DIVERGENCE, num_steps, nonfinite, small)
