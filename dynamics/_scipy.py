"""The SciPy backend: each trajectory stepped on the host by a ``scipy.integrate`` solver, with
the same events (margins root-found by ``brentq`` on the dense output), step budget, step size
floor and raw outcome codes as the JAX backend. It is the reference the JAX backend is checked
against, and the backend for right-hand sides JAX cannot trace.
"""

from __future__ import annotations

import numpy as np

from ._checks import is_stiff
from ._outcomes import DT_MIN, EVENT, FAILED, FINISHED, MAX_STEPS, START, step_floor
from ._progress import progress_bar

__all__ = ["run_scipy"]


class _Budget(Exception):
    """Raised inside a SciPy step when the rhs evaluation budget is spent."""


def run_scipy(num, Y0, P, ts, span, solver, rtol, atol, max_steps, evs, *, progress=True) -> dict:
    """The batch, one trajectory after another: the raw result (ys, valid, t_end, y_end, code,
    which, steps, messages) of ``_scipy_one`` for each row of Y0 and P."""
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
    """One trajectory: step the solver until t1, an event (checked after every step, located on
    the step's dense output), the step budget (``max_steps`` accepted steps, and at most
    20 * max_steps (+ n per Jacobian for stiff solvers) rhs evaluations), a step below the
    floor, or a failure; the saved times that were reached are interpolated. A step into a
    non-finite state restarts the solver from the last good state with an eighth of the step
    (``_restart``), as the JAX backend's error norm rejects such a step."""
    from scipy import integrate as si

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
            return end(START, t0, y0.copy(), int(fired[0]))

    def margins(t, y):
        return signs * np.array([float(e.margin(t, y, params, ctx)) for e in evs])

    stiff = is_stiff(solver)
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
        return end(MAX_STEPS, t0, y0.copy(), message="rhs evaluation budget spent")
    steps, dtmin = 0, float(step_floor(t0, t1))
    while True:
        t_old, y_old = ode.t, ode.y.copy()
        if steps >= max_steps:
            return end(MAX_STEPS, t_old, y_old, steps=steps)
        if steps and ode.step_size is not None and ode.step_size < dtmin:
            return end(DT_MIN, t_old, y_old, steps=steps)
        h_old = ode.step_size
        try:
            message = ode.step()
        except _Budget:
            return end(MAX_STEPS, t_old, y_old, steps=steps, message=f"rhs evaluation budget ({budget}) spent")
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, OverflowError) as err:
            ode = _restart(cls, fun, t_old, y_old, t1, rtol, atol, h_old, dtmin) if _non_finite(err) else None
            if ode is None:
                return end(FAILED, t_old, y_old, steps=steps, message=f"{type(err).__name__}: {err}")
            continue
        if ode.status == "failed":
            return end(DT_MIN if "step size" in str(message) else FAILED, t_old, y_old, steps=steps, message=str(message))
        t_new, y_new = ode.t, ode.y
        if not np.all(np.isfinite(y_new)):
            ode = _restart(cls, fun, t_old, y_old, t1, rtol, atol, t_new - t_old, dtmin)
            if ode is None:
                return end(FAILED, t_old, y_old, steps=steps + 1, message="non-finite state")
            continue
        steps += 1
        dense, t_stop, which = None, t_new, -1
        if evs:
            m_new = margins(t_new, y_new)
            if np.min(m_new) <= 0:
                dense = ode.dense_output()
                t_stop, which = _first_event(margins, dense, m_new, t_old, t_new, span)
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
            return end(EVENT, t_stop, y_stop, which, steps)
        if ode.status == "finished":
            return end(FINISHED, t_new, y_new.copy(), steps=steps)


def _non_finite(err: Exception) -> bool:
    """True for the error an implicit method raises on a non-finite trial state."""
    return isinstance(err, ValueError) and "infs or NaNs" in str(err)


def _restart(cls, fun, t: float, y: np.ndarray, t1: float, rtol: float, atol: float, h: float | None,
             dtmin: float):
    """The solver restarted at (t, y) with a first step of h / 8, after a step into a
    non-finite state that the method accepted or could not reject (LSODA, Radau, BDF; the
    explicit methods reject it themselves); None when that step would be below ``dtmin``.

    Near the edge of the domain of the right-hand side (sqrt(x) as x -> 0) a trial state can
    overshoot the edge by a rounding error; the JAX backend rejects such steps in its error
    norm (``_flow.finite_rms``), and this gives the SciPy methods the same chance."""
    if h is None or not np.isfinite(h) or h / 8 < dtmin:
        return None
    try:
        return cls(fun, t, y.copy(), t1, rtol=rtol, atol=atol, first_step=min(h / 8, t1 - t))
    except (ValueError, _Budget):  # first_step beyond the remaining span; the rhs budget spent
        return None


def _first_event(margins, dense, m_new, t_old: float, t_new: float, span) -> tuple[float, int]:
    """``(t_stop, which)``: the earliest root in [t_old, t_new] of the oriented margins that
    crossed zero in this step (``m_new <= 0``), each root-found on the dense output; a margin
    already non-positive at t_old stops at t_new."""
    from scipy.optimize import brentq

    t0, t1 = span
    roots = []
    for i in np.flatnonzero(m_new <= 0):
        g = lambda t, i=i, d=dense: float(margins(t, d(t))[i])
        root = t_new
        if g(t_old) > 0 and g(t_new) <= 0:
            root = brentq(g, t_old, t_new, xtol=1e-14 * (t1 - t0), rtol=4 * np.finfo(float).eps)
        roots.append((root, int(i)))
    return min(roots)
