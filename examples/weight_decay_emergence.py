"""A stable equilibrium emerges as weight decay shrinks the norms
==============================================================

Claim: with the cosine loss, a stable non-collapsed equilibrium emerges as weight decay shrinks
the norms, even for weight decay above the Euclidean threshold.

Run it with::

    python examples/weight_decay_emergence.py

The true cosine loss is scale invariant, so the network shrinks uniformly (lambda = e^{-eta t}):
N_psi ~ lambda^2, N_phi ~ lambda, T ~ lambda^3. The mode then sees an effective weight decay
eta lambda^2, and once it falls below the fold a stable equilibrium exists.
"""

import numpy as np

from ncdyn import ModelSpec, default_spectrum, derive, shrinking_norms

h, eta, c = 32, 0.3, 1.2
spectrum = default_spectrum(h)
p, s = spectrum["p"], spectrum["s"]
params = {"sigma2": c - 1, "eta": eta, "alpha_p": 1.0,
          "N_psi": float(np.sqrt(c * np.sum(p**2 * s))), "N_phi": float(np.sqrt(c * np.sum(s))), "T": float(np.sum(p * s))}
path = shrinking_norms(derive(ModelSpec("cosine", "simsiam")), np.linspace(0, 10, 101), params)
for t, code, ps in zip(path.t[::10], path.codes[::10], path.p_stable[::10]):
    stable = f"stable p*/lambda = {ps:.3f}" if np.isfinite(ps) else "no stable non-collapsed equilibrium"
    print(f"t = {t:5.1f}  lambda = {np.exp(-eta * t):.3f}  {path.names[code]:<14}  {stable}")
print(f"\na stable non-collapsed equilibrium emerges at t* = {path.t_emerge:.4f}")
