"""The direction flow of a scale-invariant system (``direction_flow``), and the analyses of
systems served numerically that it relies on (Newton with snapping, classification on a
constraint's tangent space, continuation). References: closed forms (the angle system's
theta' = -sin theta, textbook normal forms), long integrations of the full exact flow, and the
tangential component of the base flow differenced by hand."""

import numpy as np
import pytest

from derivations import DirectionSystem, DynamicalSystem, ModelSpec, ODESystem, derive, direction_flow
from dynamics import basins, bifurcation, classify, equilibria, integrate, scale_free_equilibria

SIMSIAM = {"sigma2": 0.2, "alpha_p": 1.0}


def _angle_system():
    """x' = y^2/r^3 - eta x, y' = -x y/r^3 - eta y: the gradient flow of L = -x/r with weight
    decay; on the unit circle the direction obeys theta' = -sin(theta)."""
    return ODESystem.from_equations(
        {"x": "y**2/(x**2 + y**2)**(3/2) - eta*x", "y": "-x*y/(x**2 + y**2)**(3/2) - eta*y"},
        params=("eta",), scaling={"x": 1, "y": 1}, weight_decay="eta", name="angle")


def _exact(K, **spec):
    return derive(ModelSpec("cosine", norms="exact", **spec)).modes(K)


def test_the_direction_of_the_angle_system_is_theta_dot_minus_sin_theta():
    d = direction_flow(_angle_system())
    assert isinstance(d, DirectionSystem) and d.param_names == () and d.state_names == ("x", "y")
    # on the circle g is tangent with speed -sin(theta)
    theta = np.linspace(-3, 3, 13)
    u = np.stack([np.cos(theta), np.sin(theta)], -1)
    g = d.to_numpy()(0.0, u, {})
    np.testing.assert_allclose(-g[:, 0] * np.sin(theta) + g[:, 1] * np.cos(theta), -np.sin(theta), atol=1e-12)
    np.testing.assert_allclose(np.sum(g * u, -1), 0.0, atol=1e-12)
    # off the circle the unit sphere attracts at unit rate: dN/dtau = N (1 - N)
    g2 = d.to_numpy()(0.0, 2 * u, {})
    np.testing.assert_allclose(np.sum(2 * g2 * 2 * u, -1), 4 * (1 - 4), rtol=1e-12)
    eqs = equilibria(d, {}, n_starts=32)
    assert eqs.complete is False and "quasi-random" in eqs.method
    by_point = {tuple(np.round(e.x, 9) + 0.0): e for e in eqs}
    assert set(by_point) == {(1.0, 0.0), (-1.0, 0.0)}
    # classified on the circle: eigenvalue -cos(theta), the ray (normal) left out
    np.testing.assert_allclose(by_point[(1.0, 0.0)].eigenvalues, [-1.0], atol=1e-9)
    np.testing.assert_allclose(by_point[(-1.0, 0.0)].eigenvalues, [1.0], atol=1e-9)
    assert by_point[(1.0, 0.0)].kind == "stable node" and by_point[(-1.0, 0.0)].kind == "unstable node"
    assert "tangent space" in by_point[(1.0, 0.0)].reason


def test_the_time_change_maps_the_full_flow_onto_the_direction_flow():
    """tau = (e^(2 eta t) - 1) / (2 eta rho0^2): the full flow's direction at t is the direction
    flow's state at tau, and tan(theta/2) = tan(theta0/2) e^(-tau) in closed form."""
    system, eta = _angle_system(), 0.3
    d = direction_flow(system)
    y0 = np.array([1.2, 1.6])  # rho0 = 2
    t = np.linspace(0, 3, 7)
    full = integrate(system, y0, (0, 3), {"eta": eta}, t_eval=t)
    u_full, rho = d.split(full.y)
    np.testing.assert_allclose(rho, 2 * np.exp(-eta * t), rtol=1e-8)
    tau = (np.exp(2 * eta * t) - 1) / (2 * eta * 4)
    own = integrate(d, y0 / 2, (0, tau[-1]), {}, t_eval=tau)
    np.testing.assert_allclose(own.y, u_full, atol=1e-7)
    theta0 = np.arctan2(1.6, 1.2)
    np.testing.assert_allclose(np.arctan2(own.y[:, 1], own.y[:, 0]), 2 * np.arctan(np.tan(theta0 / 2) * np.exp(-tau)),
                               atol=1e-7)


@pytest.mark.parametrize("K", [2, 3])
def test_exact_direction_equilibria_are_where_long_integrations_of_the_full_flow_end(K):
    """The stable direction of the exact flow (isotropic for isotropic data) is where the full
    flow with weight decay eta = 0.3 ends from a spread start: by t = 12 the direction time is
    tau ~ (e^7.2 - 1) / (0.6 rho0^2) > 300 rate units."""
    modes = _exact(K)
    d = direction_flow(modes)
    eqs = scale_free_equilibria(modes, {**SIMSIAM, "eta": 0.3}, n_starts=8)
    stable = eqs.stable
    assert len(stable) == 1
    np.testing.assert_allclose(stable[0].x, np.full(K, 1 / np.sqrt(K)), atol=1e-9)
    p0 = np.linspace(0.3, 1.0, K)
    run = integrate(modes, modes.pack(p=p0, s=p0**2), (0, 12.0), {**SIMSIAM, "eta": 0.3}, t_eval=[12.0])
    u, rho = d.split(run.y[-1])
    np.testing.assert_allclose(u, stable[0].x, atol=1e-6)
    # ||Psi|| e^(eta t) is conserved (to the integrator's tolerance)
    np.testing.assert_allclose(rho, np.linalg.norm(p0) * np.exp(-0.3 * 12.0), rtol=1e-4)
    # every other direction found is a collapsed-mode point (some p_j exactly 0) or the stable one
    # with some signs flipped (p_j -> -p_j is a symmetry), and none is stable
    for e in eqs:
        if e is not stable[0]:
            assert np.any(e.x == 0.0) or np.allclose(np.abs(e.x), stable[0].x, atol=1e-9)
            assert e.stable is not True


def test_exact_direction_classification_against_the_tangential_flow_by_hand():
    """K = 2 on the circle p = (cos th, sin th): the direction flow's tangential rate is that of
    the base flow at eta = 0 (the base conserves ||p||), so its derivative in th at the
    isotropic point (differenced by hand from the base system) is the one eigenvalue."""
    modes = _exact(2, data="spectrum")
    params = {**SIMSIAM, "lambda": np.array([1.0, 0.3])}
    d = direction_flow(modes)
    eqs = equilibria(d, params, n_starts=12)
    inner = [e for e in eqs if np.all(e.x > 0.1)]
    assert len(inner) >= 1
    e = inner[0]
    th0 = np.arctan2(e.x[1], e.x[0])
    f = modes.to_numpy()

    def rate(th):
        p = np.array([np.cos(th), np.sin(th)])
        dp = f(0.0, modes.pack(p=p, s=p**2), {**params, "eta": 0.0})[:2]
        return -np.sin(th) * dp[0] + np.cos(th) * dp[1]

    assert abs(rate(th0)) < 1e-10
    h = 1e-5
    np.testing.assert_allclose(e.eigenvalues.real, [(rate(th0 + h) - rate(th0 - h)) / (2 * h)], rtol=1e-6)
    assert e.kind == "stable node"
    # a collapsed mode: zero eigenvalue, and the flow pushes p_2 up on both sides (p_2^1.7-like,
    # not smooth): semi-stable, never "stable node" or "unstable node"
    corner = [e for e in eqs if np.allclose(np.abs(e.x), [1.0, 0.0])]
    assert corner and all(c.kind == "semi-stable" and c.stable is False for c in corner)
    np.testing.assert_allclose(corner[0].eigenvalues, [0.0], atol=1e-8)
    assert rate(1e-3) > 0 and rate(-1e-3) > 0


def test_ema_direction_keeps_the_target_state_the_rate_and_the_weight_decay():
    """With an EMA target tau' = beta (1 - tau) + eta tau - tau (ds/dt)_0 / (2 s): the weight
    decay reaches tau other than through the scaling generator, so eta stays a parameter (at unit
    scale, like beta). At the isotropic direction (ds/dt)_0 = 0, so tau* = beta / (beta - eta)."""
    modes = _exact(2, target="ema")
    d = direction_flow(modes)
    assert d.group_names == ("p", "tau") and d.keeps_weight_decay
    assert d.param_names == ("sigma2", "eta", "alpha_p", "beta")
    for beta, eta in ((0.05, 0.0), (2.0, 0.0), (2.0, 0.5)):
        tau = beta / (beta - eta)
        iso = [1 / np.sqrt(2), 1 / np.sqrt(2), tau, tau]
        params = {**SIMSIAM, "beta": beta, "eta": eta}
        np.testing.assert_allclose(d.to_numpy()(0.0, np.array(iso), params), 0.0, atol=1e-7)
        c = classify(d, iso, params)
        assert c.stable is True and len(c.eigenvalues) == 3  # 1 on the circle + 2 target states


def test_continuation_of_the_direction_flow_in_the_noise():
    """Data spectrum (1, 0.3): the stable direction turns towards the strong mode as the view
    noise grows and never changes type; the collapsed-mode branches stay semi-stable."""
    d = direction_flow(_exact(2, data="spectrum"))
    b = bifurcation(d, ("sigma2", np.linspace(0.05, 3.0, 4)), {"alpha_p": 1.0, "lambda": np.array([1.0, 0.3])})
    assert b.points == ()
    stable = [br for br in b.branches if br.stable.all()]
    assert len(stable) == 1
    share = np.abs(stable[0].x[:, 1]) / np.linalg.norm(stable[0].x, axis=1)
    assert np.all(np.diff(share) < 0) and share[0] > 0.6 and share[-1] < 0.5


class _Numeric(DynamicalSystem):
    """A system served numerically only, from a JAX-or-NumPy right-hand side f(xp, y, r)."""

    state_domain = {}
    param_domain = {}
    param_names = ("r",)

    def __init__(self, name, states, rhs):
        self._name, self._states, self._rhs = name, states, rhs

    name = property(lambda self: self._name)
    state_layout = property(lambda self: tuple((s, ()) for s in self._states))

    def to_jax(self, checked=True):
        import jax.numpy as jnp

        return lambda t, y, p: self._rhs(jnp, jnp.asarray(y), jnp.asarray(p["r"])[..., None])

    def to_numpy(self, checked=True):
        return lambda t, y, p: self._rhs(np, np.asarray(y, dtype=float), np.asarray(p["r"], dtype=float)[..., None])


def test_continuation_locates_textbook_bifurcations_of_numerically_served_systems():
    pitchfork = _Numeric("pitchfork", ("x",), lambda xp, y, r: r * y - y**3)
    b = bifurcation(pitchfork, ("r", np.linspace(-1, 1, 9)), {})
    assert [(p.kind, round(p.value, 6)) for p in b.points] == [("pitchfork", 0.0)]
    fold = _Numeric("fold", ("x",), lambda xp, y, r: r + y**2)
    b = bifurcation(fold, ("r", np.linspace(-1, 1, 9)), {})
    assert [p.kind for p in b.points] == ["fold"] and abs(b.points[0].value) < 1e-6
    hopf = _Numeric("hopf", ("x", "y"), lambda xp, y, r: xp.stack(
        [r[..., 0] * y[..., 0] - y[..., 1] - y[..., 0] * (y[..., 0]**2 + y[..., 1]**2),
         y[..., 0] + r[..., 0] * y[..., 1] - y[..., 1] * (y[..., 0]**2 + y[..., 1]**2)], -1))
    b = bifurcation(hopf, ("r", np.linspace(-1, 1, 9)), {})
    assert [(p.kind, round(p.value, 6)) for p in b.points] == [("hopf", 0.0)]


def test_direction_flow_refuses_what_it_cannot_serve():
    with pytest.raises(ValueError, match="scaling powers and a weight decay"):
        direction_flow(derive(ModelSpec("euclidean")).modes(2))
    with pytest.raises(ValueError, match="scaling powers and a weight decay"):
        direction_flow(ODESystem.from_map({"x": "x - lr*x"}, params=("lr",), step_param="lr"))
    with pytest.raises(TypeError, match="DynamicalSystem"):
        direction_flow("cosine")
    d = direction_flow(_exact(2))
    assert direction_flow(_exact(2)) is d  # one per base system: its compiled code is reused
    with pytest.raises(ValueError, match="eta"):
        d.check_params({**SIMSIAM, "eta": 0.1})
    with pytest.raises(ValueError, match="starts"):
        equilibria(d, SIMSIAM, starts=np.ones(3))
    with pytest.raises(ValueError, match="invariant manifold"):
        bifurcation(_exact(2), ("sigma2", [0.1, 0.2]), {"alpha_p": 1.0, "eta": 0.1})
    with pytest.raises(ValueError, match="shape"):
        d.split(np.ones(3))


@pytest.mark.parametrize("spec, point", [
    (dict(), {"p": np.array([0.7, 0.3]), "s": np.array([0.49, 0.09])}),
    (dict(predictor="directpred"), {"s": np.array([0.7, 0.3])}),
])
def test_declared_scaling_holds_for_the_exact_flow(spec, point):
    """f0(lambda^w y) = lambda^(w - 2) f0(y) at eta = 0, and sum_i dN/dy_i f0_i = 0 (the norm is
    conserved): checked numerically on the flow, not read from the declaration."""
    modes = _exact(2, **spec)
    f = modes.to_numpy()
    params = {"sigma2": 0.2, "eta": 0.0, **({"alpha": 0.5} if "predictor" in spec else {"alpha_p": 1.0})}
    w = modes.expand(modes.scaling)
    y = modes.pack(**point)
    base = f(0.0, y, params)
    for lam in (0.3, 2.5):
        np.testing.assert_allclose(f(0.0, lam**w * y, params), lam ** (w - 2) * base, rtol=1e-9, atol=1e-15)
    grad_n = np.where(w == 1, 2 * y, 0.0) if "p" in point else np.ones_like(y)
    assert abs(grad_n @ base) < 1e-8 * np.abs(grad_n * base).sum()


def test_directpred_direction_has_one_stable_branch_over_alpha():
    """DirectPred (W_P = F^alpha) with data spectrum (1, 0.3): s/sum(s) has one stable interior
    direction for alpha in [0.1, 2], which moves towards the isotropic one as alpha grows; the
    collapsed corners stay exactly on the axes."""
    d = direction_flow(_exact(2, predictor="directpred", data="spectrum"))
    b = bifurcation(d, ("alpha", np.linspace(0.1, 2.0, 5)), {"sigma2": 0.2, "lambda": np.array([1.0, 0.3])})
    assert b.points == ()
    stable = [br for br in b.branches if br.stable.all()]
    assert len(stable) == 1 and np.all(np.diff(stable[0].x[:, 0]) < 0) and stable[0].x[-1, 0] > 0.5
    corners = [br for br in b.branches if not br.stable.any()]
    assert corners and all(np.all(np.sort(np.abs(br.x), axis=1)[:, 0] == 0.0) for br in corners)
    assert all(np.allclose(np.sort(np.abs(br.x), axis=1)[:, 1], 1.0, rtol=0, atol=1e-12) for br in corners)


def test_basins_of_the_direction_flow():
    """Starts with every p_j > 0 end on the stable interior direction; a start with some p_j < 0
    ends on a collapsed corner (those modes go to 0 from below: the corners attract from the
    negative side, which makes them semi-stable), not on a stable equilibrium."""
    d = direction_flow(_exact(2, data="spectrum"))
    params = {"alpha_p": 1.0, "sigma2": 0.2, "lambda": np.array([1.0, 0.3])}
    grid = {"p_1": np.array([-0.9, -0.4, 0.4, 0.9]), "p_2": np.array([-0.8, 0.3, 0.7])}
    b = basins(d, grid, params, t1=30.0, progress=False)
    assert [e.kind for e in b.attractors] == ["stable node"] and np.all(b.attractors[0].x > 0)
    positive = (grid["p_2"][:, None] > 0) & (grid["p_1"][None, :] > 0)
    assert np.all(b.attractor[positive] == 0) and np.all(b.attractor[~positive] == -1)
    np.testing.assert_allclose(b.final[positive], np.broadcast_to(b.attractors[0].x, b.final[positive].shape), atol=1e-4)
    assert np.all(np.min(np.abs(b.final[~positive]), axis=-1) < 1e-2)  # algebraic approach, |p_j|^1.7-like
