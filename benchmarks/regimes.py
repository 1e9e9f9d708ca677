"""Throughput of ``dynamics.roots_batch`` / ``regimes`` on 10^6 parameter points.

    python benchmarks/regimes.py [--grid 1000]

The cosine SimSiam eigenmode system restricted to its manifold (one state p, a rational
right-hand side): a grid x grid regime map over (eta, sigma2), in memory-bounded chunks of
ROOTS_CHUNK points with a progress bar on a terminal. Reports points per second and peak RSS,
and checks a random subsample of points against ``equilibria`` (exact enumeration, one point
at a time), whose rate is reported for scale.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=1000, help="points per axis (grid**2 points)")
    ap.add_argument("--check", type=int, default=20, help="points checked against equilibria")
    args = ap.parse_args()
    from derivations import ModelSpec, derive
    from dynamics import equilibria, regimes, roots_batch

    system = derive(ModelSpec("cosine", "simsiam"))
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
