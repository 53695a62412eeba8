"""Local (per-point) intrinsic dimension on unions of pieces of different dimension.

For each union (flat tori, no boundary, random rotation into R^D) and seed,
TwoNN, MLE and GRIDE (n1 = 4) ``fit_pointwise`` (n_neighbors = 50): the
fraction of points whose estimate is nearest to their own piece's dimension
(among the pieces' dimensions), the median per piece, the per-point
interval's coverage, and the time. Seed 0 is the tuning seed of
``tests/test_local.py``; seeds 1-4 are held out. Also writes the figure of
``repgap analyze`` on the first union to docs/images/local_dimension_union.png.

Run: python benchmarks/bench_local.py [--n 2000] [--out benchmarks/results/local_dimension.md]
"""
import argparse
import os
import sys
import time

import numpy as np

import repgap
from repgap import datasets
from repgap.estimators import GRIDE, MLE, TwoNN

UNIONS = [(2, 4, 7), (1, 3, 5, 9), (3, 6)]
SEEDS = {"tuning": (0,), "held-out": (1, 2, 3, 4)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="points per piece")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "local_dimension.md"))
    ap.add_argument("--figure", default=os.path.join(os.path.dirname(__file__), "..", "docs", "images",
                                                     "local_dimension_union.png"))
    args = ap.parse_args(argv)
    rows = []
    for dims in UNIONS:
        for split, seeds in SEEDS.items():
            for seed in seeds:
                ds = datasets.manifold_union(args.n, dims, embed_dim=40, random_state=seed)
                for name, make in (("twonn", TwoNN), ("mle", MLE), ("gride n1=4", lambda: GRIDE(n1=4))):
                    t = time.perf_counter()
                    e = make().fit_pointwise(ds.X, n_neighbors=50)
                    dt = time.perf_counter() - t
                    d, ci = e.dimension_pw_, e.dimension_pw_ci_
                    D = np.array(dims)
                    right = D[np.abs(d[:, None] - D[None]).argmin(axis=1)] == ds.local_d
                    cover = (ci[:, 0] <= ds.local_d) & (ds.local_d <= ci[:, 1])
                    med = " / ".join(f"{np.median(d[ds.local_d == k]):.2f}" for k in dims)
                    rows.append((str(dims), split, seed, name, right.mean(), med, cover.mean(), dt))
                    print(rows[-1], flush=True)
    lines = ["# Local dimension on unions of flat tori (n = %d per piece, n_neighbors = 50)" % args.n, "",
             "`python benchmarks/bench_local.py` (repgap %s). Seed 0 tuned `tests/test_local.py`'s thresholds; "
             "seeds 1-4 are held out." % repgap.__version__, "",
             "| union | seeds | estimator | right piece (median over seeds) | medians per piece (seed 0 / first) "
             "| interval coverage (median) | time (median) |", "|---|---|---|---|---|---|---|"]
    for dims in UNIONS:
        for split in SEEDS:
            for name in ("twonn", "mle", "gride n1=4"):
                sel = [r for r in rows if r[0] == str(dims) and r[1] == split and r[3] == name]
                lines.append(f"| {dims} | {split} | {name} | {np.median([r[4] for r in sel]):.3f} | {sel[0][5]} | "
                             f"{np.median([r[6] for r in sel]):.3f} | {np.median([r[7] for r in sel]):.2f} s |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    ds = datasets.manifold_union(args.n, UNIONS[0], embed_dim=40, random_state=0)
    a = repgap.analyze(ds.X, methods=["twonn", "mle", "gride"], random_state=0)
    from repgap.plot import plot_local_dimension

    plot_local_dimension(a, title=f"repgap analyze on a union of flat tori of dimensions {UNIONS[0]}").savefig(
        args.figure, dpi=110)
    print("wrote", args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
