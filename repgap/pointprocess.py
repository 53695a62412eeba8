"""Point-process summaries from distances: pair counts, G, F and J functions.

* ``pair_distance_counts``: the number of pairs (within one set, or between
  two) in distance bins, computed in tiles so that no pair matrix exists. It
  gives the correlation integral (Grassberger & Procaccia 1983) and Ripley's
  K and L functions.
* ``nn_distance_cdf`` (G), ``empty_space_cdf`` (F) and ``j_function``
  ``J = (1 - G) / (1 - F)`` (van Lieshout & Baddeley 1996): for a Poisson
  process J = 1; clustering gives J < 1, regularity J > 1.

This module holds the numpy reference (float64 tiles); the compiled fused
kernel for the pair histogram is tracked in issue #3.
"""
import numpy as np

from .neighbors import knn
from ._validation import check_array, check_pair

_TILE = 2048


def _counts_tile(A, B, edges2, same, offset_a, offset_b):
    d2 = np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", B, B)[None, :] - 2.0 * (A @ B.T)
    np.maximum(d2, 0.0, out=d2)
    if same:
        ia = offset_a + np.arange(A.shape[0])[:, None]
        ib = offset_b + np.arange(B.shape[0])[None, :]
        d2 = d2[ib > ia]  # each unordered pair once, no self pairs
    b = np.searchsorted(edges2, d2.ravel(), side="right") - 1
    return np.bincount(b[(b >= 0) & (b < len(edges2) - 1)], minlength=len(edges2) - 1)


def pair_distance_counts(X, Y=None, *, edges, backend=None, n_jobs=None):
    """Counts of pairs with distance in ``[edges[i], edges[i+1])``.

    Parameters
    ----------
    X : array (n, D)
    Y : array (m, D), optional
        When given, the pairs (x, y) between the sets; otherwise the unordered
        pairs within X (each once, no self pairs).
    edges : increasing array of bin edges (may start at 0 and end at inf)

    Returns
    -------
    counts : int64 array of length ``len(edges) - 1``
    """
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0:
        raise ValueError("edges must be an increasing 1-D array of non-negative values (at least 2)")
    if Y is None:
        X = check_array(X, "X")
        Y_ = X
    else:
        Y_, X = check_pair(Y, X, "Y", "X")
    c = np.mean(X, axis=0, dtype=np.float64)  # centre: no cancellation far from the origin
    edges2 = edges**2
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    for a in range(0, X.shape[0], _TILE):
        A = np.asarray(X[a : a + _TILE], dtype=np.float64) - c
        b0 = a if Y is None else 0
        for b in range(b0, Y_.shape[0], _TILE):
            B = np.asarray(Y_[b : b + _TILE], dtype=np.float64) - c
            counts += _counts_tile(A, B, edges2, Y is None, a, b)
    return counts


def correlation_integral(X, r, **kw):
    """``C(r)``: the fraction of pairs of X closer than each r."""
    r = np.sort(np.asarray(r, dtype=float))
    edges = np.concatenate([[0.0], r])
    counts = pair_distance_counts(X, edges=np.concatenate([edges, [np.inf]]), **kw)
    n = check_array(X, "X").shape[0]
    return np.cumsum(counts[:-1]) / (n * (n - 1) / 2)


def nn_distance_cdf(X, r, *, backend=None, n_jobs=None):
    """G(r): the fraction of points of X whose nearest other point is within r."""
    X = check_array(X, "X")
    d, i = knn(X, X, k=2, backend=backend, n_jobs=n_jobs)
    self_first = i[:, 0] == np.arange(X.shape[0])
    nn = np.where(self_first, d[:, 1], d[:, 0])
    return np.searchsorted(np.sort(nn), np.asarray(r, dtype=float), side="right") / X.shape[0]


def empty_space_cdf(train, test, r, *, backend=None, n_jobs=None):
    """F(r): the fraction of test points whose nearest training point is within r."""
    d, _ = knn(test, train, k=1, backend=backend, n_jobs=n_jobs)
    return np.searchsorted(np.sort(d[:, 0]), np.asarray(r, dtype=float), side="right") / d.shape[0]


def j_function(train, test, r, **kw):
    """``J(r) = (1 - G(r)) / (1 - F(r))``: G from the training set, F from the test points."""
    G = nn_distance_cdf(train, r, **kw)
    F = empty_space_cdf(train, test, r, **kw)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(F < 1, (1 - G) / (1 - F), np.nan)
