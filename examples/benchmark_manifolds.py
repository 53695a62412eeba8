"""The intrinsic dimension of the benchmark manifolds of the ID literature.

The M1..M13 family (Hein & Audibert 2005; Campadelli et al. 2015), sampled
with ``repgap.datasets.benchmark_suite``: for each manifold, the true
dimension, the package's default estimator (TwoNN calibrated against
uniform balls), the gap law (the paper's estimator), TwoNN and MLE.

    python examples/benchmark_manifolds.py [--n 2500] [--quick]   (a minute or two on 2 cores)
"""
import argparse
import time

import numpy as np

import repgap

METHODS = ("calibrated", "gap", "twonn", "mle")


def main(n=2500, quick=False):
    suite = repgap.datasets.benchmark_suite(n if not quick else 600, random_state=0)
    if quick:
        suite = dict(list(suite.items())[:2])
    print(f"{'manifold':<18} {'D':>3} {'true d':>6}  " + "  ".join(f"{m:>10}" for m in METHODS))
    errors = {m: [] for m in METHODS}
    t0 = time.perf_counter()
    for name, man in suite.items():
        row = []
        for m in METHODS:
            kw = {"duplicates": "drop"}
            if m == "gap":
                kw["n_boot"] = 50
            est = repgap.intrinsic_dimension(man.X, method=m, random_state=0, **kw).dimension
            errors[m].append(abs(est - man.d) / man.d)
            row.append(est)
        print(f"{name:<18} {man.X.shape[1]:>3} {man.d:>6}  " + "  ".join(f"{v:>10.2f}" for v in row))
    print("\nmean relative error: " + ", ".join(f"{m} {np.mean(errors[m]):.3f}" for m in METHODS))
    print(f"({len(suite)} manifolds, n = {man.X.shape[0]}, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2500)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    main(a.n, a.quick)
