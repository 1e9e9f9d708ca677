"""The linear network trained on losses of the batch's moments with real batch statistics.

Unstandardised Barlow Twins without stop-gradient, aligned point Phi = diag(sqrt s) V^T, data
covariance V diag(lam) V^T: C = Phi Sx Phi^T = diag(s lam), the population loss
sum_i (1 - C_ii)^2 has gradient -4 diag(1 - s lam) Phi Sx, so
ds_j/dt = 8 s lam (1 - s lam) - 2 eta s: with lam = 1 the logistic
s(t) = K / (1 + (K / s0 - 1) e^{-r t}), r = 8 - 2 eta, K = r / 8. The batch adds
O(c^2 s / B) (3e-3 at B = 4096, see test_batch_montecarlo.py).

From a small random start the linear regime is dPhi/dt = 4 Phi Sx: the power of Phi along data
direction v_k grows like e^{8 lam_k t}, so the F eigenvalues rise one at a time in the order of
the data variances, at t_k ~ ln(theta / s0_k) / (8 lam_k).
"""

from __future__ import annotations

import numpy as np
import pytest

from derivations import ModelSpec
from dynamics import random_weights, simulate_network

BT = ModelSpec(loss="barlow-twins", standardize=False)


def test_aligned_barlow_twins_follows_the_logistic():
    h, eta = 8, 0.4
    s0 = np.linspace(0.05, 0.6, h)
    run = simulate_network(BT, {"sigma2": 0.2, "eta": eta, "lambda_BT": 0.05}, h=h, t1=1.0, dt=0.005, batch=4096,
                           init={"s": s0}, n_records=21, progress=False)
    r = 8 - 2 * eta
    K = r / 8

    def logistic(K, r):
        return K / (1 + (K / s0 - 1) * np.exp(-r * run.t[:, None]))

    # Euler steps (dt r = 0.036) and batch noise
    assert np.max(np.abs(run.s - logistic(K, r))) < 0.015  # measured 0.006
    assert np.max(np.abs(run.s - logistic(1.02 * K, 1.02 * r))) > 0.015  # a 2% error in the rate: resolved
    assert np.max(np.abs(run.s - logistic(1.0, 8.0))) > 0.05  # without weight decay: resolved
    assert np.max(np.abs(run.s - logistic(1.0, 4.0))) > 0.05  # the stop-gradient rate: resolved
    assert run.misalignment.max() < 0.02 and run.moment_offdiag.max() < 0.02 and run.moment_offdiag.shape == (21, 3)
    assert np.all(run.p == 1) and np.all(run.commutator == 0)
    assert run.batch_loss.shape == run.t.shape
    expected_loss = np.sum((1 - s0) ** 2)  # + O(1/B)
    assert abs(run.batch_loss[0] - expected_loss) < 0.05 * expected_loss
    # near the fixed point s = K the loss is sum_i (1 - s_i)^2 + O(1/B)
    assert abs(run.batch_loss[-1] - np.sum((1 - run.s[-1]) ** 2)) < 0.02


def test_random_start_learns_data_directions_one_at_a_time():
    spec = ModelSpec(loss="barlow-twins", standardize=False, data="spectrum")
    lam = np.array([4.0, 2.0, 1.0, 0.5])
    h, theta = 4, 0.1
    w0 = random_weights(spec, h, scale=1e-3, seed=1)
    assert set(w0) == {"Phi"}
    run = simulate_network(spec, {"sigma2": 0.2, "eta": 0.0, "lambda_BT": 1.0}, h=h, t1=6.0, dt=0.01, batch=1024,
                           lam=lam, init=w0, record_every=5, progress=False)
    risen = np.sum(run.s_eig > theta, axis=1)
    assert risen[0] == 0 and risen[-1] == h
    assert np.all(np.diff(risen) >= 0) and np.all(np.diff(risen) <= 1)
    rise = np.array([run.t[np.argmax(risen >= k)] for k in range(1, h + 1)])
    assert np.all(np.diff(rise) > 0.2)
    s0 = np.sum(w0["Phi"] ** 2, axis=0)  # ||Phi v_k||^2 at the start, v_k = e_k
    linear = np.log(theta / s0) / (8 * lam)
    assert np.all(np.abs(rise / linear - 1) < 0.25), (rise, linear)
    for k in range(1, h):
        plateau = np.flatnonzero(risen == k)
        mid = plateau[len(plateau) // 2]
        # with k modes risen, Phi's top-k right singular vectors are the first k data directions
        assert run.data_angles[mid, k - 1] < 0.1
    # the population minimum C = Phi Sx Phi^T = I: F has eigenvalues 1 / lam
    assert np.allclose(run.s_eig[-1], np.sort(1 / lam)[::-1], rtol=0.03)
    assert run.batch_loss[-1] < 0.01 * run.batch_loss[0]
    # the cross-correlation, far from diagonal at the random start, becomes diagonal (C -> I; with
    # lambda_BT = 1 the loss ||I - C||_F^2 is rotation invariant, so V1 and V2 need not)
    assert run.moment_offdiag[0, 0] > 0.3 and run.moment_offdiag[-1, 0] < 0.05


def test_standardised_barlow_twins_only_decays():
    spec = ModelSpec(loss="barlow-twins")
    s0 = np.linspace(0.2, 1.2, 4)
    run = simulate_network(spec, {"sigma2": 0.2, "eta": 0.3, "lambda_BT": 0.1}, h=4, t1=0.5, dt=0.01, batch=256,
                           init={"s": s0}, n_records=6, progress=False)
    steps = np.round(run.t / 0.01)
    assert np.allclose(run.s, s0 * (1 - 0.3 * 0.01) ** (2 * steps[:, None]), rtol=1e-3)


@pytest.mark.parametrize("loss", ["vicreg", "spectral-contrastive"])
def test_other_losses_train_on_a_data_set(loss):
    spec = ModelSpec(loss=loss)
    prm = {"sigma2": 0.1, "eta": 0.01}
    if loss == "vicreg":
        prm.update(lambda_inv=1.0, mu_var=1.0, nu_cov=0.1, gamma=1.0, eps_var=1e-4)
    X = np.random.default_rng(0).normal(size=(500, 6)) * np.array([2.0, 1.5, 1.0, 0.8, 0.6, 0.5])
    run = simulate_network(spec, prm, h=4, t1=0.2, dt=0.01, batch=64, samples=X - X.mean(0), n_records=5,
                           progress=False)
    assert run.status == "finished" and run.batch_loss.shape == (5,)
    assert run.batch_loss[-1] < run.batch_loss[0]


def test_expected_gradient_is_refused():
    with pytest.raises(ValueError, match="real batch statistics"):
        simulate_network(BT, {"sigma2": 0.2, "eta": 0.1, "lambda_BT": 0.05}, h=2, gradient="expected",
                         init={"s": [0.5, 0.5]}, progress=False)
    with pytest.raises(ValueError, match="lambda_BT"):
        simulate_network(BT, {"sigma2": 0.2, "eta": 0.1}, h=2, progress=False)
    with pytest.raises(ValueError, match="gamma"):
        simulate_network(ModelSpec(loss="vicreg"), {"sigma2": 0.2, "eta": 0.1, "lambda_inv": 1.0, "mu_var": 1.0,
                                                    "nu_cov": 0.1, "gamma": 0.0, "eps_var": 0.0}, h=2,
                         progress=False)
