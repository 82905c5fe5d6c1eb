"""Free energy from replica-exchange ladders: thermodynamic integration and stepping stone.

``F_n = -log Z_n = ∫_0^1 E^beta[n L_n] dbeta`` (science.md) from the per-temperature draws of
:func:`slt.samplers.replica.sample` run down to ``beta_min = 0``. Each chain has its own adapted ladder,
so every chain gives its own TI and stepping-stone estimate (through
:func:`slt.estimators.free_energy.beta_means` and :func:`slt.estimators.free_energy.stepping_stone`) and the chains,
independent replicates, give the standard error. References: Gelman & Meng 1998 (TI); Xie,
Lewis, Fan, Kuo & Chen, Syst. Biol. 60 (2011) (stepping stone); Syed et al. 2022 (the ladder).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from slt.samplers.replica import ReplicaResult, valid_chains


class ReplicaFreeEnergy(NamedTuple):
    """``F_n`` from the ladders' draws, per chain and combined over the valid chains."""

    ti: float                # mean over chains of the per-chain TI estimates
    ti_stderr: float         # sqrt(between-chain se^2 + mean quadrature error^2)
    stepping_stone: float
    stepping_stone_stderr: float  # between-chain se (within-chain delta method with one chain)
    ti_per_chain: np.ndarray      # (chains used,)
    stepping_stone_per_chain: np.ndarray
    chains: np.ndarray       # indices of the chains used (finite ones)


def log_trapezoid_weights(betas: np.ndarray) -> np.ndarray:
    """Weights ``c_k`` with ``∫_0^1 g(beta) dbeta ≈ sum_k c_k g(beta_k)`` for increasing betas
    from 0 to 1: the trapezoid rule in ``log beta`` on ``beta g(beta)`` over ``[beta_1, 1]`` and in
    beta over ``[0, beta_1]``, corrected to integrate constants exactly (``sum_k c_k = 1``, as
    :func:`slt.estimators.free_energy.trapezoid_weights`). Matches the replica ladders, which are about
    geometric: ``E^beta[n L_n] ~ d / (2 beta)`` makes ``beta E^beta`` smooth in ``log beta``. On a
    16-level adapted ladder (linear regression, d = 3, n = 200, exact ``E^beta``) its error is
    0.01 nats where the rule in ``beta^(1/4)`` is 0.38 nats off."""
    b = np.asarray(betas, float)
    if b[0] != 0.0 or not np.isclose(b[-1], 1.0) or np.any(np.diff(b) <= 0) or len(b) < 2:
        raise ValueError("log_trapezoid_weights: needs increasing betas from 0 to 1")
    w = np.zeros_like(b)
    w[0] += b[1] / 2
    w[1] += b[1] / 2
    if len(b) > 2:
        dl = np.diff(np.log(b[1:]))
        inner = np.zeros(len(b) - 1)
        inner[:-1] += dl / 2
        inner[1:] += dl / 2
        w[1:] += inner * b[1:]
    w[-1] += 1.0 - w.sum()
    return w


def _ti_log(betas, mean, mcse):
    """(F, mc stderr, Richardson quadrature error) with :func:`log_trapezoid_weights`."""
    w = log_trapezoid_weights(betas)
    fine = float(w @ mean)
    idx = np.unique(np.concatenate([[0], np.arange(1, len(betas), 2), [len(betas) - 1]]))
    quad = abs(fine - float(log_trapezoid_weights(betas[idx]) @ mean[idx])) / 3.0 if len(idx) < len(betas) else 0.0
    return fine, float(np.sqrt(np.sum((w * mcse) ** 2))), quad


def free_energy(res: ReplicaResult, n) -> ReplicaFreeEnergy:
    """Thermodynamic integration and stepping stone on each chain's own adapted ladder, then
    averaged over the valid chains.

    Each chain is one ladder from ``beta = 1`` to ``beta = 0`` (sample with ``beta_min = 0``):
    ``TI_c = ∫_0^1 E^beta[n L_n] dbeta`` with :func:`slt.estimators.free_energy.beta_means` of its draws and
    :func:`log_trapezoid_weights` (the replica ladder is about geometric; the rule in
    ``beta^(1/4)`` of :func:`slt.estimators.free_energy.thermodynamic_integration` is biased on it), and
    ``SS_c`` by :func:`slt.estimators.free_energy.stepping_stone` (Xie et al. 2011). Chains are independent
    replicates, so the standard error of the mean is their spread over ``sqrt(C)`` (at least the
    pooled within-chain Monte Carlo error over ``sqrt(C)``: a spread of 2-3 chains can come out far
    too small); TI adds the
    chains' mean quadrature error (a bias that averaging does not remove). Chains with a
    non-finite ``L_n`` are left out (never averaged in).

    Prefer stepping stone on these ladders: equal swap rates mean equal overlap between
    neighbours, which is what its importance ratios need, while TI's Richardson quadrature-error
    estimate can miss the bias of a short ladder (headline ReLU, n = 1000: TI 0.35 nats above
    stepping stone and the fixed 16-point grid with K = 12, in agreement with K = 16;
    benchmarks/bench_replica_free_energy.py)."""
    from slt.estimators import free_energy as fe

    if not (np.allclose(res.betas[:, 0], 1.0) and np.all(res.betas[:, -1] == 0)):
        raise ValueError("free_energy: every ladder must run from beta = 1 to beta = 0 (beta_min = 0)")
    chains = valid_chains(res)
    if not len(chains):
        raise ValueError("free_energy: no chain stayed finite")
    ti, ti_se, quad, ss, ss_se = [], [], [], [], []
    for c in chains:
        betas = res.betas[c, ::-1].astype(float)
        betas[-1] = 1.0
        nl = float(n) * res.loss_ladder[c, ::-1, None, :].astype(float)   # (K, 1, draws)
        m = fe.beta_means(betas, nl)
        f, mc, q = _ti_log(betas, m.mean, m.mcse)
        s = fe.stepping_stone(betas, nl)
        ti.append(f), ti_se.append(mc), quad.append(q)
        ss.append(s.free_energy), ss_se.append(s.stderr)
    ti, ss = np.asarray(ti), np.asarray(ss)
    k = len(chains)

    def se(values, within):
        # the between-chain spread, but never below what the chains' own Monte Carlo errors imply:
        # with 2-3 chains the spread alone can come out far too small
        pooled = float(np.sqrt(np.mean(np.square(within)) / k))
        if k >= 2:
            return max(float(values.std(ddof=1) / np.sqrt(k)), pooled)
        return pooled

    return ReplicaFreeEnergy(float(ti.mean()), float(np.hypot(se(ti, ti_se), np.mean(quad))),
                             float(ss.mean()), se(ss, ss_se), ti, ss, chains)
