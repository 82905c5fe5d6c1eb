"""One benchmark command: ``python benchmarks/run.py`` (from a clone: the thin runner of the
scripts beside it; nothing in the ``slt`` package reaches outside it).

Runs side by side, in this one invocation, and writes ``benchmarks/RESULTS.md`` and
``benchmarks/results.csv`` (machine, date, ratios and absolute numbers):

1. sampling  -- NUTS on the headline ReLU posterior, slt vs the hand-written numpyro peer
                (``benchmarks/bench_sampling.py``; ESS/s on L_n, compilation included);
2. gradients -- gradient evaluations/s of slt's log density vs a hand-fused ``jax.grad``
                (``benchmarks/bench_gradients.py``);
3. compile   -- first vs second ``slt run`` of a config in fresh processes (persistent cache);
4. scaling   -- time per leapfrog step and per effective sample vs n and d
                (``benchmarks/bench_scaling.py``; CSV + ``figures/scaling.png``);
5. free energy and LLC -- ``benchmarks/bench_free_energy.py`` and ``benchmarks/bench_llc.py``;
6. lambda     -- ``benchmarks/bench_lambda.py``: LLC and lambda_hat on deep linear networks against
                Aoyagi's exact lambda, devinterp at equal wall time (``benchmarks/lambda.md``);
                (the other benches' own scripts, run as subprocesses; "not available" if absent).

``--quick`` runs everything on tiny settings (the smoke test; numbers meaningless) and skips
the free-energy/LLC benches unless ``--with-peers``.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def machine_info() -> dict:
    import jax

    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "jax": jax.__version__,
            "backend": jax.default_backend(), "devices": jax.local_device_count(),
            "load_avg_1_5_15": [round(v, 2) for v in load],
            "x64": bool(jax.config.jax_enable_x64)}


def _compile_cache_runs(quick: bool, log) -> list[dict]:
    """``slt run`` twice in fresh processes sharing a fresh cache directory; then once with
    the cache switched off. Process wall time and the run's own sampling_s are reported."""
    sets = ["--set", "output.figures=false"]
    if quick:
        sets += ["--set", "data.n=50", "--set", "sampler.num_warmup=10",
                 "--set", "sampler.num_samples=10", "--set", "sampler.num_chains=2"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": os.path.join(tmp, "cache")}
        env.pop("SLT_NO_COMPILATION_CACHE", None)
        runs = [("first (cold cache)", {}, []), ("second (warm cache)", {}, [])]
        if not quick:
            runs.append(("--no-cache", {}, ["--no-cache"]))
        for label, extra_env, extra in runs:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "slt.cli", "run", "--quiet",
                                   "--out", os.path.join(tmp, "runs"), *sets, *extra],
                                  capture_output=True, text=True, env={**env, **extra_env},
                                  cwd=str(ROOT))
            wall = time.perf_counter() - t0
            if proc.returncode:
                raise RuntimeError(f"slt run failed: {proc.stderr[-2000:]}")
            summary = json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "summary.json").read_text())
            rows.append({"name": f"slt run {label}", "process_wall_s": round(wall, 2),
                         "sampling_s": round(summary["timing"].get("sampling_s", float("nan")), 2),
                         "total_s": round(summary["timing"].get("total_s", float("nan")), 2)})
            log(f"compile cache: {rows[-1]}")
    return rows


def _peer_bench(script: str, args: list[str], timeout: int, log) -> dict:
    path = BENCH / script
    if not path.exists():
        return {"status": "not available", "output": f"{script} not found"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                              cwd=str(ROOT), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout} s", "output": ""}
    wall = time.perf_counter() - t0
    out = proc.stdout + ("" if proc.returncode == 0 else "\n[stderr]\n" + proc.stderr[-3000:])
    ratios = [line.strip() for line in proc.stdout.splitlines() if re.search(r"ratio", line, re.I)]
    log(f"{script}: rc={proc.returncode} in {wall:.0f} s")
    return {"status": "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})",
            "wall_s": round(wall, 1), "output": out.strip(), "ratio_lines": ratios}


def run_all(quick=False, with_peers=None, out_dir: Path = BENCH, figure_dir: Path | None = None,
            only=None, log=print) -> Path:
    """Run every bench; write RESULTS.md and results.csv into out_dir; return the .md path."""
    if str(BENCH) not in sys.path:     # run as a script, benchmarks/ is already on the path
        sys.path.insert(0, str(BENCH))
    import bench_gradients
    import bench_sampling
    import bench_scaling

    with_peers = (not quick) if with_peers is None else with_peers
    want = (lambda name: only is None or name in only)
    info = machine_info()
    log(f"machine: {info}")
    sections, csv_rows = {}, []
    # --only merges into the previous full results (results.json): sections not rerun are kept
    store = out_dir / ("results.json" if not quick else "results.quick.json")
    previous = json.loads(store.read_text()) if (only and store.exists()) else {}
    sections.update(previous.get("sections", {}))
    csv_rows.extend(r for r in previous.get("csv", []) if only is None or r["bench"] not in only
                    and not (r["bench"] == "memory" and "scaling" in only))
    info["sections_dates"] = dict(previous.get("info", {}).get("sections_dates", {}))

    def record(bench, rows):
        info["sections_dates"][bench] = info["date_utc"]
        for r in rows:
            for k, v in r.items():
                if k != "name" and isinstance(v, (int, float)) and v is not None:
                    csv_rows.append({"bench": bench, "name": r.get("name", r.get("label", "")),
                                     "metric": k, "value": v})

    if want("sampling"):
        kw = (dict(n=100, num_chains=2, num_warmup=20, num_samples=20) if quick else
              dict(n=1000, num_chains=4, num_warmup=1000, num_samples=1000))
        seeds = 1 if quick else int(os.environ.get("SLT_BENCH_SEEDS", "3"))
        rows = bench_sampling.main(seeds=seeds, log=log, **kw)
        sections["sampling"] = rows
        record("sampling", rows)
        if not quick:  # the same with every chain near the truth: no trapping lottery
            rows = bench_sampling.main(seeds=seeds, start="truth", log=log, **kw)
            sections["sampling_truth"] = rows
            record("sampling_truth", rows)
    if want("gradients"):
        cases = ([("headline [2,2,1], n=100", (2, 2, 1), 100)] if quick else bench_gradients.CASES)
        rows = bench_gradients.main(cases=cases, steps=20 if quick else 200,
                                    repeats=1 if quick else 3, log=log)
        sections["gradients"] = rows
        record("gradients", rows)
    if want("compile"):
        rows = _compile_cache_runs(quick, log)
        sections["compile"] = rows
        record("compile", rows)
    if want("scaling"):
        if quick:
            rows = bench_scaling.main(n_grid=(50,), d_grid=(("[2,2,1]", (2, 2, 1)),), d_n=50,
                                      nuts_draws=10, nuts_cap_s=30, log=log)
        else:
            rows = bench_scaling.main(log=log)
        exps = bench_scaling.exponents(rows)
        sections["scaling"] = rows
        sections["exponents"] = exps
        figure_dir = figure_dir or (ROOT / "figures")
        if not quick:
            bench_scaling.figure(rows, figure_dir / "scaling.png")
            _write_csv(out_dir / "scaling.csv", rows)
        record("scaling", [dict(r, name=f"{r['sweep']}:{r['label']}:n={r['n']}") for r in rows])
        if not quick:
            mem = bench_scaling.peak_rss_subprocess()
            sections["memory"] = mem
            record("memory", [dict(mem, name="n=1e6 headline run")])
    for name, script, args, timeout in (
            ("free_energy", "bench_free_energy.py", [], 1500),
            ("llc", "bench_llc.py", [], 1500),
            ("lambda", "bench_lambda.py", [], 5400)):
        if not want(name):
            continue
        if not with_peers:
            sections[name] = {"status": "not run (--quick)", "output": ""}
            continue
        sections[name] = _peer_bench(script, args, timeout, log)
        info["sections_dates"][name] = info["date_utc"]
    store.write_text(json.dumps({"info": info, "sections": sections, "csv": csv_rows}, indent=1,
                                default=str))
    md = out_dir / ("RESULTS.md" if not quick else "RESULTS.quick.md")
    md.write_text(render(info, sections))
    _write_csv(out_dir / ("results.csv" if not quick else "results.quick.csv"), csv_rows)
    log(f"wrote {md}")
    return md


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        w.writerows(rows)


def _table(rows, cols):
    head = "| " + " | ".join(c for c, _ in cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "".join("| " + " | ".join(fmt(r) for _, fmt in cols) + " |\n" for r in rows)
    return head + body


def _g(key, spec="{:.3g}"):
    return lambda r: "" if r.get(key) is None else spec.format(r[key])


def render(info: dict, s: dict) -> str:
    out = ["# slt benchmark results\n",
           f"Generated by `python benchmarks/run.py` on {info['date_utc']} UTC. Machine: {info['cpu']}, "
           f"{info['cpu_count']} CPUs, {info['platform']}, Python {info['python']}, jax {info['jax']} "
           f"({info['backend']}, {info['devices']} devices), float64={info['x64']}. Load average at "
           f"start (1/5/15 min): {info['load_avg_1_5_15']} -- the machine is shared, so absolute "
           "times are noisy; ratios come from runs in the same process, back to back.\n"]
    out.append(_summary(s))
    dates = info.get("sections_dates") or {}
    if len(set(dates.values())) > 1:
        out.append("\nSections were run at: " + ", ".join(f"{k} {v}" for k, v in dates.items())
                   + " (UTC; `--only` reruns single sections).\n")
    for key, title, desc in (
            ("sampling", "The headline ReLU posterior: slt vs hand-written numpyro NUTS",
             "Same data. The peer starts from its own dispersed points (numpyro's init_to_uniform); "
             "slt default is what `slt run` does: replica exchange (8 temperatures x 16 leapfrog "
             "steps; 'leapfrog/iter' counts every level's gradients) from the peer's points; "
             "'slt NUTS, screened starts': every chain at the best of 16 Adam-optimised prior draws "
             "(timed, compile included); 'slt NUTS from the same starts' runs slt's NUTS from "
             "exactly the peer's points. "
             "ESS = ArviZ bulk ESS of per-draw L_n, wall time includes compilation (no persistent "
             "cache); median over seeds (per-seed values in the last column). A chain trapped in "
             "a local mode (R-hat(L_n) > 1.05) collapses ESS(L_n) for either sampler: read ESS/s "
             "together with R-hat."),
            ("sampling_truth", "Same, both samplers starting every chain near the truth",
             "Every chain starts at the truth + N(0, 0.1^2) jitter (the peer's model via "
             "init_params): no chain is trapped, so ESS/s measures mixing speed in the main basin.")):
        if key not in s:
            continue
        out.append(f"\n## {title}\n\n{desc}\n\n")
        out.append(_table(s[key], [
            ("run", lambda r: r["name"]), ("warmup", _g("num_warmup", "{:.0f}")),
            ("wall s", _g("wall_s", "{:.1f}")), ("time ratio", _g("time_ratio_vs_peer", "{:.2f}x")),
            ("ESS(L_n)", _g("ess_loss", "{:.0f}")),
            ("ESS/s", _g("ess_per_s", "{:.2f}")), ("ESS/s ratio", _g("ratio_vs_peer", "{:.2f}x")),
            ("R-hat(L_n)", _g("rhat_loss", "{:.3f}")), ("min ESS raw", _g("ess_raw_min", "{:.0f}")),
            ("leapfrog/iter", _g("mean_leapfrog", "{:.0f}")),
            ("divergences (median)", _g("divergences", "{:.0f}")), ("seeds", _g("seeds", "{:.0f}")),
            ("per-seed ESS/s", lambda r: r.get("per_seed", ""))]))
    if "gradients" in s:
        out.append("\n## Gradient throughput: slt log density vs hand-fused jax.grad (ceiling)\n\n")
        out.append(_table(s["gradients"], [
            ("case", lambda r: r["name"]), ("d", _g("d", "{}")), ("chains", _g("chains", "{}")),
            ("slt grad/s", _g("slt_grads_per_s", "{:,.0f}")),
            ("fused grad/s", _g("fused_grads_per_s", "{:,.0f}")),
            ("ceiling / slt", _g("ceiling_over_slt", "{:.2f}"))]))
    if "compile" in s:
        out.append("\n## Persistent compilation cache: `slt run` (headline config) in fresh processes\n\n")
        out.append(_table(s["compile"], [
            ("run", lambda r: r["name"]), ("process wall s", _g("process_wall_s", "{:.1f}")),
            ("sampling s (in summary.json)", _g("sampling_s", "{:.1f}")),
            ("total s", _g("total_s", "{:.1f}"))]))
        c = {r["name"]: r for r in s["compile"]}
        a, b = c.get("slt run first (cold cache)"), c.get("slt run second (warm cache)")
        if a and b:
            out.append(f"\nSecond/first: process {b['process_wall_s'] / a['process_wall_s']:.2f}, "
                       f"sampling {b['sampling_s'] / max(a['sampling_s'], 1e-9):.2f}.\n")
    if "scaling" in s:
        out.append("\n## Scaling (figures/scaling.png, benchmarks/scaling.csv)\n\n")
        out.append(_table(s["scaling"], [
            ("sweep", lambda r: r["sweep"]), ("model", lambda r: r["label"]),
            ("n", _g("n", "{}")), ("d", _g("d", "{}")),
            ("us / leapfrog (4 chains)", lambda r: f"{1e6 * r['t_leapfrog_s']:.0f}"),
            ("leapfrog/iter", _g("mean_leapfrog", "{:.0f}")), ("ESS(L_n)", _g("ess", "{:.0f}")),
            ("leapfrog / ESS", _g("leapfrog_per_ess", "{:.0f}")),
            ("s / ESS", _g("time_per_ess_s", "{:.3g}")), ("compile s", _g("compile_s", "{:.1f}"))]))
        out.append("\nLog-log slopes: " + ", ".join(f"{k}: {v:.2f}" for k, v in s["exponents"].items())
                   + "\n")
    if "memory" in s:
        m = s["memory"]
        out.append(f"\nMemory, n = {m['n']:,} headline model, {m['chains']} chains, {m['draws']} stored "
                   f"draws: peak RSS {m['peak_rss_mib']:.0f} MiB (after imports "
                   f"{m['baseline_rss_mib']:.0f} MiB); stored draws {m['stored_draws_mib']:.3f} MiB.\n")
    for name, title in (("free_energy", "Free-energy path vs sequential numpyro loop"),
                        ("llc", "LLC vs devinterp"),
                        ("lambda", "Learning coefficients against exact answers (table: benchmarks/lambda.md)")):
        if name in s:
            r = s[name]
            out.append(f"\n## {title} (`benchmarks/bench_{name}.py`): {r['status']}\n\n")
            if r.get("ratio_lines"):
                out.append("".join(f"- {line}\n" for line in r["ratio_lines"]) + "\n")
            if r.get("output"):
                out.append("```\n" + r["output"][-6000:] + "\n```\n")
    return "".join(out)


def _summary(s: dict) -> str:
    """The goals of issue 6 with the measured ratio beside each."""
    rows = []

    def first(key, name_part, field):
        for r in s.get(key) or []:
            if name_part in r["name"]:
                return r.get(field)
        return None

    for key, row, label, goal in (
            ("sampling", "slt default", "each at its defaults: slt's replica exchange and the peer's NUTS, "
                                        "both from the peer's dispersed starts", True),
            ("sampling", "slt NUTS from the same starts", "diagnostic: slt's NUTS from the peer's "
                                                          "own dispersed starts, trapping included", False),
            ("sampling_truth", "slt NUTS from the same starts", "both NUTS from the same starts near the truth",
             True)):
        t = first(key, row, "time_ratio_vs_peer")
        e = first(key, row, "ratio_vs_peer")
        if e is not None:
            met = ("yes" if e >= 1.5 else "no") if goal else "(not a goal)"
            rows.append((f"NUTS ESS/s on L_n vs numpyro script ({label}; time ratio {t:.2f}x)",
                         ">= 1.5x" if goal else "-", f"{e:.2f}x", met))
    g = first("gradients", "headline", "ceiling_over_slt")
    if g is not None:
        rows.append(("gradient throughput, hand-fused ceiling / slt (headline)", "<= 2x",
                     f"{g:.2f}x", "yes" if g <= 2 else "no"))
    comp = {r["name"]: r for r in s.get("compile") or []}
    a, b = comp.get("slt run first (cold cache)"), comp.get("slt run second (warm cache)")
    if a and b:
        rows.append(("second `slt run` / first (process wall, persistent cache)", "< 1",
                     f"{b['process_wall_s'] / a['process_wall_s']:.2f}", "yes"
                     if b["process_wall_s"] < a["process_wall_s"] else "no"))
    for key, pattern, label, goal in (
            ("free_energy", r"cold ([0-9.]+)x", "free-energy path vs sequential loop (cold)", 10),
            ("llc", r"SGLD ([0-9.]+)x", "LLC vs devinterp full-batch throughput (SGLD)", 50)):
        text = " ".join((s.get(key) or {}).get("ratio_lines") or [])
        m = re.search(pattern, text)
        if m:
            v = float(m.group(1))
            rows.append((label, f">= {goal}x", f"{v:g}x", "yes" if v >= goal else "no"))
    if not rows:
        return ""
    return ("\n## Summary (goals of issue 6)\n\n| measurement | goal | measured | met |\n|---|---|---|---|\n"
            + "".join(f"| {a} | {b} | {c} | {d} |\n" for a, b, c, d in rows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    ap.add_argument("--with-peers", action="store_true",
                    help="with --quick: still run the free-energy and LLC benches")
    ap.add_argument("--only", nargs="+", default=None,
                    choices=("sampling", "gradients", "compile", "scaling", "free_energy", "llc", "lambda"))
    ap.add_argument("--out", default=str(BENCH), help="directory for RESULTS.md and results.csv")
    ap.add_argument("--merge", metavar="RESULTS_JSON", default=None,
                    help="take the sections of another results.json (e.g. a run of --only "
                         "free_energy llc elsewhere) into --out's results and re-render; runs nothing")
    args = ap.parse_args(argv)
    if args.merge:
        out = Path(args.out)
        mine = json.loads((out / "results.json").read_text())
        other = json.loads(Path(args.merge).read_text())
        mine["sections"].update(other["sections"])
        mine["info"].setdefault("sections_dates", {}).update(other["info"].get("sections_dates", {}))
        benches = {r["bench"] for r in other["csv"]} | set(other["sections"])
        mine["csv"] = [r for r in mine["csv"] if r["bench"] not in benches] + other["csv"]
        (out / "results.json").write_text(json.dumps(mine, indent=1, default=str))
        (out / "RESULTS.md").write_text(render(mine["info"], mine["sections"]))
        _write_csv(out / "results.csv", mine["csv"])
        return 0
    from slt.setup_jax import configure_jax

    configure_jax(cache=False)   # cold compiles: the timings include compilation
    run_all(quick=args.quick, with_peers=True if args.with_peers else None,
            out_dir=Path(args.out), only=args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
