"""The true model of a ModelSpec as JAX code: per-sample losses whose autodiff gradients are the
model's learning rule. The network simulator and ``verify`` use it as ground truth; nothing
here is derived by SymPy.

Stop-gradients are written as a second copy of the weights (``frozen``) rather than with
``jax.lax.stop_gradient``: the gradient is taken with respect to ``weights`` only and then
evaluated at ``frozen = weights``. This keeps the loss differentiable in the samples, so the
Gaussian average of a loss quadratic in the samples is exact (``expected_loss``).

Weights: ``{"Phi": (h, d)}`` plus ``"Psi": (h, h)`` for a learned predictor and
``"Phi_a": (h, d)`` for an EMA target. Parameters: ``sigma2``, ``eta`` and, as the spec needs
them, ``alpha_p`` (learned predictor), ``beta`` (EMA), ``alpha`` and ``eps`` (DirectPred),
``lambda_BT`` (Barlow Twins), ``lambda_inv``, ``mu_var``, ``nu_cov``, ``gamma``, ``eps_var``
(VICReg).

The losses of the batch's moment matrices (Barlow Twins, VICReg, spectral contrastive) have no
per-sample form: ``batch_loss_function`` gives the loss of one batch as the papers define it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import sympy as sp
from jax import Array
from numpy.typing import ArrayLike

from ._losses import A, B, C
from ._spec import ModelSpec
from ._typing import Params

__all__ = [
    "network_params", "predictor_matrix", "sample_loss", "expected_loss", "view_covariance", "weight_flow",
    "sample_views", "batch_loss_function", "BATCH_LOSS_PARAMS",
]

BATCH_LOSS_PARAMS: dict[str, tuple[str, ...]] = {
    "barlow-twins": ("lambda_BT",),
    "vicreg": ("lambda_inv", "mu_var", "nu_cov", "gamma", "eps_var"),
    "spectral-contrastive": (),
}
"""The weights each loss of the batch's moments reads, by loss name."""

Weights = Mapping[str, ArrayLike]


def network_params(spec: ModelSpec) -> tuple[str, ...]:
    """The parameters the network of ``spec`` reads (it computes its own norms and spectra).

    Parameters
    ----------
    spec : ModelSpec
        The model.

    Returns
    -------
    tuple of str
        sigma2 and eta, then alpha_p (learned predictor), beta (EMA target), alpha and eps
        (DirectPred) as the model has them; for a loss of the batch's moments its weights
        (``BATCH_LOSS_PARAMS``).

    Raises
    ------
    AttributeError
        ``spec`` is not a ModelSpec (it has no ``predictor``).
    """
    names = ["sigma2", "eta"]
    if spec.batch_statistics:
        names.extend(BATCH_LOSS_PARAMS[spec.loss])
    if spec.predictor == "learned":
        names.append("alpha_p")
    if spec.target == "ema":
        names.append("beta")
    if spec.predictor == "directpred":
        names.append("alpha")
        if spec.eps:
            names.append("eps")
    return tuple(names)


def _jnp():
    import jax.numpy as jnp

    return jnp


def _matrix_power(F: Array, power: float, spec: ModelSpec, params: Params) -> Array:
    """U diag(w) U^T from the eigendecomposition of the symmetric F, w = DirectPred's
    predictor eigenvalues raised to ``power`` (1 for W_P, 1/2 for W_P^(1/2))."""
    jnp = _jnp()
    ev, U = jnp.linalg.eigh(0.5 * (F + F.T))
    ev = jnp.clip(ev, 0.0, None)
    if spec.normalize:
        ev = ev / jnp.max(ev)
    w = ev ** params["alpha"]
    if spec.eps:
        w = w + params["eps"]
    return (U * w**power) @ U.T


def predictor_matrix(spec: ModelSpec, weights: Weights, params: Params, *, power: float = 1.0) -> Array:
    """W_P (or W_P^power for DirectPred): Psi, F^alpha with F = Phi Phi^T, or the identity.

    DirectPred: w_j = (s_j / s_max)^alpha [+ eps] with s_j the eigenvalues of F (``normalize``
    divides by the largest, ``eps`` adds eps).

    Parameters
    ----------
    spec : ModelSpec
        The model (its ``predictor`` decides).
    weights : mapping str -> array
        The weights: "Phi" (h x d) and, for a learned predictor, "Psi" (h x h).
    params : mapping str -> float
        The parameters; DirectPred reads "alpha" (and "eps").
    power : float
        The power of W_P (DirectPred only; 1 otherwise).

    Returns
    -------
    jax.Array
        W_P^power, shape (h, h).

    Raises
    ------
    ValueError
        ``power`` other than 1 with a learned predictor.
    KeyError
        A weight or parameter the model needs is missing.
    """
    jnp = _jnp()
    if spec.predictor == "learned":
        if power != 1.0:
            raise ValueError("predictor_matrix: a learned predictor has no fractional power here")
        return weights["Psi"]
    h = weights["Phi"].shape[0]
    if spec.predictor == "none":
        return jnp.eye(h)
    Phi = weights["Phi"]
    return _matrix_power(Phi @ Phi.T, power, spec, params)


def _loss_function(spec: ModelSpec) -> Callable:
    return sp.lambdify((A, B, C), spec.loss_expr, modules="jax")


def sample_loss(spec: ModelSpec) -> Callable[[Weights, Weights, Array, Array, Params], Array]:
    """Per-sample losses ``f(weights, frozen, x1, x2, params) -> (n,)``.

    x1, x2: views, shape (n, d). The gradient of ``f(...).mean()`` with respect to ``weights``,
    at ``frozen = weights``, is the model's expected-gradient estimate:

    - a = W_P Phi x1; b = Phi_t x2 with Phi_t = Phi (SimSiam) or Phi_a (EMA), taken from
      ``frozen`` under stop-gradient; the loss L(A, B, C) of ``spec.loss_expr``;
    - DirectPred: W_P from ``frozen`` (set in closed form, no gradient through it);
    - IsoLoss (Halvagal et al.), z = Phi x1, p = W_P z, z_t = b, primes from ``frozen``:
      euclidean ``1/2 ||z - (z_t' + z' - p')||^2``;
      cosine ``-[<z, z_t'> / (||p'|| ||z_t'||) - 1/2 <p', z_t'> / (||p'||^3 ||z_t'||) ||W_P'^(1/2) z||^2]``.

    Parameters
    ----------
    spec : ModelSpec
        The model.

    Returns
    -------
    callable
        ``f(weights, frozen, x1, x2, params)`` returning the n per-sample losses (JAX).

    Raises
    ------
    AttributeError
        ``spec`` is not a ModelSpec.
    """
    jnp = _jnp()
    L = _loss_function(spec)
    ema = spec.target == "ema"

    def f(weights: Weights, frozen: Weights, x1: Array, x2: Array, params: Params) -> Array:
        target_src = frozen if spec.stop_gradient else weights
        Phi_t = target_src["Phi_a"] if ema else target_src["Phi"]
        b = x2 @ Phi_t.T
        if spec.isoloss:
            W = predictor_matrix(spec, frozen, params)
            z = x1 @ weights["Phi"].T
            z_f = x1 @ frozen["Phi"].T
            p_f = z_f @ W.T
            if spec.loss == "isoloss-euclidean":
                return 0.5 * jnp.sum((z - (b + z_f - p_f)) ** 2, axis=1)
            norm_p = jnp.linalg.norm(p_f, axis=1)
            norm_t = jnp.linalg.norm(b, axis=1)
            half = z @ predictor_matrix(spec, frozen, params, power=0.5).T
            return -(
                jnp.sum(z * b, axis=1) / (norm_p * norm_t)
                - 0.5 * jnp.sum(p_f * b, axis=1) / (norm_p**3 * norm_t) * jnp.sum(half**2, axis=1)
            )
        W = predictor_matrix(spec, weights if spec.predictor == "learned" else frozen, params)
        a = x1 @ (W @ weights["Phi"]).T
        return L(jnp.sum(a * a, axis=1), jnp.sum(a * b, axis=1), jnp.sum(b * b, axis=1))

    return f


def view_covariance(spec: ModelSpec, lam: ArrayLike, params: Params, *, basis: ArrayLike | None = None) -> Array:
    """The joint covariance of (x1, x2), shape (2d, 2d), for data covariance
    V diag(lam) V^T (V = ``basis``, default the identity) and view noise sigma2.

    Parameters
    ----------
    spec : ModelSpec
        The model (``views`` decides whether x1 is noisy).
    lam : array_like
        The data variances, shape (d,).
    params : mapping str -> float
        The parameters; reads "sigma2".
    basis : array_like, optional
        The data eigenbasis V, shape (d, d); default the identity.

    Returns
    -------
    jax.Array
        [[Sx + noise, Sx], [Sx, Sx + sigma2 I]], Sx = V diag(lam) V^T, noise = sigma2 I for
        ``views="both"`` and 0 for "one".

    Raises
    ------
    KeyError
        ``params`` lacks "sigma2".
    """
    jnp = _jnp()
    lam = jnp.asarray(lam, dtype=jnp.float64)
    d = lam.shape[0]
    V = jnp.eye(d) if basis is None else jnp.asarray(basis)
    Sx = (V * lam) @ V.T
    noise = params["sigma2"] * jnp.eye(d)
    S11 = Sx + (noise if spec.views == "both" else 0.0)
    return jnp.block([[S11, Sx], [Sx, Sx + noise]])


def expected_loss(spec: ModelSpec) -> Callable[[Weights, Weights, Params, Array], Array]:
    """``f(weights, frozen, params, cov) -> E[L]`` exactly, for losses quadratic in the samples
    (polynomial of degree one in A, B, C, e.g. Euclidean and IsoLoss-Euclidean).

    E[L] = 1/2 tr(H cov) with H the Hessian of the per-sample loss in v = (x1, x2) (the loss
    is a quadratic form in v); ``cov`` is the joint covariance of (x1, x2) (``view_covariance``).

    Parameters
    ----------
    spec : ModelSpec
        The model.

    Returns
    -------
    callable
        ``f(weights, frozen, params, cov)`` returning E[L] as a JAX scalar.

    Raises
    ------
    ValueError
        A loss that is not quadratic in the samples.
    """
    import jax

    jnp = _jnp()
    expr = spec.loss_expr
    if not (expr.is_polynomial(A, B, C) and sp.Poly(expr, A, B, C).total_degree() <= 1):
        raise ValueError(
            f"expected_loss needs a loss of degree one in A, B, C (quadratic in the samples); "
            f"{spec.label} is not: use sampled gradients"
        )
    per_sample = sample_loss(spec)

    def f(weights: Weights, frozen: Weights, params: Params, cov: Array) -> Array:
        d = weights["Phi"].shape[1]

        def loss_of(v):
            return per_sample(weights, frozen, v[None, :d], v[None, d:], params)[0]

        H = jax.hessian(loss_of)(jnp.zeros(2 * d))
        return 0.5 * jnp.sum(H * cov)

    return f


def weight_flow(spec: ModelSpec, weights: Weights, grads: Weights, params: Params) -> dict[str, Array]:
    """d(weights)/dt of gradient flow with weight decay:
    dPhi = -dJ/dPhi - eta Phi, dPsi = -alpha_p dJ/dPsi - eta Psi, dPhi_a = beta (Phi - Phi_a).

    Parameters
    ----------
    spec : ModelSpec
        The model.
    weights : mapping str -> array
        "Phi", and "Psi" (learned predictor) and "Phi_a" (EMA target) where present.
    grads : mapping str -> array
        dJ/dPhi and dJ/dPsi under the same names.
    params : mapping str -> float
        The parameters; reads eta, alpha_p and beta as the weights need them.

    Returns
    -------
    dict of str -> array
        The time derivative of each weight.

    Raises
    ------
    KeyError
        A gradient or parameter the weights need is missing.
    """
    out = {"Phi": -grads["Phi"] - params["eta"] * weights["Phi"]}
    if "Psi" in weights:
        out["Psi"] = -params["alpha_p"] * grads["Psi"] - params["eta"] * weights["Psi"]
    if "Phi_a" in weights:
        out["Phi_a"] = params["beta"] * (weights["Phi"] - weights["Phi_a"])
    return out


def sample_views(
    spec: ModelSpec, key: Array, n: int, lam: ArrayLike, params: Params, *, basis: ArrayLike | None = None
) -> tuple[Array, Array]:
    """n pairs of views (x1, x2), shape (n, d) each: x = V (sqrt(lam) * xi), xi ~ N(0, I);
    x2 = x + e2 and x1 = x + e1 ("both") or x1 = x ("one"), e ~ N(0, sigma2 I).

    Parameters
    ----------
    spec : ModelSpec
        The model (``views`` decides whether x1 is noisy).
    key : jax.Array
        A JAX PRNG key.
    n : int
        The number of samples.
    lam : array_like
        The data variances, shape (d,).
    params : mapping str -> float
        The parameters; reads "sigma2".
    basis : array_like, optional
        The data eigenbasis V, shape (d, d); default the identity.

    Returns
    -------
    tuple of jax.Array
        (x1, x2), each of shape (n, d).

    Raises
    ------
    KeyError
        ``params`` lacks "sigma2".
    """
    import jax

    jnp = _jnp()
    lam = jnp.asarray(lam, dtype=jnp.float64)
    d = lam.shape[0]
    kx, k1, k2 = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, d)) * jnp.sqrt(lam)
    if basis is not None:
        x = x @ jnp.asarray(basis).T
    sigma = jnp.sqrt(params["sigma2"])
    x2 = x + sigma * jax.random.normal(k2, (n, d))
    x1 = x + sigma * jax.random.normal(k1, (n, d)) if spec.views == "both" else x
    return x1, x2


def _standardised(z: Array) -> Array:
    """Every column centred over the batch and divided by its biased batch std (no eps)."""
    jnp = _jnp()
    zc = z - jnp.mean(z, axis=0)
    return zc / jnp.sqrt(jnp.mean(zc**2, axis=0))


def _offdiagonal_sum(M: Array) -> Array:
    jnp = _jnp()
    return jnp.sum(M) - jnp.sum(jnp.diagonal(M))


def _unbiased_covariance(z: Array) -> Array:
    jnp = _jnp()
    zc = z - jnp.mean(z, axis=0)
    return zc.T @ zc / (z.shape[0] - 1)


def batch_loss_function(spec: ModelSpec) -> Callable[[Weights, Weights, Array, Array, Params], Array]:
    """The loss of one batch, ``f(weights, frozen, x1, x2, params) -> scalar``, for a loss of
    the batch's moment matrices, as the papers define it.

    z1 = x1 Phi^T and z2 = x2 Phi_t^T (rows are samples, B of them), Phi from ``weights`` and
    Phi_t = Phi from ``weights`` (no stop-gradient: both branches trained) or from ``frozen``
    (stop-gradient, as ``sample_loss`` writes it):

    - Barlow Twins (Zbontar et al. 2021): ``sum_i (1 - C_ii)^2 + lambda_BT sum_{i != j}
      C_ij^2`` with C = Zhat1^T Zhat2 / B, Zhat every column centred and divided by its
      biased batch standard deviation (``standardize=True``, no eps), or C = Z1^T Z2 / B of
      the raw embeddings (``standardize=False``, no centring);
    - VICReg (Bardes et al. 2022): ``lambda_inv mean_b ||z1_b - z2_b||^2 + mu_var/2 sum_i
      [relu(gamma - sqrt(S1_ii + eps_var)) + relu(gamma - sqrt(S2_ii + eps_var))] + nu_cov
      sum_{i != j} (S1_ij^2 + S2_ij^2)``, S the centred batch covariance with the unbiased
      (B - 1) normaliser;
    - spectral contrastive (HaoChen et al. 2021): ``-(2/B) sum_b <z1_b, z2_b> + 1/(B(B-1))
      sum_{b != b'} <z1_b, z2_b'>^2`` (the negative pairs are the distinct samples).

    Parameters
    ----------
    spec : ModelSpec
        A model with a loss of the batch's moments (``spec.batch_statistics``).

    Returns
    -------
    callable
        ``f(weights, frozen, x1, x2, params)``, x1 and x2 of shape (B, d), returning the
        batch loss (JAX scalar); ``params`` holds the loss's weights (``network_params``).

    Raises
    ------
    ValueError
        A per-sample loss (use ``sample_loss``).
    """
    if not isinstance(spec, ModelSpec) or not spec.batch_statistics:
        label = spec.label if isinstance(spec, ModelSpec) else repr(spec)
        raise ValueError(f"batch_loss_function needs a loss of the batch's moments; {label} is a per-sample "
                         "loss: use sample_loss")
    jnp = _jnp()
    name, standardize = spec.loss, spec.standardize

    def f(weights: Weights, frozen: Weights, x1: Array, x2: Array, params: Params) -> Array:
        Phi = weights["Phi"]
        Phi_t = frozen["Phi"] if spec.stop_gradient else Phi
        z1, z2 = x1 @ Phi.T, x2 @ Phi_t.T
        n = z1.shape[0]
        if name == "barlow-twins":
            if standardize:
                z1, z2 = _standardised(z1), _standardised(z2)
            C = z1.T @ z2 / n
            return jnp.sum((1.0 - jnp.diagonal(C)) ** 2) + params["lambda_BT"] * _offdiagonal_sum(C**2)
        if name == "vicreg":
            invariance = jnp.mean(jnp.sum((z1 - z2) ** 2, axis=1))
            S1, S2 = _unbiased_covariance(z1), _unbiased_covariance(z2)

            def hinge(S):
                return jnp.sum(jnp.maximum(0.0, params["gamma"] - jnp.sqrt(jnp.diagonal(S) + params["eps_var"])))

            return (params["lambda_inv"] * invariance + 0.5 * params["mu_var"] * (hinge(S1) + hinge(S2))
                    + params["nu_cov"] * (_offdiagonal_sum(S1**2) + _offdiagonal_sum(S2**2)))
        M = z1 @ z2.T
        return -2.0 * jnp.trace(M) / n + _offdiagonal_sum(M**2) / (n * (n - 1))

    return f
