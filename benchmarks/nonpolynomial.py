"""Equilibria and bifurcations of non-polynomial and large systems: each path against the one it
replaces, in one run.

    python benchmarks/nonpolynomial.py

- The pendulum th' = w, w' = -sin th - g w on th in [-7, 7]: Krawczyk's interval search
  (the default for at most three states) against multi-start Newton with 2000 starts (forced by
  ``n_starts``). Both should report the five equilibria k pi.
- DirectPred (cosine, EMA target, one view) at alpha = 1/2: exact elimination after s = u**2
  (the default) against multi-start Newton (forced by a given start), and whether each finds
  the collapsed point s = 0.
- The same model's diagram in eta over [0, 0.6] at alpha = 1: the exact path on the polynomial
  form (the default) against continuation (forced by alpha = 1 + 2^-40, which no small rational
  is), with the points each reports.
- Six coupled Duffing oscillators (12 states): ``equilibria`` (exact elimination skipped past
  its budget, then Newton) against one ``integrate`` call of the same system as the baseline.
"""

from __future__ import annotations

import time

import numpy as np

from derivations import ModelSpec, ODESystem, derive
from dynamics import bifurcation, equilibria, integrate


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def duffing_chain(n: int = 6) -> ODESystem:
    eqs = {}
    for i in range(1, n + 1):
        left = f"x{i - 1}" if i > 1 else "0"
        right = f"x{i + 1}" if i < n else "0"
        eqs[f"x{i}"] = f"v{i}"
        eqs[f"v{i}"] = f"-k*x{i} - g*v{i} + c*({left} + {right} - 2*x{i}) - x{i}**3"
    return ODESystem.from_equations(eqs, params=("k", "g", "c"))


def main() -> None:
    pendulum = ODESystem.from_equations({"th": "w", "w": "-sin(th) - g*w"}, params=("g",), state_domain={"th": (-7, 7)})
    equilibria(pendulum, {"g": 0.5}, n_starts=8)  # compile Newton once, outside the timing
    proved, t_proved = timed(lambda: equilibria(pendulum, {"g": 0.5}))
    newton, t_newton = timed(lambda: equilibria(pendulum, {"g": 0.5}, n_starts=2000))
    print("pendulum on th in [-7, 7]")
    print(f"  multi-start Newton, 2000 starts (baseline): {t_newton:7.2f} s, {len(newton)} equilibria")
    print(f"  Krawczyk interval search:                   {t_proved:7.2f} s, {len(proved)} equilibria, proved "
          f"({t_newton / t_proved:.1f}x faster)")

    model = derive(ModelSpec("cosine", "ema", predictor="directpred", views="one"))
    params = {"eta": 0.1, "beta": 0.5, "N_psi": 1.0, "N_phi": 1.0, "T": 0.5}
    half = {**params, "alpha": 0.5}
    exact, t_exact = timed(lambda: equilibria(model, half))
    guess, t_guess = timed(lambda: equilibria(model, half, starts=[[0.5, 1.0]]))

    def collapsed(found):
        return any(e.point["s"] == 0.0 for e in found)

    print("DirectPred cosine/EMA, one view, alpha = 1/2")
    print(f"  multi-start Newton (baseline): {t_guess:7.2f} s, {len(guess)} equilibria, collapsed point found: "
          f"{collapsed(guess)}")
    print(f"  exact after s = u**2:          {t_exact:7.2f} s, {len(exact)} equilibria, collapsed point found: "
          f"{collapsed(exact)} ({t_guess / t_exact:.1f}x faster)")

    sweep = ("eta", np.linspace(0.0, 0.6, 13))
    polynomial, t_poly = timed(lambda: bifurcation(model, sweep, {**params, "alpha": 1.0}))
    continued, t_cont = timed(lambda: bifurcation(model, sweep, {**params, "alpha": 1.0 + 2.0**-40}))
    show = lambda b: ", ".join(f"{p.kind} at {p.value:.6g}" for p in b.points) or "none"  # noqa: E731
    print("DirectPred diagram in eta over [0, 0.6], 13 values")
    print(f"  continuation (alpha = 1 + 2^-40, baseline): {t_cont:7.2f} s: {show(continued)}")
    print(f"  exact path (alpha = 1):                     {t_poly:7.2f} s: {show(polynomial)} "
          f"({t_cont / t_poly:.1f}x faster)")

    chain = duffing_chain()
    prm = {"k": 1.0, "g": 0.5, "c": 0.3}
    sol, t_int = timed(lambda: integrate(chain, np.full(12, 0.5), (0.0, 50.0), prm, progress=False))
    found, t_eq = timed(lambda: equilibria(chain, prm))
    print("six coupled Duffing oscillators (12 states)")
    print(f"  one integrate call (baseline): {t_int:7.2f} s")
    print(f"  equilibria (fallback):         {t_eq:7.2f} s ({t_eq / t_int:.1f}x the baseline), {len(found)} found; "
          f"{found.reason}")


if __name__ == "__main__":
    main()
