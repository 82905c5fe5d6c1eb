"""Per-phase free energies (slt.estimators.phases) on a 1-D double well whose restricted partition functions
are computed by quadrature: prior N(0, S^2), ``n L_n(w) = min(K1/2 (w - M1)^2 + C1,
K2/2 (w + M2)^2 + C2)`` (a narrow deep basin at +M1, a wide shallower one at -M2), phases = sign
of w. Exact i.i.d. draws at every beta come from the inverse CDF on the grid, so every error
below is Monte Carlo error (plus a quadrature bias of the beta ladder, checked separately)."""
import math

import numpy as np
import pytest

from slt.estimators import phases

S, M1, K1, C1, M2, K2, C2 = 2.0, 1.5, 400.0, 0.0, 1.0, 40.0, 0.8
W = np.linspace(-12, 12, 240000)   # no grid point at w = 0
DW = W[1] - W[0]
BETAS = np.geomspace(1e-3, 1, 12)
CHAINS, DRAWS = 16, 100


def energy(w):
    return np.minimum(K1 / 2 * (w - M1) ** 2 + C1, K2 / 2 * (w + M2) ** 2 + C2)


E = energy(W)
LOGPHI = -0.5 * (W / S) ** 2 - math.log(S * math.sqrt(2 * math.pi))
POS, NEG = W > 0, W < 0


def log_z(beta, mask):
    v = (LOGPHI - beta * E)[mask]
    m = v.max()
    return m + math.log(np.exp(v - m).sum() * DW)


def exact_delta_f():
    """F_+ - F_- = -(log Z_+(1) - log Z_-(1)) by quadrature."""
    return -(log_z(1.0, POS) - log_z(1.0, NEG))


def draws(rng, beta, shape, mask=None):
    """Exact draws from the tempered posterior at beta (restricted to ``mask`` if given)."""
    p = np.exp(LOGPHI - beta * E - (LOGPHI - beta * E).max())
    if mask is not None:
        p = np.where(mask, p, 0.0)
    c = np.cumsum(p)
    c /= c[-1]
    return W[np.minimum(np.searchsorted(c, rng.uniform(size=shape)), W.size - 1)]


def ladder(rng, trapped_from=None, share=0.0):
    """(B, chains, draws) exact draws; with ``trapped_from`` every beta >= it has each chain
    confined to one phase (the first ``share`` of the chains to w > 0), within-phase exact."""
    out = []
    for b in BETAS:
        if trapped_from is not None and b >= trapped_from:
            k = int(round(share * CHAINS))
            out.append(np.concatenate([draws(rng, b, (k, DRAWS), POS),
                                       draws(rng, b, (CHAINS - k, DRAWS), NEG)]))
        else:
            out.append(draws(rng, b, (CHAINS, DRAWS)))
    w = np.stack(out)
    return energy(w), np.sign(w).astype(int)


def test_quadrature_bias_of_the_ladder_is_small():
    """Exact within-phase means through the estimator's a + c/beta rule on 12 levels: the ladder's
    bias is far below the Monte Carlo error of the tests below (~0.07 nats)."""
    f = []
    for mask in (POS, NEG):
        means = []
        for b in BETAS:
            v = (LOGPHI - b * E)[mask]
            p = np.exp(v - v.max())
            means.append((p * E[mask]).sum() / p.sum())
        occ0 = math.exp(log_z(BETAS[0], mask) - log_z(BETAS[0], W == W))
        f.append(-(math.log(occ0) - phases.integrate_energy(BETAS, means)))
    assert abs((f[0] - f[1]) - exact_delta_f()) < 0.005


def test_delta_f_and_occupancy_match_quadrature_with_exact_draws():
    """Over 30 independent replicates: F_+ - F_- is unbiased against quadrature and its bootstrap
    error is calibrated (mean z^2 within the chi^2_30 / 30 range), and the beta = 1 occupancy
    agrees with exp(-dF) (|z| never large, mean z^2 calibrated)."""
    exact = exact_delta_f()
    assert 0.3 < exact < 0.7            # the two phases really differ
    z_f, z_occ, est = [], [], []
    for seed in range(30):
        nl, lab = ladder(np.random.default_rng(seed))
        r = phases.phase_free_energies(BETAS, nl, lab, (1, -1), seed=seed)
        assert r.withheld is None and r.beta0 == BETAS[0]
        assert r.count.sum(0).tolist() == [CHAINS * DRAWS] * BETAS.size
        d, se = r.delta[0, 1], r.delta_se[0, 1]
        assert r.delta[1, 0] == -d and 0.03 < se < 0.2
        z_f.append((d - exact) / se)
        est.append(d)
        c = phases.occupancy_check(lab[-1], 1, -1, d, se, seed=seed)
        assert c.withheld is None and c.predicted_log_ratio == -d
        z_occ.append(c.z)
    z_f, z_occ = np.array(z_f), np.array(z_occ)
    # the mean of 30 estimates: its own error is sd/sqrt(30)
    assert abs(np.mean(est) - exact) < 4 * np.std(est) / math.sqrt(30) + 0.005
    assert 0.35 < np.mean(z_f ** 2) < 2.2
    assert 0.35 < np.mean(z_occ ** 2) < 2.2
    assert np.max(np.abs(z_occ)) < 4.5


def test_trapped_sampler_fails_the_occupancy_check():
    """Chains confined to one phase at beta >= 0.05 (85% of them in w > 0): each chain still gives
    its phase's exact within-phase energies, so F_+ - F_- stays right, but the beta = 1 occupancy
    is the starting share, not exp(-dF): the check fails clearly. With every chain in one phase
    at beta = 1 the other phase is absent there: its free energy is withheld, and measured
    against the free energies of a good ladder the one-mode occupancy fails too."""
    global CHAINS
    exact = exact_delta_f()
    rng = np.random.default_rng(1)
    nl_good, lab_good = ladder(rng)
    good = phases.phase_free_energies(BETAS, nl_good, lab_good, (1, -1))
    old = CHAINS
    CHAINS = 64
    try:
        nl, lab = ladder(rng, trapped_from=0.05, share=0.85)
    finally:
        CHAINS = old
    r = phases.phase_free_energies(BETAS, nl, lab, (1, -1))
    assert r.withheld is None
    assert abs(r.delta[0, 1] - exact) < 4 * r.delta_se[0, 1] + 0.005
    c = phases.occupancy_check(lab[-1], 1, -1, r.delta[0, 1], r.delta_se[0, 1])
    assert c.measured > 0.8 and c.z > 5

    # one mode only at beta = 1
    lab_one = lab_good.copy()
    nl_one = nl_good.copy()
    w1 = draws(rng, 1.0, (CHAINS, DRAWS), POS)
    nl_one[-1], lab_one[-1] = energy(w1), 1
    r1 = phases.phase_free_energies(BETAS, nl_one, lab_one, (1, -1))
    assert r1.withheld is not None and "-1" in r1.withheld and "beta = 1" in r1.withheld
    assert np.isnan(r1.delta).all() and np.isnan(r1.mean_nloss[1, -1])
    c1 = phases.occupancy_check(lab_one[-1], 1, -1, good.delta[0, 1], good.delta_se[0, 1])
    assert c1.measured == 1.0 and math.isnan(c1.log_ratio) and c1.z > 5
    c2 = phases.occupancy_check(lab_one[-1], 1, -1, r1.delta[0, 1], r1.delta_se[0, 1])
    assert c2.withheld is not None and math.isnan(c2.z)


def test_beta0_and_bad_input():
    rng = np.random.default_rng(2)
    nl, lab = ladder(rng)
    # a phase never seen at the lowest betas: the anchor moves up to where both have >= 10 draws
    lab2 = lab.copy()
    lab2[:3][lab2[:3] == -1] = 7
    r = phases.phase_free_energies(BETAS, nl, lab2, (1, -1))
    assert r.beta0 == BETAS[3] and r.withheld is None
    r = phases.phase_free_energies(BETAS, nl, lab, (1, -1), beta0=BETAS[5])
    assert r.beta0 == BETAS[5] and np.isfinite(r.delta[0, 1])
    with pytest.raises(ValueError, match="ending at 1"):
        phases.phase_free_energies(BETAS[:-1], nl[:-1], lab[:-1], (1, -1))
    with pytest.raises(ValueError, match="num_betas"):
        phases.phase_free_energies(BETAS, nl[:, :3], lab, (1, -1))
    with pytest.raises(ValueError, match="beta0"):
        phases.phase_free_energies(BETAS, nl, lab, (1, -1), beta0=0.5)
    none = phases.phase_free_energies(BETAS, nl, np.zeros_like(lab), (1, -1))
    assert none.withheld.startswith("no beta > 0")
    lab3 = lab.copy()
    lab3[:-1][lab3[:-1] == -1] = 7           # -1 only at beta = 1: no hotter anchor, not circular
    top = phases.phase_free_energies(BETAS, nl, lab3, (1, -1))
    assert "only at the target" in top.withheld and np.isnan(top.delta).all()
