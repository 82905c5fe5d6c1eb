"""Machine set-up for the command line, sweeps, notebooks and benchmarks: JAX's devices, XLA flags
and compilation cache, and the machine's memory (imports nothing of slt, so every layer can call
it without an import cycle)."""
from __future__ import annotations

import os


def configure_jax(cache: bool = True) -> None:
    """Before jax is imported: one CPU device per core (chains are sharded over devices) and
    the persistent compilation cache under the user cache directory (a second run of the
    same config does not recompile). ``SLT_NO_COMPILATION_CACHE=1`` or ``--no-cache``
    switches the cache off; ``SLT_CPU_DEVICES`` overrides the device count.

    Also ``--xla_cpu_experimental_ynn_fusion_type=`` (XLA's YNNPACK CPU fusions off, unless
    XLA_FLAGS already names the option or ``SLT_XLA_YNN=1``): a 2-parameter model's gradient of 8
    chains at n = 1e4 takes 104 us instead of 772 us, a [2, 2, 1] ReLU net's 457-552 us instead
    of 729-739 us (benchmarks/llc_small.md). It was off by default for a while because the
    test suite's process segfaulted inside XLA's compiler with it; the cause was memory-map
    exhaustion from compiled programs never freed (fixed in tests/conftest.py), not the flag.

    Every program is cached, however fast it compiled: a small model's run compiles ~60 small
    programs (eager ops, key splits) at ~20 ms each, 0.7-1.3 s of a warm run on 2 cores when
    they were left out (the old 0.2 s threshold)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags and os.environ.get("SLT_XLA_YNN") != "1":
        flags = f"{flags} --xla_cpu_experimental_ynn_fusion_type=".strip()
    if "xla_force_host_platform_device_count" not in flags:
        count = os.environ.get("SLT_CPU_DEVICES") or str(os.cpu_count() or 1)
        flags = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    os.environ["XLA_FLAGS"] = flags
    import jax

    if cache and not os.environ.get("SLT_NO_COMPILATION_CACHE"):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        jax.config.update("jax_compilation_cache_dir", os.path.join(base, "slt", "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
