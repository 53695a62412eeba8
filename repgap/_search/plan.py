"""The plan and the run: how one in-memory problem is searched.

:func:`knn_prefix` is the one entry point below the public API (used by
:mod:`repgap.neighbors`, :mod:`repgap.gap`, :mod:`repgap._blocks`,
:mod:`repgap._dask` and :mod:`repgap.orbit`): it decides the backend's
algorithm, the rotation, the search copies and their precision, then hands
the kernel to :func:`repgap._search.engine.certified`.
"""
import math

import numpy as np

from .._backends import (_RANK_SAMPLE, capability, choose_algorithm, kernels, low_rank_rotation,
                         use_rotated_kd_tree)
from .._config import get_config
from .._progress import Progress, monotone_reporter
from .._threads import blas_single_thread
from .._arrays import is_tensor, take_rows
from ..groups import Identity
from .certify import (U64, SearchModel, abs_max, canonical_shift, column_mean, norms_about, safe_range,
                      scale_exponent, unit_roundoff)
from .engine import certified
from .exact import sort_pairs, sqdist_rows

#: Re-searches of at most this many queries run on numpy's GEMM tiles,
_RESEARCH_NUMPY = 1024
#: except on these backends, whose own kernel is faster there (cython, 8
#: candidates against 1e5 x 16, 5e4 x 64 and 6e4 x 784 float32 rows, 2 AVX2
#: cores: 21 queries 5.7, 8.5, 125 ms against numpy's 19, 18, 160 ms; 200
#: queries 16, 22, 292 ms against 151, 82, 536 ms)
_RESEARCH_OWN = ("cython",)
#: Below this many query-reference-coordinate products a search runs on one thread.
_SERIAL_WORK = 1 << 22


def knn_prefix(Q, R, k, order, checkpoints, *, backend, n_threads, algorithm="auto",
               progress=None, desc="k-NN", bar=None, group=None, basis="auto", units=False):
    """Validated inputs -> (sqdist (J, m, k), indices (J, m, k)), exact and certified.

    ``bar`` is an open :class:`~repgap._progress.Progress` counting queries
    (for callers that make several passes); otherwise one is opened here.
    ``group``: distances modulo a symmetry group (:mod:`repgap.orbit`).
    ``basis``: ``"auto"`` (test for a low linear rank), None (never rotate)
    or a rotation from :func:`repgap._backends.low_rank_rotation`.
    ``units=True`` returns ``(sqdist, indices, shift)`` with the squared
    distances in units of ``4**shift`` (data near the ends of the
    floating-point range, whose squared distances are not representable).

    The plan (backend, algorithm, rotation, search precision, rescaling) is
    made here once, for the in-memory, streamed and dask paths alike; the
    search is then certified by :func:`repgap._search.engine.certified`.
    """
    m, D = Q.shape
    if is_tensor(Q) or is_tensor(R):
        # the search is not differentiable: grad-carrying tensors are read as values
        same = R is Q
        Q = Q.detach() if is_tensor(Q) else Q
        R = Q if same else (R.detach() if is_tensor(R) else R)
    if group is not None and not isinstance(group, Identity):
        if algorithm not in ("auto", "brute"):
            raise ValueError(f"algorithm={algorithm!r} cannot be combined with group=; the k-NN modulo a group "
                             "chooses its own kernels (use algorithm='auto')")
        from ..orbit import canonical_knn_prefix, orbit_knn_prefix

        prog = False if bar is not None else progress
        if group.canonical:
            # d_G summed in a canonical order: symmetric, the same on every backend
            def search(qsel, c):
                Qs = Q if qsel.size == m else take_rows(Q, qsel)
                return orbit_knn_prefix(Qs, R, c, order, checkpoints, group, backend=backend,
                                        n_threads=n_threads, progress=prog, desc=desc)

            out = canonical_knn_prefix(Q, R, k, order, checkpoints, group, search)
        else:
            out = orbit_knn_prefix(Q, R, k, order, checkpoints, group, backend=backend, n_threads=n_threads,
                                   progress=prog, desc=desc)
        if bar is not None:
            bar.update(m)
        return out + (0,) if units else out
    n_used = int(checkpoints[-1])
    if m * n_used * max(D, 1) < _SERIAL_WORK:
        # a parallel region costs tens of microseconds to open, and
        # milliseconds on a loaded machine (threads wait for a core): small
        # problems run on the calling thread (results do not depend on it)
        n_threads = 1
    algo = choose_algorithm(algorithm, backend, Q.dtype, D, n_used, k)
    if is_tensor(Q) or is_tensor(R):
        from .tensors import ldexp, tensor_search

        d, i, shift = tensor_search(Q, R, k, order, checkpoints, algo, n_threads, progress, desc, bar)
        if units:
            return d, i, shift
        return (ldexp(d, 2 * shift) if shift else d), i
    if isinstance(basis, str):
        basis = None
        if rotates(algorithm, algo, backend, D, n_used, k):
            basis = low_rank_rotation(R[rank_sample_rows(R.shape[0], order, n_used)])
    own = bar is None
    bar = bar if bar is not None else Progress(m, desc, progress)
    try:
        plan = _plan(Q, R, algo, algorithm, basis, backend, n_used, k)
        # one neighbour on the compiled sweep: the first round asks for two,
        # the second being the margin of the certificate, which the kernel may
        # give as a bound on every row it does not return (runner_up_bound)
        sweep = (k == 1 and plan.algo == "fused" and plan.Rs.dtype == np.float32
                 and D <= capability(backend, "nn1_sweep_max_dim"))
        run = _runner(Q, R, order, plan, backend, n_threads, bar,
                      bound=sweep and capability(backend, "runner_up_bound"))
        # the k-d tree's distances are float64 sums of differences (error
        # model U64, not the expansion's): the runner-up certifies nearly
        # every query, and each spare candidate widens the tree's search
        # (D = 3, 1e4 x 1e5, k = 10: see first_candidates)
        d, i = certified(Q, R, k, order, np.asarray(checkpoints, dtype=np.int64), run, plan.model,
                         shift=plan.shift, b_canonical=plan.b_canonical, n_threads=n_threads,
                         first_kk=first_candidates(k, plan, sweep))
    finally:
        if own:
            bar.close()
    if units:
        return d, i, plan.shift
    if plan.shift:
        d = np.ldexp(d, 2 * plan.shift)
    return d, i


#: the low-rank test reads rows of the first RANK_PREFIX of an order
RANK_PREFIX = 65536


def rotates(algorithm, algo, backend, D, n_used, k):
    """Pure predicate: is the low-rank test (and, if it finds a low rank, the
    k-d tree on the principal axes) worth running for this problem? The one
    decision of the in-memory, streamed and dask paths."""
    return (algorithm == "auto" and algo != "kd_tree" and capability(backend, "kd_tree")
            and use_rotated_kd_tree(D, n_used, k))


def first_candidates(k, plan, sweep):
    """Candidates of the certificate's first round (None: its default,
    ``k + SPARE + k // 2``). Pure predicate on the plan.

    The compiled k = 1 sweep gives two (the second may be a bound). The k-d
    tree on the stored rows computes each distance as a float64 sum of
    squared differences, exact to a few units of float64 rounding, so the
    (k + 1)-th candidate certifies all but the queries with a near-tie at
    the k-th (searched again with more): the spare candidates of the
    expansion's error model would only widen every search.
    """
    if sweep:
        return 2
    if plan.algo == "kd_tree" and plan.basis is None and not plan.model.expanded:
        return k + 1
    return None


def rank_sample_rows(n, order, n_used):
    """The rows the low-rank test reads (:func:`repgap._backends.low_rank_rotation`):
    an evenly spaced sample of at most ``_RANK_SAMPLE`` rows of the data, or
    of the first ``min(n_used, RANK_PREFIX)`` rows of the order; the same on
    every path, so that every path rotates alike."""
    base = np.arange(n, dtype=np.int64) if order is None else \
        np.asarray(order[: min(n_used, RANK_PREFIX)], dtype=np.int64)
    step = max(1, base.size // _RANK_SAMPLE)
    return base[::step][:_RANK_SAMPLE]


class _Plan:
    """How one problem is searched: the copies the kernels see and the error model."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _plan(Q, R, algo, algorithm, basis, backend, n_used, k):
    """Decide the search copies (float32 for float64 data on the brute-force
    paths; centred and rescaled by a power of two where the range demands
    it) and build the certificate's error model."""
    D = Q.shape[1]
    amax = abs_max(Q, R)
    kd = algo == "kd_tree"
    e_c = canonical_shift(Q.dtype, amax, D)
    cast = Q.dtype == np.float64 and not kd and basis is None and algorithm in ("auto", "brute")
    sdt = np.dtype(np.float32) if (cast or Q.dtype == np.float32) else np.dtype(np.float64)
    lo, hi = safe_range(sdt, D)
    need_range = amax != 0.0 and not (lo <= amax <= hi)
    if basis is not None and (need_range or e_c):
        basis = None  # the rotation is computed on the stored values
    e_s = 0
    if basis is not None:
        center, V, rank = basis
        Rs = _rotate(R, center, V)
        Qs = Rs if Q is R else _rotate(Q, center, V)
        copy_u, b_on_copies, u, expanded = 2.0 * (D ** 1.5 + 2) * U64, False, U64, False
        b_canonical = True
    elif cast or need_range:
        if cast:  # the float32 kernel for the copies
            algo = choose_algorithm(algorithm, backend, sdt, D, n_used, k)
        e_s = scale_exponent(amax) + 1
        c0 = _mean(R, e_s)
        Rs = _copy(R, e_s, c0, sdt)
        Qs = Rs if Q is R else _copy(Q, e_s, c0, sdt)
        copy_u, b_on_copies = unit_roundoff(sdt), True
        u, expanded = (U64, False) if kd else (unit_roundoff(sdt), True)
        b_canonical = False
    else:
        Rs, Qs = R, Q
        copy_u, b_on_copies = 0.0, False
        u, expanded = (U64, False) if kd else (unit_roundoff(sdt), True)
        # a k-d tree may sum in another order than the primitive (the compiled one does)
        b_canonical = not kd or capability(backend, "kd_tree_canonical")
    cs = _mean(Rs, 0)
    qn = norms_about(Qs, cs)
    rmax = float(np.max(norms_about(Rs, cs))) if Rs.shape[0] else 0.0
    tiny = 4.0 * D * float(np.finfo(Rs.dtype).tiny)
    model = SearchModel(D=D, u=u, expanded=expanded, copy_u=copy_u, b_on_copies=b_on_copies,
                        unit_shift=e_s - e_c, qnorm=qn, rmax=rmax, tiny=tiny)
    return _Plan(Qs=Qs, Rs=Rs, algo=algo, basis=basis, shift=e_c, model=model, b_canonical=b_canonical)


def _rows(D):
    # float64 temporaries of at most 4 MiB: the streamed paths bound memory by blocks
    return max(1, (4 << 20) // (8 * max(D, 1)))


def _pow2(e):
    """``2.0**-e`` when it is a normal double (a product by it then rounds as
    ``np.ldexp`` does: once, correctly), else None."""
    return 2.0 ** -e if -1022 <= -e <= 1023 else None


def _mean(X, e):
    """The mean of ``X * 2**-e`` (float64). Summed first and scaled once when
    that cannot overflow (the centre only sets the error model's norms: any
    deterministic centre would do); scaled first otherwise."""
    # |X| < 2**e (e is the scale exponent of the data's largest value)
    late = bool(e) and _pow2(e) is not None and -900 < e < 1000 - math.log2(max(X.shape[0], 1))
    if not e or late:
        # one read, widened as it sums (no float64 temporaries)
        acc = column_mean(X)
        return acc * _pow2(e) if late else acc
    rows = _rows(X.shape[1])
    acc = np.zeros(X.shape[1])
    for s in range(0, X.shape[0], rows):
        acc += np.ldexp(np.asarray(X[s : s + rows], dtype=np.float64), -e).sum(axis=0)
    return acc / max(X.shape[0], 1)


def _copy(X, e, c0, dtype):
    """``(X * 2**-e - c0)`` in ``dtype``: scaled first, so that nothing overflows
    (the product by an exact power of two is ``np.ldexp``'s rounding, in place)."""
    rows = _rows(X.shape[1])
    out = np.empty(X.shape, dtype=dtype)
    p = _pow2(e)
    tmp = np.empty((min(rows, X.shape[0]), X.shape[1]))
    for s in range(0, X.shape[0], rows):
        B = X[s : s + rows]
        t = tmp[: B.shape[0]]
        if p is not None and B.dtype == np.float64:
            np.multiply(B, p, out=t)
        elif p is not None:
            t[...] = B  # float32 widened first: the product is then float64's
            t *= p
        else:
            np.ldexp(np.asarray(B, dtype=np.float64), -e, out=t)
        np.subtract(t, c0, out=t)
        out[s : s + rows] = t
    return out


def _runner(Q, R, order, plan, backend, n_threads, bar, bound=False):
    """``run(qsel, kk, cks, first)`` for :func:`certified`: the kernel on the copies.
    ``bound``: the first round's two candidates of a k = 1 search may come
    with a lower bound in place of the second distance (see the kernel's
    ``runner_up_bound`` option); the certificate reads only that value."""
    mod = kernels(backend)
    cfg = get_config()
    m = Q.shape[0]
    Qs, Rs = plan.Qs, plan.Rs
    spare = capability(backend, "certified_spare")

    def run(qsel, kk, cks, first):
        Qsub = Qs if qsel.size == m else Qs[qsel]
        b = bar if first else Progress(qsel.size, "", False)
        if plan.basis is not None:
            # k-d tree on the principal-axis coordinates; its candidates are
            # re-ranked by their exact distances between the stored rows
            kc = min(kk + 4, int(cks[0]))
            if capability(backend, "kd_tree_box_dims"):
                _, cand = mod.knn_prefix(Qsub, Rs, kc, order, cks, n_threads=n_threads, algorithm="kd_tree",
                                         options={"box_dims": plan.basis[2]})
            else:
                _, cand = _run_kernel(kernels("numpy"), "numpy", Qsub, Rs, kc, order, cks,
                                      dict(n_threads=n_threads, algorithm="kd_tree"), b)
            if first:
                bar.update(qsel.size)
            t = np.stack([sqdist_rows(Q, R, qsel, cand[j]) for j in range(cand.shape[0])])
            t, cand = sort_pairs(t, cand)
            return t[..., :kk], cand[..., :kk]
        kw = dict(n_threads=n_threads, algorithm=plan.algo, spare=spare, **_tiles(cfg, qsel.size, Rs.shape[0]))
        if not first and backend not in _RESEARCH_OWN and plan.algo != "kd_tree" and qsel.size <= _RESEARCH_NUMPY:
            # a few queries searched again: numpy's GEMM tiles (same error
            # model) beat a kernel call that moves the reference (on one BLAS
            # thread: BLAS threads left spinning would slow the next OpenMP
            # kernel by a quarter, measured at D = 16)
            kw["algorithm"] = "brute"
            with blas_single_thread():
                return _run_kernel(kernels("numpy"), "numpy", Qsub, Rs, kk, order, cks, kw, b)
        if bound and first and kk == 2:
            kw["options"] = {"runner_up_bound": True}
        return _run_kernel(mod, backend, Qsub, Rs, kk, order, cks, kw, b)

    return run


def _run_kernel(mod, backend, Q, R, k, order, checkpoints, kw, bar):
    """One call of the kernel interface; it reports progress and honours
    Ctrl-C between its tiles (the k-d tree reports an estimate: kept monotone)."""
    m = Q.shape[0]
    report = monotone_reporter(bar, m)
    out = mod.knn_prefix(Q, R, k, order, checkpoints, progress=report, **kw)
    report(m)
    return out


def _tiles(cfg, n_queries, n_reference):
    """The configured tile sizes, no larger than the problem: a tile beyond it
    changes nothing but the buffers it allocates (set_config(tile_queries=10**9)
    on 100 rows must not ask for gigabytes); results never depend on tiles."""
    tq, tr = cfg["tile_queries"], cfg["tile_reference"]
    return {"tile_queries": None if tq is None else max(1, min(int(tq), int(n_queries))),
            "tile_reference": None if tr is None else max(1, min(int(tr), int(n_reference)))}


def _rotate(X, center, V):
    out = np.empty(X.shape, dtype=np.float64)
    rows = _rows(X.shape[1])
    for s in range(0, X.shape[0], rows):
        out[s : s + rows] = (np.asarray(X[s : s + rows], dtype=np.float64) - center) @ V.T
    return out
