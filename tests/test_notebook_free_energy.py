"""The free-energy notebook (jupytext percent script) runs end to end on small settings, the way
``experiments/build_notebooks.py`` runs it for the committed .ipynb, without an error cell."""
import pytest

from notebook_util import build_notebooks


@pytest.mark.slow
def test_free_energy_notebook_executes(tmp_path):
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    bn = build_notebooks()
    nb = bn.execute("free_energy_vs_n", tmp_path)          # raises on the first failing cell
    assert bn.errors(nb) == []
    assert bn.images(nb) == 2                                # both figures shown inline
    for name in ("free_energy_vs_n.png", "wbic_bias.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000
    sweeps = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert sweeps == ["linreg-fe-sweep", "relu2-truth0-fe-sweep", "relu2-truth1-fe-sweep", "relu2-truth2-fe-sweep"]
    out = bn.text_outputs(nb)
    assert "linear regression d=5" in out and "beta-slope" in out
    assert str(tmp_path) not in out                          # paths printed relative
