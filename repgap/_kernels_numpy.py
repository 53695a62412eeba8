"""Reference kernels in numpy and scipy: the definition of correctness.

Every other backend exposes :func:`knn_prefix` with this signature and must
return the same neighbours (ties broken by the smaller index) and the same
distances to rounding. The brute-force path uses the GEMM expansion on
centred tiles to find ``k + spare`` candidates per query, then recomputes
their distances exactly in float64 (difference, then square) and keeps the
``k`` best (docs/theory.md, section 6). Memory is bounded by the tile sizes.
"""
import numpy as np

from scipy.spatial import cKDTree

from ._search.certify import column_mean_numpy
from ._search.exact import sort_pairs, sqdist_rows_numpy

ALGORITHMS = ("brute", "kd_tree")


#: the registry's view: its k-d tree's distances are recomputed by the primitive
CAPABILITIES = {"kd_tree_canonical": True, "certified_spare": 0}  # the engine certifies: no spare candidates


def describe():
    """A line for :func:`repgap.show_config`."""
    return "reference implementation (numpy + scipy)"


def exact_sqdist(Q, R, qrows, ridx):
    """Squared distances, in float64, between ``Q[qrows]`` and ``R[ridx]`` (rows of ridx):
    the one exact primitive (:func:`repgap._search.exact.sqdist_rows_numpy`)."""
    return sqdist_rows_numpy(Q, R, qrows, ridx)


def sort_by_distance_then_index(d, i):
    """Sort each row by (distance, index): the tie rule of every backend."""
    return sort_pairs(d, i)


def _ranks_to_rows(order, ranks):
    return ranks if order is None else order[ranks]


def knn_prefix(queries, reference, k, order, checkpoints, *, n_threads=1, algorithm="brute",
               tile_queries=None, tile_reference=None, spare=None, leafsize=None, progress=None, options=None):
    """k nearest neighbours of each query within each prefix of the reference.

    The kernel interface: every backend module implements this function with
    this signature and these defaults (``tests/test_engine.py`` checks it).

    Parameters
    ----------
    queries : ndarray (m, D), float32 or float64
    reference : ndarray (n, D), same dtype
    k : int
    order : ndarray of int64 or None
        ``order[t]`` is the reference row of rank ``t``; None is the identity.
    checkpoints : ndarray of int64
        Increasing prefix sizes; prefix ``j`` is the rows of rank < checkpoints[j].
    n_threads : int
    algorithm : str
        ``"brute"`` (the backend's brute force), ``"kd_tree"``, or one of the
        backend's named kernels.
    tile_queries, tile_reference : int, optional
        Tile sizes (speed only).
    spare : int, optional
        Candidates beyond k recomputed in float64 (default: the backend's).
    leafsize : int, optional
        Leaf size of the k-d tree (default: the backend's).
    progress : callable, optional
        ``progress(queries_done)``, called between tiles, where Ctrl-C is honoured.
    options : dict, optional
        Backend-specific settings (none here).

    Returns
    -------
    sqdist : ndarray (J, m, k), float64
        Squared Euclidean distances, by the exact primitive.
    indices : ndarray (J, m, k), int64
        Reference rows, sorted by (distance, index).
    """
    from ._validation import check_int

    if options:
        raise TypeError(f"unknown options for the numpy kernels: {sorted(options)} (it takes none)")
    check_int(n_threads, "n_threads", low=1)
    tile_queries = check_int(tile_queries, "tile_queries", low=1, allow_none=True)
    tile_reference = check_int(tile_reference, "tile_reference", low=1, allow_none=True)
    leafsize = check_int(leafsize, "leafsize", low=1, allow_none=True)
    spare = 8 if spare is None else check_int(spare, "spare", low=0)
    if algorithm == "kd_tree":
        return _kdtree(queries, reference, k, order, checkpoints, n_threads, 16 if leafsize is None else leafsize,
                       spare, progress)
    if algorithm not in ALGORITHMS and algorithm not in ("direct", "fused", "gemm"):
        raise ValueError(f"unknown algorithm {algorithm!r} for the numpy backend")
    return _brute(queries, reference, k, order, checkpoints, tile_queries, tile_reference, spare, progress)


def _brute(Q, R, k, order, checkpoints, tq, tr, spare, progress=None):
    m, D = Q.shape
    J = len(checkpoints)
    dt = Q.dtype
    K = k + spare
    tq = int(tq or 256)
    tr = int(tr or max(256, min(8192, (8 << 20) // (D * dt.itemsize * max(tq, 1)) * 32)))
    center = column_mean_numpy(R)
    out_d = np.empty((J, m, k))
    out_i = np.empty((J, m, k), dtype=np.int64)
    for q0 in range(0, m, tq):
        q1 = min(m, q0 + tq)
        Qc = (Q[q0:q1] - center).astype(dt, copy=False)
        cd = np.full((q1 - q0, 0), np.inf, dtype=dt)
        ci = np.empty((q1 - q0, 0), dtype=np.int64)
        start = 0
        for j in range(J):
            while start < checkpoints[j]:
                end = min(start + tr, int(checkpoints[j]))
                ranks = np.arange(start, end)
                Rb = R[_ranks_to_rows(order, ranks)]
                Rc = (Rb - center).astype(dt, copy=False)
                v = np.einsum("ij,ij->i", Rc, Rc)[None, :] - 2 * (Qc @ Rc.T)
                cd = np.concatenate([cd, v], axis=1)
                ci = np.concatenate([ci, np.broadcast_to(ranks, v.shape)], axis=1)
                if cd.shape[1] > K:
                    sel = np.argpartition(cd, K - 1, axis=1)[:, :K]
                    cd = np.take_along_axis(cd, sel, 1)
                    ci = np.take_along_axis(ci, sel, 1)
                start = end
            rows = _ranks_to_rows(order, ci)
            ex = exact_sqdist(Q, R, np.arange(q0, q1), rows)
            d, i = sort_by_distance_then_index(ex, rows)
            out_d[j, q0:q1] = d[:, :k]
            out_i[j, q0:q1] = i[:, :k]
        if progress is not None:
            progress(q1)
    return out_d, out_i


def _kdtree(Q, R, k, order, checkpoints, n_threads, leafsize, spare, progress=None):
    # queries in chunks: progress and Ctrl-C between them
    m = Q.shape[0]
    step = 1 << 15
    if m > step:
        parts = []
        for s in range(0, m, step):
            parts.append(_kdtree(Q[s : s + step], R, k, order, checkpoints, n_threads, leafsize, spare))
            if progress is not None:
                progress(min(m, s + step))
        return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1)
    J = len(checkpoints)
    out_d = np.empty((J, m, k))
    out_i = np.empty((J, m, k), dtype=np.int64)
    cd = np.empty((m, 0))
    ci = np.empty((m, 0), dtype=np.int64)
    start = 0
    for j in range(J):
        # one tree per block of new ranks; the running k best are merged
        ranks = np.arange(start, int(checkpoints[j]))
        rows = _ranks_to_rows(order, ranks)
        tree = cKDTree(R[rows], leafsize=leafsize)
        kk = min(k + spare, len(rows))  # spares: ties resolved by index below
        _, loc = tree.query(Q, k=kk, workers=n_threads)
        loc = np.asarray(loc).reshape(m, kk)
        new_rows = rows[loc]
        ex = exact_sqdist(Q, R, np.arange(m), new_rows)
        cd, ci = sort_by_distance_then_index(np.concatenate([cd, ex], 1), np.concatenate([ci, new_rows], 1))
        cd, ci = cd[:, :k], ci[:, :k]
        out_d[j] = cd
        out_i[j] = ci
        start = int(checkpoints[j])
    if progress is not None:
        progress(m)
    return out_d, out_i


def pair_counts(X, Y, edges, *, n_threads=1, tile=None, progress=None):
    """Counts of pairs whose distance lies in ``[edges[i], edges[i+1])``.

    ``Y=None``: the unordered pairs within X, each once, no self pairs;
    otherwise all pairs (x, y). The squared distances come from the GEMM
    expansion on centred float64 tiles; those within the expansion's error
    bound of an edge are recomputed exactly (difference, then square), so the
    counts are those of the exact float64 distances, as in the compiled
    kernel. ``progress(pairs_done)`` is called after each tile pair.
    """
    from ._pairs_table import centred_extent, tile_pairs

    same = Y is None
    Y = X if same else Y
    D = X.shape[1]
    edges2 = np.asarray(edges, dtype=np.float64) ** 2
    nb = edges2.size - 1
    center, _ = centred_extent(X, None if same else Y)
    tol_coef = 2.0 * (D + 8) * 2.0**-53
    tile = int(max(16, tile or 1024))
    counts = np.zeros(nb + 2, dtype=np.int64)
    done = 0
    for a, b in zip(*tile_pairs(X.shape[0], Y.shape[0], tile, same)):
        i0, j0 = a * tile, b * tile
        A = np.asarray(X[i0 : i0 + tile], dtype=np.float64) - center
        B = np.asarray(Y[j0 : j0 + tile], dtype=np.float64) - center
        an = np.einsum("ij,ij->i", A, A)
        bn = np.einsum("ij,ij->i", B, B)
        d2 = np.maximum(an[:, None] + bn[None, :] - 2.0 * (A @ B.T), 0.0)
        tol = tol_coef * (np.sqrt(an)[:, None] + np.sqrt(bn)[None, :]) ** 2
        if same and a == b:
            iu, ju = np.triu_indices(A.shape[0], 1)
            d2, tol = d2[iu, ju], tol[iu, ju]
            ii, jj = iu, ju
        else:
            ii, jj = np.indices(d2.shape)
            d2, tol, ii, jj = d2.ravel(), tol.ravel(), ii.ravel(), jj.ravel()
        lo = np.searchsorted(edges2, d2 - tol, side="right")
        hi = np.searchsorted(edges2, d2 + tol, side="right")
        bins = np.searchsorted(edges2, d2, side="right")
        near = np.flatnonzero(lo != hi)
        if near.size:
            diff = X[i0 + ii[near]].astype(np.float64) - Y[j0 + jj[near]].astype(np.float64)
            bins[near] = np.searchsorted(edges2, np.einsum("ij,ij->i", diff, diff), side="right")
        counts += np.bincount(bins, minlength=nb + 2)
        done += d2.size
        if progress is not None:
            progress(done)
    return counts[1 : nb + 1]
