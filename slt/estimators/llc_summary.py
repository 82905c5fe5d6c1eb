"""What an LLC run's traces say: the result record, the trend test, the control variates and
the summary (estimate, MCSE, R-hat/ESS, health checks, warnings) that turns (C, T) loss traces
into an :class:`LLCResult`. The samplers that produce the traces are in
:mod:`slt.estimators.learning_coefficient` (which re-exports every name here).
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

TREND_RTOL = 0.05   # trend test: |second-half mean - first-half mean| + 2 se <= 5% of the estimate
TREND_ATOL = 0.02   # ... or this much in LLC units (estimates near 0)
CV_FLOAT_FLOOR = 8.0   # with control variates the MCSE is at least this x nbeta x eps(dtype) x |L|
CV_CHECK_Z = 2.0       # the control variates' correction must be within this many of its se of 0


class LLCResult(NamedTuple):
    """An LLC estimate with its traces and settings. Shapes: C = num_chains, T = num_draws.

    ``mean``/``std``/``mcse`` are None when the estimate is withheld (a chain diverged).
    """

    mean: Optional[float]        # nbeta (mean loss over all draws - L(w*))
    std: Optional[float]         # standard deviation of the per-chain estimates (as devinterp)
    mcse: Optional[float]        # Monte Carlo standard error of ``mean`` (sd / sqrt(ESS of the mean))
    per_chain: np.ndarray        # (C,)   per-chain estimates
    loss_trace: np.ndarray       # (C, T) L at every draw (minibatch SGLD: the batch loss)
    running_mean: np.ndarray     # (C, T) per-chain running LLC estimate
    acceptance: np.ndarray       # (C,)   mean MH acceptance (MALA/NUTS) or its estimate (SGLD)
    step_size: np.ndarray        # (C,)   step size used for the draws (adapted or given)
    rhat: float                  # split R-hat of the loss across chains
    ess: float                   # bulk ESS of the loss
    loss_at_w_star: float        # L(w*)
    nbeta: float
    gamma: float
    sampler: str
    num_chains: int
    num_draws: int
    num_burnin: int
    num_adapt: int
    batch_size: Optional[int]
    diverged: bool
    warnings: tuple
    sampling_s: float            # wall time of the compiled run (includes compilation)
    converged: Optional[bool] = None    # the trend test passed (False when the estimate is withheld)
    trend: Optional["TrendTest"] = None
    trajectory_length: Optional[float] = None   # HMC: nominal T = (pi/2)/sqrt(kappa_min)
    steps_per_draw: Optional[float] = None      # gradient evaluations per draw and chain
    positions: Optional[np.ndarray] = None      # (C, T', d) the draws (keep_positions; T' = T // thin)
    observables: Optional[np.ndarray] = None    # (C, T, k) observable_fn at every draw (if given)
    observables_at_w_star: Optional[np.ndarray] = None   # (k,) observable_fn(w*, data)
    raw_mean: Optional[float] = None    # control variates on: the plain average nbeta (L - L(w*))
    raw_mcse: Optional[float] = None    # ... and its Monte Carlo standard error


# ----------------------------------------------------------------------------- trend test
class TrendTest(NamedTuple):
    """Has the estimate stopped moving? Early-vs-late segments of the same chains.

    ``first``/``second``: the LLC from the first and second half of every chain's draws;
    ``drift = second - first`` and ``drift_se`` its standard error from the per-chain differences
    (chains are independent, so no autocorrelation model is needed; one chain: 4 batch means
    per half). ``converged`` iff ``|drift| + 2 drift_se <= max(rtol |estimate|, atol)``: the
    drift is small *with confidence*, so a short, noisy run does not pass for lack of power.
    """

    converged: bool
    first: float
    second: float
    drift: float
    drift_se: float
    tolerance: float


def trend_test(excess: np.ndarray, rtol: float = TREND_RTOL, atol: float = TREND_ATOL) -> TrendTest:
    """:class:`TrendTest` of per-draw LLC contributions ``excess = nbeta (L - L(w*))``, (C, T)."""
    excess = np.asarray(excess, np.float64)
    num_chains, num_draws = excess.shape
    half = num_draws // 2
    if half < 4:
        return TrendTest(False, math.nan, math.nan, math.nan, math.nan, math.nan)
    a, b = excess[:, :half], excess[:, half:2 * half]
    if num_chains >= 2:
        diffs = b.mean(axis=1) - a.mean(axis=1)
    else:  # one chain: 4 batch means per half, paired
        q = half // 4
        diffs = (b[0, :4 * q].reshape(4, q).mean(1) - a[0, :4 * q].reshape(4, q).mean(1))
    drift = float(diffs.mean())
    se = float(diffs.std(ddof=1) / math.sqrt(len(diffs)))
    tol = max(rtol * abs(float(excess.mean())), atol)
    ok = bool(np.isfinite(drift) and abs(drift) + 2.0 * se <= tol)
    return TrendTest(ok, float(a.mean()), float(b.mean()), drift, se, tol)


def trend_consistent(trend: TrendTest) -> bool:
    """The weaker check for the plain average when control variates decide convergence: its
    drift is not *significantly* beyond the tolerance (``|drift| - 2 se <= tolerance``), so a
    trend the plain loss trace shows clearly still fails the run."""
    return bool(np.isfinite(trend.drift) and abs(trend.drift) - 2.0 * trend.drift_se <= trend.tolerance)


# ----------------------------------------------------------------------------- control variates
@functools.lru_cache(maxsize=None)
def score_observable(loss_fn: Callable, observable_fn: Callable | None = None) -> Callable:
    """``(w, data) -> concat(observable_fn(w, data), w, grad L(w))``: what the draw program records
    per draw for :func:`stein_adjust` (one extra gradient per draw; cached per function pair so
    the compiled draw program is reused)."""
    grad = jax.grad(loss_fn)

    def fn(w, data):
        parts = [] if observable_fn is None else [jnp.atleast_1d(observable_fn(w, data)).astype(w.dtype)]
        return jnp.concatenate(parts + [w, grad(w, data)])

    return fn


def stein_adjust(excess: np.ndarray, w: np.ndarray, grad: np.ndarray, w_star, nbeta: float,
                 gamma: float) -> Optional[np.ndarray]:
    """Zero-variance control variates (Assaraf & Caffarel 1999; Mira, Solgi & Imparato 2013) for
    ``excess = nbeta (L - L(w*))`` (C, T), from the draws ``w`` and ``grad = grad L(w)`` (C, T, d).

    Stein's identity: for the localised posterior ``pi`` and any smooth ``g`` with ``g pi -> 0``,
    ``E_pi[div g + g . grad log pi] = 0``. With ``u = w - w*``, ``s = grad log pi = -nbeta grad L -
    gamma u`` and ``g`` constant or linear in u, the d + d^2 functions ``Z = (s_i, u_j s_i +
    delta_ij)`` have mean exactly 0 under pi, so ``excess - Z . b`` has the same expectation for
    any ``b``. The b that minimises its variance (least squares of excess on Z) removes every
    quadratic fluctuation: a Gaussian posterior's ``nbeta (L - L(w*))`` has zero variance after
    it, and the near-regular directions of a singular model (most of a ReLU network's) lose most
    of theirs (measured: MCSE 3.9x smaller on a [2, 2, 1] ReLU net, 1.3-1.4x on deep linear and
    2-parameter singular models).

    Cross-fitted: chain c's ``b`` is fitted on the other chains only, so it is independent of
    chain c's draws and ``E[excess_c - Z_c . b_(-c)] = E[excess_c]`` exactly (chains are
    independent): no bias from fitting b. Returns the adjusted (C, T) series (its per-draw
    values feed the mean, MCSE, per-chain values and trend test as the plain ones did), or None
    (fewer than 2 chains, non-finite values, or a least-squares fit that fails: use the plain
    average)."""
    excess = np.asarray(excess, np.float64)
    w, grad = np.asarray(w, np.float64), np.asarray(grad, np.float64)
    num_chains, num_draws, d = w.shape
    if num_chains < 2 or num_draws < 8 or not (np.isfinite(excess).all() and np.isfinite(w).all()
                                                 and np.isfinite(grad).all()):
        return None
    u = w - np.asarray(w_star, np.float64)
    s = -nbeta * grad - gamma * u
    z = np.concatenate([s, (s[..., :, None] * u[..., None, :]).reshape(num_chains, num_draws, d * d)
                        + np.eye(d).ravel()], axis=-1)
    k = z.shape[-1]
    # per-chain sufficient statistics; chain c's coefficients from the others' pooled moments
    sz, sx = z.sum(axis=1), excess.sum(axis=1)
    szz = np.einsum("cti,ctj->cij", z, z)
    szx = np.einsum("cti,ct->ci", z, excess)
    out = np.empty_like(excess)
    for c in range(num_chains):
        m = np.arange(num_chains) != c
        count = num_draws * (num_chains - 1)
        mz, mx = sz[m].sum(0) / count, sx[m].sum() / count
        czz = szz[m].sum(0) / count - np.outer(mz, mz)
        czx = szx[m].sum(0) / count - mz * mx
        scale = np.sqrt(np.clip(np.diag(czz), 0.0, None))
        keep = scale > 1e-12 * max(float(scale.max()), 1e-300)
        b = np.zeros(k)
        if keep.any():
            a = czz[np.ix_(keep, keep)] / np.outer(scale[keep], scale[keep])
            rhs = czx[keep] / scale[keep]
            if not (np.isfinite(a).all() and np.isfinite(rhs).all()):
                return None
            try:
                b[keep] = np.linalg.lstsq(a, rhs, rcond=1e-9)[0] / scale[keep]
            except np.linalg.LinAlgError:   # LAPACK's SVD did not converge: the plain average instead
                return None
        out[c] = excess[c] - z[c] @ b
    return out if np.isfinite(out).all() else None


class CVCheck(NamedTuple):
    """Is the control variates' correction consistent with its exact expectation, 0?

    ``correction`` = mean of ``Z . b`` over all draws (the plain average minus the control-variate
    estimate), ``se`` its Monte Carlo standard error (ESS of the mean), ``z = correction / se``.
    """

    correction: float
    se: float
    z: float
    ok: bool


def cv_check(excess: np.ndarray, adjusted: np.ndarray, z_max: float = CV_CHECK_Z) -> CVCheck:
    """:class:`CVCheck` of the series ``excess`` (plain) and ``adjusted`` (:func:`stein_adjust`).

    Stein's identity gives ``E_pi[Z] = 0`` exactly, and chain c's ``b`` is fitted on the other
    chains, so at stationarity ``E[Z_c . b_(-c)] = 0``: a correction significantly away from 0
    (``|z| > z_max``) says the draws do not yet satisfy the identity the variates rely on, and
    the variates can then move a right plain average away from the answer by more than their
    error bar claims (measured on ``x w1 w2^2`` at 500 draws: the variates moved the estimate by
    +0.025 to z = +5 against an exact quadrature while the plain average was off by -1.9 of its se;
    the check reads z = -2.7 there; both agree at 4000 draws). A Hausman-type test: it asks nothing of the target but Stein's identity.
    ``num_draws: auto`` keeps drawing while it fails; at the end the plain average is reported."""
    from slt.samplers import diagnostics

    corr = np.asarray(excess, np.float64) - np.asarray(adjusted, np.float64)
    mean = float(corr.mean())
    se = diagnostics.mcse_mean(corr) if corr.shape[1] >= 4 else float("nan")
    z = mean / se if se > 0 else (0.0 if mean == 0 else math.inf)
    return CVCheck(mean, float(se), float(z), bool(math.isfinite(z) and abs(z) <= z_max))


Z_975 = 1.959963984540054   # the normal 97.5% quantile


def t_ratio(df: int) -> float:
    """``t_{df, 0.975} / z_{0.975}``: how much wider a 95% interval is when its standard error is
    estimated from ``df + 1`` independent values (exact for df 1 and 2; Cornish-Fisher's expansion
    to 1/df^4 beyond, within 0.12% of the exact quantile at df = 3 and 1.1e-4 from df = 5)."""
    if df < 1:
        return math.inf
    z = Z_975
    if df == 1:
        t = math.tan(math.pi * 0.475)
    elif df == 2:
        t = 0.95 * math.sqrt(2.0 / (4 * 0.975 * 0.025))
    else:
        t = (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
             + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)
             + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / (92160 * df ** 4))
    return t / z


def stderr(res: "LLCResult") -> Optional[float]:
    """The LLC's reported standard error (the llc stage, lambda_hat, restricted LLCs, the LLC along
    training): the larger of the MCSE and the between-chain standard error ``std / sqrt(C)``, the
    latter times :func:`t_ratio` ``(C - 1)``: it is estimated from only C chain means (8 by
    default: 1.21x), so read as a normal error bar it would be too short in the tails (measured
    over the quadrature study's 54 pairs, where it sets the error bar in 25: max |z| 3.35 without
    the factor, 2.91 with it; sd z 1.06, 0.97). None when the estimate is withheld."""
    if res.mean is None:
        return None
    c = res.num_chains
    between = (res.std or 0.0) / math.sqrt(c) * t_ratio(c - 1) if c > 1 else 0.0
    return float(max(res.mcse or 0.0, between))


def summarize(loss: np.ndarray, accept: np.ndarray, eps: np.ndarray, loss_star: float, *,
              nbeta: float, gamma: float, sampler: str, num_burnin: int = 0, num_adapt: int = 0,
              batch_size: int | None = None, d: int = 1, sampling_s: float = float("nan"),
              divergence_factor: float = 100.0, draws_cap: int | None = None,
              min_step: float | None = None, nonfinite=None, adjusted: np.ndarray | None = None,
              trend_atol: float = TREND_ATOL, float_eps: float | None = None) -> LLCResult:
    """Turn loss traces (C, T) into an :class:`LLCResult` with diagnostics and warnings.

    ``draws_cap``: the max_draws an auto run stopped at (named in the not-converged warning).
    The estimate is withheld (``mean = None``, ``converged = False``, ``diverged = True``) when a
    chain exploded (``nbeta (L - L(w*))`` above ``divergence_factor * (d + 10)``: an LLC is at
    most d/2) or fails a health check of :func:`slt.samplers.health.chain_problems`: a non-finite loss,
    transitions that met a NaN of the model (``nonfinite``, (C,) counts from the HMC/MALA draw
    program), a step size at or below ``min_step``, collapsed acceptance, or a chain that never
    moved.

    ``adjusted``: the control-variate series (C, T) of :func:`stein_adjust`, used for the
    estimate, MCSE, per-chain values, running means and trend test (the health checks and
    R-hat stay on the loss itself); ``raw_mean``/``raw_mcse`` then report the plain average.
    Unless :func:`cv_check` fails: then the plain average is the estimate, with a warning.
    ``trend_atol``: the trend test's absolute tolerance. ``float_eps``: the machine epsilon of
    the dtype L was computed in; with control variates the MCSE is at least ``CV_FLOAT_FLOOR x
    nbeta x float_eps x max(|L(w*)|, mean |L|)``: on a Gaussian posterior they remove all the
    Monte Carlo variance, and what is left is the rounding of L itself (a float32 L of ~20 at
    nbeta = 30 is off by ~1e-4 in LLC units, and that does not average out over draws).
    """
    from slt.samplers import diagnostics, health

    num_chains, num_draws = loss.shape
    excess = nbeta * (loss - loss_star)
    warns = []
    finite = np.isfinite(excess)
    exploded = finite & (np.where(finite, excess, 0.0) > divergence_factor * (d + 10))
    bad_chains = np.flatnonzero(exploded.any(axis=1))
    # SGLD's acceptance is only an estimate (with minibatches, of batch losses): not a health signal
    sick, sick_msgs = health.chain_problems("llc", loss, step_size=eps, nonfinite=nonfinite, min_step=min_step,
                                            accept=None if sampler == "sgld" else accept)
    diverged = bool(len(bad_chains)) or bool(sick.any()) or not math.isfinite(loss_star)
    steps = np.arange(1, num_draws + 1)
    if adjusted is not None and not diverged and finite.all():
        check = cv_check(excess, adjusted)
        if not check.ok:
            warns.append(f"llc: control variates not used: their correction {check.correction:+.3g} +- "
                         f"{check.se:.2g} is not consistent with its exact mean 0 (z = {check.z:+.1f}), so the "
                         "draws do not yet satisfy the identity they rely on; the plain average is reported "
                         "(more draws may let them help)")
            adjusted = None
    est = excess if adjusted is None else np.asarray(adjusted, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        per_chain = est.mean(axis=1)
        running = np.cumsum(est, axis=1) / steps
    acc = np.nanmean(accept, axis=1) if np.isfinite(accept).any() else np.full(num_chains, np.nan)
    mean = std = mcse = raw_mean = raw_mcse = None
    trend, converged = None, False
    rhat = ess = float("nan")
    if diverged:
        if len(bad_chains) or not sick.any():
            warns.append(f"llc: {len(bad_chains)} of {num_chains} chains diverged (exploding loss); estimate "
                         f"withheld. Lower the step size" + (" or the batch noise" if batch_size else ""))
        warns.extend(m + "; estimate withheld" for m in sick_msgs)
    else:
        mean = float(est.mean())
        std = float(per_chain.std(ddof=1)) if num_chains > 1 else float("nan")
        if num_draws >= 4:
            with warnings.catch_warnings():  # constant traces (tiny steps): R-hat is 0/0
                warnings.simplefilter("ignore", RuntimeWarning)
                rhat = float(diagnostics.rhat(loss[..., None])[0])
                ess = float(diagnostics.ess_bulk(est[..., None])[0])
                # the error of an average: the ESS of the mean, not the rank-normalised bulk ESS
                # (on heavy-tailed control-variate series the bulk ESS was 1.7-5.7x larger)
                if adjusted is not None:
                    raw_mcse = diagnostics.mcse_mean(excess)
                mcse = diagnostics.mcse_mean(est)
        if adjusted is not None:
            raw_mean = float(excess.mean())
            eps_l = float_eps if float_eps is not None else float(np.finfo(np.float32).eps)
            floor = CV_FLOAT_FLOOR * nbeta * eps_l * max(abs(loss_star), float(np.mean(np.abs(loss))))
            mcse = max(mcse if mcse is not None else 0.0, floor)
            std = max(std, floor * math.sqrt(num_chains)) if num_chains > 1 else std
        trend = trend_test(est, atol=trend_atol)
        converged = trend.converged
        if adjusted is not None and converged:
            raw_trend = trend_test(excess, atol=trend_atol)
            if not trend_consistent(raw_trend):   # report the plain trace's drift that failed the run
                trend, converged = raw_trend._replace(converged=False), False
        if not converged:
            warns.append(f"llc: not converged: the estimate moved from {trend.first:.4g} (first half of "
                         f"the draws) to {trend.second:.4g} (second half), drift {trend.drift:+.3g} +- "
                         f"{trend.drift_se:.2g} against a tolerance of {trend.tolerance:.2g}; the "
                         "number is not final: run more draws (num_draws: auto extends them)"
                         + (f" (stopped at the cap max_draws = {draws_cap})" if draws_cap else ""))
        if mean < 0:
            warns.append(f"llc: negative estimate {mean:.3g}: the mean loss fell below L(w*), so w* "
                         "is not a local minimum (train it further, or use at: trained)")
        if math.isfinite(rhat) and rhat > 1.1:
            warns.append(f"llc: R-hat of the loss across chains is {rhat:.2f} > 1.1: chains disagree "
                         "(not mixed); run more draws or check the loss traces")
        if sampler in ("mala", "nuts") and np.nanmean(acc) < 0.2:
            warns.append(f"llc: mean acceptance {np.nanmean(acc):.2f} is low: the chains barely move")
        if sampler == "sgld" and batch_size is None and np.nanmean(acc) < 0.5:
            warns.append(f"llc: SGLD's MH acceptance estimate is {np.nanmean(acc):.2f} < 0.5: the step "
                         "size is large and biases the estimate upwards; lower it or use sampler: mala")
    return LLCResult(mean=mean, std=std, mcse=mcse, per_chain=per_chain, loss_trace=loss,
                     running_mean=running, acceptance=acc, step_size=eps, rhat=rhat, ess=ess,
                     loss_at_w_star=loss_star, nbeta=nbeta, gamma=gamma, sampler=sampler,
                     num_chains=num_chains, num_draws=num_draws, num_burnin=num_burnin,
                     num_adapt=num_adapt, batch_size=batch_size, diverged=diverged,
                     warnings=tuple(warns), sampling_s=sampling_s, converged=converged, trend=trend,
                     raw_mean=raw_mean, raw_mcse=raw_mcse)
