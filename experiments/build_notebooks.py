"""Regenerate the committed notebooks ``experiments/<name>.ipynb`` from their jupytext scripts.

The percent scripts ``experiments/<name>.py`` are the source of truth; each ``.ipynb`` is the
same cells (jupytext pairing, ``formats: ipynb,py:percent``) plus the outputs of one run at
the script's **small settings**, so a reader sees tables and figures without running anything::

    python experiments/build_notebooks.py                     # every notebook (about 2 minutes on 2 cores)
    python experiments/build_notebooks.py phase_transition    # one

Each script runs in a fresh Jupyter kernel (``nbclient``) whose working directory is a
temporary directory: the runs and figures of the small settings land there (the published
figures in ``figures/`` are never touched) and every path a cell prints is relative. A cell
that raises stops the build (no notebook is written); outputs that name the temporary
directory or this checkout are refused too, so no machine path is committed. The tests
execute the notebooks through :func:`execute` (``tests/test_notebook_free_energy.py``,
``tests/test_phase_notebook.py``) and check that every ``.ipynb`` matches its script
(``tests/test_notebooks_sync.py``).

Needs ``pip install -e '.[notebooks]'`` (jupytext, nbclient, ipykernel; jupyterlab to open them).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent
REPO = EXPERIMENTS.parent

# name -> environment of the kernel that runs it at small settings (paths relative to its cwd)
SMALL = {
    "beyond_llc": {"SLT_SMALL": "1", "SLT_FIGURES": "figures"},
    "free_energy_vs_n": {"SLT_SMALL": "1", "SLT_OUT": "runs", "SLT_FIGURES": "figures"},
    "phase_transition": {"SLT_PHASE_ARGS": "--small --out figures"},
    "xor": {"SLT_SMALL": "1", "SLT_OUT": "runs", "SLT_FIGURES": "figures"},
}
KERNEL_ENV = {"SLT_REPO": str(REPO), "SLT_NO_COMPILATION_CACHE": "1", "CI": "1",
              # numpyro imports tqdm.auto, which warns (naming its install path) without ipywidgets
              "PYTHONWARNINGS": "ignore:IProgress not found"}
PAIRING = "ipynb,py:percent"


def script(name: str) -> Path:
    return EXPERIMENTS / f"{name}.py"


def notebook_path(name: str) -> Path:
    return EXPERIMENTS / f"{name}.ipynb"


@contextlib.contextmanager
def _environ(updates: dict, drop: tuple = ()):
    saved = dict(os.environ)
    try:
        for key in drop:
            os.environ.pop(key, None)
        os.environ.update(updates)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def read_script(name: str):
    """The script's cells as a notebook (``jupytext.read``), pairing metadata set."""
    import jupytext

    nb = jupytext.read(script(name))
    nb.metadata.setdefault("jupytext", {})["formats"] = PAIRING
    return nb


def execute(name: str, workdir: Path, timeout: int = 1200):
    """Run ``experiments/<name>.py`` at small settings in a fresh kernel whose cwd is
    ``workdir``; returns the executed notebook. Raises ``nbclient`` 's
    ``CellExecutionError`` on the first cell that fails."""
    import nbclient

    nb = read_script(name)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # MPLBACKEND=Agg (set by test setups) would stop the inline backend: the figures would not
    # be in the notebook. XLA_FLAGS is kept: the tests' device count reaches the kernel.
    with _environ({**KERNEL_ENV, **SMALL[name]}, drop=("MPLBACKEND",)):
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                         record_timing=False,
                                         resources={"metadata": {"path": str(workdir)}})
        client.execute()
    return nb


def errors(nb) -> list[str]:
    """Every error output of a notebook, as ``ename: evalue`` (empty when none)."""
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def text_outputs(nb) -> str:
    """All text a notebook's cells printed or returned."""
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            parts.append(o.get("text", ""))
            parts.append((o.get("data") or {}).get("text/plain", ""))
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def images(nb) -> int:
    return sum("image/png" in (o.get("data") or {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


def build(name: str, log=print) -> Path:
    """Execute one notebook at small settings and write ``experiments/<name>.ipynb``."""
    import jupytext

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"slt-nb-{name}-") as tmp:
        nb = execute(name, Path(tmp))
        found = errors(nb)
        if found:
            raise RuntimeError(f"{name}: error outputs: {found}")
        text = text_outputs(nb)
        leaks = [p for p in (tmp, str(Path(tmp).resolve()), str(REPO)) if p in text]
        if leaks:
            raise RuntimeError(f"{name}: outputs name machine paths {leaks}; print relative paths")
    out = notebook_path(name)
    jupytext.write(nb, out, fmt="ipynb")
    log(f"{out.relative_to(REPO)}: {out.stat().st_size / 1024:.0f} KiB, {images(nb)} figures, "
        f"{time.perf_counter() - t0:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*",
                        help=f"notebooks to build (default: all of {', '.join(sorted(SMALL))})")
    args = parser.parse_args(argv)
    names = args.names or sorted(SMALL)
    unknown = [n for n in names if n not in SMALL]
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; known: {sorted(SMALL)}")
    for name in names:
        build(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
