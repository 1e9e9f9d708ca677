"""integrate's end-state path with lane refill (t_eval=[t1], no events, an explicit solver, one
device): a lane whose trajectory ends takes the next one, so no lane waits for the slowest.

References are closed forms; which lane runs a trajectory must change nothing, bit for bit.
"""

import numpy as np
import pytest

import dynamics._batch as db
from derivations import ODESystem
from dynamics import integrate

LOGISTIC = ODESystem.from_equations({"x": "r*x*(1 - x/K)"}, params=("r", "K"))
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


def logistic(x0, r, K, t):
    """x(t) = K / (1 + (K/x0 - 1) exp(-r t))."""
    return K / (1 + (K / x0 - 1) * np.exp(-r * t))


@pytest.mark.parametrize("B", [1, 3, 37, 600])
def test_end_states_on_the_closed_form_for_any_lane_count(B):
    """Per-trajectory r spread over 0.05..5 (step counts spread about 10x); batch sizes below,
    at and above the lane count, chunk sizes 4 and the default: the same bits, on the closed form."""
    rng = np.random.default_rng(B)
    x0, r = rng.uniform(0.05, 2.0, (B, 1)), rng.uniform(0.05, 5.0, B)
    before = db._compiled_refill.cache_info().misses + db._compiled_refill.cache_info().hits
    a = integrate(LOGISTIC, x0, (0, 4), {"r": r, "K": 1.5}, t_eval=[4.0], events=(), progress=False, **TIGHT)
    b = integrate(LOGISTIC, x0, (0, 4), {"r": r, "K": 1.5}, t_eval=[4.0], events=(), chunk_size=4, progress=False,
                  **TIGHT)
    calls = db._compiled_refill.cache_info().misses + db._compiled_refill.cache_info().hits - before
    assert calls == 2  # both went through the refill path
    assert np.array_equal(a.final, b.final) and np.array_equal(a.n_steps, b.n_steps)
    assert set(a.status) == {"finished"} and a.valid.all()
    assert np.max(np.abs(a.final[:, 0] - logistic(x0[:, 0], r, 1.5, 4.0))) < 1e-8


def test_refill_agrees_with_the_per_lane_solver():
    """The same trajectories through the chunked diffeqsolve path (forced by saving t0 too):
    end states within the tolerance, step counts within a step or two (steps accepted or
    rejected at the margin differ with rounding)."""
    rng = np.random.default_rng(0)
    x0, r = rng.uniform(0.05, 2.0, (200, 1)), rng.uniform(0.05, 5.0, 200)
    kw = dict(events=(), progress=False, rtol=1e-8, atol=1e-10)
    end = integrate(LOGISTIC, x0, (0, 4), {"r": r, "K": 1.5}, t_eval=[4.0], **kw)
    saved = integrate(LOGISTIC, x0, (0, 4), {"r": r, "K": 1.5}, t_eval=[0.0, 4.0], **kw)
    assert np.max(np.abs(end.final - saved.final)) < 1e-7
    assert np.max(np.abs(end.n_steps - saved.n_steps)) <= 2


def test_statuses_on_the_refill_path():
    """x' = x^2 from x0 blows up at t* = 1/x0: lanes with t* < t1 stop where the step size
    collapses ("failed" without a BlowUp event) at t*, the others finish on x0 / (1 - x0 t1);
    a step budget too small for the slow lanes gives "max_steps" for exactly those."""
    sq = ODESystem.from_equations({"x": "x**2"})
    x0 = np.array([[0.1], [0.5], [1.0], [2.0], [0.25]])
    sol = integrate(sq, x0, (0, 3.0), {}, t_eval=[3.0], events=(), retry=False, progress=False)
    blows = x0[:, 0] > 1 / 3.0
    assert list(sol.status == "finished") == list(~blows)
    assert np.all(sol.status[blows] == "failed")
    assert np.allclose(sol.t_end[blows], 1 / x0[blows, 0], rtol=1e-6)
    assert np.allclose(sol.final[~blows, 0], x0[~blows, 0] / (1 - 3.0 * x0[~blows, 0]), rtol=1e-7)
    few = integrate(sq, x0[~blows], (0, 3.0), {}, t_eval=[3.0], events=(), retry=False, max_steps=3,
                    progress=False)
    assert set(few.status) == {"max_steps"}


def test_per_mode_parameters_on_the_refill_path():
    """A K-mode system with a per-mode parameter (a data spectrum) through the refill path equals
    the per-lane path to the tolerance."""
    from derivations import ModelSpec, derive

    modes = derive(ModelSpec("euclidean", data="spectrum")).modes(3)
    lam = np.array([1.5, 0.8, 0.2])
    y0 = np.tile(modes.pack(p=np.full(3, 0.5), s=np.full(3, 0.3)), (5, 1))
    params = {"sigma2": 0.2, "eta": np.linspace(0.01, 0.2, 5), "alpha_p": 1.0, "lambda": lam}
    kw = dict(events=(), progress=False)
    end = integrate(modes, y0, (0, 5.0), params, t_eval=[5.0], **kw)
    saved = integrate(modes, y0, (0, 5.0), params, t_eval=[0.0, 5.0], **kw)
    assert np.max(np.abs(end.final - saved.final)) < 1e-7 and set(end.status) == {"finished"}
