"""Sweeps over n: layout, resume (checked, not assumed), the Ray backend's identical numbers,
and the reduced-rank-regression lambda from the log n slope (Aoyagi & Watanabe 2005)."""
import json
from pathlib import Path

import pytest

from slt.pipeline import config as config_mod
from slt.cli import sweep as sweep_mod

TINY = {
    "name": "lin",
    "seed": 0,
    "model": {"widths": [2, 1], "activation": "identity", "bias": False},
    "truth": {"random": {"seed": 1}},
    "data": {"n": 50, "x": {"dist": "normal"}},
    "free_energy": {"num_betas": 6, "num_chains": 2, "num_warmup": 40, "num_samples": 40, "num_steps": 2},
    "lambda": {"num_betas": 3},
    "output": {"figures": False},
    "sweep": {"n": [40, 80], "seeds": [0, 1]},
}


def _cfg(raw=TINY, **over):
    raw = {**raw, **over}
    return config_mod.from_dict(raw, base_dir=".")


def _numbers(sweep_dir: Path):
    doc = json.loads((sweep_dir / "sweep.json").read_text())
    keys = [k for k in sweep_mod.COLUMNS if k != "run_dir"]
    return [[p[k] for k in keys] for p in doc["points"]], doc["lambda"]


def test_sweep_layout_and_resume(tmp_path):
    cfg = _cfg()
    out = sweep_mod.run_sweep(cfg, out_dir=tmp_path, backend="local", address=None, num_cpus=None)
    assert out == tmp_path / "lin-sweep"
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["n=40_seed=0", "n=40_seed=1", "n=80_seed=0", "n=80_seed=1"]
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["complete"] and len(doc["points"]) == 4
    assert all(p["ti"] is not None and p["exact"] is not None for p in doc["points"])
    assert doc["lambda"]["log_n_slope"]["ti"] is not None
    csv_lines = (out / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == list(sweep_mod.COLUMNS) and len(csv_lines) == 5
    before, _ = _numbers(out)

    kept = out / "n=40_seed=0" / "summary.json"
    kept_stat = kept.stat().st_mtime_ns
    (out / "n=80_seed=0" / "summary.json").write_text('{"complete": true, "name": "half')   # corrupt
    (out / "n=40_seed=1" / "summary.json").unlink()                                          # missing
    stale = json.loads((out / "n=80_seed=1" / "summary.json").read_text())
    stale["complete"] = False                                                                # half-written
    (out / "n=80_seed=1" / "summary.json").write_text(json.dumps(stale))
    log = []
    sweep_mod.run_sweep(cfg, out_dir=tmp_path, backend="local", address=None, num_cpus=None, log=log.append)
    assert kept.stat().st_mtime_ns == kept_stat                    # complete point not recomputed
    assert any("n=40_seed=0: complete, skipped" in line for line in log)
    for name in ("n=80_seed=0", "n=40_seed=1", "n=80_seed=1"):
        assert any(line == f"[sweep] {name} ..." for line in log), name
    after, _ = _numbers(out)
    assert after == before                                         # redone points: same numbers

    # a point whose config changed is not "complete" for the new sweep
    cfg2 = _cfg(model={**TINY["model"], "prior_std": 2.0})          # traced: no recompilation
    log = []
    sweep_mod.run_sweep(cfg2, out_dir=tmp_path, backend="local", address=None, num_cpus=None, log=log.append)
    assert not any("skipped" in line for line in log)


def test_ray_backend_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    cfg = _cfg(sweep={"n": [40, 80], "seeds": [3]})
    local = sweep_mod.run_sweep(cfg, out_dir=tmp_path / "local", backend="local", address=None, num_cpus=None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = sweep_mod.run_sweep(cfg, out_dir=tmp_path / "ray", backend="ray", address=None, num_cpus=2)
    finally:
        ray.shutdown()
    assert _numbers(local) == _numbers(remote)                     # bit-identical on CPU


def test_sweep_needs_n():
    with pytest.raises(config_mod.ConfigError):
        sweep_mod.run_sweep(_cfg(sweep=None), out_dir="unused", backend="local", address=None, num_cpus=None)


def test_second_sweep_on_the_same_directory_is_refused(tmp_path):
    """While one sweep holds the directory, another stops at once with one line and computes
    nothing; once the holder is gone (its lock dies with it) the sweep runs."""
    import fcntl

    from slt.pipeline.runs import RunError

    cfg = _cfg(sweep={"n": [40]})
    root = tmp_path / "lin-sweep"
    root.mkdir()
    with open(root / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunError, match="another slt sweep is running"):
            sweep_mod.run_sweep(cfg, out_dir=tmp_path, backend="local", address=None, num_cpus=None)
        assert sorted(p.name for p in root.iterdir()) == [".lock"]
    out = sweep_mod.run_sweep(cfg, out_dir=tmp_path, backend="local", address=None, num_cpus=None)
    assert (out / "sweep.json").is_file()


@pytest.mark.slow
def test_rrr_lambda_from_log_n_slope(tmp_path):
    """(M, H, N, r) = (3, 3, 3, 1): lambda = 4 (Aoyagi & Watanabe 2005; m = 1, no log log n term).
    Five seeds of nested data at n = 100, 1000, 5000; the slope of F_n (TI) - n L_n(w0) on
    log n must be within 15% of 4 and within 3 of its own standard error."""
    repo = Path(__file__).resolve().parents[1]
    cfg = config_mod.load(repo / "configs" / "rrr_free_energy.yaml",
                          ["sweep.n=[100, 1000, 5000]", "sweep.seeds=[0, 1, 2, 3, 4]", "free_energy.num_betas=8",
                           "lambda.num_betas=2", "free_energy.num_warmup=150", "free_energy.num_samples=150"])
    out = sweep_mod.run_sweep(cfg, out_dir=tmp_path, backend="local", address=None, num_cpus=None)
    lam = json.loads((out / "sweep.json").read_text())["lambda"]["log_n_slope"]["ti"]
    assert abs(lam["slope"] - 4.0) < 0.15 * 4.0, lam
    assert abs(lam["slope"] - 4.0) < 3 * lam["stderr"] + 1e-9, lam
    assert lam["stderr"] < 0.5, lam
