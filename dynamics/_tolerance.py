"""One tolerance policy for every analysis that decides "zero", "equal" or "real".

``equilibria``, ``classify``, ``roots_batch``, ``bifurcation`` and ``regimes`` all decide with
these functions, so two of them never label the same point differently.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RTOL", "ATOL", "check_tol", "is_zero", "same_point"]

RTOL = 1e-9
"""Relative tolerance: two numbers agree, or a number counts as zero, within RTOL * scale."""
ATOL = 1e-12
"""Absolute floor under RTOL * scale, for quantities whose natural scale is itself zero."""
MIN_TOL = 1e2 * np.finfo(float).eps
"""The smallest relative tolerance an iterative refinement may be asked for: below it
double precision cannot tell the iterates apart, and a loop would never end."""


def check_tol(value, name: str = "tol") -> float:
    """``value`` as a float relative tolerance; raises ValueError unless finite and at least
    MIN_TOL (a smaller one cannot be met in double precision)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number >= {MIN_TOL:.1e}; got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < MIN_TOL:
        raise ValueError(f"{name} must be a finite number >= {MIN_TOL:.1e} (double precision); got {value!r}")
    return v


def is_zero(value, scale=1.0, rtol: float = RTOL, atol: float = ATOL):
    """|value| <= atol + rtol * |scale|, elementwise."""
    return np.abs(value) <= atol + rtol * np.abs(scale)


def same_point(x, y, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """True where the points x and y agree in every coordinate within the policy."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return bool(np.all(np.abs(x - y) <= atol + rtol * np.maximum(np.abs(x), np.abs(y))))
