"""The expected matrix flow (no eigenmode ansatz) against independent references: autodiff of
the exact Gaussian average of quadratic losses, Monte Carlo of jax.grad of the true per-sample
loss at random non-aligned weights, the eigenmode systems on aligned weights, and finite
differences for the spectral power's derivative."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import chi2

from derivations import (
    MatrixFlowSystem,
    ModelSpec,
    derive,
    expected_loss,
    sample_loss,
    sample_views,
    spectral_power,
    view_covariance,
    weight_flow,
)
from dynamics import integrate
from dynamics.ssl import aligned_init

PRM = {"sigma2": 0.3, "eta": 0.1, "alpha_p": 1.0, "beta": 0.5, "N_psi": 1.3, "N_phi": 0.9, "alpha": 0.5, "eps": 0.1}


def _params(system, lam=None):
    p = {k: PRM[k] for k in system.param_names if k != "lambda"}
    if "lambda" in system.param_names:
        p["lambda"] = lam
    return p


def _random_weights(system, rng, scale=1.0):
    h, d = system.h, system.d
    shapes = {"Psi": (h, h), "Phi": (h, d), "Phi_a": (h, d)}
    return {k: scale * rng.normal(size=shapes[k]) / np.sqrt(shapes[k][1]) for k in system.weight_names}


def _rhs(system, w, p):
    return system.unpack(np.asarray(system.to_jax()(0.0, system.pack(**w), p)))


def _mc_flow(spec, w, p, n, seed=0, chunk=40_000):
    """Mean and standard error of the per-sample weight flow of the TRUE loss (jax.grad)."""
    f = sample_loss(spec)
    wj = {k: jnp.asarray(v) for k, v in w.items()}
    lam = jnp.asarray(p.get("lambda", np.ones(w["Phi"].shape[1])))

    def per(x1, x2):
        g = jax.grad(lambda ww: f(ww, wj, x1[None], x2[None], p)[0])({k: v for k, v in wj.items() if k != "Phi_a"})
        fl = weight_flow(spec, wj, g, p)
        return jnp.concatenate([fl[k].reshape(-1) for k in w])

    per_b = jax.jit(jax.vmap(per))
    key, s1, s2 = jax.random.PRNGKey(seed), 0.0, 0.0
    for _ in range(n // chunk):
        key, k = jax.random.split(key)
        v = np.asarray(per_b(*sample_views(spec, k, chunk, lam, p)))
        s1, s2 = s1 + v.sum(0), s2 + (v**2).sum(0)
    mean = s1 / n
    return mean, np.sqrt(np.maximum(s2 / n - mean**2, 0.0) / n)


@pytest.mark.parametrize("spec", [
    ModelSpec("euclidean"),
    ModelSpec("euclidean", target="ema"),
    ModelSpec("euclidean", stop_gradient=False),
    ModelSpec("euclidean", predictor="none", views="one"),
    ModelSpec("isoloss", predictor="directpred", eps=True),
    ModelSpec("euclidean", data="spectrum"),
])
def test_quadratic_losses_match_autodiff_of_the_exact_average(spec):
    """Losses quadratic in the samples: E[L] = tr(H cov)/2 exactly (``expected_loss``, autodiff
    of a Hessian), differentiated by jax.grad; agreement to rounding at random weights, d > h."""
    rng = np.random.default_rng(0)
    system = MatrixFlowSystem(spec, 3, d=5)
    lam = np.array([2.0, 1.0, 0.7, 0.4, 0.2])
    p = _params(system, lam)
    w = _random_weights(system, rng)
    got = _rhs(system, w, p)
    wj = {k: jnp.asarray(v) for k, v in w.items()}
    cov = view_covariance(spec, jnp.asarray(lam if spec.data == "spectrum" else np.ones(5)), p)
    live = {k: v for k, v in wj.items() if k != "Phi_a"}
    grads = jax.grad(lambda ww: expected_loss(spec)(dict(wj, **ww), wj, p, cov))(live)
    ref = weight_flow(spec, wj, grads, p)
    for k in w:
        np.testing.assert_allclose(got[k], np.asarray(ref[k]), rtol=1e-11, atol=1e-13)


MC_SPECS = [  # (model, the smallest relative error the check must catch)
    (ModelSpec("cosine", norms="exact"), 0.02),
    (ModelSpec("cosine", norms="exact", stop_gradient=False), 0.02),
    (ModelSpec("isoloss-cosine", norms="exact", predictor="directpred"), 0.05),
    (ModelSpec("cosine", norms="self-consistent", moments="leading"), 0.02),
    (ModelSpec("(B - 1)**2 + A*C/4"), 0.02),
]


@pytest.mark.parametrize("spec, caught", MC_SPECS, ids=lambda s: getattr(s, "label", str(s)))
def test_matrix_flow_matches_monte_carlo_of_the_true_gradient(spec, caught):
    """z-scores of the derived flow against Monte Carlo of jax.grad of the per-sample loss at a
    random non-aligned point (h = 3, 160k samples): every |z| < 5 and chi^2 within its 1e-4
    quantile; the flow scaled by 1 + ``caught`` is rejected by chi^2 (2%; 5% for IsoLoss, whose
    Phi flow is small against its sampling noise at this sample size).

    The self-consistent closure is an approximation of the cosine loss: its reference is the
    per-sample gradient with the same norms and mean held (``_leading_as_loss``); the exact
    flow is checked against the true cosine gradient."""
    rng = np.random.default_rng(1)
    system = MatrixFlowSystem(spec, 3)
    p = _params(system)
    w = _random_weights(system, rng)
    got = system.pack(**_rhs(system, w, p))
    ref_spec = _leading_as_loss(w, p) if spec.norms == "self-consistent" else spec
    mean, se = _mc_flow(ref_spec, w, p, 160_000)
    z = (mean - got) / se
    bound = chi2.ppf(1 - 1e-4, z.size)
    assert np.max(np.abs(z)) < 5.0 and np.sum(z**2) < bound, z
    assert np.sum(((mean - (1 + caught) * got) / se) ** 2) > bound


def _leading_as_loss(w, p):
    """Self-consistent norms with leading moments as a per-sample surrogate loss with the same
    gradient in a: L~ = -B/(Np Nf) + A T/(2 Np^3 Nf) with Np^2 = E||a||^2, Nf^2 = E||b||^2 and
    T = E<a, b> computed from the weights (numbers), so dL~/da = -b/(Np Nf) + T a/(Np^3 Nf)."""
    import sympy as sp

    from derivations.symbols import A, B

    W, Phi, c = w["Psi"], w["Phi"], 1 + p["sigma2"]
    Np = np.sqrt(c * np.sum((W @ Phi) ** 2))
    Nf = np.sqrt(c * np.sum(Phi**2))
    T = float(np.trace(W @ Phi @ Phi.T))
    return ModelSpec(-B / sp.Float(Np * Nf) + A * sp.Float(T / (2 * Np**3 * Nf)))


def test_frozen_exact_moments_match_monte_carlo():
    """Frozen norms with exact moments: E[(-b/(Np Nf) + B a/(Np^3 Nf)) x1^T] by Monte Carlo
    (NumPy, samples drawn directly), against the derived flow's G."""
    rng = np.random.default_rng(2)
    spec = ModelSpec("cosine", norms="frozen")
    system = MatrixFlowSystem(spec, 3)
    p = _params(system)
    w = _random_weights(system, rng)
    got = _rhs(system, w, p)
    Np, Nf, c = p["N_psi"], p["N_phi"], 1 + p["sigma2"]
    n = 400_000
    x = rng.normal(size=(n, 3))
    x1 = x + np.sqrt(p["sigma2"]) * rng.normal(size=(n, 3))
    x2 = x + np.sqrt(p["sigma2"]) * rng.normal(size=(n, 3))
    Psi, Phi = w["Psi"], w["Phi"]
    a, b = x1 @ (Psi @ Phi).T, x2 @ Phi.T
    B_ = np.sum(a * b, axis=1)
    g = -b / (Np * Nf) + B_[:, None] * a / (Np**3 * Nf)
    samples = -(g[:, :, None] * x1[:, None, :])  # -g x1^T, (n, h, d)
    dPsi = p["alpha_p"] * samples @ Phi.T - p["eta"] * Psi
    dPhi = np.einsum("ji,njk->nik", Psi, samples) - p["eta"] * Phi
    for name, s in (("Psi", dPsi), ("Phi", dPhi)):
        z = (s.mean(0) - got[name]) / (s.std(0) / np.sqrt(n))
        assert np.max(np.abs(z)) < 5.0, (name, z)
    assert c > 1


@pytest.mark.parametrize("spec", [
    ModelSpec("euclidean", target="ema"),
    ModelSpec("cosine", norms="frozen"),
    ModelSpec("cosine", norms="self-consistent"),
    ModelSpec("cosine", norms="self-consistent", moments="leading"),
    ModelSpec("cosine", norms="exact", target="ema"),
    ModelSpec("cosine", norms="exact", predictor="directpred"),
    ModelSpec("euclidean", predictor="directpred", normalize=True, data="spectrum"),
], ids=lambda s: s.label)
def test_aligned_weights_give_the_eigenmode_system(spec):
    """On aligned weights the matrix flow stays aligned (off-diagonal rates 0) and its mode
    rates are the K-mode eigenmode system's: to rounding for the closed forms, to the two
    quadratures' accuracy (5e-9) for the exact flow."""
    h = 4
    rng = np.random.default_rng(3)
    spectra = {"p": rng.uniform(0.3, 1.2, h), "s": rng.uniform(0.2, 1.5, h), "tau": rng.uniform(0.5, 1.2, h)}
    system = MatrixFlowSystem(spec, h)
    lam = np.array([2.0, 1.0, 0.7, 0.4])
    p = _params(system, lam)
    start = aligned_init(h, spectra, seed=1, basis=np.eye(h))
    U = start["U"]
    w = {k: start[k] for k in system.weight_names}
    out = _rhs(system, w, p)
    modes = derive(spec).modes(h)
    ref = modes.unpack(np.asarray(modes.to_numpy()(0.0, modes.pack(**{n: spectra[n] for n in modes.group_names}), p)))
    rtol = 5e-9 if spec.norms == "exact" else 1e-12
    scale = max(np.abs(ref["s"]).max(), 1e-3)
    Phi = w["Phi"]
    dF = U.T @ (out["Phi"] @ Phi.T + Phi @ out["Phi"].T) @ U
    np.testing.assert_allclose(np.diag(dF), ref["s"], atol=rtol * scale)
    np.testing.assert_allclose(dF - np.diag(np.diag(dF)), 0.0, atol=1e-13 * scale)
    if "Psi" in out:
        dP = U.T @ out["Psi"] @ U
        np.testing.assert_allclose(np.diag(dP), ref["p"], atol=rtol * scale)
        np.testing.assert_allclose(dP - np.diag(np.diag(dP)), 0.0, atol=1e-13 * scale)
    if "Phi_a" in out:
        dT = U.T @ (out["Phi_a"] @ Phi.T + w["Phi_a"] @ out["Phi"].T) @ U
        tau_dot = (np.diag(dT) - spectra["tau"] * np.diag(dF)) / spectra["s"]
        np.testing.assert_allclose(tau_dot, ref["tau"], atol=rtol * scale)


def test_exact_quadrature_converges_under_refinement():
    """The default grid against a finer, wider one at a random non-aligned point, h = 4."""
    rng = np.random.default_rng(4)
    spec = ModelSpec("cosine", norms="exact")
    coarse = MatrixFlowSystem(spec, 4)
    fine = MatrixFlowSystem(spec, 4, quadrature={"ray_step": 0.06, "ray_width": 5.0, "s_step": 0.1, "s_width": 4.2})
    w = _random_weights(coarse, rng)
    p = _params(coarse)
    a, b = coarse.pack(**_rhs(coarse, w, p)), fine.pack(**_rhs(fine, w, p))
    assert np.max(np.abs(a - b)) < 2e-9 * np.max(np.abs(b))


def test_spectral_power_derivative_at_repeated_eigenvalues():
    """jax.jvp of F^alpha at F with a repeated eigenvalue against central differences (where
    the derivative of eigh itself is not finite)."""
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    F = (Q * np.array([2.0, 2.0, 0.5, 1.0])) @ Q.T
    E = rng.normal(size=(4, 4))
    E = E + E.T
    _, jvp = jax.jvp(lambda M: spectral_power(M, 0.5), (jnp.asarray(F),), (jnp.asarray(E),))
    eps = 1e-6
    fd = (np.asarray(spectral_power(jnp.asarray(F + eps * E), 0.5)) - np.asarray(spectral_power(jnp.asarray(F - eps * E), 0.5))) / (2 * eps)
    np.testing.assert_allclose(np.asarray(jvp), fd, atol=1e-8)
    assert np.all(np.isfinite(np.asarray(jvp)))


def test_integrates_like_the_eigenmode_system_from_an_aligned_start():
    """integrate on the matrix system from aligned weights, projected, against integrate on the
    3-mode eigenmode system: agreement to the integrators' tolerance."""
    spec = ModelSpec("euclidean", target="ema")
    h = 3
    system = MatrixFlowSystem(spec, h)
    p = _params(system)
    spectra = {"p": np.array([0.4, 0.8, 1.1]), "s": np.array([0.3, 0.7, 1.2]), "tau": np.array([0.9, 1.0, 1.1])}
    start = aligned_init(h, spectra, seed=2, basis=np.eye(h))
    sol = integrate(system, system.pack(**{k: start[k] for k in system.weight_names}), (0.0, 2.0), p, backend="scipy")
    modes = derive(spec).modes(h)
    ref = integrate(modes, modes.pack(**spectra), (0.0, 2.0), p, backend="scipy", rtol=1e-10, atol=1e-12)
    final = system.unpack(sol.final)
    U = start["U"]
    s = np.diag(U.T @ final["Phi"] @ final["Phi"].T @ U)
    np.testing.assert_allclose(s, modes.unpack(ref.final)["s"], rtol=1e-6)
    np.testing.assert_allclose(np.diag(U.T @ final["Psi"] @ U), modes.unpack(ref.final)["p"], rtol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="expansion"):
        MatrixFlowSystem(ModelSpec("cosine", norms="expansion"), 3)
    with pytest.raises(ValueError, match="h must be an integer"):
        MatrixFlowSystem(ModelSpec("euclidean"), 0)
    with pytest.raises(ValueError, match="d must be an integer"):
        MatrixFlowSystem(ModelSpec("euclidean"), 2, d=2.5)
    with pytest.raises(ValueError, match="quadrature keys"):
        MatrixFlowSystem(ModelSpec("cosine", norms="exact"), 2, quadrature={"nodes": 3})
    with pytest.raises(TypeError, match="ModelSpec"):
        MatrixFlowSystem("euclidean", 2)
    system = MatrixFlowSystem(ModelSpec("euclidean"), 2)
    with pytest.raises(ValueError, match="alpha_p"):
        system.to_jax()(0.0, np.zeros(system.n_states), {"sigma2": 0.1, "eta": 0.1})


def test_directpred_jacobian_on_a_rank_deficient_start():
    """DirectPred with alpha = 1/2 at a collapsed mode (F singular): the Jacobian is finite and
    equals central differences of the right-hand side (W_P = F^alpha enters as W_P Phi, which
    is differentiable there though F^alpha is not)."""
    system = MatrixFlowSystem(ModelSpec("euclidean", predictor="directpred"), 2)
    p = _params(system)
    y = system.pack(Phi=np.diag([0.8, 0.0]))
    f = system.to_jax(checked=False)
    J = np.asarray(jax.jacfwd(lambda v: f(0.0, v, p))(jnp.asarray(y)))
    assert np.all(np.isfinite(J))
    eps = 1e-6
    fd = np.stack([(np.asarray(f(0.0, y + eps * e, p)) - np.asarray(f(0.0, y - eps * e, p))) / (2 * eps)
                   for e in np.eye(len(y))], axis=1)
    np.testing.assert_allclose(J, fd, atol=1e-6)
