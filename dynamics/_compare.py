"""compare(): eigenmode predictions against the trained linear network, width by width."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from derivations import ModelSpec, derive

from ._integrate import integrate
from ._network import NetworkRun, default_spectrum, simulate_network, spectral_norms

__all__ = ["compare", "Comparison", "approximations_for"]


def approximations_for(loss: str, target: str) -> dict[str, ModelSpec]:
    """The eigenmode approximations of one network: label -> ModelSpec.

    Euclidean: the exact eigenmode system. Cosine: exact moments and leading-order moments,
    both with self-consistent norms, and exact moments with norms frozen at their initial values.
    """
    if loss == "euclidean":
        return {"euclidean": ModelSpec("euclidean", target)}
    return {
        "exact, self-consistent norms": ModelSpec("cosine", target, "self-consistent", "exact"),
        "leading, self-consistent norms": ModelSpec("cosine", target, "self-consistent", "leading"),
        "exact, norms frozen at t=0": ModelSpec("cosine", target, "frozen", "exact"),
    }


@dataclass(frozen=True)
class Comparison:
    """Network runs and eigenmode predictions at each width, with their errors.

    errors[h][label] holds, maximised over the record times:
      "p", "s":      relative L2 error of the mode values, ||x_ode - x_net|| / ||x_net||;
      "p_shape":     L2 error of the scale-free predictor spectrum p / ||p|| (what the cosine
                     loss sees);
      "psi_norm2":   relative error of ||Psi||_F^2.
    Each entry also carries "status" (the ODE's Solution status).
    """

    widths: tuple[int, ...]
    networks: dict[int, NetworkRun]
    predictions: dict[int, dict[str, np.ndarray]]
    errors: dict[int, dict[str, dict[str, float]]]
    params: dict
    info: dict = field(default_factory=dict)

    def table(self) -> str:
        """The errors as a markdown table."""
        labels = list(next(iter(self.errors.values())))
        lines = ["| h | approximation | max rel err p | max rel err s | max err p/‖p‖ | max rel err ‖Ψ‖² | status |",
                 "|---|---|---|---|---|---|---|"]
        for h in self.widths:
            for label in labels:
                e = self.errors[h][label]
                lines.append(
                    f"| {h} | {label} | {e['p']:.3g} | {e['s']:.3g} | {e['p_shape']:.3g} | {e['psi_norm2']:.3g} | {e['status']} |"
                )
        return "\n".join(lines)

    def best(self) -> dict[int, str]:
        """Per width, the approximation with the smallest predictor error."""
        return {h: min(errs, key=lambda k: errs[k]["p"]) for h, errs in self.errors.items()}


def compare(
    loss: str,
    target: str,
    params: Mapping[str, float],
    *,
    widths: Sequence[int] = (16, 64, 256),
    t1: float = 3.0,
    dt: float = 0.01,
    batch: int = 4096,
    n_records: int = 31,
    seed: int = 0,
    approximations: Mapping[str, ModelSpec] | None = None,
    progress: bool = False,
) -> Comparison:
    """Train the network at each width and integrate every eigenmode approximation from the
    same aligned initial spectrum (``network.default_spectrum``); report their errors.

    params: sigma2, eta, alpha_p (and beta for the EMA target). The K-mode systems use K = h.
    """
    spec = ModelSpec(loss, target)
    approximations = dict(approximations or approximations_for(loss, target))
    widths = tuple(widths)
    if not widths or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in widths):
        raise ValueError(f"widths must be positive ints; got {widths!r}")
    networks, predictions, errors = {}, {}, {}
    iterator = widths
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(widths, desc=f"compare {loss}/{target}")
    for h in iterator:
        init = default_spectrum(h, params["alpha_p"], seed)
        net = simulate_network(spec, params, h=h, t1=t1, dt=dt, batch=batch, init=init, n_records=n_records, seed=seed)
        networks[h] = net
        predictions[h], errors[h] = {}, {}
        norms0 = spectral_norms(init, params["sigma2"])
        for label, approx in approximations.items():
            modes = derive(approx).modes(h)
            values = {k: v for k, v in params.items() if k in modes.param_names}
            if "N_psi" in modes.param_names:  # frozen norms: their values at t = 0
                values["N_psi"], values["N_phi"] = norms0["N_psi"], norms0["N_phi"]
            y0 = modes.pack(**{k: init[k] for k in modes.per_mode.state_names})
            sol = integrate(modes, y0, (0.0, t1), values, t_eval=net.t, events=("blow_up",))
            spectra = modes.unpack(sol.y)
            predictions[h][label] = spectra
            errors[h][label] = _errors(net, spectra, sol)
    return Comparison(widths, networks, predictions, errors, dict(params), {"t1": t1, "dt": dt, "batch": batch})


def _errors(net: NetworkRun, ode: dict[str, np.ndarray], sol) -> dict[str, float]:
    def rel(a, b):
        return float(np.max(np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)))

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    psi2_ode = np.sum(ode["p"] ** 2, axis=-1)
    ok = sol.valid
    return {
        "p": rel(ode["p"][ok], net.p[ok]),
        "s": rel(ode["s"][ok], net.s[ok]),
        "p_shape": float(np.max(np.linalg.norm(unit(ode["p"][ok]) - unit(net.p[ok]), axis=-1))),
        "psi_norm2": float(np.max(np.abs(psi2_ode[ok] - net.psi_norm2[ok]) / net.psi_norm2[ok])),
        "status": str(sol.status),
    }
