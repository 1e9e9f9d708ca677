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
    it = iterate(system, np.array([3.0, 3.0]), 50, params, blowup_bound=1e6)
    assert it.status.item() in ("blew_up", "non-finite") and not it.finite
    assert 0 < it.end_step < 50 and np.all(np.isfinite(it.y))
    assert not it.valid[-1] and it.valid[0]


def test_iterate_refuses_a_flow():
    lv = ODESystem.from_equations({"x": "a*x"}, params=("a",))
    with pytest.raises(ValueError, match="must be a map"):
        iterate(lv, np.array([1.0]), 3, {"a": 1.0})
    system = derive(ModelSpec("euclidean")).discrete()
    with pytest.raises(ValueError, match="n_steps must be an int >= 0"):
        iterate(system, np.array([0.5, 0.5]), -1, {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "lr": 0.1})
