"""slt.load: a run directory as a typed Run, a sweep directory as a Sweep with a table;
clear one-line errors for missing and incomplete directories."""
import dataclasses
import json
import sys

import pytest
import yaml

import slt
from slt import cli
from slt.results import Run, Sweep


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results")
    cfg = {"name": "tiny", "model": {"widths": [2, 2, 1]},
           "truth": {"widths": [2, 1, 1], "params": [{"W": [[0.6, 0.8]], "b": [-0.3]}, {"W": [[1.0]], "b": [0.0]}]},
           "data": {"n": 60},
           "sampler": {"num_chains": 2, "num_warmup": 40, "num_samples": 40, "init_candidates": 2,
                       "init_steps": 50}}
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli.main(["run", str(path), "--out", str(tmp / "runs"), "--quiet"]) == 0
    return tmp / "runs" / "tiny"


def test_load_run(tiny_run):
    run = slt.load(tiny_run)
    assert isinstance(run, Run) and run.path == tiny_run and run.complete
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert run.summary == summary and run.config == summary["config"]
    assert run.config["data"]["n"] == 60
    assert {"trace_loss", "posterior_predictive", "posterior_nodes"} <= set(run.figures)
    assert all(p.is_file() and p.suffix == ".png" for p in run.figures.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.summary = {}
    assert "inference_data" not in vars(run)                  # lazy: not read until asked for
    idata = run.inference_data
    assert idata.posterior["L_n"].shape == (2, 40)
    assert run.inference_data is idata                         # read once
    assert run.headline["E_nL_n"] == pytest.approx(summary["loss"]["E_nL_n"])
    assert run.report().splitlines()[-1] == str(tiny_run)
    assert slt.load(tiny_run / "summary.json").path == tiny_run


def test_import_slt_stays_cheap():
    import subprocess

    code = "import slt, sys; print(any(m in sys.modules for m in ('jax', 'arviz', 'pandas', 'numpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_load_errors(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        slt.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not an slt run directory"):
        slt.load(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a sweep directory"):
        slt.load_sweep(tmp_path / "empty")
    with pytest.raises(ValueError, match="not a sweep"):
        slt.load_sweep(tiny_run)
    # interrupted: config.yaml without summary.json, or complete: false, or a torn summary.json
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.yaml").write_text((tiny_run / "config.yaml").read_text())
    with pytest.raises(ValueError, match="incomplete run"):
        slt.load(half)
    assert slt.load(half, allow_incomplete=True).complete is False
    summary = json.loads((tiny_run / "summary.json").read_text())
    (half / "summary.json").write_text(json.dumps({**summary, "complete": False}))
    with pytest.raises(ValueError, match="incomplete"):
        slt.load(half)
    (half / "summary.json").write_text('{"complete": true, "na')
    with pytest.raises(ValueError, match="not valid JSON"):
        slt.load(half)
    for exc in (FileNotFoundError, ValueError):   # messages are one line
        try:
            slt.load(half if exc is ValueError else tmp_path / "nope")
        except exc as e:
            assert "\n" not in str(e)


def test_sweep_cli_table_and_load(tmp_path, capsys):
    raw = {"name": "lin", "seed": 0,
           "model": {"widths": [2, 1], "activation": "identity", "bias": False},
           "truth": {"random": {"seed": 1}}, "data": {"n": 50, "x": {"dist": "normal"}},
           "free_energy": {"num_betas": 4, "num_chains": 2, "num_warmup": 30, "num_samples": 30, "num_steps": 2},
           "lambda": {"num_betas": 3}, "output": {"figures": False}, "sweep": {"n": [40, 80]}}
    path = tmp_path / "lin.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "out" / "lin-sweep"
    lines = out.splitlines()
    assert lines[-1] == str(root)
    assert any(l.split()[:2] == ["40", "0"] for l in lines) and any(l.split()[:2] == ["80", "0"] for l in lines)
    assert any(l.strip().startswith("lambda (TI)") for l in lines)

    sweep = slt.load(root)
    assert isinstance(sweep, Sweep) and sweep.complete and sweep == slt.load_sweep(root)
    assert [p.summary["n"] for p in sweep.points] == [40, 80]
    assert all(isinstance(p, Run) and p.inference_data is None for p in sweep.points)
    doc = json.loads((root / "sweep.json").read_text())
    table = sweep.table()
    records = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert [(r["n"], r["seed"]) for r in records] == [(40, 0), (80, 0)]
    for r, p in zip(records, doc["points"]):
        assert r["ti"] == pytest.approx(p["ti"]) and r["exact"] == pytest.approx(p["exact"])
        assert r["run_dir"] == p["run_dir"]
    assert sweep.report().splitlines()[-1] == str(root)
