"""Is the storage precision of the data fine enough for its neighbour distances?

A value stored in floating point is known to within half the spacing of
the format at its magnitude (``np.spacing``). Data stored far from the
origin in float32 lose most of their digits: at an offset of 1e4 the
spacing is 2^-10 ~ 1e-3, and two points that differ below that are stored
as the same point. The rounding of the two ends of a coordinate
difference adds, on average, ``s^2 / 6`` to its square (each end uniform
within +-s/2), so the squared distances that every estimator here uses
carry a floor of ``rho^2 = sum_j s_j^2 / 6`` over the coordinates. When
that floor is not small against the typical squared nearest-neighbour
distance, the gap (and every log-ratio) is biased: a 3-cube embedded in
R^50 at offset 1e4 in float32 reads d = 3.16 instead of 3.00, and has
exact duplicates. No computation can undo it after storage: the fix is to
centre the data before storing them, or to store them in float64.
"""
import math
import warnings

import numpy as np

#: The largest ratio of the squared storage resolution ``rho^2`` to the
#: median squared nearest-neighbour distance that passes without a warning:
#: at 1e-3 the rounding moves the gap by about 0.1 % at the smallest scale
#: measured, below the statistical error of any curve repgap fits.
STORAGE_PRECISION_TOL = 1e-3


class StoragePrecisionWarning(RuntimeWarning):
    """The data's storage precision is coarse against their neighbour distances."""


def storage_resolution(X):
    """``rho = sqrt(sum_j s_j^2 / 6)``: the RMS rounding of a distance between two stored rows.

    ``s_j`` is ``np.spacing`` of the stored dtype at the largest magnitude
    of coordinate j. Returns 0 for integer data (exact).
    """
    dtype = getattr(X, "dtype", None)
    if dtype is None or not np.issubdtype(np.dtype(str(dtype).replace("torch.", "")), np.floating):
        return 0.0
    dtype = np.dtype(str(dtype).replace("torch.", ""))
    if hasattr(X, "compute"):  # dask: one pass for the column maxima
        mag = np.asarray(abs(X).max(axis=0).compute(), dtype=np.float64)
    elif hasattr(X, "detach"):  # torch
        mag = X.detach().abs().amax(dim=0).double().cpu().numpy()
    else:
        mag = np.max(np.abs(np.asarray(X)), axis=0).astype(np.float64)
    s = np.spacing(mag.astype(dtype)).astype(np.float64)
    return float(math.sqrt(np.sum(s * s) / 6.0))


def check_storage_precision(X, nn_distances, what="the data", stacklevel=3):
    """Compare the storage resolution with the typical nearest-neighbour distance.

    Parameters
    ----------
    X : array (n, D)
        The data as stored (before any centring).
    nn_distances : array
        Nearest-neighbour distances of the points that matter (their median
        is the typical scale of the estimate).
    what : str
        Named in the warning.

    Returns
    -------
    dict
        ``resolution`` (rho), ``median_nn_distance``, ``ratio`` (rho^2 /
        median^2), ``limited`` (ratio above :data:`STORAGE_PRECISION_TOL`),
        ``dtype``. A :class:`StoragePrecisionWarning` says how to fix it
        when ``limited``.
    """
    rho = storage_resolution(X)
    d = np.asarray(nn_distances, dtype=np.float64).ravel()
    # exact duplicates (distance 0) are counted and handled elsewhere; the
    # scale that the rounding must be small against is that of the others
    d = d[np.isfinite(d) & (d > 0)]
    med = float(np.median(d)) if d.size else float("nan")
    if rho == 0.0:
        ratio = 0.0
    elif med > 0:
        ratio = rho * rho / (med * med)
    else:
        ratio = float("nan")  # no positive distance: nothing to compare with
    limited = bool(ratio > STORAGE_PRECISION_TOL)  # False for NaN
    dtype = str(getattr(X, "dtype", "unknown")).replace("torch.", "")
    if limited:
        warnings.warn(
            f"{what}: the storage precision of the data ({dtype}; a distance between two stored rows is rounded by "
            f"about {rho:.3g}) is not small against the median nearest-neighbour distance {med:.3g} "
            f"(squared ratio {ratio:.2g} > {STORAGE_PRECISION_TOL:g}): the distances, and the dimension, are biased "
            "and rows may coincide. Centre the data (subtract the mean) before storing them, or store them as "
            "float64", StoragePrecisionWarning, stacklevel=stacklevel)
    return {"resolution": rho, "median_nn_distance": med, "ratio": ratio, "limited": limited, "dtype": dtype}
