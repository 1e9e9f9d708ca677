"""Equilibria, their classification, and their structure across parameters."""

import zlib

import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, derive
from dynamics import bifurcation, equilibria, integrate, regimes, roots_batch, threshold

SIGMA2 = 0.2
C = 1 + SIGMA2
THRESHOLD = 1 / (4 * C)


def tian(eta, tau=1.0):
    d = np.sqrt(tau**2 - 4 * C * eta)
    return (tau - d) / (2 * C), (tau + d) / (2 * C)


@pytest.mark.parametrize("eta", [0.01, 0.05, 0.12, 0.2])
@pytest.mark.parametrize("target", ["simsiam", "ema"])
def test_tians_equilibria_and_their_stability(eta, target):
    params = {"sigma2": SIGMA2, "eta": eta, "alpha_p": 1.0} | ({"beta": 0.5} if target == "ema" else {})
    system = derive(ModelSpec("euclidean", target))
    p_minus, p_plus = tian(eta)
    for sysm in (system, system.reduce()):
        eqs = equilibria(sysm, params)
        assert eqs.complete and not eqs.curves
        p = sorted(e.point["p"] for e in eqs)
        np.testing.assert_allclose(p, [0.0, p_minus, p_plus], atol=1e-12)
        by_p = {round(e.point["p"], 9): e for e in eqs}
        assert by_p[round(p_plus, 9)].stable is True and by_p[round(p_plus, 9)].hyperbolic
        assert by_p[round(p_minus, 9)].stable is False
        collapsed = by_p[0.0]
        assert collapsed.collapsed and collapsed.stable is True
        if "s" in sysm.state_names:
            assert abs(by_p[round(p_plus, 9)].point["s"] - p_plus**2) < 1e-12


@pytest.mark.parametrize("eta", [THRESHOLD * (1 + 1e-6), 0.25, 0.4])
def test_above_the_threshold_only_collapse(eta):
    eqs = equilibria(derive(ModelSpec("euclidean")), {"sigma2": SIGMA2, "eta": eta, "alpha_p": 1.0})
    assert len(eqs) == 1 and eqs[0].collapsed and eqs[0].stable


def random_params(system, rng):
    ranges = {"sigma2": (0, 0.5), "eta": (0.001, 0.4), "alpha_p": (0.5, 2), "beta": (0.1, 1),
              "N_psi": (0.3, 3), "N_phi": (0.3, 3), "T": (-1, 3)}
    return {k: float(rng.uniform(*ranges[k])) for k in system.param_names}


def all_specs():
    from conftest import ALL_SPECS

    return list(ALL_SPECS)


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.label.replace(" ", "_"))
def test_residual_at_every_equilibrium(spec):
    rng = np.random.default_rng(zlib.crc32(spec.label.encode()))
    system = derive(spec)
    for _ in range(8):
        params = random_params(system, rng)
        for sysm in (system, system.reduce()):
            f = sysm.to_numpy()
            eqs = equilibria(sysm, params)
            assert eqs.complete
            for e in eqs:
                # 1e-10 absolute for points of order one; far-out points (p ~ 400 when T -> 0)
                # are limited by float64 rounding of x* relative to the size of f's terms
                bound = 1e-10 * max(1.0, e.residual_scale)
                assert e.residual < bound
                assert np.max(np.abs(f(0.0, e.x, params))) < bound
                assert e.point.get("s", 0.0) >= -1e-14


def sextic_reference(params):
    """Bao's reduced mode, typed in from DESIGN.md (tau = 1), times N_psi^3 N_phi alpha_p."""
    p = sp.Symbol("p")
    c = 1 + sp.Rational(params["sigma2"])
    a, eta, T = (sp.Rational(params[k]) for k in ("alpha_p", "eta", "T"))
    Npsi, Nphi = sp.Rational(params["N_psi"]), sp.Rational(params["N_phi"])
    s = p**2 / a
    dp = a / (Npsi * Nphi) * (s - c / Npsi**2 * (T * p * s + 2 * p**2 * s**2)) - eta * p
    return sp.Poly(sp.expand(dp * Npsi**3 * Nphi * a), p)


def test_sextic_real_root_count_against_sturm_and_mpmath():
    import mpmath

    system = derive(ModelSpec("cosine")).reduce()
    rng = np.random.default_rng(42)
    counts = []
    for _ in range(60):
        params = random_params(system, rng)
        found = equilibria(system, params, domain=None)
        poly = sextic_reference(params)
        # independent count 1: Sturm sequence over the whole real line (distinct real roots)
        seq = sp.sturm(poly)
        def changes(vals):
            vals = [v for v in vals if v != 0]
            return sum(1 for u, v in zip(vals, vals[1:]) if (u > 0) != (v > 0))
        lo = [q.LC() * (-1) ** q.degree() for q in seq]
        hi = [q.LC() for q in seq]
        n_sturm = changes(lo) - changes(hi)
        # independent count 2: mpmath roots at 60 digits
        with mpmath.workdps(60):
            roots = mpmath.polyroots([mpmath.mpf(sp.Rational(cf).p) / sp.Rational(cf).q for cf in poly.all_coeffs()],
                                     maxsteps=500, extraprec=500)
            n_mp = len({round(float(mpmath.re(r)), 9) for r in roots if abs(mpmath.im(r)) < mpmath.mpf(10) ** -30})
        assert len(found) == n_sturm == n_mp, (params, [e.point for e in found], n_sturm, n_mp)
        counts.append(n_sturm)
    assert len(set(counts)) >= 2  # the draws cover different root structures


def test_collapsed_point_at_zero_weight_decay_is_semi_stable():
    """eta = 0: dp/dt = p^2 - c p^3 on the manifold; p = 0 is a double root, attracting from below."""
    reduced = derive(ModelSpec("euclidean")).reduce()
    params = {"sigma2": SIGMA2, "eta": 0.0, "alpha_p": 1.0}
    eqs = equilibria(reduced, params)
    zero = next(e for e in eqs if e.collapsed)
    assert not zero.hyperbolic and zero.multiplicity == 2
    assert zero.stable is False and zero.kind == "semi-stable" and "u^2" in zero.reason
    # restricted to p <= 0 only the attracting side remains: stable within the domain
    restricted = next(e for e in equilibria(reduced, params, domain={"p": (None, 0.0)}) if e.collapsed)
    assert restricted.stable is True and "boundary" in restricted.kind
    # behaviour: from below it returns, from above it leaves
    below = integrate(reduced, [-0.05], (0, 400), params, events=())
    above = integrate(reduced, [0.05], (0, 400), params, events=())
    assert abs(below.final[0]) < 0.01 and above.final[0] > 0.5


def test_centre_manifold_in_two_dimensions():
    """EMA mode (p, tau) at eta = 0: eigenvalues {0, -beta} at (0, 1); the centre-manifold flow
    du/dt = u^2 + ... makes it semi-stable."""
    reduced = derive(ModelSpec("euclidean", "ema")).reduce()
    params = {"sigma2": SIGMA2, "eta": 0.0, "alpha_p": 1.0, "beta": 0.5}
    zero = next(e for e in equilibria(reduced, params) if e.collapsed)
    assert sorted(np.round(zero.eigenvalues.real, 12)) == [-0.5, 0.0]
    assert zero.kind == "semi-stable" and "centre-manifold" in zero.reason
    # by hand: J = [[0, 0], [-1, -beta]], null vector v0 = (beta, -1)/sqrt(1 + beta^2); on the
    # centre manifold dp/dt = p^2 + O(p^3) with p = v0_p u, so du/dt = v0_p u^2 (sign: v0's orientation)
    order, coeff = zero.centre_flow
    assert order == 2 and abs(abs(coeff) - 0.5 / np.sqrt(1.25)) < 1e-8


def test_labels_match_behaviour_under_perturbation():
    """Every hyperbolic equilibrium: perturbations decay iff it is labelled stable."""
    rng = np.random.default_rng(0)
    cases = [
        (ModelSpec("euclidean"), {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}),
        (ModelSpec("euclidean", "ema"), {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0, "beta": 0.5}),
        (ModelSpec("cosine"), {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 2.0, "N_phi": 1.5, "T": 1.0}),
        (ModelSpec("cosine", "ema", moments="leading"),
         {"sigma2": SIGMA2, "eta": 0.1, "alpha_p": 1.0, "beta": 0.4, "N_psi": 1.0, "N_phi": 1.0, "T": 0.5}),
    ]
    checked = 0
    for spec, params in cases:
        for sysm in (derive(spec), derive(spec).reduce()):
            for e in equilibria(sysm, params):
                if not e.hyperbolic:
                    continue
                dirs = rng.normal(size=(8, len(e.x)))
                dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
                y0 = e.x + 1e-4 * dirs
                s_idx = [i for i, n in enumerate(sysm.state_names) if n == "s"]
                y0[:, s_idx] = np.abs(y0[:, s_idx])  # stay in the domain s >= 0
                # slowest decay rate here is eta = 0.05 with transient growth up to alpha/eta:
                # t = 300 takes a 1e-4 perturbation of a stable point well below 1e-5
                sol = integrate(sysm, y0, (0, 300), params, events=("blow_up",), backend="scipy")  # no compilation per system
                dist = np.linalg.norm(sol.final - e.x, axis=1)
                if e.stable:
                    assert np.all(dist < 1e-5), (spec.label, e)
                else:
                    assert np.any(dist > 1e-3), (spec.label, e)
                checked += 1
    assert checked >= 20


def test_curves_of_equilibria_at_zero_weight_decay():
    eqs = equilibria(derive(ModelSpec("euclidean")), {"sigma2": SIGMA2, "eta": 0.0, "alpha_p": 1.0})
    assert len(eqs.curves) == 2
    p, s = sp.symbols("p s")
    found = {sp.simplify(c.equations[0]) for c in eqs.curves}
    assert s in found
    assert any(sp.Poly(e, p).degree() == 1 and abs(float(sp.solve(e, p)[0]) - 1 / C) < 1e-12 for e in found if e.has(p))
    assert len(eqs) <= 2 and all(e.stable is None for e in eqs)  # only the curves' crossings


def test_newton_path_on_k_modes_finds_the_product_structure():
    """Two uncoupled Euclidean modes: equilibria are all pairs of {0, p-, p+}, 9 in all."""
    modes = derive(ModelSpec("euclidean")).modes(2)
    eqs = equilibria(modes, {"sigma2": SIGMA2, "eta": 0.05, "alpha_p": 1.0}, n_starts=3000)
    assert not eqs.complete and "Newton" in eqs.method
    roots = [0.0, *tian(0.05)]
    expected = {(round(a, 7), round(b, 7)) for a in roots for b in roots}
    got = {(round(e.point["p_1"], 7), round(e.point["p_2"], 7)) for e in eqs}
    assert got == expected
    assert sum(e.stable for e in eqs) == 4  # both modes at 0 or p+


def test_batched_roots_agree_with_exact_enumeration():
    reduced = derive(ModelSpec("cosine")).reduce()
    rng = np.random.default_rng(3)
    n = 40
    params = {k: rng.uniform(*r, n) for k, r in
              {"sigma2": (0, 0.5), "eta": (0.001, 0.4), "alpha_p": (0.5, 2), "N_psi": (0.3, 3), "N_phi": (0.3, 3), "T": (-1, 3)}.items()}
    batch = roots_batch(reduced, params)
    for i in range(n):
        exact = equilibria(reduced, {k: float(v[i]) for k, v in params.items()}, domain=None)
        assert batch.n_real[i] == len(exact)
        assert batch.n_stable[i] == sum(bool(e.stable) for e in exact)
    big = roots_batch(reduced, {"sigma2": 0.2, "alpha_p": 1.0, "T": 1.0, "N_psi": 2.0, "N_phi": 1.5,
                                "eta": np.linspace(0.0, 0.4, 100_000)})
    assert big.roots.shape == (100_000, 6)


def test_threshold_is_tians_and_bifurcation_locates_it():
    th = threshold(derive(ModelSpec("euclidean")), "eta")
    eta, sigma2, tau = sp.symbols("eta sigma2 tau")
    assert len(th.fold_solutions) == 1 and sp.simplify(th.fold_solutions[0] - 1 / (4 * (1 + sigma2))) == 0
    assert list(th.transcritical_solutions) == [0]
    ema = threshold(derive(ModelSpec("euclidean", "ema")), "eta", hold=("tau",))
    assert sp.simplify(ema.fold_solutions[0] - tau**2 / (4 * (1 + sigma2))) == 0
    cos = threshold(derive(ModelSpec("cosine")), "eta")
    assert cos.fold.has(sp.Symbol("N_psi")) and cos.fold.has(sp.Symbol("T"))
    b = bifurcation(derive(ModelSpec("euclidean")), ("eta", np.linspace(0.0, 0.4, 17)), {"sigma2": SIGMA2, "alpha_p": 1.0})
    folds = [pt for pt in b.points if pt.kind == "fold"]
    assert len(folds) == 1 and abs(folds[0].value - THRESHOLD) < 1e-8 and abs(folds[0].x[0] - 1 / (2 * C)) < 1e-4
    assert any(pt.kind == "transcritical" and abs(pt.value) < 1e-8 for pt in b.points)


def test_cosine_fold_matches_its_discriminant_condition():
    """The sampled bifurcation fold of the sextic sits on the symbolic fold condition."""
    system = derive(ModelSpec("cosine"))
    params = {"sigma2": SIGMA2, "alpha_p": 1.0, "N_psi": 2.0, "N_phi": 1.5, "T": 1.0}
    b = bifurcation(system, ("eta", np.linspace(0.01, 0.4, 14)), params)
    fold = next(pt for pt in b.points if pt.kind == "fold")
    cond = threshold(system, "eta").fold
    syms = {sp.Symbol(k): v for k, v in params.items()}
    g = sp.lambdify(sp.Symbol("eta"), cond.subs(syms))
    scale = abs(g(fold.value * 1.01)) + abs(g(fold.value * 0.99))
    assert abs(g(fold.value)) < 1e-6 * scale


def test_regimes_agree_with_exact_equilibria():
    system = derive(ModelSpec("cosine"))
    grid = regimes(system, ("eta", np.linspace(0.01, 0.5, 7)), ("N_psi", np.linspace(0.5, 3, 6)),
                   {"sigma2": SIGMA2, "alpha_p": 1.0, "N_phi": 1.5, "T": 1.0})
    assert grid.codes.shape == (6, 7)
    for i, eta in enumerate(grid.x_values):
        for j, n in enumerate(grid.y_values):
            eqs = equilibria(system.reduce(), {"sigma2": SIGMA2, "alpha_p": 1.0, "N_phi": 1.5, "T": 1.0, "eta": eta, "N_psi": n}, domain=None)
            zero = any(e.collapsed and e.stable for e in eqs)
            other = any(not e.collapsed and e.stable for e in eqs)
            expected = {(True, False): "collapse only", (True, True): "bistable",
                        (False, True): "non-collapsed only", (False, False): "no stable equilibrium"}[(zero, other)]
            assert grid.label(i, j) == expected
    assert len(set(grid.codes.ravel())) >= 2


@pytest.mark.parametrize(
    "params, match",
    [
        ({"sigma2": -0.1, "eta": 0.1, "alpha_p": 1.0}, "sigma2.*outside the model's domain"),
        ({"sigma2": 0.1, "eta": 0.1, "alpha_p": 0.0}, "alpha_p.*need alpha_p > 0"),
        ({"sigma2": 0.1, "eta": -0.1, "alpha_p": 1.0}, "eta.*outside"),
        ({"sigma2": 0.1, "eta": 0.1}, r"missing \['alpha_p'\]"),
        ({"sigma2": 0.1, "eta": float("nan"), "alpha_p": 1.0}, "must be finite"),
    ],
)
def test_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        equilibria(derive(ModelSpec("euclidean")), params)


def test_bad_norms_and_domains():
    cos = derive(ModelSpec("cosine"))
    base = {"sigma2": 0.1, "eta": 0.1, "alpha_p": 1.0, "N_psi": 1.0, "N_phi": 1.0, "T": 1.0}
    with pytest.raises(ValueError, match="N_psi.*need N_psi > 0"):
        equilibria(cos, dict(base, N_psi=0.0))
    with pytest.raises(ValueError, match="is empty"):
        equilibria(cos, base, domain={"p": (1.0, 0.0)})
    with pytest.raises(ValueError, match="unknown state 'q'"):
        equilibria(cos, base, domain={"q": (0, 1)})
    empty = equilibria(cos, base, domain={"p": (5.0, 6.0)})
    assert len(empty) == 0 and "no real equilibrium inside the domain" in empty.reason
    with pytest.raises(TypeError, match="DynamicalSystem"):
        equilibria("cosine", base)
    with pytest.raises(ValueError, match="one-state reduced system"):
        roots_batch(derive(ModelSpec("cosine", "ema")), base)
    with pytest.raises(ValueError, match="not a parameter"):
        threshold(cos, "gamma")


def test_stable_equilibrium_emerges_as_weight_decay_shrinks_the_norms():
    """The paper's claim on the eigenmode system: with eta above the fold, the uniform shrinking
    (N_psi ~ l^2, N_phi ~ l, T ~ l^3, l = e^{-eta t}) acts as an effective weight decay eta l^2,
    so a stable non-collapsed equilibrium appears at t* = ln(eta / eta_fold) / (2 eta), with
    eta_fold the fold of the t = 0 mode (located by the exact bifurcation path)."""
    from dynamics import shrinking_norms

    system = derive(ModelSpec("cosine"))
    rng = np.random.default_rng(1)
    p = np.sort(rng.uniform(0.2, 1, 32))
    s = p**2
    params = {"sigma2": SIGMA2, "eta": 0.3, "alpha_p": 1.0, "N_psi": float(np.sqrt(C * np.sum(p**2 * s))),
              "N_phi": float(np.sqrt(C * np.sum(s))), "T": float(np.sum(p * s))}
    path = shrinking_norms(system, np.linspace(0, 10, 51), params)
    assert path.names[path.codes[0]] == "collapse only" and path.names[path.codes[-1]] == "bistable"
    fixed = {k: v for k, v in params.items() if k != "eta"}
    fold = next(pt.value for pt in bifurcation(system, ("eta", np.linspace(0.001, 0.3, 30)), fixed).points if pt.kind == "fold")
    t_star = np.log(0.3 / fold) / (2 * 0.3)
    assert abs(path.t_emerge - t_star) < 1e-6
    with pytest.raises(ValueError, match="cosine"):
        shrinking_norms(derive(ModelSpec("euclidean")), [0, 1], {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0})
