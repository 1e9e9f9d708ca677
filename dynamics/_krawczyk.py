"""Certified equilibria of small non-polynomial systems: Krawczyk's interval method over a box.

For f: R^n -> R^n with Jacobian J, a box X with midpoint m and a preconditioner Y ~ J(m)^-1,
the Krawczyk operator

    K(X) = m - Y f(m) + (I - Y J(X)) (X - m)

(interval arithmetic, J(X) an enclosure of the Jacobian over X) has two properties (Krawczyk
1969; Moore 1977): every zero of f in X lies in K(X), so X holds none where K(X) and X are
disjoint; and where K(X) lies in the interior of X, X holds exactly one zero. Bisecting the
boxes that are neither, from the searched box down, either excludes every part of the box or
proves a unique zero in it; boxes that shrink below a width without being decided (a multiple
zero, where J is singular, or a zero on a curve) are reported as undecided. Interval
enclosures are rigorous (mpmath's ``iv`` context rounds outwards); the functions covered are
+, -, *, /, integer and rational powers, exp, log, sqrt, sin, cos, tan, tanh.

The search has a budget (``KRAWCZYK_BUDGET``: boxes and seconds); past it, it gives up and the
caller falls back to multi-start Newton.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import mpmath
import numpy as np
import sympy as sp
from mpmath import iv

__all__ = ["KRAWCZYK_BUDGET", "IntervalSearch", "interval_functions", "jacobian_spread", "krawczyk_search"]

KRAWCZYK_BUDGET = {"states": 3, "boxes": 20000, "seconds": 20.0, "min_width": 1e-9}
"""The interval search is tried for explicit equations of at most ``states`` states, and gives
up after ``boxes`` boxes or ``seconds`` s; a box narrower than ``min_width`` (relative to the
searched box) that is still undecided is reported as such."""

_SPLIT = 0.4921875
"""Boxes are cut at this fraction of their widest side, not at the middle: a zero at the centre
of a symmetric box (0, k pi) would otherwise lie on the cut, where neither half can prove it."""


@dataclass(frozen=True)
class IntervalSearch:
    """The result of ``krawczyk_search``: the proved zeros (one float point each, refined by
    Newton inside its box), the undecided boxes (lo, hi arrays), and the number of boxes
    examined."""

    zeros: tuple[np.ndarray, ...]
    undecided: tuple[tuple[np.ndarray, np.ndarray], ...]
    boxes: int


class _Unsupported(Exception):
    pass


def _number(v: sp.Expr):
    if v.is_Integer:
        return iv.mpf(int(v))
    if v.is_Rational:
        return iv.mpf(int(v.p)) / int(v.q)
    if v.is_number and v.is_real:
        return iv.mpf(str(sp.N(v, 30)))  # the decimal string, rounded outwards
    raise _Unsupported(str(v))


def _tanh(x):
    # monotone: the hull of tanh at the end points, each enclosed as 1 - 2 / (exp(2 a) + 1)
    ends = [1 - 2 / (iv.exp(2 * iv.mpf(e)) + 1) for e in (x.a, x.b)]
    return iv.mpf([ends[0].a, ends[1].b])


_FUNCTIONS = {sp.exp: iv.exp, sp.log: iv.log, sp.sin: iv.sin, sp.cos: iv.cos, sp.tan: iv.tan, sp.tanh: _tanh}


def _compile(expr: sp.Expr, index: dict[sp.Symbol, int]) -> Callable[[list], Any]:
    """An interval evaluator of ``expr`` at a list of intervals (one per symbol in ``index``)."""
    if expr.is_Symbol:
        i = index[expr]
        return lambda X: X[i]
    if expr.is_number:
        c = _number(expr)
        return lambda X: c
    if expr.is_Add or expr.is_Mul:
        parts = [_compile(a, index) for a in expr.args]
        if expr.is_Add:
            def add(X):
                total = parts[0](X)
                for p in parts[1:]:
                    total = total + p(X)
                return total
            return add

        def mul(X):
            total = parts[0](X)
            for p in parts[1:]:
                total = total * p(X)
            return total
        return mul
    if expr.is_Pow:
        base = _compile(expr.base, index)
        e = expr.exp
        if e.is_Integer:
            k = int(e)
            if k >= 0:
                return lambda X: base(X) ** k
            return lambda X: 1 / base(X) ** (-k)
        if e == sp.Rational(1, 2):
            return lambda X: iv.sqrt(base(X))
        if e.is_Rational:
            num, den = int(e.p), int(e.q)
            return lambda X: iv.exp(iv.log(base(X)) * num / den)
        raise _Unsupported(str(expr))
    if isinstance(expr, sp.Function) and expr.func in _FUNCTIONS and len(expr.args) == 1:
        arg = _compile(expr.args[0], index)
        fn = _FUNCTIONS[expr.func]
        return lambda X: fn(arg(X))
    raise _Unsupported(str(expr))


@lru_cache(maxsize=64)
def interval_functions(system, params: tuple[tuple[str, Any], ...]):
    """(f, J) as interval evaluators of a list of state intervals, with the parameters
    substituted (floats as their exact binary values); None where an expression uses a function
    without an interval form here, or the system has no explicit equations."""
    sym = system.symbolic
    if sym is None:
        return None
    values = dict(params)
    sub = {sym.symbols[k]: sp.Rational(float(v)) if isinstance(v, float) else sp.sympify(v) for k, v in values.items()}
    index = {s: i for i, s in enumerate(sym.states)}
    try:
        f = [_compile(e.xreplace(sub), index) for e in sym.rhs]
        J = [[_compile(sym.jacobian[i, j].xreplace(sub), index) for j in range(sym.n_states)] for i in range(sym.n_states)]
    except (_Unsupported, TypeError):
        return None
    return f, J


def krawczyk_search(functions, box: np.ndarray, values: Callable[[np.ndarray], np.ndarray],
                    jacobian: Callable[[np.ndarray], np.ndarray]) -> IntervalSearch | None:
    """Every zero of f in ``box`` ((n, 2) array), proved unique in its own sub-box, or None
    past the budget.

    Parameters
    ----------
    functions : (f, J) from ``interval_functions``.
    box : (n, 2) array of finite bounds.
    values, jacobian : float evaluators of f and its Jacobian (preconditioner and Newton polish).
    """
    f_iv, J_iv = functions
    n = len(box)
    start = time.monotonic()
    scale = np.maximum(box[:, 1] - box[:, 0], 1e-300)
    stack = [(box[:, 0].astype(float), box[:, 1].astype(float))]
    zeros: list[np.ndarray] = []
    undecided: list[tuple[np.ndarray, np.ndarray]] = []
    count = 0
    with mpmath.workprec(53):
        while stack:
            count += 1
            if count > KRAWCZYK_BUDGET["boxes"] or time.monotonic() - start > KRAWCZYK_BUDGET["seconds"]:
                return None
            lo, hi = stack.pop()
            X = [iv.mpf([a, b]) for a, b in zip(lo, hi)]
            try:
                FX = [g(X) for g in f_iv]
            except (ZeroDivisionError, ValueError):
                FX = None
            if FX is not None and any(v.a > 0 or v.b < 0 for v in FX):
                continue  # no zero in X
            verdict = None if FX is None else _krawczyk(f_iv, J_iv, X, lo, hi, jacobian, n)
            if verdict == "none":
                continue
            if verdict == "unique":
                zeros.append(_polish((lo + hi) / 2, lo, hi, values, jacobian))
                continue
            widths = (hi - lo) / scale
            if np.max(widths) < KRAWCZYK_BUDGET["min_width"]:
                undecided.append((lo, hi))
                continue
            k = int(np.argmax(widths))
            cut = lo[k] + _SPLIT * (hi[k] - lo[k])
            left_hi, right_lo = hi.copy(), lo.copy()
            left_hi[k], right_lo[k] = cut, cut
            stack += [(right_lo, hi), (lo, left_hi)]
    return IntervalSearch(tuple(zeros), tuple(undecided), count)


def _krawczyk(f_iv, J_iv, X, lo, hi, jacobian, n) -> str | None:
    """"none" (no zero in X), "unique" (exactly one), or None (undecided)."""
    m = (lo + hi) / 2
    try:
        Jm = np.asarray(jacobian(m), dtype=float)
        Y = np.linalg.inv(Jm)
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError):
        return None
    if not np.all(np.isfinite(Y)):
        return None
    M = [iv.mpf(float(v)) for v in m]
    try:
        fm = [g(M) for g in f_iv]
        JX = [[g(X) for g in row] for row in J_iv]
    except (ZeroDivisionError, ValueError):
        return None
    D = [X[j] - M[j] for j in range(n)]
    inside = True
    for i in range(n):
        k = M[i]
        for j in range(n):
            k = k - float(Y[i, j]) * fm[j]
        for j in range(n):
            c = iv.mpf(1 if i == j else 0)
            for l in range(n):
                c = c - float(Y[i, l]) * JX[l][j]
            k = k + c * D[j]
        if not (mpmath.isfinite(k.a) and mpmath.isfinite(k.b)):
            return None
        if k.b < lo[i] or k.a > hi[i]:
            return "none"
        inside &= bool(k.a > lo[i] and k.b < hi[i])
    return "unique" if inside else None


def _polish(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, values, jacobian, steps: int = 30) -> np.ndarray:
    """Newton from the box's centre, kept inside the box (the unique zero is there)."""
    y = np.array(y, dtype=float)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            step = np.linalg.lstsq(np.asarray(jacobian(y), dtype=float), -np.asarray(values(y), dtype=float), rcond=None)[0]
            new = np.clip(y + step, lo, hi)
            if np.array_equal(new, y):
                break
            y = new
    return y


def jacobian_spread(functions, lo: np.ndarray, hi: np.ndarray, J: np.ndarray) -> float:
    """How far the Jacobian varies over the box [lo, hi] relative to its size at a point in it
    (``J``): the Frobenius norm of the radius of its interval enclosure over the box, over the
    balanced norm of J (infinite where the enclosure is unbounded). An eigenvalue smaller than
    that is not distinguishable from zero there: the zero tolerance of a zero that could not be
    isolated in a box that size."""
    from ._tolerance import eig_scale

    _, J_iv = functions
    X = [iv.mpf([a, b]) for a, b in zip(lo, hi)]
    with mpmath.workprec(53):
        try:
            radius = np.array([[float(g(X).delta) / 2 for g in row] for row in J_iv])
        except (ZeroDivisionError, ValueError):
            return float("inf")
    scale = eig_scale(J)
    if not np.all(np.isfinite(radius)) or scale == 0:
        return float("inf")
    return float(2 * np.linalg.norm(radius) / scale)
