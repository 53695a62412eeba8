# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of repgap (OpenMP over query tiles).

Same private signatures as :mod:`repgap._kernels_numpy`, the reference that
defines correctness. The heavy lifting is in the C++ headers beside this file;
this module owns the OpenMP parallel loop and the per-thread buffers.
"""
from cython.parallel cimport prange, parallel, threadid
from libc.stdint cimport int32_t, int64_t, uint32_t
from libc.stdlib cimport malloc, free
from libc.math cimport INFINITY
from libcpp.vector cimport vector
from libcpp.algorithm cimport sort

import numpy as np

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1


cdef int _poll(object progress, int64_t done, list raised) noexcept:
    """Between tiles, with the GIL: run the signal handlers, then report
    progress. Returns 1 to stop; the exception (KeyboardInterrupt for Ctrl-C,
    or one from the callback) is kept in ``raised`` and re-raised after the
    parallel region, never left set inside it."""
    try:
        PyErr_CheckSignals()  # raises what a signal handler raised
        if progress is not None:
            progress(done)
    except BaseException as exc:
        raised.append(exc)
        return 1
    return 0

from time import sleep as _sleep
from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef fused floating:
    float
    double


cdef extern from "repgap_openmp.hpp" namespace "repgap" nogil:
    int openmp_enabled()
    int openmp_max_threads()

    cdef struct TilePoll:
        int (*fn)(void*) noexcept nogil
        void* ctx
        int* stop
        double every_ms


cdef int _signals_in_tile(void* ctx) noexcept nogil:
    # called by TilePoll on the calling thread only; ctx is the kernel's
    # `raised` list, where the exception waits for the end of the region
    with gil:
        return _poll(None, 0, <list>ctx)


#: how often the calling thread looks for Ctrl-C inside a tile (ms)
cdef double _POLL_EVERY_MS = 20.0


cdef int _wait_poll(object progress, int64_t done, list raised) noexcept:
    """:func:`_poll` for the calling thread while the other threads finish
    their tiles: first a short sleep (the GIL released), so that the wait
    takes no core from them."""
    try:
        _sleep(_POLL_EVERY_MS * 1e-3)
    except BaseException as exc:
        raised.append(exc)
        return 1
    return _poll(progress, done, raised)


cdef extern from "repgap_simd.hpp" namespace "repgap" nogil:
    int cpu_level()
    void set_simd_override(int level)
    bint dot_slices_available()


cdef extern from "repgap_brute.hpp" namespace "repgap" nogil:
    ctypedef void (*sgemm_ptr)(char*, char*, int*, int*, int*, float*, float*, int*,
                               float*, int*, float*, float*, int*)
    ctypedef void (*dgemm_ptr)(char*, char*, int*, int*, int*, double*, double*, int*,
                               double*, int*, double*, double*, int*)
    int METHOD_DIRECT
    int METHOD_GEMM
    int METHOD_FUSED
    int RB

    cdef cppclass BruteProblem[T]:
        const T* Q
        Py_ssize_t qs0, qs1
        int64_t m
        const T* R
        Py_ssize_t rs0, rs1
        int64_t n
        int D
        const int64_t* order
        const int64_t* ckpt
        int J
        int k, K
        int tq, tr
        int method
        const double* center
        const T* gP
        const T* grn
        const TilePoll* poll
        int bound_last
        sgemm_ptr sgemm
        dgemm_ptr dgemm
        double* out_d
        int64_t* out_i

    cdef cppclass BruteWork[T]:
        void* mem

    int brute_work_alloc[T](const BruteProblem[T]& p, BruteWork[T]* w)
    void brute_work_free(void* mem)
    void brute_query_tile[T](const BruteProblem[T]& p, BruteWork[T]* w, int64_t tile)
    void pack_shared_panel[T](const BruteProblem[T]& p, T* gP, T* grn, int64_t b)
    bint brute_sweeps(int method, int k, int D, int itemsize, bint bound_last)


cdef extern from "repgap_brute.hpp" namespace "repgap" nogil:
    double sqdist_strided[T](const T* q, Py_ssize_t qs1, const T* r, Py_ssize_t rs1, int D)


def column_mean(const floating[:, :] X):
    """The float64 mean of the columns of X: each value widened and added
    in row order (one read, no temporaries; the twin of
    ``repgap._search.certify.column_mean_numpy``)."""
    cdef Py_ssize_t n = X.shape[0], D = X.shape[1], i, d
    out = np.zeros(D, dtype=np.float64)
    cdef double[::1] acc = out
    with nogil:
        for i in range(n):
            for d in range(D):
                acc[d] += <double>X[i, d]
        if n > 0:
            for d in range(D):
                acc[d] /= <double>n
    return out


def exact_sqdist_rows(const floating[:, :] Q, const floating[:, :] R, const int64_t[::1] qrows,
                      const int64_t[:, ::1] ridx, int n_threads=1):
    """The exact float64 primitive (``repgap._search.exact``), compiled:
    squared distances between ``Q[qrows[i]]`` and ``R[ridx[i, c]]`` (inf for
    ``ridx < 0``), in the same order of operations as its numpy form."""
    cdef Py_ssize_t N = ridx.shape[0], C = ridx.shape[1], i, c
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef Py_ssize_t qs0 = Q.strides[0] // itemsize, qs1 = Q.strides[1] // itemsize
    cdef Py_ssize_t rs0 = R.strides[0] // itemsize, rs1 = R.strides[1] // itemsize
    cdef int D = Q.shape[1]
    cdef const floating* Qb = _base(Q)
    cdef const floating* Rb = _base(R)
    cdef int64_t r
    out = np.empty((N, C), dtype=np.float64)
    cdef double[:, ::1] ov = out
    if N == 0 or C == 0:
        return out
    with nogil, parallel(num_threads=max(n_threads, 1)):
        for i in prange(N, schedule="static"):
            for c in range(C):
                r = ridx[i, c]
                if r < 0:
                    ov[i, c] = INFINITY
                else:
                    ov[i, c] = sqdist_strided(Qb + qrows[i] * qs0, qs1, Rb + r * rs0, rs1, D)
    return out


cdef inline double _lanes_sum(const double* t, int D) noexcept nogil:
    # the four-lane order of repgap._search.exact._lanes (and sqdist_strided)
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef int d = 0
    while d + 4 <= D:
        s0 += t[d]
        s1 += t[d + 1]
        s2 += t[d + 2]
        s3 += t[d + 3]
        d += 4
    while d < D:
        s0 += t[d]
        d += 1
    return (s0 + s1) + (s2 + s3)


cdef inline void _image_terms(const double* x, const double* y, const int64_t* perm, double sign, int D,
                              double* t) noexcept nogil:
    cdef int d
    cdef double u
    for d in range(D):
        u = x[d] - sign * y[perm[d]]
        t[d] = u * u


def canonical_images_min(const double[:, ::1] X, const double[:, ::1] Y, const int64_t[:, ::1] perms,
                         const double[::1] signs, double slack, int n_threads=1):
    """``min_g`` of the canonical sum of ``(x_i - s_g y_i[perm_g])^2`` per row
    pair (``repgap._search.exact.canonical_images_min_numpy``, compiled): the
    four-lane sums pick the images within ``slack`` of the best, and only
    those are summed in sorted order (the canonical sum)."""
    cdef Py_ssize_t N = X.shape[0], i
    cdef int D = X.shape[1], G = perms.shape[0], g
    cdef double tiny = (4.0 * D) * 4.9406564584124654e-324
    cdef double mn, thr, best, v
    cdef double* t
    cdef double* f
    out = np.empty(N, dtype=np.float64)
    cdef double[::1] ov = out
    if N == 0:
        return out
    if G == 0 or D == 0:
        out[:] = INFINITY if G == 0 else 0.0
        return out
    with nogil, parallel(num_threads=max(n_threads, 1)):
        t = <double*> malloc(sizeof(double) * D)
        f = <double*> malloc(sizeof(double) * G)
        for i in prange(N, schedule="static"):
            mn = INFINITY
            for g in range(G):
                _image_terms(&X[i, 0], &Y[i, 0], &perms[g, 0], signs[g], D, t)
                f[g] = _lanes_sum(t, D)
                if f[g] < mn:
                    mn = f[g]
            thr = mn * slack + tiny
            best = INFINITY
            for g in range(G):
                if f[g] <= thr:
                    _image_terms(&X[i, 0], &Y[i, 0], &perms[g, 0], signs[g], D, t)
                    sort(t, t + D)
                    v = _lanes_sum(t, D)
                    if v < best:
                        best = v
            ov[i] = best
        free(t)
        free(f)
    return out


cdef extern from "repgap_kdtree.hpp" namespace "repgap" nogil:
    cdef cppclass KDTree[T]:
        KDTree() except +
        int J
        void build(const T* R, Py_ssize_t rs0, Py_ssize_t rs1, int D,
                   const int64_t* order, const int64_t* ck, int J, int leaf, int box_dims,
                   int n_threads) except +
        void query(const double* q, double* bd, int64_t* bi, int k)
        int locate(const double* q)


cdef extern from "repgap_brute.hpp" namespace "repgap":
    const int NN2_MAX_DIM

#: the registry's view (repgap._backends.REGISTRY, CAPABILITY_DEFAULTS)
CAPABILITIES = {"kd_tree_box_dims": True, "kd_tree_canonical": False, "nn1_sweep_max_dim": NN2_MAX_DIM,
                "runner_up_bound": True,
                "orbit_refine": True,
                # the engine certifies every answer: no spare candidates (the
                # default 8 cost 5-9 % of a k-NN call at D = 16-784 and a
                # quarter of a search modulo CyclicShift((8, 8)) on its
                # queries' images; benchmarks/README.md, session 20)
                "certified_spare": 0}
ALGORITHMS = ("brute", "kd_tree", "direct", "gemm", "fused")


def brute_algorithm(dtype, int n_features):
    """What ``algorithm="brute"`` runs: the fused float32 kernel (BLAS tiles
    from ``GEMM_MIN_DIM_F32`` features where the sliced form of the fused
    kernel, AVX-512, is not available), BLAS tiles for float64 from
    ``GEMM_MIN_DIM_F64`` features, the direct kernel below."""
    from ._backends import GEMM_MIN_DIM_F32, GEMM_MIN_DIM_F64

    if dtype.itemsize == 4:
        return "gemm" if n_features >= GEMM_MIN_DIM_F32 and not dot_slices_available() else "fused"
    return "gemm" if n_features >= GEMM_MIN_DIM_F64 else "direct"


def describe():
    """A line for repgap.show_config."""
    omp, _ = openmp_info()
    return f"compiled, OpenMP {'on' if omp else 'OFF (single-threaded build)'}, SIMD {simd_info()}"


def openmp_info():
    """(OpenMP compiled in, the OpenMP runtime's default thread count)."""
    return bool(openmp_enabled()), int(openmp_max_threads())


def simd_info():
    """The SIMD level the direct kernels use here: 'avx512', 'avx2' or 'portable'."""
    return {2: "avx512", 1: "avx2"}.get(cpu_level(), "portable")


def _set_simd_level(int level):
    """Force a lower SIMD level (-1 restores the CPU's), for the tests."""
    set_simd_override(level)


cdef int64_t _total(const vector[int64_t]& v) noexcept nogil:
    cdef int64_t s = 0
    cdef size_t u
    for u in range(v.size()):
        s += v[u]
    return s


cdef inline const floating* _base(const floating[:, :] X):
    return &X[0, 0]


def _brute(const floating[:, :] Q, const floating[:, :] R, const int64_t[::1] order,
           const int64_t[::1] ckpt, int k, int K, int n_threads, int tq, int tr,
           int method, const double[::1] center, double[:, :, ::1] out_d,
           int64_t[:, :, ::1] out_i, progress=None, bint shared=False, bint bound_last=False):
    """Brute-force kernel; ``progress(n_queries_done)`` is called from the
    calling thread between tiles, where Ctrl-C is also honoured. ``shared``
    packs the reference panels once for all tiles (see BruteProblem.gP)."""
    cdef BruteProblem[floating] p
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef int64_t n_tiles, t
    cdef int failed = 0
    cdef int* failp = &failed
    p.Q = _base(Q)
    p.qs0 = Q.strides[0] // itemsize
    p.qs1 = Q.strides[1] // itemsize
    p.m = Q.shape[0]
    p.R = _base(R)
    p.rs0 = R.strides[0] // itemsize
    p.rs1 = R.strides[1] // itemsize
    p.n = R.shape[0]
    p.D = Q.shape[1]
    p.order = &order[0] if order is not None else NULL
    p.ckpt = &ckpt[0]
    p.J = ckpt.shape[0]
    p.k = k
    p.K = K
    p.tq = tq
    p.tr = tr
    p.method = method
    p.center = &center[0] if center is not None else NULL
    p.sgemm = <sgemm_ptr>sgemm
    p.dgemm = <dgemm_ptr>dgemm
    p.out_d = &out_d[0, 0, 0]
    p.out_i = &out_i[0, 0, 0]
    p.gP = NULL
    p.grn = NULL
    p.bound_last = bound_last
    n_tiles = (p.m + tq - 1) // tq
    cdef TilePoll tpoll
    cdef int64_t n_pan = 0, b
    cdef floating[::1] gP_buf
    cdef floating[::1] grn_buf
    if shared and ckpt[p.J - 1] > 0:
        n_pan = (ckpt[p.J - 1] + RB - 1) // RB
        dt = np.float32 if floating is float else np.float64
        gP_buf = np.empty(n_pan * p.D * RB, dtype=dt)
        grn_buf = np.empty(n_pan * RB, dtype=dt)
        p.gP = &gP_buf[0]
        p.grn = &grn_buf[0]
    # One work area per thread, indexed by the OpenMP thread number.
    cdef vector[BruteWork[floating]] works = vector[BruteWork[floating]](max(n_threads, 1))
    cdef BruteWork[floating]* wp
    cdef int stop = 0
    cdef int* stopp = &stop
    cdef list raised = []
    cdef vector[int64_t] done = vector[int64_t](max(n_threads, 1), 0)
    tpoll.fn = _signals_in_tile
    tpoll.ctx = <void*>raised
    tpoll.stop = stopp
    tpoll.every_ms = _POLL_EVERY_MS
    p.poll = &tpoll
    # The shared panels are packed in a region of their own: a prange inside
    # a parallel block ends without a barrier (omp for nowait), and a tile
    # must never read a panel that another thread is still writing.
    if n_pan > 0:
        with nogil:
            for b in prange(n_pan, schedule="static", num_threads=n_threads):
                pack_shared_panel(p, <floating*>p.gP, <floating*>p.grn, b)
    # Fewer tiles than threads: static, so that tile 0 runs on the calling
    # thread, the only one that polls for Ctrl-C inside a tile.
    cdef bint static_tiles = n_tiles <= n_threads
    with nogil, parallel(num_threads=n_threads):
        wp = &works[threadid()]   # private: assigned inside the parallel block
        wp.mem = NULL
        if brute_work_alloc(p, wp) != 0:
            failp[0] = 1
        if static_tiles:
            for t in prange(n_tiles, schedule="static"):
                if wp.mem != NULL and stopp[0] == 0:
                    brute_query_tile(p, wp, t)
                    done[threadid()] += min(<int64_t>tq, p.m - t * tq)
        else:
            for t in prange(n_tiles, schedule="dynamic"):
                if wp.mem != NULL and stopp[0] == 0:
                    brute_query_tile(p, wp, t)
                    done[threadid()] += min(<int64_t>tq, p.m - t * tq)
                    if threadid() == 0:
                        # the calling thread: the one Python delivers signals to
                        with gil:
                            if _poll(progress, _total(done), raised):
                                stopp[0] = 1
        # (the loops end without a barrier) The calling thread, out of
        # tiles, keeps polling while the others finish theirs, so Ctrl-C is
        # seen within a poll interval whatever the tile size (the tiles of
        # the BLAS path are sized for BLAS, not for time)
        if threadid() == 0:
            while stopp[0] == 0 and failp[0] == 0 and _total(done) < p.m:
                with gil:
                    if _wait_poll(progress, _total(done), raised):
                        stopp[0] = 1
        brute_work_free(wp.mem)
    if static_tiles and not stop:
        # progress (and a signal that came after the last poll) once all tiles are done
        if _poll(progress, p.m, raised):
            stop = 1
    if stop:
        raise raised[0]
    if failed:
        raise MemoryError("repgap: could not allocate the per-thread tile buffers")


def _kdtree(const floating[:, :] Q, const floating[:, :] R, const int64_t[::1] order,
            const int64_t[::1] ckpt, int k, int n_threads, int leafsize,
            double[:, :, ::1] out_d, int64_t[:, :, ::1] out_i, progress=None, int box_dims=0):
    cdef KDTree[floating] tree
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef int D = Q.shape[1]
    cdef int J = ckpt.shape[0]
    cdef int64_t m = Q.shape[0]
    cdef int64_t i
    cdef int j, c, d
    cdef double* q
    cdef double* bd
    cdef int64_t* bi
    cdef int failed = 0
    cdef int* failp = &failed
    cdef int stop = 0
    cdef int* stopp = &stop
    cdef list raised = []
    cdef const floating* Qb = _base(Q)
    cdef Py_ssize_t qs0 = Q.strides[0] // itemsize, qs1 = Q.strides[1] // itemsize
    cdef const floating* Rb = _base(R)
    cdef Py_ssize_t rs0 = R.strides[0] // itemsize, rs1 = R.strides[1] // itemsize
    cdef const int64_t* ob = &order[0] if order is not None else NULL
    with nogil:
        # the two halves of large nodes on two threads (the same tree): at
        # D = 3 the build is most of a search of 1e4 queries in 1e5 points
        tree.build(Rb, rs0, rs1, D, ob, &ckpt[0], J, leafsize, box_dims, n_threads)
    # Visit the queries leaf by leaf (spatially coherent): consecutive
    # searches then share tree nodes and points in cache. The results do
    # not depend on the visiting order.
    leaf_np = np.empty(m, dtype=np.int64)
    cdef int64_t[::1] leaf = leaf_np
    cdef int64_t ii
    with nogil, parallel(num_threads=n_threads):
        q = <double*>malloc(D * sizeof(double))
        if q == NULL:
            failp[0] = 1
        for i in prange(m, schedule="static", chunksize=4096):
            if q != NULL:
                for d in range(D):
                    q[d] = <double>Qb[i * qs0 + d * qs1]
                leaf[i] = tree.locate(q)
        free(q)
    if failed:
        raise MemoryError("repgap: could not allocate the per-thread query buffers")
    cdef int64_t[::1] qord = np.argsort(leaf_np, kind="stable")
    with nogil, parallel(num_threads=n_threads):
        q = <double*>malloc(D * sizeof(double))
        bd = <double*>malloc(J * k * sizeof(double))
        bi = <int64_t*>malloc(J * k * sizeof(int64_t))
        if q == NULL or bd == NULL or bi == NULL:
            failp[0] = 1
        for ii in prange(m, schedule="static", chunksize=256):
            i = qord[ii]
            # at the start of each of the calling thread's chunks (every
            # chunk of 256 queries is a few milliseconds of tree search)
            if threadid() == 0 and ii % 256 == 0 and stopp[0] == 0:
                with gil:
                    if _poll(progress, ii * n_threads, raised):
                        stopp[0] = 1
            if q != NULL and bd != NULL and bi != NULL and stopp[0] == 0:
                for d in range(D):
                    q[d] = <double>Qb[i * qs0 + d * qs1]
                tree.query(q, bd, bi, k)
                for j in range(J):
                    for c in range(k):
                        out_d[j, i, c] = bd[j * k + c]
                        out_i[j, i, c] = bi[j * k + c]
        free(q)
        free(bd)
        free(bi)
    if stop:
        raise raised[0]
    if failed:
        raise MemoryError("repgap: could not allocate the per-thread query buffers")


_METHODS = {"direct": 0, "gemm": 1, "fused": 2}

#: the largest reference copy packed once and shared by the query tiles (bytes)
_SHARED_PANEL_BYTES = 1 << 30
#: the query tile's bytes on the shared-panel path (it stays in L2)
_TILE_QUERY_BYTES = 1 << 20


def _balanced_tile(int64_t m, int64_t largest, int n_threads):
    """The query tile (a multiple of 8, at most ``largest``, at least half of
    it) whose tiles the threads finish together.

    The tiles are taken in order by whichever thread is free, so with equal
    tiles the last round decides: 3000 queries in tiles of 328 make 9 full
    tiles and one of 48, and one thread runs 5 tiles while the other runs
    4.15 (9 % of two threads idle; D = 784, 3e4 x 3e3, k = 1, 2 AVX2 cores,
    medians of 7: 1.02 s at the balanced 304 against 1.12 s at 328, on a
    machine whose times moved by 20 % between runs). The finishing time of
    tile size t is ``ceil(f / T) * t`` for f full tiles on T threads (a
    remainder runs on a thread with one tile less), or ``(f / T) * t + r``
    where T divides f and a remainder r is left; of the sizes with the
    least finishing time the largest wins (fewer tiles: less packing and
    fewer BLAS calls).
    """
    cdef int64_t T = max(1, n_threads)
    cdef int64_t top = max(8, largest // 8 * 8)
    if T == 1 or m <= top or largest < 8:
        return int(largest)
    cdef int64_t t, f, r, span, best_t = top, best_span = -1
    t = top
    while t >= max(8, top // 2):
        f = m // t
        r = m - f * t
        span = (f + T - 1) // T * t   # (cdivision: no -(-f // T) here)
        if r > 0 and f % T == 0:
            # every thread holds f / T full tiles; one also runs the
            # remainder, padded to whole blocks of 8 queries
            span += (r + 7) // 8 * 8
        if best_span < 0 or span < best_span:
            best_span, best_t = span, t
        t -= 8
    return int(best_t)


def knn_prefix(queries, reference, int k, order, checkpoints, *, int n_threads=1,
               str algorithm="brute", tile_queries=None, tile_reference=None,
               spare=None, leafsize=None, progress=None, options=None):
    """k nearest neighbours of every query within every prefix of the reference.

    Same signature, defaults and result as
    :func:`repgap._kernels_numpy.knn_prefix`: ``(sqdist, indices)`` of shape
    ``(len(checkpoints), m, k)``, squared Euclidean distances in float64
    (recomputed from the rows by the exact primitive) and int64 indices
    into ``reference``, sorted by (distance, index). ``options``:
    ``{"box_dims": r}`` makes the k-d tree split and bound on the first r
    coordinates only (rotated data of linear rank r).
    """
    opts = dict(options or {})
    cdef int box_dims = int(opts.pop("box_dims", 0))
    # k = 2 for one neighbour's certificate: the second distance may be a
    # lower bound on every row not returned (BruteProblem.bound_last)
    cdef bint bound_last = bool(opts.pop("runner_up_bound", False))
    if opts:
        raise TypeError(f"unknown options for the cython kernels: {sorted(opts)}")
    spare = 8 if spare is None else int(spare)
    leafsize = 32 if leafsize is None else int(leafsize)
    if algorithm == "brute":
        algorithm = brute_algorithm(queries.dtype, queries.shape[1])
    cdef int J = len(checkpoints)
    m = queries.shape[0]
    D = queries.shape[1]
    out_d = np.empty((J, m, k), dtype=np.float64)
    out_i = np.empty((J, m, k), dtype=np.int64)
    ck = np.ascontiguousarray(checkpoints, dtype=np.int64)
    od = None if order is None else np.ascontiguousarray(order, dtype=np.int64)
    if algorithm == "kd_tree":
        _kdtree(queries, reference, od, ck, k, n_threads, leafsize, out_d, out_i, progress, box_dims)
        return out_d, out_i
    if algorithm not in _METHODS:
        raise ValueError(f"unknown algorithm {algorithm!r} for the cython backend")
    method = _METHODS[algorithm]
    itemsize = queries.dtype.itemsize
    # Pack the reference once for all query tiles (shared, read-only) unless
    # the copy is over budget.
    shareable = (int(ck[-1]) * D * itemsize <= _SHARED_PANEL_BYTES
                 and not brute_sweeps(method, k, D, itemsize, bound_last))   # the sweeps pack their own
    if tile_queries is None:
        # two tiles per thread (dynamic schedule), at most 4096 queries per
        # tile, whole SIMD blocks of 8 queries
        n_tiles = max(2 * n_threads, -(-m // 4096))
        tile_queries = max(64, (-(-m // n_tiles) + 7) // 8 * 8)
        if shareable and method != 1:
            # with nothing to re-pack, a query tile is sized to stay in the
            # core's L2 cache while the panels stream past it (D = 784,
            # 6e4 x 1e4: 3.3 s at 384 queries, 3.95 s at 2048, 4.6 s at 88)
            tile_queries = min(tile_queries, max(64, (_TILE_QUERY_BYTES // (D * itemsize)) // 8 * 8))
        # A tile holds at most 2**34 multiply-adds (about 0.4 s of a core;
        # 2**36 on the BLAS path): the threads' last tiles end together and
        # progress moves tile by tile. The BLAS path's tiles are larger
        # because each sgemm call packs its reference block and its query
        # tile afresh: a query tile of 1256 or 2504 instead of 360 re-packs
        # the reference 3.5-7 times less (D = 784, 6e4 x 1e4, k = 1, 2
        # threads, OpenBLAS Haswell kernels, medians of 4: 5.03 / 5.02 s
        # against 5.58 s; 3e4 x 3e3: 0.787 s at 752 against 0.811 s at 304;
        # benchmarks/README.md, session 20). Ctrl-C does not depend on the
        # tiles: the calling thread polls inside its own, then while the
        # others finish theirs.
        macs = 2**36 if method == 1 else 2**34   # (Python ints: a C shift by a variable would overflow)
        cap = max(8, (int(macs) // max(1, int(ck[-1]) * D)) // 8 * 8)
        tile_queries = _balanced_tile(m, min(tile_queries, cap), n_threads)
    if tile_reference is None:
        if method == 1:
            tile_reference = 1024
        else:
            tile_reference = min(8192, max(256, (4 << 20) // (D * itemsize)))
    tq = int(max(1, tile_queries))
    tr = int(max(1, tile_reference))
    K = k + spare
    center = None
    if method != 0:
        # Centre on the reference mean (float64) before the expansion: the
        # distances of interest are small next to ||x||^2 far from the origin.
        center = column_mean(reference)
    # shared packing pays where a thread would otherwise pack more than once
    shared = shareable and -(-m // tq) > max(1, n_threads)
    if method == 1 and n_threads > 1:
        # BLAS is called from inside the OpenMP region: hold it to one thread.
        from ._threads import blas_single_thread
        with blas_single_thread():
            _brute(queries, reference, od, ck, k, K, n_threads, tq, tr, method, center, out_d, out_i,
                   progress, shared, bound_last)
        return out_d, out_i
    _brute(queries, reference, od, ck, k, K, n_threads, tq, tr, method, center, out_d, out_i,
           progress, shared, bound_last)
    return out_d, out_i


cdef extern from "repgap_pairs.hpp" namespace "repgap" nogil:
    int HIST_COPIES

    cdef cppclass PairProblem[T]:
        const T* X
        Py_ssize_t xs0, xs1
        int64_t n
        const T* Y
        Py_ssize_t ys0, ys1
        int64_t m
        int same
        int D
        const double* center
        const double* edges2
        int nb
        const int32_t* table
        double tol_coef
        int tile
        const int64_t* ta
        const int64_t* tb
        sgemm_ptr sgemm
        dgemm_ptr dgemm

    cdef cppclass PairWork[T]:
        void* mem

    int pair_work_alloc[T](const PairProblem[T]& p, PairWork[T]* w, int64_t* hist)
    int64_t pair_tile[T](const PairProblem[T]& p, PairWork[T]* w, int64_t t)



def _pairs(const floating[:, :] X, const floating[:, :] Y, int same, const double[::1] center,
           const double[::1] edges2, const int32_t[::1] table, double tol_coef, int tile,
           const int64_t[::1] ta, const int64_t[::1] tb, int n_threads,
           int64_t[:, :, ::1] hist, progress=None):
    cdef PairProblem[floating] p
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef int64_t n_pairs = ta.shape[0], t
    cdef int failed = 0
    cdef int* failp = &failed
    cdef int stop = 0
    cdef int* stopp = &stop
    cdef list raised = []
    cdef vector[int64_t] done = vector[int64_t](max(n_threads, 1), 0)
    p.X = _base(X)
    p.xs0 = X.strides[0] // itemsize
    p.xs1 = X.strides[1] // itemsize
    p.n = X.shape[0]
    p.Y = _base(Y)
    p.ys0 = Y.strides[0] // itemsize
    p.ys1 = Y.strides[1] // itemsize
    p.m = Y.shape[0]
    p.same = same
    p.D = X.shape[1]
    p.center = &center[0]
    p.edges2 = &edges2[0]
    p.nb = edges2.shape[0] - 1
    p.table = &table[0]
    p.tol_coef = tol_coef
    p.tile = tile
    p.ta = &ta[0]
    p.tb = &tb[0]
    p.sgemm = <sgemm_ptr>sgemm
    p.dgemm = <dgemm_ptr>dgemm
    cdef vector[PairWork[floating]] works = vector[PairWork[floating]](max(n_threads, 1))
    cdef PairWork[floating]* wp
    with nogil, parallel(num_threads=n_threads):
        wp = &works[threadid()]
        wp.mem = NULL
        if pair_work_alloc(p, wp, &hist[threadid(), 0, 0]) != 0:
            failp[0] = 1
        for t in prange(n_pairs, schedule="dynamic"):
            if wp.mem != NULL and stopp[0] == 0:
                done[threadid()] += pair_tile(p, wp, t)
                if threadid() == 0:
                    with gil:
                        if _poll(progress, _total(done), raised):
                            stopp[0] = 1
        brute_work_free(wp.mem)
    if stop:
        raise raised[0]
    if failed:
        raise MemoryError("repgap: could not allocate the per-thread tile buffers")


def pair_counts(X, Y, edges, *, int n_threads=1, tile=None, progress=None):
    """Counts of pairs with distance in ``[edges[i], edges[i+1])``.

    Same signature and result as :func:`repgap._kernels_numpy.pair_counts`
    (``Y=None``: the unordered pairs within X, each once). The counts are
    those of the exact float64 distances (see ``repgap_pairs.hpp``).
    """
    from ._pairs_table import bin_table, centred_extent, tile_pairs

    same = Y is None
    if same:
        Y = X
    D = X.shape[1]
    edges2 = np.ascontiguousarray(np.asarray(edges, dtype=np.float64) ** 2)
    nb = edges2.shape[0] - 1
    center, maxlen = centred_extent(X, None if same else Y)
    u = 2.0 ** -24 if X.dtype.itemsize == 4 else 2.0 ** -53
    tol_coef = 2.0 * (D + 8) * u
    table = bin_table(edges2, tol_coef * (2 * maxlen) ** 2, HIST_COPIES)
    if tile is None:
        tile = 512
    tile = int(max(16, tile))
    ta, tb = tile_pairs(X.shape[0], Y.shape[0], tile, same)
    hist = np.zeros((max(n_threads, 1), nb + 3, HIST_COPIES), dtype=np.int64)
    if ta.shape[0] == 0:
        return np.zeros(nb, dtype=np.int64)
    # BLAS is called on small tiles, from inside the OpenMP region: one
    # thread each (BLAS's own threads would spin against ours)
    from ._threads import blas_single_thread
    with blas_single_thread():
        _pairs(X, Y, same, center, edges2, table, tol_coef, tile, ta, tb, n_threads, hist, progress)
    return hist.sum(axis=(0, 2))[1 : nb + 1]


cdef extern from "repgap_orbit.hpp" namespace "repgap" nogil:
    cdef cppclass OrbitSpec:
        int kind, D, p, reflections, centre, h, w, order
        const int64_t* perms
        const double* mats

    cdef cppclass OrbitWork:
        vector[double] a, b
        void reserve(int D, int m)

    void load_row[T](const T* x, Py_ssize_t s1, int D, double* out)
    double orbit_d2(const OrbitSpec& g, OrbitWork& w)


cdef extern from "repgap_orbit.hpp" namespace "repgap":
    enum:
        ORBIT_IDENTITY
        ORBIT_TRANSLATION
        ORBIT_ROTATION
        ORBIT_PERMUTATION
        ORBIT_CYCLIC
        ORBIT_SIGNFLIP
        ORBIT_FINITE_PERM
        ORBIT_FINITE_MAT

#: the kernel's numbers for the kinds of repgap.groups.Group.kernel_spec
#: (tests check that repgap.groups.KERNEL_KINDS agrees)
ORBIT_KINDS = {"identity": ORBIT_IDENTITY, "translation": ORBIT_TRANSLATION, "rotation": ORBIT_ROTATION,
               "permutation": ORBIT_PERMUTATION, "cyclic": ORBIT_CYCLIC, "signflip": ORBIT_SIGNFLIP,
               "finite_perm": ORBIT_FINITE_PERM, "finite_mat": ORBIT_FINITE_MAT}


def orbit_refine(const floating[:, :] Q, const floating[:, :] R, const int64_t[:, ::1] cand, dict spec,
                 int n_threads=1):
    """Exact squared orbit distances between query ``i`` and reference rows
    ``cand[i, j]`` (``-1``: skipped, +inf), for the built-in groups whose
    closed form the compiled kernel knows (``spec`` from
    :func:`repgap.orbit.compiled_spec`). OpenMP over queries."""
    cdef Py_ssize_t m = cand.shape[0], c = cand.shape[1], i, j
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef Py_ssize_t qs0 = Q.strides[0] // itemsize, qs1 = Q.strides[1] // itemsize
    cdef Py_ssize_t rs0 = R.strides[0] // itemsize, rs1 = R.strides[1] // itemsize
    cdef int D = Q.shape[1]
    cdef int64_t r
    cdef OrbitSpec g
    cdef const floating* Qb = _base(Q)
    cdef const floating* Rb = _base(R)
    perms = spec.get("perms")
    mats = spec.get("mats")
    cdef const int64_t[:, ::1] pv
    cdef const double[:, :, ::1] mv
    g.kind = spec["kind"]
    g.D = D
    g.p = spec.get("p", 1)
    g.reflections = spec.get("reflections", 0)
    g.centre = spec.get("centre", 0)
    g.h = spec.get("h", 1)
    g.w = spec.get("w", D)
    g.order = spec.get("order", 1)
    g.perms = NULL
    g.mats = NULL
    if perms is not None:
        pv = perms
        g.perms = &pv[0, 0]
    if mats is not None:
        mv = mats
        g.mats = &mv[0, 0, 0]
    out = np.full((m, c), np.inf)
    cdef double[:, ::1] ov = out
    cdef int nt = max(n_threads, 1)
    cdef vector[OrbitWork] works = vector[OrbitWork](nt)
    cdef int t
    for t in range(nt):
        works[t].reserve(D, max(D // max(g.p, 1), 1))
    cdef OrbitWork* wp
    # blocks of queries with Ctrl-C honoured between them (an orbit distance
    # costs up to |G| D operations: about 2**30 of them per block)
    cdef Py_ssize_t b0 = 0, b1, blk = max(16, (1 << 30) // max(1, c * D * D))
    while b0 < m:
        b1 = min(m, b0 + blk)
        with nogil, parallel(num_threads=nt):
            wp = &works[threadid()]
            for i in prange(b0, b1, schedule="dynamic", chunksize=16):
                for j in range(c):
                    r = cand[i, j]
                    if r < 0:
                        continue
                    load_row(Qb + i * qs0, qs1, D, wp.a.data())
                    load_row(Rb + r * rs0, rs1, D, wp.b.data())
                    ov[i, j] = orbit_d2(g, wp[0])
        PyErr_CheckSignals()
        b0 = b1
    return out


# ---------------------------------------------------------------------------
# the evaluation's dense passes (repgap.evaluation): what a product tile Z of
# search values is read for, the numpy forms being repgap.evaluation's
# _flag_pairs_numpy, _seed_numpy and _merge_top_numpy (same results)
# ---------------------------------------------------------------------------
cdef extern from "repgap_tiles.hpp" namespace "repgap" nogil:
    int64_t tile_count(int mode, const float* z, int n, float rt, const float* ct)
    void tile_fill(int mode, const float* z, int n, float rt, const float* ct, int64_t row,
                   int64_t* qi, int64_t* ti, int64_t pos, int64_t end)


def flag_pairs(const float[:, ::1] Z, const float[::1] rowthr, const float[::1] colthr, bint col_strict,
               int n_threads=1):
    """``(rows, columns)`` of the entries of Z with ``Z[i, j] >= rowthr[i]``
    or ``Z[i, j] > colthr[j]`` (``>=`` unless ``col_strict``), either test
    absent when its thresholds are None; in row-major order, as ``np.nonzero``
    of the boolean tile, without building it (repgap_tiles.hpp)."""
    cdef Py_ssize_t m = Z.shape[0], i
    cdef int n = <int>Z.shape[1]
    cdef int mode = (1 if rowthr is not None else 0) | (2 if colthr is not None else 0)
    if mode & 2 and col_strict:
        mode |= 4
    if m == 0 or n == 0 or mode == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    cdef const float* ct = &colthr[0] if colthr is not None else NULL
    cdef const float* rtp = &rowthr[0] if rowthr is not None else NULL
    counts = np.zeros(m + 1, dtype=np.int64)
    cdef int64_t[::1] cnt = counts
    with nogil, parallel(num_threads=max(n_threads, 1)):
        for i in prange(m, schedule="static"):
            cnt[i + 1] = tile_count(mode, &Z[i, 0], n, rtp[i] if rtp != NULL else 0, ct)
    np.cumsum(counts, out=counts)
    total = int(counts[m])
    qi = np.empty(total, dtype=np.int64)
    ti = np.empty(total, dtype=np.int64)
    if total == 0:
        return qi, ti
    cdef int64_t[::1] qv = qi
    cdef int64_t[::1] tv = ti
    with nogil, parallel(num_threads=max(n_threads, 1)):
        for i in prange(m, schedule="static"):
            if cnt[i + 1] > cnt[i]:
                tile_fill(mode, &Z[i, 0], n, rtp[i] if rtp != NULL else 0, ct, i, &qv[0], &tv[0],
                          cnt[i], cnt[i + 1])
    return qi, ti


def seed_top(const float[:, :] Z, const int64_t[::1] rows, int top):
    """``(row, column)`` of the ``top`` largest entries of ``Z[rows]`` per row,
    ties by the smaller column (what repeated arg-max gives), rows repeated."""
    cdef Py_ssize_t R = rows.shape[0], n = Z.shape[1], a, j
    cdef int kk = <int>min(top, n)
    cdef int p
    cols = np.empty((R, kk), dtype=np.int64)
    cdef int64_t[:, ::1] cv = cols
    cdef float* best
    cdef float z
    if R == 0 or kk == 0:
        return np.repeat(np.asarray(rows), kk), cols.ravel()
    best = <float*>malloc(kk * sizeof(float))
    if best == NULL:
        raise MemoryError("repgap: seed_top could not allocate its buffer")
    try:
        with nogil:
            for a in range(R):
                for p in range(kk):
                    best[p] = -INFINITY
                    cv[a, p] = -1
                for j in range(n):
                    z = Z[rows[a], j]
                    # strictly larger than the kk-th: equal values keep the earlier column
                    if cv[a, kk - 1] >= 0 and not (z > best[kk - 1]):
                        continue
                    p = kk - 1
                    while p > 0 and (cv[a, p - 1] < 0 or z > best[p - 1]):
                        best[p] = best[p - 1]
                        cv[a, p] = cv[a, p - 1]
                        p -= 1
                    best[p] = z
                    cv[a, p] = j
    finally:
        free(best)
    return np.repeat(np.asarray(rows), kk), cols.ravel()


def merge_top(double[:, :] bd, int64_t[:, :] bi, const int64_t[::1] qi, const int64_t[::1] ti,
              const double[::1] sq):
    """Merge candidates ``(row qi, column ti, exact sq)`` into each row's best
    ``(bd, bi)`` in place: the K smallest by (distance, column) over the
    union, each column once, padded by ``(inf, -1)``."""
    cdef Py_ssize_t N = qi.shape[0], K = bd.shape[1], a, p, q
    cdef int64_t t, c
    cdef double v
    cdef bint dup
    if K == 0:
        return
    with nogil:
        for a in range(N):
            q = qi[a]
            t = ti[a]
            v = sq[a]
            dup = False
            for p in range(K):
                if bi[q, p] == t:
                    dup = True
                    break
            if dup:
                continue
            # (v, t) must come before the last entry, padding (inf, -1) last of all
            c = bi[q, K - 1]
            if c >= 0 and not (v < bd[q, K - 1] or (v == bd[q, K - 1] and t < c)):
                continue
            p = K - 1
            while p > 0:
                c = bi[q, p - 1]
                if c >= 0 and not (v < bd[q, p - 1] or (v == bd[q, p - 1] and t < c)):
                    break
                bd[q, p] = bd[q, p - 1]
                bi[q, p] = bi[q, p - 1]
                p -= 1
            bd[q, p] = v
            bi[q, p] = t
