"""Shared helpers for the robustness suite: tiny configs, in-process and subprocess CLI calls.

Every run here is tiny (n ~ 50, 2 chains, 50 warmup + 50 draws, no figures) so the whole
suite fits the CI budget. The CLI is called in-process (``slt.cli.main``) where possible;
subprocesses only where the test needs a real process (SIGKILL, concurrency, RSS, rlimits).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import yaml

# counts reported in the terminal summary (conftest.pytest_terminal_summary)
COUNTS: Counter = Counter()
REPORT: list[str] = []

TINY = {
    "name": "tiny",
    "seed": 0,
    "model": {"widths": [1, 2, 1], "activation": "tanh", "bias": True, "noise_std": 1.0,
              "prior_std": 1.0},
    "truth": {"widths": [1, 1, 1],
              "params": [{"W": [[1.0]], "b": [0.0]}, {"W": [[1.0]], "b": [0.0]}]},
    "data": {"n": 50, "x": {"dist": "uniform", "low": -1.0, "high": 1.0}},
    "sampler": {"num_chains": 2, "num_warmup": 50, "num_samples": 50},
    "output": {"figures": False},
}


def tiny(**sections) -> dict:
    """A deep copy of the tiny config with top-level sections replaced/added."""
    raw = copy.deepcopy(TINY)
    for key, value in sections.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def write_config(directory: Path, raw, name: str = "cfg.yaml") -> Path:
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


class CliResult:
    def __init__(self, rc, stdout, stderr, exc_text=None):
        self.rc, self.stdout, self.stderr, self.exc_text = rc, stdout, stderr, exc_text

    @property
    def stderr_lines(self):
        return self.stderr.splitlines()

    def __repr__(self):
        return (f"CliResult(rc={self.rc}, stderr={self.stderr!r}, stdout={self.stdout[-300:]!r}"
                + (f", exception=\n{self.exc_text}" if self.exc_text else "") + ")")


def run_cli(args: list[str]) -> CliResult:
    """``slt.cli.main(args)`` in this process; stdout/stderr captured, escaping exceptions
    (what a user would see as a traceback) recorded instead of raised."""
    from slt import cli

    out, err = io.StringIO(), io.StringIO()
    exc_text = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            rc = exc.code
        except BaseException:  # noqa: BLE001 - a traceback is exactly what we test for
            rc = None
            exc_text = traceback.format_exc()
    return CliResult(rc, out.getvalue(), err.getvalue(), exc_text)


def subprocess_env(extra: dict | None = None) -> dict:
    """Environment for ``python -m slt.cli`` children: same device count as this process
    (results must match in-process runs bit for bit), a session-private compilation cache,
    no progress bars."""
    import jax

    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["SLT_CPU_DEVICES"] = str(jax.local_device_count())
    env["CI"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("SLT_TEST_CACHE", tempfile.mkdtemp(prefix="slt-robust-cache-"))
    env["XDG_CACHE_HOME"] = env["SLT_TEST_CACHE"]
    import matplotlib  # keep matplotlib's (warm) font cache where it was

    env.setdefault("MPLCONFIGDIR", matplotlib.get_cachedir())
    os.environ["SLT_TEST_CACHE"] = env["SLT_TEST_CACHE"]
    if extra:
        env.update(extra)
    return env


def slt_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "slt.cli", *[str(a) for a in args]]


def popen(args, **kw) -> subprocess.Popen:
    return subprocess.Popen(slt_cmd(*args), env=subprocess_env(kw.pop("env", None)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run_sub(args, timeout=300, **kw) -> CliResult:
    p = popen(args, **kw)
    out, err = p.communicate(timeout=timeout)
    return CliResult(p.returncode, out, err)


# ----------------------------------------------------------------------------- results
def summaries(root: Path) -> dict[Path, Path]:
    """Every point directory under ``root`` that holds a summary.json: {dir: summary path}."""
    return {p.parent: p for p in Path(root).rglob("summary.json")}


def complete_points(root: Path) -> list[Path]:
    from slt.pipeline.runs import is_complete

    return sorted(d for d in summaries(root) if is_complete(d))


def numbers(summary: dict) -> dict:
    """A summary without its timing (the only part allowed to differ between identical runs)."""
    return {k: v for k, v in summary.items() if k != "timing"}


def load_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def wait_for(predicate, timeout: float, interval: float = 0.02, proc: subprocess.Popen | None = None):
    """Poll ``predicate`` until true (returns its value) or ``timeout`` (returns None); stops
    early if ``proc`` exits."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            return predicate() or None
        time.sleep(interval)
    return None


