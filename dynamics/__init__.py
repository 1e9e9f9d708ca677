"""ncdyn.dynamics: numerics on any ODESystem (derived or built by hand), the network simulator, the CLI.

    integrate(system, y0, t_span, params)   batched ODE integration of any system (JAX/diffrax or SciPy)
    flow(system, t)                         the pure JAX flow map (y0, params) -> y(t): jit, vmap, grad
    across_processes(run, *batched)         a sweep split over the processes of a multi-host JAX job, gathered
    Collapse, BlowUp, Steady, LeaveBox, Condition   terminating events, one definition for both backends
    simulate_network(spec, params)          the matrix-level linear network, true losses
    network_seeds(spec, params)             many SGD seeds of one network: the spread minibatch noise makes
    linear_noise / noise_spread             the linear-noise covariance of a stochastic system (stationary, over time)
    compare(spec, params)                   eigenmode theories against the network (or recorded trajectories)
    iterate(system, y0, n_steps, params)    a discrete-time map (finite learning rate), lax.scan
    digits_experiment(loss)                 a linear SimSiam network on real data (sklearn digits) vs theory
    equilibria(system, params)              every equilibrium, classified (exact where polynomial)
    threshold / bifurcation / regimes       equilibria across parameters (a sweep is (name, values))
    passage_time / step_time                closed-form times of a one-state flow (the steps of stepwise learning)
    continue_equilibrium / continue_curve / continue_cycle   pseudo-arclength continuation: branches of
                                            equilibria and fixed points, fold and Hopf curves in two
                                            parameters, families of periodic orbits
    learning_rate_limit(model, params)      the learning rate where a model's finite-lr fixed point loses stability
    basins(system, grid, params)            where trajectories from a grid of states go
    phase_plane(system, params)             the phase plane as data (field, nullclines, orbits)
    scale_free_equilibria(modes, params)    where a scale-invariant flow settles as weight decay shrinks it
    portrait, plot_phase_plane, plot_flow_1d, plot_bifurcation, plot_regimes, plot_basins, plot_spectra   figures
    interactive_portrait(system, sliders, params)   a portrait with parameter sliders (ipywidgets, Jupyter)
    reproduce(out)                          the paper's claims as figures and a report

Every analysis reads ``analysis(system, <its own inputs>, params, *, options)``; see the
"API conventions" page of the documentation. Importing it enables float64 in JAX
(``jax_enable_x64``).
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from ._basins import Basins, basins  # noqa: E402
from ._linear_noise import LinearNoise, NoiseSpread, linear_noise, noise_spread  # noqa: E402
from ._sde import SDE_SOLVERS  # noqa: E402
from ._bifurcation import BIFURCATION_KINDS, Bifurcation, BifurcationPoint, Branch, bifurcation  # noqa: E402
from ._codim2 import BifurcationCurve, continue_curve, fold_location  # noqa: E402
from ._continuation import continue_equilibrium  # noqa: E402
from ._cycles import CycleFamily, continue_cycle  # noqa: E402
from ._distributed import across_processes, process_slice  # noqa: E402
from ._roots import REGIMES, SCALE, BatchRoots, Regimes, ShrinkingNorms, regimes, roots_batch, shrinking_norms  # noqa: E402
from ._threshold import Threshold, threshold  # noqa: E402
from ._passage import PassageTime, passage_time, step_time  # noqa: E402
from ._equilibria import Equilibrium, EquilibriumCurve, EquilibriumSet, equilibria  # noqa: E402
from ._checks import JAX_SOLVERS, SCIPY_METHODS  # noqa: E402
from ._events import BUILTIN_EVENTS, BlowUp, Collapse, Condition, Event, EventContext, LeaveBox, Steady  # noqa: E402
from ._flow import flow  # noqa: E402
from ._integrate import integrate  # noqa: E402
from ._interactive import InteractivePortrait, interactive_portrait  # noqa: E402
from ._iterate import ITERATION_STATUSES, Iteration, iterate  # noqa: E402
from ._phase_plane import Orbit, PhasePlane, SaddleManifold, phase_plane  # noqa: E402
from ._plots import plot_basins, plot_bifurcation, plot_flow_1d, plot_phase_plane, plot_regimes, portrait  # noqa: E402
from ._scale_free import scale_free_equilibria  # noqa: E402
from ._outcomes import STATUSES  # noqa: E402
from ._solution import Solution  # noqa: E402
from ._filippov import MAX_SEGMENTS, SWITCH_OFFSET, Segment  # noqa: E402
from ._stability import Classification, classify, jacobian_at  # noqa: E402
from .ssl import (  # noqa: E402
    EXACT_LABEL,
    MAX_EXACT_WIDTH,
    Comparison,
    DigitsData,
    NetworkRun,
    NetworkSeeds,
    RealDataRun,
    Reference,
    aligned_init,
    alignment_observables,
    approximations_for,
    collapse_threshold,
    commutator,
    compare,
    data_spectrum,
    default_spectrum,
    digits_data,
    digits_experiment,
    eigenspace_angles,
    offdiagonal_mass,
    transverse_spectrum,
    TransverseSpectrum,
    aligned_state,
    LearningRateLimit,
    learning_rate_limit,
    plot_real_data,
    plot_spectra,
    principal_angles,
    random_weights,
    reproduce,
    simulate_network,
    network_seeds,
)

__all__ = [
    "integrate",
    "flow",
    "across_processes",
    "process_slice",
    "Event",
    "EventContext",
    "Collapse",
    "BlowUp",
    "Steady",
    "LeaveBox",
    "Condition",
    "Solution",
    "Segment",
    "SWITCH_OFFSET",
    "MAX_SEGMENTS",
    "STATUSES",
    "BUILTIN_EVENTS",
    "JAX_SOLVERS",
    "SCIPY_METHODS",
    "simulate_network",
    "NetworkRun",
    "network_seeds",
    "NetworkSeeds",
    "linear_noise",
    "LinearNoise",
    "noise_spread",
    "NoiseSpread",
    "SDE_SOLVERS",
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
    "compare",
    "Comparison",
    "approximations_for",
    "EXACT_LABEL",
    "scale_free_equilibria",
    "MAX_EXACT_WIDTH",
    "Reference",
    "iterate",
    "Iteration",
    "ITERATION_STATUSES",
    "data_spectrum",
    "digits_data",
    "DigitsData",
    "digits_experiment",
    "RealDataRun",
    "collapse_threshold",
    "plot_real_data",
    "equilibria",
    "Equilibrium",
    "EquilibriumCurve",
    "EquilibriumSet",
    "classify",
    "Classification",
    "jacobian_at",
    "roots_batch",
    "BatchRoots",
    "threshold",
    "PassageTime",
    "passage_time",
    "step_time",
    "Threshold",
    "bifurcation",
    "Bifurcation",
    "BifurcationPoint",
    "Branch",
    "BIFURCATION_KINDS",
    "continue_equilibrium",
    "continue_curve",
    "fold_location",
    "BifurcationCurve",
    "continue_cycle",
    "CycleFamily",
    "learning_rate_limit",
    "LearningRateLimit",
    "regimes",
    "Regimes",
    "REGIMES",
    "SCALE",
    "shrinking_norms",
    "ShrinkingNorms",
    "basins",
    "Basins",
    "phase_plane",
    "PhasePlane",
    "Orbit",
    "SaddleManifold",
    "plot_phase_plane",
    "portrait",
    "interactive_portrait",
    "InteractivePortrait",
    "plot_flow_1d",
    "plot_bifurcation",
    "plot_regimes",
    "plot_basins",
    "plot_spectra",
    "reproduce",
]
