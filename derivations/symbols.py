"""The public SymPy symbols every derived system is written in.

They carry no assumptions, so ``sympy.Symbol("p")`` typed by a user is the same symbol as
``derivations.symbols.p``. Derivations use positive internal copies where a square root must
simplify and swap them back before returning.
"""

from __future__ import annotations

import sympy as sp

__all__ = [
    "p", "s", "tau", "sigma2", "eta", "alpha_p", "beta", "alpha", "eps", "s_max", "lam",
    "N_psi", "N_phi", "T", "A", "B", "C", "lr", "by_name", "c",
    "lambda_BT", "lambda_inv", "mu_var", "nu_cov", "gamma", "eps_var", "batch", "V1", "V2",
]

p, s, tau = sp.symbols("p s tau")
sigma2, eta, alpha_p, beta = sp.symbols("sigma2 eta alpha_p beta")
alpha, eps, s_max = sp.symbols("alpha eps s_max")
"""DirectPred: predictor eigenvalue w = (s / s_max)**alpha + eps (s_max and eps as options)."""
lam = sp.Symbol("lambda")
"""The data variance of a mode (ModelSpec data="spectrum"); its name is "lambda"."""
lr = sp.Symbol("lr")
"""The learning rate of a discrete-time system (``EigenmodeSystem.discrete``)."""
N_psi, N_phi, T = sp.symbols("N_psi N_phi T")
lambda_BT = sp.Symbol("lambda_BT")
"""Barlow Twins: the weight of the off-diagonal cross-correlations."""
lambda_inv, mu_var, nu_cov, gamma, eps_var = sp.symbols("lambda_inv mu_var nu_cov gamma eps_var")
"""VICReg: the weights of invariance, variance and covariance, the variance threshold gamma
and the constant eps_var under the square root of the variance."""
batch = sp.Symbol("batch")
"""The batch size B of a loss of the batch's moments (ModelSpec batch="finite")."""
V1, V2 = sp.symbols("V1 V2")
"""Spectral sums of the batch losses: V1 = E||z1||^2 = sum_k V1_kk, V2 = E||z2||^2."""

from ._losses import A, B, C  # noqa: E402  (A = <a,a>, B = <a,b>, C = <b,b>: losses are written in them)

c = 1 + sigma2
"""c = 1 + sigma2, the view covariance E[x1 x1^T] = c I (an expression, not a parameter)."""

_ALL = (p, s, tau, sigma2, eta, alpha_p, beta, alpha, eps, s_max, lam, lr, N_psi, N_phi, T, A, B, C,
        lambda_BT, lambda_inv, mu_var, nu_cov, gamma, eps_var, batch, V1, V2)
by_name: dict[str, sp.Symbol] = {str(x): x for x in _ALL}
"""Every public symbol keyed by its name."""
