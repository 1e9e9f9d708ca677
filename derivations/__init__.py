"""ncdyn.derivations: eigenmode ODEs of non-contrastive learning, derived by SymPy, and the
generic ODESystem every analysis in ``dynamics`` takes.

    >>> from derivations import ODESystem
    >>> lv = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"))
    >>> lv.is_polynomial
    True

    >>> from derivations import ModelSpec, derive
    >>> system = derive(ModelSpec(loss="cosine", target="simsiam"))
    >>> system.reduce().order
    6
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import symbols  # noqa: E402
from ._interface import TIMES, Constraint, Diffusion, DynamicalSystem, EigenmodeModel, Switching, Symmetry  # noqa: E402
from ._stochastic import StochasticSystem  # noqa: E402
from ._direction import DirectionSystem, direction_flow  # noqa: E402
from ._cache import cache_dir, clear_cache  # noqa: E402
from ._derive import derive  # noqa: E402
from ._invariants import ConservationLaw, spectral_sum  # noqa: E402
from ._losses import is_scale_invariant, per_sample_gradient, per_sample_loss  # noqa: E402
from ._moments import gaussian_expectation, wick_moment  # noqa: E402
from ._spec import ModelSpec  # noqa: E402
from ._coupled import ModeSystem, couple  # noqa: E402
from ._eigenmode import EigenmodeSystem, display_form, latex  # noqa: E402
from ._exact import QUADRATURE, ExactEigenmodes, ExactModeSystem, exact_factors  # noqa: E402
from ._exact_map import ExactMap, ExactModeMap  # noqa: E402
from ._matrix import MatrixFlowSystem, matrix_gradient_moments, spectral_power  # noqa: E402
from ._matrix_exact import MATRIX_QUADRATURE, cosine_gradient_moment  # noqa: E402
from ._matrix_moments import wick_matrix_moment  # noqa: E402
from ._expansion import expansion_terms  # noqa: E402
from ._system import FrozenMap, ODESystem, freeze, reduce  # noqa: E402
from ._names import Names  # noqa: E402
from ._export import to_xppaut  # noqa: E402
from ._verify import VerifyReport, verify  # noqa: E402
from ._typing import Params  # noqa: E402
from ._truth import (  # noqa: E402
    BATCH_LOSS_PARAMS,
    batch_loss_function,
    expected_loss,
    network_params,
    predictor_matrix,
    sample_loss,
    sample_views,
    view_covariance,
    weight_flow,
)
from ._batch_montecarlo import BatchMonteCarlo, monte_carlo_batch  # noqa: E402
from ._batch_losses import BATCH_LOSSES, BatchLoss, batch_loss  # noqa: E402
from ._diffusion import NOISE_PARAMS, GradientNoise, gradient_noise  # noqa: E402
from ._noise_montecarlo import NoiseMonteCarlo, monte_carlo_noise  # noqa: E402
from ._montecarlo import AlignedPoint, random_point  # noqa: E402


__all__ = [
    "DynamicalSystem",
    "EigenmodeModel",
    "Constraint",
    "Switching",
    "Symmetry",
    "Diffusion",
    "StochasticSystem",
    "DirectionSystem",
    "direction_flow",
    "TIMES",
    "ODESystem",
    "Params",
    "reduce",
    "freeze",
    "couple",
    "FrozenMap",
    "Names",
    "to_xppaut",
    "ModelSpec",
    "derive",
    "EigenmodeSystem",
    "ModeSystem",
    "ExactEigenmodes",
    "ExactModeSystem",
    "ExactMap",
    "ExactModeMap",
    "MatrixFlowSystem",
    "matrix_gradient_moments",
    "spectral_power",
    "MATRIX_QUADRATURE",
    "cosine_gradient_moment",
    "wick_matrix_moment",
    "exact_factors",
    "expansion_terms",
    "QUADRATURE",
    "display_form",
    "latex",
    "ConservationLaw",
    "gaussian_expectation",
    "wick_moment",
    "per_sample_loss",
    "per_sample_gradient",
    "is_scale_invariant",
    "spectral_sum",
    "symbols",
    "network_params",
    "sample_loss",
    "expected_loss",
    "view_covariance",
    "sample_views",
    "predictor_matrix",
    "weight_flow",
    "batch_loss_function",
    "BATCH_LOSS_PARAMS",
    "monte_carlo_batch",
    "BATCH_LOSSES",
    "BatchLoss",
    "batch_loss",
    "BatchMonteCarlo",
    "gradient_noise",
    "GradientNoise",
    "NOISE_PARAMS",
    "monte_carlo_noise",
    "NoiseMonteCarlo",
    "random_point",
    "AlignedPoint",
    "cache_dir",
    "clear_cache",
    "verify",
    "VerifyReport",
]
