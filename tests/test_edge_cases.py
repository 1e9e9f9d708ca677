"""Numerical edge cases end with a readable status: stiffness, sigma2 = 0, collapsed starts,
finite-time blow-up of the K-mode exact system, eta = 0 continua."""

import numpy as np
import pytest

from derivations import ModelSpec, ODESystem, derive
from dynamics import equilibria, integrate, simulate_network


def test_stiff_problem_is_retried_with_the_implicit_solver():
    """alpha_p = 2000 makes dp/dt stiff (eigenvalue ~ -alpha_p c s): the explicit solver runs out
    of steps, the retry with Kvaerno5 finishes and agrees with SciPy's Radau."""
    system = derive(ModelSpec("euclidean"))
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 2000.0}
    sol = integrate(system, [0.5, 0.3], (0, 50), params, max_steps=2000)
    assert sol.status == "finished" and sol.retried
    ref = integrate(system, [0.5, 0.3], (0, 50), params, backend="scipy", solver="Radau")
    assert np.max(np.abs(sol.y - ref.y)) < 1e-6
    no_retry = integrate(system, [0.5, 0.3], (0, 50), params, max_steps=2000, retry=False)
    assert no_retry.status == "max_steps" and np.all(np.isfinite(no_retry.y))


def test_noise_free_views():
    """sigma2 = 0 (c = 1): threshold 1/4, Tian's equilibria, and the network still trains."""
    params = {"sigma2": 0.0, "eta": 0.2, "alpha_p": 1.0}
    p = sorted(e.point["p"] for e in equilibria(derive(ModelSpec("euclidean")), params))
    np.testing.assert_allclose(p, [0.0, (1 - np.sqrt(0.2)) / 2, (1 + np.sqrt(0.2)) / 2], atol=1e-12)
    net = simulate_network(ModelSpec("cosine"), params, h=8, t1=0.5, batch=256, n_records=6)
    assert net.status == "finished" and np.all(np.isfinite(net.p))


def test_k_mode_exact_system_reports_its_finite_time_collapse_readably():
    """Exact moments with self-consistent norms at K = 8, eta = 0.3: every p_k reaches 0 in
    finite time (t ~ 2.76) where the closure N_psi -> 0 is singular, while s stays finite. The
    run must stop with the distinct status "partly_collapsed" (the predictor collapsed) and
    finite values, never NaN, and the system's description must call it an artefact."""
    system = derive(ModelSpec("cosine", "simsiam", "self-consistent", "exact"))
    modes = system.modes(8)
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 1, 8)
    y0 = modes.pack(p=p, s=p**2 + rng.uniform(0, 0.3, 8))
    for backend in ("jax", "scipy"):
        sol = integrate(modes, y0, (0, 3), {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}, backend=backend, max_steps=20_000)
        assert sol.status == "partly_collapsed" and sol.event == "predictor collapse", (sol.status, sol.messages)
        assert 2.5 < sol.event_t < 3.0 and not sol.retried
        end = modes.unpack(sol.final)
        assert np.max(np.abs(end["p"])) < 1e-3 * np.max(p) and np.min(end["s"]) > 1e-5
        assert np.all(np.isfinite(sol.y)) and not sol.valid[-1]
        assert "predictor collapsed" in str(sol.messages)
    assert "Artefact" in system.description and "partly_collapsed" in str(system)
    # the same start in a system without the artefact runs to t1 (leading moments)
    lead = derive(ModelSpec("cosine", "simsiam", "self-consistent", "leading")).modes(8)
    assert integrate(lead, y0, (0, 3), {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}).status == "finished"


def test_zero_weight_decay_continuum_and_its_points():
    eqs = equilibria(derive(ModelSpec("euclidean", "ema")), {"sigma2": 0.2, "eta": 0.0, "alpha_p": 1.0, "beta": 0.5})
    assert eqs.complete and len(eqs.curves) == 2
    assert all(e.kind == "non-isolated" and e.stable is None for e in eqs)


@pytest.mark.parametrize("backend", ["jax", "scipy"])
def test_finite_time_collapse_into_a_singularity_is_collapsed_not_failed(backend):
    """x' = -1/(2x), y' = -y: x(t)^2 = x0^2 - t reaches 0 at t* = x0^2, where the right-hand side
    is singular, so no solver gets x below a Collapse tol; the step size collapses first. With x
    declared a collapse state the run is "collapsed" at t*, with events or without; without the
    declaration nothing is known about what vanishing means and the run "failed"."""
    x0 = 0.8
    eqs = {"x": "-1/(2*x)", "y": "-y"}
    declared = ODESystem.from_equations(eqs, collapse=("x",))
    for events in ((), ("collapse", "blow_up")):
        sol = integrate(declared, [x0, 1.0], (0, 1.0), {}, backend=backend, events=events)
        assert sol.status == "collapsed" and sol.event == "collapse", (sol.status, sol.messages)
        assert abs(sol.event_t - x0**2) < 1e-6 and not sol.retried
        assert "finite-time collapse" in str(sol.messages), (events, sol.messages)
    plain = integrate(ODESystem.from_equations(eqs), [x0, 1.0], (0, 1.0), {}, backend=backend, events=())
    assert plain.status == "failed" and "finite-time collapse" not in str(plain.messages)
    assert "step size collapsed" in str(plain.messages)
