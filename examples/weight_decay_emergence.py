"""A stable equilibrium emerges in the frozen-norm model as weight decay shrinks the norms
=========================================================================================

Claim (Bao): with the cosine loss, a stable non-collapsed equilibrium emerges as weight decay
shrinks the norms, even for weight decay above the Euclidean threshold. This is a property of
the frozen-norm approximation; the exact finite-width flow shows no regime change.

Run it with::

    python examples/weight_decay_emergence.py

The true cosine loss is scale invariant, so the network shrinks uniformly (lambda = e^{-eta t}):
N_psi ~ lambda^2, N_phi ~ lambda, T ~ lambda^3. The frozen-norm mode, with its norms shrunk by
hand, then sees an effective weight decay eta lambda^2, and once it falls below the fold a stable
equilibrium exists. The exact flow (``norms="exact"``) from the same start conserves
||p||^2 e^{2 eta t}, and its direction p/||p|| moves smoothly to the isotropic one: its
min/max only rises, whatever the scale.
"""

import numpy as np

from ncdyn import ModelSpec, default_spectrum, derive, integrate, shrinking_norms

h, eta, c = 32, 0.3, 1.2
spectrum = default_spectrum(h)
p, s = spectrum["p"], spectrum["s"]
params = {"sigma2": c - 1, "eta": eta, "alpha_p": 1.0,
          "N_psi": float(np.sqrt(c * np.sum(p**2 * s))), "N_phi": float(np.sqrt(c * np.sum(s))), "T": float(np.sum(p * s))}
t = np.linspace(0, 10, 101)
path = shrinking_norms(derive(ModelSpec("cosine", "simsiam")), t, params)
exact = derive(ModelSpec("cosine", "simsiam", norms="exact")).modes(h)
sol = integrate(exact, exact.pack(p=p, s=s), (0, 10), {"sigma2": c - 1, "eta": eta, "alpha_p": 1.0}, t_eval=t,
                backend="scipy", progress=False)
pe = exact.unpack(sol.y)["p"]
print("                         frozen-norm model                         exact flow")
for i in range(0, len(t), 10):
    stable = f"stable p*/lambda = {path.p_stable[i]:.3f}" if np.isfinite(path.p_stable[i]) else "no stable non-collapsed eq."
    print(f"t = {t[i]:5.1f}  lambda = {np.exp(-eta * t[i]):.3f}  {path.names[path.codes[i]]:<14}  {stable:<28}  "
          f"min/max p = {pe[i].min() / pe[i].max():.4f}")
print(f"\nfrozen-norm model: a stable non-collapsed equilibrium emerges at t* = {path.t_emerge:.4f}")
print(f"exact flow: ||p||^2 e^(2 eta t) from {np.sum(p**2):.6f} to {np.sum(pe[-1]**2) * np.exp(2 * eta * t[-1]):.6f}; "
      f"p_j/lambda at t = 10 in [{pe[-1].min() * np.exp(eta * 10):.4f}, {pe[-1].max() * np.exp(eta * 10):.4f}], "
      f"isotropic value {np.linalg.norm(p) / np.sqrt(h):.4f}")
