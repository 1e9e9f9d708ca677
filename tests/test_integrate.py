"""dynamics.integrate: backends agree, batching is exact, events fire where theory says."""

import numpy as np
import pytest
from scipy.integrate import quad

from derivations import ModelSpec, derive
from dynamics import Collapse, Steady, integrate

SIGMA2 = 0.2
C = 1 + SIGMA2
EUC = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}
COS = {"sigma2": SIGMA2, "eta": 0.1, "alpha_p": 1.0, "N_psi": 1.0, "N_phi": 1.0, "T": 1.0}


def cases():
    rng = np.random.default_rng(0)
    yield "euclidean/ema", derive(ModelSpec("euclidean", "ema")), np.column_stack(
        [rng.uniform(0.1, 1, 4), rng.uniform(0.1, 1, 4), rng.uniform(0.5, 1, 4)]), dict(EUC, beta=0.5)
    yield "cosine/simsiam full", derive(ModelSpec("cosine")), np.column_stack(
        [rng.uniform(0.1, 1, 4), rng.uniform(0.1, 1, 4)]), COS
    yield "cosine sextic reduced", derive(ModelSpec("cosine")).reduce(), rng.uniform(-0.3, 1.2, (4, 1)), COS
    modes = derive(ModelSpec("cosine", "ema", "self-consistent", "leading")).modes(5)
    yield "cosine/ema 5 modes", modes, modes.pack(p=rng.uniform(0.2, 1, (3, 5)), s=rng.uniform(0.2, 1, (3, 5)),
                                                  tau=rng.uniform(0.5, 1, (3, 5))), {"sigma2": SIGMA2, "eta": 0.2, "alpha_p": 1.0, "beta": 0.3}


@pytest.mark.parametrize("name, system, y0, params", list(cases()), ids=[c[0] for c in cases()])
def test_jax_and_scipy_agree(name, system, y0, params):
    a = integrate(system, y0, (0, 5), params, backend="jax")
    b = integrate(system, y0, (0, 5), params, backend="scipy")
    assert (a.status == b.status).all(), (a.status, b.status)
    both = a.valid & b.valid
    assert both.sum() > 0.5 * both.size
    assert np.max(np.abs(a.y - b.y)[both]) < 1e-6


def test_batched_equals_unbatched():
    system = derive(ModelSpec("euclidean", "ema"))
    rng = np.random.default_rng(1)
    y0 = np.column_stack([rng.uniform(0.1, 1, 4), rng.uniform(0.1, 1, 4), rng.uniform(0.5, 1, 4)])
    eta = np.linspace(0.0, 0.4, 4)
    params = dict(EUC, beta=0.5, eta=eta)
    batched = integrate(system, y0, (0, 20), params)
    for i in range(4):
        single = integrate(system, y0[i], (0, 20), dict(params, eta=eta[i]))
        assert single.y.shape == (len(single.t), 3) and single.status.shape == ()
        np.testing.assert_allclose(batched.y[i], single.y, rtol=1e-11, atol=1e-13)
        assert batched.status[i] == single.status


def test_parameter_sweep_broadcasts_without_loops():
    system = derive(ModelSpec("euclidean"))
    etas = np.array([[0.0], [0.4]])  # (2, 1) against 2 initial states -> batch (2, 2)
    y0 = np.array([[0.3, 0.09], [1.0, 1.0]])
    sol = integrate(system, y0, (0, 10), dict(EUC, eta=etas))
    assert sol.y.shape == (2, 2, 201, 2) and sol.status.shape == (2, 2)
    for i, j in np.ndindex(2, 2):  # entry (i, j) is initial state j at eta_i
        single = integrate(system, y0[j], (0, 10), dict(EUC, eta=etas[i, 0]))
        np.testing.assert_allclose(sol.y[i, j], single.y, rtol=1e-11, atol=1e-13)
    assert not np.allclose(sol.y[0, 0, -1], sol.y[1, 0, -1])


def tian_p_plus(eta, tau=1.0):
    return (tau + np.sqrt(tau**2 - 4 * C * eta)) / (2 * C)


def test_steady_state_is_tians_equilibrium():
    sol = integrate(derive(ModelSpec("euclidean")), [0.3, 0.09], (0, 400), EUC,
                    events=("collapse", "blow_up", Steady(tol=1e-9)))
    assert sol.status == "steady"
    # |f| < 1e-9 with contraction rates 0.68 (p) and 2 eta = 0.1 (s - p^2): distance < 1e-8
    assert abs(sol.final[0] - tian_p_plus(0.05)) < 1e-8
    assert abs(sol.final[1] - tian_p_plus(0.05) ** 2) < 1e-7
    assert sol.event_t < 400 and not sol.valid[-1]


def test_collapse_above_the_threshold_at_the_right_time():
    """eta > 1/(4c): every trajectory collapses; the event time equals int dp / f(p) (quadrature)."""
    eta = 0.3
    assert eta > 1 / (4 * C)
    reduced = derive(ModelSpec("euclidean")).reduce()
    tol = 1e-6
    p0 = np.array([[0.2], [0.8], [1.5]])
    for backend in ("jax", "scipy"):
        sol = integrate(reduced, p0, (0, 200), dict(EUC, eta=eta), events=(Collapse(tol=tol), "blow_up"),
                        backend=backend)
        assert (sol.status == "collapsed").all()
        for i, p in enumerate(p0[:, 0]):
            f = lambda q: q**2 - C * q**3 - eta * q  # noqa: E731  Tian's cubic, typed in
            t_ref = quad(lambda q: 1.0 / f(q), p, tol, limit=200, epsabs=1e-12, epsrel=1e-12)[0]
            assert abs(sol.event_t[i] - t_ref) < 1e-5 * t_ref


def test_sextic_blow_up_is_reported_with_its_time():
    """Below the negative root the sextic diverges in finite time t* = int_{p0}^{-inf} dp / f(p)."""
    reduced = derive(ModelSpec("cosine")).reduce()
    c, eta, T = C, COS["eta"], COS["T"]
    f = lambda q: q**2 - c * T * q**3 - 2 * c * q**6 - eta * q  # noqa: E731  (N = alpha_p = 1), typed in
    roots = np.roots([-2 * c, 0, 0, -c * T, 1, -eta, 0])
    neg_root = min(r.real for r in roots if abs(r.imag) < 1e-12)
    p0 = neg_root - 0.3
    t_star = quad(lambda q: 1.0 / f(q), p0, -np.inf, epsabs=1e-13, epsrel=1e-12)[0]
    for backend in ("jax", "scipy"):
        sol = integrate(reduced, [[p0], [0.5]], (0, 10), COS, backend=backend)
        assert sol.status[0] == "blew_up", sol.messages[0]
        assert abs(sol.event_t[0] - t_star) < 1e-6
        assert np.all(np.isfinite(sol.y)) and sol.status[1] == "finished"
        assert not sol.valid[0, -1]


def test_bound_event_and_user_event():
    reduced = derive(ModelSpec("euclidean")).reduce()
    # dp/dt = p^2 - c p^3 - eta p with a user event when p crosses 0.5 from below
    sol = integrate(reduced, [0.1], (0, 500), EUC, events=[lambda t, y, a: y[0] - 0.5])
    assert sol.status == "event"
    assert abs(sol.y[..., sol.valid, 0][-1] - 0.5) < 0.05 and abs(sol.final[0] - 0.5) < 1e-8
    sol2 = integrate(reduced, [0.1], (0, 500), EUC, events=[lambda t, y, a: y[0] - 0.5], backend="scipy")
    assert sol2.status == "event" and abs(sol2.event_t - sol.event_t) < 1e-6


def test_exactly_collapsed_start():
    sol = integrate(derive(ModelSpec("euclidean")), [[0.0, 0.0], [0.5, 0.25]], (0, 1), EUC)
    assert list(sol.status) == ["collapsed", "finished"] and sol.event_t[0] == 0.0
    assert np.all(sol.y[0] == 0.0)


def test_max_steps_status_and_retry():
    system = derive(ModelSpec("euclidean"))
    sol = integrate(system, [0.3, 0.09], (0, 200), EUC, max_steps=20, retry=False)
    assert sol.status == "max_steps" and "max_steps" in str(sol.messages) and not sol.retried
    assert np.all(np.isfinite(sol.y))
    retried = integrate(system, [0.3, 0.09], (0, 200), EUC, max_steps=20, retry=True)
    assert retried.retried and retried.status == "finished"


def test_stiff_solver_option():
    # (max_steps 160 is what the retry of test_max_steps_status_and_retry gives kvaerno5 here:
    # the two share one compiled solver)
    system = derive(ModelSpec("euclidean"))
    a = integrate(system, [0.5, 0.25], (0, 10), EUC, solver="kvaerno5", max_steps=160)
    b = integrate(system, [0.5, 0.25], (0, 10), EUC, backend="scipy", solver="Radau")
    assert a.status == "finished" and b.status == "finished"
    assert np.max(np.abs(a.y - b.y)) < 1e-6


def test_ten_thousand_modes_keep_the_norm_law():
    """K = 10^4 self-consistent leading-order cosine modes: ||Psi||^2 e^{2 eta t} is conserved."""
    K = 10_000
    modes = derive(ModelSpec("cosine", "simsiam", "self-consistent", "leading")).modes(K)
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 1.0, K)
    y0 = modes.pack(p=p, s=p**2 + rng.uniform(0, 0.1, K))
    params = {"sigma2": SIGMA2, "eta": 0.3, "alpha_p": 1.0}
    sol = integrate(modes, y0, (0, 2), params, n_save=5)
    assert sol.status == "finished"
    q = np.sum(modes.unpack(sol.y)["p"] ** 2, axis=-1) * np.exp(2 * 0.3 * sol.t)
    assert np.ptp(q) / q[0] < 1e-7


def test_solution_helpers():
    sol = integrate(derive(ModelSpec("euclidean")), np.full((1, 3, 2), 0.4), (0, 1), EUC)
    assert sol[0].batch_shape == (3,) and sol[:, 0].batch_shape == (1,)
    assert sol.counts() == {"finished": 3}
    assert sol.states()["p"].shape == (1, 3, 201)
    assert "finished: 3" in repr(sol)


BAD = [
    (dict(y0=np.zeros(3)), ValueError, r"y0 must have shape \(\.\.\., 2\)"),
    (dict(y0=[np.nan, 0.0]), ValueError, "y0 must be finite"),
    (dict(t_span=(1.0, 0.0)), ValueError, "t1 > t0"),
    (dict(t_span=(0.0, np.inf)), ValueError, "t_span must be finite"),
    (dict(t_span=5.0), ValueError, "t_span must be a pair"),
    (dict(backend="torch"), ValueError, "backend='torch' is not allowed"),
    (dict(rtol=-1e-8), ValueError, "rtol must be a positive finite number"),
    (dict(atol=0.0), ValueError, "atol must be a positive finite number"),
    (dict(solver="euler"), ValueError, "solver='euler' is not allowed"),
    (dict(events=("explode",)), ValueError, "events: 'explode' is not allowed"),
    (dict(t_eval=[0.0, 2.0]), ValueError, "t_eval must lie within t_span"),
    (dict(t_eval=[0.5, 0.2]), ValueError, "strictly increasing"),
    (dict(max_steps=0), ValueError, "max_steps must be a positive int"),
    (dict(params={"sigma2": 0.2}), ValueError, "missing"),
    (dict(params=dict(EUC, eta=np.zeros(3))), ValueError, "must broadcast against the batch shape"),
    (dict(system="euclidean"), TypeError, r"system must be a derivations.DynamicalSystem"),
]


@pytest.mark.parametrize("change, exc, match", BAD, ids=[m for _, _, m in BAD])
def test_bad_input(change, exc, match):
    args = dict(system=derive(ModelSpec("euclidean")), y0=np.full((2, 2), 0.3), t_span=(0.0, 1.0), params=EUC)
    kwargs = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    with pytest.raises(exc, match=match):
        integrate(args["system"], args["y0"], args["t_span"], args["params"], **kwargs)


def test_event_names_fire_at_their_default_thresholds():
    """"collapse", "blow_up", "steady" are Collapse(), BlowUp(), Steady() with tol 1e-8, bound
    1e8, tol 1e-9; another threshold is passed on the object. Closed forms: x' = -x from 1 reaches
    |x| = tol at t = ln(1/tol) (collapse) and |x'| = tol at the same time (steady); x' = x^2
    from 1 is 1/(1 - t), reaching 1e8 at t = 1 - 1e-8 (to 1e-10: a bound of 1e7 or 1e9 would be
    9e-8 or 9e-9 away; near the pole a relative error e of x moves the time by e * 1e-8). The
    decay runs keep atol (1e-20) below x = 1e-9, so that the relative tolerance governs there: a
    relative error e of x moves the time by e."""
    from derivations import ODESystem

    decay = ODESystem.from_equations({"x": "-x"}, collapse=("x",))
    tight = dict(rtol=1e-11, atol=1e-14, progress=False)
    for events, status, t_ref in [("collapse", "collapsed", np.log(1e8)), ("steady", "steady", np.log(1e9)),
                                  ((Collapse(tol=1e-4),), "collapsed", np.log(1e4))]:
        sol = integrate(decay, [1.0], (0, 40), {}, events=events, **dict(tight, atol=1e-20))
        assert sol.status == status and abs(sol.event_t - t_ref) < 1e-8 * t_ref
    blow = ODESystem.from_equations({"x": "x**2"})
    sol = integrate(blow, [1.0], (0, 2), {}, events="blow_up", **tight)
    assert sol.status == "blew_up" and sol.event == "blow_up" and abs(sol.event_t - (1 - 1e-8)) < 1e-10


def test_the_documented_statuses_are_every_status():
    """integrate's docstring lists every name of STATUSES, each as a quoted item."""
    from dynamics import STATUSES

    missing = [s for s in STATUSES if f'"{s}"' not in integrate.__doc__]
    assert not missing, missing
