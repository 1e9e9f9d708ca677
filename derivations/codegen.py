"""Code generation (SymPy -> JAX / NumPy) and the checks of numerical inputs, shared by both
layers: ``lambdified`` (cached, with common-subexpression elimination), the parameter-name
check every analysis uses (``check_param_names``) and the value checks behind
``DynamicalSystem.check_params``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import sympy as sp

BACKENDS = ("jax", "numpy")


@lru_cache(maxsize=512)
def lambdified(args: tuple[sp.Symbol, ...], rows: tuple[sp.Expr, ...], backend: str) -> Callable:
    """``g(*args) -> list`` for the expressions ``rows``, with common-subexpression elimination."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not allowed; choose one of {BACKENDS}")
    return sp.lambdify(list(args), list(rows), modules=backend, cse=True)


def xp(backend: str):
    if backend == "jax":
        import jax.numpy as jnp

        return jnp
    return np


def is_traced(value: Any) -> bool:
    """True for JAX tracers (inside jit/vmap/grad), whose values cannot be inspected."""
    try:
        import jax
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, jax.core.Tracer)


def is_text(value: Any) -> bool:
    """True for a string (or bytes), or a list, tuple or array that holds one: text is never
    read as a number (``"0.5"`` is refused like ``"half"``, and ``"5/24"`` is not 5/24)."""
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError:  # ragged nesting
            return any(is_text(v) for v in value)
        return arr.dtype.kind in "USa" or (arr.dtype == object and any(is_text(v) for v in arr.flat))
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "USa" or (value.dtype == object and any(is_text(v) for v in value.flat))
    return False


def check_not_text(name: str, value: Any, exact: bool = False) -> None:
    """Raise a TypeError naming ``name`` if ``value`` is text (``is_text``): the one rule for
    strings in numerical arguments, shared by every check. ``exact``: the argument takes SymPy
    numbers, so the message names ``sympy.Rational`` for an exact value."""
    if is_text(value):
        hint = "; for an exact value pass a SymPy number, e.g. sympy.Rational(5, 24)" if exact else ""
        raise TypeError(f"{name} must be numeric, not text (strings are not read as numbers); got {value!r:.60}{hint}")


def check_finite(name: str, value: Any) -> None:
    if is_traced(value):
        return
    check_not_text(name, value)
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real; got a complex value")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {value!r}")


def check_param_names(params: Any, names: Sequence[str], hint: str = "") -> dict[str, Any]:
    """``params`` keyed by name, after checking it is a mapping with exactly ``names``.

    Raises TypeError if params is not a mapping, ValueError for missing or unknown names
    (listing the valid ones, then ``hint``).
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a dict keyed by parameter name ({', '.join(names)}); "
            f"got {type(params).__name__}"
        )
    by_name = {str(k): v for k, v in params.items()}
    missing = [n for n in names if n not in by_name]
    unknown = sorted(set(by_name) - set(names))
    if missing or unknown:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
        raise ValueError(f"params: {'; '.join(parts)}. Valid names: {list(names)}{hint}")
    return by_name


def param_values(params: Any, names: Sequence[str], backend: str) -> list:
    """Values of ``params`` (a dict keyed by parameter name) in the order of ``names``.

    Raises TypeError if params is not a mapping, ValueError for missing or unknown names
    (listing the valid ones) and for non-finite values.
    """
    by_name = check_param_names(params, names)
    mod = xp(backend)
    out = []
    for n in names:
        v = by_name[n]
        check_finite(f"params[{n!r}]", v)
        out.append(v if is_traced(v) else mod.asarray(v, dtype=mod.float64))
    return out


def state_array(y: Any, n: int, names: Sequence[str], backend: str):
    """``y`` as a float64 array whose last axis holds the ``n`` states ``names``."""
    check_finite("y", y)
    mod = xp(backend)
    arr = y if is_traced(y) else mod.asarray(y, dtype=mod.float64)
    if arr.ndim == 0 or arr.shape[-1] != n:
        raise ValueError(
            f"y must have shape (..., {n}) with the last axis holding the states "
            f"({', '.join(names)}); got shape {tuple(arr.shape)}"
        )
    return arr


def float_bounds(interval: sp.Interval) -> tuple[float, float]:
    """(start, end) of an interval as floats (infinite where unbounded)."""
    return float(interval.start), float(interval.end)


def check_value(name: str, value: Any, domain: sp.Interval | None, batch: bool) -> Any:
    """One parameter value checked: real, finite, inside ``domain``; an array only with
    ``batch``; SymPy numbers kept exact, JAX tracers passed through; text refused
    (``check_not_text``: TypeError)."""
    if is_traced(value):
        return value
    check_not_text(f"params[{name!r}]", value, exact=True)
    if isinstance(value, bool):
        raise TypeError(f"params[{name!r}] must be a real number; got {value!r}")
    if isinstance(value, sp.Basic):
        if not (value.is_number and value.is_real and value.is_finite):
            raise ValueError(f"params[{name!r}] must be a finite real number; got {value!r}")
        if domain is not None and not domain.contains(value) == sp.true:
            raise ValueError(f"params[{name!r}] = {value} is outside the model's domain: need {interval_words(name, domain)}")
        return value
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"params[{name!r}] must be a real number; got {value!r:.60}") from None
    if np.iscomplexobj(np.asarray(value)):
        raise TypeError(f"params[{name!r}] must be real; got a complex value")
    if arr.ndim and not batch:
        raise TypeError(f"params[{name!r}] must be a real scalar here; got an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"params[{name!r}] must be finite; got {value!r}")
    if domain is not None:
        lo, hi = float_bounds(domain)
        below = arr < lo if not domain.left_open else arr <= lo
        above = arr > hi if not domain.right_open else arr >= hi
        if np.any(below | above):
            bad = arr[below | above].flat[0]
            raise ValueError(f"params[{name!r}] = {bad} is outside the model's domain: need {interval_words(name, domain)}")
    return float(arr) if arr.ndim == 0 else arr


def interval_words(name: str, interval: sp.Interval) -> str:
    """``interval`` as a condition on ``name``, e.g. "alpha_p > 0" or "0 <= x <= 1"."""
    parts = []
    if interval.start != -sp.oo:
        parts.append(f"{name} {'>' if interval.left_open else '>='} {interval.start}")
    if interval.end != sp.oo:
        parts.append(f"{name} {'<' if interval.right_open else '<='} {interval.end}")
    return " and ".join(parts) or f"{name} real"
