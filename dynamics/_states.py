"""State names: one-mode systems have p, s[, tau]; K-mode systems p_1..p_K, s_1..s_K[, tau_1..]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def base_name(state: str) -> str:
    """The eigenvalue a state is: "p", "s" or "tau" (mode index dropped)."""
    return state.split("_")[0]


def collapse_indices(names: Sequence[str]) -> np.ndarray:
    """Indices of the p and s states: all of them zero is collapse."""
    return np.array([i for i, n in enumerate(names) if base_name(n) in ("p", "s")], dtype=int)
