"""``ncdyn reproduce``: the paper's claims, each as figures and numbers in DIR/report.md.

1. Euclidean: weight decay above 1/(4c) leaves only the collapsed equilibrium; below it a stable
   non-collapsed one exists, with its basin.
2. Cosine: the mode is sixth-order; under the same strong weight decay the network's norms
   shrink, the effective weight decay eta lambda^2 falls and a stable non-collapsed equilibrium
   emerges: on the eigenmode system and on the real network.
3. The regimes of the cosine mode as a function of the norm scale and eta, and where
   trajectories go in the bistable regime.
4. Theory against the real linear network at several widths, for each approximation and the exact
   finite-width flow, with the network's own floor: where each approximation is trustworthy.
5. Real data: a linear SimSiam network trained on scikit-learn's digits against the eigenmode
   theory with the data's own spectrum; dimensional collapse below lambda*.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from derivations import ModelSpec, derive

from .._basins import basins
from .._bifurcation import bifurcation
from .._equilibria import equilibria
from .._integrate import integrate
from .._plots import (
    plot_basins,
    plot_bifurcation,
    plot_flow_1d,
    plot_regimes,
    portrait,
)
from .._roots import SCALE, regimes, shrinking_norms
from .._threshold import threshold
from .._value import Value
from ._compare import EXACT_LABEL, MAX_EXACT_WIDTH, compare
from ._network import default_spectrum, simulate_network, spectral_norms
from ._plots import plot_spectra
from ._realdata import digits_data, digits_experiment, plot_real_data

__all__ = ["reproduce", "FIGURES", "Claim", "euclidean_threshold", "cosine_emergence", "cosine_regimes", "theory_vs_network",
           "real_data"]

SIGMA2 = 0.2
C = 1 + SIGMA2
ETA_WEAK, ETA_STRONG = 0.05, 0.3

FIGURES = (
    "1a_euclidean_flow.png",
    "1b_euclidean_bifurcation.png",
    "1c_euclidean_portrait_basins.png",
    "2a_cosine_sextic.png",
    "2b_cosine_emergence.png",
    "2c_cosine_network.png",
    "3a_cosine_regimes_portrait.png",
    "3b_cosine_basins.png",
    "4_theory_vs_network.png",
    "5_real_data_digits.png",
)


def _figure(ncols=1, width=5.5, height=4.3):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _save(fig, out: Path, name: str) -> str:
    tmp = out / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, out / name)  # a rerun into the same directory replaces files whole
    return name


def _pct(x: float) -> str:
    return f"{100 * x:.2g}%" if np.isfinite(x) else "n/a"


def _trust_note(cmp) -> list[str]:
    """Where each approximation is trustworthy: its predictor error against the width, and the
    widths at which it is within the network's own floor (``Comparison.within_floor``)."""
    fw = [w for w in cmp.widths if w in cmp.floor]
    inside = cmp.within_floor() if fw else {}
    lines = [
        ("Where each approximation is trustworthy (max relative error of p against the width; the network's own "
         "floor is twice the distance between the network and a run with another seed and half the step: the "
         "Richardson estimate of its O(dt) Euler error plus its sampling noise):"),
        "",
        "- network floor: " + (", ".join(f"h = {w}: {_pct(cmp.floor[w]['p'])}" for w in fw) if fw else "not measured (quick run)")
        + ".",
    ]
    for label in cmp.errors[cmp.widths[0]]:
        errs = [(w, cmp.errors[w][label]) for w in cmp.widths]
        ran = [(w, e) for w, e in errs if "p" in e]
        text = ", ".join(f"h = {w}: {_pct(e['p'])}" + ("" if e["status"] == "finished" else f" ({e['status']})")
                         for w, e in ran)
        skipped = [w for w, e in errs if "p" not in e]
        if skipped:
            why = dict(errs)[skipped[0]]["status"].removeprefix("skipped ")
            text += f"; not run at h = {', '.join(map(str, skipped))} {why}"
        ok = inside.get(label, ())
        below = [w for w, e in ran if e["status"] == "finished" and e["p"] < 0.01]
        parts = []
        if fw:
            parts.append(f"within the network's floor at h = {', '.join(map(str, ok))}" if ok else
                         "within the network's floor at no width")
        parts.append(f"below 1% at h = {', '.join(map(str, below))}" if below else "below 1% at no width")
        verdict = "; ".join(parts)
        verdict = verdict[0].upper() + verdict[1:]
        lines.append(f"- {label}: {text}. {verdict}.")
    lines += ["", ("The exact finite-width flow is the expected gradient flow of the network's true loss for "
                   "Gaussian views, so what remains of its error is the network's own: trust it at any width it can "
                   "be run (on Gaussian views; not on real data, see the digits section), and each "
                   "approximation where its error above is within the floor (or within the accuracy needed).")]
    return lines


@dataclass(frozen=True, eq=False)
class Claim(Value):
    """One claim of ``reproduce``: the figures it wrote, its numbers and its report section.

    key:     the key of its numbers in ``reproduce``'s return value.
    figures: file names written into the output directory.
    numbers: the numbers the claim rests on (what ``reproduce`` returns under ``key``).
    section: the lines of its report.md section.
    context: values a later claim builds on (e.g. the cosine network's norms); not reported.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.
    """

    key: str
    figures: tuple[str, ...]
    numbers: dict
    section: tuple[str, ...]
    context: dict = field(default_factory=dict, repr=False)


def euclidean_threshold(out: Path, quick: bool) -> Claim:
    """Claim 1: with the Euclidean loss, weight decay above eta* = 1/(4c) leaves only the
    collapsed equilibrium; below it a stable non-collapsed one exists, with its basin.
    Figures: the reduced cubic, the bifurcation diagram, the portrait and the basins."""
    euclid = derive(ModelSpec("euclidean", "simsiam"))
    th = threshold(euclid, "eta")
    eta_star = float(th.fold_solutions[0].subs("sigma2", SIGMA2))
    base = {"sigma2": SIGMA2, "alpha_p": 1.0}
    eq_weak = equilibria(euclid, {**base, "eta": ETA_WEAK})
    eq_strong = equilibria(euclid, {**base, "eta": ETA_STRONG})
    fig, (ax,) = _figure()
    # just below eta* the fold's two equilibria are both real (at eta* in floating point the
    # double root may round either way)
    plot_flow_1d(euclid, {**base, "eta": ETA_WEAK}, vary=("eta", [0.0, ETA_WEAK, 0.15, eta_star * (1 - 1e-9), ETA_STRONG]),
                 xlim=(-0.2, 1.2), ax=ax)
    _save(fig, out, FIGURES[0])
    fig, (ax,) = _figure()
    plot_bifurcation(bifurcation(euclid, ("eta", np.linspace(0, 0.4, 9 if quick else 21)), base,
                                 n_dense=200 if quick else 600), ax=ax)
    _save(fig, out, FIGURES[1])
    n = 20 if quick else 60
    bas = basins(euclid, {"p": np.linspace(-0.3, 1.2, n), "s": np.linspace(0, 0.12, n)}, {**base, "eta": ETA_WEAK},
                 t1=100 if quick else 300)
    bas_strong = basins(euclid, {"p": np.linspace(-0.3, 1.2, n), "s": np.linspace(0, 1.2, n)}, {**base, "eta": ETA_STRONG},
                        t1=100 if quick else 300)
    fig, axes = _figure(2)
    portrait(euclid, {**base, "eta": ETA_WEAK}, ax=axes[0], xlim=(-0.2, 1.2), ylim=(0, 1.0))
    plot_basins(bas, ax=axes[1])
    _save(fig, out, FIGURES[2])
    numbers = {
        "threshold": eta_star,
        "equilibria_weak": [(e.point, e.kind) for e in eq_weak],
        "equilibria_strong": [(e.point, e.kind) for e in eq_strong],
        "collapse_probability_weak": bas.collapse_probability,
        "collapse_probability_strong": bas_strong.collapse_probability,
    }
    section = [
        "## 1. Euclidean loss: a weight-decay threshold",
        "",
        f"Derived threshold (fold of the reduced cubic, discriminant in eta): eta* = {th.fold_solutions[0]} "
        f"= **{eta_star:.4f}** at sigma2 = {SIGMA2}.",
        "",
        f"- eta = {ETA_WEAK} (below): {len(eq_weak)} equilibria: "
        + "; ".join(f"p = {e.point['p']:.4f} ({e.kind})" for e in eq_weak) + ".",
        f"- eta = {ETA_STRONG} (above): {len(eq_strong)} equilibrium: "
        + "; ".join(f"p = {e.point['p']:.4f} ({e.kind})" for e in eq_strong) + ".",
        f"- Collapse probability over the grid of initial states: {bas.collapse_probability:.3f} at eta = {ETA_WEAK} "
        f"(p in [-0.3, 1.2], s in [0, 0.12]), {bas_strong.collapse_probability:.3f} at eta = {ETA_STRONG}.",
        "",
        f"![flow]({FIGURES[0]}) ![bifurcation]({FIGURES[1]})",
        "",
        f"![portrait and basins]({FIGURES[2]})",
        "",
    ]
    return Claim("euclidean", FIGURES[0:3], numbers, tuple(section))


def cosine_emergence(out: Path, quick: bool) -> Claim:
    """Claim 2: the cosine mode is sixth-order; under strong weight decay the network's norms
    shrink, the effective weight decay eta lambda^2 falls and a stable non-collapsed
    equilibrium emerges, on the eigenmode system and on the real network. Figures: the sextic,
    the regime along the shrinking norms, the network against the eigenmode prediction."""
    base = {"sigma2": SIGMA2, "alpha_p": 1.0}
    cosine = derive(ModelSpec("cosine", "simsiam"))
    h = 16 if quick else 32
    init = default_spectrum(h, alpha_p=1.0, seed=0)
    norms0 = spectral_norms(init, SIGMA2)
    cparams = {**base, "eta": ETA_STRONG, **norms0}
    reduced = cosine.reduce()
    fold, etas = _sextic_figure(out, cosine, reduced, {**base, **norms0}, cparams)
    t1 = 2.0 if quick else 10.0
    path = shrinking_norms(cosine, np.linspace(0, t1, 41 if quick else 201), cparams)
    eq0 = equilibria(reduced, cparams)
    _emergence_figure(out, path)
    net_t1 = 1.0 if quick else 6.0
    net, scaled, spread = _cosine_network(out, base, h, init, net_t1, quick)
    numbers = {
        "order": reduced.order,
        "norms_t0": norms0,
        "equilibria_t0": [(e.point["p"], e.kind) for e in eq0],
        "t_emerge": path.t_emerge,
        "network_scaled_norm": (float(scaled[0]), float(scaled[-1])),
        "network_spread": (float(spread[0]), float(spread[-1])),
        "network_psi_norm2": (float(net.psi_norm2[0]), float(net.psi_norm2[-1])),
        "network_misalignment": float(net.misalignment[-1]),
    }
    emerge = (f"emerges at **t\\* = {path.t_emerge:.3f}** (λ = {np.exp(-ETA_STRONG * path.t_emerge):.3f})"
              if path.t_emerge is not None else f"has not emerged yet within t <= {t1:g} (it emerges later)")
    section = [
        "## 2. Cosine loss: sixth order, and a stable equilibrium emerges as the norms shrink",
        "",
        f"Derived reduced mode on s = p²/α_p: polynomial of **degree {reduced.order}** in p.",
        f"Network start (h = {h}, aligned): N_psi = {norms0['N_psi']:.3f}, N_phi = {norms0['N_phi']:.3f}, "
        f"T = {norms0['T']:.3f}. At t = 0 with eta = {ETA_STRONG} the mode's equilibria are "
        + "; ".join(f"p = {p:.4f} ({k})" for p, k in numbers["equilibria_t0"]) + ": collapse only.",
        "",
        "The true cosine loss is scale invariant, so weight decay shrinks the whole network: "
        "λ = e^{-ηt}, N_psi ∝ λ², N_phi ∝ λ, T ∝ λ³. In p/λ the mode's equilibria are those of an "
        "effective weight decay ηλ², which falls below the fold: a stable non-collapsed "
        f"equilibrium {emerge}.",
        "",
        "Figure 2a draws the reduced mode at the network's initial norms for eta = "
        + ", ".join(f"{e:.4g}" for e in etas)
        + (f": the non-collapsed pair of equilibria exists below the fold at eta = {fold[0]:.4g} and is gone at "
           f"the strong eta = {ETA_STRONG}." if fold else "."),
        "",
        f"The real network (true cosine loss, jax.grad, batch {1024 if quick else 4096}, dt = 0.01) over t = {net_t1:g}: "
        f"||Ψ||² e^(2ηt) = {scaled[0]:.3f} → {scaled[-1]:.3f} (conserved up to O(dt)) while ||Ψ||² itself falls "
        f"{net.psi_norm2[0]:.3f} → {net.psi_norm2[-1]:.3f}; the predictor spectrum's min/max ratio "
        f"goes {spread[0]:.3f} → {spread[-1]:.3f}: eigenvalues shrink with the scale while their spread narrows, "
        "so the direction does not collapse. Collapse must be judged on p/||Ψ||, not on p.",
        "",
        f"![sextic]({FIGURES[3]}) ![emergence]({FIGURES[4]})",
        "",
        f"![network]({FIGURES[5]})",
        "",
    ]
    context = {"system": cosine, "params": cparams, "norms0": norms0, "path": path, "t1": t1}
    return Claim("cosine", FIGURES[3:6], numbers, tuple(section), context)


def _sextic_figure(out: Path, cosine, reduced, fold_params: dict, cparams: dict) -> tuple[list, list]:
    """Figure 2a: the reduced cosine mode for weight decays below, at and above its fold.
    Returns the folds in eta and the weight decays drawn."""
    fold = [pt.value for pt in bifurcation(reduced, ("eta", np.linspace(0, 0.1, 21)), fold_params).points
            if pt.kind == "fold"]
    etas = [0.0, 0.5 * fold[0], fold[0] * (1 - 1e-6), ETA_STRONG] if fold else [0.0, 0.01, ETA_STRONG]
    fig, (ax,) = _figure()
    plot_flow_1d(cosine, cparams, vary=("eta", etas), xlim=(-0.1, 0.8), ax=ax)
    _save(fig, out, FIGURES[3])
    return fold, etas


def _emergence_figure(out: Path, path) -> None:
    """Figure 2b: the regime along the shrinking norms, and the stable non-collapsed p*/lambda
    against the scale lambda."""
    fig, axes = _figure(2)
    ax = axes[0]
    ax.step(path.t, path.codes, where="post", color="k")
    ax.set_yticks(range(len(path.names)), path.names, fontsize=7)
    ax.set_xlabel(r"$t$")
    ax.set_ylabel("regime")
    ax.set_title(rf"regime of the cosine mode, $\eta = {ETA_STRONG}$", fontsize=9)
    if path.t_emerge is not None:
        ax.axvline(path.t_emerge, color="tab:green", ls="--", label=f"emergence t* = {path.t_emerge:.3f}")
        ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(path.t, path.p_stable, color="tab:green", lw=2, label=r"stable non-collapsed $p^*/\lambda$")
    ax.plot(path.t, path.scale, color="0.4", ls=":", label=r"scale $\lambda = e^{-\eta t}$")
    ax.set_xlabel(r"$t$")
    ax.set_ylabel(r"$p^*/\lambda$ and $\lambda$")
    ax.legend(fontsize=7)
    _save(fig, out, FIGURES[4])


def _cosine_network(out: Path, base: dict, h: int, init: dict, net_t1: float, quick: bool):
    """The real network with the true cosine loss under strong weight decay, against the
    leading-order self-consistent modes (figure 2c). Returns the run, ||Psi||^2 e^(2 eta t)
    and the predictor spectrum's max/min ratio over time."""
    net = simulate_network(ModelSpec("cosine", "simsiam"), {**base, "eta": ETA_STRONG}, h=h, t1=net_t1,
                           dt=0.01, batch=1024 if quick else 4096, init=init, n_records=11 if quick else 61,
                           progress=False)
    modes = derive(ModelSpec("cosine", "simsiam", "self-consistent", "leading")).modes(h)
    ode = integrate(modes, modes.pack(p=init["p"], s=init["s"]), (0, net_t1), {**base, "eta": ETA_STRONG}, t_eval=net.t)
    pred = {"leading, self-consistent norms (ODE)": modes.unpack(ode.y)}
    scaled = net.psi_norm2 * np.exp(2 * ETA_STRONG * net.t)
    spread = net.p_eig[:, -1] / net.p_eig[:, 0]
    fig, axes = _figure(3, width=4.6)
    axes[0].plot(net.t, scaled, color="k", lw=2, label=r"$\|\Psi\|_F^2 e^{2\eta t}$ (network)")
    axes[0].plot(net.t, net.psi_norm2, color="tab:red", lw=1.5, label=r"$\|\Psi\|_F^2$ (network)")
    axes[0].set_xlabel(r"$t$")
    axes[0].set_ylabel(r"$\|\Psi\|_F^2$")
    axes[0].legend(fontsize=7)
    axes[0].set_title("scale invariance of the true loss", fontsize=9)
    plot_spectra(net, pred, ax=axes[1], legend=False)
    axes[1].set_title(r"eigenvalues $p_j$: absolute", fontsize=9)
    plot_spectra(net, pred, scale_free=True, ax=axes[2])
    axes[2].set_title(r"$p_j/\|\Psi\|_F$: the direction does not collapse", fontsize=9)
    _save(fig, out, FIGURES[5])
    return net, scaled, spread


def cosine_regimes(out: Path, quick: bool, cosine: Claim) -> Claim:
    """Claim 3: the regimes of the cosine mode over the norm scale and eta (the weight-decay
    path moves into the bistable regime), and where trajectories go there. Builds on claim 2's
    network norms and emergence time. Figures: the regime map with a portrait, the basins."""
    base = {"sigma2": SIGMA2, "alpha_p": 1.0}
    system, cparams, norms0 = cosine.context["system"], cosine.context["params"], cosine.context["norms0"]
    path, t1 = cosine.context["path"], cosine.context["t1"]
    n = 40 if quick else 160
    lam = np.linspace(0.05, 1.0, n)
    etas = np.linspace(0.002, 0.4, n)
    reg = regimes(system, (SCALE, lam), ("eta", etas), {k: v for k, v in cparams.items() if k != "eta"})
    lam_path = np.exp(-ETA_STRONG * np.linspace(0, t1, 50))
    bistable_lam = 0.5 * np.exp(-ETA_STRONG * path.t_emerge) if path.t_emerge is not None else 0.3
    bparams = {**base, "eta": ETA_STRONG, "N_psi": norms0["N_psi"] * bistable_lam**2,
               "N_phi": norms0["N_phi"] * bistable_lam, "T": norms0["T"] * bistable_lam**3}
    beqs = equilibria(system, bparams)
    pmax = max(e.point["p"] for e in beqs) if len(beqs) else 1.0
    fig, axes = _figure(2)
    plot_regimes(reg, ax=axes[0], path=(lam_path, np.full_like(lam_path, ETA_STRONG)),
                 path_label=rf"weight-decay path, $\eta = {ETA_STRONG}$")
    axes[0].set_xlabel(r"norm scale $\lambda$ ($N_\psi \propto \lambda^2$, $N_\phi \propto \lambda$, $T \propto \lambda^3$)")
    axes[0].set_title("regimes of the cosine mode", fontsize=9)
    portrait(system, bparams, ax=axes[1], xlim=(-0.1 * pmax, 1.3 * pmax), ylim=(0, 1.3 * pmax**2), trajectories=5)
    axes[1].set_title(f"cosine mode at λ = {bistable_lam:.3f} (bistable)", fontsize=9)
    _save(fig, out, FIGURES[6])
    nb = 20 if quick else 50
    bas_c = basins(system, {"p": np.linspace(-0.1 * pmax, 1.3 * pmax, nb), "s": np.linspace(0, 1.3 * pmax**2, nb)},
                   bparams, t1=200 if quick else 2000)
    fig, (ax,) = _figure()
    plot_basins(bas_c, ax=ax)
    _save(fig, out, FIGURES[7])
    numbers = {"fractions": reg.fractions(), "bistable_scale": bistable_lam,
               "collapse_probability_bistable": bas_c.collapse_probability,
               "fold_condition": str(threshold(system, "eta").fold)[:200] + "..."}
    section = [
        "## 3. Regimes of the cosine mode and where trajectories go",
        "",
        "Regime of the reduced mode over the norm scale λ and eta (norms at t = 0 from the network "
        "above). The boundary is the fold ηλ² = η_fold, with η_fold the root of the derived "
        "discriminant condition. The weight-decay path (arrow) moves left into the bistable "
        "regime. Fractions of the map: "
        + ", ".join(f"{k}: {v:.2f}" for k, v in reg.fractions().items() if v > 0) + ".",
        "",
        f"At λ = {bistable_lam:.3f} the cosine mode has {len(beqs)} equilibria in s >= 0: "
        + "; ".join(f"(p, s) = ({e.point['p']:.4f}, {e.point['s']:.4f}) {e.kind}" for e in beqs)
        + f". Collapse probability over the shown grid: {bas_c.collapse_probability:.3f}.",
        "",
        f"![regimes]({FIGURES[6]}) ![basins]({FIGURES[7]})",
        "",
    ]
    return Claim("regimes", FIGURES[6:8], numbers, tuple(section))


def theory_vs_network(out: Path, quick: bool) -> Claim:
    """Claim 4: each eigenmode approximation, and the exact finite-width flow, against the real
    linear network at several widths (errors, the best per width, the network's own floor,
    where each approximation is trustworthy). Figure: spectra and errors against the width."""
    base = {"sigma2": SIGMA2, "alpha_p": 1.0}
    widths = (8, 16) if quick else (4, 16, 64, 256)
    # the exact flow's cost grows with the width (~7 s at h = 64, ~14 s at 256 on two cores):
    # it runs, and the network's floor is measured, up to the same width
    exact_max = 8 if quick else MAX_EXACT_WIDTH
    cmp_t1 = 0.5 if quick else 3.0
    cos_cmp = compare(ModelSpec("cosine"), {**base, "eta": ETA_STRONG}, widths=widths, t1=cmp_t1,
                      batch=1024 if quick else 4096, n_records=11 if quick else 31, max_exact_width=exact_max,
                      floor_seed=None if quick else 1, floor_widths=None if quick else tuple(w for w in widths if w <= exact_max),
                      progress=False)
    euc_cmp = compare(ModelSpec("euclidean"), {**base, "eta": ETA_WEAK}, widths=widths[:1] if quick else widths[1:2], t1=cmp_t1,
                      n_records=11 if quick else 31, progress=False)
    hx = max((w for w in widths if EXACT_LABEL in cos_cmp.predictions[w]), default=widths[-1])
    fig, axes = _figure(2)
    plot_spectra(cos_cmp.networks[hx], cos_cmp.predictions[hx], ax=axes[0])
    axes[0].set_title(f"cosine, h = {hx}: network vs approximations", fontsize=9)
    for label in cos_cmp.errors[widths[0]]:
        pts = [(w, cos_cmp.errors[w][label].get("p", np.nan)) for w in widths]
        pts = [(w, e) for w, e in pts if np.isfinite(e)]
        if pts:
            axes[1].loglog(*zip(*pts), "o-", label=label)
    fw = sorted(cos_cmp.floor)
    if fw:
        axes[1].loglog(fw, [cos_cmp.floor[w]["p"] for w in fw], "s--", color="0.5", label="network floor (2 × distance to seed 1, dt/2)")
    axes[1].set_xticks(widths, [str(w) for w in widths])
    axes[1].minorticks_off()
    axes[1].set_xlabel("width h")
    axes[1].set_ylabel(r"max relative error of $p_j$")
    axes[1].legend(fontsize=7)
    _save(fig, out, FIGURES[8])
    numbers = {"cosine": cos_cmp.errors, "euclidean": euc_cmp.errors, "best": cos_cmp.best(),
               "floor": cos_cmp.floor, "within_floor": cos_cmp.within_floor() if cos_cmp.floor else {}}
    section = [
        "## 4. Theory against the real linear network",
        "",
        f"Aligned start, true losses via jax.grad, dt = 0.01, t in [0, {cmp_t1:g}]. "
        "Errors are maxima over time. The row *exact (finite width)* is the exact expected flow of the true "
        f"normalized loss (ModelSpec(norms='exact'), a quadrature; run up to h = {exact_max}, its cost grows with h); "
        "the *network floor* rows are the network's own error (see below).",
        "",
        f"Cosine loss (eta = {ETA_STRONG}):",
        "",
        cos_cmp.table(),
        "",
        f"Best per width: {cos_cmp.best()}.",
        "",
        *_trust_note(cos_cmp),
        "",
        f"Euclidean loss (eta = {ETA_WEAK}, expected gradient): the eigenmode system is exact:",
        "",
        euc_cmp.table(),
        "",
        f"![theory vs network]({FIGURES[8]})",
        "",
    ]
    return Claim("compare", FIGURES[8:9], numbers, tuple(section))


def real_data(out: Path, quick: bool) -> Claim:
    """Claim 5: a linear SimSiam network trained on the digits (sampled batches of the actual
    images, Gaussian-noise augmentation) against the eigenmode theory with the data's own
    covariance spectrum. Euclidean: the theory is the network's exact expected dynamics; the
    modes whose data variance is below lambda* collapse. Cosine (full run): the norm/moment
    approximations against the network. Figure: the spectrum and the survivors, mode
    trajectories, final s_j against lambda_j."""
    params = {"sigma2": SIGMA2, "eta": 0.1, "alpha_p": 1.0}
    data = digits_data()
    h = 32 if quick else 64
    euc = digits_experiment("euclidean", params, h=h, t1=25.0 if quick else 30.0, dt=0.02,
                            batch=128 if quick else 256, expected=not quick)
    cos = None if quick else digits_experiment("cosine", params, h=32, t1=5.0, dt=0.02, batch=256)
    fig = plot_real_data(euc)
    _save(fig, out, FIGURES[9])
    n_net = int(np.sum(euc.survivors["network"]))
    n_closed = int(np.sum(euc.survivors["closed form"]))
    above = int(np.sum(data.lam >= euc.threshold))
    numbers = {
        "lambda_top": [float(v) for v in data.lam[:5]],
        "threshold": euc.threshold,
        "modes_above_threshold": above,
        "surviving_network": n_net,
        "surviving_theory": int(np.sum(euc.survivors["theory: euclidean"])),
        "surviving_closed_form": n_closed,
        "euclidean_errors": {k: {lab: {q: v for q, v in e.items()} for lab, e in errs.items()} for k, errs in euc.errors().items()},
        "cosine_errors": None if cos is None else {lab: dict(e) for lab, e in cos.errors()["sampled"].items()},
    }
    section = [
        "## 5. Real data: digits, the data spectrum and dimensional collapse",
        "",
        f"scikit-learn's digits ({data.X.shape[0]} images, {data.X.shape[1]} pixels), centred and scaled to mean "
        f"eigenvalue 1 (the isotropic model's normalisation); views = image + N(0, {SIGMA2} I) noise. The network "
        f"(h = {h}) starts aligned with the data's principal directions, p_j = 0.6, s_j = 0.36 for every mode, "
        f"and is trained with sampled batches of actual images (eta = {params['eta']}); the theory is "
        "derive(ModelSpec(loss, data='spectrum')) with lambda_j = the covariance eigenvalues "
        f"(largest {', '.join(f'{v:.2f}' for v in data.lam[:4])}, ...).",
        "",
        f"Euclidean loss: a mode keeps a non-collapsed equilibrium iff lambda_j >= lambda* = 2 eta + 2 sqrt(eta^2 + "
        f"eta sigma2) = **{euc.threshold:.3f}**; {above} of the {data.X.shape[1]} directions lie above it. At t = "
        f"{euc.sampled.t[-1]:g} the network keeps **{n_net}** of its {h} modes (s_j >= 1% of the largest), the theory "
        f"{numbers['surviving_theory']}; eventually {n_closed} survive (closed form; the modes just below lambda* "
        "decay slowly near the fold).",
        "",
        euc.table(),
        "",
        "Only second moments enter the Euclidean dynamics, so against the network's expected dynamics on the data's "
        "covariance the theory is exact up to the integrator; against training on sampled images the error is the "
        "SGD noise and the O(dt) step.",
        "",
    ]
    if cos is not None:
        section += [
            f"Cosine loss (h = 32, t in [0, 5], sampled images): the approximations against the network "
            f"(modes surviving at t = 5: {int(np.sum(cos.survivors['network']))}/32):",
            "",
            cos.table(),
            "",
        ]
    section += [f"![digits]({FIGURES[9]})", ""]
    return Claim("real_data", FIGURES[9:10], numbers, tuple(section))


def reproduce(out: str | os.PathLike = "ncdyn-results", *, quick: bool = False, progress: bool = True) -> dict:
    """Run every claim, write the PNG figures and ``report.md`` into ``out``; return the numbers.

    The claims are units (``euclidean_threshold``, ``cosine_emergence``, ``cosine_regimes``,
    ``theory_vs_network``, ``real_data``), each returning a ``Claim`` (figures, numbers, report section);
    this composes them. Rerunning into the same directory replaces the files.

    Parameters
    ----------
    out : str or os.PathLike
        The output directory (created if missing).
    quick : bool
        A smoke run with small grids, short times and narrow networks (seconds, for tests).
    progress : bool
        Progress bars (stderr on a terminal only).

    Returns
    -------
    dict
        {"quick": quick, "euclidean": ..., "cosine": ..., "regimes": ..., "compare": ...,
        "real_data": ..., "seconds": run time}.

    Raises
    ------
    ValueError
        ``out`` exists and is not a directory.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a directory (it is created if missing); {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    steps = tqdm(total=5, desc="ncdyn reproduce", disable=not progress)
    claims: list[Claim] = []
    for run in (euclidean_threshold, cosine_emergence, lambda o, q: cosine_regimes(o, q, claims[1]), theory_vs_network,
                real_data):
        claims.append(run(out, quick))
        steps.update()
    steps.close()
    elapsed = time.perf_counter() - t_start
    nums: dict = {"quick": quick, **{c.key: c.numbers for c in claims}, "seconds": elapsed}
    head = [
        "# ncdyn reproduce",
        "",
        f"Settings: sigma2 = {SIGMA2} (c = {C}), alpha_p = 1, SimSiam target; weak eta = {ETA_WEAK}, "
        f"strong eta = {ETA_STRONG} (above the Euclidean threshold). {'Quick smoke run. ' if quick else ''}"
        f"Run time {elapsed:.0f} s.",
        "",
    ]
    md = [line for c in claims for line in c.section]
    (out / ".report.md.tmp").write_text("\n".join(head + md))
    os.replace(out / ".report.md.tmp", out / "report.md")
    return nums
