"""The point w* of an ``llc`` or ``fisher`` section: ``at: truth | trained | params``.

Stage code (it reads a config section and the run's context, warns through it and raises
:class:`slt.pipeline.config.ConfigError`), so it lives with the stages; the optimiser it calls for
``at: trained`` is the estimator-layer :func:`slt.estimators.optimize.train`. It imports no stage and not
:mod:`slt.pipeline.runs` (``ctx`` is any :class:`slt.pipeline.runs.Context`), so ``runs.preflight`` can call it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from slt import models
from slt.pipeline.config import ConfigError
from slt.estimators.optimize import train
from slt.posterior import problem_loss


@jax.jit
def _jitted_loss(w, problem):
    return problem_loss(w, problem)


def _loss_value(w, problem) -> float:
    """``L_n(w)`` as a float: one compiled program (cached on disk), not eager ops."""
    return float(_jitted_loss(w, problem))


def resolve_point(ctx, section) -> tuple[jax.Array, dict]:
    """The point named by an ``llc``/``fisher`` section: ``at: truth | trained | params``.

    Returns the flat parameters and a dict describing them for summary.json.
    """
    p = ctx.problem
    key_path = f"{type(section).__name__.replace('Config', '').lower()}.at"
    if section.at == "truth":
        if ctx.truth_w is None:
            raise ConfigError(key_path, "the truth does not embed into the model (different depth or wider "
                                        "hidden layers); use at: trained or at: params")
        w = ctx.truth_w
        return w, {"w_star": "truth", "L_n_w_star": _loss_value(w, p)}
    if section.at == "params" and ctx.point is not None:     # a Python model's w* (slt.run)
        w = jnp.asarray(ctx.point, p.x.dtype)
        return w, {"w_star": "params", "L_n_w_star": _loss_value(w, p)}
    if section.at == "params":
        if p.spec is None:
            raise ConfigError(key_path, "at: params with a Python model needs w_star= in slt.run")
        w = models.flatten(models.params_from_lists(p.spec, section.params)).astype(p.x.dtype)
        return w, {"w_star": "params", "L_n_w_star": _loss_value(w, p)}
    if section.at == "trained":
        tc = section.train
        key = jax.random.key(tc.seed) if tc.seed is not None else ctx.key("train")
        res = train(key, p, tc.steps, tc.learning_rate, optimizer=tc.optimizer)
        if not bool(jnp.isfinite(res.loss)):
            ctx.warn("train: the optimiser diverged (non-finite loss); lower train.learning_rate")
        elif float(res.grad_norm) > 1e-3:
            ctx.warn(f"train: gradient norm {float(res.grad_norm):.2e} > 1e-3 at the trained point: "
                     "it may not be a minimum (increase train.steps)")
        return res.w, {"w_star": "trained", "L_n_w_star": float(res.loss),
                       "train": {"final_loss": float(res.loss), "grad_norm": float(res.grad_norm),
                                 "steps": tc.steps, "learning_rate": tc.learning_rate,
                                 "optimizer": tc.optimizer}}
    raise ValueError(f"unknown point {section.at!r}")
