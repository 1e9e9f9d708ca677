"""Alignment observables of the matrix-level network: do F = Phi Phi^T and the predictor W_P
share eigenvectors, and do the features find the data's eigenvectors?

The eigenmode ansatz assumes that W_P, F and the target Phi_a Phi^T are diagonal in one basis.
From a random start they are not; these functions measure how far from it a network is:
the normalised commutator ||[F, W]||_F / (||F||_F ||W||_F), the principal angles between
nested eigenspaces, and the off-diagonal mass of a matrix in another one's eigenbasis. All are
pure JAX functions of their arrays (float64, jit and vmap friendly).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from jax import Array
from numpy.typing import ArrayLike

from derivations import ModelSpec, Params, predictor_matrix

__all__ = ["commutator", "principal_angles", "eigenspace_angles", "offdiagonal_mass", "alignment_observables"]


def _jnp():
    import jax.numpy as jnp

    return jnp


def _ratio(num, den):
    """num / den with 0 / 0 (and x / 0) -> 0."""
    jnp = _jnp()
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _frobenius(M):
    jnp = _jnp()
    return jnp.sqrt(jnp.sum(M**2))


def commutator(F: ArrayLike, W: ArrayLike) -> Array:
    """The normalised commutator ||F W - W F||_F / (||F||_F ||W||_F).

    Zero exactly when F and W commute, i.e. (for symmetric F and W) when they have a common
    orthonormal eigenbasis, as the eigenmode ansatz assumes; at most sqrt(2) (the
    Boettcher-Wenzel inequality). Convention: 0 when F or W is zero (0 / 0 -> 0), as the zero
    matrix commutes with everything.

    Parameters
    ----------
    F, W : array_like
        Square matrices of the same shape (n, n).

    Returns
    -------
    jax.Array
        A float64 scalar in [0, sqrt(2)].
    """
    jnp = _jnp()
    F, W = jnp.asarray(F, dtype=jnp.float64), jnp.asarray(W, dtype=jnp.float64)
    return _ratio(_frobenius(F @ W - W @ F), _frobenius(F) * _frobenius(W))


def _orthonormal(X):
    jnp = _jnp()
    return jnp.linalg.qr(jnp.asarray(X, dtype=jnp.float64), mode="reduced")[0]


def principal_angles(X: ArrayLike, Y: ArrayLike) -> Array:
    """The principal angles between the column spans of X and Y, in radians, ascending.

    Both bases are orthonormalised (QR), the cosines are the singular values of Qx^T Qy and
    the sines those of Qy - Qx Qx^T Qy (with the roles swapped when Y has more columns); each
    angle is arctan2(sine, cosine), accurate near 0 and near pi/2 alike, clipped to [0, pi/2].

    Parameters
    ----------
    X, Y : array_like
        Matrices of shapes (n, kx) and (n, ky) with full column rank (kx, ky <= n).

    Returns
    -------
    jax.Array
        The min(kx, ky) angles, ascending, in [0, pi/2].
    """
    jnp = _jnp()
    Qx, Qy = _orthonormal(X), _orthonormal(Y)
    if Qy.shape[1] > Qx.shape[1]:
        Qx, Qy = Qy, Qx
    cos = jnp.linalg.svd(Qx.T @ Qy, compute_uv=False)
    sin = jnp.linalg.svd(Qy - Qx @ (Qx.T @ Qy), compute_uv=False)[::-1]
    return jnp.clip(jnp.arctan2(sin, cos), 0.0, jnp.pi / 2)


def _nested_angles(G, k_max: int):
    """For k = 1..k_max, the largest principal angle between the spans of the first k columns
    of two orthogonal n x n bases A and B, from G = A^T B.

    sin = ||G[k:, :k]||_2 and cos = sigma_min(G[:k, :k]); by the CS decomposition of the
    orthogonal G, for k > n/2 the same values come from the smaller blocks G[:k, k:] and
    G[k:, k:]. Every block fits in n x n//2, so one fixed-shape body runs over all k.
    """
    jnp = _jnp()
    if k_max < 1:
        return jnp.zeros((0,), dtype=jnp.float64)
    return _nested_angles_jit()(G, k_max)


@lru_cache(maxsize=None)
def _nested_angles_jit():
    """``_nested_angles``'s loop compiled once per shape and k_max (called eagerly, ``lax.map``
    would trace and compile its body anew on every call)."""
    import jax

    return jax.jit(_nested_angles_loop, static_argnums=1)


def _nested_angles_loop(G, k_max: int):
    import jax

    jnp = _jnp()
    n = G.shape[0]
    m = n // 2
    idx = jnp.arange(n)

    def one(k):
        small = k <= n - k
        r = jnp.minimum(k, n - k)
        cols = idx[:m] < r
        rolled = jnp.roll(G, -k, axis=1)
        off = jnp.where(small, G, rolled)[:, :m] * (jnp.where(small, idx >= k, idx < k)[:, None] & cols[None, :])
        diag = jnp.where(small, G, jnp.roll(rolled, -k, axis=0))[:m, :m] * (cols[:, None] & cols[None, :])
        sin = jnp.linalg.svd(off, compute_uv=False)[0]
        cos = jnp.linalg.svd(diag, compute_uv=False)[r - 1]
        return jnp.clip(jnp.arctan2(sin, cos), 0.0, jnp.pi / 2)

    return jax.lax.map(one, jnp.arange(1, k_max + 1))


def _eigvecs_descending(M):
    jnp = _jnp()
    _, U = jnp.linalg.eigh(jnp.asarray(M, dtype=jnp.float64))
    return U[:, ::-1]


def eigenspace_angles(M1: ArrayLike, M2: ArrayLike) -> Array:
    """For k = 1..n-1, the largest principal angle between the spans of the top-k eigenvectors
    (largest eigenvalues) of the symmetric M1 and of M2.

    All zero exactly when every top-k eigenspace of M1 is one of M2 (common eigenvectors in the
    same order). A degenerate eigenvalue leaves the eigenvectors within its eigenspace
    arbitrary, but a top-k subspace is still well defined wherever the cut k does not fall
    between two equal eigenvalues: only the entries at such cuts are arbitrary (for the
    identity every cut is such a cut).

    Parameters
    ----------
    M1, M2 : array_like
        Symmetric (n, n) matrices (only their lower triangles are read).

    Returns
    -------
    jax.Array
        Shape (n-1,): entry k-1 is the angle for the top-k subspaces, in [0, pi/2].
    """
    U1, U2 = _eigvecs_descending(M1), _eigvecs_descending(M2)
    return _nested_angles(U1.T @ U2, U1.shape[0] - 1)


def offdiagonal_mass(M: ArrayLike, basis: ArrayLike) -> Array:
    """||offdiag(U^T M U)||_F / ||M||_F with U = ``basis``: the share of M (in Frobenius norm)
    that is not diagonal in the basis U.

    Zero when the columns of U are eigenvectors of M (for a square orthogonal U); at most 1
    for a square orthogonal U. Convention: 0 for M = 0.

    Parameters
    ----------
    M : array_like
        An (n, n) matrix.
    basis : array_like
        U, shape (n, k), orthonormal columns.

    Returns
    -------
    jax.Array
        A float64 scalar.
    """
    jnp = _jnp()
    M, U = jnp.asarray(M, dtype=jnp.float64), jnp.asarray(basis, dtype=jnp.float64)
    A = U.T @ M @ U
    return _ratio(_frobenius(A - jnp.diag(jnp.diag(A))), _frobenius(M))


def alignment_observables(spec: ModelSpec, weights: Mapping[str, ArrayLike], params: Params, *,
                          data_basis: ArrayLike | None = None) -> dict[str, Array]:
    """The alignment of the network's matrices at one set of weights.

    F = Phi Phi^T, W = W_P (``derivations.predictor_matrix``: Psi, DirectPred's F^alpha or the
    identity), W_s = (W + W^T)/2, U_F the eigenbasis of F (eigenvalues descending).

    - "commutator": ``commutator(F, W_s)``;
    - "angles": ``eigenspace_angles(F, W_s)``, shape (h-1,);
    - "offdiag": ``offdiagonal_mass(W, U_F)``;
    - "target_offdiag": ``offdiagonal_mass(Phi_a Phi^T, U_F)`` for an EMA target; NaN for
      SimSiam, whose target Phi Phi^T = F is diagonal in U_F by construction;
    - "data_angles" (only with ``data_basis``): for k = 1..h-1 the largest principal angle
      between the top-k right singular vectors of Phi (directions in input space) and the
      first k columns of ``data_basis``, shape (h-1,).

    With DirectPred (W_P = F^alpha) and without a predictor (W_P = I) the predictor is a
    function of F, so the commutator and "offdiag" are identically 0 (up to rounding) and
    "angles" measures nothing new (for predictor="none" it is NaN: every eigenbasis of I is
    one); the meaningful observable there is "data_angles", the eigenbasis of F relative to
    the data. Entries at a cut between equal eigenvalues (of F, W_s or Phi^T Phi) are
    arbitrary, as in ``eigenspace_angles``.

    Parameters
    ----------
    spec : ModelSpec
        The model: its predictor and target decide which weights are read.
    weights : mapping str -> array
        "Phi" (h, d) and, as the spec trains them, "Psi" (h, h) and "Phi_a" (h, d).
    params : mapping str -> float
        The parameters (DirectPred reads "alpha" and "eps").
    data_basis : array_like, optional
        The data eigenvectors, a (d, d) orthogonal matrix, columns in mode order.

    Returns
    -------
    dict of str -> jax.Array
        The observables above.

    Raises
    ------
    ValueError
        A weight the spec needs is missing.
    """
    jnp = _jnp()
    needed = ["Phi"] + (["Psi"] if spec.predictor == "learned" else []) + (["Phi_a"] if spec.target == "ema" else [])
    missing = [k for k in needed if k not in weights]
    if missing:
        raise ValueError(f"weights must have {needed} for {spec.label}; missing {missing}")
    Phi = jnp.asarray(weights["Phi"], dtype=jnp.float64)
    h = Phi.shape[0]
    W = predictor_matrix(spec, {**weights, "Phi": Phi}, params)
    Ws = 0.5 * (W + W.T)
    F = Phi @ Phi.T
    UF = _eigvecs_descending(F)
    angles = _nested_angles(UF.T @ _eigvecs_descending(Ws), h - 1)
    if spec.predictor == "none":
        angles = jnp.full((h - 1,), jnp.nan)
    if spec.target == "ema":
        target = offdiagonal_mass(jnp.asarray(weights["Phi_a"], dtype=jnp.float64) @ Phi.T, UF)
    else:
        target = jnp.asarray(jnp.nan)
    out = {"commutator": commutator(F, Ws), "angles": angles, "offdiag": offdiagonal_mass(W, UF),
           "target_offdiag": target}
    if data_basis is not None:
        B = jnp.asarray(data_basis, dtype=jnp.float64)
        Vt = jnp.linalg.svd(Phi, full_matrices=True)[2]
        out["data_angles"] = _nested_angles(B.T @ Vt.T, h - 1)
    return out
