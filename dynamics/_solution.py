"""Solution: trajectories of a batch of integrations, with a readable status per trajectory."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Solution", "STATUSES"]

STATUSES = ("finished", "collapsed", "blew_up", "steady", "event", "max_steps", "failed")
"""finished: reached t1. collapsed: every p and s fell below ``collapse_tol``.
blew_up: the state norm passed ``blowup_bound`` (finite-time divergence). steady: |dy/dt| fell
below ``steady_tol``. event: a user event fired. max_steps: the solver ran out of steps (after
the retry, if any). failed: the solver stopped for another reason (see ``messages``)."""


@dataclass(frozen=True)
class Solution:
    """Trajectories y(t) of one or many initial states.

    t:        saved times, shape (n_times,), ending at t1.
    y:        states, shape batch_shape + (n_times, n_states). After a terminating event
              the state at the event is held (``valid`` is False there), never NaN.
    valid:    batch_shape + (n_times,), True where t <= the trajectory's stopping time.
    status:   batch_shape array of str, one of STATUSES.
    event_t:  batch_shape; time of the terminating event, NaN where none fired.
    n_steps:  batch_shape; solver work: accepted steps (jax), rhs evaluations (scipy).
    messages: batch_shape array of str; the solver's own words for max_steps/failed.
    retried:  batch_shape bool; trajectories re-run after running out of steps.
    """

    t: np.ndarray
    y: np.ndarray
    valid: np.ndarray
    status: np.ndarray
    event_t: np.ndarray
    n_steps: np.ndarray
    messages: np.ndarray
    retried: np.ndarray
    state_names: tuple[str, ...]
    backend: str
    info: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.status.shape

    @property
    def final(self) -> np.ndarray:
        """The last valid state of each trajectory, batch_shape + (n_states,)."""
        return self.y[..., -1, :]

    def states(self) -> dict[str, np.ndarray]:
        """``{state name: y[..., i]}``, each batch_shape + (n_times,)."""
        return {n: self.y[..., i] for i, n in enumerate(self.state_names)}

    def counts(self) -> dict[str, int]:
        """How many trajectories ended in each status."""
        return dict(Counter(self.status.ravel().tolist()))

    @property
    def ok(self) -> np.ndarray:
        """True where the solver did its job (no max_steps, no failure)."""
        return ~np.isin(self.status, ("max_steps", "failed"))

    def __getitem__(self, index) -> Solution:
        """Index the batch: ``sol[3]``, ``sol[:, 0]``."""
        if not isinstance(index, tuple):
            index = (index,)
        return Solution(
            t=self.t,
            y=self.y[index],
            valid=self.valid[index],
            status=self.status[index],
            event_t=self.event_t[index],
            n_steps=self.n_steps[index],
            messages=self.messages[index],
            retried=self.retried[index],
            state_names=self.state_names,
            backend=self.backend,
            info=self.info,
        )

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts().items()))
        return (
            f"Solution(batch_shape={self.batch_shape}, n_times={len(self.t)}, "
            f"states=({', '.join(self.state_names[:6])}{', ...' if len(self.state_names) > 6 else ''}), "
            f"backend={self.backend!r}, status={{{counts}}})"
        )
