"""The exact expected flow of a normalized loss at any width, for Gaussian views and aligned
weights: no norm or moment approximation.

Exact means exact for the model's assumptions: Gaussian inputs and views (the factorisation
below needs jointly Gaussian (a_k, b_k), independent across modes) and weights that share
eigenvectors. It is not exact for other data. On real images (the digits experiment,
``dynamics.digits_experiment("cosine")``, h = 32) the leading-order approximation tracked the
trained network better than this flow: 0.435% against 0.52% in p.

For aligned weights mode k carries the zero-mean Gaussian pair (a_k, b_k) with covariance
[[alpha_k, gamma_k], [gamma_k, beta_k]], independent across modes (``_means`` of the derivation:
alpha_k = E a_k^2, beta_k = E b_k^2, gamma_k = E a_k b_k). The cosine loss L = -B/sqrt(A C),
A = sum a_k^2, B = sum a_k b_k, C = sum b_k^2, gives for every mode

    G_j = E[a_j dL/da_j] = -E[a_j b_j (A C)^(-1/2)] + E[B a_j^2 A^(-3/2) C^(-1/2)],

and the flow follows from G_j (p_j dJ/dp_j = phi_j dJ/dphi_j = G_j for a learned predictor).
IsoLoss-cosine (Halvagal et al.) has the per-sample gradient g = dL/da of the cosine loss with
respect to the features z = Phi x1, a = W_P z, the norms under stop-gradient, and it reaches Phi
as g x1^T (no factor W_P^T), so phi_j dJ/dphi_j = E[z_j dL/da_j]: the same expectation with the
leg a_j replaced by z_j (E[z a] = w s (lambda + n), E[z b] = tau s lambda per mode, w the
predictor eigenvalue); that equals G_j / w_j, but the leg stays finite where w_j = 0.
Without stop-gradient (SimSiam, Phi_a = Phi) the target branch adds
H_j = E[b_j dL/db_j] = -E[a_j b_j (A C)^(-1/2)] + E[B b_j^2 A^(-1/2) C^(-3/2)] to
phi_j dJ/dphi_j, the same quadrature with the roles of (a, u) and (b, v) exchanged.
Writing the inverse powers as Laplace integrals,
A^(-k/2) = Gamma(k/2)^(-1) int_0^oo u^(k/2 - 1) exp(-u A) du (and C with v), the expectation
under the tilt exp(-u A - v C) factorizes over modes:

    E[f exp(-u A - v C)] = prod_k q_k^(-1/2) * E~[f],
    q_k = det(I + 2 D Sigma_k) = 1 + 2 u alpha_k + 2 v beta_k + 4 u v Delta_k,
    Delta_k = alpha_k beta_k - gamma_k^2,  D = diag(u, v),
    tilted covariance Sigma~_k = (Sigma_k^-1 + 2 D)^-1 = [[alpha_k + 2 v Delta_k, gamma_k],
                                                         [gamma_k, beta_k + 2 u Delta_k]] / q_k,

(SymPy derives q_k and Sigma~_k, see ``exact_factors``) and Isserlis under the tilt gives

    G_j = int int prod_k q_k^(-1/2) [ -(1/pi) (u v)^(-1/2) S~ab_j
                                     + (2/pi) u^(1/2) v^(-1/2) S~aa_j (sum_k S~ab_k + 2 S~ab_j) ] du dv.

For a leg c_j (E[c a] = rho_a, E[c b] = rho_b) E[c_j dL/da_j] is the same integral with
S~ab_j -> S~cb_j in the first term and S~aa_j (sum_k S~ab_k + 2 S~ab_j) ->
S~ca_j (sum_k S~ab_k + S~ab_j) + S~cb_j S~aa_j in the second, where
(S~ca, S~cb) = (rho_a, rho_b) (I + 2 D Sigma_k)^-1; c = a gives back G_j.

Quadrature: u = e^x / E[A], v = e^y / E[C] and the trapezoidal rule on a uniform grid in
(x, y). The integrand is analytic in the strip |Im x|, |Im y| < pi (q_k vanishes only at
negative real u, v) and decays exponentially at both ends, so the error falls like
exp(-2 pi^2 / h) with the step h plus the truncated tails: the default grid (h = 0.4 on
[-64, 64] in both log variables) is below 1e-10 relative, checked by refinement in the tests
(measured: 1e-13 at K = 2 to 2e-11 at K = 1000).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from collections.abc import Mapping

import numpy as np
import sympy as sp

from ._coupled import ModeSystem
from ._derive import feature_covariances
from ._eigenmode import EigenmodeSystem
from ._interface import DynamicalSystem, EigenmodeModel
from ._spec import ModelSpec
from ._system import FrozenMap, RhsFunction
from ._typing import Params

__all__ = ["ExactEigenmodes", "ExactModeSystem", "exact_factors", "QUADRATURE"]

QUADRATURE = FrozenMap({"step": 0.4, "lower": -64.0, "upper": 64.0})
"""The default quadrature grid in log variables: step h and range [lower, upper] for both x
and y (u = e^x / E[A], v = e^y / E[C])."""

_u, _v = sp.symbols("u v", positive=True)
_al, _be, _ga = sp.symbols("alpha_k beta_k gamma_k", real=True)
_ka, _ra, _rb = sp.symbols("kappa_k rho_ak rho_bk", real=True)


@lru_cache(maxsize=1)
def exact_factors() -> dict[str, sp.Expr]:
    """The per-mode factor q_k and the tilted covariances, derived by SymPy from the mode
    covariance Sigma = [[alpha, gamma], [gamma, beta]] and D = diag(u, v).

    The leg c_k that carries the gradient (a_k for the cosine loss, the features z_k with
    a_k = w_k z_k for IsoLoss-cosine) is a third Gaussian with E[c a] = rho_a, E[c b] = rho_b;
    its tilted covariances come from the 3 x 3 covariance of (c, a, b) under the tilt
    exp(-u a^2 - v b^2), Sigma3 (I + 2 diag(0, u, v) Sigma3)^-1, which needs no inverse (c may
    be a multiple of a).

    Returns
    -------
    dict of str -> sympy.Expr
        ``q`` = det(I + 2 D Sigma), the entries ``S~aa``, ``S~ab``, ``S~bb`` of
        (Sigma^-1 + 2 D)^-1, and the leg's ``S~ca``, ``S~cb``, in alpha_k, beta_k, gamma_k,
        rho_ak, rho_bk, u, v (computed once, cached).
    """
    S = sp.Matrix([[_al, _ga], [_ga, _be]])
    D = sp.diag(_u, _v)
    q = sp.expand((sp.eye(2) + 2 * D * S).det())
    tilted = sp.simplify((S.inv() + 2 * D).inv())
    S3 = sp.Matrix([[_ka, _ra, _rb], [_ra, _al, _ga], [_rb, _ga, _be]])
    leg = S3 * (sp.eye(3) + 2 * sp.diag(0, _u, _v) * S3).inv()

    def over_q(entry):
        return sp.factor(sp.simplify(entry * q)) / q

    return {
        "q": q,
        "S~aa": over_q(tilted[0, 0]),
        "S~ab": over_q(tilted[0, 1]),
        "S~bb": over_q(tilted[1, 1]),
        "S~ca": over_q(leg[0, 1]),
        "S~cb": over_q(leg[0, 2]),
    }


def _grid(quad: dict[str, float]) -> np.ndarray:
    n = int(round((quad["upper"] - quad["lower"]) / quad["step"])) + 1
    return np.linspace(quad["lower"], quad["upper"], n)


@dataclass(frozen=True)
class ExactModeSystem(DynamicalSystem):
    """K modes of the exact expected flow (``ModelSpec(loss, norms="exact")``).

    It implements ``DynamicalSystem`` with the layout, parameters, domains, collapse set and
    scaling of the self-consistent K-mode system ``closure`` (whose spectral sums it replaces
    by the exact quadrature); its right-hand side exists only as compiled code (``symbolic``
    is None). ``quadrature`` overrides the default grid (``QUADRATURE``). One evaluation costs
    about (321^2 x K) elementwise operations; ``benchmarks/exact.py`` measures it (timings: ``benchmarks/README.md``).

    Attributes
    ----------
    closure : ModeSystem
        The self-consistent K-mode system of the same model (layout, parameters, domains).
    quadrature : mapping str -> float or None
        Overrides of the grid ``QUADRATURE`` (keys step, lower, upper); None for the default.
    """

    closure: ModeSystem
    quadrature: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.closure, ModeSystem):
            raise TypeError(f"closure must be a ModeSystem; got {type(self.closure).__name__}")
        if self.quadrature is not None:
            quad = dict(self.quadrature)
            unknown = set(quad) - set(QUADRATURE)
            if unknown:
                raise ValueError(f"quadrature keys must be among {sorted(QUADRATURE)}; got {sorted(unknown)}")
            object.__setattr__(self, "quadrature", FrozenMap(quad) if quad else None)

    def _quad(self) -> dict[str, float]:
        quad = dict(QUADRATURE)
        quad.update(dict(self.quadrature or {}))
        return quad

    # -- what it shares with the self-consistent system ----------------------------------------
    @property
    def per_mode(self) -> EigenmodeSystem:
        """The self-consistent per-mode system (states, parameters, spectral sums)."""
        return self.closure.per_mode

    @property
    def K(self) -> int:
        """The number of modes."""
        return self.closure.K

    @property
    def per_mode_params(self) -> tuple[str, ...]:
        """Parameters that differ between modes."""
        return self.closure.per_mode_params

    @property
    def closed(self) -> tuple[str, ...]:
        """The self-consistent closures' parameters (computed by the quadrature instead)."""
        return self.closure.closed

    @property
    def closures(self) -> tuple:
        """The self-consistent closures (the quadrature replaces them; those that enter the mode
        covariance, such as DirectPred's s_max, are computed from the spectrum)."""
        return self.closure.closures

    @property
    def state_layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """One group of shape (K,) per per-mode state, as ``closure``."""
        return self.closure.state_layout

    @property
    def state_domain(self) -> Mapping:
        """As ``closure``."""
        return self.closure.state_domain

    @property
    def param_names(self) -> tuple[str, ...]:
        """The free parameters, as ``closure``."""
        return self.closure.param_names

    @property
    def param_domain(self) -> Mapping:
        """As ``closure``."""
        return self.closure.param_domain

    @property
    def param_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """As ``closure``."""
        return self.closure.param_shapes

    def check_params(self, params: Params, *, batch: bool = False) -> dict:
        """Validate ``params`` as ``closure.check_params`` does.

        Parameters
        ----------
        params : mapping str -> float or array_like
            The values of ``param_names``.
        batch : bool
            Allow arrays of values.

        Returns
        -------
        dict
            ``{name: value}`` in ``param_names`` order.

        Raises
        ------
        TypeError
            ``params`` is not a mapping or a value is not real.
        ValueError
            Missing or unknown names, values outside their domain, wrong shapes.
        """
        return self.closure.check_params(params, batch=batch)

    @property
    def collapse(self) -> tuple[str, ...]:
        """As ``closure``."""
        return self.closure.collapse

    @property
    def partial_collapse(self) -> Mapping[str, tuple[str, ...]]:
        """As ``closure``."""
        return self.closure.partial_collapse

    @property
    def manifold(self) -> Mapping | None:
        """As ``closure``: d/dt (s - p^2/alpha_p) = -2 eta (s - p^2/alpha_p) holds for the exact
        flow too (p dJ/dp = phi dJ/dphi), so the graph is invariant mode by mode."""
        return self.closure.manifold

    @property
    def scaling(self) -> Mapping[str, float] | None:
        """As ``closure``: the exact flow of a scale-invariant loss is scale invariant."""
        return self.closure.scaling

    @property
    def weight_decay(self) -> str | None:
        """As ``closure``."""
        return self.closure.weight_decay

    @property
    def spec(self) -> ModelSpec:
        """The model: the per-mode system's spec with ``norms="exact"``."""
        return replace(self.per_mode.spec, norms="exact")

    @property
    def name(self) -> str:
        """The model's label and K."""
        return f"{self.spec.label}, {self.K} modes"

    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params)`` on flat states (..., n_states), evaluated by quadrature.

        Parameters
        ----------
        checked : bool
            Validate concrete inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning dy/dt as a JAX array of y's shape.
        """
        return _exact_function(self, checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """The same as ``to_jax``, returning NumPy arrays (one compiled evaluation per call:
        SciPy's integrators call it step by step).

        Parameters
        ----------
        checked : bool
            Validate the inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning dy/dt as a float64 ndarray of y's shape.
        """
        return _exact_numpy(self, checked)

    def discrete(self) -> DynamicalSystem:
        """The matching gradient-descent map with learning rate ``lr`` (``ExactModeMap``):
        one step of size lr on the weights, dp/dt and (dphi/dt)/phi from this flow.

        Returns
        -------
        ExactModeMap
            The map, with the extra parameter ``lr``, ``time == "discrete"`` and
            ``step_param == "lr"``.
        """
        from ._exact_map import ExactModeMap

        return ExactModeMap(self)

    def __repr__(self) -> str:
        return f"ExactModeSystem({self.spec.label}, K={self.K}, params={self.param_names})"


@lru_cache(maxsize=64)
def _exact_function(system: ExactModeSystem, checked: bool):
    import jax.numpy as jnp

    from .codegen import lambdified, state_array

    pm, K = system.per_mode, system.K
    spec = pm.spec
    sums = pm.steps["spectral_sums"]
    free_syms = tuple(v for v in pm.params if str(v) not in system.closed)
    free = [str(v) for v in free_syms]
    per_mode_names = set(system.per_mode_params)
    # the mode covariance of (a, b): alpha = E a^2, beta = E b^2, gamma = E a b
    moment_exprs = (sums["E<a,a>"], sums["E<b,b>"], sums["E<a,b>"])
    iso = spec.isoloss
    if iso:  # IsoLoss: g x1^T reaches Phi, so the leg is z = Phi x1 (a = w z), not a
        legs = feature_covariances(spec)
        moment_exprs += (legs["E<z,a>"], legs["E<z,b>"])
    # closed parameters in the covariance (DirectPred's s_max = max_k s_k), computed from the spectrum
    used = set().union(*(e.free_symbols for e in moment_exprs))
    spectral = tuple(c for c in system.closures if c[0] in used)
    inputs = tuple(c[0] for c in spectral)
    moments = lambdified(pm.states + free_syms + inputs, moment_exprs, "jax")
    summands = [lambdified(pm.states + free_syms + inputs[:i], (c[1],), "jax") for i, c in enumerate(spectral)]
    x = jnp.asarray(_grid(system._quad()))
    h = float(x[1] - x[0])
    ex = jnp.exp(x)
    ns = pm.n_states
    names = pm.state_names
    flat_names = [f"{n}_1..{n}_K" for n in names]
    learned = spec.predictor == "learned"
    ema = spec.target == "ema"
    through_target = not spec.stop_gradient

    def f(t, y, params):
        if checked:
            y = state_array(y, ns * K, flat_names, "jax")
            given = system.check_params(params, batch=True)
            given = {k: (float(v) if isinstance(v, sp.Basic) else v) for k, v in given.items()}
        else:
            given = {k: params[k] for k in free}
        y = jnp.asarray(y, dtype=jnp.float64)
        spectra = {n: y[..., i * K : (i + 1) * K] for i, n in enumerate(names)}
        values = {
            n: jnp.asarray(v, dtype=jnp.float64) if n in per_mode_names else jnp.asarray(v, dtype=jnp.float64)[..., None]
            for n, v in given.items()
        }
        ones = jnp.ones_like(spectra[names[0]])
        args = [spectra[n] for n in names] + [values[n] for n in free]
        for (_, _, power), summand in zip(spectral, summands):
            terms = summand(*args)[0] * ones
            total = jnp.max(terms, axis=-1, keepdims=True) if power == "max" else jnp.sum(terms, axis=-1, keepdims=True) ** float(power)
            args.append(total)
        al, be, ga, *leg = (m * ones for m in moments(*args))
        G = _mode_integrals(al, be, ga, ex, h, tuple(leg) if iso else None)
        G_phi = G + _target_integrals(al, be, ga, ex, h) if through_target else G
        eta = values["eta"]
        s = spectra["s"]
        out = {}
        if learned:
            p = spectra["p"]
            # p dJ/dp = G exactly; divide where p != 0 (G vanishes like p^2 there)
            safe = jnp.where(p == 0, 1.0, p)
            out["p"] = jnp.where(p == 0, 0.0, -values["alpha_p"] * G / safe) - eta * p
        rate = -G_phi / jnp.where(s == 0, 1.0, s) - eta  # dphi/dt / phi = -G / s - eta
        rate = jnp.where(s == 0, -eta * ones, rate)
        out["s"] = 2 * s * rate
        if ema:
            tau = spectra["tau"]
            out["tau"] = values["beta"] * (1 - tau) - tau * rate
        return jnp.concatenate([out[n] * ones for n in names], axis=-1)

    f.__doc__ = f"exact {K}-mode flow of {spec.label}; params: {', '.join(free)}."
    return f


@lru_cache(maxsize=64)
def _exact_numpy(system: ExactModeSystem, checked: bool):
    return numpy_of_jax(system, _exact_function(system, False), _exact_function(system, checked).__doc__, checked)


def numpy_of_jax(system: DynamicalSystem, jax_rhs, doc: str, checked: bool):
    """``f(t, y, params)`` in NumPy from the unchecked JAX right-hand side ``jax_rhs`` of a
    K-mode system, compiled once (SciPy's integrators call it step by step); ``checked``
    validates y and params on every call."""
    import jax

    from .codegen import state_array

    core = jax.jit(jax_rhs)
    free = system.param_names
    flat_names = [f"{n}_1..{n}_K" for n in system.group_names]

    def f(t, y, params):
        if checked:
            y = state_array(y, system.n_states, flat_names, "numpy")
            params = system.check_params(params, batch=True)
        given = {k: np.asarray(float(params[k]) if isinstance(params[k], sp.Basic) else params[k], dtype=float) for k in free}
        return np.asarray(core(t, np.asarray(y, dtype=float), given))

    f.__doc__ = doc
    return f


def _mode_integrals(al, be, ga, ex, h, leg=None):
    """G_k = E[c_k dL/da_k] for the cosine loss, shape (..., K), by the double quadrature.

    The leg c_k is a_k itself (``leg`` None) or a zero-mean Gaussian jointly with (a_k, b_k)
    with covariances ``leg = (E[c a], E[c b])``; under the tilt they become
    r^T (I + 2 D Sigma)^-1, which for c = a is the row (S~aa, S~ab)."""
    import jax.numpy as jnp

    EA = jnp.sum(al, axis=-1, keepdims=True)[..., None, None]  # (..., 1, 1, 1)
    EC = jnp.sum(be, axis=-1, keepdims=True)[..., None, None]
    u = ex[:, None, None] / EA  # (..., n, 1, 1)
    v = ex[None, :, None] / EC  # (..., 1, n, 1)
    a, b, g = (z[..., None, None, :] for z in (al, be, ga))  # (..., 1, 1, K)
    delta = jnp.maximum(a * b - g * g, 0.0)  # >= 0 (Cauchy-Schwarz); 0 for identical views, where rounding could flip it
    q = 1 + 2 * u * a + 2 * v * b + 4 * u * v * delta  # (..., n, n, K)
    log_z = -0.5 * jnp.sum(jnp.log(q), axis=-1, keepdims=True)  # prod_k q_k^(-1/2)
    s_aa = (a + 2 * v * delta) / q
    s_ab = g / q
    t_ab = jnp.sum(s_ab, axis=-1, keepdims=True)
    if leg is None:
        c_a, c_b = s_aa, s_ab
    else:
        r_a, r_b = (z[..., None, None, :] for z in leg)
        c_a = (r_a * (1 + 2 * v * b) - 2 * v * g * r_b) / q
        c_b = (r_b * (1 + 2 * u * a) - 2 * u * g * r_a) / q
    # du dv = u v dx dy: (u v)^(-1/2) du dv = (u v)^(1/2) dx dy, u^(1/2) v^(-1/2) du dv = u^(3/2) v^(1/2) dx dy
    # Isserlis under the tilt: E~[c_j a_j B] = E~[c_j a_j] (sum_k S~ab_k + S~ab_j) + E~[c_j b_j] S~aa_j
    root_u, root_v = jnp.sqrt(u), jnp.sqrt(v)
    integrand = jnp.exp(log_z) * (
        -(1 / jnp.pi) * root_u * root_v * c_b
        + (2 / jnp.pi) * u * root_u * root_v * (c_a * (t_ab + s_ab) + c_b * s_aa)
    )
    return h * h * jnp.sum(integrand, axis=(-3, -2))


def _target_integrals(al, be, ga, ex, h):
    """H_k = E[b_k dL/db_k] for the cosine loss (the target branch without stop-gradient),
    shape (..., K): L is symmetric under a <-> b up to A <-> C, so it is ``_mode_integrals``
    with alpha and beta exchanged (u then pairs with b, v with a)."""
    return _mode_integrals(be, al, ga, ex, h)


@dataclass(frozen=True)
class ExactEigenmodes(EigenmodeModel):
    """The exact expected flow of a normalized loss (``ModelSpec(..., norms="exact")``).

    There is no closed-form one-mode system: every mode sees the whole spectrum through the
    norms, so this is a model, not a system. ``modes(K)`` gives the K-mode system (an
    ``ExactModeSystem``, evaluated by quadrature), ``steps`` the symbolic per-mode factors. See
    the module docstring for the formula and its quadrature.
    ``derive(ModelSpec(..., norms="exact"))`` builds it. Immutable.

    Attributes
    ----------
    spec : ModelSpec
        The model (``norms="exact"``).
    self_consistent : EigenmodeSystem
        The same model's self-consistent system, whose states and spectral sums it shares.
    """

    spec: ModelSpec
    self_consistent: EigenmodeSystem

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ModelSpec) or self.spec.norms != "exact":
            raise ValueError(f"spec must be a ModelSpec with norms='exact'; got {self.spec!r}")
        if not isinstance(self.self_consistent, EigenmodeSystem):
            raise TypeError(f"self_consistent must be an EigenmodeSystem; got {type(self.self_consistent).__name__}")

    @property
    def is_discrete(self) -> bool:
        """False: the exact expected flow."""
        return False

    @property
    def steps(self) -> FrozenMap:
        """The symbolic steps: the per-mode covariance, for IsoLoss the covariances of the leg
        z (``feature_covariance``), and the factors of ``exact_factors``."""
        out = {"per_mode_covariance": FrozenMap(self.self_consistent.steps["spectral_sums"])}
        if self.spec.isoloss:
            out["feature_covariance"] = FrozenMap(feature_covariances(self.spec))
        out["factors"] = FrozenMap(exact_factors())
        return FrozenMap(out)

    @property
    def state_names(self) -> tuple[str, ...]:
        """The per-mode state names (those of the self-consistent system)."""
        return self.self_consistent.state_names

    @property
    def name(self) -> str:
        """The model's label."""
        return self.spec.label

    def modes(self, K: int, *, quadrature: Mapping[str, float] | None = None) -> ExactModeSystem:
        """The exact K-mode system (K >= 2), ``quadrature`` overriding the grid (step, lower,
        upper in log variables).

        Parameters
        ----------
        K : int
            The number of modes, at least 2 (one mode: the cosine is a sign).
        quadrature : mapping str -> float, optional
            Overrides of ``QUADRATURE`` (keys step, lower, upper).

        Returns
        -------
        ExactModeSystem
            The K-mode system, evaluated by quadrature.

        Raises
        ------
        ValueError
            K < 2, or quadrature keys other than step, lower, upper.
        """
        base = self.self_consistent.modes(K)
        if K < 2:
            raise ValueError(f"K must be >= 2 for the exact normalized flow (one mode: the cosine is a sign); got {K}")
        return ExactModeSystem(base, quadrature)

    def discrete(self) -> EigenmodeModel:
        """The gradient-descent map of the exact flow (``ExactMap``; ``.modes(K)`` gives the
        K-mode map with the extra parameter ``lr``), as ``EigenmodeSystem.discrete()``.

        Returns
        -------
        ExactMap
            The map of this model.
        """
        from ._exact_map import ExactMap

        return ExactMap(self)

    def __repr__(self) -> str:
        return f"ExactEigenmodes({self.spec.label}, states=({', '.join(self.state_names)}))"

    def __str__(self) -> str:
        f = exact_factors()
        lines = [
            f"ExactEigenmodes {self.spec.label}",
            f"  states per mode: {', '.join(self.state_names)}",
            "  G_j = E[a_j dL/da_j] = int int prod_k q_k^(-1/2) [-(1/pi)(uv)^(-1/2) S~ab_j"
            " + (2/pi) u^(1/2) v^(-1/2) S~aa_j (sum_k S~ab_k + 2 S~ab_j)] du dv",
            f"  q_k = {sp.sstr(f['q'])}",
            f"  S~aa = {sp.sstr(f['S~aa'])},  S~ab = {sp.sstr(f['S~ab'])}",
        ]
        if self.spec.isoloss:
            legs = feature_covariances(self.spec)
            lines += [
                "  IsoLoss: g x1^T reaches Phi, so phi dJ/dphi = Z_j = E[z_j dL/da_j] (a = w z): G_j with"
                " S~ab_j -> S~cb_j, S~aa_j (sum_k S~ab_k + 2 S~ab_j) -> S~ca_j (sum_k S~ab_k + S~ab_j) + S~cb_j S~aa_j",
                f"  S~ca = {sp.sstr(f['S~ca'])},  S~cb = {sp.sstr(f['S~cb'])}",
                f"  rho_a = E<z,a> = {sp.sstr(legs['E<z,a>'])},  rho_b = E<z,b> = {sp.sstr(legs['E<z,b>'])}",
                "  flow: ds = -2 Z - 2 eta s",
            ]
        else:
            lines.append("  flow: p dJ/dp = phi dJ/dphi = G (learned predictor); ds = -2 G - 2 eta s")
        return "\n".join(lines)
