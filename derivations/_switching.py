"""The switching functions of an ODESystem whose right-hand side holds Heaviside factors.

Each distinct Heaviside(sigma) atom whose argument depends on the states is a switching
function (``sign(sigma)`` counts as 2 H(sigma) - 1); sigma and -sigma are one surface
(H(-sigma) = 1 - H(sigma) off it). Replacing each factor by a weight h_k gives the convexified
right-hand side, which must be affine in every h_k for the Filippov convexification to be the
system's own (products of factors of different surfaces are allowed).
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

__all__ = ["switching_parts"]


def _canonical(sigma: sp.Expr) -> tuple[sp.Expr, bool]:
    """(sigma', flipped): the orientation of the surface that reads without a leading minus."""
    sigma = sp.expand(sigma) if sigma.is_polynomial() else sigma
    if sigma.could_extract_minus_sign():
        return -sigma, True
    return sigma, False


def switching_parts(rhs: Sequence[sp.Expr], states: Sequence[sp.Symbol], taken: Sequence[str] = (),
                    ) -> tuple[tuple[sp.Expr, ...], tuple[sp.Symbol, ...], tuple[sp.Expr, ...]]:
    """The switching functions of ``rhs``, the weight symbols and the convexified rows.

    Parameters
    ----------
    rhs : sequence of sympy.Expr
        The right-hand sides.
    states : sequence of sympy.Symbol
        The states (a Heaviside factor whose argument holds none is a constant, not a switch).
    taken : sequence of str
        Names the weights must not take (the states' and parameters'): weight k is ``h_k``,
        with underscores appended until it is free.

    Returns
    -------
    (sigmas, weights, rows)
        The switching functions sigma_k, the weight Symbols h_k and the rows with each factor
        H(sigma_k) replaced by h_k (H(-sigma_k) by 1 - h_k); all empty tuples for a smooth
        right-hand side.

    Raises
    ------
    ValueError
        A switching function that itself holds a Heaviside factor, or a right-hand side that
        is not affine in a factor (H(sigma)**2 is, exp(H(sigma)) is not): its Filippov
        convexification would not be f0 + H g.
    """
    state_set = set(states)
    rows = [sp.sympify(r) for r in rhs]
    if not any(r.has(sp.Heaviside, sp.sign) for r in rows):
        return (), (), tuple(rows)
    rows = [r.replace(lambda e: isinstance(e, sp.sign) and bool(e.args[0].free_symbols & state_set),
                      lambda e: 2 * sp.Heaviside(e.args[0]) - 1) for r in rows]
    atoms = sorted({a for r in rows for a in r.atoms(sp.Heaviside) if a.args[0].free_symbols & state_set},
                   key=sp.default_sort_key)
    if not atoms:
        return (), (), tuple(rows)
    sigmas: list[sp.Expr] = []
    where: dict[sp.Heaviside, tuple[int, bool]] = {}
    for atom in atoms:
        sigma = atom.args[0]
        if sigma.atoms(sp.Heaviside):
            raise ValueError(f"the switching function {sigma} holds a Heaviside factor itself: nested switches "
                             "are not supported (write the pieces as separate factors)")
        canon, flipped = _canonical(sigma)
        key = next((i for i, s in enumerate(sigmas) if sp.expand(s - canon) == 0), None)
        if key is None:
            sigmas.append(canon)
            key = len(sigmas) - 1
        where[atom] = (key, flipped)
    used, names = set(taken), []
    for k in range(len(sigmas)):
        name = f"h_{k + 1}"
        while name in used:
            name += "_"
        used.add(name)
        names.append(name)
    weights = tuple(sp.Symbol(n) for n in names)
    swap = {atom: (1 - weights[k]) if flipped else weights[k] for atom, (k, flipped) in where.items()}
    out = tuple(r.xreplace(swap) for r in rows)
    for i, row in enumerate(out):
        for k, h in enumerate(weights):
            second = sp.diff(row, h, 2)
            if second != 0 and sp.simplify(second) != 0:
                raise ValueError(
                    f"rhs row {i} is not affine in the Heaviside factor H({sigmas[k]}): its Filippov convexification "
                    "f0 + H g is not defined. Write the right-hand side as f0 + H(sigma) g (the factor may multiply "
                    "anything smooth, but may not sit inside another function or a denominator)"
                )
    return tuple(sigmas), weights, out
