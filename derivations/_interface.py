"""DynamicalSystem: the written interface every system implements and every analysis reads.

It is the contract between the two layers. ``derivations`` builds systems (by hand, from
strings, or by ``derive``); ``dynamics`` analyses them by reading what this interface
declares, never by a system's type or a state's name. Everything here is declared data or a
compiled function:

- states, as named groups with shapes (a scalar state has shape (); the K modes of a coupled
  system are groups of shape (K,)), laid out flat, group by group, in C order;
- parameters with their trailing shapes and domains, checked by ``check_params``;
- time: continuous (a flow, ``integrate``) or discrete (a map, ``iterate``: the right-hand
  side is the increment y_{n+1} - y_n, and ``step_param`` names the parameter that is the time
  of one step, if any);
- ``diffusion``: None for a deterministic system; for a stochastic one (Ito SDE
  dy = f dt + g dW) the ``Diffusion``: g(t, y, params) and the parameters it adds;
- code generation (``to_jax``, ``to_numpy``: ``f(t, y, params)`` on flat states);
- structure: the collapse set, named partial-collapse sets, an invariant manifold, an
  invariant attracting ``constraint`` set (a direction flow's unit sphere), a continuous
  ``symmetry`` (a Lie group acting on the states that maps solutions to solutions: its
  equilibria come in families, whole group orbits), scaling powers with the parameter whose
  rate shrinks the scale (``weight_decay``);
- ``switching``: the switching functions sigma_k(y, params) of a piecewise-smooth (Filippov)
  flow, whose signs select the smooth piece, with the convexified system whose weights h_k in
  [0, 1] stand for the Heaviside factors H(sigma_k) (None: a smooth system);
- capabilities: ``symbolic`` (the explicit SymPy equations that the exact analyses use, or
  None) and the flags ``is_polynomial`` / ``is_rational`` that follow from it.

A hand-built system subclasses ``DynamicalSystem`` and implements the abstract members; the
rest have defaults that declare "none".
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .codegen import check_param_names, check_value, is_traced
from ._names import Names

if TYPE_CHECKING:
    import sympy as sp

    from ._system import ODESystem

__all__ = ["Constraint", "Diffusion", "DynamicalSystem", "EigenmodeModel", "Switching", "Symmetry", "TIMES", "flat_names"]

TIMES = Names.define(
    "TIMES",
    {"continuous": "a flow dy/dt = f(y): integrate it (dynamics.integrate).",
     "discrete": "a map y_{n+1} = y_n + f(y_n), the right-hand side the increment: step it (dynamics.iterate)."},
    module=__name__, summary="The values of DynamicalSystem.time.")

RhsFunction = Callable[..., ArrayLike]


def flat_names(name: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    """The flat state names of a group: ``name`` for shape (), ``name_1..name_K`` for (K,),
    ``name_i_j`` (1-based, C order) for a matrix.

    Parameters
    ----------
    name : str
        The group's name.
    shape : tuple of int
        The group's shape.

    Returns
    -------
    tuple of str
        One name per scalar entry, in C order.
    """
    if not shape:
        return (name,)
    return tuple(f"{name}_" + "_".join(str(i + 1) for i in idx) for idx in np.ndindex(*shape))


@dataclass(frozen=True)
class Constraint:
    """An invariant, attracting set {y : c(y, params) = 0} that a system lives on (the unit
    sphere of a direction flow). Its normal directions are not part of the dynamics:
    classification reports the Jacobian on its tangent space.

    Attributes
    ----------
    function : callable
        ``c(y, params)`` -> array (..., m), JAX-traceable: m equations.
    description : str
        What the set is, in words (classification quotes it).
    """

    function: Callable[..., ArrayLike]
    description: str


@dataclass(frozen=True)
class Symmetry:
    """A continuous symmetry of a system: a Lie group G acting on the flat state with
    f(g . y) = D(g) f(y), so that g maps solutions to solutions and the equilibria come in
    families, whole orbits G . y*. Classification reports the Jacobian on the quotient by the
    orbit's tangent space (whose r zero eigenvalues the symmetry explains) and the family's
    dimension r.

    Example: the matrix flow of a linear network is invariant under W -> Q W R^T for orthogonal
    Q, R; its generators at W are A W and W B for A, B in a basis of the antisymmetric matrices.

    Attributes
    ----------
    generators : callable
        ``generators(y, params)`` -> array (..., m, n_states), JAX-traceable: the tangent
        vectors at y of the orbits of the one-parameter subgroups exp(s xi_k), one row per
        element xi_k of a basis of the Lie algebra (k = 1..m). The orbit's tangent space at y
        is their span; its dimension (the family's) may be below m, and is zero at a fixed
        point of the group.
    description : str
        The group and its action, in words (classification quotes it).
    invariants : callable or None
        ``invariants(y, params)`` -> array (..., k), functions constant on each orbit that
        tell different orbits apart, at least among the equilibria (e.g. the sorted singular
        values of a matrix state under W -> Q W R^T): multi-start Newton reports the points it
        finds on one orbit as one family. None: points on one orbit are not merged.
    """

    generators: Callable[..., ArrayLike]
    description: str
    invariants: Callable[..., ArrayLike] | None = None

    def __post_init__(self):
        if not callable(self.generators):
            raise TypeError(f"generators must be a function (y, params) -> array (..., m, n_states); "
                            f"got {type(self.generators).__name__}")
        if not isinstance(self.description, str) or not self.description:
            raise TypeError(f"description must be a non-empty str; got {self.description!r}")
        if self.invariants is not None and not callable(self.invariants):
            raise TypeError(f"invariants must be None or a function (y, params) -> array (..., k); "
                            f"got {type(self.invariants).__name__}")


@dataclass(frozen=True, eq=False)
class Switching:
    """The switching surfaces of a piecewise-smooth flow dy/dt = f(y) whose right-hand side is
    f0(y) + sum_k H(sigma_k(y)) g_k(y) (affine in each Heaviside factor H(sigma_k); products of
    factors of different surfaces are allowed): the signs of the switching functions sigma_k
    select the smooth piece, and on a surface sigma_k = 0 the Filippov convexification lets the
    factor take any value h_k in [0, 1]. The analyses integrate such a flow piece by piece,
    follow sliding motion along a surface (``dynamics.integrate``), and report equilibria of
    each piece and pseudo-equilibria on the surfaces (``dynamics.equilibria``).

    Attributes
    ----------
    functions : callable
        ``sigma(y, params)`` -> array (..., m), JAX-traceable: the m switching functions at the
        flat states y (..., n_states); H(sigma_k) = 1 where sigma_k > 0, 0 where sigma_k < 0.
    convex : DynamicalSystem
        The convexified flow: the same states, the system's parameters followed by the weights
        ``weights`` (each in [0, 1]), its right-hand side f with every factor H(sigma_k)
        replaced by the weight h_k. With h_k in {0, 1} it is one smooth piece; on a surface, the
        Filippov set-valued field is {f(y; h) : h_k in [0, 1] for the surfaces through y}.
    weights : tuple of str
        The names of the weights h_k among ``convex``'s parameters, one per switching function.
    expressions : tuple of sympy.Expr or None
        sigma_k in the system's state and parameter symbols, where the system has explicit
        equations (exact analyses read them); None otherwise.
    description : str
        The surfaces in words (e.g. "x = 0").
    """

    functions: Callable[..., ArrayLike]
    convex: "DynamicalSystem"
    weights: tuple[str, ...]
    expressions: tuple | None = None
    description: str = ""

    def __post_init__(self):
        if not callable(self.functions):
            raise TypeError(f"functions must be a function (y, params) -> array (..., m); got {type(self.functions).__name__}")
        if not isinstance(self.convex, DynamicalSystem):
            raise TypeError(f"convex must be a DynamicalSystem; got {type(self.convex).__name__}")
        weights = tuple(self.weights)
        if not weights or not all(isinstance(w, str) for w in weights):
            raise ValueError(f"weights must name at least one parameter of convex; got {self.weights!r}")
        missing = [w for w in weights if w not in self.convex.param_names]
        if missing:
            raise ValueError(f"weights {missing} are not parameters of convex; its parameters: {list(self.convex.param_names)}")
        object.__setattr__(self, "weights", weights)
        if self.expressions is not None and len(self.expressions) != len(weights):
            raise ValueError(f"expressions must hold one switching function per weight ({len(weights)}); "
                             f"got {len(self.expressions)}")

    @property
    def count(self) -> int:
        """The number m of switching functions."""
        return len(self.weights)


@dataclass(frozen=True, eq=False)
class Diffusion:
    """The noise of a stochastic system, the Ito SDE dy = f(t, y) dt + g(t, y) dW with W a
    standard Brownian motion of ``n_noise`` components.

    Attributes
    ----------
    function : callable
        ``g(t, y, params)`` -> array (..., n_states, n_noise), JAX-traceable: the diffusion
        matrix at the flat states y (..., n_states); g g^T dt is the covariance of the
        increment.
    n_noise : int
        The number of Brownian components.
    params : tuple of str
        The parameters the noise adds to the drift's (e.g. a learning rate and a batch size),
        with their domains in ``param_domain``.
    param_domain : mapping str -> sympy.Interval
        Where each added parameter may lie (default: the real line).
    description : str
        What the noise is and which approximation it holds for, in words.
    """

    function: Callable[..., ArrayLike]
    n_noise: int
    params: tuple[str, ...] = ()
    param_domain: Mapping = None
    description: str = ""

    def __post_init__(self):
        if not callable(self.function):
            raise TypeError(f"function must be a function g(t, y, params) -> (..., n_states, n_noise); "
                            f"got {type(self.function).__name__}")
        if isinstance(self.n_noise, bool) or not isinstance(self.n_noise, (int, np.integer)):
            raise TypeError(f"n_noise must be a positive int (Brownian components); got {type(self.n_noise).__name__}")
        if self.n_noise < 1:
            raise ValueError(f"n_noise must be a positive int (Brownian components); got {self.n_noise!r}")
        params = (self.params,) if isinstance(self.params, str) else tuple(self.params)
        if not all(isinstance(n, str) for n in params):
            raise TypeError(f"params must be parameter names (str); got {self.params!r}")
        object.__setattr__(self, "params", params)
        domain = dict(self.param_domain or {})
        unknown = [k for k in domain if k not in params]
        if unknown:
            raise ValueError(f"param_domain names {unknown}, not among params {list(params)}")
        from ._system import FrozenMap  # _system builds on this module

        object.__setattr__(self, "param_domain", FrozenMap(domain))


class DynamicalSystem(abc.ABC):
    """A dynamical system as the numerics read it (see the module docstring).

    Subclasses implement ``name``, ``state_layout``, ``state_domain``, ``param_names``,
    ``param_domain``, ``to_jax`` and ``to_numpy``; every other member has a default that
    declares the feature absent (scalar parameters checked against their domains, continuous
    time, no diffusion, no collapse set, no manifold, no scaling, numeric right-hand side only).

    Attributes
    ----------
    name : str
        A label for reprs and titles.
    state_layout : tuple of (str, tuple of int)
        The state groups and their shapes, in layout order.
    state_domain, param_domain : mapping str -> sympy.Interval
        Where each flat state and each parameter may lie.
    param_names : tuple of str
        The parameters ``params`` must give.
    param_shapes : mapping str -> tuple of int
        Each parameter's own trailing shape.
    time : {"continuous", "discrete"}
        A flow or a map (``TIMES``); ``step_param`` the parameter one step's time is.
    diffusion : Diffusion or None
        The noise of a stochastic system (None: deterministic).
    collapse, partial_collapse, manifold, constraint, symmetry, scaling, weight_decay
        The declared structure (see each property).
    switching : Switching or None
        The switching functions of a piecewise-smooth flow (None: smooth).
    symbolic : ODESystem or None
        The explicit equations the exact analyses use.
    """

    __slots__ = ()

    # -- identity ------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def name(self) -> str:
        """A label for reprs and figure titles."""

    # -- states --------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def state_layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The state groups in layout order, ``((name, shape), ...)``; the flat state holds
        them one after the other, each in C order."""

    @property
    def state_names(self) -> tuple[str, ...]:
        """Flat state names in layout order (see ``flat_names``)."""
        return tuple(n for name, shape in self.state_layout for n in flat_names(name, shape))

    @property
    def n_states(self) -> int:
        """The length of the flat state."""
        return sum(math.prod(shape) for _, shape in self.state_layout)

    @property
    def group_names(self) -> tuple[str, ...]:
        """The names of the state groups, in layout order."""
        return tuple(name for name, _ in self.state_layout)

    def group_slice(self, name: str) -> slice:
        """Where the group ``name`` lies in the flat state.

        Parameters
        ----------
        name : str
            A state group (one of ``group_names``).

        Returns
        -------
        slice
            The group's entries of the flat state.

        Raises
        ------
        ValueError
            ``name`` is not a state group.
        """
        start = 0
        for group, shape in self.state_layout:
            size = math.prod(shape)
            if group == name:
                return slice(start, start + size)
            start += size
        raise ValueError(f"{name!r} is not a state group of {self.name or 'this system'}; groups: {list(self.group_names)}")

    def group_indices(self, names: tuple[str, ...] | list[str]) -> tuple[int, ...]:
        """The flat indices of the named groups, in the order given.

        Parameters
        ----------
        names : sequence of str
            State groups.

        Returns
        -------
        tuple of int
            Their flat indices.

        Raises
        ------
        ValueError
            A name that is not a state group.
        """
        return tuple(i for n in names for i in range(*self.group_slice(n).indices(self.n_states)))

    def pack(self, **groups: ArrayLike) -> np.ndarray:
        """The flat state from one array per group, e.g. ``pack(p=p_k, s=s_k)``: each of shape
        batch + the group's shape; batch shapes broadcast.

        Parameters
        ----------
        **groups : array_like
            One array per state group, keyed by the group's name.

        Returns
        -------
        numpy.ndarray
            The flat state (..., n_states), float64.

        Raises
        ------
        ValueError
            Not exactly the state groups, or an array whose trailing shape is not its group's.
        """
        if set(groups) != set(self.group_names):
            raise ValueError(f"pack needs exactly the state groups {self.group_names}; got {sorted(groups)}")
        parts = []
        for name, shape in self.state_layout:
            a = np.asarray(groups[name], dtype=np.float64)
            if a.shape[a.ndim - len(shape):] != shape or a.ndim < len(shape):
                raise ValueError(f"{name} must have shape (..., {', '.join(map(str, shape))}) "
                                 f"(batch + the group's shape {shape}); got {a.shape}")
            parts.append(a.reshape(a.shape[:a.ndim - len(shape)] + (math.prod(shape),)))
        return _concat(parts)

    def unpack(self, y: ArrayLike) -> dict[str, np.ndarray]:
        """One array per state group from flat states: ``{name: array batch + shape}``.

        Parameters
        ----------
        y : array_like
            Flat states of shape (..., n_states).

        Returns
        -------
        dict of str -> numpy.ndarray
            Per group, its entries reshaped to batch + the group's shape.

        Raises
        ------
        ValueError
            The last axis of ``y`` is not ``n_states`` long.
        """
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 0 or y.shape[-1] != self.n_states:
            raise ValueError(f"y must have shape (..., {self.n_states}) (the flat state of "
                             f"{self.name or 'this system'}); got {y.shape}")
        out, start = {}, 0
        for name, shape in self.state_layout:
            size = math.prod(shape)
            out[name] = y[..., start:start + size].reshape(y.shape[:-1] + shape)
            start += size
        return out

    def expand(self, per_group: Mapping[str, float], default: float = 0.0) -> np.ndarray:
        """A flat vector from one value per state group (e.g. scaling powers per group).

        Parameters
        ----------
        per_group : mapping str -> float
            Values keyed by state group; groups not named get ``default``.
        default : float
            The value of the groups not in ``per_group``.

        Returns
        -------
        numpy.ndarray
            Shape (n_states,), float64.
        """
        out = np.full(self.n_states, float(default))
        for name in self.group_names:
            if name in per_group:
                out[self.group_slice(name)] = float(per_group[name])
        return out

    @property
    @abc.abstractmethod
    def state_domain(self) -> Mapping[str, sp.Interval]:
        """Per flat state name, the interval it lies in (absent: the real line)."""

    def state_bounds(self) -> tuple[tuple[float, float], ...]:
        """(lower, upper) of every flat state, in layout order, from ``state_domain``.

        Returns
        -------
        tuple of (float, float)
            Infinite where unbounded.
        """
        dom = self.state_domain
        return tuple((float(dom[n].start), float(dom[n].end)) if n in dom else (-np.inf, np.inf)
                     for n in self.state_names)

    # -- parameters ----------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def param_names(self) -> tuple[str, ...]:
        """The parameters ``params`` must give, by name."""

    @property
    @abc.abstractmethod
    def param_domain(self) -> Mapping[str, sp.Interval]:
        """Per parameter name, the interval its values must lie in (absent: the real line)."""

    @property
    def param_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """The trailing shape of each parameter's value (() for a scalar; (K,) for one value per
        mode); batch axes come before it. Default: every parameter a scalar."""
        return {n: () for n in self.param_names}

    def check_params(self, params: Mapping, *, batch: bool = False) -> dict:
        """Validate ``params`` against ``param_names``, ``param_shapes`` and ``param_domain``:
        the one parameter check every analysis shares.

        Parameters
        ----------
        params : mapping str -> float or array_like
            Values keyed by parameter name (SymPy numbers stay exact; JAX tracers pass).
        batch : bool
            Allow batch axes before each parameter's own shape (a parameter with a shape of
            its own, such as one value per mode, may always carry them).

        Returns
        -------
        dict
            ``{name: value}`` in ``param_names`` order.

        Raises
        ------
        TypeError
            ``params`` is not a mapping, or a value is not real (or an array where a scalar
            is needed).
        ValueError
            Missing or unknown names (the message lists the valid ones), non-finite values,
            values outside their domain, a trailing shape other than the parameter's own.
        """
        by_name = check_param_names(params, self.param_names)
        shapes, domain = self.param_shapes, self.param_domain
        out = {}
        for n in self.param_names:
            shape = tuple(shapes.get(n, ()))
            value = check_value(n, by_name[n], domain.get(n), batch or bool(shape))
            got = np.shape(value)
            if shape and not is_traced(value) and (len(got) < len(shape) or got[len(got) - len(shape):] != shape):
                raise ValueError(
                    f"params[{n!r}] has its own shape {shape} (a per-mode parameter: one value per mode): give an array of "
                    f"shape (..., {', '.join(map(str, shape))}); got shape {got}"
                )
            out[n] = value
        return out

    # -- time ------------------------------------------------------------------------------------
    @property
    def time(self) -> str:
        """"continuous" (a flow) or "discrete" (a map whose right-hand side is the increment);
        one of ``TIMES``."""
        return "continuous"

    @property
    def step_param(self) -> str | None:
        """For a map: the parameter whose value is the time one step stands for (a learning
        rate), or None (time counts steps)."""
        return None

    @property
    def is_discrete(self) -> bool:
        """True for a map (``time == "discrete"``)."""
        return self.time == "discrete"

    @property
    def diffusion(self) -> Diffusion | None:
        """The noise of a stochastic system (a ``Diffusion``); None: the system is deterministic."""
        return None

    # -- code generation ---------------------------------------------------------------------------
    @abc.abstractmethod
    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params)`` on flat states (..., n_states), JAX (jit, vmap, grad; float64).

        Parameters
        ----------
        checked : bool
            Validate concrete inputs on every call.

        Returns
        -------
        callable
            dy/dt (or the increment of a map) with y's shape.
        """

    @abc.abstractmethod
    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params)`` on flat states (..., n_states), NumPy float64.

        Parameters
        ----------
        checked : bool
            Validate the inputs on every call.

        Returns
        -------
        callable
            dy/dt (or the increment of a map) with y's shape.
        """

    # -- structure -------------------------------------------------------------------------------
    @property
    def collapse(self) -> tuple[str, ...]:
        """The state groups whose common zero is "collapse" (events, equilibrium flags)."""
        return ()

    @property
    def collapse_indices(self) -> tuple[int, ...]:
        """Flat indices of the collapse states."""
        return self.group_indices(self.collapse)

    @property
    def partial_collapse(self) -> Mapping[str, tuple[str, ...]]:
        """Named subsets of ``collapse`` (state groups) that can vanish on their own; a run that
        fails as one of them vanishes is "partly_collapsed"."""
        return {}

    @property
    def manifold(self) -> Mapping[str, sp.Expr] | None:
        """An invariant graph {state group: SymPy expression in the other groups' names and
        the parameters}, applied entrywise to groups with shapes (mode by mode), or None."""
        return None

    @property
    def constraint(self) -> Constraint | None:
        """An invariant, attracting set the system lives on (``Constraint``), or None."""
        return None

    @property
    def symmetry(self) -> Symmetry | None:
        """A continuous symmetry (``Symmetry``: a Lie group acting on the states, with the
        tangents of its orbits) whose orbits of equilibria are families, or None."""
        return None

    @property
    def scaling(self) -> Mapping[str, float] | None:
        """Scaling powers of a scale-invariant system: {state group or parameter: power} such
        that the flow commutes with y -> lambda^power y; None if the system declares none."""
        return None

    @property
    def weight_decay(self) -> str | None:
        """With ``scaling``: the parameter eta whose decay shrinks the scale, lambda = exp(-eta t);
        else None."""
        return None

    @property
    def switching(self) -> Switching | None:
        """The switching functions of a piecewise-smooth (Filippov) flow and its convexified
        system (``Switching``), or None for a smooth system (the default)."""
        return None

    @property
    def is_piecewise(self) -> bool:
        """True for a flow that declares ``switching`` (piecewise smooth)."""
        return self.switching is not None

    # -- capabilities ------------------------------------------------------------------------------
    @property
    def symbolic(self) -> ODESystem | None:
        """The explicit SymPy equations that the exact analyses use (elimination, exact
        classification, thresholds), or None when the system is served numerically only."""
        return None

    @property
    def is_rational(self) -> bool:
        """True if ``symbolic`` exists and its right-hand side is rational in the states."""
        sym = self.symbolic
        return sym is not None and sym.is_rational

    @property
    def is_polynomial(self) -> bool:
        """True if ``symbolic`` exists and its right-hand side is polynomial in the states."""
        sym = self.symbolic
        return sym is not None and sym.is_polynomial


class EigenmodeModel(abc.ABC):
    """What ``derive`` returns: a model of one eigenmode whose K coupled modes are systems.

    ``modes(K)`` gives the K-mode ``DynamicalSystem``; ``discrete()`` the model of one
    gradient-descent step (its ``modes(K)`` are maps); ``spec`` the ModelSpec it was derived
    from. The one-mode closures (``EigenmodeSystem``) are themselves systems; the exact
    finite-width flow (``ExactEigenmodes``) exists only for K >= 2 modes.

    Attributes
    ----------
    spec : ModelSpec
        The model it was derived from (a field of every implementation).
    is_discrete : bool
        True for the model of a gradient-descent step.
    """

    __slots__ = ()
    # ``spec`` (the ModelSpec it was derived from) is a field of every implementation.

    @property
    @abc.abstractmethod
    def is_discrete(self) -> bool:
        """True for the model of a gradient-descent step (a map)."""

    @abc.abstractmethod
    def modes(self, K: int) -> DynamicalSystem:
        """The K coupled modes.

        Parameters
        ----------
        K : int
            The number of modes.

        Returns
        -------
        DynamicalSystem
            The K-mode system (a map if the model is discrete).
        """

    def stochastic(self, K: int) -> DynamicalSystem:
        """The K modes with the noise of minibatch SGD: the Ito SDE
        dy = f dt + sqrt(lr / B) Sigma^(1/2) dW, Sigma the per-sample gradient covariance of
        each mode (``derivations.gradient_noise``), f the flow of ``modes(K)``.

        Parameters
        ----------
        K : int
            The number of modes.

        Returns
        -------
        StochasticSystem
            ``modes(K)`` as its drift, the parameters lr and B added.

        Raises
        ------
        ValueError
            A discrete model (the noise is added to the flow), or a model whose noise is not
            derived (see ``gradient_noise``).
        """
        if self.is_discrete:
            raise ValueError("stochastic(K) adds the SGD noise to the flow; call it on the continuous model")
        from ._diffusion import stochastic_modes

        return stochastic_modes(self, K, self.modes(K))

    @abc.abstractmethod
    def discrete(self) -> EigenmodeModel:
        """The model of one gradient-descent step of size ``lr`` (a new parameter).

        Returns
        -------
        EigenmodeModel
            The discrete model (the model itself if it is discrete already).
        """


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    batch = np.broadcast_shapes(*[p.shape[:-1] for p in parts])
    return np.concatenate([np.broadcast_to(p, batch + p.shape[-1:]) for p in parts], axis=-1)
