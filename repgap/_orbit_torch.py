"""The k-NN modulo a group on torch tensors, on their device.

The array namespace (:class:`TorchOps`) of the one filter-and-refine loop,
:func:`repgap.orbit.orbit_knn_prefix`: the invariants and the exact orbit
distances computed in torch for the closed-form groups
(translations, sign flips, rotations of 2-D/3-D clouds with or without
translations, cyclic shifts); for the others (permutations, explicit finite
groups, rotations x permutations) only the refined candidate pairs are
copied to the host and aligned there. torch is imported only when used.
"""
import math

import numpy as np

from .groups import CyclicShift, Identity, SignFlip


def _torch():
    import torch

    return torch


def _parts(group, D):
    """(translation p or None, rotation (p, reflections) or None, other group
    or None), from the group's own description (:meth:`Group.kernel_spec`)."""
    spec = group.kernel_spec(D)
    kind = None if spec is None else spec["kind"]
    if kind == "translation":
        return spec["p"], None, None
    if kind == "rotation":
        return (spec["p"] if spec["centre"] else None), (spec["p"], bool(spec["reflections"])), None
    return None, None, group


def _centre(torch, X, p):
    C = X.reshape(X.shape[:-1] + (X.shape[-1] // p, p))
    return (C - C.mean(dim=-2, keepdim=True)).reshape(X.shape)


def invariant(group, X):
    """Invariant features (float64, on X's device) with the lower-bound property."""
    torch = _torch()
    X = X.to(torch.float64)
    T, Rg, other = _parts(group, X.shape[1])
    if other is None:
        if Rg is None:
            return _centre(torch, X, T) if T else X
        C = _centre(torch, X, Rg[0]) if T else X
        C = C.reshape(X.shape[0], -1, Rg[0])
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
    T, Rg, other = _parts(group, D)
    if other is None:
        if T:
            X, Y = _centre(torch, X, T), _centre(torch, Y, T)
        if Rg is None:
            d2 = ((X - Y) ** 2).sum(1)
        else:
            p, reflections = Rg
            d2 = _kabsch_d2(torch, X.reshape(X.shape[0], -1, p), Y.reshape(Y.shape[0], -1, p), reflections)
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


class TorchOps:
    """The array namespace of :func:`repgap.orbit.orbit_knn_prefix` for
    tensors on ``device``: invariants and refinement in torch where the
    group has a closed form here (:func:`invariant`, :func:`refine`)."""

    def __init__(self, group, device):
        self.group, self.device = group, device
        self.torch = _torch()
        self.rows = None  # set from D on the first refinement

    def invariant(self, X):
        self.rows = max(1, (1 << 22) // max(1, X.shape[1] * 16))
        return invariant(self.group, X)

    def full(self, shape, value):
        torch = self.torch
        dtype = torch.int64 if isinstance(value, int) else torch.float64
        return torch.full(shape, value, dtype=dtype, device=self.device)

    def arange(self, n):
        return self.torch.arange(n, device=self.device)

    def refine(self, Q, R, cand):
        return refine(Q, R, cand, self.group)

    def merge(self, bd, bi, d, i, k):
        return _merge(self.torch, bd, bi, d, i, k)

    def refine_rest(self, Q, R, order, n_j, pending, seen_i, best_d, best_i, k):
        """Align every prefix row not yet refined against each pending query."""
        torch, dev = self.torch, self.device
        rows_all = torch.arange(n_j, device=dev) if order is None else \
            torch.as_tensor(np.asarray(order[:n_j], dtype=np.int64), device=dev)
        pos = torch.full((R.shape[0],), -1, dtype=torch.int64, device=dev)
        pos[rows_all] = torch.arange(n_j, device=dev)  # row -> position in the prefix
        chunk = max(1, (1 << 22) // max(n_j, 1))
        count = 0
        for s in range(0, pending.numel(), chunk):
            rows = pending[s : s + chunk]
            cand = rows_all.expand(rows.numel(), n_j).clone()
            if seen_i.shape[1]:
                # drop the candidates refined already (their results are in best)
                mark = torch.zeros((rows.numel(), n_j), dtype=torch.bool, device=dev)
                mark.scatter_(1, pos[seen_i[s : s + chunk]], True)
                cand[mark] = -1
            ex = refine(Q[rows], R, cand, self.group)
            best_d[rows], best_i[rows] = _merge(torch, best_d[rows], best_i[rows], ex, cand, k)
            count += int((cand >= 0).sum())
        return count
