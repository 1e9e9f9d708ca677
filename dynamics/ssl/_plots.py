"""Figures of the SSL-specific results: the network's eigenvalue trajectories against the
eigenmode predictions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .._plots import figure_axes, legend_outside
from ._network import NetworkRun

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.axes import Axes

__all__ = ["plot_spectra"]


def plot_spectra(net: NetworkRun, predictions: Mapping[str, Mapping[str, np.ndarray]] | None = None, *,
                 state: str = "p", modes: int = 6, scale_free: bool = False, ax: Axes | None = None,
                 legend: bool = True):
    """Eigenvalue trajectories of the network (solid black) against eigenmode predictions
    (dashed, one colour per approximation) for ``modes`` evenly spread modes j. ``scale_free``
    divides by ``||Psi||_F`` (p) or ``||Phi||_F^2`` (s): what the cosine loss sees.

    Parameters
    ----------
    net : a network run (``simulate_network``): arrays t, p, s, psi_norm2, phi_norm2.
    predictions : {label: {"p": (n_t, h), "s": (n_t, h)}} from the eigenmode systems.
    state : "p" or "s"
        The mode value drawn.
    modes : int
        How many modes to draw (>= 1).
    scale_free : bool
        Divide by the norms.
    ax : a matplotlib Axes, or None for a new figure.
    legend : draw the legend (outside the axes, right); False for all but one panel of a row
        of panels that share it.

    Returns
    -------
    (fig, ax)

    Raises
    ------
    ValueError
        ``state`` not "p" or "s"; ``modes`` not an int >= 1.
    TypeError
        ``net`` lacks the arrays of a network run; ``predictions`` no mapping; ``ax`` no Axes.
    """
    if state not in ("p", "s"):
        raise ValueError(f"state must be 'p' or 's'; got {state!r}")
    if isinstance(modes, bool) or not isinstance(modes, (int, np.integer)) or modes < 1:
        raise ValueError(f"modes must be an int >= 1; got {modes!r}")
    missing = [a for a in ("t", "p", "s", "psi_norm2", "phi_norm2") if not hasattr(net, a)]
    if missing:
        raise TypeError(f"net must be a network run (from dynamics.simulate_network) with arrays t, p, s, psi_norm2, "
                        f"phi_norm2; got {type(net).__name__} without {', '.join(missing)}")
    if predictions is not None and not isinstance(predictions, Mapping):
        raise TypeError(f"predictions must be a dict {{label: {{'p': array, 's': array}}}}; got {type(predictions).__name__}")
    fig, ax = figure_axes(ax)
    h = net.p.shape[1]
    pick = np.unique(np.linspace(0, h - 1, min(modes, h)).round().astype(int))

    def norm(values, norm2):
        if not scale_free:
            return values
        return values / (np.sqrt(norm2)[:, None] if state == "p" else norm2[:, None])

    data = norm(getattr(net, state), net.psi_norm2 if state == "p" else net.phi_norm2)
    for j in pick:
        ax.plot(net.t, data[:, j], color="k", lw=1.6, alpha=0.8)
    ax.plot([], [], color="k", lw=1.6, label=f"network ($h = {h}$, true loss)")
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
    for (label, pred), color in zip((predictions or {}).items(), colors):
        vals = pred[state]
        n2 = np.sum(pred["p"] ** 2, axis=-1) if state == "p" else np.sum(pred["s"], axis=-1)
        vals = norm(vals, n2)
        for j in pick:
            ax.plot(net.t, vals[:, j], ls="--", color=color, lw=1.2)
        ax.plot([], [], ls="--", color=color, label=label)
    ax.set_xlabel("$t$")
    scale = (r" / \|\Psi\|_F" if state == "p" else r" / \|\Phi\|_F^2") if scale_free else ""
    ax.set_ylabel(f"${state}_j{scale}$ ({len(pick)} of {h} modes)")
    if legend:
        legend_outside(ax)
    return fig, ax
