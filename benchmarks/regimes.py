"""Throughput of ``dynamics.roots_batch`` / ``regimes`` on 10^5 and 10^6 parameter points,
against plain NumPy eigenvalues of the same companion matrices.

    python benchmarks/regimes.py [--grid 1000] [--sizes 100000 1000000] [--repeat 3]

The cosine SimSiam eigenmode system restricted to its manifold (one state p, a rational
right-hand side whose numerator is a sextic in p).

1. ``roots_batch`` at random parameter points against the baseline: the sextic's coefficients
   (highest first) evaluated at the same points, its 6 x 6 companion matrices built, and
   ``numpy.linalg.eigvals`` on the whole stack in one call (roots only: no classification, no
   multiple roots). Best of ``--repeat`` wall-clock times of each in the same run (the two
   alternating), on every core this process may use and pinned to one core
   (``os.sched_setaffinity``), with the CPU seconds of the wall-clock-best runs; ratio =
   baseline time / roots_batch time (> 1: faster), and the same ratio of CPU seconds (all
   threads together; less sensitive to other load).
2. A grid x grid regime map over (eta, sigma2) with ``regimes`` and ``roots_batch``, in
   memory-bounded chunks of ROOTS_CHUNK points with a progress bar on a terminal. Reports
   points per second and peak RSS, and checks a random subsample of points against
   ``equilibria`` (exact enumeration, one point at a time), whose rate is reported for scale.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import sympy as sp

RANGES = {"sigma2": (0, 0.5), "eta": (0.001, 0.4), "alpha_p": (0.5, 2), "N_psi": (0.3, 3), "N_phi": (0.3, 3), "T": (-1, 3)}


def _best(fs, repeat: int) -> list[tuple[float, float]]:
    """(best wall-clock seconds, CPU seconds of that run) of each function in ``fs``, called in
    turn ``repeat`` times (interleaved, so that both meet the same load on a shared machine)."""
    runs = [[] for _ in fs]
    for _ in range(repeat):
        for f, out in zip(fs, runs):
            w, c = time.perf_counter(), time.process_time()
            f()
            out.append((time.perf_counter() - w, time.process_time() - c))
    return [min(r) for r in runs]


def against_eigvals(system, sizes: list[int], repeat: int) -> None:
    """roots_batch against numpy.linalg.eigvals of the sextic's companion matrices."""
    from dynamics import roots_batch

    reduced = system.reduce()
    p = reduced.states[0]
    coeffs = sp.lambdify(reduced.params, sp.Poly(reduced.numerators[0], p).all_coeffs(), "numpy")
    rng = np.random.default_rng(0)
    all_cores = os.sched_getaffinity(0)
    k = sp.degree(reduced.numerators[0], p)
    print(f"roots_batch against numpy.linalg.eigvals of the {k} x {k} companion matrices, random parameters; "
          f"load average {os.getloadavg()[0]:.1f}")
    for n in sizes:
        batch = {k: rng.uniform(*r, n) for k, r in RANGES.items()}
        vals = [batch[str(s)] for s in reduced.params]

        def baseline():
            C = np.stack([np.broadcast_to(np.asarray(c, dtype=float), (n,)) for c in coeffs(*vals)], axis=1)
            k = C.shape[1] - 1
            M = np.zeros((n, k, k))
            M[:, 0, :] = -C[:, 1:] / C[:, :1]
            M[:, np.arange(1, k), np.arange(k - 1)] = 1.0
            return np.linalg.eigvals(M)

        def ours():
            return roots_batch(reduced, batch, progress=False)

        ours()
        r = ours()
        ev = np.sort_complex(baseline())
        mine = np.sort_complex(np.where(np.isfinite(r.roots), r.roots, 0.0))
        spread = np.max(np.abs(ev - mine) / np.maximum(1.0, np.abs(ev)))
        for label, cores in ((f"{len(all_cores)} cores", all_cores), ("1 core", {min(all_cores)})):
            os.sched_setaffinity(0, cores)
            try:
                (tb, cb), (to, co) = _best([baseline, ours], repeat)
            finally:
                os.sched_setaffinity(0, all_cores)
            print(f"  {n:>8} points, {label:>7}: eigvals {tb:6.3f} s ({n / tb:9.0f} points/s, {cb:6.3f} CPU s); "
                  f"roots_batch {to:6.3f} s ({n / to:9.0f} points/s, {co:6.3f} CPU s); ratio {tb / to:4.2f} "
                  f"(CPU seconds: {cb / co:4.2f})")
        print(f"  {n:>8} points: largest root difference to eigvals {spread:.1e} (relative to max(1, |root|))")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=1000, help="points per axis (grid**2 points)")
    ap.add_argument("--check", type=int, default=20, help="points checked against equilibria")
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000],
                    help="points of the comparison against eigvals (none: skip it)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each timing (the best counts)")
    args = ap.parse_args()
    from derivations import ModelSpec, derive
    from dynamics import equilibria, regimes, roots_batch

    system = derive(ModelSpec("cosine", "simsiam"))
    if args.sizes:
        against_eigvals(system, args.sizes, args.repeat)
    base = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 1.0, "N_phi": 1.0, "T": 1.0}
    base = {k: v for k, v in base.items() if k in system.param_names}
    n = args.grid
    eta, sig = np.linspace(0.0, 0.5, n), np.linspace(0.0, 1.0, n)
    print(f"regimes, cosine SimSiam on its manifold, {n} x {n} = {n * n} parameter points; "
          f"load average {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    reg = regimes(system, ("eta", eta), ("sigma2", sig), base)
    dt = time.perf_counter() - t
    print(f"  regimes:     {dt:6.2f} s -> {n * n / dt:10.0f} points/s; fractions "
          f"{ {k: round(v, 4) for k, v in reg.fractions().items()} }")
    E, S = np.meshgrid(eta, sig)
    t = time.perf_counter()
    r = roots_batch(system, {**base, "eta": E, "sigma2": S})
    dt = time.perf_counter() - t
    print(f"  roots_batch: {dt:6.2f} s -> {n * n / dt:10.0f} points/s")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, n, (args.check, 2))
    t = time.perf_counter()
    bad = 0
    for j, i in idx:
        eq = equilibria(system.reduce(), {**base, "eta": eta[i], "sigma2": sig[j]})
        n_stable = sum(bool(e.stable) for e in eq)
        bad += int(n_stable != int(r.n_stable[j, i]))
    de = time.perf_counter() - t
    print(f"  equilibria (exact, one point at a time): {args.check / de:8.1f} points/s; stable counts disagree at "
          f"{bad} of {args.check} checked points")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
