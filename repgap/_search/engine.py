"""Certified exact k-NN: candidate search -> float64 recomputation -> certificate -> re-search.

:func:`certified` drives one problem given a ``run`` callable (a kernel of
any backend, on the stored rows or on search copies) and its
:class:`~repgap._search.certify.SearchModel`. Every returned distance comes
from :func:`repgap._search.exact.sqdist_rows`; every returned list is sorted
by (distance, index); every query is either certified or searched again
with four times as many candidates, and, once the candidates would cover a
large part of a prefix, exhaustively in float64. The answer therefore does
not depend on the backend, the algorithm, the precision of the search, the
tiles or the thread count.
"""
import numpy as np

from .certify import U64
from .exact import sort_pairs, sqdist_block, sqdist_rows
from .._kernels_numpy import _ranks_to_rows

#: candidates beyond k in the first round: ``SPARE + k // 2`` (measured: with
#: ``k + 4`` alone, 8 % of the queries of uniform data in D = 784 needed a second
#: round at k = 10; with ``k + 4 + k // 2``, 0.07 %)
SPARE = 4
#: factor by which a round's candidates grow for the queries not certified
GROWTH = 4
#: a prefix searched with at least this fraction of its rows as candidates is scanned exhaustively
EXHAUSTIVE_FRACTION = 0.125


class Stats:
    """Counts of one search (for tests and benchmarks)."""

    def __init__(self):
        self.rounds = 0
        self.researched = 0
        self.exhaustive = 0

    def __repr__(self):
        return f"Stats(rounds={self.rounds}, researched={self.researched}, exhaustive={self.exhaustive})"


last_stats = Stats()


class HostOps:
    """The engine's array operations on host arrays: the recomputation
    (:func:`~repgap._search.exact.sqdist_rows`), the merge
    (:func:`~repgap._search.exact.sort_pairs`) and the exhaustive float64
    scan. :class:`repgap._search.tensors.TensorOps` implements the same
    methods on torch tensors, so that :func:`certified` is one loop for both."""

    def __init__(self, Q, R, order, shift, n_threads):
        self.Q, self.R, self.order, self.shift, self.n_threads = Q, R, order, shift, n_threads

    def empty(self, J, m, k):
        return np.empty((J, m, k)), np.empty((J, m, k), dtype=np.int64)

    def candidates(self, b, idx):
        return np.asarray(b, dtype=np.float64), np.asarray(idx, dtype=np.int64)

    def rows(self, x, a, w):
        return x[a, w]

    def recompute(self, qs, ij):
        return sqdist_rows(self.Q, self.R, qs, ij, self.shift, self.n_threads)

    sort_pairs = staticmethod(sort_pairs)

    def column(self, x, c):
        """``x[:, c]`` as a host vector (the certificate's input)."""
        return x[:, c]

    def rowmax(self, x):
        """The largest entry of each row, as a host vector (the certificate's input)."""
        return np.max(x, axis=1)

    def store(self, out_d, out_i, j, dst, d, i, src):
        out_d[j, dst] = d[src]
        out_i[j, dst] = i[src]

    def exhaustive(self, qsel, cks, k):
        return _exhaustive(self.Q, self.R, qsel, self.order, cks, k, self.shift)


def certified(Q, R, k, order, ck, run, model, *, shift=0, b_canonical=False, n_threads=1, first_kk=None,
              ops=None):
    """Exact k-NN within each prefix, certified.

    Parameters
    ----------
    Q, R : ndarray or tensor
        The stored rows (the distances are theirs).
    k : int
    order : ndarray of int64 or None
    ck : ndarray of int64
        Increasing prefix sizes, ``ck[0] >= k``.
    run : callable ``(qsel, kk, cks, first) -> (b, idx)``
        The candidate search for the queries ``qsel`` with ``kk`` candidates
        at the checkpoints ``cks`` (each ``> kk``): arrays (len(cks), len(qsel), kk),
        ``b`` in search units, ``idx`` rows of R.
    model : SearchModel
    shift : int
        Canonical units are ``4**shift`` (see :func:`sqdist_rows`).
    b_canonical : bool
        The kernel's ``b`` are already the canonical distances (same bits).
    first_kk : int, optional
        Candidates of the first round (default ``k + SPARE + k // 2``): the
        plan asks for 2 when k = 1 on the compiled kernel's two-per-lane sweep.
    ops : HostOps or TensorOps, optional
        The array operations (default: :class:`HostOps` on Q and R). Only
        the queries' positions, their flags and (m,) vectors of bounds live
        on the host; the candidates and the answer stay where ``ops`` keeps them.

    Returns
    -------
    sqdist (J, m, k) in canonical units, indices (J, m, k).
    """
    global last_stats
    stats = Stats()
    ops = ops if ops is not None else HostOps(Q, R, order, shift, n_threads)
    m = Q.shape[0]
    J = len(ck)
    D = Q.shape[1]
    out_d, out_i = ops.empty(J, m, k)
    todo = np.ones((J, m), dtype=bool)
    tiny = 4.0 * D * 2.0**-1074  # subnormal differences in the recomputation
    kk = int(first_kk) if first_kk else k + SPARE + k // 2
    first = True
    while todo.any():
        stats.rounds += 1
        qsel = np.flatnonzero(todo.any(axis=0))
        if not first:
            stats.researched += qsel.size
        # prefixes whose every row would be a candidate: scanned exhaustively
        thr = kk if first else kk / EXHAUSTIVE_FRACTION
        js_full = [j for j in range(J) if todo[j, qsel].any() and ck[j] <= thr]
        js_run = [j for j in range(J) if todo[j, qsel].any() and j not in js_full]
        if js_full:
            stats.exhaustive += 1
            # every row of these prefixes, in float64
            cks = np.asarray([ck[j] for j in js_full], dtype=np.int64)
            d, i = ops.exhaustive(qsel, cks, k)
            for a, j in enumerate(js_full):
                w = np.flatnonzero(todo[j, qsel])
                ops.store(out_d, out_i, j, qsel[w], ops.rows(d, a, w), ops.rows(i, a, w), slice(None))
                todo[j, qsel[w]] = False
        if js_run:
            cks = np.asarray([ck[j] for j in js_run], dtype=np.int64)
            c = int(min(kk, cks[0]))
            b, idx = ops.candidates(*run(qsel, c, cks, first))
            for a, j in enumerate(js_run):
                w = np.flatnonzero(todo[j, qsel])
                qs = qsel[w]
                bj, ij = ops.rows(b, a, w), ops.rows(idx, a, w)
                t, ij = ops.sort_pairs(bj if b_canonical else ops.recompute(qs, ij), ij)
                if c >= ck[j]:
                    ok = np.ones(qs.size, dtype=bool)
                else:
                    L = model.lower_bound(ops.rowmax(bj), qs)
                    ok = L > ops.column(t, k - 1) * (1.0 + 2 * U64) + tiny
                ops.store(out_d, out_i, j, qs[ok], t[:, :k], ij[:, :k], ok)
                todo[j, qs[ok]] = False
        kk *= GROWTH
        first = False
    last_stats = stats
    return out_d, out_i


def _exhaustive(Q, R, qsel, order, cks, k, shift, budget=1 << 25):
    """k best by (canonical distance, index) over every row of each prefix: (len(cks), len(qsel), k)."""
    D = Q.shape[1]
    a = qsel.size
    out_d = np.empty((cks.size, a, k))
    out_i = np.empty((cks.size, a, k), dtype=np.int64)
    tile = int(max(64, min(4096, budget // max(1, 64 * D))))
    qstep = int(max(1, budget // max(1, tile * D * 8)))
    for s in range(0, a, qstep):
        q = np.asarray(Q[qsel[s : s + qstep]], dtype=np.float64)
        bd = np.empty((q.shape[0], 0))
        bi = np.empty((q.shape[0], 0), dtype=np.int64)
        start = 0
        for j, c in enumerate(cks):
            while start < c:
                end = int(min(c, start + tile))
                rows = _ranks_to_rows(order, np.arange(start, end))
                t = sqdist_block(q, np.asarray(R[rows], dtype=np.float64), shift)
                bd, bi = sort_pairs(np.concatenate([bd, t], 1),
                                    np.concatenate([bi, np.broadcast_to(rows, t.shape)], 1))
                bd, bi = bd[:, :k], bi[:, :k]
                start = end
            out_d[j, s : s + qstep] = bd
            out_i[j, s : s + qstep] = bi
    return out_d, out_i
