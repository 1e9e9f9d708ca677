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


# -- coefficients at a located point, from the derivatives JAX takes of the right-hand side --------


def compiled_forms(fn):
    """Jitted derivatives of ``fn(x, args)`` (JAX, R^n -> R^n) in x: (A(x, args), B(x, args, u, v),
    C(x, args, u, v, w)), compiled once and reused at every point and argument value."""
    import jax

    def b(x, args, u, v):
        return jax.jvp(lambda y: jax.jvp(lambda z: fn(z, args), (y,), (u,))[1], (x,), (v,))[1]

    def c(x, args, u, v, w):
        return jax.jvp(lambda y: b(y, args, u, v), (x,), (w,))[1]

    return jax.jit(lambda x, args: jax.jacfwd(lambda z: fn(z, args))(x)), jax.jit(b), jax.jit(c)


class Multilinear:
    """The derivatives of a JAX function f: R^n -> R^n at x as multilinear forms: the Jacobian A,
    B(u, v) = D^2 f(x)[u, v] and C(u, v, w) = D^3 f(x)[u, v, w], for real or complex arguments
    (a complex argument is split into its real and imaginary parts: the forms are real).

    ``Multilinear(f, x)`` compiles for this one function; ``Multilinear.at(forms, x, args)``
    evaluates forms compiled once by ``compiled_forms``."""

    def __init__(self, f, x):
        self.x = np.asarray(x, dtype=float)
        A, b, c = compiled_forms(lambda y, _: f(y))
        self._set(A, b, c, None)

    @classmethod
    def at(cls, forms, x, args) -> "Multilinear":
        out = cls.__new__(cls)
        out.x = np.asarray(x, dtype=float)
        out._set(*forms, args)
        return out

    def _set(self, A, b, c, args) -> None:
        self.A = np.asarray(A(self.x, args), dtype=float)
        self._b = lambda u, v: b(self.x, args, u, v)
        self._c = lambda u, v, w: c(self.x, args, u, v, w)

    def B(self, u, v):
        parts = _split(u, v)
        return _combine(parts, lambda a, b: np.asarray(self._b(a, b)))

    def C(self, u, v, w):
        parts = _split(u, v, w)
        return _combine(parts, lambda a, b, c: np.asarray(self._c(a, b, c)))


def _split(*vs):
    return [(np.real(v).astype(float), np.imag(v).astype(float)) for v in vs]


def _combine(parts, form):
    """sum over real/imaginary choices of form(parts), with the factors i**k (a complex array)."""
    import itertools

    out = np.zeros(parts[0][0].shape, dtype=complex)
    for choice in itertools.product((0, 1), repeat=len(parts)):
        vecs = [parts[k][c] for k, c in enumerate(choice)]
        if any(not np.any(v) for v in vecs):
            continue
        out = out + (1j ** sum(choice)) * form(*vecs)
    return out


def fold_coefficient(forms: Multilinear, f_param: np.ndarray) -> float:
    """The quadratic coefficient a of a fold, x' = beta + a x^2 on the centre manifold
    (Kuznetsov 3.3): a = (1/2) p . B(q, q) with A q = 0, A^T p = 0, p . q = 1, q of unit length
    and oriented so that p . df/dparam > 0 (the parameter's increase is beta's)."""
    U, _, Vt = np.linalg.svd(forms.A)
    q, p = Vt[-1], U[:, -1]
    p = p / float(p @ q)
    if float(p @ f_param) < 0:
        q, p = -q, -p
    return 0.5 * float(p @ np.real(forms.B(q, q)))


def hopf_coefficients(forms: Multilinear) -> tuple[float, float]:
    """(omega, l1) at a Hopf point: the frequency and the first Lyapunov coefficient
    (Kuznetsov, Elements of Applied Bifurcation Theory, eq. 3.20, with <q, q> = <p, q> = 1):

        l1 = Re[<p, C(q, q, qb)> - 2 <p, B(q, A^-1 B(q, qb))> + <p, B(qb, (2 i omega - A)^-1 B(q, q))>] / (2 omega)

    (negative: supercritical, a stable cycle is born). Example: x' = mu x - y - x r^2,
    y' = x + mu y - y r^2 at mu = 0 has omega = 1 and l1 = -2 in this normalisation."""
    A = forms.A
    ev, V = np.linalg.eig(A)
    k = int(np.argmin(np.where(ev.imag > 0, np.abs(ev.real), np.inf)))
    omega = float(ev[k].imag)
    q = V[:, k] / np.linalg.norm(V[:, k])
    evl, W = np.linalg.eig(A.T)
    j = int(np.argmin(np.abs(evl - np.conj(ev[k]))))
    p = W[:, j]
    p = p / np.conj(np.vdot(p, q))  # <p, q> = conj(p) . q = 1
    n = A.shape[0]
    qb = np.conj(q)
    Bqqb = forms.B(q, qb)
    Bqq = forms.B(q, q)
    h11 = np.linalg.solve(A, Bqqb)
    h20 = np.linalg.solve(2j * omega * np.eye(n) - A, Bqq)
    g = np.vdot(p, forms.C(q, q, qb)) - 2 * np.vdot(p, forms.B(q, h11)) + np.vdot(p, forms.B(qb, h20))
    return omega, float(np.real(g)) / (2 * omega)
