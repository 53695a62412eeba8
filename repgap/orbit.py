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

The refinement runs in the compiled kernel (``csrc/repgap_orbit.hpp``, OpenMP
over queries) for the built-in groups with a closed form when the cython
backend is used, and in numpy (:mod:`repgap.groups`) otherwise.
"""
import numpy as np

from ._backends import kernels
from ._progress import Progress
from .groups import (CyclicShift, FiniteGroup, Identity, Permutation, Product, Rotation, SignFlip,
                     Translation)

# queries per refinement call: bounded memory, and Ctrl-C is honoured between calls
_REFINE_ROWS = 4096


def compiled_spec(group, D):
    """The compiled kernel's description of ``group``, or None when the
    kernel has no closed form for it (then numpy refines)."""
    g = group
    if isinstance(g, Product):
        if len(g.groups) == 1:
            g = g.groups[0]
        elif not g.exact:
            return None
        elif g._R is not None:
            return dict(kind=2, p=g.p, reflections=int(g._R.reflections), centre=int(g._T is not None))
        elif g._P is not None:
            return dict(kind=3, p=g.p, centre=int(g._T is not None))
        elif g._T is not None:
            return dict(kind=1, p=g.p)
        return None
    if isinstance(g, Identity):
        return dict(kind=0)
    if isinstance(g, Translation):
        return dict(kind=1, p=g.p)
    if isinstance(g, Rotation):
        return dict(kind=2, p=g.p, reflections=int(g.reflections), centre=0)
    if isinstance(g, Permutation):
        return dict(kind=3, p=g.p, centre=0)
    if isinstance(g, CyclicShift):
        h, w = g.shape if g.shape else (1, D)
        return dict(kind=4, h=h, w=w, reflections=int(g.reflections))
    if isinstance(g, SignFlip):
        return dict(kind=5)
    if isinstance(g, FiniteGroup):
        if g._perms is not None:
            return dict(kind=6, order=g.order, perms=np.ascontiguousarray(g._perms, dtype=np.int64))
        return dict(kind=7, order=g.order, mats=np.ascontiguousarray(g._mats, dtype=np.float64))
    return None


def refine(Q, R, cand, group, *, backend, n_threads):
    """Squared orbit distances ``d_G(Q[i], R[cand[i, j]])^2`` (inf where cand is -1)."""
    m, c = cand.shape
    spec = compiled_spec(group, Q.shape[1]) if backend == "cython" else None
    if spec is not None:
        return kernels("cython").orbit_refine(Q, R, np.ascontiguousarray(cand, dtype=np.int64), spec,
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


def orbit_knn_prefix(Q, R, k, order, checkpoints, group, *, backend, n_threads, progress=None,
                     desc="k-NN modulo group", stats=None):
    """Exact (J, m, k) squared orbit distances and reference rows, by prefix.

    ``stats``, when a dict, receives the number of refined pairs
    (``"refined"``) and of filter rounds (``"rounds"``).
    """
    from .neighbors import knn_prefix
    from ._kernels_torch import is_tensor

    if is_tensor(Q):
        # tensors stay on their device (repgap._orbit_torch)
        from ._orbit_torch import orbit_knn_prefix as on_device

        return on_device(Q, R, k, order, checkpoints, group, n_threads=n_threads, stats=stats)
    group.check_dim(Q.shape[1])
    m = Q.shape[0]
    J = len(checkpoints)
    FQ = np.ascontiguousarray(group.invariant(Q))
    FR = FQ if R is Q else np.ascontiguousarray(group.invariant(R))
    out_d = np.empty((J, m, k))
    out_i = np.empty((J, m, k), dtype=np.int64)
    refined = rounds = 0
    with Progress(J * m, desc, progress) as bar:
        for j, n_j in enumerate(int(c) for c in checkpoints):
            ck = np.array([n_j], dtype=np.int64)
            best_d = np.full((m, k), np.inf)
            best_i = np.full((m, k), -1, dtype=np.int64)
            pending = np.arange(m)
            seen = 0  # candidates already refined for the pending queries
            seen_i = np.empty((m, 0), dtype=np.int64)
            c = min(n_j, max(2 * k + 8, 16))
            while pending.size:
                rounds += 1
                if c > n_j // 8 and c < n_j:
                    # the filter is not selective here (a task of high
                    # dimension): align the rest of the prefix exhaustively
                    refined += _refine_rest(Q, R, order, n_j, pending, seen_i, best_d, best_i, group, k,
                                            backend=backend, n_threads=n_threads)
                    bar.update(int(pending.size))
                    break
                lb, ci = knn_prefix(FQ[pending], FR, c, order, ck, backend=backend, n_threads=n_threads,
                                    algorithm="auto", progress=False)
                lb, ci = lb[0], ci[0]
                new = ci[:, seen:c]
                for s in range(0, pending.size, _REFINE_ROWS):
                    rows = pending[s : s + _REFINE_ROWS]
                    ex = refine(Q[rows], R, new[s : s + _REFINE_ROWS], group, backend=backend,
                                n_threads=n_threads)
                    best_d[rows], best_i[rows] = _merge(best_d[rows], best_i[rows], ex,
                                                        new[s : s + _REFINE_ROWS], k)
                refined += new.size
                kth = best_d[pending, k - 1]
                # the next unrefined candidate's bound beats no k-th distance: done
                done = (c >= n_j) | (lb[:, c - 1] > kth * (1 + 1e-12) + 1e-300)
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
