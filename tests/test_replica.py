"""Replica exchange (slt.samplers.replica): mode weights of a two-component mixture against the exact
answer, the swap ratio, the equal-barrier ladder on a Gaussian (exact: equal spacing in log
beta), NaN chains withheld, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slt.samplers import replica

S, MU, SIG, P_A = 5.0, 3.0, 0.3, 0.3   # prior sd; modes at -MU (weight P_A) and +MU, sd SIG


def _normal_logpdf(w, mean, sd):
    return jnp.sum(-0.5 * ((w - mean) / sd) ** 2 - jnp.log(sd * jnp.sqrt(2 * jnp.pi)))


def mix_log_prior(w, data):
    return _normal_logpdf(w, 0.0, S)


def mix_loss(w, data):
    """``L(w) = -(log mix(w) - log phi(w))`` with n = 1: at beta = 1 the target is the mixture
    ``P_A N(-MU, SIG^2 I) + (1 - P_A) N(MU, SIG^2 I)``; beta -> 0 flattens it to the prior."""
    log_mix = jnp.logaddexp(jnp.log(P_A) + _normal_logpdf(w, -MU, SIG),
                            jnp.log(1 - P_A) + _normal_logpdf(w, MU, SIG))
    return -(log_mix - mix_log_prior(w, data))


def _mode_a_weight(res):
    """Per chain: the fraction of beta = 1 draws in mode A (w_1 < 0); mean and its standard
    error from the spread of independent chains."""
    frac = (res.positions[..., 0] < 0).mean(axis=1)
    return frac, frac.mean(), frac.std(ddof=1) / np.sqrt(len(frac))


def test_mixture_weight_matches_exact_where_the_beta1_kernel_alone_is_trapped():
    init = jnp.full((8, 2), -MU)                       # every chain starts in mode A
    kw = dict(num_warmup=500, num_samples=1000, num_steps=8)
    res = replica.sample(jax.random.key(1), mix_log_prior, mix_loss, init, 1.0, num_temperatures=8,
                         beta_min=1e-2, **kw)
    frac, mean, se = _mode_a_weight(res)
    assert res.valid.all() and res.nan_count.sum() == 0
    # modes are 20 sd apart: P(mode A) = P_A to 1e-80; 4 standard errors from 8 independent chains
    assert abs(mean - P_A) < 4 * se + 0.01, (frac, mean, se)
    assert res.round_trips.sum() >= 2 * len(res.round_trips), res.round_trips   # aggregate, not one chain
    assert res.betas.shape == (8, 8) and np.allclose(res.betas[:, 0], 1.0) and np.allclose(res.betas[:, -1], 1e-2)
    assert np.all(np.diff(res.betas, axis=1) < 0)
    # the same HMC kernel without tempering (both levels at beta ~ 1) never leaves mode A
    # (chain 7 starts at NaN: it is reported and withheld)
    stuck = replica.sample(jax.random.key(1), mix_log_prior, mix_loss, init.at[7, 0].set(jnp.nan), 1.0,
                           betas=[1.0, 0.99], adapt_ladder=False, **kw)
    assert list(replica.valid_chains(stuck)) == list(range(7))
    assert (stuck.nan_count[:7] == 0).all() and stuck.nan_count[7] > 0
    frac_stuck = (stuck.positions[:7, :, 0] < 0).mean(axis=1)
    assert frac_stuck.min() > 0.99, frac_stuck
    # reproducible with the same key
    again = replica.sample(jax.random.key(1), mix_log_prior, mix_loss, init, 1.0, num_temperatures=8,
                           beta_min=1e-2, **kw)
    np.testing.assert_array_equal(again.positions, res.positions)


def test_auto_ladder_and_auto_draws_on_the_mixture():
    """num_temperatures='auto' sizes the ladder from the pilot's barrier (2 Lambda + 1) and
    num_samples='auto' stops at the first check that passes; the mode weight stays exact and the
    run is reproducible. Aggregates only (Monte Carlo tolerances)."""
    init = jnp.full((4, 2), -MU)
    kw = dict(num_temperatures="auto", beta_min=1e-2, num_warmup=300, num_samples="auto", num_steps=8,
              min_round_trips=5)
    res = replica.sample(jax.random.key(1), mix_log_prior, mix_loss, init, 1.0, **kw)
    k = res.betas.shape[1]
    assert k == replica.temperatures_for_barrier(res.pilot_barrier)
    assert res.barrier_rounds[0]["num_temperatures"] == replica.PILOT_TEMPERATURES
    assert res.barrier_rounds[-1]["num_temperatures"] == k
    lam = replica.barriers(res.betas, res.swap_accept)[0].mean()
    assert abs(lam - res.pilot_barrier) < 0.5 * res.pilot_barrier + 0.5     # the pilot measured the same barrier
    assert res.converged and res.sampling_rounds[-1]["converged"]
    assert res.sampling_rounds[-1]["rhat_loss"] <= 1.01 and res.sampling_rounds[-1]["ess_bulk_loss"] >= 400
    assert res.loss.shape[1] == res.sampling_rounds[-1]["num_samples"] and res.loss.shape[1] % replica.AUTO_FIRST == 0
    assert res.index_process.shape == (4, res.loss.shape[1], k)
    assert (np.sort(res.index_process, axis=-1) == np.arange(k)).all()     # a permutation at every draw
    assert (res.restarts >= res.round_trips).all() and res.round_trips.min() >= 5
    frac, mean, se = _mode_a_weight(res)
    assert abs(mean - P_A) < 4 * se + 0.02, (frac, mean, se)
    # a cap that no check can meet: stops at the cap, converged False
    capped = replica.sample(jax.random.key(1), mix_log_prior, mix_loss, init, 1.0,
                            **{**kw, "min_round_trips": 10 ** 6, "max_samples": 1000})
    assert capped.converged is False and capped.loss.shape[1] == 1000
    assert [r["num_samples"] for r in capped.sampling_rounds] == [500, 1000]
    # same key, same numbers; the first 500 draws of the capped run are the auto run's (chunking
    # never changes the numbers)
    np.testing.assert_array_equal(capped.loss[:, :500], res.loss[:, :500])
    summ = replica.summary(capped, 1)
    assert summ["converged"] is False and len(summ["restarts"]) == 4 and summ["num_samples"] == 1000


def test_temperatures_for_barrier_and_resize():
    assert replica.temperatures_for_barrier(3.7) == 9
    assert replica.temperatures_for_barrier(0.1) == replica.MIN_TEMPERATURES
    assert replica.temperatures_for_barrier(100.0) == replica.MAX_TEMPERATURES
    betas, near = replica.resize_ladder(np.array([1.0, 0.5, 0.01]), np.array([0.5, 0.1]), 4)
    # Lambda = (0, .5, .6): new levels at Lambda = 0, .2, .4, .6 (log-linear between old levels)
    np.testing.assert_allclose(betas, [1.0, 0.5 ** 0.4, 0.5 ** 0.8, 0.01], rtol=1e-6)
    assert list(near) == [0, 0, 1, 2]


def test_swap_log_ratio_is_the_metropolis_ratio_of_the_exchange():
    rng = np.random.default_rng(0)
    betas = jnp.asarray(np.sort(rng.uniform(0, 1, 5))[::-1])
    loss = jnp.asarray(rng.normal(size=5))
    n, log_prior = 37.0, jnp.asarray(rng.normal(size=5))   # the prior must cancel

    def log_pi(k, j):   # log density of level k at the state with loss[j], prior[j]
        return log_prior[j] - n * betas[k] * loss[j]

    got = np.asarray(replica.swap_log_ratio(betas, loss, n))
    for k in range(4):
        want = log_pi(k, k + 1) + log_pi(k + 1, k) - log_pi(k, k) - log_pi(k + 1, k + 1)
        assert got[k] == pytest.approx(float(want), rel=1e-5, abs=1e-5)
    # symmetric: swapping the two states gives the reciprocal ratio
    swapped = loss.at[0].set(loss[1]).at[1].set(loss[0])
    assert float(replica.swap_log_ratio(betas, swapped, n)[0]) == pytest.approx(-got[0], rel=1e-5)
    # a NaN loss is refused, not propagated
    assert float(replica.swap_log_ratio(betas, loss.at[2].set(jnp.nan), n)[1]) == -np.inf


def test_equal_barrier_ladder_inverts_the_cumulative_barrier():
    new = np.asarray(replica.equal_barrier_ladder(jnp.asarray([1.0, 0.5, 0.01]), jnp.asarray([0.5, 0.1])))
    # Lambda = (0, 0.5, 0.6) at log beta = (0, log .5, log .01); the middle level goes to Lambda = 0.3
    np.testing.assert_allclose(new, [1.0, 0.5 ** 0.6, 0.01], rtol=1e-5)
    # beta_min = 0: interpolated in log(beta + beta_{K-2} / 10); end points kept
    new = np.asarray(replica.equal_barrier_ladder(jnp.asarray([1.0, 0.5, 0.0]), jnp.asarray([0.1, 0.5])))
    want = np.exp(np.log(0.55) + (0.3 - 0.1) / 0.5 * (np.log(0.05) - np.log(0.55))) - 0.05
    np.testing.assert_allclose(new, [1.0, want, 0.0], rtol=1e-5)


def gauss_log_prior(w, data):
    return _normal_logpdf(w, 0.0, 1e3)   # flat on the scale of every level


def gauss_loss(w, data):
    return 0.5 * jnp.sum(w ** 2)


def test_ladder_adaptation_equalises_swap_rates_on_a_gaussian():
    """With ``L = |w|^2 / 2`` and a flat prior, level beta is N(0, I / beta): the swap rate of a
    pair depends only on beta_{k+1} / beta_k, so the equal-rate ladder is geometric. Start
    from a linear ladder (far from it) and check the adapted one."""
    k, beta_min = 8, 1e-3
    start = np.linspace(1.0, beta_min, k)
    res = replica.sample(jax.random.key(2), gauss_log_prior, gauss_loss, jnp.zeros((4, 3)), 1.0, betas=start,
                         num_warmup=1500, num_samples=500, num_steps=4, num_rounds=5)
    log_gap = -np.diff(np.log(res.betas), axis=1)                 # (chains, K-1)
    exact = np.log(1.0 / beta_min) / (k - 1)
    np.testing.assert_allclose(log_gap.mean(axis=0), exact, rtol=0.2)
    acc = res.swap_accept.mean(axis=0)
    assert acc.max() - acc.min() < 0.12, acc
    # the linear start has a pair with rate ~0 near beta_min; afterwards every pair swaps
    assert acc.min() > 0.3, acc


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_temperatures=1), "num_temperatures"),
    (dict(beta_min=1.0), "beta_min"),
    (dict(beta_min=-0.1), "beta_min"),
    (dict(swap_interval=0), "swap_interval"),
    (dict(betas=[0.5, 1.0]), "betas"),
    (dict(betas=[1.0]), "betas"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        replica.sample(jax.random.key(0), mix_log_prior, mix_loss, jnp.zeros((2, 2)), 1.0, **kwargs)


def test_warmup_rounds_double_and_fit_the_warmup():
    ends = replica.warmup_rounds(1000, 4)
    lengths = np.diff((0,) + ends)
    assert len(ends) == 4 and ends[-1] == 750
    assert all(lengths[i + 1] >= 2 * lengths[i] for i in range(3))
    assert replica.warmup_rounds(12, 4) == ()       # too short to adapt a ladder


def test_slt_run_with_replica_writes_swap_rates_and_round_trips(tiny_config, tmp_path):
    import json
    import warnings

    from slt import cli

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    path = tiny_config(sampler__method="replica", sampler__num_temperatures=4, sampler__beta_min=0.01,
                       sampler__num_steps=4, sampler__init="prior", sampler__num_warmup=60,
                       sampler__swap_interval=40)   # one swap event while sampling: no round trip
    out = tmp_path / "runs"
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "tiny" / "summary.json").read_text())
    diag = summary["diagnostics"]
    rep = diag["replica"]
    assert diag["sampler"] == "replica" and rep["num_temperatures"] == 4
    assert len(rep["round_trips"]) == 2 and len(rep["swap_accept"][0]) == 3
    assert rep["betas"][0][0] == 1.0 and rep["betas"][0][-1] == pytest.approx(0.01)
    assert all(0 <= a <= 1 for row in rep["swap_accept"] for a in row)
    assert rep["round_trips"] == [0, 0] and rep["swap_interval"] == 40
    lam = [sum(1 - a for a in row) for row in rep["swap_accept"]]
    assert rep["global_barrier_per_chain"] == pytest.approx(lam) and rep["global_barrier"] == pytest.approx(np.mean(lam))
    assert len(rep["local_barrier"]["beta"]) == 3 and rep["suggested_num_temperatures"] >= 1
    assert any("never made a round trip" in w for w in diag["warnings"]), diag["warnings"]
    assert rep["restarts"] is not None and len(rep["restarts"]) == 2
    assert (out / "tiny" / "replica.png").exists()
    assert np.isfinite(summary["loss"]["E_L_n"]) and np.isfinite(diag["rhat_loss"])
    idata = az.from_netcdf(str(out / "tiny" / "posterior.nc"))
    assert idata.posterior["w"].shape == (2, 50, 9)


@pytest.mark.parametrize("overrides, key, words", [
    ({"sampler__num_temperatures": 1}, "sampler.num_temperatures", ">= 2"),
    ({"sampler__beta_min": 1.0}, "sampler.beta_min", "[0, 1)"),
    ({"sampler__beta_min": -0.5}, "sampler.beta_min", "[0, 1)"),
    ({"sampler__beta": 0.5, "sampler__beta_min": 0.6}, "sampler.beta_min", "below sampler.beta"),
    ({"sampler__beta": "wbic", "sampler__beta_min": 0.3}, "sampler.beta_min", "below sampler.beta"),
    ({"sampler__swap_interval": 0}, "sampler.swap_interval", ">= 1"),
    ({"sampler__thinning": 2}, "sampler.thinning", "must be 1"),
    ({"sampler__num_temperatures": 33}, "sampler.num_temperatures", "<= 32"),
    ({"sampler__num_temperatures": "many"}, "sampler.num_temperatures", "'auto'"),
    ({"sampler__num_samples": "auto", "sampler__max_samples": 100}, "sampler.max_samples", ">= 500"),
    ({"sampler__num_samples": "auto", "sampler__min_round_trips": 0}, "sampler.min_round_trips", ">= 1"),
])
def test_bad_replica_config_exits_2_naming_the_key(tiny_config, tmp_path, capsys, overrides, key, words):
    from slt import cli

    path = tiny_config(**{"sampler__method": "replica", **overrides})
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and words in lines[0], lines
    assert not out.exists()


def test_barriers_integrate_to_the_global_barrier():
    """lambda(beta) ~ r_k / |beta_k - beta_k+1| integrates (midpoint rule) back to Lambda = sum r_k."""
    betas = np.array([[1.0, 0.5, 0.1, 0.0], [1.0, 0.6, 0.2, 0.0]])
    acc = np.array([[0.9, 0.7, 0.4], [0.8, 0.8, 0.5]])
    lam, mid, local = replica.barriers(betas, acc)
    np.testing.assert_allclose(lam, [0.1 + 0.3 + 0.6, 0.2 + 0.2 + 0.5])
    np.testing.assert_allclose(mid, [0.775, 0.35, 0.075])
    np.testing.assert_allclose(local[0], np.mean([0.1 / 0.5, 0.2 / 0.4]))


def test_slt_run_auto_samples_at_the_cap_warns_and_is_not_converged(tiny_config, tmp_path):
    """num_samples: auto whose round-trip target cannot be met stops at max_samples with
    converged: false and a warning; the ladder was sized from the warmup (num_temperatures auto)."""
    import json

    from slt import cli

    path = tiny_config(sampler__method="replica", sampler__init="prior", sampler__num_steps=4,
                       sampler__num_warmup=60, sampler__num_samples="auto", sampler__max_samples=500,
                       sampler__min_round_trips=10 ** 6, output__figures=False)
    out = tmp_path / "runs"
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    diag = json.loads((out / "tiny" / "summary.json").read_text())["diagnostics"]
    rep = diag["replica"]
    assert rep["converged"] is False and rep["num_samples"] == 500 and diag["num_samples"] == 500
    assert [r["num_samples"] for r in rep["sampling_rounds"]] == [500]
    assert rep["warmup_rounds"][0]["num_temperatures"] == replica.PILOT_TEMPERATURES
    assert rep["num_temperatures"] == replica.temperatures_for_barrier(rep["pilot_global_barrier"])
    assert any("max_samples" in w and "without mixing" in w for w in diag["warnings"]), diag["warnings"]
