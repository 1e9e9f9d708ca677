"""Many seeds of the linear network from one start: the seed-to-seed spread that minibatch noise
makes, which the SGD noise of the theory (``model.stochastic(K)``) predicts.

Every seed trains the same network (``simulate_network``'s model, true per-sample loss, the
same aligned start and bases) by minibatch SGD, W <- W + lr flow_B(W) with a fresh batch of B
samples per step; only the batches differ (seed i's batch at step k is drawn from
fold_in(fold_in(PRNGKey(seed), i), k), so it does not depend on how the run is recorded).
The seeds run together (vmapped), so 64 seeds cost about one compiled run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from derivations import ModelSpec, Params, predictor_matrix, view_covariance

from .._display import html_table
from .._progress import check_progress, progress_bar
from .._value import Value
from ._network import (
    _check_params, _data_model, _flows, _initial_weights, _positive_float, _positive_int, _record_times,
    aligned_init, default_spectrum,
)

__all__ = ["NetworkSeeds", "network_seeds"]


@dataclass(frozen=True, repr=False, eq=False)
class NetworkSeeds(Value):
    """Mode values of many seeds of one network, recorded in the start's aligned frame.

    Attributes
    ----------
    t : numpy.ndarray
        Record times (n,), steps * lr.
    p, s : numpy.ndarray
        (seeds, n, h): p_j = u_j^T W_P u_j, s_j = u_j^T Phi Phi^T u_j in the start's basis U
        (what the eigenmode states are while the network stays aligned).
    tau : numpy.ndarray or None
        (seeds, n, h) for an EMA target.
    p_eig : numpy.ndarray
        (seeds, n, h) the sorted eigenvalues of the symmetrised predictor (W_P + W_P^T)/2,
        largest first: basis-free, where the fixed frame of ``p`` drifts (degenerate modes
        rotate among themselves under the noise).
    misalignment : numpy.ndarray
        (seeds, n): the off-diagonal mass of U^T W_P U and U^T Phi Phi^T U (relative).
    spec : ModelSpec
    params : dict
    h, batch, seeds : int
    lr : float
    init : dict
        The initial spectra.
    status : str
        "finished", or "failed" where a seed's values are not finite.
    """

    t: np.ndarray
    p: np.ndarray
    s: np.ndarray
    tau: np.ndarray | None
    p_eig: np.ndarray
    misalignment: np.ndarray
    spec: ModelSpec
    params: dict
    h: int
    batch: int
    seeds: int
    lr: float
    init: dict = field(default_factory=dict)
    status: str = "finished"

    def values(self) -> dict[str, np.ndarray]:
        """The recorded mode values.

        Returns
        -------
        dict of str -> numpy.ndarray
            {"p", "s"[, "tau"]}, each (seeds, n, h).
        """
        out = {"p": self.p, "s": self.s}
        if self.tau is not None:
            out["tau"] = self.tau
        return out

    def spread(self) -> dict[str, np.ndarray]:
        """The seed-to-seed standard deviation of each mode value over time (ddof 1).

        Returns
        -------
        dict of str -> numpy.ndarray
            {state: (n, h)}.
        """
        return {k: v.std(axis=0, ddof=1) for k, v in self.values().items()}

    def mean(self) -> dict[str, np.ndarray]:
        """The mean over seeds of each mode value.

        Returns
        -------
        dict of str -> numpy.ndarray
            {state: (n, h)}.
        """
        return {k: v.mean(axis=0) for k, v in self.values().items()}

    def __repr__(self) -> str:
        return (f"NetworkSeeds({self.spec.label}, h={self.h}, {self.seeds} seeds, lr={self.lr:g}, B={self.batch}, "
                f"t in [{self.t[0]:g}, {self.t[-1]:g}], {self.status})")

    def _repr_html_(self) -> str:
        rows = [[k, float(np.mean(v[-1])), float(np.mean(self.spread()[k][-1]))] for k, v in self.values().items()]
        return html_table(f"NetworkSeeds: {self.spec.label}, h = {self.h}, {self.seeds} seeds",
                          ("state", f"mean at t = {self.t[-1]:g}", "seed std (mode average)"), rows,
                          [f"lr = {self.lr:g}, B = {self.batch}; {self.status}"])


def network_seeds(spec: ModelSpec, params: Params, *, seeds: int = 64, h: int = 32, lr: float = 0.05,
                  batch: int = 64, t1: float = 5.0, d: int | None = None, init: Mapping[str, ArrayLike] | None = None,
                  n_records: int | None = None, seed: int = 0, progress: bool = True) -> NetworkSeeds:
    """Train ``seeds`` copies of the linear network of ``spec`` by minibatch SGD from one aligned
    start, each on its own batches, and record their mode values.

    Parameters
    ----------
    spec : ModelSpec
        A model with a per-sample loss (the losses of the batch's moments are not served).
    params : dict
        As ``simulate_network`` (sigma2, eta, alpha_p, beta, ...).
    seeds : int
        The number of seeds (>= 2).
    h : int
        The width (isotropic data).
    lr : float
        The learning rate (the time of one step).
    batch : int
        Samples per step B.
    t1 : float
        Training time, a whole number of steps.
    d : int, optional
        The input dimension (>= h; default h).
    init : mapping, optional
        Initial spectra {"s"[, "p", "tau"]} (h,) each; default ``default_spectrum(h)``.
    n_records : int, optional
        Record times from 0 to t1 (the steps a multiple of n_records - 1); default about 61.
    seed : int
        Seeds the bases, the default spectrum and the batches (seed i's batch at step k from
        fold_in(fold_in(PRNGKey(seed), i), k): the same whatever ``n_records``).
    progress : bool
        A progress bar over the steps (stderr on a terminal only, after a few seconds).

    Returns
    -------
    NetworkSeeds

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec.
    ValueError
        A loss of the batch's moments, bad sizes, times or parameters (as ``simulate_network``).
    """
    import jax
    import jax.numpy as jnp

    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    if spec.batch_statistics:
        raise ValueError(f"{spec.label}: network_seeds serves per-sample losses; train a loss of the batch's moments "
                         "with simulate_network(..., seed=i)")
    check_progress(progress)
    prm, lam_param = _check_params(spec, params, False)
    seeds = _positive_int("seeds", seeds, 2)
    h = _positive_int("h", h)
    batch = _positive_int("batch", batch)
    lr = _positive_float("lr", lr)
    t1 = _positive_float("t1", t1)
    if n_records is not None:
        n_records = _positive_int("n_records", n_records, 2)
    _, lam_d, _ = _data_model(spec, h, d, lam_param, None, None, lam_param is not None)
    d = lam_d.shape[0]
    spectra = dict(init) if init is not None else default_spectrum(h, alpha_p=prm.get("alpha_p", 1.0), seed=seed)
    start = aligned_init(h, spectra, seed=seed, d=d)
    lam_j = jnp.asarray(lam_d)
    V = jnp.asarray(start["V"])
    U = jnp.asarray(start["U"])
    cov = view_covariance(spec, lam_j, prm, basis=V)
    weights0 = _initial_weights(spec, start)
    sampled = _flows(spec, prm, "sampled", cov, batch, lam_j, V, None)["sampled"]
    steps, ts = _record_times(t1, lr, n_records, None)
    ema = spec.target == "ema"

    def record(w):
        Phi = w["Phi"]
        W = predictor_matrix(spec, w, prm)
        F = Phi @ Phi.T
        Pu, Fu = U.T @ W @ U, U.T @ F @ U
        s = jnp.diag(Fu)
        out = {"p": jnp.diag(Pu), "s": s, "p_eig": jnp.linalg.eigvalsh(0.5 * (W + W.T))[::-1]}
        if ema:
            a_u = jnp.diag(U.T @ w["Phi_a"] @ Phi.T @ U)
            out["tau"] = jnp.where(s > 0, a_u / jnp.where(s > 0, s, 1.0), jnp.nan)

        def off(M):
            return jnp.sqrt(jnp.sum((M - jnp.diag(jnp.diag(M))) ** 2) / jnp.maximum(jnp.sum(M**2), 1e-300))

        out["misalignment"] = jnp.maximum(off(Pu), off(Fu))
        return out

    def one_step(w, key):
        f, _ = sampled(w, key)
        return {k: w[k] + lr * f[k] for k in w}, None

    @jax.jit
    def segment(w, keys):
        w, _ = jax.vmap(lambda wi, ki: jax.lax.scan(one_step, wi, ki))(w, keys)
        return w, jax.vmap(record)(w)

    base = jax.random.PRNGKey(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(seeds, dtype=jnp.uint32))
    w = {k: jnp.broadcast_to(v, (seeds,) + v.shape) for k, v in weights0.items()}
    rows = [jax.vmap(record)(w)]
    done = 0
    with progress_bar(int(steps[-1]), "network_seeds", progress, unit="step") as bar:
        for target in steps[1:]:
            length = int(target) - done
            index = jnp.arange(done, int(target), dtype=jnp.uint32)
            step_keys = jax.vmap(lambda k: jax.vmap(lambda j: jax.random.fold_in(k, j))(index))(keys)
            w, rec = segment(w, step_keys)
            rows.append(rec)
            done = int(target)
            bar.update(length)
    recs = {k: np.stack([np.asarray(r[k]) for r in rows], axis=1) for k in rows[0]}
    finite = all(np.all(np.isfinite(recs[k])) for k in ("p", "s", "tau") if k in recs)
    tau0 = np.asarray(spectra.get("tau", np.ones(h)), dtype=float)
    return NetworkSeeds(
        t=np.asarray(ts, dtype=float), p=recs["p"], s=recs["s"], tau=recs.get("tau"), p_eig=recs["p_eig"],
        misalignment=recs["misalignment"], spec=spec, params=prm, h=h, batch=batch, seeds=seeds, lr=lr,
        init={"p": recs["p"][0, 0], "s": recs["s"][0, 0], "tau": tau0},
        status="finished" if finite else "failed")
