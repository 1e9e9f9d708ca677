"""How a run ends: the raw outcome codes of the solvers and the readable statuses they become.

Every solver path (the per-lane diffrax core, the refill loop, the SciPy stepper) ends each
trajectory with one raw code, an int that JAX can carry through ``jit`` and ``vmap``:

    FINISHED   the run reached t1
    EVENT      a terminating event fired (``which`` says which)
    MAX_STEPS  the step budget ran out
    DT_MIN     the step size had to fall below ``step_floor(t0, t1)``
    FAILED     the solver stopped for another reason (non-finite state, solver error)
    START      an event was already true at t0: the run ends there

The host side turns codes into the readable ``STATUSES`` of a Solution: ``STATUS_OF_CODE`` for
the codes that need nothing more, the event's own status for EVENT and START, and, for a run
that stopped early, the heuristics of ``_status`` (collapsed, partly_collapsed, blew_up).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from derivations import Names

__all__ = [
    "FINISHED", "EVENT", "MAX_STEPS", "DT_MIN", "FAILED", "START", "OUTCOMES", "STATUS_OF_CODE", "RETRY_CODES",
    "STATUSES", "DTMIN_FRACTION", "step_floor",
]

FINISHED, EVENT, MAX_STEPS, DT_MIN, FAILED, START = range(6)

OUTCOMES = ("finished", "event", "max_steps", "dt_min", "failed", "start")
"""The name of each raw code: ``OUTCOMES[code]``."""

STATUS_OF_CODE = {FINISHED: "finished", MAX_STEPS: "max_steps", DT_MIN: "failed", FAILED: "failed"}
"""The status of a run that no event ended and no heuristic of ``_status`` recognised."""

RETRY_CODES = (MAX_STEPS, DT_MIN)
"""Codes whose runs ``integrate(retry=True)`` repeats once with a stiff solver."""

STATUSES = Names.define("STATUSES", {
    "finished": "the run reached t1.",
    "collapsed": "the Collapse event fired: every collapse state within its tol of zero; or the run stopped "
                 "early (step-size collapse, step budget, solver failure) with every collapse state below "
                 "PARTIAL_COLLAPSE_RATIO of its initial size (a finite-time collapse into a singularity of the "
                 "right-hand side; `messages` says so).",
    "partly_collapsed": "the run stopped early where a subset of the collapse states that the system declares "
                        "(system.partial_collapse) vanished while the others stayed finite; `event` names it.",
    "blew_up": "the BlowUp event fired: max abs(y) reached its bound; or, with a BlowUp event watching, the run "
               "stopped early (step-size collapse, step budget, solver failure) with max abs(y) above its escape "
               "factor times max(1, max abs(y0)).",
    "steady": "the Steady event fired: max abs(dy/dt) fell to its tol.",
    "event": "another event fired (a Condition, LeaveBox, ...); `event` names it.",
    "nonunique": "the run reached a switching surface of a piecewise-smooth system where both fields point away "
                 "from it (repelling sliding): the Filippov solution is not unique there, and the run ends on it.",
    "max_steps": "the step budget ran out before t1 (after the retry, if any).",
    "failed": "the solver stopped for another reason (step-size collapse, non-finite state); `messages` says which.",
}, module=__name__, summary="How each run of a Solution ended (Solution.status holds one of these per trajectory).")

DTMIN_FRACTION = 1e-14
"""Step size floor, as a fraction of t1 - t0 (and at least 16 ulps of t): a step that must fall
below it ends the run ("failed" with a reason, or "blew_up" where the state escaped), so that a
singular trajectory cannot spend max_steps rejected steps or hold a vmapped batch."""


def step_floor(t0: Any, t1: Any, xp: Any = np) -> Any:
    """The step size floor of a run over [t0, t1] (code DT_MIN below it), in array module ``xp``.

    Parameters
    ----------
    t0, t1 : float or scalar array
        The time span.
    xp : module
        numpy (default) or jax.numpy (traced times).

    Returns
    -------
    float or scalar array
        max(DTMIN_FRACTION * (t1 - t0), 16 eps * max(|t0|, |t1|)).
    """
    return xp.maximum(DTMIN_FRACTION * (t1 - t0), 16 * np.finfo(float).eps * xp.maximum(xp.abs(t0), xp.abs(t1)))
