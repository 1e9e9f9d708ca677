"""The lane-major Runge-Kutta kernel behind integrate's explicit solvers: end states, dense
output, event times and statuses against closed forms and against diffrax's ``diffeqsolve``
(a diffrax solver object takes the per-lane diffrax path) at the same tolerances.

Which lane runs a trajectory, and how many lanes there are, must change nothing, bit for bit.
"""

import diffrax
import numpy as np
import pytest

import dynamics._batch as db
from derivations import ODESystem
from dynamics import BlowUp, Collapse, Condition, integrate
from dynamics._numeric import NumericSystem

LOGISTIC = ODESystem.from_equations({"x": "r*x*(1 - x/K)"}, params=("r", "K"))
OSCILLATOR = ODESystem.from_equations({"x": "v", "v": "-w**2*x"}, params=("w",))
TIGHT = {"rtol": 1e-10, "atol": 1e-12}
DIFFRAX = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8}


def logistic(x0, r, K, t):
    """x(t) = K / (1 + (K/x0 - 1) exp(-r t))."""
    return K / (1 + (K / x0 - 1) * np.exp(-r * t))


@pytest.mark.parametrize("B", [1, 3, 37, 600])
def test_end_states_on_the_closed_form_for_any_lane_count(B):
    """Per-trajectory r spread over 0.05..5 (step counts spread about 10x); batch sizes below,
    at and above the lane count, 4 lanes and the default: the same bits, on the closed form."""
    rng = np.random.default_rng(B)
    x0, r = rng.uniform(0.05, 2.0, (B, 1)), rng.uniform(0.05, 5.0, B)
    kw = dict(t_eval=[4.0], events=(), progress=False, **TIGHT)
    a = integrate(LOGISTIC, x0, (0, 4), {"r": r, "K": 1.5}, **kw)
    b = integrate(LOGISTIC, x0, (0, 4), {"r": r, "K": 1.5}, chunk_size=4, **kw)
    assert np.array_equal(a.final, b.final) and np.array_equal(a.n_steps, b.n_steps)
    assert set(a.status) == {"finished"} and a.valid.all()
    assert np.max(np.abs(a.final[:, 0] - logistic(x0[:, 0], r, 1.5, 4.0))) < 1e-8


@pytest.mark.parametrize("solver", ["tsit5", "dopri5", "dopri8"])
def test_dense_output_agrees_with_diffeqsolve_and_the_closed_form(solver):
    """Harmonic oscillators (w in 0.5..3) saved at 41 times: the saved states come from the
    method's dense output between steps, within 1e-7 of the closed form at rtol 1e-9, and within
    the tolerance of diffrax's own run of the same method; step counts agree to one or two (a
    step accepted or rejected at the margin differs with rounding)."""
    w = np.linspace(0.5, 3.0, 24)
    t = np.linspace(0, 6, 41)
    kw = dict(t_eval=t, events=(), progress=False, rtol=1e-9, atol=1e-11)
    lanes = integrate(OSCILLATOR, [1.0, 0.0], (0, 6), {"w": w}, solver=solver, **kw)
    plain = integrate(OSCILLATOR, [1.0, 0.0], (0, 6), {"w": w}, solver=DIFFRAX[solver](), **kw)
    exact = np.cos(w[:, None] * t[None, :])
    assert lanes.valid.all() and set(lanes.status) == {"finished"}
    assert np.max(np.abs(lanes.y[..., 0] - exact)) < 1e-7
    assert np.max(np.abs(lanes.y - plain.y)) < 1e-7
    assert np.max(np.abs(lanes.n_steps - plain.n_steps)) <= 2
    # the end state is the last step's, not an interpolation
    assert np.array_equal(lanes.y[:, -1], lanes.final)


def test_event_times_on_the_closed_forms_and_as_diffeqsolve():
    """Three events located on the dense output: a Collapse of x' = -k x at ln(x0/tol)/k, a
    blow-up of x' = x^2 at 1/x0 - 1/bound, and a Condition x = 1 of the logistic at
    ln((K/x0 - 1)/(K - 1)) / r; the same times, statuses and saved states as diffeqsolve."""
    decay = ODESystem.from_equations({"x": "-k*x"}, params=("k",), collapse=("x",))
    k = np.array([0.5, 2.0, 3.0])
    t = np.linspace(0, 4, 9)
    for solver in ("tsit5", diffrax.Tsit5()):
        sol = integrate(decay, [[1.0]] * 3, (0, 4), {"k": k}, t_eval=t, events=(Collapse(1e-3),), progress=False,
                        solver=solver, **TIGHT)
        assert list(sol.status) == ["finished", "collapsed", "collapsed"]
        assert np.allclose(sol.event_t[1:], np.log(1e3) / k[1:], rtol=1e-9)
        assert np.array_equal(sol.valid, t[None, :] <= sol.t_end[:, None])
        assert np.max(np.abs(np.where(sol.valid, sol.y[..., 0] - np.exp(-k[:, None] * t), 0))) < 1e-9
    square = ODESystem.from_equations({"x": "x**2"})
    x0 = np.array([[0.5], [1.0], [2.0]])
    blow = integrate(square, x0, (0, 3.0), {}, t_eval=[3.0], events=(BlowUp(1e6),), retry=False, progress=False)
    plain = integrate(square, x0, (0, 3.0), {}, t_eval=[3.0], events=(BlowUp(1e6),), retry=False, progress=False,
                      solver=diffrax.Tsit5())
    assert set(blow.status) == {"blew_up"}
    # at rtol 1e-8 the state near x = 1e6 = 1/(t* - t) is known to ~1e-2 relative: t to ~1e-8
    assert np.allclose(blow.event_t, 1 / x0[:, 0] - 1e-6, rtol=1e-7)
    assert np.allclose(blow.event_t, plain.event_t, rtol=1e-8)
    r = np.array([0.5, 1.0, 2.0])
    cross = integrate(LOGISTIC, [[0.2]] * 3, (0, 10), {"r": r, "K": 1.5}, n_save=11,
                      events=(Condition(lambda t, y, p: y[0] - 1.0, name="one"),), progress=False, **TIGHT)
    plain = integrate(LOGISTIC, [[0.2]] * 3, (0, 10), {"r": r, "K": 1.5}, n_save=11, solver=diffrax.Tsit5(),
                      events=(Condition(lambda t, y, p: y[0] - 1.0, name="one"),), progress=False, **TIGHT)
    assert set(cross.event) == {"one"} and set(cross.status) == {"event"}
    assert np.allclose(cross.event_t, np.log((1.5 / 0.2 - 1) / (1.5 - 1)) / r, rtol=1e-9)
    assert np.allclose(cross.event_t, plain.event_t, rtol=1e-10)
    assert np.array_equal(cross.valid, plain.valid)
    assert np.allclose(cross.final, 1.0, atol=1e-9)


def test_statuses_as_diffeqsolve():
    """x' = x^2 from x0 blows up at t* = 1/x0: lanes with t* < t1 stop where the step size
    collapses ("failed" without a BlowUp event) at t*, the others finish on x0 / (1 - x0 t1);
    a step budget too small for the slow lanes gives "max_steps" for exactly those; an event
    already true at t0 ends the run there. The same statuses from diffeqsolve."""
    sq = ODESystem.from_equations({"x": "x**2"})
    x0 = np.array([[0.1], [0.5], [1.0], [2.0], [0.25]])
    blows = x0[:, 0] > 1 / 3.0
    for te in ([3.0], np.linspace(0, 3, 4)):
        sol = integrate(sq, x0, (0, 3.0), {}, t_eval=te, events=(), retry=False, progress=False)
        plain = integrate(sq, x0, (0, 3.0), {}, t_eval=te, events=(), retry=False, progress=False,
                          solver=diffrax.Tsit5())
        assert list(sol.status) == list(plain.status)
        assert list(sol.status == "finished") == list(~blows)
        assert np.all(sol.status[blows] == "failed")
        assert np.allclose(sol.t_end[blows], 1 / x0[blows, 0], rtol=1e-6)
        assert np.allclose(sol.final[~blows, 0], x0[~blows, 0] / (1 - 3.0 * x0[~blows, 0]), rtol=1e-7)
    few = integrate(sq, x0[~blows], (0, 3.0), {}, t_eval=[3.0], events=(), retry=False, max_steps=3,
                    progress=False)
    assert set(few.status) == {"max_steps"} and set(few.n_steps) <= {0, 1, 2, 3}
    at_start = integrate(sq, [[0.5], [2e6]], (0, 1.0), {}, events=(BlowUp(1e6),), progress=False)
    assert list(at_start.status) == ["finished", "blew_up"] and at_start.t_end[1] == 0.0
    assert at_start.valid[1, 0] and not at_start.valid[1, 1:].any()


def test_per_mode_parameters():
    """A K-mode system with a per-mode parameter (a data spectrum) through the kernel equals
    diffeqsolve to the tolerance."""
    from derivations import ModelSpec, derive

    modes = derive(ModelSpec("euclidean", data="spectrum")).modes(3)
    lam = np.array([1.5, 0.8, 0.2])
    y0 = np.tile(modes.pack(p=np.full(3, 0.5), s=np.full(3, 0.3)), (5, 1))
    params = {"sigma2": 0.2, "eta": np.linspace(0.01, 0.2, 5), "alpha_p": 1.0, "lambda": lam}
    kw = dict(events=(), progress=False, n_save=5)
    lanes = integrate(modes, y0, (0, 5.0), params, **kw)
    plain = integrate(modes, y0, (0, 5.0), params, solver=diffrax.Tsit5(), **kw)
    assert np.max(np.abs(lanes.y - plain.y)) < 1e-7 and set(lanes.status) == {"finished"}


def test_varied_calls_share_one_compiled_kernel():
    """t0, t1, tolerances, saved times (11 and 13: one bucket of 16), step budgets and batch
    sizes in one bucket: one jitted kernel, one compiled executable."""
    decay = ODESystem.from_equations({"x": "-c*x + d"}, params=("c", "d"))
    runs = [(5, 2.0, 1e-8, 0.0, 11, 1000), (7, 3.0, 1e-9, 0.5, 13, 5000), (8, 1.0, 1e-6, 0.0, 11, 100_000)]
    for n, t1, rtol, t0, n_save, max_steps in runs:
        sol = integrate(decay, np.ones((n, 1)), (t0, t1), {"c": 2.0, "d": 3.0}, n_save=n_save, rtol=rtol,
                        atol=rtol * 1e-2, max_steps=max_steps, events=(), progress=False)
        exact = 1.5 + (1 - 1.5) * np.exp(-2.0 * (sol.t - t0))
        assert np.max(np.abs(sol.y[..., 0] - exact)) < 100 * rtol
    lanes = db.lane_plan(8, 1, 16, 7, db.local_devices(), None)[0]
    assert db._compiled_lanes(NumericSystem.of(decay), "tsit5", (), lanes, False)._cache_size() == 1


def test_lane_plan_fits_the_shape():
    """Small systems run in cache-sized power-of-two lane blocks; one large system is never
    padded (one lane for one trajectory); saved output per call stays below CHUNK_BYTES."""
    cpu = db.local_devices()
    assert db.lane_plan(1, 2000, 201, 7, cpu, None)[:2] == (1, 1)
    lanes, rows, _ = db.lane_plan(64, 2000, 201, 7, cpu, None)
    assert rows * 2000 * 201 * 8 <= db.CHUNK_BYTES or rows == lanes
    lanes, rows, n_blocks = db.lane_plan(10**5, 3, 1, 7, cpu, None)
    assert lanes & (lanes - 1) == 0 and lanes * 3 * 8 * 13 <= db.CACHE_BYTES and rows * n_blocks >= 10**5
    assert db.lane_plan(3, 3, 1, 7, cpu, None)[0] == db.MIN_BUCKET


def test_fixed_step_is_diffrax_constant_step_and_fifth_order():
    """dt fixes the step: the harmonic oscillator with Tsit5 at dt = 0.05 takes 120 steps to
    t = 6, as diffeqsolve with ConstantStepSize does (the same values to rounding), and halving
    dt divides the error against cos(w t) by about 2^5 (a fifth-order method)."""
    import diffrax
    import jax
    import jax.numpy as jnp

    w = np.array([1.0, 2.0])
    errors = []
    for dt in (0.05, 0.025):
        sol = integrate(OSCILLATOR, [1.0, 0.0], (0, 6), {"w": w}, t_eval=[6.0], events=(), dt=dt, progress=False)
        assert set(sol.n_steps) == {round(6 / dt)} and set(sol.status) == {"finished"}
        errors.append(np.max(np.abs(sol.final[:, 0] - np.cos(6 * w))))
    f = OSCILLATOR.to_jax(checked=False)
    plain = jax.vmap(lambda ww: diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: f(t, y, {"w": a})), diffrax.Tsit5(), 0.0, 6.0, 0.05, jnp.array([1.0, 0.0]),
        ww, stepsize_controller=diffrax.ConstantStepSize()).ys[-1])(jnp.asarray(w))
    coarse = integrate(OSCILLATOR, [1.0, 0.0], (0, 6), {"w": w}, t_eval=[6.0], events=(), dt=0.05, progress=False)
    assert np.max(np.abs(coarse.final - np.asarray(plain))) < 1e-13
    assert 20 < errors[0] / errors[1] < 45


@pytest.mark.parametrize("change, exc, match", [
    (dict(dt=0.0), ValueError, r"dt must be a fixed step in \(0, t1 - t0\]"),
    (dict(dt=5.0), ValueError, r"dt must be a fixed step"),
    (dict(dt="0.1"), TypeError, "dt"),
    (dict(dt=0.1, solver="kvaerno5"), ValueError, "dt .a fixed step. runs on the jax backend"),
    (dict(dt=0.1, backend="scipy"), ValueError, "dt .a fixed step. runs on the jax backend"),
])
def test_bad_fixed_step(change, exc, match):
    with pytest.raises(exc, match=match):
        integrate(LOGISTIC, [0.5], (0, 1), {"r": 1.0, "K": 1.0}, progress=False, **change)


def test_a_large_right_hand_side_loops_over_the_stages():
    """The exact flow's quadrature is a right-hand side of several hundred operations: the
    kernel calls it from a loop over the stages (one compiled copy) and agrees with diffeqsolve
    to the tolerance, saved times and a collapse event included."""
    from derivations import ModelSpec, derive
    from dynamics._lanes import LOOPED_RHS_OPS

    exact = derive(ModelSpec("cosine", "simsiam", norms="exact")).modes(3)
    assert NumericSystem.of(exact).rhs_ops >= LOOPED_RHS_OPS
    y0 = exact.pack(p=np.array([0.9, 0.5, 0.05]), s=np.array([0.8, 0.3, 0.01]))
    params = {"sigma2": 0.2, "eta": np.array([0.05, 0.4]), "alpha_p": 1.0}
    kw = dict(n_save=7, progress=False, rtol=1e-7, atol=1e-9)
    lanes = integrate(exact, y0, (0, 3.0), params, **kw)
    plain = integrate(exact, y0, (0, 3.0), params, solver=diffrax.Tsit5(), **kw)
    assert list(lanes.status) == list(plain.status)
    assert np.array_equal(lanes.valid, plain.valid)
    assert np.max(np.abs(np.where(lanes.valid[..., None], lanes.y - plain.y, 0))) < 1e-6
