"""What a researcher sees at the end of a command: a short, aligned text summary of a run.

:func:`format_summary` turns a run's ``summary.json`` dict (``slt run``, ``llc``, ``fisher``,
``calibrate``) or a sweep's ``sweep.json`` dict (``slt sweep``) into a few lines of text: the
run name with n and d; the headline estimates with their standard errors (E[n L_n], F_n by
each free-energy method, the global lambda, the LLC, the Fisher rank and nullity); the
convergence diagnostics (R-hat and ESS on symmetry-invariant quantities, divergences,
acceptance); every warning in full, one per line, prefixed ``warning:``; and the run
directory as the last line. It is a pure function of the dict: missing sections and keys are
skipped, estimates that a stage withheld (``null``) read ``withheld``.

:func:`headline` flattens the same numbers into one record (used by the sweep table here and
by :meth:`slt.results.Sweep.table`). :func:`read_summary` reads a run or sweep directory and,
for a sweep, attaches each point's warnings so the text can list them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

WITHHELD = "withheld"
FE_METHODS = (("ti", "TI"), ("stepping_stone", "stepping stone"), ("wbic", "WBIC"), ("smc", "SMC"))


# ----------------------------------------------------------------------------- numbers
def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _decimals(err: float) -> int:
    """Decimals that show two significant digits of ``err``."""
    if not _finite(err) or err <= 0:
        return 4
    return int(min(8, max(0, 1 - math.floor(math.log10(abs(err))))))


def fmt_value(v: Any, err: Any = None) -> str:
    """``v ± err`` rounded to two significant digits of the error; ``v`` alone to 5
    significant digits; ``withheld`` for None."""
    if v is None:
        return WITHHELD
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if not _finite(v):
        return str(v)
    if _finite(err):
        dec = _decimals(err)
        return f"{v:.{dec}f} ± {err:.{dec}f}"
    return f"{v:.5g}"


def _opt(v: Any, spec: str) -> str:
    return WITHHELD if not _finite(v) else format(v, spec)


# ----------------------------------------------------------------------------- headline record
def headline(summary: dict) -> dict:
    """The headline numbers of one run's summary as a flat record (None where absent):
    ``E_nL_n`` (+ ``_mcse``), ``nL_n_truth``, ``ti``/``stepping_stone``/``wbic`` (+ ``_stderr``),
    ``exact``, ``beta_slope`` (+ ``_stderr``), ``llc`` (+ ``llc_stderr``, and ``llc_converged``,
    ``lambda_hat``, ``lambda_hat_stderr``, ``exact_lambda`` when the llc section has them),
    ``fisher_rank``, ``fisher_nullity``, ``rhat_max_invariant``, ``ess_bulk_min_invariant``,
    ``divergences``, ``num_warnings``."""
    loss = summary.get("loss") or {}
    fe = summary.get("free_energy") or {}
    lam = summary.get("lambda") or {}
    llc = summary.get("llc") or {}
    fisher = summary.get("fisher") or {}
    diag = summary.get("diagnostics") or {}
    n = summary.get("n")
    e_nl, e_nl_mcse = _e_nl(summary)
    rec = {
        "n": n, "seed": summary.get("seed"),
        "E_nL_n": e_nl, "E_nL_n_mcse": e_nl_mcse,
        "nL_n_truth": loss.get("nL_n_truth", fe.get("nL_n_truth")),
    }
    for key, _ in FE_METHODS:
        rec[key] = fe.get(key)
        rec[f"{key}_stderr"] = fe.get(f"{key}_stderr")
    rec["exact"] = fe.get("exact")
    rec["beta_slope"] = lam.get("beta_slope")
    rec["beta_slope_stderr"] = lam.get("beta_slope_stderr")
    rec["llc"] = llc.get("mean")
    rec["llc_stderr"] = _llc_stderr(llc)
    for key, name in (("converged", "llc_converged"), ("lambda_hat", "lambda_hat"),
                      ("lambda_hat_stderr", "lambda_hat_stderr"), ("exact_lambda", "exact_lambda")):
        if key in llc:
            rec[name] = llc[key]
    rec["fisher_rank"] = fisher.get("rank")
    rec["fisher_nullity"] = fisher.get("nullity")
    rec["rhat_max_invariant"] = diag.get("rhat_max_invariant")
    rec["ess_bulk_min_invariant"] = diag.get("ess_bulk_min_invariant")
    rec["divergences"] = diag.get("divergences")
    rec["num_warnings"] = len(diag.get("warnings") or [])
    return rec


def _e_nl(summary: dict) -> tuple[Any, Any]:
    """E[n L_n] at the sampler's beta (sample stage), else at beta = 1 from the free-energy
    chains (sweep points skip the sample stage); with its Monte Carlo standard error."""
    loss = summary.get("loss") or {}
    n = summary.get("n")
    if loss.get("E_nL_n") is not None:
        mcse = loss.get("E_L_n_mcse")
        return loss["E_nL_n"], (mcse * n if _finite(mcse) and _finite(n) else None)
    fe = summary.get("free_energy") or {}
    betas, means, mcses = fe.get("betas"), fe.get("E_nL_n"), fe.get("E_nL_n_mcse")
    if isinstance(betas, list) and isinstance(means, list) and betas and betas[-1] == 1.0 \
            and len(means) == len(betas):
        err = mcses[-1] if isinstance(mcses, list) and len(mcses) == len(betas) else None
        return means[-1], err
    return None, None


def _llc_stderr(llc: dict) -> Any:
    for key in ("stderr", "mcse"):
        if llc.get(key) is not None:
            return llc[key]
    return None


# ----------------------------------------------------------------------------- text
def _rows(rows: list[tuple[str, str, str]], indent: str = "  ") -> list[str]:
    """Aligned ``label  value  note`` lines."""
    if not rows:
        return []
    wl = max(len(r[0]) for r in rows)
    wv = max(len(r[1]) for r in rows)
    return [f"{indent}{label:<{wl}}  {value:<{wv}}  {note}".rstrip() for label, value, note in rows]


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: (indent + "  ".join(c.rjust(w) for c, w in zip(cells, widths))).rstrip()
    return [line(headers)] + [line(r) for r in rows]


def format_summary(summary: dict, run_dir: str | Path | None = None) -> str:
    """A short text report of a run's ``summary.json`` (or a sweep's ``sweep.json``) dict.

    Lines: the header (name, n, d, seed, beta, stages, time), ``estimates`` and
    ``diagnostics`` blocks of aligned rows, one ``warning: ...`` line per warning (in full),
    then ``run_dir`` as the last line when given. Sections absent from the dict are skipped.
    """
    if isinstance(summary.get("points"), list):
        lines = _sweep_lines(summary)
    elif "llc_calibration" in summary:
        lines = _calibrate_lines(summary)
    else:
        lines = _run_lines(summary)
    warnings = _warnings(summary)
    if warnings:
        lines.append("")
        lines += [f"warning: {w}" for w in warnings]
    if run_dir is not None:
        lines += ["", str(run_dir)]
    return "\n".join(lines)


def _warnings(summary: dict) -> list[str]:
    out = [str(w) for w in (summary.get("diagnostics") or {}).get("warnings") or []]
    for p in summary.get("points") or []:
        if isinstance(p, dict):
            out += [f"{p.get('run_dir') or _point(p)}: {w}" for w in p.get("warnings") or []]
    return out


def _point(p: dict) -> str:
    return f"n={p.get('n')}_seed={p.get('seed')}"


def _header(summary: dict) -> str:
    bits = [str(summary.get("name", "run"))]
    for key in ("n", "d", "seed"):
        if summary.get(key) is not None:
            bits.append(f"{key} = {summary[key]}")
    if _finite(summary.get("beta")):
        bits.append(f"beta = {summary['beta']:.4g}")
    extra = []
    if summary.get("stages"):
        extra.append(", ".join(summary["stages"]))
    elif summary.get("command"):
        extra.append(str(summary["command"]))
    total = (summary.get("timing") or {}).get("total_s")
    if _finite(total):
        extra.append(f"{total:.1f} s")
    return "  ".join(bits) + (f"  ({'; '.join(extra)})" if extra else "")


def _run_lines(s: dict) -> list[str]:
    lines = [_header(s)]
    est, diag = _estimate_rows(s), _diagnostic_rows(s)
    aligned = _rows(est + diag)                 # one column layout for both blocks
    if est:
        lines += ["", "estimates"] + aligned[:len(est)]
    if diag:
        lines += ["", "diagnostics"] + aligned[len(est):]
    return lines


def _estimate_rows(s: dict) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    loss = s.get("loss") or {}
    h = headline(s)
    stages = s.get("stages") or []
    if "sample" in stages or loss.get("E_nL_n") is not None:
        beta = s.get("beta")
        note = f"beta = {beta:.4g}" if _finite(beta) else ""
        rows.append(("E[n L_n]", fmt_value(h["E_nL_n"], h["E_nL_n_mcse"]), note))
    elif h["E_nL_n"] is not None:     # no sample stage (sweep points): the free-energy chains at beta = 1
        rows.append(("E[n L_n]", fmt_value(h["E_nL_n"], h["E_nL_n_mcse"]), "beta = 1, free-energy chains"))
    if _finite(h["nL_n_truth"]):
        rows.append(("n L_n(w0)", fmt_value(h["nL_n_truth"]), "truth"))
    if "free_energy" in s:
        fe = s.get("free_energy")
        if fe is None:
            rows.append(("F_n", WITHHELD, ""))
        else:
            methods = (((s.get("config") or {}).get("free_energy") or {}).get("methods")
                       or [k for k, _ in FE_METHODS if fe.get(k) is not None])
            for key, label in FE_METHODS:
                if key in methods:
                    rows.append((f"F_n ({label})", fmt_value(fe.get(key), fe.get(f"{key}_stderr")), ""))
            if fe.get("exact") is not None:
                rows.append(("F_n (exact)", fmt_value(fe["exact"]), "closed form"))
            pairs = [p for p in fe.get("agreement") or [] if isinstance(p, dict) and _finite(p.get("z"))]
            if fe.get("agree") is not None and pairs:
                worst = max(pairs, key=lambda p: p["z"])
                rows.append(("F_n agreement", "yes" if fe["agree"] else "NO",
                             f"largest gap {worst['a']} vs {worst['b']}: {worst['z']:.1f} combined se"))
    if "lambda" in s:
        lam = s.get("lambda")
        if lam is None:
            rows.append(("lambda (beta slope)", WITHHELD, ""))
        else:
            notes = []
            if lam.get("exact_slope") is not None:
                notes.append(f"exact {fmt_value(lam['exact_slope'])}")
            if lam.get("d_half") is not None:
                notes.append(f"d/2 = {fmt_value(lam['d_half'])}")
            rows.append(("lambda (beta slope)", fmt_value(lam.get("beta_slope"), lam.get("beta_slope_stderr")),
                         ", ".join(notes)))
    if "llc" in s:
        llc = s.get("llc") or {}
        at = llc.get("w_star") or llc.get("at")
        notes = [str(llc["sampler"])] if llc.get("sampler") else []
        if _finite(llc.get("nbeta")):
            notes.append(f"nbeta = {llc['nbeta']:.4g}")
        if llc.get("refined"):
            notes.append("refined")
        rows.append((f"LLC{f' at {at}' if at else ''}", fmt_value(llc.get("mean"), h["llc_stderr"]),
                     ", ".join(notes)))
        if "converged" in llc:
            rows.append(("LLC converged", fmt_value(llc["converged"]) if llc["converged"] is not None
                         else "unknown", ""))
        if "lambda_hat" in llc:
            rows.append(("lambda_hat", fmt_value(llc["lambda_hat"], llc.get("lambda_hat_stderr")),
                         "not identifiable at this n (see warning)"
                         if llc.get("lambda_hat_identifiable") is False else ""))
        if "exact_lambda" in llc:
            rows.append(("exact lambda", fmt_value(llc["exact_lambda"]) if llc["exact_lambda"] is not None
                         else "unknown", ""))
        inf, sus = llc.get("influence"), llc.get("susceptibility")
        if inf and inf.get("top_pairs"):
            top = inf["top_pairs"][0]
            rows.append(("top influence", fmt_value(top["bif"], top["se"]),
                         f"BIF(row {top['i']}, row {top['j']}); influence.npz"))
        if sus:
            rows.append(("susceptibility", fmt_value(sus["chi"], sus["se"]), f"rows {sus['rows']}"))
    if "fisher" in s:
        rows += _fisher_rows(s.get("fisher"))
    return rows


def _fisher_rows(f: dict | None) -> list[tuple[str, str, str]]:
    if not f or f.get("rank") is None:
        return [("Fisher rank", WITHHELD, "")]

    def value(sec):
        return f"{sec['rank']} of {sec.get('d', '?')} (nullity {sec.get('nullity', '?')})"

    def explained(sec):
        e = sec.get("explained")
        if not isinstance(e, dict):
            return ""
        parts = [f"{k.replace('_', ' ')} {fmt_value(e[k])}" for k in
                 ("dead", "switched_off", "scaling", "duplicated", "within_other", "other")
                 if _finite(e.get(k)) and e[k]]
        return "null: " + ", ".join(parts) if parts else ""

    at = f.get("at")
    if at == "posterior":
        where = f"E_w[I(w)] over {f.get('num_draws', '?')} draws"
        counts = f.get("per_draw_rank_counts")
        if isinstance(counts, dict) and counts:
            where += "; per-draw ranks " + ", ".join(f"{k}: {v}" for k, v in counts.items())
    else:
        where = f"at {at}" if at else ""
    note = "; ".join(b for b in (where, explained(f)) if b)
    rows = [("Fisher rank", value(f), note)]
    pop = f.get("population")
    if isinstance(pop, dict) and pop.get("rank") is not None:
        rows.append(("Fisher rank (population)", value(pop), explained(pop)))
    return rows


def _diagnostic_rows(s: dict) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    d = s.get("diagnostics") or {}
    if "rhat_max_invariant" in d:
        rows.append(("R-hat max (invariants)", _opt(d.get("rhat_max_invariant"), ".3f"),
                     "L_n and f at fixed inputs"))
        rows.append(("ESS min (invariants)", _opt(d.get("ess_bulk_min_invariant"), ".0f"), ""))
    if d.get("divergences") is not None:
        total = (d.get("num_chains") or 0) * (d.get("num_samples") or 0)
        rows.append(("divergences", str(d["divergences"]) + (f" of {total} draws" if total else ""), ""))
    if _finite(d.get("mean_accept_prob")):
        rows.append(("acceptance", f"{d['mean_accept_prob']:.2f}", f"mean, {d.get('sampler', 'sampler')}"))
    rep = d.get("replica") or {}
    if _finite(rep.get("global_barrier")):
        trips = rep.get("round_trips") or []
        rows.append(("replica barrier", f"{rep['global_barrier']:.2f}",
                     f"Lambda; {rep.get('num_temperatures')} temperatures (2 Lambda + 1 = "
                     f"{rep.get('suggested_num_temperatures')}), swap accept min {rep.get('swap_accept_min', 0):.2f}"
                     + (f", round trips {min(trips)}..{max(trips)} per chain" if trips else "")
                     + (f", tempered restarts {min(rep['restarts'])}..{max(rep['restarts'])}"
                        if rep.get("restarts") else "")))
        if rep.get("sampling_rounds"):
            rows.append(("replica draws", f"{rep.get('num_samples')} per chain",
                         "num_samples: auto, " + ("mixed" if rep.get("converged") else "max_samples reached unmixed")
                         + f" after {len(rep['sampling_rounds'])} check(s)"))
    elif d.get("sampling_rounds"):   # nuts/hmc with num_samples: auto
        rows.append(("draws", f"{d.get('num_samples')} per chain",
                     f"num_samples: auto, {len(d['sampling_rounds'])} check(s)"
                     + ("" if d.get("converged") else "; not mixed (see warnings)")))
    fe = s.get("free_energy") or {}
    if fe:
        rh = [v for v in fe.get("rhat") or [] if _finite(v)]
        if rh:
            rows.append(("R-hat max (free energy)", f"{max(rh):.3f}", "n L_n, over temperatures"))
        ess = [v for v in fe.get("ess") or [] if _finite(v)]
        if ess:
            rows.append(("ESS min (free energy)", f"{min(ess):.0f}", ""))
        fs = fe.get("sampler") or {}
        if fs.get("divergences") is not None:
            rows.append(("divergences (free energy)", str(fs["divergences"]), ""))
        acc = [v for v in fs.get("accept_prob") or [] if _finite(v)]
        if acc:
            rows.append(("acceptance (free energy)", f"{min(acc):.2f} .. {max(acc):.2f}",
                         "over temperatures"))
    llc = s.get("llc") or {}
    if llc:
        if "rhat_loss" in llc:
            rows.append(("R-hat (LLC)", _opt(llc.get("rhat_loss"), ".3f"), "L_n of the LLC chains"))
        if "ess_loss" in llc:
            rows.append(("ESS (LLC)", _opt(llc.get("ess_loss"), ".0f"), ""))
        if "acceptance" in llc:
            kind = {"mh": "Metropolis-Hastings", "mh_estimate": "MH estimate (SGLD)"}
            rows.append(("acceptance (LLC)", _opt(llc.get("acceptance"), ".2f"),
                         kind.get(llc.get("acceptance_kind"), str(llc.get("acceptance_kind") or ""))))
        if llc.get("diverged"):
            rows.append(("LLC chains", "diverged", "estimate withheld"))
    return rows


def _calibrate_lines(s: dict) -> list[str]:
    cal = s.get("llc_calibration") or {}
    lines = [_header(s), "",
             f"LLC calibration at {cal.get('w_star', '?')}: {cal.get('sampler', '?')}, "
             f"{cal.get('num_chains', '?')} chains x {cal.get('num_draws', '?')} draws"]
    rows = []
    for r in cal.get("grid") or []:
        rows.append([_opt(r.get("nbeta"), ".4g"), _opt(r.get("step_size"), ".3g"),
                     fmt_value(r.get("llc_mean"), r.get("llc_mcse")),
                     _opt(r.get("acceptance"), ".2f"), _opt(r.get("rhat_loss"), ".3f"),
                     "yes" if r.get("diverged") else ""])
    lines += _table(["nbeta", "step size", "LLC", "accept", "R-hat", "diverged"], rows)
    return lines


def _sweep_lines(s: dict) -> list[str]:
    points = [p for p in s.get("points") or [] if isinstance(p, dict)]
    lines = [f"{s.get('name', 'sweep')}  sweep of {len(points)} points"]
    cols = [("n", "n", None), ("seed", "seed", None), ("F_n (TI)", "ti", "ti_stderr"),
            ("F_n (SS)", "stepping_stone", "stepping_stone_stderr"), ("F_n (WBIC)", "wbic", "wbic_stderr"),
            ("F_n (SMC)", "smc", "smc_stderr"), ("F_n exact", "exact", None), ("n L_n(w0)", "nL_n_truth", None),
            ("lambda (beta slope)", "beta_slope", "beta_slope_stderr"), ("LLC", "llc", "llc_stderr"),
            ("Fisher rank", "fisher_rank", None), ("R-hat max", "rhat_max", None)]
    # keep a column when some point has it (n, seed always)
    cols = [c for c in cols if c[1] in ("n", "seed") or any(p.get(c[1]) is not None for p in points)]
    rows = []
    for p in points:
        row = []
        for _, key, err in cols:
            v = p.get(key)
            row.append("" if v is None and key in ("n", "seed") else
                       (f"{v:.3f}" if key == "rhat_max" and _finite(v) else fmt_value(v, p.get(err) if err else None)))
        rows.append(row)
    lines += [""] + _table([c[0] for c in cols], rows)
    lam = s.get("lambda") or {}
    slopes = lam.get("log_n_slope") or {}
    fit_rows = []
    for key, label in FE_METHODS + (("exact", "exact"),):
        f = slopes.get(key)
        if isinstance(f, dict):
            fit_rows.append((f"lambda ({label})", fmt_value(f.get("slope"), f.get("stderr")),
                             f"chi2/dof {f['chi2_dof']:.2f}" if _finite(f.get("chi2_dof")) else ""))
    if fit_rows:
        lines += ["", "log n slope of F_n - n L_n(w0)"] + _rows(fit_rows)
    elif slopes:
        lines += ["", "log n slope of F_n - n L_n(w0): needs points at two or more n"]
    return lines


# ----------------------------------------------------------------------------- files
def read_summary(run_dir: str | Path) -> dict:
    """The dict :func:`format_summary` reports on: ``summary.json`` of a run directory, or
    ``sweep.json`` of a sweep directory with each point's warnings, R-hat and LLC attached
    (read from the points' own ``summary.json``; a point that cannot be read is skipped)."""
    run_dir = Path(run_dir)
    sweep = run_dir / "sweep.json"
    if sweep.is_file():
        doc = json.loads(sweep.read_text())
        points = []
        for p in doc.get("points") or []:
            p = dict(p)
            try:
                ps = json.loads((run_dir / str(p.get("run_dir"))
                                 / "summary.json").read_text())
            except (OSError, ValueError):
                points.append(p)
                continue
            h = headline(ps)
            p["warnings"] = list((ps.get("diagnostics") or {}).get("warnings") or [])
            rh = [v for v in ((ps.get("free_energy") or {}).get("rhat") or []) if _finite(v)]
            if _finite(h["rhat_max_invariant"]):
                rh.append(h["rhat_max_invariant"])
            p["rhat_max"] = max(rh) if rh else None
            for key in ("llc", "llc_stderr", "fisher_rank"):
                p[key] = h[key]
            points.append(p)
        return {**doc, "points": points}
    return json.loads((run_dir / "summary.json").read_text())
