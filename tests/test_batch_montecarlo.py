"""Monte Carlo of the true batch losses (Barlow Twins, VICReg, spectral contrastive) at aligned
points against expected flows derived by hand.

Aligned point, in the rotated coordinates y = V^T x: z1_j = phi_j y1_j, z2_j = phi_j y2_j,
E[y1 y2^T] = diag(lam), E[y1 y1^T] = diag(a1), E[y2 y2^T] = diag(a2), a2 = lam + sigma2,
a1 = a2 (both views noisy) or lam (one). For a loss f of the moment matrices C = Phi S12 Phi^T,
V1 = Phi S11 Phi^T, V2 = Phi S22 Phi^T with diagonal derivatives g = df/d(diagonal),
ds_j/dt = 2 phi_j (-(df/dphi_j) - eta phi_j), df/dphi_j = 2 phi_j (g_C lam + g_V1 a1 + g_V2 a2)
without stop-gradient (C and each V quadratic in Phi), and phi_j (g_C lam + 2 g_V1 a1) with it
(C linear in the trained Phi, V2 frozen).

Tolerances are z-scores |z| < 4 of the Monte-Carlo mean against the closed form; each test
also shows that the sample size resolves a 2% error in a coefficient (or the finite-batch term)
with |z| > 4.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from derivations import BatchMonteCarlo, ModelSpec, monte_carlo_batch

Z = 4.0


def _variances(lam, sigma2, views):
    lam = np.asarray(lam, dtype=float)
    a2 = lam + sigma2
    return (a2 if views == "both" else lam), a2


def barlow_unstandardised_rate(s, lam, sigma2, eta, lam_bt, B, *, views="both", stop_gradient=False, k=2.0):
    """Expected flow of sum_i (1 - C^_ii)^2 + lambda_BT sum_{i != j} C^_ij^2, C^ = Z1^T Z2 / B.

    E[(1 - C^_ii)^2] = (1 - C_ii)^2 + (C_ii^2 + V1_ii V2_ii) / B and
    E[C^_ij^2] = C_ij^2 (1 + 1/B) + V1_ii V2_jj / B (Isserlis; C_ij = 0 at aligned points), so
    g_C = -2 (1 - C_ii) + 2 C_ii / B, g_V1 = (V2_ii + lambda_BT sum_{j != i} V2_jj) / B and the
    same for g_V2; the population flow (B -> infinity, no stop-gradient) is
    8 s lam (1 - s lam) - 2 eta s. ``k`` is the coefficient 2 of g_C (changed to test the
    resolution).
    """
    a1, a2 = _variances(lam, sigma2, views)
    C, V1, V2 = s * lam, s * a1, s * a2
    gC = -k * (1 - C) + 2 * C / B
    gV1 = (V2 + lam_bt * (V2.sum() - V2)) / B
    gV2 = (V1 + lam_bt * (V1.sum() - V1)) / B
    if stop_gradient:
        return -2 * s * (gC * lam + 2 * gV1 * a1) - 2 * eta * s
    return -4 * s * (gC * lam + gV1 * a1 + gV2 * a2) - 2 * eta * s


def spectral_rate(s, lam, sigma2, eta, *, views="both", stop_gradient=False, k=2.0):
    """Expected flow of the spectral contrastive batch loss, -2 tr C + tr(V1 V2) at any B
    (a U-statistic): g_C = -k = -2, g_V1 = V2_ii, g_V2 = V1_ii; without stop-gradient
    8 s lam - 8 s^2 a1 a2 - 2 eta s, with it 4 s lam - 4 s^2 a1 a2 - 2 eta s."""
    a1, a2 = _variances(lam, sigma2, views)
    if stop_gradient:
        return -2 * s * (-k * lam + 2 * s * a2 * a1) - 2 * eta * s
    return -4 * s * (-k * lam + s * a2 * a1 + s * a1 * a2) - 2 * eta * s


def _hinge_rate(s, a, gamma, eps_var, B, mu_var):
    """mu_var s E[Q / sqrt(s Q + eps_var); sqrt(s Q + eps_var) < gamma], Q = a chi2_{B-1}/(B-1):
    the rate of (mu_var/2) relu(gamma - sqrt(S^_jj + eps_var)) with S^_jj = s Q exactly."""
    k = B - 1
    out = []
    for sj, aj in zip(s, np.broadcast_to(a, np.shape(s))):
        top = (gamma**2 - eps_var) * k / (sj * aj)
        value, _ = integrate.quad(
            lambda x: aj * x / k / np.sqrt(sj * aj * x / k + eps_var) * stats.chi2.pdf(x, k), 0, top, limit=200)
        out.append(mu_var * sj * value)
    return np.array(out)


def vicreg_rate(s, lam, p, B, *, views="both", cov_scale=1.0):
    """Expected flow of the VICReg batch loss without stop-gradient: the invariance term
    -4 lambda_inv s (a1 + a2 - 2 lam); the covariance term -4 s a g with
    g = 2 nu_cov sum_{k != j} s_k a_k / (B - 1) per branch (E[S^_ij^2] = S_ij^2 + (S_ii S_jj +
    S_ij^2) / (B - 1), exact); the hinge by quadrature over the chi-square law of S^_jj."""
    a1, a2 = _variances(lam, p["sigma2"], views)
    rate = -4 * p["lambda_inv"] * s * (a1 + a2 - 2 * lam) - 2 * p["eta"] * s
    for a in (a1, a2):
        v = s * a
        rate = rate - cov_scale * 4 * s * a * 2 * p["nu_cov"] * (v.sum() - v) / (B - 1)
        rate = rate + _hinge_rate(s, a, p["gamma"], p["eps_var"], B, p["mu_var"])
    return rate


def _check(mc: BatchMonteCarlo, reference, wrong):
    z = mc.z(reference)
    assert np.max(np.abs(z)) < Z, z
    assert np.max(np.abs(mc.z(wrong))) > Z
    assert mc.off_z < 5.0 and mc.offdiag < 0.05


def test_barlow_unstandardised_finite_batch():
    s = np.linspace(0.3, 1.4, 8)
    p = {"sigma2": 0.2, "eta": 0.1, "lambda_BT": 0.1}
    spec = ModelSpec(loss="barlow-twins", standardize=False)
    mc = monte_carlo_batch(spec, s, p, batch=64, n_batches=20000, seed=1)
    exact = barlow_unstandardised_rate(s, 1.0, 0.2, 0.1, 0.1, 64)
    _check(mc, exact, barlow_unstandardised_rate(s, 1.0, 0.2, 0.1, 0.1, 64, k=2 * 1.02))
    population = 8 * s * (1 - s) - 2 * 0.1 * s
    assert np.max(np.abs(mc.z(population))) > 10 * Z


def test_barlow_unstandardised_stop_gradient_spectrum_one_view():
    s = np.linspace(0.2, 1.2, 6)
    lam = np.linspace(0.5, 2.0, 6)
    p = {"sigma2": 0.3, "eta": 0.05, "lambda_BT": 0.3}
    spec = ModelSpec(loss="barlow-twins", standardize=False, stop_gradient=True, views="one", data="spectrum")
    mc = monte_carlo_batch(spec, s, p, batch=16, n_batches=20000, lam=lam, seed=2)
    exact = barlow_unstandardised_rate(s, lam, 0.3, 0.05, 0.3, 16, views="one", stop_gradient=True)
    _check(mc, exact, barlow_unstandardised_rate(s, lam, 0.3, 0.05, 0.3, 16, views="one", stop_gradient=True,
                                                 k=2 * 1.02))


def test_barlow_standardised_is_weight_decay_only():
    s = np.linspace(0.2, 1.5, 8)
    p = {"sigma2": 0.2, "eta": 0.2, "lambda_BT": 0.05}
    mc = monte_carlo_batch(ModelSpec(loss="barlow-twins"), s, p, batch=16, n_batches=512, seed=3)
    assert np.max(np.abs(mc.mean + 2 * 0.2 * s)) < 1e-10
    assert np.max(np.abs(mc.drive)) < 1e-10
    assert mc.loss > 0.1  # the batch correlations are not 1: the loss is not trivially flat


@pytest.mark.parametrize("stop_gradient, views", [(False, "both"), (True, "one")])
def test_spectral_contrastive_unbiased(stop_gradient, views):
    s = np.linspace(0.1, 0.6, 6)
    lam = np.linspace(0.4, 1.6, 6)
    p = {"sigma2": 0.25, "eta": 0.1}
    spec = ModelSpec(loss="spectral-contrastive", data="spectrum", stop_gradient=stop_gradient, views=views)
    mc = monte_carlo_batch(spec, s, p, batch=16, n_batches=20000, lam=lam, seed=4)
    _check(mc, spectral_rate(s, lam, 0.25, 0.1, views=views, stop_gradient=stop_gradient),
           spectral_rate(s, lam, 0.25, 0.1, views=views, stop_gradient=stop_gradient, k=2 * 1.02))
    assert np.max(np.abs(mc.U)) < 0.99  # the embedding basis is a full rotation, not a permutation


def test_vicreg_finite_batch():
    s = np.linspace(0.3, 1.5, 8)
    p = {"sigma2": 0.2, "eta": 0.05, "lambda_inv": 1.0, "mu_var": 2.0, "nu_cov": 0.3, "gamma": 1.0, "eps_var": 1e-3}
    mc = monte_carlo_batch(ModelSpec(loss="vicreg"), s, p, batch=16, n_batches=20000, seed=5)
    _check(mc, vicreg_rate(s, 1.0, p, 16), vicreg_rate(s, 1.0, p, 16, cov_scale=1.02))


def test_bad_input():
    p = {"sigma2": 0.2, "eta": 0.1, "lambda_BT": 0.1}
    spec = ModelSpec(loss="barlow-twins")
    with pytest.raises(ValueError, match="batch's moments"):
        monte_carlo_batch(ModelSpec(), [1.0], {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0}, batch=8, n_batches=8)
    with pytest.raises(ValueError, match="params"):
        monte_carlo_batch(spec, [1.0, 0.5], {"sigma2": 0.2, "eta": 0.1}, batch=8, n_batches=8)
    with pytest.raises(ValueError, match="batch"):
        monte_carlo_batch(spec, [1.0, 0.5], p, batch=1, n_batches=8)
    with pytest.raises(ValueError, match="s must"):
        monte_carlo_batch(spec, [1.0, -0.5], p, batch=8, n_batches=8)
