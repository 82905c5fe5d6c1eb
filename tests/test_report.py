"""What a researcher sees at the end of a command: slt.cli.report.format_summary on hand-made
summaries, and the CLI's default / --quiet / --json output on tiny runs."""
import json

import pytest

from slt import cli
from slt.cli.report import format_summary, headline

WARNINGS = [
    "sample: 28 divergent transitions (28.0% of draws); estimates may be biased",
    "free_energy: R-hat of n L_n > 1.05 at beta = 0, 0.159, 1: chains disagree (several posterior "
    "phases?); E^beta[n L_n] there may be off by more than its MCSE",
]


def _summary(**llc_extra):
    return {
        "complete": True, "name": "demo", "n": 1000, "d": 9, "seed": 3, "beta": 1.0,
        "stages": ["sample", "free_energy", "llc", "fisher"],
        "loss": {"L_n_truth": 1.4058, "E_L_n": 1.405398, "E_nL_n": 1405.398, "nL_n_truth": 1405.8,
                 "E_L_n_mcse": 3.8e-5},
        "diagnostics": {"warnings": WARNINGS, "sampler": "nuts", "num_chains": 4, "num_samples": 1000,
                        "divergences": 15, "rhat_max_invariant": 1.0031, "ess_bulk_min_invariant": 1647.2,
                        "mean_accept_prob": 0.871},
        "timing": {"total_s": 21.5},
        "free_energy": {"ti": 1415.11, "ti_stderr": 0.13, "stepping_stone": 1415.3, "stepping_stone_stderr": 0.21,
                        "wbic": 1416.9, "wbic_stderr": 0.4, "exact": None, "rhat": [1.01, 1.02, None],
                        "ess": [300.0, 210.0], "sampler": {"divergences": 2, "accept_prob": [0.81, 0.93]}},
        "lambda": {"beta_slope": 1.93, "beta_slope_stderr": 0.31, "exact_slope": None, "d_half": 4.5},
        "llc": {"mean": 2.49, "mcse": 0.06, "w_star": "truth", "sampler": "mala", "nbeta": 144.8,
                "rhat_loss": 1.004, "ess_loss": 812.0, "acceptance": 0.93, "acceptance_kind": "mh",
                "diverged": False, **llc_extra},
        "fisher": {"rank": 5, "nullity": 4, "d": 9, "at": "truth",
                   "explained": {"dead": 0, "switched_off": 3, "scaling": 1, "duplicated": 0,
                                 "within_other": 0, "other": 0, "total": 4}},
        "config": {"free_energy": {"methods": ["ti", "wbic", "stepping_stone"]}},
    }


def _row(text, label):
    lines = [l for l in text.splitlines() if l.strip().startswith(label)]
    assert lines, f"no row {label!r} in\n{text}"
    return lines[0]


def test_format_summary_numbers_warnings_and_run_dir_last():
    text = format_summary(_summary(), "runs/demo")
    lines = text.splitlines()
    assert lines[0].startswith("demo") and "n = 1000" in lines[0] and "d = 9" in lines[0]
    assert lines[-1] == "runs/demo"
    assert "1405.398 ± 0.038" in _row(text, "E[n L_n]")
    assert "1415.11 ± 0.13" in _row(text, "F_n (TI)")
    assert "1415.30 ± 0.21" in _row(text, "F_n (stepping stone)")
    assert "1416.90 ± 0.40" in _row(text, "F_n (WBIC)")
    assert "1.93 ± 0.31" in _row(text, "lambda (beta slope)")
    assert "2.490 ± 0.060" in _row(text, "LLC at truth")
    assert "5 of 9 (nullity 4)" in _row(text, "Fisher rank") and "switched off 3" in text
    assert "1.003" in _row(text, "R-hat max (invariants)")
    assert "1647" in _row(text, "ESS min (invariants)")
    assert "15 of 4000 draws" in _row(text, "divergences")
    assert "0.87" in _row(text, "acceptance")
    # every warning in full, one per line
    for w in WARNINGS:
        assert f"warning: {w}" in lines
    # aligned: every estimate/diagnostic row puts its value in the same column
    rows = [l for l in lines if l.startswith("  ")]
    starts = {len(l) - len(l[2:].split("  ", 1)[1].lstrip()) for l in rows}
    assert len(starts) == 1, rows
    # the llc keys other stages may add are skipped quietly when absent
    for label in ("LLC converged", "lambda_hat", "exact lambda"):
        assert label not in text


def test_format_summary_optional_llc_keys_and_withheld():
    s = _summary(converged=False, lambda_hat=2.41, lambda_hat_stderr=0.05, exact_lambda=2.5)
    s["free_energy"]["wbic"] = None
    s["loss"]["E_nL_n"] = None
    text = format_summary(s)
    assert "no" in _row(text, "LLC converged")
    assert "2.410 ± 0.050" in _row(text, "lambda_hat")
    assert "2.5" in _row(text, "exact lambda")
    assert "withheld" in _row(text, "F_n (WBIC)") and "withheld" in _row(text, "E[n L_n]")
    assert not text.splitlines()[-1].startswith("runs")        # no run_dir given: no line for it
    assert headline(s)["lambda_hat"] == 2.41 and headline(s)["llc_converged"] is False
    # a bare summary (llc only) still formats
    bare = {"name": "x", "n": 10, "d": 2, "llc": {"mean": None, "diverged": True}, "diagnostics": {}}
    assert "withheld" in _row(format_summary(bare, "d"), "LLC")


def test_format_summary_sweep_and_calibrate():
    sweep = {"complete": True, "name": "lin", "points": [
        {"n": 40, "seed": 0, "ti": 60.1, "ti_stderr": 0.2, "wbic": 61.0, "wbic_stderr": 0.5, "exact": 60.2,
         "nL_n_truth": 55.0, "run_dir": "n=40_seed=0", "warnings": ["free_energy: something odd"]},
        {"n": 80, "seed": 0, "ti": 115.3, "ti_stderr": 0.3, "wbic": 116.0, "wbic_stderr": 0.6, "exact": 115.2,
         "nL_n_truth": 108.9, "run_dir": "n=80_seed=0"}],
        "lambda": {"log_n_slope": {"ti": {"slope": 1.52, "stderr": 0.4, "intercept": 0.0, "chi2_dof": None},
                                   "stepping_stone": None, "wbic": None, "exact": None}}}
    text = format_summary(sweep, "runs/lin-sweep")
    assert "60.10 ± 0.20" in _row(text, "40") and "115.30 ± 0.30" in _row(text, "80")
    assert "1.52 ± 0.40" in _row(text, "lambda (TI)")
    assert "warning: n=40_seed=0: free_energy: something odd" in text.splitlines()
    assert text.splitlines()[-1] == "runs/lin-sweep"
    cal = {"name": "c", "n": 100, "d": 5, "command": "calibrate", "diagnostics": {"warnings": []},
           "llc_calibration": {"w_star": "truth", "sampler": "mala", "num_chains": 2, "num_draws": 50,
                               "grid": [{"nbeta": 21.7, "step_size": 1e-3, "llc_mean": 4.9, "llc_mcse": 0.1,
                                         "acceptance": 0.95, "rhat_loss": 1.01, "diverged": False}]}}
    text = format_summary(cal, "runs/c-calibrate")
    assert "4.90 ± 0.10" in _row(text, "21.7") and text.splitlines()[-1] == "runs/c-calibrate"


@pytest.fixture(scope="module")
def fisher_cfg(tmp_path_factory):
    """A tiny config for `slt fisher` at the truth (no sampling: seconds)."""
    import yaml

    tmp = tmp_path_factory.mktemp("report")
    cfg = {"name": "tiny", "model": {"widths": [2, 2, 1]},
           "truth": {"widths": [2, 1, 1], "params": [{"W": [[0.6, 0.8]], "b": [-0.3]}, {"W": [[1.0]], "b": [0.0]}]},
           "data": {"n": 60}}
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp


def test_cli_quiet_and_json(fisher_cfg, capsys):
    path, tmp = fisher_cfg
    assert cli.main(["fisher", str(path), "--out", str(tmp / "q"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{tmp / 'q' / 'tiny'}\n" and err == ""           # only the run directory
    assert cli.main(["fisher", str(path), "--out", str(tmp / "j"), "--json"]) == 0
    out, err = capsys.readouterr()
    run_dir = tmp / "j" / "tiny"
    assert json.loads(out) == json.loads((run_dir / "summary.json").read_text())
    assert f"run directory: {run_dir}" in err
    assert cli.main(["fisher", str(path), "--out", str(tmp / "t")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == str(tmp / "t" / "tiny")
    assert "4 of 9 (nullity 5)" in _row(out, "Fisher rank")
    assert "[tiny] fisher ..." in err                                  # progress on stderr


def test_cli_run_prints_summary_and_draws_posterior_nodes(tiny_config, tmp_path, capsys):
    path = tiny_config(sampler={"num_chains": 2, "num_warmup": 50, "num_samples": 50,
                                "init_candidates": 2, "init_steps": 50})
    out_dir = tmp_path / "runs"
    assert cli.main(["run", str(path), "--out", str(out_dir)]) == 0
    out, _ = capsys.readouterr()
    run_dir = out_dir / "tiny"
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = out.splitlines()
    assert lines[-1] == str(run_dir)
    shown = float(_row(out, "E[n L_n]").split()[2])
    assert shown == pytest.approx(summary["loss"]["E_nL_n"], abs=0.05)
    assert _row(out, "R-hat max (invariants)") and _row(out, "ESS min (invariants)")
    for w in summary["diagnostics"]["warnings"]:
        assert f"warning: {w}" in lines
    # the seed's picture: the headline model's draws, normalised nodes in the input plane
    assert (run_dir / "posterior_nodes.png").stat().st_size > 10_000


@pytest.mark.parametrize("widths, activation, drawn", [
    ([2, 2, 1], "relu", "input plane"), ([3, 3, 1], "tanh", "principal direction"),
    ([1, 3, 1], "relu", "(weight, bias) plane"),
    ([2, 2, 2, 1], "relu", None), ([2, 2, 1], "identity", None), ([2, 2, 2], "relu", None)])
def test_posterior_nodes_figure_shapes_and_skips(widths, activation, drawn):
    """Drawn for one-hidden-layer relu/tanh nets with one output (the plane named in the
    title or axis labels), skipped quietly otherwise."""
    import matplotlib.pyplot as plt
    import numpy as np

    from slt.pipeline import config, runs
    from slt.pipeline.stages.sampling import posterior_nodes_figure

    raw = {"name": "p", "model": {"widths": widths, "activation": activation},
           "truth": {"random": {"seed": 1}}, "data": {"n": 30}}
    ctx = runs.build_context(config.from_dict(raw, base_dir="."))
    positions = np.random.default_rng(0).normal(size=(2, 15, ctx.problem.d)).astype(np.float32)
    fig = posterior_nodes_figure(ctx, positions, 1.0)
    if drawn is None:
        assert fig is None
        return
    ax = fig.axes[0]
    words = " ".join([fig._suptitle.get_text(), ax.get_xlabel(), ax.get_ylabel()])
    assert drawn in words, words
    assert ax.collections                               # the nodes (and the truth's stars)
    plt.close(fig)


def test_picture_nodes_tanh_sign_symmetry():
    """tanh is odd: (w_i, b_i, q_i) -> (-w_i, -b_i, -q_i) keeps f, and q_i w_i with it."""
    import jax.numpy as jnp
    import numpy as np

    from slt import models
    from slt.estimators import symmetry

    spec = models.make_mlp([3, 2, 1], "tanh", True)
    w = jnp.asarray(np.random.default_rng(1).normal(size=models.num_params(spec)), jnp.float32)
    n = symmetry.split(spec, w)
    flipped = symmetry.join(spec, n._replace(W=n.W.at[0].multiply(-1), b=n.b.at[0].multiply(-1),
                                             Q=n.Q.at[0].multiply(-1)))
    x = jnp.asarray(np.random.default_rng(2).normal(size=(5, 3)), jnp.float32)
    np.testing.assert_allclose(models.apply_flat(spec, w, x), models.apply_flat(spec, flipped, x), rtol=1e-6)
    for a, b in zip(symmetry.picture_nodes(spec, w), symmetry.picture_nodes(spec, flipped)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
