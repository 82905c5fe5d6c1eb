"""Concurrency and disk: concurrent runs on one output directory never share a run directory,
and a write failure gives a clear one-line error (exit 2) and leaves earlier results intact.

Tests run as root, so ``chmod`` cannot make a directory read-only. Portable substitutes:
an output path whose parent is a regular file (ENOTDIR), a path under ``/proc`` (the kernel
refuses), and ``RLIMIT_FSIZE`` in a child process, which makes any write past the limit fail
with EFBIG exactly like a full disk, for root too.
"""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robust_util import (COUNTS, complete_points, load_summary, numbers, popen, run_cli, subprocess_env,
                         tiny, write_config)


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns,
                                       p.stat().st_ino)
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A completed run in ``out/`` whose files must survive every failure below."""
    tmp = tmp_path_factory.mktemp("disk")
    cfg = write_config(tmp, tiny())
    res = run_cli(["run", cfg, "--out", tmp / "out", "--quiet"])
    assert res.rc == 0, res
    return tmp, cfg, Path(res.stdout.strip())


def _one_line_exit_2(res, *words):
    assert res.rc == 2, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("slt: error: "), res
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("where", ["under a file", "under /proc"])
def test_unwritable_output_directory(earlier, where, command):
    tmp, cfg, run_dir = earlier
    before = tree_digest(tmp / "out")
    if where == "under a file":
        blocker = tmp / "not-a-dir"
        blocker.write_text("a regular file")
        out = blocker / "runs"
    else:
        out = Path("/proc/self/slt-runs")
    args = [command, cfg, "--out", out, "--quiet"]
    if command == "sweep":
        args += ["--set", "sweep.n=[40]"]
    res = run_cli(args)
    _one_line_exit_2(res, str(out))
    assert tree_digest(tmp / "out") == before
    COUNTS["write-failure cases"] += 1


def _fsize_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a core-dumping signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_mid_run(earlier):
    """A real write failure in a real process: with RLIMIT_FSIZE = 400 B every file larger
    than that fails with EFBIG (as on a full disk, root included); the first, config.yaml,
    fails. Exit 2, one line naming the file; the run directory is never readable as complete;
    the earlier run is byte-for-byte intact (content, mtime, inode); no temporary file left."""
    tmp, cfg, run_dir = earlier
    before = tree_digest(tmp / "out")
    p = popen(["run", cfg, "--out", tmp / "out", "--quiet", "--no-cache"], preexec_fn=_fsize_limit(400))
    out, err = p.communicate(timeout=300)

    class R:
        rc, stdout, stderr = p.returncode, out, err
    _one_line_exit_2(R, "cannot write", "config.yaml", "File too large")
    _intact_and_incomplete(tmp / "out", before, run_dir)
    COUNTS["write-failure cases"] += 1


@pytest.mark.parametrize("victim", ["posterior.nc", "summary.json"])
def test_disk_full_after_sampling(earlier, victim, monkeypatch):
    """The disk fills up after sampling, while writing posterior.nc or the final summary.json
    (injected in-process: the write of that one file raises ENOSPC). Same guarantees: exit 2,
    one line naming the file, nothing readable as complete, the earlier run intact."""
    import errno
    import pathlib

    tmp, cfg, run_dir = earlier
    before = tree_digest(tmp / "out")
    real_bytes, real_text = pathlib.Path.write_bytes, pathlib.Path.write_text

    def full(real):
        def write(self, data, *a, **kw):
            if self.name.startswith(f".{victim}."):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            return real(self, data, *a, **kw)
        return write

    monkeypatch.setattr(pathlib.Path, "write_bytes", full(real_bytes))
    monkeypatch.setattr(pathlib.Path, "write_text", full(real_text))
    res = run_cli(["run", cfg, "--out", tmp / "out", "--quiet"])
    monkeypatch.undo()
    _one_line_exit_2(res, "cannot write", victim, "No space left on device")
    _intact_and_incomplete(tmp / "out", before, run_dir)
    COUNTS["write-failure cases"] += 1


def _intact_and_incomplete(out: Path, before: dict, run_dir: Path) -> None:
    after = tree_digest(out)
    assert {k: v for k, v in after.items() if k in before} == before, "earlier results changed"
    new_dirs = {Path(k).parts[0] for k in after} - {Path(k).parts[0] for k in before}
    for d in new_dirs:
        assert not (out / d / "summary.json").exists()
    assert complete_points(out) == [run_dir]
    leftovers = [k for k in after if k.endswith(".tmp") or "/.probe." in k]
    assert not leftovers, leftovers


def test_concurrent_runs_get_separate_directories(tmp_path):
    """Two real `slt run` processes, same config and same --out, started together: two run
    directories, both complete, neither clobbered, and (same seed) identical numbers."""
    cfg = write_config(tmp_path, tiny())
    procs = [popen(["run", cfg, "--out", tmp_path / "out", "--quiet"]) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
    dirs = [Path(out.strip()) for out, _ in results]
    assert len(set(dirs)) == 2 and sorted(d.name for d in dirs) == ["tiny", "tiny-2"], dirs
    assert complete_points(tmp_path / "out") == sorted(dirs)
    a, b = (load_summary(d) for d in dirs)
    assert numbers(a) == numbers(b)
    COUNTS["reproducibility checks"] += 1
    COUNTS["concurrency cases"] += 1


RESERVE = textwrap.dedent("""
    import sys, time
    from slt.pipeline.runs import reserve_dir
    start = float(sys.argv[2])
    while time.time() < start:
        pass
    for _ in range(25):
        print(reserve_dir(sys.argv[1], "run").name, flush=True)
""")


def test_reserve_dir_race(tmp_path):
    """4 processes x 25 reservations of the same name at the same instant: 100 distinct dirs."""
    import time

    start = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", RESERVE, str(tmp_path / "out"), start],
                              stdout=subprocess.PIPE, text=True, env=subprocess_env()) for _ in range(4)]
    names = [line for p in procs for line in p.communicate(timeout=60)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert len(names) == 100 and len(set(names)) == 100
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    COUNTS["concurrency cases"] += 1
