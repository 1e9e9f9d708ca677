"""classify(system, params, x): linear stability, and higher order where linear says nothing.

Hyperbolic points are labelled by eigenvalue counts (tolerance scaled by ||J||, never an exact
``== 0``): stable/unstable node (real eigenvalues), stable/unstable focus (a complex pair),
saddle (``index`` = number of unstable directions).

Non-hyperbolic points with one zero eigenvalue are decided by the flow on the centre manifold:
in one dimension the first non-zero Taylor coefficient a_k of f at x*; in higher dimension a
series centre manifold z = h(u) = sum_k c_k u^k solved order by order from the invariance
equation h'(u) du/dt = dz/dt, then du/dt = a_k u^k + ... on it. Odd k: stable iff a_k < 0 (and
no unstable direction). Even k: semi-stable (attracting from one side), which is stable when
the domain boundary (s >= 0) leaves only the attracting side. Other degenerate cases (two or
more zero or imaginary eigenvalues, points on a curve of equilibria) return stable=None with
the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from derivations import EigenmodeSystem
from derivations._codegen import lambdified

__all__ = ["classify", "Classification", "jacobian_at"]

CENTRE_ORDER = 7
"""Highest order of the centre-manifold and Taylor expansions."""


@dataclass(frozen=True)
class Classification:
    """See ``classify``. centre_flow: (k, a_k) of du/dt = a_k u^k + ... on the centre manifold,
    u the coordinate along the unit null vector of J (its sign is a convention), or None."""

    jacobian: np.ndarray
    eigenvalues: np.ndarray
    kind: str
    stable: bool | None
    hyperbolic: bool
    index: int
    reason: str
    centre_flow: tuple[int, float] | None = None


def jacobian_at(system, params: dict, x: np.ndarray) -> np.ndarray:
    """Numeric Jacobian d f / d y at x (symbolic for one-mode systems, autodiff for K modes)."""
    if isinstance(system, EigenmodeSystem):
        g = _jacobian_function(system)
        vals = g(*x, *[params[n] for n in system.param_names])
        n = len(system.states)
        return np.array(vals, dtype=float).reshape(n, n)
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)
    P = {k: jnp.asarray(v) for k, v in params.items()}
    return np.asarray(jax.jacfwd(lambda y: f(0.0, y, P))(jnp.asarray(x, dtype=float)))


@lru_cache(maxsize=128)
def _jacobian_function(system: EigenmodeSystem):
    rows = tuple(system.jacobian)
    raw = lambdified(system.states + system.params, rows, "numpy")

    def g(*args):
        return [np.broadcast_to(np.asarray(v, dtype=float), ()) for v in raw(*args)]

    return g


def classify(system, params: dict, x: np.ndarray, *, bounds: dict | None = None, on_curve: bool = False) -> Classification:
    """Classify the equilibrium x of ``system`` at ``params`` (see the module docstring)."""
    bounds = bounds or {}
    J = jacobian_at(system, params, np.asarray(x, dtype=float))
    ev = np.linalg.eigvals(J)
    n = len(ev)
    tol = 1e-8 * max(1.0, float(np.linalg.norm(J)))
    n_pos = int(np.sum(ev.real > tol))
    n_neg = int(np.sum(ev.real < -tol))
    n_zero = n - n_pos - n_neg
    oscillating = bool(np.any(np.abs(ev.imag) > tol))

    if n_zero == 0:
        if n_pos == 0:
            kind = "stable focus" if oscillating else "stable node"
            return Classification(J, ev, kind, True, True, 0, "all eigenvalues have negative real part")
        if n_neg == 0:
            kind = "unstable focus" if oscillating else "unstable node"
            return Classification(J, ev, kind, False, True, n_pos, "all eigenvalues have positive real part")
        return Classification(J, ev, "saddle", False, True, n_pos, f"{n_pos} unstable, {n_neg} stable directions")

    if n_pos:
        return Classification(J, ev, "non-hyperbolic saddle", False, False, n_pos,
                              f"{n_pos} eigenvalue(s) with positive real part: unstable whatever the centre directions do")
    if on_curve:
        return Classification(J, ev, "non-isolated", None, False, 0,
                              "lies on a curve of equilibria: neutral along the curve "
                              f"({n_neg} transversal direction(s) attracting)")
    zero_ev = ev[np.abs(ev.real) <= tol]
    if n_zero > 1 or np.any(np.abs(zero_ev.imag) > tol):
        return Classification(J, ev, "non-hyperbolic (undecided)", None, False, 0,
                              f"{n_zero} eigenvalues on the imaginary axis: a centre manifold of dimension {n_zero} "
                              "(e.g. Bogdanov-Takens or Hopf) is not analysed")
    if not isinstance(system, EigenmodeSystem):
        return Classification(J, ev, "non-hyperbolic (undecided)", None, False, 0,
                              "one zero eigenvalue; centre-manifold reduction is implemented for one-mode systems")
    order, coeff, v0 = _centre_flow(system, params, np.asarray(x, dtype=float), J)
    if order is None:
        return Classification(J, ev, "non-hyperbolic (undecided)", None, False, 0,
                              f"the flow on the centre manifold vanishes to order {CENTRE_ORDER}")
    where = "Taylor expansion" if n == 1 else "centre-manifold flow"
    if order % 2 == 1:
        stable = coeff < 0
        kind = "non-hyperbolic stable node" if stable else "non-hyperbolic unstable node"
        return Classification(J, ev, kind, stable, False, 0 if stable else 1,
                              f"{where}: du/dt = {coeff:.6g} u^{order} + ...", (order, coeff))
    # even order: attracting from the side u * coeff < 0
    side = -np.sign(coeff)  # the attracting side of u
    allowed = _allowed_side(x, v0, bounds)
    if allowed == side:
        return Classification(J, ev, "non-hyperbolic stable node (boundary)", True, False, 0,
                              f"{where}: du/dt = {coeff:.6g} u^{order} + ...: semi-stable, and the domain "
                              "boundary leaves only the attracting side", (order, coeff))
    return Classification(J, ev, "semi-stable", False, False, 0,
                          f"{where}: du/dt = {coeff:.6g} u^{order} + ...: attracting from one side only",
                          (order, coeff))


def _allowed_side(x: np.ndarray, v0: np.ndarray, bounds: dict) -> float:
    """+1/-1 if the domain leaves only that side of u along v0 at x; 0 if both sides."""
    for i, (lo, hi) in bounds.items():
        if abs(v0[i]) < 1e-10:
            continue
        if np.isfinite(lo) and abs(x[i] - lo) <= 1e-12 * max(1.0, abs(lo)):
            return float(np.sign(v0[i]))
        if np.isfinite(hi) and abs(x[i] - hi) <= 1e-12 * max(1.0, abs(hi)):
            return float(-np.sign(v0[i]))
    return 0.0


class _Series:
    """A power series in u truncated at CENTRE_ORDER (coefficient array), for evaluating the
    right-hand side along a curve x(u) with exact polynomial arithmetic in floats."""

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = np.asarray(c, dtype=float)

    @staticmethod
    def _of(other):
        if isinstance(other, _Series):
            return other.c
        out = np.zeros(CENTRE_ORDER + 1)
        out[0] = float(other)
        return out

    def __add__(self, other):
        return _Series(self.c + self._of(other))

    __radd__ = __add__

    def __sub__(self, other):
        return _Series(self.c - self._of(other))

    def __rsub__(self, other):
        return _Series(self._of(other) - self.c)

    def __neg__(self):
        return _Series(-self.c)

    def __mul__(self, other):
        if not isinstance(other, _Series):
            return _Series(self.c * float(other))
        return _Series(np.convolve(self.c, other.c)[: CENTRE_ORDER + 1])

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, _Series):
            raise TypeError("division by a series is not needed for polynomial right-hand sides")
        return _Series(self.c / float(other))

    def __pow__(self, k):
        if int(k) != k or k < 0:
            raise TypeError("only non-negative integer powers of a series")
        out = _Series(self._of(1.0))
        for _ in range(int(k)):
            out = out * self
        return out


@lru_cache(maxsize=128)
def _polynomial_rhs(system: EigenmodeSystem, params: tuple):
    """The rhs with numeric params, as a function that accepts _Series (polynomial in states)."""
    sub = {system.symbols[k]: v for k, v in params}
    rows = [sp.expand(r.xreplace(sub)) for r in system.rhs]
    return sp.lambdify(system.states, rows, modules=[{}, "math"])


def _centre_flow(system: EigenmodeSystem, params: dict, x: np.ndarray, J: np.ndarray):
    """(k, a_k, v0): the flow on the 1-D centre manifold du/dt = a_k u^k + ..., along v0.

    The centre manifold z = h(u) = sum_{k>=2} h_k u^k is solved order by order: du/dt = O(u^2),
    so the order-k invariance equation h'(u) du/dt = dz/dt contains h_k only through Lambda_w h_k
    and h_k = Lambda_w^{-1} r_k, with r_k computed from the lower orders.
    """
    n = len(x)
    F = _polynomial_rhs(system, tuple(sorted(params.items())))
    scale = max(1.0, float(np.max(np.abs(J))))
    unit = np.zeros(CENTRE_ORDER + 1)
    unit[1] = 1.0
    if n == 1:
        series = F(_Series(unit) + float(x[0]))[0]
        return _first_nonzero(series.c, scale) + (np.array([1.0]),)

    U, S, Vt = np.linalg.svd(J)
    v0 = Vt[-1]
    w0 = U[:, -1] / (U[:, -1] @ v0)
    B = U[:, :-1]  # orthonormal basis of range(J): invariant, complementary to ker J
    P = B.T @ (np.eye(n) - np.outer(v0, w0))
    lam_w = P @ J @ B
    h = np.zeros((n - 1, CENTRE_ORDER + 1))

    def flows(h):
        z = [_Series(h[j]) for j in range(n - 1)]
        point = [float(x[i]) + v0[i] * _Series(unit) + sum((B[i, j] * z[j] for j in range(n - 1)), _Series(np.zeros(CENTRE_ORDER + 1)))
                 for i in range(n)]
        Fx = F(*point)
        udot = sum((w0[i] * Fx[i] for i in range(n)), _Series(np.zeros(CENTRE_ORDER + 1)))
        zdot = [sum((P[j, i] * Fx[i] for i in range(n)), _Series(np.zeros(CENTRE_ORDER + 1))) for j in range(n - 1)]
        return udot, zdot

    for k in range(2, CENTRE_ORDER + 1):
        udot, zdot = flows(h)
        r = np.empty(n - 1)
        for j in range(n - 1):
            dh = np.zeros(CENTRE_ORDER + 1)
            dh[:-1] = h[j, 1:] * np.arange(1, CENTRE_ORDER + 1)
            r[j] = (_Series(dh) * udot - zdot[j]).c[k]
        h[:, k] = np.linalg.solve(lam_w, r)
    udot, _ = flows(h)
    return _first_nonzero(udot.c, scale) + (v0,)


def _first_nonzero(coeffs, scale: float):
    for k, c in enumerate(coeffs):
        if k < 1:
            continue
        if abs(float(c)) > 1e-8 * scale:
            return k, float(c)
    return None, 0.0
