"""Shared fixtures. Tests run on CPU; each test process gets 2 XLA CPU devices so the
sharded-chain path is exercised (set before jax is imported)."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("CI", os.environ.get("CI", ""))
# the tests never read or write the user's persistent compilation cache (in-process CLI calls and
# subprocesses alike); tests/test_devices.py switches it on in its own directory
os.environ.setdefault("SLT_NO_COMPILATION_CACHE", "1")

import matplotlib

matplotlib.use("Agg")

import pytest


@pytest.fixture
def tiny_config(tmp_path):
    """Write a tiny valid headline config and return its path (callers edit the dict)."""
    import yaml

    def make(**overrides):
        cfg = {
            "name": "tiny",
            "seed": 0,
            "model": {"widths": [2, 2, 1], "activation": "relu", "bias": True},
            "truth": {"widths": [2, 1, 1],
                      "params": [{"W": [[0.6, 0.8]], "b": [-0.3]}, {"W": [[1.0]], "b": [0.0]}]},
            "data": {"n": 60, "x": {"dist": "uniform", "low": -1.0, "high": 1.0}},
            "sampler": {"method": "nuts", "init": "screen", "num_chains": 2, "num_warmup": 50,
                        "num_samples": 50},
        }
        for key, value in overrides.items():
            node = cfg
            parts = key.split("__")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            if value is _DELETE:
                node.pop(parts[-1], None)
            else:
                node[parts[-1]] = value
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    return make


class _Delete:
    pass


_DELETE = _Delete()


@pytest.fixture
def DELETE():
    return _DELETE


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each test module, drop every compiled program (jax's caches and slt's cached
    program factories). XLA's CPU executables each hold several anonymous memory maps; kept for
    the whole suite they approached the kernel's vm.max_map_count (65530) and the process
    segfaulted inside XLA's compiler (20k maps at 44% of the suite)."""
    yield
    import functools
    import gc
    import sys

    import jax

    jax.clear_caches()
    for name, module in list(sys.modules.items()):
        if name == "slt" or name.startswith("slt."):
            for value in list(vars(module).values()):
                if isinstance(value, functools._lru_cache_wrapper):
                    value.cache_clear()
    if "slt.estimators.llc_batch" in sys.modules:
        sys.modules["slt.estimators.llc_batch"].clear_caches()
    gc.collect()
