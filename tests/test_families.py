"""Families of equilibria: a system that declares a continuous symmetry has whole group orbits
of equilibria. Classification reports the family's dimension, leaves out the zero eigenvalues
the symmetry explains and decides on the quotient; multi-start Newton reports each family once.
Every reference value is a closed form derived by hand below."""

import numpy as np
import pytest

import jax.numpy as jnp

from derivations import Constraint, DynamicalSystem, Symmetry
from dynamics import classify, equilibria

ROTATION = np.array([[0.0, -1.0], [1.0, 0.0]])


class _Numeric(DynamicalSystem):
    """A system served numerically: ``rhs(xp, y, params)`` on flat states."""

    state_domain = {}
    param_domain = {}

    def __init__(self, name, layout, params, rhs, symmetry=None, constraint=None):
        self._name, self._layout, self._params, self._rhs = name, layout, params, rhs
        self._symmetry, self._constraint = symmetry, constraint

    name = property(lambda self: self._name)
    state_layout = property(lambda self: self._layout)
    param_names = property(lambda self: self._params)
    symmetry = property(lambda self: self._symmetry)
    constraint = property(lambda self: self._constraint)

    def to_jax(self, checked=True):
        return lambda t, y, params: self._rhs(jnp, jnp.asarray(y), params)

    def to_numpy(self, checked=True):
        return lambda t, y, params: self._rhs(np, np.asarray(y, dtype=float), params)


def _rotations(y, params):
    """The generator of SO(2) acting on z in R^2: d/ds exp(s A) z at s = 0 is A z = (-z2, z1)."""
    return jnp.stack([-y[..., 1], y[..., 0]], axis=-1)[..., None, :]


def _radius2(y, params):
    return jnp.sum(y**2, axis=-1, keepdims=True)


SO2 = Symmetry(_rotations, "SO(2) rotating z", invariants=_radius2)


def _circle(sign, symmetry=SO2):
    """z' = sign z (mu - |z|^2). With r2 = |z|^2, J = sign [(mu - r2) I - 2 z z^T]: at z = 0,
    J = sign mu I (eigenvalues sign mu, twice); on the circle r2 = mu (mu > 0), J = -2 sign z z^T,
    eigenvalue 0 along the circle (the orbit tangent A z, since z^T A z = 0) and -2 sign mu
    along z: the quotient eigenvalue is -2 sign mu."""
    def rhs(xp, y, params):
        mu = xp.asarray(params["mu"])[..., None]
        return sign * y * (mu - xp.sum(y**2, axis=-1, keepdims=True))
    return _Numeric("circle" if sign > 0 else "repelling circle", (("z", (2,)),), ("mu",), rhs, symmetry)


def test_the_attracting_circle_is_a_family_of_dimension_one_and_the_origin_is_isolated():
    mu = 0.7
    system = _circle(+1)
    angle = 0.3
    on = classify(system, [np.sqrt(mu) * np.cos(angle), np.sqrt(mu) * np.sin(angle)], {"mu": mu})
    assert on.family_dimension == 1
    np.testing.assert_allclose(on.eigenvalues, [-2 * mu], atol=1e-10)
    assert on.jacobian.shape == (1, 1)
    assert (on.kind, on.stable, on.hyperbolic, on.index) == ("stable node", True, True, 0)
    assert "a family of dimension 1 (orbit of SO(2) rotating z)" in on.reason
    assert "classified on the quotient" in on.reason
    origin = classify(system, [0.0, 0.0], {"mu": mu})
    assert origin.family_dimension == 0
    np.testing.assert_allclose(origin.eigenvalues, [mu, mu], atol=1e-12)
    assert (origin.kind, origin.stable, origin.index) == ("unstable node", False, 2)


def test_newton_reports_the_circle_once_with_its_family():
    mu = 0.7
    # the origin's Newton basin is the disc |z|^2 < mu/5 (the radial step is r -> -2 r^3/(mu - 3 r^2)):
    # one start is given there
    found = equilibria(_circle(+1), {"mu": mu}, n_starts=24, starts=[[0.05, -0.02]])
    assert len(found) == 2
    origin, circle = sorted(found, key=lambda e: float(np.sum(e.x**2)))
    np.testing.assert_allclose(origin.x, [0.0, 0.0], atol=1e-12)
    assert origin.family_dimension == 0 and origin.kind == "unstable node"
    np.testing.assert_allclose(np.sum(circle.x**2), mu, rtol=1e-10)
    assert circle.family_dimension == 1 and circle.kind == "stable node" and circle.stable is True
    np.testing.assert_allclose(circle.eigenvalues, [-2 * mu], atol=1e-9)
    assert "stands for its orbit under SO(2) rotating z" in circle.note and origin.note == ""
    assert "family of dimension 1" in repr(circle)
    # mu < 0: no circle; the origin is a stable node with eigenvalues mu, mu
    found = equilibria(_circle(+1), {"mu": -0.4}, n_starts=24)   # every start converges to 0
    assert len(found) == 1 and found[0].family_dimension == 0
    np.testing.assert_allclose(found[0].x, [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(found[0].eigenvalues, [-0.4, -0.4], atol=1e-12)
    assert found[0].kind == "stable node"


def test_a_transversally_unstable_circle_is_a_finding_not_undecided():
    """z' = z (|z|^2 - mu): the circle repels with quotient eigenvalue +2 mu; the origin attracts."""
    mu = 0.5
    system = _circle(-1)
    on = classify(system, [0.0, -np.sqrt(mu)], {"mu": mu})
    assert on.family_dimension == 1
    np.testing.assert_allclose(on.eigenvalues, [2 * mu], atol=1e-10)
    assert (on.kind, on.stable, on.index) == ("unstable node", False, 1)
    origin = classify(system, [0.0, 0.0], {"mu": mu})
    np.testing.assert_allclose(origin.eigenvalues, [-mu, -mu], atol=1e-12)
    assert origin.kind == "stable node" and origin.family_dimension == 0


def test_without_a_symmetry_nothing_changes():
    """The same flow, no symmetry declared: the full Jacobian, its zero eigenvalue kept."""
    mu = 0.7
    plain = _circle(+1, symmetry=None)
    on = classify(plain, [np.sqrt(mu), 0.0], {"mu": mu})
    assert on.family_dimension == 0 and on.jacobian.shape == (2, 2)
    np.testing.assert_allclose(np.sort(on.eigenvalues.real), [-2 * mu, 0.0], atol=1e-9)
    assert on.hyperbolic is False and "family" not in on.reason
    points = equilibria(plain, {"mu": mu}, n_starts=24)
    assert all(e.family_dimension == 0 for e in points)
    assert len(points) > 2   # Newton ends at many points of the circle; nothing merges them


def test_a_symmetry_without_invariants_is_said_in_the_reason():
    system = _circle(+1, symmetry=Symmetry(_rotations, "SO(2) rotating z"))
    found = equilibria(system, {"mu": 0.7}, n_starts=24)
    assert "without invariants" in found.reason
    assert all(e.family_dimension == (1 if np.sum(e.x**2) > 0.1 else 0) for e in found)


@pytest.mark.parametrize("power, sign, kind", [(2, 1, "semi-stable"), (3, 1, "non-hyperbolic stable node"),
                                               (3, -1, "non-hyperbolic unstable node")])
def test_a_zero_eigenvalue_left_on_the_quotient_is_decided_by_the_flow_across_the_family(power, sign, kind):
    """z' = sign z (1 - |z|^2)^power: on the circle J = -2 power sign (1 - |z|^2)^(power-1) z z^T = 0,
    so the quotient eigenvalue is 0, a genuine non-hyperbolic direction. Across the circle,
    r = 1 + u: r' = sign r (1 - r^2)^power = sign (-2u)^power (1 + O(u)): 4 u^2 (power 2:
    semi-stable), -+8 u^3 (power 3: attracting for sign +1, repelling for sign -1)."""
    def rhs(xp, y, params):
        return sign * y * (1.0 - xp.sum(y**2, axis=-1, keepdims=True))**power

    cls = classify(_Numeric("flat circle", (("z", (2,)),), (), rhs, SO2), [0.6, 0.8], {})
    assert cls.family_dimension == 1 and cls.kind == kind and cls.hyperbolic is False
    np.testing.assert_allclose(cls.eigenvalues, [0.0], atol=1e-12)
    assert cls.stable is (kind == "non-hyperbolic stable node")


def _matrix_system():
    """X (2 x 2) with X' = X - X X^T X, invariant under X -> Q X R^T for Q, R in O(2):
    f(Q X R^T) = Q X R^T - Q X R^T R X^T Q^T Q X R^T = Q f(X) R^T. Generators at X: A X and X A,
    A = E_12 - E_21 (the one generator of so(2)). Invariants: the sorted singular values.

    Equilibria: with X = U S V^T, S - S^3 = 0, so every singular value is 0 or 1:
    - X = 0: a fixed point of the group (both generators vanish): isolated; J = I, an unstable
      node with eigenvalues 1, 1, 1, 1.
    - X orthogonal (X^T X = I): the orbit of I is {Q R^T} = O(2), dimension 1 (A X = X A for a
      rotation, A X = -X A for a reflection: one tangent). At X = I, f(I + E) = -(E + E^T)
      + O(E^2): J E = -(E + E^T), so the symmetric E (3 dimensions) have eigenvalue -2 and the
      antisymmetric one (the orbit tangent A) eigenvalue 0. On the quotient: -2, -2, -2, a
      stable node.
    - rank one with singular value 1, X = u v^T, |u| |v| = 1: A u v^T and u v^T A are
      independent (column spaces A u and u), a family of dimension 2 (u, v on circles, modulo
      the sign). At X = diag(1, 0) = P: J E = E - E P - P E^T P - P E; for E = [[a, b], [c, d]]
      this is [[-2a, 0], [0, d]]: eigenvalue -2 (a), 0 (b: the tangent X A = -E_12),
      0 (c: the tangent A X = E_21), +1 (d). On the quotient: -2, +1, a saddle of index 1.
    """
    def rhs(xp, y, params):
        X = y.reshape(y.shape[:-1] + (2, 2))
        Xt = xp.swapaxes(X, -1, -2)
        return (X - X @ Xt @ X).reshape(y.shape)

    A = jnp.asarray(ROTATION)

    def generators(y, params):
        X = y.reshape(y.shape[:-1] + (2, 2))
        return jnp.stack([(A @ X).reshape(y.shape), (X @ A).reshape(y.shape)], axis=-2)

    def invariants(y, params):
        return jnp.linalg.svd(y.reshape(y.shape[:-1] + (2, 2)), compute_uv=False)

    symmetry = Symmetry(generators, "O(2) x O(2) acting by X -> Q X R^T", invariants=invariants)
    return _Numeric("matrix flow", (("X", (2, 2)),), (), rhs, symmetry)


@pytest.fixture(scope="module")
def matrix_families():
    # X = 0 has a small Newton basin in the box [-2, 2]^4: one start is given near it
    return equilibria(_matrix_system(), {}, n_starts=48, seed=1, starts=[[0.1, 0.0, 0.02, -0.05]])


def test_the_matrix_flow_has_three_families(matrix_families):
    by_rank = {}
    for e in matrix_families:
        sv = np.linalg.svd(e.x.reshape(2, 2), compute_uv=False)
        by_rank.setdefault(int(np.sum(sv > 0.5)), []).append((e, sv))
    assert sorted(by_rank) == [0, 1, 2] and all(len(v) == 1 for v in by_rank.values())
    (zero, _), = by_rank[0]
    assert zero.family_dimension == 0 and zero.kind == "unstable node"
    np.testing.assert_allclose(zero.eigenvalues, [1.0] * 4, atol=1e-9)
    (rank_one, sv), = by_rank[1]
    np.testing.assert_allclose(sv, [1.0, 0.0], atol=1e-9)
    assert rank_one.family_dimension == 2
    assert (rank_one.kind, rank_one.stable, rank_one.index) == ("saddle", False, 1)
    np.testing.assert_allclose(rank_one.eigenvalues.real, [-2.0, 1.0], atol=1e-8)
    (orthogonal, sv), = by_rank[2]
    np.testing.assert_allclose(sv, [1.0, 1.0], atol=1e-9)
    assert orthogonal.family_dimension == 1
    assert (orthogonal.kind, orthogonal.stable) == ("stable node", True)
    np.testing.assert_allclose(orthogonal.eigenvalues.real, [-2.0] * 3, atol=1e-8)


def test_classify_on_the_matrix_families_at_given_points():
    system = _matrix_system()
    reflection = classify(system, [0.6, 0.8, 0.8, -0.6], {})   # det -1: the other component of O(2)
    assert reflection.family_dimension == 1 and reflection.kind == "stable node"
    np.testing.assert_allclose(reflection.eigenvalues.real, [-2.0] * 3, atol=1e-10)
    u, v = np.array([2.0, 1.0]) / np.sqrt(5), np.array([0.6, -0.8])
    saddle = classify(system, list(np.outer(2.0 * u, v / 2.0).ravel()), {})
    assert saddle.family_dimension == 2 and saddle.index == 1
    np.testing.assert_allclose(saddle.eigenvalues.real, [-2.0, 1.0], atol=1e-10)


def test_a_symmetry_on_a_constraint_set_is_classified_within_its_tangent_space():
    """y in R^3 on the unit sphere, y' = (y3 - c)(e3 - y3 y): the sphere is invariant
    (|y|^2' = 2 (y3 - c) y3 (1 - |y|^2)) and rotations about e3 are a symmetry. On the sphere
    y3' = (y3 - c)(1 - y3^2): the latitude circle y3 = c is a family of dimension 1 with
    quotient eigenvalue d/dy3 [(y3 - c)(1 - y3^2)] = 1 - c^2 > 0 (it repels); at the poles
    y = +-e3 + e (e in the tangent plane), f = -(1 -+ c) e to first order: stable nodes with
    eigenvalues -(1 - c), -(1 - c) at the north pole and -(1 + c) twice at the south pole."""
    c = 0.25

    def rhs(xp, y, params):
        e3 = xp.asarray([0.0, 0.0, 1.0])
        y3 = y[..., 2:3]
        return (y3 - c) * (e3 - y3 * y)

    def generators(y, params):
        return jnp.stack([-y[..., 1], y[..., 0], jnp.zeros_like(y[..., 0])], axis=-1)[..., None, :]

    sphere = Constraint(lambda y, params: jnp.sum(y**2, axis=-1, keepdims=True) - 1.0, "the unit sphere")
    system = _Numeric("sphere", (("y", (3,)),), (), rhs, Symmetry(generators, "rotations about e3"), sphere)
    s = np.sqrt(1 - c**2)
    circle = classify(system, [s * np.cos(1.0), s * np.sin(1.0), c], {})
    assert circle.family_dimension == 1 and circle.jacobian.shape == (1, 1)
    np.testing.assert_allclose(circle.eigenvalues, [1 - c**2], atol=1e-8)
    assert circle.stable is False and "the unit sphere" in circle.reason
    north, south = classify(system, [0.0, 0.0, 1.0], {}), classify(system, [0.0, 0.0, -1.0], {})
    assert north.family_dimension == south.family_dimension == 0
    np.testing.assert_allclose(north.eigenvalues, [-(1 - c)] * 2, atol=1e-8)
    np.testing.assert_allclose(south.eigenvalues, [-(1 + c)] * 2, atol=1e-8)
    assert north.kind == south.kind == "stable node"


def test_a_group_that_is_no_symmetry_is_caught():
    """Rotations declared for z' = (1 - z1, -z2), which they do not preserve: at its equilibrium
    (1, 0) the Jacobian -I does not annihilate the rotation tangent (0, 1), so the whole
    Jacobian is classified (eigenvalues -1, -1), with a warning and family dimension 0."""
    def rhs(xp, y, params):
        return xp.stack([1.0 - y[..., 0], -y[..., 1]], axis=-1)

    system = _Numeric("shifted sink", (("z", (2,)),), (), rhs, Symmetry(_rotations, "rotations"))
    with pytest.warns(UserWarning, match="does not annihilate"):
        cls = classify(system, [1.0, 0.0], {})
    assert cls.family_dimension == 0 and cls.jacobian.shape == (2, 2)
    np.testing.assert_allclose(cls.eigenvalues, [-1.0, -1.0], atol=1e-12)
    assert cls.kind == "stable node" and "whole Jacobian is classified" in cls.reason


def test_symmetry_declarations_are_checked():
    with pytest.raises(TypeError, match="generators must be a function"):
        Symmetry(None, "nothing")
    with pytest.raises(TypeError, match="description"):
        Symmetry(_rotations, "")
    with pytest.raises(TypeError, match="invariants must be None or a function"):
        Symmetry(_rotations, "rotations", invariants=3)
    bad = _circle(+1, symmetry=Symmetry(lambda y, p: y, "wrong shape"))
    with pytest.raises(ValueError, match="must return shape"):
        classify(bad, [0.5, 0.5], {"mu": 0.5})
