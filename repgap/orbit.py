"""Exact k nearest neighbours modulo a symmetry group: filter and refine.

For every training prefix (the checkpoints of a gap curve), each query's
candidates are taken in increasing order of the invariant lower bound
``||inv(q) - inv(x)|| <= d_G(q, x)`` (a Euclidean k-NN on the invariant
features, with the kernels of :mod:`repgap.neighbors`), and their exact
orbit distances are computed (the *refinement*: an alignment per pair).
A query is finished when the lower bound of its next unrefined candidate is
above its current k-th exact distance: no remaining training point can then
enter its k nearest, so the answer is the exact k-NN modulo the group (for
the products without a closed form, the k-NN by the upper bound the group
returns). Otherwise it fetches eight times as many candidates and goes on;
when that would be more than an eighth of the prefix, the filter is not
selective (a task of high dimension) and the rest of the prefix is aligned
exhaustively.

For the groups that act by signed coordinate permutations
(``Group.canonical``: cyclic shifts, particle permutations, sign flips,
finite groups of index permutations) the neighbours' distances are then
recomputed in a canonical order of summation, with a certificate
(:func:`canonical_knn_prefix`): ``d_G(x, y) == d_G(y, x)`` to the last bit,
on every backend and path.

The refinement runs in the compiled kernel (``csrc/repgap_orbit.hpp``, OpenMP
over queries) for the built-in groups with a closed form when the cython
backend is used, and in numpy (:mod:`repgap.groups`) otherwise.
"""
import numpy as np

from ._backends import capability, kernels
from ._progress import Progress
from .groups import KERNEL_KINDS

# queries per refinement call: bounded memory, and Ctrl-C is honoured between calls
_REFINE_ROWS = 4096
#: the largest group enumerated for the search against images
IMAGES_MAX_ORDER = 4096
#: bytes of float64 images per block of the search against images (bounded
#: memory: 2**18 images of 64 coordinates, 2**16 of 256)
_IMAGES_BLOCK_BYTES = 1 << 27
#: below this many query-image-coordinate products the filter's selectivity cannot pay
_IMAGES_ALWAYS_WORK = 1 << 36
#: invariant features beyond which the filter is not selective (brute force on them)
_IMAGES_MIN_DIM = 8


def use_images(group, m, n, D):
    """Pure predicate: search against every image of the reference rows
    (exact, the plain certified k-NN; memory bounded by blocks of rows)
    rather than filter and refine?

    For a finite group that lists its elements: when the whole augmented
    problem is small (a brute force of at most ``2**36`` multiply-adds, a
    few seconds), or when the rows are long enough that the invariant
    filter runs as a brute force itself and rarely discards a candidate
    (measured: 300 random 8 x 8 images against 2000 under the 64 cyclic
    shifts, issue #14: the filter took 34x the brute force on the images).
    """
    G = group.n_images(D)
    if G is None or G > IMAGES_MAX_ORDER or G == 1:
        return False
    return m * n * G * D <= _IMAGES_ALWAYS_WORK or D >= _IMAGES_MIN_DIM


#: the rows' side of the images search outnumbering the queries this many
#: times takes the queries' side (:func:`images_side`). Measured on random
#: 8 x 8 images under the 64 cyclic shifts, 300 queries, k = 1, 2 threads,
#: medians of 7 rounds, queries' / rows' side: 0.053 / 0.039 s at n = 600,
#: 0.060 / 0.050 at 1200, 0.069 / 0.078 at 2000, 0.086 / 0.150 at 4000;
#: k = 5: 0.094 / 0.085 at 2000, 0.161 / 0.301 at 8000; 1000 queries against
#: 2000: 0.212 / 0.124 (benchmarks/README.md, session 20). Only the speed
#: depends on it.
QUERY_IMAGES_RATIO = 6


def images_side(group, m, n):
    """Pure predicate: augment the queries (True) or the reference rows (False)?

    The group acts by isometries, so ``|q - g.r| = |g^-1.q - r|``: the
    search of every image ``g.q`` of the queries against the plain rows
    gives the orbit distances as the search of the queries against every
    image of the rows does, with the same multiply-adds. What differs is
    what scales with the augmented side: the rows' side builds, copies to
    float32, centres and norms ``n |G|`` rows (about 0.1 us each at D = 64),
    the queries' side pays the certified search's per-query work (candidate
    lists, their float64 recomputation, the certificate) for ``m |G|``
    queries, several times more per row. The queries' side is taken when
    the rows outnumber the queries ``QUERY_IMAGES_RATIO`` times, for the
    groups whose images permute (and flip) coordinates (``group.canonical``):
    their images are exact and the distances are recomputed in the
    canonical order afterwards, so both sides give the same bits.
    """
    return bool(group.canonical) and m * QUERY_IMAGES_RATIO <= n


def images_knn_prefix(Q, R, k, order, checkpoints, group, *, backend, n_threads, progress=None,
                      desc="k-NN modulo group", stats=None):
    """Exact (J, m, k) squared orbit distances and rows: the certified k-NN
    of the images of the queries against the rows, or of the queries
    against the images of the rows (:func:`images_side`).

    The queries' side: :func:`_query_images_knn_prefix`. The rows' side:
    against the images ``g.x`` of the reference rows, in blocks of ranks.

    In a block, the images of the rows (sorted by row) are stacked, row
    ``p`` owning images ``p |G| .. p |G| + |G| - 1``; the prefix of ranks is
    handed to the search as an order of the images. The first image of a row
    in a query's (distance, index) order then carries the row's orbit
    distance, and equal distances come out by row, as on every path. Each
    query takes candidate images until it has k distinct rows.
    """
    from ._search.exact import sort_pairs

    m, D = Q.shape
    G = group.n_images(D)
    ck = np.asarray(checkpoints, dtype=np.int64)
    J = ck.size
    n_used = int(ck[-1])
    if images_side(group, m, n_used):
        return _query_images_knn_prefix(Q, R, k, order, ck, group, backend=backend, n_threads=n_threads,
                                        progress=progress, desc=desc, stats=stats)
    ranks_rows = np.arange(n_used) if order is None else np.asarray(order[:n_used], dtype=np.int64)
    per_block = max(1, _IMAGES_BLOCK_BYTES // (8 * max(D, 1) * G))
    best_d = np.full((J, m, k), np.inf)
    best_i = np.full((J, m, k), -1, dtype=np.int64)
    n_blocks = -(-n_used // per_block)
    with Progress(m * n_blocks, desc, progress) as bar:
        for r0 in range(0, n_used, per_block):
            r1 = min(n_used, r0 + per_block)
            rows = ranks_rows[r0:r1]
            by_row = np.sort(rows)
            A = np.ascontiguousarray(group.images(R[by_row]).reshape(-1, D))
            pos = np.searchsorted(by_row, rows)
            # without an order the ranks are the rows, already sorted: the
            # images are in rank order (no gather of them by the search)
            aug_order = None if order is None else (pos[:, None] * G + np.arange(G)).ravel()
            counts = np.clip(ck - r0, 0, r1 - r0)
            for c in np.unique(counts[counts > 0]):
                js = np.flatnonzero(counts == c)
                d, p = _distinct_rows(Q, A, aug_order, k, int(c), G, backend, n_threads)
                i = np.where(p >= 0, by_row[np.maximum(p, 0)], -1)
                bd, bi = sort_pairs(np.concatenate([best_d[js], np.broadcast_to(d, (js.size,) + d.shape)], -1),
                                    np.concatenate([best_i[js], np.broadcast_to(i, (js.size,) + i.shape)], -1))
                best_d[js], best_i[js] = bd[..., :k], bi[..., :k]
            bar.update(m)
    if stats is not None:
        stats["images"] = stats.get("images", 0) + n_used * G
    return best_d, best_i


def _query_images_knn_prefix(Q, R, k, order, ck, group, *, backend, n_threads, progress, desc, stats):
    """:func:`images_knn_prefix` on the queries' side: every image of a block
    of queries searched against the prefixes of the rows, then, per query,
    the k distinct rows of least (distance, row) over its images.

    Each image's own list holds the k nearest rows to that image; a row
    among a query's k nearest modulo the group is in the list of the image
    that attains its orbit distance (else k rows would beat it there, and so
    modulo the group), so the k first distinct rows of the pooled lists,
    in (distance, row) order, are the answer. Memory: blocks of queries
    whose images take at most ``_IMAGES_BLOCK_BYTES`` as float64.
    """
    from .neighbors import knn_prefix

    m, D = Q.shape
    G = group.n_images(D)
    J = ck.size
    per_block = max(1, _IMAGES_BLOCK_BYTES // (8 * max(D, 1) * G))
    out_d = np.full((J, m, k), np.inf)
    out_i = np.full((J, m, k), -1, dtype=np.int64)
    # a prefix shorter than k holds all its rows: searched alone, for them
    calls = [(k, np.flatnonzero(ck >= k))] + [(int(ck[j]), np.array([j])) for j in np.flatnonzero(ck < k)]
    with Progress(m, desc, progress) as bar:
        for q0 in range(0, m, per_block):
            q1 = min(m, q0 + per_block)
            A = np.ascontiguousarray(group.images(Q[q0:q1]).reshape(-1, D))
            for kk, js in calls:
                if not js.size:
                    continue
                d, i = knn_prefix(A, R, kk, order, ck[js], backend=backend, n_threads=n_threads, progress=False)
                d, i = _distinct_pooled(d.reshape(js.size, q1 - q0, G * kk), i.reshape(js.size, q1 - q0, G * kk),
                                        min(k, kk))
                out_d[js, q0:q1, : d.shape[-1]], out_i[js, q0:q1, : i.shape[-1]] = d, i
            bar.update(q1 - q0)
    if stats is not None:
        stats["images"] = stats.get("images", 0) + m * G
    return out_d, out_i


def _distinct_pooled(d, i, k):
    """The first k distinct indices of each row of the pooled lists ``(d, i)``
    in (distance, index) order, with their distances (inf and -1 where a row
    has fewer)."""
    from ._search.exact import sort_pairs

    d, i = sort_pairs(d, i)
    if k == 1:
        return d[..., :1], i[..., :1]
    first = _first_occurrences(i) & (i >= 0)
    sel = np.argsort(~first, axis=-1, kind="stable")[..., :k]
    keep = np.take_along_axis(first, sel, -1)
    return (np.where(keep, np.take_along_axis(d, sel, -1), np.inf),
            np.where(keep, np.take_along_axis(i, sel, -1), -1))


def _first_occurrences(p):
    """True at the first occurrence of each value along the last axis of
    ``p`` (the lists are in (distance, index) order: the first occurrence of
    a row carries its orbit distance)."""
    o = np.argsort(p, axis=-1, kind="stable")
    sp = np.take_along_axis(p, o, -1)
    first_sorted = np.ones(sp.shape, dtype=bool)
    first_sorted[..., 1:] = sp[..., 1:] != sp[..., :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, o, first_sorted, -1)
    return first


def _distinct_rows(Q, A, aug_order, k, c, G, backend, n_threads):
    """The k nearest of the first c ranks, whose images are A[p*G : (p+1)*G]:
    (m, k) squared distances and positions p, by (distance, position)."""
    from .neighbors import knn_prefix

    m = Q.shape[0]
    # the nearest image always names the nearest row: k = 1 needs one image
    # (the engine's k = 1 path; kk = 10 cost 1.3x the plain search on the
    # augmented set on an AVX2 CPU, benchmarks/README.md, session 15)
    kk = 1 if k == 1 else min(c * G, k * 2 + 8)
    out_d = np.full((m, k), np.inf)
    out_p = np.full((m, k), -1, dtype=np.int64)
    todo = np.arange(m)
    kmax = min(k, c)
    ck = np.array([c * G], dtype=np.int64)
    while todo.size:
        d, i = knn_prefix(Q[todo] if todo.size < m else Q, A, kk, aug_order, ck,
                          backend=backend, n_threads=n_threads, progress=False)
        d, p = d[0], i[0] // G
        first = _first_occurrences(p)
        enough = (first.sum(axis=1) >= kmax) | (kk >= c * G)
        sel = np.argsort(~first, axis=1, kind="stable")[:, :kmax]
        ok = todo[enough]
        out_d[ok, :kmax] = np.take_along_axis(d, sel, 1)[enough]
        out_p[ok, :kmax] = np.take_along_axis(p, sel, 1)[enough]
        todo = todo[~enough]
        kk = min(c * G, kk * 4)
    return out_d, out_p


def compiled_spec(group, D):
    """The compiled kernel's description of ``group`` for rows of length D
    (:meth:`repgap.groups.Group.kernel_spec`, with the kind as the kernel
    numbers it), or None when the kernel has no closed form for it (then
    numpy refines)."""
    spec = group.kernel_spec(D)
    if spec is None:
        return None
    return dict(spec, kind=KERNEL_KINDS[spec["kind"]])


def refine(Q, R, cand, group, *, backend, n_threads):
    """Squared orbit distances ``d_G(Q[i], R[cand[i, j]])^2`` (inf where cand is -1)."""
    m, c = cand.shape
    spec = compiled_spec(group, Q.shape[1]) if capability(backend, "orbit_refine") else None
    if spec is not None:
        return kernels(backend).orbit_refine(Q, R, np.ascontiguousarray(cand, dtype=np.int64), spec,
                                              n_threads=n_threads)
    out = np.full((m, c), np.inf)
    valid = cand >= 0
    qi, cj = np.nonzero(valid)
    step = max(1, (1 << 20) // max(1, Q.shape[1]))
    for s in range(0, qi.size, step):
        a, b = qi[s : s + step], cj[s : s + step]
        out[a, b] = group.distance2(np.asarray(Q[a], dtype=np.float64), np.asarray(R[cand[a, b]], dtype=np.float64))
    return out


def _merge(best_d, best_i, d, i, k):
    """The k best of the union, sorted by (distance, index)."""
    D = np.concatenate([best_d, d], axis=1)
    I = np.concatenate([best_i, i], axis=1)
    o1 = np.argsort(I, axis=1, kind="stable")
    D, I = np.take_along_axis(D, o1, 1), np.take_along_axis(I, o1, 1)
    o2 = np.argsort(D, axis=1, kind="stable")
    return np.take_along_axis(D, o2, 1)[:, :k], np.take_along_axis(I, o2, 1)[:, :k]


def _refine_rest(Q, R, order, n_j, pending, seen_i, best_d, best_i, group, k, *, backend, n_threads):
    """Align every prefix row not yet refined against each pending query."""
    rows_all = np.arange(n_j) if order is None else np.asarray(order[:n_j], dtype=np.int64)
    step = max(1, (1 << 22) // max(n_j, 1))
    count = 0
    for s in range(0, pending.size, step):
        rows = pending[s : s + step]
        cand = np.broadcast_to(rows_all, (rows.size, n_j)).copy()
        if seen_i.shape[1]:
            # drop the candidates refined already (their results are in best)
            pos = np.argsort(rows_all, kind="stable")
            hit = pos[np.searchsorted(rows_all[pos], seen_i[s : s + step])]
            np.put_along_axis(cand, hit, -1, axis=1)
        ex = refine(Q[rows], R, cand, group, backend=backend, n_threads=n_threads)
        best_d[rows], best_i[rows] = _merge(best_d[rows], best_i[rows], ex, cand, k)
        count += int(np.count_nonzero(cand >= 0))
    return count


class _HostOps:
    """The filter-and-refine loop's array namespace on numpy arrays: the
    invariants of :mod:`repgap.groups`, the refinement of :func:`refine`
    (compiled for the closed forms on the cython backend)."""

    rows = _REFINE_ROWS  # queries per refinement call

    def __init__(self, group, backend, n_threads):
        self.group, self.backend, self.n_threads = group, backend, n_threads

    def invariant(self, X):
        return np.ascontiguousarray(self.group.invariant(X))

    def full(self, shape, value):
        return np.full(shape, value, dtype=np.int64 if isinstance(value, int) else np.float64)

    def arange(self, n):
        return np.arange(n)

    def refine(self, Q, R, cand):
        return refine(Q, R, cand, self.group, backend=self.backend, n_threads=self.n_threads)

    def merge(self, bd, bi, d, i, k):
        return _merge(bd, bi, d, i, k)

    def refine_rest(self, Q, R, order, n_j, pending, seen_i, best_d, best_i, k):
        return _refine_rest(Q, R, order, n_j, pending, seen_i, best_d, best_i, self.group, k,
                            backend=self.backend, n_threads=self.n_threads)


def orbit_knn_prefix(Q, R, k, order, checkpoints, group, *, backend, n_threads, progress=None,
                     desc="k-NN modulo group", stats=None):
    """Exact (J, m, k) squared orbit distances and reference rows, by prefix.

    One filter-and-refine loop for arrays and tensors: the array namespace
    (:class:`_HostOps`, or :class:`repgap._orbit_torch.TorchOps` for
    tensors, which stay on their device) supplies the invariants, the
    refinement and the merge; the lower-bound search is the certified k-NN
    of :func:`repgap.neighbors.knn_prefix` on either.
    ``stats``, when a dict, receives the number of refined pairs
    (``"refined"``) and of filter rounds (``"rounds"``).
    """
    from .neighbors import knn_prefix
    from ._arrays import is_tensor

    group.check_dim(Q.shape[1])
    if is_tensor(Q):
        from ._orbit_torch import TorchOps

        ops, backend = TorchOps(group, Q.device), "torch"
    else:
        if use_images(group, Q.shape[0], int(checkpoints[-1]), Q.shape[1]):
            return images_knn_prefix(Q, R, k, order, checkpoints, group, backend=backend, n_threads=n_threads,
                                     progress=progress, desc=desc, stats=stats)
        ops = _HostOps(group, backend, n_threads)
    m = Q.shape[0]
    J = len(checkpoints)
    FQ = ops.invariant(Q)
    FR = FQ if R is Q else ops.invariant(R)
    out_d = ops.full((J, m, k), np.inf)
    out_i = ops.full((J, m, k), -1)
    refined = rounds = 0
    with Progress(J * m, desc, progress) as bar:
        for j, n_j in enumerate(int(c) for c in checkpoints):
            ck = np.array([n_j], dtype=np.int64)
            best_d = ops.full((m, k), np.inf)
            best_i = ops.full((m, k), -1)
            pending = ops.arange(m)
            seen = 0  # candidates already refined for the pending queries
            seen_i = ops.full((m, 0), -1)
            c = min(n_j, max(2 * k + 8, 16))
            while pending.shape[0]:
                rounds += 1
                if c > n_j // 8 and c < n_j:
                    # the filter is not selective here (a task of high
                    # dimension): align the rest of the prefix exhaustively
                    refined += ops.refine_rest(Q, R, order, n_j, pending, seen_i, best_d, best_i, k)
                    bar.update(int(pending.shape[0]))
                    break
                lb, ci = knn_prefix(FQ[pending], FR, c, order, ck, backend=backend, n_threads=n_threads,
                                    algorithm="auto", progress=False)
                lb, ci = lb[0], ci[0]
                new = ci[:, seen:c]
                for s in range(0, pending.shape[0], ops.rows):
                    rows = pending[s : s + ops.rows]
                    ex = ops.refine(Q[rows], R, new[s : s + ops.rows])
                    best_d[rows], best_i[rows] = ops.merge(best_d[rows], best_i[rows], ex, new[s : s + ops.rows], k)
                refined += int(new.shape[0]) * int(new.shape[1])
                kth = best_d[pending, k - 1]
                # the next unrefined candidate's bound beats no k-th distance: done
                done = lb[:, c - 1] > kth * (1 + 1e-12) + 1e-300
                if c >= n_j:
                    done[:] = True
                bar.update(int(done.sum()))
                seen_i = ci[~done]
                pending = pending[~done]
                seen = c
                c = min(n_j, 8 * c)
            out_d[j], out_i[j] = best_d, best_i
    if stats is not None:
        stats["refined"] = stats.get("refined", 0) + refined
        stats["rounds"] = stats.get("rounds", 0) + rounds
    return out_d, out_i


#: neighbours beyond k searched for the canonical recomputation's certificate
_CANONICAL_SPARE = 1


def canonical_knn_prefix(Q, R, k, order, checkpoints, group, search):
    """The k-NN modulo a group acting by coordinate permutations, with the
    distances of :meth:`~repgap.groups.Group.canonical_distance2`.

    ``search(qsel, c)`` returns the (J, len(qsel), c) exact k-NN modulo the
    group of the queries ``qsel``, in any summation order. The candidates'
    distances are recomputed in the canonical order, which moves each by at
    most ``rho64(D)`` relative (both are sums of the same terms), and
    sorted by (distance, row); a query is certified when its c-th
    candidate's distance, lowered by that much twice, is above its k-th
    canonical distance: no row outside the candidates can then beat or tie
    it. Otherwise it is searched again with four times the candidates, up
    to the whole prefix. So ``d_G(x, y) == d_G(y, x)`` to the last bit, and
    every backend, the arrays and the tensors give the same bits.
    """
    from ._arrays import is_tensor
    from ._search.certify import rho64

    tensors = is_tensor(Q)
    ck = np.asarray(checkpoints, dtype=np.int64)
    J, m, D = ck.size, Q.shape[0], Q.shape[1]
    out_d = np.empty((J, m, k))
    out_i = np.empty((J, m, k), dtype=np.int64)
    todo = np.ones((J, m), dtype=bool)
    shrink = (1.0 - rho64(D)) ** 2
    c = min(k + _CANONICAL_SPARE, int(ck[0]))
    while todo.any():
        qsel = np.flatnonzero(todo.any(axis=0))
        d, i = search(qsel, c)
        if tensors:
            d, i = d.cpu().numpy(), i.cpu().numpy()
        for j in range(J):
            w = np.flatnonzero(todo[j, qsel])
            if not w.size:
                continue
            qs, cand = qsel[w], i[j, w]
            valid = cand >= 0
            qq, cc = np.nonzero(valid)
            t = np.full(cand.shape, np.inf)
            t[qq, cc] = _canonical_pairs(Q, R, qs[qq], cand[qq, cc], group)
            o1 = np.argsort(np.where(valid, cand, np.iinfo(np.int64).max), axis=1, kind="stable")
            t, cand = np.take_along_axis(t, o1, 1), np.take_along_axis(cand, o1, 1)
            o2 = np.argsort(t, axis=1, kind="stable")
            t, cand = np.take_along_axis(t, o2, 1), np.take_along_axis(cand, o2, 1)
            if c >= ck[j]:
                ok = np.ones(w.size, dtype=bool)
            else:
                ok = d[j, w, c - 1] * shrink > t[:, k - 1]
            out_d[j, qs[ok]] = t[ok, :k]
            out_i[j, qs[ok]] = cand[ok, :k]
            todo[j, qs[ok]] = False
        c = min(4 * c, int(ck[-1]))
    if tensors:
        import torch

        return (torch.as_tensor(out_d, device=Q.device), torch.as_tensor(out_i, device=Q.device))
    return out_d, out_i


def _canonical_pairs(Q, R, qrows, rrows, group, step=1 << 16):
    """``group.canonical_distance2(Q[qrows], R[rrows])`` in blocks of pairs (float64 host rows)."""
    from ._arrays import is_tensor

    out = np.empty(qrows.size)
    for s in range(0, qrows.size, step):
        a, b = qrows[s : s + step], rrows[s : s + step]
        if is_tensor(Q):
            import torch

            x = Q[torch.as_tensor(a, device=Q.device)].detach().to(torch.float64).cpu().numpy()
            y = R[torch.as_tensor(b, device=R.device)].detach().to(torch.float64).cpu().numpy()
        else:
            x, y = np.asarray(Q[a], dtype=np.float64), np.asarray(R[b], dtype=np.float64)
        out[s : s + step] = group.canonical_distance2(x, y)
    return out
