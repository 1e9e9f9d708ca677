"""compare(): any spec, recorded trajectories, and the discrete map at a finite learning rate."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from derivations import ModelSpec, ODESystem, derive
from dynamics import compare, simulate_network

SIGMA2, C = 0.2, 1.2
EUC = {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}


def _tian(p0, s0, t, eta=0.05):
    """Tian et al.'s Euclidean SimSiam mode (alpha_p = 1): dp = s (1 - c p) - eta p,
    ds = 2 p s (1 - c p) - 2 eta s, per mode, solved by SciPy."""
    h = len(p0)

    def f(_, y):
        p, s = y[:h], y[h:]
        return np.r_[s * (1 - C * p) - eta * p, 2 * p * s * (1 - C * p) - 2 * eta * s]

    y = solve_ivp(f, (t[0], t[-1]), np.r_[p0, s0], t_eval=t, rtol=1e-11, atol=1e-13, method="DOP853").y.T
    return y[:, :h], y[:, h:]


def test_compare_scores_recorded_trajectories():
    """Arrays (time x modes) recorded elsewhere: the closed-form trajectories score ~0, the same
    trajectories with s off by 10% score 0.1."""
    t = np.linspace(0, 3, 16)
    P, S = _tian(np.array([0.3, 0.6, 0.9]), np.array([0.2, 0.5, 0.7]), t)
    good = compare(derive(ModelSpec("euclidean")), EUC, reference={"t": t, "p": P, "s": S})
    assert good.widths == (3,)
    e = next(iter(good.errors[3].values()))
    assert e["p"] < 1e-6 and e["s"] < 1e-6 and e["status"] == "finished"
    S_bad = S.copy()
    S_bad[1:] *= 1.1  # same start, s recorded 10% too large afterwards: error 0.1/1.1 at every later time
    bad = compare(ModelSpec("euclidean"), EUC, reference={"t": t, "p": P, "s": S_bad})
    e = bad.errors[3]["euclidean"]
    assert abs(e["s"] - 1 / 11) < 1e-6 and e["p"] < 1e-6
    assert "Comparison(" in repr(bad) and "array" not in repr(bad) and len(repr(bad)) < 300


def test_compare_a_hand_written_system_against_its_closed_form():
    """Logistic growth x' = r x (1 - x): x(t) = 1 / (1 + (1/x0 - 1) e^{-r t})."""
    logistic = ODESystem.from_equations({"x": "r*x*(1 - x)"}, params=("r",))
    t = np.linspace(0, 4, 9)
    x = 1 / (1 + (1 / 0.1 - 1) * np.exp(-1.5 * t))
    cmp = compare(logistic, {"r": 1.5}, reference={"t": t, "x": x})
    assert next(iter(cmp.errors[1].values()))["x"] < 1e-7
    with pytest.raises(ValueError, match="lie on the step grid"):
        compare(derive(ModelSpec("euclidean")), EUC, reference={"t": t, "p": x, "s": x}, lr=0.3)


def test_compare_directpred_against_the_network():
    """Any spec: the derived DirectPred system (states s) against the network's expected flow."""
    cmp = compare(ModelSpec("euclidean", predictor="directpred"), {"sigma2": SIGMA2, "eta": 0.05, "alpha": 0.5},
                  widths=(4,), t1=1.0, n_records=6)
    e = cmp.errors[4]["euclidean"]
    assert set(e) == {"s", "status"} and e["s"] < 1e-6


def test_at_a_large_learning_rate_the_discrete_map_tracks_the_network_and_the_flow_does_not():
    """lr = 0.8, expected gradients: the network takes discrete steps. The theory's discrete map
    agrees to rounding; the gradient flow, integrated over the same time, misses by > 5%."""
    h, lr = 4, 0.8
    init = {"p": np.array([0.25, 0.45, 0.7, 0.95]), "s": np.array([0.3, 0.5, 0.8, 1.1])}
    cmp = compare(ModelSpec("euclidean"), EUC, widths=(h,), t1=8.0, lr=lr, init=init)
    net = cmp.networks[h]
    assert net.lr == lr and list(net.steps[:3]) == [0, 1, 2]
    e = cmp.errors[h]["euclidean"]
    assert e["p"] < 1e-10 and e["s"] < 1e-10
    flow = compare(derive(ModelSpec("euclidean")), EUC, reference=net)  # the flow at the same times
    e_flow = next(iter(flow.errors[h].values()))
    assert e_flow["s"] > 0.05
    # and the flow's own network (small steps) is what the flow tracks
    small = simulate_network(ModelSpec("euclidean"), EUC, h=h, t1=8.0, init=init, n_records=11)
    e_small = next(iter(compare(derive(ModelSpec("euclidean")), EUC, reference=small).errors[h].values()))
    assert e_small["s"] < 1e-6


COS = {"sigma2": SIGMA2, "eta": 0.3, "alpha_p": 1.0}


def test_cosine_approximations_include_the_exact_flow_where_the_spec_has_one():
    """The exact finite-width flow joins the cosine rows (with or without stop-gradient); models
    without an exact flow (IsoLoss-cosine) and losses without norms do not get it."""
    from dynamics import EXACT_LABEL, approximations_for

    rows = approximations_for(ModelSpec("cosine", "ema"))
    assert rows[EXACT_LABEL] == ModelSpec("cosine", "ema", norms="exact")
    assert len(rows) == 4
    assert approximations_for(ModelSpec("cosine", stop_gradient=False))[EXACT_LABEL].stop_gradient is False
    assert EXACT_LABEL not in approximations_for(ModelSpec("isoloss", predictor="directpred"))
    assert list(approximations_for("euclidean")) == ["euclidean"]


def test_exact_row_is_skipped_where_it_cannot_serve_and_refused_when_asked_for():
    """Recorded cosine-like trajectories (K = 3): above max_exact_width the default exact row is
    left out with a status saying why, the other rows are still scored; with a learning rate
    the exact row is the exact flow's gradient-descent map, scored like the others; an
    explicitly requested theory without a discrete map raises."""
    from dynamics import EXACT_LABEL

    t = np.linspace(0, 0.5, 6)
    p = np.outer(np.exp(-0.3 * t), [0.9, 0.6, 0.3])
    ref = {"t": t, "p": p, "s": p**2}
    prm = COS | {"N_psi": 1.0, "N_phi": 1.0}  # the frozen-norm row's norms (no network to read them from)
    cmp = compare(ModelSpec("cosine"), prm, reference=ref, max_exact_width=2)
    assert cmp.errors[3][EXACT_LABEL] == {"status": "skipped (h > max_exact_width = 2)"}
    assert EXACT_LABEL not in cmp.predictions[3] and len(cmp.predictions[3]) == 3
    assert cmp.best()[3] != EXACT_LABEL
    assert f"| 3 | {EXACT_LABEL} |  |" in cmp.table()
    on_grid = compare(ModelSpec("cosine"), prm, reference=ref, lr=0.1, max_exact_width=None)
    assert on_grid.errors[3][EXACT_LABEL]["status"] == "finished" and np.isfinite(on_grid.errors[3][EXACT_LABEL]["p"])
    assert np.isfinite(on_grid.errors[3]["leading, self-consistent norms"]["p"])
    explicit = compare(ModelSpec("cosine"), COS, reference=ref, lr=0.1, approximations={"x": ModelSpec("cosine", norms="exact")})
    assert explicit.errors[3]["x"]["p"] == on_grid.errors[3][EXACT_LABEL]["p"]
    flow_only = ODESystem.from_equations({"p": "-p"})
    with pytest.raises(ValueError, match="is a flow; pass its map"):
        compare(ModelSpec("cosine"), COS, reference=ref, lr=0.1, approximations={"x": flow_only})
    with pytest.raises(ValueError, match="max_exact_width must be"):
        compare(ModelSpec("cosine"), COS, reference=ref, max_exact_width=0)
    with pytest.raises(ValueError, match="floor_widths must be"):
        compare(ModelSpec("cosine"), COS, widths=(4,), floor_seed=1, floor_widths=(8,))


def test_sampled_floor_is_predicted_with_a_data_spectrum():
    """The SGD-noise prediction of the network floor reads the network's data spectrum: two
    sampled seeds at B = 64 differ by about what the linear-noise spread predicts (within a
    factor 2 at h = 4: one pair of seeds, so the measured floor is a single draw)."""
    spec = ModelSpec("euclidean", data="spectrum")
    out = compare(spec, EUC, widths=(4,), t1=0.5, batch=64, lam=np.linspace(2.0, 0.5, 4), gradient="sampled",
                  floor_seed=1, progress=False)
    floor = out.floor[4]
    for name in ("p", "s"):
        assert 0.5 < floor["predicted"][name] / floor[name] < 2.0, (name, floor)
