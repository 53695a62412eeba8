"""Exact k-nearest neighbours: the public entry point and the dispatcher.

The compiled kernels take all queries in one call: their OpenMP loop runs
over query tiles, and between tiles the calling thread takes the GIL for a
moment to honour Ctrl-C (KeyboardInterrupt) and to advance the progress bar.
The numpy and torch backends are called on *query chunks* from Python, with
the same effect. Queries are independent, so neither changes any result.
"""
import numpy as np

from ._backends import choose_algorithm, kernels, low_rank_rotation, resolve_backend, use_rotated_kd_tree
from ._config import get_config
from ._progress import Progress, monotone_reporter
from ._threads import resolve_n_jobs
from ._validation import check_checkpoints, check_k, check_order, check_pair
from .groups import Identity, check_group
from ._kernels_torch import is_tensor
from . import _blocks
from ._search.certify import (U64, SearchModel, abs_max, canonical_shift, norms_about, safe_range,
                              scale_exponent, unit_roundoff)
from ._search.engine import certified
from ._search.exact import sort_pairs, sqdist_rows

# Floating-point work per kernel call: about a second on two cores, so that an
# interrupt is honoured quickly and a progress bar moves; never fewer than 512
# queries per thread, so that re-packing the reference stays negligible.
_FLOPS_PER_CALL = 1e11
#: Re-searches of at most this many queries run on numpy's GEMM tiles.
_RESEARCH_NUMPY = 1024
#: Below this many query-reference-coordinate products a search runs on one thread.
_SERIAL_WORK = 1 << 22


def _chunk_rows(n, D, n_threads):
    rows = int(_FLOPS_PER_CALL / max(1.0, 2.0 * n * max(D, 8)))
    return max(rows, 512 * n_threads)


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
    if group is not None and not isinstance(group, Identity):
        if algorithm not in ("auto", "brute"):
            raise ValueError(f"algorithm={algorithm!r} cannot be combined with group=; the k-NN modulo a group "
                             "chooses its own kernels (use algorithm='auto')")
        from .orbit import orbit_knn_prefix

        out = orbit_knn_prefix(Q, R, k, order, checkpoints, group, backend=backend, n_threads=n_threads,
                               progress=False if bar is not None else progress, desc=desc)
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
        out = _tensor_search(Q, R, k, order, checkpoints, algo, n_threads, progress, desc, bar)
        return out + (0,) if units else out
    if isinstance(basis, str):
        basis = None
        if algorithm == "auto" and algo != "kd_tree" and backend != "torch" and use_rotated_kd_tree(D, n_used, k):
            basis = low_rank_rotation(R if order is None else R[order[: min(n_used, 65536)]])
    own = bar is None
    bar = bar if bar is not None else Progress(m, desc, progress)
    try:
        plan = _plan(Q, R, algo, algorithm, basis, backend, n_used, k)
        run = _runner(Q, R, order, plan, backend, n_threads, bar)
        d, i = certified(Q, R, k, order, np.asarray(checkpoints, dtype=np.int64), run, plan.model,
                         shift=plan.shift, b_canonical=plan.b_canonical)
    finally:
        if own:
            bar.close()
    if units:
        return d, i, plan.shift
    if plan.shift:
        d = np.ldexp(d, 2 * plan.shift)
    return d, i


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
        # the compiled kernels' k-d tree sums in another order than the primitive
        b_canonical = not (kd and backend == "cython")
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


def _mean(X, e):
    rows = _rows(X.shape[1])
    acc = np.zeros(X.shape[1])
    for s in range(0, X.shape[0], rows):
        B = np.asarray(X[s : s + rows], dtype=np.float64)
        acc += np.ldexp(B, -e).sum(axis=0) if e else B.sum(axis=0)
    return acc / max(X.shape[0], 1)


def _copy(X, e, c0, dtype):
    """``(X * 2**-e - c0)`` in ``dtype``: scaled first, so that nothing overflows."""
    rows = _rows(X.shape[1])
    out = np.empty(X.shape, dtype=dtype)
    for s in range(0, X.shape[0], rows):
        out[s : s + rows] = np.ldexp(np.asarray(X[s : s + rows], dtype=np.float64), -e) - c0
    return out


def _runner(Q, R, order, plan, backend, n_threads, bar):
    """``run(qsel, kk, cks, first)`` for :func:`certified`: the kernel on the copies."""
    mod = kernels(backend)
    cfg = get_config()
    m = Q.shape[0]
    Qs, Rs = plan.Qs, plan.Rs

    def run(qsel, kk, cks, first):
        Qsub = Qs if qsel.size == m else Qs[qsel]
        b = bar if first else Progress(qsel.size, "", False)
        if plan.basis is not None:
            # k-d tree on the principal-axis coordinates; its candidates are
            # re-ranked by their exact distances between the stored rows
            kc = min(kk + 4, int(cks[0]))
            if backend == "cython":
                _, cand = mod.knn_prefix(Qsub, Rs, kc, order, cks, n_threads=n_threads, algorithm="kd_tree",
                                         box_dims=plan.basis[2])
            else:
                _, cand = _run_kernel(kernels("numpy"), "numpy", Qsub, Rs, kc, order, cks,
                                      dict(n_threads=n_threads, algorithm="kd_tree"), b)
            if first:
                bar.update(qsel.size)
            t = np.stack([sqdist_rows(Q, R, qsel, cand[j]) for j in range(cand.shape[0])])
            t, cand = sort_pairs(t, cand)
            return t[..., :kk], cand[..., :kk]
        kw = dict(n_threads=n_threads, algorithm=plan.algo, tile_queries=cfg["tile_queries"],
                  tile_reference=cfg["tile_reference"])
        if not first and plan.algo != "kd_tree" and qsel.size <= _RESEARCH_NUMPY:
            # a few queries searched again: numpy's GEMM tiles (same error
            # model) beat re-packing the whole reference in the compiled kernel
            kw["algorithm"] = "brute"
            return _run_kernel(kernels("numpy"), "numpy", Qsub, Rs, kk, order, cks, kw, b)
        return _run_kernel(mod, backend, Qsub, Rs, kk, order, cks, kw, b)

    return run


def _run_kernel(mod, backend, Q, R, k, order, checkpoints, kw, bar):
    m, D = Q.shape
    if backend in ("torch", "cython"):
        # One call: the kernel reports progress and honours Ctrl-C between
        # its tiles (torch: tiles sized from the memory budget, the reference
        # prepared once); the k-d tree reports an estimate: kept monotone
        report = monotone_reporter(bar, m)
        out = mod.knn_prefix(Q, R, k, order, checkpoints, progress=report, **kw)
        report(m)
        return out
    step = _chunk_rows(int(checkpoints[-1]), D, kw["n_threads"])
    J = len(checkpoints)
    out_d = np.empty((J, m, k))
    out_i = np.empty((J, m, k), dtype=np.int64)
    for s in range(0, m, step):
        d, i = mod.knn_prefix(Q[s : s + step], R, k, order, checkpoints, **kw)
        out_d[:, s : s + step] = d
        out_i[:, s : s + step] = i
        bar.update(min(step, m - s))
    return out_d, out_i


def _tensor_search(Q, R, k, order, checkpoints, algo, n_threads, progress, desc, bar):
    """Torch tensors on their device: the torch kernel (its own float64 recomputation)."""
    mod = kernels("torch")
    cfg = get_config()
    kw = dict(n_threads=n_threads, algorithm=algo, tile_queries=cfg["tile_queries"],
              tile_reference=cfg["tile_reference"])
    own = bar is None
    bar = bar if bar is not None else Progress(Q.shape[0], desc, progress)
    try:
        return _run_kernel(mod, "torch", Q, R, k, order, checkpoints, kw, bar)
    finally:
        if own:
            bar.close()


def _rotate(X, center, V):
    out = np.empty(X.shape, dtype=np.float64)
    rows = _rows(X.shape[1])
    for s in range(0, X.shape[0], rows):
        out[s : s + rows] = (np.asarray(X[s : s + rows], dtype=np.float64) - center) @ V.T
    return out


def check_inputs(queries, reference, backend, qname="queries", rname="reference"):
    """(Q, R, backend name): tensors stay tensors on the torch backend (which
    ``auto`` picks for them); everything else becomes validated numpy."""
    tensors = is_tensor(queries) or is_tensor(reference)
    if tensors:
        from ._backends import resolve_backend_for_tensors

        name = resolve_backend_for_tensors(backend)
        if name == "torch":
            from ._kernels_torch import check_tensor_pair

            Q, R = check_tensor_pair(queries, reference, qname, rname)
            return Q, R, name
    else:
        name = resolve_backend(backend)
    Q, R = check_pair(queries, reference, qname, rname)
    return Q, R, name


def knn(queries, reference, k=1, *, group=None, backend=None, n_jobs=None, algorithm="auto", progress=None,
        block_size=None, max_memory=None):
    """Exact k nearest neighbours of each query in a reference set.

    Parameters
    ----------
    queries : array-like of shape (m, D)
        float32 or float64 (kept as they are, C- or F-ordered, read-only or
        memory-mapped); integers are cast to float64.
    reference : array-like of shape (n, D)
    k : int, default=1
        Number of neighbours; at most ``n``.
    group : repgap.groups.Group, optional
        Distances modulo a symmetry group: ``min_g ||q - g.x||`` (exact, by
        filter and refine; see :mod:`repgap.orbit`).
    backend : {"auto", "numpy", "cython", "torch"}, optional
        Overrides ``repgap.set_config(backend=...)`` and ``REPGAP_BACKEND``.
        An explicit backend that is not available raises an error.
    n_jobs : int, optional
        Threads: None uses the configured default (``set_config(n_jobs=...)``,
        ``REPGAP_NUM_THREADS``), else all available cores; -1 all cores; a
        positive number exactly that many. The results do not depend on it.
    algorithm : {"auto", "kd_tree", "brute", "direct", "fused", "gemm"}
        ``auto`` picks the k-d tree in low dimension and brute force
        otherwise (see :mod:`repgap._backends` for the thresholds).
    progress : bool, optional
        Progress bar (needs tqdm); by default only on a terminal.
    block_size, max_memory : int, optional
        Stream the reference in blocks of ``block_size`` rows (or of about
        ``max_memory / 3`` bytes); the default for memory maps and ``.npy``
        paths is about 64 MiB per block. The result does not depend on it.

    Torch tensors (on any device) are searched where they are, on the torch
    backend (``auto`` picks it for them), and the results are tensors there.
    ``dask.array`` inputs (chunked along samples) run block by block on the
    active dask scheduler, and a ``reference`` that is an ``np.memmap`` or
    the path of a ``.npy`` file is streamed from disk in blocks; both give
    the in-memory result bit for bit (``docs/dask.md``).

    Returns
    -------
    distances : ndarray of shape (m, k), float64
        Euclidean distances, ascending. They are exact to float64 rounding:
        candidates found in the input precision are recomputed from the
        original rows as differences in float64 (Representation Gap paper,
        arXiv:2605.21692; docs/theory.md, section 6).
    indices : ndarray of shape (m, k), int64
        Rows of ``reference``; equal distances are ordered by index.

    Examples
    --------
    >>> import numpy as np, repgap
    >>> X = np.random.default_rng(0).random((1000, 8), dtype=np.float32)
    >>> d, i = repgap.knn(X[:10], X, k=2)
    >>> bool((i[:, 0] == np.arange(10)).all() and (d[:, 0] == 0).all())
    True
    """
    mode = _blocks.route(queries, reference, block_size, max_memory)
    if mode is not None:  # dask arrays, memory maps, files: block by block (repgap._blocks)
        kw = dict(block_size=block_size, max_memory=max_memory) if mode == "stream" else {}
        return _blocks.knn(mode, queries, reference, k, group=group, backend=backend, n_jobs=n_jobs,
                           algorithm=algorithm, progress=progress, **kw)
    Q, R, name = check_inputs(queries, reference, backend)
    k = check_k(k, R.shape[0])
    group = check_group(group)
    threads = resolve_n_jobs(n_jobs)
    ck = np.array([R.shape[0]], dtype=np.int64)
    sq, idx, shift = knn_prefix(Q, R, k, None, ck, backend=name, n_threads=threads, algorithm=algorithm,
                                progress=progress, group=group, units=True)
    if is_tensor(sq):
        return sq[0].sqrt(), idx[0]
    return _distances(sq[0], shift), idx[0]


def _distances(sq, shift):
    # from squared distances in units of 4**shift: the square root first, so
    # that distances whose squares are not representable come out finite
    d = np.sqrt(sq)
    if not shift:
        return d
    with np.errstate(under="ignore"):  # a subnormal distance is the true one, rounded
        return np.ldexp(d, shift)


def knn_checkpoints(queries, reference, checkpoints, k=1, *, order=None, group=None, backend=None,
                    n_jobs=None, algorithm="auto", progress=None, block_size=None, max_memory=None):
    """k nearest neighbours within each prefix ``reference[order[:n_j]]``, in one pass.

    Parameters
    ----------
    checkpoints : sequence of int
        Increasing prefix sizes ``n_1 < ... < n_J <= n``.
    order : array-like of int, optional
        An ordering of the reference rows (default: the identity).

    Returns
    -------
    distances : ndarray of shape (J, m, k), float64
    indices : ndarray of shape (J, m, k), int64
        Rows of ``reference`` (not positions in ``order``).

    Dask arrays, memory maps and ``.npy`` paths: as in :func:`knn`.
    """
    mode = _blocks.route(queries, reference, block_size, max_memory)
    if mode is not None:
        kw = dict(block_size=block_size, max_memory=max_memory) if mode == "stream" else {}
        return _blocks.knn_checkpoints(mode, queries, reference, checkpoints, k, order=order, group=group,
                                       backend=backend, n_jobs=n_jobs, algorithm=algorithm, progress=progress, **kw)
    Q, R = check_pair(queries, reference)
    n = R.shape[0]
    k = check_k(k, n)
    ck = check_checkpoints(checkpoints, n, k)
    od = None if order is None else check_order(order, n)
    if od is not None and od.size < ck[-1]:
        raise ValueError(f"order has {od.size} entries but the largest checkpoint is {ck[-1]}")
    name = resolve_backend(backend)
    sq, idx, shift = knn_prefix(Q, R, k, od, ck, backend=name, n_threads=resolve_n_jobs(n_jobs),
                                algorithm=algorithm, progress=progress, group=check_group(group), units=True)
    return _distances(sq, shift), idx
