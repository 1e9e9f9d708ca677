"""phase_plane on systems that are not SSL models, against closed forms; its argument checks;
basins and the 1-D flow on user systems; plots draw only their data types."""

import matplotlib

matplotlib.use("Agg")

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from derivations import ModelSpec, ODESystem, derive, freeze  # noqa: E402
from dynamics import (  # noqa: E402
    PhasePlane,
    basins,
    phase_plane,
    plot_basins,
    plot_bifurcation,
    plot_flow_1d,
    plot_phase_plane,
    plot_regimes,
    portrait,
)

EUC = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}
SADDLE = ODESystem.from_equations({"x": "a*x", "y": "-b*y"}, params=("a", "b"))
SADDLE_P = {"a": 1.0, "b": 2.0}
LV = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"))
LV_P = {"a": 1.0, "b": 0.5, "c": 0.75, "d": 0.25}


def test_linear_saddle_field_nullclines_manifolds_and_orbits_match_closed_forms():
    # x' = a x, y' = -b y: nullclines x = 0 and y = 0; the saddle's unstable manifold is the
    # x-axis, the stable one the y-axis; orbits keep |x|^b |y|^a constant.
    plane = phase_plane(SADDLE, SADDLE_P, xlim=(-1.0, 1.0), ylim=(-1.0, 1.0), n_grid=11, trajectories=4)
    X, Y = np.meshgrid(plane.grid_x, plane.grid_y)
    np.testing.assert_allclose(plane.u, 1.0 * X, atol=1e-15)
    np.testing.assert_allclose(plane.v, -2.0 * Y, atol=1e-15)
    assert plane.x_nullcline and plane.y_nullcline
    assert max(np.max(np.abs(c[:, 0])) for c in plane.x_nullcline) < 1e-12
    assert max(np.max(np.abs(c[:, 1])) for c in plane.y_nullcline) < 1e-12
    # the nullclines span the window
    assert np.ptp(np.vstack(plane.x_nullcline)[:, 1]) == pytest.approx(2.0)
    assert np.ptp(np.vstack(plane.y_nullcline)[:, 0]) == pytest.approx(2.0)
    (eq,) = plane.equilibria
    assert eq.kind == "saddle"
    kinds = sorted(m.kind for m in plane.manifolds)
    assert kinds == ["stable", "stable", "unstable", "unstable"]
    for m in plane.manifolds:
        axis = 1 if m.kind == "unstable" else 0  # unstable: y = 0; stable: x = 0
        assert np.max(np.abs(m.points[:, axis])) < 1e-6
        assert m.eigenvalue == pytest.approx(1.0 if m.kind == "unstable" else -2.0)
        assert np.max(np.abs(m.points[:, 1 - axis])) > 1.0  # each branch leaves the window
    for kind in ("stable", "unstable"):  # two branches, one on each side of the saddle
        ends = [m.points[-1] for m in plane.manifolds if m.kind == kind]
        axis = 0 if kind == "unstable" else 1
        assert ends[0][axis] * ends[1][axis] < 0
    assert len(plane.trajectories) == 4
    for orbit in plane.trajectories:
        pts = orbit.points
        inv = np.abs(pts[:, 0]) ** 2 * np.abs(pts[:, 1])  # |x|^b |y|^a with a = 1, b = 2
        np.testing.assert_allclose(inv, inv[0], rtol=1e-6)
        np.testing.assert_allclose(pts[:, 0], orbit.start[0] * np.exp(orbit.t), rtol=1e-6)


def test_lotka_volterra_saddle_manifolds_lie_on_the_axes():
    plane = phase_plane(LV, LV_P, trajectories=3, t1=20.0)
    a, b, c, d = LV_P.values()
    # equilibria: the saddle at 0 and the centre at (c/d, a/b)
    pts = sorted(map(tuple, plane.points))
    np.testing.assert_allclose(pts, [(0.0, 0.0), (c / d, a / b)], atol=1e-12)
    stable_m = [m for m in plane.manifolds if m.kind == "stable"]
    unstable_m = [m for m in plane.manifolds if m.kind == "unstable"]
    assert len(stable_m) == len(unstable_m) == 2  # the centre has no manifolds
    for m in unstable_m:  # the x-axis (y = 0 is invariant), eigenvalue a
        assert np.max(np.abs(m.points[:, 1])) < 1e-6 and m.eigenvalue == pytest.approx(a)
        assert np.max(np.abs(m.points[:, 0])) > 0.5 * (plane.xlim[1] - plane.xlim[0])
    for m in stable_m:  # the y-axis, eigenvalue -c
        assert np.max(np.abs(m.points[:, 0])) < 1e-6 and m.eigenvalue == pytest.approx(-c)
    # nullclines: x (a - b y) = 0 and y (d x - c) = 0; the numerators are bilinear, so marching
    # squares is exact up to rounding
    for line in plane.x_nullcline:
        assert np.all(np.minimum(np.abs(line[:, 0]), np.abs(line[:, 1] - a / b)) < 1e-9)
    for line in plane.y_nullcline:
        assert np.all(np.minimum(np.abs(line[:, 1]), np.abs(line[:, 0] - c / d)) < 1e-9)
    # orbits conserve H = d x - c ln x + b y - a ln y (those starting in the positive quadrant)
    inside = [o for o in plane.trajectories if np.all(o.start > 0)]
    assert inside
    for o in inside:
        x, y = o.points[:, 0], o.points[:, 1]
        H = d * x - c * np.log(x) + b * y - a * np.log(y)
        np.testing.assert_allclose(H, H[0], rtol=1e-5)


def test_slice_on_a_declared_manifold_of_a_user_system():
    # u' = -u, v' = -v + w, w' = -2 w: the graph w = u**2 is invariant; on it v' = u^2 - v,
    # so the v-nullcline is the parabola v = u^2 and the u-nullcline is u = 0.
    sys3 = ODESystem.from_equations({"u": "-k*u", "v": "-v + w", "w": "-2*k*w"}, params=("k",), manifold={"w": "u**2"})
    plane = phase_plane(sys3, {"k": 1.0}, x="u", y="v", fixed={"w": "manifold"}, xlim=(-1, 1), ylim=(-0.5, 1.5),
                        trajectories=2)
    assert plane.invariant and plane.fixed == {"w": "manifold"}
    line = np.vstack(plane.y_nullcline)
    assert np.max(np.abs(line[:, 1] - line[:, 0] ** 2)) < 1e-4  # marching squares on a 300-point grid
    assert np.max(np.abs(np.vstack(plane.x_nullcline)[:, 0])) < 1e-12
    (eq,) = plane.equilibria
    np.testing.assert_allclose(eq.x, [0.0, 0.0, 0.0], atol=1e-12)
    # orbits: u = u0 e^{-t}, v = (v0 - u0^2) e^{-t} + u0^2 e^{-t} ... closed form of v' = u0^2 e^{-2t} - v
    for o in plane.trajectories:
        u0, v0 = o.start
        t = o.t
        v_exact = (v0 + u0**2) * np.exp(-t) - u0**2 * np.exp(-2 * t)
        np.testing.assert_allclose(o.points[:, 0], u0 * np.exp(-t), atol=1e-7)
        np.testing.assert_allclose(o.points[:, 1], v_exact, atol=1e-7)
    assert "w on its manifold" in plane.title


def test_fixed_values_are_checked():
    ema = derive(ModelSpec("euclidean", "ema"))
    params = dict(EUC, beta=0.5)
    with pytest.raises(TypeError, match=r"fixed\['tau'\] must be a real number or 'manifold'"):
        phase_plane(ema, params, fixed={"tau": "1"})
    with pytest.raises(ValueError, match=r"fixed\['p'\].*axis"):
        phase_plane(ema, params, fixed={"p": 0.3, "tau": 1.0})
    with pytest.raises(ValueError, match="only s can be put on the manifold"):
        phase_plane(ema, params, fixed={"tau": "manifold"})
    with pytest.raises(ValueError, match="declares no invariant manifold"):
        phase_plane(ODESystem.from_equations({"x": "y", "y": "z", "z": "-x"}), {}, fixed={"z": "manifold"})
    with pytest.raises(ValueError, match="at least two states"):
        phase_plane(ODESystem.from_equations({"x": "-x"}), {})
    with pytest.raises(TypeError, match="system must be"):
        phase_plane("lv", LV_P)
    with pytest.raises(ValueError, match="t1"):
        phase_plane(SADDLE, SADDLE_P, t1=0.0)
    with pytest.raises(ValueError, match="xlim"):
        phase_plane(SADDLE, SADDLE_P, xlim=(1.0, 1.0))


def test_default_window_respects_the_state_domain_and_shows_boundary_markers_whole():
    system = derive(ModelSpec("euclidean"))
    plane = phase_plane(system, EUC, trajectories=0)
    assert plane.ylim[0] == 0.0  # s >= 0
    ps = plane.points
    assert plane.xlim[0] < ps[:, 0].min() and plane.xlim[1] > ps[:, 0].max()
    fig, ax = plot_phase_plane(plane)
    on_edge = [ln for ln in ax.lines if ln.get_gid() == "equilibrium" and ln.get_ydata()[0] == 0.0]
    assert on_edge and all(not ln.get_clip_on() for ln in on_edge)
    # the legend is outside the axes: it covers no data
    assert ax.get_legend().get_bbox_to_anchor().x0 >= ax.bbox.x1


def test_phase_plane_is_frozen_data_and_portrait_draws_it():
    plane = phase_plane(SADDLE, SADDLE_P, trajectories=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plane.x = "y"
    with pytest.raises(ValueError):
        plane.u[0, 0] = 1.0
    fig, ax = portrait(SADDLE, SADDLE_P, trajectories=1)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["$dx/dt = 0$", "$dy/dt = 0$"] and "saddle" in labels and "unstable manifold" in labels
    assert ax.get_xlabel() == "$x$" and ax.get_ylabel() == "$y$"


def test_plots_take_only_their_data_types():
    with pytest.raises(TypeError, match="plane must be a PhasePlane"):
        plot_phase_plane(SADDLE)
    with pytest.raises(TypeError, match="bif must be a Bifurcation"):
        plot_bifurcation({"branches": ()})
    with pytest.raises(TypeError, match="b must be a Basins"):
        plot_basins(None)
    with pytest.raises(TypeError, match="reg must be a Regimes"):
        plot_regimes(np.zeros((2, 2)))
    assert PhasePlane.__dataclass_params__.frozen


def test_flow_1d_on_a_user_system_and_the_refusal_for_two_states():
    sn = ODESystem.from_equations({"x": "r + x**2"}, params=("r",))
    fig, ax = plot_flow_1d(sn, {"r": -1.0}, vary=("r", [-1.0, -0.25]), xlim=(-1.5, 1.5))
    marks = sorted(ln.get_xdata()[0] for ln in ax.lines if ln.get_gid() == "equilibrium")
    np.testing.assert_allclose(marks, [-1.0, -0.5, 0.5, 1.0], atol=1e-12)  # x* = +-sqrt(-r)
    assert ax.get_xlabel() == "$x$" and ax.get_ylabel() == "$dx/dt$"
    with pytest.raises(ValueError, match=r"derivations\.freeze"):
        plot_flow_1d(LV, LV_P)
    ema = derive(ModelSpec("euclidean", "ema"))
    with pytest.raises(ValueError, match=r"derivations\.freeze\(system\.reduce\(\), 'tau'\)"):
        plot_flow_1d(ema, dict(EUC, beta=0.5))
    frozen = freeze(ema.reduce(), "tau")  # with tau a parameter the EMA mode is one state
    fig, ax = plot_flow_1d(frozen, dict(EUC, beta=0.5, tau=1.0), xlim=(-0.2, 1.0))
    assert ax.get_xlabel() == "$p$" and ax.get_ylabel() == r"$dp/dt$ on $s = p^{2}/\alpha_p$"


def test_basins_of_a_system_without_collapse_are_labelled_by_attractor():
    # x' = x - x^3, y' = -y: stable nodes at (+-1, 0); the basin boundary is x = 0
    bistable = ODESystem.from_equations({"x": "x - x**3", "y": "-y"})
    b = basins(bistable, {"x": np.array([-0.9, -0.2, 0.3, 1.4]), "y": np.array([-1.0, 0.5])}, {}, t1=40.0,
               backend="scipy")
    assert b.collapse_states == () and not b.collapsed.any() and b.collapse_probability == 0.0
    target = np.array([e.x[0] for e in b.attractors])[b.attractor]
    np.testing.assert_array_equal(target, np.sign(b.x_values)[None, :].repeat(2, axis=0))
    fig, ax = plot_basins(b)
    assert "basins of attraction" in ax.get_title()
    with pytest.raises(TypeError, match=r"fixed\['y'\]"):
        basins(ODESystem.from_equations({"x": "-x", "y": "-y", "z": "-z"}), {"x": [0, 1], "z": [0, 1]}, {},
               fixed={"y": "0.5"})


def test_basins_accept_the_manifold_in_fixed():
    ema = derive(ModelSpec("euclidean", "ema"))
    params = dict(EUC, beta=0.5)
    p0 = np.array([0.3, 0.9])
    b = basins(ema, {"p": p0, "tau": np.array([0.8, 1.2])}, params, fixed={"s": "manifold"}, t1=5.0, backend="scipy")
    # the manifold s = p^2/alpha_p is invariant: trajectories that start on it stay on it
    final = b.final
    np.testing.assert_allclose(final[..., 1], final[..., 0] ** 2 / EUC["alpha_p"], rtol=1e-6, atol=1e-9)


def test_portrait_checks_fixed_as_phase_plane_does_and_the_plane_keeps_the_manifold_graph():
    import sympy as sp

    ema = derive(ModelSpec("euclidean", "ema"))
    params = dict(EUC, beta=0.5)
    with pytest.raises(TypeError, match=r"fixed\['tau'\] must be a real number or 'manifold'.*'1'"):
        portrait(ema, params, fixed={"tau": "1"})
    with pytest.raises(ValueError, match=r"fixed\['tau'\].*axis"):
        portrait(ema, params, x="p", y="tau", fixed={"tau": 1.0, "s": "manifold"})
    plane = phase_plane(ema, params, x="p", y="tau", fixed={"s": "manifold"}, trajectories=0, manifolds=False)
    p, alpha_p = sp.symbols("p alpha_p")
    assert list(plane.on_manifold) == ["s"] and sp.simplify(plane.on_manifold["s"] - p**2 / alpha_p) == 0
    assert "s on its manifold s = p**2/alpha_p" in plane.title
    with pytest.raises(TypeError, match="manifolds must be True or False"):
        phase_plane(SADDLE, SADDLE_P, manifolds=1)


def test_basins_leave_initial_states_on_the_collapse_boundary_out_of_the_fractions():
    """x' = x (x - 1), y' = -y, collapse (x, y): from 0 < x0 < 1 the state collapses, from x0 > 1
    x blows up at t = ln(x0 / (x0 - 1)). The faces x = 0 and y = 0 are invariant: points there
    are excluded (the column x0 = 0 and the row y0 = 0: 5 of 8), and the collapse probability
    is that of the three counted points, 2/3 (counting every point gave 6/8)."""
    from dynamics import basins

    system = ODESystem.from_equations({"x": "x*(x - 1)", "y": "-y"}, collapse=("x", "y"))
    b = basins(system, {"x": [0.0, 0.25, 0.5, 2.0], "y": [0.0, 1.0]}, {}, t1=10.0, backend="scipy", progress=False)
    expected = np.array([[True, True, True, True], [True, False, False, False]])
    np.testing.assert_array_equal(b.excluded, expected)
    assert b.n_excluded == 5 and b.collapse_probability == pytest.approx(2 / 3)
    assert b.collapsed[0, 0] and b.collapsed[1, 1] and not b.collapsed[1, 3]
    assert "5 points on the collapse boundary excluded" in repr(b)


def test_basins_of_an_eigenmode_system_exclude_the_s_zero_row():
    """Euclidean SimSiam mode, eta = 0.05: the s = 0 row (ds/dt = s (...) keeps s = 0, p decays)
    collapses whatever p0 is; it is excluded, the p = 0 column (dp/dt = s - ... is not zero
    there) is not."""
    from dynamics import basins

    euclid = derive(ModelSpec("euclidean"))
    grid = {"p": np.linspace(-0.3, 1.2, 7), "s": np.linspace(0, 0.12, 5)}
    b = basins(euclid, grid, {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}, t1=200.0, backend="scipy", progress=False)
    assert np.all(b.excluded[0]) and not np.any(b.excluded[1:]) and b.n_excluded == 7
    assert np.all(b.collapsed[0])
    assert b.collapse_probability == pytest.approx(np.mean(b.collapsed[1:]))
    assert b.collapse_probability < np.mean(b.collapsed)
    assert sum(b.fractions().values()) == pytest.approx(1.0)
