"""couple(per_mode, K, closures): K copies of a per-mode system coupled through spectral sums."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

from .codegen import lambdified, state_array, xp
from ._interface import DynamicalSystem
from ._spec import ModelSpec
from ._system import FrozenMap, ODESystem, RhsFunction, parse_expression
from ._typing import ArrayLike, Params

__all__ = ["ModeSystem", "couple"]

_MAX_SYMBOLIC_K = 64


def couple(
    per_mode: ODESystem,
    K: int,
    closures: Mapping[str, tuple[str | sp.Expr, float | str]] | None = None,
    *,
    per_mode_params: Sequence[str] = (),
) -> ModeSystem:
    """K copies of ``per_mode`` coupled through spectral sums.

    Each closure names a parameter of the per-mode system that the spectrum determines:
    ``closures = {"T": ("tau*p*s", 1), "N_psi": ("c*p**2*s", 1/2), "s_max": ("s", "max")}``
    means T = (sum_k tau_k p_k s_k)**1, N_psi = (sum_k c p_k^2 s_k)**(1/2) and
    s_max = max_k s_k, the summand written in the per-mode states, the remaining parameters
    and parameters closed earlier in the mapping. Closed parameters are computed from the
    state, in order, and are not passed in ``params``. Without closures the modes are uncoupled.

    Parameters
    ----------
    per_mode : ODESystem
    K : int, number of modes (>= 1)
    closures : mapping parameter name -> (summand, reduction), summand a SymPy expression or
        string, reduction a number (power of the sum) or "max"
    per_mode_params : names of parameters that differ between modes (e.g. a data variance
        "lambda"): their values are arrays whose last axis has length K

    Returns
    -------
    ModeSystem, with the flat state-major layout [x_1..x_K, y_1..y_K, ...].

    Raises
    ------
    TypeError
        ``per_mode`` is not an ODESystem, ``K`` not an int, a closure not a pair.
    ValueError
        ``K < 1``, a closure naming an unknown parameter, or a summand using a closed
        parameter or an unknown symbol.
    """
    if not isinstance(per_mode, ODESystem):
        raise TypeError(f"per_mode must be an ODESystem; got {type(per_mode).__name__}")
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)):
        raise TypeError(f"K must be a positive int (number of modes); got {type(K).__name__}")
    if K < 1:
        raise ValueError(f"K must be a positive int (number of modes); got {K}")
    closures = {} if closures is None else closures
    if not isinstance(closures, Mapping):
        raise TypeError("closures must be a dict {parameter name: (summand, power)}")
    if isinstance(per_mode_params, str):
        per_mode_params = (per_mode_params,)
    per_mode_params = tuple(str(n) for n in per_mode_params)
    unknown = [n for n in per_mode_params if n not in per_mode.param_names or n in closures]
    if unknown:
        raise ValueError(
            f"per_mode_params names {unknown}, not free parameters of the per-mode system; "
            f"params are {list(per_mode.param_names)}"
        )
    table = per_mode.symbols
    out = []
    for name, pair in closures.items():
        name = str(name)
        if name not in per_mode.param_names:
            raise ValueError(f"closures names {name!r}, not a parameter; params are {list(per_mode.param_names)}")
        try:
            summand, power = pair
        except (TypeError, ValueError):
            raise TypeError(f"closures[{name!r}] must be a pair (summand, power); got {pair!r}") from None
        summand = parse_expression(summand, table, f"closures[{name!r}]")
        earlier = {str(c[0]) for c in out}
        used = ({str(v) for v in summand.free_symbols} & set(closures)) - earlier
        if used:
            raise ValueError(
                f"closures[{name!r}] uses closed parameters {sorted(used)} not closed before it; "
                "write it in the states, or list those closures first"
            )
        if power != "max":
            if isinstance(power, (str, bool)):
                raise ValueError(f"closures[{name!r}]: the reduction must be a number (power of the sum) or 'max'; got {power!r}")
            power = sp.nsimplify(power)
        out.append((table[name], summand, power))
    return ModeSystem(per_mode, int(K), tuple(out), per_mode_params)


@dataclass(frozen=True)
class ModeSystem(DynamicalSystem):
    """K coupled copies of a per-mode system, for numerics (K up to 10^4 and beyond).

    It implements ``DynamicalSystem`` with one state group of shape (K,) per per-mode state:
    the flat state is state-major, y = [x_1..x_K, y_1..y_K, ...] for per-mode states
    (x, y, ...), shape (..., n_states); ``pack``/``unpack`` convert. Parameters closed by the
    spectrum (``closed``) are computed from y and are not passed in ``params``. Time, the
    collapse set, its partial sets and the scaling are the per-mode system's. The analyses
    serve it numerically (``symbolic`` is None); ``to_ode_system()`` gives the explicit
    ODESystem for small K, which the exact analyses take.

    Attributes
    ----------
    per_mode : ODESystem
        The system of one mode.
    K : int
        The number of modes.
    closures : tuple of (Symbol, expression, reduction)
        The closed parameters in order: the parameter, its summand in the per-mode states and
        the reduction (a power of the sum, or "max"), as ``couple`` builds them.
    per_mode_params : tuple of str
        Parameters that differ between modes (arrays whose last axis has length K).
    """

    per_mode: ODESystem
    K: int
    closures: tuple = ()
    per_mode_params: tuple[str, ...] = ()

    @property
    def spec(self) -> ModelSpec | None:
        """The model of the per-mode system, where it has one (derived systems), else None."""
        return getattr(self.per_mode, "spec", None)

    @property
    def state_layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """One group of shape (K,) per per-mode state."""
        return tuple((n, (self.K,)) for n in self.per_mode.state_names)

    @property
    def time(self) -> str:
        """The per-mode system's time (a K-mode map is stepped like its modes)."""
        return self.per_mode.time

    @property
    def step_param(self) -> str | None:
        """The per-mode system's step parameter."""
        return self.per_mode.step_param

    @property
    def collapse(self) -> tuple[str, ...]:
        """The per-mode collapse states (every mode's entries of these groups)."""
        return self.per_mode.collapse

    @property
    def partial_collapse(self) -> Mapping[str, tuple[str, ...]]:
        """The per-mode system's partial-collapse sets (state groups)."""
        return self.per_mode.partial_collapse

    @property
    def manifold(self) -> Mapping[str, sp.Expr] | None:
        """The per-mode system's invariant graph, applied mode by mode."""
        return self.per_mode.manifold

    @property
    def scaling(self) -> Mapping[str, float] | None:
        """The per-mode system's scaling powers, keyed by state group and parameter."""
        return self.per_mode.scaling

    @property
    def weight_decay(self) -> str | None:
        """The per-mode system's weight-decay parameter."""
        return self.per_mode.weight_decay

    @property
    def name(self) -> str:
        """A label for reprs and titles: the per-mode system's name and K."""
        return f"{self.per_mode.name}, {self.K} modes" if self.per_mode.name else f"{self.K} modes"

    @cached_property
    def closed(self) -> tuple[str, ...]:
        """The parameters computed from the spectrum, in the order they are closed."""
        return tuple(str(c[0]) for c in self.closures)

    @cached_property
    def param_names(self) -> tuple[str, ...]:
        """The free parameters (the per-mode ones minus ``closed``): the keys of ``params``."""
        return tuple(n for n in self.per_mode.param_names if n not in self.closed)

    @property
    def param_domain(self) -> Mapping:
        """The domains of the free parameters."""
        return FrozenMap({k: v for k, v in self.per_mode.param_domain.items() if k not in self.closed})

    @property
    def state_domain(self) -> Mapping:
        """Per flat state name, the per-mode state's domain."""
        return FrozenMap({f"{n}_{k}": v for n, v in self.per_mode.state_domain.items() for k in range(1, self.K + 1)})

    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params)`` on flat states (..., n_states); jit/vmap/grad compatible.

        Same checks as ``ODESystem.to_jax``; ``checked=False`` skips them.

        Parameters
        ----------
        checked : bool
            Validate concrete inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning dy/dt as a JAX array of y's shape.

        Raises
        ------
        ValueError
            Not when building: the returned function raises it (when ``checked``) for bad
            parameter names, shapes or non-finite values.
        """
        return _mode_function(self, "jax", checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """Same as ``to_jax`` with NumPy arrays.

        Parameters
        ----------
        checked : bool
            Validate the inputs on every call (default True).

        Returns
        -------
        callable
            ``f(t, y, params)`` returning dy/dt as a float64 ndarray of y's shape.

        Raises
        ------
        ValueError
            Not when building: the returned function raises it (when ``checked``) for bad
            parameter names, shapes or non-finite values.
        """
        return _mode_function(self, "numpy", checked)

    def to_sympy(self) -> tuple[tuple[sp.Symbol, ...], sp.ImmutableMatrix]:
        """(states, rhs) as explicit SymPy objects; for small K only (K <= 64).

        Returns
        -------
        tuple
            ``(states, rhs)``: the flat state Symbols and the right-hand side Matrix.

        Raises
        ------
        ValueError
            K > 64.
        """
        system = self.to_ode_system()
        return system.states, system.rhs

    def to_ode_system(self) -> ODESystem:
        """The explicit ODESystem of the K coupled modes (K <= 64): every symbolic analysis
        (exact equilibria, thresholds) then applies.

        Returns
        -------
        ODESystem
            States x_1..x_K, y_1..y_K, ...; the closed parameters substituted by their sums.

        Raises
        ------
        ValueError
            K > 64.
        """
        if self.K > _MAX_SYMBOLIC_K:
            raise ValueError(f"to_ode_system is for K <= {_MAX_SYMBOLIC_K} modes; got K={self.K}")
        return _mode_sympy(self)

    def __repr__(self) -> str:
        return f"ModeSystem({self.per_mode.name or 'per-mode system'}, K={self.K}, closed={self.closed}, params={self.param_names})"

    @property
    def param_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """The trailing shape of each free parameter's value: (K,) for a per-mode parameter,
        () for one shared by all modes. Batch axes come before it."""
        return FrozenMap({n: ((self.K,) if n in self.per_mode_params else ()) for n in self.param_names})


@lru_cache(maxsize=64)
def _mode_sympy(system: ModeSystem) -> ODESystem:
    pm, K = system.per_mode, system.K
    table = {v: sp.symbols(f"{v}_1:{K + 1}") for v in pm.states}
    states = tuple(x for v in pm.states for x in table[v])
    per = {v: sp.symbols(f"{v}_1:{K + 1}") for v in pm.params if str(v) in system.per_mode_params}

    def at(expr, k):
        return expr.subs({**{v: table[v][k] for v in pm.states}, **{v: per[v][k] for v in per}})

    closure = {}
    for param, summand, power in system.closures:
        terms = [at(summand, k).subs(closure) for k in range(K)]
        closure[param] = sp.Max(*terms) if power == "max" else sp.Add(*terms) ** power
    rows = [at(r, k).subs(closure) for r in pm.rhs for k in range(K)]
    free = tuple(x for v in pm.params if str(v) not in system.closed for x in per.get(v, (v,)))
    return ODESystem(
        states, free, sp.ImmutableMatrix(rows),
        state_domain=dict(system.state_domain),
        param_domain={
            **{k: v for k, v in system.param_domain.items() if k not in system.per_mode_params},
            **{str(x): system.param_domain[str(v)] for v in per if str(v) in system.param_domain for x in per[v]},
        },
        collapse=tuple(system.state_names[i] for i in system.collapse_indices),
        time=system.time,
        step_param=system.step_param,
        name=system.name,
    )


def mode_values(system: ModeSystem, backend: str, checked: bool = True):
    """``values(y, params) -> (spectra, values)``: the per-mode state arrays (..., K) of the flat
    states y and every per-mode parameter, the closed ones computed from y, as arrays that
    broadcast against them (per-trajectory ones with a trailing axis of 1)."""
    pm, K = system.per_mode, system.K
    free_syms = tuple(v for v in pm.params if str(v) not in system.closed)
    free = [str(v) for v in free_syms]
    closed_syms = tuple(c[0] for c in system.closures)
    closures = [
        (str(param), lambdified(pm.states + free_syms + closed_syms[:i], (summand,), backend), power)
        for i, (param, summand, power) in enumerate(system.closures)
    ]
    ns = pm.n_states
    per_mode_names = set(system.per_mode_params)
    mod = xp(backend)
    flat_names = [f"{n}_1..{n}_K" for n in pm.state_names]

    def values_of(y, params):
        if checked:
            y = state_array(y, ns * K, flat_names, backend)
            given = system.check_params(params, batch=True)
            given = {k: (float(v) if isinstance(v, sp.Basic) else v) for k, v in given.items()}
        else:
            given = {k: params[k] for k in free}
        spectra = [y[..., i * K : (i + 1) * K] for i in range(ns)]
        # per-trajectory parameters broadcast over the mode axis; per-mode ones carry it
        values = {
            n: mod.asarray(v, dtype=mod.float64) if n in per_mode_names else mod.asarray(v, dtype=mod.float64)[..., None]
            for n, v in given.items() if n in free
        }
        free_values = [values[n] for n in free]
        closed_values = []
        for name, g, power in closures:
            summand = g(*spectra, *free_values, *closed_values)[0] * mod.ones_like(spectra[0])
            if power == "max":
                values[name] = mod.max(summand, axis=-1, keepdims=True)
            else:
                total = mod.sum(summand, axis=-1, keepdims=True)
                values[name] = total if power == 1 else total ** float(power)
            closed_values.append(values[name])
        return spectra, values

    return values_of


def _mode_function(system: ModeSystem, backend: str, checked: bool = True) -> RhsFunction:
    pm, K = system.per_mode, system.K
    raw = lambdified(pm.states + pm.params, tuple(pm.rhs), backend)
    values_of = mode_values(system, backend, checked)
    names = pm.param_names
    mod = xp(backend)
    free = [n for n in names if n not in system.closed]

    def f(t, y, params):
        spectra, values = values_of(y, params)
        out = raw(*spectra, *[values[n] for n in names])
        out = mod.broadcast_arrays(*[mod.asarray(o, dtype=mod.float64) * mod.ones_like(spectra[0]) for o in out])
        return mod.concatenate(out, axis=-1)

    f.__doc__ = f"{K}-mode flow of {pm.name or 'the per-mode system'}; params: {', '.join(free)}."
    return f
