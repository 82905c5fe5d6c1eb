"""JAX start-up for the command line, sweeps, notebooks and benchmarks (imports nothing of slt,
so every layer can call it without an import cycle)."""
from __future__ import annotations

import os


def configure_jax(cache: bool = True) -> None:
    """Before jax is imported: one CPU device per core (chains are sharded over devices) and
    the persistent compilation cache under the user cache directory (a second run of the
    same config does not recompile). ``SLT_NO_COMPILATION_CACHE=1`` or ``--no-cache``
    switches the cache off; ``SLT_CPU_DEVICES`` overrides the device count."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        count = os.environ.get("SLT_CPU_DEVICES") or str(os.cpu_count() or 1)
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    import jax

    if cache and not os.environ.get("SLT_NO_COMPILATION_CACHE"):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        jax.config.update("jax_compilation_cache_dir", os.path.join(base, "slt", "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
