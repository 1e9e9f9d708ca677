"""The exact per-sample noise of the cosine loss (exact_noise) against Monte Carlo of the true
per-sample gradient, the exact mean flow, the scale invariance of the loss and a refined rule."""

import numpy as np
import pytest

from derivations import ModelSpec, derive, monte_carlo_noise, random_point
from derivations._exact_noise import exact_noise


def _spec(target="simsiam", views="both", **kw):
    return ModelSpec(loss="cosine", norms="exact", target=target, views=views, **kw)


def _point(spec, K, seed=1):
    rng = np.random.default_rng(K + seed)
    p = rng.uniform(0.3, 1.0, K)
    return random_point(spec, K, seed=seed, fixed={"p": p, "s": p**2})


def _state(point):
    parts = [point.p, point.s] + ([point.tau] if point.spec.target == "ema" else [])
    return np.concatenate(parts)


def _z(spec, K, n_samples, seed=1):
    point = _point(spec, K, seed)
    mc = monte_carlo_noise(spec, point, n_samples=n_samples, seed=seed + 10)
    S = np.asarray(exact_noise(spec, K)(_state(point), dict(point.params)))
    mode = np.tile(np.arange(K), len(mc.names))
    same = mode[:, None] == mode[None, :]
    return S, mc, same


@pytest.mark.slow
@pytest.mark.parametrize(
    "K, target, views, n_samples",
    [(4, "simsiam", "both", 2**16), (4, "ema", "one", 2**16), (16, "ema", "both", 2**15), (16, "simsiam", "one", 2**15)],
)
def test_matches_monte_carlo_of_the_true_gradient(K, target, views, n_samples):
    spec = _spec(target, views)
    S, mc, same = _z(spec, K, n_samples)
    z = (S - mc.full_covariance) / mc.full_se
    assert np.max(np.abs(z[same])) < 4.5
    assert np.max(np.abs(z[~same])) < 4.5
    # the per-mode blocks as the Monte Carlo reports them
    m = len(mc.names)
    blocks = np.asarray([S.reshape(m, K, m, K)[:, j, :, j] for j in range(K)])
    assert np.max(np.abs((blocks - mc.covariance) / mc.se)) < 4.5
    # sensitivity: without the cross-mode covariance, or with one mode's block 10% off, it fails
    wrong = np.where(same, S, 0.0)
    assert np.max(np.abs(((wrong - mc.full_covariance) / mc.full_se)[~same])) > 10
    scaled = S.copy()
    scaled[same] *= 1.1
    assert np.max(np.abs(((scaled - mc.full_covariance) / mc.full_se)[same])) > 8


def test_mean_is_the_exact_flow_and_scale_invariance_holds():
    K = 5
    spec = _spec("ema", "both")
    point = _point(spec, K)
    y = _state(point)
    params = {**dict(point.params), "eta": 0.0, "beta": 0.0}
    sigma = exact_noise(spec, K)
    mean, second = (np.asarray(v) for v in sigma.moments(y, params))
    c = np.asarray(sigma.multipliers(y, params))
    drift = np.asarray(derive(spec).modes(K).to_jax()(0.0, y, params)).reshape(3, K)
    np.testing.assert_allclose(c * mean, drift, rtol=1e-10, atol=1e-13)
    # sum_j a_j dL/da_j = 0 for every sample (the cosine is scale invariant in a), a_j = p_j z_j:
    # sum_j p_j xi_j = 0, so p spans the null space of Cov(xi) and sum_j p_j E[xi_j] = 0
    cov = second - np.outer(mean, mean)
    assert abs(point.p @ mean) < 1e-12 * np.abs(mean).max()
    assert np.max(np.abs(cov @ point.p)) < 1e-11 * np.abs(cov).max()
    assert np.all(np.linalg.eigvalsh(cov)[1:] > 1e-6 * np.abs(cov).max())
    S = np.asarray(sigma(y, params))
    np.testing.assert_allclose(S, S.T, rtol=0, atol=1e-14 * np.abs(S).max())


@pytest.mark.parametrize("spread, tol", [(False, 1e-10), (True, 1e-8)])
def test_quadrature_is_converged(spread, tol):
    K = 8
    spec = _spec("simsiam", "one")
    point = _point(spec, K)
    y = _state(point)
    if spread:  # the mode variances over twelve decades
        s = np.logspace(-4, 2, K)
        y = np.concatenate([np.sqrt(s) * np.linspace(0.5, 1.5, K), s])
    params = dict(point.params)
    coarse = np.asarray(exact_noise(spec, K)(y, params))
    fine = np.asarray(exact_noise(spec, K, quadrature={"step": 0.15, "lower": -120.0, "upper": 120.0})(y, params))
    scale = np.sqrt(np.outer(np.diag(fine), np.diag(fine)))
    assert np.max(np.abs(coarse - fine) / scale) < tol


def test_batched_states_and_parameters():
    K = 3
    spec = _spec("simsiam", "both")
    sigma = exact_noise(spec, K)
    ys = np.array([[0.9, 0.5, 0.7, 0.81, 0.25, 0.49], [0.4, 1.0, 0.6, 0.3, 0.8, 0.5]])
    params = {"sigma2": np.array([0.2, 0.4]), "eta": 0.1, "alpha_p": 1.0}
    batch = np.asarray(sigma(ys, params))
    assert batch.shape == (2, 2 * K, 2 * K)
    for i in range(2):
        one = np.asarray(sigma(ys[i], {"sigma2": float(params["sigma2"][i]), "eta": 0.1, "alpha_p": 1.0}))
        np.testing.assert_allclose(batch[i], one, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "fields, what",
    [
        ({"loss": "isoloss-cosine", "predictor": "none"}, "loss"),
        ({"predictor": "directpred"}, "predictor"),
        ({"stop_gradient": False}, "stop_gradient"),
        ({"data": "spectrum"}, "data"),
        ({"norms": "self-consistent"}, "norms"),
    ],
)
def test_unsupported_specs_are_refused(fields, what):
    spec = ModelSpec(**{"loss": "cosine", "norms": "exact", **fields})
    with pytest.raises(ValueError, match=what):
        exact_noise(spec, 4)


def test_bad_arguments():
    spec = _spec()
    with pytest.raises(TypeError, match="ModelSpec"):
        exact_noise("cosine", 4)
    with pytest.raises(TypeError, match="K"):
        exact_noise(spec, 4.0)
    with pytest.raises(ValueError, match="K must be >= 2"):
        exact_noise(spec, 1)
    with pytest.raises(ValueError, match="quadrature keys"):
        exact_noise(spec, 4, quadrature={"nodes": 10})
    sigma = exact_noise(spec, 2)
    with pytest.raises(ValueError, match="shape"):
        sigma(np.ones(3), {"sigma2": 0.2, "eta": 0.0, "alpha_p": 1.0})
    with pytest.raises(ValueError, match="missing"):
        sigma(np.ones(4), {"sigma2": 0.2})
