"""Paper-ready figures: legends off the data, labels and titles in mathtext with the
parameter values and the slice, 1-D flow markers on their curve's colour with none painted over,
blow-ups in basin maps, clear errors for plotting arguments of the wrong kind, and figures that
display in Jupyter. Every figure is rendered (Agg) so that mathtext errors surface."""

import io
import re
import subprocess
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402

from derivations import ModelSpec, ODESystem, derive  # noqa: E402
from dynamics import (  # noqa: E402
    Basins,
    Regimes,
    basins,
    bifurcation,
    plot_basins,
    plot_bifurcation,
    plot_flow_1d,
    plot_regimes,
    plot_spectra,
    portrait,
)

EUC = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}
COS = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 2.0, "N_phi": 1.5, "T": 1.0}
# x' = x (x - r): the transcritical normal form (Strogatz 3.2). r = 0: x = 0 semi-stable (f = x^2 > 0
# on both sides, attracting from the left); r > 0: x = 0 stable (f'(0) = -r), x = r unstable (f'(r) = r).
TRANSCRITICAL = ODESystem.from_equations({"x": "x*(x - r)"}, params=("r",))
SADDLE = ODESystem.from_equations({"x": "a*x", "y": "-b*y"}, params=("a", "b"))


def render(fig):
    fig.savefig(io.BytesIO(), format="png", dpi=60)  # draws every text: a bad mathtext raises here


def legends(ax):
    return [a for a in ax.get_children() if isinstance(a, Legend)]


def assert_legends_off_the_data(fig, ax):
    """Every legend lies outside the axes (so it covers no marker, orbit or map cell) and
    inside the figure (constrained layout made room for it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if hasattr(fig.canvas, "get_renderer") else FigureCanvasAgg(fig)
    canvas.draw()
    r = canvas.get_renderer()
    box = ax.get_window_extent(r)
    found = legends(ax)
    assert found
    for leg in found:
        lb = leg.get_window_extent(r)
        assert lb.x0 >= box.x1 - 0.5 or lb.x1 <= box.x0 + 0.5 or lb.y0 >= box.y1 - 0.5 or lb.y1 <= box.y0 + 0.5, \
            (lb, box)
        fb = fig.bbox
        assert fb.x0 - 0.5 <= lb.x0 and lb.x1 <= fb.x1 + 0.5 and fb.y0 - 0.5 <= lb.y0 and lb.y1 <= fb.y1 + 0.5


def outside_math(text):
    return re.sub(r"(?<!\\)\$.*?(?<!\\)\$", "", text)


def assert_readable(ax, names):
    """x and y labels present; no underscore and no code identifier (a name of ``names`` with
    more than one character) outside mathtext in the labels, title and legend texts."""
    assert ax.get_xlabel() and ax.get_ylabel()
    texts = [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
    for leg in legends(ax):
        texts += [t.get_text() for t in leg.get_texts()] + [leg.get_title().get_text()]
    for text in texts:
        plain = outside_math(text)
        assert "_" not in plain, text
        for n in names:
            if len(n) > 1:
                assert not re.search(rf"\b{re.escape(n)}\b", plain), (n, text)


def _regimes():
    codes = np.array([[0, 0, 1], [0, 1, 1]])
    return Regimes("scale", "eta", np.array([0.2, 0.5, 1.0]), np.array([0.1, 0.3]), codes,
                   ("collapse only", "bistable"))


def _pitchfork():
    from dynamics import Bifurcation, BifurcationPoint
    from dynamics._bifurcation import Branch

    r = np.linspace(-1, 1, 21)
    pos = r[r >= 0]
    branches = (Branch(r, np.zeros((r.size, 1)), r < 0), Branch(pos, np.sqrt(pos)[:, None], np.ones(pos.size, bool)))
    return Bifurcation("alpha_p", r, np.zeros((21, 1, 1)), np.zeros((21, 1), bool), np.ones((21, 1), bool),
                       (BifurcationPoint("pitchfork", 0.0, np.array([0.0])),), state_names=("x",), branches=branches,
                       system_name="pitchfork normal form")


# -- legends ---------------------------------------------------------------------------------


def test_portrait_legends_leave_the_saddles_free():
    # the cosine mode has a saddle at p ~ -1.26, s ~ 1.58, in the upper left where a legend sat
    cosine = derive(ModelSpec("cosine"))
    fig, ax = portrait(cosine, COS, trajectories=2)
    saddles = [ln for ln in ax.lines if ln.get_gid() == "equilibrium" and ln.get_xdata()[0] < -1.0]
    assert saddles
    assert_legends_off_the_data(fig, ax)
    ema = derive(ModelSpec("euclidean", "ema"))
    fig, ax = portrait(ema, dict(EUC, beta=0.5), x="p", y="tau", fixed={"s": "manifold"}, trajectories=0)
    assert_legends_off_the_data(fig, ax)


def test_flow_bifurcation_regime_and_basin_legends_sit_off_the_data():
    fig, ax = plot_flow_1d(TRANSCRITICAL, {}, vary=("r", [0.0, 0.5, 1.0]), xlim=(-0.5, 1.5))
    assert_legends_off_the_data(fig, ax)
    fig, ax = plot_bifurcation(_pitchfork())
    assert_legends_off_the_data(fig, ax)
    fig, ax = plot_regimes(_regimes(), path=([1.0, 0.4], [0.3, 0.3]))
    assert_legends_off_the_data(fig, ax)
    b = basins(TRANSCRITICAL_2D, {"x": [-0.5, 0.5, 2.0], "y": [0.0, 1.0]}, {"r": 1.0}, t1=10.0, backend="scipy")
    fig, ax = plot_basins(b)
    assert_legends_off_the_data(fig, ax)


# -- labels and titles -------------------------------------------------------------------------


def test_portrait_title_says_system_parameters_and_slice_in_mathtext():
    ema = derive(ModelSpec("euclidean", "ema"))
    params = dict(EUC, beta=0.5)
    fig, ax = portrait(ema, params, fixed={"tau": 1.0}, trajectories=0)
    render(fig)
    title = ax.get_title()
    assert title.splitlines()[0] == ema.name
    for piece in (r"$\sigma^2 = 0.2$", r"$\eta = 0.05$", r"$\alpha_p = 1$", r"$\beta = 0.5$", r"slice $\tau = 1$"):
        assert piece in title, piece
    assert_readable(ax, ema.param_names + ema.state_names)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$p$", "$s$")
    fig, ax = portrait(ema, params, x="p", y="tau", fixed={"s": "manifold"}, trajectories=0)
    render(fig)
    assert r"on the manifold $s = p^{2}/\alpha_p$" in ax.get_title()
    assert ax.get_ylabel() == r"$\tau$"
    assert r"$d\tau/dt = 0$" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert_readable(ax, ema.param_names + ema.state_names)


def test_every_panel_has_mathtext_labels_and_a_title_with_values():
    euclid = derive(ModelSpec("euclidean"))
    fig, ax = plot_flow_1d(euclid, EUC, vary=("eta", [0.0, 0.1]), xlim=(-0.2, 1.2))
    render(fig)
    assert ax.get_ylabel() == r"$dp/dt$ on $s = p^{2}/\alpha_p$" and ax.get_xlabel() == "$p$"
    assert r"$\sigma^2 = 0.2$" in ax.get_title() and r"$\eta" not in ax.get_title()  # eta is the varied one
    assert legends(ax)[0].get_title().get_text() == r"$\eta$"
    assert_readable(ax, euclid.param_names)
    fig, ax = plot_bifurcation(bifurcation(euclid, ("eta", np.linspace(0, 0.4, 5)), {"sigma2": 0.2, "alpha_p": 1.0}, n_dense=60))
    render(fig)
    assert ax.get_xlabel() == r"$\eta$" and ax.get_ylabel() == "$p^*$"
    assert r"$\sigma^2 = 0.2$" in ax.get_title()
    assert any(t.get_text() == r"fold at $\eta = 0.2083$" for t in ax.get_legend().get_texts())  # 1/(4 (1 + 0.2))
    assert_readable(ax, euclid.param_names)
    fig, ax = plot_regimes(_regimes())
    render(fig)
    assert (ax.get_xlabel(), ax.get_ylabel()) == (r"$\mathrm{scale}$", r"$\eta$")
    b = basins(euclid, {"p": [0.01, 0.8], "s": [0.0, 0.64]}, EUC, t1=50.0, backend="scipy")
    fig, ax = plot_basins(b)
    render(fig)
    assert r"$\sigma^2 = 0.2$" in ax.get_title() and euclid.name in ax.get_title()
    assert_readable(ax, euclid.param_names)


def test_spectra_labels_are_mathtext():
    class Run:  # the arrays of a network run: two modes, p_j = e^{-t} j
        t = np.linspace(0, 1, 5)
        p = np.exp(-t)[:, None] * np.array([1.0, 2.0])
        s = p**2
        psi_norm2 = np.sum(p**2, axis=1)
        phi_norm2 = np.sum(s, axis=1)

    fig, ax = plot_spectra(Run(), {"leading": {"p": Run.p, "s": Run.s}}, modes=2, scale_free=True)
    render(fig)
    assert ax.get_ylabel().startswith(r"$p_j / \|\Psi\|_F$") and ax.get_xlabel() == "$t$"
    assert_readable(ax, ("psi_norm2",))
    (line,) = [ln for ln in ax.lines if ln.get_color() == "k" and len(ln.get_xdata())][-1:]
    np.testing.assert_allclose(line.get_ydata(), 2 / np.sqrt(5), rtol=1e-12)  # p_2/||p|| = 2/sqrt(1 + 4)


# -- the one-dimensional flow ------------------------------------------------------------------


def test_flow_markers_take_their_curves_colour_and_none_is_painted_over():
    from matplotlib.colors import same_color

    fig, ax = plot_flow_1d(TRANSCRITICAL, {}, vary=("r", [0.0, 0.5, 1.0]), xlim=(-0.5, 1.5))
    render(fig)
    curves = {ln.get_label(): ln.get_color() for ln in ax.lines if ln.get_gid() == "curve"}
    assert list(curves) == ["0", "0.5", "1"]
    marks = [ln for ln in ax.lines if ln.get_gid() == "equilibrium"]
    at = sorted(round(float(m.get_xdata()[0]), 9) for m in marks)
    assert at == [0.0, 0.0, 0.0, 0.5, 1.0]  # x* = 0 for every r, and x* = r
    colour = {r: curves[lab] for r, lab in ((0.0, "0"), (0.5, "0.5"), (1.0, "1"))}
    for m in marks:
        assert not m.get_clip_on()
    # x = r (r > 0): unstable, open, edged in its curve's colour
    for r in (0.5, 1.0):
        (m,) = [m for m in marks if abs(m.get_xdata()[0] - r) < 1e-9]
        assert same_color(m.get_markeredgecolor(), colour[r]) and same_color(m.get_markerfacecolor(), "white")
    # x = 0: stable for r = 0.5 and 1 (filled in their colours), semi-stable for r = 0 (half filled,
    # on the left: x' = x^2 > 0 brings the flow in from the left); drawn as concentric markers
    zero = sorted((m for m in marks if m.get_xdata()[0] == 0.0), key=lambda m: m.get_zorder())
    assert [m.get_markersize() for m in zero] == sorted((m.get_markersize() for m in zero), reverse=True)
    assert len({m.get_markersize() for m in zero}) == 3
    top = zero[-1]
    assert top.get_fillstyle() == "left" and same_color(top.get_markeredgecolor(), colour[0.0])
    for m in zero[:2]:
        assert m.get_fillstyle() == "full" and same_color(m.get_markerfacecolor(), m.get_markeredgecolor())
    assert {tuple(matplotlib.colors.to_rgba(m.get_markeredgecolor())) for m in zero[:2]} == \
        {tuple(matplotlib.colors.to_rgba(colour[r])) for r in (0.5, 1.0)}
    # two legends: the curves (titled by the parameter), then the marker kinds; not interleaved
    curve_leg, kind_leg = legends(ax)
    assert curve_leg.get_title().get_text() == "$r$"
    assert [t.get_text() for t in curve_leg.get_texts()] == ["0", "0.5", "1"]
    assert [t.get_text() for t in kind_leg.get_texts()] == ["stable", "unstable", "semi-stable"]


def test_flow_1d_ylim_and_bad_arguments():
    fig, ax = plot_flow_1d(TRANSCRITICAL, {"r": 0.5}, xlim=(-0.5, 1.5), ylim=(-0.2, 0.3))
    assert ax.get_ylim() == (-0.2, 0.3)
    with pytest.raises(TypeError, match="vary values must be numeric, not text"):
        plot_flow_1d(TRANSCRITICAL, {}, vary=("r", "abc"))
    with pytest.raises(ValueError, match="1-D"):
        plot_flow_1d(TRANSCRITICAL, {}, vary=("r", [[0.1, 0.2]]))
    with pytest.raises(TypeError, match="params must be a dict"):
        plot_flow_1d(TRANSCRITICAL, None)
    with pytest.raises(ValueError, match="ylim"):
        plot_flow_1d(TRANSCRITICAL, {"r": 0.5}, ylim=(1.0, 0.0))


# -- basins ------------------------------------------------------------------------------------

# x' = x (x - r), y' = -y with collapse at x = y = 0: from x0 < r the state collapses, from x0 > r
# x blows up at t = ln(x0 / (x0 - r)) (x(t) = r x0 / (x0 - (x0 - r) e^{r t})).
TRANSCRITICAL_2D = ODESystem.from_equations({"x": "x*(x - r)", "y": "-y"}, params=("r",), collapse=("x", "y"),
                                            name="transcritical with a decaying y")


def _cell_colours(ax):
    (mesh,) = [c for c in ax.collections if c.get_gid() == "basins"]
    return mesh.to_rgba(mesh.get_array()).reshape(mesh.get_array().shape + (4,))


def test_basins_paint_blow_ups_apart_from_does_not_collapse():
    from matplotlib.colors import to_rgba

    x0 = np.array([-0.5, 0.5, 2.0, 3.0])  # blow-up times ln 2 ~ 0.69 and ln 1.5 ~ 0.41 for 2 and 3
    b = basins(TRANSCRITICAL_2D, {"x": x0, "y": [0.0, 1.0]}, {"r": 1.0}, t1=10.0, backend="scipy")
    assert np.all(b.status[:, 2:] == "blew_up") and np.all(b.collapsed[:, :2]) and not b.collapsed[:, 2:].any()
    fig, ax = plot_basins(b)
    render(fig)
    colours = _cell_colours(ax)
    patches = {t.get_text(): h.get_facecolor() for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    assert "blows up" in patches
    np.testing.assert_allclose(colours[:, 2:].reshape(-1, 4), np.tile(to_rgba(patches["blows up"]), (4, 1)))
    np.testing.assert_allclose(colours[:, :2].reshape(-1, 4), np.tile(to_rgba(patches["collapses"]), (4, 1)))
    assert not np.allclose(to_rgba(patches["blows up"]), to_rgba(patches["does not collapse"]))
    assert "blow-up fraction 0.50" in ax.get_title()


def test_basins_without_collapse_states_mark_blow_ups():
    from matplotlib.colors import to_rgba

    free = ODESystem.from_equations({"x": "x*(x - 1)", "y": "-y"})
    b = basins(free, {"x": [-0.5, 0.5, 2.0], "y": [0.0, 1.0]}, {}, t1=10.0, backend="scipy")
    fig, ax = plot_basins(b)
    render(fig)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "blows up" and not any("no attractor" in lab for lab in labels)
    patches = dict(zip(labels, ax.get_legend().legend_handles))
    colours = _cell_colours(ax)
    np.testing.assert_allclose(colours[:, 2], np.tile(to_rgba(patches["blows up"].get_facecolor()), (2, 1)))
    # both other columns reach the stable node (0, 0)
    assert r"→ $x = 0, y = 0$" in labels
    np.testing.assert_allclose(colours[:, :2].reshape(-1, 4), np.tile(to_rgba(patches[r"→ $x = 0, y = 0$"].get_facecolor()), (4, 1)))


# -- arguments of the wrong kind ---------------------------------------------------------------


@pytest.mark.parametrize("call, error, match", [
    (lambda: portrait(SADDLE, {"a": 1.0, "b": 2.0}, ax="ax"), TypeError, "ax must be a matplotlib Axes"),
    (lambda: portrait(SADDLE, {"a": 1.0, "b": 2.0}, manifolds="yes"), TypeError, "manifolds must be True or False"),
    (lambda: plot_flow_1d(TRANSCRITICAL, {"r": 1.0}, ax=1), TypeError, "ax must be a matplotlib Axes"),
    (lambda: plot_bifurcation(_pitchfork(), ax="x"), TypeError, "ax must be a matplotlib Axes"),
    (lambda: plot_regimes(_regimes(), path="abc"), ValueError, "path must be"),
    (lambda: plot_regimes(_regimes(), path=([1.0], [0.3])), ValueError, "equal length >= 2"),
    (lambda: plot_regimes(_regimes(), path_label=3), TypeError, "path_label"),
    (lambda: plot_spectra(None), TypeError, "net must be a network run"),
    (lambda: plot_spectra(None, modes="6"), ValueError, "modes must be an int"),
    (lambda: basins(SADDLE, {"x": "ab", "y": [0, 1]}, {"a": 1.0, "b": 2.0}), TypeError, r"grid\['x'\] must be numeric, not text"),
    (lambda: plot_basins(Basins("x", "y", np.zeros(2), np.zeros(2), np.zeros((2, 2, 2)), np.zeros((2, 2), int), (),
                                np.zeros((2, 2), bool), np.full((2, 2), "finished"), 1.0), ax=[]),
     TypeError, "ax must be a matplotlib Axes"),
])
def test_plot_arguments_of_the_wrong_kind_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- Jupyter -----------------------------------------------------------------------------------

_BACKEND = '''
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

SHOWN = []


class FigureManager(FigureManagerBase):
    def show(self):
        SHOWN.append(self.canvas.figure)


class FigureCanvas(FigureCanvasAgg):
    manager_class = FigureManager
'''

_SCRIPT = '''
import sys, types
import matplotlib
matplotlib.use("Agg")
from derivations import ODESystem
from dynamics import portrait

saddle = ODESystem.from_equations({"x": "a*x", "y": "-b*y"}, params=("a", "b"))
prm = {"a": 1.0, "b": 2.0}

# a script on Agg that never imported pyplot: a bare Figure, pyplot stays unimported
fig, ax = portrait(saddle, prm, trajectories=0)
assert "matplotlib.pyplot" not in sys.modules

# inside a Jupyter kernel (IPython with a kernel) on an inline-like backend: through pyplot,
# so the inline backend's post-execute hook shows it; never shown by portrait itself
class Events:
    def register(self, *args):
        pass

shell = types.SimpleNamespace(kernel=object(), events=Events(), enable_gui=lambda *a: None)
sys.modules["IPython"] = types.SimpleNamespace(get_ipython=lambda: shell, version_info=(9, 0))
matplotlib.use("module://fake_inline")
fig, ax = portrait(saddle, prm, trajectories=0)
import matplotlib.pyplot as plt
import fake_inline
assert fig.number in plt.get_fignums(), plt.get_fignums()
assert fake_inline.SHOWN == []  # portrait never calls show
held = plt.get_fignums()

# pyplot imported but a non-interactive backend: nothing joins pyplot's registry
plt.switch_backend("agg")
del sys.modules["IPython"]
fig, ax = portrait(saddle, prm, trajectories=0)
assert plt.get_fignums() == held and not plt.fignum_exists(getattr(fig, "number", -1))
print("ok")
'''


def test_figures_display_in_jupyter_and_stay_out_of_pyplot_in_scripts(tmp_path):
    (tmp_path / "fake_inline.py").write_text(_BACKEND)
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    env.pop("MPLBACKEND", None)
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(_SCRIPT)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
