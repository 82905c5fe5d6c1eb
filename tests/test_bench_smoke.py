"""The benchmark command runs end to end on tiny settings (no timing assertions)."""
import csv
import os
import subprocess
import sys

import importlib.util
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
_spec = importlib.util.spec_from_file_location("bench_runner", RUNNER)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_bench_quick_runs_and_writes_results(tmp_path):
    # the compile-cache section is two extra `slt run` processes: covered by test_devices.py
    env = dict(os.environ, SLT_NO_COMPILATION_CACHE="1")
    proc = subprocess.run([sys.executable, str(RUNNER), "--quick", "--out", str(tmp_path),
                           "--only", "sampling", "gradients", "scaling", "llc"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (tmp_path / "RESULTS.quick.md").read_text()
    for heading in ("slt vs hand-written numpyro", "Gradient throughput", "Scaling", "LLC vs devinterp"):
        assert heading in md
    assert "not run (--quick)" in md
    rows = list(csv.DictReader(open(tmp_path / "results.quick.csv")))
    benches = {r["bench"] for r in rows}
    assert {"sampling", "gradients", "scaling"} <= benches
    ratio = [r for r in rows if r["bench"] == "sampling" and r["metric"] == "ratio_vs_peer"]
    assert ratio and all(float(r["value"]) > 0 for r in ratio)


def test_render_all_sections_from_rows():
    info = {"date_utc": "2026-01-01 00:00", "cpu": "cpu", "cpu_count": 2, "platform": "p",
            "python": "3.11", "jax": "0.10", "backend": "cpu", "devices": 2,
            "load_avg_1_5_15": [0, 0, 0], "x64": False}
    sections = {
        "compile": [{"name": "slt run first (cold cache)", "process_wall_s": 20.0, "sampling_s": 10.0,
                     "total_s": 15.0},
                    {"name": "slt run second (warm cache)", "process_wall_s": 12.0, "sampling_s": 4.0,
                     "total_s": 7.0}],
        "memory": {"n": 1_000_000, "chains": 4, "draws": 200, "baseline_rss_mib": 300.0,
                   "peak_rss_mib": 900.0, "stored_draws_mib": 0.03},
        "free_energy": {"status": "not available", "output": "bench_free_energy.py not found"},
        "llc": {"status": "ok", "output": "speed ratio 80x", "ratio_lines": ["speed ratio 80x"]},
    }
    md = bench.render(info, sections)
    assert "Second/first: process 0.60, sampling 0.40" in md
    assert "peak RSS 900 MiB" in md
    assert "not available" in md and "- speed ratio 80x" in md


def test_lambda_bench_quick_case(tmp_path):
    """benchmarks/bench_lambda.py end to end on one small case: a row with the exact lambda,
    the estimate, its error bar and the statistics (numbers not asserted: a smoke test)."""
    import json

    script = bench.BENCH / "bench_lambda.py"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--cases", "0", "--skip-devinterp",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "lambda_quick.json").read_text())
    (row,) = res["rows"]
    assert row["widths"] == "2-2-2" and row["lambda"] == 1.5 and row["m"] == 1
    assert row["lambda_hat"] > 0 and row["lambda_hat_se"] > 0 and "converged" in row
    assert res["stats"]["cases"] == 1
    assert "| 2-2-2 |" in (tmp_path / "lambda_quick.md").read_text()
