"""The exact finite-width flow of the cosine loss (norms="exact") against Monte Carlo of
``jax.grad`` of the true per-sample loss (nothing frozen), and its quadrature by refinement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from derivations import ExactEigenmodes, ModelSpec, derive, sample_loss, sample_views


def _mc_rates(spec, spectra, params, lam, n_batches=24, batch=2**14, seed=0):
    """Per-mode rates of the true model at the diagonal aligned point, and standard errors
    from independent batch means."""
    h = len(spectra["s"])
    phi = jnp.sqrt(jnp.asarray(spectra["s"]))
    W = {"Phi": jnp.diag(phi)}
    if "p" in spectra:
        W["Psi"] = jnp.diag(jnp.asarray(spectra["p"]))
    if "tau" in spectra:
        W["Phi_a"] = jnp.diag(jnp.asarray(spectra["tau"]) * phi)
    f = sample_loss(spec)

    @jax.jit
    def batch_rates(key):
        x1, x2 = sample_views(spec, key, batch, lam, params)
        g = jax.grad(lambda w: f(w, W, x1, x2, params).mean())(W)
        dphi = -jnp.diag(g["Phi"]) - params["eta"] * phi
        out = {"s": 2 * phi * dphi}
        if "Psi" in W:
            out["p"] = -params["alpha_p"] * jnp.diag(g["Psi"]) - params["eta"] * jnp.diag(W["Psi"])
        if "Phi_a" in W:
            tau = jnp.asarray(spectra["tau"])
            out["tau"] = params["beta"] * (1 - tau) - tau * dphi / phi
        off = jnp.max(jnp.abs(g["Phi"] - jnp.diag(jnp.diag(g["Phi"]))))
        return out, off

    rows = [batch_rates(jax.random.PRNGKey(seed * 1000 + i)) for i in range(n_batches)]
    stacked = {k: np.stack([np.asarray(r[0][k]) for r in rows]) for k in rows[0][0]}
    mean = {k: v.mean(0) for k, v in stacked.items()}
    se = {k: v.std(0, ddof=1) / np.sqrt(n_batches) for k, v in stacked.items()}
    return mean, se, h


CASES = [
    (ModelSpec("cosine", norms="exact"), 2),
    (ModelSpec("cosine", norms="exact"), 3),
    (ModelSpec("cosine", "ema", norms="exact"), 6),
    (ModelSpec("cosine", norms="exact"), 16),
    (ModelSpec("cosine", predictor="directpred", views="one", data="spectrum", norms="exact"), 6),
    (ModelSpec("cosine", predictor="directpred", normalize=True, norms="exact"), 3),
    (ModelSpec("cosine", predictor="directpred", normalize=True, norms="exact"), 8),
    (ModelSpec("cosine", stop_gradient=False, norms="exact"), 3),
    (ModelSpec("cosine", stop_gradient=False, norms="exact"), 8),
    (ModelSpec("cosine", predictor="directpred", stop_gradient=False, norms="exact"), 5),
]


@pytest.mark.parametrize("spec, h", CASES, ids=lambda v: v.label.replace(" ", "_") if isinstance(v, ModelSpec) else str(v))
def test_exact_flow_agrees_with_monte_carlo_of_the_true_loss(spec, h):
    """Every component within 3 standard errors (2^18 samples): the approximations with
    self-consistent norms miss the same points by hundreds of standard errors."""
    rng = np.random.default_rng(h)
    spectra = {"s": rng.uniform(0.2, 1.2, h)}
    if spec.predictor == "learned":
        spectra["p"] = rng.uniform(0.2, 1.2, h)
    if spec.target == "ema":
        spectra["tau"] = rng.uniform(0.5, 1.0, h)
    params = {"sigma2": 0.3, "eta": 0.05, "alpha_p": 1.0, "beta": 0.5, "alpha": 0.5}
    lam = rng.uniform(0.3, 2.0, h) if spec.data == "spectrum" else np.ones(h)
    mean, se, _ = _mc_rates(spec, spectra, params, jnp.asarray(lam))

    exact = derive(spec)
    assert isinstance(exact, ExactEigenmodes)
    modes = exact.modes(h)
    given = {k: v for k, v in params.items() if k in modes.param_names}
    if spec.data == "spectrum":
        given["lambda"] = lam
    y = modes.pack(**spectra)
    rates = modes.unpack(modes.to_numpy()(0.0, y, given))
    for name in spectra:
        z = (rates[name] - mean[name]) / se[name]
        assert np.all(np.abs(z) < 3.0), (name, z)

    if spec == ModelSpec("cosine", norms="exact") and h == 16:
        approx = derive(ModelSpec("cosine", norms="self-consistent")).modes(h)
        wrong = approx.unpack(approx.to_numpy()(0.0, y, given))
        z_approx = (wrong["s"] - mean["s"]) / se["s"]
        assert np.max(np.abs(z_approx)) > 20


def test_quadrature_error_below_1e_10_by_refinement():
    """Halving the step and widening the range changes the rhs by < 1e-10 relative, for a
    narrow (K = 2), a spread and a wide (K = 60) spectrum."""
    exact = derive(ModelSpec("cosine", "ema", norms="exact"))
    fine_grid = {"step": 0.2, "lower": -76.0, "upper": 76.0}
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "beta": 0.5}
    for K, seed in ((2, 0), (2, 3), (2, 4), (7, 1), (60, 2)):
        rng = np.random.default_rng(seed)
        default, fine = exact.modes(K), exact.modes(K, quadrature=fine_grid)
        spread = np.geomspace(1e-3, 1.0, K) if K == 7 else rng.uniform(0.2, 1.0, K)
        y = default.pack(p=rng.uniform(-0.5, 1.0, K), s=spread, tau=rng.uniform(0.5, 1.0, K))
        a = np.asarray(jax.jit(default.to_jax(checked=False))(0.0, y, params))
        b = np.asarray(jax.jit(fine.to_jax(checked=False))(0.0, y, params))
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(b)), K


def test_exact_norms_need_the_cosine_loss_and_two_modes():
    with pytest.raises(ValueError, match="cosine"):
        ModelSpec("euclidean", norms="exact")
    with pytest.raises(ValueError, match="cosine"):
        ModelSpec("isoloss", predictor="directpred", norms="exact")
    with pytest.raises(ValueError, match="K must be >= 2"):
        derive(ModelSpec("cosine", norms="exact")).modes(1)
    with pytest.raises(ValueError, match="quadrature keys"):
        derive(ModelSpec("cosine", norms="exact")).modes(3, quadrature={"n": 5})


def test_exact_flow_keeps_the_norm_laws_of_the_scale_invariant_loss():
    """The true cosine loss is scale invariant in Psi and Phi, so with weight decay
    ||Psi||^2 = sum p_k^2 and ||Phi||^2 = sum s_k decay exactly like exp(-2 eta t) (Euler's
    theorem; the approximations with exact moments break this). The exact system keeps both
    to the integration tolerance."""
    from dynamics import integrate

    K, eta = 4, 0.3
    modes = derive(ModelSpec("cosine", norms="exact")).modes(K)
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 1, K)
    y0 = modes.pack(p=p, s=p**2 + rng.uniform(0, 0.3, K))
    sol = integrate(modes, y0, (0, 2), {"sigma2": 0.2, "eta": eta, "alpha_p": 1.0}, t_eval=[0, 1, 2],
                    backend="scipy", rtol=1e-10, atol=1e-12)
    assert sol.status == "finished"
    u = modes.unpack(sol.y)
    decay = np.exp(2 * eta * sol.t)
    for law in (np.sum(u["p"] ** 2, -1) * decay, np.sum(u["s"], -1) * decay):
        np.testing.assert_allclose(law, law[0], rtol=1e-7)


def test_scale_free_fixed_points_of_the_exact_flow():
    """In the scale-free variables p/||p|| the exact K = 3 flow settles at the isotropic
    direction: by permutation symmetry and Euler's theorem (sum_j G_j = 0 for the
    scale-invariant loss) every G_j vanishes there, so it is an equilibrium; it is stable. Each
    single-mode direction (two modes collapsed) is an equilibrium too, and not a stable one. A
    linear network at h = 3 (eta = 0.3, t = 20) ends within sampling noise of the isotropic
    direction (0.5839, 0.5705, 0.5776 measured), as this predicts."""
    from dynamics import scale_free_equilibria

    modes = derive(ModelSpec("cosine", norms="exact")).modes(3)
    points = scale_free_equilibria(modes, {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}, n_starts=5)
    iso = [p for p in points if np.allclose(p.direction, 1 / np.sqrt(3), atol=1e-8)]
    assert len(iso) == 1 and iso[0].stable is True and iso[0].residual < 1e-9
    assert np.all(iso[0].eigenvalues.real < -0.1)
    singles = [p for p in points if np.isclose(np.max(np.abs(p.direction)), 1.0, atol=1e-6)]
    assert len(singles) >= 2 and all(p.stable is not True for p in singles)
    with pytest.raises(ValueError, match="scaling"):
        scale_free_equilibria(derive(ModelSpec("euclidean")).modes(3), {"sigma2": 0.2, "eta": 0.0, "alpha_p": 1.0})
