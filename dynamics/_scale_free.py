"""Fixed points in scale-free variables: the equilibria of a scale-invariant flow's direction
flow (``derivations.direction_flow``), where the scale-free state settles while weight decay
shrinks the scale."""

from __future__ import annotations

from derivations import DynamicalSystem, Params, direction_flow

from ._equilibria import EquilibriumSet, equilibria

__all__ = ["scale_free_equilibria"]


def scale_free_equilibria(
    system: DynamicalSystem,
    params: Params,
    *,
    n_starts: int | None = None,
    seed: int = 0,
) -> EquilibriumSet:
    """Equilibria of the direction flow of a system that declares scaling and weight decay:
    ``equilibria(direction_flow(system), params)``, with the weight decay dropped from
    ``params`` (it only moves the scale).

    Each equilibrium is a direction on the unit sphere ``N(u) = sum_i |u_i|^(2/w_i) = 1`` of the
    states off the manifold (for K modes of a learned predictor, ``p / ||p||``), classified on
    the sphere's tangent space: the scaling ray, the symmetry's zero mode, is left out.

    Parameters
    ----------
    system : DynamicalSystem
        A flow declaring ``scaling`` and ``weight_decay`` (``derive(spec).modes(K)`` of a
        scale-invariant loss, its exact flow, or a system built by hand).
    params : mapping str -> float
        The system's parameters; the weight decay may be given and is ignored.
    n_starts : int, optional
        Newton starts (``equilibria``'s default if None).
    seed : int
        For the random starts.

    Returns
    -------
    EquilibriumSet
        Of the ``DirectionSystem``: ``complete`` False, and ``method`` says where Newton searched.

    Raises
    ------
    TypeError
        ``system`` is not a DynamicalSystem.
    ValueError
        The system is a map, declares no scaling or no weight decay, or has no scaled state off
        its manifold; bad params or ``n_starts``.
    """
    flow = direction_flow(system)
    given = {k: v for k, v in params.items() if k != system.weight_decay} if hasattr(params, "items") else params
    return equilibria(flow, given, n_starts=n_starts, seed=seed)
