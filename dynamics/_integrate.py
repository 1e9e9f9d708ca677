"""integrate(system, y0, t_span, params): batched ODE integration with JAX/diffrax or SciPy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from derivations._codegen import param_values

from ._states import collapse_indices
from ._solution import Solution

__all__ = ["integrate", "BUILTIN_EVENTS", "JAX_SOLVERS", "SCIPY_METHODS"]

BUILTIN_EVENTS = ("collapse", "blow_up", "steady")
JAX_SOLVERS = ("tsit5", "dopri5", "dopri8", "kvaerno5", "kencarp5")
"""Explicit Runge-Kutta (tsit5 default, dopri5, dopri8) or implicit for stiff problems."""
SCIPY_METHODS = ("DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA")
_STIFF = ("kvaerno5", "kencarp5")


def integrate(
    system: Any,
    y0: Any,
    t_span: Sequence[float],
    params: Mapping[str, Any],
    *,
    t_eval: Any = None,
    backend: str = "jax",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    events: Iterable[str | Callable] = ("collapse", "blow_up"),
    solver: str | None = None,
    max_steps: int = 100_000,
    retry: bool = True,
    collapse_tol: float = 1e-8,
    blowup_bound: float = 1e8,
    steady_tol: float = 1e-9,
    n_save: int = 201,
) -> Solution:
    """Integrate dy/dt = f(t, y; params) for one initial state or a batch.

    system:  an EigenmodeSystem (one mode, full or reduced) or a ModeSystem (K modes).
    y0:      shape (..., n_states); leading axes form the batch.
    t_span:  (t0, t1) with t1 > t0, both finite.
    params:  dict keyed by parameter name; values are scalars or arrays that broadcast
             against the batch shape (parameter sweeps without Python loops).
    t_eval:  times to save (increasing, within t_span); default ``n_save`` points from t0 to t1.
    backend: "jax" (diffrax, jit + vmap, runs on a GPU when JAX sees one) or "scipy"
             (solve_ivp in a loop; the reference).
    solver:  jax: one of JAX_SOLVERS (default "tsit5"; "kvaerno5" for stiff problems);
             scipy: one of SCIPY_METHODS (default "DOP853").
    events:  terminating events: "collapse" (every p and s below ``collapse_tol`` in absolute
             value), "blow_up" (max |y| above ``blowup_bound``, or the solver stalling while
             max|y| grew ESCAPE_FACTOR-fold), "steady" (max |dy/dt| below ``steady_tol``, which
             must sit above the integration error, ~atol), or callables g(t, y, params) -> float that stop the run where g
             changes sign. Event times are located by root finding. Pass () for none.
    max_steps: step budget of the JAX solver per trajectory (SciPy has no such budget; a
             SciPy run that cannot proceed reports "failed" with solve_ivp's message).
    retry:   re-run trajectories that hit ``max_steps`` once, with 8x the steps and (for the
             JAX backend) the stiff solver kvaerno5; those still failing report "max_steps".

    Returns a Solution with per-trajectory ``status`` (finished, collapsed, blew_up, steady,
    event, max_steps, failed) and ``event_t``. Raises ValueError/TypeError for bad input:
    wrong shapes, reversed or non-finite t_span, unknown backend/solver/event, non-positive
    tolerances, missing or unknown params.
    """
    spec = _NumericSystem.of(system)
    if backend not in ("jax", "scipy"):
        raise ValueError(f"backend={backend!r} is not allowed; choose 'jax' or 'scipy'")
    t0, t1 = _check_span(t_span)
    for name, v in (("rtol", rtol), ("atol", atol), ("collapse_tol", collapse_tol),
                    ("blowup_bound", blowup_bound), ("steady_tol", steady_tol)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive finite number; got {v!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int; got {max_steps!r}")
    ts = _check_t_eval(t_eval, t0, t1, n_save)
    names, user_events = _check_events(events)
    if solver is None:
        solver = "tsit5" if backend == "jax" else "DOP853"
    allowed = JAX_SOLVERS if backend == "jax" else SCIPY_METHODS
    if solver not in allowed:
        raise ValueError(f"solver={solver!r} is not allowed for backend {backend!r}; choose one of {allowed}")

    try:
        y0 = np.asarray(y0, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"y0 must be numeric, shape (..., {spec.n}); got {y0!r:.80}") from None
    if y0.ndim == 0 or y0.shape[-1] != spec.n:
        raise ValueError(
            f"y0 must have shape (..., {spec.n}) with the last axis holding the states "
            f"({_short(spec.state_names)}); got shape {y0.shape}"
        )
    if not np.all(np.isfinite(y0)):
        raise ValueError("y0 must be finite")
    values = dict(zip(spec.param_names, (np.asarray(v, dtype=float) for v in param_values(params, spec.param_names, "numpy"))))
    try:
        batch_shape = np.broadcast_shapes(y0.shape[:-1], *(v.shape for v in values.values()))
    except ValueError:
        shapes = {k: v.shape for k, v in values.items()}
        raise ValueError(
            f"params values must broadcast against the batch shape {y0.shape[:-1]} of y0; got shapes {shapes}"
        ) from None
    B = int(np.prod(batch_shape))
    Y0 = np.broadcast_to(y0, batch_shape + (spec.n,)).reshape(B, spec.n)
    P = {k: np.broadcast_to(v, batch_shape).reshape(B) for k, v in values.items()}
    opts = _Options(names, tuple(user_events), collapse_tol, blowup_bound, steady_tol)

    run = _run_jax if backend == "jax" else _run_scipy
    out = _classify(run(spec, Y0, P, ts, (t0, t1), solver, rtol, atol, max_steps, opts), Y0, spec, opts)
    out["retried"] = np.zeros(B, dtype=bool)
    again = np.flatnonzero(out["status"] == "max_steps")
    if retry and again.size:
        solver2 = "kvaerno5" if backend == "jax" else solver
        sub = run(spec, Y0[again], {k: v[again] for k, v in P.items()}, ts, (t0, t1), solver2, rtol, atol, 8 * max_steps, opts)
        sub = _classify(sub, Y0[again], spec, opts)
        for key in ("y", "valid", "status", "event_t", "n_steps", "messages"):
            out[key][again] = sub[key]
        out["retried"][again] = True
    if "collapse" in names and spec.collapse_idx.size:  # states that start collapsed stay so
        start = np.max(np.abs(Y0[:, spec.collapse_idx]), axis=1) < collapse_tol
        out["status"][start] = "collapsed"
        out["event_t"][start] = t0
    return Solution(
        t=ts,
        y=out["y"].reshape(batch_shape + (len(ts), spec.n)),
        valid=out["valid"].reshape(batch_shape + (len(ts),)),
        status=out["status"].reshape(batch_shape),
        event_t=out["event_t"].reshape(batch_shape),
        n_steps=out["n_steps"].reshape(batch_shape),
        messages=out["messages"].reshape(batch_shape),
        retried=out["retried"].reshape(batch_shape),
        state_names=spec.state_names,
        backend=backend,
        info={"solver": solver, "rtol": rtol, "atol": atol, "max_steps": max_steps, "events": names},
    )


# -- input checks ------------------------------------------------------------------------


class _NumericSystem:
    """What integrate needs of a system: names, sizes, compiled right-hand sides."""

    def __init__(self, system: Any):
        self.system = system
        self.state_names = tuple(system.state_names)
        self.param_names = tuple(system.param_names)
        self.n = len(self.state_names)
        self.collapse_idx = collapse_indices(self.state_names)

    @classmethod
    def of(cls, system: Any) -> _NumericSystem:
        if not all(hasattr(system, a) for a in ("to_jax", "to_numpy", "state_names", "param_names")):
            raise TypeError(
                "system must be an EigenmodeSystem or ModeSystem (from derivations.derive); "
                f"got {type(system).__name__}"
            )
        return _numeric(system)


@lru_cache(maxsize=128)
def _numeric(system: Any) -> _NumericSystem:
    return _NumericSystem(system)


def _short(names: Sequence[str]) -> str:
    return ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:3])}, ..., {names[-1]}"


def _check_span(t_span: Any) -> tuple[float, float]:
    try:
        t0, t1 = (float(v) for v in t_span)
    except (TypeError, ValueError):
        raise ValueError(f"t_span must be a pair (t0, t1) of numbers; got {t_span!r}") from None
    if not (np.isfinite(t0) and np.isfinite(t1)):
        raise ValueError(f"t_span must be finite; got {t_span!r}")
    if not t1 > t0:
        raise ValueError(f"t_span must satisfy t1 > t0 (forward time); got {t_span!r}")
    return t0, t1


def _check_t_eval(t_eval: Any, t0: float, t1: float, n_save: int) -> np.ndarray:
    if t_eval is None:
        if isinstance(n_save, bool) or not isinstance(n_save, (int, np.integer)) or n_save < 2:
            raise ValueError(f"n_save must be an int >= 2; got {n_save!r}")
        return np.linspace(t0, t1, int(n_save))
    ts = np.asarray(t_eval, dtype=float)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"t_eval must be a non-empty 1-D array of times; got shape {ts.shape}")
    if not np.all(np.isfinite(ts)):
        raise ValueError("t_eval must be finite")
    if np.any(np.diff(ts) <= 0):
        raise ValueError("t_eval must be strictly increasing")
    if ts[0] < t0 or ts[-1] > t1:
        raise ValueError(f"t_eval must lie within t_span [{t0}, {t1}]; got [{ts[0]}, {ts[-1]}]")
    return ts


def _check_events(events: Any) -> tuple[tuple[str, ...], list[Callable]]:
    if events is None:
        return (), []
    if isinstance(events, str) or callable(events):
        events = (events,)
    names, user = [], []
    for e in events:
        if callable(e):
            user.append(e)
        elif e in BUILTIN_EVENTS:
            names.append(e)
        else:
            raise ValueError(f"events: {e!r} is not allowed; use callables or names from {BUILTIN_EVENTS}")
    return tuple(names), user


class _Options(tuple):
    """Hashable event configuration."""

    def __new__(cls, names, user, collapse_tol, blowup_bound, steady_tol):
        return super().__new__(cls, (names, user, float(collapse_tol), float(blowup_bound), float(steady_tol)))

    names = property(lambda self: self[0])
    user = property(lambda self: self[1])
    collapse_tol = property(lambda self: self[2])
    blowup_bound = property(lambda self: self[3])
    steady_tol = property(lambda self: self[4])


ESCAPE_FACTOR = 10.0
"""A run that stops early with max|y| above ESCAPE_FACTOR * max(1, max|y0|) has blown up: near a
finite-time singularity such as (t* - t)^(-1/5) the adaptive step size collapses long before any
fixed bound is reached (double precision cannot resolve t* - t below ~1e-16 t)."""
DTMIN_FRACTION = 1e-12
"""The JAX solver gives up once its step falls below DTMIN_FRACTION * (t1 - t0), so that one
diverging trajectory does not hold a whole vmapped batch for max_steps rejected steps."""

_EVENT_STATUS = {"collapse": "collapsed", "blow_up": "blew_up", "steady": "steady"}


def _raw(B: int, n_t: int, n: int) -> dict:
    """Per-trajectory results as each backend reports them, before classification."""
    return {
        "y": np.zeros((B, n_t, n)),
        "valid": np.zeros((B, n_t), dtype=bool),
        "t_stop": np.zeros(B),
        "y_stop": np.zeros((B, n)),
        "outcome": np.full(B, "finished", dtype=object),  # finished | event:<name> | max_steps | failed
        "n_steps": np.zeros(B, dtype=int),
        "messages": np.full(B, "", dtype=object),
    }


def _classify(raw: dict, Y0: np.ndarray, spec: _NumericSystem, opts: _Options) -> dict:
    """Statuses and event times from raw outcomes; saved states after the stop hold y_stop."""
    B = len(Y0)
    status = np.full(B, "finished", dtype=object)
    event_t = np.full(B, np.nan)
    messages = raw["messages"].copy()
    for b, outcome in enumerate(raw["outcome"]):
        if outcome.startswith("event:"):
            status[b] = _EVENT_STATUS.get(outcome[6:], "event")
            event_t[b] = raw["t_stop"][b]
        elif outcome in ("max_steps", "failed"):
            scale = max(1.0, float(np.max(np.abs(Y0[b]))))
            if "blow_up" in opts.names and float(np.max(np.abs(raw["y_stop"][b]))) > ESCAPE_FACTOR * scale:
                status[b] = "blew_up"
                event_t[b] = raw["t_stop"][b]
                messages[b] = (
                    f"finite-time blow-up: the step size collapsed at t = {raw['t_stop'][b]:.6g} "
                    f"with max|y| = {np.max(np.abs(raw['y_stop'][b])):.3g}"
                )
            else:
                status[b] = outcome
    y, valid = raw["y"], raw["valid"]
    y[~valid] = np.broadcast_to(raw["y_stop"][:, None, :], y.shape)[~valid]
    return {"y": y, "valid": valid, "status": status, "event_t": event_t, "n_steps": raw["n_steps"], "messages": messages}
# -- JAX / diffrax -----------------------------------------------------------------------


@lru_cache(maxsize=64)
def _jax_batched_solve(
    spec: _NumericSystem, solver: str, rtol: float, atol: float, max_steps: int, opts: _Options, dtmin: float
):
    import diffrax
    import jax
    import jax.numpy as jnp
    import optimistix as optx

    f = spec.system.to_jax(checked=False)
    stepper = {
        "tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8,
        "kvaerno5": diffrax.Kvaerno5, "kencarp5": diffrax.KenCarp5,
    }[solver]()
    if solver in _STIFF:
        stepper = type(stepper)(root_finder=optx.Newton(rtol=rtol, atol=atol))
    idx = jnp.asarray(spec.collapse_idx)
    margins = {}  # each positive during a normal run; the run stops where the smallest hits 0
    if "collapse" in opts.names and idx.size:
        margins["collapse"] = lambda t, y, params: jnp.max(jnp.abs(y[idx])) - opts.collapse_tol
    if "blow_up" in opts.names:
        margins["blow_up"] = lambda t, y, params: opts.blowup_bound - jnp.max(jnp.abs(y))
    if "steady" in opts.names:
        margins["steady"] = lambda t, y, params: jnp.max(jnp.abs(f(t, y, params))) - opts.steady_tol
    for i, g in enumerate(opts.user):
        margins[f"user{i}"] = (lambda g: lambda t, y, params: g(t, y, params))(g)
    names = tuple(margins)

    def all_margins(t, y, params, signs):
        # a user event may start on either side of zero: its sign at t0 orients it
        return jnp.stack([jnp.asarray(margins[k](t, y, params), dtype=float) for k in names]) * signs

    # One real-valued condition (the smallest margin): diffrax then root-finds a scalar,
    # bracketed between two steps, so bisection always converges. It decreases through zero
    # (flip=True); so does diffrax's stand-in for batch members without an event, which is
    # zero at the bracket's end and would fail bisection's sign detection.
    event = None
    if names:
        event = diffrax.Event(
            lambda t, y, args, **kw: jnp.min(all_margins(t, y, *args)),
            root_finder=optx.Bisection(rtol=1e-13, atol=1e-13, flip=True),
        )
    term = diffrax.ODETerm(lambda t, y, args: f(t, y, args[0]))
    controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmin=dtmin, force_dtmin=False)

    def one(y0, params, ts, span):
        signs = jnp.ones(len(names))
        if names:
            start = all_margins(span[0], y0, params, signs)
            signs = jnp.where(jnp.array([k.startswith("user") for k in names]), jnp.sign(start), 1.0)
        sol = diffrax.diffeqsolve(
            term, stepper, span[0], span[1], None, y0, (params, signs),
            saveat=diffrax.SaveAt(ts=ts, t1=True),
            stepsize_controller=controller, event=event, max_steps=max_steps, throw=False,
        )
        # which margin ended the run: the smallest one at the stopping point
        last = jnp.argmax(jnp.where(jnp.isfinite(sol.ts), sol.ts, -jnp.inf))
        which = jnp.argmin(all_margins(sol.ts[last], sol.ys[last], params, signs)) if names else 0
        return (
            sol.ts, sol.ys,
            sol.result == diffrax.RESULTS.successful,
            sol.result == diffrax.RESULTS.event_occurred,
            sol.result == diffrax.RESULTS.max_steps_reached,
            which, sol.stats["num_accepted_steps"],
        )

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None))), names


def _run_jax(spec, Y0, P, ts, span, solver, rtol, atol, max_steps, opts) -> dict:
    import jax.numpy as jnp

    B, n_t = len(Y0), len(ts)
    raw = _raw(B, n_t, spec.n)
    dtmin = DTMIN_FRACTION * (span[1] - span[0])
    solve, cond_names = _jax_batched_solve(spec, solver, float(rtol), float(atol), int(max_steps), opts, dtmin)
    t_saved, ys, ok, ev, ms, fired, steps = solve(
        jnp.asarray(Y0), {k: jnp.asarray(v) for k, v in P.items()}, jnp.asarray(ts), jnp.asarray(span)
    )
    t_saved, ys = np.asarray(t_saved), np.asarray(ys)
    ok, ev, ms = np.asarray(ok), np.asarray(ev), np.asarray(ms)
    finite = np.isfinite(t_saved) & np.all(np.isfinite(ys), axis=2)
    # a saved entry counts only where it is the requested time (on failure diffrax may not fill it)
    raw["valid"] = finite[:, :-1] & (t_saved[:, :-1] == ts[None, :])
    raw["y"] = np.where(raw["valid"][..., None], ys[:, :-1, :], 0.0)
    # where the run stopped: the final save if finite, else the latest finite entry
    last = np.where(finite[:, -1], n_t, np.argmax(np.where(finite, t_saved, -np.inf), axis=1))
    raw["t_stop"] = t_saved[np.arange(B), last]
    raw["y_stop"] = np.where(np.isfinite(ys[np.arange(B), last]), ys[np.arange(B), last], Y0)
    raw["n_steps"] = np.asarray(steps).astype(int)
    outcome = raw["outcome"]
    which = np.asarray(fired)
    for i, name in enumerate(cond_names):
        outcome[ev & (which == i)] = f"event:{name}"
    outcome[ms] = "max_steps"
    raw["messages"][ms] = f"max_steps={max_steps} reached before t1"
    # (after an event diffrax writes the stop into the next free save slot, not the t1 slot)
    bad = (~(ok | ev | ms) | ~np.all(np.isfinite(raw["y_stop"]), axis=1)) & ~ms
    outcome[bad] = "failed"
    raw["messages"][bad] = "solver stopped early (non-finite state or step-size failure)"
    return raw


# -- SciPy -------------------------------------------------------------------------------


def _run_scipy(spec, Y0, P, ts, span, solver, rtol, atol, max_steps, opts) -> dict:
    from scipy.integrate import solve_ivp

    f = spec.system.to_numpy(checked=False)
    B, n_t = len(Y0), len(ts)
    raw = _raw(B, n_t, spec.n)
    idx = spec.collapse_idx
    for b in range(B):
        args = {k: v[b] for k, v in P.items()}
        fun = lambda t, y: f(t, y, args)  # noqa: E731
        evs, names = [], []
        if "collapse" in opts.names and idx.size:
            evs.append(lambda t, y: np.max(np.abs(y[idx])) - opts.collapse_tol)
            names.append("collapse")
        if "blow_up" in opts.names:
            evs.append(lambda t, y: opts.blowup_bound - np.max(np.abs(y)))
            names.append("blow_up")
        if "steady" in opts.names:
            evs.append(lambda t, y: np.max(np.abs(fun(t, y))) - opts.steady_tol)
            names.append("steady")
        for i, g in enumerate(opts.user):
            evs.append((lambda g: lambda t, y: float(g(t, y, args)))(g))
            names.append(f"user{i}")
        for e in evs:
            e.terminal = True
        sol = solve_ivp(fun, span, Y0[b], method=solver, rtol=rtol, atol=atol, events=evs or None, dense_output=True)
        raw["n_steps"][b] = sol.nfev
        if sol.status == 1:
            which = next(i for i, te in enumerate(sol.t_events) if len(te))
            raw["outcome"][b] = f"event:{names[which]}"
            raw["t_stop"][b], raw["y_stop"][b] = sol.t_events[which][0], sol.y_events[which][0]
        else:
            raw["t_stop"][b], raw["y_stop"][b] = sol.t[-1], sol.y[:, -1]
            if sol.status != 0:
                raw["outcome"][b] = "failed"
                raw["messages"][b] = sol.message
        inside = ts <= raw["t_stop"][b]
        if inside.any():
            raw["y"][b, inside] = sol.sol(ts[inside]).T
        raw["valid"][b] = inside
    return raw
