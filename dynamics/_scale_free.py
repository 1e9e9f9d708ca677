"""Fixed points in scale-free variables: where a scale-invariant flow settles while weight decay
shrinks its scale.

A system that declares ``scaling`` (powers w_i: the flow commutes with y_i -> lambda^w_i y_i)
and a ``weight_decay`` eta (whose terms -w_i eta y_i are the generator of that scaling) splits
into its scale and its direction: the flow with weight decay is the eta = 0 flow in the
rescaled variables y_i e^(w_i eta t) and a stretched time, so the scale-free direction settles
where the eta = 0 flow has an equilibrium. These come in rays y -> lambda^w y; each is found
once, on the weighted sphere N(y) = sum_i |y_i|^(2/w_i) = 1 (the states with w_i > 0; N scales
as lambda^2). States on a declared invariant ``manifold`` are eliminated first (entrywise:
for K modes, s_k = p_k^2/alpha_p), so the unknowns are the remaining states. Newton's method
(``scipy.optimize.least_squares``, Levenberg-Marquardt) from several starts finds the
equilibria, which are classified by the eigenvalues of the Jacobian on the tangent space of
the sphere, with the ray direction w * y (the symmetry's zero mode) projected out. The search
is not exhaustive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivations import DynamicalSystem, Params

from ._display import short_array
from ._tolerance import COARSE_RTOL, RTOL
from ._value import Value

__all__ = ["ScaleFreePoint", "scale_free_equilibria"]


@dataclass(frozen=True, eq=False)
class ScaleFreePoint(Value):
    """One equilibrium of the scale-free flow.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    direction : numpy.ndarray
        The states off the manifold, flat, on the weighted unit sphere (for K modes with
        p ~ lambda: ``p / ||p||``, shape (K,)).
    state : numpy.ndarray
        The flat state at that direction (unit scale), manifold states included.
    residual : float
        max ``|rhs|`` there (eta = 0).
    eigenvalues : numpy.ndarray
        Of the direction flow: the Jacobian on the sphere's tangent space, the ray's zero
        mode projected out (one fewer than the free states).
    stable : bool or None
        True if every projected eigenvalue has a negative real part, False if one is
        positive, None if undecided (zero eigenvalues within the differencing error and no
        positive one: a non-hyperbolic point, e.g. where some modes have collapsed).
    """

    direction: np.ndarray
    state: np.ndarray
    residual: float
    eigenvalues: np.ndarray
    stable: bool | None

    def __repr__(self) -> str:
        kind = {True: "stable", False: "unstable", None: "undecided"}[self.stable]
        return f"ScaleFreePoint(direction={short_array(self.direction, 4)}, {kind})"


def scale_free_equilibria(
    system: DynamicalSystem,
    params: Params,
    *,
    n_starts: int = 24,
    seed: int = 0,
    tol: float = RTOL,
) -> tuple[ScaleFreePoint, ...]:
    """Equilibria of the scale-free flow of a system that declares scaling and weight decay.

    Parameters
    ----------
    system : DynamicalSystem
        A flow declaring ``scaling`` and ``weight_decay`` (``derive(spec).modes(K)`` of a
        scale-invariant loss, its exact ``ExactModeSystem``, or a system built by hand);
        a declared ``manifold`` eliminates its states.
    params : mapping str -> float
        The system's parameters; the weight decay is set to 0 (it only moves the scale).
    n_starts : int
        Newton starts: the isotropic direction, each single entry, and random directions.
    seed : int
        For the random starts.
    tol : float
        Residual (max ``|rhs|`` of the free states) below which a converged point counts
        (default ``RTOL``).

    Returns
    -------
    tuple of ScaleFreePoint
        Distinct directions, sorted stable first.

    Raises
    ------
    TypeError
        ``system`` is not a DynamicalSystem.
    ValueError
        The system is a map, declares no scaling or no weight decay, has no scaled state off
        its manifold, or ``n_starts`` is not a positive int.
    """
    from scipy.optimize import least_squares

    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a derivations.DynamicalSystem; got {type(system).__name__}")
    scaling, decay = system.scaling, system.weight_decay
    if system.time != "continuous" or not scaling or decay is None:
        raise ValueError(
            "scale_free_equilibria needs a flow that declares scaling powers and a weight decay (system.scaling, "
            f"system.weight_decay; a scale-invariant derived model such as the cosine loss); {system.name or 'this system'} "
            f"has time={system.time!r}, scaling={scaling}, weight_decay={decay}"
        )
    if isinstance(n_starts, bool) or not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
        raise ValueError(f"n_starts must be a positive int; got {n_starts!r}")
    values = dict(system.check_params({**params, decay: 0.0} if decay in system.param_names else params))
    flow = _ScaleFreeFlow.build(system, values)
    n = len(flow.w)
    found: list[ScaleFreePoint] = []
    for x0 in _newton_starts(flow.w, flow.scaled, n_starts, seed):
        sol = least_squares(flow.residual, flow.on_sphere(x0), method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15,
                            max_nfev=200 * n)
        if not np.all(np.isfinite(sol.x)) or flow.norm(sol.x) == 0:
            continue
        x = flow.on_sphere(sol.x)
        res = float(np.max(np.abs(flow.rate(x))))
        if not np.isfinite(res) or res > tol:
            continue
        if any(np.max(np.abs(p.direction - x)) < COARSE_RTOL for p in found):
            continue
        eig, size = _direction_eigenvalues(flow.rate, x, flow.w, flow.scaled)
        undecided = np.abs(eig.real) <= COARSE_RTOL * max(1.0, size)  # zero within the differencing error
        stable = bool(np.all(eig.real < 0)) if not np.any(undecided) else (False if np.any(eig.real[~undecided] > 0) else None)
        found.append(ScaleFreePoint(x, flow.state_of(x), res, eig, stable))
    order = {True: 0, None: 1, False: 2}
    return tuple(sorted(found, key=lambda p: order[p.stable]))


@dataclass(frozen=True)
class _ScaleFreeFlow:
    """The flow on the free (off-manifold) states as a function of their flat vector x, with
    the scaling powers ``w`` of its entries: the full state, the free states' rate, the norm
    sum |x_i|^(2/w_i) over the scaled entries, the projection onto its unit sphere (x_i times
    c^w_i), and the residual (rate, norm - 1) that Newton drives to zero."""

    system: DynamicalSystem
    values: Mapping[str, Any]
    free: tuple[tuple[str, Any], ...]
    free_idx: np.ndarray
    w: np.ndarray
    scaled: np.ndarray
    graph: Mapping[str, Any]
    f: Any

    @classmethod
    def build(cls, system: DynamicalSystem, values: dict) -> _ScaleFreeFlow:
        scaling = system.scaling
        manifold = dict(system.manifold or {})
        free = [(name, shape) for name, shape in system.state_layout if name not in manifold]
        free_idx = np.asarray(system.group_indices([name for name, _ in free]), dtype=int)
        w = np.concatenate([np.full(int(np.prod(shape)), float(scaling.get(name, 0))) for name, shape in free])
        scaled = w > 0
        if not scaled.any():
            raise ValueError(f"scale_free_equilibria needs a scaled state off the manifold; free states {[n for n, _ in free]}, scaling {dict(scaling)}")
        graph = _graph_functions(manifold, [name for name, _ in free], values)
        return cls(system, values, tuple(free), free_idx, w, scaled, graph, system.to_numpy(checked=False))

    def state_of(self, x):
        groups, start = {}, 0
        for name, shape in self.free:
            size = int(np.prod(shape))
            groups[name] = x[start:start + size].reshape(shape)
            start += size
        for name, g in self.graph.items():
            groups[name] = g(groups)
        return self.system.pack(**groups)

    def rate(self, x):
        return self.f(0.0, self.state_of(x), self.values)[self.free_idx]

    def norm(self, x):
        return float(np.sum(np.abs(x[self.scaled]) ** (2 / self.w[self.scaled])))

    def on_sphere(self, x):
        c = self.norm(x) ** -0.5
        return x * c ** self.w

    def residual(self, x):
        return np.append(self.rate(x), self.norm(x) - 1.0)


def _newton_starts(w: np.ndarray, scaled: np.ndarray, n_starts: int, seed: int) -> list[np.ndarray]:
    """The isotropic direction, each single scaled entry, then seeded random directions (the
    unscaled entries at 1): ``n_starts`` in all."""
    n = len(w)
    rng = np.random.default_rng(seed)
    base = np.where(scaled, 1.0, 1.0)
    starts = [base] + [np.where(scaled, np.eye(n)[j] * 0.9 + 0.1, 1.0) for j in np.flatnonzero(scaled)[:n_starts]]
    while len(starts) < n_starts:
        starts.append(np.where(scaled, np.abs(rng.normal(size=n)) * rng.choice([1, 1, 1, -1], size=n), 1.0))
    return starts[:n_starts]


def _graph_functions(manifold: Mapping[str, Any], free: list[str], values: Mapping[str, Any]) -> dict:
    """Each manifold state as a NumPy function of the free groups (parameters substituted),
    applied entrywise."""
    import sympy as sp

    out = {}
    for name, expr in manifold.items():
        subs = {v: float(values[str(v)]) for v in expr.free_symbols if str(v) in values and np.ndim(values[str(v)]) == 0}
        args = sorted((str(v) for v in expr.free_symbols if str(v) not in values), key=free.index)
        fn = sp.lambdify(args, expr.subs(subs), "numpy")
        out[name] = lambda groups, fn=fn, args=args: np.asarray(fn(*[groups[a] for a in args]), dtype=float) * np.ones_like(groups[free[0]])
    return out


def _direction_eigenvalues(rate, x: np.ndarray, w: np.ndarray, scaled: np.ndarray) -> tuple[np.ndarray, float]:
    """Eigenvalues of the direction flow at x: the Jacobian of the rate (central differences)
    on the tangent space of the weighted sphere, with the ray direction w * x (a zero mode of
    the Jacobian at an equilibrium) projected out along it; and the Jacobian's norm."""
    n = len(x)
    J = np.empty((n, n))
    h = 1e-6
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        J[:, j] = (rate(x + e) - rate(x - e)) / (2 * h)
    ray = w * x
    grad = np.where(scaled, (2 / np.where(scaled, w, 1)) * np.sign(x) * np.abs(x) ** (2 / np.where(scaled, w, 1) - 1), 0.0)
    Q = np.eye(n) - np.outer(ray, grad) / float(grad @ ray)
    basis = np.linalg.svd(np.eye(n) - np.outer(grad, grad) / float(grad @ grad))[0][:, : n - 1]
    return np.linalg.eigvals(basis.T @ Q @ J @ basis), float(np.linalg.norm(J, 2))
