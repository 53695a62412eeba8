"""Accuracy of the gap-law estimator on data of known dimension (issue #3).

For each support (the flat torus embedded in R^(2d) by (cos, sin)/(2 pi),
and the unit cube) and each d, samples n training + m held-out points,
fits the law with and without the finite-size term and prints the estimate,
its bootstrap interval, the relative error and the time.

    python benchmarks/bench_id.py                 # n = 1e5, m = 1e4 (about 1 min)
    python benchmarks/bench_id.py --n 20000       # quicker
"""
import argparse
import time

import numpy as np

from repgap import datasets
from repgap.estimators import GapLaw


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--m", type=int, default=10_000)
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 5, 8, 12])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"{'support':<7} {'d':>3} {'correction':>10} {'d_hat':>7} {'95% interval':>16} {'rel.err':>8} {'time':>6}")
    for name, sampler in (("torus", datasets.flat_torus), ("cube", datasets.cube)):
        for d in args.dims:
            X = sampler(args.n + args.m, d, random_state=d).X.astype(np.float32)
            for corr in (False, True):
                t = time.perf_counter()
                est = GapLaw(test_size=args.m, correction=corr, repeats=args.repeats, n_boot=100,
                             random_state=0).fit(X)
                lo, hi = est.dimension_ci_
                print(f"{name:<7} {d:>3} {str(corr):>10} {est.dimension_:>7.3f} [{lo:>6.2f}, {hi:>6.2f}] "
                      f"{abs(est.dimension_ - d) / d:>8.3f} {time.perf_counter() - t:>5.1f}s", flush=True)


if __name__ == "__main__":
    main()
