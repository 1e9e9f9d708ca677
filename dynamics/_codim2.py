"""continue_curve(system, point, ranges, params): a curve of fold or Hopf points in two
parameters, followed from a located point by pseudo-arclength continuation
(``dynamics._arclength``), with its codimension-two points located.

Fold curve: unknowns (x, p1, p2), residual [f(x, p); g(x, p)] with g the minimally augmented
fold function, the last component of the solution of the bordered system
[[A, b], [c^T, 0]] [v; g] = [0; 1] (A = df/dx; b, c the left and right null vectors at the
start, renewed every ``RENEW_EVERY`` points): g = 0 exactly where A is singular, and
differentiable (Govaerts, Numerical Methods for Bifurcations of Dynamical Equilibria, 2000;
Kuznetsov, Elements of Applied Bifurcation Theory, 10.2.2). Along it:

- cusp: the quadratic coefficient w . B(v, v) changes sign (v, w the bordered right and left
  null vectors);
- Bogdanov-Takens: w . v changes sign (a Jordan block: the left and right null vectors are
  orthogonal);
- zero-Hopf: prod_{i<j} (l_i + l_j) over the eigenvalues other than the zero one, where a
  purely imaginary pair is there.

Hopf curve: unknowns (x, p1, p2, v, kappa), residual [f; (A^2 + kappa I) v; c . v - 1; d . v],
with c, d an orthonormal basis of the critical eigenplane at the start (Kuznetsov 10.2.2, the
standard augmented system for Hopf points, regular through Bogdanov-Takens points where
kappa = omega^2 passes through 0 into neutral saddles). Along it:

- Bogdanov-Takens: kappa changes sign;
- Bautin (generalised Hopf): the first Lyapunov coefficient l1 changes sign (kappa > 0);
- zero-Hopf: the product of the other eigenvalues (det A / kappa) changes sign;
- double-Hopf: prod_{i<j} (l_i + l_j) over the other eigenvalues, where a second imaginary
  pair is there.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from derivations import DynamicalSystem, FrozenMap, Params

from ._arclength import Tracer, tangent_of
from ._continuation import _floored, pair_sums, signed_mean
from ._display import html_table
from ._normal_form import Multilinear, compiled_forms, fold_coefficient, hopf_coefficients
from ._prepare import label, numeric, read_only
from ._tolerance import COARSE_RTOL, CRITICAL_RTOL, FLOAT_ZERO, LOCATE_RTOL, RANGE_SLACK, TEST_NOISE, check_tol
from ._value import Value

if TYPE_CHECKING:
    from ._bifurcation import BifurcationPoint

__all__ = ["continue_curve", "fold_location", "BifurcationCurve", "CURVE_TESTS"]

CURVE_TESTS = {
    "fold": ("cusp", "bogdanov-takens", "zero-hopf"),
    "hopf": ("bogdanov-takens", "bautin", "zero-hopf", "double-hopf"),
}

HOMOTOPY_STEPS = 8
"""Warm-started Newton solves that ``fold_location`` takes from the point's parameter value to
the one asked for."""

RENEW_EVERY = 8
"""Accepted points between two renewals of the fold curve's borders (and the Hopf curve's
reference plane)."""


@dataclass(frozen=True, eq=False)
class BifurcationCurve(Value):
    """A curve of fold or Hopf points in two parameters.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    kind : str
        "fold" or "hopf".
    params_varied : (str, str)
        The two parameters: the one the starting point was located in, then the other.
    values : numpy.ndarray
        (m, 2) their values along the curve.
    x : numpy.ndarray
        (m, n_states) the equilibrium.
    coefficients : mapping str -> numpy.ndarray
        (m,) along the curve: ``a`` (fold: the quadratic coefficient), or ``omega`` and
        ``l1`` (Hopf: frequency and first Lyapunov coefficient; NaN past a Bogdanov-Takens
        point, where the curve continues as neutral saddles, ``kappa`` = omega^2 < 0).
    points : tuple of BifurcationPoint
        The codimension-two points located on it (``params`` holds both values).
    params : mapping
        The other parameters, held fixed.
    status : str
        Why the curve ends at each end (as ``Branch.status``).
    system_name, state_names
    """

    kind: str
    params_varied: tuple[str, str]
    values: np.ndarray
    x: np.ndarray
    coefficients: Mapping[str, np.ndarray]
    points: tuple = ()
    params: Mapping[str, float | np.ndarray] = field(default_factory=lambda: FrozenMap({}))
    status: str = ""
    system_name: str = ""
    state_names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        p1, p2 = self.params_varied
        m = len(self.values)
        span = (f"{p1} in [{np.min(self.values[:, 0]):.6g}, {np.max(self.values[:, 0]):.6g}], "
                f"{p2} in [{np.min(self.values[:, 1]):.6g}, {np.max(self.values[:, 1]):.6g}]") if m else "empty"
        pts = ", ".join(f"{p.kind} at ({p.params.get(p1, np.nan):.6g}, {p.params.get(p2, np.nan):.6g})" for p in self.points[:6])
        name = f"{self.system_name}: " if self.system_name else ""
        return f"BifurcationCurve({name}{self.kind} curve, {m} points, {span}{'; ' + pts if pts else ''})"

    def _repr_html_(self) -> str:
        p1, p2 = self.params_varied
        rows = [[p.kind, p.params.get(p1), p.params.get(p2)] + [float(v) for v in p.x[:6]] for p in self.points]
        names = list(self.state_names[:6]) or [f"x{i}" for i in range(min(6, self.x.shape[1]))]
        return html_table(f"{self.kind} curve{' of ' + self.system_name if self.system_name else ''}: "
                          f"{len(self.values)} points", ["kind", p1, p2] + names, rows, [self.status])

    def at(self, name: str, value: float) -> np.ndarray:
        """The other parameter's values where the curve crosses ``name`` = ``value``.

        Parameters
        ----------
        name : str
            One of ``params_varied``.
        value : float
            Its value.

        Returns
        -------
        numpy.ndarray
            One entry per crossing, by linear interpolation between curve points (as accurate
            as their spacing allows: continue with a smaller ``ds_max`` for more); empty if
            the curve does not reach ``value``.

        Raises
        ------
        ValueError
            ``name`` is not one of the curve's parameters.
        """
        if name not in self.params_varied:
            raise ValueError(f"name must be one of {self.params_varied}; got {name!r}")
        i = self.params_varied.index(name)
        a, b = self.values[:, i], self.values[:, 1 - i]
        out = []
        for k in range(len(a) - 1):
            if (a[k] - value) * (a[k + 1] - value) <= 0 and a[k] != a[k + 1]:
                w = (value - a[k]) / (a[k + 1] - a[k])
                out.append(b[k] + w * (b[k + 1] - b[k]))
        return read_only(np.unique(np.round(out, 14)) if out else np.zeros(0))


@lru_cache(maxsize=32)
def _fold_compiled(system: DynamicalSystem, p1: str, p2: str):
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)
    n = system.n_states

    def split(u, P):
        return u[:n], {**P["fixed"], p1: u[n], p2: u[n + 1]}

    def g_of(u, P):
        x, prm = split(u, P)
        A = jax.jacfwd(lambda y: f(0.0, y, prm))(x)
        M = jnp.block([[A, P["b"][:, None]], [P["c"][None, :], jnp.zeros((1, 1))]])
        rhs = jnp.zeros(n + 1).at[n].set(1.0)
        return jnp.linalg.solve(M, rhs)[n], A, M

    def residual(u, P):
        x, prm = split(u, P)
        return jnp.concatenate([f(0.0, x, prm), jnp.atleast_1d(g_of(u, P)[0])])

    vj = jax.jit(lambda u, P: (residual(u, P), jax.jacfwd(residual)(u, P)))
    return vj


@lru_cache(maxsize=32)
def _hopf_compiled(system: DynamicalSystem, p1: str, p2: str):
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)
    n = system.n_states

    def residual(u, P):
        x, prm = u[:n], {**P["fixed"], p1: u[n], p2: u[n + 1]}
        v, kappa = u[n + 2: 2 * n + 2], u[2 * n + 2]
        A = jax.jacfwd(lambda y: f(0.0, y, prm))(x)
        return jnp.concatenate([f(0.0, x, prm), A @ (A @ v) + kappa * v,
                                jnp.atleast_1d(P["c"] @ v - 1.0), jnp.atleast_1d(P["d"] @ v)])

    vj = jax.jit(lambda u, P: (residual(u, P), jax.jacfwd(residual)(u, P)))
    return vj


@lru_cache(maxsize=32)
def _system_forms(system: DynamicalSystem):
    f = system.to_jax(checked=False)
    return compiled_forms(lambda x, P: f(0.0, x, P))


@lru_cache(maxsize=32)
def _param_derivative(system: DynamicalSystem, param: str):
    """df/dparam as a jitted function of (x, params)."""
    import jax

    f = system.to_jax(checked=False)
    return jax.jit(lambda x, P: jax.jacfwd(lambda a: f(0.0, x, {**P, param: a}))(P[param]))


class _Curve:
    """What both curves share: the layout of u, the Jacobian A and forms at a point."""

    def __init__(self, system: DynamicalSystem, p1: str, p2: str, fixed: Mapping[str, Any]):
        import jax.numpy as jnp

        self.system, self.p1, self.p2 = system, p1, p2
        self.n = system.n_states
        self.fixed = {k: numeric(v) for k, v in fixed.items() if k not in (p1, p2)}
        self.fixed_j = {k: jnp.asarray(v) for k, v in self.fixed.items()}
        self._f = system.to_jax(checked=False)
        self._forms = _system_forms(system)

    def prm(self, u) -> dict:
        return {**self.fixed, self.p1: float(u[self.n]), self.p2: float(u[self.n + 1])}

    def forms(self, u) -> Multilinear:
        import jax.numpy as jnp

        prm = {**self.fixed_j, self.p1: jnp.asarray(u[self.n]), self.p2: jnp.asarray(u[self.n + 1])}
        return Multilinear.at(self._forms, np.asarray(u[: self.n], dtype=float), prm)


class FoldCurve(_Curve):
    kind = "fold"

    def __init__(self, system, p1, p2, fixed):
        super().__init__(system, p1, p2, fixed)
        self.vj = _fold_compiled(system, p1, p2)
        self.args = None

    def start(self, x: np.ndarray, v1: float, v2: float) -> np.ndarray:
        u = np.concatenate([x, [v1, v2]])
        self.renew(u)
        return u

    def renew(self, u: np.ndarray) -> None:
        import jax.numpy as jnp

        A = self.forms(u).A
        U, _, Vt = np.linalg.svd(A)
        self.args = {"fixed": self.fixed_j, "b": jnp.asarray(U[:, -1]), "c": jnp.asarray(Vt[-1])}

    def null_vectors(self, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        b, c = np.asarray(self.args["b"]), np.asarray(self.args["c"])
        M = np.block([[A, b[:, None]], [c[None, :], np.zeros((1, 1))]])
        e = np.zeros(n + 1)
        e[n] = 1.0
        v = np.linalg.solve(M, e)[:n]
        w = np.linalg.solve(M.T, e)[:n]
        return v, w

    def tests(self, u, t, J) -> np.ndarray:
        forms = self.forms(u)
        A = forms.A
        v, w = self.null_vectors(A)
        cusp = float(w @ np.real(forms.B(v, v)))
        bt = float(w @ v)
        ev = np.linalg.eigvals(A)
        others = np.delete(ev, int(np.argmin(np.abs(ev))))
        scale = max(1.0, float(np.max(np.abs(A))))
        return np.array([cusp, bt, _floored(pair_sums(others), scale)])

    def coefficients(self, u) -> dict:
        import jax.numpy as jnp

        prm = {**self.fixed_j, self.p1: jnp.asarray(u[self.n]), self.p2: jnp.asarray(u[self.n + 1])}
        f1 = np.asarray(_param_derivative(self.system, self.p1)(jnp.asarray(u[: self.n]), prm))
        return {"a": fold_coefficient(self.forms(u), f1)}

    def point(self, i: int, u, t, J):
        from ._bifurcation import BifurcationPoint

        kind = CURVE_TESTS["fold"][i]
        ev = np.linalg.eigvals(self.forms(u).A)
        scale = max(1.0, float(np.max(np.abs(ev))))
        coef = {}
        if kind == "zero-hopf":
            pair = ev[ev.imag > COARSE_RTOL * scale]
            if pair.size == 0 or float(np.min(np.abs(pair.real))) > CRITICAL_RTOL * scale:
                return None
            coef["omega"] = float(pair[np.argmin(np.abs(pair.real))].imag)
        if kind == "bogdanov-takens" and int(np.sum(np.abs(ev) <= 1e-4 * scale)) < 2:
            return None
        return BifurcationPoint(kind, float(u[self.n]), u[: self.n], param=self.p1, params=self.prm(u), coefficients=coef)

    def x_of(self, u):
        return u[: self.n]


class HopfCurve(_Curve):
    kind = "hopf"

    def __init__(self, system, p1, p2, fixed):
        super().__init__(system, p1, p2, fixed)
        self.vj = _hopf_compiled(system, p1, p2)
        self.args = None

    def start(self, x: np.ndarray, v1: float, v2: float) -> np.ndarray:
        A = self.forms(np.concatenate([x, [v1, v2]])).A
        ev, V = np.linalg.eig(A)
        k = int(np.argmin(np.where(ev.imag > 0, np.abs(ev.real), np.inf)))
        if not np.isfinite(np.where(ev.imag > 0, np.abs(ev.real), np.inf)[k]):
            raise ValueError("the starting point has no complex pair of eigenvalues: not a Hopf point")
        c, d = self._plane(V[:, k])
        import jax.numpy as jnp

        self.args = {"fixed": self.fixed_j, "c": jnp.asarray(c), "d": jnp.asarray(d)}
        return np.concatenate([x, [v1, v2], c, [float(ev[k].imag) ** 2]])

    @staticmethod
    def _plane(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.real(q), np.imag(q)
        c = a / np.linalg.norm(a) if np.linalg.norm(a) > FLOAT_ZERO else b / np.linalg.norm(b)
        d = b - (b @ c) * c if np.linalg.norm(a) > FLOAT_ZERO else a - (a @ c) * c
        return c, d / np.linalg.norm(d)

    def renew(self, u: np.ndarray) -> np.ndarray:
        """A new reference plane (c, d) from the current v and A v; u rescaled so that c . v = 1."""
        import jax.numpy as jnp

        n = self.n
        v = u[n + 2: 2 * n + 2]
        Av = self.forms(u).A @ v
        c = v / np.linalg.norm(v)
        d = Av - (Av @ c) * c
        if np.linalg.norm(d) < FLOAT_ZERO * max(1.0, np.linalg.norm(Av)):
            return u
        self.args = {"fixed": self.fixed_j, "c": jnp.asarray(c), "d": jnp.asarray(d / np.linalg.norm(d))}
        out = u.copy()
        out[n + 2: 2 * n + 2] = v / float(c @ v)
        return out

    def _others(self, A: np.ndarray, kappa: float) -> np.ndarray:
        ev = np.linalg.eigvals(A)
        target = np.sqrt(complex(-kappa))  # +- i omega, or +- a real pair for a neutral saddle
        drop = [int(np.argmin(np.abs(ev - target)))]
        rest = [i for i in range(len(ev)) if i not in drop]
        j = rest[int(np.argmin(np.abs(ev[rest] + target)))]
        return np.delete(ev, drop + [j])

    def tests(self, u, t, J) -> np.ndarray:
        n = self.n
        kappa = float(u[2 * n + 2])
        forms = self.forms(u)
        others = self._others(forms.A, kappa)
        scale = max(1.0, float(np.max(np.abs(forms.A))))
        l1 = np.nan
        if kappa > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                l1 = hopf_coefficients(forms)[1]
        return np.array([kappa, l1, signed_mean(others) if others.size else 1.0, _floored(pair_sums(others), scale)])

    def coefficients(self, u) -> dict:
        kappa = float(u[2 * self.n + 2])
        if kappa <= 0:
            return {"omega": np.nan, "l1": np.nan, "kappa": kappa}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            omega, l1 = hopf_coefficients(self.forms(u))
        return {"omega": omega, "l1": l1, "kappa": kappa}

    def point(self, i: int, u, t, J):
        from ._bifurcation import BifurcationPoint

        kind = CURVE_TESTS["hopf"][i]
        n = self.n
        kappa = float(u[2 * n + 2])
        A = self.forms(u).A
        others = self._others(A, kappa)
        scale = max(1.0, float(np.max(np.abs(A))))
        coef: dict[str, float] = {}
        if kind == "double-hopf":
            pair = others[others.imag > COARSE_RTOL * scale]
            if pair.size == 0 or float(np.min(np.abs(pair.real))) > CRITICAL_RTOL * scale or kappa <= 0:
                return None
            coef.update(omega=float(np.sqrt(kappa)), omega2=float(pair[np.argmin(np.abs(pair.real))].imag))
        elif kind == "zero-hopf":
            if kappa <= 0:
                return None
            coef["omega"] = float(np.sqrt(kappa))
        elif kind == "bautin":
            coef["omega"] = float(np.sqrt(max(kappa, 0.0)))
        return BifurcationPoint(kind, float(u[n]), u[:n], param=self.p1, params=self.prm(u), coefficients=coef)

    def x_of(self, u):
        return u[: self.n]


def continue_curve(system: DynamicalSystem, point: BifurcationPoint, ranges: Mapping[str, tuple[float, float]],
                   params: Params, *, max_points: int = 400, ds: float | None = None,
                   ds_max: float | None = None, tol: float = LOCATE_RTOL, direction: str = "both") -> BifurcationCurve:
    """Follow a fold or Hopf point of a flow through two parameters: the curve on which it
    persists, with the codimension-two points on it located (module docstring).

    Parameters
    ----------
    system : DynamicalSystem
        A flow with isolated equilibria.
    point : BifurcationPoint
        A fold or Hopf point located by ``continue_equilibrium`` (or ``bifurcation``) in its
        parameter ``point.param``, the curve's first parameter.
    ranges : {str: (lo, hi)}
        The second parameter and the range the curve stays in (its starting value is
        ``params``'s); optionally also the first parameter's range (default: its domain, else
        unbounded, so that the curve ends after ``max_points``).
    params : mapping
        Every parameter (the point's ``params`` take precedence for the first).
    max_points, ds, ds_max, tol, direction
        As for ``continue_equilibrium``.

    Returns
    -------
    BifurcationCurve

    Raises
    ------
    TypeError
        ``point`` is no BifurcationPoint, ``params`` no mapping.
    ValueError
        ``point`` is not a fold or Hopf point, the parameters are the same or unknown, the
        point does not converge on the curve's defining system, bad options.
    """
    from ._bifurcation import BifurcationPoint
    from ._continuation import check_direction, check_range

    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a derivations.DynamicalSystem; got {type(system).__name__}")
    if not isinstance(point, BifurcationPoint):
        raise TypeError(f"point must be a BifurcationPoint (a fold or Hopf point from continue_equilibrium); "
                        f"got {type(point).__name__}")
    if point.kind not in CURVE_TESTS:
        raise ValueError(f"point must be a fold or a hopf point; got a {point.kind} point")
    if system.time != "continuous":
        raise ValueError("continue_curve follows folds and Hopf points of flows; this system is a map")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")
    p1 = point.param
    if p1 not in system.param_names:
        raise ValueError(f"point.param must name a parameter of {label(system)}; got {p1!r}")
    rng = check_range(system, ranges, keys=2)
    second = [k for k in rng if k != p1]
    if len(second) != 1:
        raise ValueError(f"ranges must name a second parameter besides the point's own {p1!r}; got {sorted(rng)}")
    p2 = second[0]
    lo2, hi2 = rng[p2]
    window = rng.get(p1)
    check_direction(direction, max_points)
    tol = check_tol(tol)
    dom1 = system.param_domain.get(p1)
    if window is None:
        lo1 = float(dom1.start) if dom1 is not None else -np.inf
        hi1 = float(dom1.end) if dom1 is not None else np.inf
    else:
        lo1, hi1 = window
    base = {**dict(params), **{k: v for k, v in point.params.items()}, p1: point.value}
    if p2 not in base:
        raise ValueError(f"params must give the starting value of {p2!r}")
    checked = system.check_params(base)
    v1, v2 = float(point.value), float(numeric(checked[p2]))
    curve = (FoldCurve if point.kind == "fold" else HopfCurve)(system, p1, p2, checked)
    u0 = curve.start(np.asarray(point.x, dtype=float), v1, v2)
    tracer = Tracer(curve.vj, curve.args)
    res = tracer.correct(u0, np.eye(len(u0))[curve.n + 1], v2)
    if res is None:
        raise ValueError(f"the {point.kind} point does not converge on the {point.kind} curve at {p2} = {v2:g}")
    u0 = res[0]
    n = curve.n
    dom2 = system.param_domain.get(p2)
    plo2 = max(lo2, float(dom2.start)) if dom2 is not None else lo2
    phi2 = min(hi2, float(dom2.end)) if dom2 is not None else hi2
    bounds = np.array(system.state_bounds(), dtype=float).reshape(n, 2)

    def inside(u):
        x = u[:n]
        big = 1e-9 * np.maximum(1.0, np.abs(x))
        return bool(lo1 <= u[n] <= hi1 and plo2 - RANGE_SLACK <= u[n + 1] <= phi2 + RANGE_SLACK
                    and np.all(x >= bounds[:, 0] - big) and np.all(x <= bounds[:, 1] + big))

    def boundary(u_in, u_out):
        for i, (a, b) in ((n, (lo1, hi1)), (n + 1, (plo2, phi2))):
            e = np.eye(len(u_in))[i]
            if u_out[i] > b and np.isfinite(b):
                return e, b
            if u_out[i] < a and np.isfinite(a):
                return e, a
        return None

    size = 1.0 + float(np.max(np.abs(u0[: n + 2])))
    width = (phi2 - plo2) if np.isfinite(phi2 - plo2) else size
    ds = float(ds) if ds is not None else max(width / 200, 1e-3 * size)
    ds_max = float(ds_max) if ds_max is not None else max(width / 20, 1e-2 * size)
    _, J0 = tracer.evaluate(u0)
    t0 = tangent_of(J0)
    if t0[n + 1] < 0:
        t0 = -t0
    runs = {}
    for name, sgn in (("up", 1.0), ("down", -1.0)):
        if direction in (name, "both"):
            runs[name] = _trace(curve, u0, sgn * t0, ds, ds_max, max_points, inside, boundary, tol)
    up, down = runs.get("up"), runs.get("down")
    rows = (down[0][::-1] if down else []) + ((up[0][1:] if down else up[0]) if up else [])
    located = (down[1][::-1] if down else []) + (up[1] if up else [])
    status = ", ".join(f"{'start' if k == 'down' else 'end'}: {r[2]}"
                       for k, r in (("down", down), ("up", up)) if r is not None)
    U = np.array(rows)
    coefs = [curve.coefficients(u) for u in U]
    keys = list(coefs[0]) if coefs else []
    points = []
    for p in located:
        if p is not None and not any(q.kind == p.kind and np.allclose(q.x, p.x, rtol=COARSE_RTOL, atol=TEST_NOISE)
                                     and abs(q.value - p.value) <= COARSE_RTOL * max(1.0, abs(p.value)) for q in points):
            points.append(p)
    return BifurcationCurve(point.kind, (p1, p2), read_only(U[:, n: n + 2]), read_only(U[:, :n]),
                            FrozenMap({k: read_only([c[k] for c in coefs]) for k in keys}), tuple(points),
                            FrozenMap(dict(curve.fixed)), status, system.name or "", tuple(system.state_names))


def _trace(curve, u0, t0, ds, ds_max, max_points, inside, boundary, tol):
    """The curve in chunks of RENEW_EVERY points, the borders (reference plane) renewed between
    them: (points, located BifurcationPoints, status)."""
    rows, located = [u0], []
    u, t, h = u0, t0, ds
    status = "max_points"
    while len(rows) < max_points:
        tracer = Tracer(curve.vj, curve.args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = tracer.trace(u, t, ds=h, ds_min=1e-9 * (1.0 + float(np.max(np.abs(u)))), ds_max=ds_max,
                               max_points=min(RENEW_EVERY + 1, max_points - len(rows) + 1), inside=inside,
                               tests=curve.tests, boundary=boundary, tol=tol, closes=False)
        for loc in run.located:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                located.append(curve.point(loc.index, loc.u, loc.tangent, loc.jacobian))
        rows += run.u[1:]
        if len(run.u) > 1:
            h = min(ds_max, max(float(np.linalg.norm(run.u[-1] - run.u[-2])), 1e-9))
        if run.status != "max_points":
            status = run.status
            break
        u, t = run.u[-1], run.tangent[-1]
        if len(rows) > 4 and float(np.linalg.norm(u - rows[0])) < 0.5 * h:
            status = "closed"
            break
        renewed = curve.renew(u)
        if renewed is not None:
            u = renewed
        _, J = Tracer(curve.vj, curve.args).evaluate(u)
        t = tangent_of(J, t)
    return rows, located, status


def fold_location(system: DynamicalSystem, point: BifurcationPoint, param: str, params: Params):
    """The fold's location as a JAX function of another parameter: ``locate(value) -> (v, x)``,
    the first parameter's value v and the state x of the fold at ``param`` = value, found by
    Newton (``optimistix.root_find``) on the minimally augmented fold system [f; g] = 0, moved
    from ``point`` to ``value`` in ``HOMOTOPY_STEPS`` warm-started solves (one Newton solve
    from a distant point can land on another singular point, such as a collapsed one; for
    values far along the curve use ``continue_curve``). It can be jitted and differentiated: ``jax.grad`` of the
    location is the implicit derivative -[D(f, g)/D(x, v)]^-1 D(f, g)/D(value), the slope of
    the fold curve (for the Euclidean SimSiam mode, d eta*/d sigma2 = -1/(4 (1 + sigma2)^2)).

    Parameters
    ----------
    system : DynamicalSystem
    point : BifurcationPoint
        A fold located in ``point.param``.
    param : str
        The other parameter, the function's argument.
    params : mapping
        Every other parameter's value (the point's ``params`` take precedence).

    Returns
    -------
    callable
        JAX-traceable ``locate(value)`` -> (v, x); a ``value`` far from the point's may
        leave Newton's basin (an error from optimistix, not a silent answer).

    Raises
    ------
    TypeError, ValueError
        As ``continue_curve``.
    """
    import jax.numpy as jnp
    import optimistix as optx

    from ._bifurcation import BifurcationPoint

    if not isinstance(point, BifurcationPoint) or point.kind != "fold":
        raise TypeError(f"point must be a fold BifurcationPoint; got {point!r:.80}")
    if param not in system.param_names or param == point.param:
        raise ValueError(f"param must be a parameter of {label(system)} other than {point.param!r}; got {param!r}")
    base = system.check_params({**dict(params), **dict(point.params), point.param: point.value})
    curve = FoldCurve(system, point.param, param, base)
    u0 = curve.start(np.asarray(point.x, dtype=float), float(point.value), float(numeric(base[param])))
    f = system.to_jax(checked=False)
    n = curve.n
    b, c, fixed = curve.args["b"], curve.args["c"], curve.fixed_j
    import jax

    def fn(y, value):
        x, v = y[:n], y[n]
        prm = {**fixed, point.param: v, param: value}
        A = jax.jacfwd(lambda z: f(0.0, z, prm))(x)
        M = jnp.block([[A, b[:, None]], [c[None, :], jnp.zeros((1, 1))]])
        g = jnp.linalg.solve(M, jnp.zeros(n + 1).at[n].set(1.0))[n]
        return jnp.concatenate([f(0.0, x, prm), jnp.atleast_1d(g)])

    y0 = jnp.asarray(u0[: n + 1])
    solver = optx.Newton(rtol=1e-12, atol=1e-12)

    start = float(numeric(base[param]))

    def locate(value):
        value = jnp.asarray(value, dtype=float)

        def step(y, k):  # from the point's value to ``value`` in HOMOTOPY_STEPS Newton solves, each warm
            w = start + (value - start) * (k + 1) / HOMOTOPY_STEPS
            return optx.root_find(fn, solver, y, args=w, max_steps=64).value, None

        y, _ = jax.lax.scan(step, y0, jnp.arange(HOMOTOPY_STEPS))
        return y[n], y[:n]

    return locate
