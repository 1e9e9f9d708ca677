"""Property tests (hypothesis) over random specs, parameters and states.

Derandomized, so CI sees the same examples every run; budgets are small to keep the suite fast.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import derivations._derive as derivation_module
from derivations import derive
from dynamics import equilibria, integrate
from dynamics import jacobian_at

from conftest import ALL_SPECS as SPECS  # noqa: E402
RANGES = {"sigma2": (0.0, 0.5), "eta": (0.0, 0.4), "alpha_p": (0.5, 2.0), "beta": (0.1, 1.0),
          "N_psi": (0.5, 3.0), "N_phi": (0.5, 3.0), "T": (-1.0, 3.0)}
STATE_RANGES = {"p": (-1.0, 1.2), "s": (0.0, 1.5), "tau": (0.3, 1.5)}
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def problems(draw, reduced=st.booleans()):
    spec = draw(st.sampled_from(SPECS))
    system = derive(spec)
    if draw(reduced):
        system = system.reduce()
    params = {k: draw(st.floats(*RANGES[k])) for k in system.param_names}
    y = np.array([draw(st.floats(*STATE_RANGES[n])) for n in system.state_names])
    return system, params, y


@SETTINGS
@given(problems())
def test_sympy_jacobian_equals_jax_jacfwd(problem):
    system, params, y = problem
    f = system.to_jax()
    auto = jax.jacfwd(lambda z: f(0.0, z, params))(jnp.asarray(y))
    np.testing.assert_allclose(jacobian_at(system, y, params), np.asarray(auto), rtol=1e-10, atol=1e-12)


@SETTINGS
@given(problems())
def test_every_equilibrium_is_a_root(problem):
    system, params, _ = problem
    eqs = equilibria(system, params)
    assert eqs.complete
    f = system.to_numpy()
    for e in eqs:
        assert np.max(np.abs(f(0.0, e.x, params))) <= 1e-10 * max(1.0, e.residual_scale)
        assert e.stable in (True, False, None)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(problems(reduced=st.just(False)), st.integers(2, 4))
def test_batched_equals_unbatched_and_backends_agree(problem, n):
    system, params, y = problem
    rng = np.random.default_rng(n)
    y0 = np.abs(y) * rng.uniform(0.5, 1.0, (n, len(y))) * np.sign(y + 1e-12)
    batch = integrate(system, y0, (0, 3.0), params, n_save=7)
    for i in range(n):
        single = integrate(system, y0[i], (0, 3.0), params, n_save=7)
        assert single.status == batch.status[i]
        np.testing.assert_array_equal(single.valid, batch.valid[i])
        # saved states up to the stop; after a blow-up the held state depends on the event time to the ulp
        np.testing.assert_allclose(batch.y[i][single.valid], single.y[single.valid], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(batch.event_t[i], single.event_t, rtol=1e-10)
    ref = integrate(system, y0, (0, 3.0), params, n_save=7, backend="scipy")
    assert (ref.status == batch.status).all(), (ref.status, batch.status, ref.messages)
    both = ref.valid & batch.valid
    # rtol 1e-8 per step: agreement to 1e-6 relative to the state's size (states reach ~1e2 before a blow-up)
    scale = np.maximum(1.0, np.abs(ref.y))
    assert np.max((np.abs(ref.y - batch.y) / scale)[both], initial=0.0) < 1e-6


def test_balance_law_holds_along_trajectories():
    """(s - p^2/alpha_p) e^{2 eta t} is conserved by every variant (to integration tolerance),
    at every saved time up to where the run stops (the sextic may blow up in finite time, a
    start at p = s = 0 is collapsed). The law must be seen on at least 3 saved times in at
    least 5 of the 8 examples (6 are, as drawn now). Seven output times and the default
    events: the solvers compiled for the test above."""
    checked = []

    @settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(problems(reduced=st.just(False)))
    def check(problem):
        system, params, y = problem
        sol = integrate(system, y, (0, 2.0), params, rtol=1e-10, atol=1e-12, n_save=7)
        assert sol.status in ("finished", "blew_up", "collapsed"), (sol.status, sol.messages)
        states = {k: v[sol.valid] for k, v in sol.states().items()}
        q = (states["s"] - states["p"] ** 2 / params["alpha_p"]) * np.exp(2 * params["eta"] * sol.t[sol.valid])
        assert np.max(np.abs(q - q[0])) <= 1e-7 * max(1.0, np.max(np.abs(states["p"])) ** 2 + np.max(np.abs(states["s"])))
        if len(q) >= 3:
            checked.append((system.name, str(sol.status), len(q)))

    check()
    assert len(checked) >= 5, f"the law was seen on 3 or more saved times in {len(checked)} of 8 examples: {checked}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label.replace(" ", "_"))
def test_cached_system_is_identical_to_a_fresh_derivation(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("NCDYN_CACHE_DIR", str(tmp_path))
    derivation_module._memory.clear()
    first = derive(spec)
    derivation_module._memory.clear()
    cached = derive(spec)  # from disk
    fresh = derive(spec, cache=False)
    for other in (cached, fresh):
        assert other == first and str(other) == str(first)
        assert [str(law) for law in other.laws] == [str(law) for law in first.laws]
        assert set(other.steps) == set(first.steps)
    derivation_module._memory.clear()
