"""Monte-Carlo rates of the true model at random aligned points: the independent reference
that ``verify`` and the tests hold eigenmode systems against.

At an aligned point (h = d modes)

    Psi = U diag(p) U^T,  Phi = U diag(sqrt s) V^T,  Phi_a = U diag(tau sqrt s) V^T,
    data covariance V diag(lambda) V^T,

the expected gradient of the per-sample loss is estimated with ``jax.grad`` of the mean loss
over fresh Gaussian samples, the weight flow (``_truth.weight_flow``) is projected on the
eigenbasis and read as per-mode rates:

    dp_j   = (U^T dPsi U)_jj
    ds_j   = 2 (U^T dPhi Phi^T U)_jj = 2 sqrt(s_j) (U^T dPhi V)_jj
    dtau_j = ((U^T dPhi_a V)_jj - tau_j (U^T dPhi V)_jj) / sqrt(s_j)     (from d(tau_j sqrt s_j))

The off-diagonal entries of U^T dPsi U and U^T dPhi V must vanish (the aligned ansatz is
invariant); their z-scores are returned too. Standard errors come from batch means: the
samples are split into ``n_batches`` equal batches, the gradient of each batch's mean loss is
one draw, and SE = std(batch draws) / sqrt(n_batches). Several models can be estimated on the
same samples (common random numbers), so their differences are resolved far better than
either rate.

Models:
- ``"true"``: ``_truth.sample_loss`` (the true per-sample loss; ground truth);
- ``"treated"``: the per-sample gradient with the spec's norm and moment treatment, written as
  a surrogate L_A' A + L_B' B + L_C' C whose partials L' are held fixed (stop-gradient) and
  evaluated at A -> N_psi^2, C -> N_phi^2 (norms, for losses that involve them) and B -> T
  (leading moments), with N_psi^2 = E||a||^2, N_phi^2 = E||b||^2, T = E<a, b> at the point
  (self-consistent values). This is the gradient whose exact expectation ``derive`` computes;
  for losses polynomial in A, B, C and for norms="exact" it equals the true gradient;
- ``"surrogate"``: the same surrogate without treatment (its gradient equals the true one; a
  check of the surrogate construction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from ._losses import A, B, C
from ._spec import ModelSpec
from ._system import FrozenMap
from ._truth import network_params, predictor_matrix, sample_loss, weight_flow

if TYPE_CHECKING:
    import jax

__all__ = ["MODELS", "AlignedPoint", "MonteCarloRates", "monte_carlo", "random_point"]

MODELS = ("true", "treated", "surrogate")

_RANGES = {
    "p": (-0.8, 1.2),
    "phi": (0.3, 1.2),
    "tau": (0.5, 1.5),
    "lambda": (0.3, 2.0),
    "sigma2": (0.05, 0.5),
    "eta": (0.0, 0.3),
    "alpha_p": (0.5, 2.0),
    "beta": (0.1, 1.0),
    "alpha": (0.25, 1.25),
    "eps": (0.01, 0.3),
    "lambda_BT": (0.005, 0.5),
    "lambda_inv": (0.5, 2.0),
    "mu_var": (0.5, 2.0),
    "nu_cov": (0.01, 0.5),
    "gamma": (0.5, 1.5),
    "eps_var": (1e-4, 1e-2),
}
"""Where random points and parameters are drawn (uniform); sqrt(s) = phi."""


def _readonly(a: Any) -> np.ndarray:
    out = np.array(a, dtype=np.float64)
    out.setflags(write=False)
    return out


def _random_orthogonal(rng: np.random.Generator, h: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(h, h)))
    return q * np.sign(np.diag(r))


@dataclass(frozen=True, eq=False)
class AlignedPoint:
    """An aligned point of the network of ``spec``: Phi = U diag(sqrt s) V^T, the predictor
    U diag(p) U^T, the EMA target U diag(tau sqrt s) V^T (arrays are read-only).

    Attributes
    ----------
    spec : ModelSpec
    h : int
        The width (d = h).
    p : numpy.ndarray or None
        (h,) predictor eigenvalues (learned predictor, else None).
    s : numpy.ndarray
        (h,) eigenvalues of Phi Phi^T.
    tau : numpy.ndarray
        (h,) target ratios (ones for SimSiam).
    lam : numpy.ndarray
        (h,) data variances (ones for isotropic data).
    U, V : numpy.ndarray
        (h, h) the output and input eigenbases.
    params : FrozenMap
        The network parameters (``network_params(spec)``).
    """

    spec: ModelSpec
    h: int
    p: np.ndarray | None
    s: np.ndarray
    tau: np.ndarray
    lam: np.ndarray
    U: np.ndarray
    V: np.ndarray
    params: Mapping[str, float]

    def __repr__(self) -> str:
        def rng(a: np.ndarray) -> str:
            return f"[{a.min():.3g}, {a.max():.3g}]"

        shown = {"p": self.p, "s": self.s, "tau": self.tau if self.spec.target == "ema" else None,
                 "lambda": self.lam if self.spec.data == "spectrum" else None}
        modes = ", ".join(f"{k} in {rng(v)}" for k, v in shown.items() if v is not None)
        prm = ", ".join(f"{k}={v:.3g}" for k, v in self.params.items())
        return f"AlignedPoint({self.spec.label}, h={self.h}, {modes}, {prm})"

    def weights(self) -> dict[str, jax.Array]:
        """The network's weight matrices at this point.

        Returns
        -------
        dict str -> jax.Array
            "Phi" (h x h), "Psi" (learned predictor), "Phi_a" (EMA target).
        """
        import jax.numpy as jnp

        phi = np.sqrt(self.s)
        out = {"Phi": jnp.asarray((self.U * phi) @ self.V.T)}
        if self.spec.predictor == "learned":
            out["Psi"] = jnp.asarray((self.U * self.p) @ self.U.T)
        if self.spec.target == "ema":
            out["Phi_a"] = jnp.asarray((self.U * (self.tau * phi)) @ self.V.T)
        return out

    @property
    def closures(self) -> FrozenMap:
        """Self-consistent values at this point, computed exactly from the view covariance:
        T = E<a, b>, N_psi = sqrt(E||a||^2), N_phi = sqrt(E||b||^2) (a = W_P Phi x1, b the
        target output) and s_max = max_j s_j.

        In the eigenbasis every covariance is diagonal: with w_j the predictor eigenvalue
        (p_j, DirectPred's (s_j/s_max)^alpha [+ eps], or 1), n = sigma2,
        E||a||^2 = sum w^2 s (lambda + n [both views]), E<a,b> = sum w tau s lambda,
        E||b||^2 = sum tau^2 s (lambda + n)."""
        spec, prm = self.spec, self.params
        w = self.predictor_eigenvalues()
        noise = prm["sigma2"]
        var1 = self.lam + (noise if spec.views == "both" else 0.0)
        var2 = self.lam + noise
        s, tau = self.s, self.tau
        return FrozenMap({
            "T": float(np.sum(w * tau * s * self.lam)),
            "N_psi": float(np.sqrt(np.sum(w**2 * s * var1))),
            "N_phi": float(np.sqrt(np.sum(tau**2 * s * var2))),
            "s_max": float(np.max(s)),
        })

    def predictor_eigenvalues(self) -> np.ndarray:
        """The predictor's eigenvalue per mode.

        Returns
        -------
        numpy.ndarray
            (h,) w_j: p_j (learned), (s_j [/ s_max])^alpha [+ eps] (DirectPred) or 1 (none).
        """
        spec = self.spec
        if spec.predictor == "learned":
            return np.asarray(self.p)
        if spec.predictor == "none":
            return np.ones(self.h)
        base = self.s / np.max(self.s) if spec.normalize else self.s
        return base ** self.params["alpha"] + (self.params["eps"] if spec.eps else 0.0)

    def modes(self) -> dict[str, np.ndarray]:
        """The per-mode values.

        Returns
        -------
        dict str -> numpy.ndarray
            (h,) arrays "p", "s", "tau" (those the spec has) and "lambda".
        """
        out = {"s": self.s, "tau": self.tau, "lambda": self.lam}
        if self.p is not None:
            out["p"] = self.p
        return out


def random_point(
    spec: ModelSpec,
    h: int,
    seed: int | np.random.Generator = 0,
    *,
    fixed: Mapping[str, ArrayLike] | None = None,
    rotate: bool = True,
    shared_tau: bool = False,
) -> AlignedPoint:
    """A random aligned point of the network of ``spec`` at width h (d = h).

    The draws: p ~ U(-0.8, 1.2) (learned predictor), sqrt(s) ~ U(0.3, 1.2), tau ~ U(0.5, 1.5)
    (EMA), lambda ~ U(0.3, 2) (data spectrum), the network parameters uniform on fixed ranges,
    and random orthogonal eigenbases U, V. The reference points of ``verify``,
    ``monte_carlo_noise`` and the Monte Carlo tests.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    h : int
        The width (>= 1): the number of modes.
    seed : int or numpy.random.Generator
        The draws.
    fixed : mapping str -> value, optional
        Values that replace the draws: network parameters (scalars), "lambda" and "tau"
        (scalar or (h,)), "p" and "s" ((h,)).
    rotate : bool
        Random orthogonal U, V (True) or the identity.
    shared_tau : bool
        One tau for every mode (the frozen-tau analysis, where tau is a parameter).

    Returns
    -------
    AlignedPoint
        Read-only arrays; ``weights()`` gives the network's matrices.

    Raises
    ------
    ValueError
        ``h`` not a positive int, or ``fixed`` naming something the spec does not have or a
        value that is not finite.
    """
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise ValueError(f"h must be a positive int (the width); got {h!r}")
    h = int(h)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    fixed = dict(fixed or {})
    names = network_params(spec)
    allowed = set(names) | {"lambda", "s"} | ({"p"} if spec.predictor == "learned" else set())
    allowed |= {"tau"} if spec.target == "ema" else set()
    unknown = sorted(set(fixed) - allowed)
    if unknown:
        raise ValueError(f"fixed names {unknown}, which {spec.label} does not have; allowed: {sorted(allowed)}")

    def draw(name: str, size: int | None = None) -> Any:
        lo, hi = _RANGES[name]
        return rng.uniform(lo, hi, size)

    p = draw("p", h) if spec.predictor == "learned" else None
    s = draw("phi", h) ** 2
    if spec.target == "ema":
        tau = np.full(h, draw("tau")) if shared_tau else draw("tau", h)
    else:
        tau = np.ones(h)
    lam = draw("lambda", h) if spec.data == "spectrum" else np.ones(h)
    U = _random_orthogonal(rng, h) if rotate else np.eye(h)
    V = _random_orthogonal(rng, h) if rotate else np.eye(h)
    params = {n: float(draw(n)) for n in names}

    def per_mode(name: str, value: Any) -> np.ndarray:
        arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (h,))
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"fixed[{name!r}] must be finite; got {value!r}")
        return arr

    for name, value in fixed.items():
        if name in params:
            params[name] = float(value)
        elif name == "p":
            p = per_mode(name, value)
        elif name == "s":
            s = per_mode(name, value)
        elif name == "tau":
            tau = per_mode(name, value)
        elif name == "lambda":
            lam = per_mode(name, value)
    return AlignedPoint(
        spec, h, None if p is None else _readonly(p), _readonly(s), _readonly(tau), _readonly(lam),
        _readonly(U), _readonly(V), FrozenMap(params),
    )


def tiled_point(point: AlignedPoint, h: int, seed: int | np.random.Generator = 0, *, rotate: bool = True) -> AlignedPoint:
    """The point's spectrum repeated cyclically to width h (mode j takes the values of mode
    j mod point.h), the same parameters, fresh random eigenbases.

    Points of different widths tiled from one base point have the same spectral averages
    (exactly when h is a multiple of point.h): T/h, N_psi^2/h, N_phi^2/h do not change, so a
    per-mode rate of a mean-field system is the same at every width and what changes with h
    is the finite-width effect alone (``verify`` measures the order in 1/h this way).
    """
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise ValueError(f"h must be a positive int (the width); got {h!r}")
    h = int(h)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    U = _random_orthogonal(rng, h) if rotate else np.eye(h)
    V = _random_orthogonal(rng, h) if rotate else np.eye(h)

    def tile(a):
        return None if a is None else _readonly(np.resize(a, h))

    return AlignedPoint(
        point.spec, h, tile(point.p), tile(point.s), tile(point.tau), tile(point.lam),
        _readonly(U), _readonly(V), point.params,
    )


@dataclass(frozen=True, eq=False)
class MonteCarloRates:
    """Per-mode rates of one model at one point: ``mean[name]`` and ``se[name]`` (arrays (h,),
    read-only) for name in ``names`` (p for a learned predictor, s, tau for EMA), and the
    off-diagonal check: ``off_z`` = max |mean/SE| over the off-diagonal entries of U^T dPsi U
    and U^T dPhi V (nan for h = 1). ``drive[name]``: the mean rate of the loss gradient alone
    (eta = beta = 0), the scale that discrepancies are measured against."""

    model: str
    names: tuple[str, ...]
    mean: Mapping[str, np.ndarray]
    se: Mapping[str, np.ndarray]
    off_z: float
    n_samples: int
    drive: Mapping[str, np.ndarray]


def _surrogate(spec: ModelSpec, treat: bool):
    """Per-sample surrogate loss ``f(weights, frozen, x1, x2, params, closures)`` whose
    gradient is L_A' dA + L_B' dB + L_C' dC with the partials held fixed (see module doc)."""
    import jax
    import jax.numpy as jnp

    sg = jax.lax.stop_gradient
    L = spec.loss_expr
    NA, TB, NC = sp.symbols("NA_ TB_ NC_")
    subs = {}
    if treat and spec.involves_norms and spec.norms != "exact":
        subs.update({A: NA, C: NC})
        if spec.moments == "leading":
            subs[B] = TB
    partials = [sp.diff(L, v).subs(subs) for v in (A, B, C)]
    fn = sp.lambdify((A, B, C, NA, TB, NC), partials, modules="jax")
    ema = spec.target == "ema"

    def f(weights, frozen, x1, x2, params, closures):
        src = frozen if spec.stop_gradient else weights
        Phi_t = src["Phi_a"] if ema else src["Phi"]
        if spec.isoloss:
            W = predictor_matrix(spec, frozen, params)
            a = sg(x1 @ (W @ frozen["Phi"]).T)
        else:
            W = predictor_matrix(spec, weights if spec.predictor == "learned" else frozen, params)
            a = x1 @ (W @ weights["Phi"]).T
        b = x2 @ Phi_t.T
        Av, Bv, Cv = jnp.sum(a * a, axis=1), jnp.sum(a * b, axis=1), jnp.sum(b * b, axis=1)
        LA, LB, LC = (
            jnp.asarray(v, dtype=jnp.float64) * jnp.ones_like(Av)
            for v in fn(sg(Av), sg(Bv), sg(Cv), closures["N_psi"] ** 2, closures["T"], closures["N_phi"] ** 2)
        )
        LA, LB, LC = sg(LA), sg(LB), sg(LC)
        if spec.isoloss:
            z = x1 @ weights["Phi"].T
            g = 2 * LA[:, None] * a + LB[:, None] * sg(b)
            return jnp.sum(g * z, axis=1)
        return LA * Av + LB * Bv + LC * Cv

    return f


def _model_loss(spec: ModelSpec, model: str):
    if model == "true":
        base = sample_loss(spec)
        return lambda weights, frozen, x1, x2, params, closures: base(weights, frozen, x1, x2, params)
    return _surrogate(spec, treat=(model == "treated"))


@lru_cache(maxsize=256)
def _kernel(spec: ModelSpec, model: str, h: int, m: int, G: int):
    """Jitted: G batches of m samples -> per-batch rates (G, n_rates, h) and off-diagonals."""
    import jax
    import jax.numpy as jnp

    loss = _model_loss(spec, model)
    learned = spec.predictor == "learned"
    ema = spec.target == "ema"
    off = ~np.eye(h, dtype=bool)

    def run(weights, xi, e1, e2, params, closures, lam, U, V, phi, tau):
        # views as _truth.sample_views draws them: x = V (sqrt(lam) xi), x2 = x + sigma e2,
        # x1 = x + sigma e1 (noise on both views) or x1 = x (one view clean)
        x = (xi * jnp.sqrt(lam)) @ V.T
        sigma = jnp.sqrt(params["sigma2"])
        x2 = x + sigma * e2
        x1 = x + sigma * e1 if spec.views == "both" else x

        def batch_grad(x1b, x2b):
            return jax.grad(lambda w: loss(w, weights, x1b, x2b, params, closures).mean())(weights)

        grads = jax.vmap(batch_grad)(x1, x2)

        def project(flow):
            PV = jnp.einsum("ij,gjk,kl->gil", U.T, flow["Phi"], V)
            dphi = jnp.diagonal(PV, axis1=1, axis2=2)
            rates, offs = [], [PV[:, off]]
            if learned:
                PU = jnp.einsum("ij,gjk,kl->gil", U.T, flow["Psi"], U)
                rates.append(jnp.diagonal(PU, axis1=1, axis2=2))
                offs.append(PU[:, off])
            rates.append(2 * phi * dphi)
            if ema:
                target = jnp.diagonal(U.T @ flow["Phi_a"] @ V)
                rates.append((target - tau * dphi) / phi)
            return jnp.stack(rates, axis=1), jnp.concatenate(offs, axis=1)

        rates, offs = project(weight_flow(spec, weights, grads, params))
        # the gradient's part alone (no weight decay, no EMA pull): the scale of the drive
        still = {**params, "eta": jnp.zeros_like(params["eta"])}
        if ema:
            still["beta"] = jnp.zeros_like(params["beta"])
        drive, _ = project(weight_flow(spec, weights, grads, still))
        return rates, offs, drive.mean(0)

    return jax.jit(run)


def monte_carlo(
    spec: ModelSpec,
    point: AlignedPoint,
    *,
    n_samples: int = 2**17,
    seed: int = 0,
    models: tuple[str, ...] = ("true",),
    n_batches: int = 128,
) -> dict[str, MonteCarloRates]:
    """Per-mode rates of ``models`` at ``point`` from ``n_samples`` samples (the same samples
    for every model: common random numbers).

    Parameters
    ----------
    spec : the model (must be ``point.spec``).
    point : an ``AlignedPoint`` (``random_point``).
    n_samples : int >= 2 n_batches; rounded down to a multiple of n_batches.
    seed : int, the sample stream.
    models : names from ``MODELS``.
    n_batches : int >= 8, the number of batch means behind each standard error.

    Returns
    -------
    {model: MonteCarloRates}

    Raises
    ------
    ValueError
        Unknown model names, too few samples or batches, a point of another spec.
    """
    import jax.numpy as jnp

    if point.spec != spec:
        raise ValueError(f"point was drawn for {point.spec.label}, not {spec.label}")
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ValueError(f"models must name some of {MODELS}; got {models!r}")
    for name, value, low in (("n_batches", n_batches, 8), ("n_samples", n_samples, 2 * max(int(n_batches), 8))):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
    h = point.h
    m = int(n_samples) // int(n_batches)
    G = max(1, min(int(n_batches), (2**21) // max(m * h, 1)))
    while n_batches % G:
        G -= 1
    params = {k: jnp.float64(v) for k, v in point.params.items()}
    closures = {k: jnp.float64(v) for k, v in point.closures.items()}
    weights = point.weights()
    args = (params, closures, jnp.asarray(point.lam), jnp.asarray(point.U), jnp.asarray(point.V),
            jnp.asarray(np.sqrt(point.s)), jnp.asarray(point.tau))
    names = (("p",) if spec.predictor == "learned" else ()) + ("s",) + (("tau",) if spec.target == "ema" else ())
    kernels = {model: _kernel(spec, model, h, m, G) for model in models}
    rng = np.random.default_rng(seed)
    collected: dict[str, tuple[list, list, list]] = {model: ([], [], []) for model in models}
    for _ in range(int(n_batches) // G):
        # standard normals drawn on the host (fast, no RNG to compile), shared by every model
        xi, e1, e2 = (rng.standard_normal((G, m, h)) for _ in range(3))
        for model, kernel in kernels.items():
            r, o, g = kernel(weights, xi, e1, e2, *args)
            collected[model][0].append(np.asarray(r))
            collected[model][1].append(np.asarray(o))
            collected[model][2].append(np.asarray(g))
    out = {}
    for model in models:
        rates = np.concatenate(collected[model][0])  # (n_batches, n_rates, h)
        offs = np.concatenate(collected[model][1])
        drive = np.mean(collected[model][2], axis=0)
        nb = rates.shape[0]
        mean = rates.mean(0)
        se = rates.std(0, ddof=1) / np.sqrt(nb)
        if offs.shape[1]:
            off_se = offs.std(0, ddof=1) / np.sqrt(nb)
            scale = np.abs(rates).mean() + 1e-300
            off_z = float(np.max(np.abs(offs.mean(0)) / np.maximum(off_se, 1e-12 * scale)))
        else:
            off_z = float("nan")
        out[model] = MonteCarloRates(
            model,
            names,
            FrozenMap({n: _readonly(mean[i]) for i, n in enumerate(names)}),
            FrozenMap({n: _readonly(se[i]) for i, n in enumerate(names)}),
            off_z,
            nb * m,
            FrozenMap({n: _readonly(drive[i]) for i, n in enumerate(names)}),
        )
    return out
