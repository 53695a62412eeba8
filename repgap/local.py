"""Local (per-point) intrinsic dimension from one neighbour pass.

Heterogeneous data mix regions of different dimension (a union of
manifolds, a data set whose classes live on different supports). A local
estimate asks the question of a global one in the neighbourhood of each
point. Here the neighbourhood of point ``i`` is ``N_i``: ``i`` and its
``n_neighbors - 1`` nearest other points, and the local estimate is the
global estimator's likelihood (or average) restricted to the statistics of
the points of ``N_i``:

* TwoNN (Facco et al. 2017): ``d_i = (M_i - 1) / sum_{j in N_i} log mu_j``
  with ``mu_j = R_2(j) / R_1(j)`` and ``M_i`` the ratios in ``N_i`` (ties
  left out): the unbiased Pareto estimate on the neighbourhood, its interval
  from ``2 d S ~ chi2(2 M)`` at the effective size the dependence between
  ratios leaves (:func:`repgap.estimators.ratio_dependence`, measured on the
  whole data set).
* MLE (Levina & Bickel 2005): the inverses ``1/m_k(j)`` averaged over
  ``N_i`` (MacKay & Ghahramani's averaging of inverses), inverted, and
  averaged over ``k`` in ``[k1, k2]``; a delta-method interval from the
  neighbourhood's covariance of the inverses across k.
* GRIDE (Denti et al. 2022): the likelihood of ``R_2n1(j) / R_n1(j)``
  summed over ``N_i`` and maximised (safeguarded Newton, vectorised over
  points); the interval from its observed information. At ``n1 = 1`` it is
  TwoNN's local estimate.

Every statistic of a point ``j`` uses ``j``'s own nearest neighbours in the
whole data set (not only those inside ``N_i``): one k-NN search with
``k = max(n_neighbors - 1, what the estimator needs)`` serves every point,
as in DADApy's local estimators rather than scikit-dimension's ``fit_pw``,
which refits on each neighbourhood alone. The intervals treat the
neighbourhood as a sample of the local law; neighbourhoods of nearby points
overlap, so the estimates of neighbouring points are correlated, and a
neighbourhood that straddles two regions of different dimension reports a
value in between (choose ``n_neighbors`` smaller than the regions).
Points left out of the ratios (duplicates kept with ``duplicates="keep"``)
still get the estimate of their neighbourhood when it holds at least three
usable ratios; NaN otherwise.
"""
import numpy as np
from scipy import stats

#: Points per block of the neighbourhood sums: bounds the (block, n_neighbors) temporaries.
_BLOCK = 1 << 14

#: The smallest number of usable statistics in a neighbourhood for an estimate.
MIN_LOCAL = 3


def neighbourhoods(indices, n_neighbors):
    """``(n, n_neighbors)`` row indices of each point's neighbourhood: itself, then its nearest others.

    Parameters
    ----------
    indices : ndarray (n, k)
        The k nearest other points of every point (self excluded), as in
        :class:`repgap.estimators.NeighbourStats`.
    n_neighbors : int
        Points per neighbourhood, the point itself included (at most k + 1).
    """
    n, k = indices.shape
    if n_neighbors - 1 > k:
        raise ValueError(f"n_neighbors={n_neighbors} needs {n_neighbors - 1} neighbours per point, "
                         f"{k} were computed")
    return np.concatenate([np.arange(n)[:, None], indices[:, : n_neighbors - 1]], axis=1)


def _blocks(n):
    for s in range(0, n, _BLOCK):
        yield slice(s, min(n, s + _BLOCK))


def _sums(values, used, nbhd):
    """``(S_i, M_i)``: the sum and count of the used ``values`` over each neighbourhood."""
    v = np.where(used, values, 0.0)
    S = np.empty(nbhd.shape[0])
    M = np.empty(nbhd.shape[0])
    for b in _blocks(nbhd.shape[0]):
        S[b] = v[nbhd[b]].sum(axis=1)
        M[b] = used[nbhd[b]].sum(axis=1)
    return S, M


def local_twonn(R, valid, nbhd, *, confidence=0.95, inflation=1.0):
    """Local TwoNN estimates and intervals.

    Parameters
    ----------
    R : ndarray (n, >= 2)
        Sorted neighbour distances of every point (self excluded).
    valid : ndarray (n,) of bool
        Points whose ratios may be used (nearest neighbour not a duplicate).
    nbhd : ndarray (n, m)
        :func:`neighbourhoods`.
    confidence : float
    inflation : float
        The variance inflation of the sum of log-ratios
        (:func:`repgap.estimators.ratio_dependence`).

    Returns
    -------
    d : ndarray (n,)
    ci : ndarray (n, 2)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(R[:, 1] / R[:, 0])
    used = valid & (a > 0) & np.isfinite(a)
    return _pareto_local(a, used, nbhd, confidence, inflation)


def _pareto_local(a, used, nbhd, confidence, inflation):
    from .estimators import _pareto_from_sums

    S, M = _sums(a, used, nbhd)
    ok = (M >= MIN_LOCAL) & (S > 0)
    d = np.full(S.shape, np.nan)
    ci = np.full((S.size, 2), np.nan)
    d[ok], ci[ok, 0], ci[ok, 1] = _pareto_from_sums(S[ok], M[ok], confidence, inflation)
    return d, ci


def local_mle(R, valid, nbhd, k1, k2, *, confidence=0.95):
    """Local Levina-Bickel estimates (averaged inverses over each neighbourhood) and delta-method intervals.

    Parameters
    ----------
    R : ndarray (n, >= k2)
        Sorted neighbour distances (self excluded).
    valid, nbhd : as in :func:`local_twonn`
    k1, k2 : int
        The range of k averaged over, as in :class:`repgap.estimators.MLE`.
    confidence : float

    Returns
    -------
    d : ndarray (n,)
    ci : ndarray (n, 2)
    """
    from .estimators import _levina_bickel_inverses

    with np.errstate(divide="ignore", invalid="ignore"):
        inv = _levina_bickel_inverses(R[:, :k2])[:, k1 - 2 : k2 - 1]  # (n, K): k in [k1, k2]
    used = valid & np.all(np.isfinite(inv), axis=1)
    inv = np.where(used[:, None], inv, 0.0)
    n, K = inv.shape
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    d = np.full(n, np.nan)
    ci = np.full((n, 2), np.nan)
    for b in _blocks(n):
        V = inv[nbhd[b]]  # (B, m, K)
        W = used[nbhd[b]]  # (B, m)
        M = W.sum(axis=1)
        ok = M >= MIN_LOCAL
        with np.errstate(divide="ignore", invalid="ignore"):
            mbar = V.sum(axis=1) / M[:, None]  # (B, K)
            ok &= np.all(mbar > 0, axis=1)
            db = np.mean(1.0 / mbar, axis=1)
            # the delta method for mean_k 1/mbar_k: gradient -1/(K mbar^2),
            # covariance of the neighbourhood's inverses across k
            E = np.where(W[:, :, None], V - mbar[:, None, :], 0.0)
            g = -1.0 / (K * mbar**2)
            proj = np.einsum("bmk,bk->bm", E, g)
            var = np.sum(proj**2, axis=1) / np.maximum(M - 1, 1) / M
        se = np.sqrt(np.maximum(var, 0.0))
        idx = np.arange(b.start, b.stop)[ok]
        d[idx] = db[ok]
        ci[idx, 0] = db[ok] - z * se[ok]
        ci[idx, 1] = db[ok] + z * se[ok]
    return d, ci


def local_gride(R, valid, nbhd, n1, *, confidence=0.95, inflation=1.0, iterations=60):
    """Local GRIDE estimates at scale ``n1`` (``n2 = 2 n1``) and their intervals.

    The log-likelihood of ``mu = R_n2 / R_n1`` (Denti et al. 2022, eq. 4),
    summed over a neighbourhood, has the score
    ``M / d + (n2 - n1 - 1) sum a / (1 - exp(-a d)) - (n2 - 1) sum a``
    (``a = log mu``), strictly decreasing in d: its root, found by Newton's
    method kept inside a bisection bracket, is the unique maximum.

    Parameters
    ----------
    R : ndarray (n, >= 2 n1)
    valid, nbhd : as in :func:`local_twonn`
    n1 : int
    confidence : float
    inflation : float
        Used at ``n1 = 1`` only, where the estimate is TwoNN's.
    iterations : int
        The most Newton/bisection steps (the bracket halves at least every
        other step; 60 reach the float64 resolution of d).

    Returns
    -------
    d : ndarray (n,)
    ci : ndarray (n, 2)
    """
    n2 = 2 * n1
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(R[:, n2 - 1] / R[:, n1 - 1])
    used = valid & (a > 0) & np.isfinite(a)
    if n1 == 1:
        return _pareto_local(a, used, nbhd, confidence, inflation)
    a = np.where(used, a, 0.0)
    n = nbhd.shape[0]
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    d = np.full(n, np.nan)
    ci = np.full((n, 2), np.nan)
    c1, c2 = n2 - n1 - 1, n2 - 1
    for b in _blocks(n):
        A = a[nbhd[b]]
        W = used[nbhd[b]]
        M = W.sum(axis=1)
        SA = A.sum(axis=1)
        ok = (M >= MIN_LOCAL) & (SA > 0)
        A, W, M, SA = A[ok], W[ok], M[ok], SA[ok]

        def score_info(x):
            ax = A * x[:, None]
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                f = np.where(W, A / -np.expm1(-ax), 0.0)
                h = np.where(W, (A / (2.0 * np.sinh(0.5 * ax))) ** 2, 0.0)
            return M / x + c1 * f.sum(axis=1) - c2 * SA, M / x**2 + c1 * h.sum(axis=1)

        lo = np.full(M.shape, 1e-3)
        hi = np.full(M.shape, 1e4)
        x = np.clip((M - 1) / (n1 * SA), lo, hi)  # a Pareto-like start
        for _ in range(iterations):
            s, info = score_info(x)
            lo = np.where(s > 0, x, lo)
            hi = np.where(s > 0, hi, x)
            step = x + s / info
            mid = np.sqrt(lo * hi)
            x_new = np.where((step > lo) & (step < hi) & np.isfinite(step), step, mid)
            if np.all(np.abs(x_new - x) <= 1e-13 * x):
                x = x_new
                break
            x = x_new
        _, info = score_info(x)
        se = 1.0 / np.sqrt(info)
        idx = np.arange(b.start, b.stop)[ok]
        d[idx] = x
        ci[idx, 0] = x - z * se
        ci[idx, 1] = x + z * se
    return d, ci


def summarize(values):
    """Quantiles of per-point estimates (NaN left out), for report.json and the table."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0}
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"n": int(v.size), "mean": float(v.mean()), "p05": float(q[0]), "p25": float(q[1]),
            "median": float(q[2]), "p75": float(q[3]), "p95": float(q[4])}


def _check_n_neighbors(n_neighbors):
    from ._validation import check_int

    return check_int(n_neighbors, "n_neighbors", low=MIN_LOCAL)


__all__ = ["neighbourhoods", "local_twonn", "local_mle", "local_gride", "summarize", "MIN_LOCAL"]
