"""Fisher information: ranks at known strata, all with the single default tolerance
``slt.estimators.fisher.RTOL``; the nullity is explained by its sources and the count adds up."""
import numpy as np
import pytest

from slt import models
from slt.estimators import fisher

RELU2 = models.make_mlp([2, 2, 1])


def _inputs(n=2000, d_in=2, seed=0, dist="uniform"):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, d_in)) if dist == "uniform" else rng.normal(size=(n, d_in))


def _assert_clean_rank(res, rank):
    s = res.spectrum
    assert s.rtol == fisher.RTOL
    assert s.rank == rank, s.eigenvalues
    assert s.nullity == s.eigenvalues.size - rank
    if 0 < rank < s.eigenvalues.size:
        # the rank is not a tolerance artefact: the gap at the tolerance spans > 6 decades
        # and it is the largest gap of the spectrum
        assert s.gap_at_tolerance > 1e6
        assert s.largest_gap_index == rank
    if res.explained is not None:
        assert res.explained.total == s.nullity


def _relu2(w1, w2, b1, b2, q1, q2, c=0.0):
    return np.array([*w1, *w2, b1, b2, q1, q2, c], float)


@pytest.mark.parametrize("t", [0.4, 0.9, 1.2])
def test_generic_two_node_truth_rank_7(t):
    w = _relu2((np.cos(t), np.sin(t)), (-np.cos(t), np.sin(t)), -0.3, -0.3, 1.0, 1.0)
    res = fisher.fisher(RELU2, w, _inputs())
    _assert_clean_rank(res, 7)
    assert res.explained.scaling == 2 and res.explained.total == 2


def test_random_generic_two_node_rank_7():
    rng = np.random.default_rng(3)
    w = _relu2(rng.normal(size=2), rng.normal(size=2), 0.2, -0.1, 0.8, -1.3, 0.4)
    _assert_clean_rank(fisher.fisher(RELU2, w, _inputs()), 7)


def test_one_node_truth_switched_off_node_rank_5():
    # node 2 active on part of the domain, q2 = 0: its w2, b2 do nothing (3) + node 1 scaling (1)
    w = _relu2((0.6, 0.8), (0.5, -0.4), -0.3, 0.1, 1.0, 0.0)
    res = fisher.fisher(RELU2, w, _inputs())
    _assert_clean_rank(res, 5)
    e = res.explained
    assert (e.switched_off, e.scaling, e.dead, e.duplicated, e.other) == (3, 1, 0, 0, 0)
    assert e.switched_off_nodes == [1]


def test_one_node_truth_dead_node_rank_4():
    # node 2 dead on [-1, 1]^2 (b2 < -(|w21| + |w22|)): all 4 of its parameters are null
    w = _relu2((0.6, 0.8), (0.5, -0.4), -0.3, -2.0, 1.0, 0.7)
    res = fisher.fisher(RELU2, w, _inputs())
    _assert_clean_rank(res, 4)
    assert (res.explained.dead, res.explained.scaling) == (4, 1)


def test_duplicated_nodes():
    # node 2 = 2 x node 1 (same activation region): q1 relu(u) + q2 relu(2u) depends on q1 + 2 q2
    w = _relu2((0.6, 0.8), (1.2, 1.6), -0.3, -0.6, 1.0, 0.7)
    res = fisher.fisher(RELU2, w, _inputs())
    _assert_clean_rank(res, 4)
    assert res.explained.duplicated == 3 and res.explained.duplicate_groups == [[0, 1]]


def test_always_active_node_with_output_bias():
    # node 2 active on the whole square: it is affine there, its constant duplicates c
    w = _relu2((0.6, 0.8), (0.1, 0.1), -0.3, 3.0, 1.0, 0.7)
    res = fisher.fisher(RELU2, w, _inputs())
    _assert_clean_rank(res, 6)
    assert (res.explained.scaling, res.explained.other) == (2, 1)


@pytest.mark.parametrize("d", [1, 3, 6])
def test_linear_regression_full_rank(d):
    spec = models.make_mlp([d, 1], activation="identity", bias=False)
    w = np.random.default_rng(d).normal(size=d)
    res = fisher.fisher(spec, w, _inputs(500, d, dist="normal"))
    _assert_clean_rank(res, d)
    # the FIM of linear regression is the input second moment, whatever w is
    x = _inputs(500, d, dist="normal")
    np.testing.assert_allclose(fisher.fisher_matrix(spec, 0 * w, x), x.T @ x / 500, atol=1e-12)


def _rrr_point(M, H, N, rank_a, rank_b, r, seed):
    """B A with rank(A) = rank_a, rank(B) = rank_b and rank(BA) = r, generic otherwise."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(H, rank_a)) @ rng.normal(size=(rank_a, M))
    if rank_b == r and rank_a > r:
        # B kills all but an r-dimensional part of the image of A
        B = rng.normal(size=(N, r)) @ rng.normal(size=(r, H))
    else:
        B = rng.normal(size=(N, rank_b)) @ rng.normal(size=(rank_b, H))
    assert np.linalg.matrix_rank(B @ A) == r
    return np.concatenate([A.ravel(), B.ravel()])


@pytest.mark.parametrize("M,H,N,r", [(5, 3, 5, 1), (3, 3, 3, 1), (4, 3, 8, 1), (3, 8, 4, 2),
                                     (4, 4, 4, 2)])
def test_reduced_rank_regression_tangent_space(M, H, N, r):
    """At w = (A, B), the differential (dA, dB) -> dB A + B dA has image of dimension
    N rank(A) + M rank(B) - rank(A) rank(B) (matrices with rows in row(A), plus matrices with
    columns in col(B), intersecting in rank(A) rank(B) dimensions); with x of full-rank
    covariance the FIM rank equals it. At a generic point of the minimal stratum
    rank(A) = rank(B) = r this is r (M + N - r), the dimension of the tangent space of rank-r
    N x M matrices. Factorisations with rank(A) > r give more."""
    spec = models.make_mlp([M, H, N], activation="identity", bias=False)
    x = _inputs(1500, M, dist="normal")
    w = _rrr_point(M, H, N, r, r, r, seed=M * 100 + H * 10 + N)
    _assert_clean_rank(fisher.fisher(spec, w, x, explain=False), r * (M + N - r))
    if H > r:
        w = _rrr_point(M, H, N, H if H <= M else M, r, r, seed=7)
        ra = min(H, M)
        _assert_clean_rank(fisher.fisher(spec, w, x, explain=False), N * ra + M * r - ra * r)


def test_noise_scaling_and_population_agree():
    w = _relu2((0.6, 0.8), (-0.5, 0.4), -0.3, 0.1, 1.0, -0.7)
    x = _inputs(4000)
    a = fisher.fisher_matrix(RELU2, w, x, noise_std=1.0)
    b = fisher.fisher_matrix(RELU2, w, x, noise_std=2.0)
    np.testing.assert_allclose(b, a / 4, rtol=1e-12)
    pop = fisher.fisher(RELU2, w, _inputs(20000, seed=5))
    assert pop.spectrum.rank == 7


def test_posterior_fisher_ranks_per_draw():
    good = _relu2((0.6, 0.8), (-0.5, 0.4), -0.3, 0.1, 1.0, -0.7)
    off = _relu2((0.6, 0.8), (0.5, -0.4), -0.3, 0.1, 1.0, 0.0)
    pf = fisher.posterior_fisher(RELU2, np.stack([good, good, off]), _inputs(1000))
    assert pf.rank_counts == {5: 1, 7: 2}
    assert pf.explained_mean["total"] == pytest.approx((2 + 2 + 4) / 3)
    assert pf.mean_spectrum.rank == 9 or pf.mean_spectrum.rank >= 7


def test_fisher_stage_summary(tiny_config, tmp_path):
    import json

    from slt.pipeline import config, runs

    path = tiny_config(fisher={"at": "truth", "population": True, "population_n": 3000})
    run_dir = runs.execute(config.load(path), stages=["fisher"], out_dir=tmp_path / "runs")
    f = json.loads((run_dir / "summary.json").read_text())["fisher"]
    # the embedded one-node truth has node 2 = 0 (dead): rank 4 = 9 - 4 (dead) - 1 (scaling)
    assert (f["rank"], f["nullity"], f["d"]) == (4, 5, 9)
    assert f["explained"]["total"] == 5 and f["explained"]["dead"] == 4
    assert len(f["eigenvalues"]) == 9 and f["tolerance"] > 0 and f["spectral_gap"] > 1e6
    assert f["population"]["rank"] == 4
    assert (run_dir / "fisher_spectrum.png").is_file()


SPECS = [models.make_mlp([2, 3, 1]), models.make_mlp([3, 2, 2]), models.make_mlp([1, 4, 1])]


def test_explanation_adds_up_on_random_networks():
    """The attribution is exact bookkeeping: every source is >= 0 and they sum to the nullity,
    for random two-layer nets with switched-off, dead and duplicated nodes mixed in."""
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=30, deadline=None)
    @given(st.sampled_from(SPECS), st.integers(0, 2 ** 31 - 1))
    def check(spec, seed):
        from slt.estimators import symmetry

        rng = np.random.default_rng(seed)
        d_in, h, d_out = spec.widths
        n = symmetry.split(spec, rng.normal(size=models.num_params(spec)))
        W, b, Q = np.array(n.W), np.array(n.b), np.array(n.Q)
        for i in range(h):
            kind = rng.integers(4)
            if kind == 1:
                Q[i] = 0.0                                         # switched off
            elif kind == 2:
                b[i] = -(np.abs(W[i]).sum() + 0.5)                 # dead on [-1, 1]^d_in
            elif kind == 3 and i > 0:
                scale = rng.uniform(0.5, 2.0)                      # duplicate of node 0
                W[i], b[i] = scale * W[0], scale * b[0]
        w = symmetry.join(spec, n._replace(W=W, b=b, Q=Q))
        res = fisher.fisher(spec, w, _inputs(800, d_in, seed=seed % 97))
        e = res.explained
        parts = (e.dead, e.switched_off, e.scaling, e.duplicated, e.within_other, e.other)
        assert all(p >= 0 for p in parts), parts
        assert e.total == sum(parts) == res.spectrum.nullity

    check()


@pytest.mark.slow
def test_fisher_stage_posterior(tiny_config, tmp_path):
    import json

    from slt.pipeline import config, runs

    path = tiny_config(fisher={"at": "posterior", "num_draws": 20})
    run_dir = runs.execute(config.load(path), stages=["fisher"], out_dir=tmp_path / "runs")
    f = json.loads((run_dir / "summary.json").read_text())["fisher"]
    assert f["at"] == "posterior" and f["num_draws"] == 20 and f["d"] == 9
    assert sum(f["per_draw_rank_counts"].values()) == 20
    assert all(0 <= int(r) <= 9 for r in f["per_draw_rank_counts"])
    assert f["explained"]["total"] == pytest.approx(9 - f["per_draw_rank_mean"])
    for name in ("fisher_spectrum", "posterior_nodes", "posterior_node_histograms"):
        assert (run_dir / f"{name}.png").is_file()


def test_fisher_posterior_reuses_the_sample_stages_draws(tiny_config, tmp_path, monkeypatch):
    """`slt run` with fisher.at: posterior samples the posterior once, not once per stage."""
    from slt.pipeline import config, runs
    from slt.samplers import nuts as samplers

    calls = []
    real = samplers.sample
    monkeypatch.setattr(samplers, "sample", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = tiny_config(fisher={"at": "posterior", "num_draws": 20})
    runs.execute(config.load(path), stages=["sample", "fisher"], out_dir=tmp_path / "runs")
    assert len(calls) == 1
