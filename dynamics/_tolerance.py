"""One tolerance policy for every analysis that decides "zero", "equal" or "real".

``equilibria``, ``classify``, ``roots_batch``, ``bifurcation`` and ``regimes`` all decide with
these functions, so two of them never label the same point differently.

The policy, in two sentences: a quantity counts as zero when it is at most a relative
tolerance times its natural scale (never ``== 0``, never an absolute threshold alone), and the
relative tolerance is set by how precisely the point is known: ``HP_RTOL`` for points from
exact elimination held at ``HP_DPS`` digits with exact parameters, ``FLOAT_RTOL`` for points
known only in float64 (Newton, a point typed in by a user). Float parameters are exact binary
numbers but trusted only to ``NEAR_RTOL`` relative: roots that merge under a perturbation of
that size are one multiple root (the near-multiple rule below).

The near-multiple rule (``equilibria``, ``roots_batch`` and ``regimes`` all follow it, so a
point at a float fold gets one label): at float parameters, two roots x1, x2 of the right-hand
side (adjacent real roots, a real root and a complex one, or a complex pair, each within
``NEAR_SEPARATION`` relative of the other) are *linked* when their midpoint is a pseudo-root
(``is_pseudo_root``: every equation there is within ``NEAR_RTOL`` of its term scale, i.e. a
relative change of the coefficients by NEAR_RTOL makes the midpoint an exact multiple root).
Chains of linked roots merge into one equilibrium at their mean whose multiplicity is the sum
of theirs, and it is classified as the multiple root it is within the trust in the parameters:
by the first non-zero Taylor coefficient a_m of the flow there (on the centre manifold in
several states; in one state m is the multiplicity). Odd m: stable iff a_m < 0; even m:
semi-stable, never stable (``multiple_root_stable``). Example, the Euclidean SimSiam cubic
dp/dt = -p (c p^2 - p + eta) at eta = 1/(4c): exactly, -c p (p - 1/(2c))^2, a double root at
p = 1/(2c), semi-stable; in floats the discriminant 1 - 4 c eta is a few ulp, the two roots
split by ~1e-8 (or into a complex pair), and the rule gives back the double root, semi-stable.
Exact (SymPy) parameters are trusted fully: their roots are never merged.

Natural scales: for eigenvalues, the norm of the *balanced* Jacobian (``eig_scale``; a diagonal
similarity, ``scipy.linalg.matrix_balance``, so that a badly scaled but well conditioned
Jacobian, e.g. eigenvalues -1013.6 and -0.1 with entries of 1e9, is judged on its spectrum and
not on its largest entry); for a residual f(x), the largest sum of |terms| of a row of f at x
(what rounding of x alone leaves).

It also holds the default thresholds of the terminating events of ``integrate``
(``COLLAPSE_TOL``, ``BLOWUP_BOUND``, ``BLOWUP_ESCAPE``, ``STEADY_TOL``): the event objects
``Collapse``, ``BlowUp`` and ``Steady`` take them as defaults, and the event names "collapse",
"blow_up", "steady" stand for those objects with these defaults.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NEAR_SEPARATION", "COARSE_RTOL", "LOCATE_RTOL", "FLOAT_ZERO", "LEAD_RTOL", "SINGULAR_COND", "COLLISION_RTOL",
    "FLOAT_RANGE", "NEWTON_ATOL", "NEWTON_RTOL", "NEWTON_STOP", "CONTINUATION_RTOL", "CONTINUATION_JUMP",
    "TEST_NOISE", "CRITICAL_RTOL", "RANGE_SLACK", "SAME_BRANCH_RTOL", "MERGE_RTOL",
    "is_pseudo_root", "multiple_root_stable",
    "RTOL", "ATOL", "MIN_TOL", "HP_DPS", "HP_RTOL", "FLOAT_RTOL", "NEAR_RTOL", "HP_FLOOR", "FLOAT_FLOOR",
    "EQUILIBRIUM_RTOL", "COLLAPSE_TOL", "BLOWUP_BOUND", "BLOWUP_ESCAPE", "STEADY_TOL",
    "check_tol", "is_zero", "same_point", "eig_scale", "balanced_size", "zero_eigenvalues",
]

RTOL = 1e-9
"""Relative tolerance: two numbers agree, or a number counts as zero, within RTOL * scale."""
ATOL = 1e-12
"""Absolute floor under RTOL * scale, for quantities whose natural scale is itself zero."""
MIN_TOL = 1e2 * np.finfo(float).eps
"""The smallest relative tolerance an iterative refinement may be asked for: below it
double precision cannot tell the iterates apart, and a loop would never end."""

HP_DPS = 50
"""Decimal digits of the high-precision stage (back-substitution, Jacobians, eigenvalues and
centre-manifold series at exact equilibria), always in a local ``mpmath.workdps`` context."""
HP_RTOL = 1e-15
"""Zero at high precision: |q| <= HP_RTOL * scale. Points are known to ~1e-45 relative, so a
zero eigenvalue of a Jordan block of size 2 (3) is computed as ~1e-23 (~1e-15) of the scale;
any genuinely non-zero eigenvalue of a model is far above 1e-15 of the spectral scale."""
FLOAT_RTOL = 1e-8
"""Zero for a point known in float64 only, relative to the balanced scale: a simple eigenvalue
is then known to ~eps * scale, so 1e-8 leaves a wide margin (e.g. -0.1 next to -8.3e5 is
decided). Limitation: a double zero eigenvalue (Jordan block) can split by ~sqrt(eps) under
rounding of a float point and then reads as non-zero; exact parameters avoid this."""
NEAR_RTOL = 1e-12
"""Trust in float parameters: roots x1, x2 (adjacent real roots, or a complex pair) form a
near-multiple root when the polynomial at their midpoint is within NEAR_RTOL of its term
scale, i.e. a relative perturbation of the coefficients by NEAR_RTOL (4500 eps: parameters
computed in a few float operations, e.g. eta = 1/(4c)) merges them."""
HP_FLOOR = 1e-35
"""Rounding floor at high precision: a quantity below HP_FLOOR times the size of the terms it
is computed from (e.g. sum |terms| of the Jacobian's entries) is noise of the 50-digit point,
even when every eigenvalue is that small (J = 0 up to rounding)."""
FLOAT_FLOOR = 1e-13
"""The same floor for float64 points (~500 eps)."""
NEAR_SEPARATION = 1e-4
"""Candidates for the near-multiple rule: two roots whose distance (for a complex root: its
distance to the real root or to its conjugate) is at most NEAR_SEPARATION times
max(1, |root|). A perturbation of the coefficients by NEAR_RTOL splits a root of multiplicity
m by ~NEAR_RTOL^(1/m) (1e-6 for m = 2, 1e-4 for m = 3), so no cluster the rule merges is
missed; the pseudo-root test (``is_pseudo_root``) decides."""
COARSE_RTOL = 1e-6
"""Zero (or equal) for quantities computed by finite differences or at points located by a
one-dimensional search in float64 (normal-form coefficients and eigenvalue crossings of
``bifurcation``), and for the eigenvalues of systems served numerically (autodiff through the
exact flow's quadrature is as accurate as the quadrature, ~1e-8 relative at the cheaper grids):
their error is up to ~sqrt(eps) relative, so 1e-6 of the natural scale (for those eigenvalues,
the norm of the whole Jacobian) is the smallest threshold they meet reliably."""
LOCATE_RTOL = 1e-10
"""Relative precision to which a parameter value or a time is located by bisection (a
bifurcation point, the time a stable equilibrium emerges)."""
FLOAT_ZERO = 1e-12
"""A float64 coordinate counts as zero (a collapse state of a point from Newton) or as lying on
a domain bound when it is within FLOAT_ZERO of the point's size (at least 1): ~4500 eps, what
rounding or a converged Newton iteration leaves of an exact zero."""
LEAD_RTOL = 1e-14
"""A polynomial's degree drops when its leading coefficient is at most LEAD_RTOL times its
largest coefficient (~45 eps: rounding of a coefficient that cancels exactly)."""
SINGULAR_COND = 1e12
"""A float64 Jacobian with condition number above SINGULAR_COND counts as singular (a
continuation step through it is not trusted): a linear solve then loses more than 12 of the
16 digits."""
COLLISION_RTOL = 1e-4
"""Two equilibria that a golden-section search (parameter located to ~sqrt(eps)) brings within
COLLISION_RTOL relative of each other have collided: at a fold they separate like
sqrt(|v - v*|) ~ eps^(1/4) ~ 1e-4."""
FLOAT_RANGE = 1e300
"""Coordinates beyond FLOAT_RANGE in size are outside what float64 arithmetic on them can
represent (squares overflow): such equilibria are counted, not reported as points."""
NEWTON_ATOL = 1e-10
"""Multi-start Newton (non-rational systems) accepts an end point as an equilibrium when
max |f| <= NEWTON_ATOL: an absolute test, because those right-hand sides give no term scale;
a relative check follows in ``classify`` (EQUILIBRIUM_RTOL)."""
NEWTON_RTOL = 1e-7
"""Two end points of multi-start Newton are one equilibrium when they agree within NEWTON_RTOL
relative (and RTOL absolute): Newton converges to ~sqrt(eps) at a multiple root."""
NEWTON_STOP = {"residual": 1e-13, "step": 1e-14}
"""Batched Newton stops a start once max |f| <= NEWTON_STOP["residual"] (well inside
NEWTON_ATOL, so that the acceptance test has room) or its step is below NEWTON_STOP["step"]
relative to the point (converged to rounding)."""
CONTINUATION_RTOL = 1e-4
"""Continuation: two continued points closer than CONTINUATION_RTOL (relative) are the same
equilibrium (a branch reached from both ends of the sweep is followed once); a point's linear
accuracy along a branch is ~NEWTON_RTOL, and branches that far apart are distinct."""
CONTINUATION_JUMP = 0.25
"""Continuation: a corrected point farther than CONTINUATION_JUMP (relative to the previous
point's size) from the previous point has jumped to another branch; the step is refused."""

# -- pseudo-arclength continuation (continue_equilibrium, continue_curve, continue_cycle) ----------

TEST_NOISE = 1e-9
"""Relative size below which a test function's factor (an eigenvalue sum, a singular value of
the bordered Jacobian) counts as rounding noise when deciding sign changes between curve points."""

CRITICAL_RTOL = 1e-5
"""How close, relative to the spectrum's scale, a located point's critical eigenvalue or
multiplier must be to its critical value (an imaginary pair, -1, the unit circle) to be named
by its test function; farther, the sign change was of another kind (a neutral saddle)."""

RANGE_SLACK = 1e-12
"""Relative slack of a continuation range's ends: a start on an end is inside it."""

SAME_BRANCH_RTOL = 1e-3
"""Relative distance from a branch's polyline within which a start lies on that branch."""

MERGE_RTOL = 1e-2
"""Relative distance within which branch points (and folds next to them) located on several
branches of one diagram are one point."""

EQUILIBRIUM_RTOL = 1e-8
"""``classify`` warns when |f(x)| exceeds EQUILIBRIUM_RTOL times the term scale of f at x:
x is then not an equilibrium (float rounding of a true equilibrium leaves ~1e-16)."""

COLLAPSE_TOL = 1e-8
"""Default radius of the ``Collapse`` event: a run has collapsed once every collapse state is
within COLLAPSE_TOL of zero (an absolute size: collapse states start at order one)."""
BLOWUP_BOUND = 1e8
"""Default bound of the ``BlowUp`` event: a run has blown up once max |y| reaches it."""
BLOWUP_ESCAPE = 10.0
"""Default escape factor of the ``BlowUp`` event: a run that stops early with max |y| above
BLOWUP_ESCAPE * max(1, max |y0|) is reported as blown up."""
STEADY_TOL = 1e-9
"""Default speed threshold of the ``Steady`` event: a run is steady once max |dy/dt| falls to
it (it must sit above the integration error, about atol = 1e-10)."""


def check_tol(value, name: str = "tol") -> float:
    """``value`` as a float relative tolerance; raises ValueError unless finite and at least
    MIN_TOL (a smaller one cannot be met in double precision)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number >= {MIN_TOL:.1e}; got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < MIN_TOL:
        raise ValueError(f"{name} must be a finite number >= {MIN_TOL:.1e} (double precision); got {value!r}")
    return v


def is_zero(value, scale=1.0, rtol: float = RTOL, atol: float = ATOL):
    """|value| <= atol + rtol * |scale|, elementwise."""
    return np.abs(value) <= atol + rtol * np.abs(scale)


def same_point(x, y, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """True where the points x and y agree in every coordinate within the policy."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return bool(np.all(np.abs(x - y) <= atol + rtol * np.maximum(np.abs(x), np.abs(y))))


def eig_scale(J) -> float:
    """The natural scale of the eigenvalues of J: the Frobenius norm of the balanced matrix
    D^-1 J D (``scipy.linalg.matrix_balance``, powers of two, no permutation). It is at least
    the spectral radius and, unlike ||J||, does not grow when states are measured in badly
    matched units. 0.0 for J = 0."""
    J = np.asarray(J, dtype=float)
    if J.size == 0 or not np.all(np.isfinite(J)):
        return float(np.linalg.norm(np.nan_to_num(J))) if J.size else 0.0
    B, _ = _balance(J)
    return float(np.linalg.norm(B))


def balanced_size(J, sizes) -> float:
    """Frobenius norm of the entry sizes ``sizes`` (sum of |terms| of each Jacobian entry, the
    scale of its rounding noise) under the balancing similarity of J, or without it when that
    is smaller (every diagonal similarity bounds the eigenvalues' noise alike; balancing
    against an entry that is itself rounding noise, e.g. 1e-46 next to 0.5, would inflate it):
    the noise floor of J's eigenvalues, times HP_FLOOR or FLOAT_FLOOR."""
    J = np.asarray(J, dtype=float)
    S = np.abs(np.asarray(sizes, dtype=float)).reshape(J.shape)
    if J.size == 0 or not np.all(np.isfinite(J)) or not np.all(np.isfinite(S)):
        return float(np.linalg.norm(np.nan_to_num(S)))
    _, (t, _perm) = _balance(J, separate=True)
    return min(float(np.linalg.norm(S)), float(np.linalg.norm(S * t[None, :] / t[:, None])))


def _balance(J: np.ndarray, separate: bool = False):
    """``scipy.linalg.matrix_balance`` without permutation; its RuntimeWarning about the unused
    permutation array (a cast of NaN) is SciPy's own and not the caller's business."""
    import warnings

    from scipy.linalg import matrix_balance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return matrix_balance(J, permute=False, separate=separate)


def zero_eigenvalues(eigenvalues, scale: float, rtol: float, floor: float = 0.0):
    """Boolean mask: eigenvalues whose real part is zero within max(rtol * scale, floor)
    (``scale`` from ``eig_scale``; ``floor`` the rounding noise of the point, see HP_FLOOR);
    with scale == 0 (J = 0) every eigenvalue is zero."""
    ev = np.asarray(eigenvalues)
    return np.abs(ev.real) <= max(rtol * scale, floor)


def is_pseudo_root(value, scale):
    """The near-multiple test: |value| <= NEAR_RTOL * |scale| (``value`` an equation at a point,
    ``scale`` its sum of |terms| there), elementwise for arrays. True means a relative change of
    the coefficients by NEAR_RTOL makes the point a root (see the near-multiple rule above)."""
    if isinstance(value, np.ndarray) or isinstance(scale, np.ndarray):
        return np.abs(value) <= NEAR_RTOL * np.abs(scale)
    return abs(value) <= NEAR_RTOL * abs(scale)


def multiple_root_stable(multiplicity, leading, scale, rtol: float = RTOL):
    """Stability of a root of multiplicity m of a one-state flow dx/dt = a_m (x - x*)^m + ...:
    True where m is odd and a_m < 0 (a_m not zero within rtol * scale); an even m is
    semi-stable, never stable. Elementwise for arrays."""
    m = np.asarray(multiplicity)
    a = np.asarray(leading)
    return (m % 2 == 1) & (a < 0) & ~is_zero(a, scale=scale, rtol=rtol)
