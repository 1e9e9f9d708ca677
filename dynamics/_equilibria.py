"""equilibria(system, params): every real equilibrium, classified.

Polynomial systems (every one-mode system, full or reduced: Euclidean and frozen-norm cosine)
are solved exactly: parameters become exact rationals, the right-hand sides' numerators form a
polynomial system, which is split along its factors and put in lex Groebner form; the
univariate element's real roots are isolated with certified intervals over Q (multiple roots
included, via the square-free decomposition) and back-substituted at 50 digits, each point
checked against every equation. Components that stay positive-dimensional are curves of
equilibria and are reported as such (``EquilibriumCurve``). The result says ``complete=True``.

Non-polynomial systems (K-mode systems with spectral closures) use batched multi-start Newton
in JAX with de-duplication and say ``complete=False``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from derivations import EigenmodeSystem, ModeSystem
from derivations._codegen import check_param_names

from ._states import base_name, collapse_indices
from ._stability import Classification, classify

__all__ = ["equilibria", "Equilibrium", "EquilibriumCurve", "EquilibriumSet", "check_model_params"]

_DPS = 50

_PARAM_DOMAIN = {
    "sigma2": (0.0, False),   # (bound, strict): sigma2 >= 0
    "eta": (0.0, False),
    "alpha_p": (0.0, True),   # alpha_p > 0
    "beta": (0.0, False),
    "N_psi": (0.0, True),
    "N_phi": (0.0, True),
}


@dataclass(frozen=True)
class Equilibrium:
    """One equilibrium and its classification.

    point:      {state name: value}; ``x`` the same as an array.
    classification: the ``dynamics.Classification``; its fields are forwarded:
                jacobian (numeric, at the point), eigenvalues, kind, stable (True/False/None),
                hyperbolic, index (number of unstable directions), reason, centre_flow.
    jacobian_symbolic: the system's symbolic Jacobian (states and parameters free; None for
                K-mode systems).
    collapsed:  every p and s is zero; partially_collapsed: some but not all are.
    multiplicity: multiplicity of the root of the eliminated univariate polynomial (exact
                path; 1 for a simple root), None from Newton.
    residual:   max |f(x*)| in float64.
    residual_scale: the largest sum of |terms| of a row of f at x*: float64 rounding of x*
                alone leaves a residual of order eps * residual_scale (1e-10 absolute is
                reachable for points of order one, not for far-out ones such as p ~ 400).
    """

    point: dict[str, float]
    x: np.ndarray
    classification: Classification = field(repr=False)
    jacobian_symbolic: sp.ImmutableMatrix | None = field(repr=False)
    collapsed: bool
    partially_collapsed: bool
    multiplicity: int | None
    residual: float
    residual_scale: float

    jacobian = property(lambda self: self.classification.jacobian)
    eigenvalues = property(lambda self: self.classification.eigenvalues)
    kind = property(lambda self: self.classification.kind)
    stable = property(lambda self: self.classification.stable)
    hyperbolic = property(lambda self: self.classification.hyperbolic)
    index = property(lambda self: self.classification.index)
    reason = property(lambda self: self.classification.reason)
    centre_flow = property(lambda self: self.classification.centre_flow)

    def __repr__(self) -> str:
        pt = ", ".join(f"{k}={v:.6g}" for k, v in list(self.point.items())[:6])
        return f"Equilibrium({pt}; {self.kind}, stable={self.stable})"


@dataclass(frozen=True)
class EquilibriumCurve:
    """A positive-dimensional set of equilibria, e.g. s = 0 when eta = 0.

    equations: polynomial equations (= 0) in the states that define it (a lex Groebner basis).
    dimension: its dimension (number of free states).
    note:      what it is, in words.
    """

    equations: tuple[sp.Expr, ...]
    dimension: int
    note: str

    def __repr__(self) -> str:
        eqs = ", ".join(f"{sp.sstr(sp.N(e, 8))} = 0" for e in self.equations)
        return f"EquilibriumCurve({eqs}; dimension {self.dimension})"


@dataclass(frozen=True)
class EquilibriumSet(Sequence):
    """The isolated equilibria (a sequence of Equilibrium), curves of equilibria, and whether
    the enumeration is complete (exact elimination) or not (multi-start Newton)."""

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
        return tuple(e for e in self.points if e.stable)

    def __repr__(self) -> str:
        lines = [f"EquilibriumSet({len(self.points)} points, {len(self.curves)} curves, complete={self.complete}, {self.method})"]
        lines += [f"  {e!r}" for e in self.points] + [f"  {c!r}" for c in self.curves]
        if self.reason:
            lines.append(f"  ({self.reason})")
        return "\n".join(lines)


def check_model_params(names: Sequence[str], params: Any) -> dict[str, float]:
    """Validate a params dict: names (missing/unknown), finite scalars, and the model's domain
    (sigma2 >= 0, eta >= 0, alpha_p > 0, beta >= 0, N_psi > 0, N_phi > 0)."""
    by_name = check_param_names(params, names)
    out = {}
    for n in names:
        v = by_name[n]
        if isinstance(v, bool) or not np.isscalar(v):
            raise TypeError(f"params[{n!r}] must be a real scalar here; got {v!r}")
        v = float(v)
        if not np.isfinite(v):
            raise ValueError(f"params[{n!r}] must be finite; got {v}")
        if n in _PARAM_DOMAIN:
            bound, strict = _PARAM_DOMAIN[n]
            if v < bound or (strict and v == bound):
                raise ValueError(f"params[{n!r}] = {v} is outside the model's domain: need {n} {'>' if strict else '>='} {bound}")
        out[n] = v
    return out


def _domain(system, domain: Mapping[str, tuple] | None) -> dict[int, tuple[float, float]]:
    """Bounds per state index. Default: s >= 0 (eigenvalues of Phi Phi^T)."""
    names = list(system.state_names)
    bounds = {}
    for i, n in enumerate(names):
        if base_name(n) == "s":
            bounds[i] = (0.0, np.inf)
    if domain is not None:
        if not isinstance(domain, Mapping):
            raise TypeError("domain must be a dict {state name: (lower, upper)}")
        for n, lohi in domain.items():
            if n not in names:
                raise ValueError(f"domain names unknown state {n!r}; states are {names}")
            try:
                lo, hi = lohi
            except (TypeError, ValueError):
                raise ValueError(f"domain[{n!r}] must be a pair (lower, upper); got {lohi!r}") from None
            lo = -np.inf if lo is None else float(lo)
            hi = np.inf if hi is None else float(hi)
            if np.isnan(lo) or np.isnan(hi):
                raise ValueError(f"domain[{n!r}] bounds must not be NaN")
            if lo > hi:
                raise ValueError(f"domain[{n!r}] = ({lo}, {hi}) is empty (lower > upper)")
            bounds[names.index(n)] = (lo, hi)
    return bounds


def equilibria(
    system: EigenmodeSystem | ModeSystem,
    params: Mapping[str, float],
    *,
    domain: Mapping[str, tuple] | None = None,
    n_starts: int = 2000,
    seed: int = 0,
) -> EquilibriumSet:
    """All real equilibria of ``system`` at ``params`` within ``domain``, classified.

    domain: {state name: (lower, upper)}, None for unbounded; s >= 0 always applies (s is an
            eigenvalue of Phi Phi^T). A point stable within the domain counts as stable.
    n_starts, seed: multi-start Newton for non-polynomial (K-mode) systems.

    Raises TypeError/ValueError for a wrong system type, missing/unknown params, params outside
    the model's domain (sigma2 < 0, eta < 0, alpha_p <= 0, N_psi <= 0, N_phi <= 0) or an empty
    domain. An empty result carries its ``reason``.
    """
    if not isinstance(system, (EigenmodeSystem, ModeSystem)):
        raise TypeError(f"system must be an EigenmodeSystem or ModeSystem; got {type(system).__name__}")
    prm = check_model_params(system.param_names, params)
    bounds = _domain(system, domain)
    if isinstance(system, EigenmodeSystem):
        return _exact(system, prm, bounds)
    return _newton(system, prm, bounds, n_starts, seed)


# -- exact elimination -------------------------------------------------------------------


def _numerators(system: EigenmodeSystem, prm: dict[str, float]) -> list[sp.Poly]:
    sub = {system.symbols[k]: sp.Rational(v) for k, v in prm.items()}  # exact binary values
    polys = []
    for r in system.rhs:
        num = sp.numer(sp.together(sp.expand(r.xreplace(sub))))
        polys.append(sp.Poly(num, *system.states, domain="QQ"))
    return polys


def _components(polys: list[sp.Poly], gens: tuple) -> list[tuple[str, Any]]:
    """Split the system along the factors of its equations; each branch is either
    zero-dimensional ("points", Groebner basis) or positive-dimensional ("curve", basis)."""
    polys = [p for p in polys if not p.is_zero]
    if not polys:
        return [("curve", [])]
    G = sp.groebner([p.as_expr() for p in polys], *gens, order="lex", domain="QQ")
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


def _mpf(q) -> mpmath.mpf:
    """An exact rational as an mpmath number at the working precision."""
    q = sp.Rational(q)
    return mpmath.mpf(q.p) / q.q


def _univariate_roots(poly: sp.Poly) -> list[tuple[mpmath.mpf, int]]:
    """Real roots with multiplicity, isolated over Q with certified intervals, refined."""
    out = []
    _, factors = poly.sqf_list()
    for fac, mult in factors:
        if fac.degree() == 0:
            continue
        for (a, b), _k in fac.intervals(eps=sp.Rational(1, 10**30)):
            out.append((_mpf(a) if a == b else _bisect_root(fac, a, b), mult))
    return out


def _bisect_root(fac: sp.Poly, a, b) -> mpmath.mpf:
    coeffs = [_mpf(c) for c in fac.all_coeffs()]
    f = lambda x: mpmath.polyval(coeffs, x)  # noqa: E731
    lo, hi = _mpf(a), _mpf(b)
    flo = f(lo)
    for _ in range(200):
        mid = (lo + hi) / 2
        fm = f(mid)
        if fm == 0:
            return mid
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
        if hi - lo < mpmath.mpf(10) ** (-_DPS + 5):
            break
    return (lo + hi) / 2


def _solve_points(G, gens: tuple) -> list[tuple[tuple, int]]:
    """Real points of a zero-dimensional lex Groebner basis, by back-substitution."""
    polys = [sp.Poly(g, *gens) for g in G.exprs]
    n = len(gens)
    last = [p for p in polys if p.free_symbols <= {gens[-1]}]
    starts = _univariate_roots(sp.Poly(last[0].as_expr(), gens[-1], domain="QQ"))
    partial = [((r,), m) for r, m in starts]
    for k in range(n - 2, -1, -1):
        level = [p for p in polys if gens[k] in p.free_symbols and p.free_symbols <= set(gens[k:])]
        nxt = []
        for vals, mult in partial:
            sub = dict(zip(gens[k + 1:], vals))
            for root in _roots_at(level, gens[k], sub):
                nxt.append(((root,) + vals, mult))
        partial = nxt
    return partial


def _roots_at(level: list[sp.Poly], x: sp.Symbol, sub: dict) -> list[mpmath.mpf]:
    """Common real roots in x of the polynomials ``level`` with the other variables fixed."""
    scale = mpmath.mpf(10) ** (-_DPS // 2)
    univ = []
    for p in level:
        coeffs = []
        for (deg,), c in sp.Poly(p.as_expr(), x).terms():
            coeffs.append((deg, _mp_eval(c, sub)))
        top = max((abs(v) for _, v in coeffs), default=mpmath.mpf(0))
        coeffs = [(d, v) for d, v in coeffs if abs(v) > scale * max(top, 1)]
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
    roots = mpmath.polyroots(base, maxsteps=400, extraprec=400)
    out = []
    for r in roots:
        r = mpmath.mpc(r)
        if abs(r.imag) > mpmath.mpf(10) ** (-_DPS // 3) * max(1, abs(r)):
            continue
        x0 = r.real
        if all(abs(mpmath.polyval(c, x0)) <= mpmath.mpf(10) ** (-_DPS // 3) * max(1, max(abs(v) for v in c)) for c in univ):
            if not any(abs(x0 - y) < mpmath.mpf(10) ** (-_DPS // 3) for y in out):
                out.append(x0)
    return out


class _PositiveDimensional(Exception):
    pass


def _mp_eval(expr: sp.Expr, sub: dict) -> mpmath.mpf:
    if not sub:
        return _mpf(expr)
    total = mpmath.mpf(0)
    vals = list(sub.values())
    for monom, c in sp.Poly(expr, *sub).terms():
        term = _mpf(c)
        for v, e in zip(vals, monom):
            term *= v**e
        total += term
    return total


def _exact(system: EigenmodeSystem, prm: dict[str, float], bounds: dict) -> EquilibriumSet:
    mpmath.mp.dps = _DPS
    gens = system.states
    polys = _numerators(system, prm)
    points: list[tuple[tuple, int]] = []
    curves = []
    for kind, G in _components(polys, gens):
        if kind == "points":
            try:
                points += _solve_points(G, gens)
                continue
            except _PositiveDimensional:
                pass
        curves.append(_curve(G, gens))
    f = system.to_numpy(checked=False)
    unique: list[tuple[np.ndarray, int]] = []
    for vals, mult in points:
        x = np.array([float(v) for v in vals])
        if not _inside(x, bounds):
            continue
        if any(np.allclose(x, y, rtol=1e-12, atol=1e-14) for y, _ in unique):
            continue
        unique.append((x, mult))
    unique.sort(key=lambda xm: tuple(xm[0]))
    eqs = tuple(_make(system, prm, x, mult, bounds, f, curves) for x, mult in unique)
    curves = tuple(curves)
    reason = "" if eqs or curves else "no real equilibrium inside the domain"
    return EquilibriumSet(eqs, curves, True, "exact elimination (Groebner basis, certified real-root isolation)", reason)


def _curve(G, gens) -> EquilibriumCurve:
    eqs = tuple(sp.Poly(g, *gens).monic().as_expr() for g in (G.exprs if G else []))
    free = [g for g in gens if not any(sp.Poly(e, *gens).degree(g) > 0 for e in eqs)] if eqs else list(gens)
    dim = max(1, len(gens) - len(eqs)) if eqs else len(gens)
    note = "a continuum of equilibria (conserved quantity or degenerate parameters)"
    if free:
        note += f"; free along {', '.join(map(str, free))}"
    return EquilibriumCurve(eqs, dim, note)


def _inside(x: np.ndarray, bounds: dict, tol: float = 1e-12) -> bool:
    return all(lo - tol * max(1, abs(lo) if np.isfinite(lo) else 1) <= x[i] <= hi + tol * max(1, abs(hi) if np.isfinite(hi) else 1)
               for i, (lo, hi) in bounds.items())


def _collapse_flags(system, x: np.ndarray, tol: float = 1e-12) -> tuple[bool, bool]:
    zero = np.abs(x[collapse_indices(system.state_names)]) <= tol
    return bool(zero.all()), bool(zero.any() and not zero.all())


def _make(system, prm, x, mult, bounds, f, curves) -> Equilibrium:
    collapsed, partial = _collapse_flags(system, x)
    return Equilibrium(
        point=dict(zip(system.state_names, map(float, x))),
        x=x,
        classification=classify(system, prm, x, bounds=bounds, on_curve=_on_curve(x, system, curves)),
        jacobian_symbolic=getattr(system, "jacobian", None),
        collapsed=collapsed,
        partially_collapsed=partial,
        multiplicity=mult,
        residual=float(np.max(np.abs(f(0.0, x, prm)))),
        residual_scale=_term_scale(system, prm, x),
    )


def _term_scale(system, prm, x) -> float:
    if not isinstance(system, EigenmodeSystem):
        return float("nan")
    total = 0.0
    for g in _term_functions(system):
        total = max(total, float(np.sum(np.abs(g(*x, *[prm[n] for n in system.param_names])))))
    return total


@lru_cache(maxsize=128)
def _term_functions(system: EigenmodeSystem):
    from derivations._codegen import lambdified

    return [
        (lambda raw: lambda *a: np.array(raw(*a), dtype=float))(
            lambdified(system.states + system.params, tuple(sp.Add.make_args(sp.expand(r))), "numpy"))
        for r in system.rhs
    ]


def _on_curve(x: np.ndarray, system, curves) -> bool:
    if not curves:
        return False
    sub = dict(zip(system.states, map(float, x)))
    for c in curves:
        if not c.equations:
            continue
        if all(abs(float(sp.N(e.subs(sub)))) < 1e-9 for e in c.equations):
            return True
    return False


# -- multi-start Newton (K-mode systems) -----------------------------------------------


def _newton(system: ModeSystem, prm: dict[str, float], bounds: dict, n_starts: int, seed: int) -> EquilibriumSet:
    import jax
    import jax.numpy as jnp

    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"n_starts must be a positive int; got {n_starts!r}")
    f = system.to_jax(checked=False)
    n = system.n_states
    P = {k: jnp.asarray(v) for k, v in prm.items()}
    g = lambda y: f(0.0, y, P)  # noqa: E731
    jac = jax.jacfwd(g)

    def newton(y):
        def body(i, y):
            J = jac(y)
            step = jnp.linalg.lstsq(J, -g(y))[0]
            return y + step

        return jax.lax.fori_loop(0, 60, body, y)

    rng = np.random.default_rng(seed)
    starts = rng.uniform(-0.5, 1.5, (n_starts, n))
    for i, (lo, _hi) in bounds.items():
        if np.isfinite(lo):
            starts[:, i] = np.abs(starts[:, i]) + lo
    with np.errstate(all="ignore"):
        ends = np.asarray(jax.jit(jax.vmap(newton))(jnp.asarray(starts)))
    fn = system.to_numpy(checked=False)
    found: list[np.ndarray] = []
    for y in ends:
        if not np.all(np.isfinite(y)) or not _inside(y, bounds, 1e-9):
            continue
        if np.max(np.abs(fn(0.0, y, prm))) > 1e-10:
            continue
        if any(np.allclose(y, z, rtol=1e-7, atol=1e-9) for z in found):
            continue
        found.append(y)
    found.sort(key=tuple)
    eqs = tuple(_make(system, prm, y, None, bounds, fn, []) for y in found)
    return EquilibriumSet(
        eqs, (), False, f"multi-start Newton ({n_starts} starts)",
        "" if eqs else "Newton found no equilibrium inside the domain (the search is not exhaustive)",
    )
