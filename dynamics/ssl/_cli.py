"""The ``ncdyn`` command line.

    ncdyn derive [--loss cosine] [--target simsiam] [--predictor learned] [--no-stop-gradient]
                 [--views both] [--data isotropic] [--norms frozen] [--moments exact]
                 [--no-standardize] [--finite-batch] [--reduced] [--discrete] [--latex] [--steps]
    ncdyn reproduce [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

import sympy as sp

from derivations import ModelSpec, derive, display_form
from derivations import latex as to_latex

_ALLOWED = ModelSpec.allowed()


def _show(value, as_latex: bool, indent: str = "  ") -> str:
    if isinstance(value, str):
        return indent + value
    if hasattr(value, "items"):
        return "\n".join(f"{indent}{k}: " + _show(v, as_latex, "").lstrip() for k, v in value.items())
    return indent + (to_latex(value) if as_latex else sp.sstr(value))


def _derive_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        spec = ModelSpec(
            loss=args.loss, target=args.target, norms=args.norms or "frozen", moments=args.moments or "exact",
            predictor=args.predictor, stop_gradient=False if args.no_stop_gradient else None, views=args.views,
            data=args.data, normalize=args.normalize, eps=args.eps,
            standardize=False if args.no_standardize else None, batch="finite" if args.finite_batch else "infinite",
        )
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if not spec.involves_norms and (args.norms or args.moments):
        parser.error(
            f"--norms/--moments apply only to losses that involve the norms (cosine, or expressions that divide "
            f"by or take roots of A, C); {spec.loss} is polynomial in A, B, C, so every average is exact"
        )
    t0 = time.perf_counter()
    system = derive(spec, cache=not args.no_cache)
    elapsed = time.perf_counter() - t0
    if args.reduced:
        if system.manifold is None:
            parser.error(f"--reduced: {spec.label} has no invariant manifold to restrict to")
        system = system.reduce()
    if args.discrete:
        system = system.discrete()
    if args.latex:
        print(system.latex())
    else:
        print(system)
        if not system.reduced and system.manifold is not None:
            print(f"  reduced (on s = p**2/alpha_p): dp/dt = {display_form(system.reduce().equations['p'])}")
    if args.steps:
        for name, value in system.steps.items():
            print(f"\n[{name}]")
            print(_show(value, args.latex))
    print(f"\n(derived in {elapsed:.2f} s)", file=sys.stderr)
    return 0


def _reproduce_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ._reproduce import reproduce

    nums = reproduce(args.out, quick=args.quick, progress=not args.no_progress)
    print(f"wrote {args.out}/report.md and its figures in {nums['seconds']:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ncdyn`` command (subcommands ``derive`` and ``reproduce``)."""
    parser = argparse.ArgumentParser(
        prog="ncdyn",
        description="Symbolic-numeric analysis of non-contrastive self-supervised learning dynamics.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "derive", help="derive and print the eigenmode ODEs of one model",
        description="Derive the eigenmode ODEs of one linear non-contrastive model with SymPy and print them.",
    )
    d.add_argument("--loss", default="cosine", metavar="LOSS",
                   help=f"loss: one of {', '.join(_ALLOWED['loss'])}, or an expression in "
                        "A=<a,a>, B=<a,b>, C=<b,b> such as '-B/sqrt(A*C)' (default: cosine)")
    d.add_argument("--target", choices=_ALLOWED["target"], default="simsiam",
                   help="target branch: a stop-gradient copy (simsiam) or an EMA of the online weights (ema)")
    d.add_argument("--predictor", choices=_ALLOWED["predictor"], default=None,
                   help="predictor: trained by gradient flow (learned), DirectPred's closed form F^alpha "
                        "(directpred), or the identity (none); default learned, none for the losses of the "
                        "batch's moments (barlow-twins, vicreg, spectral-contrastive)")
    d.add_argument("--no-standardize", action="store_true",
                   help="Barlow Twins: the cross-correlation of the raw embeddings (Simon et al.)")
    d.add_argument("--finite-batch", action="store_true",
                   help="losses of the batch's moments: the expected batch loss at batch size `batch`")
    d.add_argument("--normalize", action="store_true", help="DirectPred: divide F by its largest eigenvalue")
    d.add_argument("--eps", action="store_true", help="DirectPred: add eps to every predictor eigenvalue")
    d.add_argument("--no-stop-gradient", action="store_true",
                   help="let the gradient flow through the target branch too (SimSiam only; the default "
                        "for the losses of the batch's moments)")
    d.add_argument("--views", choices=_ALLOWED["views"], default="both",
                   help="noise on both views, or on one (the first view clean)")
    d.add_argument("--data", choices=_ALLOWED["data"], default="isotropic",
                   help="isotropic data, or a data spectrum (per-mode variance lambda)")
    d.add_argument("--norms", choices=_ALLOWED["norms"], default=None,
                   help="norm treatment for losses that involve the norms (default: frozen)")
    d.add_argument("--moments", choices=_ALLOWED["moments"], default=None,
                   help="moment treatment for losses that involve the norms (default: exact)")
    d.add_argument("--reduced", action="store_true", help="restrict to the invariant manifold s = p**2/alpha_p")
    d.add_argument("--discrete", action="store_true",
                   help="print the discrete-time map (one gradient-descent step of size lr)")
    d.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text (the steps too)")
    d.add_argument("--steps", action="store_true", help="also print the intermediate derivation steps")
    d.add_argument("--no-cache", action="store_true", help="derive afresh, ignoring the disk cache")
    d.set_defaults(func=_derive_command, parser=d)
    r = sub.add_parser(
        "reproduce", help="reproduce the papers' claims: figures and DIR/report.md",
        description="Run every claim of the report (theory, network simulations) and write figures and report.md.",
    )
    r.add_argument("--out", default="ncdyn-results", help="output directory (default: ncdyn-results)")
    r.add_argument("--quick", action="store_true", help="a fast smoke run with small grids")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_reproduce_command, parser=r)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``ncdyn`` command with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args, args.parser)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
