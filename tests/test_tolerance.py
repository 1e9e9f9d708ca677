"""The one tolerance policy: every analysis decides near-multiple roots by the same rule, so
``equilibria``, ``roots_batch`` and ``regimes`` never label the same point differently.

References: closed forms of the Euclidean SimSiam cubic dp/dt = -p (c p^2 - p + eta) and its
roots at 50 digits (mpmath) for the exact binary values of the float parameters."""

import mpmath
import numpy as np
import pytest

from derivations import ModelSpec, derive
from dynamics import equilibria, regimes, roots_batch
from dynamics import _tolerance as tol

C = 1 + 0.3
FOLD = {"sigma2": 0.3, "eta": 1 / (4 * C), "alpha_p": 1.0}


def _binary_roots(eta: float):
    """The non-zero roots of -eta + p - c p^2 at the exact binary parameters, 50 digits."""
    with mpmath.workdps(50):
        c = mpmath.mpf(1) + mpmath.mpf(0.3)
        return [complex(r) for r in mpmath.polyroots([-c, 1, -mpmath.mpf(eta)], extraprec=200)]


@pytest.mark.parametrize("reduced", [True, False], ids=["reduced", "full"])
def test_float_fold_one_rule_everywhere(reduced):
    """At eta = 1/(4c) exactly, f = -c p (p - 1/(2c))^2: p = 0 stable, p = 1/(2c) a double root,
    semi-stable (f <= 0 on both sides). In floats the two roots are ~5.7e-9 apart (mpmath);
    they merge under NEAR_RTOL, so every analysis reports the double root, semi-stable, and the
    regime "collapse only"."""
    roots = _binary_roots(FOLD["eta"])
    assert all(abs(r.imag) < 1e-40 for r in roots) and 1e-9 < abs(roots[0] - roots[1]) < 1e-8
    system = derive(ModelSpec("euclidean", "simsiam"))
    system = system.reduce() if reduced else system
    eqs = equilibria(system, FOLD)
    assert [e.collapsed for e in eqs] == [True, False]
    zero, fold = eqs
    assert zero.stable is True
    assert fold.multiplicity == 2 and fold.near_multiple and "near-multiple" in fold.note
    assert fold.kind == "semi-stable" and fold.stable is False
    assert abs(fold.point["p"] - 1 / (2 * C)) < 1e-8
    assert fold.residual <= 1e-15
    r = roots_batch(system, FOLD, progress=False)
    merged = r.real & ~r.collapsed
    assert int(merged.sum()) == 2 and np.all(r.multiplicity[merged] == 2)
    np.testing.assert_allclose(r.roots.real[merged], fold.point["p"], rtol=0, atol=1e-12)
    assert int(r.n_stable) == len(eqs.stable) == 1
    assert bool(r.collapsed_stable) and not bool(r.noncollapsed_stable)
    m = regimes(system, ("eta", [FOLD["eta"]]), ("sigma2", [FOLD["sigma2"]]), {"alpha_p": 1.0}, progress=False)
    assert m.label(0, 0) == "collapse only"


@pytest.mark.parametrize("rel", [-1e-6, -1e-9, -1e-14, 0.0, 1e-14, 1e-9, 1e-6])
def test_equilibria_and_roots_batch_agree_across_the_fold(rel):
    """eta = (1 + rel)/(4c): far from the fold (|rel| >= 1e-9) two simple roots (below) or none
    (above), as the closed form (1 +- sqrt(1 - 4 c eta))/(2c) says; within NEAR_RTOL of it
    (|rel| <= 1e-14) one semi-stable double root. Both analyses give the same stable count and
    the same non-collapsed roots."""
    eta = (1 + rel) / (4 * C)
    params = {**FOLD, "eta": eta}
    system = derive(ModelSpec("euclidean", "simsiam")).reduce()
    eqs = equilibria(system, params)
    r = roots_batch(system, params, progress=False)
    found = sorted(e.point["p"] for e in eqs if not e.collapsed)
    batch = sorted(set(np.round(r.roots.real[r.real & ~r.collapsed], 14)))
    assert int(r.n_stable) == len(eqs.stable)
    np.testing.assert_allclose(batch, found, rtol=0, atol=1e-12)
    disc = 1 - 4 * C * eta
    if abs(rel) >= 1e-9:
        expect = [] if disc < 0 else sorted([(1 - np.sqrt(disc)) / (2 * C), (1 + np.sqrt(disc)) / (2 * C)])
        np.testing.assert_allclose(found, expect, rtol=1e-6)
        assert [e.stable for e in eqs if not e.collapsed] == [False, True][: len(expect)]
    else:
        assert len(found) == 1 and [e.kind for e in eqs if not e.collapsed] == ["semi-stable"]
        assert abs(found[0] - 1 / (2 * C)) < 1e-6


def test_triple_root_is_stable_in_both():
    """x' = -(x - a)^3: a stable triple root (odd multiplicity, a_3 = -1 < 0), exactly and after
    a relative perturbation of 1e-14 that splits it into three close roots."""
    from derivations import ODESystem

    system = ODESystem.from_equations({"x": "-(x - a)**3 + e*(x - a)"}, params=("a", "e"))
    for e in (0.0, 1e-14):
        params = {"a": 0.7, "e": e}
        eqs = equilibria(system, params)
        r = roots_batch(system, params, progress=False)
        assert len(eqs) == 1 and eqs[0].multiplicity == 3 and eqs[0].stable is True
        assert abs(eqs[0].point["x"] - 0.7) < 1e-7
        assert int(r.n_real) == 3 and int(r.n_stable) == 1 and np.all(r.multiplicity[r.real] == 3)


def test_pseudo_root_and_multiple_root_rules():
    assert tol.is_pseudo_root(1e-13, 1.0) and not tol.is_pseudo_root(1e-11, 1.0)
    np.testing.assert_array_equal(tol.is_pseudo_root(np.array([0.0, 1e-3]), np.array([1.0, 1.0])), [True, False])
    np.testing.assert_array_equal(tol.multiple_root_stable([1, 2, 3, 3], [-1.0, -1.0, -1.0, 1e-20], [1.0] * 4),
                                  [True, False, True, False])


def test_one_collapse_default():
    """basins judges collapse with the same default threshold as the Collapse event."""
    import inspect

    from dynamics import Collapse, basins

    assert inspect.signature(basins).parameters["collapse"].default.tol == tol.COLLAPSE_TOL == Collapse().tol


# Numerical-method parameters that are not decisions of the policy (continuation heuristics,
# plotting); every other comparison against a literal threshold in dynamics is a defect.
_METHOD_LITERALS = {
    "_bifurcation.py": ("<= 1e-2 * max(1.0", "< 0.1 * max(1.0, size)"),
    "_plots.py": ("<= 5e-3 * span", "abs(pt.value) > 1e-9"),
    "_iterate.py": ("jnp.maximum(size, 1e-300)",),        # a floor against dividing by a zero state
    "_status.py": ("h = 1e-6 * np.where(scale > 0",),      # the finite-difference step
    "_lanes.py": ("small = (d0 < 1e-5) | (d1 < 1e-5)", "jnp.where(big <= 1e-15"),  # diffrax's initial step rule
}
# the policy itself, and modules whose matches are docstring lines naming the policy's defaults
_OTHER_OWNERS = ("_tolerance.py", "_integrate.py", "_events.py")


def test_no_decision_threshold_outside_the_policy():
    import re
    from pathlib import Path

    import dynamics as pkg

    pattern = re.compile(r"(<=?|>=?|==)[^#\n]*\d[eE]-?\d+|\d[eE]-?\d+[^#\n]*(<=?|>=?)")
    found = []
    for path in sorted(Path(pkg.__file__).parent.rglob("_*.py")):
        if path.name in _OTHER_OWNERS:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if '"' in code or "'" in code or not pattern.search(code):
                continue
            if any(ok in code for ok in _METHOD_LITERALS.get(path.name, ())):
                continue
            found.append(f"{path.name}:{i}: {line.strip()}")
    assert found == []
