"""The direction flow of a scale-invariant system: where the scale-free state goes while weight
decay shrinks the scale.

A flow that declares ``scaling`` (powers w_i) and a ``weight_decay`` eta splits into a scale and
a direction. With the weight decay removed its right-hand side f0 is quasi-homogeneous,
f0(lambda^w y) = lambda^(w - d) f0(y) (d = 2 for the gradient flow of a loss that does not see
the scale of its weights, such as the cosine loss), and the weight decay adds -eta w_i y_i.
Measure the scale by the weighted norm

    N(y) = sum_i |y_i|^(2/w_i)   over the states with w_i > 0   (N(lambda^w y) = lambda^2 N(y)),

write y = rho^w u with rho^2 = N(y) and N(u) = 1, and change time by d tau = rho^(-d) dt. Then
the weight decay's generator drops out and the direction u obeys

    du/dtau = g(u) = f0(u) - (grad N(u) . f0(u)) / (2 N(u)) w u,

which keeps N fixed. When the weight decay enters only through its scaling generator
-eta w y and no parameter scales, its equilibria are where the scale-free state settles, for
every weight decay. The scale follows d(rho^2)/dt = rho^(2-d) grad N(u) . f0(u) - 2 eta rho^2; for a loss
whose gradient flow conserves N (the cosine loss: ||Psi||^2 and ||Phi||^2), rho^2 = rho0^2
e^(-2 eta t) exactly and tau = (e^(d eta t) - 1) / (d eta rho0^d).

``DirectionSystem`` is this flow as a system every analysis takes. Its states are the base
system's states off its invariant ``manifold`` (for K modes of a learned predictor, s_k =
p_k^2/alpha_p is eliminated and the states are p_1..p_K, and tau_1..tau_K with an EMA target),
in ambient coordinates: the flow is defined off the unit sphere N = 1 too, made attracting at
unit rate,

    du/dtau = g(u) + (1 - N(u)) / 2 w u     (so dN/dtau = N (1 - N)),

so that its equilibria are isolated points on the sphere (one per ray of the scale-invariant
flow) and Newton's method, continuation, integration and basins need nothing special. The
sphere is declared as the system's ``constraint``: classification reports the Jacobian on its
tangent space, without the normal direction (the scaling ray, eigenvalue -1 by construction).
Parameters are the base system's at unit scale: a parameter with a scaling power w_P (the
frozen norms N_psi, N_phi, T of a closure) enters as P / rho^(w_P), and a rate as rate rho^d;
as weight decay shrinks rho they drift, and the equilibria are then only quasi-static. The
weight decay itself is removed through its generator only: where an unscaled state is free
(an EMA target's tau, whose rate has +eta tau because the online weights shrink and the target
does not), eta stays a parameter and enters as eta rho^d, like the EMA rate beta. A closure
whose norms are computed from the state, with a SimSiam target, has none of these: its
direction flow is autonomous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from ._interface import Constraint, DynamicalSystem, RhsFunction
from ._system import FrozenMap

__all__ = ["DirectionSystem", "direction_flow"]


def direction_flow(system: DynamicalSystem) -> DirectionSystem:
    """The direction flow of a flow that declares ``scaling`` and ``weight_decay``.

    Parameters
    ----------
    system : DynamicalSystem
        A flow with declared scaling powers and weight decay (the K modes of a scale-invariant
        derived model, ``derive(ModelSpec("cosine", norms="exact")).modes(K)`` or a closure's,
        or a system built by hand).

    Returns
    -------
    DirectionSystem
        The flow of the scale-free state (see the module docstring of ``derivations._direction``
        and the docs' page on the direction flow).

    Raises
    ------
    TypeError
        ``system`` is not a DynamicalSystem.
    ValueError
        ``system`` is a map, declares no scaling or no weight decay, or has no scaled state off
        its manifold.
    """
    try:
        return _direction_of(system)
    except TypeError:  # an unhashable system: no memo
        return DirectionSystem(system)


@lru_cache(maxsize=64)
def _direction_of(system: DynamicalSystem) -> DirectionSystem:
    """One DirectionSystem per base system, so that its compiled functions are reused."""
    return DirectionSystem(system)


@dataclass(frozen=True, eq=False)
class DirectionSystem(DynamicalSystem):
    """The direction flow of a scale-invariant system (``direction_flow``).

    Attributes
    ----------
    base : DynamicalSystem
        The flow whose direction this is.
    powers : numpy.ndarray
        The scaling power w_i of each state (0 for unscaled states such as an EMA's tau).
    """

    base: DynamicalSystem
    powers: np.ndarray = field(init=False, repr=False)
    _free: tuple = field(init=False, repr=False)
    _free_idx: np.ndarray = field(init=False, repr=False)
    _graph: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        base = self.base
        if not isinstance(base, DynamicalSystem):
            raise TypeError(f"system must be a derivations.DynamicalSystem; got {type(base).__name__}")
        scaling, decay = base.scaling, base.weight_decay
        if base.time != "continuous" or not scaling or decay is None:
            raise ValueError(
                "the direction flow needs a flow that declares scaling powers and a weight decay (system.scaling, "
                f"system.weight_decay; a scale-invariant derived model such as the cosine loss); {base.name or 'this system'} "
                f"has time={base.time!r}, scaling={scaling}, weight_decay={decay}")
        manifold = dict(base.manifold or {})
        free = tuple((name, shape) for name, shape in base.state_layout if name not in manifold)
        powers = np.concatenate([np.full(int(np.prod(shape)), float(scaling.get(name, 0))) for name, shape in free])
        if not np.any(powers > 0):
            raise ValueError(f"the direction flow needs a scaled state off the manifold; free states "
                             f"{[n for n, _ in free]}, scaling {dict(scaling)}")
        if np.any(powers < 0):
            raise ValueError(f"the direction flow needs non-negative scaling powers of the states; got {dict(scaling)}")
        powers.setflags(write=False)
        idx = np.asarray(base.group_indices([name for name, _ in free]), dtype=int)
        idx.setflags(write=False)
        graph = tuple((name, expr) for name, expr in manifold.items())
        object.__setattr__(self, "powers", powers)
        object.__setattr__(self, "_free", free)
        object.__setattr__(self, "_free_idx", idx)
        object.__setattr__(self, "_graph", graph)

    # -- the interface ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``direction of <base name>``."""
        return f"direction of {self.base.name}" if self.base.name else "direction flow"

    @property
    def state_layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The base system's state groups off its manifold."""
        return self._free

    @property
    def state_domain(self) -> Mapping[str, sp.Interval]:
        """The base system's domains of these states."""
        dom = self.base.state_domain
        return FrozenMap({n: dom[n] for n in self.state_names if n in dom})

    @property
    def keeps_weight_decay(self) -> bool:
        """True when a free state is unscaled (w = 0, an EMA target's tau): the weight decay can
        reach it other than through the scaling generator -eta w y (tau' has +eta tau: the online
        weights shrink, the EMA target does not), so eta stays a parameter, at unit scale."""
        return bool(np.any(self.powers == 0))

    @property
    def param_names(self) -> tuple[str, ...]:
        """The base system's parameters; without the weight decay unless ``keeps_weight_decay``."""
        return tuple(n for n in self.base.param_names if n != self.base.weight_decay or self.keeps_weight_decay)

    @property
    def param_domain(self) -> Mapping[str, sp.Interval]:
        """As the base system's."""
        dom = self.base.param_domain
        return FrozenMap({n: dom[n] for n in self.param_names if n in dom})

    @property
    def param_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """As the base system's."""
        shapes = self.base.param_shapes
        return FrozenMap({n: tuple(shapes.get(n, ())) for n in self.param_names})

    def check_params(self, params: Mapping, *, batch: bool = False) -> dict:
        """The base system's check (the weight decay at 0 where it is not a parameter here).

        Parameters
        ----------
        params : mapping str -> float or array_like
            The values of ``param_names``.
        batch : bool
            Allow batch axes.

        Returns
        -------
        dict
            ``{name: value}`` in ``param_names`` order.

        Raises
        ------
        TypeError
            ``params`` is not a mapping or a value is not real.
        ValueError
            Missing or unknown names (the weight decay among them, unless ``keeps_weight_decay``),
            values outside their domain.
        """
        out = super().check_params(params, batch=batch)
        checked = self.base.check_params({self.base.weight_decay: 0.0, **out}, batch=batch)
        return {n: checked[n] for n in self.param_names}

    @property
    def collapse(self) -> tuple[str, ...]:
        """The base system's collapse groups among these states."""
        return tuple(n for n in self.base.collapse if n in self.group_names)

    @property
    def partial_collapse(self) -> Mapping[str, tuple[str, ...]]:
        """The base system's partial-collapse sets among these states."""
        sets = {k: tuple(m for m in v if m in self.group_names) for k, v in self.base.partial_collapse.items()}
        return FrozenMap({k: v for k, v in sets.items() if v})

    @property
    def constraint(self) -> Constraint:
        """The unit sphere N(u) = 1: invariant, attracting at unit rate."""
        w = self.powers

        def c(u, params):
            return _norm(u, w)[..., None] - 1.0

        return Constraint(c, "the unit sphere N(u) = 1 of the scale-free state; its normal, the scaling ray, is "
                             "the symmetry's direction and not part of the direction flow")

    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``g(tau, u, params)`` (see the module docstring), JAX.

        Parameters
        ----------
        checked : bool
            Validate concrete inputs on every call.

        Returns
        -------
        callable
            du/dtau with u's shape.
        """
        return self._function(checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """``g(tau, u, params)``, NumPy float64 (the JAX function, compiled once).

        Parameters
        ----------
        checked : bool
            Validate the inputs on every call.

        Returns
        -------
        callable
            du/dtau with u's shape.
        """
        return _direction_numpy(self, checked)

    # -- between the base system and its direction -----------------------------------------------
    def split(self, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """The direction and the scale of base-system states: ``(u, rho)`` with the free
        states y_free = rho^w u and N(u) = 1.

        Parameters
        ----------
        y : array_like
            Base-system flat states (..., base.n_states).

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            u of shape (..., n_states) and rho of shape (...); u is NaN where rho = 0 (every
            scaled state zero: a collapsed state has no direction).

        Raises
        ------
        ValueError
            ``y`` has the wrong trailing length.
        """
        y = np.asarray(y, dtype=float)
        if y.ndim == 0 or y.shape[-1] != self.base.n_states:
            raise ValueError(f"y must have shape (..., {self.base.n_states}) (the base system's flat state); got {y.shape}")
        free = y[..., self._free_idx]
        rho = np.sqrt(np.asarray(_norm(free, self.powers, np)))
        with np.errstate(divide="ignore", invalid="ignore"):
            u = free / rho[..., None] ** self.powers
        return u, rho

    def lift(self, u: ArrayLike, params: Mapping, rho: float = 1.0) -> np.ndarray:
        """The base-system state at direction ``u`` and scale ``rho`` (manifold states filled in).

        Parameters
        ----------
        u : array_like
            Directions (..., n_states).
        params : mapping str -> float
            The direction system's parameters (the manifold may use them).
        rho : float
            The scale.

        Returns
        -------
        numpy.ndarray
            Base-system flat states (..., base.n_states).
        """
        u = np.asarray(u, dtype=float) * float(rho) ** self.powers
        return np.asarray(self._full_state(u, {k: np.asarray(v, dtype=float) for k, v in self.check_params(params).items()}, np))

    def __repr__(self) -> str:
        return f"DirectionSystem({self.base.name or type(self.base).__name__}, states={list(self.group_names)})"

    # -- the right-hand side ------------------------------------------------------------------------
    def _full_state(self, u, params: Mapping, xp):
        """The base system's flat state from the free states u (manifold groups computed)."""
        groups, start = {}, 0
        for name, shape in self._free:
            size = int(np.prod(shape))
            groups[name] = u[..., start:start + size]
            start += size
        batch = u.shape[:-1]
        shapes = self.base.param_shapes
        for name, expr in self._graph:
            size = int(np.prod(dict(self.base.state_layout)[name]))
            groups[name] = xp.broadcast_to(_graph_value(expr, groups, params, shapes, size, xp), batch + (size,))
        parts = [groups[name] for name, _ in self.base.state_layout]
        return xp.concatenate(parts, axis=-1)

    def _function(self, checked: bool):
        import jax.numpy as jnp

        from .codegen import state_array

        base_f = self.base.to_jax(checked=False)
        decay, w = self.base.weight_decay, jnp.asarray(self.powers)
        idx = jnp.asarray(self._free_idx)
        names = [f"{n}_1..{n}_K" if shape else n for n, shape in self._free]
        n = self.n_states
        system = self

        def g(t, u, params):
            """du/dtau = f0(u) - (grad N . f0)/(2N) w u + (1 - N)/2 w u: the direction flow, the
            weight decay's scaling generator -eta w u removed and the unit sphere N(u) = 1 made
            attracting."""
            if checked:
                u = state_array(u, n, names, "jax")
                params = system.check_params(params, batch=True)
            u = jnp.asarray(u, dtype=jnp.float64)
            params = {k: jnp.asarray(float(v) if isinstance(v, sp.Basic) else v, dtype=jnp.float64) for k, v in params.items()}
            y = system._full_state(u, params, jnp)
            full = {decay: jnp.asarray(0.0), **params}
            f0 = base_f(t, y, full)[..., idx] + full[decay] * w * u  # the scaling generator removed
            N = _norm(u, w, jnp)
            grad = _norm_gradient(u, w, jnp)
            radial = jnp.sum(grad * f0, axis=-1) / (2 * N)
            return f0 - radial[..., None] * w * u + 0.5 * (1.0 - N)[..., None] * w * u

        return g


@lru_cache(maxsize=64)
def _direction_numpy(system: DirectionSystem, checked: bool):
    from ._exact import numpy_of_jax

    return numpy_of_jax(system, system._function(False), system._function(checked).__doc__, checked)


def _norm(u, w, xp=None):
    """N(u) = sum over w_i > 0 of |u_i|^(2/w_i) (u_i^(2/w_i) where that power is an even
    integer, so that it is smooth at 0 for autodiff too)."""
    if xp is None:
        import jax.numpy as xp
    return xp.sum(_powers(u, w, xp, 0), axis=-1)


def _norm_gradient(u, w, xp):
    """dN/du_i = (2/w_i) sign(u_i) |u_i|^(2/w_i - 1) (0 for unscaled states)."""
    return _powers(u, w, xp, 1)


def _powers(u, w, xp, derivative: int):
    """|u_i|^(2/w_i) or its derivative, entrywise; 0 for w_i = 0."""
    w = np.asarray(w, dtype=float)
    out = []
    for i, wi in enumerate(w):
        ui = u[..., i]
        if wi <= 0:
            out.append(xp.zeros_like(ui))
            continue
        k = 2.0 / wi
        even = float(k).is_integer() and int(k) % 2 == 0
        if derivative == 0:
            out.append(ui ** int(k) if even else xp.abs(ui) ** k)
        else:
            out.append(k * ui ** (int(k) - 1) if even else k * xp.sign(ui) * xp.abs(ui) ** (k - 1))
    return xp.stack(out, axis=-1)


def _graph_value(expr: sp.Expr, groups: Mapping[str, Any], params: Mapping[str, Any], shapes: Mapping[str, tuple],
                 size: int, xp):
    """A manifold group of ``size`` entries from the free groups and the parameters, entrywise:
    a scalar parameter with batch axes broadcasts over the entries, a per-mode one (its own
    shape (K,)) pairs with them."""
    from .codegen import lambdified

    args = tuple(sorted(expr.free_symbols, key=str))
    fn = lambdified(args, (expr,), "jax" if xp is not np else "numpy")
    values, batch = [], ()
    for a in args:
        name = str(a)
        if name in groups:
            values.append(groups[name])
            batch = groups[name].shape[:-1]
        else:
            v = xp.asarray(params[name])
            values.append(v[..., None] if v.ndim and not shapes.get(name) else v)
    return xp.broadcast_to(fn(*values)[0], batch + (size,))
