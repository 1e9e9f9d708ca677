"""interactive_portrait: sliders recompute the equilibria and their kinds (checked against closed
forms), for textbook systems and a derived SSL system; bad input raises clear errors. Driven
through the object's methods, with no Jupyter frontend."""

import math
import sys

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from derivations import ModelSpec, ODESystem, derive  # noqa: E402
from dynamics import InteractivePortrait, interactive_portrait, portrait  # noqa: E402

TOL = 1e-9


def _points(ui, state):
    return sorted((float(e.point[state]), e.kind, e.stable) for e in ui.equilibria)


def test_saddle_node_2d_recomputes_on_slider_move():
    # dx/dt = mu - x^2, dy/dt = -y: equilibria (+-sqrt(mu), 0) for mu > 0, none for mu < 0.
    # Jacobian diag(-2x, -1): at +sqrt(mu) a stable node, at -sqrt(mu) a saddle.
    sn = ODESystem.from_equations({"x": "mu - x**2", "y": "-y"}, params=("mu",))
    ui = interactive_portrait(sn, {"mu": (-1.0, 1.0, 0.01)}, {"mu": 0.25}, n_grid=9, trajectories=0,
                              xlim=(-2, 2), ylim=(-1, 1))
    assert isinstance(ui, InteractivePortrait)
    assert ui.params == {"mu": 0.25}
    for mu in (0.25, 0.64):
        ui.update(mu=mu)
        r = math.sqrt(mu)
        pts = _points(ui, "x")
        assert [p[1:] for p in pts] == [("saddle", False), ("stable node", True)]
        assert abs(pts[0][0] + r) < TOL and abs(pts[1][0] - r) < TOL
        assert all(abs(e.point["y"]) < TOL for e in ui.equilibria)
        # the drawn plane holds the same points
        assert np.allclose(np.sort(ui.plane.points[:, 0]), [-r, r], atol=1e-9)
        assert "saddle" in ui.summary.value and "stable node" in ui.summary.value
    # a slider moved as a frontend would move it (no update call) recomputes too
    ui.sliders["mu"].value = -0.3
    assert ui.params == {"mu": -0.3}
    assert len(ui.equilibria) == 0 and len(ui.plane.points) == 0
    assert "no equilibria" in ui.summary.value


def test_pitchfork_1d_flow_and_png():
    # dx/dt = r x - x^3: r > 0: 0 unstable, +-sqrt(r) stable (f' = r - 3x^2 = -2r); r < 0: 0 stable.
    pf = ODESystem.from_equations({"x": "r*x - x**3"}, params=("r",))
    ui = interactive_portrait(pf, {"r": (-1.0, 1.0)}, {})
    assert ui.params == {"r": 0.0}  # omitted: the middle of the range
    assert ui.sliders["r"].step == pytest.approx(0.02)
    ui.update(r=0.49)
    pts = _points(ui, "x")
    assert [p[2] for p in pts] == [True, False, True]
    assert np.allclose([p[0] for p in pts], [-0.7, 0.0, 0.7], atol=TOL)
    assert ui.plane is None  # one state: drawn by plot_flow_1d
    assert ui.png[:8] == b"\x89PNG\r\n\x1a\n"
    ui.update(r=-0.49)
    pts = _points(ui, "x")
    assert len(pts) == 1 and abs(pts[0][0]) < TOL and pts[0][2] is True
    # displaying it renders the picture into the widget and hands the widget's bundle over
    bundle = ui._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert ui.image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_euclidean_kinds_change_across_the_threshold():
    # Reduced Euclidean mode: dp/dt = p^2 - c p^3 - eta p; nonzero roots (1 +- sqrt(1 - 4 c eta))/(2c)
    # exist for eta < 1/(4c) (the smaller unstable, the larger stable) and vanish above it.
    sigma2 = 0.2
    c = 1 + sigma2
    eta_fold = 1 / (4 * c)
    reduced = derive(ModelSpec("euclidean")).reduce()
    ui = interactive_portrait(reduced, {"eta": (0.0, 0.4)}, {"sigma2": sigma2, "alpha_p": 1.0, "eta": 0.1})
    below = 0.8 * eta_fold
    ui.update(eta=below)
    disc = math.sqrt(1 - 4 * c * below)
    pts = _points(ui, "p")
    assert np.allclose([p[0] for p in pts], [0.0, (1 - disc) / (2 * c), (1 + disc) / (2 * c)], atol=TOL)
    assert [p[2] for p in pts] == [True, False, True]
    ui.update(eta=1.2 * eta_fold)
    pts = _points(ui, "p")
    assert len(pts) == 1 and abs(pts[0][0]) < TOL and pts[0][2] is True
    assert ui.params == {"sigma2": sigma2, "eta": 1.2 * eta_fold, "alpha_p": 1.0}


def test_euclidean_plane_saddle_below_threshold():
    # The (p, s) system: below 1/(4c) the small root is a saddle of the plane, on s = p^2/alpha_p.
    sigma2, alpha_p = 0.2, 2.0
    c = 1 + sigma2
    system = derive(ModelSpec("euclidean"))
    ui = interactive_portrait(system, {"eta": (0.0, 0.4)}, {"sigma2": sigma2, "alpha_p": alpha_p, "eta": 0.1},
                              n_grid=9, trajectories=0, manifolds=False)
    ui.update(eta=0.1)
    disc = math.sqrt(1 - 4 * c * 0.1)
    kinds = {round(e.point["p"], 9): (e.kind, e.point["s"]) for e in ui.equilibria}
    p_small, p_big = (1 - disc) / (2 * c), (1 + disc) / (2 * c)
    got = sorted(kinds)
    assert np.allclose(got, [0.0, p_small, p_big], atol=1e-8)
    assert kinds[got[1]][0] == "saddle" and kinds[got[2]][0] == "stable node"
    assert abs(kinds[got[2]][1] - p_big**2 / alpha_p) < 1e-8
    ui.update(eta=0.3)
    assert [e.kind for e in ui.equilibria] == ["stable node"] and ui.equilibria[0].collapsed


def test_error_during_slider_move_is_shown_and_state_kept(monkeypatch):
    import dynamics._interactive as mod

    pf = ODESystem.from_equations({"x": "r*x - x**3"}, params=("r",))
    ui = interactive_portrait(pf, {"r": (-1.0, 1.0)}, {"r": 0.25})
    before = ui.equilibria

    def broken(*args, **kwargs):
        raise RuntimeError("solver broke")

    monkeypatch.setattr(mod, "equilibria", broken)
    ui.sliders["r"].value = 0.5  # a frontend move: no exception escapes the callback
    assert ui.error == "RuntimeError: solver broke" and "solver broke" in ui.summary.value
    assert ui.equilibria is before and ui.params == {"r": 0.25}
    with pytest.raises(RuntimeError, match="solver broke"):
        ui.update(r=0.3)  # scripted use raises, and the slider moves back
    assert ui.sliders["r"].value == 0.5 and ui.params == {"r": 0.25}
    monkeypatch.undo()
    ui.update(r=0.36)
    assert ui.error is None and np.allclose(sorted(float(e.x[0]) for e in ui.equilibria), [-0.6, 0, 0.6], atol=TOL)


@pytest.fixture(scope="module")
def pitchfork():
    return ODESystem.from_equations({"x": "r*x - x**3"}, params=("r",))


@pytest.mark.parametrize("sliders, match", [
    ({"q": (0, 1)}, r"sliders names 'q', not a parameter.*\('r',\)"),
    ({"r": (1, 1)}, r"sliders\['r'\].*lo < hi"),
    ({"r": (2, 1)}, r"sliders\['r'\].*lo < hi"),
    ({"r": (0, 1, 0)}, r"step"),
    ({"r": (0, 1, 2)}, r"step"),
    ({"r": (0, float("nan"))}, r"sliders\['r'\] hi must be finite"),
    ({"r": (0,)}, r"sliders\['r'\] must be \(lo, hi\)"),
    ({}, r"at least one parameter"),
])
def test_bad_sliders(pitchfork, sliders, match):
    with pytest.raises(ValueError, match=match):
        interactive_portrait(pitchfork, sliders, {"r": 0.5})


def test_bad_input_messages(pitchfork):
    reduced = derive(ModelSpec("euclidean")).reduce()
    base = {"sigma2": 0.2, "alpha_p": 1.0, "eta": 0.1}
    with pytest.raises(ValueError, match=r"sliders\['eta'\] = \(-0.1, 0.3\) leaves the parameter's domain.*eta >= 0"):
        interactive_portrait(reduced, {"eta": (-0.1, 0.3)}, base)
    with pytest.raises(ValueError, match=r"sliders\['alpha_p'\].*alpha_p > 0"):
        interactive_portrait(reduced, {"alpha_p": (0.0, 2.0)}, base)  # open at 0
    with pytest.raises(ValueError, match=r"params\['eta'\] = 0.5 is outside its slider's range"):
        interactive_portrait(reduced, {"eta": (0.0, 0.4)}, {**base, "eta": 0.5})
    with pytest.raises(ValueError, match="sigma2"):
        interactive_portrait(reduced, {"eta": (0.0, 0.4)}, {"alpha_p": 1.0})  # sigma2 missing
    with pytest.raises(TypeError, match="sliders must be a dict"):
        interactive_portrait(pitchfork, [("r", 0, 1)], {})
    with pytest.raises(TypeError, match="lo must be a real number"):
        interactive_portrait(pitchfork, {"r": ("0", 1)}, {})
    with pytest.raises(TypeError, match="system must be"):
        interactive_portrait("x' = -x", {"r": (0, 1)}, {})
    with pytest.raises(TypeError, match=r"'n_grid'.*plot_flow_1d.*xlim"):
        interactive_portrait(pitchfork, {"r": (0, 1)}, {}, n_grid=9)
    with pytest.raises(TypeError, match=r"'ax'.*own figure"):
        interactive_portrait(pitchfork, {"r": (0, 1)}, {}, ax=None)
    ui = interactive_portrait(pitchfork, {"r": (0.0, 1.0)}, {"r": 0.5})
    with pytest.raises(ValueError, match=r"update names 's', which has no slider; sliders are \('r',\)"):
        ui.update(s=0.1)
    with pytest.raises(ValueError, match=r"outside its slider's range \[0, 1\]"):
        ui.update(r=1.5)
    assert ui.params == {"r": 0.5}


def test_refused_by_portrait_same_error():
    # three states and no `fixed`: portrait refuses; the interactive portrait says the same
    lorenz = ODESystem.from_equations({"x": "a*(y - x)", "y": "x*(b - z) - y", "z": "x*y - z"}, params=("a", "b"))
    params = {"a": 10.0, "b": 0.5}
    with pytest.raises(ValueError) as expected:
        portrait(lorenz, params)
    with pytest.raises(ValueError) as got:
        interactive_portrait(lorenz, {"b": (0.0, 2.0)}, params)
    assert str(got.value) == str(expected.value) and "fixed" in str(got.value)
    with pytest.raises(ValueError, match="not a state"):
        interactive_portrait(lorenz, {"b": (0.0, 2.0)}, params, x="w", fixed={"z": 0.0})


def test_missing_ipywidgets_says_how_to_install(monkeypatch, pitchfork):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ImportError, match=r'pip install "ncdyn\[interactive\]"'):
        interactive_portrait(pitchfork, {"r": (0, 1)}, {})
