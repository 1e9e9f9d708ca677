"""The model specification: loss, predictor, target, stop-gradient, views, data, and the
approximations (norm and moment treatment, batch size) of one linear non-contrastive model."""

from __future__ import annotations

from dataclasses import dataclass, fields

import sympy as sp

from ._losses import A, B, C, BUILTIN_LOSSES, loss_expression
from ._batch_losses import BATCH_LOSSES

__all__ = ["ModelSpec"]

_ALLOWED = {
    "target": ("simsiam", "ema"),
    "norms": ("frozen", "self-consistent", "exact", "expansion"),
    "moments": ("exact", "leading"),
    "predictor": ("learned", "directpred", "none"),
    "views": ("both", "one"),
    "data": ("isotropic", "spectrum"),
    "batch": ("infinite", "finite"),
}
_FLAGS = ("stop_gradient", "normalize", "eps", "standardize")
_ORDERS = (1, 2)
_LOSS_NAMES = tuple(BUILTIN_LOSSES) + ("isoloss",) + tuple(BATCH_LOSSES)


@dataclass(frozen=True)
class ModelSpec:
    """One linear non-contrastive model: a = W_P Phi x1 (online), b = Phi_a x2 (target).

    Views x1 = x + e1, x2 = x + e2 with x ~ N(0, diag(lambda)) (isotropic data: lambda = 1)
    and e ~ N(0, sigma2 I); the per-sample loss L(A, B, C) of A = <a, a>, B = <a, b>,
    C = <b, b>; gradient flow with weight decay eta on Phi (and on a learned predictor).

    Parameters
    ----------
    loss : str or sympy.Expr
        A SymPy expression in ``derivations.symbols.A, B, C`` (or a string of one), or a
        built-in name (sg is the stop-gradient)::

            "euclidean"          L = (A - 2 B + C)/2 = 1/2 ||a - b||^2
            "cosine"             L = -B / sqrt(A C)
            "isoloss-euclidean"  (alias "isoloss") the IsoLoss of Halvagal et al. (2023),
                                 per sample 1/2 ||z - sg(z_t + z - p)||^2 with z = Phi x1,
                                 p = W_P z, z_t = b: the gradient moves Phi by
                                 -(p - z_t) x1^T, without the factor W_P^T, so the
                                 predictor's eigenvalue no longer multiplies the rate.
            "isoloss-cosine"     per sample -[<z, sg(z_t)> / sg(||p|| ||z_t||)
                                 - 1/2 sg(<p, z_t> / (||p||^3 ||z_t||)) ||W_P^(1/2) z||^2]
                                 (half of Halvagal et al.'s form, matching "cosine"): the
                                 cosine gradient g = dL/da reaches Phi as g x1^T.

        IsoLoss variants need a predictor that is not learned (it gets no gradient).

        Or a loss of the batch's moment matrices (no per-sample form; z1 = Phi x1 and
        z2 = Phi_t x2 the two branches' embeddings, C = E[z1 z2^T] the cross-correlation,
        V1 = E[z1 z1^T], V2 = E[z2 z2^T]; see ``derivations.batch_loss``)::

            "barlow-twins"          sum_i (1 - C_ii)^2 + lambda_BT sum_{i != j} C_ij^2, C
                                    the cross-correlation of the per-dimension standardised
                                    embeddings (``standardize=True``, Barlow Twins) or of
                                    the raw ones (``standardize=False``, Simon et al. 2023)
            "vicreg"                lambda_inv E||z1 - z2||^2
                                    + mu_var/2 sum_i [relu(gamma - sqrt(V1_ii + eps_var))
                                                      + relu(gamma - sqrt(V2_ii + eps_var))]
                                    + nu_cov sum_{i != j} [V1_ij^2 + V2_ij^2]
                                    (VICReg's terms summed over dimensions; the reference
                                    code averages over the h dimensions, so its weights
                                    are these times h)
            "spectral-contrastive"  -2 E[<z1, z2>] + E[<z1, z2'>^2], z2' from an
                                    independent sample (HaoChen et al. 2021)

        They default to no predictor and no stop-gradient (one network, both branches
        trained); their weights (lambda_BT, lambda_inv, mu_var, nu_cov, gamma, eps_var) are
        parameters of the derived system.
    target : str
        "simsiam": Phi_a = Phi; "ema": dPhi_a/dt = beta (Phi - Phi_a) (BYOL); with EMA the
        frozen-tau analysis is ``derive(spec).freeze("tau")``.
    norms : str
        For losses that involve the norms (not polynomial in A, B, C). "frozen":
        A -> N_psi^2, C -> N_phi^2 inside the per-sample gradient, held as parameters.
        "self-consistent": ``N_psi^2 = E||a||^2``, ``N_phi^2 = E||b||^2`` from the spectrum
        (closed by ``system.modes(K)``). "exact" (cosine and IsoLoss-cosine losses): no norm
        or moment approximation, the expected gradient of the true loss at any width for
        Gaussian views and aligned weights (not for other data), by a Laplace-integral
        quadrature; ``derive`` then returns ``ExactEigenmodes`` (K-mode systems only). "expansion"
        (cosine loss with stop-gradient): the exact flow expanded in 1/K about the
        self-consistent norms to ``order``, the fluctuations of A, B, C entering through their
        spectral cumulants (closed by ``system.modes(K)``, see ``derivations.expansion_terms``).
    moments : str
        For losses that involve the norms. "exact": the remaining Gaussian averages exact
        (Isserlis). "leading": B replaced by its mean T (self-averaging at large width), which
        drops the O(1/h) terms such as 2 tau p^2 s^2.
    predictor : str or None
        None: "learned" for per-sample losses, "none" for losses of the batch's moments
        (which take no other). "learned": W_P = Psi, trained, dPsi/dt = -alpha_p dJ/dPsi - eta Psi. "directpred":
        W_P = F^alpha, F = Phi Phi^T (eigenvalue s), set in closed form (no gradient through
        it), exponent parameter ``alpha``; ``normalize`` divides F by its largest eigenvalue
        s_max, ``eps`` adds eps to every predictor eigenvalue: w = (s/s_max)^alpha + eps.
        "none": W_P = I.
    stop_gradient : bool or None
        True (the target is a constant inside each gradient) or False (SimSiam only: the
        gradient also flows through the target branch b = Phi x2). None: True for
        per-sample losses, False for losses of the batch's moments.
    views : str
        "both" (noise on both views) or "one" (the first view clean, x1 = x).
    data : str
        "isotropic" (lambda = 1) or "spectrum" (mode j has data variance lambda_j, a
        parameter ``lambda``; K-mode systems take the spectrum as an array).
    normalize : bool
        DirectPred only: divide F by its largest eigenvalue.
    eps : bool
        DirectPred only: add the parameter eps to every predictor eigenvalue.
    standardize : bool or None
        Barlow Twins only: standardise every embedding dimension over the batch before the
        cross-correlation (True, the default for "barlow-twins") or not (False).
    batch : str
        Losses of the batch's moments only. "infinite": the population loss (the batch loss
        as B -> infinity). "finite": the expected batch loss at batch size B, a parameter
        ``batch`` (exact where it is closed form, else to O(1/B); see ``derive``).
    order : int or None
        ``norms="expansion"`` only: the number of 1/K corrections kept beyond the leading
        order (1 or 2; None means 1). None for every other norm treatment.

    For a loss polynomial in A, B, C (Euclidean) ``norms`` and ``moments`` are irrelevant and
    normalised to their defaults, so equal models compare (and cache) equal; an expression
    equal to a built-in loss is stored by that name.

    Raises
    ------
    TypeError
        A field of the wrong type.
    ValueError
        An unknown value, a loss that is not an expression in A, B, C or does not depend on
        the online output, or a combination that makes no sense (IsoLoss with a learned
        predictor; no stop-gradient with an EMA target or with IsoLoss; ``normalize`` or
        ``eps`` without the DirectPred predictor; ``order`` without ``norms="expansion"``;
        a loss of the batch's moments with a predictor, an EMA target or an approximation
        of the norms; ``standardize`` other than with Barlow Twins; ``batch="finite"`` with
        a per-sample loss).
    """

    loss: str | sp.Expr = "euclidean"
    target: str = "simsiam"
    norms: str = "frozen"
    moments: str = "exact"
    predictor: str | None = None
    stop_gradient: bool | None = None
    views: str = "both"
    data: str = "isotropic"
    normalize: bool = False
    eps: bool = False
    order: int | None = None
    standardize: bool | None = None
    batch: str = "infinite"

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", _canonical_loss(self.loss))
        moments_loss = self.batch_statistics
        defaults = {"predictor": "none" if moments_loss else "learned", "stop_gradient": not moments_loss,
                    "standardize": self.loss == "barlow-twins"}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _FLAGS:
                if not isinstance(value, bool):
                    raise TypeError(f"ModelSpec.{f.name} must be True or False; got {value!r}")
            elif f.name in _ALLOWED:
                if not isinstance(value, str):
                    raise TypeError(
                        f"ModelSpec.{f.name} must be a str, one of {_ALLOWED[f.name]}; "
                        f"got {type(value).__name__} {value!r}"
                    )
                if value not in _ALLOWED[f.name]:
                    raise ValueError(
                        f"ModelSpec.{f.name}={value!r} is not allowed; "
                        f"choose one of {', '.join(map(repr, _ALLOWED[f.name]))}"
                    )
        if moments_loss:
            self._check_batch_loss()
        else:
            if self.batch != "infinite":
                raise ValueError(
                    f"ModelSpec.batch={self.batch!r} is an option of the losses of the batch's moments "
                    f"({', '.join(map(repr, BATCH_LOSSES))}); a per-sample loss has no batch-size effect "
                    "on its expected gradient"
                )
            if self.standardize:
                raise ValueError(f"ModelSpec: standardize=True is an option of loss='barlow-twins'; got loss={self.loss!r}")
        if self.isoloss and self.predictor == "learned":
            raise ValueError(
                f"ModelSpec: loss={self.loss!r} gives the predictor no gradient, so it cannot be "
                "learned; use predictor='directpred' (Halvagal et al.) or predictor='none'"
            )
        if not self.stop_gradient and self.target == "ema":
            raise ValueError(
                "ModelSpec: stop_gradient=False needs target='simsiam'; an EMA target is a "
                "separate copy that no gradient updates"
            )
        if not self.stop_gradient and self.isoloss:
            raise ValueError(
                f"ModelSpec: loss={self.loss!r} is defined through stop-gradients; "
                "stop_gradient=False is not allowed with it"
            )
        for flag in ("normalize", "eps"):
            if getattr(self, flag) and self.predictor != "directpred":
                raise ValueError(
                    f"ModelSpec: {flag}=True is an option of predictor='directpred'; "
                    f"got predictor={self.predictor!r}"
                )
        self._check_order()
        if self.norms in ("exact", "expansion"):
            what = {"exact": "the exact expected flow at any width, for Gaussian views",
                    "expansion": "the exact flow expanded in 1/K"}[self.norms]
            needs = ("loss='cosine' (with or without stop-gradient) and loss='isoloss-cosine'"
                     if self.norms == "exact" else "loss='cosine' with stop-gradient")
            losses = ("cosine", "isoloss-cosine") if self.norms == "exact" else ("cosine",)
            if self.loss not in losses or (self.norms == "expansion" and not self.stop_gradient):
                raise ValueError(
                    f"ModelSpec: norms={self.norms!r} ({what}) is available for "
                    f"{needs}; got loss={self.loss!r}, stop_gradient={self.stop_gradient}"
                )
            object.__setattr__(self, "moments", "exact")
        if not self.involves_norms:
            object.__setattr__(self, "norms", "frozen")
            object.__setattr__(self, "moments", "exact")

    def _check_batch_loss(self) -> None:
        conflicts = []
        if self.predictor != "none":
            conflicts.append(f"predictor={self.predictor!r} (these losses are derived for one network, predictor='none')")
        if self.target != "simsiam":
            conflicts.append(f"target={self.target!r} (the target is the online network, target='simsiam')")
        if self.norms != "frozen" or self.moments != "exact":
            conflicts.append(f"norms={self.norms!r}, moments={self.moments!r} (there are no norms to approximate)")
        if self.order is not None:
            conflicts.append(f"order={self.order!r} (an option of norms='expansion')")
        if self.standardize and self.loss != "barlow-twins":
            conflicts.append("standardize=True (an option of loss='barlow-twins')")
        if conflicts:
            raise ValueError(f"ModelSpec: loss={self.loss!r} does not take " + "; ".join(conflicts))

    def _check_order(self) -> None:
        order = self.order
        if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
            raise TypeError(f"ModelSpec.order must be an int (1 or 2) or None; got {type(order).__name__} {order!r}")
        if self.norms != "expansion":
            if order is not None:
                raise ValueError(
                    f"ModelSpec.order={order!r} is an option of norms='expansion'; got norms={self.norms!r}"
                )
            return
        if order is None:
            object.__setattr__(self, "order", 1)
        elif order not in _ORDERS:
            raise ValueError(f"ModelSpec.order={order!r} is not allowed; choose one of {', '.join(map(str, _ORDERS))}")

    # -- what the loss is ------------------------------------------------------------------
    @property
    def loss_expr(self) -> sp.Expr:
        """The per-sample loss L(A, B, C) whose gradient with respect to a drives the model
        (for IsoLoss the loss whose gradient g = dL/da reaches Phi as g x1^T).

        Raises
        ------
        ValueError
            A loss of the batch's moments, which has no per-sample form.
        """
        if self.batch_statistics:
            raise ValueError(
                f"ModelSpec(loss={self.loss!r}) is a loss of the batch's moment matrices; it has no per-sample "
                "form L(A, B, C) (see derivations.batch_loss)"
            )
        return loss_expression(self.loss)

    @property
    def batch_statistics(self) -> bool:
        """True for the losses of the batch's moment matrices (Barlow Twins, VICReg,
        spectral contrastive), False for the per-sample losses L(A, B, C)."""
        return isinstance(self.loss, str) and self.loss in BATCH_LOSSES

    @property
    def isoloss(self) -> bool:
        """True for the IsoLoss variants (the predictor factor W_P^T is not applied)."""
        return isinstance(self.loss, str) and self.loss.startswith("isoloss")

    @property
    def involves_norms(self) -> bool:
        """True if the loss is not a polynomial in A, B, C (it divides by or takes roots of
        the norms), so the norm and moment treatments apply."""
        return not self.batch_statistics and not self.loss_expr.is_polynomial(A, B, C)

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``cosine/simsiam (frozen norms, exact moments)``."""
        loss = self.loss if isinstance(self.loss, str) else f"L = {sp.sstr(self.loss)}"
        base = loss if self.batch_statistics else f"{loss}/{self.target}"
        extras = []
        if self.predictor == "directpred":
            opts = [o for o in ("normalize", "eps") if getattr(self, o)]
            extras.append("DirectPred predictor" + (f" ({', '.join(opts)})" if opts else ""))
        elif self.predictor == "none" and not self.batch_statistics:
            extras.append("no predictor")
        if self.batch_statistics and self.stop_gradient:
            extras.append("stop-gradient")
        elif not self.stop_gradient and not self.batch_statistics:
            extras.append("no stop-gradient")
        if self.views == "one":
            extras.append("one-view noise")
        if self.data == "spectrum":
            extras.append("data spectrum")
        if self.loss == "barlow-twins":
            extras.append("standardised" if self.standardize else "not standardised")
        if self.batch == "finite":
            extras.append("finite batch")
        if self.norms == "exact":
            extras.append("exact at finite width")
        elif self.norms == "expansion":
            extras.append(f"1/K expansion, order {self.order}")
        elif self.involves_norms:
            extras.append(f"{self.norms} norms, {self.moments} moments")
        return base + (f" ({'; '.join(extras)})" if extras else "")

    @staticmethod
    def allowed() -> dict[str, tuple]:
        """The allowed values of every field (``loss`` also takes any expression in A, B, C).

        Returns
        -------
        dict of str -> tuple
            ``{field name: allowed values}``.
        """
        out: dict[str, tuple] = {"loss": _LOSS_NAMES}
        out.update(_ALLOWED)
        out.update({flag: (False, True) for flag in _FLAGS})
        out["order"] = (None,) + _ORDERS
        out["predictor"] = (None,) + out["predictor"]
        out["stop_gradient"] = (None, False, True)
        out["standardize"] = (None, False, True)
        return out


def _canonical_loss(loss: object) -> str | sp.Expr:
    """A built-in name, or a SymPy expression in A, B, C that is not equal to a built-in."""
    if isinstance(loss, str):
        if loss == "isoloss":
            return "isoloss-euclidean"
        if loss in BUILTIN_LOSSES or loss in BATCH_LOSSES:
            return loss
        try:
            expr = sp.parse_expr(loss, local_dict={"A": A, "B": B, "C": C})
        except Exception:
            raise ValueError(
                f"ModelSpec.loss={loss!r} is not allowed: choose one of the built-in losses "
                f"({', '.join(map(repr, _LOSS_NAMES))}) or an expression in A, B, C"
            ) from None
    elif isinstance(loss, sp.Basic):
        expr = loss
    else:
        raise TypeError(
            f"ModelSpec.loss must be a str or a SymPy expression in A, B, C; got {type(loss).__name__}"
        )
    if not isinstance(expr, sp.Expr):
        raise TypeError(f"ModelSpec.loss must be a scalar SymPy expression; got {expr!r}")
    expr = expr.xreplace({sp.Symbol(n): v for n, v in (("A", A), ("B", B), ("C", C))})
    extra = expr.free_symbols - {A, B, C}
    if extra:
        raise ValueError(
            f"ModelSpec.loss={loss!r} is not allowed: it uses {sorted(map(str, extra))}; choose one of the built-in "
            f"losses ({', '.join(map(repr, _LOSS_NAMES))}) or an expression in A = <a,a>, B = <a,b>, C = <b,b> "
            "only (derivations.symbols.A, B, C)"
        )
    if not expr.has(A) and not expr.has(B):
        raise ValueError(f"ModelSpec.loss={expr} does not depend on A or B: the online branch gets no gradient")
    for name in ("euclidean", "cosine"):
        if sp.simplify(expr - loss_expression(name)) == 0:
            return name
    return expr
