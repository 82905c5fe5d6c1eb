"""Figures of the free-energy stage and of sweeps over n."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def temperature_curve(betas, mean, mcse, *, i_grid, i_window, power: float, nL_truth=None, exact=None,
                      slope=None, ti=None, exact_free_energy=None, title: str = ""):
    """Left: ``E^beta[n L_n] - n L_n(w0)`` against beta (log-log), 2-sigma error bars, the exact
    curve (linear regression), the fitted ``lambda/beta`` over the lambda window, and
    ``beta* = 1/log n``. Right: the TI integrand in ``t = beta^(1/p)``,
    ``p t^(p-1) (E^{t^p}[n L_n] - E^1[n L_n])``, whose area plus ``E^1[n L_n]`` is ``F_n``."""
    betas, mean, mcse = (np.asarray(a, float) for a in (betas, mean, mcse))
    ref = nL_truth if nL_truth is not None else mean[-1]
    ref_name = r"n L_n(w_0)" if nL_truth is not None else r"E^1[n L_n]"
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.3))
    pos = betas > 0
    ax.errorbar(betas[pos], mean[pos] - ref, yerr=2 * mcse[pos], fmt="o", ms=3.5, color="C0", capsize=2,
                label=r"$E^\beta[nL_n] - " + ref_name + r"$ ($\pm 2$ MCSE)")
    if exact is not None:
        ax.plot(betas[pos], np.asarray(exact)[pos] - ref, "k--", lw=1, label="exact (closed form)")
    win = np.asarray(i_window)
    if slope is not None:
        bw = np.geomspace(betas[win].min() / 3, min(1.0, betas[win].max() * 3), 50)
        ax.plot(bw, slope.intercept + slope.slope / bw - ref, color="C3", lw=1.2,
                label=rf"fit $\hat\lambda/\beta$: $\hat\lambda$ = {slope.slope:.2f} ± {slope.stderr:.2f}")
    ax.axvspan(betas[win].min(), betas[win].max(), color="C3", alpha=0.12, label=r"$\lambda$ window")
    ax.set_xscale("log")
    ymin = np.min((mean - ref)[pos])
    if np.all((mean - ref)[pos] > 0):
        ax.set_yscale("log")
    elif ymin < 0:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel(r"$E^\beta[nL_n] - " + ref_name + "$")
    ax.set_title(title or r"$E^\beta[nL_n]$ across temperatures")
    ax.legend(fontsize=7.5)

    grid = np.asarray(i_grid)
    b, e, s = betas[grid], mean[grid], mcse[grid]
    t = b ** (1.0 / power)
    jac = power * t ** (power - 1)
    g = jac * (e - e[-1])
    ax2.errorbar(t, g, yerr=2 * jac * s, fmt="o-", ms=3.5, color="C0", capsize=2, lw=1,
                 label=r"$p\,t^{p-1}(E^{t^p}[nL_n] - E^1[nL_n])$")
    ax2.fill_between(t, 0, g, color="C0", alpha=0.15)
    if exact is not None:
        ge = jac * (np.asarray(exact)[grid] - np.asarray(exact)[grid][-1])
        ax2.plot(t, ge, "k--", lw=1, label="exact")
    txt = []
    if ti is not None:
        txt.append(f"TI: F_n = {ti.free_energy:.2f} ± {ti.stderr:.2f}")
    if exact_free_energy is not None:
        txt.append(f"exact F_n = {exact_free_energy:.2f}")
    if txt:
        ax2.text(0.97, 0.95, "\n".join(txt), transform=ax2.transAxes, ha="right", va="top", fontsize=8)
    ax2.set_xlabel(rf"$t = \beta^{{1/{power:g}}}$ (uniform grid)")
    ax2.set_ylabel("TI integrand")
    ax2.set_title(r"$F_n = E^1[nL_n] + \int_0^1 (\dots)\,dt$")
    ax2.legend(fontsize=7.5)
    fig.tight_layout()
    return fig


def sweep_curve(n, y, yerr, *, fit=None, wbic=None, title: str = "", label: str = "TI",
                reference_lambdas: dict | None = None):
    """``F_n - n L_n(w0)`` against ``log n`` with 1-sigma error bars, the fitted
    ``lambda log n + c`` line, WBIC's values, and optional reference slopes (name -> lambda)
    drawn through the fit's centre."""
    n, y = np.asarray(n, float), np.asarray(y, float)
    yerr = None if yerr is None else np.asarray(yerr, float)
    x = np.log(n)
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    ax.errorbar(x, y, yerr=yerr, fmt="o", color="C0", capsize=3, label=rf"{label}: $F_n - nL_n(w_0)$")
    if wbic is not None:
        ax.plot(x, np.asarray(wbic, float), "s", color="C2", ms=4, mfc="none",
                label=r"WBIC $- nL_n(w_0)$")
    xx = np.linspace(x.min() - 0.2, x.max() + 0.2, 50)
    if fit is not None:
        ax.plot(xx, fit.intercept + fit.slope * xx, color="C3",
                label=rf"fit: $\hat\lambda$ = {fit.slope:.2f} ± {fit.stderr:.2f}")
        if reference_lambdas:
            xc = x.mean()
            yc = fit.intercept + fit.slope * xc
            for i, (name, lam) in enumerate(reference_lambdas.items()):
                ax.plot(xx, yc + lam * (xx - xc), ls=":", color=f"C{4 + i}", label=f"{name}: slope {lam:g}")
    ax.set_xlabel(r"$\log n$")
    ax.set_ylabel(r"$F_n - nL_n(w_0)$  (nats)")
    ax.set_title(title or r"free energy vs $\log n$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
