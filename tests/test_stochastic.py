"""Stochastic systems: SDE integration against closed forms (Ornstein-Uhlenbeck, geometric
Brownian motion), reproducible paths, statuses; the linear-noise approximation against closed
forms, an independent quadrature and long SDE runs; the SGD noise of the eigenmode SDE against
many seeds of the network (seed spread, collapse probability near the fold).

Statistical tolerances are stated per test in standard errors of the sample statistic.
"""

from __future__ import annotations

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad_vec
from scipy.linalg import expm

from derivations import Diffusion, ModelSpec, ODESystem, StochasticSystem, derive
from dynamics import basins, flow, integrate, linear_noise, network_seeds, noise_spread


def _additive(system: ODESystem, sig: np.ndarray) -> StochasticSystem:
    """``system`` with constant noise g = sig (n x n), scaled by the parameter ``amp``."""
    G = jnp.asarray(sig, dtype=jnp.float64)
    noise = Diffusion(lambda t, y, p: jnp.asarray(p["amp"])[..., None, None] * jnp.broadcast_to(G, y.shape[:-1] + G.shape),
                      G.shape[1], ("amp",))
    return StochasticSystem(system, noise)


OU = _additive(ODESystem.from_equations({"x": "-k*x"}, params=("k",)), np.ones((1, 1)))


def test_ornstein_uhlenbeck_moments_and_linear_noise():
    """x(t) ~ N(x0 e^{-kt}, amp^2 (1 - e^{-2kt}) / (2k)) for the SDE; Euler-Maruyama's own moments
    are exactly mean (1 - k dt)^n x0 and variance amp^2 dt sum_i (1 - k dt)^(2i), which the
    4000 paths must match within 4 standard errors."""
    k, amp, dt = 1.0, 0.5, 0.01
    sol = integrate(OU, [1.0], (0, 2), {"k": k, "amp": amp}, paths=4000, dt=dt, t_eval=[0.0, 1.0, 2.0])
    assert sol.y.shape == (4000, 3, 1) and set(sol.status.ravel()) == {"finished"}
    assert sol.info["paths"] == 4000 and sol.info["solver"] == "euler"
    for i, t in ((1, 1.0), (2, 2.0)):
        n = round(t / dt)
        mean = (1 - k * dt) ** n
        var = amp**2 * dt * sum((1 - k * dt) ** (2 * j) for j in range(n))
        x = sol.y[:, i, 0]
        assert abs(x.mean() - mean) < 4 * np.sqrt(var / len(x))
        assert abs(x.var(ddof=1) / var - 1) < 4 * np.sqrt(2 / (len(x) - 1))
    # the linear-noise approximation of a linear SDE is exact: closed form both ways
    lin = linear_noise(OU, [0.0], {"k": k, "amp": amp})
    assert lin.method == "closed form" and lin.stable
    assert lin.covariance[0, 0] == pytest.approx(amp**2 / (2 * k), rel=1e-12)
    spread = noise_spread(OU, [1.0], np.linspace(0, 2, 5), {"k": k, "amp": amp})
    exact = amp**2 * (1 - np.exp(-2 * k * spread.t)) / (2 * k)
    np.testing.assert_allclose(spread.covariance[:, 0, 0], exact, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(spread.mean[:, 0], np.exp(-k * spread.t), rtol=1e-5)


def test_geometric_brownian_motion_weak_error_is_eulers():
    """dx = mu x dt + s x dW: Euler-Maruyama's mean is exactly x0 (1 + mu dt)^n, which differs
    from the SDE's e^{mu T} at weak order 1; 20000 paths resolve both."""
    gbm = ODESystem.from_equations({"x": "mu*x"}, params=("mu",))
    noise = Diffusion(lambda t, y, p: jnp.asarray(p["s"])[..., None, None] * y[..., :, None], 1, ("s",))
    sde = StochasticSystem(gbm, noise)
    dt = 0.1
    sol = integrate(sde, [1.0], (0, 1), {"mu": 1.0, "s": 0.2}, paths=20000, dt=dt, t_eval=[0.0, 1.0])
    x = sol.y[:, -1, 0]
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert abs(x.mean() - 1.1**10) < 4 * se
    assert abs(x.mean() - np.e) > 10 * se


def test_paths_are_reproducible_and_shared_across_a_parameter_batch():
    one = integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.3}, paths=3, dt=0.01, seed=7)
    again = integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.3}, paths=3, dt=0.01, seed=7)
    np.testing.assert_array_equal(one.y, again.y)
    batch = integrate(OU, [1.0], (0, 1), {"k": np.array([1.0, 2.0]), "amp": 0.3}, paths=5, dt=0.01, seed=7)
    assert batch.y.shape[:2] == (5, 2)
    np.testing.assert_allclose(batch.y[:3, 0], one.y, rtol=0, atol=1e-14)  # path i does not depend on the batch
    other = integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.3}, paths=3, dt=0.01, seed=8)
    assert not np.allclose(other.y[:, -1], one.y[:, -1])
    single = integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.3}, dt=0.01, seed=7)
    np.testing.assert_allclose(single.y, one.y[0], atol=1e-14)


def test_statuses_events_and_bad_input():
    blow = _additive(ODESystem.from_equations({"x": "x**2"}), np.ones((1, 1)))
    sol = integrate(blow, [2.0], (0, 2), {"amp": 0.01}, paths=4, dt=1e-3)
    assert set(sol.status.ravel()) == {"blew_up"} and np.all(sol.event_t < 0.55)
    with pytest.raises(ValueError, match="paths applies to stochastic"):
        integrate(OU.drift, [1.0], (0, 1), {"k": 1.0}, paths=3)
    with pytest.raises(ValueError, match="backend"):
        integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.1}, backend="scipy")
    with pytest.raises(ValueError, match="paths"):
        integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.1}, paths=0)
    with pytest.raises(ValueError, match="solver"):
        integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.1}, solver="tsit5")
    with pytest.raises(ValueError, match="amp"):
        integrate(OU, [1.0], (0, 1), {"k": 1.0})
    with pytest.raises(ValueError, match="deterministic"):
        linear_noise(OU.drift, [0.0], {"k": 1.0})
    with pytest.raises(ValueError, match="not an equilibrium"):
        linear_noise(OU, [0.5], {"k": 1.0, "amp": 0.1})
    with pytest.raises(ValueError, match="Ito"):  # a Stratonovich method would integrate another SDE
        integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.1}, solver=diffrax.Heun())
    with pytest.raises(TypeError, match="paths"):
        integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.1}, paths=2.0)
    with pytest.raises(TypeError, match="seed"):
        integrate(OU, [1.0], (0, 1), {"k": 1.0, "amp": 0.1}, seed="0")
    with pytest.raises(ValueError, match="rtol"):
        noise_spread(OU, [1.0], [0.0, 1.0], {"k": 1.0, "amp": 0.1}, rtol=-1.0)
    with pytest.raises(ValueError, match="stochastic"):
        flow(OU, 1.0)
    with pytest.raises(ValueError, match="stochastic"):
        basins(_additive(ODESystem.from_equations({"x": "-y", "y": "x"}), np.eye(2)),
               {"x": [0.0, 1.0], "y": [0.0, 1.0]}, {"amp": 0.1})


def test_lyapunov_covariance_against_an_independent_quadrature():
    """A stable 2-D linear flow with correlated noise: Sigma = int_0^inf e^{As} Q e^{A^T s} ds."""
    lin = ODESystem.from_equations({"x": "-x + 2*y", "y": "-3*y - x/2"})
    sig = np.array([[0.3, 0.0], [0.2, 0.1]])
    sde = _additive(lin, sig)
    A = np.array([[-1.0, 2.0], [-0.5, -3.0]])
    Q = sig @ sig.T
    ref, _ = quad_vec(lambda s: expm(A * s) @ Q @ expm(A.T * s), 0, 60)
    out = linear_noise(sde, [0.0, 0.0], {"amp": 1.0})
    assert out.method.startswith("Lyapunov")
    np.testing.assert_allclose(out.covariance, ref, rtol=1e-7, atol=1e-12)


def test_stationary_linear_noise_of_the_eigenmode_sde_against_a_long_run():
    """Euclidean SimSiam at its stable equilibrium p+ = (1 + sqrt(1 - 4 c eta))/(2c), s = p+^2:
    the Lyapunov covariance against 256 paths x 31 samples over t in [40, 100] (correlation time
    ~ 1/|A| ~ 2, so ~ 8000 nearly independent samples: std within 4%, ~3 standard errors)."""
    model = derive(loss="euclidean")
    system = model.stochastic(1)
    prm = {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0, "lr": 0.05, "B": 16}
    c = 1.2
    p = (1 + np.sqrt(1 - 4 * c * 0.1)) / (2 * c)
    lin = linear_noise(system, [p, p**2], prm)
    sol = integrate(system, [p, p**2], (0, 100), prm, paths=256, dt=0.02, t_eval=np.linspace(40, 100, 31))
    std = sol.y.reshape(-1, 2).std(0)
    np.testing.assert_allclose(std, lin.std, rtol=0.04)


@pytest.mark.slow
def test_seed_spread_of_the_network_is_predicted():
    """64 SGD seeds of a Euclidean network (h = 8) against the linear-noise spread of the
    derived SDE at lr = 0.05, B = 64: the mode-averaged seed std (8 x 63 degrees of freedom:
    relative standard error ~ 1/sqrt(2 * 504) = 3%) within 12% at every record."""
    spec = ModelSpec(loss="euclidean")
    prm = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}
    seeds = network_seeds(spec, prm, seeds=64, h=8, lr=0.05, batch=64, t1=3.0, n_records=4, progress=False)
    system = derive(spec).stochastic(8)
    pred = noise_spread(system, system.pack(p=seeds.init["p"], s=seeds.init["s"]), seeds.t, {**prm, "lr": 0.05, "B": 64})
    measured = seeds.spread()
    for name, block in (("p", slice(0, 8)), ("s", slice(8, 16))):
        ratio = measured[name][1:].mean(axis=1) / pred.std[1:, block].mean(axis=1)
        assert np.all(np.abs(ratio - 1) < 0.12), (name, ratio)
    # the batches are fixed by (seed, step): recording fewer times draws the same run
    few = network_seeds(spec, prm, seeds=4, h=2, lr=0.05, batch=8, t1=0.5, n_records=2, progress=False)
    many = network_seeds(spec, prm, seeds=4, h=2, lr=0.05, batch=8, t1=0.5, n_records=6, progress=False)
    np.testing.assert_allclose(few.p[:, -1], many.p[:, -1], rtol=1e-12)
    # and it is the noise: a 16x larger batch shrinks the spread 4x
    big = network_seeds(spec, prm, seeds=64, h=8, lr=0.05, batch=1024, t1=3.0, n_records=4, progress=False)
    shrink = measured["p"][-1].mean() / big.spread()["p"][-1].mean()
    assert 3.4 < shrink < 4.7


@pytest.mark.slow
def test_collapse_probability_near_the_fold_matches_one_mode_networks():
    """At eta = 1.03 eta_c (eta_c = 1/(4c), deterministic passage through the fold's ghost is
    slow) a one-mode network (h = d = 1: no off-diagonal weights) trained by SGD at lr = 0.05,
    B = 8 for t = 40 collapses (p < 1/(4c)) with the probability the SDE predicts: 1024 seeds
    and 4000 paths, within 4 combined binomial standard errors; without the Ito drift of s the
    SDE would collapse more."""
    spec = ModelSpec(loss="euclidean")
    c = 1.2
    eta = 1.03 / (4 * c)
    p0 = 1 / (2 * c)
    prm = {"sigma2": 0.2, "eta": eta, "alpha_p": 1.0}
    net = network_seeds(spec, prm, seeds=1024, h=1, lr=0.05, batch=8, t1=40.0, n_records=2,
                        init={"p": [p0], "s": [p0**2]}, progress=False)
    k_net = np.mean(net.p[:, -1, 0] < 1 / (4 * c))
    system = derive(spec).stochastic(1)
    sol = integrate(system, [p0, p0**2], (0, 40), {**prm, "lr": 0.05, "B": 8}, paths=4000, dt=0.05, t_eval=[0, 40])
    k_sde = np.mean(sol.y[:, -1, 0] < 1 / (4 * c))
    se = np.sqrt(k_net * (1 - k_net) / 1024 + k_sde * (1 - k_sde) / 4000)
    assert 0.3 < k_sde < 0.8
    assert abs(k_net - k_sde) < 4 * se
    # the same Brownian paths (the same seed) without the Ito drift, which lifts s: more collapse
    bare = StochasticSystem(system.drift, system.diffusion)
    sol = integrate(bare, [p0, p0**2], (0, 40), {**prm, "lr": 0.05, "B": 8}, paths=4000, dt=0.05, t_eval=[0, 40])
    assert np.mean(sol.y[:, -1, 0] < 1 / (4 * c)) > k_sde
