"""EigenmodeSystem (one mode, symbolic) and ModeSystem (K coupled modes, numerical)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable

import sympy as sp

from . import symbols as sy
from ._codegen import BACKENDS, lambdified, param_values, state_array, xp
from ._spec import ModelSpec

__all__ = ["EigenmodeSystem", "ModeSystem", "display_form"]

_LATEX_NAMES = {
    sy.tau: r"\tau",
    sy.sigma2: r"\sigma^2",
    sy.eta: r"\eta",
    sy.alpha_p: r"\alpha_p",
    sy.beta: r"\beta",
    sy.N_psi: r"N_\psi",
    sy.N_phi: r"N_\phi",
}

RhsFunction = Callable[[Any, Any, dict], Any]

_c = sp.Symbol("c")


def display_form(expr: sp.Expr) -> sp.Expr:
    """``expr`` for reading: c = 1 + sigma2 written as c, the drift factored, decay terms
    (those with eta or beta) kept apart. Equal to ``expr`` after c -> 1 + sigma2."""
    e = sp.expand(sp.sympify(expr).subs(sy.sigma2, _c - 1))
    terms = sp.Add.make_args(e)
    decay = [t for t in terms if t.has(sy.eta) or t.has(sy.beta)]
    drift = sp.Add(*[t for t in terms if t not in decay])
    return sp.factor(drift) + sp.collect(sp.Add(*decay), [sy.beta, sy.eta])


@dataclass(frozen=True)
class EigenmodeSystem:
    """The ODEs of one eigenmode, d states/dt = rhs(states; params), as SymPy objects.

    Attributes:
        spec:     the ModelSpec this system was derived from.
        states:   state Symbols (p, s[, tau]); reduced systems have (p[, tau]).
        params:   parameter Symbols in canonical order (sigma2, eta, alpha_p[, beta]
                  [, N_psi, N_phi, T]).
        rhs:      ImmutableMatrix of the time derivatives of ``states``.
        steps:    intermediate results of the derivation (see ``derivations.derive``).
        closures: (param, per-mode summand, power): param = (sum_k summand_k)**power when
                  the K-mode system is formed (T always; N_psi, N_phi for self-consistent norms).
        manifold: for reduced systems the invariant manifold they live on (Eq(s, p**2/alpha_p)).
        laws:     conservation laws checked on this system (``derivations.ConservationLaw``).
        description: what the system is and which invariants of the true model it keeps.
    """

    spec: ModelSpec
    states: tuple[sp.Symbol, ...]
    params: tuple[sp.Symbol, ...]
    rhs: sp.ImmutableMatrix
    steps: dict = field(default_factory=dict, compare=False, repr=False)
    closures: tuple = ()
    manifold: sp.Eq | None = None
    laws: tuple = field(default=(), compare=False, repr=False)
    description: str = field(default="", compare=False, repr=False)

    # -- names and symbols ---------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(map(str, self.states))

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(map(str, self.params))

    @property
    def symbols(self) -> dict[str, sp.Symbol]:
        """Every state and parameter Symbol keyed by name."""
        return {str(v): v for v in self.states + self.params}

    @property
    def equations(self) -> dict[str, sp.Expr]:
        """``{state name: d state/dt}``."""
        return dict(zip(self.state_names, self.rhs))

    @property
    def jacobian(self) -> sp.ImmutableMatrix:
        """d rhs / d states, symbolic."""
        return sp.ImmutableMatrix(self.rhs.jacobian(self.states))

    @property
    def reduced(self) -> bool:
        return self.manifold is not None

    # -- reduction -----------------------------------------------------------------------
    def reduce(self) -> EigenmodeSystem:
        """The system on the invariant manifold s = p**2/alpha_p.

        d/dt (s - p^2/alpha_p) = -2 eta (s - p^2/alpha_p) for every variant (see ``laws``), so
        the manifold attracts at rate 2 eta and is invariant for eta = 0 too. On it dp/dt is a
        polynomial in p whose degree is ``order``: 3 for the Euclidean loss (Tian's cubic),
        6 for the cosine loss with exact moments, 3 with leading moments.
        """
        if self.reduced:
            return self
        return _reduce(self)

    @property
    def order(self) -> int | None:
        """Degree in p of the polynomial dp/dt on the invariant manifold s = p**2/alpha_p.

        For a full (unreduced) system this is the order of its reduction. None if dp/dt is
        not polynomial in p.
        """
        if not self.reduced:
            return self.reduce().order
        try:
            return sp.Poly(self.rhs[0], sy.p).degree()
        except sp.PolynomialError:
            return None

    # -- display -------------------------------------------------------------------------
    def latex(self) -> str:
        """The equations as a LaTeX ``aligned`` block."""
        lines = [
            rf"\dot{{{sp.latex(v, symbol_names=_LATEX_NAMES)}}} &= "
            + sp.latex(display_form(r), symbol_names=_LATEX_NAMES)
            for v, r in zip(self.states, self.rhs)
        ]
        lines.append(r"c &= 1 + \sigma^2")
        return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$${self.latex()}$$"

    def __str__(self) -> str:
        head = f"EigenmodeSystem {self.spec.label}"
        head += f", reduced to {self.manifold.lhs} = {self.manifold.rhs}" if self.reduced else ", one mode"
        lines = [
            head,
            f"  states: {', '.join(self.state_names)}",
            f"  params: {', '.join(self.param_names)}   (c = 1 + sigma2)",
        ]
        lines += [f"  d{v}/dt = {sp.sstr(display_form(r))}" for v, r in self.equations.items()]
        order = self.order
        if order is not None:
            lines.append(f"  order on s = p**2/alpha_p: {order}")
        for param, summand, power in self.closures:
            total = f"sum_k {sp.sstr(display_form(summand))}"
            lines.append(f"  closure: {param} = " + (total if power == 1 else f"sqrt({total})"))
        if self.description:
            lines += ["  " + ln for ln in self.description.splitlines()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"EigenmodeSystem({self.spec.label}, states=({', '.join(self.state_names)}), "
            f"params=({', '.join(self.param_names)}){', reduced' if self.reduced else ''})"
        )

    # -- numerics ------------------------------------------------------------------------
    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params) -> dy/dt`` in JAX (float64), jit- and vmap-compatible.

        ``y`` has shape (..., n_states); ``params`` is a dict keyed by parameter name whose
        values are scalars or arrays broadcasting against y's batch shape. Raises ValueError
        for missing/unknown parameter names, a wrong last axis of y, or non-finite values
        (values are checked when concrete, i.e. outside jit). ``checked=False`` skips the
        checks, for inner loops whose inputs were validated once.
        """
        return _rhs_function(self, "jax", checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        """Same as ``to_jax`` with NumPy arrays (for scipy.integrate.solve_ivp and friends)."""
        return _rhs_function(self, "numpy", checked)

    def check_params(self, params: dict) -> dict[str, float]:
        """Validate a params dict (names and finiteness) and return it keyed by name."""
        values = param_values(params, self.param_names, "numpy")
        return dict(zip(self.param_names, values))

    def modes(self, K: int) -> ModeSystem:
        """The K-mode system: K copies of this mode coupled through the spectral closures.

        For the cosine loss T = sum_k tau_k p_k s_k always; with self-consistent norms also
        N_psi^2 = c sum_k p_k^2 s_k and N_phi^2 = c sum_k tau_k^2 s_k (computed by the
        Gaussian-moment engine as E||a||^2 and E||b||^2). Euclidean modes are uncoupled.
        """
        if isinstance(K, bool) or not isinstance(K, int):
            raise TypeError(f"K must be a positive int (number of modes); got {type(K).__name__}")
        if K < 1:
            raise ValueError(f"K must be a positive int (number of modes); got {K}")
        if self.reduced:
            raise ValueError("modes(K) needs the full system; call it before reduce()")
        return ModeSystem(self, K)


def _reduce(system: EigenmodeSystem) -> EigenmodeSystem:
    on = {sy.s: sy.p**2 / sy.alpha_p}
    keep = [i for i, v in enumerate(system.states) if v != sy.s]
    rhs = [sp.expand(sp.cancel(system.rhs[i].subs(on))) for i in keep]
    return replace(
        system,
        states=tuple(system.states[i] for i in keep),
        rhs=sp.ImmutableMatrix(rhs),
        steps={"full_system": system.equations, "manifold": sp.Eq(sy.s, on[sy.s])},
        manifold=sp.Eq(sy.s, on[sy.s]),
        closures=(),
        laws=(),
        description=f"{system.spec.label} on the invariant manifold s = p**2/alpha_p.",
    )


def _rhs_function(system: EigenmodeSystem, backend: str, checked: bool = True) -> RhsFunction:
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not allowed; choose one of {BACKENDS}")
    raw = lambdified(system.states + system.params, tuple(system.rhs), backend)
    names, pnames, n = system.state_names, system.param_names, len(system.states)
    mod = xp(backend)

    def f(t, y, params):
        if checked:
            y = state_array(y, n, names, backend)
            vals = param_values(params, pnames, backend)
        else:
            vals = [params[k] for k in pnames]
        out = raw(*[y[..., i] for i in range(n)], *vals)
        return mod.stack(mod.broadcast_arrays(*[mod.asarray(o, dtype=mod.float64) for o in out]), axis=-1)

    f.__doc__ = f"d({', '.join(names)})/dt of {system.spec.label}; params: {', '.join(pnames)}."
    return f


@dataclass(frozen=True)
class ModeSystem:
    """K coupled eigenmodes of one derived system, for numerics (K up to 10^4 and beyond).

    The state is flat, state-major: y = [p_1..p_K, s_1..s_K(, tau_1..tau_K)], shape
    (..., n_states * K); ``pack``/``unpack`` convert. Parameters closed by the spectrum
    (``closed``) are computed from y and are not passed in ``params``.
    """

    per_mode: EigenmodeSystem
    K: int

    @property
    def spec(self) -> ModelSpec:
        return self.per_mode.spec

    @property
    def closed(self) -> tuple[str, ...]:
        return tuple(str(c[0]) for c in self.per_mode.closures)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.per_mode.param_names if n not in self.closed)

    @property
    def n_states(self) -> int:
        return len(self.per_mode.states) * self.K

    def pack(self, **spectra) -> Any:
        """Flat state from per-state spectra, e.g. ``pack(p=p_k, s=s_k)``; arrays (..., K)."""
        import numpy as np

        names = self.per_mode.state_names
        if set(spectra) != set(names):
            raise ValueError(f"pack needs exactly the states {names}; got {sorted(spectra)}")
        arrs = [np.asarray(spectra[n], dtype=np.float64) for n in names]
        for n, a in zip(names, arrs):
            if a.shape[-1:] != (self.K,):
                raise ValueError(f"{n} must have shape (..., {self.K}); got {a.shape}")
        return np.concatenate(np.broadcast_arrays(*arrs), axis=-1)

    def unpack(self, y: Any) -> dict[str, Any]:
        """Per-state spectra ``{name: array (..., K)}`` from a flat state."""
        names = self.per_mode.state_names
        y = state_array(y, self.n_states, [f"{n}_1..{n}_K" for n in names], "numpy")
        return {n: y[..., i * self.K : (i + 1) * self.K] for i, n in enumerate(names)}

    @property
    def state_names(self) -> tuple[str, ...]:
        """Flat state names in layout order: p_1..p_K, s_1..s_K(, tau_1..tau_K)."""
        return tuple(f"{n}_{k}" for n in self.per_mode.state_names for k in range(1, self.K + 1))

    def to_jax(self, checked: bool = True) -> RhsFunction:
        """``f(t, y, params)`` on flat states (..., n_states*K); jit/vmap compatible.

        Same checks as ``EigenmodeSystem.to_jax``; ``checked=False`` skips them."""
        return _mode_function(self.per_mode, self.K, "jax", checked)

    def to_numpy(self, checked: bool = True) -> RhsFunction:
        return _mode_function(self.per_mode, self.K, "numpy", checked)

    def to_sympy(self) -> tuple[tuple[sp.Symbol, ...], sp.ImmutableMatrix]:
        """(states, rhs) as explicit SymPy objects; for small K only (K <= 64)."""
        if self.K > 64:
            raise ValueError(f"to_sympy is for K <= 64 modes; got K={self.K}")
        return _mode_sympy(self.per_mode, self.K)

    def __repr__(self) -> str:
        return f"ModeSystem({self.spec.label}, K={self.K}, closed={self.closed}, params={self.param_names})"


@lru_cache(maxsize=64)
def _mode_sympy(per_mode: EigenmodeSystem, K: int):
    names = per_mode.state_names
    table = {v: sp.symbols(f"{n}_1:{K + 1}") for v, n in zip(per_mode.states, names)}
    states = tuple(x for v in per_mode.states for x in table[v])
    closure = {
        param: sp.Add(*[summand.subs({v: table[v][k] for v in per_mode.states}) for k in range(K)]) ** power
        for param, summand, power in per_mode.closures
    }
    rows = []
    for r in per_mode.rhs:
        for k in range(K):
            rows.append(r.subs({v: table[v][k] for v in per_mode.states}).subs(closure))
    return states, sp.ImmutableMatrix(rows)


def _mode_function(per_mode: EigenmodeSystem, K: int, backend: str, checked: bool = True) -> RhsFunction:
    raw = lambdified(per_mode.states + per_mode.params, tuple(per_mode.rhs), backend)
    closed = {str(c[0]) for c in per_mode.closures}
    free_syms = tuple(v for v in per_mode.params if str(v) not in closed)
    free = [str(v) for v in free_syms]
    closures = [
        (str(param), lambdified(per_mode.states + free_syms, (summand,), backend), power)
        for param, summand, power in per_mode.closures
    ]
    ns = len(per_mode.states)
    mod = xp(backend)
    flat_names = [f"{n}_1..{n}_K" for n in per_mode.state_names]

    def f(t, y, params):
        if checked:
            y = state_array(y, ns * K, flat_names, backend)
            given = dict(zip(free, param_values(params, free, backend)))
        else:
            given = {k: params[k] for k in free}
        spectra = [y[..., i * K : (i + 1) * K] for i in range(ns)]
        # per-trajectory parameters broadcast over the mode axis
        values = {n: mod.asarray(v)[..., None] for n, v in given.items()}
        free_values = [values[n] for n in free]
        for name, g, power in closures:
            summand = g(*spectra, *free_values)[0] * mod.ones_like(spectra[0])
            total = mod.sum(summand, axis=-1, keepdims=True)
            values[name] = total if power == 1 else total ** float(power)
        out = raw(*spectra, *[values[n] for n in per_mode.param_names])
        out = mod.broadcast_arrays(*[mod.asarray(o, dtype=mod.float64) for o in out])
        return mod.concatenate(out, axis=-1)

    f.__doc__ = f"{K}-mode flow of {per_mode.spec.label}; params: {', '.join(free)}."
    return f
