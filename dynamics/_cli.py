"""The ``ncdyn`` command line.

    ncdyn derive --loss cosine --target simsiam [--norms frozen] [--moments exact]
                 [--reduced] [--latex] [--steps]
    ncdyn reproduce [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

from derivations import ModelSpec, derive
from derivations import display_form
_ALLOWED = ModelSpec.allowed()


def _derive_command(args: argparse.Namespace) -> int:
    spec = ModelSpec(loss=args.loss, target=args.target, norms=args.norms, moments=args.moments)
    t0 = time.perf_counter()
    system = derive(spec, cache=not args.no_cache)
    elapsed = time.perf_counter() - t0
    if args.reduced:
        system = system.reduce()
    if args.latex:
        print(system.latex())
    else:
        print(system)
        if not system.reduced:
            print(f"  reduced (on s = p**2/alpha_p): dp/dt = {display_form(system.reduce().equations['p'])}")
    if args.steps:
        for name, value in system.steps.items():
            print(f"\n[{name}]")
            if isinstance(value, dict):
                for k, v in value.items():
                    print(f"  {k}: {v}")
            else:
                print(f"  {value}")
    print(f"\n(derived in {elapsed:.2f} s)", file=sys.stderr)
    return 0


def _reproduce_command(args: argparse.Namespace) -> int:
    from ._reproduce import reproduce

    nums = reproduce(args.out, quick=args.quick, progress=not args.no_progress)
    print(f"wrote {args.out}/report.md and its figures in {nums['seconds']:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ncdyn",
        description="Symbolic-numeric analysis of non-contrastive self-supervised learning dynamics.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="derive and print the eigenmode ODEs of one model variant")
    d.add_argument("--loss", choices=_ALLOWED["loss"], default="cosine")
    d.add_argument("--target", choices=_ALLOWED["target"], default="simsiam")
    d.add_argument("--norms", choices=_ALLOWED["norms"], default="frozen")
    d.add_argument("--moments", choices=_ALLOWED["moments"], default="exact")
    d.add_argument("--reduced", action="store_true", help="restrict to the invariant manifold s = p**2/alpha_p")
    d.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    d.add_argument("--steps", action="store_true", help="also print the intermediate derivation steps")
    d.add_argument("--no-cache", action="store_true", help="derive afresh, ignoring the disk cache")
    d.set_defaults(func=_derive_command)
    r = sub.add_parser("reproduce", help="reproduce the paper's claims: figures and DIR/report.md")
    r.add_argument("--out", default="ncdyn-results", help="output directory (default: ncdyn-results)")
    r.add_argument("--quick", action="store_true", help="a fast smoke run with small grids")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_reproduce_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
