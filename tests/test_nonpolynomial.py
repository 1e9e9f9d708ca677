"""Non-polynomial and large systems: exact answers where numbers make a system rational (the
DirectPred exponent), an honest Newton search elsewhere, budgets instead of hangs.

References are closed forms computed here independently of the code under test (NumPy roots of
the polynomials the equilibrium conditions reduce to by hand, k pi for the pendulum).
"""

import warnings

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import brentq

from ncdyn import ModelSpec, ODESystem, bifurcation, derive, equilibria

DIRECTPRED = {"eta": 0.1, "beta": 0.5, "N_psi": 1.0, "N_phi": 1.0, "T": 0.5}


@pytest.fixture(scope="module")
def directpred_one_view():
    return derive(ModelSpec("cosine", "ema", predictor="directpred", views="one"))


def _positive_roots(coeffs):
    r = np.roots(coeffs)
    return np.sort(r[(np.abs(r.imag) < 1e-12) & (r.real > 0)].real)


# With N_psi = N_phi = 1, T = 1/2, the system is ds/dt = -2 eta s - 2 s^(1+a) g,
# dtau/dt = beta (1 - tau) + eta tau + s^a tau g, g = -tau + s^a / 2 + 2 s^(1+2a) tau.
# At s > 0: eta = -s^a g, so beta (1 - tau) = 0, tau = 1 and eta = v - v^2 / 2 - 2 v^(2 + 1/a) ... in v = s^a.


@pytest.mark.parametrize("one", [1.0, sp.Integer(1)], ids=["float", "sympy"])
def test_directpred_alpha_one_is_exact_with_the_collapsed_point_at_zero(directpred_one_view, one):
    eq = equilibria(directpred_one_view, {**DIRECTPRED, "alpha": one})
    assert eq.complete
    collapsed = [e for e in eq if e.point["s"] == 0.0]
    assert len(collapsed) == 1
    assert collapsed[0].point["tau"] == pytest.approx(0.5 / (0.5 - 0.1), rel=1e-14)  # beta / (beta - eta)
    assert collapsed[0].stable
    # s > 0: eta = s - s^2/2 - 2 s^4 at tau = 1
    expected = _positive_roots([-2, 0, -0.5, 1, -0.1])
    inner = sorted(e.point["s"] for e in eq if e.point["s"] > 0)
    np.testing.assert_allclose(inner, expected, rtol=1e-12)
    assert all(e.point["tau"] == pytest.approx(1.0, rel=1e-12) for e in eq if e.point["s"] > 0)


def test_directpred_half_power_finds_the_collapsed_equilibrium_exactly(directpred_one_view):
    eq = equilibria(directpred_one_view, {**DIRECTPRED, "alpha": 0.5})
    assert eq.complete and "s = u_s**2" in eq.method
    collapsed = [e for e in eq if e.point["s"] == 0.0]
    assert len(collapsed) == 1 and collapsed[0].collapsed
    assert collapsed[0].point["tau"] == pytest.approx(1.25, rel=1e-14)
    # s decays at the rate 2 eta from the linear term, the one-sided flow in u = sqrt(s) at eta:
    assert collapsed[0].stable and "not differentiable" in collapsed[0].reason
    assert sorted(collapsed[0].eigenvalues.real) == pytest.approx([-0.4, -0.1], rel=1e-12)
    # s > 0, v = sqrt(s): 0.1 = v - v^2/2 - 2 v^5
    v = _positive_roots([-2, 0, 0, -0.5, 1, -0.1])
    inner = [e for e in eq if e.point["s"] > 0]
    np.testing.assert_allclose([e.point["s"] for e in inner], v**2, rtol=1e-12)
    assert [e.stable for e in inner] == [False, True]


def test_directpred_bifurcation_in_eta_takes_the_exact_path(directpred_one_view):
    bif = bifurcation(directpred_one_view, ("eta", np.linspace(0.0, 0.6, 4)), {**DIRECTPRED, "alpha": 1.0})
    # the fold is the maximum of eta(s) = s - s^2/2 - 2 s^4: 1 - s - 8 s^3 = 0
    s_star = _positive_roots([-8, 0, -1, 1])[0]
    eta_fold = s_star - s_star**2 / 2 - 2 * s_star**4
    assert [(p.kind, round(p.value, 9)) for p in bif.points] == [("transcritical", 0.0), ("fold", round(eta_fold, 9))]
    fold = bif.points[1]
    assert fold.x[0] == pytest.approx(s_star, rel=1e-6)


PENDULUM = {"th": "w", "w": "-sin(th) - g*w"}


def test_pendulum_equilibria_are_proved_in_the_declared_box():
    pendulum = ODESystem.from_equations(PENDULUM, params=("g",), state_domain={"th": (-7, 7)})
    eq = equilibria(pendulum, {"g": 0.5})
    np.testing.assert_allclose([e.point["th"] for e in eq], np.pi * np.arange(-2, 3), atol=1e-12)
    assert all(e.point["w"] == 0.0 for e in eq)
    assert [e.stable for e in eq] == [True, False, True, False, True]
    assert "Krawczyk" in eq.method and "th in [-7, 7]" in eq.method
    assert not eq.complete  # w is unbounded: only the box w in [-10, 10] was searched


def test_interval_search_over_a_bounded_domain_is_complete():
    wave = ODESystem.from_equations({"x": "sin(x) - x/2"})
    eq = equilibria(wave, {}, domain={"x": (-5, 5)})
    root = brentq(lambda x: np.sin(x) - x / 2, 1.0, 3.0)
    assert eq.complete and "Krawczyk" in eq.method
    np.testing.assert_allclose([e.point["x"] for e in eq], [-root, 0.0, root], atol=1e-14)
    assert [e.stable for e in eq] == [True, False, True]


def test_a_zero_the_interval_search_cannot_isolate_is_not_given_a_hyperbolic_label():
    eq = equilibria(ODESystem.from_equations({"x": "(x - 1)**2*sin(x)"}), {}, domain={"x": (0.5, 2)})
    (double,) = eq
    assert double.point["x"] == pytest.approx(1.0, abs=1e-7)
    assert double.kind == "semi-stable" and double.stable is False  # (x - 1)^2 sin x > 0 on both sides
    assert "not proved unique" in double.note and not eq.complete


def test_newton_search_reports_its_box_and_what_it_left_out():
    pendulum = ODESystem.from_equations(PENDULUM, params=("g",))
    eq = equilibria(pendulum, {"g": 0.5}, n_starts=400)
    np.testing.assert_allclose([e.point["th"] for e in eq], np.pi * np.arange(-3, 4), atol=1e-12)
    assert "quasi-random" in eq.method and "th in [-10, 10]" in eq.method
    assert "outside the searched box" in eq.reason


def test_flat_nonlinearity_root_is_found():
    for n_starts in (None, 200):
        eq = equilibria(ODESystem.from_equations({"x": "tanh(x - 3)"}), {}, n_starts=n_starts)
        assert [e.point["x"] for e in eq] == [pytest.approx(3.0, abs=1e-12)]
        assert eq[0].stable is False


def test_bifurcation_of_transcendental_system_is_continued_not_counted():
    bif = bifurcation(ODESystem.from_equations({"x": "r - sin(x)"}, params=("r",)), ("r", np.linspace(0, 2, 21)), {})
    assert bif.points
    assert all(p.kind == "fold" and p.value == pytest.approx(1.0, abs=1e-6) for p in bif.points)
    # each fold sits where sin x = 1
    np.testing.assert_allclose(np.sin([p.x[0] for p in bif.points]), 1.0, atol=1e-6)


def _duffing_chain(n=6):
    eqs = {}
    for i in range(1, n + 1):
        left = f"x{i - 1}" if i > 1 else "0"
        right = f"x{i + 1}" if i < n else "0"
        eqs[f"x{i}"] = f"v{i}"
        eqs[f"v{i}"] = f"-k*x{i} - g*v{i} + c*({left} + {right} - 2*x{i}) - x{i}**3"
    return ODESystem.from_equations(eqs, params=("k", "g", "c"))


def test_large_polynomial_system_falls_back_within_budget():
    eq = equilibria(_duffing_chain(), {"k": 1.0, "g": 0.5, "c": 0.3}, n_starts=64)
    assert not eq.complete
    assert "12 states > 8" in eq.reason and "Newton used instead" in eq.reason
    # k > 0: the potential is strictly convex, the origin is the only equilibrium, and it is stable
    assert len(eq) == 1 and np.all(eq[0].x == 0.0) and eq[0].stable


def test_time_budget_falls_back(monkeypatch):
    import dynamics._equilibria as module

    monkeypatch.setitem(module.EXACT_BUDGET, "seconds", 1e-3)
    cubic = ODESystem.from_equations({"x": "y - x**3 + a", "y": "x - y**3 + z", "z": "x*y - z**3 + 1"}, params=("a",))
    eq = equilibria(cubic, {"a": 0.5}, n_starts=64)
    assert "stopped after" in eq.reason and not eq.complete
    assert len(eq) >= 1 and max(e.residual for e in eq) < 1e-10


def test_no_runtime_warning_leaks_from_exact_analyses(directpred_one_view):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        equilibria(directpred_one_view, {**DIRECTPRED, "alpha": 1.0})
        equilibria(ODESystem.from_equations({"x": "-x", "y": "-2*y + x**2"}), {})


@pytest.mark.parametrize("spec", [
    ModelSpec("euclidean", predictor="directpred"),
    ModelSpec("euclidean", predictor="directpred", eps=True),
    ModelSpec("isoloss-euclidean", predictor="directpred"),
    ModelSpec("cosine", "ema", predictor="directpred"),
], ids=["euclidean", "eps", "isoloss", "cosine-ema"])
def test_every_directpred_collapsed_point_is_exact_with_its_one_sided_stability(spec):
    system = derive(spec)
    values = {"sigma2": 0.2, "eta": 0.05, "alpha": 0.5, "beta": 0.5, "eps": 0.01, "N_psi": 1.0, "N_phi": 1.0, "T": 0.3}
    params = {k: v for k, v in values.items() if k in system.param_names}
    found = equilibria(system, params)
    assert found.complete
    (collapsed,) = [e for e in found if e.point["s"] == 0.0]
    # the one-sided flow just inside s > 0, from the original right-hand side
    f = system.to_numpy()
    x = np.array(collapsed.x)
    x[system.state_names.index("s")] = 1e-10
    rate = f(0.0, x, params)[system.state_names.index("s")]
    assert collapsed.stable == (rate < 0)


@pytest.mark.parametrize("rhs, stable", [
    ("s**0.5 - s", False),          # ds/dt ~ +sqrt(s): pushed into s > 0
    ("(s - 1)*s**0.5", True),       # ds/dt ~ -sqrt(s): s = 0 reached in finite time
    ("s**(1/3) - s", False),
])
def test_a_non_lipschitz_boundary_point_is_decided_by_the_one_sided_flow(rhs, stable):
    system = ODESystem.from_equations({"s": rhs}, state_domain={"s": (0, None)})
    found = equilibria(system, {})
    assert found.complete and [e.point["s"] for e in found] == [0.0, 1.0]
    assert found[0].stable is stable and found[1].stable is not stable
    # the sign of the right-hand side just inside the domain, evaluated directly
    assert bool(system.to_numpy()(0.0, np.array([1e-8]), {})[0] < 0) == stable


def test_a_fractional_power_without_a_declared_domain_is_searched_numerically():
    found = equilibria(ODESystem.from_equations({"x": "sqrt(x) - 1"}), {})
    assert [e.point["x"] for e in found] == [pytest.approx(1.0, abs=1e-12)] and not found.complete


def test_a_shifted_domain_is_classified_in_the_original_states():
    # -s^a (s - 4)^2 on [4, 9]: a double zero at the lower end, attracting from inside only
    for alpha in (1.0, 0.5):
        system = ODESystem.from_equations({"s": "-s**a*(s - 4)**2"}, params=("a",), state_domain={"s": (4, 9)})
        (point,) = equilibria(system, {"a": alpha})
        assert point.point["s"] == 4.0 and point.kind == "non-hyperbolic stable node (boundary)"


def test_bifurcation_keeps_the_domain_and_the_boundary_branch():
    shifted = ODESystem.from_equations({"s": "s**a*(r - s)"}, params=("a", "r"), state_domain={"s": (4, 9)})
    bif = bifurcation(shifted, ("r", np.linspace(4.5, 8.5, 5)), {"a": 0.5})
    (branch,) = bif.branches
    np.testing.assert_allclose(branch.x[:, 0], branch.values, rtol=1e-12)
    # r sqrt(s) - s: s = 0 attracts in finite time for r < 0 and repels for r > 0 (continued)
    root = ODESystem.from_equations({"s": "r*s**0.5 - s"}, params=("r",), state_domain={"s": (0, None)})
    bif = bifurcation(root, ("r", np.linspace(-1.0, 1.0, 5)), {})
    zero = [b for b in bif.branches if np.all(b.x[:, 0] == 0.0)]
    assert len(zero) == 1 and list(zero[0].stable) == [True, True, True, False, False]
