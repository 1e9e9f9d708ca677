"""Every public function follows the API conventions of docs/conventions.md: ``params`` is the
last positional argument and every option after it is keyword-only; sweeps, times, windows,
tolerances and backends have one spelling each."""

import inspect

import numpy as np
import pytest

import ncdyn
from ncdyn import ODESystem

P = inspect.Parameter
# spellings that the conventions replace: t_max/t_end -> t1, t -> t_eval, x_range/p_range -> xlim,
# bounds -> domain, (param, values) as two arguments -> a sweep (name, values)
RETIRED = {"t_max", "t_end", "x_range", "y_range", "p_range", "bounds", "window", "param_range", "values"}
# flow(system, t, *, t0) lives in the integrate module, whose signature changes separately
NOT_YET = {"flow"}


def public_functions():
    for name in ncdyn.__all__:
        obj = getattr(ncdyn, name)
        if inspect.isfunction(obj) and name not in NOT_YET:
            yield name, inspect.signature(obj)


FUNCTIONS = dict(public_functions())


def test_the_audit_sees_the_analyses():
    assert {"integrate", "iterate", "equilibria", "classify", "jacobian_at", "bifurcation", "regimes",
            "shrinking_norms", "basins", "phase_plane", "portrait", "compare", "plot_flow_1d"} <= set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(n for n, s in FUNCTIONS.items() if "params" in s.parameters))
def test_params_is_the_last_positional_argument(name):
    sig = FUNCTIONS[name]
    kinds = [(p.name, p.kind) for p in sig.parameters.values()]
    positional = [n for n, k in kinds if k in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    assert positional[-1] == "params", f"{name}{sig}: params must be the last positional argument"
    assert not any(k == P.VAR_POSITIONAL for _, k in kinds), f"{name}{sig} takes *args"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_no_retired_spelling(name):
    retired = RETIRED & set(FUNCTIONS[name].parameters)
    assert not retired, f"{name}{FUNCTIONS[name]} uses {sorted(retired)}"


@pytest.mark.parametrize("name", sorted(n for n, s in FUNCTIONS.items() if "backend" in s.parameters))
def test_backend_defaults_to_jax(name):
    assert FUNCTIONS[name].parameters["backend"].default == "jax"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_tolerances_are_rtol_atol_or_tol(name):
    # integrate's event tolerances move onto its event objects (Collapse(tol), Steady(tol))
    tols = {n for n in FUNCTIONS[name].parameters if n.endswith("tol")} - {"collapse_tol", "steady_tol"}
    assert tols <= {"rtol", "atol", "tol"}, f"{name}: {sorted(tols)}"


def test_a_sweep_is_one_pair_everywhere():
    system = ODESystem.from_equations({"x": "r*x - x**3"}, params=("r",))
    bif = ncdyn.bifurcation(system, ("r", np.linspace(-1, 1, 5)), {})
    assert [pt.kind for pt in bif.points] == ["pitchfork"] and abs(bif.points[0].value) < 1e-9
    with pytest.raises(ValueError, match="sweep must be a pair"):
        ncdyn.bifurcation(system, "r", {})
    with pytest.raises(ValueError, match="sweep names 'q'"):
        ncdyn.bifurcation(system, ("q", [0.0, 1.0]), {})
    with pytest.raises(ValueError, match="vary must be a pair"):
        ncdyn.plot_flow_1d(system, {"r": 0.5}, vary="r")
    with pytest.raises(ValueError, match="x_sweep names 'q'"):
        ncdyn.regimes(ODESystem.from_equations({"x": "a + b*x - x**3"}, params=("a", "b")),
                      ("q", [0.0]), ("b", [1.0]), {})


def test_the_retired_call_forms_are_gone():
    system = ODESystem.from_equations({"x": "r*x - x**3"}, params=("r",))
    with pytest.raises(TypeError):
        ncdyn.plot_bifurcation(system, "r", np.linspace(-1, 1, 5), {})
    with pytest.raises(TypeError, match="model must be a ModelSpec"):
        ncdyn.compare("euclidean", {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0})
    with pytest.raises(TypeError):
        ncdyn.plot_flow_1d(system, {"r": 0.5}, p_range=(-1.0, 1.0))
    assert not hasattr(ncdyn.BifurcationPoint("fold", 0.0, np.array([1.0, 2.0])), "p")


def test_classify_takes_the_point_then_params_and_a_domain_by_name():
    # x' = x^2 at 0 is semi-stable; inside x >= 0 only its attracting side (x < 0) is cut off,
    # inside x <= 0 the attracting side is the only one: stable there
    system = ODESystem.from_equations({"x": "x**2"})
    assert ncdyn.classify(system, [0.0], {}).stable is False
    assert ncdyn.classify(system, [0.0], {}, domain={"x": (None, 0.0)}).stable is True
    with pytest.raises(ValueError, match="domain names unknown state 0"):
        ncdyn.classify(system, [0.0], {}, domain={0: (None, 0.0)})
    np.testing.assert_allclose(ncdyn.jacobian_at(system, [1.5], {}), [[3.0]])
