"""Figure of the per-layer (weight-restricted) LLCs beside the LLC of the whole model."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def per_layer(labels, means, stderrs, *, full: float | None = None, full_stderr: float | None = None,
              full_label: str = "all weights", title: str = ""):
    """Bars: each group's restricted LLC with +-1 standard error (hatched where withheld), and
    the LLC of ``full_label`` (the run's main estimate) as the last, grey bar."""
    labels = list(labels) + ([full_label] if full is not None else [])
    means = [np.nan if m is None else m for m in means] + ([full] if full is not None else [])
    errs = [0.0 if s is None else s for s in stderrs] + ([full_stderr or 0.0] if full is not None else [])
    colors = ["C0"] * (len(labels) - (full is not None)) + (["0.55"] if full is not None else [])
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(labels) + 1.5), 3.6))
    x = np.arange(len(labels))
    ax.bar(x, np.nan_to_num(means), yerr=errs, color=colors, capsize=4)
    for i, m in enumerate(means):
        if not np.isfinite(m):
            ax.bar(x[i], 0.0, hatch="//", edgecolor="C3", fill=False)
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_ylabel("restricted LLC")
    ax.set_title(title or "per-layer LLC")
    fig.tight_layout()
    return fig
