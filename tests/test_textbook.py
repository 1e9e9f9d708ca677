"""Textbook systems that are not SSL models, each against an independent reference.

References: closed forms, and the normal forms of Strogatz, "Nonlinear Dynamics and Chaos"
(2nd ed., ch. 3 saddle-node / transcritical / pitchfork, ch. 6.4 Lotka-Volterra and its
conserved quantity, ch. 8.2 Hopf) and Kuznetsov, "Elements of Applied Bifurcation Theory"
(ch. 3: the Hopf normal form r' = mu r + l1 r^3 with l1 = -1 supercritical, +1 subcritical).
The Brusselator's equilibrium (a, b/a) and its Hopf point b = 1 + a^2 follow from
trace J = b - 1 - a^2, det J = a^2 (Strogatz exercise 8.3.1); that this Hopf point is
supercritical was checked separately by integration (limit-cycle amplitude 0.146 at
b - b_c = 0.01 and 0.296 at 0.04, the sqrt(b - b_c) law of a supercritical Hopf).

None of the expected numbers is taken from the code under test. Tolerances are stated at each
assertion: exact equilibria of polynomial systems to 1e-10, eigenvalues to 1e-9, bifurcation
points to a few times the requested bisection tolerance, trajectories to 1e-6.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, ODESystem, derive, reduce
from dynamics import bifurcation, classify, equilibria, integrate, threshold

EQ_TOL = 1e-10   # equilibria of polynomial systems are exact; float64 rounding only
EIG_TOL = 1e-9


# -- helpers (independent of the code under test) ---------------------------------------------


def _x(obj) -> np.ndarray:
    """The state of an equilibrium or bifurcation point as a 1-D float array (``x`` in the
    agreed API; ``p`` was the old one-state name)."""
    for name in ("x", "point", "p"):
        if hasattr(obj, name):
            v = getattr(obj, name)
            if isinstance(v, dict):
                v = list(v.values())
            return np.atleast_1d(np.asarray(v, dtype=float))
    raise AssertionError(f"{obj!r} carries no state (x)")


def _match(eqs, expected, tol=EQ_TOL):
    """Assert the equilibria are exactly ``expected`` (a list of points) and return them in
    that order."""
    found = list(eqs)
    assert len(found) == len(expected), f"expected {len(expected)} equilibria at {expected}, got {found}"
    out = []
    for point in expected:
        point = np.atleast_1d(np.asarray(point, dtype=float))
        near = [e for e in found if np.max(np.abs(_x(e) - point)) <= tol * max(1.0, np.max(np.abs(point)))]
        assert len(near) == 1, f"no unique equilibrium at {point}: {found}"
        out.append(near[0])
    return out


def _eig_close(got, expected, tol=EIG_TOL):
    key = lambda z: (round(z.real, 6), z.imag)  # noqa: E731
    got = sorted(np.asarray(got, dtype=complex).ravel(), key=key)
    expected = sorted(np.asarray(expected, dtype=complex).ravel(), key=key)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert abs(g - e) <= tol * max(1.0, abs(e)), f"eigenvalues {got} != {expected}"


def _solutions(th, field):
    """The set of solutions in a Threshold field, simplified; () where the field is absent."""
    values = getattr(th, field, None) or ()
    out = set()
    for v in values:
        assert isinstance(v, sp.Expr), f"{field} holds {v!r} ({type(v).__name__}), not an expression"
        out.add(sp.simplify(v))
    return out


# -- the systems ---------------------------------------------------------------------------------

SADDLE_NODE = ODESystem.from_equations({"x": "r + x**2"}, params=("r",), name="saddle-node")
TRANSCRITICAL = ODESystem.from_equations({"x": "r*x - x**2"}, params=("r",), name="transcritical")
PITCHFORK = ODESystem.from_equations({"x": "r*x - x**3"}, params=("r",), name="pitchfork")
SUBCRITICAL_PITCHFORK = ODESystem.from_equations({"x": "r*x + x**3"}, params=("r",))
HOPF = ODESystem.from_equations(
    {"x": "mu*x - y - x*(x**2 + y**2)", "y": "x + mu*y - y*(x**2 + y**2)"}, params=("mu",), name="Hopf")
SUBCRITICAL_HOPF = ODESystem.from_equations(
    {"x": "mu*x - y + x*(x**2 + y**2)", "y": "x + mu*y + y*(x**2 + y**2)"}, params=("mu",))
LOTKA_VOLTERRA = ODESystem.from_equations(
    {"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"), name="Lotka-Volterra")
BRUSSELATOR = ODESystem.from_equations(
    {"x": "a - (b + 1)*x + x**2*y", "y": "b*x - x**2*y"}, params=("a", "b"), name="Brusselator")

LV_PARAMS = {"a": 1.0, "b": 0.5, "c": 0.75, "d": 0.25}   # centre at (c/d, a/b) = (3, 2)


# -- saddle-node: x' = r + x^2 -------------------------------------------------------------------


def test_saddle_node_equilibria_and_stability():
    # r < 0: x = -sqrt(-r) stable (f' = 2x < 0), x = +sqrt(-r) unstable
    for r in (-0.25, -2.0):
        root = math.sqrt(-r)
        lo, hi = _match(equilibria(SADDLE_NODE, {"r": r}), [-root, root])
        assert lo.stable is True and lo.kind == "stable node"
        assert hi.stable is False and hi.kind == "unstable node"
        _eig_close(lo.eigenvalues, [-2 * root])
        _eig_close(hi.eigenvalues, [2 * root])
    # r > 0: no real equilibrium, and the enumeration knows it is complete
    empty = equilibria(SADDLE_NODE, {"r": 0.3})
    assert len(empty) == 0 and not empty.curves and empty.complete


def test_saddle_node_at_the_fold_is_a_semi_stable_double_root():
    for r in (0.0, sp.Integer(0)):
        (e,) = _match(equilibria(SADDLE_NODE, {"r": r}), [0.0])
        assert e.kind == "semi-stable" and e.stable is False
        assert e.multiplicity == 2


def test_saddle_node_bifurcation_and_threshold():
    bif = bifurcation(SADDLE_NODE, ("r", np.linspace(-1.0, 1.0, 8)), {}, tol=1e-10)
    assert len(bif.points) == 1, bif.points
    (pt,) = bif.points
    assert pt.kind == "fold"
    assert abs(pt.value) <= 1e-9
    assert np.max(np.abs(_x(pt))) <= 1e-4   # x* = +-sqrt(-r) with |r| <= 1e-9 around the fold
    th = threshold(SADDLE_NODE, "r")
    assert _solutions(th, "fold_solutions") == {0}
    assert not _solutions(th, "transcritical_solutions") and not _solutions(th, "pitchfork_solutions")
    assert not _solutions(th, "hopf_solutions")


# -- transcritical: x' = r x - x^2 ---------------------------------------------------------------


@pytest.mark.parametrize("r", [0.5, -0.5])
def test_transcritical_exchange_of_stability(r):
    zero, other = _match(equilibria(TRANSCRITICAL, {"r": r}), [0.0, r])
    # f'(0) = r, f'(r) = -r
    _eig_close(zero.eigenvalues, [r])
    _eig_close(other.eigenvalues, [-r])
    assert zero.stable is (r < 0) and other.stable is (r > 0)
    assert zero.kind == ("stable node" if r < 0 else "unstable node")
    assert other.kind == ("stable node" if r > 0 else "unstable node")


def test_transcritical_bifurcation_at_zero():
    bif = bifurcation(TRANSCRITICAL, ("r", np.linspace(-1.0, 1.0, 8)), {}, tol=1e-12)
    assert [pt.kind for pt in bif.points] == ["transcritical"], bif.points   # one point, no duplicate
    (pt,) = bif.points
    assert abs(pt.value) <= 1e-10
    assert np.max(np.abs(_x(pt))) <= 1e-8
    assert 0 in _solutions(threshold(TRANSCRITICAL, "r"), "transcritical_solutions")


# -- pitchfork: x' = r x - x^3 -------------------------------------------------------------------


def test_supercritical_pitchfork_branches():
    r = 0.25
    neg, zero, pos = _match(equilibria(PITCHFORK, {"r": r}), [-0.5, 0.0, 0.5])
    assert zero.stable is False and zero.kind == "unstable node"
    _eig_close(zero.eigenvalues, [r])
    for e in (neg, pos):   # f'(+-sqrt r) = r - 3 r = -2 r
        assert e.stable is True and e.kind == "stable node"
        _eig_close(e.eigenvalues, [-2 * r])
    (only,) = _match(equilibria(PITCHFORK, {"r": -0.25}), [0.0])
    assert only.stable is True and only.kind == "stable node"


def test_pitchfork_origin_at_criticality_is_a_cubic_non_hyperbolic_node():
    (e,) = _match(equilibria(PITCHFORK, {"r": 0.0}), [0.0])
    assert e.kind == "non-hyperbolic stable node" and e.stable is True   # x' = -x^3
    assert e.multiplicity == 3
    (u,) = _match(equilibria(SUBCRITICAL_PITCHFORK, {"r": 0.0}), [0.0])
    assert u.stable is False and "unstable" in u.kind   # x' = +x^3
    c = classify(PITCHFORK, np.array([0.0]), {"r": 0.0})
    assert c.kind == "non-hyperbolic stable node" and c.stable is True


def test_pitchfork_bifurcation_and_threshold():
    bif = bifurcation(PITCHFORK, ("r", np.linspace(-1.0, 1.0, 8)), {}, tol=1e-12)
    assert [pt.kind for pt in bif.points] == ["pitchfork"], bif.points
    assert abs(bif.points[0].value) <= 1e-10
    assert np.max(np.abs(_x(bif.points[0]))) <= 1e-4
    assert 0 in _solutions(threshold(PITCHFORK, "r"), "pitchfork_solutions")


# -- Hopf normal form ------------------------------------------------------------------------------


@pytest.mark.parametrize("mu", [-0.3, 0.3])
def test_hopf_origin_is_a_focus_with_eigenvalues_mu_plus_minus_i(mu):
    (e,) = _match(equilibria(HOPF, {"mu": mu}), [[0.0, 0.0]])
    _eig_close(e.eigenvalues, [mu + 1j, mu - 1j])
    assert e.kind == ("stable focus" if mu < 0 else "unstable focus")
    assert e.stable is (mu < 0)


def test_hopf_at_criticality_is_a_weak_focus():
    # r' = -r^3 (l1 = -1): weakly attracting; the subcritical form r' = +r^3 repels
    (e,) = _match(equilibria(HOPF, {"mu": 0.0}), [[0.0, 0.0]])
    _eig_close(e.eigenvalues, [1j, -1j])
    assert e.kind == "weak stable focus" and e.stable is True
    (u,) = _match(equilibria(SUBCRITICAL_HOPF, {"mu": 0.0}), [[0.0, 0.0]])
    assert u.kind == "weak unstable focus" and u.stable is False
    c = classify(HOPF, np.zeros(2), {"mu": 0.0})
    assert c.kind == "weak stable focus" and c.stable is True


def test_hopf_bifurcation_and_threshold():
    bif = bifurcation(HOPF, ("mu", np.linspace(-1.0, 1.0, 8)), {}, tol=1e-10)
    assert [pt.kind for pt in bif.points] == ["hopf"], bif.points
    assert abs(bif.points[0].value) <= 1e-8
    assert np.max(np.abs(_x(bif.points[0]))) <= 1e-8
    assert 0 in _solutions(threshold(HOPF, "mu"), "hopf_solutions")


@pytest.mark.parametrize("backend", ["jax", "scipy"])
def test_hopf_limit_cycle_radius_sqrt_mu(backend):
    """Closed form (Bernoulli): r(t)^-2 = 1/mu + (r0^-2 - 1/mu) exp(-2 mu t), theta = t."""
    mu = 0.25
    r0 = np.array([0.1, 0.5, 1.0])
    y0 = np.stack([r0, np.zeros(3)], axis=-1)
    t = np.linspace(0.0, 60.0, 601)
    sol = integrate(HOPF, y0, (0.0, 60.0), {"mu": mu}, t_eval=t, backend=backend, rtol=1e-10, atol=1e-12)
    assert list(np.asarray(sol.status).ravel()) == ["finished"] * 3
    r = 1.0 / np.sqrt(1.0 / mu + (r0[:, None] ** -2 - 1.0 / mu) * np.exp(-2 * mu * t))
    expected = np.stack([r * np.cos(t), r * np.sin(t)], axis=-1)
    assert np.max(np.abs(sol.y - expected)) <= 1e-6
    radius = np.hypot(sol.final[:, 0], sol.final[:, 1])
    assert np.max(np.abs(radius - math.sqrt(mu))) <= 1e-3


# -- Lotka-Volterra: a saddle and a non-hyperbolic centre --------------------------------------------


def test_lotka_volterra_saddle_and_centre():
    a, b, c, d = (LV_PARAMS[k] for k in "abcd")
    origin, centre = _match(equilibria(LOTKA_VOLTERRA, LV_PARAMS), [[0.0, 0.0], [c / d, a / b]])
    assert origin.kind == "saddle" and origin.stable is False
    _eig_close(origin.eigenvalues, [a, -c])
    _eig_close(centre.eigenvalues, [1j * math.sqrt(a * c), -1j * math.sqrt(a * c)])
    assert centre.kind == "centre" and centre.stable is None
    assert "focus" not in centre.kind
    cl = classify(LOTKA_VOLTERRA, np.array([c / d, a / b]), LV_PARAMS)
    assert cl.kind == "centre" and cl.stable is None


@pytest.mark.parametrize("backend", ["jax", "scipy"])
def test_lotka_volterra_conserves_its_first_integral(backend):
    """V = d x - c ln x + b y - a ln y is constant on orbits (Strogatz 6.4)."""
    a, b, c, d = (LV_PARAMS[k] for k in "abcd")
    y0 = np.array([[2.0, 1.0], [5.0, 3.0]])
    t = np.linspace(0.0, 30.0, 301)
    sol = integrate(LOTKA_VOLTERRA, y0, (0.0, 30.0), LV_PARAMS, t_eval=t, backend=backend, rtol=1e-11, atol=1e-12)
    assert list(np.asarray(sol.status).ravel()) == ["finished"] * 2
    x, y = sol.y[..., 0], sol.y[..., 1]
    V = d * x - c * np.log(x) + b * y - a * np.log(y)
    assert np.max(np.abs(V - V[:, :1])) <= 1e-6
    # the orbit really goes round the centre (else conservation would be trivial)
    assert np.all(np.ptp(x, axis=-1) > 0.5)


def test_lotka_volterra_threshold_is_sensible():
    """For a != 0 the equilibria (0, 0) (eigenvalues a, -c, det = -a c) and (c/d, a/b)
    (det = a c) never lose hyperbolicity through a zero eigenvalue except at a = 0, and the
    centre's trace is 0 for every a (no crossing, so no Hopf value): the only special value of a
    is 0, where det J vanishes at both (a zero eigenvalue: the fold condition)."""
    th = threshold(LOTKA_VOLTERRA, "a")
    assert "True" not in repr(th) and "False" not in repr(th)
    states = set(LOTKA_VOLTERRA.states)
    for field in ("fold", "transcritical", "hopf"):
        cond = getattr(th, field, None)
        if isinstance(cond, sp.Basic):
            assert not isinstance(cond, sp.logic.boolalg.BooleanAtom), f"{field} = {cond}"
            assert not (cond.free_symbols & states), f"{field} = {cond} involves the states"
    assert _solutions(th, "fold_solutions") == {0}, th.fold_solutions
    assert _solutions(th, "hopf_solutions") == set(), th.hopf_solutions
    for field in ("transcritical_solutions", "pitchfork_solutions"):
        assert _solutions(th, field) <= {0}, f"{field}: {getattr(th, field)}"


# -- the Brusselator ----------------------------------------------------------------------------------


@pytest.mark.parametrize("b, kind", [(2.0, "stable focus"), (4.0, "unstable focus")])
def test_brusselator_equilibrium(b, kind):
    a = 1.5
    (e,) = _match(equilibria(BRUSSELATOR, {"a": a, "b": b}), [[a, b / a]])
    # J = [[b - 1, a^2], [-b, -a^2]]: trace b - 1 - a^2, det a^2
    tr, det = b - 1 - a**2, a**2
    disc = complex(tr**2 - 4 * det) ** 0.5
    _eig_close(e.eigenvalues, [(tr + disc) / 2, (tr - disc) / 2])
    assert e.kind == kind and e.stable is (tr < 0)


def test_brusselator_hopf_at_one_plus_a_squared():
    a = 1.5
    bif = bifurcation(BRUSSELATOR, ("b", np.linspace(2.0, 5.0, 7)), {"a": a}, tol=1e-10)
    assert [pt.kind for pt in bif.points] == ["hopf"], bif.points
    assert abs(bif.points[0].value - (1 + a**2)) <= 1e-8
    assert np.max(np.abs(_x(bif.points[0]) - [a, (1 + a**2) / a])) <= 1e-6
    A = BRUSSELATOR.symbols["a"]
    assert _solutions(threshold(BRUSSELATOR, "b"), "hopf_solutions") == {1 + A**2}
    # at b = 1 + a^2 exactly the Hopf point is supercritical: a weak stable focus
    (e,) = _match(equilibria(BRUSSELATOR, {"a": sp.Rational(3, 2), "b": sp.Rational(13, 4)}),
                  [[1.5, 13 / 6]])
    assert e.kind == "weak stable focus" and e.stable is True


@pytest.mark.parametrize("system, param, kind", [
    (SADDLE_NODE, "r", "fold"), (TRANSCRITICAL, "r", "transcritical"),
    (PITCHFORK, "r", "pitchfork"), (HOPF, "mu", "hopf")])
def test_normal_form_bifurcation_points_are_exact_at_the_default_tol(system, param, kind):
    """Each normal form bifurcates at exactly 0 (not 4.7e-11), reported once, on a grid that
    does not straddle 0 symmetrically."""
    bif = bifurcation(system, (param, np.linspace(-0.7, 1.3, 9)), {})
    assert [pt.kind for pt in bif.points] == [kind], bif.points
    assert abs(bif.points[0].value) <= 1e-12


# -- rational right-hand sides ---------------------------------------------------------------------


def test_removable_singularity_is_no_equilibrium():
    # (x^2 - 1)/(x - 1) = x + 1 away from x = 1, undefined at x = 1
    system = ODESystem.from_equations({"x": "(x**2 - 1)/(x - 1)"})
    (e,) = _match(equilibria(system, {}), [-1.0])
    _eig_close(e.eigenvalues, [1.0])
    assert e.kind == "unstable node" and e.stable is False


def test_one_state_pole_is_no_equilibrium():
    # (x^2 - 1)/(x - 1)^2 = (x + 1)/(x - 1): f'(-1) = -2/(x - 1)^2 = -1/2
    system = ODESystem.from_equations({"x": "(x**2 - 1)/(x - 1)**2"})
    (e,) = _match(equilibria(system, {}), [-1.0])
    _eig_close(e.eigenvalues, [-0.5])
    assert e.kind == "stable node" and e.stable is True


def test_two_state_rational_system_with_a_pole():
    # numerators y and (x - 1)(x - 3) - y vanish at (1, 0) and (3, 0); x = 1 is a pole.
    # At (3, 0): J = [[0, 1/2], [2, -1]], eigenvalues (-1 +- sqrt 5)/2: a saddle.
    system = ODESystem.from_equations({"x": "y/(x - 1)", "y": "(x - 1)*(x - 3) - y"})
    (e,) = _match(equilibria(system, {}), [[3.0, 0.0]])
    _eig_close(e.eigenvalues, [(-1 + math.sqrt(5)) / 2, (-1 - math.sqrt(5)) / 2])
    assert e.kind == "saddle" and e.stable is False


def test_rational_non_hyperbolic_point_is_classified_or_explained():
    # x' = -x^3/(1 + x^2): Taylor -x^3 + ..., a non-hyperbolic stable node
    system = ODESystem.from_equations({"x": "-x**3/(1 + x**2)"})
    # x x' = -x^4/(1 + x^2) < 0 for x != 0: |x| decreases on both sides, 0 is asymptotically stable
    (e,) = _match(equilibria(system, {}), [0.0])
    assert not e.hyperbolic and e.stable is True and e.kind == "non-hyperbolic stable node"
    assert "u^3" in e.reason, e.reason


# -- names carry no meaning --------------------------------------------------------------------------


def _ssl_lookalike(**options):
    # p_hat' = s_total - (1 + eta) p_hat, s_total' = -s_total (s_total + 1)
    return ODESystem.from_equations(
        {"p_hat": "s_total - (1 + eta)*p_hat", "s_total": "-s_total*(s_total + 1)"}, params=("eta",), **options)


def test_states_named_like_ssl_states_keep_every_equilibrium():
    eta = -0.5   # no param_domain declared: any real eta is allowed
    system = _ssl_lookalike()
    # s_total in {0, -1}, p_hat = s_total/(1 + eta); J = [[-(1 + eta), 1], [0, -(2 s_total + 1)]]
    zero, neg = _match(equilibria(system, {"eta": eta}), [[0.0, 0.0], [-2.0, -1.0]])
    _eig_close(zero.eigenvalues, [-0.5, -1.0])
    _eig_close(neg.eigenvalues, [-0.5, 1.0])
    assert zero.kind == "stable node" and zero.stable is True
    assert neg.kind == "saddle" and neg.stable is False
    assert not zero.collapsed and not neg.collapsed   # no collapse declared


@pytest.mark.parametrize("backend", ["jax", "scipy"])
def test_no_collapse_event_without_a_declared_collapse(backend):
    t1 = 60.0
    free = integrate(_ssl_lookalike(), np.array([0.5, 0.5]), (0.0, t1), {"eta": -0.5}, backend=backend)
    assert str(free.status) == "finished" and np.isnan(free.event_t)
    # closed form: s_total -> 0 like exp(-t), p_hat -> 0 like exp(-t/2)
    assert np.max(np.abs(free.final)) <= 1e-6
    # the control: with the collapse declared the same run stops at collapse (both below
    # collapse_tol = 1e-8, at about t = 38)
    declared = integrate(_ssl_lookalike(collapse=("p_hat", "s_total")), np.array([0.5, 0.5]), (0.0, t1),
                         {"eta": -0.5}, backend="scipy")
    assert str(declared.status) == "collapsed" and float(declared.event_t) < t1


def test_a_user_parameter_named_eta_may_be_negative():
    system = ODESystem.from_equations({"x": "-eta*x - x**3"}, params=("eta",))
    # eta = -1: x' = x - x^3, equilibria 0 (unstable, f' = 1) and +-1 (stable, f' = -2)
    neg, zero, pos = _match(equilibria(system, {"eta": -1.0}), [-1.0, 0.0, 1.0])
    assert zero.stable is False and neg.stable is True and pos.stable is True
    sol = integrate(system, np.array([0.1]), (0.0, 30.0), {"eta": -1.0}, backend="scipy")
    assert abs(float(sol.final[0]) - 1.0) <= 1e-6


def test_classify_off_an_equilibrium_warns():
    """x = 0 is no equilibrium of x' = -1 + x^2 (f(0) = -1), so its linearisation (f'(0) = 0)
    says nothing about the flow: classify says so, naming the residual, and classifies the
    linearisation anyway (documented: Warns). At the equilibrium x = 1 it stays silent."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        off = classify(SADDLE_NODE, np.array([0.0]), {"r": -1.0})   # f(0) = -1
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "not an equilibrium" in messages[0] and "|f(x)| = 1 " in messages[0], messages
    np.testing.assert_allclose(np.asarray(off.eigenvalues, dtype=complex), [0.0], atol=1e-12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        on = classify(SADDLE_NODE, np.array([1.0]), {"r": -1.0})    # f(1) = 0, f'(1) = 2
    assert not [w for w in caught if "equilibrium" in str(w.message)]
    assert on.stable is False and on.kind == "unstable node"


# -- reduce: only invariant graphs ---------------------------------------------------------------------


def test_reduce_refuses_a_graph_that_is_not_invariant():
    """Euclidean SimSiam mode plus -gamma p^3 in dp/dt: d/dt (s - p^2/alpha_p) on the graph is
    2 gamma p^4 / alpha_p != 0, so s = p^2/alpha_p is no longer invariant."""
    euclid = derive(ModelSpec("euclidean", "simsiam"))
    sym = euclid.symbols
    p, alpha_p = sym["p"], sym["alpha_p"]
    gamma = sp.Symbol("gamma")
    graph = {"s": p**2 / alpha_p}
    plain = ODESystem(euclid.states, euclid.params, euclid.rhs)
    cubic = ODESystem(euclid.states, euclid.params + (gamma,),
                      [euclid.rhs[0] - gamma * p**3, euclid.rhs[1]], manifold=graph)
    with pytest.raises(ValueError, match="invariant"):
        reduce(cubic, graph)
    with pytest.raises(ValueError, match="invariant"):
        cubic.reduce()
    # the control: without the cubic term the graph is invariant, and on it
    # dp/dt = p^2 (1 - c p) - eta p with c = 1 + sigma2 (Tian et al. 2021)
    reduced = reduce(plain, graph)
    expected = p**2 * (1 - (1 + sym["sigma2"]) * p) - sym["eta"] * p
    assert reduced.state_names == ("p",)
    assert sp.expand(reduced.rhs[0] - expected) == 0


def test_reduce_accepts_an_invariant_graph_of_a_user_system():
    # x' = -x, y' = -2 y: d/dt (y - x^2) = -2 (y - x^2), so y = x^2 is invariant
    system = ODESystem.from_equations({"x": "-x", "y": "-2*y"})
    x = system.symbols["x"]
    reduced = reduce(system, {"y": x**2})
    assert reduced.state_names == ("x",) and sp.expand(reduced.rhs[0] + x) == 0
    # y' = -y instead: d/dt (y - x^2) = x^2 on the graph, not invariant
    other = ODESystem.from_equations({"x": "-x", "y": "-y"})
    with pytest.raises(ValueError, match="invariant"):
        reduce(other, {"y": other.symbols["x"] ** 2})
