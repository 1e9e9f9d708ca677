"""Periodic-orbit continuation: a family of cycles by collocation, its cost per cycle and per
corrector step.

    python benchmarks/cycles.py [--points 100] [--ntst 25] [--ncol 4]

System: the adaptive control system x' = y, y' = z, z' = -z - beta y - x + x^2 (3 states),
the family born at its Hopf point beta = 1, followed towards smaller beta through two period
doublings. Reports the first call (compiling the residual's Jacobian), the family's time with
the compilation cached (seconds and cycles per second), and one Newton iteration, one
Jacobian evaluation and one Floquet-multiplier computation of the corrector (best of 20).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import ncdyn
from dynamics import continue_cycle, continue_equilibrium
from dynamics._cycles import CycleProblem, _node_times


def best(fn, repeat: int = 20) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--ntst", type=int, default=25)
    ap.add_argument("--ncol", type=int, default=4)
    args = ap.parse_args()
    system = ncdyn.ODESystem.from_equations({"x": "y", "y": "z", "z": "-z - beta*y - x + x**2"}, params=("beta",))
    sweep = {"beta": (0.4, 1.5)}
    branch = continue_equilibrium(system, [0.0, 0.0, 0.0], sweep, {"beta": 1.2})
    hopf = next(p for p in branch.points if p.kind == "hopf")
    opts = dict(ntst=args.ntst, ncol=args.ncol, max_points=args.points)

    t0 = time.perf_counter()
    continue_cycle(system, hopf, sweep, {"beta": 1.2}, **opts)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fam = continue_cycle(system, hopf, sweep, {"beta": 1.2}, **opts)
    t_family = time.perf_counter() - t0

    problem = CycleProblem(system, "beta", {"beta": 1.2}, args.ntst, args.ncol)
    k = len(fam.values) // 2
    X = fam.profiles[k]
    problem.mesh = np.interp(np.linspace(0, 1, args.ntst + 1), np.linspace(0, 1, len(fam.times[k])), fam.times[k])
    assert np.allclose(_node_times(problem.mesh, args.ncol), fam.times[k])
    problem.set_reference(X)
    u = problem.pack(X, fam.period[k], fam.values[k])
    with threadpool_limits(1, user_api="blas"):
        R, J = problem.tracer.evaluate(u)
        t = np.linalg.svd(J)[2][-1]
        A = np.vstack([J, t[None, :]])
        rhs = np.concatenate([R, [0.0]])
        t_jac = best(lambda: problem.tracer.evaluate(u))
        t_solve = best(lambda: np.linalg.solve(A, rhs))
        t_mult = best(lambda: problem.multipliers(J))

    n_unknowns = len(u)
    print(f"adaptive control system, {len(fam.values)} cycles from the Hopf point, ntst = {args.ntst}, "
          f"ncol = {args.ncol} ({n_unknowns} unknowns)")
    print(f"  beta in [{fam.values.min():.4f}, {fam.values.max():.4f}], period up to {fam.period.max():.3f}; "
          + ", ".join(f"{p.kind} at {p.value:.6f}" for p in fam.points))
    print(f"  first call (compiles):           {t_first:8.2f} s")
    print(f"  family, compilation cached:      {t_family:8.2f} s  -> {len(fam.values) / t_family:8.1f} cycles/s")
    print(f"  one Newton iteration:            {(t_jac + t_solve) * 1e3:8.2f} ms  "
          f"(Jacobian {t_jac * 1e3:.2f} ms, bordered solve {t_solve * 1e3:.2f} ms)")
    print(f"  Floquet multipliers (condensed): {t_mult * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
