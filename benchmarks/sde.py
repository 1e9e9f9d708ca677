"""SGD noise: the cost of the stochastic eigenmode system against the network it predicts.

In one run, on the Euclidean SimSiam model (h = K modes, lr = 0.05, B = 64, t = 4):
- ``integrate`` of ``derive(spec).stochastic(K)`` on ``paths`` Brownian paths (diffrax Euler with
  ``UnsafeBrownianPath``) against the same solve on a ``VirtualBrownianTree`` per path (plain
  diffrax's reproducible-across-steps path): the ratio is the price of the tree;
- the SDE paths against ``network_seeds`` (the matrix network trained by SGD with the same
  number of seeds): the ratio is what the theory saves;
- ``noise_spread`` (the linear-noise spread, one deterministic integration) against both.
Each is timed on its second call (compiled), and the first call is reported too.

    python benchmarks/sde.py [--K 16] [--paths 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fn()
    return first, time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=16, help="modes (network width)")
    parser.add_argument("--paths", type=int, default=256, help="Brownian paths = network seeds")
    args = parser.parse_args()

    import diffrax
    import jax
    import jax.numpy as jnp

    from derivations import ModelSpec, derive
    from dynamics import default_spectrum, integrate, network_seeds, noise_spread

    spec = ModelSpec("euclidean")
    K, paths, lr, B, t1 = args.K, args.paths, 0.05, 64, 4.0
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}
    init = default_spectrum(K)
    system = derive(spec).stochastic(K)
    y0 = system.pack(p=init["p"], s=init["s"])
    noise = {**params, "lr": lr, "B": B}
    ts = np.linspace(0, t1, 5)

    def toolkit():
        return integrate(system, y0, (0, t1), noise, paths=paths, dt=lr, t_eval=ts, events=(), progress=False)

    f = system.to_jax(checked=False)
    g = system.diffusion.function
    values = {k: jnp.float64(v) for k, v in noise.items()}

    @jax.jit
    def tree(keys):
        def one(key):
            bm = diffrax.VirtualBrownianTree(0.0, t1, tol=lr / 16, shape=(system.diffusion.n_noise,), key=key)
            terms = diffrax.MultiTerm(diffrax.ODETerm(lambda t, y, a: f(t, y, a)),
                                      diffrax.ControlTerm(lambda t, y, a: g(t, y, a), bm))
            return diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, t1, lr, jnp.asarray(y0), values,
                                       saveat=diffrax.SaveAt(ts=jnp.asarray(ts)), max_steps=int(t1 / lr) + 2).ys
        return jax.vmap(one)(keys)

    keys = jax.random.split(jax.random.PRNGKey(0), paths)
    rows = []
    first, second, sol = _timed(toolkit)
    rows.append(("integrate (UnsafeBrownianPath)", first, second))
    first, second, _ = _timed(lambda: jax.block_until_ready(tree(keys)))
    rows.append(("diffrax, VirtualBrownianTree", first, second))
    first, second, net = _timed(lambda: network_seeds(spec, params, seeds=paths, h=K, lr=lr, batch=B, t1=t1,
                                                      n_records=5, init=init, progress=False))
    rows.append((f"network_seeds ({paths} seeds)", first, second))
    first, second, spread = _timed(lambda: noise_spread(system, y0, ts, noise))
    rows.append(("noise_spread (linear noise)", first, second))
    base = rows[0][2]
    print(f"Euclidean SimSiam, K = {K}, {paths} paths/seeds, lr = {lr}, B = {B}, t = {t1} ({int(t1 / lr)} steps)")
    print(f"{'method':34s} {'first call':>11s} {'compiled':>10s} {'ratio':>8s}")
    for name, a, b in rows:
        print(f"{name:34s} {a:10.2f}s {b:9.3f}s {b / base:8.2f}x")
    sde_std = sol.y[:, -1, :K].std(axis=0).mean()
    print(f"seed std of p at t = {t1}: SDE paths {sde_std:.4g}, network {net.spread()['p'][-1].mean():.4g}, "
          f"linear noise {spread.std[-1, :K].mean():.4g}")


if __name__ == "__main__":
    main()
