"""derive(spec): the eigenmode ODEs computed by SymPy from the per-sample loss.

Pipeline (each stage is kept in ``system.steps``):

1. per-sample loss L(A, B, C) with A = <a, a>, B = <a, b>, C = <b, b>, a = W_P Phi x1,
   b = Phi_t x2 (Phi_t = Phi_a, a constant under stop-gradient); g = dL/da = 2 L_A a + L_B b
   reaches Phi as W_P^T g x1^T (as g x1^T for IsoLoss) and a learned predictor as g (Phi x1)^T;
   without stop-gradient dL/db = 2 L_C b + L_B a reaches Phi as well;
2. norm and moment treatment of the outer partials (losses that involve the norms): frozen
   norms A -> N_psi^2, C -> N_phi^2; leading moments B -> E[B] = T;
3. eigenmode ansatz: in the shared eigenbasis the predictor has eigenvalue w (w = p learned,
   w = (s/s_max)^alpha + eps DirectPred, w = 1 none), Phi = diag(phi) (s = phi^2), Phi_a =
   diag(tau phi). Mode j sees the scalar Gaussians x ~ N(0, lambda), x1 = x + e1 (or x),
   x2 = x + e2 and the rest of the spectrum only through the independent sums A_rest,
   B_rest, C_rest;
4. Gaussian expectation (Isserlis, ``gaussian_expectation``), with E[B_rest] = T - E[a_j b_j]
   (and the same for A, C) by independence;
5. gradient flow with weight decay: dp = -alpha_p dJ/dp - eta p, dphi = -dJ/dphi - eta phi,
   ds = 2 phi dphi; EMA target d(tau phi) = beta (phi - tau phi) gives dtau;
6. a K = 2 check with full 2 x 2 matrices: the expected gradient is diagonal on the ansatz
   (the ansatz is consistent) and its diagonal equals step 4 with the spectral sums of two modes.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import metadata
from typing import NamedTuple

import sympy as sp

from . import symbols as sy
from ._cache import cache_key, load_cached, store_cached
from ._eigenmode import EigenmodeSystem
from ._interface import EigenmodeModel
from ._invariants import conservation_laws, describe_laws
from ._losses import A, B, C, is_scale_invariant, per_sample_gradient
from ._moments import gaussian_expectation
from ._spec import ModelSpec

__all__ = ["derive"]

# Random scalars of one mode and the rest of the spectrum.
x, e1, e2 = sp.symbols("x_j e1_j e2_j", real=True)
A_rest, B_rest, C_rest = sp.symbols("A_rest B_rest C_rest", real=True)
# Positive working copies: the amplitude phi = sqrt(s), its stop-gradient copy in the target,
# the frozen norms (positivity lets sqrt(N**2) simplify) and the DirectPred / fixed predictor
# eigenvalue w. Swapped for public ones at the end.
_phi, _phi_sg = sp.symbols("phi phi_sg", positive=True)
_Npsi, _Nphi = sp.symbols("N_psi N_phi", positive=True)
_w = sp.Symbol("w", positive=True)
_PUBLIC = {_Npsi: sy.N_psi, _Nphi: sy.N_phi}

_memory: dict[ModelSpec, EigenmodeSystem] = {}


def derive(spec: ModelSpec | None = None, /, *, cache: bool = True, **fields: object) -> EigenmodeModel:
    """Derive the one-mode eigenmode system of ``spec``.

    ``derive(ModelSpec(loss="cosine"))`` and ``derive(loss="cosine")`` are equivalent.
    Results are memoised in-process and cached on disk (see ``derivations.cache_dir``); pass
    ``cache=False`` to force a fresh derivation (it is still not written over a valid entry
    unless the entry is stale or corrupt).

    Parameters
    ----------
    spec : ModelSpec, optional
        The model; or give its fields as keywords.
    cache : bool
        Use the in-process memo and the disk cache.
    **fields
        The fields of a ``ModelSpec`` (loss, target, predictor, ...), when ``spec`` is not given.

    Returns
    -------
    EigenmodeModel
        An ``EigenmodeSystem``: states (p, s[, tau]) with a learned predictor, (s[, tau])
        otherwise; its ``steps`` hold every stage of the derivation. Its parameters are those
        its equations or closures use: sigma2 is absent with one noisy view where the flow
        does not depend on it (``views="one"``, frozen norms). For ``norms="exact"`` an ``ExactEigenmodes`` (the exact
        flow has no one-mode form; its ``modes(K)`` is evaluated by quadrature). For
        ``norms="expansion"`` the one-mode system of the 1/K expansion of the exact flow, its
        cumulant sums closed by ``modes(K)`` (``derivations._expansion``).

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec, or both a spec and fields are given.
    ValueError
        Unknown field values or a combination that makes no sense (see ``ModelSpec``), or a
        loss whose treated gradient is not polynomial in the rest of the spectrum.
    """
    if spec is None:
        spec = ModelSpec(**fields)
    elif fields:
        raise TypeError("pass either a ModelSpec or keyword fields to derive(), not both")
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    if cache and spec in _memory:
        return _memory[spec]
    if spec.norms == "exact":
        from ._exact import ExactEigenmodes

        base = derive(replace(spec, norms="self-consistent"), cache=cache)
        _memory[spec] = ExactEigenmodes(spec, base)
        return _memory[spec]
    key = cache_key(spec, _version())
    system = load_cached(key) if cache else None
    if system is None:
        if spec.batch_statistics:
            from ._derive_batch import derive_batch

            system = derive_batch(spec)
        elif spec.norms == "expansion":
            from ._expansion import expansion_spec, expansion_system

            system = expansion_system(spec, derive(expansion_spec(spec), cache=cache))
        else:
            system = _derive(spec)
        store_cached(key, system)
    _memory[spec] = system
    return system


def _version() -> str:
    try:
        return metadata.version("ncdyn")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "source"


# -- the model of one mode ---------------------------------------------------------------------
def _tau(spec: ModelSpec) -> sp.Expr:
    return sy.tau if spec.target == "ema" else sp.Integer(1)


def _lam(spec: ModelSpec) -> sp.Expr:
    return sy.lam if spec.data == "spectrum" else sp.Integer(1)


def _weight(spec: ModelSpec) -> sp.Expr:
    """The predictor's eigenvalue inside the derivation: p (learned) or the symbol w."""
    return sy.p if spec.predictor == "learned" else _w


def _predictor_eigenvalue(spec: ModelSpec) -> sp.Expr:
    """w in terms of s: (s/s_max)^alpha + eps (DirectPred) or 1 (none)."""
    if spec.predictor == "none":
        return sp.Integer(1)
    base = sy.s / sy.s_max if spec.normalize else sy.s
    return base**sy.alpha + (sy.eps if spec.eps else 0)


def _gauss(spec: ModelSpec) -> dict[sp.Symbol, sp.Expr]:
    """The mode's independent Gaussians and their variances."""
    out = {x: _lam(spec), e2: sy.sigma2}
    if spec.views == "both":
        out[e1] = sy.sigma2
    return out


def _outputs(spec: ModelSpec, phi_target: sp.Symbol = _phi_sg) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(z, a, b) of one mode: z = phi x1, a = w z, b = tau phi_t x2."""
    x1 = x + e1 if spec.views == "both" else x
    z = _phi * x1
    target_amp = _tau(spec) * (phi_target if spec.stop_gradient else _phi)
    return z, _weight(spec) * z, target_amp * (x + e2)


def _outer_partials(spec: ModelSpec) -> tuple[dict[sp.Symbol, sp.Expr], dict]:
    """L_A, L_B, L_C after the norm and moment treatment, and the substitutions made."""
    L = spec.loss_expr
    treatment: dict = {}
    if spec.involves_norms:
        treatment[A] = _Npsi**2
        treatment[C] = _Nphi**2
        if spec.moments == "leading":
            treatment[B] = sy.T
    partials = {v: sp.simplify(sp.diff(L, v).subs(treatment)) for v in (A, B, C)}
    return partials, treatment


def _mode_gradients(spec: ModelSpec, partials: dict) -> dict[sp.Symbol, sp.Expr]:
    """Per-sample dL/dw (learned predictor) and dL/dphi of one mode, polynomials in the
    mode's Gaussians and the rest of the spectrum."""
    z, a, b = _outputs(spec)
    values = {A: a**2 + A_rest, B: a * b + B_rest, C: b**2 + C_rest}
    LA, LB, LC = (partials[v].subs(values, simultaneous=True) for v in (A, B, C))

    def grad(theta):
        return LA * sp.diff(values[A], theta) + LB * sp.diff(values[B], theta) + LC * sp.diff(values[C], theta)

    grads = {}
    if spec.predictor == "learned":
        grads[sy.p] = grad(sy.p)
    if spec.isoloss:
        x1 = sp.diff(z, _phi)
        grads[_phi] = (2 * LA * a + LB * b) * x1  # g x1^T: no predictor factor
    else:
        grads[_phi] = grad(_phi)  # w and the stop-gradient copy phi_sg held fixed
    return {k: sp.expand(g.subs(_phi_sg, _phi)) for k, g in grads.items()}


def _means(spec: ModelSpec) -> dict[str, sp.Expr]:
    """E<a,a>, E<a,b>, E<b,b> of one mode, in phi and w (or p)."""
    _, a, b = _outputs(spec, _phi)
    gauss = _gauss(spec)
    return {
        "E<a,a>": gaussian_expectation(a**2, list(gauss), gauss),
        "E<a,b>": gaussian_expectation(a * b, list(gauss), gauss),
        "E<b,b>": gaussian_expectation(b**2, list(gauss), gauss),
    }


def feature_covariances(spec: ModelSpec) -> dict[str, sp.Expr]:
    """E<z,a> and E<z,b> of one mode in s, z = phi x1 the online features before the predictor
    (a = w z): the covariances of the leg that carries the IsoLoss gradient g x1^T to Phi.

    Parameters
    ----------
    spec : ModelSpec
        The model.

    Returns
    -------
    dict of str -> sympy.Expr
        ``{"E<z,a>": ..., "E<z,b>": ...}`` in the states and parameters of ``derive(spec)``.
    """
    z, a, b = _outputs(spec, _phi)
    gauss = _gauss(spec)
    return {
        f"E<z,{name}>": _finish(_to_s(gaussian_expectation(z * out, list(gauss), gauss)), spec)
        for name, out in (("a", a), ("b", b))
    }


def _expectation(expr: sp.Expr, spec: ModelSpec) -> sp.Expr:
    """E over the mode's Gaussians and the independent rest of the spectrum."""
    poly = sp.Poly(expr, A_rest, B_rest, C_rest)
    if poly.total_degree() > 1:
        raise ValueError(
            f"{spec.label}: after the norm and moment treatment the per-sample gradient is "
            "non-linear in the rest of the spectrum, whose higher moments are not modelled; "
            "use moments='leading' or a loss of lower degree in A, B, C"
        )
    gauss = _gauss(spec)
    means = _means(spec)
    rest_mean = {
        A_rest: _Npsi**2 - means["E<a,a>"],
        B_rest: sy.T - means["E<a,b>"],
        C_rest: _Nphi**2 - means["E<b,b>"],
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


def _finish(expr: sp.Expr, spec: ModelSpec) -> sp.Expr:
    """Public symbols and the predictor eigenvalue w written in s."""
    expr = expr.xreplace(_PUBLIC)
    if spec.predictor != "learned":
        expr = expr.subs(_w, _predictor_eigenvalue(spec))
    return sp.expand(expr)


# -- the K = 2 check of the ansatz ----------------------------------------------------------------
class TwoModeSample(NamedTuple):
    """One sample of two modes with full 2 x 2 weight matrices (``two_mode_sample``)."""

    Psi: sp.Matrix
    Phi: sp.Matrix
    x1: sp.Matrix
    x2: sp.Matrix
    a: sp.Matrix
    b: sp.Matrix
    vals: dict
    gauss: dict
    point: dict
    partials: tuple


def two_mode_sample(spec: ModelSpec, partials: dict, ws, phis, taus, lams) -> TwoModeSample:
    """One sample of two modes with full 2 x 2 weight matrices: the matrices of symbols Psi,
    Phi (entries Psi_ij, Phi_ij), the views x1, x2, the outputs a = W_P Phi x1 and b (the
    target's), the inner products ``vals`` {A, B, C}, the loss's ``partials`` (dL/dA, dL/dB,
    dL/dC) at them, the Gaussian variances ``gauss`` of the sample's symbols and ``point``, the
    aligned values of the matrix entries (W_P = diag(ws), Phi = diag(phis), the target
    diag(taus phis); lams the data variances)."""
    K = 2
    learned = spec.predictor == "learned"
    Psi = sp.Matrix(K, K, lambda i, j: sp.Symbol(f"Psi_{i}{j}"))
    Phi = sp.Matrix(K, K, lambda i, j: sp.Symbol(f"Phi_{i}{j}"))
    W = Psi if learned else sp.diag(*ws)
    xs = sp.symbols(f"x_1:{K + 1}", real=True)
    e1s = sp.symbols(f"e1_1:{K + 1}", real=True)
    e2s = sp.symbols(f"e2_1:{K + 1}", real=True)
    x1 = sp.Matrix([xs[k] + (e1s[k] if spec.views == "both" else 0) for k in range(K)])
    x2 = sp.Matrix([xs[k] + e2s[k] for k in range(K)])
    a = W * Phi * x1
    target = sp.diag(*[taus[k] * phis[k] for k in range(K)]) if spec.stop_gradient else Phi
    b = target * x2
    vals = {A: (a.T * a)[0], B: (a.T * b)[0], C: (b.T * b)[0]}
    gauss = {**{v: lams[k] for k, v in enumerate(xs)}, **{v: sy.sigma2 for v in e2s}}
    if spec.views == "both":
        gauss.update({v: sy.sigma2 for v in e1s})
    point = {Psi[i, j]: (ws[i] if i == j else 0) for i in range(K) for j in range(K)}
    point.update({Phi[i, j]: (phis[i] if i == j else 0) for i in range(K) for j in range(K)})
    return TwoModeSample(Psi, Phi, x1, x2, a, b, vals, gauss, point,
                         tuple(partials[v].subs(vals, simultaneous=True) for v in (A, B, C)))


def _ansatz_check(spec: ModelSpec, partials: dict, expected: dict) -> dict:
    """Expected gradients with full 2 x 2 matrices at the aligned ansatz (two modes).

    Differentiates the per-sample loss with respect to every matrix entry, sets
    Psi = diag(p1, p2) (or W_P = diag(w1, w2)), Phi = diag(phi1, phi2), Phi_a =
    diag(tau1 phi1, tau2 phi2) and averages. Raises RuntimeError unless the result is diagonal
    and its diagonal equals the one-mode result with the rest of the spectrum equal to the
    other mode.
    """
    K = 2
    ema, learned = spec.target == "ema", spec.predictor == "learned"
    ws = sp.symbols(f"p_1:{K + 1}") if learned else sp.symbols(f"w_1:{K + 1}", positive=True)
    phis = sp.symbols(f"phi_1:{K + 1}", positive=True)
    taus = sp.symbols(f"tau_1:{K + 1}") if ema else (sp.Integer(1),) * K
    lams = sp.symbols(f"lambda_1:{K + 1}", positive=True) if spec.data == "spectrum" else (sp.Integer(1),) * K
    Psi, Phi, x1, _, a, b, vals, gauss, point, (LA, LB, LC) = two_mode_sample(spec, partials, ws, phis, taus, lams)
    one = _means(spec)

    def per_mode(expr, k):
        subs = {_weight(spec): ws[k], _phi: phis[k], sy.lam: lams[k]}
        if ema:
            subs[sy.tau] = taus[k]
        return expr.subs(subs, simultaneous=True)

    sums = {
        sy.T: sum(per_mode(one["E<a,b>"], k) for k in range(K)),
        _Npsi: sp.sqrt(sum(per_mode(one["E<a,a>"], k) for k in range(K))),
        _Nphi: sp.sqrt(sum(per_mode(one["E<b,b>"], k) for k in range(K))),
    }
    if spec.involves_norms:  # frozen or self-consistent norms stay parameters here
        sums.pop(_Npsi)
        sums.pop(_Nphi)

    def expected_matrix(M: sp.Matrix, iso: bool) -> sp.Matrix:
        g_a = 2 * LA * a + LB * b

        def entry(i, j):
            if iso:
                g = g_a[i] * x1[j]
            else:
                g = LA * sp.diff(vals[A], M[i, j]) + LB * sp.diff(vals[B], M[i, j]) + LC * sp.diff(vals[C], M[i, j])
            g = sp.expand(g.xreplace(point))
            return sp.expand(gaussian_expectation(g, list(gauss), gauss).subs(sums))

        return sp.Matrix(K, K, entry)

    result = {"E[dL/dPhi]": (expected_matrix(Phi, spec.isoloss), expected[_phi])}
    if learned:
        result["E[dL/dPsi]"] = (expected_matrix(Psi, False), expected[sy.p])
    for name, (M, one_mode) in result.items():
        for i in range(K):
            for j in range(K):
                if i != j and sp.simplify(M[i, j]) != 0:
                    raise RuntimeError(f"aligned ansatz inconsistent: {name}[{i},{j}] = {M[i, j]}")
            if sp.simplify(M[i, i] - per_mode(one_mode, i).subs(sums)) != 0:
                raise RuntimeError(f"two-mode check failed for {name}[{i},{i}]")
    return {k: M.xreplace(_PUBLIC) for k, (M, _) in result.items()}


# -- assembling the system --------------------------------------------------------------------
def _learning_rule(spec: ModelSpec) -> str:
    """The per-sample learning rule of the spec, in words and symbols."""
    route = "g x1^T (IsoLoss: no predictor factor)" if spec.isoloss else "W_P^T g x1^T"
    rule = f"g = dL/da = 2 L_A a + L_B b; dL/dPhi = {route}"
    if not spec.stop_gradient:
        rule += " + (2 L_C b + L_B a) x2^T (no stop-gradient)"
    if spec.predictor == "learned":
        rule += "; dL/dPsi = g (Phi x1)^T"
    elif spec.predictor == "directpred":
        rule += "; W_P = F^alpha set in closed form (no gradient)"
    return rule


def _derive(spec: ModelSpec) -> EigenmodeSystem:
    p, s, tau = sy.p, sy.s, sy.tau
    partials, treatment = _outer_partials(spec)
    grads = _mode_gradients(spec, partials)
    expected = {theta: _expectation(g, spec) for theta, g in grads.items()}

    states, rhs = [], []
    if spec.predictor == "learned":
        states.append(p)
        rhs.append(_to_s(-sy.alpha_p * expected[p] - sy.eta * p))
    rate = _to_s(sp.cancel(-expected[_phi] / _phi) - sy.eta)  # dphi/dt = phi * rate
    states.append(s)
    rhs.append(2 * s * rate)
    if spec.target == "ema":
        states.append(tau)
        rhs.append(sy.beta * (1 - tau) - tau * rate)  # d(tau phi)/dt = beta (phi - tau phi)
    rhs = [_finish(r, spec) for r in rhs]
    rate = _finish(rate, spec)

    means = {k: _finish(_to_s(v), spec) for k, v in _means(spec).items()}
    steps = {
        "per_sample_loss": spec.loss_expr,
        "learning_rule": _learning_rule(spec),
        "treatment": {k: v.xreplace(_PUBLIC) for k, v in treatment.items()},
        "mode_gradient": {
            (f"dL/d{k}" if k is not _phi else "dL/dphi"): v.xreplace(_PUBLIC) for k, v in grads.items()
        },
        "expected_gradient": {
            (f"dJ/d{k}" if k is not _phi else "dJ/dphi"): v.xreplace(_PUBLIC) for k, v in expected.items()
        },
        "ansatz_check": _ansatz_check(spec, partials, expected),
        "spectral_sums": means,
        "amplitude_rate": rate,
        "eigenmode_flow": dict(zip(map(str, states), rhs)),
    }
    if spec.predictor == "learned" and spec.stop_gradient and not spec.isoloss:
        steps["per_sample_gradient"] = per_sample_gradient(spec.loss_expr)
    params = _params_of(spec, states, rhs)
    closures = _closures(spec, means, params)
    params = _used(params, rhs, closures)
    system = EigenmodeSystem(
        tuple(states),
        params,
        sp.ImmutableMatrix(rhs),
        spec=spec,
        steps=steps,
        closures=closures,
        **_model_facts(spec, states, rhs, params),
    )
    laws = conservation_laws(system)
    return replace(system, laws=laws, description=describe_laws(spec, laws))


_PARAM_DOMAIN = {
    sy.sigma2: sp.Interval(0, sp.oo),
    sy.eta: sp.Interval(0, sp.oo),
    sy.alpha_p: sp.Interval.open(0, sp.oo),
    sy.beta: sp.Interval(0, sp.oo),
    sy.alpha: sp.Interval.open(0, sp.oo),
    sy.eps: sp.Interval(0, sp.oo),
    sy.s_max: sp.Interval.open(0, sp.oo),
    sy.lam: sp.Interval(0, sp.oo),
    sy.N_psi: sp.Interval.open(0, sp.oo),
    sy.N_phi: sp.Interval.open(0, sp.oo),
}


def _model_facts(spec: ModelSpec, states: list, rhs: list, params: tuple) -> dict:
    """What the model says about its eigenmode system, as data for the numerics: s is an
    eigenvalue of Phi Phi^T (s >= 0), the parameters' domains, collapse where the mode's
    output vanishes, and the invariant manifold s = p**2/alpha_p where the balance law holds
    (learned predictor with stop-gradient)."""
    learned = spec.predictor == "learned"
    manifold = None
    if learned:
        dp, ds = rhs[0], rhs[1]
        q = sy.s - sy.p**2 / sy.alpha_p
        if sp.simplify(ds - 2 * sy.p * dp / sy.alpha_p + 2 * sy.eta * q) == 0:
            manifold = {"s": sy.p**2 / sy.alpha_p}
    names = {str(v) for v in list(states) + list(params)}
    scaling = None
    if learned and not spec.isoloss and is_scale_invariant(spec.loss_expr):
        # the true loss does not see the scale lambda: p ~ lambda, s ~ lambda^2, hence
        # N_psi^2 = c sum p^2 s ~ lambda^4, N_phi^2 = c sum tau^2 s ~ lambda^2, T = sum tau p s ~ lambda^3
        powers = {"p": 1, "s": 2, "N_psi": 2, "N_phi": 1, "T": 3}
        scaling = {k: v for k, v in powers.items() if k in names}
    elif spec.predictor == "directpred" and not spec.eps and not spec.isoloss and is_scale_invariant(spec.loss_expr):
        # W_P = F^alpha (or (F/s_max)^alpha) only rescales with Phi, which the loss does not see,
        # and is not differentiated: s ~ lambda^2 (eps would add a scale of its own)
        scaling = {"s": 2}
    return {
        "state_domain": {"s": sp.Interval(0, sp.oo)},
        "param_domain": {str(v): _PARAM_DOMAIN[v] for v in params if v in _PARAM_DOMAIN},
        "collapse": ("p", "s") if learned else ("s",),
        # the predictor collapses while s stays finite: a finite-time singularity of the closures N_psi -> 0
        "partial_collapse": {"predictor": ("p",)} if learned else {},
        "manifold": manifold,
        "scaling": scaling,
        "weight_decay": str(sy.eta) if scaling is not None else None,
        "name": spec.label,
    }


def _params_of(spec: ModelSpec, states: list, rhs: list) -> tuple[sp.Symbol, ...]:
    """Parameters in canonical order: the model's and the spectral ones that the equations use
    (``_used`` then drops the model's that neither equations nor closures use). Every free
    symbol of the rhs must be a state or a parameter."""
    model = [sy.sigma2, sy.eta]
    if spec.predictor == "learned":
        model.append(sy.alpha_p)
    if spec.target == "ema":
        model.append(sy.beta)
    if spec.predictor == "directpred":
        model.append(sy.alpha)
        if spec.eps:
            model.append(sy.eps)
        if spec.normalize:
            model.append(sy.s_max)
    if spec.data == "spectrum":
        model.append(sy.lam)
    free = set().union(*(r.free_symbols for r in rhs)) - set(states)
    spectral = [v for v in (sy.N_psi, sy.N_phi, sy.T) if v in free]
    unexpected = free - set(model) - set(spectral)
    if unexpected:
        raise RuntimeError(f"derivation left unexpected symbols {unexpected}")
    return tuple(model + spectral)


def _used(params: tuple[sp.Symbol, ...], rhs: list, closures: tuple) -> tuple[sp.Symbol, ...]:
    """The parameters that the equations or the spectral closures use, in order: a model
    parameter the flow does not depend on (sigma2 with one noisy view, where c = E[x1^2] has no
    noise and the target's noise averages out; lambda where the drive cancels) is not asked
    for."""
    used = set().union(*(r.free_symbols for r in rhs), *(summand.free_symbols for _, summand, _ in closures))
    return tuple(v for v in params if v in used)


def _closures(spec: ModelSpec, sums: dict[str, sp.Expr], params: tuple) -> tuple:
    """Spectral closures (param, per-mode summand, reduction): param = (sum_k summand_k)**power
    for a numeric power, or max_k summand_k for "max".

    T is always the spectral sum E<a, b>; the norms are closed for self-consistent norms and for
    losses polynomial in A, B, C (there E||a||^2 is exact); s_max = max_k s_k (DirectPred's
    normalisation by the largest eigenvalue).
    """
    out = []
    if sy.s_max in params:  # first: the other summands use it
        out.append((sy.s_max, sy.s, "max"))
    if sy.T in params:
        out.append((sy.T, sums["E<a,b>"], sp.Integer(1)))
    if spec.norms == "self-consistent" or not spec.involves_norms:
        if sy.N_psi in params:
            out.append((sy.N_psi, sums["E<a,a>"], sp.Rational(1, 2)))
        if sy.N_phi in params:
            out.append((sy.N_phi, sums["E<b,b>"], sp.Rational(1, 2)))
    return tuple(out)
