"""The model space: ModelSpec validation, losses as expressions, and every Euclidean-flavoured
variant of derive() against the exact expected gradient of the true network (autodiff of the
Gaussian-averaged loss in ``derivations._truth``, independent of the SymPy derivation): rates
at random aligned points, anisotropic data spectra, and the discrete-time map."""

import itertools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, derive, expected_loss, view_covariance, weight_flow
from derivations.symbols import A, B, C

# -- ModelSpec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, words",
    [
        (dict(loss="isoloss"), "predictor"),
        (dict(loss="isoloss-cosine", predictor="learned"), "predictor"),
        (dict(target="ema", stop_gradient=False), "simsiam"),
        (dict(loss="isoloss", predictor="directpred", stop_gradient=False), "stop_gradient"),
        (dict(normalize=True), "directpred"),
        (dict(eps=True, predictor="none"), "directpred"),
        (dict(loss="A + D"), "D"),
        (dict(loss="C**2"), "online"),
        (dict(views="three"), "'both'"),
        (dict(data="gaussian"), "'spectrum'"),
        (dict(predictor="fixed"), "'directpred'"),
    ],
)
def test_conflicting_or_unknown_fields_raise_naming_the_conflict(fields, words):
    with pytest.raises(ValueError, match=words):
        ModelSpec(**fields)


@pytest.mark.parametrize("fields", [dict(stop_gradient=1), dict(normalize="yes"), dict(loss=3.0), dict(views=None)])
def test_wrong_types_raise_type_error(fields):
    with pytest.raises(TypeError):
        ModelSpec(**fields)


def test_built_in_losses_are_expressions_and_equal_expressions_compare_equal():
    assert ModelSpec(A / 2 - B + C / 2) == ModelSpec("euclidean")
    assert ModelSpec("-B/sqrt(A*C)", norms="self-consistent") == ModelSpec("cosine", norms="self-consistent")
    assert ModelSpec("isoloss", predictor="none") == ModelSpec("isoloss-euclidean", predictor="none")
    custom = ModelSpec(-(B**2) / (A * C), moments="leading")
    assert custom.involves_norms and custom.loss == -(B**2) / (A * C)
    # a polynomial loss has no norm treatment: the fields are normalised away
    assert ModelSpec("A - 2*B", norms="self-consistent").norms == "frozen"


def test_states_params_and_closures_follow_the_model():
    dp = derive(ModelSpec("cosine", "ema", predictor="directpred", normalize=True, eps=True))
    assert dp.state_names == ("s", "tau") and dp.collapse == ("s",)
    assert dp.param_names == ("sigma2", "eta", "beta", "alpha", "eps", "s_max", "N_psi", "N_phi", "T")
    assert [str(c[0]) for c in dp.closures] == ["s_max", "T"]
    m = dp.modes(3)
    assert m.param_names == ("sigma2", "eta", "beta", "alpha", "eps", "N_psi", "N_phi")
    no_sg = derive(ModelSpec("euclidean", stop_gradient=False))
    assert no_sg.manifold is None and not no_sg.laws[0].holds
    spectrum = derive(ModelSpec("euclidean", data="spectrum"))
    assert "lambda" in spectrum.param_names and spectrum.modes(4).param_shapes["lambda"] == (4,)
    frozen_tau = derive(ModelSpec("euclidean", "ema", predictor="directpred")).freeze("tau")
    assert frozen_tau.state_names == ("s",) and "tau" in frozen_tau.param_names


# -- published closed forms (Halvagal et al. 2023; Tian et al. 2021), typed independently -----------

s_, al, c_ = sp.symbols("s alpha c", positive=True)


@pytest.mark.parametrize(
    "spec, closed_form",
    [
        (ModelSpec("euclidean", predictor="directpred"), 2 * s_ ** (1 + al) * (1 - c_ * s_**al)),
        (ModelSpec("isoloss", predictor="directpred"), 2 * s_ * (1 - c_ * s_**al)),
        (ModelSpec("euclidean", predictor="none"), 2 * s_ * (1 - c_)),
    ],
)
def test_published_eigenvalue_flows(spec, closed_form):
    system = derive(spec)
    ds = system.equations["s"].subs({"eta": 0, "sigma2": c_ - 1})
    ds = ds.subs({sp.Symbol("s"): s_, sp.Symbol("alpha"): al})
    assert sp.simplify(ds - closed_form) == 0


def test_no_stop_gradient_collapses():
    """Without stop-gradient ds/dt = -2 s (c p^2 - 2 p + c) - 2 eta s < 0 for c > 1: every
    mode shrinks (the known route to collapse)."""
    ds = derive(ModelSpec("euclidean", stop_gradient=False)).to_numpy()
    rng = np.random.default_rng(0)
    y = np.column_stack([rng.uniform(-3, 3, 500), rng.uniform(1e-3, 3, 500)])
    rates = ds(0.0, y, {"sigma2": rng.uniform(0.01, 1, 500), "eta": 0.0, "alpha_p": 1.0})[:, 1]
    assert np.all(rates < 0)


# -- every Euclidean-flavoured variant against the exact expected gradient --------------------------


def _orthogonal(rng, h):
    q, r = np.linalg.qr(rng.normal(size=(h, h)))
    return q * np.sign(np.diag(r))


def _aligned_point(spec, h, rng):
    U, V = _orthogonal(rng, h), _orthogonal(rng, h)
    spectra = {"s": rng.uniform(0.2, 1.2, h)}
    if spec.predictor == "learned":
        spectra["p"] = rng.uniform(-0.5, 1.2, h)
    if spec.target == "ema":
        spectra["tau"] = rng.uniform(0.5, 1.0, h)
    params = {"sigma2": 0.3, "eta": 0.07, "alpha_p": 0.8, "beta": 0.6, "alpha": 0.5, "eps": 0.1}
    lam = rng.uniform(0.3, 2.0, h) if spec.data == "spectrum" else np.ones(h)
    phi = np.sqrt(spectra["s"])
    weights = {"Phi": U @ np.diag(phi) @ V.T}
    if "p" in spectra:
        weights["Psi"] = U @ np.diag(spectra["p"]) @ U.T
    if "tau" in spectra:
        weights["Phi_a"] = U @ np.diag(spectra["tau"] * phi) @ V.T
    return U, V, spectra, params, lam, {k: jnp.asarray(v) for k, v in weights.items()}


def _spectra_of(weights, U, V):
    phi = np.diag(U.T @ np.asarray(weights["Phi"]) @ V)
    out = {"s": phi**2}
    if "Psi" in weights:
        out["p"] = np.diag(U.T @ np.asarray(weights["Psi"]) @ U)
    if "Phi_a" in weights:
        out["tau"] = np.diag(U.T @ np.asarray(weights["Phi_a"]) @ V) / phi
    return out


EUCLIDEAN_VARIANTS = [
    ModelSpec(loss, target, predictor=pred, stop_gradient=sg, views=views, data=data, normalize=norm)
    for loss, target, pred, sg, views, data, norm in itertools.product(
        ("euclidean", "isoloss-euclidean"), ("simsiam", "ema"), ("learned", "directpred", "none"),
        (True, False), ("both", "one"), ("isotropic", "spectrum"), (False, True),
    )
    if not (loss.startswith("isoloss") and (pred == "learned" or not sg))
    and not (target == "ema" and not sg)
    and not (norm and pred != "directpred")
]
# a sample that covers every option several times while keeping the suite lean
SAMPLE = EUCLIDEAN_VARIANTS[::5] + [
    ModelSpec(A - 2 * B + C / 3, "ema", views="one", data="spectrum"),
    ModelSpec("isoloss", "ema", predictor="directpred", normalize=True, eps=True, data="spectrum"),
]


@pytest.mark.parametrize("spec", SAMPLE, ids=lambda s: s.label.replace(" ", "_"))
def test_derived_flow_and_discrete_map_equal_the_networks_expected_gradient(spec):
    """At a random aligned point (h = 3, random bases U, V, data covariance V diag(lambda) V^T)
    the derived K-mode rates equal the rates read off the exact expected gradient of the true
    network (to 1e-10), and one step of the discrete map equals one gradient-descent step of
    the network at lr = 0.3 (to 1e-10)."""
    h, rng = 3, np.random.default_rng(zlib.crc32(spec.label.encode()))
    U, V, spectra, params, lam, weights = _aligned_point(spec, h, rng)
    cov = view_covariance(spec, lam, params, basis=V)
    loss = expected_loss(spec)
    grads = jax.grad(lambda w: loss(w, weights, params, cov))(weights)
    flow = weight_flow(spec, weights, grads, params)
    phi = np.sqrt(spectra["s"])
    truth = {"s": 2 * np.diag(U.T @ np.asarray(flow["Phi"]) @ np.asarray(weights["Phi"]).T @ U)}
    dphi = np.diag(U.T @ np.asarray(flow["Phi"]) @ V)
    if "p" in spectra:
        truth["p"] = np.diag(U.T @ np.asarray(flow["Psi"]) @ U)
    if "tau" in spectra:
        truth["tau"] = (np.diag(U.T @ np.asarray(flow["Phi_a"]) @ V) - spectra["tau"] * dphi) / phi

    system = derive(spec)
    given = {k: v for k, v in params.items() if k in system.param_names}
    if "lambda" in system.param_names:
        given["lambda"] = lam
    modes = system.modes(h)
    y = modes.pack(**spectra)
    rates = modes.unpack(modes.to_numpy()(0.0, y, given))
    for name, ref in truth.items():
        np.testing.assert_allclose(rates[name], ref, rtol=1e-10, atol=1e-12, err_msg=name)

    lr = 0.3
    stepped = {k: weights[k] + lr * flow[k] for k in weights}
    after = _spectra_of(stepped, U, V)
    dmodes = system.discrete().modes(h)
    increment = dmodes.unpack(dmodes.to_numpy()(0.0, y, {**given, "lr": lr}))
    for name, ref in after.items():
        np.testing.assert_allclose(spectra[name] + increment[name], ref, rtol=1e-10, atol=1e-12, err_msg=name)


def test_descriptions_say_which_treatment_the_system_has():
    """The printed description names this system's own norm treatment (not another's)."""
    sc_exact = str(derive(ModelSpec("cosine", norms="self-consistent", moments="exact")))
    assert "self-consistently" in sc_exact and "frozen to parameters" not in sc_exact
    assert "norms frozen inside the gradient" not in sc_exact
    frozen_leading = str(derive(ModelSpec("cosine", norms="frozen", moments="leading")))
    assert "frozen to parameters" in frozen_leading and "self-consistent values" not in frozen_leading


def test_integrate_takes_a_data_spectrum_as_per_mode_parameters():
    """Each mode of the Euclidean SimSiam system with data variance lambda_j converges to
    p+ = (lambda + sqrt(lambda^2 - 4 eta (lambda + sigma2))) / (2 (lambda + sigma2)) (the cubic's
    stable root with c = lambda + sigma2) where lambda_j exceeds the threshold
    2 eta + 2 sqrt(eta^2 + eta sigma2), and collapses below it; a batch of eta broadcasts against it."""
    from dynamics import integrate

    modes = derive(ModelSpec("euclidean", data="spectrum")).modes(3)
    lam = np.array([1.0, 0.5, 0.25])
    eta, sigma2 = 0.05, 0.2
    y0 = modes.pack(p=[0.5] * 3, s=[0.25] * 3)
    sol = integrate(modes, np.stack([y0, y0]), (0, 400), {"sigma2": sigma2, "eta": np.array([eta, 0.3]),
                                                         "alpha_p": 1.0, "lambda": lam})
    p = modes.unpack(sol.final)["p"]
    c = lam + sigma2
    p_plus = (lam[:2] + np.sqrt(lam[:2] ** 2 - 4 * eta * c[:2])) / (2 * c[:2])
    np.testing.assert_allclose(p[0, :2], p_plus, rtol=1e-6)
    assert lam[2] < 2 * eta + 2 * np.sqrt(eta**2 + eta * sigma2) and abs(p[0, 2]) < 1e-2
    assert sol.status[1] == "collapsed"   # eta = 0.3 is above every mode's threshold
    with pytest.raises(ValueError, match="per-mode"):
        integrate(modes, y0, (0, 1), {"sigma2": sigma2, "eta": eta, "alpha_p": 1.0, "lambda": 0.5})


def test_integrate_refuses_a_discrete_map():
    from dynamics import integrate

    with pytest.raises(ValueError, match="iterate"):
        integrate(derive(ModelSpec("euclidean")).discrete(), [0.5, 0.25], (0, 1),
                  {"sigma2": 0.2, "eta": 0.0, "alpha_p": 1.0, "lr": 0.1})
