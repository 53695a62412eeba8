"""The torch backend's kernels: CPU tensors, or data that already lives on a GPU.

Same signature and results as :func:`repgap._kernels_numpy.knn_prefix`. Given
numpy arrays it returns numpy arrays; given torch tensors it computes on
their device and returns tensors there, so that data on a GPU never leaves
it (only the small per-query results are copied by the callers that need
them on the host).

The candidate search multiplies *centred* tiles in the input precision
(float32 by default; ``matmul="tf32"`` or ``"bfloat16"`` trade exactness of
the candidates for speed and are compensated by more spare candidates), keeps
``k + spare`` candidates per query, and recomputes their distances exactly
in float64 (difference, then square), so the ``torch.cdist`` trap of
docs/theory.md, section 6, cannot reach the user. On a GPU, tiles are sized from
a memory budget (``max_memory``, default a quarter of the free device
memory); on the CPU (float32 and float64 with ``matmul`` "float32" or
"tf32", which the CPU computes as float32) a separate path keeps small
cache-sized tiles within the budget (512 MiB by default), see
:func:`_brute_cpu`. torch is imported only when this backend is used.
"""
import contextlib
import math
import threading
import warnings

import numpy as np

from ._arrays import is_tensor  # noqa: F401 - re-exported: the kernels' own test

SPARE = {"float32": 8, "tf32": 32, "bfloat16": 64}
#: the registry's view (:data:`repgap._backends.REGISTRY`): no k-d tree;
#: ``auto`` sends tensors here, and arrays elsewhere
CAPABILITIES = {"kd_tree": False}
TENSORS = True
ALGORITHMS = ("brute", "gemm", "fused", "direct")
UNAVAILABLE = "torch is not installed (pip install repgap[torch])"


def _torch():
    import torch

    return torch


def is_available():
    try:
        _torch()
    except ImportError:
        return False
    return True


def available():
    """The registry's availability check: torch importable."""
    return is_available()


def describe():
    """A line for :func:`repgap.show_config`."""
    import torch

    return f"torch {torch.__version__}" + (", CUDA available" if torch.cuda.is_available() else ", CPU only")


def default_memory(device):
    """The tile memory budget on ``device`` (bytes)."""
    torch = _torch()
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 4)
    return 512 << 20


@contextlib.contextmanager
def _matmul_mode(torch, matmul):
    old = torch.backends.cuda.matmul.allow_tf32
    old_cpu = torch.get_float32_matmul_precision()
    try:
        torch.backends.cuda.matmul.allow_tf32 = matmul == "tf32"
        torch.set_float32_matmul_precision("high" if matmul == "tf32" else "highest")
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
        torch.set_float32_matmul_precision(old_cpu)


def _as_tensor(torch, X, device):
    if is_tensor(X):
        return X if device is None else X.to(device)
    with warnings.catch_warnings():
        # read-only inputs (memory maps): torch warns, but nothing here writes
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(np.ascontiguousarray(X) if not X.flags.c_contiguous and not X.flags.f_contiguous else X)
    return t if device is None else t.to(device)


def knn_prefix(queries, reference, k, order, checkpoints, *, n_threads=1, algorithm="brute",
               tile_queries=None, tile_reference=None, spare=None, leafsize=None, progress=None, options=None):
    """k nearest neighbours of each query within each prefix of the reference.

    The kernel interface of :func:`repgap._kernels_numpy.knn_prefix`.
    Returns ``(sqdist, indices)`` of shape ``(J, m, k)``: numpy arrays for
    numpy inputs, tensors on the inputs' device for tensor inputs.
    ``progress(done_queries)`` is called after each query tile. ``options``:
    ``device`` (where host arrays are searched), ``max_memory`` (bytes of
    device memory for the tiles), ``matmul`` (``"float32"``, ``"tf32"`` or
    ``"bfloat16"``: the precision of the candidate search, with more spare
    candidates for the lower ones).
    """
    from ._validation import check_int

    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of torch backend settings (device, max_memory, matmul) or None, "
                        f"got {options!r} ({type(options).__name__})")
    opts = dict(options or {})
    device = opts.pop("device", None)
    max_memory = check_max_memory(opts.pop("max_memory", None), "options['max_memory']")
    matmul = opts.pop("matmul", "float32")
    if opts:
        raise TypeError(f"unknown options for the torch kernels: {sorted(opts)}; known: device, max_memory, matmul")
    torch = _torch()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm {algorithm!r} is not available on the torch backend (use 'brute')")
    if not isinstance(matmul, str) or matmul not in SPARE:
        raise ValueError(f"options['matmul'] must be one of {', '.join(map(repr, SPARE))}, got {matmul!r}")
    n_threads = check_int(n_threads, "n_threads", low=1)
    tile_queries = check_int(tile_queries, "tile_queries", low=1, allow_none=True)
    tile_reference = check_int(tile_reference, "tile_reference", low=1, allow_none=True)
    spare = check_int(spare, "spare", low=0, allow_none=True)
    tensors = is_tensor(queries)
    dev = _device(torch, device) if device is not None else (queries.device if tensors else torch.device("cpu"))
    Q = _as_tensor(torch, queries, dev)
    R = _as_tensor(torch, reference, dev)
    old_threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(max(1, int(n_threads)))
    try:
        sp = SPARE[matmul] if spare is None else int(spare)
        with torch.no_grad(), _matmul_mode(torch, matmul):
            if dev.type == "cpu" and matmul != "bfloat16" and Q.dtype in (torch.float32, torch.float64):
                out_d, out_i = _brute_cpu(torch, Q, R, k, order, checkpoints, tile_queries, tile_reference, sp,
                                          max_memory, max(1, int(n_threads)), progress)
            else:
                out_d, out_i = _brute(torch, dev, Q, R, k, order, checkpoints, tile_queries, tile_reference,
                                      sp, max_memory, matmul, progress)
    finally:
        torch.set_num_threads(old_threads)
    if tensors:
        return out_d, out_i
    return out_d.cpu().numpy(), out_i.cpu().numpy()


def check_max_memory(max_memory, name="max_memory"):
    """A memory budget in bytes: None, or a finite number >= 1 (an int)."""
    from ._validation import check_real

    if max_memory is None:
        return None
    value = check_real(max_memory, f"{name} (bytes)", low=1)
    return int(value)


def _device(torch, device):
    """``torch.device(device)``, or an error naming ``options['device']``."""
    try:
        return torch.device(device)
    except (TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"options['device'] must be a torch device (e.g. 'cpu', 'cuda', 'cuda:0' or a "
                         f"torch.device), got {device!r}: {exc}") from None


def _tiles(m, n, D, K, itemsize, budget, tq, tr):
    """Query and reference tile sizes within ``budget`` bytes: the score tile
    (tq x tr) and its block maxima, the reference tile, and the gathered
    candidates in float64 (tq x K x D) at the checkpoints."""
    if tr is None:
        tr = int(min(n, 1 << 16))
    if tq is None:
        per_q = 2 * tr * 4 + 2 * K * D * 8 + 64 * K
        tq = int(max(1, min(m, (budget - 3 * tr * (D + 1) * 8) // max(per_q, 1))))
    return max(1, int(tq)), max(1, int(tr))


# columns per block in the two-stage top-k: the block-maximum reduction runs
# far faster over long rows (H200, 1e5 x 1e6 x 512: 2.92 s with 32, 2.62 s
# with 64, 2.46 s with 128; benchmarks/README.md)
_BLOCK = 128


def _matmul_nt(torch, A, B):
    """``A @ B.T``. On the CPU through numpy's BLAS on zero-copy views: the
    BLAS torch's CPU wheels link runs at half numpy's speed on the AMD
    machines measured here (benchmarks/README.md)."""
    if A.device.type == "cpu" and A.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(A.numpy() @ B.numpy().T)
    return A @ B.T


def _topk_largest(torch, w, K):
    """Top-K (values, column indices) of each row of w, unsorted.

    Two stages: the maxima of blocks of 32 columns, the K best blocks, then
    the K best of their 32 K entries. Exact: an entry among the K largest
    lies in a block whose maximum is among the K largest block maxima.
    """
    tq, tr = w.shape
    if tr <= 4 * _BLOCK * K:
        return torch.topk(w, min(K, tr), dim=1, largest=True, sorted=False)
    nb = tr // _BLOCK
    head = w[:, : nb * _BLOCK].reshape(tq, nb, _BLOCK)
    bmax = head.amax(dim=2)
    _, bi = torch.topk(bmax, K, dim=1, largest=True, sorted=False)  # (tq, K) block numbers
    cols = (bi[:, :, None] * _BLOCK + torch.arange(_BLOCK, device=w.device)).reshape(tq, K * _BLOCK)
    vals = torch.gather(w, 1, cols)
    if nb * _BLOCK < tr:  # the ragged end: always a candidate
        vals = torch.cat([vals, w[:, nb * _BLOCK :]], 1)
        tail = torch.arange(nb * _BLOCK, tr, device=w.device).expand(tq, -1)
        cols = torch.cat([cols, tail], 1)
    v, j = torch.topk(vals, K, dim=1, largest=True, sorted=False)
    return v, torch.gather(cols, 1, j)


def _brute(torch, dev, Q, R, k, order, checkpoints, tq, tr, spare, max_memory, matmul, progress):
    """Scores ``w = q.r - |r|^2 / 2`` (larger is nearer) on centred data by one
    matrix product per tile pair (the norm rides along as an extra column),
    K = k + spare best kept per query; at each checkpoint the K candidates
    are recomputed exactly in float64 and the k best kept by (distance, index)."""
    m, D = Q.shape
    J = len(checkpoints)
    K = k + spare
    f64 = R.dtype == torch.float64
    cdt = torch.bfloat16 if matmul == "bfloat16" else (torch.float64 if f64 else torch.float32)
    sdt = torch.float64 if f64 else torch.float32  # score dtype
    budget = int(max_memory) if max_memory else default_memory(dev)
    ck = [int(c) for c in checkpoints]
    tq, tr = _tiles(m, ck[-1], D, K, 4 if not f64 else 8, budget, tq, tr)
    # centre on the reference mean (float64) before the expansion
    center = torch.zeros(D, dtype=torch.float64, device=dev)
    for s in range(0, R.shape[0], 1 << 16):
        center += R[s : s + (1 << 16)].to(torch.float64).sum(0)
    center /= R.shape[0]
    ordt = None if order is None else torch.as_tensor(np.ascontiguousarray(order, dtype=np.int64), device=dev)
    augment = cdt != torch.bfloat16  # bfloat16 cannot carry the norms: a separate subtraction
    # the norm column, padded to a multiple of 16 columns (aligned GEMM)
    Da = -(-(D + 1) // 16) * 16 if augment else D
    Qc = torch.zeros((m, Da), dtype=cdt, device=dev)
    for s in range(0, m, 1 << 16):
        Qc[s : s + (1 << 16), :D] = (Q[s : s + (1 << 16)].to(torch.float64) - center).to(cdt)
    if augment:
        Qc[:, D] = -1
    out_d = torch.empty((J, m, k), dtype=torch.float64, device=dev)
    out_i = torch.empty((J, m, k), dtype=torch.int64, device=dev)
    cw = torch.full((m, K), -math.inf, dtype=sdt, device=dev)  # candidate scores
    ci = torch.full((m, K), -1, dtype=torch.int64, device=dev)  # candidate ranks
    start, j = 0, 0
    while j < J:
        end = min(start + tr, ck[j])
        rows = slice(start, end) if ordt is None else ordt[start:end]
        Rc = R[rows].to(torch.float64) - center
        half_rn = 0.5 * (Rc * Rc).sum(1)
        if augment:
            Ra = torch.zeros((Rc.shape[0], Da), dtype=cdt, device=dev)
            Ra[:, :D] = Rc
            Ra[:, D] = half_rn
        else:
            Ra, hr = Rc.to(cdt), half_rn.to(sdt)
        for q0 in range(0, m, tq):
            q1 = min(m, q0 + tq)
            w = _matmul_nt(torch, Qc[q0:q1], Ra)
            if not augment:
                w = w.to(sdt) - hr[None, :]
            v, c = _topk_largest(torch, w, min(K, end - start))
            del w
            allv = torch.cat([cw[q0:q1], v.to(sdt)], 1)
            alli = torch.cat([ci[q0:q1], c + start], 1)
            bv, sel = torch.topk(allv, K, dim=1, largest=True, sorted=False)
            cw[q0:q1], ci[q0:q1] = bv, torch.gather(alli, 1, sel)
        start = end
        while j < J and end == ck[j]:
            _finalize(torch, Q, R, ordt, ci, k, out_d[j], out_i[j], tq)
            j += 1
        if progress is not None:
            progress(int(m * start / ck[-1]))
    return out_d, out_i


# CPU tiles: reference rows x queries of one score tile (6 MiB in float32,
# in the cache between the product that writes it and the maxima that read
# it; of the shapes measured, 3072 reference rows x 512 queries ran fastest
# at D = 64, 128 and 256 by a few percent, benchmarks/README.md)
_CPU_TQ = 512
_CPU_TR = 3072
# pending entries per query (on average) that trigger a merge into the
# candidates
_MERGE_AT = 4
# rows of the score tile per sub-block (block maxima from sub-block maxima)
_SUB = 16
_NSUB = _BLOCK // _SUB


def _brute_cpu(torch, Q, R, k, order, checkpoints, tq, tr, spare, max_memory, n_threads, progress):
    """The CPU search: the same K candidates per query as :func:`_brute`
    (the K largest float32 scores, ties aside), then the same exact float64
    recomputation (:func:`_finalize_cpu`, the numpy backend's own).

    Scores ``w = r.q - |r|^2 / 2`` by numpy's BLAS (on zero-copy views) into
    a preallocated score tile of a few MiB (``_CPU_TR`` reference rows by
    ``_CPU_TQ`` queries; the norm rides along as one extra column, no
    padding); maxima of sub-blocks of ``_SUB`` and blocks of ``_BLOCK``
    reference rows (torch's vectorised ``amax``); only the blocks, then
    sub-blocks, whose maximum beats a query's current K-th best score are
    read again, and their entries above it are merged into the K candidates
    (:func:`_scan_tile`), then recomputed as the numpy backend does
    (:func:`_finalize_cpu`). Query tiles run on ``n_threads`` Python threads,
    each with one-threaded BLAS and torch calls (both release the GIL), so
    that each core works on its own tile in its own cache; every query tile
    sees the reference tiles in the same order, so the candidates depend on
    neither the thread count nor the query tiling.

    Centring: queries and reference are shifted by the reference mean
    (summed in float64) rounded to the input precision, both alike; the
    norms are summed in float64 from the shifted rows.
    """
    m, D = Q.shape
    J = len(checkpoints)
    K = k + spare
    f64 = R.dtype == torch.float64
    ndt = np.float64 if f64 else np.float32
    isz = 8 if f64 else 4
    Qn, Rn = Q.detach().numpy(), R.detach().numpy()
    ck = [int(c) for c in checkpoints]
    budget = int(max_memory) if max_memory else default_memory(torch.device("cpu"))
    Da = D + 1
    if tr is None:
        # at least 2 K blocks per tile: the K-th largest block maximum exists
        tr = max(_CPU_TR, 2 * K * _BLOCK)
    tr = max(1, min(int(tr), ck[-1]))
    if tq is None:
        # tiles within a quarter of the budget for the workers' score tiles
        tq = max(1, min(_CPU_TQ, budget // 4 // max(1, n_threads * tr * isz)))
        # as many query tiles as a multiple of the threads (balanced
        # workers), of near-equal multiples of 16 queries (the block maxima
        # reduce rows of 16 queries and more); queries padded with zero rows
        mp = -(-m // 16) * 16
        nt = -(-(-(-m // tq)) // n_threads) * n_threads
        cuts = (np.arange(nt + 1) * (mp // 16) // nt) * 16
        tiles = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        tq = max(b - a for a, b in tiles)
    else:
        tq = max(1, int(tq))
        mp = m
        tiles = [(q0, min(m, q0 + tq)) for q0 in range(0, m, tq)]
    # reference rows prepared at once (centred, with the norm column)
    rc = max(tr, (budget // 2 // (Da * isz)) // tr * tr)
    order_np = None if order is None else np.ascontiguousarray(order, dtype=np.int64)
    out_d = torch.empty((J, m, k), dtype=torch.float64)
    out_i = torch.empty((J, m, k), dtype=torch.int64)
    cw = np.full((mp, K), -np.inf, dtype=ndt)  # candidate scores
    ci = np.full((mp, K), -1, dtype=np.int64)  # candidate ranks
    thr = np.full(mp, -np.inf, dtype=ndt)  # K-th best score per query
    pool = None
    old_threads = torch.get_num_threads()
    limit = _blas_limit(n_threads if n_threads == 1 or len(tiles) == 1 else 1)
    limit.__enter__()
    try:
        if n_threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(n_threads)
            torch.set_num_threads(1)

        def pmap(f, items):
            return list(pool.map(f, items) if pool is not None else map(f, items))

        # centre on the reference mean (float64: fixed chunks, fixed order)
        step = 1 << 15
        center = sum(pmap(lambda s: Rn[s : s + step].sum(0, dtype=np.float64), range(0, Rn.shape[0], step)))
        center = center / Rn.shape[0]
        cn = center.astype(ndt)  # queries and reference shifted alike
        Qc = np.zeros((mp, Da), dtype=ndt)
        Qc[:, D] = -1

        def prep_q(s):
            np.subtract(Qn[s : s + step], cn, out=Qc[s : min(m, s + step), :D])

        pmap(prep_q, range(0, m, step))
        bufs = {}

        def scan(t, Ra, start):
            q0, q1 = t
            buf = bufs.get(threading.get_ident())
            if buf is None:
                buf = bufs[threading.get_ident()] = np.empty(tq * tr, dtype=ndt)
            _scan_tile(torch, Qc[q0:q1], Ra, start, buf, cw[q0:q1], ci[q0:q1], thr[q0:q1], K, tr)
            return q1 - q0

        start, j = 0, 0
        while j < J:
            end = min(start + rc, ck[j])
            Ra = np.empty((end - start, Da), dtype=ndt)

            def prep_r(s, Ra=Ra, start=start, end=end):
                e = min(end, s + 8192)
                x = Ra[s - start : e - start, :D]
                np.subtract(Rn[s:e] if order_np is None else Rn[order_np[s:e]], cn, out=x)
                y = x.astype(np.float64)
                Ra[s - start : e - start, D] = 0.5 * np.einsum("ij,ij->i", y, y)

            pmap(prep_r, range(start, end, 8192))
            done = 0
            it = (pool.map(lambda t: scan(t, Ra, start), tiles) if pool is not None
                  else (scan(t, Ra, start) for t in tiles))
            for nq in it:
                done += nq
                if progress is not None:
                    progress(int(m * (start + (end - start) * done / mp) / ck[-1]))
            del Ra
            start = end
            while j < J and end == ck[j]:
                od, oi = out_d[j].numpy(), out_i[j].numpy()
                pmap(lambda t: _finalize_cpu(Qn, Rn, order_np, ci, t[0], min(t[1], m), k, od, oi), tiles)
                j += 1
    finally:
        if pool is not None:
            # on Ctrl-C (raised in this thread between tiles) the queued tiles
            # are dropped; only the ones running finish
            pool.shutdown(wait=True, cancel_futures=True)
        limit.__exit__(None, None, None)
        torch.set_num_threads(old_threads)
    return out_d, out_i


def _finalize_cpu(Qn, Rn, order, ci, q0, q1, k, out_d, out_i):
    """:func:`_finalize` for the queries ``q0:q1`` on the host, by the numpy
    backend's own recomputation (float64 differences, then squares; ties by
    row), so that the distances equal the numpy backend's bit for bit."""
    if q0 >= q1:
        return
    from ._kernels_numpy import exact_sqdist, sort_by_distance_then_index

    c = ci[q0:q1]
    valid = c >= 0
    rows = np.maximum(c, 0) if order is None else order[np.maximum(c, 0)]
    ex = exact_sqdist(Qn, Rn, np.arange(q0, q1), rows)
    ex[~valid] = np.inf
    d, i = sort_by_distance_then_index(ex, np.where(valid, rows, -1))
    out_d[q0:q1] = d[:, :k]
    out_i[q0:q1] = i[:, :k]


@contextlib.contextmanager
def _blas_limit(n):
    """Hold the BLAS libraries (numpy's) to ``n`` threads."""
    from ._threads import _get_controller

    try:
        ctl = _get_controller()
    except ImportError:  # threadpoolctl missing: nothing to limit with
        yield
        return
    with ctl.limit(limits=n, user_api="blas"):
        yield


def _scan_tile(torch, Qt, Ra, start, buf, cw, ci, thr, K, tr):
    """One query tile against the prepared reference rows ``Ra`` (ranks from
    ``start``): the K best scores per query kept in ``cw``/``ci``, and their
    minimum in ``thr`` (numpy arrays, updated in place).

    The score tile is reference-major (``Ra_tile @ Qt.T``, one column per
    query: the faster product shape here), and its block maxima are maxima
    of ``_BLOCK`` contiguous rows (torch's vectorised ``amax``). Only the
    blocks whose maximum beats a query's ``thr`` are read again (numpy
    indexing: these arrays are small, and numpy's per-call cost is lower);
    the entries that beat it are collected over several reference tiles and
    merged once there are about as many as queries (``thr`` only rises at a
    merge: a stale one lets a few more entries through, never fewer).
    """
    rows = Qt.shape[0]
    n = Ra.shape[0]
    QT = Qt.T
    pend, npend = [], 0
    for r0 in range(0, n, tr):
        r1 = min(n, r0 + tr)
        nr = r1 - r0
        off = start + r0
        w = buf[: nr * rows].reshape(nr, rows)
        np.matmul(Ra[r0:r1], QT, out=w)
        nb = nr // _BLOCK
        if nb < K:  # a short tile: the top K of each column
            kk = min(K, nr)
            wt = np.ascontiguousarray(w.T)
            c = np.argpartition(wt, nr - kk, axis=1)[:, nr - kk :]
            pend.append((np.repeat(np.arange(rows), kk), np.take_along_axis(wt, c, 1).reshape(-1),
                         c.reshape(-1) + off))
            _merge(pend, cw, ci, thr, K)
            pend, npend = [], 0
            continue
        ws = w[: nb * _BLOCK].reshape(nb * _NSUB, _SUB, rows)
        smax = torch.from_numpy(ws).amax(1)  # (nb * _NSUB, rows): sub-block maxima
        bmax = smax.view(nb, _NSUB, rows).amax(1).numpy()  # (nb, rows): block maxima
        smax = smax.numpy().reshape(nb, _NSUB, rows)
        t = thr
        pr, pb = np.nonzero((bmax > t).T)  # by query
        if pb.size > rows * K:
            # many hits (the first tile: thr = -inf): the K-th largest block
            # maximum bounds the K-th largest entry from below, so that at
            # most K blocks per query (ties aside) are read again
            kth = np.partition(bmax, nb - K, axis=0)[nb - K]
            t = np.maximum(thr, np.nextafter(kth, -np.inf))
            pr, pb = np.nonzero((bmax > t).T)
        if pb.size:
            si, sj = np.nonzero(smax[pb, :, pr] > t[pr][:, None])  # the hit blocks' sub-blocks
            sb, sr = pb[si] * _NSUB + sj, pr[si]
            vals = ws[sb, :, sr]  # (sub-block hits, _SUB)
            ei, ej = np.nonzero(vals > t[sr][:, None])
            pend.append((sr[ei], vals[ei, ej], sb[ei] * _SUB + ej + off))
            npend += ei.size
        if nb * _BLOCK < nr:  # the ragged end
            er, ej = np.nonzero((w[nb * _BLOCK :] > t).T)
            if er.size:
                pend.append((er, w[nb * _BLOCK + ej, er], nb * _BLOCK + ej + off))
                npend += er.size
        # merge after a bounded tile too (then every query has a finite thr)
        if npend >= _MERGE_AT * rows or (pend and (r1 == n or t is not thr)):
            _merge(pend, cw, ci, thr, K)
            pend, npend = [], 0


def _merge(pend, cw, ci, thr, K):
    """Merge new entries (a list of (rows, scores, ranks), each sorted by
    row) into the K best per row: each affected row's K candidates and its
    new entries side by side in one padded row, and the K largest of that."""
    if len(pend) > 1:
        er, ev, ec = (np.concatenate(x) for x in zip(*pend))
        o = np.argsort(er, kind="stable")
        er, ev, ec = er[o], ev[o], ec[o]
    else:
        er, ev, ec = pend[0]
    first = np.flatnonzero(np.r_[True, er[1:] != er[:-1]])
    aff = er[first]
    cnt = np.diff(np.r_[first, er.size])
    A, C = aff.size, int(cnt.max())
    inv = np.repeat(np.arange(A), cnt)
    pos = np.arange(K, K + er.size) - np.repeat(first, cnt)
    V = np.full((A, K + C), -np.inf, dtype=cw.dtype)
    I = np.full((A, K + C), -1, dtype=np.int64)
    V[:, :K] = cw[aff]
    I[:, :K] = ci[aff]
    V[inv, pos] = ev
    I[inv, pos] = ec
    sel = np.argpartition(V, C, axis=1)[:, C:]
    bv = np.take_along_axis(V, sel, 1)
    cw[aff] = bv
    ci[aff] = np.take_along_axis(I, sel, 1)
    thr[aff] = bv.min(1)


def lanes_sum(sq):
    """The last axis of a float64 tensor summed in the four interleaved lanes
    of :func:`repgap._search.exact.sqdist_rows` (the compiled kernels'
    order): tensors get the same bits as arrays."""
    from ._search.exact import _lanes

    return _lanes(sq)


def _finalize(torch, Q, R, ordt, ci, k, out_d, out_i, tq):
    """Exact float64 distances of the candidates, (distance, index) order, k best."""
    D = Q.shape[1]
    inf = float("inf")
    for q0 in range(0, Q.shape[0], tq):
        c = ci[q0 : q0 + tq]
        valid = c >= 0
        ranks = c.clamp_min(0)
        rows = ranks if ordt is None else ordt[ranks]
        diff = Q[q0 : q0 + tq].to(torch.float64)[:, None, :] - R[rows.reshape(-1)].to(torch.float64).reshape(
            rows.shape + (D,))
        diff *= diff
        ex = torch.where(valid, lanes_sum(diff), torch.full(rows.shape, inf, dtype=torch.float64,
                                                                  device=rows.device))
        rows = torch.where(valid, rows, torch.full_like(rows, -1))
        o1 = torch.argsort(rows, dim=1, stable=True)
        ex1, r1 = torch.gather(ex, 1, o1), torch.gather(rows, 1, o1)
        o2 = torch.argsort(ex1, dim=1, stable=True)
        out_d[q0 : q0 + tq] = torch.gather(ex1, 1, o2)[:, :k]
        out_i[q0 : q0 + tq] = torch.gather(r1, 1, o2)[:, :k]


def pair_counts(X, Y, edges, *, n_threads=1, tile=None, progress=None, device=None):
    """Same signature and result as :func:`repgap._kernels_numpy.pair_counts`:
    float64 expansion on centred tiles, exact recomputation of the pairs
    within the error bound of an edge."""
    torch = _torch()
    from ._pairs_table import centred_extent, tile_pairs

    dev = torch.device(device) if device is not None else torch.device("cpu")
    same = Y is None
    Y = X if same else Y
    D = X.shape[1]
    edges2 = torch.as_tensor(np.asarray(edges, dtype=np.float64) ** 2, device=dev)
    nb = edges2.numel() - 1
    center_np, _ = centred_extent(X, None if same else Y)
    center = torch.from_numpy(center_np).to(dev)
    tol_coef = 2.0 * (D + 8) * 2.0**-53
    tile = int(max(16, tile or 2048))
    counts = torch.zeros(nb + 2, dtype=torch.int64, device=dev)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n_threads)))
    done = 0
    try:
        with torch.no_grad():
            for a, b in zip(*tile_pairs(X.shape[0], Y.shape[0], tile, same)):
                i0, j0 = int(a) * tile, int(b) * tile
                Xa = torch.from_numpy(np.asarray(X[i0 : i0 + tile], dtype=np.float64)).to(dev)
                Yb = torch.from_numpy(np.asarray(Y[j0 : j0 + tile], dtype=np.float64)).to(dev)
                A, B = Xa - center, Yb - center
                an, bn = (A * A).sum(1), (B * B).sum(1)
                d2 = (an[:, None] + bn[None, :] - 2.0 * (A @ B.T)).clamp_min(0.0)
                tol = tol_coef * (an.sqrt()[:, None] + bn.sqrt()[None, :]) ** 2
                if same and a == b:
                    iu = torch.triu_indices(A.shape[0], A.shape[0], 1, device=dev)
                    ii, jj = iu[0], iu[1]
                    d2, tol = d2[ii, jj], tol[ii, jj]
                else:
                    ii = torch.arange(A.shape[0], device=dev).repeat_interleave(B.shape[0])
                    jj = torch.arange(B.shape[0], device=dev).repeat(A.shape[0])
                    d2, tol = d2.reshape(-1), tol.reshape(-1)
                bins = torch.bucketize(d2, edges2, right=True)
                lo = torch.bucketize(d2 - tol, edges2, right=True)
                hi = torch.bucketize(d2 + tol, edges2, right=True)
                near = torch.nonzero(lo != hi).reshape(-1)
                if near.numel():
                    diff = Xa[ii[near]] - Yb[jj[near]]
                    bins[near] = torch.bucketize((diff * diff).sum(1), edges2, right=True)
                counts += torch.bincount(bins, minlength=nb + 2)
                done += d2.numel()
                if progress is not None:
                    progress(done)
    finally:
        torch.set_num_threads(old_threads)
    return counts[1 : nb + 1].cpu().numpy()


def check_tensor(X, name):
    """Validate a 2-D floating tensor without copying it off its device."""
    torch = _torch()
    if X.is_complex():
        raise TypeError(f"{name} has dtype {X.dtype}; expected real numbers (float32, float64 or integers)")
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor of shape (n_samples, n_features), got shape {tuple(X.shape)}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(X.shape)})")
    if not X.is_floating_point():
        X = X.to(torch.float64)
    elif X.dtype in (torch.float16, torch.bfloat16):
        X = X.to(torch.float32)
    step = max(1, (1 << 24) // X.shape[1])
    bad = 0
    first = None
    for s in range(0, X.shape[0], step):
        ok = torch.isfinite(X[s : s + step]).all(dim=1)
        nb = int((~ok).sum())
        if nb:
            bad += nb
            if first is None:
                first = s + int(torch.nonzero(~ok)[0])
    if bad:
        raise ValueError(f"{name} contains NaN or infinite values in {bad} row(s) of {X.shape[0]}; "
                         f"the first is row {first}. Remove or impute them first.")
    return X


def check_tensor_pair(Q, R, qname="queries", rname="reference"):
    from ._validation import check_array

    torch = _torch()
    if not is_tensor(R):
        R = torch.as_tensor(check_array(R, rname), device=Q.device)
    if not is_tensor(Q):
        Q = torch.as_tensor(check_array(Q, qname), device=R.device)
    if Q.device != R.device:
        raise ValueError(f"{qname} is on {Q.device} but {rname} is on {R.device}; put them on one device")
    Q, R = check_tensor(Q, qname), check_tensor(R, rname)
    if Q.shape[1] != R.shape[1]:
        raise ValueError(f"{qname} has {Q.shape[1]} features but {rname} has {R.shape[1]}; they must match")
    if Q.dtype != R.dtype:
        Q, R = Q.to(torch.float64), R.to(torch.float64)
    return Q, R
