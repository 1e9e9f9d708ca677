"""Equilibrium continuation and fold curves: a 200-point branch against a natural-parameter
sweep with SciPy over the same parameter values, and a 200-point fold curve, in one run.

    python benchmarks/continuation.py [--points 200] [--modes 32] [--repeat 3]

Branches (``continue_equilibrium``, ``direction="up"``, ``ds = ds_max`` small enough that the
branch takes all ``--points`` points):

- the Brusselator x' = a - (b + 1) x + x^2 y, y' = b x - x^2 y (a = 1) in b from b = 1.5,
  through its Hopf point b = 1 + a^2 = 2, which the branch locates with its Lyapunov
  coefficient;
- K uncoupled Euclidean SimSiam modes on their balance manifold,
  ``couple(derive(ModelSpec("euclidean")).reduce(), K, per_mode_params=("sigma2",))``, with
  distinct sigma2_k in [0, 1], in eta from eta = 0.05 on the upper equilibria
  p_k = (1 + sqrt(1 - 4 c_k eta)) / (2 c_k), c_k = 1 + sigma2_k (default K = 32). At K = 32 the
  branch stops short of the first fold (eta = 1/8, the mode sigma2 = 0), so that a
  natural-parameter sweep can follow all of it; with fewer modes (``--modes 8``) it reaches
  the fold, and the baseline follows it up to there.

For each: the first call (compiling the residual's Jacobian), the best of ``--repeat`` calls
with the compilation cached (seconds, points per second), and one instrumented call that
splits the time into the Newton corrector (``Tracer.correct``, of which the jitted R, J
evaluations), the test functions (``EquilibriumProblem.tests``), the tangents (``tangent_of``),
the located points' normal forms (``EquilibriumProblem.point``) and the rest (the eigenvalues of
every point for ``Branch.eigenvalues``, setup). The baseline, same run: ``scipy.optimize.root``
(hybr) at each parameter value the branch visits, from the previous solution, with the same
jitted Jacobian, and with hybr's own finite differences of the jitted residual; its solutions
are compared with the branch's. The baseline computes neither eigenvalues nor test functions,
so the ratio is the price of the bifurcation bookkeeping as much as of the corrector.

Fold curves (``continue_curve``, 200 points, one direction): the full two-state Euclidean
SimSiam mode, the fold in eta (located on a branch at sigma2 = 0.5) followed in sigma2 and
checked against the closed form eta = 1 / (4 (1 + sigma2)); and the cusp x' = b1 + b2 x - x^3,
the fold in b1 at b2 = 1 followed towards smaller b2 through the cusp point (0, 0).

Timings on a shared machine vary with its load (printed): compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
from scipy.optimize import root

import ncdyn
from derivations import ModelSpec, derive
from dynamics import _arclength, _codim2, continue_curve, continue_equilibrium
from dynamics._arclength import Tracer
from dynamics._continuation import EquilibriumProblem, _compiled


def best(fn, repeat: int):
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


@contextmanager
def split(targets):
    """Time every call of each (owner, attribute) in ``targets`` (cumulative seconds and calls);
    a call nested in another of the same name counts once."""
    spent, calls, depth, saved = defaultdict(float), defaultdict(int), defaultdict(int), []

    def wrap(key, fn):
        def timed(*a, **k):
            depth[key] += 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                depth[key] -= 1
                if depth[key] == 0:
                    spent[key] += time.perf_counter() - t0
                    calls[key] += 1
        return timed

    for owner, attr, key in targets:
        fn = getattr(owner, attr)
        saved.append((owner, attr, fn))
        setattr(owner, attr, wrap(key, fn))
    try:
        yield spent, calls
    finally:
        for owner, attr, fn in reversed(saved):
            setattr(owner, attr, fn)


BRANCH_PARTS = [(Tracer, "correct", "corrector"), (Tracer, "evaluate", "R, J"),
                (EquilibriumProblem, "tests", "tests"), (_arclength, "tangent_of", "tangents"),
                (EquilibriumProblem, "point", "normal forms")]


def brusselator():
    system = ncdyn.ODESystem.from_equations({"x": "a - (b + 1)*x + x**2*y", "y": "b*x - x**2*y"}, params=("a", "b"))
    a, b = 1.0, 1.5
    return "Brusselator in b (2 states)", system, [a, b / a], {"b": (0.5, 4.0)}, {"a": a, "b": b}, 0.005


def euclidean_modes(K: int):
    system = ncdyn.couple(derive(ModelSpec("euclidean")).reduce(), K, per_mode_params=("sigma2",))
    sigma2 = np.linspace(0.0, 1.0, K)
    c, eta = 1.0 + sigma2, 0.05
    p = (1.0 + np.sqrt(1.0 - 4.0 * c * eta)) / (2.0 * c)
    return (f"{K} Euclidean SimSiam modes in eta ({K} states)", system, p, {"eta": (0.0, 1.0)},
            {"sigma2": sigma2, "eta": eta, "alpha_p": 1.0}, 0.002)


def run_branch(case, points: int, repeat: int) -> dict:
    name, system, start, sweep, params, ds = case
    opts = dict(max_points=points, ds=ds, ds_max=ds, direction="up")
    t0 = time.perf_counter()
    continue_equilibrium(system, start, sweep, params, **opts)
    t_first = time.perf_counter() - t0
    br, t_cached = best(lambda: continue_equilibrium(system, start, sweep, params, **opts), repeat)
    with split(BRANCH_PARTS) as (spent, calls):
        t0 = time.perf_counter()
        continue_equilibrium(system, start, sweep, params, **opts)
        t_split = time.perf_counter() - t0
    spent, calls = dict(spent), dict(calls)

    param, n = sweep[0], system.n_states
    values = np.asarray(br.values)
    monotone = int(np.argmax(np.diff(values) <= 0)) + 1 if np.any(np.diff(values) <= 0) else len(values)
    vj, residual = _compiled(system, param, 1)[:2]
    import jax
    import jax.numpy as jnp

    args = {k: jnp.asarray(v) for k, v in system.check_params(params).items() if k != param}
    r_only = jax.jit(residual)

    def with_jac(x, v):
        R, J = vj(np.concatenate([x, [v]]), args)
        return np.asarray(R), np.asarray(J)[:, :n]

    def without_jac(x, v):
        return np.asarray(r_only(np.concatenate([x, [v]]), args))

    def sweep_root(jac: bool):
        xs, x, nfev = [np.asarray(br.x[0])], np.asarray(br.x[0], dtype=float), 0
        for v in values[1:monotone]:
            sol = root((lambda y: with_jac(y, v)) if jac else (lambda y: without_jac(y, v)), x, jac=jac,
                       method="hybr", options={"xtol": 1e-10})
            x = sol.x
            nfev += sol.nfev
            xs.append(x)
        return np.array(xs), nfev

    sweep_root(True)  # compile outside the timing
    sweep_root(False)
    (xs_j, nfev_j), t_jac = best(lambda: sweep_root(True), repeat)
    (xs_fd, nfev_fd), t_fd = best(lambda: sweep_root(False), repeat)
    err = max(float(np.max(np.abs(xs_j - br.x[:monotone]))), float(np.max(np.abs(xs_fd - br.x[:monotone]))))
    return dict(name=name, branch=br, t_first=t_first, t_cached=t_cached, t_split=t_split, spent=spent, calls=calls,
                monotone=monotone, t_jac=t_jac, t_fd=t_fd, nfev_j=nfev_j, nfev_fd=nfev_fd, err=err)


def report_branch(r: dict) -> None:
    br = r["branch"]
    m = len(br.values)
    def shown(p):
        return f"{p.kind} at {p.value:.6f}" + (f" (l1 = {p.coefficients['l1']:.4g})" if "l1" in p.coefficients else "")

    print(f"{r['name']}: {m} points, {br.param} in [{br.values.min():.6g}, {br.values.max():.6g}], {br.status}; "
          + (", ".join(shown(p) for p in br.points) or "no bifurcation points"))
    print(f"  first call (compiles):         {r['t_first']:8.3f} s")
    print(f"  branch, compilation cached:    {r['t_cached']:8.3f} s  -> {m / r['t_cached']:8.0f} points/s")
    s, c, total = r["spent"], r["calls"], r["t_split"]
    rest = total - s.get("corrector", 0) - s.get("tests", 0) - s.get("tangents", 0) - s.get("normal forms", 0)
    print(f"  instrumented call:             {total:8.3f} s, of which")
    for key in ("corrector", "tests", "tangents", "normal forms"):
        print(f"    {key + ':':29s}{s.get(key, 0.0):8.3f} s  {100 * s.get(key, 0.0) / total:5.1f}%  "
              f"({c.get(key, 0)} calls)")
    print(f"    {'rest (eigenvalues, setup):':29s}{rest:8.3f} s  {100 * rest / total:5.1f}%")
    print(f"    (R, J evaluations, all:      {s.get('R, J', 0.0):8.3f} s  {100 * s.get('R, J', 0.0) / total:5.1f}%  "
          f"({c.get('R, J', 0)} calls, {1e6 * s.get('R, J', 0.0) / max(c.get('R, J', 1), 1):.0f} us each))")
    k = r["monotone"]
    note = "" if k == m else f" (the first {k}: the branch folds there)"
    print(f"  baseline, root (hybr) at the same {k - 1} values{note}:")
    print(f"    JAX Jacobian:                {r['t_jac']:8.3f} s  ({r['nfev_j']} evaluations)  "
          f"branch / baseline = {r['t_cached'] / r['t_jac']:.1f}")
    print(f"    finite differences:          {r['t_fd']:8.3f} s  ({r['nfev_fd']} evaluations)  "
          f"branch / baseline = {r['t_cached'] / r['t_fd']:.1f}")
    print(f"    max |x_root - x_branch|:     {r['err']:.2e}")


CURVE_PARTS = [(Tracer, "correct", "corrector"), (Tracer, "evaluate", "R, J"),
               (_codim2.FoldCurve, "tests", "tests"), (_arclength, "tangent_of", "tangents"),
               (_codim2.FoldCurve, "coefficients", "coefficients")]


def run_curve(name, system, start, sweep1, params, sweep2, points: int, ds: float, repeat: int,
              direction: str = "up") -> dict:
    branch = continue_equilibrium(system, start, sweep1, params)
    fold = next(p for p in branch.points if p.kind == "fold")
    opts = dict(max_points=points, ds=ds, ds_max=ds, direction=direction)
    t0 = time.perf_counter()
    continue_curve(system, fold, sweep2, params, **opts)
    t_first = time.perf_counter() - t0
    curve, t_cached = best(lambda: continue_curve(system, fold, sweep2, params, **opts), repeat)
    with split(CURVE_PARTS) as (spent, calls):
        t0 = time.perf_counter()
        continue_curve(system, fold, sweep2, params, **opts)
        t_split = time.perf_counter() - t0
    return dict(name=name, curve=curve, t_first=t_first, t_cached=t_cached, t_split=t_split,
                spent=dict(spent), calls=dict(calls))


def report_curve(r: dict, check=None) -> None:
    cv = r["curve"]
    m = len(cv.values)
    p1, p2 = cv.params_varied
    found = ", ".join(f"{p.kind} at ({p.params[p1]:.3g}, {p.params[p2]:.3g})" for p in cv.points)
    print(f"{r['name']}: {m} points, {p2} in [{cv.values[:, 1].min():.4g}, {cv.values[:, 1].max():.4g}], {cv.status}; "
          + (found or "no codim-2 points"))
    print(f"  first call (compiles):         {r['t_first']:8.3f} s")
    print(f"  curve, compilation cached:     {r['t_cached']:8.3f} s  -> {m / r['t_cached']:8.0f} points/s")
    s, c, total = r["spent"], r["calls"], r["t_split"]
    parts = ("corrector", "tests", "tangents", "coefficients")
    rest = total - sum(s.get(k, 0.0) for k in parts)
    print(f"  instrumented call:             {total:8.3f} s, of which")
    for key in parts:
        print(f"    {key + ':':29s}{s.get(key, 0.0):8.3f} s  {100 * s.get(key, 0.0) / total:5.1f}%  "
              f"({c.get(key, 0)} calls)")
    print(f"    {'rest (borders, setup):':29s}{rest:8.3f} s  {100 * rest / total:5.1f}%")
    print(f"    (R, J evaluations, all:      {s.get('R, J', 0.0):8.3f} s  {100 * s.get('R, J', 0.0) / total:5.1f}%  "
          f"({c.get('R, J', 0)} calls, {1e6 * s.get('R, J', 0.0) / max(c.get('R, J', 1), 1):.0f} us each))")
    if check is not None:
        print(f"  {check(cv)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--modes", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")

    for case in (brusselator(), euclidean_modes(args.modes)):
        report_branch(run_branch(case, args.points, args.repeat))
        print()

    mode = derive(ModelSpec("euclidean"))
    sigma2, eta = 0.5, 0.05
    c = 1.0 + sigma2
    p = (1.0 + np.sqrt(1.0 - 4.0 * c * eta)) / (2.0 * c)
    r = run_curve("fold curve of the Euclidean SimSiam mode, eta in sigma2 (2 states)", mode, [p, p * p],
                  {"eta": (0.0, 1.0)}, {"sigma2": sigma2, "eta": eta, "alpha_p": 1.0}, {"sigma2": (0.0, 20.0)},
                  args.points, 0.02, args.repeat)

    def closed_form(cv):
        eta_s = cv.values[:, 0]
        s2 = cv.values[:, 1]
        return f"max |eta - 1/(4 (1 + sigma2))| along the curve: {np.max(np.abs(eta_s - 0.25 / (1.0 + s2))):.2e}"

    report_curve(r, closed_form)
    print()
    cusp = ncdyn.ODESystem.from_equations({"x": "b1 + b2*x - x**3"}, params=("b1", "b2"))
    r = run_curve("fold curve of the cusp x' = b1 + b2 x - x^3, b1 in b2 (1 state)", cusp, [1.0],
                  {"b1": (-2.0, 2.0)}, {"b1": 0.0, "b2": 1.0}, {"b2": (-1.0, 2.0)}, args.points, 0.015, args.repeat,
                  "down")

    def cusp_form(cv):
        b1, b2 = cv.values[:, 0], cv.values[:, 1]
        return (f"max |b1^2 - 4 b2^3 / 27| along the curve: {np.max(np.abs(b1 ** 2 - 4 * b2 ** 3 / 27)):.2e}")

    report_curve(r, cusp_form)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
