"""The learning-coefficient benchmark: slt's LLC and lambda_hat on deep linear networks and
reduced-rank regression against Aoyagi's exact lambda, and devinterp 1.3.2 at equal wall time.

Every case: widths [H_1, ..., H_{L+1}] (identity activations, no biases), a truth whose
product matrix has rank r (``slt.models.deep_linear_truth``: N(0, 1) weights of a narrow
network [H_1, r, ..., r, H_{L+1}] embedded with zero extra units), x ~ N(0, I), unit noise,
n = 1e4 or 1e5. slt runs exactly what ``slt llc`` runs at its defaults with ``at: truth``:
refine (the minimiser of L_n next to the truth, from a 1e-3 jitter), the LLC with HMC and
``num_draws: auto`` (8 chains, nbeta = n / log n, gamma = 1), then ``lambda_hat`` (4 disjoint
data subsets). Seconds are wall time of all of it, compilation included (persistent cache off).

devinterp (``benchmarks/devinterp_dln.py`` in its own venv, ``benchmarks/.venv-devinterp``;
skipped when absent) estimates the same quantity (same data, same point w_hat, nbeta, gamma)
with SGLD at its documented settings, given the same wall time as slt took on that case.

Run:  python benchmarks/bench_lambda.py [--quick] [--skip-devinterp] [--cases K ...]
Writes benchmarks/lambda.csv, benchmarks/lambda.json, benchmarks/lambda.md and
figures/lambda_benchmark.png. ``python benchmarks/run.py --only lambda`` runs it too.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / "benchmarks" / ".venv-devinterp" / "bin" / "python"
PEER = ROOT / "benchmarks" / "devinterp_dln.py"
CACHE = ROOT / "benchmarks" / ".cache"

# (widths, true rank, n)
CASES = [
    ([2, 2, 2], 0, 10_000), ([2, 2, 2], 0, 100_000),
    ([3, 3, 3, 3], 0, 10_000),
    ([2, 2, 2, 2], 0, 10_000), ([2, 2, 2, 2], 0, 100_000),
    ([3, 4, 2, 5], 1, 10_000), ([3, 4, 2, 5], 1, 100_000),
    ([5, 4, 3, 4, 5], 2, 10_000), ([5, 4, 3, 4, 5], 2, 100_000),
    ([4, 6, 6, 6, 4], 2, 10_000),
    ([2, 3, 3, 3, 2], 0, 10_000),
    ([4, 4, 4, 4, 4], 1, 10_000),
    ([3, 3, 3, 3, 3, 3], 1, 10_000),
    ([5, 3, 5], 1, 10_000), ([3, 8, 4], 2, 10_000), ([6, 2, 5], 1, 10_000),
    ([8, 8, 8, 8], 2, 10_000),
    ([10, 12, 10, 8], 3, 100_000),
    ([20, 30, 30, 20], 3, 10_000),
]


def run_slt(widths, r, n, seed, quick=False) -> dict:
    import jax
    import numpy as np

    from slt import data, models
    from slt.estimators import exact
    from slt.estimators import learning_coefficient as lc
    from slt.estimators import lambda_hat as lambda_hat_mod
    from slt.posterior import Problem

    ex = exact.dln_lambda(widths, r)
    key = jax.random.key(seed)
    tspec, tparams, w0 = models.deep_linear_truth(jax.random.fold_in(key, 0), widths, r)
    ds = data.synthesize(jax.random.fold_in(key, 1), tspec, tparams, n, 1.0, dist="normal")
    spec = models.make_mlp(widths, "identity", False)
    p = Problem.make(spec, ds)
    t0 = time.perf_counter()
    w_hat, loss_hat, grad_norm = lc.refine_point(p, w0, key=jax.random.fold_in(key, 2))
    kwargs = dict(max_draws=1000) if quick else {}
    res = lc.llc_for_problem(jax.random.fold_in(key, 3), p, w_hat, **kwargs)
    lam = lambda_hat_mod.lambda_hat(jax.random.fold_in(key, 4), p, w_hat, res, **kwargs) if res.mean is not None else None
    seconds = time.perf_counter() - t0
    at_truth = None if res.mean is None else res.mean - res.nbeta * (float(p.loss(w0)) - loss_hat)
    se = None if res.mean is None else max(res.mcse, res.std / math.sqrt(res.num_chains))
    row = {"widths": "-".join(map(str, widths)), "L": len(widths) - 1, "r": r, "d": p.d, "n": n,
           "lambda": ex.lam, "m": ex.multiplicity, "llc": res.mean, "llc_se": se,
           "llc_at_truth": at_truth, "lambda_hat": lam.value if lam else None,
           "lambda_hat_se": lam.stderr if lam else None, "data_sd": lam.data_sd if lam else None,
           "extrapolation": lam.extrapolation if lam else None,
           "extrapolation_se": lam.extrapolation_se if lam else None,
           "subsets": list(lam.per_subset) if lam else None, "mcse": lam.mcse if lam else None,
           "converged": res.converged, "num_draws": res.num_draws, "steps_per_draw": res.steps_per_draw,
           "grad_norm_w_hat": grad_norm, "seconds": seconds, "warnings": " | ".join(res.warnings)}
    if lam:
        row["rel_err"] = (lam.value - ex.lam) / ex.lam
        row["z"] = (lam.value - ex.lam) / lam.stderr
    CACHE.mkdir(exist_ok=True)
    case_file = CACHE / f"dln_{row['widths']}_r{r}_n{n}.npz"
    np.savez(case_file, x=np.asarray(p.x, np.float64), y=np.asarray(p.y, np.float64),
             widths=np.asarray(widths), w_star=np.asarray(w_hat, np.float64), nbeta=res.nbeta, gamma=1.0)
    row["_case_file"] = str(case_file)
    return row


def run_devinterp(row) -> dict:
    out = CACHE / (Path(row["_case_file"]).stem + "_devinterp.json")
    cmd = [str(VENV_PY), str(PEER), row["_case_file"], str(out), "--budget-s", f"{row['seconds']:.1f}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        return {"devinterp_error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    dv = json.loads(out.read_text())
    return {"devinterp_llc": dv["llc_mean"], "devinterp_std": dv["llc_std"],
            "devinterp_s": dv["wall_s"] + dv.get("probe_s", 0.0), "devinterp_draws": dv["draws"],
            "devinterp_chains": dv["chains"], "devinterp_lr": dv["lr"],
            "devinterp_rel_err": (dv["llc_mean"] - row["lambda"]) / row["lambda"]}


def statistics(rows) -> dict:
    import numpy as np

    ok = [r for r in rows if r.get("lambda_hat") is not None]
    err = np.array([abs(r["rel_err"]) for r in ok])
    m1 = [abs(r["rel_err"]) for r in ok if r["m"] == 1]
    mh = [abs(r["rel_err"]) for r in ok if r["m"] > 1]
    cover = np.mean([abs(r["z"]) <= 2.5 for r in ok]) if ok else float("nan")
    llc_err = [abs(r["llc"] - r["lambda"]) / r["lambda"] for r in ok]
    truth_err = [abs(r["llc_at_truth"] - r["lambda"]) / r["lambda"] for r in ok]
    stats = {"cases": len(rows), "estimated": len(ok),
             "median_abs_rel_err": float(np.median(err)) if ok else None,
             "max_abs_rel_err_m1": max(m1) if m1 else None,
             "max_abs_rel_err_m_gt_1": max(mh) if mh else None,
             "within_10pct_m1": f"{sum(e <= 0.10 for e in m1)}/{len(m1)}",
             "within_15pct_m_gt_1": f"{sum(e <= 0.15 for e in mh)}/{len(mh)}",
             "coverage_2.5se": float(cover),
             "converged": f"{sum(bool(r['converged']) for r in rows)}/{len(rows)}",
             "median_abs_rel_err_at_truth": float(np.median(truth_err)) if ok else None,
             "median_abs_rel_err_llc_at_w_hat": float(np.median(llc_err)) if ok else None}
    failed = [r for r in ok if r.get("devinterp_error")]
    if failed:
        stats["devinterp_failed"] = f"{len(failed)}/{len(ok)} (NaN loss at its documented lr)"
    dv = [r for r in ok if r.get("devinterp_llc") is not None]
    if dv:
        stats["devinterp_cases"] = len(dv)
        stats["slt_smaller_error"] = f"{sum(abs(r['rel_err']) < abs(r['devinterp_rel_err']) for r in dv)}/{len(dv)}"
        stats["devinterp_median_abs_rel_err"] = float(np.median([abs(r["devinterp_rel_err"]) for r in dv]))
    return stats


def figure(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in rows if r.get("lambda_hat") is not None]
    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    lo = min(r["lambda"] for r in ok) / 1.5
    hi = max(r["lambda"] for r in ok) * 1.5
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, label="exact")
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9", label="±10%")
    for marker, cond, label in (("o", lambda r: r["m"] == 1, "slt lambda_hat, m = 1"),
                                ("s", lambda r: r["m"] > 1, "slt lambda_hat, m > 1")):
        sel = [r for r in ok if cond(r)]
        if sel:
            ax.errorbar([r["lambda"] for r in sel], [r["lambda_hat"] for r in sel],
                        yerr=[2.5 * r["lambda_hat_se"] for r in sel], fmt=marker, ms=5, capsize=2,
                        color="C0" if marker == "o" else "C1", label=label + " (±2.5 se)")
    dv = [r for r in ok if r.get("devinterp_llc") is not None]
    if dv:
        ax.plot([r["lambda"] for r in dv], [min(max(r["devinterp_llc"], lo), hi) for r in dv], "x", color="C3",
                label="devinterp SGLD, same wall time\n(off-scale values drawn on the edge;\n"
                      f"{sum(bool(r.get('devinterp_error')) for r in ok)} more diverged)")
    ax.plot([r["lambda"] for r in ok], [max(r["llc_at_truth"], lo) for r in ok], ".", color="0.5",
            label="LLC at the truth itself")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("exact lambda (Aoyagi)")
    ax.set_ylabel("estimate")
    ax.set_title("Learning coefficient of deep linear networks\n(n = 1e4 / 1e5, nbeta = n / log n, gamma = 1)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    del np


def _peer_failure(row) -> str:
    err = " ".join(row.get("devinterp_error") or [])
    if not err:
        return ""
    return "diverged (NaN loss)" if "NaN" in err else "failed"


def markdown(rows, stats, info) -> str:
    head = ("| widths | r | d | n | lambda | m | LLC at w_hat ± se | LLC at truth | lambda_hat ± se | rel. err "
            "| z | converged | draws | s | devinterp (same s) | devinterp rel. err |")
    lines = [f"# Learning-coefficient benchmark ({info['date_utc']}, {info['cpu']}, {info['cpu_count']} cores, "
             f"load {info['load_avg_1_5_15']})", "",
             "`python benchmarks/bench_lambda.py`; slt at its `slt llc` defaults (HMC, num_draws auto, "
             "8 chains, nbeta = n/log n, gamma = 1, at: truth refined); seconds include compilation.", "",
             head, "|" + "---|" * (head.count("|") - 1)]

    def f(v, fmt):
        return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)

    for r in rows:
        lines.append(
            f"| {r['widths']} | {r['r']} | {r['d']} | {r['n']:.0e} | {r['lambda']:g} | {r['m']} "
            f"| {f(r['llc'], '.3f')} ± {f(r['llc_se'], '.3f')} | {f(r['llc_at_truth'], '.3f')} "
            f"| {f(r.get('lambda_hat'), '.3f')} ± {f(r.get('lambda_hat_se'), '.3f')} | {f(r.get('rel_err'), '+.1%')} "
            f"| {f(r.get('z'), '+.1f')} | {r['converged']} | {r['num_draws']} | {r['seconds']:.0f} "
            f"| {f(r.get('devinterp_llc'), '.3f') or _peer_failure(r)} | {f(r.get('devinterp_rel_err'), '+.1%')} |")
    lines += ["", "## Summary", ""] + [f"- {k}: {v:.3g}" if isinstance(v, float) else f"- {k}: {v}"
                                       for k, v in stats.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 small cases, capped draws (smoke test)")
    ap.add_argument("--skip-devinterp", action="store_true")
    ap.add_argument("--cases", type=int, nargs="+", default=None, help="indices into CASES")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks"))
    ap.add_argument("--render", action="store_true",
                    help="re-render lambda.md and the figure from lambda.json; runs nothing")
    args = ap.parse_args(argv)
    if args.render:
        res = json.loads((Path(args.out) / "lambda.json").read_text())
        res["stats"] = statistics(res["rows"])
        (Path(args.out) / "lambda.json").write_text(json.dumps(res, indent=1))
        (Path(args.out) / "lambda.md").write_text(markdown(res["rows"], res["stats"], res["info"]))
        figure(res["rows"], ROOT / "figures" / "lambda_benchmark.png")
        print(json.dumps(res["stats"], indent=1))
        return 0
    os.environ.setdefault("SLT_NO_COMPILATION_CACHE", "1")
    from slt.cli import configure_jax

    configure_jax(cache=False)
    from run import machine_info

    cases = [CASES[i] for i in args.cases] if args.cases else (CASES[:1] + CASES[5:6] + CASES[13:14]
                                                               if args.quick else CASES)
    peer = VENV_PY.exists() and PEER.exists() and not args.skip_devinterp and not args.quick
    rows = []
    for i, (widths, r, n) in enumerate(cases):
        row = run_slt(widths, r, n, args.seed + i, quick=args.quick)
        if peer:
            row.update(run_devinterp(row))
        rows.append(row)
        print(f"[{i + 1}/{len(cases)}] {row['widths']} r={r} n={n:.0e}: lambda {row['lambda']:g} (m {row['m']}) "
              f"llc {row['llc']} lambda_hat {row.get('lambda_hat')} ± {row.get('lambda_hat_se')} "
              f"({row.get('rel_err', float('nan')):+.1%}) converged {row['converged']} {row['seconds']:.0f}s"
              + (f" | devinterp {row.get('devinterp_llc')} ({row.get('devinterp_rel_err', float('nan')):+.1%})"
                 if peer else ""), flush=True)
    stats = statistics(rows)
    info = machine_info()
    out = Path(args.out)
    for r in rows:
        r.pop("_case_file", None)
    suffix = "_quick" if args.quick else ""
    (out / f"lambda{suffix}.json").write_text(json.dumps({"info": info, "stats": stats, "rows": rows}, indent=1))
    import csv

    keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    with open(out / f"lambda{suffix}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    (out / f"lambda{suffix}.md").write_text(markdown(rows, stats, info))
    if not args.quick:   # the published figure only from a run into benchmarks/
        figure(rows, (ROOT / "figures" if out.resolve() == (ROOT / "benchmarks").resolve() else out)
               / "lambda_benchmark.png")
    print(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
