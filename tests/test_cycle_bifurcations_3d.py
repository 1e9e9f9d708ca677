"""continue_cycle on the Lorenz-84 model (Lorenz 1984; Shil'nikov, Nicolis & Nicolis 1995):
one family of periodic orbits, continued in F, with a fold of cycles, a period doubling and a
Neimark-Sacker point, each checked by the Floquet multipliers that SciPy integrates there."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import ncdyn
from dynamics import continue_cycle, continue_equilibrium

A, B, G = 0.25, 4.0, 1.0


def monodromy(F, x0, T):
    """The end point and the monodromy matrix of the orbit through x0 over time T, by the
    variational equation of x' = -y^2 - z^2 - a x + a F, y' = x y - b x z - y + G, z' = b x y + x z - z."""

    def ext(t, w):
        x, y, z = w[:3]
        f = [-y * y - z * z - A * x + A * F, x * y - B * x * z - y + G, B * x * y + x * z - z]
        J = np.array([[-A, -2 * y, -2 * z], [y - B * z, x - 1, -B * x], [B * y + z, B * x, x - 1]])
        return np.concatenate([f, (J @ w[3:].reshape(3, 3)).ravel()])

    sol = solve_ivp(ext, (0, T), np.concatenate([x0, np.eye(3).ravel()]), method="DOP853", rtol=1e-10, atol=1e-12)
    return sol.y[:3, -1], sol.y[3:, -1].reshape(3, 3)


def test_lorenz84_family_with_period_doublings_a_torus_point_and_folds():
    """a = 0.25, b = 4, G = 1: the cycles born at the supercritical Hopf point F = 1.2789 double
    their period at F = 6.2558 and again (back to one) at F = 18.899, lose stability to a torus at
    F = 29.378 and turn at folds F = 42.205 and F = 29.350 (values at ntst = 20; ntst = 30 moves
    them by at most 3e-6). At each located point the variational equation, integrated over the
    located period from the located state, must give the multiplier that defines the point."""
    system = ncdyn.ODESystem.from_equations(
        {"x": "-y**2 - z**2 - a*x + a*F", "y": "x*y - b*x*z - y + G", "z": "b*x*y + x*z - z"},
        params=("a", "b", "F", "G"))
    params = {"a": A, "b": B, "G": G}
    branch = continue_equilibrium(system, [1.934, -0.0154, 0.1274], {"F": (1.25, 43.0)}, {**params, "F": 2.0})
    hopf = next(p for p in branch.points if p.kind == "hopf")
    assert hopf.value == pytest.approx(1.27893959, abs=1e-7) and hopf.coefficients["l1"] < 0
    fam = continue_cycle(system, hopf, {"F": (1.25, 43.0)}, params, ntst=20, max_points=400)
    assert [p.kind for p in fam.points] == ["period doubling", "period doubling", "neimark-sacker",
                                            "fold of cycles", "fold of cycles"]
    assert fam.status.endswith("left_range") and fam.values[-1] == pytest.approx(43.0, abs=1e-9)
    pd1, pd2, ns, fold1, fold2 = fam.points
    for p, v in zip(fam.points, (6.255847, 18.898860, 29.377835, 42.204873, 29.350223)):
        assert p.value == pytest.approx(v, abs=1e-5)
    # the cycles' F rises, falls and rises again, turning at the two folds
    turns = np.flatnonzero(np.diff(np.sign(np.diff(fam.values))))
    assert len(turns) == 2
    assert fam.values[: turns[1]].max() <= fold1.value + 1e-9 < fam.values.max()
    assert fam.values[turns[0]:].min() >= fold2.value - 1e-9

    results = {}
    for p in fam.points:
        end, M = monodromy(p.value, np.asarray(p.x), p.coefficients["period"])
        assert np.max(np.abs(end - p.x)) < 1e-6  # the located state lies on a closed orbit of that period
        results[id(p)] = (M, np.linalg.eigvals(M))
    for p in (pd1, pd2):
        mu = results[id(p)][1]
        assert np.min(np.abs(mu - 1)) < 1e-6 and np.min(np.abs(mu + 1)) < 1e-6
    mu = results[id(ns)][1]
    pair = mu[np.abs(mu.imag) > 1e-3]
    assert np.min(np.abs(mu - 1)) < 1e-6
    assert len(pair) == 2 and np.max(np.abs(np.abs(pair) - 1)) < 1e-6
    assert np.max(np.abs(np.angle(pair))) == pytest.approx(ns.coefficients["theta"], abs=1e-6)
    for p in (fold1, fold2):
        M, mu = results[id(p)]
        # a double multiplier 1 (the trivial one and the fold's) splits by the square root of any
        # error, so check the sum and product of the two, which move linearly: 2 and 1
        m3 = mu[np.argmax(np.abs(mu - 1))]
        assert abs(np.real(m3) - 1) > 0.1 and abs(np.imag(m3)) < 1e-9
        assert abs(np.trace(M) - m3 - 2) < 1e-5 and abs(np.linalg.det(M) / m3 - 1) < 1e-5
        assert np.max(np.abs(np.delete(mu, np.argmax(np.abs(mu - 1))) - 1)) < 2e-3
