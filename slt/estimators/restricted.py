"""Weight-restricted and data-refined local learning coefficients (Wang, Farrugia-Roberts,
Hoogland, Carroll, Wei, Murfet 2024, "Differentiation and specialization of attention heads via
the refined local learning coefficient", arXiv:2410.02984).

Both live on the LLC's localised posterior ``p(w | w*) ∝ exp(-nbeta L_n(w) - gamma/2 ||w - w*||^2)``
(:mod:`slt.estimators.learning_coefficient`) and reuse its compiled programs.

**Weight-restricted LLC**: sample only the coordinates u named by ``weights``, the rest v held
at v*::

    llc_u(w*) = nbeta (E_u[L_n(u, v*)] - L_n(w*)),   p(u) ∝ exp(-nbeta L_n(u, v*) - gamma/2 ||u - u*||^2)

Implemented exactly with a 0/1 mask m over the flat vector: the chains sample the full vector
under ``L_n(w* + m * (w - w*))``. The unselected coordinates then do not enter the loss, so
they are independent ``N(w*, 1/gamma)`` draws that leave the loss (and so the estimate)
unchanged; the selected ones follow the restricted posterior above. This needs ``gamma > 0``
(the free coordinates would otherwise be improper). The mask is part of the traced ``data``
argument: every selection reuses one compiled program, and :func:`per_layer_llc` ``vmap``-s
the masks through :func:`slt.estimators.llc_batch.estimate_llc_batch` (all layers, one program).

Names: for the ``widths`` family ``W1, b1, W2, b2, ...`` (layer l's weight matrix and bias,
numbered from 1); for any :class:`slt.models.FunctionModel`, the key paths of its parameter
pytree joined by ``.`` (``"W1"``, ``"layers.0.weight"``).

**Data-refined LLC**: the loss of another data set (or a subset) L' averaged over the SAME
draws, which still sample the training posterior::

    llc'(w*) = nbeta (E_w[L'(w)] - L'(w*))

L' is evaluated at every draw inside the draw program (``observable_fn`` of
:func:`slt.estimators.learning_coefficient.estimate_llc`); no positions are stored. Both estimates carry
the LLC's Monte Carlo error, R-hat and trend test (:func:`slt.estimators.learning_coefficient.summarize`).

Exact answers for a model linear in the restricted weights: :func:`linear_terms` (g, H) and
:func:`slt.estimators.exact.restricted_llc_gaussian` (notes/restricted_llc.md).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from slt.estimators import learning_coefficient as lc
from slt import models
from slt.models import weight_slices  # noqa: F401  (re-exported: the names live with the layout)
from slt.posterior import Problem


# ----------------------------------------------------------------------------- names
def weight_mask(model, weights) -> np.ndarray:
    """0/1 float mask (d,) selecting ``weights``: a list of names, or (Python API) a (d,) 0/1
    or boolean array of coordinates (e.g. one hidden node's in- and out-weights).
    ``ValueError`` naming unknown names (with the known ones) or an empty selection."""
    if isinstance(weights, (np.ndarray, jax.Array)):
        mask = np.asarray(weights, np.float64)
        if mask.shape != (model.d,) or not np.isin(mask, (0.0, 1.0)).all():
            raise ValueError(f"a weight mask must be a (d,) = ({model.d},) array of 0/1, got shape {mask.shape}")
        if not mask.any():
            raise ValueError("empty selection: the mask selects no coordinate")
        return mask
    slices = weight_slices(model)
    weights = list(weights or [])
    if not weights:
        raise ValueError(f"empty selection: name at least one of {list(slices)}")
    unknown = [w for w in weights if w not in slices]
    if unknown:
        raise ValueError(f"unknown weight name(s) {unknown}; the model has {list(slices)}")
    mask = np.zeros(model.d)
    for w in weights:
        a, b = slices[w]
        mask[a:b] = 1.0
    return mask


def layer_groups(model) -> list:
    """The groups of :func:`per_layer_llc`: ``[W_l, b_l]`` per layer of an MLP, every named
    leaf on its own for a FunctionModel."""
    names = list(weight_slices(model))
    if isinstance(model, models.MLP):
        return [[n for n in (f"W{l}", f"b{l}") if n in names] for l in range(1, model.num_layers + 1)]
    return [[n] for n in names]


# ----------------------------------------------------------------------------- masked losses
@functools.lru_cache(maxsize=None)
def masked(fn: Callable) -> Callable:
    """``fn(w, data)`` -> ``g(w, (data, mask, anchor)) = fn(anchor + mask (w - anchor), data)``
    (cached: the same wrapper object, so the compiled programs are reused)."""
    def g(w, restricted_data):
        data, mask, anchor = restricted_data
        return fn(anchor + mask * (w - anchor), data)
    return g


@functools.lru_cache(maxsize=None)
def masked_batch(fn: Callable) -> Callable:
    """As :func:`masked` for a minibatch loss ``fn(w, data, idx)``."""
    def g(w, restricted_data, idx):
        data, mask, anchor = restricted_data
        return fn(anchor + mask * (w - anchor), data, idx)
    return g


@functools.lru_cache(maxsize=None)
def _first(fn: Callable) -> Callable:
    return lambda w, pair: fn(w, pair[0])


@functools.lru_cache(maxsize=None)
def _second_vector(fn: Callable) -> Callable:
    return lambda w, pair: jnp.reshape(fn(w, pair[1]), (1,))


def _restrict(args: dict, mask, w_star) -> dict:
    """:func:`slt.estimators.learning_coefficient.problem_arguments` with the loss restricted by ``mask``."""
    if not args.get("gamma", 1.0) > 0:
        raise ValueError("weights: the restricted LLC needs gamma > 0 (the unselected coordinates "
                         "are free N(w*, 1/gamma) draws)")
    out = dict(args, loss_fn=masked(args["loss_fn"]),
               data=(args["data"], jnp.asarray(mask, w_star.dtype), w_star))
    if args.get("batch_loss_fn") is not None:
        out["batch_loss_fn"] = masked_batch(args["batch_loss_fn"])
    return out


def _arguments(problem, w_star, nbeta, batch_size, kwargs):
    w_star = jnp.asarray(w_star, problem.x.dtype)
    if w_star.shape != (problem.d,):
        raise ValueError(f"w_star must have shape ({problem.d},), got {tuple(w_star.shape)}")
    args = lc.problem_arguments(problem, nbeta, batch_size)
    args["gamma"] = kwargs.pop("gamma", 1.0)
    return w_star, args


# ----------------------------------------------------------------------------- estimators
def restricted_llc(key: jax.Array, problem: Problem, w_star, weights, *,
                   nbeta: float | None = None, batch_size: int | None = None, **kwargs) -> lc.LLCResult:
    """The weight-restricted LLC ``nbeta (E_u[L_n(u, v*)] - L_n(w*))`` of the parameters named by
    ``weights`` (names, or a (d,) 0/1 coordinate mask; see the module docstring); other arguments as
    :func:`slt.estimators.learning_coefficient.llc_for_problem`. Raises ``ValueError`` for unknown names,
    an empty selection or ``gamma = 0``."""
    mask = weight_mask(problem.model, weights)
    w_star, args = _arguments(problem, w_star, nbeta, batch_size, kwargs)
    return lc.estimate_llc(key, w_star=w_star, **_restrict(args, mask, w_star), **kwargs)


class PerLayer(NamedTuple):
    """:func:`per_layer_llc`: the weight groups and one :class:`LLCResult` per group."""

    weights: list       # [[names], ...]
    results: list       # [LLCResult, ...]; sampling_s is the wall time of the whole batch


def per_layer_llc(key: jax.Array, problem: Problem, w_star, groups: Sequence[Sequence[str]] | None = None, *,
                  nbeta: float | None = None, batch_size: int | None = None, **kwargs) -> PerLayer:
    """The restricted LLC of every group in ``groups`` (default :func:`layer_groups`: each
    layer's W and b) in ONE compiled program: the masks are ``vmap``-ed through
    :func:`slt.estimators.llc_batch.estimate_llc_batch`. Group ``j`` runs on ``fold_in(key, j)``, so
    with a fixed ``num_draws`` it equals ``restricted_llc(fold_in(key, j), ..., groups[j])`` up
    to float rounding."""
    from slt.estimators.llc_batch import estimate_llc_batch

    groups = [list(g) for g in (groups if groups is not None else layer_groups(problem.model))]
    if not groups:
        raise ValueError("per_layer: no weight groups")
    masks = np.stack([weight_mask(problem.model, g) for g in groups])
    w_star, args = _arguments(problem, w_star, nbeta, batch_size, kwargs)
    args = _restrict(args, masks, w_star)
    w_stars = jnp.broadcast_to(w_star, (len(groups), problem.d))
    results = estimate_llc_batch(key, w_stars=w_stars, data_axes=(None, 0, None), **args, **kwargs)
    return PerLayer(groups, results)


class Refined(NamedTuple):
    """:func:`refined_llc`: the data-refined estimate and the ordinary (or restricted) LLC of
    the same draws."""

    refined: lc.LLCResult   # nbeta (E[L'] - L'(w*)): mean, mcse, rhat, converged of L' traces
    llc: lc.LLCResult       # the training-loss estimate of the same draws


def refined_llc(key: jax.Array, problem: Problem, w_star, refined: Problem, *,
                weights: Sequence[str] | None = None, nbeta: float | None = None, **kwargs) -> Refined:
    """The data-refined LLC ``nbeta (E_w[L'(w)] - L'(w*))``: L' is the loss of ``refined`` (the
    same model, other data: e.g. ``problem.with_data(x', y')``), the draws sample the training
    posterior of ``problem`` (optionally restricted to ``weights``). Samplers hmc and mala
    (the draw program evaluates L' at every draw). Raises ``ValueError`` when ``refined`` does
    not fit the model."""
    if refined.model is not problem.model and refined.model != problem.model:
        raise ValueError("refined: must use the same model as the problem (problem.with_data(x, y))")
    if refined.x.ndim != 2 or refined.x.shape[1] != problem.x.shape[1] or \
            refined.y.shape[1:] != problem.y.shape[1:]:
        raise ValueError(f"refined data has x {list(refined.x.shape)}, y {list(refined.y.shape)}; the "
                         f"model needs (n, {problem.x.shape[1]}) and (n, {problem.y.shape[1]})")
    w_star, args = _arguments(problem, w_star, nbeta, None, kwargs)
    other = lc.problem_arguments(refined, args["nbeta"], None)
    args = dict(args, loss_fn=_first(args["loss_fn"]), data=(args["data"], other["data"]))
    observable = _second_vector(other["loss_fn"])
    if weights is not None:
        args = _restrict(args, weight_mask(problem.model, weights), w_star)
        observable = masked(observable)
    res = lc.estimate_llc(key, w_star=w_star, observable_fn=observable, **args, **kwargs)
    obs, at_star = res.observables[..., 0], float(res.observables_at_w_star[0])
    acc = np.zeros_like(obs) + res.acceptance[:, None]
    ref = lc.summarize(obs, acc, res.step_size, at_star, nbeta=res.nbeta, gamma=res.gamma,
                       sampler=res.sampler, num_burnin=res.num_burnin, num_adapt=res.num_adapt,
                       d=problem.d, sampling_s=res.sampling_s)
    warns = tuple(w.replace("llc:", "llc (refined):", 1) for w in ref.warnings
                  if "mean acceptance" not in w)
    return Refined(ref._replace(warnings=warns), res)


stderr = lc.stderr   # the LLC's reported standard error (:func:`slt.estimators.llc_summary.stderr`)


# ----------------------------------------------------------------------------- exact answers
class LinearTerms(NamedTuple):
    """``L_n(u, v*) = c - g.u + u^T H u / 2`` for a Gaussian model linear in u (float64)."""

    g: np.ndarray        # (k,)
    H: np.ndarray        # (k, k) Gauss-Newton matrix (1/(n sigma^2)) sum_i J_i^T J_i
    u_star: np.ndarray   # (k,) the selected coordinates of w*
    linear: bool         # f(u* + delta) = f(u*) + J delta held at a random delta (rtol 1e-4)


def linear_terms(problem: Problem, w_star, weights: Sequence[str], key: jax.Array | None = None) -> LinearTerms:
    """g and H of ``L_n(u, v*)`` for a Gaussian-likelihood model linear in the selected
    weights u (any layer of a deep linear network, the last layer of any network), from the
    Jacobian J_i = df(x_i)/du at w*: with r_i = y_i - f(x_i, w*) + J_i u*,
    ``H = (1/(n sigma^2)) sum_i J_i^T J_i`` and ``g = (1/(n sigma^2)) sum_i J_i^T r_i``."""
    if problem.likelihood != "gaussian":
        raise ValueError("linear_terms: needs a Gaussian likelihood")
    mask = weight_mask(problem.model, weights).astype(bool)
    idx = np.flatnonzero(mask)
    w_star = jnp.asarray(w_star, problem.x.dtype)

    def f_of_u(u):
        return problem.predict(w_star.at[idx].set(u)).reshape(-1)

    u_star = w_star[idx]
    J = np.asarray(jax.jacfwd(f_of_u)(u_star), np.float64)                 # (n d_out, k)
    f0 = np.asarray(f_of_u(u_star), np.float64)
    y = np.asarray(problem.y, np.float64).reshape(-1)
    s2n = float(problem.noise_std) ** 2 * problem.n
    u0 = np.asarray(u_star, np.float64)
    H = J.T @ J / s2n
    g = J.T @ (y - f0 + J @ u0) / s2n
    delta = np.asarray(jax.random.normal(key if key is not None else jax.random.key(0), u_star.shape))
    scale = 0.1 * max(1.0, float(np.abs(u0).max()))
    f1 = np.asarray(f_of_u(u_star + scale * delta.astype(u_star.dtype)), np.float64)
    pred = f0 + J @ (scale * delta)
    linear = bool(np.allclose(f1, pred, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(f1).max()))))
    return LinearTerms(g, H, u0, linear)
