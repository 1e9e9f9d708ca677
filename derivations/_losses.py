"""Per-sample losses written through the three scalars the online output a enters by.

Both losses depend on a = Psi Phi x1 and b = Phi_a x2 only through A = <a, a>, B = <a, b>,
C = <b, b>, so dL/da = 2 (dL/dA) a + (dL/dB) b and the matrix gradients follow from the
chain rule (see ``per_sample_gradient``). The target b carries a stop-gradient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

if TYPE_CHECKING:  # _spec imports this module
    from ._spec import ModelSpec

__all__ = [
    "A", "B", "C", "BUILTIN_LOSSES", "loss_expression", "per_sample_loss", "per_sample_gradient",
    "is_scale_invariant",
]

A, C = sp.symbols("A C", positive=True)
B = sp.Symbol("B", real=True)
"""A = <a, a>, B = <a, b>, C = <b, b> for one sample (B may be negative; only A, C are norms)."""

BUILTIN_LOSSES: dict[str, sp.Expr] = {
    "euclidean": (A - 2 * B + C) / 2,
    "cosine": -B / sp.sqrt(A * C),
    "isoloss-euclidean": (A - 2 * B + C) / 2,
    "isoloss-cosine": -B / sp.sqrt(A * C),
}
"""The built-in losses as expressions in A, B, C. The IsoLoss variants share the expression
of their flavour: they differ in how its gradient reaches Phi (see ``ModelSpec``)."""


def loss_expression(loss: object) -> sp.Expr:
    """L(A, B, C) of a built-in name, a ``ModelSpec`` or an expression (returned as is)."""
    loss = getattr(loss, "loss", loss)
    if isinstance(loss, sp.Expr):
        return loss
    if isinstance(loss, str) and loss in BUILTIN_LOSSES:
        return BUILTIN_LOSSES[loss]
    raise ValueError(f"loss={loss!r} is not allowed; choose one of {sorted(BUILTIN_LOSSES)} or an expression in A, B, C")


def per_sample_loss(loss: str | sp.Expr | ModelSpec) -> sp.Expr:
    """L(A, B, C) for one sample, for a built-in name, a ``ModelSpec`` or an expression::

        euclidean: L = 1/2 ||a - b||^2 = (A - 2 B + C) / 2
        cosine:    L = -<a, b> / (||a|| ||b||) = -B / sqrt(A C)

    with A = <a, a>, B = <a, b>, C = <b, b>.

    Parameters
    ----------
    loss : str, sympy.Expr or ModelSpec
        A built-in loss name ("euclidean", "cosine", ...), an expression in A, B, C, or a
        model whose loss is taken.

    Returns
    -------
    sympy.Expr
        L in the symbols A, B, C.

    Raises
    ------
    ValueError
        An unknown loss name, or an expression with symbols other than A, B, C.
    """
    return loss_expression(loss)


def per_sample_gradient(loss: str | sp.Expr | ModelSpec) -> dict[str, sp.Expr]:
    """Matrix-level per-sample gradients, computed by SymPy's matrix calculus.

    Parameters
    ----------
    loss : str, sympy.Expr or ModelSpec
        The loss, as ``per_sample_loss`` reads it.

    Returns
    -------
    dict of str -> sympy matrix expression
        ``{"dL/da": ..., "dL/dPsi": ..., "dL/dPhi": ...}`` in the MatrixSymbols Psi, Phi,
        Phi_a (h x h; the eigenmode ansatz takes d = h) and x1, x2 (h x 1), with the outer
        partials dL/dA, dL/dB written out as scalar factors.

    Raises
    ------
    ValueError
        ``loss`` is not a loss ``per_sample_loss`` reads.
    """
    h = sp.Symbol("h", integer=True, positive=True)
    Psi = sp.MatrixSymbol("Psi", h, h)
    Phi = sp.MatrixSymbol("Phi", h, h)
    Phi_a = sp.MatrixSymbol("Phi_a", h, h)
    x1 = sp.MatrixSymbol("x1", h, 1)
    x2 = sp.MatrixSymbol("x2", h, 1)
    g = sp.MatrixSymbol("g", h, 1)  # stands for dL/da, held fixed while differentiating
    a = Psi * Phi * x1
    b = Phi_a * x2
    L = per_sample_loss(loss)
    dL_da = 2 * sp.diff(L, A) * a + sp.diff(L, B) * b
    # dL/dtheta = d<g, a>/dtheta with g = dL/da held fixed: a linear form that SymPy's
    # matrix calculus differentiates exactly.
    grad_psi = (g.T * a).diff(Psi).subs(g, dL_da)
    grad_phi = (g.T * a).diff(Phi).subs(g, dL_da)
    return {"dL/da": dL_da, "dL/dPsi": grad_psi, "dL/dPhi": grad_phi}


def is_scale_invariant(loss: str | sp.Expr | ModelSpec) -> bool:
    """Whether L(lambda a, b) = L(a, b) for every lambda > 0 (checked symbolically).

    For such a loss <Psi, dJ/dPsi> = <Phi, dJ/dPhi> = 0 (Euler), so under weight decay eta the
    squared norms ``||Psi||_F^2`` and ``||Phi||_F^2`` decay exactly like exp(-2 eta t).

    Parameters
    ----------
    loss : str, sympy.Expr or ModelSpec
        The loss, as ``per_sample_loss`` reads it.

    Returns
    -------
    bool
        True if L(lambda^2 A, lambda B, C) - L(A, B, C) simplifies to 0.

    Raises
    ------
    ValueError
        ``loss`` is not a loss ``per_sample_loss`` reads.
    """
    lam = sp.Symbol("lambda", positive=True)
    L = loss_expression(loss)
    scaled = L.subs({A: lam**2 * A, B: lam * B}, simultaneous=True)
    return sp.simplify(scaled - L) == 0
