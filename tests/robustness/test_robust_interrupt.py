"""Ctrl-C at the two moments where it used to go wrong, provoked deterministically.

Found by sending 1000 SIGINTs at random moments of tiny in-process sweep points (the situation
of the SIGKILL/resume test's Ctrl-C kill point, which failed once without a recorded cause):
998 raised KeyboardInterrupt as they should, one was *lost* (raised inside JAX's gc callback,
dropped by Python as "Exception ignored in: _xla_gc_callback"; the sweep ran on and exited 0)
and one became an ``AttributeError`` traceback (raised at ``os.close`` inside
``runs.atomic_write``, whose cleanup then called ``.exists()`` on a str). See
notes/robustness.md.
"""
from __future__ import annotations

import gc
import json
import signal

import pytest

from robust_util import COUNTS, run_cli, tiny, write_config
from slt.pipeline import runs


@pytest.fixture
def default_sigint():
    """Python's default SIGINT handler for the test. A process launched in the background (a
    CI shell's '&', nohup) inherits SIGINT ignored, and the CLI then leaves SIGINT alone (it
    only wraps the default handler): the test states the interactive situation it is about."""
    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def test_ctrl_c_inside_atomic_write_stays_a_keyboard_interrupt(tmp_path, monkeypatch):
    real_close = runs.os.close
    calls = []

    def close_then_interrupt(fd):
        real_close(fd)
        calls.append(fd)
        raise KeyboardInterrupt       # Ctrl-C handled right at os.close

    monkeypatch.setattr(runs.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        runs.atomic_write(tmp_path / "summary.json", '{"complete": true}')
    monkeypatch.undo()
    assert calls
    assert list(tmp_path.iterdir()) == []            # no summary.json, no temporary file left
    COUNTS["interrupt cases"] += 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # the drop we provoke
@pytest.mark.parametrize("then", ["goes on", "fails otherwise"])
def test_ctrl_c_dropped_inside_a_gc_callback_still_stops_the_sweep(tmp_path, monkeypatch, then, default_sigint):
    """SIGINT handled inside a gc callback: Python prints "Exception ignored" and goes on. The
    CLI remembers it, and the sweep stops at the next checkpoint: exit 130, one line, no more
    points computed. Likewise when the code that swallowed it then fails with another error."""
    from slt.cli import sweep

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    cfg = write_config(tmp_path, tiny(free_energy={"num_betas": 2, "num_chains": 2, "num_warmup": 20,
                                                   "num_samples": 20},
                                      sweep={"n": [40], "seeds": [0, 1, 2]}))
    real_execute = sweep.execute
    points = []
    dropped = []

    def ctrl_c_in_gc(phase, info):
        if phase == "start" and not dropped:
            dropped.append(True)
            signal.raise_signal(signal.SIGINT)        # KeyboardInterrupt raised in here: dropped

    def execute(pc, **kw):
        points.append(pc.seed)
        if len(points) == 2:                          # during the second point
            gc.callbacks.append(ctrl_c_in_gc)
            try:
                gc.collect()
            finally:
                gc.callbacks.remove(ctrl_c_in_gc)
            assert dropped                            # the interrupt happened and was swallowed
            if then == "fails otherwise":
                raise TypeError("Shapes must be 1D sequences of concrete values of integer type")
        return real_execute(pc, **kw)

    monkeypatch.setattr(sweep, "execute", execute)
    res = run_cli(["sweep", cfg, "--out", tmp_path / "out"])
    assert res.rc == 130 and res.stderr_lines[-1] == "slt: interrupted", res
    assert points == [0, 1]                           # the third point never started
    done = [p for p in (tmp_path / "out").rglob("summary.json")
            if json.loads(p.read_text()).get("complete") is True]
    assert [p.parent.name for p in done] == ["n=40_seed=0"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handler restored
    COUNTS["interrupt cases"] += 1
