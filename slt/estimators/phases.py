"""Free energy of each phase from tempered draws labelled by phase, and the occupancy check.

A *phase* ``A`` is a set of parameters (here: the draws' phase labels, e.g. the two-node ReLU
network's ``true`` and ``degenerate`` function classes, :func:`slt.estimators.symmetry.classify_phases`).
Its restricted partition function and free energy are::

    Z_A(beta) = int_A phi(w) exp(-n beta L_n(w)) dw,      F_A = -log Z_A(1).

Differentiating under the integral gives the restricted thermodynamic identity::

    d/dbeta log Z_A(beta) = -E_{beta,A}[n L_n]

(the expectation over the tempered posterior *conditioned on A*, i.e. over the draws at that
beta that carry label A). Integrating from an anchor ``beta0 > 0`` at which every compared
phase is visited, and writing ``Z_A(beta0) = Z(beta0) P_beta0(A)``::

    log Z_A(1) = log Z(beta0) + log P_beta0(A) - int_beta0^1 E_{beta,A}[n L_n] dbeta.

``log Z(beta0)`` is common to all phases, so differences need nothing else::

    F_A - F_B = -(log P_beta0(A) - log P_beta0(B))
                + int_beta0^1 (E_{beta,A}[n L_n] - E_{beta,B}[n L_n]) dbeta.

The integral interpolates ``E_{beta,A}[n L_n]`` by ``a + c / beta`` on each ladder interval
(:func:`integrate_energy`; exact where ``E ~ n L_n(w_A) + lambda_A / beta``, the phase's own
minimum and local learning coefficient). Compare Friel, Hurn & Wyse (2014) for TI and the grid.

**The check that ties it to sampling.** At beta = 1 the posterior occupancy of the phases obeys
``P_1(A) / P_1(B) = Z_A(1) / Z_B(1) = exp(-(F_A - F_B))`` exactly. The left side is measured
from the beta = 1 draws' labels; the right side uses only *within-phase* energies along the
ladder and the occupancies at the (hot, well-mixing) anchor ``beta0``. The two are independent
routes to the same number, so agreement is non-trivial: a sampler trapped in one phase at beta =
1 still gives each phase's local energies (each trapped chain samples its own phase) but a wrong
occupancy, and violates the identity; a beta0 at which the sampler does not yet mix between the
phases, or a ladder too coarse for the integral, breaks it too. :func:`occupancy_check` gives
the z-score.

Errors: chains are the independent units. Every standard error here is a bootstrap over chains
(the same chain indices resampled at every beta, which is valid whether the chains at different
betas are independent or one chain spans the ladder, as in replica exchange); autocorrelation
within a chain is then accounted for automatically. A phase absent at some beta of
``[beta0, 1]`` has no within-phase energy there: its free energy is withheld with the reason,
never filled in.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np


class PhaseFreeEnergies(NamedTuple):
    """Restricted free energies of ``phases`` (labels), relative to ``-log Z(beta0)``."""

    phases: tuple              # the phase labels compared, in this order
    beta0: float               # anchor (nan when withheld before one was found)
    betas: np.ndarray          # (num_betas,) the ladder as given
    mean_nloss: np.ndarray     # (P, num_betas) E_{beta,A}[n L_n] (nan where the phase is absent)
    count: np.ndarray          # (P, num_betas) draws of each phase at each beta
    occupancy_beta0: np.ndarray  # (P,) P_beta0(A)
    free_energy: np.ndarray    # (P,) F_A - F(beta0) = -(log Z_A(1) - log Z(beta0)) (nan if withheld)
    free_energy_se: np.ndarray  # (P,) bootstrap standard error
    delta: np.ndarray          # (P, P) F_A - F_B
    delta_se: np.ndarray       # (P, P) bootstrap standard error of F_A - F_B (correlations included)
    num_bootstrap: int         # bootstrap resamples that were finite (of the requested)
    withheld: str | None       # why the estimate is withheld (None when it is not)


class OccupancyCheck(NamedTuple):
    """Measured beta = 1 occupancy of phase A among {A, B} against ``1 / (1 + exp(F_A - F_B))``."""

    measured: float            # P_1(A) / (P_1(A) + P_1(B)) from the beta = 1 labels
    measured_se: float         # bootstrap over chains, floored at the resolution of the chain count
    predicted: float           # 1 / (1 + exp(F_A - F_B))
    predicted_se: float        # delta method: p (1 - p) se(F_A - F_B)
    z: float                   # (measured - predicted) / sqrt(measured_se^2 + predicted_se^2)
    log_ratio: float           # log(P_1(A) / P_1(B)) measured (nan if either phase is absent)
    log_ratio_se: float
    predicted_log_ratio: float  # -(F_A - F_B)
    predicted_log_ratio_se: float
    withheld: str | None


def integrate_energy(betas, values) -> np.ndarray:
    """``int_{betas[0]}^{betas[-1]} values(beta) dbeta`` (betas > 0, ascending; last axis) with
    the interpolant ``a + c / beta`` through each interval's end points, integrated exactly:
    ``a (b2 - b1) + c log(b2 / b1)``. It is exact for the two regimes of a tempered energy,
    ``E^beta[n L_n] ~ n L_n(w_0) + lambda / beta`` where the likelihood dominates and a near
    constant near the prior, so a ladder of ~10 levels over three decades is enough; a
    trapezoid in beta (or in log beta on ``beta E``) is not exact for both, and the phases'
    ``n L_n(w_0)`` of ~10^4 nats make a 1% rule error tens of nats."""
    b = np.asarray(betas, float)
    v = np.asarray(values, float)
    b1, b2 = b[:-1], b[1:]
    e1, e2 = v[..., :-1], v[..., 1:]
    c = (e1 - e2) / (1.0 / b1 - 1.0 / b2)
    a = e1 - c / b1
    return np.sum(a * (b2 - b1) + c * np.log(b2 / b1), axis=-1)


def _chain_stats(nloss, labels, phases):
    """Per chain, beta and phase: draw counts (C, B, P) and sums of n L_n (C, B, P)."""
    nloss = np.asarray(nloss, float)
    labels = np.asarray(labels)
    ind = np.stack([labels == a for a in phases], axis=-1)                # (B, C, S, P)
    counts = ind.sum(axis=2).transpose(1, 0, 2).astype(float)             # (C, B, P)
    sums = np.where(ind, nloss[..., None], 0.0).sum(axis=2).transpose(1, 0, 2)
    totals = np.isfinite(nloss).sum(axis=2).T.astype(float)                # (C, B)
    return counts, sums, totals


def _estimate(counts, sums, totals, betas, i0):
    """Relative free energies (..., P) from (summed over chains) counts (..., B, P), sums, totals."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sums / counts                                               # (..., B, P)
        occ0 = counts[..., i0, :] / totals[..., i0, None]
        integral = integrate_energy(betas[i0:], np.moveaxis(mean[..., i0:, :], -1, -2))
        return -(np.log(occ0) - integral)


def phase_free_energies(betas, nloss, labels, phases: Sequence, *, beta0: float | None = None,
                        min_count: int = 10, num_bootstrap: int = 400, seed: int = 0) -> PhaseFreeEnergies:
    """Free energy of each phase by thermodynamic integration restricted to its draws.

    Args:
      betas: (B,) ascending ladder ending at 1 (the target); betas <= 0 are ignored.
      nloss: (B, chains, draws) ``n L_n`` of every draw (non-finite draws are dropped).
      labels: (B, chains, draws) phase label of every draw (any hashable values compared by ==).
      phases: the labels to compare (two or more).
      beta0: the anchor; default the lowest beta > 0 at which every compared phase has at least
        ``min_count`` draws. Must be a ladder point below 1 (at beta0 = 1 the free-energy
        difference is the beta = 1 occupancy ratio itself and the check is circular: withheld).
      num_bootstrap: resamples of the chains (the same indices at every beta).

    Returns: :class:`PhaseFreeEnergies`; ``free_energy`` is ``-(log P_beta0(A) - int E_A)``, i.e.
    ``F_A`` up to the common ``-log Z(beta0)``; use differences (``delta``).
    """
    betas = np.asarray(betas, float)
    nloss, labels = np.asarray(nloss, float), np.asarray(labels)
    phases = tuple(phases)
    if betas.ndim != 1 or betas.size < 2 or np.any(np.diff(betas) <= 0) or not math.isclose(betas[-1], 1.0):
        raise ValueError(f"betas must be an ascending ladder of >= 2 temperatures ending at 1, got {betas}")
    if nloss.shape != labels.shape or nloss.ndim != 3 or nloss.shape[0] != betas.size:
        raise ValueError(f"nloss and labels must both be (num_betas={betas.size}, chains, draws), "
                         f"got {nloss.shape} and {labels.shape}")
    if len(phases) < 2:
        raise ValueError("compare at least two phases")
    counts, sums, totals = _chain_stats(nloss, labels, phases)
    tot_c, tot_s, tot_t = counts.sum(0), sums.sum(0), totals.sum(0)        # (B, P), (B, P), (B,)
    P = len(phases)
    nan_p, nan_pp = np.full(P, np.nan), np.full((P, P), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(tot_c > 0, tot_s / tot_c, np.nan).T                # (P, B)

    def withheld(reason, b0=math.nan, occ0=nan_p):
        return PhaseFreeEnergies(phases, b0, betas, mean, tot_c.T.astype(int), occ0, nan_p, nan_p,
                                 nan_pp, nan_pp, 0, reason)

    if beta0 is None:
        ok = np.flatnonzero((betas > 0) & np.all(tot_c >= min_count, axis=1))
        if not ok.size:
            return withheld(f"no beta > 0 at which every phase of {phases} has >= {min_count} draws")
        i0 = int(ok[0])
    else:
        hit = np.flatnonzero(np.isclose(betas, beta0))
        if not hit.size or beta0 <= 0:
            raise ValueError(f"beta0 must be a ladder point > 0, got {beta0}")
        i0 = int(hit[0])
    b0 = float(betas[i0])
    occ0 = tot_c[i0] / tot_t[i0]
    if i0 == betas.size - 1:   # F_a - F_b would be -log(P_1(a) / P_1(b)): the check would be circular
        return withheld(f"every phase of {phases} has >= {min_count} draws only at the target beta = 1: "
                        "no hotter anchor", b0, occ0)
    absent = [(phases[p], float(betas[i])) for i in range(i0, betas.size) for p in range(P) if tot_c[i, p] == 0]
    if absent:
        text = ", ".join(f"{a!r} at beta = {b:.4g}" for a, b in absent[:4])
        return withheld(f"phase(s) absent from the draws ({text}{', ...' if len(absent) > 4 else ''}): "
                        f"no within-phase energy there", b0, occ0)
    f = _estimate(tot_c, tot_s, tot_t, betas, i0)
    rng = np.random.default_rng(seed)
    C = counts.shape[0]
    w = rng.multinomial(C, np.full(C, 1.0 / C), size=num_bootstrap).astype(float)   # (R, C)
    fb = _estimate(np.einsum("rc,cbp->rbp", w, counts), np.einsum("rc,cbp->rbp", w, sums),
                   w @ totals, betas, i0)                                  # (R, P)
    good = np.all(np.isfinite(fb), axis=1)
    fb = fb[good]
    if good.sum() < max(20, num_bootstrap // 2):
        return withheld(f"only {good.sum()} of {num_bootstrap} chain resamples contain every phase at every "
                        f"beta >= {b0:.4g}: too few chains visit the rarer phase", b0, occ0)
    delta = f[:, None] - f[None, :]
    db = fb[:, :, None] - fb[:, None, :]
    return PhaseFreeEnergies(phases, b0, betas, mean, tot_c.T.astype(int), occ0, f, fb.std(0, ddof=1),
                             delta, db.std(0, ddof=1), int(good.sum()), None)


def occupancy_check(labels, phase_a, phase_b, delta_f: float, delta_f_se: float, *,
                    num_bootstrap: int = 400, seed: int = 0) -> OccupancyCheck:
    """Compare the beta = 1 occupancy of ``phase_a`` among {a, b} with ``1 / (1 + exp(F_a - F_b))``.

    Args:
      labels: (chains, draws) phase labels of the beta = 1 draws (chains independent).
      delta_f, delta_f_se: ``F_a - F_b`` and its standard error (:func:`phase_free_energies`).

    The measured share's error is the bootstrap over chains; when the share is exactly 0 or 1
    (every resample agrees) it is the resolution of C chains instead, ``sqrt(p~ (1 - p~) / C)``
    with ``p~ = 1/2 / (C + 1)`` (a share of exactly 0 or 1 from C chains is not known to be
    exact). ``z`` compares shares, so it is defined when a phase is absent at beta = 1 (a sampler
    trapped in one phase then shows as a large |z|); the log ratio needs both phases.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (chains, draws), got shape {labels.shape}")
    nan = math.nan
    if not (math.isfinite(delta_f) and math.isfinite(delta_f_se)):
        return OccupancyCheck(nan, nan, nan, nan, nan, nan, nan, nan, nan,
                              "no free-energy difference (withheld upstream)")
    a = (labels == phase_a).sum(1).astype(float)
    b = (labels == phase_b).sum(1).astype(float)
    C = labels.shape[0]
    if a.sum() + b.sum() == 0:
        return OccupancyCheck(nan, nan, nan, nan, nan, nan, nan, -delta_f, delta_f_se,
                              f"neither {phase_a!r} nor {phase_b!r} occurs at beta = 1")
    rng = np.random.default_rng(seed)
    w = rng.multinomial(C, np.full(C, 1.0 / C), size=num_bootstrap).astype(float)
    ab, bb = w @ a, w @ b
    with np.errstate(divide="ignore", invalid="ignore"):
        share_b = ab / (ab + bb)
        share_b = share_b[np.isfinite(share_b)]
        log_b = np.log(ab / bb)
    p = a.sum() / (a.sum() + b.sum())
    if 0 < p < 1:
        se = float(share_b.std(ddof=1))
    else:   # every resample agrees: the resolution of C chains instead
        pt = 0.5 / (C + 1)
        se = math.sqrt(pt * (1 - pt) / C)
    pred = 1.0 / (1.0 + math.exp(min(delta_f, 700.0)))
    pred_se = pred * (1 - pred) * delta_f_se
    z = (p - pred) / math.hypot(se, pred_se)
    if a.sum() > 0 and b.sum() > 0:
        lr = math.log(a.sum() / b.sum())
        fin = log_b[np.isfinite(log_b)]
        lr_se = float(fin.std(ddof=1)) if fin.size > 1 else nan
    else:
        lr, lr_se = nan, nan
    return OccupancyCheck(float(p), se, pred, pred_se, float(z), lr, lr_se, -float(delta_f),
                          float(delta_f_se), None)
