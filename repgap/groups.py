"""Symmetry groups acting on flattened samples, and orbit distances.

An equivariant model cannot tell ``x`` from ``g.x``: it sees the whole orbit
of each training point, so the Representation Gap and the intrinsic
dimension of a task are measured with the orbit distance

    d_G(x, y) = min_{g in G} ||x - g.y||

(Perera et al., arXiv:2605.21692). A cloud of m points in R^p is stored as
one row of length m * p, point after point: ``row.reshape(m, p)``.

Every group here gives

* ``distance2(x, y)``: the squared orbit distance (rows or batches of rows);
* ``align(x, y)``: the distance with the minimising element and ``g.y``;
* ``invariant(X)``: features with the lower-bound property
  ``||inv(x) - inv(y)|| <= d_G(x, y)``, used to filter candidates before the
  exact alignment (:mod:`repgap.orbit`);
* ``order`` (finite groups) and ``orbit_dimension`` (continuous groups), the
  quantities the law needs: a finite group acting freely multiplies n by its
  order, a continuous one lowers the dimension by its orbit dimension.

Closed forms: translations (centring), rotations of point clouds in 2-D and
3-D (Kabsch / Procrustes by SVD, with the determinant correction for proper
rotations; Kabsch 1976, Umeyama 1991), cyclic shifts (FFT cross-correlation),
permutations of identical particles (linear assignment; Kuhn 1955, as
implemented in scipy), sign flips and explicit finite groups (enumeration).
Products of those with a closed form (translations with rotations or with
permutations) are exact too; rotations with permutations are not: they use
alternating alignment from several starts and return an *upper bound*, with
the invariant lower bound beside it (:meth:`Group.bounds`).

Distances that decide results are recomputed as differences in float64 once
the minimising element is known (docs/theory.md, section 6).
"""
import functools
import itertools
import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._validation import _to_numpy, as_float64, check_bool, check_int

__all__ = [
    "Group", "Identity", "Translation", "Rotation", "CyclicShift", "Permutation", "SignFlip",
    "FiniteGroup", "Product", "Alignment", "check_group", "canonical_sum", "KERNEL_KINDS",
]


#: the kinds of :meth:`Group.kernel_spec`, as the compiled orbit kernel
#: numbers them (the enum of ``csrc/repgap_orbit.hpp``; a test checks that
#: the compiled module agrees)
KERNEL_KINDS = {"identity": 0, "translation": 1, "rotation": 2, "permutation": 3, "cyclic": 4,
                "signflip": 5, "finite_perm": 6, "finite_mat": 7}


class Alignment(tuple):
    """``(distance2, element, aligned)``: the squared orbit distance, the
    minimising group element (its form depends on the group) and ``g.y``."""

    __slots__ = ()

    def __new__(cls, distance2, element, aligned):
        return tuple.__new__(cls, (float(distance2), element, aligned))

    distance2 = property(lambda self: self[0])
    element = property(lambda self: self[1])
    aligned = property(lambda self: self[2])

    def __repr__(self):
        return f"Alignment(distance2={self[0]:.6g}, element={self[1]!r})"


def _rows(x, y, D):
    """Broadcast x and y to (n, D) float64 arrays; returns (X, Y, scalar?)."""
    x = as_float64(x, "x")
    y = as_float64(y, "y")
    scalar = x.ndim == 1 and y.ndim == 1
    X, Y = np.atleast_2d(x), np.atleast_2d(y)
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"expected rows (1-D) or batches of rows (2-D), got shapes {x.shape} and {y.shape}")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"x and y have different lengths: {X.shape[1]} and {Y.shape[1]}")
    if D is not None and X.shape[1] != D:
        raise ValueError(f"this group acts on rows of length {D}, got {X.shape[1]}")
    if X.shape[0] != Y.shape[0]:
        if X.shape[0] == 1:
            X = np.broadcast_to(X, Y.shape)
        elif Y.shape[0] == 1:
            Y = np.broadcast_to(Y, X.shape)
        else:
            raise ValueError(f"x and y hold different numbers of rows: {X.shape[0]} and {Y.shape[0]}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise ValueError("x and y must be finite (NaN or inf found)")
    return X, Y, scalar


class Group:
    """Base class: a group acting on rows of R^D by isometries.

    Subclasses implement ``_align_rows(X, Y) -> (d2, elements, aligned)``
    for batches of rows, ``_invariant(X)`` and ``apply(element, y)``.

    Attributes
    ----------
    order : int or None
        The number of elements of a finite group (None for continuous groups).
    orbit_dimension : int
        The dimension of a generic orbit (0 for finite groups).
    exact : bool
        Whether ``distance2`` is the exact minimum (False: an upper bound).
    dim : int or None
        The row length the group acts on (None: any).
    """

    order = None
    orbit_dimension = 0
    exact = True
    dim = None
    invariant_is_isometry = False  # inv(x) - inv(y) has norm exactly d_G

    # -- public API ---------------------------------------------------------
    def distance2(self, x, y):
        """Squared orbit distance ``min_g ||x - g.y||^2``.

        Rows (1-D) give a float; batches (n, D) give an array of n values
        (row i of x against row i of y; a single row broadcasts).
        """
        X, Y, scalar = _rows(x, y, self.dim)
        d2, _, _ = self._align_rows(X, Y)
        return float(d2[0]) if scalar else d2

    def align(self, x, y):
        """The squared orbit distance of two rows, the minimising element and ``g.y``."""
        X, Y, scalar = _rows(x, y, self.dim)
        if not scalar:
            raise ValueError("align takes two rows (1-D arrays); use distance2 for batches")
        d2, g, gy = self._align_rows(X, Y)
        return Alignment(d2[0], g[0], gy[0])

    def invariant(self, X):
        """Invariant features with ``||inv(x) - inv(y)|| <= d_G(x, y)``, shape (n, F)."""
        X = as_float64(X, "X")
        if X.ndim not in (1, 2):
            raise ValueError(f"X must be a row (1-D) or a batch of rows (2-D), got shape {X.shape}")
        one = X.ndim == 1
        X = np.atleast_2d(X)
        if self.dim is not None and X.shape[1] != self.dim:
            raise ValueError(f"this group acts on rows of length {self.dim}, got {X.shape[1]}")
        F = self._invariant(X)
        return F[0] if one else F

    def bounds(self, x, y):
        """``(lower, upper)`` bounds on the squared orbit distance: the invariant
        lower bound and ``distance2`` (equal to it for isometric invariants)."""
        X, Y, scalar = _rows(x, y, self.dim)
        lo = np.sum((self._invariant(X) - self._invariant(Y)) ** 2, axis=1)
        up, _, _ = self._align_rows(X, Y)
        lo = np.minimum(lo, up)
        return (float(lo[0]), float(up[0])) if scalar else (lo, up)

    def apply(self, element, y):
        """``g.y`` for an element returned by :meth:`align`."""
        raise NotImplementedError

    def n_images(self, D):
        """The number of images :meth:`images` gives for rows of length D,
        or None when the group does not enumerate its elements (continuous
        groups, products, permutation groups too large to list)."""
        return None

    def images(self, Y):
        """Every image ``g.y`` of every row: shape (n, n_images(D), D), the
        order of the elements. How a finite group describes itself to the search:
        the k-NN modulo the group is then the plain k-NN against these
        images (:mod:`repgap.orbit`)."""
        raise NotImplementedError(f"{self!r} does not enumerate its elements")

    def kernel_spec(self, D):
        """How the group describes itself to the compiled orbit kernel
        (``csrc/repgap_orbit.hpp``) for rows of length D: a dict with a
        ``kind`` (a key of :data:`KERNEL_KINDS`) and its parameters, or None
        when the kernel has no closed form for it (numpy then aligns)."""
        return None

    #: the group acts by signed permutations of the coordinates, so the
    #: squared differences of x and g.y are, as a multiset, those of y and
    #: g^-1.x: :meth:`canonical_distance2` sums them in an order fixed by
    #: their values, and ``d_G(x, y) == d_G(y, x)`` to the last bit
    canonical = False

    def canonical_distance2(self, X, Y):
        """Squared orbit distances of row pairs, summed in a canonical order.

        For groups acting by signed coordinate permutations (``canonical``):
        the squared differences ``(x_i - (g.y)_i)^2`` of the best element are
        sorted and summed in four lanes (:func:`canonical_sum`), so that the
        result depends only on the multiset of the terms: it is the same for
        ``(x, y)`` and ``(y, x)``, on every backend. Batches (n, D) give (n,).
        """
        raise NotImplementedError(f"{self!r} does not act by coordinate permutations")

    def check_dim(self, D):
        if self.dim is not None and D != self.dim:
            raise ValueError(f"{self!r} acts on rows of length {self.dim}, but the data have {D} columns")
        self._check_dim(D)

    def _check_dim(self, D):
        pass

    def __repr__(self):
        return f"{type(self).__name__}()"

    # the default batched alignment: one row at a time
    def _align_rows(self, X, Y):
        out = [self._align_one(x, y) for x, y in zip(X, Y)]
        d2 = np.array([o[0] for o in out])
        return d2, [o[1] for o in out], np.array([o[2] for o in out]).reshape(X.shape)


def _arg(cls, check, value, name, **kw):
    """A constructor argument through ``check`` (check_int, check_bool), with
    the class named in the message: ``Translation: p must be ...``."""
    try:
        return check(value, name, **kw)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{cls}: {exc}") from None


def check_group(group):
    """None, a Group, or an error naming what was passed."""
    if group is None or isinstance(group, Group):
        return group
    raise TypeError(f"group must be a repgap.groups.Group (e.g. Rotation(3)) or None, got {group!r}")


def canonical_sum(sq):
    """The last axis of nonnegative float64 terms, sorted, summed in the four
    lanes of :func:`repgap._search.exact.sqdist_rows`: a function of the
    multiset of the terms alone."""
    from ._search.exact import _lanes

    return _lanes(np.sort(sq, axis=-1))


def _canonical_images(X, Y, perms, signs=None):
    """min over the images ``signs[g] * y[perms[g]]`` of the canonical sum of
    ``(x - g.y)^2`` per row pair (:func:`repgap._search.exact.canonical_images_min`:
    compiled where built, numpy otherwise, the same bits)."""
    from ._search.exact import canonical_images_min

    perms = np.asarray(perms, dtype=np.int64)
    if signs is None:
        signs = np.ones(perms.shape[0])
    return canonical_images_min(X, Y, perms, signs)


# ---------------------------------------------------------------------------
class Identity(Group):
    """The trivial group: the Euclidean distance."""

    order = 1
    invariant_is_isometry = True

    def kernel_spec(self, D):
        return {"kind": "identity"}

    def _align_rows(self, X, Y):
        return np.sum((X - Y) ** 2, axis=1), [None] * X.shape[0], np.array(Y, copy=True)

    def _invariant(self, X):
        return X

    def n_images(self, D):
        return 1

    def images(self, Y):
        return np.asarray(Y)[:, None, :]

    def apply(self, element, y):
        return as_float64(y, "y")


# ---------------------------------------------------------------------------
def _clouds(X, p):
    n, D = X.shape
    if D % p:
        raise ValueError(f"rows of length {D} are not clouds of points in R^{p} (length must be a multiple of {p})")
    return X.reshape(n, D // p, p)


class Translation(Group):
    """Translations of a cloud of points in R^p (all points moved together).

    Exact: both clouds are centred on their centroids. The centred
    coordinates are an isometric invariant. Orbit dimension p.
    """

    invariant_is_isometry = True

    def kernel_spec(self, D):
        return {"kind": "translation", "p": self.p}

    def __init__(self, p):
        self.p = _arg("Translation", check_int, p, "p (the dimension of the points)", low=1)
        self.orbit_dimension = self.p

    def __repr__(self):
        return f"Translation({self.p})"

    def _check_dim(self, D):
        if D % self.p:
            raise ValueError(f"{self!r}: rows of length {D} are not clouds of points in R^{self.p}")

    def centre(self, X):
        C = _clouds(as_float64(X, "X"), self.p)
        return C - C.mean(axis=1, keepdims=True)

    def _align_rows(self, X, Y):
        Cx, Cy = _clouds(X, self.p), _clouds(Y, self.p)
        t = Cx.mean(axis=1) - Cy.mean(axis=1)  # the translation applied to y
        gy = Cy + t[:, None, :]
        d2 = np.sum((Cx - Cx.mean(axis=1, keepdims=True) - (Cy - Cy.mean(axis=1, keepdims=True))) ** 2, axis=(1, 2))
        return d2, list(t), gy.reshape(X.shape)

    def _invariant(self, X):
        return self.centre(X).reshape(X.shape)

    def apply(self, element, y):
        return (_clouds(np.atleast_2d(as_float64(y, "y")), self.p) + element).reshape(np.shape(y))


# ---------------------------------------------------------------------------
def _kabsch(Cx, Cy, reflections):
    """Optimal orthogonal R (n, p, p) with R @ y_i closest to x_i, proper unless
    ``reflections``: SVD of M = sum_i x_i y_i^T (Kabsch 1976; Umeyama 1991)."""
    M = np.einsum("nij,nik->njk", Cx, Cy)  # sum_i x_i y_i^T, (n, p, p)
    U, _, Vt = np.linalg.svd(M)
    if not reflections:
        det = np.linalg.det(U @ Vt)
        U = U.copy()
        U[:, :, -1] *= np.where(det < 0, -1.0, 1.0)[:, None]
    return U @ Vt


def _pair_distances(C):
    """Distances between the points of each cloud, pairs (i < j) in row-major order."""
    n, m, _ = C.shape
    out = np.empty((n, m * (m - 1) // 2))
    col = 0
    for i in range(m - 1):
        diff = C[:, i + 1 :, :] - C[:, i : i + 1, :]
        out[:, col : col + m - 1 - i] = np.sqrt(np.einsum("njk,njk->nj", diff, diff))
        col += m - 1 - i
    return out


class Rotation(Group):
    """Rotations (about the origin) of a cloud of points in R^p, p = 2 or 3.

    Exact by Procrustes / Kabsch: the SVD of the 3 x 3 (2 x 2) correlation
    matrix, with the determinant correction that keeps proper rotations
    unless ``reflections=True`` (then the full orthogonal group O(p)).
    Combine with :class:`Translation` (``Product(Translation(3), Rotation(3))``)
    for rigid motions. Orbit dimension p (p - 1) / 2.

    The invariant: the distances of the points from the origin and the
    pairwise distances, scaled so that the lower-bound property holds
    (``| |x_i| - |y_i| | <= |x_i - R y_i|``, and each point enters
    ``m - 1`` pairwise distances).
    """

    def kernel_spec(self, D):
        return {"kind": "rotation", "p": self.p, "reflections": int(self.reflections), "centre": 0}

    def __init__(self, p, reflections=False):
        self.p = _arg("Rotation", check_int, p, "p (the dimension of the points, 2 or 3)")
        if self.p not in (2, 3):
            raise ValueError(f"Rotation supports point clouds in R^2 and R^3, got p={p!r}; use p=2 or p=3")
        self.reflections = _arg("Rotation", check_bool, reflections, "reflections")
        self.orbit_dimension = self.p * (self.p - 1) // 2

    def __repr__(self):
        return f"Rotation({self.p}, reflections={self.reflections})"

    def _check_dim(self, D):
        if D % self.p:
            raise ValueError(f"{self!r}: rows of length {D} are not clouds of points in R^{self.p}")

    def _align_clouds(self, Cx, Cy):
        R = _kabsch(Cx, Cy, self.reflections)
        gy = np.einsum("njk,nik->nij", R, Cy)
        d2 = np.sum((Cx - gy) ** 2, axis=(1, 2))
        return d2, R, gy

    def _align_rows(self, X, Y):
        d2, R, gy = self._align_clouds(_clouds(X, self.p), _clouds(Y, self.p))
        return d2, list(R), gy.reshape(X.shape)

    def _invariant(self, X):
        return _radial_pair_invariant(_clouds(X, self.p), sort=False).reshape(X.shape[0], -1)

    def apply(self, element, y):
        C = _clouds(np.atleast_2d(as_float64(y, "y")), self.p)
        return np.einsum("jk,nik->nij", element, C).reshape(np.shape(y))


def _radial_pair_invariant(C, sort):
    """[|c_i|, pd_ij / sqrt(2 (m - 1))] / sqrt(2): each half is 1-Lipschitz
    in the orbit distance, so the whole is. Sorted for permutation groups
    (sorting is 1-Lipschitz in the Euclidean norm)."""
    m = C.shape[1]
    r = np.linalg.norm(C, axis=2)
    parts = [r]
    if m > 1:
        pd = _pair_distances(C) / math.sqrt(2.0 * (m - 1))
        parts.append(pd)
    if sort:
        parts = [np.sort(a, axis=1) for a in parts]
    return np.concatenate(parts, axis=1) / math.sqrt(len(parts))


# ---------------------------------------------------------------------------
#: index maps of at most this many entries are kept between calls (8 MiB);
#: larger ones (a 1-D shift group of rows of 4096) are rebuilt per call
_SHIFT_CACHE_ENTRIES = 1 << 20


@functools.lru_cache(maxsize=32)
def _cached_shift_permutations(shape, reflections):
    # a search against the images asks for the maps on every call (64 rolls
    # of an 8 x 8 grid: 3 ms of a 0.19 s search)
    P = _build_shift_permutations(shape, reflections)
    P.flags.writeable = False
    return P


def _build_shift_permutations(shape, reflections):
    """(order, D) int64 index maps of the cyclic shifts (and reflections) of a grid."""
    D = math.prod(shape)
    grid = np.arange(D).reshape(shape)
    out = []
    for flip in (False, True) if reflections else (False,):
        S = np.roll(np.flip(grid, axis=-1), 1, axis=-1) if flip else grid   # CyclicShift._mirror
        for shift in np.ndindex(*shape):
            out.append(np.roll(S, shift, axis=tuple(range(len(shape)))).ravel())
    return np.asarray(out, dtype=np.int64)


class CyclicShift(Group):
    """Cyclic shifts of 1-D signals (``shape=None``: the whole row) or of 2-D
    images on the torus (``shape=(h, w)``).

    Exact: the cross-correlation for every shift at once by FFT, then the
    distances of the best shifts (all those within rounding of the best)
    recomputed as differences. ``reflections=True`` adds the mirror image:
    ``t -> -t`` for signals, the horizontal flip ``(i, j) -> (i, -j)`` for
    images (the dihedral group). The invariant: the magnitudes of the
    unitary Fourier coefficients (Parseval), symmetrised under the mirror.
    Order: the number of shifts (times 2 with reflections); orbit dimension 0.
    """

    def kernel_spec(self, D):
        h, w = self.shape if self.shape else (1, D)
        return {"kind": "cyclic", "h": h, "w": w, "reflections": int(self.reflections)}

    def __init__(self, shape=None, reflections=False):
        self.reflections = _arg("CyclicShift", check_bool, reflections, "reflections")
        if shape is not None:
            allowed = "None (1-D signals: shifts of the whole row) or a pair (h, w) of positive integers"
            if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__"):
                raise TypeError(f"CyclicShift: shape must be {allowed}, got {shape!r} ({type(shape).__name__})")
            if len(shape) != 2:
                raise ValueError(f"CyclicShift: shape must be {allowed}, got {tuple(shape)!r} (length {len(shape)})")
            shape = tuple(_arg("CyclicShift", check_int, v, f"shape[{i}]", low=1) for i, v in enumerate(shape))
            self.dim = shape[0] * shape[1]
            self.order = self.dim * (2 if self.reflections else 1)
        self.shape = shape

    def __repr__(self):
        return f"CyclicShift(shape={self.shape}, reflections={self.reflections})"

    def group_order(self, D):
        """The order of the group acting on rows of length D."""
        return D * (2 if self.reflections else 1)

    canonical = True

    def canonical_distance2(self, X, Y):
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        return _canonical_images(X, Y, self.index_permutations(X.shape[1]))

    def n_images(self, D):
        return self.group_order(D)

    def index_permutations(self, D):
        """(order, D) int64: element g maps y to ``y[perm[g]]`` (the identity first)."""
        # the maps index rows of exactly D values: a grid of another size
        # would read past the rows (the compiled minimum does not check)
        self.check_dim(D)
        shape = tuple(self.shape) if self.shape else (int(D),)
        if D * D * (2 if self.reflections else 1) <= _SHIFT_CACHE_ENTRIES:
            return _cached_shift_permutations(shape, self.reflections).copy()
        return _build_shift_permutations(shape, self.reflections)

    def images(self, Y):
        Y = np.asarray(Y)
        P = self.index_permutations(Y.shape[1])
        return np.take(Y, P.ravel(), axis=1).reshape(Y.shape[0], P.shape[0], Y.shape[1])  # C-contiguous

    def _grid(self, X):
        return X.reshape((X.shape[0],) + (self.shape if self.shape else (X.shape[1],)))

    def _mirror(self, S):
        axis = -1
        return np.roll(np.flip(S, axis=axis), 1, axis=axis)  # t -> -t (mod w)

    def _corr(self, Sx, Sy):
        axes = tuple(range(1, Sx.ndim))
        s = Sx.shape[1:]
        Fx = np.fft.rfftn(Sx, axes=axes)
        Fy = np.fft.rfftn(Sy, axes=axes)
        return np.fft.irfftn(Fx * np.conj(Fy), s=s, axes=axes)  # corr[s] = <x, roll(y, s)>

    def _align_rows(self, X, Y):
        Sx, Sy = self._grid(X), self._grid(Y)
        candidates = [(False, Sy)]
        if self.reflections:
            candidates.append((True, self._mirror(Sy)))
        n = X.shape[0]
        best = np.full(n, np.inf)
        elems = [None] * n
        out = np.empty_like(Sx)
        nx = np.sum(Sx.reshape(n, -1) ** 2, axis=1)
        axes = tuple(range(1, Sx.ndim))
        for flip, S in candidates:
            c = self._corr(Sx, S).reshape(n, -1)
            ny = np.sum(S.reshape(n, -1) ** 2, axis=1)
            # every shift within the FFT's rounding of the best is recomputed exactly
            tol = 1e-9 * (nx + ny) + 1e-300
            cmax = c.max(axis=1)
            for i in range(n):
                for flat in np.flatnonzero(c[i] >= cmax[i] - tol[i]):
                    shift = np.unravel_index(flat, Sx.shape[1:])
                    g = np.roll(S[i], shift, axis=tuple(a - 1 for a in axes))
                    d2 = float(np.sum((Sx[i] - g) ** 2))
                    if d2 < best[i]:
                        best[i], elems[i], out[i] = d2, (tuple(int(s) for s in shift), flip), g
        return best, elems, out.reshape(X.shape)

    def _invariant(self, X):
        S = self._grid(X)
        axes = tuple(range(1, S.ndim))
        N = int(np.prod(S.shape[1:]))
        F = np.abs(np.fft.rfftn(S, axes=axes))
        w = S.shape[-1]
        last = F.shape[-1]
        c = np.full(last, 2.0)
        c[0] = 1.0
        if w % 2 == 0:
            c[-1] = 1.0
        weight = np.sqrt(c / N)
        if self.reflections and S.ndim == 3:
            # the horizontal mirror maps |F(k1, k2)| to |F(-k1, k2)|: average the two
            F = 0.5 * (F + np.roll(np.flip(F, axis=1), 1, axis=1))
        return (F * weight).reshape(X.shape[0], -1)

    def apply(self, element, y):
        shift, flip = element
        S = self._grid(np.atleast_2d(as_float64(y, "y")))[0]
        if flip:
            S = self._mirror(S[None])[0]
        return np.roll(S, shift, axis=tuple(range(S.ndim))).reshape(np.shape(y))


# ---------------------------------------------------------------------------
class Permutation(Group):
    """Permutations of m identical particles in R^p (rows of length m p).

    Exact by linear assignment on the squared distances between the
    particles (scipy's ``linear_sum_assignment``). The invariant: the sorted
    values of each coordinate (sorting is 1-Lipschitz). Order m!.
    """

    def kernel_spec(self, D):
        return {"kind": "permutation", "p": self.p, "centre": 0}

    def __init__(self, m, p=1):
        self.m = _arg("Permutation", check_int, m, "m (the number of particles)", low=1)
        self.p = _arg("Permutation", check_int, p, "p (the dimension of each particle)", low=1)
        self.dim = self.m * self.p

    @property
    def order(self):
        """m!, or ``math.inf`` beyond 20! (a number nobody sums over; computing
        ``factorial(10**6)`` would take minutes)."""
        return math.factorial(self.m) if self.m <= 20 else math.inf

    def __repr__(self):
        return f"Permutation({self.m}, {self.p})"

    def _assign(self, Cx, Cy):
        n = Cx.shape[0]
        perms = np.empty((n, self.m), dtype=np.int64)
        for i in range(n):
            cost = np.sum((Cx[i][:, None, :] - Cy[i][None, :, :]) ** 2, axis=2)
            r, c = linear_sum_assignment(cost)
            perms[i, r] = c
        return perms

    def _align_rows(self, X, Y):
        Cx, Cy = _clouds(X, self.p), _clouds(Y, self.p)
        perms = self._assign(Cx, Cy)
        gy = np.take_along_axis(Cy, perms[:, :, None], axis=1)
        d2 = np.sum((Cx - gy) ** 2, axis=(1, 2))
        return d2, list(perms), gy.reshape(X.shape)

    canonical = True

    #: at most this many permutations x coordinates: every permutation is
    #: summed canonically (vectorised); beyond, the optimal assignment's terms
    _CANONICAL_ENUMERATE = 4096

    def canonical_distance2(self, X, Y):
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        if self.m <= 8 and math.factorial(self.m) * self.dim <= self._CANONICAL_ENUMERATE:
            perms = np.asarray(list(itertools.permutations(range(self.m))), dtype=np.int64)
            cols = (perms[:, :, None] * self.p + np.arange(self.p)).reshape(perms.shape[0], -1)
            return _canonical_images(X, Y, cols)
        # two optimal assignments with different terms, exactly tied in exact
        # arithmetic, are not told apart here: the one found is summed
        _, _, gy = self._align_rows(X, Y)
        t = X - gy
        t *= t
        return canonical_sum(t)

    def _invariant(self, X):
        C = _clouds(X, self.p)
        return np.sort(C, axis=1).transpose(0, 2, 1).reshape(X.shape[0], -1)

    def apply(self, element, y):
        C = _clouds(np.atleast_2d(as_float64(y, "y")), self.p)
        return C[:, np.asarray(element)].reshape(np.shape(y))


# ---------------------------------------------------------------------------
class SignFlip(Group):
    """``{x -> x, x -> -x}``. The invariant: the absolute values. Order 2."""

    order = 2

    def kernel_spec(self, D):
        return {"kind": "signflip"}

    def _align_rows(self, X, Y):
        dp = np.sum((X - Y) ** 2, axis=1)
        dm = np.sum((X + Y) ** 2, axis=1)
        flip = dm < dp
        return np.where(flip, dm, dp), [(-1 if f else 1) for f in flip], np.where(flip[:, None], -Y, Y)

    def _invariant(self, X):
        return np.abs(X)

    def apply(self, element, y):
        return element * as_float64(y, "y")

    canonical = True

    def canonical_distance2(self, X, Y):
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        D = X.shape[1]
        return _canonical_images(X, Y, np.tile(np.arange(D), (2, 1)), np.array([1.0, -1.0]))

    def n_images(self, D):
        return 2

    def images(self, Y):
        Y = np.asarray(Y)
        return np.stack([Y, -Y], axis=1)


# ---------------------------------------------------------------------------
class FiniteGroup(Group):
    """A finite group given by its elements: orthogonal D x D matrices, or
    index permutations of the D coordinates (``g.y = y[perm]``).

    Exact by enumeration. The identity must be among the elements; closure
    is checked. The invariant: ``(P x, ||x - P x||)`` with P the group
    average (the Reynolds operator, an orthogonal projection that commutes
    with the action), which is 1-Lipschitz in the orbit distance.
    """

    def kernel_spec(self, D):
        if self._perms is not None:
            return {"kind": "finite_perm", "order": self.order,
                    "perms": np.ascontiguousarray(self._perms, dtype=np.int64)}
        return {"kind": "finite_mat", "order": self.order, "mats": np.ascontiguousarray(self._mats, dtype=np.float64)}

    def __init__(self, elements):
        allowed = "a non-empty sequence of index permutations (1-D integer arrays) or of orthogonal D x D matrices"
        if isinstance(elements, (str, bytes, dict)) or not hasattr(elements, "__iter__"):
            raise TypeError(f"FiniteGroup: elements must be {allowed}, got {elements!r} ({type(elements).__name__})")
        try:
            elements = [_to_numpy(e, f"elements[{i}]") for i, e in enumerate(elements)]
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"FiniteGroup: elements must be {allowed} ({exc})") from None
        if not elements:
            raise ValueError(f"FiniteGroup needs at least one element: elements must be {allowed}")
        for i, e in enumerate(elements):
            if e.dtype == object or e.dtype.kind in "USVMmOcb":
                raise TypeError(f"FiniteGroup: elements[{i}] has dtype {e.dtype}; elements must be {allowed}")
            if e.ndim != elements[0].ndim or e.shape != elements[0].shape:
                raise ValueError(f"FiniteGroup: elements[{i}] has shape {e.shape} but elements[0] has shape "
                                 f"{elements[0].shape}; elements must all have one shape")
        first = elements[0]
        if first.ndim not in (1, 2):
            raise ValueError(f"FiniteGroup: elements[0] has shape {first.shape}; elements must be {allowed}")
        if first.ndim == 1:
            for i, e in enumerate(elements):
                if e.dtype.kind not in "iu":
                    raise TypeError(f"FiniteGroup: elements[{i}] is a 1-D array of dtype {e.dtype}; index "
                                    "permutations must be integer arrays")
            P = np.array(elements, dtype=np.int64)
            D = P.shape[1]
            if D == 0 or np.any(np.sort(P, axis=1) != np.arange(D)):
                raise ValueError("index permutations must each be a permutation of range(D)")
            mats = None
            self._perms = P
            ident = np.any(np.all(P == np.arange(D), axis=1))
            keys = {tuple(p) for p in P}
            closed = all(tuple(a[b]) in keys for a in P for b in P)
        else:
            mats = np.array(elements, dtype=np.float64)
            if mats.ndim != 3 or mats.shape[1] != mats.shape[2] or mats.shape[1] == 0:
                raise ValueError(f"matrix elements must all be square D x D, got shape {first.shape}")
            if not np.all(np.isfinite(mats)):
                raise ValueError("matrix elements must be finite (NaN or inf found)")
            D = mats.shape[1]
            eye = np.eye(D)
            if not np.allclose(np.einsum("gij,gkj->gik", mats, mats), eye, atol=1e-10):
                raise ValueError("matrix elements must be orthogonal (the group must act by isometries)")
            self._perms = None
            ident = any(np.allclose(g, eye, atol=1e-12) for g in mats)
            closed = all(any(np.allclose(a @ b, c, atol=1e-9) for c in mats) for a in mats for b in mats)
        if not ident:
            raise ValueError("the identity is not among the elements")
        if not closed:
            raise ValueError("the elements are not closed under composition: not a group")
        self._mats = mats
        self.dim = D
        self.order = len(elements)
        Pm = self._as_matrices().mean(axis=0)
        self._reynolds = Pm

    def __repr__(self):
        return f"FiniteGroup(order={self.order}, dim={self.dim})"

    def _as_matrices(self):
        if self._mats is not None:
            return self._mats
        D = self.dim
        M = np.zeros((self.order, D, D))
        for g, p in enumerate(self._perms):
            M[g, np.arange(D), p] = 1.0  # (g.y)[i] = y[p[i]]
        return M

    def _images(self, Y):
        if self._perms is not None:
            return Y[:, self._perms]  # (n, |G|, D)
        return np.einsum("gij,nj->ngi", self._mats, Y)

    def n_images(self, D):
        return self.order

    def images(self, Y):
        Y = np.asarray(Y)
        if self._perms is not None:
            return np.take(Y, self._perms.ravel(), axis=1).reshape(Y.shape[0], self.order, Y.shape[1])
        return np.einsum("gij,nj->ngi", self._mats, np.asarray(Y, dtype=np.float64)).astype(Y.dtype, copy=False)

    @property
    def canonical(self):
        return self._perms is not None  # index permutations (matrices round their images)

    def canonical_distance2(self, X, Y):
        if self._perms is None:
            return super().canonical_distance2(X, Y)
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        return _canonical_images(X, Y, self._perms)

    def _align_rows(self, X, Y):
        imgs = self._images(Y)
        d2 = np.sum((X[:, None, :] - imgs) ** 2, axis=2)
        best = np.argmin(d2, axis=1)
        idx = np.arange(X.shape[0])
        return d2[idx, best], list(best), imgs[idx, best]

    def _invariant(self, X):
        PX = X @ self._reynolds.T
        rest = np.linalg.norm(X - PX, axis=1, keepdims=True)
        return np.concatenate([PX, rest], axis=1)

    def apply(self, element, y):
        y = as_float64(y, "y")
        if self._perms is not None:
            return y[..., self._perms[element]]
        return y @ self._mats[element].T


# ---------------------------------------------------------------------------
class Product(Group):
    """The product of groups acting on the same rows.

    Closed forms: translations with rotations (rigid motions: centre, then
    Kabsch) and translations with permutations (centre, then assign) are
    exact. Rotations with permutations (the E(3) x S_m symmetry of
    molecules) have none: ``distance2`` then runs alternating alignment
    (rotation by Kabsch given the matching, matching by assignment given the
    rotation) from ``n_starts`` starts (the identity matching, and matchings
    of points sorted by their distance from the centroid along each
    principal axis) and returns an *upper bound*; :meth:`bounds` reports the
    invariant lower bound beside it, and ``exact`` is False.
    """

    @property
    def canonical(self):
        return len(self.groups) == 1 and self.groups[0].canonical

    def canonical_distance2(self, X, Y):
        if len(self.groups) == 1:
            return self.groups[0].canonical_distance2(X, Y)
        return super().canonical_distance2(X, Y)

    def kernel_spec(self, D):
        if len(self.groups) == 1:
            return self.groups[0].kernel_spec(D)
        if not self.exact:
            return None  # rotations x permutations: alternating alignment, in numpy
        centre = int(self._T is not None)
        if self._R is not None:
            return {"kind": "rotation", "p": self.p, "reflections": int(self._R.reflections), "centre": centre}
        if self._P is not None:
            return {"kind": "permutation", "p": self.p, "centre": centre}
        return {"kind": "translation", "p": self.p} if self._T is not None else None

    def __init__(self, *groups, n_starts=4, max_iter=50):
        n_starts = _arg("Product", check_int, n_starts, "n_starts", low=1)
        max_iter = _arg("Product", check_int, max_iter, "max_iter", low=1)
        flat = []
        for i, g in enumerate(groups):
            if not isinstance(g, Group):
                raise TypeError(f"Product: every factor must be a repgap.groups.Group (e.g. Rotation(3)), "
                                f"got {g!r} ({type(g).__name__}) as factor {i}")
            flat.extend(g.groups if isinstance(g, Product) else [g])
        flat = [g for g in flat if not isinstance(g, Identity)]
        if not flat:
            flat = [Identity()]
        self.groups = tuple(flat)
        kinds = {type(g) for g in self.groups}
        if len(kinds) != len(self.groups):
            raise ValueError(f"a group appears twice in the product: {self.groups}")
        self.n_starts = n_starts
        self.max_iter = max_iter
        self._T = next((g for g in self.groups if isinstance(g, Translation)), None)
        self._R = next((g for g in self.groups if isinstance(g, Rotation)), None)
        self._P = next((g for g in self.groups if isinstance(g, Permutation)), None)
        others = [g for g in self.groups if not isinstance(g, (Translation, Rotation, Permutation))]
        if len(self.groups) > 1 and others:
            raise ValueError(f"no orbit distance is implemented for the product {self.groups}: products "
                             "combine Translation, Rotation and Permutation")
        ps = {g.p for g in (self._T, self._R, self._P) if g is not None}
        if len(ps) > 1:
            raise ValueError(f"the factors act on points of different dimensions: {sorted(ps)}")
        self.p = ps.pop() if ps else None
        self.exact = not (self._R is not None and self._P is not None)
        self.orbit_dimension = sum(g.orbit_dimension for g in self.groups)
        orders = [g.order for g in self.groups]
        self.order = None if self.orbit_dimension else math.prod(o for o in orders if o)
        dims = {g.dim for g in self.groups if g.dim is not None}
        self.dim = dims.pop() if dims else None
        self.invariant_is_isometry = all(g.invariant_is_isometry for g in self.groups)

    def __repr__(self):
        return "Product(" + ", ".join(map(repr, self.groups)) + ")"

    def _check_dim(self, D):
        for g in self.groups:
            g.check_dim(D)

    def _prep(self, X):
        if self._T is not None:
            return self._T.centre(X)
        return _clouds(X, self.p)

    def _align_rows(self, X, Y):
        if len(self.groups) == 1:
            return self.groups[0]._align_rows(X, Y)
        Cx, Cy = self._prep(X), self._prep(Y)
        shiftx = _clouds(X, self.p).mean(axis=1, keepdims=True) if self._T is not None else 0.0
        if self._R is not None and self._P is None:
            d2, R, gy = self._R._align_clouds(Cx, Cy)
            elems = list(R)
        elif self._P is not None and self._R is None:
            perms = self._P._assign(Cx, Cy)
            gy = np.take_along_axis(Cy, perms[:, :, None], axis=1)
            d2 = np.sum((Cx - gy) ** 2, axis=(1, 2))
            elems = list(perms)
        else:
            d2, elems, gy = self._alternate(Cx, Cy)
        return d2, elems, (gy + shiftx).reshape(X.shape)

    def _starts(self, Cx, Cy):
        """Initial matchings: identity, and points ranked by their
        projections on the principal axes (signs both ways)."""
        m = Cx.shape[0]
        yield np.arange(m)
        _, _, Vx = np.linalg.svd(Cx, full_matrices=False)
        _, _, Vy = np.linalg.svd(Cy, full_matrices=False)
        for axis in range(min(self.p, self.n_starts, Vx.shape[0], Vy.shape[0])):  # m < p points: m axes
            ax = np.argsort(Cx @ Vx[axis])
            for sign in (1.0, -1.0):
                ay = np.argsort(sign * (Cy @ Vy[axis]))
                perm = np.empty(m, dtype=np.int64)
                perm[ax] = ay
                yield perm

    def _alternate(self, Cx, Cy):
        n, m, p = Cx.shape
        best = np.full(n, np.inf)
        elems = [None] * n
        out = np.empty_like(Cx)
        for i in range(n):
            x, y = Cx[i], Cy[i]
            for s, perm in enumerate(self._starts(x, y)):
                if s >= self.n_starts * 2 + 1:
                    break
                prev = np.inf
                for _ in range(self.max_iter):
                    R = _kabsch(x[None], y[perm][None], self._R.reflections)[0]
                    ry = y @ R.T
                    cost = np.sum((x[:, None, :] - ry[None, :, :]) ** 2, axis=2)
                    r, c = linear_sum_assignment(cost)
                    perm = np.empty(m, dtype=np.int64)
                    perm[r] = c
                    R = _kabsch(x[None], y[perm][None], self._R.reflections)[0]
                    gy = y[perm] @ R.T
                    d2 = float(np.sum((x - gy) ** 2))
                    if d2 >= prev - 1e-15 * (1 + prev):
                        break
                    prev = d2
                if prev < best[i]:
                    best[i], elems[i], out[i] = prev, (R, perm), gy
        return best, elems, out

    def _invariant(self, X):
        if len(self.groups) == 1:
            return self.groups[0]._invariant(X)
        C = self._prep(X)
        if self._R is not None:
            return _radial_pair_invariant(C, sort=self._P is not None).reshape(X.shape[0], -1)
        if self._P is not None:
            return np.sort(C, axis=1).transpose(0, 2, 1).reshape(X.shape[0], -1)
        return C.reshape(X.shape[0], -1)

    def apply(self, element, y):
        raise NotImplementedError("apply is not defined for products; use align(...).aligned")
