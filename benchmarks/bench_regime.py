"""The asymptotic-regime rule of the gap law on real tables and on supports of known dimension.

Real tables (scikit-learn's, shipped with it): digits (raw pixel values, as
``examples/digits.py`` and ``repgap analyze`` take them), and iris, wine and
breast cancer standardized; duplicates dropped. Known supports: the flat
torus T^3 and the sphere S^2 at n = 8000, the cube [0,1]^8 at n = 2.2e4
(held out: 1e4 more for n = 1e5 with ``--large``). For each: the law's d
and interval, the local dimension over the largest sizes, the regime and
the headline interval.

    python benchmarks/bench_regime.py [--large]      (seconds; --large: about a minute)
"""
import argparse
import time
import warnings

import numpy as np

from repgap import datasets
from repgap.estimators import GapLaw


def _std(X):
    X = np.asarray(X, dtype=np.float64)
    return (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--large", action="store_true")
    args = ap.parse_args()
    from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine

    cases = [("digits (raw)", load_digits().data.astype(np.float64), None, dict(test_size=0.15, min_size=50)),
             ("iris", _std(load_iris().data), None, {}), ("wine", _std(load_wine().data), None, {}),
             ("breast cancer", _std(load_breast_cancer().data), None, {}),
             ("torus T^3, n = 8000", datasets.flat_torus(8000, 3, random_state=0).X, 3, {}),
             ("sphere S^2, n = 8000", datasets.sphere(8000, 2, random_state=1).X, 2, {}),
             ("cube [0,1]^8, n = 22000", datasets.cube(22000, 8, random_state=2).X, 8, {})]
    if args.large:
        cases.append(("cube [0,1]^8, n = 1e5", datasets.cube(110000, 8, random_state=0).X.astype(np.float32), 8,
                      dict(test_size=10000)))
        cases.append(("torus T^8, n = 1e5", datasets.flat_torus(110000, 8, random_state=0).X.astype(np.float32), 8,
                      dict(test_size=10000)))
    print("| data | true d | law d | models' interval | local d (largest sizes) | regime | headline interval | time (s) |")
    print("|---|---:|---:|---|---|---|---|---:|")
    for name, X, d, kw in cases:
        X = np.unique(X, axis=0)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            est = GapLaw(random_state=0, **kw).fit(X)
        dt = time.perf_counter() - t
        r = est.regime_
        print(f"| {name} | {d if d else '-'} | {est.dimension_:.2f} | [{est.models_ci_[0]:.2f}, {est.models_ci_[1]:.2f}] | "
              f"{r.top_dimension:.2f} [{r.top_ci[0]:.2f}, {r.top_ci[1]:.2f}] (n = {r.top_sizes[0]}..{r.top_sizes[1]}) | "
              f"{r.regime} | [{est.dimension_ci_[0]:.2f}, {est.dimension_ci_[1]:.2f}] | {dt:.1f} |", flush=True)


if __name__ == "__main__":
    main()
