"""Torch tensors on their device: the plan and the array operations of the one certified loop.

:func:`tensor_search` is the tensor branch of
:func:`repgap._search.plan.knn_prefix`. It hands the torch kernel and
:class:`TensorOps` to :func:`repgap._search.engine.certified`, the loop the
host arrays run too, so that a tensor gets the arrays' answer bit for bit:
the candidates and the answer stay on the device; only the queries'
positions and (m,) vectors of bounds cross to the host.

Range: data whose squared norms would overflow, or lose their differences
to subnormals, in the kernel's precision
(:func:`~repgap._search.certify.safe_range`) are searched on copies
rescaled by a power of two and centred, as the arrays' copies are
(:func:`repgap._search.plan._plan`), and the candidates' distances are
then recomputed between the stored rows (:meth:`TensorOps.recompute`), in
the arrays' canonical units. torch is imported only when a tensor arrives.
"""
import numpy as np

from .._backends import kernels
from .._config import get_config
from .._progress import Progress
from .certify import U64, SearchModel, canonical_shift, safe_range, scale_exponent, unit_roundoff
from .engine import SPARE, certified


def _torch():
    import torch

    return torch


def ldexp(x, e):
    """``x * 2**e`` for a float64 tensor, correctly rounded as ``np.ldexp``
    (one product by an exact power of two; two when ``2**e`` is not a
    normal double, the first of them exact)."""
    e = int(e)
    if -1022 <= e <= 1023:
        return x * (2.0**e)
    if e > 0:
        return (x * 2.0**1023) * (2.0 ** (e - 1023))
    # scaling down past 2**-1022: the first product (by at most 2**-1000)
    # is exact for the values that matter, the second rounds once
    return (x * 2.0**-1000) * (2.0 ** (e + 1000))


def _rows_step(D):
    # float64 temporaries of at most 4 MiB, as the host path's
    return max(1, (4 << 20) // (8 * max(D, 1)))


class TensorOps:
    """:class:`repgap._search.engine.HostOps` on torch tensors (same methods):
    the recomputation in float64 on the device in the primitive's order
    (:func:`repgap._kernels_torch.lanes_sum`), the (distance, index) merge by
    two stable sorts, the exhaustive scan by the kernel itself (every row
    of a prefix as candidates)."""

    def __init__(self, Q, R, order, shift, run, b_canonical):
        self.torch = _torch()
        self.Q, self.R, self.order, self.shift = Q, R, order, int(shift)
        self.run, self.b_canonical = run, b_canonical
        self.device = Q.device

    def _t(self, rows):
        return self.torch.as_tensor(np.asarray(rows), device=self.device)

    def empty(self, J, m, k):
        torch = self.torch
        return (torch.empty((J, m, k), dtype=torch.float64, device=self.device),
                torch.empty((J, m, k), dtype=torch.int64, device=self.device))

    def candidates(self, b, idx):
        return b, idx

    def rows(self, x, a, w):
        return x[a][self._t(w)]

    def recompute(self, qs, ij):
        """Squared distances between ``Q[qs[i]]`` and ``R[ij[i, c]]`` (stored rows, float64, canonical units)."""
        from .._kernels_torch import lanes_sum

        torch = self.torch
        D = self.Q.shape[1]
        out = torch.empty(ij.shape, dtype=torch.float64, device=self.device)
        step = max(1, _rows_step(D) // max(1, ij.shape[1]))
        qt = self._t(qs)
        for s in range(0, ij.shape[0], step):
            r = ij[s : s + step]
            bad = r < 0
            x = self.R[r.clamp_min(0).reshape(-1)].to(torch.float64).reshape(r.shape + (D,))
            diff = self.Q[qt[s : s + step]].to(torch.float64)[:, None, :] - x
            if self.shift:
                diff = ldexp(diff, -self.shift)
            diff *= diff
            t = lanes_sum(diff)
            t[bad] = float("inf")
            out[s : s + step] = t
        return out

    def sort_pairs(self, d, i):
        torch = self.torch
        o = torch.argsort(i, dim=1, stable=True)
        d, i = torch.gather(d, 1, o), torch.gather(i, 1, o)
        o = torch.argsort(d, dim=1, stable=True)
        return torch.gather(d, 1, o), torch.gather(i, 1, o)

    def column(self, x, c):
        return x[:, c].cpu().numpy()

    def rowmax(self, x):
        return x.amax(1).cpu().numpy()

    def store(self, out_d, out_i, j, dst, d, i, src):
        if isinstance(src, np.ndarray):
            if not src.any():
                return
            src = self._t(src)
        dst = self._t(dst)
        out_d[j, dst] = d[src]
        out_i[j, dst] = i[src]

    def exhaustive(self, qsel, cks, k):
        """Every row of each prefix as a candidate: the kernel with ``kk = ck``, one call per prefix."""
        torch = self.torch
        ds, is_ = [], []
        for c in cks:
            b, idx = self.run(qsel, int(c), np.asarray([c], dtype=np.int64), False)
            b, idx = b[0], idx[0]
            t = b if self.b_canonical else self.recompute(qsel, idx)
            t, idx = self.sort_pairs(t, idx)
            ds.append(t[:, :k])
            is_.append(idx[:, :k])
        return torch.stack(ds), torch.stack(is_)


def tensor_search(Q, R, k, order, checkpoints, algo, n_threads, progress, desc, bar):
    """Torch tensors on their device, certified as the arrays' searches are:
    ``(sqdist (J, m, k), indices (J, m, k), shift)``, distances in units of ``4**shift``.

    The torch kernel returns ``kk`` candidates with their exact float64
    distances (the primitive's bits); a query is certified when the error
    model's lower bound over the rows it did not return
    (:func:`tensor_model`) beats its k-th distance, and searched again with
    four times the candidates otherwise, up to every row of the prefix.
    Rows tied at the k-th distance are therefore all among the candidates,
    and come out by row, as on the arrays.
    """
    torch = _torch()
    mod = kernels("torch")
    cfg = get_config()
    m, D = Q.shape
    f64 = R.dtype == torch.float64
    dt = np.float64 if f64 else np.float32
    amax = max((float(X.abs().max()) for X in (Q, R) if X.numel()), default=0.0)
    shift = canonical_shift(dt, amax, D)
    lo, hi = safe_range(dt, D)
    if amax != 0.0 and not (lo <= amax <= hi):
        # copies rescaled by a power of two and centred (in float64, then
        # rounded to the data's precision), as the arrays' copies are
        e_s = scale_exponent(amax) + 1
        Rs = _copy(torch, R, e_s, None)
        centre = _mean(torch, Rs)
        Rs = (Rs - centre).to(R.dtype)
        Qs = Rs if Q is R else (_copy(torch, Q, e_s, None) - centre).to(Q.dtype)
        model = tensor_model(torch, Qs, Rs, copies=True, unit_shift=e_s - shift)
        b_canonical = False
    else:
        Qs, Rs = Q, R
        model = tensor_model(torch, Q, R)
        b_canonical = True
    own = bar is None
    bar = bar if bar is not None else Progress(m, desc, progress)

    def run(qsel, kk, cks, first):
        Qsub = Qs if qsel.size == m else Qs[torch.as_tensor(qsel, device=Q.device)]
        # no spare candidates inside the kernel: the certificate decides
        kw = dict(n_threads=n_threads, algorithm=algo, spare=0, **_tiles(cfg, qsel.size, R.shape[0]))
        from .plan import _run_kernel

        return _run_kernel(mod, "torch", Qsub, Rs, kk, order, cks, kw,
                           bar if first else Progress(qsel.size, "", False))

    try:
        # an even number of first candidates: the CPU kernel's candidate
        # buffers run faster at even widths (measured at D = 16, 1e4 x 5e4:
        # 0.40 s at 19, 0.35 s at 20)
        kk = k + SPARE + k // 2
        ops = TensorOps(Q, R, order, shift, run, b_canonical)
        d, i = certified(Q, R, k, order, np.asarray(checkpoints, dtype=np.int64), run, model, shift=shift,
                         b_canonical=b_canonical, first_kk=kk + (kk & 1), ops=ops)
    finally:
        if own:
            bar.close()
    return d, i, shift


def _tiles(cfg, n_queries, n_reference):
    from .plan import _tiles as tiles

    return tiles(cfg, n_queries, n_reference)


def _copy(torch, X, e, centre):
    """``X * 2**-e`` in float64 (exact for float32 data; float64 data round only where they become subnormal)."""
    out = torch.empty(X.shape, dtype=torch.float64, device=X.device)
    step = _rows_step(X.shape[1])
    for s in range(0, X.shape[0], step):
        out[s : s + step] = ldexp(X[s : s + step].to(torch.float64), -e)
    return out


def _mean(torch, X):
    acc = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
    step = _rows_step(X.shape[1])
    for s in range(0, X.shape[0], step):
        acc += X[s : s + step].to(torch.float64).sum(0)
    return acc / max(X.shape[0], 1)


def tensor_model(torch, Q, R, *, copies=False, unit_shift=0):
    """The torch kernels' error model (:class:`~repgap._search.certify.SearchModel`).

    Both kernels score ``q.r - |r|^2 / 2`` (the expansion) in the data's
    precision on copies centred on the reference mean (float64 on the
    device; rounded to the data's precision on the host), and recompute the
    candidates' distances between the rows they are given: the stored rows,
    or (``copies=True``) the rescaled copies, whose coordinates are rounded
    to the data's precision and whose distances are then in units of
    ``4**unit_shift`` of the canonical ones. The norms about the kernel's
    centre are computed on the device; only the (m,) vector of query norms
    and the largest reference norm come to the host.
    """
    D = Q.shape[1]
    f64 = R.dtype == torch.float64
    u = U64 if f64 else unit_roundoff(np.float32)
    centre = _mean(torch, R)
    step = _rows_step(D)

    def norms(X):
        out = torch.empty(X.shape[0], dtype=torch.float64, device=X.device)
        for s in range(0, X.shape[0], step):
            B = X[s : s + step].to(torch.float64) - centre
            out[s : s + step] = (B * B).sum(1).sqrt()
        return out

    c = float(torch.sqrt((centre * centre).sum()))
    grow = 1.0 + 4.0 * (D + 2) * U64
    qn = norms(Q).cpu().numpy() * grow + c
    rmax = (float(norms(R).max()) * grow + c) if R.shape[0] else 0.0
    tiny = 4.0 * D * float(torch.finfo(R.dtype).tiny)
    return SearchModel(D=D, u=u, expanded=True, copy_u=2.0 * u if copies else u, b_on_copies=copies,
                       unit_shift=int(unit_shift), qnorm=qn, rmax=rmax, tiny=tiny)
