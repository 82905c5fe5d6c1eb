"""Child entry point for the kill tests: ``python pause_child.py ARGS...`` is ``slt ARGS...``
(``slt.cli.main``) that stops at a chosen moment and waits there to be killed.

Why: the kill test used to *poll* the sweep directory and fire SIGKILL when it saw a point
complete or in progress. A tiny sweep point takes about 0.1 s once compiled, so a parent that
did not get the CPU for a few tenths of a second (a loaded CI machine) saw the sweep finish
before its kill point and failed, although slt did nothing wrong. Here the child itself stops
at the kill point, so the parent kills it exactly there, however slow either of them is.

``SLT_PAUSE_AT=<file name>:<k>[:partial]``: pause right after this process's k-th
``runs.atomic_write`` of that file (``summary.json:1``: after the first point this process
completes; ``config.yaml:2``: just after the second point it starts was set up, i.e. mid-point).
With ``:partial`` the k-th write of the file stops half-way through writing the temporary file
(before the rename), as a process killed inside the write would. When paused, the child creates
``SLT_PAUSE_MARKER`` (containing the path) and sleeps (at most ``SLT_PAUSE_MAX`` s, then exits 3,
so an orphan never lingers).

SIGINT gets Python's KeyboardInterrupt handler here: a background job of a shell without job
control inherits SIGINT ignored, and the old ``preexec_fn`` in the parent ran Python code
between fork and exec of a multithreaded (JAX) process, which can deadlock the child.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def _pause(marker: str, where: Path) -> None:
    tmp = f"{marker}.tmp"
    Path(tmp).write_text(str(where))
    os.replace(tmp, marker)
    time.sleep(float(os.environ.get("SLT_PAUSE_MAX", "600")))   # SIGKILL / SIGINT arrive here
    sys.exit(3)


def install(spec: str, marker: str) -> None:
    """Wrap ``slt.pipeline.runs.atomic_write`` (``runs.execute`` looks it up at call time)."""
    from slt.pipeline import runs

    name, k, *mode = spec.split(":")
    k, partial = int(k), mode == ["partial"]
    original = runs.atomic_write
    count = 0

    def atomic_write(path, writer):
        nonlocal count
        path = Path(path)
        if path.name != name:
            return original(path, writer)
        count += 1
        if count != k:
            return original(path, writer)
        if partial:
            data = writer.encode() if isinstance(writer, str) else writer
            assert isinstance(data, bytes), "partial pause needs str or bytes content"

            def half(tmp: Path) -> None:
                with open(tmp, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                _pause(marker, tmp)

            return original(path, half)
        original(path, writer)
        _pause(marker, path)

    runs.atomic_write = atomic_write


def main() -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get("SLT_PAUSE_AT"):
        install(os.environ["SLT_PAUSE_AT"], os.environ["SLT_PAUSE_MARKER"])
    from slt.cli import main as slt_main

    return slt_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
