"""The cosine mode is sixth-order, the Euclidean one cubic
=======================================================

Claim: the cosine (feature-normalized) SimSiam mode is sixth-order; the Euclidean one is cubic.

Run it with::

    python examples/derive_and_check.py

Derives both systems, prints their reduced flows on s = p**2/alpha_p, and evaluates Tian's
threshold: non-collapsed Euclidean equilibria exist iff eta <= 1/(4c).
"""

import sympy as sp

from ncdyn import ModelSpec, derive, display_form
from ncdyn import symbols as sy

for loss in ("euclidean", "cosine"):
    reduced = derive(ModelSpec(loss=loss, target="simsiam")).reduce()
    print(f"{loss:>9}: dp/dt = {display_form(reduced.rhs[0])}   (order {reduced.order})")

cubic = derive(ModelSpec("euclidean")).reduce().rhs[0].subs(sy.alpha_p, 1)
eta_star = sp.solve(sp.discriminant(sp.cancel(cubic / sy.p), sy.p), sy.eta)[0]
print(f"Euclidean threshold: eta* = {sp.simplify(eta_star)} = {float(eta_star.subs(sy.sigma2, 0.2)):.4f} at sigma2 = 0.2")
