"""A sweep split over two JAX processes (``jax.distributed`` on CPU, two local subprocesses)
and gathered with ``across_processes`` equals the single-process run, item for item."""

import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dynamics
from derivations import ModelSpec, derive
from dynamics import across_processes, integrate, process_slice

ETAS = np.linspace(0.0, 0.3, 21)
T_EVAL = [0.0, 5.0, 20.0, 150.0]

SCRIPT = r"""
import pickle, sys
import jax
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]),
                           initialization_timeout=60)
import numpy as np
from derivations import ModelSpec, derive
from dynamics import across_processes, integrate

system = derive(ModelSpec("euclidean"))
etas = np.linspace(0.0, 0.3, 21)
seen = []

def sweep(y0, prm):
    seen.append(len(y0))
    return integrate(system, y0, (0, 150), prm, t_eval=[0.0, 5.0, 20.0, 150.0], progress=False)

y0 = np.stack([np.full(21, 0.6), np.full(21, 0.36)], axis=1)
out = {"processes": jax.process_count(), "index": jax.process_index()}
out["solution"] = across_processes(sweep, y0, {"sigma2": 0.2, "eta": etas, "alpha_p": 1.0})
out["seen"] = seen
out["arrays"] = across_processes(lambda a: {"twice": 2 * a, "name": np.array([f"item {int(v)}" for v in a])},
                                 np.arange(5.0))
out["one"] = across_processes(lambda a: a + 1, np.array([[1.0, 2.0]]))

def fails_on_1(a):
    if jax.process_index() == 1:
        raise ArithmeticError("no result here")
    return a

try:
    across_processes(fails_on_1, np.arange(4.0))
    out["error"] = None
except RuntimeError as err:
    out["error"] = str(err)
with open(sys.argv[3], "wb") as f:
    pickle.dump(out, f)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _reference():
    system = derive(ModelSpec("euclidean"))
    y0 = np.stack([np.full(21, 0.6), np.full(21, 0.36)], axis=1)
    return integrate(system, y0, (0, 150), {"sigma2": 0.2, "eta": ETAS, "alpha_p": 1.0}, t_eval=T_EVAL, progress=False)


def test_two_processes_gather_the_single_process_sweep(tmp_path: Path):
    root = str(Path(dynamics.__file__).resolve().parent.parent)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    env.pop("XLA_FLAGS", None)
    address = f"localhost:{_free_port()}"
    outs = [tmp_path / f"out{i}.pkl" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, address, str(i), str(outs[i])], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.monotonic() + 120
    logs = []
    try:
        here = _reference()  # while the two processes start
        for p in procs:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            logs.append(err[-3000:])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(logs)
    for i, path in enumerate(outs):
        with open(path, "rb") as f:
            res = pickle.load(f)
        assert res["processes"] == 2 and res["index"] == i
        # 21 items split 11 + 10; each process integrated only its own part.
        assert res["seen"] == [11 if i == 0 else 10]
        sol = res["solution"]
        # The same solver path per trajectory (a vmapped batch advances each lane on its own
        # step sizes), so the gathered sweep equals the single-process one bit for bit.
        assert sol == here
        assert np.array_equal(sol.y, here.y) and np.array_equal(sol.n_steps, here.n_steps)
        assert list(sol.status) == list(here.status)
        np.testing.assert_array_equal(res["arrays"]["twice"], 2 * np.arange(5.0))
        assert list(res["arrays"]["name"]) == [f"item {k}" for k in range(5)]
        np.testing.assert_array_equal(res["one"], [[2.0, 3.0]])
        assert res["error"] is not None and "process 1" in res["error"] and "ArithmeticError" in res["error"]
    # and the sweep is right: below eta = 1/(4c) (c = 1.2) the mode settles at Tian's
    # p+ = (1 + sqrt(1 - 4 c eta)) / (2 c) from p0 = 0.6, above it collapses towards 0.
    c = 1.2
    below = ETAS < 1 / (4 * c) - 0.01
    p_plus = (1 + np.sqrt(1 - 4 * c * ETAS[below])) / (2 * c)
    np.testing.assert_allclose(here.final[below, 0], p_plus, rtol=1e-5)
    assert np.all(np.abs(here.final[ETAS > 1 / (4 * c) + 0.01, 0]) < 0.05)


def test_one_process_is_the_plain_call():
    here = _reference()
    y0 = np.stack([np.full(21, 0.6), np.full(21, 0.36)], axis=1)
    system = derive(ModelSpec("euclidean"))
    calls = []

    def sweep(y, prm):
        calls.append((y, prm))
        return integrate(system, y, (0, 150), prm, t_eval=T_EVAL, progress=False)

    params = {"sigma2": 0.2, "eta": ETAS, "alpha_p": 1.0}
    assert across_processes(sweep, y0, params) == here
    assert len(calls) == 1 and calls[0][0] is y0 and calls[0][1] is params


def test_process_slice_splits_contiguously_and_unevenly():
    for n in (0, 1, 2, 7, 21, 100):
        for p in (1, 2, 3, 8):
            parts = [process_slice(n, i, p) for i in range(p)]
            assert np.array_equal(np.concatenate([np.arange(n)[s] for s in parts]), np.arange(n))
            sizes = [s.stop - s.start for s in parts]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
            assert [len(a) for a in np.array_split(np.arange(n), p)] == sizes


@pytest.mark.parametrize("args, error, words", [
    ((42, np.arange(3.0)), TypeError, "run must be callable"),
    ((len,), ValueError, "at least one batched argument"),
    ((len, 3.0, {"a": 1.0}), ValueError, "at least one batched argument"),
    ((len, np.zeros(3), {"a": np.zeros(4)}), ValueError, "batched[1]['a']: 4"),
    ((len, np.zeros(0)), ValueError, "no items"),
    ((len, object(), np.zeros(3)), TypeError, "batched[0]"),
    ((len, [[1.0], [1.0, 2.0]]), TypeError, "batched[0]"),
])
def test_bad_input_names_the_argument(args, error, words):
    with pytest.raises(error) as info:
        across_processes(*args)
    assert words in str(info.value)


@pytest.mark.parametrize("args, error, words", [
    ((5.0, 0, 1), TypeError, "n must be an int"),
    ((-1, 0, 1), ValueError, "n must be >= 0"),
    ((4, 2, 2), ValueError, "process_index must be in [0, 2)"),
    ((4, 0, 0), ValueError, "process_count must be >= 1"),
])
def test_process_slice_bad_input(args, error, words):
    with pytest.raises(error) as info:
        process_slice(*args)
    assert words in str(info.value)
