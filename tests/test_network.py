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
    euc = compare(ModelSpec("euclidean"), {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}, widths=(4, 8), t1=2.0, n_records=11)
    for h in (4, 8):
        assert euc.errors[h]["euclidean"]["p"] < 1e-6 and euc.errors[h]["euclidean"]["s"] < 1e-6
    cos = compare(ModelSpec("cosine"), {"sigma2": SIGMA2, "eta": 0.3, "alpha_p": 1.0}, widths=(8,), t1=1.0,
                  batch=1024, n_records=11)
    assert set(cos.errors[8]) == {"exact (finite width)", "exact, self-consistent norms", "leading, self-consistent norms",
                                  "exact, norms frozen at t=0"}
    for e in cos.errors[8].values():
        assert all(np.isfinite(e[k]) for k in ("p", "s", "p_shape", "psi_norm2"))
    assert "| 8 |" in cos.table()
    # the exact finite-width flow is the expected gradient flow of the true loss: it tracks the
    # network best, to well under 1% in p, and every closure misses by several times more
    errs = {k: e["p"] for k, e in cos.errors[8].items()}
    exact = errs.pop("exact (finite width)")
    assert cos.best()[8] == "exact (finite width)" and exact < 0.01, (exact, errs)
    assert all(e > 3 * exact for e in errs.values()), (exact, errs)


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


# --- every ModelSpec option against independent closed forms ------------------------------
from scipy.integrate import solve_ivp  # noqa: E402


def _closed_form(kind, p0, s0, lam, c1, eta, t, alpha=1.0):
    """Per-mode Euclidean flows written out by hand (mode j: data variance lam, variance c1 of
    view 1, lam + sigma2 of view 2; w the predictor eigenvalue):
    learned:    dp = s (lam - c1 p) - eta p,  ds = 2 p s (lam - c1 p) - 2 eta s   (alpha_p = 1)
    no sg:      ds = -2 (c1 p^2 - 2 lam p + lam + sigma2) s - 2 eta s (gradient through b)
    directpred: w = s^alpha, ds = 2 w s (lam - c1 w) - 2 eta s  (Tian et al.: 2 s^(1+alpha)(1 - c s^alpha))
    isoloss:    ds = 2 s (lam - c1 s^alpha) - 2 eta s           (Halvagal et al.: 2 s (1 - c s^alpha))
    none:       ds = 2 s (lam - c1) - 2 eta s."""
    h = len(s0)
    c2 = lam + SIGMA2

    def f(_, y):
        if kind in ("learned", "nosg"):
            p, s = y[:h], y[h:]
            dp = s * (lam - c1 * p) - eta * p
            ds = 2 * p * s * (lam - c1 * p) if kind == "learned" else -2 * (c1 * p**2 - 2 * lam * p + c2) * s
            return np.r_[dp, ds - 2 * eta * s]
        s = y
        w = {"directpred": s**alpha, "isoloss": None, "none": 1.0}[kind]
        if kind == "isoloss":
            return 2 * s * (lam - c1 * s**alpha) - 2 * eta * s
        return 2 * w * s * (lam - c1 * w) - 2 * eta * s

    y0 = np.r_[p0, s0] if kind in ("learned", "nosg") else s0
    return solve_ivp(f, (0, t[-1]), y0, t_eval=t, rtol=1e-11, atol=1e-13, method="DOP853").y.T


@pytest.mark.parametrize(
    "kind, spec, extra, lam, one_view",
    [
        ("directpred", ModelSpec("euclidean", predictor="directpred"), {"alpha": 0.5}, None, False),
        ("directpred", ModelSpec("euclidean", predictor="directpred", data="spectrum", views="one"), {"alpha": 1.0},
         [2.0, 0.7, 0.2], True),
        ("isoloss", ModelSpec("isoloss", predictor="directpred"), {"alpha": 0.5}, None, False),
        ("none", ModelSpec("euclidean", predictor="none", views="one"), {}, None, True),
        ("nosg", ModelSpec("euclidean", stop_gradient=False), {"alpha_p": 1.0}, None, False),
        ("learned", ModelSpec("euclidean", data="spectrum"), {"alpha_p": 1.0}, [2.0, 0.7, 0.2], False),
    ],
)
def test_network_options_follow_closed_form_flows(kind, spec, extra, lam, one_view):
    """The network's exact expected flow (autodiff of the true loss) for each new option equals
    the per-mode flow written out by hand; off-diagonals stay zero."""
    h, eta = 3, 0.05
    rng = np.random.default_rng(1)
    p0, s0 = rng.uniform(0.3, 1.0, h), rng.uniform(0.3, 1.2, h)
    net = simulate_network(spec, {"sigma2": SIGMA2, "eta": eta, **extra}, h=h, t1=1.5, n_records=6,
                           init={"p": p0, "s": s0}, lam=lam)
    lam_j = np.ones(h) if lam is None else np.asarray(lam)
    ref = _closed_form(kind, p0, s0, lam_j, lam_j if one_view else lam_j + SIGMA2, eta, net.t, extra.get("alpha", 1.0))
    if kind in ("learned", "nosg"):
        np.testing.assert_allclose(net.p, ref[:, :h], atol=1e-8)
        ref = ref[:, h:]
    np.testing.assert_allclose(net.s, ref, atol=1e-8)
    if kind == "directpred":  # the recorded predictor eigenvalue is DirectPred's w = s^alpha
        np.testing.assert_allclose(net.p, net.s ** extra["alpha"], atol=1e-8)
    if kind == "nosg":  # without stop-gradient the Euclidean model collapses
        assert np.all(net.s[-1] < 0.35 * net.s[0])
    assert np.max(net.misalignment) < 1e-10


def test_default_records_accept_short_runs():
    """t1 = 0.1 with dt = 0.01 (10 steps) used to raise 'must be a multiple of
    n_records - 1 = 60'; the default now records every step of such a short run."""
    net = simulate_network(ModelSpec("euclidean"), {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}, h=4, t1=0.1,
                           gradient="sampled", batch=64)
    np.testing.assert_allclose(net.t, np.linspace(0, 0.1, 11), atol=1e-12)
    assert net.status == "finished" and list(net.steps) == list(range(11))


def test_discrete_expected_map_is_gradient_descent():
    """lr = 0.4: the exact expected-gradient map equals the per-mode recursion
    p' = p + lr (s (1 - c p) - eta p), phi' = phi (1 - lr (p (c p - 1) + eta)), s = phi^2."""
    h, lr, eta = 4, 0.4, 0.05
    rng = np.random.default_rng(0)
    p0, s0 = rng.uniform(0.2, 1.0, h), rng.uniform(0.3, 1.2, h)
    net = simulate_network(ModelSpec("euclidean"), {"sigma2": SIGMA2, "eta": eta, "alpha_p": 1.0}, h=h, t1=8.0, lr=lr,
                           init={"p": p0, "s": s0}, record_every=4)
    assert list(net.steps) == [0, 4, 8, 12, 16, 20] and net.gradient == "expected"
    p, phi, rows = p0.copy(), np.sqrt(s0), [np.r_[p0, s0]]
    for n in range(20):
        p, phi = p + lr * (phi**2 * (1 - C * p) - eta * p), phi * (1 - lr * (p * (C * p - 1) + eta))
        if (n + 1) % 4 == 0:
            rows.append(np.r_[p, phi**2])
    rows = np.array(rows)
    np.testing.assert_allclose(net.p, rows[:, :h], atol=1e-12)
    np.testing.assert_allclose(net.s, rows[:, h:], atol=1e-12)


def test_exact_flow_tracks_the_network_at_small_width_within_its_own_floor():
    """h = 4, true cosine loss, sampled batches. The network's own floor is measured from the
    network alone: twice its distance to a run with another seed and half the step
    (Richardson: the O(dt) Euler error plus the sampling noise). The exact finite-width
    flow stays within that floor; the leading-order system (self-consistent norms) misses by
    several floors."""
    from dynamics import EXACT_LABEL

    spec = ModelSpec("cosine")
    theories = {EXACT_LABEL: ModelSpec("cosine", norms="exact"),
                "leading": ModelSpec("cosine", norms="self-consistent", moments="leading")}
    cmp = compare(spec, {"sigma2": SIGMA2, "eta": 0.3, "alpha_p": 1.0}, widths=(4,), t1=1.0, batch=4096,
                  n_records=11, approximations=theories, floor_seed=1)
    floor, exact, lead = cmp.floor[4], cmp.errors[4][EXACT_LABEL], cmp.errors[4]["leading"]
    assert 1e-4 < floor["p"] < 0.01  # a real floor: sampling and Euler error, not zero
    assert exact["status"] == "finished"
    for k in ("p", "s", "p_shape"):
        assert exact[k] <= floor[k], k
    assert lead["p"] > 5 * floor["p"] and lead["p"] > 10 * exact["p"]
    assert cmp.within_floor()[EXACT_LABEL] == (4,) and cmp.within_floor()["leading"] == ()
