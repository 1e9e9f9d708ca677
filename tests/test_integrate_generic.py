"""integrate on any system: hand-built systems, events as objects, the pure differentiable core
(flow), honest statuses with reasons and bounds on both backends.

Every reference is independent of the code under test: closed-form solutions, closed-form
derivatives, central finite differences, quadrature of dt = dp / f(p).
"""

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from derivations import ModelSpec, ODESystem, derive
from dynamics import (
    BlowUp,
    Collapse,
    Condition,
    Event,
    LeaveBox,
    Steady,
    flow,
    integrate,
)

BACKENDS = ("jax", "scipy")
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


def linear():
    return ODESystem.from_equations({"x": "-k*x"}, params=("k",))


# -- 1. any system ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_system_against_exp(backend):
    """x' = -k x: x(t) = x0 exp(-k t), for a parameter sweep broadcast against two starts."""
    k = np.array([[0.5], [1.0], [2.0]])
    x0 = np.array([[1.0], [-2.0]])
    sol = integrate(linear(), x0, (0, 3), {"k": k}, backend=backend, n_save=31, **TIGHT)
    assert sol.y.shape == (3, 2, 31, 1) and (sol.status == "finished").all()
    exact = x0[None, :, :] * np.exp(-k[:, :, None] * sol.t)  # (3, 2, 31)
    np.testing.assert_allclose(sol.y[..., 0], exact, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sol.final[..., 0], exact[..., -1], rtol=1e-8, atol=1e-12)
    assert np.all(sol.t_end == 3.0) and np.all(sol.event == "")


@pytest.mark.parametrize("backend", BACKENDS)
def test_states_named_like_ssl_states_do_not_collapse(backend):
    """States named p_hat, s_total decay to 0; no collapse event unless ``collapse=`` says so.
    With collapse declared, the event fires at ln(y0 / tol) / a (closed form)."""
    eqs = {"p_hat": "-a*p_hat", "s_total": "-2*a*s_total"}
    plain = ODESystem.from_equations(eqs, params=("a",))
    sol = integrate(plain, [1.0, 1.0], (0, 30), {"a": 1.0}, backend=backend)
    assert sol.status == "finished" and sol.event == ""
    assert abs(sol.final[0] - np.exp(-30)) < 1e-10  # atol = 1e-10
    declared = ODESystem.from_equations(eqs, params=("a",), collapse=("p_hat", "s_total"))
    sol = integrate(declared, [1.0, 1.0], (0, 30), {"a": 1.0}, backend=backend,
                    events=(Collapse(tol=1e-6), "blow_up"), **TIGHT)
    # max(|p_hat|, |s_total|) = exp(-t) reaches 1e-6 at t = ln(1e6)
    assert sol.status == "collapsed" and sol.event == "collapse"
    assert abs(sol.event_t - np.log(1e6)) < 1e-6
    if backend == "scipy":  # the same through an object naming the states (one event definition)
        sol2 = integrate(plain, [1.0, 1.0], (0, 30), {"a": 1.0}, backend=backend,
                         events=[Collapse(1e-6, states=("p_hat", "s_total"))], **TIGHT)
        assert sol2.status == "collapsed" and abs(sol2.event_t - np.log(1e6)) < 1e-6


def test_parameters_go_through_the_systems_own_check():
    """A user parameter named eta may be negative on a user's system (no SSL table); the
    system's own param_domain is enforced, with check_params' message."""
    sys_eta = ODESystem.from_equations({"q": "eta*q"}, params=("eta",))
    sol = integrate(sys_eta, [1.0], (0, 1), {"eta": -0.5}, **TIGHT)
    assert abs(sol.final[0] - np.exp(-0.5)) < 1e-9
    bounded = ODESystem.from_equations({"q": "-a*q"}, params=("a",), param_domain={"a": (0, None)})
    with pytest.raises(ValueError, match=r"params\['a'\] = -1.0 is outside"):
        integrate(bounded, [1.0], (0, 1), {"a": np.array([1.0, -1.0])})
    with pytest.raises(ValueError, match="missing"):
        integrate(bounded, [1.0], (0, 1), {})


# -- 2. events as objects -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_event_objects_fire_at_their_closed_form_times(backend):
    """x' = x^2: x = x0 / (1 - x0 t). From 0.5 the condition x = 1 fires at t = 1; from 1.5
    (above it, so it never crosses) BlowUp(100) fires at 1/1.5 - 1/100. LeaveBox(upper=1.5)
    from 0.5 at 2 - 1/1.5. x' = -k x: Steady(tol) where k x0 e^{-kt} = tol."""
    quadratic = ODESystem.from_equations({"x": "c*x**2"}, params=("c",))
    sol = integrate(quadratic, [[0.5], [1.5]], (0, 5), {"c": 1.0}, backend=backend,
                    events=[BlowUp(100.0), Condition(lambda t, y, p: y[0] - 1.0, name="x_is_1")], **TIGHT)
    assert list(sol.status) == ["event", "blew_up"] and list(sol.event) == ["x_is_1", "blow_up"]
    assert abs(sol.event_t[0] - 1.0) < 1e-9 and abs(sol.final[0, 0] - 1.0) < 1e-8
    assert abs(sol.event_t[1] - (1 / 1.5 - 1 / 100)) < 1e-9 and abs(sol.final[1, 0] - 100) < 1e-6
    sol = integrate(quadratic, [0.5], (0, 5), {"c": 1.0}, backend=backend, events=[LeaveBox(upper=1.5, name="cap")], **TIGHT)
    assert sol.status == "event" and sol.event == "cap" and abs(sol.event_t - (2 - 1 / 1.5)) < 1e-9
    k, tol = 2.0, 1e-6
    sol = integrate(linear(), [1.0], (0, 50), {"k": k}, backend=backend, events=[Steady(tol)], **TIGHT)
    assert sol.status == "steady" and abs(sol.event_t - np.log(k / tol) / k) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_leave_the_state_domain(backend):
    """x' = -1 on the domain x >= 0 from x = 1: LeaveBox() (the system's domain) fires when x
    passes 0 at t = 1; a start on the boundary is inside."""
    drift = ODESystem.from_equations({"x": "-v"}, params=("v",), state_domain={"x": (0, None)})
    sol = integrate(drift, [[1.0], [0.0]], (0, 3), {"v": 1.0}, backend=backend, events=[LeaveBox()])
    assert list(sol.status) == ["event", "event"] and list(sol.event) == ["leave_domain"] * 2
    assert abs(sol.event_t[0] - 1.0) < 1e-9 and abs(sol.final[0, 0]) < 1e-9
    assert sol.event_t[1] < 1e-9  # from the boundary x = 0 the state leaves at once


@pytest.mark.parametrize("backend", BACKENDS)
def test_condition_direction_and_start_on_the_firing_side(backend):
    """x' = cos(t) (x = sin t from 0): direction +1 fires where x rises through 0.5 (t = pi/6);
    direction -1 on x - 0.5 fires where it falls back (t = 5 pi / 6) only if the run started
    above, so from x0 = 0 (below) it ends at t0; direction 0 orients by the start."""
    osc = ODESystem.from_equations({"x": "cos(w*t_)", "t_": "1"}, params=("w",))
    g = lambda t, y, p: y[0] - 0.5
    y0 = [0.0, 0.0]
    up = integrate(osc, y0, (0, 6), {"w": 1.0}, backend=backend, events=[Condition(g, name="up", direction=1)], **TIGHT)
    assert up.event == "up" and abs(up.event_t - np.pi / 6) < 1e-8
    down = integrate(osc, y0, (0, 6), {"w": 1.0}, backend=backend, events=[Condition(g, name="down", direction=-1)])
    assert down.event == "down" and down.event_t == 0.0 and "already satisfies" in str(down.messages)
    above = integrate(osc, [0.9, np.pi / 2], (0, 6), {"w": 1.0}, backend=backend,
                      events=[Condition(g, name="down", direction=-1)], **TIGHT)
    # from (0.9, pi/2): x = 0.9 + sin(tau) - 1 with tau = t + pi/2, falls to 0.5 at sin(tau) = 0.6
    assert abs(above.event_t - (np.pi - np.arcsin(0.6) - np.pi / 2)) < 1e-8
    either = integrate(osc, y0, (0, 6), {"w": 1.0}, backend=backend, events=[g], **TIGHT)
    assert either.status == "event" and either.event == "condition0" and abs(either.event_t - np.pi / 6) < 1e-8


class _LeaveDisc(Event):
    """A user event written once against ctx.xp: |y| reaches the radius."""

    name = "disc"

    def __init__(self, radius):
        self.radius = radius

    def margin(self, t, y, params, ctx):
        return self.radius**2 - ctx.xp.sum(y**2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_user_event_subclass_serves_both_backends(backend):
    """x' = x, y' = y from |y0| = 1: |y| = e^t reaches 2 at t = ln 2."""
    grow = ODESystem.from_equations({"u": "r*u", "v": "r*v"}, params=("r",))
    sol = integrate(grow, [0.6, 0.8], (0, 5), {"r": 1.0}, backend=backend, events=[_LeaveDisc(2.0)], **TIGHT)
    assert sol.status == "event" and sol.event == "disc" and abs(sol.event_t - np.log(2)) < 1e-9


def test_event_arguments_are_checked():
    sysm = linear()
    for events, match in (
        (["explode"], "'explode' is not allowed"),
        ([Steady(1e-6), "steady"], "names must be unique"),
        ([42], r"events\[0\] must be an Event"),
    ):
        with pytest.raises((ValueError, TypeError), match=match):
            integrate(sysm, [1.0], (0, 1), {"k": 1.0}, events=events)
    with pytest.raises(ValueError, match="direction must be -1, 0 or"):
        Condition(lambda t, y, p: y[0], direction=2)
    with pytest.raises(ValueError, match="Collapse tol must be a positive"):
        Collapse(0.0)
    with pytest.raises(ValueError, match="not states of the system"):
        integrate(sysm, [1.0], (0, 1), {"k": 1.0}, events=[Collapse(states=("nope",))])


def test_solver_objects():
    """A diffrax solver object and a SciPy OdeSolver class are accepted like names."""
    import diffrax
    from scipy.integrate import RK45

    a = integrate(linear(), [1.0], (0, 2), {"k": 1.0}, solver=diffrax.Dopri8(), **TIGHT)
    b = integrate(linear(), [1.0], (0, 2), {"k": 1.0}, solver=RK45, backend="scipy", **TIGHT)
    assert abs(a.final[0] - np.exp(-2)) < 1e-9 and abs(b.final[0] - np.exp(-2)) < 1e-8
    assert a.info["solver"] == "Dopri8" and b.info["solver"] == "RK45"


# -- 3. the pure core ---------------------------------------------------------------------------


def test_flow_gradient_against_the_logistic_closed_form():
    """x' = r x (1 - x/K): x(t) = K x0 e^{rt} / (K + x0 (e^{rt} - 1)); dx/dr and dx/dx0 in closed
    form, typed in; jax.grad through the flow agrees to 1e-9, and jit gives the same value."""
    logistic = ODESystem.from_equations({"x": "r*x*(1 - x/K)"}, params=("r", "K"))
    x0, r, K, t = 0.1, 1.3, 2.0, 2.0
    phi = flow(logistic, t, rtol=1e-12, atol=1e-14)
    e = np.exp(r * t)
    x_t = K * x0 * e / (K + x0 * (e - 1))
    dx_dr = K * x0 * t * e * (K - x0) / (K + x0 * (e - 1)) ** 2
    dx_dx0 = K**2 * e / (K + x0 * (e - 1)) ** 2
    value = jax.jit(phi)(jnp.array([x0]), {"r": r, "K": K})
    assert value.shape == (1,) and abs(float(value[0]) - x_t) < 1e-10
    # both derivatives from one reverse pass (one compiled gradient)
    g_r, g_x0 = jax.grad(lambda r_, y: phi(y, {"r": r_, "K": K})[0], argnums=(0, 1))(r, jnp.array([x0]))
    assert abs(float(g_r) - dx_dr) < 1e-9 and abs(float(g_x0[0]) - dx_dx0) < 1e-9


def test_flow_gradient_against_central_differences():
    """Reduced Euclidean mode dp/dt = p^2 - c p^3 - eta p: d p(5) / d eta by jax.grad against a
    central difference of the flow (h = 1e-4, truncation ~1e-8, solver noise ~1e-12/h)."""
    reduced = derive(ModelSpec("euclidean")).reduce()
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}
    phi = flow(reduced, [1.0, 5.0], rtol=1e-12, atol=1e-14)
    p5 = lambda eta: phi(jnp.array([0.3]), dict(params, eta=eta))[-1, 0]
    h = 1e-4
    fd = (float(p5(0.05 + h)) - float(p5(0.05 - h))) / (2 * h)
    assert abs(float(jax.grad(p5)(0.05)) - fd) < 1e-6
    # the same method as integrate's lane kernel (the same steps up to rounding): the same values
    # at the saved times to a few times the tolerance
    sol = integrate(reduced, [0.3], (0, 5), params, t_eval=[1.0, 5.0], events=(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(phi(jnp.array([0.3]), params)), sol.y, rtol=1e-11)
    batch = jax.vmap(lambda y: phi(y, params))(jnp.array([[0.3], [0.5]]))
    assert batch.shape == (2, 2, 1)


# -- 4. statuses agree across backends and batch neighbours ---------------------------------------


COSINE = derive(ModelSpec("cosine", "simsiam"))


def _cosine_rate(P):
    """dp/dt of the reduced cosine mode, typed in from the paper's sextic."""
    c = 1 + P["sigma2"]
    Np, Nf, T, eta, a = P["N_psi"], P["N_phi"], P["T"], P["eta"], P["alpha_p"]
    return lambda q: q**2 / (Nf * Np) - c * T * q**3 / (Nf * Np**3) - 2 * c * q**6 / (Nf * Np**3 * a) - eta * q


FIRST_STEP = ({"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 1.0, "N_phi": 1.0, "T": 1.0}, -3.0)
README = ({"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0, "N_psi": 2.0, "N_phi": 1.5, "T": 1.0}, -10.0)


@pytest.mark.parametrize("params, p0", [FIRST_STEP, README], ids=["first-step", "readme-p=-10"])
def test_fast_blow_up_agrees_across_backends_with_its_time(params, p0):
    """Blow-up within the first trial step: both backends say blew_up at t* = int_{p0}^{-inf} dp/f
    (quadrature), to 1e-6 relative."""
    reduced = COSINE.reduce()
    f = _cosine_rate(params)
    t_star = quad(lambda q: 1.0 / f(q), p0, -np.inf, epsabs=1e-16, epsrel=1e-13)[0]
    for backend in BACKENDS:
        sol = integrate(reduced, [p0], (0, 10), params, backend=backend)
        assert sol.status == "blew_up" and sol.event == "blow_up", (backend, sol.messages)
        assert abs(sol.event_t - t_star) < 1e-6 * t_star, (backend, sol.event_t, t_star)
        assert sol.t_end == sol.event_t and np.isfinite(sol.final).all()


def test_status_does_not_depend_on_batch_neighbours():
    """The README parameters from p = -10: the same status and event time alone and batched
    with p = -2 .. -7."""
    params, p0 = README
    reduced = COSINE.reduce()
    alone = integrate(reduced, [p0], (0, 10), params)
    starts = np.array([-2.0, -3.0, -4.0, -5.0, -6.0, -7.0, p0])[:, None]
    batched = integrate(reduced, starts, (0, 10), params)
    assert alone.status == batched.status[-1] == "blew_up"
    assert abs(alone.event_t - batched.event_t[-1]) <= 1e-12 * alone.event_t
    for i, p in enumerate(starts[:-1, 0]):
        single = integrate(reduced, [p], (0, 10), params)
        assert single.status == batched.status[i] and abs(single.event_t - batched.event_t[i]) <= 1e-12 * single.event_t


# -- 5. bounds, statuses and reasons ------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_rate_singularity_fails_with_a_reason(backend):
    """x' = -a/x reaches x = 0 at t = x0^2 / (2a) with an infinite rate (x = sqrt(x0^2 - 2 a t)):
    not a blow-up of the state, so "failed", at that time, with a reason pointing at stiffness
    and a stiff solver."""
    sing = ODESystem.from_equations({"x": "-a/x"}, params=("a",))
    sol = integrate(sing, [1.0], (0, 2), {"a": 1.0}, backend=backend, retry=False)
    assert sol.status == "failed" and sol.event == "" and np.isnan(sol.event_t)
    assert abs(sol.t_end - 0.5) < 1e-6 and abs(sol.final[0]) < 1e-3
    msg = str(sol.messages)
    assert "step size collapsed" in msg and "stiff" in msg
    assert not sol.valid[sol.t > 0.5].any() and sol.valid[sol.t < 0.499].all()


def test_scipy_is_bounded_on_the_stiffening_mode_system():
    """Self-consistent cosine modes at eta = 0.3 stiffen as the norms shrink; an unbounded SciPy
    run took minutes. With max_steps both backends stop at the budget, say max_steps, and say
    why; the SciPy run is bounded by the budget."""
    modes = derive(ModelSpec("cosine", norms="self-consistent", moments="leading")).modes(10)
    p = np.linspace(0.2, 1, 10)
    y0 = modes.pack(p=p, s=p**2)
    params = {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}
    start = time.perf_counter()
    sol = integrate(modes, y0, (0, 100), params, backend="scipy", max_steps=300, retry=False)
    assert time.perf_counter() - start < 60
    assert sol.status == "max_steps" and sol.n_steps == 300 and sol.t_end < 100
    msg = str(sol.messages)
    assert "max_steps=300" in msg and "stiff" in msg and "Radau" in msg
    assert sol.valid[sol.t <= sol.t_end].all() and not sol.valid[sol.t > sol.t_end].any()
    jx = integrate(modes, y0, (0, 100), params, max_steps=300, retry=False)
    assert jx.status == "max_steps" and "stiff" in str(jx.messages) and "kvaerno5" in str(jx.messages)


# -- 6. the end of a run ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_final_is_the_event_state_when_t_eval_ends_earlier(backend):
    """x' = 1 from 0 with a condition at x = 2, t_eval = [0, 1], t_span (0, 5): the run ends at
    t = 2 with x = 2; the saved states are x(0) = 0 and x(1) = 1."""
    drift = ODESystem.from_equations({"x": "v"}, params=("v",))
    sol = integrate(drift, [0.0], (0, 5), {"v": 1.0}, t_eval=[0.0, 1.0], backend=backend,
                    events=[Condition(lambda t, y, p: y[0] - 2.0, name="x_is_2")])
    assert sol.status == "event" and sol.event == "x_is_2"
    assert abs(sol.event_t - 2.0) < 1e-9 and abs(sol.t_end - 2.0) < 1e-9
    assert abs(sol.final[0] - 2.0) < 1e-9
    np.testing.assert_allclose(sol.y[:, 0], [0.0, 1.0], atol=1e-9)
    assert sol.valid.all()
    done = integrate(drift, [0.0], (0, 5), {"v": 1.0}, t_eval=[0.0, 1.0], backend=backend, events=())
    assert done.status == "finished" and abs(done.final[0] - 5.0) < 1e-9 and done.t_end == 5.0


# -- 7. no warning floods -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_blow_up_emits_no_runtime_warnings(backend):
    params, p0 = FIRST_STEP
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = integrate(COSINE.reduce(), [[p0], [-4.0]], (0, 10), params, backend=backend)
    assert (sol.status == "blew_up").all()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught][:3]


# -- 8. repr ------------------------------------------------------------------------------------


def test_repr_is_short_and_names_every_state():
    modes = derive(ModelSpec("cosine", norms="self-consistent", moments="leading")).modes(50)
    p = np.linspace(0.2, 1, 50)
    sol = integrate(modes, modes.pack(p=p, s=p**2), (0, 0.1), {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}, n_save=3,
                    backend="scipy")
    text = repr(sol)
    assert "p_1..p_50, s_1..s_50" in text and len(text) < 200 and "array" not in text and "\n" not in text
    small = integrate(ODESystem.from_equations({"p_hat": "-p_hat", "s_total": "-s_total", "z": "0"}, params=()),
                      [1.0, 1.0, 1.0], (0, 1), {}, n_save=3, backend="scipy")
    assert "states=[p_hat, s_total, z]" in repr(small)
    many = ODESystem.from_equations({f"v{i}": f"-v{i}" for i in range(30)} | {"w": "0"}, params=())
    text = repr(integrate(many, np.ones(31), (0, 0.1), {}, n_save=2, backend="scipy"))
    assert "v0..v29, w" in text
