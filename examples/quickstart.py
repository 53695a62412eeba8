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


def torus(n, d, rng):
    t = rng.random((n, d))
    return np.concatenate([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)], axis=1) / (2 * np.pi)


def main(d=5, n_train=100_000, n_test=5_000, seed=0):
    rng = np.random.default_rng(seed)
    train = torus(n_train, d, rng).astype(np.float32)
    test = torus(n_test, d, rng).astype(np.float32)
    repgap.show_config()
    t0 = time.perf_counter()
    curve = repgap.gap_curve(train, test, repeats=3, random_state=seed)
    elapsed = time.perf_counter() - t0
    print(f"\ngap curve: {len(curve.sizes)} sizes x {curve.repeats} repeats in {elapsed:.1f} s")
    print(f"{'n':>8} {'RG_n':>12} {'stderr':>10}")
    for n, g, s in zip(curve.sizes, curve.gaps, curve.stderr):
        print(f"{n:>8d} {g:>12.4e} {s:>10.2e}")
    # the slope of log RG against log n is -2/d (issue #3 adds repgap.fit_law
    # with confidence intervals; here a plain least-squares line on the upper half)
    half = len(curve.sizes) // 2
    slope = np.polyfit(np.log(curve.sizes[half:]), np.log(curve.gaps[half:]), 1)[0]
    d_hat = -2.0 / slope
    print(f"\nintrinsic dimension from the law: {d_hat:.2f}  (true: {d}; ambient: {train.shape[1]})")
    res = repgap.representation_gap(train, test)
    print(f"Representation Gap at n = {n_train}: {res.value:.4e} +- {res.stderr:.1e} ({res.n_zero} duplicates)")


if __name__ == "__main__":
    main()
