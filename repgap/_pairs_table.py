"""Shared set-up of the pair-distance histogram kernels (all backends).

The compiled kernel bins a float32 squared distance through a table indexed
by the top bits of its bit pattern (see ``csrc/repgap_pairs.hpp``); the
table, the centre, the data extent and the list of tile pairs are prepared
here, once per call, so that every backend uses the same ones.
"""
import numpy as np

_CHUNK = 65536
CELL_SHIFT = 13  # must match csrc/repgap_pairs.hpp
N_CELLS = 1 << (31 - CELL_SHIFT)  # non-negative float32 patterns >> CELL_SHIFT


def centred_extent(X, Y=None):
    """(centre, largest centred norm): the float64 mean of the rows of X (and
    Y) and the largest distance of a row from it, computed in chunks."""
    sets = [X] if Y is None else [X, Y]
    total = np.zeros(X.shape[1])
    count = 0
    for S in sets:
        for s in range(0, S.shape[0], _CHUNK):
            total += np.sum(S[s : s + _CHUNK], axis=0, dtype=np.float64)
        count += S.shape[0]
    center = total / max(count, 1)
    big = 0.0
    for S in sets:
        for s in range(0, S.shape[0], _CHUNK):
            c = np.asarray(S[s : s + _CHUNK], dtype=np.float64) - center
            big = max(big, float(np.sqrt(np.max(np.einsum("ij,ij->i", c, c), initial=0.0))))
    return np.ascontiguousarray(center), big


def bin_table(edges2, tol, scale=1):
    """int32 table over the cells of non-negative float32 values:
    ``bin * scale``, where ``bin`` is ``searchsorted(edges2, v, "right")``
    for every v of the cell, or ``nb + 2`` (a spare slot) for an unsafe
    cell: a cell is unsafe when some edge
    lies within ``tol`` (an absolute bound on the rounding error of the
    computed squared distance) of it, widened by 2^-20 relative for the
    float64 -> float32 rounding of the cell index."""
    cells = np.arange(N_CELLS + 1, dtype=np.uint32) << np.uint32(CELL_SHIFT)
    with np.errstate(invalid="ignore", over="ignore"):
        lo_all = cells.view(np.float32).astype(np.float64)
    lo, hi = lo_all[:-1], lo_all[1:]
    bad = ~np.isfinite(lo) | ~np.isfinite(hi)
    lo = np.where(bad, 0.0, lo)
    hi = np.where(bad, 0.0, hi)
    w = 2.0 ** -20
    b_lo = np.searchsorted(edges2, lo * (1 - w) - tol, side="right")
    b_hi = np.searchsorted(edges2, hi * (1 + w) + tol, side="right")
    b = np.searchsorted(edges2, lo, side="right")
    unsafe = (b_lo != b_hi) | bad
    # unsafe cells point at the spare slot nb + 2 (the kernel bins them apart)
    b = np.where(unsafe, edges2.size + 1, b).astype(np.int64)
    return np.ascontiguousarray((b * scale).astype(np.int32))


def tile_pairs(n, m, tile, same):
    """Block numbers (a, b) of the tile pairs to visit: all of them between
    two sets, the upper triangle (b >= a) within one."""
    na, nb = -(-n // tile), -(-m // tile)
    a, b = np.meshgrid(np.arange(na, dtype=np.int64), np.arange(nb, dtype=np.int64), indexing="ij")
    a, b = a.ravel(), b.ravel()
    if same:
        keep = b >= a
        a, b = a[keep], b[keep]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)
