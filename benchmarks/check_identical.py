"""Bit-identity check of the samplers across a refactor: run each at a fixed seed, save every
output array, compare two saved files with ``np.array_equal``.

    PYTHONPATH=<before checkout> python benchmarks/check_identical.py run before.npz [--patch]
    PYTHONPATH=<after checkout>  python benchmarks/check_identical.py run after.npz
    python benchmarks/check_identical.py compare before.npz after.npz

``--patch`` applies, to the BEFORE code, the deliberate changes of issue 19 in the tempered
family (tempered grid, replica exchange, SMC): the one dual averaging's ``w (target - accept)`` rounding, and the one kernel's ``exp(min(delta, 0))`` and
energy association, so that what remains is the refactor alone, which must be bit-identical.
Sizes are small (a few minutes on 2 cores); two CPU devices exercise the shard_map path.
"""
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)
import numpy as np  # noqa: E402


def patch_before():
    import jax.numpy as jnp
    try:
        from slt.samplers import smc, tempered
    except ImportError:
        from slt import smc, tempered


    def da_update(a, accept_prob, target, gamma=0.05, t0=10.0, kappa=0.75):
        accept_prob = jnp.where(jnp.isnan(accept_prob), 0.0, accept_prob)
        t = a.t + 1
        w = 1.0 / (t + t0)
        h_bar = (1 - w) * a.h_bar + w * (target - accept_prob)
        log_step = a.mu - jnp.sqrt(t) / gamma * h_bar
        eta = t ** (-kappa)
        log_avg = eta * log_step + (1 - eta) * a.log_step_avg
        return a._replace(log_step=log_step, log_step_avg=log_avg, h_bar=h_bar, t=t)

    tempered._da_update = da_update

    def smc_hmc_step(key, position, potential, grad, loss, potential_fn, step_size, inv_mass, num_leapfrog):
        # SMC's transition with the one kernel's energy association (U0 + K0) - (U1 + K1)
        d = position.shape[0]
        z = jax.random.normal(key, (d + 2,), position.dtype)
        u_jitter, u_accept = jax.scipy.special.ndtr(z[d]), jax.scipy.special.ndtr(z[d + 1])
        eps = step_size * (1.0 - 0.5 + 2 * 0.5 * u_jitter)
        p0 = z[:d] / jnp.sqrt(inv_mass)
        vg = jax.value_and_grad(potential_fn, has_aux=True)

        def leapfrog(_, carry):
            w, p, g, u, l = carry
            p = p - 0.5 * eps * g
            w = w + eps * inv_mass * p
            (u, l), g = vg(w)
            p = p - 0.5 * eps * g
            return w, p, g, u, l

        w, p, g, u, l = jax.lax.fori_loop(0, num_leapfrog, leapfrog, (position, p0, grad, potential, loss))
        delta = (potential + 0.5 * jnp.sum(inv_mass * p0 ** 2)) - (u + 0.5 * jnp.sum(inv_mass * p ** 2))
        delta = jnp.where(jnp.isfinite(delta), delta, -jnp.inf)
        accept_prob = jnp.minimum(1.0, jnp.exp(delta))
        acc = u_accept < accept_prob
        pick = lambda a, b: jnp.where(acc, a, b)  # noqa: E731
        return pick(w, position), pick(u, potential), pick(g, grad), pick(l, loss), accept_prob

    smc.hmc_step = smc_hmc_step

    def tempered_hmc_step(key, state, potential_and_grad, step_size, inv_mass, num_steps):
        # tempered's transition with the one kernel's acceptance exp(min(delta, 0)) (the same
        # number as min(1, exp(delta)), but XLA's CPU exp can round differently in another fusion)
        d = state.position.shape[0]
        z = jax.random.normal(key, (d + 2,), state.position.dtype)
        u_jitter, u_accept = jax.scipy.special.ndtr(z[d]), jax.scipy.special.ndtr(z[d + 1])
        eps = step_size * (1.0 - 0.5 + 2 * 0.5 * u_jitter)
        p0 = z[:d] / jnp.sqrt(inv_mass)

        def leapfrog(_, carry):
            w, p, g, u, loss = carry
            p = p - 0.5 * eps * g
            w = w + eps * inv_mass * p
            u, g, loss = potential_and_grad(w)
            p = p - 0.5 * eps * g
            return w, p, g, u, loss

        w, p, g, u, loss = jax.lax.fori_loop(0, num_steps, leapfrog,
                                             (state.position, p0, state.grad, state.potential, state.loss))
        delta = (state.potential + 0.5 * jnp.sum(inv_mass * p0 ** 2)) - (u + 0.5 * jnp.sum(inv_mass * p ** 2))
        delta = jnp.where(jnp.isfinite(delta), delta, -jnp.inf)
        accept_prob = jnp.exp(jnp.minimum(delta, 0.0))
        accept = u_accept < accept_prob
        new = tempered.HMCState(jnp.where(accept, w, state.position), jnp.where(accept, u, state.potential),
                                jnp.where(accept, g, state.grad), jnp.where(accept, loss, state.loss))
        return new, tempered.HMCInfo(accept_prob, delta < -1000.0, new.loss)

    tempered.hmc_step = tempered_hmc_step


def run(out):
    import importlib
    import inspect

    import slt

    def mod(new, old):   # the layer folders (after the relayout) or the flat modules (before)
        try:
            return importlib.import_module(new)
        except ImportError:
            return importlib.import_module(old)

    config, runs = mod("slt.pipeline.config", "slt.config"), mod("slt.pipeline.runs", "slt.runs")
    lc = mod("slt.estimators.learning_coefficient", "slt.learning_coefficient")
    rfe = mod("slt.estimators.replica_free_energy", "slt.replica_free_energy")
    replica, smc = mod("slt.samplers.replica", "slt.replica"), mod("slt.samplers.smc", "slt.smc")
    samplers, tempered = mod("slt.samplers.nuts", "slt.samplers"), mod("slt.samplers.tempered", "slt.tempered")
    fe = mod("slt.estimators.free_energy", "slt.free_energy")
    # the LLC's control variates (issue 18) change its estimate on purpose, not its draws: compared off
    no_cv = {"control_variates": False} if "control_variates" in inspect.signature(lc.estimate_llc).parameters else {}

    print("slt from", slt.__file__, flush=True)
    res = {}
    # the headline posterior (configs/relu2_truth1.yaml): its sampler, replica exchange from prior draws
    ctx = runs.build_context(config.load("configs/relu2_truth1.yaml"))
    p = ctx.problem
    init = samplers.prior_draws(jax.random.key(3), 4, p.d, p.prior_std)
    r = replica.sample_problem(jax.random.key(4), p, init, num_temperatures=8, beta_min=1e-3,
                               num_warmup=200, num_samples=150, num_steps=8)
    for f in ("positions", "loss_ladder", "betas", "swap_accept", "accept_prob", "step_size", "warmup_loss"):
        res[f"headline_replica.{f}"] = getattr(r, f)
    print("headline replica done", flush=True)
    # replica free energy (configs/relu2_truth1_free_energy.yaml, ladder to beta = 0)
    ctx = runs.build_context(config.load("configs/relu2_truth1_free_energy.yaml"))
    p = ctx.problem
    init = samplers.prior_draws(jax.random.key(3), 4, p.d, p.prior_std)
    r = replica.sample_problem(jax.random.key(5), p, init, num_temperatures=8, beta_min=0.0,
                               num_warmup=200, num_samples=150, num_steps=8)
    f_ = rfe.free_energy(r, p.n)
    res["replica_fe.ti_ss"] = np.array([f_.ti, f_.stepping_stone])
    res["replica_fe.loss_ladder"] = r.loss_ladder
    print("replica fe", f_.ti, f_.stepping_stone, flush=True)
    # fixed-grid tempered HMC
    betas = fe.ti_grid(6)
    init = ctx.truth_w[None, None, :] + 1e-3 * jax.random.normal(jax.random.key(1), (6, 2, p.d))
    t = tempered.sample_tempered(jax.random.key(2), p, init, betas, num_warmup=100, num_samples=100, num_steps=4)
    for f in ("loss", "accept_prob", "step_size", "positions"):
        res[f"tempered.{f}"] = getattr(t, f)
    print("tempered done", flush=True)
    # SMC
    s = smc.free_energy_problem(jax.random.key(6), p, num_particles=128, num_runs=2, max_steps=200)
    res["smc.per_run"], res["smc.final_loss"], res["smc.betas"] = s.per_run, s.final_loss, s.betas
    print("smc", s.free_energy, flush=True)
    # NUTS / HMC through numpyro (the mesh helper)
    init = samplers.prior_draws(jax.random.key(3), 2, p.d, p.prior_std)
    for m in ("nuts", "hmc"):
        o = samplers.sample(jax.random.key(7), p, init, method=m, num_warmup=50, num_samples=50, num_steps=4)
        res[f"samplers_{m}.positions"], res[f"samplers_{m}.step_size"] = o.positions, o.step_size
    print("samplers done", flush=True)
    # the deep-linear LLC (configs/dln_llc.yaml, at the truth) with each sampler
    ctx = runs.build_context(config.load("configs/dln_llc.yaml"))
    p = ctx.problem
    for sampler, draws in (("hmc", 200), ("mala", 300), ("sgld", 300), ("nuts", 50)):
        kw = dict(num_adapt=100, num_burnin=50) if sampler != "nuts" else dict(num_adapt=30, num_burnin=10)
        o = lc.llc_for_problem(jax.random.key(8), p, ctx.truth_w, sampler=sampler, num_chains=2,
                               num_draws=draws, **kw, **(no_cv if sampler == "hmc" else {}))
        res[f"dln_llc_{sampler}.loss_trace"] = np.asarray(o.loss_trace)
        res[f"dln_llc_{sampler}.mean"] = np.asarray(o.mean)
        print("dln llc", sampler, o.mean, flush=True)
    np.savez(out, **res)


def compare(a, b):
    a, b = np.load(a), np.load(b)
    bad = 0
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            print(f"{k:40s} MISSING"); bad += 1; continue
        eq = np.array_equal(a[k], b[k], equal_nan=True)
        diff = "" if eq else f"max |diff| {np.nanmax(np.abs(a[k].astype(float) - b[k].astype(float))):.3g}"
        print(f"{k:40s} {'equal' if eq else 'DIFFERENT'} {a[k].shape} {diff}")
        bad += not eq
    print("all equal" if not bad else f"{bad} different")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        if "--patch" in sys.argv:
            patch_before()
        run(sys.argv[2])
    else:
        compare(sys.argv[2], sys.argv[3])
