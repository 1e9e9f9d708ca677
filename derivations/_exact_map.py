"""The gradient-descent map of the exact expected flow: one step of size lr on the weights.

``ExactModeSystem`` gives the exact expected flow of a normalized loss for aligned weights and
Gaussian views. A network trained with a finite learning rate lr takes the step
W -> W - lr dJ/dW on its weights, not on the eigenvalues; on the aligned modes that step is,
as for the closures (``EigenmodeSystem.discrete``),

    p   -> p + lr dp/dt                               (the predictor is a weight)
    s   -> s (1 + lr r)^2,   r = (dphi/dt) / phi       (phi = sqrt(s) takes the step)
    tau -> (tau + lr beta (1 - tau)) / (1 + lr r)      (EMA: Phi_a -> Phi_a + lr beta (Phi - Phi_a))

with dp/dt and r from the exact flow's quadrature. It is the map of the expected gradient: the
sampling noise of a finite batch is not in it. As lr -> 0 with t = n lr it becomes the flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from ._coupled import ModeSystem
from ._interface import DynamicalSystem, EigenmodeModel
from ._spec import ModelSpec
from ._system import RhsFunction

if TYPE_CHECKING:
    from ._exact import ExactEigenmodes, ExactModeSystem

__all__ = ["ExactMap", "ExactModeMap"]


@dataclass(frozen=True)
class ExactModeMap(DynamicalSystem):
    """K modes of the gradient-descent map of the exact expected flow (``ExactModeSystem.discrete()``).

    It implements ``DynamicalSystem`` as a map (``time == "discrete"``, ``step_param == "lr"``):
    its right-hand side is the one-step increment, y_next = y + rhs(y) (``dynamics.iterate``
    steps it). Layout, parameters (the flow's and the learning rate ``lr`` in (0, oo)) and
    domains are those of the self-consistent system's map (``closure``); the rate is the exact
    flow's quadrature.

    Attributes
    ----------
    flow : ExactModeSystem
        The exact flow whose rate the map steps.
    """

    flow: ExactModeSystem

    def __post_init__(self) -> None:
        from ._exact import ExactModeSystem

        if not isinstance(self.flow, ExactModeSystem):
            raise TypeError(f"flow must be an ExactModeSystem; got {type(self.flow).__name__}")

    @property
    def closure(self) -> ModeSystem:
        """The self-consistent K-mode map: layout, parameters (with ``lr``) and domains."""
        return _closure_map(self.flow)

    @property
    def per_mode(self):
        """The self-consistent per-mode map (states, parameters with ``lr``, domains)."""
        return self.closure.per_mode

    @property
    def K(self) -> int:
        """The number of modes."""
        return self.flow.K

    @property
    def spec(self) -> ModelSpec:
        """The model (``norms="exact"``)."""
        return self.flow.spec

    @property
    def name(self) -> str:
        """The model's label, K and the step."""
        return f"{self.flow.name}, gradient-descent step lr"

    @property
    def state_layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """As the flow's."""
        return self.flow.state_layout

    @property
    def state_domain(self) -> Mapping:
        """As the flow's."""
        return self.flow.state_domain

    @property
    def param_names(self) -> tuple[str, ...]:
        """The flow's parameters and ``lr``."""
        return self.closure.param_names

    @property
    def param_domain(self) -> Mapping:
        """The flow's domains and lr > 0."""
        return self.closure.param_domain

    @property
    def param_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """As the self-consistent map's."""
        return self.closure.param_shapes

    @property
    def time(self) -> str:
        """"discrete": a map."""
        return "discrete"

    @property
    def step_param(self) -> str:
        """"lr": one step stands for a time lr."""
        return "lr"

    @property
    def collapse(self) -> tuple[str, ...]:
        """As the flow's."""
        return self.flow.collapse

    @property
    def partial_collapse(self) -> Mapping[str, tuple[str, ...]]:
        """As the flow's."""
        return self.flow.partial_collapse

    def discrete(self) -> ExactModeMap:
        """The map itself (it is discrete already).

        Returns
        -------
        ExactModeMap
            ``self``.
        """
        return self

    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params)``: the one-step increment on flat states (..., n_states).

        Parameters
        ----------
        checked : bool
            Validate concrete inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning y_next - y as a JAX array of y's shape.
        """
        return _map_function(self, checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """The same as ``to_jax``, returning NumPy arrays (one compiled evaluation per call).

        Parameters
        ----------
        checked : bool
            Validate the inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning y_next - y as a float64 ndarray of y's shape.
        """
        return _map_numpy(self, checked)

    def __repr__(self) -> str:
        return f"ExactModeMap({self.spec.label}, K={self.K}, params={self.param_names})"


@lru_cache(maxsize=64)
def _closure_map(flow: ExactModeSystem) -> ModeSystem:
    base = flow.closure
    return ModeSystem(base.per_mode.discrete(), base.K, base.closures, base.per_mode_params)


@lru_cache(maxsize=64)
def _map_function(system: ExactModeMap, checked: bool):
    import jax.numpy as jnp

    from .codegen import state_array

    flow = system.flow
    rate = flow.to_jax(checked=False)
    K = system.K
    names = system.per_mode.state_names
    flat_names = [f"{n}_1..{n}_K" for n in names]
    free = system.param_names
    flow_free = flow.param_names
    ema = flow.spec.target == "ema"

    def f(t, y, params):
        if checked:
            y = state_array(y, system.n_states, flat_names, "jax")
            params = system.check_params(params, batch=True)
            params = {k: (float(v) if isinstance(v, sp.Basic) else v) for k, v in params.items()}
        else:
            params = {k: params[k] for k in free}
        y = jnp.asarray(y, dtype=jnp.float64)
        dy = rate(t, y, {k: params[k] for k in flow_free})
        y, dy = jnp.broadcast_arrays(y, dy)
        state = {n: y[..., i * K : (i + 1) * K] for i, n in enumerate(names)}
        d = {n: dy[..., i * K : (i + 1) * K] for i, n in enumerate(names)}
        lr = jnp.asarray(params["lr"], dtype=jnp.float64)[..., None]
        s = state["s"]
        eta = jnp.asarray(params["eta"], dtype=jnp.float64)[..., None]
        # r = (dphi/dt)/phi from ds/dt = 2 s r; at s = 0 the flow's rate is -eta
        r = jnp.where(s == 0, -eta, d["s"] / (2 * jnp.where(s == 0, 1.0, s)))
        step = 1 + lr * r
        out = {"s": s * (step**2 - 1)}
        if "p" in d:
            out["p"] = lr * d["p"]
        if ema:
            tau = state["tau"]
            beta = jnp.asarray(params["beta"], dtype=jnp.float64)[..., None]
            out["tau"] = (tau + lr * beta * (1 - tau)) / step - tau
        shape = jnp.broadcast_shapes(*(v.shape for v in out.values()))
        return jnp.concatenate([jnp.broadcast_to(out[n], shape) for n in names], axis=-1)

    f.__doc__ = f"gradient-descent map (step lr) of the exact {K}-mode flow of {flow.spec.label}; params: {', '.join(free)}."
    return f


@lru_cache(maxsize=64)
def _map_numpy(system: ExactModeMap, checked: bool):
    from ._exact import numpy_of_jax

    return numpy_of_jax(system, _map_function(system, False), _map_function(system, checked).__doc__, checked)


@dataclass(frozen=True)
class ExactMap(EigenmodeModel):
    """The gradient-descent map of the exact expected flow (``ExactEigenmodes.discrete()``):
    ``modes(K)`` gives the K-mode map (``ExactModeMap``), as ``EigenmodeSystem.discrete()``
    does for the closures. Immutable.

    Attributes
    ----------
    exact : ExactEigenmodes
        The exact flow of the model.
    """

    exact: ExactEigenmodes

    @property
    def spec(self) -> ModelSpec:
        """The model (``norms="exact"``)."""
        return self.exact.spec

    @property
    def is_discrete(self) -> bool:
        """True: the right-hand side of its systems is the one-step increment."""
        return True

    @property
    def state_names(self) -> tuple[str, ...]:
        """The per-mode state names."""
        return self.exact.state_names

    @property
    def name(self) -> str:
        """The model's label and the step."""
        return f"{self.spec.label}, gradient-descent step lr"

    def discrete(self) -> ExactMap:
        """The map itself.

        Returns
        -------
        ExactMap
            ``self``.
        """
        return self

    def modes(self, K: int, *, quadrature: Mapping[str, float] | None = None) -> ExactModeMap:
        """The K-mode map (K >= 2); ``quadrature`` as in ``ExactEigenmodes.modes``.

        Parameters
        ----------
        K : int
            The number of modes, at least 2.
        quadrature : mapping str -> float, optional
            Overrides of the quadrature rule ``QUADRATURE`` (keys step, lower, upper).

        Returns
        -------
        ExactModeMap
            The map of the exact K-mode flow.

        Raises
        ------
        ValueError
            As ``ExactEigenmodes.modes``.
        """
        return ExactModeMap(self.exact.modes(K, quadrature=quadrature))

    def __repr__(self) -> str:
        return f"ExactMap({self.spec.label}, states=({', '.join(self.state_names)}), lr)"
