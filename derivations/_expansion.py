"""The exact finite-width flow of the cosine loss expanded in 1/K (``norms="expansion"``).

Mode k carries the zero-mean Gaussian pair (a_k, b_k) with covariance
[[alpha_k, gamma_k], [gamma_k, beta_k]], independent across modes, and the cosine loss
L = -B/sqrt(A C) (A = sum a_k^2, B = sum a_k b_k, C = sum b_k^2) drives every mode through

    G_j = E[a_j dL/da_j] = -E[a_j b_j A^(-1/2) C^(-1/2)] + E[B a_j^2 A^(-3/2) C^(-1/2)]

(``derivations._exact``). A, B, C are sums of K independent terms, so they fluctuate about
their means N_psi^2 = sum alpha_k, T = sum gamma_k, N_phi^2 = sum beta_k by O(K^(-1/2))
relative. The expansion (delta method, derived by SymPy in ``expansion_terms``):

1. write A = N_psi^2 + (a_j^2 - alpha_j) + dA_rest, C = N_phi^2 + (b_j^2 - beta_j) + dC_rest,
   B = a_j b_j + (T - gamma_j) + dB_rest, where the rest of the spectrum (k != j) enters
   through its central fluctuations dA_rest, dB_rest, dC_rest;
2. Taylor-expand A^(-m/2) C^(-n/2) about (N_psi^2, N_phi^2) to total degree 2 n_order in the
   fluctuations;
3. average: mode j by Isserlis (exact Gaussian moments of a_j, b_j), the rest by its joint
   cumulants, kappa_rest = kappa - kappa_j, where kappa_{ABC...} = sum_k kappa_k are the
   joint cumulants of the sums A, B, C (the spectral sums of the per-mode cumulants of
   (a_k^2, a_k b_k, b_k^2): kappa_AA = Var A = 2 sum alpha_k^2, kappa_AB = 2 sum alpha_k gamma_k,
   kappa_AC = 2 sum gamma_k^2, kappa_BC = 2 sum beta_k gamma_k, kappa_CC = 2 sum beta_k^2, ...);
4. order by order in 1/K (per-mode quantities O(1), every spectral sum O(K)):
   G_j = G_j^(0) + G_j^(1) + ..., G_j^(n) = O(K^(-1-n)).

The leading term G^(0) = -gamma_j/(N_psi N_phi) + T alpha_j/(N_psi^3 N_phi) is the
self-consistent, leading-moment closure; the exact-moment Isserlis term 2 alpha_j gamma_j
belongs to G^(1), together with the norm fluctuations. Order n needs the cumulants of degree
<= 2n (order 1: the covariances of A, B, C; order 2: also the third and fourth cumulants).
The flow follows from G as in the exact system (p dJ/dp = phi dJ/dphi = G_j).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from functools import lru_cache

import sympy as sp

from . import symbols as sy
from ._eigenmode import EigenmodeSystem
from ._invariants import conservation_laws
from ._spec import ModelSpec

__all__ = ["expansion_terms", "expansion_system", "MODE_MOMENTS"]

alpha_j, beta_j, gamma_j = sp.symbols("alpha_j beta_j gamma_j", positive=True)
MODE_MOMENTS = (alpha_j, beta_j, gamma_j)
"""The symbols of one mode's covariance: alpha_j = E a_j^2, beta_j = E b_j^2, gamma_j = E a_j b_j."""

_Npsi, _Nphi = sp.symbols("N_psi N_phi", positive=True)
_eps = sp.Symbol("epsilon", positive=True)  # bookkeeping: every spectral sum is O(1/epsilon) = O(K)


def _cumulant_name(n: tuple[int, int, int]) -> str:
    return "kappa_" + "A" * n[0] + "B" * n[1] + "C" * n[2]


@lru_cache(maxsize=4)
def mode_cumulants(degree: int) -> dict[tuple[int, int, int], sp.Expr]:
    """Joint cumulants of (a^2, a b, b^2) for one Gaussian mode, of total degree 2..``degree``.

    From the cumulant generating function log E exp(t1 a^2 + t2 a b + t3 b^2)
    = -1/2 log det(I - 2 M Sigma), M = [[t1, t2/2], [t2/2, t3]], Sigma the mode covariance.

    Returns
    -------
    dict
        {(l, m, n): kappa_lmn} in alpha_j, beta_j, gamma_j (l, m, n the orders in a^2, a b, b^2).
    """
    t = sp.symbols("t1:4")
    M = sp.Matrix([[t[0], t[1] / 2], [t[1] / 2, t[2]]])
    S = sp.Matrix([[alpha_j, gamma_j], [gamma_j, beta_j]])
    cgf = -sp.log(sp.expand((sp.eye(2) - 2 * M * S).det())) / 2
    out = {}
    for n in itertools.product(range(degree + 1), repeat=3):
        if 2 <= sum(n) <= degree:
            d = cgf
            for v, k in zip(t, n):
                d = sp.diff(d, v, k)
            out[n] = sp.expand(d.subs({v: 0 for v in t}))
    return out


def _mode_moment(i: int, l: int) -> sp.Expr:
    """E[a^i b^l] of the mode (Isserlis), from the moment generating function."""
    if (i + l) % 2:
        return sp.Integer(0)
    u, w = sp.symbols("u w")
    mgf = sp.exp((alpha_j * u**2 + 2 * gamma_j * u * w + beta_j * w**2) / 2)
    return sp.expand(sp.diff(mgf, u, i, w, l).subs({u: 0, w: 0}))


def _rest_moments(kappa: dict, symbols: dict, degree: int) -> dict[tuple[int, int, int], sp.Expr]:
    """Central joint moments of (dA_rest, dB_rest, dC_rest) up to ``degree``, from the rest's
    cumulants kappa_n / epsilon - kappa_n(mode j) (moment generating function exp of the
    cumulant series)."""
    t = sp.symbols("t1:4")
    series = sum(
        (symbols[n] / _eps - kappa[n]) * sp.prod([t[i] ** n[i] / sp.factorial(n[i]) for i in range(3)])
        for n in kappa
    )
    mgf, power = sp.Integer(1), sp.Integer(1)
    for k in range(1, degree // 2 + 1):
        power = sp.expand(power * series)
        power = sum(term for term in power.as_ordered_terms() if sp.Poly(term, *t).total_degree() <= degree)
        mgf += power / sp.factorial(k)
    out = {}
    for mon, coef in sp.Poly(sp.expand(mgf), *t).terms():
        if sum(mon) <= degree:
            out[mon] = coef * sp.prod([sp.factorial(m) for m in mon])
    return out


@lru_cache(maxsize=4)
def expansion_terms(order: int) -> tuple[tuple[sp.Expr, ...], dict[str, sp.Expr]]:
    """The terms G^(0), ..., G^(order) of G_j = E[a_j dL/da_j] for the cosine loss, in 1/K.

    Parameters
    ----------
    order : int
        The number of corrections beyond the leading term (1 or 2).

    Returns
    -------
    terms : tuple of sympy.Expr
        G^(n), n = 0..order, in the mode's ``MODE_MOMENTS`` (alpha_j, beta_j, gamma_j), the
        norms N_psi, N_phi (N_psi^2 = sum_k alpha_k, N_phi^2 = sum_k beta_k), T = sum_k gamma_k
        and the cumulant sums ``kappa_...`` (computed once, cached).
    cumulants : dict of str -> sympy.Expr
        The per-mode summand of every cumulant sum used, by name (kappa_AB = sum_k of it).

    Raises
    ------
    ValueError
        An order other than 1 or 2.
    """
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2; got {order!r}")
    degree = 2 * order
    kappa = mode_cumulants(degree)
    symbols = {n: sp.Symbol(_cumulant_name(n)) for n in kappa}
    rest = _rest_moments(kappa, symbols, degree)
    a, b, dA, dB, dC = sp.symbols("a b dA dB dC")
    Av, Cv = sp.symbols("A C", positive=True)
    x = a**2 - alpha_j + dA
    y = b**2 - beta_j + dC
    mean = {Av: _Npsi**2 / _eps, Cv: _Nphi**2 / _eps}
    d = {}  # Taylor coefficients as symbols while expanding

    def taylor(m: int, n: int) -> sp.Expr:
        f = Av ** sp.Rational(-m, 2) * Cv ** sp.Rational(-n, 2)
        out = 0
        for r in range(degree + 1):
            for q in range(degree + 1 - r):
                sym = sp.Symbol(f"d_{m}{n}_{r}{q}")
                d[sym] = sp.diff(f, Av, r, Cv, q).subs(mean) / (sp.factorial(r) * sp.factorial(q))
                out += sym * x**r * y**q
        return out

    B_rest = sy.T / _eps - gamma_j + dB
    G = -a * b * taylor(1, 1) + (a * b + B_rest) * a**2 * taylor(3, 1)
    moments: dict = {}
    parts = []
    for (i, l, xa, xb, xc), coef in sp.Poly(sp.expand(G), a, b, dA, dB, dC).terms():
        k = xa + xb + xc
        if k > degree or k == 1:  # the central fluctuations have mean zero
            continue
        if (i, l) not in moments:
            moments[(i, l)] = _mode_moment(i, l)
        if moments[(i, l)] != 0:
            parts.append(coef * moments[(i, l)] * (rest[(xa, xb, xc)] if k else 1))
    total = sp.expand(sp.Add(*parts).xreplace(d))
    terms = tuple(
        sp.factor(total.coeff(_eps, k).xreplace({_Npsi: sy.N_psi, _Nphi: sy.N_phi})) for k in range(1, order + 2)
    )
    used = set().union(*(t.free_symbols for t in terms))
    order_of = sorted((n for n in kappa if symbols[n] in used), key=lambda n: (sum(n), str(symbols[n])))
    cumulants = {str(symbols[n]): kappa[n] for n in order_of}
    return terms, cumulants


def expansion_system(spec: ModelSpec, base: EigenmodeSystem) -> EigenmodeSystem:
    """The one-mode system of ``spec`` (``norms="expansion"``), its spectral sums closed by
    ``modes(K)``.

    Parameters
    ----------
    spec : ModelSpec
        The model (``norms="expansion"``, its ``order``).
    base : EigenmodeSystem
        The same model's self-consistent, leading-moment system: its states, model parameters
        and the per-mode covariance (``steps["spectral_sums"]``).

    Returns
    -------
    EigenmodeSystem
        States as ``base``; parameters the model's, then N_psi, N_phi, T and the cumulant sums
        ``kappa_...`` (closed: N_psi^2 = sum alpha_k, N_phi^2 = sum beta_k, T = sum gamma_k,
        kappa = sum of the per-mode cumulant); ``steps`` keeps the expansion term by term.
    """
    terms, cumulants = expansion_terms(spec.order)
    sums = base.steps["spectral_sums"]
    mode = {alpha_j: sums["E<a,a>"], beta_j: sums["E<b,b>"], gamma_j: sums["E<a,b>"]}
    G = sp.expand(sum(terms).xreplace(mode))
    states, rhs = [], []
    rate = _divided(-G, sy.s) - sy.eta  # dphi/dt = phi * rate, phi dJ/dphi = G
    if spec.predictor == "learned":
        states.append(sy.p)
        rhs.append(sp.expand(-sy.alpha_p * _divided(G, sy.p) - sy.eta * sy.p))
    states.append(sy.s)
    rhs.append(sp.expand(2 * sy.s * rate))
    if spec.target == "ema":
        states.append(sy.tau)
        rhs.append(sp.expand(sy.beta * (1 - sy.tau) - sy.tau * rate))
    kappas = [sp.Symbol(n) for n in cumulants]
    model = [v for v in base.params if v not in (sy.N_psi, sy.N_phi, sy.T)]
    params = tuple(model + [sy.N_psi, sy.N_phi, sy.T] + kappas)
    closures = (
        (sy.T, sums["E<a,b>"], sp.Integer(1)),
        (sy.N_psi, sums["E<a,a>"], sp.Rational(1, 2)),
        (sy.N_phi, sums["E<b,b>"], sp.Rational(1, 2)),
    ) + tuple((k, sp.expand(cumulants[str(k)].xreplace(mode)), sp.Integer(1)) for k in kappas)
    steps = {
        "per_mode_covariance": {str(k): v for k, v in zip(MODE_MOMENTS, mode.values())},
        "spectral_sums": dict(sums),
        "expansion": {f"G^({n})": t for n, t in enumerate(terms)},
        "cumulants": dict(cumulants),
        "amplitude_rate": rate,
        "eigenmode_flow": dict(zip(map(str, states), rhs)),
    }
    domain = dict(base.param_domain)
    system = EigenmodeSystem(
        tuple(states), params, sp.ImmutableMatrix(rhs),
        spec=spec, steps=steps, closures=closures,
        state_domain=dict(base.state_domain),
        param_domain={k: v for k, v in domain.items() if k in {str(p) for p in params}},
        collapse=base.collapse, manifold=base.manifold, name=spec.label,
        partial_collapse=base.partial_collapse, weight_decay=base.weight_decay,
        scaling=None if base.scaling is None else {**base.scaling, **_cumulant_powers(kappas)},
    )
    laws = conservation_laws(system)
    description = (
        f"The exact finite-width flow expanded in 1/K to order {spec.order} about the self-consistent norms "
        "N_psi^2 = E||a||^2, N_phi^2 = E||b||^2: the fluctuations of <a,a>, <a,b>, <b,b> enter through their "
        "spectral cumulants kappa_... (closed by modes(K)); order 0 is the self-consistent, leading-moment system."
    )
    return replace(system, laws=laws, description=description)


def _cumulant_powers(kappas) -> dict[str, int]:
    """The scaling power of each cumulant kappa_XY..: A ~ lambda^4, B ~ lambda^3, C ~ lambda^2,
    so a cumulant scales with the sum of its letters' powers (kappa_AB ~ lambda^7)."""
    return {str(k): sum({"A": 4, "B": 3, "C": 2}[v] for v in str(k)[len("kappa_"):]) for k in kappas}


def _divided(expr: sp.Expr, by: sp.Symbol) -> sp.Expr:
    """expr / by for an expr every term of which has the factor ``by`` (G vanishes with the mode)."""
    out = sp.expand(expr / by)
    for term in sp.Add.make_args(out):
        power = sp.sympify(term.as_powers_dict().get(by, 0))
        if power.is_number and power < 0:
            raise RuntimeError(f"a term of G lacks the factor {by}: {term}")
    return out


def expansion_spec(spec: ModelSpec) -> ModelSpec:
    """The self-consistent, leading-moment spec whose states and spectral sums the expansion uses."""
    return replace(spec, norms="self-consistent", moments="leading", order=None)
