"""JAX's persistent compilation cache serves integrate's lane kernel: a second process that
integrates the same system loads the compiled kernels from disk instead of compiling them.

The kernel holds no host callback (which JAX refuses to cache); the diffrax path does unless
equinox leaves its runtime checks out (EQX_ON_ERROR=nan). The cache is the user's process-wide
choice (JAX_COMPILATION_CACHE_DIR), never set by the toolkit, so each process here is a fresh
subprocess with the cache switched on in its environment.
"""

import json
import os
import subprocess
import sys

SCRIPT = """
import json, logging
import numpy as np
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
log = logging.getLogger("jax._src.compiler")
log.setLevel(logging.DEBUG)
log.addHandler(Keep())
from derivations import ODESystem
from dynamics import integrate
lorenz = ODESystem.from_equations({"x": "s*(y - x)", "y": "x*(r - z) - y", "z": "x*y - b*z"}, params=("s", "r", "b"))
rho = np.linspace(0.0, 28.0, 5)
end = integrate(lorenz, [1.0, 1.0, 1.0], (0, 1), {"s": 10.0, "r": rho, "b": 8 / 3}, t_eval=[1.0], progress=False)
saved = integrate(lorenz, [1.0, 1.0, 1.0], (0, 1), {"s": 10.0, "r": rho, "b": 8 / 3}, progress=False)
import diffrax
plain = integrate(lorenz, [1.0, 1.0, 1.0], (0, 1), {"s": 10.0, "r": rho, "b": 8 / 3}, t_eval=[1.0], progress=False,
                  solver=diffrax.Tsit5())
kernel = [m for m in records if "'jit_run'" in m]
hits, misses = (sum(word in m.lower() for m in kernel) for word in ("cache hit", "cache miss"))
print(json.dumps({"hits": hits, "misses": misses, "all_misses": sum("cache miss" in m.lower() for m in records),
                  "final": end.final.tolist(), "gap": float(np.max(np.abs(saved.final - end.final)))}))
"""


def test_a_second_process_loads_the_kernels_from_the_cache(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
               EQX_ON_ERROR="nan")
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["misses"] == 2 and first["hits"] == 0  # the end-state kernel and the saving one
    assert second["hits"] == 2 and second["misses"] == 0
    # everything else compiled, the diffrax path (a solver object) included, came from the cache
    assert first["all_misses"] > 2 and second["all_misses"] == 0
    assert second["final"] == first["final"] and first["gap"] < 1e-10
