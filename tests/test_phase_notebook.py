"""The phase-transition notebook (experiments/phase_transition.py, jupytext percent format)
runs end to end on tiny settings and writes its figures and results."""
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_phase_transition_notebook_runs(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    path = ROOT / "experiments" / "phase_transition.py"
    nb = jupytext.read(path)
    monkeypatch.setenv("SLT_PHASE_ARGS", f"--small --out {tmp_path}")
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for name in ("occupancy", "posteriors", "n", "histograms"):
        assert (tmp_path / f"phase_transition_{name}.png").stat().st_size > 10_000
    res = json.loads((tmp_path / "phase_transition.json").read_text())
    assert res["phases"] == ["true", "degenerate", "constant", "other"]
    for r in res["by_t"] + res["by_n"]:
        assert math.isclose(sum(r["occupancy"]), 1.0, abs_tol=1e-9)
        assert all(s >= 0 for s in r["se"])
        assert 0 <= r["predicted_degenerate"] <= 1
        assert len(r["switches"]) == res["settings"]["num_chains"]
    assert [r["t"] for r in res["by_t"]] == [1.0, 1.4]
