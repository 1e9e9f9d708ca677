"""Monte-Carlo rates of the losses of the batch's moments at aligned points: the expected flow
of the true batch loss, estimated from independent batches (the reference that the derived
eigenmode flows of Barlow Twins, VICReg and the spectral contrastive loss are held against).

At an aligned point (h = d modes)

    Phi = U diag(sqrt s) V^T,   data covariance V diag(lambda) V^T,

each batch of B view pairs gives the gradient of the true batch loss
(``_truth.batch_loss_function``) by ``jax.grad``; the weight flow dPhi/dt = -grad - eta Phi is
projected on the eigenbasis, ds_j/dt = 2 sqrt(s_j) (U^T dPhi/dt V)_jj, and averaged over
independent batches: the mean estimates the expected flow of the batch loss at batch size B,
its standard error is std / sqrt(n_batches).

These losses are sums over the embedding dimensions, so the embedding basis is not arbitrary:
the moment matrices are diagonal (the point is aligned) only when U permutes the embedding
coordinates and flips their signs. With ``rotate`` U is a random signed permutation for Barlow
Twins and VICReg and a random orthogonal matrix for the spectral contrastive loss (-2 tr C +
tr(V1 V2) is invariant under any rotation of the embedding); V is a random orthogonal matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from ._montecarlo import _random_orthogonal, _readonly, random_point
from ._spec import ModelSpec
from ._system import FrozenMap
from ._truth import batch_loss_function, network_params, weight_flow

__all__ = ["BatchMonteCarlo", "monte_carlo_batch"]

_ROTATION_INVARIANT = ("spectral-contrastive",)


@dataclass(frozen=True, eq=False)
class BatchMonteCarlo:
    """The expected rates ds_j/dt of a loss of the batch's moments at one aligned point,
    estimated from independent batches (arrays read-only).

    Attributes
    ----------
    spec : ModelSpec
        The model.
    s : numpy.ndarray
        (h,) the point's mode values s_j (eigenvalues of Phi Phi^T).
    lam : numpy.ndarray
        (h,) the data variance of each mode.
    params : FrozenMap
        The network parameters.
    batch : int
        The batch size B.
    n_batches : int
        The number of independent batches.
    mean : numpy.ndarray
        (h,) the mean of ds_j/dt = 2 sqrt(s_j) (U^T dPhi/dt V)_jj over the batches.
    se : numpy.ndarray
        (h,) its standard error.
    drive : numpy.ndarray
        (h,) the mean rate of the loss gradient alone (eta = 0).
    offdiag : float
        ``||offdiag(M)||_F / ||diag(M)||_F`` of the mean projected gradient M =
        mean(U^T grad V): the aligned ansatz says the off-diagonal part vanishes in
        expectation, so this is O(noise) (nan where the diagonal vanishes).
    off_z : float
        The largest ``|mean / SE|`` over the off-diagonal entries of U^T grad V (nan for h = 1).
    loss : float
        The mean batch loss.
    U, V : numpy.ndarray
        (h, h) the output and input bases of the point.
    """

    spec: ModelSpec
    s: np.ndarray
    lam: np.ndarray
    params: FrozenMap
    batch: int
    n_batches: int
    mean: np.ndarray
    se: np.ndarray
    drive: np.ndarray
    offdiag: float
    off_z: float
    loss: float
    U: np.ndarray
    V: np.ndarray

    def z(self, reference: ArrayLike) -> np.ndarray:
        """The z-scores (mean - reference) / se of a predicted rate per mode.

        Parameters
        ----------
        reference : array_like
            The predicted ds_j/dt, shape (h,) (or a scalar).

        Returns
        -------
        numpy.ndarray
            (h,) z-scores (inf where se is 0 and the difference is not).
        """
        diff = self.mean - np.asarray(reference, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(diff == 0, 0.0, diff / self.se)


def _signed_permutation(rng: np.random.Generator, h: int) -> np.ndarray:
    return np.eye(h)[rng.permutation(h)] * rng.choice((-1.0, 1.0), size=h)


@lru_cache(maxsize=64)
def _kernel(spec: ModelSpec, h: int, batch: int, G: int):
    """Jitted: (key, weights, params, lam, U, V, phi) -> per-batch rates, drives, projected
    gradients and losses of G independent batches of ``batch`` view pairs."""
    import jax
    import jax.numpy as jnp

    loss = batch_loss_function(spec)

    def run(key, weights, params, lam, U, V, phi):
        kx, k1, k2 = jax.random.split(key, 3)
        x = (jax.random.normal(kx, (G, batch, h)) * jnp.sqrt(lam)) @ V.T
        sigma = jnp.sqrt(params["sigma2"])
        x2 = x + sigma * jax.random.normal(k2, (G, batch, h))
        x1 = x + sigma * jax.random.normal(k1, (G, batch, h)) if spec.views == "both" else x

        def one(x1b, x2b):
            value, g = jax.value_and_grad(lambda w: loss(w, weights, x1b, x2b, params))(weights)
            flow = weight_flow(spec, weights, g, params)
            return value, U.T @ g["Phi"] @ V, 2 * phi * jnp.diagonal(U.T @ flow["Phi"] @ V)

        values, grads, rates = jax.vmap(one)(x1, x2)
        return rates, -2 * phi * jnp.diagonal(grads, axis1=1, axis2=2), grads, values

    return jax.jit(run)


def monte_carlo_batch(
    spec: ModelSpec,
    s: ArrayLike,
    params: Mapping[str, float],
    *,
    batch: int,
    n_batches: int,
    seed: int = 0,
    lam: ArrayLike | None = None,
    rotate: bool = True,
) -> BatchMonteCarlo:
    """The expected flow ds_j/dt of the true batch loss at the aligned point with spectrum
    ``s``, from ``n_batches`` independent batches of ``batch`` Gaussian view pairs.

    Views: x ~ N(0, V diag(lam) V^T), x2 = x + e2, x1 = x + e1 (x1 = x for
    ``spec.views == "one"``), e ~ N(0, sigma2 I); dPhi/dt = -grad_Phi(batch loss) - eta Phi.

    Parameters
    ----------
    spec : ModelSpec
        A model with a loss of the batch's moments.
    s : array_like
        (h,) the eigenvalues of Phi Phi^T (>= 0), one per mode; h = d = len(s).
    params : mapping str -> float
        Exactly the network's parameters (``network_params(spec)``).
    batch : int
        The batch size B (>= 2).
    n_batches : int
        The number of independent batches (>= 8).
    seed : int
        Seeds the bases and the samples.
    lam : array_like, optional
        (h,) the data variances (``data="spectrum"``; a scalar is broadcast); default ones.
    rotate : bool
        Random bases (U a signed permutation, or orthogonal for rotation-invariant losses; V
        orthogonal) or the identity.

    Returns
    -------
    BatchMonteCarlo
        Per-mode means and standard errors, the drive, and the off-diagonal checks.

    Raises
    ------
    ValueError
        A per-sample loss, a bad spectrum, batch or count, a data spectrum with isotropic
        data, or parameters other than the network's.
    """
    import jax
    import jax.numpy as jnp

    if not isinstance(spec, ModelSpec) or not spec.batch_statistics:
        raise ValueError(f"monte_carlo_batch needs a loss of the batch's moments; got {spec!r}")
    s = np.atleast_1d(np.asarray(s, dtype=float))
    if s.ndim != 1 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"s must be a 1-D array of finite values >= 0; got {s!r}")
    h = s.shape[0]
    for name, value, low in (("batch", batch, 2), ("n_batches", n_batches, 8)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
    if lam is not None and spec.data != "spectrum" and not np.all(np.asarray(lam) == 1):
        raise ValueError("a data spectrum lam needs ModelSpec(data='spectrum')")
    names = set(network_params(spec))
    if not isinstance(params, Mapping) or set(params) != names:
        raise ValueError(f"params must give exactly {sorted(names)}; got {sorted(params) if isinstance(params, Mapping) else params!r}")
    fixed = {**{k: float(v) for k, v in params.items()}, "s": s}
    if lam is not None:
        fixed["lambda"] = lam
    rng = np.random.default_rng(seed)
    point = random_point(spec, h, rng, fixed=fixed, rotate=False)
    if rotate:
        U = _random_orthogonal(rng, h) if spec.loss in _ROTATION_INVARIANT else _signed_permutation(rng, h)
        V = _random_orthogonal(rng, h)
    else:
        U, V = np.eye(h), np.eye(h)
    phi = np.sqrt(point.s)
    weights = {"Phi": jnp.asarray((U * phi) @ V.T)}
    prm = {k: jnp.float64(v) for k, v in point.params.items()}
    n_batches, batch = int(n_batches), int(batch)
    G = max(1, min(n_batches, (2**21) // (batch * h)))
    kernel = _kernel(spec, h, batch, G)
    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    args = (weights, prm, jnp.asarray(point.lam), jnp.asarray(U), jnp.asarray(V), jnp.asarray(phi))
    rates, drives, grads, losses = [], [], [], []
    for i in range(-(-n_batches // G)):
        r, dr, g, v = kernel(jax.random.fold_in(key, i), *args)
        rates.append(np.asarray(r))
        drives.append(np.asarray(dr))
        grads.append(np.asarray(g))
        losses.append(np.asarray(v))
    rates = np.concatenate(rates)[:n_batches]
    drive = np.concatenate(drives)[:n_batches].mean(0)
    grads = np.concatenate(grads)[:n_batches]
    loss = float(np.concatenate(losses)[:n_batches].mean())
    mean = rates.mean(0)
    se = rates.std(0, ddof=1) / np.sqrt(n_batches)
    M = grads.mean(0)
    off = ~np.eye(h, dtype=bool)
    diag_norm = np.linalg.norm(np.diagonal(M))
    offdiag = float(np.linalg.norm(M[off]) / diag_norm) if diag_norm > 0 else float("nan")
    if h > 1:
        off_se = grads[:, off].std(0, ddof=1) / np.sqrt(n_batches)
        scale = np.abs(grads).mean() + 1e-300
        off_z = float(np.max(np.abs(M[off]) / np.maximum(off_se, 1e-12 * scale)))
    else:
        off_z = float("nan")
    return BatchMonteCarlo(
        spec, _readonly(point.s), _readonly(point.lam), point.params, batch, n_batches,
        _readonly(mean), _readonly(se), _readonly(drive), offdiag, off_z, loss, _readonly(U), _readonly(V),
    )
