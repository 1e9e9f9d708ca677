"""Figures run headless and draw what they say; ``ncdyn reproduce --quick`` writes every file."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from derivations import ModelSpec, derive  # noqa: E402
from dynamics import SCALE, basins, bifurcation, equilibria, regimes  # noqa: E402
from dynamics import plot_basins, plot_bifurcation, plot_flow_1d, plot_regimes, portrait  # noqa: E402
from dynamics.ssl._reproduce import FIGURES  # noqa: E402

EUC = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}


def markers(ax, gid="equilibrium"):
    return [line for line in ax.lines if line.get_gid() == gid]


def test_portrait_marks_every_equilibrium_and_draws_nullclines():
    system = derive(ModelSpec("euclidean"))
    fig, ax = portrait(system, EUC)
    assert len(markers(ax)) == len(equilibria(system, EUC)) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for needed in ("$dp/dt = 0$", "$ds/dt = 0$", "stable node", "saddle", "unstable manifold", "stable manifold"):
        assert needed in labels
    assert len(ax.collections) >= 1  # streamlines
    # both nullclines drawn as lines (polylines of phase_plane), on the zero sets of dp/dt and ds/dt
    f = system.to_numpy()
    for color, i in (("tab:blue", 0), ("tab:red", 1)):
        lines = [ln for ln in markers(ax, "nullcline") if ln.get_color() == color]
        assert lines
        pts = np.vstack([np.column_stack([ln.get_xdata(), ln.get_ydata()]) for ln in lines])
        assert np.max(np.abs(f(0.0, pts, EUC)[:, i])) < 1e-3
    fig.savefig(__import__("io").BytesIO(), format="png")


def test_portrait_slice_of_a_three_state_system():
    system = derive(ModelSpec("euclidean", "ema"))
    params = dict(EUC, beta=0.5)
    fig, ax = portrait(system, params, fixed={"tau": 1.0}, trajectories=2)
    on_slice = [e for e in equilibria(system, params) if abs(e.point["tau"] - 1.0) < 1e-9]
    assert len(markers(ax)) == len(on_slice) == 2  # the collapsed point has tau = beta/(beta - eta)
    fig2, ax2 = portrait(system, params, x="p", y="tau", fixed={"s": "manifold"}, trajectories=0)
    assert ax2.get_ylabel() == r"$\tau$"


def test_flow_1d_marks_the_equilibria_of_every_curve():
    system = derive(ModelSpec("cosine"))
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 2.0, "N_phi": 1.5, "T": 1.0}
    etas = [0.01, 0.05, 0.2]
    fig, ax = plot_flow_1d(system, params, vary=("eta", etas), xlim=(-1.5, 1.3))
    expected = sum(len(equilibria(system.reduce(), dict(params, eta=e), domain={"p": (-1.5, 1.3)})) for e in etas)
    assert len(markers(ax)) == expected
    assert "order 6" in ax.get_title()


def test_bifurcation_plot_marks_the_fold_at_tians_threshold():
    bif = bifurcation(derive(ModelSpec("euclidean")), ("eta", np.linspace(0, 0.4, 9)), {"sigma2": 0.2, "alpha_p": 1.0},
                      n_dense=200)
    fig, ax = plot_bifurcation(bif)
    (fold,) = markers(ax, "fold")
    assert abs(fold.get_xdata()[0] - 1 / 4.8) < 1e-8
    assert any(line.get_linestyle() == "--" for line in ax.lines)


def _pitchfork_diagram():
    """x' = r x - x^3 on r in [-1, 1], built by hand from its closed form: x = 0 (stable for
    r < 0, unstable for r > 0) and x = +-sqrt(r) (stable); a pitchfork at r = 0. A Hopf point
    at r = 0.5 on the zero branch is added to check its marker."""
    from dynamics import Bifurcation, BifurcationPoint
    from dynamics._bifurcation import Branch

    r = np.linspace(-1, 1, 41)
    pos = r[r >= 0]
    branches = (Branch(r, np.zeros((r.size, 1)), r < 0),
                Branch(pos, np.sqrt(pos)[:, None], np.ones(pos.size, bool)),
                Branch(pos, -np.sqrt(pos)[:, None], np.ones(pos.size, bool)))
    points = (BifurcationPoint("pitchfork", 0.0, np.array([0.0])), BifurcationPoint("hopf", 0.5, np.array([0.0])))
    return Bifurcation("r", r, np.zeros((41, 1, 1)), np.zeros((41, 1), bool), np.ones((41, 1), bool), points,
                       state_names=("x",), branches=branches, system_name="pitchfork normal form")


def test_bifurcation_plot_draws_the_data_it_is_given():
    fig, ax = plot_bifurcation(_pitchfork_diagram())
    (pf,) = markers(ax, "pitchfork")
    (hopf,) = markers(ax, "hopf")
    assert (pf.get_xdata()[0], pf.get_ydata()[0]) == (0.0, 0.0) and hopf.get_xdata()[0] == 0.5
    assert pf.get_marker() != hopf.get_marker()
    solid = [ln for ln in markers(ax, "branch") if ln.get_linestyle() == "-"]
    dashed = [ln for ln in markers(ax, "branch") if ln.get_linestyle() == "--"]
    # the unstable part is x = 0 for r > 0 only (the dashed segment starts at the last stable sample)
    (zero_dashed, *_) = dashed
    x, y = np.asarray(zero_dashed.get_xdata()), np.asarray(zero_dashed.get_ydata(), dtype=float)
    assert np.all(np.isnan(y[x < -0.05])) and np.all(y[x > 0] == 0.0)
    # stable branches: +-sqrt(r)
    for ln in solid[1:]:
        x, y = np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata(), dtype=float)
        ok = ~np.isnan(y)
        np.testing.assert_allclose(np.abs(y[ok]), np.sqrt(x[ok]), atol=1e-15)
    assert ax.get_ylabel() == "$x^*$" and ax.get_title() == "pitchfork normal form"
    with pytest.raises(ValueError, match="state='y'"):
        plot_bifurcation(_pitchfork_diagram(), state="y")


def test_bifurcation_plot_of_a_computed_pitchfork():
    from derivations import ODESystem

    system = ODESystem.from_equations({"x": "r*x - x**3"}, params=("r",))
    fig, ax = plot_bifurcation(bifurcation(system, ("r", np.linspace(-1, 1, 9)), {}))
    (pf,) = markers(ax, "pitchfork")
    assert abs(pf.get_xdata()[0]) < 1e-8 and abs(pf.get_ydata()[0]) < 1e-8


def test_basins_and_regime_plots():
    system = derive(ModelSpec("euclidean"))
    strong = basins(system, {"p": np.linspace(0, 1, 5), "s": np.linspace(0, 1, 4)}, dict(EUC, eta=0.3), t1=100)
    assert strong.collapse_probability == 1.0
    weak = basins(system, {"p": np.array([0.01, 0.8]), "s": np.array([0.0, 0.64])}, EUC, t1=300)
    assert weak.collapsed[0, 0] and not weak.collapsed[1, 1]
    fig, ax = plot_basins(weak)
    assert "collapse probability" in ax.get_title()
    reg = regimes(derive(ModelSpec("cosine")), (SCALE, np.linspace(0.1, 1, 8)), ("eta", np.linspace(0.01, 0.4, 6)),
                  {"sigma2": 0.2, "alpha_p": 1.0, "N_psi": 3.0, "N_phi": 4.0, "T": 10.0})
    fig, ax = plot_regimes(reg, path=([1.0, 0.5], [0.3, 0.3]))
    assert ax.get_legend() is not None


def test_plot_bad_arguments():
    system = derive(ModelSpec("euclidean"))
    with pytest.raises(ValueError, match="'q' is not a state"):
        portrait(system, EUC, x="q")
    with pytest.raises(ValueError, match="must be different"):
        portrait(system, EUC, x="p", y="p")
    with pytest.raises(ValueError, match=r"missing \['tau'\]"):
        portrait(derive(ModelSpec("euclidean", "ema")), dict(EUC, beta=0.5))
    with pytest.raises(ValueError, match="missing"):
        portrait(system, {"sigma2": 0.2})
    with pytest.raises(ValueError, match="one-state reduced system"):
        plot_flow_1d(derive(ModelSpec("euclidean", "ema")), dict(EUC, beta=0.5))
    with pytest.raises(ValueError, match="not a parameter"):
        plot_flow_1d(system, EUC, vary=("gamma", [1.0]))
    with pytest.raises(TypeError, match="Regimes"):
        plot_regimes("map")
    with pytest.raises(ValueError, match="exactly two state names"):
        basins(system, {"p": [0, 1]}, EUC)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from dynamics.ssl._cli import main

    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "--out", str(out), "--quick", "--no-progress"]) == 0
    return out


def test_reproduce_quick_writes_every_file(quick_run):
    report = (quick_run / "report.md").read_text()
    for name in FIGURES:
        assert (quick_run / name).stat().st_size > 10_000, name
        assert name in report
    for heading in ("## 1. Euclidean", "## 2. Cosine", "## 3. Regimes", "## 4. Theory"):
        assert heading in report
    assert "degree 6" in report and "0.2083" in report


def test_reproduce_reruns_into_the_same_directory(quick_run):
    from dynamics import reproduce

    (quick_run / FIGURES[0]).write_bytes(b"truncated")  # as an interrupted run might leave it
    (quick_run / f".{FIGURES[1]}.tmp.png").write_bytes(b"partial")
    reproduce(quick_run, quick=True, progress=False)
    assert (quick_run / FIGURES[0]).stat().st_size > 10_000
    assert not [p for p in quick_run.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp.png")]
