"""Gaussian moments of polynomials (Isserlis / Wick theorem).

For a zero-mean Gaussian vector z with covariance Sigma, Stein's identity
    E[z_i f(z)] = sum_j Sigma_ij E[d f / d z_j]
applied recursively evaluates the expectation of any monomial; it sums exactly the Wick
pairings of Isserlis' theorem, e.g. E[z1 z2 z3 z4] = S12 S34 + S13 S24 + S14 S23. The engine
works on polynomials with symbolic coefficients and a symbolic covariance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import sympy as sp

__all__ = ["gaussian_expectation", "wick_moment"]


def wick_moment(exponents: Sequence[int], covariance: sp.Matrix) -> sp.Expr:
    """E[prod_i z_i^k_i] for z ~ N(0, covariance), by Stein's recursion over pairings.

    Parameters
    ----------
    exponents : sequence of int
        The non-negative powers k_i, one per variable.
    covariance : sympy.Matrix
        The n x n covariance of z (entries may be symbols).

    Returns
    -------
    sympy.Expr
        The moment, expanded (0 for an odd total degree).

    Raises
    ------
    ValueError
        A non-square covariance, or exponents that are not one non-negative integer per
        variable.
    """
    cov = sp.ImmutableMatrix(covariance)
    n = cov.shape[0]
    if cov.shape != (n, n):
        raise ValueError(f"covariance must be square; got shape {cov.shape}")
    exps = tuple(int(k) for k in exponents)
    if len(exps) != n or any(k < 0 for k in exps):
        raise ValueError(
            f"exponents must be {n} non-negative integers (one per variable); got {exponents!r}"
        )
    return _moment(exps, cov)


@lru_cache(maxsize=65536)
def _moment(exps: tuple[int, ...], cov: sp.ImmutableMatrix) -> sp.Expr:
    degree = sum(exps)
    if degree == 0:
        return sp.Integer(1)
    if degree % 2:
        return sp.Integer(0)
    i = next(k for k, e in enumerate(exps) if e)
    rest = list(exps)
    rest[i] -= 1
    total = sp.Integer(0)
    for j, e in enumerate(rest):
        if e == 0 or cov[i, j] == 0:
            continue
        lowered = list(rest)
        lowered[j] -= 1
        total += cov[i, j] * e * _moment(tuple(lowered), cov)
    return sp.expand(total)


def gaussian_expectation(
    expr: sp.Expr,
    variables: Sequence[sp.Symbol],
    covariance: sp.Matrix | Mapping[sp.Symbol, sp.Expr],
) -> sp.Expr:
    """E[expr] over zero-mean jointly Gaussian ``variables``.

    ``expr`` must be a polynomial in ``variables`` (coefficients may be any SymPy expression).
    ``covariance`` is the full covariance matrix in the order of ``variables``, or a mapping
    ``{variable: variance}`` for independent variables.

    Parameters
    ----------
    expr : sympy.Expr
        A polynomial in ``variables``.
    variables : sequence of sympy.Symbol
        The Gaussian variables.
    covariance : sympy.Matrix or mapping Symbol -> expression
        Their covariance, in the order of ``variables``, or their variances if independent.

    Returns
    -------
    sympy.Expr
        E[expr], expanded.

    Raises
    ------
    ValueError
        ``expr`` is not polynomial in the variables, no variables, or a covariance that does
        not match them.
    """
    variables = tuple(variables)
    if not variables:
        raise ValueError("variables must name at least one Gaussian variable")
    if isinstance(covariance, Mapping):
        missing = [v for v in variables if v not in covariance]
        if missing:
            raise ValueError(f"covariance mapping lacks a variance for {missing}")
        cov = sp.diag(*[covariance[v] for v in variables])
    else:
        cov = sp.Matrix(covariance)
        if cov.shape != (len(variables), len(variables)):
            raise ValueError(
                f"covariance must be {len(variables)}x{len(variables)} to match variables; "
                f"got {cov.shape}"
            )
    try:
        poly = sp.Poly(sp.expand(expr), *variables)
    except sp.PolynomialError as exc:
        raise ValueError(f"expr is not a polynomial in {variables}: {exc}") from None
    icov = sp.ImmutableMatrix(cov)
    for coeff in poly.coeffs():
        if coeff.free_symbols & set(variables):
            raise ValueError(f"expr is not a polynomial in {variables}")
    return sp.expand(
        sum(
            (coeff * _moment(monom, icov) for monom, coeff in poly.terms()),
            sp.Integer(0),
        )
    )
