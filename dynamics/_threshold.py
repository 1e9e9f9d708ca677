"""threshold(system, param): the symbolic conditions on a parameter at which equilibria bifurcate."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from derivations import ODESystem

from ._display import html_table
from ._normal_form import normal_form_kind
from ._prepare import label, prepared
from ._tolerance import COARSE_RTOL, HP_RTOL, LOCATE_RTOL
from ._value import Value

__all__ = ["threshold", "Threshold"]


# -- thresholds --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Threshold(Value):
    """Where equilibria appear, disappear, cross or start to oscillate, as conditions on
    ``param`` (each condition is ``expression = 0``; None where there is none).

    The ``*_solutions`` fields hold the conditions solved for ``param``: closed forms where a
    condition is of degree <= 2 in ``param`` or in a power ``param**k`` (then the real k-th
    roots; ``note`` says where there is no closed form). Solutions not real on the parameter
    domain, or outside the domain of ``param``, are dropped and ``note`` says which and why;
    solutions real only on part of the domain are kept and ``note`` gives the condition.
    Each point is labelled fold, transcritical or pitchfork by the normal-form decision of
    ``bifurcation`` (``normal_form_kind``), evaluated at the point with the other parameters
    at generic values inside their domains; points that are pitchforks are listed in
    ``pitchfork_solutions`` only.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    param : sympy.Symbol
        The parameter.
    fold : sympy.Expr or None
        A double root (one-state: discriminant of a factor of the numerator; several states:
        det J = 0 at a symbolic equilibrium).
    fold_solutions : tuple of sympy.Expr
        Values of ``param`` at a fold.
    transcritical : sympy.Expr or None
        The roots of two distinct factors meet (their resultant); several states: det J = 0
        where two symbolic equilibria coincide.
    transcritical_solutions : tuple of sympy.Expr
        Values of ``param`` at a transcritical point.
    pitchfork_solutions : tuple of sympy.Expr
        Values of ``param`` where the unfolding and the quadratic normal-form coefficients
        vanish: one branch splits into three (a symmetric triple root in one state; the
        Lorenz system at r = 1).
    hopf : sympy.Expr or None
        trace J = 0 at a two-state equilibrium (with det J > 0): a complex pair on the
        imaginary axis; None for one state.
    hopf_solutions : tuple of sympy.Expr
        Values of ``param`` at a Hopf point.
    note : str
        The answer in words (what was dropped and why, what has no closed form).
    held : tuple of str
        States held fixed as parameters for this analysis.
    equilibria : tuple of mapping str -> sympy.Expr
        The symbolic equilibria used (several states), as {state: expression}.
    """

    param: sp.Symbol
    fold: sp.Expr | None
    fold_solutions: tuple[sp.Expr, ...]
    transcritical: sp.Expr | None
    transcritical_solutions: tuple[sp.Expr, ...]
    pitchfork_solutions: tuple[sp.Expr, ...] = ()
    hopf: sp.Expr | None = None
    hopf_solutions: tuple[sp.Expr, ...] = ()
    note: str = ""
    held: tuple[str, ...] = ()
    equilibria: tuple[Mapping[str, sp.Expr], ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        def part(name, sols, cond):
            if sols:
                return f"{name} at {self.param} = {', '.join(sp.sstr(s) for s in sols)}"
            if cond is not None and self.pitchfork_solutions:
                return f"no {name} apart from the pitchfork"
            if cond is not None:
                return f"{name} where {sp.sstr(cond)} = 0"
            return f"no {name}"

        parts = [part("fold", self.fold_solutions, self.fold),
                 part("transcritical", self.transcritical_solutions, self.transcritical)]
        if self.pitchfork_solutions:
            parts.append(part("pitchfork", self.pitchfork_solutions, None))
        if self.hopf is not None or self.hopf_solutions:
            parts.append(part("Hopf", self.hopf_solutions, self.hopf))
        held = f" ({', '.join(self.held)} held fixed)" if self.held else ""
        return f"Threshold({self.param}{held}: {'; '.join(parts)})"

    def __str__(self) -> str:
        return repr(self) + (f"\n  {self.note}" if self.note else "")

    def _repr_html_(self) -> str:
        rows = []
        for kind, cond, sols in (("fold", self.fold, self.fold_solutions),
                                 ("transcritical", self.transcritical, self.transcritical_solutions),
                                 ("pitchfork", None, self.pitchfork_solutions),
                                 ("Hopf", self.hopf, self.hopf_solutions)):
            if (cond is None or (kind != "Hopf" and self.pitchfork_solutions)) and not sols:
                continue  # none, or only the pitchfork (listed once, as the pitchfork)
            rows.append((kind, "–" if cond is None else f"{sp.sstr(cond)} = 0",
                         ", ".join(sp.sstr(s) for s in sols) or "–"))
        held = f" ({', '.join(self.held)} held fixed)" if self.held else ""
        return html_table(f"Threshold in {self.param}{held}", ("kind", "condition", f"{self.param} ="), rows,
                          [self.note] if rows else ["no bifurcation condition", self.note])


def threshold(system: ODESystem, param: str, *, hold: Sequence[str] | None = None) -> Threshold:
    """The symbolic conditions on ``param`` at which equilibria bifurcate.

    The system is first restricted to its invariant manifold (if it declares one).

    One state, rational right-hand side f = N(x)/D(x): N is factored in x (factors shared
    with D are removable points, not equilibria, and are dropped). A fold is a double root of
    one factor: discriminant_x(f_i) = 0. A transcritical point is where the roots of two
    distinct factors meet: resultant_x(f_i, f_j) = 0. A pitchfork is both at once with a
    triple root (gcd(f_i, f_j, f_j') non-constant there). Factors of a condition that cannot
    vanish on the parameter domain (decided by SymPy on positive / non-negative symbols for
    parameters whose ``param_domain`` is (0, oo) / [0, oo)) or do not involve ``param`` are
    dropped. Example: the Euclidean SimSiam mode dp/dt = p^2 - c p^3 - eta p gives the fold
    eta = 1/(4c) (Tian et al.) and the transcritical point eta = 0.

    Several states: ``hold`` names states to hold fixed as parameters
    (``derivations.freeze``; e.g. Tian et al.'s analysis of the EMA mode at fixed tau,
    ``hold=("tau",)``: fold at eta = tau^2/(4c)). A polynomial system with at most three states whose equilibria SymPy solves in
    closed form gets fold conditions det J = 0 at each equilibrium (transcritical where two
    equilibria coincide there) and, with two states, Hopf conditions trace J = 0 with det J > 0
    (the Brusselator: b = 1 + a^2).

    Each solution is labelled by the normal form at its point (``normal_form_kind``, the
    decision ``bifurcation`` makes): fold where l . df/dparam != 0, transcritical where
    l . D^2 f(q, q) != 0, else pitchfork (l, q the null vectors of J), with the other
    parameters at generic values inside their domains; a point where the cubic coefficient
    vanishes too is degenerate (said in ``note``) and keeps the label of its condition. A
    condition polynomial in a power of ``param`` is solved in that power (the cusp
    x' = h + r x - x^3: 4 r^3 = 27 h^2, r = 3 (h^2/4)^(1/3); Selkov's Hopf condition is
    quadratic in b^2). Solutions that are not real on the parameter domain (b = sqrt(-a) with
    a >= 0) or lie outside the domain of ``param`` are dropped, with the reason in ``note``.

    Parameters
    ----------
    system : ODESystem
    param : str
        A parameter name (or a held state's name).
    hold : sequence of state names, optional
        States to hold fixed as parameters (``derivations.freeze``); default none.

    Returns
    -------
    Threshold

    Raises
    ------
    TypeError
        ``system`` is not an ODESystem.
    ValueError
        ``param`` is not a parameter; ``hold`` names unknown states; or the system is neither
        one-state rational nor a small polynomial system with closed-form equilibria (the
        message says what would serve: ``bifurcation`` numerically, or ``hold``).
    """
    reduced = prepared(system)
    if hold is None:
        hold = ()
    else:
        hold = (hold,) if isinstance(hold, str) else tuple(str(h) for h in hold)
        unknown = [h for h in hold if h not in reduced.state_names]
        if unknown:
            raise ValueError(f"hold names unknown states {unknown}; states are {list(reduced.state_names)}")
    if hold:
        reduced = reduced.freeze(*hold)
    if param not in reduced.param_names:
        raise ValueError(f"param={param!r} is not a parameter of {label(system)}; choose one of {reduced.param_names}")
    v = reduced.symbols[param]
    if reduced.n_states == 1 and reduced.is_rational:
        out = _threshold_one_state(reduced, v)
    else:
        out = _threshold_several(reduced, v, system)
    return Threshold(param=v, held=tuple(hold), **out)


def _assumed(system: ODESystem) -> dict[sp.Symbol, sp.Symbol]:
    """Parameters replaced by symbols that carry their domain's sign, for SymPy's
    ``is_nonzero`` / ``is_positive``."""
    out = {}
    for name, interval in system.param_domain.items():
        lo, hi = interval.start, interval.end
        if hi == sp.oo and lo == 0:
            kw = {"nonnegative": True} if not interval.left_open else {"positive": True}
        elif hi == sp.oo and lo > 0:
            kw = {"positive": True}
        elif lo == -sp.oo and hi == 0:
            kw = {"nonpositive": True} if not interval.right_open else {"negative": True}
        elif lo == -sp.oo and hi < 0:
            kw = {"negative": True}
        else:
            continue
        out[system.symbols[name]] = sp.Symbol(name, real=True, **kw)
    for s in system.params:
        out.setdefault(s, sp.Symbol(str(s), real=True))
    return out


def _relevant(expr: sp.Expr, v: sp.Symbol, assumed: dict, dropped: list[str]) -> list[sp.Expr]:
    """Irreducible factors of ``expr`` that involve ``v`` and can vanish on the domain."""
    if expr == 0:
        return []
    expr = sp.numer(sp.together(expr))
    try:
        _, factors = sp.factor_list(sp.expand(expr))
    except (sp.PolynomialError, NotImplementedError):
        factors = [(expr, 1)]  # not polynomial (radicals in a closed-form equilibrium): kept whole
    keep = []
    for f, _k in factors:
        if not f.has(v):
            continue
        if f.xreplace(assumed).is_nonzero:
            dropped.append(sp.sstr(f))
            continue
        if f not in keep:
            keep.append(f)
    return keep


def _power(P: sp.Poly) -> int:
    """The largest k such that the polynomial P in one variable is a polynomial in v**k."""
    exps = [m[0] for m in P.monoms() if m[0] > 0]
    return math.gcd(*exps) if exps else 1


def _kth_roots(w: sp.Expr, k: int, assumed: dict, domain: sp.Interval | None) -> tuple[list[sp.Expr], list[sp.Expr]]:
    """The real k-th roots of w: odd k the real one; even k +-w**(1/k). Returns (kept, left
    out), left out the sign that the domain of the parameter excludes."""
    if k % 2:
        wa = w.xreplace(assumed)
        if wa.is_nonnegative:
            return [sp.root(w, k)], []
        if wa.is_nonpositive:
            return [-sp.root(-w, k)], []
        return [sp.real_root(w, k)], []
    plus, minus = sp.root(w, k), -sp.root(w, k)
    if domain is not None and domain.start >= 0:
        return [plus], [minus]
    if domain is not None and domain.end <= 0:
        return [minus], [plus]
    return [plus, minus], []


def _reality(s: sp.Expr, assumed: dict) -> tuple[str | None, list[sp.Expr]]:
    """Whether the closed form ``s`` is real on the parameter domain: (why it is not, None if
    it may be; the radicands that must be >= 0 for it to be real)."""
    sa = s.xreplace(assumed)
    if sa.is_real is False or sa.is_finite is False:
        return "not real on the parameter domain", []
    where = []
    for p in sorted(s.atoms(sp.Pow), key=sp.default_sort_key):
        if not (p.exp.is_Rational and p.exp.q % 2 == 0):
            continue
        R = p.base.xreplace(assumed)
        if R.is_negative:
            return f"{sp.sstr(p.base)} < 0 on the parameter domain: not real", []
        if R.is_nonpositive and not R.is_zero:
            return f"{sp.sstr(p.base)} <= 0 on the parameter domain: real only where {sp.sstr(p.base)} = 0", []
        if not R.is_nonnegative and p.base not in where:
            where.append(p.base)
    return None, where


def _outside(v: sp.Symbol, domain: sp.Interval) -> str:
    lo, hi = ("(" if domain.left_open else "["), (")" if domain.right_open else "]")
    return f"outside the domain {v} in {lo}{sp.sstr(domain.start)}, {sp.sstr(domain.end)}{hi}"


def _solve_for(factors: list[sp.Expr], v: sp.Symbol, system: ODESystem, assumed: dict,
               no_closed: list[str], dropped: list[str] | None = None,
               real_where: list[tuple[str, str]] | None = None) -> list[sp.Expr]:
    """Real closed-form roots in ``v`` of each factor: of degree <= 2 in v, or in u = v**k
    where the factor is a polynomial in v**k (then v the real k-th roots of u). Roots not
    real on the parameter domain or outside the domain of ``v`` are left out and listed in
    ``dropped`` with the reason; roots real only on part of the domain are kept and their
    condition listed in ``real_where``."""
    dropped = [] if dropped is None else dropped
    real_where = [] if real_where is None else real_where
    domain = system.param_domain.get(str(v))
    out = []
    for f in factors:
        try:
            P = sp.Poly(f, v)
        except sp.PolynomialError:
            no_closed.append(f"{sp.sstr(f)} = 0 (not polynomial in {v})")
            continue
        k = _power(P)
        if P.degree() // k > 2:
            power = f" (degree {P.degree() // k} in {v}**{k})" if k > 1 else ""
            no_closed.append(f"{sp.sstr(f)} = 0 (degree {P.degree()} in {v}{power})")
            continue
        if k == 1:
            candidates = sp.solve(f, v)
        else:
            u = sp.Dummy("u")
            g = sp.Poly.from_dict({(e // k,): c for (e,), c in P.terms()}, u).as_expr()
            candidates = []
            for w in sp.solve(g, u):
                w = sp.simplify(w)
                why, _ = _reality(w, assumed)
                if why is None and (w.is_real is not False):
                    kept, left = _kth_roots(w, k, assumed, domain)
                    candidates += kept
                    dropped += [f"{v} = {sp.sstr(t)} ({_outside(v, domain)})" for t in left]
                else:
                    dropped.append(f"{v}**{k} = {sp.sstr(w)} ({why or 'not real'})")
        for s in candidates:
            s = sp.simplify(s)
            why, where = _reality(s, assumed)
            if why is None and s.has(sp.I) and s.xreplace(assumed).is_real is not True:
                why = "complex"
            if why is None and domain is not None and s.is_number and domain.contains(s) == sp.false:
                why = _outside(v, domain)
            if why is None and domain is not None and not s.is_number:
                sx = s.xreplace(assumed)
                if (domain.start >= 0 and sx.is_negative) or (domain.end <= 0 and sx.is_positive):
                    why = _outside(v, domain)
            if why is not None:
                dropped.append(f"{v} = {sp.sstr(s)} ({why})")
                continue
            if not any(sp.simplify(s - o) == 0 for o in out):
                out.append(s)
                if where:
                    real_where.append((" and ".join(f"{sp.sstr(R)} >= 0" for R in where), f"{v} = {sp.sstr(s)}"))
    return out


_GENERIC = tuple(sp.Rational(n, 100) for n in (137, 73, 219, 161, 89, 253, 117, 191))
"""Generic values for the other parameters when ``threshold`` labels a point: no special
value (0, 1, a ratio of small integers) at which a normal-form coefficient could vanish by
accident."""


def _generic_points(system: ODESystem, v: sp.Symbol) -> list[dict[sp.Symbol, sp.Expr]]:
    """A few assignments of generic values to the parameters other than ``v``, each inside
    the parameter's domain; parameters with no sign restriction take both signs in turn."""
    base, free = {}, []
    for i, p in enumerate(system.params):
        if p == v:
            continue
        g = _GENERIC[i % len(_GENERIC)]
        dom = system.param_domain.get(str(p))
        if not isinstance(dom, sp.Interval) or (dom.start == -sp.oo and dom.end == sp.oo):
            base[p] = g
            free.append(p)
        elif dom.contains(g) == sp.true:
            base[p] = g
        elif dom.contains(-g) == sp.true:
            base[p] = -g
        elif dom.start.is_finite and dom.end.is_finite:
            base[p] = dom.start + (dom.end - dom.start) * sp.Rational(37, 100)
        elif dom.start.is_finite:
            base[p] = dom.start + g
        else:
            base[p] = dom.end - g
    out = [base]
    for signs in ((-1,) * len(free), tuple((-1) ** i for i in range(len(free))),
                  tuple(-((-1) ** i) for i in range(len(free)))):
        point = {**base, **{p: sg * base[p] for p, sg in zip(free, signs)}}
        if point not in out:
            out.append(point)
    return out


def _real_value(e: sp.Expr) -> float | None:
    """``e`` (a number) as a float where it is real and finite, else None."""
    try:
        z = complex(sp.N(e, 30))
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(z.real) and math.isfinite(z.imag)) or abs(z.imag) > HP_RTOL * max(1.0, abs(z.real)):
        return None
    return z.real


def _double_roots(system: ODESystem, sub: dict) -> list[list[float]]:
    """Real multiple roots of the one-state numerator at the parameter values ``sub``: the real
    roots of N' at which N vanishes (exact gcd(N, N') for rational coefficients)."""
    x = system.states[0]
    P = sp.Poly(sp.expand(system.numerators[0].xreplace(sub)), x)
    if P.degree() < 2:
        return []
    dP = P.diff(x)
    try:
        if all(c.is_Rational for c in P.all_coeffs()):
            G = sp.Poly(sp.gcd(P, dP), x)
            return [[float(r)] for r in G.real_roots()] if G.degree() > 0 else []
        Pn = sp.Poly([sp.N(c, 50) for c in P.all_coeffs()], x)
        cand = sp.Poly([sp.N(c, 50) for c in dP.all_coeffs()], x).nroots(n=40, maxsteps=500)
    except (sp.PolynomialError, NotImplementedError, ValueError, mpmath.libmp.NoConvergence):
        return []
    out = []
    for r in cand:
        z = complex(r)
        if abs(z.imag) > HP_RTOL * max(1.0, abs(z.real)):
            continue
        scale = sum(abs(float(c)) * abs(z.real) ** i for i, c in enumerate(reversed(Pn.all_coeffs())))
        if abs(float(Pn.eval(sp.Float(z.real, 40)))) <= HP_RTOL * max(scale, np.finfo(float).tiny):
            if not any(abs(z.real - o[0]) <= LOCATE_RTOL * max(1.0, abs(z.real)) for o in out):
                out.append([z.real])
    return out


@lru_cache(maxsize=64)
def _normal_form_functions(system: ODESystem, v: sp.Symbol):
    """(J, df/dv, D^2 f, D^3 f) as flat lists of functions of (*states, *params), and n."""
    args = list(system.states) + list(system.params)
    n = system.n_states
    fv = [sp.diff(r, v) for r in system.rhs]
    X = system.states
    H = [sp.diff(r, a, b) for r in system.rhs for a in X for b in X]
    T = [sp.diff(r, a, b, c) for r in system.rhs for a in X for b in X for c in X]
    return (sp.lambdify(args, list(system.jacobian), "math"), sp.lambdify(args, fv, "math"),
            sp.lambdify(args, H, "math"), sp.lambdify(args, T, "math"), n)


def _kinds(system: ODESystem, v: sp.Symbol, s: sp.Expr, equilibria=None) -> set[str]:
    """The kinds (``normal_form_kind``, the one decision ``bifurcation`` uses) of the points
    with a zero eigenvalue at ``v = s``, with the other parameters at the first generic point
    (``_generic_points``) where ``s`` and the points are real. ``equilibria``: the symbolic
    equilibria to evaluate (several states); None: the multiple roots (one state). Empty when
    no generic point serves."""
    jac, fv, hess, third, n = _normal_form_functions(system, v)
    domain = system.param_domain.get(str(v))
    for g in _generic_points(system, v):
        sg = s.xreplace(g)
        value = _real_value(sg)
        if value is None or (domain is not None and domain.contains(sp.Float(value)) == sp.false):
            continue
        sub = {**g, v: sg}
        if equilibria is None:
            points = _double_roots(system, sub)
        else:
            points = []
            for e in equilibria:
                point = [_real_value(e[x].xreplace(sub)) for x in system.states]
                if all(c is not None for c in point):
                    points.append(point)
        kinds = set()
        prm = [value if p == v else float(sp.N(sub[p], 30)) for p in system.params]
        for point in points:
            args = [*point, *prm]
            try:
                J = np.array(jac(*args), dtype=float).reshape(n, n)
                f_v = np.array(fv(*args), dtype=float)
                H = np.array(hess(*args), dtype=float)
                T = np.array(third(*args), dtype=float)
            except (ZeroDivisionError, ValueError, OverflowError):
                continue
            if not np.all(np.isfinite(J)) or np.linalg.svd(J, compute_uv=False)[-1] > COARSE_RTOL * (1.0 + np.max(np.abs(J))):
                continue
            kinds.add(normal_form_kind(J, f_v, H, third=T))
        if kinds:
            return kinds
    return set()


def _relabel(system: ODESystem, v: sp.Symbol, lists: tuple[list, list, list],
             degenerate: list[sp.Expr]) -> tuple[list, list, list]:
    """(fold, transcritical, pitchfork) solutions relabelled by the normal form (``_kinds``);
    a solution that no generic point serves, or where the normal form is degenerate (then
    listed in ``degenerate``), keeps the label it came with."""
    out: tuple[list, list, list] = ([], [], [])
    seen: list[sp.Expr] = []
    for i, sols in enumerate(lists):
        for s in sols:
            if any(sp.simplify(s - o) == 0 for o in seen):
                continue
            seen.append(s)
            kinds = _kinds(system, v, s)
            if "degenerate" in kinds:
                degenerate.append(s)
                kinds.discard("degenerate")
            for j, kind in enumerate(("fold", "transcritical", "pitchfork")):
                if (kind in kinds if kinds else j == i or any(sp.simplify(s - t) == 0 for t in lists[j])):
                    out[j].append(s)
    return out


def _solution_notes(dropped_sols: list[str], real_where: list[tuple[str, str]], v: sp.Symbol,
                    degenerate: list[sp.Expr]) -> list[str]:
    notes = []
    if degenerate:
        notes.append(f"degenerate at {v} = {', '.join(map(sp.sstr, degenerate))}: the unfolding, quadratic and cubic "
                     "normal-form coefficients all vanish there (e.g. a line of equilibria), so the kind is that of "
                     "the condition alone")
    if dropped_sols:
        notes.append("dropped solutions: " + "; ".join(dict.fromkeys(dropped_sols)))
    where: dict[str, list[str]] = {}
    for cond, sol in real_where:
        where.setdefault(cond, []).append(sol)
    notes += [f"real only where {cond}: {', '.join(sols)}" for cond, sols in where.items()]
    return notes


def _product(factors: list[sp.Expr]) -> sp.Expr | None:
    return sp.Mul(*factors) if factors else None


def _threshold_one_state(system: ODESystem, v: sp.Symbol) -> dict:
    x = system.states[0]
    num, den = sp.expand(system.numerators[0]), sp.expand(system.denominators[0])
    assumed = _assumed(system)
    _, factors = sp.factor_list(num)
    state_factors = []
    removed = []
    for f, _k in factors:
        if not f.has(x):
            continue
        if sp.Poly(sp.gcd(f, den), x).degree() > 0:
            removed.append(sp.sstr(f))  # shared with the denominator: removable, not an equilibrium
            continue
        if f not in state_factors:
            state_factors.append(f)
    dropped: list[str] = []
    folds: list[sp.Expr] = []
    for f in state_factors:
        if sp.Poly(f, x).degree() >= 2:
            for g in _relevant(sp.discriminant(f, x), v, assumed, dropped):
                if g not in folds:
                    folds.append(g)
    trans: list[sp.Expr] = []
    pairs = []
    for f, g in itertools.combinations(state_factors, 2):
        for h in _relevant(sp.resultant(f, g, x), v, assumed, dropped):
            pairs.append((h, f, g))
            if h not in trans:
                trans.append(h)
    no_closed: list[str] = []
    dropped_sols: list[str] = []
    real_where: list[tuple[str, str]] = []
    fold_sols = _solve_for(folds, v, system, assumed, no_closed, dropped_sols, real_where)
    trans_sols = _solve_for(trans, v, system, assumed, no_closed, dropped_sols, real_where)
    pitch = []
    for s in fold_sols:
        if not any(sp.simplify(s - t) == 0 for t in trans_sols):
            continue
        for f, g in itertools.permutations(state_factors, 2):
            fs, gs = sp.expand(f.subs(v, s)), sp.expand(g.subs(v, s))
            if sp.Poly(sp.gcd(sp.gcd(fs, gs), sp.diff(gs, x)), x).degree() > 0:
                pitch.append(s)
                break
    fold_sols = [s for s in fold_sols if s not in pitch]
    trans_sols = [s for s in trans_sols if s not in pitch]
    degenerate: list[sp.Expr] = []
    fold_sols, trans_sols, pitch = _relabel(system, v, (fold_sols, trans_sols, pitch), degenerate)
    notes = []
    if not folds and not trans:
        notes.append(f"{v} enters no fold or transcritical condition of {label(system)} (with the factors that "
                     "cannot vanish on the parameter domain dropped)")
    if pitch:
        notes.append(f"pitchfork at {v} = {', '.join(map(sp.sstr, pitch))}: a fold and a transcritical point at once "
                     "(a symmetric triple root)")
    if no_closed:
        notes.append("no closed form for " + "; ".join(no_closed) + ": the condition is the answer (locate it "
                     "numerically with bifurcation())")
    notes += _solution_notes(dropped_sols, real_where, v, degenerate)
    if dropped:
        notes.append("dropped factors that cannot vanish on the parameter domain: " + ", ".join(sorted(set(dropped))))
    if removed:
        notes.append("factors shared with the denominator (removable points, no equilibria): " + ", ".join(removed))
    return dict(fold=_product(folds), fold_solutions=tuple(fold_sols), transcritical=_product(trans),
                transcritical_solutions=tuple(trans_sols), pitchfork_solutions=tuple(pitch), note="; ".join(notes))


def _threshold_several(system: ODESystem, v: sp.Symbol, original: ODESystem) -> dict:
    name = label(original)
    how = ("threshold serves one-state rational systems (after restriction to a manifold) and polynomial systems "
           "of at most three states whose equilibria SymPy solves in closed form")
    if not system.is_polynomial:
        raise ValueError(f"{how}; {name} has {system.n_states} states and a right-hand side that is not polynomial. "
                         "Locate the points numerically with bifurcation(system, (param, values), params), or hold "
                         "states fixed with threshold(..., hold=(names...)) / derivations.freeze")
    numerators = [sp.expand(n) for n in system.numerators]
    degrees = [sp.Poly(n, *system.states).total_degree() for n in numerators]
    if system.n_states > 3 or math.prod(max(d, 1) for d in degrees) > 9:
        raise ValueError(f"{how}; {name} has {system.n_states} states of degrees {degrees} (Bezout bound "
                         f"{math.prod(max(d, 1) for d in degrees)} > 9). Use bifurcation(system, (param, values), params) "
                         "for a numerical answer, or hold states fixed with threshold(..., hold=(names...))")
    sols = sp.solve(numerators, system.states, dict=True)
    sols = [s for s in sols if set(s) == set(system.states) and not any(e.has(*system.states) for e in s.values())]
    if not sols:
        raise ValueError(f"{how}; SymPy finds no isolated closed-form equilibria of {name}. Use "
                         "bifurcation(system, (param, values), params) for a numerical answer")
    assumed = _assumed(system)
    J = system.jacobian
    dropped: list[str] = []
    no_closed: list[str] = []
    fold_conds: list[sp.Expr] = []
    hopf_conds: list[sp.Expr] = []
    fold_sols: list[sp.Expr] = []
    trans_sols: list[sp.Expr] = []
    pitch_sols: list[sp.Expr] = []
    hopf_sols: list[sp.Expr] = []
    dropped_sols: list[str] = []
    real_where: list[tuple[str, str]] = []
    degenerate: list[sp.Expr] = []
    notes = []
    for k, sol in enumerate(sols):
        Jk = J.subs(sol)
        det = sp.factor(sp.simplify(Jk.det()))
        conds = _relevant(det, v, assumed, dropped)
        for c in conds:
            if c not in fold_conds:
                fold_conds.append(c)
        for s in _solve_for(conds, v, system, assumed, no_closed, dropped_sols, real_where):
            kinds = _kinds(system, v, s, [sol])
            if "degenerate" in kinds:
                kinds.discard("degenerate")
                if not any(sp.simplify(s - t) == 0 for t in degenerate):
                    degenerate.append(s)
            if not kinds:
                meets = any(j != k and all(sp.simplify((sol[x] - other[x]).subs(v, s)) == 0 for x in system.states)
                            for j, other in enumerate(sols))
                kinds = {"transcritical" if meets else "fold"}
            for kind, target in (("fold", fold_sols), ("transcritical", trans_sols), ("pitchfork", pitch_sols)):
                if kind in kinds and not any(sp.simplify(s - t) == 0 for t in target):
                    target.append(s)
        if system.n_states == 2:
            tr = sp.simplify(Jk.trace())
            point = ", ".join(f"{x} = {sp.sstr(sol[x])}" for x in system.states)
            if tr == 0:
                notes.append(f"trace J vanishes identically at ({point}): for det J > 0 a centre at every {v}, "
                             "no Hopf crossing")
                continue
            for c in _relevant(tr, v, assumed, dropped):
                before = len(no_closed)
                found = _solve_for([c], v, system, assumed, no_closed, dropped_sols, real_where)
                kept = [s for s in found if sp.simplify(det.subs(v, s)).xreplace(assumed).is_positive is not False]
                if found and not kept:
                    notes.append(f"trace J = 0 at {v} = {', '.join(map(sp.sstr, found))} at ({point}) is a neutral "
                                 "saddle (det J <= 0), not a Hopf point")
                    continue
                if kept or len(no_closed) > before:
                    if c not in hopf_conds:
                        hopf_conds.append(c)
                for s in kept:
                    if not any(sp.simplify(s - t) == 0 for t in hopf_sols):
                        hopf_sols.append(s)
    if system.n_states > 2:
        notes.append("Hopf conditions are given for two states only")
    if not fold_conds:
        notes.append(f"no fold: det J does not vanish for any {v} at the closed-form equilibria")
    if pitch_sols:
        notes.append(f"pitchfork at {v} = {', '.join(map(sp.sstr, pitch_sols))}: the unfolding and the quadratic "
                     "normal-form coefficients vanish (one branch splits into three)")
    if no_closed:
        notes.append("no closed form for " + "; ".join(no_closed) + ": locate it numerically with bifurcation()")
    if dropped:
        notes.append("dropped factors that cannot vanish on the parameter domain: " + ", ".join(sorted(set(dropped))))
    notes += _solution_notes(dropped_sols, real_where, v, degenerate)
    trans_conds = [c for c in fold_conds if any(sp.simplify(c.subs(v, s)) == 0 for s in trans_sols + pitch_sols)]
    return dict(
        fold=_product(fold_conds), fold_solutions=tuple(fold_sols),
        transcritical=_product(trans_conds), transcritical_solutions=tuple(trans_sols),
        pitchfork_solutions=tuple(pitch_sols),
        hopf=_product(hopf_conds) if system.n_states == 2 else None, hopf_solutions=tuple(hopf_sols),
        note="; ".join(notes),
        equilibria=tuple({str(x): point[x] for x in system.states} for point in sols),
    )


