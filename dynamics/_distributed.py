"""A sweep split over the processes of a multi-host JAX job, and its results gathered back.

One process per host (``jax.distributed.initialize()``), each running its contiguous slice of
the batch on its own devices, every process ending with the whole result in the original
order. With one process it is the plain call.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._solution import Solution

__all__ = ["across_processes", "process_slice"]

_SOLUTION_BATCHED = ("y", "valid", "status", "event", "event_t", "t_end", "y_end", "n_steps", "messages", "retried")


def process_slice(n: int, process_index: int | None = None, process_count: int | None = None) -> slice:
    """The contiguous part of a batch of ``n`` that one process runs.

    The first ``n % P`` processes (P processes) take ``n // P + 1`` items and the others
    ``n // P``, in process order, as ``numpy.array_split`` divides: concatenating the parts
    in process order gives back the batch. A process gets an empty slice when n < P.

    Parameters
    ----------
    n : int
        The batch size (>= 0).
    process_index, process_count : int, optional
        Default ``jax.process_index()`` and ``jax.process_count()``.

    Returns
    -------
    slice
        ``slice(start, stop)`` of this process's items.

    Raises
    ------
    TypeError
        A non-integer argument.
    ValueError
        ``n < 0``, ``process_count < 1`` or ``process_index`` outside [0, process_count).
    """
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    for name, v in (("n", n), ("process_index", process_index), ("process_count", process_count)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int; got {v!r:.60}")
    n, i, p = int(n), int(process_index), int(process_count)
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    if p < 1:
        raise ValueError(f"process_count must be >= 1; got {p}")
    if not 0 <= i < p:
        raise ValueError(f"process_index must be in [0, {p}); got {i}")
    size, extra = divmod(n, p)
    start = i * size + min(i, extra)
    return slice(start, start + size + (i < extra))


def _leaves(batched: tuple) -> list[tuple[str, np.ndarray]]:
    """(name for messages, array) of every batched argument's values."""
    out = []
    for i, b in enumerate(batched):
        items = b.items() if isinstance(b, Mapping) else [(None, b)]
        for key, v in items:
            where = f"batched[{i}]" + ("" if key is None else f"[{key!r}]")
            try:
                a = np.asarray(v)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{where} must be an array or a number; got {type(v).__name__} ({err})") from None
            if key is None and a.dtype.kind == "O" and a.ndim == 0:
                raise TypeError(f"{where} must be an array (batch axis first) or a dict of arrays and numbers; got "
                                f"{type(v).__name__}. Arguments that are not split belong inside run")
            out.append((where, a))
    return out


def _batch_size(leaves: list[tuple[str, np.ndarray]]) -> int:
    """The common length of the leading axes (length-1 axes broadcast)."""
    sizes = {where: a.shape[0] for where, a in leaves if a.ndim >= 1 and a.shape[0] != 1}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{w}: {s}" for w, s in sizes.items())
        raise ValueError(f"batched arguments must share the length of their leading (batch) axis, or have "
                         f"length 1 there (shared); got {listing}")
    if 0 in sizes.values():
        raise ValueError("batched arguments hold no items (a leading axis of length 0)")
    if sizes:
        return next(iter(sizes.values()))
    if any(a.ndim >= 1 for _, a in leaves):
        return 1
    raise ValueError("across_processes needs at least one batched argument with a leading batch axis (an array, "
                     "or a dict holding one); scalars alone are shared, not split")


def _part(batched: tuple, n: int, part: slice) -> list:
    """The batched arguments cut to ``part`` along their leading axis of length n (scalars,
    and length-1 axes when n > 1, passed whole)."""

    def cut(v):
        a = np.asarray(v)
        return a[part] if a.ndim >= 1 and a.shape[0] == n else v

    return [{k: cut(v) for k, v in b.items()} if isinstance(b, Mapping) else cut(b) for b in batched]


def _allgather(payload: bytes) -> list[bytes]:
    """Every process's bytes, in process order, on every process (two ``process_allgather``
    calls: the lengths, then the payloads padded to the longest)."""
    from jax.experimental import multihost_utils

    size = np.array([len(payload)], dtype=np.int64)
    sizes = np.asarray(multihost_utils.process_allgather(size)).reshape(-1)
    width = max(1, int(sizes.max()))
    buf = np.zeros(width, dtype=np.uint8)
    buf[: len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    rows = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), width)
    return [rows[i, : int(s)].tobytes() for i, s in enumerate(sizes)]


def _check_batched(result: Any, length: int, where: str) -> None:
    """Every array of a part's result must have the part's length as leading axis (else
    concatenation could not restore the batch)."""
    if isinstance(result, Solution):
        if result.status.shape[:1] != (length,):
            raise ValueError(f"{where}: run returned a Solution of batch shape {result.batch_shape}, whose leading "
                             f"axis is not the {length} items it was given; run must keep the batch axis first")
    elif isinstance(result, Mapping):
        for k, v in result.items():
            _check_batched(v, length, f"{where}[{k!r}]")
    elif isinstance(result, (tuple, list)):
        for i, v in enumerate(result):
            _check_batched(v, length, f"{where}[{i}]")
    elif isinstance(result, np.ndarray) and result.ndim >= 1 and result.shape[0] != length:
        raise ValueError(f"{where}: run returned an array of shape {result.shape}, whose leading axis is not the "
                         f"{length} items it was given; return per-item results along the first axis")


def _as_host(result: Any) -> Any:
    """``result`` with JAX arrays as NumPy arrays (picklable on any host)."""
    if isinstance(result, Solution):
        return result
    if isinstance(result, Mapping):
        return {k: _as_host(v) for k, v in result.items()}
    if isinstance(result, tuple) and hasattr(result, "_fields"):
        return type(result)(*(_as_host(v) for v in result))
    if isinstance(result, (tuple, list)):
        return type(result)(_as_host(v) for v in result)
    if hasattr(result, "__array__") and not isinstance(result, np.ndarray):
        return np.asarray(result)
    return result


def _join(parts: list, where: str = "result") -> Any:
    """The parts' results joined along their leading (batch) axis."""
    first = parts[0]
    if isinstance(first, Solution):
        if not all(isinstance(p, Solution) for p in parts):
            raise TypeError(f"{where}: run returned a Solution on one process and something else on another")
        for p in parts[1:]:
            if not (np.array_equal(p.t, first.t) and p.state_names == first.state_names and p.backend == first.backend):
                raise ValueError(f"{where}: the processes' Solutions differ in saved times, states or backend; "
                                 "pass t_eval (or the same t_span and n_save) so every part saves the same times")
        joined = {f: np.concatenate([getattr(p, f) for p in parts], axis=0) for f in _SOLUTION_BATCHED}
        return Solution(t=first.t, state_names=first.state_names, backend=first.backend, info=first.info, **joined)
    if isinstance(first, Mapping):
        if any(not isinstance(p, Mapping) or set(p) != set(first) for p in parts):
            raise ValueError(f"{where}: run returned dicts with different keys on different processes")
        return {k: _join([p[k] for p in parts], f"{where}[{k!r}]") for k in first}
    if isinstance(first, (tuple, list)):
        if any(type(p) is not type(first) or len(p) != len(first) for p in parts):
            raise ValueError(f"{where}: run returned sequences of different types or lengths on different processes")
        items = [_join([p[i] for p in parts], f"{where}[{i}]") for i in range(len(first))]
        return type(first)(*items) if hasattr(first, "_fields") else type(first)(items)
    if isinstance(first, np.ndarray) and first.ndim >= 1:
        if any(not isinstance(p, np.ndarray) or p.shape[1:] != first.shape[1:] for p in parts):
            raise ValueError(f"{where}: the processes returned arrays whose shapes differ beyond the batch axis")
        return np.concatenate(parts, axis=0)
    for p in parts[1:]:
        same = np.array_equal(np.asarray(p), np.asarray(first)) if isinstance(first, (np.ndarray, np.generic)) else p == first
        if not bool(same):
            raise ValueError(f"{where}: run returned a value without a batch axis that differs between processes "
                             f"({first!r:.40} and {p!r:.40}); return per-item results as arrays")
    if not isinstance(first, (type(None), bool, int, float, complex, str, bytes, np.ndarray, np.generic)):
        raise TypeError(f"{where}: cannot join {type(first).__name__} results across processes; return a Solution, "
                        "arrays (batch axis first), numbers, strings, or dicts, tuples and lists of these")
    return first


def across_processes(run: Callable[..., object], *batched: ArrayLike | Mapping[str, ArrayLike]) -> object:
    """Run a batched computation with each process of a multi-host JAX job on its own slice,
    and give every process the whole result.

    The batch is the leading axis of the ``batched`` arguments (initial states, parameter
    arrays, or dicts of parameters). Process i of P (``jax.process_index()`` of
    ``jax.process_count()``) calls ``run(*parts)`` with its contiguous part of that axis
    (``process_slice``: sizes differ by at most one, so any batch size works), on its own
    devices; the parts' results are then exchanged (``jax.experimental.multihost_utils
    .process_allgather`` of their pickled bytes, so string and object arrays travel as they
    are) and joined along their batch axis in process order. Every process returns what
    ``run(*batched)`` returns in a single process: the same result in the same order, equal
    to it whenever ``run`` gives each item a result that does not depend on the rest of its
    batch (``integrate``, ``roots_batch`` and ``flow`` under ``vmap`` do).

    With one process (no ``jax.distributed.initialize()``, or a job of one) it is
    ``run(*batched)``, unchanged. Several processes: call ``jax.distributed.initialize()``
    (coordinator address, number of processes, process id; no arguments under SLURM or
    another supported cluster) before anything else in JAX, and call ``across_processes``
    on every process with the same arguments. ``run`` must be local to its process (no
    collectives of its own). On CPU-only hosts, cross-process transfers use JAX's CPU
    collectives (``jax_cpu_collectives_implementation``, Gloo by default).

    Parameters
    ----------
    run : callable
        ``run(*parts)`` with the parts in the order of ``batched``; it returns a ``Solution``,
        an array whose leading axis is the part's batch, a number or string (the same on every
        process), or a dict, tuple or list of these. Arguments that are not split (the
        system, times, options) belong inside it (a closure or ``functools.partial``).
    *batched : array or dict of arrays / numbers
        The split arguments. An array is split along its first axis; in a dict, each array
        value is, while numbers (and arrays of length 1 along the first axis, which
        broadcast) are passed whole to every process. All split values share the length of
        their first axis.

    Returns
    -------
    The joined result: a ``Solution`` with every batched field concatenated (its saved times,
    states, backend and options as the parts'), arrays concatenated along the first axis,
    dicts, tuples and lists joined item by item, numbers and strings as they are.

    Raises
    ------
    TypeError
        ``run`` not callable; a batched value that is neither an array nor a number; a result
        of a type that cannot be joined.
    ValueError
        No batched argument, or batched arguments whose first axes differ; results whose
        leading axis is not the part's length, or that differ between processes where they
        have no batch axis.
    RuntimeError
        ``run`` raised on some process: every process raises, naming the process and its error
        (so none waits for the others forever).

    Examples
    --------
    On each of two hosts (``process_id`` 0 and 1), a sweep over 1000 values of eta::

        import jax
        jax.distributed.initialize("host0:1234", num_processes=2, process_id=...)
        import numpy as np
        from ncdyn import ModelSpec, derive, integrate, across_processes

        system = derive(ModelSpec("euclidean"))
        etas = np.linspace(0.0, 0.4, 1000)
        sol = across_processes(
            lambda eta: integrate(system, [0.5, 0.25], (0, 200),
                                  {"sigma2": 0.2, "eta": eta, "alpha_p": 1.0},
                                  t_eval=[200.0], progress=False),
            etas)
        sol.status.shape   # (1000,) on both hosts; host 0 integrated etas[:500]

    In one process it is the plain call:

    >>> import numpy as np
    >>> from ncdyn import across_processes
    >>> across_processes(lambda a, p: a * p["k"], np.arange(4.0), {"k": 2.0})
    array([0., 2., 4., 6.])
    """
    if not callable(run):
        raise TypeError(f"run must be callable (it is called with the parts of the batched arguments); got {run!r:.60}")
    n = _batch_size(_leaves(batched))
    import jax

    count = jax.process_count()
    if count == 1:
        return run(*batched)
    index = jax.process_index()
    part = process_slice(n, index, count)
    length = part.stop - part.start
    try:
        if length:
            result = _as_host(run(*_part(batched, n, part)))
            _check_batched(result, length, "result")
            message = ("ok", result)
        else:
            message = ("empty", None)
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # noqa: BLE001 - reported to every process below
        payload = pickle.dumps(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=6)}"))
    received = [pickle.loads(b) for b in _allgather(payload)]
    errors = [(i, text) for i, (kind, text) in enumerate(received) if kind == "error"]
    if errors:
        i, text = errors[0]
        raise RuntimeError(f"across_processes: run failed on process {i} of {count} "
                           f"(items {process_slice(n, i, count).start}..{process_slice(n, i, count).stop - 1}): {text}")
    return _join([r for kind, r in received if kind == "ok"])
