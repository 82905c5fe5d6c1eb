"""A run directory's files are complete and loadable; data files; no overwrite."""
import json
import warnings

import numpy as np
import pytest
import yaml

from slt import cli
from slt.pipeline import config, runs

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


def test_run_writes_complete_directory(tiny_config, tmp_path, capsys):
    path = tiny_config()
    out = tmp_path / "runs"
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    run_dir = out / "tiny"
    printed = capsys.readouterr().out.strip()
    assert printed == str(run_dir)
    for name in ("config.yaml", "summary.json", "posterior.nc", "trace_loss.png", "posterior_predictive.png"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is True
    for key in ("name", "n", "d", "beta", "seed", "loss", "diagnostics", "timing", "versions"):
        assert key in summary
    assert summary["n"] == 60 and summary["d"] == 9 and summary["beta"] == 1.0
    for key in ("L_n_truth", "E_L_n", "E_nL_n"):
        assert np.isfinite(summary["loss"][key])
    for key in ("num_chains", "num_samples", "divergences", "rhat_max_invariant", "ess_bulk_min_invariant"):
        assert key in summary["diagnostics"]
    init = summary["diagnostics"]["init"]  # the default: screened starts, described per chain
    assert init["how"] == "screen" and len(init["chosen_L_n"]) == 2
    assert min(init["chosen_L_n"]) >= init["candidate_L_n_quantiles"][0]
    assert set(summary["versions"]) >= {"slt", "jax", "numpyro", "arviz"}
    assert summary["timing"]["total_s"] >= summary["timing"]["sampling_s"] > 0
    idata = az.from_netcdf(str(run_dir / "posterior.nc"))
    assert idata.posterior["w"].shape == (2, 50, 9)
    assert idata.posterior["L_n"].shape == (2, 50)
    np.testing.assert_allclose(float(idata.posterior["L_n"].mean()), summary["loss"]["E_L_n"], rtol=1e-6)
    assert "diverging" in idata.sample_stats and idata.observed_data["y"].shape == (60, 1)
    # the resolved config re-validates to the same thing
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config.to_dict(config.from_dict(resolved)) == resolved
    # a second run never overwrites the first
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    assert (out / "tiny-2" / "summary.json").is_file()
    assert json.loads((run_dir / "summary.json").read_text()) == summary


def test_same_seed_same_numbers(tiny_config, tmp_path):
    path = tiny_config()
    a = runs.execute(config.load(path), out_dir=tmp_path)
    b = runs.execute(config.load(path), out_dir=tmp_path)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["loss"] == sb["loss"]


@pytest.mark.parametrize("fmt", ["npz", "csv"])
def test_data_from_file(tiny_config, tmp_path, fmt, DELETE):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (80, 2)), rng.normal(size=(80, 1))
    if fmt == "npz":
        np.savez(tmp_path / "d.npz", x=x, y=y)
    else:
        np.savetxt(tmp_path / "d.csv", np.hstack([x, y]), delimiter=",", header="x1,x2,y", comments="")
    path = tiny_config(truth=DELETE, data={"file": f"d.{fmt}", "n": 70})
    run_dir = runs.execute(config.load(path), out_dir=tmp_path / "o")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n"] == 70 and summary["loss"]["L_n_truth"] is None
    idata = az.from_netcdf(str(run_dir / "posterior.nc"))
    np.testing.assert_allclose(idata.observed_data["x"].values, x[:70], rtol=1e-6)


def test_shipped_configs_validate():
    from pathlib import Path

    paths = sorted(Path(__file__).parent.parent.glob("configs/*.yaml"))
    assert len(paths) >= 3
    for p in paths:
        config.load(p)
    config.load(config.default_config_path())
