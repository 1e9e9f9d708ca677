"""Real data: SimSiam on the digits against the eigenmode theory
=============================================================

A linear SimSiam network trained on scikit-learn's digits against the eigenmode theory with the
data's own covariance spectrum, and which modes collapse.

Run it with::

    python examples/real_data_digits.py [--loss euclidean|cosine] [--h 64] [--t1 30] [--out digits.png]

(this page was built with ``--h 16 --t1 5``).

Claim: with the Euclidean loss only second moments enter, so the theory (data='spectrum',
lambda_j = the covariance eigenvalues) tracks the network trained on the actual images up to
SGD noise; the modes whose data variance lies below lambda* = 2 eta + 2 sqrt(eta^2 + eta sigma2)
collapse (dimensional collapse).
"""

import argparse

import numpy as np

from ncdyn import digits_data, digits_experiment, plot_real_data


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--loss", default="euclidean", choices=["euclidean", "cosine"])
    parser.add_argument("--h", type=int, default=32)
    parser.add_argument("--t1", type=float, default=20.0)
    parser.add_argument("--out", default="digits.png")
    args = parser.parse_args()
    data = digits_data()
    print(data)
    run = digits_experiment(args.loss, {"sigma2": 0.2, "eta": 0.1, "alpha_p": 1.0}, h=args.h, t1=args.t1,
                            dt=0.02, batch=256)
    print(run)
    print(run.table())
    if run.threshold is not None:
        print(f"lambda* = {run.threshold:.3f}: {int(np.sum(data.lam >= run.threshold))} of {data.X.shape[1]} "
              f"directions above it; surviving modes at t = {args.t1:g}: network {int(np.sum(run.survivors['network']))}, "
              f"closed form (eventually) {int(np.sum(run.survivors['closed form']))}")
    plot_real_data(run).savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
