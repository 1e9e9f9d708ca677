"""Theory against the network at several widths
============================================

Claim: the exact finite-width flow tracks the real network within the network's own floor at
every width; of the approximations, the leading-order cosine system is the best and is
trustworthy only at large width.

Run it with::

    python examples/theory_vs_network.py [--widths 4 16 64 256] [--t1 3] [--max-exact-width 1000]

(this page was built with ``--widths 4 16 --max-exact-width 16 --t1 1``; the defaults take
several minutes).

Trains the linear SimSiam network (true cosine loss, sigma2 = 0.2, eta = 0.3, batch 4096,
aligned start) at each width and integrates the exact finite-width flow (norms="exact", up to
--max-exact-width modes: its cost grows with the width) and every eigenmode approximation from
the same initial spectrum; prints the maximal errors over time and the network's own floor
(twice its distance to a run with another seed and half the step). The
Euclidean loss (eta = 0.05) is shown for reference: its eigenmode system is exact, up to
integration tolerance.
"""

import argparse
import time

from ncdyn import MAX_EXACT_WIDTH, ModelSpec, compare

ap = argparse.ArgumentParser()
ap.add_argument("--widths", type=int, nargs="+", default=[4, 16, 64, 256])
ap.add_argument("--t1", type=float, default=3.0)
ap.add_argument("--max-exact-width", type=int, default=MAX_EXACT_WIDTH)
args = ap.parse_args()

for loss, eta in (("euclidean", 0.05), ("cosine", 0.3)):
    t0 = time.perf_counter()
    floor = {"floor_seed": 1, "floor_widths": [w for w in args.widths if w <= args.max_exact_width]} if loss == "cosine" else {}
    result = compare(ModelSpec(loss), {"sigma2": 0.2, "eta": eta, "alpha_p": 1.0}, widths=args.widths, t1=args.t1,
                     max_exact_width=args.max_exact_width, progress=True, **floor)
    print(f"\n{loss} loss, eta = {eta} ({time.perf_counter() - t0:.0f} s)")
    print(result.table())
    print("best per width:", result.best())
    if result.floor:
        print("widths at which each is within the network's floor:", result.within_floor())
