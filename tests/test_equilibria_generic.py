"""equilibria and classify on any ODESystem: rational systems, exactness, the tolerance policy,
weak foci and centres. Every expected value comes from an independent reference (closed forms,
sympy.solve, mpmath at 50 digits, Guckenheimer-Holmes' formula typed in here)."""

import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, ODESystem, derive
from dynamics import classify, equilibria


# -- rational right-hand sides -----------------------------------------------------------------


def test_removable_point_is_not_an_equilibrium():
    """x' = (x^2 - 1)/(x - 1): the numerator vanishes at +-1, but x = 1 is a removable point
    (the right-hand side is undefined there); only x = -1, where f = x + 1 has slope 1."""
    system = ODESystem.from_equations({"x": "(x**2 - 1)/(x - 1)"})
    eqs = equilibria(system, {})
    assert eqs.complete
    assert [e.point["x"] for e in eqs] == [-1.0]
    assert eqs[0].exact == (sp.Integer(-1),)
    assert eqs[0].kind == "unstable node" and abs(eqs[0].eigenvalues[0] - 1.0) < 1e-14
    assert "1 zero(s) of the numerators dropped" in eqs.reason


def test_two_dimensional_rational_system_with_a_pole():
    """x' = (y - x)/(x - 1), y' = y (1 - y): numerators vanish at (0, 0) and (1, 1); (1, 1) is a
    pole. At (0, 0) the Jacobian (sympy, by hand: [[1, -1], [0, 1]]) has eigenvalue 1 twice."""
    x, y = sp.symbols("x y")
    system = ODESystem((x, y), (), [(y - x) / (x - 1), y * (1 - y)])
    roots = sp.solve([y - x, y * (1 - y)], [x, y], dict=True)
    keep = [r for r in roots if (r[x] - 1) != 0]
    eqs = equilibria(system, {})
    assert len(eqs) == len(keep) == 1
    assert eqs[0].point == {"x": 0.0, "y": 0.0}
    J = np.array(system.jacobian.subs({x: 0, y: 0}), dtype=float)
    np.testing.assert_allclose(eqs[0].jacobian, J, atol=1e-15)
    assert eqs[0].kind == "unstable node" and eqs[0].stable is False
    assert "dropped" in eqs.reason


def test_zeros_on_the_pole_set_are_dropped():
    """x' = (x y - x + y - 1)/(x + 1) = (x + 1)(y - 1)/(x + 1), y' = y - 2: the only numerator
    zero (-1, 2) lies on the pole line x = -1. With y' = x' instead, the numerators vanish on
    the lines x = -1 (the pole set: no equilibria) and y = 1 (a line of equilibria, kept)."""
    x, y = sp.symbols("x y")
    f = (x * y - x + y - 1) / (x + 1)
    system = ODESystem((x, y), (), [f, y - 2])
    assert not system.is_polynomial
    eqs = equilibria(system, {})
    assert len(eqs) == 0 and not eqs.curves and "no real equilibrium" in eqs.reason and "dropped" in eqs.reason
    lines = equilibria(ODESystem((x, y), (), [f, f]), {})
    assert [c.equations for c in lines.curves] == [(y - 1,)]


def test_rational_non_hyperbolic_point_by_centre_manifold():
    """x' = x^2/(1 + y), y' = -y: at (0, 0) eigenvalues {0, -1}; the centre manifold is y = 0
    and on it x' = x^2: semi-stable with du/dt = +-u^2 (closed form)."""
    system = ODESystem.from_equations({"x": "x**2/(1 + y)", "y": "-y"})
    eqs = equilibria(system, {})
    assert len(eqs) == 1
    e = eqs[0]
    assert e.kind == "semi-stable" and e.stable is False
    order, coeff = e.centre_flow
    assert order == 2 and abs(abs(coeff) - 1.0) < 1e-12
    one = ODESystem.from_equations({"x": "x**2/(1 + x**2)"})  # f = x^2 - x^4 + ...: a_2 = 1
    c = classify(one, [0.0], {})
    assert c.kind == "semi-stable" and c.centre_flow == (2, 1.0)


# -- names, domains, parameters are data -----------------------------------------------------------


def test_names_carry_no_meaning():
    """States called p_hat, s_total: an equilibrium at s_total = -1 is kept (no domain) and
    nothing is collapsed (no collapse states); a parameter called eta may be negative."""
    system = ODESystem.from_equations({"p_hat": "eta*p_hat - p_hat**3", "s_total": "-(s_total + 1)"}, params=("eta",))
    eqs = equilibria(system, {"eta": -1.0})
    assert [e.point for e in eqs] == [{"p_hat": 0.0, "s_total": -1.0}]
    assert not eqs[0].collapsed and not eqs[0].partially_collapsed
    assert eqs[0].kind == "stable node"
    eqs = equilibria(system, {"eta": sp.Integer(4)})  # p_hat = 0, +-2
    assert sorted(e.point["p_hat"] for e in eqs) == [-2.0, 0.0, 2.0]


def test_state_domain_and_collapse_come_from_the_system():
    system = ODESystem.from_equations({"u": "u*(1 - u)*(u + 2)", "v": "-v"}, state_domain={"u": (0, None)},
                                      collapse=("u", "v"))
    eqs = equilibria(system, {})
    assert sorted(e.point["u"] for e in eqs) == [0.0, 1.0]  # u = -2 is outside u >= 0
    assert [e.collapsed for e in eqs] == [True, False]
    assert len(equilibria(system, {}, domain={"u": (0.5, 2)})) == 1


def test_param_domain_is_the_systems_own():
    system = ODESystem.from_equations({"x": "k - x"}, params=("k",), param_domain={"k": sp.Interval.open(0, sp.oo)})
    with pytest.raises(ValueError, match="k.*need k > 0"):
        equilibria(system, {"k": 0.0})
    assert equilibria(system, {"k": 2.0})[0].point == {"x": 2.0}


def test_non_rational_system_uses_newton_and_says_so():
    """x' = sin(x) - x/2: roots 0 and +-x1 with sin(x1) = x1/2 (scipy.brentq); slopes
    f'(0) = 1/2 (unstable) and f'(x1) = cos(x1) - 1/2 < 0 (stable)."""
    from scipy.optimize import brentq

    system = ODESystem.from_equations({"x": "sin(x) - x/2"})
    eqs = equilibria(system, {}, n_starts=200)
    assert not eqs.complete and "Newton" in eqs.method
    x1 = brentq(lambda t: np.sin(t) - t / 2, 1, 3)
    np.testing.assert_allclose([e.point["x"] for e in eqs], [-x1, 0.0, x1], atol=1e-10)
    assert [e.stable for e in eqs] == [True, False, True]
    assert abs(eqs[1].eigenvalues[0] - 0.5) < 1e-12


# -- exactness -----------------------------------------------------------------------------------------


def test_exact_fold_keeps_the_double_root():
    """sigma2 = 1/5, eta = 5/24 = 1/(4c), c = 6/5: dp/dt = -eta p + p^2 - c p^3 has the double
    root p = 1/(2c) = 5/12 (closed form), semi-stable; exact to the last digit."""
    params = {"sigma2": sp.Rational(1, 5), "eta": sp.Rational(5, 24), "alpha_p": sp.Integer(1)}
    p = sp.Symbol("p")
    reference = sp.roots(sp.Poly(-params["eta"] * p + p**2 - sp.Rational(6, 5) * p**3, p))
    assert reference == {0: 1, sp.Rational(5, 12): 2}
    eqs = equilibria(derive(ModelSpec("euclidean")).reduce(), params)
    assert [(e.point["p"], e.multiplicity) for e in eqs] == [(0.0, 1), (5 / 12, 2)]
    assert [(e.exact[0], e.multiplicity) for e in eqs] == [(0, 1), (sp.Rational(5, 12), 2)]
    assert eqs[1].kind == "semi-stable" and eqs[1].stable is False and not eqs[1].near_multiple
    full = equilibria(derive(ModelSpec("euclidean")), params)  # (p, s) with s = p^2
    fold = [e for e in full if not e.collapsed]
    assert len(fold) == 1 and fold[0].kind == "semi-stable"
    assert abs(fold[0].exact[0] - sp.Rational(5, 12)) < 1e-45 and abs(fold[0].exact[1] - sp.Rational(25, 144)) < 1e-45


def test_float_fold_is_reported_not_lost():
    """eta one ulp above 5/24 in floats: the double root splits into a complex pair with
    |Im| ~ 1e-8; it is reported as a near-double root (flagged), not dropped."""
    reduced = derive(ModelSpec("euclidean")).reduce()
    eta = float(np.nextafter(5 / 24, 1))
    eqs = equilibria(reduced, {"sigma2": 0.2, "eta": eta, "alpha_p": 1.0})
    near = [e for e in eqs if e.near_multiple]
    assert len(near) == 1 and near[0].multiplicity == 2 and "near-double" in near[0].note
    assert abs(near[0].point["p"] - 5 / 12) < 1e-7 and near[0].kind == "semi-stable"
    assert near[0].residual < 1e-14


def test_two_simple_roots_at_a_float_fold_merge_into_the_double_root():
    """sigma2 = 0.3, eta = 1/(4c) in floats: the exact binary parameters give two simple roots
    ~5.7e-9 apart (references at 50 digits, mpmath), within NEAR_RTOL of the double root of
    the exact fold. The near-multiple rule reports them once, at their mean, as a double root:
    semi-stable, f'(mean) = -eta + 2 p - 3 c p^2 there (mpmath), not stable."""
    c = 1 + 0.3
    params = {"sigma2": 0.3, "eta": 1 / (4 * c), "alpha_p": 1.0}
    with mpmath.workdps(50):
        cc = mpmath.mpf(1) + mpmath.mpf(0.3)
        roots = sorted(mpmath.polyroots([-cc, 1, -mpmath.mpf(params["eta"])], extraprec=200), key=lambda r: float(r.real))
        assert all(abs(r.imag) < 1e-40 for r in roots)
        assert 1e-9 < float(roots[1].real - roots[0].real) < 1e-8
        mean = (roots[0].real + roots[1].real) / 2
        slope = float(-mpmath.mpf(params["eta"]) + 2 * mean - 3 * cc * mean**2)
        mean = float(mean)
    eqs = [e for e in equilibria(derive(ModelSpec("euclidean")).reduce(), params) if not e.collapsed]
    assert len(eqs) == 1
    e = eqs[0]
    assert abs(e.point["p"] - mean) < 1e-15
    assert e.multiplicity == 2 and e.kind == "semi-stable" and e.stable is False
    assert abs(e.eigenvalues[0].real - slope) < 1e-15
    assert e.near_multiple and "near-multiple" in e.note


def test_mpmath_precision_is_left_alone():
    reduced = derive(ModelSpec("cosine")).reduce()
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 2.0, "N_phi": 1.5, "T": 1.0}
    for dps in (15, 33):
        with mpmath.workdps(dps):
            equilibria(reduced, params)
            classify(reduced, [0.0], params)
            assert mpmath.mp.dps == dps


# -- classification robust to scaling --------------------------------------------------------------


def _mp_eigenvalues(system, params, exact_point):
    """Eigenvalues of the sympy Jacobian at the point, at 50 digits (reference)."""
    with mpmath.workdps(50):
        sub = {system.symbols[k]: sp.Rational(v) for k, v in params.items()}
        sub.update(dict(zip(system.states, exact_point)))
        J = mpmath.matrix([[mpmath.mpf(str(sp.N(v.xreplace(sub), 60))) for v in row] for row in system.jacobian.tolist()])
        return sorted((complex(v) for v in mpmath.eig(J, left=False, right=False)), key=lambda z: (z.real, z.imag))


@pytest.mark.parametrize("change", [{"N_psi": 1e3}, {"T": 1e-6}])
def test_badly_scaled_stable_node(change):
    """Leading-order cosine (p, s) system: far out (p ~ 8e5, s ~ 7e11) the Jacobian's entries
    reach 1e9 while its eigenvalues are about -833 and -0.1: a stable node, not "undecided"."""
    system = derive(ModelSpec("cosine", moments="leading"))
    params = dict({"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 1.0, "N_phi": 1.0, "T": 1.0}, **change)
    far = [e for e in equilibria(system, params) if e.point["p"] > 1e5]
    assert len(far) == 1
    e = far[0]
    assert np.max(np.abs(e.jacobian)) > 1e8
    assert e.kind == "stable node" and e.stable is True and e.hyperbolic
    reference = _mp_eigenvalues(system, params, e.exact)
    assert all(r.real < 0 and abs(r.imag) < 1e-30 for r in reference)
    np.testing.assert_allclose(sorted(e.eigenvalues.real), [r.real for r in reference], rtol=1e-10)
    assert e.kind == "stable node" and e.stable is True and e.hyperbolic
    # the float path (classify at the rounded point) agrees
    c = classify(system, e.x, params)
    assert c.kind == "stable node" and c.stable is True


# -- classify -----------------------------------------------------------------------------------------


def test_classify_warns_off_equilibrium_and_refuses_poles():
    system = ODESystem.from_equations({"x": "r + x**2"}, params=("r",))
    with pytest.warns(UserWarning, match=r"not an equilibrium: residual max\|f\(x\)\| = 1"):
        classify(system, [0.0], {"r": -1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = classify(system, [1.0], {"r": -1.0})  # slope 2: unstable
    assert c.kind == "unstable node" and abs(c.eigenvalues[0] - 2) < 1e-14
    pole = ODESystem.from_equations({"x": "1/x - 1"})
    with pytest.raises(ValueError, match="denominator"):
        classify(pole, [0.0], {})
    with pytest.raises(ValueError, match="one value per state"):
        classify(system, [1.0, 2.0], {"r": -1.0})


def test_classify_exact_point_decides_at_high_precision():
    """x' = (x - 1/3)^2 at the exact point 1/3: a double root (semi-stable, a_2 = 1)."""
    system = ODESystem.from_equations({"x": "(x - 1/3)**2"})
    c = classify(system, [sp.Rational(1, 3)], {})
    assert c.precision == "high" and c.kind == "semi-stable" and c.centre_flow == (2, 1.0)


# -- purely imaginary pairs ------------------------------------------------------------------------


def hopf(sign: str, omega: str = "w"):
    return ODESystem.from_equations(
        {"x": f"mu*x - {omega}*y {sign} x*(x**2 + y**2)", "y": f"{omega}*x + mu*y {sign} y*(x**2 + y**2)"},
        params=("mu", "w"),
    )


def guckenheimer_holmes(f, g, x, y, omega):
    """a of x' = -omega y + f, y' = omega x + g at 0 (Guckenheimer-Holmes (3.4.11))."""
    d = lambda e, *v: sp.diff(e, *v).subs({x: 0, y: 0})  # noqa: E731
    return (sp.Rational(1, 16) * (d(f, x, x, x) + d(f, x, y, y) + d(g, x, x, y) + d(g, y, y, y))
            + 1 / (16 * omega) * (d(f, x, y) * (d(f, x, x) + d(f, y, y)) - d(g, x, y) * (d(g, x, x) + d(g, y, y))
                                  - d(f, x, x) * d(g, x, x) + d(f, y, y) * d(g, y, y)))


@pytest.mark.parametrize("w", [1, 2])
def test_hopf_normal_form_weak_foci(w):
    """At mu = 0: dr/dt = -+r^3, a = -+1 (Guckenheimer-Holmes, independent of omega)."""
    x, y = sp.symbols("x y")
    for sign, a_ref, kind, stable in (("-", -1, "weak stable focus", True),
                                      ("+", 1, "weak unstable focus", False)):
        system = hopf(sign)
        f = sp.sympify(f"{sign}1") * x * (x**2 + y**2)
        assert guckenheimer_holmes(f, sp.sympify(f"{sign}1") * y * (x**2 + y**2), x, y, w) == a_ref
        eqs = equilibria(system, {"mu": 0, "w": w})
        assert len(eqs) == 1
        e = eqs[0]
        np.testing.assert_allclose(sorted(e.eigenvalues.imag), [-w, w], atol=1e-14)
        assert e.kind == kind and e.stable is stable and not e.hyperbolic
        assert abs(e.lyapunov - a_ref) < 1e-12
        # off mu = 0 the focus is hyperbolic and the linearisation decides
        assert equilibria(system, {"mu": -0.1, "w": w})[0].kind == "stable focus"


def test_lyapunov_coefficient_with_quadratic_terms():
    """x' = -2y + x^2 - x y + 0.5 y^2 - x^3, y' = 2x + x y - y^2 + 0.3 x y^2 at 0: against the
    Guckenheimer-Holmes formula (quadratic terms contribute through its second bracket)."""
    x, y = sp.symbols("x y")
    f = x**2 - x * y + sp.Rational(1, 2) * y**2 - x**3
    g = x * y - y**2 + sp.Rational(3, 10) * x * y**2
    a_ref = float(guckenheimer_holmes(f, g, x, y, 2))
    system = ODESystem((x, y), (), [-2 * y + f, 2 * x + g])
    c = classify(system, [0.0, 0.0], {})
    assert abs(c.lyapunov - a_ref) < 1e-12 * max(1, abs(a_ref))
    assert c.stable is (a_ref < 0)


def test_lotka_volterra_saddle_and_centre():
    """x' = a x - b x y, y' = -c y + d x y: a saddle at 0 (eigenvalues a, -c) and a linear
    centre at (c/d, a/b) with eigenvalues +-i sqrt(a c) (conserved quantity: a centre)."""
    lv = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"))
    params = {"a": 1.0, "b": 0.5, "c": 0.75, "d": 0.25}
    eqs = equilibria(lv, params)
    assert eqs.complete and [e.point for e in eqs] == [{"x": 0.0, "y": 0.0}, {"x": 3.0, "y": 2.0}]
    saddle, centre = eqs
    assert saddle.kind == "saddle" and sorted(saddle.eigenvalues.real) == [-0.75, 1.0]
    assert centre.kind == "centre" and centre.stable is None and not centre.hyperbolic
    np.testing.assert_allclose(sorted(centre.eigenvalues.imag), [-np.sqrt(0.75), np.sqrt(0.75)], rtol=1e-14)
    assert "first Lyapunov coefficient vanishes" in centre.reason
    assert "non-hyperbolic" in centre.reason
