"""slt on your own model, from Python: ``slt.run(problem, config)``.

A :class:`slt.Problem` is any JAX network ``apply_fn(params, x)`` over a parameter pytree, a
likelihood (``gaussian``, ``bernoulli``, ``categorical``; :mod:`slt.likelihoods`), the
N(0, prior_std^2) prior, and the data::

    problem = slt.Problem.from_function(apply_fn, params, x, y, likelihood="bernoulli")
    run = slt.run(problem, {"sampler": {"num_samples": 500},
                            "free_energy": {}, "llc": {"at": "trained"}})
    run.summary["free_energy"]["ti"], run.summary["llc"]["mean"]

``config`` is the YAML config as a dict, without the sections the problem replaces
(``model.widths``/``activation``/``bias``, ``truth``, ``data``); the same stages run as for
``slt run`` and write the same run directory, and the result is the same :class:`slt.Run`
that ``slt.load`` returns. Bad input raises ``ValueError`` (``slt.pipeline.config.ConfigError`` for a
config key) naming the problem, before any sampling.
"""
from __future__ import annotations

import copy
from pathlib import Path

from slt.results import Run


def run(problem, config: dict | None = None, *, name: str | None = None, out: str | Path | None = None,
        stages: list[str] | None = None, w_star=None, seed: int | None = None, quiet: bool = True) -> Run:
    """Run the ``slt run`` pipeline on a :class:`slt.posterior.Problem`.

    Args:
      problem: the model, likelihood, prior and data (:meth:`Problem.from_function`, or
        :meth:`Problem.make` for the ``widths`` family).
      config: the config as a dict (see the README's config reference); ``model`` may only set
        ``likelihood``/``noise_std``/``prior_std``, and they must agree with the problem's.
      name: the run's name (default ``config["name"]`` or ``"model"``).
      out: parent directory of the run directory (default ``config.output.dir``, ``runs``).
      stages: which stages (default: ``sample`` plus every analysis section in ``config``).
      w_star: the point for ``llc``/``fisher`` ``at: params`` (a parameter pytree or flat array).
      seed: the root seed (overrides ``config["seed"]``).
      quiet: no progress lines on the terminal.
    Returns: the finished run directory as :class:`slt.Run`.
    """
    import numpy as np

    from slt.pipeline import config as config_mod
    from slt import progress
    from slt.pipeline import runs
    from slt.posterior import Problem

    if not isinstance(problem, Problem):
        raise ValueError(f"slt.run needs a slt.Problem, got {type(problem).__name__}")
    raw = copy.deepcopy(dict(config or {}))
    model = dict(raw.pop("model", None) or {})
    for key in ("widths", "activation", "bias"):
        if key in model:
            raise config_mod.ConfigError(f"model.{key}", "not used with a Python model: the problem holds the model")
    given = {"likelihood": problem.likelihood, "noise_std": float(problem.noise_std),
             "prior_std": float(problem.prior_std)}
    for key, value in given.items():
        if key in model and model[key] != value:
            raise config_mod.ConfigError(f"model.{key}", f"{model[key]!r} disagrees with the problem's {value!r}")
    raw["model"] = given
    if seed is not None:
        raw["seed"] = int(seed)
    raw.setdefault("name", name or "model")
    raw.setdefault("precision", "float64" if problem.x.dtype == np.float64 else "float32")
    description = f"{getattr(problem.model, 'name', type(problem.model).__name__)} (d = {problem.d})"
    cfg = config_mod.from_dict(raw, external_model=description)
    point = None
    if w_star is not None:
        point = w_star if getattr(w_star, "ndim", None) == 1 else problem.ravel(w_star)
        if point.shape != (problem.d,):
            raise ValueError(f"w_star has {point.shape[0]} parameters, the model has d = {problem.d}")
    was = progress._enabled
    progress.set_enabled(was and not quiet)
    try:
        run_dir = runs.execute(cfg, stages=stages, out_dir=out, problem=problem, point=point)
    finally:
        progress.set_enabled(was)
    from slt.results import load

    return load(run_dir)
