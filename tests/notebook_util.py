"""Import ``experiments/build_notebooks.py`` (not a package) for the notebook tests."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_notebooks():
    spec = importlib.util.spec_from_file_location("build_notebooks", REPO / "experiments" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
