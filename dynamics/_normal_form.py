"""The normal-form decision at a zero eigenvalue: fold, transcritical or pitchfork.

``bifurcation`` (at a located point, float parameters) and ``threshold`` (at a symbolic
solution, evaluated at generic values of the other parameters) both label a point with this
one function, so the two never disagree on the kind of the same point.
"""

from __future__ import annotations

import numpy as np

from ._tolerance import COARSE_RTOL

__all__ = ["normal_form_kind"]


def normal_form_kind(jacobian, f_param, hessian, rtol: float = COARSE_RTOL, third=None) -> str:
    """The kind of a one-parameter bifurcation at an equilibrium with a zero eigenvalue.

    With l, q the left and right null vectors of the Jacobian J = df/dx (the singular vectors
    of its smallest singular value): a fold where the unfolding coefficient l . df/dparam is
    non-zero; else a transcritical point where the quadratic coefficient l . D^2 f(q, q) on the
    centre manifold is non-zero; else a pitchfork (Kuznetsov, Elements of Applied Bifurcation
    Theory, 3.3 and exercise 3.4). Example: x' = r x - x^3 at (r, x) = (0, 0) has f_r = x = 0
    and f_xx = -6 x = 0, a pitchfork; the Lorenz system at r = 1 (origin, l = (1, s, 0),
    q = (1, 1, 0)) has l . f_r = 0 and l . D^2 f(q, q) = -2 s q_x q_z = 0, a pitchfork.

    Parameters
    ----------
    jacobian : array (n, n)
        df/dx at the point.
    f_param : array (n,)
        df/dparam at the point.
    hessian : array (n, n, n)
        d^2 f_i / dx_j dx_k at the point.
    rtol : float
        A coefficient counts as zero when at most ``rtol`` times its natural scale (1 + the
        largest entry of J for the unfolding coefficient, of the Hessian for the quadratic
        one, of the Hessian and the third derivatives for the cubic one); the default
        COARSE_RTOL suits points located in float64.
    third : array (n, n, n, n), optional
        d^3 f_i / dx_j dx_k dx_l at the point. Given, a pitchfork also needs a non-zero cubic
        coefficient on the centre manifold, l . (D^3 f(q, q, q) + 3 D^2 f(q, h)) with
        J h = -D^2 f(q, q); where it vanishes too the point is "degenerate" (e.g. x' = r x, a
        line of equilibria at r = 0).

    Returns
    -------
    str
        "fold", "transcritical" or "pitchfork"; "degenerate" only when ``third`` is given.
    """
    J = np.atleast_2d(np.asarray(jacobian, dtype=float))
    n = J.shape[0]
    H = np.asarray(hessian, dtype=float).reshape(n, n, n)
    U, _, Vt = np.linalg.svd(J)
    left, q = U[:, -1], Vt[-1]
    a = float(left @ np.asarray(f_param, dtype=float).reshape(n))
    if abs(a) > rtol * (1.0 + float(np.max(np.abs(J)))):
        return "fold"
    Bqq = np.einsum("ijk,j,k->i", H, q, q)
    b = float(left @ Bqq)
    if abs(b) > rtol * (1.0 + float(np.max(np.abs(H)))):
        return "transcritical"
    if third is None:
        return "pitchfork"
    T = np.asarray(third, dtype=float).reshape(n, n, n, n)
    h = -np.linalg.pinv(J) @ Bqq
    c = float(left @ (np.einsum("ijkl,j,k,l->i", T, q, q, q) + 3 * np.einsum("ijk,j,k->i", H, q, h)))
    scale = 1.0 + float(np.max(np.abs(T))) + float(np.max(np.abs(H))) * (1.0 + float(np.max(np.abs(h))))
    return "pitchfork" if abs(c) > rtol * scale else "degenerate"
