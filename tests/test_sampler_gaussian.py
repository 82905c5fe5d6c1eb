"""NUTS/HMC recover the closed-form Gaussian posterior of Bayesian linear regression.

With prior N(0, s^2 I) and noise sigma, the tempered posterior is N(m_beta, A_beta^{-1}),
A_beta = I/s^2 + (beta/sigma^2) X^T X, m_beta = (beta/sigma^2) A_beta^{-1} X^T y (science.md).
Tolerances are z-scores against the Monte Carlo standard error sd/sqrt(ESS) of each
estimated moment (5 sigma over a handful of comparisons: a false alarm rate far below 1e-4).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt import data, models
from slt.samplers import diagnostics, nuts as samplers
from slt.posterior import Problem

Z_MAX = 5.0


def _problem(n=50, d=3, prior_std=1.0, noise_std=1.0):
    spec = models.make_mlp([d, 1], "identity", False)
    truth = models.unflatten(spec, jnp.array([1.0, -0.5, 0.25]))
    ds = data.synthesize(jax.random.key(0), spec, truth, n, noise_std, dist="normal")
    return Problem.make(spec, ds, noise_std, prior_std)


def _exact(prob, beta):
    X, y = np.asarray(prob.x, float), np.asarray(prob.y, float)[:, 0]
    s2, sig2 = float(prob.prior_std) ** 2, float(prob.noise_std) ** 2
    A = np.eye(X.shape[1]) / s2 + beta / sig2 * X.T @ X
    cov = np.linalg.inv(A)
    return beta / sig2 * cov @ X.T @ y, cov


def _moment_z(draws, target):
    """z-score of mean(draws) against target, with MCSE from the bulk ESS."""
    return (draws.mean() - target) / diagnostics.mcse_mean(draws)


@pytest.mark.parametrize("method", ["nuts", "hmc"])
@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_recovers_linear_gaussian_posterior(method, beta):
    prob = _problem()
    mean, cov = _exact(prob, beta)
    init = samplers.prior_draws(jax.random.key(1), 4, prob.d, 1.0)
    res = samplers.sample(jax.random.key(2), prob, init, beta, method=method, num_warmup=300,
                          num_samples=1000, num_steps=8, progress_bar=False)
    w = res.positions.astype(float)                       # (chains, draws, d)
    assert res.diverging.sum() == 0
    for i in range(prob.d):
        z = _moment_z(w[..., i], mean[i])
        assert abs(z) < Z_MAX, f"mean[{i}] off by {z:.1f} MCSE"
        for j in range(i, prob.d):
            prod = (w[..., i] - mean[i]) * (w[..., j] - mean[j])
            z = _moment_z(prod, cov[i, j])
            assert abs(z) < Z_MAX, f"cov[{i},{j}] off by {z:.1f} MCSE"
    # L_n reported per draw equals the loss at that draw
    np.testing.assert_allclose(res.loss[0, :5], [float(prob.loss(jnp.asarray(v))) for v in res.positions[0, :5]],
                               rtol=1e-5)


def test_same_key_same_draws_and_chunking_is_invisible():
    prob = _problem()
    init = samplers.prior_draws(jax.random.key(1), 2, prob.d, 1.0)
    a = samplers.sample(jax.random.key(3), prob, init, 1.0, num_warmup=40, num_samples=60, progress_bar=False)
    b = samplers.sample(jax.random.key(3), prob, init, 1.0, num_warmup=40, num_samples=60, progress_bar=False,
                        chunk_size=10)
    np.testing.assert_array_equal(a.positions, b.positions)
    c = samplers.sample(jax.random.key(4), prob, init, 1.0, num_warmup=40, num_samples=60, progress_bar=False)
    assert not np.array_equal(a.positions, c.positions)


def test_auto_samples_extend_the_same_chains_until_the_check_passes():
    """num_samples='auto' continues the same chains in doubling rounds (500, 1000, 2000, ...) and
    stops at the first check that passes, or at max_samples with converged False; the draws are
    those of one run of that length (chunking changes nothing)."""
    prob = _problem()
    init = samplers.prior_draws(jax.random.key(1), 2, prob.d, 1.0)
    kw = dict(method="hmc", num_warmup=100, num_steps=4, progress_bar=False)
    seen = []

    def never(res):
        seen.append(res.loss.shape[1])
        return False, {"draws": int(res.loss.shape[1])}

    capped = samplers.sample(jax.random.key(2), prob, init, num_samples="auto", max_samples=1500,
                             converged_fn=never, **kw)
    assert seen == [500, 1000, 1500] and capped.converged is False and capped.loss.shape == (2, 1500)
    assert [r["num_samples"] for r in capped.sampling_rounds] == [500, 1000, 1500]
    fixed = samplers.sample(jax.random.key(2), prob, init, num_samples=1500, **kw)
    np.testing.assert_array_equal(capped.positions, fixed.positions)
    second = samplers.sample(jax.random.key(2), prob, init, num_samples="auto", max_samples=4000,
                             converged_fn=lambda r: (r.loss.shape[1] >= 1000, {}), **kw)
    assert second.converged is True and second.loss.shape == (2, 1000)
    np.testing.assert_array_equal(second.positions, fixed.positions[:, :1000])
    with pytest.raises(ValueError, match="converged_fn"):
        samplers.sample(jax.random.key(2), prob, init, num_samples="auto", **kw)
