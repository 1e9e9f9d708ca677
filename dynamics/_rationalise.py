"""Systems that become rational once their parameters are numbers: the exact path for them.

A right-hand side with a parameter in an exponent (``s**alpha``, the DirectPred predictor) is
not rational in the states for a symbolic ``alpha``, and the analyses would fall back to
Newton. At a number it often is:

- ``alpha = 1`` (or ``1.0``) makes ``s * s**alpha = s**2``: the system is polynomial as it
  stands.
- A rational ``alpha = p/q`` on a state with ``s >= 0`` becomes polynomial after the change of
  state ``s = u**q`` (``u >= 0``): ``s**alpha = u**p``. The equilibria are the zeros of
  ``f(u**q)`` (``zeros``), solved exactly; the flow in ``u``, ``du/dt = f_s(u**q) / (q
  u**(q - 1))`` (``conjugate``), is conjugate to the flow in ``s`` on ``u > 0`` by the
  homeomorphism ``u -> u**q`` of ``[0, oo)``, so it carries the same stability, and at the
  boundary ``s = 0``, where ``d(s**alpha)/ds`` is infinite for ``alpha < 1``, it is the
  one-sided flow in the coordinate in which it is smooth.

A float exponent counts as the rational p/q (q <= ``MAX_DENOMINATOR``) whose nearest float it
is: 0.5 is 1/2, 0.3 is 3/10. Floats elsewhere are taken as their exact binary values, as the
exact path always takes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import reduce as fold
from math import lcm
from typing import Any

import numpy as np
import sympy as sp

from derivations import FrozenMap, ODESystem

__all__ = ["Rationalised", "rationalise", "MAX_DENOMINATOR"]

MAX_DENOMINATOR = 12
"""The largest denominator q of a float exponent read as the rational p/q (its nearest float
must be the given one), and of the change of state s = u**q: the degrees grow q-fold."""


@dataclass(frozen=True)
class Rationalised:
    """A system with some parameters fixed at exact numbers, rational in its states after the
    change of state ``x_i = u_i**powers[i]`` (the other states unchanged).

    Attributes
    ----------
    original : ODESystem
        The system as given.
    zeros : ODESystem
        ``f(u**q)`` with the fixed parameters substituted: its zeros are the equilibria (in
        ``u``); not a flow.
    conjugate : ODESystem
        The flow in ``u`` (``f_i(u**q) / (q_i u_i**(q_i - 1))``), with the kept parameters.
    powers : tuple of int
        q for each state (1: unchanged).
    fixed : FrozenMap of str -> sympy number
        The parameters substituted and their exact values.
    note : str
        What was done, in words.
    regular : bool
        The conjugate flow is polynomial in the changed states and vanishes at u_i = 0 wherever
        the original flow does, so it keeps every equilibrium on the boundary: its bifurcation
        diagram is the original's. False where f_i ~ s_i**(1/q) there (ds/dt = sqrt(s) - s),
        whose equilibrium s = 0 the conjugate flow does not have.
    """

    original: ODESystem
    zeros: ODESystem
    conjugate: ODESystem
    powers: tuple[int, ...]
    fixed: Mapping[str, sp.Expr]
    note: str = field(default="")
    regular: bool = field(default=True)

    @property
    def substituted(self) -> bool:
        """Some state was changed (a power q > 1)."""
        return any(q > 1 for q in self.powers)

    def to_original(self, u: Any) -> Any:
        """States ``x = u**q`` from conjugate states ``u``: a tuple of mpmath/SymPy numbers, or a
        float array whose last axis is the states."""
        if isinstance(u, np.ndarray):
            out = np.array(u, dtype=float)
            for i, q in enumerate(self.powers):
                if q > 1:
                    out[..., i] = out[..., i] ** q
            return out
        return tuple(v**q if q > 1 else v for v, q in zip(u, self.powers))

    def bounds(self, bounds: list[sp.Interval]) -> list[sp.Interval]:
        """The state domain in ``u``: [a, b] in x is [a**(1/q), b**(1/q)] in u (a >= 0)."""
        return _u_bounds(bounds, self.powers)


def _exact_exponent(value: Any) -> sp.Rational | None:
    """An exponent as an exact rational: ints and SymPy rationals as they are; a float as the
    p/q with q <= MAX_DENOMINATOR whose nearest float it is; None otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, sp.Float):
        value = float(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return None
        frac = Fraction(float(value)).limit_denominator(MAX_DENOMINATOR)
        return sp.Rational(frac.numerator, frac.denominator) if float(frac) == float(value) else None
    try:
        v = sp.sympify(value)
    except (sp.SympifyError, TypeError):
        return None
    return v if v.is_Rational else None


def _exact_coefficient(value: Any) -> sp.Expr:
    if isinstance(value, (float, np.floating)):
        return sp.Rational(float(value))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return sp.Integer(int(value))
    return sp.sympify(value)


def rationalise(system: ODESystem, prm: Mapping[str, Any], keep: tuple[str, ...] = ()) -> Rationalised | None:
    """``system`` with every parameter except ``keep`` fixed at its value in ``prm``, made
    rational in the states by exact exponents and a power change of state where one serves;
    None where the system stays non-rational (a parameter in an exponent that is no small
    rational, ``exp``/``sin``, a fractional power of a state that may be negative or of a
    compound expression).

    Parameters
    ----------
    system : ODESystem
        Explicit equations whose right-hand side is not rational in the states.
    prm : mapping
        Checked parameter values (``system.check_params``).
    keep : tuple of str
        Parameters left symbolic (a swept parameter); they must not appear in an exponent.

    Returns
    -------
    Rationalised or None
    """
    literal = {p: p.base ** _exact_exponent(float(p.exp)) for p in system.rhs.atoms(sp.Pow)
               if p.exp.is_Float and _exact_exponent(float(p.exp)) is not None}
    literal_read = [f"exponent {p.exp} taken as {e.exp}" for p, e in literal.items() if e.exp.is_Rational]
    in_exponents = exponent_params(system)
    if in_exponents & set(keep):
        return None
    sub, fixed, read = {}, {}, []
    for name, value in prm.items():
        if name in keep:
            continue
        if name in in_exponents:
            exact = _exact_exponent(value)
            if exact is None:
                return None
            if isinstance(value, (float, np.floating)) and exact.q > 1:
                read.append(f"{name} = {float(value):g} taken as {exact}")
        else:
            exact = _exact_coefficient(value)
        sub[system.symbols[name]] = exact
        fixed[name] = exact
    rhs = [sp.powsimp(r.xreplace(literal).xreplace(sub)) for r in system.rhs]
    read += literal_read
    if not all(_rational_in(r, system.states) for r in rhs):
        powers = _powers(rhs, system)
        if powers is None:
            return None
    else:
        powers = (1,) * system.n_states
    kept = tuple(p for p in system.params if str(p) in keep)
    zeros_rhs, flow_rhs = _changed(rhs, system.states, powers)
    if not all(_rational_in(r, system.states) for r in zeros_rhs + flow_rhs):
        return None
    names = system.state_names
    u_domain = dict(zip(names, _u_bounds([system.state_domain.get(n, _REALS) for n in names], powers)))
    common = dict(state_domain=u_domain, collapse=system.collapse, name=system.name)
    domains = {k: v for k, v in system.param_domain.items() if k in keep}
    zeros = ODESystem(system.states, kept, zeros_rhs, param_domain=domains, **common)
    conjugate = ODESystem(system.states, kept, flow_rhs, param_domain=domains, **common)
    changed = [f"{n} = u_{n}**{q}" for n, q in zip(names, powers) if q > 1]
    note = "; ".join(read + ([f"solved exactly after the change of state {', '.join(changed)}"] if changed else []))
    return Rationalised(system, zeros, conjugate, powers, FrozenMap(fixed), note,
                        _regular(zeros_rhs, flow_rhs, system.states, powers))


def exponent_params(system: ODESystem) -> set[str]:
    """The parameters that appear in an exponent of the right-hand side."""
    return {str(v) for power in system.rhs.atoms(sp.Pow) for v in power.exp.free_symbols}


def _rational_in(expr: sp.Expr, states: tuple[sp.Symbol, ...]) -> bool:
    return all(e.is_polynomial(*states) for e in sp.fraction(sp.together(expr)))


def _powers(rhs: list[sp.Expr], system: ODESystem) -> tuple[int, ...] | None:
    """q per state: the lcm of the denominators of the fractional powers of that state; None
    where a fractional power has a compound base or a state that may be negative."""
    dens = {s: [] for s in system.states}
    for r in rhs:
        for power in sp.preorder_traversal(r):
            if not isinstance(power, sp.Pow) or power.exp.is_Integer:
                continue
            if not power.exp.is_Rational or not (power.base.free_symbols & set(system.states)):
                if power.base.free_symbols & set(system.states):
                    return None
                continue
            if power.base not in dens:
                return None
            dens[power.base].append(int(power.exp.q))
    powers = []
    for s in system.states:
        q = fold(lcm, dens[s], 1)
        domain = system.state_domain.get(str(s))
        if q > MAX_DENOMINATOR or (q > 1 and (domain is None or not domain.inf >= 0)):
            return None
        powers.append(q)
    return tuple(powers)


def _changed(rhs: list[sp.Expr], states: tuple[sp.Symbol, ...], powers: tuple[int, ...]) -> tuple[list, list]:
    """(f(u**q), the conjugate flow) in the same symbols, u >= 0 where q > 1."""
    if all(q == 1 for q in powers):
        return list(rhs), list(rhs)
    plain = {}
    sub = {}
    for s, q in zip(states, powers):
        if q > 1:
            u = sp.Symbol(str(s), nonnegative=True)
            plain[u] = s
            sub[s] = u**q
    zeros, flow = [], []
    for r, s, q in zip(rhs, states, powers):
        z = sp.powsimp(sp.powdenest(r.xreplace(sub), force=False)).xreplace(plain)
        zeros.append(_simple_at_zero(sp.expand(z), [v for v, k in zip(states, powers) if k > 1]))
        flow.append(sp.cancel(z / (q * s ** (q - 1))) if q > 1 else z)
    return zeros, flow


def _simple_at_zero(expr: sp.Expr, changed: list[sp.Symbol]) -> sp.Expr:
    """``expr`` with each factor u**k (k > 1) of a changed state lowered to u: the same zeros,
    but u = 0 a simple one, which root isolation resolves exactly instead of to the k-th root
    of the working precision."""
    num, den = sp.fraction(sp.together(expr))
    for u in changed:
        k = 0
        while num != 0 and sp.rem(num, u**(k + 1), u) == 0:
            k += 1
        if k > 1:
            num = sp.expand(sp.cancel(num / u**(k - 1)))
    return num / den


_REALS = sp.Interval(-sp.oo, sp.oo)


def _u_bounds(bounds: list, powers: tuple[int, ...]) -> list:
    out = []
    for interval, q in zip(bounds, powers):
        if q > 1:
            lo, hi = sp.Max(interval.inf, 0), interval.sup
            interval = sp.Interval(lo ** sp.Rational(1, q), hi if hi == sp.oo else hi ** sp.Rational(1, q),
                                   getattr(interval, "left_open", False), getattr(interval, "right_open", False))
        out.append(interval)
    return out


def _regular(zeros: list[sp.Expr], flow: list[sp.Expr], states: tuple[sp.Symbol, ...], powers: tuple[int, ...]) -> bool:
    """The conjugate flow has no pole in the changed states and vanishes at u_i = 0 wherever the
    zeros f_i(u**q) do (``Rationalised.regular``)."""
    for z, f, u, q in zip(zeros, flow, states, powers):
        if q == 1:
            continue
        if not f.is_polynomial(*states):
            return False
        if sp.expand(z.subs(u, 0)) == 0 and sp.expand(f.subs(u, 0)) != 0:
            return False
    return True
