"""Reference LLCs by numerical quadrature of 1-D and 2-D localised posteriors.

The finite-nbeta LLC (Lau et al. 2023, arXiv:2308.12108; science.md "Definitions")::

    llc(w*) = nbeta (E[L(w)] - L(w*)),   p(w | w*) ∝ exp(-nbeta L(w) - (gamma/2) ||w - w*||^2)

is, for d <= 2, a ratio of two integrals that a grid computes to 1e-6 relative or better, so
every sampler can be checked against it on any loss (any u(w), noise, inputs, nbeta) rather
than against the asymptotic lambda, which finite nbeta misses by 10-20% (science.md).

Grid. Singular targets concentrate on the coordinate axes through w*: ``w1^a w2^b`` at
nbeta ~ 1e3 has arms whose width across the axis falls like ``|w2|^(-b/a)`` (1e-5 for
(a, b) = (1, 5) at |w2| ~ 4), while the gamma tails reach |w - w*| ~ 9 (the density there
is below ``exp(-gamma R^2 / 2)``). A uniform grid cannot do both; the sinh-mapped
trapezoid rule can: per coordinate

    w = w*_j + c sinh(t),   t = k h  (|k| <= K),   dw = c cosh(t) dt,

so nodes are spaced ``c h`` at w* and ``h |w - w*|`` (a constant *relative* spacing) further
out, down to the scale ``c`` (default 1e-7) and out to ``radius`` (default sqrt(90/gamma),
where the Gaussian factor is e^-45). The integrand in t is smooth and decays
double-exponentially, so the trapezoid rule converges exponentially in 1/h (Trefethen &
Weideman, SIAM Review 56, 2014); the error estimate is the difference between the grid and
its every-other-node subgrid (step 2h, the same evaluations), which over-states the fine
grid's error by orders of magnitude, plus the weight of the outermost node ring
(truncation). The grid resolves features that lie along the axes through w* (normal
crossings, sums of powers, Gaussians of any orientation); a ridge along a curved set (e.g.
``(w1 - w2^2)^2``) needs a smaller ``step`` or a ``scale`` matched to it: the error estimate
says when.

``loss_fn`` takes an (m, d) float64 array of points and returns their (m,) losses (numpy or
anything ``np.asarray`` reads). :func:`vectorize` wraps a per-point JAX ``loss_fn(w)`` or
``loss_fn(w, data)`` (e.g. :func:`slt.estimators.learning_coefficient.problem_loss` with a Problem) into
that form, evaluated in float64 (``jax.enable_x64`` locally).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import numpy as np

__all__ = ["QuadratureLLC", "llc_quadrature", "vectorize", "gaussian_llc"]


class QuadratureLLC(NamedTuple):
    """A quadrature reference for the localised posterior.

    ``llc = nbeta (expected_loss - loss_at_w_star)``; ``error`` bounds |llc - exact| (grid
    vs its every-other-node subgrid, plus the truncated mass); ``coarse`` is the subgrid's
    llc; ``num_nodes`` points per coordinate (the grid has num_nodes^d points)."""

    llc: float
    expected_loss: float
    loss_at_w_star: float
    error: float
    coarse: float
    truncation: float
    nbeta: float
    gamma: float
    num_nodes: int
    scale: float
    radius: float


def _nodes(scale: float, radius: float, step: float):
    """sinh-mapped offsets and trapezoid weights with ``|offset| <= radius``; K even so the
    every-other-node subgrid (step 2h) is symmetric and contains t = 0."""
    K = int(math.ceil(math.asinh(radius / scale) / step))
    K += K % 2
    t = step * np.arange(-K, K + 1)
    return scale * np.sinh(t), step * scale * np.cosh(t), K


def llc_quadrature(loss_fn: Callable, w_star, nbeta: float, gamma: float = 1.0, *,
                   scale: float = 1e-7, radius: Optional[float] = None, step: float = 0.08,
                   chunk: int = 1 << 16) -> QuadratureLLC:
    """``llc = nbeta (E[L] - L(w*))`` over ``p(w|w*) ∝ exp(-nbeta L(w) - gamma/2 ||w-w*||^2)``
    by the sinh-mapped trapezoid rule (module docstring), for ``d = len(w_star)`` in {1, 2}.

    Args:
      loss_fn: ``loss_fn(W)`` for W of shape (m, d) float64 -> (m,) losses (see :func:`vectorize`).
      w_star: (d,) the localisation centre.
      nbeta, gamma: as in :func:`slt.estimators.learning_coefficient.estimate_llc` (gamma = 0 needs ``radius``).
      scale: the finest resolved length near the axes through w* (nodes are spaced
        ``scale * step`` there).
      radius: half-width of the box; default ``sqrt(90 / gamma)`` (Gaussian factor e^-45).
      step: trapezoid step in the mapped variable t (relative node spacing far from w*).
      chunk: points per loss_fn call.

    Returns :class:`QuadratureLLC`. Raises ValueError for d not in {1, 2}, nbeta <= 0,
    gamma < 0, gamma = 0 without a radius, or a non-finite L(w*).
    """
    w_star = np.asarray(w_star, np.float64).reshape(-1)
    d = w_star.shape[0]
    if d not in (1, 2):
        raise ValueError(f"llc_quadrature: d must be 1 or 2 (a tensor grid), got d = {d}")
    if not nbeta > 0:
        raise ValueError(f"llc_quadrature: nbeta must be > 0, got {nbeta}")
    if gamma < 0 or (gamma == 0 and radius is None):
        raise ValueError("llc_quadrature: gamma must be > 0, or >= 0 with an explicit radius")
    radius = float(radius) if radius is not None else math.sqrt(90.0 / gamma)
    offsets, weights, K = _nodes(scale, radius, step)
    num = len(offsets)
    if d == 1:
        W = w_star + offsets[:, None]
        logw = np.log(weights)
        even = (np.arange(num) % 2 == 0)
        ring = np.zeros(num, bool)
        ring[[0, -1]] = True
    else:
        o1, o2 = np.meshgrid(offsets, offsets, indexing="ij")
        W = w_star + np.stack([o1.ravel(), o2.ravel()], axis=1)
        lw = np.log(weights)
        logw = (lw[:, None] + lw[None, :]).ravel()
        ev = np.arange(num) % 2 == 0
        even = (ev[:, None] & ev[None, :]).ravel()
        edge = np.zeros(num, bool)
        edge[[0, -1]] = True
        ring = (edge[:, None] | edge[None, :]).ravel()
    loss_star = float(np.asarray(loss_fn(w_star[None, :]), np.float64).reshape(-1)[0])
    if not math.isfinite(loss_star):
        raise ValueError(f"llc_quadrature: L(w*) = {loss_star} is not finite")
    losses = np.concatenate([np.asarray(loss_fn(W[i:i + chunk]), np.float64).reshape(-1)
                             for i in range(0, len(W), chunk)])
    excess = losses - loss_star
    r2 = np.sum((W - w_star) ** 2, axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        logp = logw - nbeta * excess - 0.5 * gamma * r2
    logp = np.where(np.isfinite(logp), logp, -np.inf)   # overflowed loss: no mass
    excess = np.where(np.isfinite(excess), excess, 0.0)

    def ratio(mask):
        lp = np.where(mask, logp, -np.inf)
        p = np.exp(lp - lp.max())
        return float(np.sum(p * excess) / np.sum(p)), p

    mean_fine, p = ratio(np.ones_like(even))
    mean_coarse, _ = ratio(even)
    total = float(np.sum(p))
    truncation = float(np.sum(p[ring]) / total) * (abs(nbeta * mean_fine) + 1.0)
    llc = nbeta * mean_fine
    coarse = nbeta * mean_coarse
    error = abs(llc - coarse) + truncation
    return QuadratureLLC(llc=llc, expected_loss=loss_star + mean_fine, loss_at_w_star=loss_star,
                         error=error, coarse=coarse, truncation=truncation, nbeta=float(nbeta),
                         gamma=float(gamma), num_nodes=num, scale=float(scale), radius=radius)


def vectorize(loss_fn: Callable, data=None) -> Callable:
    """A per-point JAX loss (``loss_fn(w)``, or ``loss_fn(w, data)`` with a pytree ``data``
    such as a :class:`slt.posterior.Problem`) as the (m, d) -> (m,) float64 function
    :func:`llc_quadrature` takes: ``jit(vmap(.))`` under ``jax.enable_x64`` with the data's
    floating leaves cast to float64."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        if data is not None:
            data = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64)
                                if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, data)
            batched = jax.jit(jax.vmap(loss_fn, in_axes=(0, None)))
        else:
            batched = jax.jit(jax.vmap(loss_fn))

    def fn(W):
        with jax.enable_x64(True):
            W = jnp.asarray(np.asarray(W, np.float64))
            out = batched(W) if data is None else batched(W, data)
            return np.asarray(out, np.float64)

    return fn


def gaussian_llc(H, center, loss_min: float, w_star, nbeta: float, gamma: float) -> float:
    """Closed form for a quadratic loss ``L(w) = loss_min + (w - m)^T H (w - m) / 2`` (m = ``center``):
    the localised posterior is Gaussian with precision ``P = nbeta H + gamma I`` and mean
    ``mu = P^-1 (nbeta H m + gamma w*)``, so

        E[L] = loss_min + ((mu - m)^T H (mu - m) + tr(H P^-1)) / 2,
        llc  = nbeta (E[L] - L(w*)).

    At w* = m this is ``nbeta tr(H P^-1) / 2`` (-> rank(H)/2 as nbeta -> inf)."""
    H = np.atleast_2d(np.asarray(H, np.float64))
    m = np.asarray(center, np.float64).reshape(-1)
    w_star = np.asarray(w_star, np.float64).reshape(-1)
    P = nbeta * H + gamma * np.eye(len(m))
    mu = np.linalg.solve(P, nbeta * H @ m + gamma * w_star)
    e_loss = loss_min + 0.5 * ((mu - m) @ H @ (mu - m) + np.trace(np.linalg.solve(P, H)))
    loss_star = loss_min + 0.5 * (w_star - m) @ H @ (w_star - m)
    return float(nbeta * (e_loss - loss_star))
