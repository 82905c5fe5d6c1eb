"""Results in one line of Python: ``slt.load(run_dir)``.

A run directory (``slt run``, ``llc``, ``fisher``, ``calibrate``) loads as a :class:`Run`, a
sweep directory (it holds ``sweep.json``) as a :class:`Sweep` of runs::

    run = slt.load("runs/relu2-truth1")
    run.summary["loss"]["E_nL_n"], run.figures["trace_loss"], run.inference_data.posterior["L_n"]
    slt.load("runs/relu2-truth1-free-energy-sweep").table()     # one row per (n, seed)

Nothing heavy is imported until asked for: ``inference_data`` opens ``posterior.nc`` with
ArviZ on first access, ``Sweep.table`` returns a pandas DataFrame when pandas is importable
(a list of dicts otherwise). A path that is not there raises :class:`FileNotFoundError`; a
directory that is not a finished run or sweep raises :class:`ValueError`; both with one line.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"
SWEEP = "sweep.json"


@dataclasses.dataclass(frozen=True)
class Run:
    """One run directory.

    Attributes:
      path: the run directory.
      config: the resolved config (``summary.json``'s ``config``, else ``config.yaml``).
      summary: ``summary.json`` as a dict (see the README's "What a run writes").
      complete: whether ``summary.json`` says ``complete: true`` (always true unless loaded
        with ``allow_incomplete=True``).
      figures: figure name (file stem) -> path of every PNG in the directory.
    """

    path: Path
    config: dict
    summary: dict
    complete: bool
    figures: dict

    @functools.cached_property
    def inference_data(self):
        """``arviz.from_netcdf(posterior.nc)`` (loaded on first access), or None when the run
        wrote no posterior draws (``slt llc``, ``slt fisher`` at a point, sweep points)."""
        nc = self.path / "posterior.nc"
        if not nc.is_file():
            return None
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import arviz as az
        return az.from_netcdf(str(nc))

    @property
    def headline(self) -> dict:
        """The headline numbers as one flat record (:func:`slt.cli.report.headline`)."""
        from slt.cli.report import headline

        return headline(self.summary)

    def report(self) -> str:
        """The text summary the command printed (:func:`slt.cli.report.format_summary`)."""
        from slt.cli.report import format_summary

        return format_summary(self.summary, self.path)

    def __repr__(self) -> str:
        return (f"Run({str(self.path)!r}, name={self.summary.get('name')!r}, n={self.summary.get('n')}, "
                f"complete={self.complete}, figures={sorted(self.figures)})")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A sweep directory (``slt sweep``): ``sweep.json`` plus one :class:`Run` per point.

    Attributes:
      path: the sweep directory.
      config: the sweep's resolved config.
      summary: ``sweep.json`` as a dict (points, the log n fits under ``lambda``).
      complete: whether ``sweep.json`` says ``complete: true``.
      figures: figure name -> path of the sweep's PNGs (``sweep.png``).
      points: the points' runs, in the order of ``sweep.json``.
    """

    path: Path
    config: dict
    summary: dict
    complete: bool
    figures: dict
    points: list

    def table(self):
        """One record per point: ``n``, ``seed``, the headline numbers
        (:func:`slt.cli.report.headline`) and ``run_dir``; a pandas DataFrame when pandas is
        importable, else a list of dicts."""
        from slt.cli.report import headline

        records = []
        for run in self.points:
            rec = headline(run.summary)
            seed = rec.pop("seed")
            records.append({"n": rec.pop("n"), "seed": seed, **rec, "run_dir": run.path.name})
        try:
            import pandas as pd
        except ImportError:
            return records
        return pd.DataFrame.from_records(records)

    def report(self) -> str:
        """The text summary ``slt sweep`` printed."""
        from slt.cli.report import format_summary, read_summary

        return format_summary(read_summary(self.path), self.path)

    def __repr__(self) -> str:
        return (f"Sweep({str(self.path)!r}, name={self.summary.get('name')!r}, "
                f"points={len(self.points)}, complete={self.complete})")


# ----------------------------------------------------------------------------- loading
def load(path: str | Path, allow_incomplete: bool = False) -> Run | Sweep:
    """Load a run directory as a :class:`Run`, or a sweep directory (with ``sweep.json``) as
    a :class:`Sweep`. ``path`` may also name the directory's ``summary.json``/``sweep.json``.

    Raises:
      FileNotFoundError: ``path`` does not exist, or holds neither ``summary.json`` nor
        ``sweep.json`` nor ``config.yaml`` (not an slt output directory).
      ValueError: an interrupted run (``config.yaml`` without ``summary.json``, or
        ``complete: false``; pass ``allow_incomplete=True`` to load it anyway) or an
        unreadable ``summary.json``/``sweep.json``.
    """
    path = _directory(path)
    if (path / SWEEP).is_file():
        return load_sweep(path, allow_incomplete=allow_incomplete)
    return _load_run(path, allow_incomplete)


def load_sweep(path: str | Path, allow_incomplete: bool = False) -> Sweep:
    """Load a sweep directory (``<out>/<name>-sweep/``) as a :class:`Sweep`; errors as :func:`load`."""
    path = _directory(path)
    if not (path / SWEEP).is_file():
        if (path / SUMMARY).is_file():
            raise ValueError(f"{str(path)!r} is a run directory, not a sweep (no {SWEEP}); use slt.load")
        raise FileNotFoundError(f"{str(path)!r} is not a sweep directory (no {SWEEP}: still running, "
                                "or interrupted before its last point? rerun slt sweep to finish it)")
    doc = _read_json(path / SWEEP)
    complete = doc.get("complete") is True
    if not complete and not allow_incomplete:
        raise ValueError(f"{str(path / SWEEP)!r} says the sweep is incomplete; rerun slt sweep to finish it")
    points = []
    for row in doc.get("points") or []:
        name = row.get("run_dir") if isinstance(row, dict) else None
        if not name:
            raise ValueError(f"{str(path / SWEEP)!r}: a point without run_dir")
        point = path / str(name)
        if not point.is_dir():
            raise FileNotFoundError(f"sweep point {str(point)!r} is missing; rerun slt sweep to redo it")
        points.append(_load_run(point, allow_incomplete))
    return Sweep(path=path, config=doc.get("config") or {}, summary=doc, complete=complete,
                 figures=_figures(path), points=points)


def _directory(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file() and path.name in (SUMMARY, SWEEP):
        path = path.parent
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    if not path.is_dir():
        raise FileNotFoundError(f"{str(path)!r} is not a directory (expected an slt run or sweep directory)")
    return path


def _load_run(path: Path, allow_incomplete: bool) -> Run:
    summary_file = path / SUMMARY
    if not summary_file.is_file():
        if (path / "config.yaml").is_file():
            if not allow_incomplete:
                raise ValueError(f"{str(path)!r} is an incomplete run (config.yaml but no {SUMMARY}: "
                                 "interrupted?); rerun it, or slt.load(..., allow_incomplete=True)")
            summary = {}
        else:
            raise FileNotFoundError(f"{str(path)!r} is not an slt run directory (no {SUMMARY} or {SWEEP})")
    else:
        summary = _read_json(summary_file)
    complete = summary.get("complete") is True
    if not complete and not allow_incomplete:
        raise ValueError(f"{str(summary_file)!r} says the run is incomplete (interrupted?); rerun it, "
                         "or slt.load(..., allow_incomplete=True)")
    config = summary.get("config")
    if not isinstance(config, dict):
        config = _read_config(path)
    return Run(path=path, config=config, summary=summary, complete=complete, figures=_figures(path))


def _read_json(file: Path) -> dict:
    try:
        doc = json.loads(file.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {str(file)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{str(file)!r} is not valid JSON (half-written?): {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{str(file)!r} does not hold a JSON object")
    return doc


def _read_config(path: Path) -> dict:
    file = path / "config.yaml"
    if not file.is_file():
        return {}
    import yaml

    try:
        doc = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _figures(path: Path) -> dict[str, Any]:
    return {p.stem: p for p in sorted(path.glob("*.png")) if not p.name.startswith(".")}
