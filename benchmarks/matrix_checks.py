"""The expected matrix flow (``MatrixFlowSystem``) at random, non-aligned weights, measured
against Monte Carlo of the true per-sample gradient and against the network.

    python benchmarks/matrix_checks.py [--widths 2 4 8 16] [--samples 400000] [--chunk 20000]
                                       [--h-net 8] [--t1 1.0] [--dt 0.02] [--batch 4096] [--seeds 4]

1. Monte Carlo: at random weights (``random_weights``, scale 1) for each width h, the mean
   and standard error of the per-sample weight flow of the TRUE loss (jax.grad of
   ``sample_loss``, chunked vmap) against the derived flow, for the exact cosine flow, the
   Euclidean loss with a learned predictor, DirectPred with the Euclidean loss and
   IsoLoss-cosine (exact) with DirectPred. Printed: the number of weight entries (dof), the
   largest |z|, chi^2/dof of the diagonal z-scores and the Mahalanobis chi^2 (full sample
   covariance, over its rank r), each also for the flow scaled by 1.02 (a 2% error is caught
   where the scaled chi^2 exceeds the 1e-4 quantile of chi^2(r)/r, also printed), the part of
   the difference outside the covariance's range (the per-sample flow obeys exact linear
   identities there), the rms of |flow| / standard error, and for the exact cosine flows the
   quadrature error (the default grid against a finer, wider one).
2. The network from the same random start at h = --h-net: the Euclidean flow (``integrate``,
   SciPy DOP853) against ``simulate_network(gradient="expected")`` (diffrax), the largest
   relative weight difference; the exact cosine flow against the sampled network over
   --seeds seeds (Euler step --dt, batch --batch): the seed floor (standard error of the seed
   mean in Frobenius norm), the Euler step error (the matrix flow Euler-stepped with the same
   dt), and the distances of the seed mean to the Euler-stepped flow and to the flow.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import chi2

from derivations import MatrixFlowSystem, ModelSpec, sample_loss, sample_views, weight_flow
from dynamics import integrate
from dynamics.ssl import commutator, random_weights, simulate_network

PRM = {"sigma2": 0.3, "eta": 0.1, "alpha_p": 1.0, "beta": 0.5, "alpha": 0.5, "eps": 0.1}
FINE_GRID = {"ray_step": 0.04, "ray_width": 6.0, "s_step": 0.04, "s_width": 5.0}
MODELS = {
    "cosine exact": ModelSpec("cosine", norms="exact"),
    "euclidean learned": ModelSpec("euclidean"),
    "euclidean directpred": ModelSpec("euclidean", predictor="directpred"),
    "isoloss-cosine exact directpred": ModelSpec("isoloss-cosine", norms="exact", predictor="directpred"),
}


def _params(system) -> dict:
    return {k: PRM[k] for k in system.param_names}


def mc_flow(spec: ModelSpec, w: dict, p: dict, n: int, chunk: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and covariance of the per-sample weight flow of the true loss (jax.grad), packed in
    the order of ``w``, and the number of samples used (whole chunks)."""
    f = sample_loss(spec)
    wj = {k: jnp.asarray(v) for k, v in w.items()}
    lam = jnp.ones(w["Phi"].shape[1])

    def per(x1, x2):
        g = jax.grad(lambda ww: f(ww, wj, x1[None], x2[None], p)[0])({k: v for k, v in wj.items() if k != "Phi_a"})
        fl = weight_flow(spec, wj, g, p)
        return jnp.concatenate([fl[k].reshape(-1) for k in w])

    @jax.jit
    def moments(key, shift):
        v = jax.vmap(per)(*sample_views(spec, key, chunk, lam, p)) - shift
        return v.sum(0), v.T @ v

    key = jax.random.PRNGKey(seed)
    n_chunks = max(1, n // chunk)
    shift = None
    for i in range(n_chunks):
        key, k = jax.random.split(key)
        if shift is None:  # centre on a first estimate: sums of squares without cancellation
            shift = jnp.zeros(sum(v.size for v in w.values()))
            a, _ = moments(k, shift)
            shift = a / chunk
            s1, s2 = 0.0, 0.0
        a, b = moments(k, shift)
        s1, s2 = s1 + np.asarray(a), s2 + np.asarray(b)
    n = n_chunks * chunk
    m = s1 / n
    return np.asarray(shift) + m, s2 / n - np.outer(m, m), n


def _chi2(diff: np.ndarray, cov: np.ndarray, n: int) -> tuple[float, float, int, float]:
    """(sum of squared z-scores with the diagonal standard errors, the Mahalanobis form
    n diff^T cov^+ diff on the covariance's numerical range, that rank, the norm of diff
    outside that range).

    The per-sample flows obey exact linear identities (a learned predictor's dPsi is a linear
    function of dPhi, the cosine gradient is orthogonal to a), so the covariance has a null
    space; the mean obeys them exactly, and a correct flow leaves no residual there."""
    z2 = np.sum(diff**2 / (np.diag(cov) / n))
    lam, Q = np.linalg.eigh(cov)
    keep = lam > 1e-10 * lam.max()
    proj = Q[:, keep].T @ diff
    null = np.linalg.norm(Q[:, ~keep].T @ diff)
    return float(z2), float(n * np.sum(proj**2 / lam[keep])), int(keep.sum()), float(null)


def monte_carlo(widths, n: int, chunk: int) -> None:
    n_used = max(1, n // chunk) * chunk
    print(f"1. Matrix flow against Monte Carlo of jax.grad of the true per-sample loss ({n_used} samples, random "
          "weights, scale 1). chi2: diagonal z-scores (entries are correlated: its spread exceeds chi2(dof)'s);")
    print("   chi2 full: Mahalanobis with the sample covariance (rank r), distributed as chi2(r); q: its 1e-4 quantile / r;")
    print("   null: |mean - flow| outside the covariance's range / |flow| (exact identities of the per-sample flow);")
    print("   quad: max |flow - flow on a finer quadrature grid| / max |flow| (exact cosine flows)")
    print(f"   {'model':32s} {'h':>3s} {'dof':>4s} {'max|z|':>6s} {'chi2/dof':>8s} {'x1.02':>8s} {'full/r':>7s} "
          f"{'x1.02':>8s} {'q/r':>6s} {'r':>4s} {'null':>7s} {'|f|/se':>6s} {'quad':>7s} {'s':>5s}")
    for label, spec in MODELS.items():
        for h in widths:
            t0 = time.perf_counter()
            system = MatrixFlowSystem(spec, h)
            p = _params(system)
            w = random_weights(spec, h, scale=1.0, seed=h)
            w = {k: w[k] for k in system.weight_names}
            got = np.asarray(system.to_jax()(0.0, system.pack(**w), p))
            quad = np.nan
            if system.moments is None:
                fine = MatrixFlowSystem(spec, h, quadrature=FINE_GRID)
                ref = np.asarray(fine.to_jax()(0.0, system.pack(**w), p))
                quad = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
            mean, cov, used = mc_flow(spec, w, p, n, chunk, seed=h)
            se = np.sqrt(np.diag(cov) / used)
            z = (mean - got) / se
            dof = z.size
            diag, full, r, null = _chi2(mean - got, cov, used)
            diag2, full2, _, _ = _chi2(mean - 1.02 * got, cov, used)
            print(f"   {label:32s} {h:3d} {dof:4d} {np.max(np.abs(z)):6.2f} {diag / dof:8.3f} {diag2 / dof:8.2f} "
                  f"{full / r:7.3f} {full2 / r:8.2f} {chi2.ppf(1 - 1e-4, r) / r:6.3f} {r:4d} {null / np.linalg.norm(got):7.1e} "
                  f"{np.sqrt(np.mean((got / se) ** 2)):6.0f} {quad:7.1e} {time.perf_counter() - t0:5.1f}")


def network(h: int, t1: float, dt: float, batch: int, seeds: int) -> None:
    print(f"2. Matrix flow against the network from the same random start, h = {h}, t in [0, {t1:g}]")
    spec = ModelSpec("euclidean")
    system = MatrixFlowSystem(spec, h)
    p = _params(system)
    w0 = random_weights(spec, h, scale=1.0, seed=11)
    t0 = time.perf_counter()
    run = simulate_network(spec, p, h=h, init=w0, gradient="expected", t1=t1, n_records=5, progress=False)
    sol = integrate(system, system.pack(**w0), (0.0, t1), p, t_eval=run.t, backend="scipy", progress=False)
    final = system.unpack(sol.final)
    rel = max(np.max(np.abs(final[k] - run.final[k])) / np.max(np.abs(run.final[k])) for k in system.weight_names)
    path = system.unpack(sol.y)
    com = np.array([float(commutator(P @ P.T, 0.5 * (S + S.T))) for P, S in zip(path["Phi"], path["Psi"])])
    print(f"   euclidean, expected gradient: max |w_flow - w_net| / max |w_net| = {rel:.2e}; commutator "
          f"{com[0]:.4f} -> {com[-1]:.4f}, max difference {np.max(np.abs(com - run.commutator)):.1e} "
          f"({time.perf_counter() - t0:.1f} s)")

    spec = ModelSpec("cosine", norms="exact")
    system = MatrixFlowSystem(spec, h)
    p = _params(system)
    w0 = random_weights(spec, h, scale=1.0, seed=12)
    y0 = system.pack(**w0)
    t0 = time.perf_counter()
    flow = np.asarray(integrate(system, y0, (0.0, t1), p, t_eval=[0.0, t1], backend="scipy", progress=False).final)
    f = system.to_jax(checked=False)
    n_steps = int(round(t1 / dt))

    @jax.jit
    def euler_path(step):
        return jax.lax.scan(lambda y, _: (y + step * f(0.0, y, p), None), jnp.asarray(y0), None, length=n_steps)[0]

    euler, fast = np.asarray(euler_path(dt)), np.asarray(euler_path(1.02 * dt))
    nets = []
    for seed in range(seeds):
        r = simulate_network(spec, p, h=h, init=w0, gradient="sampled", t1=t1, dt=dt, batch=batch, seed=seed,
                             progress=False)
        nets.append(system.pack(**{k: r.final[k] for k in system.weight_names}))
    nets = np.array(nets)
    mean = nets.mean(axis=0)
    floor = np.sqrt(np.sum(nets.var(axis=0, ddof=1)) / seeds)
    spread = np.sqrt(np.sum(nets.var(axis=0, ddof=1)))
    norm = np.linalg.norm
    print(f"   cosine exact vs sampled network ({seeds} seeds, batch {batch}, dt {dt:g}; Frobenius norms over all "
          f"{y0.size} weight entries; {time.perf_counter() - t0:.1f} s):")
    print(f"     motion |flow(t1) - w0| = {norm(flow - y0):.4f}; seed spread (one seed) {spread:.2e}; "
          f"seed floor (mean of {seeds}) {floor:.2e}; Euler step error |euler - flow| = {norm(euler - flow):.2e}")
    print(f"     |mean - euler| = {norm(mean - euler):.2e} = {norm(mean - euler) / floor:.2f} floors; "
          f"|mean - flow| = {norm(mean - flow):.2e} (bound 4 floors + step error = {4 * floor + norm(euler - flow):.2e}); "
          f"flow 2% fast: |mean - euler(1.02 dt)| = {norm(mean - fast) / floor:.2f} floors")
    per_seed = [norm(x - euler) / spread for x in nets]
    print(f"     each seed: |seed - euler| / seed spread = {', '.join(f'{v:.2f}' for v in per_seed)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[2, 4, 8, 16], help="widths h of the Monte Carlo check")
    ap.add_argument("--samples", type=int, default=400_000, help="Monte Carlo samples per point")
    ap.add_argument("--chunk", type=int, default=20_000, help="samples per vmapped chunk")
    ap.add_argument("--h-net", type=int, default=8, help="width of the network comparison")
    ap.add_argument("--t1", type=float, default=1.0, help="training time of the network comparison")
    ap.add_argument("--dt", type=float, default=0.02, help="step of the sampled network")
    ap.add_argument("--batch", type=int, default=4096, help="batch of the sampled network")
    ap.add_argument("--seeds", type=int, default=4, help="seeds of the sampled network")
    ap.add_argument("--skip-mc", action="store_true", help="only the network comparison")
    ap.add_argument("--skip-network", action="store_true", help="only the Monte Carlo check")
    args = ap.parse_args()
    print(f"params {PRM} (each model reads its own); JAX float64 on {jax.devices()[0].platform}")
    if not args.skip_mc:
        monte_carlo(args.widths, args.samples, args.chunk)
    if not args.skip_network:
        network(args.h_net, args.t1, args.dt, args.batch, args.seeds)


if __name__ == "__main__":
    main()
