"""The expected matrix flow (MatrixFlowSystem, any weights) against the aligned K-mode flow and the network.

    python benchmarks/matrix.py [--widths 8 32 64] [--batch 4096] [--h-run 32] [--t1 2]
                                [--backend jax] [--repeat 5]

1. One right-hand side of the exact cosine matrix flow (``MatrixFlowSystem(ModelSpec("cosine",
   norms="exact"), h)``, d = h, the ray quadrature of ``cosine_gradient_moment``; jit-compiled,
   the best of --repeat calls at a random non-aligned point) against one right-hand side of
   the aligned exact K-mode flow (``derive(ModelSpec("cosine", norms="exact")).modes(h)``, the
   eigenmode ansatz) and against one sampled-gradient step of the network (``jax.grad`` of the
   mean per-sample cosine loss over a batch of --batch views, ``sample_loss``): seconds each
   and the ratios.
2. The closed-form matrix flow of the Euclidean loss (Wick's theorem, ``wick_matrix_moment``)
   at the same widths: seconds per right-hand side and its ratio to the network step.
3. ``dynamics.integrate`` of the exact cosine matrix flow from ``random_weights`` at h = --h-run
   over t in [0, t1] (rtol 1e-8, atol 1e-10): wall time of the first call (compilation
   included) and of a repeat call, the number of accepted steps, and the commutator of
   F = Phi Phi^T and the symmetrised predictor at the start and at t1.

Timings on a shared machine vary with its load: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from derivations import MatrixFlowSystem, ModelSpec, derive, sample_loss, sample_views, weight_flow
from dynamics import default_spectrum, integrate
from dynamics.ssl import commutator, random_weights

PARAMS = {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}
COSINE = ModelSpec("cosine", norms="exact")


def _timed(fn, repeat: int) -> float:
    """Best seconds of ``repeat`` calls after one warm-up (compilation) call (the best is what a
    shared machine's load disturbs least)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matrix_rhs_seconds(spec: ModelSpec, h: int, repeat: int) -> float:
    """One jit-compiled right-hand side of the matrix flow at a random start, d = h."""
    system = MatrixFlowSystem(spec, h)
    y = jnp.asarray(system.pack(**random_weights(spec, h, seed=0)))
    rhs = jax.jit(system.to_jax(checked=False))
    out = rhs(0.0, y, PARAMS)
    if not bool(jnp.all(jnp.isfinite(out))):
        raise RuntimeError(f"{system.name}: the right-hand side is not finite at the random start")
    return _timed(lambda: rhs(0.0, y, PARAMS).block_until_ready(), repeat)


def modes_rhs_seconds(h: int, repeat: int) -> float:
    """One jit-compiled right-hand side of the aligned exact K-mode flow, K = h."""
    modes = derive(COSINE).modes(h)
    start = default_spectrum(h)
    y = jnp.asarray(modes.pack(p=start["p"], s=start["s"]))
    rhs = jax.jit(modes.to_jax(checked=False))
    return _timed(lambda: rhs(0.0, y, PARAMS).block_until_ready(), repeat)


def network_step_seconds(h: int, batch: int, repeat: int) -> float:
    """One Euler step of the network with the sampled gradient of the true cosine loss."""
    truth = ModelSpec("cosine")
    f = sample_loss(truth)
    W = {k: jnp.asarray(v) for k, v in random_weights(truth, h, seed=0).items()}

    @jax.jit
    def step(W, key):
        x1, x2 = sample_views(truth, key, batch, jnp.ones(h), PARAMS)
        g = jax.grad(lambda w: f(w, W, x1, x2, PARAMS).mean())(W)
        d = weight_flow(truth, W, g, PARAMS)
        return {k: W[k] + 0.01 * d[k] for k in W}

    key = jax.random.PRNGKey(0)
    return _timed(lambda: jax.block_until_ready(step(W, key)), repeat)


def _commutator(system: MatrixFlowSystem, y) -> float:
    w = system.unpack(np.asarray(y))
    return float(commutator(w["Phi"] @ w["Phi"].T, 0.5 * (w["Psi"] + w["Psi"].T)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[4:]))
    ap.add_argument("--widths", type=int, nargs="*", default=[8, 32, 64],
                    help="widths h = d of parts 1 and 2 (none: only part 3)")
    ap.add_argument("--batch", type=int, default=4096, help="views per sampled network step")
    ap.add_argument("--h-run", type=int, default=32, help="width of the integration (part 3; 0: skip it)")
    ap.add_argument("--t1", type=float, default=2.0, help="end time of the integration (part 3)")
    ap.add_argument("--backend", choices=("jax", "scipy"), default="jax", help="integrate's backend (part 3)")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per right-hand side after the warm-up (the best is reported)")
    args = ap.parse_args()

    if args.widths:
        print(f"1./2. one right-hand side (jit, after compile), d = h, params {PARAMS}:")
        print(f"{'h':>4} | {'cosine matrix':>13} | {'K-mode exact':>12} | {'network step':>12} | "
              f"{'matrix/modes':>12} | {'matrix/network':>14} | {'euclid matrix':>13} | {'euclid/network':>14}")
    for h in args.widths:
        t_mat = matrix_rhs_seconds(COSINE, h, args.repeat)
        t_modes = modes_rhs_seconds(h, args.repeat)
        t_net = network_step_seconds(h, args.batch, args.repeat)
        t_euc = matrix_rhs_seconds(ModelSpec("euclidean"), h, args.repeat)
        print(f"{h:>4} | {t_mat * 1e3:10.2f} ms | {t_modes * 1e3:9.2f} ms | {t_net * 1e3:9.2f} ms | "
              f"{t_mat / t_modes:12.1f} | {t_mat / t_net:14.2f} | {t_euc * 1e3:10.3f} ms | {t_euc / t_net:14.4f}")

    h = args.h_run
    if h < 1:
        return
    system = MatrixFlowSystem(COSINE, h)
    y0 = system.pack(**random_weights(COSINE, h, seed=0))
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        sol = integrate(system, y0, (0.0, args.t1), PARAMS, t_eval=[0.0, args.t1], backend=args.backend,
                        progress=False)
        runs.append(time.perf_counter() - t0)
    print(f"3. exact cosine matrix flow, h = d = {h} ({system.n_states} states), random start, t in [0, {args.t1}], "
          f"backend {args.backend}: first call {runs[0]:6.2f} s (compile included), repeat {runs[1]:6.2f} s, "
          f"{int(np.max(sol.n_steps))} steps, status {sol.status}; commutator {_commutator(system, y0):.3f} -> "
          f"{_commutator(system, sol.final):.3f}")


if __name__ == "__main__":
    main()
