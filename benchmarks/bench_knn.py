#!/usr/bin/env python
"""Benchmark of exact k-NN: repgap against faiss, scikit-learn, scipy and torch.

All methods run on the same data in one process. Each timing is the median of
``--repeats`` calls made after one warm-up call; a call whose first run takes
longer than ``SLOW_S`` seconds is not repeated (that single run is reported,
``n = 1``). What is timed:

* repgap      ``repgap.knn(Q, R, k)`` (backend auto, ``n_jobs=threads``) and
              ``repgap.gap_curve(R, Q, repeats=1, random_state=0)`` (12 default sizes)
* faiss       ``IndexFlatL2``: index construction + ``add`` + ``search`` (the
              add of a flat index is a copy; it is timed so that every method
              includes its preprocessing)
* sklearn     ``NearestNeighbors(algorithm=...).fit(R).kneighbors(Q)``
              (brute; kd_tree only where D <= 16)
* scipy       ``cKDTree(R).query(Q, k, workers=threads)`` (D <= 16 only)
* torch       ``torch.cdist`` + ``topk`` over chunks of 1024 queries

Effective GFLOP/s of the brute-force paths is ``2 * D * n * m / time`` (the
multiply-adds of the full distance matrix), also given as a percentage of the
float32 GEMM peak measured in the same run (median of ``A @ B``, 4096 x 4096).

Usage::

    python benchmarks/bench_knn.py --quick                # smoke run, < 1 min
    python benchmarks/bench_knn.py --repeats 3 --out results.json
    python benchmarks/bench_knn.py --paired 9            # the k = 1 targets, round by round
    python benchmarks/bench_knn.py --paired 9 --simd avx2  # the same at AVX2 on an AVX-512 CPU
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

# Run from the repository root: make `import repgap` pick up ./repgap.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import repgap  # noqa: E402

SLOW_S = 5.0
TORCH_CHUNK = 1024
SEED = 0

FULL_SHAPES = [(100_000, 10_000, 3), (100_000, 10_000, 16), (50_000, 10_000, 64), (60_000, 10_000, 784)]
QUICK_SHAPES = [(10_000, 1_000, 3), (10_000, 1_000, 16), (5_000, 1_000, 64), (6_000, 1_000, 784)]
LOW_RANK = 16


# ----------------------------------------------------------------------------- data
def make_data(n, m, d, rng, kind="default"):
    """(R, Q) float32. D <= 16: uniform in [0,1)^D; else rank-16 Gaussian Z @ W.
    ``kind="lowrank+noise"``: rank 20 plus isotropic noise of 1/10 its scale."""
    if kind == "lowrank+noise":
        Z = rng.standard_normal((n + m, 20))
        W = rng.standard_normal((20, d)) / np.sqrt(20)
        X = np.ascontiguousarray((Z @ W + 0.1 * rng.standard_normal((n + m, d))).astype(np.float32))
        return X[:n].copy(), X[n:].copy()
    if d <= 16:
        X = rng.random((n + m, d), dtype=np.float32)
    else:
        Z = rng.standard_normal((n + m, LOW_RANK))
        W = rng.standard_normal((LOW_RANK, d)) / np.sqrt(LOW_RANK)
        X = (Z @ W).astype(np.float32)  # float64 product, cast once at the end
    X = np.ascontiguousarray(X)
    assert X.dtype == np.float32
    return X[:n].copy(), X[n:].copy()


def blas_state():
    """The BLAS libraries loaded and their kernels, and ``OPENBLAS_CORETYPE``
    where the environment sets it (it overrides OpenBLAS's choice of
    kernels: the GEMM peak, and so every ratio with a BLAS peer, depend on it)."""
    from repgap._threads import blas_info

    core = os.environ.get("OPENBLAS_CORETYPE")
    return ("; ".join(blas_info()) or "none found") + (
        f"; OPENBLAS_CORETYPE={core} in the environment" if core else "; OPENBLAS_CORETYPE not set")


def force_simd(level):
    """Run the compiled kernels (repgap's, faiss's) at ``level`` ('native': as detected); returns what runs.

    repgap's plan reads the forced level too (the fused kernel's sliced form
    is AVX-512 only, so at AVX2 large float32 D takes BLAS tiles, as on an
    AVX2 CPU). faiss 1.12+ built with dynamic dispatch takes its level from
    ``faiss.SIMDConfig``; older builds load one library at import
    (``FAISS_OPT_LEVEL``), which this does not change.
    """
    parts = []
    try:
        from repgap import _kernels_cython as kc

        if level == "avx2":
            if kc.simd_info() not in ("avx512", "avx2"):
                raise SystemExit(f"--simd avx2: this CPU has no AVX2 ({kc.simd_info()})")
            kc._set_simd_level(1)
        parts.append(f"repgap {'avx2 (forced; CPU: ' + kc.simd_info() + ')' if level == 'avx2' else kc.simd_info()}")
    except ImportError:
        parts.append("repgap not compiled")
    try:
        import faiss

        cfg = getattr(faiss, "SIMDConfig", None)
        if level == "avx2" and cfg is not None and cfg.has_dynamic_dispatch():
            cfg.set_level(faiss.SIMDLevel_AVX2)
        parts.append(f"faiss {cfg.get_level_name() if cfg is not None else 'as loaded (no SIMDConfig)'}")
    except ImportError:
        pass
    return "; ".join(parts)


# ----------------------------------------------------------------------------- timing
def timed(fn, repeats, slow_s=SLOW_S):
    """Run fn once (warm-up); if that took > slow_s, report it alone, else the
    median of `repeats` further calls. Returns (median, times, warmup_s, result)."""
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    if first > slow_s or repeats <= 0:
        return first, [first], None, result
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, first, result


def gemm_peak(threads, size, repeats):
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(SEED)
    A = rng.standard_normal((size, size), dtype=np.float32)
    B = rng.standard_normal((size, size), dtype=np.float32)
    with threadpool_limits(limits=threads):
        med, times, _, C = timed(lambda: A @ B, repeats, slow_s=float("inf"))
    assert C.dtype == np.float32
    flops = 2.0 * size ** 3
    return {"size": size, "median_s": med, "times_s": times, "gflops": flops / med / 1e9}


# ----------------------------------------------------------------------------- methods
def repgap_algorithm(Q, R, k):
    """The (backend, algorithm) that auto resolves to (private helpers; best effort)."""
    try:
        from repgap._backends import choose_algorithm, resolve_backend

        b = resolve_backend("auto")
        return b, choose_algorithm("auto", b, R.dtype, R.shape[1], R.shape[0], k)
    except Exception as exc:  # pragma: no cover - informational only
        return "auto", f"unknown ({exc})"


def run_repgap(Q, R, k, threads):
    return repgap.knn(Q, R, k=k, n_jobs=threads, progress=False)


def run_gap_curve(Q, R, threads):
    return repgap.gap_curve(R, Q, repeats=1, random_state=0, n_jobs=threads, progress=False)


def run_faiss(Q, R, k):
    import faiss

    index = faiss.IndexFlatL2(R.shape[1])
    index.add(R)
    D2, I = index.search(Q, k)
    return D2, I  # squared distances, float32


def run_sklearn(Q, R, k, algorithm, threads):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm=algorithm, n_jobs=threads).fit(R)
    return nn.kneighbors(Q)


def run_ckdtree(Q, R, k, threads):
    from scipy.spatial import cKDTree

    d, i = cKDTree(R).query(Q, k=k, workers=threads)
    if k == 1:
        d, i = d[:, None], i[:, None]
    return d, i


def run_torch(Q, R, k):
    import torch

    Rt = torch.from_numpy(R)
    Qt = torch.from_numpy(Q)
    dists, inds = [], []
    with torch.no_grad():
        for s in range(0, Qt.shape[0], TORCH_CHUNK):
            dm = torch.cdist(Qt[s:s + TORCH_CHUNK], Rt)
            v, i = torch.topk(dm, k, dim=1, largest=False, sorted=True)
            dists.append(v)
            inds.append(i)
    return torch.cat(dists).numpy(), torch.cat(inds).numpy()


# ----------------------------------------------------------------------------- exactness
def exactness(Q, R, rg, fa):
    """repgap k=1 (Euclidean, float64) against faiss k=1 (squared, float32)."""
    d_rg, i_rg = rg
    d2_fa, i_fa = fa
    sq_rg = d_rg[:, 0].astype(np.float64) ** 2
    sq_fa = d2_fa[:, 0].astype(np.float64)
    rel = np.abs(sq_rg - sq_fa) / np.maximum(sq_rg, np.finfo(np.float64).tiny)
    rel[(sq_rg == 0) & (sq_fa == 0)] = 0.0
    agree = i_rg[:, 0] == i_fa[:, 0]
    out = {
        "sq_dist_rel_diff_max": float(rel.max()),
        "sq_dist_rel_diff_median": float(np.median(rel)),
        "index_agreement": float(agree.mean()),
        "n_disagree": int((~agree).sum()),
    }
    # Arbitrate every disagreement with float64 distances of both candidates.
    bad = np.flatnonzero(~agree)
    if bad.size:
        q = Q[bad].astype(np.float64)
        a = ((q - R[i_rg[bad, 0]].astype(np.float64)) ** 2).sum(1)
        b = ((q - R[i_fa[bad, 0]].astype(np.float64)) ** 2).sum(1)
        out["disagree_repgap_closer"] = int((a < b).sum())
        out["disagree_tie"] = int((a == b).sum())
        out["disagree_faiss_closer"] = int((a > b).sum())
    # repgap's own distances against float64 recomputation of its indices (sample).
    s = np.arange(0, Q.shape[0], max(1, Q.shape[0] // 1000))
    ref = np.sqrt(((Q[s].astype(np.float64) - R[i_rg[s, 0]].astype(np.float64)) ** 2).sum(1))
    out["repgap_dist_vs_float64_recompute_max_abs"] = float(np.abs(ref - d_rg[s, 0]).max())
    return out


# ----------------------------------------------------------------------------- modulo a finite group
def bench_cyclic(args, rng, n=2000, m=300, k=1):
    """Random 8 x 8 images under the 64 cyclic shifts (issue #14's case):
    repgap's k-NN modulo the group (the search against the images, which it
    chooses here), its invariant filter and refinement (forced), and the
    plain k-NN against the augmented set of n x 64 images (no deduplication:
    the lower bound of any exact method that uses the images)."""
    import repgap.orbit as O
    from repgap.groups import CyclicShift

    g = CyclicShift((8, 8))
    R = rng.random((n, 64))
    Q = rng.random((m, 64))
    A = g.images(R).reshape(-1, 64)
    rows = []

    def record(method, fn, note=""):
        med, times, warm, res = timed(fn, args.repeats, slow_s=30.0)
        rows.append({"method": method, "median_s": med, "n_timed": len(times), "note": note})
        print(f"  {method:<40s} {med:9.4f} s  (n={len(times)})", flush=True)
        return res

    got = record("repgap.knn(group=CyclicShift((8, 8)))", lambda: repgap.knn(Q, R, k=k, group=g, n_jobs=args.threads),
                 note="auto: search against the images")
    real = O.use_images
    O.use_images = lambda *a: False
    try:
        filt = record("  same, invariant filter + refinement", lambda: repgap.knn(Q, R, k=k, group=g,
                                                                                   n_jobs=args.threads),
                      note="the first wave's path")
    finally:
        O.use_images = real
    aug = record("repgap.knn on the augmented set", lambda: repgap.knn(Q, A, k=k, n_jobs=args.threads),
                 note=f"{n} x 64 images, float64")
    base = rows[0]["median_s"]
    for r in rows:
        r["ratio_to_repgap"] = r["median_s"] / base
    same = bool(np.array_equal(got[1], filt[1]) and np.array_equal(got[1], aug[1] // 64))
    return {"n_reference": n, "n_queries": m, "k": k, "rows": rows, "same_neighbours": same,
            "max_abs_distance_diff": float(max(np.abs(got[0] - filt[0]).max(), np.abs(got[0] - aug[0]).max()))}


def fmt_cyclic(c):
    lines = [f"\n=== modulo CyclicShift((8, 8)): {c['n_queries']} queries, {c['n_reference']} random 8 x 8 images, "
             f"k = {c['k']} ===", f"{'method':<42s} {'median s':>10s} {'n':>2s} {'ratio':>7s}  note"]
    for r in c["rows"]:
        lines.append(f"{r['method']:<42s} {r['median_s']:>10.4f} {r['n_timed']:>2d} {r['ratio_to_repgap']:>7.2f}  {r['note']}")
    lines.append(f"same neighbours on the three paths: {c['same_neighbours']}; "
                 f"largest distance difference {c['max_abs_distance_diff']:.3g}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- paired runs
#: the rows of issue #14's k = 1 targets: (n_reference, n_queries, D, kind)
PAIRED_SHAPES = [(100_000, 10_000, 16, "default"), (60_000, 10_000, 784, "default"),
                 (30_000, 3_000, 784, "lowrank+noise")]


def paired(fns, rounds):
    """Time the callables of ``fns`` (name -> fn) in turn, ``rounds`` times,
    the order reversed every other round (ABBA: a drift of the machine, or
    a library's state left for the next call, falls on both sides alike),
    after one warm-up call each. Returns name -> list of times."""
    names = list(fns)
    for f in fns.values():
        f()
    times = {k: [] for k in names}
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def _pair_row(label, times, base, peer):
    a, b = np.asarray(times[base]), np.asarray(times[peer])
    per = b / a   # round by round: the peer's time over repgap's
    return {"case": label, "repgap": base, "peer": peer, "rounds": len(a),
            "repgap_median_s": float(np.median(a)), "peer_median_s": float(np.median(b)),
            "ratio_of_medians": float(np.median(b) / np.median(a)),
            "round_ratio_median": float(np.median(per)),
            "round_ratio_q1": float(np.quantile(per, 0.25)), "round_ratio_q3": float(np.quantile(per, 0.75))}


def bench_paired(args, rng):
    """k = 1 float32 against faiss on the shapes of the targets, and the
    search modulo CyclicShift((8, 8)) against the search on the augmented
    set, each pair timed round by round (:func:`paired`): one run's ratio
    on a noisy machine is a sample of the ratios of rounds, so the report
    gives their median and quartiles."""
    from repgap.groups import CyclicShift

    th = args.threads
    rounds = args.paired
    rows = []
    import faiss

    faiss.omp_set_num_threads(th)
    shapes = [(s[0] // 10, s[1] // 10, s[2], s[3]) for s in PAIRED_SHAPES] if args.quick else PAIRED_SHAPES
    for n, m, d, kind in shapes:
        R, Q = make_data(n, m, d, rng, kind)
        label = f"{n} x {m}, D = {d}, {kind}, k = 1"
        print(f"--- {label}", flush=True)
        t = paired({"repgap.knn": lambda: run_repgap(Q, R, 1, th), "faiss IndexFlatL2": lambda: run_faiss(Q, R, 1)},
                   rounds)
        rows.append(_pair_row(label, t, "repgap.knn", "faiss IndexFlatL2"))
    g = CyclicShift((8, 8))
    n, m = (500, 100) if args.quick else (2000, 300)
    R, Q = rng.random((n, 64)), rng.random((m, 64))
    A = g.images(R).reshape(-1, 64)
    label = f"{n} random 8 x 8 images x {m}, modulo CyclicShift((8, 8)), k = 1"
    print(f"--- {label}", flush=True)
    t = paired({"repgap.knn(group=)": lambda: repgap.knn(Q, R, k=1, group=g, n_jobs=th),
                "repgap.knn on the augmented set": lambda: repgap.knn(Q, A, k=1, n_jobs=th)}, rounds)
    rows.append(_pair_row(label, t, "repgap.knn(group=)", "repgap.knn on the augmented set"))
    return rows


def fmt_paired(rows):
    lines = [f"{'case':<62s} {'repgap s':>9s} {'peer s':>9s} {'ratio':>6s} {'rounds: median [q1, q3]':>26s}  peer"]
    for r in rows:
        lines.append(f"{r['case']:<62s} {r['repgap_median_s']:>9.4f} {r['peer_median_s']:>9.4f} "
                     f"{r['ratio_of_medians']:>6.3f}   {r['round_ratio_median']:.3f} "
                     f"[{r['round_ratio_q1']:.3f}, {r['round_ratio_q3']:.3f}] ({r['rounds']})  {r['peer']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- driver
def bench_shape(n, m, d, args, peak, rng, kind="default"):
    R, Q = make_data(n, m, d, rng, kind)
    th = args.threads
    flops = 2.0 * d * n * m
    rows = []
    k1 = {}  # k=1 indices per method, for agreement with repgap

    def record(method, k, fn, brute, note=""):
        try:
            med, times, warm, res = timed(fn, args.repeats)
        except Exception as exc:  # keep going; report the failure
            print(f"  !! {method} k={k} failed: {type(exc).__name__}: {exc}", flush=True)
            rows.append({"method": method, "k": k, "error": f"{type(exc).__name__}: {exc}"})
            return None
        row = {"method": method, "k": k, "median_s": med, "times_s": times, "warmup_s": warm,
               "n_timed": len(times), "brute_force": brute, "note": note}
        if brute:
            row["gflops"] = flops / med / 1e9
            row["pct_peak"] = 100.0 * row["gflops"] / peak
        rows.append(row)
        print(f"  {method:<28s} k={k:<3d} {med:9.4f} s  (n={len(times)})", flush=True)
        return res

    # repgap
    results = {}
    for k in (1, 10):
        backend, algo = repgap_algorithm(Q, R, k)
        res = record("repgap.knn", k, lambda k=k: run_repgap(Q, R, k, th), brute=algo != "kd_tree",
                     note=f"{backend}/{algo}")
        results[("repgap", k)] = res
    gc = record("repgap.gap_curve", 1, lambda: run_gap_curve(Q, R, th), brute=False,
                note="repeats=1, 12 default sizes")
    # faiss
    import faiss

    faiss.omp_set_num_threads(th)
    for k in (1, 10):
        results[("faiss", k)] = record("faiss IndexFlatL2", k, lambda k=k: run_faiss(Q, R, k), brute=True,
                                       note="add+search")
    # scikit-learn
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=th):
        for k in (1, 10):
            results[("sk_brute", k)] = record("sklearn brute", k, lambda k=k: run_sklearn(Q, R, k, "brute", th),
                                              brute=True, note="fit+kneighbors")
        if d <= 16:
            for k in (1, 10):
                results[("sk_kd", k)] = record("sklearn kd_tree", k,
                                               lambda k=k: run_sklearn(Q, R, k, "kd_tree", th),
                                               brute=False, note="fit+kneighbors")
    # scipy
    if d <= 16:
        for k in (1, 10):
            results[("ckdtree", k)] = record("scipy cKDTree", k, lambda k=k: run_ckdtree(Q, R, k, th),
                                             brute=False, note="build+query")
    # torch
    import torch

    torch.set_num_threads(th)
    for k in (1, 10):
        results[("torch", k)] = record("torch cdist+topk", k, lambda k=k: run_torch(Q, R, k), brute=True,
                                       note=f"chunks of {TORCH_CHUNK} queries")

    # float64: the same data in numpy's default type (repgap takes the float32
    # candidate search and certifies it; faiss has no float64 index, so its
    # float32 time above is the peer)
    if not args.no_float64:
        R64, Q64 = R.astype(np.float64), Q.astype(np.float64)
        for k in (1, 10):
            results[("repgap64", k)] = record("repgap.knn float64", k, lambda k=k: run_repgap(Q64, R64, k, th),
                                              brute=False, note="float64 input; ratio: to repgap float32")
        if d <= 16:
            for k in (1, 10):
                record("scipy cKDTree float64", k, lambda k=k: run_ckdtree(Q64, R64, k, th), brute=False,
                       note="build+query; ratio: to repgap float64")
        if d <= 64:
            with threadpool_limits(limits=th):
                for k in (1, 10):
                    record("sklearn brute float64", k, lambda k=k: run_sklearn(Q64, R64, k, "brute", th),
                           brute=False, note="fit+kneighbors; ratio: to repgap float64")
    float64_same = None
    if all(results.get((t, k)) is not None for t in ("repgap", "repgap64") for k in (1, 10)):
        # the float64 copy holds the same points: the exact answers are the same bits
        float64_same = all(np.array_equal(results[("repgap64", k)][0], results[("repgap", k)][0])
                           and np.array_equal(results[("repgap64", k)][1], results[("repgap", k)][1])
                           for k in (1, 10))

    # ratios to repgap (same k): peer_time / repgap_time; float64 peers to repgap float64
    base = {r["k"]: r["median_s"] for r in rows if r["method"] == "repgap.knn" and "median_s" in r}
    base64 = {r["k"]: r["median_s"] for r in rows if r["method"] == "repgap.knn float64" and "median_s" in r}
    for r in rows:
        if "median_s" not in r:
            continue
        if r["method"].endswith("float64") and r["method"] != "repgap.knn float64":
            r["ratio_to_repgap"] = r["median_s"] / base64[r["k"]] if r["k"] in base64 else None
            continue
        if r["method"] == "repgap.gap_curve":
            r["ratio_to_repgap"] = None
            r["gap_curve_over_knn1"] = r["median_s"] / base[1] if 1 in base else None
        elif r["k"] in base:
            r["ratio_to_repgap"] = r["median_s"] / base[r["k"]]

    # agreement of every method's k=1 indices with repgap's
    rg1 = results.get(("repgap", 1))
    key_of = {"faiss IndexFlatL2": "faiss", "sklearn brute": "sk_brute", "sklearn kd_tree": "sk_kd",
              "scipy cKDTree": "ckdtree", "torch cdist+topk": "torch"}
    for r in rows:
        if r.get("k") in (1, 10) and r["method"] in key_of and rg1 is not None:
            res = results.get((key_of[r["method"]], r["k"]))
            rgk = results.get(("repgap", r["k"]))
            if res is not None and rgk is not None:
                r["index_agreement_with_repgap"] = float((np.asarray(res[1]) == rgk[1]).mean())

    exact = None
    if rg1 is not None and results.get(("faiss", 1)) is not None:
        exact = exactness(Q, R, rg1, results[("faiss", 1)])
    if gc is not None and rg1 is not None:
        # the last gap_curve point uses the full training set: it must equal knn's RG
        rg_full = float(np.mean(rg1[0][:, 0].astype(np.float64) ** 2))
        gap_last = float(np.asarray(gc.gaps)[-1]) if int(np.asarray(gc.sizes)[-1]) == n else None
        if exact is not None:
            exact["gap_curve_sizes"] = [int(x) for x in np.asarray(gc.sizes)]
            exact["gap_curve_last_value"] = gap_last
            exact["knn_mean_sq_dist"] = rg_full
    if exact is not None:
        exact["float64_same_answer_as_float32"] = float64_same
    return {"n_reference": n, "n_queries": m, "D": d, "kind": kind, "flops_full_matrix": flops, "rows": rows,
            "exactness": exact}


def fmt_table(shape):
    n, m, d = shape["n_reference"], shape["n_queries"], shape["D"]
    kind = shape.get("kind", "default")
    lines = [f"\n=== n_reference={n}, n_queries={m}, D={d} ({'float32' if kind == 'default' else kind}) ===",
             f"{'method':<20s} {'k':>3s} {'median s':>10s} {'n':>2s} {'ratio':>7s} {'GFLOP/s':>8s} "
             f"{'%peak':>6s} {'idx=rg':>7s}  note"]
    for r in shape["rows"]:
        if "error" in r:
            lines.append(f"{r['method']:<20s} {r['k']:>3d}  ERROR {r['error']}")
            continue
        ratio = r.get("ratio_to_repgap")
        if r["method"] == "repgap.gap_curve":
            rtxt = f"{r['gap_curve_over_knn1']:.2f}x" if r.get("gap_curve_over_knn1") else "-"
            note = f"{r['note']}; time / knn(k=1) = {rtxt}"
            ratio_s = "-"
        else:
            note = r["note"]
            ratio_s = f"{ratio:.2f}" if ratio is not None else "-"
        gf = f"{r['gflops']:.1f}" if "gflops" in r else "-"
        pp = f"{r['pct_peak']:.1f}" if "pct_peak" in r else "-"
        ag = f"{r['index_agreement_with_repgap']:.4f}" if "index_agreement_with_repgap" in r else "-"
        lines.append(f"{r['method']:<20s} {r['k']:>3d} {r['median_s']:>10.4f} {r['n_timed']:>2d} {ratio_s:>7s} "
                     f"{gf:>8s} {pp:>6s} {ag:>7s}  {note}")
    e = shape.get("exactness")
    if e:
        lines.append(
            "exactness repgap vs faiss (k=1): squared-distance rel. diff max {:.3g}, median {:.3g}; "
            "index agreement {:.4f} ({} differ)".format(
                e["sq_dist_rel_diff_max"], e["sq_dist_rel_diff_median"], e["index_agreement"], e["n_disagree"]))
        if e["n_disagree"]:
            lines.append("  float64 arbitration of the differing rows: repgap closer {}, tie {}, faiss closer {}".format(
                e["disagree_repgap_closer"], e["disagree_tie"], e["disagree_faiss_closer"]))
        lines.append("  repgap distance vs float64 recomputation (sample): max abs diff {:.3g}".format(
            e["repgap_dist_vs_float64_recompute_max_abs"]))
        if e.get("float64_same_answer_as_float32") is not None:
            lines.append("  repgap float64 input: the same distances and indices as float32, bit for bit: {}".format(
                e["float64_same_answer_as_float32"]))
        if e.get("gap_curve_last_value") is not None:
            lines.append("  gap_curve last value {:.6g} vs mean squared knn distance {:.6g}".format(
                e["gap_curve_last_value"], e["knn_mean_sq_dist"]))
    return "\n".join(lines)


def versions():
    out = {"python": platform.python_version(), "numpy": np.__version__, "repgap": repgap.__version__}
    for name in ("faiss", "sklearn", "scipy", "torch", "threadpoolctl"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:
            out[name] = f"unavailable ({exc})"
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small shapes, for a smoke run (< 1 min)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up (median reported)")
    p.add_argument("--threads", type=int, default=2, help="threads for every method")
    p.add_argument("--out", default=None, help="write all results to this JSON file")
    p.add_argument("--no-float64", action="store_true", help="skip the float64 rows")
    p.add_argument("--no-cyclic", action="store_true", help="skip the case modulo cyclic shifts")
    p.add_argument("--simd", choices=("native", "avx2"), default="native",
                   help="avx2: run repgap's compiled kernels and faiss's dispatched code at AVX2 on a CPU that has "
                        "AVX-512 (a stand-in for an AVX2 machine; OpenBLAS follows OPENBLAS_CORETYPE)")
    p.add_argument("--paired", type=int, default=0, metavar="ROUNDS",
                   help="only the k = 1 targets (against faiss) and the cyclic case, timed round by round "
                        "(ROUNDS rounds, the order reversed every other round); ratio = peer time / repgap time")
    args = p.parse_args(argv)
    simd = force_simd(args.simd)

    shapes = [(n, m, d, "default") for n, m, d in (QUICK_SHAPES if args.quick else FULL_SHAPES)]
    shapes.append((3_000, 1_000, 784, "lowrank+noise") if args.quick else (30_000, 3_000, 784, "lowrank+noise"))
    info = {"cpu": cpu_model(), "os_cpu_count": os.cpu_count(), "threads": args.threads,
            "repeats": args.repeats, "quick": args.quick, "slow_threshold_s": SLOW_S, "seed": SEED,
            "versions": versions(), "blas": blas_state(), "simd": simd}
    print(f"CPU: {info['cpu']} ({info['os_cpu_count']} logical CPUs); threads={args.threads}; "
          f"repeats={args.repeats}; quick={args.quick}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print("BLAS: " + info["blas"])
    print("SIMD: " + simd)

    size = 2048 if args.quick else 4096
    peak = gemm_peak(args.threads, size, repeats=3)
    print(f"float32 GEMM peak ({size}x{size} @ {size}x{size}, {args.threads} threads): "
          f"{peak['gflops']:.1f} GFLOP/s (median {peak['median_s']:.4f} s)")

    rng = np.random.default_rng(SEED)
    t_all = time.perf_counter()
    if args.paired:
        rows = bench_paired(args, rng)
        print("\n########## paired rounds (ratio = peer time / repgap time; > 1: repgap faster) ##########")
        print(fmt_paired(rows))
        total = time.perf_counter() - t_all
        print(f"\nGEMM peak {peak['gflops']:.1f} GFLOP/s; total benchmark time {total:.1f} s")
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"info": info, "gemm_peak": peak, "paired": rows, "total_s": total}, f, indent=1)
            print(f"wrote {args.out}")
        return
    out_shapes = []
    for n, m, d, kind in shapes:
        print(f"\n--- shape n_reference={n}, n_queries={m}, D={d}, {kind}", flush=True)
        s = bench_shape(n, m, d, args, peak["gflops"], rng, kind)
        out_shapes.append(s)
        print(fmt_table(s), flush=True)
    cyclic = None
    if not args.no_cyclic:
        print("\n--- modulo CyclicShift((8, 8))", flush=True)
        cyclic = bench_cyclic(args, rng, n=500 if args.quick else 2000, m=100 if args.quick else 300)
    total = time.perf_counter() - t_all

    print("\n\n########## summary (ratio = peer time / repgap time; > 1: repgap faster) ##########")
    for s in out_shapes:
        print(fmt_table(s))
    if cyclic is not None:
        print(fmt_cyclic(cyclic))
    print(f"\nGEMM peak {peak['gflops']:.1f} GFLOP/s; total benchmark time {total:.1f} s")

    if args.out:
        with open(args.out, "w") as f:
            json.dump({"info": info, "gemm_peak": peak, "shapes": out_shapes, "cyclic": cyclic, "total_s": total},
                      f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
