"""The system as the numerics see it: names, sizes, collapse states, bounds, compiled right-hand sides."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from ._events import EventContext

__all__ = ["NumericSystem"]


class NumericSystem:
    """What integrate needs of a system: names, sizes, collapse states, compiled right-hand sides."""

    REQUIRED = ("state_names", "param_names", "to_jax", "to_numpy", "collapse_indices", "check_params")

    def __init__(self, system: Any):
        self.system = system
        self.state_names = tuple(system.state_names)
        self.param_names = tuple(system.param_names)
        self.n = len(self.state_names)
        self.collapse_indices = tuple(int(i) for i in system.collapse_indices)
        bounds = system.state_bounds() if hasattr(system, "state_bounds") else ((-np.inf, np.inf),) * self.n
        self.state_bounds = tuple((float(lo), float(hi)) for lo, hi in bounds)
        self.f_np = system.to_numpy(checked=False)
        self._f_jax = None

    @property
    def f_jax(self) -> Callable:
        if self._f_jax is None:
            self._f_jax = self.system.to_jax(checked=False)
        return self._f_jax

    def context(self, backend: str) -> EventContext:
        if backend == "jax":
            import jax.numpy as jnp

            return EventContext(jnp, self.f_jax, self.state_names, self.collapse_indices, self.state_bounds)
        return EventContext(np, self.f_np, self.state_names, self.collapse_indices, self.state_bounds)

    @classmethod
    def of(cls, system: Any) -> NumericSystem:
        missing = [a for a in cls.REQUIRED if not hasattr(system, a)]
        if missing:
            raise TypeError(
                "system must be an ODESystem (derivations.ODESystem, ODESystem.from_equations, derive(spec)) "
                f"or a ModeSystem: anything with {', '.join(cls.REQUIRED)}; got {type(system).__name__}"
            )
        if getattr(system, "is_discrete", False):
            raise ValueError(
                f"{getattr(system, 'name', '') or 'this system'} is a discrete-time map (its rhs is the increment of "
                "one step), not a flow: step it with dynamics.iterate"
            )
        return _numeric(system)


@lru_cache(maxsize=128)
def _numeric(system: Any) -> NumericSystem:
    return NumericSystem(system)

