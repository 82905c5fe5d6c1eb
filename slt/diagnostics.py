"""MCMC diagnostics through ArviZ: split R-hat and bulk ESS on raw parameters and on
symmetry-invariant quantities (``L_n`` and the network output at fixed inputs).

Raw-parameter R-hat is meaningless under the permutation symmetry of hidden nodes (chains
may settle in different but equivalent labellings), so convergence is judged on the
invariant quantities; the raw numbers are reported for completeness.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np


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
    """Rank-normalised split R-hat over the leading (chains, draws) axes."""
    draws = np.asarray(draws, dtype=float)
    if draws.shape[0] < 2 and draws.shape[1] < 4:
        return np.full(draws.shape[2:], np.nan)
    return np.asarray(_az().rhat(_as_dataset(draws), method="rank")["x"].values)


def ess_bulk(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size over the leading (chains, draws) axes."""
    draws = np.asarray(draws, dtype=float)
    if draws.shape[1] < 4:
        return np.full(draws.shape[2:], np.nan)
    return np.asarray(_az().ess(_as_dataset(draws), method="bulk")["x"].values)


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
    """Monte Carlo standard error of the mean of (chains, draws) draws: sd / sqrt(ESS)."""
    draws = np.asarray(draws, float)
    ess = float(ess_bulk(draws[..., None])[0])
    return float(np.std(draws) / np.sqrt(max(ess, 1.0)))
