"""slt: a JAX toolkit for singular learning theory.

``slt.load(run_dir)`` opens a finished run (or sweep) directory as a typed object
(:mod:`slt.results`); importing ``slt`` itself stays cheap (jax and arviz load on first use).
"""
__version__ = "0.1.0"

from slt.results import Run, Sweep, load, load_sweep  # noqa: E402  (stdlib-only module)

__all__ = ["Run", "Sweep", "load", "load_sweep", "__version__"]
