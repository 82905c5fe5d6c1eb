"""Numerical trouble: NaN/inf in data (bad input, exit 2), a log density that overflows, divergent
and stuck NUTS/HMC chains, an exploding SGLD step size. Runs finish; the problem is recorded in
``summary.json`` ``diagnostics.warnings`` and the affected estimates are withheld (null) --
never a silent number."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from robust_util import COUNTS, run_cli, tiny, write_config


def _run(tmp_path, raw, command="run"):
    cfg = write_config(tmp_path, raw)
    res = run_cli([command, cfg, "--out", tmp_path / "out", "--quiet"])
    assert res.exc_text is None, res
    return res


def _finite_everywhere(obj, where="summary"):
    """JSON numbers in a summary are finite (runs.to_jsonable maps NaN/inf to null)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite_everywhere(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_everywhere(v, f"{where}[{i}]")
    elif isinstance(obj, float):
        assert math.isfinite(obj), where


def _strict_json(path: Path) -> dict:
    def refuse(token):
        raise AssertionError(f"{path} holds {token}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_nan_in_data_is_bad_input(tmp_path, fmt):
    x = np.linspace(-1, 1, 50)
    y = np.tanh(x)
    y[17] = np.nan if fmt == "csv" else np.inf
    if fmt == "csv":
        (tmp_path / "d.csv").write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in zip(x, y)))
    else:
        np.savez(tmp_path / "d.npz", x=x, y=y)
    raw = tiny(truth=None, data={"file": f"d.{fmt}"})
    res = _run(tmp_path, raw)
    assert res.rc == 2 and len(res.stderr_lines) == 1, res
    assert "data.file" in res.stderr and "NaN or inf" in res.stderr and "row 17" in res.stderr, res
    assert not (tmp_path / "out").exists()
    COUNTS["numerical trouble cases"] += 1


@pytest.mark.parametrize("activation", ["tanh"])
def test_overflowing_log_density_is_withheld(tmp_path, activation):
    """prior_std 1e30: chains start at |w| ~ 1e30 where L_n overflows to inf (float32)."""
    raw = tiny(model={"widths": [1, 2, 1], "activation": activation, "prior_std": 1e30})
    res = _run(tmp_path, raw)
    assert res.rc == 0, res
    run_dir = Path(res.stdout.strip())
    s = _strict_json(run_dir / "summary.json")
    assert s["complete"] is True
    assert s["loss"]["E_L_n"] is None and s["loss"]["E_nL_n"] is None and s["loss"]["E_L_n_mcse"] is None
    warnings = " ".join(s["diagnostics"]["warnings"])
    assert "non-finite" in warnings and "withheld" in warnings, warnings
    _finite_everywhere(s)
    COUNTS["numerical trouble cases"] += 1


@pytest.mark.parametrize("method", ["nuts", "hmc"])
def test_exploding_step_size_is_withheld(tmp_path, method):
    """step size 1e6 and no warmup to adapt it: every transition diverges, the chains never
    move, and the 'posterior mean' would just be the starting point."""
    raw = tiny(sampler={"method": method, "num_chains": 2, "num_warmup": 0, "num_samples": 50,
                        "step_size": 1e6, "num_steps": 5})
    res = _run(tmp_path, raw)
    assert res.rc == 0, res
    s = _strict_json(Path(res.stdout.strip()) / "summary.json")
    assert s["diagnostics"]["divergences"] == 100
    warnings = " ".join(s["diagnostics"]["warnings"])
    assert "divergent" in warnings and "never moved" in warnings, warnings
    assert s["loss"]["E_L_n"] is None and s["loss"]["E_L_n_mcse"] is None, s["loss"]
    _finite_everywhere(s)
    COUNTS["numerical trouble cases"] += 1


def test_some_divergences_are_reported(tmp_path):
    """A fixed HMC step at the edge of stability (no adaptation): some transitions diverge. The
    count is in the summary, a warning names it, and E_L_n is either withheld or flagged."""
    raw = tiny(sampler={"method": "hmc", "num_chains": 2, "num_warmup": 0, "num_samples": 50,
                        "step_size": 0.25, "num_steps": 5})
    res = _run(tmp_path, raw)
    assert res.rc == 0, res
    s = _strict_json(Path(res.stdout.strip()) / "summary.json")
    div = s["diagnostics"]["divergences"]
    warnings = s["diagnostics"]["warnings"]
    assert div > 0, "expected divergent transitions at this step size"
    assert any("divergent" in w and str(div) in w for w in warnings), warnings
    _finite_everywhere(s)
    COUNTS["numerical trouble cases"] += 1


@pytest.mark.parametrize("step_size", [1e4, 1.0])
def test_exploding_sgld_step_size(tmp_path, step_size):
    """SGLD at the truth with a step size far too large (no adaptation: it is given): the
    localised chain blows up. The LLC is withheld (null), the reason in diagnostics.warnings."""
    raw = tiny(llc={"at": "truth", "sampler": "sgld", "num_chains": 2, "num_draws": 100,
                    "step_size": step_size})
    res = _run(tmp_path, raw, command="llc")
    assert res.rc == 0, res
    s = _strict_json(Path(res.stdout.strip()) / "summary.json")
    assert s["complete"] is True
    warnings = " ".join(s["diagnostics"]["warnings"])
    llc = s["llc"]
    assert llc["mean"] is None, f"an exploding SGLD chain gave a number: {llc['mean']}"
    assert warnings, "an exploding SGLD chain left no warning"
    _finite_everywhere(s)
    COUNTS["numerical trouble cases"] += 1


def test_overflow_withholds_free_energy_and_lambda(tmp_path):
    """The same overflow with free_energy and lambda sections: every free-energy estimate and
    the beta-slope lambda are withheld, with the reason in the warnings."""
    raw = tiny(model={"widths": [1, 2, 1], "activation": "tanh", "prior_std": 1e30},
               free_energy={"num_betas": 3, "num_chains": 2, "num_warmup": 20, "num_samples": 20},
               **{"lambda": {"num_betas": 2}})
    res = _run(tmp_path, raw)
    assert res.rc == 0, res
    s = _strict_json(Path(res.stdout.strip()) / "summary.json")
    fe = s.get("free_energy") or {}
    for key in ("ti", "wbic", "stepping_stone", "E_nL_n"):
        assert fe.get(key) is None, (key, fe.get(key))
    lam = s.get("lambda")
    assert lam is None or all(v is None for k, v in lam.items() if k in ("beta_slope", "estimate")), lam
    warnings = " ".join(s["diagnostics"]["warnings"])
    assert "free_energy" in warnings and "withheld" in warnings, warnings
    _finite_everywhere(s)
    COUNTS["numerical trouble cases"] += 1
