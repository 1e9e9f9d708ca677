"""continue_cycle(system, start, ranges, params): a family of periodic orbits of a flow followed
through a parameter by pseudo-arclength continuation (``dynamics._arclength``), with its folds
of cycles, period doublings, Neimark-Sacker points and branch points located.

A cycle of period T is the profile x(s) = y(s T) on s in [0, 1], x' = T f(x, p), x(0) = x(1).
It is discretised by orthogonal collocation (Doedel; Kuznetsov, Elements of Applied Bifurcation
Theory, 10.3.2): a mesh of ``ntst`` intervals, on each a polynomial of degree ``ncol`` through
ncol + 1 equally spaced nodes, the equation imposed at the ncol Gauss-Legendre points. The
phase is fixed by Doedel's integral condition int_0^1 <x(s), x_ref'(s)> ds = 0 against a
reference cycle (the last one), so the unknowns are (profile, T, p) and the residual has one
equation fewer than unknowns: a curve for the ``Tracer``. The residual and its dense Jacobian
are JAX's (jit of jacfwd), compiled once per (system, parameter, ntst, ncol): the mesh, the
reference and the other parameters are arguments. Every few points the mesh is moved to
equidistribute Doedel's monitor |x^(ncol)|^(1 / (ncol + 1)) and the reference is renewed.

The Floquet multipliers come from the collocation Jacobian itself: condensing the interior
nodes of each interval gives the map x(s_j) -> x(s_(j+1)) of the variational equation, and the
product of these over the mesh is the monodromy matrix (its accuracy is the collocation's,
superconvergent at the mesh points). The multiplier nearest 1 is the trivial one. Test
functions (Kuznetsov 10.3.2):

- fold of cycles: the parameter component of the tangent, dp/ds;
- period doubling: prod (1 + mu_i) over the nontrivial multipliers;
- Neimark-Sacker: prod_{i<j} (mu_i mu_j - 1) over them, a point where a complex pair lies on
  the unit circle (a real pair with product 1 is a neutral saddle, not reported);
- branch point: det [dR/du; tangent].

Products are taken as sign x geometric mean (``_continuation.signed_mean``). The dense linear
algebra (a few hundred unknowns) runs on one BLAS thread, restored on return: at this size
threads cost more than they gain, and many times more on a loaded machine.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from derivations import DynamicalSystem, FrozenMap, Params

from ._arclength import GROW, Tracer, tangent_of
from ._continuation import check_direction, one_range, signed_mean
from ._display import html_table
from ._prepare import label, numeric, read_only
from ._tolerance import COARSE_RTOL, CRITICAL_RTOL, FLOAT_RTOL, LOCATE_RTOL, RANGE_SLACK, SAME_BRANCH_RTOL, check_tol
from ._value import Value

if TYPE_CHECKING:
    from ._bifurcation import BifurcationPoint
    from ._solution import Solution

__all__ = ["continue_cycle", "CycleFamily", "CYCLE_TESTS"]

CYCLE_TESTS = ("fold of cycles", "period doubling", "neimark-sacker", "branch point")

ADAPT_EVERY = 4
"""Accepted points between two mesh adaptations (and renewals of the phase reference)."""

FINE = 16
"""Points per mesh interval at which a profile is evaluated for its maxima and minima."""


# -- the collocation scheme ----------------------------------------------------------------


@lru_cache(maxsize=16)
def _scheme(ncol: int):
    """Constants of the scheme on [0, 1]: nodes z_k = k/ncol, Gauss points g_c and weights
    w_c, the Lagrange values L[c, k] = l_k(g_c), derivatives D[c, k] = l_k'(g_c), and the
    ncol-th derivatives of the basis (constants)."""
    nodes = np.linspace(0.0, 1.0, ncol + 1)
    g, w = np.polynomial.legendre.leggauss(ncol)
    g, w = 0.5 * (g + 1.0), 0.5 * w
    basis = [np.poly1d(np.delete(nodes, k), r=True) / np.prod(nodes[k] - np.delete(nodes, k)) for k in range(ncol + 1)]
    L = np.array([[b(z) for b in basis] for z in g])
    D = np.array([[b.deriv()(z) for b in basis] for z in g])
    top = np.array([math.factorial(ncol) * b.coeffs[0] for b in basis])
    return nodes, g, w, L, D, top, basis


@lru_cache(maxsize=32)
def _coefficients(ncol: int, deriv: int) -> np.ndarray:
    """(ncol + 1, ncol + 1): row k holds the coefficients of l_k^(deriv), highest power first."""
    out = np.zeros((ncol + 1, ncol + 1))
    for k, b in enumerate(_scheme(ncol)[-1]):
        c = (b.deriv(deriv) if deriv else b).coeffs
        out[k, ncol + 1 - len(c):] = c
    return out


def _basis_at(ncol: int, z: np.ndarray, deriv: int = 0) -> np.ndarray:
    """(len(z), ncol + 1): the Lagrange basis (or its derivative) at local points z."""
    z = np.atleast_1d(np.asarray(z, dtype=float))
    return (z[:, None] ** np.arange(ncol, -1, -1)[None, :]) @ _coefficients(ncol, deriv).T


def _pieces(X: np.ndarray, ntst: int, ncol: int) -> np.ndarray:
    """(ntst, ncol + 1, n): the nodes of each interval from the (ntst ncol + 1, n) profile."""
    idx = np.arange(ntst)[:, None] * ncol + np.arange(ncol + 1)[None, :]
    return X[idx]


def _node_times(mesh: np.ndarray, ncol: int) -> np.ndarray:
    h = np.diff(mesh)
    z = _scheme(ncol)[0]
    inner = (mesh[:-1, None] + h[:, None] * z[None, :-1]).ravel()
    return np.concatenate([inner, mesh[-1:]])


def _evaluate(X: np.ndarray, mesh: np.ndarray, ncol: int, s: np.ndarray, deriv: int = 0) -> np.ndarray:
    """The piecewise polynomial profile (or its derivative in s) at times s in [0, 1]."""
    ntst = len(mesh) - 1
    s = np.clip(np.asarray(s, dtype=float), 0.0, 1.0)
    j = np.clip(np.searchsorted(mesh, s, side="right") - 1, 0, ntst - 1)
    h = mesh[j + 1] - mesh[j]
    z = (s - mesh[j]) / h
    B = _basis_at(ncol, z, deriv) / (h[:, None] ** deriv)
    P = _pieces(X, ntst, ncol)[j]
    return np.einsum("mk,mkn->mn", B, P)


def _adapted_mesh(X: np.ndarray, mesh: np.ndarray, ncol: int) -> np.ndarray:
    """The mesh of as many intervals that equidistributes |x^(ncol)|^(1/(ncol+1)) (Doedel),
    the density averaged over neighbouring intervals and floored at a tenth of its mean."""
    ntst = len(mesh) - 1
    h = np.diff(mesh)
    top = _scheme(ncol)[5]
    d = np.einsum("k,jkn->jn", top, _pieces(X, ntst, ncol)) / h[:, None] ** ncol
    rho = np.linalg.norm(d, axis=1) ** (1.0 / (ncol + 1))
    rho = (np.roll(rho, 1) + 2 * rho + np.roll(rho, -1)) / 4  # periodic
    rho = rho + 0.1 * float(np.sum(rho * h)) + 1e-300
    cum = np.concatenate([[0.0], np.cumsum(rho * h)])
    new = np.interp(np.linspace(0.0, cum[-1], ntst + 1), cum, mesh)
    new[0], new[-1] = 0.0, 1.0
    return new


# -- the residual ----------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _compiled(system: DynamicalSystem, param: str, ntst: int, ncol: int):
    """value_and_jacobian(u, args) of the collocation residual, u = (profile / sqrt(N), T, p),
    args = {"h": interval widths, "ref": x_ref' at the Gauss points, "P": other parameters}."""
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)
    n = system.n_states
    N = ntst * ncol + 1
    root = math.sqrt(N)
    _, _, w, L, D, _, _ = _scheme(ncol)
    L, D, w = jnp.asarray(L), jnp.asarray(D), jnp.asarray(w)
    idx = jnp.asarray(np.arange(ntst)[:, None] * ncol + np.arange(ncol + 1)[None, :])

    def residual(u, args):
        h = args["h"]
        X = u[: N * n].reshape(N, n) * root
        T, v = u[N * n], u[N * n + 1]
        P = X[idx]
        xg = jnp.einsum("ck,jkn->jcn", L, P)
        dg = jnp.einsum("ck,jkn->jcn", D, P)
        fx = f(0.0, xg, {**args["P"], param: v})
        col = dg - (T * h)[:, None, None] * fx
        phase = jnp.sum((h[:, None] * w[None, :])[..., None] * xg * args["ref"])
        return jnp.concatenate([col.ravel(), X[0] - X[-1], phase[None]])

    return jax.jit(lambda u, args: (residual(u, args), jax.jacfwd(residual)(u, args)))


class CycleProblem:
    """The collocation problem of one (system, parameter, ntst, ncol) with the other
    parameters fixed: packing of unknowns, the current mesh and phase reference, Floquet
    multipliers from the Jacobian, test functions and the reading of located points."""

    def __init__(self, system: DynamicalSystem, param: str, base: Mapping[str, Any], ntst: int, ncol: int):
        import jax.numpy as jnp

        self.system, self.param, self.ntst, self.ncol = system, param, ntst, ncol
        self.n = system.n_states
        self.N = ntst * ncol + 1
        self.root = math.sqrt(self.N)
        self.base = {k: numeric(v) for k, v in base.items() if k != param}
        self.P = {k: jnp.asarray(v) for k, v in self.base.items()}
        self.vj = _compiled(system, param, ntst, ncol)
        self.mesh = np.linspace(0.0, 1.0, ntst + 1)
        self.tracer = Tracer(self.vj, None)
        self.f = system.to_jax(checked=False)

    # packing
    def pack(self, X: np.ndarray, T: float, v: float) -> np.ndarray:
        return np.concatenate([np.asarray(X, dtype=float).ravel() / self.root, [T, v]])

    def profile(self, u: np.ndarray) -> np.ndarray:
        return u[: self.N * self.n].reshape(self.N, self.n) * self.root

    def times(self) -> np.ndarray:
        return _node_times(self.mesh, self.ncol)

    def set_reference(self, X: np.ndarray, mesh: np.ndarray | None = None) -> None:
        """A new mesh (optional) and the phase reference X (given on that mesh)."""
        import jax.numpy as jnp

        if mesh is not None:
            self.mesh = np.asarray(mesh, dtype=float)
        g = _scheme(self.ncol)[1]
        h = np.diff(self.mesh)
        s = (self.mesh[:-1, None] + h[:, None] * g[None, :]).ravel()
        ref = _evaluate(X, self.mesh, self.ncol, s, 1).reshape(self.ntst, self.ncol, self.n)
        self.tracer.args = {"h": jnp.asarray(h), "ref": jnp.asarray(ref), "P": self.P}

    def remesh(self, u: np.ndarray, t: np.ndarray | None = None):
        """u (and tangent t) moved onto the adapted mesh, the reference renewed to u's cycle."""
        X = self.profile(u)
        new = _adapted_mesh(X, self.mesh, self.ncol)
        s = _node_times(new, self.ncol)
        u1 = self.pack(_evaluate(X, self.mesh, self.ncol, s), u[-2], u[-1])
        t1 = None
        if t is not None:
            t1 = self.pack(_evaluate(self.profile(t), self.mesh, self.ncol, s), t[-2], t[-1])
            t1 = t1 / np.linalg.norm(t1)
        self.set_reference(self.profile(u1), new)
        return u1, t1

    # Floquet multipliers
    def monodromy(self, J: np.ndarray) -> np.ndarray:
        """The monodromy matrix from the collocation Jacobian by condensation of the interior
        nodes of each interval (the profile's scaling cancels)."""
        n, c = self.n, self.ncol
        M = np.eye(n)
        for j in range(self.ntst):
            rows = slice(j * c * n, (j + 1) * c * n)
            A = J[rows, j * c * n: (j * c + c + 1) * n]
            step = -np.linalg.solve(A[:, n:], A[:, :n])[-n:]
            M = step @ M
        return M

    def multipliers(self, J: np.ndarray) -> np.ndarray:
        """All n multipliers, the trivial one (nearest 1) first, then by decreasing modulus."""
        mu = np.linalg.eigvals(self.monodromy(J))
        k = int(np.argmin(np.abs(mu - 1.0)))
        rest = np.delete(mu, k)
        return np.concatenate([mu[k: k + 1], rest[np.argsort(-np.abs(rest), kind="stable")]])

    def tests(self, u: np.ndarray, t: np.ndarray, J: np.ndarray) -> np.ndarray:
        mu = self.multipliers(J)[1:]
        i, j = np.triu_indices(len(mu), 1)
        sign, logdet = np.linalg.slogdet(np.vstack([J, t[None, :]]))
        bp = float(sign) * math.exp(logdet / len(t)) if sign != 0 else 0.0
        return np.array([t[-1], signed_mean(1.0 + mu), signed_mean(mu[i] * mu[j] - 1.0), bp])

    def point(self, index: int, u: np.ndarray, t: np.ndarray, J: np.ndarray):
        """The BifurcationPoint a located sign change of test ``index`` is, or None."""
        from ._bifurcation import BifurcationPoint

        name = CYCLE_TESTS[index]
        mu = self.multipliers(J)
        rest = mu[1:]
        T, v = float(u[-2]), float(u[-1])
        coef: dict[str, float] = {"period": T}
        X = self.profile(u)
        if name == "fold of cycles":
            if float(np.max(np.ptp(X, axis=0))) < SAME_BRANCH_RTOL * (1.0 + float(np.max(np.abs(X)))):
                return BifurcationPoint("hopf", v, np.mean(X, axis=0), param=self.param,
                                        params={**self.base, self.param: v}, coefficients={"period": T})
            sv = np.linalg.svd(np.vstack([J, t[None, :]]), compute_uv=False)
            if sv[-1] <= FLOAT_RTOL * sv[0]:
                return None
            k = int(np.argmin(np.abs(rest - 1.0))) if rest.size else None
            if k is not None:
                coef["multiplier"] = float(np.real(rest[k]))
        elif name == "period doubling":
            if rest.size == 0 or float(np.min(np.abs(rest + 1.0))) > CRITICAL_RTOL:
                return None
            coef["multiplier"] = float(np.real(rest[np.argmin(np.abs(rest + 1.0))]))
        elif name == "neimark-sacker":
            on = rest[(np.abs(rest.imag) > COARSE_RTOL) & (np.abs(np.abs(rest) - 1.0) < CRITICAL_RTOL)]
            if on.size == 0:
                return None
            coef["theta"] = float(np.max(np.abs(np.angle(on))))
        return BifurcationPoint(name, v, X[0], param=self.param, params={**self.base, self.param: v}, coefficients=coef)


# -- the result ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CycleFamily(Value):
    """A family of periodic orbits of a flow across a parameter, from ``continue_cycle``.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    values : numpy.ndarray
        (m,) parameter values along the family (they turn back at a fold of cycles).
    period : numpy.ndarray
        (m,) the periods.
    x_max, x_min : numpy.ndarray
        (m, n_states) each state's largest and smallest value over the cycle.
    amplitude : numpy.ndarray
        (m,) half the largest peak-to-peak range, max_i (x_max_i - x_min_i) / 2 (a circle's
        radius).
    multipliers : numpy.ndarray
        (m, n_states) complex Floquet multipliers, the trivial one (nearest 1, exactly 1 up to
        the discretisation error) first, then by decreasing modulus.
    stable : numpy.ndarray of bool
        (m,) every nontrivial multiplier inside the unit circle.
    profiles : numpy.ndarray
        (m, ntst ncol + 1, n_states) each cycle at its mesh nodes, first node = last node;
        y(t) = profiles[i, k] at t = times[i, k] * period[i].
    times : numpy.ndarray
        (m, ntst ncol + 1) the nodes' times in [0, 1] (the mesh moves along the family).
    points : tuple of BifurcationPoint
        Located folds of cycles, period doublings, Neimark-Sacker points and branch points,
        in the family's order; ``x`` is a point on the cycle, ``coefficients`` hold ``period``
        and ``multiplier`` (fold, period doubling) or ``theta`` (the angle of the pair on the
        unit circle, Neimark-Sacker).
    param : str
        The parameter varied.
    params : mapping str -> float
        The other parameters, held fixed.
    status : str
        Why the family ends at each end ("start: ..., end: ...", as for ``Branch``; ``hopf``:
        the cycles shrank onto an equilibrium, the point reported as a ``hopf`` point with the
        limiting ``period``); a family from a Hopf point starts there.
    system_name : str
    state_names : tuple of str
    ntst, ncol : int
        Mesh intervals and collocation points per interval.
    """

    values: np.ndarray
    period: np.ndarray
    x_max: np.ndarray
    x_min: np.ndarray
    amplitude: np.ndarray
    multipliers: np.ndarray
    stable: np.ndarray
    profiles: np.ndarray
    times: np.ndarray
    points: tuple = ()
    param: str = ""
    params: Mapping[str, float] = field(default_factory=lambda: FrozenMap({}))
    status: str = ""
    system_name: str = ""
    state_names: tuple[str, ...] = ()
    ntst: int = 0
    ncol: int = 0

    def __repr__(self) -> str:
        m = len(self.values)
        span = f"[{np.min(self.values):.6g}, {np.max(self.values):.6g}]" if m else "[]"
        per = f", period in [{np.min(self.period):.6g}, {np.max(self.period):.6g}]" if m else ""
        name = f"{self.system_name}: " if self.system_name else ""
        pts = ", ".join(f"{p.kind} at {p.value:.6g}" for p in self.points[:6])
        more = f", ... ({len(self.points)} points)" if len(self.points) > 6 else ""
        return (f"CycleFamily({name}{m} cycles, {self.param} in {span}{per}, stable at {int(np.sum(self.stable))}"
                f"{'; ' + pts + more if pts else ''})")

    def _repr_html_(self) -> str:
        names = list(self.state_names) or [f"x{i}" for i in range(self.x_max.shape[1] if self.x_max.ndim == 2 else 0)]
        rows = [[p.kind, p.value] + [float(v) for v in p.x[: len(names)]]
                + [", ".join(f"{k} = {v:.6g}" for k, v in p.coefficients.items())] for p in self.points]
        m = len(self.values)
        span = f"[{np.min(self.values):.6g}, {np.max(self.values):.6g}]" if m else "[]"
        notes = [f"{m} cycles, {self.param} in {span}, stable at {int(np.sum(self.stable))}, "
                 f"ntst = {self.ntst}, ncol = {self.ncol}", self.status]
        return html_table(f"CycleFamily{' of ' + self.system_name if self.system_name else ''}: "
                          f"{len(self.points)} points located",
                          ["kind", self.param or "value"] + names + ["coefficients"], rows, notes)


# -- starting cycles -------------------------------------------------------------------------


def _from_hopf(problem: CycleProblem, point, eps: float):
    """(u0, t0): the first cycle near a Hopf point, x = x* + eps Re(q e^(2 pi i s)) corrected
    on the hyperplane through it orthogonal to that direction (the family's tangent at the
    Hopf point, where it crosses the line of constant profiles), and its tangent away from the
    Hopf point."""
    import jax
    import jax.numpy as jnp

    x0, v0 = np.asarray(point.x, dtype=float), float(point.value)
    prm = {**problem.P, problem.param: jnp.asarray(v0)}
    A = np.asarray(jax.jacfwd(lambda y: problem.f(0.0, y, prm))(jnp.asarray(x0)))
    ev, V = np.linalg.eig(A)
    cand = np.where(ev.imag > 0, np.abs(ev.real), np.inf)
    if not np.any(np.isfinite(cand)):
        raise ValueError(f"start is no Hopf point of {label(problem.system)}: the Jacobian there has no complex "
                         f"eigenvalue pair (eigenvalues {np.array2string(ev, precision=4)})")
    k = int(np.argmin(cand))
    omega = float(ev[k].imag)
    scale = 1e-4 * max(1.0, float(np.max(np.abs(ev))))
    if abs(ev[k].real) > scale:
        raise ValueError(f"start is no Hopf point of {label(problem.system)}: its nearest complex pair "
                         f"{ev[k]:.6g} is off the imaginary axis")
    q = V[:, k] / np.linalg.norm(V[:, k])
    s = problem.times()
    wave = np.real(q[None, :] * np.exp(2j * np.pi * s)[:, None])
    T0 = 2 * np.pi / omega
    uH = problem.pack(np.repeat(x0[None, :], problem.N, axis=0), T0, v0)
    d = problem.pack(wave, 0.0, 0.0)
    d = d / np.linalg.norm(d)
    problem.set_reference(np.repeat(x0[None, :], problem.N, axis=0) + wave)
    got = problem.tracer.correct(uH + eps * d, d)
    if got is None:
        raise ValueError(f"no cycle found near the Hopf point at {problem.param} = {v0:g}: the corrector does not "
                         "converge from the first cycle's guess (try a smaller ds)")
    u1, J1, _ = got
    t1 = tangent_of(J1)
    if float(t1 @ (u1 - uH)) < 0:
        t1 = -t1
    return u1, t1


def _orbit_arrays(start: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(start, "t") and hasattr(start, "y"):
        t, y = np.asarray(start.t, dtype=float), np.asarray(start.y, dtype=float)
        valid = getattr(start, "valid", None)
        if y.ndim != 2:
            raise ValueError(f"start must hold one trajectory (y of shape (n_times, {n})); got y of shape {y.shape}: "
                             "pass one run of a batch")
        if valid is not None:
            keep = np.asarray(valid, dtype=bool).reshape(-1)
            t, y = t[keep], y[keep]
    else:
        try:
            t, y = start
            t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
        except (TypeError, ValueError):
            raise TypeError("start must be a hopf BifurcationPoint, a Solution of one trajectory, or a (times, states) "
                            f"pair; got {type(start).__name__}") from None
    if t.ndim != 1 or y.shape != (len(t), n) or len(t) < 8 or not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ValueError(f"start's trajectory must be finite times (k,) and states (k, {n}) with k >= 8; "
                         f"got shapes {t.shape} and {y.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("start's times must increase strictly")
    return t, y


def _period_of(t: np.ndarray, y: np.ndarray, f_end: np.ndarray) -> float:
    """The time since the trajectory last crossed, in the same direction and near its end
    point, the plane through its end point normal to the flow there (a Poincare section)."""
    g = (y - y[-1]) @ f_end
    size = float(np.max(np.ptp(y, axis=0))) or 1.0
    for i in range(len(t) - 2, 0, -1):
        if g[i - 1] < 0 <= g[i]:
            tc = t[i - 1] + (t[i] - t[i - 1]) * (-g[i - 1]) / (g[i] - g[i - 1])
            xc = y[i - 1] + (y[i] - y[i - 1]) * (tc - t[i - 1]) / (t[i] - t[i - 1])
            if t[-1] - tc > 2 * (t[1] - t[0]) and np.linalg.norm(xc - y[-1]) < 0.05 * size:
                return float(t[-1] - tc)
    raise ValueError("start's trajectory never returns near its end point: it must cover at least one period "
                     "of a periodic orbit, densely sampled (integrate past the transient and save more times)")


def _from_orbit(problem: CycleProblem, start: Any, v0: float):
    """(u0, J0): the cycle through the end of an integrated trajectory, resampled on the mesh
    over its last period and corrected by Newton at the fixed parameter."""
    import jax.numpy as jnp
    from scipy.interpolate import CubicSpline

    t, y = _orbit_arrays(start, problem.n)
    prm = {**problem.P, problem.param: jnp.asarray(v0)}
    f_end = np.asarray(problem.f(0.0, jnp.asarray(y[-1]), prm))
    T = _period_of(t, y, f_end)
    X = CubicSpline(t, y, axis=0)(t[-1] - T + T * problem.times())
    X[-1] = X[0]
    problem.set_reference(X)
    e = np.zeros(problem.N * problem.n + 2)
    e[-1] = 1.0
    got = problem.tracer.correct(problem.pack(X, T, v0), e, v0)
    if got is None:
        raise ValueError(f"start's trajectory (period about {T:.6g}) is not near a periodic orbit of "
                         f"{label(problem.system)} at {problem.param} = {v0:g}: Newton does not converge from it")
    u, _ = problem.remesh(got[0])
    got = problem.tracer.correct(u, e, v0)
    if got is None:
        raise ValueError("the corrector does not converge on the adapted mesh; increase ntst")
    return got[0], got[1]


# -- the family ------------------------------------------------------------------------------


def continue_cycle(system: DynamicalSystem, start: BifurcationPoint | Solution | tuple[ArrayLike, ArrayLike],
                   ranges: Mapping[str, tuple[float, float]], params: Params, *,
                   ntst: int = 25, ncol: int = 4, max_points: int = 200, ds: float | None = None,
                   ds_max: float | None = None, direction: str = "both", tol: float = LOCATE_RTOL) -> CycleFamily:
    """Follow a family of periodic orbits of a flow through a parameter by pseudo-arclength
    continuation of their orthogonal-collocation discretisation, with the bifurcations of
    cycles located (module docstring for the method).

    Along the family, sign changes of the test functions locate:

    - **fold of cycles** (two cycles meet, a second multiplier reaches 1; the family turns);
    - **period doubling** (a multiplier passes through -1);
    - **neimark-sacker** (a complex pair crosses the unit circle, with its angle ``theta``);
    - **branch point** (two families of cycles cross).

    Parameters
    ----------
    system : DynamicalSystem
        A flow (``time == "continuous"``).
    start : BifurcationPoint, Solution or (times, states)
        A ``hopf`` point (from ``continue_equilibrium``): the family born there is followed
        away from it, from the cycle x* + eps Re(q e^(2 pi i s)) of period 2 pi / omega (q the
        critical eigenvector, eps = ``ds``) corrected on the hyperplane orthogonal to the
        family's tangent at the Hopf point. Or an integrated trajectory that has settled on a
        periodic orbit at ``params[param]``: a ``Solution`` of one run (its ``t``, ``y``,
        ``valid``) or a pair (times (k,), states (k, n_states)), covering at least one period
        densely; the period is the time since its last return to the section through its end
        point normal to the flow, the last period is resampled on the mesh (cubic spline) and
        corrected by Newton.
    ranges : {str: (lo, hi)}
        The parameter to vary and the range the family stays in (one entry).
    params : mapping
        Every parameter (``param``'s entry is the starting value unless ``start`` is a point).
    ntst, ncol : int
        Mesh intervals (>= 3) and Gauss collocation points per interval (1 to 7).
    max_points : int
        At most this many cycles in each direction (a family that closes on itself, an isola,
        is followed round until then).
    ds, ds_max : float, optional
        First and largest step in the arclength of u = (profile / sqrt(N), T, p), whose
        profile part measures the cycle's L2 norm (defaults: 1e-2 and 0.2 times 1 + the
        start's size).
    direction : "both", "up" or "down"
        From an orbit: continue both ways, or only towards increasing (decreasing) parameter.
        A family from a Hopf point is followed away from it whatever ``direction`` says.
    tol : float
        Relative width to which points are located.

    Returns
    -------
    CycleFamily
        The cycles' parameter values, periods, ranges, profiles on their meshes, Floquet
        multipliers (from the monodromy matrix condensed out of the collocation Jacobian; the
        trivial one first) and stability, the located points and why the family ended.

    Raises
    ------
    TypeError
        ``system`` is no DynamicalSystem, ``params`` no mapping, ``start`` none of the above.
    ValueError
        A map (discrete time), a system with a continuous symmetry, an unknown parameter or a
        bad range, a start outside the range, a BifurcationPoint that is no Hopf point, a
        trajectory that does not return, Newton not converging at the start, bad options.
    """
    from ._bifurcation import BifurcationPoint

    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a derivations.DynamicalSystem; got {type(system).__name__}")
    if system.time != "continuous":
        raise ValueError(f"continue_cycle follows periodic orbits of flows; {label(system)} is a map "
                         "(time == 'discrete'): continue its points of period k with continue_equilibrium(..., period=k)")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")
    if getattr(system, "symmetry", None) is not None:
        raise ValueError(f"{label(system)} declares a continuous symmetry: its cycles come in families, which "
                         "the collocation system cannot isolate (its Jacobian is singular); continue on the quotient")
    param, lo, hi = one_range(system, ranges)
    for name, val, least, most in (("ntst", ntst, 3, 10_000), ("ncol", ncol, 1, 7), ("max_points", max_points, 2, 10**7)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or not least <= val <= most:
            raise ValueError(f"{name} must be an int in [{least}, {most}]; got {val!r}")
    check_direction(direction)
    tol = check_tol(tol)
    hopf = isinstance(start, BifurcationPoint)
    if hopf and start.kind != "hopf":
        raise ValueError(f"start must be a 'hopf' BifurcationPoint (or an integrated orbit); got a {start.kind!r} point")
    base = dict(params)
    if hopf:
        v0 = float(start.value)
    elif param not in base:
        raise ValueError(f"params must give the starting value of {param!r} (or start from a Hopf point)")
    else:
        v0 = float(numeric(base[param]))
    checked = system.check_params({**base, param: v0})
    if not lo - RANGE_SLACK * max(1.0, abs(lo)) <= v0 <= hi + RANGE_SLACK * max(1.0, abs(hi)):
        raise ValueError(f"the start's {param} = {v0:g} lies outside the range [{lo:g}, {hi:g}]")
    problem = CycleProblem(system, param, checked, int(ntst), int(ncol))
    size = 1.0 + (float(np.max(np.abs(start.x))) if hopf else 0.0)
    ds = float(ds) if ds is not None else 1e-2 * size
    if not hopf and ds_max is None:
        size = 1.0 + float(np.max(np.abs(_orbit_arrays(start, problem.n)[1])))
    ds_max = float(ds_max) if ds_max is not None else 0.2 * size
    if not (ds > 0 and ds_max >= ds and np.isfinite(ds_max)):
        raise ValueError(f"ds must be > 0 and ds_max >= ds; got ds={ds}, ds_max={ds_max}")
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore")
        if hopf:
            u0, t0 = _from_hopf(problem, start, ds)
            runs = {"up": _trace(problem, u0, t0, ds, ds_max, int(max_points), lo, hi, tol)}
            mesh0 = None
        else:
            u0, J0 = _from_orbit(problem, start, v0)
            mesh0 = problem.mesh.copy()
            t0 = tangent_of(J0)
            if t0[-1] < 0:
                t0 = -t0
            runs = {}
            for name, sgn in (("up", 1.0), ("down", -1.0)):
                if direction in (name, "both"):
                    problem.set_reference(problem.profile(u0), mesh0)
                    runs[name] = _trace(problem, u0, sgn * t0, ds, ds_max, int(max_points), lo, hi, tol)
    up, down = runs.get("up"), runs.get("down")
    rows = (down["rows"][::-1] if down else []) + (up["rows"][1:] if up and down else up["rows"] if up else [])
    points = (down["points"][::-1] if down else []) + (up["points"] if up else [])
    if hopf:
        status = f"start: hopf at {param} = {v0:.10g}, end: {up['status']}"
    else:
        status = ", ".join(f"{'start' if k == 'down' else 'end'}: {r['status']}" for k, r in (("down", down), ("up", up))
                           if r is not None)
    return _family(problem, rows, points, status)


def _trace(problem: CycleProblem, u: np.ndarray, t: np.ndarray, ds: float, ds_max: float, max_points: int,
           lo: float, hi: float, tol: float) -> dict:
    """Continue from (u, t) in chunks of ADAPT_EVERY points, adapting the mesh and renewing the
    phase reference between chunks: rows (u, mesh, multipliers) and located points."""
    slack = 1e-9 * max(1.0, abs(lo), abs(hi))

    def inside(w):
        return bool(lo - slack <= w[-1] <= hi + slack and w[-2] > 0 and np.all(np.isfinite(w)))

    def boundary(w_in, w_out):
        if w_out[-1] > hi or w_out[-1] < lo:
            e = np.zeros(len(w_in))
            e[-1] = 1.0
            return e, (hi if w_out[-1] > hi else lo)
        return None

    size = 1.0 + float(np.max(np.abs(u)))
    rows, points = [], []
    _, J = problem.tracer.evaluate(u)
    rows.append((u, problem.mesh.copy(), problem.multipliers(J)))
    h, status = ds, "max_points"
    while len(rows) < max_points:
        chunk = problem.tracer.trace(u, t, ds=h, ds_min=1e-9 * size, ds_max=ds_max,
                                     max_points=min(ADAPT_EVERY, max_points - len(rows)) + 1, inside=inside,
                                     tests=problem.tests, boundary=boundary, tol=tol, closes=False)
        end = None
        for loc in chunk.located:
            p = problem.point(loc.index, loc.u, loc.tangent, loc.jacobian)
            if p is not None:
                points.append(p)
                if p.kind == "hopf":
                    end = loc
                    break
        for w in (chunk.u[1: end.after + 1] + [end.u]) if end is not None else chunk.u[1:]:
            _, J = problem.tracer.evaluate(w)
            rows.append((w, problem.mesh.copy(), problem.multipliers(J)))
        if end is not None:
            status = "hopf"
            break
        if chunk.status != "max_points":
            status = chunk.status
            break
        if len(chunk.u) >= 2:
            h = min(ds_max, GROW * float(np.linalg.norm(chunk.u[-1] - chunk.u[-2])))
        u, t = problem.remesh(chunk.u[-1], chunk.tangent[-1])
        got = problem.tracer.correct(u, t)
        if got is None:
            status = "step_too_small"
            break
        u, J, _ = got
        t = tangent_of(J, t)
    return {"rows": rows, "points": points, "status": status}


def _peak(Y: np.ndarray) -> np.ndarray:
    """Each column's maximum over a periodic uniform sampling, refined by the parabola through
    the largest sample and its neighbours."""
    k = np.argmax(Y, axis=0)
    cols = np.arange(Y.shape[1])
    a, b, c = Y[(k - 1) % len(Y), cols], Y[k, cols], Y[(k + 1) % len(Y), cols]
    curv = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.where(curv < 0, b - (c - a) ** 2 / (8 * curv), b)
    return np.maximum(top, b)


def _family(problem: CycleProblem, rows: list, points: list, status: str) -> CycleFamily:
    n, ncol = problem.n, problem.ncol
    fine = np.linspace(0.0, 1.0, problem.ntst * FINE + 1)
    values, period, xmax, xmin, mus, profiles, times = [], [], [], [], [], [], []
    for u, mesh, mu in rows:
        X = problem.profile(u)
        dense = _evaluate(X, mesh, ncol, fine)[:-1]
        values.append(u[-1])
        period.append(u[-2])
        xmax.append(_peak(dense))
        xmin.append(-_peak(-dense))
        mus.append(mu)
        profiles.append(X)
        times.append(_node_times(mesh, ncol))
    xmax, xmin = np.array(xmax).reshape(-1, n), np.array(xmin).reshape(-1, n)
    mus = np.array(mus, dtype=complex).reshape(-1, n)
    stable = np.all(np.abs(mus[:, 1:]) < 1.0, axis=1)
    return CycleFamily(read_only(values), read_only(period), read_only(xmax), read_only(xmin),
                       read_only(np.max(xmax - xmin, axis=1) / 2 if len(rows) else np.zeros(0)),
                       read_only(mus, complex), read_only(stable, bool),
                       read_only(np.array(profiles).reshape(len(rows), problem.N, n)),
                       read_only(np.array(times).reshape(len(rows), problem.N)), tuple(points), problem.param,
                       FrozenMap(dict(problem.base)), status, problem.system.name or "",
                       tuple(problem.system.state_names), problem.ntst, problem.ncol)
