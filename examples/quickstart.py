"""Quick start: the Representation Gap of a task whose answer is known.

Samples a 5-dimensional flat torus (uniform on [0,1)^5) embedded in R^10 by
(cos 2 pi t, sin 2 pi t) / (2 pi), measures the gap curve RG_n over training
sizes n in one pass per repeat, and reads the intrinsic dimension off the
log-log slope of the law RG_n ~ C n^(-2/d) (Perera et al., arXiv:2605.21692).

Runs in well under a minute on 2 cores:  python examples/quickstart.py
"""
import time

import numpy as np

import repgap


def main(d=5, n_train=100_000, n_test=5_000, seed=0):
    train = repgap.datasets.flat_torus(n_train, d, random_state=seed).X.astype(np.float32)
    test = repgap.datasets.flat_torus(n_test, d, random_state=seed + 1).X.astype(np.float32)
    repgap.show_config()
    t0 = time.perf_counter()
    curve = repgap.gap_curve(train, test, repeats=3, random_state=seed)
    elapsed = time.perf_counter() - t0
    print(f"\ngap curve: {len(curve.sizes)} sizes x {curve.repeats} repeats in {elapsed:.1f} s")
    print(f"{'n':>8} {'RG_n':>12} {'stderr':>10}")
    for n, g, s in zip(curve.sizes, curve.gaps, curve.stderr):
        print(f"{n:>8d} {g:>12.4e} {s:>10.2e}")
    # The law RG_n ~ C n^(-2/d) is asymptotic: its exponent gives the intrinsic
    # dimension. At the smallest sizes the nearest neighbours are far enough for
    # the curvature of the embedding to show (chordal < geodesic distances),
    # so the fit starts at n = 3000.
    fit = repgap.fit_law(curve, min_size=3000, random_state=seed)
    lo, hi = fit.dimension_ci
    print(f"\nintrinsic dimension from the law: {fit.dimension:.2f} [{lo:.2f}, {hi:.2f}]"
          f"  (true: {d}; ambient: {train.shape[1]})")
    print(f"predicted by the law for n = {n_train}: {repgap.predicted_gap(n_train, d):.4e}")
    res = repgap.representation_gap(train, test)
    print(f"Representation Gap at n = {n_train}: {res.value:.4e} +- {res.stderr:.1e} ({res.n_zero} duplicates)")


if __name__ == "__main__":
    import sys

    main(n_train=10_000, n_test=1_000) if "--quick" in sys.argv[1:] else main()
