"""bifurcation(system, (param, values), params): branches of equilibria of any ODESystem across a
parameter, with the fold, transcritical, pitchfork and Hopf points located and labelled.

A system that declares an invariant ``manifold`` is first restricted to it (``system.reduce()``);
the analysis decides by capability and by the system's data, never by a name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import sympy as sp

from derivations import DynamicalSystem, FrozenMap, Names, ODESystem, Params

from ._display import html_table, short_array
from ._equilibria import equilibria
from ._continuation import continued_bifurcation, continue_equilibrium
from ._normal_form import normal_form_kind
from ._prepare import MAX_BISECTIONS, check_sweep, label, numeric, prepared, read_only
from ._progress import progress_bar
from ._rationalise import Rationalised, rationalise
from ._roots import roots_batch
from ._tolerance import COARSE_RTOL, COLLISION_RTOL, LOCATE_RTOL, RTOL, SINGULAR_COND, check_tol, is_zero
from ._value import Value

__all__ = ["bifurcation", "Bifurcation", "BifurcationPoint", "Branch", "BIFURCATION_KINDS"]

BIFURCATION_KINDS = Names.define("BIFURCATION_KINDS", {
    "fold": "saddle-node: two equilibria meet and vanish, a real eigenvalue passes through 0.",
    "transcritical": "two branches cross and exchange stability; the number of equilibria is unchanged.",
    "pitchfork": "one branch splits into three (a symmetric triple root).",
    "hopf": "a complex pair of eigenvalues crosses the imaginary axis; the number of equilibria is unchanged.",
    "branch point": "two branches of equilibria (or cycles) cross: the Jacobian in state and parameter loses rank.",
    "neutral saddle": "two real eigenvalues sum to zero: a Hopf test function vanishes, no Hopf point (reported on curves).",
    "cusp": "on a fold curve: the fold's quadratic coefficient a vanishes, three equilibria meet.",
    "bogdanov-takens": "on a fold or Hopf curve: a double zero eigenvalue; the Hopf frequency goes to 0.",
    "bautin": "on a Hopf curve: the first Lyapunov coefficient vanishes (generalised Hopf).",
    "zero-hopf": "on a fold or Hopf curve: a zero eigenvalue and an imaginary pair.",
    "double-hopf": "on a Hopf curve: two imaginary pairs.",
    "fold of cycles": "two periodic orbits meet and vanish: a second Floquet multiplier passes through 1.",
    "period doubling": "a multiplier passes through -1 (of a cycle, or of a map's fixed point: a flip).",
    "neimark-sacker": "a complex pair of multipliers crosses the unit circle (a cycle or a map's fixed point); an invariant torus or circle is born.",
}, module=__name__, summary="Kinds of BifurcationPoint (BifurcationPoint.kind is one of these).")


# -- bifurcation diagrams ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BifurcationPoint(Value):
    """One located bifurcation point.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    kind : str
        One of ``BIFURCATION_KINDS``.
    value : float
        The value of the parameter varied, located to ``tol`` (by ``bifurcation``: snapped to
        an exact value where one is known: a sampled value at which the point sits, an exact
        parameter value with a zero eigenvalue of a rational system, or 0).
    x : numpy.ndarray
        The state there (n_states,); for a bifurcation of cycles, a point on the cycle.
    param : str
        The parameter varied ("" where the diagram says it).
    params : mapping str -> float
        Every parameter's value at the point (a point on a curve in two parameters has both);
        empty where the diagram holds the others.
    coefficients : mapping str -> float
        Normal-form data where computed: ``a`` (fold: x' = a x^2 on the centre manifold),
        ``omega`` and ``l1`` (Hopf: frequency and first Lyapunov coefficient), ``period``,
        ``multiplier`` (bifurcations of cycles and maps), ``theta`` (Neimark-Sacker angle), ...
        (see ``BIFURCATION_KINDS``).
    """

    kind: str
    value: float
    x: np.ndarray
    param: str = ""
    params: Mapping[str, float] = field(default_factory=lambda: FrozenMap({}))
    coefficients: Mapping[str, float] = field(default_factory=lambda: FrozenMap({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", read_only(np.atleast_1d(np.asarray(self.x, dtype=float))))
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "params", FrozenMap({str(k): numeric(v) if np.ndim(v) else float(v)
                                                      for k, v in dict(self.params).items()}))
        object.__setattr__(self, "coefficients", FrozenMap({str(k): float(v) for k, v in dict(self.coefficients).items()}))

    def __repr__(self) -> str:
        where = f"{self.param} = {self.value:.10g}" if self.param else f"{self.value:.10g}"
        others = [f"{k} = {v:.8g}" for k, v in self.params.items()
                  if k != self.param and np.ndim(v) == 0] if len(self.params) <= 4 else []
        coef = [f"{k} = {v:.6g}" for k, v in self.coefficients.items()]
        extra = "; ".join(x for x in (", ".join(others), ", ".join(coef)) if x)
        return f"BifurcationPoint({self.kind} at {where}, x = {short_array(self.x, 6)}{'; ' + extra if extra else ''})"


@dataclass(frozen=True, eq=False)
class Branch(Value):
    """One continuous branch of equilibria (of a flow) or fixed points (of a map) across a
    parameter. In a ``Bifurcation`` diagram a branch born or ending inside the sweep at a
    located fold, pitchfork or transcritical point starts or ends at that point (its first or
    last value is the point's value): the branches born at a pitchfork leave the branch they
    split from, and the two branches that meet at a fold share its point. A branch from
    ``continue_equilibrium`` is a pseudo-arclength curve: its values turn back at a fold, and it
    carries its eigenvalues, its located points and why it ended.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    values : numpy.ndarray
        (m,) parameter values.
    x : numpy.ndarray
        (m, n_states) the equilibrium.
    stable : numpy.ndarray of bool
        (m,) its stability.
    eigenvalues : numpy.ndarray or None
        (m, n_states) complex: the Jacobian's eigenvalues (a flow) or the Floquet multipliers
        of the fixed point (a map: eigenvalues of the Jacobian of the map's ``period``-th
        iterate), sorted by decreasing real part (modulus for a map); None where not computed.
    points : tuple of BifurcationPoint
        The points located along the branch, in its order.
    param : str
        The parameter varied ("" inside a diagram, which names it).
    params : mapping str -> float
        The other parameters, held fixed.
    status : str
        Why the branch ends at each end, "start: ..., end: ..." (``left_range``: it reached the
        parameter range or the state domain; ``closed``: it returned to its start, an isola;
        ``max_points``; ``step_too_small``: the corrector failed at every step size, a
        singular point it cannot pass); "" inside a diagram.
    system_name : str
    state_names : tuple of str
    period : int
        1 for equilibria and fixed points; k for points of period k of a map.
    """

    values: np.ndarray
    x: np.ndarray
    stable: np.ndarray
    eigenvalues: np.ndarray | None = None
    points: tuple[BifurcationPoint, ...] = ()
    param: str = ""
    params: Mapping[str, float] = field(default_factory=lambda: FrozenMap({}))
    status: str = ""
    system_name: str = ""
    state_names: tuple[str, ...] = ()
    period: int = 1

    def __repr__(self) -> str:
        n = len(self.values)
        span = f"[{np.min(self.values):.6g}, {np.max(self.values):.6g}]" if n else "[]"
        name = f"{self.system_name}: " if self.system_name else ""
        what = f"{self.param} in {span}" if self.param else span
        pts = ", ".join(f"{p.kind} at {p.value:.6g}" for p in self.points[:6])
        more = f", ... ({len(self.points)} points)" if len(self.points) > 6 else ""
        tail = f"; {pts}{more}" if pts else ""
        per = f"period {self.period}, " if self.period != 1 else ""
        return f"Branch({name}{per}{n} values, {what}, stable at {int(np.sum(self.stable))} of them{tail})"

    def _repr_html_(self) -> str:
        names = list(self.state_names) or [f"x{i}" for i in range(self.x.shape[1] if self.x.ndim == 2 else 1)]
        rows = [[p.kind, p.value] + [float(v) for v in p.x[: len(names)]]
                + [", ".join(f"{k} = {v:.6g}" for k, v in p.coefficients.items())] for p in self.points]
        span = f"[{np.min(self.values):.6g}, {np.max(self.values):.6g}]" if len(self.values) else "[]"
        notes = [f"{len(self.values)} points, {self.param or 'parameter'} in {span}, stable at {int(np.sum(self.stable))}",
                 self.status]
        return html_table(f"Branch{' of ' + self.system_name if self.system_name else ''}: {len(self.points)} points located",
                          ["kind", self.param or "value"] + names + ["normal form"], rows, notes)


@dataclass(frozen=True, eq=False)
class Bifurcation(Value):
    """Equilibria of a system along ``values`` of ``param``.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    param : str
        The parameter varied.
    values : numpy.ndarray
        Its sampled values.
    state_names : tuple of str
        The states (of the system after restriction to its manifold).
    branches : tuple of Branch
        Continuous branches of equilibria, tracked on a dense grid.
    points : tuple of BifurcationPoint
        The located bifurcation points, sorted by value.
    x : numpy.ndarray
        (n_values, n_max, n_states) the equilibria at each sampled value, NaN-padded where
        fewer exist (see ``mask``).
    stable : numpy.ndarray of bool
        (n_values, n_max) their stability.
    mask : numpy.ndarray of bool
        Where an equilibrium exists.
    system_name : str
        The name of the system analysed (before restriction to its manifold).
    params : mapping str -> float
        The other parameters, held fixed along the sweep.
    """

    param: str
    values: np.ndarray
    x: np.ndarray
    stable: np.ndarray
    mask: np.ndarray
    points: tuple[BifurcationPoint, ...]
    state_names: tuple[str, ...] = ()
    branches: tuple[Branch, ...] = ()
    system_name: str = ""
    params: Mapping[str, float] = field(default_factory=lambda: FrozenMap({}))

    def __repr__(self) -> str:
        name = f"{self.system_name}, " if self.system_name else ""
        span = f"[{self.values[0]:.6g}, {self.values[-1]:.6g}]" if len(self.values) else "[]"
        pts = ", ".join(f"{b.kind} at {b.value:.6g}" for b in self.points[:8])
        more = f", ... ({len(self.points)} points)" if len(self.points) > 8 else ""
        return (f"Bifurcation({name}{self.param} in {span} ({len(self.values)} values), "
                f"{len(self.branches)} branches; {pts or 'no bifurcation points'}{more})")

    def _repr_html_(self) -> str:
        names = list(self.state_names) or ["x"]
        rows = [[b.kind, b.value] + [float(v) for v in b.x[: len(names)]] for b in self.points]
        span = f"[{self.values[0]:.6g}, {self.values[-1]:.6g}]" if len(self.values) else "[]"
        return html_table(f"Bifurcation{' of ' + self.system_name if self.system_name else ''}: {len(self.points)} points",
                          ["kind", self.param] + names, rows,
                          [f"{self.param} in {span} ({len(self.values)} values), {len(self.branches)} branches"])


class _Eq(NamedTuple):
    x: np.ndarray
    ev: np.ndarray
    stable: bool
    degenerate: bool  # a multiple root or a zero real eigenvalue (within the tolerance policy)
    multiple: bool    # a multiple root (two or more equilibria have met here)
    velocity: np.ndarray  # dx/dparam along the branch, -J^-1 df/dparam (0 where J is singular)


def _signs(e: _Eq) -> tuple[int, int]:
    """(real eigenvalues with Re > 0, complex ones with Re > 0): the raw sign, so that a
    bisection on it converges to the crossing itself."""
    scale = max(1.0, float(np.max(np.abs(e.ev)))) if e.ev.size else 1.0
    cplx = ~is_zero(e.ev.imag, scale=scale)
    return int(np.sum((e.ev.real > 0) & ~cplx)), int(np.sum((e.ev.real > 0) & cplx))


def _match(A: Sequence[_Eq], B: Sequence[_Eq], step: float) -> list[tuple[int, int]]:
    """Pairs (i, j) of equilibria on the same branch at two parameter values ``step`` apart:
    nearest assignment after predicting each one along its branch velocity (so that two
    branches that cross between the values are told apart)."""
    from scipy.optimize import linear_sum_assignment

    if not A or not B:
        return []
    cost = np.array([[float(np.linalg.norm(a.x + a.velocity * step - b.x) + np.linalg.norm(b.x - b.velocity * step - a.x))
                      for b in B] for a in A])
    rows, cols = linear_sum_assignment(cost)
    return list(zip(rows.tolist(), cols.tolist()))


class _Solver:
    """Equilibria at parameter values (cached), and the tests bifurcation() needs."""

    def __init__(self, system: ODESystem, param: str, base: dict, tol: float, values: np.ndarray):
        self.system, self.param, self.base, self.tol = system, param, base, tol
        self.cache: dict[float, tuple[_Eq, ...]] = {}
        self.samples = values
        self.domain = system.param_domain.get(param)
        self._exact_candidates: list[float] | None = None

    def at(self, v: float) -> tuple[_Eq, ...]:
        v = float(v)
        if v not in self.cache:
            eqs = equilibria(self.system, {**self.base, self.param: v})
            out = []
            for e in eqs:
                ev = np.asarray(e.eigenvalues, dtype=complex)
                x = np.asarray(e.x, dtype=float)
                scale = max(1.0, float(np.max(np.abs(ev)))) if ev.size else 1.0
                mult = getattr(e, "multiplicity", None) or 1
                real = is_zero(ev.imag, scale=scale)
                degenerate = mult > 1 or bool(np.any(real & is_zero(ev.real, scale=scale)))
                out.append(_Eq(x, ev, bool(e.stable), degenerate, mult > 1, self.velocity(x, v)))
            self.cache[v] = tuple(out)
        return self.cache[v]

    def velocity(self, x: np.ndarray, v: float) -> np.ndarray:
        fv, _, jac = _derivative_functions(self.system, self.param)
        args = [*x, *[numeric(self.base[n]) if n != self.param else v for n in self.system.param_names]]
        n = self.system.n_states
        with np.errstate(all="ignore"):
            J = np.array(jac(*args), dtype=float).reshape(n, n)
            rhs = np.broadcast_to(np.array(fv(*args), dtype=float), (n,))
            try:
                out = -np.linalg.solve(J, rhs)
            except np.linalg.LinAlgError:
                return np.zeros(n)
        return out if np.all(np.isfinite(out)) and np.linalg.cond(J) < SINGULAR_COND else np.zeros(n)

    def inside(self, v: float) -> bool:
        if self.domain is None:
            return True
        return bool(self.domain.contains(sp.Rational(float(v))) == sp.true)

    def width(self, lo: float, hi: float) -> float:
        return self.tol * max(1.0, abs(lo), abs(hi))

    # -- locating ---------------------------------------------------------------------------
    def bisect(self, lo: float, hi: float, same, hints: Sequence[float] = ()) -> tuple[float, float]:
        """Shrink [lo, hi] keeping ``same(lo)`` true and ``same(hi)`` false. A hint (an exact
        candidate value) whose bracket of width tol already has that property is taken as is."""
        for c in hints:
            if lo <= c <= hi:
                half = 0.5 * self.width(c, c)
                a, b = max(lo, c - half), min(hi, c + half)
                if b > a and (a == lo or same(a)) and (b == hi or not same(b)):
                    return a, b
        for _ in range(MAX_BISECTIONS):
            if hi - lo <= self.width(lo, hi):
                break
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            if same(mid):
                lo = mid
            else:
                hi = mid
        return lo, hi

    def closest_pair(self, v: float) -> tuple[float, np.ndarray | None]:
        """(distance, midpoint) of the two closest equilibria at v; a degenerate equilibrium
        (a multiple root: two that have met) counts as distance 0."""
        eqs = self.at(v)
        met = [e for e in eqs if e.multiple]
        if met:
            return 0.0, met[0].x
        best, where = math.inf, None
        for a, b in itertools.combinations(eqs, 2):
            d = float(np.linalg.norm(a.x - b.x))
            if d < best:
                best, where = d, 0.5 * (a.x + b.x)
        return best, where

    def collision(self, v: float, near: np.ndarray | None) -> np.ndarray | None:
        """The degenerate equilibrium at v nearest to ``near`` if there is one, else ``near``."""
        met = [e for e in self.at(v) if e.degenerate]
        if not met:
            return near
        if near is None:
            return met[0].x
        e = min(met, key=lambda e: float(np.linalg.norm(e.x - near)))
        return e.x if float(np.linalg.norm(e.x - near)) <= 1e-2 * max(1.0, float(np.max(np.abs(near)))) else near

    def golden(self, lo: float, hi: float) -> float:
        """Minimise the smallest distance between two equilibria on [lo, hi]."""
        g = (math.sqrt(5) - 1) / 2
        a, b = lo, hi
        c, d = b - g * (b - a), a + g * (b - a)
        fc, fd = self.closest_pair(c)[0], self.closest_pair(d)[0]
        for _ in range(MAX_BISECTIONS):
            if b - a <= self.width(a, b):
                break
            if fc <= fd:
                b, d, fd = d, c, fc
                c = b - g * (b - a)
                fc = self.closest_pair(c)[0]
            else:
                a, c, fc = c, d, fd
                d = a + g * (b - a)
                fd = self.closest_pair(d)[0]
        return c if fc <= fd else d

    def snap(self, v: float, zero_eigenvalue: bool) -> float:
        """An exact value within 10 tol of ``v`` if one is known: a sampled value, an exact
        parameter value with a zero eigenvalue (``_collision_values``, rational systems), or 0."""
        window = 10 * self.tol * max(1.0, abs(v))
        candidates = [float(s) for s in self.samples] + [0.0]
        if zero_eigenvalue:
            candidates += self.exact_candidates()
        near = [c for c in candidates if abs(c - v) <= window]
        return min(near, key=lambda c: abs(c - v)) if near else float(v)

    def exact_candidates(self) -> list[float]:
        if self._exact_candidates is None:
            self._exact_candidates = _collision_values(self.system, self.param, self.base,
                                                       float(self.samples[0]), float(self.samples[-1]))
        return self._exact_candidates

    # -- classifying ---------------------------------------------------------------------------
    def local_count(self, v: float, x: np.ndarray, radius: float) -> int | None:
        if not self.inside(v):
            return None
        return sum(float(np.linalg.norm(e.x - x)) <= radius for e in self.at(v))

    def zero_kind(self, v: float, x: np.ndarray) -> str | None:
        """Fold, transcritical or pitchfork at (v, x), from the number of equilibria near x on
        either side of v (fold 0|2, transcritical 2|2, pitchfork 1|3); where only one side is
        inside the parameter domain, from the normal-form coefficients (Kuznetsov 3.3)."""
        delta = max(100 * self.tol, 1e-8) * max(1.0, abs(v))
        radius = max(1e-2, 30 * math.sqrt(delta)) * max(1.0, float(np.max(np.abs(x))))
        left, right = self.local_count(v - delta, x, radius), self.local_count(v + delta, x, radius)
        if left is not None and right is not None:
            lo, hi = sorted((left, right))
            if lo == hi:
                return "transcritical" if lo >= 2 else None
            if hi - lo == 2:
                return "fold" if lo == 0 else "pitchfork" if lo == 1 else "fold"
        return _normal_form_kind(self.system, self.param, {**self.base, self.param: v}, x)


def _normal_form_kind(system: ODESystem, param: str, prm: dict, x: np.ndarray) -> str:
    """At a zero eigenvalue with left/right null vectors l, q: fold if l . f_param != 0,
    else transcritical if l . D^2 f(q, q) != 0, else pitchfork (Kuznetsov, Elements of
    Applied Bifurcation Theory, 3.3 and exercise 3.4)."""
    fv, hess, jac = _derivative_functions(system, param)
    args = [*np.asarray(x, dtype=float), *[numeric(prm[n]) for n in system.param_names]]
    J = np.array(jac(*args), dtype=float).reshape(system.n_states, system.n_states)
    H = np.array(hess(*args), dtype=float).reshape(system.n_states, system.n_states, system.n_states)
    return normal_form_kind(J, np.array(fv(*args), dtype=float), H)


def _derivative_functions(system: DynamicalSystem, param: str):
    """(df/dparam, the Hessian d^2 f/dx^2, the Jacobian df/dx) as functions of (*x, *params):
    from the explicit equations, or by autodiff for a system served numerically."""
    if system.symbolic is None:
        return _numeric_derivative_functions(system, param)
    return _symbolic_derivative_functions(system, param)


@lru_cache(maxsize=64)
def _numeric_derivative_functions(system: DynamicalSystem, param: str):
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)
    n, names = system.n_states, system.param_names

    def split(args):
        return jnp.asarray(np.asarray(args[:n], dtype=float)), {k: jnp.asarray(numeric(v)) for k, v in zip(names, args[n:])}

    def fv(*args):
        x, P = split(args)
        return np.asarray(jax.jacfwd(lambda v: f(0.0, x, {**P, param: v}))(P[param])).ravel()

    def hess(*args):
        x, P = split(args)
        return np.asarray(jax.jacfwd(jax.jacfwd(lambda y: f(0.0, y, P)))(x)).ravel()

    def jac(*args):
        x, P = split(args)
        return np.asarray(jax.jacfwd(lambda y: f(0.0, y, P))(x)).ravel()

    return fv, hess, jac


@lru_cache(maxsize=64)
def _symbolic_derivative_functions(system: ODESystem, param: str):
    v = system.symbols[param]
    args = list(system.states) + list(system.params)
    fv = [sp.diff(r, v) for r in system.rhs]
    hess = [sp.diff(r, a, b) for r in system.rhs for a in system.states for b in system.states]
    jac = list(system.jacobian)
    return (sp.lambdify(args, fv, "numpy"), sp.lambdify(args, hess, "numpy"), sp.lambdify(args, jac, "numpy"))


_MAX_BEZOUT = 400
"""Largest Bezout bound (product of total degrees) of the system {N = 0, det dN/dx = 0} in
(x, param) for which ``_collision_values`` computes a lex Groebner basis; larger systems get
no exact candidates (bisection alone), so that no analysis can hang in SymPy."""


def _exact_numerators(system: ODESystem, param: str, base: dict) -> list[sp.Expr] | None:
    sub = {system.symbols[k]: sp.Rational(float(val)) if not isinstance(val, sp.Basic) else val for k, val in base.items()}
    return [sp.numer(sp.together(sp.expand(n.xreplace(sub)))) for n in system.numerators]


def _real_roots_in(c: sp.Expr, v: sp.Symbol, lo: float, hi: float) -> list[float]:
    c = sp.expand(c)
    if c == 0 or not c.has(v):
        return []
    try:
        roots = sp.Poly(c, v, domain="QQ").real_roots()
    except (sp.PolynomialError, sp.CoercionFailed, NotImplementedError):
        return []
    out = []
    for r in roots:
        f = float(r.evalf(30))
        if lo - RTOL * max(1.0, abs(lo)) <= f <= hi + RTOL * max(1.0, abs(hi)):
            out.append(f)
    return out


def _collision_values(system: ODESystem, param: str, base: dict, lo: float, hi: float) -> list[float]:
    """Exact parameter values in [lo, hi] at which an equilibrium has a zero eigenvalue (two
    equilibria may meet there), other parameters exact (floats as their binary values).

    One state: real roots of the discriminant in x of each factor of the numerator N(x, param)
    and of the resultants of pairs of factors (every value where two equilibria meet).
    n states: the system N(x, param) = 0, det(dN/dx) = 0 (at N = 0 the Jacobian of f = N/D is
    dN/dx / D, so a zero eigenvalue of f is a zero of det dN/dx), eliminated to ``param`` by a
    lex Groebner basis with ``param`` last; the real roots of its univariate element. (A
    projection onto one state would not do: branches may share a coordinate for every value,
    as the EMA mode's tau = 1.) Empty when the system is not rational, the elimination leaves
    no univariate polynomial, or its Bezout bound exceeds ``_MAX_BEZOUT``.
    """
    if not system.is_rational:
        return []
    v = system.symbols[param]
    nums = _exact_numerators(system, param, base)
    if system.n_states == 1:
        x = system.states[0]
        try:
            P = sp.Poly(nums[0], x, v, domain="QQ")
        except (sp.PolynomialError, sp.CoercionFailed):
            return []
        if P.is_zero or P.degree(x) < 1 or P.degree(x) * max(P.degree(v), 1) > 40:
            return []
        P = sp.Poly(sp.sqf_part(P.as_expr()), x, v)
        _, factors = sp.factor_list(P.as_expr(), x, v)
        parts = [sp.Poly(f, x, v) for f, _ in factors if sp.Poly(f, x, v).degree(x) > 0]
        conds = [sp.discriminant(f.as_expr(), x) for f in parts if f.degree(x) >= 2]
        conds += [sp.resultant(f.as_expr(), g.as_expr(), x) for f, g in itertools.combinations(parts, 2)]
        return sorted({r for c in conds for r in _real_roots_in(c, v, lo, hi)})
    gens = (*system.states, v)
    try:
        polys = [sp.Poly(n, *gens, domain="QQ") for n in nums]
        det = sp.Poly(sp.Matrix(nums).jacobian(list(system.states)).det(method="berkowitz"), *gens, domain="QQ")
    except (sp.PolynomialError, sp.CoercionFailed):
        return []
    eqs = [q for q in polys + [det] if not q.is_zero]
    if len(eqs) <= system.n_states or math.prod(max(q.total_degree(), 1) for q in eqs) > _MAX_BEZOUT:
        return []
    G = sp.groebner([q.as_expr() for q in eqs], *gens, order="lex", domain="QQ", method="f5b")
    conds = [g for g in G.exprs if sp.Poly(g, *gens).free_symbols <= {v}]
    return sorted({r for c in conds for r in _real_roots_in(c, v, lo, hi)})


def bifurcation(system: DynamicalSystem, sweep: tuple[str, Sequence[float]], params: Params, *,
                tol: float = LOCATE_RTOL, n_dense: int | None = None) -> Bifurcation:
    """Equilibria of ``system`` as the parameter ``param`` runs over ``values`` (``sweep`` =
    (param, values)), their branches, and the bifurcation points between the samples, located
    and labelled.

    Any ODESystem (n states) whose equilibria ``equilibria`` enumerates; a system that
    declares an invariant ``manifold`` is first restricted to it (``system.reduce()``), as the
    SSL eigenmode systems are. At each sampled value every equilibrium and its eigenvalues are
    computed (``equilibria``, exact for polynomial systems). Between two samples:

    - the number of equilibria changes: bisection on that number to ``tol`` locates the
      point; two equilibria meeting and vanishing is a **fold** (x' = r + x^2 at r = 0), one
      splitting into three a **pitchfork** (x' = r x - x^3);
    - the number is unchanged but an equilibrium (matched to its neighbour at the next sample
      by nearest assignment) gains or loses a real unstable eigenvalue: two branches cross
      and exchange stability, a **transcritical** point (x' = r x - x^2), located where the two
      equilibria meet (golden-section search on their distance, to ``tol``);
    - an equilibrium gains or loses a complex pair with positive real part: a **hopf** point,
      located by bisection on the sign of the pair's real part (the Brusselator at
      b = 1 + a^2).

    A system whose right-hand side is rational once the other parameters are numbers (a
    fixed exponent, ``s**alpha`` at alpha = 1 or a rational alpha by the change of state
    s = u**q; ``dynamics._rationalise``) takes this exact path on that form, its diagram
    mapped back to the original states. Any other non-rational system (``sin``, ``exp``, an
    exponent that is swept) and a system served numerically only (``symbolic`` None: K-mode
    closures, the exact flow, a direction flow) is continued instead, never read from counts
    of Newton roots per sample: each equilibrium that multi-start Newton finds at the
    two ends of the sweep is followed along the values (secant predictor, Newton corrector); a
    change of its linear type is located by bisection and named by the eigenvalues that cross,
    and a branch that cannot be continued ends at a fold. A branch born and dying inside the
    sweep is not seen.

    A point that sits on a sampled value, whose side of the parameter range lies outside the
    parameter's domain, or where the local counts of equilibria cannot decide, is labelled
    from the normal-form coefficients (fold if the parameter derivative projected on the left
    null vector is non-zero, else transcritical or pitchfork); a located change in the number
    of equilibria is never dropped. Located values are snapped to exact ones within 10 tol (a
    sampled value, 0, or for rational systems an exact parameter value with a zero eigenvalue:
    a root of the discriminant in x for one state, of the lex Groebner elimination of
    {N = 0, det dN/dx = 0} to ``param`` for n states), so a transcritical point at 0 comes
    back as 0.0 and a fold at 1/(4c) as the float nearest it. Points are reported once.

    Branches are tracked on a dense grid (``n_dense`` values plus the samples) by nearest
    assignment: for one-state rational systems from batched roots (``roots_batch``); for
    other systems from ``equilibria`` at each grid value (``n_dense`` default: the samples
    only, as each extra value costs one exact solve).

    Parameters
    ----------
    system : ODESystem
    sweep : (str, 1-D array)
        (param, values): the parameter to vary and its values, strictly increasing, finite,
        at least 2 of them.
    params : mapping
        The other parameters (an entry for ``param`` is ignored); checked by
        ``system.check_params`` together with the end points of ``values``.
    tol : float
        Relative precision of the located points (>= ``dynamics._tolerance.MIN_TOL``).
    n_dense : int, optional
        Dense grid size for the branches (default 400 for one-state rational systems, else
        the sampled values only; a continued system's branches are at the sampled values).

    Returns
    -------
    Bifurcation

    Raises
    ------
    TypeError
        ``system`` is not an ODESystem, ``params`` not a mapping.
    ValueError
        ``sweep`` not a (name, values) pair, an unknown parameter name; bad values, ``tol``
        or ``n_dense``; parameters outside their domains.
    """
    tol = check_tol(tol)
    reduced = prepared(system) if not isinstance(system, DynamicalSystem) or system.symbolic is not None else system
    param, values = check_sweep(sweep, "sweep")
    if param not in reduced.param_names:
        raise ValueError(f"sweep names {param!r}, not a parameter of {label(system)}; choose one of {reduced.param_names}")
    if values.size < 2 or np.any(np.diff(values) <= 0):
        raise ValueError("sweep values must be strictly increasing, with at least 2 entries")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")
    if n_dense is not None and (isinstance(n_dense, bool) or not isinstance(n_dense, (int, np.integer)) or n_dense < 2):
        raise ValueError(f"n_dense must be an int >= 2 or None; got {n_dense!r}")
    base = {str(k): v for k, v in params.items() if str(k) != param}
    for end in (values[0], values[-1]):
        checked = reduced.check_params({**base, param: float(end)})
    base = {k: v for k, v in checked.items() if k != param}
    if reduced.symbolic is not None and not reduced.is_rational:
        conj = rationalise(reduced, base, keep=(param,))
        if conj is None or not conj.regular:
            return continued_bifurcation(reduced, param, values, base, tol)
        inner = bifurcation(conj.conjugate, (param, values), {}, tol=tol, n_dense=n_dense)
        return _in_original_states(inner, conj, system.name or reduced.name, base)
    if reduced.symbolic is None:
        if reduced.manifold is not None:
            raise ValueError(
                f"bifurcation continues a system served numerically in all its states, and {label(system)} declares "
                f"an invariant manifold {dict(reduced.manifold)} that it cannot restrict to numerically (its transverse "
                "rate would hide every change of type at eta = 0); restrict it first: to_ode_system() for a K-mode "
                "closure, or direction_flow(system) for the scale-free flow")
        return continued_bifurcation(reduced, param, values, base, tol)
    solver = _Solver(reduced, param, base, tol, values)

    with progress_bar(len(values), f"equilibria along {param}", unit="value") as bar:
        rows = []
        for v in values:
            rows.append(solver.at(v))
            bar.update(1)
    points: list[BifurcationPoint] = []
    for lo, hi in zip(values[:-1], values[1:]):
        points += _events(solver, float(lo), float(hi))
    points = _unique(points, tol)

    X, S, M = _sampled([[(e.x, e.stable) for e in r] for r in rows], reduced.n_states)
    branches = _branches(solver, values, n_dense, points)
    return Bifurcation(param, read_only(values), X, S, M,
                       tuple(points), reduced.state_names, branches, system.name or reduced.name,
                       FrozenMap({k: numeric(v) for k, v in base.items()}))


def _in_original_states(bif: Bifurcation, conj: Rationalised, name: str, base: dict) -> Bifurcation:
    """A diagram computed for the rational form ``conj.conjugate`` (fixed exponents, states
    changed to u = x**(1/q)), in the original states: the located parameter values and the
    stability are those of the conjugate flow, which is the same flow."""
    back = conj.to_original
    return replace(
        bif, x=read_only(back(bif.x)), system_name=name, params=FrozenMap({k: numeric(v) for k, v in base.items()}),
        points=tuple(replace(p, x=back(p.x)) for p in bif.points),
        branches=tuple(replace(b, x=read_only(back(b.x))) for b in bif.branches),
    )


def _events(solver: _Solver, lo: float, hi: float) -> list[BifurcationPoint]:
    A, B = solver.at(lo), solver.at(hi)
    out = []
    if len(A) != len(B):
        n = len(A)
        a, b = solver.bisect(lo, hi, lambda m: len(solver.at(m)) == n, solver.exact_candidates())
        more = a if len(solver.at(a)) > len(solver.at(b)) else b
        _, x = solver.closest_pair(more)
        v = solver.snap(0.5 * (a + b), True)
        x = solver.collision(v, x)
        if x is None:
            return out
        # a located count change is never dropped: where the local counts cannot decide, the
        # normal-form coefficients at the collision do (Kuznetsov 3.3)
        kind = solver.zero_kind(v, x) or _normal_form_kind(solver.system, solver.param, {**solver.base, solver.param: v}, x)
        out.append(BifurcationPoint(kind, v, x))
        return out
    pairs = _match(A, B, hi - lo)
    crossed = None
    hopfs = []  # every branch whose complex pair crosses (Lorenz: C+ and C- at one value)
    for i, j in pairs:
        ra, ca = _signs(A[i])
        rb, cb = _signs(B[j])
        if ca != cb:
            hopfs.append((i, j))
        elif ra != rb and crossed is None:
            crossed = (i, j)
    if crossed is not None and len(A) >= 2:
        exact = [c for c in solver.exact_candidates() if lo < c < hi and solver.closest_pair(c)[0] == 0.0]
        v = exact[0] if exact else solver.golden(lo, hi)
        dist, x = solver.closest_pair(v)
        if x is not None and dist <= COLLISION_RTOL * max(1.0, float(np.max(np.abs(x)))):
            v = solver.snap(v, True)
            x = solver.collision(v, x)
            kind = solver.zero_kind(v, x)
            if kind is not None:
                out.append(BifurcationPoint(kind, v, x))
    for i, j in hopfs:
        track = {"lo": (lo, A[i]), "hi": (hi, B[j])}
        target = _signs(A[i])[1]

        def same(m):
            (v0, e0), (v1, e1) = track["lo"], track["hi"]
            guess = e0.x + (e1.x - e0.x) * (m - v0) / (v1 - v0)
            eqs = solver.at(m)
            if not eqs:
                return False
            e = min(eqs, key=lambda e: float(np.linalg.norm(e.x - guess)))
            if _signs(e)[1] == target:
                track["lo"] = (m, e)
                return True
            track["hi"] = (m, e)
            return False

        a, b = solver.bisect(lo, hi, same)
        e = track["lo"][1] if abs(track["lo"][0] - 0.5 * (a + b)) <= abs(track["hi"][0] - 0.5 * (a + b)) else track["hi"][1]
        scale = max(1.0, float(np.max(np.abs(e.ev))))
        crossing = float(np.min(np.abs(e.ev.real[~is_zero(e.ev.imag, scale=scale)]), initial=np.inf))
        if crossing <= COARSE_RTOL * scale:
            v = solver.snap(0.5 * (a + b), False)
            if v != 0.5 * (a + b):
                e = min(solver.at(v), key=lambda q: float(np.linalg.norm(q.x - e.x)))
            out.append(BifurcationPoint("hopf", v, e.x))
    return out


def _sampled(rows: list[list[tuple[np.ndarray, bool]]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (x, stable, mask) arrays of a Bifurcation from the (point, stable) pairs at each
    sampled value, NaN-padded to the largest count (read-only)."""
    n_max = max((len(r) for r in rows), default=0)
    X = np.full((len(rows), n_max, n), np.nan)
    S = np.zeros((len(rows), n_max), dtype=bool)
    M = np.zeros((len(rows), n_max), dtype=bool)
    for i, r in enumerate(rows):
        for j, (x, s) in enumerate(r):
            X[i, j], S[i, j], M[i, j] = x, s, True
    return read_only(X), read_only(S, bool), read_only(M, bool)


def _unique(points: list[BifurcationPoint], tol: float) -> list[BifurcationPoint]:
    out: list[BifurcationPoint] = []
    for pt in sorted(points, key=lambda p: p.value):
        dup = any(q.kind == pt.kind and abs(q.value - pt.value) <= 10 * tol * max(1.0, abs(pt.value))
                  and float(np.max(np.abs(q.x - pt.x))) <= 10 * COLLISION_RTOL * max(1.0, float(np.max(np.abs(pt.x))))
                  for q in out)
        if not dup:
            out.append(pt)
    return out


def _predict(track: list, v: float) -> np.ndarray:
    """The branch continued to ``v`` along its tangent dx/dparam at its last point (secant of
    its last two points where the tangent is unknown, e.g. where J is singular): two branches
    that cross are told apart by their slopes, and a steep branch is followed."""
    v1, x1, _, dx = track[-1]
    if np.any(dx != 0):
        return x1 + dx * (v - v1)
    if len(track) < 2:
        return x1
    (v0, x0, _, _) = track[-2]
    return x1 + (x1 - x0) * (v - v1) / (v1 - v0)


def _branches(solver: _Solver, values: np.ndarray, n_dense: int | None,
              points: Sequence[BifurcationPoint] = ()) -> tuple[Branch, ...]:
    """Continuous branches by assignment between neighbouring grid values, each end predicted
    along its tangent (a branch missing at one grid value, e.g. a multiple root the batched
    roots see as complex, is continued across it). Where the number of equilibria is the same
    at both values and no fold or pitchfork lies between them, every equilibrium continues a
    branch; otherwise a match farther than the prediction allows starts a new one. A branch that
    starts or ends inside the sweep next to a located fold, pitchfork or transcritical point
    (``points``) starts or ends at that point: the branches born at a pitchfork leave the branch
    they split from."""
    from scipy.optimize import linear_sum_assignment

    system = solver.system
    one_state = system.n_states == 1 and system.is_rational
    if n_dense is None:
        n_dense = 400 if one_state else 0
    grid = np.union1d(values, np.linspace(values[0], values[-1], n_dense)) if n_dense else values
    layers: list[list[tuple[np.ndarray, bool, np.ndarray]]] = []
    if one_state:
        r = roots_batch(system, {**solver.base, solver.param: grid})
        sampled = set(float(v) for v in values)
        for i, v in enumerate(grid):
            if float(v) in sampled:  # exact equilibria where they are known (multiple roots included)
                layers.append([(e.x, e.stable, e.velocity) for e in solver.at(v)])
            else:
                real = [(np.array([z.real]), bool(st)) for z, re, st in zip(r.roots[i], r.real[i], r.stable[i]) if re]
                layers.append([(x, st, solver.velocity(x, float(v))) for x, st in real])
    else:
        for v in grid:
            layers.append([(e.x, e.stable, e.velocity) for e in solver.at(v)])
    births = [p for p in points if p.kind in ("fold", "pitchfork")]
    span = float(grid[-1] - grid[0])
    tracks: list[list[tuple[float, np.ndarray, bool, np.ndarray]]] = []
    open_ends: list[int] = []
    for i, (v, pts) in enumerate(zip(grid, layers)):
        step = float(grid[i] - grid[i - 1]) if i else 0.0
        new_open: list[int] = []
        used: set[int] = set()
        if i >= 2:
            step = max(step, float(grid[i] - grid[i - 2]))
        if open_ends and pts:
            ends = [tracks[b][-1] for b in open_ends]
            guesses = [_predict(tracks[b], float(v)) for b in open_ends]
            back = [[q - dq * (float(v) - e[0]) if np.any(dq != 0) else q for q, _, dq in pts] for e in ends]
            cost = np.array([[float(np.linalg.norm(g - q)) + float(np.linalg.norm(back[a][b] - ends[a][1]))
                              for b, (q, _, _) in enumerate(pts)] for a, g in enumerate(guesses)])
            rows, cols = linear_sum_assignment(cost)
            keep_all = (i and len(pts) == len(layers[i - 1]) == len(open_ends)
                        and not any(grid[i - 1] < p.value <= v for p in births))
            for a, b in zip(rows, cols):
                size = float(np.max(np.abs(ends[a][1])))
                if keep_all or cost[a, b] < 0.1 * max(1.0, size) + 10 * step * max(1.0, size / max(span, 1e-300)):
                    tracks[open_ends[a]].append((float(v), *pts[b]))
                    new_open.append(open_ends[a])
                    used.add(b)
        for j, pt in enumerate(pts):
            if j not in used:
                tracks.append([(float(v), *pt)])
                new_open.append(len(tracks) - 1)
        missed = [b for b in open_ends if b not in new_open and tracks[b][-1][0] == float(grid[i - 1])] if i else []
        open_ends = new_open + missed  # unmatched ends stay open for one more grid value
    ends = [p for p in points if p.kind in ("fold", "pitchfork", "transcritical")]
    tracks = [_joined(tr, grid, ends, solver) for tr in tracks]
    return tuple(
        Branch(read_only([t[0] for t in tr]), read_only(np.stack([t[1] for t in tr])), read_only([t[2] for t in tr], bool))
        for tr in tracks
    )


def _joined(track: list, grid: np.ndarray, births: Sequence[BifurcationPoint], solver: _Solver) -> list:
    """``track`` extended to the branch point (``births``) between its first (last) grid value
    inside the sweep and the grid value before (after) it, the one nearest its end, when there
    is one."""
    out = list(track)
    for first in (True, False):
        v, x = out[0][:2] if first else out[-1][:2]
        k = int(np.searchsorted(grid, v))
        if (first and k == 0) or (not first and k >= len(grid) - 1):
            continue
        lo, hi = (float(grid[k - 1]), v) if first else (v, float(grid[k + 1]))
        near = [p for p in births if lo <= p.value <= hi and p.value != v]
        if not near:
            continue
        p = min(near, key=lambda p: float(np.linalg.norm(p.x - x)))
        eqs = solver.at(p.value)
        stable = bool(min(eqs, key=lambda e: float(np.linalg.norm(e.x - p.x))).stable) if eqs else False
        end = (float(p.value), np.asarray(p.x, dtype=float), stable, np.zeros_like(x))
        out = [end] + out if first else out + [end]
    return out
