"""The derived systems equal the reference systems of the literature (DESIGN.md), symbolically.

The references below are typed in from Tian et al. (2021) and Bao (2023); the code under test
derives its systems from the per-sample loss and never sees these expressions.
"""

import sympy as sp

from derivations import derive

p, s, tau = sp.symbols("p s tau")
sigma2, eta, alpha_p, beta = sp.symbols("sigma2 eta alpha_p beta")
N_psi, N_phi, T = sp.symbols("N_psi N_phi T")
c = 1 + sigma2


def reference(spec):
    """(states, rhs) from DESIGN.md, 'Results the derivations must reproduce'."""
    t = tau if spec.target == "ema" else 1
    if spec.loss == "euclidean":
        dp = alpha_p * s * (t - c * p) - eta * p
        ds = 2 * p * s * (t - c * p) - 2 * eta * s
    else:
        isserlis = 2 * t * p**2 * s**2 if spec.moments == "exact" else 0
        isserlis_s = 2 * t * p**3 * s**2 if spec.moments == "exact" else 0
        dp = alpha_p / (N_psi * N_phi) * (t * s - c / N_psi**2 * (T * p * s + isserlis)) - eta * p
        ds = 2 / (N_psi * N_phi) * (t * p * s - c / N_psi**2 * (T * p**2 * s + isserlis_s)) - 2 * eta * s
    if spec.target == "simsiam":
        return (p, s), [dp, ds]
    dtau = beta * (1 - tau) - tau * ds / (2 * s)
    return (p, s, tau), [dp, ds, dtau]


def test_derived_rhs_equals_reference(spec):
    system = derive(spec)
    states, ref = reference(spec)
    assert system.states == states
    assert len(system.rhs) == len(ref)
    for derived, expected, name in zip(system.rhs, ref, states):
        assert sp.simplify(derived - expected) == 0, f"d{name}/dt differs for {spec.label}"


def test_parameters_are_named_as_documented(spec):
    names = list(derive(spec).param_names)
    expected = ["sigma2", "eta", "alpha_p"] + (["beta"] if spec.target == "ema" else [])
    if spec.loss == "cosine":
        expected += ["N_psi", "N_phi", "T"]
    assert names == expected


def test_reduced_orders(spec):
    reduced = derive(spec).reduce()
    expected = 6 if (spec.loss == "cosine" and spec.moments == "exact") else 3
    assert reduced.order == expected
    assert derive(spec).order == expected
    assert reduced.state_names == (("p", "tau") if spec.target == "ema" else ("p",))
    assert reduced.restricted_to == {"s": p**2 / alpha_p}
    assert derive(spec).manifold == {"s": p**2 / alpha_p}


def test_euclidean_simsiam_reduces_to_tians_cubic():
    from derivations import ModelSpec

    dp = derive(ModelSpec("euclidean", "simsiam")).reduce().rhs[0]
    assert sp.expand(dp.subs(alpha_p, 1) - (p**2 - c * p**3 - eta * p)) == 0


def test_sixth_order_reduced_cosine_matches_reference():
    from derivations import ModelSpec

    dp = derive(ModelSpec("cosine", "simsiam")).reduce().rhs[0]
    ref = alpha_p / (N_psi * N_phi) * (
        p**2 / alpha_p - c / N_psi**2 * (T * p**3 / alpha_p + 2 * p**6 / alpha_p**2)
    ) - eta * p
    assert sp.simplify(dp - ref) == 0
    assert sp.Poly(dp, p).degree() == 6


def test_euclidean_simsiam_weight_decay_threshold():
    """Non-collapsed equilibria exist iff eta <= 1/(4c) (Tian et al.), from the derived cubic."""
    from derivations import ModelSpec

    dp = derive(ModelSpec("euclidean", "simsiam")).reduce().rhs[0].subs(alpha_p, 1)
    quadratic = sp.cancel(dp / p)  # non-zero equilibria: roots of dp/p
    assert sp.Poly(quadratic, p).degree() == 2
    boundary = sp.solve(sp.discriminant(quadratic, p), eta)
    assert len(boundary) == 1
    assert sp.simplify(boundary[0] - 1 / (4 * c)) == 0
    # and the roots are Tian's p = (1 +- sqrt(1 - 4 c eta)) / (2 c)
    roots = sp.solve(quadratic, p)
    expected = [(1 + sp.sqrt(1 - 4 * c * eta)) / (2 * c), (1 - sp.sqrt(1 - 4 * c * eta)) / (2 * c)]
    for r in expected:
        assert any(sp.simplify(r - q) == 0 for q in roots)


def test_ema_threshold_at_fixed_tau():
    """With tau held fixed the Euclidean fold sits at eta = tau^2/(4c)."""
    from derivations import ModelSpec

    dp = derive(ModelSpec("euclidean", "ema")).reduce().rhs[0].subs(alpha_p, 1)
    boundary = sp.solve(sp.discriminant(sp.cancel(dp / p), p), eta)
    assert sp.simplify(boundary[0] - tau**2 / (4 * c)) == 0


def test_spectral_closures_are_the_expected_norms():
    from derivations import ModelSpec

    system = derive(ModelSpec("cosine", "ema", norms="self-consistent"))
    closures = {str(param): (summand, power) for param, summand, power in system.closures}
    assert sp.simplify(closures["N_psi"][0] - c * p**2 * s) == 0 and closures["N_psi"][1] == sp.Rational(1, 2)
    assert sp.simplify(closures["N_phi"][0] - c * tau**2 * s) == 0
    assert sp.simplify(closures["T"][0] - tau * p * s) == 0 and closures["T"][1] == 1
    frozen = derive(ModelSpec("cosine", "ema", norms="frozen"))
    assert [str(cl[0]) for cl in frozen.closures] == ["T"]


def test_steps_are_inspectable(spec):
    steps = derive(spec).steps
    for key in ("per_sample_loss", "per_sample_gradient", "mode_gradient", "expected_gradient",
                "ansatz_check", "spectral_sums", "eigenmode_flow"):
        assert key in steps
    # the two-mode check with full matrices: expected gradients are diagonal on the ansatz
    for M in steps["ansatz_check"].values():
        assert M.shape == (2, 2)
        assert sp.simplify(M[0, 1]) == 0 and sp.simplify(M[1, 0]) == 0
