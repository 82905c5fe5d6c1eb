"""HMC for the localised posterior, with trajectories as long as its flattest direction.

Target (Lau et al. 2023, arXiv:2308.12108)::

    log pi(w) = -nbeta L(w) - (gamma/2) ||w - w*||^2

Why a kernel of its own. At a degenerate minimum the localised posterior has directions of
curvature ``nbeta x h`` (h an eigenvalue of the Hessian of L, so 1e3-1e5) and directions along
which L is flat and only the localisation ``gamma`` holds the chain (curvature exactly gamma).
A Langevin step (MALA, SGLD) must be small enough for the stiff directions, so it crosses a
flat direction of width ``1/sqrt(gamma)`` by a random walk of ``~ nbeta h / gamma`` steps:
thousands of draws per independent sample, which is why MALA's LLC on deep linear networks
was still drifting after 80,000 draws. Hamiltonian trajectories move ballistically instead:
with unit mass, a trajectory of length ``T = (pi/2) / sqrt(kappa_min)`` (a quarter period of the
softest direction, curvature ``kappa_min``) takes a flat direction from one side of the
posterior to the other in one transition, and costs ``T / eps ~ sqrt(nbeta h / gamma)``
gradients: the square root of MALA's cost (Neal 2011, "MCMC using Hamiltonian dynamics",
section 4.4.1).

``kappa_min = gamma + nbeta max(h_min, 0)`` is known before sampling: ``gamma`` exactly, and
``h_min`` from power iteration on the Hessian at w* (0 at a singular point, so kappa_min =
gamma; it matters only for ``gamma = 0``, the regular check). The number of leapfrog steps is
``ceil(T / eps)`` (at most ``max_steps``), recomputed from the adapted step size, and the step
size is jittered uniformly in ``[1 - JITTER, 1 + JITTER] x eps`` each transition, which jitters
the trajectory length with it and avoids periodic orbits (Neal 2011, 5.4.2.2); see also
"Multi-scale steps" below. The mass matrix
is the identity on purpose: the flat directions' scale is set by gamma in these coordinates,
whereas a mass matrix estimated during warmup under-estimates exactly the directions that have
not yet been explored.

Multi-scale steps (issue 18). On a higher-order singularity the stiffness is not one number:
on ``u = w1^a w2^b`` the curvature across an arm of the cross grows like ``nbeta |w2|^(2b)``
along it, so a leapfrog step adapted to 0.8 acceptance where the mass is (near w*) is unstable
(``eps^2 kappa(w) > 4``) beyond some radius of every arm, and the chain never visits the arms'
outer parts: exact in principle, but the estimate read low by up to 15% (z to -4) with the
trend test passing, because both halves of every chain miss the same region. So half the
transitions (``SMALL_STEP_PROB``) use a small step ``h = eps / max_steps^u``, u ~ U(0, 1)
(log-uniform: every scale between the adapted step and ``eps / max_steps`` equally often,
i.e. curvatures up to ``max_steps^2`` times the adapted one), with ``ceil(T / h)`` leapfrog
steps capped at ``max_steps`` (the smallest steps make short, still useful moves inside a
stiff arm). These transitions do not feed the step-size adaptation (their acceptance is
higher by construction), so dual averaging gets about half the updates it had. Cost (gradients
per draw): 3.5x on the 2-D singular study (17 -> 59), where ``T / eps`` is far below
``max_steps``; 1.45x on a [2,2,2] deep linear network (72 -> 106), where it is near the cap.
Measured in benchmarks/llc_singular.md (z against an exact quadrature: mean -0.71 -> +0.19,
sd 1.17 -> 0.81, max |z| 3.26 -> 2.22 over 30 (case, seed) pairs).

Exact: a Metropolis-corrected leapfrog with a step size and trajectory length drawn
independently of the state (Bou-Rabee & Sanz-Serna 2017, randomized HMC), so the chain
leaves pi invariant for any step size. Chains are vmapped: a chain with fewer steps idles while the longest finishes, but
all chains share the same curvature scale, so their step counts are close (unlike NUTS, whose
tree depths differ from transition to transition).

The transition is :func:`slt.kernels.hmc.step` (unit metric, NaN flag on); here the LLC's policy:
``step(key, state, eps, num_steps, loss_fn, data, w_star, nbeta, gamma, max_steps=None)``.
"""
from __future__ import annotations

import math
from typing import Callable

import jax.numpy as jnp

from slt.kernels import hmc
from slt.kernels.integrators import State
from slt.posterior import localized_target

HALF_PI = 0.5 * math.pi
JITTER = 0.2   # +-20%: at +-50% the control-variate error bars were overconfident more often (benchmarks/llc_jitter.md)


def init(loss_fn: Callable, w, data, w_star, nbeta, gamma) -> State:
    return localized_target(loss_fn, data, w_star, nbeta, gamma)(w)


def num_steps_for(eps, trajectory_length, max_steps: int):
    """``ceil(T / eps)`` leapfrog steps, clipped to ``[1, max_steps]``."""
    steps = jnp.ceil(trajectory_length / eps)
    steps = jnp.where(jnp.isfinite(steps), steps, max_steps)
    return jnp.clip(steps, 1, max_steps).astype(jnp.int32)


def step(key, state: State, eps, num_steps, loss_fn: Callable, data, w_star, nbeta, gamma,
         max_steps: int | None = None) -> tuple[State, hmc.HMCInfo]:
    """One transition: momentum ~ N(0, I), ``num_steps`` leapfrog steps of the jittered size
    (with ``max_steps``: half the time a log-uniform small step and up to ``max_steps`` steps),
    Metropolis accept/reject on the total energy."""
    return hmc.step(key, state, localized_target(loss_fn, data, w_star, nbeta, gamma), eps, num_steps,
                    jitter=JITTER, max_steps=max_steps, watch_nonfinite=True)
