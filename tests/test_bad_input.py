"""Bad input raises ValueError/TypeError naming the argument and what is allowed."""

import jax
import numpy as np
import pytest

from derivations import ModelSpec, derive

PARAMS = {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0}


@pytest.mark.parametrize(
    "field, value",
    [("loss", "l2"), ("target", "byol"), ("norms", "fixed"), ("moments", "full")],
)
def test_unknown_spec_values(field, value):
    with pytest.raises(ValueError, match=rf"ModelSpec\.{field}=.*{value}.*choose one of"):
        ModelSpec(**{field: value})


def test_spec_type_and_derive_arguments():
    with pytest.raises(TypeError, match="ModelSpec.loss must be a str"):
        ModelSpec(loss=1)
    with pytest.raises(TypeError, match="spec must be a derivations.ModelSpec"):
        derive("cosine")
    with pytest.raises(TypeError, match="not both"):
        derive(ModelSpec(), loss="cosine")
    assert derive(loss="cosine", target="ema") is derive(ModelSpec("cosine", "ema"))


def test_euclidean_ignores_cosine_options():
    assert ModelSpec("euclidean", norms="self-consistent", moments="leading") == ModelSpec("euclidean")


@pytest.mark.parametrize("backend", ["to_numpy", "to_jax"])
def test_params_missing_unknown_and_nonfinite(backend):
    f = getattr(derive(ModelSpec()), backend)()
    y = np.array([0.5, 0.25])
    with pytest.raises(ValueError, match=r"missing \['alpha_p'\].*Valid names"):
        f(0.0, y, {"sigma2": 0.2, "eta": 0.1})
    with pytest.raises(ValueError, match=r"unknown \['gamma'\]"):
        f(0.0, y, dict(PARAMS, gamma=1.0))
    with pytest.raises(TypeError, match="params must be a dict"):
        f(0.0, y, [0.2, 0.1, 1.0])
    with pytest.raises(ValueError, match=r"params\['eta'\] must be finite"):
        f(0.0, y, dict(PARAMS, eta=float("nan")))
    with pytest.raises(ValueError, match=r"y must have shape \(\.\.\., 2\).*\(p, s\)"):
        f(0.0, np.zeros(3), PARAMS)
    with pytest.raises(ValueError, match="y must be finite"):
        f(0.0, np.array([np.inf, 0.0]), PARAMS)
    with pytest.raises(ValueError, match=r"y must have shape"):
        f(0.0, 1.0, PARAMS)
    with pytest.raises(TypeError, match="y must be numeric"):
        f(0.0, np.array(["a", "b"]), PARAMS)


def test_names_are_still_checked_under_jit():
    f = jax.jit(derive(ModelSpec()).to_jax())
    with pytest.raises(ValueError, match="missing"):
        f(0.0, np.array([0.5, 0.25]), {"sigma2": 0.2})


def test_modes_arguments():
    system = derive(ModelSpec("cosine", norms="self-consistent"))
    with pytest.raises(ValueError, match="K must be a positive int"):
        system.modes(0)
    with pytest.raises(TypeError, match="K must be a positive int"):
        system.modes(2.5)
    with pytest.raises(ValueError, match="before reduce"):
        system.reduce().modes(3)
    modes = system.modes(3)
    with pytest.raises(ValueError, match=r"unknown \['N_psi'\]"):
        modes.to_numpy()(0.0, np.ones(6), dict(PARAMS, N_psi=1.0))
    with pytest.raises(ValueError, match="pack needs exactly the state groups"):
        modes.pack(p=np.ones(3))
    with pytest.raises(ValueError, match=r"p must have shape \(\.\.\., 3\)"):
        modes.pack(p=np.ones(4), s=np.ones(4))
    with pytest.raises(ValueError, match="K <= 64"):
        system.modes(100).to_sympy()


def test_check_params():
    system = derive(ModelSpec())
    assert set(system.check_params(PARAMS)) == {"sigma2", "eta", "alpha_p"}
    with pytest.raises(ValueError, match="missing"):
        system.check_params({})


@pytest.mark.parametrize("bound", [{"p": (0, 1)}, "1", [object()]])
def test_leave_box_bounds_of_the_wrong_kind(bound):
    from dynamics import LeaveBox

    with pytest.raises(TypeError, match=r"LeaveBox lower must be a number or a sequence of numbers"):
        LeaveBox(lower=bound)
