"""Figures: phase portraits, 1-D flows, bifurcation diagrams, regime maps, basins, spectra.

Every function draws on ``ax`` (or a new Figure when ax is None) and returns (fig, ax); none
calls pyplot.show, and figures are created without pyplot, so they work headless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from derivations import EigenmodeSystem

from ._basins import Basins
from ._bifurcation import REGIMES, Regimes, bifurcation, roots_batch
from ._equilibria import equilibria

__all__ = ["portrait", "plot_flow_1d", "plot_bifurcation", "plot_regimes", "plot_basins", "plot_spectra", "KIND_STYLE"]

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
    "non-isolated": ("0.4", False),
    "non-hyperbolic (undecided)": ("black", False),
}
"""Marker colour and fill (filled = stable) per equilibrium kind."""

REGIME_COLORS = ("#d9d9d9", "#9ecae1", "#74c476", "#fc9272")


def _axes(ax, figsize=(5.5, 4.5)):
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.add_subplot()
        return fig, ax
    return ax.figure, ax


def _mark(ax, x, y, kind, label_seen: set, size=8, zorder=5):
    color, filled = KIND_STYLE.get(kind, ("black", False))
    label = kind if kind not in label_seen else None
    label_seen.add(kind)
    ax.plot([x], [y], "o", ms=size, mec=color, mfc=color if filled else "white", mew=1.8,
            zorder=zorder, label=label, linestyle="none", gid="equilibrium")


# -- phase portrait ----------------------------------------------------------------------


def portrait(
    system: EigenmodeSystem,
    params: Mapping[str, float],
    *,
    x: str = "p",
    y: str = "s",
    fixed: Mapping[str, Any] | None = None,
    ax: Any = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    n_grid: int = 41,
    trajectories: int = 6,
    manifolds: bool = True,
    t_max: float = 60.0,
):
    """Phase portrait in the (x, y) plane: streamlines, both nullclines, every equilibrium on
    the slice marked and coloured by kind (legend), stable (dashed) and unstable (solid)
    manifolds of saddles, and a few trajectories.

    For systems with more than two states the others are held at ``fixed`` values; "manifold"
    for s puts it on the invariant manifold s = p^2/alpha_p. Only equilibria lying on the slice
    are marked. Raises ValueError for unknown or repeated state names or missing fixed values.
    """
    if not isinstance(system, EigenmodeSystem):
        raise TypeError(f"system must be an EigenmodeSystem; got {type(system).__name__}")
    names = system.state_names
    for n in (x, y):
        if n not in names:
            raise ValueError(f"{n!r} is not a state of this system; states are {names}")
    if x == y:
        raise ValueError("x and y must be different states")
    fixed = dict(fixed or {})
    others = [n for n in names if n not in (x, y)]
    missing = [n for n in others if n not in fixed]
    if missing:
        raise ValueError(f"fixed must give the states off the plane: missing {missing} (s may be 'manifold')")
    if any(fixed.get(n) == "manifold" for n in others if n != "s"):
        raise ValueError("only s can be put on the manifold (s = p**2/alpha_p)")
    if fixed.get("s") == "manifold" and "p" not in (x, y):
        raise ValueError("s = 'manifold' needs p on one of the axes")
    f = system.to_numpy()
    f(0.0, np.zeros(len(names)), params)  # validates params once, with a clear error
    f = system.to_numpy(checked=False)
    ix, iy = names.index(x), names.index(y)

    def full(px, py):
        px, py = np.broadcast_arrays(np.asarray(px, float), np.asarray(py, float))
        state = np.zeros(px.shape + (len(names),))
        state[..., ix], state[..., iy] = px, py
        for n in others:
            i = names.index(n)
            if fixed[n] == "manifold":
                state[..., i] = state[..., names.index("p")] ** 2 / params["alpha_p"]
            else:
                state[..., i] = float(fixed[n])
        return state

    eqs = equilibria(system, params)
    on_slice = []
    for e in eqs:
        ref = full(e.x[ix], e.x[iy])
        if np.allclose(ref, e.x, atol=1e-9):
            on_slice.append(e)
    xs = [e.x[ix] for e in on_slice] + [0.0, 1.0]
    ys = [e.x[iy] for e in on_slice] + [0.0, 1.0]
    if xlim is None:
        span = max(xs) - min(xs)
        xlim = (min(xs) - 0.15 * span, max(xs) + 0.15 * span)
    if ylim is None:
        span = max(ys) - min(ys)
        lo = 0.0 if y == "s" else min(ys) - 0.15 * span
        ylim = (lo, max(ys) + 0.15 * span)
    fig, ax = _axes(ax)
    gx, gy = np.linspace(*xlim, n_grid), np.linspace(*ylim, n_grid)
    X, Y = np.meshgrid(gx, gy)
    F = f(0.0, full(X, Y), params)
    U, V = F[..., ix], F[..., iy]
    ax.streamplot(X, Y, U, V, color="0.7", density=1.1, linewidth=0.7, arrowsize=0.8, zorder=1)
    fine_x, fine_y = np.linspace(*xlim, 300), np.linspace(*ylim, 300)
    FX, FY = np.meshgrid(fine_x, fine_y)
    FF = f(0.0, full(FX, FY), params)
    ax.contour(FX, FY, FF[..., ix], levels=[0], colors="tab:blue", linewidths=1.4, zorder=2)
    ax.contour(FX, FY, FF[..., iy], levels=[0], colors="tab:red", linewidths=1.4, linestyles="--", zorder=2)
    ax.plot([], [], color="tab:blue", lw=1.4, label=f"d{x}/dt = 0")
    ax.plot([], [], color="tab:red", lw=1.4, ls="--", label=f"d{y}/dt = 0")

    def plane_rhs(sign):
        return lambda t, z: sign * f(0.0, full(z[0], z[1]), params)[[ix, iy]]

    def leave_box(t, z):
        m = 0.5 * max(xlim[1] - xlim[0], ylim[1] - ylim[0])
        return min(z[0] - xlim[0] + m, xlim[1] + m - z[0], z[1] - ylim[0] + m, ylim[1] + m - z[1])

    leave_box.terminal = True
    with np.errstate(all="ignore"):  # the solver may probe far outside the box before the event stops it
        _draw_orbits(ax, on_slice, names, ix, iy, plane_rhs, leave_box, xlim, ylim, trajectories, manifolds, t_max)
    seen: set = set()
    for e in on_slice:
        _mark(ax, e.x[ix], e.x[iy], e.kind, seen)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(system.spec.label, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.85)
    return fig, ax


def _draw_orbits(ax, on_slice, names, ix, iy, plane_rhs, leave_box, xlim, ylim, trajectories, manifolds, t_max):
    """A few trajectories, and the stable/unstable manifolds of saddles (2-state systems)."""
    from scipy.integrate import solve_ivp

    if trajectories:
        rng = np.random.default_rng(0)
        starts = np.column_stack([rng.uniform(*xlim, trajectories), rng.uniform(*ylim, trajectories)])
        for z0 in starts:
            sol = solve_ivp(plane_rhs(1.0), (0, t_max), z0, method="LSODA", events=leave_box, rtol=1e-7, atol=1e-9,
                            max_step=t_max / 200)
            ax.plot(sol.y[0], sol.y[1], color="tab:cyan", lw=1.0, alpha=0.9, zorder=3)
            ax.plot([z0[0]], [z0[1]], ".", color="tab:cyan", ms=4, zorder=3)
        ax.plot([], [], color="tab:cyan", lw=1.0, label="trajectories")
    if manifolds and len(names) == 2:
        drawn = False
        for e in on_slice:
            if e.kind != "saddle":
                continue
            vals, vecs = np.linalg.eig(e.jacobian)
            for lam, vec in zip(vals.real, vecs.T.real):
                sign = 1.0 if lam > 0 else -1.0
                # leaving an eps-neighbourhood along a direction of rate lam takes ~ ln(1/eps)/|lam|
                t_man = min((np.log(1e5) + 8.0) / max(abs(lam), 1e-3), 20 * t_max)
                for eps in (1e-5, -1e-5):
                    z0 = e.x[[ix, iy]] + eps * vec[[ix, iy]] / np.linalg.norm(vec[[ix, iy]])
                    sol = solve_ivp(plane_rhs(sign), (0, t_man), z0, method="LSODA", events=leave_box, rtol=1e-8,
                                    atol=1e-10, max_step=t_man / 400)
                    ax.plot(sol.y[0], sol.y[1], color="k", lw=1.6, ls="-" if lam > 0 else ":", zorder=4)
                    drawn = True
        if drawn:
            ax.plot([], [], color="k", lw=1.6, label="unstable manifold")
            ax.plot([], [], color="k", lw=1.6, ls=":", label="stable manifold")


# -- one-dimensional flows ---------------------------------------------------------------


def plot_flow_1d(
    system: EigenmodeSystem,
    params: Mapping[str, float],
    *,
    vary: tuple[str, Sequence[float]] | None = None,
    p_range: tuple[float, float] = (-0.2, 1.2),
    ax: Any = None,
):
    """dp/dt against p on the invariant manifold, for several values of one parameter
    (``vary`` = (name, values)); equilibria marked (filled: stable, open: unstable, purple:
    semi-stable). Shows the cubic of the Euclidean loss and the sextic of the cosine loss."""
    reduced = system.reduce()
    if len(reduced.states) != 1:
        raise ValueError(f"plot_flow_1d needs a one-state reduced system; {system.spec.label} reduces to {reduced.state_names}")
    if vary is None:
        vary = (reduced.param_names[1], [params[reduced.param_names[1]]])
    name, values = vary
    if name not in reduced.param_names:
        raise ValueError(f"vary names {name!r}, not a parameter; choose from {reduced.param_names}")
    lo, hi = p_range
    if not lo < hi:
        raise ValueError("p_range must be (low, high) with low < high")
    fig, ax = _axes(ax)
    f = reduced.to_numpy()
    p = np.linspace(lo, hi, 600)
    seen: set = set()
    cmap = __import__("matplotlib").colormaps["viridis"]
    curves, roots = [], []
    for k, v in enumerate(values):
        prm = {**params, name: float(v)}
        color = cmap(k / max(1, len(values) - 1))
        curves.append(f(0.0, p[:, None], prm)[:, 0])
        ax.plot(p, curves[-1], color=color, lw=1.6, label=f"{name} = {float(v):.4g}")
        for e in equilibria(reduced, prm, domain={"p": (lo, hi)}):
            _mark(ax, e.x[0], 0.0, e.kind, seen, size=7)
            roots.append(e.x[0])
    if len(roots) > 1:  # scale y to where the equilibria are, not to the steep tails
        span = max(roots) - min(roots)
        window = (p >= min(roots) - 0.15 * span) & (p <= max(roots) + 0.15 * span)
        top = max(float(np.max(np.abs(c[window]))) for c in curves)
        if top > 0:
            ax.set_ylim(-1.4 * top, 1.4 * top)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("p")
    ax.set_ylabel("dp/dt on s = p²/α_p")
    ax.set_title(f"{system.spec.label}: order {reduced.order}", fontsize=9)
    ax.legend(fontsize=7)
    return fig, ax


# -- bifurcation diagram -----------------------------------------------------------------


def plot_bifurcation(
    system: EigenmodeSystem,
    param: str,
    values: Sequence[float],
    params: Mapping[str, float],
    *,
    n_dense: int = 600,
    ax: Any = None,
):
    """Equilibria p* against ``param``: stable branches solid, unstable dashed, folds (x) and
    transcritical points (o) located by ``bifurcation`` (refined by bisection)."""
    from scipy.optimize import linear_sum_assignment

    values = np.asarray(values, dtype=float)
    bif = bifurcation(system, param, values, params)
    dense = np.linspace(values[0], values[-1], n_dense)
    r = roots_batch(system, {**{k: v for k, v in params.items() if k != param}, param: dense})
    branches: list[list[tuple[float, float, bool]]] = []
    open_ends: list[int] = []
    for i, v in enumerate(dense):
        pts = [(float(z.real), bool(st)) for z, re, st in zip(r.roots[i], r.real[i], r.stable[i]) if re]
        ends = [branches[b][-1][1] for b in open_ends]
        new_open = []
        if ends and pts:
            cost = np.abs(np.subtract.outer(ends, [q for q, _ in pts]))
            rows, cols = linear_sum_assignment(cost)
            used = set()
            for a, b in zip(rows, cols):
                if cost[a, b] < 0.05 * max(1.0, abs(ends[a])) + 5 * abs(dense[1] - dense[0]):
                    branches[open_ends[a]].append((v, pts[b][0], pts[b][1]))
                    new_open.append(open_ends[a])
                    used.add(b)
            rest = [j for j in range(len(pts)) if j not in used]
        else:
            rest = range(len(pts))
        for j in rest:
            branches.append([(v, pts[j][0], pts[j][1])])
            new_open.append(len(branches) - 1)
        open_ends = new_open
    fig, ax = _axes(ax)
    for br in branches:
        arr = np.array([(a, b) for a, b, _ in br])
        st = np.array([c for _, _, c in br])
        for flag, style in ((True, "-"), (False, "--")):
            seg = np.where(st == flag, arr[:, 1], np.nan)
            ax.plot(arr[:, 0], seg, style, color="tab:green" if flag else "tab:red", lw=1.8)
    ax.plot([], [], "-", color="tab:green", label="stable")
    ax.plot([], [], "--", color="tab:red", label="unstable")
    for kind, marker in (("fold", "x"), ("transcritical", "o"), ("touch", "s")):
        pts = [pt for pt in bif.points if pt.kind == kind]
        if pts:
            ax.plot([pt.value for pt in pts], [pt.p for pt in pts], marker, color="k", ms=8, mfc="none", mew=2,
                    label=f"{kind} ({', '.join(f'{pt.value:.4g}' if abs(pt.value) > 1e-9 else '0' for pt in pts)})", linestyle="none", gid=kind)
    ax.set_xlabel(param)
    ax.set_ylabel("p*")
    ax.set_title(f"{system.spec.label}", fontsize=9)
    ax.legend(fontsize=7)
    return fig, ax


# -- regimes, basins, spectra --------------------------------------------------------------


def plot_regimes(reg: Regimes, *, ax: Any = None, path: tuple[Sequence[float], Sequence[float]] | None = None,
                 path_label: str = "path"):
    """The regime map of ``dynamics.regimes`` with one colour per regime (legend), and an
    optional (x, y) path drawn over it."""
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    if not isinstance(reg, Regimes):
        raise TypeError(f"reg must be a Regimes (from dynamics.regimes); got {type(reg).__name__}")
    fig, ax = _axes(ax)
    cmap = ListedColormap(REGIME_COLORS)
    ax.pcolormesh(reg.x_values, reg.y_values, reg.codes, cmap=cmap, norm=BoundaryNorm(np.arange(-0.5, 4.5), 4),
                  shading="nearest", rasterized=True)
    present = sorted(set(np.unique(reg.codes)))
    handles = [Patch(color=REGIME_COLORS[k], label=REGIMES[k]) for k in present]
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
    """Basins of attraction on the grid: collapsed (grey) vs not (blue), with the collapse
    probability in the title."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if not isinstance(b, Basins):
        raise TypeError(f"b must be a Basins (from dynamics.basins); got {type(b).__name__}")
    fig, ax = _axes(ax)
    ax.pcolormesh(b.x_values, b.y_values, (~b.collapsed).astype(int), cmap=ListedColormap(["#bdbdbd", "#6baed6"]),
                  vmin=0, vmax=1, shading="nearest", rasterized=True)
    ax.legend(handles=[Patch(color="#bdbdbd", label="collapses"), Patch(color="#6baed6", label="does not collapse")],
              fontsize=7, loc="best")
    ax.set_xlabel(b.x)
    ax.set_ylabel(b.y)
    ax.set_title(f"basins at t = {b.t1:g}: collapse probability {b.collapse_probability:.2f}", fontsize=9)
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
