"""Weight-restricted and data-refined LLCs (slt.estimators.restricted) against their exact Gaussian
answers (slt.estimators.exact.restricted_llc_gaussian; derivation in notes/restricted_llc.md).

Tolerance: |estimate - exact| <= Z_MAX standard errors, the standard error max(ESS-based MCSE,
between-chain se) as in tests/test_llc.py; the cases below were written once and not tuned.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt import models
from slt.estimators import exact, restricted
from slt.estimators import learning_coefficient as lc
from slt.data import Dataset
from slt.posterior import Problem

Z_MAX = 4.0
RUN = dict(num_chains=4, num_draws=1000)


def _problem(widths, activation="identity", bias=False, n=200, seed=0, noise=0.5):
    spec = models.make_mlp(widths, activation, bias)
    k = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(k[0], (n, widths[0]))
    truth = models.init(k[1], spec)
    y = models.apply(spec, truth, x) + noise * jax.random.normal(k[2], (n, widths[-1]))
    return Problem.make(spec, Dataset(x, y), noise_std=noise), models.flatten(truth)


def _z(res, value):
    z = (res.mean - value) / restricted.stderr(res)
    print(f"estimate {res.mean:.4f} +- {restricted.stderr(res):.4f}, exact {value:.4f}, z = {z:+.2f}")  # pytest -s
    return z


def _exact(problem, w, names, nbeta, gamma):
    t = restricted.linear_terms(problem, w, names)
    assert t.linear
    return exact.restricted_llc_gaussian(t.H, t.g, t.u_star, nbeta, gamma)


# ----------------------------------------------------------------------------- names
def test_weight_names_of_an_mlp_and_of_a_function_model():
    spec = models.make_mlp([2, 3, 1], "relu", True)
    sl = restricted.weight_slices(spec)
    assert list(sl) == ["W1", "b1", "W2", "b2"]
    assert sl["W1"] == (0, 6) and sl["b1"] == (6, 9) and sl["W2"] == (9, 12) and sl["b2"] == (12, 13)
    assert restricted.layer_groups(spec) == [["W1", "b1"], ["W2", "b2"]]
    node = restricted.weight_mask(spec, np.isin(np.arange(spec.d), [0, 1, 6, 9]))   # a mask of coordinates
    assert node.sum() == 4 and node[[0, 1, 6, 9]].all()
    with pytest.raises(ValueError, match="0/1"):
        restricted.weight_mask(spec, np.ones(3))
    with pytest.raises(ValueError, match="empty selection"):
        restricted.weight_mask(spec, np.zeros(spec.d))
    assert restricted.layer_groups(models.make_mlp([2, 3, 1], "identity", False)) == [["W1"], ["W2"]]
    params = {"layers": [{"weight": jnp.ones((3, 2)), "bias": jnp.zeros(3)}], "head": jnp.ones((1, 3))}
    model, flat = models.function_model(lambda p, x: x @ p["layers"][0]["weight"].T @ p["head"].T, params,
                                        jnp.ones((4, 2)))
    sl = restricted.weight_slices(model)
    assert set(sl) == {"layers.0.weight", "layers.0.bias", "head"}
    mask = restricted.weight_mask(model, ["layers.0.weight"])
    unr = model.unravel(jnp.asarray(mask, jnp.float32))
    assert float(unr["layers"][0]["weight"].sum()) == 6 and float(unr["head"].sum()) == 0


def test_unknown_names_an_empty_selection_and_gamma_zero_are_refused():
    p, w = _problem([2, 2, 1])
    with pytest.raises(ValueError, match=r"unknown weight name\(s\) \['W3'\].*W1"):
        restricted.weight_mask(p.model, ["W1", "W3"])
    with pytest.raises(ValueError, match="empty selection"):
        restricted.weight_mask(p.model, [])
    with pytest.raises(ValueError, match="gamma > 0"):
        restricted.restricted_llc(jax.random.key(0), p, w, ["W1"], gamma=0.0, num_draws=10)


# ----------------------------------------------------------------------------- exact answers
def test_every_layer_of_a_deep_linear_network_in_one_program_matches_the_exact_answer():
    p, truth = _problem([3, 4, 3, 2], seed=1)
    w = truth + 0.05 * jax.random.normal(jax.random.key(7), truth.shape)     # near, not at, a minimiser
    nbeta, gamma = 60.0, 2.0
    out = restricted.per_layer_llc(jax.random.key(11), p, w, nbeta=nbeta, gamma=gamma, **RUN)
    assert out.weights == [["W1"], ["W2"], ["W3"]]
    for names, res in zip(out.weights, out.results):
        assert abs(_z(res, _exact(p, w, names, nbeta, gamma))) < Z_MAX, names


def test_per_layer_batch_equals_looping_the_single_estimate():
    """Group j of the batch runs on fold_in(key, j): with SGLD (no accept/reject, which turns
    vmap's rounding differences into different chains) the traces equal the single estimate's."""
    p, truth = _problem([3, 4, 2], seed=2)
    kw = dict(nbeta=40.0, gamma=3.0, num_chains=2, num_draws=100, sampler="sgld", num_adapt=100)
    out = restricted.per_layer_llc(jax.random.key(3), p, truth, **kw)
    for j, (names, res) in enumerate(zip(out.weights, out.results)):
        single = restricted.restricted_llc(jax.random.fold_in(jax.random.key(3), j), p, truth, names, **kw)
        np.testing.assert_allclose(res.loss_trace, single.loss_trace, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_last_layer_of_a_nonlinear_mlp_matches_the_exact_answer(activation):
    p, truth = _problem([2, 5, 1], activation, bias=True, seed=3)
    nbeta, gamma = 50.0, 1.0
    res = restricted.restricted_llc(jax.random.key(5), p, truth, ["W2", "b2"], nbeta=nbeta, gamma=gamma, **RUN)
    assert res.converged is not None
    assert abs(_z(res, _exact(p, truth, ["W2", "b2"], nbeta, gamma))) < Z_MAX
    assert not restricted.linear_terms(p, truth, ["W1"]).linear      # the first layer is not linear


def test_a_point_far_from_any_minimiser_matches_the_exact_answer():
    p, _ = _problem([3, 3, 2], seed=4)
    w = models.flatten(models.init(jax.random.key(9), p.model))            # a random point
    nbeta, gamma = 30.0, 5.0
    res = restricted.restricted_llc(jax.random.key(6), p, w, ["W2"], nbeta=nbeta, gamma=gamma, **RUN)
    value = _exact(p, w, ["W2"], nbeta, gamma)
    assert value < 0                                                        # not a minimiser
    assert abs(_z(res, value)) < Z_MAX


def test_first_layer_at_a_rank_deficient_point_is_still_gaussian_and_exact():
    """f = W2 W1 x restricted to W1 is linear in W1 even where W2 has rank 1: H = (W2^T W2) ⊗ S / sigma^2
    has rank d_in * rank(W2), and the posterior is Gaussian (flat directions: N(u*, 1/gamma))."""
    p, _ = _problem([3, 3, 2], seed=5)
    W1 = np.asarray(jax.random.normal(jax.random.key(1), (3, 3)))
    W2 = np.outer([1.0, -0.5], [0.8, 0.4, 0.2])                          # rank 1
    w = jnp.asarray(np.concatenate([W1.ravel(), W2.ravel()]), p.x.dtype)
    t = restricted.linear_terms(p, w, ["W1"])
    assert np.linalg.matrix_rank(t.H, tol=1e-8 * np.abs(t.H).max()) == 3
    nbeta, gamma = 50.0, 2.0
    res = restricted.restricted_llc(jax.random.key(8), p, w, ["W1"], nbeta=nbeta, gamma=gamma, **RUN)
    assert abs(_z(res, exact.restricted_llc_gaussian(t.H, t.g, t.u_star, nbeta, gamma))) < Z_MAX


def test_the_exact_answer_tends_to_half_the_rank_at_a_minimiser():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 4))
    H = A @ A.T                                                            # rank 4 of 6
    u_min = rng.normal(size=6)
    g = H @ u_min                                                          # u_min minimises
    values = [exact.restricted_llc_gaussian(H, g, u_min, nb, 1.0) for nb in (1e2, 1e4, 1e6)]
    assert abs(values[-1] - 2.0) < 1e-3 and values[0] < values[1] < values[2]


# ----------------------------------------------------------------------------- data-refined
def test_the_refined_llc_on_the_training_data_is_the_llc_of_the_same_draws():
    p, truth = _problem([2, 3, 1], "tanh", bias=True, seed=6)
    out = restricted.refined_llc(jax.random.key(2), p, truth, p, nbeta=40.0, gamma=1.0, num_chains=2,
                                 num_draws=200)
    np.testing.assert_allclose(out.refined.loss_trace, out.llc.loss_trace, rtol=1e-6)
    assert out.refined.mean == pytest.approx(out.llc.mean, rel=1e-6)
    # with an observable the LLC is the plain average (control variates off), so compare with that
    plain = lc.llc_for_problem(jax.random.key(2), p, truth, nbeta=40.0, gamma=1.0, num_chains=2, num_draws=200,
                               control_variates=False)
    assert out.llc.mean == pytest.approx(plain.mean, rel=1e-4)          # the wrapper changes nothing


def test_the_refined_llc_of_a_linear_model_matches_the_gaussian_closed_form():
    p, truth = _problem([3, 2], "identity", bias=True, n=300, seed=7)
    other, _ = _problem([3, 2], "identity", bias=True, n=80, seed=8)       # other inputs, other truth
    other = p.with_data(other.x, other.y)
    names = ["W1", "b1"]
    nbeta, gamma = 80.0, 1.0
    out = restricted.refined_llc(jax.random.key(4), p, truth, other, nbeta=nbeta, gamma=gamma, **RUN)
    t, te = restricted.linear_terms(p, truth, names), restricted.linear_terms(other, truth, names)
    value = exact.restricted_llc_gaussian(t.H, t.g, t.u_star, nbeta, gamma, H_eval=te.H, g_eval=te.g)
    assert abs(_z(out.refined, value)) < Z_MAX
    assert abs(_z(out.llc, exact.restricted_llc_gaussian(t.H, t.g, t.u_star, nbeta, gamma))) < Z_MAX
    with pytest.raises(ValueError, match="refined data"):
        restricted.refined_llc(jax.random.key(4), p, truth, p.with_data(other.x[:, :2], other.y), nbeta=nbeta)


# ----------------------------------------------------------------------------- config, CLI, slt.run
def _cfg(tmp_path, **llc):
    import yaml

    cfg = {"name": "r", "seed": 0, "model": {"widths": [2, 3, 1], "activation": "tanh", "noise_std": 0.5},
           "truth": {"random": {"seed": 1}}, "data": {"n": 80, "x": {"dist": "normal"}},
           "llc": {"at": "truth", "num_chains": 2, "num_draws": 100, "lambda_hat": False, **llc},
           "output": {"figures": True}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("llc, words", [
    ({"weights": ["W1", "W9"]}, "llc.weights: unknown weight name(s) ['W9']"),
    ({"weights": []}, "llc.weights: empty selection"),
    ({"weights": ["W1"], "gamma": 0.0}, "llc.gamma:"),
    ({"data": {"rows": [0, 500]}}, "llc.data.rows: stop 500 exceeds data.n = 80"),
    ({"data": {"file": "bad.npz"}}, "llc.data.file:"),
    ({"data": {"rows": [0, 10]}, "sampler": "sgld"}, "llc.sampler:"),
])
def test_bad_restricted_or_refined_config_exits_2_with_one_line(tmp_path, capsys, llc, words):
    from slt import cli

    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 3)), y=np.zeros((10, 1)))     # d_in is 2
    assert cli.main(["validate", str(_cfg(tmp_path, **llc))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_the_llc_stage_writes_the_restricted_per_layer_and_refined_estimates(tmp_path):
    import json

    from slt import cli

    path = _cfg(tmp_path, weights=["W2", "b2"], per_layer=True, data={"rows": [0, 40]})
    assert cli.main(["llc", str(path), "--out", str(tmp_path / "runs"), "--quiet", "--no-cache"]) == 0
    run = next((tmp_path / "runs").iterdir())
    s = json.loads((run / "summary.json").read_text())["llc"]
    assert s["weights"] == ["W2", "b2"] and s["mean"] is not None and "exact_lambda" not in s
    assert [r["weights"] for r in s["per_layer"]] == [["W1", "b1"], ["W2", "b2"]]
    assert all({"mean", "stderr", "converged"} <= set(r) for r in s["per_layer"])
    assert s["refined"]["data"]["n"] == 40 and s["refined"]["stderr"] > 0
    assert (run / "llc_per_layer.png").is_file()


def test_slt_run_on_a_python_model_refuses_unknown_leaf_names(tmp_path):
    import slt
    from slt.pipeline.config import ConfigError

    params = {"hidden": jnp.ones((2, 3)), "head": jnp.ones((3,))}
    x = jax.random.normal(jax.random.key(0), (40, 2))
    problem = Problem.from_function(lambda p, x: jnp.tanh(x @ p["hidden"]) @ p["head"], params, x,
                                    jnp.zeros(40), noise_std=0.5)
    with pytest.raises(ConfigError, match=r"llc.weights: unknown weight name\(s\) \['W1'\].*hidden"):
        slt.run(problem, {"llc": {"at": "params", "weights": ["W1"], "lambda_hat": False}},
                w_star=params, stages=["llc"], out=tmp_path)


def test_the_readme_example_runs_as_written(capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "README.md").read_text()
    start = text.index("**Restricted and data-refined LLCs**")
    block = re.findall(r"```python\n(.*?)```", text[start:], re.S)[0]
    exec(compile(block, "README.md: restricted LLCs", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    mean, se, _, value = lines[0].split()
    assert abs(float(mean) - float(value)) < Z_MAX * float(se)
