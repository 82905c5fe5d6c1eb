"""slt: a JAX toolkit for singular learning theory.

``slt.Problem.from_function(apply_fn, params, x, y, likelihood=...)`` and
``slt.run(problem, config)`` run every estimator on your own JAX model (:mod:`slt.api`);
``slt.load(run_dir)`` opens a finished run (or sweep) directory as a typed object
(:mod:`slt.results`); importing ``slt`` itself stays cheap (jax and arviz load on first use).
"""
__version__ = "0.1.0"

from slt.results import Run, Sweep, load, load_sweep  # noqa: E402  (stdlib-only module)

__all__ = ["Problem", "Run", "Sweep", "load", "load_sweep", "run", "__version__"]


def __getattr__(name):   # slt.Problem and slt.run import jax on first use, not with ``import slt``
    if name == "Problem":
        from slt.posterior import Problem

        return Problem
    if name == "run":
        from slt.api import run

        return run
    raise AttributeError(f"module 'slt' has no attribute {name!r}")
