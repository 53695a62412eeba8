"""Pair-distance histogram: the compiled kernel against the machine's float32 GEMM peak.

Counts every unordered pair of n points in D dimensions into distance bins
(the correlation-integral workload: 25 geometric bins). The arithmetic is
that of the GEMM expansion, 2 D flops per pair, so the kernel's rate is
reported against the float32 GEMM peak measured in the same run (numpy
matmul of two 4096 x 4096 matrices, all cores). Medians of the repeats.

    python benchmarks/bench_pairs.py [--n 100000] [--dim 64] [--repeats 3]
"""
import argparse
import time

import numpy as np

import repgap
from repgap.pointprocess import pair_distance_counts


def gemm_peak(repeats=5):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4096, 4096)).astype(np.float32)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        A @ A
        ts.append(time.perf_counter() - t)
    return 2 * 4096**3 / np.median(ts) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    d = np.sqrt(2 * args.dim)
    edges = np.geomspace(d / 3, d * 1.5, 25)
    n_pairs = args.n * (args.n - 1) // 2
    peak = gemm_peak()
    print(f"repgap {repgap.__version__}; float32 GEMM peak {peak:.1f} GFLOP/s")
    print(f"n = {args.n}, D = {args.dim}, {n_pairs:.3e} pairs, {len(edges) - 1} bins")
    ts = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        counts = pair_distance_counts(X, edges=edges, backend="cython", progress=False)
        ts.append(time.perf_counter() - t)
    t = float(np.median(ts))
    rate = 2 * args.dim * n_pairs / t / 1e9
    print(f"cython pair histogram: median {t:.2f} s (runs {', '.join(f'{x:.2f}' for x in ts)}), "
          f"{rate:.1f} GFLOP/s = {rate / peak:.0%} of the GEMM peak; {counts.sum():.3e} pairs in bins")
    # the numpy reference on a subset, for scale
    m = min(args.n, 10_000)
    t = time.perf_counter()
    ref = pair_distance_counts(X[:m], edges=edges, backend="numpy", progress=False)
    tn = time.perf_counter() - t
    sub = pair_distance_counts(X[:m], edges=edges, backend="cython", progress=False)
    assert np.array_equal(ref, sub)
    print(f"numpy reference on the first {m} points: {tn:.2f} s "
          f"({2 * args.dim * m * (m - 1) / 2 / tn / 1e9:.1f} GFLOP/s); counts identical to cython")


if __name__ == "__main__":
    main()
