r"""Figures: phase portraits, 1-D flows, bifurcation diagrams, regime maps, basins, spectra.

Analyses return data (``phase_plane`` -> PhasePlane, ``bifurcation`` -> Bifurcation, ``regimes``
-> Regimes, ``basins`` -> Basins); the ``plot_*`` functions only draw those objects.
``portrait`` computes its data first (``phase_plane``). Every function draws on ``ax`` (or a
new figure when ax is None) and returns (fig, ax); none calls pyplot.show and none closes a
figure.

Paper-ready conventions: labels in mathtext with the model's symbol names (``derivations.latex``:
sigma2 as $\sigma^2$, alpha_p as $\alpha_p$), titles that say the system, the parameter values
and the slice, legends outside the axes (right) so that they cover no data, markers on the
window's edge drawn whole.

Where figures come from (``ax=None``): through pyplot when the user works with pyplot on a
backend that shows figures (pyplot already imported and the backend interactive, e.g. the
inline backend of Jupyter), and always inside a Jupyter/IPython kernel, so that
``fig, ax = portrait(...)`` displays in a notebook cell like any pyplot figure; otherwise (a
script or test on a non-interactive backend such as Agg) as a bare ``matplotlib.figure.Figure``
that no global registry holds, so batches of figures do not accumulate.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from derivations import DynamicalSystem, ODESystem, Params
from derivations import latex as _latex

from ._basins import Basins
from ._bifurcation import Bifurcation
from ._equilibria import equilibria
from ._phase_plane import PhasePlane, check_window, phase_plane
from ._prepare import check_sweep, symbolic_form
from ._roots import Regimes
from ._tolerance import COARSE_RTOL

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.axes import Axes

    from ._bifurcation import Branch
    from ._codim2 import BifurcationCurve
    from ._cycles import CycleFamily

__all__ = ["portrait", "plot_phase_plane", "plot_flow_1d", "plot_bifurcation", "plot_regimes", "plot_basins",
           "KIND_STYLE"]

KIND_STYLE = {
    "stable node": ("tab:green", True),
    "stable focus": ("darkgreen", True),
    "non-hyperbolic stable node": ("olive", True),
    "non-hyperbolic stable node (boundary)": ("olive", True),
    "weak stable focus": ("seagreen", True),
    "saddle": ("tab:orange", False),
    "saddle-focus": ("chocolate", False),
    "non-hyperbolic saddle": ("darkorange", False),
    "unstable node": ("tab:red", False),
    "unstable focus": ("darkred", False),
    "weak unstable focus": ("indianred", False),
    "non-hyperbolic unstable node": ("firebrick", False),
    "semi-stable": ("tab:purple", False),
    "centre": ("tab:blue", False),
    "weak focus or centre (undecided)": ("steelblue", False),
    "non-isolated": ("0.4", False),
    "non-hyperbolic (undecided)": ("black", False),
}
"""Marker colour and fill (filled = stable) per equilibrium kind."""

REGIME_COLORS = ("#d9d9d9", "#9ecae1", "#74c476", "#fc9272", "#fdd0a2", "#bcbddc", "#fdae6b", "#c7e9c0")

BIFURCATION_MARKERS = {"fold": "x", "transcritical": "o", "pitchfork": "^", "hopf": "*", "touch": "s",
                       "branch point": "s", "period doubling": "v", "neimark-sacker": "p", "fold of cycles": "P",
                       "cusp": "^", "bogdanov-takens": "s", "bautin": "*", "zero-hopf": "D", "double-hopf": "h"}
"""Marker per bifurcation kind (any other kind: a diamond); codimension-two points are filled."""

CODIM2_KINDS = ("cusp", "bogdanov-takens", "bautin", "zero-hopf", "double-hopf")

BASIN_COLORS = {"collapses": "#bdbdbd", "does not collapse": "#6baed6", "blows up": "#de2d26",
                "undecided (integration failed)": "#fdd0a2"}
"""Colour per outcome of a basin map of a system with collapse states."""


# -- figures, axes, labels, legends --------------------------------------------------------


def in_kernel() -> bool:
    """True inside a Jupyter/IPython kernel (IPython imported, a shell with a kernel)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # a broken or partial IPython: behave as a script
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _new_figure(figsize: tuple[float, float]):
    """A new figure with constrained layout: through pyplot when figures are shown (see the
    module docstring), else a bare Figure. Never calls pyplot.show, closes nothing."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None and in_kernel():
        import matplotlib.pyplot as plt  # in a kernel this selects the inline backend
    if plt is not None:
        import matplotlib
        from matplotlib.backends import BackendFilter, backend_registry

        if matplotlib.get_backend().lower() not in backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE):
            return plt.figure(figsize=figsize, layout="constrained")
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def figure_axes(ax: Any, figsize=(5.5, 4.5)):
    if ax is None:
        fig = _new_figure(figsize)
        return fig, fig.add_subplot()
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes (e.g. from fig.add_subplot()) or None; got {type(ax).__name__}")
    return ax.figure, ax


@lru_cache(maxsize=512)
def _tex(name: str) -> str:
    """The mathtext body (no dollars) of a symbol name, with the model's names
    (``derivations.latex``: sigma2 -> \\sigma^2, alpha_p -> \\alpha_p, N_psi -> N_{\\psi}); a
    plain word of several letters upright (scale -> \\mathrm{scale}); the name itself if
    matplotlib's mathtext cannot parse the result."""
    from matplotlib.mathtext import MathTextParser

    body = _latex(sp.Symbol(name))
    if body == name and len(name) > 1 and name.isalpha():
        body = rf"\mathrm{{{name}}}"
    try:
        MathTextParser("path").parse(f"${body}$")
    except Exception:
        return r"\mathrm{" + "".join("\\" + c if c in "_^{}$%#&\\" else c for c in name) + "}"
    return body


def _math(name: str) -> str:
    """``name`` as inline mathtext, e.g. "$\\eta$"."""
    return f"${_tex(name)}$"


def _expr_tex(expr: Any) -> str:
    """An expression in mathtext (no dollars); its plain form if mathtext cannot parse it."""
    from matplotlib.mathtext import MathTextParser

    expr = sp.sympify(expr)
    num, den = sp.fraction(sp.together(expr))
    if den == 1:
        body = _latex(expr)
    else:  # inline, p^{2}/\alpha_p: a \frac is unreadably small in a label
        body = "/".join(_latex(t) if (t.is_Atom or t.is_Pow or t.is_Function) else f"({_latex(t)})" for t in (num, den))
    try:
        MathTextParser("path").parse(f"${body}$")
    except Exception:
        return r"\mathrm{" + _escape(sp.sstr(expr)) + "}"
    return body


def _escape(text: str) -> str:
    """Plain text (e.g. a system name) safe from mathtext: dollars escaped."""
    return str(text).replace("$", r"\$")


def _num(v: Any) -> str:
    return f"{float(v):.4g}"


def _values(params: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
    """"$\\sigma^2 = 0.2$, $\\eta = 0.05$": parameter values for a title."""
    return ", ".join(f"${_tex(k)} = {_num(v)}$" for k, v in params.items() if k not in skip)


def _title(ax: Any, head: str, *lines: str, fontsize: float = 8.5) -> None:
    ax.set_title("\n".join(([_escape(head)] if head else []) + [ln for ln in lines if ln]), fontsize=fontsize)


def legend_outside(ax: Any, handles: Sequence[Any] | None = None, *, title: str | None = None,
                    loc: str = "upper left", anchor: tuple[float, float] = (1.02, 1.0)):
    """A legend outside the axes, right of them, so that it covers no data. Constrained layout
    (every figure made here) makes room for it."""
    kw = dict(fontsize=7, loc=loc, bbox_to_anchor=anchor, borderaxespad=0.0, framealpha=0.9,
              title=title, title_fontsize=7)
    if handles is None:
        return ax.legend(**kw)
    return ax.legend(handles=handles, **kw)


def _mark(ax, x, y, kind, label_seen: set, size=8, zorder=5, clip_on=True):
    color, filled = KIND_STYLE.get(kind, ("black", False))
    label = kind if kind not in label_seen else None
    label_seen.add(kind)
    ax.plot([x], [y], "o", ms=size, mec=color, mfc=color if filled else "white", mew=1.8,
            zorder=zorder, label=label, linestyle="none", gid="equilibrium", clip_on=clip_on)


def _require(obj: Any, cls: type, arg: str, source: str) -> None:
    if not isinstance(obj, cls):
        raise TypeError(f"{arg} must be a {cls.__name__} (from {source}); got {type(obj).__name__}")


def _require_params(params: Any) -> None:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")


# -- phase portrait ----------------------------------------------------------------------


def portrait(
    system: DynamicalSystem,
    params: Params,
    *,
    x: str | None = None,
    y: str | None = None,
    fixed: Mapping[str, float | str] | None = None,
    ax: Axes | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    n_grid: int = 41,
    trajectories: int = 6,
    manifolds: bool = True,
    t1: float = 60.0,
    backend: str = "jax",
    seed: int = 0,
):
    """Phase portrait of any system in the (x, y) plane: ``plot_phase_plane(phase_plane(...))``.

    Streamlines, both nullclines, every equilibrium on the slice marked and coloured by kind,
    stable (dotted) and unstable (solid) manifolds of saddles, and a few trajectories; the
    legend outside the axes, the title naming the system, the parameter values and the slice.
    States off the plane are held at ``fixed`` values (a number, or "manifold" for a state of
    the system's declared invariant manifold).

    Parameters
    ----------
    system, params, x, y, fixed, xlim, ylim, n_grid, trajectories, manifolds, t1, backend, seed :
        as for ``dynamics.phase_plane``.
    ax : a matplotlib Axes, or None for a new figure (shown in Jupyter, see the module notes).

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError
        ``ax`` no Axes; and ``phase_plane``'s: a ``fixed`` value that is neither a real number
        nor "manifold" (e.g. the string '1'), ...
    ValueError
        ``phase_plane``'s: a ``fixed`` key naming a plotted state or no state, unknown axis
        states, bad limits, counts, params.
    """
    if ax is not None:
        figure_axes(ax)  # checked before any work
    plane = phase_plane(system, params, x=x, y=y, fixed=fixed, xlim=xlim, ylim=ylim, n_grid=n_grid,
                        trajectories=trajectories, manifolds=manifolds, t1=t1, backend=backend, seed=seed)
    return plot_phase_plane(plane, ax=ax)


def plot_phase_plane(plane: PhasePlane, *, ax: Axes | None = None):
    """Draw a ``PhasePlane``: streamlines of its field (grey), the nullclines (dx/dt = 0 blue
    solid, dy/dt = 0 red dashed), its trajectories (cyan, start dots; "frozen-field curves" on a
    slice that holds states at numbers, see ``PhasePlane.curve_label``), saddle manifolds (black:
    unstable solid, stable dotted) and its equilibria coloured by kind (``KIND_STYLE``; filled =
    stable). The legend sits outside the axes, right, so that it covers no data; markers on the
    window's edge (e.g. at s = 0, the domain's boundary) are drawn whole. Axis labels in
    mathtext; the title says the system, the parameter values and the slice (the held states'
    values, or the manifold graph, e.g. s = p^2/alpha_p).

    Parameters
    ----------
    plane : PhasePlane from ``dynamics.phase_plane``.
    ax : a matplotlib Axes to draw on, or None for a new figure.

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError
        ``plane`` is no PhasePlane; ``ax`` is neither None nor an Axes.
    """
    _require(plane, PhasePlane, "plane", "dynamics.phase_plane")
    fig, ax = figure_axes(ax)
    u, v = np.ma.masked_invalid(plane.u), np.ma.masked_invalid(plane.v)
    if np.ma.count(u) and np.any(np.abs(u) + np.abs(v) > 0):
        ax.streamplot(plane.grid_x, plane.grid_y, u, v, color="0.7", density=1.1, linewidth=0.7, arrowsize=0.8,
                      zorder=1)
    for lines, style, state in ((plane.x_nullcline, dict(color="tab:blue", ls="-"), plane.x),
                                (plane.y_nullcline, dict(color="tab:red", ls="--"), plane.y)):
        for k, line in enumerate(lines):
            ax.plot(line[:, 0], line[:, 1], lw=1.4, zorder=2, label=f"$d{_tex(state)}/dt = 0$" if k == 0 else None,
                    gid="nullcline", **style)
    for k, orbit in enumerate(plane.trajectories):
        ax.plot(orbit.points[:, 0], orbit.points[:, 1], color="tab:cyan", lw=1.0, alpha=0.9, zorder=3,
                label=plane.curve_label if k == 0 else None, gid="trajectory")
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
    ax.set_xlabel(_math(plane.x))
    ax.set_ylabel(_math(plane.y))
    _title(ax, plane.system_name or f"phase plane ({plane.x}, {plane.y})", _values(plane.params), _slice(plane))
    if ax.get_legend_handles_labels()[0]:
        legend_outside(ax)
    return fig, ax


def _slice(plane: PhasePlane) -> str:
    """The slice in mathtext: "slice $\\tau = 1$", "on the manifold $s = p^2/\\alpha_p$"."""
    held = [f"${_tex(k)} = {_num(v)}$" for k, v in plane.fixed.items() if not isinstance(v, str)]
    graph = [f"${_tex(k)} = {_expr_tex(e)}$" for k, e in plane.on_manifold.items()]
    graph += [f"{_math(k)} on its manifold" for k, v in plane.fixed.items()
              if isinstance(v, str) and k not in plane.on_manifold]
    parts = (["slice " + ", ".join(held)] if held else []) + (["on the manifold " + ", ".join(graph)] if graph else [])
    return "; ".join(parts)


# -- one-dimensional flows ---------------------------------------------------------------


def _one_state(system: Any, caller: str) -> ODESystem:
    """The system itself if it has one state, else its restriction to the declared manifold
    if that has one state; otherwise a ValueError naming what would serve."""
    system = symbolic_form(system, caller)
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
    system: ODESystem,
    params: Params,
    *,
    vary: tuple[str, Sequence[float]] | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    ax: Axes | None = None,
):
    """dx/dt against x for a one-state system, one curve per value of one parameter (``vary`` =
    (name, values)), with every equilibrium in the window marked on its curve's colour: filled
    circle = stable, open circle = unstable, half-filled circle = semi-stable (filled on the
    side from which it attracts), open diamond = undecided. Markers that coincide (e.g. the
    collapsed point x = 0 of every curve) are drawn as concentric rings, the first curve's
    largest, so none is painted over. Two legends outside the axes: the curves (titled by the
    varied parameter) and the marker kinds. A system with more states is drawn on its declared
    invariant manifold (``system.reduce()``) when that leaves one state; e.g. the cubic of the
    Euclidean loss and the sextic of the cosine loss in p on s = p²/α_p.

    Parameters
    ----------
    system : derivations.ODESystem with one state, or one whose ``reduce()`` has one state.
    params : parameter values (the varied one may be omitted).
    vary : (parameter name, 1-D real values); default a single curve at ``params``.
    xlim : (low, high) window in the state; default the equilibria of all curves padded by
        40%, clipped to the state's domain.
    ylim : (low, high) of dx/dt; default +-1.4 times the largest ``|dx/dt|`` between the outermost
        equilibria (padded by 15%) over the curves with two or more equilibria there, so that
        the structure near the equilibria is visible (a steep curve with one root runs off).
    ax : a matplotlib Axes, or None for a new figure.

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError
        ``system`` is no ODESystem, ``params`` no mapping, ``ax`` no Axes.
    ValueError
        More than one state after reduction (naming ``derivations.freeze`` / ``derivations.reduce``),
        ``vary`` naming no parameter or with values that are not a non-empty 1-D list of real
        numbers, a bad range, bad params.
    """
    one = _one_state(system, "plot_flow_1d")
    _require_params(params)
    state = one.state_names[0]
    name, settings = _flow_settings(one, params, vary)
    lo, hi, found = _flow_window(one, settings, xlim)
    if ylim is not None:
        ylim = check_window(ylim, "ylim")
    fig, ax = figure_axes(ax)

    f = one.to_numpy()
    grid = np.linspace(lo, hi, 600)
    cmap = __import__("matplotlib").colormaps["viridis"]
    colors = ["tab:blue"] if name is None else [cmap(0.9 * k / max(1, len(settings) - 1)) for k in range(len(settings))]
    curves, curve_handles = [], []
    for k, prm in enumerate(settings):
        with np.errstate(all="ignore"):
            curves.append(np.asarray(f(0.0, grid[:, None], prm), dtype=float)[:, 0])
        (line,) = ax.plot(grid, curves[-1], color=colors[k], lw=1.6, zorder=2, gid="curve",
                          label=_num(prm[name]) if name is not None else None)
        curve_handles.append(line)
    roots, kinds_present = _draw_flow_equilibria(ax, f, found, settings, colors, hi - lo)
    if ylim is not None:
        ax.set_ylim(*ylim)
    elif len(roots) > 1:
        _scale_flow_y(ax, grid, curves, found, roots)
    ax.axhline(0, color="0.5", lw=0.8, zorder=1)
    ax.set_xlim(lo, hi)
    ax.set_xlabel(_math(state))
    on = ""
    if one.restricted_to:
        on = " on " + ", ".join(f"${_tex(k)} = {_expr_tex(v)}$" for k, v in one.restricted_to.items())
    ax.set_ylabel(f"$d{_tex(state)}/dt$" + on)
    head = system.name or "one-state flow"
    if one.is_polynomial:
        head += f": order {one.order} in {state}"
    _title(ax, head, _values(settings[0], skip=(name,) if name is not None else ()))
    _flow_legends(ax, curve_handles, kinds_present, name)
    return fig, ax


def _flow_settings(one: ODESystem, params: Params, vary: Any) -> tuple[str | None, list[dict]]:
    """The varied parameter's name (None without ``vary``) and the parameters of each curve."""
    if vary is None:
        values = [None]
        name = None
    else:
        name, arr = check_sweep(vary, "vary", one.param_names)
        values = list(arr)
    return name, [dict(params) if name is None else {**params, name: float(v)} for v in values]


def _flow_window(one: ODESystem, settings: list[dict], xlim: Any) -> tuple[float, float, list]:
    """The window (lo, hi) in the state (``xlim``, or the equilibria of every curve padded by 40%
    within the state's domain) and each curve's equilibria inside it."""
    state = one.state_names[0]
    if xlim is not None:
        lo, hi = check_window(xlim, "xlim")
        found = [equilibria(one, prm, domain={state: (lo, hi)}) for prm in settings]
    else:
        found = [equilibria(one, prm) for prm in settings]
        xs = np.array([e.x[0] for eqs in found for e in eqs], dtype=float)
        from ._phase_plane import default_window

        lo, hi = default_window(xs, one.state_bounds()[0])
        found = [[e for e in eqs if lo <= e.x[0] <= hi] for eqs in found]
    return lo, hi, found


def _draw_flow_equilibria(ax: Any, f: Any, found: list, settings: list[dict], colors: list,
                          span: float) -> tuple[list[float], set]:
    """Marks every equilibrium on its curve's colour; coincident ones (e.g. x = 0 of every curve)
    as concentric markers, stable ones largest (bottom) and semi-stable ones smallest (top), so
    none is hidden. Returns the marked positions and the kinds drawn."""
    marks = []
    for k, eqs in enumerate(found):
        for e in eqs:
            x0 = float(e.x[0])
            style = _flow_marker(e, lambda d, x0=x0, k=k: f(0.0, np.array([[x0 + d]]), settings[k])[0, 0], span)
            marks.append((x0, k, style))
    groups: list[list] = []
    for m in sorted(marks, key=lambda m: m[0]):
        if groups and abs(m[0] - groups[-1][0][0]) <= 5e-3 * span:
            groups[-1].append(m)
        else:
            groups.append([m])
    roots: list[float] = []
    kinds_present: set = set()
    for group in groups:
        group.sort(key=lambda m: (_DRAW_ORDER[m[2]["what"]], m[1]))
        for rank, (x0, k, style) in enumerate(group):
            style = dict(style)
            kinds_present.add(style.pop("what"))
            size = 7 + 3.5 * (len(group) - 1 - rank)
            ax.plot([x0], [0.0], linestyle="none", ms=size, mew=1.6, mec=colors[k], zorder=5 + rank, clip_on=False,
                    gid="equilibrium", **{kw: (colors[k] if v == "curve" else v) for kw, v in style.items()})
            roots.append(x0)
    return roots, kinds_present


def _scale_flow_y(ax: Any, grid: np.ndarray, curves: list[np.ndarray], found: list, roots: list[float]) -> None:
    """Scales y to where the equilibria are, not to the steep tails, and to the curves with
    structure there (two or more equilibria), so that one steep curve with a single root does
    not flatten the others."""
    rspan = max(roots) - min(roots)
    window = (grid >= min(roots) - 0.15 * rspan) & (grid <= max(roots) + 0.15 * rspan)
    rich = [c for c, eqs in zip(curves, found) if len(eqs) > 1] or curves
    tops = [np.nanmax(np.abs(c[window])) for c in rich if np.any(np.isfinite(c[window]))]
    top = float(max(tops)) if tops else 0.0
    if np.isfinite(top) and top > 0:
        ax.set_ylim(-1.4 * top, 1.4 * top)


def _flow_legends(ax: Any, curve_handles: list, kinds_present: set, name: str | None) -> None:
    """The two legends outside the axes: the curves (titled by the varied parameter) and the
    marker kinds drawn."""
    from matplotlib.lines import Line2D

    kind_handles = [Line2D([], [], linestyle="none", ms=7, mew=1.6, mec="0.2", label=what,
                           **{kw: ("0.2" if v == "curve" else v) for kw, v in _KIND_PROXY[what].items()})
                    for what in _KIND_PROXY if what in kinds_present]
    if name is not None:
        ax.add_artist(legend_outside(ax, curve_handles, title=_math(name)))
    if kind_handles:
        legend_outside(ax, kind_handles, title="equilibria", loc="lower left", anchor=(1.02, 0.0))


_KIND_PROXY = {
    "stable": dict(marker="o", mfc="curve"),
    "unstable": dict(marker="o", mfc="white"),
    "semi-stable": dict(marker="o", mfc="curve", fillstyle="left", markerfacecoloralt="white"),
    "undecided": dict(marker="D", mfc="white"),
}
"""Marker shape and fill per stability ("curve": the curve's colour) of ``plot_flow_1d``."""

_DRAW_ORDER = {"stable": 0, "undecided": 1, "unstable": 2, "semi-stable": 3}


def _flow_marker(e: Any, f_at: Any, span: float) -> dict:
    """Marker style of a 1-D equilibrium: stable filled, unstable open, semi-stable half filled
    on the side from which the flow comes in (f > 0 to its left: from the left), undecided an
    open diamond. ``what`` names the legend entry."""
    if "semi-stable" in str(e.kind):
        d = 1e-3 * span
        with np.errstate(all="ignore"):
            left = float(f_at(-d))
        style = dict(_KIND_PROXY["semi-stable"], fillstyle="left" if left > 0 else "right")
        return dict(style, what="semi-stable")
    what = {True: "stable", False: "unstable"}.get(e.stable, "undecided")
    return dict(_KIND_PROXY[what], what=what)


# -- bifurcation diagram -----------------------------------------------------------------


def plot_bifurcation(bif: Bifurcation | Branch | CycleFamily | BifurcationCurve | Sequence[Bifurcation | Branch | CycleFamily],
                     *, state: str | None = None, ax: Axes | None = None):
    """Draw a bifurcation diagram: a ``Bifurcation``, continued results, or several of them on
    one axes.

    - ``Bifurcation`` and ``Branch`` (equilibria, fixed points): the state against the
      parameter, stable solid green, unstable dashed red;
    - ``CycleFamily``: the cycles' maximum and minimum of the state against the parameter
      (their envelope), stable solid blue, unstable dashed orange;
    - ``BifurcationCurve``: the curve in its two parameters (fold black, Hopf purple);

    and the located points with one marker per kind (``BIFURCATION_MARKERS``: fold x,
    transcritical o, pitchfork triangle, Hopf star, branch point square, period doubling
    triangle down, Neimark-Sacker pentagon, fold of cycles plus, codimension two filled; the
    legend, outside the axes, lists their parameter values).

    Parameters
    ----------
    bif : Bifurcation, Branch, CycleFamily, BifurcationCurve, or a list of them
        Curves in two parameters and diagrams against one parameter do not share axes.
    state : the state on the vertical axis (default the first state); unused for curves.
    ax : a matplotlib Axes, or None for a new figure.

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError
        ``bif`` is none of these; ``ax`` no Axes.
    ValueError
        An unknown ``state``; curves mixed with diagrams; results in different parameters.
    """
    from ._bifurcation import Branch
    from ._codim2 import BifurcationCurve
    from ._cycles import CycleFamily

    kinds = (Bifurcation, Branch, CycleFamily, BifurcationCurve)
    items = list(bif) if isinstance(bif, (list, tuple)) else [bif]
    if not items or not all(isinstance(b, kinds) for b in items):
        bad = next((b for b in items if not isinstance(b, kinds)), None)
        raise TypeError("bif must be a Bifurcation (dynamics.bifurcation), a Branch (continue_equilibrium), a "
                        "CycleFamily (continue_cycle), a BifurcationCurve (continue_curve) or a list of them; "
                        f"got {type(bif if not items else bad).__name__}")
    curves = [b for b in items if isinstance(b, BifurcationCurve)]
    if curves and len(curves) != len(items):
        raise ValueError("bif mixes curves in two parameters (BifurcationCurve) with diagrams against one parameter")
    fig, ax = figure_axes(ax)
    if curves:
        return fig, _plot_curves(curves, ax)
    params = {b.param for b in items if b.param}
    if len(params) > 1:
        raise ValueError(f"bif's results vary different parameters {sorted(params)}; draw them on separate axes")
    param = params.pop() if params else "parameter"
    names = next((tuple(b.state_names) for b in items if tuple(getattr(b, "state_names", ()) or ())), ())
    if state is None:
        state = names[0] if names else None
    elif state not in names:
        raise ValueError(f"state={state!r} is not a state of this diagram; states are {names}")
    j = names.index(state) if state is not None else 0
    points = []
    for item in items:
        if isinstance(item, CycleFamily):
            for edge in (item.x_max[:, j], item.x_min[:, j]):
                _stability_lines(ax, item.values, edge, item.stable, ("tab:blue", "tab:orange"), "cycle")
        else:
            for br in (item.branches if isinstance(item, Bifurcation) else [item]):
                xs = np.asarray(br.x, dtype=float)
                _stability_lines(ax, br.values, xs[:, j] if xs.ndim == 2 else xs, br.stable,
                                 ("tab:green", "tab:red"), "branch")
        points += list(item.points)
    ax.plot([], [], "-", color="tab:green", label="stable")
    ax.plot([], [], "--", color="tab:red", label="unstable")
    if any(isinstance(b, CycleFamily) for b in items):
        ax.plot([], [], "-", color="tab:blue", label="stable cycles (max, min)")
        ax.plot([], [], "--", color="tab:orange", label="unstable cycles")
    _mark_points(ax, points, lambda pt: pt.value, lambda pt: _point_state(pt, j), param)
    ax.set_xlabel(_math(param))
    if state is not None:
        body = _tex(state)
        ax.set_ylabel(f"${{{body}}}^*$" if ("_" in body or "^" in body) else f"${body}^*$")
    else:
        ax.set_ylabel("equilibrium")
    first = items[0]
    fixed_values = _values(first.params, skip=(param,))
    if first.system_name or fixed_values:
        _title(ax, first.system_name or "bifurcation diagram", fixed_values)
    legend_outside(ax)
    return fig, ax


def _stability_lines(ax, values, ys, stable, colors, gid: str) -> None:
    vals = np.asarray(values, dtype=float)
    ys = np.asarray(ys, dtype=float)
    st = np.asarray(stable, dtype=bool)
    for flag, style, color in ((True, "-", colors[0]), (False, "--", colors[1])):
        on = st == flag
        # a segment runs on to the next sample so that stable and unstable parts meet
        on = on | np.concatenate([[False], on[:-1]])
        ax.plot(vals, np.where(on, ys, np.nan), style, color=color, lw=1.8, gid=gid)


def _mark_points(ax, points, xof, yof, name: str) -> None:
    found = list(dict.fromkeys(pt.kind for pt in points))
    kinds = [k for k in BIFURCATION_MARKERS if k in found] + [k for k in found if k not in BIFURCATION_MARKERS]
    for kind in kinds:
        pts = [pt for pt in points if pt.kind == kind]
        where = ", ".join(f"{xof(pt):.4g}" if abs(xof(pt)) > 1e-9 else "0" for pt in pts[:4])
        where += ", ..." if len(pts) > 4 else ""
        filled = kind in CODIM2_KINDS
        ax.plot([xof(pt) for pt in pts], [yof(pt) for pt in pts], BIFURCATION_MARKERS.get(kind, "D"), color="k", ms=8,
                mfc="k" if filled else "none", mew=2, label=f"{kind} at ${_tex(name)} = {where}$", linestyle="none", gid=kind,
                clip_on=False)


def _plot_curves(curves, ax):
    pairs = {tuple(c.params_varied) for c in curves}
    if len(pairs) > 1:
        raise ValueError(f"bif's curves lie in different parameter planes {sorted(pairs)}; draw them separately")
    p1, p2 = pairs.pop()
    points = []
    neutral = False
    for c in curves:
        color = "k" if c.kind == "fold" else "tab:purple"
        x, y = c.values[:, 1], c.values[:, 0]
        saddle = np.asarray(c.coefficients["kappa"]) < 0 if "kappa" in c.coefficients else np.zeros(len(x), bool)
        # past a Bogdanov-Takens point a Hopf curve goes on as neutral saddles: drawn dotted
        ax.plot(x, np.where(~saddle | np.concatenate([[False], ~saddle[:-1]]), y, np.nan), "-", color=color, lw=1.8,
                gid=f"{c.kind} curve")
        if saddle.any():
            neutral = True
            ax.plot(x, np.where(saddle | np.concatenate([[False], saddle[:-1]]), y, np.nan), ":", color=color, lw=1.5,
                    gid="neutral saddles")
        points += [p for p in c.points if not any(q.kind == p.kind and all(
            abs(q.params[k] - p.params[k]) <= COARSE_RTOL * (1.0 + abs(p.params[k])) for k in (p1, p2)) for q in points)]
    for kind, color in (("fold", "k"), ("hopf", "tab:purple")):
        if any(c.kind == kind for c in curves):
            ax.plot([], [], "-", color=color, label=f"{kind} curve")
    if neutral:
        ax.plot([], [], ":", color="tab:purple", label="neutral saddles")
    _mark_points(ax, points, lambda pt: pt.params[p2], lambda pt: pt.params[p1], p2)
    ax.set_xlabel(_math(p2))
    ax.set_ylabel(_math(p1))
    first = curves[0]
    fixed_values = _values(first.params, skip=(p1, p2))
    if first.system_name or fixed_values:
        _title(ax, first.system_name or "bifurcation curves", fixed_values)
    legend_outside(ax)
    return ax


def _point_state(pt: Any, j: int) -> float:
    return float(np.atleast_1d(np.asarray(pt.x, dtype=float))[j])


# -- regimes, basins, spectra --------------------------------------------------------------


def plot_regimes(reg: Regimes, *, ax: Axes | None = None, path: tuple[Sequence[float], Sequence[float]] | None = None,
                 path_label: str = "path"):
    """Draw a ``Regimes`` map: one colour per regime of ``reg.names`` (legend, outside the
    axes: the regimes present), and an optional (x, y) path with an arrow at its end drawn
    over it.

    Parameters
    ----------
    reg : Regimes from ``dynamics.regimes``.
    ax : a matplotlib Axes, or None for a new figure.
    path : (x values, y values) of equal length >= 2, drawn as a line with an arrow at its end.
    path_label : its legend entry.

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError
        ``reg`` is no Regimes, ``ax`` no Axes, ``path_label`` no string.
    ValueError
        ``path`` is not two equally long 1-D lists of at least two finite numbers.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    _require(reg, Regimes, "reg", "dynamics.regimes")
    if path is not None:
        try:
            px, py = (np.asarray(c, dtype=float) for c in path)
        except (TypeError, ValueError):
            raise ValueError(f"path must be (x values, y values), two lists of numbers; got {path!r}") from None
        if px.ndim != 1 or px.shape != py.shape or px.size < 2 or not np.all(np.isfinite(px) & np.isfinite(py)):
            raise ValueError("path must be (x values, y values): two 1-D lists of equal length >= 2, finite; got "
                             f"shapes {px.shape} and {py.shape}")
    if not isinstance(path_label, str):
        raise TypeError(f"path_label must be a string; got {type(path_label).__name__}")
    fig, ax = figure_axes(ax)
    names = tuple(reg.names)
    colors = [REGIME_COLORS[k % len(REGIME_COLORS)] for k in range(len(names))]
    cmap = ListedColormap(colors)
    ax.pcolormesh(reg.x_values, reg.y_values, reg.codes, cmap=cmap,
                  norm=BoundaryNorm(np.arange(-0.5, len(names) + 0.5), len(names)), shading="nearest", rasterized=True)
    present = sorted(int(k) for k in np.unique(reg.codes) if 0 <= k < len(names))
    handles = [Patch(color=colors[k], label=names[k]) for k in present]
    if path is not None:
        (line,) = ax.plot(px, py, "k-", lw=2, label=path_label)
        ax.plot([px[0]], [py[0]], "ko", ms=5)
        ax.annotate("", xy=(px[-1], py[-1]), xytext=(px[-2], py[-2]), arrowprops=dict(arrowstyle="->", color="k", lw=2))
        handles.append(line)
    ax.set_xlabel(_math(reg.x))
    ax.set_ylabel(_math(reg.y))
    legend_outside(ax, handles)
    return fig, ax


def plot_basins(b: Basins, *, ax: Axes | None = None):
    """Draw a ``Basins`` map, its legend outside the axes.

    A system with collapse states: each start coloured by its outcome (``BASIN_COLORS``):
    collapses (grey), does not collapse (blue: it stays finite and away from collapse), blows
    up (red: the integration ended with status "blew_up"; never counted as "does not
    collapse"), undecided (orange: the integration failed or ran out of steps); starts on the
    collapse boundary (``Basins.excluded``) hatched over its outcome, as it is left out of the
    collapse probability; the title gives the collapse probability and, where any, the blow-up
    fraction. Without collapse
    states: one colour per attractor (legend: its state), grey where a trajectory reached
    none, red where it blew up. The title names the system and its parameters where the
    Basins carries them.

    Parameters
    ----------
    b : Basins from ``dynamics.basins``.
    ax : a matplotlib Axes, or None for a new figure.

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError
        ``b`` is no Basins, ``ax`` no Axes.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    _require(b, Basins, "b", "dynamics.basins")
    fig, ax = figure_axes(ax)
    status = np.asarray(b.status).astype(str)
    blew = status == "blew_up"
    head = getattr(b, "system_name", "") or ""
    params = _values(getattr(b, "params", {}) or {})
    if b.collapse_states:
        names = tuple(BASIN_COLORS)
        code = np.where(b.collapsed, 0, 1)
        code = np.where(~b.collapsed & blew, 2, code)
        code = np.where(~b.collapsed & ~blew & np.isin(status, ("failed", "max_steps")), 3, code)
        colors = [BASIN_COLORS[n] for n in names]
        ax.pcolormesh(b.x_values, b.y_values, code, cmap=ListedColormap(colors), vmin=-0.5, vmax=len(names) - 0.5,
                      shading="nearest", rasterized=True, gid="basins")
        present = [k for k in range(len(names)) if k < 2 or np.any(code == k)]
        handles = [Patch(color=colors[k], label=names[k]) for k in present]
        if np.any(b.excluded):  # outcome still shown; hatched: left out of the collapse probability
            ax.pcolor(b.x_values, b.y_values, np.ma.masked_where(~b.excluded, np.ones(b.excluded.shape)),
                      shading="nearest", hatch="////", facecolor="none", edgecolor="0.25", linewidth=0, gid="excluded")
            handles.append(Patch(facecolor="none", edgecolor="0.25", hatch="////",
                                 label="starts on the collapse boundary (excluded)"))
        summary = f"at $t = {b.t1:g}$: collapse probability {b.collapse_probability:.2f}"
        if getattr(b, "n_excluded", 0):
            summary += f" ({b.n_excluded} boundary points excluded)"
        if np.any(code == 2):
            summary += f", blow-up fraction {np.mean(code == 2):.2f}"
    else:
        code = np.where(blew & (b.attractor < 0), -2, b.attractor)
        colors = ["#de2d26", "#bdbdbd"] + [REGIME_COLORS[1 + k % (len(REGIME_COLORS) - 1)] for k in range(len(b.attractors))]
        ax.pcolormesh(b.x_values, b.y_values, code + 2, cmap=ListedColormap(colors), vmin=-0.5,
                      vmax=len(colors) - 0.5, shading="nearest", rasterized=True, gid="basins")
        handles = [Patch(color=colors[0], label="blows up")] if np.any(code == -2) else []
        if np.any(code == -1):
            handles.append(Patch(color=colors[1], label="no attractor reached"))
        for k, e in enumerate(b.attractors):
            where = ", ".join(f"{_tex(n)} = {_num(v)}" for n, v in list(e.point.items())[:3])
            handles.append(Patch(color=colors[k + 2], label=f"→ ${where}$"))
        summary = f"basins of attraction at $t = {b.t1:g}$"
    _title(ax, head, params, summary)
    legend_outside(ax, handles)
    ax.set_xlabel(_math(b.x))
    ax.set_ylabel(_math(b.y))
    return fig, ax
