"""continue_equilibrium(system, start, ranges, params): a branch of equilibria of any flow, or of
fixed points (or points of period k) of any map, followed by pseudo-arclength continuation
(``dynamics._arclength``) with its folds, branch points, Hopf points (flows), period doublings
and Neimark-Sacker points (maps) located and their normal-form coefficients computed.

The residual is the right-hand side in (x, param) (a map's: its k-th iterate minus x), and its
Jacobian is JAX's. Along the branch, sign changes of the test functions (Kuznetsov, Elements of
Applied Bifurcation Theory, 10.2) are located:

- fold: the parameter component of the tangent, dparam/ds;
- branch point: det [dR/d(x, param); tangent];
- Hopf (flows): the bialternate product prod_{i<j} (l_i + l_j) of the eigenvalues, a Hopf
  point where a purely imaginary pair is there (else a neutral saddle, not reported);
- flip (maps): det(I + M) = prod (1 + mu_i) of the multipliers; Neimark-Sacker (maps):
  prod_{i<j} (mu_i mu_j - 1), where a complex pair lies on the unit circle.

Products of many factors are taken as sign x geometric mean, so that they neither overflow
nor underflow for large systems and stay continuous for the regula falsi that locates them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from derivations import DynamicalSystem, FrozenMap, Params

from ._arclength import Located, Tracer, tangent_of
from ._normal_form import Multilinear, compiled_forms, fold_coefficient, hopf_coefficients, normal_form_kind
from ._prepare import label, numeric, read_only
from ._tolerance import (COARSE_RTOL, CRITICAL_RTOL, FLOAT_RTOL, FLOAT_ZERO, LOCATE_RTOL, MERGE_RTOL, RANGE_SLACK,
                         SAME_BRANCH_RTOL, TEST_NOISE, check_tol)

if TYPE_CHECKING:
    from ._bifurcation import BifurcationPoint

__all__ = ["continue_equilibrium", "continued_bifurcation", "EquilibriumProblem"]

FLOW_TESTS = ("fold", "branch point", "hopf")
MAP_TESTS = ("fold", "branch point", "period doubling", "neimark-sacker")


def signed_mean(factors: np.ndarray) -> float:
    """sign(prod factors) x geometric mean of |factors| (factors real, or complex in conjugate
    pairs so that the product is real): continuous in the factors, zero where one is."""
    factors = np.asarray(factors)
    if factors.size == 0:
        return 1.0
    mag = np.abs(factors)
    if np.any(mag == 0):
        return 0.0
    phase = np.prod(factors / mag)
    sign = 1.0 if np.real(phase) >= 0 else -1.0
    return sign * float(np.exp(np.mean(np.log(mag))))


NOISE = TEST_NOISE


def _floored(factors: np.ndarray, scale: float) -> float:
    factors = np.asarray(factors)
    if factors.size and float(np.min(np.abs(factors))) <= NOISE * scale:
        return 0.0
    return signed_mean(factors)


def pair_sums(ev: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(ev), 1)
    return ev[i] + ev[j]


@lru_cache(maxsize=64)
def _compiled(system: DynamicalSystem, param: str, period: int):
    """(value_and_jacobian(u, P), map(x, P)) of the residual R(x, v) with u = (x, v)."""
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)
    n = system.n_states
    discrete = system.time == "discrete"
    c = system.constraint.function if getattr(system, "constraint", None) is not None else None

    def residual(u, P):
        x, v = u[:n], u[n]
        prm = {**P, param: v}
        if c is not None:
            # on a declared invariant set {c = 0}: the flow's tangential part, and c itself along
            # the normals G^T (G G^T)^-1 c, so that the equilibria on the set are isolated zeros
            G = jnp.atleast_2d(jax.jacfwd(lambda y: jnp.atleast_1d(c(y, prm)))(x))
            F = f(0.0, x, prm)
            normal = G.T @ jnp.linalg.solve(G @ G.T, jnp.stack([G @ F, jnp.atleast_1d(c(x, prm))], axis=1))
            return F - normal[:, 0] + normal[:, 1]
        if not discrete:
            return f(0.0, x, prm)
        y = x
        for _ in range(period):
            y = y + f(0.0, y, prm)
        return y - x

    vj = jax.jit(lambda u, P: (residual(u, P), jax.jacfwd(residual)(u, P)))
    forms = compiled_forms(lambda x, a: residual(jnp.concatenate([x, jnp.atleast_1d(a[0])]), a[1]))
    second = jax.jit(lambda u, P, a, b: jax.jvp(lambda w: jax.jvp(lambda z: residual(z, P), (w,), (a,))[1], (u,), (b,))[1])
    return vj, (residual, second), forms


class EquilibriumProblem:
    """The residual of equilibria (fixed points of period k) of ``system`` in (x, param) with
    the other parameters fixed, its test functions and the reading of located points."""

    def __init__(self, system: DynamicalSystem, param: str, base: Mapping[str, Any], period: int = 1):
        import jax.numpy as jnp

        self.system, self.param, self.period = system, param, period
        self.n = system.n_states
        self.discrete = system.time == "discrete"
        self.base = {k: numeric(v) for k, v in base.items() if k != param}
        self.vj, (self.residual, self.second), self._forms = _compiled(system, param, period)
        self.args = {k: jnp.asarray(v) for k, v in self.base.items()}
        self.tracer = Tracer(self.vj, self.args)
        self.tests_names = MAP_TESTS if self.discrete else FLOW_TESTS
        self._constraint = getattr(system, "constraint", None) is not None

    def params_at(self, v: float) -> dict:
        return {**self.base, self.param: float(v)}

    def spectrum(self, u: np.ndarray, J: np.ndarray) -> np.ndarray:
        """Eigenvalues of the Jacobian in x (a flow), multipliers (a map), sorted by decreasing
        real part (modulus)."""
        A = J[:, : self.n]
        if self._constraint:
            from ._stability import _on_tangent_space

            A, _ = _on_tangent_space(self.system, u[: self.n], self.params_at(u[self.n]), A)
        ev = np.linalg.eigvals(A) if A.size else np.zeros(0, complex)
        if self.discrete:
            ev = ev + 1.0
            return ev[np.argsort(-np.abs(ev), kind="stable")]
        return ev[np.argsort(-ev.real, kind="stable")]

    def stable(self, ev: np.ndarray) -> bool:
        if ev.size == 0:
            return True
        return bool(np.max(np.abs(ev)) < 1.0) if self.discrete else bool(np.max(ev.real) < 0.0)

    def tests(self, u: np.ndarray, t: np.ndarray, J: np.ndarray, floor: bool = True) -> np.ndarray:
        """The test functions at a curve point; with ``floor``, a value at rounding level is
        returned as 0, so that a branch along which one vanishes identically (a line of
        non-hyperbolic points) shows no sign changes of rounding noise (located without it)."""
        ev = self.spectrum(u, J)
        scale = max(1.0, float(np.max(np.abs(J)))) if floor else 0.0
        A = np.vstack([J, t[None, :]])
        sv = np.linalg.svd(A, compute_uv=False)
        sign, logdet = np.linalg.slogdet(A)
        bp = float(sign) * math.exp(logdet / (self.n + 1)) if sign != 0 and sv[-1] > NOISE * sv[0] * bool(floor) else 0.0
        if self.discrete:
            i, j = np.triu_indices(len(ev), 1)
            return np.array([t[-1], bp, _floored(1.0 + ev, scale), _floored(ev[i] * ev[j] - 1.0, scale)])
        return np.array([t[-1], bp, _floored(pair_sums(ev), scale)])

    def raw_tests(self, u: np.ndarray, t: np.ndarray, J: np.ndarray) -> np.ndarray:
        return self.tests(u, t, J, floor=False)

    def forms(self, u: np.ndarray) -> Multilinear:
        """The derivatives of x -> R(x, v) at u = (x, v)."""
        import jax.numpy as jnp

        return Multilinear.at(self._forms, u[: self.n], (jnp.asarray(float(u[self.n])), self.args))

    def f_param(self, u: np.ndarray, J: np.ndarray) -> np.ndarray:
        return J[:, self.n]

    def point(self, kind_index: int, u: np.ndarray, t: np.ndarray, J: np.ndarray) -> Any:
        """The BifurcationPoint a located sign change of test ``kind_index`` is, or None (a
        neutral saddle, a fold that is a branch point)."""
        from ._bifurcation import BifurcationPoint

        name = self.tests_names[kind_index]
        x, v = u[: self.n], float(u[self.n])
        ev = self.spectrum(u, J)
        scale = max(1.0, float(np.max(np.abs(ev)))) if ev.size else 1.0
        prm = self.params_at(v)
        coef: dict[str, float] = {}
        if name == "fold":
            sv = np.linalg.svd(np.vstack([J, t[None, :]]), compute_uv=False)
            if sv[-1] <= COARSE_RTOL * sv[0]:
                return None  # a branch point, which its own test reports
            coef["a"] = fold_coefficient(self.forms(u), self.f_param(u, J))
        elif name == "branch point":
            pass
        elif name == "hopf":
            cplx = ev[ev.imag > COARSE_RTOL * scale]
            if cplx.size == 0 or float(np.min(np.abs(cplx.real))) > CRITICAL_RTOL * scale:
                return None
            omega, l1 = hopf_coefficients(self.forms(u))
            coef.update(omega=omega, l1=l1)
        elif name == "period doubling":
            if float(np.min(np.abs(ev + 1.0))) > CRITICAL_RTOL * scale:
                return None
            coef["multiplier"] = -1.0
        elif name == "neimark-sacker":
            on = ev[(np.abs(ev.imag) > COARSE_RTOL) & (np.abs(np.abs(ev) - 1.0) < CRITICAL_RTOL * scale)]
            if on.size == 0:
                return None
            coef["theta"] = float(np.max(np.abs(np.angle(on))))
        return BifurcationPoint(name, v, x, param=self.param, params=prm, coefficients=coef)

    def correct_at(self, x0: np.ndarray, v: float, max_iter: int = 8) -> tuple[np.ndarray, np.ndarray] | None:
        """Newton at the fixed parameter value v from x0: (u, J) or None."""
        e = np.zeros(self.n + 1)
        e[-1] = 1.0
        res = self.tracer.correct(np.concatenate([np.asarray(x0, dtype=float), [v]]), e, v, max_iter=max_iter)
        return None if res is None else (res[0], res[1])


def _check_start(problem: EquilibriumProblem, start: Any, v0: float) -> tuple[np.ndarray, np.ndarray, Any]:
    """(u0, J0, the start point if a BifurcationPoint) from ``start``: a state near an
    equilibrium at the parameter's value, or a located BifurcationPoint."""
    from ._bifurcation import BifurcationPoint

    point = start if isinstance(start, BifurcationPoint) else None
    if point is not None:
        x0, v0 = np.asarray(point.x, dtype=float), float(point.value)
    else:
        try:
            x0 = np.asarray(start, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise TypeError(f"start must be a state (array of {problem.n} numbers) or a BifurcationPoint; "
                            f"got {type(start).__name__}") from None
    if x0.shape != (problem.n,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"start must be a finite state of {problem.n} numbers ({list(problem.system.state_names)}); "
                         f"got shape {x0.shape}")
    got = problem.correct_at(x0, v0, max_iter=40)
    if got is None:
        # already an equilibrium where Newton's matrix is singular (a branch point at the start)
        R, J = problem.tracer.evaluate(np.concatenate([x0, [v0]]))
        if np.all(np.isfinite(J)) and float(np.max(np.abs(R), initial=0.0)) <= FLOAT_RTOL * (1.0 + float(np.max(np.abs(x0)))):
            got = (np.concatenate([x0, [v0]]), J)
    if got is None:
        what = "a fixed point" if problem.discrete else "an equilibrium"
        raise ValueError(f"start {np.array2string(x0, precision=6)} is not near {what} of {label(problem.system)} "
                         f"at {problem.param} = {v0:g}: Newton does not converge from it")
    return got[0], got[1], point


def _switch_directions(problem: EquilibriumProblem, u: np.ndarray, J: np.ndarray) -> list[np.ndarray]:
    """At a branch point (dR/du of rank N-1): the tangents of the two branches that cross
    there, from the algebraic branching equation (Kuznetsov 10.2.3): with the null space
    {phi1, phi2} of dR/du and its left null vector psi, the tangents alpha phi1 + beta phi2
    solve a11 alpha^2 + 2 a12 alpha beta + a22 beta^2 = 0, a_ij = psi . D^2R(phi_i, phi_j)."""
    import jax.numpy as jnp

    U, _, Vt = np.linalg.svd(J)
    phi1, phi2 = Vt[-1], Vt[-2]
    psi = U[:, -1]

    def second(a, b):
        return np.asarray(problem.second(jnp.asarray(u), problem.args, jnp.asarray(a), jnp.asarray(b)))

    a11, a12, a22 = (float(psi @ second(phi1, phi1)), float(psi @ second(phi1, phi2)), float(psi @ second(phi2, phi2)))
    out = []
    if abs(a11) > FLOAT_ZERO * (abs(a12) + abs(a22)) and a11 != 0.0:
        disc = a12 ** 2 - a11 * a22
        if disc >= 0:
            for sgn in (1.0, -1.0):
                beta = 1.0
                alpha = (-a12 + sgn * math.sqrt(disc)) / a11
                d = alpha * phi1 + beta * phi2
                out.append(d / np.linalg.norm(d))
    else:  # a11 = 0: beta = 0 is one root, and 2 a12 alpha + a22 beta = 0 the other
        out.append(phi1)
        d = -a22 * phi1 + 2 * a12 * phi2 if abs(a12) > 0 else phi2
        out.append(d / np.linalg.norm(d))
    return out


def continue_equilibrium(system: DynamicalSystem, start: ArrayLike | BifurcationPoint,
                         ranges: Mapping[str, tuple[float, float]], params: Params, *,
                         direction: str = "both", max_points: int = 400, ds: float | None = None,
                         ds_max: float | None = None, tol: float = LOCATE_RTOL, period: int = 1):
    """Follow a branch of equilibria of a flow (fixed points of a map) through a parameter by
    pseudo-arclength continuation, with its bifurcation points located.

    Any ``DynamicalSystem`` with isolated equilibria, polynomial or not (``s**alpha``, the
    exact flow, a direction flow): the residual and its Jacobian come from ``system.to_jax()``.
    The branch turns at folds (its ``values`` then go back), so a fold is passed, not ended at.
    Along it (module docstring for the test functions):

    - **fold**, with its quadratic coefficient ``a`` (x' = beta + a x^2 on the centre
      manifold, beta increasing with the parameter);
    - **branch point**, where two branches cross (transcritical, pitchfork): start from it
      again (``start=point``) to follow the other branch;
    - **hopf** (a flow), with ``omega`` and the first Lyapunov coefficient ``l1``
      (Kuznetsov's normalisation, eq. 3.20: negative is supercritical);
    - **period doubling** (a flip: a multiplier -1) and **neimark-sacker** (a pair on the unit
      circle, with its angle ``theta``) for a map; start from a period doubling with
      ``period=2`` to follow the period-2 points born there.

    Parameters
    ----------
    system : DynamicalSystem
        A flow, or a map (``time == "discrete"``, e.g. ``derive(spec).discrete()``, whose
        right-hand side is the increment of one step).
    start : array or BifurcationPoint
        A state near an equilibrium at ``params[param]`` (Newton corrects it), or a located
        point: a branch point or a map's period doubling starts the branch born there, any
        other point the branch through it.
    ranges : {str: (lo, hi)}
        The parameter to vary and the range the branch stays in (one entry); it ends where it
        leaves the range or the state domain (its last point placed on the edge).
    params : mapping
        Every parameter (``param``'s entry is the starting value unless ``start`` is a point).
    direction : "both", "up" or "down"
        Continue in both directions from the start, or only towards increasing
        (decreasing) parameter.
    max_points : int
        At most this many points in each direction.
    ds, ds_max : float, optional
        First and largest arclength step (defaults: 1/200 and 1/20 of the range's width,
        at least 1e-3 and 1e-2 times the start's size).
    tol : float
        Relative width to which points are located.
    period : int
        For a map: continue points of this period (fixed points of the k-th iterate).

    Returns
    -------
    Branch
        With ``eigenvalues`` (a map: multipliers), ``points`` and ``status``.

    Raises
    ------
    TypeError
        ``system`` is no DynamicalSystem, ``params`` no mapping, ``start`` no state.
    ValueError
        Unknown or shaped parameter, a range not containing the start, Newton not converging
        at the start, a symmetry (equilibria in families: continue on the quotient), bad
        options.
    """
    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a derivations.DynamicalSystem; got {type(system).__name__}")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")
    if getattr(system, "symmetry", None) is not None:
        raise ValueError(f"{label(system)} declares a continuous symmetry: its equilibria come in families, which "
                         "pseudo-arclength continuation cannot follow (the Jacobian is singular along the orbit)")
    param, lo, hi = one_range(system, ranges)
    check_direction(direction, max_points)
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 1:
        raise ValueError(f"period must be an int >= 1; got {period!r}")
    if period > 1 and system.time != "discrete":
        raise ValueError("period > 1 is for maps (points of period k of a discrete-time system); this system is a flow")
    tol = check_tol(tol)
    from ._bifurcation import BifurcationPoint

    v_start = float(start.value) if isinstance(start, BifurcationPoint) else None
    base = dict(params)
    if v_start is None:
        if param not in base:
            raise ValueError(f"params must give the starting value of {param!r} (or start from a BifurcationPoint)")
        v_start = float(numeric(base[param]))
    checked = system.check_params({**base, param: v_start})
    if not lo - RANGE_SLACK * max(1.0, abs(lo)) <= v_start <= hi + RANGE_SLACK * max(1.0, abs(hi)):
        raise ValueError(f"the start's {param} = {v_start:g} lies outside the range [{lo:g}, {hi:g}]")
    problem = EquilibriumProblem(system, param, checked, int(period))
    return _branch(problem, start, v_start, lo, hi, direction, int(max_points), ds, ds_max, tol)


def check_range(system: DynamicalSystem, ranges: Any, what: str = "ranges", keys: int = 1,
                ) -> dict[str, tuple[float, float]]:
    """``{param: (lo, hi)}``: parameters of ``system`` (scalar ones), each with finite lo < hi;
    ``keys`` of them (or 1 to ``keys`` when given as a range of counts by the caller)."""
    if not isinstance(ranges, Mapping):
        raise TypeError(f"{what} must be a dict {{parameter: (lo, hi)}}, e.g. {{'eta': (0.0, 0.4)}}; "
                        f"got {type(ranges).__name__}")
    out = {}
    for name, rng in ranges.items():
        if not isinstance(name, str) or name not in system.param_names:
            raise ValueError(f"{what} names {name!r}, not a parameter of {label(system)}; choose one of {system.param_names}")
        if tuple(system.param_shapes.get(name, ())) != ():
            raise ValueError(f"{name!r} has one value per mode (shape {system.param_shapes[name]}); continue a scalar parameter")
        try:
            lo, hi = (float(w) for w in rng)
        except (TypeError, ValueError):
            raise ValueError(f"{what}[{name!r}] must be a pair (lo, hi) of numbers; got {rng!r:.60}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"{what}[{name!r}] must be finite with lo < hi; got ({lo}, {hi})")
        out[name] = (lo, hi)
    if not 1 <= len(out) <= keys:
        need = "one parameter" if keys == 1 else f"1 to {keys} parameters"
        raise ValueError(f"{what} must give {need}; got {len(out)}")
    return out


def check_direction(direction: str, max_points: int | None = None) -> None:
    """The options every continuation shares: ``direction`` one of "both", "up", "down", and
    ``max_points`` (when given) an int >= 2."""
    if direction not in ("both", "up", "down"):
        raise ValueError(f"direction must be 'both', 'up' or 'down'; got {direction!r}")
    if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer))
                                   or max_points < 2):
        raise ValueError(f"max_points must be an int >= 2; got {max_points!r}")


def one_range(system: DynamicalSystem, ranges: Any) -> tuple[str, float, float]:
    """(param, lo, hi) of a one-parameter range."""
    ((param, (lo, hi)),) = check_range(system, ranges).items()
    return param, lo, hi


def _inside_fn(problem: EquilibriumProblem, lo: float, hi: float):
    bounds = np.array(problem.system.state_bounds(), dtype=float).reshape(problem.n, 2)
    dom = problem.system.param_domain.get(problem.param)
    plo = max(lo, float(dom.start)) if dom is not None else lo
    phi = min(hi, float(dom.end)) if dom is not None else hi
    slack = 1e-9

    def inside(u):
        x, v = u[: problem.n], u[problem.n]
        if not (plo - slack * max(1.0, abs(plo)) <= v <= phi + slack * max(1.0, abs(phi))):
            return False
        big = slack * np.maximum(1.0, np.abs(x))
        return bool(np.all(x >= bounds[:, 0] - big) and np.all(x <= bounds[:, 1] + big))

    def boundary(u_in, u_out):
        """The hyperplane of the edge crossed between u_in and u_out."""
        v = u_out[problem.n]
        if v > phi:
            return _unit(problem.n, problem.n), phi
        if v < plo:
            return _unit(problem.n, problem.n), plo
        x = u_out[: problem.n]
        for i in range(problem.n):
            if x[i] < bounds[i, 0]:
                return _unit(problem.n, i), bounds[i, 0]
            if x[i] > bounds[i, 1]:
                return _unit(problem.n, i), bounds[i, 1]
        return None

    return inside, boundary, (plo, phi)


def _unit(n: int, i: int) -> np.ndarray:
    e = np.zeros(n + 1)
    e[i] = 1.0
    return e


def _branch(problem: EquilibriumProblem, start: Any, v0: float, lo: float, hi: float, direction: str,
            max_points: int, ds: float | None, ds_max: float | None, tol: float, t0: np.ndarray | None = None):
    from ._bifurcation import Branch

    u0, J0, point = _check_start(problem, start, v0)
    inside, boundary, (plo, phi) = _inside_fn(problem, lo, hi)
    size = 1.0 + float(np.max(np.abs(u0)))
    width = phi - plo
    ds = float(ds) if ds is not None else max(width / 200, 1e-3 * size)
    ds_max = float(ds_max) if ds_max is not None else max(width / 20, 1e-2 * size)
    if not (ds > 0 and ds_max >= ds):
        raise ValueError(f"ds must be > 0 and ds_max >= ds; got ds={ds}, ds_max={ds_max}")
    switched = t0 is not None
    if t0 is None and point is not None and (point.kind == "branch point"
                                             or (point.kind == "period doubling" and problem.period == 2)):
        born = _born_directions(problem, u0, J0)
        t0 = born[0] if born else None
        switched = t0 is not None
    if t0 is None and _singular(J0):
        born = _born_directions(problem, u0, J0)  # a branch point: go on along the parameter
        t0 = max(born, key=lambda d: abs(float(d[-1]))) if born else None
    if t0 is None:
        t0 = tangent_of(J0)
        if t0[-1] < 0 or (t0[-1] == 0 and t0[0] < 0):
            t0 = -t0
    runs = {}
    for name, sgn in (("up", 1.0), ("down", -1.0)):
        if direction in (name, "both"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs[name] = problem.tracer.trace(u0, sgn * t0, ds=ds, ds_min=1e-9 * size, ds_max=ds_max,
                                                  max_points=max_points, inside=inside, tests=problem.tests,
                                                  boundary=boundary, tol=tol, locate_tests=problem.raw_tests)
    up, down = runs.get("up"), runs.get("down")
    if up is not None and up.status == "closed":
        down = None
    us = (down.u[::-1] if down else []) + (up.u[1:] if up and down else up.u if up else [])
    Js = (down.jacobian[::-1] if down else []) + (up.jacobian[1:] if up and down else up.jacobian if up else [])
    located = (down.located[::-1] if down else []) + (up.located if up else [])
    if switched:  # leaving a branch point, the parameter component of the tangent starts at 0: no fold
        located = [loc for loc in located if not (problem.tests_names[loc.index] == "fold" and loc.after == 0)]
        # the branch point it was born at lies on it (its test is 0 there, so no sign change shows it)
        located.insert(len(down.located) if down else 0, Located(FLOW_TESTS.index("branch point"), u0, t0, J0, -1))
    status = ", ".join(f"{'start' if k == 'down' else 'end'}: {r.status}"
                       for k, r in (("down", down), ("up", up)) if r is not None)
    # a point exactly at an end (on the range's edge: eta = 0) shows no sign change; its test is 0
    # (not where it vanishes next to the end too: a line of non-hyperbolic points is no point)
    for run, other in ((down, up), (up, down)):
        if run is None or (other is not None and len(run.u) == 1 and other is down):
            continue
        nxt = run.tests[-2] if len(run.u) > 1 else other.tests[1] if other is not None and len(other.u) > 1 else None
        if nxt is not None:
            located += [Located(int(i), run.u[-1], run.tangent[-1], run.jacobian[-1], -1)
                        for i in np.flatnonzero((run.tests[-1] == 0.0) & (nxt != 0.0))]
    U = np.array(us)
    evs, stable = [], []
    for u, J in zip(U, Js):  # the Jacobians the trace evaluated
        ev = problem.spectrum(u, J)
        evs.append(ev)
        stable.append(problem.stable(ev))
    points = []
    for loc in located:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = problem.point(loc.index, loc.u, loc.tangent, loc.jacobian)
        if p is not None and not any(q.kind == p.kind and abs(q.value - p.value) <= 10 * tol * max(1.0, abs(p.value))
                                     and np.allclose(q.x, p.x, rtol=1e-6, atol=1e-9) for q in points):
            points.append(p)
    n = problem.n
    along = [int(np.argmin(np.max(np.abs(U - np.concatenate([p.x, [p.value]])), axis=1))) for p in points]
    points = [p for _, p in sorted(zip(along, points), key=lambda a: a[0])]  # in the branch's order
    return Branch(read_only(U[:, n]), read_only(U[:, :n]), read_only(stable, bool),
                  read_only(np.array(evs).reshape(len(U), -1), complex), tuple(points), problem.param,
                  FrozenMap(dict(problem.base)), status, problem.system.name or "",
                  tuple(problem.system.state_names), problem.period)


def _singular(J: np.ndarray) -> bool:
    """dR/du (N x (N+1)) of rank < N: a branch point."""
    sv = np.linalg.svd(J, compute_uv=False)
    return bool(sv.size and sv[-1] <= NOISE * max(1.0, float(sv[0])))


def _born_directions(problem: EquilibriumProblem, u0: np.ndarray, J0: np.ndarray) -> list[np.ndarray]:
    """The tangents of the branches that cross at a branch point, the likelier new one first:
    for period 2 of a map at a flip (a branch point of x -> F(F(x)) - x), the one not along the
    fixed points of period 1; otherwise the one with the larger state component (the branch
    that leaves a trivial branch x = const, as the non-collapsed branch leaves the collapsed
    one)."""
    dirs = _switch_directions(problem, u0, J0)
    if len(dirs) < 2:
        return dirs
    if problem.discrete and problem.period == 2:
        vj1 = _compiled(problem.system, problem.param, 1)[0]
        _, J1 = vj1(u0, problem.args)
        t1 = tangent_of(np.asarray(J1, dtype=float))
        return sorted(dirs, key=lambda d: abs(float(d @ t1)))
    return sorted(dirs, key=lambda d: -float(d[:-1] @ d[:-1]))


def continued_bifurcation(system: DynamicalSystem, param: str, values: np.ndarray, base: Mapping, tol: float):
    """The diagram of ``bifurcation`` for a system without exact equilibria: every equilibrium
    that multi-start Newton finds at the two ends of the sweep, continued by
    pseudo-arclength through the range (``continue_equilibrium``), the branches born at the
    branch points found followed too; the equilibria at each sampled value read off the
    branches (interpolated and corrected by Newton)."""
    from ._bifurcation import Bifurcation, BifurcationPoint, Branch, _sampled, _unique
    from ._equilibria import equilibria

    lo, hi = float(values[0]), float(values[-1])
    problem = EquilibriumProblem(system, param, base)
    # coarse steps: the diagram's equilibria are corrected at the sampled values, and points are
    # located to tol whatever the step; a branch's own shape needs no finer trace
    step, step_max = (hi - lo) / 50, (hi - lo) / 8
    starts = []
    for v in (lo, hi):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = equilibria(system, {**base, param: v})
        starts += [(np.asarray(e.x, dtype=float), v) for e in found]
    branches: list = []
    pending: list = []
    for x, v in starts:
        if any(_on_branch(b, x, v) for b in branches):
            continue
        try:
            br = _branch(problem, x, v, lo, hi, "both", 2000, step, step_max, tol)
        except ValueError:
            br = _constant_branch(problem, x, values)
            if br is None:
                continue
        branches.append(br)
        pending += [p for p in br.points if p.kind == "branch point"]
        got = problem.correct_at(x, v)
        if got is None or _singular(got[1]):
            pending.append(BifurcationPoint("branch point", v, x, param=param))
    for p in pending:
        u0, J0 = problem.correct_at(p.x, p.value) or (None, None)
        if u0 is None:
            continue
        for d in _born_directions(problem, u0, J0):
            try:
                br = _branch(problem, p, p.value, lo, hi, "both", 2000, step, step_max, tol, t0=d)
            except ValueError:
                continue
            if not any(_same_branch(br, b) for b in branches):
                branches.append(br)
    points = _merged([p for b in branches for p in b.points], problem)
    points = [_as_diagram_kind(problem, p) for p in points]
    points = _unique([p for p in points if p is not None], tol)
    rows = [_sampled_on(problem, branches, float(v)) for v in values]
    X, S, M = _sampled(rows, problem.n)
    shown = tuple(Branch(b.values, b.x, b.stable, b.eigenvalues) for b in branches)
    return Bifurcation(param, read_only(values), X, S, M, tuple(points), system.state_names, shown,
                       system.name, FrozenMap({k: numeric(v) for k, v in base.items()}))


def _merged(points: list, problem: EquilibriumProblem) -> list:
    """The points of several branches, each branch point once: two branches that cross both
    locate it (a branch through a pitchfork also sees a fold of the parameter there), the
    corrector is ill-conditioned next to it, and the location whose Jacobian dR/d(x, param) is
    closest to rank deficient is kept; folds and branch points next to it are dropped."""
    def sv(p):
        _, J = problem.tracer.evaluate(np.concatenate([p.x, [p.value]]))
        return float(np.linalg.svd(J, compute_uv=False)[-1])

    bps = sorted((p for p in points if p.kind == "branch point"), key=sv)
    kept: list = []
    for p in bps:
        if not any(_near(p, q) for q in kept):
            kept.append(p)
    return kept + [p for p in points if p.kind != "branch point"
                   and not (p.kind == "fold" and any(_near(p, q) for q in kept))]


def _near(p, q, rel: float = MERGE_RTOL) -> bool:
    a, b = np.concatenate([p.x, [p.value]]), np.concatenate([q.x, [q.value]])
    return float(np.max(np.abs(a - b))) <= rel * (1.0 + float(np.max(np.abs(a))))


def _constant_branch(problem: EquilibriumProblem, x: np.ndarray, values: np.ndarray):
    """An equilibrium where Newton cannot work (the Jacobian is not finite there: s = 0 of
    s**a with a < 1) that does not move: x is an equilibrium at every sampled value. Its
    stability at each value is ``classify``'s (one-sided where the state domain ends there)."""
    from ._bifurcation import Branch
    from ._stability import classify

    f = problem.system.to_numpy(checked=False)
    stable = []
    for v in values:
        prm = problem.params_at(float(v))
        with np.errstate(all="ignore"):
            r = np.asarray(f(0.0, x, prm), dtype=float)
        if not np.all(np.isfinite(r)) or float(np.max(np.abs(r))) > FLOAT_ZERO * (1.0 + float(np.max(np.abs(x)))):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stable.append(bool(classify(problem.system, x, prm).stable))
    return Branch(read_only(values), read_only(np.tile(x, (len(values), 1))), read_only(stable, bool))


def _as_diagram_kind(problem: EquilibriumProblem, p):
    """A branch point named by its normal form (transcritical or pitchfork) for the diagram."""
    from dataclasses import replace

    if p.kind != "branch point":
        return p
    u = np.concatenate([np.asarray(p.x), [p.value]])
    forms = problem.forms(u)
    _, J = problem.tracer.evaluate(u)
    n = problem.n
    H = np.stack([np.stack([np.real(forms.B(np.eye(n)[j], np.eye(n)[k])) for k in range(n)], axis=1)
                  for j in range(n)], axis=1)  # H[i, j, k] = d^2 R_i / dx_j dx_k
    kind = normal_form_kind(forms.A, J[:, n], H)
    return replace(p, kind=kind if kind in ("transcritical", "pitchfork") else "branch point")


def _on_branch(b, x: np.ndarray, v: float) -> bool:
    scale = 1.0 + float(np.max(np.abs(x)))
    d = np.max(np.abs(b.x - x), axis=1) + np.abs(b.values - v)
    k = int(np.argmin(d))
    if d[k] <= COARSE_RTOL * scale:
        return True
    # between two consecutive points
    for j in (k - 1, k):
        if 0 <= j < len(b.values) - 1:
            a = np.concatenate([b.x[j], [b.values[j]]])
            c = np.concatenate([b.x[j + 1], [b.values[j + 1]]])
            w = np.concatenate([x, [v]])
            seg = c - a
            s = float(np.clip((w - a) @ seg / max(float(seg @ seg), 1e-300), 0, 1))
            if float(np.max(np.abs(a + s * seg - w))) <= SAME_BRANCH_RTOL * scale * max(1.0, float(np.linalg.norm(seg))):
                return True
    return False


def _same_branch(a, b) -> bool:
    mid = len(a.values) // 2
    return _on_branch(b, a.x[mid], float(a.values[mid]))


def _sampled_on(problem: EquilibriumProblem, branches, v: float) -> list:
    """(x, stable) of every branch's equilibria at the value v: a branch point there as it is,
    else interpolated between the two branch points around v and corrected by Newton."""
    out: list = []

    def add(x, st):
        if not any(np.allclose(x, y, rtol=1e-6, atol=1e-9) for y, _ in out):
            out.append((x, st))

    for b in branches:
        vals = np.asarray(b.values)
        for j in np.flatnonzero(vals == v):
            add(b.x[j], bool(b.stable[j]))
        for j in range(len(vals) - 1):
            a, c = vals[j], vals[j + 1]
            if not (min(a, c) < v < max(a, c)):
                continue
            w = (v - a) / (c - a)
            guess = b.x[j] + w * (b.x[j + 1] - b.x[j])
            got = problem.correct_at(guess, v)
            if got is None:
                add(guess, bool(b.stable[j if w < 0.5 else j + 1]))
            else:
                add(got[0][: problem.n], problem.stable(problem.spectrum(got[0], got[1])))
    return sorted(out, key=lambda p: tuple(p[0]))
