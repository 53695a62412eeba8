"""The exact float64 primitive and the (distance, index) merge.

Every distance repgap returns for host arrays is computed by
:func:`sqdist_rows_numpy` or its compiled twin (``exact_sqdist_rows`` in
``repgap._kernels_cython``, which :func:`sqdist_rows` prefers), in one fixed
order of operations, so that every algorithm and backend gives the same bits:

* each coordinate difference is formed in float64 from the stored values
  (``float64(q_d) - float64(x_d)``), then multiplied by ``2**-e`` (an exact
  power of two; ``e = 0`` unless the data lie outside the safe range, see
  :func:`repgap._search.certify.scale_exponent`) and squared;
* the squares are summed in four interleaved lanes, ``s_l = sum_i
  sq[4 i + l]`` in increasing ``i``, the ``D mod 4`` trailing coordinates
  are added to lane 0 in order, and the result is ``(s0 + s1) + (s2 + s3)``.

This is the order of the compiled kernels' ``sqdist_strided``
(``csrc/repgap_brute.hpp``), which is built without floating-point
contraction (no FMA), so their recomputed distances need no second pass.
The error of the sum is below ``(D + 2) u t`` with ``u = 2**-53``
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, section 4.2).
"""
import numpy as np

#: rows of candidates recomputed per numpy call: bounds the float64 temporaries
_ROWS = 8192


def _lanes(sq):
    """Four-lane sum of the last axis of ``sq`` (float64), in the fixed order.

    One elementwise IEEE add at a time, so a numpy array and a torch tensor
    on any device (:func:`repgap._kernels_torch.lanes_sum`) give the same
    bits. Squares are never -0, so starting a lane from its first term is
    the same as starting it from 0.
    """
    D = sq.shape[-1]
    D4 = D - D % 4
    if D4:
        acc = sq[..., 0:4] + 0.0  # a new array (or tensor)
        for g in range(4, D4, 4):
            acc += sq[..., g : g + 4]
        s0, s1, s2, s3 = acc[..., 0], acc[..., 1], acc[..., 2], acc[..., 3]
    elif D:
        s0 = sq[..., 0] + 0.0
        s1 = s2 = s3 = None
        D4 = 1
    else:
        s0 = sq.sum(-1)  # no coordinates: 0
        s1 = s2 = s3 = None
    for d in range(D4, D):
        s0 = s0 + sq[..., d]
    if s1 is None:
        return s0 + 0.0
    return (s0 + s1) + (s2 + s3)


def sqdist_rows(Q, R, qrows, ridx, shift=0, n_threads=1):
    """Squared distances between ``Q[qrows[i]]`` and ``R[ridx[i, c]]``, float64:
    the compiled primitive where it exists (same bits), else
    :func:`sqdist_rows_numpy`."""
    if not shift and Q.dtype == R.dtype and Q.dtype in (np.float32, np.float64) and Q.shape[1] > 0:
        mod = _compiled()
        if mod is not None:
            return mod.exact_sqdist_rows(Q, R, np.ascontiguousarray(qrows, dtype=np.int64),
                                         np.ascontiguousarray(ridx, dtype=np.int64), n_threads=n_threads)
    return sqdist_rows_numpy(Q, R, qrows, ridx, shift)


def _compiled():
    from .._backends import _load_cython

    mod = _load_cython()
    return mod if mod is not None and hasattr(mod, "exact_sqdist_rows") else None


def sqdist_rows_numpy(Q, R, qrows, ridx, shift=0):
    """Squared distances between ``Q[qrows[i]]`` and ``R[ridx[i, c]]``, float64.

    Parameters
    ----------
    Q, R : ndarray (m, D), (n, D)
        The stored rows (float32 or float64, any layout).
    qrows : ndarray of int (N,)
    ridx : ndarray of int (N, c)
        Rows of R; negative entries (padding) give ``inf``.
    shift : int
        Distances are returned in units of ``4**shift``: differences are
        multiplied by ``2**-shift`` before squaring (exact), which keeps them
        representable for data near the ends of the floating-point range.
    """
    qrows = np.asarray(qrows, dtype=np.int64)
    ridx = np.asarray(ridx, dtype=np.int64)
    N, c = ridx.shape
    out = np.empty((N, c))
    if N == 0 or c == 0:
        return out
    step = max(1, _ROWS // max(c, 1))
    for s in range(0, N, step):
        rr = ridx[s : s + step]
        bad = rr < 0
        x = np.asarray(R[np.where(bad, 0, rr).ravel()], dtype=np.float64).reshape(rr.shape + (R.shape[1],))
        q = np.asarray(Q[qrows[s : s + step]], dtype=np.float64)
        diff = q[:, None, :] - x
        if shift:
            np.ldexp(diff, -int(shift), out=diff)  # exact (any exponent), unlike a product by 2**-shift
        diff *= diff
        d = _lanes(diff)
        d[bad] = np.inf
        out[s : s + step] = d
    return out


def sqdist_block(q, x, shift=0):
    """Squared distances between every row of ``q`` (a, D) and of ``x`` (b, D),
    both float64 arrays, in the order of :func:`sqdist_rows`: shape (a, b)."""
    diff = q[:, None, :] - x[None, :, :]
    if shift:
        np.ldexp(diff, -int(shift), out=diff)
    diff *= diff
    return _lanes(diff)


def canonical_images_min(X, Y, perms, signs, n_threads=1):
    """``min_g`` over the images ``g.y = s_g y[perm_g]`` of the canonical sum of
    ``(x - g.y)^2``, per row pair of X and Y (float64, (N, D)): the compiled
    kernel where it exists (the same bits), else
    :func:`canonical_images_min_numpy`.

    The canonical sum (:func:`repgap.groups.canonical_sum`) adds the sorted
    terms in the four lanes: a function of the multiset of terms alone, so
    ``d_G(x, y) == d_G(y, x)`` to the last bit for groups acting by signed
    coordinate permutations. The fixed four-lane sums pick the images within
    rounding of the best (both orders are within ``rho64(D)`` of the exact
    sum, so the canonical minimum is among them); only those are sorted.

    Parameters
    ----------
    X, Y : ndarray (N, D)
    perms : ndarray of int (G, D)
        Image g of a row y is ``signs[g] * y[perms[g]]``.
    signs : ndarray (G,)
        +1 or -1 per image.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    perms = np.ascontiguousarray(perms, dtype=np.int64)
    signs = np.ascontiguousarray(signs, dtype=np.float64)
    D = X.shape[1]
    if perms.ndim != 2 or perms.shape[1] != D or Y.shape[1] != D or (perms.size and (
            perms.min() < 0 or perms.max() >= D)):
        # the compiled kernel reads y[perm] unchecked: maps that do not fit the rows would read past them
        raise ValueError(f"index maps of shape {perms.shape} cannot act on rows of {D} and {Y.shape[1]} values")
    mod = _compiled()
    if mod is not None and hasattr(mod, "canonical_images_min"):
        from .certify import rho64

        return mod.canonical_images_min(X, Y, perms, signs, 1.0 + 4.0 * rho64(X.shape[1]), n_threads=n_threads)
    return canonical_images_min_numpy(X, Y, perms, signs)


def canonical_images_min_numpy(X, Y, perms, signs):
    """:func:`canonical_images_min` in numpy, by blocks of rows (bounded memory)."""
    from .certify import rho64

    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    perms = np.asarray(perms, dtype=np.int64)
    signs = np.asarray(signs, dtype=np.float64)
    n, D = X.shape
    G = perms.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    if G == 0 or D == 0:
        out[:] = np.inf if G == 0 else 0.0
        return out
    slack = 1.0 + 4.0 * rho64(D)
    all_plus = bool(np.all(signs == 1.0))
    step = max(1, (1 << 22) // max(1, G * D))
    for s in range(0, n, step):
        img = np.take(Y[s : s + step], perms.ravel(), axis=1).reshape(-1, G, D)  # a new array
        if not all_plus:
            img *= signs[None, :, None]  # exact: +-1
        t = X[s : s + step, None, :] - img
        t *= t
        fast = _lanes(t)
        near = fast <= fast.min(axis=1, keepdims=True) * slack + 4.0 * D * 2.0**-1074
        ii, gg = np.nonzero(near)
        best = np.full(fast.shape, np.inf)
        best[ii, gg] = _lanes(np.sort(t[ii, gg], axis=-1))
        out[s : s + step] = best.min(axis=1)
    return out


def sort_pairs(d, i):
    """Sort each row by (distance, index): the tie rule of every path."""
    o = np.lexsort((i, d), axis=-1)
    return np.take_along_axis(d, o, -1), np.take_along_axis(i, o, -1)
