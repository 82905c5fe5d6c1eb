"""Health checks shared by every sampler: no confident number from a chain that did not sample.

Two kinds, written once here and called by every estimator and stage:

* **Before sampling** (:func:`check_point`): ``L_n`` and its gradient must be finite at the point
  a chain starts from (the LLC's or the Fisher information's ``w*``, a chain's start). A
  non-finite value is a :class:`ModelError` (a ``ValueError``; exit 2 on the command line) naming the parameter by its place in the parameter pytree,
  e.g. ``llc: the gradient of L_n is not finite at w* (params["w"][0])``: a sampler started there
  adapts its step size to zero and reports the start point as if it were the posterior.
* **After sampling** (:func:`chain_problems`): per chain, a non-finite ``L_n`` at a draw, proposals
  whose log density or gradient was not finite (the sampler rejects them, so the chain silently
  samples a truncated target), a step size adapted to zero (below what can move ``w`` in its
  floating-point precision), acceptance that collapsed, and a chain that never moved. Each cause
  becomes one line naming the chains; the caller withholds the estimate (``None``,
  ``converged: false``) and records the lines as warnings.

Parameter names (:func:`param_name`): the key path of the flat index in the model's parameter
pytree (``params["W1"][0, 1]`` for a Python model), ``W1[0, 1]``/``b2[0]`` for the ``widths``
family (layer ``l``'s weight matrix ``W`` and bias ``b``, numbered from 1).
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

ACCEPT_FLOOR = 0.01   # mean Metropolis acceptance below this: the chain has effectively stopped


class ModelError(ValueError):
    """The model cannot be sampled at a point (a non-finite loss or gradient): one line, exit 2."""


# ----------------------------------------------------------------------------- names
def _index_tree(model, d: int):
    return model.unravel(jnp.arange(d, dtype=jnp.float64 if jax.config.jax_enable_x64 else jnp.float32))


def param_name(model, index: int) -> str:
    """The name of flat coordinate ``index`` of ``model``'s parameters (see module doc)."""
    if model is None:
        return f"w[{index}]"
    try:
        d = int(model.d)
        tree = _index_tree(model, d)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            leaf = np.asarray(leaf)
            hit = np.argwhere(np.rint(leaf) == index)
            if hit.size:
                where = ", ".join(str(int(i)) for i in hit[0])
                suffix = f"[{where}]" if leaf.ndim else ""
                from slt.models import MLP

                if isinstance(model, MLP) and len(path) == 2:   # [layer]['W'] -> W{layer+1}
                    layer = path[0].idx
                    return f"{path[1].key}{layer + 1}{suffix}"
                return "params" + jax.tree_util.keystr(path).replace("'", '"') + suffix
    except Exception:   # a model without a usable unravel: fall back to the flat index
        pass
    return f"w[{index}]"


def _names(model, indices: Sequence[int], limit: int = 3) -> str:
    shown = ", ".join(param_name(model, int(i)) for i in indices[:limit])
    more = len(indices) - limit
    return shown + (f" and {more} more" if more > 0 else "")


# ----------------------------------------------------------------------------- before sampling
def check_point(what: str, loss_fn: Callable, w, data=None, *, model=None, label: str = "w*",
                with_data: bool | None = None) -> float:
    """Raise :class:`ModelError` (a ``ValueError``) when ``L = loss_fn(w, data)`` or its gradient is
    not finite at ``w``; return ``L``. ``loss_fn(w)`` when ``data`` is None (unless ``with_data``:
    the two-argument form with ``data = None``). ``what`` prefixes the message (``llc``,
    ``fisher``), ``label`` names the point, ``model`` names the parameters."""
    w = jnp.asarray(w)
    with_data = data is not None if with_data is None else with_data
    try:
        value, grad = _value_and_grad(loss_fn, w, data, with_data)
    except (TypeError, ValueError) as exc:   # the user's model failed at this point
        raise ModelError(f"{what}: L_n could not be evaluated at {label}: {str(exc).splitlines()[0]}") from None
    except jax.errors.UnexpectedTracerError:
        raise ModelError(f"{what}: the model uses a JAX value traced outside it (apply_fn closes over a "
                         "traced array: pass it as a parameter or a constant)") from None
    value = float(value)
    if not np.isfinite(value):
        raise ModelError(f"{what}: L_n is not finite at {label} (L_n = {value})")
    grad = np.asarray(grad)
    bad = np.flatnonzero(~np.isfinite(grad))
    if bad.size:
        raise ModelError(f"{what}: the gradient of L_n is not finite at {label} ({_names(model, bad)})")
    return value


@functools.lru_cache(maxsize=64)
def _jitted_value_and_grad(loss_fn: Callable):
    return jax.jit(jax.value_and_grad(loss_fn))


def _value_and_grad(loss_fn: Callable, w, data, with_data: bool):
    """``(L, grad L)`` at ``w``: one compiled program per loss function (a module-level
    ``loss_fn(w, data)`` with the data as argument is compiled once and found in the persistent
    cache), not dozens of eager ops each compiled on every run; a loss function that cannot be
    a cache key (unhashable) is evaluated eagerly."""
    try:
        fn = _jitted_value_and_grad(loss_fn)
    except TypeError:
        fn = jax.value_and_grad(loss_fn)
    return fn(w, data) if with_data else fn(w)


# ----------------------------------------------------------------------------- after sampling
def step_floor(dtype, scale: float) -> float:
    """``10 * eps_machine * scale``: a step below it cannot move ``w`` across a posterior of width
    ``scale`` in ``dtype`` (a leapfrog step of that size changes no coordinate of that size, and
    the longest trajectory covers a negligible part of the width). Langevin samplers, whose
    ``eps`` is a variance, compare with its square."""
    return float(10.0 * np.finfo(np.dtype(dtype)).eps * max(float(scale), 1e-30))


def _chains(mask, labels=None) -> str:
    idx = [int(i) for i in np.flatnonzero(mask)]
    if labels is not None:
        shown = [labels[i] for i in idx[:6]]
        return ", ".join(shown) + (f" (+{len(idx) - 6} more)" if len(idx) > 6 else "")
    return f"chain {idx[0]}" if len(idx) == 1 else f"chains {idx}"


def chain_problems(what: str, loss, *, step_size=None, accept=None, nonfinite=None,
                   min_step: float | None = None, moves_expected: bool = True, labels=None):
    """Per-chain health of a finished run. Returns ``(bad (C,) bool, messages)``.

    Args:
      loss: (C, T) ``L_n`` at every kept draw, or (C, T, k) several recorded quantities (e.g.
        ``L_n`` and the position): a chain never moved when all of them are constant.
      step_size: (C,) the step size used for the draws (adapted or given).
      accept: (C, T) or (C,) Metropolis acceptance probabilities (NaN entries ignored).
      nonfinite: (C,) number of proposals whose L_n or gradient was NaN at a finite point.
      min_step: the step-size floor (:func:`step_floor`); default: only 0, negative or
        non-finite step sizes are flagged.
      moves_expected: a constant ``L_n`` trace means the chain never moved (False for samplers
        whose recorded value may legitimately repeat, e.g. a constant-loss check done elsewhere).
      labels: (C,) names of the chains in the messages (default ``chain i``).
    """
    loss = np.asarray(loss, np.float64)
    num_chains = loss.shape[0]
    bad = np.zeros(num_chains, bool)
    msgs = []
    nonfin_loss = ~np.isfinite(loss).all(axis=tuple(range(1, loss.ndim)))
    if nonfin_loss.any():
        bad |= nonfin_loss
        msgs.append(f"{what}: {_chains(nonfin_loss, labels)} reached a non-finite L_n (NaN or inf): the model or "
                    "its gradient is not finite somewhere the chain went")
    if nonfinite is not None:
        nf = np.asarray(nonfinite) > 0
        if nf.any():
            bad |= nf
            total = int(np.asarray(nonfinite).sum())
            msgs.append(f"{what}: {total} proposals of {_chains(nf, labels)} had a NaN L_n or gradient at a finite "
                        "point (the model is not finite away from the start point); the chains sampled a "
                        "truncated posterior")
    if step_size is not None:
        eps = np.asarray(step_size, np.float64).reshape(num_chains, -1).min(axis=1)
        floor = 0.0 if min_step is None else float(min_step)
        tiny = ~np.isfinite(eps) | (eps <= floor)
        if tiny.any():
            bad |= tiny
            msgs.append(f"{what}: the step size of {_chains(tiny, labels)} adapted to {np.min(eps):.3g} (below "
                        f"{floor:.3g}, too small to move the parameters): the chain did not sample")
    if accept is not None:
        acc = np.asarray(accept, np.float64).reshape(num_chains, -1)
        with np.errstate(invalid="ignore"):
            mean_acc = np.array([np.nanmean(a) if np.isfinite(a).any() else np.nan for a in acc])
        low = np.isfinite(mean_acc) & (mean_acc < ACCEPT_FLOOR)
        if low.any():
            bad |= low
            msgs.append(f"{what}: acceptance collapsed on {_chains(low, labels)} (mean {np.nanmin(mean_acc):.3g} < "
                        f"{ACCEPT_FLOOR}): nearly every proposal was rejected")
    if moves_expected and loss.ndim >= 2 and loss.shape[1] > 1:
        trace = loss.reshape(num_chains, loss.shape[1], -1)      # (C, T, k): every quantity constant
        with np.errstate(invalid="ignore"):
            frozen = np.isfinite(trace).all(axis=(1, 2)) & (np.ptp(trace, axis=1) == 0).all(axis=1)
        frozen &= ~nonfin_loss
        if frozen.any():
            bad |= frozen
            msgs.append(f"{what}: {_chains(frozen, labels)} never moved (L_n identical at every draw): either every "
                        "proposal was rejected or L_n does not depend on the parameters")
    return bad, msgs
