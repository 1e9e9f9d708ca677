"""The verdicts of ``reproduce``: each claim judged by a function of measured quantities with
stated thresholds, on the frozen-norm model, the exact finite-width flow and the network.

The measurements take mode trajectories (time x modes) from any source, so the same numbers
are computed for the exact flow and for the network. A verdict is one of a few fixed phrases,
chosen by the thresholds below; ``verdict_line`` formats it for the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from derivations import DynamicalSystem

__all__ = ["VERDICT_TOL", "verdict_line", "scale_free_course", "homogeneity_degree", "order_verdict",
           "emergence_verdict", "collapse_verdict", "ranking_verdict", "errors_against"]

VERDICT_TOL = {
    "exact": 1e-3,
    "network": 2e-2,
    "homogeneity": 1e-8,
    "conservation_exact": 1e-6,
    "conservation_network": 5e-2,
}
"""Thresholds of the verdicts. ``exact`` / ``network``: how far the scale-free spectrum's
min/max may fall below its running maximum, or the smallest scale-free amplitude below its
start (relative), before it counts as a drop (integrator error, resp. the network's Euler step
and sampling noise). ``homogeneity``: the relative deviation below which the loss-driven rate
counts as homogeneous of degree -1 in the predictor scale. ``conservation_*``: the largest
relative change of ``||Psi||^2 e^(2 eta t)`` that counts as conserved."""


def verdict_line(verdict: str) -> str:
    """The report's verdict line: ``**Verdict:** <verdict>``.

    Parameters
    ----------
    verdict : str
        A phrase from one of the ``*_verdict`` functions.

    Returns
    -------
    str
    """
    return f"**Verdict:** {verdict}"


def scale_free_course(t: np.ndarray, p: np.ndarray, eta: float) -> dict[str, float]:
    """What the predictor spectrum does over a run, on the scale-free amplitudes p_j/||p||.

    Parameters
    ----------
    t : array (n,)
        The record times (increasing).
    p : array (n, K)
        The predictor eigenvalues (any order, all positive at t = 0).
    eta : float
        The weight decay: ``||p||^2 e^(2 eta t)`` is what a scale-invariant loss conserves.

    Returns
    -------
    dict of str -> float
        ``spread_start``, ``spread_end``: min_j p_j / max_j p_j at the first and last record;
        ``spread_drop``: the largest fall of that ratio below its running maximum (0 when it
        never falls); ``smallest_drop``: the largest relative fall of min_j p_j/||p|| below its
        value at t = 0 (0 when it never falls); ``scale_end``: ||p(t_end)|| / ||p(0)||;
        ``conservation``: max_t |(||p||^2 e^(2 eta t)) / ||p(0)||^2 - 1|; ``isotropy_end``:
        max_j |p_j/||p|| - 1/sqrt(K)| * sqrt(K) at the last record (0 for the isotropic
        direction).

    Raises
    ------
    ValueError
        ``p`` not (len(t), K) with K >= 1, or a non-positive eigenvalue at t = 0.
    """
    t, p = np.asarray(t, dtype=float), np.asarray(p, dtype=float)
    if p.ndim != 2 or p.shape[0] != t.shape[0] or p.shape[1] < 1:
        raise ValueError(f"p must have shape (len(t), K) = ({len(t)}, K); got {p.shape}")
    if np.any(p[0] <= 0):
        raise ValueError("p must be positive at t = 0 (the scale-free spread is min/max of positive eigenvalues)")
    norm = np.linalg.norm(p, axis=1)
    spread = p.min(axis=1) / p.max(axis=1)
    smallest = p.min(axis=1) / norm
    K = p.shape[1]
    return {
        "spread_start": float(spread[0]),
        "spread_end": float(spread[-1]),
        "spread_drop": float(np.max(np.maximum.accumulate(spread) - spread)),
        "smallest_drop": float(max(0.0, np.max(1.0 - smallest / smallest[0]))),
        "scale_end": float(norm[-1] / norm[0]),
        "conservation": float(np.max(np.abs(norm**2 * np.exp(2 * eta * (t - t[0])) / norm[0] ** 2 - 1.0))),
        "isotropy_end": float(np.max(np.abs(p[-1] / norm[-1] - 1 / np.sqrt(K))) * np.sqrt(K)),
    }


def homogeneity_degree(system: DynamicalSystem, state: Mapping[str, np.ndarray], params: Mapping[str, float],
                       group: str = "p", factor: float = 0.37) -> float:
    """How far the rate of one state group is from homogeneous of degree -1 in that group.

    For a loss that does not see the predictor's scale, p_j dp_j/dt (without weight decay) is a
    function of the direction p/||p|| alone, so f(c p) = f(p)/c: a rate with no polynomial
    form. Returns max_j |c f_j(c p) - f_j(p)| / max_j |f_j(p)|.

    Parameters
    ----------
    system : a multi-mode system with a state group ``group``.
    state : {group: values} of a state at which to evaluate the rate.
    params : its parameters (pass the weight decay as 0 to see the loss alone).
    group : the state group scaled.
    factor : the scale factor c (> 0, != 1).

    Returns
    -------
    float
        The relative deviation (0 for an exactly homogeneous rate).
    """
    f = system.to_numpy()
    y = system.pack(**state)
    y_scaled = system.pack(**{**state, group: factor * np.asarray(state[group], dtype=float)})
    r, r_scaled = system.unpack(f(0.0, y, params))[group], system.unpack(f(0.0, y_scaled, params))[group]
    return float(np.max(np.abs(factor * r_scaled - r)) / np.max(np.abs(r)))


def order_verdict(frozen_order: int, exact_homogeneity: float) -> str:
    """Claim (a): the cosine mode is sixth-order. Holds for the frozen-norm model when its
    reduced mode has degree 6; the exact flow has no order when its loss-driven rate is
    homogeneous of degree -1 in p (deviation below ``VERDICT_TOL["homogeneity"]``)."""
    if frozen_order != 6:
        return f"contradicted by the derivation (degree {frozen_order})"
    if exact_homogeneity < VERDICT_TOL["homogeneity"]:
        return "holds only for the frozen-norm approximation"
    return "holds"


def emergence_verdict(t_emerge: float | None, exact: Mapping[str, float],
                      networks: Mapping[int, Mapping[str, float]]) -> str:
    """Claim (b): a stable non-collapsed equilibrium emerges as the norms shrink.

    The frozen-norm model emerges when ``t_emerge`` is not None. The exact flow (``exact``) and
    a network (``networks[h]``, courses from ``scale_free_course``) show a regime change when
    the scale-free spread falls below its running maximum, or the smallest scale-free amplitude
    below its start, by more than ``VERDICT_TOL["exact"]`` (resp. ``["network"]``): without
    such a fall the non-collapsed direction was attracting from the start, and nothing emerges.
    """
    def change(course, tol):
        return course["spread_drop"] > tol or course["smallest_drop"] > tol

    exact_change = change(exact, VERDICT_TOL["exact"])
    net_change = [h for h, c in networks.items() if change(c, VERDICT_TOL["network"])]
    if t_emerge is None:
        return "not seen in the frozen-norm model within the run" + (
            "" if exact_change else "; the exact flow shows no regime change either")
    if not exact_change and not net_change:
        return "holds only for the frozen-norm approximation"
    if exact_change and len(net_change) == len(networks):
        return "holds"
    return ("holds in the frozen-norm model and the exact flow, not the network" if exact_change
            else "holds only for the frozen-norm approximation (the network is mixed)")


def collapse_verdict(euclid_collapsed_only: bool, euclid: Mapping[str, Mapping[str, float]],
                     euclid_limit: Mapping[str, float], cosine_exact: Mapping[str, float],
                     cosine_networks: Mapping[str, Mapping[str, float]]) -> str:
    """Claim (c): normalisation prevents the collapse that the Euclidean loss suffers at the
    same weight decay.

    The Euclidean loss collapses when its eigenmode system has only the collapsed equilibrium
    (``euclid_collapsed_only``) and every Euclidean network (``euclid[h]``) and its eigenmodes
    carried towards their limit (``euclid_limit``) shrink (``scale_end`` < 1). The direction
    collapses when the scale-free spread falls over the run (``spread_end`` below
    ``spread_start`` by more than the tolerance). The cosine scale shrinks as e^(-eta t) when
    ``conservation`` is below ``VERDICT_TOL["conservation_*"]`` on the exact flow and every
    network. All courses come from ``scale_free_course``.
    """
    euc_collapses = euclid_collapsed_only and all(c["scale_end"] < 1 for c in [*euclid.values(), euclid_limit])
    if not euc_collapses:
        return "not tested: the Euclidean loss does not collapse at this weight decay"
    cos_courses = [(cosine_exact, VERDICT_TOL["exact"])] + [(c, VERDICT_TOL["network"]) for c in cosine_networks.values()]
    direction_kept = all(c["spread_end"] >= c["spread_start"] - tol for c, tol in cos_courses)
    scale_decays = (cosine_exact["conservation"] < VERDICT_TOL["conservation_exact"]
                    and all(c["conservation"] < VERDICT_TOL["conservation_network"] for c in cosine_networks.values()))
    euc_narrows = euclid_limit["spread_end"] < euclid_limit["spread_start"] - VERDICT_TOL["exact"]
    if not direction_kept:
        return "contradicted by the exact flow and the network"
    if scale_decays:
        return ("holds for the direction p/||p||, not the scale, which shrinks as e^(-eta t)"
                + ("" if euc_narrows else " (the Euclidean direction does not narrow either)"))
    return "holds"


def ranking_verdict(best_network: Mapping[int, str], best_exact: Mapping[int, str],
                    unresolved: Sequence[int] = ()) -> str:
    """Claim (d): the best approximation per width, as ranked against the network.

    Judged at the widths with an exact flow (``best_exact``): contradicted by the exact flow
    where the approximation closest to the network is not the one closest to the exact flow;
    not resolved by the network where they agree but the network's margin between its best and
    second-best approximation is within its own distance to the exact flow (``unresolved``);
    holds elsewhere.
    """
    judged = [h for h in best_network if h in best_exact]
    if not judged:
        return "not judged: the exact flow ran at no width"
    wrong = [h for h in judged if best_network[h] != best_exact[h]]
    loose = [h for h in judged if h not in wrong and h in unresolved]
    right = [h for h in judged if h not in wrong and h not in loose]
    if len(right) == len(judged):
        return "holds"
    if len(wrong) == len(judged):
        return "contradicted by the exact flow at every width"
    parts = [(right, "holds"), (loose, "not resolved by the network"), (wrong, "contradicted by the exact flow")]
    return "; ".join(f"{what} at h = {', '.join(map(str, ws))}" for ws, what in parts if ws)


def errors_against(reference: np.ndarray, predictions: Mapping[str, Mapping[str, np.ndarray]],
                   labels: Sequence[str]) -> dict[str, float]:
    """The relative L2 error of p against a reference trajectory, maximised over the run.

    Parameters
    ----------
    reference : array (n, K)
        The reference predictor eigenvalues (the exact flow's).
    predictions : {label: {"p": (n, K), ...}}
        Trajectories on the same record times.
    labels : the labels to score.

    Returns
    -------
    dict of str -> float
        max_t ||p - p_ref|| / ||p_ref|| per label; NaN where a prediction is not finite
        throughout (a failed run).
    """
    out = {}
    for label in labels:
        p = np.asarray(predictions[label]["p"], dtype=float)
        err = np.linalg.norm(p - reference, axis=-1) / np.linalg.norm(reference, axis=-1)
        out[label] = float(np.max(err)) if np.all(np.isfinite(err)) else float("nan")
    return out
