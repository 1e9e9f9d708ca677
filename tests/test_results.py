"""Results are values: immutable (read-only arrays, no dicts), equal and hashable by value."""

import dataclasses

import numpy as np
import pytest

import dynamics
from derivations import FrozenMap, ModelSpec, ODESystem, derive
from dynamics import equilibria, integrate, iterate, roots_batch

DECAY = ODESystem.from_equations({"x": "-k*x", "y": "x - y"}, params=("k",))
EUCLID = derive(ModelSpec("euclidean", "simsiam"))
PARAMS = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}


def _arrays(obj):
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if isinstance(getattr(obj, f.name), np.ndarray)}


def _check_value(a, b, other):
    """a and b computed twice from the same input, other from a different one."""
    for name, arr in _arrays(a).items():
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError):
            arr.flat[0] = arr.flat[0]
    assert a == b and not (a != b) and hash(a) == hash(b)
    assert a != other
    assert len({a, b, other}) == 2


def test_solution_is_a_read_only_value():
    y0 = np.array([[1.0, 0.0], [2.0, 0.5]])
    t = np.linspace(0.0, 1.0, 5)
    a = integrate(DECAY, y0, (0.0, 1.0), {"k": 1.0}, t_eval=t, progress=False, backend="scipy")
    b = integrate(DECAY, y0, (0.0, 1.0), {"k": 1.0}, t_eval=t, progress=False, backend="scipy")
    c = integrate(DECAY, y0, (0.0, 1.0), {"k": 2.0}, t_eval=t, progress=False, backend="scipy")
    assert {"t", "y", "valid", "status", "y_end"} <= set(_arrays(a))
    np.testing.assert_allclose(a.y[0, -1, 0], np.exp(-1.0), rtol=1e-6)  # x = e^{-t}
    _check_value(a, b, c)
    assert isinstance(a.info, FrozenMap)
    with pytest.raises(TypeError):
        a.info["solver"] = "x"


def test_iteration_is_a_read_only_value():
    step = EUCLID.discrete()
    y0 = np.array([0.5, 0.25])
    a = iterate(step, y0, 4, {**PARAMS, "lr": 0.1})
    b = iterate(step, y0, 4, {**PARAMS, "lr": 0.1})
    c = iterate(step, y0, 4, {**PARAMS, "lr": 0.05})
    assert {"steps", "t", "y", "valid", "status", "end_step"} <= set(_arrays(a))
    _check_value(a, b, c)


def test_equilibria_are_hashable_values():
    a, b = equilibria(EUCLID, PARAMS), equilibria(EUCLID, PARAMS)
    c = equilibria(EUCLID, {**PARAMS, "eta": 0.1})
    assert isinstance(a[0].point, FrozenMap)
    assert a[0].point == {"p": 0.0, "s": 0.0}
    _check_value(a[1], b[1], c[1])
    _check_value(a[1].classification, b[1].classification, c[1].classification)
    _check_value(a, b, c)
    assert {e for e in a} == {e for e in b}


def test_batched_results_are_values():
    eta = np.linspace(0.0, 0.3, 7)
    a = roots_batch(EUCLID, {**PARAMS, "eta": eta}, progress=False)
    b = roots_batch(EUCLID, {**PARAMS, "eta": eta}, progress=False)
    c = roots_batch(EUCLID, {**PARAMS, "eta": eta + 0.01}, progress=False)
    _check_value(a, b, c)


def test_every_result_class_compares_by_value():
    """Every dataclass the package exports as a result derives from Value (equality and hash by
    value, arrays frozen); none keeps the dataclass-generated __eq__ (which raises on arrays)."""
    from dynamics._value import Value

    results = [getattr(dynamics, n) for n in dynamics.__all__
               if isinstance(getattr(dynamics, n), type) and dataclasses.is_dataclass(getattr(dynamics, n))]
    events = {dynamics.Collapse, dynamics.BlowUp, dynamics.Steady, dynamics.LeaveBox, dynamics.Condition,
              dynamics.EventContext}
    results = [r for r in results if r not in events]
    assert len(results) >= 20
    missing = [r.__name__ for r in results if not issubclass(r, Value)]
    assert missing == []
    assert all(r.__eq__ is Value.__eq__ and r.__hash__ is Value.__hash__ for r in results)
