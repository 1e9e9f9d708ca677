"""The exact finite-width cosine flow (norms="exact") against the sampled network it replaces.

    python benchmarks/exact.py [--k-rhs 10,100,1000] [--k-run 100] [--t1 6] [--widths 64,256,1000]
                               [--t-wide 3] [--timed-steps 10] [--full-network 256]

1. One right-hand-side evaluation of the exact K-mode system (jit-compiled, best of 7 repeat
   calls) at each K of --k-rhs; at the largest K also one sampled gradient step of the linear
   network of the same width (batch 4096, jit-compiled): milliseconds each and the ratio.
2. The integration of K = 100 modes over the report's time span (t in [0, 6], eta = 0.3) with
   ``dynamics.integrate`` (SciPy DOP853, and the JAX backend for comparison) against
   ``simulate_network`` at h = 100 (dt = 0.01, batch 4096): wall time each (first call and
   repeat) and the ratio, plus the max relative difference of the predictor spectra at t1 (the
   network's own sampling floor is of the same order).
3. The integration of K modes over t in [0, 3] (SciPy DOP853; first call and repeat) at each
   width of --widths against the network's training at the same width and its default batch
   (4096) and step (dt = 0.01, 300 steps): the jitted scan of sampled gradient steps that
   ``simulate_network`` runs, timed over --timed-steps steps after compilation and scaled to
   the 300 (the per-step cost is constant). Up to --full-network also ``simulate_network``
   itself (two records), whose recording of the alignment observables (eigenspace angles of
   every top-k subspace, O(h^4)) dominates at large h and is left out of the ratio.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from derivations import ModelSpec, derive, sample_loss, sample_views, weight_flow
from dynamics import default_spectrum, integrate, simulate_network


def _timed(fn, repeat: int = 5) -> float:
    fn()  # compile / warm up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def _best(fn, repeat: int = 7) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _network(truth, params, K, start, batch=4096, dt=0.01):
    """The network's weights at the aligned start and its jitted training: n sampled steps."""
    f = sample_loss(truth)
    W = {"Psi": jnp.diag(jnp.asarray(start["p"])), "Phi": jnp.diag(jnp.sqrt(jnp.asarray(start["s"])))}

    def step(W, key):
        x1, x2 = sample_views(truth, key, batch, jnp.ones(K), params)
        g = jax.grad(lambda w: f(w, W, x1, x2, params).mean())(W)
        d = weight_flow(truth, W, g, params)
        return {k: W[k] + dt * d[k] for k in W}, None

    @jax.jit
    def train(W, keys):
        return jax.lax.scan(step, W, keys)[0]

    return W, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k-rhs", default="10,100,1000")
    ap.add_argument("--k-run", type=int, default=100)
    ap.add_argument("--t1", type=float, default=6.0)
    ap.add_argument("--widths", default="64,256,1000")
    ap.add_argument("--t-wide", type=float, default=3.0)
    ap.add_argument("--timed-steps", type=int, default=10)
    ap.add_argument("--full-network", type=int, default=256)
    args = ap.parse_args()
    spec, truth = ModelSpec("cosine", norms="exact"), ModelSpec("cosine")
    params = {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}

    ks = [int(k) for k in args.k_rhs.split(",")]
    for K in ks:
        modes = derive(spec).modes(K)
        start = default_spectrum(K)
        y = jnp.asarray(modes.pack(p=start["p"], s=start["s"]))
        rhs = jax.jit(modes.to_jax(checked=False))
        t_rhs = _best(lambda: rhs(0.0, y, params).block_until_ready())
        line = f"1. K = {K}: exact rhs {t_rhs * 1e3:8.2f} ms"
        if K == max(ks):
            W, train = _network(truth, params, K, start)
            keys = jax.random.split(jax.random.PRNGKey(0), 1)
            t_step = _best(lambda: jax.block_until_ready(train(W, keys)), repeat=3)
            line += f"; one sampled network step (h = {K}, batch 4096) {t_step * 1e3:8.1f} ms; ratio network/exact {t_step / t_rhs:6.1f}"
        print(line, flush=True)

    K = args.k_run
    modes = derive(spec).modes(K)
    start = default_spectrum(K)
    y0 = modes.pack(p=start["p"], s=start["s"])
    runs = {}
    for backend in ("scipy", "jax"):
        t0 = time.perf_counter()
        sol = integrate(modes, y0, (0.0, args.t1), params, t_eval=[0.0, args.t1], backend=backend, progress=False)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        sol = integrate(modes, y0, (0.0, args.t1), params, t_eval=[0.0, args.t1], backend=backend, progress=False)
        runs[backend] = (first, time.perf_counter() - t0, sol)
    t_first, t_exact, sol = runs["scipy"]
    t0 = time.perf_counter()
    net = simulate_network(truth, params, h=K, t1=args.t1, dt=0.01, batch=4096, init=start, n_records=7, progress=False)
    t_net = time.perf_counter() - t0
    p_exact = modes.unpack(sol.final)["p"]
    err = np.max(np.abs(p_exact - net.p[-1])) / np.max(np.abs(net.p[-1]))
    jf, jr, jsol = runs["jax"]
    diff = np.max(np.abs(jsol.final - sol.final)) / np.max(np.abs(sol.final))
    print(f"2. K = h = {K}, t in [0, {args.t1}], rtol 1e-8: exact ODE (SciPy DOP853, {int(sol.n_steps)} steps) "
          f"{t_exact:6.2f} s (first call {t_first:6.2f} s, status {sol.status}); network {t_net:6.2f} s; "
          f"ratio network/exact {t_net / t_exact:5.2f} (first call {t_net / t_first:5.2f}); max rel. difference of "
          f"p at t1 {err:.2e} (the network's Euler step dt = 0.01 and sampling; compare measures that floor)")
    print(f"   the same with the JAX backend (diffrax Tsit5, {int(jsol.n_steps)} steps): {jr:6.2f} s repeat, "
          f"{jf:6.2f} s first call; agrees with SciPy to {diff:.1e}.", flush=True)

    n_steps = int(round(args.t_wide / 0.01))
    for K in (int(k) for k in args.widths.split(",")):
        modes = derive(spec).modes(K)
        start = default_spectrum(K)
        y0 = modes.pack(p=start["p"], s=start["s"])
        t0 = time.perf_counter()
        sol = integrate(modes, y0, (0.0, args.t_wide), params, t_eval=[0.0, args.t_wide], backend="scipy", progress=False)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        sol = integrate(modes, y0, (0.0, args.t_wide), params, t_eval=[0.0, args.t_wide], backend="scipy", progress=False)
        t_exact = time.perf_counter() - t0
        W, train = _network(truth, params, K, start)
        keys = jax.random.split(jax.random.PRNGKey(1), args.timed_steps)
        jax.block_until_ready(train(W, keys))
        t0 = time.perf_counter()
        jax.block_until_ready(train(W, keys))
        t_train = (time.perf_counter() - t0) / args.timed_steps * n_steps
        line = (f"3. K = h = {K}, t in [0, {args.t_wide}]: exact ODE (SciPy DOP853, {int(sol.n_steps)} steps, status "
                f"{sol.status}) {t_exact:6.2f} s (first call {first:6.2f} s); network training ({n_steps} steps, batch 4096) "
                f"{t_train:7.1f} s; ratio network/exact {t_train / t_exact:6.1f} (first call {t_train / first:6.1f})")
        if K <= args.full_network:
            t0 = time.perf_counter()
            simulate_network(truth, params, h=K, t1=args.t_wide, dt=0.01, batch=4096, init=start, n_records=2, progress=False)
            line += f"; simulate_network with its records {time.perf_counter() - t0:6.1f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
