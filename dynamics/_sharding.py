"""Batches across the local devices with ``jax.sharding``: one code path, a no-op on one device.

A batch of independent trajectories (or parameter points) is split along its first axis over
every local device of JAX's default backend (the GPUs of this host, or the host CPU devices
that ``XLA_FLAGS=--xla_force_host_platform_device_count=k`` creates). Several hosts: start one
process per host with ``jax.distributed.initialize()`` and run the sweep through
``across_processes`` (``dynamics._distributed``), which gives each process its own slice and
gathers the results on every process; each process shards its slice over its own local
devices here.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["batch_shardings", "host_workers", "local_devices"]


def local_devices() -> tuple:
    """The devices of JAX's default backend on this host (process), in a fixed order."""
    import jax

    return tuple(jax.local_devices())


def batch_shardings(devices: tuple) -> tuple[Any, Any]:
    """``(lanes, replicated)``: NamedShardings that split an array's first axis over ``devices``
    and that copy an array to every device; ``(None, None)`` for a single device (no sharding,
    the plain single-device path)."""
    if len(devices) <= 1:
        return None, None
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())


def host_workers(devices: tuple) -> int:
    """How many chunks to keep in flight at once: on CPU devices one per core not already
    taken by a device (XLA runs one CPU execution on one core), on accelerators two (the
    transfer of one chunk overlaps the compute of the next)."""
    if devices and devices[0].platform == "cpu":
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
        return max(1, cores // max(1, len(devices)))
    return 2
