"""Losses of the batch's moment matrices: Barlow Twins, VICReg and the spectral contrastive loss.

Two branches of one network embed the two views, z1 = Phi x1 and z2 = Phi_t x2 (Phi_t = Phi, or
its stop-gradient copy). The losses see the batch only through its moment matrices, whose
population values are C = E[z1 z2^T] (the cross-correlation), V1 = E[z1 z1^T] and
V2 = E[z2 z2^T]. Each loss is a sum over dimensions i of a term of the diagonal entries
(C_ii, V1_ii, V2_ii) plus a sum over ordered pairs i != j of a term of the pair's entries; the
pair term vanishes with its gradient where the off-diagonal entries vanish, so on aligned weights
only the diagonal term drives the population flow.

At a finite batch of B samples the moments are estimated from the batch and the loss is the
expectation of the batch loss over batches, derived here from Gaussian moments (Isserlis):

- Barlow Twins without standardisation, C^ = Z1^T Z2 / B: E[(1 - C^_ii)^2] and E[C^_ij^2]
  add Var(z1_i z2_j) / B: exact.
- Barlow Twins standardised per dimension: every batch correlation is invariant to the scale
  of each embedding dimension, so on aligned weights the expected batch loss does not depend
  on the amplitudes at any B: exact (the batch adds nothing to the aligned flow).
- VICReg, covariances S^ with the unbiased (B - 1) normaliser (B - 1 independent centred
  samples after a Helmert rotation): E[S^_ij^2] adds Var(y_i y_j) / (B - 1), exact; the
  variance hinge f(S^_ii) = relu(gamma - sqrt(S^_ii + eps_var)) to O(1/B) by the delta method,
  f(S_ii) + f''(S_ii) Var(S^_ii) / 2, away from its switching surface.
- Spectral contrastive: the batch estimate is a U-statistic (pairs of distinct samples), so its
  expectation is the population loss: exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from . import symbols as sy
from ._moments import wick_moment

__all__ = ["BATCH_LOSSES", "BatchLoss", "batch_loss", "DIAGONAL", "PAIR"]

BATCH_LOSSES: dict[str, str] = {
    "barlow-twins": "Barlow Twins (Zbontar et al. 2021): the cross-correlation of the two branches pushed to I",
    "vicreg": "VICReg (Bardes et al. 2022): invariance, a variance hinge and decorrelated covariances",
    "spectral-contrastive": "the spectral contrastive loss (HaoChen et al. 2021)",
}
"""The built-in losses of the batch's moment matrices, by name."""

_c = sp.Symbol("C_ii", real=True)
_v1, _v2 = sp.symbols("V1_ii V2_ii", positive=True)
DIAGONAL = (_c, _v1, _v2)
"""The diagonal entries of one dimension i: C_ii, V1_ii, V2_ii."""

_cij, _cji, _v1ij, _v2ij = sp.symbols("C_ij C_ji V1_ij V2_ij", real=True)
_v1i, _v1j, _v2i, _v2j = sp.symbols("V1_i V1_j V2_i V2_j", positive=True)
PAIR = (_cij, _cji, _v1ij, _v2ij, _v1i, _v1j, _v2i, _v2j)
"""The entries of one ordered pair i != j: C_ij, C_ji, V1_ij, V2_ij and the pair's diagonal
entries V1_ii, V1_jj, V2_ii, V2_jj (written V1_i, V1_j, V2_i, V2_j)."""


@dataclass(frozen=True)
class BatchLoss:
    """A loss of the batch's moment matrices, as its per-dimension and per-pair terms.

    The loss is ``sum_i diagonal(C_ii, V1_ii, V2_ii) + sum_{i != j} pair(C_ij, C_ji, V1_ij,
    V2_ij, V1_ii, V1_jj, V2_ii, V2_jj)`` (symbols ``DIAGONAL`` and ``PAIR``); at a finite batch
    the terms are the expected batch terms, with the batch size as the parameter ``batch``.

    Attributes
    ----------
    name : str
        The loss.
    diagonal, pair : sympy.Expr
        The two terms.
    definition : str
        The loss in words and symbols.
    batch_effect : str
        How the finite batch enters (and whether that is exact); "" for the population loss.
    """

    name: str
    diagonal: sp.Expr
    pair: sp.Expr
    definition: str
    batch_effect: str = ""

    def full(self, C: sp.Matrix, V1: sp.Matrix, V2: sp.Matrix) -> sp.Expr:
        """The loss of full moment matrices: the sum of its terms over dimensions and pairs.

        Parameters
        ----------
        C, V1, V2 : sympy.Matrix
            The h x h moment matrices E[z1 z2^T], E[z1 z1^T], E[z2 z2^T].

        Returns
        -------
        sympy.Expr
            The loss.
        """
        h = C.shape[0]
        total = sum(self.diagonal.xreplace(dict(zip(DIAGONAL, (C[i, i], V1[i, i], V2[i, i])))) for i in range(h))
        for i in range(h):
            for j in range(h):
                if i != j:
                    values = (C[i, j], C[j, i], V1[i, j], V2[i, j], V1[i, i], V1[j, j], V2[i, i], V2[j, j])
                    total += self.pair.xreplace(dict(zip(PAIR, values)))
        return total


def _product_variance(var_a: sp.Expr, var_b: sp.Expr, cov_ab: sp.Expr) -> sp.Expr:
    """Var(a b) of two centred jointly Gaussian scalars, by Isserlis: E[a^2 b^2] - E[a b]^2."""
    cov = sp.Matrix([[var_a, cov_ab], [cov_ab, var_b]])
    return sp.expand(wick_moment((2, 2), cov) - cov_ab**2)


def _hinge(v: sp.Expr) -> sp.Expr:
    return sp.Max(0, sy.gamma - sp.sqrt(v + sy.eps_var))


def batch_loss(name: str, *, standardize: bool = True, finite: bool = False) -> BatchLoss:
    """The per-dimension and per-pair terms of a built-in loss of the batch's moments.

    Parameters
    ----------
    name : str
        One of ``BATCH_LOSSES``: "barlow-twins", "vicreg", "spectral-contrastive".
    standardize : bool
        Barlow Twins: standardise every embedding dimension over the batch.
    finite : bool
        The expected batch loss at batch size ``batch`` instead of the population loss.

    Returns
    -------
    BatchLoss
        Its terms, definition and how the finite batch enters.

    Raises
    ------
    ValueError
        An unknown name.
    """
    B = sy.batch
    c, v1, v2 = DIAGONAL
    cij, cji, v1ij, v2ij, v1i, v1j, v2i, v2j = PAIR
    if name == "barlow-twins" and standardize:
        rho, rho_ij = c / sp.sqrt(v1 * v2), cij / sp.sqrt(v1i * v2j)
        return BatchLoss(
            name, (1 - rho) ** 2, sy.lambda_BT * rho_ij**2,
            "sum_i (1 - C_ii)^2 + lambda_BT sum_{i != j} C_ij^2, C_ij = E[z1_i z2_j] / sqrt(E[z1_i^2] E[z2_j^2]) "
            "(every dimension standardised over the batch)",
            ("exact: every batch correlation is invariant to the scale of each embedding dimension, so on aligned "
             "weights the expected batch loss does not depend on the amplitudes at any batch size") if finite else "",
        )
    if name == "barlow-twins":
        diagonal, pair = (1 - c) ** 2, sy.lambda_BT * cij**2
        effect = ""
        if finite:
            diagonal += _product_variance(v1, v2, c) / B
            pair += sy.lambda_BT * _product_variance(v1i, v2j, cij) / B
            effect = "exact: C^ = Z1^T Z2 / B, E[C^_ij^2] = C_ij^2 + Var(z1_i z2_j) / B (Isserlis)"
        return BatchLoss(
            name, diagonal, pair,
            "sum_i (1 - C_ii)^2 + lambda_BT sum_{i != j} C_ij^2, C = E[z1 z2^T] (not standardised)", effect,
        )
    if name == "vicreg":
        diagonal = sy.lambda_inv * (v1 + v2 - 2 * c) + sy.mu_var / 2 * (_hinge(v1) + _hinge(v2))
        pair = sy.nu_cov * (v1ij**2 + v2ij**2)
        effect = ""
        if finite:
            v = sp.Symbol("v", positive=True)
            curvature = sp.diff(_hinge(v), v, 2).replace(sp.DiracDelta, lambda *args: 0)
            variance = _product_variance(v, v, v)  # Var(y_i^2) = 2 v^2
            correction = curvature * variance / (2 * (B - 1))
            diagonal += sy.mu_var / 2 * (correction.subs(v, v1) + correction.subs(v, v2))
            pair += sy.nu_cov * (_product_variance(v1i, v1j, v1ij) + _product_variance(v2i, v2j, v2ij)) / (B - 1)
            effect = (
                "covariances exact: S^ with the (B - 1) normaliser is B - 1 independent centred samples, "
                "E[S^_ij^2] = S_ij^2 + Var(y_i y_j) / (B - 1) (Isserlis); the variance hinge to O(1/B) by the delta "
                "method, f(S_ii) + f''(S_ii) Var(S^_ii) / 2 with Var(S^_ii) = 2 S_ii^2 / (B - 1), away from its "
                "switching surface"
            )
        return BatchLoss(
            name, diagonal, pair,
            "lambda_inv E||z1 - z2||^2 + mu_var/2 sum_i [relu(gamma - sqrt(V1_ii + eps_var)) + relu(gamma - "
            "sqrt(V2_ii + eps_var))] + nu_cov sum_{i != j} (V1_ij^2 + V2_ij^2)", effect,
        )
    if name == "spectral-contrastive":
        return BatchLoss(
            name, -2 * c + v1 * v2, v1ij * v2ij,
            "-2 E[<z1, z2>] + E[<z1, z2'>^2] = -2 tr C + tr(V1 V2), z2' from an independent sample",
            ("exact: the batch estimate averages over pairs of distinct samples (a U-statistic), so its expectation "
             "is the population loss") if finite else "",
        )
    raise ValueError(f"batch_loss: name={name!r} is not allowed; choose one of {', '.join(map(repr, BATCH_LOSSES))}")


def weights_of(spec_loss: str) -> tuple[sp.Symbol, ...]:
    """The loss's own weight parameters, in order."""
    if spec_loss == "barlow-twins":
        return (sy.lambda_BT,)
    if spec_loss == "vicreg":
        return (sy.lambda_inv, sy.mu_var, sy.nu_cov, sy.gamma, sy.eps_var)
    return ()


LOSS_PARAM_DOMAIN: Mapping[sp.Symbol, sp.Set] = {
    sy.lambda_BT: sp.Interval(0, sp.oo),
    sy.lambda_inv: sp.Interval(0, sp.oo),
    sy.mu_var: sp.Interval(0, sp.oo),
    sy.nu_cov: sp.Interval(0, sp.oo),
    sy.gamma: sp.Interval.open(0, sp.oo),
    sy.eps_var: sp.Interval(0, sp.oo),
    sy.batch: sp.Interval(2, sp.oo),
    sy.V1: sp.Interval(0, sp.oo),
    sy.V2: sp.Interval(0, sp.oo),
}
"""The domains of the batch losses' parameters (batch >= 2: VICReg's variances need two samples)."""
