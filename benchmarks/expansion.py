"""How fast each closure of the cosine flow converges to the exact finite-width flow in K.

    python benchmarks/expansion.py [--ks 4 8 16 32 64 128 256 1024] [--seeds 3] [--t1 1.0]
                                   [--out benchmarks/expansion.png]

For each K and each seed: the start ``default_spectrum(K, seed=seed)`` (SimSiam, learned
predictor, on s = p^2/alpha_p), integrated with the exact flow (``norms="exact"``) to t1; at
that state every closure's rate (dp/dt, ds/dt) is compared with the exact one, the error being
||f - f_exact|| / ||f_exact|| over the 2K components (sigma2 = 0.2, eta = 0.3, alpha_p = 1).
Two errors: of the rate itself, and of its loss-driven part (the rate at eta = 0, i.e. without
the weight decay -eta p, -2 eta s, which every closure has exactly). With p, s = O(1) the
cosine gradient of one mode is O(1/K) (the loss spreads over K modes) while the weight decay
is O(1), so the rate error falls one power of K faster than the error of the gradient part;
the latter is the error of the closure itself.

- frozen norms, exact moments: N_psi, N_phi frozen at their t = 0 values (T closed);
- self-consistent norms, leading moments (the order-0 term of the expansion);
- self-consistent norms, exact moments;
- the 1/K expansion of the exact flow, order 1 and order 2 (``norms="expansion"``).

Prints the table (mean over seeds) and the slope of log(error) against log(K) fitted over
K >= --fit-from (default 16), and saves the figure of error against K.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from derivations import ModelSpec, derive
from dynamics import default_spectrum, integrate

PARAMS = {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}
CLOSURES = {
    "frozen norms, exact moments": ModelSpec("cosine", norms="frozen", moments="exact"),
    "self-consistent, leading moments": ModelSpec("cosine", norms="self-consistent", moments="leading"),
    "self-consistent, exact moments": ModelSpec("cosine", norms="self-consistent", moments="exact"),
    "1/K expansion, order 1": ModelSpec("cosine", norms="expansion", order=1),
    "1/K expansion, order 2": ModelSpec("cosine", norms="expansion", order=2),
}


def rate_errors(K: int, seed: int, t1: float, closures: dict = CLOSURES) -> dict[str, float]:
    """The relative rate error of every closure against the exact flow at the exact state at t1.

    Parameters
    ----------
    K : int
        The number of modes.
    seed : int
        Seeds ``default_spectrum``.
    t1 : float
        Time of the comparison (0: the start itself).
    closures : dict of str -> ModelSpec
        The closures compared.

    Returns
    -------
    dict of str -> (float, float)
        ||f - f_exact|| / ||f_exact|| over (dp/dt, ds/dt) for each closure: of the rate, and of
        its loss-driven part (eta = 0).
    """
    exact = derive(ModelSpec("cosine", norms="exact")).modes(K)
    start = default_spectrum(K, seed=seed)
    y0 = exact.pack(p=start["p"], s=start["s"])
    y = y0
    if t1 > 0:
        sol = integrate(exact, y0, (0.0, t1), PARAMS, backend="scipy", rtol=1e-10, atol=1e-12)
        y = np.asarray(sol.y_end)
    without_decay = {**PARAMS, "eta": 0.0}
    references = [exact.to_numpy()(0.0, y, q) for q in (PARAMS, without_decay)]
    c = 1.0 + PARAMS["sigma2"]
    out = {}
    for name, spec in closures.items():
        modes = derive(spec).modes(K)
        errors = []
        for q, reference in zip((PARAMS, without_decay), references):
            params = {k: v for k, v in q.items() if k in modes.param_names}
            if "N_psi" in modes.param_names:  # frozen at the start
                params["N_psi"] = float(np.sqrt(c * np.sum(start["p"] ** 2 * start["s"])))
                params["N_phi"] = float(np.sqrt(c * np.sum(start["s"])))
            f = modes.to_numpy()(0.0, y, params)
            errors.append(float(np.linalg.norm(f - reference) / np.linalg.norm(reference)))
        out[name] = tuple(errors)
    return out


def slope(ks: np.ndarray, errors: np.ndarray) -> float:
    """The least-squares slope of log(error) against log(K)."""
    return float(np.polyfit(np.log(ks), np.log(errors), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128, 256, 1024])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--t1", type=float, default=1.0)
    ap.add_argument("--fit-from", type=int, default=16)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".png")))
    args = ap.parse_args()
    ks = np.array(args.ks)
    what = ("rate", "loss-driven part")
    table = {w: {name: [] for name in CLOSURES} for w in what}
    for K in ks:
        rows = [rate_errors(int(K), seed, args.t1) for seed in range(args.seeds)]
        for i, w in enumerate(what):
            for name in CLOSURES:
                table[w][name].append(float(np.mean([r[name][i] for r in rows])))
        print(f"K = {K:5d}  " + "  ".join(f"{table[w][n][-1]:.2e}" for w in what for n in CLOSURES), flush=True)
    fit = ks >= args.fit_from
    slopes = {w: {} for w in what}
    for w in what:
        print(f"\nrelative error of the {w} against the exact flow at t = {args.t1} (mean over {args.seeds} spectra)")
        print(f"{'closure':34s}" + "".join(f"{K:>9d}" for K in ks) + f"  slope (K >= {args.fit_from})")
        for name, errs in table[w].items():
            slopes[w][name] = slope(ks[fit], np.array(errs)[fit])
            print(f"{name:34s}" + "".join(f"{e:9.1e}" for e in errs) + f"  {slopes[w][name]:6.2f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, w in zip(axes, what):
        for (name, errs), marker in zip(table[w].items(), "sv^oD"):
            ax.loglog(ks, errs, marker=marker, label=f"{name} (slope {slopes[w][name]:.2f})")
        ax.set_xlabel("K (modes)")
        ax.set_title(f"{w}" + (f" (eta = {PARAMS['eta']})" if w == "rate" else " (eta = 0)"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("relative error vs exact flow")
    fig.suptitle(f"cosine SimSiam, learned predictor, sigma2 = {PARAMS['sigma2']}, state of the exact flow at t = {args.t1}; "
                 f"slopes fitted over K >= {args.fit_from}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
