"""Models: parameter counts and outputs against hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt import models


def test_parameter_counts():
    assert models.num_params(models.make_mlp([2, 2, 1])) == 9          # the seed's network
    assert models.num_params(models.make_mlp([5, 1], "identity", False)) == 5
    assert models.num_params(models.make_mlp([3, 4, 2], "identity", False)) == 3 * 4 + 4 * 2
    assert models.num_params(models.make_mlp([8, 64, 1])) == 8 * 64 + 64 + 64 + 1


def test_headline_output_by_hand():
    spec = models.make_mlp([2, 2, 1])
    # w1 = (1, 2), w2 = (-1, 0.5), b = (0.5, -3), q = (2, -1), c = 0.25
    w = jnp.array([1.0, 2.0, -1.0, 0.5, 0.5, -3.0, 2.0, -1.0, 0.25])
    x = jnp.array([[0.3, -0.1], [-2.0, 1.0]])
    # point 1: node1 = relu(0.3 - 0.2 + 0.5) = 0.6; node2 = relu(-0.3 - 0.05 - 3) = 0
    # point 2: node1 = relu(-2 + 2 + 0.5) = 0.5; node2 = relu(2 + 0.5 - 3) = 0
    expected = np.array([[2 * 0.6 + 0.25], [2 * 0.5 + 0.25]])
    np.testing.assert_allclose(models.apply_flat(spec, w, x), expected, rtol=1e-6)
    x3 = jnp.array([[-3.0, 0.0]])  # node2 = relu(3 - 3) = 0 ; node1 = relu(-3 + .5) = 0
    np.testing.assert_allclose(models.apply_flat(spec, w, x3), [[0.25]], rtol=1e-6)
    x4 = jnp.array([[-4.0, 2.0]])  # node1 = relu(-4+4+.5)=.5 ; node2 = relu(4+1-3)=2
    np.testing.assert_allclose(models.apply_flat(spec, w, x4), [[2 * 0.5 - 2 + 0.25]], rtol=1e-6)


def test_tanh_and_identity():
    spec = models.make_mlp([1, 1, 1], "tanh", False)
    np.testing.assert_allclose(models.apply_flat(spec, jnp.array([2.0, 3.0]), jnp.array([[0.5]])),
                               [[3 * np.tanh(1.0)]], rtol=1e-6)
    lin = models.make_mlp([3, 1], "identity", False)
    np.testing.assert_allclose(models.apply_flat(lin, jnp.array([1.0, -2.0, 0.5]), jnp.array([[1.0, 1.0, 2.0]])),
                               [[0.0]], atol=1e-6)


def test_flatten_roundtrip_and_batching():
    spec = models.make_mlp([3, 4, 2])
    params = models.init(jax.random.key(0), spec)
    w = models.flatten(params)
    assert w.shape == (models.num_params(spec),)
    back = models.unflatten(spec, w)
    for a, b in zip(params, back):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    batch = jnp.stack([w, 2 * w])
    layers = models.unflatten(spec, batch)
    assert layers[0]["W"].shape == (2, 4, 3)


def test_embed_one_node_truth_computes_the_truth():
    spec = models.make_mlp([2, 2, 1])
    tspec = models.make_mlp([2, 1, 1])
    tparams = models.params_from_lists(tspec, [{"W": [[0.6, 0.8]], "b": [-0.3]}, {"W": [[1.0]], "b": [0.1]}])
    emb = models.embed(tspec, tparams, spec)
    x = jax.random.uniform(jax.random.key(1), (50, 2), minval=-1, maxval=1)
    np.testing.assert_allclose(models.apply(spec, emb, x), models.apply(tspec, tparams, x), rtol=1e-6)
    assert models.flatten(emb).shape == (9,)


@pytest.mark.parametrize("bad", [
    [{"W": [[0.6, 0.8, 1.0]], "b": [-0.3]}, {"W": [[1.0]], "b": [0.0]}],
    [{"W": [[0.6, 0.8]]}, {"W": [[1.0]], "b": [0.0]}],
    [{"W": [[0.6, 0.8]], "b": [-0.3]}],
])
def test_params_from_lists_rejects_bad_shapes(bad):
    with pytest.raises(ValueError):
        models.params_from_lists(models.make_mlp([2, 1, 1]), bad)
