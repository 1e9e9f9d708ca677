"""Equilibria across parameters: batched roots, thresholds, bifurcation branches, regime maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from derivations import EigenmodeSystem
from derivations import symbols as sy
from derivations._codegen import param_values

from ._equilibria import check_model_params, equilibria

__all__ = [
    "roots_batch", "BatchRoots", "threshold", "Threshold", "bifurcation", "Bifurcation", "BifurcationPoint",
    "regimes", "Regimes", "REGIMES", "shrinking_norms", "ShrinkingNorms",
]

REGIMES = ("collapse only", "bistable", "non-collapsed only", "no stable equilibrium")
"""Regime labels of ``regimes``, by the stable equilibria of the reduced mode dp/dt = f(p):
collapse only: p = 0 is the only stable equilibrium; bistable: p = 0 and a non-collapsed one
are both stable; non-collapsed only: p = 0 is unstable and a non-collapsed one is stable;
no stable equilibrium: trajectories leave every neighbourhood (e.g. finite-time blow-up)."""


def _one_state(system: EigenmodeSystem) -> EigenmodeSystem:
    if not isinstance(system, EigenmodeSystem):
        raise TypeError(f"system must be an EigenmodeSystem; got {type(system).__name__}")
    reduced = system.reduce()
    if len(reduced.states) != 1:
        raise ValueError(
            f"this needs a one-state reduced system (dp/dt = f(p)); {system.spec.label} reduces to "
            f"states {reduced.state_names}: use target='simsiam'"
        )
    return reduced


@lru_cache(maxsize=64)
def _coefficient_functions(reduced: EigenmodeSystem):
    """Numerator coefficients of dp/dt in p (highest first) as NumPy functions of the params.
    The denominator is a product of positive parameters, so signs and roots are unchanged."""
    num = sp.numer(sp.together(reduced.rhs[0]))
    poly = sp.Poly(num, sy.p)
    coeffs = poly.all_coeffs()
    return [sp.lambdify(reduced.params, c, "numpy") for c in coeffs], sp.Poly(sp.diff(num, sy.p), sy.p).all_coeffs()


@dataclass(frozen=True)
class BatchRoots:
    """Equilibria of a one-state reduced mode at many parameter points at once.

    roots:   batch_shape + (degree,) complex roots of dp/dt (companion-matrix eigenvalues).
    real:    mask of the real ones (|Im| <= 1e-9 max(1, |root|)).
    slope:   f'(root) (real part); stable: real & slope < 0.
    n_real, n_stable: counts per point. collapsed_stable: p = 0 is a stable root.
    """

    roots: np.ndarray
    real: np.ndarray
    slope: np.ndarray
    stable: np.ndarray
    n_real: np.ndarray
    n_stable: np.ndarray
    collapsed_stable: np.ndarray
    noncollapsed_stable: np.ndarray


def roots_batch(system: EigenmodeSystem, params: Mapping[str, Any]) -> BatchRoots:
    """All roots of the reduced dp/dt = f(p) at every parameter point (params may be arrays
    that broadcast), from batched companion matrices; 10^5 points take a fraction of a second.
    Exact enumeration at one point is ``equilibria``; this is for maps and sweeps."""
    reduced = _one_state(system)
    names = reduced.param_names
    vals = param_values(params, names, "numpy")
    shape = np.broadcast_shapes(*(v.shape for v in vals))
    vals = [np.broadcast_to(v, shape).ravel() for v in vals]
    check_model_params(names, {n: (float(np.min(v)) if n in ("sigma2", "eta", "alpha_p", "beta", "N_psi", "N_phi") else 0.0)
                               for n, v in zip(names, vals)})
    funcs, _ = _coefficient_functions(reduced)
    B = vals[0].size
    C = np.stack([np.broadcast_to(np.asarray(f(*vals), dtype=float), (B,)) for f in funcs], axis=1)  # (B, deg+1)
    deg = C.shape[1] - 1
    roots = np.full((B, deg), np.nan + 0j)
    lead_ok = np.abs(C[:, 0]) > 1e-14 * np.max(np.abs(C), axis=1)
    if lead_ok.any():
        M = np.zeros((int(lead_ok.sum()), deg, deg))
        M[:, 0, :] = -C[lead_ok, 1:] / C[lead_ok, :1]
        M[:, np.arange(1, deg), np.arange(deg - 1)] = 1.0
        roots[lead_ok] = np.linalg.eigvals(M)
    for b in np.flatnonzero(~lead_ok):  # degenerate leading coefficient: fewer roots
        r = np.roots(C[b])
        roots[b, : len(r)] = r
    real = np.isfinite(roots) & (np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots)))
    dC = C[:, :-1] * np.arange(deg, 0, -1)
    x = np.where(real, roots.real, 0.0)
    slope = np.zeros_like(x)
    for k in range(deg):
        slope = slope * x + dC[:, k : k + 1]
    scale = np.max(np.abs(C), axis=1, keepdims=True)
    stable = real & (slope < -1e-12 * scale)
    zero = real & (np.abs(x) <= 1e-9)
    out = BatchRoots(
        roots=roots.reshape(shape + (deg,)),
        real=real.reshape(shape + (deg,)),
        slope=slope.reshape(shape + (deg,)),
        stable=stable.reshape(shape + (deg,)),
        n_real=real.sum(1).reshape(shape),
        n_stable=stable.sum(1).reshape(shape),
        collapsed_stable=(stable & zero).any(1).reshape(shape),
        noncollapsed_stable=(stable & ~zero).any(1).reshape(shape),
    )
    return out


# -- thresholds --------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """Where non-collapsed equilibria of the reduced mode appear or disappear.

    fold:          discriminant condition (= 0) of f(p)/p^m in p: two equilibria merge.
    fold_solutions: that condition solved for ``param`` (when SymPy can).
    transcritical: condition (= 0) for a non-collapsed equilibrium to pass through p = 0.
    transcritical_solutions: solved for ``param``.
    """

    param: sp.Symbol
    fold: sp.Expr
    fold_solutions: tuple[sp.Expr, ...]
    transcritical: sp.Expr
    transcritical_solutions: tuple[sp.Expr, ...]

    def __repr__(self) -> str:
        return (f"Threshold({self.param}: fold at {list(self.fold_solutions) or sp.Eq(self.fold, 0)}, "
                f"transcritical at {list(self.transcritical_solutions) or sp.Eq(self.transcritical, 0)})")


def threshold(system: EigenmodeSystem, param: str) -> Threshold:
    """The symbolic boundary in ``param`` where non-collapsed equilibria appear or disappear.

    On the invariant manifold dp/dt = f(p) = p^m q(p) with q(0) != 0 generically; a fold of
    non-collapsed equilibria is a double root of q (discriminant zero), a transcritical point a
    root of q crossing 0 (q(0) = 0). For EMA systems tau is held as a parameter. Example: the
    Euclidean SimSiam mode gives eta = 1/(4c) (Tian et al.), the EMA mode eta = tau^2/(4c).
    """
    if not isinstance(system, EigenmodeSystem):
        raise TypeError(f"system must be an EigenmodeSystem; got {type(system).__name__}")
    reduced = system.reduce()
    allowed = reduced.param_names + tuple(n for n in reduced.state_names if n != "p")
    if param not in allowed:
        raise ValueError(f"param={param!r} is not a parameter of {system.spec.label}; choose one of {allowed}")
    x = reduced.symbols[param]
    num = sp.factor_terms(sp.numer(sp.together(reduced.rhs[0])))
    q = sp.Poly(num, sy.p)
    m = min(k for (k,), c in q.terms())
    q = sp.Poly(sp.cancel(num / sy.p**m), sy.p)
    disc = sp.factor(sp.discriminant(q.as_expr(), sy.p))
    fold = _relevant_factor(disc, x)
    q0 = sp.factor(q.as_expr().subs(sy.p, 0))
    trans = _relevant_factor(q0, x)
    return Threshold(x, fold, tuple(_solve(fold, x)), trans, tuple(_solve(trans, x)))


_POSITIVE = (sy.N_psi, sy.N_phi, sy.alpha_p, 1 + sy.sigma2)


def _relevant_factor(expr: sp.Expr, x: sp.Symbol) -> sp.Expr:
    """The product of the factors of ``expr`` that involve ``x``, dropping factors that are
    positive on the model's domain (N_psi, N_phi, alpha_p, c = 1 + sigma2): they never vanish.
    1 means the condition cannot be met."""
    _, factors = sp.factor_list(expr)
    keep = [f**k for f, k in factors if f.has(x) and f not in _POSITIVE]
    return sp.Mul(*keep) if keep else sp.Integer(0) if expr == 0 else sp.Integer(1)


def _solve(expr: sp.Expr, x: sp.Symbol) -> list[sp.Expr]:
    if expr in (0, 1):
        return []
    try:  # closed forms only where they are readable; otherwise the condition is the answer
        if sp.Poly(expr, x).degree() > 2:
            return []
        return [sp.simplify(r) for r in sp.solve(expr, x)]
    except (NotImplementedError, sp.PolynomialError):
        return []


# -- bifurcation diagrams ----------------------------------------------------------------


@dataclass(frozen=True)
class BifurcationPoint:
    """kind: "fold" (two equilibria merge), "transcritical" (an equilibrium crosses p = 0 and
    exchanges stability with the collapsed one) or "touch" (an equilibrium touches p = 0
    tangentially and leaves); value: the parameter, refined by bisection; p: where."""

    kind: str
    value: float
    p: float


@dataclass(frozen=True)
class Bifurcation:
    """Equilibria of the reduced mode along ``values`` of ``param``.

    p:      (n_values, n_max) equilibrium positions, NaN-padded where fewer exist (use ``mask``).
    stable: (n_values, n_max) bool. mask: (n_values, n_max) where an equilibrium exists.
    points: folds and transcritical/touch points located between the sampled values.
    """

    param: str
    values: np.ndarray
    p: np.ndarray
    stable: np.ndarray
    mask: np.ndarray
    points: tuple[BifurcationPoint, ...]


def bifurcation(system: EigenmodeSystem, param: str, values: Sequence[float], params: Mapping[str, float],
                *, tol: float = 1e-10) -> Bifurcation:
    """Equilibria of the reduced one-state mode as ``param`` runs over ``values`` (the other
    parameters from ``params``), with folds and transcritical/touch points located by bisection
    to ``tol``. Every sampled value is solved exactly (``equilibria``)."""
    reduced = _one_state(system)
    if param not in reduced.param_names:
        raise ValueError(f"param={param!r} is not a parameter of {system.spec.label}; choose one of {reduced.param_names}")
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
        raise ValueError("values must be a 1-D strictly increasing finite array with at least 2 entries")
    base = {k: v for k, v in params.items() if k != param}
    check_model_params([n for n in reduced.param_names if n != param], base)

    def solve(v):
        return [(e.x[0], bool(e.stable)) for e in equilibria(reduced, {**base, param: float(v)}, domain=None)]

    rows = [solve(v) for v in values]
    n_max = max(len(r) for r in rows)
    P = np.full((len(values), n_max), np.nan)
    S = np.zeros((len(values), n_max), dtype=bool)
    for i, r in enumerate(rows):
        for j, (pv, st) in enumerate(r):
            P[i, j], S[i, j] = pv, st

    def signature(v):
        r = solve(v)
        zero_stable = any(abs(pv) < 1e-9 and st for pv, st in r)
        n_pos = sum(pv > 1e-9 for pv, _ in r)
        n_neg = sum(pv < -1e-9 for pv, _ in r)
        return len(r), zero_stable, n_pos, n_neg

    points = []
    for i in range(len(values) - 1):
        a, b = signature(values[i]), signature(values[i + 1])
        if a == b:
            continue
        lo, hi = values[i], values[i + 1]
        while hi - lo > tol * max(1.0, abs(hi)):
            mid = 0.5 * (lo + hi)
            if signature(mid) == a:
                lo = mid
            else:
                hi = mid
        v = 0.5 * (lo + hi)
        r_lo, r_hi = solve(lo), solve(hi)
        if len(r_lo) != len(r_hi):
            more = r_lo if len(r_lo) > len(r_hi) else r_hi
            fewer = [pv for pv, _ in (r_hi if more is r_lo else r_lo)]
            lost = [pv for pv, _ in more if not any(abs(pv - q) < 1e-6 for q in fewer)]
            if not lost or all(abs(pv) < 1e-4 for pv in lost):
                # a root merged with the collapsed one: it crosses p = 0 here
                points.append(BifurcationPoint("transcritical", float(v), 0.0))
            else:
                points.append(BifurcationPoint("fold", float(v), float(np.mean(lost))))
        else:
            kind = "transcritical" if (a[2] != b[2] or a[3] != b[3]) else "touch"
            points.append(BifurcationPoint(kind, float(v), 0.0))
    return Bifurcation(param, values, P, S, ~np.isnan(P), tuple(points))


# -- regime maps -------------------------------------------------------------------------


@dataclass(frozen=True)
class Regimes:
    """A 2-D map of regimes: codes[j, i] indexes REGIMES at (x_values[i], y_values[j])."""

    x: str
    y: str
    x_values: np.ndarray
    y_values: np.ndarray
    codes: np.ndarray
    names: tuple[str, ...] = REGIMES

    def label(self, i: int, j: int) -> str:
        return self.names[self.codes[j, i]]

    def fractions(self) -> dict[str, float]:
        return {n: float(np.mean(self.codes == k)) for k, n in enumerate(self.names)}


def regimes(system: EigenmodeSystem, x: tuple[str, Sequence[float]], y: tuple[str, Sequence[float]],
            params: Mapping[str, float]) -> Regimes:
    """Label every (x, y) parameter point by its equilibrium structure (see REGIMES), using
    the batched roots of the reduced mode. ``x`` and ``y`` are (parameter name, values).

    The axis name "scale" (cosine only) is the network's scale lambda under weight decay:
    N_psi -> lambda^2 N_psi, N_phi -> lambda N_phi, T -> lambda^3 T with the values in
    ``params`` at lambda = 1 (see ``shrinking_norms``)."""
    reduced = _one_state(system)
    (xn, xv), (yn, yv) = x, y
    allowed = reduced.param_names + (("scale",) if system.spec.loss == "cosine" else ())
    for n in (xn, yn):
        if n not in allowed:
            raise ValueError(f"{n!r} is not a parameter of {system.spec.label}; choose from {allowed}")
    if xn == yn:
        raise ValueError("x and y must name different parameters")
    xv, yv = np.asarray(xv, dtype=float), np.asarray(yv, dtype=float)
    if xv.ndim != 1 or yv.ndim != 1 or xv.size == 0 or yv.size == 0:
        raise ValueError("x and y values must be non-empty 1-D arrays")
    grid = {k: v for k, v in params.items() if k not in (xn, yn)}
    X, Y = np.meshgrid(xv, yv)
    grid[xn], grid[yn] = X, Y
    if "scale" in grid:
        lam = grid.pop("scale")
        if np.any(lam <= 0):
            raise ValueError("scale values must be > 0")
        grid["N_psi"] = grid["N_psi"] * lam**2
        grid["N_phi"] = grid["N_phi"] * lam
        grid["T"] = grid["T"] * lam**3
    r = roots_batch(reduced, grid)
    codes = np.full(X.shape, 3)
    codes[r.collapsed_stable & ~r.noncollapsed_stable] = 0
    codes[r.collapsed_stable & r.noncollapsed_stable] = 1
    codes[~r.collapsed_stable & r.noncollapsed_stable] = 2
    return Regimes(xn, yn, xv, yv, codes)


# -- the regime as weight decay shrinks the network ---------------------------------------


@dataclass(frozen=True)
class ShrinkingNorms:
    """Regimes of the cosine mode along the weight-decay path of the network's scale.

    t:          times; scale: lambda(t) = exp(-eta t).
    codes:      index into REGIMES at each time.
    p_stable:   the largest stable non-collapsed equilibrium in the rescaled variable p / lambda
                (NaN where there is none; ``has_stable`` says where there is).
    t_emerge:   first time a stable non-collapsed equilibrium exists (bisection), None if never
                within ``t``; 0.0 if it exists from the start.
    """

    t: np.ndarray
    scale: np.ndarray
    codes: np.ndarray
    p_stable: np.ndarray
    has_stable: np.ndarray
    t_emerge: float | None
    names: tuple[str, ...] = REGIMES


def shrinking_norms(system: EigenmodeSystem, params: Mapping[str, float], t: Sequence[float]) -> ShrinkingNorms:
    """How the regime of the cosine SimSiam mode moves as weight decay shrinks the network.

    The true cosine loss is scale invariant, so weight decay shrinks the network uniformly:
    lambda = exp(-eta t), p ~ lambda, s ~ lambda^2, hence N_psi ~ lambda^2, N_phi ~ lambda and
    T = sum p s ~ lambda^3 (``params`` gives their values at t = 0). In p / lambda the reduced
    mode's equilibria are those of the t = 0 mode with eta replaced by eta lambda^2: the
    effective regularisation weakens, and once eta lambda^2 falls below the fold a stable
    non-collapsed equilibrium exists (Bao 2023: "a stable equilibrium dynamically emerges").
    """
    reduced = _one_state(system)
    if system.spec.loss != "cosine":
        raise ValueError("shrinking_norms is about the scale-invariant cosine loss; got the Euclidean loss")
    prm = check_model_params(reduced.param_names, params)
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError("t must be a non-empty, finite, strictly increasing 1-D array")

    def at(times):
        lam = np.exp(-prm["eta"] * np.asarray(times))
        grid = dict(prm, N_psi=prm["N_psi"] * lam**2, N_phi=prm["N_phi"] * lam, T=prm["T"] * lam**3)
        grid = {k: np.broadcast_to(v, lam.shape) for k, v in grid.items()}
        return lam, roots_batch(reduced, grid)

    lam, r = at(t)
    codes = np.full(t.shape, 3)
    codes[r.collapsed_stable & ~r.noncollapsed_stable] = 0
    codes[r.collapsed_stable & r.noncollapsed_stable] = 1
    codes[~r.collapsed_stable & r.noncollapsed_stable] = 2
    zero = np.abs(r.roots.real) <= 1e-9
    cand = np.where(r.stable & ~zero, r.roots.real, -np.inf)
    best = cand.max(axis=-1)
    has = np.isfinite(best)
    p_hat = np.where(has, best / lam, np.nan)
    t_emerge = None
    if has.any():
        k = int(np.argmax(has))
        if k == 0:
            t_emerge = float(t[0])
        else:
            lo, hi = t[k - 1], t[k]
            while hi - lo > 1e-10 * max(1.0, hi):
                mid = 0.5 * (lo + hi)
                if at(np.array([mid]))[1].noncollapsed_stable[0]:
                    hi = mid
                else:
                    lo = mid
            t_emerge = float(0.5 * (lo + hi))
    return ShrinkingNorms(t, lam, codes, p_hat, has, t_emerge)
