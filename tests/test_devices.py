"""Chains (and temperatures) sharded over local devices; the persistent compilation cache.

Each check runs in a subprocess so ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
(or the cache settings) take effect before jax is imported there.
"""
import json
import os
import subprocess
import sys
import textwrap


_SHARDING_SCRIPT = textwrap.dedent("""
    import json, os
    import jax
    jax.config.update("jax_enable_x64", True)   # rounding-level agreement, not chaos-amplified
    import jax.numpy as jnp
    import numpy as np
    from slt import models
    from slt.samplers import nuts as samplers
    from slt.data import Dataset
    from slt.posterior import Problem

    assert jax.local_device_count() == 2, jax.devices()
    orig = samplers._num_devices_for
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = x @ np.array([[0.5], [-1.0]]) + rng.normal(size=(40, 1))
    p = Problem.make(models.make_mlp([2, 1], "identity", False), Dataset(x, y))
    init = 0.5 * jnp.asarray(rng.normal(size=(4, 2)))
    # HMC (3 leapfrog steps) compiles fastest; NUTS goes through the same vmap + shard_map code
    kw = dict(method="hmc", num_steps=3, num_warmup=12, num_samples=6, progress_bar=False)
    key = jax.random.key(3)
    out = {}
    for name, beta in (("scalar", 1.0), ("betas", jnp.array([0.1, 0.3, 0.6, 1.0]))):
        sharded = samplers.sample(key, p, init, beta, **kw)
        # where do the chains live? the compiled init program of that run, called again
        bb = jnp.asarray(beta).ndim == 1
        init_fn, _ = samplers._compiled("hmc", 12, samplers._chunk_length(12, 6, 250), 1, 3,
                                        8, False, 0.8, 2, bb)
        state = init_fn(jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(4)), init, 1.0,
                        p, jnp.asarray(beta, p.x.dtype))
        devices = len(state.z.sharding.device_set)
        samplers._num_devices_for = lambda num_chains: 1   # the same run on one device
        single = samplers.sample(key, p, init, beta, **kw)
        samplers._num_devices_for = orig
        out[name] = dict(devices=devices,
                         max_abs_diff=float(np.max(np.abs(sharded.positions - single.positions))),
                         loss_diff=float(np.max(np.abs(sharded.loss - single.loss))),
                         shape=list(sharded.positions.shape))
    print(json.dumps(out))
""")


def _run(script, env_extra, timeout=240):
    env = dict(os.environ, **env_extra)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_chains_and_betas_sharded_over_two_devices_match_single_device():
    out = json.loads(_run(_SHARDING_SCRIPT, {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "SLT_NO_COMPILATION_CACHE": "1", "JAX_PLATFORMS": "cpu"}))
    for name in ("scalar", "betas"):
        r = out[name]
        assert r["devices"] == 2, r                # the chains really were split over 2 devices
        assert r["shape"] == [4, 6, 2]
        # same keys, same starts, same kernel: the draws agree to rounding (float64)
        assert r["max_abs_diff"] < 1e-8, r
        assert r["loss_diff"] < 1e-8, r


_CACHE_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from slt.cli import configure_jax
    configure_jax(cache=sys.argv[1] == "on")
    import jax, jax.numpy as jnp
    hits = []
    jax.monitoring.register_event_listener(
        lambda name, **kw: hits.append(name) if "compilation_cache/cache_hits" in name else None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

    @jax.jit
    def f(x):
        return jnp.sin(x) @ jnp.cos(x).T + 3.0

    jax.block_until_ready(f(jnp.ones((7, 5))))
    print(json.dumps({"dir": jax.config.jax_compilation_cache_dir, "hits": len(hits),
                      "devices": jax.local_device_count()}))
""")


def test_compilation_cache_on_by_default_second_process_hits_it_and_switch_off(tmp_path):
    # XLA_FLAGS emptied: configure_jax itself sets the CPU device count (SLT_CPU_DEVICES)
    env = {"XDG_CACHE_HOME": str(tmp_path), "JAX_PLATFORMS": "cpu", "SLT_CPU_DEVICES": "3",
           "XLA_FLAGS": "", "SLT_NO_COMPILATION_CACHE": ""}
    env_nocache = dict(env)
    first = json.loads(_run(_CACHE_SCRIPT.replace("sys.argv[1]", "'on'"), env))
    cache_dir = tmp_path / "slt" / "jax"
    assert first["dir"] == str(cache_dir)
    assert first["devices"] == 3
    assert any(cache_dir.iterdir()), "nothing written to the persistent cache"
    second = json.loads(_run(_CACHE_SCRIPT.replace("sys.argv[1]", "'on'"), env))
    assert second["hits"] >= 1, second      # the second process reused the compiled program
    env_nocache["SLT_NO_COMPILATION_CACHE"] = "1"
    off = json.loads(_run(_CACHE_SCRIPT.replace("sys.argv[1]", "'on'"), env_nocache))
    assert off["dir"] in (None, ""), off
    assert off["hits"] == 0
    flag_off = json.loads(_run(_CACHE_SCRIPT.replace("sys.argv[1]", "'off'"), env))
    assert flag_off["dir"] in (None, ""), flag_off
