"""integrate(system, y0, t_span, params): batched ODE integration of any system with JAX/diffrax
or SciPy.

The host-side wrapper around the numerics: it checks the arguments (``_checks``), broadcasts
the batch, runs it on one backend (``_batch`` over ``_flow``'s JAX core, or ``_scipy``), reads
statuses from the raw outcome codes (``_status``), repeats once with a stiff solver the runs
that stalled, and returns a Solution. ``flow`` (``_flow``) is the pure JAX core it wraps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from derivations import DynamicalSystem, Params

from ._batch import run_jax

from ._checks import (
    active_events, batch_arrays, check_backend, check_chunk_size, check_dt, check_flag, check_max_steps, check_solver,
    check_span, check_step, check_t_eval, check_tols, check_y0, is_stiff, solver_name,
)
from ._events import Event, EventLike, as_events
from ._filippov import integrate_piecewise
from ._numeric import NumericSystem
from ._outcomes import step_floor
from ._progress import check_progress
from ._scipy import run_scipy
from ._sde import check_paths, check_sde_solver, integrate_sde
from ._solution import Solution
from ._status import run_statuses

if TYPE_CHECKING:
    from diffrax import AbstractSolver
    from scipy.integrate import OdeSolver

__all__ = ["integrate"]

_SCIPY_STIFF_RETRY_MAX_STATES = 400
"""SciPy's implicit methods build their Jacobian from n rhs evaluations; above this many states
a stiff SciPy retry costs more than it can save and is not attempted (use the JAX backend)."""


def integrate(
    system: DynamicalSystem,
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
    n_save: int = 201,
    progress: bool = True,
    chunk_size: int | None = None,
    dt: float | None = None,
    paths: int | None = None,
    seed: int = 0,
) -> Solution:
    """Integrate dy/dt = f(t, y; params) for one initial state or a batch, on any system.

    The function itself only checks its arguments and hands them to the chosen backend; its
    length is the documentation of its options.

    Parameters
    ----------
    system : DynamicalSystem
        A flow (``time == "continuous"``): an ODESystem built by hand, from equations or by
        ``derive``, a K-mode system, or any implementation of the interface.
    y0 : array, shape (..., n_states)
        Initial states; leading axes form the batch (at least one start). Every start must
        lie in the system's ``state_domain`` (e.g. s >= 0 for an eigenvalue s).
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
        ``Condition``); their thresholds live on the objects. Names (BUILTIN_EVENTS):
        "collapse" = Collapse() (tol 1e-8; only where the system declares collapse states),
        "blow_up" = BlowUp() (bound 1e8), "steady" = Steady() (tol 1e-9); pass the object for
        another threshold, e.g. ``Collapse(tol=1e-6)``. A callable g(t, y, params) =
        Condition(g). Pass () for none. Both backends evaluate the same margin definitions;
        event times are root-found.
    solver : str or solver object, optional
        jax: one of JAX_SOLVERS (default "tsit5"; "kvaerno5" for stiff problems) or a diffrax
        solver; scipy: one of SCIPY_METHODS (default "DOP853") or an OdeSolver subclass.
    max_steps : int
        Step budget per trajectory, both backends (jax: attempted steps, scipy: accepted
        steps, and at most 20 * max_steps (+ n per Jacobian) rhs evaluations). Steps below
        DTMIN_FRACTION * (t1 - t0) end a run too.
    retry : bool
        Re-run trajectories that ran out of steps or whose step size collapsed (unless their
        end reads as a collapse or blow-up, below) once with a stiff solver: jax: kvaerno5 with
        8x max_steps; scipy: LSODA with the same max_steps (so a SciPy run costs at most twice
        its budget), for up to 400 states. ``retried`` marks the runs whose result comes
        from the retry; where the retry stops earlier than the first run, with no better
        status, the first run is kept (its message says so).
    n_save : int
        The number of saved times from t0 to t1 when ``t_eval`` is not given (default 201).
    progress : bool
        Show a progress bar (tqdm, on stderr) for calls that run longer than a few seconds;
        never when stderr is not a terminal or with progress=False.
    chunk_size : int, optional
        jax: trajectories per compiled chunk; default automatic (below).
    dt : float, optional
        A fixed step size instead of adaptive steps (no error control: rtol and atol are
        unused, the last step ends on t1), for the explicit JAX solvers ("tsit5", "dopri5",
        "dopri8"); runs that do not finish are not retried. Default None: adaptive steps.

    paths : int, optional
        A stochastic system (one that declares a ``diffusion``): the number of Brownian paths
        each start and parameter value is run on; the Solution's batch shape is then
        ``(paths,) + batch_shape``. Default None: one path, no extra axis. Path i is the same
        Brownian motion for every start and parameter of the batch (common random numbers).
        Not for deterministic systems.
    seed : int
        A stochastic system: the Brownian paths are keyed by ``fold_in(PRNGKey(seed), i)``, so
        a run is reproducible bit for bit and path i does not depend on the batch or the
        number of paths (another ``dt`` draws another path: each step's increment is drawn
        from the path's key and the step's end points).

    Notes
    -----
    Stochastic systems (``system.diffusion`` is a ``Diffusion``): the Ito SDE
    dy = f dt + g dW is solved by diffrax with a fixed step ``dt`` (default (t1 - t0)/1000),
    solver "euler" (Euler-Maruyama: strong order 1/2, weak order 1) or a diffrax Ito solver
    object, on diffrax's ``UnsafeBrownianPath`` per path (``dynamics._sde``). Events are checked at
    every step end (event times to within dt); saved times off the dt grid are interpolated
    linearly between steps (which understates the variance between them: put t_eval on the
    grid); rtol, atol, max_steps, retry, chunk_size and progress do not apply.

    Speed and memory (jax backend). The explicit solvers ("tsit5", "dopri5", "dopri8") run on a
    lane-major kernel (``_lanes``): blocks of lanes advance together, one broadcast right-hand
    side call per stage, with diffrax's tableaus, dense output and step-size rule; a lane whose
    trajectory ends takes the next one, saved times come from the dense output and events are
    located on it. The implicit solvers and diffrax solver objects run ``vmap(diffeqsolve)`` in
    chunks. What is compiled is cached per (system, solver, events, lanes) (the diffrax path
    also per max_steps and number of saved times); times, ``t_eval`` values, tolerances,
    ``dt`` and (kernel) ``max_steps`` are traced values, and batch sizes and the number of saved
    times are padded to a few coarse buckets (kernel: 4, 32, 256 or 512 lanes, a power of two of at
    least 16 saved times; diffrax path: powers of two), so the varied calls of an interactive session compile
    few times. Blocks hold at most 512 lanes on CPU (cache sized; 65536 on accelerators) and
    at most CHUNK_BYTES = 32 MiB of saved output, run on all cores at once, one device per
    block; a system of 64 states or more is never padded (a batch of one runs on one lane).
    ``chunk_size`` sets the lanes. Results do not depend on the lanes, blocks or devices (bit
    for bit within one path; the kernel and the diffrax path agree to the tolerance).
    Peak memory is bounded whatever the batch size B: the returned arrays, about
    B x (n_times x (n_states + 1) + 2 n_states + 8) x 8 bytes, plus at most
    (cores + 1) x CHUNK_BYTES of working memory.

    Returns
    -------
    Solution
        Per trajectory: ``status``, one of STATUSES:

        - "finished": the run reached t1;
        - "collapsed": the Collapse event fired, or the run stopped early (step-size
          collapse, step budget, solver failure) with every collapse state below
          PARTIAL_COLLAPSE_RATIO = 1e-3 of its initial size (a finite-time collapse into a
          singularity of the right-hand side);
        - "partly_collapsed": the run stopped early where one of the sets the system declares
          in ``partial_collapse`` fell below 1e-3 of its initial size (relative to the other
          collapse states, in the system's ``scaling``) while the others stayed finite;
        - "blew_up": the BlowUp event fired, or, with a BlowUp event among the events, the
          run stopped early with max abs(y) above its ``escape`` times max(1, max abs(y0));
        - "steady": the Steady event fired;
        - "event": another event fired (LeaveBox, Condition);
        - "nonunique": a piecewise-smooth system's run reached a switching surface that both
          fields point away from (repelling sliding; the Filippov solution is not unique there);
        - "max_steps", "failed": the run stopped early for none of those reasons (after the
          retry, if any).

        Also ``event`` (the name of the event that ended the run, or of the declared set that
        collapsed), ``event_t``, ``t_end`` and ``final`` (time and state where the run ended),
        ``messages`` (the reason for max_steps / failed / a collapse or blow-up found at an
        early stop / an event already true at t0), ``retried``.

        A system that declares ``switching`` (a piecewise-smooth flow, e.g. an ODESystem with
        Heaviside factors) runs segment by segment (``dynamics._filippov``): on each smooth
        piece with an event at every switching surface, crossing it where both fields point
        the same way across it, sliding along it where both point at it (Filippov's convex
        combination, Utkin's equivalent control), until the equivalent control leaves [0, 1].
        ``segments`` then holds each trajectory's ``Segment``s (side per switching function,
        the surfaces it slides along), ``sliding`` where it ended sliding, ``info["switching"]``
        the surfaces; a host loop runs the trajectories one by one, with one compiled kernel
        per system and sliding set. Every option applies to each segment.

    Raises
    ------
    TypeError
        A system that is not one; text where a number is needed (y0, t_span, t_eval, rtol,
        atol, params values: strings are never read as numbers).
    ValueError
        Wrong shapes; an empty batch; a start outside the system's ``state_domain``;
        reversed or non-finite t_span; unknown backend, solver or event; non-positive
        tolerances; missing, unknown or out-of-domain params (from ``system.check_params``).
    """
    num = NumericSystem.of(system)
    if system.diffusion is not None:
        return _stochastic(num, y0, t_span, params, t_eval, backend, events, solver, n_save, progress, dt, paths,
                           seed)
    if paths is not None:
        raise ValueError(f"paths applies to stochastic systems (a diffusion); {system.name!r} is deterministic")
    run = _checked(num, backend, t_span, rtol, atol, max_steps, t_eval, n_save, events, solver, retry, progress,
                   chunk_size, dt)
    batch_shape, Y0, P = batch_arrays(num, check_y0(y0, num), params)
    if system.switching is not None:
        return _piecewise(system, run, Y0, P, batch_shape, retry)
    out = _run(run, Y0, P, run.solver, run.max_steps, retried=False)
    out["retried"] = np.zeros(len(Y0), dtype=bool)
    if retry and run.dt is None:
        _retry(run, out, Y0, P)
    return _solution(run, out, batch_shape)


@dataclass(frozen=True)
class _Run:
    """The checked options of one ``integrate`` call."""

    num: NumericSystem
    backend: str
    span: tuple[float, float]
    ts: np.ndarray
    rtol: Any
    atol: Any
    max_steps: int
    events: tuple[Event, ...]
    solver: Any
    progress: bool
    chunk_size: Any
    dt: float | None


def _checked(num, backend, t_span, rtol, atol, max_steps, t_eval, n_save, events, solver, retry, progress,
             chunk_size, dt) -> _Run:
    """The options of ``integrate`` checked in its documented order (ValueError/TypeError naming
    the first bad one)."""
    backend = check_backend(backend)
    t0, t1 = check_span(t_span)
    check_tols(rtol=rtol, atol=atol)
    max_steps = check_max_steps(max_steps)
    ts = check_t_eval(t_eval, t0, t1, n_save)
    evs = active_events(num, as_events(events))
    solver = check_solver(solver, backend)
    check_flag(retry, "retry")
    check_progress(progress)
    check_chunk_size(chunk_size)
    dt = check_dt(dt, t0, t1, backend, solver)
    return _Run(num, backend, (t0, t1), ts, rtol, atol, max_steps, evs, solver, progress, chunk_size, dt)


def _run(run: _Run, Y0: np.ndarray, P: dict, solver: Any, max_steps: int, *, retried: bool) -> dict:
    """Run the batch (Y0, P) on the run's backend with ``solver`` and ``max_steps``, and read
    its statuses (``_status.run_statuses``)."""
    args = (run.num, Y0, P, run.ts, run.span, solver, float(run.rtol), float(run.atol), max_steps, run.events)
    if run.backend == "jax":
        raw = run_jax(*args, chunk_size=run.chunk_size, progress=run.progress, dt=run.dt)
    else:
        raw = run_scipy(*args, progress=run.progress)
    return run_statuses(raw, run.num, Y0, P, run.ts, run.span, run.events, solver, max_steps, run.backend,
                        retried=retried)


def _retry_solver(run: _Run) -> tuple[Any, int] | None:
    """The solver and step budget of the stiff retry (None: no retry). jax: the given solver if
    stiff, else kvaerno5, with 8x max_steps; scipy (one trajectory at a time): the given solver
    if stiff, else LSODA (not above _SCIPY_STIFF_RETRY_MAX_STATES states), with the same budget."""
    if run.backend == "scipy":
        if is_stiff(run.solver):
            return run.solver, run.max_steps
        return None if run.num.n > _SCIPY_STIFF_RETRY_MAX_STATES else ("LSODA", run.max_steps)
    return (run.solver if is_stiff(run.solver) else "kvaerno5"), 8 * run.max_steps


def _retry(run: _Run, out: dict, Y0: np.ndarray, P: dict) -> None:
    """Re-run once, in place in ``out``, the trajectories that ``out["retry"]`` marks, with the
    stiff retry solver. A retried run replaces the first one where it ends with another status
    than "max_steps"/"failed" or gets further; otherwise (a stiff method can fail where an
    explicit one came close to t1, e.g. on a NaN it cannot reject) the first run is kept and
    its message says how far the retry got. ``out["retried"]`` marks the replaced ones."""
    again = np.flatnonzero(out["retry"])
    choice = _retry_solver(run)
    if not again.size or choice is None:
        return
    solver, max_steps = choice
    sub = _run(run, Y0[again], {k: v[again] for k, v in P.items()}, solver, max_steps, retried=True)
    better = ~np.isin(sub["status"].astype(str), ("max_steps", "failed")) | (sub["t_end"] > out["t_end"][again])
    take = again[better]
    for key in ("ys", "valid", "t_end", "y_end", "status", "event", "event_t", "steps", "messages"):
        out[key][take] = sub[key][better]
    out["retried"][take] = True
    for b, t_stop in zip(again[~better], sub["t_end"][~better]):
        out["messages"][b] = (f"{out['messages'][b]}; a retry with {solver_name(solver)} stopped earlier, at "
                              f"t = {t_stop:.6g}, so this first run is kept")


def _piecewise(system: DynamicalSystem, run: _Run, Y0: np.ndarray, P: dict, batch_shape: tuple[int, ...],
               retry: bool) -> Solution:
    """A piecewise-smooth flow integrated segment by segment (``_filippov``), each segment one run
    of this function on a mode of the system, with the run's options."""

    def one(mode, y, span, params, t_eval, events):
        return integrate(mode, y, span, params, t_eval=t_eval, backend=run.backend, rtol=run.rtol, atol=run.atol,
                         events=events, solver=run.solver, max_steps=run.max_steps, retry=retry, progress=False,
                         chunk_size=run.chunk_size, dt=None if run.dt is None else min(run.dt, span[1] - span[0]))

    out = integrate_piecewise(system, Y0, P, run.ts, run.span, integrate_mode=one, events=run.events)
    sol = _solution(run, out, batch_shape)
    info = dict(sol.info, switching=system.switching.description)
    return replace(sol, info=info, segments=out["segments"].reshape(batch_shape))


def _stochastic(num, y0, t_span, params, t_eval, backend, events, solver, n_save, progress, dt, paths,
                seed) -> Solution:
    """A stochastic system: every start on seeded Brownian paths (``_sde``)."""
    backend = check_backend(backend)
    if backend != "jax":
        raise ValueError(f"backend must be 'jax' for a stochastic system (diffrax SDE solvers); got {backend!r}")
    t0, t1 = check_span(t_span)
    ts = check_t_eval(t_eval, t0, t1, n_save)
    evs = active_events(num, as_events(events))
    solver = check_sde_solver(solver)
    check_progress(progress)
    if dt is not None:
        dt = check_step(dt, t0, t1)
    paths, seed = check_paths(paths, seed)
    batch_shape, Y0, P = batch_arrays(num, check_y0(y0, num), params)
    out, info, n_paths = integrate_sde(num, Y0, P, ts, (t0, t1), evs, solver, dt, paths, seed)
    out["retried"] = np.zeros(len(out["status"]), dtype=bool)
    run = _Run(num, "jax", (t0, t1), ts, None, None, None, evs, solver, progress, None, info["dt"])
    shape = batch_shape if paths is None else (n_paths,) + batch_shape
    sol = _solution(run, out, shape)
    return replace(sol, info=info)


def _solution(run: _Run, out: dict, batch_shape: tuple[int, ...]) -> Solution:
    """The Solution of the flat results ``out``, reshaped to ``batch_shape``."""
    n_t, n = len(run.ts), run.num.n

    def shape(a, *tail):
        return a.reshape(batch_shape + tail)

    return Solution(
        t=run.ts,
        y=shape(out["ys"], n_t, n),
        valid=shape(out["valid"], n_t),
        status=shape(out["status"]),
        event=shape(out["event"]),
        event_t=shape(out["event_t"]),
        t_end=shape(out["t_end"]),
        y_end=shape(out["y_end"], n),
        n_steps=shape(out["steps"]),
        messages=shape(out["messages"]),
        retried=shape(out["retried"]),
        state_names=run.num.state_names,
        backend=run.backend,
        info={"solver": solver_name(run.solver), "rtol": run.rtol, "atol": run.atol, "dt": run.dt,
              "max_steps": run.max_steps,
              "events": tuple(e.name for e in run.events), "dtmin": float(step_floor(*run.span))},
    )
