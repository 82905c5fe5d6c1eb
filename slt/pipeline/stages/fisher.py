"""Stage ``fisher``: Fisher information spectrum, rank, nullity and the null directions
explained, at a point (``at: truth | trained | params``) or over posterior draws
(``at: posterior``)."""
from __future__ import annotations

import time

import jax
import numpy as np

from slt import data as data_mod
from slt.estimators import fisher as fisher_mod
from slt.plots import geometry as plots
from slt.pipeline.runs import Context, StageOutput


def _population_inputs(ctx: Context, num: int):
    x = ctx.config.data.x
    return data_mod.sample_inputs(ctx.key("fisher_population"), num, ctx.problem.model.d_in,
                                  dist=x.dist, low=x.low, high=x.high, std=x.std)


def _check_gap(ctx: Context, s: fisher_mod.Spectrum, where: str) -> None:
    if 0 < s.rank < s.eigenvalues.size and s.gap_at_tolerance < fisher_mod.MIN_TRUSTED_GAP:
        ctx.warn(f"fisher ({where}): the spectral gap at the rank tolerance is only "
                 f"{s.gap_at_tolerance:.1f}x: the numerical rank {s.rank} is ambiguous "
                 f"(largest gap {s.largest_gap:.1e} would give rank {s.largest_gap_index})")


def run(ctx: Context) -> StageOutput:
    cfg, p = ctx.config.fisher, ctx.problem
    spec, lik = p.model, p.likelihood
    noise = float(p.noise_std)
    t0 = time.perf_counter()
    figures, summary = {}, {}
    if cfg.at == "posterior":
        summary = _posterior(ctx, figures)
    else:
        from slt.posterior import problem_loss
        from slt.samplers import health
        from slt.pipeline.stages.point import resolve_point

        w, info = resolve_point(ctx, cfg)
        health.check_point("fisher", problem_loss, w, p, model=p.model)
        res = fisher_mod.fisher(spec, w, p.x, noise, cfg.rtol, likelihood=lik)
        _check_gap(ctx, res.spectrum, "empirical")
        summary = {**fisher_mod.summary_dict(res), "at": cfg.at, **info,
                   "w": np.asarray(w).tolist()}
        if res.explained is not None and res.explained.total != res.spectrum.nullity:
            ctx.warn("fisher: the explained null directions do not add up to the nullity")
        figures["fisher_spectrum"] = plots.fisher_spectrum(
            res.spectrum.eigenvalues, res.spectrum.tolerance, rank=res.spectrum.rank,
            gap=res.spectrum.gap_at_tolerance,
            title=f"Fisher spectrum at {cfg.at} (n={p.n}): rank {res.spectrum.rank} of {p.d}, "
                  f"gap {res.spectrum.gap_at_tolerance:.1e}")
        if cfg.population:
            xp = _population_inputs(ctx, cfg.population_n)
            pop = fisher_mod.fisher(spec, w, xp, noise, cfg.rtol, likelihood=lik)
            _check_gap(ctx, pop.spectrum, "population")
            summary["population"] = fisher_mod.summary_dict(pop)
    return StageOutput(summary={"fisher": summary}, figures=figures,
                       timing={"fisher_s": time.perf_counter() - t0})


def _posterior(ctx: Context, figures: dict) -> dict:
    """I(w) at posterior draws: per-draw ranks, the averaged matrix, mean explanation."""
    from slt.pipeline.stages.sampling import sample_posterior

    cfg, p = ctx.config.fisher, ctx.problem
    sampled_before = ctx.posterior is not None   # the sample stage ran: it drew posterior_nodes
    res, beta, _ = sample_posterior(ctx)   # the sample stage's draws when it ran
    flat = res.positions.reshape(-1, p.d)
    idx = np.linspace(0, flat.shape[0] - 1, min(cfg.num_draws, flat.shape[0])).astype(int)
    draws = flat[idx]
    if not np.isfinite(draws).all():
        ctx.warn("fisher: non-finite posterior draws; Fisher estimate withheld")
        return {"at": "posterior", "rank": None}
    pf = fisher_mod.posterior_fisher(p.model, draws, p.x, float(p.noise_std), cfg.rtol,
                                     likelihood=p.likelihood)
    s = pf.mean_spectrum
    out = {"at": "posterior", "beta": beta, "num_draws": int(draws.shape[0]),
           "rank": s.rank, "nullity": s.nullity, "d": p.d, "eigenvalues": s.eigenvalues.tolist(),
           "rtol": s.rtol, "tolerance": s.tolerance, "spectral_gap": s.gap_at_tolerance,
           "largest_gap": s.largest_gap, "largest_gap_rank": s.largest_gap_index,
           "per_draw_rank_counts": pf.rank_counts, "per_draw_rank_mean": float(pf.ranks.mean()),
           "mean_eigenvalues": pf.mean_eigenvalues.tolist(), "explained": pf.explained_mean}
    figures["fisher_spectrum"] = plots.fisher_spectrum(
        s.eigenvalues, s.tolerance, rank=s.rank, gap=s.gap_at_tolerance,
        title=f"E_w[I(w)] over {draws.shape[0]} draws (beta={beta:.3g}); per-draw ranks {pf.rank_counts}")
    if not sampled_before:
        from slt.pipeline.stages.sampling import posterior_nodes_figure

        nodes_fig = posterior_nodes_figure(ctx, res.positions, beta)
        if nodes_fig is not None:
            figures["posterior_nodes"] = nodes_fig
    spec = p.spec
    if spec is not None and spec.num_layers == 2 and spec.d_in == 2 and spec.activation == "relu":
        from slt.estimators import symmetry

        wc = symmetry.canonicalise(spec, symmetry.normalise(spec, jax.numpy.asarray(flat)),
                                   reference=ctx.truth_w)
        nodes = symmetry.split(spec, wc)
        figures["posterior_node_histograms"] = plots.node_histograms(
            np.asarray(nodes.W), res.loss, truth_loss=ctx.truth_loss,
            title=f"{ctx.config.name}: n={p.n}, beta={beta:.3g}")
    return out
