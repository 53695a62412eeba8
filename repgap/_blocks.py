"""Exact k-NN over blocks of the reference: the merge, and out-of-core streaming.

A reference set too large for memory (a memory-mapped or on-disk ``.npy``)
or spread over a cluster (a ``dask.array``, :mod:`repgap._dask`) is searched
one row block at a time. Every (query block, reference block) pair runs the
same compiled kernel as the in-memory path, with the algorithm decided once
for the whole reference (as the in-memory dispatcher decides it), and the
partial k-smallest lists are merged by (distance, global index). Since the
kernels' final distances are float64 recomputations from the original rows
with a summation order that depends only on the pair (docs/theory.md, section 6),
the merged result equals the in-memory one bit for bit: each block finds at
least the candidates the whole search would, and ties are broken by the
global index exactly as in memory.

Prefixes of a random order (``gap_curve``): a block holds the rows of global
rank ``rank[row]``; the prefix ``n_j`` restricted to the block is the block's
rows of rank < n_j, which the kernel gets as a local order and local
checkpoints. The k smallest of the prefix are among the union of each
block's k smallest within it.

Out-of-core: ``.npy`` files are read block by block with plain file reads
into two reused buffers (the next block is read while the kernel works on
the current one), so nothing of the file is mapped and the resident memory is
bounded by the block size; ``np.memmap`` inputs are sliced, and the pages of a
finished block are released with ``madvise(MADV_DONTNEED)`` (read-only maps).
"""
import mmap
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._arrays import is_dask_array, is_out_of_core  # noqa: F401 - used here and by _dask
from ._backends import choose_algorithm, low_rank_rotation, resolve_backend
from ._search.plan import rank_sample_rows, rotates
from ._progress import Progress
from ._threads import resolve_n_jobs
from ._validation import _complex_error, check_array, check_checkpoints, check_k, check_order

#: index of padding entries (blocks with fewer than k rows in a prefix): sorts last
PAD = np.iinfo(np.int64).max
#: default bytes of reference rows per block (out-of-core streaming)
DEFAULT_BLOCK_BYTES = 64 << 20

# ----------------------------------------------------------------------------- routing


def route(queries, reference, block_size=None, max_memory=None):
    """Which block-wise path serves these inputs: "dask", "stream" or None (in memory)."""
    if is_dask_array(queries) or is_dask_array(reference):
        return "dask"
    if block_size is not None or max_memory is not None or is_out_of_core(reference):
        return "stream"
    return None


# ----------------------------------------------------------------------------- dtype rules


def check_data(X, name="X"):
    """:func:`repgap._validation.check_array`, except that a dask array is
    passed through (checked block by block where it is used)."""
    if is_dask_array(X):
        check_shape(X.shape, name)
        data_dtype(X.dtype, name)
        return X
    return check_array(X, name)


def data_dtype(dtype, name):
    """The dtype :func:`repgap._validation.check_array` would give an array of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise _complex_error(name, dtype)
    if dtype == object or dtype.kind in "USVMmO":
        raise TypeError(f"{name} has dtype {dtype}; expected real numbers (float32, float64 or integers)")
    if dtype.kind in "iub":
        return np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype not in (np.float32, np.float64):
        return np.dtype(np.float64)
    return dtype


def common_dtype(dq, dr):
    return dq if dq == dr else np.dtype(np.float64)


def check_shape(shape, name):
    if len(shape) != 2:
        hint = " (use X.reshape(-1, 1) for one feature)" if len(shape) == 1 else ""
        raise ValueError(f"{name} must be a 2-D array of shape (n_samples, n_features), got {len(shape)}-D "
                         f"with shape {tuple(shape)}{hint}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {tuple(shape)})")
    if shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required.")


def bad_rows(block, offset):
    """``None`` if every row is finite, else ``(count, first global row, kind)``."""
    ok = np.isfinite(block).all(axis=1)
    if ok.all():
        return None
    bad = np.flatnonzero(~ok)
    kind = "NaN" if np.isnan(block[bad[0]]).any() else "infinite"
    return int(bad.size), int(offset + bad[0]), kind


def raise_bad(name, n, reports):
    """The in-memory error message (:func:`repgap._validation.check_finite`) from per-block reports."""
    reports = [r for r in reports if r is not None]
    if not reports:
        return
    count = sum(r[0] for r in reports)
    first = min(reports, key=lambda r: r[1])
    raise ValueError(
        f"{name} contains NaN or infinite values in {count} row(s) of {n}; "
        f"the first is row {first[1]} ({first[2]}). Remove or impute them first."
    )


# ----------------------------------------------------------------------------- the plan


class Plan:
    """What every block runs: decided once for the whole reference, as the
    in-memory dispatcher (:func:`repgap._search.plan.knn_prefix`) decides it, so
    that each pair's distance is computed by the same code as in memory."""

    def __init__(self, backend, algorithm, bases, group, n_threads, dtype, k):
        self.backend = backend
        self.algorithm = algorithm
        self.bases = bases  # per pass: the rotated k-d tree's basis or None
        self.group = group
        self.n_threads = n_threads
        self.dtype = dtype
        self.k = k


def make_plan(*, backend, algorithm, group, dtype, D, n, k, n_used, orders, take_rows, n_threads):
    """``take_rows(rows) -> ndarray`` reads reference rows (only for the low-rank test).

    ``orders``: one entry per pass (None for plain k-NN, else the order of the pass).
    """
    from .groups import Identity

    name = resolve_backend(backend)
    if group is not None and not isinstance(group, Identity):
        if algorithm not in ("auto", "brute"):
            raise ValueError(f"algorithm={algorithm!r} cannot be combined with group=; the k-NN modulo a group "
                             "chooses its own kernels (use algorithm='auto')")
        return Plan(name, algorithm, [None] * len(orders), group, n_threads, dtype, k)
    algo = choose_algorithm(algorithm, name, dtype, D, n_used, k)
    bases = [None] * len(orders)
    if rotates(algorithm, algo, name, D, n_used, k):
        # the in-memory plan's decision and sample (one read of the rows every pass needs)
        samples = [rank_sample_rows(n, od, n_used) for od in orders]
        need = np.unique(np.concatenate(samples))
        got = np.asarray(take_rows(need))
        for p, rows in enumerate(samples):
            S = got[np.searchsorted(need, rows)]
            S = np.asarray(S, dtype=dtype)
            bases[p] = low_rank_rotation(S)
    return Plan(name, algo, bases, None, n_threads, dtype, k)


# ----------------------------------------------------------------------------- one block


def _kernel(Q, Rb, kb, order, ck, plan, p):
    from ._search.plan import knn_prefix

    return knn_prefix(Q, Rb, kb, order, ck, backend=plan.backend, n_threads=plan.n_threads,
                      algorithm="auto" if plan.bases[p] is not None else plan.algorithm, progress=False,
                      group=plan.group, basis=plan.bases[p])


def block_knn(Q, Rb, offset, plan, ranks=None, checkpoints=None):
    """The k smallest of one reference block, with global indices.

    ``ranks``: None (plain k-NN, one pass, one checkpoint: the whole block) or
    an int64 array (passes, n_block) of the global rank of each block row in
    each pass (ranks >= checkpoints[-1] are outside every prefix).

    Returns ``(sq, idx)`` of shape (passes, J, m, k), padded with (inf, PAD)
    where a prefix holds fewer than k rows of the block.
    """
    Q = np.asarray(Q, dtype=plan.dtype)
    Rb = np.asarray(Rb, dtype=plan.dtype)
    m, nb, k = Q.shape[0], Rb.shape[0], plan.k
    if ranks is None:
        kb = min(k, nb)
        sq, idx = _kernel(Q, Rb, kb, None, np.array([nb], dtype=np.int64), plan, 0)
        sq, idx = _host(sq), _host(idx)
        out_d = np.full((1, 1, m, k), np.inf)
        out_i = np.full((1, 1, m, k), PAD, dtype=np.int64)
        out_d[0, :, :, :kb] = sq
        out_i[0, :, :, :kb] = idx + offset
        return out_d, out_i
    ranks = np.asarray(ranks, dtype=np.int64).reshape(-1, nb)
    ck = np.asarray(checkpoints, dtype=np.int64)
    P, J = ranks.shape[0], ck.size
    out_d = np.full((P, J, m, k), np.inf)
    out_i = np.full((P, J, m, k), PAD, dtype=np.int64)
    for p in range(P):
        rk = ranks[p]
        inside = np.flatnonzero(rk < ck[-1])
        local = inside[np.argsort(rk[inside], kind="stable")]  # block rows by rank
        counts = np.searchsorted(rk[local], ck, side="left")  # block rows in each prefix
        big = np.flatnonzero(counts >= k)
        if big.size:
            u, inv = np.unique(counts[big], return_inverse=True)
            sq, idx = _kernel(Q, Rb, k, local, u, plan, p)
            sq, idx = _host(sq), _host(idx)
            out_d[p, big] = sq[inv]
            out_i[p, big] = idx[inv] + offset
        for c in np.unique(counts[(counts > 0) & (counts < k)]):
            js = np.flatnonzero(counts == c)
            sq, idx = _kernel(Q, Rb, int(c), local, np.array([c], dtype=np.int64), plan, p)
            sq, idx = _host(sq), _host(idx)
            out_d[p, js, :, :c] = sq[0]
            out_i[p, js, :, :c] = idx[0] + offset
    return out_d, out_i


def _host(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") and hasattr(a, "cpu") else a


def merge(k, *parts):
    """The k smallest of the union of partial lists, sorted by (distance, index)."""
    parts = [p for p in parts if p is not None]
    if len(parts) == 1:
        return parts[0]
    d = np.concatenate([p[0] for p in parts], axis=-1)
    i = np.concatenate([p[1] for p in parts], axis=-1)
    o = np.lexsort((i, d), axis=-1)[..., :k]
    return np.take_along_axis(d, o, -1), np.take_along_axis(i, o, -1)


# ----------------------------------------------------------------------------- sources (out of core)


class ArraySource:
    """Row blocks of an in-memory array (``block_size=`` on a numpy array)."""

    def __init__(self, X, name):
        self.X = X
        self.shape = X.shape
        self.dtype = X.dtype
        self.name = name

    def take(self, rows):
        return self.X[rows]

    def blocks(self, rows_per_block):
        n = self.shape[0]
        for s in range(0, n, rows_per_block):
            yield s, self.X[s : s + rows_per_block]

    def release(self, block):
        pass

    def close(self):
        pass


class MemmapSource(ArraySource):
    """Row blocks of a memory map; a finished block's pages are released
    (``MADV_DONTNEED``) so that the resident memory stays bounded."""

    def __init__(self, X, name):
        super().__init__(X, name)
        self._mm = getattr(X, "_mmap", None)
        if self._mm is None and isinstance(getattr(X, "base", None), mmap.mmap):
            self._mm = X.base
        self._base = None
        # only read-only shared maps: dropping the pages of a copy-on-write
        # map would lose its changes
        mode = getattr(X, "mode", None)
        if (self._mm is not None and hasattr(self._mm, "madvise") and hasattr(mmap, "MADV_DONTNEED")
                and mode in ("r", "readonly")):
            try:
                self._base = np.frombuffer(self._mm, dtype=np.uint8).ctypes.data
            except (TypeError, ValueError):
                self._base = None

    def take(self, rows):
        # sparse rows fault in their neighbours too (fault-around): copy them
        # a span of at most ~16 MiB at a time and release that span
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.shape[1]), dtype=self.X.dtype)
        span = max(1, (16 << 20) // max(1, self.X.strides[0] if self.X.flags.c_contiguous else 1 << 30))
        t = 0
        while t < rows.size:
            u = t + int(np.searchsorted(rows[t:], rows[t] + span, side="left"))
            u = max(u, t + 1)
            out[t:u] = self.X[rows[t:u]]
            lo, hi = int(rows[t:u].min()), int(rows[t:u].max()) + 1
            self.release(self.X[lo:hi] if self.X.flags.c_contiguous else None)
            t = u
        return out

    def release(self, block):
        if self._base is None:
            return
        size = len(self._mm)
        if block is not None and block.flags.c_contiguous:
            start = block.ctypes.data - self._base
            end = start + block.nbytes
        else:
            start, end = 0, size
        page = mmap.PAGESIZE
        start = max(0, start // page * page)
        end = min(size, end)
        if end > start:
            try:
                self._mm.madvise(mmap.MADV_DONTNEED, start, end - start)
            except (OSError, ValueError):
                pass


def _read_npy_header(f):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        shape, fortran, dtype = np.lib.format._read_array_header(f, version)
    return shape, fortran, dtype


class NpyFileSource:
    """Row blocks of a C-ordered ``.npy`` file, read with plain file reads
    into two reused buffers (the next block is read in the background while
    the kernel works on the current one). Nothing is memory mapped."""

    def __init__(self, path, name):
        self.path = os.fspath(path)
        self.name = name
        try:
            with open(self.path, "rb") as f:
                shape, fortran, dtype = _read_npy_header(f)
                self.offset = f.tell()
        except FileNotFoundError:
            raise FileNotFoundError(f"{name}: no such file {self.path!r}") from None
        except ValueError as exc:
            raise ValueError(f"{name}: {self.path!r} is not a .npy file ({exc})") from None
        if dtype.hasobject:
            raise TypeError(f"{name}: {self.path!r} holds Python objects; expected real numbers")
        self.fortran = fortran
        self.shape = tuple(shape)
        self.dtype = dtype
        self._pool = None

    def take(self, rows):
        rows = np.asarray(rows, dtype=np.int64)
        if self.fortran:
            X = np.load(self.path, mmap_mode="r")
            return np.array(X[rows])
        D = self.shape[1]
        rb = D * self.dtype.itemsize
        out = np.empty((rows.size, D), dtype=self.dtype)
        with open(self.path, "rb", buffering=0) as f:
            for t, r in enumerate(rows):
                f.seek(self.offset + int(r) * rb)
                _readinto(f, out[t])
        return out

    def blocks(self, rows_per_block):
        n, D = self.shape
        if self.fortran:
            # columns are contiguous on disk: fall back to a released memory map
            src = MemmapSource(np.load(self.path, mmap_mode="r"), self.name)
            self._fallback = src
            yield from src.blocks(rows_per_block)
            return
        rb = D * self.dtype.itemsize
        bufs = [np.empty((min(rows_per_block, n), D), dtype=self.dtype) for _ in range(2 if n > rows_per_block else 1)]
        starts = list(range(0, n, rows_per_block))
        f = open(self.path, "rb", buffering=0)
        pool = ThreadPoolExecutor(1)

        def read(t):
            s = starts[t]
            cnt = min(rows_per_block, n - s)
            buf = bufs[t % len(bufs)][:cnt]
            f.seek(self.offset + s * rb)
            _readinto(f, buf)
            return buf

        try:
            pending = pool.submit(read, 0)
            for t, s in enumerate(starts):
                block = pending.result()
                if t + 1 < len(starts):
                    pending = pool.submit(read, t + 1)
                yield s, block
        finally:
            pool.shutdown(wait=True)
            f.close()

    def release(self, block):
        fb = getattr(self, "_fallback", None)
        if fb is not None:
            fb.release(block)

    def close(self):
        pass


def _readinto(f, arr):
    mv = memoryview(arr).cast("B")
    got = 0
    while got < mv.nbytes:
        r = f.readinto(mv[got:])
        if not r:
            raise ValueError(f"unexpected end of file while reading {f.name!r}")
        got += r


def open_source(train, name):
    if isinstance(train, (str, os.PathLike)):
        return NpyFileSource(train, name)
    if is_out_of_core(train):
        return MemmapSource(train, name)
    X = np.asarray(train) if not (hasattr(train, "shape") and hasattr(train, "dtype")) else train
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    return ArraySource(np.asarray(X), name)


def prefix_ranks(orders, checkpoints, n, k, name="checkpoints"):
    """For prefixes of random orders: the checked checkpoints, the largest one
    (the rows used), each row's rank in each order (``n_used`` for rows past
    it) and the orders for the plan; for a plain search ``(None, n, None, [None])``."""
    if orders is None:
        return None, n, None, [None]
    ck = check_checkpoints(checkpoints, n, k, name, "the reference set")
    n_used = int(ck[-1])
    orders = [check_order(o, n) for o in orders]
    for o in orders:
        if o.size < n_used:
            raise ValueError(f"order has {o.size} entries but the largest checkpoint is {n_used}")
    ranks_all = np.full((len(orders), n), n_used, dtype=np.int64)
    for p, o in enumerate(orders):
        ranks_all[p, o[:n_used]] = np.arange(n_used)
    return ck, n_used, ranks_all, orders


def check_block_options(block_size, max_memory):
    """``(block_size, max_memory)`` checked: None, or a positive integer
    number of rows; None, or a finite number of bytes >= 1 (as an int)."""
    from ._kernels_torch import check_max_memory
    from ._validation import check_int

    block_size = check_int(block_size, "block_size (rows per block)", low=1, allow_none=True)
    return block_size, check_max_memory(max_memory, "max_memory")


def block_rows(shape, dtype, block_size, max_memory):
    """Rows per block from ``block_size`` (rows) or ``max_memory`` (bytes of
    reference per block, about a third of the streaming memory: two read
    buffers and the kernel's packed copy), else about 64 MiB of rows."""
    rb = max(1, shape[1] * np.dtype(dtype).itemsize)
    block_size, max_memory = check_block_options(block_size, max_memory)
    if block_size is not None:
        return block_size
    if max_memory is not None:
        return max(1, max_memory // (3 * rb))
    return max(1, DEFAULT_BLOCK_BYTES // rb)


# ----------------------------------------------------------------------------- streaming driver


def stream_prefix(queries, train, k, checkpoints=None, orders=None, *, group=None, backend=None, n_jobs=None,
                  algorithm="auto", progress=None, block_size=None, max_memory=None, qname="queries",
                  rname="reference", desc="k-NN", k_what="the reference set"):
    """Out-of-core k-NN: ``(sq, idx, n)`` with sq, idx of shape (passes, J, m, k).

    ``orders``: None for plain k-NN (one pass, checkpoint n), else a list of
    orders, one per pass, with ``checkpoints`` the prefix sizes.
    """
    from .groups import check_group

    src = open_source(train, rname)
    check_shape(src.shape, rname)
    n, D = src.shape
    dt_r = data_dtype(src.dtype, rname)
    Q = check_array(queries, qname)
    if Q.shape[1] != D:
        raise ValueError(f"{qname} has {Q.shape[1]} features but {rname} has {D}; they must match")
    dtype = common_dtype(Q.dtype, dt_r)
    Q = Q.astype(dtype, copy=False)
    k = check_k(k, n, what=k_what)
    ck, n_used, ranks_all, plan_orders = prefix_ranks(orders, checkpoints, n, k)
    plan = make_plan(backend=backend, algorithm=algorithm, group=check_group(group), dtype=dtype, D=D, n=n, k=k,
                     n_used=n_used, orders=plan_orders, take_rows=src.take, n_threads=resolve_n_jobs(n_jobs))
    rows = block_rows(src.shape, dt_r, block_size, max_memory)
    best = None
    with Progress(-(-n // rows), f"{desc} (blocks)", progress) as bar:
        for s, Rb in src.blocks(rows):
            bad = bad_rows(Rb, s)
            if bad is not None:
                # the count of the whole set would need a second pass: name the block
                src.release(Rb)
                raise ValueError(
                    f"{rname} contains NaN or infinite values in {bad[0]} row(s) of its rows "
                    f"{s}..{s + Rb.shape[0] - 1} (of {n}); the first is row {bad[1]} ({bad[2]}). Remove or impute them first."
                )
            rk = None if ranks_all is None else ranks_all[:, s : s + Rb.shape[0]]
            part = block_knn(Q, Rb, s, plan, rk, ck)
            src.release(Rb)
            best = part if best is None else merge(k, best, part)
            bar.update(1)
    src.close()
    return best[0], best[1], n, Q


# ----------------------------------------------------------------------------- public-function bodies


def prefix(mode, queries, reference, k, checkpoints, orders, **kw):
    """``(sq, idx, n, Q)``: the exact k-NN of the streamed or dask path,
    (passes, J, m, k) squared distances and rows; :mod:`repgap.neighbors`
    and :mod:`repgap.gap` build their results from them."""
    if mode == "dask":
        from ._dask import dask_prefix

        kw.pop("block_size", None)
        kw.pop("max_memory", None)
        return dask_prefix(queries, reference, k, checkpoints, orders, **kw)
    return stream_prefix(queries, reference, k, checkpoints, orders, **kw)


def knn(mode, queries, reference, k=1, **kw):
    sq, idx, _, _ = prefix(mode, queries, reference, k, None, None, **kw)
    return np.sqrt(sq[0, 0]), idx[0, 0]


def knn_checkpoints(mode, queries, reference, checkpoints, k=1, *, order=None, **kw):
    n = reference_rows(reference)
    od = np.arange(n, dtype=np.int64) if order is None else order
    sq, idx, _, _ = prefix(mode, queries, reference, k, checkpoints, [od], **kw)
    return np.sqrt(sq[0]), idx[0]


def reference_rows(reference):
    """Number of rows of a reference given as an array, a dask array or a ``.npy`` path."""
    if isinstance(reference, (str, os.PathLike)):
        src = NpyFileSource(reference, "reference")
        check_shape(src.shape, "reference")
        return src.shape[0]
    shape = getattr(reference, "shape", None)
    if shape is None:
        reference = np.asarray(reference)
        shape = reference.shape
    check_shape(shape, "reference")
    n = shape[0]
    if n != n:  # dask arrays of unknown length
        raise ValueError("the reference has an unknown number of rows; call .compute_chunk_sizes() first")
    return int(n)
