"""Stochastic systems in ``integrate``: the Ito SDE dy = f dt + g dW on seeded Brownian paths,
through diffrax.

Each run is ``diffeqsolve`` of MultiTerm(ODETerm(f), ControlTerm(g, W)) with a fixed step dt, W
diffrax's ``UnsafeBrownianPath`` keyed by (seed, path): the increment of each step is drawn
from the path's key and the step's end points, so path i is the same Brownian motion whatever
the batch, the chunking or the parameters (common random numbers across a sweep) and a run is
reproducible bit for bit; another dt draws another path. (A ``VirtualBrownianTree``, which
keeps the path across step sizes, costs about 30 times more per step here.) The
named solver is "euler" (Euler-Maruyama, an Ito method: strong order 1/2, weak order 1 for
multiplicative noise); a diffrax Ito solver object (``diffrax.AbstractItoSolver``: Euler,
ItoMilstein) may be passed instead (its Levy area is generated as it requires; diffrax does
not check the noise conditions its higher-order methods need, e.g. ItoMilstein's commutative
noise). Stratonovich solvers (Heun, EulerHeun, the SRK family) are refused: the drift of a
stochastic system here is the Ito drift, and they would integrate an SDE whose drift differs
by g dg/2. Events are checked at
every step end: a run ends at the first step after which an oriented margin is <= 0, so event
times are located to the step dt (no root finding on a Brownian path). Statuses are those of
``integrate``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from derivations import Names

from ._events import Event
from ._numeric import NumericSystem
from ._outcomes import EVENT, FAILED, FINISHED, MAX_STEPS, START
from ._status import run_statuses

__all__ = ["SDE_SOLVERS", "integrate_sde"]

SDE_SOLVERS = Names.define(
    "SDE_SOLVERS", {"euler": "Euler-Maruyama (Ito): strong order 1/2, weak order 1 (default)."},
    module=__name__, summary="The named solvers of integrate for stochastic systems.")

def check_sde_solver(solver: Any) -> Any:
    """``solver``: None (euler), a name of SDE_SOLVERS or a diffrax Ito solver object."""
    if solver is None:
        return "euler"
    if isinstance(solver, str):
        if solver not in SDE_SOLVERS:
            raise ValueError(f"solver for a stochastic system must be one of {sorted(SDE_SOLVERS)} or a diffrax Ito "
                             f"solver object; got {solver!r}")
        return solver
    import diffrax

    if isinstance(solver, diffrax.AbstractItoSolver):
        return solver
    if isinstance(solver, diffrax.AbstractSolver):
        raise ValueError(f"solver for a stochastic system must be an Ito method (diffrax.AbstractItoSolver: Euler, "
                         f"ItoMilstein); {type(solver).__name__} is not (a Stratonovich or ODE solver would integrate "
                         "another SDE: the system's drift is the Ito drift)")
    raise TypeError(f"solver must be a name ({sorted(SDE_SOLVERS)}) or a diffrax Ito solver; "
                    f"got {type(solver).__name__}")


def _solver_object(solver: Any) -> Any:
    import diffrax

    if isinstance(solver, str):
        return diffrax.Euler()
    return solver


@lru_cache(maxsize=32)
def sde_core(num: NumericSystem, solver: Any, events: tuple[Event, ...], max_steps: int):
    """``one(y0, params, key, ts, span, dt) -> dict``: one path, pure JAX (jit/vmap); the same
    keys as ``_flow.trajectory_core``."""
    import diffrax
    import jax
    import jax.numpy as jnp

    f = num.f_jax
    g = num.system.diffusion.function
    n_noise = num.system.diffusion.n_noise
    ctx = num.context("jax")
    n_ev = len(events)
    stepper = _solver_object(solver)
    levy_area = getattr(stepper, "minimal_levy_area", diffrax.BrownianIncrement)

    def raw_margins(t, y, params):
        return jnp.stack([jnp.asarray(e.margin(t, y, params, ctx), dtype=jnp.float64).reshape(()) for e in events])

    def one(y0, params, key, ts, span, dt):
        t0, t1 = span[0], span[1]
        bm = diffrax.UnsafeBrownianPath(shape=(n_noise,), key=key, levy_area=levy_area)
        terms = diffrax.MultiTerm(diffrax.ODETerm(lambda t, y, args: f(t, y, args)),
                                  diffrax.ControlTerm(lambda t, y, args: g(t, y, args), bm))
        event, start, start_which, signs = None, jnp.asarray(False), jnp.asarray(-1), None
        if n_ev:
            m0 = raw_margins(t0, y0, params)
            signs = jnp.stack([jnp.asarray(e.orient(m0[i], ctx), dtype=jnp.float64) for i, e in enumerate(events)])
            om0 = signs * m0
            start = jnp.any(om0 <= 0)
            start_which = jnp.where(start, jnp.argmax(om0 <= 0), -1)
            event = diffrax.Event(lambda t, y, args, **kw: jnp.min(signs * raw_margins(t, y, args)) <= 0)
        sol = diffrax.diffeqsolve(
            terms, stepper, t0, t1, dt, y0, params, saveat=diffrax.SaveAt(ts=ts, t1=True),
            stepsize_controller=diffrax.ConstantStepSize(), event=event, max_steps=max_steps, throw=False,
            adjoint=diffrax.ForwardMode())
        n_t = ts.shape[0]
        finite = jnp.isfinite(sol.ts) & jnp.all(jnp.isfinite(sol.ys), axis=1)
        last = jnp.argmax(jnp.where(finite, sol.ts, -jnp.inf))
        any_finite = jnp.any(finite)
        t_end = jnp.where(any_finite, sol.ts[last], t0)
        y_end = jnp.where(any_finite, sol.ys[last], y0)
        valid = finite[:n_t] & (sol.ts[:n_t] == ts) & (ts <= t_end)
        ys = jnp.where(valid[:, None], sol.ys[:n_t], y_end[None, :])
        r = sol.result
        code = jnp.select([r == diffrax.RESULTS.successful, r == diffrax.RESULTS.event_occurred,
                           r == diffrax.RESULTS.max_steps_reached], [FINISHED, EVENT, MAX_STEPS], FAILED)
        nonfinite = ~jnp.all(finite[:n_t] | (ts > t_end)) | ~jnp.all(jnp.isfinite(sol.ys[-1]))
        code = jnp.where((code == FINISHED) & nonfinite, FAILED, code)
        which = jnp.asarray(-1)
        if n_ev:
            which = jnp.where(code == EVENT, jnp.argmin(signs * raw_margins(t_end, y_end, params)), -1)
            code = jnp.where(start, START, code)
            which = jnp.where(start, start_which, which)
            t_end = jnp.where(start, t0, t_end)
            y_end = jnp.where(start, y0, y_end)
            valid = jnp.where(start, ts <= t0, valid)
            ys = jnp.where(start, jnp.broadcast_to(y0, ys.shape), ys)
        return {"ys": ys, "valid": valid, "t_end": t_end, "y_end": y_end, "code": code, "which": which,
                "steps": sol.stats["num_accepted_steps"]}

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, None, None)))


def check_paths(paths: Any, seed: Any) -> tuple[int | None, int]:
    """``paths`` (None or an int >= 1) and ``seed`` (an int >= 0): TypeError for another type,
    ValueError for a value out of range."""
    if paths is not None and (isinstance(paths, bool) or not isinstance(paths, (int, np.integer))):
        raise TypeError(f"paths must be None or a positive int (Brownian paths per start); got {type(paths).__name__}")
    if paths is not None and paths < 1:
        raise ValueError(f"paths must be None or a positive int (Brownian paths per start); got {paths!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative int; got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    return (None if paths is None else int(paths)), int(seed)


def path_keys(seed: int, paths: int):
    """The Brownian keys of paths 0..paths-1: fold_in(PRNGKey(seed), i)."""
    import jax

    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(paths, dtype=np.uint32))


def integrate_sde(num: NumericSystem, Y0: np.ndarray, P: dict, ts: np.ndarray, span: tuple[float, float],
                  events: tuple[Event, ...], solver: Any, dt: float | None, paths: int | None, seed: int,
                  chunk: int = 4096) -> tuple[dict, dict, int]:
    """Run every start of the flat batch (Y0, P) on ``paths`` Brownian paths (one when None):
    the raw results, flattened path-major (path, start), with statuses; the info; the number
    of paths."""
    import jax.numpy as jnp

    t0, t1 = span
    dt = (t1 - t0) / 1000 if dt is None else dt
    n_paths = 1 if paths is None else paths
    max_steps = int(math.ceil((t1 - t0) / dt * (1 + 1e-9))) + 1
    core = sde_core(num, solver, events, max_steps)
    B = len(Y0)
    keys = np.asarray(path_keys(seed, n_paths))
    total = n_paths * B
    idx_path = np.repeat(np.arange(n_paths), B)
    idx_start = np.tile(np.arange(B), n_paths)
    Yall = Y0[idx_start]
    Pall = {k: np.asarray(v)[idx_start] for k, v in P.items()}
    Kall = keys[idx_path]
    ts_j, span_j, dt_j = jnp.asarray(ts), jnp.asarray([t0, t1], dtype=jnp.float64), jnp.asarray(dt, dtype=jnp.float64)
    parts = []
    for lo in range(0, total, chunk):
        hi = min(total, lo + chunk)
        # rows padded to a power of two (>= 8) so that varied batch sizes compile few kernels
        rows = np.arange(lo, hi)
        size = max(8, 1 << int(np.ceil(np.log2(len(rows)))))
        rows = np.concatenate([rows, np.full(size - len(rows), rows[-1])])
        out = core(jnp.asarray(Yall[rows]), {k: jnp.asarray(v[rows]) for k, v in Pall.items()},
                   jnp.asarray(Kall[rows]), ts_j, span_j, dt_j)
        parts.append({k: np.asarray(v)[: hi - lo] for k, v in out.items()})
    raw = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    raw["messages"] = np.full(total, "", dtype=object)
    solver_label = solver if isinstance(solver, str) else type(solver).__name__
    out = run_statuses(raw, num, Yall, Pall, ts, span, events, solver_label, max_steps, "jax", retried=False)
    info = {"solver": solver_label, "dt": dt, "seed": seed, "paths": n_paths,
            "method": SDE_SOLVERS.meanings.get(solver_label, "a diffrax Ito solver"),
            "events": tuple(e.name for e in events), "noise": num.system.diffusion.description}
    return out, info, n_paths
