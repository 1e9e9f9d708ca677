"""Real data: a linear SimSiam network trained on scikit-learn's digits against the eigenmode
theory with the data's own covariance spectrum (data='spectrum').

The digits (1797 images of 8 x 8 pixels, shipped inside scikit-learn, no download) are centred
per pixel and scaled so that the mean eigenvalue of their covariance is 1 (tr Cov = d = 64),
the normalisation of the isotropic model (x ~ N(0, I)); sigma2 and eta then keep the meaning
they have there (noise and weight decay per unit of average data variance). Augmentation:
x1 = x + e1, x2 = x + e2, e ~ N(0, sigma2 I), x a random image.

The network is initialised aligned with the data's eigenbasis (mode j reads the j-th principal
direction, variance lambda_j) and trained with sampled batches of actual images; the theory is
``derive(ModelSpec(loss, data="spectrum"))`` with lambda = the top-h eigenvalues. For the
Euclidean loss only second moments enter, so the theory is the network's exact expected
dynamics; its mode j keeps a non-collapsed equilibrium iff
    lambda_j^2 >= 4 eta (lambda_j + sigma2)  (alpha_p = 1),
i.e. lambda_j >= lambda* = 2 eta + 2 sqrt(eta^2 + eta sigma2): as the spectrum decays, the modes
below lambda* collapse (dimensional collapse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from derivations import FrozenMap, ModelSpec

from .._value import Value
from ._compare import Comparison, compare
from ._network import NetworkRun, data_spectrum, is_quadratic, simulate_network

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["digits_data", "DigitsData", "digits_experiment", "RealDataRun", "collapse_threshold", "plot_real_data"]

SURVIVAL_RATIO = 1e-2
"""A mode counts as surviving when s_j(t1) >= SURVIVAL_RATIO * max_k s_k(t1) (scale free, so
it also serves the cosine loss, whose spectrum shrinks as a whole under weight decay)."""


@dataclass(frozen=True, repr=False, eq=False)
class DigitsData(Value):
    """The digits as the network sees them.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    X : numpy.ndarray
        (n, d) images, centred per pixel and scaled by ``scale`` (mean eigenvalue 1).
    lam : numpy.ndarray
        (d,) eigenvalues of X^T X / n, descending (three are zero: pixels that never vary).
    V : numpy.ndarray
        (d, d) the eigenvectors (columns, same order).
    scale : float
        The factor applied to the centred pixel values (0..16).
    """

    X: np.ndarray
    lam: np.ndarray
    V: np.ndarray
    scale: float

    def __repr__(self) -> str:
        return (f"DigitsData(n={self.X.shape[0]}, d={self.X.shape[1]}, lambda in [{self.lam[-1]:.2g}, {self.lam[0]:.3g}], "
                f"scale={self.scale:.4g})")


@lru_cache(maxsize=1)
def _digits() -> DigitsData:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover
        raise ImportError("the real-data example needs scikit-learn (pip install scikit-learn)") from exc
    X = load_digits().data.astype(np.float64)
    X = X - X.mean(axis=0)
    scale = 1.0 / np.sqrt(np.mean(np.sum(X**2, axis=1)) / X.shape[1])
    X = X * scale
    lam, V = data_spectrum(X)
    for a in (X, lam, V):
        a.setflags(write=False)
    return DigitsData(X, lam, V, float(scale))


def digits_data() -> DigitsData:
    """scikit-learn's ``load_digits`` (1797 x 64), centred and scaled to mean eigenvalue 1,
    with its covariance spectrum and eigenbasis. Read-only arrays (cached).

    Returns
    -------
    DigitsData
        The images X, their spectrum lam, eigenbasis V and the scale applied.
    """
    return _digits()


def collapse_threshold(sigma2: float, eta: float) -> float:
    """lambda* = 2 eta + 2 sqrt(eta^2 + eta sigma2): the smallest data variance at which the
    Euclidean SimSiam mode (alpha_p = 1, noise on both views) keeps a non-collapsed
    equilibrium; from (lambda + sigma2) p^2 - lambda p + eta = 0 having real roots.

    Parameters
    ----------
    sigma2 : float
        The view-noise variance (>= 0).
    eta : float
        The weight decay (>= 0).

    Returns
    -------
    float
        lambda*.

    Raises
    ------
    TypeError
        A value that is not a real number.
    """
    return float(2 * eta + 2 * np.sqrt(eta**2 + eta * sigma2))


@dataclass(frozen=True, repr=False, eq=False)
class RealDataRun(Value):
    """A network trained on the digits against the eigenmode theory.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    spec : ModelSpec
        The model (data='spectrum').
    params : dict
        Its parameters.
    h : int
        The width (top-h modes).
    lam : numpy.ndarray
        (h,) the modes' data variances.
    sampled : NetworkRun
        Trained on sampled batches of actual images.
    expected : NetworkRun or None
        The exact expected dynamics on the data's covariance (losses quadratic in the samples
        only), else None.
    vs_sampled, vs_expected : Comparison
        The theory approximations against them (``vs_expected`` None with ``expected``).
    survivors : dict
        {"network": (h,) bool, "theory: <label>": (h,) bool, "closed form": (h,) bool or
        None}: modes with s_j(t1) >= SURVIVAL_RATIO max_k s_k(t1); the closed form (Euclidean,
        alpha_p = 1, both views): lambda_j >= lambda* (and a start above the unstable root).
    threshold : float or None
        lambda* (Euclidean) or None.
    info : FrozenMap
        The options used.
    """

    spec: ModelSpec
    params: dict
    h: int
    lam: np.ndarray
    sampled: NetworkRun
    expected: NetworkRun | None
    vs_sampled: Comparison
    vs_expected: Comparison | None
    survivors: dict
    threshold: float | None
    info: Mapping[str, object] = field(default_factory=FrozenMap)

    def errors(self) -> dict[str, dict[str, dict]]:
        """The errors of each theory against each network run.

        Returns
        -------
        dict
            {"sampled": {label: errors}, "expected": ...} (max relative errors over time).
        """
        out = {"sampled": self.vs_sampled.errors[self.h]}
        if self.vs_expected is not None:
            out["expected"] = self.vs_expected.errors[self.h]
        return out

    def table(self) -> str:
        """Markdown: the errors of each theory against each network run, and the survivors.

        Returns
        -------
        str
            The table.
        """
        lines = ["| network | theory | max rel err p | max rel err s | surviving modes (net / theory) |", "|---|---|---|---|---|"]
        n_net = int(np.sum(self.survivors["network"]))
        for run, errs in self.errors().items():
            for label, e in errs.items():
                n_th = int(np.sum(self.survivors[f"theory: {label}"]))
                p = f"{e['p']:.3g}" if "p" in e else ""
                lines.append(f"| {run} | {label} | {p} | {e['s']:.3g} | {n_net} / {n_th} |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        e = self.vs_sampled.errors[self.h]
        best = min(e, key=lambda k: e[k]["s"])
        thr = f", lambda* = {self.threshold:.3f}" if self.threshold is not None else ""
        return (f"RealDataRun(digits, {self.spec.label}, h={self.h}, t1={self.sampled.t[-1]:g}{thr}, "
                f"surviving modes {int(np.sum(self.survivors['network']))}/{self.h}, "
                f"sampled vs {best!r}: max rel err s = {e[best]['s']:.3g})")


def _survivors(s: np.ndarray) -> np.ndarray:
    last = np.asarray(s)[-1]
    return last >= SURVIVAL_RATIO * np.max(last)


def digits_experiment(
    loss: str | ModelSpec = "euclidean",
    params: Mapping[str, float] | None = None,
    *,
    h: int = 64,
    t1: float = 40.0,
    dt: float = 0.01,
    batch: int = 512,
    p0: float = 0.6,
    n_records: int | None = None,
    expected: bool = True,
    seed: int = 0,
) -> RealDataRun:
    """Train a linear SimSiam network on the digits and score the eigenmode theory against it.

    Parameters
    ----------
    loss : a loss name or a ModelSpec (its data is set to 'spectrum').
    params : sigma2, eta, alpha_p (default {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0}).
    h : width <= 64: the network and the theory use the top-h principal directions.
    t1, dt, batch : training time, step, images per step of the sampled run.
    p0 : the aligned start: p_j = p0 and s_j = p0^2 / alpha_p for every mode, so which modes
        survive is decided by the data spectrum alone.
    n_records, seed : as in ``simulate_network``.
    expected : also run the exact expected dynamics on the data's covariance (losses quadratic
        in the samples) and score the theory against it.

    Returns
    -------
    RealDataRun (networks, comparisons, survivors, lambda*).

    Raises
    ------
    ValueError for h outside 1..64 or bad parameters (as ``simulate_network``).
    """
    data = digits_data()
    spec = loss if isinstance(loss, ModelSpec) else ModelSpec(loss)
    if spec.data != "spectrum":
        from dataclasses import replace

        spec = replace(spec, data="spectrum")
    params = dict(params or {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0})
    d = data.X.shape[1]
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 1 <= h <= d:
        raise ValueError(f"h must be an int in 1..{d} (the digits have {d} pixels); got {h!r}")
    alpha_p = params.get("alpha_p", 1.0)
    init = {"p": np.full(h, p0), "s": np.full(h, p0**2 / alpha_p), "tau": np.ones(h)}
    common = dict(h=h, t1=t1, init=init, seed=seed)
    sampled = simulate_network(spec, params, samples=data.X, gradient="sampled", dt=dt, batch=batch,
                               n_records=n_records, **common)
    vs_sampled = compare(spec, params, reference=sampled)
    run_expected, expected, vs_expected = expected, None, None
    if run_expected and is_quadratic(spec):
        expected = simulate_network(spec, params, samples=data.X, gradient="expected", n_records=n_records, **common)
        vs_expected = compare(spec, params, reference=expected)
    survivors: dict[str, Any] = {"network": _survivors(sampled.s)}
    for label, pred in vs_sampled.predictions[h].items():
        survivors[f"theory: {label}"] = _survivors(pred["s"])
    lam = np.asarray(data.lam[:h])
    threshold = None
    if (spec.loss == "euclidean" and spec.predictor == "learned" and spec.views == "both" and spec.stop_gradient
            and spec.target == "simsiam" and alpha_p == 1.0):
        threshold = collapse_threshold(params["sigma2"], params["eta"])
        c = lam + params["sigma2"]
        disc = np.clip(lam**2 - 4 * params["eta"] * c, 0.0, None)
        p_unstable = (lam - np.sqrt(disc)) / (2 * c)
        survivors["closed form"] = (lam >= threshold) & (p0 > p_unstable)
    return RealDataRun(spec, params, h, lam, sampled, expected, vs_sampled, vs_expected, survivors, threshold,
                       {"t1": t1, "dt": dt, "batch": batch, "p0": p0, "scale": data.scale})


def plot_real_data(run: RealDataRun, axes: Sequence[Axes] | None = None) -> Figure:
    """Three panels: the data spectrum with lambda* and the surviving modes; s_j(t) of a few
    modes (network on images vs theory); the final s_j against lambda_j.

    Parameters
    ----------
    run : RealDataRun
        What ``digits_experiment`` returned.
    axes : sequence of three matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of the axes.

    Raises
    ------
    TypeError
        ``axes`` is not a sequence of Axes.
    """
    if axes is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(14, 4.2), layout="constrained")
        axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    fig = axes[0].figure
    j = np.arange(1, run.h + 1)
    surv = run.survivors["network"]
    ax = axes[0]
    ax.semilogy(j, np.maximum(run.lam, 1e-6), "k.-", lw=1, label=r"$\lambda_j$ (digits covariance; $10^{-6}$ where 0)")
    ax.semilogy(j[surv], np.maximum(run.lam[surv], 1e-6), "o", mfc="none", color="tab:green", label="mode survives (network)")
    if run.threshold is not None:
        ax.axhline(run.threshold, color="tab:red", ls="--", label=rf"$\lambda^* = {run.threshold:.3f}$")
    ax.set_xlabel(r"mode $j$")
    ax.set_ylabel(r"data variance $\lambda_j$")
    ax.legend(fontsize=7)
    ax.set_title("digits spectrum and dimensional collapse", fontsize=9)
    ax = axes[1]
    label = next(iter(run.vs_sampled.predictions[run.h]))
    pred = run.vs_sampled.predictions[run.h][label]
    pick = sorted({0, 4, 9, 19, 29, 39, run.h - 1} & set(range(run.h)))
    colors = [f"C{i % 10}" for i in range(len(pick))]
    for c, k in zip(colors, pick):
        ax.plot(run.sampled.t, run.sampled.s[:, k], color=c, lw=2, alpha=0.6, label=rf"$j = {k + 1}$ ($\lambda_j = {run.lam[k]:.2g}$)")
        ax.plot(run.sampled.t, pred["s"][:, k], color="k", ls=":", lw=1)
    ax.set_xlabel(r"$t$")
    ax.set_ylabel(r"$s_j$")
    ax.set_title(f"network on images (colour) vs theory '{label}' (dotted)", fontsize=9)
    ax.legend(fontsize=6)
    ax = axes[2]
    ax.loglog(np.maximum(run.lam, 1e-6), np.maximum(run.sampled.s[-1], 1e-12), "o", mfc="none", label="network (images)")
    ax.loglog(np.maximum(run.lam, 1e-6), np.maximum(pred["s"][-1], 1e-12), "k.", label=f"theory ({label})")
    if run.threshold is not None:
        ax.axvline(run.threshold, color="tab:red", ls="--", label=r"$\lambda^*$")
    ax.set_xlabel(r"$\lambda_j$")
    ax.set_ylabel(rf"$s_j$ at $t = {run.sampled.t[-1]:g}$")
    ax.legend(fontsize=7)
    ax.set_title("which modes survive", fontsize=9)
    return fig
