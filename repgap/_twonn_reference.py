"""TwoNN's reference on uniform d-balls, from a shipped table.

The calibrated TwoNN (``TwoNN(calibration="ball")``) reports the d whose
*reference* estimate ``g_n(d)`` -- the mean TwoNN-MLE on n points uniform in
the unit d-ball -- equals the estimate observed on the data. This module
gives ``g_n(d)`` from a table simulated once
(``benchmarks/make_twonn_reference.py`` -> ``repgap/_twonn_reference_table.py``:
19 sizes n = 20 .. 20000, 37 dimensions d = 1 .. 256, each cell the mean of
many samples, with its standard error) instead of simulating a few samples
at call time. That makes the reference

* deterministic and fast: no simulation, no dependence on the k-NN
  backend or the thread count, the same answer everywhere;
* smooth and monotone in d: each table row is made non-decreasing in d
  (isotonic regression of log g on log d, weighted by the inverse variance;
  the raw rows are monotone up to their noise) and interpolated by a PCHIP
  of log g in log d, which preserves monotonicity; rows are combined
  linearly in log n, a convex combination of increasing functions being
  increasing. So ``g_n(d) = t`` has exactly one root, the calibration
  (:func:`calibrate_twonn_table`) is a continuous, increasing function of
  the observed estimate, and it does not jump between integer d as the
  few-sample simulation did (at n = 100 that one gave 7.12, 8.53, 7.22 at
  d = 8, 9, 10);
* accompanied by its uncertainty: the standard error of the tabulated mean,
  propagated to the calibrated dimension.
"""
import functools
import math

import numpy as np

from . import _twonn_reference_table as _table

#: The table's sizes and dimensions.
N_GRID = tuple(int(v) for v in _table.N_GRID)
D_GRID = tuple(int(v) for v in _table.D_GRID)
N_MIN, N_MAX = N_GRID[0], N_GRID[-1]
D_MIN, D_MAX = D_GRID[0], D_GRID[-1]

# minimum slope of log g in log d imposed by the isotonic step: only acts on
# rows the noise made non-monotone, and makes the fit strictly increasing
_MIN_LOG_SLOPE = 1e-6


def _isotonic(y, w):
    """Weighted least-squares non-decreasing fit to y (pool adjacent violators)."""
    vals, wts, sizes = [], [], []
    for yi, wi in zip(np.asarray(y, dtype=np.float64), np.asarray(w, dtype=np.float64)):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v, wt, s = vals.pop(), wts.pop(), sizes.pop()
            vals[-1] = (vals[-1] * wts[-1] + v * wt) / (wts[-1] + wt)
            wts[-1] += wt
            sizes[-1] += s
    return np.repeat(vals, sizes)


class _Row:
    """One table row (fixed n): log g and the relative standard error as functions of log d."""

    def __init__(self, mean, se):
        from scipy.interpolate import PchipInterpolator

        mean = np.asarray(mean, dtype=np.float64)
        se = np.asarray(se, dtype=np.float64)
        self.x = np.log(np.asarray(D_GRID, dtype=np.float64))
        self.raw = np.log(mean)
        rel = se / mean  # the standard error of log(mean)
        tilt = _MIN_LOG_SLOPE * self.x
        self.log_mean = _isotonic(self.raw - tilt, 1.0 / rel ** 2) + tilt
        self.mean = np.exp(self.log_mean)
        self.rel_se = rel
        self.spline = PchipInterpolator(self.x, self.log_mean, extrapolate=False)
        self.slope = self.spline.derivative()

    def log_g(self, u):
        """log g and d log g / d log d at u = log d, for d inside the grid."""
        return self.spline(u), self.slope(u)

    def rel(self, u):
        return np.interp(u, self.x, self.rel_se)


@functools.lru_cache(maxsize=None)
def _rows():
    return tuple(_Row(m, s) for m, s in zip(_table.MEAN, _table.SE))


def _weights(n):
    """Rows i, i + 1 and weight w of row i + 1 for size n (linear in log n)."""
    n = float(n)
    if not math.isfinite(n) or n < N_MIN:
        raise ValueError(f"the TwoNN reference needs n >= {N_MIN} points (the smallest tabulated size), got {n:g}")
    n = min(n, N_MAX)
    i = int(np.searchsorted(N_GRID, n, side="right")) - 1
    if i >= len(N_GRID) - 1:
        return len(N_GRID) - 2, 1.0
    w = (math.log(n) - math.log(N_GRID[i])) / (math.log(N_GRID[i + 1]) - math.log(N_GRID[i]))
    return i, w


def _evaluate(n, d):
    """log g, d log g / d log d and the relative standard error at (n, d), d an array in [D_MIN, D_MAX]."""
    i, w = _weights(n)
    rows = _rows()
    u = np.log(d)
    a, da = rows[i].log_g(u)
    b, db = rows[i + 1].log_g(u)
    r = (1 - w) * rows[i].rel(u) + w * rows[i + 1].rel(u)
    return (1 - w) * a + w * b, (1 - w) * da + w * db, r


def _check_d(d):
    d = np.asarray(d, dtype=np.float64)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError("d must be positive and finite")
    return d


def _reference(n, d):
    """(g, se_g, g') at size n for an array of dimensions d > 0."""
    d = _check_d(d)
    ends, dends, rends = _evaluate(n, np.array([float(D_MIN), float(D_MAX)]))
    g_lo, g_hi = math.exp(ends[0]), math.exp(ends[1])
    inside = (d >= D_MIN) & (d <= D_MAX)
    dc = np.clip(d, D_MIN, D_MAX)
    lg, slope, rel = _evaluate(n, dc)
    g = np.exp(lg)
    gp = g * slope / dc
    # proportional outside the grid: g(d) = d g(D_MIN) / D_MIN, d g(D_MAX) / D_MAX
    low, high = d < D_MIN, d > D_MAX
    g = np.where(low, d * g_lo / D_MIN, np.where(high, d * g_hi / D_MAX, g))
    gp = np.where(low, g_lo / D_MIN, np.where(high, g_hi / D_MAX, gp))
    rel = np.where(inside, rel, np.where(low, rends[0], rends[1]))
    return g, g * rel, gp


def reference_twonn_table(n, d):
    """Mean TwoNN estimate on n points uniform in the unit d-ball, and its standard error.

    Interpolated in a table simulated once (``benchmarks/make_twonn_reference.py``:
    the unbiased TwoNN-MLE ``(N - 1) / sum log(R2/R1)``, averaged over
    about 5e5 / n samples per cell, relative standard error about 0.2 %),
    instead of simulated at call time: deterministic, fast, and -- unlike
    a mean over a few samples -- smooth and strictly increasing in d, so
    that the calibration has one well-defined, continuous answer.

    Parameters
    ----------
    n : int or float
        Sample size, at least 20 (the smallest tabulated size: TwoNN needs
        enough points for its estimate to be meaningful). Between tabulated
        sizes the rows' log g are combined linearly in log n. Above 20000
        (the largest tabulated size) the n = 20000 row is used: the
        calibrated TwoNN subsamples to ``calibration_size`` = 20000 points
        by default, so larger n only arises with a larger
        ``calibration_size``; there the reference is that of 20000 points,
        whose bias is somewhat larger than at n, so the calibration
        over-corrects slightly.
    d : float or array-like
        Dimension(s) > 0 (not necessarily integer). Inside [1, 256]: a PCHIP
        of log g in log d through the table row, made monotone by isotonic
        regression first. Below 1 and above 256: proportional extrapolation,
        ``g(d) = d g(1)`` and ``g(d) = d g(256) / 256``.

    Returns
    -------
    mean, se : float, or arrays shaped like d
        The reference estimate g_n(d) and the standard error of the
        tabulated mean (its relative value interpolated linearly in log d
        and log n; proportional outside the grid): the uncertainty of the
        reference itself, not the sampling error of an estimate on data.

    Raises
    ------
    ValueError
        If n < 20 or n is not finite, or d is not positive and finite.
    """
    g, se, _ = _reference(n, d)
    if np.ndim(d) == 0:
        return float(g), float(se)
    return g, se


def calibrate_twonn_table(t, n):
    """The dimension d whose reference TwoNN estimate at size n equals t, with its standard error.

    Solves ``g_n(d) = t`` for the interpolant of :func:`reference_twonn_table`
    (Brent's method on log g vs log d inside [1, 256]; the proportional
    extrapolation below 1 and above 256 is inverted exactly). Because g_n
    is continuous and strictly increasing, the root is unique and the
    calibrated dimension is continuous and increasing in t.

    Parameters
    ----------
    t : float
        The observed TwoNN estimate. Non-finite or non-positive values are
        returned unchanged (with a NaN standard error), as
        :func:`repgap.estimators.calibrate_twonn` does.
    n : int or float
        The number of points it was computed on (see
        :func:`reference_twonn_table`: at least 20; above 20000 the
        n = 20000 row).

    Returns
    -------
    d : float
        The calibrated dimension.
    se_d : float
        The reference's standard error propagated to d,
        ``se_g(d) / g'(d)``: how much d would move if the table were
        re-simulated (about 0.2 % of g, amplified where g is flat in d, i.e.
        at small n and large d). It does not include the sampling error of
        t itself (TwoNN's own interval, calibrated end by end, does).
    """
    from scipy.optimize import brentq

    t = float(t)
    if not math.isfinite(t) or t <= 0:
        _weights(n)
        return t, float("nan")
    ends, _, _ = _evaluate(n, np.array([float(D_MIN), float(D_MAX)]))
    lt = math.log(t)
    if lt <= ends[0]:
        d = D_MIN * t / math.exp(ends[0])
    elif lt >= ends[1]:
        d = D_MAX * t / math.exp(ends[1])
    else:
        f = lambda u: float(_evaluate(n, np.array([math.exp(u)]))[0][0]) - lt  # noqa: E731
        d = math.exp(brentq(f, math.log(D_MIN), math.log(D_MAX), xtol=1e-14, rtol=4 * np.finfo(float).eps))
    _, se, gp = _reference(n, np.array([d]))
    return float(d), float(se[0] / gp[0])
