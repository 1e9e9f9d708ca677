"""integrate(system, y0, t_span, params): batched ODE integration of any system with JAX/diffrax
or SciPy; flow(system, t): the pure, jit- and grad-able JAX core that integrate wraps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from jax import Array
from numpy.typing import ArrayLike

from derivations import Names, Params, System

from ._events import BlowUp, Event, EventContext, EventLike, as_events
from ._progress import check_progress, progress_bar
from ._solution import Solution

if TYPE_CHECKING:
    from diffrax import AbstractSolver
    from scipy.integrate import OdeSolver

__all__ = ["BUILTIN_EVENTS", "DTMIN_FRACTION", "JAX_SOLVERS", "SCIPY_METHODS", "flow", "integrate"]

BUILTIN_EVENTS = Names.define(
    "BUILTIN_EVENTS",
    {"collapse": "Collapse(collapse_tol): every collapse state within tol of 0.",
     "blow_up": "BlowUp(blowup_bound): max abs(y) reaches the bound.",
     "steady": "Steady(steady_tol): max abs(dy/dt) falls to tol."},
    module=__name__, summary="Event names accepted by integrate(events=...).")
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
_STIFF_JAX = ("kvaerno5", "kencarp5")
_STIFF_SCIPY = ("Radau", "BDF", "LSODA")
_SCIPY_STIFF_RETRY_MAX_STATES = 400
"""SciPy's implicit methods build their Jacobian from n rhs evaluations; above this many states
a stiff SciPy retry costs more than it can save and is not attempted (use the JAX backend)."""

DTMIN_FRACTION = 1e-14
"""Step size floor, as a fraction of t1 - t0 (and at least 16 ulps of t): a step that must fall
below it ends the run ("failed" with a reason, or "blew_up" where the state escaped), so that a
singular trajectory cannot spend max_steps rejected steps or hold a vmapped batch."""

# raw outcome codes, shared by both backends
_FINISHED, _EVENT, _MAX_STEPS, _DT_MIN, _FAILED, _START = range(6)


# -- the system as the numerics see it ----------------------------------------------------------


class _NumericSystem:
    """What integrate needs of a system: names, sizes, collapse states, compiled right-hand sides."""

    REQUIRED = ("state_names", "param_names", "to_jax", "to_numpy", "collapse_indices", "check_params")

    def __init__(self, system: Any):
        self.system = system
        self.state_names = tuple(system.state_names)
        self.param_names = tuple(system.param_names)
        self.n = len(self.state_names)
        self.collapse_indices = tuple(int(i) for i in system.collapse_indices)
        bounds = system.state_bounds() if hasattr(system, "state_bounds") else ((-np.inf, np.inf),) * self.n
        self.state_bounds = tuple((float(lo), float(hi)) for lo, hi in bounds)
        self.f_np = system.to_numpy(checked=False)
        self._f_jax = None

    @property
    def f_jax(self) -> Callable:
        if self._f_jax is None:
            self._f_jax = self.system.to_jax(checked=False)
        return self._f_jax

    def context(self, backend: str) -> EventContext:
        if backend == "jax":
            import jax.numpy as jnp

            return EventContext(jnp, self.f_jax, self.state_names, self.collapse_indices, self.state_bounds)
        return EventContext(np, self.f_np, self.state_names, self.collapse_indices, self.state_bounds)

    @classmethod
    def of(cls, system: Any) -> _NumericSystem:
        missing = [a for a in cls.REQUIRED if not hasattr(system, a)]
        if missing:
            raise TypeError(
                "system must be an ODESystem (derivations.ODESystem, ODESystem.from_equations, derive(spec)) "
                f"or a ModeSystem: anything with {', '.join(cls.REQUIRED)}; got {type(system).__name__}"
            )
        if getattr(system, "is_discrete", False):
            raise ValueError(
                f"{getattr(system, 'name', '') or 'this system'} is a discrete-time map (its rhs is the increment of "
                "one step), not a flow: step it with dynamics.iterate"
            )
        return _numeric(system)


@lru_cache(maxsize=128)
def _numeric(system: Any) -> _NumericSystem:
    return _NumericSystem(system)


# -- input checks -------------------------------------------------------------------------------


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


def _check_tols(**values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive finite number; got {v!r}")


def _check_max_steps(max_steps: Any) -> int:
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int; got {max_steps!r}")
    return int(max_steps)


def _check_solver(solver: Any, backend: str) -> Any:
    """A solver name, or a diffrax solver object (jax) / an OdeSolver subclass (scipy)."""
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


def _solver_name(solver: Any) -> str:
    return solver if isinstance(solver, str) else getattr(solver, "__name__", type(solver).__name__)


def _is_stiff(solver: Any) -> bool:
    name = _solver_name(solver)
    return name.lower() in {s.lower() for s in _STIFF_JAX + _STIFF_SCIPY} or name in ("Kvaerno5", "KenCarp5", "Kvaerno3", "Kvaerno4", "ImplicitEuler")


def _active_events(num: _NumericSystem, events: tuple[Event, ...]) -> tuple[Event, ...]:
    ctx = num.context("numpy")
    return tuple(e for e in events if e.active(ctx))


def _dtmin(t0: Any, t1: Any, xp: Any = np) -> Any:
    return xp.maximum(DTMIN_FRACTION * (t1 - t0), 16 * np.finfo(float).eps * xp.maximum(xp.abs(t0), xp.abs(t1)))


# -- the pure JAX core --------------------------------------------------------------------------


def _finite_rms(x: Any) -> Any:
    """RMS norm of the scaled error, 1e300 where it is not finite: a trial step into a
    singularity (inf or nan) is then rejected and the step shrinks, instead of the
    controller's next step size turning nan (diffrax clips nan to nan)."""
    import jax
    import jax.numpy as jnp
    import optimistix as optx

    leaves = jax.tree_util.tree_leaves(x)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
    safe = jax.tree_util.tree_map(lambda leaf: jnp.where(jnp.isfinite(leaf), leaf, 0.0), x)
    return jnp.where(finite, optx.rms_norm(safe), 1e300)


def _jax_solver(solver: Any, rtol: Any, atol: Any) -> Any:
    import diffrax
    import optimistix as optx

    if not isinstance(solver, str):
        return solver
    cls = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8,
           "kvaerno5": diffrax.Kvaerno5, "kencarp5": diffrax.KenCarp5}[solver]
    if solver in _STIFF_JAX:
        return cls(root_finder=optx.Newton(rtol=rtol, atol=atol))
    return cls()


@lru_cache(maxsize=64)
def _core(num: _NumericSystem, solver: Any, max_steps: int, events: tuple[Event, ...], final_only: bool = False) -> Callable:
    """``one(y0, params, ts, span, tol) -> dict``: one trajectory, pure JAX (jit/vmap/grad).

    ``final_only``: the caller guarantees ts == [t1]; only the end state is saved (no
    interpolation to output times inside the step loop: about 25% less work per step).

    Times (``ts``, ``span`` = (t0, t1)) and tolerances (``tol`` = (rtol, atol)) are traced
    values, so one compiled solver serves every time span, output grid of the same length and
    tolerance. Keys: ys (n_t, n) with the end state held after the end, valid (n_t,), t_end,
    y_end, code (a _FINISHED.. code), which (index of the event that fired, -1 if none), steps
    (accepted), tries (attempted steps: the loop iterations a vmapped lane holds its batch).
    """
    import diffrax
    import jax
    import jax.numpy as jnp
    import optimistix as optx

    f = num.f_jax
    ctx = num.context("jax")
    term = diffrax.ODETerm(lambda t, y, args: f(t, y, args[0]))
    n_ev = len(events)

    def raw_margins(t, y, params):
        return jnp.stack([jnp.asarray(e.margin(t, y, params, ctx), dtype=jnp.float64).reshape(()) for e in events])

    def one(y0, params, ts, span, tol):
        t0, t1 = span[0], span[1]
        rtol, atol = tol[0], tol[1]
        stepper = _jax_solver(solver, rtol, atol)
        dtmin = _dtmin(t0, t1, jnp)
        controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmin=dtmin, force_dtmin=False, norm=_finite_rms)
        event, start, start_which = None, jnp.asarray(False), jnp.asarray(-1)
        if n_ev:
            m0 = raw_margins(t0, y0, params)
            signs = jnp.stack([jnp.asarray(e.orient(m0[i], ctx), dtype=jnp.float64) for i, e in enumerate(events)])
            om0 = signs * m0
            start = jnp.any(om0 <= 0)
            start_which = jnp.where(start, jnp.argmax(om0 <= 0), -1)
            # One real condition, the smallest oriented margin: positive during the run, it
            # falls through zero at the first event; bisection locates it between two steps.
            event = diffrax.Event(
                lambda t, y, args, **kw: jnp.min(signs * raw_margins(t, y, args[0])),
                root_finder=optx.Bisection(rtol=1e-14, atol=1e-14 * (t1 - t0), flip=True),
                direction=False,
            )
        sol = diffrax.diffeqsolve(
            term, stepper, t0, t1, None, y0, (params,),
            saveat=diffrax.SaveAt(t1=True) if final_only else diffrax.SaveAt(ts=ts, t1=True),
            stepsize_controller=controller,
            event=event, max_steps=max_steps, throw=False,
        )
        n_t = ts.shape[0]
        finite = jnp.isfinite(sol.ts) & jnp.all(jnp.isfinite(sol.ys), axis=1)
        # the end state sits in the t1 slot, or (after an event or a failure) in the first
        # slot after the saved times that were reached
        last = jnp.argmax(jnp.where(finite, sol.ts, -jnp.inf))
        any_finite = jnp.any(finite)
        t_end = jnp.where(any_finite, sol.ts[last], t0)
        y_end = jnp.where(any_finite, sol.ys[last], y0)
        if final_only:  # sol.ts = [t_end]: the one output time t1 was reached iff t_end == t1
            valid = finite & (sol.ts == ts)
        else:
            valid = finite[:n_t] & (sol.ts[:n_t] == ts) & (ts <= t_end)
        ys = jnp.where(valid[:, None], sol.ys[:n_t], y_end[None, :])
        r = sol.result
        code = jnp.select(
            [r == diffrax.RESULTS.successful, r == diffrax.RESULTS.event_occurred,
             r == diffrax.RESULTS.max_steps_reached, r == diffrax.RESULTS.dt_min_reached],
            [_FINISHED, _EVENT, _MAX_STEPS, _DT_MIN], _FAILED,
        )
        code = jnp.where((code == _FINISHED) & ~any_finite, _FAILED, code)
        which = jnp.asarray(-1)
        if n_ev:
            # the event that fired: the margin that reaches zero first from the stop, by
            # margin / (rate of decrease along the flow); scale-free, unlike the margins
            # themselves (a bound of 1e8 and a tolerance of 1e-8 near a steep blow-up)
            m, dm = jax.jvp(lambda tt, yy: signs * raw_margins(tt, yy, params), (t_end, y_end),
                            (jnp.ones_like(t_end), f(t_end, y_end, params)))
            lead = jnp.where(dm < 0, m / jnp.where(dm < 0, -dm, 1.0), jnp.where(m <= 0, 0.0, jnp.inf))
            which = jnp.where(code == _EVENT, jnp.argmin(lead), -1)
            code = jnp.where(start, _START, code)
            which = jnp.where(start, start_which, which)
            t_end = jnp.where(start, t0, t_end)
            y_end = jnp.where(start, y0, y_end)
            valid = jnp.where(start, ts <= t0, valid)
            ys = jnp.where(start, jnp.broadcast_to(y0, ys.shape), ys)
        return {"ys": ys, "valid": valid, "t_end": t_end, "y_end": y_end, "code": code, "which": which,
                "steps": sol.stats["num_accepted_steps"], "tries": sol.stats["num_steps"]}

    return one


def flow(
    system: System,
    t: ArrayLike,
    *,
    t0: float = 0.0,
    solver: str | AbstractSolver = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    events: EventLike | Sequence[EventLike] = (),
) -> Callable[[ArrayLike, Params], Array]:
    """The flow map of ``system`` as a pure JAX function: ``phi(y0, params) -> y(t)``.

    phi solves dy/dt = f(t, y; params), y(t0) = y0 with diffrax and returns y at the times ``t``:
    shape (n_states,) for a scalar t (the time-t map), (len(t), n_states) for a 1-D t. It is
    pure: it composes with ``jax.jit``, ``jax.vmap`` and ``jax.grad`` (derivatives with respect
    to y0 and to parameter values, through diffrax's checkpointed adjoint). ``integrate`` wraps
    the same core with validation, broadcasting, statuses and the stiff retry.

    Entries the solver did not reach (it failed or ran out of steps) are NaN; after a
    terminating event (``events``, as in ``integrate``) the event state is held.

    Parameters
    ----------
    system : ODESystem or ModeSystem
        Any system with state_names, param_names, to_jax, to_numpy, collapse_indices, check_params.
    t : float or 1-D array
        Output time(s): strictly increasing, >= t0, the last > t0 (it is the end of the run).
    t0 : float
        Initial time.
    solver, rtol, atol, max_steps : as in ``integrate`` (JAX names or a diffrax solver object).
    events : as in ``integrate``; default none.

    Returns
    -------
    callable
        ``phi(y0, params)``: y0 of shape (n_states,), params a dict keyed by parameter name
        (scalars or JAX values; concrete values are checked with ``system.check_params``).

    Raises
    ------
    TypeError, ValueError
        A system that is not one, bad times, solver, tolerances or events.
    """
    import jax.numpy as jnp

    num = _NumericSystem.of(system)
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
    _check_tols(rtol=rtol, atol=atol)
    max_steps = _check_max_steps(max_steps)
    solver = _check_solver(solver, "jax")
    evs = _active_events(num, as_events(events))
    one = _core(num, solver, max_steps, evs)
    ts_j, span, tol = jnp.asarray(ts), jnp.asarray([t0, ts[-1]]), jnp.asarray([float(rtol), float(atol)])

    def phi(y0, params):
        given = num.system.check_params(params, batch=True)
        values = {k: jnp.asarray(float(v) if isinstance(v, sp.Basic) else v, dtype=jnp.float64) for k, v in given.items()}
        y0 = jnp.asarray(y0, dtype=jnp.float64)
        if y0.shape != (num.n,):
            raise ValueError(f"y0 must have shape ({num.n},) ({_short(num.state_names)}); got {y0.shape}")
        out = one(y0, values, ts_j, span, tol)
        reached = out["valid"] | ((out["code"] == _EVENT) | (out["code"] == _START))
        ys = jnp.where(reached[:, None], out["ys"], jnp.nan)
        return ys[0] if scalar else ys

    phi.__doc__ = f"y({'t' if scalar else 'ts'}) of {getattr(system, 'name', '') or 'the system'} from y0 at t0 = {t0}."
    return phi


# -- integrate: the host-side wrapper -----------------------------------------------------------


def integrate(
    system: System,
    y0: ArrayLike,
    t_span: Sequence[float],
    params: Params,
    *,
    t_eval: ArrayLike | None = None,
    backend: str = "jax",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    events: EventLike | Sequence[EventLike] = ("collapse", "blow_up"),
    solver: str | AbstractSolver | type[OdeSolver] | None = None,
    max_steps: int = 100_000,
    retry: bool = True,
    collapse_tol: float = 1e-8,
    blowup_bound: float = 1e8,
    steady_tol: float = 1e-9,
    n_save: int = 201,
    progress: bool = True,
    chunk_size: int | None = None,
) -> Solution:
    """Integrate dy/dt = f(t, y; params) for one initial state or a batch, on any system.

    Parameters
    ----------
    system : ODESystem (built by hand, from equations, or by ``derive``) or ModeSystem
        Anything with state_names, param_names, to_jax/to_numpy, collapse_indices, check_params.
    y0 : array, shape (..., n_states)
        Initial states; leading axes form the batch.
    t_span : (t0, t1)
        t1 > t0, both finite.
    params : dict
        Keyed by parameter name, checked by ``system.check_params(params, batch=True)``; values
        are scalars or arrays broadcasting against the batch shape (parameter sweeps).
    t_eval : 1-D array, optional
        Times to save (increasing, within t_span); default ``n_save`` points from t0 to t1.
    backend : "jax" or "scipy"
        "jax": diffrax, jit + vmap, on a GPU when JAX sees one. "scipy": the SciPy solvers
        stepped one trajectory at a time (the reference).
    rtol, atol : float
        Relative and absolute tolerances of the adaptive step (> 0; defaults 1e-8, 1e-10).
    events : sequence of Event objects, names or callables
        Terminating events (see ``dynamics.Collapse``, ``BlowUp``, ``Steady``, ``LeaveBox``,
        ``Condition``). Shorthands: "collapse" = Collapse(collapse_tol) (only where the system
        declares collapse states), "blow_up" = BlowUp(blowup_bound), "steady" =
        Steady(steady_tol), a callable g(t, y, params) = Condition(g). Pass () for none.
        Both backends evaluate the same margin definitions; event times are root-found.
    solver : str or solver object, optional
        jax: one of JAX_SOLVERS (default "tsit5"; "kvaerno5" for stiff problems) or a diffrax
        solver; scipy: one of SCIPY_METHODS (default "DOP853") or an OdeSolver subclass.
    max_steps : int
        Step budget per trajectory, both backends (jax: attempted steps, scipy: accepted
        steps, and at most 20 * max_steps (+ n per Jacobian) rhs evaluations). Steps below
        DTMIN_FRACTION * (t1 - t0) end a run too.
    retry : bool
        Re-run trajectories that ran out of steps or whose step size collapsed (not blow-ups)
        once with a stiff solver: jax: kvaerno5 with 8x max_steps; scipy: LSODA with the same
        max_steps (so a SciPy run costs at most twice its budget), for up to 400 states.
        ``retried`` marks them.
    collapse_tol, blowup_bound, steady_tol : float
        The thresholds of the shorthand events "collapse", "blow_up" and "steady" (> 0).
    n_save : int
        The number of saved times from t0 to t1 when ``t_eval`` is not given (default 201).
    progress : bool
        Show a progress bar (tqdm, on stderr) for calls that run longer than a few seconds;
        never when stderr is not a terminal or with progress=False.
    chunk_size : int, optional
        jax: trajectories per compiled chunk; default automatic (below).

    Notes
    -----
    Speed and memory (jax backend). The batch runs in chunks through one solver compiled
    per (system, solver, events, max_steps, number of saved times, chunk bucket): times,
    ``t_eval`` values and tolerances are traced values and batch sizes are padded to
    power-of-two buckets, so the varied calls of an interactive session compile once. Chunks
    hold at most 512 trajectories on CPU (cache sized; 65536 on accelerators) and at most
    CHUNK_BYTES = 32 MiB of saved output; they run on all cores at once and are sharded over
    all local devices (``jax.sharding``; a no-op on one device). ``t_eval=[t1]`` saves only
    the end state (the fastest path); there, with no events, an explicit solver and one
    device, lanes are refilled: a lane whose trajectory ends takes the next one from the queue,
    so no lane waits for the slowest of its chunk (a vmapped batch otherwise advances in
    lockstep; step counts spread by about 1.4x over a parameter sweep). ``chunk_size`` is then
    the number of lanes. Results do not depend on chunking or devices (bit for bit within one
    path; the refill path agrees with the per-lane one to the tolerance).
    Peak memory is bounded whatever the batch size B: the returned arrays, about
    B x (n_times x (n_states + 1) + 2 n_states + 8) x 8 bytes, plus at most
    (cores + 1) x CHUNK_BYTES of working memory.

    Returns
    -------
    Solution
        Per trajectory: ``status`` (finished, collapsed, blew_up, steady, event, max_steps,
        failed), ``event`` (the name of the event that ended the run), ``event_t``, ``t_end``
        and ``final`` (time and state where the run ended), ``messages`` (the reason for
        max_steps / failed / a blow-up found by step collapse).

    Raises
    ------
    TypeError, ValueError
        A system that is not one; wrong shapes; reversed or non-finite t_span; unknown
        backend, solver or event; non-positive tolerances; missing, unknown or out-of-domain
        params (from ``system.check_params``).
    """
    num = _NumericSystem.of(system)
    if backend not in ("jax", "scipy"):
        raise ValueError(f"backend={backend!r} is not allowed; choose 'jax' or 'scipy'")
    t0, t1 = _check_span(t_span)
    _check_tols(rtol=rtol, atol=atol, collapse_tol=collapse_tol, blowup_bound=blowup_bound, steady_tol=steady_tol)
    max_steps = _check_max_steps(max_steps)
    ts = _check_t_eval(t_eval, t0, t1, n_save)
    evs = _active_events(num, as_events(events, collapse_tol=collapse_tol, blowup_bound=blowup_bound, steady_tol=steady_tol))
    solver = _check_solver(solver, backend)
    if not isinstance(retry, bool):
        raise TypeError(f"retry must be True or False; got {retry!r}")
    check_progress(progress)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")

    try:
        y0 = np.asarray(y0, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"y0 must be numeric, shape (..., {num.n}); got {y0!r:.80}") from None
    if y0.ndim == 0 or y0.shape[-1] != num.n:
        raise ValueError(
            f"y0 must have shape (..., {num.n}) with the last axis holding the states "
            f"({_short(num.state_names)}); got shape {y0.shape}"
        )
    if not np.all(np.isfinite(y0)):
        raise ValueError("y0 must be finite")
    checked = num.system.check_params(params, batch=True)
    values = {k: np.asarray(float(v) if isinstance(v, sp.Basic) else v, dtype=float) for k, v in checked.items()}
    # per-mode parameters (a ModeSystem's data spectrum) carry a trailing mode axis; the rest is batch
    trailing = {k: tuple(s) for k, s in dict(getattr(num.system, "param_shapes", None) or {}).items()}
    leading = {k: v.shape[: v.ndim - len(trailing.get(k, ()))] for k, v in values.items()}
    try:
        batch_shape = np.broadcast_shapes(y0.shape[:-1], *leading.values())
    except ValueError:
        shapes = {k: v.shape for k, v in values.items()}
        raise ValueError(
            f"params values must broadcast against the batch shape {y0.shape[:-1]} of y0; got shapes {shapes}"
        ) from None
    B = int(np.prod(batch_shape))
    Y0 = np.ascontiguousarray(np.broadcast_to(y0, batch_shape + (num.n,)).reshape(B, num.n))
    P = {
        k: np.ascontiguousarray(
            np.broadcast_to(v, batch_shape + trailing.get(k, ())).reshape((B,) + trailing.get(k, ()))
        )
        for k, v in values.items()
    }

    def run(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs):
        if backend == "jax":
            return _run_jax(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, chunk_size=chunk_size,
                            progress=progress)
        return _run_scipy(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, progress=progress)

    raw = run(num, Y0, P, ts, (t0, t1), solver, float(rtol), float(atol), max_steps, evs)
    out = _classify(raw, num, Y0, P, ts, (t0, t1), evs, solver, max_steps, backend, retried=False)
    out["retried"] = np.zeros(B, dtype=bool)
    again = np.flatnonzero(out["retry"])
    if retry and again.size:
        solver2, steps2 = solver, 8 * max_steps
        if backend == "scipy":  # SciPy steps one trajectory at a time: the same budget, LSODA
            solver2, steps2 = (solver if _is_stiff(solver) else "LSODA"), max_steps
            if num.n > _SCIPY_STIFF_RETRY_MAX_STATES and not _is_stiff(solver):
                solver2 = None
        elif not _is_stiff(solver):
            solver2 = "kvaerno5"
        if solver2 is not None:
            sub_P = {k: v[again] for k, v in P.items()}
            sub = run(num, Y0[again], sub_P, ts, (t0, t1), solver2, float(rtol), float(atol), steps2, evs)
            sub = _classify(sub, num, Y0[again], sub_P, ts, (t0, t1), evs, solver2, steps2, backend, retried=True)
            for key in ("ys", "valid", "t_end", "y_end", "status", "event", "event_t", "steps", "messages"):
                out[key][again] = sub[key]
            out["retried"][again] = True
    shape = lambda a, *tail: a.reshape(batch_shape + tail)
    return Solution(
        t=ts,
        y=shape(out["ys"], len(ts), num.n),
        valid=shape(out["valid"], len(ts)),
        status=shape(out["status"]),
        event=shape(out["event"]),
        event_t=shape(out["event_t"]),
        t_end=shape(out["t_end"]),
        y_end=shape(out["y_end"], num.n),
        n_steps=shape(out["steps"]),
        messages=shape(out["messages"]),
        retried=shape(out["retried"]),
        state_names=num.state_names,
        backend=backend,
        info={"solver": _solver_name(solver), "rtol": rtol, "atol": atol, "max_steps": max_steps,
              "events": tuple(e.name for e in evs), "dtmin": float(_dtmin(t0, t1))},
    )


# -- statuses and reasons ------------------------------------------------------------------------


def _classify(raw, num, Y0, P, ts, span, evs, solver, max_steps, backend, retried) -> dict:
    """Readable statuses, event names and times, and reasons, from the raw outcome codes."""
    B = len(Y0)
    status = np.full(B, "finished", dtype=object)
    event = np.full(B, "", dtype=object)
    event_t = np.full(B, np.nan)
    messages = np.array(raw["messages"], dtype=object)
    again = np.zeros(B, dtype=bool)
    blow = next((e for e in evs if isinstance(e, BlowUp)), None)
    code, which, t_end, y_end = raw["code"], raw["which"], raw["t_end"], raw["y_end"]
    fired = (code == _EVENT) | (code == _START)
    for i, e in enumerate(evs):
        hit = fired & (which == i)
        status[hit], event[hit], event_t[hit] = e.status, e.name, t_end[hit]
        for b in np.flatnonzero(hit & (code == _START)):
            messages[b] = f"the initial state already satisfies the event {e.name!r}: the run ends at t0"
    for b in np.flatnonzero(~fired & (code != _FINISHED)):
        c = int(code[b])
        scale = max(1.0, float(np.max(np.abs(Y0[b]))))
        size = float(np.max(np.abs(y_end[b])))
        if blow is not None and size > blow.escape * scale:
            status[b], event[b], event_t[b] = blow.status, blow.name, t_end[b]
            messages[b] = (
                f"finite-time blow-up: the step size collapsed at t = {t_end[b]:.10g} with max|y| = {size:.3g} "
                f"(> {blow.escape:g} x max(1, max|y0|)); the blow-up time is located to about the step size floor"
            )
            continue
        shrunk = _full_collapse(num, Y0[b], y_end[b])
        if shrunk is not None:
            status[b], event[b], event_t[b] = "collapsed", "collapse", t_end[b]
            messages[b] = (
                f"finite-time collapse: the step size collapsed at t = {t_end[b]:.10g} as every collapse state fell "
                f"to {shrunk:.2g} of its initial size, where the right-hand side is singular (the run cannot continue "
                "past it; the collapse time is located to about the step size floor)"
            )
            continue
        part = _partial_collapse(num, Y0[b], y_end[b])
        if part is not None:
            label, ratio = part
            status[b], event[b], event_t[b] = "partly_collapsed", f"{label} collapse", t_end[b]
            messages[b] = (
                f"the {label} collapsed at t = {t_end[b]:.10g} while the other states stayed finite: its states fell "
                f"to {ratio:.2g} of their initial size, where the right-hand side is singular (a finite-time "
                "collapse of a subset of the states; the run cannot continue past it)"
            )
            continue
        status[b] = "max_steps" if c == _MAX_STEPS else "failed"
        again[b] = c in (_MAX_STEPS, _DT_MIN)
        messages[b] = _reason(c, num, y_end[b], {k: v[b] for k, v in P.items()}, t_end[b], span, solver, max_steps,
                              backend, retried, str(messages[b]))
    return {"ys": raw["ys"], "valid": raw["valid"], "t_end": np.asarray(t_end, dtype=float), "y_end": y_end,
            "status": status, "event": event, "event_t": event_t, "steps": raw["steps"], "messages": messages,
            "retry": again}


PARTIAL_COLLAPSE_RATIO = 1e-3
"""A declared subset of states counts as collapsed at a failure when its size fell below this
fraction of its initial size, relative to how far the rest of the collapse states shrank (in
the system's scaling, where it declares one)."""


def _full_collapse(num: _NumericSystem, y0: np.ndarray, y: np.ndarray) -> float | None:
    """The size ratio max|y_c| / max|y0_c| over the collapse states, if a failed run stopped with
    all of them below PARTIAL_COLLAPSE_RATIO of their initial size (and the other states finite):
    a finite-time collapse into a singularity of the right-hand side, short of any Collapse tol."""
    idx = list(num.collapse_indices)
    if not idx or not np.all(np.isfinite(y)):
        return None
    start = float(np.max(np.abs(y0[idx])))
    if start <= 0:
        return None
    ratio = float(np.max(np.abs(y[idx]))) / start
    return ratio if ratio <= PARTIAL_COLLAPSE_RATIO else None


def _partial_collapse(num: _NumericSystem, y0: np.ndarray, y: np.ndarray) -> tuple[str, float] | None:
    """(label, size ratio) if the run stopped where one of the system's declared partial-collapse
    sets (``system.partial_collapse``) vanished while the other collapse states did not."""
    sets = getattr(num.system, "partial_collapse", None) or {}
    if not sets or not np.all(np.isfinite(y)):
        return None
    names = num.state_names
    scaling = getattr(num.system, "scaling", None) or {}

    def ratio(idx):
        start = float(np.max(np.abs(y0[idx])))
        return float(np.max(np.abs(y[idx]))) / start if start > 0 else np.inf

    def power(flat_name):
        return float(scaling.get(flat_name.rsplit("_", 1)[0], scaling.get(flat_name, 1)) or 1)

    for label, members in sets.items():
        idx = [names.index(n) for n in members if n in names]
        rest = [i for i in num.collapse_indices if i not in idx]
        if not idx or not rest:
            continue
        r_set, r_rest = ratio(idx), ratio(rest)
        # compare sizes in the same scaling: a set of power a against the rest of power b
        exponent = power(names[idx[0]]) / power(names[rest[0]])
        if r_set <= PARTIAL_COLLAPSE_RATIO * r_rest**exponent:
            return label, r_set
    return None


def _fastest_rate(num: _NumericSystem, y: np.ndarray, params: dict, t: float) -> float | None:
    """Spectral radius of the Jacobian at y (central differences), for systems of <= 64 states."""
    if num.n > 64 or not np.all(np.isfinite(y)):
        return None
    with np.errstate(all="ignore"):
        scale = np.abs(y)
        h = 1e-6 * np.where(scale > 0, scale, max(float(np.max(scale)), 1e-150))
        J = np.empty((num.n, num.n))
        for i in range(num.n):
            e = np.zeros(num.n)
            e[i] = h[i]
            J[:, i] = (np.asarray(num.f_np(t, y + e, params)) - np.asarray(num.f_np(t, y - e, params))) / (2 * h[i])
        if not np.all(np.isfinite(J)):
            return None
        return float(np.max(np.abs(np.linalg.eigvals(J))))


def _reason(code, num, y, params, t_stop, span, solver, max_steps, backend, retried, own) -> str:
    t0, t1 = span
    where = f"at t = {t_stop:.6g} (t1 = {t1:g}) with max|y| = {np.max(np.abs(y)):.3g}"
    with np.errstate(all="ignore"):
        dy = np.asarray(num.f_np(t_stop, y, params), dtype=float)
    rate = _fastest_rate(num, y, params, t_stop)
    stiff = (
        f"; the Jacobian's fastest rate there is |lambda| = {rate:.3g} (time scale {1 / rate:.3g})" if rate else ""
    ) + f", max|dy/dt| = {np.max(np.abs(dy)):.3g}"
    hint = (
        "the system stiffens there (its rates grow, e.g. as states approach a point where the right-hand side "
        "is singular)"
    )
    if _is_stiff(solver):
        advice = (f"{'after the retry, ' if retried else ''}already with a stiff solver: a larger max_steps or "
                  "looser tolerances may reach further, or end the run earlier with an event (e.g. Collapse)")
    else:
        advice = ("try a stiff solver (solver='kvaerno5' with jax, 'Radau' or 'LSODA' with scipy), looser "
                  "tolerances or a larger max_steps")
    name = _solver_name(solver)
    extra = f"; {own}" if own else ""
    if code == _MAX_STEPS:
        return f"max_steps={max_steps} reached before t1 {where}{stiff} ({name}{extra}): {hint}; {advice}"
    if code == _DT_MIN:
        dtmin = float(_dtmin(t0, t1))
        return f"the step size collapsed below dtmin = {dtmin:.3g} {where}{stiff} ({name}{extra}): {hint}; {advice}"
    if not np.all(np.isfinite(dy)):
        return f"the right-hand side is not finite {where} ({name}{extra}): the state left the system's domain"
    return f"the solver stopped early {where}{stiff} ({name}{extra}): {hint}; {advice}"


# -- JAX / diffrax backend -------------------------------------------------------------------


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
    return 1 << max(0, int(np.floor(np.log2(max(x, 1.0)))))


def _pow2_ceil(x: int) -> int:
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
def _compiled(num: _NumericSystem, solver: Any, max_steps: int, events: tuple[Event, ...], n_t: int, lanes: int,
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

    from ._sharding import batch_shardings

    batched = jax.vmap(_core(num, solver, max_steps, events, final_only), in_axes=(0, 0, None, None, None))
    lane, rep = batch_shardings(devices)
    if lane is None:
        fn = jax.jit(batched)
    else:
        fn = jax.jit(batched, in_shardings=(lane, lane, rep, rep, rep), out_shardings=lane)
    f64 = jnp.float64
    shapes = dict(getattr(num.system, "param_shapes", None) or {})
    args = (jax.ShapeDtypeStruct((lanes, num.n), f64),
            {k: jax.ShapeDtypeStruct((lanes, *shapes.get(k, ())), f64) for k in num.param_names},
            jax.ShapeDtypeStruct((n_t,), f64), jax.ShapeDtypeStruct((2,), f64), jax.ShapeDtypeStruct((2,), f64))
    return fn.lower(*args).compile()


REFILL_BLOCK = 16
"""Trajectories per call of the refill path, in units of its lanes: a call ends when its last
lanes drain (about (max - mean) / (REFILL_BLOCK x mean) of its work), and calls are what the
cores share and the progress bar counts."""


@lru_cache(maxsize=64)
def _compiled_refill(num: _NumericSystem, solver: Any, max_steps: int, lanes: int, block: int) -> Callable:
    """The refill loop (``_refill.refill_core``) compiled ahead of time for one block shape:
    ``fn(Y0 (block, n), P {name: (block, *param_shape)}, count, span (2,), tol (2,)) -> dict``."""
    import jax
    import jax.numpy as jnp

    from ._refill import refill_core

    fn = jax.jit(refill_core(num.f_jax, _jax_solver(solver, None, None), max_steps, lanes))
    f64 = jnp.float64
    shapes = dict(getattr(num.system, "param_shapes", None) or {})
    args = (jax.ShapeDtypeStruct((block, num.n), f64),
            {k: jax.ShapeDtypeStruct((block, *shapes.get(k, ())), f64) for k in num.param_names},
            jax.ShapeDtypeStruct((), jnp.int64), jax.ShapeDtypeStruct((2,), f64), jax.ShapeDtypeStruct((2,), f64))
    return fn.lower(*args).compile()


def _run_refill(num, Y0, P, span, solver, rtol, atol, max_steps, devices, *, chunk_size=None, progress=True) -> dict:
    """End states only, no events, an explicit solver, one device: blocks of trajectories, each
    run by one refill loop of ``lanes`` lanes (``_refill``), ``host_workers`` blocks at a time.
    Blocks are balanced over the workers; a block's arrays are padded to a power of two, but only
    its real rows run."""
    from ._sharding import host_workers

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


def _run_jax(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, *, chunk_size=None, progress=True) -> dict:
    """Run the batch in chunks of a bucketed size through one compiled solver.

    Lanes are padded to the bucket with copies of a real lane (results dropped), chunks run
    ``host_workers`` at a time (each lane's result does not depend on its neighbours, so
    chunking and padding change nothing but speed). Lanes are not reordered by difficulty:
    a pilot run at rtol 1e-4 cost 27% of the run's steps and predicted step counts too poorly
    (rank correlation 0.6; chunk lockstep waste 1.40 -> 1.27) to pay (benchmarks/integrate.py).
    """
    from ._sharding import batch_shardings, host_workers, local_devices

    B, n, n_t = len(Y0), num.n, len(ts)
    devices = local_devices()
    if n_t == 1 and ts[0] == span[1] and not evs and len(devices) == 1 and not _is_stiff(solver):
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


# -- SciPy backend -------------------------------------------------------------------------------


class _Budget(Exception):
    """Raised inside a SciPy step when the rhs evaluation budget is spent."""


def _run_scipy(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, *, progress=True) -> dict:
    B, n_t, n = len(Y0), len(ts), num.n
    raw = {
        "ys": np.zeros((B, n_t, n)), "valid": np.zeros((B, n_t), dtype=bool), "t_end": np.zeros(B),
        "y_end": np.zeros((B, n)), "code": np.zeros(B, dtype=int), "which": np.full(B, -1),
        "steps": np.zeros(B, dtype=int), "messages": np.full(B, "", dtype=object),
    }
    with np.errstate(all="ignore"), progress_bar(B, "integrate (scipy)", progress, unit="traj") as bar:
        for b in range(B):  # overflow on the way to a blow-up is expected, not news
            r = _scipy_one(num, Y0[b], {k: v[b] for k, v in P.items()}, ts, span, solver, rtol, atol, max_steps, evs)
            for k, v in r.items():
                raw[k][b] = v
            bar.update(1)
    return raw


def _scipy_one(num, y0, params, ts, span, solver, rtol, atol, max_steps, evs) -> dict:
    from scipy import integrate as si
    from scipy.optimize import brentq

    t0, t1 = span
    n_t = len(ts)
    ctx = num.context("numpy")
    ys, valid = np.empty((n_t, num.n)), np.zeros(n_t, dtype=bool)

    def end(code, t_end, y_end, which=-1, steps=0, message=""):
        rest = ~valid
        ys[rest] = y_end
        return {"ys": ys, "valid": valid, "t_end": t_end, "y_end": y_end, "code": code, "which": which,
                "steps": steps, "messages": message}

    signs = np.ones(len(evs))
    if evs:
        m0 = np.array([float(e.margin(t0, y0, params, ctx)) for e in evs])
        signs = np.array([float(e.orient(m, ctx)) for e, m in zip(evs, m0)])
        fired = np.flatnonzero(signs * m0 <= 0)
        if fired.size:
            valid[:] = ts <= t0
            ys[valid] = y0
            return end(_START, t0, y0.copy(), int(fired[0]))

    def margins(t, y):
        return signs * np.array([float(e.margin(t, y, params, ctx)) for e in evs])

    stiff = _is_stiff(solver)
    budget = 20 * max_steps + (num.n * max_steps if stiff else 0)
    nfev = [0]

    def fun(t, y):
        nfev[0] += 1
        if nfev[0] > budget:
            raise _Budget
        return np.asarray(num.f_np(t, y, params), dtype=float)

    cls = getattr(si, solver) if isinstance(solver, str) else solver
    k = 0
    if ts[0] == t0:
        ys[0], valid[0], k = y0, True, 1
    try:
        ode = cls(fun, t0, y0.copy(), t1, rtol=rtol, atol=atol)
    except _Budget:  # pragma: no cover - the first evaluations cannot spend a budget >= 20
        return end(_MAX_STEPS, t0, y0.copy(), message="rhs evaluation budget spent")
    steps, dtmin = 0, float(_dtmin(t0, t1))
    while True:
        t_old, y_old = ode.t, ode.y.copy()
        if steps >= max_steps:
            return end(_MAX_STEPS, t_old, y_old, steps=steps)
        if steps and ode.step_size is not None and ode.step_size < dtmin:
            return end(_DT_MIN, t_old, y_old, steps=steps)
        try:
            message = ode.step()
        except _Budget:
            return end(_MAX_STEPS, t_old, y_old, steps=steps, message=f"rhs evaluation budget ({budget}) spent")
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, OverflowError) as err:
            return end(_FAILED, t_old, y_old, steps=steps, message=f"{type(err).__name__}: {err}")
        if ode.status == "failed":
            return end(_DT_MIN if "step size" in str(message) else _FAILED, t_old, y_old, steps=steps, message=str(message))
        steps += 1
        t_new, y_new = ode.t, ode.y
        if not np.all(np.isfinite(y_new)):
            return end(_FAILED, t_old, y_old, steps=steps, message="non-finite state")
        dense, t_stop, which = None, t_new, -1
        if evs:
            m_new = margins(t_new, y_new)
            if np.min(m_new) <= 0:
                # each event that crossed in this step gets its own root; the earliest fired
                dense = ode.dense_output()
                roots = []
                for i in np.flatnonzero(m_new <= 0):
                    g = lambda t, i=i, d=dense: float(margins(t, d(t))[i])
                    root = t_new
                    if g(t_old) > 0 and g(t_new) <= 0:
                        root = brentq(g, t_old, t_new, xtol=1e-14 * (t1 - t0), rtol=4 * np.finfo(float).eps)
                    roots.append((root, int(i)))
                t_stop, which = min(roots)
        j = k + int(np.searchsorted(ts[k:], t_stop, side="right"))
        if j > k:
            if dense is None:
                dense = ode.dense_output()
            ys[k:j] = np.asarray(dense(ts[k:j])).T
            if t_stop == t_new and ts[j - 1] == t_new:
                ys[j - 1] = y_new
            valid[k:j] = True
            k = j
        if which >= 0:
            y_stop = y_new.copy() if t_stop == t_new else np.asarray(dense(t_stop), dtype=float)
            return end(_EVENT, t_stop, y_stop, which, steps)
        if ode.status == "finished":
            return end(_FINISHED, t_new, y_new.copy(), steps=steps)
