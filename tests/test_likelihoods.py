"""Any model, any likelihood: exact answers for classification and the generic model path.

- L_n of each likelihood against a direct formula; categorical with two classes is bernoulli.
- Logistic regression: Fisher = X^T diag(p(1-p)) X / n (full rank); LLC at the MLE with
  gamma = 0 -> d/2; TI and stepping stone against a 2-D quadrature of the evidence.
- Softmax regression: Fisher nullity d_in (+1 with biases) at any point; LLC = rank/2.
- A Gaussian model built from a plain JAX function is bit-identical to the same ``widths`` model.
- Bad input: a ValueError naming the problem (Python) or a ConfigError naming the key.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt import data, likelihoods, models
from slt.estimators import fisher, free_energy as fe, learning_coefficient as lc
from slt.samplers import nuts as samplers, tempered
from slt.pipeline.config import ConfigError
from slt.posterior import Problem

Z_MAX = 4.0


def _logistic_problem(d=3, n=4000, seed=0, bias=False):
    spec = models.make_mlp([d, 1], "identity", bias)
    truth = models.init(jax.random.key(seed), spec)
    ds = data.synthesize(jax.random.key(seed + 1), spec, truth, n, 1.0, likelihood="bernoulli", dist="normal")
    return Problem.make(spec, ds, likelihood="bernoulli")


def _mle(problem, w0, steps=60):
    """Newton's method in float64 (the loss is convex for logistic/softmax regression)."""
    with jax.enable_x64(True):
        p64 = Problem.make(problem.model, data.Dataset(np.asarray(problem.x, np.float64),
                                                        np.asarray(problem.y, np.float64)),
                           likelihood=problem.likelihood)
        w = jnp.asarray(np.asarray(w0, np.float64))
        grad, hess = jax.jit(jax.grad(p64.loss)), jax.jit(jax.hessian(p64.loss))
        for _ in range(steps):
            h = hess(w) + 1e-10 * jnp.eye(w.size)
            w = w - jnp.linalg.lstsq(h, grad(w))[0]
        return np.asarray(w), float(jnp.linalg.norm(grad(w)))


def _mcse(res):
    return max(res.mcse, res.std / math.sqrt(res.num_chains))


# ----------------------------------------------------------------------------- L_n
def test_losses_match_direct_formulas():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3))
    y_cls = rng.integers(0, 3, size=(50, 1)).astype(float)
    direct = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(50), y_cls[:, 0].astype(int)])
    assert float(likelihoods.mean_nll("categorical", jnp.asarray(z), jnp.asarray(y_cls), 1.0)) == pytest.approx(direct, rel=1e-5)
    y01 = rng.integers(0, 2, size=(50, 1)).astype(float)
    zb = z[:, :1]
    direct_b = np.mean(-(y01 * np.log(1 / (1 + np.exp(-zb))) + (1 - y01) * np.log(1 - 1 / (1 + np.exp(-zb)))))
    got_b = float(likelihoods.mean_nll("bernoulli", jnp.asarray(zb), jnp.asarray(y01), 1.0))
    assert got_b == pytest.approx(direct_b, rel=1e-5)
    # two-class softmax over (0, z) is the bernoulli likelihood with logit z
    two = jnp.concatenate([jnp.zeros_like(jnp.asarray(zb)), jnp.asarray(zb)], axis=1)
    assert float(likelihoods.mean_nll("categorical", two, jnp.asarray(y01), 1.0)) == pytest.approx(got_b, rel=1e-5)
    yg = rng.normal(size=(50, 3))
    direct_g = 1.5 * math.log(2 * math.pi * 4.0) + np.mean(np.sum((yg - z) ** 2, 1)) / 8.0
    assert float(likelihoods.mean_nll("gaussian", jnp.asarray(z), jnp.asarray(yg), 2.0)) == pytest.approx(direct_g, rel=1e-5)


def test_synthetic_labels_follow_the_truths_probabilities():
    spec = models.make_mlp([2, 1], "identity", True)
    truth = models.init(jax.random.key(3), spec)
    ds = data.synthesize(jax.random.key(4), spec, truth, 20000, 1.0, likelihood="bernoulli")
    p = np.asarray(jax.nn.sigmoid(models.apply(spec, truth, ds.x)))[:, 0]
    y = np.asarray(ds.y)[:, 0]
    assert set(np.unique(y)) <= {0.0, 1.0}
    se = math.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(y.mean() - p.mean()) < Z_MAX * se
    spec3 = models.make_mlp([2, 3], "identity", True)
    t3 = models.init(jax.random.key(5), spec3)
    ds3 = data.synthesize(jax.random.key(6), spec3, t3, 20000, 1.0, likelihood="categorical")
    probs = np.asarray(jax.nn.softmax(models.apply(spec3, t3, ds3.x)))
    for k in range(3):
        freq = np.mean(np.asarray(ds3.y)[:, 0] == k)
        se = math.sqrt(np.sum(probs[:, k] * (1 - probs[:, k]))) / len(probs)
        assert abs(freq - probs[:, k].mean()) < Z_MAX * se


# ----------------------------------------------------------------------------- Fisher
def test_logistic_fisher_is_weighted_gram_at_full_rank():
    p = _logistic_problem(d=3, n=500)
    w = jnp.asarray([0.3, -0.5, 0.8])
    res = fisher.fisher(p.model, w, p.x, likelihood="bernoulli")
    x = np.asarray(p.x, np.float64)
    pr = 1 / (1 + np.exp(-(x @ np.asarray(w, np.float64))))
    expected = x.T @ (x * (pr * (1 - pr))[:, None]) / len(x)
    np.testing.assert_allclose(res.matrix, expected, rtol=1e-6, atol=1e-9)
    assert res.spectrum.rank == 3


@pytest.mark.parametrize("bias", [False, True])
def test_softmax_fisher_nullity_is_d_in_plus_bias(bias):
    d_in, k = 3, 4
    spec = models.make_mlp([d_in, k], "identity", bias)
    x = jax.random.normal(jax.random.key(0), (300, d_in))
    for seed in range(3):   # any point
        w = jax.random.normal(jax.random.key(10 + seed), (spec.d,))
        res = fisher.fisher(spec, w, x, likelihood="categorical")
        assert res.spectrum.nullity == d_in + int(bias), res.spectrum.eigenvalues
        # the null space is "the same vector added to every class's weights"
        shift = np.zeros(spec.d)
        for c in range(k):
            shift[c * d_in] = 1.0      # W[c, 0] for every class c (W row-major, then b)
        assert np.linalg.norm(res.matrix @ shift) < 1e-10


# ----------------------------------------------------------------------------- LLC
def test_logistic_regression_llc_at_mle_is_d_over_2():
    """Regular model: at the MLE with gamma = 0 the LLC tends to d/2; at nbeta = n/log n
    the non-quadratic remainder changes it by O(1/nbeta) (here < 1%)."""
    d = 3
    p = _logistic_problem(d=d, n=4000)
    w_mle, g = _mle(p, np.zeros(d))
    assert g < 1e-8
    res = lc.llc_for_problem(jax.random.key(0), p, jnp.asarray(w_mle, p.x.dtype), gamma=0.0)
    assert res.converged, res.warnings
    assert abs(res.mean - d / 2) < Z_MAX * _mcse(res) + 0.02 * d / 2, (res.mean, _mcse(res))


def test_softmax_regression_llc_is_half_the_rank():
    """K = 3 classes, d_in = 2, no bias: d = 6, Fisher rank (K-1) d_in = 4, lambda = 2. The
    flat directions change no L_n and add nothing to nbeta E[L - L*] (gamma = 1 bounds them)."""
    d_in, k = 2, 3
    spec = models.make_mlp([d_in, k], "identity", False)
    truth = models.init(jax.random.key(7), spec)
    ds = data.synthesize(jax.random.key(8), spec, truth, 4000, 1.0, likelihood="categorical", dist="normal")
    p = Problem.make(spec, ds, likelihood="categorical")
    w_mle, g = _mle(p, np.zeros(spec.d))
    assert g < 1e-8
    res = lc.llc_for_problem(jax.random.key(1), p, jnp.asarray(w_mle, p.x.dtype), gamma=1.0)
    rank = (k - 1) * d_in
    # gamma = 1 against curvatures nbeta h ~ 1e2 shrinks each direction's 1/2 by < 2%
    assert abs(res.mean - rank / 2) < Z_MAX * _mcse(res) + 0.03 * rank / 2, (res.mean, _mcse(res))


# ----------------------------------------------------------------------------- free energy
def _quadrature_free_energy(p, w_mle, half_width, num=161):
    """-log int phi(w) exp(-n L_n(w)) dw on a 2-D grid around the MLE (float64; the integrand is
    smooth and negligible at the edges, so the Riemann sum converges geometrically in the spacing)."""
    with jax.enable_x64(True):
        p64 = Problem.make(p.model, data.Dataset(np.asarray(p.x, np.float64), np.asarray(p.y, np.float64)),
                           likelihood=p.likelihood)
        axes = [np.linspace(c - h, c + h, num) for c, h in zip(w_mle, half_width)]
        g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        logf = np.asarray(jax.lax.map(lambda w: p64.logdensity(w), jnp.asarray(g), batch_size=4096))
    cell = np.prod([a[1] - a[0] for a in axes])
    top = logf.max()
    return -(top + math.log(np.exp(logf - top).sum() * cell))


def test_logistic_free_energy_ti_and_stepping_stone_match_quadrature():
    p = _logistic_problem(d=2, n=400, seed=3)
    w_mle, _ = _mle(p, np.zeros(2))
    info = fisher.fisher(p.model, w_mle, p.x, likelihood="bernoulli").matrix
    sd = np.sqrt(np.diag(np.linalg.inv(p.n * info + np.eye(2))))
    exact = _quadrature_free_energy(p, w_mle, 12 * sd)
    assert exact == pytest.approx(_quadrature_free_energy(p, w_mle, 16 * sd, 321), abs=1e-6)
    betas = fe.ti_grid(24, 4.0)
    chains = 4
    init = samplers.prior_draws(jax.random.key(13), len(betas) * chains, 2, 1.0).reshape(len(betas), chains, 2)
    res = tempered.sample_tempered(jax.random.key(14), p, init, betas, num_warmup=200, num_samples=500,
                                   num_steps=2)
    nL = p.n * np.asarray(res.loss, float)
    m = fe.beta_means(betas, nL)
    ti = fe.thermodynamic_integration(betas, m.mean, m.mcse, 4.0)
    ss = fe.stepping_stone(betas, nL)
    for est in (ti, ss):
        err = est.free_energy - exact
        assert abs(err) < Z_MAX * est.stderr + 0.02, (type(est).__name__, err, est.stderr)
        assert est.stderr < 0.1


def _laplace(p, w_mle):
    """-log Z by Laplace at the MAP: n L_n - log phi + (1/2) log det(n H + I/s^2) - (d/2) log 2 pi."""
    with jax.enable_x64(True):
        p64 = Problem.make(p.model, data.Dataset(np.asarray(p.x, np.float64), np.asarray(p.y, np.float64)),
                           likelihood=p.likelihood)
        w = jnp.asarray(w_mle)
        for _ in range(20):   # MLE -> MAP
            w = w - jnp.linalg.solve(jax.hessian(lambda v: -p64.logdensity(v))(w), jax.grad(lambda v: -p64.logdensity(v))(w))
        hess = np.asarray(jax.hessian(lambda v: -p64.logdensity(v))(w))
        return float(-p64.logdensity(w)) + 0.5 * np.linalg.slogdet(hess)[1] - 0.5 * w.size * math.log(2 * math.pi)


def test_logistic_free_energy_approaches_laplace():
    """Regular model: F_n - Laplace = O(1/n); measured by quadrature at n and 8n."""
    gaps = []
    for n in (400, 3200):
        p = _logistic_problem(d=2, n=n, seed=3)
        w_mle, _ = _mle(p, np.zeros(2))
        info = fisher.fisher(p.model, w_mle, p.x, likelihood="bernoulli").matrix
        sd = np.sqrt(np.diag(np.linalg.inv(p.n * info + np.eye(2))))
        gaps.append(abs(_quadrature_free_energy(p, w_mle, 12 * sd) - _laplace(p, w_mle)))
    assert gaps[1] < gaps[0] / 3 and gaps[1] < 0.02, gaps


# ----------------------------------------------------------------------------- generic path
def _mlp_fn(params, x):
    h = jax.nn.relu(x @ params[0]["W"].T + params[0]["b"])
    return h @ params[1]["W"].T + params[1]["b"]


def test_function_model_is_bit_identical_to_widths_model():
    spec = models.make_mlp([2, 2, 1], "relu", True)
    truth = models.init(jax.random.key(0), spec)
    ds = data.synthesize(jax.random.key(1), spec, truth, 200, 0.5)
    p_widths = Problem.make(spec, ds, noise_std=0.5)
    example = models.unflatten(spec, jnp.zeros(spec.d))
    p_fn = Problem.from_function(_mlp_fn, example, ds.x, ds.y, noise_std=0.5)
    assert p_fn.d == p_widths.d == 9
    w = jax.random.normal(jax.random.key(2), (9,))
    assert p_fn.ravel(models.unflatten(spec, w)).tolist() == w.tolist()
    assert float(p_fn.loss(w)) == float(p_widths.loss(w))
    init = samplers.prior_draws(jax.random.key(3), 2, 9, 1.0)
    kw = dict(num_warmup=50, num_samples=50)
    a = samplers.sample(jax.random.key(4), p_widths, init, **kw)
    b = samplers.sample(jax.random.key(4), p_fn, init, **kw)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.loss, b.loss)


def test_problem_bad_input_is_a_value_error():
    x = np.zeros((10, 2))
    params = [{"W": jnp.zeros((3, 2)), "b": jnp.zeros(3)}, {"W": jnp.zeros((1, 3)), "b": jnp.zeros(1)}]
    with pytest.raises(ValueError, match="likelihood must be one of"):
        Problem.from_function(_mlp_fn, params, x, np.zeros(10), likelihood="poisson")
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        Problem.from_function(_mlp_fn, params, x, np.full(10, 2.0), likelihood="bernoulli")
    with pytest.raises(ValueError, match="labels must be integers"):
        Problem.from_function(_mlp_fn, params, x, np.full(10, 0.5), likelihood="bernoulli")
    with pytest.raises(ValueError, match="categorical needs d_out >= 2"):
        Problem.from_function(_mlp_fn, params, x, np.zeros(10), likelihood="categorical")
    with pytest.raises(ValueError, match="d_out = 1 outputs"):
        Problem.from_function(_mlp_fn, params, x, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="floating-point"):
        Problem.from_function(_mlp_fn, [{"W": jnp.zeros((3, 2), int), "b": jnp.zeros(3)}, params[1]], x, np.zeros(10))
    with pytest.raises(ValueError, match="apply_fn"):
        Problem.from_function(lambda p, x: jnp.zeros((3, 3)), params, x, np.zeros(10))
    wide = [{"W": jnp.zeros((3, 2)), "b": jnp.zeros(3)}, {"W": jnp.zeros((4, 3)), "b": jnp.zeros(4)}]
    with pytest.raises(ValueError, match="labels must lie in 0..3"):
        Problem.from_function(_mlp_fn, wide, x, np.full(10, 4.0), likelihood="categorical")


def test_config_label_errors(tmp_path, tiny_config):
    import yaml

    from slt.pipeline import config

    def load(**model):
        raw = yaml.safe_load(tiny_config().read_text())
        raw["model"].update(model)
        return config.from_dict(raw, base_dir=tmp_path)

    with pytest.raises(ConfigError, match="model.likelihood"):
        load(likelihood="poisson")
    with pytest.raises(ConfigError, match="model.likelihood.*end in 1"):
        load(likelihood="bernoulli", widths=[2, 2, 2])
    x = np.random.default_rng(0).normal(size=(20, 2))
    for labels, match in ((np.full(20, 2.0), "0..1"), (np.full(20, 0.5), "integers")):
        np.savez(tmp_path / "d.npz", x=x, y=labels)
        raw = yaml.safe_load(tiny_config().read_text())
        raw["model"]["likelihood"] = "bernoulli"
        raw.pop("truth")
        raw["data"] = {"file": "d.npz"}
        from slt.pipeline import runs

        cfg = config.from_dict(raw, base_dir=tmp_path)
        with pytest.raises(ConfigError, match=match):
            runs.check_data_file(cfg)
    np.savez(tmp_path / "d.npz", x=x, y=np.full(20, 3.0))
    raw = yaml.safe_load(tiny_config().read_text())
    raw["model"].update(likelihood="categorical", widths=[2, 2, 3])
    raw.pop("truth")
    raw["data"] = {"file": "d.npz"}
    cfg = config.from_dict(raw, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"0..2 \(d_out = 3 classes\)"):
        runs.check_data_file(cfg)


def test_python_run_is_bit_identical_to_the_cli_run(tmp_path, tiny_config):
    """The same model, data, seed and sampler section through ``slt run`` (widths) and through
    ``slt.run`` (a plain JAX function): identical draws and summary numbers."""
    import yaml

    import slt
    from slt.pipeline import config, runs

    path = tiny_config()
    cfg = config.load(path, ["output.figures=false"])
    cli_dir = runs.execute(cfg, out_dir=tmp_path / "cli")
    ctx = runs.build_context(cfg)
    example = models.unflatten(ctx.problem.spec, jnp.zeros(ctx.problem.d))
    problem = Problem.from_function(_mlp_fn, example, ctx.problem.x, ctx.problem.y)
    raw = yaml.safe_load(path.read_text())
    sections = {k: raw[k] for k in ("seed", "sampler") if k in raw}
    run = slt.run(problem, {**sections, "output": {"figures": False}}, out=tmp_path / "py", name="tiny")
    a = slt.load(cli_dir).inference_data.posterior
    b = run.inference_data.posterior
    np.testing.assert_array_equal(np.asarray(a["w"]), np.asarray(b["w"]))
    np.testing.assert_array_equal(np.asarray(a["L_n"]), np.asarray(b["L_n"]))
    assert slt.load(cli_dir).summary["loss"]["E_L_n"] == run.summary["loss"]["E_L_n"]


def _instructions(text):
    """The optimised HLO's instructions (sorted), without names, argument numbers or metadata."""
    import re

    out = []
    for line in text.splitlines():
        if " = " not in line or re.match(r"^\s*\d+ ", line) or line.startswith("HloModule"):
            continue
        line = re.sub(r", metadata=\{.*?\}(?=,|$)", "", line)
        line = re.sub(r"stack_frame_id=\d+", "", line)
        out.append(re.sub(r"%[\w.\-]+|parameter\(\d+\)", "%", line))   # names and argument numbers
    return sorted(out)


@pytest.mark.parametrize("widths, activation, bias", [([2, 2, 1], "relu", True), ([5, 4, 3, 4, 5], "identity", False)])
def test_generic_problem_compiles_to_the_hand_written_gaussian_program(widths, activation, bias):
    """No speed lost to the abstraction: the gradient of the tempered log density through
    Problem (model + likelihood) compiles to exactly the instructions of the Gaussian MLP
    log density written out by hand (the formulation before the abstraction)."""
    spec = models.make_mlp(widths, activation, bias)
    ds = data.synthesize(jax.random.key(0), spec, models.init(jax.random.key(1), spec), 500, 1.0)
    p = Problem.make(spec, ds)

    def by_hand(w, x, y, sigma, s, beta):
        resid = y - models.apply(spec, models.unflatten(spec, w), x)
        loss = 0.5 * y.shape[-1] * jnp.log(2 * jnp.pi * sigma ** 2) + 0.5 * jnp.mean(jnp.sum(resid ** 2, axis=-1)) / sigma ** 2
        return (-0.5 * jnp.sum(w ** 2) / s ** 2 - 0.5 * w.shape[-1] * jnp.log(2 * jnp.pi * s ** 2)
                - x.shape[0] * beta * loss)

    w = jnp.zeros(spec.d)
    ours = jax.jit(lambda w, p, b: jax.value_and_grad(lambda v: p.logdensity(v, b))(w)).lower(w, p, 0.5)
    ref = jax.jit(lambda w, x, y, sigma, s, b: jax.value_and_grad(lambda v: by_hand(v, x, y, sigma, s, b))(w)).lower(
        w, p.x, p.y, p.noise_std, p.prior_std, 0.5)
    a, b = _instructions(ours.compile().as_text()), _instructions(ref.compile().as_text())
    assert a == b
