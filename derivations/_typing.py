"""Type aliases of the public signatures, shared by ``derivations`` and ``dynamics``.

``Params`` is what every analysis takes as parameter values: a mapping from parameter name to
a real number or, where an analysis sweeps or batches, an array of them. Systems are typed by
their interface, ``derivations.DynamicalSystem``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from numpy.typing import ArrayLike

__all__ = ["Params"]

Params: TypeAlias = Mapping[str, float | ArrayLike]
"""Parameter values keyed by parameter name: real numbers, or arrays where batches are allowed."""
