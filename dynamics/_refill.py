"""End states of many trajectories with lane refill: no lane waits for its batch's slowest one.

A vmapped ``diffeqsolve`` advances its whole batch in lockstep: every lane takes as many loop
iterations as the slowest, so a batch whose step counts spread (max / mean about 1.4 for a
sweep over parameters) wastes that fraction of its work. Here a fixed set of lanes runs one loop;
a lane whose trajectory ends hands its end state back and takes the next trajectory from the
queue, so lanes stay busy until the queue is empty. The numerics are diffrax's own: the solver's
``init``/``step`` and the ``PIDController``'s ``init``/``adapt_step_size``, with the bookkeeping of
``diffeqsolve``'s loop (a step clipped to end within 100 ulps of t1, a rejected step kept
unchanged), so each trajectory takes the steps ``diffeqsolve`` takes up to rounding (a step
accepted or rejected at the margin: end states agree to the tolerance); only which lane runs it
and when differs.

It serves the path that saves the end state only, with no events and an explicit solver (the
ensemble sweeps); every other call runs ``diffeqsolve`` per lane (``_flow.trajectory_core``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._flow import finite_rms
from ._outcomes import DT_MIN, FAILED, FINISHED, MAX_STEPS, step_floor

__all__ = ["refill_core", "REFILL_FRACTION"]

REFILL_FRACTION = 8
"""Idle lanes are refilled together once at least lanes / REFILL_FRACTION of them wait (or none
runs): re-initialising costs a few right-hand-side evaluations per lane, so it is batched."""


def refill_core(f: Callable, solver: Any, max_steps: int, lanes: int) -> Callable:
    """``run(Y0 (B, n), P {name: (B, ...)}, count, span (2,), tol (2,)) -> dict`` with ``t_end``,
    ``y_end``, ``code`` (FINISHED, MAX_STEPS, DT_MIN or FAILED of ``_outcomes``), ``steps`` (accepted) and
    ``tries`` (attempted), per trajectory, computed on ``lanes`` lanes with refill. Only the
    first ``count`` rows are integrated (a traced value: a block padded to its bucket runs only
    its real rows); the other rows of the result are zeros.

    ``f(t, y, params)`` is the system's JAX right-hand side; ``solver`` an explicit diffrax solver
    instance. Pure JAX: jit it (the caller compiles it once per block shape).
    """
    import diffrax
    import jax
    import jax.numpy as jnp
    import jax.tree_util as jtu

    term = diffrax.ODETerm(lambda t, y, args: f(t, y, args[0]))
    error_order = solver.error_order(term)
    threshold = max(1, lanes // REFILL_FRACTION)

    def run(Y0, P, count, span, tol):
        n = Y0.shape[1]
        B = Y0.shape[0]
        t0, t1 = span[0], span[1]
        controller = diffrax.PIDController(rtol=tol[0], atol=tol[1], dtmin=step_floor(t0, t1, jnp), force_dtmin=False,
                                           norm=finite_rms)
        floor = t1
        for _ in range(100):  # t1 - 100 ulps: a step ending beyond it is clipped to t1 (as diffeqsolve does)
            floor = jnp.nextafter(floor, -jnp.inf)

        def start(i):
            y = Y0[i]
            args = (jtu.tree_map(lambda a: a[i], P),)
            tnext, cstate = controller.init(term, t0, t1, y, None, args, solver.func, error_order)
            cstate = jtu.tree_map(jnp.asarray, cstate)
            tnext = jnp.minimum(tnext, t1)
            sstate = solver.init(term, t0, tnext, y, args)
            return {"i": i, "tprev": jnp.asarray(t0, y.dtype), "tnext": tnext, "y": y, "args": args, "c": cstate,
                    "s": sstate, "jump": jnp.asarray(False), "steps": jnp.asarray(0), "tries": jnp.asarray(0),
                    "code": jnp.asarray(FINISHED)}

        def step(lane):
            y1, y_err, _, sstate, sres = solver.step(term, lane["tprev"], lane["tnext"], lane["y"], lane["args"],
                                                     lane["s"], lane["jump"])
            y_err = jnp.where(jnp.isnan(y_err), jnp.inf, y_err)
            keep, tprev, tnext, jump, cstate, cres = controller.adapt_step_size(
                lane["tprev"], lane["tnext"], lane["y"], y1, lane["args"], y_err, error_order, lane["c"])
            tprev = jnp.minimum(tprev, t1)
            tnext = jnp.where(tnext > floor, jnp.where(keep, t1, tprev + 0.5 * (t1 - tprev)), tnext)
            code = jnp.where(keep & ~(sres == diffrax.RESULTS.successful), FAILED, FINISHED)
            code = jnp.where(cres == diffrax.RESULTS.dt_min_reached, DT_MIN, code)
            tries = lane["tries"] + 1
            code = jnp.where((code == FINISHED) & (tprev < t1) & (tries >= max_steps), MAX_STEPS, code)
            return {**lane, "tprev": tprev, "tnext": tnext, "y": jnp.where(keep, y1, lane["y"]),
                    "s": jtu.tree_map(lambda a, b: jnp.where(keep, a, b), sstate, lane["s"]),
                    "jump": jnp.where(keep, jump, lane["jump"]), "c": cstate,
                    "steps": lane["steps"] + jnp.where(keep, 1, 0), "tries": tries, "code": code}

        def done(lane):
            return (lane["tprev"] >= t1) | (lane["code"] != FINISHED)

        out = {"t_end": jnp.zeros(B + 1, Y0.dtype), "y_end": jnp.zeros((B + 1, n), Y0.dtype),
               "code": jnp.zeros(B + 1, int), "steps": jnp.zeros(B + 1, int), "tries": jnp.zeros(B + 1, int)}
        first = jnp.minimum(jnp.arange(lanes), count - 1)
        state = jax.vmap(start)(first)
        active = jnp.arange(lanes) < count

        def refill(lanes_state):
            state, active, counter = lanes_state
            slot = counter + jnp.cumsum(~active) - 1
            take = ~active & (slot < count)
            fresh = jax.vmap(start)(jnp.where(take, slot, 0))
            state = jtu.tree_map(lambda a, b: jnp.where(take.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), fresh, state)
            return state, active | take, counter + jnp.sum(take)

        def body(carry):
            state, active, counter, out = carry
            state = jax.vmap(step)(state)
            ended = active & jax.vmap(done)(state)
            where = jnp.where(ended, state["i"], B)  # row B collects the lanes that did not end
            code = jnp.where(state["code"] == FINISHED, jnp.where(jnp.all(jnp.isfinite(state["y"]), axis=1),
                                                                   FINISHED, FAILED), state["code"])
            out = {"t_end": out["t_end"].at[where].set(state["tprev"]), "y_end": out["y_end"].at[where].set(state["y"]),
                   "code": out["code"].at[where].set(code), "steps": out["steps"].at[where].set(state["steps"]),
                   "tries": out["tries"].at[where].set(state["tries"])}
            active = active & ~ended
            idle = jnp.sum(~active)
            state, active, counter = jax.lax.cond((counter < count) & ((idle >= threshold) | ~jnp.any(active)), refill,
                                                  lambda c: c, (state, active, counter))
            return state, active, counter, out

        def cond(carry):
            _, active, counter, _ = carry
            return jnp.any(active) | (counter < count)

        _, _, _, out = jax.lax.while_loop(cond, body, (state, active, jnp.minimum(lanes, count), out))
        return {k: v[:B] for k, v in out.items()}

    return run
