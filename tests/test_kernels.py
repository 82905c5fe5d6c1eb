"""The sampling kernels (slt/kernels/) on a target with a known answer: a diagonal Gaussian
N(mu, diag(s^2)) with very different scales, so the metric and step adaptation matter."""
import jax
import jax.numpy as jnp
import numpy as np

from slt.kernels import adaptation, devices, hmc, langevin
from slt.kernels.integrators import State

MU = jnp.array([1.0, -2.0, 0.5])
SD = jnp.array([0.1, 1.0, 3.0])


def _target(w):
    z = (w - MU) / SD
    return State(w, -0.5 * jnp.sum(z * z), -z / SD, 0.5 * jnp.sum(z * z))


def _hmc_chain(key, num_warmup=600, num_draws=3000, target_accept=0.8):
    """Windowed adaptation (step + metric) as tempered.py does it, then draws."""
    state = hmc.init(jnp.zeros(3), _target)
    adapt = adaptation.window_init(0.1, 3, jnp.float32)

    def warm(carry, i):
        state, a = carry
        state, info = hmc.step(jax.random.fold_in(key, i), state, _target, jnp.exp(a.log_step), 6, a.inv_mass)
        a = adaptation.dual_averaging_update(a, info.accept_prob, target_accept)
        a = jax.tree.map(lambda n, o: jnp.where((i >= 100) & (i < 450), n, o), adaptation.welford_update(a, state.position), a)
        a = jax.tree.map(lambda n, o: jnp.where(i == 449, n, o), adaptation.mass_switch(a), a)
        return (state, a), None

    (state, a), _ = jax.lax.scan(warm, (state, adapt), jnp.arange(num_warmup))

    def draw(state, i):
        state, info = hmc.step(jax.random.fold_in(key, 10**6 + i), state, _target, jnp.exp(a.log_step_avg), 6,
                               a.inv_mass)
        return state, (state.position, info.accept_prob)

    _, (w, acc) = jax.lax.scan(draw, state, jnp.arange(num_draws))
    return w, acc, a.inv_mass


def test_hmc_with_window_adaptation_samples_the_gaussian():
    w, acc, inv_mass = jax.jit(jax.vmap(_hmc_chain))(jax.random.split(jax.random.key(0), 4))
    w = np.asarray(w).reshape(-1, 3)
    # the metric learned the scales (a factor 900 apart; one short window from a start at 0
    # under-explores the widest direction, so within a factor 3)
    ratio = np.asarray(inv_mass).mean(0) / np.asarray(SD) ** 2
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio
    assert 0.6 < float(np.mean(acc)) < 0.95
    # mean and sd within a generous Monte Carlo error (12000 correlated draws, ESS > 1000 each)
    np.testing.assert_allclose(w.mean(0), MU, atol=float(5 * SD.max() / np.sqrt(1000)))
    np.testing.assert_allclose(w.std(0), SD, rtol=0.1)


def test_mala_and_dual_averaging_reach_the_target_acceptance():
    def chain(key):
        def body(carry, k):
            state, da = carry
            state, info = langevin.mala_step(k, state, _target, jnp.exp(da.log_step), SD ** 2)
            return (state, adaptation.dual_averaging_update(da, info.accept_prob, 0.6)), info.accept_prob

        init = (langevin.mala_init(MU, _target), adaptation.dual_averaging_init(jnp.float32(0.01)))
        _, acc = jax.lax.scan(body, init, jax.random.split(key, 2000))
        return acc

    acc = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(1), 4))
    assert abs(float(np.mean(acc[:, 1000:])) - 0.6) < 0.05


def test_welford_and_regularised_metric_match_numpy():
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    s = adaptation.welford_init(jnp.zeros(3))
    for row in x:
        s = adaptation.welford_update(s, jnp.asarray(row))
    m = len(x)
    np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(adaptation.regularized_inv_mass(s),
                               m / (m + 5) * x.var(0, ddof=1) + 1e-3 * 5 / (m + 5), rtol=1e-5)


def test_shard_chains_equals_vmap():
    fn = lambda a, b: a * b + 1.0   # noqa: E731
    a, b = jnp.arange(4.0), jnp.float32(3.0)
    ndev = devices.num_devices_for(4)
    assert 4 % ndev == 0
    np.testing.assert_array_equal(jax.jit(devices.shard_chains(fn, ndev, (0, None)))(a, b), a * b + 1.0)
