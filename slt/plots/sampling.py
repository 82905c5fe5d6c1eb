"""Figures of a posterior sampling run: L_n traces and rank plots, posterior predictive."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats


def loss_trace(loss: np.ndarray, warmup_loss: np.ndarray | None = None, *, title: str = "",
               truth_loss: float | None = None):
    """Per-chain trace of L_n (warmup shaded) and the rank plot across chains."""
    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    num_chains = loss.shape[0]
    nw = 0 if warmup_loss is None else warmup_loss.shape[1]
    for c in range(num_chains):
        if nw:
            ax_t.plot(np.arange(nw), warmup_loss[c], lw=0.5, alpha=0.35, color=f"C{c}")
        ax_t.plot(nw + np.arange(loss.shape[1]), loss[c], lw=0.6, color=f"C{c}", label=f"chain {c}")
    if nw:
        ax_t.axvspan(0, nw, color="0.9", zorder=-1, label="warmup")
        lo, hi = np.percentile(loss, [0.5, 99.5])
        pad = 0.5 * (hi - lo + 1e-12)
        ax_t.set_ylim(lo - pad, hi + pad)
    if truth_loss is not None:
        ax_t.axhline(truth_loss, color="k", ls="--", lw=1, label=r"$L_n(w_0)$")
    ax_t.set_xlabel("iteration")
    ax_t.set_ylabel(r"$L_n(w)$")
    ax_t.set_title(title or r"trace of $L_n$")
    if num_chains <= 8:
        ax_t.legend(fontsize=7, ncol=2, loc="upper right")
    ranks = stats.rankdata(loss.ravel()).reshape(loss.shape)
    bins = np.linspace(0, ranks.size, 21)
    for c in range(num_chains):
        hist, _ = np.histogram(ranks[c], bins=bins)
        ax_r.step(bins[:-1], hist + 0 * c, where="post", color=f"C{c}", lw=1)
    ax_r.axhline(loss.shape[1] / 20, color="k", ls=":", lw=1, label="uniform")
    ax_r.set_xlabel(r"rank of $L_n$ (all chains)")
    ax_r.set_ylabel("count per chain")
    ax_r.set_title("rank plot (flat = mixed)")
    ax_r.legend(fontsize=7)
    fig.tight_layout()
    return fig


def posterior_predictive(x: np.ndarray, y: np.ndarray, predictions: np.ndarray, *,
                         truth: np.ndarray | None = None, title: str = ""):
    """Observed y against the posterior mean prediction with a 90% band of f(x, w).

    ``predictions`` has shape (draws, n_points, d_out) at the data inputs.
    For 1-D inputs, y is plotted against x; otherwise against the mean prediction.
    """
    mean = predictions.mean(axis=0)[..., 0]
    lo, hi = np.percentile(predictions[..., 0], [5, 95], axis=0)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if x.shape[1] == 1:
        order = np.argsort(x[:, 0])
        ax.scatter(x[:, 0], y[:, 0], s=4, alpha=0.3, color="0.4", label="data")
        ax.plot(x[order, 0], mean[order], color="C0", label="posterior mean f(x, w)")
        ax.fill_between(x[order, 0], lo[order], hi[order], color="C0", alpha=0.25, label="90% band of f")
        if truth is not None:
            ax.plot(x[order, 0], truth[order, 0], "k--", lw=1, label="truth f(x, w0)")
        ax.set_xlabel("x")
    else:
        order = np.argsort(mean)
        ax.scatter(mean, y[:, 0], s=4, alpha=0.3, color="0.4", label="data")
        ax.fill_between(mean[order], lo[order], hi[order], color="C0", alpha=0.3, label="90% band of f")
        ax.plot(mean[order], mean[order], color="C0", lw=1, label="y = posterior mean")
        if truth is not None:
            ax.scatter(mean, truth[:, 0], s=3, color="k", label="truth f(x, w0)")
        ax.set_xlabel("posterior mean prediction E[f(x, w)]")
    ax.set_ylabel("y (first output)")
    ax.set_title(title or "posterior predictive")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def predictive_surface(grid: np.ndarray, predictions: np.ndarray, truth: np.ndarray | None,
                       x: np.ndarray, *, title: str = "", quantity: str = "f(x, w)", labels=None):
    """For 2-D inputs: truth, posterior mean and posterior sd of ``quantity`` (f(x, w), or a
    class probability) over the input plane.

    ``grid`` (g, g, 2); ``predictions`` (draws, g, g) of the first output; ``truth`` (g, g);
    ``labels`` (n,) class labels of the data inputs (classification: points coloured by class).
    """
    mean, sd = predictions.mean(axis=0), predictions.std(axis=0)
    q0 = quantity.replace("w)", "w0)")
    panels = ([(f"truth {q0}", truth)] if truth is not None else []) + [
        (f"posterior mean E[{quantity}]", mean), (f"posterior sd of {quantity}", sd)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False)
    vmin = min(np.min(p) for _, p in panels[:-1])
    vmax = max(np.max(p) for _, p in panels[:-1])
    extent = (grid[..., 0].min(), grid[..., 0].max(), grid[..., 1].min(), grid[..., 1].max())
    for ax, (label, values) in zip(axes[0], panels):
        is_sd = label.startswith("posterior sd")
        im = ax.imshow(values, origin="lower", extent=extent, aspect="auto", cmap="magma" if is_sd else "viridis",
                       vmin=None if is_sd else vmin, vmax=None if is_sd else vmax)
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    if labels is None:
        axes[0, -1].scatter(x[:, 0], x[:, 1], s=1, color="w", alpha=0.3, label="data inputs")
    else:
        labels = np.asarray(labels).ravel()
        for k, colour in zip(np.unique(labels)[:8], ("w", "c", "y", "m", "g", "r", "b", "k")):
            sel = labels == k
            axes[0, -1].scatter(x[sel, 0], x[sel, 1], s=2, color=colour, alpha=0.5, label=f"y = {k:g}")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title or "posterior predictive")
    fig.tight_layout()
    return fig


def replica_diagnostics(betas: np.ndarray, swap_accept: np.ndarray, index_process: np.ndarray, *,
                        round_trips=None, restarts=None, title: str = "", num_replicas: int = 3,
                        max_draws: int = 400):
    """Replica exchange at a glance (what Pigeons shows): left, the local communication barrier
    ``lambda(beta) ~ r_k / |beta_k - beta_{k+1}|`` of each chain against beta (log axis; its
    integral is the global barrier Lambda); right, the index process of a few replicas of chain 0
    over its first ``max_draws`` draws (the level each replica occupies, draw by draw: good mixing shows replicas sweeping from
    beta_0 to beta_{K-1} and back, one sweep a round trip).

    ``betas`` (C, K), ``swap_accept`` (C, K-1), ``index_process`` (C, draws, K): the replica at each
    level."""
    betas, acc = np.asarray(betas, float), np.asarray(swap_accept, float)
    c, k = betas.shape
    fig, (ax_l, ax_i) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    rej = 1.0 - acc
    width = np.abs(np.diff(betas, axis=1))
    mid = 0.5 * (betas[:, :-1] + betas[:, 1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(width > 0, rej / width, np.nan)
    lam = rej.sum(axis=1)
    for j in range(c):
        ax_l.plot(mid[j], local[j], "o-", ms=3, lw=1, color=f"C{j % 10}", alpha=0.8,
                  label=f"chain {j}: $\\Lambda$ = {lam[j]:.2f}" if j < 8 else None)
    ax_l.set_xscale("log")
    ax_l.set_yscale("log")
    ax_l.set_xlabel(r"$\beta$")
    ax_l.set_ylabel(r"local barrier $\lambda(\beta)$")
    ax_l.set_title(f"{k} temperatures; mean $\\Lambda$ = {lam.mean():.2f}", fontsize=10)
    ax_l.legend(fontsize=7)
    idx = np.asarray(index_process)[0, :max_draws]        # (draws, K): replica at each level
    level = np.argsort(idx, axis=1)                       # (draws, K): level of each replica
    for r in range(min(num_replicas, k)):
        ax_i.step(np.arange(idx.shape[0]), level[:, r], where="post", lw=0.9, label=f"replica {r}")
    ax_i.set_yticks([0, k - 1])
    ax_i.set_yticklabels([r"$\beta_0$ (target)", rf"$\beta_{{{k - 1}}}$"])
    ax_i.invert_yaxis()
    ax_i.set_xlabel(f"draw (the first {idx.shape[0]})")
    trips = "" if round_trips is None else f"round trips per chain {list(map(int, round_trips))}"
    rest = "" if restarts is None else f"; tempered restarts {list(map(int, restarts))}"
    ax_i.set_title(f"index process, chain 0\n{trips}{rest}", fontsize=9)
    ax_i.legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
