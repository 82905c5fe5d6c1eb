"""slt.progress: stage, i of N, elapsed and time left on a terminal; nothing under CI or in a pipe."""
from __future__ import annotations

import contextlib
import io
import re
import time

import pytest

from slt import progress

ETA = re.compile(r"(\d+)/(\d+) \[\d\d:\d\d<\d\d:\d\d")     # tqdm: "3/8 [00:42<01:10"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def interactive(monkeypatch):
    """A developer's terminal: CI unset, progress not switched off."""
    monkeypatch.delenv("CI", raising=False)
    progress.set_enabled(True)
    yield
    progress.set_enabled(True)


def _count(stream, total=4, pause=0.06):     # tqdm redraws at most every 0.1 s
    with progress.bar(total, "points", stream=stream) as bar:
        for _ in range(total):
            time.sleep(pause)
            bar.update()


def test_bar_on_a_terminal_shows_i_of_n_and_the_time_left():
    tty = FakeTTY()
    _count(tty)
    out = tty.getvalue()
    assert "points" in out
    done = [int(m.group(1)) for m in ETA.finditer(out)]
    assert done and max(done) == 4 and all(int(m.group(2)) == 4 for m in ETA.finditer(out))


@pytest.mark.parametrize("why", ["pipe", "ci", "quiet"])
def test_silent_off_a_terminal_under_ci_and_when_quiet(why, monkeypatch):
    stream = io.StringIO() if why == "pipe" else FakeTTY()
    if why == "ci":
        monkeypatch.setenv("CI", "1")
    if why == "quiet":
        progress.set_enabled(False)
    _count(stream, pause=0)
    with progress.stage("free_energy", stream=stream, interval=0.01):
        progress.note("19 betas")
        time.sleep(0.03)
    assert stream.getvalue() == ""
    assert not progress.enabled(stream)


def test_stage_ticks_its_elapsed_time_and_shows_the_note():
    tty = FakeTTY()
    with progress.stage("tiny: free_energy (1/1)", stream=tty, interval=0.01):
        progress.note("19 betas x 4 chains")
        time.sleep(0.08)
    out = tty.getvalue()
    lines = [s for s in out.split("\r") if s.strip()]
    assert sum(s.startswith("tiny: free_energy (1/1): 00:0") for s in lines) >= 3   # redrawn by the ticker
    assert "19 betas x 4 chains" in out
    assert out.endswith("\r")                                                     # and cleared at the end
    progress.note("no stage open: ignored")


def test_write_keeps_log_lines_whole_while_a_bar_is_open():
    tty = FakeTTY()
    with progress.bar(2, "sweep", stream=tty) as bar:
        progress.write("[sweep] n=40_seed=0: complete, skipped", stream=tty)
        bar.update()
    assert "[sweep] n=40_seed=0: complete, skipped\n" in tty.getvalue()
    plain = io.StringIO()
    progress.write("a line", stream=plain)
    assert plain.getvalue() == "a line\n"


def _sweep_config(tmp_path):
    import yaml

    raw = {"name": "lin", "model": {"widths": [2, 1], "activation": "identity", "bias": False},
           "truth": {"params": [{"W": [[0.5, -0.5]]}]}, "data": {"n": 30},
           "sampler": {"num_chains": 2, "num_warmup": 20, "num_samples": 20},
           "free_energy": {"num_betas": 3, "num_chains": 2, "num_warmup": 20, "num_samples": 20},
           "sweep": {"n": [30, 40], "seeds": [0]}, "output": {"figures": False}}
    path = tmp_path / "lin.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_slt_sweep_on_a_terminal_shows_points_and_stages(tmp_path):
    from slt import cli

    cfg = _sweep_config(tmp_path)
    tty, out = FakeTTY(), io.StringIO()
    with contextlib.redirect_stderr(tty), contextlib.redirect_stdout(out):
        assert cli.main(["sweep", str(cfg), "--out", str(tmp_path / "a")]) == 0
    err = tty.getvalue()
    assert "lin sweep" in err and max(int(m.group(1)) for m in ETA.finditer(err)) == 2
    assert "free_energy (1/1)" in err and "2 ladders x 3 temperatures" in err   # the replica path's note
    assert "[sweep] n=30_seed=0 ..." in err                     # the log lines are still there
    # --quiet on the same terminal: no progress, no log (two more points, same shapes: no compile)
    tty = FakeTTY()
    with contextlib.redirect_stderr(tty), contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["sweep", str(cfg), "--out", str(tmp_path / "a"), "--quiet",
                         "--set", "sweep.seeds=[0, 1]"]) == 0
    assert tty.getvalue() == ""
    assert (tmp_path / "a" / "lin-sweep" / "n=40_seed=1" / "summary.json").is_file()
