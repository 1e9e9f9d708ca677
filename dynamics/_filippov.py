"""Piecewise-smooth (Filippov) flows: integration piece by piece with sliding motion.

A system that declares ``switching`` (``derivations.Switching``) has the right-hand side
f(y; h) = f0 + sum_k h_k g_k (multi-affine in the weights h_k), with h_k = H(sigma_k(y)) off
the switching surfaces sigma_k = 0 and h_k in [0, 1] on them (the Filippov convexification).

``integrate_piecewise`` runs each trajectory as a sequence of segments (``Segment``), each one
``integrate`` call on a *mode*: a smooth piece (the weights fixed at 0 or 1, passed as
parameters, so one compiled kernel serves every piece) or sliding along the surfaces of a set
S (the weights alpha_S of Utkin's equivalent control, grad(sigma_S) . f(y; alpha) = 0; for one
surface the Filippov convex combination). Each mode watches the surfaces it may reach (an event
per surface) and, while sliding, where some alpha_k leaves [0, 1] (an exit event). At a
surface the normal components a = n . f(h_k = 0) and b = n . f(h_k = 1) decide: a, b of one
sign, the run crosses onto the other piece; a > 0 > b, both fields point at the surface and it
slides (attracting sliding); a < 0 < b, both point away (repelling sliding, the Filippov
solution is not unique): the run ends there with status "nonunique".

What is compiled is cached per system and mode (the set S), never per segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from derivations import DynamicalSystem

from ._events import Event
from ._value import Value

__all__ = ["SWITCH_OFFSET", "MAX_SEGMENTS", "Segment", "integrate_piecewise", "Mode", "mode_of"]

SWITCH_OFFSET = 1e-12
"""How far past a switching surface (in sigma) or past the ends of [0, 1] (in alpha) a segment's
event fires: a start on the surface is not an event, and the next segment starts just inside
its piece. The arrival time is late by about SWITCH_OFFSET divided by the speed of sigma (abs(d sigma / dt))."""

MAX_SEGMENTS = 1000
"""Segments per trajectory (crossings, sliding entries and exits) before a run ends as
"max_steps" (chattering between pieces, Zeno behaviour)."""


@dataclass(frozen=True, eq=False)
class Segment(Value):
    """One stretch of a piecewise-smooth trajectory on one mode.

    Attributes
    ----------
    t_start, t_end : float
        Where the segment starts and ends.
    side : tuple of int
        Per switching function sigma_k: +1 (sigma_k > 0, H = 1), -1 (sigma_k < 0, H = 0) or 0
        (on the surface, sliding along it).
    sliding : tuple of int
        The indices k of the surfaces it slides along (empty on a smooth piece).
    """

    t_start: float
    t_end: float
    side: tuple[int, ...]
    sliding: tuple[int, ...]

    def __repr__(self) -> str:
        what = f"sliding on {list(self.sliding)}" if self.sliding else "piece"
        return f"Segment([{self.t_start:.6g}, {self.t_end:.6g}], side={self.side}, {what})"


class Mode(DynamicalSystem):
    """The flow of a piecewise-smooth system on one mode: a smooth piece (``sliding`` empty;
    the weights are parameters) or sliding along the surfaces ``sliding`` (their weights the
    equivalent control alpha(y)). Parameters: the convexified system's, then per switching
    function the offsets ``lower`` and ``upper`` of its events (see ``SWITCH_OFFSET``)."""

    __slots__ = ("base", "sliding", "sw", "convex", "_names", "offsets", "events", "_fj", "_fn", "_alpha", "_normals")

    def __init__(self, base: DynamicalSystem, sliding: tuple[int, ...]):
        self.base, self.sliding = base, tuple(sliding)
        self.sw = base.switching
        self.convex = self.sw.convex
        taken = set(self.convex.param_names) | set(base.state_names)
        names = []
        for k in range(self.sw.count):
            for stem in ("lower", "upper"):
                name = f"{stem}_{k + 1}"
                while name in taken:
                    name += "_"
                taken.add(name)
                names.append(name)
        self.offsets = tuple((names[2 * k], names[2 * k + 1]) for k in range(self.sw.count))
        self._names = tuple(self.convex.param_names) + tuple(names)
        self._fj = self._fn = None
        self._alpha = self._normals = None
        self.events = tuple(
            _Switch(self, k, kind) for k in range(self.sw.count)
            for kind in (("alpha_low", "alpha_high") if k in self.sliding else ("surface",))
        )

    # -- the interface ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        what = f"sliding on surfaces {list(self.sliding)}" if self.sliding else "a smooth piece"
        return f"{self.base.name or 'system'} ({what})"

    @property
    def state_layout(self):
        return self.base.state_layout

    @property
    def state_domain(self):
        return self.base.state_domain

    @property
    def param_names(self):
        return self._names

    @property
    def param_domain(self):
        return self.convex.param_domain

    @property
    def param_shapes(self):
        return {**{n: () for n in self._names}, **self.convex.param_shapes}

    @property
    def collapse(self):
        return self.base.collapse

    @property
    def partial_collapse(self):
        return self.base.partial_collapse

    @property
    def scaling(self):
        return self.base.scaling

    def __eq__(self, other) -> bool:
        return type(other) is Mode and (other.base, other.sliding) == (self.base, self.sliding)

    def __hash__(self) -> int:
        return hash((Mode, self.base, self.sliding))

    def to_jax(self, checked: bool = True):
        if self._fj is None:
            self._fj = self.convex.to_jax(checked=False) if not self.sliding else self._sliding_jax()
        return self._fj

    def to_numpy(self, checked: bool = True):
        if self._fn is None:
            if not self.sliding:
                self._fn = self.convex.to_numpy(checked=False)
            else:
                import jax

                f = jax.jit(self.to_jax())
                self._fn = lambda t, y, p: np.asarray(f(t, y, {k: p[k] for k in self._names}))
        return self._fn

    # -- the sliding field -------------------------------------------------------------------
    def point_field(self, t, y, p, S: tuple[int, ...] | None = None):
        """(f, alpha) at one state y (n,) with parameters p (scalars): the field with the weights
        of the surfaces S (default ``sliding``) set to their equivalent control alpha."""
        import jax
        import jax.numpy as jnp

        S = self.sliding if S is None else S
        f = self.convex.to_jax(checked=False)
        weights = self.sw.weights
        h0 = jnp.stack([jnp.asarray(p[w], dtype=jnp.float64) for w in weights])
        if not S:
            return f(t, y, p), jnp.zeros(0)
        idx = jnp.asarray(S)

        def field(alpha):
            h = h0.at[idx].set(alpha)
            return f(t, y, {**p, **{w: h[k] for k, w in enumerate(weights)}})

        N = jax.jacfwd(lambda z: self.sw.functions(z, p))(y)[idx]

        def G(alpha):
            return N @ field(alpha)

        def newton(_, alpha):
            return alpha - jnp.linalg.solve(jax.jacfwd(G)(alpha), G(alpha))

        alpha = jnp.full(len(S), 0.5)
        if len(S) == 1:  # G is affine in one weight: one step is exact
            alpha = newton(0, alpha)
        else:  # a loop, not 8 unrolled steps: one traced step keeps the compiled kernels small
            alpha = jax.lax.fori_loop(0, 8, newton, alpha)
        return field(alpha), alpha

    def _sliding_jax(self):
        import jax.numpy as jnp

        names = self._names
        shapes = self.param_shapes
        signature = "(),(n)," + ",".join("(" + ",".join(f"d{i}_{j}" for j in range(len(shapes[k]))) + ")"
                                         for i, k in enumerate(names)) + "->(n)"

        def one(t, y, *vals):
            return self.point_field(t, y, dict(zip(names, vals)))[0]

        vec = jnp.vectorize(one, signature=signature)

        def f(t, y, params):
            return vec(jnp.asarray(t, dtype=jnp.float64), y, *[jnp.asarray(params[k], dtype=jnp.float64) for k in names])

        return f

    def alpha(self, y: np.ndarray, p: dict) -> np.ndarray:
        """The equivalent control alpha_S at the state y (floats)."""
        if self._alpha is None:
            import jax

            self._alpha = jax.jit(lambda y, p: self.point_field(0.0, y, p)[1])
        return np.asarray(self._alpha(np.asarray(y, dtype=float), _scalars(p, self._names)))

    def normals(self, y: np.ndarray, p: dict, k: int) -> tuple[float, float]:
        """(a, b): grad(sigma_k) . f at y with h_k = 0 and with h_k = 1, the other weights as in
        p and those of ``sliding`` at their equivalent control."""
        if self._normals is None:
            import jax

            def both(y, p, k):
                n = jax.grad(lambda z: self.sw.functions(z, p)[k])(y)
                out = []
                for h in (0.0, 1.0):
                    q = {**p, self.sw.weights[k]: h}
                    out.append(n @ self.point_field(0.0, y, q)[0])
                return out[0], out[1]

            self._normals = jax.jit(both, static_argnums=2)
        a, b = self._normals(np.asarray(y, dtype=float), _scalars(p, self._names), int(k))
        return float(a), float(b)


def _scalars(p: dict, names) -> dict:
    return {k: np.asarray(p[k], dtype=float) for k in names}


@lru_cache(maxsize=256)
def mode_of(system: DynamicalSystem, sliding: tuple[int, ...] = ()) -> Mode:
    """The ``Mode`` of ``system`` sliding on the surfaces ``sliding`` (empty: a smooth piece),
    built once per system and set."""
    return Mode(system, tuple(sorted(sliding)))


@dataclass(frozen=True, eq=False)
class _Switch(Event):
    """A surface event of a mode: sigma_k reaches -offset on the side (2 h_k - 1) it started on
    ("surface"), or the equivalent control alpha_k leaves [0, 1] ("alpha_low", "alpha_high")."""

    mode: Mode = None
    k: int = 0
    kind: str = "surface"

    @property
    def name(self) -> str:
        return f"switch:{self.kind}:{self.k}"

    def margin(self, t, y, params, ctx):
        if ctx.xp is np:  # the SciPy backend: one compiled call instead of JAX's op-by-op dispatch
            return float(_compiled_margin(self)(float(t), np.asarray(y, dtype=float), _scalars(params, self.mode.param_names)))
        return self._margin(t, y, params)

    def _margin(self, t, y, params):
        import jax.numpy as jnp

        low, high = self.mode.offsets[self.k]
        if self.kind == "surface":
            side = 2.0 * params[self.mode.sw.weights[self.k]] - 1.0
            return side * self.mode.sw.functions(y, params)[self.k] + params[low]
        alpha = self.mode.point_field(t, jnp.asarray(y), params)[1][self.mode.sliding.index(self.k)]
        return alpha + params[low] if self.kind == "alpha_low" else 1.0 - alpha + params[high]

    def __hash__(self) -> int:
        return hash((_Switch, self.mode, self.k, self.kind))

    def __eq__(self, other) -> bool:
        return isinstance(other, _Switch) and (self.mode, self.k, self.kind) == (other.mode, other.k, other.kind)


@lru_cache(maxsize=1024)
def _compiled_margin(event: _Switch):
    import jax

    return jax.jit(event._margin)


# -- the host loop ----------------------------------------------------------------------------------------


def _project(system, y: np.ndarray, p: dict, S: tuple[int, ...]) -> np.ndarray:
    """y moved onto the surfaces S (Gauss-Newton on sigma_S, a few steps)."""
    import jax

    if not S:
        return y
    fn = system.switching.functions
    idx = np.asarray(S)
    for _ in range(3):
        s = np.asarray(fn(y, p))[idx]
        N = np.asarray(jax.jacfwd(lambda z: fn(z, p))(y))[idx]
        step = N.T @ np.linalg.solve(N @ N.T, s)
        if not np.all(np.isfinite(step)):
            break
        y = y - step
    return y


def _decide(mode: Mode, y, p, k: int) -> str:
    """"cross+", "cross-", "slide" or "nonunique" at surface k, from the normal components."""
    a, b = mode.normals(y, p, k)
    if a >= 0 >= b:
        return "slide"
    if a <= 0 <= b:
        return "nonunique"
    return "cross+" if a > 0 else "cross-"


def integrate_piecewise(system: DynamicalSystem, Y0: np.ndarray, P: dict, ts: np.ndarray, span, *, integrate_mode,
                        events) -> dict:
    """Integrate each trajectory of the batch (Y0, P) piece by piece (see the module docstring).

    Parameters
    ----------
    system : DynamicalSystem
        A flow that declares ``switching``.
    Y0, P : numpy.ndarray, dict
        Initial states (B, n) and parameters {name: (B, ...)}.
    ts, span : numpy.ndarray, (float, float)
        Saved times and (t0, t1).
    integrate_mode : callable
        ``integrate_mode(mode, y0, t_span, params, t_eval, events)`` -> Solution of one run.
    events : tuple of Event
        The caller's events (applied on every mode).

    Returns
    -------
    dict
        Per trajectory: ys, valid, status, event, event_t, t_end, y_end, steps, messages,
        retried, segments (a tuple of Segment).
    """
    B, n = Y0.shape
    out = {"ys": np.zeros((B, len(ts), n)), "valid": np.zeros((B, len(ts)), dtype=bool),
           "status": np.full(B, "finished", dtype=object), "event": np.full(B, "", dtype=object),
           "event_t": np.full(B, np.nan), "t_end": np.zeros(B), "y_end": np.zeros((B, n)),
           "steps": np.zeros(B, dtype=np.int64), "messages": np.full(B, "", dtype=object),
           "retried": np.zeros(B, dtype=bool), "segments": np.empty(B, dtype=object)}
    for b in range(B):
        one = _trajectory(system, Y0[b], {k: v[b] for k, v in P.items()}, ts, span, integrate_mode, events)
        for key, value in one.items():
            out[key][b] = value
    return out


def _trajectory(system, y0, p, ts, span, integrate_mode, events) -> dict:
    sw = system.switching
    m = sw.count
    t0, t1 = span
    y = np.asarray(y0, dtype=float).copy()
    ys = np.zeros((len(ts), len(y)))
    valid = np.zeros(len(ts), dtype=bool)
    side = [0] * m
    S: list[int] = []
    segments: list[Segment] = []
    steps, retried = 0, False
    sig = np.asarray(sw.functions(y, p), dtype=float)

    def weights_for(side, S):
        return {w: (1.0 if side[k] > 0 else 0.0) for k, w in enumerate(sw.weights)}

    def finish(status, t, y, event="", event_t=np.nan, message=""):
        ys[ts > t] = y
        return {"ys": ys, "valid": valid, "status": status, "event": event, "event_t": event_t, "t_end": t,
                "y_end": y, "steps": steps, "messages": message, "retried": retried, "segments": tuple(segments)}

    if ts[0] == t0:
        ys[0], valid[0] = y, True
    for k in range(m):
        side[k] = 1 if sig[k] > 0 else -1 if sig[k] < 0 else 0
    for k in range(m):
        if side[k] == 0:
            side[k] = 1
            mode = mode_of(system, tuple(S))
            verdict = _decide(mode, y, {**p, **weights_for(side, S), **_zero_offsets(mode)}, k)
            if verdict == "nonunique":
                return _nonunique(finish, t0, y, k, sw, ts, valid, ys)
            if verdict == "slide":
                S.append(k)
                side[k] = 0
            else:
                side[k] = 1 if verdict == "cross+" else -1
    t = t0
    while True:
        if len(segments) >= MAX_SEGMENTS:
            return finish("max_steps", t, y, message=(
                f"{MAX_SEGMENTS} segments (switches between pieces and sliding) before t1: the run chatters between "
                f"pieces at t = {t:.10g}"))
        mode = mode_of(system, tuple(S))
        S = list(mode.sliding)
        y = _project(system, y, p, mode.sliding)
        q = {**p, **weights_for(side, S)}
        sig = np.asarray(sw.functions(y, q), dtype=float)
        alpha = mode.alpha(y, {**q, **_zero_offsets(mode)}) if S else np.zeros(0)
        for k in range(m):
            low, high = mode.offsets[k]
            if k in S:
                a = float(alpha[S.index(k)])
                q[low], q[high] = SWITCH_OFFSET + max(0.0, -a), SWITCH_OFFSET + max(0.0, a - 1.0)
            else:
                q[low], q[high] = SWITCH_OFFSET + max(0.0, -side[k] * sig[k]), SWITCH_OFFSET
        later = ts[ts > t]  # a saved time at t0 is the start itself
        t_eval = _padded(later, t, t1, len(ts))
        sol = integrate_mode(mode, y, (t, t1), q, t_eval, events + mode.events)
        steps += int(sol.n_steps)
        retried = retried or bool(sol.retried)
        keep = sol.valid & np.isin(sol.t, later)
        where = np.searchsorted(ts, sol.t[keep])
        ys[where], valid[where] = sol.y[keep], True
        t_e, y_e = float(sol.t_end), np.asarray(sol.y_end, dtype=float)
        segments.append(Segment(float(t), t_e, tuple(0 if k in S else side[k] for k in range(m)), tuple(S)))
        name = str(sol.event)
        if not name.startswith("switch:"):
            return finish(str(sol.status), t_e, y_e, name, float(sol.event_t), str(sol.messages))
        _, kind, k = name.split(":")
        k = int(k)
        t, y = t_e, y_e
        if t >= t1:
            return finish("finished", t, y)
        if kind == "surface":
            verdict = _decide(mode, y, {**q, **_zero_offsets(mode)}, k)
            if verdict == "nonunique":
                return _nonunique(finish, t, y, k, sw, ts, valid, ys)
            if verdict == "slide":
                S = sorted(S + [k])
                side[k] = 0
            else:
                side[k] = 1 if verdict == "cross+" else -1
        else:
            S = [j for j in S if j != k]
            side[k] = -1 if kind == "alpha_low" else 1


def _padded(later: np.ndarray, t: float, t1: float, size: int) -> np.ndarray:
    """The saved times ``later`` of a segment starting at t, preceded by evenly spaced times in
    [t, later[0]) up to ``size`` in all: every segment saves as many times as the run (one
    compiled bucket), and the extra ones are not read."""
    pad = size - len(later)
    if pad <= 0:
        return later
    end = later[0] if later.size else t1
    if not later.size:
        out = np.linspace(t, t1, max(size, 2))
        return out if np.all(np.diff(out) > 0) else np.array([t1])
    out = np.concatenate([t + (end - t) * np.arange(pad) / pad, later])
    return out if np.all(np.diff(out) > 0) else later


def _zero_offsets(mode: Mode) -> dict:
    return {name: 0.0 for pair in mode.offsets for name in pair}


def _nonunique(finish, t, y, k, sw, ts, valid, ys) -> dict:
    where = sw.expressions[k] if sw.expressions is not None else f"sigma_{k + 1}"
    return finish("nonunique", t, y, f"switch {k}", t, (
        f"repelling sliding at t = {t:.10g} on the switching surface {where} = 0: the fields on both sides point "
        "away from it, so the Filippov solution is not unique there; the run ends at the surface"))
