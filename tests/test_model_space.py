"""The model space (DirectPred, IsoLoss, no stop-gradient, no predictor, one-view noise, data
spectra, EMA, any loss in A, B, C) against Monte Carlo of the true network.

Independent references:
- Monte Carlo: jax.grad of the true per-sample loss at random aligned points, projected on the
  eigenbasis, standard errors from batch means; the per-sample losses it differentiates (the
  true one, and the one with the spec's norm and moment treatment) are checked, sample by
  sample, against the losses written out below in plain jax.numpy (stop-gradient by
  jax.lax.stop_gradient), so no reference goes through the loss expression derive()
  differentiates; its estimator is itself checked against the exact Gaussian expectation of
  the written losses' gradients (quadratic losses, sigma points) below;
- published closed forms typed from the papers: Euclidean DirectPred
  ds = 2 s^(1+alpha) (1 - c s^alpha) and Euclidean IsoLoss ds = 2 s (1 - c s^alpha)
  (Halvagal, Laborieux, Zenke 2023; eta = 0, noise on both views), and the no-stop-gradient
  flow ds = -2 s E[(p x1 - x2)^2] - 2 eta s < 0 (worked out by hand below): collapse.

Tolerances: |z| < 5 for every mode (about 10 to 30 z-values per test); each test also
asserts the MC resolves its rates to 2.5% (RMS SE / RMS rate over the modes), so a miss of
12.5% of the typical rate is a 5-sigma miss.
"""

import math
import zlib

import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, derive
from derivations import symbols as sy
from derivations._montecarlo import monte_carlo, random_point

Z_MAX = 5.0
REL_SE = 0.025
H = 8
N = 2**16

COMBOS = [
    (ModelSpec("euclidean", predictor="directpred"), {"alpha": 0.5}),
    (ModelSpec("euclidean", predictor="directpred"), {"alpha": 1.0}),
    (ModelSpec("euclidean", "ema", predictor="directpred", normalize=True), {"alpha": 0.5}),
    (ModelSpec("euclidean", predictor="directpred", eps=True), {"alpha": 1.0}),
    (ModelSpec("isoloss-euclidean", predictor="directpred"), {"alpha": 0.5}),
    (ModelSpec("isoloss-euclidean", "ema", predictor="none"), {}),
    (ModelSpec("isoloss-cosine", predictor="directpred"), {"alpha": 1.0}),
    (ModelSpec("isoloss-cosine", predictor="none", moments="leading"), {}),
    (ModelSpec("euclidean", stop_gradient=False), {}),
    (ModelSpec("euclidean", stop_gradient=False, predictor="none", data="spectrum"), {}),
    (ModelSpec("cosine", stop_gradient=False), {}),
    (ModelSpec("euclidean", predictor="none", views="one"), {}),
    (ModelSpec("cosine", "ema", views="one", data="spectrum"), {}),
    (ModelSpec("euclidean", "ema", views="one", data="spectrum", predictor="directpred"), {"alpha": 0.5}),
    (ModelSpec("cosine", predictor="directpred", data="spectrum", norms="self-consistent"), {"alpha": 1.0}),
    (ModelSpec("-B/sqrt(A*C) + A/10"), {}),
]
"""Every new option at least twice: DirectPred alpha = 0.5 (4x) and 1 (4x), normalize, eps;
IsoLoss Euclidean (2x) and cosine (2x); no stop-gradient (3x); no predictor (4x); one-view
noise (3x); data spectrum (4x); EMA (4x); a loss given as an expression."""


def combo_id(combo):
    spec, fixed = combo
    return spec.label.replace(" ", "_") + "".join(f"_{k}={v}" for k, v in fixed.items())


def seed_of(*parts):
    return zlib.crc32("|".join(map(str, parts)).encode())


def derived_rates(system, point):
    """Rates of derive(spec)'s K-mode system (closures computed by system.modes) at the point;
    frozen norms take the self-consistent values E||a||^2, E||b||^2 of the point."""
    modes = system.modes(point.h)
    values = dict(point.params)
    closures = point.closures
    for name in modes.param_names:
        if name == "lambda":
            values[name] = np.asarray(point.lam)
        elif name in closures:
            values[name] = closures[name]
    spectra = {"p": point.p, "s": point.s, "tau": point.tau}
    y = modes.pack(**{n: spectra[n] for n in system.state_names})
    out = modes.unpack(modes.to_numpy()(0.0, y, {n: values[n] for n in modes.param_names}))
    return out


def resolution_ok(rates):
    for n in rates.names:
        rel = math.sqrt(np.mean(rates.se[n] ** 2) / np.mean(rates.mean[n] ** 2))
        assert rel < REL_SE, f"d{n}/dt resolved only to {rel:.3f} (SE / RMS rate)"


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_model_space_against_monte_carlo(combo):
    spec, fixed = combo
    point = random_point(spec, H, seed_of(spec.label, fixed), fixed=fixed)
    models = ("true", "treated") if spec.involves_norms else ("true",)
    mc = monte_carlo(spec, point, n_samples=N, seed=seed_of("mc", spec.label), models=models)
    for rates in mc.values():  # the aligned ansatz is invariant: off-diagonals vanish
        assert rates.off_z < Z_MAX, f"{rates.model}: off-diagonal expected gradient |z| = {rates.off_z:.1f}"
    ref = mc[models[-1]]  # the gradient derive() averages exactly (the true one without norms)
    resolution_ok(ref)
    system = derive(spec)
    assert set(system.state_names) == set(ref.names)
    rates = derived_rates(system, point)
    for n in ref.names:
        z = np.abs(rates[n] - ref.mean[n]) / ref.se[n]
        assert z.max() < Z_MAX, f"d{n}/dt: derived {rates[n]} vs MC {ref.mean[n]} +- {ref.se[n]} (max z {z.max():.1f})"


# -- the per-sample losses, written out -------------------------------------------------------------
def _written_kind(spec):
    """Which written loss is the spec's: its name, or the one expression loss of COMBOS."""
    if isinstance(spec.loss, str):
        return spec.loss
    from derivations._losses import A, B, C

    assert sp.simplify(spec.loss_expr - (-B / sp.sqrt(A * C) + A / 10)) == 0, spec.loss_expr
    return "cosine + A/10"


def written_loss(spec, closures=None):
    """Per-sample losses ``f(weights, x1, x2, params) -> (n,)`` of the network of ``spec``, typed
    from the papers: a = W_P Phi x1, b = Phi_t x2 (Phi_t = Phi_a for EMA), sg = stop-gradient on
    b (and on DirectPred's W_P, set from sg(F), F = Phi Phi^T);
    Euclidean 1/2 ||a - sg(b)||^2; cosine -<a, sg(b)> / (||a|| ||b||) (plus ||a||^2/10 for the
    expression loss); IsoLoss (z = Phi x1, p = W_P z): Euclidean 1/2 ||z - sg(b + z - p)||^2,
    cosine -[<z, sg(b)> / sg(||p|| ||b||) - 1/2 sg(<p, b> / (||p||^3 ||b||)) ||W_P^(1/2) z||^2].

    ``closures`` (N_psi, N_phi, T): the norm and moment treatment of the spec instead of the
    true loss: inside the per-sample gradient ||a|| -> N_psi, ||b|| -> N_phi and (leading
    moments) the coefficient <a, b> -> T; for the cosine loss -B/sqrt(AC) that is the surrogate
    -<a, b>/(N_psi N_phi) + sg(B') (||a||^2/(2 N_psi^3 N_phi) + ||b||^2/(2 N_psi N_phi^3)),
    B' = <a, b> (exact moments) or T (leading)."""
    import jax
    import jax.numpy as jnp

    sg = jax.lax.stop_gradient
    kind = _written_kind(spec)
    treat = closures is not None and spec.involves_norms and spec.norms != "exact"

    def predictor(weights, params, h, power=1.0):
        if spec.predictor == "learned":
            return weights["Psi"]
        if spec.predictor == "none":
            return jnp.eye(h)
        F = sg(weights["Phi"] @ weights["Phi"].T)
        ev, U = jnp.linalg.eigh(0.5 * (F + F.T))
        ev = jnp.clip(ev, 0.0, None)
        if spec.normalize:
            ev = ev / jnp.max(ev)
        w = ev ** params["alpha"] + (params["eps"] if spec.eps else 0.0)
        return (U * w**power) @ U.T

    def f(weights, x1, x2, params):
        Phi = weights["Phi"]
        h = Phi.shape[0]
        b = x2 @ (weights["Phi_a"] if spec.target == "ema" else Phi).T
        if spec.stop_gradient:
            b = sg(b)
        z = x1 @ Phi.T
        W = predictor(weights, params, h)
        p = z @ W.T
        dot = jnp.sum(p * b, axis=1)
        if kind == "euclidean":
            return 0.5 * jnp.sum((p - b) ** 2, axis=1)
        if kind == "isoloss-euclidean":
            return 0.5 * jnp.sum((z - sg(b + z - p)) ** 2, axis=1)
        norm_p, norm_b = jnp.linalg.norm(p, axis=1), jnp.linalg.norm(b, axis=1)
        if treat:
            n_a, n_b = closures["N_psi"], closures["N_phi"]
            coef = closures["T"] if spec.moments == "leading" else sg(dot)
        else:
            n_a, n_b, coef = norm_p, norm_b, dot
        if kind == "isoloss-cosine":
            half = z @ predictor(weights, params, h, power=0.5).T
            return -(jnp.sum(z * b, axis=1) / sg(n_a * n_b)
                     - 0.5 * sg(coef / (n_a**3 * n_b)) * jnp.sum(half**2, axis=1))
        if treat:
            out = (-dot / (n_a * n_b) + sg(coef) * jnp.sum(p * p, axis=1) / (2 * n_a**3 * n_b)
                   + sg(coef) * jnp.sum(b * b, axis=1) / (2 * n_a * n_b**3))
        else:
            out = -dot / (norm_p * norm_b)
        if kind == "cosine + A/10":
            out = out + jnp.sum(p * p, axis=1) / 10
        else:
            assert kind == "cosine", kind
        return out

    return f


def _views(point, n, seed):
    """n pairs of views at the point's data covariance, drawn here: x = V (sqrt(lam) xi)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, point.h)) * np.sqrt(point.lam)) @ point.V.T
    sigma = math.sqrt(point.params["sigma2"])
    x2 = x + sigma * rng.standard_normal((n, point.h))
    x1 = x + sigma * rng.standard_normal((n, point.h)) if point.spec.views == "both" else x
    return x1, x2


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_monte_carlo_differentiates_the_written_losses(combo):
    """Sample by sample, the losses the Monte Carlo differentiates ("true", and "treated" where
    the spec treats norms) have the gradients of the losses written out above."""
    import jax
    import jax.numpy as jnp

    from derivations._montecarlo import _model_loss

    spec, fixed = combo
    point = random_point(spec, 5, seed_of("written", spec.label, fixed), fixed=fixed)
    params = {k: jnp.float64(v) for k, v in point.params.items()}
    closures = {k: jnp.float64(v) for k, v in point.closures.items()}
    w = point.weights()
    x1, x2 = (jnp.asarray(v) for v in _views(point, 64, seed_of("written views", spec.label)))
    models = ("true", "treated") if spec.involves_norms else ("true",)
    for model in models:
        mine = written_loss(spec, closures if model == "treated" else None)
        ref = jax.grad(lambda v: mine(v, x1, x2, params).mean())(w)
        theirs = _model_loss(spec, model)
        got = jax.grad(lambda v: theirs(v, w, x1, x2, params, closures).mean())(w)
        assert set(got) == set(ref)
        scale = max(float(jnp.max(jnp.abs(g))) for g in ref.values())
        assert float(jnp.max(jnp.abs(ref["Phi"]))) > 0, model
        for k in ref:  # (under stop-gradient the EMA target's gradient is zero in both)
            np.testing.assert_allclose(np.asarray(got[k]), np.asarray(ref[k]), rtol=1e-9, atol=1e-12 * scale,
                                       err_msg=f"{model}: d/d{k}")


# -- the Monte-Carlo estimator itself ---------------------------------------------------------------
def _joint_covariance(point):
    """Covariance of v = (x1, x2): [[Sx + n1, Sx], [Sx, Sx + sigma2 I]], Sx = V diag(lam) V^T,
    n1 = sigma2 I with noise on both views, 0 with one clean view."""
    Sx = (point.V * point.lam) @ point.V.T
    noise = point.params["sigma2"] * np.eye(point.h)
    S11 = Sx + (noise if point.spec.views == "both" else 0.0)
    return np.block([[S11, Sx], [Sx, Sx + noise]])


def exact_rates(spec, point):
    """Exact expected rates of a loss quadratic in the samples: its per-sample gradient is a
    quadratic form in v = (x1, x2) ~ N(0, S), so its mean over the 2n sigma points
    +-sqrt(n) L e_i (L L^T = S, n = 2d) is its expectation exactly; then gradient flow with
    weight decay (dPhi = -dJ/dPhi - eta Phi, dPsi = -alpha_p dJ/dPsi - eta Psi,
    dPhi_a = beta (Phi - Phi_a)), projected on the eigenbasis as in the module docstring."""
    import jax
    import jax.numpy as jnp

    d = point.h
    ev, Q = np.linalg.eigh(_joint_covariance(point))
    L = Q * np.sqrt(np.clip(ev, 0.0, None))
    sigma = math.sqrt(2 * d) * L.T
    v = np.concatenate([sigma, -sigma])
    params = {k: jnp.float64(val) for k, val in point.params.items()}
    w = point.weights()
    loss = written_loss(spec)
    g = jax.grad(lambda u: loss(u, jnp.asarray(v[:, :d]), jnp.asarray(v[:, d:]), params).mean())(w)
    prm = point.params
    flow = {"Phi": np.asarray(-g["Phi"] - prm["eta"] * w["Phi"])}
    if "Psi" in w:
        flow["Psi"] = np.asarray(-prm["alpha_p"] * g["Psi"] - prm["eta"] * w["Psi"])
    if "Phi_a" in w:
        flow["Phi_a"] = np.asarray(prm["beta"] * (w["Phi"] - w["Phi_a"]))
    U, V, phi = point.U, point.V, np.sqrt(point.s)
    dphi = np.diag(U.T @ flow["Phi"] @ V)
    out = {"s": 2 * phi * dphi}
    if "Psi" in flow:
        out["p"] = np.diag(U.T @ flow["Psi"] @ U)
    if "Phi_a" in flow:
        out["tau"] = (np.diag(U.T @ flow["Phi_a"] @ V) - point.tau * dphi) / phi
    return out


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec("euclidean", "ema", data="spectrum", views="one"),
        ModelSpec("isoloss-euclidean", predictor="directpred"),
        ModelSpec("euclidean", stop_gradient=False),
    ],
    ids=lambda s: s.label.replace(" ", "_"),
)
def test_monte_carlo_estimator_is_unbiased_with_honest_errors(spec):
    zs = []
    for k in range(3):
        point = random_point(spec, 6, seed_of("exact", spec.label, k))
        mc = monte_carlo(spec, point, n_samples=2**15, seed=k)["true"]
        exact = exact_rates(spec, point)
        for n in mc.names:
            zs.append((mc.mean[n] - exact[n]) / mc.se[n])
    zs = np.concatenate(zs)
    assert np.abs(zs).max() < Z_MAX
    # the standard errors are neither too small nor far too large: RMS z near 1
    assert 0.6 < math.sqrt(np.mean(zs**2)) < 1.5


@pytest.mark.parametrize(
    "spec",
    [ModelSpec("cosine", "ema"), ModelSpec("isoloss-cosine", predictor="directpred"), ModelSpec("cosine", stop_gradient=False)],
    ids=lambda s: s.label.replace(" ", "_"),
)
def test_untreated_surrogate_is_the_true_gradient(spec):
    """The treated model's surrogate, with no treatment, has exactly the gradient of the true
    per-sample loss (same samples): the surrogate construction adds nothing."""
    point = random_point(spec, 5, seed_of("surrogate", spec.label), fixed={"alpha": 1.0} if spec.predictor == "directpred" else None)
    mc = monte_carlo(spec, point, n_samples=2**12, n_batches=16, models=("true", "surrogate"))
    for n in mc["true"].names:
        np.testing.assert_allclose(mc["surrogate"].mean[n], mc["true"].mean[n], rtol=1e-10, atol=1e-12)


# -- published closed forms ----------------------------------------------------------------------------
def closed_directpred(s, c, alpha):
    return 2 * s ** (1 + alpha) * (1 - c * s**alpha)


def closed_isoloss(s, c, alpha):
    return 2 * s * (1 - c * s**alpha)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize(
    "loss, form, other",
    [("euclidean", closed_directpred, closed_isoloss), ("isoloss-euclidean", closed_isoloss, closed_directpred)],
)
def test_published_flows(loss, form, other, alpha):
    spec = ModelSpec(loss, predictor="directpred")
    point = random_point(spec, H, seed_of("published", loss, alpha), fixed={"alpha": alpha, "eta": 0.0})
    mc = monte_carlo(spec, point, n_samples=N, seed=seed_of("published-mc", loss, alpha))["true"]
    resolution_ok(mc)
    c = 1 + point.params["sigma2"]
    z = (form(point.s, c, alpha) - mc.mean["s"]) / mc.se["s"]
    assert np.abs(z).max() < Z_MAX
    # power: the other paper's form is rejected at the same points
    z_other = (other(point.s, c, alpha) - mc.mean["s"]) / mc.se["s"]
    assert np.abs(z_other).max() > 4 * Z_MAX
    # derive reproduces the closed form symbolically (eta = 0)
    system = derive(spec)
    s, a = sy.s, sy.alpha
    expected = form(s, 1 + sy.sigma2, a)
    got = system.equations["s"].subs(sy.eta, 0)
    spos = sp.Symbol("s", positive=True)
    assert sp.simplify((got - expected).subs(s, spos)) == 0


def no_stop_gradient_ds(point):
    """ds = -2 s E[(w x1 - x2)^2] - 2 eta s for the loss 1/2 ||W Phi x1 - Phi x2||^2 with the
    gradient through both branches: per mode d/dphi of 1/2 phi^2 (w x1 - x2)^2 (W's
    eigenvalue w = p, or 1 without predictor), x1, x2 with variance lambda + sigma2 (x1:
    lambda for one clean view) and covariance lambda. E[(w x1 - x2)^2] > 0 whenever
    sigma2 > 0 (a positive quadratic form), so s decays: collapse."""
    lam, n = point.lam, point.params["sigma2"]
    v1 = lam + (n if point.spec.views == "both" else 0.0)
    w = point.p if point.p is not None else 1.0
    return -2 * point.s * (w**2 * v1 - 2 * w * lam + lam + n) - 2 * point.params["eta"] * point.s


@pytest.mark.parametrize(
    "spec",
    [ModelSpec("euclidean", stop_gradient=False), ModelSpec("euclidean", stop_gradient=False, predictor="none", data="spectrum")],
    ids=lambda s: s.label.replace(" ", "_"),
)
def test_no_stop_gradient_collapses(spec):
    for k in range(2):
        point = random_point(spec, H, seed_of("collapse", spec.label, k), fixed={"eta": 0.0})
        mc = monte_carlo(spec, point, n_samples=N, seed=k)["true"]
        assert np.all(mc.mean["s"] + Z_MAX * mc.se["s"] < 0), "ds/dt must be negative at every mode"
        z = (no_stop_gradient_ds(point) - mc.mean["s"]) / mc.se["s"]
        assert np.abs(z).max() < Z_MAX
    # the derived mode collapses from any start: s(t) -> 0 (eta = 0)
    from scipy.integrate import solve_ivp

    system = derive(spec)
    f = system.to_numpy()
    params = {n: {"sigma2": 0.2, "eta": 0.0, "alpha_p": 1.0, "lambda": 1.5}[n] for n in system.param_names}
    y0 = [1.0 / 1.2, 1.0][-system.n_states:]  # p at Tian's non-collapsed point of the stop-gradient model
    sol = solve_ivp(lambda t, y: f(t, y, params), (0.0, 40.0), y0, rtol=1e-8, atol=1e-12)
    s_index = system.state_names.index("s")
    assert sol.success and sol.y[s_index, -1] < 1e-3 * sol.y[s_index, 0]
