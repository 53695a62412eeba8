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

# Floating-point work per kernel call: about a second on two cores, so that an
# interrupt is honoured quickly and a progress bar moves; never fewer than 512
# queries per thread, so that re-packing the reference stays negligible.
_FLOPS_PER_CALL = 1e11
#: Below this many query-reference-coordinate products a search runs on one thread.
_SERIAL_WORK = 1 << 22


def _chunk_rows(n, D, n_threads):
    rows = int(_FLOPS_PER_CALL / max(1.0, 2.0 * n * max(D, 8)))
    return max(rows, 512 * n_threads)


def knn_prefix(Q, R, k, order, checkpoints, *, backend, n_threads, algorithm="auto",
               progress=None, desc="k-NN", bar=None, group=None):
    """Validated inputs -> (sqdist (J, m, k), indices (J, m, k)) with the chosen kernel.

    ``bar`` is an open :class:`~repgap._progress.Progress` counting queries
    (for callers that make several passes); otherwise one is opened here.
    ``group``: distances modulo a symmetry group (:mod:`repgap.orbit`).
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
        return out
    n_used = int(checkpoints[-1])
    if m * n_used * max(D, 1) < _SERIAL_WORK:
        # a parallel region costs tens of microseconds to open, and
        # milliseconds on a loaded machine (threads wait for a core): small
        # problems run on the calling thread (results do not depend on it)
        n_threads = 1
    algo = choose_algorithm(algorithm, backend, Q.dtype, D, n_used, k)
    if algorithm == "auto" and algo != "kd_tree" and backend != "torch" and use_rotated_kd_tree(D, n_used, k):
        basis = low_rank_rotation(R if order is None else R[order[: min(n_used, 65536)]])
        if basis is not None:
            return _rotated_kd_tree(Q, R, k, order, checkpoints, basis, backend=backend,
                                    n_threads=n_threads, progress=progress, desc=desc, bar=bar)
    mod = kernels(backend)
    cfg = get_config()
    kw = dict(n_threads=n_threads, algorithm=algo, tile_queries=cfg["tile_queries"],
              tile_reference=cfg["tile_reference"])
    own = bar is None
    bar = bar if bar is not None else Progress(m, desc, progress)
    try:
        if backend == "torch":
            # One call, tiles sized from the memory budget (data on a device,
            # or host arrays, whose reference is prepared once rather than
            # per query chunk); progress and Ctrl-C between tiles
            report = monotone_reporter(bar, m)
            out = mod.knn_prefix(Q, R, k, order, checkpoints, progress=report, **kw)
            report(m)
            return out
        if backend == "cython":
            # One call: the kernel reports progress and honours Ctrl-C between
            # its tiles, from the calling thread (the k-d tree reports an
            # estimate: the bar is kept monotone)
            report = monotone_reporter(bar, m)
            out = mod.knn_prefix(Q, R, k, order, checkpoints, progress=report, **kw)
            report(m)
            return out
        step = _chunk_rows(n_used, D, n_threads)
        J = len(checkpoints)
        out_d = np.empty((J, m, k))
        out_i = np.empty((J, m, k), dtype=np.int64)
        for s in range(0, m, step):
            d, i = mod.knn_prefix(Q[s : s + step], R, k, order, checkpoints, **kw)
            out_d[:, s : s + step] = d
            out_i[:, s : s + step] = i
            bar.update(min(step, m - s))
        return out_d, out_i
    finally:
        if own:
            bar.close()


def _rotated_kd_tree(Q, R, k, order, checkpoints, basis, *, backend, n_threads, progress, desc, bar):
    """The k-d tree on principal-axis coordinates, for data of low linear rank.

    Rotating is exact in exact arithmetic and the tree then splits along the
    few directions that carry the data; the k + spare candidates it finds are
    re-ranked by their exact float64 distances on the original rows, so the
    result is that of every other path (docs/theory.md, section 6).
    """
    from ._kernels_numpy import sort_by_distance_then_index

    center, V, rank = basis
    # rotated distances differ from the exact ones by float64 rounding only:
    # a few spare candidates cover near-ties at the k-th distance
    spare = 4
    kk = min(k + spare, int(checkpoints[0]))
    Rr = _rotate(R, center, V)
    Qr = Rr if Q is R else _rotate(Q, center, V)
    if backend == "cython":
        # boxes and splits on the coordinates that carry the data (still
        # exact: a box distance over fewer coordinates is a lower bound)
        own = bar is None
        bar = bar if bar is not None else Progress(Q.shape[0], desc, progress)
        try:
            _, cand = kernels("cython").knn_prefix(Qr, Rr, kk, order, checkpoints, n_threads=n_threads,
                                                   algorithm="kd_tree", box_dims=rank)
            bar.update(Q.shape[0])
        finally:
            if own:
                bar.close()
    else:
        _, cand = knn_prefix(Qr, Rr, kk, order, checkpoints, backend=backend, n_threads=n_threads,
                             algorithm="kd_tree", progress=progress, desc=desc, bar=bar)
    J, m = cand.shape[0], Q.shape[0]
    out_d = np.empty((J, m, k))
    out_i = np.empty((J, m, k), dtype=np.int64)
    step = max(1, (1 << 22) // max(1, kk * Q.shape[1]))
    for j in range(J):
        for s in range(0, m, step):
            rows = cand[j, s : s + step]
            ex = _exact_rerank_sqdist(Q, R, s, rows, backend, n_threads)
            # the candidates come sorted by their rotated distances, which
            # differ from the exact ones by rounding: re-sort only the rows
            # whose order changed
            bad = np.any((ex[:, 1:] < ex[:, :-1]) | ((ex[:, 1:] == ex[:, :-1]) & (rows[:, 1:] < rows[:, :-1])),
                         axis=1)
            if bad.any():
                rows = rows.copy()
                d2, i2 = sort_by_distance_then_index(ex[bad], rows[bad])
                ex[bad], rows[bad] = d2, i2
            out_d[j, s : s + step] = ex[:, :k]
            out_i[j, s : s + step] = rows[:, :k]
    return out_d, out_i


def _exact_rerank_sqdist(Q, R, q0, rows, backend, n_threads):
    """Float64 squared distances (differences first) of queries q0.. to the
    candidate rows: the compiled kernel where available."""
    if backend == "cython":
        from .orbit import refine

        return refine(Q[q0 : q0 + rows.shape[0]], R, rows, Identity(), backend="cython", n_threads=n_threads)
    from ._kernels_numpy import exact_sqdist

    return exact_sqdist(Q, R, np.arange(q0, q0 + rows.shape[0]), rows)


def _rotate(X, center, V):
    out = np.empty(X.shape, dtype=np.float64)
    for s in range(0, X.shape[0], 65536):
        out[s : s + 65536] = (np.asarray(X[s : s + 65536], dtype=np.float64) - center) @ V.T
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
    sq, idx = knn_prefix(Q, R, k, None, ck, backend=name, n_threads=threads, algorithm=algorithm,
                         progress=progress, group=group)
    if is_tensor(sq):
        return sq[0].sqrt(), idx[0]
    return np.sqrt(sq[0]), idx[0]


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
    sq, idx = knn_prefix(Q, R, k, od, ck, backend=name, n_threads=resolve_n_jobs(n_jobs),
                         algorithm=algorithm, progress=progress, group=check_group(group))
    return np.sqrt(sq), idx
