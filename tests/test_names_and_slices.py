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
