"""ncdyn: symbolic-numeric analysis of non-contrastive self-supervised learning dynamics.

One import for the whole public API: ``import ncdyn`` gives the names of both packages,
``derivations`` (SymPy: models, derived eigenmode systems, the generic ODESystem, verify) and
``dynamics`` (numerics on any system: integrate, equilibria, bifurcation, portraits, the
network simulator), and the packages themselves as ``ncdyn.derivations`` / ``ncdyn.dynamics``.

    >>> import ncdyn
    >>> system = ncdyn.derive(ncdyn.ModelSpec("euclidean"))
    >>> system.reduce().order
    3

The two packages keep their own top-level names (``import derivations``, ``import dynamics``
work as before); ``ncdyn`` is the distribution's name and the import that cannot clash with
an unrelated ``dynamics`` package from the package index.
"""

from importlib import metadata as _metadata

import derivations
import dynamics
from derivations import *  # noqa: F401,F403
from derivations import __all__ as _derivations_all
from dynamics import *  # noqa: F401,F403
from dynamics import __all__ as _dynamics_all

try:
    __version__ = _metadata.version("ncdyn")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["derivations", "dynamics", "__version__", *_derivations_all, *_dynamics_all]
