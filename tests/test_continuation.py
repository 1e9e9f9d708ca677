"""continue_equilibrium: pseudo-arclength branches of any flow or map against closed forms
(the saddle-node, transcritical and pitchfork normal forms, the Hopf normal form's frequency
and first Lyapunov coefficient, the Brusselator, DirectPred's s**alpha)."""

import numpy as np
import pytest

from ncdyn import ModelSpec, ODESystem, derive
from dynamics import Branch, bifurcation, continue_equilibrium

S = ODESystem.from_equations


def test_a_branch_passes_both_folds_of_an_s_curve():
    """x' = r + x - x^3/3: folds at r = -+2/3 (x = +-1) with a = -x* (x' = beta + a y^2, beta
    increasing with r); the branch turns at each, its values going back, and the middle part
    between them is unstable (f'(x) = 1 - x^2 > 0)."""
    s_curve = S({"x": "r + x - x**3/3"}, params=("r",))
    br = continue_equilibrium(s_curve, [-2.2], {"r": (-2, 2)}, {"r": 2.2 - 2.2**3 / 3})
    folds = sorted((p for p in br.points if p.kind == "fold"), key=lambda p: p.value)
    assert [round(p.value, 12) for p in folds] == [round(-2 / 3, 12), round(2 / 3, 12)]
    np.testing.assert_allclose([p.x[0] for p in folds], [1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose([p.coefficients["a"] for p in folds], [-1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(br.values, -(br.x[:, 0] - br.x[:, 0] ** 3 / 3), atol=1e-10)
    np.testing.assert_array_equal(br.stable, np.abs(br.x[:, 0]) > 1)
    assert br.x[0, 0] < -1.9 and br.x[-1, 0] > 1.9 and br.status == "start: left_range, end: left_range"
    np.testing.assert_allclose(br.eigenvalues[:, 0].real, 1 - br.x[:, 0] ** 2, atol=1e-10)
    assert isinstance(br, Branch) and "fold" in repr(br) and "<table>" in br._repr_html_()


@pytest.mark.parametrize("rhs, other", [("r*x - x**2", lambda r: r), ("r*x - x**3", lambda r: np.sqrt(np.maximum(r, 0)))])
def test_branch_switching_at_transcritical_and_pitchfork_points(rhs, other):
    system = S({"x": rhs}, params=("r",))
    trivial = continue_equilibrium(system, [0.0], {"r": (-1, 1)}, {"r": -1})
    (bp,) = trivial.points
    assert bp.kind == "branch point" and abs(bp.value) < 1e-8
    np.testing.assert_array_equal(trivial.stable, trivial.values < 0)
    new = continue_equilibrium(system, bp, {"r": (-1, 1)}, {})
    upper = new.x[:, 0] > 1e-6
    np.testing.assert_allclose(new.x[upper, 0], other(new.values[upper]), rtol=1e-9, atol=1e-12)
    assert new.x[:, 0].max() == pytest.approx(other(1.0), rel=1e-9)
    assert np.all(new.stable[upper])


def test_hopf_normal_form_and_the_brusselator():
    """x' = mu x - y - x r^2, y' = x + mu y - y r^2: Hopf at mu = 0 with omega = 1 and
    l1 = -2 (Kuznetsov's normalisation <q, q> = 1: |x|^2 = 2 |z|^2). The Brusselator
    x' = a - (b + 1) x + x^2 y, y' = b x - x^2 y: Hopf at b = 1 + a^2, omega = a."""
    normal = S({"x": "mu*x - y - x*(x**2+y**2)", "y": "x + mu*y - y*(x**2+y**2)"}, params=("mu",))
    br = continue_equilibrium(normal, [0.0, 0.0], {"mu": (-1, 1)}, {"mu": -1})
    (h,) = br.points
    assert h.kind == "hopf" and abs(h.value) < 1e-9
    assert h.coefficients["omega"] == pytest.approx(1.0, rel=1e-9) and h.coefficients["l1"] == pytest.approx(-2.0, rel=1e-9)
    bru = S({"x": "a - (b + 1)*x + x**2*y", "y": "b*x - x**2*y"}, params=("a", "b"))
    for a in (0.5, 2.0):
        br = continue_equilibrium(bru, [a, 1.0 / a], {"b": (0.1, 8)}, {"a": a, "b": 1.0})
        (h,) = [p for p in br.points if p.kind == "hopf"]
        assert h.value == pytest.approx(1 + a * a, rel=1e-9) and h.coefficients["omega"] == pytest.approx(a, rel=1e-8)
        np.testing.assert_allclose(br.x, np.tile([a, 0], (len(br.values), 1)) + np.outer(br.values / a, [0, 1]), atol=1e-10)
        np.testing.assert_array_equal(br.stable, br.values < 1 + a * a)


def test_a_non_polynomial_branch_directpred():
    """DirectPred's s' = 2 s (s^alpha - c s^(2 alpha)) - 2 eta s: with u = s^alpha the nonzero
    equilibria solve u - c u^2 = eta, the fold at eta = 1/(4c), u = 1/(2c), for any alpha."""
    dp = derive(ModelSpec("euclidean", predictor="directpred"))
    for alpha in (0.5, 1.7):
        prm = {"sigma2": 0.2, "eta": 0.05, "alpha": alpha}
        upper = (1 + np.sqrt(1 - 4 * 1.2 * 0.05)) / 2.4  # u = s^alpha on the stable branch
        br = continue_equilibrium(dp, [0.9 * upper ** (1 / alpha)], {"eta": (0.01, 0.4)}, prm)
        (fold,) = [p for p in br.points if p.kind == "fold"]
        assert fold.value == pytest.approx(1 / 4.8, rel=1e-9)
        assert fold.x[0] ** alpha == pytest.approx(1 / 2.4, rel=1e-6)
        u = br.x[:, 0] ** alpha
        np.testing.assert_allclose(u - 1.2 * u**2, br.values, atol=1e-10)


def test_an_isola_closes():
    """x' = 1 - x^2 - r^2: the equilibria form the circle x^2 + r^2 = 1, a closed branch with
    folds at r = +-1."""
    circle = S({"x": "1 - x**2 - r**2"}, params=("r",))
    br = continue_equilibrium(circle, [1.0], {"r": (-2, 2)}, {"r": 0.0})
    assert "closed" in br.status
    np.testing.assert_allclose(br.x[:, 0] ** 2 + br.values**2, 1.0, atol=1e-10)
    assert sorted(round(p.value, 9) for p in br.points if p.kind == "fold") == [-1.0, 1.0]


def test_bifurcation_agrees_with_the_exact_path_where_both_apply():
    """The reduced Euclidean mode is polynomial (exact equilibria, Groebner elimination); the
    same mode as a one-mode ModeSystem is served numerically, so ``bifurcation`` continues it.
    Both give the fold eta = 1/(4 (1 + sigma2)) and the transcritical point at eta = 0."""
    from ncdyn import couple

    reduced = derive(ModelSpec("euclidean")).reduce()
    prm = {"sigma2": 0.2, "alpha_p": 1.0}
    values = np.linspace(0.0, 0.4, 6)
    exact = bifurcation(reduced, ("eta", values), prm)
    cont = bifurcation(couple(reduced, 1), ("eta", values), prm)
    assert [p.kind for p in exact.points] == [p.kind for p in cont.points] == ["transcritical", "fold"]
    np.testing.assert_allclose([p.value for p in cont.points], [0.0, 1 / 4.8], atol=1e-9)
    np.testing.assert_allclose(cont.x[cont.mask], exact.x[exact.mask], atol=1e-9)
    np.testing.assert_array_equal(cont.stable[cont.mask], exact.stable[exact.mask])


def test_bad_input():
    system = S({"x": "r*x - x**2"}, params=("r",))
    with pytest.raises(ValueError, match="lo < hi"):
        continue_equilibrium(system, [0.0], {"r": (1, -1)}, {"r": 0})
    with pytest.raises(TypeError, match="ranges must be a dict"):
        continue_equilibrium(system, [0.0], ("r", (-1, 1)), {"r": 0})
    with pytest.raises(ValueError, match="outside the range"):
        continue_equilibrium(system, [0.0], {"r": (0, 1)}, {"r": -1})
    with pytest.raises(ValueError, match="not near an equilibrium"):
        continue_equilibrium(S({"x": "1 + x**2"}, params=("r",)), [0.0], {"r": (-1, 1)}, {"r": 0})
    with pytest.raises(ValueError, match="not a parameter"):
        continue_equilibrium(system, [0.0], {"q": (0, 1)}, {"r": 0})
    with pytest.raises(ValueError, match="direction"):
        continue_equilibrium(system, [0.0], {"r": (-1, 1)}, {"r": 0}, direction="left")
    with pytest.raises(ValueError, match="period"):
        continue_equilibrium(system, [0.0], {"r": (-1, 1)}, {"r": 0}, period=2)
    with pytest.raises(ValueError, match="state"):
        continue_equilibrium(system, [0.0, 1.0], {"r": (-1, 1)}, {"r": 0})
