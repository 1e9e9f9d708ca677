"""Derivation time per model variant: cold (fresh process, empty cache) vs disk-cache hit.

    python benchmarks/derive.py

Each figure is the time of the ``derive(spec)`` call alone in a fresh Python process (imports
excluded). Cold: an empty cache directory. Cached: a second fresh process reading the entry
the first one wrote. The ratio cold/cached is the speed-up the cache buys.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
from derivations import ModelSpec, derive
spec = ModelSpec(**json.loads(sys.argv[1]))
t0 = time.perf_counter()
system = derive(spec)
print(json.dumps({"seconds": time.perf_counter() - t0, "order": system.order}))
"""


def time_in_fresh_process(spec_fields: dict, cache_dir: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec_fields)],
        capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "NCDYN_CACHE_DIR": cache_dir},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from derivations import ModelSpec

    classic = {
        ModelSpec(*f)
        for f in itertools.product(("euclidean", "cosine"), ("simsiam", "ema"), ("frozen", "self-consistent"), ("exact", "leading"))
    }
    wider = {
        ModelSpec("euclidean", "ema", predictor="directpred"),
        ModelSpec("isoloss-cosine", "ema", predictor="directpred", normalize=True, eps=True),
        ModelSpec("cosine", stop_gradient=False),
        ModelSpec("cosine", "ema", views="one", data="spectrum"),
    }
    specs = sorted(classic | wider, key=lambda s: s.label)
    print(f"{'variant':<80} {'order':>5} {'cold s':>8} {'cached s':>9} {'ratio':>7}")
    worst_cold = worst_cached = 0.0
    for spec in specs:
        fields = {
            "loss": spec.loss, "target": spec.target, "norms": spec.norms, "moments": spec.moments,
            "predictor": spec.predictor, "stop_gradient": spec.stop_gradient, "views": spec.views,
            "data": spec.data, "normalize": spec.normalize, "eps": spec.eps,
        }
        with tempfile.TemporaryDirectory() as cache_dir:
            cold = time_in_fresh_process(fields, cache_dir)
            cached = time_in_fresh_process(fields, cache_dir)
        worst_cold = max(worst_cold, cold["seconds"])
        worst_cached = max(worst_cached, cached["seconds"])
        print(
            f"{spec.label:<80} {str(cold['order']):>5} {cold['seconds']:>8.2f} {cached['seconds']:>9.3f} "
            f"{cold['seconds'] / cached['seconds']:>7.0f}x"
        )
    print(f"\nworst cold {worst_cold:.2f} s (target < 10 s); worst cached {worst_cached:.3f} s (target < 0.2 s)")


if __name__ == "__main__":
    main()
