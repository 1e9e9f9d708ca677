"""Piecewise-smooth (Filippov) flows: switching functions from Heaviside factors, integration
piece by piece with sliding, regular equilibria and pseudo-equilibria, against closed forms."""

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import brentq

from derivations import ODESystem, Switching
from dynamics import SWITCH_OFFSET, Segment, equilibria, integrate


@pytest.fixture(scope="module")
def relay1():
    """dx/dt = a - sign(x): slides on x = 0 for |a| < 1, crosses it for |a| > 1."""
    return ODESystem.from_equations({"x": "a - sign(x)"}, params=("a",))


@pytest.fixture(scope="module")
def relay2():
    """x' = b y - sign(x), y' = -y + k sign(x): on x = 0 the equivalent control is sign -> b y
    (while |b y| < 1), so the sliding motion is y' = (k b - 1) y."""
    return ODESystem.from_equations({"x": "b*y - sign(x)", "y": "-y + k*sign(x)"}, params=("b", "k"))


@pytest.fixture(scope="module")
def hinge():
    """A hinge gradient flow with weight decay: x' = -k x + m x H(g - x^2)."""
    return ODESystem.from_equations({"x": "-k*x + m*x*Heaviside(g - x**2)"}, params=("k", "m", "g"))


# -- the declared switching functions --------------------------------------------------------------


def test_switching_is_read_from_heaviside_and_sign(relay1, hinge):
    sw = relay1.switching
    assert isinstance(sw, Switching) and sw.count == 1
    assert sw.expressions == (sp.Symbol("x"),)
    assert sp.expand(sw.convex.rhs[0] - (sp.Symbol("a") + 1 - 2 * sp.Symbol(sw.weights[0]))) == 0
    assert hinge.switching.expressions == (sp.Symbol("g") - sp.Symbol("x") ** 2,)
    assert relay1.is_piecewise and not ODESystem.from_equations({"x": "-x"}).is_piecewise
    # H(-x) and H(x) are one surface, H(-x) = 1 - H(x)
    two = ODESystem.from_equations({"x": "Heaviside(-x) - 2*Heaviside(x)"})
    h = sp.Symbol(two.switching.weights[0])
    assert two.switching.count == 1 and sp.expand(two.switching.convex.rhs[0] - (1 - 3 * h)) == 0
    # a parameter-only factor is a constant, not a switch; a map declares none
    assert ODESystem.from_equations({"x": "-x*Heaviside(a)"}, params=("a",)).switching is None
    assert ODESystem.from_map({"x": "x*Heaviside(x)"}).switching is None


def test_non_affine_factor_is_refused():
    with pytest.raises(ValueError, match="not affine in the Heaviside factor"):
        ODESystem.from_equations({"x": "exp(Heaviside(x))"})
    with pytest.raises(ValueError, match="not affine"):
        ODESystem.from_equations({"x": "1/(1 + Heaviside(x))"})
    # a square of a factor is the factor itself off the surface: it must be written affine
    assert ODESystem.from_equations({"x": "-x + Heaviside(x)*Heaviside(x - 1)"}).switching.count == 2


def test_compiled_rhs_evaluates_the_step(hinge):
    f = hinge.to_numpy()
    p = {"k": 0.5, "m": 2.0, "g": 0.25}
    assert np.allclose(f(0, np.array([[0.1], [1.0]]), p)[:, 0], [1.5 * 0.1, -0.5])
    fj = hinge.to_jax()
    assert np.allclose(np.asarray(fj(0, np.array([[0.1], [1.0]]), p))[:, 0], [1.5 * 0.1, -0.5])


# -- integration ------------------------------------------------------------------------------------


def test_relay_slides_or_crosses_at_exact_times(relay1):
    # x0 = 1: dx/dt = a - 1 until x = 0 at t = 1 / (1 - a) (a < 1); then it slides (|a| < 1) at x = 0;
    # from x0 = -1 with a = 1.5: x = -1 + 2.5 t until t = 0.4, then crosses and x = 0.5 (t - 0.4).
    a = np.array([0.5, -0.5, 1.5])
    y0 = np.array([[1.0], [1.0], [-1.0]])
    sol = integrate(relay1, y0, (0.0, 5.0), {"a": a}, t_eval=np.linspace(0, 5, 51))
    assert list(sol.status) == ["finished"] * 3
    arrival = np.array([1 / (1 - 0.5), 1 / 1.5, 0.4])
    ends = np.array([s[0].t_end for s in sol.segments])
    # late by about SWITCH_OFFSET / |dx/dt| plus the integration error (tolerances 1e-8 / 1e-10)
    assert np.all(np.abs(ends - arrival) < 1e-9)
    assert list(sol.sliding) == [True, True, False] and list(sol.slid) == [True, True, False]
    assert [seg.sliding for seg in sol.segments[0]] == [(), (0,)]
    assert [seg.side for seg in sol.segments[2]] == [(-1,), (1,)]
    t = sol.t
    exact = np.stack([np.maximum(1 - 0.5 * t, 0), np.maximum(1 - 1.5 * t, 0),
                      np.where(t < 0.4, -1 + 2.5 * t, 0.5 * (t - 0.4))])
    assert np.max(np.abs(sol.y[..., 0] - exact)) < 1e-8
    assert sol.info["switching"] == "x = 0"
    assert sol[2].segments.item() == sol.segments[2] and sol[1:].segments.shape == (2,)


def test_start_on_the_surface(relay1):
    sol = integrate(relay1, [[0.0], [0.0]], (0.0, 2.0), {"a": np.array([0.5, 1.5])}, n_save=5)
    assert list(sol.sliding) == [True, False]
    assert np.allclose(sol.y[0, :, 0], 0, atol=1e-12)
    assert np.allclose(sol.y[1, :, 0], 0.5 * sol.t, atol=1e-9)
    # x' = sign(x) from x = 0: both fields point away from the surface, no unique solution
    away = ODESystem.from_equations({"x": "sign(x)"})
    out = integrate(away, [0.0], (0.0, 1.0), {})
    assert out.status == "nonunique" and "repelling sliding" in str(out.messages)
    assert out.t_end == 0 and out.valid[0] and not out.valid[1:].any() and np.all(out.y == 0)


def test_relay_2d_sliding_motion_in_closed_form(relay2):
    # from (0.2, -0.5) on x > 0: y = 2 - 2.5 e^-t, x = 0.2 + t - 2.5 (1 - e^-t); x = 0 at t_s with
    # |y_s| < 1: sliding, y = y_s e^(t - t_s) (k b - 1 = 1) until |b y| = 1 at t_e = t_s + ln(1/|y_s|),
    # alpha = (1 + b y)/2 reaching 0: it leaves into x < 0, where x = -tau + 1 - e^-tau, y = -2 + e^-tau.
    ts = np.linspace(0, 3, 301)
    sol = integrate(relay2, [0.2, -0.5], (0.0, 3.0), {"b": 1.0, "k": 2.0}, t_eval=ts)
    t_s = brentq(lambda t: t - 2.3 + 2.5 * np.exp(-t), 0, 1, xtol=1e-15)
    y_s = 2 - 2.5 * np.exp(-t_s)
    t_e = t_s + np.log(1 / abs(y_s))
    segs = sol.segments.item()
    assert [s.side for s in segs] == [(1,), (0,), (-1,)] and [s.sliding for s in segs] == [(), (0,), ()]
    assert abs(segs[0].t_end - t_s) < 1e-8 and abs(segs[1].t_end - t_e) < 1e-7
    x, y = sol.y[:, 0], sol.y[:, 1]
    before, slide, after = ts < t_s, (ts > t_s) & (ts < t_e), ts > t_e
    assert np.max(np.abs(x[before] - (0.2 + ts[before] - 2.5 * (1 - np.exp(-ts[before]))))) < 1e-8
    assert np.max(np.abs(x[slide])) < 1e-9
    assert np.max(np.abs(y[slide] - y_s * np.exp(ts[slide] - t_s))) < 1e-7
    tau = ts[after] - t_e
    assert np.max(np.abs(x[after] - (-tau + 1 - np.exp(-tau)))) < 1e-7
    assert np.max(np.abs(y[after] - (-2 + np.exp(-tau)))) < 1e-7
    assert not sol.sliding
    # the SciPy backend follows the same segments
    ref = integrate(relay2, [0.2, -0.5], (0.0, 3.0), {"b": 1.0, "k": 2.0}, t_eval=ts, backend="scipy")
    assert [s.sliding for s in ref.segments.item()] == [(), (0,), ()]
    assert np.max(np.abs(ref.y - sol.y)) < 1e-6


def test_hinge_flow_slides_into_its_pseudo_equilibrium(hinge):
    # m > k: inside |x| < sqrt(g) x grows at rate m - k, outside it decays at rate k; both reach
    # |x| = sqrt(g) = 0.5 (at ln(0.5/0.1)/1.5 and ln(2/0.5)/0.5) and stay there, sliding.
    p = {"k": 0.5, "m": 2.0, "g": 0.25}
    sol = integrate(hinge, [[0.1], [2.0], [-2.0]], (0.0, 6.0), p)
    assert list(sol.status) == ["finished"] * 3 and sol.sliding.all()
    assert np.allclose(sol.y_end[:, 0], [0.5, 0.5, -0.5], atol=1e-10)
    arrive = [np.log(0.5 / 0.1) / 1.5, np.log(2 / 0.5) / 0.5, np.log(2 / 0.5) / 0.5]
    assert np.allclose([s[0].t_end for s in sol.segments], arrive, atol=1e-8)
    # Steady fires while sliding: the sliding field vanishes at the pseudo-equilibrium
    steady = integrate(hinge, [0.1], (0.0, 6.0), p, events=("steady",))
    assert steady.status == "steady" and steady.sliding


def test_smooth_system_solution_has_no_segments():
    sol = integrate(ODESystem.from_equations({"x": "-x"}), [1.0], (0.0, 1.0), {})
    assert sol.segments is None and not sol.sliding


# -- equilibria -------------------------------------------------------------------------------------


def test_hinge_equilibria_by_hand(hinge):
    # pieces: H = 1 (x^2 < g): x' = (m - k) x, zero x = 0 (unstable for m > k); H = 0: x' = -k x, zero
    # x = 0 is virtual (x^2 < g there). On x^2 = g: f = (-k + alpha m) x = 0 at alpha = k/m in (0, 1);
    # grad(sigma) . f = -2x f: 2 k x^2 = 2 k g > 0 on the outside (H = 0), -2 (m - k) g < 0 inside:
    # both fields point at the surface (attracting sliding), a stable pseudo-equilibrium.
    k, m, g = sp.Rational(1, 2), sp.Integer(2), sp.Rational(1, 4)
    es = equilibria(hinge, {"k": k, "m": m, "g": g})
    assert es.complete and len(es) == 3
    lo, zero, hi = es
    assert zero.x[0] == 0 and zero.piece == (1,) and zero.kind == "unstable node" and not zero.on_surface
    assert np.isclose(zero.eigenvalues[0].real, float(m - k))
    for e, x in ((lo, -0.5), (hi, 0.5)):
        assert e.x[0] == pytest.approx(x, abs=1e-15) and e.piece == (0,) and e.on_surface
        assert e.kind == "pseudo-equilibrium (attracting sliding)" and e.stable is True
        assert e.sliding_weights == pytest.approx((float(k / m),), abs=1e-14)
        assert "0.25" in e.reason and "-0.75" in e.reason  # 2 k g and -2 (m - k) g
    assert "1 virtual" in es.reason
    # m < k: alpha = k/m > 1, no pseudo-equilibrium; x = 0 is a stable node of the piece H = 1
    es = equilibria(hinge, {"k": 2, "m": 1, "g": g})
    assert len(es) == 1 and es[0].piece == (1,) and es[0].stable and es[0].kind == "stable node"


def test_relay_pseudo_equilibria(relay1, relay2):
    # a - sign(x): for |a| < 1 a stable pseudo-equilibrium at 0 with alpha = (1 + a)/2; none for |a| > 1
    es = equilibria(relay1, {"a": sp.Rational(1, 2)})
    assert len(es) == 1 and es[0].on_surface and es[0].stable
    assert es[0].sliding_weights == pytest.approx((0.75,), abs=1e-14)
    assert len(equilibria(relay1, {"a": sp.Rational(3, 2)})) == 0
    # 2-D relay: the sliding motion y' = (k b - 1) y along x = 0: stable node for k b < 1, unstable for k b > 1
    for kb, kind, stable in ((sp.Rational(1, 2), "stable node", True), (2, "unstable node", False)):
        es = equilibria(relay2, {"b": 1, "k": kb})
        assert len(es) == 1
        e = es[0]
        assert e.kind == f"pseudo-equilibrium (attracting sliding), {kind} along the surface"
        assert e.stable is stable and np.isclose(e.eigenvalues[0].real, float(kb) - 1)
        assert e.piece == (0,) and e.sliding_weights == pytest.approx((0.5,), abs=1e-14)


def test_segment_is_a_value():
    s = Segment(0.0, 1.0, (1,), ())
    assert s == Segment(0.0, 1.0, (1,), ()) and hash(s) == hash(Segment(0.0, 1.0, (1,), ()))
    assert SWITCH_OFFSET > 0


def test_classify_names_the_piece_or_the_surface(hinge, relay2):
    p = {"k": 0.5, "m": 2.0, "g": 0.25}
    from dynamics import classify

    inside = classify(hinge, [0.0], p)  # the piece H = 1: x' = (m - k) x
    assert inside.kind == "unstable node" and np.isclose(inside.eigenvalues[0].real, 1.5)
    on = classify(hinge, [0.5], p)
    assert on.kind == "pseudo-equilibrium (attracting sliding)" and on.stable is True
    # on x = 0 of the 2-D relay alpha = (1 + b y)/2: outside [0, 1] for |b y| > 1, where the flow crosses
    with pytest.raises(ValueError, match="no pseudo-equilibrium"):
        classify(relay2, [0.0, 2.0], {"b": 1.0, "k": 0.5})
    assert classify(relay2, [0.0, 0.0], {"b": 1.0, "k": 0.5}).stable is True


def test_two_surfaces_slide_on_one_then_on_both():
    # x' = a - sign(x), y' = b - sign(y) + c sign(x) from (1, 2), a = 0.5, b = 0.2, c = 0.1: x reaches 0 at
    # t = 2 (y = 2 - 0.7 * 2 = 0.6); sliding on x = 0 the equivalent sign(x) is a, so y' = b - 1 + c a = -0.75
    # and y reaches 0 at t = 2.8; then it slides on both surfaces, at rest at the origin.
    two = ODESystem.from_equations({"x": "a - sign(x)", "y": "b - sign(y) + c*sign(x)"}, params=("a", "b", "c"))
    ts = np.linspace(0, 4, 41)
    sol = integrate(two, [1.0, 2.0], (0.0, 4.0), {"a": 0.5, "b": 0.2, "c": 0.1}, t_eval=ts)
    segs = sol.segments.item()
    assert [s.sliding for s in segs] == [(), (0,), (0, 1)] and [s.side for s in segs] == [(1, 1), (0, 1), (0, 0)]
    assert abs(segs[0].t_end - 2) < 1e-9 and abs(segs[1].t_end - 2.8) < 1e-9
    y = np.where(ts < 2, 2 - 0.7 * ts, np.maximum(0.6 - 0.75 * (ts - 2), 0))
    assert np.max(np.abs(sol.y[:, 1] - y)) < 1e-8 and np.max(np.abs(sol.y[:, 0] - np.maximum(1 - 0.5 * ts, 0))) < 1e-8
    # its codimension-2 rest point (an intersection of surfaces) is not searched, and the result says so
    es = equilibria(two, {"a": sp.Rational(1, 2), "b": sp.Rational(1, 5), "c": sp.Rational(1, 10)})
    assert len(es) == 0 and not es.complete and "intersections" in es.reason


def test_variance_hinge_with_a_square_root_surface():
    # s' = -eta s + mu s H(gamma - sqrt(s + eps)) (a variance hinge's flow, with weight decay): the surface
    # s = gamma^2 - eps is not polynomial in s; for mu > eta the pseudo-equilibrium there has alpha = eta/mu,
    # and d sigma/ds = -1/(2 sqrt(s + eps)) < 0: f = -eta s
    # outside (H = 0) gives +eta s / (2 gamma) > 0, f = (mu - eta) s inside gives < 0: attracting sliding.
    v = ODESystem.from_equations({"s": "-eta*s + mu*s*Heaviside(gamma - sqrt(s + eps))"},
                                 params=("eta", "mu", "gamma", "eps"), state_domain={"s": (0, None)})
    p = {"eta": 0.1, "mu": 1.0, "gamma": 1.0, "eps": 1e-4}
    es = equilibria(v, p)
    pseudo = [e for e in es if e.on_surface]
    assert len(pseudo) == 1 and pseudo[0].x[0] == pytest.approx(1 - 1e-4, rel=1e-10)
    assert pseudo[0].kind == "pseudo-equilibrium (attracting sliding)" and pseudo[0].stable
    assert pseudo[0].sliding_weights == pytest.approx((0.1,), rel=1e-10)
    assert [e.piece for e in es if not e.on_surface] == [(1,)]  # s = 0, inside the hinge
    sol = integrate(v, [[0.2], [3.0]], (0.0, 40.0), p)
    assert sol.sliding.all() and np.allclose(sol.final[:, 0], 1 - 1e-4, rtol=1e-10)
