"""Speed of TwoNN and MLE: repgap against scikit-dimension on the same data.

Points on a 5-D cube linearly embedded in R^20 (a random orthonormal
embedding, float64), n = 1e5 for both packages and n = 1e6 for repgap. Each
estimator is timed end to end (neighbours included), median of the repeats;
scikit-dimension runs once per size (it takes tens of seconds).

    python benchmarks/bench_id_speed.py [--repeats 3] [--skip-skdim]
"""
import argparse
import time

import numpy as np

import repgap
from repgap import datasets
from repgap.estimators import MLE, TwoNN


def timed(f, repeats):
    ts, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-skdim", action="store_true")
    args = ap.parse_args()
    rows = []
    data = {n: datasets.cube(n, 5, embed_dim=20, random_state=0).X for n in (100_000, 1_000_000)}
    print(f"repgap {repgap.__version__}; 5-D cube in R^20")
    for n, X in data.items():
        t, est = timed(lambda: TwoNN().fit(X), args.repeats)
        rows.append(("repgap", "TwoNN", n, t, est.dimension_))
        t, est = timed(lambda: MLE().fit(X), args.repeats)
        rows.append(("repgap", "MLE", n, t, est.dimension_))
    if not args.skip_skdim:
        import skdim

        X = data[100_000]
        t, est = timed(lambda: skdim.id.TwoNN().fit(X), 1)
        rows.append(("skdim", "TwoNN", 100_000, t, est.dimension_))
        t, est = timed(lambda: skdim.id.MLE().fit(X), 1)
        rows.append(("skdim", "MLE", 100_000, t, est.dimension_))
    ref = {m: t for p, m, n, t, _ in rows if p == "skdim"}
    print(f"{'package':8s} {'method':6s} {'n':>9s} {'time (s)':>9s} {'d_hat':>7s} {'/ skdim at 1e5':>15s}")
    for p, m, n, t, dh in rows:
        ratio = f"{t / ref[m]:.3f}" if m in ref else ""
        print(f"{p:8s} {m:6s} {n:9d} {t:9.2f} {dh:7.3f} {ratio:>15s}")


if __name__ == "__main__":
    main()
