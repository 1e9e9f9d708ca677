"""Alignment observables (commutator, eigenspace angles, off-diagonal mass) against closed
forms and scipy, random starts, and the network run from any weights."""

import jax
import numpy as np
import pytest
from scipy.linalg import subspace_angles

from derivations import ModelSpec
from dynamics import (
    aligned_init,
    alignment_observables,
    commutator,
    default_spectrum,
    eigenspace_angles,
    offdiagonal_mass,
    principal_angles,
    random_weights,
    simulate_network,
)

SIGMA2 = 0.2


def _rot(theta):
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("theta", [1e-9, 0.3, 1.1, np.pi / 2 - 1e-9])
def test_rotated_2x2_eigenvectors_give_angle_theta_and_the_commutator_by_hand(theta):
    """F = diag(a1, a2), W = R(theta) diag(b1, b2) R(theta)^T: [F, W] = (a1 - a2) w12 [[0, 1], [-1, 0]]
    with w12 = (b1 - b2) sin cos, so ||[F, W]||_F = sqrt(2) |a1 - a2| |b1 - b2| |sin cos|."""
    a, b = np.array([3.0, 1.0]), np.array([2.0, 0.5])
    F, R = np.diag(a), _rot(theta)
    W = R @ np.diag(b) @ R.T
    by_hand = np.sqrt(2) * (a[0] - a[1]) * (b[0] - b[1]) * abs(np.sin(theta) * np.cos(theta))
    assert float(commutator(F, W)) == pytest.approx(by_hand / (np.linalg.norm(a) * np.linalg.norm(b)), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(np.asarray(eigenspace_angles(F, W)), [theta], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(principal_angles(np.eye(2)[:, :1], R[:, :1])), [theta], rtol=1e-12, atol=1e-15)
    w12 = (b[0] - b[1]) * np.sin(theta) * np.cos(theta)
    assert float(offdiagonal_mass(W, np.eye(2))) == pytest.approx(np.sqrt(2) * abs(w12) / np.linalg.norm(b), rel=1e-12)


def test_common_eigenvectors_give_zeros_and_reversed_order_gives_right_angles():
    rng = np.random.default_rng(4)
    n = 6
    Q = _orthogonal(rng, n)
    F = Q @ np.diag([6.0, 5.0, 4.0, 3.0, 2.0, 1.0]) @ Q.T
    W = Q @ np.diag([3.0, 2.5, 2.0, 1.0, 0.5, -0.1]) @ Q.T
    assert float(commutator(F, W)) < 1e-12
    assert np.max(np.asarray(eigenspace_angles(F, W))) < 1e-12
    assert float(offdiagonal_mass(W, Q)) < 1e-12 and float(offdiagonal_mass(F, Q)) < 1e-12
    assert np.max(np.asarray(principal_angles(Q[:, :3], Q[:, :3] @ rng.normal(size=(3, 3))))) < 1e-12
    # the same eigenvectors in the opposite order: they commute, but the top-k subspaces of F
    # and W meet only in a (2k - n)-dimensional part, so the largest angle is pi/2 at every k
    W_rev = Q @ np.diag(np.arange(1.0, n + 1)) @ Q.T
    assert float(commutator(F, W_rev)) < 1e-12
    np.testing.assert_allclose(np.asarray(eigenspace_angles(F, W_rev)), np.full(n - 1, np.pi / 2), atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_eigenspace_angles_match_scipy_subspace_angles(n):
    rng = np.random.default_rng(n)
    A, B = rng.normal(size=(2, n, n))
    A, B = A + A.T, B + B.T
    U1, U2 = np.linalg.eigh(A)[1][:, ::-1], np.linalg.eigh(B)[1][:, ::-1]
    ref = [np.max(subspace_angles(U1[:, :k], U2[:, :k])) for k in range(1, n)]
    np.testing.assert_allclose(np.asarray(eigenspace_angles(A, B)), ref, atol=1e-10)
    X, Y = rng.normal(size=(n, max(1, n // 2))), rng.normal(size=(n, n - 1 if n > 2 else 2))
    np.testing.assert_allclose(np.asarray(principal_angles(X, Y)), np.sort(subspace_angles(X, Y)), atol=1e-10)


def test_offdiagonal_mass_of_a_hand_made_matrix_and_zero_conventions():
    M = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert float(offdiagonal_mass(M, np.eye(2))) == pytest.approx(np.sqrt(13 / 30), rel=1e-14)
    S = np.array([[2.0, 1.0], [1.0, 2.0]])  # eigenvectors (1, +-1)/sqrt(2)
    assert float(offdiagonal_mass(S, _rot(np.pi / 4))) < 1e-15
    assert float(offdiagonal_mass(S, np.eye(2))) == pytest.approx(np.sqrt(2 / 10), rel=1e-14)
    Z = np.zeros((3, 3))
    assert float(commutator(Z, np.eye(3))) == 0.0 and float(offdiagonal_mass(Z, np.eye(3))) == 0.0


def test_observables_are_jit_and_vmap_friendly():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(2, 3, 4, 4))
    A, B = A + A.transpose(0, 2, 1), B + B.transpose(0, 2, 1)
    batched = jax.jit(jax.vmap(eigenspace_angles))(A, B)
    np.testing.assert_allclose(batched[1], eigenspace_angles(A[1], B[1]), atol=1e-14)
    np.testing.assert_allclose(jax.jit(jax.vmap(commutator))(A, B)[2], commutator(A[2], B[2]), atol=1e-15)


@pytest.mark.parametrize("spec, keys", [
    (ModelSpec("euclidean"), {"Phi", "Psi"}),
    (ModelSpec("euclidean", "ema"), {"Phi", "Psi", "Phi_a"}),
    (ModelSpec("euclidean", predictor="directpred"), {"Phi"}),
    (ModelSpec("euclidean", "ema", predictor="none"), {"Phi", "Phi_a"}),
])
def test_random_weights_keys_shapes_and_statistics(spec, keys):
    h, d, scale = 40, 60, 1.5
    w = random_weights(spec, h, d=d, scale=scale, seed=3)
    assert set(w) == keys and w["Phi"].shape == (h, d)
    # E[Phi_ij^2] = scale^2 / d, E[Psi_ij^2] = scale^2 / h; 2400 and 1600 entries: the mean of
    # squares has a relative standard deviation below 0.04, so 0.2 is five of them
    assert np.mean(w["Phi"] ** 2) * d == pytest.approx(scale**2, rel=0.2)
    assert abs(np.mean(w["Phi"])) < 5 * scale / np.sqrt(d * h * d)
    if "Psi" in keys:
        assert w["Psi"].shape == (h, h) and np.mean(w["Psi"] ** 2) * h == pytest.approx(scale**2, rel=0.2)
    if "Phi_a" in keys:
        np.testing.assert_array_equal(w["Phi_a"], w["Phi"])
    np.testing.assert_array_equal(random_weights(spec, h, d=d, scale=scale, seed=3)["Phi"], w["Phi"])
    assert not np.allclose(random_weights(spec, h, d=d, scale=scale, seed=4)["Phi"], w["Phi"])


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(h=0), ValueError, "h must be an int >= 1"),
    (dict(h=2.5), ValueError, "h must be an int >= 1"),
    (dict(h=4, d=3), ValueError, "d must be >= the width"),
    (dict(h=4, d=0), ValueError, "d must be an int >= 1"),
    (dict(h=4, scale=0.0), ValueError, "scale must be a positive finite number"),
    (dict(h=4, scale=np.inf), ValueError, "scale must be a positive finite number"),
    (dict(h=4, spec="euclidean"), TypeError, "spec must be a derivations.ModelSpec"),
])
def test_random_weights_bad_input(kwargs, exc, match):
    spec = kwargs.pop("spec", ModelSpec("euclidean"))
    with pytest.raises(exc, match=match):
        random_weights(spec, **kwargs)


def test_weights_start_equal_to_the_aligned_start_reproduces_the_spectra_run():
    """The aligned start's own matrices as weights, with the same input basis: the same run to
    1e-10, the same U up to signs; the features stay on the data eigenvectors (data_angles 0)."""
    h, d = 4, 5
    spec = ModelSpec("euclidean", "ema", data="spectrum")
    params = {"sigma2": SIGMA2, "eta": 0.1, "alpha_p": 1.0, "beta": 0.5}
    lam = [2.0, 1.2, 0.7, 0.4, 0.2]
    basis = _orthogonal(np.random.default_rng(7), d)
    spectra = default_spectrum(h) | {"tau": np.array([0.9, 0.8, 0.95, 0.7])}
    start = aligned_init(h, spectra, seed=0, d=d, basis=basis)
    common = dict(h=h, t1=1.0, n_records=5, lam=lam, basis=basis)
    ref = simulate_network(spec, params, init=spectra, **common)
    run = simulate_network(spec, params, init={k: start[k] for k in ("Phi", "Psi", "Phi_a")}, **common)
    assert run.status == ref.status == "finished"
    for name in ("p", "s", "tau", "p_eig", "s_eig", "psi_norm2", "phi_norm2", "misalignment", "commutator",
                 "offdiag", "target_offdiag", "a_norm2", "b_norm2"):
        np.testing.assert_allclose(getattr(run, name), getattr(ref, name), atol=1e-10, err_msg=name)
    np.testing.assert_allclose(np.abs(np.sum(run.final["U"] * ref.final["U"], axis=0)), 1.0, atol=1e-12)
    np.testing.assert_array_equal(run.final["V"], ref.final["V"])
    for name in ("init",):
        for k in ("p", "s", "tau"):
            np.testing.assert_allclose(getattr(run, name)[k], getattr(ref, name)[k], atol=1e-12)
    assert run.data_angles.shape == (5, h - 1) and np.max(run.data_angles) < 1e-8
    assert np.max(run.commutator) < 1e-12 and np.max(run.target_offdiag) < 1e-12


def test_random_start_runs_and_records_the_observables_of_its_matrices():
    h = 4
    spec = ModelSpec("euclidean")
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}
    w = random_weights(spec, h, seed=2)
    run = simulate_network(spec, params, h=h, t1=2.0, n_records=5, init=w, gradient="expected")
    assert run.status == "finished" and run.data_angles is None and run.target_offdiag is None
    for name in ("p", "s", "tau", "commutator", "angles", "offdiag", "misalignment"):
        assert np.all(np.isfinite(getattr(run, name))), name
    assert run.commutator.shape == (5,) and run.angles.shape == (5, h - 1)
    F, Psi = w["Phi"] @ w["Phi"].T, w["Psi"]
    Ws = 0.5 * (Psi + Psi.T)
    # by hand: the normalised commutator, scipy's angles between eigenspaces, the basis U
    com = np.linalg.norm(F @ Ws - Ws @ F) / (np.linalg.norm(F) * np.linalg.norm(Ws))
    assert run.commutator[0] == pytest.approx(com, rel=1e-12)
    ev, UF = np.linalg.eigh(F)
    UF, UW = UF[:, ::-1], np.linalg.eigh(Ws)[1][:, ::-1]
    np.testing.assert_allclose(run.angles[0], [np.max(subspace_angles(UF[:, :k], UW[:, :k])) for k in range(1, h)],
                               atol=1e-10)
    A = UF.T @ Psi @ UF
    assert run.offdiag[0] == pytest.approx(np.linalg.norm(A - np.diag(np.diag(A))) / np.linalg.norm(Psi), rel=1e-12)
    np.testing.assert_allclose(run.s[0], ev[::-1], rtol=1e-12)
    np.testing.assert_allclose(run.p[0], np.diag(A), atol=1e-12)
    assert run.commutator[0] > 0.1
    obs = alignment_observables(spec, {k: run.final[k] for k in ("Phi", "Psi")}, params)
    assert float(obs["commutator"]) == pytest.approx(run.commutator[-1], rel=1e-12)
    assert "commutator" in run._repr_html_()


def _bad(h=4, d=4):
    return {"Phi": np.ones((h, d)), "Psi": np.eye(h)}


@pytest.mark.parametrize("spec, init, exc, match", [
    (ModelSpec("euclidean"), {"Phi": np.ones((4, 4))}, ValueError, r"init\['Psi'\] is missing.*\(4, 4\)"),
    (ModelSpec("euclidean"), {"Phi": np.ones((4, 3)), "Psi": np.eye(4)}, ValueError, r"init\['Phi'\] must have shape \(4, 4\)"),
    (ModelSpec("euclidean"), {"Phi": np.ones((4, 4)), "Psi": np.eye(3)}, ValueError, r"init\['Psi'\] must have shape \(4, 4\)"),
    (ModelSpec("euclidean"), _bad() | {"Psi": np.full((4, 4), np.nan)}, ValueError, r"init\['Psi'\] must be finite"),
    (ModelSpec("euclidean"), _bad() | {"W": np.eye(4)}, ValueError, r"init\['W'\] is not allowed: unknown key"),
    (ModelSpec("euclidean"), _bad() | {"s": np.ones(4)}, ValueError, r"init\['s'\] is not allowed: spectra and weights cannot be mixed"),
    (ModelSpec("euclidean"), _bad() | {"Phi_a": np.ones((4, 4))}, ValueError, r"init\['Phi_a'\] is not allowed: this model does not train it"),
    (ModelSpec("euclidean", predictor="directpred"), _bad(), ValueError, r"init\['Psi'\] is not allowed"),
    (ModelSpec("euclidean", "ema"), _bad() | {"Phi_a": np.ones((4, 5))}, ValueError, r"init\['Phi_a'\] must have shape \(4, 4\)"),
    (ModelSpec("euclidean"), [np.ones(4)], TypeError, "init must be a mapping"),
])
def test_bad_weights_init(spec, init, exc, match):
    params = {"sigma2": SIGMA2, "eta": 0.1, "alpha_p": 1.0, "beta": 0.5, "alpha": 0.5}
    params = {k: v for k, v in params.items() if k in ("sigma2", "eta") or
              (k == "alpha_p" and spec.predictor == "learned") or (k == "beta" and spec.target == "ema")
              or (k == "alpha" and spec.predictor == "directpred")}
    with pytest.raises(exc, match=match):
        simulate_network(spec, params, h=4, t1=1.0, init=init)
