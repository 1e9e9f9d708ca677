"""exact_noise(spec, K): the exact per-sample covariance of the eigenmode rates of the cosine
loss at finite width, by the same Laplace quadrature as the exact flow (``_exact``).

For aligned weights mode k carries the zero-mean Gaussians (z_k, a_k, b_k), z = phi x1 the
online features, a = w z the online output (w = p for a learned predictor), b = tau phi x2 the
target, independent across modes. For a loss L(A, B, C) of A = |a|^2, B = <a, b>, C = |b|^2
under stop-gradient, dL/da_j = X_j = 2 L_A a_j + L_B b_j, and one sample moves the states of
mode j by

    r_p = -alpha_p z_j X_j,   r_s = -2 w_j z_j X_j,   r_tau = (tau_j w_j / s_j) z_j X_j

(the rates of ``gradient_noise``; weight decay and the EMA's pull are deterministic). Every
rate of mode j is a multiple c_a(j) of xi_j = z_j X_j, so the covariance of the K m rates is
c_a(j) c_b(k) Cov(xi_j, xi_k): the K x K covariance of the xi's, diagonal and off-diagonal (the
modes' noise is correlated through B and the norms).

For the cosine loss, L_A = B A^(-3/2) C^(-1/2) / 2 and L_B = -A^(-1/2) C^(-1/2), so

    xi_j xi_k = z_j b_j z_k b_k / (A C) - B (z_j b_j z_k a_k + z_j a_j z_k b_k) / (A^2 C)
              + B^2 z_j a_j z_k a_k / (A^3 C),

and the mean E[xi_j] has the powers A^(-1/2), A^(-3/2). Each power is a Laplace integral,
A^(-m) C^(-n) = int int u^(m-1) v^(n-1) exp(-u A - v C) du dv / (Gamma(m) Gamma(n)), and under
the tilt exp(-u A - v C) the modes stay independent Gaussians: the weight is prod_k q_k^(-1/2),
q_k = det(I + 2 D Sigma_k), and mode k's covariance becomes T_k = Sigma_k (I + 2 D Sigma_k)^-1
(Sigma_k the 3 x 3 covariance of (z_k, a_k, b_k), D = diag(0, u, v): no inverse needed, z and
a are collinear). With P_l = a_l b_l and the rest R = B - P_j - P_k (j != k; R = B - P_j for
j = k) independent of the modes in the monomial,

    E~[m_j m_k B^e] = sum_(r+i+l=e) e!/(r! i! l!) E~[R^r] E~[m_j P_j^i] E~[m_k P_k^l],
    E~[R] = M - t_j - t_k,  E~[R^2] = (W - V_j - V_k) + E~[R]^2,

M = sum_l t_l, t_l = E~[a_l b_l], W = sum_l V_l, V_l = Var~(a_l b_l): B enters at most squared,
so its rest needs only its tilted mean and variance. The per-mode moments E~[z^i a^j b^k] are
Isserlis moments of T_k (``gaussian_expectation``). SymPy expands every term into products of
a node weight (M, W and the power of u, v), a function of mode j and one of mode k, so the
quadrature is a sum of matrix products over the nodes.

Quadrature: the rule of the exact flow (``_exact.QUADRATURE``: trapezoidal in u = e^x / E[A],
v = e^y / E[C] under the map of ``_exact``, step 0.3, 94 x 94 nodes, the right end following
the spectrum). The second moments' integrands decay faster to the left (like e^(m x), m >= 1)
than the mean's (e^(x/2)); against a refined rule (step 0.15 on [-120, 120]) the entries agree
to 2e-13 of sqrt(Sigma_ii Sigma_jj) at K = 2, 3, 8, 64. The mean E[xi_j] reproduces the exact
flow's rates to 1e-10, and Cov(xi) p = 0 (sum_j a_j dL/da_j = 0 for every sample: the cosine is
scale invariant in a) holds to rounding: Sigma has rank K - 1 on the states.

Against Monte Carlo of the true per-sample gradient (``monte_carlo_noise``, p_j ~ U(0.3, 1),
s = p^2, random tau, sigma2, alpha_p) every entry, per-mode and cross-mode, is within the
sampling error: max |z| 0.9-1.5 at K = 4, 2.7-3.2 at K = 16, 3.5 over the 16,000 entries at
K = 64 (SimSiam and EMA, one or both views noisy); the median relative error of the per-mode
variances, 0.1-0.6%, is that of the Monte Carlo. The leading-moment approximation of
``gradient_noise`` misses the same variances by 110% at K = 4, 36% at K = 16 and 7-13% at
K = 64. Where one mode dominates |a| (variances spread over decades) the per-sample products
are heavy tailed (1/|a|^2 near a = 0 in few effective dimensions) and the sample standard
errors of a covariance are too small; there 3e7 samples with batch-means errors agree (max |z|
2.8, K = 8, s over 1e-4..1e2) and the rule is converged to 2e-10 by refinement.

One evaluation costs about 94^2 (10 K^2 + 100 K) multiply-adds: 0.25 s at K = 64 on a shared
two-core CPU after compilation.

Exact for the model's assumptions: Gaussian views, isotropic data, aligned weights, one sample
(the batch of B samples divides Sigma by B).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from math import factorial, gamma

import numpy as np
import sympy as sp

from . import symbols as sy
from ._derive import _gauss, _outputs, _phi, _phi_sg, _finish, _to_s, derive, feature_covariances
from ._exact import QUADRATURE, _nodes, _rule
from ._losses import A, B, C
from ._moments import gaussian_expectation
from ._spec import ModelSpec
from ._system import FrozenMap

__all__ = ["exact_noise", "noise_terms", "ExactNoiseTerms"]

_Z, _A, _B = sp.symbols("z_ a_ b_", real=True)
_M, _W = sp.symbols("M_tilt W_tilt", real=True)
_T = {name: sp.Symbol(f"T_{name}", real=True) for name in ("zz", "za", "zb", "aa", "ab", "bb")}
_u, _v = sp.symbols("u v", positive=True)
_S = {name: sp.Symbol(f"S_{name}", real=True) for name in ("zz", "za", "zb", "aa", "ab", "bb")}


def _moment_symbol(exps: tuple[int, int, int], side: str) -> sp.Symbol:
    return sp.Symbol(f"mu{side}_{exps[0]}{exps[1]}{exps[2]}", real=True)


def _check_spec(spec: ModelSpec) -> None:
    problems = []
    if spec.loss != "cosine":
        problems.append(f"loss={spec.loss!r} (only 'cosine'; IsoLoss-cosine moves Phi by another leg)")
    if spec.norms != "exact":
        problems.append(f"norms={spec.norms!r} (only 'exact'; gradient_noise covers the closures)")
    if spec.batch_statistics or spec.batch != "infinite":
        problems.append("a loss of the batch's moments or batch='finite'")
    if not spec.stop_gradient:
        problems.append("stop_gradient=False (the target branch's gradient is not included)")
    if spec.predictor not in ("learned", "none"):
        problems.append(f"predictor={spec.predictor!r} (only 'learned' or 'none')")
    if spec.data != "isotropic":
        problems.append(f"data={spec.data!r} (only 'isotropic')")
    if problems:
        raise ValueError(
            f"exact_noise supports the cosine loss with norms='exact', stop-gradient, a learned or no "
            f"predictor, isotropic data, target simsiam or ema, views both or one; {spec.label} has "
            + "; ".join(problems))


@dataclass(frozen=True, eq=False)
class ExactNoiseTerms:
    """The symbolic pieces of the exact per-sample noise of one spec (see the module docstring).

    Attributes
    ----------
    spec : ModelSpec
        The model.
    states : tuple of sympy.Symbol
        The mode's states (rows of ``multipliers``).
    multipliers : tuple of sympy.Expr
        c_a with r_a = c_a xi_j, in the states and parameters.
    covariance : sympy.ImmutableMatrix
        Sigma_k, the 3 x 3 covariance of (z, a, b) of one mode, in the states and parameters.
    tilted : FrozenMap of str -> sympy.Expr
        ``q`` = det(I + 2 D Sigma) and the entries T_xy of the tilted covariance, in the
        symbols S_xy of Sigma and u, v.
    moments : FrozenMap of tuple -> sympy.Expr
        E~[z^i a^j b^k] in the symbols T_xy, for each exponent triple the terms need.
    mean, diagonal, cross : tuple
        The terms of E[xi_j], E[xi_j^2] and E[xi_j xi_k] (j != k): (coefficient, (m_A, m_C),
        exponents of (M, W), monomial of mode j, monomial of mode k), each monomial a tuple of
        (moment exponents, power) pairs.
    """

    spec: ModelSpec
    states: tuple
    multipliers: tuple
    covariance: sp.ImmutableMatrix
    tilted: FrozenMap
    moments: FrozenMap
    mean: tuple
    diagonal: tuple
    cross: tuple


def _laplace_terms(partial: sp.Expr, name: str) -> tuple[sp.Expr, int, sp.Expr, sp.Expr]:
    """partial = c B^e A^(-m_A) C^(-m_C): (c, e, m_A, m_C)."""
    powers = sp.powsimp(sp.expand_power_base(sp.factor(partial), force=True), force=True).as_powers_dict()
    coef = sp.Integer(1)
    exps = {A: sp.Integer(0), B: sp.Integer(0), C: sp.Integer(0)}
    for base, e in powers.items():
        if base in exps:
            exps[base] += e
        elif base.is_number:
            coef *= base**e
        else:
            raise ValueError(f"{name} = {partial} is not of the form c B^e A^(-m) C^(-n)")
    e_B = exps[B]
    if not (e_B.is_integer and e_B >= 0 and -exps[A] > 0 and -exps[C] > 0):
        raise ValueError(f"{name} = {partial} is not of the form c B^e A^(-m) C^(-n) with e >= 0, m, n > 0")
    return coef, int(e_B), -exps[A], -exps[C]


def _rest_moments(cross: bool) -> dict[int, sp.Expr]:
    """E~[R^r] for r = 0, 1, 2: R = B minus the pair products of the modes in the monomial."""
    t = [_moment_symbol((0, 1, 1), "j")]
    V = [_moment_symbol((0, 2, 2), "j") - t[0] ** 2]
    if cross:
        t.append(_moment_symbol((0, 1, 1), "k"))
        V.append(_moment_symbol((0, 2, 2), "k") - t[1] ** 2)
    mean = _M - sum(t)
    return {0: sp.Integer(1), 1: mean, 2: _W - sum(V) + mean**2}


def _split(expr: sp.Expr, power: tuple, cross: bool) -> list:
    """The terms of a polynomial in M, W and the moment symbols of modes j (and k)."""
    gens = sorted(expr.free_symbols, key=str)
    poly = sp.Poly(sp.expand(expr), *gens)
    out = []
    for monom, coef in poly.terms():
        g = [0, 0]
        mj, mk = [], []
        for sym, e in zip(gens, monom):
            if not e:
                continue
            if sym == _M:
                g[0] = e
            elif sym == _W:
                g[1] = e
            else:
                name = str(sym)
                exps = tuple(int(c) for c in name.split("_")[1])
                (mj if name.startswith("muj") else mk).append((exps, int(e)))
        if mk and not cross:  # pragma: no cover - by construction
            raise RuntimeError("a mode-k moment in a one-mode term")
        out.append((float(coef), power, tuple(g), tuple(sorted(mj)), tuple(sorted(mk))))
    return out


@lru_cache(maxsize=16)
def noise_terms(spec: ModelSpec) -> ExactNoiseTerms:
    """Derive the symbolic pieces of the exact per-sample noise of ``spec`` (cached).

    Parameters
    ----------
    spec : ModelSpec
        The model (``exact_noise``'s conditions).

    Returns
    -------
    ExactNoiseTerms

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec.
    ValueError
        A spec ``exact_noise`` does not support.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    _check_spec(spec)
    from ._diffusion import _rates

    # per-sample gradients of one mode, dL/da = X: dL/dp = X da/dp, dL/dphi = X da/dphi (b under sg)
    X = sp.Symbol("X_", real=True)
    z, a, b = _outputs(spec, _phi_sg)
    grads = {_phi: sp.expand(X * sp.diff(a, _phi))}
    if spec.predictor == "learned":
        grads[sy.p] = sp.expand(X * sp.diff(a, sy.p))
    rates = _rates(spec, grads)
    gauss = _gauss(spec)
    multipliers = []
    for state, r in rates.items():
        c = sp.simplify(r / (z * X))
        if c.free_symbols & (set(gauss) | {X}):  # pragma: no cover - the rates above are multiples of z X
            raise RuntimeError(f"the rate of {state} is not a multiple of z X: {r}")
        multipliers.append(_finish(_to_s(c.subs(_phi_sg, _phi)), spec))

    # the 3 x 3 covariance of (z, a, b) of one mode
    legs = feature_covariances(spec)
    sums = derive(spec).self_consistent.steps["spectral_sums"]
    zz = _finish(_to_s(gaussian_expectation(sp.expand(z * z), list(gauss), gauss)), spec)
    cov = sp.ImmutableMatrix([[zz, legs["E<z,a>"], legs["E<z,b>"]],
                              [legs["E<z,a>"], sums["E<a,a>"], sums["E<a,b>"]],
                              [legs["E<z,b>"], sums["E<a,b>"], sums["E<b,b>"]]])

    # the tilt exp(-u a^2 - v b^2): q = det(I + 2 D S), T = S (I + 2 D S)^-1, D = diag(0, u, v)
    S = sp.Matrix([[_S["zz"], _S["za"], _S["zb"]], [_S["za"], _S["aa"], _S["ab"]], [_S["zb"], _S["ab"], _S["bb"]]])
    Mq = sp.eye(3) + 2 * sp.diag(0, _u, _v) * S
    q = sp.expand(Mq.det())
    Tm = S * Mq.adjugate()
    order = {"zz": (0, 0), "za": (0, 1), "zb": (0, 2), "aa": (1, 1), "ab": (1, 2), "bb": (2, 2)}
    tilted = {"q": q, **{f"T_{n}": sp.factor(sp.expand(Tm[i, j])) / q for n, (i, j) in order.items()}}
    Tcov = sp.Matrix([[_T["zz"], _T["za"], _T["zb"]], [_T["za"], _T["aa"], _T["ab"]], [_T["zb"], _T["ab"], _T["bb"]]])

    # xi = z X = sum of c B^e A^(-m) C^(-n) times z a or z b
    L = spec.loss_expr
    pieces = []  # (coefficient, e_B, m_A, m_C, leg exponents (z, a, b))
    for var, leg in ((A, (1, 1, 0)), (B, (1, 0, 1))):
        partial = sp.diff(L, var) * (2 if var == A else 1)
        if partial != 0:
            coef, e, mA, mC = _laplace_terms(partial, f"dL/d{var}")
            pieces.append((coef, e, mA, mC, leg))

    moments: dict = {}

    def need(exps):
        if exps not in moments:
            moments[exps] = gaussian_expectation(_Z ** exps[0] * _A ** exps[1] * _B ** exps[2], [_Z, _A, _B], Tcov)
        return exps

    need((0, 1, 1))
    need((0, 2, 2))

    def add(x, y):
        return tuple(i + j for i, j in zip(x, y))

    def collect(pairs, cross):
        """Terms of E~[c m_j (m_k) B^e]: pairs of (coef, e, (m_A, m_C), leg_j, leg_k)."""
        by_power: dict = {}
        for coef, e, power, leg_j, leg_k in pairs:
            if e > 2:  # pragma: no cover - the cosine loss has e <= 2
                raise ValueError("B enters the product with a power above 2: its rest's higher moments are not modelled")
            rest = _rest_moments(cross)
            total = sp.Integer(0)
            for r in range(e + 1):
                for i in range(e - r + 1):
                    l = e - r - i
                    if not cross and l:
                        continue
                    if cross:
                        mult = sp.Integer(factorial(e)) / (factorial(r) * factorial(i) * factorial(l))
                        ej, ek = need(add(leg_j, (0, i, i))), need(add(leg_k, (0, l, l)))
                        total += mult * rest[r] * _moment_symbol(ej, "j") * _moment_symbol(ek, "k")
                    else:
                        mult = sp.binomial(e, r)
                        ej = need(add(add(leg_j, leg_k or (0, 0, 0)), (0, e - r, e - r)))
                        total += mult * rest[r] * _moment_symbol(ej, "j")
            by_power[power] = by_power.get(power, 0) + coef * total
        out = []
        for power, expr in by_power.items():
            out += _split(expr, power, cross)
        return tuple(out)

    mean_pairs = [(c, e, (mA, mC), leg, None) for c, e, mA, mC, leg in pieces]
    second = []
    for c1, e1, mA1, mC1, leg1 in pieces:
        for c2, e2, mA2, mC2, leg2 in pieces:
            second.append((c1 * c2, e1 + e2, (mA1 + mA2, mC1 + mC2), leg1, leg2))
    mean = collect(mean_pairs, cross=False)
    diagonal = collect(second, cross=False)
    cross = collect(second, cross=True)
    return ExactNoiseTerms(
        spec=spec, states=tuple(rates), multipliers=tuple(multipliers), covariance=cov,
        tilted=FrozenMap(tilted), moments=FrozenMap(moments), mean=mean, diagonal=diagonal, cross=cross)


def exact_noise(spec: ModelSpec, K: int, *, quadrature: Mapping[str, float] | None = None,
                checked: bool = True) -> Callable:
    """The exact per-sample covariance Sigma of the K-mode state rates of the cosine loss with
    exact norms, as a JAX function (see the module docstring for the derivation).

    Parameters
    ----------
    spec : ModelSpec
        ``loss="cosine"``, ``norms="exact"``, stop-gradient, a learned predictor or none,
        isotropic data; target simsiam or ema; views both or one.
    K : int
        The number of modes (>= 2).
    quadrature : mapping str -> float, optional
        Overrides of ``QUADRATURE`` (step, lower, upper), as ``ExactEigenmodes.modes``.
    checked : bool
        Validate concrete inputs on every call (default True; False inside ``jit``).

    Returns
    -------
    callable
        ``sigma(y, params) -> (..., n_states, n_states)``: y the flat states (..., n_states) in
        the layout of ``derive(spec).modes(K)`` (state-major: p_1..p_K, s_1..s_K, tau_1..tau_K),
        params the drift's parameters (``derive(spec).modes(K).param_names``; eta is not read).
        Sigma[a K + j, b K + k] = Cov(r_a of mode j, r_b of mode k) for one sample (not
        finite where s_j = 0 with an EMA target: r_tau = tau w z X / s diverges there). The
        function has attributes ``moments(y, params) -> (mean, second)`` (E[xi_j] (..., K) and
        E[xi_j xi_k] (..., K, K)) and ``multipliers(y, params) -> (..., m, K)``.

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec or K not an int.
    ValueError
        An unsupported spec (the message names what), K < 2, or bad quadrature keys.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)):
        raise TypeError(f"K must be an int >= 2 (number of modes); got {type(K).__name__}")
    if K < 2:
        raise ValueError(f"K must be >= 2 for the exact normalized noise (one mode: the cosine is a sign); got {K}")
    _check_spec(spec)
    quad = dict(QUADRATURE)
    if quadrature is not None:
        unknown = set(quadrature) - set(QUADRATURE)
        if unknown:
            raise ValueError(f"quadrature keys must be among {sorted(QUADRATURE)}; got {sorted(unknown)}")
        quad.update({k: float(v) for k, v in quadrature.items()})
    _rule(quad)
    return _exact_noise(spec, int(K), tuple(sorted(quad.items())), bool(checked))


@lru_cache(maxsize=32)
def _exact_noise(spec: ModelSpec, K: int, quad_items: tuple, checked: bool) -> Callable:
    import jax
    import jax.numpy as jnp

    from ._coupled import mode_values
    from .codegen import lambdified, state_array

    terms = noise_terms(spec)
    system = derive(spec).modes(K)
    closure = system.closure
    pm = closure.per_mode
    if tuple(pm.states) != terms.states:  # pragma: no cover - same derivation
        raise RuntimeError(f"states {pm.states} differ from the noise's {terms.states}")
    free_syms = tuple(v for v in pm.params if str(v) not in closure.closed)
    values_of = mode_values(closure, "jax", False)
    cov_fn = lambdified(pm.states + free_syms, tuple(terms.covariance), "jax")
    mult_fn = lambdified(pm.states + free_syms, terms.multipliers, "jax")
    S_syms = tuple(_S[n] for n in ("zz", "za", "zb", "aa", "ab", "bb"))
    tilt_names = ("T_zz", "T_za", "T_zb", "T_aa", "T_ab", "T_bb")
    # numerators of T (the entries times q), evaluated per node and mode
    tilt_fn = lambdified((_u, _v) + S_syms, tuple(sp.expand(terms.tilted[n] * terms.tilted["q"]) for n in tilt_names), "jax")
    delta = _S["aa"] * _S["bb"] - _S["ab"] ** 2
    if sp.expand(terms.tilted["q"] - (1 + 2 * _u * _S["aa"] + 2 * _v * _S["bb"] + 4 * _u * _v * delta)) != 0:  # pragma: no cover
        raise RuntimeError(f"unexpected tilt normaliser {terms.tilted['q']}")
    mom_keys = tuple(terms.moments)
    mom_fn = lambdified(tuple(_T[n] for n in ("zz", "za", "zb", "aa", "ab", "bb")), tuple(terms.moments[k] for k in mom_keys), "jax")
    mom_index = {k: i for i, k in enumerate(mom_keys)}
    quad = dict(quad_items)
    t_nodes, step, t_end = _rule(quad)
    upper = float(quad["upper"])
    n = len(t_nodes)
    m = len(terms.states)
    chunk = min(n * n, max(64, 2**17 // K))
    n_chunks = -(-n * n // chunk)
    pad = n_chunks * chunk - n * n

    def basis(term_list, slot):
        out = []
        for term in term_list:
            if term[slot] not in out:
                out.append(term[slot])
        return out

    powers = sorted({t[1] for t in terms.mean + terms.diagonal + terms.cross})
    p_index = {p: i for i, p in enumerate(powers)}
    p_norm = np.array([1.0 / (gamma(float(a)) * gamma(float(c))) for a, c in powers])
    p_exp = np.array([[float(a), float(c)] for a, c in powers])

    def plan(term_list, cross):
        fb = basis(term_list, 3) if not cross else sorted(set(basis(term_list, 3)) | set(basis(term_list, 4)))
        f_index = {f: i for i, f in enumerate(fb)}
        rows = []
        for coef, power, g, mj, mk in term_list:
            rows.append((coef, p_index[power], g, f_index[mj], f_index[mk] if cross else 0))
        return fb, rows

    mean_basis, mean_rows = plan(terms.mean, False)
    diag_basis, diag_rows = plan(terms.diagonal, False)
    cross_basis, cross_rows = plan(terms.cross, True)

    def monomials(mom, fb):
        cols = []
        for mono in fb:
            val = jnp.ones(mom.shape[:-1])
            for exps, e in mono:
                val = val * mom[..., mom_index[exps]] ** e
            cols.append(val)
        return jnp.stack(cols, axis=-1)

    def node_weights(rows, pw, Mv, Wv):
        """(chunk, n_terms): each term's weight at the nodes."""
        cols = []
        for coef, pi, g, _, _ in rows:
            cols.append(coef * pw[:, pi] * Mv ** g[0] * Wv ** g[1])
        return jnp.stack(cols, axis=-1)

    def onehot(rows, n_a, n_b):
        E = np.zeros((len(rows), n_a * n_b))
        for r, (_, _, _, fa, fb_) in enumerate(rows):
            E[r, fa * n_b + fb_] += 1.0
        return jnp.asarray(E)

    E_mean = onehot(mean_rows, len(mean_basis), 1)
    E_diag = onehot(diag_rows, len(diag_basis), 1)
    E_cross = onehot(cross_rows, len(cross_basis), len(cross_basis))
    nb = len(cross_basis)

    def one(Szz, Sza, Szb, Saa, Sab, Sbb):
        x, w = _nodes(t_nodes, step, t_end, upper, Saa, Sbb)
        ex = jnp.exp(x)
        u = jnp.broadcast_to((ex / jnp.sum(Saa))[:, None], (n, n)).ravel()
        v = jnp.broadcast_to((ex / jnp.sum(Sbb))[None, :], (n, n)).ravel()
        wt = (w[:, None] * w[None, :]).ravel()
        u, v, wt = (jnp.concatenate([c, jnp.zeros(pad)]).reshape(n_chunks, chunk) for c in (u, v, wt))
        S = (Szz, Sza, Szb, Saa, Sab, Sbb)

        def body(acc, nodes):
            uc, vc, wc = nodes
            U, V = uc[:, None], vc[:, None]
            # Delta >= 0 (Cauchy-Schwarz); 0 for identical views, where rounding could flip it
            q = 1 + 2 * U * Saa + 2 * V * Sbb + 4 * U * V * jnp.maximum(Saa * Sbb - Sab * Sab, 0.0)
            r = 1 / q
            T = jnp.stack([e * r for e in tilt_fn(U, V, *S)], axis=-1)  # (chunk, K, 6)
            mom = jnp.stack([jnp.broadcast_to(e, q.shape) for e in mom_fn(*(T[..., i] for i in range(6)))], axis=-1)
            t = mom[..., mom_index[(0, 1, 1)]]
            Var = mom[..., mom_index[(0, 2, 2)]] - t * t
            Mv, Wv = jnp.sum(t, axis=-1), jnp.sum(Var, axis=-1)
            base = wc * jnp.exp(-0.5 * jnp.sum(jnp.log(q), axis=-1))
            # du dv = u v dx dy: u^(m-1) v^(n-1) du dv = u^m v^n dx dy
            pw = base[:, None] * uc[:, None] ** p_exp[:, 0] * vc[:, None] ** p_exp[:, 1] * p_norm
            Fm = monomials(mom, mean_basis)
            Fd = monomials(mom, diag_basis)
            Fc = monomials(mom, cross_basis)
            Cm = node_weights(mean_rows, pw, Mv, Wv) @ E_mean  # (chunk, nbm)
            Cd = node_weights(diag_rows, pw, Mv, Wv) @ E_diag
            Cc = (node_weights(cross_rows, pw, Mv, Wv) @ E_cross).reshape(-1, nb, nb)
            mean = jnp.einsum("na,nja->j", Cm, Fm)
            diag = jnp.einsum("na,nja->j", Cd, Fd)
            G = jnp.einsum("nab,nkb->nka", Cc, Fc)
            cross = jnp.einsum("nja,nka->jk", Fc, G)
            return (acc[0] + mean, acc[1] + diag, acc[2] + cross), None

        K_ = Saa.shape[-1]
        init = (jnp.zeros(K_), jnp.zeros(K_), jnp.zeros((K_, K_)))
        (mean, diag, cross), _ = jax.lax.scan(body, init, (u, v, wt))
        cross = 0.5 * (cross + cross.T)
        second = jnp.where(jnp.eye(K_, dtype=bool), diag[:, None] * jnp.ones_like(cross), cross)
        return mean, second

    vec = jnp.vectorize(one, signature="(k),(k),(k),(k),(k),(k)->(k),(k,k)")
    state_names = pm.state_names
    drift_params = tuple(str(v) for v in free_syms)

    def _moments(y, params):
        spectra, values = values_of(y, params)
        ones = jnp.ones_like(spectra[0])
        args = list(spectra) + [values[str(p)] for p in free_syms]
        S = [jnp.asarray(e, dtype=jnp.float64) * ones for e in cov_fn(*args)]
        return vec(S[0], S[1], S[2], S[4], S[5], S[8])

    def _coefficients(y, params):
        spectra, values = values_of(y, params)
        ones = jnp.ones_like(spectra[0])
        args = list(spectra) + [values[str(p)] for p in free_syms]
        return jnp.stack([jnp.asarray(e, dtype=jnp.float64) * ones for e in mult_fn(*args)], axis=-2)

    def _sigma(y, params):
        mean, second = _moments(y, params)
        cov = second - mean[..., :, None] * mean[..., None, :]
        c = _coefficients(y, params)  # (..., m, K)
        full = c[..., :, :, None, None] * c[..., None, None, :, :] * cov[..., None, :, None, :]
        return full.reshape(full.shape[:-4] + (m * K, m * K))

    flat_names = [f"{name}_1..{name}_K" for name in state_names]

    def checked_call(core):
        core = jax.jit(core)

        def call(y, params):
            if checked:
                y = state_array(y, m * K, flat_names, "jax")
                given = closure.check_params(params, batch=True)
                params = {k: (float(v) if isinstance(v, sp.Basic) else v) for k, v in given.items()}
            return core(jnp.asarray(y, dtype=jnp.float64), {k: params[k] for k in drift_params})

        return call

    sigma = checked_call(_sigma)
    moments = checked_call(_moments)
    coefficients = checked_call(_coefficients)

    sigma.moments = moments
    sigma.multipliers = coefficients
    sigma.__doc__ = (f"Exact per-sample covariance of the {K}-mode state rates of {spec.label} "
                     f"(states {', '.join(state_names)}; params {', '.join(drift_params)}).")
    return sigma
