"""The k-NN modulo a group on torch tensors, on their device.

The same filter and refine as :mod:`repgap.orbit`, with the invariants and
the exact orbit distances computed in torch for the closed-form groups
(translations, sign flips, rotations of 2-D/3-D clouds with or without
translations, cyclic shifts); for the others (permutations, explicit finite
groups, rotations x permutations) only the refined candidate pairs are
copied to the host and aligned there. torch is imported only when used.
"""
import math

import numpy as np

from .groups import CyclicShift, Identity, Product, Rotation, SignFlip, Translation


def _torch():
    import torch

    return torch


def _parts(group):
    """(translation p or None, rotation or None, other group or None)."""
    if isinstance(group, Product):
        if len(group.groups) == 1:
            return _parts(group.groups[0])
        if group._P is None and group._R is not None:
            return (group.p if group._T is not None else None), group._R, None
        if group._P is None and group._R is None and group._T is not None:
            return group.p, None, None
        return None, None, group
    if isinstance(group, Translation):
        return group.p, None, None
    if isinstance(group, Rotation):
        return None, group, None
    return None, None, group


def _centre(torch, X, p):
    C = X.reshape(X.shape[:-1] + (X.shape[-1] // p, p))
    return (C - C.mean(dim=-2, keepdim=True)).reshape(X.shape)


def invariant(group, X):
    """Invariant features (float64, on X's device) with the lower-bound property."""
    torch = _torch()
    X = X.to(torch.float64)
    T, Rg, other = _parts(group)
    if other is None:
        if Rg is None:
            return _centre(torch, X, T) if T else X
        C = _centre(torch, X, Rg.p) if T else X
        C = C.reshape(X.shape[0], -1, Rg.p)
        n, m, _ = C.shape
        parts = [C.norm(dim=2)]
        if m > 1:
            iu = torch.triu_indices(m, m, 1, device=X.device)
            parts.append((C[:, iu[0]] - C[:, iu[1]]).norm(dim=2) / math.sqrt(2.0 * (m - 1)))
        return torch.cat(parts, 1) / math.sqrt(len(parts))
    if isinstance(other, (Identity,)):
        return X
    if isinstance(other, SignFlip):
        return X.abs()
    if isinstance(other, CyclicShift):
        shape = other.shape or (X.shape[1],)
        S = X.reshape((X.shape[0],) + shape)
        dims = tuple(range(1, S.ndim))
        F = torch.fft.rfftn(S, dim=dims).abs()
        w = shape[-1]
        c = torch.full((F.shape[-1],), 2.0, dtype=torch.float64, device=X.device)
        c[0] = 1.0
        if w % 2 == 0:
            c[-1] = 1.0
        if other.reflections and S.ndim == 3:
            F = 0.5 * (F + torch.roll(torch.flip(F, dims=(1,)), 1, dims=1))
        return (F * torch.sqrt(c / math.prod(shape))).reshape(X.shape[0], -1)
    # the rest: computed on the host (a pass over the data, once)
    return torch.from_numpy(group.invariant(X.cpu().numpy())).to(X.device)


def _kabsch_d2(torch, Cx, Cy, reflections):
    """min over rotations of ||Cx - R Cy||^2, batched (b, m, p), difference first."""
    M = Cx.transpose(1, 2) @ Cy  # sum_i x_i y_i^T
    U, _, Vh = torch.linalg.svd(M)
    if not reflections:
        det = torch.linalg.det(U @ Vh)
        U = U.clone()
        U[:, :, -1] *= torch.where(det < 0, -1.0, 1.0)[:, None]
    Rm = U @ Vh
    gy = Cy @ Rm.transpose(1, 2)
    return ((Cx - gy) ** 2).sum(dim=(1, 2))


def refine(Q, R, cand, group):
    """Exact squared orbit distances d_G(Q[i], R[cand[i, j]])^2 (inf where cand < 0)."""
    torch = _torch()
    m, c = cand.shape
    D = Q.shape[1]
    valid = cand >= 0
    Y = R[cand.clamp_min(0).reshape(-1)].to(torch.float64)          # (m c, D)
    X = Q.to(torch.float64)[:, None, :].expand(m, c, D).reshape(-1, D)
    T, Rg, other = _parts(group)
    if other is None:
        if T:
            X, Y = _centre(torch, X, T), _centre(torch, Y, T)
        if Rg is None:
            d2 = ((X - Y) ** 2).sum(1)
        else:
            p = Rg.p
            d2 = _kabsch_d2(torch, X.reshape(X.shape[0], -1, p), Y.reshape(Y.shape[0], -1, p), Rg.reflections)
    elif isinstance(other, Identity):
        d2 = ((X - Y) ** 2).sum(1)
    elif isinstance(other, SignFlip):
        d2 = torch.minimum(((X - Y) ** 2).sum(1), ((X + Y) ** 2).sum(1))
    elif isinstance(other, CyclicShift):
        d2 = _cyclic_d2(torch, X, Y, other)
    else:  # no torch closed form here: align the refined pairs on the host
        d2 = torch.from_numpy(group.distance2(X.cpu().numpy(), Y.cpu().numpy())).to(Q.device)
    d2 = d2.reshape(m, c)
    return torch.where(valid, d2, torch.full_like(d2, float("inf")))


def _cyclic_d2(torch, X, Y, g):
    shape = g.shape or (X.shape[1],)
    b = X.shape[0]
    Sx, Sy = X.reshape((b,) + shape), Y.reshape((b,) + shape)
    dims = tuple(range(1, Sx.ndim))
    best = torch.full((b,), float("inf"), dtype=torch.float64, device=X.device)
    cands = [Sy]
    if g.reflections:
        cands.append(torch.roll(torch.flip(Sy, dims=(-1,)), 1, dims=-1))
    flat_idx = torch.arange(math.prod(shape), device=X.device)
    for S in cands:
        corr = torch.fft.irfftn(torch.fft.rfftn(Sx, dim=dims) * torch.conj(torch.fft.rfftn(S, dim=dims)),
                                s=shape, dim=dims).reshape(b, -1)
        s = corr.argmax(dim=1)  # the best shift; its distance is recomputed as differences
        if len(shape) == 1:
            idx = (flat_idx[None, :] - s[:, None]) % shape[0]
            gy = torch.gather(S, 1, idx)
        else:
            h, w = shape
            a, bb = s // w, s % w
            ii = (torch.arange(h, device=X.device)[None, :, None] - a[:, None, None]) % h
            jj = (torch.arange(w, device=X.device)[None, None, :] - bb[:, None, None]) % w
            gy = S[torch.arange(b, device=X.device)[:, None, None], ii, jj]
        best = torch.minimum(best, ((Sx - gy) ** 2).reshape(b, -1).sum(1))
    return best


def _merge(torch, bd, bi, d, i, k):
    D = torch.cat([bd, d], 1)
    I = torch.cat([bi, i], 1)
    o1 = torch.argsort(I, dim=1, stable=True)
    D, I = torch.gather(D, 1, o1), torch.gather(I, 1, o1)
    o2 = torch.argsort(D, dim=1, stable=True)
    return torch.gather(D, 1, o2)[:, :k], torch.gather(I, 1, o2)[:, :k]


def orbit_knn_prefix(Q, R, k, order, checkpoints, group, *, n_threads=1, stats=None, progress=None):
    """As :func:`repgap.orbit.orbit_knn_prefix`, for tensors on their device;
    returns (J, m, k) tensors there."""
    torch = _torch()
    from ._kernels_torch import knn_prefix

    group.check_dim(Q.shape[1])
    m, dev = Q.shape[0], Q.device
    FQ = invariant(group, Q)
    FR = FQ if R is Q else invariant(group, R)
    J = len(checkpoints)
    out_d = torch.empty((J, m, k), dtype=torch.float64, device=dev)
    out_i = torch.empty((J, m, k), dtype=torch.int64, device=dev)
    refined = rounds = 0
    ordt = None if order is None else torch.as_tensor(np.asarray(order, dtype=np.int64), device=dev)
    step = max(1, (1 << 22) // max(1, Q.shape[1] * 16))
    for j, n_j in enumerate(int(c) for c in checkpoints):
        ck = np.array([n_j], dtype=np.int64)
        best_d = torch.full((m, k), float("inf"), dtype=torch.float64, device=dev)
        best_i = torch.full((m, k), -1, dtype=torch.int64, device=dev)
        pending = torch.arange(m, device=dev)
        seen = 0
        seen_i = torch.empty((m, 0), dtype=torch.int64, device=dev)
        c = min(n_j, max(2 * k + 8, 16))
        while pending.numel():
            rounds += 1
            if c > n_j // 8 and c < n_j:
                rows_all = torch.arange(n_j, device=dev) if ordt is None else ordt[:n_j]
                pos = torch.full((R.shape[0],), -1, dtype=torch.int64, device=dev)
                pos[rows_all] = torch.arange(n_j, device=dev)  # row -> position in the prefix
                chunk = max(1, (1 << 22) // max(n_j, 1))
                for s in range(0, pending.numel(), chunk):
                    rows = pending[s : s + chunk]
                    cand = rows_all.expand(rows.numel(), n_j).clone()
                    if seen_i.shape[1]:
                        # drop the candidates refined already (their results are in best)
                        mark = torch.zeros((rows.numel(), n_j), dtype=torch.bool, device=dev)
                        mark.scatter_(1, pos[seen_i[s : s + chunk]], True)
                        cand[mark] = -1
                    ex = refine(Q[rows], R, cand, group)
                    best_d[rows], best_i[rows] = _merge(torch, best_d[rows], best_i[rows], ex, cand, k)
                    refined += int((cand >= 0).sum())
                break
            lb, ci = knn_prefix(FQ[pending], FR, c, order, ck, n_threads=n_threads)
            lb, ci = lb[0], ci[0]
            new = ci[:, seen:c]
            for s in range(0, pending.numel(), step):
                rows = pending[s : s + step]
                ex = refine(Q[rows], R, new[s : s + step], group)
                best_d[rows], best_i[rows] = _merge(torch, best_d[rows], best_i[rows], ex, new[s : s + step], k)
            refined += new.numel()
            kth = best_d[pending, k - 1]
            done = (c >= n_j) | (lb[:, c - 1] > kth * (1 + 1e-12) + 1e-300)
            seen_i = ci[~done]
            pending = pending[~done]
            seen = c
            c = min(n_j, 8 * c)
        out_d[j], out_i[j] = best_d, best_i
        if progress is not None:
            progress(m * (j + 1) // J)
    if stats is not None:
        stats["refined"] = stats.get("refined", 0) + refined
        stats["rounds"] = stats.get("rounds", 0) + rounds
    return out_d, out_i
