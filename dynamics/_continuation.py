"""Bifurcation diagrams of systems served numerically (``symbolic`` None: K-mode closures, the
exact flow, direction flows) by natural-parameter continuation.

Sampling multi-start Newton at each parameter value and reading every change in the number of
roots as a bifurcation gives spurious points (a start that misses an equilibrium at one value
looks like a fold). Instead every equilibrium found by multi-start Newton at the two ends of the
sweep is followed along the sampled values: a secant predictor and a Newton corrector from the
previous point. Between two accepted points a change of the linear type (the number of unstable
directions or the stability flag) is located by bisection in the parameter, each probe corrected
from the left point, and named by the eigenvalues that cross (a complex pair: Hopf; a real one:
the normal-form tests of ``bifurcation``: fold, transcritical, pitchfork). A branch that cannot
be continued ends at a fold, located by bisection on the last value it can be continued to. The
result is as complete as the equilibria found at the ends of the sweep: a branch born and dying
inside it is missed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from derivations import DynamicalSystem, FrozenMap

from ._equilibria import equilibria, newton_solver, snap_zeros
from ._prepare import MAX_BISECTIONS, numeric, read_only
from ._stability import classify
from ._tolerance import CONTINUATION_JUMP, CONTINUATION_RTOL, NEWTON_ATOL, NEWTON_RTOL

__all__ = ["continued_bifurcation"]


class _Tracker:
    """Newton correction and linear type at (x, v), with the fixed parameters."""

    def __init__(self, system: DynamicalSystem, param: str, base: Mapping, tol: float):
        self.system, self.param, self.tol = system, param, tol
        self.base = {k: numeric(v) for k, v in base.items()}
        self.solve = newton_solver(system)
        self.f = system.to_numpy(checked=False)

    def params(self, v: float) -> dict:
        return {**self.base, self.param: float(v)}

    def residual(self, y: np.ndarray, v: float) -> float:
        with np.errstate(all="ignore"):
            return float(np.max(np.abs(self.f(0.0, y, self.params(v)))))

    def correct(self, guess: np.ndarray, v: float, near: np.ndarray) -> np.ndarray | None:
        """The equilibrium at v Newton reaches from ``guess``, if it converges within a jump of
        the previous point ``near`` that continuation allows."""
        import jax.numpy as jnp

        P = {k: jnp.asarray(val) for k, val in self.params(v).items()}

        def newton(start):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.asarray(self.solve(jnp.asarray(start[None]), P))[0]

        y = newton(guess)
        if not np.all(np.isfinite(y)):
            return None
        y = snap_zeros(y, lambda z: self.f(0.0, z, self.params(v)))
        if self.residual(y, v) > NEWTON_ATOL:
            return None
        if np.max(np.abs(y - near)) > CONTINUATION_JUMP * max(1.0, float(np.max(np.abs(near)))):
            return None
        return y

    def kind(self, y: np.ndarray, v: float) -> tuple:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = classify(self.system, y, self.params(v))
        return c.index, c.stable, c

    def step(self, x: np.ndarray, prev: np.ndarray | None, v0: float, v1: float, v_prev: float | None):
        guess = x if prev is None or v_prev is None else x + (x - prev) * (v1 - v0) / (v0 - v_prev)
        y = self.correct(guess, v1, x)
        if y is None and prev is not None:
            y = self.correct(x, v1, x)
        return y


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    return bool(np.max(np.abs(x - y)) <= CONTINUATION_RTOL * max(1.0, float(np.max(np.abs(x)))))


def _follow(tr: _Tracker, x0: np.ndarray, values: np.ndarray) -> tuple[list, list, list, list]:
    """Follow the equilibrium x0 at values[0] along values: the accepted values, points and
    stability flags, and the located events [(kind, value, x)]."""
    vs, xs = [float(values[0])], [x0]
    t = tr.kind(x0, values[0])
    stable = [bool(t[1])]
    ref = (t, x0, vs[0]) if t[2].hyperbolic else None  # the last hyperbolic point: types are compared with it
    events = []
    for v1 in values[1:]:
        v0 = vs[-1]
        prev = xs[-2] if len(xs) > 1 else None
        y = tr.step(xs[-1], prev, v0, float(v1), vs[-2] if len(vs) > 1 else None)
        if y is None:
            end = _branch_end(tr, xs[-1], v0, float(v1))
            if end is not None:
                events.append(end)
            break
        t = tr.kind(y, v1)
        if t[2].hyperbolic:
            if ref is not None and t[:2] != ref[0][:2]:
                events.append(_type_change(tr, ref[1], ref[2], float(v1), ref[0]))
            ref = (t, y, float(v1))
        vs.append(float(v1))
        xs.append(y)
        stable.append(bool(t[1]))
    return vs, xs, stable, events


def _bisect(tr: _Tracker, x: np.ndarray, lo: float, hi: float, same) -> tuple[float, np.ndarray, float, np.ndarray | None]:
    """Shrink [lo, hi] keeping ``same`` true at lo (with its point) and false at hi."""
    x_lo, x_hi = x, None
    for _ in range(MAX_BISECTIONS):
        if abs(hi - lo) <= tr.tol * max(1.0, abs(lo), abs(hi)):
            break
        mid = 0.5 * (lo + hi)
        y = tr.correct(x_lo, mid, x_lo)
        if y is not None and same(y, mid):
            lo, x_lo = mid, y
        else:
            hi, x_hi = mid, y
    return lo, x_lo, hi, x_hi


def _branch_end(tr: _Tracker, x: np.ndarray, v0: float, v1: float) -> tuple[str, float, np.ndarray] | None:
    """Where the branch through x at v0 stops continuing before v1: a fold, unless an
    equilibrium continues from its end beyond that value (it merges into another branch, at a
    pitchfork or transcritical point that the other branch's change of type names)."""
    lo, x_lo, hi, _ = _bisect(tr, x, v0, v1, lambda y, v: True)
    beyond = hi + 10 * (hi - lo)
    if tr.correct(x_lo, beyond, x_lo) is not None:
        return None
    return "fold", lo, x_lo


def _type_change(tr: _Tracker, x: np.ndarray, v0: float, v1: float, before: tuple) -> tuple[str, float, np.ndarray]:
    """Where the linear type changes between v0 and v1, and what crosses there: bisection on the
    number of eigenvalues with positive real part, taken as computed (no zero band, so that the
    crossing is located to ``tol`` rather than to the band's edge)."""
    unstable = int(np.sum(np.asarray(before[2].eigenvalues).real > 0))
    lo, x_lo, _, _ = _bisect(tr, x, v0, v1,
                             lambda y, v: int(np.sum(np.asarray(tr.kind(y, v)[2].eigenvalues).real > 0)) == unstable)
    c = tr.kind(x_lo, lo)[2]
    ev = np.asarray(c.eigenvalues)
    crossing = ev[np.argmin(np.abs(ev.real))] if ev.size else 0.0
    if abs(np.imag(crossing)) > np.sqrt(NEWTON_RTOL) * max(1.0, float(np.max(np.abs(ev)))):
        return "hopf", lo, x_lo
    from ._bifurcation import _normal_form_kind

    return _normal_form_kind(tr.system, tr.param, tr.params(lo), x_lo), lo, x_lo


def continued_bifurcation(system: DynamicalSystem, param: str, values: np.ndarray, base: Mapping, tol: float):
    """The diagram of ``bifurcation`` for a system served numerically (see the module docstring)."""
    from ._bifurcation import Bifurcation, BifurcationPoint, Branch, _sampled, _unique

    tr = _Tracker(system, param, base, tol)
    first = equilibria(system, tr.params(values[0]))
    last = equilibria(system, tr.params(values[-1]))
    paths, events = [], []
    for e in first:
        vs, xs, stable, ev = _follow(tr, np.asarray(e.x, dtype=float), values)
        paths.append((vs, xs, stable))
        events += ev
    reached = [xs[-1] for vs, xs, _ in paths if vs[-1] == float(values[-1])]
    for e in last:
        x = np.asarray(e.x, dtype=float)
        if any(_same(x, y) for y in reached):
            continue
        vs, xs, stable, ev = _follow(tr, x, values[::-1])
        paths.append((vs[::-1], xs[::-1], stable[::-1]))
        events += ev
    n = system.n_states
    rows: list[list[tuple[np.ndarray, bool]]] = [[] for _ in values]
    branches = []
    for vs, xs, stable in paths:
        for v, x, s in zip(vs, xs, stable):
            i = int(np.argmin(np.abs(values - v)))
            if not any(_same(x, y) for y, _ in rows[i]):
                rows[i].append((x, s))
        branches.append(Branch(read_only(vs), read_only(np.array(xs).reshape(len(xs), n)), read_only(stable, bool)))
    X, S, M = _sampled([sorted(r, key=lambda p: tuple(p[0])) for r in rows], n)
    points = _unique([BifurcationPoint(k, v, x) for k, v, x in events], tol)
    return Bifurcation(param, read_only(values), X, S, M, tuple(points),
                       system.state_names, tuple(branches), system.name,
                       FrozenMap({k: numeric(v) for k, v in base.items()}))
