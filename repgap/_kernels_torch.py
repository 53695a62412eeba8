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
THEORY.md, section 6, cannot reach the user. Tiles are sized from a memory
budget (``max_memory``, default a quarter of the free device memory on a
GPU, 512 MiB on the CPU). torch is imported only when this backend is used.
"""
import contextlib
import math
import warnings

import numpy as np

SPARE = {"float32": 8, "tf32": 32, "bfloat16": 64}


def _torch():
    import torch

    return torch


def is_available():
    try:
        _torch()
    except ImportError:
        return False
    return True


def is_tensor(x):
    """True for a torch tensor, without importing torch."""
    return type(x).__module__.startswith("torch") and hasattr(x, "device") and hasattr(x, "dtype")


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
               tile_queries=None, tile_reference=None, spare=None, leafsize=16, device=None,
               max_memory=None, matmul="float32", progress=None):
    """k nearest neighbours of each query within each prefix of the reference.

    Returns ``(sqdist, indices)`` of shape ``(J, m, k)``: numpy arrays for
    numpy inputs, tensors on the inputs' device for tensor inputs.
    ``progress(done_queries)`` is called after each query tile.
    """
    torch = _torch()
    if algorithm not in ("brute", "gemm", "fused", "direct"):
        raise ValueError(f"algorithm {algorithm!r} is not available on the torch backend (use 'brute')")
    if matmul not in SPARE:
        raise ValueError(f"matmul must be one of {', '.join(map(repr, SPARE))}, got {matmul!r}")
    tensors = is_tensor(queries)
    dev = torch.device(device) if device is not None else (queries.device if tensors else torch.device("cpu"))
    Q = _as_tensor(torch, queries, dev)
    R = _as_tensor(torch, reference, dev)
    old_threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(max(1, int(n_threads)))
    try:
        with torch.no_grad(), _matmul_mode(torch, matmul):
            out_d, out_i = _brute(torch, dev, Q, R, k, order, checkpoints, tile_queries, tile_reference,
                                  SPARE[matmul] if spare is None else int(spare), max_memory, matmul, progress)
    finally:
        torch.set_num_threads(old_threads)
    if tensors:
        return out_d, out_i
    return out_d.cpu().numpy(), out_i.cpu().numpy()


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
        ex = torch.where(valid, (diff * diff).sum(-1), torch.full(rows.shape, inf, dtype=torch.float64,
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
    torch = _torch()
    if not is_tensor(R):
        R = torch.as_tensor(np.asarray(R), device=Q.device)
    if not is_tensor(Q):
        Q = torch.as_tensor(np.asarray(Q), device=R.device)
    if Q.device != R.device:
        raise ValueError(f"{qname} is on {Q.device} but {rname} is on {R.device}; put them on one device")
    Q, R = check_tensor(Q, qname), check_tensor(R, rname)
    if Q.shape[1] != R.shape[1]:
        raise ValueError(f"{qname} has {Q.shape[1]} features but {rname} has {R.shape[1]}; they must match")
    if Q.dtype != R.dtype:
        Q, R = Q.to(torch.float64), R.to(torch.float64)
    return Q, R
