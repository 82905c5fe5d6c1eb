"""Screened chain starts (``sampler.init: screen``, :func:`slt.estimators.optimize.screened_starts`).

Exact answer: for Bayesian linear regression the tempered potential is convex, so every
candidate must reach its unique minimum, the tempered posterior mode m_beta (science.md).
On the headline ReLU posterior the candidates fall into several basins; screening must start
every chain in the lowest one.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt import data, models
from slt.estimators import optimize
from slt.posterior import Problem


def _linreg(n=50, prior_std=1.0):
    spec = models.make_mlp([3, 1], "identity", False)
    truth = models.unflatten(spec, jnp.array([1.0, -0.5, 0.25]))
    ds = data.synthesize(jax.random.key(0), spec, truth, n, 1.0, dist="normal")
    return Problem.make(spec, ds, 1.0, prior_std)


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_screen_reaches_the_tempered_mode_of_linear_regression(beta):
    prob = _linreg()
    X, y = np.asarray(prob.x, float), np.asarray(prob.y, float)[:, 0]
    A = np.eye(3) + beta * X.T @ X
    mode = np.linalg.solve(A, beta * X.T @ y)
    sd = np.sqrt(np.diag(np.linalg.inv(A)))
    res = optimize.screened_starts(jax.random.key(1), prob, num_chains=3, beta=beta,
                                   num_candidates=4, steps=500)
    assert res.starts.shape == (3, 3) and res.candidate_loss.shape == (3, 4)
    # every chain starts at the mode, to a small fraction of a posterior standard deviation
    err = np.abs(np.asarray(res.starts, float) - mode) / sd
    assert err.max() < 0.05, err


def _headline(n=1000):
    spec = models.make_mlp([2, 2, 1], "relu", True)
    tspec = models.make_mlp([2, 1, 1], "relu", True)
    tparams = models.params_from_lists(tspec, [{"W": [[0.6, 0.8]], "b": [-0.3]},
                                               {"W": [[1.0]], "b": [0.0]}])
    ds = data.synthesize(jax.random.key(3), tspec, tparams, n, 1.0, dist="uniform", low=-1.0, high=1.0)
    return Problem.make(spec, ds, 1.0, 1.0)


def test_screen_starts_every_chain_in_the_lowest_basin():
    prob = _headline()
    res = optimize.screened_starts(jax.random.key(0), prob, num_chains=4, num_candidates=16)
    cand = np.asarray(res.candidate_loss, float)
    chosen = cand[np.arange(4), np.asarray(res.chosen)]
    n = prob.n
    # within one basin, n L_n varies over the posterior by about d/2 nats (its typical set);
    # some candidates end in local modes far above that (what traps a NUTS chain) ...
    spread = prob.d / 2
    assert n * (cand.max() - cand.min()) > 4 * spread
    # ... and every chain starts in the lowest basin: within the typical spread of the best
    assert n * (chosen.max() - cand.min()) < spread
    np.testing.assert_allclose(chosen, jax.vmap(prob.loss)(res.starts), rtol=1e-6)
    # starts differ between chains (own candidates), and the same key gives the same starts
    starts = np.asarray(res.starts)
    assert np.min(np.linalg.norm(starts[:, None] - starts[None], axis=-1)[np.triu_indices(4, 1)]) > 0
    again = optimize.screened_starts(jax.random.key(0), prob, num_chains=4, num_candidates=16)
    np.testing.assert_array_equal(starts, np.asarray(again.starts))
