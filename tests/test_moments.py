"""The Gaussian-moment engine against closed forms from the literature and Monte Carlo."""

import numpy as np
import pytest
import sympy as sp

from derivations import gaussian_expectation, wick_moment


def test_univariate_moments_are_double_factorials():
    z, v = sp.symbols("z v", positive=True)
    for n in range(0, 11):
        expected = 0 if n % 2 else sp.factorial2(n - 1) * v ** (n // 2)
        assert sp.simplify(gaussian_expectation(z**n, [z], {z: v}) - expected) == 0


def test_isserlis_four_and_six():
    S = sp.Matrix(6, 6, lambda i, j: sp.Symbol(f"S{min(i, j)}{max(i, j)}"))
    four = wick_moment([1, 1, 1, 1, 0, 0], S)
    assert sp.expand(four - (S[0, 1] * S[2, 3] + S[0, 2] * S[1, 3] + S[0, 3] * S[1, 2])) == 0
    six = wick_moment([1] * 6, S)
    assert len(sp.Add.make_args(sp.expand(six))) == 15  # (6-1)!! pairings


def test_quadratic_form_identity_with_two_views():
    """E[(x1^T M x) x1 x1^T] = c (tr M I + M + M^T) for x1 = x + e1, c = 1 + sigma2."""
    d = 3
    sigma2 = sp.Symbol("sigma2", nonnegative=True)
    xs = sp.symbols(f"x0:{d}")
    es = sp.symbols(f"e0:{d}")
    M = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"M{i}{j}"))
    x = sp.Matrix(xs)
    x1 = x + sp.Matrix(es)
    q = (x1.T * M * x)[0]
    var = {**{v: 1 for v in xs}, **{v: sigma2 for v in es}}
    got = (x1 * x1.T).applyfunc(lambda m: gaussian_expectation(q * m, xs + es, var))
    c = 1 + sigma2
    expected = c * (M.trace() * sp.eye(d) + M + M.T)
    assert (got - expected).applyfunc(sp.expand) == sp.zeros(d, d)


def test_correlated_moments_against_monte_carlo():
    rng = np.random.default_rng(0)
    L = rng.normal(size=(3, 3))
    cov = L @ L.T + 0.5 * np.eye(3)
    z = sp.symbols("z0:3")
    expr = z[0] ** 2 * z[1] * z[2] + 3 * z[1] ** 4 - z[0] * z[2] ** 3
    exact = float(gaussian_expectation(expr, z, sp.Matrix(cov)))
    samples = rng.multivariate_normal(np.zeros(3), cov, size=2_000_000)
    f = sp.lambdify(z, expr, "numpy")
    vals = f(*samples.T)
    se = vals.std() / np.sqrt(len(vals))
    assert abs(vals.mean() - exact) < 5 * se


def test_bad_input():
    z = sp.Symbol("z")
    with pytest.raises(ValueError, match="not a polynomial"):
        gaussian_expectation(sp.sqrt(z), [z], {z: 1})
    with pytest.raises(ValueError, match="lacks a variance"):
        gaussian_expectation(z**2, [z], {})
    with pytest.raises(ValueError, match="covariance must be"):
        gaussian_expectation(z**2, [z], sp.eye(2))
    with pytest.raises(ValueError, match="non-negative"):
        wick_moment([-1], sp.eye(1))
