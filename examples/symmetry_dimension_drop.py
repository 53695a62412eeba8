"""What the symmetry of an architecture buys: the dimension of a task modulo a group.

Clouds of m = 4 points in the plane (rows of length D = 8) drawn from a
rotation-invariant law. A model that is equivariant to translations sees
each training cloud's whole orbit, and the task it has to learn loses 2
dimensions; with rotations too it loses 3 (docs/theory.md, section 3). The
gap-law estimator measures it: 8, 6 and 5.

Then a finite group: clouds whose points are identical particles
(permutations, |G| = 4! = 24, acting freely). Modulo the group the
dimension does not change, but every training cloud counts |G| times: the
gap curve moves down by |G|^(-2/d).

    python examples/symmetry_dimension_drop.py            # about 2 minutes on 2 cores
    python examples/symmetry_dimension_drop.py --n 100000 # closer to the asymptotic law
"""
import argparse
import time

import numpy as np

import repgap
from repgap import datasets
from repgap.estimators import GapLaw
from repgap.groups import Permutation, Product, Rotation, Translation


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="training clouds")
    ap.add_argument("--quick", action="store_true", help="a smoke test: 2000 clouds")
    args = ap.parse_args()
    if args.quick:
        args.n = 2000
    n, m_test = args.n, max(2000 if not args.quick else 400, args.n // 10)
    data = datasets.point_clouds(n + m_test, 4, 2, law="disk", random_state=0)
    X = data.X
    print(f"{n} training + {m_test} held-out clouds of 4 points in the plane (D = {X.shape[1]})\n")
    print(f"{'group':<34} {'expected':>8} {'estimated':>10} {'95% interval':>16} {'time':>7}")
    groups = [("none", None, data.task_dims["none"]),
              ("translations", Translation(2), data.task_dims["translations"]),
              ("translations + rotations", Product(Translation(2), Rotation(2)),
               data.task_dims["translations+rotations"])]
    for name, G, expected in groups:
        t = time.perf_counter()
        # --quick is a smoke test: held-out queries only (the training points as
        # queries, GapLaw's default, cost about n / m_test times more)
        est = GapLaw(test_size=m_test, group=G, random_state=0, n_boot=20 if args.quick else 100,
                     train_queries=False if args.quick else "auto").fit(X)
        lo, hi = est.dimension_ci_
        print(f"{name:<34} {expected:>8d} {est.dimension_:>10.2f} [{lo:>6.2f}, {hi:>6.2f}] "
              f"{time.perf_counter() - t:>6.1f}s", flush=True)

    # a finite group acting freely: the n-multiplier
    G = Permutation(4, 2)
    train, test = X[:n], X[n:]
    sizes = np.unique(np.geomspace(n // 20, n, 6).astype(int))
    plain = repgap.gap_curve(train, test, sizes=sizes, repeats=3, random_state=1)
    modg = repgap.gap_curve(train, test, sizes=sizes, repeats=3, random_state=1, group=G)
    d = data.task_dims["none"]
    print(f"\npermutations of the 4 points (|G| = {G.order}): predicted gap ratio |G|^(-2/d) = "
          f"{G.order ** (-2 / d):.3f} (d = {d})")
    print(f"{'n':>8} {'gap':>10} {'gap mod G':>10} {'ratio':>7}")
    for s, a, b in zip(plain.sizes, plain.gaps, modg.gaps):
        print(f"{s:>8d} {a:>10.4g} {b:>10.4g} {b / a:>7.3f}")


if __name__ == "__main__":
    main()
