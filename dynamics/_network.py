"""The matrix-level linear network trained on the true losses: the ground truth for the theory.

Online projection Phi (h x d, here d = h), predictor Psi (h x h), target Phi_a (SimSiam:
Phi_a = sg(Phi); EMA: dPhi_a/dt = beta (Phi - Phi_a)). Views x1 = x + e1, x2 = x + e2 with
x ~ N(0, I), e ~ N(0, sigma2 I). Gradient flow with weight decay:
    dPsi/dt = -alpha_p dJ/dPsi - eta Psi,   dPhi/dt = -dJ/dPhi - eta Phi.
Gradients come from ``jax.grad`` of the real loss:
- "sampled": J is the mean per-sample loss over a fresh batch each step (Euclidean
  1/2||a - sg(b)||^2 or cosine -<a, sg(b)>/(||a|| ||b||)), advanced by Euler steps of size dt
  (gradient descent with learning rate dt);
- "expected" (Euclidean only): J = 1/2 [c ||Psi Phi||^2 - 2 tr(Psi Phi Phi_a^T) + c ||Phi_a||^2],
  the exact Gaussian average, integrated as an ODE with diffrax (Tsit5, rtol 1e-10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivations import ModelSpec
from derivations._codegen import check_param_names

__all__ = ["simulate_network", "NetworkRun", "aligned_init", "default_spectrum", "spectral_norms"]


@dataclass(frozen=True)
class NetworkRun:
    """Recorded spectra of a trained linear network.

    t:            record times, shape (n,).
    p, s, tau:    (n, h) mode values in the initial eigenbasis U: p_j = u_j^T Psi u_j,
                  s_j = u_j^T Phi Phi^T u_j, tau_j = u_j^T Phi_a Phi^T u_j / s_j (what the
                  eigenmode ODEs predict while the bases stay aligned).
    p_eig, s_eig: (n, h) sorted eigenvalues of (Psi + Psi^T)/2 and of Phi Phi^T.
    psi_norm2, phi_norm2: (n,) squared Frobenius norms ||Psi||^2, ||Phi||^2.
    misalignment: (n,) ||offdiag(U^T Psi U)||_F / ||Psi||_F: 0 while Psi stays diagonal in U.
    status:       "finished", or "failed" with ``message`` (non-finite values appeared).
    """

    t: np.ndarray
    p: np.ndarray
    s: np.ndarray
    tau: np.ndarray
    p_eig: np.ndarray
    s_eig: np.ndarray
    psi_norm2: np.ndarray
    phi_norm2: np.ndarray
    misalignment: np.ndarray
    spec: ModelSpec
    params: dict
    h: int
    gradient: str
    status: str = "finished"
    message: str = ""
    final: dict = field(default_factory=dict, repr=False)

    def scale_free(self) -> dict[str, np.ndarray]:
        """p / ||Psi||_F and s / ||Phi||_F^2: the spectrum the cosine loss actually sees."""
        return {
            "p": self.p / np.sqrt(self.psi_norm2)[:, None],
            "s": self.s / self.phi_norm2[:, None],
        }


def _random_orthogonal(rng: np.random.Generator, h: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(h, h)))
    return q * np.sign(np.diag(r))


def aligned_init(h: int, spectra: Mapping[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    """Psi = U diag(p) U^T, Phi = U diag(sqrt(s)) V^T, Phi_a = U diag(tau sqrt(s)) V^T."""
    rng = np.random.default_rng(seed)
    U, V = _random_orthogonal(rng, h), _random_orthogonal(rng, h)
    p = np.asarray(spectra["p"], dtype=float)
    s = np.asarray(spectra["s"], dtype=float)
    tau = np.asarray(spectra.get("tau", np.ones(h)), dtype=float)
    for name, v in (("p", p), ("s", s), ("tau", tau)):
        if v.shape != (h,):
            raise ValueError(f"init[{name!r}] must have shape ({h},); got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"init[{name!r}] must be finite")
    if np.any(s < 0):
        raise ValueError("init['s'] must be >= 0 (eigenvalues of Phi Phi^T)")
    phi = np.sqrt(s)
    return {
        "Psi": U @ np.diag(p) @ U.T,
        "Phi": U @ np.diag(phi) @ V.T,
        "Phi_a": U @ np.diag(tau * phi) @ V.T,
        "U": U,
        "V": V,
    }


def default_spectrum(h: int, alpha_p: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """A spread initial spectrum on the invariant manifold: p in [0.2, 1.0], s = p^2/alpha_p."""
    rng = np.random.default_rng(seed + 1)
    p = np.sort(rng.uniform(0.2, 1.0, h))[::-1]
    return {"p": p, "s": p**2 / alpha_p, "tau": np.ones(h)}


def spectral_norms(spectrum: Mapping[str, Any], sigma2: float) -> dict[str, float]:
    """The self-consistent norms of a spectrum: N_psi^2 = c sum p^2 s, N_phi^2 = c sum tau^2 s,
    T = sum tau p s (c = 1 + sigma2); tau defaults to 1 (SimSiam)."""
    c = 1.0 + sigma2
    p, s = np.asarray(spectrum["p"], dtype=float), np.asarray(spectrum["s"], dtype=float)
    tau = np.asarray(spectrum.get("tau", np.ones_like(p)), dtype=float)
    return {"N_psi": float(np.sqrt(c * np.sum(p**2 * s))), "N_phi": float(np.sqrt(c * np.sum(tau**2 * s))),
            "T": float(np.sum(tau * p * s))}


def _check_params(spec: ModelSpec, params: Any) -> dict[str, float]:
    names = ["sigma2", "eta", "alpha_p"] + (["beta"] if spec.target == "ema" else [])
    by_name = check_param_names(
        params, names, " (the network computes its own norms; N_psi, N_phi, T are not parameters here)"
    )
    out = {}
    for n in names:
        v = by_name[n]
        if isinstance(v, bool) or not np.isscalar(v) or not np.isfinite(float(v)):
            raise ValueError(f"params[{n!r}] must be a finite scalar; got {v!r}")
        out[n] = float(v)
    if out["sigma2"] < 0:
        raise ValueError(f"params['sigma2'] must be >= 0; got {out['sigma2']}")
    if out["alpha_p"] <= 0:
        raise ValueError(f"params['alpha_p'] must be > 0; got {out['alpha_p']}")
    return out


def simulate_network(
    spec: ModelSpec,
    params: Mapping[str, float],
    *,
    h: int = 32,
    t1: float = 6.0,
    dt: float = 0.01,
    batch: int = 4096,
    gradient: str = "auto",
    init: Mapping[str, Any] | None = None,
    n_records: int = 61,
    seed: int = 0,
) -> NetworkRun:
    """Train the linear network from an aligned start and record its spectra.

    spec:     ModelSpec; only ``loss`` and ``target`` matter (the network uses the true loss).
    params:   sigma2, eta, alpha_p (and beta for the EMA target).
    h:        width (d = h).
    t1, dt:   training time and step (learning rate) of the sampled dynamics.
    batch:    samples per step ("sampled").
    gradient: "sampled", "expected" (Euclidean only) or "auto" (expected for Euclidean,
              sampled for cosine).
    init:     initial spectra {"p": (h,), "s": (h,)[, "tau": (h,)]}; default ``default_spectrum``.
    n_records: number of record times from 0 to t1 (inclusive).

    Raises ValueError/TypeError for bad arguments.
    """
    import jax
    import jax.numpy as jnp

    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    prm = _check_params(spec, params)
    for name, v, lo in (("h", h, 1), ("batch", batch, 1), ("n_records", n_records, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {v!r}")
    for name, v in (("t1", t1), ("dt", dt)):
        if not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive finite number; got {v!r}")
    if gradient == "auto":
        gradient = "expected" if spec.loss == "euclidean" else "sampled"
    if gradient not in ("sampled", "expected"):
        raise ValueError(f"gradient={gradient!r} is not allowed; choose 'sampled', 'expected' or 'auto'")
    if gradient == "expected" and spec.loss != "euclidean":
        raise ValueError("gradient='expected' needs a closed-form Gaussian average: only the Euclidean loss has one")
    steps_per_record = max(1, int(round(t1 / dt / (n_records - 1))))
    if gradient == "sampled" and abs(steps_per_record * (n_records - 1) * dt - t1) > 1e-9 * t1:
        raise ValueError(f"t1 / dt = {t1 / dt:g} must be a multiple of n_records - 1 = {n_records - 1}")

    start = aligned_init(h, init if init is not None else default_spectrum(h, prm["alpha_p"], seed), seed)
    U = jnp.asarray(start["U"])
    ema = spec.target == "ema"
    c = 1.0 + prm["sigma2"]
    sg = jax.lax.stop_gradient

    def flow(state, grads):
        Psi, Phi, Phi_a = state
        g_psi, g_phi = grads
        d_psi = -prm["alpha_p"] * g_psi - prm["eta"] * Psi
        d_phi = -g_phi - prm["eta"] * Phi
        d_a = prm["beta"] * (Phi - Phi_a) if ema else jnp.zeros_like(Phi_a)
        return d_psi, d_phi, d_a

    def target_of(Phi, Phi_a):
        return Phi_a if ema else sg(Phi)

    def record(state):
        Psi, Phi, Phi_a = state
        Phi_a = Phi_a if ema else Phi
        F = Phi @ Phi.T
        Pu = U.T @ Psi @ U
        Fu = U.T @ F @ U
        Au = U.T @ (Phi_a @ Phi.T) @ U
        p, s = jnp.diag(Pu), jnp.diag(Fu)
        off = Pu - jnp.diag(p)
        psi2 = jnp.sum(Psi**2)
        return {
            "p": p, "s": s, "tau": jnp.diag(Au) / s,
            "p_eig": jnp.sort(jnp.linalg.eigvalsh(0.5 * (Psi + Psi.T)))[::-1],
            "s_eig": jnp.sort(jnp.linalg.eigvalsh(F))[::-1],
            "psi_norm2": psi2, "phi_norm2": jnp.sum(Phi**2),
            "misalignment": jnp.sqrt(jnp.sum(off**2) / psi2),
        }

    state0 = tuple(jnp.asarray(start[k]) for k in ("Psi", "Phi", "Phi_a"))
    ts = np.linspace(0.0, t1, n_records)

    if gradient == "expected":
        import diffrax

        def expected_loss(Psi, Phi, Phi_a):
            Phi_a = target_of(Phi, Phi_a)
            A = Psi @ Phi
            return 0.5 * (c * jnp.sum(A**2) - 2 * jnp.sum(A * sg(Phi_a)) + c * jnp.sum(sg(Phi_a) ** 2))

        grad = jax.grad(expected_loss, argnums=(0, 1))

        def vector_field(t, state, args):
            return flow(state, grad(*state))

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(vector_field), diffrax.Tsit5(), 0.0, t1, None, state0,
            saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
            stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12),
            max_steps=1_000_000, throw=False,
        )
        recs = jax.vmap(lambda a, b, c_: record((a, b, c_)))(*sol.ys)
        final = tuple(y[-1] for y in sol.ys)
    else:
        sigma = float(np.sqrt(prm["sigma2"]))

        def batch_loss(Psi, Phi, Phi_a, key):
            kx, k1, k2 = jax.random.split(key, 3)
            x = jax.random.normal(kx, (batch, h))
            x1 = x + sigma * jax.random.normal(k1, (batch, h))
            x2 = x + sigma * jax.random.normal(k2, (batch, h))
            a = x1 @ (Psi @ Phi).T
            b = sg(x2 @ target_of(Phi, Phi_a).T)
            if spec.loss == "euclidean":
                return 0.5 * jnp.mean(jnp.sum((a - b) ** 2, axis=1))
            cos = jnp.sum(a * b, axis=1) / (jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(b, axis=1))
            return -jnp.mean(cos)

        grad = jax.grad(batch_loss, argnums=(0, 1))

        def step(state, key):
            d = flow(state, grad(*state, key))
            return tuple(x + dt * dx for x, dx in zip(state, d)), None

        @jax.jit
        def segment(state, key):
            keys = jax.random.split(key, steps_per_record)
            state, _ = jax.lax.scan(step, state, keys)
            return state, record(state)

        keys = jax.random.split(jax.random.PRNGKey(seed), n_records - 1)
        state, rows = state0, [record(state0)]
        for key in keys:
            state, rec = segment(state, key)
            rows.append(rec)
        recs = {k: jnp.stack([r[k] for r in rows]) for k in rows[0]}
        final = state

    recs = {k: np.asarray(v) for k, v in recs.items()}
    finite = all(np.all(np.isfinite(v)) for v in recs.values())
    return NetworkRun(
        t=ts, **recs, spec=spec, params=prm, h=h, gradient=gradient,
        status="finished" if finite else "failed",
        message="" if finite else "non-finite values in the network state (collapse to a zero output?)",
        final={"Psi": np.asarray(final[0]), "Phi": np.asarray(final[1]), "Phi_a": np.asarray(final[2] if ema else final[1]),
               "U": start["U"], "V": start["V"]},
    )
