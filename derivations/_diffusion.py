"""gradient_noise(spec): the covariance of the per-sample gradient on the eigenmode states,
derived by SymPy, and the diffusion of stochastic gradient descent it gives.

A step of minibatch SGD with learning rate lr and batch size B moves the weights by
-lr (mean gradient of B samples); its mean is lr times the expected flow and its covariance
(lr^2 / B) Sigma, Sigma the covariance of ONE sample's gradient. Matching the first two
moments per unit time t = n lr gives the stochastic modified equation (Li, Tai & E 2017)

    d theta = f(theta) dt + sqrt(lr / B) Sigma(theta)^(1/2) dW.

On the eigenmode states (p_j = u_j^T Psi u_j, s_j = u_j^T Phi Phi^T u_j, tau_j) the
per-sample rates are, for one sample of mode j's scalar Gaussians (x, e1, e2),

    r_p = -alpha_p dL/dp,  r_s = -2 phi dL/dphi,  r_tau = tau dL/dphi / phi

(weight decay and the EMA's own drift are deterministic), and Sigma_j = Cov(r) over the
Gaussians is an Isserlis computation on the same per-sample gradient ``derive`` averages.

- Losses whose treated gradient involves only mode j (every Euclidean-family loss; the
  normalized losses with frozen or self-consistent norms and leading moments): the noise of
  different modes is independent (their Gaussians are) and Sigma is block diagonal, one
  m x m block per mode. This is exact for the Euclidean losses.
- The cosine loss with exact norms (``norms="exact"``): the per-sample gradient divides by
  ||a|| ||b|| and multiplies by <a, b>, which fluctuate from sample to sample and couple the
  modes' noise. Its covariance is exact by the Laplace route of the exact flow
  (``_exact_noise``: every power of ||a||^2, ||b||^2 a Laplace integral, tilted Gaussian
  moments by Isserlis, the same quadrature): a full K x K coupling, no one-mode form.
- Other normalized losses with exact or expanded norms (IsoLoss, DirectPred, no stop-gradient,
  a data spectrum): the noise is taken from the leading, self-consistent form of the same
  gradient (||a||, ||b||, <a, b> at their expectations): the stated approximation, whose
  relative error in the variance is O(1/K) with a large constant (110% at K = 4, 36% at
  K = 16, 7-13% at K = 64 for the cosine loss, against Monte Carlo).
- The rest of Sigma, the per-sample gradient's off-diagonal entries in the aligned frame,
  has zero mean (the ansatz check) but not zero variance: it is noise that breaks the
  eigenmode ansatz. ``ansatz_breaking`` gives its per-sample variance for two modes.

The states are not the weights: s = phi^2 and tau = phi_a / phi are curved functions of the
amplitude phi that takes the steps, so by Ito's lemma the noise adds a drift of order lr / B,

    ds += (lr / B) Var(r_phi) = (lr / B) Sigma_ss / (4 s),
    dtau += (lr / B) tau Var(r_phi) / s = (lr / B) tau Sigma_ss / (4 s^2)

(``ito_drift``; p is linear in the weights and has none). What the eigenmode SDE leaves out is
the noise of the off-diagonal entries (``ansatz_breaking``): it accumulates in the directions
transverse to the aligned set at a rate set by their own relaxation. Since s_j in the aligned
frame is sum_k (U^T Phi V)_jk^2, those fluctuations also raise s_j, by (lr / B) times their
variance over their relaxation rate: the same order as ``ito_drift`` (with d > h, spare input
directions add terms that ``ansatz_breaking``, derived at d = h, does not list). Away from a
fold this shifts the mean a little and the spread not at all to leading order; near a fold,
where that relaxation vanishes, it is not small (see the docs' noise how-to). The eigenmode
SDE is exact in law for a network of its eigenmode weights alone (h = d = 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import sympy as sp

from . import symbols as sy
from ._coupled import ModeSystem, mode_values
from ._derive import (
    _PARAM_DOMAIN, A_rest, B_rest, C_rest, _Npsi, _Nphi, _PUBLIC, _finish, _gauss, _mode_gradients, _outer_partials, _phi,
    _predictor_eigenvalue, _tau, _to_s, derive, two_mode_sample,
)
from ._interface import Diffusion, DynamicalSystem
from ._moments import gaussian_expectation
from ._spec import ModelSpec
from ._stochastic import StochasticSystem
from ._system import FrozenMap
from .codegen import lambdified

__all__ = ["GradientNoise", "gradient_noise", "NOISE_PARAMS"]

NOISE_PARAMS = ("lr", "B")
"""The parameters the SGD noise adds: the learning rate lr (the time of one step) and the
batch size B (samples per step)."""

_NOISE_DOMAIN = {"lr": sp.Interval.open(0, sp.oo), "B": sp.Interval(1, sp.oo)}

_APPROXIMATION = (
    "the per-sample gradient with ||a||, ||b|| and <a, b> at their expectations "
    "(leading moments, self-consistent norms); relative error O(1/K) in the variance"
)


@dataclass(frozen=True, eq=False)
class GradientNoise:
    """The covariance Sigma of one sample's contribution to the rates of one eigenmode's
    states, and what it implies for K modes (see the module docstring).

    Attributes
    ----------
    spec : ModelSpec
        The model.
    states : tuple of sympy.Symbol
        The mode's states (those of ``derive(spec)``), the rows and columns of ``covariance``.
    covariance : sympy.ImmutableMatrix or None
        Sigma (m x m): the per-sample covariance of the state rates, in the states and the
        parameters (and the spectral sums N_psi, N_phi, T where the loss has norms); None for
        the cosine loss with exact norms, whose covariance couples every pair of modes and has
        no one-mode form (``diffusion(K)`` evaluates it by quadrature).
    ansatz_breaking : FrozenMap of str -> sympy.Expr
        For two modes (states p_1, s_1, p_2, s_2, ...): the per-sample variance of the rate of
        the off-diagonal weight entries in the aligned frame, "Psi_12" (learned predictor) and
        "Phi_12", "Phi_21"; their mean is zero on the ansatz. For the normalized losses, of the
        leading-moment form (norms and <a, b> at their expectations).
    ito_drift : sympy.ImmutableMatrix
        (m,) the noise-induced drift per unit lr / B on each state (Ito's lemma for s = phi^2
        and tau = phi_a / phi; zero for p), in Sigma_ss (the symbol ``Sigma_ss``) where
        ``covariance`` is None.
    approximation : str or None
        None where Sigma is the exact per-sample covariance of the model's gradient; else the
        approximation it holds for.
    exact : bool
        True for the cosine loss with exact norms (``diffusion(K)`` by quadrature).
    noise_spec : ModelSpec
        The spec whose per-mode gradient Sigma is computed from (``spec`` itself, or its
        leading self-consistent form for the normalized losses).
    steps : FrozenMap
        "per_sample_rate" and "mean_rate": one sample's rates and their means, of
        ``noise_spec``'s gradient (for an approximated or exact closure, its leading form);
        "exact_terms" for the exact cosine noise.
    """

    spec: ModelSpec
    states: tuple
    covariance: sp.ImmutableMatrix
    ansatz_breaking: FrozenMap
    ito_drift: sp.ImmutableMatrix
    approximation: str | None
    noise_spec: ModelSpec
    steps: FrozenMap = field(default_factory=FrozenMap)
    exact: bool = False

    @property
    def state_names(self) -> tuple[str, ...]:
        """The mode's state names."""
        return tuple(str(v) for v in self.states)

    def diffusion(self, K: int) -> Diffusion:
        """The diffusion of K modes, g = sqrt(lr / B) Sigma^(1/2) (the flat layout of
        ``derive(spec).modes(K)``: state-major); block diagonal over the modes, except for the
        exact cosine noise, whose quadrature couples every pair of modes.

        Parameters
        ----------
        K : int
            The number of modes (>= 1; >= 2 for the exact cosine noise).

        Returns
        -------
        Diffusion
            n_noise = n_states (K for the cosine loss with exact norms, whose rates of mode j
            are all multiples of one scalar); parameters ``NOISE_PARAMS`` (lr > 0, B >= 1), after any model
            parameter the noise depends on and the flow does not (sigma2 with one noisy view).

        Raises
        ------
        TypeError, ValueError
            K is not a positive int.
        """
        return _diffusion(self, _check_K(K))

    def __repr__(self) -> str:
        return f"GradientNoise({self.spec.label}, states=({', '.join(self.state_names)}))"


def _check_K(K) -> int:
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)):
        raise TypeError(f"K must be a positive int (number of modes); got {type(K).__name__}")
    if K < 1:
        raise ValueError(f"K must be a positive int (number of modes); got {K}")
    return int(K)


def gradient_noise(spec: ModelSpec | None = None, /, **fields: object) -> GradientNoise:
    """Derive the per-sample gradient covariance of one eigenmode of ``spec``.

    Parameters
    ----------
    spec : ModelSpec, optional
        The model; or give its fields as keywords.
    **fields
        The fields of a ``ModelSpec``, when ``spec`` is not given.

    Returns
    -------
    GradientNoise
        Sigma on the states of ``derive(spec)``, the ansatz-breaking variances, the
        approximation (None where exact).

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec, or both a spec and fields are given.
    ValueError
        A loss of the batch's moments (its batch gradient is not a mean of per-sample
        gradients), or a closure whose per-sample gradient involves the other modes' outputs
        (exact moments with frozen or self-consistent norms: their covariance is not modelled;
        take ``moments="leading"``, or ``norms="exact"``: exact noise for the cosine loss, the
        stated leading-moment approximation for the other normalized closures).
    """
    if spec is None:
        spec = ModelSpec(**fields)
    elif fields:
        raise TypeError("pass either a ModelSpec or keyword fields to gradient_noise(), not both")
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    return _gradient_noise(spec)


@lru_cache(maxsize=64)
def _gradient_noise(spec: ModelSpec) -> GradientNoise:
    if spec.batch_statistics:
        raise ValueError(
            f"{spec.label}: a loss of the batch's moments has no per-sample gradient (the batch's "
            "moments enter non-linearly); its gradient noise is not derived (sample it with "
            "dynamics.ssl.simulate_network)")
    approximation = None
    noise_spec = spec
    exact = False
    if spec.involves_norms and spec.norms in ("exact", "expansion"):
        noise_spec = replace(spec, norms="self-consistent", moments="leading", order=None)
        exact = spec.norms == "exact" and _exact_supported(spec)
        approximation = None if exact else _APPROXIMATION
    partials, _ = _outer_partials(noise_spec)
    grads = _mode_gradients(noise_spec, partials)
    rest = {A_rest, B_rest, C_rest}
    if any(g.free_symbols & rest for g in grads.values()):
        raise ValueError(
            f"{spec.label}: its per-sample gradient involves the other modes' outputs (exact moments "
            "with frozen or self-consistent norms), whose covariance is not modelled; use "
            "moments='leading', or norms='exact' (the exact Laplace noise for the cosine loss; the stated "
            "leading-moment approximation for the other normalized closures)")
    rates = _rates(noise_spec, grads)
    gauss = _gauss(noise_spec)
    variables = list(gauss)
    means = [sp.expand(gaussian_expectation(sp.expand(r), variables, gauss)) for r in rates.values()]
    m = len(rates)
    exprs = list(rates.values())
    cov = None  # the exact noise is the Laplace quadrature's (``_exact_noise``), not this form's
    if not exact:
        cov = sp.zeros(m, m)
        for i in range(m):
            for j in range(i, m):
                second = gaussian_expectation(sp.expand(exprs[i] * exprs[j]), variables, gauss)
                cov[i, j] = cov[j, i] = _finish(_to_s(sp.expand(second - means[i] * means[j])), noise_spec)
    states = tuple(rates)
    ss = states.index(sy.s)
    sigma_ss = sp.Symbol("Sigma_ss", nonnegative=True) if exact else cov[ss, ss]
    ito = [sp.Integer(0)] * m
    ito[ss] = sp.cancel(sigma_ss / (4 * sy.s))
    if sy.tau in states:
        ito[states.index(sy.tau)] = sp.cancel(sy.tau * sigma_ss / (4 * sy.s**2))
    steps = {
        "per_sample_rate": FrozenMap({str(k): v.xreplace(_PUBLIC) for k, v in rates.items()}),
        "mean_rate": FrozenMap({str(k): _finish(_to_s(v), noise_spec) for k, v in zip(states, means)}),
    }
    if exact:
        from ._exact_noise import noise_terms

        steps["exact_terms"] = noise_terms(spec)
    return GradientNoise(
        spec=spec, states=states, covariance=None if cov is None else sp.ImmutableMatrix(cov), exact=exact,
        ansatz_breaking=FrozenMap(_ansatz_breaking(noise_spec, partials)), ito_drift=sp.ImmutableMatrix(ito),
        approximation=approximation, noise_spec=noise_spec, steps=FrozenMap(steps))


def _rate(params: Mapping) -> object:
    """lr / B, the scale of the noise's covariance (a JAX value)."""
    import jax.numpy as jnp

    return jnp.asarray(params["lr"], dtype=jnp.float64) / jnp.asarray(params["B"], dtype=jnp.float64)


def _exact_supported(spec: ModelSpec) -> bool:
    """Whether the exact Laplace noise serves ``spec`` (``_exact_noise``'s conditions)."""
    from ._exact_noise import _check_spec

    try:
        _check_spec(spec)
    except ValueError:
        return False
    return True


def _rates(spec: ModelSpec, grads: dict) -> dict:
    """The per-sample rates of the mode's states (without weight decay), in phi."""
    out = {}
    if spec.predictor == "learned":
        out[sy.p] = -sy.alpha_p * grads[sy.p]
    out[sy.s] = -2 * _phi * grads[_phi]
    if spec.target == "ema":
        out[sy.tau] = sp.expand(_tau(spec) * grads[_phi] / _phi)
    return out


def _ansatz_breaking(spec: ModelSpec, partials: dict) -> dict[str, sp.Expr]:
    """Per-sample variances of the off-diagonal entries of the weights' rates for two aligned
    modes (they have mean zero there): noise that leaves the eigenmode ansatz."""
    from ._losses import A, B, C

    K = 2
    learned = spec.predictor == "learned"
    ema = spec.target == "ema"
    ps = sp.symbols("p_1:3")
    ss = sp.symbols("s_1:3", positive=True)
    phis = [sp.sqrt(v) for v in ss]
    taus = sp.symbols("tau_1:3") if ema else (sp.Integer(1),) * K
    lams = sp.symbols("lambda_1:3", positive=True) if spec.data == "spectrum" else (sp.Integer(1),) * K
    ws = ps if learned else tuple(_predictor_eigenvalue(spec).subs(sy.s, v) for v in ss)
    Psi, Phi, x1, _, a, b, vals, gauss, point, (LA, LB, LC) = two_mode_sample(spec, partials, ws, phis, taus, lams)
    sums = {}
    if spec.involves_norms:
        sums = {_Npsi: sy.N_psi, _Nphi: sy.N_phi}

    def variance(M, i, j, iso=False):
        if iso:
            g = (2 * LA * a + LB * b)[i] * x1[j]
        else:
            g = LA * sp.diff(vals[A], M[i, j]) + LB * sp.diff(vals[B], M[i, j]) + LC * sp.diff(vals[C], M[i, j])
        g = sp.expand(g.xreplace(point))
        second = gaussian_expectation(sp.expand(g**2), list(gauss), gauss)
        return sp.factor(sp.expand(second.xreplace(sums)))

    out = {"Phi_12": variance(Phi, 0, 1, spec.isoloss), "Phi_21": variance(Phi, 1, 0, spec.isoloss)}
    if learned:
        out["Psi_12"] = sy.alpha_p**2 * variance(Psi, 0, 1)
    return out


# -- K modes ------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _noise_modes(noise: GradientNoise, K: int) -> ModeSystem:
    """The K-mode system of the closure the noise is written in: its closures give N_psi,
    N_phi, T from the state."""
    return derive(noise.noise_spec).modes(K)


def _exact_mode_functions(noise: GradientNoise, K: int):
    """(g, correction, ()) of the cosine loss with exact norms: every rate of mode j is
    c_a(j) xi_j, so g[(a, j), :] = sqrt(lr / B) c_a(j) L[j, :] with L L^T = Cov(xi) (K x K,
    rank K - 1), and the Ito drift reads Sigma_ss from the same covariance."""
    import jax.numpy as jnp

    from ._exact_noise import exact_noise

    if K < 2:
        raise ValueError(f"K must be >= 2 for the exact normalized noise (one mode: the cosine is a sign); got {K}")
    sigma = exact_noise(noise.spec, K, checked=False)
    m = len(noise.states)
    ss = noise.states.index(sy.s)
    tau = noise.states.index(sy.tau) if sy.tau in noise.states else None
    params_of = tuple(derive(noise.spec).modes(K).param_names)

    def drift_params(params):
        return {k: params[k] for k in params_of if k in params}

    def g(t, y, params):
        prm = drift_params(params)
        mean, second = sigma.moments(y, prm)
        cov = second - mean[..., :, None] * mean[..., None, :]
        c = sigma.multipliers(y, prm)  # (..., m, K)
        root = _psd_sqrt(cov)  # (..., K, K)
        G = c[..., :, :, None] * root[..., None, :, :]  # (..., m, K, K)
        return jnp.sqrt(_rate(params))[..., None, None] * G.reshape(G.shape[:-3] + (m * K, K))

    def correction(t, y, params):
        # Sigma_ss of mode j is c_s(j)^2 Var(xi_j), from the moments g uses, without forming the
        # full (m K) x (m K) Sigma
        prm = drift_params(params)
        mean, second = sigma.moments(y, prm)
        var = jnp.diagonal(second, axis1=-2, axis2=-1) - mean**2
        s = y[..., ss * K:(ss + 1) * K]
        safe = jnp.where(s > 0, s, 1.0)
        sigma_ss = sigma.multipliers(y, prm)[..., ss, :] ** 2 * var
        out = [jnp.zeros_like(s)] * m
        out[ss] = jnp.where(s > 0, sigma_ss / (4 * safe), 0.0)
        if tau is not None:
            out[tau] = jnp.where(s > 0, y[..., tau * K:(tau + 1) * K] * sigma_ss / (4 * safe**2), 0.0)
        return _rate(params)[..., None] * jnp.concatenate(out, axis=-1)

    return g, correction, ()


@lru_cache(maxsize=64)
def _mode_functions(noise: GradientNoise, K: int):
    """(g, correction, extra params): the K-mode diffusion g(t, y, params) and the noise-induced
    drift (lr / B) ito_drift(t, y, params), each evaluated mode by mode with the closure's
    spectral sums (built once per noise and K: the diffusion and the correction share them)."""
    import jax.numpy as jnp

    if noise.exact:
        return _exact_mode_functions(noise, K)

    system = _noise_modes(noise, K)
    per_mode = system.per_mode
    if tuple(per_mode.state_names) != noise.state_names:  # pragma: no cover - same derivation
        raise RuntimeError(f"noise states {noise.state_names} differ from the closure's {per_mode.state_names}")
    m = len(noise.states)
    values_of = mode_values(system, "jax", checked=False)
    names = per_mode.param_names
    # model parameters the noise sees and the flow does not (sigma2 with one noisy view)
    used = noise.covariance.free_symbols | noise.ito_drift.free_symbols
    extra = tuple(v for v in _PARAM_DOMAIN if v in used and v not in per_mode.params)
    symbols = per_mode.states + per_mode.params + extra
    entries = lambdified(symbols, tuple(noise.covariance), "jax")
    ito = lambdified(symbols, tuple(noise.ito_drift), "jax")
    drift_params = tuple(n for n in names if n not in system.closed)

    def evaluate(fn, y, params):
        spectra, values = values_of(y, {n: params[n] for n in drift_params})
        more = [jnp.asarray(params[str(v)], dtype=jnp.float64)[..., None] for v in extra]
        ones = jnp.ones_like(spectra[0])
        out = [jnp.asarray(e, dtype=jnp.float64) * ones for e in fn(*spectra, *[values[n] for n in names], *more)]
        return spectra, out

    def g(t, y, params):
        spectra, flat = evaluate(entries, y, params)
        sigma = jnp.stack(flat, axis=-1).reshape(spectra[0].shape + (m, m))  # (..., K, m, m)
        root = _psd_sqrt(sigma)
        # flat index a*K + j (state a of mode j); the noise of mode j drives only mode j's states
        G = jnp.einsum("...jab,jk->...ajbk", root, jnp.eye(K)).reshape(root.shape[:-3] + (m * K, m * K))
        return jnp.sqrt(_rate(params))[..., None, None] * G

    def correction(t, y, params):
        _, flat = evaluate(ito, y, params)
        return _rate(params)[..., None] * jnp.concatenate(flat, axis=-1)

    return g, correction, extra


def _diffusion(noise: GradientNoise, K: int) -> Diffusion:
    g, _, extra = _mode_functions(noise, K)
    if noise.exact:
        return Diffusion(
            function=g, n_noise=K, params=NOISE_PARAMS, param_domain=dict(_NOISE_DOMAIN),
            description=(f"SGD noise of {noise.spec.label}: sqrt(lr/B) Sigma^(1/2), Sigma the exact per-sample "
                         "gradient covariance of the K modes (Laplace quadrature; modes coupled)"))
    what = noise.approximation or "exact for this loss (Isserlis)"
    return Diffusion(
        function=g, n_noise=len(noise.states) * K, params=tuple(str(v) for v in extra) + NOISE_PARAMS,
        param_domain={**{str(v): _PARAM_DOMAIN[v] for v in extra}, **_NOISE_DOMAIN},
        description=(f"SGD noise of {noise.spec.label}: sqrt(lr/B) Sigma^(1/2), Sigma the per-sample "
                     f"gradient covariance of each mode ({what}); modes independent"))


def _psd_sqrt(M):
    """The symmetric square root of positive semidefinite matrices (..., m, m): closed form for
    m <= 2 (sqrt(M) = (M + sqrt(det M) I) / sqrt(tr M + 2 sqrt(det M))), eigh otherwise;
    negative rounding in the eigenvalues clipped to zero."""
    import jax.numpy as jnp

    m = M.shape[-1]
    if m == 1:
        return jnp.sqrt(jnp.clip(M, 0.0, None))
    if m == 2:
        det = jnp.clip(M[..., 0, 0] * M[..., 1, 1] - M[..., 0, 1] * M[..., 1, 0], 0.0, None)
        root_det = jnp.sqrt(det)
        trace = M[..., 0, 0] + M[..., 1, 1] + 2 * root_det
        scale = jnp.where(trace > 0, 1.0 / jnp.sqrt(jnp.where(trace > 0, trace, 1.0)), 0.0)
        return (M + root_det[..., None, None] * jnp.eye(2)) * scale[..., None, None]
    w, v = jnp.linalg.eigh(M)
    return jnp.einsum("...ab,...b,...cb->...ac", v, jnp.sqrt(jnp.clip(w, 0.0, None)), v)


def stochastic_modes(model, K: int, drift: DynamicalSystem) -> StochasticSystem:
    """``drift`` (the K modes of ``model``) with the SGD noise of its spec."""
    noise = gradient_noise(model.spec)
    _, correction, _ = _mode_functions(noise, K)
    return StochasticSystem(drift, noise.diffusion(K), correction=correction, label=f"{drift.name}, SGD noise")
