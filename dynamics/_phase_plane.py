"""phase_plane(system, params): the data of a phase portrait on any 2-state slice of any system.

    d(x, y)/dt = (f_x, f_y)(x, y, others(x, y); params)

The plane is spanned by two states x and y; every other state is held at a number or put on the
system's declared invariant manifold (``system.manifold``, e.g. s = p**2/alpha_p). The result is
data: the vector field on a grid, both nullclines as polylines, the classified equilibria of the
plane, the stable and unstable manifolds of the saddles of the plane and a few orbits, all
integrated with ``dynamics.integrate``. ``plot_phase_plane`` only draws it.

A slice that holds some state at a number is not invariant: what it shows is the *frozen field*
(x, y) -> (f_x, f_y)(x, y, fixed), a 2-D system of its own. Its equilibria are the zeros of that
field (computed on the plane alone, so a slice of a large system costs a 2-D solve) and its
curves are frozen-field curves, not trajectories of the system.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from derivations import DynamicalSystem, FrozenMap, ODESystem, Params

from ._display import html_table
from ._equilibria import Equilibrium, equilibria
from ._events import Condition
from ._integrate import integrate
from ._prepare import symbolic_form
from ._tolerance import RTOL
from ._value import Value

__all__ = ["phase_plane", "PhasePlane", "Orbit", "SaddleManifold"]

MANIFOLD = "manifold"
"""The ``fixed`` value that puts a state on the system's declared invariant manifold."""

EPS_MANIFOLD = 1e-5
"""Offset of a manifold's start from its saddle, along the eigenvector, relative to the plot span."""

N_NULLCLINE = 300
"""Grid points per axis on which the nullclines are traced (marching squares, ``contourpy``)."""


def _frozen(a: Any) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Orbit(Value):
    """One integrated curve in the plane.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    points : numpy.ndarray
        (m, 2) (x, y) along the orbit, from its start to where it stopped.
    t : numpy.ndarray
        (m,) the time of each point (negative along a curve integrated backwards in time).
    status : str
        The ``Solution`` status of the integration ("finished", "event": it left the enlarged
        box, "blew_up", ...).
    """

    points: np.ndarray
    t: np.ndarray
    status: str

    @property
    def start(self) -> np.ndarray:
        """The first point, (x, y)."""
        return self.points[0]

    def __repr__(self) -> str:
        a, b = self.points[0], self.points[-1]
        return (f"Orbit({len(self.points)} points from ({a[0]:.4g}, {a[1]:.4g}) to ({b[0]:.4g}, {b[1]:.4g}), "
                f"t in [{np.min(self.t):.4g}, {np.max(self.t):.4g}], status={self.status!r})")


@dataclass(frozen=True, eq=False)
class SaddleManifold(Value):
    """One branch of the stable or unstable manifold of a saddle of the plane.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    saddle : int
        Index into ``PhasePlane.equilibria``.
    kind : str
        "stable" (points flowing into the saddle; integrated backwards) or "unstable".
    eigenvalue : float
        The eigenvalue of the plane's 2x2 Jacobian whose eigenvector it leaves along.
    direction : numpy.ndarray
        (2,) unit eigenvector, signed: the side of the saddle this branch leaves on.
    orbit : Orbit
        The branch; its first point is the saddle itself (t = -inf on an unstable branch,
        +inf on a stable one: the orbit's limit there).
    """

    saddle: int
    kind: str
    eigenvalue: float
    direction: np.ndarray
    orbit: Orbit

    @property
    def points(self) -> np.ndarray:
        """The branch's (m, 2) points (``orbit.points``)."""
        return self.orbit.points

    def __repr__(self) -> str:
        d = self.direction
        return (f"SaddleManifold({self.kind} branch of saddle {self.saddle}, eigenvalue {self.eigenvalue:.4g}, "
                f"direction ({d[0]:.4g}, {d[1]:.4g}), {len(self.orbit.points)} points, status={self.orbit.status!r})")


@dataclass(frozen=True, eq=False)
class PhasePlane(Value):
    """A phase plane as data (what ``plot_phase_plane`` draws).

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    system_name : str
        ``system.name``.
    x, y : str
        The state names on the axes.
    params : mapping str -> float
        {parameter: value} used.
    fixed : mapping str -> float or str
        The slice: {other state: number or "manifold"} (empty for 2-state systems).
    invariant : bool
        True when the plane is invariant (2 states, or every other state on the declared
        manifold): then orbits and saddle manifolds in the plane are true orbits. On a
        non-invariant slice everything is of the frozen field (the other states held at
        ``fixed``): its zeros, its curves (``trajectories``, "frozen-field curves"), and no
        saddle manifolds are computed.
    xlim, ylim : tuple of float
        The plotted window.
    grid_x, grid_y : numpy.ndarray
        (nx,), (ny,) grid.
    u, v : numpy.ndarray
        (ny, nx) dx/dt and dy/dt on it (NaN at poles).
    x_nullcline, y_nullcline : tuple of numpy.ndarray
        Polylines (each (m, 2)) where dx/dt = 0 and where dy/dt = 0 (zeros of the numerators:
        a pole of a rational field is no nullcline).
    equilibria : tuple of Equilibrium
        On an invariant plane the classified equilibria of the whole system that lie on it; on
        a non-invariant slice the zeros of the frozen field, classified as equilibria of that
        2-D field (coordinates (x, y) only; they are equilibria of the whole system only where
        the held states' rates vanish too).
    points : numpy.ndarray
        (k, 2) their (x, y) coordinates.
    manifolds : tuple of SaddleManifold
        Stable and unstable manifold branches of the saddles of the plane.
    trajectories : tuple of Orbit
        A few orbits from seeded random starts in the window (on a non-invariant slice,
        frozen-field curves: see ``curve_label``).
    bounds : tuple of (float, float)
        The state domain of x and of y (``system.state_bounds()``).
    on_manifold : mapping str -> sympy.Expr
        {other state: its graph on the declared manifold} for the states ``fixed`` puts on
        the manifold (what the title writes for the slice).
    """

    system_name: str
    x: str
    y: str
    params: Mapping[str, float]
    fixed: Mapping[str, float | str]
    invariant: bool
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    grid_x: np.ndarray
    grid_y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    x_nullcline: tuple[np.ndarray, ...]
    y_nullcline: tuple[np.ndarray, ...]
    equilibria: tuple[Equilibrium, ...]
    points: np.ndarray
    manifolds: tuple[SaddleManifold, ...]
    trajectories: tuple[Orbit, ...]
    bounds: tuple[tuple[float, float], tuple[float, float]] = field(default=((-np.inf, np.inf), (-np.inf, np.inf)))
    on_manifold: Mapping[str, sp.Expr] = field(default_factory=FrozenMap)

    @property
    def curve_label(self) -> str:
        """What ``trajectories`` are: "trajectories" on an invariant plane, "frozen-field
        curves" on a slice that holds states at numbers."""
        return "trajectories" if self.invariant else "frozen-field curves"

    @property
    def title(self) -> str:
        """Plain text: the system name, then the parameter values and the slice (the held
        states' values, or "s on its manifold s = p**2/alpha_p"). ``plot_phase_plane`` writes
        the same in mathtext."""
        vals = ", ".join(f"{k} = {v:.4g}" for k, v in self.params.items())
        sl = ", ".join(f"{k} = {v:.4g}" if not isinstance(v, str)
                       else f"{k} on its manifold" + (f" {k} = {sp.sstr(self.on_manifold[k])}" if k in self.on_manifold else "")
                       for k, v in self.fixed.items())
        head = self.system_name or f"({self.x}, {self.y}) plane"
        return head + ("\n" + vals if vals else "") + ("; " + sl if sl else "")

    def __repr__(self) -> str:
        title = self.title.replace("\n", "; ")
        return (f"PhasePlane({title}; {self.x} in [{self.xlim[0]:.4g}, {self.xlim[1]:.4g}] by {self.y} in "
                f"[{self.ylim[0]:.4g}, {self.ylim[1]:.4g}], {self.grid_y.size} x {self.grid_x.size} grid, "
                f"{len(self.equilibria)} equilibria, {len(self.manifolds)} manifold branches, "
                f"{len(self.trajectories)} {'orbits' if self.invariant else 'frozen-field curves'}, "
                f"invariant={self.invariant})")

    def _repr_html_(self) -> str:
        rows = [[", ".join(f"{n}={v:.6g}" for n, v in e.point.items()), e.kind, e.stable] for e in self.equilibria]
        notes = [f"{self.x} in [{self.xlim[0]:.4g}, {self.xlim[1]:.4g}] by {self.y} in "
                 f"[{self.ylim[0]:.4g}, {self.ylim[1]:.4g}]; {len(self.manifolds)} saddle-manifold branches, "
                 f"{len(self.trajectories)} {'orbits' if self.invariant else 'frozen-field curves'}; "
                 + ("an invariant plane" if self.invariant else
                    "a slice of the frozen field (the other states held fixed): its equilibria and curves "
                    "are those of the 2-D frozen field, not of the whole system")]
        return html_table(f"Phase plane: {self.title}", ["equilibrium", "kind", "stable"], rows, notes)


# -- input checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _LeaveWindow:
    """fn(t, z, params) of the event that ends an orbit: positive inside a rounded box
    (superellipse of power 8) of centre (cx, cy) and half-widths (hx, hy), read from the
    parameters ``names``; clipped so that far-out states give -511, not an overflow (``clip``:
    NumPy and JAX). The window travels as parameters, so one compiled solver serves every
    window and every call on the same plane."""

    names: tuple[str, str, str, str]

    def __call__(self, t, z, params):
        cx, cy, hx, hy = (params[n] for n in self.names)
        return 1.0 - (((z[0] - cx) / hx).clip(-2.0, 2.0)) ** 8 - (((z[1] - cy) / hy).clip(-2.0, 2.0)) ** 8


def _fresh_names(taken: set[str], *stems: str) -> tuple[str, ...]:
    """Parameter names for the plane's own parameters that no state or parameter of the
    system uses."""
    out = []
    for stem in stems:
        name = f"plane_{stem}_"
        while name in taken:
            name += "_"
        out.append(name)
    return tuple(out)


def check_fixed(system: Any, x: str, y: str, fixed: Any) -> dict[str, Any]:
    """``fixed`` checked against the states off the (x, y) plane: {state: float or "manifold"}."""
    names = system.state_names
    if fixed is None:
        fixed = {}
    if not isinstance(fixed, Mapping):
        raise TypeError(f"fixed must be a mapping {{state: number or 'manifold'}}; got {type(fixed).__name__}")
    out: dict[str, Any] = {}
    for n, v in fixed.items():
        if n not in names:
            raise ValueError(f"fixed names {n!r}, not a state of this system; states are {names}")
        if n in (x, y):
            raise ValueError(f"fixed[{n!r}]: {n} is on an axis of the plane ({x}, {y}); fixed holds only the states off it")
        if isinstance(v, str):
            if v != MANIFOLD:
                raise TypeError(f"fixed[{n!r}] must be a real number or 'manifold'; got the string {v!r}")
            out[n] = MANIFOLD
            continue
        if isinstance(v, bool) or not isinstance(v, (numbers.Real, sp.Number)) or (isinstance(v, sp.Number) and not v.is_real):
            raise TypeError(f"fixed[{n!r}] must be a real number or 'manifold'; got {type(v).__name__} {v!r}")
        f = float(v)
        if not np.isfinite(f):
            raise ValueError(f"fixed[{n!r}] must be finite; got {v!r}")
        out[n] = f
    man = system.manifold
    for n, v in out.items():
        if v != MANIFOLD:
            continue
        if man is None:
            raise ValueError(f"fixed[{n!r}] = 'manifold', but {system.name or 'this system'} declares no invariant manifold")
        if n not in man:
            raise ValueError(f"fixed[{n!r}] = 'manifold': only {', '.join(man)} can be put on the manifold "
                             f"({', '.join(f'{k} = {e}' for k, e in man.items())})")
    others = [n for n in names if n not in (x, y)]
    missing = [n for n in others if n not in out]
    if missing:
        hint = ""
        if system.manifold is not None:
            hint = f" (a state of the system's manifold {dict(system.manifold)} may be 'manifold')"
        raise ValueError(f"fixed must give the states off the plane: missing {missing}{hint}")
    return {n: out[n] for n in others}


def slice_expressions(system: ODESystem, x: str, y: str, fixed: Mapping[str, Any]) -> dict[str, sp.Expr]:
    """Each off-plane state as an expression in x, y and the parameters."""
    sym = system.symbols
    numeric = {sym[n]: sp.Float(v) for n, v in fixed.items() if v != MANIFOLD}
    exprs: dict[str, sp.Expr] = {}
    for n, v in fixed.items():
        exprs[n] = sp.Float(v) if v != MANIFOLD else sp.sympify(system.manifold[n])
    plane = {sym[x], sym[y]}
    for _ in range(len(fixed) + 1):  # manifold expressions may refer to other off-plane states
        exprs = {n: e.subs(numeric).subs({sym[m]: exprs[m] for m in fixed if m != n}) for n, e in exprs.items()}
    for n, e in exprs.items():
        left = sorted(str(s) for s in e.free_symbols if s in set(system.states) - plane)
        if left:
            raise ValueError(f"fixed[{n!r}] = 'manifold' puts {n} = {system.manifold[n]}, which needs "
                             f"{', '.join(left)} on one of the axes (x, y = {x}, {y})")
    return exprs


def check_window(lim: Any, what: str) -> tuple[float, float] | None:
    if lim is None:
        return None
    try:
        lo, hi = (float(v) for v in lim)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (low, high) of numbers; got {lim!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{what} must be finite with low < high; got {lim!r}")
    return lo, hi


def _check_count(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}; got {value!r}")
    return int(value)


# -- the analysis --------------------------------------------------------------------------------


def phase_plane(
    system: DynamicalSystem,
    params: Params,
    *,
    x: str | None = None,
    y: str | None = None,
    fixed: Mapping[str, float | str] | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    n_grid: int = 41,
    trajectories: int = 6,
    manifolds: bool = True,
    t1: float = 60.0,
    backend: str = "jax",
    seed: int = 0,
) -> PhasePlane:
    """The phase plane of ``system`` in the (x, y) plane, as data.

    On the slice, d(x, y)/dt = (f_x, f_y)(x, y, others(x, y); params) with the other states
    others = ``fixed`` (numbers, or "manifold": the system's declared invariant graph, e.g.
    s = p**2/alpha_p). Computes the field on an ``n_grid`` x ``n_grid`` grid, the nullclines
    f_x = 0 and f_y = 0 as polylines (marching squares on a finer grid, ``contourpy``), the
    equilibria of the plane (``equilibria``, classified): on an invariant plane those of the
    whole system that lie on it, on a slice holding states at numbers the zeros of the 2-D
    frozen field alone (the whole system's equilibria are not enumerated: a slice of a
    12-state system is a 2-D solve), and, with ``dynamics.integrate``: ``trajectories`` orbits
    (frozen-field curves on such a slice) from seeded random starts in the window and,
    where the plane is invariant and ``manifolds``, both branches of the stable (backwards in
    time) and unstable manifolds of every saddle of the plane's 2x2 Jacobian that lies within
    the window enlarged by half its size on each side. Orbits stop on
    leaving the window enlarged by half its size on each side, on blow-up, or at ``t1``.

    Parameters
    ----------
    system : derivations.DynamicalSystem with explicit equations (``symbolic``; a K-mode
        ModeSystem through ``to_ode_system()``)
        Any system with at least two states.
    params : mapping parameter name -> real number (checked by ``system.check_params``).
    x, y : state names on the axes; default the first two states.
    fixed : mapping {other state: real number or "manifold"}; needed for every other state.
    xlim, ylim : the window; default from the equilibria on the slice (40% padding), clipped to
        the state domain (``system.state_bounds()``, e.g. s >= 0 gives the lower limit 0).
    n_grid : grid points per axis of the vector field (>= 2).
    trajectories : int
        Number of orbits (>= 0).
    manifolds : bool
        Compute saddle manifolds.
    t1 : float
        Horizon of each orbit, run from t = 0 (> 0); manifolds get up to 20 t1, scaled by
        1/``|eigenvalue|``.
    backend : ``integrate``'s backend, "jax" (default) or "scipy" (LSODA: no compilation for
        a handful of orbits).
    seed : seed of the random orbit starts.

    Returns
    -------
    PhasePlane
        The field, nullclines, equilibria, orbits and manifolds of the plane.

    Raises
    ------
    TypeError
        ``system`` is no ODESystem; ``fixed`` is no mapping or one of its values is neither a
        real number nor "manifold" (e.g. the string '1'); ``manifolds`` is not a bool, ``seed``
        not an int.
    ValueError
        Fewer than two states, unknown or equal axis states, a ``fixed`` key naming an axis
        state or no state, missing ``fixed`` values, "manifold" for a state the manifold does
        not give (or whose graph needs a state that is not on an axis), bad limits, counts or
        t1, bad params (from ``check_params``).
    """
    system = symbolic_form(system, "phase_plane")
    x, y = _check_axes(system, x, y)
    fixed = check_fixed(system, x, y, fixed)
    prm = system.check_params(params)
    prm = {k: float(v) for k, v in prm.items()}
    xlim, ylim = check_window(xlim, "xlim"), check_window(ylim, "ylim")
    n_grid = _check_count(n_grid, "n_grid", 2)
    trajectories = _check_count(trajectories, "trajectories", 0)
    t1 = _check_orbit_options(t1, manifolds, seed)

    plane = _Plane.build(system, x, y, fixed, prm)
    bounds = system.state_bounds()
    invariant = all(v == MANIFOLD for v in fixed.values())
    on_slice, pts = _equilibria_on_slice(system, prm, plane, invariant)
    xlim = xlim or default_window(pts[:, 0], bounds[plane.ix])
    ylim = ylim or default_window(pts[:, 1], bounds[plane.iy])
    gx, gy, F, nulls = _field_and_nullclines(plane, prm, xlim, ylim, n_grid)
    run = _OrbitRunner.build(plane, prm, xlim, ylim, backend)

    orbits = _random_orbits(run, _within(xlim, bounds[plane.ix]), _within(ylim, bounds[plane.iy]), trajectories, t1, seed)
    branches: list[SaddleManifold] = []
    if manifolds and invariant and on_slice:
        branches = _saddle_manifolds(plane, run, on_slice, pts, t1)

    return PhasePlane(
        system_name=system.name, x=x, y=y, params=FrozenMap(prm), fixed=FrozenMap(fixed), invariant=invariant,
        xlim=tuple(map(float, xlim)), ylim=tuple(map(float, ylim)), grid_x=_frozen(gx), grid_y=_frozen(gy),
        u=_frozen(F[..., 0]), v=_frozen(F[..., 1]),
        x_nullcline=tuple(_frozen(c) for c in nulls[0]), y_nullcline=tuple(_frozen(c) for c in nulls[1]),
        equilibria=tuple(on_slice), points=_frozen(pts), manifolds=tuple(branches), trajectories=tuple(orbits),
        bounds=(tuple(bounds[plane.ix]), tuple(bounds[plane.iy])),
        on_manifold=FrozenMap({n: sp.sympify(system.manifold[n]) for n, v in fixed.items() if v == MANIFOLD}),
    )


def _check_axes(system: ODESystem, x: Any, y: Any) -> tuple[str, str]:
    """The axis states (default: the first two states), checked to be two different states."""
    names = system.state_names
    if len(names) < 2:
        raise ValueError(f"phase_plane needs at least two states; {system.name or 'this system'} has {names} "
                         "(draw a one-state system with plot_flow_1d)")
    x = names[0] if x is None else x
    if y is None:
        y = next((n for n in names if n != x), names[1])
    for n, what in ((x, "x"), (y, "y")):
        if not isinstance(n, str) or n not in names:
            raise ValueError(f"{what}={n!r}: {n!r} is not a state of this system; states are {names}")
    if x == y:
        raise ValueError(f"x and y must be different states; both are {x!r}")
    return x, y


def _check_orbit_options(t1: Any, manifolds: Any, seed: Any) -> float:
    """The orbit horizon ``t1`` as a float, after checking it, ``manifolds`` and ``seed``."""
    if isinstance(t1, bool) or not isinstance(t1, numbers.Real) or not np.isfinite(t1) or t1 <= 0:
        raise ValueError(f"t1 must be a positive finite number; got {t1!r}")
    t1 = float(t1)
    if not isinstance(manifolds, (bool, np.bool_)):
        raise TypeError(f"manifolds must be True or False; got {type(manifolds).__name__} {manifolds!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got {type(seed).__name__} {seed!r}")
    return t1


@dataclass(frozen=True)
class _Plane:
    """The (x, y) slice of a system as numerics: the plane's own ODESystem, the flow the orbits
    follow (the plane's times a direction parameter, +1 forwards and -1 backwards in time for
    stable manifolds, with the window as parameters, see _LeaveWindow), and NumPy functions of
    (x, y, *params) for the other states and the numerators of the plane's right-hand sides."""

    names: tuple[str, ...]
    ix: int
    iy: int
    plane_sys: ODESystem
    flow_sys: ODESystem
    extra: tuple[str, ...]
    args: tuple[sp.Symbol, ...]
    others: tuple[tuple[int, Any], ...]
    numer: tuple[Any, ...]
    pvals: tuple[float, ...]

    @classmethod
    def build(cls, system: ODESystem, x: str, y: str, fixed: Mapping[str, Any], prm: Mapping[str, float]) -> _Plane:
        names = system.state_names
        sym = system.symbols
        sx, sy = sym[x], sym[y]
        ix, iy = names.index(x), names.index(y)
        off = slice_expressions(system, x, y, fixed)
        to_plane = {sym[n]: e for n, e in off.items()}
        rhs = [sp.sympify(system.rhs[i]).subs(to_plane) for i in (ix, iy)]
        dom = system.state_domain or {}
        plane_sys = ODESystem((sx, sy), system.params, rhs, param_domain=system.param_domain,
                              state_domain={n: dom[n] for n in (x, y) if n in dom}, name=f"{system.name} ({x}, {y})")
        extra = _fresh_names(set(names) | set(system.param_names), "direction", "cx", "cy", "hx", "hy")
        direction = sp.Symbol(extra[0])
        flow_sys = ODESystem((sx, sy), tuple(system.params) + tuple(sp.Symbol(n) for n in extra),
                             [direction * r for r in rhs], param_domain=system.param_domain,
                             name=f"{system.name} ({x}, {y})")
        args = (sx, sy) + tuple(system.params)
        others = tuple((names.index(n), sp.lambdify(args, e, "numpy")) for n, e in off.items())
        numer = tuple(sp.lambdify(args, sp.fraction(sp.together(r))[0], "numpy") for r in rhs)
        return cls(tuple(names), ix, iy, plane_sys, flow_sys, extra, args, others, numer,
                   tuple(prm[n] for n in system.param_names))

    def full_state(self, px, py) -> np.ndarray:
        """The full state at plane points (px, py): the other states from ``fixed``."""
        px, py = np.broadcast_arrays(np.asarray(px, float), np.asarray(py, float))
        out = np.zeros(px.shape + (len(self.names),))
        out[..., self.ix], out[..., self.iy] = px, py
        for i, g in self.others:
            out[..., i] = g(px, py, *self.pvals)
        return out


def _equilibria_on_slice(system: ODESystem, prm: Mapping[str, float], plane: _Plane,
                         invariant: bool) -> tuple[list, np.ndarray]:
    """The equilibria of the plane and their (x, y) points: on an invariant plane those of the
    whole system that lie on it; on a slice holding states at numbers the zeros of the frozen
    field, equilibria of the plane's own 2-D system (the whole system is not solved)."""
    if not invariant:
        found = list(equilibria(plane.plane_sys, prm))
        return found, np.array([e.x for e in found], dtype=float).reshape(-1, 2)
    on_slice = []
    for e in equilibria(system, prm):
        ref = plane.full_state(e.x[plane.ix], e.x[plane.iy])
        if np.allclose(ref, e.x, rtol=RTOL, atol=RTOL):
            on_slice.append(e)
    pts = np.array([[e.x[plane.ix], e.x[plane.iy]] for e in on_slice]).reshape(-1, 2)
    return on_slice, pts


def _field_and_nullclines(plane: _Plane, prm: Mapping[str, float], xlim, ylim, n_grid: int):
    """The grid axes, the field (u, v) on the grid, and the zero lines of both numerators on a
    finer grid (``N_NULLCLINE`` points per axis)."""
    field_fn = plane.plane_sys.to_numpy(checked=False)
    gx, gy = np.linspace(*xlim, n_grid), np.linspace(*ylim, n_grid)
    X, Y = np.meshgrid(gx, gy)
    with np.errstate(all="ignore"):
        F = np.asarray(field_fn(0.0, np.stack([X, Y], axis=-1), prm), dtype=float)
        F = np.where(np.isfinite(F), F, np.nan)
        fx, fy = np.linspace(*xlim, N_NULLCLINE), np.linspace(*ylim, N_NULLCLINE)
        FX, FY = np.meshgrid(fx, fy)
        nulls = [_zero_lines(fx, fy, np.broadcast_to(np.asarray(g(FX, FY, *plane.pvals), dtype=float), FX.shape))
                 for g in plane.numer]
    return gx, gy, F, nulls


@dataclass(frozen=True)
class _OrbitRunner:
    """Integrates orbits of the plane's flow that stop on leaving the window enlarged by half
    its size on each side, on blow-up, or at the horizon."""

    plane: _Plane
    prm: Mapping[str, float]
    window: Mapping[str, float]
    leave: _LeaveWindow
    span: float
    backend: str

    @classmethod
    def build(cls, plane: _Plane, prm: Mapping[str, float], xlim, ylim, backend: str) -> _OrbitRunner:
        span = max(xlim[1] - xlim[0], ylim[1] - ylim[0])
        # the window enlarged by half its size on each side: centre and half-widths
        window = dict(zip(plane.extra[1:], (0.5 * (xlim[0] + xlim[1]), 0.5 * (ylim[0] + ylim[1]),
                                            xlim[1] - xlim[0], ylim[1] - ylim[0])))
        return cls(plane, prm, window, _LeaveWindow(plane.extra[1:]), span, backend)

    def __call__(self, sign: float, starts, horizon: float, n_t: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
        """(points, times, status) of each orbit from ``starts``, run in direction ``sign``."""
        events = ("blow_up", Condition(self.leave, name="leave_window"))
        sol = integrate(self.plane.flow_sys, np.asarray(starts, float), (0.0, horizon),
                        {**self.prm, **self.window, self.plane.extra[0]: sign},
                        t_eval=_orbit_times(horizon, n_t), events=events, backend=self.backend,
                        solver="LSODA" if self.backend == "scipy" else None, rtol=1e-8,
                        atol=1e-10 * max(1.0, self.span))
        out = []
        for b in range(len(starts)):
            keep = sol.valid[b]
            p, t = sol.y[b][keep], sol.t[keep]
            if not keep.all():  # the state where it stopped
                p, t = np.vstack([p, sol.final[b]]), np.append(t, sol.t_end[b])
            out.append((p, t, str(sol.status[b])))
        return out


def _within(lim, bound) -> tuple[float, float]:
    """The window's side cut to the state's domain: random orbits start inside the domain."""
    lo, hi = max(float(lim[0]), float(bound[0])), min(float(lim[1]), float(bound[1]))
    return (lo, hi) if lo < hi else (float(lim[0]), float(lim[1]))


def _random_orbits(run: _OrbitRunner, xlim, ylim, trajectories: int, t1: float, seed: int) -> list[Orbit]:
    """``trajectories`` forward orbits from seeded uniform starts in the window (cut to the
    state domain by the caller)."""
    orbits: list[Orbit] = []
    if trajectories:
        rng = np.random.default_rng(seed)
        starts = np.column_stack([rng.uniform(*xlim, trajectories), rng.uniform(*ylim, trajectories)])
        with np.errstate(all="ignore"):
            for p, t, st in run(1.0, starts, t1, 600):
                orbits.append(Orbit(_frozen(p), _frozen(t), st))
    return orbits


def _saddle_manifolds(plane: _Plane, run: _OrbitRunner, on_slice: list, pts: np.ndarray,
                      t1: float) -> list[SaddleManifold]:
    """Both branches of the stable and unstable manifolds of every saddle of the plane's 2x2
    Jacobian that lies inside the enlarged window."""
    branches: list[SaddleManifold] = []
    jac = sp.lambdify(plane.args, plane.plane_sys.jacobian, "numpy")
    for k, e in enumerate(on_slice):
        if run.leave(0.0, pts[k], run.window) <= 0:
            continue  # a saddle outside the enlarged window: its branches would start outside
        J = np.asarray(jac(e.x[plane.ix], e.x[plane.iy], *plane.pvals), dtype=float)
        if not np.all(np.isfinite(J)):
            continue
        vals, vecs = np.linalg.eig(J)
        if np.any(np.abs(vals.imag) > 0) or not (vals.real.min() < 0 < vals.real.max()):
            continue  # not a saddle of the plane
        for lam, vec in zip(vals.real, vecs.T.real):
            unstable = lam > 0
            vec = vec / np.linalg.norm(vec)
            # leaving an eps-neighbourhood along a direction of rate lam takes ~ ln(1/eps)/|lam|;
            # then the branch needs the time of the slower flow, ~ t1
            t_man = min(max((np.log(1e5) + 8.0) / max(abs(lam), 1e-3), t1), 20 * t1)
            starts = [pts[k] + EPS_MANIFOLD * run.span * vec, pts[k] - EPS_MANIFOLD * run.span * vec]
            with np.errstate(all="ignore"):
                res = run(1.0 if unstable else -1.0, starts, t_man, 800)
            for sign, (p, t, st) in zip((1.0, -1.0), res):
                orbit = Orbit(_frozen(np.vstack([pts[k], p])), _frozen((1 if unstable else -1) * np.append(-np.inf, t)), st)
                branches.append(SaddleManifold(k, "unstable" if unstable else "stable", float(lam),
                                               _frozen(sign * vec), orbit))
    return branches


def _orbit_times(t1: float, n: int) -> np.ndarray:
    """Saved times for an orbit: half log-spaced (fast transients near t = 0 stay smooth),
    half evenly spaced."""
    return np.unique(np.concatenate([[0.0], np.geomspace(1e-5 * t1, t1, n // 2), np.linspace(0.0, t1, n // 2)]))


def default_window(values: np.ndarray, bound: tuple[float, float]) -> tuple[float, float]:
    """The range of ``values`` padded by 40% on each side (room for the orbits around the
    outermost equilibria), clipped to the state's domain."""
    values = values[np.isfinite(values)]
    lo_b, hi_b = bound
    if values.size:
        lo, hi = float(values.min()), float(values.max())
    else:  # nothing to frame: the unit interval, moved inside the domain
        lo, hi = 0.0, 1.0
    span = hi - lo
    if span <= RTOL * max(1.0, abs(lo), abs(hi)):
        span = max(1.0, abs(lo))
        lo, hi = lo - 0.5 * span, hi + 0.5 * span
    lo, hi = lo - 0.4 * span, hi + 0.4 * span
    if np.isfinite(lo_b) and lo < lo_b:
        lo, hi = lo_b, max(hi, lo_b + span)
    if np.isfinite(hi_b) and hi > hi_b:
        lo, hi = min(lo, hi_b - span), hi_b
        if np.isfinite(lo_b):
            lo = max(lo, lo_b)
    if not lo < hi:  # a degenerate domain (a point): a unit window around it
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _zero_lines(gx: np.ndarray, gy: np.ndarray, z: np.ndarray) -> list[np.ndarray]:
    """Polylines where z = 0 on the grid (marching squares), NaN cells left out."""
    import contourpy

    z = np.ma.masked_invalid(z)
    if np.ma.count(z) == 0 or np.all(z == 0):
        return []
    gen = contourpy.contour_generator(gx, gy, z, line_type=contourpy.LineType.Separate)
    return [np.asarray(line, dtype=float) for line in gen.lines(0.0) if len(line) >= 2]
