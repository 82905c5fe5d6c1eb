"""The local learning coefficient against exact answers (science.md).

Statistical tolerances: the estimator's Monte Carlo standard error is taken as the larger of
the ESS-based MCSE of the pooled loss and the between-chain standard error
``std(per_chain) / sqrt(C)``; a z-score of Z_MAX = 5 against it has a false-alarm rate far
below 1e-4 per comparison. Asymptotic targets (d/2, Aoyagi's lambda, 1/4) additionally get
the relative tolerance the issue asks for (5% regular, 10% singular); finite-n exact values
computed by quadrature are checked with the MCSE alone.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from slt import data, models
from slt.estimators import learning_coefficient as lc
from slt.estimators import lambda_hat as lambda_hat_mod
from slt.posterior import Problem

Z_MAX = 5.0


def _mcse(res):
    between = res.std / math.sqrt(res.num_chains)
    return max(res.mcse, between)


def _linear_problem(d=6, n=1000, seed=0):
    spec = models.make_mlp([d, 1], "identity", False)
    truth = models.init(jax.random.key(seed), spec)
    ds = data.synthesize(jax.random.key(seed + 1), spec, truth, n, 1.0, dist="normal")
    p = Problem.make(spec, ds)
    X, y = np.asarray(p.x, float), np.asarray(p.y, float)[:, 0]
    w_ls = jnp.asarray(np.linalg.lstsq(X, y, rcond=None)[0], p.x.dtype)
    return p, w_ls


def rrr_problem(M, H, N, r, n=10000, seed=0):
    """Reduced-rank regression: model [M, H, N] identity without bias; truth [M, r, N] embedded
    (extra hidden units zero); x ~ N(0, I_M), unit noise."""
    tspec = models.make_mlp([M, r, N], "identity", False)
    spec = models.make_mlp([M, H, N], "identity", False)
    tparams = models.init(jax.random.key(seed), tspec)
    ds = data.synthesize(jax.random.key(seed + 1), tspec, tparams, n, 1.0, dist="normal")
    return Problem.make(spec, ds), models.flatten(models.embed(tspec, tparams, spec))


# ----------------------------------------------------------------------------- regular
def test_linear_regression_least_squares_gamma0_is_d_over_2():
    """At the least-squares w* with gamma = 0 the localised posterior is Gaussian and
    nbeta E[L - L(w*)] = d/2 exactly (any n, any nbeta)."""
    d = 6
    p, w_ls = _linear_problem(d)
    res = lc.llc_for_problem(jax.random.key(0), p, w_ls, gamma=0.0)   # defaults: hmc, auto draws
    assert res.sampler == "hmc" and res.warnings == () and res.converged
    assert abs(res.mean - d / 2) < Z_MAX * _mcse(res)
    assert abs(res.mean - d / 2) < 0.05 * d / 2
    assert 0.7 < np.mean(res.acceptance) < 0.95       # adapted towards 0.8
    T = res.num_draws
    assert T >= 500 and res.loss_trace.shape == (8, T) and res.running_mean.shape == (8, T)
    assert res.per_chain.shape == (8,) and res.step_size.shape == (8,)
    # the same with MALA at a fixed number of draws: unbiased too
    mala = lc.llc_for_problem(jax.random.key(0), p, w_ls, gamma=0.0, sampler="mala", num_draws=1500)
    assert abs(mala.mean - d / 2) < Z_MAX * _mcse(mala)
    assert mala.loss_trace.shape == (8, 1500)


def test_sgld_step_size_bias_is_upward_and_mala_removes_it():
    """SGLD's stationary law is wider than the target by O(eps): at a deliberately large step
    its estimate exceeds d/2 clearly, while MALA at the same step stays unbiased."""
    d = 6
    p, w_ls = _linear_problem(d)
    big = 0.6 / (lc.default_nbeta(p.n) * float(lc.top_hessian_eigenvalue(
        lc.problem_loss, w_ls, p, jax.random.key(1))))
    sgld = lc.llc_for_problem(jax.random.key(0), p, w_ls, gamma=0.0, sampler="sgld",
                              step_size=big, num_chains=8, num_draws=1500)
    mala = lc.llc_for_problem(jax.random.key(0), p, w_ls, gamma=0.0, sampler="mala",
                              step_size=big, num_chains=8, num_draws=1500)
    assert sgld.mean - d / 2 > Z_MAX * _mcse(sgld)
    assert abs(mala.mean - d / 2) < Z_MAX * _mcse(mala)
    # the MH acceptance estimate reported for SGLD flags the large step (devinterp's diagnostic)
    small = lc.llc_for_problem(jax.random.key(0), p, w_ls, gamma=0.0, sampler="sgld",
                               step_size=big / 10, num_chains=8, num_draws=1500)  # same program
    assert np.mean(sgld.acceptance) < np.mean(small.acceptance)
    assert small.mean < sgld.mean


def test_nuts_on_the_localised_posterior():
    """NUTS (numpyro's functional hmc, diagonal mass adaptation) agrees with d/2 too."""
    d = 4
    p, w_ls = _linear_problem(d)
    res = lc.llc_for_problem(jax.random.key(0), p, w_ls, gamma=0.0, sampler="nuts",
                             num_chains=4, num_draws=400, num_adapt=200)
    assert not res.diverged and not any("diverged" in w for w in res.warnings)
    assert abs(res.mean - d / 2) < Z_MAX * _mcse(res)
    assert 0.6 < np.mean(res.acceptance) <= 1.0


def test_mala_acceptance_sanity():
    """Tiny steps are almost always accepted, huge ones almost never (and say so)."""
    p, w_ls = _linear_problem(4)
    tiny = lc.llc_for_problem(jax.random.key(0), p, w_ls, sampler="mala", step_size=1e-7,
                              num_chains=2, num_draws=100)
    huge = lc.llc_for_problem(jax.random.key(0), p, w_ls, sampler="mala", step_size=1.0,
                              num_chains=2, num_draws=100)
    assert np.all(tiny.acceptance > 0.99)
    assert np.all(huge.acceptance < 0.05)
    assert any("acceptance" in w for w in huge.warnings)


def test_minibatch_sgld_runs_and_is_close():
    """Minibatch SGLD (indices drawn from the key per step) gives a finite estimate near d/2
    (minibatch noise adds its own bias: loose check only) and records batch losses."""
    d = 4
    p, w_ls = _linear_problem(d, n=2000)
    res = lc.llc_for_problem(jax.random.key(0), p, w_ls, gamma=0.0, sampler="sgld",
                             batch_size=200, num_chains=4, num_draws=1000)
    assert res.batch_size == 200 and not res.diverged
    assert np.isfinite(res.loss_trace).all()
    assert abs(res.mean - d / 2) < 0.5 * d / 2


def test_divergence_withholds_and_negative_warns():
    p, w_ls = _linear_problem(4)
    res = lc.llc_for_problem(jax.random.key(0), p, w_ls, sampler="sgld", step_size=0.5,
                             num_chains=2, num_draws=50)
    assert res.diverged and res.mean is None
    assert any("diverged" in w for w in res.warnings)
    # w* far from the minimum: the chains fall below L(w*), the LLC is negative
    res = lc.llc_for_problem(jax.random.key(0), p, w_ls + 0.5, sampler="mala",
                             num_chains=2, num_draws=300)
    assert res.mean < 0 and any("not a local minimum" in w for w in res.warnings)


def test_potential_api_and_bad_arguments():
    with pytest.raises(ValueError, match="nbeta"):
        lc.estimate_llc(jax.random.key(0), lambda w: jnp.sum(w ** 2), jnp.zeros(2))
    with pytest.raises(ValueError, match="sampler"):
        lc.estimate_llc(jax.random.key(0), lambda w: jnp.sum(w ** 2), jnp.zeros(2), nbeta=10.0,
                        sampler="hmcc")
    with pytest.raises(ValueError, match="nbeta"):
        lc.estimate_llc(jax.random.key(0), lambda w: jnp.sum(w ** 2), jnp.zeros(2), nbeta=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        lc.estimate_llc(jax.random.key(0), lambda w: jnp.sum(w ** 2), jnp.zeros(2), nbeta=10.0, gamma=-1)
    with pytest.raises(ValueError, match="max_draws"):
        lc.estimate_llc(jax.random.key(0), lambda w: jnp.sum(w ** 2), jnp.zeros(2), nbeta=10.0,
                        max_draws=10, num_burnin=50)
    with pytest.raises(ValueError, match="flat"):
        lc.estimate_llc(jax.random.key(0), lambda w: jnp.sum(w ** 2), jnp.zeros((2, 2)), nbeta=10.0)


# ----------------------------------------------------------------------------- toy singular
def _exact_abx(p: Problem, nbeta: float, gamma: float) -> float:
    """Exact finite-nbeta LLC at w* = 0 for y = a b x (1-D quadrature over b).

    nbeta (L(a,b) - L(0)) = t (u^2 s - 2 u c) / 2, u = ab, s = mean x^2, c = mean x y; for
    fixed b the density in a is Gaussian (precision P = t b^2 s + gamma, mean t b c / P)."""
    x, y = np.asarray(p.x, float)[:, 0], np.asarray(p.y, float)[:, 0]
    s, c, t = np.mean(x * x), np.mean(x * y), nbeta

    def parts(b):
        P = t * b * b * s + gamma
        m = t * b * c / P
        logw = -0.5 * np.log(P) + (t * b * c) ** 2 / (2 * P) - 0.5 * gamma * b * b
        val = 0.5 * t * (b * b * s * (1 / P + m * m) - 2 * b * c * m)
        return logw, val

    shift = parts(0.0)[0]
    num = lambda b: np.exp(parts(b)[0] - shift) * parts(b)[1]
    den = lambda b: np.exp(parts(b)[0] - shift)
    pts = [-1 / math.sqrt(t), 0.0, 1 / math.sqrt(t)]
    q = lambda f: sum(integrate.quad(f, a, b, limit=400)[0]
                      for a, b in zip([-12.0] + pts, pts + [12.0]))
    return q(num) / q(den)


def _exact_quartic(t: float, gamma: float = 1.0) -> float:
    """E[t w^4] under exp(-t w^4 - gamma w^2 / 2) (1-D quadrature)."""
    br = t ** -0.25
    q = lambda f: integrate.quad(f, 0, br, limit=400)[0] + integrate.quad(f, br, 12.0, limit=400)[0]
    dens = lambda u: np.exp(-t * u ** 4 - gamma * u * u / 2)
    return q(lambda u: t * u ** 4 * dens(u)) / q(dens)


@pytest.mark.slow
def test_abx_matches_exact_finite_n_value():
    """y = a b x, truth 0 (lambda = 1/2, m = 2). The finite-n LLC approaches 1/2 only like
    1/log(nbeta) (multiplicity 2): at n = 10000 its exact value is ~0.39 (notes/llc.md), so
    the sampler is checked against the exact quadrature value, not against 1/2."""
    tspec = models.make_mlp([1, 1, 1], "identity", False)
    truth = models.unflatten(tspec, jnp.zeros(2))
    ds = data.synthesize(jax.random.key(3), tspec, truth, 10000, 1.0, dist="normal")
    p = Problem.make(tspec, ds)
    nbeta = lc.default_nbeta(p.n)
    exact = _exact_abx(p, nbeta, 1.0)
    # hmc, auto draws up to 16000: at the default cap of 8000 the trend test's power is marginal
    # here for both the single-scale and the multi-scale kernel (drift se ~0.008 against a 0.02
    # tolerance; each failed it on one of keys 0, 1: benchmarks/llc_singular.md)
    res = lc.llc_for_problem(jax.random.key(0), p, jnp.zeros(2), max_draws=16000)
    assert res.converged
    assert abs(res.mean - exact) < Z_MAX * _mcse(res), (res.mean, exact, _mcse(res))
    assert 0.3 < exact < 0.5
    mala = lc.llc_for_problem(jax.random.key(0), p, jnp.zeros(2), sampler="mala", num_draws=4000)
    assert abs(mala.mean - exact) < Z_MAX * _mcse(mala), (mala.mean, exact, _mcse(mala))


@pytest.mark.slow
def test_potential_quartic_with_flat_direction_is_one_quarter():
    """K(w1, w2) = w1^4 (loss_fn API): lambda = 1/4 (m = 1), the flat w2 (held only by the
    localisation) adds nothing. Checked against the exact finite-nbeta value (quadrature) within
    MC error and against 1/4 within 10%. (K = w1^2 w2^4, also lambda = 1/4, is a documented
    failure of global-step samplers: notes/llc.md.)"""
    K = lambda w: w[0] ** 4
    t = 1e4
    exact = _exact_quartic(t)
    res = lc.estimate_llc(jax.random.key(0), K, jnp.zeros(2), nbeta=t)  # hmc, auto draws
    assert res.converged
    assert abs(res.mean - exact) < Z_MAX * _mcse(res), (res.mean, exact, _mcse(res))
    assert abs(res.mean - 0.25) < 0.1 * 0.25
    assert abs(exact - 0.25) < 0.02


# ----------------------------------------------------------------------------- reduced rank
RRR_CASES = [
    # (M, H, N, r): Aoyagi's branch
    (4, 3, 6, 1),   # case 1 (N+r <= M+H, M+r <= N+H, H+r <= M+N), M+H+N+r even: 7.5
    (3, 2, 7, 1),   # case 2 (M+H < N+r): 5.5
    (7, 2, 3, 1),   # case 3 (N+H < M+r): 5.5
    (3, 8, 4, 2),   # case 4 (M+N < H+r): MN/2 = 6
]
# Slow at n = 10000 (findings, notes/llc.md): (3,3,3,1) -13%, (2,4,2,1) -10%, (2,2,6,1).


@pytest.mark.slow
@pytest.mark.parametrize("case", RRR_CASES)
def test_reduced_rank_regression_at_truth(case):
    """LLC at the truth's stratum minimiser (``refine``: L_n minimised from the embedded truth;
    the zero extra units stay zero), n = 10000, within 10% of Aoyagi's lambda. The raw
    estimate at the truth itself sits a further ~nbeta (L_n(w0) - L_n(w_hat)) ~ 0.3-0.5 lower
    (measured values in notes/llc.md)."""
    p, w0 = rrr_problem(*case)
    lam = lc.rrr_lambda(*case)
    w_hat, _, grad_norm = lc.refine_point(p, w0)
    assert grad_norm < 1e-2
    res = lc.llc_for_problem(jax.random.key(0), p, w_hat)   # defaults: hmc, auto draws
    assert res.warnings == () and res.converged
    assert abs(res.mean - lam) < 0.1 * lam, (case, res.mean, lam, _mcse(res))
    assert _mcse(res) < 0.03 * lam


def test_rrr_lambda_formula_examples():
    assert lc.rrr_lambda(5, 3, 5, 1) == 8
    assert lc.rrr_lambda(3, 3, 3, 1) == 4
    assert lc.rrr_lambda(4, 3, 8, 1) == 8.5
    assert lc.rrr_lambda(3, 8, 4, 2) == 6


# ----------------------------------------------------------------------------- stage / CLI
def _rrr_config(tmp_path, **llc):
    import yaml

    cfg = {"name": "rrr", "seed": 0, "model": {"widths": [3, 2, 3], "activation": "identity", "bias": False},
           "truth": {"widths": [3, 1, 3], "random": {"seed": 0}},
           "data": {"n": 500, "x": {"dist": "normal"}},
           "llc": {"num_chains": 2, "num_draws": 100, **llc}}
    path = tmp_path / "rrr.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_llc_writes_summary_and_figure(tmp_path):
    import json

    from slt import cli

    path = _rrr_config(tmp_path)
    assert cli.main(["llc", str(path), "--out", str(tmp_path / "runs"), "--quiet", "--no-cache"]) == 0
    run = next((tmp_path / "runs").iterdir())
    s = json.loads((run / "summary.json").read_text())
    assert s["complete"] is True
    llc = s["llc"]
    for key in ("mean", "stderr", "std", "per_chain", "w_star", "L_n_w_star", "sampler", "nbeta",
                "gamma", "step_size", "num_chains", "num_draws", "acceptance", "converged", "trend_test",
                "lambda_hat", "lambda_hat_stderr", "exact_lambda", "exact_multiplicity"):
        assert key in llc, key
    assert llc["w_star"] == "truth" and llc["sampler"] == "hmc" and len(llc["per_chain"]) == 2
    assert abs(llc["nbeta"] - 500 / math.log(500)) < 1e-9
    # refine is the default at the truth, and both L_n values are kept
    assert llc["refined"] is True and llc["L_n_w_star"] <= llc["L_n_start"]
    assert llc["exact_lambda"] == lc.rrr_lambda(3, 2, 3, 1) and llc["truth_rank"] == 1
    assert isinstance(llc["converged"], bool) and llc["lambda_hat_stderr"] > 0
    assert (run / "llc_traces.png").exists() and (run / "llc_traces.npz").exists()
    # refine: false gives the raw point
    path = _rrr_config(tmp_path, refine=False)
    assert cli.main(["llc", str(path), "--out", str(tmp_path / "raw"), "--quiet", "--no-cache"]) == 0
    raw = json.loads((next((tmp_path / "raw").iterdir()) / "summary.json").read_text())["llc"]
    assert "refined" not in raw and "L_n_start" not in raw


def test_cli_calibrate_writes_grid(tmp_path):
    import json

    from slt import cli

    path = _rrr_config(tmp_path, sampler="sgld")
    code = cli.main(["calibrate", str(path), "--out", str(tmp_path / "cal"), "--quiet", "--no-cache",
                     "--step-sizes", "1e-4", "1e-3", "--nbetas", "50", "80"])
    assert code == 0
    run = next((tmp_path / "cal").iterdir())
    s = json.loads((run / "summary.json").read_text())
    assert s["complete"] is True and len(s["llc_calibration"]["grid"]) == 4
    assert (run / "calibration.png").exists() and (run / "calibration.csv").exists()


def test_bad_llc_input_is_a_config_error(tmp_path):
    from slt import cli
    from slt.pipeline import config

    path = _rrr_config(tmp_path, at="params", params=[{"W": [[1.0, 2.0]]}, {"W": [[1.0]]}])
    with pytest.raises(config.ConfigError, match="llc.params"):
        config.load(path)
    assert cli.main(["llc", str(path), "--quiet", "--no-cache"]) == 2
    with pytest.raises(config.ConfigError, match="llc.batch_size"):
        config.load(_rrr_config(tmp_path, sampler="mala", batch_size=10))
    with pytest.raises(config.ConfigError, match="llc.sampler"):
        config.load(_rrr_config(tmp_path, sampler="sgd"))
    with pytest.raises(config.ConfigError, match="llc.nbeta"):
        config.load(_rrr_config(tmp_path, nbeta=0))
    with pytest.raises(config.ConfigError, match="llc.gamma"):
        config.load(_rrr_config(tmp_path, gamma=-1.0))
    with pytest.raises(config.ConfigError, match="llc.num_draws"):
        config.load(_rrr_config(tmp_path, num_draws="forever"))
    with pytest.raises(config.ConfigError, match="llc.max_draws"):
        config.load(_rrr_config(tmp_path, num_draws="auto", max_draws=20))
    with pytest.raises(config.ConfigError, match="llc.max_draws"):
        config.load(_rrr_config(tmp_path, num_draws="auto", max_draws=100, num_burnin=200))
    for bad in (["--set", "llc.sampler=bogus"], ["--set", "llc.gamma=-2"], ["--set", "llc.max_draws=5"]):
        assert cli.main(["llc", str(_rrr_config(tmp_path, num_draws="auto")), "--quiet", "--no-cache", *bad]) == 2


# ----------------------------------------------------------------------------- convergence
def test_trend_test_flags_drift_and_passes_stationary_draws():
    """The trend test on synthetic draws: i.i.d. draws pass, a drift of 10% between halves
    fails even when the noise is small, and a short noisy run fails for lack of confidence."""
    rng = np.random.default_rng(0)
    iid = 5.0 + rng.normal(size=(8, 4000))
    t = lc.trend_test(iid)
    assert t.converged and abs(t.drift) < 3 * t.drift_se
    drifting = iid + np.linspace(0.0, 1.0, 4000)            # the estimate climbs 5 -> 6
    t = lc.trend_test(drifting)
    assert not t.converged and t.drift > 0.4
    short = 5.0 + 3.0 * rng.normal(size=(8, 40))
    assert not lc.trend_test(short).converged
    assert lc.trend_test(5.0 + rng.normal(size=(1, 4000))).converged    # one chain: batch means


def test_drifting_chains_are_flagged_and_auto_extends_until_converged():
    """A chain still climbing from w* (MALA with a fixed tiny step, no burn-in) is reported
    with converged = False and a warning, never silently; the default (HMC, num_draws auto)
    on the same target passes the test."""
    K = lambda w: 0.5 * jnp.sum(w ** 2)                      # exact llc = d/2 at gamma = 0
    d = 6
    slow = lc.estimate_llc(jax.random.key(0), K, jnp.zeros(d), nbeta=1e3, gamma=0.0, sampler="mala",
                           step_size=2e-6, num_draws=400, num_burnin=0, num_chains=4)
    assert slow.converged is False and slow.trend.drift > 0
    assert any(w.startswith("llc: not converged") for w in slow.warnings)
    ok = lc.estimate_llc(jax.random.key(0), K, jnp.zeros(d), nbeta=1e3, gamma=0.0)
    assert ok.converged and not ok.warnings
    assert abs(ok.mean - d / 2) < Z_MAX * _mcse(ok)
    # auto with a cap: stops there and says so
    capped = lc.estimate_llc(jax.random.key(0), K, jnp.zeros(d), nbeta=1e3, gamma=0.0, sampler="mala",
                             step_size=2e-6, num_burnin=0, num_chains=4, max_draws=4000)
    assert capped.num_draws == 4000 and capped.converged is False
    assert any("max_draws = 4000" in w for w in capped.warnings)



def test_sgld_and_nuts_auto_continue_the_same_chains():
    """SGLD and NUTS run in the same warmup + draw-chunk programs as HMC and MALA: with
    num_draws auto and a cap above the first chunk (2000) a chain still climbing from w* (a tiny
    fixed step, no burn-in) is continued, not restarted. SGLD: the first 2000 draws are those of
    a 2000-draw run, and the next draw follows on from the last (a restart would record L(w*) =
    0 again). NUTS carries numpyro's state with its own key: the auto run equals one 4000-draw
    run (the chunking is invisible)."""
    K = lambda w: 0.5 * jnp.sum(w ** 2)
    kw = dict(nbeta=1e3, gamma=0.0, num_burnin=0, num_chains=4)
    sgld = dict(kw, sampler="sgld", step_size=2e-6)
    auto = lc.estimate_llc(jax.random.key(0), K, jnp.zeros(6), max_draws=4000, **sgld)
    one = lc.estimate_llc(jax.random.key(0), K, jnp.zeros(6), num_draws=2000, **sgld)
    assert auto.num_draws == 4000 and auto.converged is False
    assert any("max_draws = 4000" in w for w in auto.warnings)
    np.testing.assert_array_equal(auto.loss_trace[:, :2000], one.loss_trace)
    assert (one.loss_trace[:, 0] == 0).all() and (auto.loss_trace[:, 2000] > 0.5 * auto.loss_trace[:, 1999]).all()
    nuts = dict(kw, sampler="nuts", step_size=3e-5, num_adapt=0, max_tree_depth=3)
    auto = lc.estimate_llc(jax.random.key(1), K, jnp.zeros(6), max_draws=4000, **nuts)
    one = lc.estimate_llc(jax.random.key(1), K, jnp.zeros(6), num_draws=4000, **nuts)
    assert auto.num_draws == 4000 and auto.converged is False and auto.steps_per_draw == 7
    np.testing.assert_array_equal(auto.loss_trace, one.loss_trace)
    np.testing.assert_array_equal(auto.step_size, np.full(4, 3e-5, np.float32))

# ----------------------------------------------------------------------------- singular reference
@pytest.mark.slow
def test_hmc_matches_independent_nuts_on_a_deep_linear_network():
    """[2,2,2] deep linear network, zero truth (lambda 3/2), n = 10000, at the minimiser next
    to the truth: slt's HMC against numpyro's NUTS (an independent implementation, diagonal mass
    adaptation, its own step-size rule) on the same localised posterior, in float64; they must
    agree within their combined Monte Carlo error (and 3%)."""
    jax.config.update("jax_enable_x64", True)
    try:
        spec, tparams, w0 = models.deep_linear_truth(jax.random.key(0), [2, 2, 2], 0)
        ds = data.synthesize(jax.random.key(1), spec, tparams, 10000, 1.0, dist="normal")
        p = Problem.make(spec, ds)
        w_hat, _, g = lc.refine_point(p, w0)
        assert g < 1e-4
        hmc = lc.llc_for_problem(jax.random.key(0), p, w_hat, max_draws=16000)
        nuts = lc.llc_for_problem(jax.random.key(1), p, w_hat, sampler="nuts", num_draws=4000, num_chains=8)
        se = math.hypot(_mcse(hmc), _mcse(nuts))
        assert hmc.converged
        assert abs(hmc.mean - nuts.mean) < Z_MAX * se, (hmc.mean, nuts.mean, se)
        assert abs(hmc.mean - nuts.mean) < 0.03 * nuts.mean
    finally:
        jax.config.update("jax_enable_x64", False)


def test_lambda_hat_error_bar_and_linear_sufficient_statistics():
    """lambda_hat on a small deep linear network: the value is the LLC at the minimiser, the
    error bar is at least the Monte Carlo and data-fluctuation errors combined and carries the
    extrapolation term; L_n through sufficient statistics equals the full-data L_n."""
    from slt.posterior import linear_loss, linear_stats

    tspec, tparams, w0 = models.deep_linear_truth(jax.random.key(0), [3, 2, 3], 1)
    spec = models.make_mlp([3, 2, 3], "identity", False)     # the model; the truth is [3, 1, 3]
    p = Problem.make(spec, data.synthesize(jax.random.key(1), tspec, tparams, 4000, 1.0, dist="normal"))
    stats = linear_stats(p)
    for k in range(3):
        w = jax.random.normal(jax.random.key(k), (p.d,))
        assert abs(float(linear_loss(w, stats)) - float(p.loss(w))) < 1e-4 * float(p.loss(w))
    w_hat, _, g = lc.refine_point(p, w0)
    res = lc.llc_for_problem(jax.random.key(0), p, w_hat, num_chains=4)
    lam = lambda_hat_mod.lambda_hat(jax.random.key(1), p, w_hat, res, num_chains=4)
    assert lam.value == res.mean and len(lam.per_subset) == 4 and lam.subset_n == 1000
    assert lam.stderr >= math.hypot(lam.mcse, lam.data_sd) > 0
    assert math.isfinite(lam.extrapolation) and lam.extrapolation_se > 0
    assert abs(lam.value - lc.rrr_lambda(3, 2, 3, 1)) < 2.5 * lam.stderr


def test_stein_control_variates_remove_all_variance_on_a_gaussian_posterior():
    """On L = |w|^2 / 2 the localised posterior is N(w*, I / (nbeta + gamma)) and nbeta (L - L(w*))
    is quadratic in w: the control variates (cross-fitted on the other chains) remove its whole
    Monte Carlo variance, leaving the exact LLC nbeta d / (2 (nbeta + gamma)) at every draw."""
    from slt.estimators.llc_summary import stein_adjust

    rng = np.random.default_rng(0)
    d, nbeta, gamma, chains, draws = 3, 50.0, 2.0, 4, 400
    w = rng.normal(size=(chains, draws, d)) / np.sqrt(nbeta + gamma)
    excess = nbeta * 0.5 * (w ** 2).sum(-1)
    adjusted = stein_adjust(excess, w, w, np.zeros(d), nbeta, gamma)
    exact = nbeta * d / (2 * (nbeta + gamma))
    assert abs(excess.mean() - exact) < 6 * excess.std() / np.sqrt(excess.size)   # the plain average: MC error
    np.testing.assert_allclose(adjusted, exact, rtol=1e-8)


def test_the_control_variate_error_bar_covers_the_fit_on_a_non_quadratic_target():
    """On L = w^4 / 4 (1-D, localised) the variates are not exact; over 200 independent
    replications (iid draws, 4 chains x 60) the adjusted mean's error must be covered by its error
    bar (the larger of the per-draw and the per-chain standard errors, as the llc stage reports):
    z-scores with sd near 1 and no excess of |z| > 3. Exact answer by quadrature of the density
    exp(-nbeta w^4 / 4 - gamma w^2 / 2). (Correlated chains on cross-shaped targets are
    benchmarks/llc_singular.py's study.)"""
    from slt.estimators.llc_summary import stein_adjust

    nbeta, gamma, chains, draws = 200.0, 1.0, 4, 60
    grid = np.linspace(-2, 2, 200001)
    dens = np.exp(-nbeta * grid ** 4 / 4 - gamma * grid ** 2 / 2)
    exact = float(np.sum(nbeta * grid ** 4 / 4 * dens) / np.sum(dens))
    rng = np.random.default_rng(3)
    cdf = np.cumsum(dens) / np.sum(dens)
    zs = []
    for _ in range(200):   # iid draws by inverse CDF: the only error is the estimator's
        w = np.interp(rng.uniform(size=(chains, draws)), cdf, grid)[..., None]
        adj = stein_adjust(nbeta * w[..., 0] ** 4 / 4, w, w ** 3, np.zeros(1), nbeta, gamma)
        se = max(adj.std() / np.sqrt(adj.size), adj.mean(axis=1).std(ddof=1) / np.sqrt(chains))
        zs.append((adj.mean() - exact) / se)
    zs = np.asarray(zs)
    assert np.mean(np.abs(zs) > 3) < 0.03 and 0.6 < zs.std() < 1.6


def test_a_failed_control_variate_fit_falls_back_to_the_plain_average(monkeypatch):
    """LAPACK's least squares can fail on extreme conditioning (LinAlgError): the estimate is then
    the plain average of the same draws, never an exception."""
    from slt.estimators import llc_summary

    def broken(*a, **k):
        raise np.linalg.LinAlgError("SVD did not converge in Linear Least Squares")

    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 100, 2))
    excess = (w ** 2).sum(-1)
    monkeypatch.setattr(llc_summary.np.linalg, "lstsq", broken)
    assert llc_summary.stein_adjust(excess, w, w, np.zeros(2), 2.0, 0.0) is None
    r = lc.estimate_llc(jax.random.key(0), lambda w: 0.5 * jnp.sum(w ** 2), jnp.zeros(2), nbeta=20.0,
                        num_chains=2, num_draws=200, control_variates=True)
    assert r.raw_mean is None and r.mean is not None and np.isfinite(r.mean)


def test_the_control_variate_check_holds_at_stationarity_and_catches_draws_off_the_target():
    """Stein's identity makes the cross-fitted correction Z . b mean 0 exactly under the target.
    (a) iid draws of the quartic target above, 200 replications: the check fails about as often
    as |N(0, 1)| > CV_CHECK_Z (4.6%), not more than twice that. (b) draws from a Gaussian twice as
    wide as the localised posterior (not the target, so E[Z] != 0): the check fails, and the
    summary reports the plain average with a warning instead of the moved estimate."""
    from slt.estimators import llc_summary as ls

    nbeta, gamma, chains, draws = 200.0, 1.0, 4, 60
    grid = np.linspace(-2, 2, 200001)
    dens = np.exp(-nbeta * grid ** 4 / 4 - gamma * grid ** 2 / 2)
    cdf = np.cumsum(dens) / np.sum(dens)
    rng = np.random.default_rng(4)
    fails = 0
    for _ in range(200):
        w = np.interp(rng.uniform(size=(chains, draws)), cdf, grid)[..., None]
        excess = nbeta * w[..., 0] ** 4 / 4
        fails += not ls.cv_check(excess, ls.stein_adjust(excess, w, w ** 3, np.zeros(1), nbeta, gamma)).ok
    p = 2 * (1 - 0.5 * (1 + math.erf(ls.CV_CHECK_Z / math.sqrt(2))))
    assert fails / 200 < 2 * p + 3 * math.sqrt(p / 200)

    d, nbeta = 2, 50.0
    w = rng.normal(size=(chains, 400, d)) * 2.0 / np.sqrt(nbeta + gamma)
    excess = nbeta * 0.5 * (w ** 2).sum(-1)
    adj = ls.stein_adjust(excess, w, w, np.zeros(d), nbeta, gamma)
    assert not ls.cv_check(excess, adj).ok
    res = ls.summarize(excess / nbeta, np.full(excess.shape, 0.9), np.full(chains, 0.1), 0.0, nbeta=nbeta,
                       gamma=gamma, sampler="hmc", d=d, adjusted=adj)
    assert res.mean == pytest.approx(excess.mean()) and res.raw_mean is None
    assert any("control variates not used" in m for m in res.warnings)


def test_the_reported_error_bar_widens_the_between_chain_part_by_the_t_quantile():
    """stderr = max(MCSE, t_{C-1}/z x std / sqrt(C)): the between-chain part is estimated from C
    chain means. t_ratio matches scipy's t quantile (exact at df 1 and 2, 0.12% at 3, 1.1e-4 from 5)."""
    import scipy.stats
    from slt.estimators.llc_summary import Z_975, stderr, t_ratio

    for df in range(1, 120):
        assert t_ratio(df) * Z_975 == pytest.approx(scipy.stats.t.ppf(0.975, df), rel=1.3e-3 if df < 5 else 1.2e-4)
    r = lc.estimate_llc(jax.random.key(0), lambda w: 0.5 * jnp.sum(w ** 2), jnp.zeros(2), nbeta=20.0,
                        num_chains=8, num_draws=200, control_variates=False)
    assert stderr(r) == pytest.approx(max(r.mcse, r.std / math.sqrt(8) * t_ratio(7)))
    assert stderr(r._replace(mean=None)) is None
