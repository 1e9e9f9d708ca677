"""The expected gradient flow of the full weight matrices: no eigenmode ansatz, any start.

State: the predictor Psi (h x h, learned predictor only), the projection Phi (h x d) and the
EMA target Phi_a (h x d, BYOL only). For Gaussian views x1, x2 with joint covariance
[[S11, S12], [S21, S22]] (``view_covariance``: data covariance diag(lambda) in the data basis,
view noise sigma2) the outputs a = W_P Phi x1 and b = Phi_t x2 are jointly Gaussian for ANY
weights, so the expected gradient of the true per-sample loss L(A, B, C) is a function of

    S_aa = W_P Phi S11 Phi^T W_P^T,  S_ab = W_P Phi S12 Phi_t^T,  S_bb = Phi_t S22 Phi_t^T,
    X_a = E[a x1^T] = W_P Phi S11,    X_b = E[b x1^T] = Phi_t S21,

through G = E[g x1^T] with g = dL/da = 2 L_A a + L_B b, and the flow is

    dPsi/dt   = -alpha_p G Phi^T - eta Psi                              (learned predictor)
    dPhi/dt   = -W_P^T G - eta Phi     (IsoLoss: -G - eta Phi, no factor W_P^T)
                [- E[g_b x2^T] without stop-gradient, g_b = dL/db = L_B a + 2 L_C b]
    dPhi_a/dt = beta (Phi - Phi_a)                                      (EMA target)

with W_P = Psi, DirectPred's F^alpha (F = Phi Phi^T, set in closed form, no gradient through
it) or I. G is derived, not sampled:

- a loss polynomial in A, B, C (Euclidean, IsoLoss-Euclidean, any polynomial): Wick's theorem
  in matrix form (``wick_matrix_moment``), exact;
- a loss that involves the norms with ``norms="frozen"`` (A -> N_psi^2, C -> N_phi^2 inside
  the gradient, parameters) or ``"self-consistent"`` (A -> E[A] = tr S_aa, C -> E[C] =
  tr S_bb from the weights), and ``moments="leading"`` (B -> E[B] = tr S_ab in the
  coefficients): the coefficients become polynomials in B and Wick's theorem applies;
- ``norms="exact"`` (cosine, IsoLoss-cosine): the exact expectation by the Laplace-integral
  quadrature of ``derivations._matrix_exact`` (no norm or moment approximation).

On aligned weights (W_P, F and Phi_a Phi^T sharing eigenvectors) it reduces to the eigenmode
system of the same model; the tests check that, and Monte Carlo of ``jax.grad`` of the true
per-sample loss at random non-aligned weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from ._interface import DynamicalSystem, Symmetry
from ._losses import A, B, C
from ._matrix_exact import MATRIX_QUADRATURE, cosine_gradient_moment
from ._matrix_moments import MOMENT_SYMBOLS, evaluate, wick_matrix_moment
from ._spec import ModelSpec
from ._system import FrozenMap, RhsFunction
from ._truth import network_params

__all__ = ["MatrixFlowSystem", "matrix_gradient_moments", "spectral_power"]

_EA, _EB, _EC = sp.symbols("E_A E_B E_C", real=True)
_DOMAINS = {
    "sigma2": sp.Interval(0, sp.oo), "eta": sp.Interval(0, sp.oo), "alpha_p": sp.Interval.open(0, sp.oo),
    "beta": sp.Interval(0, sp.oo), "alpha": sp.Interval.open(0, sp.oo), "eps": sp.Interval(0, sp.oo),
    "lambda": sp.Interval(0, sp.oo), "N_psi": sp.Interval.open(0, sp.oo), "N_phi": sp.Interval.open(0, sp.oo),
}


@lru_cache(maxsize=64)
def matrix_gradient_moments(spec: ModelSpec) -> dict[str, sp.MatrixExpr] | None:
    """E[g c^T]-type moments of the per-sample gradient of ``spec`` in matrix form.

    Parameters
    ----------
    spec : ModelSpec
        The model; ``norms="exact"`` has no closed form (None is returned).

    Returns
    -------
    dict of str -> sympy.MatrixExpr, or None
        ``{"online": E[(dL/da) y^T], "target": E[(dL/db) y^T]}`` in ``MOMENT_SYMBOLS`` (the
        leg y enters through X_a, X_b) and the scalars E_A = tr S_aa, E_B = tr S_ab,
        E_C = tr S_bb and the parameters N_psi, N_phi; None for the exact quadrature.

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec.
    ValueError
        ``norms="expansion"`` (an eigenmode closure), or a loss whose gradient coefficients are
        not polynomial after the norm treatment.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    if spec.norms == "expansion":
        raise ValueError("the 1/K expansion (norms='expansion') is an eigenmode closure; the matrix flow takes "
                         "norms='exact' (the exact expectation), 'self-consistent', 'frozen' or a polynomial loss")
    if spec.involves_norms and spec.norms == "exact":
        return None
    L = spec.loss_expr
    subs = {}
    if spec.involves_norms:
        if spec.norms == "frozen":
            subs = {A: sp.Symbol("N_psi", positive=True) ** 2, C: sp.Symbol("N_phi", positive=True) ** 2}
        else:
            subs = {A: _EA, C: _EC}
        if spec.moments == "leading":
            subs[B] = _EB

    def moment(coefficient: sp.Expr, leg: str) -> sp.MatrixExpr:
        expr = sp.expand(coefficient.subs(subs, simultaneous=True))
        if not expr.is_polynomial(A, B, C):
            raise ValueError(f"the gradient coefficient {coefficient} of {spec.label} is not polynomial in A, B, C "
                             "after the norm treatment; the matrix flow cannot take its expectation in closed form")
        total = None
        for powers, coeff in sp.Poly(expr, A, B, C).terms():
            term = coeff * wick_matrix_moment(tuple(powers), leg)
            total = term if total is None else total + term
        return total if total is not None else sp.ZeroMatrix(*MOMENT_SYMBOLS["X_a"].shape)

    def combined(c_a: sp.Expr, c_b: sp.Expr) -> sp.MatrixExpr:
        parts = [moment(c, leg) for c, leg in ((c_a, "a"), (c_b, "b")) if sp.simplify(c) != 0]
        return sp.MatAdd(*parts).doit() if parts else sp.ZeroMatrix(*MOMENT_SYMBOLS["X_a"].shape)

    La, Lb, Lc = (sp.diff(L, v) for v in (A, B, C))
    return {"online": combined(2 * La, Lb), "target": combined(Lb, 2 * Lc)}


@dataclass(frozen=True)
class MatrixFlowSystem(DynamicalSystem):
    """The expected gradient flow of the weight matrices of ``spec`` (see the module docstring).

    Parameters
    ----------
    spec : ModelSpec
        The model: any loss, predictor, target, stop-gradient, views and data of the model
        space; norms "frozen", "self-consistent" or "exact" (not the 1/K expansion).
    h : int
        The width (rows of Phi), at least 1.
    d : int, optional
        The input dimension (columns of Phi), default h.
    quadrature : mapping, optional
        Overrides of the exact quadrature's grids (keys of ``MATRIX_QUADRATURE``).

    Attributes
    ----------
    state_layout
        ("Psi", (h, h)) for a learned predictor, ("Phi", (h, d)), and ("Phi_a", (h, d)) for an
        EMA target; ``unpack``/``pack`` convert to and from the weights.

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec.
    ValueError
        A bad width or input dimension, unknown quadrature keys, or a model without a matrix
        flow (see ``matrix_gradient_moments``).
    """

    spec: ModelSpec
    h: int
    d: int | None = None
    quadrature: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ModelSpec):
            raise TypeError(f"spec must be a derivations.ModelSpec; got {type(self.spec).__name__}")
        for name in ("h", "d"):
            v = getattr(self, name)
            if v is None and name == "d":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.d is None:
            object.__setattr__(self, "d", self.h)
        if self.quadrature is not None:
            quad = dict(self.quadrature)
            unknown = set(quad) - set(MATRIX_QUADRATURE)
            if unknown:
                raise ValueError(f"quadrature keys must be among {sorted(MATRIX_QUADRATURE)}; got {sorted(unknown)}")
            object.__setattr__(self, "quadrature", FrozenMap(quad) if quad else None)
        matrix_gradient_moments(self.spec)  # raises for a model without a matrix flow

    # -- identity and layout ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's label and the shapes."""
        return f"{self.spec.label}, matrix flow h={self.h}, d={self.d}"

    @property
    def weight_names(self) -> tuple[str, ...]:
        """The trained weights, in layout order ("Psi", "Phi", "Phi_a" as the model has them)."""
        names = ("Psi",) if self.spec.predictor == "learned" else ()
        names += ("Phi",)
        return names + (("Phi_a",) if self.spec.target == "ema" else ())

    @property
    def state_layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """One group per weight matrix, in C order."""
        shapes = {"Psi": (self.h, self.h), "Phi": (self.h, self.d), "Phi_a": (self.h, self.d)}
        return tuple((n, shapes[n]) for n in self.weight_names)

    @property
    def state_domain(self) -> Mapping:
        """Every weight is real (no bounds)."""
        return FrozenMap({})

    @property
    def collapse(self) -> tuple[str, ...]:
        """The online branch vanishing: Psi and Phi (learned predictor), else Phi."""
        return tuple(n for n in ("Psi", "Phi") if n in self.weight_names)

    @cached_property
    def symmetry(self) -> Symmetry:
        """The orthogonal group of the model: Q in O(h) on the features (Psi -> Q Psi Q^T,
        Phi -> Q Phi, Phi_a -> Q Phi_a) and R in O(d) on the inputs (Phi -> Phi R^T,
        Phi_a -> Phi_a R^T) where R keeps the data covariance (all of O(d) for isotropic data;
        rotations among inputs of equal variance for a data spectrum). The flow commutes with
        both, so equilibria come in orbits. Invariants: the sorted eigenvalues of F = Phi Phi^T,
        of Phi diag(lambda) Phi^T, of the symmetrised predictor, of Psi^T Psi and of
        Phi_a Phi_a^T, and tr(Psi F), tr(Phi_a Phi^T)."""
        return Symmetry(_generators(self), f"O({self.h}) on the features x the input rotations that keep the data "
                        "covariance", _invariants(self))

    # -- parameters --------------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """sigma2, eta and the model's own (``network_params``), lambda for a data spectrum,
        N_psi and N_phi for frozen norms."""
        names = network_params(self.spec)
        if self.spec.data == "spectrum":
            names += ("lambda",)
        if self.spec.involves_norms and self.spec.norms == "frozen":
            names += ("N_psi", "N_phi")
        return names

    @property
    def param_domain(self) -> Mapping:
        """The intervals of the eigenmode systems' parameters."""
        return FrozenMap({n: _DOMAINS[n] for n in self.param_names})

    @property
    def param_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """lambda has shape (d,) (the data variances in the data basis); the rest are scalars."""
        return FrozenMap({n: ((self.d,) if n == "lambda" else ()) for n in self.param_names})

    # -- the equations ---------------------------------------------------------------------------------
    @cached_property
    def moments(self) -> dict[str, sp.MatrixExpr] | None:
        """``matrix_gradient_moments(spec)``: E[(dL/da) y^T] and E[(dL/db) y^T] in matrix form
        (None for the exact quadrature)."""
        return matrix_gradient_moments(self.spec)

    @cached_property
    def equations(self) -> dict[str, sp.MatrixExpr]:
        """The flow in matrix form, for display: ``{weight: d(weight)/dt}`` in the MatrixSymbols
        Psi, Phi, Phi_a, W_P (DirectPred: F^alpha with F = Phi Phi^T, plus eps I), the
        view-covariance blocks S11, S12, S22 (S21 = S12^T) and, where
        the expectation has no closed form (``norms="exact"``), G = E[(dL/da) x1^T] and
        G_2 = E[(dL/db) x2^T] by quadrature."""
        h, d = self.h, self.d
        Phi = sp.MatrixSymbol("Phi", h, d)
        Psi = sp.MatrixSymbol("Psi", h, h)
        Phi_t = sp.MatrixSymbol("Phi_a", h, d) if self.spec.target == "ema" else Phi
        S11, S12, S22 = (sp.MatrixSymbol(n, d, d) for n in ("S11", "S12", "S22"))
        W = {"learned": Psi, "none": sp.Identity(h)}.get(self.spec.predictor, sp.MatrixSymbol("W_P", h, h))
        P = W * Phi
        cov = {"S_aa": P * S11 * P.T, "S_ab": P * S12 * Phi_t.T, "S_bb": Phi_t * S22 * Phi_t.T}
        traces = {_EA: sp.Trace(cov["S_aa"]), _EB: sp.Trace(cov["S_ab"]), _EC: sp.Trace(cov["S_bb"])}

        def concrete(expr, X_a, X_b):
            values = dict(cov, X_a=X_a, X_b=X_b)
            return expr.xreplace({MOMENT_SYMBOLS[k]: v for k, v in values.items()}).xreplace(traces)

        m = self.moments
        G = concrete(m["online"], P * S11, Phi_t * S12.T) if m else sp.MatrixSymbol("G", h, d)
        eta = sp.Symbol("eta")
        out = {}
        if "Psi" in self.weight_names:
            out["Psi"] = -sp.Symbol("alpha_p") * G * Phi.T - eta * Psi
        dPhi = (-G if self.spec.isoloss else -W.T * G) - eta * Phi
        if not self.spec.stop_gradient:
            G2 = concrete(m["target"], P * S12, Phi_t * S22) if m else sp.MatrixSymbol("G_2", h, d)
            dPhi = dPhi - G2
        out["Phi"] = dPhi
        if self.spec.target == "ema":
            out["Phi_a"] = sp.Symbol("beta") * (Phi - Phi_t)
        return {k: sp.simplify(v) if v.is_Matrix else v for k, v in out.items()}

    # -- code ----------------------------------------------------------------------------------------
    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params)`` on flat states (..., n_states) (batch axes of y and of the
        parameters broadcast), JAX (jit, vmap, grad; float64).

        Parameters
        ----------
        checked : bool
            Validate concrete inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning dy/dt with y's batch shape.
        """
        return _matrix_function(self, checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """The same as ``to_jax``, returning NumPy arrays (compiled once).

        Parameters
        ----------
        checked : bool
            Validate the inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning dy/dt as a float64 ndarray.
        """
        from ._exact import numpy_of_jax

        return numpy_of_jax(self, _matrix_function(self, False), _matrix_function(self, checked).__doc__, checked)

    def weights(self, y: ArrayLike) -> dict[str, np.ndarray]:
        """The weight matrices of a flat state (``unpack``), keyed by weight name.

        Parameters
        ----------
        y : array_like
            Flat states (..., n_states).

        Returns
        -------
        dict of str -> numpy.ndarray
            "Psi", "Phi", "Phi_a" as the model has them, with y's batch axes.
        """
        return self.unpack(y)

    def __repr__(self) -> str:
        return f"MatrixFlowSystem({self.spec.label}, h={self.h}, d={self.d}, params={self.param_names})"


def _split(system: MatrixFlowSystem, y):
    """The weights of flat states (..., n_states) as views, JAX-traceable (``unpack`` is NumPy)."""
    w, start = {}, 0
    for name, shape in system.state_layout:
        size = int(np.prod(shape))
        w[name] = y[..., start:start + size].reshape(y.shape[:-1] + shape)
        start += size
    return w


def _antisymmetric_basis(n: int) -> np.ndarray:
    pairs = [(k, l) for k in range(n) for l in range(k + 1, n)]
    basis = np.zeros((len(pairs), n, n))
    for m, (k, l) in enumerate(pairs):
        basis[m, k, l], basis[m, l, k] = 1.0, -1.0
    return basis


def _generators(system: MatrixFlowSystem):
    import jax.numpy as jnp

    h, d = system.h, system.d
    feat, inp = _antisymmetric_basis(h), _antisymmetric_basis(d)
    pairs = [(k, l) for k in range(d) for l in range(k + 1, d)]
    ks, ls = np.array([p[0] for p in pairs], dtype=int), np.array([p[1] for p in pairs], dtype=int)

    def generators(y, params):
        y = jnp.asarray(y, dtype=jnp.float64)
        lam = jnp.asarray(params["lambda"], dtype=jnp.float64) if "lambda" in params else jnp.ones(d)
        y = jnp.broadcast_to(y, jnp.broadcast_shapes(y.shape[:-1], lam.shape[:-1]) + y.shape[-1:])
        w = _split(system, y)
        rows = []
        for O in feat:
            rows.append(jnp.concatenate([(O @ w[n] - w[n] @ O if n == "Psi" else O @ w[n]).reshape(y.shape[:-1] + (-1,))
                                         for n in system.weight_names], axis=-1))
        scale = jnp.max(jnp.abs(lam), axis=-1, keepdims=True)
        keep = (jnp.abs(lam[..., ks] - lam[..., ls]) <= 1e-12 * scale) if len(pairs) else jnp.zeros(0)
        keep = jnp.broadcast_to(keep, y.shape[:-1] + keep.shape[-1:])
        for m, O in enumerate(inp):
            part = [(jnp.zeros_like(w[n]) if n == "Psi" else w[n] @ O.T).reshape(y.shape[:-1] + (-1,))
                    for n in system.weight_names]
            rows.append(jnp.concatenate(part, axis=-1) * keep[..., m, None])
        return jnp.stack(rows, axis=-2)

    return generators


def _invariants(system: MatrixFlowSystem):
    import jax.numpy as jnp

    d = system.d

    def invariants(y, params):
        w = _split(system, jnp.asarray(y, dtype=jnp.float64))
        Phi = w["Phi"]
        T = lambda M: jnp.swapaxes(M, -1, -2)  # noqa: E731
        lam = jnp.asarray(params["lambda"], dtype=jnp.float64) if "lambda" in params else jnp.ones(d)
        F = Phi @ T(Phi)
        out = [jnp.linalg.eigvalsh(F), jnp.linalg.eigvalsh((Phi * lam[..., None, :]) @ T(Phi))]
        if "Psi" in w:
            Psi = w["Psi"]
            out += [jnp.linalg.eigvalsh(0.5 * (Psi + T(Psi))), jnp.linalg.eigvalsh(T(Psi) @ Psi),
                    jnp.trace(Psi @ F, axis1=-2, axis2=-1)[..., None]]
        if "Phi_a" in w:
            Pa = w["Phi_a"]
            out += [jnp.linalg.eigvalsh(Pa @ T(Pa)), jnp.trace(Pa @ T(Phi), axis1=-2, axis2=-1)[..., None]]
        return jnp.concatenate(out, axis=-1)

    return invariants


def spectral_power(F, alpha, *, normalize: bool = False):
    """U diag(max(lambda, 0)^alpha) U^T for symmetric F (over the largest eigenvalue when
    ``normalize``), differentiable at repeated eigenvalues (Daleckii-Krein: the derivative in
    the eigenbasis is the divided difference of the power, its derivative where eigenvalues
    coincide), which ``jnp.linalg.eigh``'s own derivative is not.

    Parameters
    ----------
    F : jax.Array
        A symmetric (h, h) matrix (its symmetric part is used).
    alpha : float or jax.Array
        The power (> 0).
    normalize : bool
        Divide F by its largest eigenvalue first (DirectPred's normalisation).

    Returns
    -------
    jax.Array
        (h, h): F^alpha on the non-negative part of F's spectrum.
    """
    import jax
    import jax.numpy as jnp

    @jax.custom_jvp
    def power(M, a):
        lam, U = jnp.linalg.eigh(0.5 * (M + M.T))
        return (U * jnp.clip(lam, 0.0, None) ** a) @ U.T

    @power.defjvp
    def _power_jvp(primals, tangents):
        M, a = primals
        dM, da = tangents
        lam, U = jnp.linalg.eigh(0.5 * (M + M.T))
        lam = jnp.clip(lam, 0.0, None)
        f = lam**a
        at_zero = jnp.where(a > 1, 0.0, jnp.where(a == 1, 1.0, jnp.inf))
        fprime = jnp.where(lam > 0, a * jnp.where(lam > 0, lam, 1.0) ** (a - 1), at_zero)
        gap = lam[:, None] - lam[None, :]
        close = jnp.abs(gap) <= 1e-12 * jnp.maximum(1.0, jnp.max(jnp.abs(lam)))
        # on F's null space the derivative is taken as 0: the flow uses W_P through W_P Phi and
        # W_P^T G, which vanish there (F^alpha itself is not differentiable there for alpha < 1)
        null = (lam[:, None] <= 0) & (lam[None, :] <= 0)
        slope = jnp.where(lam > 0, fprime, 0.0)
        divided = jnp.where(close, 0.5 * (slope[:, None] + slope[None, :]),
                            (f[:, None] - f[None, :]) / jnp.where(close, 1.0, gap))
        divided = jnp.where(null, 0.0, divided)
        inner = U.T @ (0.5 * (dM + dM.T)) @ U
        dlog = jnp.where(lam > 0, jnp.log(jnp.where(lam > 0, lam, 1.0)), 0.0)
        out = U @ (divided * inner) @ U.T + (U * (f * dlog * da)) @ U.T
        return (U * f) @ U.T, out

    if normalize:
        F = F / jnp.max(jnp.linalg.eigvalsh(0.5 * (F + F.T)))
    return power(F, jnp.asarray(alpha, dtype=jnp.float64))


@lru_cache(maxsize=64)
def _matrix_function(system: MatrixFlowSystem, checked: bool):
    import jax
    import jax.numpy as jnp

    from ._truth import view_covariance
    from .codegen import state_array

    spec, h, d = system.spec, system.h, system.d
    moments = system.moments
    quad = dict(MATRIX_QUADRATURE)
    quad.update(dict(system.quadrature or {}))
    names = system.param_names
    shapes = system.param_shapes
    n = system.n_states
    layout = system.state_layout
    ema = spec.target == "ema"

    def gradient_moment(which, S_aa, S_ab, S_bb, X_a, X_b, prm):
        if moments is None:
            if which == "online":
                return cosine_gradient_moment(S_aa, S_ab, S_bb, X_a, X_b, quad)
            return cosine_gradient_moment(S_bb, S_ab.T, S_aa, X_b, X_a, quad)
        values = dict(prm, S_aa=S_aa, S_ab=S_ab, S_bb=S_bb, X_a=X_a, X_b=X_b,
                      E_A=jnp.trace(S_aa), E_B=jnp.trace(S_ab), E_C=jnp.trace(S_bb))
        return evaluate(moments[which], values) * jnp.ones((h, d))

    def single(y, prm):
        w = _split(system, y)
        Phi = w["Phi"]
        Phi_t = w["Phi_a"] if ema else Phi
        if spec.predictor == "learned":
            W = w["Psi"]
        elif spec.predictor == "none":
            W = jnp.eye(h)
        else:
            W = spectral_power(Phi @ Phi.T, prm["alpha"], normalize=spec.normalize)
            if spec.eps:
                W = W + prm["eps"] * jnp.eye(h)
        lam = prm["lambda"] if "lambda" in prm else jnp.ones(d)
        cov = view_covariance(spec, lam, prm)
        S11, S12, S22 = cov[:d, :d], cov[:d, d:], cov[d:, d:]
        P = W @ Phi
        S_aa, S_ab, S_bb = P @ S11 @ P.T, P @ S12 @ Phi_t.T, Phi_t @ S22 @ Phi_t.T
        G = gradient_moment("online", S_aa, S_ab, S_bb, P @ S11, Phi_t @ S12.T, prm)
        eta = prm["eta"]
        out = {}
        if "Psi" in w:
            out["Psi"] = -prm["alpha_p"] * G @ Phi.T - eta * w["Psi"]
        dPhi = (-G if spec.isoloss else -W.T @ G) - eta * Phi
        if not spec.stop_gradient:
            # after G (a data dependency): the exact moments' eigendecompositions run one at a time
            tie = 0.0 * jnp.sum(jnp.where(jnp.isfinite(G), G, 0.0))
            dPhi = dPhi - gradient_moment("target", S_aa + tie, S_ab, S_bb, P @ S12, Phi_t @ S22, prm)
        out["Phi"] = dPhi
        if ema:
            out["Phi_a"] = prm["beta"] * (Phi - w["Phi_a"])
        return jnp.concatenate([out[name].reshape(-1) for name, _ in layout])

    batched = jax.vmap(single)

    def f(t, y, params):
        if checked:
            y = state_array(y, n, system.state_names, "jax")
            params = system.check_params(params, batch=True)
        y = jnp.asarray(y, dtype=jnp.float64)
        prm = {k: jnp.asarray(float(params[k]) if isinstance(params[k], sp.Basic) else params[k], dtype=jnp.float64)
               for k in names}
        batch = jnp.broadcast_shapes(y.shape[:-1], *(v.shape[:v.ndim - len(shapes[k])] for k, v in prm.items()))
        if not batch:
            return single(y, prm)
        flat_y = jnp.broadcast_to(y, batch + (n,)).reshape(-1, n)
        flat_p = {k: jnp.broadcast_to(v, batch + shapes[k]).reshape((-1,) + shapes[k]) for k, v in prm.items()}
        return batched(flat_y, flat_p).reshape(batch + (n,))

    f.__doc__ = f"expected matrix flow of {spec.label} (h={h}, d={d}); params: {', '.join(names)}."
    return f
