"""The committed notebooks ``experiments/*.ipynb`` are their jupytext scripts plus outputs: same
cells (so the two cannot drift), paired, executed, no error cell, small, no machine paths.
Regenerate with ``python experiments/build_notebooks.py`` after editing a script."""
import re

import pytest

from notebook_util import REPO, build_notebooks

bn = build_notebooks()
NAMES = sorted(bn.SMALL)


def _cells(nb):
    return [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_notebook_script_is_built():
    scripts = {p.stem for p in (REPO / "experiments").glob("*.py")
               if p.read_text().startswith("# ---\n# jupyter:")}
    assert scripts == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_script(name):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("jupytext")
    path = bn.notebook_path(name)
    assert path.is_file(), f"{path.name} missing: python experiments/build_notebooks.py {name}"
    nb = nbformat.read(path, as_version=4)
    script = bn.read_script(name)
    assert _cells(nb) == _cells(script), (
        f"{path.name} and {name}.py differ: python experiments/build_notebooks.py {name}")
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert "formats: ipynb,py:percent" in bn.script(name).read_text()


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_executed_clean_and_small(name):
    nbformat = pytest.importorskip("nbformat")
    path = bn.notebook_path(name)
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code), "not executed"
    assert bn.errors(nb) == []
    assert bn.images(nb) >= 2
    assert path.stat().st_size < 500_000
    text = bn.text_outputs(nb)
    assert not re.search(r"(/tmp/|/home/|/root/|/work/|/Users/|[A-Z]:\\)", text), "machine path in outputs"
