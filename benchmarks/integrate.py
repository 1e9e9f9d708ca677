"""Ensemble throughput: dynamics.integrate against plain diffrax (jit + vmap) and a SciPy loop.

    python benchmarks/integrate.py [--n 10000 100000] [--t1 20] [--repeat 3] [--diagnose]
                                   [--compile] [--memory 1000000]

The problem: the Euclidean EMA system (p, s, tau), N random initial states with
per-trajectory eta and beta, rtol 1e-8, atol 1e-10, t in [0, t1], only the final state saved,
no events. In one run and on the same trajectories:

  toolkit   ``dynamics.integrate`` (end state only saved: cache-sized sets of lanes on all cores,
            each lane taking the next trajectory when its own ends, so none waits for the slowest)
  diffrax   a plain ``jax.jit(jax.vmap(diffrax.diffeqsolve))`` with Tsit5 and a PIDController
            at the same tolerances (the baseline, written here)
  scipy     a loop of ``solve_ivp`` (DOP853) over a subsample (--scipy trajectories)

Every final state of a subsample (--ref) is checked against a tight SciPy reference
(DOP853, rtol 1e-12, atol 1e-14): max |error| must be <= 1e-6 for all three. Run times are the
best of --repeat runs after a first call (compile time is reported apart). The figure of merit
is the toolkit's throughput over plain diffrax's (target >= 2x).

--diagnose measures where the time goes: lockstep waste (max steps / mean steps over a batch
and over chunks, and what ordering lanes by difficulty could save), the cost per lane-step against
the cost of the right-hand side alone, solver order (Tsit5 / Dopri5 / Dopri8 steps and time at
this tolerance) and chunk size against cache (plain diffrax on chunks, one core).
--compile times first and repeat calls of a sequence of varied calls (t1, N, tolerances,
t_eval length). --memory N runs N trajectories with the default saving (201 times, default
events) in a subprocess and reports its peak RSS.

Timings on a shared machine vary with its load: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

RTOL, ATOL = 1e-8, 1e-10


def problem(N: int, seed: int = 0):
    from derivations import ModelSpec, derive

    system = derive(ModelSpec("euclidean", "ema"))
    rng = np.random.default_rng(seed)
    y0 = np.column_stack([rng.uniform(0.1, 1.2, N), rng.uniform(0.05, 1.5, N), rng.uniform(0.5, 1.0, N)])
    params = {"sigma2": 0.2, "alpha_p": 1.0, "eta": rng.uniform(0.0, 0.3, N), "beta": rng.uniform(0.1, 1.0, N)}
    return system, y0, params


def lane_params(params, i):
    return {k: (float(v[i]) if np.ndim(v) else float(v)) for k, v in params.items()}


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


def plain_diffrax(system, t1, solver_name="Tsit5", steps=False):
    """The baseline: jit(vmap(diffeqsolve)) over the whole batch, final state only."""
    import diffrax
    import jax

    f = system.to_jax(checked=False)
    term = diffrax.ODETerm(lambda t, y, args: f(t, y, args))
    solver = getattr(diffrax, solver_name)()

    def one(y, p):
        sol = diffrax.diffeqsolve(term, solver, 0.0, t1, None, y, p, saveat=diffrax.SaveAt(t1=True),
                                  stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL), max_steps=100_000)
        return (sol.ys[-1], sol.stats["num_steps"]) if steps else sol.ys[-1]

    return jax.jit(jax.vmap(one))


def reference(system, y0, params, t1, idx):
    from scipy.integrate import solve_ivp

    f = system.to_numpy(checked=False)
    out = np.empty((len(idx), y0.shape[1]))
    for j, i in enumerate(idx):
        p = lane_params(params, i)
        r = solve_ivp(lambda t, y: f(t, y, p), (0, t1), y0[i], method="DOP853", rtol=1e-12, atol=1e-14)
        out[j] = r.y[:, -1]
    return out


def scipy_loop(system, y0, params, t1, idx):
    from scipy.integrate import solve_ivp

    f = system.to_numpy(checked=False)
    out = np.empty((len(idx), y0.shape[1]))
    t = time.perf_counter()
    for j, i in enumerate(idx):
        p = lane_params(params, i)
        r = solve_ivp(lambda t, y: f(t, y, p), (0, t1), y0[i], method="DOP853", t_eval=[t1], rtol=RTOL, atol=ATOL)
        out[j] = r.y[:, -1]
    return time.perf_counter() - t, out


def compare(N, t1, repeat, n_scipy, n_ref):
    import jax
    import jax.numpy as jnp

    from dynamics import integrate

    system, y0, params = problem(N)
    P = {k: jnp.asarray(np.broadcast_to(v, (N,))) for k, v in params.items()}
    Y = jnp.asarray(y0)
    base = plain_diffrax(system, t1)
    b_first, b_run, b_out = best(lambda: jax.block_until_ready(base(Y, P)), repeat)
    b_cpu = CPU["last"]
    tk = lambda: integrate(system, y0, (0, t1), params, t_eval=[t1], events=(), rtol=RTOL, atol=ATOL, progress=False)
    k_first, k_run, sol = best(tk, repeat)
    k_cpu = CPU["last"]
    assert (sol.status == "finished").all(), sol.counts()
    idx = np.arange(min(n_ref, N))
    ref = reference(system, y0, params, t1, idx)
    s_idx = np.arange(min(n_scipy, N))
    s_time, s_out = scipy_loop(system, y0, params, t1, s_idx)
    err = {"toolkit": np.max(np.abs(sol.final[idx] - ref)), "diffrax": np.max(np.abs(np.asarray(b_out)[idx] - ref)),
           "scipy": np.max(np.abs(s_out[: len(idx)] - ref[: len(s_idx)]))}
    print(f"Euclidean EMA, N = {N} trajectories, t in [0, {t1}], rtol {RTOL:g}, atol {ATOL:g}, final state only")
    print(f"  {'':28s} {'compile':>9s} {'run':>9s} {'traj/s':>10s} {'traj/CPU-s':>11s} {'max err vs ref':>15s}")
    print(f"  {'toolkit (integrate)':28s} {k_first - k_run:8.2f}s {k_run:8.3f}s {N / k_run:10.0f} {N / k_cpu:11.0f} "
          f"{err['toolkit']:15.2e}")
    print(f"  {'plain diffrax jit+vmap':28s} {b_first - b_run:8.2f}s {b_run:8.3f}s {N / b_run:10.0f} {N / b_cpu:11.0f} "
          f"{err['diffrax']:15.2e}")
    print(f"  {f'scipy loop ({len(s_idx)} traj)':28s} {'':9s} {s_time:8.3f}s {len(s_idx) / s_time:10.0f} {'':11s} "
          f"{err['scipy']:15.2e}")
    print(f"  toolkit / plain diffrax throughput: {b_run / k_run:.2f}x wall, {b_cpu / k_cpu:.2f}x per CPU second;  "
          f"toolkit / scipy: {s_time / len(s_idx) * N / k_run:.0f}x  (reference: DOP853 rtol 1e-12 on {len(idx)} "
          "trajectories)")
    ok = max(err.values()) <= 1e-6
    print(f"  accuracy check (all <= 1e-6): {'ok' if ok else 'FAILED'}")
    return {"N": N, "toolkit": N / k_run, "diffrax": N / b_run, "ratio": b_run / k_run, "errors": err}


def diagnose(N, t1, repeat):
    """Where the time goes: lockstep waste, per-step cost, solver order, chunk size."""
    import jax
    import jax.numpy as jnp

    import dynamics._batch as db
    import dynamics._sharding as dsh
    from dynamics import integrate

    system, y0, params = problem(N)
    P = {k: jnp.asarray(np.broadcast_to(v, (N,))) for k, v in params.items()}
    Y = jnp.asarray(y0)
    print(f"\nDiagnosis (N = {N}):")
    steps = {}
    for name in ("Tsit5", "Dopri5", "Dopri8"):
        fn = plain_diffrax(system, t1, name, steps=True)
        _, run, (_, st) = best(lambda: jax.block_until_ready(fn(Y, P)), repeat)
        st = np.asarray(st)
        steps[name] = st
        print(f"  solver order: plain {name:6s}: {N / run:8.0f} traj/s, steps mean {st.mean():5.1f} max {st.max():3d}")
    st = steps["Tsit5"].astype(float)
    C = db.CHUNK_LANES["cpu"]
    chunks = st[: N // C * C].reshape(-1, C)
    srt = np.sort(st)[: N // C * C].reshape(-1, C)
    print(f"  lockstep waste (Tsit5 step counts): whole batch max/mean = {st.max() / st.mean():.2f}; "
          f"chunks of {C}: mean(max)/mean = {chunks.max(1).mean() / st.mean():.2f} in input order, "
          f"{srt.max(1).mean() / st.mean():.3f} if lanes were ordered by their true step counts")
    # per lane-step cost against the rhs alone
    fn = plain_diffrax(system, t1)
    _, run, _ = best(lambda: jax.block_until_ready(fn(Y, P)), repeat)
    f = system.to_jax(checked=False)
    n_eval = int(st.max()) * 6

    @jax.jit
    def rhs_only(Y, P):
        return jax.lax.fori_loop(0, n_eval, lambda i, y: y + 1e-9 * jax.vmap(lambda a, p: f(0.0, a, p))(y, P), Y)

    _, r_run, _ = best(lambda: jax.block_until_ready(rhs_only(Y, P)), repeat)
    lane_steps = N * st.max()
    print(f"  per lane-step: plain diffrax {run / lane_steps * 1e9:6.0f} ns (lockstep iterations x lanes), "
          f"rhs evaluations alone (6 per step, same loop) {r_run / lane_steps * 1e9:5.0f} ns: "
          f"{run / r_run:.1f}x the rhs cost is solver overhead")
    # chunk size against cache: plain diffrax on host chunks, one core, input order
    for c in (64, 256, 512, 1024, 4096, N):
        if c > N:
            continue
        m = N // c * c
        parts = [(Y[i:i + c], {k: v[i:i + c] for k, v in P.items()}) for i in range(0, m, c)]
        jax.block_until_ready(fn(*parts[0]))
        _, run_c, _ = best(lambda: [jax.block_until_ready(fn(*p)) for p in parts], max(1, repeat - 1))
        print(f"  chunk size {c:6d} (one core, input order): {m / run_c:8.0f} traj/s")
    # the toolkit's own factors, one switched off at a time
    tk = lambda: integrate(system, y0, (0, t1), params, t_eval=[t1], events=(), rtol=RTOL, atol=ATOL, progress=False)
    _, full, _ = best(tk, repeat)
    saved = dsh.host_workers
    try:
        dsh.host_workers = lambda devices: 1
        _, onecore, _ = best(tk, repeat)
    finally:
        dsh.host_workers = saved
    print(f"  toolkit: {N / full:8.0f} traj/s on all cores, {N / onecore:8.0f} on one core (plain diffrax {N / run:8.0f})")

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
    ]
    print("\nCompilation: varied calls (Lotka-Volterra from equations), seconds")
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
        print(f"  {name:42s} {first:7.2f} {again:7.2f}")
    print(f"  total of first calls: {total:.1f} s")


def memory(N):
    """Peak RSS of N trajectories with the default saving, in a fresh process."""
    code = f"""
import resource, time, json, numpy as np
import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from integrate import problem
from dynamics import integrate
system, y0, params = problem({N})
t = time.perf_counter()
sol = integrate(system, y0, (0, 20.0), params)
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
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--t1", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scipy", type=int, default=300, help="trajectories in the SciPy loop")
    ap.add_argument("--ref", type=int, default=200, help="trajectories checked against the reference")
    ap.add_argument("--diagnose", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--memory", type=int, default=0, metavar="N")
    args = ap.parse_args()
    import dynamics  # noqa: F401  (float64)
    import jax

    print(f"devices: {jax.devices()}, cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
    for N in args.n:
        compare(N, args.t1, args.repeat, args.scipy, args.ref)
    if args.diagnose:
        diagnose(args.n[0], args.t1, args.repeat)
    if args.compile:
        compile_sequence()
    if args.memory:
        memory(args.memory)
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
