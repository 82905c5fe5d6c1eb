"""MCMC diagnostics (ArviZ's definitions, computed in numpy): split R-hat and bulk ESS on raw parameters and on
symmetry-invariant quantities (``L_n`` and the network output at fixed inputs).

Raw-parameter R-hat is meaningless under the permutation symmetry of hidden nodes (chains
may settle in different but equivalent labellings), so convergence is judged on the
invariant quantities; the raw numbers are reported for completeness.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np


# when a run is summarised as converged (current practice, Vehtari et al. 2021, ArviZ): R-hat <= 1.01
# and bulk ESS >= 400 on every reported (invariant) quantity; with ``num_samples: auto`` (NUTS, HMC,
# replica) the first check comes after AUTO_FIRST draws per chain, then the draws double
RHAT_MAX, ESS_MIN = 1.01, 400
AUTO_FIRST = 500


def _az():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


class ChainDiagnostics(NamedTuple):
    rhat_max_invariant: float
    ess_bulk_min_invariant: float
    rhat_max_raw: float
    ess_bulk_min_raw: float
    divergences: int
    rhat_loss: float
    ess_bulk_loss: float


def rhat(draws: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat over the leading (chains, draws) axes (Vehtari et al. 2021:
    the max of the bulk and the folded-tail R-hat), as ``arviz.rhat(method="rank")`` computes it
    (numpy here: importing ArviZ took 2-4 s of a small model's ``slt llc``)."""
    draws = np.asarray(draws, dtype=float)
    if draws.shape[0] < 2 and draws.shape[1] < 4:
        return np.full(draws.shape[2:], np.nan)
    flat = draws.reshape(draws.shape[:2] + (-1,))
    out = np.array([_rhat_rank(flat[:, :, i]) for i in range(flat.shape[2])], float)
    return out.reshape(draws.shape[2:])


def ess_bulk(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size over the leading (chains, draws) axes, as
    ``arviz.ess(method="bulk")`` computes it (rank-normalised split chains, Geyer's initial
    monotone sequence)."""
    draws = np.asarray(draws, dtype=float)
    if draws.shape[1] < 4:
        return np.full(draws.shape[2:], np.nan)
    flat = draws.reshape(draws.shape[:2] + (-1,))
    out = np.array([_ess_bulk(flat[:, :, i]) for i in range(flat.shape[2])], float)
    return out.reshape(draws.shape[2:])


def ess_mean(draws: np.ndarray) -> np.ndarray:
    """Effective sample size *for the mean* over the leading (chains, draws) axes, as
    ``arviz.ess(method="mean")`` computes it: split chains, no rank normalisation. This is the
    one that sets the Monte Carlo error of an average (Vehtari et al. 2021, section 4.1): the bulk
    ESS ranks the draws first, which tames heavy tails and rare excursions, so on such traces it
    can be several times larger and its MCSE several times too small (measured on the LLC's
    control-variate series, 1.7-5.7x)."""
    draws = np.asarray(draws, dtype=float)
    if draws.shape[1] < 4:
        return np.full(draws.shape[2:], np.nan)
    flat = draws.reshape(draws.shape[:2] + (-1,))
    out = np.array([np.nan if np.isnan(flat[:, :, i]).any() else _ess(_split(flat[:, :, i]))
                    for i in range(flat.shape[2])], float)
    return out.reshape(draws.shape[2:])


def _split(a):
    half = a.shape[1] // 2
    return np.concatenate([a[:, :half], a[:, a.shape[1] - half:]], axis=0)


# Wichura (1988), Algorithm AS241 (PPND16): the inverse normal CDF to ~1e-16 relative, as Python's
# statistics.NormalDist.inv_cdf computes it; numpy here because importing scipy.special took 0.2 s
# of a small model's `slt llc` (polynomial coefficients, highest degree first)
_AS241 = {
    "central": ([2.5090809287301226727e+3, 3.3430575583588128105e+4, 6.7265770927008700853e+4,
                 4.5921953931549871457e+4, 1.3731693765509461125e+4, 1.9715909503065514427e+3,
                 1.3314166789178437745e+2, 3.3871328727963666080e+0],
                [5.2264952788528545610e+3, 2.8729085735721942674e+4, 3.9307895800092710610e+4,
                 2.1213794301586595867e+4, 5.3941960214247511077e+3, 6.8718700749205790830e+2,
                 4.2313330701600911252e+1, 1.0]),
    "tail": ([7.7454501427834140764e-4, 2.2723844989269184583e-2, 2.4178072517745061177e-1,
              1.2704582524523683826e+0, 3.6478483247632046050e+0, 5.7694972214606914055e+0,
              4.6303378461565452959e+0, 1.4234371107496835773e+0],
             [1.0507500716444168432e-9, 5.4759380849953449460e-4, 1.5198666563616457197e-2,
              1.4810397642748007459e-1, 6.8976733498510000455e-1, 1.6763848301838038494e+0,
              2.0531916266377588219e+0, 1.0]),
    "far": ([2.0103343992922881327e-7, 2.7115555687434875782e-5, 1.2426609473880784386e-3,
             2.6532189526576123093e-2, 2.9656057182850489123e-1, 1.7848265399172913358e+0,
             5.4637849111641143699e+0, 6.6579046435011037772e+0],
            [2.0442631033899397856e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
             7.8686913114561325910e-4, 1.4875361290850614853e-2, 1.3692988092273580531e-1,
             5.9983220655588793769e-1, 1.0]),
}


def _ratio(name, r):
    num, den = _AS241[name]
    return np.polyval(num, r) / np.polyval(den, r)


def ndtri(p):
    """The standard normal quantile of ``p`` in (0, 1) (AS241; ``scipy.special.ndtri`` to ~1e-15)."""
    p = np.asarray(p, np.float64)
    q = p - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        central = q * _ratio("central", 0.180625 - q * q)
        r = np.sqrt(-np.log(np.where(q <= 0.0, p, 1.0 - p)))
        tail = np.where(r <= 5.0, _ratio("tail", r - 1.6), _ratio("far", r - 5.0))
    return np.where(np.abs(q) <= 0.425, central, np.where(q < 0.0, -tail, tail))


def _z_scale(a):
    """Normal scores of the pooled average ranks (Blom's offset 3/8)."""
    flat = a.ravel()
    order = np.argsort(flat, kind="mergesort")
    srt = flat[order]
    first = np.r_[True, srt[1:] != srt[:-1]]
    group = np.cumsum(first) - 1
    bounds = np.r_[np.nonzero(first)[0], flat.size]
    avg = 0.5 * (bounds[:-1] + bounds[1:] - 1) + 1.0
    ranks = np.empty(flat.size)
    ranks[order] = avg[group]
    return ndtri((ranks - 0.375) / (flat.size + 0.25)).reshape(a.shape)


def _rhat_plain(a):
    num = a.shape[1]
    within = np.mean(np.var(a, axis=1, ddof=1))
    between = num * np.var(np.mean(a, axis=1), ddof=1)
    return float(np.sqrt((between / within + num - 1) / num))


def _rhat_rank(a):
    if np.isnan(a).any() or a.shape[0] < 2 or a.shape[1] < 4:
        return np.nan
    split = _split(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        bulk = _rhat_plain(_z_scale(split))
        tail = _rhat_plain(_z_scale(np.abs(split - np.median(split))))
    return max(bulk, tail) if not (np.isnan(bulk) or np.isnan(tail)) else np.nan


def _ess_bulk(a):
    if np.isnan(a).any() or a.shape[1] < 4:
        return np.nan
    return _ess(_z_scale(_split(a)))


def _ess(a):
    if np.max(a) - np.min(a) < np.finfo(float).resolution:
        return float(a.size)
    n_chain, n_draw = a.shape
    m = 1 << int(2 * n_draw - 1).bit_length()
    c = a - a.mean(axis=1, keepdims=True)
    f = np.fft.rfft(c, n=m, axis=1)
    acov = np.fft.irfft(f * np.conjugate(f), n=m, axis=1)[:, :n_draw] / n_draw
    mean_acov = acov.mean(axis=0)
    mean_var = mean_acov[0] * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += np.var(a.mean(axis=1), ddof=1)
    rho = np.zeros(n_draw)
    rho_even, rho[0] = 1.0, 1.0
    rho_odd = 1.0 - (mean_var - mean_acov[1]) / var_plus
    rho[1] = rho_odd
    t = 1
    while t < n_draw - 3 and rho_even + rho_odd > 0.0:
        rho_even = 1.0 - (mean_var - mean_acov[t + 1]) / var_plus
        rho_odd = 1.0 - (mean_var - mean_acov[t + 2]) / var_plus
        if rho_even + rho_odd >= 0:
            rho[t + 1], rho[t + 2] = rho_even, rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    t = 1
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2
    ess = n_chain * n_draw
    tau = -1.0 + 2.0 * np.sum(rho[:max_t + 1]) + np.sum(rho[max_t + 1:max_t + 2])
    tau = max(tau, 1 / np.log10(ess))
    return float(np.nan if np.isnan(rho).any() else ess / tau)


def _as_dataset(draws: np.ndarray):
    return _az().convert_to_dataset({"x": draws})


def summarize(loss: np.ndarray, outputs: np.ndarray, positions: np.ndarray,
              diverging: np.ndarray) -> ChainDiagnostics:
    """loss (chains, draws); outputs (chains, draws, k); positions (chains, draws, d)."""
    invariant = np.concatenate([loss[..., None], outputs.reshape(outputs.shape[:2] + (-1,))], axis=-1)
    r_inv, e_inv = rhat(invariant), ess_bulk(invariant)
    r_raw, e_raw = rhat(positions), ess_bulk(positions)
    return ChainDiagnostics(
        rhat_max_invariant=_nanmax(r_inv), ess_bulk_min_invariant=_nanmin(e_inv),
        rhat_max_raw=_nanmax(r_raw), ess_bulk_min_raw=_nanmin(e_raw),
        divergences=int(np.sum(diverging)), rhat_loss=float(r_inv[0]), ess_bulk_loss=float(e_inv[0]))


def _nanmax(a):
    a = np.asarray(a, float)
    return float(np.nanmax(a)) if np.isfinite(a).any() else float("nan")


def _nanmin(a):
    a = np.asarray(a, float)
    return float(np.nanmin(a)) if np.isfinite(a).any() else float("nan")


def mcse_mean(draws: np.ndarray) -> float:
    """Monte Carlo standard error of the mean of (chains, draws) draws: sd / sqrt(ESS of the
    mean), as ``arviz.mcse(method="mean")`` (:func:`ess_mean`, not the bulk ESS)."""
    draws = np.asarray(draws, float)
    ess = float(ess_mean(draws[..., None])[0])
    return float(np.std(draws, ddof=1) / np.sqrt(max(ess, 1.0))) if np.isfinite(ess) else float("nan")
