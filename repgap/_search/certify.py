"""Error bounds of the candidate search, and the per-query certificate.

A candidate search returns, for each query and prefix, ``kk`` rows chosen
by *search values* ``a`` (computed in the search precision, possibly on a
centred, rescaled or float32 copy of the data) and ordered by recomputed
float64 values ``b``. The true squared distance ``t`` of a row that was not
returned is bounded below from the largest returned ``b`` alone, because
every row outside the kernel's candidate set has ``a`` at least that of
every row inside it (docs/theory.md, section 6):

    t'(y) >= ((b_max / (1 + rho64)) (1 - rho) - 2 A) / (1 + rho)
    sqrt t(y) >= sqrt t'(y) - eps

where ``t'`` is the distance between the search copies, ``A + rho t'``
bounds ``|a - t'|`` (``A`` for the expansion ``|q|^2 + |x|^2 - 2 q.x`` on
centred data, ``rho`` for differences-first arithmetic), ``eps`` bounds
the rounding of the copies, and ``rho64 = 2 (D + 4) 2**-53`` the float64
recomputation. If that lower bound exceeds the k-th recomputed distance,
no row outside the candidates can beat the k-th or tie it: the query is
certified. Queries that are not are searched again with more candidates
(:mod:`repgap._search.engine`).

The bound for the expansion follows the classical analysis of inner
products, ``|fl(x.y) - x.y| <= gamma_D |x| |y|`` with ``gamma_D = D u /
(1 - D u)`` (Higham 2002, section 3.1), applied to ``|q|^2``, ``|x|^2`` and
``q.x`` in any order of summation (BLAS, SIMD lanes, tiles), plus the
rounding of the centred coordinates; ``SAFETY`` doubles it.
"""
import math
from dataclasses import dataclass

import numpy as np

U64 = 2.0**-53
U32 = 2.0**-24
#: margin on every bound: certifying less often only costs a re-search
SAFETY = 1.0


def unit_roundoff(dtype):
    return U32 if np.dtype(dtype).itemsize == 4 else U64


def rho64(D):
    """Relative error of a float64 squared distance of D coordinates (either order)."""
    return 2.0 * (D + 4) * U64


@dataclass
class SearchModel:
    """What a candidate search's values may be wrong by.

    Attributes
    ----------
    D : int
    u : float
        Unit roundoff of the search arithmetic.
    expanded : bool
        The search values come from the expansion (absolute error, in terms
        of the centred norms), else from differences (relative error).
    copy_u : float
        Relative rounding of the search copies' coordinates (0: the stored rows).
    b_on_copies : bool
        The returned ``b`` are distances between the copies (else: between
        the stored rows).
    unit_shift : int
        Search values are in units of ``4**unit_shift`` of the canonical units.
    qnorm : ndarray (m,)
        Norm of each query copy about the kernel's centre (plus the centre's norm).
    rmax : float
        The largest norm of a reference copy about that centre (plus the centre's norm).
    tiny : float
        Absolute floor for flushed subnormals, in search units.
    """

    D: int
    u: float
    expanded: bool
    copy_u: float
    b_on_copies: bool
    unit_shift: int
    qnorm: np.ndarray
    rmax: float
    tiny: float

    def lower_bound(self, bmax, qsel):
        """Lower bound on the canonical squared distance of every row that was
        not returned, per query (``bmax``: the largest returned ``b``, in
        search units; ``qsel``: the queries' positions)."""
        D = self.D
        r64 = rho64(D)
        nq = self.qnorm[qsel]
        if self.expanded:
            A = SAFETY * 2.0 * (D + 8) * self.u * (nq * nq + self.rmax * self.rmax) + self.tiny
            rho = 0.0
        else:
            A = self.tiny
            rho = SAFETY * 2.0 * (D + 4) * self.u
        eps = SAFETY * self.copy_u * (nq + self.rmax) + math.sqrt(D) * self.tiny
        with np.errstate(invalid="ignore", over="ignore"):
            tb = bmax / (1.0 + r64)
            if not self.b_on_copies and self.copy_u:
                tb = np.maximum(np.sqrt(tb) - eps, 0.0) ** 2  # b between stored rows -> copies
            tp = (tb * (1.0 - rho) - 2.0 * A) / (1.0 + rho)
            t = np.maximum(np.sqrt(np.maximum(tp, 0.0)) - eps, 0.0) ** 2 if self.copy_u else np.maximum(tp, 0.0)
            t = t * (1.0 - r64)
        t = np.where(np.isnan(t), 0.0, t)
        return np.ldexp(t, 2 * self.unit_shift) if self.unit_shift else t


def column_mean(X):
    """The float64 mean of the columns of X, X read once.

    The centre of the expansion's copies: any deterministic centre near the
    data's mean serves (the error model bounds norms about it, see
    :func:`norms_about`), so this is the cheapest accurate one: the
    compiled twin where the extension is loaded (1e5 x 16 float32: 0.4 ms),
    else :func:`column_mean_numpy` (1.2 ms; ``np.mean(X, axis=0,
    dtype=np.float64)`` takes 2.9 ms for its float64 temporaries).
    """
    from .._backends import _load_cython

    mod = _load_cython()
    if mod is not None and hasattr(mod, "column_mean") and X.dtype in (np.float32, np.float64) \
            and isinstance(X, np.ndarray):
        return mod.column_mean(X)
    return column_mean_numpy(X)


def column_mean_numpy(X):
    """:func:`column_mean` in numpy: einsum widens each value as it sums."""
    return np.einsum("ij->j", X, dtype=np.float64) / max(X.shape[0], 1)


def norms_about(X, centre):
    """Norms of the rows of X about ``centre`` (float64), plus ``|centre|``:
    an upper bound on the norm about any centre within ``|centre|`` of it
    (the kernels' own centring of the copies)."""
    rows = max(1, (4 << 20) // (8 * max(X.shape[1], 1)))
    out = np.empty(X.shape[0])
    for s in range(0, X.shape[0], rows):
        B = np.asarray(X[s : s + rows], dtype=np.float64) - centre
        out[s : s + rows] = np.sqrt(np.einsum("ij,ij->i", B, B))
    return out * (1.0 + 4.0 * (X.shape[1] + 2) * U64) + float(np.sqrt(centre @ centre))


# ----------------------------------------------------------------------------- range


def abs_max(*arrays):
    """The largest absolute value in the arrays (no temporaries of their size)."""
    m = 0.0
    for X in arrays:
        if X.size:
            m = max(m, abs(float(np.max(X))), abs(float(np.min(X))))
    return m


def safe_range(dtype, D):
    """(lo, hi): absolute values for which squared norms of D coordinates in
    ``dtype`` neither overflow nor lose their small differences to subnormals."""
    if np.dtype(dtype).itemsize == 4:
        return 2.0**-40, 2.0 ** (58 - math.log2(max(D, 1)) / 2)
    return 2.0**-400, 2.0 ** (500 - math.log2(max(D, 1)) / 2)


def scale_exponent(amax):
    """``e`` with ``amax * 2**-e`` in [0.5, 1): the exact rescaling of the copies."""
    if amax == 0.0 or not math.isfinite(amax):
        return 0
    return math.frexp(amax)[1]


def canonical_shift(dtype, amax, D):
    """The shift of the float64 recomputation: 0 unless the stored values would
    overflow or underflow when squared in float64."""
    if np.dtype(dtype).itemsize == 4:
        return 0  # float32 values squared in float64 are always representable
    lo, hi = safe_range(np.float64, D)
    if amax == 0.0 or lo <= amax <= hi:
        return 0
    return scale_exponent(amax)
