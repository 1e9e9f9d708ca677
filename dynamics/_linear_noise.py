"""The linear-noise approximation of a stochastic system: the covariance of small fluctuations
around a stable equilibrium (stationary) or around the deterministic path (over time).

For dy = f(y) dt + g(y) dW with small noise, y = y_det + xi where y_det solves dy/dt = f and
xi is Gaussian to leading order with covariance Sigma:

    dSigma/dt = A Sigma + Sigma A^T + g g^T,   A = df/dy at y_det(t), g at y_det(t)
    (van Kampen's linear-noise approximation; its error is O(g^4) relative to Sigma).

For a ``StochasticSystem`` with a noise-induced drift c (an Ito correction, O(g^2)) the path
follows f + c, and A is the Jacobian of the deterministic drift f alone: c's own Jacobian
changes Sigma at O(g^4), the order the approximation neglects.

At a stable equilibrium the stationary covariance solves the Lyapunov equation
A Sigma + Sigma A^T + g g^T = 0: in closed form for one state (Sigma = g^2 / (2 |A|)), by
the Bartels-Stewart algorithm (SciPy) otherwise. Jacobians come from JAX autodiff; the path
and Sigma(t) are integrated together by diffrax (Tsit5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from derivations import DynamicalSystem, FrozenMap, Params, StochasticSystem

from ._checks import check_t_eval, check_tols, check_y0
from ._numeric import NumericSystem
from ._tolerance import ATOL, COARSE_RTOL
from ._display import html_table
from ._value import Value

__all__ = ["LinearNoise", "NoiseSpread", "linear_noise", "noise_spread"]


def _stochastic(system) -> DynamicalSystem:
    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a DynamicalSystem; got {type(system).__name__}")
    if system.diffusion is None:
        raise ValueError(f"system must be stochastic (declare a diffusion); {system.name!r} is deterministic "
                         "(for a derived model: model.stochastic(K))")
    if system.time != "continuous":
        raise ValueError("system must be a flow (time 'continuous')")
    return system


def _linear_part(system: DynamicalSystem):
    """The function whose Jacobian is A: the deterministic drift of a StochasticSystem (its
    noise-induced correction left out), else the system's drift."""
    if isinstance(system, StochasticSystem):
        f = system.drift.to_jax(checked=False)
        names = tuple(system.drift.param_names)
        return lambda t, y, params: f(t, y, {k: params[k] for k in names})
    return system.to_jax(checked=False)


def _values(system: DynamicalSystem, params: Params) -> dict:
    import jax.numpy as jnp

    given = system.check_params(params)
    return {k: jnp.asarray(float(v) if isinstance(v, sp.Basic) else v, dtype=jnp.float64) for k, v in given.items()}


@dataclass(frozen=True, repr=False, eq=False)
class LinearNoise(Value):
    """The stationary linear-noise covariance at an equilibrium.

    Attributes
    ----------
    point : numpy.ndarray
        The equilibrium (n_states,).
    jacobian : numpy.ndarray
        A = df/dy there (n, n).
    noise : numpy.ndarray
        g g^T there (n, n): the covariance rate of the increments.
    covariance : numpy.ndarray
        Sigma (n, n) solving A Sigma + Sigma A^T + g g^T = 0 (NaN where A is not stable).
    std : numpy.ndarray
        sqrt(diag Sigma) per state.
    stable : bool
        Every eigenvalue of A has a negative real part (else there is no stationary
        covariance: the fluctuations grow, and ``covariance`` is NaN).
    method : str
        "closed form" (one state) or "Lyapunov (Bartels-Stewart)".
    state_names : tuple of str
    """

    point: np.ndarray
    jacobian: np.ndarray
    noise: np.ndarray
    covariance: np.ndarray
    std: np.ndarray
    stable: bool
    method: str
    state_names: tuple

    def __repr__(self) -> str:
        return f"LinearNoise({'stable' if self.stable else 'not stable'}, std={np.array2string(self.std, precision=4)})"

    def _repr_html_(self) -> str:
        rows = [[n, float(x), float(s)] for n, x, s in zip(self.state_names, self.point, self.std)]
        return html_table("Linear-noise approximation at an equilibrium", ("state", "value", "std"), rows,
                          [f"{self.method}; {'stable' if self.stable else 'not stable: no stationary covariance'}"])


def linear_noise(system: DynamicalSystem, point: ArrayLike, params: Params) -> LinearNoise:
    """The stationary covariance of the fluctuations of a stochastic system around a stable
    equilibrium of its drift, in the linear-noise approximation.

    Parameters
    ----------
    system : DynamicalSystem
        A stochastic flow (``system.diffusion`` is not None), e.g. ``model.stochastic(K)``.
    point : array_like, shape (n_states,)
        An equilibrium of the deterministic drift (e.g. from ``equilibria(system.drift,
        params)``); the residual ``|f(point)|`` is checked. (The noise-induced drift of a
        ``StochasticSystem`` moves the mean by O(lr / B); Sigma is the leading order.)
    params : dict
        The system's parameters (the drift's and the noise's).

    Returns
    -------
    LinearNoise

    Raises
    ------
    TypeError, ValueError
        Not a stochastic flow; a point of the wrong shape or that is not an equilibrium
        (``|f|`` above COARSE_RTOL = 1e-6 of the scale of the point); bad params.
    """
    import jax
    import jax.numpy as jnp
    from scipy.linalg import solve_continuous_lyapunov

    system = _stochastic(system)
    y = check_y0(point, NumericSystem.of(system), "point")
    if y.ndim != 1:
        raise ValueError(f"point must be one state of shape ({system.n_states},); got shape {y.shape}")
    values = _values(system, params)
    linear = _linear_part(system)
    g = system.diffusion.function
    yj = jnp.asarray(y)
    residual = float(jnp.max(jnp.abs(linear(0.0, yj, values))))
    scale = max(1.0, float(np.max(np.abs(y))))
    if not residual <= COARSE_RTOL * scale:
        raise ValueError(f"point is not an equilibrium of the drift: max|f(point)| = {residual:.3g}")
    A = np.asarray(jax.jacfwd(lambda z: linear(0.0, z, values))(yj))
    G = np.asarray(g(0.0, yj, values))
    Q = G @ G.T
    stable = bool(np.all(np.linalg.eigvals(A).real < 0))
    n = len(y)
    if not stable:
        cov, method = np.full((n, n), np.nan), "none (not stable)"
    elif n == 1:
        cov, method = Q / (-2.0 * A), "closed form"
    else:
        cov, method = solve_continuous_lyapunov(A, -Q), "Lyapunov (Bartels-Stewart)"
        cov = (cov + cov.T) / 2
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None)) if stable else np.full(n, np.nan)
    return LinearNoise(y, A, Q, cov, std, stable, method, tuple(system.state_names))


@lru_cache(maxsize=16)
def _spread_solver(system: DynamicalSystem, rtol: float, atol: float):
    """``solve(y0, ts, params) -> ((path, Sigma), code)``, compiled once per system and
    tolerances: the path and dSigma/dt = A Sigma + Sigma A^T + g g^T by Tsit5; code 0 finished,
    1 max_steps, 2 failed."""
    import diffrax
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)
    g = system.diffusion.function
    n = system.n_states
    linear = _linear_part(system)

    def rhs(t, state, args):
        yy, S = state
        A = jax.jacfwd(lambda z: linear(t, z, args))(yy)
        G = g(t, yy, args)
        return f(t, yy, args), A @ S + S @ A.T + G @ G.T

    @jax.jit
    def solve(y0, ts, values):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(rhs), diffrax.Tsit5(), ts[0], ts[-1], None, (y0, jnp.zeros((n, n))), values,
            saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=MAX_SPREAD_STEPS, throw=False)
        code = jnp.select([sol.result == diffrax.RESULTS.successful, sol.result == diffrax.RESULTS.max_steps_reached],
                          [0, 1], 2)
        return sol.ys, code

    return solve


MAX_SPREAD_STEPS = 100_000
"""Steps of ``noise_spread``'s integration before it stops with status "max_steps"."""


@dataclass(frozen=True, repr=False, eq=False)
class NoiseSpread(Value):
    """The deterministic path and the linear-noise covariance of the fluctuations around it.

    Attributes
    ----------
    t : numpy.ndarray
        Times (n_t,).
    mean : numpy.ndarray
        (n_t, n_states) the deterministic path (the mean to leading order).
    covariance : numpy.ndarray
        (n_t, n_states, n_states) Sigma(t), from Sigma(t0) = 0 (one start, many noise paths).
    std : numpy.ndarray
        (n_t, n_states) sqrt(diag Sigma).
    state_names : tuple of str
    status : str
        "finished", "max_steps" (``MAX_SPREAD_STEPS``) or "failed" (the solver failed or the
        path or Sigma is not finite).
    info : FrozenMap
    """

    t: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray
    std: np.ndarray
    state_names: tuple
    status: str = "finished"
    info: Mapping = field(default_factory=FrozenMap)

    def __repr__(self) -> str:
        return (f"NoiseSpread({len(self.t)} times in [{self.t[0]:g}, {self.t[-1]:g}], "
                f"{len(self.state_names)} states, {self.status})")


def noise_spread(system: DynamicalSystem, y0: ArrayLike, t: ArrayLike, params: Params, *,
                 rtol: float = COARSE_RTOL, atol: float = ATOL) -> NoiseSpread:
    """The spread of a stochastic system's paths from one start over time, in the linear-noise
    approximation: the deterministic path and dSigma/dt = A Sigma + Sigma A^T + g g^T along it.

    For SGD noise (``model.stochastic(K)``) this predicts the seed-to-seed spread of a network
    trained from one start with learning rate lr and batch size B: std ~ sqrt(lr / B).

    Parameters
    ----------
    system : DynamicalSystem
        A stochastic flow.
    y0 : array_like, shape (n_states,)
        The start (Sigma = 0 there).
    t : array_like
        Increasing times; the first is the start time.
    params : dict
        The system's parameters.
    rtol, atol : float
        Tolerances of the integration of the path and Sigma (defaults 1e-6, 1e-12: Sigma is
        a leading-order approximation itself).

    Returns
    -------
    NoiseSpread

    Raises
    ------
    TypeError, ValueError
        Not a stochastic flow, a bad start, times or params.
    """
    import jax.numpy as jnp

    system = _stochastic(system)
    check_tols(rtol=rtol, atol=atol)
    y = check_y0(y0, NumericSystem.of(system))
    if y.ndim != 1:
        raise ValueError(f"y0 must be one state of shape ({system.n_states},); got shape {y.shape}")
    ts = np.asarray(t, dtype=float)
    if ts.ndim != 1 or len(ts) < 2:
        raise ValueError("t must be a 1-D array of at least two increasing times (the first is the start)")
    ts = check_t_eval(ts, float(ts[0]), float(ts[-1]), len(ts))
    values = _values(system, params)
    ys, code = _spread_solver(system, float(rtol), float(atol))(jnp.asarray(y), jnp.asarray(ts), values)
    sol_ys = (np.asarray(ys[0]), np.asarray(ys[1]))
    finite = bool(np.all(np.isfinite(sol_ys[0])) and np.all(np.isfinite(sol_ys[1])))
    status = {0: "finished", 1: "max_steps"}.get(int(code), "failed")
    if status == "finished" and not finite:
        status = "failed"
    mean, cov = sol_ys
    cov = (cov + np.swapaxes(cov, -1, -2)) / 2
    std = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))
    return NoiseSpread(ts, mean, cov, std, tuple(system.state_names), status,
                       FrozenMap({"rtol": rtol, "atol": atol, "noise": system.diffusion.description}))
