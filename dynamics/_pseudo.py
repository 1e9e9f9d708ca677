"""Equilibria of piecewise-smooth (Filippov) flows: regular equilibria of each smooth piece that
lie in its own region, and pseudo-equilibria on the switching surfaces.

For a system that declares ``switching`` (f = f0 + sum_k h_k g_k, h_k = H(sigma_k) off the
surfaces, h_k in [0, 1] on them):

- each smooth piece (every h in {0, 1}^m) is the convexified system at those weights, solved by
  ``equilibria`` (exactly where it is rational once the weights are fixed). A point is kept
  where the signs of sigma(x) select that very piece; the others are *virtual* (they lie in
  another piece's region, where this piece's field does not act) and are dropped, counted in
  ``reason``. A zero of a piece that lies on a surface is a *boundary equilibrium*.
- on each surface sigma_k = 0 (the other weights fixed to the piece their signs select), a
  pseudo-equilibrium is a zero of the sliding vector field f(x; alpha) with sigma_k(x) = 0 and
  the equivalent control alpha in (0, 1): a zero of the n + 1 equations (f(x; alpha),
  sigma_k(x)) in (x, alpha), solved by ``equilibria`` as a system of its own. Its type: normal to
  the surface, attracting sliding where n . g_k < 0 (both fields point at the surface), repelling
  where n . g_k > 0; along it, the Jacobian of the sliding vector field on the surface's tangent
  space. It is stable where the sliding attracts and the tangent Jacobian is stable.

Intersections of two or more surfaces (codimension-2 sliding) are not searched; ``reason`` says
so for a system with several switching functions.
"""

from __future__ import annotations

import itertools
import numpy as np
import sympy as sp

from derivations import DynamicalSystem, ODESystem

from ._filippov import mode_of
from ._stability import Classification
from ._tolerance import FLOAT_RTOL

__all__ = ["MAX_SWITCHES", "SURFACE_RTOL", "classify_piecewise", "piecewise_equilibria"]

MAX_SWITCHES = 6
"""The most switching functions whose 2^m pieces ``equilibria`` enumerates."""

SURFACE_RTOL = 1e-9
"""A point lies on the surface sigma_k = 0 where |sigma_k(x)| <= SURFACE_RTOL * (1 + max |x|);
an equivalent control within SURFACE_RTOL of 0 or 1 is at an end of [0, 1]."""


def _floats(prm: dict) -> dict:
    return {k: np.asarray(float(v) if isinstance(v, sp.Basic) else v, dtype=float) for k, v in prm.items()}


def _sigma(system, x, prm) -> np.ndarray:
    return np.asarray(system.switching.functions(np.asarray(x, dtype=float), _floats(prm)), dtype=float)


def piecewise_equilibria(system: DynamicalSystem, prm: dict, domain, *, n_starts=None, seed: int = 0, starts=None):
    """The equilibria and pseudo-equilibria of a piecewise-smooth flow (see the module docstring).

    Parameters
    ----------
    system : DynamicalSystem
        A flow that declares ``switching``.
    prm : dict
        Checked parameters.
    domain, n_starts, seed, starts
        As ``equilibria`` takes them (passed to each piece's solve).

    Returns
    -------
    EquilibriumSet
        ``points`` with ``piece`` (and ``sliding_weights`` for pseudo-equilibria) set;
        ``method`` "piecewise" with the methods of the pieces.

    Raises
    ------
    ValueError
        More than MAX_SWITCHES switching functions.
    """
    from ._equilibria import EquilibriumSet, equilibria

    sw = system.switching
    m = sw.count
    if m > MAX_SWITCHES:
        raise ValueError(f"equilibria enumerates the 2^m smooth pieces of a piecewise-smooth system for up to "
                         f"{MAX_SWITCHES} switching functions; {system.name or 'this system'} has {m}")
    convex = sw.convex
    points, curves, reasons, methods = [], [], [], []
    complete, virtual = True, 0
    for bits in itertools.product((0, 1), repeat=m):
        weights = {w: sp.Integer(b) for w, b in zip(sw.weights, bits)}
        use = None if (starts is None or convex.is_rational) else starts
        found = equilibria(convex, {**prm, **weights}, domain=domain, n_starts=n_starts, seed=seed, starts=use)
        complete &= found.complete
        methods.append(found.method)
        if found.reason:
            reasons.append(f"piece {_piece_words(bits)}: {found.reason}")
        if found.curves:
            curves.extend(found.curves)
        for e in found.points:
            sig = _sigma(system, e.x, {**prm, **weights})
            tol = SURFACE_RTOL * (1 + float(np.max(np.abs(e.x))))
            side = tuple(0 if abs(s) <= tol else (1 if s > 0 else -1) for s in sig)
            if any(sd != 0 and sd != (1 if b else -1) for sd, b in zip(side, bits)):
                virtual += 1
                continue
            if any(_same(e.x, q.x) for q in points):
                continue
            note = e.note
            if 0 in side:
                note = "; ".join(r for r in (note, (
                    f"a boundary equilibrium: a zero of the piece {_piece_words(bits)} on the switching surface "
                    f"{_surface_words(sw, [k for k, sd in enumerate(side) if sd == 0])}; its type is that piece's "
                    "(the pieces on the other side act nearby as well)")) if r)
            points.append(_with(e, piece=side, note=note))
    if virtual:
        reasons.append(f"{virtual} virtual equilibria of the pieces dropped (each lies in another piece's region)")
    if sw.expressions is None or not isinstance(convex, ODESystem):
        complete = False
        reasons.append("pseudo-equilibria (on the switching surfaces) were not searched: the system gives no "
                       "switching functions as expressions")
    else:
        for k in range(m):
            for bits in itertools.product((0, 1), repeat=m - 1):
                full = list(bits[:k]) + [None] + list(bits[k:])
                for e, why in _pseudo_on(system, prm, domain, k, full, n_starts, seed):
                    if e is None:
                        reasons.append(why)
                        complete = False
                    elif not any(_same(e.x, q.x) for q in points):
                        points.append(e)
        if m > 1:
            reasons.append("points on intersections of two or more switching surfaces are not searched")
            complete = False
    points.sort(key=lambda e: (tuple(e.x),))
    method = "piecewise (" + ", ".join(sorted(set(methods))) + ")"
    return EquilibriumSet(tuple(points), tuple(curves), complete, method, "; ".join(dict.fromkeys(reasons)))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=1e-10, atol=1e-12))


def _piece_words(bits) -> str:
    return "(" + ", ".join("H=1" if b else "H=0" for b in bits) + ")"


def _surface_words(sw, ks) -> str:
    return " and ".join(f"{sp.sstr(sw.expressions[k]) if sw.expressions else f'sigma_{k + 1}'} = 0" for k in ks)


def _with(e, **changes):
    from dataclasses import replace

    return replace(e, **changes)


def _pseudo_on(system, prm, domain, k, full, n_starts, seed):
    """Pseudo-equilibria on surface k with the other weights ``full`` (None at k): yields
    (Equilibrium, "") or (None, why the search did not complete)."""
    from ._equilibria import equilibria

    sw = system.switching
    convex = sw.convex
    taken = set(convex.param_names) | set(convex.state_names)
    name = "alpha"
    while name in taken:
        name += "_"
    alpha = sp.Symbol(name)
    hk = convex.symbols[sw.weights[k]]
    rows = [r.xreplace({hk: alpha}) for r in convex.rhs] + [sw.expressions[k]]
    others = {w: sp.Integer(b) for w, b in zip(sw.weights, full) if b is not None}
    aux = ODESystem(convex.states + (alpha,), tuple(p for p in convex.params if p != hk), rows,
                    state_domain={**convex.state_domain, name: (0, 1)},
                    param_domain={n: d for n, d in convex.param_domain.items() if n != str(hk)})
    found = equilibria(aux, {**prm, **others}, domain=domain, n_starts=n_starts, seed=seed)
    if not found.complete:
        yield None, f"pseudo-equilibria on {_surface_words(sw, [k])}: {found.reason or found.method}"
    if found.curves:
        yield None, f"pseudo-equilibria on {_surface_words(sw, [k])} form curves (not isolated): not reported"
    for e in found.points:
        a = float(e.x[-1])
        if a <= SURFACE_RTOL or a >= 1 - SURFACE_RTOL:
            continue  # a boundary equilibrium: a zero of a piece, reported with it
        x = np.array(e.x[:-1], dtype=float)
        sig = _sigma(system, x, {**prm, **others, sw.weights[k]: 0})
        tol = SURFACE_RTOL * (1 + float(np.max(np.abs(x))))
        side = tuple(0 if j == k else (0 if abs(s) <= tol else (1 if s > 0 else -1)) for j, s in enumerate(sig))
        if any(sd != (1 if b else -1) for j, (sd, b) in enumerate(zip(side, full)) if j != k):
            continue  # in another piece's region, or on an intersection of surfaces
        exact = tuple(e.exact[:-1]) if e.exact is not None else None
        yield _pseudo_point(system, prm, x, k, a, others, side, exact), ""


def _pseudo_point(system, prm, x, k, a, others, side, exact):
    """The Equilibrium of a pseudo-equilibrium x on surface k with equivalent control a."""
    import jax

    from ._equilibria import Equilibrium, _collapse_flags

    sw = system.switching
    mode = mode_of(system, (k,))
    p = _floats({**prm, **others, sw.weights[k]: 0})
    p.update({name: np.asarray(0.0) for pair in mode.offsets for name in pair})
    f = sw.convex.to_jax(checked=False)
    x = np.asarray(x, dtype=float)
    n = np.asarray(jax.grad(lambda z: sw.functions(z, p)[k])(x))
    f0 = np.asarray(f(0.0, x, {**p, sw.weights[k]: np.asarray(0.0)}))
    f1 = np.asarray(f(0.0, x, {**p, sw.weights[k]: np.asarray(1.0)}))
    g = f1 - f0
    normal = float(n @ g)
    J = np.asarray(jax.jacfwd(lambda z: mode.point_field(0.0, z, p)[0])(x))
    _, _, vt = np.linalg.svd(n[None, :])
    T = vt[1:].T
    Jt = T.T @ J @ T
    ev = np.linalg.eigvals(Jt) if Jt.size else np.zeros(0, dtype=complex)
    scale = max(1.0, float(np.max(np.abs(J))) if J.size else 1.0)
    ntol = FLOAT_RTOL * max(1.0, float(np.linalg.norm(n) * np.linalg.norm(g)))
    zero = np.abs(ev.real) <= FLOAT_RTOL * scale
    n_unstable = int(np.sum(ev.real > FLOAT_RTOL * scale))
    if normal < -ntol:
        across, attracting = "attracting sliding", True
    elif normal > ntol:
        across, attracting = "repelling sliding", False
    else:
        across, attracting = "tangential (undecided)", None
    along = _along(ev, zero)
    kind = f"pseudo-equilibrium ({across})" + (f", {along} along the surface" if along else "")
    if attracting is False or n_unstable:
        stable = False
    elif attracting and not zero.any():
        stable = True
    else:
        stable = None
    where = _surface_words(sw, [k])
    verdict = {True: "both point at the surface", False: "both point away from it", None: "undecided"}[attracting]
    reason = (f"a zero of the sliding vector field on {where}, with equivalent control alpha = {a:.10g} in (0, 1): "
              f"grad(sigma) . f is {float(n @ f0):.6g} on the sigma < 0 side and {float(n @ f1):.6g} on the "
              f"sigma > 0 side ({verdict})")
    if ev.size:
        reason += f"; the sliding field's Jacobian along the surface has eigenvalues {np.array2string(ev, precision=6)}"
    else:
        reason += "; the surface is a point of the state space (nothing moves along it)"
    Jt = np.array(Jt, dtype=float)
    Jt.setflags(write=False)
    ev = np.array(ev, dtype=complex)
    ev.setflags(write=False)
    cls = Classification(Jt, ev, kind, stable, attracting is not None and not zero.any(),
                         n_unstable + (1 if attracting is False else 0), reason)
    collapsed, partial = _collapse_flags(system, x, FLOAT_RTOL)
    field = f0 + a * g
    xs = x.copy()
    xs.setflags(write=False)
    return Equilibrium(
        point=dict(zip(system.state_names, map(float, x))), x=xs, classification=cls, jacobian_symbolic=None,
        collapsed=collapsed, partially_collapsed=partial, multiplicity=None,
        residual=float(np.max(np.abs(field))), residual_scale=float(np.max(np.abs(f0) + a * np.abs(g))),
        exact=exact, note=f"pseudo-equilibrium on {where} (alpha = {a:.10g})", piece=side, sliding_weights=(a,),
    )


def _along(ev: np.ndarray, zero: np.ndarray) -> str:
    """The type of the sliding flow along the surface from the tangent eigenvalues."""
    if not ev.size:
        return ""
    if zero.any():
        return "non-hyperbolic"
    complex_ = bool(np.any(np.abs(ev.imag) > 0))
    if np.all(ev.real < 0):
        return "stable focus" if complex_ else "stable node"
    if np.all(ev.real > 0):
        return "unstable focus" if complex_ else "unstable node"
    return "saddle"


def classify_piecewise(system: DynamicalSystem, xs: tuple, prm: dict, *, domain=None, on_curve: bool = False
                       ) -> Classification:
    """The classification of x for a piecewise-smooth system: off the surfaces, that of the piece
    the signs of sigma(x) select; on one surface, that of a pseudo-equilibrium.

    Parameters
    ----------
    system : DynamicalSystem
        A flow that declares ``switching``.
    xs : tuple
        The point (floats or exact SymPy numbers).
    prm : dict
        Checked parameters.
    domain, on_curve
        As ``classify`` takes them (for a point off the surfaces).

    Returns
    -------
    Classification

    Raises
    ------
    ValueError
        x on two or more surfaces, or on a surface where the equivalent control is outside
        [0, 1] (no sliding there, so no pseudo-equilibrium).
    """
    from ._stability import classify

    sw = system.switching
    x = np.array([float(v) for v in xs])
    sig = _sigma(system, x, {**prm, **{w: 0 for w in sw.weights}})
    tol = SURFACE_RTOL * (1 + float(np.max(np.abs(x))))
    side = tuple(0 if abs(s) <= tol else (1 if s > 0 else -1) for s in sig)
    on = [k for k, sd in enumerate(side) if sd == 0]
    weights = {w: sp.Integer(1 if sd > 0 else 0) for w, sd in zip(sw.weights, side)}
    if not on:
        return classify(sw.convex, list(xs) if isinstance(xs[0], sp.Basic) else x, {**prm, **weights},
                        domain=domain, on_curve=on_curve)
    if len(on) > 1:
        raise ValueError(f"x lies on the switching surfaces {_surface_words(sw, on)} at once: points on intersections "
                         "of surfaces are not classified")
    k = on[0]
    others = {w: v for j, (w, v) in enumerate(weights.items()) if j != k}
    mode = mode_of(system, (k,))
    p = _floats({**prm, **others, sw.weights[k]: 0})
    p.update({name: np.asarray(0.0) for pair in mode.offsets for name in pair})
    a = float(mode.alpha(x, p)[0])
    if not (-SURFACE_RTOL <= a <= 1 + SURFACE_RTOL):
        raise ValueError(f"x lies on the switching surface {_surface_words(sw, [k])}, where the equivalent control "
                         f"alpha = {a:.6g} is outside [0, 1]: the flow crosses the surface there (no sliding), so x "
                         "is no pseudo-equilibrium")
    return _pseudo_point(system, prm, x, k, min(max(a, 0.0), 1.0), others, side, None).classification
