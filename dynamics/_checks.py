"""The argument checks of ``integrate`` and ``flow``: times, tolerances, budgets, solver names,
initial states, and the broadcasting of parameters against the batch.

Each check raises ValueError or TypeError naming the argument and what is allowed, and returns
the value in the form the numerics take (floats, ints, float arrays). The rules they share:
text is never a number (TypeError, ``derivations.codegen.check_not_text``), an initial state
lies in the system's ``state_domain``, and a batch holds at least one trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from derivations import DynamicalSystem, Names, Params
from derivations.codegen import check_not_text, interval_words

from ._events import Event
from ._lanes import LANE_SOLVERS

if TYPE_CHECKING:
    from ._numeric import NumericSystem

__all__ = [
    "JAX_SOLVERS", "SCIPY_METHODS", "STIFF_JAX", "STIFF_SCIPY",
    "short", "check_backend", "check_span", "check_t_eval", "check_flow_times", "check_tols", "check_max_steps",
    "check_dt", "check_flag", "check_chunk_size", "check_solver", "solver_name", "is_stiff", "active_events",
    "check_y0",
    "check_in_domain",
    "param_values", "batch_arrays",
]

JAX_SOLVERS = Names.define(
    "JAX_SOLVERS",
    {"tsit5": "Tsitouras 5(4), explicit (default).", "dopri5": "Dormand-Prince 5(4), explicit.",
     "dopri8": "Dormand-Prince 8(7), explicit.", "kvaerno5": "Kvaerno 5(4), implicit, for stiff problems.",
     "kencarp5": "Kennedy-Carpenter 5(4) IMEX, for stiff problems."},
    module=__name__, summary="diffrax solvers of integrate(backend='jax').")
SCIPY_METHODS = Names.define(
    "SCIPY_METHODS",
    {"DOP853": "explicit Runge-Kutta 8(5,3).", "RK45": "explicit Runge-Kutta 5(4).",
     "RK23": "explicit Runge-Kutta 3(2).", "Radau": "implicit Radau IIA order 5 (stiff).",
     "BDF": "implicit backward differentiation (stiff).", "LSODA": "Adams/BDF with automatic stiffness switching."},
    module=__name__, summary="scipy.integrate.solve_ivp methods of integrate(backend='scipy').")
STIFF_JAX = ("kvaerno5", "kencarp5")
"""The implicit JAX_SOLVERS (they take a Newton root finder)."""
STIFF_SCIPY = ("Radau", "BDF", "LSODA")
"""The SCIPY_METHODS for stiff problems."""


def short(names: Sequence[str]) -> str:
    """State names for a message: all of them up to six, else the first three and the last."""
    return ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:3])}, ..., {names[-1]}"


def check_backend(backend: Any) -> str:
    """``backend``, which must be "jax" or "scipy" (ValueError otherwise)."""
    if backend not in ("jax", "scipy"):
        raise ValueError(f"backend={backend!r} is not allowed; choose 'jax' or 'scipy'")
    return backend


def check_span(t_span: Any) -> tuple[float, float]:
    """``(t0, t1)`` as floats: a pair of finite numbers with t1 > t0 (TypeError for text,
    ValueError otherwise)."""
    check_not_text("t_span", t_span)
    try:
        t0, t1 = (float(v) for v in t_span)
    except (TypeError, ValueError):
        raise ValueError(f"t_span must be a pair (t0, t1) of numbers; got {t_span!r}") from None
    if not (np.isfinite(t0) and np.isfinite(t1)):
        raise ValueError(f"t_span must be finite; got {t_span!r}")
    if not t1 > t0:
        raise ValueError(f"t_span must satisfy t1 > t0 (forward time); got {t_span!r}")
    return t0, t1


def check_t_eval(t_eval: Any, t0: float, t1: float, n_save: int) -> np.ndarray:
    """The saved times: ``t_eval`` (finite, strictly increasing, within [t0, t1]) or, when it is
    None, ``n_save`` (an int >= 2) points from t0 to t1 (ValueError otherwise)."""
    if t_eval is None:
        if isinstance(n_save, bool) or not isinstance(n_save, (int, np.integer)) or n_save < 2:
            raise ValueError(f"n_save must be an int >= 2; got {n_save!r}")
        return np.linspace(t0, t1, int(n_save))
    check_not_text("t_eval", t_eval)
    try:
        ts = np.asarray(t_eval, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"t_eval must be a 1-D array of numbers; got {t_eval!r:.80}") from None
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"t_eval must be a non-empty 1-D array of times; got shape {ts.shape}")
    if not np.all(np.isfinite(ts)):
        raise ValueError("t_eval must be finite")
    if np.any(np.diff(ts) <= 0):
        raise ValueError("t_eval must be strictly increasing")
    if ts[0] < t0 or ts[-1] > t1:
        raise ValueError(f"t_eval must lie within t_span [{t0}, {t1}]; got [{ts[0]}, {ts[-1]}]")
    return ts


def check_flow_times(t: Any, t0: Any) -> tuple[float, np.ndarray, bool]:
    """``(t0, ts, scalar)`` for ``flow``: t0 a finite number, ts = t as a 1-D array (finite,
    strictly increasing, >= t0, ending after t0), scalar whether t was a scalar; TypeError for
    text."""
    check_not_text("t0", t0)
    check_not_text("t", t)
    t0 = float(t0) if isinstance(t0, (int, float, np.integer, np.floating)) and not isinstance(t0, bool) else None
    if t0 is None or not np.isfinite(t0):
        raise ValueError("t0 must be a finite number")
    scalar = np.ndim(t) == 0
    try:
        ts = np.atleast_1d(np.asarray(t, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"t must be a number or a 1-D array of numbers; got {t!r:.80}") from None
    if ts.ndim != 1 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0) or ts[0] < t0 or ts[-1] <= t0:
        raise ValueError(f"t must be finite, strictly increasing, >= t0 = {t0} and end after t0; got {t!r:.80}")
    return t0, ts, scalar


def check_tols(**values: Any) -> None:
    """Each keyword must be a positive finite number (TypeError for text, ValueError naming it
    otherwise)."""
    for name, v in values.items():
        check_not_text(name, v)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive finite number; got {v!r}")


def check_max_steps(max_steps: Any) -> int:
    """``max_steps`` as an int >= 1 (ValueError otherwise)."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int; got {max_steps!r}")
    return int(max_steps)


def check_deterministic(system: Any, why: str) -> None:
    """ValueError for a stochastic system (one that declares a diffusion) where an analysis
    needs a deterministic one: ``why`` says what it would lack."""
    if getattr(system, "diffusion", None) is not None:
        raise ValueError(f"system {getattr(system, 'name', '')!r} is stochastic: {why} (pass system.drift for the "
                         "expected flow's, or integrate(system, ..., paths=N) for its paths)")


def check_step(dt: Any, t0: float, t1: float) -> float:
    """``dt``: a fixed step in (0, t1 - t0] (TypeError for a non-number, ValueError otherwise)."""
    check_not_text("dt", dt)
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise TypeError(f"dt must be None or a number; got {type(dt).__name__}")
    dt = float(dt)
    if not (np.isfinite(dt) and 0 < dt <= t1 - t0):
        raise ValueError(f"dt must be a fixed step in (0, t1 - t0] = (0, {t1 - t0:g}]; got {dt!r}")
    return dt


def check_dt(dt: Any, t0: float, t1: float, backend: str, solver: Any) -> float | None:
    """``dt``: None (adaptive steps) or a fixed step in (0, t1 - t0], for the explicit JAX
    solvers named in LANE_SOLVERS (ValueError/TypeError otherwise)."""
    if dt is None:
        return None
    dt = check_step(dt, t0, t1)
    if backend != "jax" or not (isinstance(solver, str) and solver in LANE_SOLVERS):
        raise ValueError("dt (a fixed step) runs on the jax backend with solver 'tsit5', 'dopri5' or 'dopri8'; got "
                         f"backend={backend!r}, solver={solver_name(solver)!r}")
    return dt


def check_flag(value: Any, name: str) -> bool:
    """``value``, which must be True or False (TypeError naming ``name`` otherwise)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return value


def check_chunk_size(chunk_size: Any) -> int | None:
    """``chunk_size``: None or an int >= 1 (ValueError otherwise)."""
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    return None if chunk_size is None else int(chunk_size)


def check_solver(solver: Any, backend: str) -> Any:
    """A solver name, or a diffrax solver object (jax) / an OdeSolver subclass (scipy); None
    gives the backend's default ("tsit5", "DOP853")."""
    if solver is None:
        return "tsit5" if backend == "jax" else "DOP853"
    allowed = JAX_SOLVERS if backend == "jax" else SCIPY_METHODS
    if isinstance(solver, str):
        if solver not in allowed:
            raise ValueError(f"solver={solver!r} is not allowed for backend {backend!r}; choose one of {allowed}")
        return solver
    if backend == "jax":
        import diffrax

        if isinstance(solver, diffrax.AbstractSolver):
            return solver
    else:
        from scipy.integrate import OdeSolver

        if isinstance(solver, type) and issubclass(solver, OdeSolver):
            return solver
    kind = "a diffrax solver object" if backend == "jax" else "a scipy.integrate.OdeSolver subclass"
    raise ValueError(f"solver={solver!r:.60} is not allowed for backend {backend!r}; choose one of {allowed} or {kind}")


def solver_name(solver: Any) -> str:
    """The name of a solver given by name, class or instance."""
    return solver if isinstance(solver, str) else getattr(solver, "__name__", type(solver).__name__)


def is_stiff(solver: Any) -> bool:
    """True for the implicit solvers (by name, class or instance)."""
    name = solver_name(solver)
    return name.lower() in {s.lower() for s in STIFF_JAX + STIFF_SCIPY} or name in ("Kvaerno5", "KenCarp5", "Kvaerno3", "Kvaerno4", "ImplicitEuler")


def active_events(num: NumericSystem, events: tuple[Event, ...]) -> tuple[Event, ...]:
    """The events that apply to the system (an event's ``active`` may raise for a bad event)."""
    ctx = num.context("numpy")
    return tuple(e for e in events if e.active(ctx))


def check_y0(y0: Any, num: NumericSystem, name: str = "y0") -> np.ndarray:
    """``y0`` as a finite float array of shape (..., n_states), holding at least one start,
    every start inside the system's ``state_domain`` (TypeError, ValueError otherwise; the
    messages name ``name``)."""
    check_not_text(name, y0)
    try:
        y0 = np.asarray(y0, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numeric, shape (..., {num.n}); got {y0!r:.80}") from None
    if y0.ndim == 0 or y0.shape[-1] != num.n:
        raise ValueError(
            f"{name} must have shape (..., {num.n}) with the last axis holding the states "
            f"({short(num.state_names)}); got shape {y0.shape}"
        )
    if y0.size == 0:
        raise ValueError(f"{name} is an empty batch (shape {y0.shape}): give at least one initial state")
    if not np.all(np.isfinite(y0)):
        raise ValueError(f"{name} must be finite")
    check_in_domain(y0, num.system, name)
    return y0


def check_in_domain(y: np.ndarray, system: DynamicalSystem, name: str = "y0") -> None:
    """Every state of ``y`` (shape (..., n_states)) inside the system's ``state_domain``
    (ValueError naming ``name``, the first state outside, its value and its domain).

    A start outside the domain (s < 0 for an eigenvalue s) is no state of the model: the flow
    from it means nothing, and a run from it can end "finished" far outside. The bounds are read
    from the system once (``_domain_bounds``), so the check is one vectorised comparison."""
    states, lo, hi, left_open, right_open = _domain_bounds(system)
    if not len(states):
        return
    v = np.asarray(y)[..., states]
    outside = np.where(left_open, v <= lo, v < lo) | np.where(right_open, v >= hi, v > hi)
    if np.any(outside):
        first = np.argwhere(outside.reshape(-1, len(states)))[0]
        at = np.unravel_index(first[0], outside.shape[:-1]) if outside.ndim > 1 else ()
        i = int(states[first[1]])
        state = system.state_names[i]
        where = f"{name}[{', '.join(map(str, at))}]" if at else name
        raise ValueError(
            f"{where} has {state} = {float(np.asarray(y)[at + (i,)])}, outside the system's state domain "
            f"{interval_words(state, system.state_domain[state])}: start inside the domain"
        )


@lru_cache(maxsize=128)
def _domain_bounds(system: DynamicalSystem) -> tuple[np.ndarray, ...]:
    """``(indices, lo, hi, left_open, right_open)`` of the states that ``system.state_domain``
    bounds, read once per system (a K-mode system builds its names and domain on request)."""
    domain = system.state_domain
    rows = [(i, lo, hi, domain[state].left_open, domain[state].right_open)
            for i, (state, (lo, hi)) in enumerate(zip(system.state_names, system.state_bounds())) if state in domain]
    if not rows:
        return (np.zeros(0, dtype=int),) + (np.zeros(0),) * 2 + (np.zeros(0, dtype=bool),) * 2
    i, lo, hi, lopen, ropen = zip(*rows)
    return (np.asarray(i), np.asarray(lo, dtype=float), np.asarray(hi, dtype=float), np.asarray(lopen, dtype=bool),
            np.asarray(ropen, dtype=bool))


def param_values(num: NumericSystem, params: Params) -> dict[str, np.ndarray]:
    """``params`` checked by the system (``check_params(params, batch=True)``), as float arrays."""
    checked = num.system.check_params(params, batch=True)
    return {k: np.asarray(float(v) if isinstance(v, sp.Basic) else v, dtype=float) for k, v in checked.items()}


def batch_arrays(num: NumericSystem, y0: np.ndarray, params: Params) -> tuple[tuple[int, ...], np.ndarray, dict]:
    """``(batch_shape, Y0, P)``: the batch shape of y0 and the params broadcast together, the
    initial states flattened to (B, n) and each parameter to (B, *param_shape).

    A ModeSystem's per-mode parameters (its data spectrum, ``system.param_shapes``) keep their
    trailing mode axis; only the leading axes of a value form its part of the batch.

    Raises
    ------
    ValueError
        Parameter values that do not broadcast against the batch shape of y0 or that make the
        batch empty; those the system's ``check_params`` rejects.
    """
    values = param_values(num, params)
    trailing = num.param_shapes
    leading = {k: v.shape[: v.ndim - len(trailing.get(k, ()))] for k, v in values.items()}
    try:
        batch_shape = np.broadcast_shapes(y0.shape[:-1], *leading.values())
    except ValueError:
        shapes = {k: v.shape for k, v in values.items()}
        raise ValueError(
            f"params values must broadcast against the batch shape {y0.shape[:-1]} of y0; got shapes {shapes}"
        ) from None
    B = int(np.prod(batch_shape))
    if B == 0:
        shapes = {k: v.shape for k, v in values.items()}
        raise ValueError(
            f"the batch is empty: y0 of shape {y0.shape} and params of shapes {shapes} broadcast to the batch "
            f"shape {batch_shape}; give at least one initial state and parameter value"
        )
    Y0 = np.ascontiguousarray(np.broadcast_to(y0, batch_shape + (num.n,)).reshape(B, num.n))
    P = {
        k: np.ascontiguousarray(
            np.broadcast_to(v, batch_shape + trailing.get(k, ())).reshape((B,) + trailing.get(k, ()))
        )
        for k, v in values.items()
    }
    return batch_shape, Y0, P
