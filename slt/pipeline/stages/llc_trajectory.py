"""Stage ``llc`` with ``llc.checkpoints: K``: the LLC along training (:mod:`slt.estimators.llc_trajectory`).

Trains the model with ``llc.train`` (Adam or SGD, full batch) from a seeded N(0, prior_std^2)
draw, keeps K checkpoints on a log-spaced step schedule, estimates the LLC at each with the
llc section's sampler settings (w* = the checkpoint, no refinement) in one compiled program,
and writes ``llc_trajectory.csv`` and ``llc_trajectory.png``. summary.json's ``llc`` section
describes the last checkpoint like a single-point run, plus an ``llc.trajectory`` block.
"""
from __future__ import annotations

import csv
import io
import re

import jax
import numpy as np

from slt.estimators import llc_trajectory as lt
from slt.pipeline.runs import Context, StageOutput

COLUMNS = ("step", "L_n", "grad_norm", "llc_mean", "llc_stderr", "llc_std", "llc_mcse", "converged",
           "trend_drift", "trend_drift_se", "rhat_loss", "ess_loss", "acceptance", "step_size",
           "num_draws", "diverged")


def _warn_grouped(ctx: Context, steps, results) -> None:
    """One warning per kind (not converged, negative, diverged, ...), naming the steps."""
    kinds: dict = {}
    for s, r in zip(steps, results):
        for w in r.warnings:
            kind = re.sub(r"[-+]?\d[\d.e+-]*", "#", w.split(":")[1] if ":" in w else w)[:30]
            kinds.setdefault(kind, ([], w))[0].append(int(s))
    for kind, (at, first) in kinds.items():
        note = (" [a checkpoint that is not yet a minimum has no LLC in the strict sense: the chains "
                "descend from it; a larger llc.gamma keeps them closer]" if "negative" in kind else "")
        ctx.warn(f"llc trajectory: at {len(at)} of {len(steps)} checkpoints (steps {', '.join(map(str, at))}): "
                 f"{first}{note}")


def run(ctx: Context) -> StageOutput:
    from slt.estimators import learning_coefficient as lc
    from slt import progress
    from slt.pipeline.stages._llc_common import exact_lambda, llc_settings as _settings

    cfg, p = ctx.config.llc, ctx.problem
    tc = cfg.train
    key = jax.random.key(tc.seed) if tc.seed is not None else ctx.key("train")
    schedule = lt.checkpoint_schedule(tc.steps, cfg.checkpoints)
    with progress.stage(f"llc: train {tc.steps} steps ({tc.optimizer}), {len(schedule)} checkpoints"):
        ck = lt.train_checkpoints(key, p, tc.steps, tc.learning_rate, schedule, tc.optimizer)
    if not np.isfinite(ck.loss).all():
        ctx.warn("llc trajectory: training diverged (non-finite loss); lower llc.train.learning_rate")
    grad_norm = np.asarray(jax.vmap(lambda w: jax.numpy.linalg.norm(jax.grad(p.loss)(w)))(ck.w), float)
    nbeta = cfg.nbeta if cfg.nbeta is not None else lc.default_nbeta(p.n)
    settings = _settings(cfg, p.n)
    with progress.bar(total=None, desc=f"llc draws per chain ({len(schedule)} checkpoints)") as bar:
        def tick(done, cap):
            bar.total = cap
            bar.n = done
            bar.refresh()

        results = lt.llc_batch_for_problem(ctx.key("llc"), p, ck.w, nbeta=nbeta, progress=tick, **settings)
    _warn_grouped(ctx, ck.steps, results)
    traj = lt.Trajectory(ck, results)
    stderr = traj.stderr()
    rows = []
    for j, (s, r) in enumerate(zip(ck.steps, results)):
        acc = float(np.nanmean(r.acceptance)) if np.isfinite(r.acceptance).any() else None
        rows.append({"step": int(s), "L_n": float(ck.loss[j]), "grad_norm": float(grad_norm[j]),
                     "llc_mean": r.mean, "llc_stderr": None if r.mean is None else float(stderr[j]),
                     "llc_std": r.std, "llc_mcse": r.mcse, "converged": r.converged,
                     "trend_drift": r.trend.drift if r.trend else None,
                     "trend_drift_se": r.trend.drift_se if r.trend else None,
                     "rhat_loss": r.rhat, "ess_loss": r.ess, "acceptance": acc,
                     "step_size": float(np.mean(r.step_size)), "num_draws": r.num_draws,
                     "diverged": r.diverged})
    last, res = rows[-1], results[-1]
    block = {key: [row[key] for row in rows] for key in ("step", "L_n", "grad_norm", "llc_mean",
                                                         "llc_stderr", "converged")}
    block = {"steps": block.pop("step"), **block, "num_checkpoints": len(rows), "optimizer": tc.optimizer,
             "learning_rate": tc.learning_rate, "train_steps": tc.steps, "num_draws": res.num_draws,
             "all_converged": all(bool(r.converged) for r in results),
             "sampling_s": res.sampling_s, "csv": "llc_trajectory.csv"}
    summary = {"llc": {
        "mean": res.mean, "stderr": last["llc_stderr"], "std": res.std, "mcse": res.mcse,
        "converged": res.converged, "trend_test": res.trend._asdict() if res.trend is not None else None,
        "per_chain": [float(v) for v in res.per_chain] if not res.diverged else None,
        "w_star": f"checkpoint (step {last['step']})", "L_n_w_star": last["L_n"],
        "lambda_hat": None, "lambda_hat_stderr": None,
        **exact_lambda(ctx),
        "sampler": res.sampler, "nbeta": res.nbeta, "nbeta_rule": "n/log n" if cfg.nbeta is None else "given",
        "gamma": res.gamma, "step_size": [float(s) for s in res.step_size],
        "trajectory_length": res.trajectory_length, "steps_per_draw": res.steps_per_draw,
        "num_chains": res.num_chains, "num_draws": res.num_draws, "num_burnin": res.num_burnin,
        "num_draws_rule": "auto" if cfg.num_draws == "auto" else "given", "num_adapt": res.num_adapt,
        "batch_size": res.batch_size, "acceptance": last["acceptance"],
        "acceptance_kind": "mh_estimate" if res.sampler == "sgld" else "mh",
        "rhat_loss": res.rhat, "ess_loss": res.ess, "diverged": res.diverged,
        "draws_per_s": len(rows) * res.num_chains * (res.num_draws + res.num_burnin + res.num_adapt) / res.sampling_s,
        "trajectory": block,
    }}

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})

    def write_npz(path):
        with open(path, "wb") as fh:
            np.savez(fh, steps=ck.steps, w=np.asarray(ck.w), loss=ck.loss, train_loss_trace=ck.loss_trace,
                     llc_loss_trace=np.stack([r.loss_trace for r in results]))

    figures = {}
    if ctx.config.output.figures:
        from slt.plots import llc as plots

        exact = summary["llc"].get("exact_lambda")
        figures["llc_trajectory"] = plots.llc_trajectory(
            ck.steps, np.array([np.nan if r.mean is None else r.mean for r in results]), stderr, ck.loss,
            converged=[r.converged for r in results], loss_trace=ck.loss_trace, exact=exact,
            title=f"{ctx.config.name}: LLC along training ({tc.optimizer}, lr {tc.learning_rate:g}; "
                  f"{res.sampler}, nbeta={res.nbeta:.4g}, gamma={res.gamma:g})")
    return StageOutput(summary=summary, figures=figures,
                       files={"llc_trajectory.csv": buf.getvalue(), "llc_trajectory.npz": write_npz},
                       timing={"llc_sampling_s": res.sampling_s})
