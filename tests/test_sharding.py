"""Batches sharded over several devices (jax.sharding): on CPU with two forced host devices in
a subprocess, a parameter sweep gives exactly the single-device results."""

import json
import os
import subprocess
import sys

import numpy as np

from derivations import ODESystem
from dynamics import integrate
from dynamics._sharding import batch_shardings, local_devices

SCRIPT = """
import json, numpy as np, jax
import dynamics
from derivations import ODESystem
from dynamics import integrate
lv = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"))
a = np.linspace(0.5, 1.5, 21)
sol = integrate(lv, [1.0, 0.5], (0, 5), {"a": a, "b": 0.5, "c": 0.8, "d": 0.3}, n_save=6, progress=False)
print(json.dumps({"devices": len(jax.local_devices()), "y": sol.y.tolist(), "steps": sol.n_steps.tolist()}))
"""


def test_one_device_is_the_plain_path():
    assert batch_shardings(local_devices()[:1]) == (None, None)


def test_two_host_devices_give_the_unsharded_results():
    lv = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"))
    a = np.linspace(0.5, 1.5, 21)
    here = integrate(lv, [1.0, 0.5], (0, 5), {"a": a, "b": 0.5, "c": 0.8, "d": 0.3}, n_save=6, progress=False)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["devices"] == 2
    assert np.array_equal(np.array(res["y"]), here.y)
    assert np.array_equal(np.array(res["steps"]), here.n_steps)
    # and the sweep is right: x' = a x - b x y conserves V = d x - c ln x + b y - a ln y
    x, y = here.y[..., 0], here.y[..., 1]
    V = 0.3 * x - 0.8 * np.log(x) + 0.5 * y - a[:, None] * np.log(y)
    assert np.max(np.ptp(V, axis=1)) < 1e-6
