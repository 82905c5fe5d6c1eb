"""Free-energy estimators: unit tests on synthetic arrays with known answers, and the full
all-betas path against the exact Bayesian linear regression answers (science.md, item 1)."""
import math

import jax
import numpy as np
import pytest

from slt import data, models
from slt.estimators import free_energy as fe
from slt.samplers import nuts as samplers, tempered
from slt.posterior import Problem


# ----------------------------------------------------------------------------- synthetic arrays
def test_grid_and_window():
    b = fe.ti_grid(5, 2.0)
    np.testing.assert_allclose(b, [0, 1 / 16, 1 / 4, 9 / 16, 1])
    w = fe.lambda_window(1000, 5)
    star, h = 1 / math.log(1000), 1 / math.sqrt(2 * math.log(1000))
    np.testing.assert_allclose([w.min(), w.max()], [star * (1 - h), star * (1 + h)])
    np.testing.assert_allclose(w[2], 1 / np.mean(1 / w), rtol=1e-12)   # equally spaced in 1/beta
    assert np.all(np.diff(w) > 0)


@pytest.mark.parametrize("power", [1.0, 3.0, 4.0])
def test_trapezoid_weights_exact_on_constants_and_accurate(power):
    betas = fe.ti_grid(33, power)
    w = fe.trapezoid_weights(betas, power)
    assert abs(w.sum() - 1.0) < 1e-12
    # a smooth integrand with a steep 1/beta-like part: E(beta) = 1000 + 5 / (beta + 0.01)
    exact = 1000 + 5 * math.log(1.01 / 0.01)
    approx = w @ (1000 + 5 / (betas + 0.01))
    assert abs(approx - exact) < (0.05 if power > 1 else 3.0)


def test_ti_error_propagation_and_richardson():
    betas = fe.ti_grid(17, 4.0)
    mean = 100 + 2.5 / (betas + 1e-3)
    mcse = np.full_like(betas, 0.1)
    r = fe.thermodynamic_integration(betas, mean, mcse, 4.0)
    assert r.mc_stderr == pytest.approx(0.1 * np.sqrt(np.sum(r.weights ** 2)))
    exact = 100 + 2.5 * math.log(1.001 / 1e-3)
    # the Richardson estimate bounds the actual quadrature error to within a factor of a few
    assert abs(r.free_energy - exact) < 3 * r.quadrature_error + 1e-6
    assert r.stderr == pytest.approx(math.hypot(r.mc_stderr, r.quadrature_error))
    with pytest.raises(ValueError):
        fe.thermodynamic_integration(betas[1:], mean[1:], mcse[1:])


def test_stepping_stone_exact_for_exponential_family():
    """Draws of nL ~ Gamma-like where log Z is known: nL = E/beta-type energies.
    Use p_beta(x) ∝ exp(-beta x) on x > 0 with a prior Exp(1): Z(beta) = 1/(1 + beta),
    so F = log 2; draws at beta_k are Exp(1 + beta_k)."""
    rng = np.random.default_rng(0)
    betas = fe.ti_grid(20, 2.0)
    draws = np.stack([rng.exponential(1 / (1 + b), size=(4, 4000)) for b in betas])
    ss = fe.stepping_stone(betas, draws)
    assert abs(ss.free_energy - math.log(2)) < 4 * ss.stderr + 1e-3
    m = fe.beta_means(betas, draws)
    np.testing.assert_allclose(m.mean, 1 / (1 + betas), atol=5 * m.mcse.max())
    ti = fe.thermodynamic_integration(betas, m.mean, m.mcse, 2.0)
    assert abs(ti.free_energy - math.log(2)) < 4 * ti.stderr
    # the MCSE is honest for iid draws: ESS close to the number of draws
    assert np.all(m.ess > 0.7 * 16000)


def test_weighted_slope_known_line_and_stderr():
    rng = np.random.default_rng(1)
    x = np.linspace(1, 5, 8)
    sig = np.full(8, 0.5)
    slopes = [fe.weighted_slope(x, 2 + 3 * x + sig * rng.normal(size=8), sig) for _ in range(400)]
    est = np.array([s.slope for s in slopes])
    se = slopes[0].stderr
    assert abs(est.mean() - 3) < 4 * se / math.sqrt(400)
    assert 0.8 < est.std() / (0.5 / math.sqrt(np.sum((x - x.mean()) ** 2))) < 1.2
    # beta slope recovers lambda from E = c + lambda / beta exactly
    b = fe.lambda_window(1000, 5)
    r = fe.beta_slope(b, 1400 + 2.5 / b, np.full(5, 0.01))
    assert r.slope == pytest.approx(2.5) and r.intercept == pytest.approx(1400)
    r = fe.log_n_slope([100, 1000, 10000], 4 * np.log([100, 1000, 10000]) + 1)
    assert r.slope == pytest.approx(4.0)


def test_wbic_is_mean_at_beta_star():
    rng = np.random.default_rng(2)
    d = rng.normal(10, 1, size=(4, 500))
    r = fe.wbic(1000, d)
    assert r.wbic == pytest.approx(d.mean()) and r.beta == pytest.approx(1 / math.log(1000))
    assert 0.5 * d.std() / math.sqrt(2000) < r.stderr < 2 * d.std() / math.sqrt(2000)


def test_linear_gaussian_closed_forms_agree():
    """The closed forms: F_n from the n x n formula = d x d form; -dF/d(scale) identities:
    TI of the exact E^beta on a fine grid reproduces the exact F_n; E^0 is the prior mean."""
    rng = np.random.default_rng(3)
    n, d = 200, 3
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=d) + 0.7 * rng.normal(size=n)
    sig, s = 0.7, 1.3
    f = fe.linear_gaussian_free_energy(x, y, sig, s)
    big = np.eye(n) + (s ** 2 / sig ** 2) * x @ x.T
    f_direct = (n / 2 * math.log(2 * math.pi * sig ** 2) + 0.5 * np.linalg.slogdet(big)[1]
                + 0.5 / sig ** 2 * y @ np.linalg.solve(big, y))
    assert f == pytest.approx(f_direct, rel=1e-12)
    betas = fe.ti_grid(2001, 4.0)
    e = fe.linear_gaussian_E_nL_n(x, y, betas, sig, s)
    assert fe.trapezoid_weights(betas, 4.0) @ e == pytest.approx(f, abs=1e-3)
    e0 = n / 2 * math.log(2 * math.pi * sig ** 2) + (y @ y + s ** 2 * np.trace(x.T @ x)) / (2 * sig ** 2)
    assert e[0] == pytest.approx(e0)


# ----------------------------------------------------------------------------- full path
@pytest.fixture(scope="module")
def linreg_draws():
    """d = 5, n = 1000 linear regression; every beta of the TI grid + lambda window sampled at once."""
    spec = models.make_mlp([5, 1], "identity", False)
    truth = models.init(jax.random.key(11), spec)
    ds = data.synthesize(jax.random.key(12), spec, truth, 1000, 1.0, dist="normal")
    p = Problem.make(spec, ds)
    grid = fe.ti_grid(24, 4.0)
    window = fe.lambda_window(1000, 5)
    betas = np.concatenate([grid, window])
    order = np.argsort(betas)
    betas = betas[order]
    chains = 8
    init = samplers.prior_draws(jax.random.key(13), len(betas) * chains, 5, 1.0).reshape(len(betas), chains, 5)
    # 2 leapfrog steps: for this Gaussian posterior the best ESS of n L_n per gradient (measured)
    res = tempered.sample_tempered(jax.random.key(14), p, init, betas, num_warmup=300, num_samples=600,
                                   num_steps=2)
    inv = np.argsort(order)
    i_grid, i_win = inv[:24], inv[24:]
    x, y = np.asarray(p.x, float), np.asarray(p.y, float)
    return p, betas, 1000 * np.asarray(res.loss, float), i_grid, i_win, x, y, res


def test_E_nL_n_matches_closed_form_at_every_beta(linreg_draws):
    p, betas, nL, _, _, x, y, res = linreg_draws
    m = fe.beta_means(betas, nL)
    exact = fe.linear_gaussian_E_nL_n(x, y, betas)
    z = (m.mean - exact) / m.mcse
    assert np.all(np.abs(z) < 4), np.round(z, 2)
    assert abs(np.mean(z)) < 4 / math.sqrt(len(z))      # no shared bias
    assert not res.diverging.any()


def test_ti_and_stepping_stone_match_exact_free_energy(linreg_draws):
    p, betas, nL, i_grid, _, x, y, _ = linreg_draws
    exact = fe.linear_gaussian_free_energy(x, y)
    m = fe.beta_means(betas, nL)
    ti = fe.thermodynamic_integration(betas[i_grid], m.mean[i_grid], m.mcse[i_grid], 4.0)
    ss = fe.stepping_stone(betas[i_grid], nL[i_grid])
    for est in (ti, ss):
        err = est.free_energy - exact
        assert abs(err) < 0.2, (type(est).__name__, err)
        assert abs(err) < 3 * est.stderr + 1e-9, (type(est).__name__, err, est.stderr)
        assert est.stderr < 0.1


def test_beta_slope_matches_exact_slope(linreg_draws):
    p, betas, nL, _, i_win, x, y, _ = linreg_draws
    m = fe.beta_means(betas, nL)
    r = fe.beta_slope(betas[i_win], m.mean[i_win], m.mcse[i_win])
    exact_slope = fe.linear_gaussian_beta_slope(x, y, betas[i_win])
    assert abs(exact_slope - 2.5) < 0.1      # near d/2; the exact finite-n value is the target
    assert abs(r.slope - exact_slope) < 4 * r.stderr, (r.slope, r.stderr, exact_slope)


# ----------------------------------------------------------------------------- stage contract
@pytest.mark.parametrize("init", ["prior", "screen"])
def test_stage_summary_keys_and_figure(tiny_config, tmp_path, init):
    """summary.json gains free_energy{...} and lambda{...}; exact is null for a ReLU net."""
    import json

    from slt.pipeline import config as config_mod, runs

    path = tiny_config(free_energy={"num_betas": 4, "num_chains": 2, "num_warmup": 20, "num_samples": 20,
                                    "init": init},
                       **{"lambda": {"num_betas": 2}})
    cfg = config_mod.load(path)
    run_dir = runs.execute(cfg, stages=["free_energy"], out_dir=tmp_path / "out")
    s = json.loads((run_dir / "summary.json").read_text())
    f, lam = s["free_energy"], s["lambda"]
    for key in ("wbic", "ti", "ti_stderr", "stepping_stone", "stepping_stone_stderr", "exact", "betas",
                "E_nL_n", "nL_n_truth"):
        assert key in f, key
    assert f["exact"] is None and lam["exact_slope"] is None
    assert len(f["betas"]) == len(f["E_nL_n"]) and f["betas"][0] == 0.0 and f["betas"][-1] == 1.0
    assert f["nL_n_truth"] == pytest.approx(60 * s["loss"]["L_n_truth"])
    assert isinstance(lam["beta_slope"], float) and lam["beta_slope_stderr"] > 0
    assert (run_dir / "free_energy.png").stat().st_size > 10_000
