"""The model specification: which loss, target, norm treatment and moment approximation."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["ModelSpec"]

_ALLOWED = {
    "loss": ("euclidean", "cosine"),
    "target": ("simsiam", "ema"),
    "norms": ("frozen", "self-consistent"),
    "moments": ("exact", "leading"),
}


@dataclass(frozen=True)
class ModelSpec:
    """One variant of the linear non-contrastive model.

    loss:    "euclidean"  J = 1/2 E||Psi Phi x1 - sg(Phi_a x2)||^2
             "cosine"     J = -E[<a, sg(b)> / (||a|| ||b||)],  a = Psi Phi x1, b = Phi_a x2
    target:  "simsiam"    Phi_a = Phi (stop-gradient copy)
             "ema"        dPhi_a/dt = beta (Phi - Phi_a)
    norms:   cosine only. "frozen": ||a|| -> N_psi, ||b|| -> N_phi inside the per-sample
             gradient, held as parameters. "self-consistent": N_psi^2 = E||a||^2 and
             N_phi^2 = E||b||^2 computed from the spectrum (closed by ``system.modes(K)``).
    moments: cosine only. "exact": the remaining Gaussian averages are taken exactly
             (Isserlis). "leading": the scalar <a, b> is replaced by its mean (self-averaging
             at large width), which drops the O(1/h) terms 2 tau p^2 s^2.

    For the Euclidean loss ``norms`` and ``moments`` are irrelevant; they are normalised to
    their defaults so that equal models compare (and cache) equal.
    """

    loss: str = "euclidean"
    target: str = "simsiam"
    norms: str = "frozen"
    moments: str = "exact"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str):
                raise TypeError(
                    f"ModelSpec.{f.name} must be a str, one of {_ALLOWED[f.name]}; "
                    f"got {type(value).__name__} {value!r}"
                )
            if value not in _ALLOWED[f.name]:
                raise ValueError(
                    f"ModelSpec.{f.name}={value!r} is not allowed; "
                    f"choose one of {', '.join(map(repr, _ALLOWED[f.name]))}"
                )
        if self.loss == "euclidean":
            object.__setattr__(self, "norms", "frozen")
            object.__setattr__(self, "moments", "exact")

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``cosine/simsiam (frozen norms, exact moments)``."""
        base = f"{self.loss}/{self.target}"
        if self.loss == "cosine":
            base += f" ({self.norms} norms, {self.moments} moments)"
        return base

    @staticmethod
    def allowed() -> dict[str, tuple[str, ...]]:
        """The allowed values of every field."""
        return dict(_ALLOWED)
