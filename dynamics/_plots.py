"""Figures: phase portraits, 1-D flows, bifurcation diagrams, regime maps, basins, spectra.

Analyses return data (``phase_plane`` -> PhasePlane, ``bifurcation`` -> Bifurcation, ``regimes``
-> Regimes, ``basins`` -> Basins); the ``plot_*`` functions only draw those objects.
``portrait`` and the old call ``plot_bifurcation(system, param, values, params)`` compute the
data first. Every function draws on ``ax`` (or a new Figure when ax is None) and returns
(fig, ax); none calls pyplot.show, and figures are created without pyplot, so they work headless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from derivations import ODESystem

from ._basins import Basins
from ._bifurcation import Bifurcation, bifurcation
from ._equilibria import equilibria
from ._phase_plane import PhasePlane, phase_plane
from ._roots import Regimes

__all__ = ["portrait", "plot_phase_plane", "plot_flow_1d", "plot_bifurcation", "plot_regimes", "plot_basins",
           "plot_spectra", "KIND_STYLE"]

KIND_STYLE = {
    "stable node": ("tab:green", True),
    "stable focus": ("darkgreen", True),
    "non-hyperbolic stable node": ("olive", True),
    "non-hyperbolic stable node (boundary)": ("olive", True),
    "saddle": ("tab:orange", False),
    "non-hyperbolic saddle": ("darkorange", False),
    "unstable node": ("tab:red", False),
    "unstable focus": ("darkred", False),
    "non-hyperbolic unstable node": ("firebrick", False),
    "semi-stable": ("tab:purple", False),
    "centre": ("tab:blue", False),
    "non-hyperbolic centre": ("tab:blue", False),
    "non-isolated": ("0.4", False),
    "non-hyperbolic (undecided)": ("black", False),
}
"""Marker colour and fill (filled = stable) per equilibrium kind."""

REGIME_COLORS = ("#d9d9d9", "#9ecae1", "#74c476", "#fc9272", "#fdd0a2", "#bcbddc", "#fdae6b", "#c7e9c0")

BIFURCATION_MARKERS = {"fold": "x", "transcritical": "o", "pitchfork": "^", "hopf": "*", "touch": "s"}
"""Marker per bifurcation kind (any other kind: a diamond)."""


def _axes(ax, figsize=(5.5, 4.5)):
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.add_subplot()
        return fig, ax
    return ax.figure, ax


def _mark(ax, x, y, kind, label_seen: set, size=8, zorder=5, clip_on=True):
    color, filled = KIND_STYLE.get(kind, ("black", False))
    label = kind if kind not in label_seen else None
    label_seen.add(kind)
    ax.plot([x], [y], "o", ms=size, mec=color, mfc=color if filled else "white", mew=1.8,
            zorder=zorder, label=label, linestyle="none", gid="equilibrium", clip_on=clip_on)


def _require(obj: Any, cls: type, arg: str, source: str) -> None:
    if not isinstance(obj, cls):
        raise TypeError(f"{arg} must be a {cls.__name__} (from {source}); got {type(obj).__name__}")


# -- phase portrait ----------------------------------------------------------------------


def portrait(
    system: Any,
    params: Mapping[str, float],
    *,
    x: str | None = None,
    y: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    ax: Any = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    n_grid: int = 41,
    trajectories: int = 6,
    manifolds: bool = True,
    t_max: float = 60.0,
):
    """Phase portrait of any system in the (x, y) plane: ``plot_phase_plane(phase_plane(...))``.

    Streamlines, both nullclines, every equilibrium on the slice marked and coloured by kind
    (legend), stable (dotted) and unstable (solid) manifolds of saddles, and a few
    trajectories. States off the plane are held at ``fixed`` values (a number, or "manifold"
    for a state of the system's declared invariant manifold). See ``phase_plane`` for the
    arguments and the errors raised. Returns (fig, ax).
    """
    plane = phase_plane(system, params, x=x, y=y, fixed=fixed, xlim=xlim, ylim=ylim, n_grid=n_grid,
                        trajectories=trajectories, manifolds=manifolds, t_max=t_max)
    return plot_phase_plane(plane, ax=ax)


def plot_phase_plane(plane: PhasePlane, *, ax: Any = None):
    """Draw a ``PhasePlane``: streamlines of its field (grey), the nullclines (dx/dt = 0 blue
    solid, dy/dt = 0 red dashed), its trajectories (cyan, start dots), saddle manifolds (black:
    unstable solid, stable dotted) and its equilibria coloured by kind (``KIND_STYLE``; filled =
    stable). The legend sits outside the axes, right, so that it covers no data.

    Raises TypeError unless ``plane`` is a PhasePlane. Returns (fig, ax)."""
    _require(plane, PhasePlane, "plane", "dynamics.phase_plane")
    fig, ax = _axes(ax)
    u, v = np.ma.masked_invalid(plane.u), np.ma.masked_invalid(plane.v)
    if np.ma.count(u) and np.any(np.abs(u) + np.abs(v) > 0):
        ax.streamplot(plane.grid_x, plane.grid_y, u, v, color="0.7", density=1.1, linewidth=0.7, arrowsize=0.8,
                      zorder=1)
    for lines, style, state in ((plane.x_nullcline, dict(color="tab:blue", ls="-"), plane.x),
                                (plane.y_nullcline, dict(color="tab:red", ls="--"), plane.y)):
        for k, line in enumerate(lines):
            ax.plot(line[:, 0], line[:, 1], lw=1.4, zorder=2, label=f"d{state}/dt = 0" if k == 0 else None,
                    gid="nullcline", **style)
    for k, orbit in enumerate(plane.trajectories):
        ax.plot(orbit.points[:, 0], orbit.points[:, 1], color="tab:cyan", lw=1.0, alpha=0.9, zorder=3,
                label="trajectories" if k == 0 else None, gid="trajectory")
        ax.plot([orbit.start[0]], [orbit.start[1]], ".", color="tab:cyan", ms=4, zorder=3)
    seen_kind: set = set()
    for m in sorted(plane.manifolds, key=lambda m: m.kind != "unstable"):  # legend: unstable first
        label = f"{m.kind} manifold" if m.kind not in seen_kind else None
        seen_kind.add(m.kind)
        ax.plot(m.points[:, 0], m.points[:, 1], color="k", lw=1.6, ls="-" if m.kind == "unstable" else ":", zorder=4,
                label=label, gid=f"{m.kind} manifold")
    (x0, x1), (y0, y1) = plane.xlim, plane.ylim
    seen: set = set()
    tol_x, tol_y = 1e-9 * (x1 - x0), 1e-9 * (y1 - y0)
    for e, (px, py) in zip(plane.equilibria, plane.points):
        inside = x0 - tol_x <= px <= x1 + tol_x and y0 - tol_y <= py <= y1 + tol_y
        _mark(ax, px, py, e.kind, seen, clip_on=not inside)  # a point on the window's edge is drawn whole
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel(plane.x)
    ax.set_ylabel(plane.y)
    ax.set_title(plane.title, fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, framealpha=0.85)
    return fig, ax


# -- one-dimensional flows ---------------------------------------------------------------


def _one_state(system: Any, caller: str) -> ODESystem:
    """The system itself if it has one state, else its restriction to the declared manifold
    if that has one state; otherwise a ValueError naming what would serve."""
    if not isinstance(system, ODESystem):
        raise TypeError(f"system must be a derivations.ODESystem; got {type(system).__name__}")
    if system.n_states == 1:
        return system
    label = system.name or "this system"
    if system.manifold is not None:
        reduced = system.reduce()
        if reduced.n_states == 1:
            return reduced
        rest = [n for n in reduced.state_names][1:]
        raise ValueError(
            f"{caller} needs a one-state system or a one-state reduced system; {label} reduces (system.reduce()) to "
            f"the states {reduced.state_names}: hold the others as parameters first, e.g. "
            f"derivations.freeze(system.reduce(), {', '.join(map(repr, rest))})")
    rest = list(system.state_names[1:])
    raise ValueError(
        f"{caller} needs a one-state system or a one-state reduced system; {label} has the states "
        f"{system.state_names} and declares no invariant manifold: restrict it with derivations.reduce(system, "
        f"{{state: expression}}) or hold states as parameters with derivations.freeze(system, "
        f"{', '.join(map(repr, rest))})")


def plot_flow_1d(
    system: Any,
    params: Mapping[str, float],
    *,
    vary: tuple[str, Sequence[float]] | None = None,
    x_range: tuple[float, float] | None = None,
    ax: Any = None,
    p_range: tuple[float, float] | None = None,
):
    """dx/dt against x for a one-state system, one curve per value of one parameter (``vary`` =
    (name, values)), with every equilibrium in the window marked (filled: stable, open:
    unstable, purple: semi-stable). A system with more states is drawn on its declared
    invariant manifold (``system.reduce()``) when that leaves one state; e.g. the cubic of the
    Euclidean loss and the sextic of the cosine loss in p on s = p²/α_p.

    Parameters
    ----------
    system : derivations.ODESystem with one state, or one whose ``reduce()`` has one state.
    params : parameter values (the varied one may be omitted).
    vary : (parameter name, values); default a single curve at ``params``.
    x_range : (low, high) window in the state; default the equilibria of all curves padded by
        15%, clipped to the state's domain. ``p_range`` is its old name.

    Raises
    ------
    TypeError
        ``system`` is no ODESystem.
    ValueError
        More than one state after reduction (naming ``derivations.freeze`` / ``derivations.reduce``),
        ``vary`` naming no parameter, a bad range, bad params.
    """
    one = _one_state(system, "plot_flow_1d")
    state = one.state_names[0]
    what = "x_range"
    if p_range is not None:
        if x_range is not None:
            raise ValueError("give x_range or its old name p_range, not both")
        x_range, what = p_range, "p_range"
    if vary is None:
        values = [None]
        name = None
    else:
        try:
            name, values = vary
        except (TypeError, ValueError):
            raise ValueError(f"vary must be (parameter name, values); got {vary!r}") from None
        if name not in one.param_names:
            raise ValueError(f"vary names {name!r}, not a parameter; choose from {one.param_names}")
        values = list(np.atleast_1d(np.asarray(values, dtype=float)))
        if not values:
            raise ValueError("vary needs at least one value")
    settings = [dict(params) if name is None else {**params, name: float(v)} for v in values]
    if x_range is not None:
        try:
            lo, hi = (float(v) for v in x_range)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be (low, high); got {x_range!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"{what} must be (low, high) with low < high, both finite; got {x_range!r}")
        found = [equilibria(one, prm, domain={state: (lo, hi)}) for prm in settings]
    else:
        found = [equilibria(one, prm) for prm in settings]
        xs = np.array([e.x[0] for eqs in found for e in eqs], dtype=float)
        from ._phase_plane import _default_window

        lo, hi = _default_window(xs, one.state_bounds()[0])
        found = [[e for e in eqs if lo <= e.x[0] <= hi] for eqs in found]
    fig, ax = _axes(ax)
    f = one.to_numpy()
    grid = np.linspace(lo, hi, 600)
    seen: set = set()
    cmap = __import__("matplotlib").colormaps["viridis"]
    curves, roots = [], []
    for k, (prm, eqs) in enumerate(zip(settings, found)):
        color = cmap(k / max(1, len(settings) - 1))
        with np.errstate(all="ignore"):
            curves.append(np.asarray(f(0.0, grid[:, None], prm), dtype=float)[:, 0])
        label = f"{name} = {prm[name]:.4g}" if name is not None else None
        ax.plot(grid, curves[-1], color=color, lw=1.6, label=label)
    for eqs in found:  # after the curves: the legend lists the curves, then the kinds
        for e in eqs:
            _mark(ax, e.x[0], 0.0, e.kind, seen, size=7)
            roots.append(e.x[0])
    if len(roots) > 1:  # scale y to where the equilibria are, not to the steep tails
        span = max(roots) - min(roots)
        window = (grid >= min(roots) - 0.15 * span) & (grid <= max(roots) + 0.15 * span)
        tops = [np.nanmax(np.abs(c[window])) for c in curves if np.any(np.isfinite(c[window]))]
        top = float(max(tops)) if tops else 0.0
        if np.isfinite(top) and top > 0:
            ax.set_ylim(-1.4 * top, 1.4 * top)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_xlabel(state)
    on = ""
    if one.restricted_to:
        on = " on " + ", ".join(f"{k} = {_pretty(v)}" for k, v in one.restricted_to.items())
    ax.set_ylabel(f"d{state}/dt{on}")
    title = system.name or "flow"
    if one.is_polynomial:
        title += f": order {one.order}"
    ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return fig, ax


_GREEK = {n: sp.pretty(sp.Symbol(n), use_unicode=True) for n in (
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "kappa", "lambda", "mu", "nu", "xi", "rho",
    "sigma", "tau", "phi", "chi", "psi", "omega")}


def _pretty(expr: Any) -> str:
    """A compact readable form of an expression: powers as superscripts (p**2 -> p²), names
    of Greek letters as the letters (alpha_p -> α_p)."""
    import re

    text = sp.sstr(expr)
    for k, sup in (("**2", "²"), ("**3", "³"), ("**4", "⁴")):
        text = text.replace(k, sup)
    return re.sub(r"\b(" + "|".join(_GREEK) + r")(?=_|\b)", lambda m: _GREEK[m.group(1)], text)


# -- bifurcation diagram -----------------------------------------------------------------


def plot_bifurcation(bif: Any, *args: Any, state: str | None = None, ax: Any = None, n_dense: int | None = None,
                     **kwargs: Any):
    """Draw a ``Bifurcation``: each branch of equilibria against the parameter (stable solid
    green, unstable dashed red) and the located points with one marker per kind
    (``BIFURCATION_MARKERS``: fold x, transcritical o, pitchfork triangle, Hopf star; the legend
    lists their parameter values).

    state: the state on the vertical axis (default the first of ``bif.state_names``).

    The old call ``plot_bifurcation(system, param, values, params, n_dense=...)`` still works:
    it computes ``bifurcation(system, param, values, params, n_dense=n_dense, **kwargs)`` first.

    Raises TypeError unless ``bif`` is a Bifurcation (or the old call's system); ValueError for
    an unknown ``state``. Returns (fig, ax).
    """
    title = None
    if not isinstance(bif, Bifurcation):
        if isinstance(bif, ODESystem) and len(args) == 3:
            system, (param, values, params) = bif, args
            bif = bifurcation(system, param, values, params, n_dense=n_dense, **kwargs)
            title = system.name
        else:
            raise TypeError(f"bif must be a Bifurcation (from dynamics.bifurcation), or call "
                            f"plot_bifurcation(system, param, values, params); got {type(bif).__name__}")
    elif args or kwargs:
        raise TypeError("plot_bifurcation(bif) takes the Bifurcation alone (and state=, ax=)")
    names = tuple(getattr(bif, "state_names", ()) or ())
    if state is None:
        state = names[0] if names else None
    elif state not in names:
        raise ValueError(f"state={state!r} is not a state of this diagram; states are {names}")
    j = names.index(state) if state is not None else 0
    fig, ax = _axes(ax)
    for br in bif.branches:
        vals = np.asarray(br.values, dtype=float)
        xs = np.asarray(br.x, dtype=float)
        xs = xs[:, j] if xs.ndim == 2 else xs
        st = np.asarray(br.stable, dtype=bool)
        for flag, style, color in ((True, "-", "tab:green"), (False, "--", "tab:red")):
            on = st == flag
            # a segment runs on to the next sample so that stable and unstable parts meet
            on = on | np.concatenate([[False], on[:-1]])
            ax.plot(vals, np.where(on, xs, np.nan), style, color=color, lw=1.8, gid="branch")
    ax.plot([], [], "-", color="tab:green", label="stable")
    ax.plot([], [], "--", color="tab:red", label="unstable")
    found = list(dict.fromkeys(pt.kind for pt in bif.points))
    kinds = [k for k in BIFURCATION_MARKERS if k in found] + [k for k in found if k not in BIFURCATION_MARKERS]
    for kind in kinds:
        pts = [pt for pt in bif.points if pt.kind == kind]
        ys = [_point_state(pt, j) for pt in pts]
        ax.plot([pt.value for pt in pts], ys, BIFURCATION_MARKERS.get(kind, "D"), color="k", ms=8, mfc="none", mew=2,
                label=f"{kind} ({', '.join(f'{pt.value:.4g}' if abs(pt.value) > 1e-9 else '0' for pt in pts)})",
                linestyle="none", gid=kind, clip_on=False)
    ax.set_xlabel(bif.param)
    ax.set_ylabel(f"{state}*" if state is not None else "equilibrium")
    title = title or getattr(bif, "system_name", None)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig, ax


def _point_state(pt: Any, j: int) -> float:
    x = getattr(pt, "x", None)
    if x is not None:
        x = np.atleast_1d(np.asarray(x, dtype=float))
        return float(x[j])
    return float(pt.p)


# -- regimes, basins, spectra --------------------------------------------------------------


def plot_regimes(reg: Regimes, *, ax: Any = None, path: tuple[Sequence[float], Sequence[float]] | None = None,
                 path_label: str = "path"):
    """Draw a ``Regimes`` map: one colour per regime of ``reg.names`` (legend: the regimes
    present), and an optional (x, y) path with an arrow at its end drawn over it.

    Raises TypeError unless ``reg`` is a Regimes. Returns (fig, ax)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    _require(reg, Regimes, "reg", "dynamics.regimes")
    fig, ax = _axes(ax)
    names = tuple(reg.names)
    colors = [REGIME_COLORS[k % len(REGIME_COLORS)] for k in range(len(names))]
    cmap = ListedColormap(colors)
    ax.pcolormesh(reg.x_values, reg.y_values, reg.codes, cmap=cmap,
                  norm=BoundaryNorm(np.arange(-0.5, len(names) + 0.5), len(names)), shading="nearest", rasterized=True)
    present = sorted(int(k) for k in np.unique(reg.codes) if 0 <= k < len(names))
    handles = [Patch(color=colors[k], label=names[k]) for k in present]
    if path is not None:
        (line,) = ax.plot(path[0], path[1], "k-", lw=2, label=path_label)
        ax.plot([path[0][0]], [path[1][0]], "ko", ms=5)
        ax.annotate("", xy=(path[0][-1], path[1][-1]), xytext=(path[0][-2], path[1][-2]),
                    arrowprops=dict(arrowstyle="->", color="k", lw=2))
        handles.append(line)
    ax.set_xlabel(reg.x)
    ax.set_ylabel(reg.y)
    ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.9)
    return fig, ax


def plot_basins(b: Basins, *, ax: Any = None):
    """Draw a ``Basins`` map. A system with collapse states: collapsed (grey) against not
    (blue), with the collapse probability in the title. Without: one colour per attractor
    (legend: its state), grey where a trajectory reached none.

    Raises TypeError unless ``b`` is a Basins. Returns (fig, ax)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    _require(b, Basins, "b", "dynamics.basins")
    fig, ax = _axes(ax)
    if b.collapse_states:
        ax.pcolormesh(b.x_values, b.y_values, (~b.collapsed).astype(int), cmap=ListedColormap(["#bdbdbd", "#6baed6"]),
                      vmin=0, vmax=1, shading="nearest", rasterized=True)
        ax.legend(handles=[Patch(color="#bdbdbd", label="collapses"), Patch(color="#6baed6", label="does not collapse")],
                  fontsize=7, loc="best")
        ax.set_title(f"basins at t = {b.t1:g}: collapse probability {b.collapse_probability:.2f}", fontsize=9)
    else:
        colors = ["#bdbdbd"] + [REGIME_COLORS[1 + k % (len(REGIME_COLORS) - 1)] for k in range(len(b.attractors))]
        ax.pcolormesh(b.x_values, b.y_values, b.attractor + 1, cmap=ListedColormap(colors), vmin=-0.5,
                      vmax=len(colors) - 0.5, shading="nearest", rasterized=True)
        handles = [Patch(color=colors[0], label="no attractor reached")] if np.any(b.attractor < 0) else []
        for k, e in enumerate(b.attractors):
            where = ", ".join(f"{n} = {v:.3g}" for n, v in list(e.point.items())[:3])
            handles.append(Patch(color=colors[k + 1], label=f"→ ({where})"))
        ax.legend(handles=handles, fontsize=7, loc="best")
        ax.set_title(f"basins of attraction at t = {b.t1:g}", fontsize=9)
    ax.set_xlabel(b.x)
    ax.set_ylabel(b.y)
    return fig, ax


def plot_spectra(net: Any, predictions: Mapping[str, Mapping[str, np.ndarray]] | None = None, *,
                 state: str = "p", modes: int = 6, scale_free: bool = False, ax: Any = None):
    """Eigenvalue trajectories of the network (solid) against eigenmode predictions (dashed,
    one colour per approximation) for ``modes`` evenly spread modes. ``scale_free`` divides by
    ||Psi||_F (p) or ||Phi||_F^2 (s): what the cosine loss sees."""
    if state not in ("p", "s"):
        raise ValueError("state must be 'p' or 's'")
    fig, ax = _axes(ax)
    h = net.p.shape[1]
    pick = np.unique(np.linspace(0, h - 1, min(modes, h)).round().astype(int))

    def norm(values, norm2):
        if not scale_free:
            return values
        return values / (np.sqrt(norm2)[:, None] if state == "p" else norm2[:, None])

    data = norm(getattr(net, state), net.psi_norm2 if state == "p" else net.phi_norm2)
    for j in pick:
        ax.plot(net.t, data[:, j], color="k", lw=1.6, alpha=0.8)
    ax.plot([], [], color="k", lw=1.6, label=f"network (h = {h}, true loss)")
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for (label, pred), color in zip((predictions or {}).items(), colors):
        vals = pred[state]
        n2 = np.sum(pred["p"] ** 2, axis=-1) if state == "p" else np.sum(pred["s"], axis=-1)
        vals = norm(vals, n2)
        for j in pick:
            ax.plot(net.t, vals[:, j], ls="--", color=color, lw=1.2)
        ax.plot([], [], ls="--", color=color, label=label)
    ax.set_xlabel("t")
    ax.set_ylabel(f"{state}_j" + (" / ||Ψ||" if scale_free and state == "p" else " / ||Φ||²" if scale_free else ""))
    ax.legend(fontsize=7)
    return fig, ax
