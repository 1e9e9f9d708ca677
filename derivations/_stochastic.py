"""StochasticSystem: a drift system and the noise of its steps, the Ito SDE dy = f dt + g dW."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ._interface import Diffusion, DynamicalSystem, RhsFunction
from ._system import FrozenMap

__all__ = ["StochasticSystem"]


@dataclass(frozen=True, eq=False)
class StochasticSystem(DynamicalSystem):
    """The Ito SDE dy = (f(t, y) + c(t, y)) dt + g(t, y) dW of a deterministic ``drift`` system f,
    an optional noise-induced ``correction`` c (an Ito correction, of the noise's order) and a
    ``Diffusion`` g: the states, their domains, time and collapse sets are the drift's; the
    parameters are the drift's followed by the diffusion's. ``dynamics.integrate`` runs it with
    an SDE solver over seeded Brownian paths. The deterministic analyses (equilibria,
    classification, bifurcation) read f + c, so they give the noise-shifted equilibria; pass
    ``drift`` for those of the expected flow.

    The drift's invariant manifold, scaling, symmetry and constraint are not declared: the
    noise need not respect them.

    Attributes
    ----------
    drift : DynamicalSystem
        The deterministic flow f (continuous time, smooth).
    noise : Diffusion
        The diffusion g and the parameters it adds.
    correction : callable or None
        ``c(t, y, params)`` -> (..., n_states), JAX: the drift the noise adds (e.g. Ito's lemma
        for states that are curved functions of the weights that take the steps); None: none.
    label : str
        A label (default: the drift's, "with noise"; "a stochastic system" for an unnamed drift).
    """

    drift: DynamicalSystem
    noise: Diffusion
    correction: object = None
    label: str = ""

    def __post_init__(self):
        if not isinstance(self.drift, DynamicalSystem):
            raise TypeError(f"drift must be a DynamicalSystem; got {type(self.drift).__name__}")
        if not isinstance(self.noise, Diffusion):
            raise TypeError(f"noise must be a derivations.Diffusion; got {type(self.noise).__name__}")
        if self.correction is not None and not callable(self.correction):
            raise TypeError(f"correction must be None or a function c(t, y, params); got {type(self.correction).__name__}")
        if self.drift.diffusion is not None:
            raise ValueError("drift must be deterministic (its diffusion is None)")
        if self.drift.time != "continuous":
            raise ValueError(f"drift must be a flow (time 'continuous'); got time {self.drift.time!r}")
        if self.drift.switching is not None:
            raise ValueError("drift must be smooth: a piecewise-smooth drift with noise is not supported")
        clash = [n for n in self.noise.params if n in self.drift.param_names]
        if clash:
            raise ValueError(f"the diffusion's params {clash} are already parameters of the drift "
                             f"({list(self.drift.param_names)})")

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        return f"{self.drift.name}, with noise" if self.drift.name else "a stochastic system"

    @property
    def state_layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return self.drift.state_layout

    @property
    def state_domain(self) -> Mapping[str, sp.Interval]:
        return self.drift.state_domain

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.drift.param_names) + self.noise.params

    @property
    def param_domain(self) -> Mapping[str, sp.Interval]:
        return FrozenMap({**self.drift.param_domain, **self.noise.param_domain})

    @property
    def param_shapes(self) -> Mapping[str, tuple[int, ...]]:
        return FrozenMap({**self.drift.param_shapes, **{n: () for n in self.noise.params}})

    @property
    def collapse(self) -> tuple[str, ...]:
        return self.drift.collapse

    @property
    def partial_collapse(self) -> Mapping[str, tuple[str, ...]]:
        return self.drift.partial_collapse

    @property
    def diffusion(self) -> Diffusion:
        """The noise g (a ``Diffusion``)."""
        return self.noise

    def _drift_function(self, backend: str, checked: bool) -> RhsFunction:
        f = self.drift.to_jax(checked=False) if backend == "jax" else self.drift.to_numpy(checked=False)
        drift_names = tuple(self.drift.param_names)
        correction = self.correction
        if correction is not None and backend != "jax":
            def correction(t, y, params, _c=self.correction):
                return np.asarray(_c(t, np.asarray(y, dtype=float), params))

        def rhs(t, y, params):
            if checked:
                self.check_params(params, batch=True)
            out = f(t, y, {k: params[k] for k in drift_names if k in params})
            return out if correction is None else out + correction(t, y, params)

        return rhs

    def to_jax(self, checked: bool = True) -> RhsFunction:
        """The SDE's drift f + c at (t, y, params) (JAX).

        Parameters
        ----------
        checked : bool
            Validate the parameters on every call.

        Returns
        -------
        callable
            f(t, y, params).
        """
        return self._drift_function("jax", checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """The SDE's drift f + c at (t, y, params) (NumPy).

        Parameters
        ----------
        checked : bool
            Validate the parameters on every call.

        Returns
        -------
        callable
            f(t, y, params).
        """
        return self._drift_function("numpy", checked)

    def __repr__(self) -> str:
        return (f"StochasticSystem({self.name}, states={self.n_states}, noise={self.noise.n_noise}, "
                f"params=({', '.join(self.param_names)}))")
