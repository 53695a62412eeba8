"""Tabulate TwoNN's MLE on uniform samples of the unit d-ball (the reference
behind the calibrated TwoNN).

For every cell (n, d) of the grid below, the mean over S independent samples
of n points uniform in the unit d-ball of TwoNN's unbiased MLE

    d_hat = (N - 1) / sum_i log(R2_i / R1_i),

with R1, R2 the distances to the first and second nearest other point and
N the number of points whose ratio R2/R1 is above 1 (ties, ratios of exactly
1, are left out): the estimate of
``repgap.estimators.TwoNN(method="mle", duplicates="drop").fit(V).dimension_``,
computed here from ``repgap.knn(V, V, k=3)`` with the point itself dropped
(the same operations as ``TwoNN``; the script checks the two agree exactly
on a few samples before it starts). The standard error of the mean is
``sd / sqrt(S)`` (sample sd, ddof=1).

Samples: sample s of cell (n, d) uses ``np.random.default_rng([20261201, n,
d, s])``: ``standard_normal((n, d))`` normalised to the unit sphere, times
``random((n, 1)) ** (1 / d)`` (the sampler of ``reference_twonn``).

How many samples: ``S0 = max(8, ceil(5e5 / n))`` (about 5e5 points per cell:
the sd of one sample's estimate is about 1.23 / sqrt(n) of its mean at every
d, so the relative standard error is near 0.17 %), capped for the largest cells at
``max(8, ceil(max_work / (n^2 d)))`` (``--max-work``, brute-force k-NN work),
then topped up (up to ``--max-topup`` x S0, under the same cap) when the
relative standard error is above ``--target`` (0.2 %). The number used is
recorded per cell.

The result is written as plain Python literals to
``repgap/_twonn_reference_table.py`` (``--out``)::

    python benchmarks/make_twonn_reference.py                 # about 25 min on 2 cores
    python benchmarks/make_twonn_reference.py --quick --out /tmp/t.py   # smoke run

Parallelism: the samples of a cell are shared between ``--n-jobs`` worker
processes, each with one k-NN thread and its BLAS and OpenMP pools limited
to one thread (threadpoolctl): on a shared 2-core machine, BLAS/OpenMP
threads in each of several processes oversubscribe the cores and slowed
the k-NN calls tenfold. The results do not depend on it.
"""
import argparse
import datetime
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from threadpoolctl import threadpool_limits

import numpy as np

import repgap
from repgap.estimators import TwoNN, _data_scale

N_GRID = (20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 20000)
D_GRID = tuple(range(1, 25)) + (28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256)
SEED = 20261201
DUPLICATE_TOL = 1e-10  # TwoNN's default duplicate_tol
SMALL_N = 2000  # up to this size, several samples per task (the per-call overhead dominates)


def sample_ball(n, d, s):
    """Sample s of cell (n, d): n points uniform in the unit d-ball."""
    rng = np.random.default_rng([SEED, n, d, s])
    V = rng.standard_normal((n, d))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    V *= rng.random((n, 1)) ** (1.0 / d)
    return V


def twonn_mle(V, n_jobs):
    """TwoNN(method="mle", duplicates="drop").fit(V).dimension_, from repgap.knn directly.

    The same steps as ``NeighbourStats`` + ``TwoNN.fit``: k = 3 neighbours
    of V in V, the point itself dropped (not always column 0 when it has a
    duplicate), points whose first neighbour is within 1e-10 x the data
    scale are duplicates (then the estimator itself is called: it drops
    them; this does not happen with continuous samples), ratios of exactly 1
    are left out, ``(N - 1) / sum log(R2 / R1)``.
    """
    n = V.shape[0]
    dist, idx = repgap.knn(V, V, k=3, n_jobs=n_jobs, progress=False)
    is_self = idx == np.arange(n)[:, None]
    keep = ~is_self
    keep[~is_self.any(axis=1), -1] = False
    dist = dist[keep].reshape(n, 2)
    idx = idx[keep].reshape(n, 2)
    tol = DUPLICATE_TOL * _data_scale(V)
    dup = dist[:, 0] <= tol
    if (dup & (idx[:, 0] < np.arange(n))).any():
        return TwoNN(method="mle", duplicates="drop", n_jobs=n_jobs).fit(V).dimension_
    R = dist[dist[:, 0] > tol]
    logmu = np.log(R[:, 1] / R[:, 0])
    logmu = logmu[logmu > 0]
    N, S = logmu.size, float(np.sum(logmu))
    if N < 3 or S <= 0:
        raise ValueError("fewer than 3 distance ratios above 1")
    return (N - 1) / S


def _init_worker():
    # one thread per worker process: no oversubscription of the cores
    global _LIMITS
    _LIMITS = threadpool_limits(1)


def _run_samples(args):
    n, d, s0, s1, n_jobs = args
    return [twonn_mle(sample_ball(n, d, s), n_jobs) for s in range(s0, s1)]


def simulate(n, d, s0, s1, pool, n_jobs):
    """TwoNN-MLE on samples s0..s1-1 of cell (n, d), in order."""
    if s1 <= s0:
        return []
    if pool is None:
        return _run_samples((n, d, s0, s1, n_jobs))
    k = pool._max_workers
    chunk = max(1, math.ceil((s1 - s0) / (4 * k))) if n <= SMALL_N else 1
    parts = [(n, d, a, min(a + chunk, s1), 1) for a in range(s0, s1, chunk)]
    out = []
    for r in pool.map(_run_samples, parts):
        out.extend(r)
    return out


def self_check(n_jobs):
    """twonn_mle equals TwoNN(...).fit(V).dimension_ exactly."""
    for n, d, s in ((20, 1, 0), (50, 3, 1), (500, 10, 2), (3000, 64, 0), (2000, 256, 3)):
        V = sample_ball(n, d, s)
        a = twonn_mle(V, n_jobs)
        b = TwoNN(method="mle", duplicates="drop", n_jobs=n_jobs).fit(V).dimension_
        if a != b:
            raise AssertionError(f"twonn_mle {a!r} != TwoNN {b!r} at n={n}, d={d}, s={s}")
    print("self-check: twonn_mle == TwoNN(method='mle', duplicates='drop').fit(V).dimension_ on 5 samples", flush=True)


def cell_samples(n, d, args):
    s0 = max(args.min_samples, math.ceil(args.points_per_cell / n))
    cap = max(args.min_samples, math.ceil(args.max_work / (float(n) ** 2 * d)))
    return min(s0, cap), cap


def fmt_tuple(values, fmt=repr, per_line=6, indent="    "):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append(indent + " ".join(fmt(v) + "," for v in values[i : i + per_line]))
    return "(\n" + "\n".join(lines) + "\n" + indent[:-4] + ")"


def write_table(path, n_grid, d_grid, mean, se, samples, header):
    out = ['"""' + header.rstrip() + '\n"""', ""]
    out.append(f"N_GRID = {tuple(int(v) for v in n_grid)!r}")
    out.append(f"D_GRID = {tuple(int(v) for v in d_grid)!r}")
    for name, rows, fmt in (("MEAN", mean, lambda v: repr(float(v))), ("SE", se, lambda v: repr(float(v))),
                            ("SAMPLES", samples, lambda v: repr(int(v)))):
        out.append("")
        out.append(f"{name} = (")
        for n, row in zip(n_grid, rows):
            out.append(f"    # n = {n}")
            out.append("    " + fmt_tuple(row, fmt, indent="        ") + ",")
        out.append(")")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "repgap",
                                                 "_twonn_reference_table.py"))
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--points-per-cell", type=float, default=5e5)
    p.add_argument("--min-samples", type=int, default=8)
    p.add_argument("--max-work", type=float, default=1.6e12,
                   help="cap S at max(min_samples, ceil(max_work / (n^2 d))) (default 1.6e12: n = 20000 at d >= 192, "
                        "n = 15000 at d = 256)")
    p.add_argument("--target", type=float, default=0.002, help="relative standard error to top up to")
    p.add_argument("--max-topup", type=float, default=3.0, help="at most this many x S0 samples in all")
    p.add_argument("--quick", action="store_true", help="a few small cells, for a smoke run")
    args = p.parse_args(argv)

    n_grid, d_grid = N_GRID, D_GRID
    if args.quick:
        n_grid, d_grid = (20, 100, 1000), (1, 2, 5, 10, 64)
        args.points_per_cell = 2e4
    t_start = time.perf_counter()
    self_check(args.n_jobs)
    mean = [[0.0] * len(d_grid) for _ in n_grid]
    se = [[0.0] * len(d_grid) for _ in n_grid]
    samples = [[0] * len(d_grid) for _ in n_grid]
    capped, topped = [], []
    pool = ProcessPoolExecutor(args.n_jobs, initializer=_init_worker) if args.n_jobs > 1 else None
    try:
        for i, n in enumerate(n_grid):
            t_row = time.perf_counter()
            for j, d in enumerate(d_grid):
                t0 = time.perf_counter()
                S0, cap = cell_samples(n, d, args)
                if S0 < max(args.min_samples, math.ceil(args.points_per_cell / n)):
                    capped.append((n, d, S0))
                vals = simulate(n, d, 0, S0, pool, args.n_jobs)
                rel = np.std(vals, ddof=1) / math.sqrt(len(vals)) / np.mean(vals)
                if rel > args.target:
                    want = math.ceil(len(vals) * (rel / (0.95 * args.target)) ** 2)
                    want = min(want, math.ceil(args.max_topup * S0), max(cap, S0))
                    if want > len(vals):
                        vals += simulate(n, d, len(vals), want, pool, args.n_jobs)
                        topped.append((n, d, S0, want))
                vals = np.asarray(vals)
                mean[i][j] = float(np.mean(vals))
                se[i][j] = float(np.std(vals, ddof=1) / math.sqrt(vals.size))
                samples[i][j] = int(vals.size)
                el = time.perf_counter() - t_start
                print(f"n={n:6d} d={d:4d} S={vals.size:6d} mean={mean[i][j]:10.5f} se={se[i][j]:.2e} "
                      f"rel={se[i][j] / mean[i][j] * 100:.3f}% cell {time.perf_counter() - t0:6.1f}s "
                      f"elapsed {el / 60:5.1f} min", flush=True)
            print(f"--- row n={n} done in {time.perf_counter() - t_row:.1f}s", flush=True)
    finally:
        if pool is not None:
            pool.shutdown()
    runtime = time.perf_counter() - t_start
    rel = np.array(se) / np.array(mean)
    cmd = "python benchmarks/make_twonn_reference.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                         " " + " ".join(sys.argv[1:] if argv is None else argv))
    header = f"""TwoNN's MLE on uniform samples of the unit d-ball: generated, do not edit.

Made by ``{cmd}``
on {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} in {runtime / 60:.1f} min
({platform.machine()}, {os.cpu_count()} cores, --n-jobs {args.n_jobs}; numpy {np.__version__},
repgap {repgap.__version__}).

MEAN[i][j]: the mean over SAMPLES[i][j] samples of n = N_GRID[i] points
uniform in the unit d-ball, d = D_GRID[j], of TwoNN's unbiased MLE
(N - 1) / sum log(R2 / R1) (ratios of exactly 1 left out; what
repgap.estimators.TwoNN(method="mle", duplicates="drop").fit(V).dimension_
returns). SE[i][j]: its standard error, sd (ddof=1) / sqrt(SAMPLES[i][j]).
Sample s of cell (n, d): np.random.default_rng([{SEED}, n, d, s]),
standard_normal((n, d)) normalised to the sphere times random((n, 1)) ** (1 / d),
s = 0 .. SAMPLES[i][j] - 1.
Samples per cell: max({args.min_samples}, ceil({args.points_per_cell:g} / n)), capped at
max({args.min_samples}, ceil({args.max_work:g} / (n^2 d))), topped up to a relative
standard error of {args.target:g} (at most {args.max_topup:g} x the initial number).
Largest relative standard error: {rel.max() * 100:.3f} %.
"""
    write_table(args.out, n_grid, d_grid, mean, se, samples, header)
    print(f"wrote {os.path.normpath(args.out)} in {runtime / 60:.1f} min; max relative se {rel.max() * 100:.3f} % "
          f"(n={n_grid[np.unravel_index(rel.argmax(), rel.shape)[0]]}, d={d_grid[np.unravel_index(rel.argmax(), rel.shape)[1]]})")
    print(f"capped cells (n, d, S): {capped}")
    print(f"topped-up cells (n, d, S0 -> S): {topped}")


if __name__ == "__main__":
    main()
