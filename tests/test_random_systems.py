"""Property tests over random polynomial systems (2-3 states, degree <= 3), any state names.

Three independent references, none taken from the code under test:

* systems built with known roots: each right-hand side is c_i * L_i1 * ... * L_ik, a product
  of random affine forms with small integer coefficients, so the equilibria are exactly the
  solutions of the n x n linear systems that pick one factor per equation (solved over Q);
  systems with a line of equilibria or a repeated point are rejected;
* dense random quadratic systems in two states, whose real solutions are counted by
  ``sympy.solve_poly_system`` and each checked as a root;
* perturb-and-integrate: from x* + delta v (delta = 1e-6) ``scipy.integrate.solve_ivp``
  integrates the exact deviation dynamics z' = f(x* + z) (x* rational, so f(x*) = 0 exactly);
  stable nodes/foci must pull z below delta/10 within a time set by the slowest eigenvalue and
  the eigenvector conditioning, saddles and unstable points must push z past 10 delta.

Hypothesis is derandomized (the same examples every run); numpy's generator is seeded.
Tolerances: reported equilibria within 1e-9 (relative to max(1, |x*|)) of the exact roots,
residual |f(x)| <= 1e-8 (1 + sum of |terms|), eigenvalues within 1e-7 relative.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from derivations import ODESystem
from dynamics import equilibria

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],   # no shrinking: SymPy-heavy examples shrink for minutes
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

NAME_POOL = ("x", "y", "z", "p", "s", "tau", "p_hat", "s_total")   # SSL-like names mean nothing
MIN_RATE = 0.1        # points with min |Re lambda| below this are too close to non-hyperbolic to test
MAX_COND = 1e6        # ... or with eigenvectors this ill-conditioned
DELTA = 1e-6


# -- systems with known roots --------------------------------------------------------------------


@st.composite
def affine_form(draw, n):
    a = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n).filter(any))
    return tuple(a), draw(st.integers(-3, 3))


@st.composite
def known_root_systems(draw):
    """(system, exprs, symbols, exact roots) with rhs_i = c_i prod_j L_ij."""
    n = draw(st.sampled_from([2, 2, 3]))
    names = draw(st.permutations(NAME_POOL))[:n]
    syms = sp.symbols(names)
    degrees = [draw(st.integers(1, 3 if n == 2 or i == n - 1 else 2)) for i in range(n)]
    forms = [[draw(affine_form(n)) for _ in range(d)] for d in degrees]
    scale = [draw(st.sampled_from([-2, -1, 1, 2])) for _ in range(n)]
    exprs = [c * sp.Mul(*[sum(ai * v for ai, v in zip(a, syms)) + b for a, b in fs]) for c, fs in zip(scale, forms)]
    roots = []
    for combo in itertools.product(*forms):
        A = sp.Matrix([a for a, _ in combo])
        rhs = sp.Matrix([-b for _, b in combo])
        if A.det() != 0:
            roots.append(tuple(A.LUsolve(rhs)))
        else:
            # singular: either no common point or a whole line of equilibria (rejected)
            assume(A.rank() < A.row_join(rhs).rank())
    assume(len(set(roots)) == len(roots))   # a point on two factors of one equation is not simple
    system = ODESystem(syms, (), exprs, name="random")
    return system, exprs, syms, roots


def _term_scale(exprs, syms, x):
    """sum of |terms| of each expanded rhs at x: the size float64 rounding is relative to."""
    sub = dict(zip(syms, map(float, x)))
    return max(sum(abs(float(t.subs(sub))) for t in sp.Add.make_args(sp.expand(e))) for e in exprs)


def _check_residuals(eqs, exprs, syms):
    f = sp.lambdify(syms, exprs, "numpy")
    for e in eqs:
        x = np.asarray(e.x, dtype=float)
        assert x.shape == (len(syms),)
        residual = np.max(np.abs(np.asarray(f(*x), dtype=float)))
        assert residual <= 1e-8 * (1.0 + _term_scale(exprs, syms, x)), f"{e!r} is not a root: |f| = {residual}"


def _match_roots(eqs, roots):
    found = [np.asarray(e.x, dtype=float) for e in eqs]
    assert len(found) == len(roots), f"{len(found)} equilibria reported, {len(roots)} exist: {roots}"
    matched = []
    for r in roots:
        target = np.array([float(v) for v in r])
        hits = [i for i, x in enumerate(found) if np.max(np.abs(x - target)) <= 1e-9 * max(1.0, np.max(np.abs(target)))]
        assert len(hits) == 1, f"exact root {target} matched by {len(hits)} reported equilibria {found}"
        matched.append(eqs[hits[0]])
    return matched


@SETTINGS
@given(known_root_systems())
def test_equilibria_are_exactly_the_constructed_roots(case):
    system, exprs, syms, roots = case
    eqs = equilibria(system, {})
    assert eqs.complete and not eqs.curves
    _check_residuals(eqs, exprs, syms)
    _match_roots(eqs, roots)


# -- classification against eigenvalues and perturb-and-integrate ---------------------------------


def _expected_kind(ev):
    re = ev.real
    focus = bool(np.any(np.abs(ev.imag) > 1e-9 * max(1.0, np.max(np.abs(ev)))))
    if np.all(re < 0):
        return ("stable focus" if focus else "stable node"), True
    if np.all(re > 0):
        return ("unstable focus" if focus else "unstable node"), False
    return ("saddle-focus" if focus else "saddle"), False


def _deviation_flow(exprs, syms, root):
    """z' = f(x* + z), expanded exactly: no rounding residual at z = 0."""
    z = sp.symbols(f"z0:{len(syms)}")
    shifted = [sp.expand(e.subs(dict(zip(syms, [r + zi for r, zi in zip(root, z)])), simultaneous=True))
               for e in exprs]
    assert all(sp.expand(s.subs({zi: 0 for zi in z})) == 0 for s in shifted)   # the root is exact
    f = sp.lambdify(z, shifted, "numpy")
    return lambda t, y: np.asarray(f(*y), dtype=float)


def _run(flow, z0, T, stop_at=None):
    events = None
    if stop_at is not None:
        def away(t, y):
            return np.linalg.norm(y) - stop_at
        away.terminal = True
        events = away
    sol = solve_ivp(flow, (0.0, T), z0, method="LSODA", rtol=1e-9, atol=1e-6 * DELTA, events=events)
    assert sol.status >= 0, sol.message
    return np.linalg.norm(sol.y, axis=0)


@SETTINGS
@given(known_root_systems(), st.integers(0, 2**32 - 1))
def test_classification_agrees_with_eigenvalues_and_perturb_and_integrate(case, seed):
    system, exprs, syms, roots = case
    rng = np.random.default_rng(seed)
    J = sp.Matrix(exprs).jacobian(syms)
    tested = 0
    for root, e in zip(roots, _match_roots(equilibria(system, {}), roots)):
        Jx = np.array(J.subs(dict(zip(syms, root))).tolist(), dtype=float)
        ev, V = np.linalg.eig(Jx)
        cond = np.linalg.cond(V)
        if np.min(np.abs(ev.real)) < MIN_RATE or not np.isfinite(cond) or cond > MAX_COND:
            continue
        tested += 1
        got = np.sort_complex(np.asarray(e.eigenvalues, dtype=complex))
        assert np.allclose(got, np.sort_complex(ev), rtol=1e-7, atol=1e-9), (got, ev)
        kind, stable = _expected_kind(ev)
        assert e.kind == kind and e.stable is stable, f"{e!r}: expected {kind}, stable={stable}"

        flow = _deviation_flow(exprs, syms, root)
        if stable:
            # |z(T)| <= cond e^{-m T} |z0| <= delta / (10 e^2)
            T = (np.log(10 * cond) + 2) / np.min(np.abs(ev.real))
            for _ in range(3):
                v = rng.normal(size=len(syms))
                norms = _run(flow, DELTA * v / np.linalg.norm(v), T)
                assert norms[-1] < 0.1 * DELTA, f"{e!r} reported stable but z(T) = {norms[-1]:.3g}"
        else:
            M = np.max(ev.real)
            W = np.linalg.inv(V)
            for _ in range(3):
                v = rng.normal(size=len(syms))
                v /= np.linalg.norm(v)
                c = np.max(np.abs((W @ v)[ev.real > 0]))   # unstable component of the start
                if c < 1e-3:
                    continue
                T = (np.log(1e3 * cond / c) + 2) / M
                norms = _run(flow, DELTA * v, T, stop_at=100 * DELTA)
                assert np.max(norms) > 10 * DELTA, f"{e!r} reported unstable but stays within {np.max(norms):.3g}"
    assume(tested > 0)


# -- dense random systems, counted by sympy ---------------------------------------------------------


@st.composite
def dense_quadratic_systems(draw):
    names = draw(st.permutations(NAME_POOL))[:2]
    x, y = syms = sp.symbols(names)
    monomials = [sp.Integer(1), x, y, x**2, x * y, y**2]
    coeff = st.integers(-3, 3)
    exprs = [sum(draw(coeff) * m for m in monomials) for _ in range(2)]
    assume(all(sp.Poly(e, *syms).total_degree() >= 1 for e in exprs))
    return ODESystem(syms, (), exprs), exprs, syms


def _sympy_real_roots(exprs, syms):
    try:
        sols = sp.solve_poly_system(exprs, *syms)
    except (NotImplementedError, sp.PolynomialError):
        return None   # infinitely many solutions or not handled: no independent count
    if sols is None:
        return []
    real = []
    for sol in sols:
        vals = [complex(sp.N(v, 30)) for v in sol]
        if all(abs(v.imag) <= 1e-20 * max(1.0, abs(v)) for v in vals):
            point = np.array([v.real for v in vals])
            if not any(np.allclose(point, q, rtol=1e-12, atol=1e-14) for q in real):
                real.append(point)
    f = sp.lambdify(syms, exprs, "numpy")
    for point in real:   # the check: each is a root
        assert np.max(np.abs(f(*point))) <= 1e-8 * (1.0 + _term_scale(exprs, syms, point))
    return real


@settings(SETTINGS, max_examples=12)
@given(dense_quadratic_systems())
def test_dense_quadratic_systems_count_matches_sympy(case):
    system, exprs, syms = case
    roots = _sympy_real_roots(exprs, syms)
    assume(roots is not None)
    eqs = equilibria(system, {})
    assert eqs.complete
    assert not eqs.curves, f"sympy finds finitely many solutions, equilibria reports curves {eqs.curves}"
    _check_residuals(eqs, exprs, syms)
    assert len(eqs) == len(roots), f"equilibria reports {len(eqs)}, sympy counts {len(roots)}: {roots}"
    found = [np.asarray(e.x, dtype=float) for e in eqs]
    for r in roots:
        assert any(np.allclose(x, r, rtol=1e-8, atol=1e-9) for x in found), f"sympy root {r} missing from {found}"


def test_generator_is_not_vacuous():
    """The constructed systems do have roots, some of them foci and saddles (a guard that the
    strategies above test something)."""
    kinds = set()
    counts = []

    @SETTINGS
    @given(known_root_systems())
    def collect(case):
        _, exprs, syms, roots = case
        counts.append(len(roots))
        J = sp.Matrix(exprs).jacobian(syms)
        for r in roots:
            ev = np.linalg.eigvals(np.array(J.subs(dict(zip(syms, r))).tolist(), dtype=float))
            if np.min(np.abs(ev.real)) > MIN_RATE:
                kinds.add(_expected_kind(ev)[0])

    collect()
    assert max(counts) >= 4 and sum(counts) >= 20
    assert {"saddle", "stable node"} <= kinds
    assert kinds & {"stable focus", "unstable focus"}


if __name__ == "__main__":   # pragma: no cover
    pytest.main([__file__, "-q"])
