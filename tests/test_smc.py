"""Adaptive tempered SMC (slt/samplers/smc.py) against exact free energies: Bayesian linear regression
(science.md, item 1) and a 1-D conjugate Gaussian written against the generic interface."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt import data, models
from slt.estimators import free_energy as fe
from slt.samplers import smc
from slt.posterior import Problem


# ----------------------------------------------------------------------------- 1-D conjugate toy
# y_i = w + N(0, 1), prior w ~ N(0, s^2): L_n(w) = log(2 pi)/2 + mean((y - w)^2)/2.
def _toy_loss(w, y):
    return 0.5 * math.log(2 * math.pi) + 0.5 * jnp.mean((y - w[0]) ** 2)


def _toy_log_prior(w, y):
    return -0.5 * jnp.sum(w ** 2) / 4.0 - 0.5 * math.log(2 * math.pi * 4.0)     # s = 2


def _toy_sample_prior(key, y):
    return 2.0 * jax.random.normal(key, (1,), y.dtype)


@pytest.fixture(scope="module")
def toy():
    y = 0.7 + np.random.default_rng(0).normal(size=40)
    x = np.ones((40, 1))
    exact = fe.linear_gaussian_free_energy(x, y, 1.0, 2.0)
    post_prec = 1 / 4.0 + 40
    return jnp.asarray(y, jnp.float32), exact, y.sum() / post_prec, 1 / post_prec


def _toy_run(key, y, **kw):
    kw = {"num_particles": 256, "num_runs": 4, **kw}
    return smc.free_energy(key, _toy_log_prior, _toy_loss, _toy_sample_prior, y, y.shape[0], **kw)


def test_toy_free_energy_and_posterior_exact(toy):
    y, exact, post_mean, post_var = toy
    r = _toy_run(jax.random.key(0), y, num_runs=8)
    assert r.num_good == 8 and r.reached.all()
    assert abs(r.free_energy - exact) < 0.1
    assert abs(r.free_energy - exact) < 3.5 * r.stderr + 1e-3, (r.free_energy, r.stderr, exact)
    # the final particles are posterior draws: N(post_mean, post_var) (resampled: ESS <= N)
    w = np.asarray(r.final_loss)            # L_n of the final particles; E[L_n] is exact too
    e_loss = 0.5 * math.log(2 * math.pi) + 0.5 * (np.mean((np.asarray(y) - post_mean) ** 2) + post_var)
    assert abs(w.mean() - e_loss) < 5 * w.std() / math.sqrt(w.size / 4)
    # temperatures increase to exactly 1, and the ladder is no longer than needed
    b = r.betas[0, : r.num_steps[0]]
    assert np.all(np.diff(b) > 0) and b[-1] == 1.0 and np.isnan(r.betas[0, r.num_steps[0]:]).all()


def test_toy_stderr_matches_spread_of_independent_seeds(toy):
    """Ten independent estimates (one compiled program: same shapes, new keys): their spread
    matches the reported standard errors (pooled over seeds: 30 degrees of freedom)."""
    y, exact, _, _ = toy
    res = [_toy_run(jax.random.key(100 + k), y, num_particles=64) for k in range(10)]
    est = np.array([r.free_energy for r in res])
    se = np.sqrt(np.mean([r.stderr ** 2 for r in res]))
    ratio = est.std(ddof=1) / se
    # sd ratio of 9 vs 30 dof chi variables: 0.45..1.7 holds with > 99% probability
    assert 0.45 < ratio < 1.7, (ratio, est, se)
    assert abs(est.mean() - exact) < 4 * se / math.sqrt(10) + 0.02
    ndev = 2 if jax.local_device_count() >= 2 else 1
    fn = smc._compiled(_toy_log_prior, _toy_loss, _toy_sample_prior, 64, 500, 0.5, 5, 4, 0.7, ndev)
    assert fn._cache_size() == 1        # ten seeds, one compiled program


# ----------------------------------------------------------------------------- linear regression
def test_linear_regression_free_energy_exact():
    """d = 4, n = 500: F_n within 0.1 nats and 3 standard errors of the closed form."""
    spec = models.make_mlp([4, 1], "identity", False)
    truth = models.init(jax.random.key(21), spec)
    ds = data.synthesize(jax.random.key(22), spec, truth, 500, 1.0, dist="normal")
    p = Problem.make(spec, ds)
    exact = fe.linear_gaussian_free_energy(np.asarray(p.x), np.asarray(p.y))
    r = smc.free_energy_problem(jax.random.key(3), p, num_particles=512, num_runs=4)
    assert r.num_good == 4
    err = r.free_energy - exact
    assert abs(err) < 0.1, (r.free_energy, exact)
    assert abs(err) < 3 * r.stderr + 1e-3, (err, r.stderr)
    assert 0 < r.stderr < 0.1
    assert np.all(np.nanmean(r.accept_prob, axis=1) > 0.5)


# ----------------------------------------------------------------------------- failures and bad input
def _nan_loss(w, y):
    return jnp.where(w[0] > 100.0, 0.0, jnp.nan) + 0.0 * jnp.sum(y)


def test_nan_runs_are_withheld(toy):
    y = toy[0]
    r = smc.free_energy(jax.random.key(0), _toy_log_prior, _nan_loss, _toy_sample_prior, y, 40,
                        num_particles=16, num_runs=2, max_steps=5)
    assert r.num_good == 0 and math.isnan(r.free_energy) and math.isnan(r.stderr)


@pytest.mark.parametrize("kw", [{"num_particles": 1}, {"num_runs": 0}, {"target_ess": 1.0},
                                {"target_ess": 0.0}, {"num_mcmc_steps": 0}, {"num_leapfrog": 0},
                                {"target_accept": 1.5}, {"max_steps": 0}])
def test_bad_arguments(toy, kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        _toy_run(jax.random.key(0), toy[0], **kw)


def test_next_beta_hits_target_ess():
    nL = jnp.asarray(np.random.default_rng(1).normal(0, 30, size=1000), jnp.float32)
    b = smc.next_beta(nL, jnp.float32(0.2), 0.5)
    frac = smc.ess_fraction(-(b - 0.2) * nL)
    assert 0.2 < b < 1.0 and abs(float(frac) - 0.5) < 1e-3
    assert float(smc.next_beta(jnp.zeros(10), jnp.float32(0.3), 0.5)) == 1.0   # flat weights: jump to 1


# ----------------------------------------------------------------------------- stage and config
def test_agreement_record_names_the_disagreeing_pair():
    from slt.pipeline.stages.free_energy import agreement

    warnings = []
    rec = agreement({"ti": 10.0, "ti_stderr": 0.1, "stepping_stone": 10.1, "stepping_stone_stderr": 0.1,
                     "smc": 11.0, "smc_stderr": 0.2}, warnings.append)
    assert rec["agree"] is False
    z = {(p["a"], p["b"]): p["z"] for p in rec["agreement"]}
    assert z[("ti", "stepping_stone")] == pytest.approx(0.1 / math.hypot(0.1, 0.1))
    assert z[("ti", "smc")] == pytest.approx(1.0 / math.hypot(0.1, 0.2))
    assert len(warnings) == 2 and all("smc" in w and "combined standard errors" in w for w in warnings)
    assert agreement({"ti": 1.0, "ti_stderr": 0.1, "smc": 1.1, "smc_stderr": 0.1})["agree"] is True
    assert agreement({"ti": 1.0, "ti_stderr": 0.1, "smc": None})["agree"] is None


def test_stage_reports_smc_and_agreement(tiny_config, tmp_path):
    import json

    from slt.pipeline import config as config_mod, runs

    path = tiny_config(free_energy={"num_betas": 4, "num_chains": 2, "num_warmup": 20, "num_samples": 20,
                                    "init": "prior", "methods": ["ti", "stepping_stone", "smc"],
                                    "smc_particles": 32, "smc_runs": 2, "smc_mcmc_steps": 2},
                       **{"lambda": {"num_betas": 2}}, output={"figures": False})
    run_dir = runs.execute(config_mod.load(path), stages=["free_energy"], out_dir=tmp_path / "out")
    s = json.loads((run_dir / "summary.json").read_text())
    f = s["free_energy"]
    assert math.isfinite(f["smc"]) and f["smc_stderr"] > 0
    assert len(f["smc_detail"]["per_run"]) == 2 and all(f["smc_detail"]["reached_beta_1"])
    assert f["smc"] == pytest.approx(np.mean(f["smc_detail"]["per_run"]))
    assert isinstance(f["agree"], bool) and len(f["agreement"]) == 3
    assert {(p["a"], p["b"]) for p in f["agreement"]} == {("ti", "stepping_stone"), ("ti", "smc"),
                                                          ("stepping_stone", "smc")}
    if not f["agree"]:
        assert any("disagree" in w for w in s["diagnostics"]["warnings"])


@pytest.mark.parametrize("fe_cfg, key, words", [
    ({"smc_particles": 0}, "free_energy.smc_particles", ">= 2"),
    ({"smc_runs": 1}, "free_energy.smc_runs", ">= 2"),
    ({"smc_mcmc_steps": 0}, "free_energy.smc_mcmc_steps", ">= 1"),
    ({"smc_num_steps": -1}, "free_energy.smc_num_steps", ">= 1"),
    ({"smc_target_ess": 1.0}, "free_energy.smc_target_ess", "(0, 1)"),
    ({"methods": ["ti", "smcc"]}, "free_energy.methods[1]", "did you mean 'smc'"),
])
def test_bad_smc_config_exits_2(tiny_config, tmp_path, capsys, fe_cfg, key, words):
    from slt import cli

    path = tiny_config(free_energy={"methods": ["ti", "smc"], **fe_cfg})
    out = tmp_path / "out"
    code = cli.main(["run", str(path), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and key in err[0] and words in err[0], err
    assert not out.exists()
