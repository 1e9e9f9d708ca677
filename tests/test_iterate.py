"""iterate(): discrete-time maps (gradient descent with a finite learning rate)."""


import numpy as np
import pytest

from derivations import ModelSpec, ODESystem, derive
from dynamics import iterate

C = 1.2


def test_iterate_the_discrete_euclidean_map_equals_gradient_descent():
    """One Euclidean SimSiam mode: the map y + lr * flow at the weights, written out by hand
    (phi = sqrt(s)): p' = p + lr (s (1 - c p) - eta p), phi' = phi (1 - lr (p (c p - 1) + eta))."""
    system = derive(ModelSpec("euclidean")).discrete()
    lr, eta = 0.3, 0.05
    params = {"sigma2": C - 1, "eta": eta, "alpha_p": 1.0, "lr": lr}
    y0 = np.array([[0.4, 0.5], [0.9, 0.2]])  # a batch of two (p, s)
    it = iterate(system, y0, 25, params, record_every=5)
    assert list(it.steps) == [0, 5, 10, 15, 20, 25] and it.finite
    np.testing.assert_allclose(it.t, it.steps * lr)
    for b in range(2):
        p, phi = y0[b, 0], np.sqrt(y0[b, 1])
        for _ in range(25):
            p, phi = p + lr * (phi**2 * (1 - C * p) - eta * p), phi * (1 - lr * (p * (C * p - 1) + eta))
        np.testing.assert_allclose(it.final[b], [p, phi**2], rtol=1e-12)
    assert "25 steps" in repr(it) and len(repr(it)) < 200


def test_iterate_reports_blow_up_and_stops_there():
    system = derive(ModelSpec("euclidean")).discrete()
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "lr": 5.0}
    it = iterate(system, np.array([3.0, 3.0]), 50, params, blowup_bound=1e6, runaway=None)
    assert it.status.item() in ("blew_up", "non-finite") and not it.finite
    assert 0 < it.end_step < 50 and np.all(np.isfinite(it.y))
    assert not it.valid[-1] and it.valid[0]
    # the first step already runs away (phi -> phi (1 + lr r) with 1 + lr r = -38): it ends there
    it = iterate(system, np.array([3.0, 3.0]), 50, params, blowup_bound=1e6)
    assert it.status.item() == "blew_up" and it.end_step == 0 and np.array_equal(it.final, [3.0, 3.0])


def test_iterate_refuses_a_flow():
    lv = ODESystem.from_equations({"x": "a*x"}, params=("a",))
    with pytest.raises(ValueError, match="must be a map"):
        iterate(lv, np.array([1.0]), 3, {"a": 1.0})
    system = derive(ModelSpec("euclidean")).discrete()
    with pytest.raises(ValueError, match="n_steps must be an int >= 0"):
        iterate(system, np.array([0.5, 0.5]), -1, {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "lr": 0.1})


def _map(rhs, collapse=(), params=("lr",)):
    """A map written by hand: rhs is the one-step increment."""
    return ODESystem.from_equations({"x": rhs}, params=params, collapse=collapse, time="discrete",
                                    step_param="lr" if "lr" in params else None)


def test_a_map_that_blows_up_ends_blew_up_near_the_flow_blow_up_time():
    """x -> x + lr x^2 from x0 = 1 is Euler's method for dx/dt = x^2, which blows up at t* = 1.
    At lr = 0.01 the map stays below 1e8 for far longer (it reaches 200 near t = 1.05), and
    past x = 2/lr it runs away (at least threefold per step): blew_up there, never finished."""
    system = _map("lr*x**2")
    it = iterate(system, np.array([1.0]), 400, {"lr": 0.01})
    assert it.status.item() == "blew_up" and not it.finite
    x = 1.0
    for n in range(400):
        if 0.01 * x * x > 2 * abs(x):
            break
        x = x + 0.01 * x * x
    assert it.end_step.item() == n and it.final.item() == pytest.approx(x, rel=1e-12)
    assert 1.0 < it.t[it.end_step.item()] < 1.1
    assert iterate(system, np.array([1.0]), 400, {"lr": 0.01}, runaway=None).status.item() == "blew_up"
    assert iterate(system, np.array([-1.0]), 400, {"lr": 0.01}).status.item() == "finished"


def test_a_map_that_collapses_in_finite_time_ends_collapsed():
    """x -> x - lr / x (Euler for dx/dt = -1/x, x^2 = 1 - 2t: collapse into the singularity at
    t* = 1/2): the map jumps over x = 0 once lr/x > 2x; that is a collapse (x was shrinking)."""
    system = _map("-lr/x", collapse=("x",))
    it = iterate(system, np.array([1.0]), 200, {"lr": 0.01})
    assert it.status.item() == "collapsed"
    x = 1.0
    for n in range(200):
        if 0.01 / x > 2 * x:
            break
        x = x - 0.01 / x
    assert it.end_step.item() == n and it.final.item() == pytest.approx(x, rel=1e-12)
    assert abs(it.t[n] - 0.5) < 0.02 and 0 < x < np.sqrt(0.01 / 2)


def test_a_map_that_decays_to_the_collapse_set_ends_collapsed_at_the_tolerance():
    """x -> x (1 - lr a): |x_n| = (1 - lr a)^n reaches collapse_tol at the first n with
    n >= log(tol) / log(1 - lr a); with lr a = 1.5 (oscillating, still converging) as well."""
    system = _map("-a*lr*x", collapse=("x",), params=("lr", "a"))
    for lr in (0.1, 1.5):
        it = iterate(system, np.array([1.0]), 500, {"lr": lr, "a": 1.0}, collapse_tol=1e-8)
        n = int(np.ceil(np.log(1e-8) / np.log(abs(1 - lr)) - 1e-9))
        assert it.status.item() == "collapsed" and it.end_step.item() == n, lr
        assert abs(it.final.item()) <= 1e-8
    it = iterate(system, np.array([1.0]), 50, {"lr": 2.5, "a": 1.0})
    assert it.status.item() == "blew_up" and it.end_step.item() == 0
    it = iterate(system, np.array([0.0]), 5, {"lr": 0.1, "a": 1.0})
    assert it.status.item() == "collapsed" and it.end_step.item() == 0


def test_the_exact_moment_self_consistent_cosine_map_collapses_like_its_flow():
    """At h = 4 the exact-moment, self-consistent cosine flow collapses in finite time into its
    singularity (integrate: collapsed at t = 1.898); its map at lr = 0.01 used to jump over it
    and carry on (p changing sign, 'finished'). It now ends collapsed there."""
    from dynamics import default_spectrum, integrate

    params = {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0}
    exact = derive(ModelSpec("cosine", norms="self-consistent"))
    flow, step = exact.modes(4), exact.discrete().modes(4)
    start = default_spectrum(4, alpha_p=1.0, seed=0)
    y0 = flow.pack(p=start["p"], s=start["s"])
    sol = integrate(flow, y0, (0.0, 3.0), params, backend="scipy")
    assert sol.status == "collapsed"
    it = iterate(step, y0, 300, {**params, "lr": 0.01})
    assert it.status.item() == "collapsed"
    assert abs(it.t[it.end_step.item()] - float(sol.t_end)) < 0.03
    assert np.all(step.unpack(it.final)["p"] > 0)


def test_iterate_checks_its_thresholds():
    system = _map("lr*x**2")
    with pytest.raises(ValueError, match="runaway must be"):
        iterate(system, np.array([1.0]), 3, {"lr": 0.1}, runaway=1.0)
    with pytest.raises(ValueError, match="collapse_tol must be"):
        iterate(system, np.array([1.0]), 3, {"lr": 0.1}, collapse_tol=-1.0)
