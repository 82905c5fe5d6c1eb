"""Figures of Bayesian influence functions: the BIF matrix as a heat map, beside its z-scores
(estimate / standard error) so that the resolved entries stand out from the noise."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def influence_heatmap(bif: np.ndarray, se: np.ndarray, rows: np.ndarray, *, title: str = ""):
    """Left: ``BIF(i, j) = -Cov(l_i, l_j)`` (query rows against training rows; symmetric colour
    scale at the 99th percentile of |BIF|). Right: ``BIF / se``, clipped to +-10."""
    fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(11, 4.6))
    finite = np.abs(bif[np.isfinite(bif)])
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    extent = None
    if len(rows) and np.all(np.diff(rows) == 1):   # a contiguous block: label with row numbers
        extent = (-0.5, bif.shape[1] - 0.5, rows[-1] + 0.5, rows[0] - 0.5)
    im = ax_l.imshow(bif, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest",
                     extent=extent)
    fig.colorbar(im, ax=ax_l, label=r"BIF$(i, j) = -\mathrm{Cov}(l_i, l_j)$")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.clip(np.where(se > 0, bif / se, 0.0), -10, 10)
    im = ax_r.imshow(z, cmap="RdBu_r", vmin=-10, vmax=10, aspect="auto", interpolation="nearest",
                     extent=extent)
    fig.colorbar(im, ax=ax_r, label="BIF / se (clipped at 10)")
    for ax in (ax_l, ax_r):
        ax.set_xlabel("training row j")
        ax.set_ylabel("query row i")
    ax_l.set_title(title or "Bayesian influence function")
    ax_r.set_title("z-score of each entry")
    fig.tight_layout()
    return fig
