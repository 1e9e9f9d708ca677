"""Equilibria of one-state systems at many parameter points at once: batched roots, regime
maps over two parameters, and the regime along a scaling path (shrinking norms).

Every function first restricts a system that declares an invariant ``manifold`` to it
(``system.reduce()``), then needs one state with a rational right-hand side; which root is
"collapsed" comes from the system's ``collapse`` data, never from a name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from derivations import Names, ODESystem, Params

from ._display import html_table
from ._prepare import MAX_BISECTIONS, as_float, check_sweep, label, one_state, read_only
from ._progress import check_progress, progress_bar
from ._tolerance import LEAD_RTOL, LOCATE_RTOL, NEAR_SEPARATION, is_pseudo_root, is_zero, multiple_root_stable
from ._value import Value

__all__ = ["roots_batch", "BatchRoots", "regimes", "Regimes", "REGIMES", "SCALE", "count_labels", "shrinking_norms", "ShrinkingNorms"]

REGIMES = Names.define("REGIMES", {
    "collapse only": "x = 0 is the only stable equilibrium.",
    "bistable": "x = 0 and another equilibrium are both stable.",
    "non-collapsed only": "x = 0 is unstable and another equilibrium is stable.",
    "no stable equilibrium": "trajectories leave every neighbourhood (e.g. finite-time blow-up).",
}, module=__name__, summary="Regime labels of regimes() for a one-state system whose state is a collapse state "
                            "(Regimes.codes index these); a system without collapse states is labelled by its "
                            "number of stable equilibria instead (count_labels).")

def count_labels(n_max: int) -> tuple[str, ...]:
    """Regime labels for a system without collapse states: code k = k stable equilibria."""
    return ("no stable equilibrium",) + tuple(f"{k} stable equilibri{'um' if k == 1 else 'a'}" for k in range(1, n_max + 1))


# -- batched roots -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BatchRoots(Value):
    """Equilibria of a one-state system dx/dt = f(x) = N(x)/D(x) at many parameter points.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    roots : numpy.ndarray
        batch_shape + (degree,) complex roots of the numerator N (from its factors, repeated
        by their multiplicity), sorted by real part, NaN where the degree drops. Roots that
        the near-multiple rule of ``dynamics._tolerance`` merges (a cluster within NEAR_RTOL
        of a multiple root, e.g. the two roots of a float fold) all hold the cluster's mean.
    real : numpy.ndarray of bool
        Mask of the roots that are equilibria: real (imaginary part within the tolerance
        policy, or merged), inside the state's domain, and not a zero of D (a pole or
        removable point is no equilibrium).
    slope : numpy.ndarray
        f'(root) = N'(root)/D(root) (real part); zero within tolerance at a multiple root.
    stable : numpy.ndarray of bool
        Stable equilibria: a root of multiplicity m with f = a_m (x - x*)^m + ..., m odd and
        a_m < 0 (``multiple_root_stable``; for a simple root, slope < 0). A slope or a_m that
        is zero within the tolerance policy, and every even m (semi-stable), is not stable.
    n_real, n_stable : numpy.ndarray of int
        Counts per point: real roots with multiplicity, stable equilibria (a multiple root
        once).
    collapsed : numpy.ndarray of bool
        Mask of the equilibria at x = 0 when the system declares its state a collapse state
        (``system.collapse``); all False otherwise.
    collapsed_stable, noncollapsed_stable : numpy.ndarray of bool
        A collapsed / another equilibrium is stable, per point.
    multiplicity : numpy.ndarray of int
        batch_shape + (degree,): the multiplicity of the (merged) root each entry belongs to.
    """

    roots: np.ndarray
    real: np.ndarray
    slope: np.ndarray
    stable: np.ndarray
    n_real: np.ndarray
    n_stable: np.ndarray
    collapsed_stable: np.ndarray
    noncollapsed_stable: np.ndarray
    collapsed: np.ndarray = None
    multiplicity: np.ndarray = None

    def _counts(self) -> list[tuple[int, int, int]]:
        pairs = np.stack([np.ravel(self.n_real), np.ravel(self.n_stable)], axis=-1)
        found, counts = np.unique(pairs, axis=0, return_counts=True) if pairs.size else (np.zeros((0, 2), int), [])
        return [(int(a), int(b), int(c)) for (a, b), c in zip(found, counts)]

    def __repr__(self) -> str:
        shape = np.shape(self.n_real)
        counts = ", ".join(f"{r} real/{s} stable: {c}" for r, s, c in self._counts()[:6])
        return f"BatchRoots(batch shape {shape}, degree {self.roots.shape[-1]}; points by equilibria {{{counts}}})"

    def _repr_html_(self) -> str:
        shape = np.shape(self.n_real)
        return html_table(f"BatchRoots: {int(np.prod(shape))} parameter points, batch shape {shape}",
                          ("real equilibria", "stable", "parameter points"), self._counts(),
                          [f"degree {self.roots.shape[-1]}; collapsed equilibrium stable at "
                           f"{int(np.sum(self.collapsed_stable))} points, another at {int(np.sum(self.noncollapsed_stable))}"])


@lru_cache(maxsize=64)
def _root_functions(reduced: ODESystem):
    """NumPy functions of the params giving the coefficients (highest first) of N and D in the
    state, and of each factor of N over the parameters (``sympy.factor_list``), with its
    multiplicity. The roots come from the factors: a factor of degree 1 or 2 in closed form,
    a larger one from a smaller companion matrix (the eigenvalues dominate the cost)."""
    x = reduced.states[0]
    num, den = reduced.numerators[0], reduced.denominators[0]
    N = sp.Poly(num, x).all_coeffs()
    D = sp.Poly(den, x).all_coeffs()
    factors = []
    for f, mult in sp.factor_list(sp.expand(num), x)[1]:
        coeffs = sp.Poly(f, x).all_coeffs()
        if len(coeffs) > 1:
            factors.append((sp.lambdify(reduced.params, coeffs, "numpy"), len(coeffs) - 1, mult))
    return sp.lambdify(reduced.params, N, "numpy"), sp.lambdify(reduced.params, D, "numpy"), len(N) - 1, tuple(factors)


def _coefficients(f, vals, B: int) -> np.ndarray:
    """(B, k+1) coefficients of a lambdified coefficient list at B parameter points."""
    return np.stack([np.broadcast_to(np.asarray(c, dtype=float), (B,)) for c in f(*vals)], axis=1)


def _rows(reduce, a: np.ndarray, out_dtype=None) -> np.ndarray:
    """``reduce`` (a binary ufunc) over each row of a (B, k) array, column by column: for a
    few columns much faster than a reduction along the short axis."""
    if a.shape[1] == 0:
        return np.zeros(a.shape[0], dtype=out_dtype or a.dtype)
    out = a[:, 0].astype(out_dtype or a.dtype)
    for j in range(1, a.shape[1]):
        reduce(out, a[:, j], out=out)
    return out


def _poly_roots(C: np.ndarray) -> np.ndarray:
    """(B, k) complex roots of the polynomials with coefficient rows C (highest first); NaN
    where the degree drops. Degree 1 and 2 in closed form (the quadratic without cancellation:
    q = -(b + sign(b) sqrt(b^2 - 4ac))/2, roots q/a and c/q), else companion eigenvalues."""
    B, k = C.shape[0], C.shape[1] - 1
    top = _rows(np.maximum, np.abs(C))
    lead_ok = np.abs(C[:, 0]) > LEAD_RTOL * top
    every = bool(lead_ok.all())
    Cl = C if every else C[lead_ok]
    if k == 1:
        with np.errstate(all="ignore"):
            found = (-Cl[:, 1] / Cl[:, 0])[:, None] + 0j
    elif k == 2:
        a, b, c = (Cl[:, i].astype(complex) for i in range(3))
        sq = np.sqrt(b * b - 4 * a * c)
        q = -0.5 * (b + np.where(b.real >= 0, 1.0, -1.0) * sq)
        with np.errstate(all="ignore"):
            r1 = q / a
            r2 = np.where(q != 0, c / np.where(q != 0, q, 1.0), 0.0)  # q = 0 only when b = c = 0: a double root at 0
        found = np.stack([r1, r2], axis=1)
    else:
        M = np.zeros((len(Cl), k, k))
        np.divide(Cl[:, 1:], Cl[:, :1], out=M[:, 0, :])
        np.negative(M[:, 0, :], out=M[:, 0, :])
        M[:, np.arange(1, k), np.arange(k - 1)] = 1.0
        found = np.linalg.eigvals(M) if len(M) else np.zeros((0, k), complex)
    if every:
        return found.astype(complex, copy=False)
    roots = np.full((B, k), np.nan + 0j)
    roots[lead_ok] = found
    for b in np.flatnonzero(~lead_ok & (top > 0)):  # degenerate leading coefficient: fewer roots
        r = np.roots(C[b])
        roots[b, : len(r)] = r
    return roots


def _polyval(C: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The polynomials with coefficient rows C (B, k+1), highest first, at x (B, j) (Horner)."""
    out = np.zeros(np.broadcast_shapes(C.shape[:1] + (1,), x.shape), dtype=np.result_type(C.dtype, x.dtype))
    if C.shape[1] == 0:
        return out
    out[...] = C[:, :1]
    for k in range(1, C.shape[1]):
        out *= x
        out += C[:, k : k + 1]
    return out


ROOTS_CHUNK = 2**16
"""Parameter points per chunk of ``roots_batch``: bounds its working memory (about 1 KB per point
for a cubic, per chunk in flight) whatever the number of points."""

MIN_THREAD_CHUNK = 2**13
"""Fewest parameter points per chunk worth a thread of its own: ``roots_batch`` runs chunks on
one thread per available core (NumPy's eigenvalue and array loops release the GIL), each of at
least this many points, so small batches stay on the calling thread."""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _term_scale(C: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sum of |terms| of the polynomials with coefficient rows C (B, k+1) at x (B, j): Horner
    on |C| and |x| (every term non-negative, so no cancellation)."""
    return _polyval(np.abs(C), np.abs(x))


def _merge_near_multiple(roots: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The near-multiple rule of ``dynamics._tolerance`` on rows of roots of N (coefficients C):
    roots sorted by real part; neighbours within NEAR_SEPARATION whose midpoint is a pseudo-root
    of N are linked, and each chain becomes its mean (real) with the chain's length as
    multiplicity. Returns (roots, multiplicity, first), ``first`` marking one entry per root."""
    B, k = roots.shape
    order = np.argsort(np.where(np.isfinite(roots), roots.real, np.inf), axis=1, kind="stable")
    r = np.take_along_axis(roots, order, axis=1)
    if k < 2:
        return r, np.ones((B, k), dtype=int), np.ones((B, k), dtype=bool)
    a, b = r[:, :-1], r[:, 1:]
    both = np.isfinite(a) & np.isfinite(b)
    with np.errstate(all="ignore"):
        size = np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
        link = both & (np.abs(a - b) <= NEAR_SEPARATION * size)
    mult, first = np.ones((B, k), dtype=int), np.ones((B, k), dtype=bool)
    rows = np.flatnonzero(_rows(np.logical_or, link))
    if len(rows) == 0:
        return r, mult, first
    a, b, link, Cr, rr = a[rows], b[rows], link[rows], C[rows], r[rows]
    mid = np.where(link, 0.5 * (a.real + b.real), 0.0)
    link &= is_pseudo_root(_polyval(Cr, mid), _term_scale(Cr, mid))
    ids = np.concatenate([np.zeros((len(rows), 1), dtype=int), np.cumsum(~link, axis=1)], axis=1)
    onehot = ids[:, :, None] == np.arange(k)[None, None, :]
    counts = onehot.sum(axis=1)
    sums = np.einsum("bjc,bj->bc", onehot, np.where(np.isfinite(rr), rr.real, 0.0))
    with np.errstate(all="ignore"):
        means = sums / np.maximum(counts, 1)
    m = np.take_along_axis(counts, ids, axis=1)
    r[rows] = np.where(m > 1, np.take_along_axis(means, ids, axis=1) + 0j, rr)
    mult[rows] = m
    first[rows, 1:] = ~link
    return r, mult, first


def _roots_chunk(vals, fN, fD, deg, factors, bounds, collapse):
    """Roots, real/stable/collapsed masks, slopes and multiplicities at one chunk of parameter
    points."""
    from math import comb

    B = len(vals[0]) if vals else 1
    C = _coefficients(fN, vals, B)  # (B, deg+1)
    Dc = _coefficients(fD, vals, B)
    parts = [np.repeat(_poly_roots(_coefficients(f, vals, B)), mult, axis=1) for f, _, mult in factors]
    roots = np.concatenate(parts, axis=1) if parts else np.full((B, 0), np.nan + 0j)
    # A factor whose degree drops leaves NaN; N vanishing identically (a line of equilibria) has
    # no isolated root.
    roots[_rows(np.maximum, np.abs(C)) == 0] = np.nan
    roots, mult, first = _merge_near_multiple(roots, C)
    finite = np.isfinite(roots)
    real = finite & ((mult > 1) | is_zero(roots.imag, scale=np.maximum(1.0, np.abs(np.where(finite, roots, 0)))))
    x = np.where(real, roots.real, 0.0)
    lo, hi = bounds
    real &= (x >= lo) & (x <= hi)
    # Each equilibrium is classified at its own point: a column of its row's coefficients
    # against one value, so complex roots cost nothing here.
    at = np.nonzero(real)
    xr, Dr = x[at][:, None], Dc[at[0]]
    d_at = _polyval(Dr, xr)
    ok = ~is_zero(d_at, scale=_term_scale(Dr, xr))[:, 0]
    if not ok.all():
        at, xr, d_at = (at[0][ok], at[1][ok]), xr[ok], d_at[ok]
        real = np.zeros_like(real)
        real[at] = True
    mr = mult[at]
    with np.errstate(all="ignore"):
        C1 = (C[:, :deg] * np.arange(deg, 0, -1, dtype=float))[at[0]]
        value = (_polyval(C1, xr) / d_at)[:, 0]
        slope = np.zeros_like(x)
        slope[at] = value
        lead, lead_scale = value, (_term_scale(C1, xr) / np.abs(d_at))[:, 0]
        for m in np.unique(mr[mr > 1]):
            # a_m = N^(m)(x)/(m! D(x)): the first non-zero Taylor coefficient at a root of multiplicity m
            sel = np.flatnonzero(mr == m)
            Cm = C[at[0][sel], : deg + 1 - m] * np.array([comb(deg - i, int(m)) for i in range(deg + 1 - m)], dtype=float)
            lead[sel] = (_polyval(Cm, xr[sel]) / d_at[sel])[:, 0]
            lead_scale[sel] = (_term_scale(Cm, xr[sel]) / np.abs(d_at[sel]))[:, 0]
    stable = np.zeros_like(real)
    stable[at] = multiple_root_stable(mr, lead, lead_scale)
    zero = real & is_zero(x, scale=1.0) if collapse else np.zeros_like(real)
    return roots, real, slope, stable, zero, mult, first


def roots_batch(system: ODESystem, params: Params, *, progress: bool = True) -> BatchRoots:
    """All roots of the one-state dx/dt = f(x) at every parameter point at once.

    For any system with one state after restriction to its invariant manifold, whose
    right-hand side is polynomial (or rational, N(x)/D(x)) in the state. ``params`` may hold
    arrays that broadcast; the roots come from the factors of the numerator, in closed form or
    from batched companion matrices. Near-multiple roots follow the one rule of
    ``dynamics._tolerance`` (merged into one multiple root, as ``equilibria`` reports them). Exact enumeration at one point is ``equilibria``; this is for maps
    and sweeps. A system with several states: hold some fixed (``derivations.freeze``) or
    restrict it (``derivations.reduce``) first.

    Parameters
    ----------
    system : ODESystem
    params : mapping parameter name -> float or array (checked by ``system.check_params``)
    progress : bool
        A progress bar on stderr (a terminal only) for maps that take more than a few seconds.
        The points run in chunks of ROOTS_CHUNK, one thread per available core (each chunk
        at least MIN_THREAD_CHUNK points), so memory stays bounded: the results (about
        (5 degree + 4) x 8 bytes per point) plus the working arrays of the chunks in flight.
        The results do not depend on the chunks or threads.

    Returns
    -------
    BatchRoots

    Raises
    ------
    TypeError
        ``system`` is not an ODESystem, ``params`` not a mapping of real numbers.
    ValueError
        Several states or a non-rational right-hand side (the message says what would serve);
        parameter names, non-finite values or values outside ``system.param_domain``.
    """
    reduced = one_state(system, "roots_batch")
    check_progress(progress)
    given = reduced.check_params(params, batch=True)
    vals = [np.asarray(as_float(v), dtype=float) for v in given.values()]
    shape = np.broadcast_shapes(*(v.shape for v in vals)) if vals else ()
    vals = [np.broadcast_to(v, shape).ravel() for v in vals]
    B = int(np.prod(shape, dtype=int))
    fN, fD, deg, factors = _root_functions(reduced)
    lo_hi = reduced.state_bounds()[0]
    collapse = reduced.collapse_indices == (0,)
    roots = np.full((B, deg), np.nan + 0j)
    real, slope, stable, zero = (np.zeros((B, deg), dtype=t) for t in (bool, float, bool, bool))
    mult, first = np.ones((B, deg), dtype=int), np.ones((B, deg), dtype=bool)
    workers = min(_cores(), -(-B // MIN_THREAD_CHUNK))
    size = max(1, min(ROOTS_CHUNK, -(-B // max(1, workers))))

    def run(lo):
        hi = min(B, lo + size)
        out = _roots_chunk([v[lo:hi] for v in vals], fN, fD, deg, factors, lo_hi, collapse)
        for dst, src in zip((roots, real, slope, stable, zero, mult, first), out):
            dst[lo:hi] = src
        return hi - lo

    with progress_bar(B, "roots_batch", progress, unit="pt") as bar:
        if workers <= 1:
            for lo in range(0, B, size):
                bar.update(run(lo))
        else:
            with ThreadPoolExecutor(workers) as pool:
                for done in pool.map(run, range(0, B, size)):
                    bar.update(done)

    def shaped(a, tail=True):
        out = a.reshape(shape + ((deg,) if tail else ()))
        out.flags.writeable = False
        return out

    return BatchRoots(
        roots=shaped(roots),
        real=shaped(real),
        slope=shaped(slope),
        stable=shaped(stable),
        n_real=shaped(_rows(np.add, real, int), False),
        n_stable=shaped(_rows(np.add, stable & first, int), False),
        collapsed_stable=shaped(_rows(np.logical_or, stable & zero), False),
        noncollapsed_stable=shaped(_rows(np.logical_or, stable & ~zero), False),
        collapsed=shaped(zero),
        multiplicity=shaped(mult),
    )


# -- regime maps -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Regimes(Value):
    """A 2-D map of regimes: codes[j, i] indexes ``names`` at (x_values[i], y_values[j]).

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    x, y : str
        The axis names (parameters, or "scale").
    x_values, y_values : numpy.ndarray
        The axis values.
    codes : numpy.ndarray of int
        (len(y_values), len(x_values)) indices into ``names``.
    names : tuple of str
        ``REGIMES`` for a system whose state is a collapse state, else ``count_labels``
        (code k = k stable equilibria).
    """

    x: str
    y: str
    x_values: np.ndarray
    y_values: np.ndarray
    codes: np.ndarray
    names: tuple[str, ...] = REGIMES

    def label(self, i: int, j: int) -> str:
        """The regime at (x_values[i], y_values[j]).

        Parameters
        ----------
        i, j : int
            Indices along x and y.

        Returns
        -------
        str
            ``names[codes[j, i]]``.

        Raises
        ------
        IndexError
            An index outside the grid.
        """
        return self.names[self.codes[j, i]]

    def fractions(self) -> dict[str, float]:
        """The share of the grid in each regime.

        Returns
        -------
        dict of str -> float
            ``{name: fraction}`` for every name (0 for regimes absent from the map).
        """
        return {n: float(np.mean(self.codes == k)) for k, n in enumerate(self.names)}

    def _span(self, values: np.ndarray) -> str:
        return f"[{values[0]:.4g}, {values[-1]:.4g}]" if len(values) else "[]"

    def __repr__(self) -> str:
        shares = ", ".join(f"{n}: {f:.3g}" for n, f in self.fractions().items() if f > 0)
        return (f"Regimes({self.x} in {self._span(self.x_values)} x {self.y} in {self._span(self.y_values)}, "
                f"grid {self.codes.shape[1]}x{self.codes.shape[0]}; {{{shares}}})")

    def _repr_html_(self) -> str:
        return html_table(f"Regimes over {self.x} and {self.y}", ("regime", "fraction of the grid"),
                          [(n, f) for n, f in self.fractions().items() if f > 0],
                          [f"{self.x} in {self._span(self.x_values)}, {self.y} in {self._span(self.y_values)}, "
                           f"grid {self.codes.shape[1]} x {self.codes.shape[0]}"])


def _codes(reduced: ODESystem, r: BatchRoots) -> tuple[np.ndarray, tuple[str, ...]]:
    if reduced.collapse_indices == (0,):
        codes = np.full(r.n_real.shape, 3)
        codes[r.collapsed_stable & ~r.noncollapsed_stable] = 0
        codes[r.collapsed_stable & r.noncollapsed_stable] = 1
        codes[~r.collapsed_stable & r.noncollapsed_stable] = 2
        return codes, REGIMES
    deg = r.roots.shape[-1]
    return np.asarray(r.n_stable).copy(), count_labels(deg)


def _scaling(reduced: ODESystem, system: ODESystem, scaling: Mapping[str, Any] | None, what: str) -> dict[str, float]:
    if scaling is None:
        scaling = system.scaling
    if scaling is None:
        raise ValueError(
            f"{what} needs scaling weights {{name: power}} (how parameters scale with the overall scale lambda); "
            f"{label(system)} declares none (system.scaling is None: its loss is not scale invariant, unlike the "
            "cosine loss). Pass scaling={name: power}"
        )
    if not isinstance(scaling, Mapping):
        raise TypeError(f"scaling must be a dict {{name: power}}; got {type(scaling).__name__}")
    names = set(reduced.param_names) | set(reduced.state_names)
    eliminated = set(system.state_names) - set(reduced.state_names)
    out = {}
    for k, w in scaling.items():
        if str(k) in eliminated:
            continue  # a state eliminated by the manifold restriction
        if str(k) not in names:
            raise ValueError(f"scaling names {str(k)!r}, which is neither a parameter nor a state; "
                             f"allowed: {sorted(names)}")
        if isinstance(w, bool) or not np.isfinite(float(w)):
            raise ValueError(f"scaling[{str(k)!r}] must be a finite number; got {w!r}")
        out[str(k)] = float(w)
    return out


class _Scale:
    """The overall scale lambda of a scale-invariant system as an axis of ``regimes``:
    ``regimes(system, (SCALE, lam), ("eta", etas), params)``. Not a parameter name, so no name
    is reserved; its label is "scale"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SCALE"

    def __str__(self) -> str:
        return "scale"

    def __reduce__(self) -> str:
        return "SCALE"


SCALE = _Scale()
"""The overall-scale axis of ``regimes`` (see ``_Scale``)."""


def _axis(sweep: Any, what: str, names: tuple[str, ...]) -> tuple[Any, np.ndarray]:
    """(name or SCALE, values) of a regimes axis, checked as every sweep is."""
    if isinstance(sweep, tuple) and len(sweep) == 2 and sweep[0] is SCALE:
        return SCALE, check_sweep(("scale", sweep[1]), what)[1]
    return check_sweep(sweep, what, names)


def regimes(system: ODESystem, x_sweep: tuple[str, Sequence[float]], y_sweep: tuple[str, Sequence[float]],
            params: Params, *, scaling: Mapping[str, float] | None = None,
            progress: bool = True) -> Regimes:
    """Label every (x, y) parameter point by the equilibrium structure of a one-state system
    (after restriction to its invariant manifold), from batched roots (``roots_batch``).

    Labels: for a system whose state is a collapse state (``system.collapse``, the root at 0
    is the collapsed one), ``REGIMES`` (collapse only / bistable / non-collapsed only / no
    stable equilibrium); otherwise the number of stable equilibria (``count_labels``).

    The axis ``SCALE`` (in place of a parameter name) is an overall scale lambda: every
    parameter ``name`` in the scaling weights is multiplied by lambda**power, from its value in
    ``params`` at lambda = 1.
    The weights are ``scaling`` or, by default, ``system.scaling`` (the cosine eigenmode
    system: N_psi ~ lambda^2, N_phi ~ lambda, T ~ lambda^3; see ``shrinking_norms``).

    Parameters
    ----------
    system : ODESystem
    x_sweep, y_sweep : (parameter name or ``SCALE``, 1-D values)
        The sweeps along the horizontal and the vertical axis.
    params : the other parameters
    scaling : mapping name -> power, optional
    progress : bool
        A progress bar for large maps (as ``roots_batch``).

    Returns
    -------
    Regimes
        The codes on the grid (y along rows, x along columns) and their names.

    Raises
    ------
    TypeError / ValueError
        As ``roots_batch``; unknown or equal axis names, empty axes, ``SCALE`` without scaling
        weights or with values <= 0.
    """
    reduced = one_state(system, "regimes")
    xn, xv = _axis(x_sweep, "x_sweep", reduced.param_names)
    yn, yv = _axis(y_sweep, "y_sweep", reduced.param_names)
    if xn == yn:
        raise ValueError("x_sweep and y_sweep must name different parameters")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")
    grid = {str(k): v for k, v in params.items() if str(k) not in (xn, yn)}
    X, Y = np.meshgrid(xv, yv)
    grid[xn], grid[yn] = X, Y
    if SCALE in grid:
        weights = _scaling(reduced, system, scaling, "the SCALE axis of regimes")
        lam = grid.pop(SCALE)
        if np.any(lam <= 0) or not np.all(np.isfinite(lam)):
            raise ValueError("scale values must be finite and > 0")
        for name, w in weights.items():
            if name in reduced.param_names:
                if name not in grid:
                    raise ValueError(f"params: missing {[name]} (scaled along the SCALE axis)")
                grid[name] = np.asarray(as_float(grid[name]), dtype=float) * lam**w
    r = roots_batch(reduced, grid, progress=progress)
    codes, names = _codes(reduced, r)
    return Regimes(str(xn), str(yn), read_only(xv), read_only(yv), read_only(codes, int), names)


# -- the regime along a scaling path ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ShrinkingNorms(Value):
    """Regimes of a one-state system along the path lambda(t) = exp(-rate t) of its scale.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    t : numpy.ndarray
        The times.
    scale : numpy.ndarray
        lambda(t).
    codes : numpy.ndarray of int
        Index into ``names`` at each time.
    p_stable : numpy.ndarray
        The largest stable non-collapsed equilibrium in the rescaled state x / lambda^w (w the
        state's scaling weight, 0 if it has none); NaN where there is none.
    has_stable : numpy.ndarray of bool
        Where a stable non-collapsed equilibrium exists.
    t_emerge : float or None
        First time such an equilibrium exists (bisection to LOCATE_RTOL relative), None if never
        within ``t``; t[0] if it exists from the start.
    names : tuple of str
        The regime names ``codes`` index.
    """

    t: np.ndarray
    scale: np.ndarray
    codes: np.ndarray
    p_stable: np.ndarray
    has_stable: np.ndarray
    t_emerge: float | None
    names: tuple[str, ...] = REGIMES

    def __repr__(self) -> str:
        emerge = "never" if self.t_emerge is None else f"{self.t_emerge:.6g}"
        span = f"[{self.t[0]:g}, {self.t[-1]:g}]" if len(self.t) else "[]"
        return (f"ShrinkingNorms(t in {span} ({len(self.t)} times), scale {self.scale[-1]:.3g} at the end, "
                f"stable non-collapsed equilibrium emerges at t = {emerge})")


def shrinking_norms(system: ODESystem, t_eval: Sequence[float], params: Params, *,
                    scaling: Mapping[str, float] | None = None, rate: str | float | None = None) -> ShrinkingNorms:
    """How the regime of a one-state system moves as its overall scale shrinks.

    For a scale-invariant loss (cosine) weight decay shrinks the network uniformly:
    lambda = exp(-rate t) with rate the weight decay eta, and every parameter in the scaling
    weights follows lambda**power (for the cosine mode N_psi ~ lambda^2, N_phi ~ lambda,
    T ~ lambda^3, the state p ~ lambda; ``params`` gives the values at t = 0). In p / lambda
    the equilibria are those of the t = 0 mode with eta replaced by eta lambda^2: the
    effective regularisation weakens, and once it falls below the fold a stable non-collapsed
    equilibrium exists (Bao 2023: "a stable equilibrium dynamically emerges").

    Parameters
    ----------
    system : ODESystem (one state after restriction to its manifold)
    t_eval : 1-D strictly increasing finite times at which the regime is evaluated
    params : the parameters at t = 0
    scaling : mapping name -> power, optional (default ``system.scaling``)
    rate : parameter name or number, optional
        The decay rate of lambda; default the system's weight-decay parameter
        (``system.weight_decay``, "eta" for the derived eigenmode systems).

    Returns
    -------
    ShrinkingNorms
        The regime, scale and stable equilibrium at every time, and when it emerges.

    Raises
    ------
    ValueError
        No scaling weights (``system.scaling`` is None, e.g. the Euclidean loss, and none
        passed); bad ``t_eval`` or ``rate``; the checks of ``roots_batch``.
    """
    reduced = one_state(system, "shrinking_norms")
    weights = _scaling(reduced, system, scaling, "shrinking_norms")
    prm = reduced.check_params(params)
    if rate is None:
        rate = system.weight_decay
        if rate is None:
            raise ValueError(f"{label(system)} declares no weight-decay parameter; pass rate= (a parameter name or a number)")
    if isinstance(rate, str):
        if rate not in prm:
            raise ValueError(f"rate={rate!r} is not a parameter of {label(system)}; pass a parameter name or a number")
        k = float(as_float(prm[rate]))
    elif isinstance(rate, (int, float, np.floating, np.integer)) and not isinstance(rate, bool) and np.isfinite(rate):
        k = float(rate)
    else:
        raise ValueError(f"rate must be a parameter name or a finite number; got {rate!r}")
    try:
        t = np.asarray(t_eval, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"t_eval must be a 1-D array of times; got {t_eval!r:.60}") from None
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError("t_eval must be a non-empty, finite, strictly increasing 1-D array")
    w_state = weights.get(reduced.state_names[0], 0.0)

    def at(times):
        lam = np.exp(-k * np.asarray(times, dtype=float))
        grid = {n: np.broadcast_to(float(as_float(v)) * (lam ** weights[n] if n in weights else 1.0), lam.shape)
                for n, v in prm.items()}
        return lam, roots_batch(reduced, grid)

    lam, r = at(t)
    codes, names = _codes(reduced, r)
    cand = np.where(r.stable & ~r.collapsed, r.roots.real, -np.inf)
    best = cand.max(axis=-1) if cand.shape[-1] else np.full(t.shape, -np.inf)
    has = np.isfinite(best)
    p_hat = np.where(has, best / lam**w_state, np.nan)
    t_emerge = None
    if has.any():
        i = int(np.argmax(has))
        if i == 0:
            t_emerge = float(t[0])
        else:
            lo, hi = float(t[i - 1]), float(t[i])
            for _ in range(MAX_BISECTIONS):
                if hi - lo <= LOCATE_RTOL * max(1.0, abs(hi)):
                    break
                mid = 0.5 * (lo + hi)
                rr = at(np.array([mid]))[1]
                if bool((rr.stable & ~rr.collapsed).any()):
                    hi = mid
                else:
                    lo = mid
            t_emerge = float(0.5 * (lo + hi))
    return ShrinkingNorms(read_only(t), read_only(lam), read_only(codes, int), read_only(p_hat),
                          read_only(has, bool), t_emerge, names)
