"""Curves of folds and Hopf points in two parameters, and the codimension-two points on them,
against the normal forms' closed forms (Kuznetsov, Elements of Applied Bifurcation Theory, ch. 8)
and against ``threshold``'s symbolic conditions for the SSL modes."""

import numpy as np
import pytest
import sympy as sp

from ncdyn import ModelSpec, ODESystem, derive, threshold
from dynamics import BifurcationCurve, continue_curve, continue_equilibrium, fold_location

S = ODESystem.from_equations


def _first(branch, kind):
    (p,) = [p for p in branch.points if p.kind == kind][:1]
    return p


def test_cusp_normal_form():
    """x' = b1 + b2 x - x^3: folds on 27 b1^2 = 4 b2^3, the cusp at the origin."""
    cusp = S({"x": "b1 + b2*x - x**3"}, params=("b1", "b2"))
    br = continue_equilibrium(cusp, [-1.5], {"b1": (-2, 2)}, {"b1": -2, "b2": 1})
    folds = sorted(p.value for p in br.points if p.kind == "fold")
    np.testing.assert_allclose(folds, [-2 / np.sqrt(27), 2 / np.sqrt(27)], rtol=1e-9)
    curve = continue_curve(cusp, _first(br, "fold"), {"b2": (-1, 2)}, {"b2": 1})
    b1, b2 = curve.values.T
    np.testing.assert_allclose(27 * b1**2, 4 * b2**3, atol=1e-9)
    assert curve.status == "start: left_range, end: left_range" or "closed" not in curve.status
    (c,) = curve.points
    assert c.kind == "cusp" and abs(c.params["b1"]) < 1e-8 and abs(c.params["b2"]) < 1e-8
    # the fold's quadratic coefficient a = -3 x* (x' = beta + a y^2 with y = x - x*) along the curve
    np.testing.assert_allclose(np.abs(curve.coefficients["a"]), 3 * np.abs(curve.x[:, 0]), atol=1e-9)
    assert isinstance(curve, BifurcationCurve) and "cusp" in repr(curve)


@pytest.fixture(scope="module")
def bogdanov_takens():
    """x' = y, y' = b1 + b2 x + x^2 - x y: folds on b1 = b2^2/4, Hopf points on b1 = 0, b2 < 0
    (omega^2 = -b2, l1 = ...), the Bogdanov-Takens point at the origin."""
    return S({"x": "y", "y": "b1 + b2*x + x**2 - x*y"}, params=("b1", "b2"))


def test_bogdanov_takens_on_the_fold_and_the_hopf_curve(bogdanov_takens):
    bt = bogdanov_takens
    br = continue_equilibrium(bt, [-1.0, 0.0], {"b1": (-2, 2)}, {"b1": -1, "b2": 1})
    fold = _first(br, "fold")
    assert fold.value == pytest.approx(0.25, rel=1e-9) and fold.coefficients["a"] == pytest.approx(2.0, rel=1e-7)
    curve = continue_curve(bt, fold, {"b2": (-2, 2)}, {"b2": 1})
    np.testing.assert_allclose(curve.values[:, 0], curve.values[:, 1] ** 2 / 4, atol=1e-9)
    (p,) = [p for p in curve.points if p.kind == "bogdanov-takens"]
    assert abs(p.params["b1"]) < 1e-8 and abs(p.params["b2"]) < 1e-7

    br = continue_equilibrium(bt, [-2.0, 0.0], {"b1": (-2, 2)}, {"b1": -2, "b2": -1})
    hopf = _first(br, "hopf")
    assert abs(hopf.value) < 1e-8 and hopf.coefficients["omega"] == pytest.approx(1.0, rel=1e-7)
    # l1 at (x, y) = 0 with A = [[0, 1], [-1, 0]]: Kuznetsov's formula by hand gives -1/4
    assert hopf.coefficients["l1"] == pytest.approx(-0.25, rel=1e-6)
    curve = continue_curve(bt, hopf, {"b2": (-2, 2)}, {"b2": -1})
    assert np.max(np.abs(curve.values[:, 0])) < 1e-9
    on = curve.values[:, 1] < -1e-6
    np.testing.assert_allclose(curve.coefficients["omega"][on], np.sqrt(-curve.values[on, 1]), rtol=1e-8)
    (p,) = [p for p in curve.points if p.kind == "bogdanov-takens"]
    assert abs(p.params["b2"]) < 1e-7
    # past it, neutral saddles: kappa = omega^2 = b2 < 0 goes on, omega is NaN
    assert np.all(np.isnan(curve.coefficients["omega"][curve.values[:, 1] > 1e-6]))


def test_bautin_point():
    """r' = r (b1 + b2 r^2 - r^4), theta' = 1: Hopf at b1 = 0 with l1 proportional to b2,
    so the generalised Hopf point is (0, 0)."""
    r2 = "(x**2 + y**2)"
    bautin = S({"x": f"b1*x - y + b2*x*{r2} - x*{r2}**2", "y": f"x + b1*y + b2*y*{r2} - y*{r2}**2"}, params=("b1", "b2"))
    br = continue_equilibrium(bautin, [0.0, 0.0], {"b1": (-1, 1)}, {"b1": -1, "b2": -1})
    hopf = _first(br, "hopf")
    # in Kuznetsov's normalisation <q, q> = 1, |x|^2 = 2|z|^2, so l1 = 2 b2 (omega = 1)
    assert hopf.coefficients["l1"] == pytest.approx(-2.0, rel=1e-8)
    curve = continue_curve(bautin, hopf, {"b2": (-1, 1)}, {"b2": -1})
    np.testing.assert_allclose(curve.coefficients["l1"], 2 * curve.values[:, 1], atol=1e-8)
    (p,) = curve.points
    assert p.kind == "bautin" and abs(p.params["b2"]) < 1e-8 and abs(p.params["b1"]) < 1e-10


def test_zero_hopf_and_double_hopf_points():
    """Two decoupled blocks: a fold x' = b1 - x^2 ... and a Hopf oscillator whose damping is
    b2 + x: zero-Hopf where the fold meets the Hopf curve; two oscillators with dampings b1 and
    b2: double-Hopf at b1 = b2 = 0."""
    r2 = "(y**2 + z**2)"
    zh = S({"x": "b1 - x**2", "y": f"(b2 + x)*y - z - y*{r2}", "z": f"y + (b2 + x)*z - z*{r2}"}, params=("b1", "b2"))
    br = continue_equilibrium(zh, [1.0, 0.0, 0.0], {"b1": (-1, 1)}, {"b1": 1, "b2": -0.5})
    fold = _first(br, "fold")
    curve = continue_curve(zh, fold, {"b2": (-1, 1)}, {"b2": -0.5})
    (p,) = [p for p in curve.points if p.kind == "zero-hopf"]
    assert abs(p.params["b1"]) < 1e-9 and abs(p.params["b2"]) < 1e-7 and p.coefficients["omega"] == pytest.approx(1.0, rel=1e-6)

    u2, v2 = "(x**2 + y**2)", "(z**2 + w**2)"
    hh = S({"x": f"b1*x - y - x*{u2}", "y": f"x + b1*y - y*{u2}",
            "z": f"b2*z - 2*w - z*{v2}", "w": f"2*z + b2*w - w*{v2}"}, params=("b1", "b2"))
    br = continue_equilibrium(hh, [0.0] * 4, {"b1": (-1, 1)}, {"b1": -1, "b2": -0.5})
    hopf = _first(br, "hopf")
    curve = continue_curve(hh, hopf, {"b2": (-1, 1)}, {"b2": -0.5})
    (p,) = [p for p in curve.points if p.kind == "double-hopf"]
    assert abs(p.params["b2"]) < 1e-8
    assert sorted([p.coefficients["omega"], p.coefficients["omega2"]]) == pytest.approx([1.0, 2.0], rel=1e-7)


def test_the_euclidean_collapse_threshold_as_a_curve():
    """The Euclidean SimSiam mode's fold eta = 1/(4 (1 + sigma2)) (Tian et al.; ``threshold``'s
    closed form) traced in (sigma2, eta) on the full two-state system, not its reduction."""
    e = derive(ModelSpec("euclidean"))
    (closed,) = threshold(e, "eta").fold_solutions
    fold_eta = sp.lambdify(sp.Symbol("sigma2"), closed)
    prm = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}
    br = continue_equilibrium(e, [0.78, 0.61], {"eta": (0.0, 0.4)}, prm)
    fold = _first(br, "fold")
    assert fold.value == pytest.approx(fold_eta(0.2), rel=1e-9)
    curve = continue_curve(e, fold, {"sigma2": (0.0, 3.0)}, prm)
    sig, eta = curve.values[:, 1], curve.values[:, 0]
    assert sig.min() == pytest.approx(0.0, abs=1e-12) and sig.max() == pytest.approx(3.0, abs=1e-12)
    np.testing.assert_allclose(eta, [fold_eta(s) for s in sig], rtol=1e-9)
    np.testing.assert_allclose(curve.at("sigma2", 1.0), [0.125], rtol=2e-3)  # linear interpolation
    # the fold's location as a JAX function of sigma2: exact at 1.0, and its gradient is the
    # closed form's derivative -1/(4 (1 + sigma2)^2)
    import jax

    locate = fold_location(e, fold, "sigma2", prm)
    assert float(locate(1.0)[0]) == pytest.approx(0.125, rel=1e-12)
    assert float(jax.jit(jax.grad(lambda q: locate(q)[0]))(0.5)) == pytest.approx(-1 / 9, rel=1e-9)


def test_the_cosine_fold_in_weight_decay_and_norm_scale():
    """The frozen-norm cosine mode (Bao's setting): its fold curve in (eta, N_psi) satisfies
    ``threshold``'s fold condition (a quartic in eta with no closed form) to rounding."""
    c = derive(ModelSpec("cosine", norms="frozen"))
    th = threshold(c, "eta")
    cond = th.fold
    syms = {str(s): s for s in cond.free_symbols}
    prm = {"sigma2": 0.2, "eta": 0.01, "alpha_p": 1.0, "N_psi": 1.0, "N_phi": 1.0, "T": 0.5}
    eq = [e for e in __import__("ncdyn").equilibria(c, prm) if e.x[0] > 0.5]
    br = continue_equilibrium(c, eq[0].x, {"eta": (0.0, 1.0)}, prm)
    fold = _first(br, "fold")
    curve = continue_curve(c, fold, {"N_psi": (0.5, 2.0)}, prm)
    f = sp.lambdify([syms[k] for k in sorted(syms)], cond)
    for (eta, npsi) in curve.values[:: max(1, len(curve.values) // 8)]:
        vals = {**prm, "eta": eta, "N_psi": npsi}
        terms = sp.Add.make_args(sp.expand(cond))
        scale = max(abs(float(t.subs({syms[k]: vals[k] for k in syms}))) for t in terms)
        assert abs(f(*[vals[k] for k in sorted(syms)])) <= 1e-9 * scale


def test_directpred_fold_does_not_move_with_alpha():
    """DirectPred (W_P = F^alpha): with u = s^alpha the nonzero equilibria solve
    u - (1 + sigma2) u^2 = eta, so the fold eta = 1/(4 (1 + sigma2)) is the same for every alpha."""
    dp = derive(ModelSpec("euclidean", predictor="directpred"))
    prm = {"sigma2": 0.2, "eta": 0.05, "alpha": 0.5}
    br = continue_equilibrium(dp, [0.6], {"eta": (0.0, 0.4)}, prm)
    fold = _first(br, "fold")
    curve = continue_curve(dp, fold, {"alpha": (0.25, 2.0)}, prm)
    np.testing.assert_allclose(curve.values[:, 0], 1 / (4 * 1.2), rtol=1e-9)
    assert curve.values[:, 1].min() == pytest.approx(0.25) and curve.values[:, 1].max() == pytest.approx(2.0)


def test_bad_input():
    cusp = S({"x": "b1 + b2*x - x**3"}, params=("b1", "b2"))
    br = continue_equilibrium(cusp, [-1.5], {"b1": (-2, 2)}, {"b1": -2, "b2": 1})
    fold = _first(br, "fold")
    with pytest.raises(TypeError, match="point"):
        continue_curve(cusp, [0.0], {"b2": (0, 1)}, {"b2": 1})
    with pytest.raises(ValueError, match="second parameter"):
        continue_curve(cusp, fold, {"b1": (0, 1)}, {"b2": 1})
    with pytest.raises(ValueError, match="not a parameter"):
        continue_curve(cusp, fold, {"zz": (0, 1)}, {"b2": 1})
