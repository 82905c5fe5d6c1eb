"""lambda_hat's data subsets as one batched program (slt.estimators.llc_batch, issue 18 item 4) and the
"n too small" flag (item 5)."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt import data, models
from slt.estimators import learning_coefficient as lc
from slt.estimators import lambda_hat as lambda_hat_mod
from slt.estimators import llc_batch
from slt.posterior import Problem


def _tanh_problem(n=400):
    spec = models.make_mlp([2, 3, 1], "tanh", True)
    truth = models.init(jax.random.key(0), spec)
    return Problem.make(spec, data.synthesize(jax.random.key(1), spec, truth, n, 1.0)), truth


def _subsets(p, k):
    size = p.n // k
    return [p.with_data(p.x[i * size:(i + 1) * size], p.y[i * size:(i + 1) * size]) for i in range(k)]


def test_batched_subsets_equal_the_per_subset_loop():
    """With SGLD (no accept/reject) and fixed draws, lambda_hat's batched subsets (refined in one
    vmapped optimiser, sampled in one program with data, w* and nbeta batched) give the values a
    loop over refine_point + llc_for_problem on fold_in(key, k) gives, up to float rounding."""
    p, truth = _tanh_problem()
    w_hat = lc.refine_point(p, models.flatten(truth))[0]
    kw = dict(sampler="sgld", num_chains=4, num_draws=200, num_adapt=100)
    res = lc.llc_for_problem(jax.random.key(0), p, w_hat, **kw)
    key = jax.random.key(1)
    lam = lambda_hat_mod.lambda_hat(key, p, w_hat, res, **kw)
    subs = _subsets(p, 4)
    nbeta_k = lc.default_nbeta(p.n // 4)
    w_batch = lambda_hat_mod.refine_points(subs, w_hat)[0]
    for k, sub in enumerate(subs):
        w_k = lc.refine_point(sub, w_hat, jitter=0.0)[0]
        np.testing.assert_allclose(w_batch[k], w_k, rtol=1e-4, atol=1e-5)
        one = lc.llc_for_problem(jax.random.fold_in(key, k), sub, w_k, nbeta=nbeta_k, **kw)
        assert lam.per_subset[k] == pytest.approx(one.mean, rel=1e-3, abs=1e-3), k
    assert lam.subset_n == p.n // 4 and lam.value == res.mean


def test_batch_with_per_member_data_and_nbeta_equals_single_estimates():
    """estimate_llc_batch with data_batched and a (K,) nbeta: member j equals estimate_llc on
    data[j] at nbeta[j] and key fold_in(key, j) (SGLD, fixed draws: float rounding)."""
    def loss(w, d):
        return d["a"] * w[0] ** 2 + d["b"] * w[1] ** 4

    stacked = {"a": jnp.array([1.0, 2.0, 0.5]), "b": jnp.array([1.0, 0.3, 3.0])}
    nbetas = np.array([100.0, 300.0, 50.0])
    w_stars = jnp.zeros((3, 2))
    key = jax.random.key(7)
    kw = dict(sampler="sgld", num_chains=2, num_draws=150, num_adapt=50, gamma=1.0)
    batch = llc_batch.estimate_llc_batch(key, loss, w_stars, nbeta=nbetas, data=stacked,
                                         data_batched=True, **kw)
    for j in range(3):
        d = {k: v[j] for k, v in stacked.items()}
        one = lc.estimate_llc(jax.random.fold_in(key, j), loss, w_stars[j], nbeta=nbetas[j], data=d, **kw)
        assert batch[j].nbeta == nbetas[j]
        np.testing.assert_allclose(batch[j].loss_trace, one.loss_trace, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="leading axis"):
        llc_batch.estimate_llc_batch(key, loss, jnp.zeros((2, 2)), nbeta=10.0, data=stacked,
                                     data_batched=True, **kw)
    with pytest.raises(ValueError, match="nbeta"):
        llc_batch.estimate_llc_batch(key, loss, w_stars, nbeta=[1.0, 2.0], data=stacked,
                                     data_batched=True, **kw)


@pytest.mark.slow
def test_batched_hmc_subsets_agree_with_the_loop_within_mc_error():
    """HMC's accept decisions turn vmap's float rounding into different, equally valid chains:
    each batched subset's LLC agrees with the loop's within their Monte Carlo errors."""
    p, truth = _tanh_problem()
    w_hat = lc.refine_point(p, models.flatten(truth))[0]
    subs = _subsets(p, 2)
    w_k = lambda_hat_mod.refine_points(subs, w_hat)[0]
    key = jax.random.key(3)
    kw = dict(num_chains=4, num_draws=300)
    batch = llc_batch.llc_subsets_for_problem(key, subs, w_k, nbeta=lc.default_nbeta(p.n // 2), **kw)

    def se(r):
        return max(r.mcse or 0.0, (r.std or 0.0) / math.sqrt(r.num_chains))

    for k, sub in enumerate(subs):
        one = lc.llc_for_problem(jax.random.fold_in(key, k), sub, w_k[k], nbeta=lc.default_nbeta(p.n // 2), **kw)
        assert abs(batch[k].mean - one.mean) < 4 * math.hypot(se(batch[k]), se(one)), (k, batch[k].mean, one.mean)


def _lam(value, stderr):
    return lambda_hat_mod.LambdaHat(value=value, stderr=stderr, mcse=0.01, data_sd=stderr / 2, extrapolation=-stderr / 2,
                        extrapolation_se=0.01, per_subset=(0.1, 0.2, 0.3, 0.4), subset_n=250)


def test_lambda_hat_identifiable_is_an_error_bar_of_at_most_half_the_value():
    assert _lam(1.0, 0.5).identifiable and _lam(-1.0, 0.3).identifiable
    assert not _lam(1.0, 0.51).identifiable and not _lam(0.0, 0.01).identifiable
    assert not _lam(1.0, float("nan")).identifiable


def test_stage_and_terminal_say_when_n_is_too_small(tmp_path, monkeypatch):
    """A lambda_hat whose error bar exceeds half its value: summary.json says
    lambda_hat_identifiable: false, the run carries a warning that names n, and the terminal
    summary prints both."""
    import json

    import slt
    from slt.cli import report

    monkeypatch.setattr(lambda_hat_mod, "lambda_hat", lambda *a, **k: _lam(0.09, 0.26))

    def f(params, x):
        return x * params["w1"] * params["w2"] ** 2

    rng = np.random.default_rng(0)
    x, y = rng.normal(0.0, 2.0, (200, 1)), 0.25 * rng.normal(size=(200, 1))
    w_star = {"w1": jnp.zeros(()), "w2": jnp.zeros(())}
    problem = slt.Problem.from_function(f, w_star, x, y, noise_std=0.25)
    run = slt.run(problem, {"llc": {"at": "params", "num_chains": 2, "num_draws": 100},
                            "output": {"figures": False}}, w_star=w_star, out=tmp_path, stages=["llc"])
    s = json.loads((run.path / "summary.json").read_text())
    assert s["llc"]["lambda_hat_identifiable"] is False
    warns = [w for w in s["diagnostics"]["warnings"] if "cannot separate lambda" in w]
    assert len(warns) == 1 and "n = 200" in warns[0]
    text = report.format_summary(s)
    assert "not identifiable at this n" in text and "cannot separate lambda from finite-n effects" in text
