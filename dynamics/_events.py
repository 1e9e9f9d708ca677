"""Events: conditions that end an integration, each written once for both backends.

An event is a *margin* m(t, y, params): positive while the run goes on, reaching zero where the
event happens. Each event class writes its margin once against an array module ``ctx.xp``
(``jax.numpy`` in the diffrax backend, ``numpy`` in the SciPy backend), so both backends stop
at the same condition. The integrator watches the smallest margin of all events and locates
its zero by root finding; the event whose margin is smallest there is the one that fired.

    Collapse(tol)            every collapse state (``system.collapse``) within tol of 0
    BlowUp(bound, escape)    max |y| reaches bound (or the run stops early while |y| grew)
    Steady(tol)              max |dy/dt| falls to tol
    LeaveBox(lower, upper)   a state leaves [lower, upper]; LeaveBox() = the system's state domain
    Condition(fn, name, direction)   a user condition fn(t, y, params) crossing zero

A run whose start already satisfies an event (margin <= 0 at t0) ends at t0 with that event.

The thresholds live on the event objects only; their defaults are the named constants of
``_tolerance`` (COLLAPSE_TOL, BLOWUP_BOUND, BLOWUP_ESCAPE, STEADY_TOL), and the names
"collapse", "blow_up", "steady" stand for ``Collapse()``, ``BlowUp()``, ``Steady()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from derivations import Names, Params

from ._tolerance import BLOWUP_BOUND, BLOWUP_ESCAPE, COLLAPSE_TOL, STEADY_TOL

__all__ = ["BUILTIN_EVENTS", "BlowUp", "Collapse", "Condition", "Event", "EventContext", "LeaveBox", "Steady",
           "as_events"]

_TINY = float(np.finfo(float).tiny)
"""Added to a closed box's margin so that a state exactly on the boundary counts as inside."""


@dataclass(frozen=True)
class EventContext:
    """What a margin may read besides (t, y, params): the array module and the system.

    Attributes
    ----------
    xp : module
        numpy or jax.numpy (the backend's array module).
    rhs : callable
        f(t, y, params) -> dy/dt in that module.
    state_names : tuple of str
        The system's state names, in state order.
    collapse_indices : tuple of int
        Indices of the system's collapse states (empty: no collapse).
    state_bounds : tuple of (float, float)
        (lower, upper) per state, floats (+-inf where unbounded).
    """

    xp: ModuleType
    rhs: Callable
    state_names: tuple[str, ...]
    collapse_indices: tuple[int, ...]
    state_bounds: tuple[tuple[float, float], ...]


class Event:
    """Base class of events: subclass it and write ``margin`` once with ``ctx.xp``.

    Attributes
    ----------
    name : str
        Recorded in ``Solution.event`` when the event ends a run.
    status : str
        The trajectory's status when it fires ("event" for user events; the built-ins give
        "collapsed", "blew_up", "steady").
    """

    name: str = "event"
    status: str = "event"

    def active(self, ctx: EventContext) -> bool:
        """False where the event cannot apply to the system (it is then dropped silently).

        Parameters
        ----------
        ctx : EventContext
            The system and array module of the run.

        Returns
        -------
        bool
            Whether the event applies (the base class: always).

        Raises
        ------
        ValueError
            The event names states the system does not have (``Collapse``) or a box that does
            not fit the states (``LeaveBox``).
        """
        return True

    def margin(self, t: ArrayLike, y: ArrayLike, params: Params, ctx: EventContext) -> ArrayLike:
        """Positive during a normal run, zero where the event happens (a scalar in ctx.xp).

        Each built-in event states its margin in its class docstring.

        Parameters
        ----------
        t : float or scalar array
            The time.
        y : array
            One state, shape (n_states,), in ``ctx.xp``.
        params : mapping str -> scalar array
            The parameters keyed by name.
        ctx : EventContext
            The system and array module of the run.

        Returns
        -------
        scalar array
            The margin, float64, in ``ctx.xp`` (traceable by JAX).

        Raises
        ------
        NotImplementedError
            The base class: a subclass must define it.
        """
        raise NotImplementedError

    def orient(self, m0: ArrayLike, ctx: EventContext) -> ArrayLike:
        """Sign by which ``margin`` is multiplied, from its value m0 at t0 (default +1).

        Parameters
        ----------
        m0 : scalar array
            The margin at the start of the run.
        ctx : EventContext
            The system and array module of the run.

        Returns
        -------
        float or scalar array
            +1 or -1 (``Condition`` with direction 0: the sign that makes the start positive).

        Raises
        ------
        TypeError
            Not raised by the built-ins; a subclass may raise for a margin it cannot orient.
        """
        return 1.0


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return v


@dataclass(frozen=True)
class Collapse(Event):
    """Collapse: every collapse state within ``tol`` of zero, ``max_i |y_i| <= tol``.

    The collapse states are the system's own (``ODESystem(collapse=...)``, i.e.
    ``system.collapse_indices``) unless ``states`` names others. A system without collapse
    states gets no collapse event (the event is dropped, not an error).

    Margin: ``max_{i in collapse} |y_i| - tol``.

    Parameters
    ----------
    tol : float
        The collapse radius (> 0, default COLLAPSE_TOL = 1e-8).
    states : sequence of str, optional
        Collapse states to use instead of the system's own.

    Attributes
    ----------
    tol : float
        As given.
    states : tuple of str or None
        As given.
    name : str
        "collapse".
    status : str
        "collapsed".

    Raises
    ------
    ValueError
        ``tol`` not a positive finite number, or ``states`` not a non-empty sequence of names.
    """

    tol: float = COLLAPSE_TOL
    states: tuple[str, ...] | None = None
    name: str = field(default="collapse", init=False)
    status: str = field(default="collapsed", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tol", _positive("Collapse tol", self.tol))
        if self.states is not None:
            states = (self.states,) if isinstance(self.states, str) else tuple(self.states)
            if not states or not all(isinstance(s, str) for s in states):
                raise ValueError(f"Collapse states must be a non-empty sequence of state names; got {self.states!r}")
            object.__setattr__(self, "states", states)

    def indices(self, ctx: EventContext) -> tuple[int, ...]:
        """The state indices this event watches in the system of ``ctx``.

        Parameters
        ----------
        ctx : EventContext
            The system and array module of the run.

        Returns
        -------
        tuple of int
            The indices of ``states`` (or the system's collapse indices).

        Raises
        ------
        ValueError
            ``states`` names states the system does not have.
        """
        if self.states is None:
            return tuple(ctx.collapse_indices)
        unknown = [s for s in self.states if s not in ctx.state_names]
        if unknown:
            raise ValueError(f"Collapse states {unknown} are not states of the system; states are {list(ctx.state_names)}")
        return tuple(ctx.state_names.index(s) for s in self.states)

    def active(self, ctx: EventContext) -> bool:
        return len(self.indices(ctx)) > 0

    def margin(self, t, y, params, ctx):
        idx = np.asarray(self.indices(ctx), dtype=int)
        return ctx.xp.max(ctx.xp.abs(y[idx])) - self.tol


@dataclass(frozen=True)
class BlowUp(Event):
    """Finite-time blow-up: ``max_i |y_i|`` reaches ``bound``.

    Margin: ``bound - max_i |y_i|``. A divergence such as (t* - t)^(-1/5) cannot reach a large
    bound in double precision (t* - t underflows first): the step size collapses instead. A run
    that stops that way (step budget, minimum step, solver failure) with max ``|y|`` above
    ``escape`` * max(1, max ``|y0|``) is also reported as blown up, at the time it stopped.

    Parameters
    ----------
    bound : float
        The bound on max_i ``|y_i|`` (> 0, default BLOWUP_BOUND = 1e8).
    escape : float
        The growth factor (> 1, default BLOWUP_ESCAPE = 10) that marks a stalled run as blown up.

    Attributes
    ----------
    bound, escape : float
        As given.
    name : str
        "blow_up".
    status : str
        "blew_up".

    Raises
    ------
    ValueError
        ``bound`` not a positive finite number, or ``escape`` not > 1.
    """

    bound: float = BLOWUP_BOUND
    escape: float = BLOWUP_ESCAPE
    name: str = field(default="blow_up", init=False)
    status: str = field(default="blew_up", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bound", _positive("BlowUp bound", self.bound))
        escape = _positive("BlowUp escape", self.escape)
        if escape <= 1:
            raise ValueError(f"BlowUp escape must be > 1; got {self.escape!r}")
        object.__setattr__(self, "escape", escape)

    def margin(self, t, y, params, ctx):
        return self.bound - ctx.xp.max(ctx.xp.abs(y))


@dataclass(frozen=True)
class Steady(Event):
    """Steady state: ``max_i |dy_i/dt|`` falls to ``tol`` (which must sit above the integration
    error, about atol).

    Margin: ``max_i |f_i(t, y)| - tol``.

    Parameters
    ----------
    tol : float
        The speed threshold (> 0, default STEADY_TOL = 1e-9).

    Attributes
    ----------
    tol : float
        As given.
    name, status : str
        "steady".

    Raises
    ------
    ValueError
        ``tol`` not a positive finite number.
    """

    tol: float = STEADY_TOL
    name: str = field(default="steady", init=False)
    status: str = field(default="steady", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tol", _positive("Steady tol", self.tol))

    def margin(self, t, y, params, ctx):
        return ctx.xp.max(ctx.xp.abs(ctx.rhs(t, y, params))) - self.tol


def _bounds(value: Any, what: str) -> tuple[float, ...] | float | None:
    if value is None:
        return None
    if isinstance(value, (Mapping, str, bytes)):
        raise TypeError(f"LeaveBox {what} must be a number or a sequence of numbers, one per state in the "
                        f"system's state order; got {type(value).__name__} {value!r:.60}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"LeaveBox {what} must be a number or a sequence of numbers (inf allowed); "
                        f"got {value!r:.60}") from None
    if arr.ndim > 1 or np.any(np.isnan(arr)):
        raise ValueError(f"LeaveBox {what} must be a number or a 1-D sequence of numbers (inf allowed); got {value!r}")
    return float(arr) if arr.ndim == 0 else tuple(float(v) for v in arr)


@dataclass(frozen=True)
class LeaveBox(Event):
    """Leaving the box lower <= y <= upper (closed: the boundary is inside).

    ``lower``/``upper``: a number for every state or one per state (-inf/inf or None for no
    bound). ``LeaveBox()`` with neither given is the system's own state domain
    (``system.state_bounds()``), named "leave_domain". Status "event"; ``Solution.event``
    records the name.

    Margin: min over finite bounds of (y_i - lower_i, upper_i - y_i), plus the smallest
    positive double so that a state exactly on the boundary is inside.

    Parameters
    ----------
    lower, upper : float or sequence of float, optional
        The box (default: the system's state domain).
    name : str
        Recorded in ``Solution.event`` (default "leave_box", or "leave_domain" when the box
        is the state domain).

    Attributes
    ----------
    lower, upper : float, tuple of float or None
        As given, as floats.
    name : str
        As given.
    status : str
        "event".

    Raises
    ------
    TypeError
        Bounds that are not numbers or sequences of numbers (e.g. a dict).
    ValueError
        NaN or nested bounds, or an empty name.
    """

    lower: float | Sequence[float] | None = None
    upper: float | Sequence[float] | None = None
    name: str = "leave_box"
    status: str = field(default="event", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lower", _bounds(self.lower, "lower"))
        object.__setattr__(self, "upper", _bounds(self.upper, "upper"))
        if self.lower is None and self.upper is None and self.name == "leave_box":
            object.__setattr__(self, "name", "leave_domain")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LeaveBox name must be a non-empty str; got {self.name!r}")

    def box(self, ctx: EventContext) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) as float arrays, one entry per state.

        Parameters
        ----------
        ctx : EventContext
            The system of the run.

        Returns
        -------
        tuple of numpy.ndarray
            (lower, upper), each of shape (n_states,), -inf/inf where unbounded.

        Raises
        ------
        ValueError
            A bound with the wrong number of entries, or lower > upper somewhere.
        """
        n = len(ctx.state_names)
        if self.lower is None and self.upper is None:
            b = np.array(ctx.state_bounds, dtype=float).reshape(n, 2)
            return b[:, 0], b[:, 1]
        out = []
        for v, fill, what in ((self.lower, -np.inf, "lower"), (self.upper, np.inf, "upper")):
            if v is None:
                arr = np.full(n, fill)
            else:
                arr = np.asarray(v, dtype=float)
                arr = np.full(n, float(arr)) if arr.ndim == 0 else arr
            if arr.shape != (n,):
                raise ValueError(f"LeaveBox {what} has {arr.size} entries for {n} states {list(ctx.state_names)}")
            out.append(arr.copy())
        lo, hi = out
        if np.any(lo > hi):
            raise ValueError(f"LeaveBox needs lower <= upper for every state; got lower={self.lower!r}, upper={self.upper!r}")
        return lo, hi

    def active(self, ctx: EventContext) -> bool:
        lo, hi = self.box(ctx)
        return bool(np.any(np.isfinite(lo)) or np.any(np.isfinite(hi)))

    def margin(self, t, y, params, ctx):
        xp = ctx.xp
        lo, hi = self.box(ctx)
        il, ih = np.flatnonzero(np.isfinite(lo)), np.flatnonzero(np.isfinite(hi))
        parts = []
        if il.size:
            parts.append(xp.min(y[il] - xp.asarray(lo[il])))
        if ih.size:
            parts.append(xp.min(xp.asarray(hi[ih]) - y[ih]))
        m = parts[0] if len(parts) == 1 else xp.minimum(parts[0], parts[1])
        return m + _TINY


@dataclass(frozen=True, eq=False)
class Condition(Event):
    """A user condition fn(t, y, params) -> float that ends the run where it crosses zero.

    ``fn`` gets y of shape (n_states,) and params keyed by name, as ``jax.numpy`` arrays in
    the JAX backend and NumPy arrays in the SciPy backend: write it with operations both
    support (indexing, arithmetic, or ``xp``-agnostic methods).

    Status "event". Margin: s * fn(t, y, params) with s = sign(fn(t0)) (direction 0), -1
    (direction +1) or +1 (direction -1).

    Parameters
    ----------
    fn : callable
        ``fn(t, y, params) -> float``.
    name : str, optional
        Recorded in ``Solution.event`` (default: fn's name, else "condition").
    direction : int
        0 (default) fires on a crossing either way: the run stays on fn's side at t0 (a start
        with fn = 0 ends at t0). +1 fires where fn rises through zero (the run stays where
        fn < 0), -1 where it falls through zero (the run stays where fn > 0); a start on the
        firing side ends at t0.

    Attributes
    ----------
    fn, name, direction
        As given (``name`` filled in).
    status : str
        "event".

    Raises
    ------
    TypeError
        ``fn`` is not callable.
    ValueError
        An empty name, or a direction other than -1, 0, +1.
    """

    fn: Callable[[ArrayLike, ArrayLike, Params], ArrayLike] = None
    name: str | None = None
    direction: int = 0
    status: str = field(default="event", init=False)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"Condition fn must be callable fn(t, y, params) -> float; got {self.fn!r:.80}")
        if self.name is None:
            n = getattr(self.fn, "__name__", "")
            object.__setattr__(self, "name", n if n.isidentifier() else "condition")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Condition name must be a non-empty str; got {self.name!r}")
        if isinstance(self.direction, bool) or self.direction not in (-1, 0, 1):
            raise ValueError(f"Condition direction must be -1, 0 or +1; got {self.direction!r}")

    def margin(self, t, y, params, ctx):
        return ctx.xp.asarray(self.fn(t, y, params), dtype=ctx.xp.float64).reshape(())

    def orient(self, m0, ctx):
        if self.direction == 0:
            return ctx.xp.where(m0 < 0, -1.0, 1.0)
        return -1.0 if self.direction > 0 else 1.0

    def __hash__(self) -> int:
        return hash((Condition, self.fn, self.name, self.direction))

    def __eq__(self, other) -> bool:
        return isinstance(other, Condition) and (self.fn, self.name, self.direction) == (other.fn, other.name, other.direction)


_SHORTHANDS = {"collapse": Collapse, "blow_up": BlowUp, "steady": Steady}

BUILTIN_EVENTS = Names.define(
    "BUILTIN_EVENTS",
    {"collapse": f"Collapse(): every collapse state within tol = COLLAPSE_TOL = {COLLAPSE_TOL:g} of 0 "
                 "(only where the system declares collapse states).",
     "blow_up": f"BlowUp(): max abs(y) reaches bound = BLOWUP_BOUND = {BLOWUP_BOUND:g}.",
     "steady": f"Steady(): max abs(dy/dt) falls to tol = STEADY_TOL = {STEADY_TOL:g}."},
    module=__name__,
    summary="Event names accepted by integrate(events=...), each the event object with its default "
            "threshold; pass the object for another, e.g. Collapse(tol=1e-6).")

EventLike = Event | str | Callable[[ArrayLike, ArrayLike, Params], ArrayLike]
"""One event as ``integrate`` takes it: an Event, a name of BUILTIN_EVENTS, or a condition function."""


def as_events(events: EventLike | Sequence[EventLike]) -> tuple[Event, ...]:
    """Event objects from ``events``: Event instances, the names of BUILTIN_EVENTS ("collapse",
    "blow_up", "steady": ``Collapse()``, ``BlowUp()``, ``Steady()`` with their default
    thresholds) and bare callables (Condition(fn)).

    Parameters
    ----------
    events : Event, str, callable, a sequence of these, or None
        The events of a run (None or () for none).

    Returns
    -------
    tuple of Event
        One object per event, in the order given.

    Raises
    ------
    ValueError
        An unknown name or a repeated event name.
    TypeError
        Anything else.
    """
    if events is None:
        return ()
    if isinstance(events, (str, Event)) or callable(events):
        events = (events,)
    try:
        items = list(events)
    except TypeError:
        raise TypeError(f"events must be a sequence of Event objects, names or callables; got {events!r:.80}") from None
    out: list[Event] = []
    for i, e in enumerate(items):
        if isinstance(e, Event):
            out.append(e)
        elif isinstance(e, str):
            if e not in _SHORTHANDS:
                raise ValueError(
                    f"events: {e!r} is not allowed; use Event objects (Collapse, BlowUp, Steady, LeaveBox, "
                    f"Condition), callables or names from {tuple(_SHORTHANDS)}"
                )
            out.append(_SHORTHANDS[e]())
        elif callable(e):
            n = getattr(e, "__name__", "")
            out.append(Condition(e, name=n if n.isidentifier() else f"condition{i}"))
        else:
            raise TypeError(f"events[{i}] must be an Event, a name or a callable; got {e!r:.80}")
    names = [e.name for e in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"events: names must be unique (they record which event fired); repeated: {dup}")
    return tuple(out)
