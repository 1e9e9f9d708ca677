"""The lane-major Runge-Kutta kernel: explicit Runge-Kutta on a block of L trajectories at once.

A vmapped ``diffeqsolve`` carries every trajectory through diffrax's per-lane machinery (solver
and controller state as pytrees, ``where`` per leaf, a loop written for one trajectory): on an
ensemble of small systems that bookkeeping, not the right-hand side, is the cost. Here the
state of a block of L trajectories is one array, held component-major as (n, L) (one
contiguous row of lanes per state component), and every stage is one broadcast
right-hand-side call on it, as the ensemble kernels of DiffEqGPU.jl do. The numerics are diffrax's: the Butcher tableaus
and dense-output interpolants of ``Tsit5``, ``Dopri5`` and ``Dopri8`` (diffrax's own), the
initial step and the ``PIDController`` step-size rule (integral control, safety 0.9, factors in
[0.2, 10], the step floor, a step clipped to end within 100 ulps of t1), so each trajectory
takes the steps ``diffeqsolve`` takes up to rounding.

Lanes are refilled: a lane whose trajectory ends writes its result and takes the next
trajectory of its block, so no lane waits for the slowest. Saved times are filled from the dense
output of the step that passes them (not by clipping steps), events are checked at every step
end and located on the dense output, and each run ends with the raw outcome codes of
``_outcomes``. Implicit solvers, solver objects, adjoints and ``flow``'s jit/vmap/grad core stay
diffrax's (``_flow.trajectory_core``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ._events import Event
from ._numeric import NumericSystem
from ._outcomes import DT_MIN, EVENT, FAILED, FINISHED, MAX_STEPS, START, step_floor

__all__ = ["LANE_SOLVERS", "LARGE_STATE", "LOOPED_RHS_OPS", "REFILL_FRACTION", "Tableau", "lane_kernel", "tableau"]

LANE_SOLVERS = {"tsit5": "Tsit5", "dopri5": "Dopri5", "dopri8": "Dopri8"}
"""The explicit solvers the kernel runs, by ``JAX_SOLVERS`` name, with their diffrax classes."""

REFILL_FRACTION = 8
"""Idle lanes are refilled together once at least lanes / REFILL_FRACTION of them wait (or none
runs): starting a trajectory costs two right-hand-side evaluations per lane, so it is batched."""

SAFETY, FACTOR_MIN, FACTOR_MAX = 0.9, 0.2, 10.0
"""diffrax's PIDController defaults: the next step is h * clip(SAFETY * err^(-1/order), ...),
within [FACTOR_MIN, FACTOR_MAX] after an accepted step and below SAFETY after a rejected one."""

LARGE_STATE = 64
"""A system of this many states or more is large: a batch smaller than a block runs on exactly as
many lanes as it has trajectories (no power-of-two bucket: a lane of a large system costs more
than its compile)."""

LOOPED_RHS_OPS = 200
"""A right-hand side of this many operations or more (``NumericSystem.rhs_ops``: the exact flow's
quadrature, the matrix flows) is called from a loop over the stages, one copy in the compiled
kernel as in diffrax's solvers; smaller ones are unrolled, one inlined copy per stage (faster
per step, and cheap to compile while the right-hand side is small)."""

EVENT_BISECTIONS = 64
"""Bisections of the dense output that locate an event inside its step (to rounding of t)."""


@dataclass(frozen=True, eq=False)
class Tableau:
    """An explicit, first-same-as-last Runge-Kutta method with its dense output.

    ``a[s - 1]`` holds the coefficients of stage s (s = 1 .. S - 1) on stages 0 .. s - 1, ``b``
    the solution weights (the last stage is the solution: ``a[-1] == b``), ``e`` the error
    weights, ``c`` the stage times (``c[0] = 0``, ``c[-1] = 1``), ``interpolation`` diffrax's
    dense-output class of the method (built from y_n, y_n+1 and the stage increments h k_i)
    and ``error_order`` the controller's exponent.
    """

    name: str
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    e: tuple[float, ...]
    c: tuple[float, ...]
    interpolation: type
    error_order: float

    @property
    def stages(self) -> int:
        """The number of stages S, the last one the first of the next step."""
        return len(self.b)


@lru_cache(maxsize=None)
def tableau(name: str) -> Tableau:
    """The kernel's tableau of a ``LANE_SOLVERS`` name, read from the diffrax solver.

    Parameters
    ----------
    name : str
        One of ``LANE_SOLVERS``.

    Returns
    -------
    Tableau

    Raises
    ------
    ValueError
        ``name`` is not one of ``LANE_SOLVERS``.
    """
    import diffrax

    if name not in LANE_SOLVERS:
        raise ValueError(f"the lane kernel runs {sorted(LANE_SOLVERS)}; got {name!r}")
    solver = getattr(diffrax, LANE_SOLVERS[name])()
    tab = solver.tableau
    if not (tab.fsal and tab.ssal and tab.c[-1] == 1.0):  # pragma: no cover - all three are
        raise ValueError(f"{name}: the lane kernel needs a first-same-as-last tableau")
    order = solver.error_order(diffrax.ODETerm(lambda t, y, args: y))
    return Tableau(name, tuple(tuple(float(x) for x in row) for row in tab.a_lower),
                   tuple(float(x) for x in tab.b_sol), tuple(float(x) for x in tab.b_error),
                   (0.0,) + tuple(float(x) for x in tab.c), solver.interpolation_cls, float(order))


def lane_kernel(num: NumericSystem, tab: Tableau, events: tuple[Event, ...], lanes: int,
                final_only: bool) -> Callable:
    """``run(Y0 (B, n), P {name: (B, ...)}, count, ts (n_t,), span (2,), tol (3,), max_steps)
    -> dict`` of per-trajectory arrays, computed on ``lanes`` lanes with refill; pure JAX (jit it).

    Only the first ``count`` rows are integrated (a traced value: a block padded to its bucket
    runs only its real rows). ``ts`` are the saved times (increasing, within ``span``; entries
    above t1, e.g. +inf padding, are never reached), ``tol`` = (rtol, atol, dt) with dt > 0 a
    fixed step (every step kept, the last one ending on t1) and dt = 0 adaptive steps,
    ``max_steps`` the budget of attempted steps (all traced: one compiled kernel serves every
    span, tolerance, step and budget).
    ``final_only``: the caller guarantees ts == [t1] and only the end state is kept.

    Returns the keys of ``_flow.trajectory_core``: ys (B, n_t, n), valid (B, n_t), t_end,
    y_end, code, which, steps (accepted) and tries (attempted), with the same meanings.
    """
    import jax
    import jax.numpy as jnp
    import jax.tree_util as jtu

    f = num.f_jax
    ctx = num.context("jax")
    n_ev = len(events)
    S = tab.stages
    inv_order = 1.0 / tab.error_order
    threshold = max(1, lanes // REFILL_FRACTION)
    rhs = jax.jit(jax.vmap(f, in_axes=(0, 1, 0), out_axes=1))  # states (n, L): one contiguous row per component
    looped = num.rhs_ops >= LOOPED_RHS_OPS
    A = jnp.asarray([row + (0.0,) * (S - len(row)) for row in tab.a])  # (S - 1, S), zero above the diagonal
    C = jnp.asarray(tab.c)

    def raw_margins(t, y, params):
        return jnp.stack([jnp.asarray(e.margin(t, y, params, ctx), dtype=jnp.float64).reshape(()) for e in events])

    margins = jax.vmap(raw_margins, in_axes=(0, 1, 0))

    def orient(m0):
        return jnp.stack([jnp.asarray(e.orient(m0[i], ctx), dtype=jnp.float64) for i, e in enumerate(events)])

    def rms(x):
        """The RMS of each lane (column), 1e300 for a lane that is not finite (the step is then
        rejected)."""
        finite = jnp.all(jnp.isfinite(x), axis=0)
        safe = jnp.where(jnp.isfinite(x), x, 0.0)
        return jnp.where(finite, jnp.sqrt(jnp.mean(safe * safe, axis=0)), 1e300)

    def dense(y0, y1, k, theta):
        return tab.interpolation(t0=0.0, t1=1.0, y0=y0, y1=y1, k=k).evaluate(theta)

    def interpolate(y, y1, h, ks, theta):
        """The step's dense output at theta = (t - t_n) / h of each lane, (n, L): diffrax's
        interpolant of the method on the stage increments h k_i."""
        return jax.vmap(dense, in_axes=(1, 1, 2, 0), out_axes=1)(y, y1, jnp.stack(ks) * h, theta)

    def run(Y0, P, count, ts, span, tol, max_steps):
        B, n = Y0.shape
        n_t = ts.shape[0]
        t0, t1 = span[0], span[1]
        rtol, atol, fixed = tol[0], tol[1], tol[2]
        adaptive = fixed <= 0
        dtmin = step_floor(t0, t1, jnp)
        floor = _ulps_below(t1, 100)  # a step ending beyond it is clipped to t1 (as diffeqsolve does)
        at_start = jnp.sum(ts <= t0)

        def start(idx):
            """Fresh lanes for the trajectories ``idx`` (L,): the first derivative, diffrax's
            initial step, the event orientation and the start check."""
            y = Y0[idx].T
            p = jtu.tree_map(lambda a: a[idx], P)
            t = jnp.full(idx.shape, t0)
            scale = atol + jnp.abs(y) * rtol
            d0 = rms(y / scale)

            def trial(k0):
                d1 = rms(k0 / scale)
                small = (d0 < 1e-5) | (d1 < 1e-5)
                return d1, jnp.where(small, 1e-6, 0.01 * (d0 / jnp.where(small, 1.0, d1)))

            if looped:  # one right-hand side in the compiled kernel: f(t, y), then f(t + h0, y + h0 f(t, y))
                def probe(i, ks):
                    h0 = trial(ks[0])[1]
                    return ks.at[i].set(rhs(t + i * h0, y + i * h0 * ks[0], p))

                k0, k1 = jax.lax.fori_loop(0, 2, probe, jnp.zeros((2,) + y.shape, y.dtype))
                d1, h0 = trial(k0)
            else:
                k0 = rhs(t, y, p)
                d1, h0 = trial(k0)
                k1 = rhs(t + h0, y + h0 * k0, p)
            d2 = rms((k1 - k0) / scale) / h0
            big = jnp.maximum(d1, d2)
            h1 = jnp.where(big <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / big) ** inv_order)
            first = jnp.where(adaptive, jnp.minimum(100 * h0, h1), fixed)
            lane = {"i": idx, "t": t, "tnext": jnp.minimum(t0 + first, t1), "y": y, "k": k0,
                    "p": p, "at_dtmin": jnp.zeros(idx.shape, bool), "steps": jnp.zeros(idx.shape, int),
                    "tries": jnp.zeros(idx.shape, int), "code": jnp.full(idx.shape, FINISHED),
                    "which": jnp.full(idx.shape, -1), "isave": jnp.full(idx.shape, at_start)}
            if n_ev:
                m0 = margins(t, y, p)
                signs = jax.vmap(orient)(m0)
                fired = signs * m0 <= 0
                begun = jnp.any(fired, axis=1)
                lane["signs"] = signs
                lane["code"] = jnp.where(begun, START, FINISHED)
                lane["which"] = jnp.where(begun, jnp.argmax(fired, axis=1), -1)
            return lane

        def stages(t, y, h, k0, p):
            """The stage derivatives [k_0 .. k_S-1] and the new state of one step: unrolled (one
            inlined right-hand side per stage), or a loop over the stages (one right-hand side,
            compiled once) for a right-hand side of LOOPED_RHS_OPS operations or more."""
            if not looped:
                ks = [k0]
                for s in range(1, S):
                    row = tab.a[s - 1]
                    ys = y + h * sum(row[j] * ks[j] for j in range(s) if row[j] != 0.0)
                    ks.append(rhs(t + tab.c[s] * h, ys, p))
                return ks, ys

            def stage(s, K):
                ys = y + h * jnp.tensordot(A[s - 1], K, axes=1)
                return K.at[s].set(rhs(t + C[s] * h, ys, p))

            K = jax.lax.fori_loop(1, S, stage, jnp.zeros((S,) + y.shape, y.dtype).at[0].set(k0))
            return list(K), y + h * jnp.tensordot(A[-1], K, axes=1)

        def condition(t, y, lane):
            return jnp.min(lane["signs"] * margins(t, y, lane["p"]), axis=1)

        def leading(t, y, k, lane):
            """The event that fired: the oriented margin that reaches zero first from (t, y), by
            margin / (its rate of decrease along the flow, here the step's last derivative k);
            scale-free, unlike the margins themselves (a bound of 1e8 and a tolerance of 1e-8
            near a steep blow-up)."""
            m, dm = jax.jvp(lambda tt, yy: lane["signs"] * margins(tt, yy, lane["p"]), (t, y), (jnp.ones_like(t), k))
            lead = jnp.where(dm < 0, m / jnp.where(dm < 0, -dm, 1.0), jnp.where(m <= 0, 0.0, jnp.inf))
            return jnp.argmin(lead, axis=1)

        def step(lane, running, out):
            """One attempted step on every running lane; saves and events of the kept ones."""
            t, y, h = lane["t"], lane["y"], lane["tnext"] - lane["t"]
            ks, y1 = stages(t, y, h, lane["k"], lane["p"])
            err = h * sum(tab.e[j] * ks[j] for j in range(S) if tab.e[j] != 0.0)
            err = jnp.where(jnp.isnan(err), jnp.inf, err)
            y1s = jnp.where(jnp.any(jnp.isnan(y1), axis=0), y, y1)
            norm = rms(err / (atol + jnp.maximum(jnp.abs(y), jnp.abs(y1s)) * rtol))
            keep = (norm < 1) | lane["at_dtmin"] | ~adaptive
            factor = jnp.clip(SAFETY * (1 / norm) ** inv_order, jnp.where(keep, 1.0, FACTOR_MIN),
                              jnp.where(keep, FACTOR_MAX, SAFETY))
            dt = jnp.where(adaptive, h * factor, fixed)
            too_small = adaptive & (dt < dtmin)
            dt = jnp.where(lane["at_dtmin"] & (factor == 1), dtmin, dt)
            at_dtmin = dt <= dtmin
            dt = jnp.maximum(dt, dtmin)
            tprev = jnp.minimum(jnp.where(keep, lane["tnext"], t), t1)
            tnext = tprev + dt
            tnext = jnp.where(tnext > floor, jnp.where(keep, t1, tprev + 0.5 * (t1 - tprev)), tnext)
            kept = running & keep
            tries = lane["tries"] + running
            code = jnp.where(running & too_small, DT_MIN, lane["code"])
            code = jnp.where((code == FINISHED) & running & (tprev < t1) & (tries >= max_steps), MAX_STEPS, code)
            new = {**lane, "t": jnp.where(running, tprev, t), "tnext": jnp.where(running, tnext, lane["tnext"]),
                   "y": jnp.where(kept, y1, y), "k": jnp.where(kept, ks[-1], lane["k"]),
                   "at_dtmin": jnp.where(running, at_dtmin, lane["at_dtmin"]), "steps": lane["steps"] + kept,
                   "tries": tries, "code": code}
            reach = new["t"]
            if n_ev:
                fired = kept & (condition(new["t"], y1, lane) <= 0)
                t_ev, y_ev, which = locate(fired, t, h, y, y1, ks, lane, (new["t"], new["y"], lane["which"]))
                new["t"] = jnp.where(fired, t_ev, new["t"])
                new["y"] = jnp.where(fired, y_ev, new["y"])
                new["code"] = jnp.where(fired, EVENT, new["code"])
                new["which"] = jnp.where(fired, which, lane["which"])
                reach = new["t"]
            if not final_only:
                out, new["isave"] = save(out, lane["i"], new["isave"], kept, t, h, y, y1, ks, reach)
            return new, out

        def locate(fired, t, h, y, y1, ks, lane, default):
            """``(t, y, which)`` of the event in the step of each lane that ``fired`` (``default``
            elsewhere): EVENT_BISECTIONS bisections of the condition on the step's dense output.
            The lanes that fired are gathered into blocks of lanes / REFILL_FRACTION, so the search
            costs what the firing lanes need, not the whole block."""
            width = max(1, lanes // REFILL_FRACTION)
            K = jnp.stack(ks)
            fields = {"t": t, "h": h, "y": y, "y1": y1, "K": K, "signs": lane["signs"], "p": lane["p"]}
            axes = {"t": 0, "h": 0, "y": 1, "y1": 1, "K": 2, "signs": 0, "p": 0}

            def block(carry):
                todo, t_ev, y_ev, which = carry
                idx = jnp.nonzero(todo, size=width, fill_value=lanes)[0]  # lanes: an empty slot
                sub = {k: jtu.tree_map(lambda a, ax=axes[k]: jnp.take(a, idx, axis=ax, mode="clip"), v)
                       for k, v in fields.items()}
                ks_sub = list(sub["K"])

                def halve(_, bracket):
                    lo, hi = bracket
                    mid = 0.5 * (lo + hi)
                    state = interpolate(sub["y"], sub["y1"], sub["h"], ks_sub, mid)
                    below = condition(sub["t"] + mid * sub["h"], state, sub) <= 0
                    return jnp.where(below, lo, mid), jnp.where(below, mid, hi)

                _, hi = jax.lax.fori_loop(0, EVENT_BISECTIONS, halve, (jnp.zeros(width), jnp.ones(width)))
                te = sub["t"] + hi * sub["h"]
                ye = interpolate(sub["y"], sub["y1"], sub["h"], ks_sub, hi)
                return (todo.at[idx].set(False, mode="drop"), t_ev.at[idx].set(te, mode="drop"),
                        y_ev.at[:, idx].set(ye, mode="drop"), which.at[idx].set(leading(te, ye, ks_sub[-1], sub),
                                                                                mode="drop"))

            _, t_ev, y_ev, which = jax.lax.while_loop(lambda c: jnp.any(c[0]), block, (fired,) + default)
            return t_ev, y_ev, which

        def save(out, i, isave, kept, t, h, y, y1, ks, reach):
            """Fill the saved times in (t, reach] of the kept lanes from the step's dense output."""

            def pending(isave):
                return kept & (isave < n_t) & (ts[jnp.minimum(isave, n_t - 1)] <= reach)

            def one(carry):
                out, isave = carry
                due = pending(isave)
                j = jnp.minimum(isave, n_t - 1)
                tj = ts[j]
                yj = jnp.where(tj == t + h, y1, interpolate(y, y1, h, ks, (tj - t) / h))
                row = jnp.where(due, i, B)
                out = {**out, "ys": out["ys"].at[row, j].set(yj.T), "valid": out["valid"].at[row, j].set(True)}
                return out, isave + due

            return jax.lax.while_loop(lambda c: jnp.any(pending(c[1])), one, (out, isave))

        def record(out, lane, ended):
            row = jnp.where(ended, lane["i"], B)  # row B collects the lanes that did not end
            finite = jnp.all(jnp.isfinite(lane["y"]), axis=0)
            code = jnp.where((lane["code"] == FINISHED) & ~finite, FAILED, lane["code"])
            return {**out, "t_end": out["t_end"].at[row].set(lane["t"]), "y_end": out["y_end"].at[row].set(lane["y"].T),
                    "code": out["code"].at[row].set(code), "which": out["which"].at[row].set(lane["which"]),
                    "steps": out["steps"].at[row].set(lane["steps"]), "tries": out["tries"].at[row].set(lane["tries"])}

        def refill(carry):
            lane, active, counter = carry
            slot = counter + jnp.cumsum(~active) - 1
            take = ~active & (slot < count)
            fresh = start(jnp.where(take, slot, 0))
            lane = {key: (jnp.where(take, fresh[key], lane[key]) if key in ("y", "k") else  # (n, L)
                          jtu.tree_map(lambda a, b: jnp.where(take.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
                                       fresh[key], lane[key])) for key in lane}
            return lane, active | take, counter + jnp.sum(take)

        def body(carry):
            lane, active, counter, out = carry
            wanted = (counter < count) & ((jnp.sum(~active) >= threshold) | ~jnp.any(active))
            lane, active, counter = jax.lax.cond(wanted, refill, lambda c: c, (lane, active, counter))
            running = active & (lane["code"] == FINISHED)
            lane, out = step(lane, running, out)
            ended = active & ((lane["t"] >= t1) | (lane["code"] != FINISHED))
            return lane, active & ~ended, counter, record(out, lane, ended)

        out = {"t_end": jnp.zeros(B + 1, Y0.dtype), "y_end": jnp.zeros((B + 1, n), Y0.dtype),
               "code": jnp.zeros(B + 1, int), "which": jnp.full(B + 1, -1), "steps": jnp.zeros(B + 1, int),
               "tries": jnp.zeros(B + 1, int)}
        if not final_only:
            saved0 = (ts <= t0)[None, :, None]
            out["ys"] = jnp.concatenate([jnp.where(saved0, Y0[:, None, :], 0.0), jnp.zeros((1, n_t, n))])
            out["valid"] = jnp.concatenate([jnp.broadcast_to(ts <= t0, (B, n_t)), jnp.zeros((1, n_t), bool)])
        empty = jtu.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(start, jnp.zeros(lanes, int)))
        _, _, _, out = jax.lax.while_loop(lambda c: jnp.any(c[1]) | (c[2] < count), body,
                                          (empty, jnp.zeros(lanes, bool), jnp.asarray(0), out))
        res = {k: v[:B] for k, v in out.items()}
        if final_only:
            res["valid"] = (res["t_end"] == t1)[:, None] & jnp.all(jnp.isfinite(res["y_end"]), axis=1)[:, None]
            res["ys"] = res["y_end"][:, None, :]
        else:
            res["ys"] = jnp.where(res["valid"][..., None], res["ys"], res["y_end"][:, None, :])
        return res

    return run


def _ulps_below(t: Any, n: int) -> Any:
    """The float64 n representable numbers below t (n applications of nextafter toward -inf),
    from the ordering of the bit patterns: one integer step per ulp."""
    import jax
    import jax.numpy as jnp

    bits = jax.lax.bitcast_convert_type(t, jnp.int64)
    negative_subnormal = jnp.iinfo(jnp.int64).min + (n - jnp.maximum(bits, 0))  # 0 <= t < n ulps: through zero
    through_zero = jax.lax.bitcast_convert_type(negative_subnormal, jnp.float64)
    return jnp.where(t < 0, jax.lax.bitcast_convert_type(bits + n, jnp.float64),
                     jnp.where(bits >= n, jax.lax.bitcast_convert_type(bits - n, jnp.float64), through_zero))
