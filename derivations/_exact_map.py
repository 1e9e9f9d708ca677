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
from ._spec import ModelSpec
from ._system import ODESystem, RhsFunction

if TYPE_CHECKING:
    from ._exact import ExactEigenmodes, ExactModeSystem

__all__ = ["ExactMap", "ExactModeMap"]


@dataclass(frozen=True, eq=False)
class ExactModeMap(ModeSystem):
    """K modes of the gradient-descent map of the exact expected flow (``ExactModeSystem.discrete()``).

    Its right-hand side is the one-step increment, y_next = y + rhs(y) (``dynamics.iterate``
    steps it); the parameters are the flow's and the learning rate ``lr`` in (0, oo). The
    per-mode system is the self-consistent system's ``discrete()`` (states, parameters and
    domains; its closures are not used).

    Attributes
    ----------
    per_mode : EigenmodeSystem
        The self-consistent system's ``discrete()`` (states, parameters with ``lr``, domains).
    K : int
        The number of modes (>= 2).
    closures : tuple
        The flow's closures (kept for the layout; the map uses the quadrature).
    per_mode_params : tuple of str
        Parameters that differ between modes.
    flow : ExactModeSystem
        The exact flow whose rate the map steps.
    """

    flow: ExactModeSystem | None = None

    @classmethod
    def of(cls, flow: ExactModeSystem) -> ExactModeMap:
        """The map of ``flow``.

        Parameters
        ----------
        flow : ExactModeSystem
            The exact K-mode flow.

        Returns
        -------
        ExactModeMap
            Its gradient-descent map with the parameter ``lr``.

        Raises
        ------
        TypeError
            ``flow`` is not an ExactModeSystem.
        """
        from ._exact import ExactModeSystem

        if not isinstance(flow, ExactModeSystem):
            raise TypeError(f"flow must be an ExactModeSystem; got {type(flow).__name__}")
        return cls(flow.per_mode.discrete(), flow.K, flow.closures, flow.per_mode_params, flow=flow)

    def __hash__(self) -> int:
        return hash(("ExactModeMap", self.flow))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.flow == other.flow

    @property
    def spec(self) -> ModelSpec:
        """The model (``norms="exact"``)."""
        return self.flow.spec

    @property
    def name(self) -> str:
        """The model's label, K and the step."""
        return f"{self.flow.name}, gradient-descent step lr"

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

        Raises
        ------
        ValueError
            Not when building: the returned function raises it (when ``checked``) for bad
            parameter names, shapes or non-finite values.
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

        Raises
        ------
        ValueError
            Not when building: the returned function raises it (when ``checked``) for bad
            parameter names, shapes or non-finite values.
        """
        return _map_numpy(self, checked)

    def to_ode_system(self) -> ODESystem:
        """Not available: the exact map is a quadrature, with no closed-form right-hand side.

        Returns
        -------
        ODESystem
            Never.

        Raises
        ------
        ValueError
            Always.
        """
        raise ValueError("the exact map has no closed-form right-hand side (it is a quadrature); use to_jax/to_numpy")

    def to_sympy(self) -> tuple[tuple[sp.Symbol, ...], sp.ImmutableMatrix]:
        """Not available, as ``to_ode_system``.

        Returns
        -------
        tuple
            Never.

        Raises
        ------
        ValueError
            Always.
        """
        return self.to_ode_system()

    def __repr__(self) -> str:
        return f"ExactModeMap({self.spec.label}, K={self.K}, params={self.param_names})"


@lru_cache(maxsize=64)
def _map_function(system: ExactModeMap, checked: bool):
    import jax.numpy as jnp

    from ._codegen import state_array

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
    import jax

    from ._codegen import state_array

    core = jax.jit(_map_function(system, False))
    free = system.param_names
    flat_names = [f"{n}_1..{n}_K" for n in system.per_mode.state_names]

    def f(t, y, params):
        if checked:
            y = state_array(y, system.n_states, flat_names, "numpy")
            params = system.check_params(params, batch=True)
        given = {k: np.asarray(float(params[k]) if isinstance(params[k], sp.Basic) else params[k], dtype=float) for k in free}
        return np.asarray(core(t, np.asarray(y, dtype=float), given))

    f.__doc__ = _map_function(system, checked).__doc__
    return f


class ExactMap:
    """The gradient-descent map of the exact expected flow (``ExactEigenmodes.discrete()``):
    ``modes(K)`` gives the K-mode map (``ExactModeMap``), as ``EigenmodeSystem.discrete()``
    does for the closures.

    Parameters
    ----------
    exact : ExactEigenmodes
        The exact flow of the model.

    Attributes
    ----------
    exact : ExactEigenmodes
        As given.
    spec : ModelSpec
        The model (``norms="exact"``).
    is_discrete : bool
        True: the right-hand side of its systems is the one-step increment.
    """

    is_discrete = True

    def __init__(self, exact: ExactEigenmodes) -> None:
        self.exact = exact
        self.spec = exact.spec

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
            Overrides of the quadrature grid (keys step, lower, upper).

        Returns
        -------
        ExactModeMap
            The map of the exact K-mode flow.

        Raises
        ------
        ValueError
            As ``ExactEigenmodes.modes``.
        """
        return ExactModeMap.of(self.exact.modes(K, quadrature=quadrature))

    def __repr__(self) -> str:
        return f"ExactMap({self.spec.label}, states=({', '.join(self.state_names)}), lr)"
