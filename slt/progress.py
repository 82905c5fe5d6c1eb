"""Progress on an interactive terminal: which stage is running, i of N, elapsed, time left.

Shown only where a person is watching: the stream (stderr by default) is a terminal, the
``CI`` environment variable is unset, and the process has not switched it off
(``slt --quiet`` calls ``set_enabled(False)``). Everywhere else (CI, pipes, log files,
notebooks, tests) every helper here writes nothing and costs next to nothing.

For code that runs for long (stages, sweeps, experiments)::

    from slt import progress

    with progress.stage("llc"):                 # one line "llc: 00:12" ticking while the body runs
        progress.note("8 chains x 2000 draws")  # detail appended to the innermost stage's line
        ...
    with progress.bar(total=len(points), desc="sweep") as bar:   # "sweep: 3/8 [00:42<01:10, ...]"
        for point in points:
            bar.set_postfix_str(point.name)
            ...
            bar.update()
    progress.write("[sweep] n=300_seed=0: complete, skipped")    # a log line that keeps bars intact

``bar`` is a ``tqdm`` instance (when progress is off, a stand-in whose methods do nothing),
so the time left is tqdm's ETA: elapsed / done * remaining. ``stage`` is for work with no
natural count (one compiled XLA call): it shows what is running and for how long, redrawn by a
daemon thread every ``interval`` seconds (JAX releases the GIL while it computes). Bars and
stages nest (tqdm stacks them on separate lines: the sweep's bar, below it the point's stage,
below that the sampler's bar).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import IO, Iterator

_enabled = True
_stages: list = []            # open stage bars, innermost last


def set_enabled(flag: bool) -> None:
    """Switch progress off (or back on) for this process: ``slt --quiet``."""
    global _enabled
    _enabled = bool(flag)


def enabled(stream: IO | None = None) -> bool:
    """Whether progress is shown on ``stream`` (default: the current ``sys.stderr``): a
    terminal, ``CI`` unset, not switched off."""
    if not _enabled or os.environ.get("CI"):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):      # no isatty, or a closed stream
        return False


class _Off:
    """What :func:`bar` returns where progress is off: every method does nothing (no tqdm
    object at all: tqdm creates a multiprocessing lock even for a disabled bar)."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, *args, **kwargs) -> None:
        pass

    set_description = set_postfix_str
    close = refresh = set_postfix_str

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def bar(total: int | None, desc: str, stream: IO | None = None, unit: str = "it", leave: bool = False):
    """A progress bar with i of N, elapsed and time left (a ``tqdm``); where :func:`enabled` is
    false an object with the same ``update``/``set_postfix_str``/``close`` that does nothing.
    Use as a context manager or ``close()`` it."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        return _Off()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=stream, unit=unit, leave=leave, dynamic_ncols=True)


@contextlib.contextmanager
def stage(name: str, stream: IO | None = None, interval: float = 1.0) -> Iterator[None]:
    """Show ``name: <elapsed>`` (plus the latest :func:`note`) while the body runs."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        yield
        return
    from tqdm import tqdm

    line = tqdm(total=None, desc=name, file=stream, leave=False, dynamic_ncols=True,
                bar_format="{desc}: {elapsed}{postfix}")
    done = threading.Event()

    def tick():
        while not done.wait(interval):
            line.refresh()

    thread = threading.Thread(target=tick, name=f"progress:{name}", daemon=True)
    _stages.append(line)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        _stages.remove(line)
        line.close()


def note(text: str) -> None:
    """Append ``text`` to the innermost open stage's line (nothing when none is shown)."""
    if _stages:
        _stages[-1].set_postfix_str(text, refresh=True)


def write(message: str, stream: IO | None = None) -> None:
    """Print one log line to ``stream`` (default stderr) above any open bars (tqdm.write);
    a plain print when no bar is open."""
    stream = sys.stderr if stream is None else stream
    tqdm_mod = sys.modules.get("tqdm")          # a bar is open only if tqdm was imported
    if tqdm_mod is not None and getattr(tqdm_mod.tqdm, "_instances", None):
        tqdm_mod.tqdm.write(message, file=stream)
    else:
        print(message, file=stream)
    stream.flush()
