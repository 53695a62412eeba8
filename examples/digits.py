"""A real data set: scikit-learn's 8x8 handwritten digits (shipped inside scikit-learn).

1797 images of 64 pixels. The gap law is fitted on nested subsets of the
images, with the point-process estimators (TwoNN, MLE, GRIDE, correlation
dimension) beside it, all on the same data; then per digit class (about 180
images each), where the dimension of one class is lower than that of the
mixture. Needs scikit-learn (``pip install scikit-learn``).

    python examples/digits.py [--quick]          (seconds on 2 cores)
"""
import argparse
import sys

import numpy as np

import repgap
from repgap.analysis import analyze


def main(quick=False):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("this example needs scikit-learn: pip install scikit-learn")
        return 0
    digits = load_digits()
    X = digits.data.astype(np.float64)
    print(f"digits: {X.shape[0]} images x {X.shape[1]} pixels (values 0..16)")
    a = analyze(X, repeats=3 if quick else 10, n_boot=50 if quick else 200, random_state=0, progress=False,
                test_size=0.15)
    print(a.summary())
    print("\nper class (about 180 images each: too few for nested subsets, so TwoNN and MLE only):")
    print(f"{'digit':>5} {'n':>5} {'TwoNN':>7} {'MLE':>7}")
    for c in range(10 if not quick else 2):
        Xc = X[digits.target == c]
        t = repgap.intrinsic_dimension(Xc, method="twonn", duplicates="drop").dimension
        m = repgap.intrinsic_dimension(Xc, method="mle", duplicates="drop", k1=5, k2=10).dimension
        print(f"{c:>5} {Xc.shape[0]:>5} {t:>7.2f} {m:>7.2f}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    sys.exit(main(ap.parse_args().quick))
