"""The 1/K expansion of the exact cosine flow (norms="expansion"): its leading term against the
self-consistent leading-moment closure (symbolic), its convergence to the exact quadrature
(norms="exact", an independent evaluation) at the predicted rate, the scale invariance of the
true loss, and Monte Carlo of jax.grad of the true per-sample loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, derive, expansion_terms, sample_loss, sample_views
from derivations import symbols as sy
from derivations._expansion import MODE_MOMENTS
from dynamics import integrate

PARAMS = {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}
EXPANSION = ModelSpec("cosine", norms="expansion", order=1)


def test_order_is_validated_and_defaults_to_one():
    assert ModelSpec("cosine", norms="expansion").order == 1
    assert "1/K expansion, order 2" in ModelSpec("cosine", norms="expansion", order=2).label
    with pytest.raises(ValueError, match="norms='expansion'"):
        ModelSpec("cosine", norms="self-consistent", order=1)
    with pytest.raises(ValueError, match="1, 2"):
        ModelSpec("cosine", norms="expansion", order=3)
    with pytest.raises(TypeError, match="order"):
        ModelSpec("cosine", norms="expansion", order=1.0)
    with pytest.raises(ValueError, match="cosine"):
        ModelSpec("euclidean", norms="expansion")
    with pytest.raises(ValueError, match="order"):
        expansion_terms(0)


@pytest.mark.parametrize("target", ["simsiam", "ema"])
def test_leading_term_is_the_self_consistent_leading_moment_closure(target):
    """G^(0) written in the mode's covariance gives exactly the flow of norms='self-consistent',
    moments='leading' (T, N_psi, N_phi the same closed sums)."""
    lead = derive(ModelSpec("cosine", target, norms="self-consistent", moments="leading"))
    sums = lead.steps["spectral_sums"]
    G0 = expansion_terms(1)[0][0].xreplace(dict(zip(MODE_MOMENTS, (sums["E<a,a>"], sums["E<b,b>"], sums["E<a,b>"]))))
    rate = -G0 / sy.s - sy.eta
    flow = {"p": -sy.alpha_p * G0 / sy.p - sy.eta * sy.p, "s": 2 * sy.s * rate,
            "tau": sy.beta * (1 - sy.tau) - sy.tau * rate}
    for name, rhs in lead.equations.items():
        assert sp.simplify(flow[name] - rhs) == 0, name
    system = derive(ModelSpec("cosine", target, norms="expansion"))
    assert system.state_names == lead.state_names
    assert {str(c[0]) for c in system.closures} == {"T", "N_psi", "N_phi", "kappa_AA", "kappa_AB", "kappa_AC",
                                                    "kappa_BC", "kappa_CC"}


def test_first_correction_keeps_the_scale_invariance_of_the_true_loss():
    """sum_j G_j = E<a, dL/da> = 0 for the scale-invariant cosine: ||Psi||^2 and ||Phi||^2 decay
    exactly like exp(-2 eta t). The expansion keeps it at order 1 (with its cumulant sums closed);
    the self-consistent exact-moment closure, which has the Isserlis part of G^(1) only, breaks it."""
    laws = {law.name: law.holds for law in derive(EXPANSION).laws}
    assert laws == {"balance": True, "predictor norm": True, "projector norm": True}
    exact_moments = {law.name: law.holds for law in derive(ModelSpec("cosine", norms="self-consistent")).laws}
    assert exact_moments["predictor norm"] is False


def _rates(spec, K, eta, seed=0):
    rng = np.random.default_rng(seed)
    p = np.sort(rng.uniform(0.2, 1.0, K))[::-1]
    modes = derive(spec).modes(K)
    params = {k: v for k, v in {**PARAMS, "eta": eta}.items() if k in modes.param_names}
    return modes.to_numpy()(0.0, modes.pack(p=p, s=p**2), params)


def _errors(spec, ks, eta=0.0):
    exact = ModelSpec("cosine", norms="exact")
    out = []
    for K in ks:
        ref = _rates(exact, K, eta)
        out.append(np.linalg.norm(_rates(spec, K, eta) - ref) / np.linalg.norm(ref))
    return np.array(out)


@pytest.mark.parametrize("order", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_expansion_converges_to_the_exact_flow_one_power_of_k_faster_per_order(order):
    """Relative error of the loss-driven rate (eta = 0) against the exact quadrature at
    K = 32, 128, 512: the leading closure falls like 1/K, the expansion of order n like
    1/K^(n+1) (slopes within 0.25; measured -0.99, -1.97 and -2.96), below the leading closure
    at every K (errors at K = 512: 7.1e-3, 1.1e-4, 2.5e-6). Order 2 is slow only for its
    derivation (about 30 s, then cached)."""
    ks = np.array([32, 128, 512])
    lead = _errors(ModelSpec("cosine", norms="self-consistent", moments="leading"), ks)
    errors = _errors(ModelSpec("cosine", norms="expansion", order=order), ks)
    slope_lead = np.polyfit(np.log(ks), np.log(lead), 1)[0]
    slope = np.polyfit(np.log(ks), np.log(errors), 1)[0]
    assert np.all(np.diff(errors) < 0) and np.all(errors < lead)
    assert abs(slope_lead + 1) < 0.25, slope_lead
    assert abs(slope + order + 1) < 0.25, slope
    assert errors[-1] < 10.0 ** (-2 - 1.5 * order)


def test_expansion_integrates_and_tracks_the_exact_flow_better_than_the_leading_closure():
    """K = 32, t in [0, 2]: the end state of the first-order expansion misses the exact flow's by
    0.17% (relative), the leading closure's by 0.58% (at K = 8 both miss by 3.4%: the series is
    asymptotic). SciPy and JAX backends agree."""
    K, t1 = 32, 2.0
    rng = np.random.default_rng(3)
    p = np.sort(rng.uniform(0.2, 1.0, K))[::-1]
    ends = {}
    for name, spec in {"exact": ModelSpec("cosine", norms="exact"), "expansion": EXPANSION,
                       "leading": ModelSpec("cosine", norms="self-consistent", moments="leading")}.items():
        modes = derive(spec).modes(K)
        sol = integrate(modes, modes.pack(p=p, s=p**2), (0.0, t1), PARAMS, backend="scipy")
        assert sol.status == "finished"
        ends[name] = np.asarray(sol.y_end)
    miss = {k: np.linalg.norm(ends[k] - ends["exact"]) / np.linalg.norm(ends["exact"]) for k in ("expansion", "leading")}
    assert miss["expansion"] < miss["leading"] / 2, miss
    modes = derive(EXPANSION).modes(K)
    jax_sol = integrate(modes, modes.pack(p=p, s=p**2), (0.0, t1), PARAMS)
    np.testing.assert_allclose(np.asarray(jax_sol.y_end), ends["expansion"], rtol=1e-6)


def _mc_rates(spectra, params, n_batches=24, batch=2**14, seed=0):
    """Per-mode rates of the true cosine model at the aligned diagonal point, with standard
    errors from independent batch means (as in tests/test_exact.py)."""
    truth = ModelSpec("cosine")
    h = len(spectra["s"])
    phi = jnp.sqrt(jnp.asarray(spectra["s"]))
    W = {"Phi": jnp.diag(phi), "Psi": jnp.diag(jnp.asarray(spectra["p"]))}
    f = sample_loss(truth)

    @jax.jit
    def batch_rates(key):
        x1, x2 = sample_views(truth, key, batch, jnp.ones(h), params)
        g = jax.grad(lambda w: f(w, W, x1, x2, params).mean())(W)
        dphi = -jnp.diag(g["Phi"]) - params["eta"] * phi
        return {"s": 2 * phi * dphi, "p": -params["alpha_p"] * jnp.diag(g["Psi"]) - params["eta"] * jnp.diag(W["Psi"])}

    rows = [batch_rates(jax.random.PRNGKey(seed * 1000 + i)) for i in range(n_batches)]
    stacked = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    return ({k: v.mean(0) for k, v in stacked.items()},
            {k: v.std(0, ddof=1) / np.sqrt(n_batches) for k, v in stacked.items()})


def _worst_z(spec, spectra, mean, se):
    modes = derive(spec).modes(len(spectra["s"]))
    rates = modes.unpack(modes.to_numpy()(0.0, modes.pack(**spectra), PARAMS))
    return max(float(np.max(np.abs(rates[n] - mean[n]) / se[n])) for n in ("p", "s"))


@pytest.mark.slow
@pytest.mark.parametrize("K", [16, 128])
def test_expansion_against_monte_carlo_of_the_true_loss(K):
    """2^18 samples of jax.grad of the true per-sample loss. K = 128: the first-order expansion
    is within 5 standard errors in every component (measured max |z| 3.4, the exact flow 3.1),
    the leading closure is not (20.5). K = 16, where the sampling resolves 0.05% of a rate, no
    closure agrees, but the first-order expansion is more than twice closer than the leading
    closure (max |z| 42 against 101; order 2: 22; the exact flow: 1.3)."""
    rng = np.random.default_rng(K)
    spectra = {"s": rng.uniform(0.2, 1.2, K), "p": rng.uniform(0.2, 1.2, K)}
    mean, se = _mc_rates(spectra, PARAMS)
    lead = _worst_z(ModelSpec("cosine", norms="self-consistent", moments="leading"), spectra, mean, se)
    first = _worst_z(EXPANSION, spectra, mean, se)
    if K >= 100:
        assert first < 5.0 < 10.0 < lead, (first, lead)
    else:
        assert 2 * first < lead, (first, lead)
