"""Monte-Carlo covariance of the true per-sample gradient at aligned points: the independent
reference for ``gradient_noise``.

Each sample's gradient of the TRUE per-sample loss (``jax.grad``, ``_truth.sample_loss``) is
taken as a batch of one and projected on the eigenbasis exactly as ``monte_carlo`` projects the
mean (dp_j = (U^T dPsi U)_jj, ds_j = 2 sqrt(s_j) (U^T dPhi V)_jj, dtau_j); the sample
covariance of these rates over independent samples estimates Sigma. Standard errors of a
covariance entry are std((x - mean x)(y - mean y)) / sqrt(n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._montecarlo import AlignedPoint, _kernel
from ._spec import ModelSpec
from ._system import FrozenMap

__all__ = ["NoiseMonteCarlo", "monte_carlo_noise"]


@dataclass(frozen=True, eq=False)
class NoiseMonteCarlo:
    """Sample covariances of the per-sample rates at an aligned point.

    Attributes
    ----------
    names : tuple of str
        The per-mode states, the order of the covariance's rows.
    covariance, se : numpy.ndarray
        (h, m, m): per mode j, the covariance of the rates of its states over single samples,
        and the standard errors of its entries.
    cross_z : float
        The largest ``|z|`` of the covariances between the rates of different modes: of order
        the largest of (m h)^2 standard normals (about 3-4) where the modes' noise is
        independent, large where it is not.
    offdiag : FrozenMap of str -> numpy.ndarray
        "Phi" and (learned predictor) "Psi": (h, h) the per-sample second moment of the rate
        of each off-diagonal weight entry in the aligned frame (diagonal: NaN), with
        ``offdiag_se`` their standard errors.
    offdiag_se : FrozenMap of str -> numpy.ndarray
    n_samples : int
    full_covariance, full_se : numpy.ndarray
        (m h, m h): the covariance of all the rates, modes included, in the flat state-major
        layout of ``derive(spec).modes(h)`` (index a h + j: state a of mode j), and the
        standard errors of its entries.
    """

    names: tuple
    covariance: np.ndarray
    se: np.ndarray
    cross_z: float
    offdiag: FrozenMap
    offdiag_se: FrozenMap
    n_samples: int
    full_covariance: np.ndarray | None = None
    full_se: np.ndarray | None = None


def _moment(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Covariance of x and y along axis 0 and its standard error."""
    prod = (x - x.mean(0)) * (y - y.mean(0))
    n = x.shape[0]
    return prod.sum(0) / (n - 1), prod.std(0, ddof=1) / np.sqrt(n)


def monte_carlo_noise(spec: ModelSpec, point: AlignedPoint, *, n_samples: int = 2**15, seed: int = 0,
                      chunk: int = 4096) -> NoiseMonteCarlo:
    """Covariance of the true per-sample rates at ``point`` from ``n_samples`` samples.

    Parameters
    ----------
    spec : ModelSpec
        The model (``point.spec``).
    point : AlignedPoint
        An aligned point of the network (``random_point(spec, h, seed)``).
    n_samples : int
        Independent samples (>= 64).
    seed : int
        The sample stream.
    chunk : int
        Samples per compiled call (the last call's surplus is dropped).

    Returns
    -------
    NoiseMonteCarlo

    Raises
    ------
    TypeError
        ``point`` not an AlignedPoint.
    ValueError
        A point of another spec, too few samples, or a chunk that is not a positive int.
    """
    import jax.numpy as jnp

    if not isinstance(point, AlignedPoint):
        raise TypeError(f"point must be an AlignedPoint (random_point(spec, h, seed)); got {type(point).__name__}")
    if point.spec != spec:
        raise ValueError(f"point was drawn for {point.spec.label}, not {spec.label}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 64:
        raise ValueError(f"n_samples must be an int >= 64; got {n_samples!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int (samples per compiled call); got {chunk!r}")
    h = point.h
    G = int(min(chunk, n_samples))
    kernel = _kernel(spec, "true", h, 1, G)
    params = {k: jnp.float64(v) for k, v in point.params.items()}
    closures = {k: jnp.float64(v) for k, v in point.closures.items()}
    args = (params, closures, jnp.asarray(point.lam), jnp.asarray(point.U), jnp.asarray(point.V),
            jnp.asarray(np.sqrt(point.s)), jnp.asarray(point.tau))
    weights = point.weights()
    rng = np.random.default_rng(seed)
    rates, offs = [], []
    for _ in range(-(-int(n_samples) // G)):  # whole chunks, the last one cut to n_samples
        xi, e1, e2 = (rng.standard_normal((G, 1, h)) for _ in range(3))
        r, o, _ = kernel(weights, xi, e1, e2, *args)
        rates.append(np.asarray(r))
        offs.append(np.asarray(o))
    rates = np.concatenate(rates)[:n_samples]  # (n, m, h)
    offs = np.concatenate(offs)[:n_samples]  # (n, n_off)
    names = (("p",) if spec.predictor == "learned" else ()) + ("s",) + (("tau",) if spec.target == "ema" else ())
    m = len(names)
    cov = np.empty((h, m, m))
    se = np.empty((h, m, m))
    for a in range(m):
        for b in range(m):
            c, e = _moment(rates[:, a, :], rates[:, b, :])
            cov[:, a, b], se[:, a, b] = c, e
    centred = rates - rates.mean(0)
    flat = centred.reshape(centred.shape[0], -1)  # (n, m*h), index a*h + j
    n = flat.shape[0]
    cross_cov = flat.T @ flat / (n - 1)
    cross_se = np.sqrt(np.maximum((flat**2).T @ (flat**2) / n - (flat.T @ flat / n) ** 2, 0.0) / n)
    mode = np.tile(np.arange(h), m)
    other = mode[:, None] != mode[None, :]
    cross = float(np.max(np.abs(cross_cov[other]) / np.maximum(cross_se[other], 1e-300))) if h > 1 else 0.0
    mask = ~np.eye(h, dtype=bool)
    groups = ["Phi"] + (["Psi"] if spec.predictor == "learned" else [])
    off, off_se = {}, {}
    n_off = h * h - h
    for i, name in enumerate(groups):
        block = offs[:, i * n_off:(i + 1) * n_off]
        second = block**2
        full = np.full((h, h), np.nan)
        full_se = np.full((h, h), np.nan)
        full[mask] = second.mean(0)
        full_se[mask] = second.std(0, ddof=1) / np.sqrt(second.shape[0])
        off[name], off_se[name] = full, full_se
    return NoiseMonteCarlo(names, cov, se, cross, FrozenMap(off), FrozenMap(off_se), int(rates.shape[0]),
                           cross_cov, cross_se)
