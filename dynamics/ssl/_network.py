"""The matrix-level linear network trained on the true losses: the ground truth for the theory.

Every ModelSpec: online projection Phi (h x d), predictor W_P (learned Psi, DirectPred's
closed form F^alpha with F = Phi Phi^T, or the identity), target Phi (SimSiam, with or
without stop-gradient) or an EMA copy Phi_a. Views x1 = x + e1 (or x1 = x for one-view noise),
x2 = x + e2 with x ~ N(0, V diag(lambda) V^T) (isotropic: lambda = 1), e ~ N(0, sigma2 I), or
x drawn from a data set (``samples``). The per-sample losses, the exact Gaussian average and
the weight flow come from ``derivations._truth`` (autodiff of the true loss); weight decay:
    dPsi/dt = -alpha_p dJ/dPsi - eta Psi,   dPhi/dt = -dJ/dPhi - eta Phi,
    dPhi_a/dt = beta (Phi - Phi_a).
Gradients:
- "sampled": J is the mean per-sample loss over a fresh batch each step, advanced by
  gradient-descent steps of size dt (or ``lr``);
- "expected" (losses quadratic in the samples, e.g. Euclidean and IsoLoss-Euclidean): J is
  the exact Gaussian average, integrated as an ODE with diffrax (Tsit5, rtol 1e-10), or
  iterated as the exact expected-gradient map when a learning rate ``lr`` is given.
The losses of the batch's moment matrices (Barlow Twins, VICReg, spectral contrastive) are
trained with real batch statistics only: J is the loss of each fresh batch
(``derivations.batch_loss_function``), and the mean batch loss is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from numpy.typing import ArrayLike

from derivations import (
    ModelSpec,
    Params,
    batch_loss_function,
    expected_loss,
    network_params,
    predictor_matrix,
    sample_loss,
    sample_views,
    view_covariance,
    weight_flow,
)
from derivations.codegen import check_param_names
from derivations.symbols import A, B, C

from .._display import html_table
from .._iterate import record_steps
from .._progress import check_progress, progress_bar
from .._tolerance import FLOAT_RTOL, RTOL
from .._value import Value
from ._alignment import alignment_observables

__all__ = [
    "simulate_network", "NetworkRun", "aligned_init", "random_weights", "default_spectrum", "spectral_norms",
    "is_quadratic", "data_spectrum",
]

_DEFAULT_RECORDS = 61


@dataclass(frozen=True, repr=False, eq=False)
class NetworkRun(Value):
    """Recorded spectra of a trained linear network.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    t : numpy.ndarray
        Record times, shape (n,) (discrete time: steps * lr).
    p, s, tau : numpy.ndarray
        (n, h) mode values in the initial eigenbasis U: p_j = u_j^T W_P u_j (the predictor's
        eigenvalue: Psi learned, w_j for DirectPred, 1 without a predictor),
        s_j = u_j^T Phi Phi^T u_j, tau_j = u_j^T Phi_t Phi^T u_j / s_j (what the eigenmode
        ODEs predict while the bases stay aligned).
    p_eig, s_eig : numpy.ndarray
        (n, h) sorted eigenvalues of (W_P + W_P^T)/2 and of Phi Phi^T.
    psi_norm2, phi_norm2 : numpy.ndarray
        (n,) squared Frobenius norms ``||W_P||^2``, ``||Phi||^2``.
    misalignment : numpy.ndarray
        (n,) the larger of ``||offdiag(U^T W_P U)||_F / ||W_P||_F`` and the same for
        Phi Phi^T: 0 while the network stays in the eigenmode ansatz.
    spec : ModelSpec
        The model.
    params : dict
        Its parameters.
    h : int
        The width.
    gradient : str
        "expected" or "sampled".
    status : str
        "finished", or "failed" with ``message`` (non-finite values appeared).
    message : str
        Why it failed ("" otherwise).
    final : dict
        The final weights.
    a_norm2, b_norm2 : numpy.ndarray or None
        (n,) ``E||a||^2`` and ``E||b||^2`` of the online and target outputs (the
        self-consistent norms N_psi^2, N_phi^2 the theory uses).
    lam : numpy.ndarray or None
        (h,) the data variance of each mode (ones for isotropic data).
    lr : float or None
        The learning rate of step-based runs (sampled or discrete), else None.
    steps : numpy.ndarray or None
        The recorded step indices of step-based runs, else None.
    init : dict
        The initial spectra.
    commutator : numpy.ndarray or None
        (n,) ``||[F, W_s]||_F / (||F||_F ||W_s||_F)`` with F = Phi Phi^T and W_s the
        symmetrised predictor: 0 when they share eigenvectors (identically 0 for DirectPred
        and without a predictor); see ``alignment_observables``.
    angles : numpy.ndarray or None
        (n, h-1) for k = 1..h-1 the largest principal angle (radians) between the top-k
        eigenvectors of F and of W_s (NaN without a predictor).
    offdiag : numpy.ndarray or None
        (n,) the off-diagonal mass of W_P in the current eigenbasis of F.
    data_angles : numpy.ndarray or None
        (n, h-1) for k = 1..h-1 the largest principal angle between the top-k right singular
        vectors of Phi and the first k data eigenvectors; None for isotropic data without a
        ``basis`` (no data directions to find).
    target_offdiag : numpy.ndarray or None
        (n,) the off-diagonal mass of Phi_a Phi^T in the eigenbasis of F (EMA target only,
        else None).
    batch_loss : numpy.ndarray or None
        (n,) for a loss of the batch's moments: the batch loss averaged over the steps since
        the previous record (at t = 0: the loss of one batch at the start); None for
        per-sample losses.
    moment_offdiag : numpy.ndarray or None
        (n, 3) for a loss of the batch's moments: the off-diagonal mass
        ``||offdiag(M)||_F / ||M||_F`` of the population moment matrices M = C = E[z1 z2^T],
        V1 = E[z1 z1^T], V2 = E[z2 z2^T] (columns in this order) in the embedding
        coordinates: 0 on the aligned points of these losses (every moment matrix diagonal),
        whatever the basis U; None for per-sample losses.
    cross_eig : numpy.ndarray or None
        (n, h) for a loss of the batch's moments: the sorted eigenvalues of the symmetrised
        population cross-correlation (C + C^T)/2, C = E[z1 z2^T] (on aligned weights
        lambda_j s_j; the quantities that rise in steps in stepwise learning, plateau 1 for
        Barlow Twins); None for per-sample losses.
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
    final: dict = field(default_factory=dict)
    a_norm2: np.ndarray | None = None
    b_norm2: np.ndarray | None = None
    lam: np.ndarray | None = None
    lr: float | None = None
    steps: np.ndarray | None = None
    init: dict = field(default_factory=dict)
    commutator: np.ndarray | None = None
    angles: np.ndarray | None = None
    offdiag: np.ndarray | None = None
    data_angles: np.ndarray | None = None
    target_offdiag: np.ndarray | None = None
    batch_loss: np.ndarray | None = None
    moment_offdiag: np.ndarray | None = None
    cross_eig: np.ndarray | None = None

    def scale_free(self) -> dict[str, np.ndarray]:
        """``p / ||W_P||_F`` and ``s / ||Phi||_F^2``: the spectrum the cosine loss actually sees.

        Returns
        -------
        dict of str -> numpy.ndarray
            {"p", "s"}, each (n, h).
        """
        return {
            "p": self.p / np.sqrt(self.psi_norm2)[:, None],
            "s": self.s / self.phi_norm2[:, None],
        }

    def values(self) -> dict[str, np.ndarray]:
        """The recorded mode values.

        Returns
        -------
        dict of str -> numpy.ndarray
            {"p", "s"} and "tau" for an EMA target, each (n, h).
        """
        out = {"p": self.p, "s": self.s}
        if self.spec.target == "ema":
            out["tau"] = self.tau
        return out

    def __repr__(self) -> str:
        time = f"lr={self.lr:g}, " if self.lr is not None and self.gradient == "expected" else ""
        return (f"NetworkRun({self.spec.label}, h={self.h}, gradient={self.gradient!r}, {time}"
                f"t in [{self.t[0]:g}, {self.t[-1]:g}] ({len(self.t)} records), {self.status})")

    def _repr_html_(self) -> str:
        states = list(self.values())
        rows = [[n, float(v[0].min()), float(v[0].max()), float(v[-1].min()), float(v[-1].max())]
                for n, v in self.values().items()]
        for name in ("misalignment", "commutator"):
            v = getattr(self, name)
            if v is not None:
                rows.append([name, float(v[0]), float(v[0]), float(v[-1]), float(v[-1])])
        time = f"lr = {self.lr:g}, " if self.lr is not None else ""
        return html_table(
            f"NetworkRun: {self.spec.label}, h = {self.h}, {self.gradient} gradient",
            ("mode values", f"min at t = {self.t[0]:g}", f"max at t = {self.t[0]:g}",
             f"min at t = {self.t[-1]:g}", f"max at t = {self.t[-1]:g}"), rows,
            [f"{time}{len(self.t)} records; {self.status}" + (f": {self.message}" if self.message else ""),
             f"states {', '.join(states)} in the initial eigenbasis"])


def _random_orthogonal(rng: np.random.Generator, h: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(h, h)))
    return q * np.sign(np.diag(r))


def aligned_init(h: int, spectra: Mapping[str, ArrayLike], *, seed: int = 0, d: int | None = None,
                 basis: ArrayLike | None = None, output_basis: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """Psi = U diag(p) U^T, Phi = U diag(sqrt(s)) V_h^T, Phi_a = U diag(tau sqrt(s)) V_h^T.

    U (h x h) is a random orthogonal basis (or ``output_basis``); V (d x d, default d = h) the
    input basis (random, or ``basis``: the data's eigenbasis, columns in mode order), V_h its
    first h columns: mode j of the network reads input direction v_j.

    Parameters
    ----------
    h : int
        The width.
    spectra : mapping str -> array_like
        "s" (required) and "p", "tau" (default ones), each of shape (h,).
    seed : int
        Seeds the random bases.
    d : int, optional
        The input dimension (>= h; default h).
    basis : array_like, optional
        The input basis V, an orthogonal (d, d) matrix; default random.
    output_basis : array_like, optional
        The output basis U, an orthogonal (h, h) matrix; default random. The losses of the
        batch's moments are sums over the embedding coordinates, so their aligned points
        have U a signed permutation (``simulate_network`` uses the identity).

    Returns
    -------
    dict of str -> numpy.ndarray
        "Psi", "Phi", "Phi_a" and the bases "U", "V".

    Raises
    ------
    ValueError
        Spectra of the wrong shape, non-finite or negative s, d < h or a basis that is not a
        d x d (an output basis not an h x h) orthogonal matrix.
    KeyError
        ``spectra`` has no "s".
    """
    d = h if d is None else int(d)
    if d < h:
        raise ValueError(f"the input dimension d = {d} must be >= the width h = {h}")
    rng = np.random.default_rng(seed)
    U = _random_orthogonal(rng, h)
    V = _random_orthogonal(rng, d)
    if basis is not None:
        V = _check_basis(basis, d)
    if output_basis is not None:
        U = _check_basis(output_basis, h, "output_basis")
    p = np.asarray(spectra.get("p", np.ones(h)), dtype=float)
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
    Vh = V[:, :h]
    return {
        "Psi": U @ np.diag(p) @ U.T,
        "Phi": U @ np.diag(phi) @ Vh.T,
        "Phi_a": U @ np.diag(tau * phi) @ Vh.T,
        "U": U,
        "V": V,
    }


def random_weights(spec: ModelSpec, h: int, *, d: int | None = None, scale: float = 1.0,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """A random (unaligned) start for ``simulate_network(..., init=...)``.

    Phi (h x d) has iid N(0, scale^2 / d) entries, so E[Phi Phi^T] = scale^2 I_h,
    E||Phi||_F^2 = scale^2 h and, for x ~ N(0, I_d), E||Phi x||^2 = scale^2 h; a learned
    predictor Psi (h x h) has iid N(0, scale^2 / h) entries (E[Psi^T Psi] = scale^2 I_h, not
    symmetric); an EMA target starts at Phi_a = Phi. F = Phi Phi^T and Psi then share no
    eigenvectors: the eigenmode ansatz does not hold at t = 0.

    Parameters
    ----------
    spec : ModelSpec
        The model: its predictor and target decide which weights are returned.
    h : int
        The width (>= 1).
    d : int, optional
        The input dimension (>= h; default h).
    scale : float
        The overall scale (> 0).
    seed : int
        Seeds the draw.

    Returns
    -------
    dict of str -> numpy.ndarray
        Exactly the weights the spec's network trains: "Phi", and "Psi" (learned predictor)
        and "Phi_a" (EMA target).

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec.
    ValueError
        h or d not an int >= 1, d < h, or a scale that is not a positive finite number.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    h = _positive_int("h", h)
    d = h if d is None else _positive_int("d", d)
    if d < h:
        raise ValueError(f"d must be >= the width h = {h}; got {d}")
    scale = _positive_float("scale", scale)
    rng = np.random.default_rng(seed)
    out = {"Phi": rng.normal(scale=scale / np.sqrt(d), size=(h, d))}
    if spec.predictor == "learned":
        out["Psi"] = rng.normal(scale=scale / np.sqrt(h), size=(h, h))
    if spec.target == "ema":
        out["Phi_a"] = out["Phi"].copy()
    return out


_SPECTRA_KEYS = ("s", "p", "tau")
_WEIGHT_KEYS = ("Phi", "Psi", "Phi_a")


def _weights_start(spec: ModelSpec, init: Mapping, h: int, d: int, V) -> dict:
    """The start of a weights mapping, checked: "Phi", "Psi", "Phi_a" as NumPy arrays (Psi as
    the spec builds it where it is not trained), U the eigenbasis of F = Phi Phi^T
    (eigenvalues descending) and the input basis V."""
    shapes = {"Phi": (h, d)}
    if spec.predictor == "learned":
        shapes["Psi"] = (h, h)
    if spec.target == "ema":
        shapes["Phi_a"] = (h, d)
    for k in init:
        if k not in shapes:
            why = ("spectra and weights cannot be mixed: give either " + ", ".join(map(repr, _SPECTRA_KEYS))
                   + " (an aligned start) or weights" if k in _SPECTRA_KEYS else
                   f"this model does not train it (predictor={spec.predictor!r}, target={spec.target!r})"
                   if k in _WEIGHT_KEYS else "unknown key")
            raise ValueError(f"init[{k!r}] is not allowed: {why}; the weights are "
                             + ", ".join(f"{n!r} {shape}" for n, shape in shapes.items()))
    out = {}
    for k, shape in shapes.items():
        if k not in init:
            if k == "Phi_a":
                continue
            raise ValueError(f"init[{k!r}] is missing: a weights start needs {k!r} of shape {shape}")
        try:
            v = np.array(init[k], dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"init[{k!r}] must be a real array of shape {shape}") from None
        if v.shape != shape:
            raise ValueError(f"init[{k!r}] must have shape {shape}; got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"init[{k!r}] must be finite (shape {shape})")
        out[k] = v
    out.setdefault("Phi_a", out["Phi"].copy())
    out.setdefault("Psi", np.eye(h))
    U = np.linalg.eigh(out["Phi"] @ out["Phi"].T)[1][:, ::-1]
    return {**out, "U": np.ascontiguousarray(U), "V": V}


def default_spectrum(h: int, *, alpha_p: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """A spread initial spectrum on the invariant manifold: p in [0.2, 1.0], s = p^2/alpha_p.

    Parameters
    ----------
    h : int
        The number of modes.
    alpha_p : float
        The predictor's learning-rate ratio (> 0), which fixes the manifold.
    seed : int
        Seeds the uniform draw of p (with ``seed + 1``).

    Returns
    -------
    dict of str -> numpy.ndarray
        {"p": descending, "s": p^2/alpha_p, "tau": ones}, each of shape (h,).

    Raises
    ------
    ValueError
        A negative h.
    """
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


def is_quadratic(spec: ModelSpec) -> bool:
    """True when the per-sample loss is quadratic in the samples (degree <= 1 in A, B, C):
    its Gaussian average is exact (``expected`` gradients) and depends on second moments only.
    False for the losses of the batch's moments (no per-sample form)."""
    if spec.batch_statistics:
        return False
    expr = spec.loss_expr
    return bool(expr.is_polynomial(A, B, C) and sp.Poly(expr, A, B, C).total_degree() <= 1)


def data_spectrum(samples: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(lam, V): the eigenvalues (descending) and eigenvectors (columns) of the second-moment
    matrix X^T X / n of a data set X (n x d), as the network's data model uses them.

    Parameters
    ----------
    samples : array_like
        The data X, shape (n, d), n >= 2.

    Returns
    -------
    tuple of numpy.ndarray
        (lam, V): lam of shape (d,) (clipped at 0), V of shape (d, d).

    Raises
    ------
    ValueError
        A non-finite or non-2-D array, or fewer than two samples.
    """
    X = np.asarray(samples, dtype=float)
    if X.ndim != 2 or X.shape[0] < 2 or not np.all(np.isfinite(X)):
        raise ValueError(f"samples must be a finite (n, d) array with n >= 2; got shape {X.shape}")
    lam, V = np.linalg.eigh(X.T @ X / X.shape[0])
    order = np.argsort(lam)[::-1]
    return np.clip(lam[order], 0.0, None), V[:, order]


def _check_params(spec: ModelSpec, params: Any, lam_given: bool) -> tuple[dict[str, float], Any]:
    """The scalar parameters the network reads, and params['lambda'] if given."""
    names = list(network_params(spec))
    allowed = names + (["lambda"] if spec.data == "spectrum" and not lam_given else [])
    if isinstance(params, Mapping) and "lambda" in params and "lambda" in allowed:
        by_name = check_param_names(params, allowed)
    else:
        by_name = check_param_names(
            params, names, " (the network computes its own norms and spectra; N_psi, N_phi, T, s_max are not "
            "parameters here; a data spectrum goes in lam= or params['lambda'] with data='spectrum')"
        )
    out = {}
    for n in names:
        v = by_name[n]
        if isinstance(v, bool) or not np.isscalar(v) or not np.isfinite(float(v)):
            raise ValueError(f"params[{n!r}] must be a finite scalar; got {v!r}")
        out[n] = float(v)
    for n, strict in (("sigma2", False), ("eta", False), ("alpha_p", True), ("beta", False), ("alpha", True), ("eps", False),
                      ("lambda_BT", False), ("lambda_inv", False), ("mu_var", False), ("nu_cov", False),
                      ("gamma", True), ("eps_var", False)):
        if n in out and (out[n] <= 0 if strict else out[n] < 0):
            raise ValueError(f"params[{n!r}] must be {'> 0' if strict else '>= 0'}; got {out[n]}")
    return out, by_name.get("lambda")


def _positive_int(name: str, v: Any, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}; got {v!r}")
    return int(v)


def _positive_float(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {v!r}")
    return float(v)


def simulate_network(
    spec: ModelSpec,
    params: Params,
    *,
    h: int = 32,
    t1: float = 6.0,
    dt: float | None = None,
    lr: float | None = None,
    batch: int = 4096,
    gradient: str = "auto",
    init: Mapping[str, ArrayLike] | None = None,
    n_records: int | None = None,
    record_every: int | None = None,
    lam: ArrayLike | None = None,
    samples: ArrayLike | None = None,
    basis: ArrayLike | None = None,
    d: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> NetworkRun:
    """Train the linear network of ``spec`` from an aligned start (or any weights) and record
    its spectra and how aligned its matrices are.

    Parameters
    ----------
    spec : ModelSpec; the network uses the TRUE per-sample loss of every option (predictor,
        stop-gradient, views, data, IsoLoss, any loss expression), or the TRUE loss of each
        batch for the losses of the batch's moments (Barlow Twins, VICReg, spectral
        contrastive: ``derivations.batch_loss_function``); ``norms``, ``moments`` and
        ``batch`` are approximations of the theory and do not matter here.
    params : sigma2, eta and, as the spec needs them, alpha_p (learned predictor), beta (EMA),
        alpha and eps (DirectPred), the loss's weights (lambda_BT; lambda_inv, mu_var, nu_cov,
        gamma, eps_var), lambda (data='spectrum': the data variances, length d, unless
        ``lam`` is given).
    h : width; the input dimension d defaults to h (or to the data's dimension).
    t1 : training time (discrete time: t = steps * lr, so t1 / lr steps).
    dt : step (learning rate) of the sampled gradient flow, default 0.01; not with ``lr``.
    lr : a finite learning rate: DISCRETE-time gradient descent W <- W + lr * flow(W), with a
        fresh batch per step ("sampled") or the exact expected-gradient map ("expected"),
        where the default continuous "expected" run integrates the flow.
    batch : samples per step ("sampled"); the batch of the batch statistics for the losses of
        the batch's moments (>= 2 for them).
    gradient : "sampled", "expected" (losses quadratic in the samples) or "auto" (expected
        when the loss is quadratic in the samples, sampled otherwise: always for the losses
        of the batch's moments, which train on real batch statistics).
    init : the start, decided by its keys. (a) Initial spectra {"s": (h,)[, "p": (h,),
        "tau": (h,)]} (p for a learned predictor, tau for EMA): the aligned start
        ``aligned_init(h, init, seed=seed, d=d, basis=basis)``; default
        ``default_spectrum(h, alpha_p=alpha_p)``. For the losses of the batch's moments (sums
        over the embedding coordinates) the aligned start has U = I: mode j is embedding
        coordinate j. (b) Weights {"Phi": (h, d)[, "Psi": (h, h),
        "Phi_a": (h, d)]} (any matrices, e.g. ``random_weights(spec, h)``): exactly the
        weights the spec trains, "Psi" for a learned predictor (required), "Phi_a" for an EMA
        target (default Phi). The basis U in which p, s, tau are recorded is then the
        eigenbasis of F = Phi Phi^T at the start (eigenvalues descending), and the input basis
        V is ``basis``, else the data's eigenbasis (``samples``), else the identity (a data
        spectrum lam then has mode j along the j-th coordinate). A mapping mixing both kinds
        is an error.
    n_records : number of record times from 0 to t1; step-based runs need the number of steps
        to be a multiple of n_records - 1. Default: 61 for the continuous expected flow, and
        every ceil(n_steps / 60) steps (plus the last) for step-based runs, so short runs
        such as t1 = 0.1 work.
    record_every : for step-based runs, record every k steps (and the last); not with n_records.
    lam : the data spectrum (data='spectrum'), length d; mode j has data variance lam[j].
    samples : a data set (n x d, centred): the views are augmentations x + e of its rows
        (drawn with replacement) instead of Gaussian inputs; its second-moment spectrum is the
        data spectrum and its eigenbasis the input basis V (the network is aligned with it).
    basis : the input basis V (d x d orthogonal, columns the data eigenvectors in mode order);
        default random (or the data's eigenbasis with ``samples``).
    d : the input dimension (>= h) when neither lam nor samples fix it.
    seed : seeds the bases, the default spectrum and the batches.
    progress : a progress bar over the training steps for step-based runs (stderr on a
        terminal only, after a few seconds); False: never.

    Returns
    -------
    NetworkRun (record times, p, s, tau, spectra, norms, status) and, at every record, the
    alignment observables of ``alignment_observables``: the commutator of F and the
    (symmetrised) predictor, the angles between their top-k eigenspaces, the off-diagonal
    mass of W_P in F's current eigenbasis (and of Phi_a Phi^T for an EMA target) and, for a
    data spectrum, data set or given ``basis``, the angles between the top-k right singular
    vectors of Phi and the first k data eigenvectors (``data_angles``). For the losses of the
    batch's moments also the mean batch loss between records (``batch_loss``) and the
    off-diagonal mass of the moment matrices in the embedding coordinates
    (``moment_offdiag``).

    Raises
    ------
    TypeError
        ``spec`` is not a ModelSpec.
    ValueError
        Missing or unknown parameters, bad sizes or times, a spectrum of the wrong length or
        for isotropic data, ``gradient='expected'`` for a loss not quadratic in the samples
        (or a loss of the batch's moments), a batch of 1 for a loss of the batch's moments,
        a t1 that is not a whole number of steps, or an init with weights that are missing,
        not trained by the spec, of the wrong shape or not finite, or mixed with spectra.
    """
    import jax.numpy as jnp

    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a derivations.ModelSpec; got {type(spec).__name__}")
    check_progress(progress)
    prm, lam_param = _check_params(spec, params, lam is not None)
    h = _positive_int("h", h)
    batch = _positive_int("batch", batch, 2 if spec.batch_statistics else 1)
    t1 = _positive_float("t1", t1)
    gradient, lr, dt, n_records, record_every = _check_run(spec, gradient, lr, dt, n_records, record_every)
    X, lam_d, basis = _data_model(spec, h, d, lam if lam is not None else lam_param, samples, basis, lam is not None or lam_param is not None)
    d = lam_d.shape[0]

    if init is not None and not isinstance(init, Mapping):
        raise TypeError(f"init must be a mapping (spectra or weights); got {type(init).__name__}")
    data_known = samples is not None or spec.data == "spectrum" or basis is not None
    if init is not None and any(k in _WEIGHT_KEYS for k in init):
        V = _check_basis(basis, d) if basis is not None else np.eye(d)
        start = _weights_start(spec, init, h, d, V)
        spectra = None
    else:
        spectra = init if init is not None else default_spectrum(h, alpha_p=prm.get("alpha_p", 1.0), seed=seed)
        start = aligned_init(h, spectra, seed=seed, d=d, basis=basis,
                             output_basis=np.eye(h) if spec.batch_statistics else None)
    lam_j = jnp.asarray(lam_d)
    cov = view_covariance(spec, lam_j, prm, basis=jnp.asarray(start["V"]))
    weights0 = _initial_weights(spec, start)
    record = _recorder(spec, prm, jnp.asarray(start["U"]), cov, d, jnp.asarray(start["V"]) if data_known else None)
    step_based = gradient == "sampled" or lr is not None
    step = lr if lr is not None else dt
    steps, ts = _record_times(t1, step if step_based else None, n_records, record_every)
    flows = _flows(spec, prm, gradient, cov, batch, lam_j, jnp.asarray(start["V"]), X)
    if step_based:
        recs, final = _run_steps(flows, record, weights0, steps, step, seed, progress)
    else:
        recs, final = _run_flow(flows["expected"], record, weights0, t1, ts)
    return _network_run(spec, prm, h, gradient, lr, dt, ts, steps, recs, _final_weights(spec, prm, final, start),
                        lam_d, spectra)


def _initial_weights(spec: ModelSpec, start: Mapping[str, np.ndarray]) -> dict:
    """The trained weights at the aligned start: Phi, and Psi (learned predictor) and Phi_a
    (EMA target) as the spec has them."""
    import jax.numpy as jnp

    weights0 = {"Phi": jnp.asarray(start["Phi"])}
    if spec.predictor == "learned":
        weights0["Psi"] = jnp.asarray(start["Psi"])
    if spec.target == "ema":
        weights0["Phi_a"] = jnp.asarray(start["Phi_a"])
    return weights0


def _final_weights(spec: ModelSpec, prm: Mapping[str, float], final: Mapping, start: Mapping[str, np.ndarray]) -> dict:
    """Every final weight matrix as NumPy (the predictor and target as the spec builds them
    where they are not trained) with the bases U and V."""
    final_np = {k: np.asarray(v) for k, v in final.items()}
    final_np.setdefault("Psi", np.asarray(predictor_matrix(spec, final, prm)))
    final_np.setdefault("Phi_a", final_np["Phi"])
    final_np.update({"U": start["U"], "V": start["V"]})
    return final_np


def _check_basis(basis: ArrayLike, d: int, name: str = "basis") -> np.ndarray:
    """The input basis as a (d, d) orthogonal NumPy matrix, or ValueError."""
    V = np.asarray(basis, dtype=float)
    if V.shape != (d, d) or not np.allclose(V.T @ V, np.eye(d), atol=FLOAT_RTOL):
        what = "columns = data eigenvectors" if name == "basis" else "columns = the modes' output directions"
        raise ValueError(f"{name} must be an orthogonal ({d}, {d}) matrix ({what})")
    return V


def _network_run(spec: ModelSpec, prm: dict, h: int, gradient: str, lr: float | None, dt: float | None, ts, steps,
                 recs: Mapping, final_np: dict, lam_d: np.ndarray, spectra: Mapping | None) -> NetworkRun:
    """The NetworkRun of the records, "failed" where a recorded spectrum or norm is not finite."""
    recs = {k: np.asarray(v) for k, v in recs.items()}
    finite = all(np.all(np.isfinite(recs[k])) for k in ("p", "s", "psi_norm2", "phi_norm2"))
    if spectra is None:
        tau0 = recs["tau"][0] if spec.target == "ema" else np.ones(h)
    else:
        tau0 = np.asarray(spectra.get("tau", np.ones(h)), dtype=float)
    init_spectra = {"p": recs["p"][0], "s": recs["s"][0], "tau": tau0}
    return NetworkRun(
        t=np.asarray(ts, dtype=float), **recs, spec=spec, params=prm, h=h, gradient=gradient,
        status="finished" if finite else "failed",
        message="" if finite else "non-finite values in the network state (collapse to a zero output?)",
        final=final_np, lam=np.asarray(lam_d[:h]), lr=lr if lr is not None else (dt if gradient == "sampled" else None),
        steps=steps, init=init_spectra,
    )


def _check_run(spec: ModelSpec, gradient: str, lr, dt, n_records, record_every) -> tuple:
    """(gradient, lr, dt, n_records, record_every) checked, "auto" resolved."""
    if lr is not None and dt is not None:
        raise ValueError("give either dt (the sampled flow's step) or lr (discrete time), not both")
    if lr is not None:
        lr = _positive_float("lr", lr)
    dt = 0.01 if dt is None else _positive_float("dt", dt)
    if n_records is not None:
        n_records = _positive_int("n_records", n_records, 2)
    if record_every is not None:
        record_every = _positive_int("record_every", record_every)
        if n_records is not None:
            raise ValueError("give either n_records or record_every, not both")
    if gradient == "auto":
        gradient = "expected" if is_quadratic(spec) else "sampled"
    if gradient not in ("sampled", "expected"):
        raise ValueError(f"gradient={gradient!r} is not allowed; choose 'sampled', 'expected' or 'auto'")
    if gradient == "expected" and spec.batch_statistics:
        raise ValueError(
            f"gradient='expected' is not available for {spec.label}: a loss of the batch's moments is trained on "
            "real batch statistics; use gradient='sampled' (or 'auto'), with batch= the batch size"
        )
    if gradient == "expected" and not is_quadratic(spec):
        raise ValueError(
            f"gradient='expected' needs a closed-form Gaussian average: only the Euclidean loss and other losses "
            f"quadratic in the samples have one; {spec.label} does not"
        )
    if gradient == "expected" and lr is None and record_every is not None:
        raise ValueError("record_every is for step-based runs (gradient='sampled' or lr=...); use n_records")
    return gradient, lr, dt, n_records, record_every


def _data_model(spec: ModelSpec, h: int, d: int | None, lam_d, samples, basis, spectrum_given: bool) -> tuple:
    """(data set or None, data spectrum (d,), input basis or None) from the arguments."""
    X = None
    if samples is not None:
        if spectrum_given:
            raise ValueError("give either samples (a data set) or a spectrum lam, not both")
        X = np.asarray(samples, dtype=float)
        lam_d, V_data = data_spectrum(X)
        basis = V_data if basis is None else basis
    elif lam_d is not None:
        if spec.data != "spectrum":
            raise ValueError("a data spectrum (lam or params['lambda']) needs ModelSpec(data='spectrum')")
        lam_d = np.asarray(lam_d, dtype=float)
        if lam_d.ndim != 1 or not np.all(np.isfinite(lam_d)) or np.any(lam_d < 0):
            raise ValueError(f"lam must be a 1-D array of finite values >= 0; got shape {lam_d.shape}")
    elif spec.data == "spectrum":
        raise ValueError("ModelSpec(data='spectrum') needs the data spectrum: lam=array or params['lambda']")
    if lam_d is None:
        lam_d = np.ones(h if d is None else _positive_int("d", d))
    elif d is not None and d != lam_d.shape[0]:
        raise ValueError(f"d = {d} does not match the data dimension {lam_d.shape[0]}")
    if lam_d.shape[0] < h:
        raise ValueError(f"the width h = {h} must be <= the input dimension d = {lam_d.shape[0]}")
    return X, lam_d, basis


def _recorder(spec: ModelSpec, prm: Mapping, U, cov, d: int, data_basis=None):
    """record(weights) -> the recorded quantities: eigenmode projections p, s, tau in the
    start's basis U, the spectra, the norms, the misalignment, the output norms and the
    alignment observables (``data_angles`` when the data basis is given)."""
    import jax.numpy as jnp

    ema = spec.target == "ema"

    def off(M, n2):
        return jnp.sqrt(jnp.sum((M - jnp.diag(jnp.diag(M))) ** 2) / n2)

    def record(w):
        Phi = w["Phi"]
        Phi_t = w["Phi_a"] if ema else Phi
        W = predictor_matrix(spec, w, prm)
        F = Phi @ Phi.T
        Pu, Fu = U.T @ W @ U, U.T @ F @ U
        p, s = jnp.diag(Pu), jnp.diag(Fu)
        a_u = jnp.diag(U.T @ Phi_t @ Phi.T @ U)
        w2 = jnp.sum(W**2)
        S11, S22 = cov[:d, :d], cov[d:, d:]
        WPhi = W @ Phi
        return {
            "p": p, "s": s, "tau": jnp.where(s > 0, a_u / jnp.where(s > 0, s, 1.0), jnp.nan),
            "p_eig": jnp.sort(jnp.linalg.eigvalsh(0.5 * (W + W.T)))[::-1],
            "s_eig": jnp.sort(jnp.linalg.eigvalsh(F))[::-1],
            "psi_norm2": w2, "phi_norm2": jnp.sum(Phi**2),
            "misalignment": jnp.maximum(off(Pu, w2), off(Fu, jnp.sum(F**2))),
            "a_norm2": jnp.sum((WPhi @ S11) * WPhi), "b_norm2": jnp.sum((Phi_t @ S22) * Phi_t),
            **{k: v for k, v in alignment_observables(spec, w, prm, data_basis=data_basis).items()
               if k != "target_offdiag" or ema},
            **({"moment_offdiag": moment_offdiag(Phi, Phi_t), "cross_eig": cross_eig(Phi, Phi_t)}
               if spec.batch_statistics else {}),
        }

    def cross_eig(Phi, Phi_t):
        C = Phi @ cov[:d, d:] @ Phi_t.T
        return jnp.linalg.eigvalsh(0.5 * (C + C.T))

    def moment_offdiag(Phi, Phi_t):
        moments = (Phi @ cov[:d, d:] @ Phi_t.T, Phi @ cov[:d, :d] @ Phi.T, Phi_t @ cov[d:, d:] @ Phi_t.T)
        return jnp.stack([off(M, jnp.sum(M**2)) for M in moments])

    return record


def _record_times(t1: float, step: float | None, n_records: int | None, record_every: int | None) -> tuple:
    """(recorded step indices or None, recorded times): for a step-based run, a whole number
    of steps of size ``step``; for the continuous flow, n_records times from 0 to t1."""
    if step is None:
        return None, np.linspace(0.0, t1, n_records or _DEFAULT_RECORDS)
    n_steps = int(round(t1 / step))
    if n_steps < 1 or abs(n_steps * step - t1) > RTOL * t1:
        raise ValueError(f"t1 = {t1:g} must be a multiple of the step {step:g} (a whole number of steps; "
                         f"t1 / step = {t1 / step:g})")
    if n_records is not None:
        if n_steps % (n_records - 1):
            raise ValueError(f"t1 / step = {n_steps} steps must be a multiple of n_records - 1 = {n_records - 1}")
        k = n_steps // (n_records - 1)
    else:
        k = record_every if record_every is not None else max(1, -(-n_steps // (_DEFAULT_RECORDS - 1)))
    steps = record_steps(n_steps, k)
    return steps, steps * step


def _flows(spec: ModelSpec, prm: Mapping, gradient: str, cov, batch: int, lam_j, V, X) -> dict:
    """{"expected": w -> flow(w)} or {"sampled": (w, key) -> (flow(w), batch loss or None) on a
    fresh batch, "traced": whether the batch loss is recorded}: the weight flow of the true loss
    by autodiff, expected (closed-form Gaussian average) or sampled."""
    import jax
    import jax.numpy as jnp

    if gradient == "expected":
        exp_loss = expected_loss(spec)

        def expected_flow(w):
            g = jax.grad(lambda w_, f_: exp_loss(w_, f_, prm, cov))(w, w)
            return weight_flow(spec, w, g, prm)

        return {"expected": expected_flow}
    batch_loss = batch_loss_function(spec) if spec.batch_statistics else None
    per_sample = None if batch_loss is not None else sample_loss(spec)
    Xj = None if X is None else jnp.asarray(X)
    sigma = float(np.sqrt(prm["sigma2"]))

    def draw(key):
        if Xj is None:
            return sample_views(spec, key, batch, lam_j, prm, basis=V)
        ki, k1, k2 = jax.random.split(key, 3)
        x = Xj[jax.random.randint(ki, (batch,), 0, Xj.shape[0])]
        x2 = x + sigma * jax.random.normal(k2, x.shape)
        x1 = x + sigma * jax.random.normal(k1, x.shape) if spec.views == "both" else x
        return x1, x2

    def sampled_flow(w, key):
        x1, x2 = draw(key)
        if batch_loss is not None:
            value, g = jax.value_and_grad(lambda w_, f_: batch_loss(w_, f_, x1, x2, prm))(w, w)
            return weight_flow(spec, w, g, prm), value
        g = jax.grad(lambda w_, f_: jnp.mean(per_sample(w_, f_, x1, x2, prm)))(w, w)
        return weight_flow(spec, w, g, prm), None

    return {"sampled": sampled_flow, "traced": batch_loss is not None}


def _run_flow(expected_flow, record, weights0: dict, t1: float, ts: np.ndarray) -> tuple[dict, dict]:
    """The continuous expected flow integrated by diffrax (Tsit5, rtol 1e-10): records and end weights."""
    import diffrax
    import jax
    import jax.numpy as jnp

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, w, args: expected_flow(w)), diffrax.Tsit5(), 0.0, t1, None, weights0,
        saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12),
        max_steps=1_000_000, throw=False,
    )
    return jax.vmap(record)(sol.ys), {k: v[-1] for k, v in sol.ys.items()}


def _run_steps(flows: dict, record, weights0: dict, steps: np.ndarray, step: float, seed: int,
               progress: bool) -> tuple[dict, dict]:
    """Discrete steps W <- W + step * flow(W) (a fresh batch per step when sampled), scanned
    between the recorded steps: records and end weights."""
    import jax
    import jax.numpy as jnp

    flow = flows.get("expected")
    sampled = flows.get("sampled")
    traced = flows.get("traced", False)

    def one_step(w, key):
        f, value = (flow(w), None) if flow is not None else sampled(w, key)
        return {k: w[k] + step * f[k] for k in w}, value

    @jax.jit
    def segment(w, keys):
        w, values = jax.lax.scan(one_step, w, keys)
        rec = record(w)
        if traced:
            rec["batch_loss"] = jnp.mean(values)
        return w, rec

    key = jax.random.PRNGKey(seed)
    first = record(weights0)
    if traced:
        key, sub = jax.random.split(key)
        first["batch_loss"] = sampled(weights0, sub)[1]
    w, rows = weights0, [first]
    with progress_bar(int(steps[-1]), "simulate_network", progress, unit="step") as bar:
        for length in np.diff(steps):
            key, sub = jax.random.split(key)
            w, rec = segment(w, jax.random.split(sub, int(length)))
            rows.append(rec)
            bar.update(int(length))
    return {k: jnp.stack([r[k] for r in rows]) for k in rows[0]}, w
