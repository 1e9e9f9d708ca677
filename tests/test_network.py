"""The matrix-level network simulator, and its agreement with the eigenmode theory."""

import numpy as np
import pytest

from derivations import ModelSpec, derive
from dynamics import compare, integrate, simulate_network

SIGMA2 = 0.2
C = 1 + SIGMA2


@pytest.mark.parametrize("target", ["simsiam", "ema"])
def test_euclidean_eigenmodes_equal_the_matrix_flow(target):
    """From an aligned start the eigenmode ODE equals the exact expected-gradient matrix flow."""
    h = 8
    params = {"sigma2": SIGMA2, "eta": 0.1, "alpha_p": 1.3} | ({"beta": 0.4} if target == "ema" else {})
    rng = np.random.default_rng(3)
    init = {"p": rng.uniform(-0.2, 1.0, h), "s": rng.uniform(0.1, 1.2, h), "tau": rng.uniform(0.6, 1.0, h)}
    if target == "simsiam":
        init["tau"] = np.ones(h)
    net = simulate_network(ModelSpec("euclidean", target), params, h=h, t1=4.0, init=init, n_records=21, gradient="expected")
    assert net.gradient == "expected" and net.status == "finished"
    modes = derive(ModelSpec("euclidean", target)).modes(h)
    y0 = modes.pack(**{k: init[k] for k in modes.per_mode.state_names})
    sol = integrate(modes, y0, (0, 4.0), params, t_eval=net.t, events=())
    ode = modes.unpack(sol.y)
    assert np.max(np.abs(ode["p"] - net.p)) < 1e-6
    assert np.max(np.abs(ode["s"] - net.s)) < 1e-6
    if target == "ema":
        assert np.max(np.abs(ode["tau"] - net.tau)) < 1e-6
    assert np.max(net.misalignment) < 1e-10


def test_euclidean_network_reaches_tians_equilibrium_and_collapses_above_threshold():
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}
    net = simulate_network(ModelSpec("euclidean"), params, h=16, t1=60.0, n_records=7)
    p_plus = (1 + np.sqrt(1 - 4 * C * 0.05)) / (2 * C)  # Tian et al.
    np.testing.assert_allclose(net.p[-1], p_plus, atol=1e-6)
    strong = simulate_network(ModelSpec("euclidean"), dict(params, eta=0.3), h=16, t1=60.0, n_records=7)
    assert np.max(np.abs(strong.p[-1])) < 1e-3 * np.max(np.abs(strong.p[0]))


def test_sampled_euclidean_gradient_tracks_the_expected_one():
    params = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}
    common = dict(h=16, t1=2.0, n_records=5, seed=2)
    exact = simulate_network(ModelSpec("euclidean"), params, gradient="expected", **common)
    sampled = simulate_network(ModelSpec("euclidean"), params, gradient="sampled", dt=0.005, batch=8192, **common)
    rel = np.linalg.norm(sampled.p - exact.p, axis=1) / np.linalg.norm(exact.p, axis=1)
    assert rel.max() < 0.02  # SGD noise plus the O(dt) Euler error


def test_cosine_network_conserves_the_scaled_norm():
    """The true cosine loss is scale invariant: ||Psi||^2 e^{2 eta t} and ||Phi||^2 e^{2 eta t}
    stay constant up to the Euler error O(dt) (DESIGN.md: 13.35 -> 13.21 over t = 6)."""
    eta = 0.3
    net = simulate_network(ModelSpec("cosine"), {"sigma2": SIGMA2, "eta": eta, "alpha_p": 1.0},
                           h=16, t1=3.0, dt=0.01, batch=2048, n_records=7)
    for q in (net.psi_norm2, net.phi_norm2):
        scaled = q * np.exp(2 * eta * net.t)
        assert np.ptp(scaled) / scaled[0] < 0.02
    assert net.psi_norm2[-1] < 0.3 * net.psi_norm2[0]  # while the norm itself shrinks
    sf = net.scale_free()
    np.testing.assert_allclose(np.sum(sf["p"] ** 2, axis=1), 1.0, rtol=0.02)


def test_compare_euclidean_is_exact_and_cosine_reports_every_approximation():
    euc = compare("euclidean", "simsiam", {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}, widths=(4, 8), t1=2.0, n_records=11)
    for h in (4, 8):
        assert euc.errors[h]["euclidean"]["p"] < 1e-6 and euc.errors[h]["euclidean"]["s"] < 1e-6
    cos = compare("cosine", "simsiam", {"sigma2": SIGMA2, "eta": 0.3, "alpha_p": 1.0}, widths=(8,), t1=1.0,
                  batch=1024, n_records=11)
    assert set(cos.errors[8]) == {"exact, self-consistent norms", "leading, self-consistent norms", "exact, norms frozen at t=0"}
    for e in cos.errors[8].values():
        assert all(np.isfinite(e[k]) for k in ("p", "s", "p_shape", "psi_norm2"))
    assert "| 8 |" in cos.table() and cos.best()[8] in cos.errors[8]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(spec="cosine"), TypeError, "spec must be a derivations.ModelSpec"),
        (dict(params={"sigma2": 0.2, "eta": 0.1}), ValueError, r"missing \['alpha_p'\]"),
        (dict(params={"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0, "N_psi": 1.0}), ValueError, "not parameters here"),
        (dict(params={"sigma2": -0.2, "eta": 0.1, "alpha_p": 1.0}), ValueError, "sigma2'] must be >= 0"),
        (dict(h=0), ValueError, "h must be an int >= 1"),
        (dict(dt=-0.1), ValueError, "dt must be a positive finite number"),
        (dict(gradient="exact"), ValueError, "gradient='exact' is not allowed"),
        (dict(spec=ModelSpec("cosine"), gradient="expected"), ValueError, "only the Euclidean loss"),
        (dict(init={"p": np.ones(3), "s": np.ones(3)}), ValueError, r"init\['p'\] must have shape \(4,\)"),
        (dict(t1=1.0, dt=0.3, gradient="sampled"), ValueError, "must be a multiple"),
    ],
)
def test_network_bad_input(kwargs, exc, match):
    args = dict(spec=ModelSpec("euclidean"), params={"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0}, h=4, t1=1.0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        simulate_network(args.pop("spec"), args.pop("params"), **args)
