"""Machine set-up for the command line, sweeps, notebooks and benchmarks: JAX's devices, XLA flags
and compilation cache, and the machine's memory (imports nothing of slt, so every layer can call
it without an import cycle)."""
from __future__ import annotations

import os


def configure_jax(cache: bool = True) -> None:
    """Before jax is imported: one CPU device per core (chains are sharded over devices), no
    YNNPACK fusions on the CPU (slow on small models' (n, 1) arrays, see below) and
    the persistent compilation cache under the user cache directory (a second run of the
    same config does not recompile). ``SLT_NO_COMPILATION_CACHE=1`` or ``--no-cache``
    switches the cache off; ``SLT_CPU_DEVICES`` overrides the device count."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        count = os.environ.get("SLT_CPU_DEVICES") or str(os.cpu_count() or 1)
        flags = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    if "xla_cpu_experimental_ynn_fusion_type" not in flags:
        # XLA's CPU backend hands reductions to YNNPACK fusions; on (n, 1) arrays (one output,
        # or one input column) with n >= ~4000 those ran 20x slower than XLA's own loops: a
        # gradient of a 2-parameter model at n = 1e4 took 128 us with them, 5.6 us without
        # (benchmarks/llc_small.md). Empty = no YNN fusions; set the flag yourself to override.
        flags = f"{flags} --xla_cpu_experimental_ynn_fusion_type=".strip()
    os.environ["XLA_FLAGS"] = flags
    import jax

    if cache and not os.environ.get("SLT_NO_COMPILATION_CACHE"):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        jax.config.update("jax_compilation_cache_dir", os.path.join(base, "slt", "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
