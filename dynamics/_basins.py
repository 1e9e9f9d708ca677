"""basins(system, params, grid): where trajectories from a grid of initial states end up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivations import EigenmodeSystem

from ._states import collapse_indices
from ._equilibria import equilibria
from ._integrate import integrate

__all__ = ["basins", "Basins"]


@dataclass(frozen=True)
class Basins:
    """Outcome of integrating from every point of a 2-D grid of initial states.

    x, y:        state names of the grid axes; x_values, y_values their values.
    final:       (ny, nx, n_states) final states.
    attractor:   (ny, nx) index into ``attractors`` of the stable equilibrium each trajectory
                 approaches (the nearest one at t1), -1 where there is none (or it left).
    attractors:  the stable equilibria (one-mode systems; empty for K-mode systems).
    collapsed:   (ny, nx) True where the trajectory collapses: its attractor is the collapsed
                 equilibrium, or every p and s fell below ``collapse_tol``.
    status:      (ny, nx) Solution status per trajectory.
    collapse_probability: fraction of the grid that collapses (uniform weight per point).
    """

    x: str
    y: str
    x_values: np.ndarray
    y_values: np.ndarray
    final: np.ndarray
    attractor: np.ndarray
    attractors: tuple
    collapsed: np.ndarray
    status: np.ndarray
    t1: float

    @property
    def collapse_probability(self) -> float:
        return float(np.mean(self.collapsed))


def basins(
    system: Any,
    params: Mapping[str, float],
    grid: Mapping[str, Sequence[float]],
    *,
    fixed: Mapping[str, float] | None = None,
    t1: float = 200.0,
    collapse_tol: float = 1e-6,
    backend: str = "jax",
) -> Basins:
    """Integrate from every point of ``grid`` = {x state: values, y state: values} (other
    states from ``fixed``) to ``t1`` in one batched call and record where each ends.

    Raises ValueError unless ``grid`` names exactly two states of the system and ``fixed``
    gives every other state.
    """
    names = tuple(system.state_names)
    if not isinstance(grid, Mapping) or len(grid) != 2:
        raise ValueError(f"grid must be a dict of exactly two state names -> values; states are {names}")
    (xn, xv), (yn, yv) = grid.items()
    fixed = dict(fixed or {})
    for n in (xn, yn):
        if n not in names:
            raise ValueError(f"grid names unknown state {n!r}; states are {names}")
    missing = [n for n in names if n not in (xn, yn) and n not in fixed]
    if missing:
        raise ValueError(f"fixed must give the states not on the grid: missing {missing}")
    xv, yv = np.asarray(xv, dtype=float), np.asarray(yv, dtype=float)
    if xv.ndim != 1 or yv.ndim != 1 or xv.size < 2 or yv.size < 2:
        raise ValueError("grid values must be 1-D arrays with at least two entries")
    X, Y = np.meshgrid(xv, yv)
    y0 = np.zeros(X.shape + (len(names),))
    for i, n in enumerate(names):
        y0[..., i] = X if n == xn else Y if n == yn else fixed[n]
    sol = integrate(system, y0, (0.0, t1), params, t_eval=[t1], collapse_tol=collapse_tol, backend=backend)
    final = sol.y[..., -1, :]
    idx = collapse_indices(names)
    collapsed = (sol.status == "collapsed") | np.all(np.abs(final[..., idx]) < collapse_tol, axis=-1)
    attractors: tuple = ()
    attractor = np.full(X.shape, -1)
    if isinstance(system, EigenmodeSystem):
        attractors = tuple(e for e in equilibria(system, params) if e.stable)
        if attractors:
            # slow attractors (rates ~ eta) are approached, not reached, by t1: take the nearest
            dist = np.stack([np.linalg.norm(final - e.x, axis=-1) for e in attractors], axis=-1)
            attractor = np.argmin(dist, axis=-1)
            far = np.min(dist, axis=-1) > 0.1 * (1 + np.linalg.norm(final, axis=-1))
            attractor[far | (sol.status == "blew_up")] = -1
            is_collapsed = np.array([e.collapsed for e in attractors])
            collapsed |= (attractor >= 0) & is_collapsed[np.maximum(attractor, 0)]
    return Basins(xn, yn, xv, yv, final, attractor, attractors, collapsed, sol.status, t1)
