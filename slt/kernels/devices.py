"""The chain axis over the local devices: one device count rule and one ``shard_map`` block.

Chains are independent, so a batch of them splits over devices with no communication: each
device runs its slice of the vmapped program (on CPU, one device per core, see
:func:`slt.setup_jax.configure_jax`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P


def num_devices_for(num_chains: int) -> int:
    """The most local devices that divide ``num_chains`` evenly."""
    ndev = jax.local_device_count()
    while ndev > 1 and num_chains % ndev:
        ndev -= 1
    return ndev


def shard_chains(fn: Callable, num_devices: int, in_axes: Sequence[int | None],
                 axis_name: str = "chains") -> Callable:
    """``jax.vmap(fn, in_axes)`` (axes 0 or None) with the mapped arguments split along their
    leading axis over ``num_devices`` local devices, the others replicated, every output
    sharded. One device: the vmap itself."""
    fn = jax.vmap(fn, in_axes=tuple(in_axes))
    if num_devices <= 1:
        return fn
    mesh = Mesh(np.array(jax.devices()[:num_devices]), (axis_name,))
    specs = tuple(P() if a is None else P(axis_name) for a in in_axes)
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(axis_name), check_vma=False)
