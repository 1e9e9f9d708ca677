"""Fixed points in scale-free variables: where a scale-invariant flow settles while weight decay
shrinks its scale.

For a scale-invariant loss (``system.scaling`` declares the powers, e.g. p ~ lambda, s ~ lambda^2)
the flow with weight decay eta is the eta = 0 flow in the rescaled variables p e^(eta t),
s e^(2 eta t) and a stretched time, so the scale-free spectrum (p / ||p||, s / sum s) settles
where the eta = 0 flow has an equilibrium. With the invariant manifold (s = p^2/alpha_p) the
unknowns are the K values of the manifold's free state on the unit sphere; Newton's method
(``scipy.optimize.least_squares``, Levenberg-Marquardt) from several starts finds the
equilibria, which are classified by the eigenvalues of the Jacobian projected on the sphere's
tangent space. The search is not exhaustive (``complete=False``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivations import ModeSystem, Params

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
        The free state's values, unit norm (e.g. ``p / ||p||``), shape (K,).
    state : numpy.ndarray
        The flat state on the manifold at that direction (unit scale).
    residual : float
        max ``|rhs|`` there (eta = 0).
    eigenvalues : numpy.ndarray
        Of the Jacobian projected on the sphere's tangent space (K - 1 values).
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
    system: ModeSystem,
    params: Params,
    *,
    n_starts: int = 24,
    seed: int = 0,
    tol: float = RTOL,
) -> tuple[ScaleFreePoint, ...]:
    """Equilibria of the scale-free flow of a K-mode system with a scaling and a manifold.

    Parameters
    ----------
    system : a ModeSystem (``derive(spec).modes(K)``, or the exact ``ExactModeSystem``) whose
        per-mode system declares ``scaling``, ``manifold`` (one free state) and ``weight_decay``.
    params : the system's parameters; the weight decay is set to 0 (it only moves the scale).
    n_starts : Newton starts: the isotropic direction, each single mode, and random directions.
    seed : for the random starts.
    tol : residual below which a converged point counts as an equilibrium (default ``RTOL``).

    Returns
    -------
    tuple of ScaleFreePoint, distinct directions (sign-normalised: the free state's sum >= 0
    is not assumed; both signs are kept where both are found), sorted stable first.

    Raises
    ------
    ValueError
        The system declares no scaling, no one-state manifold or no weight decay, or
        ``n_starts`` is not a positive int.
    """
    from scipy.optimize import least_squares

    per_mode = getattr(system, "per_mode", None)
    scaling = getattr(system, "scaling", None) or getattr(per_mode, "scaling", None)
    manifold = getattr(per_mode, "manifold", None)
    decay = getattr(per_mode, "weight_decay", None)
    if per_mode is None or not scaling or manifold is None or decay is None:
        raise ValueError(
            "scale_free_equilibria needs a K-mode system whose per-mode system declares scaling, an "
            "invariant manifold and a weight decay (a scale-invariant derived model, e.g. the cosine loss)"
        )
    if isinstance(n_starts, bool) or not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
        raise ValueError(f"n_starts must be a positive int; got {n_starts!r}")
    names = per_mode.state_names
    free = [n for n in names if n not in manifold]
    if len(free) != 1 or len(names) != 2:
        raise ValueError(f"scale_free_equilibria needs two states per mode with a one-state manifold; got {names}")
    free, graph_state = free[0], next(iter(manifold))
    K = system.K
    values = dict(system.check_params({**params, decay: 0.0} if decay in system.param_names else params))
    graph = _graph_function(per_mode, graph_state, values)
    f = system.to_numpy(checked=False)
    i_free = names.index(free)

    def state_of(x):
        spectra = {free: x, graph_state: graph(x)}
        return system.pack(**spectra)

    def rate(x):
        return f(0.0, state_of(x), values)[i_free * K : (i_free + 1) * K]

    def residual(x):
        return np.append(rate(x), np.dot(x, x) - 1.0)

    rng = np.random.default_rng(seed)
    starts = [np.full(K, 1 / np.sqrt(K))] + [np.eye(K)[j] * 0.9 + 0.1 / np.sqrt(K) for j in range(min(K, n_starts))]
    while len(starts) < n_starts:
        starts.append(np.abs(rng.normal(size=K)) * rng.choice([1, 1, 1, -1], size=K))
    found: list[ScaleFreePoint] = []
    for x0 in starts[:n_starts]:
        x0 = x0 / np.linalg.norm(x0)
        sol = least_squares(residual, x0, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=200 * K)
        x = sol.x / np.linalg.norm(sol.x)
        res = float(np.max(np.abs(rate(x))))
        if not np.isfinite(res) or res > tol:
            continue
        if any(np.max(np.abs(p.direction - x)) < COARSE_RTOL for p in found):
            continue
        eig, size = _projected_eigenvalues(rate, x)
        undecided = np.abs(eig.real) <= COARSE_RTOL * max(1.0, size)  # zero within the differencing error
        stable = bool(np.all(eig.real < 0)) if not np.any(undecided) else (False if np.any(eig.real[~undecided] > 0) else None)
        found.append(ScaleFreePoint(x, state_of(x), res, eig, stable))
    order = {True: 0, None: 1, False: 2}
    return tuple(sorted(found, key=lambda p: order[p.stable]))


def _graph_function(per_mode: Any, graph_state: str, values: Mapping[str, Any]):
    """The manifold's graph as a NumPy function of the free state (parameters substituted)."""
    import sympy as sp

    expr = per_mode.manifold[graph_state]
    subs = {v: float(values[str(v)]) for v in expr.free_symbols if str(v) in values}
    free = [v for v in expr.free_symbols if str(v) not in values]
    fn = sp.lambdify(free, expr.subs(subs), "numpy")
    return lambda x: np.asarray(fn(x), dtype=float) * np.ones_like(x)


def _projected_eigenvalues(rate, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Eigenvalues of the Jacobian of the rate projected on the tangent space of the sphere at x
    (central differences), without the radial direction, and the Jacobian's norm."""
    K = len(x)
    J = np.empty((K, K))
    h = 1e-6
    for j in range(K):
        e = np.zeros(K)
        e[j] = h
        J[:, j] = (rate(x + e) - rate(x - e)) / (2 * h)
    P = np.eye(K) - np.outer(x, x)
    basis = np.linalg.svd(P)[0][:, : K - 1]
    return np.linalg.eigvals(basis.T @ J @ basis), float(np.linalg.norm(J, 2))
