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

Quadrature: u = e^x / E[A], v = e^y / E[C] and the product of one rule in both log variables:
the trapezoidal rule, step h = 0.3, in t under the map

    x(t) = t - e^(-3 - t) + g log(1 + e^(t - 5.5)).

The integrand is analytic in the strip |Im x| < pi (q_k vanishes only at negative real u, v),
but for many modes it behaves like e^(x/2) exp(-e^x) near x = 0, bounded only for
|Im x| < pi/2, so the step's error falls like exp(-pi^2 / h) (5e-15 at h = 0.3). To the left
the integrand decays only like e^(x/2) (a uniform grid needs x down to -64): the
double-exponential part of the map reaches x = -70 in 14 nodes. To the right the factor
q_k^(-1/2) of mode k starts to decay at x_k = log(E[A] / (2 alpha_k)), far out for small modes:
the stretch g >= 1 (the step becomes 0.3 (1 + g) there) carries the right end to
max(upper, max_k x_k + 14, the same with beta_k / E[C]), at most max(upper, 64), with a fixed
number of nodes (94 per variable), so one compiled rule serves every spectrum; g is held
constant under differentiation.

Error against a uniform grid of step 0.2 on [-100, 100] (itself converged to 3e-14), relative
to the largest mode's scale |E[a_j b_j (A C)^(-1/2)]| + |E[B a_j^2 A^(-3/2) C^(-1/2)]|: below
3e-13 at K = 2..1000 with eigenvalues spread over 1e-6..1e3, identical and nearly identical
views and alpha_k / beta_k spread over 1e9 (the former uniform grid, h = 0.4 on [-64, 64],
3e-10 at K = 1000). Each mode is as accurate relative to its own scale (below 1e-12) except
in a crowd of modes far below the top: 999 modes 1e-9 below the largest hold 4e-8 of their own
size. The tests check it by refinement at such spectra.
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

QUADRATURE = FrozenMap({"step": 0.3, "lower": -70.0, "upper": 36.0})
"""The default quadrature rule in the log variables x (u = e^x / E[A]) and y (v = e^y / E[C]),
the same in both: ``step`` the node spacing where the integrand lives (x in [-3, 5.5]),
``lower`` the left end, ``upper`` the least right end (the right end follows the spectrum; see
the module docstring): 94 x 94 nodes."""

_BEND = (-3.0, 5.5)
"""Where the rule's map x(t) bends: double-exponential on the left of -3, a stretch to the right
of 5.5, the identity in between."""
_MARGIN = 14.0
"""How far beyond the smallest mode's scale, log(E[A] / (2 min_k alpha_k)), the right end goes."""
_FARTHEST = 64.0
"""The right end never exceeds max(upper, 64): a mode below 1e-22 of E[A] (or of E[C]) is
resolved less well relative to itself (the others are not affected)."""

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


@dataclass(frozen=True)
class ExactModeSystem(DynamicalSystem):
    """K modes of the exact expected flow (``ModelSpec(loss, norms="exact")``).

    It implements ``DynamicalSystem`` with the layout, parameters, domains, collapse set and
    scaling of the self-consistent K-mode system ``closure`` (whose spectral sums it replaces
    by the exact quadrature); its right-hand side exists only as compiled code (``symbolic``
    is None). ``quadrature`` overrides the default rule (``QUADRATURE``). One evaluation costs
    about 94^2 x K logarithms and reciprocals and matrix products of that size (the target
    branch without stop-gradient reuses them); ``benchmarks/exact.py`` measures it (timings:
    ``benchmarks/README.md``).

    Attributes
    ----------
    closure : ModeSystem
        The self-consistent K-mode system of the same model (layout, parameters, domains).
    quadrature : mapping str -> float or None
        Overrides of the rule ``QUADRATURE`` (keys step, lower, upper); None for the default.
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
        _rule(self._quad())

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
    quad = system._quad()
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
        if through_target:
            G, H = _mode_integrals(al, be, ga, quad, tuple(leg) if iso else None, target=True)
            G_phi = G + H
        else:
            G = G_phi = _mode_integrals(al, be, ga, quad, tuple(leg) if iso else None)
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


def _rule(quad: Mapping[str, float]) -> tuple[np.ndarray, float, float]:
    """The rule's parameter nodes t_i (spacing ``step``), the step and the last node t_end, for
    ``quad`` (keys of ``QUADRATURE``): x(t_0) <= lower and x(t_end) = upper at g = 1."""
    step, lower, upper = (float(quad[k]) for k in ("step", "lower", "upper"))
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"quadrature step must be a positive number; got {step}")
    if not (np.isfinite(lower) and lower < _BEND[0] - 1):
        raise ValueError(f"quadrature lower must be a number below {_BEND[0] - 1}; got {lower}")
    if not (np.isfinite(upper) and upper > _BEND[1] + 1):
        raise ValueError(f"quadrature upper must be a number above {_BEND[1] + 1}; got {upper}")

    def solve(target):
        lo, hi = -abs(target) - 50.0, abs(target) + 50.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if _map(mid, 1.0)[0] < target else (lo, mid)
        return 0.5 * (lo + hi)

    t0, t_end = solve(lower), solve(upper)
    n = int(np.ceil((t_end - t0) / step - 1e-9)) + 1
    return t_end - step * np.arange(n)[::-1], step, t_end


def _map(t, g, xp=np):
    """x(t) = t - e^(a - t) + g log(1 + e^(t - b)) and dx/dt, (a, b) = ``_BEND``, in NumPy or
    (``xp``) JAX."""
    a, b = _BEND
    left = xp.exp(a - t)
    return t - left + g * xp.logaddexp(0.0, t - b), 1 + left + g / (1 + xp.exp(b - t))


def _nodes(t, step, t_end, upper, al, be):
    """Nodes x_i and weights of the rule for one spectrum: the right end is
    max(upper, log(E[A] / (2 min alpha_k)) + _MARGIN, the same with beta), at most
    max(upper, _FARTHEST), reached by the stretch g >= 1 (held constant under differentiation)."""
    import jax
    import jax.numpy as jnp

    def smallest(m):
        m = jax.lax.stop_gradient(m)
        return jnp.min(jnp.where(m > 0, m / jnp.sum(m), jnp.inf))

    reach = jnp.log(0.5 / jnp.minimum(smallest(al), smallest(be))) + _MARGIN
    right = jnp.clip(reach, upper, max(upper, _FARTHEST))
    a, b = _BEND
    g = (right - (t_end - np.exp(a - t_end))) / np.logaddexp(0.0, t_end - b)
    g = jnp.maximum(g, 1.0)
    x, dx = _map(jnp.asarray(t), g, jnp)
    return x, step * dx


def _mode_integrals(al, be, ga, quad, leg=None, target=False):
    """G_k = E[c_k dL/da_k] for the cosine loss, shape (..., K), by the double quadrature; with
    ``target`` also H_k = E[b_k dL/db_k] (the target branch without stop-gradient).

    The leg c_k is a_k itself (``leg`` None) or a zero-mean Gaussian jointly with (a_k, b_k)
    with covariances ``leg = (E[c a], E[c b])``; under the tilt they become
    r^T (I + 2 D Sigma)^-1, which for c = a is the row (S~aa, S~ab). Every term is a node weight
    (a function of u, v, prod_k q_k and sum_k S~ab_k) times a mode constant times 1/q_k or
    1/q_k^2, so one pass over the nodes costs one logarithm and one reciprocal per node and mode
    and the rest are matrix products. H is the same integral with (alpha, u) and (beta, v)
    exchanged: the rule is the same in x and y, so H's q_k at node (x_i, y_l) is G's at (x_l, y_i)
    and it reuses every 1/q_k."""
    import jax
    import jax.numpy as jnp

    t, step, t_end = _rule(quad)
    upper = float(quad["upper"])
    K = al.shape[-1]
    n = len(t)
    chunk = min(n * n, max(64, 2**18 // K))
    n_chunks = -(-n * n // chunk)
    pad = n_chunks * chunk - n * n

    def one(al, be, ga, ra, rb):
        x, w = _nodes(t, step, t_end, upper, al, be)
        ex = jnp.exp(x)
        u = jnp.broadcast_to((ex / jnp.sum(al))[:, None], (n, n)).ravel()
        v = jnp.broadcast_to((ex / jnp.sum(be))[None, :], (n, n)).ravel()
        wt = (w[:, None] * w[None, :]).ravel()
        u, v, wt = (jnp.concatenate([z, jnp.zeros(pad)]).reshape(n_chunks, chunk) for z in (u, v, wt))
        delta = jnp.maximum(al * be - ga * ga, 0.0)  # >= 0 (Cauchy-Schwarz); 0 for identical views, where rounding could flip it

        def body(acc, nodes):
            uc, vc, wc = nodes
            q = 1 + 2 * uc[:, None] * al + 2 * vc[:, None] * be + 4 * (uc * vc)[:, None] * delta
            r = 1 / q
            # du dv = u v dx dy: (u v)^(-1/2) du dv = (u v)^(1/2) dx dy, u^(1/2) v^(-1/2) du dv = u^(3/2) v^(1/2) dx dy
            z = wc * jnp.exp(-0.5 * jnp.sum(jnp.log(q), axis=-1)) * jnp.sqrt(uc * vc)
            t_ab = r @ ga
            first, second = -z / jnp.pi, 2 * z * uc / jnp.pi
            ones = [first, second * t_ab, second * t_ab * vc]
            squares = [second, second * vc]
            if leg is not None:
                ones.append(first * uc)
                squares += [second * uc, second * uc * vc]
            if target:
                swapped = 2 * z * vc / jnp.pi
                ones += [swapped * t_ab, swapped * t_ab * uc]
                squares += [swapped, swapped * uc]
            return (acc[0] + r.T @ jnp.stack(ones, 1), acc[1] + (r * r).T @ jnp.stack(squares, 1)), None

        n1, n2 = 3 + (leg is not None) + 2 * target, 2 + 2 * (leg is not None) + 2 * target
        (m, s), _ = jax.lax.scan(body, (jnp.zeros((K, n1)), jnp.zeros((K, n2))), (u, v, wt))
        # Isserlis under the tilt: E~[c_j a_j B] = E~[c_j a_j] (sum_k S~ab_k + S~ab_j) + E~[c_j b_j] S~aa_j
        if leg is None:
            G = ga * m[:, 0] + al * m[:, 1] + 2 * delta * m[:, 2] + 2 * ga * al * s[:, 0] + 4 * ga * delta * s[:, 1]
        else:
            A1, B1 = be * ra - ga * rb, al * rb - ga * ra
            G = (rb * m[:, 0] + ra * m[:, 1] + 2 * A1 * m[:, 2] + 2 * B1 * m[:, 3] + (ra * ga + rb * al) * s[:, 0]
                 + 2 * (A1 * ga + rb * delta) * s[:, 1] + 2 * B1 * al * s[:, 2] + 4 * B1 * delta * s[:, 3])
        if not target:
            return G, G
        i, j = n1 - 2, n2 - 2
        H = ga * m[:, 0] + be * m[:, i] + 2 * delta * m[:, i + 1] + 2 * ga * be * s[:, j] + 4 * ga * delta * s[:, j + 1]
        return G, H

    ra, rb = (al, ga) if leg is None else leg
    G, H = jnp.vectorize(one, signature="(k),(k),(k),(k),(k)->(k),(k)")(al, be, ga, ra, rb)
    return (G, H) if target else G


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
        """The exact K-mode system (K >= 2), ``quadrature`` overriding the rule (step, lower,
        upper in log variables).

        Parameters
        ----------
        K : int
            The number of modes, at least 2 (one mode: the cosine is a sign).
        quadrature : mapping str -> float, optional
            Overrides of ``QUADRATURE``: ``step`` (> 0, the node spacing in the log variables
            where the integrand lives), ``lower`` (below -4, the left end), ``upper`` (above
            6.5, the least right end).

        Returns
        -------
        ExactModeSystem
            The K-mode system, evaluated by quadrature.

        Raises
        ------
        ValueError
            K < 2, quadrature keys other than step, lower, upper, or values outside those ranges.
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
