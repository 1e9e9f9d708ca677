"""One tolerance policy for every analysis that decides "zero", "equal" or "real".

``equilibria``, ``classify``, ``roots_batch``, ``bifurcation`` and ``regimes`` all decide with
these functions, so two of them never label the same point differently.

The policy, in two sentences: a quantity counts as zero when it is at most a relative
tolerance times its natural scale (never ``== 0``, never an absolute threshold alone), and the
relative tolerance is set by how precisely the point is known: ``HP_RTOL`` for points from
exact elimination held at ``HP_DPS`` digits with exact parameters, ``FLOAT_RTOL`` for points
known only in float64 (Newton, a point typed in by a user). Float parameters are exact binary
numbers but trusted only to ``NEAR_RTOL`` relative: roots that merge under a perturbation of
that size are reported as a near-multiple root (flagged, never dropped, never merged).

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
EQUILIBRIUM_RTOL = 1e-8
"""``classify`` warns when |f(x)| exceeds EQUILIBRIUM_RTOL times the term scale of f at x:
x is then not an equilibrium (float rounding of a true equilibrium leaves ~1e-16)."""

COLLAPSE_TOL = 1e-8
"""Default radius of the ``Collapse`` event: a run has collapsed once every collapse state is
within COLLAPSE_TOL of zero."""
BLOWUP_BOUND = 1e8
"""Default bound of the ``BlowUp`` event: a run has blown up once max |y| reaches it."""
BLOWUP_ESCAPE = 10.0
"""Default escape factor of the ``BlowUp`` event: a run that stops early with max |y| above
BLOWUP_ESCAPE * max(1, max |y0|) is reported as blown up."""
STEADY_TOL = 1e-9
"""Default speed threshold of the ``Steady`` event: a run is steady once max |dy/dt| falls to
it (it must sit above the integration error, about integrate's default atol = 1e-10)."""


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
    from scipy.linalg import matrix_balance

    J = np.asarray(J, dtype=float)
    if J.size == 0 or not np.all(np.isfinite(J)):
        return float(np.linalg.norm(np.nan_to_num(J))) if J.size else 0.0
    B, _ = matrix_balance(J, permute=False)
    return float(np.linalg.norm(B))


def balanced_size(J, sizes) -> float:
    """Frobenius norm of the entry sizes ``sizes`` (sum of |terms| of each Jacobian entry, the
    scale of its rounding noise) under the balancing similarity of J: the noise floor of J's
    eigenvalues, times HP_FLOOR or FLOAT_FLOOR."""
    from scipy.linalg import matrix_balance

    J = np.asarray(J, dtype=float)
    S = np.abs(np.asarray(sizes, dtype=float)).reshape(J.shape)
    if J.size == 0 or not np.all(np.isfinite(J)) or not np.all(np.isfinite(S)):
        return float(np.linalg.norm(np.nan_to_num(S)))
    _, (t, _perm) = matrix_balance(J, permute=False, separate=True)
    return float(np.linalg.norm(S * t[None, :] / t[:, None]))


def zero_eigenvalues(eigenvalues, scale: float, rtol: float, floor: float = 0.0):
    """Boolean mask: eigenvalues whose real part is zero within max(rtol * scale, floor)
    (``scale`` from ``eig_scale``; ``floor`` the rounding noise of the point, see HP_FLOOR);
    with scale == 0 (J = 0) every eigenvalue is zero."""
    ev = np.asarray(eigenvalues)
    return np.abs(ev.real) <= max(rtol * scale, floor)
