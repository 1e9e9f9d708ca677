"""The expected matrix flow (``MatrixFlowSystem``) integrated from a random, non-aligned start
against the matrix-level network trained on the true loss from the same weights: the exact
expected gradient (autodiff of the Gaussian average, its own diffrax call) for the Euclidean
loss, and sampled gradients over several seeds for the cosine loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from derivations import MatrixFlowSystem, ModelSpec
from dynamics import integrate
from dynamics.ssl import commutator, random_weights, simulate_network

PRM = {"sigma2": 0.3, "eta": 0.1, "alpha_p": 1.0, "beta": 0.5}


def _params(spec):
    return {k: v for k, v in PRM.items() if k != "beta" or spec.target == "ema"}


def _weights(system, y):
    return {k: np.asarray(v) for k, v in system.unpack(y).items()}


@pytest.mark.parametrize("spec", [ModelSpec("euclidean"), ModelSpec("euclidean", target="ema")],
                         ids=lambda s: s.label)
def test_euclidean_flow_matches_the_expected_network_from_a_random_start(spec):
    """h = 6, t in [0, 2], random weights (scale 1): ``integrate`` (SciPy DOP853, rtol 1e-8)
    against ``simulate_network(gradient="expected")`` (diffrax Tsit5, rtol 1e-10), two
    independent integrators of two independent right-hand sides. The final weights agree to
    1e-7 relative (the max entry difference over the largest entry; measured ~5e-11) and the
    commutator ||[F, W_s]|| / (||F|| ||W_s||) at the 11 record times to 1e-7 (measured ~5e-10),
    while the weights move by O(1) and the commutator falls by a factor 2-3."""
    h, t1 = 6, 2.0
    params = _params(spec)
    w0 = random_weights(spec, h, scale=1.0, seed=3)
    system = MatrixFlowSystem(spec, h)
    run = simulate_network(spec, params, h=h, init=w0, gradient="expected", t1=t1, n_records=11, progress=False)
    sol = integrate(system, system.pack(**w0), (0.0, t1), params, t_eval=run.t, backend="scipy", progress=False)
    assert sol.status == "finished" and run.status == "finished"
    final = _weights(system, sol.final)
    for k in system.weight_names:
        scale = np.max(np.abs(run.final[k]))
        assert np.max(np.abs(final[k] - w0[k])) > 0.3 * scale  # the weights did move
        assert np.max(np.abs(final[k] - run.final[k])) < 1e-7 * scale, k
    path = _weights(system, sol.y)
    com = np.array([float(commutator(P @ P.T, 0.5 * (S + S.T))) for P, S in zip(path["Phi"], path["Psi"])])
    np.testing.assert_allclose(com, run.commutator, rtol=0, atol=1e-7)
    assert com[-1] < 0.5 * com[0]


def test_cosine_exact_flow_matches_the_sampled_network_within_its_seed_floor():
    """h = 4, t in [0, 1], random weights: the exact cosine flow (norms="exact") against the
    network on the true loss with sampled gradients (batch 4096, Euler steps dt = 0.02) over 3
    seeds.

    The network's own errors are measured, not assumed: the step error by Euler-stepping the
    matrix flow itself with the network's dt (``euler``; ||euler - flow|| = 5.9e-3 against a
    motion ||flow(t1) - w0|| = 0.72, Frobenius norms over all weights), and the seed floor as
    the standard error of the seed mean, floor = sqrt(sum_i var_i / n_seeds) with var_i the
    sample variance of weight entry i over the seeds (32 entries; 1.5e-3), so that
    E||mean - E mean||^2 = floor^2. The seed mean must lie within 4 floors of the Euler-stepped
    flow (measured 1.7 floors) and hence, by the triangle inequality, within
    4 floors + ||euler - flow|| of the flow (measured 5.9e-3 against the bound 1.2e-2). The
    Euler-stepped flow run 3% too fast (step 1.03 dt, 11.5 floors away) must be rejected by the
    same bound: the check resolves a 3% error in the flow."""
    spec = ModelSpec("cosine", norms="exact")
    h, t1, dt, batch, seeds = 4, 1.0, 0.02, 4096, 3
    params = _params(spec)
    w0 = random_weights(spec, h, scale=1.0, seed=5)
    system = MatrixFlowSystem(spec, h)
    y0 = system.pack(**w0)
    sol = integrate(system, y0, (0.0, t1), params, t_eval=[0.0, t1], backend="scipy", progress=False)
    assert sol.status == "finished"
    flow = np.asarray(sol.final)

    f = system.to_jax(checked=False)
    n_steps = int(round(t1 / dt))

    @jax.jit
    def euler_path(step):
        return jax.lax.scan(lambda y, _: (y + step * f(0.0, y, params), None), jnp.asarray(y0), None, length=n_steps)[0]

    euler, fast = np.asarray(euler_path(dt)), np.asarray(euler_path(1.03 * dt))
    nets = []
    for seed in range(seeds):
        run = simulate_network(spec, params, h=h, init=w0, gradient="sampled", t1=t1, dt=dt, batch=batch,
                               seed=seed, progress=False)
        assert run.status == "finished"
        nets.append(system.pack(**{k: run.final[k] for k in system.weight_names}))
    nets = np.array(nets)
    mean = nets.mean(axis=0)
    floor = np.sqrt(np.sum(nets.var(axis=0, ddof=1)) / seeds)
    step_error = np.linalg.norm(euler - flow)
    motion = np.linalg.norm(flow - y0)
    assert 4 * floor + step_error < 0.03 * motion, (floor, step_error, motion)
    assert np.linalg.norm(mean - euler) < 4 * floor, (np.linalg.norm(mean - euler), floor)
    assert np.linalg.norm(mean - flow) < 4 * floor + step_error
    assert np.linalg.norm(mean - fast) > 4 * floor
