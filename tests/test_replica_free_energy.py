"""Free energy from replica ladders (slt.estimators.replica_free_energy) against the closed-form F_n of
Bayesian linear regression."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt.estimators import free_energy as fe
from slt import models
from slt.samplers import replica
from slt.estimators import replica_free_energy as rfe
from slt.data import Dataset
from slt.posterior import Problem


def test_log_trapezoid_integrates_constants_exactly_and_one_over_beta_closely():
    betas = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 30)])
    w = rfe.log_trapezoid_weights(betas)
    assert w.sum() == pytest.approx(1.0, rel=1e-12)
    # g = 1/beta on [1e-3, 1], g = 1000 on [0, 1e-3]: integral 1 + log(1000)
    g = 1.0 / np.maximum(betas, 1e-3)
    assert w @ g == pytest.approx(1.0 + np.log(1000.0), rel=2e-3)
    with pytest.raises(ValueError):
        rfe.log_trapezoid_weights(np.array([0.1, 1.0]))


@pytest.mark.slow
def test_ti_and_stepping_stone_match_linear_regression_free_energy():
    rng = np.random.default_rng(0)
    n, d = 200, 3
    x = rng.normal(size=(n, d))
    y = x @ np.array([1.0, -0.5, 0.3])[:, None] + rng.normal(size=(n, 1))
    p = Problem.make(models.make_mlp([d, 1], "identity", bias=False), Dataset(jnp.asarray(x), jnp.asarray(y)))
    exact = fe.linear_gaussian_free_energy(x, y)
    res = replica.sample_problem(jax.random.key(0), p, np.zeros((4, d)), num_temperatures=12, beta_min=0.0,
                                 num_warmup=800, num_samples=1500, num_steps=8)
    r = rfe.free_energy(res, n)
    for est, se in ((r.ti, r.ti_stderr), (r.stepping_stone, r.stepping_stone_stderr)):
        assert 0 < se < 0.2
        assert abs(est - exact) < 0.1 and abs(est - exact) < 4 * se, (est, se, exact)
    # a ladder that stops short of the prior has no free energy
    short = replica.sample_problem(jax.random.key(0), p, np.zeros((4, d)), num_temperatures=12, beta_min=1e-3,
                                   num_warmup=800, num_samples=1500, num_steps=8)
    with pytest.raises(ValueError, match="beta = 0"):
        rfe.free_energy(short, n)
    # a chain with a non-finite L_n is left out
    bad = res._replace(loss_ladder=res.loss_ladder.copy(), valid=res.valid.copy())
    bad.loss_ladder[1, 3, 7] = np.nan
    bad.valid[1] = False
    assert list(rfe.free_energy(bad, n).chains) == [0, 2, 3]


@pytest.mark.slow
def test_stage_replica_path_matches_the_closed_form(tmp_path):
    """``free_energy.sampler: replica`` through the stage: TI and stepping stone from the
    ladders, SMC independently, all within 0.1 nats and their errors of the exact F_n of
    linear regression; WBIC and the lambda window from their own chains; the agreement record."""
    from slt.pipeline import config, runs

    cfg = config.load("configs/linreg_free_energy.yaml",
                      ["free_energy.sampler=replica", "free_energy.num_warmup=300", "free_energy.num_samples=400",
                       "free_energy.methods=[ti, wbic, stepping_stone, smc]", "free_energy.smc_particles=256",
                       "output.figures=true"])
    run_dir = runs.execute(cfg, stages=["free_energy"], out_dir=tmp_path)
    import json

    s = json.loads((run_dir / "summary.json").read_text())
    f = s["free_energy"]
    for k in ("ti", "stepping_stone", "smc"):
        err = f[k] - f["exact"]
        assert abs(err) < 4 * f[f"{k}_stderr"] + 0.02, (k, err, f[f"{k}_stderr"])
        assert k == "smc" or abs(err) < 0.1, (k, err)     # smc at 256 particles: se ~0.09
    assert f["agree"] is True and len(f["agreement"]) == 3
    # the ladder communicates: round trips per chain are ~Poisson with mean ~3 here, so one chain
    # with none happens on some CPUs' floating-point paths; assert the aggregate
    assert sum(f["sampler"]["round_trips"]) >= len(f["sampler"]["round_trips"])
    assert f["converged"] is True and f["rhat_beta1"] < 1.05
    assert abs(s["lambda"]["beta_slope"] - s["lambda"]["exact_slope"]) < 4 * s["lambda"]["beta_slope_stderr"]
    assert f["wbic"] is not None and (run_dir / "free_energy.png").stat().st_size > 10_000
