"""Step-size jitter 0.2 against 0.5 for the tempered samplers (issue 19: one jitter constant).

The LLC's HMC keeps +-20% (benchmarks/llc_jitter.md); the fixed-length HMC of the tempered grid,
replica exchange and SMC (:func:`slt.kernels.hmc.step`) used +-50%. Here both values side by side,
one child process per (value, seed), the two values alternating (their order swapped every seed),
the jitter set before anything is traced:

1. replica exchange on the headline config (configs/relu2_truth1.yaml: n = 1e3, prior starts, 4
   chains, num_temperatures auto, 16 leapfrog steps, 1000 warmup) with ``num_samples`` fixed at
   1000 (the auto rule's second checkpoint: a fixed length, so the ESS estimates carry no stopping
   bias): R-hat and bulk ESS of L_n and of the invariants (L_n and the outputs at fixed inputs,
   as the sample stage checks them), round trips, ESS per gradient evaluation;
2. the free-energy path on Bayesian linear regression (configs/linreg_free_energy.yaml: d = 5,
   n = 1e3, closed-form F_n): the tempered grid (24 betas x 8 chains x 300 + 600, 2 leapfrog steps
   as the config, and 4 as the free_energy default), replica ladders (the stage's
   ``sampler: replica``: 8 chains x 24 levels to beta = 0, 8 steps) and SMC (512 particles x 8
   runs, 5 HMC transitions x 4 steps): TI / stepping stone / SMC against the exact F_n, their
   standard errors, ESS of n L_n per beta (grid), and at every beta of the grid the mean of n L_n
   against its closed form (so the ESS estimates are checked by the actual errors);
3. (``--parts relugrid``) the same fixed grid on the headline ReLU posterior
   (configs/relu2_truth1_free_energy.yaml: 16 betas x 4 chains x 400 + 800, 4 leapfrog steps,
   truth starts): no exact answer, ESS of n L_n per beta and the TI / stepping-stone se.

Gradients: every sampler here runs a FIXED number of leapfrog steps per transition (the jitter
changes the step size, hence the trajectory length, not the step count), so the cost per draw is
the same at both values; counted anyway (replica: K (num_steps + 1) per chain per transition, the
+1 the re-evaluation after a swap; SMC: temperatures x transitions x steps x particles).

    python benchmarks/bench_jitter_tempered.py --seeds 0 1 2 --out benchmarks/jitter_tempered.jsonl
    python benchmarks/bench_jitter_tempered.py --parts linreg relugrid --seeds 3 4 --out benchmarks/jitter_tempered.jsonl
    python benchmarks/bench_jitter_tempered.py --table benchmarks/jitter_tempered.jsonl
"""
import argparse
import json
import os
import subprocess
import sys
import time

VALUES = (0.2, 0.5)


def set_jitter(value: float) -> None:
    """The one HMC transition's jitter for this process (before anything is traced): the module
    constant, and the keyword default where ``step`` binds it at definition time."""
    from slt.kernels import hmc
    hmc.JITTER = value
    kw = hmc.step.__kwdefaults__
    if kw.get("jitter") is not None:
        kw["jitter"] = value


def replica_headline(seed: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from slt.pipeline import config, runs
    from slt.pipeline.stages import sampling
    from slt.samplers import diagnostics, replica

    cfg = config.load("configs/relu2_truth1.yaml", [f"seed={seed}", "sampler.init=prior", "sampler.num_samples=1000"])
    ctx = runs.build_context(cfg)
    t0 = time.perf_counter()
    res, _, _ = sampling.sample_posterior(ctx)
    wall = time.perf_counter() - t0
    p = ctx.problem
    xf = sampling.fixed_inputs(ctx, cfg.sampler.num_predict_inputs)
    outputs = np.asarray(jax.vmap(jax.vmap(lambda w: p.predict(w, xf)))(jnp.asarray(res.positions)))
    invariant = np.concatenate([res.loss[..., None], outputs.reshape(outputs.shape[:2] + (-1,))], axis=-1)
    rhat, ess = diagnostics.rhat(invariant), diagnostics.ess_bulk(invariant)
    rep = res.replica
    k, steps, chains, draws = int(rep.betas.shape[1]), int(rep.num_steps), res.loss.shape[0], res.loss.shape[1]
    warm = cfg.sampler.num_warmup
    # draws: K levels x (steps + 1) gradients per transition; warmup: the pilot ladder
    # (PILOT_TEMPERATURES) for its first half, the sized ladder for the second
    grads_draws = chains * k * (steps + 1) * draws
    grads_total = grads_draws + chains * (steps + 1) * (replica.PILOT_TEMPERATURES * (warm // 2) + k * (warm - warm // 2))
    return {"part": "replica_headline", "seed": seed, "wall_s": wall, "chains": chains, "draws": draws,
            "num_temperatures": k, "num_steps": steps, "grads_draws": grads_draws, "grads_total": grads_total,
            "rhat_L_n": float(rhat[0]), "ess_L_n": float(ess[0]),
            "rhat_max_invariant": float(np.nanmax(rhat)), "ess_min_invariant": float(np.nanmin(ess)),
            "ess_invariants": np.round(ess, 1).tolist(),
            "round_trips": rep.round_trips.tolist(), "swap_accept_mean": rep.swap_accept.mean(0).round(3).tolist(),
            "accept_beta1": float(np.mean(res.accept_prob)), "divergences": int(res.diverging.sum())}


def grid_summary(betas, nl):
    """A tempered grid's per-beta means, TI, stepping stone and bulk ESS of n L_n per beta."""
    import numpy as np
    from slt.estimators import free_energy as fe
    from slt.samplers import diagnostics

    m = fe.beta_means(betas, nl)
    ess = np.array([float(diagnostics.ess_bulk(nl[b][..., None])[0]) for b in range(len(betas))])
    return m, fe.thermodynamic_integration(betas, m.mean, m.mcse), fe.stepping_stone(betas, nl), ess


def linreg(seed: int) -> list[dict]:
    import jax
    import numpy as np
    from slt.estimators import free_energy as fe
    from slt.estimators import replica_free_energy as rfe
    from slt.pipeline import config, runs
    from slt.samplers import diagnostics, nuts, replica, smc, tempered

    ctx = runs.build_context(config.load("configs/linreg_free_energy.yaml"))   # data fixed (seed 0)
    p, n = ctx.problem, ctx.problem.n
    exact = fe.linear_gaussian_free_energy(np.asarray(p.x), np.asarray(p.y))
    key = jax.random.fold_in(jax.random.key(12345), seed)
    rows = []
    betas = fe.ti_grid(24, 4.0)
    init = nuts.prior_draws(jax.random.fold_in(key, 0), 24 * 8, p.d, p.prior_std).reshape(24, 8, p.d)
    for steps in (2, 4):
        t0 = time.perf_counter()
        tr = tempered.sample_tempered(jax.random.fold_in(key, steps), p, init, betas, num_warmup=300,
                                      num_samples=600, num_steps=steps)
        wall = time.perf_counter() - t0
        nl = n * np.asarray(tr.loss)
        m, ti, ss, ess = grid_summary(betas, nl)
        exact_mean = fe.linear_gaussian_E_nL_n(np.asarray(p.x), np.asarray(p.y), betas)
        rows.append({"part": f"linreg_grid_{steps}steps", "seed": seed, "wall_s": wall, "exact": exact,
                     "ti": ti.free_energy, "ti_se": ti.stderr, "ss": ss.free_energy, "ss_se": ss.stderr,
                     "ess_nL_mean": float(ess.mean()), "ess_nL_min": float(ess.min()),
                     "ess_nL": np.round(ess, 1).tolist(), "step_size": np.asarray(tr.step_size).mean(1).round(4).tolist(),
                     # per beta: the mean of n L_n minus its exact value, and the reported MCSE
                     "err_nL": (m.mean - exact_mean).round(5).tolist(), "mcse_nL": np.round(m.mcse, 5).tolist(),
                     "grads": 24 * 8 * 900 * steps, "grads_draws": 24 * 8 * 600 * steps,
                     "accept": float(np.mean(tr.accept_prob))})
    t0 = time.perf_counter()
    init = nuts.prior_draws(jax.random.fold_in(key, 10), 8, p.d, p.prior_std)
    res = replica.sample_problem(jax.random.fold_in(key, 11), p, init, num_temperatures=24, beta_min=0.0,
                                 num_warmup=300, num_samples=600, num_steps=8)
    wall = time.perf_counter() - t0
    r = rfe.free_energy(res, n)
    rows.append({"part": "linreg_replica", "seed": seed, "wall_s": wall, "exact": exact,
                 "ti": r.ti, "ti_se": r.ti_stderr, "ss": r.stepping_stone, "ss_se": r.stepping_stone_stderr,
                 "ess_nL_beta1": float(diagnostics.ess_bulk(n * np.asarray(res.loss)[..., None])[0]),
                 "round_trips": res.round_trips.tolist(), "grads": 8 * 24 * 9 * 900, "grads_draws": 8 * 24 * 9 * 600})
    t0 = time.perf_counter()
    s = smc.free_energy_problem(jax.random.fold_in(key, 20), p, num_particles=512, num_runs=8,
                                num_mcmc_steps=5, num_leapfrog=4)
    wall = time.perf_counter() - t0
    rows.append({"part": "linreg_smc", "seed": seed, "wall_s": wall, "exact": exact,
                 "smc": s.free_energy, "smc_se": s.stderr, "num_good": s.num_good,
                 "temperatures": s.num_steps.tolist(), "grads": int(s.num_steps.sum()) * 5 * 4 * 512,
                 "accept": float(np.nanmean(s.accept_prob))})
    return rows


def relu_grid(seed: int) -> dict:
    """The fixed grid on the headline ReLU posterior (configs/relu2_truth1_free_energy.yaml: 16 betas x
    4 chains x 400 + 800, 4 leapfrog steps) from the truth (+1e-3), as the grid runs with
    ``free_energy.init: truth``: no exact answer; TI / stepping stone, their se, ESS of n L_n per beta."""
    import jax
    import numpy as np
    from slt.estimators import free_energy as fe
    from slt.pipeline import config, runs
    from slt.samplers import diagnostics, tempered

    ctx = runs.build_context(config.load("configs/relu2_truth1_free_energy.yaml"))
    p, n = ctx.problem, ctx.problem.n
    key = jax.random.fold_in(jax.random.key(777), seed)
    betas = fe.ti_grid(16)
    init = ctx.truth_w[None, None, :] + 1e-3 * jax.random.normal(jax.random.fold_in(key, 0), (16, 4, p.d))
    t0 = time.perf_counter()
    tr = tempered.sample_tempered(jax.random.fold_in(key, 1), p, init, betas, num_warmup=400, num_samples=800,
                                  num_steps=4)
    wall = time.perf_counter() - t0
    nl = n * np.asarray(tr.loss)
    m, ti, ss, ess = grid_summary(betas, nl)
    rhat = np.array([float(diagnostics.rhat(nl[b][..., None])[0]) for b in range(len(betas))])
    return {"part": "relu_grid_4steps", "seed": seed, "wall_s": wall, "ti": ti.free_energy, "ti_se": ti.stderr,
            "ti_mc_se": ti.mc_stderr, "ss": ss.free_energy, "ss_se": ss.stderr,
            "ess_nL_mean": float(ess.mean()), "ess_nL": np.round(ess, 1).tolist(), "rhat_nL_max": float(rhat.max()),
            "grads": 16 * 4 * 1200 * 4, "grads_draws": 16 * 4 * 800 * 4, "accept": float(np.mean(tr.accept_prob)),
            "divergences": int(np.sum(tr.diverging))}


def child(value: float, seed: int, parts: list[str]) -> None:
    from slt.setup_jax import configure_jax
    configure_jax()
    set_jitter(value)
    import jax
    from slt.kernels import hmc
    assert hmc.JITTER == value and hmc.step.__kwdefaults__["jitter"] in (None, value)
    load = os.getloadavg()[0]
    rows = (([replica_headline(seed)] if "replica" in parts else []) + (linreg(seed) if "linreg" in parts else [])
            + ([relu_grid(seed)] if "relugrid" in parts else []))
    for r in rows:
        print(json.dumps({"jitter": value, **r, "load": round(load, 2), "devices": jax.local_device_count()}),
              flush=True)


# ----------------------------------------------------------------------------- the table
def _mean_se(xs):
    import numpy as np
    xs = np.asarray(xs, float)
    return xs.mean(), (xs.std(ddof=1) / np.sqrt(len(xs)) if len(xs) > 1 else float("nan"))


def table(path: str) -> str:
    import collections
    import numpy as np
    rows = collections.defaultdict(list)
    for line in open(path):
        r = json.loads(line)
        rows[(r["part"], r["jitter"])].append(r)
    out = ["### Replica exchange, headline config (n = 1e3, prior starts, 4 chains, 1000 + 1000)", "",
           "| jitter | seeds | K | R-hat L_n (max) | R-hat inv. (max) | ESS L_n | ESS min inv. | "
           "ESS L_n / 1e5 grads | ESS min inv. / 1e5 grads | ESS L_n / s | round trips / chain | divergences |",
           "|" + " --- |" * 12]
    eff = {}
    for j in VALUES:
        rs = rows.get(("replica_headline", j), [])
        if not rs:
            continue
        e_l = [1e5 * r["ess_L_n"] / r["grads_draws"] for r in rs]
        e_i = [1e5 * r["ess_min_invariant"] / r["grads_draws"] for r in rs]
        eff[j] = (_mean_se(e_l), _mean_se(e_i))
        m = lambda key: _mean_se([r[key] for r in rs])   # noqa: E731
        out.append(f"| {j} | {len(rs)} | {'/'.join(str(r['num_temperatures']) for r in rs)} | "
                   f"{max(r['rhat_L_n'] for r in rs):.4f} | {max(r['rhat_max_invariant'] for r in rs):.4f} | "
                   f"{m('ess_L_n')[0]:.0f} ± {m('ess_L_n')[1]:.0f} | {m('ess_min_invariant')[0]:.0f} ± "
                   f"{m('ess_min_invariant')[1]:.0f} | {eff[j][0][0]:.2f} ± {eff[j][0][1]:.2f} | "
                   f"{eff[j][1][0]:.2f} ± {eff[j][1][1]:.2f} | "
                   f"{np.mean([r['ess_L_n'] / r['wall_s'] for r in rs]):.1f} | "
                   f"{np.mean([np.mean(r['round_trips']) for r in rs]):.1f} | "
                   f"{np.mean([r['divergences'] for r in rs]):.0f} |")
    if len(eff) == 2:
        by_seed = {(r["jitter"], r["seed"]): r for j in VALUES for r in rows[("replica_headline", j)]}
        seeds = sorted(s for (j, s) in by_seed if j == 0.2 and (0.5, s) in by_seed)
        for i, (name, key) in enumerate((("L_n", "ess_L_n"), ("min invariant", "ess_min_invariant"))):
            (a, sa), (b, sb) = eff[0.2][i], eff[0.5][i]
            # paired by seed (same data, same starts): log of the ratio of ESS per gradient
            d = [np.log((by_seed[(0.2, s)][key] / by_seed[(0.2, s)]["grads_draws"])
                        / (by_seed[(0.5, s)][key] / by_seed[(0.5, s)]["grads_draws"])) for s in seeds]
            md, sd = _mean_se(d)
            out.append(f"\nESS per gradient, {name}: 0.2 - 0.5 = {a - b:+.2f} ± {np.hypot(sa, sb):.2f} per 1e5 "
                       f"gradients (z {(a - b) / np.hypot(sa, sb):+.2f}); paired by seed ({len(d)} pairs): ratio "
                       f"0.2/0.5 = {np.exp(md):.2f} (log ratio {md:+.3f} ± {sd:.3f})")
    out += ["", "### Free energy, linear regression (d = 5, n = 1e3, closed-form F_n)", "",
            "| sampler | estimate | jitter | seeds | error (mean ± se over seeds) | sd of errors | reported se (rms) | "
            "sd / se | max abs(error / se) | se^2 x grads (rms; lower is better) | ESS n L_n per 1e3 grads (mean over seeds ± se) |",
            "|" + " --- |" * 11]
    for part, ests in (("linreg_grid_2steps", ("ti", "ss")), ("linreg_grid_4steps", ("ti", "ss")),
                       ("linreg_replica", ("ti", "ss")), ("linreg_smc", ("smc",))):
        for est in ests:
            for j in VALUES:
                rs = rows.get((part, j), [])
                if not rs:
                    continue
                err = [r[est] - r["exact"] for r in rs]
                se = [r[f"{est}_se"] for r in rs]
                me, se_me = _mean_se(err)
                z = np.array(err) / np.array(se)
                rms = np.sqrt(np.mean(np.square(se)))
                cost = np.sqrt(np.mean([s ** 2 * r["grads"] for s, r in zip(se, rs)]))
                ess = ""
                if "ess_nL_mean" in rs[0]:   # per beta, per gradient of one beta's lanes
                    m, s_ = _mean_se([1e3 * r["ess_nL_mean"] * 24 / r["grads_draws"] for r in rs])
                    ess = f"{m:.1f} ± {s_:.1f}"
                elif "ess_nL_beta1" in rs[0]:   # beta = 1 level, per gradient of the whole ladder
                    m, s_ = _mean_se([1e3 * r["ess_nL_beta1"] / r["grads_draws"] for r in rs])
                    ess = f"{m:.2f} ± {s_:.2f} (beta = 1)"
                out.append(f"| {part.replace('linreg_', '')} | {est} | {j} | {len(rs)} | {me:+.3f} ± {se_me:.3f} | "
                           f"{np.std(err, ddof=1):.3f} | {rms:.3f} | {np.std(err, ddof=1) / rms:.2f} | "
                           f"{np.abs(z).max():.1f} | {cost:.1f} | {ess} |")
    out += ["", "### Tempered grid, linear regression: E^beta[n L_n] at each of the 24 betas against its closed form", "",
            "Reported ESS: ArviZ bulk ESS of n L_n (8 chains x 600 draws). z = (mean - exact) / MCSE, pooled over "
            "betas and seeds; actual ESS = reported / mean(z^2): what the errors against the exact means say.", "",
            "| leapfrog steps | jitter | seeds | reported ESS per beta (mean over betas) | actual ESS (reported / "
            "mean z^2) | actual / reported | rms(z) | max abs(z) | share abs(z) > 3 |", "|" + " --- |" * 9]
    for steps in (2, 4):
        for j in VALUES:
            rs = [r for r in rows.get((f"linreg_grid_{steps}steps", j), []) if "err_nL" in r]
            if len(rs) < 2:
                continue
            err = np.array([r["err_nL"] for r in rs])        # (seeds, betas)
            mcse = np.array([r["mcse_nL"] for r in rs])
            ess = np.array([r["ess_nL"] for r in rs])
            z = err / mcse
            actual = ess.mean() / np.mean(z ** 2)            # the reported ESS corrected by the z's variance
            out.append(f"| {steps} | {j} | {len(rs)} | {ess.mean():.0f} | {actual:.0f} | "
                       f"{actual / ess.mean():.2f} | {np.sqrt(np.mean(z ** 2)):.2f} | {np.abs(z).max():.1f} | "
                       f"{np.mean(np.abs(z) > 3):.3f} |")
    out += ["", "### Tempered grid, headline ReLU posterior (relu2_truth1_free_energy.yaml: 16 betas x 4 chains x "
            "400 + 800, 4 leapfrog steps, truth starts)", "",
            "| jitter | seeds | TI (mean ± se over seeds) | TI se (rms, MC part) | SS (mean ± se over seeds) | SS se (rms) "
            "| ESS n L_n per beta (mean) | ESS per 1e3 grads per beta | max R-hat(n L_n) | divergences |",
            "|" + " --- |" * 10]
    for j in VALUES:
        rs = rows.get(("relu_grid_4steps", j), [])
        if len(rs) < 2:
            continue
        ti, ss = _mean_se([r["ti"] for r in rs]), _mean_se([r["ss"] for r in rs])
        e = _mean_se([1e3 * r["ess_nL_mean"] * 16 / r["grads_draws"] for r in rs])
        out.append(f"| {j} | {len(rs)} | {ti[0]:.3f} ± {ti[1]:.3f} | "
                   f"{np.sqrt(np.mean([r['ti_mc_se'] ** 2 for r in rs])):.3f} | {ss[0]:.3f} ± {ss[1]:.3f} | "
                   f"{np.sqrt(np.mean([r['ss_se'] ** 2 for r in rs])):.3f} | "
                   f"{np.mean([r['ess_nL_mean'] for r in rs]):.0f} | {e[0]:.1f} ± {e[1]:.1f} | "
                   f"{max(r['rhat_nL_max'] for r in rs):.3f} | {np.mean([r['divergences'] for r in rs]):.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--table")
    ap.add_argument("--child", type=float)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parts", nargs="+", default=["replica", "linreg"])
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.table:
        print(table(a.table))
    elif a.child is not None:
        child(a.child, a.seeds[0], a.parts)
    else:
        for i, seed in enumerate(a.seeds):
            for j in (VALUES if i % 2 == 0 else VALUES[::-1]):
                out = subprocess.run([sys.executable, __file__, "--child", str(j), "--seeds", str(seed),
                                      "--parts", *a.parts], check=True, capture_output=True, text=True).stdout
                sys.stdout.write(out)
                sys.stdout.flush()
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(out)
