"""iterate(): a discrete-time system y_{n+1} = y_n + rhs(y_n) stepped with ``jax.lax.scan``.

A map (a ``DynamicalSystem`` with ``time == "discrete"``: ``system.discrete()`` of a derived
system, ``ODESystem.from_map``, or any system declaring it) carries the one-step INCREMENT as
its right-hand side. For ``discrete()`` that is gradient descent with a finite learning rate
``lr`` (the declared ``step_param``); iterating it is what a network trained with that learning
rate does on average, where the gradient flow would be the limit lr -> 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from derivations import DynamicalSystem, FrozenMap, Names, Params
from derivations.codegen import check_not_text

from ._checks import check_in_domain
from ._display import html_table
from ._tolerance import BLOWUP_BOUND, COLLAPSE_TOL
from ._value import Value

__all__ = ["iterate", "Iteration", "ITERATION_STATUSES", "record_steps"]

ITERATION_STATUSES = Names.define("ITERATION_STATUSES", {
    "finished": "every step stayed finite, inside the bound and short of a runaway step.",
    "blew_up": "max abs(y) exceeded blowup_bound, or a step ran away (moved the state by more than runaway "
               "times max abs(y)) while the collapse states were not shrinking; the state is kept at the last "
               "step before.",
    "non-finite": "a step produced NaN or inf (the state is kept at the last finite step).",
    "collapsed": "every collapse state came within collapse_tol of zero (the state is kept there), or a step "
                 "ran away while the collapse states were shrinking: the map jumped past a finite-time collapse "
                 "of its flow (the state is kept at the last step before).",
}, module=__name__, summary="How each run of an Iteration ended (Iteration.status holds one of these).")

_CODES = ("finished", "blew_up", "non-finite", "collapsed")


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
        The matching times: steps times the value of the system's ``step_param`` (a learning
        rate) when it declares one and its value is a scalar, else the steps as floats.
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
    system: DynamicalSystem,
    y0: ArrayLike,
    n_steps: int,
    params: Params,
    *,
    record_every: int = 1,
    blowup_bound: float = BLOWUP_BOUND,
    collapse_tol: float | None = COLLAPSE_TOL,
    runaway: float | None = 2.0,
) -> Iteration:
    """Iterate a discrete system: y_{n+1} = y_n + rhs(y_n; params), n = 0 .. n_steps - 1.

    A run ends, as ``integrate`` does, where the map leaves what it can follow: max abs(y) past
    ``blowup_bound`` ("blew_up"); every collapse state within ``collapse_tol`` of zero
    ("collapsed"); or a runaway step, max abs(increment) > ``runaway`` * max abs(y): one step
    moved the state further than the state's own size, as a map does at a finite-time
    singularity of its flow (it jumps over it and continues on a branch the flow never
    reaches). A runaway step while the collapse states were shrinking is a finite-time collapse
    ("collapsed", the flow's status there too), otherwise a blow-up ("blew_up"). The default
    runaway = 2 is the stability edge of gradient descent on a quadratic (x -> x - lr a x runs
    away exactly when it diverges, lr a > 2); x -> x + lr x^2 runs away at x = 2/lr, past
    which it grows at least threefold per step.

    Parameters
    ----------
    system : a map (``time == "discrete"``, e.g. ``derive(spec).discrete()`` or its
        ``.modes(K)``, ``ODESystem.from_map``): a DynamicalSystem whose rhs is the one-step
        increment.
    y0 : array, shape (..., n_states); leading axes form the batch.
    n_steps : int >= 0, the number of steps.
    params : dict keyed by parameter name (``lr`` among them for a gradient-descent map),
        checked by ``system.check_params(params, batch=True)``.
    record_every : int >= 1, record every k steps (the last step is always recorded).
    blowup_bound : a run ends (status "blew_up") once max abs(y) exceeds it (default ``BLOWUP_BOUND``).
    collapse_tol : a run ends (status "collapsed") once every collapse state
        (``system.collapse_indices``) is within it of zero; None: never (systems without
        collapse states never collapse).
    runaway : a step whose increment exceeds it times max abs(y) ends the run ("collapsed" or
        "blew_up", above); > 1, default 2; None: no such check (maps whose one step may
        legitimately exceed the state, e.g. the logistic map).

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
    import jax.numpy as jnp

    _check_iterate_args(system, n_steps, record_every, blowup_bound, collapse_tol, runaway)
    checked = system.check_params(params, batch=True)
    values = {k: (float(v) if np.ndim(v) == 0 else jnp.asarray(v, dtype=jnp.float64)) for k, v in checked.items()}
    check_not_text("y0", y0)
    y0 = np.asarray(y0, dtype=np.float64)
    if y0.ndim == 0 or y0.shape[-1] != system.n_states:
        raise ValueError(f"y0 must have shape (..., {system.n_states}) (states {tuple(system.state_names)[:6]}...); got {y0.shape}")
    if y0.size == 0:
        raise ValueError(f"y0 is an empty batch (shape {y0.shape}): give at least one initial state")
    if not np.all(np.isfinite(y0)):
        raise ValueError("y0 must be finite")
    check_in_domain(y0, system)
    f = system.to_jax(checked=False)
    y_start = jnp.asarray(y0)
    y_start = jnp.broadcast_to(y_start, jnp.shape(f(0.0, y_start, values)))
    bound = float(blowup_bound)
    idx = np.asarray(system.collapse_indices, dtype=int)
    tol = -1.0 if collapse_tol is None or not idx.size > 0 else float(collapse_tol)
    ratio = np.inf if runaway is None else float(runaway)
    step, size_c = _map_step(f, values, idx, bound, tol, ratio)

    steps = record_steps(int(n_steps), int(record_every))
    y, end_step, code = _scan_records(step, size_c, y_start, tol, steps)
    valid = steps <= end_step[..., None]
    status = np.asarray(np.asarray(_CODES)[code], dtype=str)
    dt = checked.get(system.step_param) if system.step_param is not None else None
    t = steps * float(dt) if dt is not None and np.ndim(dt) == 0 else steps.astype(float)
    return Iteration(steps, t, y, valid, status, end_step, tuple(system.state_names),
                     {"n_steps": int(n_steps), "record_every": int(record_every), "blowup_bound": bound,
                      "collapse_tol": collapse_tol, "runaway": runaway})


def _check_iterate_args(system: Any, n_steps: Any, record_every: Any, blowup_bound: Any, collapse_tol: Any,
                        runaway: Any) -> None:
    """Raises for a system that is no map, or bad counts, bound, tolerance or runaway ratio."""
    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a derivations.DynamicalSystem with time 'discrete'; got {type(system).__name__}")
    if system.time != "discrete":
        raise ValueError(
            "system must be a map (time 'discrete', its rhs the one-step increment); use system.discrete() for "
            "gradient descent with a learning rate, ODESystem.from_map for a map of your own, or dynamics.integrate for a flow"
        )
    for name, v, lo in (("n_steps", n_steps, 0), ("record_every", record_every, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int >= {lo}; got {type(v).__name__} {v!r}")
        if v < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {v}")
    if isinstance(blowup_bound, bool) or not isinstance(blowup_bound, (int, float)) or not np.isfinite(blowup_bound) or blowup_bound <= 0:
        raise ValueError(f"blowup_bound must be a positive finite number; got {blowup_bound!r}")
    if collapse_tol is not None and (isinstance(collapse_tol, bool) or not isinstance(collapse_tol, (int, float))
                                     or not np.isfinite(collapse_tol) or collapse_tol <= 0):
        raise ValueError(f"collapse_tol must be a positive finite number or None; got {collapse_tol!r}")
    if runaway is not None and (isinstance(runaway, bool) or not isinstance(runaway, (int, float))
                                or not np.isfinite(runaway) or runaway <= 1):
        raise ValueError(f"runaway must be a finite number > 1 or None; got {runaway!r}")


def _map_step(f, values: dict, idx: np.ndarray, bound: float, tol: float, ratio: float):
    """(step, size_c): one ``lax.scan`` step of the map on the carry (y, status code, steps
    taken, previous size of the collapse states), which stops a run on a non-finite state (2),
    a runaway step (3 while the collapse states shrink, else 1), a blow-up (1) or collapse
    (3); and the size of the collapse states, max abs(y[..., idx])."""
    import jax.numpy as jnp

    watch = idx.size > 0

    def size_c(y):
        return jnp.max(jnp.abs(y[..., idx]), axis=-1) if watch else jnp.zeros(y.shape[:-1])

    def step(carry, _):
        y, code, n, prev_c = carry
        inc = f(0.0, y, values)
        y_new = y + inc
        nonfinite = ~jnp.all(jnp.isfinite(y_new), axis=-1)
        big = jnp.max(jnp.abs(jnp.where(jnp.isfinite(y_new), y_new, 0.0)), axis=-1) > bound
        size = jnp.max(jnp.abs(y), axis=-1)
        jump = jnp.max(jnp.abs(jnp.where(jnp.isfinite(inc), inc, 0.0)), axis=-1) > ratio * jnp.maximum(size, 1e-300)
        c_now = size_c(y)
        shrinking = watch & (c_now < prev_c)
        reached = size_c(y_new) <= tol
        alive = code == 0
        new_code = jnp.where(~alive, code, jnp.where(nonfinite, 2, jnp.where(
            jump, jnp.where(shrinking, 3, 1), jnp.where(big, 1, jnp.where(reached, 3, 0)))))
        ok = alive & ((new_code == 0) | (~nonfinite & ~jump & ~big & reached))
        y = jnp.where(ok[..., None], y_new, y)
        n = n + ok.astype(n.dtype)
        prev_c = jnp.where(ok, c_now, prev_c)
        return (y, new_code, n, prev_c), None

    return step, size_c


def _scan_records(step, size_c, y_start, tol: float, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs ``step`` between the recorded steps (one compiled scan per segment length).
    Returns the recorded states (batch + (n_rec, n_states)), the steps each run took, and the
    final status codes."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def segment(carry, length_marker):
        return jax.lax.scan(step, carry, None, length=length_marker.shape[0])[0]

    batch = y_start.shape[:-1]
    code0 = jnp.where(size_c(y_start) <= tol, 3, 0).astype(jnp.int32)  # already on the collapse set
    carry = (y_start, code0, jnp.zeros(batch, dtype=jnp.int64), jnp.zeros(batch))
    ys, codes, ends = [np.asarray(y_start)], [np.asarray(code0)], [np.zeros(batch, dtype=np.int64)]
    for length in np.diff(steps):
        carry = segment(carry, jnp.zeros(int(length)))
        ys.append(np.asarray(carry[0]))
        codes.append(np.asarray(carry[1]))
        ends.append(np.asarray(carry[2]))
    return np.stack(ys, axis=-2), ends[-1], codes[-1]
