"""Free-energy estimators over draws of ``n L_n`` at several inverse temperatures.

Every estimator is a pure function of arrays and returns a small NamedTuple with an error
estimate. Conventions (science.md): ``F_n = -log Z_n``, ``Z_n = ∫ phi(w) exp(-n L_n(w)) dw``,
``E^beta`` the expectation under ``p_beta(w) ∝ phi(w) exp(-n beta L_n(w))``.

Shapes: ``nL_n`` draws are ``(num_betas, num_chains, num_draws)``; per-beta summaries are
``(num_betas,)``. Monte Carlo standard errors (MCSE) are ``sd / sqrt(ESS)`` with ArviZ's bulk
ESS over the (chains, draws) axes.

References: Watanabe, *Algebraic Geometry and Statistical Learning Theory* (2009); Watanabe,
"A widely applicable Bayesian information criterion", JMLR 14 (2013); Gelman & Meng,
"Simulating normalizing constants" (1998, thermodynamic integration); Xie, Lewis, Fan, Kuo &
Chen, "Improving marginal likelihood estimation ... stepping-stone", Syst. Biol. 60 (2011).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from slt.samplers import diagnostics


# ----------------------------------------------------------------------------- grids
def ti_grid(num_betas: int, power: float = 4.0) -> np.ndarray:
    """``beta_k = (k / (K - 1))^power``, k = 0..K-1: ``K`` points from 0 to 1, dense near 0.

    In the variable ``t = beta^(1/power)`` the grid is uniform, and the TI integrand
    ``power t^(power-1) E^{t^power}[n L_n]`` is smooth and vanishes at t = 0.
    """
    if num_betas < 2:
        raise ValueError("num_betas must be >= 2")
    return (np.arange(num_betas) / (num_betas - 1)) ** power


def lambda_window(n: int, num_betas: int = 5, half_width: float | None = None) -> np.ndarray:
    """``beta`` in ``(1/log n)(1 ± h)`` (default ``h = 1/sqrt(2 log n)``), equally spaced in
    ``1/beta``; the centre ``1/log n`` is included when ``num_betas`` is odd."""
    log_n = math.log(n)
    h = 1.0 / math.sqrt(2 * log_n) if half_width is None else half_width
    if not 0 < h < 1:
        raise ValueError(f"lambda window half-width must be in (0, 1), got {h}")
    lo, hi = (1 - h) / log_n, (1 + h) / log_n
    return 1.0 / np.linspace(1.0 / hi, 1.0 / lo, num_betas)[::-1]


# ----------------------------------------------------------------------------- per-beta means
class BetaMeans(NamedTuple):
    """Per-temperature posterior means of ``n L_n`` with their Monte Carlo errors (num_betas,)."""

    betas: np.ndarray
    mean: np.ndarray   # E^beta[n L_n]
    mcse: np.ndarray   # sd / sqrt(ESS)
    ess: np.ndarray    # ESS of the mean (not the bulk ESS)
    sd: np.ndarray     # posterior sd of n L_n (= sqrt(-d/dbeta E^beta[n L_n]))


def beta_means(betas: Sequence[float], nL_n: np.ndarray) -> BetaMeans:
    """``E^beta[n L_n]`` and its MCSE from draws ``nL_n`` of shape (num_betas, chains, draws)."""
    betas = np.asarray(betas, float)
    x = np.asarray(nL_n, float)
    if x.ndim != 3 or x.shape[0] != len(betas):
        raise ValueError(f"nL_n must be (num_betas, chains, draws) with num_betas={len(betas)}, "
                         f"got {x.shape}")
    mean = x.mean(axis=(1, 2))
    sd = x.std(axis=(1, 2))
    ess = _ess(x)
    return BetaMeans(betas, mean, sd / np.sqrt(np.maximum(ess, 1.0)), ess, sd)


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of the mean per beta (:func:`slt.samplers.diagnostics.ess_mean`: it sets an average's
    Monte Carlo error); a constant column (e.g. a degenerate chain) gets ESS = draws."""
    per = np.transpose(x, (1, 2, 0))              # (chains, draws, betas)
    ess = np.asarray(diagnostics.ess_mean(per), float)
    return np.where(np.isfinite(ess), ess, float(x.shape[1] * x.shape[2]))


# ----------------------------------------------------------------------------- WBIC
class WBICResult(NamedTuple):
    wbic: float     # E^{beta*}[n L_n], beta* = 1/log n
    stderr: float   # MCSE
    beta: float


def wbic(n: int, nL_n: np.ndarray) -> WBICResult:
    """WBIC = ``E^{beta*}[n L_n]`` with ``beta* = 1/log n`` (Watanabe 2013), from draws
    (chains, draws) sampled at ``beta*``. Biased for F_n by O(sqrt(log n)) in general."""
    m = beta_means([1.0 / math.log(n)], np.asarray(nL_n, float)[None])
    return WBICResult(float(m.mean[0]), float(m.mcse[0]), float(m.betas[0]))


# ----------------------------------------------------------------------------- TI
class TIResult(NamedTuple):
    """Thermodynamic integration ``F_n = ∫_0^1 E^beta[n L_n] dbeta``."""

    free_energy: float
    stderr: float           # sqrt(mc_stderr^2 + quadrature_error^2)
    mc_stderr: float        # sqrt(sum_k weight_k^2 mcse_k^2)
    quadrature_error: float # |T_h - T_2h| / 3 (Richardson estimate of the trapezoid's error)
    weights: np.ndarray     # (num_betas,) quadrature weights in beta: F = sum_k weight_k E_k


def trapezoid_weights(betas: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Weights ``c_k`` with ``∫_0^1 g(beta) dbeta ≈ sum_k c_k g(beta_k)``: the trapezoid rule in
    ``t = beta^(1/power)`` applied to ``g(t^p) p t^(p-1)``, corrected to integrate constants
    exactly (``sum_k c_k = 1``; equivalently ``g(1) + trapezoid(g - g(1))``). Without the
    correction the large constant ``n L_n(w0)`` in ``E^beta[n L_n]`` would carry the rule's
    error on ``∫ p t^(p-1) dt``: 6.4 nats for K = 16, p = 4, n = 1000 (measured). Needs
    betas[0] = 0 and betas[-1] = 1."""
    betas = np.asarray(betas, float)
    t = betas ** (1.0 / power)
    jac = power * t ** (power - 1) if power != 1 else np.ones_like(t)
    dt = np.diff(t)
    w = np.zeros_like(t)
    w[:-1] += dt / 2
    w[1:] += dt / 2
    w = w * jac
    w[-1] += 1.0 - w.sum()      # exact for constants: F = E_K + sum_k w_k (E_k - E_K)
    return w


def thermodynamic_integration(betas: Sequence[float], mean: Sequence[float], mcse: Sequence[float],
                              power: float = 4.0) -> TIResult:
    """``F_n = ∫_0^1 E^beta[n L_n] dbeta`` by the trapezoid rule in ``t = beta^(1/power)``.

    The grid must run from ``beta = 0`` (draws from the prior, where ``E^0[n L_n]`` is finite)
    to ``beta = 1``. Near 0 the integrand in beta is steep (``~ d / (2 beta)`` once the
    likelihood dominates), but in ``t`` it is ``p t^(p-1) E^{t^p}[n L_n] ~ p d / (2 t)`` times
    a factor vanishing at t -> 0, smooth enough for the trapezoid rule.

    Error estimate: Monte Carlo ``sqrt(sum_k c_k^2 mcse_k^2)`` (independent chains per beta)
    plus quadrature ``|T_h - T_2h| / 3`` (Richardson; T_2h uses every second grid point),
    added in quadrature.
    """
    betas, mean, mcse = (np.asarray(a, float) for a in (betas, mean, mcse))
    if betas[0] != 0.0 or not np.isclose(betas[-1], 1.0) or np.any(np.diff(betas) <= 0):
        raise ValueError("TI needs increasing betas from 0 to 1")
    w = trapezoid_weights(betas, power)
    fine = float(w @ mean)
    mc = float(np.sqrt(np.sum((w * mcse) ** 2)))
    idx = np.arange(0, len(betas), 2)
    if idx[-1] != len(betas) - 1:
        idx = np.append(idx, len(betas) - 1)
    if len(idx) >= 2 and len(idx) < len(betas):
        coarse = float(trapezoid_weights(betas[idx], power) @ mean[idx])
        quad = abs(fine - coarse) / 3.0
    else:
        quad = float("nan")
    total = math.sqrt(mc ** 2 + (quad if math.isfinite(quad) else 0.0) ** 2)
    return TIResult(fine, total, mc, quad, w)


# ----------------------------------------------------------------------------- stepping stone
class SteppingStoneResult(NamedTuple):
    free_energy: float
    stderr: float
    log_ratios: np.ndarray   # (num_betas - 1,) log Z_{k+1} / Z_k
    step_stderr: np.ndarray  # (num_betas - 1,)


def stepping_stone(betas: Sequence[float], nL_n: np.ndarray) -> SteppingStoneResult:
    """Stepping-stone estimate (Xie et al. 2011) on the TI samples.

    ``log Z_{k+1}/Z_k = log E^{beta_k}[exp(-(beta_{k+1} - beta_k) n L_n)]`` (log-mean-exp of
    the draws at ``beta_k``); ``F_n = -sum_k log Z_{k+1}/Z_k`` when ``beta_0 = 0`` (Z_0 = 1, the
    prior is normalised) and ``beta_K = 1``. Per-step variance by the delta method,
    ``var(r) / (ESS(r) mean(r)^2)`` with ``r`` the importance ratios, steps independent.
    """
    betas = np.asarray(betas, float)
    x = np.asarray(nL_n, float)
    if betas[0] != 0.0 or not np.isclose(betas[-1], 1.0):
        raise ValueError("stepping stone needs betas from 0 to 1")
    db = np.diff(betas)
    logs = -db[:, None, None] * x[:-1]                    # (K-1, chains, draws)
    top = logs.max(axis=(1, 2), keepdims=True)
    r = np.exp(logs - top)
    mean_r = r.mean(axis=(1, 2))
    log_ratio = np.log(mean_r) + top[:, 0, 0]
    ess = _ess(r)
    rel_var = r.var(axis=(1, 2)) / (np.maximum(ess, 1.0) * mean_r ** 2)
    step_se = np.sqrt(rel_var)
    return SteppingStoneResult(float(-log_ratio.sum()), float(np.sqrt(rel_var.sum())), log_ratio,
                               step_se)


# ----------------------------------------------------------------------------- lambda
class SlopeResult(NamedTuple):
    """A weighted least-squares line ``y = intercept + slope x``."""

    slope: float
    stderr: float       # from the given y errors, inflated by sqrt(chi2/dof) when that exceeds 1
    intercept: float
    chi2_dof: float     # reduced chi^2 of the residuals (nan with two points)


def weighted_slope(x: Sequence[float], y: Sequence[float], yerr: Sequence[float] | None = None) -> SlopeResult:
    """Weighted least squares with weights ``1 / yerr^2`` (ordinary least squares without errors).

    ``stderr = sqrt(1 / sum_i w_i (x_i - xbar_w)^2) * max(1, sqrt(chi2 / (N - 2)))`` — the
    known-variance error, inflated when the scatter exceeds the stated errors (e.g. the O_p(1)
    terms of F_n across n). Without ``yerr`` it is the usual OLS standard error.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        raise ValueError("a slope needs at least two points")
    known = yerr is not None
    w = 1.0 / np.maximum(np.asarray(yerr, float), 1e-300) ** 2 if known else np.ones_like(x)
    xb = np.sum(w * x) / np.sum(w)
    yb = np.sum(w * y) / np.sum(w)
    sxx = np.sum(w * (x - xb) ** 2)
    slope = float(np.sum(w * (x - xb) * (y - yb)) / sxx)
    intercept = float(yb - slope * xb)
    resid = y - intercept - slope * x
    dof = len(x) - 2
    chi2 = float(np.sum(w * resid ** 2) / dof) if dof > 0 else float("nan")
    if known:
        se = math.sqrt(1.0 / sxx) * (max(1.0, math.sqrt(chi2)) if math.isfinite(chi2) else 1.0)
    else:
        se = math.sqrt(chi2 / sxx) if math.isfinite(chi2) else float("nan")
    return SlopeResult(slope, float(se), intercept, chi2)


def beta_slope(betas: Sequence[float], mean: Sequence[float], mcse: Sequence[float]) -> SlopeResult:
    """Global lambda from temperatures: the WLS slope of ``E^beta[n L_n]`` against ``1/beta``
    (``E^beta[n L_n] ≈ n L_n(w0) + lambda / beta`` near ``beta* = 1/log n``; Watanabe 2013's
    two-temperature estimator is the two-point case)."""
    return weighted_slope(1.0 / np.asarray(betas, float), mean, mcse)


def log_n_slope(n: Sequence[int], free_energy_minus_nL: Sequence[float],
                stderr: Sequence[float] | None = None) -> SlopeResult:
    """Global lambda from a sweep: the WLS slope of ``F_n - n L_n(w0)`` against ``log n``
    (``= lambda log n - (m - 1) log log n + O_p(1)``; the log log n term biases it when m > 1)."""
    return weighted_slope(np.log(np.asarray(n, float)), free_energy_minus_nL, stderr)


# ----------------------------------------------------------------------------- exact answers
class LinearGaussian(NamedTuple):
    """Exact answers for Bayesian linear regression ``y = X w + e`` (science.md, item 1)."""

    free_energy: float
    E_nL_n: np.ndarray   # at the requested betas


def linear_gaussian_free_energy(x: np.ndarray, y: np.ndarray, noise_std: float = 1.0,
                                prior_std: float = 1.0) -> float:
    """``F_n = (n d_out/2) log(2 pi sigma^2) + (1/2) log det(I + (s^2/sigma^2) X X^T)
    + (1/(2 sigma^2)) y^T (I + (s^2/sigma^2) X X^T)^{-1} y`` summed over output columns, computed
    in d x d form via the matrix determinant lemma and Woodbury (stable for n >> d)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64).reshape(len(x), -1)
    n, d = x.shape
    s2, sig2 = prior_std ** 2, noise_std ** 2
    xtx = x.T @ x
    a1 = np.eye(d) / s2 + xtx / sig2                  # A_1
    _, logdet_a = np.linalg.slogdet(a1)
    logdet = logdet_a + d * math.log(s2)              # log det(I_n + s^2/sig^2 X X^T)
    xty = x.T @ y                                     # (d, d_out)
    quad = (np.sum(y * y) - np.sum(xty * np.linalg.solve(a1, xty)) / sig2) / sig2
    d_out = y.shape[1]
    return float(0.5 * n * d_out * math.log(2 * math.pi * sig2) + 0.5 * d_out * logdet + 0.5 * quad)


def linear_gaussian_E_nL_n(x: np.ndarray, y: np.ndarray, betas: Sequence[float], noise_std: float = 1.0,
                           prior_std: float = 1.0) -> np.ndarray:
    """``E^beta[n L_n] = (n/2) log(2 pi sigma^2) + (||y - X m_beta||^2 + tr(A_beta^{-1} X^T X))
    / (2 sigma^2)``, ``A_beta = I/s^2 + (beta/sigma^2) X^T X``, ``m_beta = (beta/sigma^2)
    A_beta^{-1} X^T y`` (summed over output columns); valid at beta = 0 (the prior)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64).reshape(len(x), -1)
    n, d = x.shape
    s2, sig2 = prior_std ** 2, noise_std ** 2
    xtx, xty = x.T @ x, x.T @ y
    d_out = y.shape[1]
    out = []
    for beta in np.asarray(betas, float):
        a = np.eye(d) / s2 + beta * xtx / sig2
        m = beta / sig2 * np.linalg.solve(a, xty)
        resid = y - x @ m
        tr = np.trace(np.linalg.solve(a, xtx))
        out.append(0.5 * n * d_out * math.log(2 * math.pi * sig2)
                   + (np.sum(resid ** 2) + d_out * tr) / (2 * sig2))
    return np.asarray(out)


def linear_gaussian_beta_slope(x, y, betas, noise_std: float = 1.0, prior_std: float = 1.0) -> float:
    """The exact counterpart of :func:`beta_slope`: the OLS slope of the closed-form
    ``E^beta[n L_n]`` against ``1/beta`` at the same betas (below d/2 at finite n: shrinkage)."""
    e = linear_gaussian_E_nL_n(x, y, betas, noise_std, prior_std)
    return weighted_slope(1.0 / np.asarray(betas, float), e).slope


def is_linear_regression(widths: Sequence[int], activation: str, bias: bool,
                         likelihood: str = "gaussian") -> bool:
    """Models with a closed-form free energy here: ``[d, k]`` (one layer, any outputs), no bias,
    Gaussian likelihood."""
    return len(widths) == 2 and not bias and likelihood == "gaussian"


def has_closed_form(problem) -> bool:
    """:func:`is_linear_regression` for a :class:`slt.posterior.Problem` (any model kind)."""
    spec = problem.spec
    return spec is not None and is_linear_regression(spec.widths, spec.activation, spec.bias,
                                                     problem.likelihood)
