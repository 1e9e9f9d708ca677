"""One progress bar for the long batched analyses (integrate, basins, roots_batch, regimes)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["PROGRESS_DELAY", "check_progress", "progress_bar"]

PROGRESS_DELAY = 3.0
"""Seconds a call runs before its bar appears: short calls print nothing."""


def check_progress(progress: Any) -> bool:
    """``progress`` must be True or False (TypeError naming the argument otherwise)."""
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False; got {progress!r:.60}")
    return progress


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "it") -> Any:
    """A tqdm bar over ``total`` items, shown only when ``enabled``, stderr is a terminal and
    the work lasts more than PROGRESS_DELAY seconds; otherwise a silent bar with the same API.

    Parameters
    ----------
    total : number of items (trajectories, parameter points).
    desc : the label in front of the bar.
    enabled : False: never shown (the ``progress=False`` of the analyses).
    unit : the item's name.

    Returns
    -------
    A ``tqdm.tqdm`` object: use ``update(k)`` and ``close()`` (or ``with``).
    """
    from tqdm.auto import tqdm

    shown = bool(enabled) and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(total=int(total), desc=desc, unit=unit, disable=not shown, delay=PROGRESS_DELAY,
                leave=False, dynamic_ncols=True, unit_scale=True)
