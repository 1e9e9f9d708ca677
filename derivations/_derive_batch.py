"""The eigenmode flow of a loss of the batch's moment matrices (Barlow Twins, VICReg, spectral
contrastive), derived by SymPy with the steps of ``derive``.

Pipeline (each stage is kept in ``system.steps``):

1. the loss as per-dimension and per-pair terms of the moment matrices C = E[z1 z2^T],
   V1 = E[z1 z1^T], V2 = E[z2 z2^T] (``derivations.batch_loss``); at a finite batch the
   expected batch terms (Isserlis, Wishart), with the batch size as the parameter ``batch``;
2. eigenmode ansatz: Phi = diag(phi) in the data's eigenbasis (s = phi^2), the target branch
   Phi_t = Phi (or its stop-gradient copy); mode j has the moments C_jj = phi phi_t lambda,
   V1_jj = phi^2 (lambda + sigma2) (lambda with one noisy view), V2_jj = phi_t^2 (lambda +
   sigma2) and no off-diagonal moments; the other modes enter through the spectral sums
   V1 = E||z1||^2 and V2 = E||z2||^2, on which the pair terms depend linearly;
3. the gradient of the mode's loss with respect to phi (phi_t held fixed under stop-gradient);
4. gradient flow with weight decay: dphi/dt = -dJ/dphi - eta phi, ds/dt = 2 phi dphi/dt;
5. a K = 2 check with full 2 x 2 weights: the gradient of the loss of the full moment matrices
   is diagonal on the ansatz and its diagonal equals step 3 with the spectral sums of two modes.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from . import symbols as sy
from ._batch_losses import DIAGONAL, LOSS_PARAM_DOMAIN, PAIR, BatchLoss, batch_loss, weights_of
from ._derive import _PARAM_DOMAIN, _lam
from ._eigenmode import EigenmodeSystem
from ._invariants import ConservationLaw
from ._spec import ModelSpec

__all__ = ["derive_batch"]

_phi, _phi_t = sp.symbols("phi phi_t", positive=True)
_s = sp.Symbol("s", positive=True)
_rest1, _rest2 = sp.symbols("V1_rest V2_rest", positive=True)


def _variances(spec: ModelSpec, lam: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """E[x1^2], E[x2^2] of a mode with data variance lam."""
    return lam + (sy.sigma2 if spec.views == "both" else 0), lam + sy.sigma2


def _mode_moments(spec: ModelSpec, phi: sp.Expr, phi_t: sp.Expr, lam: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(C_jj, V1_jj, V2_jj) of one aligned mode."""
    var1, var2 = _variances(spec, lam)
    return phi * phi_t * lam, phi**2 * var1, phi_t**2 * var2


def _summed_over_others(term: sp.Expr, other: tuple[sp.Symbol, sp.Symbol], spec: ModelSpec) -> sp.Expr:
    """sum over the other modes k of a pair term that is linear in mode k's (V1_kk, V2_kk):
    those replaced by the spectral sums of the rest, V1_rest and V2_rest."""
    if term == 0:
        return sp.Integer(0)
    poly = sp.Poly(sp.expand(term), *other)
    if poly.total_degree() > 1 or poly.coeff_monomial(1) != 0:
        raise ValueError(
            f"{spec.label}: the pair term {term} is not linear in the other mode's moments, so the other modes "
            "do not enter through spectral sums; the eigenmode reduction does not hold for it"
        )
    return sp.expand(term.xreplace(dict(zip(other, (_rest1, _rest2)))))


def _mode_loss(loss: BatchLoss, spec: ModelSpec) -> tuple[sp.Expr, dict]:
    """The loss terms that involve one mode (phi, with the target amplitude phi_t), the rest of
    the spectrum in V1_rest, V2_rest; and the mode's moments."""
    c, v1, v2 = _mode_moments(spec, _phi, _phi_t, _lam(spec))
    mine = dict(zip(DIAGONAL, (c, v1, v2)))
    cij, cji, v1ij, v2ij, v1i, v1j, v2i, v2j = PAIR
    aligned = loss.pair.xreplace({cij: 0, cji: 0, v1ij: 0, v2ij: 0})
    first = aligned.xreplace({v1i: v1, v2i: v2})    # pairs (this mode, k)
    second = aligned.xreplace({v1j: v1, v2j: v2})   # pairs (k, this mode)
    pairs = _summed_over_others(first, (v1j, v2j), spec) + _summed_over_others(second, (v1i, v2i), spec)
    return loss.diagonal.xreplace(mine) + pairs, {"C_jj": c, "V1_jj": v1, "V2_jj": v2}


def _gradient(J: sp.Expr, spec: ModelSpec) -> sp.Expr:
    """dJ/dphi with the target amplitude held fixed under stop-gradient, then phi_t = phi."""
    if not spec.stop_gradient:
        J = J.xreplace({_phi_t: _phi})
    g = sp.diff(J, _phi).xreplace({_phi_t: _phi})
    return g.replace(sp.DiracDelta, lambda *args: sp.Integer(0))


def _in_s(expr: sp.Expr, spec: ModelSpec) -> sp.Expr:
    """An expression in phi (even in phi) and the rest sums, written in s and V1, V2: collected
    by its Heaviside factors (the smooth pieces), each coefficient factored."""
    _, v1, v2 = _mode_moments(spec, _phi, _phi, _lam(spec))
    expr = expr.xreplace({_rest1: sy.V1 - v1, _rest2: sy.V2 - v2})
    expr = sp.expand(sp.powsimp(expr.subs(_phi, sp.sqrt(_s))))
    if expr.has(_phi) or any(isinstance(t, sp.Pow) and t.base == _s and not t.exp.is_integer
                             for t in sp.preorder_traversal(expr)):
        raise RuntimeError(f"the eigenmode projection left odd powers of phi: {expr}")
    switches = sorted(expr.atoms(sp.Heaviside), key=str)
    pieces = sp.collect(expr, switches, evaluate=False) if switches else {sp.Integer(1): expr}
    out = sum(sp.factor(coeff) * key for key, coeff in pieces.items())
    return out.xreplace({_s: sy.s})


def _ansatz_check(loss: BatchLoss, spec: ModelSpec, gradient: sp.Expr) -> dict:
    """The gradient of the loss of full 2 x 2 moment matrices at the aligned ansatz.

    Phi = [[Phi_00, Phi_01], [Phi_10, Phi_11]] (and the target branch Phi, or its
    stop-gradient copy diag(phi_1, phi_2)); C = Phi diag(lambda) Phi_t^T, V1 = Phi
    diag(E x1^2) Phi^T, V2 = Phi_t diag(E x2^2) Phi_t^T. Raises RuntimeError unless the
    gradient is diagonal at Phi = diag(phi_1, phi_2) and its diagonal equals the one-mode
    gradient with the rest of the spectrum equal to the other mode.
    """
    K = 2
    phis = sp.symbols(f"phi_1:{K + 1}", positive=True)
    lams = sp.symbols(f"lambda_1:{K + 1}", positive=True) if spec.data == "spectrum" else (sp.Integer(1),) * K
    Phi = sp.Matrix(K, K, lambda i, j: sp.Symbol(f"Phi_{i}{j}", real=True))
    Phi_t = Phi if not spec.stop_gradient else sp.diag(*phis)
    var = [_variances(spec, lam) for lam in lams]
    C = Phi * sp.diag(*lams) * Phi_t.T
    V1 = Phi * sp.diag(*[v[0] for v in var]) * Phi.T
    V2 = Phi_t * sp.diag(*[v[1] for v in var]) * Phi_t.T
    L = loss.full(C, V1, V2)
    point = {Phi[i, j]: (phis[i] if i == j else 0) for i in range(K) for j in range(K)}
    M = sp.Matrix(K, K, lambda i, j: sp.diff(L, Phi[i, j]).replace(sp.DiracDelta, lambda *a: sp.Integer(0)).xreplace(point))
    for i in range(K):
        for j in range(K):
            if i != j and sp.simplify(M[i, j]) != 0:
                raise RuntimeError(f"aligned ansatz inconsistent: dL/dPhi[{i},{j}] = {M[i, j]}")
        other = 1 - i
        _, v1o, v2o = _mode_moments(spec, phis[other], phis[other], lams[other])
        one = gradient.xreplace({_rest1: v1o, _rest2: v2o}).xreplace({_phi: phis[i]})
        if spec.data == "spectrum":
            one = one.xreplace({sy.lam: lams[i]})
        if sp.simplify(M[i, i] - one) != 0:
            raise RuntimeError(f"two-mode check failed for dL/dPhi[{i},{i}]: {sp.simplify(M[i, i] - one)}")
    return {"dL/dPhi": M}


def _params(spec: ModelSpec, rhs: sp.Expr) -> tuple[sp.Symbol, ...]:
    """The parameters the flow uses, in canonical order."""
    order = [sy.sigma2, sy.eta]
    if spec.data == "spectrum":
        order.append(sy.lam)
    order += list(weights_of(spec.loss))
    order += [sy.batch, sy.V1, sy.V2]
    free = rhs.free_symbols - {sy.s}
    unexpected = free - set(order)
    if unexpected:
        raise RuntimeError(f"derivation left unexpected symbols {unexpected}")
    return tuple(v for v in order if v in free)


def _laws(spec: ModelSpec, ds: sp.Expr) -> tuple[ConservationLaw, ...]:
    """The per-mode scale law: ds/dt = -2 eta s when the loss does not see a mode's scale."""
    residual = sp.simplify(ds + 2 * sy.eta * sy.s)
    note = ("the loss does not see the scale of an aligned mode (every batch correlation is invariant to it), so "
            "weight decay alone moves s" if residual == 0 else "the loss drives the mode's scale")
    return (ConservationLaw("mode scale", sy.s, -2 * sy.eta, residual == 0, residual, note),)


def derive_batch(spec: ModelSpec) -> EigenmodeSystem:
    """The one-mode eigenmode system of a loss of the batch's moments (see the module docstring).

    Parameters
    ----------
    spec : ModelSpec
        A model with ``spec.batch_statistics``.

    Returns
    -------
    EigenmodeSystem
        States (s,); parameters sigma2, eta, [lambda], the loss's weights and, at a finite
        batch or where modes couple, batch and the spectral sums V1 = E||z1||^2,
        V2 = E||z2||^2 (closed by ``modes(K)``).

    Raises
    ------
    ValueError
        ``spec`` is not a loss of the batch's moments.
    """
    if not spec.batch_statistics:
        raise ValueError(f"derive_batch: spec={spec.label!r} is not a loss of the batch's moments")
    loss = batch_loss(spec.loss, standardize=spec.standardize, finite=spec.batch == "finite")
    J, moments = _mode_loss(loss, spec)
    gradient = _gradient(J, spec)
    rate = _in_s(-gradient / _phi - sy.eta, spec)
    ds = _in_s(2 * _phi**2 * (-gradient / _phi - sy.eta), spec)
    params = _params(spec, ds)
    _, v1, v2 = _mode_moments(spec, sp.sqrt(sy.s), sp.sqrt(sy.s), _lam(spec))
    sums = {"E||z1||^2": sp.expand(v1), "E||z2||^2": sp.expand(v2)}
    closures = tuple((p, summand, sp.Integer(1)) for p, summand in ((sy.V1, sums["E||z1||^2"]), (sy.V2, sums["E||z2||^2"]))
                     if p in params)
    steps = {
        "batch_loss": loss.definition,
        "batch_effect": loss.batch_effect or "population loss (the batch loss as B -> infinity)",
        "loss_terms": {"diagonal": loss.diagonal, "pair": loss.pair},
        "mode_moments": moments,
        "mode_loss": J.xreplace({_rest1: sp.Symbol("V1_rest"), _rest2: sp.Symbol("V2_rest")}),
        "mode_gradient": {"dJ/dphi": gradient},
        "ansatz_check": _ansatz_check(loss, spec, gradient),
        "spectral_sums": sums,
        "amplitude_rate": rate,
        "eigenmode_flow": {"s": ds},
    }
    domains = {**_PARAM_DOMAIN, **LOSS_PARAM_DOMAIN}
    scale_free = spec.loss == "barlow-twins" and spec.standardize
    system = EigenmodeSystem(
        (sy.s,), params, sp.ImmutableMatrix([ds]),
        spec=spec, steps=steps, closures=closures,
        state_domain={"s": sp.Interval(0, sp.oo)},
        param_domain={str(v): domains[v] for v in params if v in domains},
        collapse=("s",), partial_collapse={}, manifold=None,
        scaling={"s": 2} if scale_free else None,
        weight_decay=str(sy.eta) if scale_free else None,
        name=spec.label,
    )
    laws = _laws(spec, ds)
    lines = [f"Loss of the batch's moments: {loss.definition}.",
             f"Batch: {steps['batch_effect']}."]
    lines += [("keeps " if law.holds else "breaks ") + f"the {law.name} law: {law.note}" for law in laws]
    return replace(system, laws=laws, description="\n".join(lines))
