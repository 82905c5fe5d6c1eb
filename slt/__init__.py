"""slt: a JAX toolkit for singular learning theory.

``slt.Problem.from_function(apply_fn, params, x, y, likelihood=...)`` and
``slt.run(problem, config)`` run every estimator on your own JAX model (:mod:`slt.api`);
``slt.load(run_dir)`` opens a finished run (or sweep) directory as a typed object
(:mod:`slt.results`); importing ``slt`` itself stays cheap (jax and arviz load on first use).

The public API is ``__all__`` below: each name is one line of ``_PUBLIC`` (where it lives),
imported on first use. The modules behind it are public too where their docstrings say so
(the estimators, samplers, ``slt.pipeline.config``); a module or name starting with ``_`` is private
and may change without notice (``slt.pipeline.config._schema``, ``slt.pipeline.stages._llc_common``, ...).
"""
from slt._version import __version__
from slt.results import Run, Sweep, load, load_sweep  # stdlib-only: cheap to import

# name -> "module:attribute", imported on first access (jax, numpyro, arviz load only then)
_PUBLIC = {
    "Problem": "slt.posterior:Problem",                      # model + likelihood + prior + data
    "run": "slt.api:run",                                    # the slt run pipeline on a Problem
    "ConfigError": "slt.pipeline.config:ConfigError",        # bad config input (one line, key path)
    "estimate_llc": "slt.estimators.learning_coefficient:estimate_llc",  # the LLC of any loss function
    "llc_for_problem": "slt.estimators.learning_coefficient:llc_for_problem",
    "LLCResult": "slt.estimators.learning_coefficient:LLCResult",
}

__all__ = ["ConfigError", "LLCResult", "Problem", "Run", "Sweep", "__version__", "estimate_llc",
           "llc_for_problem", "load", "load_sweep", "run"]


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        module, attr = _PUBLIC[name].split(":")
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'slt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
