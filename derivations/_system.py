"""ODESystem: the plain container every analysis takes, and the generic operations on it.

    d states/dt = rhs(states; params)

An ODESystem is data: SymPy state and parameter Symbols, a SymPy Matrix of right-hand sides,
the domains the states and parameters live in, which states vanish together at "collapse",
and an optional invariant graph the system can be restricted to. Anyone can build one, by
hand or from strings (``ODESystem.from_equations``); ``derive()`` builds one from a model.
The numerics in ``dynamics`` read only this data and the capabilities derived from it
(polynomial? rational? how many states?), never a state's name.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Callable

import numpy as np
import sympy as sp

from .codegen import BACKENDS, is_traced, lambdified, state_array, xp
from ._interface import TIMES, DynamicalSystem, Switching
from ._switching import switching_parts
from ._typing import ArrayLike, Params

__all__ = ["ODESystem", "FrozenMap", "reduce", "freeze", "as_interval", "frozen_value", "parse_expression", "RhsFunction"]

RhsFunction = Callable[[ArrayLike, ArrayLike, Params], ArrayLike]
"""``f(t, y, params) -> dy/dt`` with y of shape (..., n_states) and params keyed by name."""

_REALS = sp.Interval(-sp.oo, sp.oo)


class FrozenMap(Mapping):
    """An immutable, hashable, picklable mapping (what systems hand out instead of dicts).

    Parameters
    ----------
    items : mapping or iterable of (key, value) pairs
        The entries, in order; read once, as ``dict(items)`` would.
    """

    __slots__ = ("_items", "_lookup")

    def __init__(self, items: Mapping | Iterable = ()):
        data = dict(items)
        object.__setattr__(self, "_items", tuple(data.items()))
        object.__setattr__(self, "_lookup", data)

    def __getitem__(self, key):
        return self._lookup[key]

    def __contains__(self, key) -> bool:
        return key in self._lookup

    def __iter__(self) -> Iterator:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items))  # order-free, as equality is

    def __eq__(self, other) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other.items())

    def __setattr__(self, name, value):
        raise AttributeError("FrozenMap is immutable")

    def __reduce__(self):
        return (FrozenMap, (self._items,))

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self._items) + "}"


def frozen_value(value: Any) -> Any:
    """Dicts become FrozenMaps and lists tuples, recursively; SymPy objects are immutable."""
    if isinstance(value, Mapping):
        return FrozenMap({k: frozen_value(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen_value(v) for v in value)
    if isinstance(value, sp.MatrixBase) and not isinstance(value, sp.ImmutableMatrix):
        return sp.ImmutableMatrix(value)
    return value


def as_interval(value: Any, what: str) -> sp.Interval:
    """A SymPy Interval from a pair (lower, upper) (closed where finite; None or +-inf for no
    bound) or a SymPy Interval (open/closed as given). Raises ValueError naming ``what``."""
    if isinstance(value, sp.Interval):
        return value
    if isinstance(value, sp.Set):
        raise ValueError(f"{what} must be an interval; got the set {value}")
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (lower, upper) or a sympy.Interval; got {value!r}") from None

    def bound(v, inf):
        if v is None:
            return inf
        if isinstance(v, bool):
            raise ValueError(f"{what} bounds must be numbers; got {v!r}")
        try:
            x = sp.sympify(v)
        except (sp.SympifyError, TypeError):
            raise ValueError(f"{what} bounds must be numbers; got {v!r}") from None
        if x in (sp.oo, -sp.oo):
            return x
        if not x.is_number or not x.is_real:
            raise ValueError(f"{what} bounds must be real numbers; got {v!r}")
        if isinstance(x, sp.Float):
            f = float(x)
            if math.isnan(f):
                raise ValueError(f"{what} bounds must not be NaN")
            if math.isinf(f):
                return sp.oo if f > 0 else -sp.oo
            return sp.Rational(f)  # the exact binary value: bounds stay exact
        return x

    lo, hi = bound(lo, -sp.oo), bound(hi, sp.oo)
    if lo > hi:
        raise ValueError(f"{what} = {value!r} is empty (lower > upper)")
    return sp.Interval(lo, hi)


def _symbols(values: Any, what: str) -> tuple[sp.Symbol, ...]:
    if isinstance(values, (str, sp.Symbol)):
        values = (values,)
    try:
        out = tuple(sp.Symbol(v) if isinstance(v, str) else v for v in values)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of sympy Symbols or names; got {values!r}") from None
    for v in out:
        if not isinstance(v, sp.Symbol):
            raise TypeError(f"{what} must hold sympy Symbols or names; got {type(v).__name__} {v!r}")
    names = [str(v) for v in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{what} has repeated names: {names}")
    return out


@dataclass(frozen=True, eq=False)
class ODESystem(DynamicalSystem):
    """An autonomous system d states/dt = rhs(states; params) (or a map, ``time="discrete"``:
    y_{n+1} = y_n + rhs(y_n)), as SymPy data; it implements ``DynamicalSystem``.

    Parameters
    ----------
    states : sequence of sympy.Symbol (or names)
        The state variables, in the order of ``rhs``.
    params : sequence of sympy.Symbol (or names)
        The parameters; every free symbol of ``rhs`` must be a state or a parameter.
    rhs : sympy Matrix or sequence of expressions
        d state/dt for each state. Polynomial and rational right-hand sides get exact
        equilibria; any other SymPy expression integrates and gets numerical analyses.
    state_domain, param_domain : mapping name -> interval, optional
        Where a state or parameter may lie: a pair ``(lower, upper)`` (closed where finite,
        None or inf for no bound) or a ``sympy.Interval`` (e.g. ``Interval.open(0, oo)``).
        Default: the whole real line.
    collapse : sequence of state names, optional
        States whose common zero is "collapse" (the collapse event, the collapsed flag of
        equilibria). Default: none.
    manifold : mapping state name -> expression, optional
        An invariant graph the system can be restricted to by ``reduce()`` (each named state
        as a function of the others); checked for invariance when used.
    name : str
        A label for reprs and figure titles.
    restricted_to : mapping state name -> expression, optional
        Set by ``reduce``: the graph of eliminated states this system lives on.
    time : {"continuous", "discrete"}
        A flow (default) or a map whose ``rhs`` is the increment y_{n+1} - y_n (``TIMES``).
    step_param : str, optional
        For a map: the parameter that is the time of one step (a learning rate), if any.
    scaling : mapping name -> number, optional
        Scaling powers of a scale-invariant system, keyed by state or parameter name: the
        flow commutes with x -> lambda^power x for every named x.
    weight_decay : str, optional
        With ``scaling``: the parameter eta that shrinks the scale, lambda = exp(-eta t).
    partial_collapse : mapping label -> state names, optional
        Named subsets of ``collapse`` that can vanish on their own.

    Raises
    ------
    TypeError
        Wrong types (states not Symbols, rhs not expressions).
    ValueError
        Lengths that disagree, repeated names, symbols in ``rhs`` that are neither states nor
        parameters, domains naming unknown symbols or empty intervals, collapse or manifold
        naming unknown states.

    Attributes are immutable; derived quantities (``jacobian``, ``numerators``, ...) are
    computed once per system.
    """

    states: tuple[sp.Symbol, ...]
    params: tuple[sp.Symbol, ...]
    rhs: sp.ImmutableMatrix
    state_domain: Mapping[str, sp.Interval] = field(default=None, kw_only=True)
    param_domain: Mapping[str, sp.Interval] = field(default=None, kw_only=True)
    collapse: tuple[str, ...] = field(default=None, kw_only=True)
    manifold: Mapping[str, sp.Expr] | None = field(default=None, kw_only=True)
    name: str = field(default="", kw_only=True)
    restricted_to: Mapping[str, sp.Expr] | None = field(default=None, kw_only=True)
    time: str = field(default="continuous", kw_only=True)
    step_param: str | None = field(default=None, kw_only=True)
    scaling: Mapping[str, float] | None = field(default=None, kw_only=True)
    weight_decay: str | None = field(default=None, kw_only=True)
    partial_collapse: Mapping[str, tuple[str, ...]] = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        states = _symbols(self.states, "states")
        params = _symbols(self.params, "params")
        if not states:
            raise ValueError("states must name at least one state")
        clash = {str(v) for v in states} & {str(v) for v in params}
        if clash:
            raise ValueError(f"names used both as a state and a parameter: {sorted(clash)}")
        try:
            rhs = sp.ImmutableMatrix([sp.sympify(r) for r in (self.rhs if not isinstance(self.rhs, sp.MatrixBase) else list(self.rhs))])
        except (sp.SympifyError, TypeError):
            raise TypeError(f"rhs must be a sympy Matrix or a sequence of expressions; got {self.rhs!r:.80}") from None
        if rhs.shape[0] != len(states):
            raise ValueError(f"rhs has {rhs.shape[0]} rows for {len(states)} states {[str(v) for v in states]}")
        by_name = {str(v): v for v in states + params}
        stray = sorted(str(v) for v in rhs.free_symbols if str(v) not in by_name or by_name[str(v)] != v)
        timed = [str(v) for v, r in zip(states, rhs) if "t" in stray and any(str(x) == "t" for x in r.free_symbols)]
        if timed:
            raise ValueError(_time_message("rhs", ", ".join(timed)))
        if stray:
            raise ValueError(
                f"rhs uses symbols that are neither states nor params: {stray}; "
                f"states: {[str(v) for v in states]}, params: {[str(v) for v in params]}"
            )
        set_("states", states)
        set_("params", params)
        set_("rhs", rhs)
        set_("state_domain", self._domains(self.state_domain, self.state_names, "state_domain"))
        set_("param_domain", self._domains(self.param_domain, self.param_names, "param_domain"))
        collapse = () if self.collapse is None else (self.collapse,) if isinstance(self.collapse, str) else tuple(self.collapse)
        unknown = [c for c in collapse if c not in self.state_names]
        if unknown:
            raise ValueError(f"collapse names unknown states {unknown}; states are {list(self.state_names)}")
        set_("collapse", tuple(str(c) for c in collapse))
        if self.manifold is not None:
            graph = {}
            for k, v in dict(self.manifold).items():
                name = str(k)
                if name not in self.state_names:
                    raise ValueError(f"manifold names unknown state {name!r}; states are {list(self.state_names)}")
                graph[name] = parse_expression(v, by_name, f"manifold[{name!r}]")
            set_("manifold", FrozenMap(graph))
        if self.restricted_to is not None:
            set_("restricted_to", FrozenMap({str(k): sp.sympify(v) for k, v in dict(self.restricted_to).items()}))
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str; got {type(self.name).__name__}")
        self._declare_structure(set_)
        if self.time == "continuous":
            self._switching_parts  # noqa: B018 - a right-hand side not affine in a Heaviside factor fails here

    def _declare_structure(self, set_: Callable[[str, Any], None]) -> None:
        """Validate and freeze time, step_param, scaling, weight_decay and partial_collapse."""
        if self.time not in TIMES:
            raise ValueError(f"time must be one of {list(TIMES)}; got {self.time!r}")
        if self.step_param is not None:
            if self.time != "discrete":
                raise ValueError("step_param is for maps (time='discrete'); a flow's time is its own")
            if str(self.step_param) not in self.param_names:
                raise ValueError(f"step_param must name a parameter; got {self.step_param!r}, params are {list(self.param_names)}")
            set_("step_param", str(self.step_param))
        names = set(self.state_names) | set(self.param_names)
        if self.scaling is not None:
            if not isinstance(self.scaling, Mapping):
                raise TypeError(f"scaling must be a dict {{state or param name: power}}; got {type(self.scaling).__name__}")
            unknown = sorted(str(k) for k in self.scaling if str(k) not in names)
            if unknown:
                raise ValueError(f"scaling names unknown {unknown}; states and params are {sorted(names)}")
            powers = {}
            for k, v in self.scaling.items():
                if isinstance(v, bool) or not isinstance(v, (int, float, sp.Number)) or not math.isfinite(float(v)):
                    raise TypeError(f"scaling[{str(k)!r}] must be a finite number (a power); got {v!r}")
                powers[str(k)] = v
            set_("scaling", FrozenMap(powers))
        if self.weight_decay is not None:
            if self.scaling is None:
                raise ValueError("weight_decay is the rate that shrinks a declared scale: declare scaling too")
            if str(self.weight_decay) not in self.param_names:
                raise ValueError(f"weight_decay must name a parameter; got {self.weight_decay!r}, params are {list(self.param_names)}")
            set_("weight_decay", str(self.weight_decay))
        sets = {}
        for label, members in dict(self.partial_collapse or {}).items():
            members = (members,) if isinstance(members, str) else tuple(str(m) for m in members)
            stray = [m for m in members if m not in self.collapse]
            if stray or not members:
                raise ValueError(f"partial_collapse[{label!r}] must name collapse states {list(self.collapse)}; got {list(members)}")
            sets[str(label)] = members
        set_("partial_collapse", FrozenMap(sets))

    @staticmethod
    def _domains(domain: Any, names: Sequence[str], what: str) -> FrozenMap:
        if domain is None:
            return FrozenMap()
        if not isinstance(domain, Mapping):
            raise TypeError(f"{what} must be a dict {{name: (lower, upper)}}; got {type(domain).__name__}")
        out = {}
        for k, v in domain.items():
            if str(k) not in names:
                raise ValueError(f"{what} names unknown {str(k)!r}; allowed names: {list(names)}")
            interval = as_interval(v, f"{what}[{str(k)!r}]")
            if interval != _REALS:
                out[str(k)] = interval
        return FrozenMap(out)

    # -- construction from strings ---------------------------------------------------------
    @classmethod
    def from_equations(
        cls,
        equations: Mapping[str, str | sp.Expr],
        params: Sequence[str] = (),
        **options: object,
    ) -> ODESystem:
        """Build a system from ``{state name: right-hand side}``, strings or expressions.

        Example: ``ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"},
        params=("a", "b", "c", "d"))``. Every name in a string must be a state, a parameter
        or a function SymPy knows (exp, log, sqrt, sin, ...); ``^`` means power. Names such as
        ``beta``, ``gamma``, ``E``, ``I`` or ``S`` are plain symbols when declared, and so is
        ``lambda`` (a Python keyword: it can be written only when declared). The time ``t`` is
        not a name: the system is autonomous (declare a state t with d t/dt = 1 for a
        time-dependent one).

        Parameters
        ----------
        equations : mapping state name -> str or sympy expression
            The right-hand side of each state; the keys, in order, are the states.
        params : sequence of str
            The parameter names.
        **options
            The keyword arguments of ``ODESystem`` (state_domain, param_domain, collapse,
            manifold, name, time, step_param, scaling, weight_decay, partial_collapse).
            With ``time="discrete"`` the equations are the increments y_{n+1} - y_n; see
            ``from_map`` for next-state equations.

        Returns
        -------
        ODESystem
            The system (an instance of the class it is called on).

        Raises
        ------
        TypeError
            ``equations`` is not a mapping of names to strings or expressions.
        ValueError
            Unknown names in the expressions (listed), an undeclared ``t`` (non-autonomous)
            or Python keyword, unparsable strings, or the checks of ``ODESystem``.
        """
        if not isinstance(equations, Mapping) or not equations:
            raise TypeError("equations must be a non-empty dict {state name: right-hand side}")
        states = _symbols([str(k) for k in equations], "states")
        params = _symbols(params, "params")
        table = {str(v): v for v in states + params}
        rhs = [parse_expression(v, table, f"equations[{str(k)!r}]", rhs_of=str(k)) for k, v in equations.items()]
        return cls(states, params, sp.ImmutableMatrix(rhs), **options)

    @classmethod
    def from_map(
        cls,
        next_state: Mapping[str, str | sp.Expr],
        params: Sequence[str] = (),
        **options: object,
    ) -> ODESystem:
        """Build a map from ``{state name: its value at the next step}``, strings or expressions.

        Example, the logistic map x_{n+1} = r x_n (1 - x_n):
        ``ODESystem.from_map({"x": "r*x*(1 - x)"}, params=("r",))``. The system stores the
        increment x_{n+1} - x_n as its right-hand side (``time="discrete"``), which
        ``dynamics.iterate`` steps.

        Parameters
        ----------
        next_state : mapping state name -> str or sympy expression
            Each state's value after one step, in the states and parameters.
        params : sequence of str
            The parameter names.
        **options
            The keyword arguments of ``ODESystem`` (``time`` is "discrete" and cannot be given).

        Returns
        -------
        ODESystem
            The map.

        Raises
        ------
        TypeError
            ``next_state`` is not a mapping of names to expressions.
        ValueError
            ``time`` given, or the checks of ``from_equations``.
        """
        if "time" in options:
            raise ValueError("from_map builds a map (time='discrete'); do not pass time")
        system = cls.from_equations(next_state, params, time="discrete", **options)
        return replace(system, rhs=sp.ImmutableMatrix([r - v for r, v in zip(system.rhs, system.states)]))

    # -- the interface: layout and capabilities ------------------------------------------------
    @property
    def state_layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Every state a scalar group: ``((name, ()), ...)``."""
        return tuple((str(v), ()) for v in self.states)

    @property
    def symbolic(self) -> ODESystem:
        """The system itself: its equations are explicit SymPy data."""
        return self

    # -- names and symbols -----------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        """The state names, in state-vector order."""
        return tuple(map(str, self.states))

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameter names, in order (the keys ``check_params`` requires)."""
        return tuple(map(str, self.params))

    @property
    def n_states(self) -> int:
        """The number of states (the last axis of a state array)."""
        return len(self.states)

    @property
    def symbols(self) -> dict[str, sp.Symbol]:
        """Every state and parameter Symbol keyed by name (a new dict on each call)."""
        return {str(v): v for v in self.states + self.params}

    @property
    def equations(self) -> dict[str, sp.Expr]:
        """``{state name: d state/dt}`` (a new dict on each call)."""
        return dict(zip(self.state_names, self.rhs))

    # -- derived quantities (computed once) ------------------------------------------------
    @cached_property
    def jacobian(self) -> sp.ImmutableMatrix:
        """d rhs / d states, symbolic."""
        return sp.ImmutableMatrix(self.rhs.jacobian(self.states))

    @cached_property
    def _fractions(self) -> tuple[tuple[sp.Expr, sp.Expr], ...]:
        # no cancellation: a factor common to numerator and denominator marks a removable
        # point where the right-hand side is undefined, which is no equilibrium
        return tuple(sp.fraction(sp.together(r)) for r in self.rhs)

    @cached_property
    def is_rational(self) -> bool:
        """Every right-hand side is a ratio of polynomials in the states (coefficients may be
        any expressions in the parameters)."""
        return all(_is_poly(num, self.states) and _is_poly(den, self.states) for num, den in self._fractions)

    @cached_property
    def is_polynomial(self) -> bool:
        """Every right-hand side is a polynomial in the states."""
        return self.is_rational and all(not (den.free_symbols & set(self.states)) for _, den in self._fractions)

    @property
    def numerators(self) -> sp.ImmutableMatrix:
        """Numerators of the right-hand sides over a common denominator, common factors with
        the denominator not cancelled (rational systems)."""
        self._require("numerators", rational=True)
        return sp.ImmutableMatrix([n for n, _ in self._fractions])

    @property
    def denominators(self) -> sp.ImmutableMatrix:
        """Denominators of the right-hand sides, not cancelled against the numerators (rational
        systems): the right-hand side is undefined at their zeros (poles and removable points),
        which the system's domain excludes."""
        self._require("denominators", rational=True)
        return sp.ImmutableMatrix([d for _, d in self._fractions])

    def _require(self, what: str, *, rational: bool = False, polynomial: bool = False, one_state: bool = False) -> None:
        """Raise ValueError saying why ``what`` cannot serve this system."""
        label = self.name or "this system"
        if polynomial and not self.is_polynomial:
            raise ValueError(f"{what} needs a right-hand side polynomial in the states; {label}'s is not")
        if rational and not self.is_rational:
            raise ValueError(f"{what} needs a right-hand side rational in the states; {label}'s is not")
        if one_state and self.n_states != 1:
            raise ValueError(
                f"{what} needs a one-state system; {label} has states {list(self.state_names)}. Restrict it to an "
                "invariant graph with derivations.reduce(system, {state: expression}) or hold states as "
                "parameters with derivations.freeze(system, names)"
            )

    @property
    def order(self) -> int | None:
        """Degree of the numerator in the state, for a one-state rational system (after
        restriction to ``manifold`` when the system declares one); None otherwise."""
        system = self.reduce() if self.manifold is not None else self
        if system.n_states != 1 or not system.is_rational:
            return None
        return sp.Poly(system.numerators[0], system.states[0]).degree()

    # -- switching (piecewise-smooth flows) ----------------------------------------------------
    @cached_property
    def _switching_parts(self) -> tuple:
        return switching_parts(tuple(self.rhs), self.states, self.state_names + self.param_names)

    @cached_property
    def switching(self) -> Switching | None:
        """The switching functions of a piecewise-smooth flow, read from the right-hand side:
        each distinct Heaviside(sigma) factor whose argument depends on the states is a
        switching function sigma (``sign(sigma)`` is 2 H(sigma) - 1; H(-sigma) is 1 - H(sigma)),
        and ``convex`` is the system with each factor replaced by a weight parameter h_k in
        [0, 1] (the Filippov convexification f0 + sum_k h_k g_k). None for a smooth right-hand
        side or a map (a map's steps need no convexification)."""
        if self.time != "continuous":
            return None
        sigmas, weights, rows = self._switching_parts
        if not sigmas:
            return None
        convex = ODESystem(
            self.states, self.params + weights, sp.ImmutableMatrix(rows), state_domain=self.state_domain,
            param_domain={**self.param_domain, **{str(h): (0, 1) for h in weights}}, collapse=self.collapse,
            name=f"{self.name} (convexified)" if self.name else "", scaling=self.scaling,
            weight_decay=self.weight_decay, partial_collapse=self.partial_collapse,
        )
        raw = lambdified(self.states + self.params, sigmas, "jax")
        n, pnames = self.n_states, self.param_names

        def functions(y, params):
            import jax.numpy as jnp

            y = jnp.asarray(y, dtype=jnp.float64)
            out = raw(*[y[..., i] for i in range(n)], *[params[k] for k in pnames])
            return jnp.stack(jnp.broadcast_arrays(*[jnp.asarray(o, dtype=jnp.float64) for o in out]), axis=-1)

        return Switching(functions, convex, tuple(map(str, weights)), tuple(sigmas),
                         "; ".join(f"{sp.sstr(s)} = 0" for s in sigmas))

    # -- numerics ----------------------------------------------------------------------------
    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params) -> dy/dt`` in JAX (float64): jit-, vmap- and grad-compatible.

        ``y`` has shape (..., n_states); ``params`` is a dict keyed by parameter name whose
        values are scalars or arrays broadcasting against y's batch shape. With ``checked``
        (default) the names, the last axis of y and finiteness are validated when concrete;
        ``checked=False`` skips that, for inner loops whose inputs were validated once.

        Parameters
        ----------
        checked : bool
            Validate concrete inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning dy/dt as a JAX array of y's shape.

        Raises
        ------
        ValueError
            Not when building: the returned function raises it (when ``checked``) for missing
            or unknown parameter names, a last axis of ``y`` other than ``n_states``, or
            non-finite values.
        """
        return _rhs_function(self, "jax", checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """Same as ``to_jax`` with NumPy arrays (for scipy.integrate and friends).

        Parameters
        ----------
        checked : bool
            Validate the inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning dy/dt as a float64 ndarray of y's shape.

        Raises
        ------
        ValueError
            Not when building: the returned function raises it (when ``checked``) for missing
            or unknown parameter names, a last axis of ``y`` other than ``n_states``, or
            non-finite values.
        """
        return _rhs_function(self, "numpy", checked)

    # -- restriction -------------------------------------------------------------------------
    def reduce(self) -> ODESystem:
        """The system restricted to its declared invariant ``manifold`` (see ``reduce``).

        Returns
        -------
        ODESystem
            The restricted system (same class), ``restricted_to`` recording the graph.

        Raises
        ------
        ValueError
            The system declares no manifold, or the graph is not invariant.
        """
        if self.manifold is None:
            raise ValueError(f"{self.name or 'this system'} declares no invariant manifold; use derivations.reduce(system, graph)")
        return reduce(self, self.manifold)

    def freeze(self, *names: str) -> ODESystem:
        """The same system with the states ``names`` held fixed as parameters (see ``freeze``).

        Parameters
        ----------
        *names : str
            The states to hold fixed.

        Returns
        -------
        ODESystem
            The system without those states' equations; they are now parameters.

        Raises
        ------
        ValueError
            Unknown state names, none given, or every state named.
        """
        return freeze(self, *names)

    def _restricted(self, **changes: Any) -> ODESystem:
        """A copy with ``changes``; subclasses drop data that no longer applies."""
        return replace(self, **changes)

    # -- display -------------------------------------------------------------------------------
    def latex(self) -> str:
        """The equations as a LaTeX ``aligned`` block.

        Returns
        -------
        str
            One line ``\\dot{x} &= rhs`` per state, without math delimiters.
        """
        lines = [rf"\dot{{{sp.latex(v)}}} &= {sp.latex(r)}" for v, r in zip(self.states, self.rhs)]
        return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$${self.latex()}$$"

    def __str__(self) -> str:
        lines = [f"ODESystem {self.name}".rstrip(), f"  states: {', '.join(self.state_names)}",
                 f"  params: {', '.join(self.param_names) or '(none)'}"]
        lines += [f"  d{v}/dt = {sp.sstr(r)}" for v, r in self.equations.items()]
        for what, dom in (("state", self.state_domain), ("param", self.param_domain)):
            if dom:
                lines.append(f"  {what} domain: " + ", ".join(f"{k} in {v}" for k, v in dom.items()))
        if self.collapse:
            lines.append(f"  collapse: {' = '.join(self.collapse)} = 0")
        if self.manifold is not None:
            lines.append("  invariant manifold: " + ", ".join(f"{k} = {sp.sstr(v)}" for k, v in self.manifold.items()))
        if self.restricted_to is not None:
            lines.append("  restricted to: " + ", ".join(f"{k} = {sp.sstr(v)}" for k, v in self.restricted_to.items()))
        return "\n".join(lines)

    def __repr__(self) -> str:
        name = f"{self.name!r}, " if self.name else ""
        return f"{type(self).__name__}({name}states=({', '.join(self.state_names)}), params=({', '.join(self.param_names)}))"

    # -- identity --------------------------------------------------------------------------------
    def _key(self) -> tuple:
        return (type(self), self.states, self.params, self.rhs, self.state_domain, self.param_domain,
                self.collapse, self.manifold, self.name, self.restricted_to, self.time, self.step_param,
                self.scaling, self.weight_decay, self.partial_collapse)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __getstate__(self) -> dict:
        # derived quantities are recomputed after unpickling, never stored with the system
        return {k: v for k, v in self.__dict__.items() if k in self.__dataclass_fields__}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


# -- helpers ------------------------------------------------------------------------------------

_ALLOWED_FUNCTIONS = {
    name: getattr(sp, name)
    for name in ("exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "atan", "asin", "acos",
                 "Abs", "sign", "Min", "Max", "Rational", "Heaviside", "erf")
}
_ALLOWED_FUNCTIONS["abs"] = sp.Abs
_CONSTANTS = {"pi": sp.pi}


_KEYWORD_ALIASES = {"lambda": "lam"}
"""The name suggested for a symbol whose name is a Python keyword (verify's mapping knows lam)."""


def _keywords_in(text: str) -> list[str]:
    """The Python keywords written as names in ``text`` (they do not parse as symbols)."""
    return sorted(w for w in set(re.findall(r"[A-Za-z_]\w*", text))
                  if keyword.iskeyword(w) and w not in ("True", "False", "None"))


def _keyword_message(what: str, text: str, word: str) -> str:
    alt = _KEYWORD_ALIASES.get(word, word + "_")
    return (
        f"{what} = {text!r}: {word} is a Python keyword, which an equation string can only use as a declared "
        f"name: declare it (e.g. params=(..., {word!r})) and it is read as that symbol, or name the symbol {alt} "
        f"and map it back where a documented name is needed, e.g. verify(..., mapping={{{alt!r}: {word!r}}})"
    )


def _time_message(what: str, rhs_of: str | None) -> str:
    whose = f"the right-hand side of {rhs_of}" if rhs_of is not None else what
    return (
        f"non-autonomous systems are not supported (yet): {whose} uses t. Declare t as a state with "
        f"d t/dt = 1 to make the system autonomous (or as a parameter if it is a constant)"
    )


def parse_expression(text: Any, table: dict[str, sp.Symbol], what: str, rhs_of: str | None = None) -> sp.Expr:
    """``text`` (a string, number or SymPy expression) as an expression in the symbols of
    ``table``: unknown names, unknown functions and unparsable strings raise a ValueError
    naming ``what``.

    A declared name that is a Python keyword (``lambda``) is read as its symbol; an undeclared
    one gets a message naming the fix. The time ``t``, unless declared, is refused as
    non-autonomous (``rhs_of``: the state whose right-hand side ``text`` is, for the message).
    """
    if isinstance(text, sp.Basic):
        expr = text
    elif isinstance(text, (int, float)) and not isinstance(text, bool):
        expr = sp.sympify(text)
    elif isinstance(text, str):
        source, names_table = text.replace("^", "**"), dict(table)
        for word in _keywords_in(source):
            if word not in table:
                raise ValueError(_keyword_message(what, text, word))
            alias = word + "_kw"
            while alias in names_table:
                alias += "_"
            source = re.sub(rf"\b{word}\b", alias, source)
            names_table[alias] = table[word]
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as err:
            raise ValueError(f"{what} = {text!r} does not parse: {err.msg}") from None
        called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        bad_calls = sorted(c for c in called if c not in _ALLOWED_FUNCTIONS or c in names_table)
        unknown = sorted(n for n in names - called if n not in names_table and n not in _CONSTANTS)
        if "t" in unknown:
            raise ValueError(f"{what} = {text!r}: " + _time_message(what, rhs_of))
        if unknown or bad_calls:
            parts = ([f"unknown names {unknown}"] if unknown else []) + (
                [f"unknown functions {bad_calls}"] if bad_calls else [])
            raise ValueError(
                f"{what} = {text!r}: {'; '.join(parts)}. Declared states and params: {sorted(table)}; "
                f"functions: {sorted(_ALLOWED_FUNCTIONS)}"
            )
        local = {**_ALLOWED_FUNCTIONS, **_CONSTANTS, **names_table}
        try:
            expr = sp.parse_expr(source, local_dict=local, global_dict={"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol, "Function": sp.Function, **local})
        except Exception as err:  # noqa: BLE001 - SymPy raises many kinds on bad input
            raise ValueError(f"{what} = {text!r} does not parse: {err}") from None
    else:
        raise TypeError(f"{what} must be a string or a sympy expression; got {type(text).__name__}")
    unknown = sorted(str(s) for s in expr.free_symbols if table.get(str(s)) != s)
    if "t" in unknown:
        raise ValueError(_time_message(what, rhs_of))
    if unknown:
        raise ValueError(f"{what} uses unknown symbols {unknown}; declared: {sorted(table)}")
    return expr


def _is_poly(expr: sp.Expr, gens: Sequence[sp.Symbol]) -> bool:
    try:
        sp.Poly(expr, *gens)
    except sp.PolynomialError:
        return False
    return True


def _rhs_function(system: ODESystem, backend: str, checked: bool = True) -> RhsFunction:
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not allowed; choose one of {BACKENDS}")
    raw = lambdified(system.states + system.params, tuple(system.rhs), backend)
    names, pnames, n = system.state_names, system.param_names, system.n_states
    mod = xp(backend)

    def f(t, y, params):
        if checked:
            y = state_array(y, n, names, backend)
            given = system.check_params(params, batch=True)
            vals = [v if is_traced(v) else mod.asarray(float(v) if isinstance(v, sp.Basic) else v, dtype=mod.float64)
                    for v in given.values()]
        else:
            vals = [params[k] for k in pnames]
        out = raw(*[y[..., i] for i in range(n)], *vals)
        return mod.stack(mod.broadcast_arrays(*[mod.asarray(o, dtype=mod.float64) for o in out]), axis=-1)

    f.__doc__ = f"d({', '.join(names)})/dt of {system.name or 'the system'}; params: {', '.join(system.param_names)}."
    return f


# -- generic operations ----------------------------------------------------------------------------


def reduce(system: ODESystem, graph: Mapping[sp.Symbol | str, sp.Expr | str], *, check: bool = True) -> ODESystem:
    """Restrict ``system`` to the invariant graph ``{state: expression in the other states}``.

    The graph x_i = h_i(others) is invariant when d/dt (x_i - h_i) vanishes on it:
    rhs_i - sum_j dh_i/dx_j rhs_j = 0 after substituting the graph. That is checked
    symbolically (``sympy.simplify``), and where simplification cannot decide, at 20 random
    points: the residual must be at most INVARIANCE_RTOL (1e-10) times the size of the terms
    it is made of (the sum of the absolute values of the terms of rhs_i and of each
    dh_i/dx_j rhs_j there), so float coefficients that cancel up to rounding pass and a small
    but genuine residual does not, however small the coefficients. The restricted system keeps
    the other states, their domains, the remaining collapse states and the parameters;
    ``restricted_to`` of the result records the graph (together with any earlier restriction)
    and its ``manifold`` is None.

    Parameters
    ----------
    system : ODESystem
        The system to restrict.
    graph : mapping state (Symbol or name) -> expression (SymPy or string) in the other states
        The eliminated states as functions of the kept ones.
    check : bool
        Verify invariance (default). ``check=False`` restricts anyway (an approximation, e.g.
        a slow manifold); the result is then not the system's own dynamics.

    Returns
    -------
    ODESystem
        The restricted system, of the same class as ``system``.

    Raises
    ------
    TypeError
        ``system`` is not an ODESystem or ``graph`` not a mapping.
    ValueError
        Unknown states, a graph that refers to its own eliminated states, or a graph that is
        not invariant (the residual is named).
    """
    if not isinstance(system, ODESystem):
        raise TypeError(f"system must be an ODESystem; got {type(system).__name__}")
    if system.time != "continuous":
        raise ValueError("reduce restricts a flow to an invariant graph; this system is a map (time='discrete')")
    if not isinstance(graph, Mapping) or not graph:
        raise TypeError("graph must be a non-empty dict {state: expression in the other states}")
    table = system.symbols
    on: dict[sp.Symbol, sp.Expr] = {}
    for k, v in graph.items():
        name = str(k)
        if name not in system.state_names:
            raise ValueError(f"graph names unknown state {name!r}; states are {list(system.state_names)}")
        on[table[name]] = parse_expression(v, table, f"graph[{name!r}]") if isinstance(v, str) else sp.sympify(v)
    for x, h in on.items():
        if h.free_symbols & set(on):
            raise ValueError(f"graph for {x} uses eliminated states {sorted(map(str, h.free_symbols & set(on)))}")
    keep = [i for i, v in enumerate(system.states) if v not in on]
    if not keep:
        raise ValueError("graph eliminates every state; keep at least one")
    if check:
        for x, h in on.items():
            i = system.states.index(x)
            pieces = [system.rhs[i]] + [-sp.diff(h, system.states[j]) * system.rhs[j] for j in keep]
            pieces = [piece.subs(on) for piece in pieces]
            residual = sp.Add(*pieces)
            if not _vanishes(residual, system.states + system.params, pieces):
                raise ValueError(
                    f"the graph {x} = {h} is not invariant: d/dt({x} - ({h})) on it is {sp.simplify(residual)}, "
                    "not 0. Pass check=False to restrict anyway (an approximation)."
                )
    rhs = sp.ImmutableMatrix([sp.expand(sp.cancel(system.rhs[i].subs(on))) for i in keep])
    names = {str(x) for x in on}
    return system._restricted(
        states=tuple(system.states[i] for i in keep),
        rhs=rhs,
        state_domain=FrozenMap({k: v for k, v in system.state_domain.items() if k not in names}),
        collapse=tuple(c for c in system.collapse if c not in names),
        manifold=None,
        **_kept_structure(system, names),
        restricted_to=FrozenMap({**(system.restricted_to or {}), **{str(x): h for x, h in on.items()}}),
        name=f"{system.name} on {', '.join(f'{x} = {h}' for x, h in on.items())}" if system.name else "",
    )


def _kept_structure(system: ODESystem, eliminated: set[str] | tuple[str, ...]) -> dict[str, Any]:
    """The declared scaling and partial-collapse sets without the eliminated states."""
    sets = {k: tuple(m for m in v if m not in eliminated) for k, v in system.partial_collapse.items()}
    scaling = None if system.scaling is None else {k: v for k, v in system.scaling.items() if k not in eliminated}
    return {"partial_collapse": {k: v for k, v in sets.items() if v},
            "scaling": scaling, "weight_decay": system.weight_decay if scaling is not None else None}


INVARIANCE_RTOL = 1e-10
"""``reduce`` accepts a residual that simplification cannot decide when, at every sample point,
it is at most INVARIANCE_RTOL times the sum of the absolute values of the terms it is made of (float coefficients that
cancel exactly in the model cancel here up to ~1e-16 of that size)."""


def _vanishes(expr: sp.Expr, symbols: Sequence[sp.Symbol], pieces: Sequence[sp.Expr] = ()) -> bool:
    """expr = sum(pieces) is identically zero: symbolically, or numerically at 20 random points
    within INVARIANCE_RTOL of the size of its terms (the expanded terms of each piece)."""
    if expr == 0:
        return True
    simplified = sp.simplify(sp.cancel(sp.together(expr)))
    if simplified == 0:
        return True
    if not simplified.free_symbols:
        return False
    terms = [t for piece in (pieces or (expr,)) for t in sp.Add.make_args(sp.expand(piece))]
    f = sp.lambdify(list(symbols), simplified, modules="numpy")
    size = sp.lambdify(list(symbols), sp.Add(*[sp.Abs(t) for t in terms]), modules="numpy")
    rng = np.random.default_rng(0)
    hits = 0
    with np.errstate(all="ignore"):
        for _ in range(20):
            vals = rng.uniform(0.1, 2.0, len(symbols))
            try:
                v = complex(f(*vals))
                scale = float(size(*vals))
            except (ZeroDivisionError, OverflowError, ValueError, TypeError):
                continue
            if not (np.isfinite(v) and np.isfinite(scale)):
                continue
            hits += 1
            if abs(v) > INVARIANCE_RTOL * scale:
                return False
    return hits > 0


def freeze(system: ODESystem, *names: str) -> ODESystem:
    """The system with the states ``names`` held fixed: they become parameters (their
    equations dropped, their domains kept as parameter domains), e.g. Tian et al.'s analysis
    of the EMA mode with tau frozen.

    Parameters
    ----------
    system : ODESystem
        The system.
    *names : str
        The states to hold fixed.

    Returns
    -------
    ODESystem
        The system (same class) with those states as its last parameters.

    Raises
    ------
    TypeError
        ``system`` is not an ODESystem.
    ValueError
        Unknown state names, or every state frozen.
    """
    if not isinstance(system, ODESystem):
        raise TypeError(f"system must be an ODESystem; got {type(system).__name__}")
    names = tuple(str(n) for n in names)
    unknown = [n for n in names if n not in system.state_names]
    if unknown or not names:
        raise ValueError(f"freeze needs state names; unknown {unknown}; states are {list(system.state_names)}")
    keep = [i for i, n in enumerate(system.state_names) if n not in names]
    if not keep:
        raise ValueError("freeze would hold every state fixed; keep at least one")
    return system._restricted(
        states=tuple(system.states[i] for i in keep),
        params=system.params + tuple(system.symbols[n] for n in names),
        rhs=sp.ImmutableMatrix([system.rhs[i] for i in keep]),
        state_domain=FrozenMap({k: v for k, v in system.state_domain.items() if k not in names}),
        param_domain=FrozenMap({**system.param_domain, **{k: v for k, v in system.state_domain.items() if k in names}}),
        collapse=tuple(c for c in system.collapse if c not in names),
        manifold=None if system.manifold is None or set(system.manifold) & set(names) else system.manifold,
        partial_collapse=_kept_structure(system, names)["partial_collapse"],
        name=f"{system.name} with {', '.join(names)} fixed" if system.name else "",
    )
