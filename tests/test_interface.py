"""The written system interface: systems built by hand (no derive) declare time, scaling and
shapes, and the analyses serve them from what they declare. References are closed forms."""

import numpy as np
import pytest

from derivations import DynamicalSystem, EigenmodeModel, ModelSpec, ODESystem, derive, reduce
from dynamics import equilibria, integrate, iterate, scale_free_equilibria


def _angle_system():
    """Gradient flow of the scale-invariant loss L = -x / r with weight decay eta:
    x' = y^2/r^3 - eta x, y' = -x y/r^3 - eta y. r^2 decays as exp(-2 eta t) exactly; the
    direction theta obeys theta' = -sin(theta)/r^2."""
    return ODESystem.from_equations(
        {"x": "y**2/(x**2 + y**2)**(3/2) - eta*x", "y": "-x*y/(x**2 + y**2)**(3/2) - eta*y"},
        params=("eta",), scaling={"x": 1, "y": 1}, weight_decay="eta", name="angle")


def test_declared_scaling_serves_integrate_and_scale_free_equilibria():
    system = _angle_system()
    assert system.scaling == {"x": 1, "y": 1} and system.weight_decay == "eta"
    eta, t1 = 0.3, 4.0
    sol = integrate(system, [0.6, 0.8], (0, t1), {"eta": eta}, t_eval=np.linspace(0, t1, 9))
    r2 = np.sum(sol.y**2, axis=-1) * np.exp(2 * eta * sol.t)
    np.testing.assert_allclose(r2, 1.0, rtol=1e-7)   # the scale law of a scale-invariant loss
    # theta' = -sin(theta) / r^2 with r^2 = exp(-2 eta t): tan(theta/2) = tan(theta0/2) exp(-(e^{2 eta t} - 1)/(2 eta))
    theta = np.arctan2(sol.y[..., 1], sol.y[..., 0])
    expected = 2 * np.arctan(np.tan(np.arctan2(0.8, 0.6) / 2) * np.exp(-(np.exp(2 * eta * sol.t) - 1) / (2 * eta)))
    np.testing.assert_allclose(theta, expected, atol=1e-7)
    points = scale_free_equilibria(system, {"eta": eta}, n_starts=32)
    directions = {tuple(np.round(p.x, 8) + 0.0): p for p in points}
    assert set(directions) == {(1.0, 0.0), (-1.0, 0.0)}
    # on the unit circle the direction flow is theta' = -sin(theta): eigenvalue -cos(theta)
    np.testing.assert_allclose(directions[(1.0, 0.0)].eigenvalues.real, [-1.0], atol=1e-5)
    np.testing.assert_allclose(directions[(-1.0, 0.0)].eigenvalues.real, [1.0], atol=1e-5)
    assert directions[(1.0, 0.0)].stable is True and directions[(-1.0, 0.0)].stable is False


def test_scaling_declarations_are_checked():
    with pytest.raises(ValueError, match="scaling names unknown"):
        ODESystem.from_equations({"x": "-x"}, params=("k",), scaling={"z": 1})
    with pytest.raises(ValueError, match="declare scaling"):
        ODESystem.from_equations({"x": "-k*x"}, params=("k",), weight_decay="k")
    with pytest.raises(TypeError, match="finite number"):
        ODESystem.from_equations({"x": "-x"}, scaling={"x": "one"})
    with pytest.raises(ValueError, match="scaling powers and a weight decay"):
        scale_free_equilibria(ODESystem.from_equations({"x": "-x"}), {})


def test_a_map_built_by_hand_is_iterated_with_its_step_parameter():
    """x_{n+1} = x_n - lr (x_n - 1): x_n = 1 + (x0 - 1)(1 - lr)^n, and t = n lr."""
    step = ODESystem.from_map({"x": "x - lr*(x - 1)"}, params=("lr",), step_param="lr")
    assert step.time == "discrete" and step.is_discrete and step.step_param == "lr"
    run = iterate(step, [3.0], 20, {"lr": 0.25}, record_every=5)
    np.testing.assert_allclose(run.y[..., 0], 1 + 2.0 * 0.75 ** run.steps, rtol=1e-13)
    np.testing.assert_allclose(run.t, 0.25 * run.steps)
    logistic = ODESystem.from_map({"x": "r*x*(1 - x)"}, params=("r",))
    run = iterate(logistic, [0.1], 200, {"r": 2.5})
    assert logistic.step_param is None
    np.testing.assert_allclose(run.t, run.steps.astype(float))
    np.testing.assert_allclose(run.y[-1, 0], 1 - 1 / 2.5, rtol=1e-12)
    with pytest.raises(ValueError, match="map"):
        integrate(logistic, [0.1], (0, 1), {"r": 2.5})
    with pytest.raises(ValueError, match="time 'discrete'|map"):
        iterate(ODESystem.from_equations({"x": "-x"}), [1.0], 3, {})
    with pytest.raises(ValueError, match="step_param"):
        ODESystem.from_equations({"x": "-x"}, params=("h",), step_param="h")
    with pytest.raises(ValueError, match="is a map"):
        reduce(logistic, {"x": "0"})


class _Rotor(DynamicalSystem):
    """A numeric-only system written against the interface: one state group z of shape (2,),
    z' = [[-k, w], [-w, -k]] z, so z(t) = e^{-kt} R(wt) z0."""

    name = "rotor"
    state_layout = (("z", (2,)),)
    state_domain = {}
    param_names = ("k", "w")
    param_domain = {}

    def _f(self, xp):
        def f(t, y, params):
            k, w = xp.asarray(params["k"])[..., None], xp.asarray(params["w"])[..., None]
            z1, z2 = y[..., :1], y[..., 1:]
            return xp.concatenate([-k * z1 + w * z2, -w * z1 - k * z2], axis=-1)
        return f

    def to_jax(self, checked=True):
        import jax.numpy as jnp
        return self._f(jnp)

    def to_numpy(self, checked=True):
        return self._f(np)


def test_a_numeric_system_written_against_the_interface():
    rotor = _Rotor()
    assert rotor.state_names == ("z_1", "z_2") and rotor.symbolic is None and not rotor.is_rational
    np.testing.assert_array_equal(rotor.unpack(rotor.pack(z=[[1.0, 2.0]]))["z"], [[1.0, 2.0]])
    k, w, t1 = 0.5, 2.0, 1.5
    sol = integrate(rotor, [1.0, 0.0], (0, t1), {"k": k, "w": w})
    np.testing.assert_allclose(sol.final, np.exp(-k * t1) * np.array([np.cos(w * t1), -np.sin(w * t1)]), atol=1e-8)
    eqs = equilibria(rotor, {"k": k, "w": w}, domain={"z_1": (-1, 1), "z_2": (-1, 1)})
    assert not eqs.complete and len(eqs.points) == 1
    point = eqs.points[0]
    np.testing.assert_allclose(point.x, [0.0, 0.0], atol=1e-10)
    np.testing.assert_allclose(sorted(point.classification.eigenvalues, key=lambda e: e.imag), [-k - 1j * w, -k + 1j * w], atol=1e-8)
    assert point.classification.stable is True
    with pytest.raises(ValueError, match=r"missing \['w'\]"):
        rotor.check_params({"k": 1.0})


def test_every_system_type_implements_the_interface():
    euclid = derive(ModelSpec("euclidean", "ema"))
    exact = derive(ModelSpec("cosine", norms="exact"))
    assert isinstance(euclid, EigenmodeModel) and isinstance(exact, EigenmodeModel)
    for system in (euclid, euclid.reduce(), euclid.discrete(), euclid.modes(3), exact.modes(3)):
        assert isinstance(system, DynamicalSystem)
        y = np.linspace(0.3, 0.9, system.n_states)
        assert np.shape(system.to_numpy()(0.0, y, {n: _value(n, system) for n in system.param_names})) == y.shape
    modes = euclid.modes(3)
    assert modes.state_layout == (("p", (3,)), ("s", (3,)), ("tau", (3,)))
    assert modes.collapse_indices == (0, 1, 2, 3, 4, 5) and modes.time == "continuous"
    assert euclid.discrete().modes(3).time == "discrete" and euclid.discrete().step_param == "lr"
    cosine = derive(ModelSpec("cosine")).modes(4)
    assert cosine.scaling["s"] == 2 and cosine.weight_decay == "eta" and cosine.partial_collapse == {"predictor": ("p",)}
    assert exact.modes(4).scaling == cosine.scaling and exact.modes(4).symbolic is None
    assert derive(ModelSpec("cosine")).discrete().scaling is None   # a finite step is not scale invariant
    assert exact.modes(3) == exact.modes(3) and hash(exact.modes(3)) == hash(exact.modes(3))


def _value(name, system):
    return {"lr": 0.1, "beta": 0.5}.get(name, 0.2)
