"""dynamics.ssl: the numerics specific to non-contrastive self-supervised learning, on top of
the generic ones: the matrix-level linear network trained on the true loss (the ground truth),
theories against the network (``compare``), the real-data experiment, the paper's claims
(``reproduce``) and the ``ncdyn`` command. Nothing in the generic modules of ``dynamics``
imports this package; ``dynamics`` re-exports its public names.
"""

from ._alignment import alignment_observables, commutator, eigenspace_angles, offdiagonal_mass, principal_angles
from ._compare import EXACT_LABEL, MAX_EXACT_WIDTH, Comparison, Reference, approximations_for, compare
from ._ensemble import NetworkSeeds, network_seeds
from ._lr_limit import LIMIT_KINDS, LearningRateLimit, learning_rate_limit
from ._network import NetworkRun, aligned_init, data_spectrum, default_spectrum, random_weights, simulate_network
from ._plots import plot_spectra
from ._realdata import DigitsData, RealDataRun, collapse_threshold, digits_data, digits_experiment, plot_real_data
from ._reproduce import reproduce
from ._transverse import TransverseSpectrum, aligned_state, transverse_spectrum

__all__ = [
    "simulate_network",
    "network_seeds",
    "NetworkSeeds",
    "learning_rate_limit",
    "LearningRateLimit",
    "LIMIT_KINDS",
    "NetworkRun",
    "aligned_init",
    "random_weights",
    "alignment_observables",
    "commutator",
    "principal_angles",
    "eigenspace_angles",
    "offdiagonal_mass",
    "transverse_spectrum",
    "TransverseSpectrum",
    "aligned_state",
    "default_spectrum",
    "data_spectrum",
    "compare",
    "Comparison",
    "Reference",
    "approximations_for",
    "EXACT_LABEL",
    "MAX_EXACT_WIDTH",
    "digits_data",
    "DigitsData",
    "digits_experiment",
    "RealDataRun",
    "collapse_threshold",
    "plot_real_data",
    "plot_spectra",
    "reproduce",
]
