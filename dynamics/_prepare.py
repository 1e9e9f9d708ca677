"""What the analyses across parameters share: restriction to the declared invariant manifold,
the one-state check, the one reading of a sweep, and read-only result arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from derivations import DynamicalSystem, ODESystem
from derivations.codegen import check_not_text

__all__ = ["prepared", "symbolic_form", "one_state", "label", "as_float", "read_only", "check_sweep", "MAX_BISECTIONS"]

MAX_BISECTIONS = 200
"""Bisections a located point may take: with tolerances no smaller than MIN_TOL
(``dynamics._tolerance``) 200 halvings always suffice, so no loop depends on the tolerance alone."""



def symbolic_form(system: Any, what: str) -> ODESystem:
    """The explicit equations (``system.symbolic``) that the analysis ``what`` needs, or an
    error saying why there are none: a TypeError for an object that is no DynamicalSystem, a
    ValueError for a system served numerically only."""
    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a derivations.DynamicalSystem (an ODESystem, derive(spec), a K-mode "
                        f"system); got {type(system).__name__}")
    sym = system.symbolic
    if sym is None:
        raise ValueError(
            f"{what} needs the explicit SymPy equations of the system, and {label(system)} is served numerically "
            "only (system.symbolic is None); a K-mode ModeSystem gives them with system.to_ode_system() (K <= 64)"
        )
    return sym


def prepared(system: Any, what: str = "this analysis") -> ODESystem:
    """The explicit equations of ``system`` restricted to its declared invariant manifold (if any)."""
    sym = symbolic_form(system, what)
    return sym.reduce() if sym.manifold is not None else sym


def label(system: DynamicalSystem) -> str:
    return system.name or "the system"


def one_state(system: Any, what: str) -> ODESystem:
    """The one-state rational system ``what`` needs (after manifold restriction), or a
    ValueError saying why not and what would serve."""
    reduced = prepared(system, what)
    if reduced.n_states != 1:
        after = " after restriction to its invariant manifold" if reduced is not system else ""
        extra = ", ".join(repr(n) for n in reduced.state_names[1:])
        raise ValueError(
            f"{what} needs a one-state reduced system (dx/dt = f(x)); {label(system)} has states "
            f"{list(reduced.state_names)}{after}. Hold states fixed as parameters with "
            f"derivations.freeze(system, {extra}) or restrict it to an invariant graph with "
            "derivations.reduce(system, {state: expression}); bifurcation() serves several states"
        )
    if not reduced.is_rational:
        raise ValueError(
            f"{what} needs a right-hand side polynomial (or rational) in the state {reduced.state_names[0]}; "
            f"{label(system)}'s is not. Use equilibria(system, params) at each parameter point instead"
        )
    return reduced


def as_float(v: Any) -> Any:
    return float(v) if isinstance(v, sp.Basic) else v


def numeric(v: Any) -> float | np.ndarray:
    """A parameter value as a float, or a float64 array for a parameter with a shape of its own
    (one value per mode)."""
    v = as_float(v)
    return float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float)


def read_only(a: Any, dtype: Any = float) -> np.ndarray:
    out = np.array(a, dtype=dtype)
    out.flags.writeable = False
    return out




def check_sweep(sweep: Any, what: str, allowed: Sequence[str] | None = None) -> tuple[str, np.ndarray]:
    """(name, values) of a sweep: a pair (parameter name, 1-D finite real values, at least one),
    the name one of ``allowed`` when given; ValueError naming the argument ``what`` otherwise."""
    try:
        name, values = sweep
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (parameter name, values); got {sweep!r:.80}") from None
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a pair (parameter name, values) with a str name; got {name!r:.60}")
    if allowed is not None and name not in allowed:
        raise ValueError(f"{what} names {name!r}, not a parameter; choose from {tuple(allowed)}")
    check_not_text(f"{what} values", values)
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what} values must be a 1-D list of real numbers; got {values!r:.60}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} values must be a non-empty 1-D list of numbers; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} values must be finite; got {arr}")
    return name, arr
