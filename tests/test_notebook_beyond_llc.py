"""The beyond-the-LLC notebook (experiments/beyond_llc.py) runs end to end on small settings
without an error cell: per-node and per-layer restricted LLCs of the two-node ReLU network
across its phase transition, the Bayesian influence function at one angle, and XOR's
per-layer / per-node LLCs, influential pairs and quadrant susceptibilities."""
import re

import pytest

from notebook_util import build_notebooks


@pytest.mark.slow
def test_beyond_llc_notebook_executes(tmp_path):
    bn = build_notebooks()
    nb = bn.execute("beyond_llc", tmp_path)                  # raises on the first failing cell
    assert bn.errors(nb) == []
    assert bn.images(nb) >= 3
    for name in ("beyond_llc_nodes.png", "beyond_llc_bif.png", "beyond_llc_xor.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000
    out = bn.text_outputs(nb)
    # the per-node / per-layer table: one two-node and one one-node row per angle
    for t in ("0.90", "1.20", "1.45"):
        assert re.search(rf"{t}\s+two-node", out) and re.search(rf"{t}\s+one-node", out)
    assert "layer 1 (W1,b1)" in out and "most influential pairs" in out
    assert "Spearman correlation of total influence" in out
    assert "susceptibility chi[a, b]" in out and "L Q1 (+,+)" in out
    # every LLC in the tables is a number with its standard error (none withheld)
    assert "withheld" not in out
    # the switched-off node of the one-node point carries almost none of the LLC
    one_node = re.findall(r"one-node\s+[\d.]+ \|\s+[\d.]+ ± [\d.]+\*?\s+[\d.]+ ± [\d.]+\*?\s+([\d.]+) ±", out)
    assert len(one_node) == 3 and all(float(v) < 0.5 for v in one_node)
    assert str(tmp_path) not in out
