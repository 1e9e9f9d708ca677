"""iterate(): a discrete-time system y_{n+1} = y_n + rhs(y_n) stepped with ``jax.lax.scan``.

A discrete system (``system.discrete()`` of a derived system, attribute ``is_discrete = True``)
carries the one-step INCREMENT of gradient descent with a finite learning rate ``lr`` as its
right-hand side; iterating it is what a network trained with that learning rate does on
average, where the gradient flow would be the limit lr -> 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from derivations import FrozenMap, Names, Params, System

from ._display import html_table
from ._tolerance import BLOWUP_BOUND
from ._value import Value

__all__ = ["iterate", "Iteration", "ITERATION_STATUSES", "record_steps", "is_discrete"]

ITERATION_STATUSES = Names.define("ITERATION_STATUSES", {
    "finished": "every step stayed finite and inside the bound.",
    "blew_up": "max abs(y) exceeded blowup_bound (the state is kept at the last step inside).",
    "non-finite": "a step produced NaN or inf (the state is kept at the last finite step).",
}, module=__name__, summary="How each run of an Iteration ended (Iteration.status holds one of these).")


def is_discrete(system: Any) -> bool:
    """True for a discrete-time system (attribute ``is_discrete`` or ``discrete`` set to True)."""
    return getattr(system, "is_discrete", False) is True or getattr(system, "discrete", False) is True


def record_steps(n_steps: int, record_every: int) -> np.ndarray:
    """The recorded step indices: 0, k, 2k, ... and always the last step ``n_steps``."""
    steps = list(range(0, n_steps, record_every)) + [n_steps]
    return np.asarray(sorted(set(steps)), dtype=np.int64)


@dataclass(frozen=True, repr=False, eq=False)
class Iteration(Value):
    """The orbit of a discrete system at the recorded steps.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    steps : numpy.ndarray of int
        Recorded step indices (0, k, 2k, ..., n_steps), shape (n_rec,).
    t : numpy.ndarray
        The matching times steps * lr when the system has a parameter ``lr``, else the steps
        as floats.
    y : numpy.ndarray
        batch_shape + (n_rec, n_states); after a run ended it holds its end state.
    valid : numpy.ndarray of bool
        batch_shape + (n_rec,): True where the recorded step is not after the end.
    status : numpy.ndarray of str
        batch_shape: one of ITERATION_STATUSES.
    end_step : numpy.ndarray of int
        batch_shape: the last step the run reached (n_steps when finished).
    state_names : tuple of str
        The system's flat state names.
    info : FrozenMap
        The options used.
    """

    steps: np.ndarray
    t: np.ndarray
    y: np.ndarray
    valid: np.ndarray
    status: np.ndarray
    end_step: np.ndarray
    state_names: tuple[str, ...]
    info: Mapping[str, object] = field(default_factory=FrozenMap)

    @property
    def final(self) -> np.ndarray:
        """The state where each run ended, batch_shape + (n_states,)."""
        return self.y[..., -1, :]

    @property
    def finite(self) -> bool:
        """True when every run finished without leaving the bound or the finite numbers."""
        return bool(np.all(self.status == "finished"))

    def states(self) -> dict[str, np.ndarray]:
        """The recorded orbit state by state.

        Returns
        -------
        dict of str -> numpy.ndarray
            ``{state name: y[..., i]}``, each batch_shape + (n_rec,).
        """
        return {n: self.y[..., i] for i, n in enumerate(self.state_names)}

    def __repr__(self) -> str:
        counts = {s: int(np.sum(self.status == s)) for s in ITERATION_STATUSES if np.any(self.status == s)}
        shape = self.status.shape
        return (f"Iteration({int(self.steps[-1])} steps, {len(self.steps)} records, "
                f"{len(self.state_names)} states, batch {shape}, status {counts})")

    def _repr_html_(self) -> str:
        counts = {s: int(np.sum(self.status == s)) for s in ITERATION_STATUSES}
        return html_table(
            f"Iteration: {int(np.prod(self.status.shape))} runs, batch shape {self.status.shape}",
            ("status", "runs"), [(k, v) for k, v in counts.items() if v],
            [f"{int(self.steps[-1])} steps, {len(self.steps)} records, t in [{self.t[0]:g}, {self.t[-1]:g}]; "
             f"{len(self.state_names)} states"],
        )


def iterate(
    system: System,
    y0: ArrayLike,
    n_steps: int,
    params: Params,
    *,
    record_every: int = 1,
    blowup_bound: float = BLOWUP_BOUND,
) -> Iteration:
    """Iterate a discrete system: y_{n+1} = y_n + rhs(y_n; params), n = 0 .. n_steps - 1.

    Parameters
    ----------
    system : a discrete system (``discrete = True``, e.g. ``derive(spec).discrete()`` or its
        ``.modes(K)``): anything with state_names, n_states, check_params and to_jax whose
        rhs is the one-step increment.
    y0 : array, shape (..., n_states); leading axes form the batch.
    n_steps : int >= 0, the number of steps.
    params : dict keyed by parameter name (``lr`` among them for a gradient-descent map),
        checked by ``system.check_params(params, batch=True)``.
    record_every : int >= 1, record every k steps (the last step is always recorded).
    blowup_bound : a run ends (status "blew_up") once max abs(y) exceeds it (default ``BLOWUP_BOUND``).

    Returns
    -------
    Iteration (steps, t, y, valid, status, end_step).

    Raises
    ------
    TypeError
        ``system`` lacks the numerics interface, or n_steps/record_every are not ints.
    ValueError
        ``system`` is not discrete (use ``system.discrete()``), bad y0 shape, negative
        n_steps, record_every < 1, a non-positive or non-finite bound, or bad params.
    """
    import jax
    import jax.numpy as jnp

    for attr in ("state_names", "n_states", "check_params", "to_jax"):
        if not hasattr(system, attr):
            raise TypeError(f"system must be a discrete ODESystem or ModeSystem; {type(system).__name__} has no {attr!r}")
    if not is_discrete(system):
        raise ValueError(
            "system must be discrete (its rhs the one-step increment, attribute discrete = True); "
            "use system.discrete() for gradient descent with a learning rate, or dynamics.integrate for a flow"
        )
    for name, v, lo in (("n_steps", n_steps, 0), ("record_every", record_every, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int >= {lo}; got {type(v).__name__} {v!r}")
        if v < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {v}")
    if isinstance(blowup_bound, bool) or not isinstance(blowup_bound, (int, float)) or not np.isfinite(blowup_bound) or blowup_bound <= 0:
        raise ValueError(f"blowup_bound must be a positive finite number; got {blowup_bound!r}")
    checked = system.check_params(params, batch=True)
    values = {k: (float(v) if np.ndim(v) == 0 else jnp.asarray(v, dtype=jnp.float64)) for k, v in checked.items()}
    y0 = np.asarray(y0, dtype=np.float64)
    if y0.ndim == 0 or y0.shape[-1] != system.n_states:
        raise ValueError(f"y0 must have shape (..., {system.n_states}) (states {tuple(system.state_names)[:6]}...); got {y0.shape}")
    if not np.all(np.isfinite(y0)):
        raise ValueError("y0 must be finite")
    f = system.to_jax(checked=False)
    y_start = jnp.asarray(y0)
    y_start = jnp.broadcast_to(y_start, jnp.shape(f(0.0, y_start, values)))
    batch = y_start.shape[:-1]
    bound = float(blowup_bound)

    def step(carry, _):
        y, code, n = carry
        y_new = y + f(0.0, y, values)
        nonfinite = ~jnp.all(jnp.isfinite(y_new), axis=-1)
        big = jnp.max(jnp.abs(jnp.where(jnp.isfinite(y_new), y_new, 0.0)), axis=-1) > bound
        alive = code == 0
        new_code = jnp.where(alive & nonfinite, 2, jnp.where(alive & big, 1, code))
        ok = alive & (new_code == 0)
        y = jnp.where(ok[..., None], y_new, y)
        n = n + ok.astype(n.dtype)
        return (y, new_code, n), None

    @jax.jit
    def segment(carry, length_marker):
        return jax.lax.scan(step, carry, None, length=length_marker.shape[0])[0]

    steps = record_steps(int(n_steps), int(record_every))
    carry = (y_start, jnp.zeros(batch, dtype=jnp.int32), jnp.zeros(batch, dtype=jnp.int64))
    ys, codes, ends = [np.asarray(y_start)], [np.zeros(batch, dtype=np.int32)], [np.zeros(batch, dtype=np.int64)]
    for length in np.diff(steps):
        carry = segment(carry, jnp.zeros(int(length)))
        ys.append(np.asarray(carry[0]))
        codes.append(np.asarray(carry[1]))
        ends.append(np.asarray(carry[2]))
    y = np.stack(ys, axis=-2)
    end_step = ends[-1]
    valid = steps <= end_step[..., None]
    status = np.asarray(np.asarray(ITERATION_STATUSES)[codes[-1]], dtype=str)
    lr = checked.get("lr")
    t = steps * float(lr) if lr is not None and np.ndim(lr) == 0 else steps.astype(float)
    return Iteration(steps, t, y, valid, status, end_step, tuple(system.state_names),
                     {"n_steps": int(n_steps), "record_every": int(record_every), "blowup_bound": bound})
