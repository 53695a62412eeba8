"""The torch backend's kernels (CPU or GPU tensors).

Same signature and results as :func:`repgap._kernels_numpy.knn_prefix`.
Candidates come from matrix products on centred tiles in the input precision;
their distances are then recomputed exactly in float64 (difference first),
so the float32 ``torch.cdist`` trap (THEORY.md, section 6) cannot reach the
user. torch is imported only when this backend is used. Issue #5 extends this
path to data that already lives on a GPU.
"""
import warnings

import numpy as np


def _torch():
    import torch

    return torch


def is_available():
    try:
        _torch()
    except ImportError:
        return False
    return True


def knn_prefix(queries, reference, k, order, checkpoints, *, n_threads=1, algorithm="brute",
               tile_queries=None, tile_reference=None, spare=8, leafsize=16, device=None):
    torch = _torch()
    if algorithm not in ("brute", "gemm", "fused", "direct"):
        raise ValueError(f"algorithm {algorithm!r} is not available on the torch backend (use 'brute')")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n_threads)))
    try:
        return _brute(torch, dev, queries, reference, k, order, checkpoints, tile_queries,
                      tile_reference, spare)
    finally:
        torch.set_num_threads(old_threads)


def _brute(torch, dev, Q, R, k, order, checkpoints, tq, tr, spare):
    m, D = Q.shape
    J = len(checkpoints)
    K = k + spare
    tq = int(tq or 1024)
    tr = int(tr or 16384)
    center = torch.from_numpy(np.mean(R, axis=0, dtype=np.float64)).to(dev)
    with warnings.catch_warnings():
        # read-only inputs (memory maps): torch warns, but nothing here writes
        warnings.simplefilter("ignore", UserWarning)
        Rt = torch.from_numpy(R)
    dt = Rt.dtype
    ordt = None if order is None else torch.from_numpy(np.ascontiguousarray(order, dtype=np.int64))
    out_d = np.empty((J, m, k))
    out_i = np.empty((J, m, k), dtype=np.int64)
    with torch.no_grad():
        for q0 in range(0, m, tq):
            q1 = min(m, q0 + tq)
            Qb64 = torch.from_numpy(np.asarray(Q[q0:q1], dtype=np.float64)).to(dev)
            Qc = (Qb64 - center).to(dt)
            cd = torch.empty((q1 - q0, 0), dtype=dt, device=dev)
            ci = torch.empty((q1 - q0, 0), dtype=torch.int64, device=dev)
            start = 0
            for j in range(J):
                while start < int(checkpoints[j]):
                    end = min(start + tr, int(checkpoints[j]))
                    ranks = torch.arange(start, end, device=dev)
                    rows = ranks if ordt is None else ordt[start:end].to(dev)
                    Rc = (Rt[rows.cpu()].to(dev).to(torch.float64) - center).to(dt)
                    v = (Rc * Rc).sum(1)[None, :] - 2 * (Qc @ Rc.T)
                    cd = torch.cat([cd, v], 1)
                    ci = torch.cat([ci, ranks.expand(v.shape[0], -1)], 1)
                    if cd.shape[1] > K:
                        cd, sel = torch.topk(cd, K, dim=1, largest=False, sorted=False)
                        ci = torch.gather(ci, 1, sel)
                    start = end
                rows = ci if ordt is None else ordt.to(dev)[ci]
                Rsel = Rt[rows.cpu().reshape(-1)].to(dev).to(torch.float64).reshape(rows.shape + (D,))
                ex = ((Qb64[:, None, :] - Rsel) ** 2).sum(-1)
                # sort by (distance, index)
                o1 = torch.argsort(rows, dim=1, stable=True)
                ex1, r1 = torch.gather(ex, 1, o1), torch.gather(rows, 1, o1)
                o2 = torch.argsort(ex1, dim=1, stable=True)
                out_d[j, q0:q1] = torch.gather(ex1, 1, o2)[:, :k].cpu().numpy()
                out_i[j, q0:q1] = torch.gather(r1, 1, o2)[:, :k].cpu().numpy()
    return out_d, out_i


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
