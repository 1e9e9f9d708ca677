"""Where the exact flow's direction settles: the direction flow at K = 3
========================================================================

Claim: the cosine loss is scale invariant, so with weight decay the exact finite-width flow
splits into its scale (||p||^2 e^(2 eta t) conserved) and its direction u = p/||p||, which obeys
an autonomous flow in the time tau = int ||p||^-2 dt: the weight decay drops out, so nothing can
emerge as the scale shrinks. Its one stable equilibrium is the isotropic direction; every other
one has a collapsed mode and is semi-stable or worse; a long run of the full flow ends there.

Run it with::

    python examples/direction_flow.py

It prints the direction flow's equilibria at K = 3 with their types on the sphere, the full
flow's direction after a long run, and the branches of the K = 2 direction flow with a data
spectrum (1, 0.3) over the view noise; it draws the K = 3 portrait in the chart of the sphere
seen along (1, 1, 1), and the branches, into ``direction_flow.png``.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ncdyn import ModelSpec, bifurcation, derive, direction_flow, equilibria, integrate  # noqa: E402

params = {"sigma2": 0.2, "alpha_p": 1.0}

modes = derive(ModelSpec("cosine", norms="exact")).modes(3)
flow = direction_flow(modes)
eqs = equilibria(flow, params)
print(f"direction flow of the exact K = 3 flow ({eqs.method})")
for e in eqs:
    if np.all(e.x >= 0):
        print(f"  u = {np.round(e.x, 6)}  {e.kind:<28} eigenvalues on the sphere {np.round(e.eigenvalues.real, 4)}")

p0 = np.array([0.9, 0.5, 0.2])
run = integrate(modes, modes.pack(p=p0, s=p0**2), (0, 12.0), {**params, "eta": 0.3}, t_eval=[12.0], progress=False)
u, rho = flow.split(run.y[-1])
print(f"full exact flow, eta = 0.3, from p = {p0}: at t = 12 the direction is {np.round(u, 6)}, "
      f"||p|| e^(eta t) = {rho[()] * np.exp(0.3 * 12):.6f} (start {np.linalg.norm(p0):.6f})")

# the portrait: orbits of the direction flow on the positive octant, seen along (1, 1, 1)
chart = np.array([[1, -1, 0], [1, 1, -2]]) / np.array([[np.sqrt(2)], [np.sqrt(6)]])
fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.4))
theta = np.linspace(0, np.pi / 2, 60)
for corner in np.eye(3):  # the octant's edges: one mode collapsed
    other = np.eye(3)[np.argmax(corner) - 1]
    edge = np.cos(theta)[:, None] * corner + np.sin(theta)[:, None] * other
    ax.plot(*(chart @ edge.T), color="0.6", lw=0.8)
rng = np.random.default_rng(0)
starts = np.abs(rng.normal(size=(24, 3)))
starts /= np.linalg.norm(starts, axis=1, keepdims=True)
tau = np.linspace(0, 8, 81)
orbits = integrate(flow, starts, (0, tau[-1]), params, t_eval=tau, progress=False)
for path in orbits.y:
    xy = chart @ path.T
    ax.plot(*xy, color="tab:blue", lw=0.8)
    ax.annotate("", xy=xy[:, 12], xytext=xy[:, 10], arrowprops={"arrowstyle": "->", "color": "tab:blue"})
style = {"stable node": ("o", "tab:green"), "semi-stable": ("s", "tab:orange")}
for e in eqs:
    if np.all(e.x >= 0):
        marker, color = style.get(e.kind, ("x", "tab:red"))
        ax.plot(*(chart @ e.x), marker, color=color, ms=8, label=e.kind)
handles, labels = ax.get_legend_handles_labels()
ax.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), fontsize=7, loc="upper center",
          bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
ax.margins(0.08)
ax.set_aspect("equal")
ax.set_title("direction flow of the exact K = 3 flow\n(p/||p|| on the positive octant, seen along (1, 1, 1))", fontsize=9)
ax.set_xticks([])
ax.set_yticks([])

spread = direction_flow(derive(ModelSpec("cosine", norms="exact", data="spectrum")).modes(2))
noise = np.linspace(0.05, 3.0, 12)
diagram = bifurcation(spread, ("sigma2", noise), {"alpha_p": 1.0, "lambda": np.array([1.0, 0.3])})
print(f"K = 2, data spectrum (1, 0.3), sigma2 in [0.05, 3]: {len(diagram.points)} bifurcation points")
for br in diagram.branches:
    if np.all(br.x >= 0):
        angle = np.degrees(np.arctan2(br.x[:, 1], br.x[:, 0]))
        kind = "stable" if br.stable.all() else "not stable"
        print(f"  branch at angle {angle[0]:.2f} -> {angle[-1]:.2f} degrees ({kind})")
        bx.plot(br.values, angle, color="tab:green" if br.stable.all() else "tab:orange",
                ls="-" if br.stable.all() else "--", lw=2, label=kind)
handles, labels = bx.get_legend_handles_labels()
bx.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), fontsize=7)
bx.set_xlabel(r"view noise $\sigma^2$")
bx.set_ylabel(r"direction angle $\arctan(p_2/p_1)$ (degrees)")
bx.set_title("K = 2, data spectrum (1, 0.3): no bifurcation", fontsize=9)
fig.tight_layout()
fig.savefig("direction_flow.png", dpi=120)
