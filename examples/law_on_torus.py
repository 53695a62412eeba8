"""The law on the flat torus against its prediction.

For uniform data on a set of d-volume V, the Representation Gap tends to
``Gamma(1 + 2/d) (V / (n V_d))^(2/d)`` (docs/theory.md, section 3; Zador's
random-quantization constant). On the flat torus [0, 1)^d there is no
boundary, so the measured gap should match the prediction to within a few
percent once neighbours are close; here the torus is embedded in R^(2d) by
``(cos 2 pi t, sin 2 pi t) / (2 pi)``, which preserves small distances to
second order. Prints measured / predicted for d = 2, 3, 5, 8 over the sizes,
and the dimension read off the curve.

    python examples/law_on_torus.py [--quick]     (about a minute on 2 cores)
"""
import argparse

import numpy as np

import repgap


def main(quick=False):
    n, m = (4000, 500) if quick else (50_000, 2_000)
    print(f"flat torus [0,1)^d embedded in R^2d; {n} training and {m} held-out points\n")
    for d in (2, 3, 5, 8):
        X = repgap.datasets.flat_torus(n + m, d, random_state=d).X.astype(np.float32)
        curve = repgap.gap_curve(X[:n], X[n:], repeats=2 if quick else 3, random_state=0, progress=False)
        pred = repgap.predicted_gap(curve.sizes, d)
        fit = repgap.estimators.GapLaw(repeats=2 if quick else 3, random_state=0, n_boot=50).fit(X[:n], test=X[n:])
        lo, hi = fit.dimension_ci_
        print(f"d = {d}: estimated {fit.dimension_:.2f} [{lo:.2f}, {hi:.2f}]")
        print(f"  {'n':>7}  {'measured':>10}  {'predicted':>10}  {'ratio':>6}")
        for j in range(0, len(curve.sizes), 3 if not quick else 4):
            print(f"  {curve.sizes[j]:>7d}  {curve.gaps[j]:>10.4e}  {pred[j]:>10.4e}  {curve.gaps[j] / pred[j]:>6.3f}")
        print(f"  {curve.sizes[-1]:>7d}  {curve.gaps[-1]:>10.4e}  {pred[-1]:>10.4e}  {curve.gaps[-1] / pred[-1]:>6.3f}\n")
    print("ratios tend to 1 as n grows; at d = 8 the approach is slower (larger neighbourhoods feel the curvature).")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    main(ap.parse_args().quick)
