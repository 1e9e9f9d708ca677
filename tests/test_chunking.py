"""integrate's batching machinery: chunks, batch-size buckets, traced times and tolerances,
the end-state-only path, progress and chunk arguments, the memory bound.

References are closed forms (the logistic and the exponential solutions), independent of the
code under test; chunking must change nothing, bit for bit.
"""

import numpy as np
import pytest

import dynamics._batch as db
from derivations import ODESystem
from dynamics import Collapse, integrate

LOGISTIC = ODESystem.from_equations({"x": "r*x*(1 - x/K)"}, params=("r", "K"))
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


def logistic(x0, r, K, t):
    """x(t) = K / (1 + (K/x0 - 1) exp(-r t))."""
    return K / (1 + (K / x0 - 1) * np.exp(-r * t))


def test_chunks_change_nothing_and_match_the_closed_form():
    """37 trajectories (per-trajectory r) in chunks of 4 (10 chunks, the last padded) and in
    one bucket: identical results, both on the closed form."""
    rng = np.random.default_rng(3)
    x0, r = rng.uniform(0.05, 2.0, (37, 1)), rng.uniform(0.2, 2.0, 37)
    t = np.linspace(0, 4, 9)
    one = integrate(LOGISTIC, x0, (0, 4), {"r": r, "K": 1.5}, t_eval=t, progress=False, **TIGHT)
    chunked = integrate(LOGISTIC, x0, (0, 4), {"r": r, "K": 1.5}, t_eval=t, chunk_size=4, progress=False, **TIGHT)
    assert np.array_equal(one.y, chunked.y) and np.array_equal(one.n_steps, chunked.n_steps)
    assert np.array_equal(one.status, chunked.status)
    exact = logistic(x0, r[:, None], 1.5, t[None, :])
    assert np.max(np.abs(one.y[..., 0] - exact)) < 1e-8


def test_end_state_only_path_agrees_with_the_saving_path():
    """t_eval=[t1] saves only the end state (a separate compiled path): the same final states
    and, where a Collapse event ends the run early, the same event time and status."""
    decay = ODESystem.from_equations({"x": "-k*x"}, params=("k",), collapse=("x",))
    k = np.array([0.5, 2.0, 3.0])
    kw = dict(events=(Collapse(1e-3),), progress=False, **TIGHT)
    end = integrate(decay, [[1.0]] * 3, (0, 4), {"k": k}, t_eval=[4.0], **kw)
    saved = integrate(decay, [[1.0]] * 3, (0, 4), {"k": k}, t_eval=[0.0, 4.0], **kw)
    assert list(end.status) == list(saved.status) == ["finished", "collapsed", "collapsed"]
    # x = exp(-k t) reaches 1e-3 at t = ln(1000) / k
    assert np.allclose(end.event_t[1:], np.log(1e3) / k[1:], rtol=1e-8)
    assert np.allclose(end.final, saved.final, rtol=1e-12, atol=1e-15)
    assert abs(end.final[0, 0] - np.exp(-2.0)) < 1e-9
    assert end.valid[0, 0] and not end.valid[1:, 0].any()


def test_varied_calls_compile_once():
    """On the per-lane diffrax path (a diffrax solver object): different t1, t0, tolerances,
    t_eval values (same length) and batch sizes in one bucket reuse one compiled solver: the
    cache of compiled chunks gains one entry in all."""
    import diffrax

    sys_ = ODESystem.from_equations({"x": "-c*x + d"}, params=("c", "d"))
    before = db._compiled.cache_info().misses
    for n, t1, rtol, t0 in [(5, 2.0, 1e-8, 0.0), (7, 3.0, 1e-9, 0.5), (8, 1.0, 1e-6, 0.0), (6, 5.0, 1e-10, 1.0)]:
        sol = integrate(sys_, np.ones((n, 1)), (t0, t1), {"c": 2.0, "d": 3.0}, n_save=11, rtol=rtol,
                        atol=rtol * 1e-2, solver=diffrax.Tsit5(), progress=False)
        # x' = -c x + d: x = d/c + (x0 - d/c) exp(-c (t - t0))
        exact = 1.5 + (1 - 1.5) * np.exp(-2.0 * (sol.t - t0))
        assert np.max(np.abs(sol.y[..., 0] - exact)) < 100 * rtol
    assert db._compiled.cache_info().misses - before == 1


def test_chunk_memory_is_bounded():
    """The automatic chunk keeps its saved output below CHUNK_BYTES for any batch size and
    grid length (at least one trajectory per chunk)."""
    devices = ()
    for B, n, n_t in [(10**6, 3, 201), (10**7, 20_000, 201), (10**5, 2, 10**5), (3, 3, 2)]:
        lanes = db._plan(B, n, n_t, devices, None)
        assert lanes >= 1
        assert lanes == 1 or lanes * (n_t + 1) * n * 8 <= db.CHUNK_BYTES
        assert lanes <= max(db.MIN_BUCKET, B) and lanes & (lanes - 1) == 0


@pytest.mark.parametrize("change, exc, match", [
    (dict(progress="yes"), TypeError, "progress must be True or False"),
    (dict(chunk_size=0), ValueError, "chunk_size must be a positive int"),
    (dict(chunk_size=2.5), ValueError, "chunk_size must be a positive int"),
])
def test_bad_batching_arguments(change, exc, match):
    with pytest.raises(exc, match=match):
        integrate(LOGISTIC, [0.5], (0, 1), {"r": 1.0, "K": 1.0}, **change)
