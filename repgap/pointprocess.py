"""Point-process summaries from distances: pair counts, G, F and J functions.

* ``pair_distance_counts``: the number of pairs (within one set, or between
  two) in distance bins, computed in tiles so that no pair matrix exists. It
  gives the correlation integral (Grassberger & Procaccia 1983) and Ripley's
  K and L functions.
* ``nn_distance_cdf`` (G), ``empty_space_cdf`` (F) and ``j_function``
  ``J = (1 - G) / (1 - F)`` (van Lieshout & Baddeley 1996): for a Poisson
  process J = 1; clustering gives J < 1, regularity J > 1.

The pair histogram dispatches to the backends like :func:`repgap.knn`: a
compiled kernel fused with GEMM tiles, and numpy (the reference) and torch
kernels with the same private signature.
"""
import numpy as np

from ._backends import kernels, resolve_backend
from ._progress import Progress, monotone_reporter
from ._threads import resolve_n_jobs
from ._search.plan import _SERIAL_WORK
from .neighbors import knn
from ._validation import check_array, check_pair, check_real, real_values


def _check_search(backend, n_jobs, progress=None):
    from .law import _check_backend, _check_n_jobs, _check_progress

    _check_backend(backend)
    _check_n_jobs(n_jobs)
    _check_progress(progress)


def _check_radii(r, name="r", positive=False):
    """Radii: a finite real number or a 1-D sequence of them (positive when asked)."""
    allowed = f"a finite{' positive' if positive else ''} number or a 1-D sequence of them"
    a = real_values(r, name, allowed)
    if a.ndim > 1 or np.any(~np.isfinite(a)) or (positive and np.any(a <= 0)):
        raise ValueError(f"{name} must be {allowed}, got {r!r}")
    return a


def pair_distance_counts(X, Y=None, *, edges, backend=None, n_jobs=None, progress=None):
    """Counts of pairs with distance in ``[edges[i], edges[i+1])``.

    No pair matrix is formed: the compiled kernel fuses the binning with
    GEMM tiles (``csrc/repgap_pairs.hpp``), the numpy and torch kernels work
    on float64 tiles. On every backend the counts are those of the exact
    float64 distances: pairs within the expansion's rounding-error bound of
    an edge are recomputed as differences (docs/theory.md, section 6).

    Parameters
    ----------
    X : array (n, D)
    Y : array (m, D), optional
        When given, the pairs (x, y) between the sets; otherwise the unordered
        pairs within X (each once, no self pairs).
    edges : increasing array of bin edges (may start at 0 and end at inf)
    backend, n_jobs, progress
        As in :func:`repgap.knn`.

    Returns
    -------
    counts : int64 array of length ``len(edges) - 1``

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    >>> pair_distance_counts(X, edges=[0, 5, 10, np.inf]).tolist()
    [0, 2, 1]
    """
    try:
        e = np.asarray(edges)
    except Exception:  # noqa: BLE001
        e = np.asarray(None, dtype=object)
    if e.dtype.kind not in "iuf":
        raise TypeError(f"edges must be an increasing 1-D array of non-negative numbers (at least 2), got {edges!r}")
    edges = e.astype(float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.isnan(edges)) or np.any(np.diff(edges) <= 0) or edges[0] < 0:
        raise ValueError(f"edges must be an increasing 1-D array of non-negative numbers (at least 2), got {e!r}")
    _check_search(backend, n_jobs, progress)
    if Y is None:
        X = check_array(X, "X")
    else:
        Y, X = check_pair(Y, X, "Y", "X")
    name = resolve_backend(backend)
    n, m = X.shape[0], (X.shape[0] if Y is None else Y.shape[0])
    total = n * (n - 1) // 2 if Y is None else n * m
    # small problems on the calling thread, as in repgap._search.plan.knn_prefix
    threads = 1 if total * X.shape[1] < _SERIAL_WORK else resolve_n_jobs(n_jobs)
    with Progress(total, "pair distances", progress) as bar:
        return kernels(name).pair_counts(X, Y, edges, n_threads=threads, progress=monotone_reporter(bar, total))


def correlation_integral(X, r, **kw):
    """``C(r)``: the fraction of the pairs of X closer than each r
    (Grassberger & Procaccia 1983), for radii in any order (one pass)."""
    r = _check_radii(r, positive=True)
    _check_search(kw.get("backend"), kw.get("n_jobs"), kw.get("progress"))
    n = check_array(X, "X").shape[0]
    if n < 2:
        raise ValueError("the correlation integral needs at least 2 points")
    ru = np.unique(r)
    edges = np.concatenate([[0.0], ru, [np.inf]])
    counts = pair_distance_counts(X, edges=edges, **kw)
    C = np.cumsum(counts[:-1]) / (n * (n - 1) / 2)
    return C[np.searchsorted(ru, r)]


def nn_distance_cdf(X, r, *, backend=None, n_jobs=None):
    """G(r): the fraction of points of X whose nearest other point is within r."""
    r = _check_radii(r)
    _check_search(backend, n_jobs)
    X = check_array(X, "X")
    if X.shape[0] < 2:
        raise ValueError("G(r) needs at least 2 points in X")
    d, i = knn(X, X, k=2, backend=backend, n_jobs=n_jobs)
    self_first = i[:, 0] == np.arange(X.shape[0])
    nn = np.where(self_first, d[:, 1], d[:, 0])
    return np.searchsorted(np.sort(nn), r, side="right") / X.shape[0]


def empty_space_cdf(train, test, r, *, backend=None, n_jobs=None):
    """F(r): the fraction of test points whose nearest training point is within r."""
    r = _check_radii(r)
    _check_search(backend, n_jobs)
    d, _ = knn(test, train, k=1, backend=backend, n_jobs=n_jobs)
    return np.searchsorted(np.sort(d[:, 0]), r, side="right") / d.shape[0]


def j_function(train, test, r, **kw):
    """``J(r) = (1 - G(r)) / (1 - F(r))``: G from the training set, F from the test points.

    NaN where ``F(r) = 1`` (every test point has a training point within r:
    J is undefined there).
    """
    r = _check_radii(r)
    _check_search(kw.get("backend"), kw.get("n_jobs"))
    G = nn_distance_cdf(train, r, **kw)
    F = empty_space_cdf(train, test, r, **kw)
    with np.errstate(divide="ignore", invalid="ignore"):
        J = np.where(F < 1, (1 - G) / (1 - F), np.nan)
    undefined = int(np.sum(~(F < 1)))
    if undefined:
        import warnings

        warnings.warn(f"j_function: J(r) is undefined (NaN) at {undefined} of the {np.size(F)} radii, where every "
                      "test point has a training point within r (F(r) = 1); use smaller radii", RuntimeWarning,
                      stacklevel=2)
    return J


def ripley_k(X, r, *, volume=1.0, **kw):
    """Ripley's K function ``K(r) = V / (n (n - 1)) * #{ordered pairs closer than r}``.

    For a Poisson process in R^d, ``K(r) = V_d r^d`` (the volume of the
    ball); no edge correction is applied (Ripley 1976; Baddeley, Rubak &
    Turner 2015, ch. 7), so use it at radii small next to the window.

    Parameters
    ----------
    X : array (n, D)
    r : increasing radii
    volume : float
        The volume of the observation window.
    """
    volume = check_real(volume, "volume", 0.0, low_open=True)
    n = check_array(X, "X").shape[0]
    if n < 2:
        raise ValueError("Ripley's K needs at least 2 points")
    return volume * correlation_integral(X, r, **kw)


def ripley_l(X, r, *, volume=1.0, dim=None, **kw):
    """Besag's ``L(r) = (K(r) / V_d)^(1/d)``, equal to r for a Poisson process.

    ``dim`` defaults to the number of columns of X.
    """
    from .law import unit_ball_volume

    d = None if dim is None else check_real(dim, "dim", 0.0, low_open=True)
    check_real(volume, "volume", 0.0, low_open=True)
    Xc = check_array(X, "X")
    d = Xc.shape[1] if d is None else d
    return (ripley_k(Xc, r, volume=volume, **kw) / unit_ball_volume(d)) ** (1.0 / d)
