"""passage_time(system): the time a one-state flow takes from one state to another, in closed
form; step_time(system): the time of its sigmoidal step from a small start to its plateau."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from derivations import DynamicalSystem

import numpy as np
import sympy as sp

from ._prepare import label, one_state
from ._threshold import _assumed
from ._value import Value

__all__ = ["PassageTime", "passage_time", "step_time"]

Point = Union[str, float, sp.Expr, None]
"""A state or plateau: a number, a string of an expression, a SymPy expression, or None (a symbol)."""


@dataclass(frozen=True, eq=False)
class PassageTime(Value):
    """The time t(start -> end) = integral from start to end of dy / f(y) of a one-state flow
    dy/dt = f(y), as a SymPy expression in the parameters and the symbols ``start`` and ``end``.

    It holds where f has no root between start and end (the passage is monotone); a root on
    the way makes the time infinite.

    Attributes
    ----------
    state : str
        The state y.
    start, end : sympy.Expr
        The two states (symbols such as ``s_0`` unless given).
    expr : sympy.Expr
        The passage time.
    rate : sympy.Expr or None
        f'(0), the growth rate of a small state, where f(0) = 0 (else None).
    plateau : sympy.Expr or None
        ``step_time``: the non-zero equilibrium the step rises to (else None).
    fraction : sympy.Expr or None
        ``step_time``: the fraction of the plateau at which the step is timed (else None).
    note : str
        How the time was obtained and where it holds.
    """

    state: str
    start: sp.Expr
    end: sp.Expr
    expr: sp.Expr
    rate: sp.Expr | None
    plateau: sp.Expr | None
    fraction: sp.Expr | None
    note: str

    def __call__(self, params: Mapping[str, Any], **values: Any) -> np.ndarray:
        """The passage time at parameter values, broadcast over arrays.

        Parameters
        ----------
        params : mapping str -> float or array
            Values of the parameters ``expr`` uses.
        **values
            Values of ``start`` / ``end`` when they are symbols, keyed by their names.

        Returns
        -------
        numpy.ndarray
            The times (NaN where a logarithm's argument is not positive: no passage).

        Raises
        ------
        ValueError
            A symbol of ``expr`` without a value.
        """
        given = {**{str(k): v for k, v in params.items()}, **values}
        names = sorted({str(v) for v in self.expr.free_symbols})
        missing = [n for n in names if n not in given]
        if missing:
            raise ValueError(f"PassageTime: values missing for {missing}; the time depends on {names}")
        f = sp.lambdify([sp.Symbol(n) for n in names], self.expr.xreplace({v: sp.Symbol(str(v)) for v in self.expr.free_symbols}),
                        modules="numpy")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(f(*(np.asarray(given[n], dtype=float) for n in names)), dtype=float)


def _definite(antiderivative: sp.Expr, y: sp.Symbol, y0: sp.Expr, y1: sp.Expr) -> sp.Expr:
    """F(y1) - F(y0), each logarithm c log u(y) written as c log(u(y1) / u(y0)) (positive
    where no root of u lies between y0 and y1) and logarithms with opposite coefficients merged."""
    logs: dict[sp.Expr, sp.Expr] = {}
    rest = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(antiderivative)):
        found = [a for a in term.atoms(sp.log) if a.has(y)]
        coeff = sp.cancel(term / found[0]) if len(found) == 1 else None
        if coeff is None or coeff.has(y):
            rest += term.subs(y, y1) - term.subs(y, y0)
            continue
        u = found[0].args[0]
        ratio = sp.cancel(u.subs(y, y1) / u.subs(y, y0))
        if -coeff in logs:
            logs[-coeff] = logs[-coeff] / ratio
        else:
            logs[coeff] = logs.get(coeff, sp.Integer(1)) * ratio
    total = sum((sp.factor(k) * sp.log(sp.factor(sp.simplify(r))) for k, r in logs.items()), sp.Integer(0))
    return total + sp.simplify(rest)


def passage_time(system: DynamicalSystem, start: Point = None, end: Point = None,
                 params: Mapping[str, float] | None = None) -> PassageTime:
    """The closed-form time a one-state flow dy/dt = f(y) takes from ``start`` to ``end``:
    t = integral of dy / f(y), by partial fractions when f is rational.

    Parameters
    ----------
    system : DynamicalSystem
        A one-state continuous system with explicit equations (after restriction to its
        invariant manifold, if it declares one).
    start, end : str, number or sympy.Expr, optional
        The two states; default the symbols ``<state>_0`` and ``<state>_1``.
    params : mapping str -> number, optional
        Parameter values to put in before integrating (exact rationals of the floats): where
        the roots of f depend on the parameters in a way SymPy cannot sign (a quadratic factor),
        numbers make the integral closed form.

    Returns
    -------
    PassageTime

    Raises
    ------
    TypeError
        ``system`` is not a DynamicalSystem.
    ValueError
        A discrete-time system, several states, or an integral SymPy cannot do in closed form
        (its antiderivative is checked by differentiation).
    """
    reduced = one_state(system, "passage_time")
    if reduced.is_discrete:
        raise ValueError(f"passage_time needs a flow; {label(system)} is a map (time is its step count)")
    y = reduced.states[0]
    y0 = _as_expr(start, f"{y}_0", "start")
    y1 = _as_expr(end, f"{y}_1", "end")
    f = reduced.rhs[0]
    if params is not None:
        values = reduced.check_params(params)
        f = f.xreplace({reduced.symbols[k]: sp.nsimplify(float(v), rational=True) for k, v in values.items()})
    assumed = _assumed(reduced)
    yp = sp.Symbol(str(y), positive=True)
    integrand = sp.cancel(1 / f.xreplace(assumed).xreplace({y: yp}))
    antiderivative = sp.integrate(sp.apart(integrand, yp), yp)
    if antiderivative.has(sp.Integral) or sp.simplify(sp.diff(antiderivative, yp) - integrand) != 0:
        raise ValueError(
            f"passage_time: SymPy finds no closed-form antiderivative of 1/f({y}) for {label(system)} with symbolic "
            "parameters; pass params= (numbers) or integrate the flow"
        )
    back = {v: k for k, v in assumed.items()}
    expr = _definite(antiderivative, yp, y0, y1).xreplace(back)
    at_zero = sp.simplify(f.subs(y, 0))
    rate = sp.simplify(sp.diff(f, y).subs(y, 0)) if at_zero == 0 else None
    note = (f"t = integral from {y0} to {y1} of d{y} / f({y}) (partial fractions); valid where f has no root "
            f"between them")
    return PassageTime(str(y), y0, y1, expr, rate, None, None, note)


def step_time(system: DynamicalSystem, start: Point = None, *, fraction: float | sp.Expr = sp.Rational(1, 2),
              plateau: Point = None) -> PassageTime:
    """The time of a sigmoidal step: from ``start`` to ``fraction`` of the plateau, the
    non-zero equilibrium a small state rises to (the step times of stepwise learning).

    For a logistic mode dy/dt = y (a - b y): plateau a/b, and the time from y0 to half of it
    is ln(a / (b y0) - 1) / a, about ln(plateau / y0) / a for a small start.

    Parameters
    ----------
    system : DynamicalSystem
        A one-state continuous system with explicit equations, f(0) = 0.
    start : str, number or sympy.Expr, optional
        The initial state; default the symbol ``<state>_0``.
    fraction : number or sympy.Expr
        The fraction of the plateau at which the step is timed, in (0, 1); default 1/2.
    plateau : str, number or sympy.Expr, optional
        The plateau; default the one non-zero root of f when f = y g(y) with g of degree one.

    Returns
    -------
    PassageTime
        With ``plateau``, ``fraction`` and ``rate`` (f'(0)) set.

    Raises
    ------
    ValueError
        f(0) != 0; a plateau that is not unique (give ``plateau``); ``fraction`` outside (0, 1);
        and the errors of ``passage_time``.
    """
    reduced = one_state(system, "step_time")
    y = reduced.states[0]
    f = sp.factor(reduced.rhs[0])
    if sp.simplify(f.subs(y, 0)) != 0:
        raise ValueError(f"step_time: {label(system)} has f(0) = {f.subs(y, 0)} != 0; a step rises from the equilibrium 0")
    fraction = sp.sympify(fraction)
    if not (fraction.is_number and 0 < fraction < 1):
        raise ValueError(f"step_time: fraction must be a number in (0, 1); got {fraction}")
    if plateau is None:
        g = sp.cancel(f / y)
        numerator = sp.numer(sp.together(g))
        if not numerator.is_polynomial(y) or sp.degree(numerator, y) != 1:
            raise ValueError(
                f"step_time: f({y}) / {y} of {label(system)} is not of degree one in {y}, so the plateau is not "
                f"unique; pass plateau= (an equilibrium from ncdyn.equilibria)"
            )
        plateau = sp.solve(numerator, y)[0]
    else:
        plateau = _as_expr(plateau, "plateau", "plateau")
    out = passage_time(system, start, sp.factor(fraction * plateau))
    note = out.note + f"; the step is timed at {fraction} of the plateau {plateau}"
    return PassageTime(out.state, out.start, out.end, out.expr, out.rate, plateau, fraction, note)


def _as_expr(value: Any, default: str, what: str) -> sp.Expr:
    if value is None:
        return sp.Symbol(default)
    if isinstance(value, str):
        try:
            return sp.sympify(value)
        except (sp.SympifyError, SyntaxError):
            raise ValueError(f"{what}={value!r} is not an expression") from None
    if isinstance(value, (int, float, sp.Expr)) and not isinstance(value, bool):
        return sp.sympify(value)
    raise TypeError(f"{what} must be a number, a string or a SymPy expression; got {type(value).__name__}")
