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
# # Free energy against n: `F_n ≈ n L_n(w0) + lambda log n`
#
# The seed's central claim: the posterior prefers low *free energy*, not low loss, and the
# free energy grows like `n L_n(w0) + lambda log n` with the learning coefficient `lambda`
# (Watanabe 2009). Here we sweep n for four models and read `lambda` off the slope of
# `F_n - n L_n(w0)` against `log n`:
#
# | model | truth | lambda (science.md) | d/2 |
# |---|---|---|---|
# | linear regression `[5, 1]` | random w0 | 5/2 (regular, exact) | 5/2 |
# | two-node ReLU `[2, 2, 1]` | constant (0 nodes) | 1/2 (*derived*) | 9/2 |
# | two-node ReLU `[2, 2, 1]` | one node | 2 (*derived*) | 9/2 |
# | two-node ReLU `[2, 2, 1]` | two nodes | 7/2 (*derived*) | 9/2 |
#
# `F_n` is estimated by thermodynamic integration (TI) and stepping stone on one all-betas
# HMC run per n (see `slt.samplers.tempered`); WBIC is shown against TI to show its bias.
# Run with `SLT_SMALL=1` for a quick check (the test suite does), without for the figures.
#
# This notebook is `experiments/free_energy_vs_n.py` (the source; jupytext pairs the two). The
# outputs saved in the `.ipynb` come from the **small settings** (`SLT_SMALL=1`: three small n,
# short chains), written by `python experiments/build_notebooks.py`: they show what the
# notebook produces, not the published numbers (`figures/free_energy_vs_n.png`, full settings).

# %% tags=["parameters"]
import os

SMALL = os.environ.get("SLT_SMALL", "0") == "1"
OUT = os.environ.get("SLT_OUT", "runs/notebooks")           # sweep directories (reused if complete)
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
import matplotlib.pyplot as plt
import numpy as np

from slt.pipeline import config as config_mod
from slt import progress
from slt.cli import sweep as sweep_mod

ROOT = Path(os.environ.get("SLT_REPO", Path.cwd()))
if not (ROOT / "configs").is_dir():
    ROOT = ROOT.parent
EXPERIMENTS = [
    # (config, label, lambda from science.md, note)
    ("linreg_free_energy.yaml", "linear regression d=5", 2.5, "regular: d/2"),
    ("relu2_truth0_free_energy.yaml", "ReLU [2,2,1], 0-node truth", 0.5, "derived"),
    ("relu2_truth1_free_energy.yaml", "ReLU [2,2,1], 1-node truth", 2.0, "derived"),
    ("relu2_truth2_free_energy.yaml", "ReLU [2,2,1], 2-node truth", 3.5, "derived"),
]
if SMALL:
    OVERRIDES = ["sweep.n=[60, 120, 240]", "sweep.seeds=[0]", "free_energy.num_betas=6",
                 "free_energy.num_chains=2", "free_energy.num_warmup=30", "free_energy.num_samples=30",
                 "lambda.num_betas=3", "output.figures=false"]
else:
    # scaled to the shared 2-core machine (see notes/free_energy.md): 2 seeds, 12-point TI grid
    OVERRIDES = ["sweep.n=[100, 300, 1000, 3000, 10000]", "sweep.seeds=[0, 1]", "free_energy.num_betas=12",
                 "free_energy.num_chains=4", "free_energy.num_warmup=200", "free_energy.num_samples=300",
                 "lambda.num_betas=3", "output.figures=false"]

# %% [markdown]
# ## Run (or resume) the sweeps
# One run directory per (n, seed) under `OUT/<name>-sweep/`; complete points are skipped, so
# re-running the notebook only loads the results.

# %%
results = {}
with progress.bar(len(EXPERIMENTS), "free energy vs n", unit="sweep") as bar:   # terminals only
    for fname, label, lam_ref, note in EXPERIMENTS:
        bar.set_postfix_str(label)
        cfg = config_mod.load(ROOT / "configs" / fname, OVERRIDES)
        sweep_dir = sweep_mod.run_sweep(cfg, out_dir=OUT, backend="local", address=None, num_cpus=None,
                                        log=lambda s: None)
        doc = json.loads((sweep_dir / "sweep.json").read_text())
        results[label] = dict(doc=doc, lam_ref=lam_ref, note=note, d=json.loads(
            (sweep_dir / doc["points"][0]["run_dir"] / "summary.json").read_text())["d"])
        progress.write(f"{label}: {sweep_dir}", stream=sys.stdout)
        bar.update()

# %% [markdown]
# ## `F_n - n L_n(w0)` against `log n`
# Points: TI (error bars: TI standard error, Monte Carlo + quadrature), one per (n, seed);
# red line: the weighted least-squares fit, slope = lambda-hat; dotted: slopes d/2 and the
# science.md value drawn through the fit's centre.

# %%
fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.2))
rows = []
for ax, (label, r) in zip(np.atleast_1d(axes), results.items()):
    pts = r["doc"]["points"]
    n = np.array([p["n"] for p in pts], float)
    y = np.array([p["ti"] - p["nL_n_truth"] for p in pts])
    yerr = np.array([p["ti_stderr"] for p in pts])
    wb = np.array([p["wbic"] - p["nL_n_truth"] for p in pts])
    fit = r["doc"]["lambda"]["log_n_slope"]["ti"]
    x = np.log(n)
    ax.errorbar(x, y, yerr=yerr, fmt="o", ms=4, capsize=2, label="TI")
    ax.plot(x, wb, "s", mfc="none", color="C2", ms=4, label="WBIC")
    xx = np.linspace(x.min() - 0.2, x.max() + 0.2, 20)
    if fit is not None:
        ax.plot(xx, fit["intercept"] + fit["slope"] * xx, "C3",
                label=rf"fit $\hat\lambda$ = {fit['slope']:.2f} ± {fit['stderr']:.2f}")
        xc = x.mean()
        yc = fit["intercept"] + fit["slope"] * xc
        ax.plot(xx, yc + r["d"] / 2 * (xx - xc), ":", color="0.4", label=f"d/2 = {r['d'] / 2:g}")
        ax.plot(xx, yc + r["lam_ref"] * (xx - xc), "--", color="C4", label=f"science.md: {r['lam_ref']:g}")
    ax.set_title(label, fontsize=10)
    ax.set_xlabel(r"$\log n$")
    ax.set_ylabel(r"$F_n - nL_n(w_0)$")
    ax.legend(fontsize=7)
    lam = r["doc"]["lambda"]["log_n_slope"]
    rows.append((label, r["lam_ref"], r["d"] / 2,
                 *(np.nan if lam[k] is None else lam[k]["slope"] for k in ("ti", "stepping_stone", "wbic")),
                 np.nan if lam["ti"] is None else lam["ti"]["stderr"],
                 np.mean([p["beta_slope"] for p in pts if p["beta_slope"] is not None])))
fig.tight_layout()
Path(FIGURES).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(FIGURES) / "free_energy_vs_n.png", dpi=110, bbox_inches="tight")

# %% [markdown]
# ## Fitted lambda against d/2 and science.md
# `z` is (fit - science.md value) / stderr: |z| < 2 confirms the value at this precision; a
# large |z| refutes it (or shows n is still pre-asymptotic: the log log n term when m > 1 and
# the O_p(1) term bias the slope at finite n).

# %%
print(f"{'model':32s} {'science':>7s} {'d/2':>5s} {'TI':>6s} {'SS':>6s} {'WBIC':>6s} {'stderr':>6s} "
      f"{'z':>6s} {'beta-slope':>10s}")
for label, ref, dh, ti, ss, wb, se, bs in rows:
    z = (ti - ref) / se if se and np.isfinite(se) else np.nan
    print(f"{label:32s} {ref:7.2f} {dh:5.1f} {ti:6.2f} {ss:6.2f} {wb:6.2f} {se:6.2f} {z:6.1f} {bs:10.2f}")

# %% [markdown]
# ## WBIC's bias against TI
# WBIC = E^{1/log n}[n L_n] estimates `n L_n(w0) + lambda log n` but not the O_p(1) part of
# `F_n`, and carries an `O_p(sqrt(log n))` term: the difference WBIC - F_n does not vanish
# with n. For the linear regression the exact F_n is shown too.

# %%
fig2, ax2 = plt.subplots(figsize=(6, 4.2))
for i, (label, r) in enumerate(results.items()):
    pts = r["doc"]["points"]
    n = np.array([p["n"] for p in pts], float)
    diff = np.array([p["wbic"] - p["ti"] for p in pts])
    err = np.array([np.hypot(p["wbic_stderr"], p["ti_stderr"]) for p in pts])
    ax2.errorbar(n * (1 + 0.04 * i), diff, yerr=err, fmt="o", ms=4, capsize=2, color=f"C{i}", label=label)
    if pts[0]["exact"] is not None:
        ax2.plot(n, [p["wbic"] - p["exact"] for p in pts], "x", color=f"C{i}", label=f"{label}: WBIC - exact")
ax2.axhline(0, color="k", lw=0.8)
ax2.set_xscale("log")
ax2.set_xlabel("n")
ax2.set_ylabel(r"WBIC $-$ $F_n$ (TI)  (nats)")
ax2.set_title("WBIC's bias as an estimate of the free energy")
ax2.legend(fontsize=7)
fig2.tight_layout()
fig2.savefig(Path(FIGURES) / "wbic_bias.png", dpi=110, bbox_inches="tight")
