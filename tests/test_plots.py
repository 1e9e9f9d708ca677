"""Figures run headless and draw what they say; ``ncdyn reproduce --quick`` writes every file."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from derivations import ModelSpec, derive  # noqa: E402
from dynamics import basins, equilibria, regimes  # noqa: E402
from dynamics import plot_basins, plot_bifurcation, plot_flow_1d, plot_regimes, portrait  # noqa: E402
from dynamics._reproduce import FIGURES  # noqa: E402

EUC = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}


def markers(ax, gid="equilibrium"):
    return [line for line in ax.lines if line.get_gid() == gid]


def test_portrait_marks_every_equilibrium_and_draws_nullclines():
    system = derive(ModelSpec("euclidean"))
    fig, ax = portrait(system, EUC)
    assert len(markers(ax)) == len(equilibria(system, EUC)) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for needed in ("dp/dt = 0", "ds/dt = 0", "stable node", "saddle", "unstable manifold", "stable manifold"):
        assert needed in labels
    assert len(ax.collections) >= 3  # streamlines and two nullcline contours
    fig.savefig(__import__("io").BytesIO(), format="png")


def test_portrait_slice_of_a_three_state_system():
    system = derive(ModelSpec("euclidean", "ema"))
    params = dict(EUC, beta=0.5)
    fig, ax = portrait(system, params, fixed={"tau": 1.0}, trajectories=2)
    on_slice = [e for e in equilibria(system, params) if abs(e.point["tau"] - 1.0) < 1e-9]
    assert len(markers(ax)) == len(on_slice) == 2  # the collapsed point has tau = beta/(beta - eta)
    fig2, ax2 = portrait(system, params, x="p", y="tau", fixed={"s": "manifold"}, trajectories=0)
    assert ax2.get_ylabel() == "tau"


def test_flow_1d_marks_the_equilibria_of_every_curve():
    system = derive(ModelSpec("cosine"))
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 2.0, "N_phi": 1.5, "T": 1.0}
    etas = [0.01, 0.05, 0.2]
    fig, ax = plot_flow_1d(system, params, vary=("eta", etas), p_range=(-1.5, 1.3))
    expected = sum(len(equilibria(system.reduce(), dict(params, eta=e), domain={"p": (-1.5, 1.3)})) for e in etas)
    assert len(markers(ax)) == expected
    assert "order 6" in ax.get_title()


def test_bifurcation_plot_marks_the_fold_at_tians_threshold():
    fig, ax = plot_bifurcation(derive(ModelSpec("euclidean")), "eta", np.linspace(0, 0.4, 9), {"sigma2": 0.2, "alpha_p": 1.0},
                               n_dense=200)
    (fold,) = markers(ax, "fold")
    assert abs(fold.get_xdata()[0] - 1 / 4.8) < 1e-8
    assert any(line.get_linestyle() == "--" for line in ax.lines)


def test_basins_and_regime_plots():
    system = derive(ModelSpec("euclidean"))
    strong = basins(system, dict(EUC, eta=0.3), {"p": np.linspace(0, 1, 5), "s": np.linspace(0, 1, 4)}, t1=100)
    assert strong.collapse_probability == 1.0
    weak = basins(system, EUC, {"p": np.array([0.01, 0.8]), "s": np.array([0.0, 0.64])}, t1=300)
    assert weak.collapsed[0, 0] and not weak.collapsed[1, 1]
    fig, ax = plot_basins(weak)
    assert "collapse probability" in ax.get_title()
    reg = regimes(derive(ModelSpec("cosine")), ("scale", np.linspace(0.1, 1, 8)), ("eta", np.linspace(0.01, 0.4, 6)),
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
        basins(system, EUC, {"p": [0, 1]})


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from dynamics._cli import main

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
