"""The verdicts of ``reproduce``: the measured quantities against closed forms, and each verdict
as the function of those quantities its thresholds say."""

import numpy as np
import pytest

from derivations import ModelSpec, derive
from dynamics.ssl._verdicts import (
    VERDICT_TOL,
    collapse_verdict,
    emergence_verdict,
    errors_against,
    homogeneity_degree,
    order_verdict,
    ranking_verdict,
    scale_free_course,
    verdict_line,
)

ETA = 0.3


def course(spread_start=0.2, spread_end=0.9, spread_drop=0.0, smallest_drop=0.0, scale_end=0.5, conservation=0.0):
    return dict(spread_start=spread_start, spread_end=spread_end, spread_drop=spread_drop, smallest_drop=smallest_drop,
                scale_end=scale_end, conservation=conservation, isotropy_end=0.0)


def test_scale_free_course_against_closed_forms():
    t = np.linspace(0, 2, 21)
    # p_j = e^(-eta t) d_j(t) with ||d|| = 1: a direction rotating towards isotropy, scale as a scale-invariant loss
    w = np.exp(-t)[:, None]
    d = (1 - w) * np.full(3, 1 / np.sqrt(3)) + w * np.array([0.8, 0.6, 0.1])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    p = np.exp(-ETA * t)[:, None] * d
    c = scale_free_course(t, p, ETA)
    assert c["conservation"] < 1e-14
    assert c["scale_end"] == pytest.approx(np.exp(-ETA * 2), rel=1e-14)
    assert c["spread_start"] == pytest.approx(0.1 / 0.8)
    assert c["isotropy_end"] == pytest.approx(np.max(np.abs(d[-1] * np.sqrt(3) - 1)))
    assert c["spread_drop"] == 0 and c["smallest_drop"] == 0
    # a mode falling away: the smallest amplitude halves, the spread falls from its maximum
    q = np.column_stack([np.ones(3), np.array([0.5, 0.6, 0.3])])
    c = scale_free_course(np.arange(3.0), q, 0.0)
    assert c["spread_drop"] == pytest.approx(0.3)
    assert c["smallest_drop"] == pytest.approx(1 - (0.3 / np.hypot(1, 0.3)) / (0.5 / np.hypot(1, 0.5)))
    assert c["conservation"] == pytest.approx(max(1.36 / 1.25 - 1, 1 - 1.09 / 1.25))
    with pytest.raises(ValueError, match="shape"):
        scale_free_course(t, p[:, 0], ETA)
    with pytest.raises(ValueError, match="positive"):
        scale_free_course(t, -p, ETA)


def test_homogeneity_tells_the_exact_flow_from_the_frozen_norm_model():
    p = np.array([0.9, 0.4, 0.25])
    state = {"p": p, "s": p**2}
    params = {"sigma2": 0.2, "eta": 0.0, "alpha_p": 1.0}
    exact = derive(ModelSpec("cosine", "simsiam", norms="exact")).modes(3)
    assert homogeneity_degree(exact, state, params) < 1e-12
    frozen = derive(ModelSpec("cosine", "simsiam", norms="frozen")).modes(3)
    fparams = {**params, **{k: 1.5 for k in frozen.param_names if k not in params}}
    assert homogeneity_degree(frozen, state, fparams) > 0.1


def test_each_verdict_follows_its_thresholds():
    assert verdict_line("holds") == "**Verdict:** holds"
    assert order_verdict(6, 1e-15) == "holds only for the frozen-norm approximation"
    assert order_verdict(6, 0.5) == "holds"
    assert order_verdict(3, 1e-15).startswith("contradicted")
    nets = {"h = 4": course(), "h = 16": course()}
    tol_e, tol_n = VERDICT_TOL["exact"], VERDICT_TOL["network"]
    assert emergence_verdict(3.8, course(spread_drop=0.5 * tol_e), nets) == "holds only for the frozen-norm approximation"
    falling = {k: course(smallest_drop=2 * tol_n) for k in nets}
    assert emergence_verdict(3.8, course(spread_drop=2 * tol_e), falling) == "holds"
    assert emergence_verdict(None, course(), nets).startswith("not seen")
    euc = {"h = 4": course(spread_end=0.1, scale_end=0.4)}
    limit = course(spread_end=0.03, scale_end=1e-7)
    assert collapse_verdict(True, euc, limit, course(conservation=1e-9), nets).startswith("holds for the direction")
    assert collapse_verdict(False, euc, limit, course(), nets).startswith("not tested")
    collapsing = course(spread_start=0.2, spread_end=0.2 - 2 * tol_e)
    assert collapse_verdict(True, euc, limit, collapsing, nets) == "contradicted by the exact flow and the network"
    loose = {k: course(conservation=2 * VERDICT_TOL["conservation_network"]) for k in nets}
    assert collapse_verdict(True, euc, limit, course(conservation=1e-9), loose) == "holds"
    assert ranking_verdict({4: "a", 16: "b", 256: "b"}, {4: "a", 16: "b"}) == "holds"
    assert ranking_verdict({4: "a", 16: "a"}, {4: "a", 16: "b"}) == "holds at h = 4; contradicted by the exact flow at h = 16"
    assert ranking_verdict({4: "a"}, {}).startswith("not judged")
    assert ranking_verdict({4: "a", 16: "a", 64: "b"}, {4: "a", 16: "a", 64: "a"}, unresolved=[16]) == (
        "holds at h = 4; not resolved by the network at h = 16; contradicted by the exact flow at h = 64")
    assert ranking_verdict({4: "a"}, {4: "b"}) == "contradicted by the exact flow at every width"


def test_errors_against_a_reference():
    ref = np.array([[3.0, 4.0], [6.0, 8.0]])
    preds = {"a": {"p": ref * 1.01}, "b": {"p": np.array([[3.0, 4.0], [np.nan, 8.0]])}}
    errs = errors_against(ref, preds, ["a", "b"])
    assert errs["a"] == pytest.approx(0.01) and np.isnan(errs["b"])
