"""The replica-exchange ladder and what a run reports: the result record, the swap ratio, the
equal-barrier placement of the betas (Syed et al. 2022, Algorithm 4), the warmup's round
schedule, the number of levels from the global barrier, the communication barriers (what
Pigeons reports), the mixing check of ``num_samples: auto`` and summary.json's ``replica``
entry. The sampler itself is :mod:`slt.samplers.replica` (which re-exports every name here).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from slt.samplers.diagnostics import ESS_MIN, RHAT_MAX  # noqa: F401 (re-exported)

MIN_TEMPERATURES, MAX_TEMPERATURES = 4, 32   # bounds of num_temperatures: auto (and the cap of an integer)


class ReplicaResult(NamedTuple):
    """Replica-exchange draws; leading axis ``num_chains`` (each chain one ladder of K levels).

    A chain with ``nan_count > 0`` (a non-finite ``L_n`` at any level while sampling) has
    ``valid = False``: its draws are kept for inspection but estimates must leave it out
    (:func:`valid_chains`)."""

    positions: np.ndarray      # (chains, draws, d)  draws at betas[:, 0] (the target)
    loss: np.ndarray           # (chains, draws)     L_n of those draws
    loss_ladder: np.ndarray    # (chains, K, draws)  L_n at every level (for TI / stepping stone)
    betas: np.ndarray          # (chains, K)         final (adapted) ladder, descending
    swap_accept: np.ndarray    # (chains, K-1)       mean swap acceptance per neighbouring pair
    round_trips: np.ndarray    # (chains,)           completed beta_0 -> beta_{K-1} -> beta_0 trips
    accept_prob: np.ndarray    # (chains, draws)     HMC acceptance at the target level
    diverging: np.ndarray      # (chains, draws)     bool, at the target level
    step_size: np.ndarray      # (chains, K)         adapted step size per level
    warmup_loss: np.ndarray    # (chains, num_warmup) L_n at the target level during warmup
    nan_count: np.ndarray      # (chains,)           non-finite L_n values over all levels and draws
    valid: np.ndarray          # (chains,)           bool: nan_count == 0
    num_steps: int             # leapfrog steps per transition
    positions_ladder: np.ndarray | None = None  # (chains, K, draws, d) every level (keep_ladder=True)
    restarts: np.ndarray | None = None          # (chains,) tempered restarts: beta_{K-1} -> beta_0 arrivals
    index_process: np.ndarray | None = None     # (chains, draws, K) int16: replica id at each level
    barrier_rounds: list | None = None          # per warmup round: num_temperatures, Lambda (mean, per chain)
    pilot_barrier: float | None = None          # num_temperatures auto: Lambda of the pilot ladder
    sampling_rounds: list | None = None         # num_samples auto: draws, R-hat, ESS, round trips per check
    converged: bool | None = None               # num_samples auto: the checks passed before max_samples


def swap_log_ratio(betas: jax.Array, loss: jax.Array, n) -> jax.Array:
    """``n (beta_k - beta_{k+1}) (L_k - L_{k+1})`` for every neighbouring pair, (K-1,); the
    log Metropolis ratio of exchanging the states at levels k and k+1 (NaN -> -inf: refused)."""
    r = n * (betas[:-1] - betas[1:]) * (loss[:-1] - loss[1:])
    return jnp.where(jnp.isfinite(r), r, -jnp.inf)


def equal_barrier_ladder(betas: jax.Array, rejection: jax.Array) -> jax.Array:
    """Re-place ``betas`` (K,) at equal spacing of the communication barrier.

    ``Lambda(beta_k) = sum_{j<k} r_j`` with ``r_j`` the rejection rate of pair (j, j+1),
    interpolated linearly in ``log(beta + c)`` between the current levels (Syed et al. 2022,
    Sec. 5.1, interpolate in beta; the log makes one round exact for a power-law barrier, where
    the optimal ladder is geometric, and converges from a linear start in a few rounds where
    linear interpolation does not); ``c = 0`` when ``beta_min > 0``, else ``beta_{K-2} / 10`` (near
    the prior the barrier grows linearly in beta). The new ``beta_m = Lambda^{-1}(m Lambda / (K-1))``;
    the end points are kept. The interpolation changes only the speed of convergence, not the
    fixed point (equal rates). A floor ``1e-4`` on ``r`` keeps ``Lambda`` strictly increasing."""
    k = betas.shape[0]
    r = jnp.clip(jnp.where(jnp.isfinite(rejection), rejection, 1.0), 1e-4, 1.0)
    lam = jnp.concatenate([jnp.zeros((1,), betas.dtype), jnp.cumsum(r)])
    targets = lam[-1] * jnp.arange(k, dtype=betas.dtype) / (k - 1)
    c = jnp.where(betas[-1] > 0, 0.0, 0.1 * betas[-2])
    new = jnp.exp(jnp.interp(targets, lam, jnp.log(betas + c))) - c
    return new.at[0].set(betas[0]).at[-1].set(betas[-1])


def initial_ladder(num_temperatures: int, beta_min: float, beta_max: float = 1.0) -> np.ndarray:
    """Geometric from ``beta_max`` down to ``beta_min > 0``; for ``beta_min = 0`` the levels
    ``beta_max ((K-1-k)/(K-1))^4`` (dense near 0, like :func:`slt.estimators.free_energy.ti_grid`)."""
    _check_ladder(num_temperatures, beta_min, beta_max)
    k = num_temperatures
    if beta_min == 0:
        return beta_max * (np.arange(k - 1, -1, -1) / (k - 1)) ** 4
    return np.geomspace(beta_max, beta_min, k)


def _check_ladder(num_temperatures, beta_min, beta_max):
    if int(num_temperatures) != num_temperatures or num_temperatures < 2:
        raise ValueError(f"num_temperatures must be an integer >= 2, got {num_temperatures}")
    if not beta_max > 0:
        raise ValueError(f"beta_max must be > 0, got {beta_max}")
    if not 0 <= beta_min < beta_max:
        raise ValueError(f"beta_min must be in [0, beta_max = {beta_max}), got {beta_min}")


def warmup_rounds(num_warmup: int, num_rounds: int) -> tuple[int, ...]:
    """End iterations of the ladder-adaptation rounds: lengths doubling (1, 2, 4, ...) x a unit,
    filling the first 3/4 of the warmup; rounds shorter than 10 transitions are dropped."""
    budget = (3 * num_warmup) // 4
    for r in range(num_rounds, 0, -1):
        unit = budget // (2 ** r - 1)
        if unit >= 10:
            lengths = [unit * 2 ** i for i in range(r)]
            lengths[-1] += budget - sum(lengths)
            return tuple(int(v) for v in np.cumsum(lengths))
    return ()


def temperatures_for_barrier(global_barrier: float) -> int:
    """``ceil(2 Lambda) + 1`` levels (Syed et al. 2022: about 2 Lambda chains put the swap
    rejection near 1/2 and the round-trip rate near its limit ``1 / (2 + 2 Lambda)``), clipped to
    ``[MIN_TEMPERATURES, MAX_TEMPERATURES]``."""
    if not np.isfinite(global_barrier):
        return MAX_TEMPERATURES
    return int(np.clip(math.ceil(2 * global_barrier) + 1, MIN_TEMPERATURES, MAX_TEMPERATURES))


def resize_ladder(betas, rejection, num_temperatures: int):
    """A ladder of ``num_temperatures`` levels at equal spacing of the cumulative barrier
    measured on ``betas`` (K,) with pair rejection rates ``rejection`` (K-1,), and for each new
    level the index of the old level nearest in barrier (to copy its state and step size)."""
    betas = np.asarray(betas, np.float64)
    r = np.clip(np.where(np.isfinite(rejection), rejection, 1.0), 1e-4, 1.0)
    lam = np.concatenate([[0.0], np.cumsum(r)])
    targets = lam[-1] * np.arange(num_temperatures) / (num_temperatures - 1)
    c = 0.0 if betas[-1] > 0 else 0.1 * betas[-2]
    new = np.exp(np.interp(targets, lam, np.log(betas + c))) - c
    new[0], new[-1] = betas[0], betas[-1]
    new = np.maximum.accumulate(new[::-1])[::-1]           # guard rounding: strictly descending below
    nearest = np.abs(lam[None, :] - targets[:, None]).argmin(axis=1)
    return new, nearest


def mixing_check(res: "ReplicaResult", min_round_trips: int) -> tuple[bool, dict]:
    """R-hat(L_n) <= 1.01, bulk ESS(L_n) >= 400 over the valid chains and at least
    ``min_round_trips`` round trips in every valid chain; returns (ok, the numbers)."""
    from slt.samplers import diagnostics

    good = valid_chains(res)
    if len(good) == 0:
        return False, {"rhat_loss": None, "ess_bulk_loss": None, "min_round_trips": None}
    loss = res.loss[good][..., None]
    rhat, ess = float(diagnostics.rhat(loss)[0]), float(diagnostics.ess_bulk(loss)[0])
    trips = int(res.round_trips[good].min())
    ok = rhat <= RHAT_MAX and ess >= ESS_MIN and trips >= min_round_trips
    return bool(ok), {"rhat_loss": rhat, "ess_bulk_loss": ess, "min_round_trips": trips}


def valid_chains(res: ReplicaResult) -> np.ndarray:
    """Indices of the chains whose every level stayed finite (estimates use only these)."""
    return np.flatnonzero(res.valid)


def to_sample_result(res: ReplicaResult, chains=None):
    """The target level's draws as a :class:`slt.samplers.nuts.SampleResult` (for the diagnostics,
    ArviZ and figures downstream), keeping ``res`` in its ``replica`` field; ``chains`` selects
    chains (e.g. :func:`valid_chains`)."""
    from slt.samplers.nuts import SampleResult

    c = np.arange(len(res.valid)) if chains is None else np.asarray(chains)
    return SampleResult(positions=res.positions[c], loss=res.loss[c], diverging=res.diverging[c],
                        accept_prob=res.accept_prob[c],
                        num_steps=np.full(res.loss[c].shape, res.num_steps),
                        step_size=res.step_size[c, 0], warmup_loss=res.warmup_loss[c], replica=res)


def barriers(betas, swap_accept):
    """The communication barriers of non-reversible PT (Syed et al. 2022; what Pigeons reports).

    ``betas`` (C, K) descending, ``swap_accept`` (C, K-1). Returns ``(global (C,), beta_mid (K-1,),
    local (K-1,))``: the global barrier ``Lambda = sum_k r_k`` of each chain's ladder (``r_k = 1 -
    swap acceptance``; round trips come at about ``1 / (2 + 2 Lambda)`` per swap round, and about
    ``2 Lambda + 1`` temperatures suffice), and the local barrier ``lambda(beta) ~ r_k / |beta_k -
    beta_{k+1}|`` at the pairs' midpoints, pooled over chains (its integral over beta is Lambda)."""
    betas = np.asarray(betas, np.float64)
    rej = 1.0 - np.asarray(swap_accept, np.float64)
    lam = rej.sum(axis=1)
    mid = 0.5 * (betas[:, :-1] + betas[:, 1:]).mean(axis=0)
    width = np.abs(np.diff(betas, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(width > 0, rej / width, np.nan).mean(axis=0)
    return lam, mid, local


def summary(res: ReplicaResult, swap_interval: int) -> dict:
    """summary.json's ``replica`` entry: the final ladders, swap rates, round trips and tempered
    restarts per chain, the communication barriers (:func:`barriers`) and, where the ladder sized
    itself or the run extended itself, the warmup rounds' barriers and the sampling rounds' checks."""
    lam, mid, local = barriers(res.betas, res.swap_accept)
    out = {"num_temperatures": int(res.betas.shape[1]), "swap_interval": int(swap_interval),
           "num_samples": int(res.loss.shape[1]),
           "global_barrier": float(np.mean(lam)), "global_barrier_per_chain": [float(v) for v in lam],
           "suggested_num_temperatures": int(math.ceil(2 * float(np.mean(lam)))) + 1,
           "local_barrier": {"beta": [float(b) for b in mid], "lambda": [float(v) for v in local]},
           "swap_accept_min": float(np.min(res.swap_accept)), "swap_accept_mean": float(np.mean(res.swap_accept)),
           "betas": [[float(b) for b in row] for row in res.betas],
           "swap_accept": [[float(a) for a in row] for row in res.swap_accept],
           "round_trips": [int(t) for t in res.round_trips],
           "restarts": None if res.restarts is None else [int(t) for t in res.restarts],
           "nan_count": [int(v) for v in res.nan_count],
           "step_size": [[float(e) for e in row] for row in res.step_size]}
    if res.barrier_rounds is not None:
        out["warmup_rounds"] = res.barrier_rounds
    if res.pilot_barrier is not None:
        out["pilot_global_barrier"] = float(res.pilot_barrier)
    if res.sampling_rounds is not None:
        out["sampling_rounds"] = res.sampling_rounds
        out["converged"] = bool(res.converged)
    return out
