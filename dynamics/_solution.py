"""Solution: trajectories of a batch of integrations, with a readable status per trajectory."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from derivations import FrozenMap, Names

from ._display import html_table
from ._outcomes import STATUSES
from ._value import Value

__all__ = ["Solution"]


@dataclass(frozen=True, repr=False, eq=False)
class Solution(Value):
    """Trajectories y(t) of one or many initial states, and how each run ended.

    Each run goes from t0 until it *ends*: at t1 ("finished"), at a terminating event, or where
    the solver stopped (budget, step-size collapse). batch_shape is the broadcast shape of y0
    and the params.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    t : numpy.ndarray
        The saved times (t_eval, or the default grid from t0 to t1), shape (n_times,). The
        same for every trajectory; it need not reach t1 or the end of a run.
    y : numpy.ndarray
        batch_shape + (n_times, n_states): ``y[..., i, :]`` is the state at t[i] where
        ``valid``; at saved times after the run ended it holds the end state ``final`` (never
        NaN).
    valid : numpy.ndarray of bool
        batch_shape + (n_times,): True where t[i] <= t_end, i.e. y holds the solution.
    status : numpy.ndarray of str
        batch_shape: one of STATUSES.
    event : numpy.ndarray of str
        batch_shape: the name of the event that ended the run ("collapse", "blow_up",
        "steady", a Condition's or LeaveBox's name), "" where none did.
    event_t : numpy.ndarray
        batch_shape: the time of that event, NaN where none fired.
    t_end : numpy.ndarray
        batch_shape: the time where the run ended (t1, the event time, or where the solver
        stopped).
    y_end : numpy.ndarray
        batch_shape + (n_states,): the state at t_end; also ``final``.
    n_steps : numpy.ndarray of int
        batch_shape: accepted solver steps.
    messages : numpy.ndarray of str
        batch_shape: the reason for max_steps, failed, a blow-up found by step collapse, or
        an event already true at t0; "" otherwise.
    retried : numpy.ndarray of bool
        batch_shape: re-run with the stiff solver and 8x max_steps.
    state_names : tuple of str
        The system's state names.
    backend : str
        "jax" or "scipy".
    info : FrozenMap
        The options used (solver, tolerances, events, ...); for a piecewise-smooth system also
        "switching", its switching surfaces in words.
    segments : numpy.ndarray of tuple or None
        For a piecewise-smooth system (one that declares ``switching``): batch_shape, per
        trajectory the tuple of its ``Segment``s in time order (t_start, t_end, ``side``: per
        switching function +1, -1 or 0 on the surface, ``sliding``: the surfaces it slides
        along); None for a smooth system.
    """

    t: np.ndarray
    y: np.ndarray
    valid: np.ndarray
    status: np.ndarray
    event: np.ndarray
    event_t: np.ndarray
    t_end: np.ndarray
    y_end: np.ndarray
    n_steps: np.ndarray
    messages: np.ndarray
    retried: np.ndarray
    state_names: tuple[str, ...]
    backend: str
    info: Mapping[str, object] = field(default_factory=FrozenMap)
    segments: np.ndarray | None = None

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The shape of the batch of trajectories (``status.shape``)."""
        return self.status.shape

    @property
    def final(self) -> np.ndarray:
        """The state where each trajectory ended (at ``t_end``: t1, its event, or where the
        solver stopped), batch_shape + (n_states,); not the last saved state when t_eval ends
        earlier."""
        return self.y_end

    def states(self) -> dict[str, np.ndarray]:
        """The trajectories state by state.

        Returns
        -------
        dict of str -> numpy.ndarray
            ``{state name: y[..., i]}``, each batch_shape + (n_times,).
        """
        return {n: self.y[..., i] for i, n in enumerate(self.state_names)}

    def counts(self) -> dict[str, int]:
        """How many trajectories ended in each status.

        Returns
        -------
        dict of str -> int
            ``{status: count}`` for the statuses that occur.
        """
        return dict(Counter(self.status.ravel().tolist()))

    @property
    def sliding(self) -> np.ndarray:
        """batch_shape: True where the run ended sliding along a switching surface (its last
        segment slides); all False for a smooth system."""
        if self.segments is None:
            return np.zeros(self.batch_shape, dtype=bool)
        return np.vectorize(lambda s: bool(s and s[-1].sliding), otypes=[bool])(self.segments)

    @property
    def slid(self) -> np.ndarray:
        """batch_shape: True where the run slid along a switching surface at some time."""
        if self.segments is None:
            return np.zeros(self.batch_shape, dtype=bool)
        return np.vectorize(lambda s: any(seg.sliding for seg in s), otypes=[bool])(self.segments)

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
            event=self.event[index],
            event_t=self.event_t[index],
            t_end=self.t_end[index],
            y_end=self.y_end[index],
            n_steps=self.n_steps[index],
            messages=self.messages[index],
            retried=self.retried[index],
            state_names=self.state_names,
            backend=self.backend,
            info=self.info,
            segments=None if self.segments is None else _object_array(self.segments[index]),
        )

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts().items()))
        t = f"[{self.t[0]:g}, {self.t[-1]:g}]" if len(self.t) else "[]"
        return (
            f"Solution(batch_shape={self.batch_shape}, n_times={len(self.t)}, t={t}, "
            f"states=[{_summary(self.state_names)}], backend={self.backend!r}, status={{{counts}}})"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        counts = self.counts()
        t = f"[{self.t[0]:g}, {self.t[-1]:g}]" if len(self.t) else "[]"
        return html_table(
            f"Solution: {int(np.prod(self.batch_shape))} trajectories, batch shape {self.batch_shape}",
            ("status", "trajectories"),
            [(k, counts[k]) for k in STATUSES if k in counts] + [(k, v) for k, v in counts.items() if k not in STATUSES],
            [f"t in {t}, {len(self.t)} saved times; states [{_summary(self.state_names)}]; backend {self.backend!r}"],
        )


def _object_array(value) -> np.ndarray:
    """``value`` as an object array (a single trajectory's tuple of segments as a 0-d array)."""
    if isinstance(value, np.ndarray):
        return value
    out = np.empty((), dtype=object)
    out[()] = value
    return out


_INDEXED = re.compile(r"^(.*?)(\d+)$")


def _summary(names: Sequence[str], max_groups: int = 8) -> str:
    """State names, runs of indexed names compressed: ``p_1..p_100, s_1..s_100``; beyond
    ``max_groups`` groups, the first and last few and the count."""
    groups: list[list] = []  # [prefix, first index, last index, first name, last name]
    for name in names:
        m = _INDEXED.match(name)
        if m and groups and groups[-1][0] == m.group(1) and int(m.group(2)) == groups[-1][2] + 1:
            groups[-1][2] = int(m.group(2))
            groups[-1][4] = name
        elif m:
            groups.append([m.group(1), int(m.group(2)), int(m.group(2)), name, name])
        else:
            groups.append([None, 0, 0, name, name])
    parts = [g[3] if g[3] == g[4] else f"{g[3]}..{g[4]}" if g[2] > g[1] + 1 else f"{g[3]}, {g[4]}" for g in groups]
    if len(parts) > max_groups:
        parts = parts[: max_groups - 2] + ["..."] + parts[-2:]
        return ", ".join(parts) + f"; {len(names)} states"
    return ", ".join(parts)
