"""Figures of singular geometry: the Fisher spectrum, symmetry-normalised posterior nodes in
the input plane (the seed's pictures), node-size and L_n histograms, phase occupancies."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

PHASE_COLOURS = {"true": "C0", "degenerate": "C3", "constant": "0.5", "other": "C2"}


def fisher_spectrum(eigenvalues, tolerance: float, *, rank: int | None = None,
                    gap: float | None = None, title: str = "", ax=None):
    """Eigenvalues of I(w) (descending, log scale) with the rank tolerance drawn."""
    ev = np.asarray(eigenvalues, float)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
    top = max(float(np.max(ev)), 1e-300) if ev.size else 1.0
    eps_level = np.finfo(np.float64).eps * top           # float64 rounding level of eigvalsh
    floor = eps_level * 1e-2
    shown = np.maximum(np.abs(ev), eps_level)             # eigenvalues below rounding drawn at it
    colours = ["C0" if e > tolerance else "C3" for e in ev]
    ax.bar(np.arange(1, ev.size + 1), shown - floor, color=colours, bottom=floor)
    ax.set_yscale("log")
    ax.axhline(tolerance, color="k", ls="--", lw=1, label=f"rank tolerance {tolerance:.1e}")
    ax.axhline(eps_level, color="0.5", ls=":", lw=1, label="float64 rounding level")
    ax.set_xlabel("eigenvalue index k")
    ax.set_ylabel(r"$|\lambda_k(I(w))|$")
    ax.set_xticks(np.arange(1, ev.size + 1))
    bits = []
    if rank is not None:
        bits.append(f"rank {rank} of {ev.size}")
    if gap is not None and np.isfinite(gap):
        bits.append(f"gap at tolerance {gap:.1e}")
    ax.set_title(title or ("Fisher information spectrum" + (": " + ", ".join(bits) if bits else "")),
                 fontsize=10)
    ax.plot([], [], "s", color="C0", label="counted in rank")
    ax.plot([], [], "s", color="C3", label="null (below tolerance)")
    ax.legend(fontsize=8, loc="lower left")
    if fig is not None:
        fig.tight_layout()
    return fig if fig is not None else ax.figure


def node_scatter(panels, *, truth_nodes=None, title: str = "", max_points: int = 20000,
                 lim: float | None = None, colour_by: str = "node", ncols: int | None = None,
                 names=None, xlabel: str | None = None, ylabel: str | None = None):
    """Every node of every draw as a point ``w_hat_i = |q_i| w_i`` in the input plane.

    Args:
      panels: list of ``(label, w_hat, truth_nodes_or_None)`` or
        ``(label, w_hat, truth_nodes_or_None, phase_labels)`` with ``w_hat`` of shape
        (draws, h, 2) (normalised, canonicalised nodes) and ``phase_labels`` (draws,) indices
        into ``names``. One panel each (per beta, n or t).
      truth_nodes: (k, 2) normalised true nodes marked in every panel (overridden per panel).
      colour_by: ``"node"`` (node index after canonicalisation; one colour beyond 10 nodes) or
        ``"density"``; a panel with phase labels is coloured by the draw's phase.
      xlabel, ylabel: axis labels (default: the first two input coordinates of ``w_hat``).
    """
    k = len(panels)
    ncols = ncols or min(k, 4)
    nrows = int(np.ceil(k / ncols))
    size = 4.6 if k == 1 else 3.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False)
    rng = np.random.default_rng(0)
    for a, panel in zip(axes.flat, panels):
        label, w_hat, tn = panel[:3]
        phases = panel[3] if len(panel) > 3 else None
        w_hat = np.asarray(w_hat)
        draws, h = w_hat.shape[:2]
        sel = rng.choice(draws, size=min(draws, max(1, max_points // h)), replace=False)
        pts = w_hat[sel]
        if phases is not None:
            names = names if names is not None else tuple(PHASE_COLOURS)
            lab = np.asarray(phases).reshape(-1)
            shown = lab[sel]
            for j, name in enumerate(names):
                m = shown == j
                if m.any():
                    flat = pts[m].reshape(-1, 2)
                    colour = PHASE_COLOURS.get(name, f"C{j}")
                    a.scatter(flat[:, 0], flat[:, 1], s=2, alpha=0.25, color=colour, rasterized=True)
                    a.plot([], [], "o", ms=4, color=colour, label=f"{name} ({np.mean(lab == j):.0%})")
        elif colour_by == "density":
            flat = pts.reshape(-1, 2)
            a.hexbin(flat[:, 0], flat[:, 1], gridsize=60, bins="log", cmap="viridis", mincnt=1)
        elif h > 10:
            flat = pts.reshape(-1, 2)
            a.scatter(flat[:, 0], flat[:, 1], s=2, alpha=0.25, color="C0", rasterized=True)
            a.plot([], [], "o", ms=4, color="C0", label=f"nodes ({h} per draw)")
        else:
            for i in range(h):
                a.scatter(pts[:, i, 0], pts[:, i, 1], s=2, alpha=0.25, color=f"C{i}",
                          rasterized=True)
                a.plot([], [], "o", ms=4, color=f"C{i}", label=f"node {i + 1}")
        tn = truth_nodes if tn is None else tn
        if tn is not None and len(tn):
            tn = np.asarray(tn)
            a.scatter(tn[:, 0], tn[:, 1], marker="*", s=160, color="k", edgecolor="w", zorder=5)
            a.plot([], [], "*", ms=9, color="k", label="true nodes")
        a.axhline(0, color="0.8", lw=0.5, zorder=-1)
        a.axvline(0, color="0.8", lw=0.5, zorder=-1)
        if lim is not None:
            a.set_xlim(-lim, lim)
            a.set_ylim(-lim, lim)
        # equal scales by widening the data limits, not by shrinking the axes box: a box
        # shrunk to the data's aspect left a tall blank band under the title
        a.set_aspect("equal", adjustable="datalim")
        a.set_xlabel(xlabel or r"$\hat w_{i,1} = |q_i| w_{i,1}$")
        a.set_ylabel(ylabel or r"$\hat w_{i,2} = |q_i| w_{i,2}$")
        a.set_title(label, fontsize=9)
        a.legend(fontsize=7, loc="lower right")
    for a in axes.flat[k:]:
        a.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def node_histograms(w_hat, loss, *, labels=None, names=None, truth_loss: float | None = None,
                    title: str = ""):
    """Histograms of ``|w_hat_i|`` per node and of ``L_n`` (coloured by phase when given)."""
    w_hat = np.asarray(w_hat)
    loss = np.asarray(loss).ravel()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    norms = np.linalg.norm(w_hat.reshape(-1, *w_hat.shape[-2:]), axis=-1)
    bins = np.linspace(0, max(norms.max(), 1e-6) * 1.02, 60)
    for i in range(norms.shape[1]):
        a1.hist(norms[:, i], bins=bins, histtype="step", lw=1.4, color=f"C{i}", label=f"node {i + 1}")
    a1.set_xlabel(r"$|\hat w_i| = |q_i|\,\|w_i\|$")
    a1.set_ylabel("draws")
    a1.legend(fontsize=8)
    a1.set_title(r"node sizes $|\hat w_i|$", fontsize=10)
    lb = np.linspace(loss.min(), loss.max() + 1e-12, 60)
    if labels is not None and names is not None:
        lab = np.asarray(labels).ravel()
        for k, name in enumerate(names):
            if (lab == k).any():
                a2.hist(loss[lab == k], bins=lb, alpha=0.6, color=PHASE_COLOURS.get(name, f"C{k}"),
                        label=f"{name} ({(lab == k).mean():.0%})")
    else:
        a2.hist(loss, bins=lb, color="C0", alpha=0.7, label="draws")
    if truth_loss is not None:
        a2.axvline(truth_loss, color="k", ls="--", lw=1, label=r"$L_n(w_0)$")
    a2.set_xlabel(r"$L_n(w)$")
    a2.set_ylabel("draws")
    a2.legend(fontsize=8)
    a2.set_title(r"$L_n$ of the draws", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def phase_occupancy(xs, occupancy, se, names, *, xlabel: str, title: str = "", marks=(),
                    ax=None, logx: bool = False):
    """Occupancy of each phase (K, len(xs)) against a parameter, with Monte Carlo error bars."""
    occupancy, se = np.asarray(occupancy), np.asarray(se)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.8))
    for k, name in enumerate(names):
        if np.nanmax(occupancy[k]) <= 0:
            continue
        ax.errorbar(xs, occupancy[k], yerr=se[k], marker="o", ms=4, capsize=3,
                    color=PHASE_COLOURS.get(name, f"C{k}"), label=name)
    for x, text in marks:
        ax.axvline(x, color="0.5", ls=":", lw=1)
        ax.text(x, 0.5, text, fontsize=7, ha="right", va="center", color="0.3", rotation=90,
                transform=ax.get_xaxis_transform())
    if logx:
        ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("posterior occupancy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    if fig is not None:
        fig.tight_layout()
    return fig if fig is not None else ax.figure
