"""Config validation through the CLI: exit status 2, one line naming the key, no run directory."""

import numpy as np
import pytest
import yaml

from slt import cli


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("overrides, key, words", [
    ({"sampler__num_chain": 4}, "sampler.num_chain", "did you mean 'num_chains'"),
    ({"modle": {}}, "modle", "did you mean 'model'"),
    ({"data__n": 0}, "data.n", ">= 1"),
    ({"data__n": "many"}, "data.n", "integer"),
    ({"sampler__beta": -1.0}, "sampler.beta", "> 0"),
    ({"sampler__beta": "hot"}, "sampler.beta", "wbic"),
    ({"sampler__num_chains": 0}, "sampler.num_chains", ">= 1"),
    ({"model__widths": [3, 2, 1]}, "truth.widths", "d_in"),
    ({"truth__params": [{"W": [[0.6, 0.8, 0.1]], "b": [-0.3]}, {"W": [[1.0]], "b": [0.0]}]},
     "truth.params", "shape"),
    ({"data__file": "missing.npz"}, "data.file", "does not exist"),
    ({"model__activation": "relus"}, "model.activation", "did you mean 'relu'"),
    ({"model__noise_std": float("nan")}, "model.noise_std", "finite"),
    ({"model__bias": "yes"}, "model.bias", "true or false"),
    ({"data__n": 10**12}, "data.n", "GiB of memory"),
    ({"sweep": {"n": [100, 10**13]}}, "sweep.n", "GiB of memory"),
])
def test_bad_config_exits_2_with_one_line(tiny_config, tmp_path, capsys, overrides, key, words):
    path = tiny_config(**overrides)
    out = tmp_path / "out"
    code, stdout, err = _run(["run", str(path), "--out", str(out)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert key in lines[0] and words in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out.exists()


def test_missing_model_and_truth(tiny_config, DELETE, capsys, tmp_path):
    code, _, err = _run(["run", str(tiny_config(model=DELETE)), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "model" in err and "missing" in err
    code, _, err = _run(["run", str(tiny_config(truth=DELETE)), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "truth" in err


def test_unreadable_files(tmp_path, capsys):
    for text, words in [("", "empty"), ("model: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "mapping")]:
        p = tmp_path / "c.yaml"
        p.write_text(text)
        code, _, err = _run(["run", str(p), "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and words in err, err
    code, _, err = _run(["run", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "does not exist" in err


def test_set_overrides_and_validate(tiny_config, capsys):
    path = tiny_config()
    code, out, _ = _run(["validate", str(path), "--set", "data.n=123", "--set", "sampler.beta=wbic"], capsys)
    assert code == 0
    resolved = yaml.safe_load(out)
    assert resolved["data"]["n"] == 123 and resolved["sampler"]["beta"] == "wbic"
    assert resolved["sampler"]["num_warmup"] == 50 and resolved["model"]["noise_std"] == 1.0
    code, _, err = _run(["validate", str(path), "--set", "sampler.num_chains=-2"], capsys)
    assert code == 2 and "sampler.num_chains" in err


def test_data_file_problems(tiny_config, tmp_path, capsys, DELETE):
    bad = tmp_path / "bad.csv"
    bad.write_text("0.1,0.2,0.3\n0.4,nan,0.6\n")
    code, _, err = _run(["run", str(tiny_config(data={"file": "bad.csv"}, truth=DELETE)),
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "NaN" in err and "bad.csv" in err
    cols = tmp_path / "cols.csv"
    cols.write_text("0.1,0.2\n0.4,0.5\n")
    code, _, err = _run(["run", str(tiny_config(data={"file": "cols.csv"}, truth=DELETE)),
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "columns" in err
    np.savez(tmp_path / "few.npz", x=np.zeros((5, 2)), y=np.zeros((5, 1)))
    code, _, err = _run(["run", str(tiny_config(data={"file": "few.npz", "n": 10}, truth=DELETE)),
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "only 5 rows" in err
    assert not (tmp_path / "o").exists()


def test_help_mentions_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("run", "sweep", "llc", "fisher", "calibrate"):
        assert cmd in out


def test_the_shipped_default_config_is_the_headline_config():
    """`slt run` with no argument runs the copy shipped inside the package: it must be the
    repository's configs/relu2_truth1.yaml, byte for byte (the two had drifted once)."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    assert (root / "slt" / "defaults" / "relu2_truth1.yaml").read_text() == \
        (root / "configs" / "relu2_truth1.yaml").read_text()
