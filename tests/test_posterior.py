"""L_n against a direct numpy computation; prior and tempered density conventions."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from slt import data, models
from slt.posterior import Problem, resolve_beta


def _numpy_loss(x, y, w_layers, sigma):
    h = np.maximum(x @ w_layers[0]["W"].T + w_layers[0]["b"], 0)
    f = h @ w_layers[1]["W"].T + w_layers[1]["b"]
    n, d_out = y.shape
    return d_out / 2 * math.log(2 * math.pi * sigma ** 2) + ((y - f) ** 2).sum() / (2 * n * sigma ** 2)


def test_loss_matches_numpy():
    spec = models.make_mlp([2, 2, 1])
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (200, 2)), rng.normal(size=(200, 1))
    w = rng.normal(size=9)
    layers = [{k: np.asarray(v) for k, v in layer.items()} for layer in models.unflatten(spec, jnp.asarray(w))]
    for sigma in (1.0, 0.5):
        prob = Problem.make(spec, data.Dataset(jnp.asarray(x), jnp.asarray(y)), noise_std=sigma)
        np.testing.assert_allclose(float(prob.loss(jnp.asarray(w))), _numpy_loss(x, y, layers, sigma), rtol=2e-6)


def test_tempered_density_and_prior():
    spec = models.make_mlp([3, 1], "identity", False)
    x = jnp.ones((10, 3))
    prob = Problem.make(spec, data.Dataset(x, jnp.zeros((10, 1))), prior_std=2.0)
    w = jnp.array([0.1, -0.2, 0.3])
    expected_prior = -0.5 * float(jnp.sum(w ** 2)) / 4 - 1.5 * math.log(2 * math.pi * 4)
    np.testing.assert_allclose(float(prob.log_prior(w)), expected_prior, rtol=1e-6)
    np.testing.assert_allclose(float(prob.logdensity(w, 0.3)),
                               expected_prior - 10 * 0.3 * float(prob.loss(w)), rtol=1e-6)
    ws = jnp.array([0.0, 0.0, 0.0])
    np.testing.assert_allclose(float(prob.localized_logdensity(w, ws, 5.0, 2.0)),
                               -5.0 * float(prob.loss(w)) - float(jnp.sum(w ** 2)), rtol=1e-6)


def test_wbic_beta():
    assert resolve_beta("wbic", 1000) == 1 / math.log(1000)
    assert resolve_beta(0.5, 10) == 0.5


def test_problem_is_a_pytree_and_jits_without_recompiling():
    spec = models.make_mlp([2, 2, 1])
    traces = []

    @jax.jit
    def f(prob, w, beta):
        traces.append(1)
        return prob.logdensity(w, beta)

    for seed in range(3):
        ds = data.synthesize(jax.random.key(seed), spec, models.init(jax.random.key(9), spec), 50, 1.0)
        f(Problem.make(spec, ds), jnp.zeros(9), 0.1 * (seed + 1))
    assert len(traces) == 1
