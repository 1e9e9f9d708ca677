"""Pseudo-arclength continuation of a curve {u : R(u) = 0}, R: R^(N+1) -> R^N, the one core that
equilibrium branches, fold and Hopf curves, periodic orbits and fixed points of maps share.

Each step predicts along the unit tangent t (the null vector of dR/du, oriented to continue the
last one), u_pred = u + ds t, and corrects by Newton on the bordered system
[R(u); t . (u - u_pred)] = 0 (Keller's pseudo-arclength condition; Kuznetsov, Elements of
Applied Bifurcation Theory, 10.2). The step grows by ``GROW`` after a quick corrector, halves
after a failed one or a turn of the tangent by more than ``MAX_TURN``, and the curve ends below
``ds_min``. Test functions are evaluated at every accepted point; a sign change between two
points is located by the Illinois (regula falsi) method in the arclength from the first of them,
each probe corrected on the hyperplane orthogonal to its tangent, to a relative width ``tol``.

R and its Jacobian are one jitted JAX function of (u, args): ``args`` (a pytree of arrays)
carries the fixed parameters, so that one compilation serves every call with the same shapes.
The linear algebra of the corrector is NumPy on the host: these curves have at most a few
hundred unknowns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._tolerance import LOCATE_RTOL, TEST_NOISE

__all__ = ["Tracer", "Located", "Traced", "tangent_of", "MAX_TURN", "GROW"]

GROW = 1.3
"""Factor by which the step grows after a corrector that converged in at most 3 iterations."""

MAX_TURN = 0.35
"""Largest angle (radians) between the tangents of two consecutive points: a larger turn is a
step across to another branch or around a sharp bend, and the step is halved."""

MAX_NEWTON = 8
"""Corrector iterations before a step counts as failed."""


def tangent_of(J: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """The unit null vector of the (N, N+1) matrix ``J``, oriented along ``previous`` when given
    (the last right singular vector: well defined at folds, where the parameter column is what
    keeps the rank)."""
    if previous is None:
        _, _, Vt = np.linalg.svd(J)
        t = Vt[-1]
    else:
        A = np.vstack([J, previous[None, :]])
        b = np.zeros(A.shape[0])
        b[-1] = 1.0
        try:
            t = np.linalg.solve(A, b)
        except np.linalg.LinAlgError:
            _, _, Vt = np.linalg.svd(J)
            t = Vt[-1]
    t = t / np.linalg.norm(t)
    if previous is not None and float(t @ previous) < 0:
        t = -t
    return t


@dataclass
class Located:
    """A sign change of test function ``index`` located between two points of a curve."""

    index: int
    u: np.ndarray
    tangent: np.ndarray
    jacobian: np.ndarray
    after: int  # the curve point it follows


@dataclass
class Traced:
    """What ``Tracer.trace`` returns: the accepted points, their tangents and test values, the
    located sign changes, and why the curve ended (``status``)."""

    u: list = field(default_factory=list)
    tangent: list = field(default_factory=list)
    jacobian: list = field(default_factory=list)
    tests: list = field(default_factory=list)
    located: list = field(default_factory=list)
    status: str = "max_points"


class Tracer:
    """Continuation of R(u, args) = 0.

    Parameters
    ----------
    value_and_jacobian : callable (u, args) -> (R, dR/du)
        Jitted; R of shape (N,), dR/du of shape (N, N+1).
    args : pytree
        The fixed arguments.
    atol, rtol : float
        The corrector stops when max|R| <= atol and its last update is at most rtol (1 + |u|).
    """

    def __init__(self, value_and_jacobian: Callable, args, *, atol: float = 1e-10, rtol: float = 1e-10):
        self._vj = value_and_jacobian
        self.args = args
        self.atol, self.rtol = atol, rtol
        self._locate_tests = None

    def evaluate(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        R, J = self._vj(u, self.args)
        return np.asarray(R, dtype=float), np.asarray(J, dtype=float)

    def correct(self, u_pred: np.ndarray, normal: np.ndarray, target: float | None = None,
                max_iter: int = MAX_NEWTON) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Newton on [R(u); normal . u = target] (target: normal . u_pred by default), from
        ``u_pred``: (u, dR/du at u, iterations), or None if it does not converge within
        ``max_iter`` iterations."""
        u = np.array(u_pred, dtype=float)
        c = float(normal @ u_pred) if target is None else float(target)
        for it in range(1, max_iter + 1):
            R, J = self.evaluate(u)
            if not (np.all(np.isfinite(R)) and np.all(np.isfinite(J))):
                return None
            A = np.vstack([J, normal[None, :]])
            rhs = np.concatenate([R, [float(normal @ u) - c]])
            try:
                du = np.linalg.solve(A, rhs)
            except np.linalg.LinAlgError:
                return None
            if not np.all(np.isfinite(du)):
                return None
            u = u - du
            if float(np.max(np.abs(du))) <= self.rtol * (1.0 + float(np.max(np.abs(u)))):
                R, J = self.evaluate(u)
                if np.all(np.isfinite(R)) and float(np.max(np.abs(R), initial=0.0)) <= self.atol * (
                        1.0 + float(np.max(np.abs(u)))):
                    return u, J, it
        return None

    def trace(self, u0: np.ndarray, t0: np.ndarray, *, ds: float, ds_min: float, ds_max: float,
              max_points: int, inside: Callable[[np.ndarray], bool],
              tests: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
              boundary: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, float] | None] | None = None,
              tol: float = LOCATE_RTOL, closes: bool = True, locate_tests: Callable | None = None) -> Traced:
        """Follow the curve from the point ``u0`` (on it) along its tangent ``t0``.

        ``inside(u)`` bounds the curve: the first point outside ends it, and ``boundary(u_in,
        u_out)`` may give the hyperplane (normal, value) on which the last point is placed
        (a parameter bound). ``tests(u, t, J)`` returns the test functions whose sign changes
        are located (with ``locate_tests`` where given: the same functions without a noise
        floor, so that a zero is located to ``tol`` rather than to the floor's edge). With
        ``closes``, a curve that returns to its start ends there (status "closed": an isola, a
        loop of cycles).
        """
        self._locate_tests = locate_tests
        out = Traced()
        R, J = self.evaluate(u0)
        t = np.asarray(t0, dtype=float) / np.linalg.norm(t0)  # as given: at a branch point J alone cannot say
        u = np.asarray(u0, dtype=float)
        out.u.append(u)
        out.tangent.append(t)
        out.jacobian.append(J)
        out.tests.append(np.asarray(tests(u, t, J), dtype=float) if tests else np.zeros(0))
        h = float(ds)
        while len(out.u) < max_points:
            step = self._step(u, t, h)
            if step is None:
                h *= 0.5
                if h < ds_min:
                    out.status = "step_too_small"
                    break
                continue
            u1, J1, t1, its = step
            if not inside(u1):
                if boundary is not None:
                    plane = boundary(u, u1)
                    if plane is not None:
                        end = self.correct(u + (u1 - u) * 0.5, plane[0], plane[1])
                        gap = float(np.linalg.norm(end[0] - u)) if end is not None else 0.0
                        if end is not None and TEST_NOISE * (1.0 + float(np.max(np.abs(u)))) < gap <= 2 * h:
                            ue, Je, _ = end
                            te = tangent_of(Je, t)
                            self._accept(out, ue, te, Je, tests, tol)
                out.status = "left_range"
                break
            self._accept(out, u1, t1, J1, tests, tol)
            u, t = u1, t1
            if closes and len(out.u) > 3:
                gap = float(np.linalg.norm(u - out.u[0]))
                if gap < 0.5 * h and float(t @ out.tangent[0]) > 0:
                    out.status = "closed"
                    break
            if its <= 3:
                h = min(h * GROW, ds_max)
        return out

    def _step(self, u: np.ndarray, t: np.ndarray, h: float):
        res = self.correct(u + h * t, t)
        if res is None:
            return None
        u1, J1, its = res
        t1 = tangent_of(J1, t)
        if float(np.clip(t1 @ t, -1.0, 1.0)) < np.cos(MAX_TURN):
            return None
        if float(np.linalg.norm(u1 - u)) > 2.0 * h:
            return None
        return u1, J1, t1, its

    def _accept(self, out: Traced, u1, t1, J1, tests, tol: float) -> None:
        g1 = np.asarray(tests(u1, t1, J1), dtype=float) if tests else np.zeros(0)
        u0, t0, g0 = out.u[-1], out.tangent[-1], out.tests[-1]
        for i in np.flatnonzero((np.sign(g0) * np.sign(g1)) < 0):
            loc = self._locate(u0, t0, float(t0 @ (u1 - u0)), int(i), float(g0[i]), float(g1[i]), tests, tol)
            if loc is not None:
                out.located.append(Located(int(i), loc[0], loc[1], loc[2], len(out.u) - 1))
        out.u.append(u1)
        out.tangent.append(t1)
        out.jacobian.append(J1)
        out.tests.append(g1)

    def _locate(self, u0, t0, s1: float, i: int, g0: float, g1: float, tests, tol: float):
        """The zero of test i between u0 (s = 0) and the point at arclength s1 along t0: the
        Illinois method (regula falsi, the retained end's weight halved when the same end is
        kept twice), then one secant step through the final bracket's true values."""
        a, b, ga, gb = 0.0, s1, g0, g1  # weighted values
        fa, fb = g0, g1  # true values
        best, g = None, None
        side = 0
        scale = 1.0 + float(np.max(np.abs(u0)))
        for _ in range(80):
            if abs(b - a) <= tol * scale:
                break
            s = (a * gb - b * ga) / (gb - ga) if gb != ga else 0.5 * (a + b)
            if not (min(a, b) < s < max(a, b)):
                s = 0.5 * (a + b)
            res = self.correct(u0 + s * t0, t0)
            if res is None:
                s = 0.5 * (a + b)
                res = self.correct(u0 + s * t0, t0)
                if res is None:
                    return best
            u, J, _ = res
            tt = tangent_of(J, t0)
            g = float(np.asarray((self._locate_tests or tests)(u, tt, J), dtype=float)[i])
            best = (u, tt, J)
            if g == 0.0:
                return best
            if np.sign(g) == np.sign(ga):
                a, ga, fa = s, g, g
                if side == -1:
                    gb *= 0.5
                side = -1
            else:
                b, gb, fb = s, g, g
                if side == 1:
                    ga *= 0.5
                side = 1
        if fa != fb:
            s = (a * fb - b * fa) / (fb - fa)
            res = self.correct(u0 + s * t0, t0)
            if res is not None:
                best = (res[0], tangent_of(res[1], t0), res[1])
        return best
