"""The exact expected flow of a normalized loss at any width: no norm or moment approximation.

For aligned weights mode k carries the zero-mean Gaussian pair (a_k, b_k) with covariance
[[alpha_k, gamma_k], [gamma_k, beta_k]], independent across modes (``_means`` of the derivation:
alpha_k = E a_k^2, beta_k = E b_k^2, gamma_k = E a_k b_k). The cosine loss L = -B/sqrt(A C),
A = sum a_k^2, B = sum a_k b_k, C = sum b_k^2, gives for every mode

    G_j = E[a_j dL/da_j] = -E[a_j b_j (A C)^(-1/2)] + E[B a_j^2 A^(-3/2) C^(-1/2)],

and the flow follows from G_j (p_j dJ/dp_j = phi_j dJ/dphi_j = G_j for a learned predictor).
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
from ._eigenmode import EigenmodeSystem
from ._spec import ModelSpec
from ._system import FrozenMap, ODESystem, RhsFunction

__all__ = ["ExactEigenmodes", "ExactModeSystem", "exact_factors", "QUADRATURE"]

QUADRATURE = FrozenMap({"step": 0.4, "lower": -64.0, "upper": 64.0})
"""The default quadrature grid in log variables: step h and range [lower, upper] for both x
and y (u = e^x / E[A], v = e^y / E[C])."""

_u, _v = sp.symbols("u v", positive=True)
_al, _be, _ga = sp.symbols("alpha_k beta_k gamma_k", real=True)


@lru_cache(maxsize=1)
def exact_factors() -> dict[str, sp.Expr]:
    """The per-mode factor q_k and the tilted covariance Sigma~_k, derived by SymPy from the
    mode covariance Sigma = [[alpha, gamma], [gamma, beta]] and D = diag(u, v).

    Returns
    -------
    dict of str -> sympy.Expr
        ``q`` = det(I + 2 D Sigma) and the entries ``S~aa``, ``S~ab``, ``S~bb`` of
        (Sigma^-1 + 2 D)^-1, in alpha_k, beta_k, gamma_k, u, v (computed once, cached).
    """
    S = sp.Matrix([[_al, _ga], [_ga, _be]])
    D = sp.diag(_u, _v)
    q = sp.expand((sp.eye(2) + 2 * D * S).det())
    tilted = sp.simplify((S.inv() + 2 * D).inv())
    return {
        "q": q,
        "S~aa": sp.factor(sp.simplify(tilted[0, 0] * q)) / q,
        "S~ab": sp.factor(sp.simplify(tilted[0, 1] * q)) / q,
        "S~bb": sp.factor(sp.simplify(tilted[1, 1] * q)) / q,
    }


def _grid(quad: dict[str, float]) -> np.ndarray:
    n = int(round((quad["upper"] - quad["lower"]) / quad["step"])) + 1
    return np.linspace(quad["lower"], quad["upper"], n)


@dataclass(frozen=True, eq=False)
class ExactModeSystem(ModeSystem):
    """K modes of the exact expected flow (``ModelSpec(loss, norms="exact")``).

    It shares the states, parameters and domains of the self-consistent system ``per_mode``
    (whose closures it replaces by the exact quadrature) and offers what the numerics read of
    a system: names, domains, collapse indices, ``to_jax``/``to_numpy`` of the flat state.
    ``quadrature`` overrides the default grid (``QUADRATURE``).

    One evaluation costs about (321^2 x K) elementwise operations, so a single trajectory
    integrates fastest with ``integrate(..., backend="scipy")``: DOP853 needs about 8 steps for
    t in [0, 6] at rtol 1e-8 and no compilation (timings: ``benchmarks/README.md``).

    Attributes
    ----------
    per_mode : EigenmodeSystem
        The self-consistent per-mode system (states, parameters, domains).
    K : int
        The number of modes (>= 2).
    closures : tuple
        The self-consistent system's closures (kept for the layout; the flow uses the
        quadrature instead).
    per_mode_params : tuple of str
        Parameters that differ between modes.
    quadrature : mapping str -> float or None
        Overrides of the grid ``QUADRATURE`` (keys step, lower, upper); None for the default.
    """

    quadrature: Mapping[str, float] | None = None

    def __hash__(self) -> int:
        return hash((self.per_mode, self.K, self.closures, self.per_mode_params, self._quad_key()))

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and (self.per_mode, self.K, self.per_mode_params, self._quad_key())
            == (other.per_mode, other.K, other.per_mode_params, other._quad_key())
        )

    def _quad_key(self) -> tuple:
        return tuple(sorted(self._quad().items()))

    def _quad(self) -> dict[str, float]:
        quad = dict(QUADRATURE)
        quad.update(dict(self.quadrature or {}))
        return quad

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

        Raises
        ------
        ValueError
            Not when building: the returned function raises it (when ``checked``) for bad
            parameter names, shapes or non-finite values.
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

        Raises
        ------
        ValueError
            Not when building: the returned function raises it (when ``checked``) for bad
            parameter names, shapes or non-finite values.
        """
        return _exact_numpy(self, checked)

    def to_ode_system(self) -> ODESystem:
        """Not available: the exact flow is a quadrature, with no closed-form right-hand side.

        Returns
        -------
        ODESystem
            Never; use the self-consistent system (``per_mode.modes(K)``) for symbolic work.

        Raises
        ------
        ValueError
            Always.
        """
        raise ValueError("the exact system has no closed-form right-hand side (it is a quadrature); "
                         "use to_jax/to_numpy, or the self-consistent system for symbolic work")

    def to_sympy(self) -> tuple[tuple[sp.Symbol, ...], sp.ImmutableMatrix]:
        """Not available, as ``to_ode_system``.

        Returns
        -------
        tuple
            Never.

        Raises
        ------
        ValueError
            Always.
        """
        return self.to_ode_system()

    def __repr__(self) -> str:
        return f"ExactModeSystem({self.spec.label}, K={self.K}, params={self.param_names})"


@lru_cache(maxsize=64)
def _exact_function(system: ExactModeSystem, checked: bool):
    import jax.numpy as jnp

    from ._codegen import lambdified, state_array

    pm, K = system.per_mode, system.K
    spec = pm.spec
    sums = pm.steps["spectral_sums"]
    free_syms = tuple(v for v in pm.params if str(v) not in system.closed)
    free = [str(v) for v in free_syms]
    per_mode_names = set(system.per_mode_params)
    # the mode covariance of (a, b): alpha = E a^2, beta = E b^2, gamma = E a b
    moments = lambdified(pm.states + free_syms, (sums["E<a,a>"], sums["E<b,b>"], sums["E<a,b>"]), "jax")
    x = jnp.asarray(_grid(system._quad()))
    h = float(x[1] - x[0])
    ex = jnp.exp(x)
    ns = pm.n_states
    names = pm.state_names
    flat_names = [f"{n}_1..{n}_K" for n in names]
    learned = spec.predictor == "learned"
    ema = spec.target == "ema"

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
        al, be, ga = (m * ones for m in moments(*[spectra[n] for n in names], *[values[n] for n in free]))
        G = _mode_integrals(al, be, ga, ex, h)
        eta = values["eta"]
        s = spectra["s"]
        out = {}
        if learned:
            p = spectra["p"]
            # p dJ/dp = G exactly; divide where p != 0 (G vanishes like p^2 there)
            safe = jnp.where(p == 0, 1.0, p)
            out["p"] = jnp.where(p == 0, 0.0, -values["alpha_p"] * G / safe) - eta * p
        rate = -G / jnp.where(s == 0, 1.0, s) - eta  # dphi/dt / phi = -G / s - eta
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
    import jax

    from ._codegen import state_array

    core = jax.jit(_exact_function(system, False))
    free = system.param_names
    flat_names = [f"{n}_1..{n}_K" for n in system.per_mode.state_names]

    def f(t, y, params):
        if checked:
            y = state_array(y, system.n_states, flat_names, "numpy")
            params = system.check_params(params, batch=True)
        given = {k: np.asarray(float(params[k]) if isinstance(params[k], sp.Basic) else params[k], dtype=float) for k in free}
        return np.asarray(core(t, np.asarray(y, dtype=float), given))

    f.__doc__ = _exact_function(system, checked).__doc__
    return f


def _mode_integrals(al, be, ga, ex, h):
    """G_k = E[a_k dL/da_k] for the cosine loss, shape (..., K), by the double quadrature."""
    import jax.numpy as jnp

    EA = jnp.sum(al, axis=-1, keepdims=True)[..., None, None]  # (..., 1, 1, 1)
    EC = jnp.sum(be, axis=-1, keepdims=True)[..., None, None]
    u = ex[:, None, None] / EA  # (..., n, 1, 1)
    v = ex[None, :, None] / EC  # (..., 1, n, 1)
    a, b, g = (z[..., None, None, :] for z in (al, be, ga))  # (..., 1, 1, K)
    delta = a * b - g * g
    q = 1 + 2 * u * a + 2 * v * b + 4 * u * v * delta  # (..., n, n, K)
    log_z = -0.5 * jnp.sum(jnp.log(q), axis=-1, keepdims=True)  # prod_k q_k^(-1/2)
    s_aa = (a + 2 * v * delta) / q
    s_ab = g / q
    t_ab = jnp.sum(s_ab, axis=-1, keepdims=True)
    # du dv = u v dx dy: (u v)^(-1/2) du dv = (u v)^(1/2) dx dy, u^(1/2) v^(-1/2) du dv = u^(3/2) v^(1/2) dx dy
    root_u, root_v = jnp.sqrt(u), jnp.sqrt(v)
    integrand = jnp.exp(log_z) * (
        -(1 / jnp.pi) * root_u * root_v * s_ab + (2 / jnp.pi) * u * root_u * root_v * s_aa * (t_ab + 2 * s_ab)
    )
    return h * h * jnp.sum(integrand, axis=(-3, -2))


class ExactEigenmodes:
    """The exact expected flow of a normalized loss (``ModelSpec(..., norms="exact")``).

    There is no closed-form one-mode system: every mode sees the whole spectrum through the
    norms. ``modes(K)`` gives the K-mode system (evaluated by quadrature), ``steps`` the
    symbolic per-mode factors. See the module docstring for the formula and its quadrature.
    ``derive(ModelSpec(..., norms="exact"))`` builds it.

    Parameters
    ----------
    spec : ModelSpec
        The model (``norms="exact"``).
    self_consistent : EigenmodeSystem
        The same model's self-consistent system, whose states and spectral sums it shares.

    Attributes
    ----------
    spec : ModelSpec
        The model.
    self_consistent : EigenmodeSystem
        The self-consistent system.
    steps : mapping
        The symbolic steps: the per-mode covariance and the factors of ``exact_factors``.
    """

    def __init__(self, spec: ModelSpec, self_consistent: EigenmodeSystem) -> None:
        self.spec = spec
        self.self_consistent = self_consistent
        self.steps = FrozenMap({
            "per_mode_covariance": FrozenMap(self_consistent.steps["spectral_sums"]),
            "factors": FrozenMap(exact_factors()),
        })

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
        if quadrature is not None:
            unknown = set(dict(quadrature)) - set(QUADRATURE)
            if unknown:
                raise ValueError(f"quadrature keys must be among {sorted(QUADRATURE)}; got {sorted(unknown)}")
        return ExactModeSystem(base.per_mode, base.K, base.closures, base.per_mode_params,
                               quadrature=FrozenMap(dict(quadrature)) if quadrature else None)

    def __repr__(self) -> str:
        return f"ExactEigenmodes({self.spec.label}, states=({', '.join(self.state_names)}))"

    def __str__(self) -> str:
        f = exact_factors()
        return "\n".join([
            f"ExactEigenmodes {self.spec.label}",
            f"  states per mode: {', '.join(self.state_names)}",
            "  G_j = E[a_j dL/da_j] = int int prod_k q_k^(-1/2) [-(1/pi)(uv)^(-1/2) S~ab_j"
            " + (2/pi) u^(1/2) v^(-1/2) S~aa_j (sum_k S~ab_k + 2 S~ab_j)] du dv",
            f"  q_k = {sp.sstr(f['q'])}",
            f"  S~aa = {sp.sstr(f['S~aa'])},  S~ab = {sp.sstr(f['S~ab'])}",
            "  flow: p dJ/dp = phi dJ/dphi = G (learned predictor); ds = -2 G - 2 eta s",
        ])
