"""continue_cycle: families of periodic orbits by collocation, against closed forms and against
Floquet multipliers integrated independently with SciPy (DOP853, rtol 1e-11)."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import ncdyn
from dynamics import BifurcationPoint, CycleFamily, continue_cycle, continue_equilibrium


def hopf_of(system, x0, sweep, params):
    branch = continue_equilibrium(system, x0, sweep, params)
    return next(p for p in branch.points if p.kind == "hopf")


def monodromy(rhs, jac, x0, T):
    """Monodromy matrix of the cycle through x0 of period T by the variational equation."""
    n = len(x0)

    def ext(t, w):
        x, Y = w[:n], w[n:].reshape(n, n)
        return np.concatenate([rhs(x), (jac(x) @ Y).ravel()])

    sol = solve_ivp(ext, (0, T), np.concatenate([x0, np.eye(n).ravel()]), method="DOP853", rtol=1e-11, atol=1e-12)
    return sol.y[:n, -1], sol.y[n:, -1].reshape(n, n)


@pytest.fixture(scope="module")
def radial():
    system = ncdyn.ODESystem.from_equations(
        {"x": "x*(rho - x**2 - y**2) - y", "y": "y*(rho - x**2 - y**2) + x"}, params=("rho",))
    hopf = hopf_of(system, [0.0, 0.0], {"rho": (-0.5, 1.0)}, {"rho": -0.5})
    return system, hopf, continue_cycle(system, hopf, {"rho": (-0.5, 1.0)}, {"rho": 0.0}, ntst=10, max_points=60)


def test_radial_cycle_closed_form(radial):
    """r' = r (rho - r^2), theta' = 1: the circle r = sqrt(rho), period 2 pi, multiplier
    exp(-4 pi rho) (d/dr of r(rho - r^2) at the cycle is -2 rho)."""
    _, hopf, fam = radial
    assert isinstance(fam, CycleFamily)
    assert hopf.value == pytest.approx(0.0, abs=1e-9)
    assert fam.values[0] > 0 and fam.values[-1] == pytest.approx(1.0, abs=1e-9)  # ends on the range's edge
    assert "left_range" in fam.status and len(fam.values) >= 10
    r = np.hypot(fam.profiles[..., 0], fam.profiles[..., 1])
    assert np.max(np.abs(r - np.sqrt(fam.values)[:, None])) < 1e-6  # collocation error at ntst = 10
    assert np.max(np.abs(fam.amplitude - np.sqrt(fam.values))) < 1e-6
    assert np.max(np.abs(fam.x_max[:, 0] - np.sqrt(fam.values))) < 1e-6
    assert np.max(np.abs(fam.period - 2 * np.pi)) < 1e-7
    assert np.max(np.abs(fam.multipliers[:, 0] - 1.0)) < 1e-9
    assert np.max(np.abs(fam.multipliers[:, 1] - np.exp(-4 * np.pi * fam.values))) < 1e-7
    assert fam.stable.all() and fam.points == ()
    assert fam.profiles.shape == (len(fam.values), 41, 2) and fam.times.shape == (len(fam.values), 41)
    assert np.all(np.diff(fam.times, axis=1) > 0) and np.allclose(fam.times[:, [0, -1]], [0.0, 1.0])
    assert not fam.values.flags.writeable and fam == fam and hash(fam) == hash(fam)
    assert "CycleFamily(" in repr(fam) and "<table>" in fam._repr_html_()


def test_brusselator_amplitude_matches_first_lyapunov_coefficient():
    """Brusselator, a = 1: Hopf at b = 2 with omega = 1. Near it each state's half range is
    2 |q_i| sqrt(-beta / (l1 omega)) (1 + O(beta)), beta = Re lambda = (b - 2) / 2, q the unit
    eigenvector of the Jacobian [[1, 1], [-2, -1]]; a wrong l1 would leave a constant offset."""
    system = ncdyn.ODESystem.from_equations({"x": "a - (b+1)*x + x**2*y", "y": "b*x - x**2*y"}, params=("a", "b"))
    hopf = hopf_of(system, [1.0, 2.0], {"b": (1.5, 3.0)}, {"a": 1.0, "b": 1.5})
    assert hopf.value == pytest.approx(2.0, abs=1e-9) and hopf.coefficients["omega"] == pytest.approx(1.0, abs=1e-9)
    fam = continue_cycle(system, hopf, {"b": (1.5, 3.0)}, {"a": 1.0}, ntst=10, max_points=25, ds=1e-3, ds_max=0.02)
    ev, V = np.linalg.eig(np.array([[1.0, 1.0], [-2.0, -1.0]]))
    q = V[:, np.argmax(ev.imag)] / np.linalg.norm(V[:, np.argmax(ev.imag)])
    beta = (fam.values - 2.0) / 2
    assert beta.min() > 0 and beta.max() > 0.01
    predicted = 2 * np.abs(q)[None, :] * np.sqrt(-beta / hopf.coefficients["l1"])[:, None]
    got = (fam.x_max - fam.x_min) / 2
    assert np.all(np.abs(got / predicted - 1) <= 2 * beta[:, None] + 1e-6)
    assert fam.stable.all()


def test_fold_of_cycles_in_the_bautin_normal_form():
    """r' = r (mu + 2 r^2 - r^4), theta' = 1: subcritical Hopf at mu = 0, cycles
    mu = r^4 - 2 r^2, a fold of cycles at mu = -1 (r = 1), multiplier exp(8 pi r^2 (1 - r^2))."""
    system = ncdyn.ODESystem.from_equations(
        {"x": "x*(mu + 2*(x**2+y**2) - (x**2+y**2)**2) - y", "y": "y*(mu + 2*(x**2+y**2) - (x**2+y**2)**2) + x"},
        params=("mu",))
    hopf = hopf_of(system, [0.0, 0.0], {"mu": (-1.5, 1.0)}, {"mu": -0.5})
    assert hopf.coefficients["l1"] > 0
    fam = continue_cycle(system, hopf, {"mu": (-1.5, 1.0)}, {"mu": 0.0}, ntst=10, max_points=60)
    folds = [p for p in fam.points if p.kind == "fold of cycles"]
    assert len(folds) == 1 and len(fam.points) == 1
    fold = folds[0]
    assert fold.value == pytest.approx(-1.0, abs=1e-8)
    assert np.hypot(*fold.x) == pytest.approx(1.0, abs=1e-6)
    assert fold.coefficients["period"] == pytest.approx(2 * np.pi, abs=1e-7)
    assert fold.coefficients["multiplier"] == pytest.approx(1.0, abs=1e-6)
    r2 = np.hypot(fam.profiles[:, 0, 0], fam.profiles[:, 0, 1]) ** 2
    assert np.max(np.abs(fam.values - (r2 ** 2 - 2 * r2))) < 2e-5  # collocation error at ntst = 10, r up to 1.55
    exact = np.exp(8 * np.pi * r2 * (1 - r2))
    assert np.max(np.abs(fam.multipliers[:, 1] - exact)) < 1e-5 * np.abs(exact).max()
    assert np.array_equal(fam.stable, r2 > 1)  # unstable inner cycles, stable outer ones


def test_neimark_sacker_of_the_langford_system():
    """Langford: cycles are circles x^2 + y^2 = R at constant z of period pi/2, equilibria of
    the reduced system R' = 2R(mu - 3 + z + 0.2(1 - z^2)), z' = mu z - R - z^2. Its Hopf point,
    the cycles' Neimark-Sacker point, solves trace = mu - 2z = 0 on the branch: mu^2 - 30 mu + 56
    = 0, mu = 2, z = 1, R = 1, with the pair at angle theta = sqrt(2 R (1 - 0.4 z)) pi/2 =
    sqrt(1.2) pi/2. The family ends where R = 0 at z = 0, mu = 2.8 (Hopf of the origin)."""
    system = ncdyn.ODESystem.from_equations(
        {"x": "(mu-3)*x - 4*y + x*(z + 0.2*(1 - z**2))", "y": "4*x + (mu-3)*y + y*(z + 0.2*(1-z**2))",
         "z": "mu*z - (x**2+y**2+z**2)"}, params=("mu",))
    hopf = hopf_of(system, [0.0, 0.0, 1.0], {"mu": (0.5, 3.0)}, {"mu": 1.0})
    assert hopf.value == pytest.approx(5 - np.sqrt(11), abs=1e-8)
    fam = continue_cycle(system, hopf, {"mu": (0.5, 3.0)}, {"mu": 1.0}, ntst=10, max_points=150)
    kinds = [p.kind for p in fam.points]
    assert kinds == ["neimark-sacker", "hopf"] and fam.status.endswith("end: hopf")
    ns, end = fam.points
    assert ns.value == pytest.approx(2.0, abs=1e-7)
    assert ns.coefficients["theta"] == pytest.approx(np.sqrt(1.2) * np.pi / 2, abs=1e-6)
    assert ns.coefficients["period"] == pytest.approx(np.pi / 2, abs=1e-8)
    assert np.hypot(ns.x[0], ns.x[1]) == pytest.approx(1.0, abs=1e-6) and ns.x[2] == pytest.approx(1.0, abs=1e-6)
    assert end.value == pytest.approx(2.8, abs=1e-6) and fam.values[-1] == pytest.approx(2.8, abs=1e-6)
    assert np.array_equal(fam.stable, fam.values < 2.0)
    # independent check: the multipliers integrated by SciPy at the located point
    rhs = system.to_numpy()
    f = lambda x: np.asarray(rhs(0.0, x, {"mu": ns.value}))  # noqa: E731
    jac = lambda x: np.array([[ns.value - 3 + x[2] + 0.2 * (1 - x[2] ** 2), -4, x[0] * (1 - 0.4 * x[2])],  # noqa: E731
                              [4, ns.value - 3 + x[2] + 0.2 * (1 - x[2] ** 2), x[1] * (1 - 0.4 * x[2])],
                              [-2 * x[0], -2 * x[1], ns.value - 2 * x[2]]])
    end_state, M = monodromy(f, jac, ns.x, ns.coefficients["period"])
    assert np.max(np.abs(end_state - ns.x)) < 1e-7
    mu = np.linalg.eigvals(M)
    pair = mu[np.abs(mu.imag) > 1e-3]
    assert len(pair) == 2 and np.max(np.abs(np.abs(pair) - 1)) < 1e-6
    assert np.max(np.abs(np.angle(pair))) == pytest.approx(ns.coefficients["theta"], abs=1e-6)


def test_period_doubling_of_the_adaptive_control_system():
    """x' = y, y' = z, z' = -z - beta y - x + x^2: Hopf at beta = 1 (alpha beta = 1, omega = 1),
    the family's first period doubling checked by the multipliers that SciPy integrates there,
    and by the doubled period of the orbit a simulation settles on just past it."""
    system = ncdyn.ODESystem.from_equations({"x": "y", "y": "z", "z": "-z - beta*y - x + x**2"}, params=("beta",))
    hopf = hopf_of(system, [0.0, 0.0, 0.0], {"beta": (0.4, 1.5)}, {"beta": 1.2})
    assert hopf.value == pytest.approx(1.0, abs=1e-8) and hopf.coefficients["omega"] == pytest.approx(1.0, abs=1e-8)
    fam = continue_cycle(system, hopf, {"beta": (0.4, 1.5)}, {"beta": 1.2}, ntst=20, max_points=40)
    pd = next(p for p in fam.points if p.kind == "period doubling")
    b = pd.value
    f = lambda x: np.array([x[1], x[2], -x[2] - b * x[1] - x[0] + x[0] ** 2])  # noqa: E731
    jac = lambda x: np.array([[0, 1, 0], [0, 0, 1], [-1 + 2 * x[0], -b, -1]])  # noqa: E731
    end_state, M = monodromy(f, jac, pd.x, pd.coefficients["period"])
    assert np.max(np.abs(end_state - pd.x)) < 1e-6
    mu = np.linalg.eigvals(M)
    assert np.min(np.abs(mu + 1)) < 1e-5 and np.min(np.abs(mu - 1)) < 1e-6
    assert 0.6 < b < 0.65
    # the multipliers along the family (by condensation of the collocation Jacobian) against SciPy's
    # (the last cycle, period 12 near a homoclinic orbit, is resolved to ~4e-5 by ntst = 20)
    for k, tol in ((5, 1e-7), (len(fam.values) // 2, 1e-7), (len(fam.values) - 1, 1e-4)):
        bk = fam.values[k]
        fk = lambda x, bk=bk: np.array([x[1], x[2], -x[2] - bk * x[1] - x[0] + x[0] ** 2])  # noqa: E731
        jk = lambda x, bk=bk: np.array([[0, 1, 0], [0, 0, 1], [-1 + 2 * x[0], -bk, -1]])  # noqa: E731
        _, Mk = monodromy(fk, jk, fam.profiles[k, 0], fam.period[k])
        ref = np.linalg.eigvals(Mk)
        ref = ref[np.argsort(np.abs(ref - 1))]
        assert np.abs(fam.multipliers[k, 0] - 1) < tol and np.abs(ref[0] - 1) < tol
        assert np.allclose(np.sort_complex(fam.multipliers[k, 1:]), np.sort_complex(ref[1:]), rtol=0, atol=tol)
    widths = np.diff(fam.times[-1][:: 4])
    assert widths.max() > 1.5 * widths.min()  # the mesh has moved to where the cycle bends
    # simulated: the returns to y = 0 alternate just past it (period 2), and settle just before it
    event = lambda t, x: x[1]  # noqa: E731
    event.direction = 1
    alternation = {}
    for side, bb in (("before", b + 0.01), ("after", b - 0.01)):
        g = lambda t, x, bb=bb: [x[1], x[2], -x[2] - bb * x[1] - x[0] + x[0] ** 2]  # noqa: E731
        sol = solve_ivp(g, (0, 600), pd.x, method="DOP853", rtol=1e-10, atol=1e-12, events=event)
        alternation[side] = abs(sol.y_events[0][-1, 0] - sol.y_events[0][-2, 0])
    assert alternation["before"] < 1e-3 and alternation["after"] > 3e-2


def test_cycle_from_an_integrated_orbit_van_der_pol():
    """van der Pol at mu = 1: period 6.6632868593231301 (published to 16 digits)."""
    system = ncdyn.ODESystem.from_equations({"x": "y", "y": "mu*(1 - x**2)*y - x"}, params=("mu",))
    sol = solve_ivp(lambda t, w: [w[1], (1 - w[0] ** 2) * w[1] - w[0]], (0, 40), [2.0, 0.0], method="DOP853",
                    rtol=1e-10, atol=1e-12, t_eval=np.linspace(0, 40, 4001))
    fam = continue_cycle(system, (sol.t, sol.y.T), {"mu": (0.5, 1.5)}, {"mu": 1.0}, ntst=20, max_points=4)
    k = int(np.argmin(np.abs(fam.values - 1.0)))
    assert fam.values[k] == pytest.approx(1.0, abs=1e-12)
    assert fam.period[k] == pytest.approx(6.6632868593231301, abs=1e-7)
    assert fam.values.min() < 1.0 < fam.values.max() and len(fam.values) == 7  # both directions
    assert np.all(np.diff(fam.values) > 0) and np.all(np.diff(fam.period) > 0)  # the period grows with mu
    assert fam.x_max[k, 0] == pytest.approx(2.00861986087, abs=1e-6)  # the cycle's largest x
    assert fam.stable.all()
    sol2 = ncdyn.integrate(system, [2.0, 0.0], (0, 40), {"mu": 1.0}, t_eval=np.linspace(0, 40, 4001), backend="scipy")
    fam2 = continue_cycle(system, sol2, {"mu": (0.5, 1.5)}, {"mu": 1.0}, ntst=20, max_points=2, direction="up")
    assert fam2.values[0] == 1.0 and fam2.period[0] == pytest.approx(6.6632868593231301, abs=1e-7)


def test_bad_inputs(radial):
    system, hopf, _ = radial
    sweep = {"rho": (-0.5, 1.0)}
    with pytest.raises(TypeError, match="system"):
        continue_cycle("x' = y", hopf, sweep, {"rho": 0.0})
    with pytest.raises(TypeError, match="params"):
        continue_cycle(system, hopf, sweep, [0.0])
    with pytest.raises(ValueError, match="not a parameter"):
        continue_cycle(system, hopf, {"sigma": (0, 1)}, {"rho": 0.0})
    with pytest.raises(ValueError, match="lo < hi"):
        continue_cycle(system, hopf, {"rho": (1.0, -1.0)}, {"rho": 0.0})
    with pytest.raises(ValueError, match="outside the range"):
        continue_cycle(system, hopf, {"rho": (0.5, 1.0)}, {"rho": 0.0})
    with pytest.raises(ValueError, match="'hopf'"):
        continue_cycle(system, BifurcationPoint("fold", 0.0, [0.0, 0.0], param="rho"), sweep, {"rho": 0.0})
    with pytest.raises(ValueError, match="ntst"):
        continue_cycle(system, hopf, sweep, {"rho": 0.0}, ntst=2)
    with pytest.raises(ValueError, match="ncol"):
        continue_cycle(system, hopf, sweep, {"rho": 0.0}, ncol=9)
    with pytest.raises(ValueError, match="direction"):
        continue_cycle(system, hopf, sweep, {"rho": 0.0}, direction="sideways")
    with pytest.raises(ValueError, match="ds"):
        continue_cycle(system, hopf, sweep, {"rho": 0.0}, ds=-1.0)
    with pytest.raises(TypeError, match="start"):
        continue_cycle(system, 3.0, sweep, {"rho": 0.5})
    with pytest.raises(ValueError, match="never returns"):
        t = np.linspace(0, 1, 50)
        continue_cycle(system, (t, np.stack([t, t], axis=1)), sweep, {"rho": 0.5})
    with pytest.raises(ValueError, match="states"):
        continue_cycle(system, (np.linspace(0, 1, 50), np.zeros((50, 3))), sweep, {"rho": 0.5})
    with pytest.raises(ValueError, match="starting value"):
        continue_cycle(system, (np.linspace(0, 1, 50), np.zeros((50, 2))), sweep, {})
    not_hopf = BifurcationPoint("hopf", 0.5, [0.0, 0.0], param="rho")  # the origin at rho = 0.5 is a focus
    with pytest.raises(ValueError, match="no Hopf point"):
        continue_cycle(system, not_hopf, sweep, {"rho": 0.5})
    stepper = ncdyn.ODESystem.from_equations({"x": "rho*x - y", "y": "x"}, params=("rho",), time="discrete")
    with pytest.raises(ValueError, match="map"):
        continue_cycle(stepper, hopf, sweep, {"rho": 0.0})
