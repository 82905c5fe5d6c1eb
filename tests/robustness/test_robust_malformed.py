"""Malformed input battery (hypothesis): broken configs and data files must give exit status 2,
exactly one line on stderr naming the key or file and the problem, no traceback, and no run
directory -- for ``slt run`` and ``slt sweep`` alike.

Each generated case is a small dict: files to write (config, data), the CLI arguments, and
the substrings the error line must contain (the key path, or the file name). The number of
cases tried per kind is reported in the terminal summary ("robustness counts").
"""
from __future__ import annotations

import copy
import io
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robust_util import COUNTS, TINY, run_cli

# --------------------------------------------------------------------------- value strategies
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
WORDS = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
SCALARS = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), SAFE_TEXT)
CONTAINERS = st.one_of(st.lists(st.integers(0, 5), max_size=3),
                       st.dictionaries(WORDS, st.integers(0, 5), min_size=1, max_size=2))


def not_int_like(v):
    return isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer()))


WRONG = {
    "int": st.one_of(SAFE_TEXT, CONTAINERS, st.booleans(),
                     st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: not v.is_integer()),
                     NON_FINITE),
    "float": st.one_of(SAFE_TEXT, CONTAINERS, st.booleans(), NON_FINITE),
    "bool": st.one_of(SAFE_TEXT, CONTAINERS, st.integers(), st.floats(allow_nan=False)),
    "str": st.one_of(st.integers(), st.floats(), st.booleans(), CONTAINERS),
    "section": st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.integers(), SAFE_TEXT.filter(bool),
                         st.booleans(), st.floats(allow_nan=False)),
    "int_list": st.one_of(SAFE_TEXT, st.integers(), st.dictionaries(WORDS, st.integers(), min_size=1, max_size=2),
                          st.lists(st.one_of(SAFE_TEXT, st.booleans(), st.floats(0.1, 0.9)), min_size=1, max_size=3)),
}

# (dotted path, kind); choice strings also take any string outside their choices
LEAVES = [
    ("seed", "int"), ("data.n", "int"), ("data.seed", "int"), ("sampler.num_chains", "int"),
    ("sampler.num_warmup", "int"), ("sampler.num_samples", "int"), ("sampler.num_steps", "int"),
    ("sampler.max_tree_depth", "int"), ("sampler.thinning", "int"), ("sampler.num_predict_inputs", "int"),
    ("sampler.init_candidates", "int"), ("sampler.init_steps", "int"),
    ("model.noise_std", "float"), ("model.prior_std", "float"), ("data.x.low", "float"),
    ("data.x.high", "float"), ("data.x.std", "float"), ("data.noise_std", "float"),
    ("sampler.step_size", "float"), ("sampler.target_accept", "float"),
    ("model.bias", "bool"), ("sampler.dense_mass", "bool"), ("output.figures", "bool"),
    ("name", "str"), ("output.dir", "str"), ("data.file", "str"), ("model.activation", "str"),
    ("sampler.method", "str"), ("sampler.init", "str"),
    ("precision", "str"), ("data.x.dist", "str"),
    ("model", "section"), ("data", "section"), ("sampler", "section"), ("output", "section"),
    ("data.x", "section"), ("truth", "section"),
    ("model.widths", "int_list"),
]
CHOICES = {"model.activation": ("relu", "tanh", "identity"), "sampler.method": ("nuts", "hmc"),
           "sampler.init": ("screen", "prior", "truth"), "precision": ("float32", "float64"),
           "data.x.dist": ("uniform", "normal")}
SECTION_KEYS = {
    "": ["name", "seed", "precision", "model", "truth", "data", "sampler", "free_energy", "lambda", "llc",
         "fisher", "sweep", "output"],
    "model": ["widths", "activation", "bias", "noise_std", "prior_std"],
    "truth": ["widths", "activation", "bias", "params", "random"],
    "data": ["n", "x", "file", "noise_std", "seed"],
    "data.x": ["dist", "low", "high", "std"],
    "sampler": ["method", "num_chains", "num_warmup", "num_samples", "beta", "step_size", "num_steps",
                "target_accept", "max_tree_depth", "dense_mass", "thinning", "init",
                "init_candidates", "init_steps", "num_predict_inputs"],
    "output": ["dir", "figures"],
    "sweep": ["n", "seeds"],
}
# (path, strategy of impossible values, expected key in the message)
IMPOSSIBLE = [
    ("data.n", st.integers(-10**6, 0), "data.n"),
    ("sampler.num_chains", st.integers(-1000, 0), "sampler.num_chains"),
    ("sampler.num_samples", st.integers(-1000, 0), "sampler.num_samples"),
    ("sampler.num_warmup", st.integers(-1000, -1), "sampler.num_warmup"),
    ("sampler.num_steps", st.integers(-100, 0), "sampler.num_steps"),
    ("sampler.max_tree_depth", st.integers(-100, 0), "sampler.max_tree_depth"),
    ("sampler.thinning", st.integers(-100, 0), "sampler.thinning"),
    ("sampler.num_predict_inputs", st.integers(-100, 0), "sampler.num_predict_inputs"),
    ("sampler.init_candidates", st.integers(-100, 0), "sampler.init_candidates"),
    ("sampler.init_steps", st.integers(-100, 0), "sampler.init_steps"),
    ("model.noise_std", st.floats(-1e6, 0), "model.noise_std"),
    ("model.prior_std", st.floats(-1e6, 0), "model.prior_std"),
    ("data.x.std", st.floats(-1e6, 0), "data.x.std"),
    ("data.noise_std", st.floats(-1e6, -1e-9), "data.noise_std"),
    ("sampler.beta", st.one_of(st.floats(-1e6, 0), NON_FINITE, SAFE_TEXT.filter(lambda s: s != "wbic")),
     "sampler.beta"),
    ("sampler.step_size", st.one_of(st.floats(-1e6, 0), NON_FINITE), "sampler.step_size"),
    ("sampler.target_accept", st.one_of(st.floats(-10, 0), st.floats(1, 10), NON_FINITE),
     "sampler.target_accept"),
    ("model.widths", st.one_of(st.lists(st.integers(1, 3), max_size=1),
                               st.lists(st.integers(-5, 0), min_size=2, max_size=3)), "model.widths"),
    ("seed", st.one_of(st.integers(2**64, 2**80), st.integers(-2**80, -2**64)), "seed"),
    ("data.seed", st.integers(2**64, 2**80), "data.seed"),
]


def set_path(raw: dict, path: str, value) -> None:
    parts = path.split(".")
    node = raw
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def del_path(raw: dict, path: str) -> None:
    parts = path.split(".")
    node = raw
    for p in parts[:-1]:
        node = node[p]
    del node[parts[-1]]


def dump(raw) -> bytes:
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).encode()


def base(command: str) -> dict:
    raw = copy.deepcopy(TINY)
    if command == "sweep":
        raw["sweep"] = {"n": [30, 50]}
    return raw


# --------------------------------------------------------------------------- case strategies
def case(kind, files, expect, args=(), config="cfg.yaml"):
    return {"kind": kind, "files": files, "expect": list(expect), "args": list(args), "config": config}


@st.composite
def wrong_type(draw, command):
    path, kind = draw(st.sampled_from(LEAVES))
    value = draw(WRONG[kind])
    if kind == "str":
        choices = CHOICES.get(path)
        if choices:
            value = draw(st.one_of(WRONG["str"], SAFE_TEXT.filter(lambda s: s not in choices)))
        elif path == "name":
            value = draw(st.one_of(WRONG["str"], st.sampled_from(["", ".", "..", "a/b"])))
    raw = base(command)
    set_path(raw, path, value)
    expect = [path] if kind != "section" or path in ("model", "truth") else [path]
    if kind == "section" and path == "data":
        expect = ["data"]
    return case("wrong type", {"cfg.yaml": dump(raw)}, expect)


@st.composite
def missing_key(draw, command):
    path, expect = draw(st.sampled_from([
        ("model", "model"), ("model.widths", "model.widths"), ("truth", "truth"), ("data.n", "data.n"),
        ("data", "data.n"), ("truth.params", "truth"),
    ]))
    raw = base(command)
    del_path(raw, path)
    return case("missing key", {"cfg.yaml": dump(raw)}, [expect])


@st.composite
def unknown_key(draw, command):
    section = draw(st.sampled_from(sorted(SECTION_KEYS)))
    valid = set(SECTION_KEYS[section])
    key = draw(st.one_of(WORDS, SAFE_TEXT.filter(bool), st.sampled_from(["lambda_", "base_dir", "Model",
                                                                          "num_chain", "widhts"]))
               .filter(lambda k: k not in valid))
    raw = base(command)
    if section == "sweep":
        raw.setdefault("sweep", {"n": [30, 50]})
    node = raw
    for p in filter(None, section.split(".")):
        node = node[p]
    node[key] = draw(st.one_of(st.integers(0, 3), WORDS))
    named = section if section else (key if key.isprintable() else "")
    return case("unknown key", {"cfg.yaml": dump(raw)}, [named, "unknown key"])


@st.composite
def impossible(draw, command):
    path, strategy, expect = draw(st.sampled_from(IMPOSSIBLE))
    raw = base(command)
    set_path(raw, path, draw(strategy))
    return case("impossible value", {"cfg.yaml": dump(raw)}, [expect])


@st.composite
def non_finite(draw, command):
    path = draw(st.sampled_from([p for p, k in LEAVES if k == "float"]
                                + ["sampler.beta", "data.n", "seed", "truth.random.std"]))
    raw = base(command)
    if path.startswith("truth.random"):
        raw["truth"] = {"widths": [1, 1, 1], "random": {"seed": 0}}
    set_path(raw, path, draw(NON_FINITE))
    return case("non-finite number", {"cfg.yaml": dump(raw)}, [path])


@st.composite
def shape_mismatch(draw, command):
    raw = base(command)
    what = draw(st.sampled_from(["truth widths", "model widths", "layers", "W shape", "b shape",
                                 "W values", "W non-finite", "both truths", "no truth", "layer type"]))
    t = raw["truth"]
    expect = "truth.params"
    if what == "truth widths":
        d_in, d_out = draw(st.sampled_from([(2, 1), (1, 2), (3, 3)]))
        t["widths"] = [d_in, 1, d_out]
        expect = "truth.widths"
    elif what == "model widths":
        raw["model"]["widths"] = draw(st.sampled_from([[2, 2, 1], [1, 2, 2], [3, 4]]))
        expect = "truth.widths"
    elif what == "layers":
        t["params"] = draw(st.sampled_from([t["params"][:1], t["params"] * 2, []]))
    elif what == "W shape":
        shape = draw(st.tuples(st.integers(0, 3), st.integers(0, 3)).filter(lambda s: s != (1, 1)))
        layer = draw(st.integers(0, 1))
        t["params"][layer]["W"] = np.ones(shape).tolist() if shape[0] else []
    elif what == "b shape":
        size = draw(st.integers(0, 4).filter(lambda s: s != 1))
        t["params"][draw(st.integers(0, 1))]["b"] = [0.5] * size
    elif what == "W values":
        t["params"][0]["W"] = draw(st.sampled_from([[["a"]], [[1.0, 2.0], [3.0]], {"x": 1}, "W", [[None]],
                                                    [[[1.0]]]]))
    elif what == "W non-finite":
        t["params"][draw(st.integers(0, 1))]["W"] = [[draw(NON_FINITE)]]
    elif what == "both truths":
        t["random"] = {"seed": 1}
        expect = "truth"
    elif what == "no truth":
        del t["params"]
        expect = "truth"
    elif what == "layer type":
        t["params"][0] = draw(st.sampled_from([[1.0], 3, "W", None]))
    return case("shape mismatch", {"cfg.yaml": dump(raw)}, [expect])


@st.composite
def bad_file(draw, command):
    what = draw(st.sampled_from(["empty", "comments only", "binary", "bad yaml", "list", "scalar",
                                 "missing", "directory", "python tag"]))
    name = draw(st.sampled_from(["cfg.yaml", "my config.yml", "exp.txt"]))
    files = {}
    if what == "empty":
        files[name] = b""
    elif what == "comments only":
        files[name] = b"# nothing here\n\n   \n"
    elif what == "binary":
        files[name] = draw(st.binary(min_size=1, max_size=64).filter(_not_mapping_yaml))
    elif what == "bad yaml":
        files[name] = draw(st.sampled_from([b"model: [1, 2\n", b"a: b: c\n", b"model:\n\t- 1\n",
                                            b"{unclosed", b"- a\nb: c\n", b"? [a, b]\n: 1\n"]))
    elif what == "list":
        files[name] = dump(draw(st.lists(st.integers(), max_size=3)))
    elif what == "scalar":
        files[name] = dump(draw(st.one_of(st.integers(), WORDS, st.floats(allow_nan=False))))
    elif what == "python tag":
        files[name] = b"model: !!python/object/apply:os.system ['true']\n"
    elif what == "directory":
        files[name + "/"] = b""
    return case("bad config file", files, [name], config=name)


def _not_mapping_yaml(data: bytes) -> bool:
    try:
        return not isinstance(yaml.safe_load(data.decode()), dict)
    except Exception:  # noqa: BLE001
        return True


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _csv(rows) -> bytes:
    return ("x,y\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n").encode()


@st.composite
def bad_data(draw, command):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    rows = rng.normal(size=(60, 2))
    what = draw(st.sampled_from(["nan csv", "inf npz", "columns", "ragged", "empty csv", "header only",
                                 "non-numeric", "npz keys", "npz shape", "npz rows", "garbage npz",
                                 "missing", "suffix", "too few rows", "directory", "nan y npz"]))
    name = "data.csv"
    data = None
    if what == "nan csv":
        r = rows.tolist()
        r[draw(st.integers(0, 49))][draw(st.integers(0, 1))] = draw(st.sampled_from(["nan", "NaN", "inf", "-inf"]))
        data = _csv(r)
    elif what == "columns":
        k = draw(st.sampled_from([1, 3, 4]))
        data = _csv(rng.normal(size=(60, k)).tolist())
    elif what == "ragged":
        r = rows.tolist()
        r[draw(st.integers(0, 59))].append(1.0)
        data = _csv(r)
    elif what == "empty csv":
        data = draw(st.sampled_from([b"", b"\n\n", b"   \n"]))
    elif what == "header only":
        data = b"x,y\n"
    elif what == "non-numeric":
        r = rows.tolist()
        r[draw(st.integers(0, 49))][0] = draw(WORDS.filter(lambda w: w.strip("_") not in
                                                              ("nan", "inf", "infinity")))
        data = _csv(r)
    elif what == "inf npz":
        name = "data.npz"
        x = rows[:, :1].copy()
        x[draw(st.integers(0, 49)), 0] = draw(NON_FINITE)
        data = _npz(x=x, y=rows[:, 1:])
    elif what == "nan y npz":
        name = "data.npz"
        y = rows[:, 1].copy()
        y[draw(st.integers(0, 49))] = np.nan
        data = _npz(x=rows[:, 0], y=y)
    elif what == "npz keys":
        name = "data.npz"
        data = _npz(**draw(st.sampled_from([{"x": rows[:, :1]}, {"X": rows[:, :1], "Y": rows[:, 1:]}, {}])))
    elif what == "npz shape":
        name = "data.npz"
        data = _npz(x=rng.normal(size=(60, draw(st.sampled_from([2, 3])))), y=rows[:, 1:])
    elif what == "npz rows":
        name = "data.npz"
        data = _npz(x=rows[:, :1], y=rows[:55, 1:])
    elif what == "garbage npz":
        name = "data.npz"
        data = draw(st.binary(max_size=100))
    elif what == "suffix":
        name = draw(st.sampled_from(["data.txt", "data", "data.json"]))
        data = _csv(rows.tolist())
    elif what == "too few rows":
        data = _csv(rows[:draw(st.integers(1, 49))].tolist())
    raw = base(command)
    raw.pop("truth")
    raw["data"] = {"file": name, "n": 50}
    files = {"cfg.yaml": dump(raw)}
    if what == "directory":
        files[name + "/"] = b""
    elif data is not None:
        files[name] = data
    return case("bad data file", files, ["data.file", name])


@st.composite
def bad_override(draw, command):
    arg, expect = draw(st.sampled_from([
        ("noequals", "--set"), ("=1", "--set"), ("a..b=1", "--set"), ("model.widths.x=1", "model.widths"),
        ("sampler.num_chains=0", "sampler.num_chains"), ("sampler.nume_chains=2", "sampler.nume_chains"),
        ("data.n=[1, 2", "data.n"), ("model=3", "model"), ("seed=.nan", "seed"),
    ]))
    return case("bad --set", {"cfg.yaml": dump(base(command))}, [expect], args=["--set", arg])


@st.composite
def bad_sweep(draw, command):
    raw = base("sweep")
    what = draw(st.sampled_from(["no section", "empty n", "zero n", "n type", "seeds type", "seed item",
                                 "unknown"]))
    expect = "sweep"
    if what == "no section":
        raw.pop("sweep")
    elif what == "empty n":
        raw["sweep"]["n"] = []
    elif what == "zero n":
        raw["sweep"]["n"] = [50, draw(st.integers(-100, 0))]
    elif what == "n type":
        raw["sweep"]["n"] = draw(st.one_of(WORDS, st.integers(), st.lists(WORDS, min_size=1, max_size=2)))
    elif what == "seeds type":
        raw["sweep"]["seeds"] = draw(st.one_of(WORDS, st.integers(), st.dictionaries(WORDS, st.integers(),
                                                                                      min_size=1, max_size=1)))
    elif what == "seed item":
        raw["sweep"]["seeds"] = [0, draw(st.one_of(WORDS, st.floats(0.1, 0.9), st.integers(2**64, 2**70)))]
    elif what == "unknown":
        raw["sweep"]["nn"] = [1]
    return case("bad sweep section", {"cfg.yaml": dump(raw)}, [expect])


BAD_PARAMS = [{"W": [[1.0, 2.0]], "b": [0.0]}, {"W": [[1.0]], "b": [0.0]}]   # model layer 0 is (2, 1)
SECTION_CASES = [
    ({"llc": {"at": "params"}}, "llc.params"),
    ({"llc": {"at": "params", "params": BAD_PARAMS}}, "llc.params"),
    ({"llc": {"sampler": "mala", "batch_size": 10}}, "llc.batch_size"),
    ({"llc": {"sampler": "sgld", "batch_size": 1000}}, "llc.batch_size"),
    ({"llc": {"num_draws": 0}}, "llc.num_draws"),
    ({"llc": {"gamma": -1.0}}, "llc.gamma"),
    ({"llc": {"nbeta": 0}}, "llc.nbeta"),
    ({"llc": {"sampler": "sgd"}}, "llc.sampler"),
    ({"llc": {"train": {"steps": 0}}}, "llc.train.steps"),
    ({"fisher": {"at": "params"}}, "fisher.params"),
    ({"fisher": {"rtol": 0.0}}, "fisher.rtol"),
    ({"fisher": {"at": "mean"}}, "fisher.at"),
    ({"free_energy": {"num_betas": 1}}, "free_energy.num_betas"),
    ({"free_energy": {"methods": ["ti", "tii"]}}, "free_energy.methods"),
    ({"free_energy": {"grid_power": 0}}, "free_energy.grid_power"),
    ({"free_energy": {"num_samples": 1}}, "free_energy.num_samples"),
    ({"lambda": {"num_betas": 1}}, "lambda.num_betas"),
    ({"lambda": {"half_width": 0}}, "lambda.half_width"),
    ({"lambda_": {}}, "lambda_"),
    # a truth wider than the model does not embed: nothing may start or measure at it
    ({"truth": {"widths": [1, 3, 1], "random": {"seed": 1}}, "sampler": {"init": "truth"}}, "sampler.init"),
    ({"truth": {"widths": [1, 3, 1], "random": {"seed": 1}}, "llc": {"at": "truth"}}, "llc.at"),
    ({"truth": {"widths": [1, 2, 2, 1], "random": {"seed": 1}}, "fisher": {"at": "truth"}}, "fisher.at"),
    ({"truth": {"widths": [1, 1, 1], "activation": "relu", "random": {"seed": 1}}, "llc": {"at": "truth"}},
     "llc.at"),
    ({"model": {"widths": [1, 2, 1], "bias": False}, "truth": {"widths": [1, 1, 1], "bias": True, "random": {"seed": 1}},
      "sampler": {"init": "truth"}}, "sampler.init"),
]


@st.composite
def bad_section(draw, command):
    sections, expect = draw(st.sampled_from(SECTION_CASES))
    raw = base(command)
    for key, value in sections.items():
        if isinstance(raw.get(key), dict) and key != "truth":
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return case("analysis section / truth embedding", {"cfg.yaml": dump(raw)}, [expect])


def cases(command: str):
    kinds = [wrong_type, missing_key, unknown_key, impossible, non_finite, shape_mismatch, bad_file,
             bad_data, bad_override, bad_section]
    if command == "sweep":
        kinds.append(bad_sweep)
    return st.one_of(*[k(command) for k in kinds])


# --------------------------------------------------------------------------- the property
def check_rejected(command: str, c: dict) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="slt-bad-"))
    try:
        for name, content in c["files"].items():
            if name.endswith("/"):
                (tmp / name).mkdir()
            else:
                (tmp / name).write_bytes(content)
        out = tmp / "out"
        res = run_cli([command, tmp / c["config"], "--out", out, "--quiet", *c["args"]])
        COUNTS[f"malformed cases tried (slt {command})"] += 1
        COUNTS[f"malformed cases tried, kind '{c['kind']}'"] += 1
        assert res.exc_text is None, f"exception escaped (traceback):\n{res.exc_text}\ncase: {c}"
        assert res.rc == 2, f"exit status {res.rc}, expected 2; {res}; case: {c}"
        lines = res.stderr_lines
        assert len(lines) == 1, f"expected exactly one line on stderr, got {lines!r}; case: {c}"
        line = lines[0]
        assert "Traceback" not in line
        for want in c["expect"]:
            assert want in line, f"error line {line!r} does not name {want!r}; case: {c}"
        assert len(line) > len("slt: error: ") + 10, line
        assert not out.exists() or not any(out.iterdir()), f"run directory created: {list(out.rglob('*'))}"
        assert res.stdout == "", res.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


BATTERY = settings(max_examples=250, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@BATTERY
@given(c=cases("run"))
def test_malformed_run(c):
    check_rejected("run", c)


@settings(BATTERY, max_examples=120)
@given(c=cases("sweep"))
def test_malformed_sweep(c):
    check_rejected("sweep", c)


def test_missing_config_file(tmp_path):
    for command in ("run", "sweep"):
        res = run_cli([command, tmp_path / "nope.yaml", "--out", tmp_path / "out"])
        assert res.rc == 2 and len(res.stderr_lines) == 1 and "nope.yaml" in res.stderr, res
        assert not (tmp_path / "out").exists()
        COUNTS[f"malformed cases tried (slt {command})"] += 1


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("index", range(len(SECTION_CASES)))
def test_every_section_case(command, index):
    """Each analysis-section / embedding case once, deterministically (the property test
    samples from them)."""
    sections, expect = SECTION_CASES[index]
    raw = base(command)
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) and key != "truth" else value
    check_rejected(command, case("analysis section / truth embedding", {"cfg.yaml": dump(raw)}, [expect]))
