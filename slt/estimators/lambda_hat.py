"""The learning coefficient lambda estimated from one data set (:func:`lambda_hat`): the
finite-nbeta LLC at a minimiser of L_n, with an error bar that carries the data-to-data spread
and the finite-n extrapolation, from K disjoint data subsets refined and sampled as batches
(:mod:`slt.estimators.llc_batch`). Split from :mod:`slt.estimators.learning_coefficient`, which it builds on."""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from slt.estimators import learning_coefficient as lc
from slt.estimators.learning_coefficient import LLCResult, stderr as llc_stderr
from slt.posterior import Problem

IDENTIFIABLE_RTOL = 0.5   # lambda_hat: an error bar above half the value cannot separate lambda from finite n


class LambdaHat(NamedTuple):
    """The learning coefficient lambda estimated from one data set, with an error bar that
    includes the finite-n extrapolation's uncertainty.

    ``value`` is the finite-nbeta LLC at a minimiser ``w_hat`` of L_n: the offset
    ``nbeta (L_n(w*) - L_n(w_hat))`` that makes estimates at the truth read low is removed by
    construction. The same estimator on ``K`` disjoint subsets of n/K rows (each at its own
    minimiser and nbeta) gives two more numbers:

    * ``data_sd``: their spread, the LLC's fluctuation from one data set to another (on
      singular models larger than the Monte Carlo error);
    * ``extrapolation``: how far an approach like ``lambda - c / log(nbeta)`` (the multiplicity
      term of the free-energy expansion, the slowest one) through the subsets' mean and the full
      estimate would put the limit: ``(llc_n - mean_K) u_n / (u_K - u_n)``, ``u = 1/log(nbeta)``,
      with its standard error ``extrapolation_se``.

    The extrapolation is NOT added to ``value``: measured on deep linear networks it is as
    likely to overshoot as to help (notes/llc.md: the finite-size terms are not all 1/log),
    but it is the honest size of what finite n may still hide, so
    ``stderr = sqrt(mcse^2 + data_sd^2 + extrapolation^2 + extrapolation_se^2)``.
    """

    value: float
    stderr: float
    mcse: float
    data_sd: float
    extrapolation: float
    extrapolation_se: float
    per_subset: tuple
    subset_n: int

    @property
    def identifiable(self) -> bool:
        """Whether the data separate lambda from finite-n effects at this n: the error bar is
        at most ``IDENTIFIABLE_RTOL`` (half) of ``|value|``. When it is not, the spread between
        subsets and the extrapolation term are as large as the estimate itself: a larger n is
        needed before ``value`` can be read as lambda."""
        return bool(math.isfinite(self.stderr) and self.stderr <= IDENTIFIABLE_RTOL * abs(self.value))


def refine_points(subsets: list, w, steps: int = 2000, learning_rate: float = 1e-3):
    """:func:`slt.estimators.learning_coefficient.refine_point` without jitter for K problems of the same shapes (e.g. equal-size
    data subsets) from the same ``w`` (d,) or from ``w`` (K, d), in one ``vmap``-ed program
    (:func:`slt.estimators.optimize.minimise_batch`; linear networks through their sufficient
    statistics, as the subsets' LLCs). Returns ``(w_hat (K, d), L_n (K,), |grad| (K,))``."""
    from slt.estimators.llc_batch import subsets_loss
    from slt.estimators.optimize import minimise_batch

    loss_fn, data = subsets_loss(subsets)
    w = jnp.broadcast_to(jnp.asarray(w, subsets[0].x.dtype), (len(subsets), subsets[0].d))
    res = minimise_batch(loss_fn, data, w, steps, learning_rate)
    return res.w, np.asarray(res.loss, np.float64), np.asarray(res.grad_norm, np.float64)


TREND_FLOOR_SHARE = 0.5   # main run's trend tolerance: at least this share of lambda_hat's non-MC error


class Subsets(NamedTuple):
    """lambda_hat's subset LLCs (:func:`subset_llcs`), run before or after the full-data LLC."""

    results: tuple        # K LLCResult, one per disjoint block of rows
    nbeta_k: float
    size: int             # rows per subset

    @property
    def values(self) -> Optional[list]:
        return None if any(r.mean is None for r in self.results) else [float(r.mean) for r in self.results]


def subset_llcs(key: jax.Array, problem: Problem, w_hat, *, nbeta: float, num_subsets: int = 4,
                nbeta_rule: str = "n/log n", refine: bool = True, sampler: str = "hmc",
                **llc_kwargs) -> Subsets:
    """The LLCs of ``num_subsets`` disjoint blocks of rows, each at its own minimiser (refined
    from ``w_hat``) with the full run's sampler settings and a fixed first chunk of draws (only
    their spread is used); ``nbeta`` per subset follows ``nbeta_rule`` ("n/log n") or keeps
    beta (``"given"``: ``nbeta n_k / n``, ``nbeta`` the full data's).

    Speed: the subsets are arrays of the same shape, so their refinement is one ``vmap``-ed
    optimiser program (:func:`refine_points`) and their LLCs one batched sampler program
    (:func:`slt.estimators.llc_batch.llc_subsets_for_problem`, data, w* and nbeta batched), compiled once
    whatever ``num_subsets``; subset k runs on ``fold_in(key, k)`` as a loop over
    :func:`slt.estimators.learning_coefficient.llc_for_problem` would."""
    from slt.estimators.llc_batch import llc_subsets_for_problem

    n = problem.n
    size = n // num_subsets
    kwargs = {**llc_kwargs, "sampler": sampler, "num_draws": llc_kwargs.get("num_draws", "auto")}
    if kwargs["num_draws"] == "auto":
        kwargs["num_draws"] = lc.AUTO_DRAWS[sampler][0]
        kwargs.pop("max_draws", None)
    for k in ("batch_size", "trend_atol"):   # full-batch samplers only; the subsets' draws are fixed
        kwargs.pop(k, None)
    nbeta_k = lc.default_nbeta(size) if nbeta_rule == "n/log n" else nbeta * size / n
    subs = [problem.with_data(problem.x[k * size:(k + 1) * size], problem.y[k * size:(k + 1) * size])
            for k in range(num_subsets)]
    w_k = refine_points(subs, w_hat)[0] if refine else jnp.broadcast_to(
        jnp.asarray(w_hat, problem.x.dtype), (num_subsets, problem.d))
    rs = llc_subsets_for_problem(key, subs, w_k, nbeta=np.full(num_subsets, nbeta_k), **kwargs)
    return Subsets(tuple(rs), float(nbeta_k), int(size))


def _lever(nbeta: float, nbeta_k: float) -> float:
    u_n, u_k = 1.0 / math.log(nbeta), 1.0 / math.log(nbeta_k)
    return u_n / (u_k - u_n) if u_k > u_n else float("inf")


def trend_floor(subsets: Subsets, nbeta: float) -> Callable[[float], float]:
    """For the full-data LLC run (``estimate_llc(trend_atol=...)``): given its current estimate,
    ``TREND_FLOOR_SHARE`` x the part of lambda_hat's error bar that no number of draws removes,
    ``sqrt(data_sd^2 + extrapolation^2)``. The trend test then asks the draws to resolve the LLC
    to a fraction of the answer's error bar and no finer: it passes when ``|drift| + 2 se`` is
    below it, i.e. the Monte Carlo error is below ~1/8 of it and adds < 2% to lambda_hat's
    variance. Opt-in (Python only): a drift below this floor passes the trend test, so the LLC's
    MCSE need not cover the full run's non-stationarity; the llc stage does not use it."""
    values = subsets.values
    if values is None or len(values) < 2:
        return lambda mean: 0.0
    data_sd, mean_k, lever = float(np.std(values, ddof=1)), float(np.mean(values)), _lever(nbeta, subsets.nbeta_k)

    def floor(mean: float) -> float:
        extrapolation = (mean - mean_k) * lever
        out = TREND_FLOOR_SHARE * math.hypot(data_sd, extrapolation)
        return out if math.isfinite(out) else 0.0

    return floor


def combine(result: LLCResult, subsets: Subsets) -> Optional[LambdaHat]:
    """:class:`LambdaHat` from the full-data LLC ``result`` and the subsets' LLCs (None when an
    estimate was withheld)."""
    values = subsets.values
    if result.mean is None or values is None:
        return None
    data_sd = float(np.std(values, ddof=1))
    mcse = llc_stderr(result)
    lever = _lever(result.nbeta, subsets.nbeta_k)
    extrapolation = (float(result.mean) - float(np.mean(values))) * lever
    extrapolation_se = math.hypot(mcse, data_sd / math.sqrt(len(values))) * lever
    stderr = math.sqrt(mcse ** 2 + data_sd ** 2 + extrapolation ** 2 + extrapolation_se ** 2)
    return LambdaHat(value=float(result.mean), stderr=float(stderr), mcse=float(mcse), data_sd=data_sd,
                     extrapolation=float(extrapolation), extrapolation_se=float(extrapolation_se),
                     per_subset=tuple(float(v) for v in values), subset_n=int(subsets.size))


def lambda_hat(key: jax.Array, problem: Problem, w_hat, result: LLCResult, *, num_subsets: int = 4,
               nbeta_rule: str = "n/log n", refine: bool = True, **llc_kwargs) -> Optional[LambdaHat]:
    """:class:`LambdaHat` from an LLC ``result`` at the minimiser ``w_hat`` of the full data:
    :func:`subset_llcs` (with ``result``'s sampler and nbeta) then :func:`combine`. None when
    the estimate was withheld. The llc stage runs :func:`subset_llcs` first and combines after
    the full run (the same numbers)."""
    if result.mean is None:
        return None
    llc_kwargs = {k: v for k, v in llc_kwargs.items() if k != "sampler"}
    subsets = subset_llcs(key, problem, w_hat, nbeta=result.nbeta, num_subsets=num_subsets,
                          nbeta_rule=nbeta_rule, refine=refine, sampler=result.sampler, **llc_kwargs)
    return combine(result, subsets)
