"""Sweeps over n (and seeds): one run directory per point, then the F_n-vs-log n table and fit.

Layout::

    <out>/<name>-sweep/
        n=100_seed=0/      a complete run directory (config.yaml, summary.json, figures)
        n=300_seed=0/
        ...
        sweep.json         every point's estimates + the log n fits (written last, atomically)
        sweep.csv
        sweep.png          F_n - n L_n(w0) vs log n with the fitted lambda log n line

A point is *complete* when its ``summary.json`` parses, says ``complete: true`` and holds the
same config as the point would run now (checked, not assumed); anything else is redone.

Per-point config: ``data.n = n``, ``seed = seed``; every key is derived from that seed alone
(never from the backend or the order of execution), so the local and Ray backends give
bit-identical summaries on CPU. With the data seed derived from ``seed`` the inputs and
noise of a smaller n are a prefix of those of a larger n (JAX's partitionable threefry):
the points of one seed are nested data sets, which removes most of the data noise from the
slope of ``F_n - n L_n(w0)`` against ``log n``.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Callable

from slt.pipeline import config as config_mod
from slt import progress
from slt.pipeline.config import Config, FreeEnergyConfig
from slt.pipeline.runs import RunError, SUMMARY, atomic_write, execute, is_complete, to_jsonable

COLUMNS = ("n", "seed", "ti", "ti_stderr", "stepping_stone", "stepping_stone_stderr", "wbic",
           "wbic_stderr", "smc", "smc_stderr", "exact", "nL_n_truth", "beta_slope", "beta_slope_stderr", "run_dir")


def point_name(n: int, seed: int) -> str:
    return f"n={n}_seed={seed}"


def point_configs(cfg: Config) -> list[tuple[int, int, Config]]:
    """(n, seed, config) for every sweep point; the sweep section is dropped from each."""
    seeds = cfg.sweep.seeds or [cfg.seed]
    fe_cfg = cfg.free_energy if cfg.free_energy is not None else FreeEnergyConfig()
    out = []
    for seed in seeds:
        for n in cfg.sweep.n:
            pc = dataclasses.replace(cfg, seed=seed, data=dataclasses.replace(cfg.data, n=n), sweep=None,
                                     free_energy=fe_cfg, name=f"{cfg.name}-{point_name(n, seed)}")
            out.append((n, seed, pc))
    return out


def point_stages(cfg: Config) -> list[str]:
    """The analysis stages of a point: free_energy (always) and any llc/fisher sections; the
    plain posterior-sampling stage is skipped (the free-energy stage samples beta = 1 itself)."""
    return ["free_energy"] + [s for s in ("llc", "fisher") if getattr(cfg, s) is not None]


def _config_matches(run_dir: Path, cfg: Config) -> bool:
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        return False
    return summary.get("config") == to_jsonable(config_mod.to_dict(cfg))


def point_done(run_dir: Path, cfg: Config) -> bool:
    return is_complete(run_dir) and _config_matches(run_dir, cfg)


def _run_point(raw: dict, base_dir: str, run_dir: str, stages: list[str]) -> str:
    """Run one point in this process (the body of both backends)."""
    cfg = config_mod.from_dict(raw, base_dir=base_dir)
    return str(execute(cfg, stages=stages, out_dir=Path(run_dir), exact_dir=True))


def _ray_point(raw: dict, base_dir: str, run_dir: str, stages: list[str]) -> str:
    from slt.setup_jax import configure_jax

    configure_jax()
    return _run_point(raw, base_dir, run_dir, stages)


def run_sweep(cfg: Config, out_dir: str | Path | None = None, backend: str = "local",
              address: str | None = None, num_cpus: int | None = None,
              log: Callable[[str], None] | None = None) -> Path:
    """Run (or resume) the sweep of ``cfg`` and write sweep.json/.csv/.png. Returns the sweep dir."""
    log = log or (lambda s: None)
    if cfg.sweep is None or not cfg.sweep.n:
        raise config_mod.ConfigError("sweep.n", "required for a sweep (a list of sample sizes)")
    root = Path(out_dir if out_dir is not None else cfg.output.dir) / f"{cfg.name}-sweep"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create sweep directory {str(root)!r}: {exc.strerror}") from None
    with _exclusive(root):
        return _sweep_locked(cfg, root, backend, address, num_cpus, log)


@contextlib.contextmanager
def _exclusive(root: Path):
    """One sweep process per sweep directory: a second ``slt sweep`` on the same directory
    stops with one line instead of computing the same points twice. The lock is an ``flock``
    on ``root/.lock``, released by the kernel however the holder exits (even ``kill -9``)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    try:
        fh = open(root / ".lock", "a")
    except OSError as exc:
        raise RunError(f"cannot create {str(root / '.lock')!r}: {exc.strerror}") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"another slt sweep is running in {str(root)!r}; wait for it to finish "
                           "(it resumes from complete points) or use another --out") from None
        yield


def _sweep_locked(cfg: Config, root: Path, backend: str, address, num_cpus, log) -> Path:
    points = point_configs(cfg)
    todo = []
    for n, seed, pc in points:
        d = root / point_name(n, seed)
        if point_done(d, pc):
            log(f"[sweep] {d.name}: complete, skipped")
        else:
            todo.append((n, seed, pc, d))
    if backend == "local":
        # terminals only: "sweep: 3/8 [00:42<01:10]" (the time left counts the first point's compile)
        with progress.bar(len(todo), f"{cfg.name} sweep", unit="point") as bar:
            for n, seed, pc, d in todo:
                log(f"[sweep] {d.name} ...")
                bar.set_postfix_str(d.name)
                execute(pc, stages=point_stages(pc), out_dir=d, exact_dir=True, log=log)
                bar.update()
    elif backend == "ray":
        _run_ray(todo, address, num_cpus, log)
    else:
        raise config_mod.ConfigError("--backend", f"must be local or ray, got {backend!r}")
    rows = [_row(root / point_name(n, seed), n, seed) for n, seed, _ in points]
    _write_outputs(root, cfg, rows)
    return root


def _run_ray(todo, address, num_cpus, log) -> None:
    try:
        import ray
    except ImportError:
        raise RunError("backend ray needs Ray: pip install 'slt[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": num_cpus}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        started = True
    try:
        # the workers' JAX must see the same devices as a local run (bit-identical results)
        env = {k: os.environ[k] for k in ("XLA_FLAGS", "JAX_ENABLE_X64", "SLT_NO_COMPILATION_CACHE",
                                          "SLT_CPU_DEVICES") if k in os.environ}
        task = ray.remote(num_cpus=1)(_ray_point).options(runtime_env={"env_vars": env})
        refs = {task.remote(config_mod.to_dict(pc), pc.base_dir, str(d), point_stages(pc)): d.name
                for n, seed, pc, d in todo}
        pending = list(refs)
        with progress.bar(len(pending), "sweep (ray)", unit="point") as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done[0])                      # re-raises a point's error here
                log(f"[sweep] {refs[done[0]]}: done (ray)")
                bar.update()
    finally:
        if started:
            ray.shutdown()


def _row(run_dir: Path, n: int, seed: int) -> dict:
    s = json.loads((run_dir / SUMMARY).read_text())
    f = s.get("free_energy") or {}
    lam = s.get("lambda") or {}
    return {"n": n, "seed": seed, "ti": f.get("ti"), "ti_stderr": f.get("ti_stderr"),
            "stepping_stone": f.get("stepping_stone"), "stepping_stone_stderr": f.get("stepping_stone_stderr"),
            "wbic": f.get("wbic"), "wbic_stderr": f.get("wbic_stderr"), "smc": f.get("smc"),
            "smc_stderr": f.get("smc_stderr"), "exact": f.get("exact"),
            "nL_n_truth": f.get("nL_n_truth"), "beta_slope": lam.get("beta_slope"),
            "beta_slope_stderr": lam.get("beta_slope_stderr"), "run_dir": run_dir.name}


def fits(rows: list[dict]) -> dict:
    """The slope of ``F_n - n L_n(w0)`` against ``log n`` for each estimate (TI, stepping stone,
    WBIC, SMC and exact when present), weighted by their standard errors; None where undefined."""
    from slt.estimators import free_energy as fe

    out = {}
    for key, err in (("ti", "ti_stderr"), ("stepping_stone", "stepping_stone_stderr"),
                     ("wbic", "wbic_stderr"), ("smc", "smc_stderr"), ("exact", None)):
        ok = [r for r in rows if r[key] is not None and r["nL_n_truth"] is not None
              and (err is None or r[err] is not None)]
        if len({r["n"] for r in ok}) < 2:
            out[key] = None
            continue
        y = [r[key] - r["nL_n_truth"] for r in ok]
        yerr = None if err is None else [max(r[err], 1e-9) for r in ok]
        res = fe.log_n_slope([r["n"] for r in ok], y, yerr)
        out[key] = res._asdict()
    return out


def _write_outputs(root: Path, cfg: Config, rows: list[dict]) -> None:
    lam = fits(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    atomic_write(root / "sweep.csv", buf.getvalue())
    if cfg.output.figures:
        _figure(root, cfg, rows, lam)
    doc = {"complete": True, "name": cfg.name, "points": rows,
           "lambda": {"log_n_slope": lam, "estimate": None if lam.get("ti") is None else lam["ti"]["slope"],
                      "stderr": None if lam.get("ti") is None else lam["ti"]["stderr"],
                      "regressed": "F_n (TI) - n L_n(w0) on log n, weighted by ti_stderr"},
           "config": config_mod.to_dict(cfg)}
    atomic_write(root / "sweep.json", json.dumps(to_jsonable(doc), indent=2, allow_nan=False))


def _figure(root: Path, cfg: Config, rows: list[dict], lam: dict) -> None:
    import matplotlib.pyplot as plt

    from slt.estimators import free_energy as fe
    from slt.plots import free_energy as plots

    ok = [r for r in rows if r["ti"] is not None and r["nL_n_truth"] is not None]
    if len(ok) < 1:
        return
    fit = fe.SlopeResult(**lam["ti"]) if lam.get("ti") else None
    fig = plots.sweep_curve([r["n"] for r in ok], [r["ti"] - r["nL_n_truth"] for r in ok],
                            [r["ti_stderr"] for r in ok], fit=fit,
                            wbic=[(r["wbic"] - r["nL_n_truth"]) if r["wbic"] is not None else float("nan")
                                  for r in ok],
                            title=f"{cfg.name}: free energy vs log n")
    atomic_write(root / "sweep.png", lambda p: fig.savefig(p, dpi=110, format="png", bbox_inches="tight"))
    plt.close(fig)
