"""Local (per-point) intrinsic dimension on unions of pieces of different dimension.

For each union (flat tori, no boundary, random rotation into R^D) and seed,
TwoNN, MLE and GRIDE (n1 = 4) ``fit_pointwise`` (n_neighbors = 50): the
fraction of points whose estimate is nearest to their own piece's dimension
(among the pieces' dimensions), the median per piece, the per-point
interval's coverage (the full interval ``dimension_pw_ci_`` and its
sampling part ``dimension_pw_sampling_ci_``), and the time. Seed 0 is the
tuning seed of ``tests/test_local.py``; seeds 1-4 are held out. A second
table does the same on single zoo families (with boundaries, curvature and
non-uniform densities), seed 0 tuning and 1000 held out, where every point's
truth is the family's d. Also writes the figure of
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
from repgap.estimators import GRIDE, MLE, CalibratedTwoNN, TwoNN

UNIONS = [(2, 4, 7), (1, 3, 5, 9), (3, 6)]
SEEDS = {"tuning": (0,), "held-out": (1, 2, 3, 4)}
FAMILIES = ("cube5", "ball5", "cube12", "gauss8", "sphere2", "swiss_roll", "torus6")
FAMILY_SEEDS = {"tuning": (0,), "held-out": (1000,)}
ESTIMATORS = (("twonn", TwoNN), ("calibrated", CalibratedTwoNN), ("mle", MLE), ("gride n1=4", lambda: GRIDE(n1=4)))


def _coverage(ci, truth):
    return float(np.mean((ci[:, 0] <= truth) & (truth <= ci[:, 1])))


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
                for name, make in ESTIMATORS:
                    t = time.perf_counter()
                    e = make().fit_pointwise(ds.X, n_neighbors=50)
                    dt = time.perf_counter() - t
                    d = e.dimension_pw_
                    D = np.array(dims)
                    right = D[np.abs(d[:, None] - D[None]).argmin(axis=1)] == ds.local_d
                    med = " / ".join(f"{np.median(d[ds.local_d == k]):.2f}" for k in dims)
                    rows.append((str(dims), split, seed, name, right.mean(), med,
                                 _coverage(e.dimension_pw_ci_, ds.local_d),
                                 _coverage(e.dimension_pw_sampling_ci_, ds.local_d), dt))
                    print(rows[-1], flush=True)
    fam_rows = []
    for fam in FAMILIES:
        for split, seeds in FAMILY_SEEDS.items():
            for seed in seeds:
                ds = datasets.zoo_family(fam, args.n, random_state=seed)
                for name, make in ESTIMATORS:
                    e = make().fit_pointwise(ds.X, n_neighbors=50)
                    ci = e.dimension_pw_ci_
                    fam_rows.append((fam, ds.d, split, seed, name, float(np.median(e.dimension_pw_)),
                                     _coverage(ci, ds.d), _coverage(e.dimension_pw_sampling_ci_, ds.d),
                                     float(np.median((ci[:, 1] - ci[:, 0]) / ds.d))))
                    print(fam_rows[-1], flush=True)
    lines = ["# Local dimension on unions of flat tori (n = %d per piece, n_neighbors = 50)" % args.n, "",
             "`python benchmarks/bench_local.py` (repgap %s). Seed 0 tuned `tests/test_local.py`'s thresholds; "
             "seeds 1-4 are held out." % repgap.__version__, "",
             "| union | seeds | estimator | right piece (median over seeds) | medians per piece (seed 0 / first) "
             "| interval coverage (median) | sampling part's coverage (median) | time (median) |",
             "|---|---|---|---|---|---|---|---|"]
    for dims in UNIONS:
        for split in SEEDS:
            for name, _ in ESTIMATORS:
                sel = [r for r in rows if r[0] == str(dims) and r[1] == split and r[3] == name]
                lines.append(f"| {dims} | {split} | {name} | {np.median([r[4] for r in sel]):.3f} | {sel[0][5]} | "
                             f"{np.median([r[6] for r in sel]):.3f} | {np.median([r[7] for r in sel]):.3f} | "
                             f"{np.median([r[8] for r in sel]):.2f} s |")
    lines += ["", "## Single zoo families (n = %d, n_neighbors = 50; every point's truth is d)" % args.n, "",
              "| family | d | seeds | estimator | median local d | interval coverage | sampling part's coverage "
              "| median width / d |", "|---|---:|---|---|---:|---:|---:|---:|"]
    for r in fam_rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} ({r[3]}) | {r[4]} | {r[5]:.2f} | {r[6]:.3f} | {r[7]:.3f} | "
                     f"{r[8]:.2f} |")
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
