"""The XOR notebook (experiments/xor.py) runs end to end on small settings without an error
cell: the posterior predictive of every width, the free energy against n per width, the LLC
along training."""
import pytest

from notebook_util import build_notebooks


@pytest.mark.slow
def test_xor_notebook_executes(tmp_path):
    bn = build_notebooks()
    nb = bn.execute("xor", tmp_path)                         # raises on the first failing cell
    assert bn.errors(nb) == []
    for name in ("xor_predictive.png", "xor_free_energy.png", "xor_llc_trajectory.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000
    out = bn.text_outputs(nb)
    assert "chosen by F_n" in out and "min train L_n" in out
    assert str(tmp_path) not in out
