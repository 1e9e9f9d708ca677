"""The system as the numerics see it: what its ``DynamicalSystem`` interface declares (names,
sizes, collapse states, bounds, parameter shapes), with the compiled right-hand sides."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
import numpy as np

from derivations import DynamicalSystem

from ._events import EventContext

__all__ = ["NumericSystem"]


class NumericSystem:
    """What integrate needs of a system, read once from its interface: names, sizes, collapse
    states, bounds, parameter shapes and the compiled right-hand sides."""

    def __init__(self, system: DynamicalSystem):
        self.system = system
        self.state_names = tuple(system.state_names)
        self.param_names = tuple(system.param_names)
        self.n = len(self.state_names)
        self.collapse_indices = tuple(int(i) for i in system.collapse_indices)
        self.state_bounds = tuple((float(lo), float(hi)) for lo, hi in system.state_bounds())
        self.param_shapes = {k: tuple(v) for k, v in system.param_shapes.items()}
        self.f_np = system.to_numpy(checked=False)
        self._f_jax = None
        self._rhs_ops = None

    @property
    def f_jax(self) -> Callable:
        if self._f_jax is None:
            self._f_jax = self.system.to_jax(checked=False)
        return self._f_jax

    @property
    def rhs_ops(self) -> int:
        """The number of operations of one lowered right-hand side (StableHLO), a measure of what
        each inlined copy of it costs to compile; computed once."""
        if self._rhs_ops is None:
            import jax

            f64 = jax.numpy.float64
            params = {k: jax.ShapeDtypeStruct(self.param_shapes.get(k, ()), f64) for k in self.param_names}
            text = jax.jit(self.f_jax).lower(jax.ShapeDtypeStruct((), f64), jax.ShapeDtypeStruct((self.n,), f64),
                                             params).as_text()
            self._rhs_ops = text.count(" = ")
        return self._rhs_ops

    def context(self, backend: str) -> EventContext:
        if backend == "jax":
            import jax.numpy as jnp

            return EventContext(jnp, self.f_jax, self.state_names, self.collapse_indices, self.state_bounds)
        return EventContext(np, self.f_np, self.state_names, self.collapse_indices, self.state_bounds)

    @classmethod
    def of(cls, system: DynamicalSystem) -> NumericSystem:
        """The numeric view of a flow.

        Parameters
        ----------
        system : DynamicalSystem
            A flow (``time == "continuous"``).

        Returns
        -------
        NumericSystem
            Built once per system.

        Raises
        ------
        TypeError
            ``system`` is not a DynamicalSystem.
        ValueError
            ``system`` is a map.
        """
        if not isinstance(system, DynamicalSystem):
            raise TypeError(
                "system must be a derivations.DynamicalSystem (an ODESystem, derive(spec), a K-mode system or one "
                f"of your own); got {type(system).__name__}"
            )
        if system.time != "continuous":
            raise ValueError(
                f"{system.name or 'this system'} is a discrete-time map (its rhs is the increment of "
                "one step), not a flow: step it with dynamics.iterate"
            )
        return _numeric(system)


@lru_cache(maxsize=128)
def _numeric(system: DynamicalSystem) -> NumericSystem:
    return NumericSystem(system)

