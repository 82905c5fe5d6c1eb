"""Stage ``free_energy``: all temperatures of one n in one compiled program, then WBIC, TI,
stepping stone, the beta-slope lambda, and (linear regression) the exact answers; with
``smc`` in ``free_energy.methods`` also adaptive tempered SMC (:mod:`slt.samplers.smc`, independent
runs from the prior) and the agreement check of TI, stepping stone and SMC.

Temperatures sampled together (one :func:`slt.samplers.tempered.sample_tempered` call):
the TI grid ``beta_k = (k/(K-1))^p`` (``free_energy.num_betas``, ``grid_power``), the lambda
window ``(1/log n)(1 ± 1/sqrt(2 log n))`` (``lambda.num_betas``), and ``beta* = 1/log n``.
"""
from __future__ import annotations

import math
import time

import jax.numpy as jnp
import numpy as np

from slt import progress
from slt.samplers import diagnostics, smc, tempered
from slt.estimators import free_energy as fe
from slt.pipeline.config import FreeEnergyConfig, LambdaConfig
from slt.pipeline.runs import Context, StageOutput
from slt.pipeline.stages.sampling import initial_positions


def temperatures(n: int, fcfg: FreeEnergyConfig, lcfg: LambdaConfig):
    """(all betas sorted, indices of the TI grid, of the lambda window, of beta*)."""
    grid = fe.ti_grid(fcfg.num_betas, fcfg.grid_power)
    window = fe.lambda_window(n, lcfg.num_betas, lcfg.half_width)
    star = 1.0 / math.log(n)
    allb = np.unique(np.concatenate([grid, window, [star]]))

    def where(values):
        return np.array([int(np.argmin(np.abs(allb - v))) for v in values])

    return allb, where(grid), where(window), int(where([star])[0])


def run(ctx: Context) -> StageOutput:
    cfg = ctx.config
    fcfg = cfg.free_energy or FreeEnergyConfig()
    lcfg = cfg.lambda_ or LambdaConfig()
    p = ctx.problem
    n = p.n
    if n < 3:
        ctx.warn("free_energy: needs n >= 3 (beta* = 1/log n); estimates withheld")
        return StageOutput(summary={"free_energy": None, "lambda": None})
    if fcfg.sampler == "replica":
        return _run_replica(ctx, fcfg, lcfg)
    betas, i_grid, i_win, i_star = temperatures(n, fcfg, lcfg)
    if fcfg.init == "screen":  # the main basin at beta = 1, shared by every temperature's chains
        init = jnp.broadcast_to(_starts(ctx, fcfg, fcfg.num_chains), (len(betas), fcfg.num_chains, p.d))
    else:
        init = _starts(ctx, fcfg, len(betas) * fcfg.num_chains).reshape(len(betas), fcfg.num_chains, p.d)
    t0 = time.perf_counter()
    progress.note(f"{len(betas)} betas x {fcfg.num_chains} chains x "
                  f"{fcfg.num_warmup}+{fcfg.num_samples} HMC steps, one compiled program")
    res = tempered.sample_tempered(ctx.key("free_energy"), p, init, betas, num_warmup=fcfg.num_warmup,
                                   num_samples=fcfg.num_samples, num_steps=fcfg.num_steps,
                                   target_accept=fcfg.target_accept)
    sampling_s = time.perf_counter() - t0
    timing = {"free_energy_sampling_s": sampling_s}
    smc_summary = _smc(ctx, fcfg, timing) if "smc" in fcfg.methods else {"smc": None, "smc_stderr": None}
    nL = n * np.asarray(res.loss, np.float64)
    nL_truth = None if ctx.truth_loss is None else n * ctx.truth_loss
    sig, s = float(p.noise_std), float(p.prior_std)
    exact_ok = fe.has_closed_form(p)
    x_np, y_np = np.asarray(p.x, np.float64), np.asarray(p.y, np.float64)
    exact = fe.linear_gaussian_free_energy(x_np, y_np, sig, s) if exact_ok else None
    exact_E = fe.linear_gaussian_E_nL_n(x_np, y_np, betas, sig, s) if exact_ok else None

    from slt.samplers import health

    B, C = nL.shape[:2]
    sick, sick_msgs = health.chain_problems(
        "free_energy", np.asarray(res.loss).reshape(B * C, -1), step_size=res.step_size.reshape(B * C),
        accept=res.accept_prob.reshape(B * C, -1), labels=[f"chain {c} at beta {b:.3g}" for b in betas for c in range(C)],
        min_step=health.step_floor(res.loss.dtype, float(p.prior_std)))
    if sick.any():
        for m in sick_msgs:
            ctx.warn(m + "; free energy and lambda withheld")
        return StageOutput(summary={"free_energy": {"exact": exact, "betas": betas, "E_nL_n": None,
                                                    "nL_n_truth": nL_truth, **smc_summary,
                                                    "agree": None, "agreement": []},
                                    "lambda": None}, timing=timing)
    means = fe.beta_means(betas, nL)
    rhat = diagnostics.rhat(np.transpose(nL, (1, 2, 0))) if fcfg.num_chains >= 2 else np.full(len(betas), np.nan)
    _diagnose(ctx, res, betas, rhat)

    methods = set(fcfg.methods)
    ti = fe.thermodynamic_integration(betas[i_grid], means.mean[i_grid], means.mcse[i_grid], fcfg.grid_power)
    ss = fe.stepping_stone(betas[i_grid], nL[i_grid])
    wb = fe.wbic(n, nL[i_star])
    slope = fe.beta_slope(betas[i_win], means.mean[i_win], means.mcse[i_win])
    exact_slope = (fe.linear_gaussian_beta_slope(x_np, y_np, betas[i_win], sig, s)
                   if exact_ok else None)
    if ti.quadrature_error > ti.mc_stderr:
        ctx.warn(f"free_energy: TI quadrature error {ti.quadrature_error:.3g} exceeds its Monte Carlo error "
                 f"{ti.mc_stderr:.3g}; raise free_energy.num_betas")

    summary = {
        "free_energy": {
            "wbic": wb.wbic if "wbic" in methods else None,
            "wbic_stderr": wb.stderr if "wbic" in methods else None,
            "ti": ti.free_energy if "ti" in methods else None,
            "ti_stderr": ti.stderr if "ti" in methods else None,
            "ti_mc_stderr": ti.mc_stderr, "ti_quadrature_error": ti.quadrature_error,
            "stepping_stone": ss.free_energy if "stepping_stone" in methods else None,
            "stepping_stone_stderr": ss.stderr if "stepping_stone" in methods else None,
            **smc_summary,
            "exact": exact,
            "betas": betas, "E_nL_n": means.mean, "E_nL_n_mcse": means.mcse, "E_nL_n_exact": exact_E,
            "ess": means.ess, "rhat": rhat,
            "nL_n_truth": nL_truth,
            "grid": {"ti_betas": "(k/(K-1))^p", "num_betas": fcfg.num_betas, "power": fcfg.grid_power,
                     "ti_index": i_grid, "lambda_index": i_win, "wbic_index": i_star},
            "sampler": {"method": "hmc (fixed length, per-chain adapted step size and diagonal mass)",
                        "num_chains": fcfg.num_chains, "num_warmup": fcfg.num_warmup,
                        "num_samples": fcfg.num_samples, "num_steps": fcfg.num_steps,
                        "accept_prob": res.accept_prob.mean(axis=(1, 2)),
                        "step_size": res.step_size.mean(axis=1),
                        "divergences": int(res.diverging.sum())},
        },
        "lambda": {"beta_slope": slope.slope, "beta_slope_stderr": slope.stderr,
                   "beta_slope_chi2_dof": slope.chi2_dof, "betas": betas[i_win],
                   "exact_slope": exact_slope, "d_half": p.d / 2},
    }
    fsum = summary["free_energy"]
    fsum.update(agreement(fsum, ctx.warn))
    figures = {}
    if cfg.output.figures:
        from slt.plots import free_energy as plots

        figures["free_energy"] = plots.temperature_curve(
            betas, means.mean, means.mcse, i_grid=i_grid, i_window=i_win, power=fcfg.grid_power,
            nL_truth=nL_truth, exact=exact_E, slope=slope, ti=ti, exact_free_energy=exact,
            title=f"{cfg.name}: n={n}")
    return StageOutput(summary=summary, figures=figures, timing=timing)


def _starts(ctx: Context, fcfg: FreeEnergyConfig, count: int):
    """(count, d) chain starts for ``free_energy.init`` (screen, prior or truth)."""
    how = "prior" if fcfg.init == "truth" and ctx.truth_w is None else fcfg.init
    if fcfg.init == "truth" and ctx.truth_w is None:
        ctx.warn("free_energy.init: the truth does not embed into the model; chains start from the prior")
    return initial_positions(ctx, count, how, "free_energy/init")[0]


def _run_replica(ctx: Context, fcfg: FreeEnergyConfig, lcfg: LambdaConfig) -> StageOutput:
    """``free_energy.sampler: replica``: TI and stepping stone from replica-exchange ladders
    (:mod:`slt.samplers.replica`, :mod:`slt.estimators.replica_free_energy`); every chain is one ladder of
    ``num_betas`` levels from beta = 1 to beta = 0, adapted in warmup to equal swap rates,
    which places the levels where the energy distribution changes fastest. WBIC and the
    beta-slope lambda need their own betas: a short fixed-temperature run over the lambda window
    and ``1/log n``, started from the ladders' last beta = 1 draws (mixed across modes)."""
    from types import SimpleNamespace

    from slt.samplers import replica
    from slt.estimators import replica_free_energy as rfe

    cfg, p, n = ctx.config, ctx.problem, ctx.problem.n
    timing: dict = {}
    init = _starts(ctx, fcfg, fcfg.num_chains)
    progress.note(f"replica exchange: {fcfg.num_chains} ladders x {fcfg.num_betas} temperatures x "
                  f"{fcfg.num_warmup}+{fcfg.num_samples} HMC steps")
    t0 = time.perf_counter()
    res = replica.sample_problem(ctx.key("free_energy/replica"), p, init, num_temperatures=fcfg.num_betas,
                                 beta_min=0.0, num_warmup=fcfg.num_warmup, num_samples=fcfg.num_samples,
                                 num_steps=fcfg.replica_num_steps, target_accept=fcfg.target_accept)
    good = replica.valid_chains(res)
    if len(good) < res.valid.size:
        ctx.warn(f"free_energy: replica chain(s) {[int(c) for c in np.flatnonzero(~res.valid)]} produced a "
                 "non-finite L_n; left out of every estimate")
    from slt.samplers import health

    if len(good):   # the shared health checks on the finite chains (every level's L_n, step sizes)
        ladder_trace = np.transpose(np.asarray(res.loss_ladder)[good], (0, 2, 1))   # (chains, draws, K)
        sick, sick_msgs = health.chain_problems(
            "free_energy (replica)", ladder_trace, step_size=res.step_size[good], accept=res.accept_prob[good],
            min_step=health.step_floor(res.loss.dtype, float(p.prior_std)), labels=[f"chain {c}" for c in good])
        for m in sick_msgs:
            ctx.warn(m + "; left out of every estimate")
        good = good[~sick]
    never = [int(c) for c in good if res.round_trips[c] == 0]
    if never:
        ctx.warn(f"free_energy: replica chain(s) {never} never made a round trip between beta = 1 and 0; "
                 "the ladder may not connect the modes (more num_betas or num_warmup)")
    star = 1.0 / math.log(n)
    window = fe.lambda_window(n, lcfg.num_betas, lcfg.half_width)
    wb_betas = np.unique(np.concatenate([window, [star]]))
    i_win = np.array([int(np.argmin(np.abs(wb_betas - v))) for v in window])
    i_star = int(np.argmin(np.abs(wb_betas - star)))
    smc_summary = _smc(ctx, fcfg, timing) if "smc" in fcfg.methods else {"smc": None, "smc_stderr": None}
    if not len(good):
        ctx.warn("free_energy: no replica chain stayed finite; free energy and lambda withheld")
        return StageOutput(summary={"free_energy": {"ti": None, "stepping_stone": None, **smc_summary,
                                                    "agree": None, "agreement": []}, "lambda": None},
                           timing=timing)
    r = rfe.free_energy(res, n)
    last = jnp.asarray(res.positions[good, -1])                      # (good chains, d)
    starts = jnp.broadcast_to(last, (len(wb_betas),) + last.shape)
    tw = tempered.sample_tempered(ctx.key("free_energy/window"), p, starts, wb_betas,
                                  num_warmup=fcfg.num_warmup, num_samples=fcfg.num_samples,
                                  num_steps=fcfg.num_steps, target_accept=fcfg.target_accept)
    timing["free_energy_sampling_s"] = time.perf_counter() - t0
    nL_w = n * np.asarray(tw.loss, np.float64)
    nL_truth = None if ctx.truth_loss is None else n * ctx.truth_loss
    exact_ok = fe.has_closed_form(p)
    sig, s = float(p.noise_std), float(p.prior_std)
    x_np, y_np = np.asarray(p.x, np.float64), np.asarray(p.y, np.float64)
    exact = fe.linear_gaussian_free_energy(x_np, y_np, sig, s) if exact_ok else None
    methods = set(fcfg.methods)
    finite_w = np.isfinite(nL_w).all()
    wm = fe.beta_means(wb_betas, nL_w) if finite_w else None
    wb = fe.wbic(n, nL_w[i_star]) if finite_w else None
    slope = fe.beta_slope(wb_betas[i_win], wm.mean[i_win], wm.mcse[i_win]) if finite_w else None
    # every chain's ladder, pooled (each level's mean from that chain's draws), for the summary and figure
    lb = res.betas[good].astype(float)                               # (chains, K) descending
    ladder = n * res.loss_ladder[good].astype(np.float64)            # (chains, K, draws)
    lm = ladder.mean(-1)                                             # (chains, K)
    order = np.argsort(lb.ravel(), kind="stable")
    ladder_betas, ladder_means = lb.ravel()[order], lm.ravel()[order]
    per_level = np.stack([fe.beta_means(lb[c, ::-1], ladder[c, ::-1, None, :]).mcse[::-1]
                          for c in range(len(good))])
    ladder_mcse = per_level.ravel()[order]
    # convergence: the ladders' beta = 1 levels agree (R-hat of n L_n) and every chain crossed the ladder
    rhat1 = float(diagnostics.rhat(ladder[:, 0, :, None])[0]) if len(good) >= 2 else float("nan")
    if rhat1 > 1.05:
        ctx.warn(f"free_energy: R-hat of n L_n at beta = 1 across the ladders is {rhat1:.3f} > 1.05: the "
                 "chains disagree; F_n may be off by more than its standard error")
    converged = bool(len(good) >= 2 and rhat1 <= 1.05 and not never)
    summary = {
        "free_energy": {
            "wbic": wb.wbic if ("wbic" in methods and wb) else None,
            "wbic_stderr": wb.stderr if ("wbic" in methods and wb) else None,
            "ti": r.ti if "ti" in methods else None,
            "ti_stderr": r.ti_stderr if "ti" in methods else None,
            "stepping_stone": r.stepping_stone if "stepping_stone" in methods else None,
            "stepping_stone_stderr": r.stepping_stone_stderr if "stepping_stone" in methods else None,
            "ti_per_chain": r.ti_per_chain, "stepping_stone_per_chain": r.stepping_stone_per_chain,
            **smc_summary, "exact": exact,
            "betas": ladder_betas, "E_nL_n": ladder_means, "E_nL_n_mcse": ladder_mcse,
            "nL_n_truth": nL_truth, "rhat_beta1": rhat1, "converged": converged,
            "sampler": {"method": "replica exchange (non-reversible swaps, ladder adapted to equal swap rates)",
                        "num_chains": fcfg.num_chains, "num_temperatures": fcfg.num_betas,
                        "num_warmup": fcfg.num_warmup, "num_samples": fcfg.num_samples,
                        "num_steps": fcfg.replica_num_steps, **replica.summary(res, 1)},
        },
        "lambda": None if slope is None else {
            "beta_slope": slope.slope, "beta_slope_stderr": slope.stderr, "beta_slope_chi2_dof": slope.chi2_dof,
            "betas": wb_betas[i_win], "d_half": p.d / 2,
            "exact_slope": (fe.linear_gaussian_beta_slope(x_np, y_np, wb_betas[i_win], sig, s) if exact_ok else None)},
    }
    if not finite_w:
        ctx.warn("free_energy: non-finite L_n in the lambda-window chains; WBIC and lambda withheld")
    fsum = summary["free_energy"]
    fsum.update(agreement(fsum, ctx.warn))
    figures = {}
    if cfg.output.figures and finite_w:
        from slt.plots import free_energy as plots

        allb = np.concatenate([ladder_betas, wb_betas])
        allm = np.concatenate([ladder_means, wm.mean])
        alls = np.concatenate([ladder_mcse, wm.mcse])
        exact_E = fe.linear_gaussian_E_nL_n(x_np, y_np, allb, sig, s) if exact_ok else None
        ti_obj = SimpleNamespace(free_energy=r.ti, stderr=r.ti_stderr)
        figures["free_energy"] = plots.temperature_curve(
            allb, allm, alls, i_grid=np.arange(len(ladder_betas)), i_window=len(ladder_betas) + i_win,
            power=fcfg.grid_power, nL_truth=nL_truth, exact=exact_E, slope=slope, ti=ti_obj,
            exact_free_energy=exact, title=f"{cfg.name}: n={n} (replica ladders)")
    return StageOutput(summary=summary, figures=figures, timing=timing)


def _smc(ctx: Context, fcfg: FreeEnergyConfig, timing: dict) -> dict:
    """``free_energy.smc`` (+ ``smc_stderr``, ``smc_detail``) from ``smc_runs`` independent runs."""
    progress.note(f"SMC: {fcfg.smc_runs} runs x {fcfg.smc_particles} particles, adaptive temperatures, "
                  f"{fcfg.smc_mcmc_steps} HMC transitions x {fcfg.smc_num_steps} leapfrog steps per temperature")
    t0 = time.perf_counter()
    r = smc.free_energy_problem(ctx.key("free_energy/smc"), ctx.problem, num_particles=fcfg.smc_particles,
                                num_runs=fcfg.smc_runs, target_ess=fcfg.smc_target_ess,
                                num_mcmc_steps=fcfg.smc_mcmc_steps, num_leapfrog=fcfg.smc_num_steps)
    timing["free_energy_smc_s"] = time.perf_counter() - t0
    bad = fcfg.smc_runs - r.num_good
    if bad:
        ctx.warn(f"free_energy: {bad} of {fcfg.smc_runs} SMC runs did not reach beta = 1 or gave a non-finite "
                 f"evidence; withheld" + ("" if r.num_good >= 2 else " (too few left: smc withheld)"))
    ok = r.num_good >= 2
    acc = np.nanmean(r.accept_prob) if np.isfinite(r.accept_prob).any() else float("nan")
    if np.isfinite(acc) and acc < 0.3:
        ctx.warn(f"free_energy: SMC mean HMC acceptance {acc:.2f} < 0.3; the mutation mixes poorly "
                 "(raise free_energy.smc_mcmc_steps or lower smc_num_steps)")
    return {"smc": r.free_energy if ok else None, "smc_stderr": r.stderr if ok else None,
            "smc_detail": {"per_run": r.per_run, "num_temperatures": r.num_steps, "reached_beta_1": r.reached,
                           "num_particles": fcfg.smc_particles, "num_runs": fcfg.smc_runs,
                           "mcmc_steps": fcfg.smc_mcmc_steps, "num_steps": fcfg.smc_num_steps,
                           "target_ess": fcfg.smc_target_ess, "mean_accept_prob": acc}}


AGREE_Z = 2.0


def agreement(fsum: dict, warn=None) -> dict:
    """Pairwise agreement of the computed TI, stepping-stone and SMC estimates: the gap in
    combined standard errors ``|F_a - F_b| / sqrt(se_a^2 + se_b^2)``; ``agree`` is False when
    any pair exceeds 2 (each named in a warning), None with fewer than two estimates. TI and
    stepping stone use the same draws (their errors are correlated, so their pair is a weak
    check); SMC is independent of both."""
    names = [k for k in ("ti", "stepping_stone", "smc")
             if fsum.get(k) is not None and fsum.get(f"{k}_stderr") is not None]
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            gap = float(fsum[a] - fsum[b])
            se = math.hypot(fsum[f"{a}_stderr"], fsum[f"{b}_stderr"])
            z = abs(gap) / se if se > 0 else (0.0 if gap == 0 else float("inf"))
            pairs.append({"a": a, "b": b, "gap": gap, "z": z})
            if z > AGREE_Z and warn is not None:
                warn(f"free_energy: {a} and {b} disagree: {fsum[a]:.3f} vs {fsum[b]:.3f}, gap {gap:+.3f} nats "
                     f"= {z:.1f} combined standard errors (> {AGREE_Z:g})")
    return {"agree": all(p["z"] <= AGREE_Z for p in pairs) if pairs else None, "agreement": pairs}


def _diagnose(ctx: Context, res, betas, rhat) -> None:
    div = int(res.diverging.sum())
    if div:
        ctx.warn(f"free_energy: {div} divergent HMC transitions ({100 * div / res.diverging.size:.2f}% of draws)")
    acc = res.accept_prob.mean(axis=(1, 2))
    low = betas[acc < 0.5]
    if len(low):
        ctx.warn(f"free_energy: mean acceptance < 0.5 at beta = {_fmt(low)}; step-size adaptation struggled")
    bad = betas[np.nan_to_num(rhat, nan=1.0) > 1.05]
    if len(bad):
        ctx.warn(f"free_energy: R-hat of n L_n > 1.05 at beta = {_fmt(bad)}: chains disagree "
                 "(several posterior phases?); E^beta[n L_n] there may be off by more than its MCSE")


def _fmt(values) -> str:
    values = list(values)
    s = ", ".join(f"{v:.3g}" for v in values[:6])
    return s + (f" (+{len(values) - 6} more)" if len(values) > 6 else "")
