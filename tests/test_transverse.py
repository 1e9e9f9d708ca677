"""Alignment rates (the matrix flow linearised across the aligned manifold) against independent
references: the quotient classification of the whole Jacobian, the decay measured by
integrating the matrix flow, and the closed form of the Euclidean model's balancedness."""

import numpy as np
import pytest

import dynamics
from derivations import MatrixFlowSystem, ModelSpec, derive
from dynamics import integrate
from dynamics.ssl import aligned_state, commutator, transverse_spectrum

C = 1.2
BASE = {"sigma2": 0.2, "alpha_p": 1.0}


def _p_plus(eta, lam=1.0):
    """Tian's non-collapsed equilibrium of a Euclidean mode with data variance lam (alpha_p = 1,
    s = p^2): lam (tau - c' p) = eta with c' = lam + sigma2 -> p = (lam + sqrt(lam^2 - 4 c' eta)) / (2 c')."""
    cp = lam + BASE["sigma2"]
    return (lam + np.sqrt(lam**2 - 4 * cp * eta)) / (2 * cp)


def test_pair_blocks_and_the_eigenmode_block_make_up_the_quotient_jacobian():
    """At an aligned equilibrium (two modes at p+, one collapsed) the quotient eigenvalues of the
    pair blocks, with the eigenmode system's own Jacobian eigenvalues in matrix coordinates
    (phi = sqrt(s): the s-rate halves), are the eigenvalues ``classify`` finds on the quotient by
    the whole orbit (an SVD of all generators), as multisets."""
    eta = 0.05
    system = MatrixFlowSystem(ModelSpec("euclidean"), 3)
    pp = _p_plus(eta)
    spectra = {"p": np.array([pp, pp, 0.0]), "s": np.array([pp**2, pp**2, 0.0])}
    params = {**BASE, "eta": eta}
    ts = transverse_spectrum(system, spectra, params)
    assert ts.at_equilibrium and ts.stable
    whole = dynamics.classify(system, aligned_state(system, spectra), params)
    assert whole.family_dimension == 5 == int(np.sum(ts.orbit_dims))
    pair_ev = np.concatenate(ts.eigenvalues).real
    # the diagonal block: per mode the 2 x 2 Jacobian of (p, phi); phi' = (s'/2)/phi
    diag = []
    for k in range(3):
        p, phi = spectra["p"][k], np.sqrt(spectra["s"][k])
        J = np.array([[-C * phi**2 - eta, 2 * phi * (1 - C * p)],
                      [phi * (1 - 2 * C * p) if phi else 1 - C * p, p * (1 - C * p) - eta]])
        diag += list(np.linalg.eigvals(J).real)
    np.testing.assert_allclose(np.sort(np.r_[pair_ev, diag]), np.sort(whole.eigenvalues.real), atol=1e-9)


@pytest.mark.parametrize("eta", [0.05, 0.1])
def test_euclidean_alignment_rate_is_twice_the_weight_decay(eta):
    """Closed form: d/dt (Phi Phi^T - Psi^T Psi / alpha_p) = -2 eta (Phi Phi^T - Psi^T Psi / alpha_p)
    exactly (the two gradient terms cancel), so the off-diagonal, misaligning part of that
    balancedness matrix decays at 2 eta and no faster; every other transverse rate is faster.
    Data spectrum (distinct modes) at the aligned equilibrium."""
    lam = np.array([2.0, 1.2, 0.7])
    system = MatrixFlowSystem(ModelSpec("euclidean", data="spectrum"), 3)
    p = np.array([_p_plus(eta, l_) for l_ in lam])
    ts = transverse_spectrum(system, {"p": p, "s": p**2}, {**BASE, "eta": eta, "lambda": lam})
    assert ts.at_equilibrium and ts.stable
    np.testing.assert_allclose(ts.rates, -2 * eta, rtol=1e-9)
    np.testing.assert_allclose(ts.commutator_rate, -2 * eta, rtol=1e-9)


def test_without_weight_decay_the_aligned_manifold_does_not_attract():
    """eta = 0: the balancedness matrix is conserved, so a misalignment stored in it never decays:
    the slowest rate is 0 and the manifold is not transversally stable."""
    lam = np.array([2.0, 1.2, 0.7])
    system = MatrixFlowSystem(ModelSpec("euclidean", data="spectrum"), 3)
    p = np.array([_p_plus(0.0, l_) for l_ in lam])
    ts = transverse_spectrum(system, {"p": p, "s": p**2}, {**BASE, "eta": 0.0, "lambda": lam})
    assert abs(ts.slowest) < 1e-9 and not ts.stable


def test_predicted_rate_matches_the_integrated_matrix_flow():
    """A small misalignment of one pair, integrated with the matrix flow: the commutator's
    measured log-slope equals the predicted commutator rate to 1e-3."""
    lam = np.array([2.0, 1.2, 0.7])
    eta = 0.05
    system = MatrixFlowSystem(ModelSpec("euclidean", target="ema", data="spectrum"), 3)
    params = {**BASE, "eta": eta, "beta": 0.5, "lambda": lam}
    p = np.array([_p_plus(eta, l_) for l_ in lam])
    spectra = {"p": p, "s": p**2}
    ts = transverse_spectrum(system, spectra, params)
    w = system.unpack(aligned_state(system, spectra))
    w["Psi"][0, 1] += 1e-6
    w["Phi"][1, 0] -= 7e-7
    w["Phi_a"][0, 1] += 3e-7
    t = np.linspace(0, 60, 61)
    sol = integrate(system, system.pack(**w), (0, 60), params, t_eval=t, backend="scipy")
    cs = np.array([float(commutator(ww["Phi"] @ ww["Phi"].T, ww["Psi"]))
                   for ww in (system.unpack(y) for y in sol.y)])
    slope = np.polyfit(t[30:], np.log(cs[30:]), 1)[0]
    assert slope == pytest.approx(ts.commutator_rates[0], rel=1e-3)


def test_bad_input():
    system = MatrixFlowSystem(ModelSpec("euclidean"), 2)
    with pytest.raises(TypeError, match="MatrixFlowSystem"):
        transverse_spectrum(derive(ModelSpec("euclidean")), {"s": [1.0]}, {**BASE, "eta": 0.1})
    with pytest.raises(ValueError, match="spectra\\['s'\\]"):
        transverse_spectrum(system, {"s": [1.0]}, {**BASE, "eta": 0.1})
    with pytest.raises(ValueError, match=">= 0"):
        transverse_spectrum(system, {"s": [1.0, -1.0]}, {**BASE, "eta": 0.1})
    with pytest.raises(ValueError, match="may have"):
        transverse_spectrum(system, {"s": [1.0, 1.0], "q": [1, 1]}, {**BASE, "eta": 0.1})


def test_commutator_form_against_autodiff():
    """The first-order commutator [F, W_s]_ij on the pair coordinates against jax.jvp of the
    commutator itself at distinct p, s (W_s = (Psi + Psi^T)/2)."""
    import jax
    import jax.numpy as jnp

    from dynamics.ssl._transverse import _commutator_form

    system = MatrixFlowSystem(ModelSpec("euclidean"), 2)
    p, s = np.array([0.9, 0.3]), np.array([1.0, 0.25])
    y0 = aligned_state(system, {"p": p, "s": s})
    coords = [("Psi", 0, 1), ("Psi", 1, 0), ("Phi", 0, 1), ("Phi", 1, 0)]

    def comm01(y):
        w = {}
        w["Psi"], w["Phi"] = y[:4].reshape(2, 2), y[4:].reshape(2, 2)
        F, W = w["Phi"] @ w["Phi"].T, (w["Psi"] + w["Psi"].T) / 2
        return (F @ W - W @ F)[0, 1]

    expect = []
    for g, a, b in coords:
        v = np.zeros(8)
        v[(0 if g == "Psi" else 4) + 2 * a + b] = 1.0
        expect.append(float(jax.jvp(comm01, (jnp.asarray(y0),), (jnp.asarray(v),))[1]))
    np.testing.assert_allclose(_commutator_form(system, "pair", coords, 0, 1, p, s), expect, atol=1e-12)


def test_results_are_immutable_and_d_below_h_is_refused():
    lam = np.array([2.0, 1.2, 0.7])
    system = MatrixFlowSystem(ModelSpec("euclidean", data="spectrum"), 3)
    p = np.array([_p_plus(0.05, l_) for l_ in lam])
    ts = transverse_spectrum(system, {"p": p, "s": p**2}, {**BASE, "eta": 0.05, "lambda": lam})
    assert not ts.blocks[0].flags.writeable and not ts.eigenvalues[0].flags.writeable
    with pytest.raises(ValueError, match="d >= h"):
        aligned_state(MatrixFlowSystem(ModelSpec("euclidean"), 3, d=2), {"s": [1.0, 1.0, 1.0]})
