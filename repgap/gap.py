"""The Representation Gap and its curve over training-set sizes.

``RG_n = E_x [ min_i ||x - x_i||^2 ]`` (Perera et al., *Representation Gap*,
arXiv:2605.21692): the mean squared distance from a fresh point to its
nearest training point, the mean squared distortion of the random codebook
formed by the training set (Zador 1982; Graf & Luschgy 2000). Its plug-in
estimate is the mean over held-out points. The general form used here is the
mean of the k-th nearest-neighbour distance to the power r.
"""
import dataclasses
import math
import numbers
import warnings

import numpy as np

from ._progress import Progress
from ._threads import resolve_n_jobs
from ._validation import _describe, check_checkpoints, check_int, check_k, check_power, check_random_state, check_seed
from .neighbors import check_inputs, check_options, knn_prefix
from ._arrays import is_tensor
from .groups import check_group
from . import _blocks


def _summary_repr(obj, fields):
    parts = []
    for f in fields:
        v = getattr(obj, f)
        if isinstance(v, float):
            parts.append(f"{f}={v:.6g}")
        elif isinstance(v, np.ndarray):
            parts.append(f"{f}=array(shape={v.shape})" if v.size > 8 else f"{f}={np.array2string(v, precision=4)}")
        else:
            parts.append(f"{f}={v!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def _jsonable(o):
    """Plain JSON values: numpy scalars and arrays as Python ones, non-finite
    floats as None."""
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.floating, float)):
        v = float(o)
        return v if math.isfinite(v) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def _to_dict(obj):
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


@dataclasses.dataclass(repr=False)
class GapResult:
    """The Representation Gap of a training set measured on held-out points.

    Attributes
    ----------
    value : float
        Mean over test points of the k-th nearest-neighbour distance to the
        power r (the Representation Gap when k = 1, r = 2).
    stderr : float
        Standard error of that mean over test points.
    distances : ndarray (n_test,)
        Each test point's k-th nearest-neighbour distance (not raised to r).
    indices : ndarray (n_test,)
        The training row of that neighbour.
    n_train, n_test : int
    n_zero : int
        Test points at distance 0 from the training set (exact duplicates of a
        training point: memorized or leaked points). They are counted, never
        dropped.
    k : int
    r : float
    """

    value: float
    stderr: float
    distances: np.ndarray
    indices: np.ndarray
    n_train: int
    n_test: int
    n_zero: int
    k: int = 1
    r: float = 2.0

    def __repr__(self):
        return _summary_repr(self, ["value", "stderr", "n_train", "n_test", "n_zero", "k", "r"])

    def to_dict(self):
        return _to_dict(self)


@dataclasses.dataclass(repr=False)
class GapCurve:
    """The Representation Gap as a function of the training-set size.

    Attributes
    ----------
    sizes : ndarray (J,)
        Training-set sizes (prefixes of random orders of the training set).
    gaps : ndarray (J,)
        Mean over repeats of the gap at each size.
    gaps_per_repeat : ndarray (repeats, J)
    stderr : ndarray (J,)
        Standard error of ``gaps``: the variance over repeats (divided by
        their number) plus the variance over test points of the
        repeat-averaged values (divided by n_test).
    distances : ndarray (repeats, J, n_test + n_train_queries)
        Each query's k-th nearest-neighbour distance at each size, kept
        for bootstrap confidence intervals (issue #3): the held-out points
        first, then the training points used as queries, if any.
    n_test, k, r, repeats, random_state
    n_zero : ndarray (J,)
        Queries at distance 0 at each size, summed over repeats.
    n_train_queries : int
        Training points also used as queries (``train_queries`` of
        :func:`gap_curve`; 0 by default).
    """

    sizes: np.ndarray
    gaps: np.ndarray
    gaps_per_repeat: np.ndarray
    stderr: np.ndarray
    distances: np.ndarray
    n_test: int
    n_zero: np.ndarray
    k: int = 1
    r: float = 2.0
    repeats: int = 1
    random_state: object = None
    n_train_queries: int = 0

    def __repr__(self):
        return _summary_repr(self, ["sizes", "gaps", "stderr", "n_test", "n_train_queries", "k", "r", "repeats"])

    def to_dict(self):
        d = _to_dict(self)
        d["random_state"] = self.random_state if isinstance(self.random_state, (int, type(None))) else repr(self.random_state)
        return d


def _host(a):
    """A numpy array from a result that may be a tensor on a device."""
    return a.detach().cpu().numpy() if is_tensor(a) else a


def _power(sqdist, r):
    # r = 2 straight from the exact squared distances (no sqrt round trip)
    return sqdist if r == 2.0 else np.sqrt(sqdist) ** r


def representation_gap(train, test, *, k=1, r=2, group=None, backend=None, n_jobs=None, algorithm="auto",
                       progress=None, block_size=None, max_memory=None):
    """The Representation Gap of ``train`` measured on the held-out ``test`` points.

    ``RG = mean_j min_i ||test_j - train_i||^2`` (k = 1, r = 2): the mean squared
    distance from a fresh point to its nearest training point, which a
    perfectly trained diffusion model's test denoising error tends to
    (Perera et al., arXiv:2605.21692). In general, the mean of the k-th
    nearest-neighbour distance to the power r.

    Parameters
    ----------
    train : array-like (n, D)
    test : array-like (m, D)
        Held-out points drawn independently of ``train``.
    k : int, default=1
    r : float, default=2
    group : repgap.groups.Group, optional
        Measure distances modulo a symmetry group (the equivariances of the
        model): ``min_i min_g ||test_j - g.train_i||^2``.
    backend, n_jobs, algorithm, progress
        As in :func:`repgap.knn`.
    block_size, max_memory
        As in :func:`repgap.knn`: ``train`` may be a ``dask.array``, an
        ``np.memmap`` or the path of a ``.npy`` file, searched block by block
        with the in-memory result (``docs/dask.md``).

    Returns
    -------
    GapResult

    Examples
    --------
    >>> import numpy as np, repgap
    >>> rng = np.random.default_rng(0)
    >>> res = repgap.representation_gap(rng.random((5000, 2)), rng.random((2000, 2)))
    >>> 0.5 < res.value * 5000 * np.pi / 1.0 < 1.5   # ~ Gamma(2) / (n V_2) for d = 2
    True
    """
    check_options(k=k, backend=backend, n_jobs=n_jobs, algorithm=algorithm, progress=progress, group=group,
                  block_size=block_size, max_memory=max_memory)
    check_power(r)
    mode = _blocks.route(test, train, block_size, max_memory)
    r = check_power(r)
    if mode is not None:  # dask arrays, memory maps, files: block by block (repgap._blocks)
        kw = dict(block_size=block_size, max_memory=max_memory) if mode == "stream" else {}
        sq, idx, n, _ = _blocks.prefix(mode, test, train, k, None, None, group=group, backend=backend, n_jobs=n_jobs,
                                       algorithm=algorithm, progress=progress, qname="test", rname="train",
                                       desc="representation gap", k_what="the training set", **kw)
        return _gap_result(sq[0], idx[0], n, idx.shape[-1], r)
    Q, R, name = check_inputs(test, train, backend, "test", "train")
    k = check_k(k, R.shape[0], what="the training set")
    group = check_group(group)
    ck = np.array([R.shape[0]], dtype=np.int64)
    sq, idx = knn_prefix(Q, R, k, None, ck, backend=name, n_threads=resolve_n_jobs(n_jobs),
                         algorithm=algorithm, progress=progress, desc="representation gap",
                         group=group)
    return _gap_result(_host(sq), _host(idx), R.shape[0], k, r)  # per-query results: small


def _gap_result(sq, idx, n, k, r):
    """The GapResult of (J=1, m, k) exact squared distances and rows (every path builds it here)."""
    sqk = sq[0, :, k - 1]
    vals = _power(sqk, r)
    m = sq.shape[1]
    return GapResult(
        value=float(np.mean(vals)),
        stderr=single_point_stderr(vals, m),
        distances=np.sqrt(sqk),
        indices=idx[0, :, k - 1].copy(),
        n_train=int(n),
        n_test=int(m),
        n_zero=int(np.count_nonzero(sq[0, :, 0] == 0)),
        k=k,
        r=r,
    )


def single_point_stderr(vals, m):
    """The standard error of the mean of ``vals`` over m test points; NaN,
    with a warning, for a single test point (no spread to measure)."""
    if m > 1:
        return float(np.std(vals, ddof=1) / np.sqrt(m))
    warnings.warn("the standard error of a gap measured on a single test point is undefined: stderr is NaN "
                  "(pass at least 2 test points)", RuntimeWarning, stacklevel=3)
    return float("nan")


def curve_statistics(vals):
    """``(gaps, gaps_per_repeat, stderr)`` from per-point values ``(repeats, J, m)``.

    The standard error adds the variance over repeats (over their number) and
    the variance over test points of the repeat-averaged values (over m).
    """
    R, J, m = vals.shape
    per_rep = vals.mean(axis=2)
    var_rep = per_rep.var(axis=0, ddof=1) / R if R > 1 else np.zeros(J)
    var_test = vals.mean(axis=0).var(axis=1, ddof=1) / m if m > 1 else np.zeros(J)
    return per_rep.mean(axis=0), per_rep, np.sqrt(var_rep + var_test)


def default_sizes(n, n_sizes=12, smallest=100):
    """About ``n_sizes`` log-spaced integer sizes from ``min(smallest, n)`` to ``n``."""
    n = check_int(n, "n", low=1)
    n_sizes = check_int(n_sizes, "n_sizes", low=1)
    smallest = check_int(smallest, "smallest", low=1)
    lo = min(smallest, n)
    if lo == n:
        return np.array([n], dtype=np.int64)
    s = np.unique(np.round(np.geomspace(lo, n, n_sizes)).astype(np.int64))
    s[-1] = n
    return s


def gap_curve(train, test, *, sizes=None, repeats=5, k=1, r=2, group=None, random_state=None, backend=None,
              n_jobs=None, algorithm="auto", progress=None, block_size=None, max_memory=None, train_queries=False):
    """The Representation Gap at several training-set sizes.

    Each repeat draws one random order of the training set and measures the
    gap of every prefix ``train[order[:n_j]]`` in a single pass over the
    training set (the running nearest neighbours are recorded at each
    checkpoint size), so nested subsets cost about one k-NN search. The law
    ``RG_n ~ C n^(-2/d)`` (docs/theory.md, section 3) is fitted to the result by
    :func:`repgap.fit_law`.

    Parameters
    ----------
    train : array-like (n, D)
    test : array-like (m, D)
    sizes : sequence of int, optional
        Increasing sizes <= n; default ~12 log-spaced sizes from min(100, n) to n.
    repeats : int, default=5
        Random orders; each adds one pass.
    k, r, group : as in :func:`representation_gap`
    random_state : int, numpy Generator or None
        Seeds the random orders (reproducible for any thread count).
    backend, n_jobs, algorithm, progress : as in :func:`repgap.knn`
    block_size, max_memory : as in :func:`representation_gap` (dask arrays,
        memory maps, ``.npy`` paths: every repeat in one pass over the blocks)
    train_queries : bool or int, default=False
        Also use training points as queries: all of them (True) or that many,
        drawn at random once. In a random order, the training points outside
        a prefix are independent of it, so each is a fresh query for that
        prefix; a point inside the prefix is a leave-one-out query against
        the other ``n_j - 1`` (its own row is excluded by index, so a
        duplicate elsewhere still counts as distance 0). Both are unbiased
        for the gap (the leave-one-out ones at size ``n_j - 1``, a relative
        difference of ``2 / (d n_j)`` in at most ``n_j`` of the queries), and
        the noise of the curve drops by about ``sqrt(1 + T / n_test)``, at
        ``1 + T / n_test`` times the cost of the search (with ``k + 1``
        neighbours). Used by :class:`repgap.estimators.GapLaw`, whose
        finite-size fits amplify that noise. In-memory arrays only.

    Returns
    -------
    GapCurve
    """
    check_options(k=k, backend=backend, n_jobs=n_jobs, algorithm=algorithm, progress=progress, group=group,
                  block_size=block_size, max_memory=max_memory)
    check_power(r)
    repeats = check_int(repeats, "repeats", low=1)
    check_seed(random_state)
    _check_train_queries(train_queries, None)
    if sizes is not None and isinstance(sizes, (str, bytes, numbers.Number)):
        raise TypeError(f"sizes must be None or an increasing sequence of integers (training-set sizes), "
                        f"got {_describe(sizes)}")
    mode = _blocks.route(test, train, block_size, max_memory)
    if mode is not None and train_queries is not False and train_queries != 0:
        raise ValueError("train_queries is not available for dask arrays, memory maps and .npy paths "
                         "(it would read the training set once more per repeat); pass train_queries=False")
    if mode is not None:  # dask arrays, memory maps, files: block by block (repgap._blocks)
        kw = dict(block_size=block_size, max_memory=max_memory) if mode == "stream" else {}
        n = _blocks.reference_rows(train)
        k = check_k(k, n, what="the training set")
        r = check_power(r)
        ck = check_checkpoints(default_sizes(n) if sizes is None else sizes, n, k, "sizes")
        rng = check_random_state(random_state)
        orders = [rng.permutation(n) for _ in range(repeats)]  # the in-memory path's orders
        sq, _, _, _ = _blocks.prefix(mode, test, train, k, ck, orders, group=group, backend=backend, n_jobs=n_jobs,
                                     algorithm=algorithm, progress=progress, qname="test", rname="train",
                                     desc="gap curve", k_what="the training set", **kw)
        sqk = sq[:, :, :, k - 1]
        n_zero = np.count_nonzero(sq[:, :, :, 0] == 0, axis=2).sum(axis=0).astype(np.int64)
        return _curve_result(ck, np.sqrt(sqk), _power(sqk, r), n_zero, sq.shape[2], k, r, repeats, random_state, 0)
    Q, R, name = check_inputs(test, train, backend, "test", "train")
    n, m = R.shape[0], Q.shape[0]
    k = check_k(k, n, what="the training set")
    r = check_power(r)
    ck = check_checkpoints(default_sizes(n) if sizes is None else sizes, n, k, "sizes")
    group = check_group(group)
    rng = check_random_state(random_state)
    threads = resolve_n_jobs(n_jobs)
    J = len(ck)
    n_tq = _check_train_queries(train_queries, n)
    own = None
    if n_tq:
        if ck[0] < k + 1:
            raise ValueError(f"train_queries needs every size >= k + 1 = {k + 1} (a leave-one-out query "
                             f"has n_j - 1 other points), got {int(ck[0])}")
        rows = np.arange(n) if n_tq == n else np.sort(rng.choice(n, n_tq, replace=False))
        Q = _concat_rows(Q, R, rows)
        own = np.concatenate([np.full(m, -1, dtype=np.int64), rows])
    mq = m + n_tq
    dist = np.empty((repeats, J, mq))
    vals = np.empty((repeats, J, mq))
    n_zero = np.zeros(J, dtype=np.int64)
    reuse = _reuse_neighbours(Q, R, k + (own is not None), repeats, group, name, algorithm, int(ck[-1]))
    with Progress((repeats + (reuse is not None)) * mq, "gap curve", progress) as bar:
        pool = None
        if reuse is not None:
            pool = _NeighbourPool(Q, R, k, own, name, threads, reuse, bar)
        for rep in range(repeats):
            order = rng.permutation(n)
            if pool is not None:
                sq1, sqk = pool.prefix_sqdist(order, ck)
                bar.update(mq)
            else:
                sq, idx = knn_prefix(Q, R, k + (own is not None), order, ck, backend=name, n_threads=threads,
                                     algorithm=algorithm, bar=bar, group=group)
                sq = _host(sq)
                if own is not None:
                    sq = _drop_self(sq, _host(idx), own, k)
                sq1, sqk = sq[:, :, 0], sq[:, :, k - 1]
            dist[rep] = np.sqrt(sqk)
            vals[rep] = _power(sqk, r)
            n_zero += np.count_nonzero(sq1 == 0, axis=1)
    return _curve_result(ck, dist, vals, n_zero, m, k, r, repeats, random_state, n_tq)


def _curve_result(ck, dist, vals, n_zero, m, k, r, repeats, random_state, n_tq):
    """The GapCurve of (repeats, J, queries) distances and powered values (every path builds it here)."""
    gaps, per_rep, stderr = curve_statistics(vals)
    return GapCurve(
        sizes=ck,
        gaps=gaps,
        gaps_per_repeat=per_rep,
        stderr=stderr,
        distances=dist,
        n_test=int(m),
        n_zero=n_zero,
        k=k,
        r=r,
        repeats=int(repeats),
        random_state=random_state if isinstance(random_state, (int, np.integer, type(None))) else repr(random_state),
        n_train_queries=int(n_tq),
    )


#: Neighbours beyond k kept per query by the pooled gap curve
#: (:class:`_NeighbourPool`): a query whose pool holds fewer than k members
#: of a prefix of fraction f is searched again, with probability about
#: (1 - f)^POOL_EXTRA (34 % at f = 1/30, the smallest GapLaw size, against
#: a prefix thirty times smaller than the set; 3 % at f = 0.2).
POOL_EXTRA = 16


def _reuse_neighbours(Q, R, k, repeats, group, backend, algorithm, n_used):
    """The kernel algorithm with which the gap curve pools one k-NN search over its
    repeats, or None where it does not.

    Pure predicate on the problem: host arrays, no group, several repeats, and
    the algorithm that the per-repeat prefix search would use (so that the
    pooled distances are the same floating-point numbers); not where the
    dispatcher would try its rotated k-d tree, whose distances come from
    another routine.
    """
    from ._backends import choose_algorithm, use_rotated_kd_tree
    from .groups import Identity

    if (repeats < 2 or is_tensor(Q) or is_tensor(R) or not (group is None or isinstance(group, Identity))
            or backend == "torch" or R.shape[0] <= k + POOL_EXTRA):
        return None
    algo = choose_algorithm(algorithm, backend, Q.dtype, Q.shape[1], n_used, k)
    if algorithm == "auto" and algo != "kd_tree" and use_rotated_kd_tree(Q.shape[1], n_used, k):
        return None
    return algo


class _NeighbourPool:
    """One exact search of the ``k + POOL_EXTRA`` nearest training points of every query,
    from which every prefix of every random order is read.

    In a prefix ``order[:s]``, the k-th nearest neighbour of a query is the
    k-th member of the prefix in its list of nearest training points,
    provided the list holds k members: every training point closer than the
    last one listed is in the list, so none outside it can come first (ties
    at that distance have the same distance, which is all the curve keeps).
    A query whose list holds fewer than k members of a prefix (small
    prefixes) is searched again against that prefix alone, exactly, so the
    result is the prefix kernel's for every query and size; the cost of a
    curve drops from one search per repeat to about one search in all (the
    repeated searches run against prefixes a fraction of the set).
    Training rows used as queries (``own >= 0``) skip their own row.
    """

    def __init__(self, Q, R, k, own, backend, threads, algorithm, bar):
        self.Q, self.R, self.k = Q, R, k
        self.own = np.full(Q.shape[0], -1, dtype=np.int64) if own is None else own
        self.extra = int(own is not None)
        self.backend, self.threads, self.algorithm = backend, threads, algorithm
        n = R.shape[0]
        K = min(k + self.extra + POOL_EXTRA, n)
        sq, idx = knn_prefix(Q, R, K, None, np.array([n], dtype=np.int64), backend=backend, n_threads=threads,
                             algorithm=algorithm, bar=bar)
        self.sq, self.idx = _host(sq)[0], _host(idx)[0]
        self.not_self = self.idx != self.own[:, None]

    def prefix_sqdist(self, order, ck):
        """Squared distances to the first and the k-th neighbour in each prefix: two (J, m) arrays."""
        n = self.R.shape[0]
        k = self.k
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        nb_rank = rank[self.idx]
        m = self.Q.shape[0]
        J = len(ck)
        sq1, sqk = np.empty((J, m)), np.empty((J, m))
        rows_all = np.arange(m)
        for j, s in enumerate(ck):
            inside = (nb_rank < s) & self.not_self
            first = np.argmax(inside, axis=1)
            if k == 1:
                found, kth = inside[rows_all, first], first
            else:
                count = np.cumsum(inside, axis=1, dtype=np.int32)
                found, kth = count[:, -1] >= k, np.argmax(count >= k, axis=1)
            sq1[j], sqk[j] = self.sq[rows_all, first], self.sq[rows_all, kth]
            miss = np.flatnonzero(~found)
            if miss.size:
                a, b = self._search_prefix(miss, order[:s])
                sq1[j, miss], sqk[j, miss] = a, b
        return sq1, sqk

    def _search_prefix(self, rows, prefix):
        k, s = self.k, prefix.size
        kk = min(k + self.extra, s)
        sq, idx = knn_prefix(self.Q[rows], self.R[prefix], kk, None, np.array([s], dtype=np.int64),
                             backend=self.backend, n_threads=self.threads, algorithm=self.algorithm, progress=False)
        sq, idx = _host(sq)[:, :, :], prefix[_host(idx)]
        if self.extra:
            sq = _drop_self(sq, idx, self.own[rows], k)
        return sq[0, :, 0], sq[0, :, k - 1]


def _check_train_queries(train_queries, n):
    """The number of training points used as queries (0, ..., n); ``n`` None:
    only the checks, before the data are read."""
    if isinstance(train_queries, (bool, np.bool_)):
        return (n if train_queries else 0) if n is not None else None
    if not isinstance(train_queries, numbers.Integral):
        raise TypeError(f"train_queries must be a bool or a non-negative integer (a number of training points), "
                        f"got {_describe(train_queries)}")
    if train_queries < 0:
        raise ValueError(f"train_queries must be a bool or a non-negative integer (a number of training points), "
                         f"got {int(train_queries)}")
    return int(min(train_queries, n)) if n is not None else None


def _concat_rows(Q, R, rows):
    """The queries followed by the training rows ``rows`` (numpy arrays or tensors alike)."""
    if is_tensor(Q):
        import torch

        return torch.cat([Q, R[torch.as_tensor(rows, device=R.device)]])
    return np.concatenate([Q, R[rows]])


def _drop_self(sq, idx, own, k):
    """The first k neighbours of each query other than its own row.

    ``sq, idx``: (J, m, k + 1); ``own``: the training row of each query, -1
    for held-out ones (which keep their first k).
    """
    own_hit = idx == own[None, :, None]
    # a stable sort moves the query's own row (at most one column) to the end
    pos = np.argsort(own_hit, axis=2, kind="stable")[:, :, :k]
    return np.take_along_axis(sq, pos, axis=2)
