"""Run directories, atomic writes, and the one-way pipeline config -> data -> stages -> files.

A run directory holds ``config.yaml`` (resolved), the stages' files and figures, and
``summary.json``, written *last* and atomically: a directory without ``summary.json`` is an
incomplete run, never mistaken for a finished one. Every file is written to a temporary
name in the same directory and renamed into place. Directories are reserved with an atomic
``mkdir``: two processes never share one (the second gets ``<name>-2``, ...).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
import platform
import signal
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import yaml

from slt.pipeline import config as config_mod
from slt import progress
from slt.pipeline.config import Config, ConfigError

SUMMARY = "summary.json"


# ----------------------------------------------------------------------------- context
@dataclasses.dataclass
class Context:
    """What every stage receives: the validated config, the problem, the truth, the keys."""

    config: Config
    problem: Any                      # slt.posterior.Problem
    truth_spec: Any = None            # slt.models.MLP of the truth network (or None)
    truth_params: Any = None          # its parameters (list of layers)
    truth_w: Any = None               # the truth embedded in the model's flat parameters, or None
    truth_loss: float | None = None   # L_n(w0), computed from the truth network's predictions
    root_key: Any = None
    warnings: list = dataclasses.field(default_factory=list)
    posterior: Any = None             # (draws, beta, init info) once a stage sampled the posterior
    point: Any = None                 # a Python model's w* (flat) for llc/fisher at: params

    def key(self, name: str):
        """A named, reproducible subkey: ``fold_in(root, crc32(name))``."""
        import jax

        return jax.random.fold_in(self.root_key, zlib.crc32(name.encode()) & 0x7FFFFFFF)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


class StageOutput(NamedTuple):
    """A stage's results: summary sections, figures, and files to write (name -> writer)."""

    summary: dict
    figures: dict = {}
    files: dict = {}                  # filename -> callable(path) writing that file
    timing: dict = {}


def set_precision(precision: str) -> None:
    import jax

    jax.config.update("jax_enable_x64", precision == "float64")


def build_context(cfg: Config, problem=None) -> Context:
    """Make the data (or load it) and the posterior problem for a validated config; or, for a
    config of a Python model (``cfg.external_model``), take the given ``problem`` as it is."""
    import jax

    from slt import data as data_mod
    from slt import likelihoods, models
    from slt.posterior import Problem

    set_precision(cfg.precision)
    root = jax.random.key(cfg.seed)
    ctx = Context(config=cfg, problem=None, root_key=root)
    if cfg.external_model is not None:
        ctx.problem = problem
        return ctx
    m = cfg.model
    spec = models.make_mlp(m.widths, m.activation, m.bias)
    if cfg.truth is not None:
        t = cfg.truth
        tspec = models.make_mlp(t.widths or m.widths, t.activation or m.activation,
                                m.bias if t.bias is None else t.bias)
        if t.params is not None:
            tparams = models.params_from_lists(tspec, t.params)
        else:
            tparams = models.init(jax.random.key(t.random.seed), tspec, t.random.std)
        ctx.truth_spec, ctx.truth_params = tspec, tparams
        try:
            ctx.truth_w = models.flatten(models.embed(tspec, tparams, spec))
        except ValueError:
            ctx.truth_w = None
    data_key = jax.random.key(cfg.data.seed) if cfg.data.seed is not None else ctx.key("data")
    if cfg.data.file is not None:
        try:
            dataset = data_mod.load(Path(cfg.base_dir) / cfg.data.file, spec.d_in, spec.d_out, cfg.data.n,
                                    likelihood=m.likelihood)
        except data_mod.DataFileError as exc:
            raise ConfigError("data.file", str(exc)) from None
    else:
        x = cfg.data.x
        noise = m.noise_std if cfg.data.noise_std is None else cfg.data.noise_std
        dataset = data_mod.synthesize(data_key, ctx.truth_spec, ctx.truth_params, cfg.data.n, noise,
                                      dist=x.dist, low=x.low, high=x.high, std=x.std,
                                      likelihood=m.likelihood)
    ctx.problem = Problem.make(spec, dataset, m.noise_std, m.prior_std, m.likelihood)
    if ctx.truth_spec is not None:
        pred = models.apply(ctx.truth_spec, ctx.truth_params, ctx.problem.x)
        ctx.truth_loss = float(likelihoods.mean_nll(m.likelihood, pred, ctx.problem.y, ctx.problem.noise_std))
    return ctx


def check_data_file(cfg: Config, n: int | None = None) -> None:
    """Load ``data.file`` (first ``n`` rows) only to validate it: a bad data file is bad input,
    reported as :class:`ConfigError` before any directory exists (sweeps call this up front
    with their largest n; ``slt run`` finds the same problems in :func:`build_context`)."""
    if cfg.data.file is None:
        return
    from slt import data as data_mod

    d_in, d_out = cfg.model.widths[0], cfg.model.widths[-1]
    try:
        data_mod.load(Path(cfg.base_dir) / cfg.data.file, d_in, d_out, n, likelihood=cfg.model.likelihood)
    except data_mod.DataFileError as exc:
        raise ConfigError("data.file", str(exc)) from None


# ----------------------------------------------------------------------------- disk
def atomic_write(path: Path, writer: Callable[[Path], None] | str | bytes) -> None:
    """Write ``path`` via a temporary file in the same directory and an atomic rename.

    A failed write (disk full, file too large, directory gone) raises :class:`RunError`
    naming the file; the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)   # before anything can raise: the cleanup below needs a Path (a str here
        os.close(fd)       # turned a Ctrl-C at os.close into an AttributeError traceback)
        if isinstance(writer, str):
            tmp.write_text(writer)
        elif isinstance(writer, bytes):
            tmp.write_bytes(writer)
        else:
            writer(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise RunError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def inference_data_bytes(idata) -> bytes:
    """An ArviZ InferenceData as netCDF4 bytes (what ``idata.to_netcdf`` writes, groups
    zlib-compressed), serialised in memory: HDF5 crashes the process (SIGSEGV) when a write
    fails half-way (disk full), so the file itself is written by :func:`atomic_write`."""
    import io

    buf, mode = io.BytesIO(), "w"
    for group in idata.groups():
        data = getattr(idata, group)
        encoding = {name: {"zlib": True} for name, v in data.variables.items()
                    if np.issubdtype(v.dtype, np.number) or v.dtype == bool}
        data.to_netcdf(buf, mode=mode, group=group, engine="h5netcdf", encoding=encoding)
        mode = "a"
    return buf.getvalue()


def reserve_dir(parent: Path, name: str) -> Path:
    """Atomically create a fresh run directory ``parent/name`` (or ``name-2``, ``name-3``...)."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create output directory {str(parent)!r}: {exc.strerror}") from None
    for i in range(1, 10000):
        candidate = parent / (name if i == 1 else f"{name}-{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(f"cannot create run directory {str(candidate)!r}: {exc.strerror}") from None
    raise RunError(f"too many runs named {name!r} in {str(parent)!r}")


class RunError(RuntimeError):
    """A problem with the output location (exit status 2, one line)."""


# ----------------------------------------------------------------------------- Ctrl-C
_interrupt_requested = False


@contextlib.contextmanager
def sigint_checkpoints():
    """While the body runs, Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` as usual *and* is
    remembered, and :func:`check_interrupt` raises it again at the next checkpoint (before
    every stage, before ``summary.json`` is written, when a command ends).

    Why: CPython drops a ``KeyboardInterrupt`` that surfaces inside a garbage-collector callback
    or a finalizer ("Exception ignored in ..."), and JAX registers a gc callback
    (``_xla_gc_callback``) that runs at every collection. Measured: of 1000 SIGINTs sent at random
    moments of tiny sweep points, one was lost that way and the sweep ran on to exit status 0.
    An exception other than ``KeyboardInterrupt`` leaving the body after a Ctrl-C (library code
    that caught the interrupt and failed differently, as ``atomic_write`` once did) is reported
    as the interrupt it was. Only installed from the main thread and when SIGINT has Python's
    default handler (a background job started with SIGINT ignored keeps ignoring it); the
    previous handler is restored afterwards."""
    global _interrupt_requested
    _interrupt_requested = False
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def handler(signum, frame):
        global _interrupt_requested
        _interrupt_requested = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    except Exception as exc:
        if _interrupt_requested:
            raise KeyboardInterrupt from exc
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        _interrupt_requested = False


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived (see :func:`sigint_checkpoints`)."""
    if _interrupt_requested:
        raise KeyboardInterrupt


def is_complete(run_dir: Path) -> bool:
    """A run is complete iff its summary.json parses and says so."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("complete") is True


def to_jsonable(obj):
    """numpy/jax scalars and arrays to JSON; NaN/inf become null (never a silent number)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return to_jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    return str(obj)


def versions() -> dict:
    import importlib.metadata as md

    from slt._version import __version__

    out = {"slt": __version__}   # the package's own version (its distribution is named slt-jax)
    for pkg in ("jax", "jaxlib", "numpyro", "arviz", "optax", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def platform_info() -> dict:
    import jax

    return {"python": platform.python_version(), "machine": platform.machine(),
            "system": platform.system(), "jax_backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "x64": bool(jax.config.jax_enable_x64)}


# ----------------------------------------------------------------------------- pipeline
STAGE_MODULES = {
    "sample": "slt.pipeline.stages.sampling",
    "free_energy": "slt.pipeline.stages.free_energy",
    "llc": "slt.pipeline.stages.llc",
    "fisher": "slt.pipeline.stages.fisher",
}


def default_stages(cfg: Config) -> list[str]:
    """``slt run``: posterior sampling, then every analysis section present in the config."""
    stages = ["sample"]
    if cfg.free_energy is not None or cfg.lambda_ is not None:
        stages.append("free_energy")
    for name in ("llc", "fisher"):
        if getattr(cfg, name) is not None:
            stages.append(name)
    return stages


def execute(cfg: Config, stages: list[str] | None = None, out_dir: str | Path | None = None,
            exact_dir: bool = False, log: Callable[[str], None] | None = None, problem=None,
            point=None) -> Path:
    """Run the stages of a validated config and write a complete run directory.

    ``out_dir`` is the parent of the run directory (default ``cfg.output.dir``); with
    ``exact_dir`` it is the run directory itself (used by sweeps, which own their points).
    ``problem``: the :class:`slt.posterior.Problem` of a config made for a Python model
    (``cfg.external_model``; see :func:`slt.api.run`) and ``point`` its flat ``w*`` for
    ``at: params``. Returns the run directory.
    """
    log = log or (lambda s: None)
    t0 = time.perf_counter()
    stages = stages or default_stages(cfg)
    ctx = build_context(cfg, problem)
    ctx.point = point                 # may raise ConfigError (e.g. data file) before any dir
    modules = {s: importlib.import_module(STAGE_MODULES[s]) for s in stages}
    for module in modules.values():   # a stage's checks that need the data (ConfigError), before any dir
        getattr(module, "check", lambda ctx: None)(ctx)
    preflight(ctx, stages)            # a point that cannot be sampled: one line, no directory
    if exact_dir:
        run_dir = Path(out_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create run directory {str(run_dir)!r}: {exc.strerror}") from None
        stale = run_dir / SUMMARY
        if stale.exists() and not is_complete(run_dir):
            stale.unlink()
    else:
        parent = Path(out_dir) if out_dir is not None else Path(cfg.output.dir)
        run_dir = reserve_dir(parent, cfg.name)
    _check_writable(run_dir)
    atomic_write(run_dir / "config.yaml", yaml.safe_dump(config_mod.to_dict(cfg), sort_keys=False))

    summary: dict = {
        "complete": False, "name": cfg.name, "n": ctx.problem.n, "d": ctx.problem.d, "seed": cfg.seed,
        "model": cfg.external_model or "mlp", "likelihood": ctx.problem.likelihood,
        "beta": None, "stages": stages,
        "loss": {"L_n_truth": ctx.truth_loss, "E_L_n": None, "E_nL_n": None,
                 "nL_n_truth": None if ctx.truth_loss is None else ctx.problem.n * ctx.truth_loss},
        "diagnostics": {"warnings": ctx.warnings},
        "timing": {},
    }
    for i, (name, module) in enumerate(modules.items(), 1):
        check_interrupt()                     # a Ctrl-C that a library swallowed stops us here
        log(f"[{cfg.name}] {name} ...")
        ts = time.perf_counter()
        with progress.stage(f"{cfg.name}: {name} ({i}/{len(modules)})"):   # terminals only
            out: StageOutput = module.run(ctx)
        _merge(summary, out.summary)
        summary["timing"][f"{name}_s"] = time.perf_counter() - ts
        summary["timing"].update(out.timing)
        for fname, writer in out.files.items():
            atomic_write(run_dir / fname, writer)
        if cfg.output.figures:
            for fname, fig in out.figures.items():
                save_figure(run_dir / f"{fname}.png", fig)
    summary["diagnostics"]["warnings"] = list(dict.fromkeys(ctx.warnings))
    summary["timing"]["total_s"] = time.perf_counter() - t0
    summary["versions"] = versions()
    summary["platform"] = platform_info()
    summary["config"] = config_mod.to_dict(cfg)
    summary["complete"] = True
    check_interrupt()
    atomic_write(run_dir / SUMMARY, json.dumps(to_jsonable(summary), indent=2, allow_nan=False))
    return run_dir


def preflight(ctx, stages) -> None:
    """Check the ``llc``/``fisher`` point of a run before any directory is made or any chain runs
    (``at: truth | params``; a trained point is checked after training, in its stage)."""
    from slt.posterior import problem_loss
    from slt.samplers import health
    from slt.pipeline.stages.point import resolve_point

    for name in ("llc", "fisher"):
        sec = getattr(ctx.config, name, None)
        if name not in stages or sec is None or sec.at not in ("truth", "params"):
            continue
        if name == "llc" and getattr(sec, "checkpoints", None) is not None:
            continue
        w, _ = resolve_point(ctx, sec)
        health.check_point(name, problem_loss, w, ctx.problem, model=ctx.problem.model)


def _merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def save_figure(path: Path, fig) -> None:
    """Write a matplotlib figure as a PNG atomically (:func:`atomic_write`) and close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png", bbox_inches="tight"))
    plt.close(fig)


def _check_writable(run_dir: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".probe.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise RunError(f"run directory {str(run_dir)!r} is not writable: {exc.strerror}") from None
