"""Fault battery for users' own models: every fault gets one clear line (an error before sampling)
or a warning with a withheld estimate; never a number with ``converged: true`` from a chain that
did not sample (issue: "No confident number from a broken chain")."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import slt
from slt import likelihoods
from slt.samplers import health
from slt.estimators import learning_coefficient as lc

N = 200


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 2.0, size=(N, 1))
    return x, 0.25 * rng.normal(size=(N, 1))


P0 = {"w": jnp.zeros(2)}
FAST = dict(num_chains=4, num_draws=300, num_burnin=50)


def _problem(fn, data, params=P0, **kw):
    x, y = data
    return slt.Problem.from_function(fn, params, x, y, **kw)


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 300, msg
    return msg


def test_nan_gradient_at_w_star_is_one_line_before_sampling(data):
    # a float exponent: d/dw w ** 0.0 at 0 is 0 * inf (the case that gave "0.000 +- 0.000, converged")
    p = _problem(lambda q, x: x * q["w"][0] * q["w"][1] ** 0.0 * q["w"][0], data)
    with pytest.raises(ValueError) as exc:
        lc.llc_for_problem(jax.random.key(0), p, p.ravel(P0), **FAST)
    assert _one_line(exc) == 'llc: the gradient of L_n is not finite at w* (params["w"][1])'


def test_infinite_loss_at_w_star_is_one_line(data):
    p = _problem(lambda q, x: x * jnp.log(jnp.abs(q["w"][0])) * q["w"][1], data)
    with pytest.raises(ValueError) as exc:
        lc.llc_for_problem(jax.random.key(0), p, p.ravel(P0), **FAST)
    assert _one_line(exc).startswith("llc: L_n is not finite at w*")


def test_nan_only_far_from_w_star_withholds_with_a_warning(data):
    p = _problem(lambda q, x: x * q["w"][0] * q["w"][1]
                 + jnp.where(jnp.abs(q["w"][0]) > 0.3, jnp.nan, 0.0), data)
    res = lc.llc_for_problem(jax.random.key(1), p, p.ravel(P0), **FAST)
    assert res.mean is None and res.converged is False and res.diverged
    assert any("NaN L_n or gradient at a finite point" in w for w in res.warnings), res.warnings


def test_constant_model_withholds_with_a_warning(data):
    p = _problem(lambda q, x: jnp.zeros_like(x) + 0.0 * q["w"][0], data)
    res = lc.llc_for_problem(jax.random.key(2), p, p.ravel(P0), **FAST)
    assert res.mean is None and res.converged is False
    assert any("never moved" in w and "does not depend on the parameters" in w for w in res.warnings)


def test_kink_at_w_star_gives_a_finite_estimate_or_a_warning(data):
    """|w| at w*: a Metropolis-corrected leapfrog is reversible and volume-preserving with any
    (sub)gradient, so the chain still samples the target exactly: a finite estimate with a
    finite error, or a withheld one with its reason; never NaN."""
    p = _problem(lambda q, x: x * q["w"][0] + jnp.abs(q["w"][1]) * jnp.ones_like(x), data)
    res = lc.llc_for_problem(jax.random.key(3), p, p.ravel(P0), **FAST)
    if res.mean is None:
        assert res.warnings and res.converged is False
    else:
        assert np.isfinite(res.mean) and np.isfinite(res.mcse) and res.mcse > 0


def test_relu_kink_at_w_star_samples(data):
    p = _problem(lambda q, x: jax.nn.relu(x * q["w"][0]) * q["w"][1], data)
    res = lc.llc_for_problem(jax.random.key(4), p, p.ravel(P0), **FAST)
    assert res.mean is not None and np.isfinite(res.mean) and res.mcse > 0
    assert not any("never moved" in w for w in res.warnings)


def test_float64_model(data):
    x, y = data
    with jax.enable_x64(True):
        p = slt.Problem.from_function(lambda q, x: x * q["w"][0] * q["w"][1],
                                      {"w": jnp.zeros(2, jnp.float64)}, np.asarray(x, np.float64), y)
        assert p.x.dtype == jnp.float64
        res = lc.llc_for_problem(jax.random.key(5), p, jnp.zeros(2, jnp.float64), **FAST)
        assert res.mean is not None and np.isfinite(res.mean) and res.mean > 0
        bad = slt.Problem.from_function(lambda q, x: x * q["w"][0] * q["w"][1] ** 0.0 * q["w"][0],
                                        {"w": jnp.zeros(2, jnp.float64)}, np.asarray(x, np.float64), y)
        with pytest.raises(ValueError, match="not finite at w"):
            lc.llc_for_problem(jax.random.key(5), bad, jnp.zeros(2, jnp.float64), **FAST)


@pytest.mark.parametrize("fn, match", [
    (lambda q, x: jnp.concatenate([x, x], axis=1) * q["w"][0], "d_out = 2"),
    (lambda q, x: (x * q["w"][0])[:, :, None], r"must return \(n,\) or \(n, d_out\)"),
    (lambda q, x: (x * q["w"][0]).astype(jnp.int32), "floating-point"),
    (lambda q, x: (x * q["w"][0]).astype(jnp.complex64), "floating-point"),
    (lambda q, x: x[:5] * q["w"][0], r"must return \(n,\) or \(n, d_out\)"),
])
def test_wrong_output_shape_or_dtype_is_one_line(data, fn, match):
    with pytest.raises(ValueError, match=match) as exc:
        _problem(fn, data)
    _one_line(exc)


def test_apply_fn_closing_over_a_traced_value_is_one_line(data):
    leaked = []

    @jax.jit
    def make(a):
        leaked.append(lambda q, x: x * q["w"][0] * a)
        return a

    make(1.0)
    with pytest.raises(ValueError, match="traced outside it") as exc:
        _problem(leaked[0], data)
    _one_line(exc)


def test_overflowing_logits_stay_finite_and_exact():
    z = np.array([[1e4], [-1e4], [80.0], [-80.0], [0.0]], np.float32)
    y = np.array([[0.0], [1.0], [1.0], [0.0], [1.0]], np.float32)
    got = float(likelihoods.mean_nll("bernoulli", jnp.asarray(z), jnp.asarray(y), 1.0))
    z64, y64 = z.astype(np.float64)[:, 0], y.astype(np.float64)[:, 0]
    ref = np.mean(np.logaddexp(0.0, z64) - y64 * z64)
    assert np.isfinite(got) and abs(got - ref) <= 1e-6 * abs(ref)
    zc = np.array([[1e4, -1e4, 0.0], [-3e4, 2e4, 1e4]], np.float32)
    yc = np.array([[1.0], [0.0]], np.float32)
    got = float(likelihoods.mean_nll("categorical", jnp.asarray(zc), jnp.asarray(yc), 1.0))
    zc64 = zc.astype(np.float64)
    ref = np.mean([np.logaddexp.reduce(zc64[i]) - zc64[i, int(yc[i, 0])] for i in range(2)])
    assert np.isfinite(got) and abs(got - ref) <= 1e-6 * abs(ref)


def test_bernoulli_llc_at_huge_logits_is_finite_or_withheld(data):
    x, _ = data
    labels = (x[:, 0] > 0).astype(int)
    p = slt.Problem.from_function(lambda q, x: x * q["w"][0] + q["w"][1], P0, x, labels, likelihood="bernoulli")
    w_star = jnp.array([300.0, 0.0])      # logits up to ~2000: softplus must not overflow
    res = lc.llc_for_problem(jax.random.key(6), p, w_star, **FAST)
    assert (res.mean is None and res.warnings) or np.isfinite(res.mean)


# ----------------------------------------------------------------------------- health checks
def test_chain_problems_names_each_cause():
    loss = np.random.default_rng(0).normal(size=(4, 50))
    loss[1] = 3.0                                   # never moved
    loss[2, 7] = np.nan                             # non-finite draw
    bad, msgs = health.chain_problems("llc", loss, step_size=np.array([0.1, 0.1, 0.1, 0.0]),
                                      accept=np.full((4, 50), 0.8), nonfinite=np.zeros(4))
    assert list(bad) == [False, True, True, True]
    text = " | ".join(msgs)
    assert "chain 2 reached a non-finite L_n" in text and "step size of chain 3" in text
    assert "chain 1 never moved" in text
    acc = np.full((4, 50), 0.8)
    acc[0] = 0.001
    bad, msgs = health.chain_problems("x", np.random.default_rng(1).normal(size=(4, 50)), accept=acc)
    assert list(bad) == [True, False, False, False] and "acceptance collapsed on chain 0" in msgs[0]


def test_summarize_never_reports_converged_from_a_chain_that_did_not_sample():
    """The old failure: a step size adapted to 0, every draw at w*: ``0.000 +- 0.000, converged``."""
    loss = np.full((4, 400), 1.25)
    res = lc.summarize(loss, np.zeros((4, 400)), np.zeros(4), 1.25, nbeta=100.0, gamma=1.0, sampler="hmc",
                       min_step=1e-6)
    assert res.mean is None and res.converged is False and res.diverged
    assert any("step size" in w for w in res.warnings)


def test_param_names_follow_the_config_and_the_pytree():
    m = slt.models.make_mlp([2, 2, 1])
    assert [health.param_name(m, i) for i in (0, 3, 4, 6, 8)] == ["W1[0, 0]", "W1[1, 1]", "b1[0]", "W2[0, 0]", "b2[0]"]
    fm, _ = slt.models.function_model(lambda q, x: x @ q["a"]["W"] + q["b"], {"a": {"W": jnp.zeros((2, 3))},
                                      "b": jnp.zeros(3)}, np.zeros((4, 2)))
    assert health.param_name(fm, 5) == 'params["a"]["W"][1, 2]' and health.param_name(fm, 7) == 'params["b"][1]'


# ----------------------------------------------------------------------------- end to end
def test_slt_run_refuses_a_bad_point_before_making_a_directory(data, tmp_path):
    p = _problem(lambda q, x: x * q["w"][0] * q["w"][1] ** 0.0 * q["w"][0], data)
    with pytest.raises(ValueError, match=r'gradient of L_n is not finite at w\* \(params\["w"\]\[1\]\)'):
        slt.run(p, {"llc": {"at": "params", "lambda_hat": False}}, w_star=P0, stages=["llc"], out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_cli_exits_2_on_a_point_whose_loss_overflows(tiny_config, tmp_path, capsys):
    from slt import cli

    path = tiny_config(llc={"at": "params", "params": [{"W": [[1e30, 0.0], [0.0, 1.0]], "b": [0.0, 0.0]},
                                                       {"W": [[1e30, 1.0]], "b": [0.0]}]})
    code = cli.main(["llc", str(path), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "llc: L_n is not finite at w*" in err[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
