"""bifurcation, threshold, roots_batch, regimes and shrinking_norms on any ODESystem.

References (independent of the code under test): the normal forms of Strogatz, "Nonlinear
Dynamics and Chaos" (saddle-node x' = r + x^2, transcritical x' = r x - x^2, pitchfork
x' = r x - x^3: bifurcation at r = 0; Hopf normal form: eigenvalues mu +- i), Kuznetsov,
"Elements of Applied Bifurcation Theory"; the Brusselator's equilibrium (a, b/a) with
trace J = b - 1 - a^2, det J = a^2 (Hopf at b = 1 + a^2); Tian et al. (2021) for the Euclidean
eigenmode: dp/dt = p^2 - c p^3 - eta p on s = p^2/alpha_p, equilibria 0 and
p+- = (tau +- sqrt(tau^2 - 4 c eta))/(2c), fold at eta = tau^2/(4c), transcritical at eta = 0.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, ODESystem, derive
from dynamics import (
    BIFURCATION_KINDS,
    REGIMES,
    SCALE,
    Branch,
    bifurcation,
    regimes,
    roots_batch,
    shrinking_norms,
    threshold,
)
from dynamics._tolerance import MIN_TOL

SADDLE_NODE = ODESystem.from_equations({"x": "r + x**2"}, params=("r",), name="saddle-node")
TRANSCRITICAL = ODESystem.from_equations({"x": "r*x - x**2"}, params=("r",), name="transcritical")
PITCHFORK = ODESystem.from_equations({"x": "r*x - x**3"}, params=("r",), name="pitchfork")
HOPF = ODESystem.from_equations(
    {"x": "mu*x - y - x*(x**2 + y**2)", "y": "x + mu*y - y*(x**2 + y**2)"}, params=("mu",), name="Hopf")
BRUSSELATOR = ODESystem.from_equations(
    {"x": "a - (b + 1)*x + x**2*y", "y": "b*x - x**2*y"}, params=("a", "b"), name="Brusselator",
    param_domain={"a": sp.Interval.open(0, sp.oo), "b": (0, None)})
LOTKA_VOLTERRA = ODESystem.from_equations(
    {"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"), name="Lotka-Volterra")

SIGMA2 = 0.2
C = 1 + SIGMA2
EUCLID = {"sigma2": SIGMA2, "alpha_p": 1.0}


def tian(eta, tau=1.0):
    d = math.sqrt(tau**2 - 4 * C * eta)
    return (tau - d) / (2 * C), (tau + d) / (2 * C)


def kinds(bif):
    return [pt.kind for pt in bif.points]


# -- bifurcation: textbook normal forms ----------------------------------------------------------


@pytest.mark.parametrize("n", [8, 21])   # 21: r = 0 is itself a sample (the point must not come back twice)
@pytest.mark.parametrize("system, kind", [(SADDLE_NODE, "fold"), (TRANSCRITICAL, "transcritical"),
                                          (PITCHFORK, "pitchfork")])
def test_one_state_normal_forms_at_zero(system, kind, n):
    bif = bifurcation(system, ("r", np.linspace(-1.0, 1.0, n)), {}, tol=1e-12)
    assert kinds(bif) == [kind]
    (pt,) = bif.points
    assert pt.value == 0.0            # exact: snapped to the exact root of the discriminant in r
    assert pt.x.shape == (1,) and abs(pt.x[0]) <= 1e-9
    assert kind in BIFURCATION_KINDS


def test_transcritical_branches_cross_and_exchange_stability():
    """Branches x = 0 (stable for r < 0) and x = r (stable for r > 0), tracked through r = 0."""
    bif = bifurcation(TRANSCRITICAL, ("r", np.linspace(-1.0, 1.0, 8)), {}, n_dense=101)
    assert len(bif.branches) == 2 and all(isinstance(b, Branch) for b in bif.branches)
    zero = next(b for b in bif.branches if np.all(np.abs(b.x[:, 0]) <= 1e-12))
    other = next(b for b in bif.branches if b is not zero)
    for b in bif.branches:
        assert b.values[0] == -1.0 and b.values[-1] == 1.0 and b.x.shape == (len(b.values), 1)
    np.testing.assert_allclose(other.x[:, 0], other.values, atol=1e-12)
    off = np.abs(zero.values) > 1e-9
    np.testing.assert_array_equal(zero.stable[off], zero.values[off] < 0)
    np.testing.assert_array_equal(other.stable[off], other.values[off] > 0)
    with pytest.raises(ValueError):
        zero.x[0, 0] = 1.0   # read-only


def test_pitchfork_branches():
    bif = bifurcation(PITCHFORK, ("r", np.linspace(-1.0, 1.0, 9)), {}, n_dense=201)
    assert len(bif.branches) == 3
    for b in bif.branches:
        x = b.x[:, 0]
        if np.all(np.abs(x) <= 1e-12):
            assert b.values[0] == -1.0 and b.values[-1] == 1.0
            np.testing.assert_array_equal(b.stable[np.abs(b.values) > 1e-9], b.values[np.abs(b.values) > 1e-9] < 0)
        else:   # x = +-sqrt(r), stable (f' = -2r), born at r = 0
            assert b.values[0] >= 0
            np.testing.assert_allclose(np.abs(x), np.sqrt(b.values), atol=1e-10)
            assert np.all(b.stable[b.values > 1e-9])


def test_hopf_normal_form():
    bif = bifurcation(HOPF, ("mu", np.linspace(-1.0, 1.0, 8)), {}, tol=1e-10)
    assert kinds(bif) == ["hopf"]
    assert abs(bif.points[0].value) <= 1e-9 and np.max(np.abs(bif.points[0].x)) <= 1e-12
    assert bif.state_names == ("x", "y")


@pytest.mark.parametrize("a, values", [(1.0, np.linspace(1.0, 3.0, 11)), (1.5, np.linspace(2.0, 5.0, 7)),
                                       (0.7, np.linspace(0.5, 3.0, 6))])
def test_brusselator_hopf_at_one_plus_a_squared(a, values):
    bif = bifurcation(BRUSSELATOR, ("b", values), {"a": a}, tol=1e-10)
    assert kinds(bif) == ["hopf"]
    (pt,) = bif.points
    b_c = 1 + a**2
    assert abs(pt.value - b_c) <= 1e-9 * b_c
    np.testing.assert_allclose(pt.x, [a, b_c / a], rtol=1e-8)
    # one branch (a, b/a), stable below b_c
    (br,) = bif.branches
    np.testing.assert_allclose(br.x, np.stack([np.full_like(br.values, a), br.values / a], axis=1), rtol=1e-10)
    away = np.abs(br.values - b_c) > 1e-6
    np.testing.assert_array_equal(br.stable[away], br.values[away] < b_c)


# -- bifurcation: the SSL eigenmodes ---------------------------------------------------------------


def test_euclidean_mode_transcritical_exactly_zero_and_fold_at_tians_threshold():
    bif = bifurcation(derive(ModelSpec("euclidean")), ("eta", np.linspace(0.0, 0.4, 17)), EUCLID)
    assert kinds(bif) == ["transcritical", "fold"]
    trans, fold = bif.points
    assert trans.value == 0.0 and trans.x[0] == 0.0          # was 4.7e-11
    assert abs(fold.value - 1 / (4 * C)) <= 1e-12 and abs(fold.value - 0.208333) < 1e-6
    assert abs(fold.x[0] - 1 / (2 * C)) <= 1e-5
    assert bif.state_names == ("p",)
    # the stable upper branch is Tian's p+
    upper = max(bif.branches, key=lambda b: float(np.max(b.x)))
    expected = [tian(e)[1] for e in upper.values]
    np.testing.assert_allclose(upper.x[:, 0], expected, atol=1e-6)


def test_ema_mode_two_states_after_reduction():
    """On s = p^2/alpha_p the EMA mode keeps (p, tau); at equilibrium tau = 1 off collapse, so
    the fold sits at eta = 1/(4c) with (p, tau) = (1/(2c), 1); the collapsed branch (0, tau0)
    meets p- at eta = 0 (transcritical)."""
    system = derive(ModelSpec("euclidean", "ema"))
    bif = bifurcation(system, ("eta", np.linspace(0.0, 0.4, 9)), {**EUCLID, "beta": 0.5})
    assert bif.state_names == ("p", "tau")
    assert kinds(bif) == ["transcritical", "fold"]
    trans, fold = bif.points
    assert trans.value == 0.0
    np.testing.assert_allclose(trans.x, [0.0, 1.0], atol=1e-12)
    assert abs(fold.value - 1 / (4 * C)) <= 1e-9
    np.testing.assert_allclose(fold.x, [1 / (2 * C), 1.0], atol=1e-4)


@pytest.mark.parametrize("eta", [1e-9, 5.6e-8, 1e-7, 3.3e-6, 1e-4, 0.05, 0.2])
def test_ema_mode_every_equilibrium_found_near_the_transcritical_point(eta):
    """Closed form for the reduced EMA mode (beta = 0.5, c = 1 + sigma2), 0 < eta < 1/(4c):
    (0, beta/(beta - eta)) and tau = 1 with c p^2 - p + eta = 0, so three equilibria. The
    eliminant in tau has the rational root 1 next to beta/(beta - eta); SymPy's isolating
    interval of the latter can end exactly at 1, where the old float sign test read rounding
    noise and bisected to the wrong end (at eta = 1e-7 the collapsed point was lost, so the
    count seemed to change at 5.5e-8 and the transcritical point at 0 was dropped)."""
    from dynamics import equilibria

    beta = 0.5
    reduced = derive(ModelSpec("euclidean", "ema")).reduce()
    eqs = equilibria(reduced, {**EUCLID, "beta": beta, "eta": eta})
    root = math.sqrt(1 - 4 * C * eta)
    expected = sorted([(0.0, beta / (beta - eta)), (2 * eta / (1 + root), 1.0), ((1 + root) / (2 * C), 1.0)])  # no cancellation
    assert len(eqs) == 3
    np.testing.assert_allclose([e.x for e in eqs], expected, rtol=1e-12, atol=1e-20)


def test_multi_state_fold_snaps_to_the_exact_zero_eigenvalue_value():
    """A fold of a two-state polynomial system between samples comes back as the float nearest
    the exact value 1/(4c) (from {N = 0, det dN/dx = 0} eliminated to eta), not a bisection
    bracket 1e-10 wide (the old value on this grid was off by 3e-11)."""
    bif = bifurcation(derive(ModelSpec("euclidean", "ema")), ("eta", np.linspace(0.0, 0.4, 7)), {**EUCLID, "beta": 0.5})
    assert kinds(bif) == ["transcritical", "fold"]
    assert bif.points[0].value == 0.0
    assert abs(bif.points[1].value - 1 / (4 * C)) <= 2 * np.finfo(float).eps * (1 / (4 * C))


def test_located_count_change_is_never_dropped(monkeypatch):
    """Where the local counts cannot label a located change in the number of equilibria, the
    normal form does (x' = r + x^2: l . f_r = 1 != 0, a fold at r = 0, Strogatz 3.1)."""
    import dynamics._bifurcation as bifmod

    monkeypatch.setattr(bifmod._Solver, "zero_kind", lambda self, v, x: None)
    bif = bifurcation(SADDLE_NODE, ("r", np.linspace(-1.0, 0.7, 5)), {})
    assert kinds(bif) == ["fold"]
    assert abs(bif.points[0].value) <= 1e-9
    assert abs(bif.points[0].x[0]) <= 1e-4


# -- bifurcation: arguments -----------------------------------------------------------------------


@pytest.mark.parametrize("tol", [0, 0.0, -1e-3, 1e-17, float("nan"), float("inf"), "1e-8", True])
def test_bad_tol_is_refused_not_a_hang(tol):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="tol"):
        bifurcation(derive(ModelSpec("euclidean")), ("eta", [0.1, 0.3]), EUCLID, tol=tol)
    assert time.perf_counter() - t0 < 5


def test_smallest_tol_returns():
    t0 = time.perf_counter()
    bif = bifurcation(SADDLE_NODE, ("r", [-0.3, 0.7]), {}, tol=MIN_TOL)
    assert kinds(bif) == ["fold"] and bif.points[0].value == 0.0
    assert time.perf_counter() - t0 < 30


def test_bifurcation_arguments():
    with pytest.raises(TypeError, match="system must be"):
        bifurcation("x' = r + x^2", ("r", [0, 1]), {})
    with pytest.raises(ValueError, match="param"):
        bifurcation(SADDLE_NODE, ("s", [0, 1]), {})
    with pytest.raises(ValueError, match="values"):
        bifurcation(SADDLE_NODE, ("r", [1.0, 0.0]), {})
    with pytest.raises(ValueError, match="n_dense"):
        bifurcation(SADDLE_NODE, ("r", [0.0, 1.0]), {}, n_dense=1)
    with pytest.raises(ValueError, match="eta"):   # outside the parameter domain eta >= 0
        bifurcation(derive(ModelSpec("euclidean")), ("eta", [-0.1, 0.1]), EUCLID)


# -- threshold ------------------------------------------------------------------------------------


def _set(sols):
    return {sp.simplify(s) for s in sols}


def test_threshold_textbook_one_state():
    r = sp.Symbol("r")
    sn = threshold(SADDLE_NODE, "r")
    assert _set(sn.fold_solutions) == {0} and not sn.transcritical_solutions and not sn.pitchfork_solutions
    tc = threshold(TRANSCRITICAL, "r")
    assert _set(tc.transcritical_solutions) == {0} and not tc.fold_solutions
    pf = threshold(PITCHFORK, "r")
    assert _set(pf.pitchfork_solutions) == {0} and not pf.fold_solutions and not pf.transcritical_solutions
    assert "pitchfork" in pf.note
    assert sn.param == r and sn.hopf is None and not sn.hopf_solutions


def test_threshold_several_states():
    a = BRUSSELATOR.symbols["a"]
    br = threshold(BRUSSELATOR, "b")
    assert _set(br.hopf_solutions) == {1 + a**2} and not br.fold_solutions
    assert threshold(HOPF, "mu").hopf_solutions == (0,)
    lv = threshold(LOTKA_VOLTERRA, "a")   # was "fold at True, transcritical at [x + y]"
    assert _set(lv.fold_solutions) == {0} and not lv.hopf_solutions
    assert "True" not in repr(lv) and "False" not in repr(lv)
    for cond in (lv.fold, lv.transcritical, lv.hopf):
        assert cond is None or not (cond.free_symbols & set(LOTKA_VOLTERRA.states))
    assert "identically" in lv.note   # the centre's trace is 0 for every a


def test_threshold_ssl_modes():
    eta, sigma2, tau = sp.symbols("eta sigma2 tau")
    euclid = derive(ModelSpec("euclidean"))
    th = threshold(euclid, "eta")
    assert len(th.fold_solutions) == 1 and sp.simplify(th.fold_solutions[0] - 1 / (4 * (1 + sigma2))) == 0
    assert list(th.transcritical_solutions) == [0]
    # alpha_p drops out on the manifold: no condition (was "fold at False, transcritical at False")
    ap = threshold(euclid, "alpha_p")
    assert ap.fold is None and ap.transcritical is None and not ap.fold_solutions
    assert "True" not in repr(ap) and "False" not in repr(ap) and "alpha_p" in ap.note
    ema = threshold(derive(ModelSpec("euclidean", "ema")), "eta", hold=("tau",))
    assert ema.held == ("tau",) and sp.simplify(ema.fold_solutions[0] - tau**2 / (4 * (1 + sigma2))) == 0
    # the frozen-norm cosine sextic: the fold condition is quartic in eta, no closed form
    cos = threshold(derive(ModelSpec("cosine")), "eta")
    assert cos.fold is not None and not cos.fold_solutions and "no closed form" in cos.note


def test_threshold_refuses_what_it_cannot_serve():
    with pytest.raises(TypeError, match="system must be"):
        threshold("cubic", "eta")
    with pytest.raises(ValueError, match="not a parameter"):
        threshold(SADDLE_NODE, "q")
    nonpoly = ODESystem.from_equations({"x": "sin(x) - y", "y": "a*x - y"}, params=("a",))
    with pytest.raises(ValueError, match="bifurcation"):
        threshold(nonpoly, "a")


# -- roots_batch / regimes / shrinking_norms ---------------------------------------------------------


def test_roots_batch_on_the_ema_mode_with_tau_frozen():
    frozen = derive(ModelSpec("euclidean", "ema")).freeze("tau")
    eta = np.array([0.01, 0.05, 0.1])
    tau = np.array([0.8, 1.0, 1.2])
    r = roots_batch(frozen, {**EUCLID, "beta": 0.5, "eta": eta, "tau": tau})
    assert np.all(r.n_real == 3) and np.all(r.n_stable == 2) and np.all(r.collapsed_stable)
    for i in range(3):
        got = np.sort(r.roots[i].real[r.real[i]])
        np.testing.assert_allclose(got, [0.0, *tian(eta[i], tau[i])], atol=1e-12)
    with pytest.raises(ValueError, match=r"derivations\.freeze"):
        roots_batch(derive(ModelSpec("euclidean", "ema")), {**EUCLID, "beta": 0.5, "eta": 0.1})


def test_collapse_comes_from_data_not_names():
    eqs = {"p": "a*p - p**3"}
    with_collapse = ODESystem.from_equations(eqs, params=("a",), collapse=("p",))
    without = ODESystem.from_equations(eqs, params=("a",))
    renamed = ODESystem.from_equations({"q": "a*q - q**3"}, params=("a",), collapse=("q",))
    a = np.array([-1.0, 1.0])
    rc, rn, rr = (roots_batch(s, {"a": a}) for s in (with_collapse, without, renamed))
    # a = -1: only 0 (stable); a = 1: 0 unstable, +-1 stable
    np.testing.assert_array_equal(rc.collapsed_stable, [True, False])
    np.testing.assert_array_equal(rc.noncollapsed_stable, [False, True])
    np.testing.assert_array_equal(rr.collapsed_stable, rc.collapsed_stable)
    assert not rn.collapsed.any() and not rn.collapsed_stable.any()
    np.testing.assert_array_equal(rn.n_stable, [1, 2])


def test_regimes_without_collapse_count_stable_equilibria():
    """x' = a x - b x^3: stable equilibria a>0,b>0: +-sqrt(a/b) (2); a<0,b>0: 0 (1);
    a>0,b<0: none (0); a<0,b<0: 0 (1)."""
    system = ODESystem.from_equations({"x": "a*x - b*x**3"}, params=("a", "b"))
    reg = regimes(system, ("a", [-1.0, 1.0]), ("b", [-1.0, 1.0]), {})
    assert reg.names[:3] == ("no stable equilibrium", "1 stable equilibrium", "2 stable equilibria")
    assert reg.label(0, 0) == reg.names[1] and reg.label(1, 0) == reg.names[0]
    assert reg.label(0, 1) == reg.names[1] and reg.label(1, 1) == reg.names[2]
    with_collapse = ODESystem.from_equations({"x": "a*x - b*x**3"}, params=("a", "b"), collapse=("x",))
    reg = regimes(with_collapse, ("a", [-1.0, 1.0]), ("b", [-1.0, 1.0]), {})
    assert reg.names == REGIMES
    assert [reg.label(i, j) for j in range(2) for i in range(2)] == [
        "collapse only", "no stable equilibrium", "collapse only", "non-collapsed only"]


def test_scale_axis_reads_scaling_weights():
    """x' = x (a - x^2) - x with a -> a lambda^2: two stable equilibria +-sqrt(a lambda^2 - 1)
    iff a lambda^2 > 1; with a = 0.5 that is lambda > sqrt(2)."""
    system = ODESystem.from_equations({"x": "x*(a - x**2) - k*x"}, params=("a", "k"))
    lam = np.array([1.0, 1.3, 1.5, 2.0])
    reg = regimes(system, (SCALE, lam), ("k", [1.0]), {"a": 0.5}, scaling={"a": 2})
    expected = np.where(0.5 * lam**2 > 1, 2, 1)
    np.testing.assert_array_equal(reg.codes[0], expected)
    with pytest.raises(ValueError, match="scaling"):
        regimes(system, (SCALE, lam), ("k", [1.0]), {"a": 0.5})   # no system.scaling
    with pytest.raises(ValueError, match="scaling"):
        regimes(derive(ModelSpec("euclidean")), (SCALE, lam), ("eta", [0.1]), {"sigma2": 0.2, "alpha_p": 1.0})


def test_a_parameter_named_scale_is_an_ordinary_axis():
    """No axis name is reserved: x' = scale - x^2 has two equilibria (one stable) iff scale > 0."""
    system = ODESystem.from_equations({"x": "scale - k*x**2"}, params=("scale", "k"))
    reg = regimes(system, ("scale", [-1.0, 0.5, 2.0]), ("k", [1.0]), {})
    np.testing.assert_array_equal(reg.codes[0], [0, 1, 1])
    assert reg.x == "scale"


def test_shrinking_norms_with_explicit_scaling():
    """a_eff = a lambda^-2 = a e^{2 r t} grows; +-sqrt(a_eff - 1) exist (stable) once
    a_eff > 1: t* = ln(1/a)/(2 r); in x/lambda (weight 1) they are sqrt(a_eff - 1) e^{r t}."""
    system = ODESystem.from_equations({"x": "x*(a - x**2) - k*x"}, params=("a", "k"), collapse=("x",))
    a, rate = 0.25, 0.5
    t = np.linspace(0.0, 3.0, 31)
    path = shrinking_norms(system, t, {"a": a, "k": 1.0}, scaling={"a": -2, "x": 1}, rate=rate)
    t_star = math.log(1 / a) / (2 * rate)
    assert abs(path.t_emerge - t_star) <= 1e-8
    after = t > t_star
    np.testing.assert_allclose(path.p_stable[after], np.sqrt(a * np.exp(2 * rate * t[after]) - 1) * np.exp(rate * t[after]),
                               rtol=1e-9)
    assert np.all(np.isnan(path.p_stable[~after]))
    with pytest.raises(ValueError, match="rate"):
        shrinking_norms(system, t, {"a": a, "k": 1.0}, scaling={"a": -2}, rate="eta")


def test_lorenz_reports_both_symmetric_hopf_points():
    """C+ and C- lose stability together at r_H = s (s + b + 3) / (s - b - 1) (Sparrow 1982);
    each is a Hopf point of its own branch, at x = y = +-sqrt(b (r_H - 1)), z = r_H - 1."""
    lorenz = ODESystem.from_equations({"x": "s*(y - x)", "y": "x*(r - z) - y", "z": "x*y - b*z"}, params=("s", "r", "b"))
    s, b = 10.0, 8.0 / 3.0
    r_h = s * (s + b + 3) / (s - b - 1)
    bif = bifurcation(lorenz, ("r", np.linspace(20.0, 30.0, 11)), {"s": s, "b": b})
    hopf = sorted((p for p in bif.points if p.kind == "hopf"), key=lambda p: p.x[0])
    assert len(hopf) == 2
    for p, sign in zip(hopf, (-1, 1)):
        assert p.value == pytest.approx(r_h, rel=1e-9)
        np.testing.assert_allclose(p.x, [sign * np.sqrt(b * (r_h - 1)), sign * np.sqrt(b * (r_h - 1)), r_h - 1], rtol=1e-6)
