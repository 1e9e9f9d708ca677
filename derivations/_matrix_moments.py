"""Gaussian moments of the per-sample gradient in matrix form, for any weights.

For any weights the outputs a = W_P Phi x1 and b = Phi_t x2 are jointly Gaussian (zero mean)
with the h x h covariance blocks S_aa = E[a a^T], S_ab = E[a b^T], S_bb = E[b b^T], and with an
input leg y (x1 or x2) through X_a = E[a y^T], X_b = E[b y^T]. The expected gradient of a
per-sample loss L(A, B, C) (A = <a,a>, B = <a,b>, C = <b,b>) with respect to the weights is
built from

    E[ A^i B^j C^k  c y^T ],   c = a or b,

which Wick's theorem writes as a sum over the pairings of the 2(i+j+k) + 2 Gaussian legs: each
pairing is a product of traces (closed loops through the quadratic forms) times one matrix
chain from the leg c to y. ``wick_matrix_moment`` enumerates the pairings with SymPy and
returns that matrix expression in the MatrixSymbols ``S_aa, S_ab, S_bb, X_a, X_b``;
``evaluate`` turns such an expression into JAX operations (SymPy's JAX printer has no trace).
For the cosine loss, whose gradient is not polynomial, see ``derivations._matrix_exact``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import sympy as sp

__all__ = ["wick_matrix_moment", "evaluate", "MOMENT_SYMBOLS"]

_h, _d = sp.symbols("h d", integer=True, positive=True)
MOMENT_SYMBOLS = {
    "S_aa": sp.MatrixSymbol("S_aa", _h, _h),
    "S_ab": sp.MatrixSymbol("S_ab", _h, _h),
    "S_bb": sp.MatrixSymbol("S_bb", _h, _h),
    "X_a": sp.MatrixSymbol("X_a", _h, _d),
    "X_b": sp.MatrixSymbol("X_b", _h, _d),
}
"""The covariance blocks of (a, b) and their cross-covariances with the input leg y."""

_FORMS = {"A": ("a", "a"), "B": ("a", "b"), "C": ("b", "b")}


def _cov(t1: str, t2: str) -> sp.MatrixExpr:
    S = MOMENT_SYMBOLS
    if t1 == t2:
        return S[f"S_{t1}{t1}"]
    return S["S_ab"] if (t1, t2) == ("a", "b") else S["S_ab"].T


def _matchings(items: list[int]):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for i, other in enumerate(rest):
        for m in _matchings(rest[:i] + rest[i + 1:]):
            yield [(first, other)] + m


@lru_cache(maxsize=256)
def wick_matrix_moment(powers: tuple[int, int, int], leg: str) -> sp.MatrixExpr:
    """E[A^i B^j C^k c y^T] in matrix form, by Wick's theorem.

    Parameters
    ----------
    powers : tuple of int
        (i, j, k), the powers of A, B, C.
    leg : {"a", "b"}
        The Gaussian vector c that carries the gradient (a: online branch, b: target branch).

    Returns
    -------
    sympy.MatrixExpr
        An h x d expression in ``MOMENT_SYMBOLS``: a sum of products of traces of chains of
        S blocks, each times a chain ending in X_a or X_b.

    Raises
    ------
    ValueError
        Negative powers or a leg other than "a", "b".
    """
    if leg not in ("a", "b"):
        raise ValueError(f"leg must be 'a' or 'b'; got {leg!r}")
    if len(powers) != 3 or any(int(p) != p or p < 0 for p in powers):
        raise ValueError(f"powers must be three integers >= 0; got {powers!r}")
    types: list[str] = []
    partner: dict[int, int] = {}
    for name, power in zip("ABC", powers):
        for _ in range(int(power)):
            i = len(types)
            types.extend(_FORMS[name])
            partner[i], partner[i + 1] = i + 1, i
    start, end = len(types), len(types) + 1
    types.extend([leg, "y"])
    total = sp.ZeroMatrix(_h, _d)
    X = {"a": MOMENT_SYMBOLS["X_a"], "b": MOMENT_SYMBOLS["X_b"]}
    for matching in _matchings(list(range(len(types)))):
        pair = {}
        for u, v in matching:
            pair[u], pair[v] = v, u
        chain, cur, seen = [], start, set()
        while True:
            nxt = pair[cur]
            if nxt == end:
                chain.append(X[types[cur]])
                break
            chain.append(_cov(types[cur], types[nxt]))
            seen.update((nxt, partner[nxt]))
            cur = partner[nxt]
        factor = sp.Integer(1)
        for v0 in range(start):
            if v0 in seen:
                continue
            loop, cur = [], v0
            while True:
                nxt = pair[cur]
                loop.append(_cov(types[cur], types[nxt]))
                seen.update((cur, nxt))
                cur = partner[nxt]
                if cur == v0:
                    break
            factor *= sp.Trace(sp.MatMul(*loop).doit())
        total = total + factor * sp.MatMul(*chain).doit()
    return total.doit()


def evaluate(expr: sp.Basic, values: Mapping[str, object], cache: dict | None = None):
    """Evaluate a SymPy matrix expression with JAX arrays (``values`` keyed by symbol name).

    Supports matrix and scalar sums, products and powers, transposes and traces; every
    subexpression is evaluated once per call (``cache``).

    Parameters
    ----------
    expr : sympy.Basic
        A matrix or scalar expression in MatrixSymbols and Symbols named in ``values``.
    values : mapping str -> array
        The value of every symbol.
    cache : dict, optional
        Shared between calls on subexpressions of one evaluation.

    Returns
    -------
    jax.Array
        The value.

    Raises
    ------
    TypeError
        An expression node this evaluator does not know.
    """
    import jax.numpy as jnp

    cache = {} if cache is None else cache
    if expr in cache:
        return cache[expr]
    if isinstance(expr, (sp.MatrixSymbol, sp.Symbol)):
        out = values[expr.name]
    elif isinstance(expr, sp.Number):
        out = float(expr)
    elif isinstance(expr, sp.MatAdd) or isinstance(expr, sp.Add):
        terms = [evaluate(a, values, cache) for a in expr.args]
        out = terms[0]
        for t in terms[1:]:
            out = out + t
    elif isinstance(expr, sp.MatMul) or isinstance(expr, sp.Mul):
        out = None
        for a in expr.args:
            v = evaluate(a, values, cache)
            if out is None:
                out = v
            elif a.is_Matrix and getattr(out, "ndim", 0) == 2:
                out = out @ v
            else:
                out = out * v
    elif isinstance(expr, sp.Transpose):
        out = jnp.swapaxes(evaluate(expr.arg, values, cache), -1, -2)
    elif isinstance(expr, sp.Trace):
        out = jnp.trace(evaluate(expr.arg, values, cache))
    elif isinstance(expr, sp.Pow) and not expr.is_Matrix:
        out = evaluate(expr.base, values, cache) ** float(expr.exp)
    elif isinstance(expr, sp.MatPow) and expr.exp.is_Integer and expr.exp > 0:
        base = evaluate(expr.base, values, cache)
        out = base
        for _ in range(int(expr.exp) - 1):
            out = out @ base
    else:
        raise TypeError(f"evaluate: unsupported expression node {type(expr).__name__}: {expr}")
    cache[expr] = out
    return out
