"""Equilibrium enumeration: exact path per point and batched path over 10^5 points, against a
sympy.solve loop as the baseline, all in one run.

    python benchmarks/equilibria.py [--n-batch 100000] [--n-exact 30]

System: the reduced cosine SimSiam mode (the sextic), random parameters. Baseline: sympy.solve
of the numerator in p at each point (numeric rational parameters), roots evaluated to floats.
Reports seconds per point and points per second, and the ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import sympy as sp

from derivations import ModelSpec, derive
from derivations import symbols as sy
from dynamics import equilibria, roots_batch

RANGES = {"sigma2": (0, 0.5), "eta": (0.001, 0.4), "alpha_p": (0.5, 2), "N_psi": (0.3, 3), "N_phi": (0.3, 3), "T": (-1, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-batch", type=int, default=100_000)
    ap.add_argument("--n-exact", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    reduced = derive(ModelSpec("cosine")).reduce()
    full = derive(ModelSpec("cosine", "ema"))
    points = [{k: float(rng.uniform(*r)) for k, r in RANGES.items()} for _ in range(args.n_exact)]

    t0 = time.perf_counter()
    n_found = [len(equilibria(reduced, p, domain=None)) for p in points]
    t_exact = (time.perf_counter() - t0) / len(points)

    t0 = time.perf_counter()
    for p in points:
        equilibria(full, dict(p, beta=0.5))
    t_exact_full = (time.perf_counter() - t0) / len(points)

    num = sp.numer(sp.together(reduced.rhs[0]))
    t0 = time.perf_counter()
    n_sympy = []
    for p in points:
        expr = num.xreplace({reduced.symbols[k]: sp.Rational(v) for k, v in p.items()})
        roots = [complex(sp.N(r)) for r in sp.solve(expr, sy.p)]
        n_sympy.append(sum(abs(r.imag) < 1e-9 for r in roots))
    t_sympy = (time.perf_counter() - t0) / len(points)
    agree = sum(a == b for a, b in zip(n_found, n_sympy))

    batch = {k: rng.uniform(*r, args.n_batch) for k, r in RANGES.items()}
    roots_batch(reduced, {k: v[:10] for k, v in batch.items()})  # warm-up
    t0 = time.perf_counter()
    out = roots_batch(reduced, batch)
    t_batch = time.perf_counter() - t0

    print("reduced cosine SimSiam mode (sextic), random parameters")
    print(f"  sympy.solve loop (baseline):          {t_sympy * 1e3:8.2f} ms/point  -> {1 / t_sympy:10.0f} points/s")
    print(f"  exact enumeration + classification:   {t_exact * 1e3:8.2f} ms/point  -> {1 / t_exact:10.0f} points/s"
          f"   ({t_sympy / t_exact:.1f}x the baseline; real-root counts agree at {agree}/{len(points)} points)")
    print(f"  exact, full cosine EMA (p, s, tau):   {t_exact_full * 1e3:8.2f} ms/point")
    print(f"  batched companion roots, {args.n_batch} points: {t_batch:.3f} s -> {args.n_batch / t_batch:10.0f} points/s"
          f"   ({t_sympy * args.n_batch / t_batch:.0f}x the baseline)")
    print(f"  mean real roots per point (batched): {out.n_real.mean():.2f}")


if __name__ == "__main__":
    main()
