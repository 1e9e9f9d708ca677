"""The batch driver of the JAX backend: the plan of a run (lanes, blocks, buckets, devices) and
its execution on all cores and devices.

The named explicit solvers run on the lane kernel (``_lanes``): blocks of trajectories, each
advanced by one kernel call on a set of refilled lanes, one block per core at a time and one
device per block. The implicit solvers and diffrax solver objects run ``vmap(diffeqsolve)``
(``_flow.trajectory_core``) in chunks sharded over the local devices.

Blocks, chunks, padding and devices change nothing but speed: each trajectory's result does
not depend on its neighbours. What is compiled is cached per shape; times, tolerances and (on
the kernel) the step budget are traced arguments, so the varied calls of an interactive session
compile once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from ._events import Event
from ._flow import trajectory_core
from ._lanes import LANE_SOLVERS, LARGE_STATE, lane_kernel, tableau
from ._numeric import NumericSystem
from ._progress import progress_bar
from ._sharding import batch_shardings, host_workers, local_devices

__all__ = ["CACHE_BYTES", "CHUNK_BYTES", "CHUNK_LANES", "MIN_BUCKET", "REFILL_BLOCK", "lane_plan", "saved_bucket",
           "run_jax"]


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
"""Trajectories per call of the lane kernel, in units of its lanes: a call ends when its last
lanes drain (about (max - mean) / (REFILL_BLOCK x mean) of its work), and calls are what the
cores share and the progress bar counts."""


@lru_cache(maxsize=64)
def _compiled_lanes(num: NumericSystem, solver: str, events: tuple[Event, ...], lanes: int,
                    final_only: bool) -> Callable:
    """The lane kernel (``_lanes.lane_kernel``) jitted for one (system, solver, events, lanes):
    ``fn(Y0 (block, n), P, count, ts (n_t,), span (2,), tol (3,), max_steps) -> dict``. Block
    rows and the number of saved times are bucketed by the caller; times, tolerances and the
    step budget are traced, so the varied calls of a session reuse one compiled kernel."""
    import jax

    return jax.jit(lane_kernel(num, tableau(solver), events, lanes, final_only))


def _coarse(x: int, base: int, factor: int = 8) -> int:
    """The smallest base * factor^k >= x: few buckets, so that few kernels are compiled."""
    size = base
    while size < x:
        size *= factor
    return size


def saved_bucket(n_t: int) -> int:
    """The number of saved times a kernel is compiled for: at least 16, a power of two (padding
    costs output memory and copies in proportion, so the buckets stay tight above 16)."""
    return max(16, _pow2_ceil(n_t))


def lane_plan(B: int, n: int, n_t: int, stages: int, devices: tuple, chunk_size: int | None) -> tuple[int, int, int]:
    """``(lanes, rows, n_blocks)`` of a lane-kernel run of B trajectories of n states with n_t
    saved times: lanes per kernel call, rows per call (of which only the real ones run) and the
    number of calls.

    On CPU a lane block's working set (``stages`` + 6 arrays of n states per lane) stays within
    CACHE_BYTES and a call's saved output within CHUNK_BYTES. A batch smaller than that runs on
    as few lanes as cover it on every worker: for small systems one of the coarse buckets
    MIN_BUCKET x 8^k (4, 32, 256) and rows either the lanes or a full block, so that a session's
    varied batch sizes compile few kernels (a padded lane costs tens of nanoseconds a step);
    from LARGE_STATE states on exactly as many lanes as trajectories. ``chunk_size`` fixes the
    lanes."""
    workers = max(len(devices), host_workers(devices) * max(1, len(devices)))
    cpu = not devices or devices[0].platform == "cpu"
    per_row = 8.0 * n * max(n_t, 1)
    large = n >= LARGE_STATE
    if chunk_size is not None:
        lanes = chunk_size
    else:
        cap = CHUNK_LANES["cpu" if cpu else "accelerator"]
        if cpu:
            cap = min(cap, CACHE_BYTES / (8.0 * n * (stages + 6)))
        cap = min(cap, CHUNK_BYTES / per_row)
        lanes = _pow2_floor(cap)
        need = -(-B // workers)
        if need < lanes:
            lanes = need if large else min(lanes, _coarse(need, MIN_BUCKET))
    block = max(lanes, min(REFILL_BLOCK * lanes, int(CHUNK_BYTES // per_row)))
    n_blocks = -(-B // block)
    n_blocks = min(B, -(-n_blocks // workers) * workers)
    size = -(-B // n_blocks)
    n_blocks = -(-B // size)
    rows = (size if large else lanes) if size <= lanes else block
    return lanes, rows, n_blocks


def _run_lanes(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, devices, *, chunk_size=None,
               progress=True, dt=None) -> dict:
    """The named explicit solvers: blocks of trajectories, each run by the lane kernel with
    refill, ``host_workers`` blocks at a time on each device (one device per block, in turn).
    The saved times are padded to ``saved_bucket`` with +inf (never reached)."""
    import jax

    B, n = Y0.shape
    final_only = bool(len(ts) == 1 and ts[0] == span[1])
    n_t = len(ts)
    ts_pad = ts if final_only else np.concatenate([ts, np.full(saved_bucket(n_t) - n_t, np.inf)])
    lanes, rows, n_blocks = lane_plan(B, n, len(ts_pad), tableau(solver).stages, devices, chunk_size)
    size = -(-B // n_blocks)
    fn = _compiled_lanes(num, solver, evs, lanes, final_only)
    keys = tuple(num.param_names)
    Pm = {k: np.asarray(P[k], dtype=float) for k in keys}
    fixed = (np.asarray(ts_pad, dtype=float), np.asarray(span, dtype=float),
             np.asarray((rtol, atol, 0.0 if dt is None else dt), dtype=float), np.int64(max_steps))
    many = len(devices) > 1
    placed = [jax.device_put(fixed, d) for d in devices] if many else [fixed]
    raw = {"ys": np.empty((B, n_t, n)), "valid": np.empty((B, n_t), dtype=bool), "t_end": np.empty(B),
           "y_end": np.empty((B, n)), "code": np.empty(B, dtype=int), "which": np.empty(B, dtype=int),
           "steps": np.empty(B, dtype=int), "tries": np.empty(B, dtype=int)}

    def work(c: int) -> int:
        lo = c * size
        m = min(size, B - lo)
        sel = np.minimum(np.arange(lo, lo + rows), B - 1)
        args = (Y0[sel], {k: Pm[k][sel] for k in keys}, np.int64(m))
        if many:
            args = jax.device_put(args, devices[c % len(devices)])
        out = fn(*args, *placed[c % len(placed)])
        for k, v in out.items():
            v = np.asarray(v)[:m]
            raw[k][lo:lo + m] = v[:, :n_t] if k in ("ys", "valid") else v
        return m

    workers = max(len(devices), host_workers(devices) * max(1, len(devices)))
    _run_parts(n_blocks, work, min(workers, n_blocks), B, progress)
    raw["messages"] = np.full(B, "", dtype=object)
    return raw


def run_jax(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, *, chunk_size=None, progress=True,
            dt=None) -> dict:
    """Run the batch: the named explicit solvers on the lane kernel (``_run_lanes``), the others
    in chunks of a bucketed size through one compiled ``vmap(diffeqsolve)``.

    Chunks are padded to the bucket with copies of a real lane (results dropped) and run
    ``host_workers`` at a time (each lane's result does not depend on its neighbours, so
    chunking and padding change nothing but speed). Lanes are not reordered by difficulty:
    a pilot run at rtol 1e-4 cost 27% of the run's steps and predicted step counts too poorly
    (rank correlation 0.6; chunk lockstep waste 1.40 -> 1.27) to pay (benchmarks/integrate.py).

    Returns the raw result of the B trajectories: ys, valid, t_end, y_end, code (``_outcomes``),
    which, steps, tries, messages.
    """
    B, n, n_t = len(Y0), num.n, len(ts)
    devices = local_devices()
    if isinstance(solver, str) and solver in LANE_SOLVERS:
        return _run_lanes(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, devices, chunk_size=chunk_size,
                          progress=progress, dt=dt)
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
