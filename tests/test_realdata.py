"""Real data: scikit-learn's digits, their spectrum, and the network trained on the images."""

import numpy as np
from scipy.integrate import solve_ivp

from derivations import ModelSpec
from dynamics import collapse_threshold, digits_data, simulate_network


def test_digits_are_centred_and_scaled_to_mean_eigenvalue_one():
    data = digits_data()
    assert data.X.shape == (1797, 64)
    np.testing.assert_allclose(data.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(np.mean(data.lam), 1.0, rtol=1e-12)
    cov = data.X.T @ data.X / 1797
    np.testing.assert_allclose(data.V.T @ cov @ data.V, np.diag(data.lam), atol=1e-10)
    assert np.all(np.diff(data.lam) <= 1e-12) and np.sum(data.lam < 1e-12) == 3  # three blank pixels
    assert not data.X.flags.writeable


def test_collapse_threshold_is_the_fold_of_the_mode():
    """lambda* makes (lambda + sigma2) p^2 - lambda p + eta = 0 a double root."""
    for sigma2, eta in ((0.2, 0.1), (0.5, 0.02)):
        lam = collapse_threshold(sigma2, eta)
        assert abs(lam**2 - 4 * eta * (lam + sigma2)) < 1e-12


def test_network_on_digit_images_follows_the_spectrum_flow():
    """Sampled batches of actual images (h = 6 top principal directions): each mode follows
    dp = s (lam - (lam + sigma2) p) - eta p, ds = 2 p s (lam - (lam + sigma2) p) - 2 eta s with
    lam_j the digits' covariance eigenvalues, up to SGD noise (batch 512) and the O(dt) step."""
    data = digits_data()
    h, eta, sigma2 = 6, 0.1, 0.2
    init = {"p": np.full(h, 0.6), "s": np.full(h, 0.36)}
    net = simulate_network(ModelSpec("euclidean", data="spectrum"), {"sigma2": sigma2, "eta": eta, "alpha_p": 1.0},
                           h=h, t1=2.0, dt=0.02, samples=data.X, gradient="sampled", batch=512, init=init)
    lam = data.lam[:h]
    np.testing.assert_allclose(net.lam, lam)

    def f(_, y):
        p, s = y[:h], y[h:]
        g = lam - (lam + sigma2) * p
        return np.r_[s * g - eta * p, 2 * p * s * g - 2 * eta * s]

    ref = solve_ivp(f, (0, 2.0), np.r_[init["p"], init["s"]], t_eval=net.t, rtol=1e-10, atol=1e-12).y.T
    rel = np.linalg.norm(net.s - ref[:, h:], axis=1) / np.linalg.norm(ref[:, h:], axis=1)
    assert rel.max() < 0.03
    assert np.max(net.misalignment) < 0.05  # the aligned start stays nearly aligned
