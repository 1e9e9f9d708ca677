"""The derived eigenmode flows of Barlow Twins, VICReg and the spectral contrastive loss against
Monte Carlo of jax.grad of the true batch loss, their B -> infinity limits, their equilibria and
the closed-form step time of stepwise learning."""

import numpy as np
import pytest
import sympy as sp

from ncdyn import ModelSpec, derive, equilibria, integrate, monte_carlo_batch, network_params, step_time
from derivations import symbols as sy

SIGMA2, ETA = 0.2, 0.1
WEIGHTS = {"lambda_BT": 0.3, "lambda_inv": 0.5, "mu_var": 1.0, "nu_cov": 0.2, "gamma": 1.0, "eps_var": 1e-4}
CASES = [
    # (spec fields, batch, mode variances drawn from)
    (dict(loss="barlow-twins", standardize=False), 16, (0.2, 1.5)),
    (dict(loss="barlow-twins", standardize=False, stop_gradient=True, views="one", data="spectrum"), 16, (0.2, 1.5)),
    (dict(loss="barlow-twins"), 16, (0.2, 1.5)),
    (dict(loss="spectral-contrastive"), 16, (0.05, 0.6)),
    (dict(loss="vicreg"), 64, (0.05, 0.3)),  # the variance hinge active, away from its surface
]


def _theory(fields, K, s, lam, B):
    spec = ModelSpec(**fields, batch="finite")
    modes = derive(spec).modes(K)
    params = {k: v for k, v in {"sigma2": SIGMA2, "eta": ETA, "batch": float(B), **WEIGHTS}.items()
              if k in modes.param_names}
    if "lambda" in modes.param_names:
        params["lambda"] = lam
    return modes.to_numpy()(0.0, s, params)


@pytest.mark.parametrize("h", [4, 16])
@pytest.mark.parametrize("fields,B,span", CASES, ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(map(str, v.values())))
def test_finite_batch_flow_matches_monte_carlo(fields, B, span, h):
    """z-scores of the derived finite-batch flow against jax.grad of the batch loss at random
    aligned points: |z| < 4.5 (largest over the modes); a 2% error in the drive is seen by the
    z-score pooled along the error's direction (> 6, where the right flow gives |z| < 4)."""
    if h == 16 and fields.get("data") == "spectrum":
        pytest.skip("one width serves the spectrum case")
    rng = np.random.default_rng(h)
    spec = ModelSpec(**fields)
    lam = rng.uniform(0.5, 2.0, h) if fields.get("data") == "spectrum" else np.ones(h)
    c = lam + SIGMA2
    s = rng.uniform(*span, h) / c
    mc = monte_carlo_batch(spec, s, {k: v for k, v in {"sigma2": SIGMA2, "eta": ETA, **WEIGHTS}.items()
                                     if k in network_params(spec)},
                           batch=B, n_batches=20000 if h == 4 else 8000, seed=h, lam=lam)
    theory = _theory(fields, h, s, lam, B)
    z = (theory - mc.mean) / np.maximum(mc.se, 1e-12)  # standardised Barlow Twins: no spread at all
    assert np.max(np.abs(z)) < 4.5, z
    drive = theory + 2 * ETA * s
    if np.max(np.abs(drive)) > 1e-12:  # standardised Barlow Twins has none: weight decay alone
        w = 0.02 * drive / mc.se
        pooled = lambda ref: float(np.sum(w * (ref - mc.mean) / mc.se) / np.linalg.norm(w))  # noqa: E731
        assert abs(pooled(theory)) < 4
        assert abs(pooled(theory + 0.02 * drive)) > 6
    else:
        np.testing.assert_allclose(mc.mean, -2 * ETA * s, atol=1e-12)


@pytest.mark.parametrize("fields", [c[0] for c in CASES], ids=lambda f: "-".join(map(str, f.values())))
def test_infinite_batch_is_the_limit(fields):
    """The population flow is the finite-batch flow as B -> infinity (limit taken by SymPy)."""
    finite = derive(ModelSpec(**fields, batch="finite")).rhs[0]
    population = derive(ModelSpec(**fields)).rhs[0]
    limit = sp.limit(finite.subs(sy.s, sp.Rational(3, 10)), sy.batch, sp.oo)
    assert sp.simplify(limit - population.subs(sy.s, sp.Rational(3, 10))) == 0


def test_barlow_twins_equilibria_and_step_time():
    """Unstandardised Barlow Twins, data variance lambda: ds/dt = 8 lambda s (1 - lambda s) - 2 eta s
    (by hand from L = sum_i (1 - C_ii)^2, C = Phi diag(lambda) Phi^T): s = 0 unstable, the
    plateau (1 - eta/(4 lambda))/lambda stable, and the half-rise time from s0 is
    ln(plateau/s0 - 1)/(8 lambda - 2 eta), equal to the integrated crossing time."""
    system = derive(ModelSpec("barlow-twins", standardize=False, data="spectrum"))
    lam, eta = 0.5, 0.2
    eq = equilibria(system, {"eta": eta, "lambda": lam})
    points = sorted(eq.points, key=lambda e: float(e.point["s"]))
    assert [e.stable for e in points] == [False, True]
    plateau = (1 - eta / (4 * lam)) / lam
    assert float(points[1].point["s"]) == pytest.approx(plateau, rel=1e-12)
    st = step_time(system)
    s0 = 1e-6
    t_half = float(st({"eta": eta, "lambda": lam}, s_0=s0))
    assert t_half == pytest.approx(np.log(plateau / s0 - 1) / (8 * lam - 2 * eta), rel=1e-12)
    ts = np.linspace(0.9 * t_half, 1.1 * t_half, 2001)
    sol = integrate(system, [s0], (0.0, ts[-1]), {"eta": eta, "lambda": lam}, t_eval=ts, rtol=1e-11, atol=1e-16)
    crossing = np.interp(plateau / 2, sol.y[:, 0], ts)
    assert crossing == pytest.approx(t_half, rel=1e-6)


def test_vicreg_sits_on_its_switching_surface():
    """VICReg, population: above the surface c s + eps = gamma^2 only invariance and weight decay
    act (ds/dt = -2 s (eta + 4 lambda_inv sigma2) < 0); below it the hinge adds
    2 mu c s / sqrt(c s + eps) > 0 when mu c / gamma > eta + 4 lambda_inv sigma2: the
    equilibrium is a sliding one on the surface, s = (gamma^2 - eps)/c; s = 0 is unstable."""
    system = derive(ModelSpec("vicreg"))
    params = {"sigma2": SIGMA2, "eta": ETA, **{k: WEIGHTS[k] for k in ("lambda_inv", "mu_var", "gamma", "eps_var")}}
    eq = equilibria(system, params)
    c = 1 + SIGMA2
    on = [e for e in eq.points if e.on_surface]
    assert len(on) == 1 and on[0].stable
    assert float(on[0].point["s"]) == pytest.approx((WEIGHTS["gamma"] ** 2 - WEIGHTS["eps_var"]) / c, rel=1e-9)
    alpha = (ETA + 4 * WEIGHTS["lambda_inv"] * SIGMA2) * WEIGHTS["gamma"] / (WEIGHTS["mu_var"] * c)
    assert float(np.ravel(on[0].sliding_weights)[0]) == pytest.approx(alpha, rel=1e-6)
    zero = [e for e in eq.points if not e.on_surface and abs(float(e.point["s"])) < 1e-12]
    assert len(zero) == 1 and zero[0].stable is False
    sol = integrate(system, [[0.05], [3.0]], (0.0, 20.0), params)
    np.testing.assert_allclose(sol.final[:, 0], (WEIGHTS["gamma"] ** 2 - WEIGHTS["eps_var"]) / c, rtol=1e-8)
    assert bool(np.all(sol.sliding))
