"""Kinds of equilibria that match the mathematics, branches joined through their branch points,
and phase planes of slices that compute only the slice's own equilibria.

References (independent of the code under test): polar forms of the planar systems (r' = r^5,
r' = -r^3, r' = 0), the Guckenheimer-Holmes first Lyapunov coefficient (r' = a r^3 + ...), the
first integral y^2/2 + x^2/2 - x^4/4 of x'' = -x + x^3, the Lorenz characteristic polynomials
(Sparrow 1982): at 0, (l + b)(l^2 + (s + 1) l + s (1 - r)); at C+- = (+-sqrt(b (r - 1)),
+-sqrt(b (r - 1)), r - 1), l^3 + (s + b + 1) l^2 + b (s + r) l + 2 b s (r - 1); the Selkov
equilibrium (b, b/(a + b^2)); and the frozen field of coupled Duffing oscillators, whose zeros
solve a cubic per axis.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ncdyn import ODESystem  # noqa: E402
from dynamics import bifurcation, classify, equilibria, phase_plane  # noqa: E402
from dynamics._plots import KIND_STYLE  # noqa: E402
from dynamics._stability import KINDS  # noqa: E402

LORENZ = ODESystem.from_equations({"x": "s*(y - x)", "y": "r*x - y - x*z", "z": "x*y - b*z"}, params=("s", "r", "b"),
                                  name="Lorenz")
S, B = 10.0, 8.0 / 3.0


# -- a pair +-i omega: weak foci, centres, and what stays undecided ------------------------------------


def test_weak_unstable_focus_with_vanishing_first_lyapunov_coefficient_is_not_called_a_centre():
    """x' = -y + x r^4, y' = x + y r^4: r' = r^5 > 0, an unstable focus; l1 = 0 (no cubic terms)."""
    system = ODESystem.from_equations({"x": "-y + x*(x**2 + y**2)**2", "y": "x + y*(x**2 + y**2)**2"})
    c = classify(system, [0.0, 0.0], {})
    np.testing.assert_allclose(sorted(c.eigenvalues.imag), [-1.0, 1.0], atol=1e-14)
    assert c.lyapunov == 0.0
    assert c.kind == "weak focus or centre (undecided)" and c.stable is None and not c.hyperbolic
    assert "centre" != c.kind and "higher-order" in c.reason
    (e,) = equilibria(system, {})
    assert e.kind == "weak focus or centre (undecided)" and e.stable is None


def test_weak_stable_focus_is_named_by_the_sign_of_the_first_lyapunov_coefficient():
    """x' = -y - x r^2, y' = x - y r^2: r' = -r^3, a = -1 (Guckenheimer-Holmes)."""
    system = ODESystem.from_equations({"x": "-y - x*(x**2 + y**2)", "y": "x - y*(x**2 + y**2)"})
    c = classify(system, [0.0, 0.0], {})
    assert c.kind == "weak stable focus" and c.stable is True and abs(c.lyapunov + 1.0) <= 1e-12
    u = classify(ODESystem.from_equations({"x": "-y + x*(x**2 + y**2)", "y": "x + y*(x**2 + y**2)"}), [0.0, 0.0], {})
    assert u.kind == "weak unstable focus" and u.stable is False and abs(u.lyapunov - 1.0) <= 1e-12


@pytest.mark.parametrize("eqs, why", [
    ({"x": "-y", "y": "x"}, "affine"),                              # linear: r' = 0
    ({"x": "-2*y", "y": "2*x", "z": "-z"}, "affine"),               # linear in three states
    ({"x": "y", "y": "-x + x**3"}, "divergence-free"),              # H = y^2/2 + x^2/2 - x^4/4
])
def test_proved_centres(eqs, why):
    system = ODESystem.from_equations(eqs)
    c = classify(system, [0.0] * system.n_states, {})
    assert c.kind == "centre" and c.stable is None and c.lyapunov == 0.0
    assert why in c.reason


def test_lotka_volterra_centre_is_proved_by_its_integrating_factor():
    """x' = x (a - b y), y' = y (d x - c): mu = 1/(x y) makes the field divergence-free."""
    lv = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"))
    e = [e for e in equilibria(lv, {"a": 1.0, "b": 0.5, "c": 0.75, "d": 0.1}) if e.x[0] > 0][0]
    np.testing.assert_allclose(e.x, [7.5, 2.0], rtol=1e-14)
    assert e.kind == "centre" and "|x|^(-1) |y|^(-1)" in e.reason


def test_every_kind_has_a_plot_style():
    assert set(KINDS) <= set(KIND_STYLE)


# -- saddle-focus --------------------------------------------------------------------------------------


def test_lorenz_points_are_a_saddle_and_two_saddle_foci():
    r = 28.0
    eqs = equilibria(LORENZ, {"s": S, "r": r, "b": B})
    assert len(eqs) == 3
    c = math.sqrt(B * (r - 1))
    for e in eqs:
        if np.max(np.abs(e.x)) <= 1e-12:
            ref = np.concatenate([[-B], np.roots([1.0, S + 1, S * (1 - r)])])
            assert e.kind == "saddle" and e.index == 1
        else:
            np.testing.assert_allclose(np.abs(e.x), [c, c, r - 1], rtol=1e-13)
            ref = np.roots([1.0, S + B + 1, B * (S + r), 2 * B * S * (r - 1)])
            assert e.kind == "saddle-focus" and e.index == 2 and e.stable is False and e.hyperbolic
            assert "among the unstable ones" in e.reason
            # one negative real eigenvalue and a complex pair with positive real part
            assert np.sum(np.abs(ref.imag) > 1) == 2 and np.all(ref.real[np.abs(ref.imag) > 1] > 0)
        np.testing.assert_allclose(np.sort_complex(e.eigenvalues), np.sort_complex(ref), rtol=1e-10, atol=1e-10)


def test_saddle_focus_with_the_complex_pair_on_the_stable_side():
    """x' = -x - 2y, y' = 2x - y, z' = z: eigenvalues -1 +- 2i and 1."""
    system = ODESystem.from_equations({"x": "-x - 2*y", "y": "2*x - y", "z": "z"})
    c = classify(system, [0.0, 0.0, 0.0], {})
    assert c.kind == "saddle-focus" and c.index == 1 and "among the stable ones" in c.reason
    planar = classify(ODESystem.from_equations({"x": "x", "y": "-y"}), [0.0, 0.0], {})
    assert planar.kind == "saddle"


# -- branches joined through branch points ---------------------------------------------------------------

SELKOV = ODESystem.from_equations({"x": "-x + a*y + x**2*y", "y": "b - a*y - x**2*y"}, params=("a", "b"), name="Selkov")


@pytest.mark.parametrize("values", [np.linspace(0.01, 2.0, 41), np.linspace(0.1, 1.0, 30), np.linspace(0.0, 1.5, 16)])
def test_selkov_has_one_branch_through_both_hopf_points(values):
    """The single equilibrium (b, b/(a + b^2)); Hopf where trace J = 0: b^4 + (2a - 1) b^2 + a + a^2 = 0."""
    a = 0.1
    bif = bifurcation(SELKOV, ("b", values), {"a": a})
    (br,) = bif.branches
    np.testing.assert_array_equal(br.values, values)
    np.testing.assert_allclose(br.x, np.column_stack([values, values / (a + values**2)]), rtol=1e-10, atol=1e-14)
    b_h = np.sqrt(((1 - 2 * a) + np.array([-1, 1]) * math.sqrt(1 - 8 * a)) / 2)
    assert [p.kind for p in bif.points] == ["hopf", "hopf"]
    np.testing.assert_allclose([p.value for p in bif.points], b_h, rtol=1e-8)
    away = np.min(np.abs(values[:, None] - b_h[None, :]), axis=1) > 1e-6
    np.testing.assert_array_equal(br.stable[away], ((values < b_h[0]) | (values > b_h[1]))[away])


@pytest.mark.parametrize("values", [np.linspace(0.0, 30.0, 31), np.linspace(0.0, 30.0, 40)])
def test_lorenz_branches_leave_the_origin_at_the_pitchfork(values):
    """Origin for every r; C+- = (+-sqrt(b (r - 1)), +-sqrt(b (r - 1)), r - 1) born at r = 1."""
    bif = bifurcation(LORENZ, ("r", values), {"s": S, "b": B})
    (pitch,) = [p for p in bif.points if p.kind == "pitchfork"]
    assert pitch.value == 1.0 and np.max(np.abs(pitch.x)) <= 1e-12
    assert len(bif.branches) == 3
    origin = [br for br in bif.branches if np.max(np.abs(br.x)) <= 1e-12]
    assert len(origin) == 1 and origin[0].values[0] == values[0] and origin[0].values[-1] == values[-1]
    signs = []
    for br in bif.branches:
        if br is origin[0]:
            continue
        assert br.values[0] == 1.0 and np.max(np.abs(br.x[0])) <= 1e-12   # the branch point itself
        assert br.values[-1] == values[-1] and np.all(np.diff(br.values) > 0)
        c = np.sign(br.x[-1, 0]) * np.sqrt(B * (br.values - 1))
        np.testing.assert_allclose(br.x, np.column_stack([c, c, br.values - 1]), rtol=1e-10, atol=1e-12)
        signs.append(np.sign(br.x[-1, 0]))
    assert sorted(signs) == [-1.0, 1.0]


# -- slices of larger systems: the frozen field's own equilibria -------------------------------------------


def _duffing_chain(n: int) -> ODESystem:
    """x_i' = v_i, v_i' = -k x_i - g v_i + c (x_{i-1} + x_{i+1} - 2 x_i) - x_i^3, x_0 = x_{n+1} = 0."""
    eqs = {}
    for i in range(1, n + 1):
        left, right = (f"x{i - 1}" if i > 1 else "0"), (f"x{i + 1}" if i < n else "0")
        eqs[f"x{i}"] = f"v{i}"
        eqs[f"v{i}"] = f"-k*x{i} - g*v{i} + c*({left} + {right} - 2*x{i}) - x{i}**3"
    return ODESystem.from_equations(eqs, params=("k", "g", "c"), name="Duffing chain")


def test_slice_of_a_twelve_state_system_has_the_frozen_fields_equilibria():
    """On the (x3, v3) slice with every other state at 0.2 the frozen field is x3' = v3,
    v3' = -k x3 - g v3 + c (0.4 - 2 x3) - x3^3: one zero (x*, 0) with x*^3 + (k + 2c) x* - 0.4 c = 0
    (Cardano), J = [[0, 1], [-(k + 2c + 3 x*^2), -g]]. The whole system is not solved."""
    system = _duffing_chain(6)
    assert system.n_states == 12
    k, g, c = 1.0, 0.5, 0.3
    fixed = {n: 0.2 for n in system.state_names if n not in ("x3", "v3")}
    plane = phase_plane(system, {"k": k, "g": g, "c": c}, x="x3", y="v3", fixed=fixed, trajectories=0, manifolds=False)
    P, Q = k + 2 * c, -0.4 * c
    root = math.sqrt(Q**2 / 4 + P**3 / 27)
    xs = np.cbrt(-Q / 2 + root) + np.cbrt(-Q / 2 - root)
    assert abs(xs**3 + P * xs + Q) <= 1e-14
    (e,) = plane.equilibria
    np.testing.assert_allclose(plane.points, [[xs, 0.0]], rtol=1e-13, atol=1e-15)
    assert dict(e.point) == pytest.approx({"x3": xs, "v3": 0.0}, rel=1e-13, abs=1e-15)
    lam = np.roots([1.0, g, P + 3 * xs**2])
    np.testing.assert_allclose(np.sort_complex(e.eigenvalues), np.sort_complex(lam), rtol=1e-12)
    assert e.kind == "stable focus"
    assert not plane.invariant and plane.curve_label == "frozen-field curves"
    assert "frozen-field curves" in repr(plane) and "orbits" not in repr(plane)
    assert "frozen field" in plane._repr_html_()


def test_frozen_field_zeros_that_are_no_equilibria_of_the_system_are_shown():
    """x' = y, y' = -x + z, z' = 1: no equilibrium at all, but on the slice z = 0.5 the frozen
    field (y, 0.5 - x) vanishes at (0.5, 0), a centre of that field."""
    system = ODESystem.from_equations({"x": "y", "y": "-x + z", "z": "1"})
    assert len(equilibria(system, {})) == 0
    plane = phase_plane(system, {}, fixed={"z": 0.5}, trajectories=1, manifolds=False, backend="scipy")
    (e,) = plane.equilibria
    np.testing.assert_allclose(e.x, [0.5, 0.0], atol=1e-15)
    assert e.kind == "centre"


def test_two_state_planes_and_invariant_slices_keep_trajectories():
    lv = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"))
    plane = phase_plane(lv, {"a": 1.0, "b": 0.5, "c": 0.75, "d": 0.25}, trajectories=1, manifolds=False,
                        backend="scipy")
    assert plane.invariant and plane.curve_label == "trajectories" and "1 orbits" in repr(plane)
    np.testing.assert_allclose(plane.points, [[0.0, 0.0], [3.0, 2.0]], atol=1e-14)


def test_branches_meeting_at_a_fold_share_its_point_and_leave_the_transcritical_point():
    """Tian's mode on s = p^2: p' = p^2 - c p^3 - eta p, p+- = (1 +- sqrt(1 - 4 c eta))/(2c): both
    end at the fold (1/(4c), 1/(2c)); p- leaves x = 0 at the transcritical point eta = 0."""
    from derivations import ModelSpec, derive

    c = 1.2
    bif = bifurcation(derive(ModelSpec("euclidean")), ("eta", np.linspace(0.0, 0.4, 17)), {"sigma2": 0.2, "alpha_p": 1.0})
    fold = next(p for p in bif.points if p.kind == "fold")
    moving = [br for br in bif.branches if np.max(np.abs(br.x)) > 1e-12]
    assert len(bif.branches) == 3 and len(moving) == 2
    for br in moving:
        assert br.values[-1] == fold.value and abs(br.x[-1, 0] - 1 / (2 * c)) <= 1e-6
        upper = br.x[0, 0] > 0.5
        sign = 1.0 if upper else -1.0
        ok = br.values < fold.value - 1e-6
        np.testing.assert_allclose(br.x[ok, 0], (1 + sign * np.sqrt(1 - 4 * c * br.values[ok])) / (2 * c), atol=1e-9)
        assert br.values[0] == 0.0
    lower = min(moving, key=lambda br: br.x[0, 0])
    assert lower.x[0, 0] == 0.0
