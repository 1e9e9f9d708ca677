"""The input rules every entry point shares: starts inside the state domain, non-empty batches,
no text for numbers, equation strings that name their fix, and derived systems that list only
the parameters they use; and the SciPy backend on a right-hand side singular at the end."""

import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, ODESystem, derive
from dynamics import flow, integrate

DECAY = ODESystem.from_equations({"s": "-a*s"}, params=("a",), state_domain={"s": (0, None)})


# -- 1. starts outside the state domain -------------------------------------------------------


@pytest.mark.parametrize("backend", ["jax", "scipy"])
def test_integrate_refuses_a_start_outside_the_state_domain(backend):
    with pytest.raises(ValueError, match=r"y0 has s = -0\.5, outside the system's state domain s >= 0"):
        integrate(DECAY, [-0.5], (0.0, 1.0), {"a": 1.0}, backend=backend, progress=False)
    with pytest.raises(ValueError, match=r"y0\[2\] has s = -0\.1, outside .* s >= 0"):
        integrate(DECAY, [[0.2], [0.0], [-0.1]], (0.0, 1.0), {"a": 1.0}, backend=backend, progress=False)


def test_the_boundary_of_a_closed_domain_is_a_start_and_of_an_open_one_is_not():
    sol = integrate(DECAY, [[0.0], [1.0]], (0.0, 1.0), {"a": 1.0}, backend="scipy", events=(), progress=False)
    assert list(sol.status) == ["finished", "finished"]
    np.testing.assert_allclose(sol.y_end[:, 0], [0.0, np.exp(-1.0)], rtol=1e-7, atol=1e-12)
    positive = ODESystem.from_equations({"s": "-s"}, state_domain={"s": sp.Interval.open(0, sp.oo)})
    with pytest.raises(ValueError, match=r"s = 0\.0, outside .* s > 0"):
        integrate(positive, [0.0], (0.0, 1.0), {}, backend="scipy", progress=False)


def test_a_derived_system_refuses_a_negative_eigenvalue():
    system = derive(ModelSpec("euclidean"))
    y0 = system.pack(p=0.5, s=-0.2)
    with pytest.raises(ValueError, match=r"y0 has s = -0\.2, outside the system's state domain s >= 0"):
        integrate(system, y0, (0.0, 1.0), {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0}, progress=False)


def test_flow_refuses_a_concrete_start_outside_the_domain():
    phi = flow(DECAY, 1.0)
    np.testing.assert_allclose(phi(np.array([1.0]), {"a": 1.0}), [np.exp(-1.0)], rtol=1e-7)
    with pytest.raises(ValueError, match=r"y0 has s = -1\.0, outside .* s >= 0"):
        phi(np.array([-1.0]), {"a": 1.0})


# -- 2. empty batches --------------------------------------------------------------------------


def test_an_empty_batch_is_refused_clearly():
    with pytest.raises(ValueError, match=r"y0 is an empty batch \(shape \(0, 1\)\)"):
        integrate(DECAY, np.zeros((0, 1)), (0.0, 1.0), {"a": 1.0}, progress=False)
    with pytest.raises(ValueError, match=r"the batch is empty"):
        integrate(DECAY, [1.0], (0.0, 1.0), {"a": np.zeros(0)}, progress=False)


# -- 3. text is never a number -------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(params={"a": "0.5"}), r"params\['a'\]"),
        (dict(params={"a": ["0.5", "1.0"]}), r"params\['a'\]"),
        (dict(t_span=("0", "1")), "t_span"),
        (dict(rtol="1e-6"), "rtol"),
        (dict(atol="1e-9"), "atol"),
        (dict(y0=["1.0"]), "y0"),
        (dict(t_eval=["0.5", "1"]), "t_eval"),
    ],
)
def test_integrate_refuses_text_for_every_number(change, name):
    args = dict(y0=[1.0], t_span=(0.0, 1.0), params={"a": 1.0}) | {k: v for k, v in change.items()
                                                                    if k in ("y0", "t_span", "params")}
    options = {k: v for k, v in change.items() if k not in ("y0", "t_span", "params")}
    with pytest.raises(TypeError, match=name + " must be numeric, not text"):
        integrate(DECAY, args["y0"], args["t_span"], args["params"], backend="scipy", progress=False, **options)


def test_check_params_refuses_text_and_keeps_sympy_numbers_exact():
    with pytest.raises(TypeError, match=r"params\['a'\] must be numeric, not text.*sympy\.Rational\(5, 24\)"):
        DECAY.check_params({"a": "5/24"})
    assert DECAY.check_params({"a": sp.Rational(5, 24)})["a"] == sp.Rational(5, 24)


def test_flow_refuses_text_times_and_starts():
    with pytest.raises(TypeError, match="t must be numeric"):
        flow(DECAY, ["1.0"])
    with pytest.raises(TypeError, match="t0 must be numeric"):
        flow(DECAY, 1.0, t0="0")
    with pytest.raises(TypeError, match="y0 must be numeric"):
        flow(DECAY, 1.0)(["1.0"], {"a": 1.0})


# -- 4, 5. equation strings that name their fix ----------------------------------------------------


def test_lambda_in_an_equation_string_names_the_fix():
    with pytest.raises(ValueError, match=r"lambda is a Python keyword.*params=\(\.\.\., 'lambda'\).*"
                                         r"mapping=\{'lam': 'lambda'\}"):
        ODESystem.from_equations({"s": "2*s*(lambda - s)"})


def test_a_declared_lambda_is_read_as_its_symbol():
    system = ODESystem.from_equations({"s": "2*s*(lambda - s)"}, params=("lambda",))
    lam, s = sp.Symbol("lambda"), sp.Symbol("s")
    assert system.param_names == ("lambda",)
    assert sp.expand(system.rhs[0] - 2 * s * (lam - s)) == 0
    np.testing.assert_allclose(system.to_numpy()(0.0, np.array([0.5]), {"lambda": 2.0}), [2 * 0.5 * 1.5])


def test_time_in_the_right_hand_side_is_named_non_autonomous():
    message = r"non-autonomous systems are not supported \(yet\): the right-hand side of x uses t"
    with pytest.raises(ValueError, match=message):
        ODESystem.from_equations({"x": "-t*x"})
    with pytest.raises(ValueError, match=message):
        ODESystem(("x",), (), [-sp.Symbol("t") * sp.Symbol("x")])
    clock = ODESystem.from_equations({"x": "-t*x", "t": "1"})  # t declared as a state: autonomous
    assert clock.state_names == ("x", "t")


# -- 6. a right-hand side singular where the solution ends -------------------------------------------


@pytest.mark.parametrize("backend", ["scipy", "jax"])
def test_sqrt_decay_runs_to_its_singular_end_on_both_backends(backend):
    """x' = -sqrt(x), x(0) = 1: x = (1 - t/2)^2 until t = 2, where x = 0 and the Jacobian
    -1/(2 sqrt x) is infinite. The run follows the closed form to within 1e-8 and stops at the
    singular point ("failed": the step size collapses, or a trial step overshoots into x < 0),
    not at t = 1.46 as when a stiff retry that got less far replaced it."""
    root = ODESystem.from_equations({"x": "-sqrt(x)"})
    sol = integrate(root, [1.0], (0.0, 2.5), {}, backend=backend, progress=False)
    assert sol.status == "failed" and "at t = 2 (t1 = 2.5)" in str(sol.messages)
    assert abs(float(sol.t_end) - 2.0) < 1e-5 and abs(float(sol.y_end[0])) < 1e-12
    ok = sol.valid
    assert ok.sum() >= 160  # every saved time before t = 2
    np.testing.assert_allclose(sol.y[ok, 0], (1 - sol.t[ok] / 2) ** 2, rtol=0, atol=1e-8)


@pytest.mark.parametrize("backend", ["scipy", "jax"])
def test_sqrt_decay_with_a_declared_collapse_ends_collapsed_at_the_closed_form_time(backend):
    """With x >= 0 and collapse at x = 0 declared, the Collapse event (|x| < 1e-8) fires at
    (1 - t/2)^2 = 1e-8, t = 2 (1 - 1e-4)."""
    root = ODESystem.from_equations({"x": "-sqrt(x)"}, state_domain={"x": (0, None)}, collapse=("x",))
    sol = integrate(root, [1.0], (0.0, 2.5), {}, backend=backend, progress=False)
    assert sol.status == "collapsed"
    assert abs(float(sol.event_t) - 2 * (1 - 1e-4)) < 1e-6


@pytest.mark.parametrize("solver", ["LSODA", "BDF"])
def test_scipy_implicit_methods_step_back_from_a_non_finite_trial_state(solver):
    """Near t = 2 a trial step lands in x < 0, where sqrt gives NaN: LSODA accepts it, BDF
    raises (they stopped at t = 1.48 and t = 0.93). Restarted from the last good state with a
    smaller step they follow the closed form x = (1 - t/2)^2 all the way to t1 = 2."""
    root = ODESystem.from_equations({"x": "-sqrt(x)"})
    t = np.linspace(0.0, 2.0, 21)
    sol = integrate(root, [1.0], (0.0, 2.0), {}, t_eval=t, backend="scipy", solver=solver, retry=False,
                    progress=False)
    assert sol.status == "finished"
    np.testing.assert_allclose(sol.y[:, 0], (1 - t / 2) ** 2, rtol=0, atol=1e-7)


# -- 7. derived systems list the parameters they use -------------------------------------------------


def test_one_view_frozen_norm_systems_do_not_ask_for_sigma2():
    """With one noisy view E[x1^2] = 1 and the target's noise averages out: the frozen-norm
    flow does not depend on sigma2, so it is not a parameter; self-consistent norms keep it
    (N_phi^2 = (1 + sigma2) sum tau^2 s)."""
    frozen = derive(ModelSpec("cosine", "ema", predictor="directpred", views="one"))
    assert "sigma2" not in frozen.param_names
    with pytest.raises(ValueError, match=r"unknown \['sigma2'\]"):
        frozen.check_params({"sigma2": 0.2, "eta": 0.1, "beta": 1.0, "alpha": 1.0, "N_psi": 1.0, "N_phi": 1.0,
                             "T": 1.0})
    consistent = derive(ModelSpec("cosine", "ema", predictor="directpred", views="one", norms="self-consistent"))
    assert "sigma2" in consistent.modes(3).param_names
    for system in (frozen, consistent, derive(ModelSpec("euclidean", predictor="none", views="one", data="spectrum"))):
        used = set().union(*(r.free_symbols for r in system.rhs), *(c[1].free_symbols for c in system.closures))
        assert set(system.params) <= used, system.spec.label


def test_a_data_spectrum_the_flow_does_not_use_is_no_per_mode_parameter():
    """Euclidean, no predictor, one view: the drive E[x1 x1^T] - E[x2 x1^T] cancels, s' = -2 eta s
    for every mode whatever its variance lambda."""
    system = derive(ModelSpec("euclidean", predictor="none", views="one", data="spectrum"))
    assert system.param_names == ("eta",)
    modes = system.modes(3)
    s = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(modes.to_numpy()(0.0, modes.pack(s=s), {"eta": 0.1}), -2 * 0.1 * s, rtol=1e-14)


# -- the same rules in the other entry points --------------------------------------------------


def test_bifurcation_refuses_text_sweep_values():
    from dynamics import bifurcation

    with pytest.raises(TypeError, match="sweep values must be numeric, not text"):
        bifurcation(DECAY, ("a", ["0.1", "0.5"]), {})


def test_iterate_applies_the_start_rules():
    from dynamics import iterate

    halving = ODESystem.from_map({"s": "s*r"}, params=("r",), state_domain={"s": (0, None)})
    with pytest.raises(ValueError, match=r"y0 has s = -1\.0, outside the system's state domain s >= 0"):
        iterate(halving, [-1.0], 3, {"r": 0.5})
    with pytest.raises(ValueError, match="y0 is an empty batch"):
        iterate(halving, np.zeros((0, 1)), 3, {"r": 0.5})
    with pytest.raises(TypeError, match="y0 must be numeric, not text"):
        iterate(halving, ["0.5"], 3, {"r": 0.5})


def test_basins_grid_follows_the_start_rules():
    from dynamics import basins

    plane = ODESystem.from_equations({"s": "-s", "q": "-q"}, state_domain={"s": (0, None)})
    with pytest.raises(ValueError, match=r"grid\['s'\] has values outside the state domain s >= 0"):
        basins(plane, {"s": [-1.0, 1.0], "q": [0.0, 1.0]}, {}, progress=False)
    with pytest.raises(TypeError, match=r"grid\['q'\] must be numeric, not text"):
        basins(plane, {"s": [0.0, 1.0], "q": ["0", "1"]}, {}, progress=False)


def test_phase_plane_orbits_start_inside_the_state_domain():
    from dynamics import phase_plane

    plane = ODESystem.from_equations({"s": "-s", "q": "-q"}, state_domain={"s": (0, None)})
    result = phase_plane(plane, {}, xlim=(-2.0, 2.0), ylim=(-1.0, 1.0), trajectories=12, manifolds=False, t1=1.0)
    assert all(orbit.points[0, 0] >= 0.0 for orbit in result.trajectories)
