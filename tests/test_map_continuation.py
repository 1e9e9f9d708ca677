"""continue_equilibrium on maps: fixed points and points of period 2 followed through a
parameter, their multipliers, and the folds, period doublings and Neimark-Sacker points located
along them, against closed forms."""

import math

import numpy as np
import pytest

from derivations import ODESystem
from dynamics import continue_equilibrium

LOGISTIC = ODESystem.from_map({"x": "r*x*(1 - x)"}, params=("r",))


def _only(branch, kind):
    found = [p for p in branch.points if p.kind == kind]
    assert found, f"no {kind} on {branch!r}"
    return found


def test_logistic_fixed_point_flips_at_r_3_with_multiplier_2_minus_r():
    """x* = 1 - 1/r, multiplier F'(x*) = r (1 - 2 x*) = 2 - r: -1 at r = 3, x* = 2/3."""
    br = continue_equilibrium(LOGISTIC, [0.6], {"r": (2.5, 3.8)}, {"r": 2.5})
    assert br.period == 1 and br.param == "r"
    np.testing.assert_allclose(br.x[:, 0], 1 - 1 / br.values, atol=1e-10)
    np.testing.assert_allclose(br.eigenvalues[:, 0], 2 - br.values, atol=1e-9)
    assert np.abs(br.eigenvalues[:, 0].imag).max() == 0
    np.testing.assert_array_equal(br.stable, br.values < 3)
    (flip,) = _only(br, "period doubling")
    assert abs(flip.value - 3) < 1e-7 and abs(flip.x[0] - 2 / 3) < 1e-7
    assert flip.coefficients["multiplier"] == -1
    assert [p.kind for p in br.points] == ["period doubling"]
    assert math.isclose(min(br.values), 2.5) and math.isclose(max(br.values), 3.8)


def test_period_two_branch_born_at_the_flip_and_its_own_flip_at_1_plus_sqrt6():
    """From the flip with period=2: the points x+- = (r + 1 +- sqrt((r - 3)(r + 1))) / (2 r)
    of the 2-cycle, multiplier F'(x+) F'(x-) = 4 + 2 r - r^2, which is -1 at r = 1 + sqrt(6)."""
    flip = _only(continue_equilibrium(LOGISTIC, [0.6], {"r": (2.5, 3.8)}, {"r": 2.5}), "period doubling")[0]
    br = continue_equilibrium(LOGISTIC, flip, {"r": (2.5, 3.8)}, {"r": 2.5}, period=2)
    assert br.period == 2 and "period 2" in repr(br)
    r, x = br.values, br.x[:, 0]
    assert r.min() > 3 - 1e-7 and math.isclose(r.max(), 3.8) and br.status == "start: left_range, end: left_range"
    root = np.sqrt(np.clip((r - 3) * (r + 1), 0, None))
    plus, minus = (r + 1 + root) / (2 * r), (r + 1 - root) / (2 * r)
    np.testing.assert_allclose(np.minimum(abs(x - plus), abs(x - minus)), 0, atol=1e-9)
    assert (x > 2 / 3 + 1e-3).any() and (x < 2 / 3 - 1e-3).any()  # both points of the cycle
    np.testing.assert_allclose(br.eigenvalues[:, 0].real, 4 + 2 * r - r**2, atol=1e-8)
    np.testing.assert_array_equal(br.stable[r > 3.01], r[r > 3.01] < 1 + math.sqrt(6))
    flips = _only(br, "period doubling")  # one per point of the cycle
    assert sorted(p.kind for p in br.points) == ["branch point", "period doubling", "period doubling"]
    for p in flips:
        assert abs(p.value - (1 + math.sqrt(6))) < 1e-7
        s = 1 + math.sqrt(6)
        assert min(abs(p.x[0] - v) for v in ((s + 1 + math.sqrt((s - 3) * (s + 1))) / (2 * s),
                                              (s + 1 - math.sqrt((s - 3) * (s + 1))) / (2 * s))) < 1e-7


def test_henon_map_flips_at_a_3_quarters_1_minus_b_squared():
    """x' = 1 - a x^2 + b y, y' = x: fixed point x = y = (b - 1 + sqrt((1 - b)^2 + 4a))/(2a),
    multipliers mu^2 + 2 a x mu - b = 0; mu = -1 where 2 a x = 1 - b, i.e. a = 3 (1 - b)^2/4."""
    b = 0.3
    henon = ODESystem.from_map({"x": "1 - a*x**2 + b*y", "y": "x"}, params=("a", "b"))
    br = continue_equilibrium(henon, [0.6, 0.6], {"a": (0.1, 1.0)}, {"a": 0.2, "b": b})
    a = br.values
    xs = (b - 1 + np.sqrt((1 - b) ** 2 + 4 * a)) / (2 * a)
    np.testing.assert_allclose(br.x, np.c_[xs, xs], atol=1e-10)
    mu = -a * xs + np.sqrt(a**2 * xs**2 + b)
    np.testing.assert_allclose(np.sort(br.eigenvalues.real, axis=1), np.c_[-a * xs - np.sqrt(a**2 * xs**2 + b), mu], atol=1e-9)
    (flip,) = _only(br, "period doubling")
    assert abs(flip.value - 3 * (1 - b) ** 2 / 4) < 1e-8 and np.allclose(flip.x, (1 - b) / (2 * flip.value), atol=1e-8)
    assert flip.params["b"] == b


def test_transcritical_of_the_logistic_map_at_r_1_and_the_branch_through_it():
    """x = 0 has multiplier r: a branch point at r = 1, where x = 1 - 1/r crosses it; started
    from the point, continuation follows x = 1 - 1/r, stable for r > 1."""
    br = continue_equilibrium(LOGISTIC, [0.0], {"r": (0.5, 1.5)}, {"r": 0.8})
    np.testing.assert_allclose(br.x, 0, atol=1e-12)
    np.testing.assert_allclose(br.eigenvalues[:, 0].real, br.values, atol=1e-12)
    (bp,) = _only(br, "branch point")
    assert abs(bp.value - 1) < 1e-8 and [p.kind for p in br.points] == ["branch point"]
    other = continue_equilibrium(LOGISTIC, bp, {"r": (0.5, 1.5)}, {"r": 0.8})
    np.testing.assert_allclose(other.x[:, 0], 1 - 1 / other.values, atol=1e-9)
    assert other.values.min() == 0.5 and other.values.max() == 1.5
    np.testing.assert_array_equal(other.stable[np.abs(other.values - 1) > 1e-6], other.values[np.abs(other.values - 1) > 1e-6] > 1)


def test_fold_of_a_map_at_r_0_with_its_coefficient():
    """x -> x + r - x^2: fixed points x = +-sqrt(r), multiplier 1 - 2x; a fold at r = 0 with
    increment r - x^2, so a = -1 (x' = beta + a x^2, beta = r); the upper branch flips at r = 1."""
    fold_map = ODESystem.from_map({"x": "x + r - x**2"}, params=("r",))
    br = continue_equilibrium(fold_map, [0.7], {"r": (-0.5, 1.5)}, {"r": 0.49})
    np.testing.assert_allclose(br.x[:, 0] ** 2, br.values, atol=1e-9)
    np.testing.assert_allclose(br.eigenvalues[:, 0].real, 1 - 2 * br.x[:, 0], atol=1e-9)
    np.testing.assert_array_equal(br.stable[np.abs(br.x[:, 0] - 0.5) < 0.45], True)
    np.testing.assert_array_equal(br.stable[br.x[:, 0] < -1e-3], False)
    (fold,) = _only(br, "fold")
    assert abs(fold.value) < 1e-7 and abs(fold.x[0]) < 1e-4
    assert math.isclose(fold.coefficients["a"], -1.0, rel_tol=1e-6)
    (flip,) = _only(br, "period doubling")
    assert abs(flip.value - 1) < 1e-7 and abs(flip.x[0] - 1) < 1e-7


def test_neimark_sacker_of_the_delayed_logistic_map_at_r_2_theta_pi_over_3():
    """x' = r x (1 - y), y' = x: fixed point x = y = 1 - 1/r, Jacobian [[1, 1 - r], [1, 0]],
    multipliers mu^2 - mu + r - 1 = 0: |mu|^2 = r - 1, on the unit circle at r = 2 with
    cos(theta) = 1/2."""
    dl = ODESystem.from_map({"x": "r*x*(1 - y)", "y": "x"}, params=("r",))
    br = continue_equilibrium(dl, [0.4, 0.4], {"r": (1.5, 2.5)}, {"r": 1.5})
    np.testing.assert_allclose(br.x, np.c_[1 - 1 / br.values, 1 - 1 / br.values], atol=1e-10)
    mu = br.eigenvalues
    r = br.values
    ref = (1 + np.sqrt((1 - 4 * (r - 1)).astype(complex))) / 2
    np.testing.assert_allclose(np.sort_complex(mu), np.sort_complex(np.c_[ref, np.conj(ref)]), atol=1e-9)
    np.testing.assert_array_equal(br.stable, r < 2)
    (ns,) = _only(br, "neimark-sacker")
    assert abs(ns.value - 2) < 1e-7 and np.allclose(ns.x, [0.5, 0.5], atol=1e-7)
    assert abs(ns.coefficients["theta"] - math.pi / 3) < 1e-6
    assert not [p for p in br.points if p.kind == "period doubling"]


def test_real_multipliers_with_product_one_are_no_neimark_sacker():
    """x' = r x + x^3, y' = y / r at the fixed point 0: multipliers r and 1/r, whose product is
    1 for every r (a neutral saddle throughout). Followed from r = 0.5 to 0.9, nothing is located."""
    sad = ODESystem.from_map({"x": "r*x + x**3", "y": "y/r"}, params=("r",))
    br = continue_equilibrium(sad, [0.0, 0.0], {"r": (0.5, 0.9)}, {"r": 0.5})
    assert br.points == ()
    np.testing.assert_allclose(np.sort(br.eigenvalues.real, axis=1), np.c_[br.values, 1 / br.values], atol=1e-12)


def test_bad_inputs_are_refused_with_the_allowed_values():
    flow = ODESystem.from_equations({"x": "r - x**2"}, params=("r",))
    with pytest.raises(ValueError, match="period > 1 is for maps"):
        continue_equilibrium(flow, [1.0], {"r": (0.5, 2)}, {"r": 1.0}, period=2)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="period must be an int >= 1"):
            continue_equilibrium(LOGISTIC, [0.6], {"r": (2.5, 3.8)}, {"r": 2.5}, period=bad)
    no_fixed_point = ODESystem.from_map({"x": "x + r - x**2"}, params=("r",))  # none for r < 0
    with pytest.raises(ValueError, match="not near a fixed point"):
        continue_equilibrium(no_fixed_point, [0.1], {"r": (-0.5, -0.1)}, {"r": -0.4})
    with pytest.raises(ValueError, match="not a parameter"):
        continue_equilibrium(LOGISTIC, [0.6], {"lr": (2.5, 3.8)}, {"r": 2.5})
    with pytest.raises(ValueError, match="outside the range"):
        continue_equilibrium(LOGISTIC, [0.6], {"r": (2.5, 3.8)}, {"r": 4.0})
    with pytest.raises(TypeError, match="start must be a state"):
        continue_equilibrium(LOGISTIC, object(), {"r": (2.5, 3.8)}, {"r": 2.5})
