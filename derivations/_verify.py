"""verify(system, spec): is a hand-derived eigenmode system the expected gradient flow of a model?

Two independent answers:

1. Symbolic: the difference (yours - derived) to ``derive(spec)``, simplified, and split into
   terms by their dependence on the states (coefficients written with c = 1 + sigma2), so a
   wrong sign or a missing term is named.
2. Monte Carlo (``derivations._montecarlo``): at random aligned points of widths h (d = h)
   the per-mode rates of the TRUE model (``jax.grad`` of the true per-sample loss) with
   standard errors, and z = (yours - MC) / SE per mode and equation. For a loss that
   involves the norms (cosine, ...) the spec's norm and moment treatment is an approximation;
   the rates of the treated per-sample gradient (the one ``derive`` averages exactly) are
   estimated on the same samples, so "right derivation of the approximation" and "error of
   the approximation" are told apart.

"Agrees only at leading order in 1/h" is measured, not assumed. The widths see matched
spectra (the base points are tiled), so only finite-width effects change with h. Per base
mode and equation, the discrepancy to the true loss (averaged over the mode's copies,
relative to the RMS of the loss gradient's own drive, the rate at eta = beta = 0) is fitted
over the widths by weighted least squares, weights the Monte-Carlo standard errors, as

    d(h) = a + b/h + c/h^2 + d/h^3       (degree min(3, number of widths - 1)).

The O(1) part a is what does not vanish at infinite width: a system right at leading order
has every a = 0 within its error (chi^2 of a against 0, rejected at the 10^-3 level), a
system wrong at O(1) (a 5% error in the drive, a wrong closure) has not. The 1/h^2 and 1/h^3
terms are needed: at h = 4 the frozen-norm cosine system's error is about twice its drive,
and a straight line in 1/h through (4, 16) or (4, 32) leaves a spurious O(1) part (and
mistakes a 5% drive error for 1/h). Hence the default widths (4, 8, 16, 32) for losses with
norms, and at least three widths for any leading-order verdict. The order k of the RMS error
~ h^-k is fitted too (weighted least squares in log h, with its standard error), and
reported.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from . import symbols as sy
from ._montecarlo import AlignedPoint, monte_carlo, random_point, tiled_point
from ._spec import ModelSpec
from ._system import FrozenMap, ODESystem
from ._truth import network_params

__all__ = ["TermDifference", "VerifyReport", "verify"]

Z_MAX = 5.0
"""An MC rate is rejected when |z| exceeds this (for ~10^2-10^3 z-values per call the chance
of a false rejection is below 10^-3)."""

LEADING_ORDER_K = 0.75
"""Smallest exponent k of error ~ h^-k that counts as "agrees at leading order in 1/h": a
system exact at leading order has k near 1 (measured 0.89-1.0 for the leading-moment cosine
system at widths 4, 16); an O(1) error gives k near 0 (or below: weight-decay errors grow
relative to the cosine drive, which shrinks like 1/h)."""

O1_P_VALUE = 1e-3
"""The O(1) part of the discrepancy (the fitted a of every base mode and equation) counts as
zero when the chi^2 of a against 0 has a p-value above this."""

NORM_WIDTHS = (4, 8, 16, 32)
"""verify's default widths for losses with norms (where the leading order in 1/h is the
question); (4, 16) otherwise."""

_BASE_MODES = 32
"""ceil(32 / min(widths)) random base points are drawn at the smallest width; every width
tiles each base spectrum (``_montecarlo.tiled_point``), so the widths see matched spectra."""

_STATES = ("p", "s", "tau")
_PARAMS = ("sigma2", "eta", "alpha_p", "beta", "alpha", "eps", "lambda", "N_psi", "N_phi", "T", "s_max")
_CLOSED = ("N_psi", "N_phi", "T", "s_max")
_c = sp.Symbol("c", positive=True)
# assumptions under which the difference is simplified (s, lambda, norms, s_max are positive)
_POSITIVE = ("s", "lambda", "N_psi", "N_phi", "s_max", "sigma2", "alpha_p")


@dataclass(frozen=True)
class TermDifference:
    """One term of an equation where your system and ``derive(spec)`` differ.

    ``term`` is the state-dependent factor (e.g. ``p**2*s**2*tau``), ``expected`` and ``got``
    its coefficients (written with c = 1 + sigma2 for isotropic data)."""

    equation: str
    term: sp.Expr
    expected: sp.Expr
    got: sp.Expr

    def __str__(self) -> str:
        return f"d{self.equation}/dt, term {sp.sstr(self.term)}: expected {sp.sstr(self.expected)}, got {sp.sstr(self.got)}"


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found (frozen; print it for a short report).

    Attributes
    ----------
    agrees : bool
        True if your system is the expected gradient flow of ``spec`` (for a loss with norms:
        of the treated per-sample gradient, which the true loss matches at leading order in
        1/h when ``exact`` is False; see ``verdict``).
    exact : bool
        True if it also matches the true loss within the MC errors at every width.
    verdict : str
        "agrees", "agrees only at leading order in 1/h (...)", or "differs ...".
    spec : ModelSpec
        The model checked against.
    system : ODESystem
        Your system, as given.
    derived : ODESystem or None
        ``derive(spec)`` in your names, or None where it is unavailable.
    derive_error : str
        Why ``derived`` is None ("" otherwise).
    widths : tuple of int
        The widths h of the Monte-Carlo networks.
    n_samples : int
        Samples per point.
    seed : int
        The seed of the points and samples.
    difference : {equation: SymPy expression or None}
        (yours - derived), simplified; None where derive(spec) is unavailable.
    terms : tuple of TermDifference
        The terms that differ, named.
    z : {equation: {h: tuple of z per mode}}
        (yours - MC of the true loss) / SE, every mode of every point drawn at width h.
    z_treated : {equation: {h: tuple of z per mode}}
        The same against the spec's treated per-sample gradient (= ``z`` for losses without
        norms).
    drawn : tuple of str
        Parameters of the spec that your system does not have and that were drawn at random.
    error : {h: float}
        Relative discrepancy to the true loss at width h: sqrt(mean over equations of
        sum_modes (yours - MC)^2 / sum_modes drive^2), drive = the MC rate of the loss
        gradient alone (eta = beta = 0).
    order : float or None
        k of error ~ h^-k fitted over the widths by weighted least squares in log h (None
        with one width or no discrepancy).
    order_se : float or None
        Its standard error (from the Monte-Carlo error of ``error`` at each width, widened
        by the misfit of a pure power law where it exceeds the noise).
    constant : float or None
        The O(1) part of the discrepancy to the true loss, relative to the drive: RMS over
        base modes and equations of the fitted a of d(h) = a + b/h + ... (noise-debiased);
        None with fewer than three widths.
    constant_se : float or None
        Its statistical error (RMS of the standard errors of a).
    constant_p : float or None
        The p-value of chi^2 of every a against 0 (the O(1) part vanishes when it exceeds
        ``O1_P_VALUE``).
    derived_z : {equation: {h: float}}
        max ``|z|`` of derive(spec) against the treated MC (empty if derive is unavailable).
    off_diagonal_z : {h: float}
        max ``|z|`` of the off-diagonal entries of U^T dPsi U and U^T dPhi V (true loss): the
        aligned ansatz must be invariant.
    """

    spec: ModelSpec
    system: ODESystem
    derived: ODESystem | None
    derive_error: str
    widths: tuple[int, ...]
    n_samples: int
    seed: int
    agrees: bool
    exact: bool
    verdict: str
    difference: Mapping[str, sp.Expr | None]
    terms: tuple[TermDifference, ...]
    z: Mapping[str, Mapping[int, tuple[float, ...]]]
    z_treated: Mapping[str, Mapping[int, tuple[float, ...]]]
    error: Mapping[int, float]
    order: float | None
    derived_z: Mapping[str, Mapping[int, float]]
    off_diagonal_z: Mapping[int, float]
    drawn: tuple[str, ...] = field(default=())
    order_se: float | None = None
    constant: float | None = None
    constant_se: float | None = None
    constant_p: float | None = None

    def __bool__(self) -> bool:
        return self.agrees

    @property
    def max_z(self) -> dict[str, dict[int, float]]:
        """max ``|z|`` (true loss) per equation and width."""
        return {eq: {h: float(np.max(np.abs(v))) for h, v in per.items()} for eq, per in self.z.items()}

    def _rows(self) -> list[tuple[str, list[str]]]:
        treated = _treated(self.spec)
        rows = []
        for eq in self.z:
            rows.append((f"d{eq}/dt vs true loss", [f"{np.max(np.abs(self.z[eq][h])):.1f}" for h in self.widths]))
            if treated:
                rows.append((f"d{eq}/dt vs {self.spec.norms} norms, {self.spec.moments} moments",
                             [f"{np.max(np.abs(self.z_treated[eq][h])):.1f}" for h in self.widths]))
        rows.append(("off-diagonal (ansatz)", [f"{self.off_diagonal_z[h]:.1f}" for h in self.widths]))
        rows.append(("error vs true loss", [f"{self.error[h]:.3g}" for h in self.widths]))
        return rows

    def __str__(self) -> str:
        name = self.system.name or "your system"
        lines = [f"verify: {name} against {self.spec.label}", f"  verdict: {self.verdict}"]
        if self.derived is None:
            lines.append(f"  symbolic: derive(spec) unavailable ({self.derive_error}); Monte Carlo only")
        else:
            lines.append("  symbolic difference (yours - derived):")
            for eq, d in self.difference.items():
                lines.append(f"    d{eq}/dt: {'(no equation)' if d is None else sp.sstr(d)}")
        lines.append(
            f"  Monte Carlo, jax.grad of the per-sample loss, {self.n_samples} samples per point, "
            f"max |z| (reject above {Z_MAX:g}):"
        )
        head = "    " + " " * 40 + "".join(f"{'h=' + str(h):>10}" for h in self.widths)
        lines.append(head)
        for label, vals in self._rows():
            lines.append(f"    {label:<40}" + "".join(f"{v:>10}" for v in vals))
        resolved = any(np.max(np.abs(v)) > Z_MAX for per in self.z.values() for v in per.values())
        if self.order is not None and resolved:
            se = f" +- {self.order_se:.2f}" if self.order_se is not None else ""
            lines.append(f"  error vs the true loss scales like h^-k, k = {self.order:.2f}{se}, over the widths")
        if self.constant is not None and resolved:
            lines.append(f"  O(1) part of the error: {self.constant:.3g} +- {self.constant_se:.2g} of the drive "
                         f"(chi^2 of a = 0: p = {self.constant_p:.2g})")
        if self.drawn:
            lines.append(f"  drawn at random (not in your system): {', '.join(self.drawn)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"VerifyReport({self.spec.label!r}, agrees={self.agrees}, verdict={self.verdict!r})"

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>h={h}</th>" for h in self.widths)
        body = "".join(
            f"<tr><td>{esc(label)}</td>" + "".join(f"<td>{esc(v)}</td>" for v in vals) + "</tr>"
            for label, vals in self._rows()
        )
        diff = ""
        if self.derived is not None:
            diff = "<ul>" + "".join(
                f"<li>d{esc(eq)}/dt: {esc('(no equation)' if d is None else sp.sstr(d))}</li>"
                for eq, d in self.difference.items()
            ) + "</ul>"
        return (
            f"<div><b>verify</b> {esc(self.system.name or 'your system')} against {esc(self.spec.label)}<br>"
            f"<b>{esc(self.verdict)}</b>{diff}"
            f"<table><tr><th>max |z|</th>{head}</tr>{body}</table></div>"
        )


# -- argument checks and renaming -----------------------------------------------------------------
def _treated(spec: ModelSpec) -> bool:
    """True if the spec approximates the true loss (norm and moment treatment)."""
    return spec.involves_norms and spec.norms != "exact"


def _check_widths(widths: Any, spec: ModelSpec) -> tuple[int, ...]:
    if isinstance(widths, (int, np.integer)) and not isinstance(widths, bool):
        widths = (widths,)
    if not isinstance(widths, Sequence) or isinstance(widths, str) or not widths:
        raise TypeError(f"widths must be a non-empty sequence of positive ints; got {widths!r}")
    out = []
    for h in widths:
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise ValueError(f"widths must hold positive ints; got {h!r} in {tuple(widths)!r}")
        out.append(int(h))
    if len(set(out)) != len(out):
        raise ValueError(f"widths must be distinct; got {tuple(out)}")
    if spec.involves_norms and min(out) < 3:
        raise ValueError(
            f"widths must be >= 3 for {spec.label}: the loss divides by ||a||, whose per-sample "
            f"gradient has infinite variance for h <= 2; got {tuple(out)}"
        )
    return tuple(sorted(out))


def _allowed_params(spec: ModelSpec, tau_is_param: bool) -> set[str]:
    out = set(network_params(spec))
    if spec.data == "spectrum":
        out.add("lambda")
    if spec.involves_norms:
        out |= {"N_psi", "N_phi", "T"}
    if spec.normalize:
        out.add("s_max")
    if tau_is_param:
        out.add("tau")
    return out


def _rename(system: ODESystem, spec: ModelSpec, mapping: Mapping | None):
    """(state names in documented form, substitution user symbol -> documented expression)."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise TypeError(f"mapping must be a dict {{your name: documented name}}; got {type(mapping).__name__}")
    mapping = {str(k): v for k, v in mapping.items()}
    names = set(system.state_names) | set(system.param_names)
    extra = sorted(set(mapping) - names)
    if extra:
        raise ValueError(
            f"mapping names {extra}, which the system does not have; its states are "
            f"{list(system.state_names)} and its parameters {list(system.param_names)}"
        )
    unmatched = [n for n in system.state_names + system.param_names if n not in mapping and n not in _STATES + _PARAMS]
    if unmatched:
        raise ValueError(
            f"names that match nothing: {unmatched}; use the documented names (states {list(_STATES)}, "
            f"parameters {list(_PARAMS)}) or pass mapping={{your name: documented name}}"
        )
    subs: dict[sp.Symbol, sp.Expr] = {}
    states: list[str] = []
    for v in system.states:
        target = mapping.get(str(v), str(v))
        target = str(target) if isinstance(target, (str, sp.Symbol)) else target
        if target not in _STATES:
            raise ValueError(f"state {str(v)!r} must map to one of the states {list(_STATES)}; got {target!r}")
        states.append(target)
        subs[v] = sy.by_name[target]
    if len(set(states)) != len(states):
        raise ValueError(f"two states map to the same documented state: {dict(zip(system.state_names, states))}")
    for v in system.params:
        target = mapping.get(str(v), str(v))
        if isinstance(target, sp.Symbol):
            target = str(target)
        if isinstance(target, str) and target in _STATES + _PARAMS:
            subs[v] = sy.by_name[target]
            continue
        local = {n: sy.by_name[n] for n in _PARAMS + _STATES if n != "lambda"}
        local["lam"] = sy.lam
        try:
            expr = sp.sympify(target, locals=local) if isinstance(target, str) else sp.sympify(target)
        except (sp.SympifyError, TypeError, SyntaxError):
            raise ValueError(f"mapping[{str(v)!r}] = {target!r} is neither a documented name nor an expression in them") from None
        bad = sorted(str(x) for x in expr.free_symbols if str(x) not in _PARAMS)
        if bad:
            raise ValueError(
                f"mapping[{str(v)!r}] = {target!r} uses unknown names {bad}; documented parameters are {list(_PARAMS)}"
            )
        subs[v] = expr
    return tuple(states), subs


# -- symbolic comparison ----------------------------------------------------------------------------
def _assume() -> dict[sp.Symbol, sp.Symbol]:
    return {sy.by_name[n]: sp.Symbol(n, positive=True) for n in _POSITIVE}


def _terms(expr: sp.Expr, states: tuple[sp.Symbol, ...], c_form: bool) -> dict[sp.Expr, sp.Expr]:
    e = expr
    if c_form:
        e = e.subs(_assume()[sy.sigma2], _c - 1)
    e = sp.expand(e)
    out: dict[sp.Expr, sp.Expr] = {}
    for t in sp.Add.make_args(e):
        coef, dep = t.as_independent(*states, as_Add=False)
        out[dep] = out.get(dep, sp.Integer(0)) + coef
    return out


def _public(expr: sp.Expr) -> sp.Expr:
    back = {v: k for k, v in _assume().items()}
    back[_c] = sp.Symbol("c")
    return expr.xreplace(back)


def _symbolic(user: dict[str, sp.Expr], derived: dict[str, sp.Expr], spec: ModelSpec):
    """(difference per equation, named term differences)."""
    pos = _assume()
    states = tuple(pos.get(sy.by_name[n], sy.by_name[n]) for n in _STATES)
    difference: dict[str, Any] = {}
    terms: list[TermDifference] = []
    c_form = spec.data == "isotropic"
    for eq in list(derived) + [e for e in user if e not in derived]:
        if eq not in user or eq not in derived:
            difference[eq] = None
            have = user.get(eq)
            terms.append(TermDifference(eq, sp.Symbol(f"(the d{eq}/dt equation)"),
                                        derived.get(eq, sp.Integer(0)), have if have is not None else sp.Integer(0)))
            continue
        u, d = user[eq].xreplace(pos), derived[eq].xreplace(pos)
        diff = sp.expand(u - d)
        if diff != 0:
            diff = sp.simplify(sp.cancel(sp.together(diff)))
        difference[eq] = _public(diff)
        if diff == 0:
            continue
        tu, td = _terms(u, states, c_form), _terms(d, states, c_form)
        found = False
        for key in list(td) + [k for k in tu if k not in td]:
            exp, got = td.get(key, sp.Integer(0)), tu.get(key, sp.Integer(0))
            if sp.simplify(exp - got) != 0:
                found = True
                terms.append(TermDifference(eq, _public(key), _public(sp.factor(exp)), _public(sp.factor(got))))
        if not found:  # the terms match one by one only in another grouping
            terms.append(TermDifference(eq, sp.Symbol("(whole right-hand side)"), _public(d), _public(u)))
    return FrozenMap(difference), tuple(terms)


# -- Monte Carlo ------------------------------------------------------------------------------------
def _evaluator(rhs: dict[str, sp.Expr]):
    syms = sorted(set().union(*(r.free_symbols for r in rhs.values())), key=str)
    f = sp.lambdify(syms, list(rhs.values()), modules="numpy")
    names = [str(v) for v in syms]

    def evaluate(values: Mapping[str, Any], h: int) -> dict[str, np.ndarray]:
        out = f(*[values[n] for n in names])
        return {eq: np.broadcast_to(np.asarray(o, dtype=np.float64), (h,)) for eq, o in zip(rhs, out)}

    return evaluate


def _point_values(point: AlignedPoint, fixed: Mapping[str, float]) -> dict[str, Any]:
    values: dict[str, Any] = dict(point.modes())
    values.update(point.params)
    values.update(point.closures)
    values.update(fixed)
    return values


def verify(
    system: ODESystem,
    spec: ModelSpec,
    params: Mapping[str, float] | None = None,
    *,
    widths: Sequence[int] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    mapping: Mapping[str, str | sp.Expr] | None = None,
) -> VerifyReport:
    """Check that ``system`` is the expected gradient flow of the model ``spec``.

    ``system`` is one eigenmode of your own derivation, an ``ODESystem`` whose states are
    among p (predictor eigenvalue, learned predictor only), s (eigenvalue of F = Phi Phi^T,
    required) and tau (EMA target ratio; a parameter for the frozen-tau analysis), and whose
    parameters are among sigma2, eta, alpha_p, beta, alpha, eps, lambda (data variance of the
    mode), N_psi, N_phi, T (norm closures), s_max (DirectPred normalisation); other names
    through ``mapping``. Closure parameters take their self-consistent values at each sampled
    point: N_psi^2 = E||a||^2, N_phi^2 = E||b||^2, T = E<a, b>, s_max = max_j s_j.

    Parameters
    ----------
    system : ODESystem, your one-mode system.
    spec : ModelSpec, the model it claims to describe.
    params : {documented name: value}, parameters held fixed (both in the symbolic
        comparison and in the Monte Carlo) instead of drawn at random, e.g. {"eta": 0};
        None: every parameter drawn.
    widths : positive ints (>= 3 for losses with norms), the widths h = d of the Monte-Carlo
        networks. ceil(32 / min(widths)) random aligned points are drawn at the smallest
        width and tiled to the others (same spectrum repeated, fresh eigenbases), so the
        error's scaling with h compares like with like. Default ``NORM_WIDTHS`` = (4, 8, 16,
        32) for losses with norms (a leading-order verdict needs three or more widths, see
        the module docstring), (4, 16) otherwise.
    n_samples : int >= 256, samples per point (standard errors from 128 batch means); default
        2^15 with the default widths for losses with norms (the O(1) part to +- 1.6% of the
        drive, a 5% error named at p < 1e-60, about 4 s), 2^16 otherwise.
    seed : int, seeds the points and the samples.
    mapping : {your name: documented name}; a parameter may also map to an expression in
        documented parameters, e.g. {"c": "1 + sigma2"}.

    Returns
    -------
    VerifyReport with ``agrees``, ``verdict``, ``difference``, ``terms``, ``z`` and the rest.

    Raises
    ------
    TypeError
        ``system`` not an ODESystem, ``spec`` not a ModelSpec, ``mapping``/``params`` not
        mappings, ``widths`` not a sequence, ``seed`` not an int.
    ValueError
        A loss of the batch's moments (see ``monte_carlo_batch``), names that match nothing, a mapping to unknown names, states or parameters the spec
        does not have (p without a learned predictor, tau without EMA, ...), a missing s,
        widths that are not positive distinct ints, too few samples, non-finite values.
    """
    if isinstance(spec, ModelSpec) and spec.batch_statistics:
        raise ValueError(
            f"verify checks per-sample losses; spec={spec.label!r} is a loss of the batch's moments. Compare your "
            "equations with derive(spec).equations and its expected flow with monte_carlo_batch(spec, s, params, "
            "batch=..., n_batches=...)"
        )
    widths, n_samples = _check_verify_args(system, spec, widths, n_samples, seed)
    user, free, tau_is_param, allowed, subs = _user_rates(system, spec, mapping)
    fixed = _check_fixed(params, subs, allowed)
    fixed_subs = {sy.by_name[k]: sp.nsimplify(v) for k, v in fixed.items()}
    user = {eq: r.subs(fixed_subs) for eq, r in user.items()}

    derived_system, derive_error, derived, difference, terms = _symbolic_comparison(spec, tau_is_param, user, fixed_subs)

    tally = _monte_carlo_tally(spec, user, derived, fixed, widths, n_samples, seed, tau_is_param)
    z, z_treated, derived_z, error, off = tally.summary(user)
    order, order_se = _order(widths, error, tally.sq_diff, tally.sq_rate, tally.err_var, user)
    constant, constant_se, constant_p = _constant(widths, tally.per_base, tally.sq_rate, user)

    drawn = _drawn_params(spec, free, fixed)
    fit = {"order": order, "order_se": order_se, "constant": constant, "constant_se": constant_se, "constant_p": constant_p}
    agrees, exact, verdict = _verdict(spec, terms, z, z_treated, derived_z, error, fit, widths, derived is not None, drawn)
    return VerifyReport(
        spec=spec,
        system=system,
        derived=derived_system,
        derive_error=derive_error,
        widths=widths,
        n_samples=int(n_samples),
        seed=int(seed),
        agrees=agrees,
        exact=exact,
        verdict=verdict,
        difference=difference,
        terms=terms,
        z=FrozenMap({eq: FrozenMap(v) for eq, v in z.items()}),
        z_treated=FrozenMap({eq: FrozenMap(v) for eq, v in z_treated.items()}),
        error=FrozenMap(error),
        order=order,
        derived_z=FrozenMap({eq: FrozenMap(v) for eq, v in derived_z.items()}),
        off_diagonal_z=FrozenMap(off),
        drawn=drawn,
        order_se=order_se,
        constant=constant,
        constant_se=constant_se,
        constant_p=constant_p,
    )


def _check_verify_args(system: Any, spec: Any, widths: Any, n_samples: Any, seed: Any) -> tuple[tuple[int, ...], int]:
    """The checked widths and sample count (defaults depend on whether the loss has norms)."""
    if not isinstance(system, ODESystem):
        raise TypeError(f"system must be a derivations.ODESystem (one eigenmode); got {type(system).__name__}")
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    if n_samples is None:
        n_samples = 2**15 if widths is None and spec.involves_norms else 2**16
    widths = _check_widths((NORM_WIDTHS if spec.involves_norms else (4, 16)) if widths is None else widths, spec)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 256:
        raise ValueError(f"n_samples must be an int >= 256; got {n_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got {seed!r}")
    return widths, n_samples


def _user_rates(system: ODESystem, spec: ModelSpec, mapping: Mapping | None):
    """The system's rates in documented names, checked against the spec's states and
    parameters: (rates by state, their free parameter names, whether tau is a parameter, the
    spec's allowed parameter names, the renaming substitution)."""
    states, subs = _rename(system, spec, mapping)
    ema = spec.target == "ema"
    learned = spec.predictor == "learned"
    if "s" not in states:
        raise ValueError(f"the system needs the state s (eigenvalue of Phi Phi^T); its states map to {list(states)}")
    if "p" in states and not learned:
        raise ValueError(f"state p is the learned predictor's eigenvalue; {spec.label} has predictor={spec.predictor!r}")
    if learned and "p" not in states:
        raise ValueError(f"{spec.label} has a learned predictor: the system needs the state p")
    if "tau" in states and not ema:
        raise ValueError(f"state tau is the EMA target's ratio; {spec.label} has target={spec.target!r}")
    user = {eq: sp.sympify(r).xreplace(subs) for eq, r in zip(states, system.rhs)}
    free = {str(x) for r in user.values() for x in r.free_symbols} - set(states)
    tau_is_param = ema and "tau" not in states
    allowed = _allowed_params(spec, tau_is_param)
    bad = sorted(free - allowed)
    if bad:
        raise ValueError(f"parameters {bad} are not parameters of {spec.label}; its parameters are {sorted(allowed)}")
    return user, free, tau_is_param, allowed, subs


def _symbolic_comparison(spec: ModelSpec, tau_is_param: bool, user: dict, fixed_subs: dict):
    """(derived system, why there is none, its rates with the fixed values, their difference to
    ``user``, the differing terms); without a derived system the last three are empty."""
    derived_system, derive_error = _derive_one_mode(spec, tau_is_param)
    if derived_system is None:
        return None, derive_error, None, FrozenMap(), ()
    derived = {eq: r.subs(fixed_subs) for eq, r in derived_system.equations.items()}
    difference, terms = _symbolic(user, derived, spec)
    return derived_system, derive_error, derived, difference, terms


def _drawn_params(spec: ModelSpec, free: set[str], fixed: Mapping[str, float]) -> tuple[str, ...]:
    """The network's parameters drawn at random: those the system does not use and that are
    not fixed."""
    return tuple(sorted(
        n for n in set(network_params(spec)) | ({"lambda"} if spec.data == "spectrum" else set())
        if n not in free and n not in fixed
    ))


def _derive_one_mode(spec: ModelSpec, tau_is_param: bool) -> tuple[ODESystem | None, str]:
    """(derive(spec) as a one-mode ODESystem, "") or (None, why not): a failure of derive is
    reported, not raised, since the Monte Carlo still answers."""
    if spec.norms == "exact" and spec.involves_norms:
        return None, "norms='exact' has no one-mode system (derive returns the K-mode ExactEigenmodes)"
    try:
        from ._derive import derive

        derived_system = derive(spec)
        if tau_is_param:
            derived_system = derived_system.freeze("tau")
    except Exception as err:  # noqa: BLE001  (any failure of derive: reported, the MC still answers)
        return None, f"{type(err).__name__}: {err}"
    if not isinstance(derived_system, ODESystem):
        return None, f"derive(spec) returned a {type(derived_system).__name__}, not a one-mode ODESystem"
    return derived_system, ""


@dataclass
class _Tally:
    """Running sums of the Monte-Carlo comparison, per width and equation: z-scores against
    the true and the treated loss, the derived system's z-scores, squared discrepancies and
    drives, the discrepancy to the true loss per base mode (mean over its copies) and its
    standard error, and the off-diagonal z-scores."""

    widths: tuple[int, ...]
    zs: dict
    zt: dict
    dz: dict
    sq_diff: dict
    sq_rate: dict
    per_base: dict
    err_var: dict
    offs: dict

    @classmethod
    def empty(cls, widths: tuple[int, ...], user: Mapping, derived_eqs: Sequence[str]) -> _Tally:
        return cls(
            widths=widths,
            zs={h: {eq: [] for eq in user} for h in widths},
            zt={h: {eq: [] for eq in user} for h in widths},
            dz={h: {eq: [] for eq in derived_eqs} for h in widths},
            sq_diff={h: {eq: 0.0 for eq in user} for h in widths},
            sq_rate={h: {eq: 0.0 for eq in user} for h in widths},
            per_base={h: {eq: ([], []) for eq in user} for h in widths},
            err_var={h: {eq: 0.0 for eq in user} for h in widths},
            offs={h: [] for h in widths},
        )

    def add(self, h: int, mine: Mapping[str, np.ndarray], mc: Mapping, ref: Any, spec: ModelSpec) -> None:
        """Adds one point of width ``h``: the system's rates ``mine`` against the Monte Carlo ``mc``."""
        n_base = self.widths[0]
        for eq in mine:
            if eq not in mc["true"].mean:
                raise ValueError(f"the model has no rate for {eq} (states of {spec.label}: {mc['true'].names})")
            tm, ts = mc["true"].mean[eq], mc["true"].se[eq]
            floor = 1e-12 * (np.abs(tm).mean() + 1e-300)
            self.zs[h][eq].append((mine[eq] - tm) / np.maximum(ts, floor))
            self.zt[h][eq].append((mine[eq] - ref.mean[eq]) / np.maximum(ref.se[eq], floor))
            self.sq_diff[h][eq] += float(np.sum((mine[eq] - tm) ** 2))
            self.sq_rate[h][eq] += float(np.sum(mc["true"].drive[eq] ** 2))
            self.err_var[h][eq] += float(np.sum(((mine[eq] - tm) * ts) ** 2))
            base_of = np.arange(h) % n_base
            copies = np.bincount(base_of, minlength=n_base)
            self.per_base[h][eq][0].append(np.bincount(base_of, mine[eq] - tm, n_base) / copies)
            self.per_base[h][eq][1].append(np.sqrt(np.bincount(base_of, ts**2, n_base)) / copies)

    def add_derived(self, h: int, theirs: Mapping[str, np.ndarray], ref: Any) -> None:
        """Adds the derived system's rates at the same point."""
        for eq, found in self.dz[h].items():
            if eq in ref.mean:
                found.append(np.abs(theirs[eq] - ref.mean[eq]) / np.maximum(ref.se[eq], 1e-300))

    def summary(self, user: Mapping):
        """(z, z_treated, derived_z, relative error, largest off-diagonal z), each per width."""
        z = {eq: {} for eq in user}
        z_treated = {eq: {} for eq in user}
        derived_z = {eq: {} for eq in self.dz[self.widths[0]]}
        error, off = {}, {}
        for h in self.widths:
            for eq in user:
                z[eq][h] = tuple(float(v) for v in np.concatenate(self.zs[h][eq]))
                z_treated[eq][h] = tuple(float(v) for v in np.concatenate(self.zt[h][eq]))
            for eq, found in self.dz[h].items():
                derived_z[eq][h] = float(np.max(np.concatenate(found))) if found else float("nan")
            error[h] = float(np.sqrt(np.mean([self.sq_diff[h][eq] / max(self.sq_rate[h][eq], 1e-300) for eq in user])))
            off[h] = float(np.nanmax(self.offs[h])) if not all(np.isnan(self.offs[h])) else float("nan")
        return z, z_treated, derived_z, error, off


def _monte_carlo_tally(spec: ModelSpec, user: dict, derived: dict | None, fixed: Mapping[str, float],
                       widths: tuple[int, ...], n_samples: int, seed: int, tau_is_param: bool) -> _Tally:
    """Compares the rates with Monte Carlo of the network at ceil(_BASE_MODES / min width)
    random aligned points, tiled to every width."""
    models = ("true", "treated") if _treated(spec) else ("true",)
    net_fixed = {k: v for k, v in fixed.items() if k in network_params(spec) or k == "lambda"}
    if tau_is_param and "tau" in fixed:
        net_fixed["tau"] = fixed["tau"]
    evaluate = _evaluator(user)
    evaluate_derived = _evaluator(derived) if derived is not None else None
    tally = _Tally.empty(widths, user, tuple(derived or {}))
    rng = np.random.default_rng(seed)
    for _ in range(math.ceil(_BASE_MODES / widths[0])):
        base = random_point(spec, widths[0], rng, fixed=net_fixed, shared_tau=tau_is_param)
        for h in widths:
            point = base if h == widths[0] else tiled_point(base, h, rng)
            mc = monte_carlo(spec, point, n_samples=n_samples, seed=int(rng.integers(2**31)), models=models)
            values = _point_values(point, {k: v for k, v in fixed.items() if k not in net_fixed})
            if tau_is_param:
                values["tau"] = float(point.tau[0])
            ref = mc[models[-1]]
            tally.add(h, evaluate(values, h), mc, ref, spec)
            if evaluate_derived is not None:
                tally.add_derived(h, evaluate_derived(values, h), ref)
            tally.offs[h].append(mc["true"].off_z)
    return tally


def _order(widths, error, sq_diff, sq_rate, err_var, user):
    """(k, its standard error) of error ~ h^-k by weighted least squares in log h; the error
    of each ``error[h]`` from the Monte-Carlo standard errors (delta method)."""
    if len(widths) < 2 or not all(error[h] > 0 for h in widths):
        return None, None
    n_eq = len(user)
    sigma = []
    for h in widths:
        # error^2 = mean_eq sq_diff/sq_rate: d(error^2) = mean_eq 2 sum (diff * se) / sq_rate
        var2 = sum(4 * err_var[h][eq] / max(sq_rate[h][eq], 1e-300) ** 2 for eq in user) / n_eq**2
        sigma.append(math.sqrt(var2) / (2 * error[h] ** 2))  # sigma of log(error)
    x, y = np.log(widths), np.log([error[h] for h in widths])
    w = 1 / np.maximum(np.asarray(sigma), 1e-12)
    A = np.stack([np.ones_like(x), x], 1) * w[:, None]
    coef, *_ = np.linalg.lstsq(A, y * w, rcond=None)
    cov = np.linalg.inv(A.T @ A)
    dof = len(widths) - 2
    if dof > 0:  # a power law that does not fit within the noise: its misfit widens the error
        cov *= max(1.0, float(np.sum((A @ coef - y * w) ** 2)) / dof)
    return float(-coef[1]), float(math.sqrt(cov[1, 1]))


def _constant(widths, per_base, sq_rate, user):
    """(O(1) part, its standard error, p-value of chi^2 of a = 0): per base mode and equation a
    weighted least-squares fit of the relative discrepancy d(h) = a + b/h + ... (degree
    min(3, n widths - 1)); None with fewer than three widths."""
    if len(widths) < 3:
        return None, None, None
    from scipy.special import gammaincc

    deg = min(3, len(widths) - 1)
    x = widths[0] / np.asarray(widths, dtype=float)
    design = np.stack([x**i for i in range(deg + 1)], 1)
    a, sa = [], []
    for eq in user:
        rows, ses = [], []
        for h in widths:
            n_modes = sum(len(v) for v in per_base[h][eq][0]) * h / widths[0]
            scale = math.sqrt(max(sq_rate[h][eq], 1e-300) / n_modes)  # RMS drive at width h
            rows.append(np.concatenate(per_base[h][eq][0]) / scale)
            ses.append(np.concatenate(per_base[h][eq][1]) / scale)
        rows, ses = np.asarray(rows), np.asarray(ses)
        ses = np.maximum(ses, 1e-12 * (np.abs(rows).mean() + 1e-300))  # a rate with no sampling noise
        for j in range(rows.shape[1]):
            w = 1 / ses[:, j]
            A = design * w[:, None]
            coef, *_ = np.linalg.lstsq(A, rows[:, j] * w, rcond=None)
            a.append(coef[0])
            sa.append(math.sqrt(np.linalg.inv(A.T @ A)[0, 0]))
    a, sa = np.asarray(a), np.asarray(sa)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(sa)) and np.all(sa > 0)):
        return None, None, None
    chi2 = float(np.sum((a / sa) ** 2))
    p = float(gammaincc(len(a) / 2, chi2 / 2))
    size = math.sqrt(max(float(np.mean(a**2) - np.mean(sa**2)), 0.0))
    return size, float(math.sqrt(np.mean(sa**2))), p


def _check_fixed(params: Mapping | None, subs: dict, allowed: set[str]) -> dict[str, float]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict {{parameter name: value}}; got {type(params).__name__}")
    user_to_doc = {str(k): str(v) for k, v in subs.items() if isinstance(v, sp.Symbol)}
    out = {}
    for key, value in params.items():
        name = user_to_doc.get(str(key), str(key))
        if name not in allowed or name in _CLOSED:
            raise ValueError(
                f"params[{str(key)!r}]: not a parameter that can be held fixed here; choose from "
                f"{sorted(allowed - set(_CLOSED))} (closures take their self-consistent values)"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating, sp.Number)):
            raise TypeError(f"params[{str(key)!r}] must be a real number; got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"params[{str(key)!r}] must be finite; got {value}")
        out[name] = value
    return out


def _fmt_z(z: Mapping[str, Mapping[int, tuple]], widths: tuple[int, ...]) -> str:
    parts = []
    for eq, per in z.items():
        worst = max(widths, key=lambda h: np.max(np.abs(per[h])))
        m = float(np.max(np.abs(per[worst])))
        if m > Z_MAX:
            parts.append(f"d{eq}/dt (|z| up to {m:.0f} at h={worst})")
    return ", ".join(parts)


def _verdict(spec, terms, z, z_treated, derived_z, error, fit, widths, symbolic, drawn):
    """(agrees, exact, verdict)."""
    hint = f"; drawn at random because your system lacks them: {', '.join(drawn)} (fix with params=)" if drawn else ""
    if terms:
        listed = "; ".join(str(t) for t in terms)
        mc = _fmt_z(z_treated, widths)
        tail = f" (Monte Carlo rejects {mc})" if mc else " (the Monte Carlo does not resolve it at these widths)"
        return False, False, f"differs in these terms: {listed}{tail}{hint}"
    rejected = _fmt_z(z_treated, widths)
    if rejected and (_treated(spec) or not spec.involves_norms):  # norms="exact": judged below
        what = f"the {spec.norms}-norm, {spec.moments}-moment gradient" if _treated(spec) else "the true loss"
        note = ""
        if symbolic and any(v > Z_MAX for per in derived_z.values() for v in per.values()):
            note = " (derive(spec) is rejected too: the derivation itself may be wrong)"
        elif symbolic:
            note = " although it equals derive(spec) symbolically"
        return False, False, f"differs from {what} in {rejected}{note}{hint}"
    against_true = _fmt_z(z, widths)
    if not against_true:
        return True, True, "agrees"
    sizes = ", ".join(f"{error[h]:.3g} at h={h}" for h in widths)
    order, order_se = fit["order"], fit["order_se"]
    constant, constant_se, p = fit["constant"], fit["constant_se"], fit["constant_p"]
    shrinks = "" if order is None else f" shrinks like h^-{order:.2f} (+- {order_se:.2f})"
    o1 = "" if constant is None else f"O(1) part {constant:.3g} +- {constant_se:.2g} of the drive, chi^2 of a = 0: p = {p:.2g}"
    if constant is not None and p > O1_P_VALUE and order is not None and order >= LEADING_ORDER_K:
        if _treated(spec):
            return True, False, (
                f"agrees only at leading order in 1/h: it is the exact flow of the {spec.norms}-norm, "
                f"{spec.moments}-moment approximation, whose relative error against the true loss ({sizes}){shrinks}; "
                f"its {o1}"
            )
        return False, False, (
            f"agrees only at leading order in 1/h: its relative error against the true loss ({sizes}){shrinks} and "
            f"its {o1}; it is not the exact flow ({against_true})"
        )
    if constant is None:
        why = ("the O(1) part needs three or more widths (an error of a few per cent at O(1) looks like 1/h "
               f"at two); pass widths={NORM_WIDTHS}")
    elif p <= O1_P_VALUE:
        why = f"an error that does not vanish as h grows: {o1}"
    else:
        why = f"its error does not shrink fast enough with h ({shrinks.strip() or 'no order'}; {o1})"
    if _treated(spec):
        return False, False, (
            f"agrees with the {spec.norms}-norm, {spec.moments}-moment approximation, but not at leading order "
            f"with the true loss (error {sizes}): {why}: {against_true}"
        )
    return False, False, f"differs from the true loss in {against_true} (error {sizes}): {why}"
