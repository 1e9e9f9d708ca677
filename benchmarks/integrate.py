"""Throughput of the batched JAX path against a SciPy solve_ivp loop over the same trajectories.

    python benchmarks/integrate.py [--n 10000] [--t1 20]

Euclidean EMA system (p, s, tau), N random initial states with per-trajectory eta and beta,
rtol 1e-8, atol 1e-10 for both. The baseline is a plain loop of scipy.integrate.solve_ivp
(DOP853, the fastest SciPy method at these tolerances) on the compiled NumPy rhs; the JAX path
is ``dynamics.integrate`` (diffrax Tsit5, jit + vmap). Compile time is reported apart from the
run time; the figure of merit is the ratio of trajectories per second, and the check is the
max difference of the final states.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.integrate import solve_ivp

from derivations import ModelSpec, derive
from dynamics import integrate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--t1", type=float, default=20.0)
    args = ap.parse_args()
    N, t1 = args.n, args.t1

    system = derive(ModelSpec("euclidean", "ema"))
    rng = np.random.default_rng(0)
    y0 = np.column_stack([rng.uniform(0.1, 1.2, N), rng.uniform(0.05, 1.5, N), rng.uniform(0.5, 1.0, N)])
    params = {"sigma2": 0.2, "alpha_p": 1.0, "eta": rng.uniform(0.0, 0.3, N), "beta": rng.uniform(0.1, 1.0, N)}
    tol = dict(rtol=1e-8, atol=1e-10)

    t0 = time.perf_counter()
    first = integrate(system, y0, (0, t1), params, t_eval=[t1], events=(), **tol)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol = integrate(system, y0, (0, t1), params, t_eval=[t1], events=(), **tol)
    t_jax = time.perf_counter() - t0
    assert (sol.status == "finished").all(), sol.counts()

    f = system.to_numpy(checked=False)
    final = np.empty_like(y0)
    t0 = time.perf_counter()
    for i in range(N):
        p = {"sigma2": 0.2, "alpha_p": 1.0, "eta": params["eta"][i], "beta": params["beta"][i]}
        r = solve_ivp(lambda t, y: f(t, y, p), (0, t1), y0[i], method="DOP853", t_eval=[t1], **tol)
        final[i] = r.y[:, -1]
    t_scipy = time.perf_counter() - t0

    diff = np.max(np.abs(sol.final - final))
    print(f"Euclidean EMA, N = {N} trajectories, t in [0, {t1}], rtol 1e-8, atol 1e-10")
    print(f"  JAX batched (diffrax Tsit5): compile {t_first - t_jax:6.2f} s, run {t_jax:7.3f} s  -> {N / t_jax:10.0f} traj/s")
    print(f"  SciPy loop (solve_ivp DOP853):                  run {t_scipy:7.2f} s  -> {N / t_scipy:10.0f} traj/s")
    print(f"  speed-up (throughput ratio): {t_scipy / t_jax:.0f}x;  incl. compile: {t_scipy / t_first:.0f}x")
    print(f"  max |final_jax - final_scipy| = {diff:.2e}")
    del first


if __name__ == "__main__":
    main()
