"""The matrix flow linearised across the aligned manifold: alignment rates per mode pair.

The aligned manifold M holds the weights that share eigenvectors (W_P, F = Phi Phi^T and the
target diagonal in one basis, Phi's input directions the data's eigenvectors). It is invariant
under the matrix flow, and the eigenmode systems are the flow on it. Whether training aligns is
whether M attracts: the linearisation of the matrix flow across M.

In the eigenbasis an aligned state is diagonal (Psi = diag(p), Phi = [diag(sqrt s), 0],
Phi_a = [diag(tau sqrt s), 0]). Joint sign flips of feature k and input k fix it and act on the
entry (i, j) of every weight by sigma_i sigma_j, so the linearisation splits into one block per
mode pair {i, j} on the coordinates (Psi_ij, Psi_ji, Phi_ij, Phi_ji, Phi_a_ij, Phi_a_ji) (those
the model has), and one block per feature i and input-only direction k > h on (Phi_ik, Phi_a_ik).
Every block comes from m forward-mode derivatives of the right-hand side (one per coordinate
slot, all pairs at once), so the cost is that of a few right-hand sides at any width.

Inside each block, the rotations of the common basis (the system's ``symmetry``: feature
rotation in the (i, j) plane, and input rotation where the data covariance allows it) move
ALONG M: they are tangent to the orbit, not transverse. The alignment rates are the eigenvalues
of the block on the quotient by those directions (exact at an equilibrium, where they are null
vectors; elsewhere the frozen-coefficient rate of the moment). The commutator [F, W_s] is, to
first order, the linear form (p_j - p_i) dF_ij - (s_j - s_i) dW_s,ij of the pair's coordinates, so
it decays at the slowest rate among the quotient eigenvectors it sees (W_s = (Psi + Psi^T)/2,
the symmetrised predictor that ``commutator`` measures).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from derivations import MatrixFlowSystem, Params

from .._tolerance import COARSE_RTOL, FLOAT_RTOL, RTOL
from .._value import Value

__all__ = ["TransverseSpectrum", "transverse_spectrum", "aligned_state"]


def aligned_state(system: MatrixFlowSystem, spectra: Mapping[str, ArrayLike]) -> np.ndarray:
    """The flat state of the diagonal aligned weights in the data basis:
    Psi = diag(p), Phi = [diag(sqrt s), 0], Phi_a = [diag(tau sqrt s), 0].

    Parameters
    ----------
    system : MatrixFlowSystem
        The matrix flow.
    spectra : mapping str -> array_like
        "s" (h values >= 0) and, as the model has them, "p" and "tau" (default ones).

    Returns
    -------
    numpy.ndarray
        The flat state (n_states,).

    Raises
    ------
    TypeError
        ``system`` is not a MatrixFlowSystem.
    ValueError
        A spectrum of the wrong shape, not finite, or s < 0; unknown keys; d < h.
    """
    if not isinstance(system, MatrixFlowSystem):
        raise TypeError(f"system must be a derivations.MatrixFlowSystem; got {type(system).__name__}")
    if system.d < system.h:
        raise ValueError(f"an aligned state needs d >= h (one input direction per mode); the system has "
                         f"h = {system.h}, d = {system.d}")
    if not isinstance(spectra, Mapping):
        raise TypeError(f"spectra must be a dict of mode values; got {type(spectra).__name__}")
    h, d = system.h, system.d
    unknown = set(spectra) - {"p", "s", "tau"}
    if unknown or "s" not in spectra:
        raise ValueError(f"spectra must have 's' and may have 'p', 'tau'; got {sorted(spectra)}")
    values = {}
    for k in ("p", "s", "tau"):
        v = np.asarray(spectra.get(k, np.ones(h)), dtype=float)
        if v.shape != (h,) or not np.all(np.isfinite(v)):
            raise ValueError(f"spectra[{k!r}] must be {h} finite values; got shape {v.shape}")
        values[k] = v
    if np.any(values["s"] < 0):
        raise ValueError("spectra['s'] must be >= 0 (eigenvalues of Phi Phi^T)")
    phi = np.sqrt(values["s"])
    Phi = np.zeros((h, d))
    Phi[np.arange(h), np.arange(h)] = phi
    weights = {"Psi": np.diag(values["p"]), "Phi": Phi, "Phi_a": Phi * values["tau"][:, None]}
    return system.pack(**{n: weights[n] for n in system.weight_names})


@dataclass(frozen=True, repr=False, eq=False)
class TransverseSpectrum(Value):
    """The linearisation of a matrix flow across the aligned manifold, per mode pair.

    Attributes
    ----------
    pairs : numpy.ndarray
        (n, 2) int: (i, j) with i < j < h a feature pair, or (i, k) with k >= h a feature and an
        input direction that no feature reads (d > h).
    coordinates : tuple of tuple of str
        Per block kind ("pair", "input"), the names of its coordinates, e.g.
        ("Psi_ij", "Psi_ji", "Phi_ij", "Phi_ji").
    blocks : tuple of numpy.ndarray
        The Jacobian block of each pair (m x m).
    eigenvalues : tuple of numpy.ndarray
        Each block's eigenvalues on the quotient by the orbit directions.
    orbit_dims : numpy.ndarray
        (n,) how many of each block's directions are rotations of the common basis.
    rates : numpy.ndarray
        (n,) the largest real part of each pair's quotient eigenvalues: the pair's alignment
        rate (negative: it aligns like exp(rate t); positive: it misaligns).
    commutator_rates : numpy.ndarray
        (n,) the largest real part among the quotient eigenvectors the commutator's linear form
        sees (NaN where it sees none: equal eigenvalues, an input-only pair, or a predictor that
        is a function of F).
    stable : bool
        Every rate below zero: the aligned manifold attracts here (transversally stable).
    at_equilibrium : bool
        The state is an equilibrium: the largest entry of f below 1e-6 (``COARSE_RTOL``) of the
        Jacobian's scale (then the orbit
        directions are null vectors and the rates are the linearisation's; otherwise they are
        the frozen-coefficient rates of this moment).
    residual : float
        The largest entry of f at the state, relative to the largest Jacobian entry.
    spectra : dict
        The aligned state's mode values.
    params : dict
        The parameters.
    """

    pairs: np.ndarray
    coordinates: tuple
    blocks: tuple
    eigenvalues: tuple
    orbit_dims: np.ndarray
    rates: np.ndarray
    commutator_rates: np.ndarray
    stable: bool
    at_equilibrium: bool
    residual: float
    spectra: dict
    params: dict

    @property
    def slowest(self) -> float:
        """The largest pair rate: the asymptotic alignment rate of the whole network."""
        return float(np.max(self.rates))

    @property
    def commutator_rate(self) -> float:
        """The largest commutator rate over the pairs (NaN if the commutator sees none)."""
        finite = self.commutator_rates[np.isfinite(self.commutator_rates)]
        return float(np.max(finite)) if finite.size else float("nan")

    def __repr__(self) -> str:
        where = "at an equilibrium" if self.at_equilibrium else "off equilibrium (frozen-coefficient rates)"
        verdict = "transversally stable" if self.stable else "transversally unstable"
        return (f"TransverseSpectrum({len(self.pairs)} pairs, slowest rate {self.slowest:.4g}, "
                f"commutator rate {self.commutator_rate:.4g}, {verdict}, {where})")


def _slots(system: MatrixFlowSystem) -> tuple[list, list]:
    """Coordinate slots of a feature pair and of an input-only pair: (group, transposed?)."""
    pair = [(g, flip) for g in system.weight_names for flip in (False, True)]
    inputs = [(g, False) for g in system.weight_names if g != "Psi"]
    return pair, inputs


def transverse_spectrum(system: MatrixFlowSystem, spectra: Mapping[str, ArrayLike], params: Params) -> TransverseSpectrum:
    """Alignment rates: the matrix flow linearised across the aligned manifold at the aligned
    state of ``spectra`` (see the module docstring).

    Parameters
    ----------
    system : MatrixFlowSystem
        The matrix flow of a model.
    spectra : mapping str -> array_like
        The aligned state's mode values ("s"; "p", "tau" as the model has them), as
        ``aligned_state`` reads them.
    params : mapping str -> float
        The parameters, checked with ``system.check_params``.

    Returns
    -------
    TransverseSpectrum

    Raises
    ------
    TypeError, ValueError
        As ``aligned_state`` and ``check_params``.
    """
    import jax
    import jax.numpy as jnp

    y0 = aligned_state(system, spectra)
    prm = system.check_params(params)
    h, d = system.h, system.d
    f = system.to_jax(checked=False)
    P = {k: jnp.asarray(float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float)) for k, v in prm.items()}
    pair_slots, input_slots = _slots(system)
    iu, ju = np.triu_indices(h, 1)
    ii, kk = np.meshgrid(np.arange(h), np.arange(h, d), indexing="ij")
    ii, kk = ii.ravel(), kk.ravel()

    def tangent(group, rows, cols):
        t = {g: np.zeros(shape) for g, shape in system.state_layout}
        t[group][rows, cols] = 1.0
        return system.pack(**t)

    tangents = [tangent(g, ju, iu) if flip else tangent(g, iu, ju) for g, flip in pair_slots]
    tangents += [tangent(g, ii, kk) for g, _ in input_slots]
    tangents = jnp.asarray(np.stack(tangents)) if tangents else jnp.zeros((0, system.n_states))
    rhs = jax.jit(lambda y: f(0.0, y, P))
    f0 = np.asarray(rhs(jnp.asarray(y0)))
    along = jax.jit(lambda v: jax.jvp(rhs, (jnp.asarray(y0),), (v,))[1])
    columns = np.stack([np.asarray(along(v)) for v in tangents]) if len(tangents) else np.zeros((0, system.n_states))
    gens = np.asarray(system.symmetry.generators(jnp.asarray(y0), P))
    n_feat = h * (h - 1) // 2

    columns_w, gens_w = system.unpack(columns), system.unpack(gens)  # every block reads entries of these

    def read(weights, k, group, i, j):
        return weights[group][k, i, j]

    scale = max(np.max(np.abs(columns)) if columns.size else 0.0, np.finfo(float).tiny)
    residual = float(np.max(np.abs(f0))) / scale if f0.size else 0.0
    at_eq = residual < COARSE_RTOL
    w0 = system.unpack(y0)
    s = np.asarray(spectra["s"], dtype=float)
    p = w0["Psi"].diagonal() if "Psi" in w0 else None
    pairs, blocks, eigs, dims, rates, crates = [], [], [], [], [], []
    feat_index = {(a, b): m for m, (a, b) in enumerate(zip(iu, ju))}
    inp_pairs = [(k, l) for k in range(d) for l in range(k + 1, d)]
    inp_index = {pq: m for m, pq in enumerate(inp_pairs)}
    for kind, slots, index_pairs in (("pair", pair_slots, list(zip(iu, ju))), ("input", input_slots, list(zip(ii, kk)))):
        offset = 0 if kind == "pair" else len(pair_slots)
        for i, j in index_pairs:
            coords = [(g, j, i) if flip else (g, i, j) for g, flip in slots]
            J = np.array([[read(columns_w, offset + c, *coords[r]) for c in range(len(coords))] for r in range(len(coords))])
            T = []
            if kind == "pair":
                T.append([read(gens_w, feat_index[(i, j)], *co) for co in coords])
            if (i, j) in inp_index:
                T.append([read(gens_w, n_feat + inp_index[(i, j)], *co) for co in coords])
            T = np.array(T).reshape(-1, len(coords))
            Q, r = _complement(T)
            A = Q.T @ J @ Q
            ev, vecs = np.linalg.eig(A) if A.size else (np.zeros(0, complex), np.zeros((0, 0)))
            ell = _commutator_form(system, kind, coords, i, j, p, s)
            if ell is not None and ev.size:
                seen = np.abs(ell @ (Q @ vecs)) > RTOL * max(np.linalg.norm(ell), np.finfo(float).tiny)
                crate = float(np.max(ev.real[seen])) if np.any(seen) else np.nan
            else:
                crate = np.nan
            pairs.append((i, j))
            blocks.append(J)
            eigs.append(ev)
            dims.append(r)
            rates.append(float(np.max(ev.real)) if ev.size else np.nan)
            crates.append(crate)
    rates = np.array(rates)
    tol = FLOAT_RTOL * scale
    return TransverseSpectrum(
        pairs=np.array(pairs, dtype=int).reshape(-1, 2),
        coordinates=(tuple(_name(g, f) for g, f in pair_slots), tuple(_name(g, False) for g, _ in input_slots)),
        blocks=list(blocks), eigenvalues=list(eigs), orbit_dims=np.array(dims, dtype=int),
        rates=rates, commutator_rates=np.array(crates), stable=bool(np.all(rates < -tol)),
        at_equilibrium=bool(at_eq), residual=residual,
        spectra={k: np.asarray(v, dtype=float) for k, v in spectra.items()}, params=dict(prm),
    )


def _name(group: str, flip: bool) -> str:
    return f"{group}_{'ji' if flip else 'ij'}"


def _complement(T: np.ndarray) -> tuple[np.ndarray, int]:
    """An orthonormal basis of the orthogonal complement of the rows of T, and their rank."""
    m = T.shape[1]
    if T.size == 0:
        return np.eye(m), 0
    u, sv, vt = np.linalg.svd(T)
    r = int(np.sum(sv > FLOAT_RTOL * max(sv.max(), np.finfo(float).tiny)))
    return vt[r:].T, r


def _commutator_form(system, kind, coords, i, j, p, s):
    """The first-order commutator [F, W_s]_ij (W_s = (Psi + Psi^T)/2, what ``commutator``
    measures) as a linear form on the pair's coordinates: (p_j - p_i) dF_ij - (s_j - s_i) dW_s,ij
    with dF_ij = sqrt(s_j) dPhi_ij + sqrt(s_i) dPhi_ji and dW_s,ij = (dPsi_ij + dPsi_ji)/2.
    None where the commutator is identically zero (W a function of F, or no predictor) or the
    pair is input-only."""
    if kind != "pair" or p is None:
        return None
    ell = np.zeros(len(coords))
    for c, (g, a, b) in enumerate(coords):
        if g == "Phi":  # dF_ij = sqrt(s_j) dPhi_ij + sqrt(s_i) dPhi_ji
            ell[c] = (p[j] - p[i]) * np.sqrt(s[b])
        elif g == "Psi":  # dW_s,ij = (dPsi_ij + dPsi_ji) / 2
            ell[c] = -(s[j] - s[i]) / 2
    return ell if np.any(ell) else None
