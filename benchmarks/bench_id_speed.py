"""Speed of the estimators: repgap against scikit-dimension on the same data.

Part ``suite`` (default): TwoNN and MLE on points of a 5-D cube linearly
embedded in R^20 (a random orthonormal embedding, float64), n = 1e5 for both
packages and n = 1e6 for repgap.

Part ``issue13``: the three timings of issue #13, in one run, with the peer
on the same array:

* ``GapLaw()`` on a 1e5 x 8 standard Gaussian (float64) against
  scikit-dimension's TwoNN on the same array;
* ``GapLaw()`` on scikit-learn's wine table (178 x 13, standardized);
* ``CalibratedTwoNN()`` on 20,000 8 x 8 grayscale patches (64-D) of
  scikit-learn's sample image "china.jpg" (shipped with scikit-learn).

Each estimator is timed end to end (neighbours included), median of the
repeats; scikit-dimension runs once per size (it takes tens of seconds).

    python benchmarks/bench_id_speed.py [suite|issue13|all] [--repeats 3] [--skip-skdim]
"""
import warnings
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


def image_patches(n=20000, size=8, random_state=0):
    """n grayscale size x size patches of scikit-learn's "china.jpg", as float64 rows in [0, 1]."""
    from sklearn.datasets import load_sample_image

    img = load_sample_image("china.jpg").astype(np.float64).mean(axis=2) / 255.0
    rng = np.random.default_rng(random_state)
    r = rng.integers(0, img.shape[0] - size, n)
    c = rng.integers(0, img.shape[1] - size, n)
    idx = np.arange(size)
    P = img[r[:, None, None] + idx[None, :, None], c[:, None, None] + idx[None, None, :]]
    return P.reshape(n, size * size)


def issue13(args):
    from sklearn.datasets import load_wine

    from repgap.estimators import CalibratedTwoNN, GapLaw

    warnings.simplefilter("ignore", RuntimeWarning)
    rows = []
    G = np.random.default_rng(0).standard_normal((100_000, 8))
    t, est = timed(lambda: GapLaw(random_state=0).fit(G), args.repeats)
    rows.append(("repgap", "GapLaw", "gaussian 1e5 x 8", t, est.dimension_, 8))
    if not args.skip_skdim:
        import skdim

        t, est = timed(lambda: skdim.id.TwoNN().fit(G), 1)
        rows.append(("skdim", "TwoNN", "gaussian 1e5 x 8", t, est.dimension_, 8))
    W = load_wine().data
    W = (W - W.mean(0)) / W.std(0)
    t, est = timed(lambda: GapLaw(random_state=0).fit(W), args.repeats)
    rows.append(("repgap", "GapLaw", "wine 178 x 13", t, est.dimension_, None))
    P = image_patches()
    t, est = timed(lambda: CalibratedTwoNN(duplicates="drop", random_state=0).fit(P), args.repeats)
    rows.append(("repgap", "CalibratedTwoNN", "patches 2e4 x 64", t, est.dimension_, None))
    if not args.skip_skdim:
        t, est = timed(lambda: skdim.id.TwoNN().fit(P), 1)
        rows.append(("skdim", "TwoNN", "patches 2e4 x 64", t, est.dimension_, None))
    print(f"{'package':8s} {'estimator':16s} {'data':18s} {'time (s)':>9s} {'d_hat':>7s}")
    for p, m, data, t, dh, _ in rows:
        print(f"{p:8s} {m:16s} {data:18s} {t:9.2f} {dh:7.3f}")
    base = {d: t for p, m, d, t, _, _ in rows if p == "skdim"}
    for p, m, d, t, _, _ in rows:
        if p == "repgap" and d in base:
            print(f"ratio repgap {m} / skdim TwoNN on {d}: {t / base[d]:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("part", nargs="?", default="suite", choices=("suite", "issue13", "all"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-skdim", action="store_true")
    args = ap.parse_args()
    if args.part in ("issue13", "all"):
        issue13(args)
    if args.part == "issue13":
        return
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
