"""Throughput of ``dynamics.basins`` on a large grid of initial states (10^6 by default).

    python benchmarks/basins.py [--grid 1000] [--t1 200]

Euclidean SimSiam (p, s), params sigma2 = 0.2, eta = 0.05, alpha_p = 1, a grid x grid of
initial states (p, s) in [-1.5, 1.5] x [0, 2]: one batched integrate in memory-bounded chunks
(end states only), with a progress bar on a terminal. Reports the first call (with compile)
and a repeat call, trajectories per second, peak RSS, and a SciPy-backend loop over a
subsample for scale. Timings on a shared machine vary with its load.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=1000, help="points per axis (grid**2 trajectories)")
    ap.add_argument("--t1", type=float, default=200.0)
    ap.add_argument("--scipy", type=int, default=20, help="points per axis of the SciPy subsample")
    args = ap.parse_args()
    from derivations import ModelSpec, derive
    from dynamics import basins

    system = derive(ModelSpec("euclidean", "simsiam"))
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}
    n = args.grid
    grid = {"p": np.linspace(-1.5, 1.5, n), "s": np.linspace(0.0, 2.0, n)}
    print(f"basins, Euclidean SimSiam, {n} x {n} = {n * n} initial states, t1 = {args.t1:g}; "
          f"load average {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    b = basins(system, grid, params, t1=args.t1)
    first = time.perf_counter() - t
    t = time.perf_counter()
    b = basins(system, grid, params, t1=args.t1)
    again = time.perf_counter() - t
    print(f"  jax:   first call {first:7.1f} s, repeat {again:7.1f} s -> {n * n / again:9.0f} traj/s; "
          f"collapse probability {b.collapse_probability:.4f}; statuses {dict(zip(*np.unique(b.status, return_counts=True)))}")
    m = args.scipy
    sub = {"p": np.linspace(-1.5, 1.5, m), "s": np.linspace(0.0, 2.0, m)}
    t = time.perf_counter()
    bs = basins(system, sub, params, t1=args.t1, backend="scipy")
    ts = time.perf_counter() - t
    bj = basins(system, sub, params, t1=args.t1)
    agree = np.mean(bs.collapsed == bj.collapsed)
    print(f"  scipy: {m * m} trajectories in {ts:.1f} s -> {m * m / ts:9.0f} traj/s (jax / scipy: "
          f"{(n * n / again) / (m * m / ts):.0f}x); collapsed labels agree on {agree:.1%} of the subsample")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
