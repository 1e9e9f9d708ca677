"""The generic ODESystem: construction, parsing, immutability, restriction, freezing, coupling.

References are hand computations and closed forms; SSL systems appear only to check that
derive() supplies its facts as data."""

import numpy as np
import pytest
import sympy as sp

from derivations import FrozenMap, ModelSpec, ODESystem, couple, derive, freeze, reduce

LV = {"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}


def lotka_volterra(**options):
    return ODESystem.from_equations(LV, params=("a", "b", "c", "d"), **options)


def test_from_equations_matches_hand_built_system():
    x, y, a, b, c, d = sp.symbols("x y a b c d")
    by_hand = ODESystem((x, y), (a, b, c, d), sp.Matrix([a * x - b * x * y, -c * y + d * x * y]))
    assert lotka_volterra() == by_hand
    assert hash(lotka_volterra()) == hash(by_hand)
    assert by_hand.jacobian == sp.Matrix([[a - b * y, -b * x], [d * y, -c + d * x]])
    assert by_hand.is_polynomial and by_hand.is_rational and by_hand.order is None


def test_declared_names_shadow_sympy_names():
    # beta, gamma, E, I, S are SymPy functions or constants unless declared
    sir = ODESystem.from_equations(
        {"S": "-beta*S*I", "I": "beta*S*I - gamma*I", "E": "gamma*I"}, params=("beta", "gamma"))
    S, I, E, beta, gamma = sp.symbols("S I E beta gamma")
    assert sir.rhs == sp.Matrix([-beta * S * I, beta * S * I - gamma * I, gamma * I])
    f = sir.to_numpy()
    np.testing.assert_allclose(f(0.0, [0.9, 0.1, 0.0], {"beta": 2.0, "gamma": 0.5}), [-0.18, 0.13, 0.05])


@pytest.mark.parametrize("equations, params, needle", [
    ({"x": "a*x - gamma*x"}, ("a",), "gamma"),
    ({"x": "a*x + q"}, ("a",), "q"),
    ({"x": "foo(x)"}, (), "foo"),
    ({"x": "a*x +"}, ("a",), "does not parse"),
])
def test_from_equations_rejects_unknown_names(equations, params, needle):
    with pytest.raises(ValueError, match=needle):
        ODESystem.from_equations(equations, params=params)


@pytest.mark.parametrize("kwargs, error, needle", [
    (dict(states=("x",), params=(), rhs=[1, 2]), ValueError, "rows"),
    (dict(states=("x", "x"), params=(), rhs=[1, 2]), ValueError, "repeated"),
    (dict(states=("x",), params=("x",), rhs=[1]), ValueError, "both"),
    (dict(states=("x",), params=(), rhs=["y"]), ValueError, "neither"),
    (dict(states=(1,), params=(), rhs=[1]), TypeError, "states"),
    (dict(states=("x",), params=(), rhs=[1], state_domain={"z": (0, 1)}), ValueError, "state_domain"),
    (dict(states=("x",), params=(), rhs=[1], state_domain={"x": (1, 0)}), ValueError, "empty"),
    (dict(states=("x",), params=(), rhs=[1], collapse=("y",)), ValueError, "collapse"),
    (dict(states=("x",), params=(), rhs=[1], manifold={"y": "x"}), ValueError, "manifold"),
])
def test_construction_errors_name_the_argument(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        ODESystem(**kwargs)


def test_systems_are_immutable_and_hand_out_no_shared_state():
    lv = lotka_volterra(state_domain={"x": (0, None)})
    with pytest.raises(AttributeError):
        lv.rhs = None
    with pytest.raises(TypeError):
        lv.state_domain["y"] = (0, 1)
    lv.equations["x"] = 0  # a fresh dict: the system is unchanged
    assert lv.equations["x"] == sp.sympify("a*x - b*x*y", locals=lv.symbols)
    system = derive(ModelSpec("cosine"))
    assert isinstance(system.steps, FrozenMap)
    with pytest.raises(TypeError):
        system.steps["eigenmode_flow"] = None
    with pytest.raises(TypeError):
        system.steps["eigenmode_flow"]["p"] = 0
    assert derive(ModelSpec("cosine")).steps == system.steps


def test_domains_and_param_check():
    sys_ = ODESystem.from_equations({"x": "r*x"}, params=("r", "k"), param_domain={"k": sp.Interval.open(0, sp.oo)})
    assert sys_.check_params({"r": -2, "k": 1}) == {"r": -2.0, "k": 1.0}
    exact = sys_.check_params({"r": sp.Rational(1, 3), "k": 1})
    assert exact["r"] == sp.Rational(1, 3)
    with pytest.raises(ValueError, match="k"):
        sys_.check_params({"r": 1.0, "k": 0.0})  # open interval: 0 excluded
    with pytest.raises(ValueError, match="missing"):
        sys_.check_params({"r": 1.0})
    with pytest.raises(TypeError, match="scalar"):
        sys_.check_params({"r": np.ones(3), "k": 1.0})
    assert sys_.check_params({"r": np.ones(3), "k": 1.0}, batch=True)["r"].shape == (3,)
    with pytest.raises(ValueError, match="finite"):
        sys_.check_params({"r": np.nan, "k": 1.0})


def test_user_parameter_named_eta_is_not_held_to_ssl_domains():
    user = ODESystem.from_equations({"p_hat": "eta*p_hat"}, params=("eta",))
    assert user.check_params({"eta": -1.0}) == {"eta": -1.0}


def test_derive_supplies_the_ssl_facts_as_data():
    system = derive(ModelSpec("euclidean", "ema"))
    assert isinstance(system, ODESystem)
    assert system.collapse == ("p", "s") and system.collapse_indices == (0, 1)
    assert system.state_domain == {"s": sp.Interval(0, sp.oo)}
    assert system.param_domain["alpha_p"] == sp.Interval.open(0, sp.oo)
    p, alpha_p = sp.symbols("p alpha_p")
    assert system.manifold == {"s": p**2 / alpha_p}
    with pytest.raises(ValueError, match="alpha_p"):
        system.check_params({"sigma2": 0.2, "eta": 0.1, "alpha_p": 0.0, "beta": 0.5})


def test_reduce_checks_invariance():
    # y = x**2 is invariant for x' = -x, y' = -2y: d/dt(y - x^2) = -2y + 2x^2 = -2(y - x^2)
    sys_ = ODESystem.from_equations({"x": "-x", "y": "-2*y"})
    on = reduce(sys_, {"y": "x**2"})
    assert on.state_names == ("x",) and on.rhs == sp.Matrix([-sp.Symbol("x")])
    assert on.restricted_to == {"y": sp.Symbol("x") ** 2}
    with pytest.raises(ValueError, match="not invariant"):
        reduce(sys_, {"y": "x**3"})  # d/dt(y - x^3) = -2y + 3x^3 = x^3 on the graph
    approx = reduce(sys_, {"y": "x**3"}, check=False)
    assert approx.state_names == ("x",)


def test_reduce_refuses_a_manifold_the_extra_term_breaks():
    # the Euclidean mode plus -gamma p^3 in dp/dt no longer keeps s = p^2/alpha_p
    e = derive(ModelSpec("euclidean"))
    gamma = sp.Symbol("gamma")
    rhs = e.rhs + sp.Matrix([-gamma * sp.Symbol("p") ** 3, 0])
    modified = ODESystem(e.states, e.params + (gamma,), rhs, manifold=e.manifold)
    with pytest.raises(ValueError, match="not invariant"):
        modified.reduce()
    assert e.reduce().state_names == ("p",)  # the derived one is invariant


def test_freeze_holds_states_as_parameters():
    ema = derive(ModelSpec("euclidean", "ema"))
    frozen = freeze(ema, "tau")
    assert frozen.state_names == ("p", "s") and frozen.param_names[-1] == "tau"
    reduced = frozen.reduce()  # the manifold survives: one state with tau a parameter
    assert reduced.state_names == ("p",)
    p, tau, c, eta = sp.symbols("p tau c eta")
    cubic = p**2 * (tau - c * p) - eta * p  # Tian et al. with alpha_p = 1 on s = p^2
    expected = cubic.subs(c, 1 + sp.Symbol("sigma2")).subs(sp.Symbol("alpha_p"), 1)
    assert sp.expand(reduced.rhs[0].subs(sp.Symbol("alpha_p"), 1) - expected) == 0
    with pytest.raises(ValueError, match="unknown"):
        freeze(ema, "q")


def test_couple_any_per_mode_system():
    # K logistic modes sharing a carrying capacity: x_k' = r x_k (1 - S), S = sum_k x_k
    per_mode = ODESystem.from_equations({"x": "r*x*(1 - S)"}, params=("r", "S"))
    modes = couple(per_mode, 3, {"S": ("x", 1)})
    assert modes.param_names == ("r",)
    y = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(modes.to_numpy()(0.0, y, {"r": 2.0}), 2.0 * y * (1 - y.sum()))
    np.testing.assert_allclose(np.asarray(modes.to_jax()(0.0, y, {"r": 2.0})), 2.0 * y * (1 - y.sum()))
    explicit = modes.to_ode_system()
    assert explicit.n_states == 3 and explicit.param_names == ("r",)
    with pytest.raises(ValueError, match="not a parameter"):
        couple(per_mode, 3, {"Q": ("x", 1)})
    with pytest.raises(ValueError, match="K"):
        couple(per_mode, 0)


def test_ssl_modes_are_the_generic_coupling():
    system = derive(ModelSpec("cosine", norms="self-consistent", moments="leading"))
    modes = system.modes(4)
    rng = np.random.default_rng(1)
    y = modes.pack(p=rng.uniform(0.2, 1, 4), s=rng.uniform(0.2, 1, 4))
    prm = {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}
    explicit = modes.to_ode_system()
    f = sp.lambdify(explicit.states + explicit.params, list(explicit.rhs))
    np.testing.assert_allclose(modes.to_numpy()(0.0, y, prm), f(*y, *prm.values()), rtol=1e-12)
    assert modes.collapse_indices == tuple(range(8))


def test_reduce_refuses_a_non_invariant_graph_with_small_coefficients():
    """x' = 1e-12 y - x, y' = -y: on x = 0, d/dt x = 1e-12 y, not 0 (the graph is not
    invariant, whatever the size of the coefficient). Simplification leaves 1e-12*y, and the
    numerical check is relative to the size of the terms, so it refuses it."""
    small = ODESystem.from_equations({"x": "1e-12*y - x", "y": "-y"})
    with pytest.raises(ValueError, match="not invariant"):
        reduce(small, {"x": "0"})


def test_reduce_accepts_float_coefficients_that_cancel_up_to_rounding():
    """x' = 0.1 x, y' = 0.3 y, graph y = x^3: d/dt (y - x^3) = (0.3 - 3 * 0.1) x^3, zero in exact
    arithmetic and ~5.6e-17 x^3 in floats (0.3 - 0.30000000000000004): invariant within rounding."""
    system = ODESystem.from_equations({"x": "0.1*x", "y": "0.3*y"})
    reduced = reduce(system, {"y": "x**3"})
    assert reduced.state_names == ("x",)


def test_reduce_of_a_discrete_map_raises_value_error():
    """A discrete map declares no manifold (s = p^2/alpha_p is not invariant under a finite
    step): reduce() raises the documented ValueError."""
    with pytest.raises(ValueError, match="no invariant manifold"):
        derive(ModelSpec("euclidean", "simsiam")).discrete().reduce()


def test_frozen_maps_equal_in_any_order_hash_alike():
    """Equality of FrozenMap ignores order, so its hash must too (two equal maps in one set)."""
    from derivations import FrozenMap

    a, b = FrozenMap({"x": 1, "y": 2}), FrozenMap({"y": 2, "x": 1})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a["y"] == 2 and "x" in a and "z" not in a
