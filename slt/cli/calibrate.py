"""``slt calibrate``: the LLC sampler on a step-size x nbeta grid, like devinterp's epsilon-beta
analysis; a command of its own (its run directory holds ``calibration.csv``/``.png`` and
``summary.json``), built on the ``llc`` stage's point (:func:`slt.pipeline.stages.point.resolve_point`,
:func:`slt.pipeline.stages.llc.refine`) and the LLC's chain programs (:func:`slt.samplers.llc_chains.programs`).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


def calibrate(cfg, out_dir=None, step_sizes=None, nbetas=None, log=None) -> Path:
    """Run the LLC sampler (``llc.sampler``, fixed step, no adaptation) on a step-size x nbeta
    grid and write a run directory: ``calibration.csv``, ``calibration.png`` (LLC and
    acceptance against step size per nbeta, mean traces) and ``summary.json`` (last).

    All step sizes run as one vmapped warmup (burn-in) and draw program (each chain carries its
    own step size); the nbeta values loop over the same compiled programs. Defaults: step sizes ``eps0 * 2^k``,
    k = -4..2, around the curvature step ``eps0 = 0.5 / (nbeta lambda_max + gamma)``; nbetas
    ``n/log n`` times 0.5, 1, 2.
    """
    import yaml

    from slt.pipeline import config as config_mod
    from slt.estimators import learning_coefficient as lc
    from slt.kernels.devices import num_devices_for
    from slt.samplers import llc_chains
    from slt.pipeline import runs
    from slt.plots import llc as plots
    from slt.pipeline.stages.llc import refine, wants_refine
    from slt.pipeline.stages.point import resolve_point

    log = log or (lambda s: None)
    t0 = time.perf_counter()
    ctx = runs.build_context(cfg)
    p, sec = ctx.problem, cfg.llc
    # the grid is of fixed step sizes, so it calibrates the Langevin samplers; HMC and NUTS adapt
    # their own step (the grid then shows MALA, said in the log and the summary)
    sampler = sec.sampler if sec.sampler in ("mala", "sgld") else "mala"
    if sampler != sec.sampler:
        log(f"[{cfg.name}] calibrate: llc.sampler {sec.sampler} adapts its own step size; the grid uses mala")
    num_draws = sec.num_draws if sec.num_draws != "auto" else lc.AUTO_DRAWS[sampler][0]
    sec = dataclasses.replace(sec, sampler=sampler, num_draws=num_draws)
    w_star, info = resolve_point(ctx, sec)
    if wants_refine(sec):
        w_star, info = refine(ctx, sec, w_star, info)
    base_nbeta = sec.nbeta if sec.nbeta is not None else lc.default_nbeta(p.n)
    nbetas = np.asarray(nbetas if nbetas else [0.5 * base_nbeta, base_nbeta, 2 * base_nbeta], float)
    if step_sizes:
        step_sizes = np.asarray(step_sizes, float)
    else:
        eps0 = lc.initial_step_size(lc.problem_loss, w_star, p, base_nbeta, sec.gamma, ctx.key("curvature"))
        step_sizes = eps0 * 2.0 ** np.arange(-4, 3)
    if (step_sizes <= 0).any() or (nbetas <= 0).any():
        raise config_mod.ConfigError("calibrate", "step sizes and nbetas must be > 0")
    run_dir = runs.reserve_dir(Path(out_dir) if out_dir is not None else Path(cfg.output.dir),
                               f"{cfg.name}-calibrate")
    runs.atomic_write(run_dir / "config.yaml", yaml.safe_dump(config_mod.to_dict(cfg), sort_keys=False))
    C, S = sec.num_chains, len(step_sizes)
    num_burnin = sec.num_burnin if sec.num_burnin is not None else sec.num_draws // 10
    batch = sec.batch_size if sec.batch_size and sec.batch_size < p.n else None
    warm, _ = llc_chains.programs(sec.sampler, lc.problem_loss, 0, num_burnin, 0.5, sec.num_draws,
                                  lc.HMC_MAX_STEPS, num_devices_for(C * S), batch_size=batch,
                                  batch_loss_fn=lc.problem_batch_loss if batch else None,
                                  first_draws=sec.num_draws)   # one chunk: drawn by the warmup's loop
    n_a, no_t = jnp.asarray(p.n, jnp.int32), jnp.asarray(np.nan, p.x.dtype)
    eps_chains = jnp.repeat(jnp.asarray(step_sizes, p.x.dtype), C)
    loss_star = float(p.loss(w_star))
    shape = (len(nbetas), S)
    llc_mean, llc_std, acc = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    traces = np.full(shape + (sec.num_draws,), np.nan)
    rows = []
    for i, nb in enumerate(nbetas):
        log(f"[{cfg.name}] calibrate nbeta={nb:.4g}: {S} step sizes x {C} chains")
        k_i = jax.random.fold_in(ctx.key("calibrate"), i)
        args = (w_star, p, jnp.asarray(nb, p.x.dtype), jnp.asarray(sec.gamma, p.x.dtype))
        *_, (loss, accept, _, _) = warm(jax.random.split(k_i, C * S), eps_chains, *args, ctx.key("curvature"),
                                        no_t, n_a)
        loss, accept = np.asarray(loss, float), np.asarray(accept, float)
        for j, eps in enumerate(step_sizes):
            sl = slice(j * C, (j + 1) * C)
            r = lc.summarize(loss[sl], accept[sl], np.full(C, eps), loss_star, nbeta=float(nb),
                             gamma=sec.gamma, sampler=sec.sampler, num_burnin=num_burnin,
                             batch_size=batch, d=p.d)
            acc[i, j] = np.nanmean(r.acceptance) if np.isfinite(r.acceptance).any() else np.nan
            if r.mean is not None:
                llc_mean[i, j], llc_std[i, j] = r.mean, r.std if C > 1 else 0.0
                traces[i, j] = nb * (loss[sl] - loss_star).mean(axis=0)
            rows.append({"nbeta": float(nb), "step_size": float(eps), "llc_mean": r.mean,
                         "llc_std": r.std, "llc_mcse": r.mcse, "acceptance": acc[i, j],
                         "rhat_loss": r.rhat, "diverged": r.diverged})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    runs.atomic_write(run_dir / "calibration.csv", buf.getvalue())
    if cfg.output.figures:
        fig = plots.calibration(step_sizes, nbetas, llc_mean, llc_std, acc, traces, sampler=sec.sampler,
                                title=f"{cfg.name}: {sec.sampler} LLC at {info['w_star']} (n={p.n})")
        runs.save_figure(run_dir / "calibration.png", fig)
    summary = {"complete": False, "name": cfg.name, "n": p.n, "d": p.d, "command": "calibrate",
               "llc_calibration": {**info, "sampler": sec.sampler, "gamma": sec.gamma,
                                   "num_chains": C, "num_draws": sec.num_draws, "num_burnin": num_burnin,
                                   "batch_size": batch, "step_sizes": step_sizes, "nbetas": nbetas,
                                   "grid": rows},
               "diagnostics": {"warnings": list(dict.fromkeys(ctx.warnings))},
               "timing": {"total_s": time.perf_counter() - t0},
               "versions": runs.versions(), "config": config_mod.to_dict(cfg)}
    summary["complete"] = True
    runs.atomic_write(run_dir / runs.SUMMARY, json.dumps(runs.to_jsonable(summary), indent=2, allow_nan=False))
    return run_dir
