"""The pure JAX core of the integration through diffrax, one trajectory at a time, and
``flow``, the public pure flow map built on it.

``trajectory_core`` is ``diffeqsolve`` with what ``integrate`` adds around it: the error norm
that rejects non-finite trial steps, the step size floor, one root-found condition for all
events, and the raw outcome code (``_outcomes``) of each run. It is jit-, vmap- and grad-able;
the batch driver (``_batch``) vmaps and compiles it for the implicit solvers and diffrax solver
objects (the named explicit solvers run on the lane kernel, ``_lanes``, with the same methods
and outcome codes), and ``flow`` returns it to the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from jax import Array
from numpy.typing import ArrayLike

from derivations import DynamicalSystem, Params
from derivations.codegen import check_not_text, is_traced

from ._checks import (
    STIFF_JAX, active_events, check_deterministic, check_flow_times, check_in_domain, check_max_steps, check_solver, check_tols, short,
)
from ._events import Event, EventLike, as_events
from ._numeric import NumericSystem
from ._outcomes import DT_MIN, EVENT, FAILED, FINISHED, MAX_STEPS, START, step_floor

if TYPE_CHECKING:
    from diffrax import AbstractSolver

__all__ = ["finite_rms", "flow", "jax_solver", "trajectory_core"]


def finite_rms(x: Any) -> Any:
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


def jax_solver(solver: Any, rtol: Any, atol: Any) -> Any:
    """The diffrax solver object for a name of JAX_SOLVERS (an object is returned as it is);
    the implicit ones get a Newton root finder at the step tolerances (traced values)."""
    import diffrax
    import optimistix as optx

    if not isinstance(solver, str):
        return solver
    cls = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8,
           "kvaerno5": diffrax.Kvaerno5, "kencarp5": diffrax.KenCarp5}[solver]
    if solver in STIFF_JAX:
        return cls(root_finder=optx.Newton(rtol=rtol, atol=atol))
    return cls()


@lru_cache(maxsize=64)
def trajectory_core(num: NumericSystem, solver: Any, max_steps: int, events: tuple[Event, ...], final_only: bool = False) -> Callable:
    """``one(y0, params, ts, span, tol) -> dict``: one trajectory, pure JAX (jit/vmap/grad).

    ``final_only``: the caller guarantees ts == [t1]; only the end state is saved (no
    interpolation to output times inside the step loop: about 25% less work per step).

    Times (``ts``, ``span`` = (t0, t1)) and tolerances (``tol`` = (rtol, atol)) are traced
    values, so one compiled solver serves every time span, output grid of the same length and
    tolerance. Keys: ys (n_t, n) with the end state held after the end, valid (n_t,), t_end,
    y_end, code (a FINISHED.. code), which (index of the event that fired, -1 if none), steps
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
        stepper = jax_solver(solver, rtol, atol)
        dtmin = step_floor(t0, t1, jnp)
        controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmin=dtmin, force_dtmin=False, norm=finite_rms)
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
            [FINISHED, EVENT, MAX_STEPS, DT_MIN], FAILED,
        )
        code = jnp.where((code == FINISHED) & ~any_finite, FAILED, code)
        which = jnp.asarray(-1)
        if n_ev:
            # the event that fired: the margin that reaches zero first from the stop, by
            # margin / (rate of decrease along the flow); scale-free, unlike the margins
            # themselves (a bound of 1e8 and a tolerance of 1e-8 near a steep blow-up)
            m, dm = jax.jvp(lambda tt, yy: signs * raw_margins(tt, yy, params), (t_end, y_end),
                            (jnp.ones_like(t_end), f(t_end, y_end, params)))
            lead = jnp.where(dm < 0, m / jnp.where(dm < 0, -dm, 1.0), jnp.where(m <= 0, 0.0, jnp.inf))
            which = jnp.where(code == EVENT, jnp.argmin(lead), -1)
            code = jnp.where(start, START, code)
            which = jnp.where(start, start_which, which)
            t_end = jnp.where(start, t0, t_end)
            y_end = jnp.where(start, y0, y_end)
            valid = jnp.where(start, ts <= t0, valid)
            ys = jnp.where(start, jnp.broadcast_to(y0, ys.shape), ys)
        return {"ys": ys, "valid": valid, "t_end": t_end, "y_end": y_end, "code": code, "which": which,
                "steps": sol.stats["num_accepted_steps"], "tries": sol.stats["num_steps"]}

    return one


def flow(
    system: DynamicalSystem,
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
    to y0 and to parameter values, through diffrax's checkpointed adjoint). ``integrate`` runs
    the same methods with validation, broadcasting, statuses and the stiff retry (its explicit
    solvers on the lane kernel: the same steps up to rounding).

    Entries the solver did not reach (it failed or ran out of steps) are NaN; after a
    terminating event (``events``, as in ``integrate``) the event state is held.

    Parameters
    ----------
    system : DynamicalSystem (a flow)
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
        (scalars or JAX values; concrete values are checked with ``system.check_params``, a
        concrete y0 against the system's ``state_domain``).

    Raises
    ------
    TypeError, ValueError
        A system that is not one, a stochastic system, bad times, solver, tolerances or events.
    """
    import jax.numpy as jnp

    num = NumericSystem.of(system)
    check_deterministic(system, "it has no flow map")
    t0, ts, scalar = check_flow_times(t, t0)
    check_tols(rtol=rtol, atol=atol)
    max_steps = check_max_steps(max_steps)
    solver = check_solver(solver, "jax")
    evs = active_events(num, as_events(events))
    one = trajectory_core(num, solver, max_steps, evs)
    ts_j, span, tol = jnp.asarray(ts), jnp.asarray([t0, ts[-1]]), jnp.asarray([float(rtol), float(atol)])

    def phi(y0, params):
        given = num.system.check_params(params, batch=True)
        values = {k: jnp.asarray(float(v) if isinstance(v, sp.Basic) else v, dtype=jnp.float64) for k, v in given.items()}
        check_not_text("y0", y0)
        y0 = jnp.asarray(y0, dtype=jnp.float64)
        if y0.shape != (num.n,):
            raise ValueError(f"y0 must have shape ({num.n},) ({short(num.state_names)}); got {y0.shape}")
        if not is_traced(y0):
            check_in_domain(np.asarray(y0), num.system)
        out = one(y0, values, ts_j, span, tol)
        reached = out["valid"] | ((out["code"] == EVENT) | (out["code"] == START))
        ys = jnp.where(reached[:, None], out["ys"], jnp.nan)
        return ys[0] if scalar else ys

    phi.__doc__ = f"y({'t' if scalar else 'ts'}) of {system.name or 'the system'} from y0 at t0 = {t0}."
    return phi
