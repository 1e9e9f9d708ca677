"""basins(system, grid, params): where trajectories from a grid of initial states end up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from derivations import DynamicalSystem, FrozenMap, Params
from derivations.codegen import check_not_text, interval_words

from ._checks import check_deterministic
from ._display import html_table
from ._equilibria import equilibria
from ._events import Collapse
from ._integrate import integrate
from ._phase_plane import MANIFOLD, check_fixed
from ._value import Value

__all__ = ["basins", "Basins"]


@dataclass(frozen=True, eq=False)
class Basins(Value):
    """Outcome of integrating from every point of a 2-D grid of initial states.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    x, y : str
        State names of the grid axes.
    x_values, y_values : numpy.ndarray
        Their values.
    final : numpy.ndarray
        (ny, nx, n_states) final states.
    attractor : numpy.ndarray of int
        (ny, nx) index into ``attractors`` of the stable equilibrium each trajectory
        approaches (the nearest one at t1), -1 where there is none (or it left).
    attractors : tuple of Equilibrium
        The stable equilibria (all of them for symbolic systems; those multi-start Newton finds
        for systems served numerically with at most 8 states; none for larger ones).
    collapsed : numpy.ndarray of bool
        (ny, nx) True where the trajectory collapses: its attractor is a collapsed
        equilibrium, or every collapse state fell below ``collapse.tol``. All False when the
        system has no collapse states.
    status : numpy.ndarray of str
        (ny, nx) Solution status per trajectory.
    t1 : float
        The integration time.
    collapse_states : tuple of str
        The system's collapse states (``system.collapse``); empty: nothing collapses and the
        basins are labelled by attractor only.
    system_name : str
        The system's name (for the figure's title).
    params : mapping str -> float
        The parameter values.
    excluded : numpy.ndarray of bool
        (ny, nx) True for initial states whose outcome the dynamics does not decide: every
        collapse state already zero, or a collapse state zero on its invariant face (its
        right-hand side vanishes there, e.g. the s = 0 row of an eigenmode system, where
        ds/dt = s (...) keeps s = 0 forever). They are left out of ``collapse_probability``
        and ``fractions`` (``n_excluded`` counts them); ``collapsed`` still marks them.
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
    collapse_states: tuple[str, ...] = ()
    system_name: str = ""
    params: Mapping[str, float] = field(default_factory=FrozenMap)
    excluded: np.ndarray | None = None

    def _counted(self) -> np.ndarray:
        if self.excluded is None:
            return np.ones(self.collapsed.shape, dtype=bool)
        return ~np.asarray(self.excluded, dtype=bool)

    @property
    def n_excluded(self) -> int:
        """The number of grid points left out of the fractions (see ``excluded``)."""
        return int(np.sum(~self._counted()))

    @property
    def collapse_probability(self) -> float:
        """Fraction of the counted grid points (all but ``excluded``) that collapse, uniform
        weight per point; NaN when every point is excluded."""
        counted = self._counted()
        return float(np.mean(self.collapsed[counted])) if np.any(counted) else float("nan")

    def fractions(self) -> dict[int, float]:
        """The share of the counted grid points (all but ``excluded``) approaching each attractor.

        Returns
        -------
        dict of int -> float
            ``{attractor index: fraction of the counted points}``; -1: none.
        """
        counted = self._counted()
        kept = self.attractor[counted]
        return {int(k): float(np.mean(kept == k)) for k in np.unique(kept)}

    def _counts(self) -> str:
        names, counts = np.unique(self.status, return_counts=True)
        return ", ".join(f"{n}: {c}" for n, c in zip(names, counts))

    def __repr__(self) -> str:
        collapse = f", collapse probability {self.collapse_probability:.4g}" if self.collapse_states else ""
        if self.n_excluded:
            collapse += f" ({self.n_excluded} points on the collapse boundary excluded)"
        return (f"Basins({self.system_name or 'system'}: {self.y_values.size} x {self.x_values.size} grid over "
                f"({self.x}, {self.y}), t1={self.t1:g}, {len(self.attractors)} attractors{collapse}, "
                f"status={{{self._counts()}}})")

    def _repr_html_(self) -> str:
        share = self.fractions()
        rows = [[k, ", ".join(f"{n}={v:.6g}" for n, v in e.point.items()), e.kind, share.get(k, 0.0)]
                for k, e in enumerate(self.attractors)]
        rows.append([-1, "none (or it left)", "", share.get(-1, 0.0)])
        notes = [f"{self.y_values.size} x {self.x_values.size} grid over ({self.x}, {self.y}), t1 = {self.t1:g}",
                 f"status: {self._counts()}"]
        if self.collapse_states:
            notes.append(f"collapse probability {self.collapse_probability:.4g} (collapse states "
                         f"{', '.join(self.collapse_states)}; {self.n_excluded} points excluded: they start "
                         "on an invariant face of the collapse set)")
        return html_table(f"Basins of {self.system_name or 'the system'}", ["attractor", "point", "kind", "share of grid"],
                          rows, notes)


def basins(
    system: DynamicalSystem,
    grid: Mapping[str, Sequence[float]],
    params: Params,
    *,
    fixed: Mapping[str, float | str] | None = None,
    t1: float = 200.0,
    collapse: Collapse = Collapse(),
    backend: str = "jax",
    progress: bool = True,
) -> Basins:
    """Integrate from every point of ``grid`` = {x state: values, y state: values} (the other
    states from ``fixed``) to ``t1`` in one batched ``integrate`` call and record where each
    trajectory ends: the nearest stable equilibrium (see ``Basins.attractors``) and, where the system
    declares collapse states (``system.collapse_indices``), whether it collapsed.

    Initial states that start on the collapse set's boundary are marked ``excluded`` and left
    out of the collapse probability: every collapse state zero, or one of them zero where its
    right-hand side vanishes (an invariant face: for a symbolic system the face y_i = 0 must be
    invariant identically, for others the rate is checked at the point). An eigenmode's s = 0
    stays 0 (ds/dt = s (...)), so the s = 0 row of a grid collapses whatever the dynamics:
    counting it would measure the grid, not the basins.

    Parameters
    ----------
    system : derivations.DynamicalSystem
        The system.
    grid : mapping str -> sequence of float
        Exactly two state names -> 1-D arrays of at least two values (the first on the
        horizontal axis).
    params : mapping str -> float
        Parameter values.
    fixed : mapping str -> float or "manifold", optional
        {other state: real number or "manifold"}; "manifold" puts the state on the system's
        declared invariant manifold at each grid point (``system.manifold``).
    t1 : float
        Integration time.
    collapse : Collapse
        The collapse event that ends a run (its ``tol``, default ``COLLAPSE_TOL`` as for
        ``integrate``, is also the threshold below which every collapse state counts as
        collapsed at ``t1``).
    backend : str
        ``integrate``'s backend, "jax" or "scipy".
    progress : bool
        A progress bar for grids that take more than a few seconds (``integrate``'s;
        the grid runs in ``integrate``'s memory-bounded chunks, only end states are saved).

    Returns
    -------
    Basins
        Where each trajectory of the grid ended, and whether it collapsed.

    Raises
    ------
    TypeError
        A ``fixed`` value that is neither a real number nor "manifold"; ``collapse`` no Collapse.
    ValueError
        A stochastic system; ``grid`` not naming exactly two states, a ``fixed`` key on a grid
        axis or missing, "manifold" for a state the manifold does not give, bad grid values.
    """
    if not isinstance(collapse, Collapse):
        raise TypeError(f"collapse must be a dynamics.Collapse event (e.g. Collapse(1e-6)); got {type(collapse).__name__}")
    check_deterministic(system, "one path per start does not give its basins")
    names = tuple(system.state_names)
    xn, xv, yn, yv, fixed = _check_grid(system, grid, fixed)
    X, Y = np.meshgrid(xv, yv)
    y0 = _grid_starts(system, xn, yn, X, Y, fixed, params)
    sol = integrate(system, y0, (0.0, t1), params, t_eval=[t1], events=(collapse, "blow_up"),
                    backend=backend, progress=progress)
    final = sol.y[..., -1, :]
    idx = np.asarray(system.collapse_indices, dtype=int)
    excluded = _on_boundary(system, y0, params, idx)
    if idx.size:
        collapsed = (sol.status == "collapsed") | np.all(np.abs(final[..., idx]) < collapse.tol, axis=-1)
    else:
        collapsed = np.zeros(X.shape, dtype=bool)
    attractors, attractor = _nearest_attractors(system, params, final, sol.status, idx, collapsed)
    for a in (xv, yv, final, attractor, collapsed, excluded):
        a.setflags(write=False)
    shown = {k: float(v) for k, v in params.items() if np.ndim(v) == 0} if isinstance(params, Mapping) else {}
    return Basins(xn, yn, xv, yv, final, attractor, attractors, collapsed, sol.status, float(t1),
                  tuple(names[i] for i in idx), system.name, FrozenMap(shown), excluded)


def _check_grid(system: DynamicalSystem, grid: object, fixed: object):
    """(x name, x values, y name, y values, checked ``fixed``) of a grid naming two different
    states with finite 1-D values of at least two entries each."""
    names = tuple(system.state_names)
    if not isinstance(grid, Mapping) or len(grid) != 2:
        raise ValueError(f"grid must be a dict of exactly two state names -> values; states are {names}")
    (xn, xv), (yn, yv) = grid.items()
    for n in (xn, yn):
        if n not in names:
            raise ValueError(f"grid names unknown state {n!r}; states are {names}")
    if xn == yn:
        raise ValueError("grid must name two different states")
    fixed = check_fixed(system, xn, yn, fixed)
    check_not_text(f"grid[{xn!r}]", xv)
    check_not_text(f"grid[{yn!r}]", yv)
    try:
        xv, yv = np.asarray(xv, dtype=float), np.asarray(yv, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"grid values must be 1-D lists of real numbers; got {xn}: {xv!r}, {yn}: {yv!r}") from None
    if xv.ndim != 1 or yv.ndim != 1 or xv.size < 2 or yv.size < 2:
        raise ValueError("grid values must be 1-D arrays with at least two entries")
    if not (np.all(np.isfinite(xv)) and np.all(np.isfinite(yv))):
        raise ValueError("grid values must be finite")
    for name, values in ((xn, xv), (yn, yv)):
        interval = system.state_domain.get(name) if system.state_domain else None
        if interval is not None and not all(bool(interval.contains(float(v))) for v in values):
            raise ValueError(f"grid[{name!r}] has values outside the state domain {interval_words(name, interval)}: "
                             f"a grid of starts must lie inside it (got {values.min():g} .. {values.max():g})")
    return xn, xv, yn, yv, fixed


def _grid_starts(system: DynamicalSystem, xn: str, yn: str, X: np.ndarray, Y: np.ndarray, fixed: Mapping,
                 params: Params) -> np.ndarray:
    """(ny, nx, n_states) initial states: the grid on the two axes, the other states fixed or
    on the declared manifold at each grid point."""
    names = tuple(system.state_names)
    y0 = np.zeros(X.shape + (len(names),))
    y0[..., names.index(xn)], y0[..., names.index(yn)] = X, Y
    for n, v in fixed.items():
        if v != MANIFOLD:
            y0[..., names.index(n)] = v
    on_manifold = [n for n, v in fixed.items() if v == MANIFOLD]
    if on_manifold:
        from ._phase_plane import slice_expressions

        exprs = slice_expressions(system, xn, yn, fixed)
        sym = system.symbols
        prm = system.check_params(params)
        args = (sym[xn], sym[yn]) + tuple(system.params)
        for n in on_manifold:
            g = sp.lambdify(args, exprs[n], "numpy")
            y0[..., names.index(n)] = g(X, Y, *(float(prm[p]) for p in system.param_names))
    return y0


_NEWTON_ATTRACTOR_STATES = 8
"""Largest system served numerically whose attractors ``basins`` looks for by multi-start Newton
(a K-mode exact flow costs about 10 ms per evaluation; larger ones report no attractors)."""


def _nearest_attractors(system: DynamicalSystem, params: Params, final: np.ndarray, status: np.ndarray, idx: np.ndarray,
                        collapsed: np.ndarray) -> tuple[tuple, np.ndarray]:
    """The stable equilibria of a symbolic system, or those multi-start Newton finds for a system
    served numerically with at most ``_NEWTON_ATTRACTOR_STATES`` states, and, per grid point,
    the index of the one its trajectory ended near (-1: none, or blew up). Marks in
    ``collapsed`` (in place) the points that ended near a collapsed attractor."""
    attractors: tuple = ()
    attractor = np.full(final.shape[:-1], -1)
    if system.symbolic is not None or system.n_states <= _NEWTON_ATTRACTOR_STATES:
        attractors = tuple(e for e in equilibria(system, params) if e.stable)
        if attractors:
            # slow attractors (rates ~ eta) are approached, not reached, by t1: take the nearest
            dist = np.stack([np.linalg.norm(final - e.x, axis=-1) for e in attractors], axis=-1)
            attractor = np.argmin(dist, axis=-1)
            far = np.min(dist, axis=-1) > 0.1 * (1 + np.linalg.norm(final, axis=-1))
            attractor[far | (status == "blew_up")] = -1
            if idx.size:
                is_collapsed = np.array([bool(e.collapsed) for e in attractors])
                collapsed |= (attractor >= 0) & is_collapsed[np.maximum(attractor, 0)]
    return attractors, attractor


def _on_boundary(system: DynamicalSystem, y0: np.ndarray, params: Params, idx: np.ndarray) -> np.ndarray:
    """(ny, nx) True where every collapse state starts at zero, or one starts at zero on an
    invariant face (its rate vanishes there)."""
    shape = y0.shape[:-1]
    if not idx.size:
        return np.zeros(shape, dtype=bool)
    zero = y0[..., idx] == 0
    out = np.all(zero, axis=-1)
    sym = system.symbolic
    if sym is not None:
        faces = np.array([sp.simplify(sym.rhs[i].subs(sym.states[i], 0)) == 0 for i in idx])
        stays = np.broadcast_to(faces, zero.shape)
    else:
        rate = np.asarray(system.to_numpy()(0.0, y0, params))
        stays = rate[..., idx] == 0
    return out | np.any(zero & stays, axis=-1)
