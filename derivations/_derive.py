"""derive(spec): the eigenmode ODEs computed by SymPy from the per-sample loss.

Pipeline (each stage is kept in ``system.steps``):

1. per-sample loss L(A, B, C) with A = <a, a>, B = <a, b>, C = <b, b>, a = Psi Phi x1,
   b = sg(Phi_a x2), and its matrix gradients dL/dPsi = g (Phi x1)^T, dL/dPhi = Psi^T g x1^T,
   g = dL/da = 2 L_A a + L_B b (SymPy matrix calculus);
2. norm and moment treatment of the outer partials L_A, L_B (cosine only): frozen norms
   A -> N_psi^2, C -> N_phi^2; leading moments B -> E[B] = T;
3. eigenmode ansatz: in the shared eigenbasis Psi = diag(p), Phi = diag(phi) (s = phi^2),
   Phi_a = diag(tau phi). Mode j sees the scalar Gaussians x1 = x + e1, x2 = x + e2 and the
   rest of the spectrum only through the independent sums A_rest, B_rest, C_rest;
4. Gaussian expectation (Isserlis, ``moments.gaussian_expectation``), with
   E[B_rest] = T - E[a_j b_j] by independence;
5. gradient flow with weight decay: dp = -alpha_p dJ/dp - eta p, dphi = -dJ/dphi - eta phi,
   ds = 2 phi dphi; EMA target d(tau phi) = beta (phi - tau phi) gives dtau;
6. a K = 2 check with full 2 x 2 matrices: the expected gradient is diagonal on the ansatz
   (the ansatz is consistent) and its diagonal equals step 4 with T = sum_k tau_k p_k s_k.
"""

from __future__ import annotations

from importlib import metadata

import sympy as sp

from . import symbols as sy
from ._cache import cache_key, load_cached, store_cached
from ._invariants import conservation_laws, describe_laws
from ._losses import A, B, C, per_sample_gradient, per_sample_loss
from ._moments import gaussian_expectation
from ._spec import ModelSpec
from ._eigenmode import EigenmodeSystem

__all__ = ["derive"]

# Random scalars of one mode and the rest of the spectrum.
x, e1, e2 = sp.symbols("x_j e1_j e2_j", real=True)
A_rest, B_rest, C_rest = sp.symbols("A_rest B_rest C_rest", real=True)
# Positive working copies: the amplitude phi = sqrt(s), its stop-gradient copy in the target,
# and the frozen norms (positivity lets sqrt(N**2) simplify). Swapped for public ones at the end.
_phi, _phi_sg = sp.symbols("phi phi_sg", positive=True)
_Npsi, _Nphi = sp.symbols("N_psi N_phi", positive=True)
_PUBLIC = {_Npsi: sy.N_psi, _Nphi: sy.N_phi}

_memory: dict[ModelSpec, EigenmodeSystem] = {}


def derive(spec: ModelSpec | None = None, /, *, cache: bool = True, **fields: str) -> EigenmodeSystem:
    """Derive the one-mode eigenmode system of ``spec``.

    ``derive(ModelSpec(loss="cosine"))`` and ``derive(loss="cosine")`` are equivalent.
    Results are memoised in-process and cached on disk (see ``derivations.cache_dir``); pass
    ``cache=False`` to force a fresh derivation (it is still not written over a valid entry
    unless the entry is stale or corrupt).

    Raises TypeError if ``spec`` is not a ModelSpec, ValueError for unknown field values.
    """
    if spec is None:
        spec = ModelSpec(**fields)
    elif fields:
        raise TypeError("pass either a ModelSpec or keyword fields to derive(), not both")
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    if cache and spec in _memory:
        return _memory[spec]
    key = cache_key(spec, _version())
    system = load_cached(key) if cache else None
    if system is None:
        system = _derive(spec)
        store_cached(key, system)
    _memory[spec] = system
    return system


def _version() -> str:
    try:
        return metadata.version("ncdyn")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "source"


def _outer_partials(spec: ModelSpec) -> tuple[sp.Expr, sp.Expr, dict]:
    """L_A, L_B after the norm and moment treatment, and the substitutions made."""
    L = per_sample_loss(spec.loss)
    LA, LB = sp.diff(L, A), sp.diff(L, B)
    treatment: dict = {}
    if spec.loss == "cosine":
        treatment[A] = _Npsi**2
        treatment[C] = _Nphi**2
        if spec.moments == "leading":
            treatment[B] = sy.T
    LA = sp.simplify(LA.subs(treatment))
    LB = sp.simplify(LB.subs(treatment))
    return LA, LB, treatment


def _mode_gradients(spec: ModelSpec, LA: sp.Expr, LB: sp.Expr) -> dict[sp.Symbol, sp.Expr]:
    """Per-sample dL/dp and dL/dphi of one mode, as polynomials in x, e1, e2 and B_rest."""
    p = sy.p
    tau = sy.tau if spec.target == "ema" else sp.Integer(1)
    a = p * _phi * (x + e1)
    b = tau * _phi_sg * (x + e2)
    A_val, B_val = a**2 + A_rest, a * b + B_rest
    LA, LB = LA.subs(B, B_val), LB.subs(B, B_val)
    grads = {}
    for theta in (p, _phi):
        g = LA * sp.diff(A_val, theta) + LB * sp.diff(B_val, theta)
        grads[theta] = sp.expand(g.subs(_phi_sg, _phi))
    return grads


def _expectation(expr: sp.Expr, spec: ModelSpec) -> sp.Expr:
    """E over the mode's Gaussians and the independent rest of the spectrum."""
    tau = sy.tau if spec.target == "ema" else sp.Integer(1)
    poly = sp.Poly(expr, A_rest, B_rest, C_rest)
    if poly.total_degree() > 1:
        raise NotImplementedError(
            "the per-sample gradient is non-linear in the rest of the spectrum; "
            "its higher moments are not modelled"
        )
    gauss = {x: sp.Integer(1), e1: sy.sigma2, e2: sy.sigma2}
    a = sy.p * _phi * (x + e1)
    b = tau * _phi * (x + e2)
    rest_mean = {
        A_rest: _Npsi**2 - gaussian_expectation(a**2, gauss, gauss),
        B_rest: sy.T - gaussian_expectation(a * b, gauss, gauss),
        C_rest: _Nphi**2 - gaussian_expectation(b**2, gauss, gauss),
    }
    mean_field = sp.expand(expr.subs(rest_mean))
    return sp.expand(gaussian_expectation(mean_field, list(gauss), gauss))


def _to_s(expr: sp.Expr) -> sp.Expr:
    """Rewrite an expression in phi (even powers only) in terms of s = phi^2."""
    out = sp.expand(expr.subs(_phi, sp.sqrt(sy.s)))
    if out.has(sp.sqrt(sy.s)) or any(
        isinstance(t, sp.Pow) and t.base == sy.s and not t.exp.is_integer for t in sp.preorder_traversal(out)
    ):
        raise RuntimeError(f"odd power of phi left after the eigenmode projection: {out}")
    return out


def _spectral_summands(spec: ModelSpec) -> dict[str, sp.Expr]:
    """Per-mode contributions to E<a,a>, E<a,b>, E<b,b> (sum over modes gives the totals)."""
    tau = sy.tau if spec.target == "ema" else sp.Integer(1)
    gauss = {x: sp.Integer(1), e1: sy.sigma2, e2: sy.sigma2}
    a = sy.p * _phi * (x + e1)
    b = tau * _phi * (x + e2)
    return {
        "E<a,a>": _to_s(gaussian_expectation(a**2, list(gauss), gauss)),
        "E<a,b>": _to_s(gaussian_expectation(a * b, list(gauss), gauss)),
        "E<b,b>": _to_s(gaussian_expectation(b**2, list(gauss), gauss)),
    }


def _ansatz_check(spec: ModelSpec, LA: sp.Expr, LB: sp.Expr, expected: dict) -> dict:
    """Expected gradients with full 2 x 2 matrices at the aligned ansatz (two modes).

    Differentiates the per-sample loss with respect to every matrix entry, sets
    Psi = diag(p1, p2), Phi = diag(phi1, phi2), Phi_a = diag(tau1 phi1, tau2 phi2) and
    averages. Raises RuntimeError unless the result is diagonal and its diagonal equals the
    one-mode result with the rest of the spectrum equal to the other mode.
    """
    K = 2
    ema = spec.target == "ema"
    ps = sp.symbols(f"p_1:{K + 1}")
    phis = sp.symbols(f"phi_1:{K + 1}", positive=True)
    taus = sp.symbols(f"tau_1:{K + 1}") if ema else (sp.Integer(1),) * K
    Psi = sp.Matrix(K, K, lambda i, j: sp.Symbol(f"Psi_{i}{j}"))
    Phi = sp.Matrix(K, K, lambda i, j: sp.Symbol(f"Phi_{i}{j}"))
    xs = sp.symbols(f"x_1:{K + 1}", real=True)
    e1s = sp.symbols(f"e1_1:{K + 1}", real=True)
    e2s = sp.symbols(f"e2_1:{K + 1}", real=True)
    x1 = sp.Matrix([xs[k] + e1s[k] for k in range(K)])
    x2 = sp.Matrix([xs[k] + e2s[k] for k in range(K)])
    a = Psi * Phi * x1
    b = sp.diag(*[taus[k] * phis[k] for k in range(K)]) * x2  # target: stop-gradient
    A_val, B_val = (a.T * a)[0], (a.T * b)[0]
    LA2, LB2 = LA.subs(B, B_val), LB.subs(B, B_val)
    gauss = {**{v: sp.Integer(1) for v in xs}, **{v: sy.sigma2 for v in e1s + e2s}}
    point = {Psi[i, j]: (ps[i] if i == j else 0) for i in range(K) for j in range(K)}
    point.update({Phi[i, j]: (phis[i] if i == j else 0) for i in range(K) for j in range(K)})
    T_two = sum(taus[k] * ps[k] * phis[k] ** 2 for k in range(K))

    def expected_matrix(M: sp.Matrix) -> sp.Matrix:
        def entry(i, j):
            g = LA2 * sp.diff(A_val, M[i, j]) + LB2 * sp.diff(B_val, M[i, j])
            g = sp.expand(g.xreplace(point))
            return gaussian_expectation(g, list(gauss), gauss).subs(sy.T, T_two)

        return sp.Matrix(K, K, entry)

    result = {"E[dL/dPsi]": expected_matrix(Psi), "E[dL/dPhi]": expected_matrix(Phi)}
    one_mode = {"E[dL/dPsi]": expected[sy.p], "E[dL/dPhi]": expected[_phi]}
    for name, M in result.items():
        for i in range(K):
            for j in range(K):
                if i != j and sp.simplify(M[i, j]) != 0:
                    raise RuntimeError(f"aligned ansatz inconsistent: {name}[{i},{j}] = {M[i, j]}")
            subs = {sy.p: ps[i], _phi: phis[i], sy.T: T_two}
            if ema:
                subs[sy.tau] = taus[i]
            if sp.simplify(M[i, i] - one_mode[name].subs(subs, simultaneous=True)) != 0:
                raise RuntimeError(f"two-mode check failed for {name}[{i},{i}]")
    return {k: v.xreplace(_PUBLIC) for k, v in result.items()}


def _derive(spec: ModelSpec) -> EigenmodeSystem:
    p, s, tau = sy.p, sy.s, sy.tau
    LA, LB, treatment = _outer_partials(spec)
    grads = _mode_gradients(spec, LA, LB)
    expected = {theta: _expectation(g, spec) for theta, g in grads.items()}

    dp = sp.expand(-sy.alpha_p * expected[p] - sy.eta * p)
    dphi = sp.expand(-expected[_phi] - sy.eta * _phi)
    ds = _to_s(2 * _phi * dphi)
    states = [p, s]
    rhs = [_to_s(dp), ds]
    if spec.target == "ema":
        dphi_target = sy.beta * (_phi - tau * _phi)  # EMA of the target amplitude tau phi
        dtau = _to_s(sp.cancel((dphi_target - tau * dphi) / _phi))
        states.append(tau)
        rhs.append(dtau)
    rhs = [sp.expand(r.xreplace(_PUBLIC)) for r in rhs]

    steps = {
        "per_sample_loss": per_sample_loss(spec.loss),
        "per_sample_gradient": per_sample_gradient(spec.loss),
        "treatment": {k: v.xreplace(_PUBLIC) for k, v in treatment.items()},
        "mode_gradient": {
            "dL/dp": grads[p].xreplace(_PUBLIC),
            "dL/dphi": grads[_phi].xreplace(_PUBLIC),
        },
        "expected_gradient": {
            "dJ/dp": expected[p].xreplace(_PUBLIC),
            "dJ/dphi": expected[_phi].xreplace(_PUBLIC),
        },
        "ansatz_check": _ansatz_check(spec, LA, LB, expected),
        "spectral_sums": _spectral_summands(spec),
        "eigenmode_flow": dict(zip(map(str, states), rhs)),
    }
    params = _params_of(spec, rhs)
    system = EigenmodeSystem(
        tuple(states),
        params,
        sp.ImmutableMatrix(rhs),
        spec=spec,
        steps=steps,
        closures=_closures(spec, steps["spectral_sums"]),
        **_model_facts(spec, params),
    )
    laws = conservation_laws(system)
    object.__setattr__(system, "laws", laws)
    object.__setattr__(system, "description", describe_laws(spec, laws))
    return system


_PARAM_DOMAIN = {
    sy.sigma2: sp.Interval(0, sp.oo),
    sy.eta: sp.Interval(0, sp.oo),
    sy.alpha_p: sp.Interval.open(0, sp.oo),
    sy.beta: sp.Interval(0, sp.oo),
    sy.N_psi: sp.Interval.open(0, sp.oo),
    sy.N_phi: sp.Interval.open(0, sp.oo),
}


def _model_facts(spec: ModelSpec, params: tuple[sp.Symbol, ...]) -> dict:
    """What the model says about its eigenmode system, as data for the numerics: s is an
    eigenvalue of Phi Phi^T (s >= 0), the parameters' domains, collapse at p = s = 0 and the
    invariant manifold s = p**2/alpha_p (see ``laws``: the balance law)."""
    return {
        "state_domain": {"s": sp.Interval(0, sp.oo)},
        "param_domain": {str(v): _PARAM_DOMAIN[v] for v in params if v in _PARAM_DOMAIN},
        "collapse": ("p", "s"),
        "manifold": {"s": sy.p**2 / sy.alpha_p},
        "name": spec.label,
    }


def _params_of(spec: ModelSpec, rhs: list[sp.Expr]) -> tuple[sp.Symbol, ...]:
    """Parameters in canonical order; every free symbol of the rhs must be a state or one."""
    order = [sy.sigma2, sy.eta, sy.alpha_p]
    if spec.target == "ema":
        order.append(sy.beta)
    if spec.loss == "cosine":
        order += [sy.N_psi, sy.N_phi, sy.T]
    free = set().union(*(r.free_symbols for r in rhs)) - {sy.p, sy.s, sy.tau}
    unexpected = free - set(order)
    if unexpected:
        raise RuntimeError(f"derivation left unexpected symbols {unexpected}")
    return tuple(order)


def _closures(spec: ModelSpec, sums: dict[str, sp.Expr]) -> tuple[tuple[sp.Symbol, sp.Expr, sp.Rational], ...]:
    """Spectral closures (param, per-mode summand, power): param = (sum_k summand_k)**power.

    T is always the spectral sum E<a, b>; the norms are closed only for self-consistent norms.
    """
    if spec.loss != "cosine":
        return ()
    out = [(sy.T, sums["E<a,b>"], sp.Integer(1))]
    if spec.norms == "self-consistent":
        out += [
            (sy.N_psi, sums["E<a,a>"], sp.Rational(1, 2)),
            (sy.N_phi, sums["E<b,b>"], sp.Rational(1, 2)),
        ]
    return tuple(out)
