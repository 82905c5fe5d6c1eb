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
# # XOR: which network does the posterior choose?
#
# The seed documents' example of what a logistic model cannot do: XOR. Here the labels come
# from a two-node ReLU classifier whose logit `4 |x1 - x2| - 2` puts the corners (1, -1) and
# (-1, 1) in class 1 and (1, 1), (-1, -1) in class 0 (`configs/xor.yaml`; bernoulli likelihood,
# labels drawn from the truth's probabilities, x uniform on the square). We fit two-layer ReLU
# classifiers with H = 1, 2, 3, 4 hidden nodes:
#
# 1. the posterior predictive `P(y = 1 | x)` of each width;
# 2. the free energy `F_n` (thermodynamic integration) of each width against n. One node cannot
#    fit XOR, so its `F_n` grows like `n KL`; two, three and four nodes all contain the truth, so
#    their `F_n - n L_n(w0)` grow like `lambda_H log n`. The question: does the free energy pick
#    the smallest network that fits, or the largest, which reaches the lowest training loss? For
#    ReLU the answer is neither by a margin that grows with n: an extra node can sit *dead* (its
#    kink outside the data's square) on an open set of parameters, where it changes nothing, so
#    it adds nothing to lambda -- only prior volume, a constant in `F_n` that favours the wider
#    networks by a nat or two (the measured slopes and differences are printed below);
# 3. the local learning coefficient along training of the widest network.
#
# This notebook is `experiments/xor.py` (the source; jupytext pairs the two). The outputs saved
# in the `.ipynb` come from the **small settings** (`SLT_SMALL=1`), written by
# `python experiments/build_notebooks.py`; the published figures (`figures/xor_*.png`) come
# from the full settings.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("SLT_SMALL", "0") == "1"
OUT = os.environ.get("SLT_OUT", "runs/notebooks")           # run and sweep directories (reused if complete)
FIGURES = os.environ.get("SLT_FIGURES", "figures")          # where the PNGs go

# %%
import sys

from slt.cli import configure_jax

configure_jax()

import json
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:   # a script: files only; a notebook: figures inline too
    matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from slt.pipeline import config as config_mod
from slt import progress
from slt.pipeline import runs
from slt.cli import sweep as sweep_mod
from slt.estimators.optimize import train

ROOT = Path(os.environ.get("SLT_REPO", Path.cwd()))
if not (ROOT / "configs").is_dir():
    ROOT = ROOT.parent
WIDTHS = [1, 2, 3, 4]
if SMALL:   # the test suite's settings: what the notebook produces, not the published numbers
    WIDTHS = [1, 2]
    N_PICTURE = 100
    SAMPLE = ["sampler.num_warmup=60", "sampler.num_samples=60", "sampler.num_chains=2",
              "sampler.num_temperatures=4"]
    SWEEP = ["sweep.n=[60, 120]", "free_energy.num_betas=5", "free_energy.num_chains=2",
             "free_energy.num_warmup=40", "free_energy.num_samples=40", "lambda.num_betas=3"]
    TRAJECTORY = ["data.n=100", "llc.checkpoints=3", "llc.train.steps=100", "llc.num_chains=2",
                  "llc.num_draws=100", "llc.lambda_hat=false", "llc.max_steps=16"]
    TRAIN_STEPS, TRAIN_STARTS = 100, 2
else:
    N_PICTURE = 1000
    SAMPLE = []
    SWEEP = ["sweep.n=[100, 300, 1000, 3000]"]
    TRAJECTORY = ["data.n=3000", "llc.checkpoints=12", "llc.train.steps=3000", "llc.lambda_hat=false",
                  "llc.max_steps=32"]
    TRAIN_STEPS, TRAIN_STARTS = 2000, 8
Path(FIGURES).mkdir(parents=True, exist_ok=True)


def load_config(*overrides):
    return config_mod.load(ROOT / "configs" / "xor.yaml", list(overrides) + ["output.figures=false"])


def run_once(cfg, out):
    """A run directory per config, reused when it is already complete (re-running only loads)."""
    target = Path(out) / cfg.name
    if runs.is_complete(target):
        return target
    return runs.execute(cfg, out_dir=out, exact_dir=False) if not target.exists() else runs.execute(
        cfg, out_dir=target, exact_dir=True)


# %% [markdown]
# ## 1. The posterior predictive of each width
# NUTS on each width's posterior at one n (chains from screened prior draws); the panels show
# the posterior mean of `P(y = 1 | x, w)`, the truth's on the left, the labels as dots.

# %%
pictures, train_loss = {}, {}
with progress.bar(len(WIDTHS), "posterior per width", unit="width") as bar:
    for h in WIDTHS:
        cfg = load_config(f"model.widths=[2, {h}, 1]", f"data.n={N_PICTURE}", f"name=xor-h{h}-n{N_PICTURE}", *SAMPLE)
        run_dir = run_once(cfg, OUT)
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
        ctx = runs.build_context(cfg)
        import arviz as az

        draws = np.asarray(az.from_netcdf(str(Path(run_dir) / "posterior.nc")).posterior["w"]).reshape(-1, ctx.problem.d)
        # the lowest training loss this width reaches: best of TRAIN_STARTS Adam runs from prior draws
        losses = [float(train(jax.random.key(s), ctx.problem, steps=TRAIN_STEPS).loss) for s in range(TRAIN_STARTS)]
        train_loss[h] = min(losses)
        pictures[h] = dict(draws=draws, ctx=ctx, summary=summary)
        bar.update()

g = 80
axis = np.linspace(-1, 1, g)
grid = jnp.asarray(np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2), dtype=jnp.result_type(float))
fig, axes = plt.subplots(1, len(WIDTHS) + 1, figsize=(3.3 * (len(WIDTHS) + 1), 3.3), sharey=True)
ctx0 = pictures[WIDTHS[0]]["ctx"]
from slt import models

truth_p = np.asarray(jax.nn.sigmoid(models.apply(ctx0.truth_spec, ctx0.truth_params, grid)[:, 0])).reshape(g, g)
panels = [("truth", truth_p)]
for h in WIDTHS:
    p = pictures[h]["ctx"].problem
    sel = pictures[h]["draws"][:: max(1, len(pictures[h]["draws"]) // 400)]
    probs = np.asarray(jax.vmap(lambda w: jax.nn.sigmoid(p.predict(jnp.asarray(w, grid.dtype), grid)[:, 0]))(sel))
    panels.append((f"H = {h}: E[P(y=1|x)]", probs.mean(0).reshape(g, g)))
x_data, y_data = np.asarray(ctx0.problem.x), np.asarray(ctx0.problem.y)[:, 0]
for ax, (label, img) in zip(axes, panels):
    im = ax.imshow(img, origin="lower", extent=(-1, 1, -1, 1), vmin=0, vmax=1, cmap="RdBu_r")
    ax.scatter(x_data[:300, 0], x_data[:300, 1], c=y_data[:300], s=3, cmap="RdBu_r", edgecolors="k", linewidths=0.2)
    ax.set_title(label, fontsize=10)
    ax.set_xlabel("$x_1$")
axes[0].set_ylabel("$x_2$")
fig.colorbar(im, ax=axes, fraction=0.02, label="P(y = 1 | x)")
fig.suptitle(f"XOR, n = {N_PICTURE}: posterior predictive of two-layer ReLU classifiers", y=1.02)
fig.savefig(Path(FIGURES) / "xor_predictive.png", dpi=110, bbox_inches="tight")

print(f"{'H':>2s} {'d':>3s} {'min train L_n':>14s} {'E[L_n] posterior':>17s} {'R-hat(L_n)':>10s}")
for h in WIDTHS:
    s = pictures[h]["summary"]
    print(f"{h:2d} {s['d']:3d} {train_loss[h]:14.4f} {s['loss']['E_L_n']:17.4f} {s['diagnostics']['rhat_loss']:10.3f}")
print(f"truth L_n(w0) = {pictures[WIDTHS[0]]['summary']['loss']['L_n_truth']:.4f}")

# %% [markdown]
# ## 2. Free energy against n for each width
# One sweep per width (thermodynamic integration over all temperatures of each n in one
# compiled program). Left: `F_n - n L_n(w0)` against `log n` (slope: lambda for a width that
# contains the truth). Right: each width's `F_n` minus the smallest at that n: the posterior
# odds of the widths are `exp(-(F_a - F_b))` (equal prior over widths).

# %%
sweeps = {}
with progress.bar(len(WIDTHS), "free energy per width", unit="width") as bar:
    for h in WIDTHS:
        cfg = load_config(f"model.widths=[2, {h}, 1]", f"name=xor-h{h}-fe", *SWEEP)
        sweep_dir = sweep_mod.run_sweep(cfg, out_dir=OUT, backend="local", address=None, num_cpus=None,
                                        log=lambda s: None)
        sweeps[h] = json.loads((sweep_dir / "sweep.json").read_text())
        bar.update()

ns = sorted({p["n"] for p in sweeps[WIDTHS[0]]["points"]})
table = {h: {p["n"]: p for p in sweeps[h]["points"]} for h in WIDTHS}
fig2, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
for i, h in enumerate(WIDTHS):
    pts = [table[h][n] for n in ns]
    y = np.array([p["ti"] - p["nL_n_truth"] for p in pts])
    err = np.array([p["ti_stderr"] for p in pts])
    ax1.errorbar(np.log(ns), y, yerr=err, fmt="o-", ms=4, capsize=2, color=f"C{i}", label=f"H = {h}")
best = np.array([min(table[h][n]["ti"] for h in WIDTHS) for n in ns])
for i, h in enumerate(WIDTHS):
    ax2.errorbar(ns, [table[h][n]["ti"] - b for n, b in zip(ns, best)],
                 yerr=[table[h][n]["ti_stderr"] for n in ns], fmt="o-", ms=4, capsize=2, color=f"C{i}", label=f"H = {h}")
ax1.set_xlabel(r"$\log n$")
ax1.set_ylabel(r"$F_n - n L_n(w_0)$ (nats)")
ax1.set_title("free energy above the truth's loss")
ax2.set_xscale("log")
ax2.set_yscale("symlog", linthresh=1.0)
ax2.set_xlabel("n")
ax2.set_ylabel(r"$F_n(H) - \min_H F_n$ (nats)")
ax2.set_title("which width the free energy picks (0 = chosen)")
for ax in (ax1, ax2):
    ax.legend(fontsize=8)
fig2.tight_layout()
fig2.savefig(Path(FIGURES) / "xor_free_energy.png", dpi=110, bbox_inches="tight")

print(f"{'n':>6s} " + " ".join(f"{'F_n H=' + str(h):>16s}" for h in WIDTHS) + "   chosen by F_n   lowest train loss")
for n in ns:
    row = " ".join(f"{table[h][n]['ti']:9.2f} ± {table[h][n]['ti_stderr']:4.2f}" for h in WIDTHS)
    chosen = min(WIDTHS, key=lambda h: table[h][n]["ti"])
    print(f"{n:6d} {row}   H = {chosen}           H = {min(WIDTHS, key=lambda h: train_loss[h])}")
for h in WIDTHS:
    fit = sweeps[h]["lambda"]["log_n_slope"]["ti"]
    if fit is not None:
        print(f"H = {h}: slope of F_n - n L_n(w0) against log n = {fit['slope']:.2f} ± {fit['stderr']:.2f}")

# %% [markdown]
# ## 3. The learning coefficient along training
# The widest network (H = 4) trained with Adam from a prior draw; at checkpoints on a
# log-spaced schedule of steps, the local learning coefficient (`llc.checkpoints`: every
# checkpoint's chains in one compiled program, localised HMC, `gamma = 1`). Early checkpoints are
# not minima (the chains descend: a negative "LLC" there says so); once training has found the
# basin the LLC settles.

# %%
H_TRAJ = max(WIDTHS)
cfg = load_config(f"model.widths=[2, {H_TRAJ}, 1]", f"name=xor-h{H_TRAJ}-llc-trajectory", "llc.at=trained", *TRAJECTORY)
target = Path(OUT) / cfg.name
run_dir = target if runs.is_complete(target) else runs.execute(cfg, stages=["llc"], out_dir=OUT)
import csv

rows = list(csv.DictReader((Path(run_dir) / "llc_trajectory.csv").open()))
steps = np.array([float(r["step"]) for r in rows])
llc = np.array([float(r["llc_mean"]) if r["llc_mean"] else np.nan for r in rows])
se = np.array([float(r["llc_stderr"]) if r["llc_stderr"] else np.nan for r in rows])
loss = np.array([float(r["L_n"]) for r in rows])
fig3, ax3 = plt.subplots(figsize=(6.5, 4.2))
ax3.errorbar(steps, llc, yerr=2 * se, fmt="o-", ms=4, capsize=2, color="C0", label=r"LLC $\hat\lambda(w_t)$ ($\pm 2$ se)")
ax3.set_xscale("log")
ax3.set_yscale("symlog", linthresh=1.0)
ax3.set_xlabel("training step t (Adam)")
ax3.set_ylabel("local learning coefficient")
ax4 = ax3.twinx()
ax4.plot(steps, loss, "s--", ms=3, color="C3", label=r"$L_n(w_t)$")
ax4.set_ylabel(r"$L_n(w_t)$", color="C3")
h1, l1 = ax3.get_legend_handles_labels()
h2, l2 = ax4.get_legend_handles_labels()
ax3.legend(h1 + h2, l1 + l2, fontsize=8, loc="center right")
ax3.set_title(f"XOR, H = {H_TRAJ}, n = {json.loads((Path(run_dir) / 'summary.json').read_text())['n']}: LLC along training")
fig3.tight_layout()
fig3.savefig(Path(FIGURES) / "xor_llc_trajectory.png", dpi=110, bbox_inches="tight")
print(f"{'step':>6s} {'L_n':>8s} {'LLC':>8s} {'se':>6s} converged")
for r in rows:
    print(f"{int(float(r['step'])):6d} {float(r['L_n']):8.4f} {r['llc_mean'][:8]:>8s} {r['llc_stderr'][:6]:>6s} {r['converged']}")
