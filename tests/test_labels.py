"""Labels that match the mathematics: the kind of a bifurcation point (threshold and bifurcation
decide it alike), closed forms of conditions polynomial in a power of the parameter, solutions
that are not real on the parameter domain, and the stability of multiple roots on regime maps.

References (independent of the code under test):
- Lorenz, x' = s (y - x), y' = x (r - z) - y, z' = x y - b z: the origin loses stability at
  r = 1, where C+- = (+-sqrt(b (r - 1)), +-sqrt(b (r - 1)), r - 1) are born, a pitchfork
  (Z2 symmetry (x, y, z) -> (-x, -y, z)); Strogatz, Nonlinear Dynamics and Chaos, 9.2.
- Normal forms x' = r - x^2 (fold), r x - x^2 (transcritical), r x - x^3 (pitchfork) at r = 0.
- The cusp x' = h + r x - x^3: a double root where the discriminant 4 r^3 - 27 h^2 vanishes,
  r = (27 h^2 / 4)^(1/3), h = +-2 (r/3)^(3/2) (Strogatz 3.6).
- Selkov (glycolysis), x' = -x + a y + x^2 y, y' = b - a y - x^2 y: the equilibrium
  (b, b/(a + b^2)), det J = a + b^2, trace J = -(b^4 + (2a - 1) b^2 + a + a^2)/(a + b^2), so
  Hopf where b^2 = (1 - 2a +- sqrt(1 - 8a))/2 (Strogatz 7.3); the fold a + b^2 = 0 needs a <= 0.
- h + r x - x^3 at (h, r) = (0.25, 0.75) is -(x + 1/2)^2 (x - 1): x = 1 stable (f' = -9/4),
  x = -1/2 a double root, semi-stable; at (0, 0) it is -x^3, a triple root with negative
  leading coefficient, stable.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from derivations import ODESystem
from dynamics import bifurcation, regimes, roots_batch, threshold
from dynamics._normal_form import normal_form_kind

LORENZ = ODESystem.from_equations({"x": "s*(y - x)", "y": "x*(r - z) - y", "z": "x*y - b*z"},
                                  params=("s", "r", "b"), name="Lorenz")
CUSP = ODESystem.from_equations({"x": "h + r*x - x**3"}, params=("h", "r"), name="cusp")
SELKOV = dict(equations={"x": "-x + a*y + x**2*y", "y": "b - a*y - x**2*y"}, params=("a", "b"))


def _values(sols, **at):
    """The closed forms at numeric values of their symbols (matched by name)."""
    return [complex(sp.N(s.subs({sym: at[sym.name] for sym in s.free_symbols}))) for s in sols]


# -- 1. one decision of the kind -------------------------------------------------------------------


def test_threshold_labels_the_lorenz_point_at_r_1_a_pitchfork():
    th = threshold(LORENZ, "r")
    assert list(th.pitchfork_solutions) == [1]
    assert not th.fold_solutions and not th.transcritical_solutions
    assert "pitchfork at r = 1" in repr(th)


def test_bifurcation_agrees_on_lorenz():
    bif = bifurcation(LORENZ, ("r", np.linspace(0.5, 1.5, 21)), {"s": 10.0, "b": 8 / 3})
    near = [p for p in bif.points if abs(p.value - 1.0) < 1e-6]
    assert [p.kind for p in near] == ["pitchfork"]


def test_threshold_textbook_kinds():
    for rhs, kind in (("r*x - x**3", "pitchfork"), ("r*x - x**2", "transcritical"), ("r - x**2", "fold")):
        th = threshold(ODESystem.from_equations({"x": rhs}, params=("r",)), "r")
        found = {"fold": th.fold_solutions, "transcritical": th.transcritical_solutions,
                 "pitchfork": th.pitchfork_solutions}
        assert {k: list(v) for k, v in found.items() if v} == {kind: [0]}, rhs


def test_normal_form_kind_from_closed_form_coefficients():
    # Lorenz at r = 1, origin, s = 10, b = 8/3: J, f_r = (0, x, 0) = 0, the Hessian of -x z and x y
    s, b = 10.0, 8 / 3
    J = np.array([[-s, s, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, -b]])
    H = np.zeros((3, 3, 3))
    H[1, 0, 2] = H[1, 2, 0] = -1.0
    H[2, 0, 1] = H[2, 1, 0] = 1.0
    assert normal_form_kind(J, np.zeros(3), H) == "pitchfork"
    # its cubic coefficient comes from the quadratic terms through the centre manifold alone
    # (D^3 f = 0): l . 3 D^2 f(q, h) with J h = -D^2 f(q, q), non-zero
    assert normal_form_kind(J, np.zeros(3), H, third=np.zeros((3, 3, 3, 3))) == "pitchfork"
    assert normal_form_kind([[0.0]], [0.0], [[[0.0]]], third=[[[[-6.0]]]]) == "pitchfork"  # r x - x^3
    assert normal_form_kind([[0.0]], [0.0], [[[0.0]]], third=[[[[0.0]]]]) == "degenerate"  # r x
    assert normal_form_kind([[0.0]], [1.0], [[[-2.0]]]) == "fold"           # r - x^2
    assert normal_form_kind([[0.0]], [0.0], [[[-2.0]]]) == "transcritical"  # r x - x^2
    assert normal_form_kind([[0.0]], [0.0], [[[0.0]]]) == "pitchfork"       # r x - x^3


# -- 2. closed forms in a power of the parameter ----------------------------------------------------


def test_cusp_fold_in_r_has_the_cube_root_closed_form():
    th = threshold(CUSP, "r")
    assert "no closed form" not in th.note
    assert len(th.fold_solutions) == 1
    for h in (0.3, -0.7, 2.0):
        (got,) = _values(th.fold_solutions, h=h)
        assert abs(got.imag) < 1e-12 and math.isclose(got.real, (27 * h**2 / 4) ** (1 / 3), rel_tol=1e-12)


def test_cusp_fold_in_h():
    th = threshold(CUSP, "h")
    for r in (0.3, 0.75, 4.0):
        got = sorted(z.real for z in _values(th.fold_solutions, r=r))
        want = 2 * (r / 3) ** 1.5
        assert np.allclose(got, [-want, want], rtol=1e-12)
    assert "real only where r**3 >= 0" in th.note


def test_selkov_hopf_in_b_closed_form():
    selkov = ODESystem.from_equations(**SELKOV, param_domain={"a": (0, None), "b": (0, None)})
    th = threshold(selkov, "b")
    assert "no closed form" not in th.note and len(th.hopf_solutions) == 2
    for a in (0.02, 0.08, 0.12):
        got = sorted(z.real for z in _values(th.hopf_solutions, a=a))
        want = sorted(math.sqrt((1 - 2 * a + sg * math.sqrt(1 - 8 * a)) / 2) for sg in (-1, 1))
        assert np.allclose(got, want, rtol=1e-12)
        for b in got:  # trace J at (b, b/(a + b^2)), by hand
            x, y = b, b / (a + b * b)
            assert abs((-1 + 2 * x * y) - (a + x * x)) < 1e-12


# -- 3. solutions not real on the parameter domain ----------------------------------------------------


def test_selkov_folds_dropped_where_a_is_nonnegative():
    selkov = ODESystem.from_equations(**SELKOV, param_domain={"a": (0, None)})
    th = threshold(selkov, "b")
    assert not th.fold_solutions
    assert "dropped solutions" in th.note and "b = sqrt(-a)" in th.note and "-a <= 0" in th.note


def test_selkov_folds_kept_with_their_reality_condition_without_a_domain():
    th = threshold(ODESystem.from_equations(**SELKOV), "b")
    a = sp.Symbol("a")
    assert {sp.simplify(s**2) for s in th.fold_solutions} == {-a}
    assert "real only where -a >= 0" in th.note


def test_a_negative_parameter_power_is_dropped():
    # x' = r^2 - a - x^2: a double root where r^2 = a; r = -sqrt(a) is outside r >= 0, said so
    sys = ODESystem.from_equations({"x": "r**2 - a - x**2"}, params=("r", "a"),
                                   param_domain={"a": sp.Interval.open(0, sp.oo), "r": (0, None)})
    th = threshold(sys, "r")
    a = sp.Symbol("a")
    assert [sp.simplify(s**2) for s in th.fold_solutions] == [a]
    assert "r = -sqrt(a)" in th.note and "outside the domain" in th.note


# -- 4. multiple roots on regime maps ------------------------------------------------------------------


def test_regimes_at_the_cusp_and_the_fold():
    g = regimes(CUSP, ("h", [0.0, 0.25]), ("r", [0.0, 0.75]), {"h": 0.0, "r": 0.0})
    assert g.label(0, 0) == "1 stable equilibrium"   # -x^3: stable triple root
    assert g.label(1, 1) == "1 stable equilibrium"   # -(x + 1/2)^2 (x - 1)
    assert g.label(0, 1) == "2 stable equilibria"    # 0.75 x - x^3: +-sqrt(0.75)
    assert g.label(1, 0) == "1 stable equilibrium"   # 0.25 - x^3


def test_roots_batch_multiplicities_at_float_folds():
    r = np.array([0.75, 0.3, 1.7, 12.0])
    h = 2 * (r / 3) ** 1.5                          # the fold, rounded to float
    out = roots_batch(CUSP, {"h": np.concatenate([[0.0], h]), "r": np.concatenate([[0.0], r])})
    assert list(out.multiplicity[0]) == [3, 3, 3] and bool(out.stable[0, 0]) and out.n_stable[0] == 1
    for i, ri in enumerate(r, start=1):
        x = out.roots[i].real
        assert np.allclose(x, [-math.sqrt(ri / 3)] * 2 + [2 * math.sqrt(ri / 3)], rtol=1e-6)
        assert list(out.multiplicity[i]) == [2, 2, 1]
        assert list(out.stable[i]) == [False, False, True] and out.n_stable[i] == 1


def test_regimes_with_a_collapse_state_label_the_triple_root_stable():
    cusp = ODESystem.from_equations({"x": "h + r*x - x**3"}, params=("h", "r"), collapse=("x",))
    g = regimes(cusp, ("h", [0.0, 0.25]), ("r", [0.0, 0.75]), {"h": 0.0, "r": 0.0})
    assert g.label(0, 0) == "collapse only"
    assert g.label(1, 1) == "non-collapsed only"


def test_roots_batch_odd_and_even_multiplicity_at_the_origin():
    # -x^5 (odd m, a_5 = -1 < 0): stable; -x^4 (even m): semi-stable; x^3 (a_3 > 0): unstable
    for rhs, stable in (("r*x - x**5", True), ("r*x - x**4", False), ("r*x + x**3", False)):
        out = roots_batch(ODESystem.from_equations({"x": rhs}, params=("r",)), {"r": np.array([0.0])})
        m = out.multiplicity[0][np.argmin(np.abs(out.roots[0]))]
        assert m == len(out.roots[0]) and out.n_stable[0] == int(stable), rhs
