"""The exact expected gradient of the cosine loss for any weights (not aligned), in matrix form.

For any weights (a, b) = (W_P Phi x1, Phi_t x2) is jointly Gaussian in R^{2h} with covariance
Sigma = [[S_aa, S_ab], [S_ab^T, S_bb]], and jointly Gaussian with an input leg y (x1 or x2):
X_a = E[a y^T], X_b = E[b y^T]. The cosine loss L = -B/sqrt(A C) has the online gradient
g = dL/da = -b (A C)^(-1/2) + B a A^(-3/2) C^(-1/2), and the weight gradients need
E[g y^T] (h x d). Writing the inverse powers as Laplace integrals,
A^(-p) C^(-q) = (Gamma(p) Gamma(q))^(-1) int int s^(p-1) t^(q-1) exp(-s A - t C) ds dt,
the tilt exp(-u^T D u), D = diag(s I, t I), is Gaussian again:

    E[f exp(-u^T D u)] = det(I + 2 D Sigma)^(-1/2) E~[f],
    tilted covariance  Sigma~ = Sigma (I + 2 D Sigma)^(-1),
    tilted legs        Cov~(u, y) = (I + 2 Sigma D)^(-1) [X_a; X_b],

and Isserlis under the tilt gives E~[b y^T] = Cov~(b, y) and
E~[B a y^T] = tr(S~_ab) Cov~(a, y) + S~_aa Cov~(b, y) + S~_ab Cov~(a, y).

Rays instead of a dense factorisation per node: with t = r s, D = s D_r, D_r = diag(I, r I), one
symmetric eigendecomposition per ray, D_r^(1/2) Sigma D_r^(1/2) = Q diag(mu) Q^T, serves every
s on it: det = prod(1 + 2 s mu_i), Sigma~ = P diag(mu/(1 + 2 s mu)) P^T and
Cov~(u, y) = P diag(1/(1 + 2 s mu)) Y with P = D_r^(-1/2) Q, Y = Q^T D_r^(1/2) [X_a; X_b]. The
integral over s is then a weighted sum of outer products of two vectors of length 2h, so one
evaluation costs n_rays (eigh(2h) + n_s (2h)^2 + (2h)^2 d) operations.

Quadrature: s = e^x / E[A], r = e^z E[A] / E[C]. The integrand is analytic in |Im x| < pi
(det vanishes only at negative real s) and in |Im z| < pi/2 (Re r > 0 keeps I + 2 D Sigma
invertible), but it decays only like e^(z/2) (the weight r^(1/2)) and e^x at the lower ends, so
a uniform grid in (x, z) needs |x|, |z| up to 50. The sinh maps x = c_s sinh(xi),
z = c_r sinh(zeta) make both tails decay doubly exponentially; the trapezoidal rule in
(xi, zeta) then needs 103 x 101 nodes for the accuracy 287 x 287 uniform nodes give: 1e-10
relative against a much finer grid, h = 2..16, rank-deficient and ill-conditioned covariances
included (a step of 0.15 in xi, half as many nodes, loses up to 1.5e-5 on covariances with a
condition number near 100: the s grid must resolve the smallest eigenvalues' scale); checked by
refinement in the tests.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ._system import FrozenMap

__all__ = ["MATRIX_QUADRATURE", "cosine_gradient_moment"]

MATRIX_QUADRATURE = FrozenMap({"ray_step": 0.09, "ray_width": 4.5, "ray_scale": 2.0,
                                "s_step": 0.075, "s_width": 3.8, "s_scale": 2.5})
"""The default grids: for the rays, z = ray_scale sinh(zeta) with zeta on [-ray_width,
ray_width] in steps ray_step; for s, x = s_scale sinh(xi) likewise."""


def _grid(quad, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (in the log variable) and trapezoidal weights of the sinh-mapped grid."""
    step, width, scale = (float(quad[f"{which}_{k}"]) for k in ("step", "width", "scale"))
    n = int(round(width / step))
    xi = step * np.arange(-n, n + 1)
    return scale * np.sinh(xi), step * scale * np.cosh(xi)


_DIFFERENCE_STEP = 2e-5
"""Relative step of the central difference that differentiates the quadrature."""


def cosine_gradient_moment(S_aa, S_ab, S_bb, X_a, X_b, quadrature=MATRIX_QUADRATURE):
    """E[g y^T] for the cosine loss, g = dL/da = -b/sqrt(A C) + B a / (A^(3/2) C^(1/2)).

    The target branch's E[(dL/db) y^T] is the same function with the roles of a and b
    exchanged: ``cosine_gradient_moment(S_bb, S_ab.T, S_aa, X_b, X_a)``.

    Parameters
    ----------
    S_aa, S_ab, S_bb : jax.Array
        (h, h) covariance blocks of the zero-mean Gaussian pair (a, b).
    X_a, X_b : jax.Array
        (h, d) cross-covariances E[a y^T], E[b y^T] with the leg y.
    quadrature : mapping
        The grids: overrides of ``MATRIX_QUADRATURE`` (its keys only).

    Returns
    -------
    jax.Array
        (h, d): E[g y^T] (NaN where E[A] or E[C] is 0: the loss is undefined there).

    Raises
    ------
    ValueError
        Unknown quadrature keys.

    Notes
    -----
    The value is a smooth function of the covariances, but its evaluation goes through an
    eigendecomposition per ray, whose derivative is not finite where eigenvalues coincide (as
    they do on aligned weights). Its derivative (``jax.jvp``, ``jax.jacfwd``) is therefore a
    central difference along the tangent with the relative step 2e-5 (about 1e-8 relative:
    steps from 1e-6 to 2e-5 agree to 1e-8, and the error falls like the step squared above).
    """
    quad = dict(MATRIX_QUADRATURE)
    given = dict(quadrature)
    unknown = set(given) - set(MATRIX_QUADRATURE)
    if unknown:
        raise ValueError(f"quadrature keys must be among {sorted(MATRIX_QUADRATURE)}; got {sorted(unknown)}")
    quad.update(given)
    return _moment_function(tuple(sorted(quad.items())))(S_aa, S_ab, S_bb, X_a, X_b)


@lru_cache(maxsize=16)
def _moment_function(quad_items: tuple):
    import jax
    import jax.numpy as jnp

    quadrature = dict(quad_items)

    @jax.custom_jvp
    def moment(S_aa, S_ab, S_bb, X_a, X_b):
        return _moment(S_aa, S_ab, S_bb, X_a, X_b, quadrature)

    @moment.defjvp
    def _moment_jvp(primals, tangents):
        size = sum(jnp.sum(p**2) for p in primals)
        norm = sum(jnp.sum(t**2) for t in tangents)
        step = _DIFFERENCE_STEP * jnp.sqrt(size / jnp.where(norm > 0, norm, 1.0))
        out = _moment(*primals, quadrature)
        # both differences in one batch, after the value: the eigendecompositions run one call at
        # a time (concurrent LAPACK calls in one XLA program have deadlocked on CPU)
        step = step + 0.0 * jnp.sum(jnp.where(jnp.isfinite(out), out, 0.0))
        signs = jnp.array([1.0, -1.0])
        stacked = [p[None] + signs.reshape((2,) + (1,) * p.ndim) * step * t[None] for p, t in zip(primals, tangents)]
        up, down = jax.vmap(lambda *a: _moment(*a, quadrature))(*stacked)
        return out, jnp.where(norm > 0, (up - down) / (2 * step), 0.0)

    return moment


def _moment(S_aa, S_ab, S_bb, X_a, X_b, quadrature):
    import jax.numpy as jnp

    z, wz = (jnp.asarray(v) for v in _grid(quadrature, "ray"))
    x, wx = (jnp.asarray(v) for v in _grid(quadrature, "s"))
    h = S_aa.shape[-1]
    EA = jnp.trace(S_aa)
    EC = jnp.trace(S_bb)
    r = jnp.exp(z) * EA / EC  # rays t = r s
    s = jnp.exp(x) / EA
    root = jnp.sqrt(r)
    top = jnp.concatenate([S_aa, S_ab], axis=1)
    bottom = jnp.concatenate([S_ab.T, S_bb], axis=1)
    Sigma = jnp.concatenate([top, bottom], axis=0)
    scale = jnp.concatenate([jnp.ones(h), jnp.zeros(h)])
    half = scale[None, :] + (1 - scale)[None, :] * root[:, None]  # D_r^(1/2), (n_rays, 2h)
    mu, Q = jnp.linalg.eigh(half[:, :, None] * Sigma[None] * half[:, None, :])
    mu = jnp.clip(mu, 0.0, None)
    P_a = Q[:, :h, :]
    P_b = Q[:, h:, :] / root[:, None, None]
    Y = jnp.swapaxes(Q[:, :h, :], 1, 2) @ X_a + root[:, None, None] * (jnp.swapaxes(Q[:, h:, :], 1, 2) @ X_b)
    m = jnp.einsum("zki,zki->zi", P_a, P_b)
    N = jnp.swapaxes(P_a, 1, 2) @ P_b
    # inner sums over s for every ray: e_i = 1/(1 + 2 s mu_i), c_i = mu_i e_i
    e = 1.0 / (1.0 + 2.0 * s[None, :, None] * mu[:, None, :])  # (rays, nodes, 2h)
    det = jnp.exp(0.5 * jnp.sum(jnp.log(e), axis=-1))  # det^(-1/2)
    w1 = wx[None, :] * s[None, :] * det  # term 1: s^(p+q) with p = q = 1/2
    w2 = wx[None, :] * s[None, :] ** 2 * det  # term 2: p = 3/2, q = 1/2
    E1 = jnp.einsum("zx,zxi->zi", w1, e)
    cm = jnp.einsum("zxi,zi->zx", mu[:, None, :] * e, m)
    V = jnp.einsum("zx,zxi->zi", w2 * cm, e)
    K = mu[:, :, None] * (jnp.swapaxes(e * w2[:, :, None], 1, 2) @ e)  # sum_x w2 c_i e_j
    ray = wz * root  # dr/r = dz and the factor r^q with q = 1/2
    term1 = jnp.einsum("z,zkj->kj", ray, P_b @ (E1[:, :, None] * Y)) / math.pi
    inner = V[:, :, None] * jnp.eye(2 * h)[None] + K * (N + jnp.swapaxes(N, 1, 2))
    term2 = 2.0 / math.pi * jnp.einsum("z,zkj->kj", ray, (P_a @ inner) @ Y)
    out = term2 - term1
    return jnp.where((EA > 0) & (EC > 0), out, jnp.nan)
