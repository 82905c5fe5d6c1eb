# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The phase transition of the two-node ReLU network
#
# The seed's key insight: *non-true parameters can be preferred by the posterior*. Truth: two
# ReLU nodes `w1 = (cos t, sin t)`, `w2 = (-cos t, sin t)`, `b = -0.3`, `q = 1`, `c = 0`,
# `x ~ U[-1, 1]^2`, `n = 10000` (Carroll 2021). As `t -> pi/2` the two true kinks approach
# each other and a *degenerate* one-node function (one node near `w_hat = (0, 2)`, the other
# switched off) fits only slightly worse, with a smaller learning coefficient (2 against 7/2):
# the free energy `F ~ n L_n + lambda log n` then prefers it. Published: the degenerate phase
# appears near `t ~ 1.16` and dominates by `t ~ 1.3`.
#
# Every point is sampled **from prior starts only**, by replica exchange (`slt.samplers.replica`:
# non-reversible parallel tempering, every chain a ladder of temperatures from beta = 1 down to
# near the prior). Two checks make the occupancies trustworthy without hand-placed starts:
# two independent groups of chains must agree, and the beta = 1 occupancy must match the
# per-phase free energies computed from the whole ladder (`slt.estimators.phases`).
#
# Full run (about 20 minutes on 2 shared CPU cores): `python experiments/phase_transition.py`.
# The test suite executes this notebook with tiny settings (`SLT_PHASE_ARGS="--small"`).
#
# This notebook is `experiments/phase_transition.py` (the source; jupytext pairs the two). The
# outputs saved in the `.ipynb` come from those **tiny settings** (n = 400, 4 chains x 40 draws,
# t in {1.0, 1.4}), written by `python experiments/build_notebooks.py`: they show what the
# notebook produces, not the published result (`figures/phase_transition_*.png`, full settings).

# %%
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

if "ipykernel" not in sys.modules:
    from slt.cli import configure_jax

    configure_jax()

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from slt.pipeline import config as config_mod
from slt import data, models, progress
from slt.estimators import optimize, phases, symmetry
from slt.samplers import replica, nuts as samplers
from slt.plots import geometry as gplots
from slt.posterior import Problem

ROOT = Path(__file__).resolve().parent.parent if "__file__" in globals() else Path.cwd().parent
if os.environ.get("SLT_REPO"):
    ROOT = Path(os.environ["SLT_REPO"])
if not (ROOT / "configs").is_dir():
    ROOT = Path.cwd()

parser = argparse.ArgumentParser(description="phase transition of the two-node ReLU network")
parser.add_argument("--config", default=str(ROOT / "configs" / "phase_transition.yaml"))
parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
parser.add_argument("--small", action="store_true", help="tiny settings (the test suite)")
parser.add_argument("--full", action="store_true", help="the config as written (default)")
parser.add_argument("--replot", action="store_true", help="redraw the occupancy figure from "
                    "the saved phase_transition.json (no sampling)")
parser.add_argument("--out", default=None, help="figure directory (default: figures/, or a "
                    "temporary directory with --small)")
argv = (shlex.split(os.environ.get("SLT_PHASE_ARGS", "")) if "ipykernel" in sys.modules
        else sys.argv[1:])
args = parser.parse_args(argv)
SMALL_OVERRIDES = ["data.n=400", "sampler.num_chains=4", "sampler.num_warmup=40",
                   "sampler.num_samples=40", "sampler.num_temperatures=4", "sampler.num_steps=8",
                   "phase.t=[1.0, 1.4]", "phase.n=[400]", "phase.t_for_n=1.4",
                   "phase.pictures=[1.0, 1.4]"]
overrides = (SMALL_OVERRIDES if args.small else []) + args.overrides
cfg = config_mod.load(args.config, overrides)
ph, sc = cfg.phase, cfg.sampler
out_dir = Path(args.out) if args.out else (ROOT / "figures" if not args.small else
                                           Path(os.environ.get("TMPDIR", "/tmp")) / "slt-phase-small")
out_dir.mkdir(parents=True, exist_ok=True)
if sc.method != "replica":
    raise SystemExit(f"sampler.method: this experiment samples with replica exchange from prior "
                     f"starts; set sampler.method: replica (got {sc.method!r})")
print(f"n={cfg.data.n}, chains={sc.num_chains} (2 groups), {sc.num_temperatures} temperatures down to "
      f"beta={sc.beta_min:g}, warmup={sc.num_warmup}, samples={sc.num_samples}, t={ph.t}, "
      f"n-sweep={ph.n} at t={ph.t_for_n}; figures -> {out_dir}")

# %% [markdown]
# ## The family of truths, the degenerate competitor, and the asymptotic prediction
#
# For each `t` we fit the best one-node network (the degenerate phase's minimum) and the
# best two-node network (the true phase) to the same data. The asymptotic free energies
# `F_phase ~ n L_n(w_phase) + lambda_phase log n` with `lambda_true = 7/2`,
# `lambda_degenerate = 2` (science.md, *derived*) predict the occupancy of the degenerate phase
# `1 / (1 + exp(n dL - 1.5 log n))`, up to O(1) terms that this ignores.

# %%
SPEC = models.make_mlp(cfg.model.widths, cfg.model.activation, cfg.model.bias)
SPEC1 = models.make_mlp([2, 1, 1])
LAMBDA_TRUE, LAMBDA_DEG = 3.5, 2.0
root = jax.random.key(cfg.seed)


def truth_w(t: float) -> jnp.ndarray:
    c, s = math.cos(t), math.sin(t)
    return jnp.asarray([c, s, -c, s, ph.bias, ph.bias, ph.q, ph.q, 0.0], jnp.float32)


def make_problem(t: float, n: int, index: int) -> Problem:
    key = jax.random.fold_in(jax.random.fold_in(root, index), n)
    x = cfg.data.x
    ds = data.synthesize(key, SPEC, models.unflatten(SPEC, truth_w(t)), n, cfg.model.noise_std,
                         dist=x.dist, low=x.low, high=x.high)
    return Problem.make(SPEC, ds, cfg.model.noise_std, cfg.model.prior_std)


def phase_minima(problem: Problem, t: float):
    """L_n at the two-node minimum near the truth and at the best one-node network (embedded
    with node 2 switched off), both polished with Adam + L-BFGS on the same data."""
    true_min = optimize.train(jax.random.key(0), problem, steps=300, learning_rate=1e-3,
                              init=truth_w(t))
    p1 = Problem.make(SPEC1, data.Dataset(problem.x, problem.y), cfg.model.noise_std,
                      cfg.model.prior_std)
    s = math.sin(t)
    guess = jnp.asarray([0.0, 2 * s, 2 * ph.bias, ph.q, 0.0], jnp.float32)
    deg = optimize.train(jax.random.key(0), p1, steps=1000, learning_rate=1e-2, init=guess)
    w1 = np.asarray(deg.w)
    w_deg = jnp.asarray([w1[0], w1[1], 0.0, 0.0, w1[2], 0.0, w1[3], 0.0, w1[4]], jnp.float32)
    return float(true_min.loss), float(problem.loss(w_deg)), true_min.w, w_deg


def predicted_degenerate(n: int, dL: float) -> float:
    z = n * dL - (LAMBDA_TRUE - LAMBDA_DEG) * math.log(n)
    return 1.0 / (1.0 + math.exp(min(z, 700.0)))


# %% [markdown]
# ## Sampling: replica exchange from prior starts, two independent groups of chains
#
# Every chain starts from a prior draw and is a whole ladder of `num_temperatures` betas,
# geometric from 1 down to `beta_min` (fixed, the same for every chain, so that each level's
# draws can be pooled over chains for the per-phase integrals below), with neighbour swaps
# every transition (non-reversible even/odd scheme). The chains form two groups (first and
# second half); their occupancies agree within their errors (z-score per phase) if the sampler
# is not trapped: nothing in the starts favours a phase.
#
# **Free energy per phase** (`slt.estimators.phases`). The draws at every level are labelled by phase. With
# `Z_a(beta)` the partition function restricted to phase a,
# `d log Z_a / d beta = -E_{beta,a}[n L_n]`, so
# `F_a - F_b = -log(P_beta0(a) / P_beta0(b)) + int_beta0^1 (E_{beta,a} - E_{beta,b})[n L_n] dbeta`
# with `beta0` the lowest level at which both phases are visited. At beta = 1 the occupancy
# share of the degenerate phase among {true, degenerate} must then equal
# `1 / (1 + exp(F_deg - F_true))`: the integral uses only within-phase energies along the
# ladder and the hot level's occupancies, so a sampler trapped at beta = 1 fails the check.


# %%
TRUE, DEG = symmetry.PHASES.index("true"), symmetry.PHASES.index("degenerate")


def max_abs(zs):
    """The largest |z| (None, i.e. one group alone in a phase with no spread, counts as infinite)."""
    return math.inf if any(z is None for z in zs) else max(abs(z) for z in zs)


def group_agreement(labels, loss, group) -> dict:
    """Occupancy of every phase in each chain group and the z-score of their difference."""
    occ = [symmetry.phase_occupancy(labels[group == g], loss[group == g]) for g in (0, 1)]
    diff = occ[0].occupancy - occ[1].occupancy
    comb = np.hypot(occ[0].se, occ[1].se)
    z = [float(d / c) if c > 0 else (0.0 if d == 0 else None) for d, c in zip(diff, comb)]
    return {"group_occupancy": [o.occupancy.tolist() for o in occ], "group_se_all": [o.se.tolist() for o in occ],
            "group_z": z, "group_degenerate": [float(o.occupancy[DEG]) for o in occ],
            "group_se": [float(o.se[DEG]) for o in occ]}


def free_energy_check(res, labels_ladder, n) -> dict:
    """Per-phase free energies (true, degenerate) from every level, and the beta = 1 check."""
    betas = res.betas[0, ::-1]                                  # ascending, ends at 1
    nloss = n * res.loss_ladder[:, ::-1].transpose(1, 0, 2)     # (K, chains, draws)
    lab = labels_ladder[:, ::-1].transpose(1, 0, 2)
    # anchor: the hottest level with >= 50 draws of each phase (a rarer phase's log P is too noisy)
    fe = phases.phase_free_energies(betas, nloss, lab, (DEG, TRUE), min_count=50)
    dF, se = float(fe.delta[0, 1]), float(fe.delta_se[0, 1])
    chk = phases.occupancy_check(lab[-1], DEG, TRUE, dF, se)
    clean = lambda v: None if v is None or not math.isfinite(v) else float(v)
    return {"F_deg_minus_true": clean(dF), "F_deg_minus_true_se": clean(se), "beta0": clean(fe.beta0),
            "occupancy_beta0": [clean(v) for v in fe.occupancy_beta0],
            "share_measured": clean(chk.measured), "share_measured_se": clean(chk.measured_se),
            "share_predicted": clean(chk.predicted), "share_predicted_se": clean(chk.predicted_se),
            "share_z": clean(chk.z), "log_ratio_measured": clean(chk.log_ratio),
            "log_ratio_measured_se": clean(chk.log_ratio_se),
            "free_energy_withheld": fe.withheld or chk.withheld}


def run_point(t: float, n: int, index: int) -> dict:
    t0 = time.perf_counter()
    problem = make_problem(t, n, index)
    L_true, L_deg, w_true_min, w_deg = phase_minima(problem, t)
    init = samplers.prior_draws(jax.random.fold_in(jax.random.fold_in(root, 1000 + index), n),
                                sc.num_chains, models.num_params(SPEC), cfg.model.prior_std)
    group = (np.arange(sc.num_chains) >= sc.num_chains // 2).astype(int)
    ladder = replica.initial_ladder(sc.num_temperatures, sc.beta_min)
    res = replica.sample_problem(jax.random.fold_in(jax.random.fold_in(root, 2000 + index), n), problem,
                                 init, betas=ladder, adapt_ladder=False, num_warmup=sc.num_warmup,
                                 num_samples=sc.num_samples, num_steps=sc.num_steps,
                                 swap_interval=sc.swap_interval, target_accept=sc.target_accept,
                                 keep_ladder=True)
    good = replica.valid_chains(res)      # chains with a non-finite L_n anywhere are left out
    tw = np.asarray(truth_w(t))
    xs = np.asarray(problem.x[:2000])
    lab_all = symmetry.classify_phases(SPEC, res.positions_ladder[good], tw, xs, rms_tol=ph.rms_tol)
    labels, loss, positions = lab_all.labels[:, 0], res.loss[good], res.positions[good]
    occ = symmetry.phase_occupancy(labels, loss)
    w_hat = symmetry.canonicalise(SPEC, symmetry.normalise(SPEC, jnp.asarray(positions)),
                                  reference=jnp.asarray(tw))
    dL = L_deg - L_true
    out = {
        "t": t, "n": n, "occupancy": occ.occupancy.tolist(), "se": occ.se.tolist(),
        "se_ess": occ.se_ess.tolist(), "se_chain": occ.se_chain.tolist(),
        "mean_loss": occ.mean_loss.tolist(), "switches": occ.switches.tolist(),
        "per_chain_degenerate": occ.per_chain[:, DEG].tolist(),
        **group_agreement(labels, loss, group[good]),
        "L_true_min": L_true, "L_deg_min": L_deg, "n_dL": n * dL,
        "predicted_degenerate": predicted_degenerate(n, dL), "num_draws": int(labels.size),
        **free_energy_check(res._replace(betas=res.betas[good], loss_ladder=res.loss_ladder[good]),
                            lab_all.labels, n),
        "betas": res.betas[0].tolist(), "swap_accept": res.swap_accept[good].mean(0).tolist(),
        "round_trips": res.round_trips.tolist(), "invalid_chains": int((~res.valid).sum()),
        "divergences": int(res.diverging.sum()), "seconds": time.perf_counter() - t0,
    }
    fmt = lambda v, f=".2f": "withheld" if v is None else format(v, f)
    progress.write(f"t={t:.3f} n={n}: degenerate {occ.occupancy[DEG]:.2f} +- {occ.se[DEG]:.2f} "
                   f"(groups {[round(g, 2) for g in out['group_degenerate']]}, max |z| over phases "
                   f"{max_abs(out['group_z']):.1f}), true {occ.occupancy[TRUE]:.2f}, other "
                   f"{occ.occupancy[3]:.2f}; n dL = {n * dL:.1f} vs 1.5 log n = {1.5 * math.log(n):.1f}; "
                   f"F_deg - F_true = {fmt(out['F_deg_minus_true'])} +- {fmt(out['F_deg_minus_true_se'])}: "
                   f"degenerate share {fmt(out['share_measured'])} measured vs {fmt(out['share_predicted'])} "
                   f"predicted (z = {fmt(out['share_z'], '.1f')}); round trips/chain "
                   f"{res.round_trips.mean():.1f}; {out['seconds']:.0f} s", stream=sys.stdout)
    keep = {"w_hat": np.asarray(symmetry.split(SPEC, w_hat).W), "loss": loss,
            "labels": labels, "truth_nodes": np.asarray(symmetry.split(SPEC, jnp.asarray(tw)).W)
            * abs(ph.q), "L_truth": float(problem.loss(jnp.asarray(tw)))}
    return out, keep


# %% [markdown]
# ## Occupancy against t at fixed n

# %%
results_t, pictures = [], {}
if args.replot:
    saved = json.loads((out_dir / "phase_transition.json").read_text())
    results_t = saved["by_t"]
# one bar over every point of both sweeps (terminals only: time left, not in notebooks or CI)
points_bar = progress.bar(0 if args.replot else len(ph.t) + len(ph.n), "phase transition", unit="point")
for i, t in enumerate([] if args.replot else ph.t):
    points_bar.set_postfix_str(f"t={t:g} n={cfg.data.n}")
    out, keep = run_point(float(t), cfg.data.n, i)
    points_bar.update()
    results_t.append(out)
    if any(abs(t - p) < 1e-9 for p in ph.pictures) or abs(t - ph.t_for_n) < 1e-9:
        pictures[float(t)] = keep

# %% [markdown]
# ## The same trade-off as n varies at fixed t

# %%
results_n, pictures_n = ([saved["by_n"][j] for j in range(len(saved["by_n"]))], {}) if args.replot else ([], {})
for j, n in enumerate([] if args.replot else ph.n):
    points_bar.set_postfix_str(f"t={ph.t_for_n:g} n={n}")
    reuse = [r for r in results_t if abs(r["t"] - ph.t_for_n) < 1e-9 and r["n"] == n]
    if reuse:
        results_n.append(reuse[0])
        pictures_n[n] = pictures[float(ph.t_for_n)]
        points_bar.update()
        continue
    out, keep = run_point(float(ph.t_for_n), int(n), 100 + j)
    points_bar.update()
    results_n.append(out)
    pictures_n[n] = keep
points_bar.close()

# %% [markdown]
# ## Figures

# %%
names = symmetry.PHASES
K = len(names)
TRUTH_TEXT = (f"truth w1=(cos t, sin t), w2=(-cos t, sin t), b={ph.bias:g}, q={ph.q:g}, c=0")


def table(results):
    occ = np.array([r["occupancy"] for r in results]).T
    se = np.array([r["se"] for r in results]).T
    return occ, se


def plot_groups(ax, xs, results):
    """The convergence check on the figure: degenerate occupancy of each chain group."""
    for g, (marker, text) in enumerate([("^", "group A"), ("v", "group B")]):
        ys = [r["group_degenerate"][g] if len(r["group_degenerate"]) > g else np.nan for r in results]
        ax.plot(xs, ys, marker, color="C3", mfc="none", ms=6, ls="none",
                label=f"degenerate, {text} (prior starts)")


def plot_share(ax, xs, results, xlabel, title, logx=False):
    """The free-energy check: degenerate share among {true, degenerate} at beta = 1, measured
    from the draws and predicted by the per-phase free energies (withheld points left out)."""
    get = lambda key: np.array([np.nan if r.get(key) is None else r[key] for r in results], float)
    m, m_se, p, p_se = (get(k) for k in ("share_measured", "share_measured_se", "share_predicted",
                                         "share_predicted_se"))
    ax.errorbar(xs, m, yerr=2 * m_se, fmt="o", color="C3", capsize=3,
                label="degenerate share P(deg) / (P(deg) + P(true)), measured at beta = 1 (2 se)")
    ax.plot(xs, p, "s--", color="k", mfc="none", lw=1,
            label=r"predicted $1/(1+e^{F_{deg}-F_{true}})$, per-phase TI over the ladder")
    ax.fill_between(xs, p - 2 * p_se, p + 2 * p_se, color="k", alpha=0.12, lw=0)
    for x, r in zip(xs, results):
        text = "withheld" if r.get("share_z") is None else f"z={r['share_z']:.1f}"
        ax.annotate(text, (x, 1.02), ha="center", fontsize=7)
    ax.set(xlabel=xlabel, ylabel="degenerate share", ylim=(-0.05, 1.1), title=title)
    if logx:
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    else:
        pad = 0.05 * (max(xs) - min(xs)) + 1e-3
        ax.set_xlim(min(xs) - pad, max(xs) + pad)


fig, ((ax_t, ax_n), (ax_ft, ax_fn)) = plt.subplots(2, 2, figsize=(12, 9.5))
ts = [r["t"] for r in results_t]
occ, se = table(results_t)
gplots.phase_occupancy(ts, occ, se, names, xlabel="t (true nodes at angles t and pi - t)",
                       ax=ax_t, marks=[(1.16, "published onset 1.16"), (1.3, "dominates 1.3")],
                       title=f"posterior phase occupancy, n = {cfg.data.n}, beta = 1")
ax_t.plot(ts, [r["predicted_degenerate"] for r in results_t], "k--", lw=1,
          label=r"asymptotic prediction $1/(1+e^{n\Delta L - 1.5\log n})$ (derived $\lambda$s, O(1) ignored)")
plot_groups(ax_t, ts, results_t)
ns = [r["n"] for r in results_n]
occ_n, se_n = table(results_n)
gplots.phase_occupancy(ns, occ_n, se_n, names, xlabel="n", ax=ax_n, logx=True,
                       title=f"the same trade-off in n at t = {ph.t_for_n}")
ax_n.plot(ns, [r["predicted_degenerate"] for r in results_n], "k--", lw=1, label="asymptotic")
plot_groups(ax_n, ns, results_n)
plot_share(ax_ft, ts, results_t, "t", f"occupancy vs per-phase free energies, n = {cfg.data.n}")
plot_share(ax_fn, ns, results_n, "n", f"the same at t = {ph.t_for_n}", logx=True)
fig.suptitle(f"Two-node ReLU {TRUTH_TEXT}; x~U[-1,1]^2; replica exchange from prior starts, "
             f"{sc.num_chains} chains (2 groups) x {sc.num_temperatures} temperatures x "
             f"{sc.num_samples} draws per point", fontsize=9)
handles, labels = ax_t.get_legend_handles_labels()
h2, l2 = ax_ft.get_legend_handles_labels()
for a in (ax_t, ax_n):
    if a.get_legend() is not None:
        a.get_legend().remove()
fig.legend(handles + h2, labels + l2, loc="lower center", ncol=3, fontsize=8, frameon=False)
fig.tight_layout(rect=(0, 0.1, 1, 1))
fig.savefig(out_dir / "phase_transition_occupancy.png", dpi=110)

draws_file = (ROOT / "runs" if not args.small else out_dir) / "phase_transition_draws.npz"
if not args.replot:   # keep the pictures' draws (runs/ is not committed) so --replot can redraw
    draws_file.parent.mkdir(parents=True, exist_ok=True)
    flat = {f"{kind}_{key}_{name}": np.asarray(v) for kind, d in (("t", pictures), ("n", pictures_n))
            for key, rec in d.items() for name, v in rec.items()}
    np.savez_compressed(draws_file, **flat)
elif draws_file.is_file():
    with np.load(draws_file) as f:
        for name in f.files:
            kind, key, field = name.split("_", 2)
            target = pictures if kind == "t" else pictures_n
            key = float(key) if kind == "t" else int(key)
            target.setdefault(key, {})[field] = f[name] if f[name].ndim else f[name].item()
else:  # pictures need the draws: only the occupancy figure is redrawn
    pictures, pictures_n = {}, {}
panels = [(f"t = {t:.2f}: degenerate {np.mean(pictures[t]['labels'] == 1):.0%}",
           pictures[t]["w_hat"].reshape(-1, 2, 2), pictures[t]["truth_nodes"])
          for t in sorted(pictures) if any(abs(t - p) < 1e-9 for p in ph.pictures)]
if panels:
    fig_p = gplots.node_scatter(panels, lim=2.6, title=f"normalised nodes w_hat_i = |q_i| w_i of every "
                                f"draw, n = {cfg.data.n}, beta = 1; {TRUTH_TEXT} (stars)")
    fig_p.savefig(out_dir / "phase_transition_posteriors.png", dpi=110)

panels_n = [(f"n = {n}: degenerate {np.mean(pictures_n[n]['labels'] == 1):.0%}",
             pictures_n[n]["w_hat"].reshape(-1, 2, 2), pictures_n[n]["truth_nodes"])
            for n in ph.n if n in pictures_n]
if panels_n:
    fig_n = gplots.node_scatter(panels_n, lim=2.6, title=f"normalised nodes at t = {ph.t_for_n}, "
                                f"beta = 1, as n grows; {TRUTH_TEXT} (stars)")
    fig_n.savefig(out_dir / "phase_transition_n.png", dpi=110)

tp = float(ph.t_for_n)
k = pictures.get(tp)
if k is not None:
    fig_h = gplots.node_histograms(k["w_hat"], k["loss"], labels=k["labels"], names=names,
                                   truth_loss=k["L_truth"],
                                   title=f"t = {tp}, n = {cfg.data.n}, beta = 1, {TRUTH_TEXT}: "
                                   "node sizes and L_n by phase")
    fig_h.savefig(out_dir / "phase_transition_histograms.png", dpi=110)

# %% [markdown]
# ## Where the transition is, and how we know the occupancies are converged

# %%
def crossing(results, key="occupancy"):
    """First t where the degenerate occupancy reaches 1/2 (linear interpolation)."""
    xs = [r["t"] for r in results]
    ys = [r[key][1] if key == "occupancy" else r[key] for r in results]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y0 < 0.5 <= y1:
            return x0 + (0.5 - y0) * (x1 - x0) / (y1 - y0)
    return None


points = results_t + [r for r in results_n if r not in results_t]
agreement = [{"t": r["t"], "n": r["n"], "z": r["group_z"], "max_abs_z": max_abs(r["group_z"]),
              "diff_degenerate": r["group_degenerate"][0] - r["group_degenerate"][1]} for r in points]
fe_check = [{"t": r["t"], "n": r["n"], **{k: r[k] for k in (
    "F_deg_minus_true", "F_deg_minus_true_se", "share_measured", "share_measured_se", "share_predicted",
    "share_predicted_se", "share_z", "free_energy_withheld")}} for r in points]
finite = lambda v: None if v is None or not math.isfinite(v) else v
summary = {
    "settings": {"n": cfg.data.n, "method": sc.method, "num_chains": sc.num_chains,
                 "num_temperatures": sc.num_temperatures, "beta_min": sc.beta_min,
                 "num_warmup": sc.num_warmup, "num_samples": sc.num_samples, "num_steps": sc.num_steps,
                 "swap_interval": sc.swap_interval, "init": "prior", "rms_tol": ph.rms_tol},
    "phases": list(names), "by_t": results_t, "by_n": results_n,
    "half_degenerate_t_measured": crossing(results_t),
    "half_degenerate_t_predicted": crossing([{"t": r["t"], "p": r["predicted_degenerate"]}
                                            for r in results_t], key="p"),
    "group_agreement": agreement,
    "group_max_abs_z": finite(max((a["max_abs_z"] for a in agreement), default=None)),
    "free_energy_check": fe_check,
    "free_energy_max_abs_z": max((abs(c["share_z"]) for c in fe_check if c["share_z"] is not None),
                                 default=None),
    "seconds": sum(r["seconds"] for r in points) if not args.replot else saved.get("seconds"),
}
(out_dir / "phase_transition.json").write_text(json.dumps(summary, indent=1))
print("degenerate occupancy reaches 1/2 at t =", summary["half_degenerate_t_measured"],
      "(asymptotic prediction", summary["half_degenerate_t_predicted"], ")")
for a, c in zip(agreement, fe_check):
    zs = ", ".join("-" if z is None else f"{z:+.1f}" for z in a["z"])
    share = ("withheld: " + c["free_energy_withheld"] if c["share_z"] is None else
             f"{c['share_measured']:.3f} +- {c['share_measured_se']:.3f} measured vs "
             f"{c['share_predicted']:.3f} +- {c['share_predicted_se']:.3f} predicted (z = {c['share_z']:+.1f})")
    print(f"t={a['t']}, n={a['n']}: group A vs B z per phase [{zs}]; degenerate share {share}")
