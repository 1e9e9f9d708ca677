"""equilibria(system, params): every real equilibrium of any ODE system, classified.

Decided by capability, never by a state's name:

- Rational right-hand sides (polynomial ones included) are solved exactly. The parameters stay
  exact (SymPy numbers as given; floats as their exact binary values), the numerators of the
  right-hand sides (``system.numerators``, not cancelled against the denominators) form a
  polynomial system over Q, which is split along its factors and put in lex Groebner form; the
  univariate element's real roots are isolated with certified intervals over Q (multiple roots
  included, via the square-free decomposition) and back-substituted at ``HP_DPS`` digits, each
  point checked against every equation. Zeros of the numerators that are also zeros of a
  denominator (``system.denominators``: poles and removable points, where the right-hand side
  is undefined) are not equilibria and are dropped (the reason says how many). Components that
  stay positive-dimensional are curves of equilibria (``EquilibriumCurve``). ``complete=True``.
- Systems that are rational once their parameters are numbers (``s**alpha`` at alpha = 1, or
  at a rational alpha = p/q after the change of state s = u**q on s >= 0; see
  ``dynamics._rationalise``) are solved exactly the same way; a point where the original
  Jacobian is infinite (s = 0 for alpha < 1) is classified by the flow in u, which is smooth
  there and conjugate to the original one.
- Exact elimination has a budget (``EXACT_BUDGET``: states, Bezout bound, seconds); past it,
  and for other systems (non-rational equations, or systems served numerically only, such as
  K-mode ``ModeSystem``s: ``symbolic`` is None), batched multi-start Newton in JAX searches a
  stated box (``search_box``) from quasi-random (scrambled Halton) starts over its whole
  volume, then deflated Newton rounds from the starts that found a known root, and says
  ``complete=False`` with the box and what was searched in ``method``.

Points are classified at high precision (``dynamics.classify``) with the tolerance policy of
``dynamics._tolerance``. Float parameters are trusted to ``NEAR_RTOL``: roots that merge
under a relative perturbation of that size (two real roots, or a complex pair, whose midpoint
is a pseudo-root) follow the one near-multiple rule of ``dynamics._tolerance``: they are
reported once, at their mean, as a root of the summed multiplicity (``near_multiple=True``
and a ``note``), and classified as that multiple root (a double root is semi-stable), as
``roots_batch`` and ``regimes`` label it. Exact parameters are never merged.

A system served by Newton that declares a ``symmetry`` has its equilibria in families, whole
group orbits: the points Newton finds on one orbit (equal ``symmetry.invariants`` within
NEWTON_RTOL) are one equilibrium, reported once at the first point found, classified on the
quotient by the orbit (``family_dimension``), its ``note`` counting the points found on it.
Without declared invariants the points are not merged, and ``reason`` says so.

The domain is ``system.state_domain`` intersected with the ``domain=`` argument; the collapsed
flags come from ``system.collapse_indices`` (no collapse states: never collapsed).
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from derivations import DynamicalSystem, ODESystem, Params

from ._display import html_table
from ._krawczyk import KRAWCZYK_BUDGET, interval_functions, jacobian_spread, krawczyk_search
from ._prepare import numeric
from ._rationalise import Rationalised, exponent_params, rationalise
from ._stability import (Classification, classify_at, differentiable_at, jacobian_at, orbit_tangents, residual_and_scale,
                         to_mp)
from ._tolerance import (FLOAT_RANGE, FLOAT_RTOL, FLOAT_ZERO, HP_DPS, HP_RTOL, NEAR_RTOL, NEAR_SEPARATION, NEWTON_ATOL,
                         NEWTON_RTOL, NEWTON_STOP, RTOL, is_pseudo_root)
from ._value import Value

__all__ = ["equilibria", "Equilibrium", "EquilibriumCurve", "EquilibriumSet"]

_REALS = sp.Interval(-sp.oo, sp.oo)


@dataclass(frozen=True, eq=False)
class Equilibrium(Value):
    """One equilibrium and its classification.

    The fields of ``classification`` are forwarded as properties: jacobian (numeric, at the
    point), eigenvalues, kind, stable (True/False/None), hyperbolic, index (number of unstable
    directions), reason, centre_flow, lyapunov, family_dimension (the dimension of the orbit the
    point stands for, for a system that declares a ``symmetry``).

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    point : FrozenMap of str -> float (``derivations.FrozenMap``: hashable, read-only)
        {state name: value}.
    x : numpy.ndarray
        The same as a read-only float64 array.
    classification : Classification
        The type of the equilibrium (``dynamics.classify``).
    jacobian_symbolic : sympy.ImmutableMatrix or None
        The system's symbolic Jacobian (None for a system without explicit equations).
    collapsed : bool
        Every collapse state (``system.collapse``) is zero (False for a system without
        collapse states).
    partially_collapsed : bool
        Some but not all collapse states are zero.
    multiplicity : int or None
        Multiplicity of the root of the eliminated univariate polynomial (exact path; 1 for a
        simple root; for a merged near-multiple root the sum of the merged multiplicities),
        None from Newton.
    residual : float
        max ``|f(x*)|`` in float64 at the rounded point.
    residual_scale : float
        The largest sum of ``|terms|`` of a row of f at x*: float64 rounding of x* alone
        leaves a residual of order eps * residual_scale.
    exact : tuple or None
        The coordinates at high precision (SymPy Rationals where exact, else Floats with
        HP_DPS digits); None from Newton.
    near_multiple : bool
        Roots merged by the near-multiple rule (they merge under a relative perturbation of
        the float parameters by NEAR_RTOL); ``note`` says which.
    note : str
        Remarks in words ("" if none).
    piece : tuple of int or None
        For a piecewise-smooth system (one that declares ``switching``): per switching function
        sigma_k, +1 (the point lies where sigma_k > 0), -1 (sigma_k < 0) or 0 (on the surface
        sigma_k = 0); None for a smooth system.
    sliding_weights : tuple of float or None
        For a pseudo-equilibrium (a zero of the sliding vector field on a switching surface):
        the equivalent control alpha_k in [0, 1] of each surface it lies on, in the order of
        the zeros of ``piece``; None otherwise.
    """

    point: Mapping[str, float]
    x: np.ndarray
    classification: Classification = field(repr=False)
    jacobian_symbolic: sp.ImmutableMatrix | None = field(repr=False)
    collapsed: bool
    partially_collapsed: bool
    multiplicity: int | None
    residual: float
    residual_scale: float
    exact: tuple | None = field(default=None, repr=False)
    near_multiple: bool = False
    note: str = ""
    piece: tuple[int, ...] | None = None
    sliding_weights: tuple[float, ...] | None = None

    @property
    def on_surface(self) -> bool:
        """True where the point lies on a switching surface (a zero in ``piece``)."""
        return self.piece is not None and 0 in self.piece

    jacobian = property(lambda self: self.classification.jacobian, doc="Numeric Jacobian at the point.")
    eigenvalues = property(lambda self: self.classification.eigenvalues, doc="Eigenvalues of the Jacobian.")
    kind = property(lambda self: self.classification.kind, doc="The type, e.g. 'saddle' (see Classification).")
    stable = property(lambda self: self.classification.stable, doc="True, False, or None (undecided).")
    hyperbolic = property(lambda self: self.classification.hyperbolic, doc="No eigenvalue on the imaginary axis.")
    index = property(lambda self: self.classification.index, doc="Number of unstable directions.")
    reason = property(lambda self: self.classification.reason, doc="Why it has its kind, in words.")
    centre_flow = property(lambda self: self.classification.centre_flow, doc="(k, a_k) of the centre-manifold flow, or None.")
    lyapunov = property(lambda self: self.classification.lyapunov, doc="First Lyapunov coefficient at a Hopf pair, or None.")
    family_dimension = property(lambda self: self.classification.family_dimension,
                                doc="Dimension of the family (the symmetry orbit) the point stands for; 0 if isolated.")

    def __repr__(self) -> str:
        pt = ", ".join(f"{k}={v:.6g}" for k, v in list(self.point.items())[:6])
        near = ", near-multiple" if self.near_multiple else ""
        family = f", family of dimension {self.family_dimension}" if self.family_dimension else ""
        piece = f", piece={self.piece}" if self.piece is not None else ""
        return f"Equilibrium({pt}; {self.kind}, stable={self.stable}{family}{near}{piece})"


@dataclass(frozen=True, eq=False)
class EquilibriumCurve(Value):
    """A positive-dimensional set of equilibria, e.g. s = 0 when eta = 0.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    equations : tuple of sympy.Expr
        Polynomial equations (= 0) in the states that define it (a lex Groebner basis).
    dimension : int
        Its dimension (number of free states).
    note : str
        What it is, in words.
    """

    equations: tuple[sp.Expr, ...]
    dimension: int
    note: str

    def __repr__(self) -> str:
        eqs = ", ".join(f"{sp.sstr(sp.N(e, 8))} = 0" for e in self.equations)
        return f"EquilibriumCurve({eqs}; dimension {self.dimension})"


@dataclass(frozen=True, eq=False)
class EquilibriumSet(Value, Sequence):
    """The isolated equilibria (a sequence of Equilibrium), curves of equilibria, and whether
    the enumeration is complete (exact elimination) or not (multi-start Newton).

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    points : tuple of Equilibrium
        The isolated equilibria (also the items of the sequence).
    curves : tuple of EquilibriumCurve
        Curves (positive-dimensional sets) of equilibria.
    complete : bool
        True when every equilibrium was found (exact elimination).
    method : str
        How they were found ("exact" elimination or multi-start "newton").
    reason : str
        Why the enumeration is not complete, or other remarks ("" if none).
    """

    points: tuple[Equilibrium, ...]
    curves: tuple[EquilibriumCurve, ...]
    complete: bool
    method: str
    reason: str = ""

    def __getitem__(self, i):
        return self.points[i]

    def __len__(self) -> int:
        return len(self.points)

    @property
    def stable(self) -> tuple[Equilibrium, ...]:
        """The stable equilibria (``stable`` True), in order."""
        return tuple(e for e in self.points if e.stable)

    def __repr__(self) -> str:
        lines = [f"EquilibriumSet({len(self.points)} points, {len(self.curves)} curves, complete={self.complete}, {self.method})"]
        lines += [f"  {e!r}" for e in self.points] + [f"  {c!r}" for c in self.curves]
        if self.reason:
            lines.append(f"  ({self.reason})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        names = list(self.points[0].point) if self.points else []
        rows = [[e.point[n] for n in names] + [e.kind, e.stable, e.collapsed] for e in self.points]
        notes = [f"curve of equilibria: {', '.join(f'{sp.sstr(sp.N(q, 8))} = 0' for q in c.equations)} "
                 f"(dimension {c.dimension})" for c in self.curves]
        notes.append(f"{'complete' if self.complete else 'not necessarily complete'} ({self.method})"
                     + (f"; {self.reason}" if self.reason else ""))
        return html_table(f"{len(self.points)} equilibria, {len(self.curves)} curves", names + ["kind", "stable", "collapsed"],
                          rows, notes)


def _domain(system, domain: Mapping[str, tuple] | None) -> list[sp.Interval]:
    """One interval per state: the system's state_domain intersected with ``domain``."""
    names = list(system.state_names)
    own = system.state_domain
    out = [own.get(n, _REALS) if hasattr(own, "get") else _REALS for n in names]
    if domain is None:
        return out
    if not isinstance(domain, Mapping):
        raise TypeError("domain must be a dict {state name: (lower, upper)}")
    for n, lohi in domain.items():
        if n not in names:
            raise ValueError(f"domain names unknown state {n!r}; states are {names}")
        try:
            lo, hi = lohi
        except (TypeError, ValueError):
            raise ValueError(f"domain[{n!r}] must be a pair (lower, upper); got {lohi!r}") from None
        ends = []
        for v, inf in ((lo, -sp.oo), (hi, sp.oo)):
            if v is None:
                ends.append(inf)
                continue
            if isinstance(v, bool):
                raise ValueError(f"domain[{n!r}] bounds must be numbers; got {v!r}")
            if isinstance(v, sp.Basic):
                if not (v.is_number and v.is_real is not False) or v == sp.nan:
                    raise ValueError(f"domain[{n!r}] bounds must be real numbers; got {v!r}")
                ends.append(v)
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"domain[{n!r}] bounds must be numbers; got {v!r}") from None
            if np.isnan(f):
                raise ValueError(f"domain[{n!r}] bounds must not be NaN")
            ends.append(sp.oo if f == np.inf else -sp.oo if f == -np.inf else sp.Rational(f))
        if ends[0] > ends[1]:
            raise ValueError(f"domain[{n!r}] = ({lo}, {hi}) is empty (lower > upper)")
        i = names.index(n)
        out[i] = out[i].intersect(sp.Interval(*ends))
    return out


def equilibria(
    system: DynamicalSystem,
    params: Params,
    *,
    domain: Mapping[str, tuple] | None = None,
    n_starts: int | None = None,
    seed: int = 0,
    starts: ArrayLike | None = None,
) -> EquilibriumSet:
    """All real equilibria of ``system`` at ``params`` within ``domain``, classified.

    Equation: f(x*; params) = 0 with x* in the domain and every denominator of f non-zero.

    Parameters
    ----------
    system : any ``derivations.DynamicalSystem`` (exact for rational explicit equations,
        multi-start Newton otherwise).
    params : {name: value}, checked by ``system.check_params`` against the system's own
        ``param_domain``. SymPy numbers (``Rational(5, 24)``) stay exact end to end; floats are
        taken as their exact binary values and trusted to ``NEAR_RTOL`` (near-multiple roots
        are flagged).
    domain : {state name: (lower, upper)} (None for no bound), intersected with
        ``system.state_domain``. A point stable within the domain counts as stable.
    n_starts, seed : multi-start Newton (non-rational systems, or past exact elimination's
        budget): the number of quasi-random starts over the searched box (default 2000 for
        explicit equations, 48 for systems served numerically only) and the seed of their
        scrambling. The box is the domain where it is bounded, else ``SEARCH_RADIUS`` around
        zero or a finite end; ``method`` states it, and ``reason`` counts roots Newton reached
        outside it (not reported).
    starts : array_like, optional
        Further Newton starts, shape (m, n_states) (e.g. the equilibria at a nearby parameter
        value); multi-start Newton only.

    Returns
    -------
    EquilibriumSet: ``points`` (Equilibrium, sorted), ``curves``, ``complete``, ``method``,
    ``reason`` (why a result is empty, which zeros were dropped as poles).

    Raises
    ------
    TypeError
        ``system`` is not a DynamicalSystem, a domain that is not a dict, a
        params value that is not a real scalar.
    ValueError
        Missing/unknown params, params outside the system's ``param_domain``, an empty or
        NaN domain, unknown state names, a bad ``n_starts``.
    """
    if not isinstance(system, DynamicalSystem):
        raise TypeError("system must be a derivations.DynamicalSystem (an ODESystem, derive(spec), a K-mode system, "
                        f"or your own); got {type(system).__name__}")
    prm = system.check_params(params)
    bounds = _domain(system, domain)
    if system.switching is not None:
        from ._pseudo import piecewise_equilibria

        return piecewise_equilibria(system, prm, domain, n_starts=n_starts, seed=seed, starts=starts)
    extra = None
    if starts is not None:
        try:
            extra = np.asarray(starts, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"starts must be an array of shape (m, {system.n_states}); got {starts!r:.60}") from None
        if extra.ndim != 2 or extra.shape[1] != system.n_states or not np.all(np.isfinite(extra)):
            raise ValueError(f"starts must be a finite array of shape (m, {system.n_states}) (one row per start, one "
                             f"column per state); got shape {extra.shape}")
        if system.is_rational:
            raise ValueError("starts are Newton starts, and this system's equilibria are found by exact elimination "
                             "(its right-hand side is rational): leave starts out")
        extra = extra if extra.size else None
    conj = None
    if not system.is_rational and system.symbolic is not None:
        conj = rationalise(system.symbolic, prm)
        if conj is not None and extra is not None:
            found = _newton(system, prm, bounds, n_starts, seed, extra)
            return replace(found, reason="; ".join(r for r in (
                "starts given: multi-start Newton used, though the system is rational at these parameters and "
                "exact elimination would serve without them", found.reason) if r))
    if system.is_rational or conj is not None:
        target = conj.zeros if conj is not None else system.symbolic
        over = _over_budget(target)
        if not over:
            try:
                with mpmath.workdps(HP_DPS), _time_budget(EXACT_BUDGET["seconds"]):
                    return _exact(target, prm, bounds, conj)
            except _OverBudget:
                over = f"exact elimination stopped after {EXACT_BUDGET['seconds']:g} s"
        found = _newton(system, prm, bounds, n_starts, seed, extra)
        return replace(found, reason="; ".join(r for r in (f"{over}; Newton used instead", found.reason) if r))
    skipped = ""
    if system.symbolic is not None and extra is None and n_starts is None:
        if system.n_states <= KRAWCZYK_BUDGET["states"]:
            found = _interval(system, prm, bounds)
            if isinstance(found, EquilibriumSet):
                return found
            skipped = f"{found}; Newton used instead"
    found = _newton(system, prm, bounds, n_starts, seed, extra)
    return replace(found, reason="; ".join(r for r in (skipped, found.reason) if r)) if skipped else found


EXACT_BUDGET = {"states": 8, "bezout": 4096, "seconds": 60.0}
"""Where exact elimination is tried: at most ``states`` states, a Bezout bound (the product of
the numerators' total degrees, the most isolated solutions there can be) of at most ``bezout``,
and a time budget of ``seconds`` (enforced on the main thread of platforms with
``signal.setitimer``, by a SIGALRM handler installed only while elimination runs). Past any of
them ``equilibria`` falls back to multi-start Newton,
``complete=False``, and its reason says which limit was met."""


def _over_budget(system: ODESystem) -> str:
    """Why ``system`` is beyond exact elimination's budget, or ""."""
    if system.n_states > EXACT_BUDGET["states"]:
        return f"exact elimination not tried: {system.n_states} states > {EXACT_BUDGET['states']}"
    bezout = 1
    for expr in system.numerators:
        try:
            bezout *= max(1, sp.Poly(expr, *system.states).total_degree())
        except sp.PolynomialError:
            return ""
    if bezout > EXACT_BUDGET["bezout"]:
        return f"exact elimination not tried: Bezout bound {bezout} > {EXACT_BUDGET['bezout']}"
    return ""


class _OverBudget(BaseException):
    """Raised by the timer: a BaseException, so that no ``except Exception`` on the way (in
    SymPy, or a cache) swallows it."""


@contextmanager
def _time_budget(seconds: float):
    """Raise _OverBudget inside the block after ``seconds`` (main thread with setitimer only;
    elsewhere no limit). This installs a SIGALRM handler for the block's duration, a
    process-wide effect that is undone on exit: the previous handler is restored first, and a
    timer that was already running is re-armed with the time it had left (or, due first, is
    the one that fires, with the previous handler)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return
    old_delay, _ = signal.getitimer(signal.ITIMER_REAL)
    if old_delay and old_delay <= seconds:
        yield  # an earlier timer of the caller's fires first: leave it alone
        return

    def expire(signum, frame):
        raise _OverBudget()

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, previous)
        signal.setitimer(signal.ITIMER_REAL, 0)
        if old_delay:
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - start), 1e-6))


# -- exact elimination -------------------------------------------------------------------


def _rational(v: Any) -> tuple[sp.Expr, bool]:
    """(exact value, rounded?): floats as their binary value, SymPy rationals as they are,
    other exact numbers (sqrt(2), pi) as a 60-digit rational (rounded=True)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return sp.Integer(int(v)), False
    if isinstance(v, (float, np.floating)):
        return sp.Rational(float(v)), False
    v = sp.sympify(v)
    if v.is_Rational:
        return v, False
    return sp.Rational(str(sp.N(v, 60))), True


def _to_poly(expr: sp.Expr, gens: tuple) -> tuple[sp.Poly, bool]:
    """A Poly over QQ; irrational constant coefficients rounded to 60-digit rationals."""
    try:
        return sp.Poly(expr, *gens, domain="QQ"), False
    except (sp.PolynomialError, sp.CoercionFailed, sp.GeneratorsNeeded, ValueError):
        poly = sp.Poly(expr, *gens)
        terms = {m: sp.Rational(str(sp.N(c, 60))) for m, c in poly.terms()}
        return sp.Poly.from_dict(terms, *gens, domain="QQ"), True


def _components(polys: list[sp.Poly], gens: tuple) -> list[tuple[str, Any]]:
    """Split the system along the factors of its equations; each branch is either
    zero-dimensional ("points", Groebner basis) or positive-dimensional ("curve", basis)."""
    polys = [p for p in polys if not p.is_zero]
    if not polys:
        return [("curve", None)]
    G = sp.groebner([p.as_expr() for p in polys], *gens, order="lex", domain="QQ", method="f5b")
    if G.exprs == [1]:
        return []
    if G.is_zero_dimensional:
        return [("points", G)]
    for i, poly in enumerate(polys):
        _, factors = poly.factor_list()
        if len(factors) > 1 or (factors and factors[0][1] > 1):
            out = []
            for fac, _mult in factors:
                out += _components([fac] + polys[:i] + polys[i + 1:], gens)
            return out
    return [("curve", G)]


def _mpq(q) -> mpmath.mpf:
    q = sp.Rational(q)
    return mpmath.mpf(int(q.p)) / int(q.q)


class _Root:
    """A root of the univariate eliminant: value (mpf, or mpc for a near-real complex root),
    its multiplicity, its exact value where rational, whether it comes from a complex pair."""

    __slots__ = ("value", "mult", "exact", "from_pair")

    def __init__(self, value, mult, exact=None, from_pair=False):
        self.value, self.mult, self.exact, self.from_pair = value, mult, exact, from_pair


def _univariate_roots(poly: sp.Poly, near: bool) -> list[_Root]:
    """Real roots with multiplicity, isolated over Q with certified intervals and refined;
    with ``near``, also complex pairs close to the real axis (one per pair, Im > 0)."""
    out = []
    _, factors = poly.sqf_list()
    for fac, mult in factors:
        if fac.degree() == 0:
            continue
        for (a, b), _k in fac.intervals(eps=sp.Rational(1, 10**6)):
            if a == b:
                out.append(_Root(_mpq(a), mult, sp.Rational(a)))
            else:
                out.append(_Root(_bisect_root(fac, a, b), mult))
        if near and fac.degree() >= 2:
            coeffs = [_mpq(c) for c in fac.all_coeffs()]
            candidates = []
            if _maybe_near_real_pair(coeffs):
                try:
                    candidates = mpmath.polyroots(coeffs, maxsteps=400, extraprec=400)
                except mpmath.libmp.NoConvergence:
                    candidates = []  # no near-real complex pair can be certified; the real roots stand
            for r in candidates:
                r = mpmath.mpc(r)
                if r.imag > 0 and r.imag <= NEAR_SEPARATION * max(1, abs(r)):
                    out.append(_Root(r, mult, None, True))
    return out


def _maybe_near_real_pair(coeffs: list) -> bool:
    """Cheap float64 filter (companion eigenvalues of the scaled polynomial): could a complex
    root lie within 10 NEAR_SEPARATION relative of the real axis? True when float64 cannot tell."""
    top = max(abs(c) for c in coeffs)
    with np.errstate(all="ignore"):
        c = np.array([float(v / top) for v in coeffs])
        if not np.all(np.isfinite(c)) or c[0] == 0:
            return True
        try:
            roots = np.roots(c)
        except np.linalg.LinAlgError:
            return True
    if not np.all(np.isfinite(roots)):
        return True
    cplx = roots[np.abs(roots.imag) > 0]
    return bool(np.any(np.abs(cplx.imag) <= 10 * NEAR_SEPARATION * np.maximum(1.0, np.abs(cplx))))


def _bisect_root(fac: sp.Poly, a, b) -> mpmath.mpf:
    """The simple root of the square-free ``fac`` isolated in (a, b), to HP_DPS digits:
    safeguarded Newton (a step leaving the bracket is replaced by bisection).

    The sign of ``fac`` just right of ``a`` is decided exactly over Q: an isolating interval
    may end at another (exact, rational) root of ``fac``, where the floating value is rounding
    noise of either sign; there the sign is that of ``fac'(a)`` (``fac`` is square-free)."""
    coeffs = [_mpq(c) for c in fac.all_coeffs()]
    lo, hi = _mpq(a), _mpq(b)
    at_a = fac.eval(sp.Rational(a))
    left_positive = bool(at_a > 0) if at_a != 0 else bool(fac.diff().eval(sp.Rational(a)) > 0)
    x = (lo + hi) / 2
    tol = mpmath.mpf(10) ** (-HP_DPS + 3)
    for _ in range(400):
        fx, dfx = mpmath.polyval(coeffs, x, derivative=True)
        if fx == 0:
            return x
        if (fx > 0) == left_positive:
            lo = x
        else:
            hi = x
        step = fx / dfx if dfx != 0 else None
        new = x - step if step is not None else None
        if new is None or not lo < new < hi:
            new = (lo + hi) / 2
        if abs(new - x) <= tol * max(1, abs(x)) or hi - lo <= tol * max(1, abs(lo)):
            return new
        x = new
    return x


def _solve_points(G, gens: tuple, near: bool) -> list[tuple[tuple, _Root]]:
    """Points of a zero-dimensional lex Groebner basis, by back-substitution: real ones, and
    with ``near`` complex ones close to the real axis (for near-multiple roots)."""
    polys = [sp.Poly(g, *gens) for g in G.exprs]
    n = len(gens)
    last = [p for p in polys if p.free_symbols <= {gens[-1]}]
    starts = _univariate_roots(sp.Poly(last[0].as_expr(), gens[-1], domain="QQ"), near)
    partial = [((r.value,), r) for r in starts]
    for k in range(n - 2, -1, -1):
        level = [p for p in polys if gens[k] in p.free_symbols and p.free_symbols <= set(gens[k:])]
        nxt = []
        for vals, root in partial:
            sub = dict(zip(gens[k + 1:], vals))
            for value in _roots_at(level, gens[k], sub, complex_ok=root.from_pair):
                nxt.append(((value,) + vals, root))
        partial = nxt
    return partial


def _roots_at(level: list[sp.Poly], x: sp.Symbol, sub: dict, complex_ok: bool) -> list:
    """Common roots in x of the polynomials ``level`` with the other variables fixed: real
    ones, or (complex_ok) complex ones too."""
    small = mpmath.mpf(10) ** (-HP_DPS // 3)
    univ = []
    for p in level:
        coeffs = []
        for (deg,), c in sp.Poly(p.as_expr(), x).terms():
            coeffs.append((deg, _mp_eval(c, sub)))
        top = max((abs(v) for _, v in coeffs), default=mpmath.mpf(0))
        coeffs = [(d, v) for d, v in coeffs if abs(v) > small**1.5 * max(top, 1)]
        if not coeffs:
            continue  # vanishes identically at this point
        degree = max(d for d, _ in coeffs)
        dense = [mpmath.mpf(0)] * (degree + 1)
        for d, v in coeffs:
            dense[degree - d] = v
        univ.append(dense)
    if not univ:
        raise _PositiveDimensional()
    univ.sort(key=len)
    base = univ[0]
    if len(base) == 1:
        return []  # a non-zero constant: no solution on this branch
    out = []
    for r in mpmath.polyroots(base, maxsteps=400, extraprec=400):
        r = mpmath.mpc(r)
        if not complex_ok and abs(r.imag) > small * max(1, abs(r)):
            continue
        x0 = r if complex_ok else r.real
        tol = small * (1e8 if complex_ok else 1)
        if all(abs(mpmath.polyval(c, x0)) <= tol * max(1, max(abs(v) for v in c)) for c in univ):
            if not any(abs(x0 - y) < small for y in out):
                out.append(x0)
    return out


class _PositiveDimensional(Exception):
    pass


def _mp_eval(expr: sp.Expr, sub: dict):
    if not sub:
        return _mpq(expr)
    total = mpmath.mpf(0)
    vals = list(sub.values())
    for monom, c in sp.Poly(expr, *sub).terms():
        term = _mpq(c)
        for v, e in zip(vals, monom):
            term *= v**e
        total += term
    return total


class _PolyEval:
    """Evaluate polynomials over Q at mpmath points, with their term scale (sum of |terms|)."""

    def __init__(self, polys: list[sp.Poly]):
        self.terms = [[(m, _mpq(c)) for m, c in p.terms()] for p in polys]

    def __call__(self, x) -> list[tuple[Any, Any]]:
        out = []
        for terms in self.terms:
            total, size = mpmath.mpf(0), mpmath.mpf(0)
            for m, c in terms:
                t = c
                for v, e in zip(x, m):
                    if e:
                        t *= v**e
                total += t
                size += abs(t)
            out.append((total, size))
        return out


def _exact(system: ODESystem, prm: dict[str, Any], bounds: list[sp.Interval],
           conj: Rationalised | None = None) -> EquilibriumSet:
    """Exact elimination; with ``conj``, ``system`` is its ``zeros`` (parameters substituted,
    states changed to u = x**(1/q)), and the points are mapped back and classified in the
    original system (``_make``)."""
    gens = system.states
    values = {system.symbols[k]: _rational(v) for k, v in prm.items() if k in system.param_names}
    rounded = any(r for _, r in values.values())
    exponents = exponent_params(conj.original) if conj is not None else set()
    inexact = rounded or any(isinstance(v, (float, np.floating)) for k, v in prm.items() if k not in exponents)
    sub = {k: v for k, (v, _) in values.items()}
    nums, dens = [], []
    for expr in system.numerators:
        poly, r = _to_poly(sp.expand(expr.xreplace(sub)), gens)
        nums.append(poly)
        rounded |= r
    for expr in system.denominators:
        poly, r = _to_poly(sp.expand(expr.xreplace(sub)), gens)
        dens.append(poly)
        rounded |= r
    inexact |= rounded
    method = "exact elimination (Groebner basis, certified real-root isolation)"
    if rounded:
        method += "; irrational constants rounded to 60-digit rationals"
    x_bounds = bounds
    if conj is not None:
        fixed = ", ".join(f"{k} = {v}" for k, v in conj.fixed.items() if k in exponents)
        method += f" at {fixed}" if fixed else ""
        method += f" ({conj.note})" if conj.note else ""
        bounds = conj.bounds(bounds)
    if any(d.is_zero for d in dens):
        return EquilibriumSet((), (), True, method, "a denominator vanishes identically at these parameters: "
                              "the right-hand side is undefined everywhere")
    state_dens = [d for d in dens if not d.is_ground]
    num_eval, den_eval = _PolyEval(nums), _PolyEval(state_dens)

    raw: list[tuple[tuple, _Root]] = []
    curves = []
    for kind, G in _components(nums, gens):
        if kind == "points":
            try:
                raw += _solve_points(G, gens, inexact)
                continue
            except _PositiveDimensional:
                pass
        if G is not None and state_dens and _inside_pole_set(G, state_dens, gens):
            continue
        curves.append(_curve(G, gens))

    found: list[dict] = []
    n_poles = n_huge = 0
    for vals, root in raw:
        if root.from_pair:
            if any(abs(mpmath.im(v)) > NEAR_SEPARATION * max(1, abs(v)) for v in vals):
                continue
            vals = tuple(mpmath.re(v) for v in vals)
            if not _pseudo_root(num_eval(vals)):
                continue
        if any(abs(v) <= HP_RTOL * s for v, s in den_eval(vals)):
            n_poles += 1
            continue
        if not _inside(vals, bounds, root):
            continue
        if any(abs(v) > FLOAT_RANGE for v in vals):
            n_huge += 1
            continue
        if any(_same(vals, f["vals"]) for f in found):
            continue
        found.append({"vals": vals, "root": root, "mult": root.mult * (2 if root.from_pair else 1),
                      "near": root.from_pair, "pair": root.from_pair, "with": []})
    if inexact:
        found = _merge_near_multiple(found, num_eval)

    found.sort(key=lambda f: tuple(float(v) for v in f["vals"]))
    eqs = tuple(_make(system, prm, f, x_bounds if conj is not None else bounds, curves, conj) for f in found)
    reasons = []
    if not eqs and not curves:
        reasons.append("no real equilibrium inside the domain")
    if n_poles:
        reasons.append(f"{n_poles} zero(s) of the numerators dropped: a denominator vanishes there (a pole or a "
                       "removable point, where the right-hand side is undefined)")
    if n_huge:
        reasons.append(f"{n_huge} equilibri(um/a) beyond the float64 range (|x| > {FLOAT_RANGE:g}) not reported as points")
    return EquilibriumSet(eqs, tuple(curves), True, method, "; ".join(reasons))


def _pseudo_root(values: list[tuple[Any, Any]]) -> bool:
    """Every polynomial is within NEAR_RTOL of its term scale (``is_pseudo_root``): a relative
    perturbation of the coefficients by NEAR_RTOL makes the point a root."""
    return all(is_pseudo_root(v, s) for v, s in values)


def _merge_near_multiple(found: list[dict], num_eval) -> list[dict]:
    """The near-multiple rule of ``dynamics._tolerance``: points within NEAR_SEPARATION of each
    other whose midpoint is a pseudo-root are linked; each connected group becomes one point at
    its mean with the summed multiplicity (``near`` set, ``with`` the merged points)."""
    n = len(found)
    group = list(range(n))

    def top(i):
        while group[i] != i:
            i = group[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            a, b = found[i]["vals"], found[j]["vals"]
            dist = max(abs(u - v) for u, v in zip(a, b))
            size = max([1] + [abs(u) for u in a + b])
            if dist <= NEAR_SEPARATION * size and _pseudo_root(num_eval(tuple((u + v) / 2 for u, v in zip(a, b)))):
                group[top(j)] = top(i)
    out = []
    for g in sorted({top(i) for i in range(n)}):
        members = [found[i] for i in range(n) if top(i) == g]
        if len(members) == 1:
            out.append(members[0])
            continue
        k = len(members)
        vals = tuple(sum(m["vals"][c] for m in members) / k for c in range(len(members[0]["vals"])))
        root = _Root(vals[0], sum(m["mult"] for m in members))
        out.append({"vals": vals, "root": root, "mult": root.mult, "near": True, "pair": False,
                    "with": [m["vals"] for m in members]})
    return out


def _same(a: tuple, b: tuple) -> bool:
    return all(abs(u - v) <= mpmath.mpf(10) ** (-HP_DPS // 2) * max(1, abs(u), abs(v)) for u, v in zip(a, b))


def _inside_pole_set(G, dens: list[sp.Poly], gens: tuple) -> bool:
    """A denominator vanishes on the whole component V(G) (D in the radical of G, by the
    Rabinowitsch trick): the component is no set of equilibria."""
    t = sp.Dummy("t")
    for d in dens:
        basis = sp.groebner(list(G.exprs) + [1 - t * d.as_expr()], t, *gens, order="lex", domain="QQ", method="f5b")
        if basis.exprs == [1]:
            return True
    return False


def _curve(G, gens) -> EquilibriumCurve:
    eqs = tuple(sp.Poly(g, *gens).monic().as_expr() for g in (G.exprs if G else []))
    free = [g for g in gens if not any(sp.Poly(e, *gens).degree(g) > 0 for e in eqs)] if eqs else list(gens)
    dim = max(1, len(gens) - len(eqs)) if eqs else len(gens)
    note = "a continuum of equilibria (conserved quantity or degenerate parameters)"
    if free:
        note += f"; free along {', '.join(map(str, free))}"
    return EquilibriumCurve(eqs, dim, note)


def _inside(vals: tuple, bounds: list[sp.Interval], root: _Root) -> bool:
    """Inside the domain: exact where the coordinate is an exact rational (the one-state
    case), else within 10^-(HP_DPS/2) relative of a closed end."""
    exact_single = root.exact is not None and len(vals) == 1
    tol = mpmath.mpf(10) ** (-HP_DPS // 2)
    for v, interval in zip(vals, bounds):
        if interval == _REALS:
            continue
        if exact_single:
            if interval.contains(root.exact) != sp.true:
                return False
            continue
        for end, is_open, side in ((interval.start, interval.left_open, 1), (interval.end, interval.right_open, -1)):
            if end in (sp.oo, -sp.oo):
                continue
            e = to_mp(end)
            gap = (v - e) * side  # > 0 inside
            if abs(v - e) <= tol * max(1, abs(e)):
                if is_open:
                    return False
            elif gap < 0:
                return False
    return True


def _float_bounds(bounds: list[sp.Interval]) -> dict[int, tuple[float, float]]:
    return {i: (float(b.inf), float(b.sup)) for i, b in enumerate(bounds) if b != _REALS}


def _collapse_flags(system, x, rtol: float) -> tuple[bool, bool]:
    """(every collapse state zero, some but not all), zero relative to the point's size:
    10^-(HP_DPS/2) for high-precision points, FLOAT_ZERO for float ones."""
    idx = system.collapse_indices
    if not idx:
        return False, False
    size = max([1.0] + [abs(float(v)) for v in x])
    tol = 10.0 ** (-HP_DPS // 2) if rtol < FLOAT_RTOL else FLOAT_ZERO
    zero = np.array([abs(float(x[i])) <= tol * size for i in idx])
    return bool(zero.all()), bool(zero.any() and not zero.all())


def _exact_value(v, root: _Root, single: bool):
    if single and root.exact is not None:
        return root.exact
    return sp.Float(mpmath.nstr(v, HP_DPS), HP_DPS)


def _make(system: ODESystem, prm, f: dict, bounds: list[sp.Interval], curves, conj: Rationalised | None = None
          ) -> Equilibrium:
    vals, root = f["vals"], f["root"]
    if conj is not None:
        return _make_conjugate(conj, prm, f, bounds, curves)
    x = np.array([float(v) for v in vals])
    x.setflags(write=False)
    notes = []
    if f["pair"]:
        notes.append("near-double root: a complex pair within NEAR_RTOL of the real axis (the float parameters are "
                     "within rounding of a fold); reported once, at its real part, as a double root")
    if f["with"]:
        where = "; ".join(", ".join(f"{n}={float(v):.12g}" for n, v in zip(system.state_names, other))
                          for other in f["with"])
        notes.append(f"near-multiple root: the roots at {where} merge under a relative perturbation of the parameters "
                     f"by NEAR_RTOL (close to a fold); reported once, at their mean, with multiplicity {f['mult']}")
    note = "; ".join(notes)
    mult = f["mult"]
    rtol = float(np.sqrt(NEAR_RTOL)) if f["near"] else HP_RTOL  # a pseudo-root: f' ~ sqrt(NEAR_RTOL)
    cls = classify_at(system, prm, vals, rtol=rtol, bounds=_float_bounds(bounds),
                    on_curve=_on_curve(vals, system, curves), multiplicity=mult, note=note)
    collapsed, partial = _collapse_flags(system, vals, rtol)
    residual, scale = residual_and_scale(system, prm, x)
    single = len(vals) == 1
    return Equilibrium(
        point=dict(zip(system.state_names, map(float, x))),
        x=x,
        classification=cls,
        jacobian_symbolic=system.jacobian,
        collapsed=collapsed,
        partially_collapsed=partial,
        multiplicity=mult,
        residual=residual,
        residual_scale=scale,
        exact=tuple(_exact_value(v, root, single) for v in vals),
        near_multiple=bool(f["near"]),
        note=note,
    )


def _on_curve(vals: tuple, system, curves) -> bool:
    if not curves:
        return False
    sub = dict(zip(system.states, vals))
    for c in curves:
        if not c.equations:
            continue
        if all(abs(_mp_poly_value(e, sub)) < mpmath.mpf(10) ** (-HP_DPS // 2) for e in c.equations):
            return True
    return False


def _mp_poly_value(expr: sp.Expr, sub: dict):
    total = mpmath.mpf(0)
    gens = list(sub)
    for m, c in sp.Poly(expr, *gens).terms():
        t = _mpq(c)
        for g, e in zip(gens, m):
            if e:
                t *= sub[g] ** e
        total += t
    return total


# -- multi-start Newton (non-rational systems, K-mode systems) ---------------------------------


NEWTON_STARTS = {"symbolic": 2000, "numeric": 48}
"""Default number of Newton starts: for explicit (non-rational) equations, and for systems served
numerically only (``symbolic`` None: K-mode closures, the exact flow, direction flows), whose
right-hand side costs far more per evaluation."""

SEARCH_RADIUS = {"symbolic": 10.0, "numeric": 2.0}
"""The searched box where the domain leaves a state unbounded: [-R, R] for a state unbounded on
both sides, [lo, lo + R] (or [hi - R, hi]) for one bounded on one side."""

DEFLATION_ROUNDS = {"symbolic": 3, "numeric": 0}
"""Rounds of deflated Newton after the first pass (each from the starts that found a known root,
with the known roots deflated); none for systems served numerically, where a deflated start that
finds nothing runs all its Newton steps through the quadrature (a round cost six times the first
pass on the exact flow): raise ``n_starts`` there."""

DEFLATION_STARTS = {"symbolic": 1000, "numeric": 24}
"""At most this many starts per deflation round, evenly strided through those that found a known
root."""

_NEWTON_STEPS = 30
"""Newton steps per start: from inside a root's basin Newton converges in a handful; a batch
runs until its slowest start stops, so a start still wandering after this many is dropped."""
_NEWTON_CHUNK = 256


@lru_cache(maxsize=32)
def newton_solver(system):
    """Batched Newton (least-squares steps) from many starts, stopping once every start has
    converged or left the float range: ``solve(starts, P, roots=None)``. The Jacobian is JAX's
    for explicit equations, and forward differences (n + 1 evaluations in one batch) for
    systems served numerically, whose autodiff through a quadrature costs several times that.

    With ``roots`` (m, n), Newton runs on the deflated residual M(y) f(y), M(y) = prod_i
    (1 / |y - r_i|^2 + 1) (Farrell, Birkisson and Funke 2015): the known roots repel it, and it
    converges to another root of f or not at all."""
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)

    def deflation(y, R, A):
        d2 = jnp.sum((y[None] - R) ** 2, axis=1)
        return jnp.prod(jnp.where(A, 1.0 / jnp.where(A, d2, 1.0) + 1.0, 1.0))

    if system.symbolic is not None:
        def value_and_jac(y, P, R, A):
            g = lambda y: deflation(y, R, A) * f(0.0, y, P)  # noqa: E731
            return g(y), jax.jacfwd(g)(y)
    else:
        def value_and_jac(y, P, R, A):
            h = 1e-7 * jnp.maximum(1.0, jnp.abs(y))
            ys = jnp.concatenate([y[None], y[None] + jnp.diag(h)])
            vals = jax.vmap(lambda z: deflation(z, R, A))(ys)[:, None] * f(0.0, ys, P)
            return vals[0], ((vals[1:] - vals[0]) / h[:, None]).T

    def newton(y, P, R, A):
        def body(state):
            i, y, _ = state
            value, J = value_and_jac(y, P, R, A)
            solved = jnp.max(jnp.abs(value)) <= NEWTON_STOP["residual"]
            step = jnp.where(solved, 0.0, jnp.linalg.lstsq(J, -value)[0])
            y_new = y + step
            done = (solved | ~jnp.all(jnp.isfinite(y_new))
                    | (jnp.max(jnp.abs(step)) <= NEWTON_STOP["step"] * jnp.maximum(1.0, jnp.max(jnp.abs(y_new)))))
            return i + 1, y_new, done

        return jax.lax.while_loop(lambda s: (s[0] < _NEWTON_STEPS) & ~s[2], body, (0, y, False))[1]

    batched = jax.jit(jax.vmap(newton, in_axes=(0, None, None, None)))
    n = system.n_states

    def solve(starts, P, roots=None):
        m = 0 if roots is None else len(roots)
        size = 1 << max(3, (m - 1).bit_length())  # a few compiled sizes, not one per count
        R = np.zeros((size, n))
        A = np.zeros(size, dtype=bool)
        if m:
            R[:m], A[:m] = roots, True
        return batched(starts, P, jnp.asarray(R), jnp.asarray(A))

    return solve


def search_box(system, bounds: list[sp.Interval]) -> np.ndarray:
    """(n, 2) the box multi-start Newton covers: the domain where it is bounded, else
    ``SEARCH_RADIUS`` around zero or the one finite end."""
    R = SEARCH_RADIUS["symbolic" if system.symbolic is not None else "numeric"]
    box = np.empty((system.n_states, 2))
    for i, interval in enumerate(bounds):
        lo, hi = float(interval.inf), float(interval.sup)
        if np.isfinite(lo) and np.isfinite(hi):
            box[i] = lo, hi
        elif np.isfinite(lo):
            box[i] = lo, lo + R
        elif np.isfinite(hi):
            box[i] = hi - R, hi
        else:
            box[i] = -R, R
    return box


def _newton(system, prm: dict[str, Any], bounds: list[sp.Interval], n_starts: int | None, seed: int,
            extra: np.ndarray | None = None) -> EquilibriumSet:
    import jax.numpy as jnp
    from scipy.stats import qmc

    kind = "symbolic" if system.symbolic is not None else "numeric"
    if n_starts is None:
        n_starts = NEWTON_STARTS[kind]
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"n_starts must be a positive int; got {n_starts!r}")
    fprm = {k: numeric(v) for k, v in prm.items()}
    solve = newton_solver(system)
    P = {k: jnp.asarray(v) for k, v in fprm.items()}
    box = search_box(system, bounds)
    unit = qmc.Halton(d=system.n_states, scramble=True, seed=seed).random(n_starts)
    starts = box[:, 0] + unit * (box[:, 1] - box[:, 0])
    if extra is not None:
        starts = np.concatenate([extra, starts])
    fn = system.to_numpy(checked=False)

    def residual(y):
        with np.errstate(all="ignore"):
            return float(np.max(np.abs(fn(0.0, y, fprm))))

    def run(from_, roots=None):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.concatenate([np.asarray(solve(jnp.asarray(from_[i:i + _NEWTON_CHUNK]), P, roots))
                                   for i in range(0, len(from_), _NEWTON_CHUNK)])

    found: list[np.ndarray] = []
    outside = []
    symmetry = system.symmetry
    invariants = symmetry.invariants if symmetry is not None else None
    labels: list[np.ndarray] = []
    on_orbit: list[int] = []

    def invariant(y) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(invariants(jnp.asarray(y), P), dtype=float).reshape(-1)

    def on_constraint(y) -> bool:
        """On the set the system lives on (a zero of its extension off the set is no equilibrium)."""
        if system.constraint is None:
            return True
        with np.errstate(all="ignore"):
            c = np.asarray(system.constraint.function(jnp.asarray(y), P), dtype=float)
        return bool(np.all(np.abs(c) <= np.sqrt(NEWTON_RTOL)))

    def collect(ends, n_given=0) -> np.ndarray:
        """Index into ``found`` of each end (new roots appended), -1 where Newton failed; the
        first ``n_given`` ends come from given starts and count anywhere in the domain."""
        which = np.full(len(ends), -1)
        for k, y in enumerate(ends):
            if not np.all(np.isfinite(y)) or not _inside_float(y, _float_bounds(bounds), RTOL):
                continue
            y = snap_zeros(y, lambda z: fn(0.0, z, fprm))
            if not residual(y) <= NEWTON_ATOL or not on_constraint(y):
                continue
            if k >= n_given and not _in_box(y, box):
                if not any(np.allclose(y, z, rtol=NEWTON_RTOL, atol=RTOL) for z in outside):
                    outside.append(y)
                continue
            same = [i for i, z in enumerate(found) if np.allclose(y, z, rtol=NEWTON_RTOL, atol=RTOL)]
            if not same and invariants is not None:
                label = invariant(y)
                same = [i for i, z in enumerate(labels) if np.allclose(label, z, rtol=NEWTON_RTOL, atol=RTOL)]
            if not same:
                found.append(y)
                if invariants is not None:
                    labels.append(label)
                    on_orbit.append(0)
            which[k] = same[0] if same else len(found) - 1
            if invariants is not None:
                on_orbit[which[k]] += 1
        return which

    which = collect(run(starts), 0 if extra is None else len(extra))
    rounds = 0
    for _ in range(DEFLATION_ROUNDS[kind] if found else 0):
        again = starts[which >= 0]
        again = again[:: max(1, -(-len(again) // DEFLATION_STARTS[kind]))]
        before = len(found)
        collect(run(again, np.array(found)))
        rounds += 1
        if len(found) == before:
            break
    notes = {}
    if invariants is not None:
        notes = {i: f"stands for its orbit under {symmetry.description} (Newton ended on the orbit from {m} start(s))"
                 for i, m in enumerate(on_orbit) if orbit_tangents(system, found[i], prm).shape[1]}
    eqs = _classified(system, prm, found, bounds, notes)
    what = ("no explicit equations" if system.symbolic is None else "non-rational right-hand side"
            if not system.is_rational else "rational right-hand side beyond exact elimination's budget")
    if len(box) > 2 and np.all(box == box[0]):
        where = f"[{box[0, 0]:.4g}, {box[0, 1]:.4g}]^{len(box)} (every state)"
    else:
        where = ", ".join(f"{name} in [{lo:.4g}, {hi:.4g}]" for name, (lo, hi) in zip(system.state_names, box))
    given = f" and {len(extra)} given start(s)" if extra is not None else ""
    deflation = (f", then {rounds} round{'s' if rounds > 1 else ''} of deflated Newton from the starts that found a "
                 "known root" if rounds else "")
    reasons = [] if eqs else ["Newton found no equilibrium in the searched box (the search is not exhaustive)"]
    if symmetry is not None and invariants is None:
        reasons.append(f"the system declares a symmetry ({symmetry.description}) without invariants: points on one "
                       "orbit are reported one by one")
    if outside:
        reasons.append(f"{len(outside)} equilibri(um/a) found outside the searched box not reported (the box is not "
                       "searched beyond; pass domain= to search there)")
    return EquilibriumSet(
        tuple(eqs), (), False,
        f"multi-start Newton ({n_starts} quasi-random Halton starts over the box {where}{given}{deflation}; {what}: "
        "the enumeration is not exhaustive)",
        "; ".join(reasons),
    )


def _classified(system, prm: dict[str, Any], found: list[np.ndarray], bounds: list[sp.Interval],
                notes: dict[int, str] | None = None, zero_rtol: dict[int, float] | None = None
                ) -> tuple[Equilibrium, ...]:
    """Equilibria at the float points ``found`` (sorted), classified in float precision;
    ``notes`` and ``zero_rtol`` (the zero tolerance of the eigenvalues, for points not proved
    simple: Newton reaches a double root only to sqrt(eps)) by index into ``found``."""
    notes, zero_rtol = notes or {}, zero_rtol or {}
    order = sorted(range(len(found)), key=lambda i: tuple(found[i]))
    eqs = []
    with mpmath.workdps(HP_DPS):
        for i in order:
            y = np.array(found[i], dtype=float)
            y.setflags(write=False)
            rtol = max(FLOAT_RTOL, zero_rtol.get(i, 0.0))
            cls = classify_at(system, prm, tuple(float(v) for v in y), rtol=rtol, bounds=_float_bounds(bounds),
                              note=notes.get(i, ""))
            collapsed, partial = _collapse_flags(system, y, FLOAT_RTOL)
            res, scale = residual_and_scale(system, prm, y)
            eqs.append(Equilibrium(
                point=dict(zip(system.state_names, map(float, y))), x=y, classification=cls,
                jacobian_symbolic=system.symbolic.jacobian if system.symbolic is not None else None,
                collapsed=collapsed, partially_collapsed=partial, multiplicity=None,
                residual=res, residual_scale=scale, note=notes.get(i, ""),
            ))
    return tuple(eqs)


def _interval(system, prm: dict[str, Any], bounds: list[sp.Interval]) -> EquilibriumSet | str:
    """Krawczyk's interval search over the searched box (``dynamics._krawczyk``): every
    equilibrium in the box, each proved unique in a sub-box; or why it was not used."""
    fprm = {k: numeric(v) for k, v in prm.items()}
    functions = interval_functions(system, tuple(sorted(fprm.items())))
    if functions is None:
        return "a function without an interval enclosure here"
    box = search_box(system, bounds)
    if np.any(box[:, 1] <= box[:, 0]):
        return "a state is fixed by the domain (a box of zero width)"
    fn = system.to_numpy(checked=False)
    values = lambda y: fn(0.0, y, fprm)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = krawczyk_search(functions, box, values, lambda y: jacobian_at(system, y, fprm))
    if result is None:
        return (f"the interval search passed its budget ({KRAWCZYK_BUDGET['boxes']} boxes or "
                f"{KRAWCZYK_BUDGET['seconds']:g} s)")
    found = [snap_zeros(y, values) for y in result.zeros if _inside_float(y, _float_bounds(bounds), RTOL)]
    notes = {}
    zero_rtol = {}
    for lo, hi in _clusters(result.undecided):
        y = snap_zeros((lo + hi) / 2, values)
        if any(np.allclose(y, z, rtol=NEWTON_RTOL, atol=RTOL) for z in found):
            continue
        if np.max(np.abs(values(y))) <= NEWTON_ATOL and _inside_float(y, _float_bounds(bounds), RTOL):
            notes[len(found)] = ("not proved unique: the interval search could not isolate this zero (a multiple zero, "
                                 "one on a curve of zeros, or one on the searched box's boundary); located by Newton")
            zero_rtol[len(found)] = jacobian_spread(functions, lo, hi, jacobian_at(system, y, fprm))
            found.append(y)
    where = ", ".join(f"{name} in [{lo:.4g}, {hi:.4g}]" for name, (lo, hi) in zip(system.state_names, box))
    whole = all(np.isfinite(float(b.inf)) and np.isfinite(float(b.sup)) for b in bounds)
    complete = whole and not result.undecided
    scope = "the domain" if whole else f"the box {where}"
    reasons = [] if found else [f"no equilibrium in {scope}"]
    if result.undecided:
        reasons.append(f"{len(result.undecided)} box(es) narrower than {KRAWCZYK_BUDGET['min_width']:g} of the searched "
                       "box stayed undecided")
    if not whole:
        reasons.append("the box is not searched beyond; pass domain= to search elsewhere")
    return EquilibriumSet(
        _classified(system, prm, found, bounds, notes, zero_rtol), (), complete,
        f"Krawczyk interval search over {scope} ({result.boxes} boxes): every equilibrium in it "
        "found and proved unique in its own box" + (" except where undecided" if result.undecided else ""),
        "; ".join(reasons),
    )


def _clusters(boxes) -> list[tuple[np.ndarray, np.ndarray]]:
    """Touching boxes merged into their hulls, until no two hulls touch."""
    out = [(np.array(lo), np.array(hi)) for lo, hi in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                (a, b), (c, d) = out[i], out[j]
                if np.all(a <= d) and np.all(b >= c):
                    out[i] = (np.minimum(a, c), np.maximum(b, d))
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def _in_box(y: np.ndarray, box: np.ndarray) -> bool:
    pad = RTOL * np.maximum(1.0, np.abs(box))
    return bool(np.all((y >= box[:, 0] - pad[:, 0]) & (y <= box[:, 1] + pad[:, 1])))


def snap_zeros(y: np.ndarray, values) -> np.ndarray:
    """Coordinates within sqrt(NEWTON_RTOL) of zero (relative to the point) set to exactly zero
    when the residual max |values(z)| there is within NEWTON_ATOL, after a Newton polish of the
    other coordinates with those held at zero if needed (zeroing may move the point off a
    constraint): Newton converges only linearly to a root on an invariant coordinate subspace
    with a zero eigenvalue across it (a collapsed mode, x' ~ x^2, or flatter where the flow is
    not smooth there), and would leave it at ~1e-9 (or 1e-6), where the linearisation is that of
    a nearby non-equilibrium."""
    def residual(z):
        with np.errstate(all="ignore"):
            return float(np.max(np.abs(values(z))))

    small = np.abs(y) <= np.sqrt(NEWTON_RTOL) * max(1.0, float(np.max(np.abs(y))))
    if small.any():
        z = np.where(small, 0.0, y)
        if residual(z) <= NEWTON_ATOL:
            return z
        z = _newton_on_face(values, z, ~small)
        if z is not None and residual(z) <= NEWTON_ATOL:
            return z
    return y


def _newton_on_face(values, z: np.ndarray, free: np.ndarray, steps: int = 12) -> np.ndarray | None:
    """Gauss-Newton in the ``free`` coordinates only (forward differences), the others fixed."""
    idx = np.flatnonzero(free)
    if not idx.size:
        return None
    z = np.array(z, dtype=float)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            r = np.asarray(values(z), dtype=float)
            h = 1e-7 * np.maximum(1.0, np.abs(z[idx]))
            J = np.empty((r.size, idx.size))
            for k, (i, hi) in enumerate(zip(idx, h)):
                zp = z.copy()
                zp[i] += hi
                J[:, k] = (np.asarray(values(zp), dtype=float) - r) / hi
            if not (np.all(np.isfinite(J)) and np.all(np.isfinite(r))):
                return None
            step = np.linalg.lstsq(J, -r, rcond=None)[0]
            z[idx] += step
            if np.max(np.abs(step)) <= NEWTON_STOP["step"] * max(1.0, float(np.max(np.abs(z)))):
                break
    return z if np.all(np.isfinite(z)) else None


def _inside_float(x: np.ndarray, bounds: dict, tol: float) -> bool:
    return all(lo - tol * max(1, abs(lo) if np.isfinite(lo) else 1) <= x[i] <= hi + tol * max(1, abs(hi) if np.isfinite(hi) else 1)
               for i, (lo, hi) in bounds.items())


def _make_conjugate(conj: Rationalised, prm, f: dict, bounds: list[sp.Interval], curves) -> Equilibrium:
    """A point found in the coordinates u of ``conj``, in the original states (``bounds`` are
    theirs) and classified there. Where the original Jacobian is not finite (s**alpha,
    alpha < 1, at s = 0) it is classified by the conjugate flow in u, smooth there and with the
    same stability, if that flow vanishes at the point; otherwise (ds/dt ~ c s**(1/q)) by the
    one-sided flow (``_one_sided``)."""
    system = conj.original
    exact_prm = {**prm, **conj.fixed}
    u, root = f["vals"], f["root"]
    vals = conj.to_original(u)
    x = np.array([float(v) for v in vals])
    x.setflags(write=False)
    rtol = float(np.sqrt(NEAR_RTOL)) if f["near"] else HP_RTOL
    mult = f["mult"] if not conj.substituted or all(float(v) != 0 for v in u) else None
    box = _float_bounds(bounds)
    if not conj.substituted:
        cls = classify_at(conj.conjugate, {}, vals, rtol=rtol, bounds=box, multiplicity=mult)
    elif differentiable_at(system, exact_prm, vals):
        cls = classify_at(system, exact_prm, vals, rtol=rtol, bounds=box, multiplicity=mult)
    elif not _vanishes(conj.conjugate, exact_prm, u):
        cls = classify_at(system, exact_prm, vals, rtol=rtol, bounds=box)  # the one-sided flow decides
    else:
        at = ", ".join(f"{n} = 0" for n, q, v in zip(system.state_names, conj.powers, u) if q > 1 and v == 0)
        changed = ", ".join(f"u_{n} = {n}**(1/{q})" for n, q in zip(system.state_names, conj.powers) if q > 1)
        cls = classify_at(conj.conjugate, {k: v for k, v in exact_prm.items() if k in conj.conjugate.param_names}, u,
                          rtol=rtol, bounds=_float_bounds(conj.bounds(bounds)), note=(
                              f"the right-hand side is not differentiable at {at or 'the point'}; classified by the "
                              f"flow in {changed} (one-sided, conjugate to the flow in the original states)"))
    collapsed, partial = _collapse_flags(system, vals, rtol)
    residual, scale = residual_and_scale(system, exact_prm, x)
    single = len(vals) == 1
    exact = tuple(root.exact ** q if single and root.exact is not None else sp.Float(mpmath.nstr(v, HP_DPS), HP_DPS)
                  for v, q in zip(vals, conj.powers))
    return Equilibrium(
        point=dict(zip(system.state_names, map(float, x))), x=x, classification=cls,
        jacobian_symbolic=system.jacobian, collapsed=collapsed, partially_collapsed=partial, multiplicity=mult,
        residual=residual, residual_scale=scale, exact=exact, near_multiple=bool(f["near"]), note=conj.note,
    )


def _vanishes(system: ODESystem, prm, point) -> bool:
    """``system``'s right-hand side is finite and zero (within its rounding) at ``point``."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        residual, scale = residual_and_scale(system, {k: v for k, v in prm.items() if k in system.param_names},
                                             np.array([float(v) for v in point]))
    return bool(np.isfinite(residual) and residual <= NEWTON_ATOL * max(1.0, scale))
