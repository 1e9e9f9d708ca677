"""learning_rate_limit: the learning rate beyond which gradient descent no longer settles on a
model's non-collapsed fixed point.

The gradient-descent map y -> y + g(y, lr) of a model (``derive(spec).discrete()``) has the
flow's equilibria as fixed points at every lr (its increment vanishes where the flow does), and
its multipliers there are the eigenvalues of M(lr) = I + dg/dy. As lr -> 0 they are
1 + lr lambda_i (lambda_i the flow's eigenvalues), inside the unit circle for a stable
equilibrium; the fixed point loses stability at the smallest lr where one reaches the circle:

- period doubling: det(I + M) = 0 (a multiplier -1; for M = I + lr J exactly, lr* = 2 / abs(lambda));
- Neimark-Sacker: det(M^(2) - I) = 0, M^(2) the second compound matrix (eigenvalues
  mu_i mu_j), with a complex pair on the circle (lr* = -2 Re(lambda) / abs(lambda)^2);
- fold: det(M - I) = 0 at lr > 0 (a multiplier 1).

Where the map has explicit equations the three conditions are taken from its own Jacobian
(the SSL map is not y + lr f: s -> s (1 + lr r)^2, tau -> (tau + lr beta (1 - tau))/(1 + lr r)),
exact in lr at the fixed point, and solved for lr; the limit is also located by
pseudo-arclength continuation in lr (``continue_equilibrium``), which any map serves.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from derivations import DynamicalSystem, FrozenMap, ModelSpec, Params, derive

from .._bifurcation import BifurcationPoint
from .._continuation import continue_equilibrium
from .._display import short_array
from .._equilibria import equilibria
from .._prepare import label, numeric, read_only
from .._tolerance import FLOAT_RTOL, FLOAT_ZERO, LEAD_RTOL, LOCATE_RTOL, NEWTON_STOP, TEST_NOISE, check_tol
from .._value import Value

__all__ = ["learning_rate_limit", "LearningRateLimit", "LIMIT_KINDS"]

LIMIT_KINDS = ("period doubling", "neimark-sacker", "fold", "none")
"""How the fixed point loses stability: a multiplier -1, a complex pair on the unit circle, a
multiplier +1, or not at all below the range's end (``lr`` is then inf)."""

_ON_CIRCLE = 1e-6
_CIRCLE_WIDTH = 1e-4
"""Distance from the unit circle within which a multiplier pair counts as on it when reading theta."""

SYMBOLIC_BUDGET = 30.0
"""Seconds SymPy may take for ``expression`` (solving the equilibrium, the eigenvalues)."""


@dataclass(frozen=True, eq=False)
class LearningRateLimit(Value):
    """The learning rate at which a fixed point of a gradient-descent map loses stability.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    lr : float
        The limit: the fixed point is stable for 0 < lr < ``lr`` and not just above it (inf
        where it stays stable up to the range's end). From the exact conditions where the map
        has explicit equations, else from the continuation.
    kind : str
        One of ``LIMIT_KINDS``.
    x : numpy.ndarray
        The fixed point (the flow's equilibrium), (n_states,).
    multipliers : numpy.ndarray
        (n_states,) complex: the eigenvalues of the map's Jacobian at ``lr``, sorted by
        decreasing modulus (one on the unit circle).
    theta : float
        The angle of the pair on the circle (Neimark-Sacker), NaN otherwise.
    flow_eigenvalues : numpy.ndarray
        (n_states,) complex: the eigenvalues lambda_i of the flow's Jacobian at ``x`` (the
        map's Jacobian is I + lr J + O(lr^2)), sorted by decreasing real part.
    first_order : float
        The limit of the first-order map M = I + lr J: min over lambda_i of
        -2 Re(lambda_i) / abs(lambda_i)^2; it equals ``lr`` where the map's higher-order terms
        vanish at the fixed point (the SSL maps: they carry the flow's rates).
    exact : float
        The limit from the map's own Jacobian: the smallest positive root of the three
        conditions at which a multiplier is on the unit circle (NaN for a map without
        explicit equations; inf if none is below the range's end).
    continued : float
        The period doubling, Neimark-Sacker point or fold that ``continue_equilibrium``
        locates first when it follows the fixed point from a small lr (NaN if not run; inf if
        it locates none in the range).
    point : BifurcationPoint or None
        That located point.
    condition : sympy.Expr or None
        The condition whose root is ``exact``, a polynomial in the step parameter (its
        coefficients evaluated at the fixed point and ``params``).
    expression : sympy.Expr or None
        The limit in closed form in the parameters, -2 Re(lambda) / abs(lambda)^2 for the critical
        eigenvalue lambda of the flow's Jacobian at the equilibrium solved symbolically (e.g.
        2 / abs(lambda) for a flip), where the map's Jacobian at the fixed point is exactly
        I + lr J (the SSL maps) and SymPy solves the equilibrium and, for two states, the
        eigenvalues within ``SYMBOLIC_BUDGET`` seconds; None otherwise. It holds where the
        same eigenvalue stays critical, on the branch of the equilibrium at ``params``.
    network : float
        The limit of gradient descent on the matrix-level network of width ``width`` at the
        aligned fixed point (all modes at ``x``; NaN unless ``width`` is given). Its weight map
        is exactly W -> W + lr f(W), so it is min over every eigenvalue lambda of the matrix
        flow's Jacobian there of -2 Re(lambda) / abs(lambda)^2: those of the modes (``lr``) and
        those across the aligned manifold (``transverse_eigenvalues``, e.g. the antisymmetric
        part of a learned predictor), whichever comes first. Below ``lr`` but above it, the
        modes settle while the weights misalign. 0 where the aligned fixed point is
        transversally unstable at every step (an eigenvalue across it with positive real part).
    network_kind : str
        How the network's fixed point loses stability there (one of ``LIMIT_KINDS``; "" unless
        ``width`` is given).
    transverse_eigenvalues : numpy.ndarray
        The eigenvalues of the matrix flow's Jacobian across the aligned manifold, on the
        quotient by the rotations of the common basis (``transverse_spectrum``), of every mode
        pair; empty unless ``width`` is given.
    step_param : str
        The map's step parameter (a learning rate).
    params : mapping str -> float
        The other parameters.
    system_name : str
        The map.
    """

    lr: float
    kind: str
    x: np.ndarray
    multipliers: np.ndarray
    theta: float
    flow_eigenvalues: np.ndarray
    first_order: float
    exact: float
    continued: float
    point: BifurcationPoint | None = field(repr=False)
    condition: sp.Expr | None = field(repr=False)
    expression: sp.Expr | None = field(repr=False)
    network: float = math.nan
    network_kind: str = ""
    transverse_eigenvalues: np.ndarray = field(default_factory=lambda: read_only(np.zeros(0, complex), complex), repr=False)
    step_param: str = "lr"
    params: Mapping[str, float] = field(default_factory=lambda: FrozenMap({}))
    system_name: str = ""

    def __repr__(self) -> str:
        how = f", theta = {self.theta:.6g}" if self.kind == "neimark-sacker" else ""
        checks = ", ".join(f"{k} {v:.10g}" for k, v in (("exact", self.exact), ("continued", self.continued))
                           if not math.isnan(v))
        net = f"; network {self.network:.10g} ({self.network_kind})" if not math.isnan(self.network) else ""
        return (f"LearningRateLimit({self.step_param}* = {self.lr:.10g}, {self.kind}{how}; "
                f"x = {short_array(self.x, 6)}; {checks}{net})")


def learning_rate_limit(model: ModelSpec | DynamicalSystem, params: Params, *, at: ArrayLike | None = None, lr_max: float | None = None,
                        continuation: bool = True, symbolic: bool = True, width: int | None = None,
                        tol: float = LOCATE_RTOL) -> LearningRateLimit:
    """The learning rate beyond which gradient descent on ``model`` no longer converges to its
    non-collapsed fixed point, and how it fails there (module docstring for the conditions).

    Parameters
    ----------
    model : ModelSpec or DynamicalSystem
        A spec (``derive(spec)``), a flow with a ``discrete()`` map (``derive(spec)``,
        ``derive(spec).modes(K)``), or a map (``time == "discrete"``) whose ``step_param``
        names its learning rate.
    params : mapping
        Every parameter except the step parameter.
    at : array_like, optional
        A state near the fixed point. Default: the one equilibrium of the flow that is neither
        collapsed nor partly collapsed and is stable (for a map given alone: of its increment
        at a vanishing step).
    lr_max : float, optional
        The end of the window searched (default 4 times ``first_order``).
    continuation : bool
        Also locate the limit by continuation in the step parameter (``continued``).
    symbolic : bool
        Derive the closed form in the parameters (``expression``); it costs seconds of SymPy.
    width : int, optional
        Also the limit of the matrix-level network of this width (``network``): a model of
        one mode (a spec, or a system derived from one) with isotropic data.
    tol : float
        Relative width to which the continuation locates the point.

    Returns
    -------
    LearningRateLimit

    Raises
    ------
    TypeError
        ``model`` is neither a ModelSpec nor a DynamicalSystem, or a flow without a
        ``discrete()`` map; ``params`` is not a mapping; ``width`` for a system not derived
        from a spec.
    ValueError
        A map without a step parameter; ``params`` giving the step parameter, or unknown,
        missing or out-of-domain parameters; no stable non-collapsed fixed point (or several,
        without ``at``); ``at`` not near a fixed point, or at an unstable one; a bad
        ``lr_max`` or ``width``, or ``width`` for several modes, data with a spectrum or a
        closure's parameters (frozen norms) that the network computes itself.
    """
    spec = model if isinstance(model, ModelSpec) else getattr(model, "spec", None)
    flow, step_map = _systems(model)
    step = step_map.step_param
    if width is not None:
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 2:
            raise ValueError(f"width must be an int >= 2 (the network's modes); got {width!r}")
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"width needs a model derived from a ModelSpec; {label(step_map)} carries none")
        if spec.data != "isotropic" or len(step_map.state_names) != len(step_map.state_layout) or any(
                shape != () for _, shape in step_map.state_layout):
            raise ValueError("width needs a model of one mode with isotropic data (every mode at the same fixed point)")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")
    if step in params:
        raise ValueError(f"params must not give the step parameter {step!r}: its limit is the result")
    tol = check_tol(tol)
    base = {k: numeric(v) for k, v in step_map.check_params({**params, step: 1.0}).items() if k != step}
    if lr_max is not None:
        lr_max = float(lr_max)
        if not (np.isfinite(lr_max) and lr_max > 0):
            raise ValueError(f"lr_max must be a finite number > 0; got {lr_max!r}")
    network_flow = _network(spec, int(width), step_map, base) if width is not None else None
    jac = _Jacobians(step_map, step)
    x = _fixed_point(flow, step_map, step, base, at, jac)
    J = jac.flow(x, base)
    lam = np.linalg.eigvals(J)
    lam = lam[np.argsort(-lam.real, kind="stable")]
    if not np.all(lam.real < 0):
        raise ValueError(f"the fixed point {short_array(x, 6)} of {label(step_map)} is not stable as {step} -> 0 "
                         f"(the flow's eigenvalues {np.array2string(lam, precision=4)}): it has no learning-rate limit")
    first = float(np.min(-2 * lam.real / np.abs(lam) ** 2))
    hi = lr_max if lr_max is not None else 4 * first
    exact, kind_exact, condition = _exact_limit(step_map, step, x, base, hi, jac)
    continued, point = math.nan, None
    if continuation:
        continued, point = _continued_limit(step_map, step, x, base, first, hi, tol)
    if not math.isnan(exact):
        lr, kind = exact, kind_exact
    elif not math.isnan(continued):
        lr, kind = continued, point.kind if point is not None else "none"
    else:
        lr, kind = math.inf, "none"
    if math.isinf(lr):
        mu, theta = np.full(len(x), np.nan + 0j), math.nan
    else:
        mu = jac.multipliers(x, base, lr)
        on = mu[(np.abs(mu.imag) > _ON_CIRCLE) & (np.abs(np.abs(mu) - 1) < _CIRCLE_WIDTH)]
        theta = float(np.max(np.abs(np.angle(on)))) if kind == "neimark-sacker" and on.size else math.nan
    expression = None
    if symbolic and math.isfinite(lr) and kind in ("period doubling", "neimark-sacker") \
            and math.isclose(lr, first, rel_tol=1e-9):
        crit = lam[int(np.argmin(-2 * lam.real / np.abs(lam) ** 2))]
        expression = _closed_form(step_map, step, x, base, crit, lr)
    network, network_kind, across = math.nan, "", np.zeros(0, complex)
    if width is not None:
        across = _transverse(network_flow, int(width), step_map, x, base)
        network, network_kind = lr, kind
        scale = max(1.0, float(np.max(np.abs(across)))) if across.size else 1.0
        if across.size and float(np.max(across.real)) > TEST_NOISE * scale:
            network, network_kind = 0.0, "none"
        for ev in across if network > 0 else ():
            if ev.real < 0:
                v = float(-2 * ev.real / abs(ev) ** 2)
                if v < network:
                    network = v
                    network_kind = "neimark-sacker" if abs(ev.imag) > _ON_CIRCLE * abs(ev) else "period doubling"
    return LearningRateLimit(float(lr), kind, read_only(x), read_only(mu, complex), theta, read_only(lam, complex), first,
                             exact, continued, point, condition, expression, network, network_kind,
                             read_only(across, complex), step, FrozenMap(base), step_map.name or "")


def _network(spec: ModelSpec, width: int, step_map, base: dict):
    """The matrix flow of ``spec`` at ``width``, whose parameters must be the mode system's."""
    from derivations import MatrixFlowSystem

    network = MatrixFlowSystem(spec, width)
    closed = sorted(set(base) - set(network.param_names))
    if closed:
        raise ValueError(f"width: the network computes {closed} from its weights, where {label(step_map)} holds them as "
                         f"parameters (a closure); the network's parameters are {list(network.param_names)}")
    return network


def _transverse(network, width: int, step_map, x: np.ndarray, base: dict) -> np.ndarray:
    """The eigenvalues of the matrix flow across the aligned manifold at every mode at ``x``."""
    from ._transverse import transverse_spectrum

    spectra = {name: np.full(width, float(v)) for name, v in zip(step_map.state_names, x)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = transverse_spectrum(network, spectra, base)
    out = np.concatenate([np.asarray(ev, complex) for ev in ts.eigenvalues]) if ts.eigenvalues else np.zeros(0, complex)
    return out[np.argsort(-out.real, kind="stable")]


def _systems(model: Any) -> tuple[DynamicalSystem | None, DynamicalSystem]:
    """(the flow or None, the map) of ``model``."""
    if isinstance(model, ModelSpec):
        model = derive(model)
    if not isinstance(model, DynamicalSystem):
        raise TypeError(f"model must be a ModelSpec or a derivations.DynamicalSystem (derive(spec), "
                        f"derive(spec).modes(K), a map); got {type(model).__name__}")
    if model.time == "discrete":
        flow, step_map = None, model
    else:
        make = getattr(model, "discrete", None)
        if not callable(make):
            raise TypeError(f"{label(model)} is a flow without a gradient-descent map (no discrete()); "
                            "give its map, a system with time 'discrete' and a step parameter")
        flow, step_map = model, make()
    if not step_map.step_param:
        raise ValueError(f"{label(step_map)} declares no step parameter (step_param): no learning rate to vary")
    return flow, step_map


class _Jacobians:
    """The map's increment g(x, lr) compiled: dg/dx at lr, and the flow's Jacobian
    J = d/dlr dg/dx at lr = 0 and rate f = dg/dlr at lr = 0."""

    def __init__(self, step_map: DynamicalSystem, step: str):
        import jax
        import jax.numpy as jnp

        g = step_map.to_jax(checked=False)

        def inc(x, lr, P):
            return g(0.0, x, {**P, step: lr})

        self._dx = jax.jit(jax.jacfwd(inc, argnums=0))
        self._flow_jac = jax.jit(jax.jacfwd(jax.jacfwd(inc, argnums=0), argnums=1))
        self._rate = jax.jit(jax.jacfwd(inc, argnums=1))
        self._rate_jac = jax.jit(jax.jacfwd(jax.jacfwd(inc, argnums=1), argnums=0))
        self._jnp = jnp

    def _args(self, P):
        return {k: self._jnp.asarray(v, dtype=float) for k, v in P.items()}

    def multipliers(self, x, P, lr) -> np.ndarray:
        M = np.eye(len(x)) + np.asarray(self._dx(self._jnp.asarray(x), float(lr), self._args(P)))
        mu = np.linalg.eigvals(M)
        return mu[np.argsort(-np.abs(mu), kind="stable")]

    def flow(self, x, P) -> np.ndarray:
        return np.asarray(self._flow_jac(self._jnp.asarray(x), 0.0, self._args(P)), dtype=float)

    def rate(self, x, P) -> tuple[np.ndarray, np.ndarray]:
        args = self._args(P)
        xj = self._jnp.asarray(x, dtype=float)
        return np.asarray(self._rate(xj, 0.0, args), dtype=float), np.asarray(self._rate_jac(xj, 0.0, args), dtype=float)


def _fixed_point(flow, step_map, step: str, base: dict, at, jac: _Jacobians) -> np.ndarray:
    n = step_map.n_states
    if at is not None:
        try:
            x = np.asarray(at, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise TypeError(f"at must be a state of {n} numbers; got {type(at).__name__}") from None
        if x.shape != (n,) or not np.all(np.isfinite(x)):
            raise ValueError(f"at must be a finite state of {n} numbers ({list(step_map.state_names)}); got shape {x.shape}")
        for _ in range(50):
            f, J = jac.rate(x, base)
            try:
                dx = np.linalg.solve(J, f)
            except np.linalg.LinAlgError:
                break
            x = x - dx
            if not np.all(np.isfinite(x)):
                break
            if float(np.max(np.abs(dx))) <= NEWTON_STOP["step"] * 10 * (1 + float(np.max(np.abs(x)))):
                return x
        raise ValueError(f"at = {np.array2string(np.asarray(at, dtype=float).reshape(-1), precision=6)} is not near a "
                         f"fixed point of {label(step_map)}: Newton on its rate does not converge")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = equilibria(flow, base) if flow is not None else equilibria(step_map, {**base, step: 1e-9})
    kept = [np.asarray(e.x, dtype=float) for e in found if not e.collapsed and not e.partially_collapsed]
    stable = [x for x in kept if np.all(np.linalg.eigvals(jac.flow(x, base)).real < 0)]
    if len(stable) != 1:
        listed = "; ".join(short_array(x, 6) for x in kept) or "none"
        what = "no" if not stable else f"{len(stable)}"
        raise ValueError(f"{label(step_map)} has {what} stable non-collapsed fixed points at these params "
                         f"(non-collapsed: {listed}); give at= a state near the one to follow")
    return stable[0]


def _closed_form(step_map, step: str, x: np.ndarray, base: dict, crit: complex, lr: float) -> sp.Expr | None:
    """-2 Re(lambda) / abs(lambda)^2 for the eigenvalue ``crit`` of the flow's Jacobian, in the
    parameters: the flow (the map's rate at a vanishing step) solved for its equilibria, the
    one at ``x`` kept, its Jacobian's eigenvalue that is ``crit`` at ``base``."""
    from .._equilibria import _OverBudget, _time_budget

    eqs = step_map.symbolic
    if eqs is None or len(eqs.states) > 2:
        return None
    h = next(p for p in eqs.params if str(p) == step)
    at = {p: base[str(p)] for p in eqs.params if str(p) != step}
    states = list(eqs.states)
    try:
        with _time_budget(SYMBOLIC_BUDGET):
            rate = sp.Matrix(eqs.rhs).diff(h).subs(h, 0)
            for sol in sp.solve(list(rate), states, dict=True):
                if len(sol) != len(states):
                    continue
                here = [complex(sp.N(sol[v].subs(at))) for v in states]
                if not np.allclose(here, x, rtol=1e-8, atol=1e-10):
                    continue
                J = rate.jacobian(states).subs(sol)
                for ev in ([J[0, 0]] if len(states) == 1 else list(J.eigenvals())):
                    if abs(complex(sp.N(ev.subs(at))) - crit) > FLOAT_RTOL * max(1.0, abs(crit)):
                        continue
                    if abs(crit.imag) > _ON_CIRCLE * abs(crit):
                        expr = -J.trace() / J.det()  # a complex pair: -2 Re/|.|^2 = -tr/det
                    else:
                        expr = -2 / ev
                    expr = sp.simplify(sp.powdenest(expr, force=True))
                    if math.isclose(float(sp.N(expr.subs(at))), lr, rel_tol=1e-8):
                        return expr
    except (_OverBudget, NotImplementedError, TypeError, ValueError):
        return None
    return None


def _compound2(M: sp.Matrix) -> sp.Matrix:
    """The second compound matrix: 2x2 minors, eigenvalues mu_i mu_j (i < j)."""
    n = M.shape[0]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    return sp.Matrix(len(pairs), len(pairs), lambda a, b: M[pairs[a][0], pairs[b][0]] * M[pairs[a][1], pairs[b][1]]
                     - M[pairs[a][0], pairs[b][1]] * M[pairs[a][1], pairs[b][0]])


def _exact_limit(step_map, step: str, x: np.ndarray, base: dict, hi: float, jac: _Jacobians):
    """(lr*, kind, condition) from the map's symbolic Jacobian at the fixed point; NaN where
    the map has no explicit equations or its Jacobian is not rational in the step."""
    eqs = step_map.symbolic
    if eqs is None:
        return math.nan, "none", None
    lr = next(p for p in eqs.params if str(p) == step)
    subs = {s: sp.Float(float(v), 30) for s, v in zip(eqs.states, x)}
    subs.update({p: sp.Float(float(base[str(p)]), 30) for p in eqs.params if str(p) != step})
    n = len(eqs.states)
    M = sp.eye(n) + sp.Matrix(eqs.rhs).jacobian(sp.Matrix(eqs.states)).subs(subs)
    conditions = [("period doubling", (sp.eye(n) + M).det()), ("fold", (M - sp.eye(n)).det())]
    if n >= 2:
        C = _compound2(M)
        conditions.append(("neimark-sacker", (C - sp.eye(C.shape[0])).det()))
    best = (math.inf, "none", None)
    for kind, cond in conditions:
        num = sp.numer(sp.together(sp.expand(cond)))
        try:
            poly = sp.Poly(num, lr)
        except sp.PolynomialError:
            return math.nan, "none", None
        if poly.is_zero:
            continue
        coeffs = [float(c) for c in poly.all_coeffs()]
        scale = max(abs(c) for c in coeffs)
        coeffs = [c if abs(c) > 10 * LEAD_RTOL * scale else 0.0 for c in coeffs]
        for root in np.roots(coeffs) if len(coeffs) > 1 else []:
            r = float(root.real)
            if not (abs(root.imag) <= FLOAT_RTOL * abs(root) and FLOAT_ZERO * hi < r <= hi and r < best[0]):
                continue
            r = _polish(poly, r)
            if _kind_at(jac.multipliers(x, base, r)) == kind:
                best = (r, kind, sp.Poly(poly.as_expr().evalf(15), lr).as_expr())
    return best


def _polish(poly: sp.Poly, r: float) -> float:
    """A real root of ``poly`` near ``r``, refined by Newton in 30 digits."""
    import mpmath

    with mpmath.workdps(30):
        coeffs = [mpmath.mpf(str(sp.Float(c, 30))) for c in poly.all_coeffs()]
        try:
            return float(mpmath.findroot(lambda z: mpmath.polyval(coeffs, z), mpmath.mpf(r)))
        except (ValueError, ZeroDivisionError):
            return r


def _kind_at(mu: np.ndarray) -> str:
    """Which multiplier lies on the unit circle: -1, a complex pair, +1 (else "none")."""
    if mu.size == 0:
        return "none"
    if float(np.min(np.abs(mu + 1))) < _ON_CIRCLE:
        return "period doubling"
    if float(np.min(np.abs(mu - 1))) < _ON_CIRCLE:
        return "fold"
    pair = mu[np.abs(mu.imag) > _ON_CIRCLE]
    if pair.size and float(np.min(np.abs(np.abs(pair) - 1))) < _ON_CIRCLE:
        return "neimark-sacker"
    return "none"


def _continued_limit(step_map, step: str, x: np.ndarray, base: dict, first: float, hi: float, tol: float):
    lo = 1e-3 * min(first, hi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        branch = continue_equilibrium(step_map, x, {step: (lo, hi)}, {**base, step: lo}, direction="up",
                                      ds=(hi - lo) / 50, ds_max=(hi - lo) / 10, tol=tol)
    found = [p for p in branch.points if p.kind in LIMIT_KINDS and p.value > lo]
    if not found:
        return math.inf, None
    p = min(found, key=lambda q: q.value)
    return float(p.value), p
