"""Figures of LLC estimation: per-chain loss traces with the running LLC, and the
step-size x nbeta calibration grid (like devinterp's epsilon-beta analysis)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def llc_traces(loss_trace: np.ndarray, running_mean: np.ndarray, loss_at_w_star: float, *,
               llc: float | None = None, title: str = ""):
    """Left: L at every draw per chain, with L(w*). Right: per-chain running LLC estimates
    ``nbeta (mean_{s<=t} L_s - L(w*))`` and the final pooled estimate."""
    fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(11, 3.8))
    num_chains, num_draws = loss_trace.shape
    t = np.arange(1, num_draws + 1)
    for c in range(num_chains):
        ax_l.plot(t, loss_trace[c], lw=0.5, alpha=0.8, color=f"C{c % 10}")
        ax_r.plot(t, running_mean[c], lw=1, color=f"C{c % 10}", label=f"chain {c}")
    ax_l.axhline(loss_at_w_star, color="k", ls="--", lw=1, label=r"$L_n(w^*)$")
    ax_l.set_xlabel("draw")
    ax_l.set_ylabel(r"$L_n(w)$")
    ax_l.set_title(title or "loss traces")
    ax_l.legend(fontsize=7, loc="upper right")
    if llc is not None:
        ax_r.axhline(llc, color="k", ls="--", lw=1, label=f"LLC = {llc:.3g}")
    finite = running_mean[np.isfinite(running_mean)]
    if finite.size:
        lo, hi = np.percentile(finite[len(finite) // 10:], [1, 99]) if finite.size > 10 else (finite.min(), finite.max())
        pad = 0.3 * (hi - lo) + 1e-9
        ax_r.set_ylim(lo - pad, hi + pad)
    ax_r.set_xlabel("draw")
    ax_r.set_ylabel("running LLC estimate")
    ax_r.set_title("LLC running mean per chain")
    if num_chains <= 8:
        ax_r.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def calibration(step_sizes: np.ndarray, nbetas: np.ndarray, llc: np.ndarray, llc_std: np.ndarray,
                acceptance: np.ndarray, traces: np.ndarray | None = None, *, sampler: str = "sgld",
                title: str = ""):
    """``llc``, ``llc_std``, ``acceptance``: (num_nbetas, num_step_sizes) (NaN where diverged);
    ``traces``: (num_nbetas, num_step_sizes, draws) mean-over-chains ``nbeta (L - L(w*))``.

    Top: LLC against step size per nbeta (a plateau at small steps is the trustworthy region;
    SGLD's estimate rises once the step size biases it). Middle: MH acceptance (estimated for
    SGLD). Bottom: the traces, one panel per nbeta (they should be flat after burn-in)."""
    rows = 3 if traces is not None else 2
    fig, axes = plt.subplots(rows, max(1, len(nbetas)) if traces is not None else 1,
                             figsize=(4.2 * max(1, len(nbetas)), 3.2 * rows), squeeze=False)
    ax_llc = plt.subplot2grid((rows, 1), (0, 0), fig=fig)
    ax_acc = plt.subplot2grid((rows, 1), (1, 0), fig=fig)
    for ax in axes[:2].ravel():
        ax.remove()
    for i, nb in enumerate(nbetas):
        ok = np.isfinite(llc[i])
        ax_llc.errorbar(step_sizes[ok], llc[i][ok], yerr=llc_std[i][ok], marker="o", capsize=3,
                        color=f"C{i}", label=f"nbeta = {nb:.4g}")
        if (~ok).any():
            ax_llc.scatter(step_sizes[~ok], np.zeros((~ok).sum()), marker="x", color=f"C{i}",
                           label="diverged" if i == 0 else None)
        ax_acc.plot(step_sizes, acceptance[i], marker="o", color=f"C{i}")
    for ax in (ax_llc, ax_acc):
        ax.set_xscale("log")
    ax_llc.set_ylabel("LLC estimate")
    ax_llc.set_title(title or f"{sampler}: LLC against step size")
    ax_llc.legend(fontsize=8)
    ax_acc.set_ylabel("MH acceptance" + (" (estimate)" if sampler == "sgld" else ""))
    ax_acc.set_xlabel("step size (eps)")
    ax_acc.set_ylim(0, 1.02)
    if traces is not None:
        for i, nb in enumerate(nbetas):
            ax = axes[2, i]
            for j, eps in enumerate(step_sizes):
                ax.plot(traces[i, j], lw=0.6, color=plt.cm.viridis(j / max(1, len(step_sizes) - 1)),
                        label=f"eps={eps:.2g}")
            ax.set_title(f"nbeta = {nb:.4g}", fontsize=9)
            ax.set_xlabel("draw")
            if i == 0:
                ax.set_ylabel(r"$n\beta\,(L - L(w^*))$")
                ax.legend(fontsize=6)
            finite = traces[i][np.isfinite(traces[i])]
            if finite.size:
                lo, hi = np.percentile(finite, [1, 99])
                ax.set_ylim(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo) + 1e-9)
    fig.tight_layout()
    return fig


def llc_trajectory(steps: np.ndarray, llc: np.ndarray, llc_stderr: np.ndarray, loss: np.ndarray, *,
                   converged: np.ndarray | None = None, loss_trace: np.ndarray | None = None,
                   exact: float | None = None, title: str = ""):
    """The LLC along training: LLC +- 2 stderr at each checkpoint (open markers: the trend test
    failed) and the training loss ``L_n`` (checkpoints, and the whole curve when ``loss_trace``
    (steps + 1,) is given) on a twin axis, both against the optimiser step on a log axis."""
    steps = np.asarray(steps, float)
    llc, err = np.asarray(llc, float), np.asarray(llc_stderr, float)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ok = np.isfinite(llc)
    conv = np.ones_like(ok) if converged is None else np.asarray([bool(c) for c in converged])
    for sel, face, label in ((ok & conv, "C0", "LLC $\\pm$ 2 se"), (ok & ~conv, "white", "LLC (not converged)")):
        if sel.any():
            ax.errorbar(steps[sel], llc[sel], yerr=2 * np.nan_to_num(err[sel]), fmt="o", color="C0",
                        mfc=face, capsize=3, lw=1.2, label=label)
    if ok.any():
        ax.plot(steps[ok], llc[ok], color="C0", lw=0.8, alpha=0.6)
    if exact is not None:
        ax.axhline(exact, color="C0", ls=":", lw=1, label=f"exact $\\lambda$ = {exact:.4g}")
    ax.set_xscale("log")
    if ok.any() and llc[ok].min() < -10 * max(1.0, llc[ok].max()):
        # checkpoints far from a minimum give large negative estimates (the chains descend):
        # a symmetric log scale keeps the small positive LLCs of the trained model readable
        ax.set_yscale("symlog", linthresh=max(1.0, float(np.abs(llc[ok & (llc > 0)]).max(initial=1.0))))
    ax.set_xlabel("training step")
    ax.set_ylabel("local learning coefficient", color="C0")
    ax.tick_params(axis="y", colors="C0")
    twin = ax.twinx()
    if loss_trace is not None and len(loss_trace) > 1:
        t = np.arange(1, len(loss_trace))
        twin.plot(t, np.asarray(loss_trace)[1:], color="C3", lw=1, alpha=0.7)
    twin.plot(steps, loss, "s", color="C3", ms=4, label="$L_n$ (training loss)")
    twin.set_ylabel("$L_n(w_t)$", color="C3")
    twin.tick_params(axis="y", colors="C3")
    handles = ax.get_legend_handles_labels()
    h2 = twin.get_legend_handles_labels()
    ax.legend(handles[0] + h2[0], handles[1] + h2[1], fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False)
    ax.set_title(title or "LLC along training")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
