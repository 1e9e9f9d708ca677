"""ncdyn.dynamics: numerics on derived eigenmode systems, and the ``ncdyn`` command line.

Importing it enables float64 in JAX (``jax_enable_x64``).
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

__all__: list[str] = []
