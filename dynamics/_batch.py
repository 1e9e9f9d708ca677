"""The batch driver of the JAX backend: chunks of a bucketed size through one compiled solver,
run on all cores and sharded over all local devices, or, for end states only, the lane-refill
loop (``_refill``).

Chunking, padding and sharding change nothing but speed: each lane's result does not depend on
its neighbours. What is compiled is cached per shape (system, solver, events, max_steps, number
of saved times, lanes, devices); times and tolerances are traced arguments, so the varied calls
of an interactive session compile once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from ._checks import is_stiff
from ._events import Event
from ._flow import jax_solver, trajectory_core
from ._numeric import NumericSystem
from ._progress import progress_bar
from ._refill import refill_core
from ._sharding import batch_shardings, host_workers, local_devices

__all__ = ["CACHE_BYTES", "CHUNK_BYTES", "CHUNK_LANES", "MIN_BUCKET", "REFILL_BLOCK", "run_jax"]


CHUNK_LANES = {"cpu": 512, "accelerator": 65536}
"""Trajectories per chunk at most: on CPU a chunk's working set (stages, error estimates and
controller state of every lane) stays in cache (measured: 256-1024 lanes of a 3-state system
run about 1.7x faster per trajectory than one 10^4-lane batch); accelerators want wide chunks."""
CHUNK_BYTES = 32 * 2**20
"""Upper bound on one chunk's saved output, lanes x (n_times + 1) x n_states x 8 bytes (a
chunk holds at least one trajectory)."""
CACHE_BYTES = 2 * 2**20
"""CPU: lanes x n_states x 8 bytes x 16 (the solver's per-step arrays) stays below this."""
MIN_BUCKET = 4
"""Smallest batch bucket: batches of 1..4 trajectories share one compiled solver."""


def _pow2_floor(x: float) -> int:
    """The largest power of two <= x (at least 1)."""
    return 1 << max(0, int(np.floor(np.log2(max(x, 1.0)))))


def _pow2_ceil(x: int) -> int:
    """The smallest power of two >= x (at least 1)."""
    return 1 << max(0, int(np.ceil(np.log2(max(x, 1)))))


def _plan(B: int, n: int, n_t: int, devices: tuple, chunk_size: int | None) -> int:
    """Lanes per compiled chunk: a multiple of the device count, a power of two per device
    (batch-size buckets) unless ``chunk_size`` fixes it."""
    n_dev = max(1, len(devices))
    if chunk_size is None:
        cpu = not devices or devices[0].platform == "cpu"
        cap = CHUNK_LANES["cpu" if cpu else "accelerator"]
        cap = min(cap, CHUNK_BYTES / (8.0 * n * (n_t + 1) * n_dev))
        if cpu:
            cap = min(cap, CACHE_BYTES / (8.0 * n * 16))
        per_dev = _pow2_floor(cap)
    else:
        per_dev = max(1, -(-chunk_size // n_dev))
    need = -(-B // n_dev)
    if need < per_dev:
        per_dev = min(per_dev, max(MIN_BUCKET, _pow2_ceil(need)))
    return n_dev * per_dev


@lru_cache(maxsize=128)
def _compiled(num: NumericSystem, solver: Any, max_steps: int, events: tuple[Event, ...], n_t: int, lanes: int,
              devices: tuple, final_only: bool) -> Callable:
    """The batched core compiled ahead of time for one chunk shape: ``fn(Y0 (lanes, n),
    P {name: (lanes, *param_shape)}, ts (n_t,), span (2,), tol (2,)) -> dict of (lanes, ...)
    arrays`` (param_shape () except a ModeSystem's per-mode parameters, (K,)).

    Cached per (system, solver, max_steps, events, n_t, lanes, devices, final_only): times and tolerances
    are arguments, so varied calls reuse it. With several devices the lanes are sharded over
    them (``jax.sharding``), times and tolerances replicated.
    """
    import jax
    import jax.numpy as jnp

    batched = jax.vmap(trajectory_core(num, solver, max_steps, events, final_only), in_axes=(0, 0, None, None, None))
    lane, rep = batch_shardings(devices)
    if lane is None:
        fn = jax.jit(batched)
    else:
        fn = jax.jit(batched, in_shardings=(lane, lane, rep, rep, rep), out_shardings=lane)
    f64 = jnp.float64
    shapes = num.param_shapes
    args = (jax.ShapeDtypeStruct((lanes, num.n), f64),
            {k: jax.ShapeDtypeStruct((lanes, *shapes.get(k, ())), f64) for k in num.param_names},
            jax.ShapeDtypeStruct((n_t,), f64), jax.ShapeDtypeStruct((2,), f64), jax.ShapeDtypeStruct((2,), f64))
    return fn.lower(*args).compile()


REFILL_BLOCK = 16
"""Trajectories per call of the refill path, in units of its lanes: a call ends when its last
lanes drain (about (max - mean) / (REFILL_BLOCK x mean) of its work), and calls are what the
cores share and the progress bar counts."""


@lru_cache(maxsize=64)
def _compiled_refill(num: NumericSystem, solver: Any, max_steps: int, lanes: int, block: int) -> Callable:
    """The refill loop (``_refill.refill_core``) compiled ahead of time for one block shape:
    ``fn(Y0 (block, n), P {name: (block, *param_shape)}, count, span (2,), tol (2,)) -> dict``."""
    import jax
    import jax.numpy as jnp

    fn = jax.jit(refill_core(num.f_jax, jax_solver(solver, None, None), max_steps, lanes))
    f64 = jnp.float64
    shapes = num.param_shapes
    args = (jax.ShapeDtypeStruct((block, num.n), f64),
            {k: jax.ShapeDtypeStruct((block, *shapes.get(k, ())), f64) for k in num.param_names},
            jax.ShapeDtypeStruct((), jnp.int64), jax.ShapeDtypeStruct((2,), f64), jax.ShapeDtypeStruct((2,), f64))
    return fn.lower(*args).compile()


def _run_refill(num, Y0, P, span, solver, rtol, atol, max_steps, devices, *, chunk_size=None, progress=True) -> dict:
    """End states only, no events, an explicit solver, one device: blocks of trajectories, each
    run by one refill loop of ``lanes`` lanes (``_refill``), ``host_workers`` blocks at a time.
    Blocks are balanced over the workers; a block's arrays are padded to a power of two, but only
    its real rows run."""
    B, n = Y0.shape
    workers = host_workers(devices)
    lanes = chunk_size if chunk_size is not None else CHUNK_LANES["cpu" if devices[0].platform == "cpu" else "accelerator"]
    lanes = min(_pow2_ceil(lanes), max(MIN_BUCKET, _pow2_ceil(-(-B // workers))))
    n_blocks = -(-B // (REFILL_BLOCK * lanes))
    n_blocks = min(B, -(-n_blocks // workers) * workers)
    size = -(-B // n_blocks)
    n_blocks = -(-B // size)
    block = max(lanes, _pow2_ceil(size))
    fn = _compiled_refill(num, solver, max_steps, lanes, block)
    keys = tuple(num.param_names)
    Pm = {k: np.asarray(P[k], dtype=float) for k in keys}
    span_d, tol_d = np.asarray(span, dtype=float), np.asarray((rtol, atol), dtype=float)
    raw = {"t_end": np.empty(B), "y_end": np.empty((B, n)), "code": np.empty(B, dtype=int),
           "steps": np.empty(B, dtype=int), "tries": np.empty(B, dtype=int)}

    def work(c: int) -> int:
        lo = c * size
        m = min(size, B - lo)
        sel = np.minimum(np.arange(lo, lo + block), B - 1)
        out = fn(Y0[sel], {k: Pm[k][sel] for k in keys}, np.int64(m), span_d, tol_d)
        for k, v in out.items():
            raw[k][lo:lo + m] = np.asarray(v)[:m]
        return m

    _run_parts(n_blocks, work, workers, B, progress)
    finite = np.all(np.isfinite(raw["y_end"]), axis=1)
    raw["ys"] = raw["y_end"][:, None, :].copy()
    raw["valid"] = (finite & (raw["t_end"] == span[1]))[:, None]
    raw["which"] = np.full(B, -1)
    raw["messages"] = np.full(B, "", dtype=object)
    return raw


def run_jax(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, *, chunk_size=None, progress=True) -> dict:
    """Run the batch in chunks of a bucketed size through one compiled solver, or, for end
    states only with no events, an explicit solver and one device, with lane refill.

    Lanes are padded to the bucket with copies of a real lane (results dropped), chunks run
    ``host_workers`` at a time (each lane's result does not depend on its neighbours, so
    chunking and padding change nothing but speed). Lanes are not reordered by difficulty:
    a pilot run at rtol 1e-4 cost 27% of the run's steps and predicted step counts too poorly
    (rank correlation 0.6; chunk lockstep waste 1.40 -> 1.27) to pay (benchmarks/integrate.py).

    Returns the raw result of the B trajectories: ys, valid, t_end, y_end, code (``_outcomes``),
    which, steps, tries, messages.
    """
    B, n, n_t = len(Y0), num.n, len(ts)
    devices = local_devices()
    if n_t == 1 and ts[0] == span[1] and not evs and len(devices) == 1 and not is_stiff(solver):
        return _run_refill(num, Y0, P, span, solver, rtol, atol, max_steps, devices, chunk_size=chunk_size,
                           progress=progress)
    lanes = _plan(B, n, n_t, devices, chunk_size)
    fn = _compiled(num, solver, max_steps, evs, n_t, lanes, devices, bool(n_t == 1 and ts[0] == span[1]))
    n_chunks = -(-B // lanes)
    workers = min(n_chunks, host_workers(devices))
    _, rep = batch_shardings(devices)
    keys = tuple(num.param_names)
    Pm = {k: np.asarray(P[k], dtype=float) for k in keys}

    def put(a):
        import jax

        a = np.asarray(a, dtype=float)
        return a if rep is None else jax.device_put(a, rep)

    ts_d, span_d, tol_d = put(ts), put(span), put((rtol, atol))
    raw = {"ys": np.empty((B, n_t, n)), "valid": np.empty((B, n_t), dtype=bool), "t_end": np.empty(B),
           "y_end": np.empty((B, n)), "code": np.empty(B, dtype=int), "which": np.empty(B, dtype=int),
           "steps": np.empty(B, dtype=int), "tries": np.empty(B, dtype=int)}

    def work(c: int) -> int:
        lo = c * lanes
        m = min(lanes, B - lo)
        sel = np.minimum(np.arange(lo, lo + lanes), B - 1)
        out = fn(Y0[sel], {k: Pm[k][sel] for k in keys}, ts_d, span_d, tol_d)
        for k, v in out.items():
            raw[k][lo:lo + m] = np.asarray(v)[:m]
        return m

    _run_parts(n_chunks, work, workers, B, progress)
    raw["messages"] = np.full(B, "", dtype=object)
    return raw


def _run_parts(n_parts: int, work: Callable[[int], int], workers: int, B: int, progress: bool) -> None:
    """``work(0) .. work(n_parts - 1)`` (each returns how many trajectories it finished) on up
    to ``workers`` threads, with one progress bar over the B trajectories."""
    from concurrent.futures import ThreadPoolExecutor

    with progress_bar(B, "integrate", progress, unit="traj") as bar:
        if min(workers, n_parts) == 1:
            for c in range(n_parts):
                bar.update(work(c))
        else:
            with ThreadPoolExecutor(min(workers, n_parts)) as ex:
                for m in ex.map(work, range(n_parts)):
                    bar.update(m)
