"""learning_rate_limit: the learning rate at which gradient descent stops settling on a model's
non-collapsed fixed point, against limits derived by hand from the flow's Jacobian, against
continuation of the map, and against the matrix-level network trained at 0.9 and 1.1 times it.

Hand derivations (c = 1 + sigma2, q = sqrt(1 - 4 c eta)). The SSL map's Jacobian at the fixed
point is I + lr J (the terms of order lr^2 carry the flow's rates, which vanish there), so the
limit is min over the flow's eigenvalues lambda of 2/|lambda| (all real here: flips).

- Euclidean SimSiam, any alpha_p: at p+ = (1 + q)/(2c), s = p+^2/alpha_p the eigenvalues are
  -2 eta (the decay of s - p^2/alpha_p) and -(p+ - 2 eta) (trace -(c p^2 + eta), determinant
  2 eta p q = 2 eta (p - 2 eta)), so lr* = 2/max(p+ - 2 eta, 2 eta): 4c/(1 - 4 c eta + q) for
  small eta, 1/eta once p+ < 4 eta.
- Euclidean DirectPred, w = s^alpha: ds = 2 s (w - c w^2 - eta), at w+ = (1 + q)/(2c) the
  eigenvalue is 2 alpha w (1 - 2 c w) = -2 alpha w+ q, so lr* = 1/(alpha w+ q).
- Cosine, frozen norms, leading order: the Euclidean flow with k = 1/(N_psi N_phi) on the
  rates and c' = c T/N_psi^2: eigenvalues -2 eta and -(k p+ - 2 eta),
  p+ = (1 + sqrt(1 - 4 c' eta/k))/(2 c').
"""

import math

import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, ODESystem, derive
from dynamics import continue_equilibrium, iterate, simulate_network
from dynamics.ssl import LearningRateLimit, learning_rate_limit

SIGMA2 = 0.2
C = 1 + SIGMA2
EUCLID = ModelSpec("euclidean")
DIRECTPRED = ModelSpec("euclidean", predictor="directpred")
EMA = ModelSpec("euclidean", target="ema")


def _euclid_limit(c, eta):
    q = math.sqrt(1 - 4 * c * eta)
    p = (1 + q) / (2 * c)
    return 2 / max(p - 2 * eta, 2 * eta)


def _at(expr, **values):
    return float(expr.subs({sp.Symbol(k): v for k, v in values.items()}))


def _train(spec, params, limit, factor, keys, steps=120, h=4):
    """Gradient descent on the network (expected gradients) at factor * lr* from a 2% perturbation
    of the fixed point: the deviation from it at every step, (steps + 1, h, states)."""
    lr = factor * limit.lr
    rng = np.random.default_rng(1)
    init = {k: limit.x[i] * (1 + 0.02 * rng.standard_normal(h)) for i, k in enumerate(keys)}
    net = simulate_network(spec, params, h=h, t1=steps * lr, lr=lr, init=init, record_every=1, progress=False)
    assert net.gradient == "expected"
    return np.stack([getattr(net, k) for k in keys], -1) - limit.x, net.status


def test_euclidean_limit_is_a_flip_at_4c_over_1_minus_4ceta_plus_q_in_closed_form():
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}
    lim = learning_rate_limit(EUCLID, params)
    assert isinstance(lim, LearningRateLimit) and lim.kind == "period doubling" and lim.step_param == "lr"
    ref = _euclid_limit(C, 0.05)  # 2.941573387...
    assert abs(lim.lr - ref) < 1e-12 * ref and abs(lim.exact - ref) < 1e-12 * ref
    assert abs(lim.continued - ref) < 1e-8 * ref and lim.point.kind == "period doubling"
    assert abs(lim.first_order - ref) < 1e-12 * ref
    np.testing.assert_allclose(np.sort(lim.flow_eigenvalues.real), [-(lim.x[0] - 0.1), -0.1], atol=1e-12)
    assert np.min(np.abs(lim.multipliers + 1)) < 1e-9 and np.max(np.abs(lim.multipliers)) < 1 + 1e-9
    # the closed form in the parameters, valid wherever the same eigenvalue is critical
    for sigma2, eta, alpha_p in ((0.2, 0.05, 1.0), (0.5, 0.02, 3.0), (0.0, 0.1, 0.5)):
        c = 1 + sigma2
        want = 4 * c / (1 - 4 * c * eta + math.sqrt(1 - 4 * c * eta))
        assert abs(_at(lim.expression, sigma2=sigma2, eta=eta, alpha_p=alpha_p) - want) < 1e-12 * want
        assert abs(want - _euclid_limit(c, eta)) < 1e-12 * want
    assert "period doubling" in repr(lim) and "2.941573387" in repr(lim)


def test_euclidean_limit_at_large_weight_decay_is_one_over_eta():
    """eta = 0.2 (p+ = 0.5 < 4 eta): the critical direction is s - p^2/alpha_p, lr* = 1/eta = 5,
    whatever alpha_p."""
    for alpha_p in (1.0, 2.5):
        lim = learning_rate_limit(EUCLID, {"sigma2": SIGMA2, "eta": 0.2, "alpha_p": alpha_p}, symbolic=False)
        assert abs(lim.lr - 5.0) < 1e-10 and abs(lim.continued - 5.0) < 1e-7 and lim.kind == "period doubling"
        assert lim.expression is None


def test_euclidean_network_limit_is_2_over_p_plus_set_by_the_antisymmetric_predictor():
    """The network's weight map is exactly W + lr f(W): it loses stability at the first of the
    mode limit and the limits across the aligned manifold. The antisymmetric part A of a learned
    predictor decouples, dA/dt = -(alpha_p c s + eta) A = -(c p^2 + eta) A = -p A at the fixed
    point (c p^2 = p - eta), so the network's limit is 2/p+ (0.872 of the mode limit here).
    Measured on the network (h = 4, expected gradients, from 2% off the fixed point): at 0.9
    times it the weights settle and stay aligned; at 1.1 times it (still below the modes' limit)
    the modes settle but the rounding-level misalignment grows by |1 - lr p+| per step."""
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}
    lim = learning_rate_limit(EUCLID, params, width=4, continuation=False, symbolic=False)
    p = lim.x[0]
    assert abs(lim.network - 2 / p) < 1e-10 and lim.network_kind == "period doubling"
    assert abs(lim.lr - _euclid_limit(C, 0.05)) < 1e-12 and lim.network < 0.9 * lim.lr
    assert np.min(np.abs(lim.transverse_eigenvalues + p)) < 1e-10 and "network 2.56" in repr(lim)
    for factor in (0.9, 1.1):
        lr = factor * lim.network
        rng = np.random.default_rng(1)
        init = {k: lim.x[i] * (1 + 0.02 * rng.standard_normal(4)) for i, k in enumerate(("p", "s"))}
        net = simulate_network(EUCLID, params, h=4, t1=160 * lr, lr=lr, init=init, record_every=1, progress=False)
        dev = np.max(np.abs(np.stack([net.p, net.s], -1) - lim.x), axis=(1, 2))
        mis = net.misalignment
        if factor < 1:
            assert net.status == "finished" and dev[-1] < 1e-10 < 1e-3 < dev[0] and mis[-1] < 1e-13
        else:
            assert dev[100] < 1e-3 * dev[0]  # the modes settle: |1 - lr (p+ - 2 eta)|^100 = 2e-4
            growth = np.exp(np.polyfit(np.arange(40, 100), np.log(mis[40:100]), 1)[0])
            assert abs(growth - abs(1 - lr * p)) < 0.01 * abs(1 - lr * p)  # 1.2 per step
            assert net.status == "failed" or mis[-1] > 1e3 * mis[40]


def test_the_euclidean_flip_is_supercritical_the_modes_settle_on_a_two_cycle_above_it():
    """The period-2 points born at the flip exist above lr* and are stable just above it; the
    eigenmode map iterated at 1.1 lr* lands on the 2-cycle that continuation finds there."""
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}
    lim = learning_rate_limit(EUCLID, params, symbolic=False)
    step = derive(EUCLID).discrete()
    two = continue_equilibrium(step, lim.point, {"lr": (0.5 * lim.lr, 1.5 * lim.lr)}, params, period=2, max_points=80)
    off = np.max(np.abs(two.x - lim.x), axis=1) > 1e-3
    assert off.any() and np.all(two.values[off] > lim.lr)
    near = off & (two.values < 1.1 * lim.lr)
    assert near.any() and np.all(two.stable[near])
    assert sorted(p.kind for p in two.points) == ["branch point", "period doubling", "period doubling"]

    def F(y, lr):  # the map written out by hand (phi = sqrt(s) takes the step)
        p, s = y
        return np.array([p + lr * (s * (1 - C * p) - 0.05 * p), s * (1 - lr * (p * (C * p - 1) + 0.05)) ** 2])

    for second in (p for p in two.points if p.kind == "period doubling"):  # the 2-cycle's own flip
        y, e = second.x, 1e-6
        D = np.column_stack([(F(F(y + e * d, second.value), second.value) - F(F(y - e * d, second.value), second.value))
                             / (2 * e) for d in np.eye(2)])
        assert np.max(np.abs(F(F(y, second.value), second.value) - y)) < 1e-10
        assert np.min(np.abs(np.linalg.eigvals(D) + 1)) < 1e-6
    lr = 1.1 * lim.lr
    it = iterate(step, lim.x * 1.01, 400, {**params, "lr": lr})
    cycle = continue_equilibrium(step, it.final, {"lr": (lr, 1.2 * lim.lr)}, {**params, "lr": lr}, period=2,
                                 direction="up", max_points=2)
    assert np.max(np.abs(cycle.x[0] - it.final)) < 1e-10 and np.max(np.abs(it.final - lim.x)) > 0.02
    assert cycle.stable[0] and np.all(np.abs(cycle.eigenvalues[0]) < 1)


def test_directpred_limit_and_the_network_oscillates_with_period_two_above_it():
    """No learned predictor: the network's limit is the mode limit 1/(alpha w+ q); at 0.9 times
    it the network settles, at 1.1 times it the modes alternate on a 2-cycle."""
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha": 0.5}
    lim = learning_rate_limit(DIRECTPRED, params, symbolic=False, width=4)
    q = math.sqrt(1 - 4 * C * 0.05)
    w = (1 + q) / (2 * C)
    ref = 1 / (0.5 * w * q)
    assert lim.kind == "period doubling" and abs(lim.exact - ref) < 1e-12 * ref and abs(lim.continued - ref) < 1e-8 * ref
    assert abs(lim.x[0] - w ** (1 / 0.5)) < 1e-12
    assert abs(lim.network - lim.lr) < 1e-10 * ref  # across the aligned manifold: the same rate, no earlier limit
    other = learning_rate_limit(DIRECTPRED, {**params, "alpha": 1.0}, continuation=False, symbolic=False)
    w1 = w ** 1.0
    assert abs(other.lr - 1 / (w1 * q)) < 1e-12 * other.lr
    below, _ = _train(DIRECTPRED, params, lim, 0.9, ("s",))
    assert np.max(np.abs(below[-1])) < 1e-8
    above, status = _train(DIRECTPRED, params, lim, 1.1, ("s",))
    tail = above[-10:, :, 0]
    assert status == "finished" and np.min(np.abs(tail)) > 2 * np.max(np.abs(above[0]))
    assert np.all(tail[1:] * tail[:-1] < 0)  # alternating about the fixed point
    np.testing.assert_allclose(tail[2:], tail[:-2], atol=1e-8)  # period 2


def test_ema_target_limit_from_the_map_matches_the_flow_jacobian_and_the_network():
    """Three states (p, s, tau): the limit from the map's own Jacobian and from continuation
    equal 2/|lambda| for the most negative eigenvalue of the flow's Jacobian, taken here from the
    derived equations by SymPy; the network oscillates with period 2 just above it."""
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0, "beta": 0.5}
    lim = learning_rate_limit(EMA, params, symbolic=False)
    flow = derive(EMA)
    J = sp.Matrix(list(flow.equations.values())).jacobian(flow.states)
    J = np.array(J.subs(dict(zip(flow.states, lim.x))).subs({sp.Symbol(k): v for k, v in params.items()}), dtype=float)
    ref = 2 / np.max(np.abs(np.linalg.eigvals(J)))  # 1.131555839
    assert lim.kind == "period doubling" and abs(lim.exact - ref) < 1e-10 * ref and abs(lim.continued - ref) < 1e-8 * ref
    p = (1 + math.sqrt(1 - 4 * C * 0.05)) / (2 * C)
    np.testing.assert_allclose(lim.x, [p, p**2, 1.0], rtol=1e-12)
    below, _ = _train(EMA, params, lim, 0.9, ("p", "s", "tau"))
    assert np.max(np.abs(below[-1])) < 1e-5 * np.max(np.abs(below[0]))
    above, status = _train(EMA, params, lim, 1.1, ("p", "s", "tau"))
    tail = above[-6:, :, 0]
    assert status == "finished" and np.min(np.abs(tail)) > 2 * np.max(np.abs(above[0])) and np.all(tail[1:] * tail[:-1] < 0)
    np.testing.assert_allclose(above[-2:], above[-4:-2], atol=1e-6)


def test_cosine_leading_order_closure_limit():
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 1.5, "N_phi": 0.8, "T": 1.3}
    lim = learning_rate_limit(ModelSpec("cosine", moments="leading"), params, symbolic=False)
    k, cp = 1 / (1.5 * 0.8), C * 1.3 / 1.5**2
    p = (1 + math.sqrt(1 - 4 * cp * 0.05 / k)) / (2 * cp)
    ref = 2 / max(k * p - 0.1, 0.1)  # 1.905397717
    assert lim.kind == "period doubling" and abs(lim.lr - ref) < 1e-12 * ref and abs(lim.continued - ref) < 1e-8 * ref
    assert abs(lim.x[0] - p) < 1e-12 and abs(lim.x[1] - p**2) < 1e-12
    with pytest.raises(ValueError, match=r"the network computes \['T'\]"):
        learning_rate_limit(ModelSpec("cosine", moments="leading"), params, width=4, continuation=False)


def test_a_map_with_a_complex_pair_loses_stability_at_a_neimark_sacker_point():
    """A map of one's own, x -> x + lr (-a x - w y), y -> y + lr (w x - a y) + lr^2 x y (the
    quadratic term vanishes at the fixed point 0): multipliers 1 + lr (-a +- i w), on the unit
    circle at lr* = 2a/(a^2 + w^2), angle atan2(lr w, 1 - lr a)."""
    step = ODESystem.from_equations({"x": "lr*(-a*x - w*y)", "y": "lr*(w*x - a*y) + lr**2*x*y"},
                                    params=("a", "w", "lr"), time="discrete", step_param="lr")
    a, w = 0.3, 1.1
    lim = learning_rate_limit(step, {"a": a, "w": w}, at=[0.01, -0.01])
    ref = 2 * a / (a**2 + w**2)
    assert lim.kind == "neimark-sacker" and abs(lim.lr - ref) < 1e-12 * ref and abs(lim.continued - ref) < 1e-8 * ref
    assert abs(lim.theta - math.atan2(ref * w, 1 - ref * a)) < 1e-9
    assert abs(_at(lim.expression, a=a, w=w) - ref) < 1e-12 and np.allclose(lim.x, 0, atol=1e-14)


def test_bad_inputs_name_the_problem():
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}
    with pytest.raises(TypeError, match="model must be a ModelSpec or a derivations.DynamicalSystem"):
        learning_rate_limit("euclidean", params)
    with pytest.raises(ValueError, match="must not give the step parameter 'lr'"):
        learning_rate_limit(EUCLID, {**params, "lr": 0.1})
    with pytest.raises(ValueError, match="eta"):
        learning_rate_limit(EUCLID, {"sigma2": SIGMA2, "alpha_p": 1.0})
    with pytest.raises(ValueError, match="no stable non-collapsed fixed points"):
        learning_rate_limit(EUCLID, {**params, "eta": 0.3}, symbolic=False, continuation=False)
    with pytest.raises(ValueError, match="not stable as lr -> 0"):
        p_minus = (1 - math.sqrt(1 - 4 * C * 0.05)) / (2 * C)
        learning_rate_limit(EUCLID, params, at=[p_minus, p_minus**2], symbolic=False, continuation=False)
    with pytest.raises(ValueError, match="lr_max must be a finite number > 0"):
        learning_rate_limit(EUCLID, params, lr_max=-1.0)
    flow = ODESystem.from_equations({"x": "-a*x"}, params=("a",))
    with pytest.raises(TypeError, match="without a gradient-descent map"):
        learning_rate_limit(flow, {"a": 1.0})
    logistic = ODESystem.from_map({"x": "r*x*(1 - x)"}, params=("r",))
    with pytest.raises(ValueError, match="declares no step parameter"):
        learning_rate_limit(logistic, {"r": 2.0})
