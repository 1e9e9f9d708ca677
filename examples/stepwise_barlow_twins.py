"""Stepwise learning in Barlow Twins
==================================

Claim (Simon et al. 2023): linear Barlow Twins from a small random start learns the eigenmodes
one at a time, each in a sigmoidal step whose time is set by its data variance and its initial
scale; the cross-correlation eigenvalues plateau at 1 and the loss drops by about one per step.

Run it with::

    python examples/stepwise_barlow_twins.py

Derives the mode flow of the unstandardised Barlow Twins loss, its step time in closed form
(``step_time``), trains the real network on sampled batches from a random start of scale 1e-3
on a data spectrum of five bands of two equal variances (and 30 small ones that stay unlearned), and compares the step times of the
network, of the integrated theory and of the closed form. Saves stepwise_barlow_twins.png.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ncdyn import ModelSpec, derive, integrate, simulate_network, step_time  # noqa: E402

spec = ModelSpec("barlow-twins", standardize=False, data="spectrum")
params = {"sigma2": 0.2, "eta": 0.0, "lambda_BT": 1.0}   # lambda_BT = 1: the loss ||C - I||^2
mode = derive(spec)
print("mode flow: ds/dt =", mode.equations["s"])
step = step_time(mode)
print("half-rise time from s_0:", step.expr)

d, h = 10, 40   # ten modes that learn; the width leaves room for them (the other 30 variances 1e-3)
lam = np.concatenate([np.repeat([2.0, 1.0, 0.5, 0.25, 0.125], 2), np.full(h - d, 1e-3)])
rng = np.random.default_rng(0)
Phi0 = 1e-3 * rng.standard_normal((h, h)) / np.sqrt(h)
s0 = np.sum(Phi0**2, axis=0)                               # ||Phi0 v_j||^2, v_j the data directions
t1 = 26.0
net = simulate_network(spec, params, h=h, t1=t1, dt=0.01, batch=1024, init={"Phi": Phi0}, lam=lam,
                       record_every=10, seed=1, progress=False)
theory = integrate(derive(spec).modes(h), s0, (0.0, t1), {"eta": 0.0, "lambda": lam}, t_eval=net.t,
                   rtol=1e-10, atol=1e-14)
cross_theory = np.sort(theory.y * lam, axis=1)[:, -d:]     # C = Phi diag(lam) Phi^T on aligned modes
cross_net = net.cross_eig[:, -d:]                          # the d eigenvalues the data can raise


def rise_times(values: np.ndarray) -> np.ndarray:
    """When each sorted eigenvalue (largest first) crosses 1/2, its half-rise."""
    top_first = values[:, ::-1]
    return np.array([np.interp(0.5, top_first[:, k], net.t) if top_first[:, k].max() > 0.5 else np.nan
                     for k in range(d)])


predicted = np.sort(step({"eta": 0.0, "lambda": lam}, s_0=s0))[:d]
measured, integrated = rise_times(cross_net), rise_times(cross_theory)
print("\nstep  predicted  integrated  network  rel. error")
for k in range(d):
    print(f"{k + 1:4d}  {predicted[k]:9.3f}  {integrated[k]:10.3f}  {measured[k]:7.3f}  "
          f"{(measured[k] - predicted[k]) / predicted[k]:+10.2%}")
print("\nplateaus (network, largest first):", np.round(cross_net[-1, ::-1], 3))
loss_drop = net.batch_loss[0] - net.batch_loss[-1]
print(f"loss: {net.batch_loss[0]:.3f} -> {net.batch_loss[-1]:.3f} (drop {loss_drop:.2f} over {d} modes; the {h - d} directions the data cannot reach stay at 1 each)")

fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
ax1.plot(net.t, cross_net, color="C0", lw=1.5)
ax1.plot(net.t, cross_theory, color="k", ls="--", lw=1)
for t in predicted:
    ax1.axvline(t, color="C3", lw=0.6, alpha=0.6)
ax1.set_ylabel("eigenvalues of C")
ax1.set_title("network (blue), theory (dashed), closed-form step times (red)")
ax2.plot(net.t, net.batch_loss, color="C0", label="network (batch loss)")
ax2.plot(net.t, np.sum((1 - cross_theory) ** 2, axis=1) + h - d, color="k", ls="--", label="theory")
ax2.set_xlabel("t")
ax2.set_ylabel("loss")
ax2.legend()
fig.tight_layout()
fig.savefig("stepwise_barlow_twins.png", dpi=120)
print("saved stepwise_barlow_twins.png")
