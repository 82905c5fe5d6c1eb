"""Bayesian influence functions and susceptibilities from the LLC's own draws, against exact
answers (linear regression: Gaussian localised posterior) and the fluctuation-dissipation
identity (a small ReLU network: independent chains at h = +-eps). Tolerances are the
estimates' own batch-means standard errors; the cases were chosen before the first run."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt import models
from slt.estimators import influence
from slt.estimators import learning_coefficient as lc
from slt.data import Dataset
from slt.posterior import Problem


def _linear(seed, n, d, sigma, bias=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=d) + 0.5 + sigma * rng.normal(size=n)
    spec = models.make_mlp([d, 1], "identity", bias=bias)
    p = Problem.make(spec, Dataset(x, y[:, None]), noise_std=sigma)
    xt = np.concatenate([x, np.ones((n, 1))], 1) if bias else x   # flat order: W then b
    w_star = np.linalg.lstsq(xt, y, rcond=None)[0]
    return p, xt, y, w_star


def test_keep_positions_leaves_the_estimate_unchanged():
    loss = lambda w: 0.5 * jnp.sum(w ** 2) + jnp.sum(w ** 4)
    kw = dict(nbeta=50.0, num_chains=2, num_draws=60, num_burnin=10, num_adapt=20)
    a = lc.estimate_llc(jax.random.key(0), loss, jnp.zeros(3), **kw)
    b = lc.estimate_llc(jax.random.key(0), loss, jnp.zeros(3), keep_positions=True, **kw)
    c = lc.estimate_llc(jax.random.key(0), loss, jnp.zeros(3), keep_positions=4, **kw)
    assert a.positions is None and b.positions.shape == (2, 60, 3) and c.positions.shape == (2, 15, 3)
    np.testing.assert_array_equal(a.loss_trace, b.loss_trace)
    assert a.mean == b.mean
    np.testing.assert_array_equal(c.positions, b.positions[:, 3::4])
    np.testing.assert_allclose(jax.vmap(jax.vmap(loss))(b.positions), b.loss_trace, rtol=1e-5)
    with pytest.raises(ValueError, match="hmc or mala"):
        lc.estimate_llc(jax.random.key(0), loss, jnp.zeros(3), sampler="sgld", keep_positions=True, **kw)


def test_thinning_counts_draws_across_auto_chunks(monkeypatch):
    """num_draws: auto continues the chains in chunks of 500; every k-th draw of the whole run is
    kept (k = 7 does not divide 500): the kept draws' losses are loss_trace[:, 6::7]."""
    monkeypatch.setattr(lc, "trend_test", lambda excess, *a, **k: lc.TrendTest(False, 0.0, 0.0, 0.0, 0.0, 0.0))
    loss = lambda w: 0.5 * jnp.sum(w ** 2)
    r = lc.estimate_llc(jax.random.key(3), loss, jnp.zeros(2), nbeta=20.0, num_chains=2, num_draws="auto",
                        max_draws=1500, keep_positions=7)
    assert r.num_draws == 1500 and r.positions.shape == (2, 1500 // 7, 2)
    np.testing.assert_allclose(jax.vmap(jax.vmap(loss))(r.positions), r.loss_trace[:, 6::7], rtol=1e-5)


@pytest.mark.parametrize("seed,n,d,sigma,gamma,bias", [
    (11, 80, 2, 1.0, 1.0, False),
    (12, 250, 4, 0.3, 1.0, False),
    (13, 500, 6, 2.0, 40.0, False),
    (14, 150, 3, 0.7, 5.0, True),
])
def test_bif_matches_linear_regression(seed, n, d, sigma, gamma, bias):
    p, xt, y, w_star = _linear(seed, n, d, sigma, bias)
    res = lc.llc_for_problem(jax.random.key(seed), p, jnp.asarray(w_star, p.x.dtype), gamma=gamma,
                             num_chains=8, num_draws=2000, keep_positions=True)
    out = influence.bif(p, res)
    exact = influence.linear_bif(xt, y, w_star, sigma, res.nbeta, gamma)
    assert out.bif.shape == out.se.shape == (n, n) and out.num_batches >= 64
    rel = np.linalg.norm(out.bif - exact) / np.linalg.norm(exact)
    z = (out.bif - exact) / out.se
    assert rel <= 0.10, rel
    assert np.mean(np.abs(z) > 4) <= 0.01, np.mean(np.abs(z) > 4)
    # the entries' errors are strongly correlated (a few sample moments drive all n^2 of them),
    # so the mean z^2 fluctuates from seed to seed far more than n^2 independent z would
    assert 0.25 <= np.mean(z ** 2) <= 4.0, np.mean(z ** 2)
    assert out.rel_se <= 0.1


def _gaussian_expectation(p, w_star, rows, nbeta, gamma, h):
    """E_h[(L'(w), L_n(w))] under the exact Gaussian posterior of L_h = (1-h) L_n + h L'."""
    x, y, s2 = np.asarray(p.x, np.float64), np.asarray(p.y, np.float64)[:, 0], float(p.noise_std) ** 2
    xr, yr = x[rows], y[rows]
    A, Ar = x.T @ x / (len(x) * s2), xr.T @ xr / (len(xr) * s2)
    g = lambda xx, yy: -xx.T @ (yy - xx @ w_star) / (len(xx) * s2)
    gr, gn = g(xr, yr), g(x, y)
    prec = nbeta * ((1 - h) * A + h * Ar) + gamma * np.eye(len(w_star))
    cov = np.linalg.inv(prec)
    delta = -cov @ (nbeta * ((1 - h) * gn + h * gr))
    quad = lambda xx, yy, H, gg: (0.5 * np.log(2 * np.pi * s2) + 0.5 * np.mean((yy - xx @ w_star) ** 2) / s2
                                  + gg @ delta + 0.5 * delta @ H @ delta + 0.5 * np.trace(H @ cov))
    return np.array([quad(xr, yr, Ar, gr), quad(x, y, A, gn)])


@pytest.mark.parametrize("seed,n,d,sigma,gamma", [(21, 120, 3, 0.5, 1.0), (22, 300, 5, 1.5, 20.0)])
def test_susceptibility_matches_the_exact_linear_response(seed, n, d, sigma, gamma):
    p, xt, y, w_star = _linear(seed, n, d, sigma)
    rows = np.arange(n // 10)
    res = lc.llc_for_problem(jax.random.key(seed), p, jnp.asarray(w_star, p.x.dtype), gamma=gamma,
                             num_chains=8, num_draws=2000, keep_positions=True)
    phi_rows = influence.loss_observable(p, rows=rows)
    chi = influence.susceptibility(p, res, lambda w: jnp.stack([phi_rows(w), p.loss(w)]), rows=rows)
    eps = 1e-4   # both sides exact: the closed-form E_h differenced
    exact = (_gaussian_expectation(p, w_star, rows, res.nbeta, gamma, eps)
             - _gaussian_expectation(p, w_star, rows, res.nbeta, gamma, -eps)) / (2 * eps)
    z = (chi.value - exact) / chi.se
    assert chi.value.shape == (2,) and np.all(chi.se > 0)
    assert np.all(np.abs(z) <= 4), (chi.value, exact, chi.se)
    scalar = influence.susceptibility(p, res, phi_rows, rows=rows)
    assert isinstance(scalar.value, float) and scalar.value == pytest.approx(chi.value[0], rel=1e-6)


@pytest.mark.slow
def test_susceptibility_equals_the_finite_difference_on_a_relu_network():
    """Fluctuation-dissipation: -nbeta Cov(phi, L' - L_n) from the draws at h = 0 against
    (E_{+eps}[phi] - E_{-eps}[phi]) / (2 eps) from independent chains on L_{+-eps}."""
    from slt.estimators.optimize import train

    rng = np.random.default_rng(31)
    n = 160
    x = rng.uniform(-1, 1, size=(n, 1))
    y = np.maximum(x[:, 0] - 0.1, 0) - np.maximum(-x[:, 0] - 0.4, 0) + 0.3 * rng.normal(size=n)
    p = Problem.make(models.make_mlp([1, 3, 1], "relu"), Dataset(x, y[:, None]), noise_std=0.3)
    w_star = train(jax.random.key(0), p, 3000, 1e-2,
                   init=jnp.asarray(0.5 * rng.normal(size=p.d), p.x.dtype)).w
    rows = np.arange(n - 24, n)
    kw = dict(num_chains=8, num_draws=1200, keep_positions=True)
    res = lc.llc_for_problem(jax.random.key(1), p, w_star, **kw)
    phi = influence.loss_observable(p, rows=rows)
    chi = influence.susceptibility(p, res, phi, rows=rows)
    eps = 0.1
    means = []
    for sign in (1, -1):
        data = (p, p.x[rows], p.y[rows], jnp.asarray(sign * eps, p.x.dtype))
        r = lc.estimate_llc(jax.random.key(5 + sign), influence.reweighted_loss, w_star, data=data,
                            nbeta=res.nbeta, **kw)
        means.append(influence.expectation(r, phi))
    fd = (means[0][0] - means[1][0]) / (2 * eps)
    fd_se = np.hypot(means[0][1], means[1][1]) / (2 * eps)
    assert abs(chi.value - fd) <= 3 * np.hypot(chi.se, fd_se), (chi, fd, fd_se)
    assert abs(chi.value) > 3 * chi.se   # the response is resolved, not zero within noise


def _fake_result(positions, nbeta=10.0):
    return types.SimpleNamespace(positions=np.asarray(positions, np.float32), converged=True, nbeta=nbeta)


def test_rows_memory_and_missing_draws_are_refused_in_one_line():
    p, *_ = _linear(0, 50, 2, 1.0)
    assert list(influence.parse_rows("2:5", 50)) == [2, 3, 4]
    assert list(influence.parse_rows([7, 1], 50)) == [7, 1]
    for bad, msg in (([3, 50], "row 50 does not exist"), ("4:80", "within 0:50"), ("x", "start:stop"),
                     ([], "non-empty")):
        with pytest.raises(ValueError, match=msg):
            influence.parse_rows(bad, 50)
    res = _fake_result(np.random.default_rng(0).normal(size=(4, 80, 2)))
    with pytest.raises(ValueError, match="GiB"):
        influence.bif(p, res, max_bytes=1000)
    with pytest.raises(ValueError, match="keep_positions"):
        influence.bif(p, types.SimpleNamespace(positions=None))
    big = Problem.make(p.model, Dataset(np.zeros((2001, 2)), np.zeros((2001, 1))))
    with pytest.raises(ValueError, match="choose the query rows"):
        influence.bif(big, res)
    out = influence.bif(big, res, rows="0:3")
    assert out.bif.shape == (3, 2001) and np.all(np.isfinite(out.se))


def test_top_pairs_are_off_diagonal_and_unique():
    b = np.array([[-9.0, 2.0, -5.0], [2.0, -8.0, 1.0], [-5.0, 1.0, -7.0]])
    res = influence.BIFResult(b, np.full_like(b, 0.1), np.arange(3), 0.0, True, 0, 0, 0.0)
    pairs = influence.top_pairs(res, k=5)
    assert [(q["i"], q["j"]) for q in pairs] == [(0, 2), (0, 1), (1, 2)]
    assert pairs[0]["bif"] == -5.0 and pairs[0]["se"] == 0.1


def test_config_writes_influence_files_and_summary(tiny_config, tmp_path):
    import json

    from slt import cli

    path = tiny_config(llc={"num_chains": 4, "num_draws": 400, "lambda_hat": False, "influence": True,
                            "influence_rows": "0:20", "influence_thin": 2,
                            "susceptibility": {"rows": [1, 5, 7], "observable": "loss"}},
                       sampler__num_samples=20, sampler__num_warmup=20)
    assert cli.main(["run", str(path), "--out", str(tmp_path), "--quiet"]) == 0
    run_dir = tmp_path / "tiny"
    with np.load(run_dir / "influence.npz") as f:
        assert f["bif"].shape == f["bif_se"].shape == (20, 60) and list(f["rows"]) == list(range(20))
    assert (run_dir / "influence.png").is_file()
    llc = json.loads((run_dir / "summary.json").read_text())["llc"]
    inf, sus = llc["influence"], llc["susceptibility"]
    assert inf["num_draws"] == 4 * 200 and len(inf["top_pairs"]) == 10
    assert all(q["i"] != q["j"] and q["se"] > 0 for q in inf["top_pairs"])
    assert sus["observable"] == "L_n" and sus["se"] > 0 and isinstance(sus["converged"], bool)


@pytest.mark.parametrize("llc,data,key", [
    ({"influence": True, "influence_rows": [3, 60]}, {"n": 60}, "llc.influence_rows: row 60 does not exist"),
    ({"influence": True, "influence_rows": "5:2"}, {"n": 60}, "llc.influence_rows: range"),
    ({"influence": True}, {"n": 2500}, "llc.influence_rows: n = 2500 > 2000"),
    ({"influence": True, "influence_rows": "0:2000000"}, {"n": 3000000}, "llc.influence_rows:"),
    ({"influence": True, "sampler": "sgld"}, {"n": 60}, "llc.influence: needs the LLC's draws"),
    ({"susceptibility": {"rows": "50:70"}}, {"n": 60}, "llc.susceptibility.rows: range"),
    ({"influence": True, "model_widths": [2, 200000, 1]}, {"n": 60}, "llc.influence_thin: keeping up to"),
    ({"influence": True, "num_draws": 300, "influence_thin": 10}, {"n": 60}, "llc.influence_thin: keeps 30 of 300"),
])
def test_bad_influence_config_exits_2_in_one_line(tiny_config, tmp_path, capsys, llc, data, key):
    from slt import cli

    llc = dict(llc)
    widths = llc.pop("model_widths", [2, 2, 1])
    path = tiny_config(llc=llc, data={**data, "x": {"dist": "uniform"}}, model__widths=widths)
    assert cli.main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and "\n" not in err, err
    assert not (tmp_path / "runs").exists()


def test_rows_of_a_data_file_are_checked_before_sampling(tiny_config, tmp_path, capsys, DELETE):
    from slt import cli

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(30, 2)), y=rng.normal(size=(30, 1)))
    path = tiny_config(llc={"at": "trained", "influence": True, "influence_rows": [29, 30]},
                       data={"file": "d.npz"}, truth=DELETE, sampler__init="prior")
    assert cli.main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "llc.influence_rows: row 30 does not exist" in err, err
    assert not (tmp_path / "runs").exists()


def test_readme_example_runs_as_written(capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "README.md").read_text()
    start = text.index("### Influence functions and susceptibilities")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    exec(compile(block, "README.md: influence", "exec"), {})
    rel = float(capsys.readouterr().out.splitlines()[0])
    assert rel <= 0.1


@pytest.mark.parametrize("likelihood,d_out,y", [
    ("gaussian", 2, lambda r: r.normal(size=(40, 2))),
    ("bernoulli", 1, lambda r: r.integers(0, 2, size=(40, 1))),
    ("categorical", 3, lambda r: r.integers(0, 3, size=(40, 1))),
])
def test_per_sample_losses_average_to_l_n(likelihood, d_out, y):
    rng = np.random.default_rng(0)
    p = Problem.make(models.make_mlp([2, 3, d_out], "tanh"), Dataset(rng.normal(size=(40, 2)), y(rng)),
                     noise_std=0.7, likelihood=likelihood)
    w = jnp.asarray(rng.normal(size=p.d), p.x.dtype)
    per = influence.per_sample_nll(p, w)
    assert per.shape == (40,)
    np.testing.assert_allclose(float(per.mean()), float(p.loss(w)), rtol=1e-5)
    sub = influence.loss_observable(p, rows="5:9")
    np.testing.assert_allclose(float(sub(w)), float(per[5:9].mean()), rtol=1e-5)


def test_susceptibility_takes_rows_or_data_positionally():
    p, *_ = _linear(1, 50, 2, 1.0)
    res = _fake_result(0.1 * np.random.default_rng(1).normal(size=(8, 64, 2)))
    a = influence.susceptibility(p, res, None, "0:10")
    b = influence.susceptibility(p, res, None, rows=list(range(10)))
    c = influence.susceptibility(p, res, None, Dataset(np.asarray(p.x[:10]), np.asarray(p.y[:10])))
    assert a.value == pytest.approx(b.value, rel=1e-6) and a.value == pytest.approx(c.value, rel=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        influence.susceptibility(p, res, None, "0:10", rows="0:5")
