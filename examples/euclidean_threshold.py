"""The Euclidean weight-decay threshold
====================================

Claim: with the Euclidean loss, weight decay above 1/(4c) leaves only the collapsed equilibrium.

Run it with::

    python examples/euclidean_threshold.py

Derives the threshold from the model, lists the classified equilibria on both sides of it,
and saves the bifurcation diagram to euclidean_threshold.png.
"""

import numpy as np

from ncdyn import ModelSpec, bifurcation, derive, equilibria, plot_bifurcation, threshold

system = derive(ModelSpec("euclidean", "simsiam"))
eta_star = threshold(system, "eta").fold_solutions[0]
print(f"threshold eta* = {eta_star} = {float(eta_star.subs('sigma2', 0.2)):.4f} at sigma2 = 0.2")
for eta in (0.05, 0.3):
    print(f"\neta = {eta}:")
    print(equilibria(system, {"sigma2": 0.2, "eta": eta, "alpha_p": 1.0}))
b = bifurcation(system, ("eta", np.linspace(0, 0.4, 21)), {"sigma2": 0.2, "alpha_p": 1.0})
print("\nbifurcation points:", [(pt.kind, round(pt.value, 6)) for pt in b.points])
fig, ax = plot_bifurcation(b)
fig.savefig("euclidean_threshold.png", dpi=120)
print("saved euclidean_threshold.png")
