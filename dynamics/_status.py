"""Readable statuses from raw outcome codes: which event ended each run, and, for a run that
stopped early (step budget, step-size collapse, solver failure), whether its end is a
finite-time collapse (``collapsed``), the collapse of a declared subset of the states
(``partly_collapsed``) or a blow-up (``blew_up``), and otherwise the reason it stopped.

These decisions read only the run's start and end states and the system's declared collapse
data (``collapse_indices``, ``partial_collapse``, ``scaling``), never a state's name.
"""

from __future__ import annotations

import numpy as np

from ._checks import is_stiff, solver_name
from ._events import BlowUp
from ._numeric import NumericSystem
from ._outcomes import DT_MIN, EVENT, FINISHED, MAX_STEPS, RETRY_CODES, START, STATUS_OF_CODE, step_floor

__all__ = ["PARTIAL_COLLAPSE_RATIO", "run_statuses"]


def run_statuses(raw, num, Y0, P, ts, span, evs, solver, max_steps, backend, retried) -> dict:
    """Readable statuses, event names and times, and reasons, from the raw outcome codes.

    Parameters
    ----------
    raw : dict
        A backend's result for B trajectories: ys, valid, t_end, y_end, code, which, steps,
        messages (the solver's own reasons).
    num : NumericSystem
        The system.
    Y0, P : numpy.ndarray, dict
        The initial states (B, n) and parameters {name: (B, ...)} of the run.
    ts, span : numpy.ndarray, (float, float)
        The saved times and (t0, t1).
    evs : tuple of Event
        The run's events, in the order ``which`` indexes.
    solver, max_steps, backend, retried
        How the run was made (for the reasons).

    Returns
    -------
    dict
        ys, valid, t_end, y_end, steps as given; status, event, event_t and messages per
        trajectory; retry (True where the run is worth repeating with a stiff solver: its code
        is one of RETRY_CODES and no heuristic explained the stop).
    """
    B = len(Y0)
    status = np.full(B, "finished", dtype=object)
    event = np.full(B, "", dtype=object)
    event_t = np.full(B, np.nan)
    messages = np.array(raw["messages"], dtype=object)
    again = np.zeros(B, dtype=bool)
    blow = next((e for e in evs if isinstance(e, BlowUp)), None)
    code, which, t_end, y_end = raw["code"], raw["which"], raw["t_end"], raw["y_end"]
    fired = (code == EVENT) | (code == START)
    for i, e in enumerate(evs):
        hit = fired & (which == i)
        status[hit], event[hit], event_t[hit] = e.status, e.name, t_end[hit]
        for b in np.flatnonzero(hit & (code == START)):
            messages[b] = f"the initial state already satisfies the event {e.name!r}: the run ends at t0"
    for b in np.flatnonzero(~fired & (code != FINISHED)):
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
        status[b] = STATUS_OF_CODE.get(c, "failed")
        again[b] = c in RETRY_CODES
        messages[b] = _reason(c, num, y_end[b], {k: v[b] for k, v in P.items()}, t_end[b], span, solver, max_steps,
                              backend, retried, str(messages[b]))
    return {"ys": raw["ys"], "valid": raw["valid"], "t_end": np.asarray(t_end, dtype=float), "y_end": y_end,
            "status": status, "event": event, "event_t": event_t, "steps": raw["steps"], "messages": messages,
            "retry": again}


PARTIAL_COLLAPSE_RATIO = 1e-3
"""A declared subset of states counts as collapsed at a failure when its size fell below this
fraction of its initial size, relative to how far the rest of the collapse states shrank (in
the system's scaling, where it declares one)."""


def _full_collapse(num: NumericSystem, y0: np.ndarray, y: np.ndarray) -> float | None:
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


def _partial_collapse(num: NumericSystem, y0: np.ndarray, y: np.ndarray) -> tuple[str, float] | None:
    """(label, size ratio) if the run stopped where one of the system's declared partial-collapse
    sets (``system.partial_collapse``) vanished while the other collapse states did not."""
    system = num.system
    sets = system.partial_collapse
    if not sets or not np.all(np.isfinite(y)):
        return None
    powers = system.expand(system.scaling or {}, default=1.0)
    powers[powers == 0] = 1.0

    def ratio(idx):
        start = float(np.max(np.abs(y0[idx])))
        return float(np.max(np.abs(y[idx]))) / start if start > 0 else np.inf

    for label, members in sets.items():
        idx = list(system.group_indices(members))
        rest = [i for i in num.collapse_indices if i not in idx]
        if not idx or not rest:
            continue
        r_set, r_rest = ratio(idx), ratio(rest)
        # compare sizes in the same scaling: a set of power a against the rest of power b
        exponent = powers[idx[0]] / powers[rest[0]]
        if r_set <= PARTIAL_COLLAPSE_RATIO * r_rest**exponent:
            return label, r_set
    return None


def _fastest_rate(num: NumericSystem, y: np.ndarray, params: dict, t: float) -> float | None:
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
    """Why a run stopped early and what may help, with the state, speed and fastest rate there."""
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
    if is_stiff(solver):
        advice = (f"{'after the retry, ' if retried else ''}already with a stiff solver: a larger max_steps or "
                  "looser tolerances may reach further, or end the run earlier with an event (e.g. Collapse)")
    else:
        advice = ("try a stiff solver (solver='kvaerno5' with jax, 'Radau' or 'LSODA' with scipy), looser "
                  "tolerances or a larger max_steps")
    name = solver_name(solver)
    extra = f"; {own}" if own else ""
    if code == MAX_STEPS:
        return f"max_steps={max_steps} reached before t1 {where}{stiff} ({name}{extra}): {hint}; {advice}"
    if code == DT_MIN:
        dtmin = float(step_floor(t0, t1))
        return f"the step size collapsed below dtmin = {dtmin:.3g} {where}{stiff} ({name}{extra}): {hint}; {advice}"
    if not np.all(np.isfinite(dy)):
        return f"the right-hand side is not finite {where} ({name}{extra}): the state left the system's domain"
    return f"the solver stopped early {where}{stiff} ({name}{extra}): {hint}; {advice}"
