"""Lambdified JAX and NumPy right-hand sides against SymPy evaluation; jit, vmap, K modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from derivations import ModelSpec, derive


def random_params(system, rng, n=None):
    shape = () if n is None else (n,)
    ranges = {"sigma2": (0, 0.5), "eta": (0, 0.5), "alpha_p": (0.5, 2), "beta": (0.1, 1),
              "N_psi": (0.5, 3), "N_phi": (0.5, 3), "T": (-1, 3)}
    return {k: rng.uniform(*ranges[k], size=shape) for k in system.param_names}


def random_states(system, rng, n):
    cols = {"p": rng.uniform(-1.5, 1.5, n), "s": rng.uniform(0, 2, n), "tau": rng.uniform(0, 1.5, n)}
    return np.stack([cols[k] for k in system.state_names], axis=-1)


def sympy_values(system, y, params):
    out = []
    for row in y:
        subs = {**dict(zip(system.states, map(sp.Float, row))),
                **{system.symbols[k]: sp.Float(float(v)) for k, v in params.items()}}
        out.append([float(r.evalf(30, subs=subs)) for r in system.rhs])
    return np.array(out)


@pytest.mark.parametrize("reduced", [False, True], ids=["full", "reduced"])
def test_jax_and_numpy_agree_with_sympy(spec, reduced):
    system = derive(spec).reduce() if reduced else derive(spec)
    rng = np.random.default_rng(7)
    for _ in range(3):
        params = random_params(system, rng)
        y = random_states(system, rng, 8)
        ref = sympy_values(system, y, params)
        for f in (system.to_numpy(), system.to_jax()):
            got = np.asarray(f(0.0, y, params))
            assert got.shape == y.shape
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_jit_vmap_over_states_and_params(spec):
    system = derive(spec)
    f = system.to_jax()
    rng = np.random.default_rng(3)
    n = 64
    y = random_states(system, rng, n)
    params = random_params(system, rng, n)
    batched = jax.jit(jax.vmap(f))(jnp.zeros(n), jnp.asarray(y), {k: jnp.asarray(v) for k, v in params.items()})
    loop = np.stack([np.asarray(f(0.0, y[i], {k: v[i] for k, v in params.items()})) for i in range(n)])
    np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-12, atol=1e-14)
    assert batched.dtype == jnp.float64
    # vmap over states only, shared scalar params; and plain broadcasting of a batch
    shared = {k: float(v[0]) for k, v in params.items()}
    over_y = jax.jit(jax.vmap(f, in_axes=(None, 0, None)))(0.0, y, shared)
    np.testing.assert_allclose(np.asarray(over_y), np.asarray(f(0.0, y, shared)), rtol=1e-12, atol=1e-14)


def test_grad_through_the_rhs():
    system = derive(ModelSpec("cosine", "ema"))
    f = system.to_jax()
    params = {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0, "beta": 0.5, "N_psi": 1.3, "N_phi": 1.1, "T": 0.7}
    y = jnp.array([0.4, 0.5, 0.9])
    jac = jax.jacfwd(lambda y: f(0.0, y, params))(y)
    subs = {**dict(zip(system.states, [0.4, 0.5, 0.9])), **{system.symbols[k]: v for k, v in params.items()}}
    ref = np.array(system.jacobian.evalf(subs=subs), dtype=float)
    np.testing.assert_allclose(np.asarray(jac), ref, rtol=1e-12)


@pytest.mark.parametrize(
    "spec",
    [ModelSpec("euclidean", "ema"), ModelSpec("cosine", "simsiam", "self-consistent"),
     ModelSpec("cosine", "ema", "self-consistent", "leading"), ModelSpec("cosine", "ema", "frozen")],
    ids=lambda s: s.label.replace(" ", "_"),
)
def test_k_modes_agree_with_explicit_sympy_system(spec):
    K = 3
    modes = derive(spec).modes(K)
    states, rhs = modes.to_sympy()
    rng = np.random.default_rng(11)
    spectra = {"p": rng.uniform(0.1, 1.2, K), "s": rng.uniform(0.2, 1.5, K), "tau": rng.uniform(0.5, 1.2, K)}
    y = modes.pack(**{k: spectra[k] for k in modes.per_mode.state_names})
    params = random_params(modes.per_mode, rng)
    params = {k: params[k] for k in modes.param_names}
    subs = {**dict(zip(states, map(float, y))), **{modes.per_mode.symbols[k]: float(v) for k, v in params.items()}}
    ref = np.array([float(r.evalf(30, subs=subs)) for r in rhs])
    for f in (modes.to_jax(), modes.to_numpy()):
        np.testing.assert_allclose(np.asarray(f(0.0, y, params)), ref, rtol=1e-12)


def test_self_consistent_closure_computes_norms_from_the_spectrum():
    """The K-mode flow equals the one-mode flow with N_psi, N_phi, T set to their spectral values."""
    spec = ModelSpec("cosine", "ema", "self-consistent")
    system = derive(spec)
    K = 50
    rng = np.random.default_rng(5)
    p, s, tau = rng.uniform(0.1, 1, K), rng.uniform(0.1, 1, K), rng.uniform(0.5, 1, K)
    base = {"sigma2": 0.3, "eta": 0.05, "alpha_p": 1.2, "beta": 0.4}
    c = 1.3
    full = dict(base, N_psi=np.sqrt(c * np.sum(p**2 * s)), N_phi=np.sqrt(c * np.sum(tau**2 * s)), T=np.sum(tau * p * s))
    per_mode = system.to_numpy()(0.0, np.stack([p, s, tau], -1), full)
    modes = system.modes(K)
    flat = modes.to_numpy()(0.0, modes.pack(p=p, s=s, tau=tau), base)
    np.testing.assert_allclose(modes.unpack(flat)["p"], per_mode[:, 0], rtol=1e-13)
    np.testing.assert_allclose(modes.unpack(flat)["tau"], per_mode[:, 2], rtol=1e-13)


def test_ten_thousand_modes_jit_and_batch():
    modes = derive(ModelSpec("cosine", "simsiam", "self-consistent")).modes(10_000)
    f = jax.jit(modes.to_jax())
    rng = np.random.default_rng(0)
    y = modes.pack(p=rng.uniform(0.01, 1, (4, 10_000)), s=rng.uniform(0.01, 1, (4, 10_000)))
    params = {"sigma2": 0.2, "eta": jnp.array([0.0, 0.1, 0.2, 0.3]), "alpha_p": 1.0}
    out = f(0.0, y, params)
    assert out.shape == (4, 20_000)
    assert bool(jnp.all(jnp.isfinite(out)))
    # eta enters per trajectory: batch row i equals an unbatched call with eta[i]
    single = f(0.0, y[2], dict(params, eta=0.2))
    np.testing.assert_allclose(np.asarray(out[2]), np.asarray(single), rtol=1e-13)
