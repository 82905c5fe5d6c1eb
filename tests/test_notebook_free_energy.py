"""The free-energy notebook (jupytext percent script) runs end to end on small settings."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "experiments" / "free_energy_vs_n.py"


@pytest.mark.slow
def test_free_energy_notebook_executes(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SLT_SMALL", "1")
    monkeypatch.setenv("SLT_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("SLT_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("SLT_REPO", str(REPO))
    monkeypatch.setenv("SLT_NO_COMPILATION_CACHE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(NOTEBOOK)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    for name in ("free_energy_vs_n.png", "wbic_bias.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000
    sweeps = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert sweeps == ["linreg-fe-sweep", "relu2-truth0-fe-sweep", "relu2-truth1-fe-sweep", "relu2-truth2-fe-sweep"]
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "linear regression d=5" in out and "beta-slope" in out
