"""classify(system, x, params): linear stability, and higher order where linear says nothing.

Works on any ``derivations.DynamicalSystem``: exactly where it has explicit equations (``symbolic``), linearly otherwise. The Jacobian is
evaluated at ``HP_DPS`` digits from the symbolic one, with the parameters exact, and its
eigenvalues are computed at that precision; "zero" is decided by the one tolerance policy of
``dynamics._tolerance``: |Re lambda| <= rtol * scale, scale = the norm of the *balanced*
Jacobian (so units that differ by 1e9 between states do not hide a stable node), rtol =
``HP_RTOL`` for points known to high precision (``equilibria``'s exact path, or exact SymPy
coordinates) and ``FLOAT_RTOL`` for points given in float64.

Hyperbolic points are labelled by eigenvalue counts: stable/unstable node (real eigenvalues),
stable/unstable focus (a complex pair), saddle (``index`` = number of unstable directions; all
eigenvalues real), saddle-focus (a saddle whose stable or unstable eigenvalues include a complex
pair, possible from three states on: the Lorenz points C+- at r = 28).

Non-hyperbolic points:
- one zero eigenvalue (rational right-hand sides): the flow on the centre manifold. In one
  dimension the first non-zero Taylor coefficient a_k of f at x*; in higher dimension a series
  centre manifold z = h(u) = sum_k h_k u^k solved order by order from the invariance equation
  h'(u) du/dt = dz/dt, then du/dt = a_k u^k + ... on it (all at high precision; denominators
  are expanded as power series, they do not vanish at an equilibrium). Odd k: stable iff
  a_k < 0. Even k: "semi-stable" (attracting from one side), which is stable when the domain
  boundary leaves only the attracting side. In one dimension a root of multiplicity m has
  k = m exactly: a simple root is never semi-stable.
- one zero eigenvalue of a non-rational right-hand side or of a system served numerically (no
  series is computed): the sign of the flow along the null vector on both sides, at two step
  sizes (``_one_zero_numeric``), with the same labels; undecided where the signs are within
  rounding or change with the step.
- one pair +-i omega and no other eigenvalue on the axis: the first Lyapunov coefficient
  (Kuznetsov, Elements of Applied Bifurcation Theory, eq. (3.20)/(5.39)), reported in the
  Guckenheimer-Holmes normalisation ``lyapunov`` = a with dr/dt = a r^3 + ... for the normal
  form x' = -omega y + a x (x^2 + y^2), y' = omega x + a y (x^2 + y^2)). a < 0: "weak stable
  focus" (stable=True); a > 0: "weak unstable focus" (stable=False). a = 0 (within tolerance)
  decides nothing (x' = -y + x r^4, y' = x + y r^4 has a = 0 and is an unstable focus, r' = r^5):
  the point is a "centre" (stable=None: neutral, not attracting) only where that is proved,
  namely
    * the right-hand side is affine in the states: the linearisation is the flow, a linear centre;
    * two states and a monomial integrating factor mu = |x|^a |y|^b, finite and non-zero at the
      point, with div(mu f) = 0 identically (a = b = 0: a divergence-free, i.e. Hamiltonian,
      field; Lotka-Volterra has mu = 1/(x y)): the flow preserves the area mu dx dy, which no
      focus does;
  otherwise "weak focus or centre (undecided)", stable=None (higher Lyapunov coefficients are
  not computed). The same label, stable=None, where a cannot be computed (no explicit equations).
- anything else (two or more zero eigenvalues, two imaginary pairs, points on a curve of
  equilibria) returns stable=None with the reason.

Families of equilibria: a system that declares a ``symmetry`` (a Lie group G acting on the
states with f(g . y) = D(g) f(y)) has its equilibria in whole orbits G . y*. At y* the orbit's
tangent space T is the span of the declared generators (its dimension r, the family's, is
their numerical rank: singular values above rtol times the largest and above FLOAT_ZERO times
the point's size, at least 1, where rounding of a point at a fixed point of G leaves them),
and J t = 0 for every t in T (f vanishes along the orbit), so r of J's eigenvalues are zero
for a reason that says nothing about stability. The point is classified on the quotient
R^n / T: the induced map Q^T J Q, Q an orthonormal basis of the orthogonal complement of T
(within the tangent space of a declared ``constraint``, which the group must preserve), whose
eigenvalues are J's without those r zeros. A transverse instability is then a finding
(``stable=False``), and a zero eigenvalue left on the quotient is a genuine non-hyperbolic
direction, decided as above (numerically, along the quotient's null vector).
``family_dimension`` is r. Where J does not annihilate T (the point is not an equilibrium,
or the declared group is no symmetry of the flow) ``classify`` warns and classifies the whole
Jacobian, ``family_dimension`` 0, with a note.

Points that are not equilibria: ``classify`` warns (UserWarning naming the residual ``|f(x)|`` and
its scale) and classifies the linearisation anyway; poles raise ValueError.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from numpy.typing import ArrayLike

from derivations import DynamicalSystem, ODESystem, Params
from derivations.codegen import lambdified

from ._display import short_array
from ._prepare import numeric
from ._tolerance import (COARSE_RTOL, EQUILIBRIUM_RTOL, FLOAT_FLOOR, FLOAT_RTOL, FLOAT_ZERO, HP_DPS, HP_FLOOR, HP_RTOL, RTOL, balanced_size,
                         eig_scale, zero_eigenvalues)
from ._value import Value

__all__ = ["classify", "Classification", "jacobian_at"]

KINDS = ("stable node", "unstable node", "stable focus", "unstable focus", "saddle", "saddle-focus",
         "non-hyperbolic stable node", "non-hyperbolic stable node (boundary)", "non-hyperbolic unstable node",
         "semi-stable", "non-hyperbolic saddle", "weak stable focus", "weak unstable focus", "centre",
         "weak focus or centre (undecided)", "non-isolated", "non-hyperbolic (undecided)")
"""Every ``Classification.kind``."""

CENTRE_ORDER = 7
"""Highest order of the centre-manifold and Taylor expansions."""

_MAX_HP_STATES = 8
"""Above this many states eigenvalues are computed in float64 (balanced) with FLOAT_RTOL."""


@dataclass(frozen=True, eq=False)
class Classification(Value):
    """The linear (and, where needed, nonlinear) type of an equilibrium; see ``classify``.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    jacobian : numpy.ndarray
        Numeric Jacobian at the point (float64, read-only); for a system that declares a
        ``constraint``, on the constraint's tangent space (its normal directions left out); for
        a system that declares a ``symmetry``, the induced map on the quotient by the tangent
        space of the point's orbit (Q^T J Q, see the module docstring).
    eigenvalues : numpy.ndarray
        Its eigenvalues (complex128, read-only; computed at high precision and rounded).
    kind : str
        "stable node", "unstable node", "stable focus", "unstable focus", "saddle",
        "saddle-focus", "non-hyperbolic stable node", "non-hyperbolic stable node (boundary)",
        "non-hyperbolic unstable node", "semi-stable", "non-hyperbolic saddle",
        "weak stable focus", "weak unstable focus", "centre", "weak focus or centre (undecided)",
        "non-isolated", "non-hyperbolic (undecided)" (``KINDS``).
    stable : bool or None
        True / False / None (undecided).
    hyperbolic : bool
        No eigenvalue on the imaginary axis.
    index : int
        Number of unstable directions.
    reason : str
        Why, in words.
    centre_flow : tuple of (int, float) or None
        (k, a_k) of du/dt = a_k u^k + ... on a one-dimensional centre manifold, u the
        coordinate along the unit null vector of J (its sign is a convention), or None.
    lyapunov : float or None
        The first Lyapunov coefficient at a pair +-i omega (Guckenheimer-Holmes
        normalisation, see the module docstring), or None.
    precision : str
        "high" (decided at HP_DPS digits with HP_RTOL) or "float" (FLOAT_RTOL).
    family_dimension : int
        The dimension of the family of equilibria the point belongs to by the system's
        ``symmetry`` (its orbit's), whose zero eigenvalues are left out of ``eigenvalues``;
        0 for a point fixed by the group or a system without a symmetry.
    """

    jacobian: np.ndarray
    eigenvalues: np.ndarray
    kind: str
    stable: bool | None
    hyperbolic: bool
    index: int
    reason: str
    centre_flow: tuple[int, float] | None = None
    lyapunov: float | None = None
    precision: str = "float"
    family_dimension: int = 0

    def __repr__(self) -> str:
        family = f", family_dimension={self.family_dimension}" if self.family_dimension else ""
        return (f"Classification({self.kind}, stable={self.stable}, index={self.index}, "
                f"eigenvalues={short_array(self.eigenvalues, 4)}{family}, precision={self.precision!r})")


# -- public entry points -------------------------------------------------------------------------


def jacobian_at(system: DynamicalSystem, x: ArrayLike, params: Params) -> np.ndarray:
    """Numeric Jacobian d f / d y at x, float64: symbolic for an ODESystem, autodiff (JAX)
    for a system without explicit equations. ``params`` are taken as validated (see ``classify``).

    Parameters
    ----------
    system : DynamicalSystem
        The system.
    x : array_like
        The point, one value per state.
    params : mapping str -> float
        Parameter values keyed by name, already validated (``system.check_params``).

    Returns
    -------
    numpy.ndarray
        The n_states x n_states Jacobian, float64.

    Raises
    ------
    KeyError
        A parameter of the system is missing from ``params`` (they are not checked here).
    TypeError
        A value of ``x`` or ``params`` is not a real number.
    """
    sym = system.symbolic
    if sym is not None:
        g = _float_functions(sym)[1]
        with np.errstate(all="ignore"):  # an infinite derivative (s**alpha at s = 0) is the caller's to judge
            vals = g(*np.asarray(x, dtype=float), *[float(params[n]) for n in sym.param_names])
        n = sym.n_states
        return np.array(vals, dtype=float).reshape(n, n)
    import jax.numpy as jnp

    P = {k: jnp.asarray(numeric(params[k])) for k in system.param_names}
    return np.asarray(_compiled_jacobian(system)(jnp.asarray(np.asarray(x, dtype=float)), P))


@lru_cache(maxsize=64)
def _compiled_jacobian(system: DynamicalSystem):
    """jit(jacfwd) of a system served numerically, compiled once per system."""
    import jax

    f = system.to_jax(checked=False)
    return jax.jit(jax.jacfwd(lambda y, P: f(0.0, y, P)))


def classify(
    system: DynamicalSystem,
    x: ArrayLike | Sequence[sp.Expr],
    params: Params,
    *,
    domain: Mapping[str, tuple[float, float]] | None = None,
    on_curve: bool = False,
) -> Classification:
    """Classify the equilibrium ``x`` of ``system`` at ``params`` (see the module docstring).

    Parameters
    ----------
    system : DynamicalSystem (with explicit equations: any, polynomial, rational or not; without: linear analysis only)
    x : the point, one value per state: floats (decided with FLOAT_RTOL) or exact SymPy numbers
        (decided at high precision with HP_RTOL)
    params : dict {name: value}, checked with ``system.check_params`` (SymPy numbers stay exact)
    domain : {state name: (lower, upper)} (None for no bound), intersected with the system's
        ``state_domain``: a semi-stable point on the boundary of this box whose attracting side
        is the only one inside counts as stable, and a point on it where the flow is not
        Lipschitz (s**alpha, alpha < 1, at s = 0) is decided by the one-sided flow
    on_curve : the point lies on a curve of equilibria (as ``equilibria`` reports)

    Returns
    -------
    Classification

    Raises
    ------
    TypeError
        ``system`` is not a DynamicalSystem.
    ValueError
        Bad params (see ``check_params``), x of the wrong length or not finite, or x at a zero
        of a denominator (the right-hand side is undefined there).

    A piecewise-smooth system (one that declares ``switching``) is classified by the piece the
    signs of its switching functions select at x; on one switching surface, as a
    pseudo-equilibrium (the sliding type across the surface and the sliding field's Jacobian
    along it; see ``dynamics._pseudo``).

    Warns
    -----
    UserWarning
        x is not an equilibrium: ``|f(x)|`` > EQUILIBRIUM_RTOL * (term scale of f at x); the
        message names the residual. The linearisation at x is classified anyway.
    """
    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a derivations.DynamicalSystem; got {type(system).__name__}")
    prm = system.check_params(params)
    exact = False
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, sp.Basic) for v in x):
        exact = all(v.is_number and v.is_real and v.is_finite for v in x)
        if not exact:
            raise ValueError(f"x must hold finite real numbers; got {x!r}")
        xs = tuple(x)
    else:
        try:
            arr = np.asarray(x, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"x must be a sequence of {system.n_states} real numbers; got {x!r:.80}") from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"x must be finite; got {arr}")
        xs = tuple(float(v) for v in arr)
    if len(xs) != system.n_states:
        raise ValueError(f"x must have one value per state {list(system.state_names)} ({system.n_states}); got {len(xs)}")
    if domain is not None and not isinstance(domain, Mapping):
        raise TypeError(f"domain must be a dict {{state name: (lower, upper)}}; got {type(domain).__name__}")
    if system.switching is not None:
        from ._pseudo import classify_piecewise

        return classify_piecewise(system, xs, prm, domain=domain, on_curve=on_curve)
    box = {i: (float(lo), float(hi)) for i, (lo, hi) in enumerate(system.state_bounds())
           if np.isfinite(lo) or np.isfinite(hi)}
    for k, lohi in (domain or {}).items():
        if not isinstance(k, str) or k not in system.state_names:
            raise ValueError(f"domain names unknown state {k!r}; states are {list(system.state_names)}")
        try:
            lo, hi = lohi
        except (TypeError, ValueError):
            raise ValueError(f"domain[{k!r}] must be a pair (lower, upper); got {lohi!r}") from None
        i = system.state_names.index(k)
        own = box.get(i, (-np.inf, np.inf))
        box[i] = (max(own[0], -np.inf if lo is None else float(lo)), min(own[1], np.inf if hi is None else float(hi)))
    with mpmath.workdps(HP_DPS):
        point = tuple(to_mp(v) for v in xs)
        _check_equilibrium(system, prm, point)
        return classify_at(system, prm, point, rtol=HP_RTOL if exact else FLOAT_RTOL, bounds=box, on_curve=on_curve)


# -- high-precision evaluation ------------------------------------------------------------------


def to_mp(v: Any):
    """An exact number (float, int, SymPy number, mpf) as an mpmath number at the working
    precision: floats and rationals exactly, other SymPy numbers evaluated to it."""
    if isinstance(v, (mpmath.mpf, mpmath.mpc)):
        return v
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"a number is needed, got {v!r}")
    if isinstance(v, (int, np.integer)):
        return mpmath.mpf(int(v))
    if isinstance(v, (float, np.floating)):
        return mpmath.mpf(float(v))
    v = sp.sympify(v)
    if v.is_Rational:
        return mpmath.mpf(int(v.p)) / int(v.q)
    return mpmath.mpmathify(sp.N(v, mpmath.mp.dps + 10))


@lru_cache(maxsize=128)
def _float_functions(system: ODESystem):
    args = system.states + system.params
    return (lambdified(args, tuple(system.rhs), "numpy"), lambdified(args, tuple(system.jacobian), "numpy"))


@lru_cache(maxsize=128)
def _mp_functions(system: ODESystem):
    """rhs and Jacobian as functions of (*states, *params) in mpmath (also accept _Series)."""
    args = list(system.states + system.params)
    rhs = sp.lambdify(args, list(system.rhs), modules="mpmath")
    jac = sp.lambdify(args, list(system.jacobian), modules="mpmath")
    size = [sp.Add(*[sp.Abs(t) for t in sp.Add.make_args(sp.expand(e))]) for e in system.jacobian]
    jac_size = sp.lambdify(args, size, modules="mpmath")
    return rhs, jac, jac_size


@lru_cache(maxsize=64)
def _mp_derivatives(system: ODESystem):
    """Second and third derivative tensors of the rhs as mpmath functions (flattened)."""
    args = list(system.states + system.params)
    x = system.states
    n = len(x)
    second = [sp.diff(system.rhs[i], x[j], x[k]) for i in range(n) for j in range(n) for k in range(n)]
    third = [sp.diff(system.rhs[i], x[j], x[k], x[m]) for i in range(n) for j in range(n) for k in range(n) for m in range(n)]
    return sp.lambdify(args, second, modules="mpmath"), sp.lambdify(args, third, modules="mpmath")


@lru_cache(maxsize=128)
def _term_rows(system: ODESystem):
    """Per row, the additive terms of the rhs (expanded), as one numpy function."""
    rows = tuple(sp.Add.make_args(sp.expand(r)) for r in system.rhs)
    flat = tuple(t for r in rows for t in r)
    return lambdified(system.states + system.params, flat, "numpy"), tuple(len(r) for r in rows)


def residual_and_scale(system, prm: Mapping[str, Any], x: Any) -> tuple[float, float]:
    """(max_i |f_i(x)|, max_i sum |terms of f_i at x|) in float64: rounding of x alone leaves
    a residual of order eps * scale. Without explicit equations the scale is |J| |x| + 1 (no terms)."""
    xf = np.asarray([float(v) for v in x], dtype=float)
    pv = [numeric(prm[n]) for n in system.param_names]
    sym = system.symbolic
    if sym is None:
        f = system.to_numpy(checked=False)
        r = float(np.max(np.abs(f(0.0, xf, dict(zip(system.param_names, pv))))))
        J = jacobian_at(system, xf, dict(zip(system.param_names, pv)))
        return r, float(np.max(np.abs(J)) * np.max(np.abs(xf), initial=0.0) + 1.0)
    g, sizes = _term_rows(sym)
    with np.errstate(all="ignore"):
        terms = np.array([float(np.real(t)) for t in g(*xf, *pv)], dtype=float)
        rhs = np.array(_float_functions(sym)[0](*xf, *pv), dtype=float).reshape(-1)
    scale, start = 0.0, 0
    for s in sizes:
        scale = max(scale, float(np.sum(np.abs(terms[start:start + s]))))
        start += s
    return float(np.max(np.abs(rhs))), scale


def _check_equilibrium(system, prm, point) -> None:
    sym = system.symbolic
    if sym is not None and sym.is_rational and any(d.free_symbols & set(sym.states) for d in sym.denominators):
        sub = {**dict(zip(sym.states, point)), **{sym.symbols[k]: to_mp(v) for k, v in prm.items()}}
        for d in sym.denominators:
            val = sp.lambdify(list(sub), d, modules="mpmath")(*sub.values())
            if abs(val) <= HP_RTOL * _abs_terms(d, sub):
                raise ValueError(f"x is at a zero of the denominator {d}: the right-hand side is undefined there")
    r, scale = residual_and_scale(system, prm, point)
    if not np.isfinite(r) or r > EQUILIBRIUM_RTOL * max(scale, np.finfo(float).tiny):
        warnings.warn(
            f"x is not an equilibrium: residual max|f(x)| = {r:.3g} exceeds {EQUILIBRIUM_RTOL:g} times the "
            f"term scale {scale:.3g} of f at x; classifying the linearisation at x anyway",
            UserWarning, stacklevel=3,
        )


def _abs_terms(expr: sp.Expr, sub: dict):
    total = mpmath.mpf(0)
    for t in sp.Add.make_args(sp.expand(expr)):
        total += abs(sp.lambdify(list(sub), t, modules="mpmath")(*sub.values()))
    return total


# -- the decision ----------------------------------------------------------------------------------


def classify_at(system, prm: Mapping[str, Any], point: tuple, *, rtol: float, bounds: dict | None = None,
              on_curve: bool = False, multiplicity: int | None = None, note: str = "") -> Classification:
    """Classify at ``point`` (mpmath numbers or floats) with zero tolerance ``rtol``; call
    inside ``mpmath.workdps(HP_DPS)``. ``multiplicity``: exact multiplicity of a one-state
    root (decides "zero eigenvalue" exactly)."""
    bounds = bounds or {}
    try:
        lin = _linearise(system, prm, point, rtol)
    except _NotDifferentiable:
        x = np.array([float(v) for v in point])
        with np.errstate(all="ignore"):
            J = jacobian_at(system, x, {k: numeric(v) for k, v in prm.items()})
        edge = _non_lipschitz_edge(J, x, bounds)
        if edge:
            return _one_sided(system, prm, x, J, edge, note)
        J.setflags(write=False)
        ev = np.full(J.shape[0], np.nan + 0j)
        ev.setflags(write=False)
        return Classification(J, ev, "non-hyperbolic (undecided)", None, False, 0,
                              "the Jacobian is not finite here: the right-hand side is not differentiable at the point "
                              "(e.g. s^alpha with alpha < 1 at s = 0)" + (f"; {note}" if note else ""))
    n = len(lin.ev)
    J, ev, rtol = lin.J, lin.ev, lin.rtol
    precision = "high" if rtol < FLOAT_RTOL else "float"
    if n == 0:
        return Classification(J, ev, "non-isolated", None, False, 0,
                              "the orbit fills the whole state space near the point: every nearby point is an equilibrium"
                              + (f"; {lin.family_note}" if lin.family_note else ""), precision=precision,
                              family_dimension=lin.family_dimension)
    scale = max(eig_scale(J), lin.reference)  # numerically served: zero relative to the whole Jacobian
    floor = (HP_FLOOR if precision == "high" else FLOAT_FLOOR) * balanced_size(J, lin.sizes)
    zero = zero_eigenvalues(ev, scale, rtol, floor)
    if n == 1 and multiplicity is not None:
        zero = np.array([multiplicity >= 2])  # exact: f'(x*) = 0 iff x* is a multiple root
    n_zero = int(zero.sum())
    n_pos = int(np.sum(~zero & (ev.real > 0)))
    n_neg = n - n_zero - n_pos
    oscillating = bool(np.any(np.abs(ev.imag) > max(rtol * scale, floor)))
    on_set = f"on the tangent space of {system.constraint.description}" if system.constraint is not None else ""
    note = "; ".join(x for x in (on_set, lin.family_note, note) if x)
    tail = f"; {note}" if note else ""

    def out(kind, stable, hyperbolic, index, reason, **kw):
        return Classification(J, ev, kind, stable, hyperbolic, index, reason + tail, precision=precision,
                              family_dimension=lin.family_dimension, **kw)

    if n_zero == 0:
        if n_pos == 0:
            return out("stable focus" if oscillating else "stable node", True, True, 0, "all eigenvalues have negative real part")
        if n_neg == 0:
            return out("unstable focus" if oscillating else "unstable node", False, True, n_pos,
                       "all eigenvalues have positive real part")
        cplx = np.abs(ev.imag) > max(rtol * scale, floor)
        if np.any(cplx):
            where = " and ".join(w for w, side in (("unstable", ev.real > 0), ("stable", ev.real < 0)) if np.any(cplx & side))
            return out("saddle-focus", False, True, n_pos,
                       f"{n_pos} unstable, {n_neg} stable directions; a complex pair among the {where} ones")
        return out("saddle", False, True, n_pos, f"{n_pos} unstable, {n_neg} stable directions")
    if n_pos:
        return out("non-hyperbolic saddle", False, False, n_pos,
                   f"{n_pos} eigenvalue(s) with positive real part: unstable whatever the centre directions do")
    if on_curve:
        return out("non-isolated", None, False, 0,
                   f"lies on a curve of equilibria: neutral along the curve ({n_neg} transversal direction(s) attracting)")
    centre = ev[zero]
    imaginary = np.abs(centre.imag) > max(rtol * scale, floor)
    if n_zero == 2 and imaginary.all():
        return _imaginary_pair(out, lin, centre)
    if n_zero > 1 or imaginary.any():
        return out("non-hyperbolic (undecided)", None, False, 0,
                   f"{n_zero} eigenvalues on the imaginary axis: a centre manifold of dimension {n_zero} "
                   "(e.g. Bogdanov-Takens, fold-Hopf) is not analysed")
    if lin.sym is None or not lin.sym.is_rational:
        return _one_zero_numeric(out, system, prm, lin, point, scale, bounds)
    return _one_zero_eigenvalue(out, lin, point, scale, bounds, multiplicity if n == 1 else None)


class _NotDifferentiable(Exception):
    """The Jacobian of a system served numerically is not finite at the point."""


@dataclass(frozen=True)
class _Linearisation:
    """The Jacobian at a point: as floats (``J``, read-only), in high precision (``J_mp``, with
    the mpmath state ``xv`` and parameters ``pv``; None for a system served numerically), its
    eigenvalues sorted by real then imaginary part, the sizes of its terms, and the zero
    tolerance (raised to ``FLOAT_RTOL`` where the eigenvalues are computed in floats). For a
    system served numerically or with a symmetry, ``ambient`` is its whole Jacobian (``J`` is on
    the constraint's tangent space where it declares one). With a symmetry, ``J`` is the map
    induced on the quotient by the orbit's tangent space, in the orthonormal coordinates
    ``basis`` (n_states x dim), ``family_dimension`` the orbit's dimension, ``family_note`` what
    to say about it."""

    J: np.ndarray
    ev: np.ndarray
    sizes: np.ndarray
    rtol: float
    sym: Any
    J_mp: Any
    xv: Any
    pv: Any
    ambient: np.ndarray | None = None
    basis: np.ndarray | None = None
    family_dimension: int = 0
    family_note: str = ""

    @property
    def reference(self) -> float:
        """The norm of the whole Jacobian of a system served numerically (0 otherwise): the
        scale its eigenvalues are zero against."""
        return 0.0 if self.ambient is None else float(np.linalg.norm(self.ambient))


def _linearise(system, prm: Mapping[str, Any], point: tuple, rtol: float) -> _Linearisation:
    """The Jacobian and its eigenvalues at ``point``: in high precision for symbolic systems of
    at most ``_MAX_HP_STATES`` states, in floats otherwise."""
    n = system.n_states
    sym = system.symbolic
    basis, family, family_note = None, 0, ""
    if sym is not None and system.symmetry is None:
        pv = [to_mp(prm[k]) for k in sym.param_names]
        xv = [to_mp(v) for v in point]
        J_mp = mpmath.matrix(n, n)
        if not differentiable_at(sym, prm, point):
            raise _NotDifferentiable(point)
        for idx, v in enumerate(_mp_functions(sym)[1](*xv, *pv)):
            J_mp[idx // n, idx % n] = v
        J = np.array([[float(mpmath.re(J_mp[i, j])) for j in range(n)] for i in range(n)])
        sizes = np.array([float(abs(v)) for v in _mp_functions(sym)[2](*xv, *pv)]).reshape(n, n)
        if n == 1:
            ev = np.array([complex(J_mp[0, 0])])
        elif n <= _MAX_HP_STATES:
            ev = np.array([complex(e) for e in mpmath.eig(J_mp, left=False, right=False)])
        else:
            ev, rtol = np.linalg.eigvals(J), max(rtol, FLOAT_RTOL)
    else:
        J_mp, xv, pv = None, None, None
        x = np.array([float(v) for v in point])
        with np.errstate(all="ignore"):
            J = jacobian_at(system, x, prm)
        # autodiff through a quadrature is as accurate as the quadrature; a symmetric system's
        # quotient is computed in floats
        rtol = max(rtol, COARSE_RTOL if sym is None else FLOAT_RTOL)
        ambient, sizes = J, np.abs(J)
        if not np.all(np.isfinite(J)):
            raise _NotDifferentiable(x)
        if system.symmetry is not None:
            J, sizes, basis, family, family_note = _on_quotient(system, x, prm, ambient, rtol)
            sym = None  # the series and Lyapunov coefficients live in the full coordinates
        elif system.constraint is not None:
            J, sizes = _on_tangent_space(system, x, prm, ambient)
        ev = np.linalg.eigvals(J) if J.size else np.zeros(0, complex)
    J.setflags(write=False)
    ev = ev[np.lexsort((ev.imag, ev.real))]
    ev.setflags(write=False)
    return _Linearisation(J, ev, sizes, rtol, sym, J_mp, xv, pv, None if J_mp is not None else ambient,
                          basis, family, family_note)


def _on_tangent_space(system, x: np.ndarray, prm: Mapping[str, Any], J: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Jacobian restricted to the tangent space of the system's constraint {c = 0} at x,
    T^T J T with T an orthonormal basis of the null space of dc/dx: the constraint set is
    invariant, so J maps its tangent space into itself at an equilibrium on it, and its normal
    directions (declared not part of the dynamics) are left out. With it, the sizes that set its
    eigenvalues' noise floor: those of the whole Jacobian, spread evenly (the tangent block of a
    point where every tangent rate vanishes is rounding noise against the normal rates)."""
    T = _tangent_basis(system, x, {k: numeric(v) for k, v in prm.items()})
    Jt = T.T @ J @ T
    return Jt, np.full(Jt.shape, np.linalg.norm(J) / max(1, Jt.shape[0]))


def _tangent_basis(system, x: np.ndarray, P: Mapping[str, Any]) -> np.ndarray:
    """An orthonormal basis (n x k) of the tangent space at x of the system's constraint
    {c = 0} (the null space of dc/dx), the identity without a constraint."""
    from scipy.linalg import null_space

    if system.constraint is None:
        return np.eye(len(x))
    import jax.numpy as jnp

    _, C = _constraint_functions(system)(jnp.asarray(x), {k: jnp.asarray(v) for k, v in P.items()})
    return null_space(np.atleast_2d(np.asarray(C)))


def orbit_tangents(system, x: ArrayLike, prm: Mapping[str, Any], rtol: float = FLOAT_RTOL) -> np.ndarray:
    """An orthonormal basis (n_states x r) of the tangent space at ``x`` of the orbit of the
    system's ``symmetry``: the span of its generators, r their numerical rank (singular values
    above ``rtol`` times the largest and above FLOAT_ZERO times the point's size, at least 1:
    a point that rounding puts next to a fixed point of the group has tangents of that size).

    Parameters
    ----------
    system : DynamicalSystem
        A system that declares a ``symmetry``.
    x : array_like
        The point, one value per state.
    prm : mapping str -> float
        Parameter values, already validated.
    rtol : float
        Relative rank tolerance.

    Returns
    -------
    numpy.ndarray
        Shape (n_states, r), float64; r = 0 at a fixed point of the group.

    Raises
    ------
    ValueError
        The generators do not have shape (m, n_states) at a point, or are not finite.
    """
    import jax.numpy as jnp

    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    P = {k: jnp.asarray(numeric(v)) for k, v in prm.items()}
    G = np.asarray(system.symmetry.generators(jnp.asarray(x), P), dtype=float)
    if G.ndim != 2 or G.shape[1] != n:
        raise ValueError(f"symmetry.generators(y, params) must return shape (m, {n}) at a point y (one tangent "
                         f"vector per generator); got {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError(f"symmetry.generators(y, params) is not finite at {short_array(x, 6)}")
    if not G.size:
        return np.zeros((n, 0))
    _, sv, Vt = np.linalg.svd(G)
    floor = max(rtol * (sv[0] if sv.size else 0.0), FLOAT_ZERO * max(1.0, float(np.max(np.abs(x)))))
    r = int(np.sum(sv > floor))
    return Vt[:r].T


def _on_quotient(system, x: np.ndarray, prm: Mapping[str, Any], J: np.ndarray, rtol: float):
    """(A, sizes, Q, r, note): the map A = Q^T J Q induced by J on the quotient by the orbit's
    tangent space T (dimension r) within the constraint's tangent space (the whole space
    without one), Q an orthonormal basis of the complement; the sizes that set its eigenvalues'
    noise floor (those of the whole Jacobian, spread evenly), and the note for the reason.
    Where J does not annihilate T within max(rtol, COARSE_RTOL) of |J| (not an equilibrium, or
    no symmetry of the flow), it warns and returns the whole (tangent-space) Jacobian, r = 0."""
    from scipy.linalg import null_space

    P = {k: numeric(v) for k, v in prm.items()}
    sym = system.symmetry
    N = _tangent_basis(system, x, P)
    T = orbit_tangents(system, x, prm, rtol)
    if T.shape[1]:
        T = N @ np.linalg.svd(N.T @ T, full_matrices=False)[0]  # within the constraint's tangent space
    r = T.shape[1]
    size = float(np.linalg.norm(J))
    if r and float(np.linalg.norm(J @ T)) > max(rtol, COARSE_RTOL) * max(size, np.finfo(float).tiny):
        miss = float(np.linalg.norm(J @ T)) / max(size, np.finfo(float).tiny)
        note = (f"the Jacobian does not annihilate the tangents of the orbit of {sym.description} "
                f"(|J t| / |J| = {miss:.3g}): not an equilibrium, or not a symmetry of the flow; the whole Jacobian "
                "is classified")
        warnings.warn(note, UserWarning, stacklevel=4)
        A = N.T @ J @ N
        return A, np.full(A.shape, size / max(1, A.shape[0])), None, 0, note
    Q = N @ null_space(T.T @ N) if r else N
    A = Q.T @ J @ Q
    if r:
        note = (f"a family of dimension {r} (orbit of {sym.description}): {r} zero eigenvalue{'s' if r > 1 else ''} "
                "explained by the symmetry; classified on the quotient")
    else:
        note = f"an isolated point: fixed by {sym.description} (an orbit of dimension 0)"
    return A, np.full(A.shape, size / max(1, A.shape[0])), Q, r, note


def _imaginary_pair(out, lin: _Linearisation, centre: np.ndarray) -> Classification:
    """A pair of purely imaginary eigenvalues, decided by the first Lyapunov coefficient; where
    it vanishes, a centre only when proved (``_proved_centre``)."""
    undecided = "weak focus or centre (undecided)"
    if lin.basis is not None:
        return out(undecided, None, False, 0,
                   "a pair of purely imaginary eigenvalues on the quotient; its first Lyapunov coefficient is not computed")
    if lin.sym is None:
        return out(undecided, None, False, 0,
                   "a pair of purely imaginary eigenvalues; the first Lyapunov coefficient needs the explicit "
                   "equations (system.symbolic is None)")
    omega = float(np.max(centre.imag))
    a, a_scale = _first_lyapunov(lin.sym, lin.J_mp, lin.xv, lin.pv, mpmath.mpf(omega))
    base = f"eigenvalues +-{omega:.6g}i: non-hyperbolic, the linearisation does not decide"
    if abs(a) <= lin.rtol * a_scale:
        proof = _proved_centre(lin.sym, lin.xv, lin.pv)
        if proof:
            return out("centre", None, False, 0, f"{base}; the first Lyapunov coefficient vanishes and {proof}",
                       lyapunov=0.0)
        return out(undecided, None, False, 0,
                   f"{base}; the first Lyapunov coefficient vanishes: a weak focus or a centre, decided by "
                   "higher-order coefficients (not computed)", lyapunov=0.0)
    if a < 0:
        return out("weak stable focus", True, False, 0,
                   f"{base}; first Lyapunov coefficient {a:.6g} < 0: a weak (stable) focus", lyapunov=a)
    return out("weak unstable focus", False, False, 2,
               f"{base}; first Lyapunov coefficient {a:.6g} > 0: a weak unstable focus", lyapunov=a)


def _proved_centre(sym: ODESystem, xv, pv) -> str:
    """Why the equilibrium at ``xv`` with a pair +-i omega is a centre, in words, or "" where
    that is not proved: an affine right-hand side (the linearisation is the flow), or two
    states with an integrating factor mu = prod |x_i|^a_i (a_i = 0 where x_i = 0 at the point)
    and div(mu f) = 0 identically (an area-preserving flow has no focus)."""
    states = list(sym.states)
    if all(not (sp.sympify(e).free_symbols & set(states)) for e in sym.jacobian):
        return "the right-hand side is affine: the linearisation is the flow, a linear centre"
    if len(states) != 2 or not sym.is_rational:
        return ""
    if any(isinstance(v, mpmath.mpc) for v in pv):
        return ""
    values = {p: sp.Integer(int(v.man_exp[0])) * sp.Integer(2) ** int(v.man_exp[1]) if v else sp.Integer(0)
              for p, v in zip(sym.params, (mpmath.mpf(v) for v in pv))}
    f = [sp.sympify(r).subs(values) for r in sym.rhs]
    exps = [sp.Dummy(f"a{i}") if abs(xv[i]) > 0 else sp.Integer(0) for i in range(2)]
    div = sp.diff(f[0], states[0]) + sp.diff(f[1], states[1]) + exps[0] * f[0] / states[0] + exps[1] * f[1] / states[1]
    num = sp.numer(sp.together(div))
    unknowns = [e for e in exps if isinstance(e, sp.Dummy)]
    try:
        coeffs = sp.Poly(sp.expand(num), *states).coeffs()
    except sp.PolynomialError:
        return ""
    sol = sp.solve(coeffs, unknowns, dict=True) if unknowns else ([{}] if all(c == 0 for c in coeffs) else [])
    if not sol or any(sp.sympify(c).subs(sol[0]) != 0 for c in coeffs):
        return ""
    a = [sp.sympify(e).subs(sol[0]) for e in exps]
    if any(e.free_symbols for e in a):
        a = [e.subs({s: 0 for s in e.free_symbols}) for e in a]
    names = [str(s) for s in states]
    if all(e == 0 for e in a):
        return "the field is divergence-free (Hamiltonian): the flow preserves area, a centre"
    mu = " ".join(f"|{n}|^({e})" for n, e in zip(names, a) if e != 0)
    return f"mu = {mu} is an integrating factor (div(mu f) = 0): the flow preserves the area mu d{names[0]} d{names[1]}, a centre"


def _one_zero_eigenvalue(out, lin: _Linearisation, point: tuple, scale: float, bounds: dict,
                         multiplicity: int | None) -> Classification:
    """One zero eigenvalue (the others stable) of a rational right-hand side, decided by the
    leading term of the flow on the centre manifold (of the Taylor expansion for one state)
    and, when semi-stable, by the domain boundary."""
    sym = lin.sym
    order, coeff, v0 = _centre_flow(sym, lin.J_mp, lin.xv, lin.pv, scale, lin.rtol, multiplicity)
    if order is None:
        return out("non-hyperbolic (undecided)", None, False, 0,
                   f"the flow on the centre manifold vanishes to order {CENTRE_ORDER}")
    where = "Taylor expansion" if lin.J.shape[0] == 1 else "centre-manifold flow"
    flow = f"{where}: du/dt = {coeff:.6g} u^{order} + ..."
    if order % 2 == 1:
        stable = coeff < 0
        return out("non-hyperbolic stable node" if stable else "non-hyperbolic unstable node", stable, False,
                   0 if stable else 1, flow, centre_flow=(order, coeff))
    side = -np.sign(coeff)  # the attracting side of u
    if _allowed_side(np.array([float(v) for v in point]), v0, bounds) == side:
        return out("non-hyperbolic stable node (boundary)", True, False, 0,
                   f"{flow}: semi-stable, and the domain boundary leaves only the attracting side",
                   centre_flow=(order, coeff))
    return out("semi-stable", False, False, 0, f"{flow}: attracting from one side only", centre_flow=(order, coeff))


def _one_zero_numeric(out, system, prm: Mapping[str, Any], lin: _Linearisation, point: tuple, scale: float,
                      bounds: dict) -> Classification:
    """One zero eigenvalue of a system served numerically or with a non-rational right-hand side
    (no centre-manifold series), decided by the flow along the null
    direction on either side: c(+-h) = w . f(x +- h v) / (w . v), with v, w the right and left
    null vectors of the Jacobian (in the full coordinates: the centre manifold of a system with
    a constraint lies in the constraint set), at h = 1e-3 and 1e-4 (relative to the point). No
    Taylor expansion is assumed: the exact flow at a collapsed mode is not smooth (its rate goes
    like p^1.7 at K = 2). Pointing away on both sides: unstable; towards x on both sides:
    stable; the same way on both: semi-stable (stable where the domain leaves only the attracting
    side). Values within the rounding of f at x, or signs that differ between the two steps:
    undecided."""
    x = np.array([float(v) for v in point])
    J = lin.J if lin.basis is not None else lin.ambient if lin.ambient is not None else lin.J
    vals, right = np.linalg.eig(J)
    valsl, left = np.linalg.eig(J.T)
    v = np.real(right[:, np.argmin(np.abs(vals))])
    w = np.real(left[:, np.argmin(np.abs(valsl))])
    if lin.basis is not None:  # null vectors of the quotient map, in the full coordinates
        v, w = lin.basis @ v, lin.basis @ w
    v = v / np.linalg.norm(v)
    f = system.to_numpy(checked=False)
    P = {k: numeric(val) for k, val in prm.items()}
    size = max(1.0, float(np.max(np.abs(x))))
    on = _retraction(system, P)
    signs = []
    rates = []
    for h in (1e-3 * size, 1e-4 * size):
        with np.errstate(all="ignore"):
            c = [float(w @ f(0.0, on(x + side * h * v), P) / (w @ v)) for side in (1.0, -1.0)]
        noise = 1e3 * np.finfo(float).eps * max(scale, 1e-300) * size
        if not all(np.isfinite(c)) or min(abs(c[0]), abs(c[1])) <= noise:
            signs.append(None)
        else:
            signs.append((int(np.sign(c[0])), int(np.sign(c[1]))))
        rates.append(c)
    along = (f"flow along the null vector v: w.f(x + h v) = {rates[1][0]:.3g}, w.f(x - h v) = {rates[1][1]:.3g} at "
             f"h = {1e-4 * size:.0e}")
    if signs[0] is None or signs[0] != signs[1]:
        return out("non-hyperbolic (undecided)", None, False, 0,
                   f"one zero eigenvalue; {along}: within rounding, or its sign changes with h")
    plus, minus = signs[0]
    if plus > 0 and minus < 0:
        return out("non-hyperbolic unstable node", False, False, 1, f"one zero eigenvalue; {along}: repelling on both sides")
    if plus < 0 and minus > 0:
        return out("non-hyperbolic stable node", True, False, 0, f"one zero eigenvalue; {along}: attracting on both sides")
    attracting = -plus  # both point the same way: the side they point from is attracted
    if _allowed_side(x, v, bounds) == attracting:
        return out("non-hyperbolic stable node (boundary)", True, False, 0,
                   f"one zero eigenvalue; {along}: semi-stable, and the domain boundary leaves only the attracting side")
    return out("semi-stable", False, False, 0, f"one zero eigenvalue; {along}: attracting from one side only")


def _retraction(system, P: Mapping[str, Any]):
    """Points moved back onto the system's constraint {c = 0} by Gauss-Newton steps along
    dc/dx (identity without a constraint): a probe off the set would feel the set's attraction
    (for a direction flow a cubic -h^3/2 along the probe), not the flow on it."""
    if system.constraint is None:
        return lambda y: y
    import jax.numpy as jnp

    value_and_jacobian = _constraint_functions(system)
    Pj = {k: jnp.asarray(v) for k, v in P.items()}

    def on(y):
        for _ in range(3):
            r, C = value_and_jacobian(jnp.asarray(y), Pj)
            r, C = np.atleast_1d(np.asarray(r)), np.atleast_2d(np.asarray(C))
            y = y - C.T @ np.linalg.lstsq(C @ C.T, r, rcond=None)[0]
        return y

    return on


@lru_cache(maxsize=32)
def _constraint_functions(system):
    """The constraint c(y, P) and its Jacobian dc/dy, compiled once per system."""
    import jax

    c = system.constraint.function
    return jax.jit(lambda y, P: (c(y, P), jax.jacfwd(c)(y, P)))


def _allowed_side(x: np.ndarray, v0: np.ndarray, bounds: dict) -> float:
    """+1/-1 if the domain leaves only that side of u along v0 at x; 0 if both sides."""
    for i, (lo, hi) in bounds.items():
        if abs(v0[i]) < RTOL:
            continue
        if np.isfinite(lo) and abs(x[i] - lo) <= FLOAT_ZERO * max(1.0, abs(lo)):
            return float(np.sign(v0[i]))
        if np.isfinite(hi) and abs(x[i] - hi) <= FLOAT_ZERO * max(1.0, abs(hi)):
            return float(-np.sign(v0[i]))
    return 0.0


# -- first Lyapunov coefficient -------------------------------------------------------------------


def _null_vector(M: mpmath.matrix) -> mpmath.matrix:
    """Unit vector spanning the (numerical) kernel of the square complex matrix M."""
    _, _, V = mpmath.svd_c(M)
    n = M.rows
    return mpmath.matrix([mpmath.conj(V[n - 1, j]) for j in range(n)])


def _first_lyapunov(system: ODESystem, A: mpmath.matrix, xv, pv, omega) -> tuple[float, float]:
    """(a, scale): a = omega * l1 / 2 with Kuznetsov's l1 =
    Re[<p, C(q,q,qb)> - 2 <p, B(q, A^-1 B(q,qb))> + <p, B(qb, (2 i omega - A)^-1 B(q,q))>] / (2 omega),
    A q = i omega q, A^T p = -i omega p, <q,q> = <p,q> = 1 (<u,v> = conj(u)^T v); scale: the
    same sum with |terms|, for the zero test."""
    n = A.rows
    second, third = _mp_derivatives(system)
    H = second(*xv, *pv)
    T = third(*xv, *pv)
    I = mpmath.eye(n)
    q = _null_vector(A - 1j * omega * I)
    p = _null_vector(A.T + 1j * omega * I)
    dot = lambda u, v: mpmath.fsum(mpmath.conj(u[i]) * v[i] for i in range(n))  # noqa: E731
    q = q / mpmath.sqrt(mpmath.re(dot(q, q)))
    p = p / mpmath.conj(dot(p, q))
    qb = mpmath.matrix([mpmath.conj(v) for v in q])

    def B(u, v):
        return mpmath.matrix([mpmath.fsum(H[(i * n + j) * n + k] * u[j] * v[k] for j in range(n) for k in range(n))
                              for i in range(n)])

    def C(u, v, w):
        return mpmath.matrix([mpmath.fsum(T[((i * n + j) * n + k) * n + m] * u[j] * v[k] * w[m]
                                          for j in range(n) for k in range(n) for m in range(n)) for i in range(n)])

    t1 = dot(p, C(q, q, qb))
    t2 = -2 * dot(p, B(q, mpmath.lu_solve(A, B(q, qb))))
    t3 = dot(p, B(qb, mpmath.lu_solve(2j * omega * I - A, B(q, q))))
    a = mpmath.re(t1 + t2 + t3) / 4  # omega * (Re[...] / (2 omega)) / 2
    scale = (abs(t1) + abs(t2) + abs(t3)) / 4
    return float(a), float(scale)


# -- centre manifold ------------------------------------------------------------------------------


class _Series:
    """A power series in u truncated at CENTRE_ORDER, mpmath coefficients: evaluating a rational
    right-hand side along a curve x(u) (denominators expanded, they do not vanish at x*)."""

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = list(c)

    @staticmethod
    def _of(other):
        if isinstance(other, _Series):
            return other.c
        return [mpmath.mpmathify(other)] + [mpmath.mpf(0)] * CENTRE_ORDER

    def __add__(self, other):
        return _Series([a + b for a, b in zip(self.c, self._of(other))])

    __radd__ = __add__

    def __sub__(self, other):
        return _Series([a - b for a, b in zip(self.c, self._of(other))])

    def __rsub__(self, other):
        return _Series([b - a for a, b in zip(self.c, self._of(other))])

    def __neg__(self):
        return _Series([-a for a in self.c])

    def __mul__(self, other):
        if not isinstance(other, _Series):
            o = mpmath.mpmathify(other)
            return _Series([a * o for a in self.c])
        b = other.c
        return _Series([mpmath.fsum(self.c[j] * b[k - j] for j in range(k + 1)) for k in range(CENTRE_ORDER + 1)])

    __rmul__ = __mul__

    def _reciprocal(self):
        a = self.c
        if a[0] == 0:
            raise ZeroDivisionError("a denominator vanishes at the point")
        b = [1 / a[0]]
        for k in range(1, CENTRE_ORDER + 1):
            b.append(-mpmath.fsum(a[j] * b[k - j] for j in range(1, k + 1)) / a[0])
        return _Series(b)

    def __truediv__(self, other):
        if isinstance(other, _Series):
            return self * other._reciprocal()
        return self * (1 / mpmath.mpmathify(other))

    def __rtruediv__(self, other):
        return self._reciprocal() * other

    def __pow__(self, k):
        if int(k) != k:
            raise TypeError("only integer powers of a series (rational right-hand sides)")
        base = self if k >= 0 else self._reciprocal()
        out = _Series(self._of(1))
        for _ in range(abs(int(k))):
            out = out * base
        return out


def _centre_flow(system: ODESystem, J: mpmath.matrix, xv, pv, scale: float, rtol: float, multiplicity: int | None):
    """(k, a_k, v0): the flow on the 1-D centre manifold du/dt = a_k u^k + ..., along v0.

    The centre manifold z = h(u) = sum_{k>=2} h_k u^k is solved order by order: du/dt = O(u^2),
    so the order-k invariance equation h'(u) du/dt = dz/dt contains h_k only through Lambda_w h_k
    and h_k = Lambda_w^{-1} r_k, with r_k computed from the lower orders.
    """
    n = len(xv)
    F = _mp_functions(system)[0]
    zero = lambda: _Series([mpmath.mpf(0)] * (CENTRE_ORDER + 1))  # noqa: E731
    unit = [mpmath.mpf(0)] * (CENTRE_ORDER + 1)
    unit[1] = mpmath.mpf(1)
    if n == 1:
        series = F(_Series(unit) + xv[0], *pv)[0]
        if multiplicity is not None and multiplicity <= CENTRE_ORDER:
            return multiplicity, float(series.c[multiplicity]), np.array([1.0])
        return _first_nonzero(series.c, scale, rtol) + (np.array([1.0]),)

    U, _S, V = mpmath.svd_r(J)
    v0 = mpmath.matrix([V[n - 1, j] for j in range(n)])
    u_last = mpmath.matrix([U[i, n - 1] for i in range(n)])
    w0 = u_last / mpmath.fsum(u_last[i] * v0[i] for i in range(n))
    B = mpmath.matrix(n, n - 1)  # orthonormal basis of range(J): invariant, complementary to ker J
    for i in range(n):
        for j in range(n - 1):
            B[i, j] = U[i, j]
    P = B.T * (mpmath.eye(n) - v0 * w0.T)
    lam_w = P * J * B
    h = [[mpmath.mpf(0)] * (CENTRE_ORDER + 1) for _ in range(n - 1)]

    def flows():
        z = [_Series(h[j]) for j in range(n - 1)]
        point = []
        for i in range(n):
            s = _Series(unit) * v0[i] + xv[i]
            for j in range(n - 1):
                s = s + z[j] * B[i, j]
            point.append(s)
        Fx = [r if isinstance(r, _Series) else _Series([mpmath.mpmathify(r)] + [mpmath.mpf(0)] * CENTRE_ORDER)
              for r in F(*point, *pv)]
        udot = zero()
        for i in range(n):
            udot = udot + Fx[i] * w0[i]
        zdot = []
        for j in range(n - 1):
            s = zero()
            for i in range(n):
                s = s + Fx[i] * P[j, i]
            zdot.append(s)
        return udot, zdot

    for k in range(2, CENTRE_ORDER + 1):
        udot, zdot = flows()
        r = mpmath.matrix(n - 1, 1)
        for j in range(n - 1):
            dh = [h[j][m + 1] * (m + 1) for m in range(CENTRE_ORDER)] + [mpmath.mpf(0)]
            r[j] = (_Series(dh) * udot - zdot[j]).c[k]
        sol = mpmath.lu_solve(lam_w, r)
        for j in range(n - 1):
            h[j][k] = sol[j]
    udot, _ = flows()
    return _first_nonzero(udot.c, scale, rtol) + (np.array([float(v) for v in v0]),)


def _first_nonzero(coeffs, scale: float, rtol: float):
    """(k, a_k) of the first coefficient (k >= 1) that is not zero within rtol times the scale
    max(eig_scale(J), max_k |a_k|); (None, 0.0) if all vanish."""
    ref = max([scale] + [float(abs(c)) for c in coeffs[1:]])
    for k, c in enumerate(coeffs):
        if k < 1:
            continue
        if ref > 0 and float(abs(c)) > rtol * ref:
            return k, float(c)
    return None, 0.0


def differentiable_at(system: ODESystem, prm: Mapping[str, Any], point: tuple) -> bool:
    """The Jacobian of the explicit equations ``system`` is finite at ``point`` (mpmath at the
    working precision; a division by zero, as in d(s**alpha)/ds = alpha s**(alpha - 1) at
    s = 0, or an infinite entry is not)."""
    pv = [to_mp(prm[k]) for k in system.param_names]
    try:
        values = _mp_functions(system)[1](*[to_mp(v) for v in point], *pv)
    except (ZeroDivisionError, ValueError, OverflowError):
        return False
    return all(mpmath.isfinite(v) for v in values)


def _non_lipschitz_edge(J: np.ndarray, x: np.ndarray, bounds: dict) -> dict[int, float]:
    """{state index: +1 at its lower bound, -1 at its upper}: the states at an end of their
    domain whose column of the Jacobian ``J`` at ``x`` is not finite (ds/dt ~ c s**a, a < 1)."""
    edge = {}
    for i, (lo, hi) in bounds.items():
        if np.all(np.isfinite(J[:, i])):
            continue
        if np.isfinite(lo) and abs(x[i] - lo) <= FLOAT_ZERO * max(1.0, abs(lo)):
            edge[i] = 1.0
        elif np.isfinite(hi) and abs(x[i] - hi) <= FLOAT_ZERO * max(1.0, abs(hi)):
            edge[i] = -1.0
    return edge


def _one_sided(system, prm: Mapping[str, Any], x: np.ndarray, J: np.ndarray, edge: dict[int, float],
               note: str = "") -> Classification:
    """A point on the domain's boundary where the flow is not Lipschitz (ds/dt ~ c s**a, a < 1,
    at s = 0): each state in ``edge`` is decided by the sign of its rate just inside the domain,
    at steps h = 1e-6 and 1e-9 (relative to the point): pushed inwards, unstable; pushed
    outwards, the boundary is reached from inside in finite time, stable within the domain. The
    other states are decided by the eigenvalues of their block of the Jacobian ``J`` at ``x``."""
    f = system.to_numpy(checked=False)
    P = {k: numeric(v) for k, v in prm.items()}
    inward = set()
    with np.errstate(all="ignore"):
        for i, side in edge.items():
            for h in (1e-6, 1e-9):
                y = np.array(x, dtype=float)
                y[i] += side * h * max(1.0, float(np.max(np.abs(x))))
                inward.add(float(np.sign(side * f(0.0, y, P)[i])))
    rest = [i for i in range(len(x)) if i not in edge]
    block = J[np.ix_(rest, rest)]
    ev = np.linalg.eigvals(block) if rest and np.all(np.isfinite(block)) else None
    ev_all = np.full(len(x), np.nan + 0j)
    if ev is not None:
        ev_all[rest] = ev
    J.setflags(write=False)
    ev_all.setflags(write=False)
    names = ", ".join(system.state_names[i] for i in edge)
    why = f"the flow is not Lipschitz at the boundary in {names} (its rate there goes like a power below one)"
    tail = f"; {note}" if note else ""
    if inward == {1.0} or (ev is not None and np.any(ev.real > 0)):
        side = "pushes into the domain" if inward == {1.0} else "keeps it, but another direction is unstable"
        return Classification(J, ev_all, "non-hyperbolic unstable node", False, False, 1, f"{why}; the flow {side}{tail}")
    if inward == {-1.0} and (not rest or (ev is not None and np.all(ev.real < 0))):
        return Classification(J, ev_all, "non-hyperbolic stable node (boundary)", True, False, 0,
                              f"{why}; the flow reaches it from inside the domain in finite time, and the other "
                              f"directions are stable{tail}")
    return Classification(J, ev_all, "non-hyperbolic (undecided)", None, False, 0,
                          f"{why}; the one-sided rate or the other directions do not decide{tail}")
