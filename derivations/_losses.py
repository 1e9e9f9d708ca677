"""Per-sample losses written through the three scalars the online output a enters by.

Both losses depend on a = Psi Phi x1 and b = Phi_a x2 only through A = <a, a>, B = <a, b>,
C = <b, b>, so dL/da = 2 (dL/dA) a + (dL/dB) b and the matrix gradients follow from the
chain rule (see ``per_sample_gradient``). The target b carries a stop-gradient.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["A", "B", "C", "per_sample_loss", "per_sample_gradient", "is_scale_invariant"]

A, B, C = sp.symbols("A B C", positive=True)
"""A = <a, a>, B = <a, b>, C = <b, b> for one sample (B may be negative; only A, C are norms)."""


def per_sample_loss(loss: str) -> sp.Expr:
    """L(A, B, C) for one sample.

    euclidean: L = 1/2 ||a - b||^2 = (A - 2 B + C) / 2
    cosine:    L = -<a, b> / (||a|| ||b||) = -B / sqrt(A C)
    """
    if loss == "euclidean":
        return (A - 2 * B + C) / 2
    if loss == "cosine":
        return -B / sp.sqrt(A * C)
    raise ValueError(f"loss={loss!r} is not allowed; choose 'euclidean' or 'cosine'")


def per_sample_gradient(loss: str) -> dict[str, sp.Expr]:
    """Matrix-level per-sample gradients, computed by SymPy's matrix calculus.

    Returns ``{"dL/da": ..., "dL/dPsi": ..., "dL/dPhi": ...}`` as matrix expressions in the
    MatrixSymbols Psi, Phi, Phi_a (h x h; the eigenmode ansatz takes d = h) and x1, x2
    (h x 1), with the outer partials dL/dA, dL/dB written out as scalar factors.
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


def is_scale_invariant(loss: str) -> bool:
    """Whether L(lambda a, b) = L(a, b) for every lambda > 0 (checked symbolically).

    For such a loss <Psi, dJ/dPsi> = <Phi, dJ/dPhi> = 0 (Euler), so under weight decay eta the
    squared norms ||Psi||_F^2 and ||Phi||_F^2 decay exactly like exp(-2 eta t).
    """
    lam = sp.Symbol("lambda", positive=True)
    L = per_sample_loss(loss)
    scaled = L.subs({A: lam**2 * A, B: lam * B}, simultaneous=True)
    return sp.simplify(scaled - L) == 0
