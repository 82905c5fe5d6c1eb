"""Symmetry normalisation and canonicalisation leave the network function unchanged and are
idempotent (hypothesis over random two-layer networks); phase labels on constructed draws;
phase occupancies and their Monte Carlo errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from slt import models
from slt.estimators import symmetry

X = np.random.default_rng(0).uniform(-1, 1, (64, 3))


def _f(spec, w):
    """The network function in plain numpy (no per-shape compilation)."""
    n = symmetry.split(spec, jnp.asarray(w))
    x = X[:, : spec.d_in]
    pre = np.einsum("md,bhd->bmh", x, np.asarray(n.W)) + np.asarray(n.b)[:, None, :]
    act = np.maximum(pre, 0) if spec.activation == "relu" else pre
    return np.einsum("bmh,bho->bmo", act, np.asarray(n.Q)) + np.asarray(n.c)[:, None, :]


SPECS = [models.make_mlp([2, 2, 1]), models.make_mlp([1, 3, 1], bias=False),
         models.make_mlp([3, 4, 2]), models.make_mlp([2, 5, 1], "identity")]


@st.composite
def networks(draw):
    # a few architectures (each compiles once), random parameters within them
    spec = draw(st.sampled_from(SPECS))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(4, models.num_params(spec))) * rng.uniform(0.1, 3.0)
    # switch some nodes off (q_i = 0): normalisation must map them to the zero node
    n = symmetry.split(spec, jnp.asarray(w, jnp.float32))
    off = rng.random((4, spec.widths[1])) < 0.25
    w = symmetry.join(spec, n._replace(Q=jnp.where(off[..., None], 0.0, n.Q)))
    return spec, w


@settings(max_examples=25, deadline=None)
@given(networks())
def test_normalise_keeps_function_and_is_idempotent(net):
    spec, w = net
    wn = symmetry.normalise(spec, w)
    np.testing.assert_allclose(_f(spec, wn), _f(spec, w), atol=2e-5 * (1 + float(jnp.abs(w).max()) ** 2))
    np.testing.assert_allclose(symmetry.normalise(spec, wn), wn, atol=1e-6)
    q = np.linalg.norm(np.asarray(symmetry.split(spec, wn).Q), axis=-1)
    assert np.all((np.abs(q - 1) < 1e-5) | (q == 0))


@settings(max_examples=25, deadline=None)
@given(networks(), st.booleans())
def test_canonicalise_keeps_function_and_is_idempotent(net, to_reference):
    spec, w = net
    ref = w[0] if to_reference else None
    wc = symmetry.canonicalise(spec, w, reference=ref)
    np.testing.assert_allclose(_f(spec, wc), _f(spec, w), atol=1e-4 * (1 + float(jnp.abs(w).max()) ** 2))
    np.testing.assert_array_equal(symmetry.canonicalise(spec, wc, reference=ref), wc)
    # a permutation of the same nodes: sorted node vectors agree
    a = np.sort(np.asarray(symmetry._node_vectors(spec, wc)), axis=-2)
    b = np.sort(np.asarray(symmetry._node_vectors(spec, w)), axis=-2)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_canonicalise_recovers_permuted_reference_and_vmaps():
    spec = models.make_mlp([2, 4, 1])
    ref = jnp.asarray(np.random.default_rng(1).normal(size=models.num_params(spec)), jnp.float32)
    perms = jnp.asarray([[1, 0, 3, 2], [3, 2, 1, 0], [0, 1, 2, 3]])
    shuffled = jax.vmap(lambda p: symmetry.permute(spec, ref, p))(perms)
    out = jax.vmap(lambda v: symmetry.canonicalise(spec, v, reference=ref))(shuffled)
    np.testing.assert_allclose(out, jnp.broadcast_to(ref, out.shape), atol=1e-6)
    # angle sort is stable under relabelling too
    srt = symmetry.canonicalise(spec, shuffled)
    np.testing.assert_allclose(srt, jnp.broadcast_to(srt[0], srt.shape), atol=1e-6)


def test_hungarian_path_for_wide_layers():
    spec = models.make_mlp([2, 9, 1])
    rng = np.random.default_rng(2)
    ref = jnp.asarray(rng.normal(size=models.num_params(spec)), jnp.float32)
    perm = jnp.asarray(rng.permutation(9))
    out = symmetry.canonicalise(spec, symmetry.permute(spec, ref, perm)[None], reference=ref)
    np.testing.assert_allclose(out[0], ref, atol=1e-6)


def test_tanh_normalise_rejected():
    with pytest.raises(ValueError, match="homogeneous"):
        symmetry.normalise(models.make_mlp([2, 2, 1], "tanh"), jnp.zeros(9))


# ----------------------------------------------------------------------------- phases
RELU2 = models.make_mlp([2, 2, 1])
T = 1.2
TRUTH = np.array([np.cos(T), np.sin(T), -np.cos(T), np.sin(T), -0.3, -0.3, 1.0, 1.0, 0.0])
XU = np.random.default_rng(3).uniform(-1, 1, (2000, 2))


def _phase(ws):
    lab = symmetry.classify_phases(RELU2, np.asarray(ws, np.float32), TRUTH, XU)
    return [symmetry.PHASES[i] for i in lab.labels]


def test_phase_labels_on_constructed_draws():
    swapped = TRUTH[[2, 3, 0, 1, 5, 4, 7, 6, 8]]
    rescaled = TRUTH * np.array([2, 2, 0.5, 0.5, 2, 0.5, 0.5, 2, 1])   # node 1 x2, node 2 x0.5
    perturbed = TRUTH + 0.02 * np.random.default_rng(4).normal(size=9)
    deg_off = np.array([0.0, 1.84, 0.3, -0.5, -0.43, -0.2, 0.85, 0.0, 0.0])     # node 2: q = 0
    deg_dead = np.array([0.0, 1.84, 0.3, -0.5, -0.43, -2.0, 0.85, 1.3, 0.0])    # node 2 dead
    deg_split = np.array([0.0, 1.84, 0.0, 1.84, -0.43, -0.43, 0.4, 0.45, 0.0])  # node split in two
    tiny = np.array([0.0, 1.84, 0.3, -0.5, -0.43, 0.1, 0.85, 0.01, 0.0])         # node 2 ~ 0
    const = np.array([0.3, 0.2, 0.1, -0.5, -2.0, -2.0, 1.0, 1.0, 0.4])
    wrong = np.array([1.0, 0.0, -1.0, 0.0, -0.3, -0.3, 1.0, 1.0, 0.0])          # two nodes, wrong way
    got = _phase([TRUTH, swapped, rescaled, perturbed, deg_off, deg_dead, deg_split, tiny,
                  const, wrong])
    assert got == ["true"] * 4 + ["degenerate"] * 4 + ["constant", "other"]


def test_phase_occupancy_errors():
    rng = np.random.default_rng(5)
    # 8 chains that never switch: 3 in phase 1, 5 in phase 0 -> chain-level error dominates
    labels = np.repeat(np.array([1, 1, 1, 0, 0, 0, 0, 0])[:, None], 200, axis=1)
    occ = symmetry.phase_occupancy(labels, rng.normal(size=labels.shape))
    assert occ.occupancy[1] == pytest.approx(3 / 8)
    assert occ.se[1] == pytest.approx(np.std([1, 1, 1, 0, 0, 0, 0, 0], ddof=1) / np.sqrt(8))
    assert np.all(occ.switches == 0)
    # i.i.d. labels: the error is the binomial one
    labels = (rng.random((8, 2000)) < 0.3).astype(int)
    occ = symmetry.phase_occupancy(labels)
    binom = np.sqrt(0.3 * 0.7 / labels.size)
    assert occ.se[1] == pytest.approx(binom, rel=0.3)
    assert occ.occupancy.sum() == pytest.approx(1.0)
