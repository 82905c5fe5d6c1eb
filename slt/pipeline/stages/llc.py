"""Stage ``llc``: the local learning coefficient at ``llc.at`` (truth | trained | params).
(``slt calibrate``, the step-size x nbeta grid, is a command: :mod:`slt.cli.calibrate`.)"""
from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from slt.estimators import learning_coefficient as lc
from slt.estimators import lambda_hat as lambda_hat_mod
from slt.estimators import restricted
from slt.pipeline.runs import Context, StageOutput
from slt.pipeline.stages._llc_common import exact_lambda, llc_settings as _settings  # noqa: F401


def wants_refine(cfg) -> bool:
    """``llc.refine`` with its default: on for ``at: truth``, off otherwise."""
    return cfg.at == "truth" if cfg.refine is None else bool(cfg.refine)


def refine(ctx: Context, cfg, w_start, info: dict):
    """Minimise L_n from ``w_start`` plus a 1e-3 x prior_std jitter (Adam + L-BFGS,
    ``llc.train``): the minimiser next to the point. An embedded truth is often a saddle with
    zero gradient (zero hidden units), where the optimiser would otherwise stay. The LLC at the
    truth itself is biased low by about ``nbeta (L_n(w0) - L_n(w_hat))``; summary.json keeps
    both L_n values (``L_n_start``, ``L_n_w_star``)."""
    p, tc = ctx.problem, cfg.train
    w_hat, loss, grad_norm = lc.refine_point(p, w_start, steps=tc.steps,
                                             learning_rate=min(tc.learning_rate, 1e-3),
                                             key=ctx.key("llc-refine"))
    if not np.isfinite(loss) or loss > info["L_n_w_star"]:
        ctx.warn("llc.refine: the optimiser did not lower L_n; using the unrefined point")
        return w_start, info
    if grad_norm > 1e-3:
        ctx.warn(f"llc.refine: gradient norm {grad_norm:.2e} > 1e-3 after refinement")
    return w_hat, {**info, "refined": True, "L_n_start": info["L_n_w_star"],
                   "L_n_w_star": loss, "refine_grad_norm": grad_norm,
                   "refine_moved": float(jnp.linalg.norm(w_hat - w_start))}


def not_identifiable_message(lam, n: int) -> str:
    """The warning for a lambda_hat whose error bar exceeds half its value (issue 18, item 5)."""
    return (f"llc: lambda_hat = {lam.value:.3g} +- {lam.stderr:.2g}: the error bar exceeds half the "
            f"value, so at n = {n} the data cannot separate lambda from finite-n effects (spread "
            f"between {len(lam.per_subset)} data subsets of {lam.subset_n} rows {lam.data_sd:.2g}, "
            f"finite-n extrapolation {lam.extrapolation:+.2g}); more data are needed before "
            "lambda_hat can be read as lambda (the LLC itself is still the finite-n quantity)")


def check(ctx: Context) -> None:
    """Before any sampling or run directory: influence and susceptibility rows against the
    data's n (a data file's n is known only now), and the BIF's memory (ConfigError)."""
    from slt.pipeline.config import influence_check

    cfg = ctx.config.llc
    if cfg is not None and (cfg.influence or cfg.susceptibility is not None):
        influence_check(cfg, ctx.problem.n, ctx.problem.d)


def draws_estimates(ctx: Context, cfg, res) -> tuple[dict, dict, dict, dict]:
    """``llc.influence`` and ``llc.susceptibility`` from the LLC's kept draws: (summary keys,
    figures, files, timing). The estimators are in :mod:`slt.estimators.influence`."""
    from slt.estimators import influence

    p, summary, figures, files, timing = ctx.problem, {}, {}, {}, {}
    if res.positions is None or res.mean is None:   # withheld (diverged): nothing to estimate from
        return summary, figures, files, timing
    draws = {"num_draws": int(res.positions.shape[0] * res.positions.shape[1]),
             "thin": cfg.influence_thin}
    if cfg.influence:
        b = influence.bif(p, res, cfg.influence_rows)
        if not b.converged:
            ctx.warn(f"llc.influence: not converged (LLC converged: {res.converged}; ||se||_F / "
                     f"||BIF||_F = {b.rel_se:.2g}, goal <= {influence.REL_SE_TOL}); run more draws")
        pairs = influence.top_pairs(b, 10)
        diag = b.bif[np.arange(len(b.rows)), b.rows]
        summary["influence"] = {
            "rows": "all" if cfg.influence_rows is None else cfg.influence_rows,
            "num_rows": len(b.rows), "n": p.n, "top_pairs": pairs,
            "self_influence_mean": float(diag.mean()), "rel_se": b.rel_se, "converged": b.converged,
            "num_batches": b.num_batches, **draws, "seconds": b.seconds,
            "se_method": "batch means: every chain cut into segments, se = sd / sqrt(batches)"}
        timing["influence_s"] = b.seconds

        def write(path):
            with open(path, "wb") as fh:
                np.savez(fh, bif=b.bif, bif_se=b.se, rows=b.rows, nbeta=res.nbeta, gamma=res.gamma,
                         num_draws=b.num_draws, num_batches=b.num_batches)
        files["influence.npz"] = write
        if ctx.config.output.figures:
            from slt.plots.influence import influence_heatmap

            figures["influence"] = influence_heatmap(b.bif, b.se, b.rows,
                                                     title=f"{ctx.config.name}: BIF (n={p.n})")
    if cfg.susceptibility is not None:
        sc = cfg.susceptibility
        phi = influence.loss_observable(p, rows=sc.rows) if sc.observable == "rows" else None
        chi = influence.susceptibility(p, res, phi, rows=sc.rows)
        if not chi.converged:
            ctx.warn(f"llc.susceptibility: not converged (LLC converged: {res.converged}; halves "
                     f"{chi.first:.4g} and {chi.second:.4g}, se {chi.se:.2g}); run more draws")
        summary["susceptibility"] = {
            "rows": sc.rows, "observable": "loss on rows" if sc.observable == "rows" else "L_n",
            "perturbation": "L' = loss on rows", "chi": chi.value, "se": chi.se,
            "first_half": chi.first, "second_half": chi.second, "converged": chi.converged,
            "num_batches": chi.num_batches, **draws, "seconds": chi.seconds}
        timing["susceptibility_s"] = chi.seconds
    return summary, figures, files, timing


def run(ctx: Context) -> StageOutput:
    cfg, p = ctx.config.llc, ctx.problem
    if cfg.checkpoints is not None:   # the LLC along training
        from slt.pipeline.stages import llc_trajectory

        return llc_trajectory.run(ctx)
    from slt import progress
    from slt.pipeline.stages.point import resolve_point

    w_star, info = resolve_point(ctx, cfg)
    if wants_refine(cfg):
        with progress.stage("llc: refine"):
            w_star, info = refine(ctx, cfg, w_star, info)
    nbeta = cfg.nbeta if cfg.nbeta is not None else lc.default_nbeta(p.n)
    settings = _settings(cfg, p.n)
    other = _refined_problem(ctx, cfg)            # bad llc.weights / llc.data: exit 2 before sampling
    keep = cfg.influence_thin if cfg.influence or cfg.susceptibility is not None else False
    # lambda_hat's subsets first (plain LLC). Their error bar does NOT loosen the full run's trend
    # test (slt.estimators.lambda_hat.trend_floor is opt-in in Python): a drift below a loosened tolerance
    # would be a converged LLC whose MCSE does not cover it
    subsets = None
    if cfg.lambda_hat and settings["batch_size"] is None and cfg.weights is None and other is None:
        with progress.stage(f"llc: lambda_hat ({cfg.num_subsets} data subsets)"):
            subsets = lambda_hat_mod.subset_llcs(
                ctx.key("llc-lambda-hat"), p, w_star, nbeta=nbeta, num_subsets=cfg.num_subsets,
                nbeta_rule="n/log n" if cfg.nbeta is None else "given",
                **{k: v for k, v in settings.items() if k != "batch_size"})
    with progress.bar(total=None, desc="llc draws per chain") as bar:
        def tick(done, cap):
            bar.total = cap
            bar.n = done
            bar.refresh()

        refined = None
        if other is not None:        # the same draws give the LLC and the refined LLC
            out = restricted.refined_llc(ctx.key("llc"), p, w_star, other, weights=cfg.weights, nbeta=nbeta,
                                         progress=tick, **{k: v for k, v in settings.items() if k != "batch_size"})
            res, refined = out.llc, out.refined
        elif cfg.weights is not None:
            res = restricted.restricted_llc(ctx.key("llc"), p, w_star, cfg.weights, nbeta=nbeta, progress=tick,
                                            **settings)
        else:   # influence / susceptibility keep the draws (config: not with llc.weights or llc.data)
            res = lc.llc_for_problem(ctx.key("llc"), p, w_star, nbeta=nbeta, progress=tick,
                                     **settings, **({"keep_positions": keep} if keep else {}))
    for w in res.warnings:
        ctx.warn(w)
    stderr = lc.stderr(res)
    per_layer = None
    if cfg.per_layer:
        with progress.stage("llc: per-layer restricted LLCs (one program)"):
            per_layer = restricted.per_layer_llc(ctx.key("llc-per-layer"), p, w_star, nbeta=nbeta, **settings)
    lam = None
    if subsets is not None:
        lam = lambda_hat_mod.combine(res, subsets)
    elif cfg.lambda_hat and res.mean is not None and settings["batch_size"] is None and cfg.weights is None:
        with progress.stage(f"llc: lambda_hat ({cfg.num_subsets} data subsets)"):
            lam = lambda_hat_mod.lambda_hat(ctx.key("llc-lambda-hat"), p, w_star, res, num_subsets=cfg.num_subsets,
                                nbeta_rule="n/log n" if cfg.nbeta is None else "given",
                                **{k: v for k, v in settings.items() if k != "batch_size"})
    if lam is not None and not lam.identifiable:
        ctx.warn(not_identifiable_message(lam, p.n))
    trend = res.trend._asdict() if res.trend is not None else None
    summary = {"llc": {
        "mean": res.mean, "stderr": stderr, "std": res.std, "mcse": res.mcse,
        "control_variates": res.raw_mean is not None, "raw_mean": res.raw_mean, "raw_mcse": res.raw_mcse,
        "converged": res.converged, "trend_test": trend,
        "per_chain": [float(v) for v in res.per_chain] if not res.diverged else None,
        **info,
        "lambda_hat": lam.value if lam else None,
        "lambda_hat_stderr": lam.stderr if lam else None,
        "lambda_hat_identifiable": lam.identifiable if lam else None,
        "lambda_hat_data_sd": lam.data_sd if lam else None,
        "lambda_hat_extrapolation": lam.extrapolation if lam else None,
        "lambda_hat_extrapolation_se": lam.extrapolation_se if lam else None,
        "lambda_hat_per_subset": list(lam.per_subset) if lam else None,
        "lambda_hat_subset_n": lam.subset_n if lam else None,
        **(exact_lambda(ctx) if cfg.weights is None else {}),
        "weights": cfg.weights,
        **({"per_layer": _per_layer_rows(ctx, per_layer)} if per_layer is not None else {}),
        **({"refined": _refined_summary(ctx, cfg, refined, other)} if refined is not None else {}),
        "sampler": res.sampler, "nbeta": res.nbeta,
        "nbeta_rule": "n/log n" if cfg.nbeta is None else "given",
        "gamma": res.gamma, "step_size": [float(s) for s in res.step_size],
        "trajectory_length": res.trajectory_length, "steps_per_draw": res.steps_per_draw,
        "num_chains": res.num_chains, "num_draws": res.num_draws, "num_burnin": res.num_burnin,
        "num_draws_rule": "auto" if cfg.num_draws == "auto" else "given",
        "num_adapt": res.num_adapt, "batch_size": res.batch_size,
        "acceptance": float(np.nanmean(res.acceptance)) if np.isfinite(res.acceptance).any() else None,
        "acceptance_per_chain": [float(a) for a in res.acceptance],
        "acceptance_kind": "mh_estimate" if res.sampler == "sgld" else "mh",
        "rhat_loss": res.rhat, "ess_loss": res.ess, "diverged": res.diverged,
        "draws_per_s": res.num_chains * (res.num_draws + res.num_burnin + res.num_adapt) / res.sampling_s,
    }}
    with progress.stage("llc: influence / susceptibility from the draws"):
        try:
            extra, figures, files, timing = draws_estimates(ctx, cfg, res)
        except ValueError as exc:   # e.g. too few kept draws: withheld, the LLC still reported
            ctx.warn(f"llc.influence / susceptibility withheld: {exc}")
            extra, figures, files, timing = {}, {}, {}, {}
    summary["llc"].update(extra)
    if ctx.config.output.figures:
        from slt.plots import llc as plots

        figures["llc_traces"] = plots.llc_traces(
            res.loss_trace, res.running_mean, res.loss_at_w_star, llc=res.mean,
            title=f"{ctx.config.name}: LLC at {info['w_star']}{' (refined)' if info.get('refined') else ''} "
                  f"({res.sampler}, nbeta={res.nbeta:.4g})")
        if per_layer is not None:
            from slt.plots import restricted as rplots

            rows = summary["llc"]["per_layer"]
            figures["llc_per_layer"] = rplots.per_layer(
                ["+".join(r["weights"]) for r in rows], [r["mean"] for r in rows], [r["stderr"] for r in rows],
                full=res.mean, full_stderr=stderr,
                full_label="all weights" if cfg.weights is None else "+".join(cfg.weights) + " (llc.weights)",
                title=f"{ctx.config.name}: restricted LLC per layer at {info['w_star']}")

    def write_traces(path):
        with open(path, "wb") as fh:
            np.savez(fh, loss_trace=res.loss_trace, running_mean=res.running_mean,
                     acceptance=res.acceptance, step_size=res.step_size, w_star=np.asarray(w_star))

    return StageOutput(summary=summary, figures=figures, files={"llc_traces.npz": write_traces, **files},
                       timing={"llc_sampling_s": res.sampling_s, **timing})


# ----------------------------------------------------------------------------- restricted / refined
def _refined_problem(ctx: Context, cfg):
    """Check ``llc.weights`` against the model (a Python model's names are known only here)
    and build the problem of ``llc.data`` (None without it); ConfigError naming the key."""
    from slt.pipeline.config import ConfigError
    from slt.posterior import Problem

    p = ctx.problem
    for names in ([cfg.weights] if cfg.weights is not None else []):
        try:
            restricted.weight_mask(p.model, names)
        except ValueError as exc:
            raise ConfigError("llc.weights", str(exc)) from None
    if cfg.data is None:
        return None
    if cfg.data.rows is not None:
        start, stop = cfg.data.rows
        if stop > p.n:
            raise ConfigError("llc.data.rows", f"stop {stop} exceeds the n = {p.n} training rows")
        return p.with_data(p.x[start:stop], p.y[start:stop])
    from slt import data as data_mod

    try:
        ds = data_mod.load(Path(ctx.config.base_dir) / cfg.data.file, p.model.d_in, p.model.d_out,
                           likelihood=p.likelihood)
        return Problem.make(p.model, ds, float(p.noise_std), float(p.prior_std), p.likelihood)
    except (data_mod.DataFileError, ValueError) as exc:
        raise ConfigError("llc.data.file", str(exc)) from None


def _stats(res) -> dict:
    return {"mean": res.mean, "stderr": restricted.stderr(res), "mcse": res.mcse, "std": res.std,
            "converged": res.converged, "rhat_loss": res.rhat, "ess_loss": res.ess,
            "num_draws": res.num_draws, "diverged": res.diverged}


def _per_layer_rows(ctx: Context, per_layer) -> list:
    rows = []
    for names, r in zip(per_layer.weights, per_layer.results):
        for w in r.warnings:
            ctx.warn(w.replace("llc:", f"llc.per_layer {'+'.join(names)}:", 1))
        rows.append({"weights": names, **_stats(r), "sampling_s": r.sampling_s})
    return rows


def _refined_summary(ctx: Context, cfg, refined, other) -> dict:
    for w in refined.warnings:
        ctx.warn(w)
    return {"data": {"file": cfg.data.file, "rows": cfg.data.rows, "n": other.n}, **_stats(refined),
            "L_at_w_star": refined.loss_at_w_star}
