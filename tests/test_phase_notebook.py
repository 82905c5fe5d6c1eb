"""The phase-transition notebook (experiments/phase_transition.py, jupytext percent format)
runs end to end on tiny settings, the way ``experiments/build_notebooks.py`` runs it for the
committed .ipynb, without an error cell, and writes its figures and results."""
import json
import math

import pytest

from notebook_util import build_notebooks


@pytest.mark.slow
def test_phase_transition_notebook_runs(tmp_path):
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    bn = build_notebooks()
    nb = bn.execute("phase_transition", tmp_path)            # raises on the first failing cell
    assert bn.errors(nb) == []
    assert bn.images(nb) == 4                                # every figure shown inline
    out_dir = tmp_path / "figures"
    for name in ("occupancy", "posteriors", "n", "histograms"):
        assert (out_dir / f"phase_transition_{name}.png").stat().st_size > 10_000
    res = json.loads((out_dir / "phase_transition.json").read_text())
    assert res["phases"] == ["true", "degenerate", "constant", "other"]
    for r in res["by_t"] + res["by_n"]:
        assert math.isclose(sum(r["occupancy"]), 1.0, abs_tol=1e-9)
        assert all(s >= 0 for s in r["se"])
        assert 0 <= r["predicted_degenerate"] <= 1
        assert len(r["switches"]) == res["settings"]["num_chains"] - r["invalid_chains"]
        assert len(r["group_occupancy"]) == 2 and len(r["group_z"]) == 4   # two prior-start groups
        # the per-phase free-energy check: a z-score, or the reason it is withheld
        assert (r["share_z"] is not None) != (r["free_energy_withheld"] is not None)
        assert len(r["betas"]) == res["settings"]["num_temperatures"] and r["betas"][0] == 1.0
    assert res["settings"]["method"] == "replica" and res["settings"]["init"] == "prior"
    assert len(res["free_energy_check"]) == len(res["group_agreement"]) == 2
    assert [r["t"] for r in res["by_t"]] == [1.0, 1.4]
    assert str(tmp_path) not in bn.text_outputs(nb)
