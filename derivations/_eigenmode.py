"""EigenmodeSystem: the ODESystem of one eigenmode of a derived model, with its derivation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

import sympy as sp

from . import symbols as sy
from ._coupled import ModeSystem, couple
from ._spec import ModelSpec
from ._interface import EigenmodeModel
from ._system import FrozenMap, ODESystem, frozen_value, reduce

__all__ = ["EigenmodeSystem", "display_form", "latex"]

_LATEX_NAMES = {
    sy.tau: r"\tau",
    sy.sigma2: r"\sigma^2",
    sy.eta: r"\eta",
    sy.alpha_p: r"\alpha_p",
    sy.beta: r"\beta",
    sy.N_psi: r"N_\psi",
    sy.N_phi: r"N_\phi",
    sy.alpha: r"\alpha",
    sy.eps: r"\epsilon",
    sy.s_max: r"s_{\max}",
    sy.lam: r"\lambda",
}

_c = sp.Symbol("c")


def latex(expr: object) -> str:
    """LaTeX of a SymPy expression with the model's symbol names (sigma2 as \\sigma^2,
    alpha_p as ``\\alpha_p``, N_psi as ``N_\\psi``, ...): SymPy alone would print sigma2 as sigma_2.

    Parameters
    ----------
    expr : sympy expression, or anything ``sympy.sympify`` reads
        The expression (a string is parsed).

    Returns
    -------
    str
        The LaTeX, without math delimiters.

    Raises
    ------
    sympy.SympifyError
        ``expr`` cannot be read as an expression.
    """
    return sp.latex(sp.sympify(expr), symbol_names=_LATEX_NAMES)


def display_form(expr: sp.Expr, c: sp.Expr = sy.c) -> sp.Expr:
    """``expr`` for reading: the view variance ``c`` (default 1 + sigma2; lambda + sigma2 for
    a data spectrum) written as c, the drift factored, decay terms (those with eta or beta)
    kept apart. Equal to ``expr`` after substituting c's definition.

    Parameters
    ----------
    expr : sympy.Expr
        A right-hand side in the model's symbols.
    c : sympy.Expr
        The view variance to write as ``c`` (default ``1 + sigma2``).

    Returns
    -------
    sympy.Expr
        The factored drift plus the collected decay terms, in terms of the symbol c.

    Raises
    ------
    sympy.SympifyError
        ``expr`` cannot be read as an expression.
    """
    e = sp.expand(sp.sympify(expr).subs(sy.sigma2, _c - (c - sy.sigma2)))
    terms = sp.Add.make_args(e)
    decay = [t for t in terms if t.has(sy.eta) or t.has(sy.beta)]
    drift = sp.Add(*[t for t in terms if t not in decay])
    return sp.factor(drift) + sp.collect(sp.Add(*decay), [sy.beta, sy.eta])


@dataclass(frozen=True, eq=False)
class EigenmodeSystem(ODESystem, EigenmodeModel):
    """The ODEs of one eigenmode of a derived model: an ODESystem that also carries the model
    and its derivation.

    ``derive()`` supplies the SSL facts as data: state domain s >= 0 (s is an eigenvalue of
    Phi Phi^T), the parameter domains (sigma2 >= 0, eta >= 0, alpha_p > 0, beta >= 0,
    N_psi > 0, N_phi > 0), collapse at p = s = 0 and the invariant manifold s = p**2/alpha_p.

    Attributes
    ----------
    states, params, rhs, state_domain, param_domain, collapse, manifold, name, restricted_to
        As in ``ODESystem``.
    time, step_param, scaling, weight_decay, partial_collapse
        As in ``ODESystem``, set by ``derive`` (see below).
    spec : ModelSpec
        The model this system was derived from.
    steps : mapping
        Intermediate results of the derivation (see ``derivations.derive``), read-only.
    closures : tuple of (param, per-mode summand, power)
        param = (sum_k summand_k)^power when the K-mode system is formed (T always; N_psi,
        N_phi for self-consistent norms).
    laws : tuple of ConservationLaw
        Conservation laws checked on this system.
    description : str
        What the system is and which invariants of the true model it keeps.

    ``time``, ``step_param``, ``scaling``, ``weight_decay`` and ``partial_collapse`` (the
    ``ODESystem`` fields) are set by ``derive``: scaling powers p ~ lambda, s ~ lambda^2,
    N_psi ~ lambda^2, N_phi ~ lambda, T ~ lambda^3 for a scale-invariant loss with a learned
    predictor (the true loss does not see the scale, so weight decay eta shrinks it as
    lambda = exp(-eta t)); the partial collapse "predictor" (p alone) for a learned predictor.
    """

    spec: ModelSpec = field(default=None, kw_only=True)
    steps: Mapping = field(default_factory=FrozenMap, kw_only=True, repr=False)
    closures: tuple = field(default=(), kw_only=True)
    laws: tuple = field(default=(), kw_only=True, repr=False)
    description: str = field(default="", kw_only=True, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.spec, ModelSpec):
            raise TypeError(f"spec must be a derivations.ModelSpec; got {type(self.spec).__name__}")
        object.__setattr__(self, "steps", frozen_value(self.steps))
        object.__setattr__(self, "closures", frozen_value(self.closures))
        object.__setattr__(self, "laws", tuple(self.laws))

    def _key(self) -> tuple:
        return super()._key() + (self.spec, self.closures)

    @property
    def reduced(self) -> bool:
        """True for a system restricted to the invariant manifold."""
        return self.restricted_to is not None

    def reduce(self) -> EigenmodeSystem:
        """The system on the invariant manifold s = p**2/alpha_p (``derivations.reduce``).

        d/dt (s - p^2/alpha_p) = -2 eta (s - p^2/alpha_p) for every variant (see ``laws``), so
        the manifold attracts at rate 2 eta and is invariant for eta = 0 too. On it dp/dt is a
        polynomial in p whose degree is ``order``: 3 for the Euclidean loss (Tian's cubic),
        6 for the cosine loss with exact moments, 3 with leading moments.

        Returns
        -------
        EigenmodeSystem
            The one-state system in p (the system itself if already reduced).

        Raises
        ------
        ValueError
            The system declares no manifold (a discrete map).
        """
        if self.reduced:
            return self
        if self.manifold is None:
            raise ValueError(f"{self.name or self.spec.label} declares no invariant manifold (a discrete map has "
                             "none: s = p**2/alpha_p is not invariant under a finite step); reduce() the flow instead")
        return _reduced(self)

    def _restricted(self, **changes) -> EigenmodeSystem:
        graph = changes.get("restricted_to")
        steps = {"full_system": self.equations}
        if graph is not None:
            steps["manifold"] = {k: v for k, v in graph.items()}
        what = changes.get("name") or self.spec.label
        return replace(self, closures=(), laws=(), steps=steps, description=f"{what}.", **changes)

    @property
    def order(self) -> int | None:
        """Degree in p of the polynomial dp/dt on the invariant manifold s = p**2/alpha_p.

        For a full (unreduced) system this is the order of its reduction; for a one-state system
        without a manifold (DirectPred or no predictor, SimSiam) the degree of its rhs in s.
        None if that is not a polynomial (a symbolic DirectPred exponent) or there is no
        manifold (no stop-gradient).
        """
        if not self.reduced and self.manifold is not None:
            return self.reduce().order
        if self.n_states != 1 and not self.reduced:
            return None
        try:
            return sp.Poly(self.rhs[0], self.states[0]).degree()
        except sp.PolynomialError:
            return None

    # -- display -------------------------------------------------------------------------
    @property
    def view_variance(self) -> sp.Expr:
        """c = E[x1^2] of a mode with both views noisy: 1 + sigma2, or lambda + sigma2 for a data
        spectrum (the expression written as c in displays)."""
        return (sy.lam if self.spec.data == "spectrum" else 1) + sy.sigma2

    def latex(self) -> str:
        """The equations as a LaTeX ``aligned`` block, in display form with the line c = ...

        Returns
        -------
        str
            The LaTeX, without math delimiters.
        """
        c = self.view_variance
        lines = [
            (rf"\Delta {sp.latex(v, symbol_names=_LATEX_NAMES)} &= " if self.is_discrete
             else rf"\dot{{{sp.latex(v, symbol_names=_LATEX_NAMES)}}} &= ")
            + sp.latex(display_form(r, c), symbol_names=_LATEX_NAMES)
            for v, r in zip(self.states, self.rhs)
        ]
        lines.append(r"c &= " + sp.latex(c, symbol_names=_LATEX_NAMES))
        return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"

    def __str__(self) -> str:
        head = f"EigenmodeSystem {self.spec.label}"
        if self.reduced:
            head += ", reduced to " + ", ".join(f"{k} = {v}" for k, v in self.restricted_to.items())
        else:
            head += ", one mode"
        c = self.view_variance
        lines = [
            head,
            f"  states: {', '.join(self.state_names)}",
            f"  params: {', '.join(self.param_names)}   (c = {'lambda' if self.spec.data == 'spectrum' else '1'} + sigma2)",
        ]
        what = "  {v} -> {v} + {r}" if self.is_discrete else "  d{v}/dt = {r}"
        lines += [what.format(v=v, r=sp.sstr(display_form(r, c))) for v, r in self.equations.items()]
        order = self.order
        if order is not None:
            where = "on s = p**2/alpha_p" if self.manifold is not None or self.reduced else f"in {self.state_names[0]}"
            lines.append(f"  order {where}: {order}")
        for param, summand, power in self.closures:
            if power == "max":
                lines.append(f"  closure: {param} = max_k {sp.sstr(summand)}")
                continue
            total = f"sum_k {sp.sstr(display_form(summand, c))}"
            lines.append(f"  closure: {param} = " + (total if power == 1 else f"sqrt({total})"))
        if self.description:
            lines += ["  " + ln for ln in self.description.splitlines()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"EigenmodeSystem({self.spec.label}, states=({', '.join(self.state_names)}), "
            f"params=({', '.join(self.param_names)}){', reduced' if self.reduced else ''})"
        )

    def modes(self, K: int) -> ModeSystem:
        """The K-mode system: K copies of this mode coupled through the spectral closures
        (``derivations.couple``).

        For the cosine loss T = sum_k tau_k p_k s_k always; with self-consistent norms also
        N_psi^2 = c sum_k p_k^2 s_k and N_phi^2 = c sum_k tau_k^2 s_k (computed by the
        Gaussian-moment engine as ``E||a||^2`` and ``E||b||^2``). Euclidean modes are uncoupled.

        Parameters
        ----------
        K : int
            The number of modes (>= 1).

        Returns
        -------
        ModeSystem
            The coupled system, flat state-major layout.

        Raises
        ------
        ValueError
            The system is reduced (call ``modes`` before ``reduce``), or K < 1.
        TypeError
            K is not an int.
        """
        if self.reduced:
            raise ValueError("modes(K) needs the full system; call it before reduce()")
        per_mode = ("lambda",) if "lambda" in self.param_names else ()
        return couple(
            self, K, {str(param): (summand, power) for param, summand, power in self.closures},
            per_mode_params=per_mode,
        )

    def discrete(self) -> EigenmodeSystem:
        """The matching discrete-time system: one step of gradient descent with learning rate
        ``lr`` (a new parameter) on the weights, as real training and published toy networks
        take it. Its rhs is the increment, y_next = y + rhs(y) (``dynamics.iterate``)::

            p   -> p + lr dp/dt                       (predictor, updated like the weights)
            s   -> s (1 + lr r)^2,  r = (dphi/dt)/phi  (phi = sqrt(s) takes the step, not s)
            tau -> (tau + lr beta (1 - tau)) / (1 + lr r)   (EMA: Phi_a -> Phi_a + lr beta (Phi - Phi_a))

        Expected gradients: the map of the expected dynamics, exact for the Euclidean loss
        (gradients linear in the second moments). As lr -> 0 with t = n lr it becomes the flow;
        at a finite lr the flow can mislead (overshoot, oscillation, divergence of the weights).

        Returns
        -------
        EigenmodeSystem
            The map, with the extra parameter ``lr``, ``time="discrete"`` and ``step_param="lr"``
            (the system itself if it is a map already). It declares no scaling: a step of size
            lr is not scale invariant.

        Raises
        ------
        ValueError
            The system is reduced (the manifold is not invariant under the map).
        """
        if self.is_discrete:
            return self
        if self.reduced:
            raise ValueError("discrete() needs the full system; the manifold is not invariant under the map")
        return _discrete(self)


@lru_cache(maxsize=64)
def _reduced(system: EigenmodeSystem) -> EigenmodeSystem:
    return reduce(system, system.manifold)


@lru_cache(maxsize=64)
def _discrete(system: EigenmodeSystem) -> EigenmodeSystem:
    eq = system.equations
    rate = system.steps["amplitude_rate"]
    step = 1 + sy.lr * rate
    rows = []
    for name, rhs in eq.items():
        if name == "p":
            rows.append(sy.lr * rhs)
        elif name == "s":
            rows.append(sp.expand(sy.s * (step**2 - 1)))
        elif name == "tau":
            rows.append(sp.together((sy.tau + sy.lr * sy.beta * (1 - sy.tau)) / step - sy.tau))
        else:  # pragma: no cover - derive() makes only these states
            raise RuntimeError(f"no discrete map for state {name!r}")
    domain = dict(system.param_domain)
    domain["lr"] = sp.Interval.open(0, sp.oo)
    steps = {"flow": system.equations, "amplitude_rate": rate}
    return replace(
        system, rhs=sp.ImmutableMatrix(rows), params=system.params + (sy.lr,), param_domain=domain,
        manifold=None, laws=(), steps=steps, time="discrete", step_param="lr", scaling=None, weight_decay=None,
        name=f"{system.name}, gradient-descent step lr",
        description="One step of gradient descent with learning rate lr on the expected loss (rhs = increment).",
    )


