"""Value semantics for result objects: immutable, compared and hashed by value.

Every result dataclass of ``dynamics`` (``Solution``, ``Iteration``, ``Equilibrium``,
``BatchRoots``, ``Bifurcation``, ``PhasePlane``, ...) derives from ``Value`` and is declared
``frozen=True, eq=False``. Construction makes it immutable all the way down: its NumPy arrays
become read-only (``flags.writeable = False``) and its dicts ``FrozenMap``s. Two results are
equal when they are of the same class and every field is equal: arrays by shape, dtype kind
and value, NaN equal to NaN (a trajectory padded with NaN equals itself); objects that compare
by identity (a system, a function) by identity. The hash agrees with that equality, so results
can be set members and dict keys; hashing reads every array, so it costs as much as a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np

from derivations import FrozenMap

__all__ = ["Value", "frozen_value"]


def frozen_value(v: Any) -> Any:
    """``v`` made immutable: a writeable array as a read-only view of it, a dict as a
    FrozenMap (values frozen too), a list as a tuple; anything else unchanged."""
    if isinstance(v, np.ndarray):
        if v.flags.writeable:
            v = v.view()
            v.flags.writeable = False
        return v
    if isinstance(v, dict):
        return FrozenMap({k: frozen_value(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(frozen_value(x) for x in v)
    return v


def _numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "fc"


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != b.shape:
            return False
        if a.dtype.kind == "O" or b.dtype.kind == "O":
            return all(_equal(x, y) for x, y in zip(a.ravel(), b.ravel()))
        if (a.dtype.kind in "US") != (b.dtype.kind in "US"):
            return False
        return bool(np.array_equal(a, b, equal_nan=_numeric(a) and _numeric(b)))
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return (isinstance(a, Mapping) and isinstance(b, Mapping) and set(a) == set(b)
                and all(_equal(a[k], b[k]) for k in a))
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (type(a) is type(b) and len(a) == len(b)) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (float, complex, np.floating, np.complexfloating)) and isinstance(
            b, (float, complex, np.floating, np.complexfloating)):
        return bool(a == b or (np.isnan(a) and np.isnan(b)))
    if a is b:
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _hash(v: Any) -> int:
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "O":
            return hash((v.shape, tuple(_hash(x) for x in v.ravel())))
        if _numeric(v):
            v = np.where(np.isnan(v), 0, v + 0)  # NaN equals NaN, -0.0 equals 0.0
        return hash((v.shape, v.dtype.kind in "US", np.ascontiguousarray(v).tobytes()))
    if isinstance(v, Mapping):
        return hash(frozenset((k, _hash(x)) for k, x in v.items()))
    if isinstance(v, (tuple, list)):
        return hash(tuple(_hash(x) for x in v))
    if isinstance(v, (float, complex, np.floating, np.complexfloating)):
        return hash(0.0) if np.isnan(v) else hash(v)
    try:
        return hash(v)
    except TypeError:
        return hash(type(v).__qualname__)


class Value:
    """Base of the result dataclasses (declared ``frozen=True, eq=False``): immutable fields
    (read-only arrays, FrozenMaps), equality and hash by value (see the module docstring)."""

    __slots__ = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            w = frozen_value(v)
            if w is not v:
                object.__setattr__(self, f.name, w)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def __hash__(self) -> int:
        return hash((type(self).__qualname__,) + tuple(_hash(getattr(self, f.name)) for f in fields(self)))
