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
    # the frozen field at tau = 1: dp = alpha_p s (1 - c p) - eta p, ds = 2 s (p (1 - c p) - eta), zero at
    # (0, 0) and (p, p^2/alpha_p) with c p^2 - p + eta = 0 (the whole system's collapsed point has
    # tau = beta/(beta - eta), off the slice, but the frozen field vanishes at (0, 0))
    c, eta = 1 + EUC["sigma2"], EUC["eta"]
    p = (1 + np.array([-1.0, 1.0]) * np.sqrt(1 - 4 * c * eta)) / (2 * c)
    expected = np.array([[0.0, 0.0], *np.column_stack([p, p**2 / EUC["alpha_p"]])])
    got = np.array([[ln.get_xdata()[0], ln.get_ydata()[0]] for ln in markers(ax)])
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], expected, atol=1e-12)
    assert "frozen-field curves" in [t.get_text() for t in ax.get_legend().get_texts()]
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
def quick_job(tmp_path_factory):
    """One quick main job through the command line, into a directory that an interrupted earlier
    run left with a stale report, a truncated figure and a partial temporary file; (the
    directory, the numbers reproduce returned to the command)."""
    from dynamics.ssl import _reproduce
    from dynamics.ssl._cli import main

    out = tmp_path_factory.mktemp("reproduce")
    (out / "report.md").write_text("# stale report\n")
    (out / FIGURES[0]).write_bytes(b"truncated")  # as an interrupted run might leave it
    (out / f".{FIGURES[1]}.tmp.png").write_bytes(b"partial")
    returned, run = [], _reproduce.reproduce
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_reproduce, "reproduce", lambda *args, **kw: returned.append(run(*args, **kw)) or returned[-1])
        assert main(["reproduce", "--out", str(out), "--quick", "--no-progress"]) == 0
    (numbers,) = returned
    return out, numbers


@pytest.fixture(scope="module")
def quick_run(quick_job):
    return quick_job[0]


def _reproduce_quick_writes_every_file(quick_run):
    report = (quick_run / "report.md").read_text()
    for name in FIGURES:
        assert (quick_run / name).stat().st_size > 10_000, name
        assert name in report
    for heading in ("## 1. Euclidean", "## 2. Cosine", "## 3. Regimes", "## 4. Theory"):
        assert heading in report
    assert "degree 6" in report and "0.2083" in report


@pytest.fixture(scope="module")
def rerun(quick_job):
    """The numbers of the quick job, run where an interrupted run had left broken files."""
    return quick_job[1]


def _reproduce_reruns_into_the_same_directory(quick_run, rerun):
    assert (quick_run / FIGURES[0]).stat().st_size > 10_000
    assert "stale" not in (quick_run / "report.md").read_text()
    assert not [p for p in quick_run.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp.png")]


CLAIM_HEADINGS = {  # report heading of each judged claim -> its verdict in the numbers
    "### 2a. Claim: the cosine mode is sixth-order": ("cosine", "sixth_order"),
    "### 2b. Claim: a stable non-collapsed equilibrium emerges": ("cosine", "emergence"),
    "### 2c. Claim: normalisation prevents the collapse": ("normalisation", None),
    "### Claim: the best approximation per width": ("compare", None),
    "## 6. Alignment from random initialisations": ("alignment", None),
    "## 7. Stepwise learning": ("stepwise", None),
    "## 8. Minibatch noise": ("noise", None),
}


def _sections(report):
    """{heading line: its lines up to the next heading}."""
    out, head = {}, None
    for line in report.splitlines():
        if line.startswith("#"):
            head = line
            out[head] = []
        elif head is not None:
            out[head].append(line)
    return out


def _reproduce_states_one_verdict_per_claim(quick_run, rerun):
    from dynamics.ssl._verdicts import verdict_line

    report = (quick_run / "report.md").read_text()
    verdicts = [line for line in report.splitlines() if line.startswith("**Verdict:** ")]
    assert len(verdicts) == len(CLAIM_HEADINGS) == len(rerun["verdicts"])
    sections = _sections(report)
    for heading, (key, sub) in CLAIM_HEADINGS.items():
        (found,) = [h for h in sections if h.startswith(heading)]
        lines = [line for line in sections[found] if line.startswith("**Verdict:")]
        numbers = rerun[key][sub] if sub else rerun[key]
        assert lines == [verdict_line(numbers["verdict"])], heading


def _reproduce_verdicts_follow_from_the_numbers(rerun):
    from dynamics.ssl._verdicts import (VERDICT_TOL, collapse_verdict, emergence_verdict, order_verdict,
                                        ranking_verdict)

    order, emergence = rerun["cosine"]["sixth_order"], rerun["cosine"]["emergence"]
    norm, cmp = rerun["normalisation"], rerun["compare"]
    assert order["verdict"] == order_verdict(order["frozen_order"], order["exact_homogeneity"])
    assert emergence["verdict"] == emergence_verdict(emergence["t_emerge"], emergence["exact"], emergence["networks"])
    assert norm["verdict"] == collapse_verdict(norm["euclidean_collapsed_only"], norm["euclidean_networks"],
                                               norm["euclidean_modes_t60"], norm["cosine_exact"], norm["cosine_networks"])
    assert cmp["verdict"] == ranking_verdict(cmp["best_against_network"], cmp["best_against_exact"],
                                             cmp["unresolved_by_network"])
    # what the numbers imply, read off them here with the stated thresholds
    assert order["frozen_order"] == 6 and order["exact_homogeneity"] < VERDICT_TOL["homogeneity"]
    assert order["verdict"] == "holds only for the frozen-norm approximation"
    ex = emergence["exact"]
    assert emergence["t_emerge"] is not None and 0 < emergence["t_emerge"] < emergence["t1"]
    assert ex["spread_drop"] < VERDICT_TOL["exact"] and ex["smallest_drop"] < VERDICT_TOL["exact"]
    assert emergence["verdict"] == "holds only for the frozen-norm approximation"
    assert norm["euclidean_collapsed_only"] and norm["euclidean_modes_t60"]["scale_end"] < 1e-3
    assert norm["euclidean_modes_t60"]["spread_end"] < norm["euclidean_modes_t60"]["spread_start"]
    assert norm["verdict"].startswith("holds for the direction p/||p||, not the scale")
    for h, best in cmp["best_against_exact"].items():
        errs = {lab: e for lab, e in cmp["against_exact"][h].items() if np.isfinite(e)}
        assert best == min(errs, key=errs.get)
        net_errs = sorted(e["p"] for lab, e in cmp["cosine"][h].items() if "p" in e and lab != "exact (finite width)")
        assert (h in cmp["unresolved_by_network"]) == (net_errs[1] - net_errs[0] <= cmp["network_to_exact"][h])
    agree = all(cmp["best_against_network"][h] == b and h not in cmp["unresolved_by_network"]
                for h, b in cmp["best_against_exact"].items())
    assert (cmp["verdict"] == "holds") == agree
    assert rerun["verdicts"] == {"sixth_order": order["verdict"], "emergence": emergence["verdict"],
                                 "normalisation": norm["verdict"], "best_approximation": cmp["verdict"],
                                 "alignment": rerun["alignment"]["verdict"], "stepwise": rerun["stepwise"]["verdict"],
                                 "noise": rerun["noise"]["verdict"]}
    assert rerun["stepwise"]["verdict"].startswith("holds") == bool(np.all(np.abs(rerun["stepwise"]["relative_error"]) < 0.10))
    noise = rerun["noise"]
    spread_ok = all(abs(e) < 3 * se for runs in noise["spread"].values() for r in runs.values()
                    for e, se in zip(r["relative_error"], r["se"]))
    assert noise["verdict"].startswith("holds") == (spread_ok and all(z < 4 for z in noise["collapse"]["z_one_mode"]))
    # the Euclidean model aligns: the balancedness F - Psi^T Psi / alpha_p decays like exp(-2 eta t)
    # exactly, so the commutator's late log-slope is -2 eta (eta = 0.05), here within 15%
    (run,) = rerun["alignment"]["runs"].values()
    assert run["measured_rate"] == pytest.approx(-0.1, rel=0.15)
    assert rerun["alignment"]["verdict"] == "Euclidean, learned predictor: aligns"


def _reproduce_exact_flow_numbers_independently(rerun):
    """The exact flow's numbers behind the emergence verdict, recomputed from a separate
    integration of the exact system (default tolerances, three record times) and from closed
    forms: ||p||^2 e^(2 eta t) = ||p(0)||^2 (scale invariance) and the isotropic limit
    p_j e^(eta t) -> ||p(0)|| / sqrt(K)."""
    from dynamics import default_spectrum, integrate

    eta, K, t1 = 0.3, 16, rerun["cosine"]["emergence"]["t1"]
    start = default_spectrum(K, alpha_p=1.0, seed=0)
    exact = derive(ModelSpec("cosine", "simsiam", norms="exact")).modes(K)
    sol = integrate(exact, exact.pack(p=start["p"], s=start["s"]), (0, t1), {"sigma2": 0.2, "eta": eta, "alpha_p": 1.0},
                    t_eval=[0.0, 0.5 * t1, t1], backend="scipy", progress=False)
    p = exact.unpack(sol.y)["p"]
    iso = np.linalg.norm(start["p"]) / np.sqrt(K)
    scaled = np.linalg.norm(p, axis=1) ** 2 * np.exp(2 * eta * np.asarray(sol.t))
    assert np.allclose(scaled, np.sum(start["p"] ** 2), rtol=1e-7, atol=0)
    num = rerun["cosine"]["emergence"]
    assert num["exact_isotropic"] == pytest.approx(iso, rel=1e-12)
    lo, hi = num["exact_p_over_lambda_end"]
    assert lo == pytest.approx(iso, rel=1e-6) and hi == pytest.approx(iso, rel=1e-6)
    assert p[-1].min() / p[-1].max() == pytest.approx(num["exact"]["spread_end"], abs=1e-6)
    assert num["exact"]["spread_start"] == pytest.approx(start["p"].min() / start["p"].max(), rel=1e-12)
    assert num["exact"]["conservation"] < 1e-7


def test_reproduce_quick_run_and_rerun(quick_run, rerun):
    """One test for every check on the quick main job, so that one xdist worker runs it
    (module-scoped fixtures run again on every worker that gets a test using them)."""
    _reproduce_quick_writes_every_file(quick_run)
    _reproduce_reruns_into_the_same_directory(quick_run, rerun)
    _reproduce_states_one_verdict_per_claim(quick_run, rerun)
    _reproduce_verdicts_follow_from_the_numbers(rerun)
    _reproduce_exact_flow_numbers_independently(rerun)
