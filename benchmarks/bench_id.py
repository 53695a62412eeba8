"""The law and the gap-law estimator on data of known dimension (issue #3).

Three parts, each runnable alone:

``law``       measured Representation Gap on the flat torus [0,1)^d (periodic
              distance) against ``predicted_gap`` at n = 1e5, m = 1e4.
``accuracy``  ``GapLaw`` on the flat torus embedded in R^(2d) by
              (cos 2 pi t, sin 2 pi t) / (2 pi) and on the unit cube, at
              n = 1e5 training + 1e4 held-out points, several seeds: the
              default (``correction="auto"``: the boundary term in the
              scale or the curvature term, by the sign of the former) and,
              refitted on the same curve, each finite-size model alone
              (scale, curvature, boundary in n, none); prints each estimate
              and the worst relative error.
``others``    the default GapLaw, one seed, on supports the finite-size
              models were not derived on: the uniform ball B^5 and B^8
              (smooth boundary), the sphere S^4 (curved, closed) and the
              swiss roll (curved, with boundary).
``coverage``  how often the default 95 % interval contains the truth over
              seeded repetitions (d = 5).

    python benchmarks/bench_id.py law accuracy            # about 12 min on 2 cores
    python benchmarks/bench_id.py others                  # about 1 min
    python benchmarks/bench_id.py coverage --seeds 50     # about 10 min per support
"""
import argparse
import time

import numpy as np

import repgap
from repgap import datasets, law
from repgap.estimators import GapLaw
from repgap.law import fit_law


def run_law(args):
    print("law: measured gap on the flat torus (periodic distance) vs predicted_gap")
    print(f"{'d':>3} {'n':>8} {'measured':>12} {'predicted':>12} {'ratio':>7}")
    for d in (2, 3, 5, 8):
        tr = datasets.flat_torus(args.n, d, random_state=d)
        te = datasets.flat_torus(args.m, d, random_state=100 + d)
        # chordal candidates in the embedding, the periodic distance decides
        _, idx = repgap.knn(te.X, tr.X, k=32, progress=False)
        ta, tt = datasets.torus_angles(tr.X), datasets.torus_angles(te.X)
        per = datasets.torus_sqdist(tt[:, None, :], ta[idx]).min(axis=1)
        pred = law.predicted_gap(args.n, d)
        print(f"{d:>3} {args.n:>8} {per.mean():>12.5g} {pred:>12.5g} {per.mean() / pred:>7.4f}", flush=True)


def run_accuracy(args):
    print("accuracy: GapLaw at n = %d (+ %d held out), float32" % (args.n, args.m))
    models = ("scale", "curvature", "boundary", False)
    print(f"{'support':<7} {'d':>3} {'seed':>4} {'d_hat':>7} {'95% interval':>16} {'model':>9} {'rel.err':>8} "
          f"{'time':>6}   " + " ".join(f"{str(c):>9}" for c in models))
    worst = {}
    for name, sampler in (("torus", datasets.flat_torus), ("cube", datasets.cube)):
        for d in args.dims:
            for seed in range(args.acc_seeds):
                X = sampler(args.n + args.m, d, random_state=100 * d + seed).X.astype(np.float32)
                t = time.perf_counter()
                est = GapLaw(test_size=args.m, n_boot=100, random_state=seed).fit(X)
                secs = time.perf_counter() - t
                lo, hi = est.dimension_ci_
                model = est.law_.correction_model if est.law_.correction_model == "scale" else "curvature"
                # each finite-size model alone, refitted on the same curve
                alone = {c: fit_law(est.curve_, correction=c, n_boot=0).dimension for c in models}
                for c, dh in [("default", est.dimension_)] + list(alone.items()):
                    key = (name, d, str(c))
                    worst[key] = max(worst.get(key, 0), abs(dh - d) / d)
                print(f"{name:<7} {d:>3} {seed:>4} {est.dimension_:>7.3f} [{lo:>6.2f}, {hi:>6.2f}] {model:>9} "
                      f"{abs(est.dimension_ - d) / d:>8.3f} {secs:>5.1f}s   "
                      + " ".join(f"{alone[c]:>9.3f}" for c in models), flush=True)
    print("\nworst relative error over the seeds")
    print(f"{'support':<7} {'d':>3} " + " ".join(f"{c:>9}" for c in ("default",) + tuple(map(str, models))))
    for name in ("torus", "cube"):
        for d in args.dims:
            print(f"{name:<7} {d:>3} " + " ".join(f"{worst[(name, d, c)]:>9.3f}"
                                                  for c in ("default",) + tuple(map(str, models))))


def run_others(args):
    print("others: GapLaw defaults at n = %d (+ %d held out), float32, one seed" % (args.n, args.m))
    rng = np.random.default_rng(0)

    def ball(n, d):
        x = rng.normal(size=(n, d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x * rng.random((n, 1)) ** (1.0 / d)

    cases = [("ball B^5", 5, lambda: ball(args.n + args.m, 5)), ("ball B^8", 8, lambda: ball(args.n + args.m, 8)),
             ("sphere S^4", 4, lambda: datasets.sphere(args.n + args.m, 4, random_state=1).X),
             ("swiss roll", 2, lambda: datasets.swiss_roll(args.n + args.m, random_state=1).X)]
    print(f"{'support':<11} {'d':>3} {'d_hat':>7} {'95% interval':>16} {'rel.err':>8}  model")
    for name, d, make in cases:
        X = make().astype(np.float32)
        est = GapLaw(test_size=args.m, n_boot=50, random_state=0).fit(X)
        lo, hi = est.dimension_ci_
        print(f"{name:<11} {d:>3} {est.dimension_:>7.3f} [{lo:>6.2f}, {hi:>6.2f}] {(est.dimension_ - d) / d:>+8.3f}  "
              f"{est.law_.model_name}", flush=True)


def run_coverage(args):
    d = 5
    for name, sampler in (("torus", datasets.flat_torus), ("cube", datasets.cube)):
        hits = hits_boot = 0
        est_list = []
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            X = sampler(args.n + args.m, d, random_state=1000 + seed).X.astype(np.float32)
            est = GapLaw(test_size=args.m, n_boot=200, random_state=seed).fit(X)
            lo, hi = est.dimension_ci_  # the default (with the curvature model's when the boundary one is kept)
            blo, bhi = est.law_.dimension_ci  # the bootstrap interval of the chosen fit alone
            hits += lo <= d <= hi
            hits_boot += blo <= d <= bhi
            est_list.append((est.dimension_, hi - lo, bhi - blo))
        e = np.array(est_list)
        print(f"coverage {name} d={d}: default interval {hits}/{args.seeds} (mean width {e[:, 1].mean():.3f}), "
              f"bootstrap alone {hits_boot}/{args.seeds} (mean width {e[:, 2].mean():.3f}); "
              f"mean d_hat {e[:, 0].mean():.3f} (sd {e[:, 0].std():.3f}); {time.perf_counter() - t0:.0f} s",
              flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="*", default=["law", "accuracy"], choices=["law", "accuracy", "others", "coverage"])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--m", type=int, default=10_000)
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 5, 8, 12])
    ap.add_argument("--acc-seeds", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=50)
    args = ap.parse_args()
    print(f"repgap {repgap.__version__}")
    for part in args.parts:
        {"law": run_law, "accuracy": run_accuracy, "others": run_others, "coverage": run_coverage}[part](args)
        print()


if __name__ == "__main__":
    main()
