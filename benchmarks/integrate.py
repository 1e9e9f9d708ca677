"""Ensemble throughput of dynamics.integrate's lane-major Runge-Kutta kernel against plain diffrax.

    python benchmarks/integrate.py [--n 10000 100000] [--repeat 2] [--sections 1 2 3 4 5 6 7]
                                   [--gpu-sizes 10000 100000] [--modes 100 1000 10000]
                                   [--whole-max 10000] [--ref 100] [--diagnose] [--memory 1000000]

``integrate`` runs its named explicit solvers ("tsit5", "dopri5", "dopri8") through a lane
kernel (``dynamics._lanes``): an (L, n) block of trajectories, one broadcast right-hand side per
stage, refill of lanes whose trajectory ended, dense output at the saved times, events located
on the dense output. The baselines are what a user writes with diffrax in a few lines, at the
same solver (Tsit5), PIDController and tolerances (rtol 1e-8, atol 1e-10):

  chunked   ``jax.jit(jax.vmap(diffeqsolve))`` called on chunks of 512 trajectories from a
            thread pool with one worker per core (the fair baseline: it uses every core and
            keeps a chunk in cache, as the toolkit does)
  whole     the same jitted function on the whole batch at once (up to --whole-max
            trajectories: the batch steps in lockstep, out of cache; 7-26x slower than the toolkit
            at 10^5 in one measured run)

With events the baseline also gets the toolkit's safeguards of its old per-lane path
(``_flow.trajectory_core``): an error norm that rejects non-finite trial steps and the step
floor; plain diffrax turns a finite-time blow-up into NaN steps until max_steps.

Systems (per-trajectory parameters, random starts): the Euclidean EMA eigenmode (p, s, tau;
eta and beta spread; t in [0, 20]), Lorenz (sigma 10, beta 8/3, rho ~ U(0, 28); t in [0, 1]),
van der Pol (mu ~ U(0.5, 3); t in [0, 10]) and Bao's sextic (the reduced frozen-norm cosine
mode, p0 > 0, eta spread; t in [0, 10]).

Sections (each prints a table and the load average at its start):

  1. end states (``t_eval=[t1]``, no events) at N = 10^4, 10^5 (--n): traj/s, traj per
     CPU-second, the ratio toolkit / chunked diffrax, max error against a tight SciPy
     reference (DOP853, rtol 1e-12, atol 1e-14) on --ref trajectories. Goal: >= 4x per
     CPU-second.
  2. 100 saved times (``t_eval = linspace(t0, t1, 100)``, no events) against chunked diffrax
     with ``SaveAt(ts=...)``, N = 10^4. Goal: >= 3x.
  3. the default events (collapse where the system declares collapse states, blow-up
     everywhere) against chunked diffrax with the equivalent ``diffrax.Event`` (one condition,
     the smallest margin, located by ``optx.Bisection``), N = 10^4. Goal: >= 3x.
  4. cost per useful lane-step (CPU ns per attempted step of a running trajectory) and the
     fraction of one core's peak it reaches: flops per lane-step = (stages - 1) x the flops of
     one right-hand side (XLA's cost analysis of a compiled block call) + the Runge-Kutta
     arithmetic (counted from the tableau), against one-core DGEMM FLOP/s measured in the run.
  5. one large coupled system (K self-consistent cosine modes, 2K states, K = 100, 1000, 10^4)
     at batch 1 and 64, 11 saved times, no events, against ``jit(diffeqsolve)`` /
     ``jit(vmap(diffeqsolve))``. Goal: the toolkit is never slower.
  6. compilation: first-call seconds of a 3-state system (Lorenz from equations) in a fresh
     process (end state only; end state with the default events; the default call, 201 saved
     times with the default events), and a sequence of varied calls. Goal: <= 1.5 s first call.
  7. the GPUODEBenchmarks Lorenz ensemble: t in [0, 1], Tsit5 at a fixed step dt = 1e-3,
     rho = linspace(0, 21, N), u0 = (1, 0, 0), N = 10^4, 10^5 (--gpu-sizes), against the
     diffrax formulation (``ConstantStepSize``, dt0 = 1e-3), chunked and whole; the end states
     must agree to 1e-10.

Run times are the best of --repeat calls after a first one (which includes compilation; the
repeat count drops to 1 above 10^4 trajectories). CPU seconds are the process's (all threads,
``time.process_time``): on a shared, loaded machine they are disturbed less than wall time.
Compare ratios within one run, never absolute numbers across runs. The default run takes about
13 minutes on two loaded cores, much of it compilation (--sections runs a subset).

--diagnose: the kernel's lanes per block against throughput (one core) and the solver order
(tsit5, dopri5, dopri8 through the kernel). --memory N: N trajectories with the default saving
(201 times) and default events in a fresh process, its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

RTOL, ATOL = 1e-8, 1e-10
CHUNK = 512
CORES = len(os.sched_getaffinity(0))


# -- problems -----------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    system: object
    y0: np.ndarray
    params: dict
    t1: float


def problem(N: int, seed: int = 0):
    """The Euclidean EMA system (p, s, tau), random starts, per-trajectory eta and beta."""
    from derivations import ModelSpec, derive

    system = derive(ModelSpec("euclidean", "ema"))
    rng = np.random.default_rng(seed)
    y0 = np.column_stack([rng.uniform(0.1, 1.2, N), rng.uniform(0.05, 1.5, N), rng.uniform(0.5, 1.0, N)])
    params = {"sigma2": 0.2, "alpha_p": 1.0, "eta": rng.uniform(0.0, 0.3, N), "beta": rng.uniform(0.1, 1.0, N)}
    return system, y0, params


def lorenz_system():
    from derivations import ODESystem

    return ODESystem.from_equations({"x": "sigma*(y - x)", "y": "x*(rho - z) - y", "z": "x*y - beta*z"},
                                    params=("sigma", "rho", "beta"), name="lorenz")


def vdp_system():
    from derivations import ODESystem

    return ODESystem.from_equations({"x": "y", "y": "mu*(1 - x**2)*y - x"}, params=("mu",), name="van der Pol")


def case(name: str, N: int, seed: int = 0, events: bool = False) -> Case:
    """One of the four ensembles. ``events``: the sextic starts on both sides of zero and runs
    long enough that some trajectories blow up and some collapse."""
    rng = np.random.default_rng(seed)
    if name == "euclidean-ema":
        system, y0, params = problem(N, seed)
        return Case(name, system, y0, params, 20.0)
    if name == "lorenz":
        y0 = np.column_stack([rng.uniform(-1, 1, N), rng.uniform(-1, 1, N), rng.uniform(0, 2, N)])
        return Case(name, lorenz_system(), y0, {"sigma": 10.0, "beta": 8 / 3, "rho": rng.uniform(0, 28, N)}, 1.0)
    if name == "van-der-pol":
        y0 = np.column_stack([rng.uniform(-2, 2, N), rng.uniform(-2, 2, N)])
        return Case(name, vdp_system(), y0, {"mu": rng.uniform(0.5, 3.0, N)}, 10.0)
    if name == "sextic":
        from derivations import ModelSpec, derive

        system = derive(ModelSpec("cosine")).reduce()
        base = {"sigma2": 0.2, "alpha_p": 1.0, "N_psi": 1.0, "N_phi": 1.0, "T": 1.0}
        if events:
            y0 = rng.uniform(-1.5, 1.2, (N, 1))
            return Case(name, system, y0, {**base, "eta": rng.uniform(0.3, 0.6, N)}, 60.0)
        return Case(name, system, rng.uniform(0.1, 1.2, (N, 1)), {**base, "eta": rng.uniform(0.05, 0.3, N)}, 10.0)
    raise ValueError(name)


SYSTEMS = ("euclidean-ema", "lorenz", "van-der-pol", "sextic")


def batch_params(params: dict, N: int) -> dict:
    return {k: np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=float), (N,))) for k, v in params.items()}


def lane_params(params, i):
    return {k: (float(v[i]) if np.ndim(v) else float(v)) for k, v in params.items()}


# -- timing -------------------------------------------------------------------------------------


CPU = {}
"""Best process CPU seconds of the last ``best`` call (all threads): a measure of work that a
loaded machine disturbs less than wall time."""


def best(fn, repeat):
    """(first-call seconds, best wall seconds of ``repeat`` later calls, last result)."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU["last"] = min(cpu)
    return first, min(times), out


def section(title: str) -> None:
    print(f"\n== {title}  (load average {os.getloadavg()[0]:.1f} on {CORES} cores)", flush=True)


# -- baselines: plain diffrax -------------------------------------------------------------------


def diffrax_one(system, t1, *, ts=None, events=False, dt=None, stats=False, t0=0.0):
    """``one(y, params) -> (ys, ...)``: the plain diffeqsolve of one trajectory (Tsit5,
    PIDController at RTOL/ATOL, or ConstantStepSize at ``dt``); ys are the saved states
    (t1 only, or ``ts``); with ``events`` the toolkit's default events written as one
    diffrax.Event (the smallest oriented margin, root-found by bisection); ``stats`` adds the
    attempted step count and the end time."""
    import diffrax
    import jax.numpy as jnp
    import optimistix as optx

    f = system.to_jax(checked=False)
    term = diffrax.ODETerm(lambda t, y, args: f(t, y, args))
    collapse = tuple(system.collapse_indices)
    event = None
    if events:
        def cond(t, y, args, **kw):
            m = 1e8 - jnp.max(jnp.abs(y))
            if collapse:
                m = jnp.minimum(m, jnp.max(jnp.abs(y[jnp.asarray(collapse)])) - 1e-8)
            return m

        event = diffrax.Event(cond, root_finder=optx.Bisection(rtol=1e-14, atol=1e-14 * (t1 - t0), flip=True))
    if dt is None and events:
        from dynamics._flow import finite_rms
        from dynamics._outcomes import step_floor

        controller = diffrax.PIDController(rtol=RTOL, atol=ATOL, dtmin=step_floor(t0, t1, np), force_dtmin=False,
                                           norm=finite_rms)
        dt0 = None
    elif dt is None:
        controller, dt0 = diffrax.PIDController(rtol=RTOL, atol=ATOL), None
    else:
        controller, dt0 = diffrax.ConstantStepSize(), dt
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=jnp.asarray(ts), t1=events)

    def one(y, p):
        sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), t0, t1, dt0, y, p, saveat=saveat, stepsize_controller=controller,
                                  event=event, max_steps=100_000, throw=False)
        out = (sol.ys,)
        if stats:
            out += (sol.stats["num_steps"],)
        if events:
            out += (sol.ts[-1], sol.ys[-1], sol.result == diffrax.RESULTS.event_occurred)
        return out

    return one


def jit_vmap(one):
    import jax

    return jax.jit(jax.vmap(one))


def run_chunked(fn, Y, P, size=CHUNK, workers=CORES):
    """``fn`` (jitted, vmapped) on chunks of ``size`` trajectories from a pool of ``workers``
    threads: what a user writes to use every core."""
    import jax

    def part(i):
        return jax.block_until_ready(fn(Y[i:i + size], {k: v[i:i + size] for k, v in P.items()}))

    with ThreadPoolExecutor(workers) as ex:
        parts = list(ex.map(part, range(0, len(Y), size)))
    return tuple(np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(len(parts[0])))


def run_whole(fn, Y, P):
    import jax

    return tuple(np.asarray(a) for a in jax.block_until_ready(fn(Y, P)))


# -- reference ----------------------------------------------------------------------------------


def reference(c: Case, idx, t_eval=None):
    """DOP853 at rtol 1e-12, atol 1e-14 from each start in ``idx``: (len(idx), n_t, n)."""
    from scipy.integrate import solve_ivp

    f = c.system.to_numpy(checked=False)
    ts = [c.t1] if t_eval is None else t_eval
    out = np.empty((len(idx), len(ts), c.y0.shape[1]))
    for j, i in enumerate(idx):
        p = lane_params(c.params, i)
        r = solve_ivp(lambda t, y: f(t, y, p), (0, c.t1), c.y0[i], method="DOP853", t_eval=ts, rtol=1e-12, atol=1e-14)
        out[j] = r.y.T
    return out


def rel_err(y, ref):
    """max |y - ref| / max(1, |ref|) over the checked trajectories."""
    return float(np.max(np.abs(y - ref) / np.maximum(1.0, np.abs(ref))))


def toolkit(c: Case, **kw):
    from dynamics import integrate

    return lambda: integrate(c.system, c.y0, (0, c.t1), c.params, rtol=RTOL, atol=ATOL, progress=False, **kw)


ROW = "  {:16s} {:>8s} {:24s} {:>8s} {:>8s} {:>10s} {:>11s} {:>9s}"


def header():
    print(ROW.format("system", "N", "method", "first s", "run s", "traj/s", "traj/CPU-s", "max err"))


def row(name, N, method, first, run, cpu, err):
    print(ROW.format(name, str(N), method, f"{first:.2f}", f"{run:.3f}", f"{N / run:.0f}", f"{N / cpu:.0f}",
                     "" if err is None else f"{err:.1e}"), flush=True)


# -- 1. end states ------------------------------------------------------------------------------


STATS = {}
"""Per (system, N): CPU seconds of the toolkit and of chunked diffrax and the step counts, for
section 4."""


def end_states(Ns, repeat, n_ref, whole_max):
    section("1. Ensembles, end states only (t_eval=[t1], no events), rtol 1e-8, atol 1e-10")
    header()
    ratios = []
    for N in Ns:
        reps = repeat if N <= 10_000 else 1
        for name in SYSTEMS:
            c = case(name, N)
            P = batch_params(c.params, N)
            idx = np.arange(min(n_ref, N))
            ref = reference(c, idx)[:, 0]
            k_first, k_run, sol = best(toolkit(c, t_eval=[c.t1], events=()), reps)
            k_cpu = CPU["last"]
            assert (sol.status == "finished").all(), sol.counts()
            row(name, N, "toolkit (integrate)", k_first, k_run, k_cpu, rel_err(sol.final[idx], ref))
            fn = jit_vmap(diffrax_one(c.system, c.t1, stats=True))
            b_first, b_run, (ys, steps) = best(lambda: run_chunked(fn, c.y0, P), reps)
            b_cpu = CPU["last"]
            row(name, N, f"diffrax chunked {CHUNK}x{CORES}", b_first, b_run, b_cpu, rel_err(ys[idx, -1], ref))
            if N <= whole_max:
                w_first, w_run, (yw, _) = best(lambda: run_whole(fn, c.y0, P), reps)
                w_cpu = CPU["last"]
                row(name, N, "diffrax whole batch", w_first, w_run, w_cpu, rel_err(yw[idx, -1], ref))
            STATS[name, N] = {"toolkit_cpu": k_cpu, "diffrax_cpu": b_cpu, "diffrax_tries": steps,
                              "toolkit_steps": np.asarray(sol.n_steps)}
            print(f"  {'':16s} {'':>8s} toolkit / chunked diffrax: {b_cpu / k_cpu:.2f}x per CPU-second, "
                  f"{b_run / k_run:.2f}x wall" + (f"; toolkit / whole batch {w_run / k_run:.2f}x wall"
                                                    if N <= whole_max else ""))
            ratios.append(b_cpu / k_cpu)
    print(f"  goal >= 4x per CPU-second: min {min(ratios):.2f}x, max {max(ratios):.2f}x")


# -- 2. saved times -----------------------------------------------------------------------------


def saved_times(N, repeat, n_ref):
    section(f"2. 100 saved times (t_eval = linspace(0, t1, 100), no events), N = {N}")
    header()
    ratios = []
    for name in SYSTEMS:
        c = case(name, N)
        P = batch_params(c.params, N)
        ts = np.linspace(0.0, c.t1, 100)
        idx = np.arange(min(n_ref, N))
        ref = reference(c, idx, ts)
        k_first, k_run, sol = best(toolkit(c, t_eval=ts, events=()), repeat)
        k_cpu = CPU["last"]
        assert sol.valid.all(), sol.counts()
        row(name, N, "toolkit (integrate)", k_first, k_run, k_cpu, rel_err(sol.y[idx], ref))
        fn = jit_vmap(diffrax_one(c.system, c.t1, ts=ts))
        b_first, b_run, (ys,) = best(lambda: run_chunked(fn, c.y0, P), repeat)
        b_cpu = CPU["last"]
        row(name, N, f"diffrax chunked {CHUNK}x{CORES}", b_first, b_run, b_cpu, rel_err(ys[idx], ref))
        print(f"  {'':16s} {'':>8s} toolkit / chunked diffrax: {b_cpu / k_cpu:.2f}x per CPU-second, "
              f"{b_run / k_run:.2f}x wall")
        ratios.append(b_cpu / k_cpu)
    print(f"  goal >= 3x per CPU-second: min {min(ratios):.2f}x, max {max(ratios):.2f}x")


# -- 3. events ----------------------------------------------------------------------------------


def with_events(N, repeat):
    section(f"3. Default events (collapse where declared, blow_up), end state only, N = {N}")
    print("  (the sextic here: p0 ~ U(-1.5, 1.2), eta ~ U(0.3, 0.6), t in [0, 60]: blow-ups and collapses)")
    header()
    ratios = []
    for name in SYSTEMS:
        c = case(name, N, events=True)
        P = batch_params(c.params, N)
        k_first, k_run, sol = best(toolkit(c, t_eval=[c.t1]), repeat)
        k_cpu = CPU["last"]
        row(name, N, "toolkit (integrate)", k_first, k_run, k_cpu, None)
        fn = jit_vmap(diffrax_one(c.system, c.t1, events=True))
        b_first, b_run, (_, t_end, y_end, fired) = best(lambda: run_chunked(fn, c.y0, P), repeat)
        b_cpu = CPU["last"]
        row(name, N, f"diffrax chunked {CHUNK}x{CORES}", b_first, b_run, b_cpu, None)
        early, d_early = sol.status != "finished", ~(t_end == c.t1)
        both = (sol.event_t == sol.t_end) & fired
        dt_ev = np.max(np.abs(sol.t_end[both] - t_end[both]) / c.t1) if both.any() else 0.0
        fin = ~early & ~d_early
        dy = rel_err(sol.final[fin], y_end[fin]) if fin.any() else 0.0
        print(f"  {'':16s} {'':>8s} toolkit / chunked diffrax: {b_cpu / k_cpu:.2f}x per CPU-second, "
              f"{b_run / k_run:.2f}x wall")
        print(f"  {'':16s} {'':>8s} toolkit {sol.counts()}; diffrax: {int(fired.sum())} events, "
              f"{int(d_early.sum())} stopped before t1 (disagreeing with the toolkit on {int(np.sum(early != d_early))}); "
              f"event times: max |diff| / t1 {dt_ev:.1e}; end states of the finished: max diff {dy:.1e}")
        ratios.append(b_cpu / k_cpu)
    print(f"  goal >= 3x per CPU-second: min {min(ratios):.2f}x, max {max(ratios):.2f}x")


# -- 4. cost per lane-step ----------------------------------------------------------------------


def peak_flops():
    """One core's DGEMM FLOP/s (numpy 2000 x 2000 matmul, BLAS limited to one thread), best of 3."""
    from threadpoolctl import threadpool_limits

    a, b = np.random.default_rng(0).standard_normal((2, 2000, 2000))
    with threadpool_limits(1, "blas"):
        a @ b
        t = min(_timed(lambda: a @ b) for _ in range(3))
    return 2 * 2000**3 / t


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def rhs_flops(system, n, L=512):
    """Flops of one right-hand side per lane: XLA's cost analysis of a vmapped call on L lanes."""
    import jax
    import jax.numpy as jnp

    f = system.to_jax(checked=False)
    P = {k: jax.ShapeDtypeStruct((L,), jnp.float64) for k in system.param_names}
    lowered = jax.jit(jax.vmap(lambda y, p: f(0.0, y, p))).lower(jax.ShapeDtypeStruct((L, n), jnp.float64), P)
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return (cost.get("flops", 0.0) + cost.get("transcendentals", 0.0)) / L


def rk_flops(n):
    """The Runge-Kutta arithmetic of one Tsit5 step per lane, counted from the tableau: each
    stage's combination (a mult and an add per nonzero coefficient, times h, plus y), the error
    estimate, the scaled RMS norm (8 per state) and ~30 scalar controller operations."""
    from dynamics._lanes import tableau

    tab = tableau("tsit5")
    per_state = sum(2 * sum(1 for x in row if x != 0.0) + 1 for row in tab.a)
    per_state += 2 * sum(1 for x in tab.e if x != 0.0) + 8
    return n * per_state + 30


def lane_steps(N, repeat):
    """Section 4 from the end-state runs of section 1 at N (their CPU seconds and step counts);
    the toolkit's attempted steps come from one more call of the batch driver."""
    from dynamics._batch import run_jax
    from dynamics._lanes import tableau
    from dynamics._numeric import NumericSystem

    section(f"4. Cost per useful lane-step (end states, N = {N}; CPU ns per attempted step of a running trajectory)")
    peak = peak_flops()
    S = tableau("tsit5").stages
    print(f"  one-core DGEMM peak (numpy 2000^2, 1 BLAS thread): {peak / 1e9:.1f} GFLOP/s")
    print(f"  {'system':16s} {'n':>3s} {'rhs fl':>7s} {'RK fl':>6s} {'fl/step':>8s} {'steps/traj':>10s} "
          f"{'toolkit ns':>10s} {'diffrax ns':>10s} {'lockstep':>8s} {'toolkit %peak':>13s} {'diffrax %peak':>13s}")
    for name in SYSTEMS:
        if (name, N) not in STATS:
            continue
        st = STATS[name, N]
        c = case(name, N)
        num = NumericSystem.of(c.system)
        raw = run_jax(num, c.y0, batch_params(c.params, N), np.array([c.t1]), (0.0, c.t1), "tsit5", RTOL, ATOL,
                      100_000, (), progress=False)
        k_tries = float(np.sum(raw["tries"]))
        d_tries = np.asarray(st["diffrax_tries"], dtype=float)
        chunks = [d_tries[i:i + CHUNK] for i in range(0, N, CHUNK)]
        lockstep = sum(ch.max() * len(ch) for ch in chunks) / d_tries.sum()
        n = c.y0.shape[1]
        fr, fk = rhs_flops(c.system, n), rk_flops(n)
        fl = (S - 1) * fr + fk
        k_ns = st["toolkit_cpu"] / k_tries * 1e9
        d_ns = st["diffrax_cpu"] / d_tries.sum() * 1e9
        print(f"  {name:16s} {n:3d} {fr:7.0f} {fk:6.0f} {fl:8.0f} {k_tries / N:10.1f} {k_ns:10.0f} {d_ns:10.0f} "
              f"{lockstep:8.2f} {100 * fl / (k_ns * 1e-9) / peak:12.2f}% {100 * fl / (d_ns * 1e-9) / peak:12.2f}%")
        if d_tries.sum() != k_tries:
            print(f"  {'':16s} attempted steps: toolkit {k_tries:.0f}, diffrax {d_tries.sum():.0f}")
    print("  (lockstep: lane-iterations a 512-lane diffrax chunk runs / its useful lane-steps)")


# -- 5. a large coupled system ------------------------------------------------------------------


def large_system(Ks, repeat, t1):
    import jax
    import jax.numpy as jnp

    from derivations import ModelSpec, derive
    from dynamics import integrate

    section(f"5. One large system: K self-consistent leading-order cosine modes (2K states), t in [0, {t1}], "
            "11 saved times, no events")
    print(f"  {'K':>6s} {'batch':>5s} {'toolkit s':>10s} {'(first)':>8s} {'default ev s':>12s} {'diffrax s':>10s} "
          f"{'(first)':>8s} {'diffrax/toolkit':>15s} {'steps':>6s} {'max |diff|':>10s}")
    spec = derive(ModelSpec("cosine", "simsiam", "self-consistent", "leading"))
    params = {"sigma2": 0.2, "eta": 0.3, "alpha_p": 1.0}
    ts = np.linspace(0.0, t1, 11)
    slower = []
    for K in Ks:
        modes = spec.modes(K)
        for B in (1, 64):
            rng = np.random.default_rng(K + B)
            p = rng.uniform(0.05, 1.0, (B, K))
            y0 = modes.pack(p=p, s=p**2 + rng.uniform(0, 0.1, (B, K)))
            reps = repeat if K * B <= 10_000 else 1
            run = lambda ev: integrate(modes, y0, (0, t1), params, t_eval=ts, events=ev, rtol=RTOL, atol=ATOL,
                                       progress=False)
            k_first, k_run, sol = best(lambda: run(()), reps)
            assert sol.valid.all(), sol.counts()
            _, e_run, _ = best(lambda: run(("collapse", "blow_up")), reps)
            one = diffrax_one(modes, t1, ts=ts, stats=True)
            P = {k: jnp.asarray(v) for k, v in params.items()}
            if B == 1:
                fn = jax.jit(one)
                call = lambda: tuple(np.asarray(a) for a in jax.block_until_ready(fn(jnp.asarray(y0[0]), P)))
            else:
                fn = jax.jit(jax.vmap(one, in_axes=(0, None)))
                call = lambda: tuple(np.asarray(a) for a in jax.block_until_ready(fn(jnp.asarray(y0), P)))
            d_first, d_run, (ys, steps) = best(call, reps)
            ys = ys.reshape(sol.y.shape)
            diff = float(np.max(np.abs(ys - sol.y)))
            print(f"  {K:6d} {B:5d} {k_run:10.3f} {k_first:8.2f} {e_run:12.3f} {d_run:10.3f} {d_first:8.2f} "
                  f"{d_run / k_run:15.2f} {int(np.max(steps)):6d} {diff:10.1e}", flush=True)
            if d_run < k_run:
                slower.append((K, B))
    print(f"  goal, the toolkit never slower: {'met' if not slower else f'slower at (K, batch) {slower}'}")


# -- 6. compilation -----------------------------------------------------------------------------


FIRST_CALL = """
import json, sys, time
t = time.perf_counter()
sys.path.insert(0, {here!r})
import numpy as np
from integrate import lorenz_system
from dynamics import integrate
imported = time.perf_counter() - t
system = lorenz_system()
rng = np.random.default_rng(0)
y0 = rng.uniform(-1, 1, (1000, 3))
params = {{"sigma": 10.0, "beta": 8 / 3, "rho": rng.uniform(0, 28, 1000)}}
kw = {kw}
t = time.perf_counter()
integrate(system, y0, (0, 1.0), params, progress=False, **kw)
first = time.perf_counter() - t
t = time.perf_counter()
integrate(system, y0, (0, 1.0), params, progress=False, **kw)
print(json.dumps({{"import": imported, "first": first, "again": time.perf_counter() - t}}))
"""


def first_calls():
    section("6. Compilation: first call of a 3-state system (Lorenz from equations, N = 1000) in a fresh process")
    here = os.path.dirname(os.path.abspath(__file__))
    cases = [("end state only, no events", "dict(t_eval=[1.0], events=())"),
             ("end state only, default events", "dict(t_eval=[1.0])"),
             ("201 saved times, default events", "dict()")]
    print(f"  {'call':34s} {'import s':>8s} {'first s':>8s} {'again s':>8s}")
    worst = 0.0
    for label, kw in cases:
        out = subprocess.run([sys.executable, "-c", FIRST_CALL.format(here=here, kw=kw)], capture_output=True,
                             text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        worst = max(worst, r["first"])
        print(f"  {label:34s} {r['import']:8.2f} {r['first']:8.2f} {r['again']:8.3f}", flush=True)
    print(f"  goal <= 1.5 s first call: worst {worst:.2f} s")
    compile_sequence()


def compile_sequence():
    """First and repeat calls of varied calls on a system nothing has compiled for yet."""
    from derivations import ODESystem
    from dynamics import integrate

    lv = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"))
    rng = np.random.default_rng(1)
    prm = {"a": 1.0, "b": 0.5, "c": 0.8, "d": 0.3}
    calls = [
        ("N=1000, t1=10, rtol 1e-6, 201 saves", 1000, 10.0, 1e-6, None),
        ("N=1500, t1=15, rtol 1e-8", 1500, 15.0, 1e-8, None),
        ("N=700, t1=5, rtol 1e-9, 201 other times", 700, 5.0, 1e-9, np.linspace(1.0, 5.0, 201)),
        ("N=1, t1=7", 1, 7.0, 1e-8, None),
        ("N=3, t1=3, rtol 1e-7", 3, 3.0, 1e-7, None),
        ("N=900, t1=12, t_eval of 50", 900, 12.0, 1e-8, np.linspace(0, 12.0, 50)),
        ("N=600, t1=8, t_eval of 40", 600, 8.0, 1e-10, np.linspace(0, 8.0, 40)),
        ("N=800, t1=9, end state only", 800, 9.0, 1e-8, [9.0]),
    ]
    print("\n  varied calls (Lotka-Volterra from equations, default events), seconds")
    print(f"  {'call':42s} {'first':>7s} {'repeat':>7s}")
    total = 0.0
    for name, N, t1, rtol, t_eval in calls:
        y0 = rng.uniform(0.5, 2.0, (N, 2))
        kw = dict(rtol=rtol, atol=rtol * 1e-2, t_eval=t_eval, progress=False)
        t = time.perf_counter()
        integrate(lv, y0, (0, t1), prm, **kw)
        first = time.perf_counter() - t
        t = time.perf_counter()
        integrate(lv, y0, (0, t1), prm, **kw)
        again = time.perf_counter() - t
        total += first
        print(f"  {name:42s} {first:7.2f} {again:7.2f}", flush=True)
    print(f"  total of first calls: {total:.1f} s")


# -- 7. GPUODEBenchmarks Lorenz -----------------------------------------------------------------


def gpuode_lorenz(Ns, repeat, whole_max):
    from dynamics import integrate

    section("7. GPUODEBenchmarks Lorenz: t in [0, 1], Tsit5 at fixed dt = 1e-3, rho = linspace(0, 21, N), "
            "u0 = (1, 0, 0)")
    header()
    system = lorenz_system()
    for N in Ns:
        reps = repeat if N <= 10_000 else 1
        y0 = np.tile([1.0, 0.0, 0.0], (N, 1))
        params = {"sigma": 10.0, "beta": 8 / 3, "rho": np.linspace(0.0, 21.0, N)}
        P = batch_params(params, N)
        tk = lambda: integrate(system, y0, (0, 1.0), params, dt=1e-3, t_eval=[1.0], events=(), progress=False)
        k_first, k_run, sol = best(tk, reps)
        k_cpu = CPU["last"]
        assert (sol.status == "finished").all(), sol.counts()
        row("lorenz", N, "toolkit (integrate)", k_first, k_run, k_cpu, None)
        fn = jit_vmap(diffrax_one(system, 1.0, dt=1e-3, stats=True))
        b_first, b_run, (ys, steps) = best(lambda: run_chunked(fn, y0, P), reps)
        b_cpu = CPU["last"]
        row("lorenz", N, f"diffrax chunked {CHUNK}x{CORES}", b_first, b_run, b_cpu, None)
        diff = float(np.max(np.abs(ys[:, -1] - sol.final)))
        extra = ""
        if N <= whole_max:
            w_first, w_run, (yw, _) = best(lambda: run_whole(fn, y0, P), reps)
            row("lorenz", N, "diffrax whole batch", w_first, w_run, CPU["last"], None)
            extra = f"; toolkit / whole batch {w_run / k_run:.2f}x wall"
        print(f"  {'':16s} {'':>8s} toolkit / chunked diffrax: {b_cpu / k_cpu:.2f}x per CPU-second, "
              f"{b_run / k_run:.2f}x wall{extra}; steps: toolkit {int(sol.n_steps.max())}, diffrax {int(steps.max())}; "
              f"end states agree to {diff:.1e} ({'ok' if diff <= 1e-10 else 'MISMATCH'})", flush=True)


# -- diagnosis and memory -----------------------------------------------------------------------


def diagnose(N, repeat):
    """The kernel's lanes per block (one core) and the solver order, on the Euclidean EMA."""
    import dynamics._batch as db
    from dynamics import integrate

    section(f"Diagnosis: Euclidean EMA, N = {N}, end states")
    c = case("euclidean-ema", N)
    saved = db.host_workers
    try:
        db.host_workers = lambda devices: 1
        for lanes in (32, 64, 128, 256, 512, 1024):
            _, run, _ = best(toolkit(c, t_eval=[c.t1], events=(), chunk_size=lanes), repeat)
            print(f"  lanes {lanes:5d} (one core): {N / run:8.0f} traj/s", flush=True)
    finally:
        db.host_workers = saved
    for solver in ("tsit5", "dopri5", "dopri8"):
        _, run, sol = best(lambda: integrate(c.system, c.y0, (0, c.t1), c.params, t_eval=[c.t1], events=(),
                                             solver=solver, progress=False), repeat)
        print(f"  solver {solver:6s}: {N / run:8.0f} traj/s, accepted steps mean {sol.n_steps.mean():5.1f} "
              f"max {sol.n_steps.max():3d}", flush=True)


def memory(N):
    """Peak RSS of N trajectories with the default saving, in a fresh process."""
    code = f"""
import resource, time, json, numpy as np
import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from integrate import problem
from dynamics import integrate
system, y0, params = problem({N})
t = time.perf_counter()
sol = integrate(system, y0, (0, 20.0), params, progress=False)
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "y_gb": sol.y.nbytes / 2**30, "counts": sol.counts()}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nMemory: N = {N}, default saving (201 times), default events: {r['seconds']:.1f} s "
          f"({N / r['seconds']:.0f} traj/s), peak RSS {r['rss_gb']:.2f} GB, of which Solution.y {r['y_gb']:.2f} GB; "
          f"{r['counts']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000], help="section 1 batch sizes")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7])
    ap.add_argument("--events-n", type=int, default=10_000, help="batch size of sections 2 and 3")
    ap.add_argument("--gpu-sizes", type=int, nargs="+", default=[10_000, 100_000], help="section 7 batch sizes")
    ap.add_argument("--modes", type=int, nargs="+", default=[100, 1000, 10_000], help="section 5 mode counts")
    ap.add_argument("--modes-t1", type=float, default=0.5, help="section 5 end time")
    ap.add_argument("--whole-max", type=int, default=10_000, help="largest batch run as one whole-batch call")
    ap.add_argument("--ref", type=int, default=100, help="trajectories checked against the reference")
    ap.add_argument("--diagnose", action="store_true")
    ap.add_argument("--memory", type=int, default=0, metavar="N")
    args = ap.parse_args()
    import dynamics  # noqa: F401  (float64)
    import jax

    print(f"devices: {jax.devices()}, cores: {CORES}, load average {os.getloadavg()[0]:.1f}")
    if 1 in args.sections:
        end_states(args.n, args.repeat, args.ref, args.whole_max)
    if 2 in args.sections:
        saved_times(args.events_n, args.repeat, args.ref)
    if 3 in args.sections:
        with_events(args.events_n, args.repeat)
    if 4 in args.sections and STATS:
        lane_steps(min(n for _, n in STATS), args.repeat)
    if 5 in args.sections:
        large_system(args.modes, args.repeat, args.modes_t1)
    if 6 in args.sections:
        first_calls()
    if 7 in args.sections:
        gpuode_lorenz(args.gpu_sizes, args.repeat, args.whole_max)
    if args.diagnose:
        diagnose(args.n[0], args.repeat)
    if args.memory:
        memory(args.memory)
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
