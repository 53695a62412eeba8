"""Samplers with a known intrinsic dimension (and, where known, volume).

Every sampler takes ``n``, the dimension parameters and ``random_state``, and
returns a :class:`Manifold` with the points ``X``, the true intrinsic
dimension ``d``, the ambient dimension, and the d-volume of the support
when it is known (so that :func:`repgap.law.predicted_gap` can be compared
with a measurement). ``embed_dim`` adds a random orthonormal embedding into
a higher-dimensional space and ``noise`` isotropic Gaussian noise.

The validation zoo (:data:`ZOO_FAMILIES`, :func:`zoo_family`, :func:`zoo`,
with the seed sets :data:`ZOO_TUNING_SEEDS` and :data:`ZOO_HELDOUT_SEEDS`)
collects families of known dimension chosen to break estimators;
``benchmarks/bench_zoo.py`` runs the estimators on it.
"""
import dataclasses
import functools
import math
import typing
import zlib

import numpy as np
from scipy import special

from ._validation import check_random_state


@dataclasses.dataclass(repr=False)
class Manifold:
    """Points sampled from a set of known intrinsic dimension.

    Attributes
    ----------
    X : ndarray (n, D)
    d : int
        Intrinsic dimension.
    volume : float or None
        d-volume of the support (None when not known in closed form).
    name : str
    uniform : bool
        Whether the points are uniform with respect to the d-volume (then the
        law's constant needs only the volume).
    task_dims : dict
        For symmetric data sets: the dimension of the task modulo each
        symmetry group, keyed by a description (e.g. ``"translations"``).
    local_d : ndarray (n,) or None
        For unions of pieces of different dimension (:func:`manifold_union`):
        the true dimension at each point (``d`` is then the largest).
    """

    X: np.ndarray
    d: int
    volume: object
    name: str
    uniform: bool = True
    task_dims: dict = dataclasses.field(default_factory=dict)
    local_d: object = None

    @property
    def ambient_dim(self):
        return self.X.shape[1]

    def __repr__(self):
        return (f"Manifold(name={self.name!r}, n={self.X.shape[0]}, d={self.d}, D={self.X.shape[1]}, "
                f"volume={self.volume}, uniform={self.uniform})")

    def __iter__(self):  # X, d = repgap.datasets.cube(...)
        return iter((self.X, self.d))


def _check_n(n):
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def _finish(X, d, volume, name, rng, embed_dim, noise, uniform=True, dtype=np.float64):
    if embed_dim is not None:
        D0 = X.shape[1]
        if embed_dim < D0:
            raise ValueError(f"embed_dim={embed_dim} is smaller than the sampler's dimension {D0}")
        Qm, _ = np.linalg.qr(rng.standard_normal((embed_dim, D0)))
        X = X @ Qm.T
    if noise:
        X = X + noise * rng.standard_normal(X.shape)
    return Manifold(np.ascontiguousarray(X, dtype=dtype), int(d), volume, name, uniform)


def cube(n, d, *, embed_dim=None, noise=0.0, random_state=None):
    """Uniform on the unit cube [0, 1]^d (volume 1; boundaries)."""
    n = _check_n(n)
    rng = check_random_state(random_state)
    return _finish(rng.random((n, d)), d, 1.0, f"cube{d}", rng, embed_dim, noise)


def flat_torus(n, d, *, embed=True, embed_dim=None, noise=0.0, random_state=None):
    """Uniform on the flat torus [0, 1)^d (volume 1; no boundary).

    With ``embed=True`` (default) the points are
    ``(cos 2 pi t, sin 2 pi t) / (2 pi)`` in R^(2d): each circle of length 1,
    so small distances equal the periodic ones to second order (curvature
    shows only at large scales). With ``embed=False`` the coordinates ``t``
    are returned; use :func:`torus_sqdist` for the periodic distance.
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    t = rng.random((n, d))
    X = np.concatenate([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)], axis=1) / (2 * np.pi) if embed else t
    return _finish(X, d, 1.0, f"torus{d}", rng, embed_dim, noise)


def torus_angles(X):
    """Coordinates in [0, 1)^d of points made by ``flat_torus(embed=True)`` (no extra embedding)."""
    d = X.shape[1] // 2
    return np.mod(np.arctan2(X[:, d:], X[:, :d]) / (2 * np.pi), 1.0)


def torus_sqdist(a, b):
    """Squared periodic distance on [0, 1)^d between rows of ``a`` and ``b`` (broadcast)."""
    delta = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    delta = np.minimum(delta, 1.0 - delta)
    return np.sum(delta * delta, axis=-1)


def sphere_volume(d):
    """d-volume of the unit sphere S^d in R^(d+1): 2 pi^((d+1)/2) / Gamma((d+1)/2)."""
    return float(2 * math.pi ** ((d + 1) / 2) / special.gamma((d + 1) / 2))


def sphere(n, d, *, radius=1.0, embed_dim=None, noise=0.0, random_state=None):
    """Uniform on the sphere S^d of the given radius in R^(d+1)."""
    n = _check_n(n)
    rng = check_random_state(random_state)
    g = rng.standard_normal((n, d + 1))
    X = radius * g / np.linalg.norm(g, axis=1, keepdims=True)
    return _finish(X, d, sphere_volume(d) * radius**d, f"sphere{d}", rng, embed_dim, noise)


def swiss_roll(n, *, embed_dim=None, noise=0.0, random_state=None):
    """A 2-D swiss roll in R^3, uniform in its area (arc length x height)."""
    n = _check_n(n)
    rng = check_random_state(random_state)
    a, b, h = 1.5 * np.pi, 4.5 * np.pi, 10.0
    # arc length of the spiral (t cos t, t sin t) is s(t) = (t sqrt(1+t^2) + asinh t)/2
    s = lambda t: 0.5 * (t * np.sqrt(1 + t * t) + np.arcsinh(t))  # noqa: E731
    grid = np.linspace(a, b, 20001)
    sg = s(grid)
    t = np.interp(rng.uniform(sg[0], sg[-1], n), sg, grid)
    y = rng.uniform(0, h, n)
    X = np.stack([t * np.cos(t), y, t * np.sin(t)], axis=1)
    return _finish(X, 2, float((sg[-1] - sg[0]) * h), "swiss_roll", rng, embed_dim, noise)


def helix(n, *, turns=3.0, radius=1.0, pitch=0.5, embed_dim=None, noise=0.0, random_state=None):
    """A 1-D helix in R^3, uniform in arc length."""
    n = _check_n(n)
    rng = check_random_state(random_state)
    t = rng.uniform(0, 2 * np.pi * turns, n)
    c = pitch / (2 * np.pi)
    X = np.stack([radius * np.cos(t), radius * np.sin(t), c * t], axis=1)
    length = 2 * np.pi * turns * math.sqrt(radius**2 + c**2)
    return _finish(X, 1, length, "helix", rng, embed_dim, noise)


def moebius(n, *, radius=1.0, width=0.5, embed_dim=None, noise=0.0, random_state=None):
    """A Moebius strip in R^3 (2-D; sampled uniformly in its parameters, so not
    exactly uniform in area: ``uniform=False``)."""
    n = _check_n(n)
    rng = check_random_state(random_state)
    u = rng.uniform(0, 2 * np.pi, n)
    v = rng.uniform(-width, width, n)
    X = np.stack([(radius + v * np.cos(u / 2)) * np.cos(u), (radius + v * np.cos(u / 2)) * np.sin(u),
                  v * np.sin(u / 2)], axis=1)
    return _finish(X, 2, None, "moebius", rng, embed_dim, noise, uniform=False)


def nonlinear_embedding(n, d, D, *, random_state=None, noise=0.0):
    """A d-cube mapped smoothly into R^D (D >= 2d): ``[sin, cos]`` features of
    random linear combinations, an embedding with curvature at every scale."""
    n = _check_n(n)
    if D < 2 * d:
        raise ValueError(f"D must be at least 2d = {2 * d}, got {D}")
    rng = check_random_state(random_state)
    t = rng.random((n, d))
    W = rng.standard_normal((d, D // 2)) / math.sqrt(d)
    Z = t @ W * math.pi
    X = np.concatenate([np.sin(Z), np.cos(Z)], axis=1)
    if X.shape[1] < D:
        X = np.concatenate([X, t[:, : D - X.shape[1]]], axis=1)
    return _finish(X, d, None, f"nonlinear{d}in{D}", rng, None, noise, uniform=False)


# ---------------------------------------------------------------------------
# The benchmark suite of the intrinsic-dimension literature
# ---------------------------------------------------------------------------
# Hein & Audibert (2005), "Intrinsic dimensionality estimation of submanifolds
# in R^d", ICML, table 1 (M1-M13), and Campadelli, Casiraghi, Ceruti & Rozza
# (2015), "Intrinsic dimension estimation: relevant techniques and a benchmark
# framework", Math. Probl. Eng., table 2, where M10 is the family of cube
# boundaries and M13 the S-curve and the spiral. Each entry: the generator,
# the intrinsic dimension d and the ambient dimension D. Unused ambient
# coordinates are zero, as in the published suite.


def _pad(cols, n, D):
    X = np.zeros((n, D))
    X[:, : len(cols)] = np.column_stack(cols)
    return X


def _m_sphere(rng, n, d, D):  # M1: the unit sphere S^d in R^(d+1)
    V = rng.standard_normal((n, d + 1))
    return _pad(list((V / np.linalg.norm(V, axis=1, keepdims=True)).T), n, D)


def _m_affine_3to5(rng, n, d, D):  # M2: a 3-D affine subspace of R^5
    A = np.array([[1.2, -0.5, 0.0], [0.5, 0.9, 0.0], [-0.5, -0.2, 1.0], [0.4, -0.9, -0.1], [1.1, -0.3, 0.0]])
    b = np.array([3.0, -1.0, 0.0, 0.0, 8.0])
    return (4.0 * rng.random((n, 3))) @ A.T + b


def _m_nonlinear_4to6(rng, n, d, D):  # M3: a concentrated 4-D figure in R^6
    p0, p1, p2, p3 = rng.random((4, n))
    return np.column_stack([
        p1**2 * np.cos(2 * np.pi * p0),
        p2**2 * np.sin(2 * np.pi * p0),
        p1 + p2 + (p1 - p3) ** 2,
        p1 - 2 * p2 + (p0 - p3) ** 2,
        -p1 - 2 * p2 + (p2 - p3) ** 2,
        p0**2 - p1**2 + p2**2 - p3**2,
    ])


def _m_nonlinear(rng, n, d, D):  # M4, M6, M8: d-cube through (p_{i+1} cos 2pi p_i, p_{i+1} sin 2pi p_i), repeated
    reps = D // (2 * d)
    p = rng.random((n, d))
    nxt = np.roll(p, -1, axis=1)  # p_{i+1}, cyclically
    F = np.empty((n, 2 * d))
    F[:, 0::2] = nxt * np.cos(2 * np.pi * p)
    F[:, 1::2] = nxt * np.sin(2 * np.pi * p)
    return np.tile(F, (1, reps))


def _m_helix1d(rng, n, d, D):  # M5a: a closed 1-D helix winding 8 times around a torus
    t = 2 * np.pi * rng.random(n)
    return _pad([(2 + np.cos(8 * t)) * np.cos(t), (2 + np.cos(8 * t)) * np.sin(t), np.sin(8 * t)], n, D)


def _m_helix2d(rng, n, d, D):  # M5b: a 2-D helicoid-like sheet
    r, p = 10 * np.pi * rng.random((2, n))
    return _pad([r * np.cos(p), r * np.sin(p), 0.5 * p], n, D)


def _m_roll(rng, n, d, D):  # M7: the swiss roll
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    h = 21 * rng.random(n)
    return _pad([t * np.cos(t), h, t * np.sin(t)], n, D)


def _m_affine(rng, n, d, D):  # M9: the 20-D cube [-2.5, 2.5]^20
    return _pad(list((5 * rng.random((n, d)) - 2.5).T), n, D)


def _m_cube_boundary(rng, n, d, D):  # M10a-d: the boundary of the (d+1)-cube, d-dimensional
    X = rng.random((n, d + 1))
    face = rng.integers(0, d + 1, n)  # the faces have equal areas
    X[np.arange(n), face] = rng.integers(0, 2, n)
    return _pad(list(X.T), n, D)


def _m_moebius(rng, n, d, D):  # M11: a Moebius band with 10 half-twists
    phi = 2 * np.pi * rng.random(n)
    s = 2 * rng.random(n) - 1
    w = 1 + 0.5 * s * np.cos(5 * phi)
    return np.column_stack([w * np.cos(phi), w * np.sin(phi), 0.5 * s * np.sin(5 * phi)])


def _m_norm(rng, n, d, D):  # M12: the isotropic Gaussian in R^20
    return _pad(list(rng.standard_normal((n, d)).T), n, D)


def _m_scurve(rng, n, d, D):  # M13a: the S-curve
    t = 3 * np.pi * (rng.random(n) - 0.5)
    h = 2 * rng.random(n)
    return _pad([np.sin(t), h, np.sign(t) * (np.cos(t) - 1)], n, D)


def _m_spiral(rng, n, d, D):  # M13b: a long helix curve in R^13
    t = 10 * np.pi * rng.random(n)
    return _pad([100 * np.cos(t), 100 * np.sin(t), t], n, D)


#: name -> (generator, intrinsic dimension, ambient dimension, description)
BENCHMARK_MANIFOLDS = {
    "M1_Sphere": (_m_sphere, 10, 11, "10-sphere in R^11"),
    "M2_Affine_3to5": (_m_affine_3to5, 3, 5, "affine 3-space in R^5"),
    "M3_Nonlinear_4to6": (_m_nonlinear_4to6, 4, 6, "concentrated 4-D figure, mistakable for 3-D"),
    "M4_Nonlinear": (_m_nonlinear, 4, 8, "nonlinear 4-manifold in R^8"),
    "M5a_Helix1d": (_m_helix1d, 1, 3, "1-D helix"),
    "M5b_Helix2d": (_m_helix2d, 2, 3, "2-D helix"),
    "M6_Nonlinear": (_m_nonlinear, 6, 36, "nonlinear 6-manifold in R^36"),
    "M7_Roll": (_m_roll, 2, 3, "swiss roll"),
    "M8_Nonlinear": (_m_nonlinear, 12, 72, "nonlinear, highly curved 12-manifold in R^72"),
    "M9_Affine": (_m_affine, 20, 20, "20-D cube"),
    "M10a_Cubic": (_m_cube_boundary, 10, 11, "boundary of the 11-cube"),
    "M10b_Cubic": (_m_cube_boundary, 17, 18, "boundary of the 18-cube"),
    "M10c_Cubic": (_m_cube_boundary, 24, 25, "boundary of the 25-cube"),
    "M10d_Cubic": (_m_cube_boundary, 70, 71, "boundary of the 71-cube"),
    "M11_Moebius": (_m_moebius, 2, 3, "Moebius band, 10 half-twists"),
    "M12_Norm": (_m_norm, 20, 20, "isotropic Gaussian in R^20"),
    "M13a_Scurve": (_m_scurve, 2, 3, "S-curve"),
    "M13b_Spiral": (_m_spiral, 1, 13, "1-D spiral in R^13"),
}


def benchmark_manifold(name, n=2500, *, noise=0.0, random_state=None):
    """One manifold of the standard ID benchmark suite (M1..M13).

    Parameters
    ----------
    name : str
        A key of :data:`BENCHMARK_MANIFOLDS` (e.g. ``"M1_Sphere"``).
    n : int
    noise : float
        Standard deviation of isotropic Gaussian noise added in R^D.

    Returns
    -------
    Manifold
        ``volume`` is None (the law's constant is not known in closed form
        for most of them); ``uniform`` says whether the sampling is uniform
        with respect to the d-volume.

    References
    ----------
    Hein & Audibert (2005), ICML; Campadelli et al. (2015), Math. Probl. Eng.
    """
    if name not in BENCHMARK_MANIFOLDS:
        raise ValueError(f"unknown benchmark manifold {name!r}; choose one of {', '.join(BENCHMARK_MANIFOLDS)}")
    n = _check_n(n)
    rng = check_random_state(random_state)
    gen, d, D, _ = BENCHMARK_MANIFOLDS[name]
    X = gen(rng, n, d, D)
    if noise:
        X = X + noise * rng.standard_normal(X.shape)
    uniform = name in ("M1_Sphere", "M2_Affine_3to5", "M9_Affine", "M10a_Cubic", "M10b_Cubic",
                       "M10c_Cubic", "M10d_Cubic")
    return Manifold(np.ascontiguousarray(X), d, None, name, uniform)


def benchmark_suite(n=2500, *, noise=0.0, random_state=None):
    """All of :data:`BENCHMARK_MANIFOLDS`, as {name: Manifold}, from one seed."""
    rng = check_random_state(random_state)
    return {name: benchmark_manifold(name, n, noise=noise, random_state=rng) for name in BENCHMARK_MANIFOLDS}


# ---------------------------------------------------------------------------
# Symmetric data sets (issue #4): known dimension modulo a group
# ---------------------------------------------------------------------------
def _random_rotations(rng, n, p):
    """n Haar-random proper rotations of R^p."""
    A = rng.standard_normal((n, p, p))
    Qm, Rm = np.linalg.qr(A)
    Qm = Qm * np.sign(np.diagonal(Rm, axis1=1, axis2=2))[:, None, :]
    det = np.linalg.det(Qm)
    Qm[:, :, 0] *= np.sign(det)[:, None]
    return Qm


def point_clouds(n, m, p=2, *, law="disk", random_state=None):
    """Clouds of m points in R^p (rows of length m p) from a rotation-invariant law.

    The m points are i.i.d.: uniform in the unit ball (``law="disk"``) or
    standard Gaussian (``"gaussian"``); their joint law is invariant under
    rotations of R^p. Dimensions of the task: ``m p`` with no group,
    ``m p - p`` modulo translations, ``m p - p - p(p-1)/2`` modulo
    translations and rotations (docs/theory.md, section 3).
    """
    n = _check_n(n)
    if p not in (2, 3) or int(m) < 2:
        raise ValueError(f"need p in (2, 3) and m >= 2, got p={p!r}, m={m!r}")
    rng = check_random_state(random_state)
    if law == "gaussian":
        C = rng.standard_normal((n, m, p))
    elif law == "disk":
        V = rng.standard_normal((n, m, p))
        V /= np.linalg.norm(V, axis=2, keepdims=True)
        C = V * rng.random((n, m, 1)) ** (1.0 / p)
    else:
        raise ValueError(f"law must be 'disk' or 'gaussian', got {law!r}")
    D = m * p
    dims = {"none": D, "translations": D - p, "translations+rotations": D - p - p * (p - 1) // 2}
    return Manifold(np.ascontiguousarray(C.reshape(n, D)), D, None, f"point_clouds({m}x{p}, {law})",
                    law == "disk", dims)


def shifted_signals(n, length, d, *, smooth=4.0, random_state=None):
    """1-D signals of a d-dimensional family, each cyclically shifted by a random integer.

    A signal is ``sum_l a_l phi_l(t)`` with ``a`` uniform in [-1, 1]^d and
    fixed smooth, non-periodic-looking profiles ``phi_l`` (Gaussian bumps of
    width ``length / smooth`` at fixed random positions), then rolled by a
    uniform shift in ``range(length)``. The family is d-dimensional and the
    shifts act freely: modulo :class:`repgap.groups.CyclicShift` the task
    keeps dimension d and the gap curve moves by ``length^(-2/d)``.
    """
    n, length, d = _check_n(n), int(length), int(d)
    rng = check_random_state(random_state)
    base = np.random.default_rng(12345)  # the family is fixed, the samples are random
    t = np.arange(length)
    centres = base.uniform(0, length, d)
    widths = length / smooth * base.uniform(0.3, 1.0, d)
    phi = np.exp(-0.5 * ((t[None, :] - centres[:, None]) / widths[:, None]) ** 2)
    phi *= base.uniform(0.5, 1.5, (d, 1))
    a = rng.uniform(-1.0, 1.0, (n, d))
    S = a @ phi
    shifts = rng.integers(0, length, n)
    idx = (t[None, :] - shifts[:, None]) % length
    X = np.take_along_axis(S, idx, axis=1)
    return Manifold(np.ascontiguousarray(X), d, None, f"shifted_signals({length}, d={d})", False,
                    {"none": d, "cyclic shifts": d})


def molecule_chains(n, m, *, latent_dim=4, bond_angle=110.0, permute=True, random_state=None):
    """Molecule-like chains of m atoms in R^3 with E(3) x S_m symmetry.

    Bond lengths are 1 and bond angles fixed; the m - 3 torsion angles are
    smooth functions of ``latent_dim`` latent variables (uniform in
    [-1, 1]): ``phi_j = pi/3 + sum_l z_l sin(pi l (j + 1) / (m - 2))``. Each
    chain is then placed in a Haar-random orientation and at a random
    position, and (``permute=True``) its atoms are listed in a random order.
    Dimensions: ``latent_dim + 6`` with no group (orientation and position),
    ``latent_dim`` modulo rigid motions (and permutations).
    """
    n, m, L = _check_n(n), int(m), int(latent_dim)
    if m < 4:
        raise ValueError(f"a chain needs at least 4 atoms, got m={m}")
    rng = check_random_state(random_state)
    z = rng.uniform(-1.0, 1.0, (n, L))
    j = np.arange(m - 3)
    basis = np.sin(np.pi * np.arange(1, L + 1)[:, None] * (j[None, :] + 1) / (m - 2))
    tors = np.pi / 3 + 0.8 * (z @ basis)
    theta = np.deg2rad(bond_angle)
    # natural extension reference frame: each new atom from the last three
    X = np.zeros((n, m, 3))
    X[:, 1] = [1.0, 0.0, 0.0]
    X[:, 2] = X[:, 1] + [-np.cos(theta), np.sin(theta), 0.0]
    for a in range(3, m):
        b1 = X[:, a - 2] - X[:, a - 3]
        b2 = X[:, a - 1] - X[:, a - 2]
        b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
        nrm = np.cross(b1, b2)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        mm = np.cross(nrm, b2)
        ph = tors[:, a - 3]
        d2 = np.stack([-np.cos(theta) * np.ones(n), np.sin(theta) * np.cos(ph), np.sin(theta) * np.sin(ph)], 1)
        X[:, a] = X[:, a - 1] + d2[:, :1] * b2 + d2[:, 1:2] * mm + d2[:, 2:] * nrm
    X -= X.mean(axis=1, keepdims=True)
    Rm = _random_rotations(rng, n, 3)
    X = np.einsum("nij,nkj->nki", Rm, X) + rng.normal(0.0, 2.0, (n, 1, 3))
    if permute:
        perm = np.argsort(rng.random((n, m)), axis=1)
        X = np.take_along_axis(X, perm[:, :, None], axis=1)
    dims = {"none": L + 6, "rigid motions": L, "rigid motions+permutations": L}
    return Manifold(np.ascontiguousarray(X.reshape(n, 3 * m)), L + 6, None,
                    f"molecule_chains({m} atoms, latent {L})", False, dims)


# ---------------------------------------------------------------------------
# Validation zoo: families of known dimension chosen to break estimators
# ---------------------------------------------------------------------------
# The M1..M13 suite above is the literature's benchmark; it is also the set
# on which repgap's default estimator was chosen, so it cannot double as an
# honest test. The zoo adds what the suite under-represents, one difficulty
# at a time: boundaries (the density of neighbours halves at a face),
# curvature, non-uniform and heavy-tailed densities, singular densities,
# clusters at different scales, products, embeddings into many dimensions
# and small noise. Each family is a generator ``gen(n, *, random_state)``
# returning a Manifold; families that differ by a parameter share one
# generator through ``functools.partial``. The uniform families on cubes,
# spheres, tori and rolls are those of Hein & Audibert (2005), ICML, and
# Campadelli, Casiraghi, Ceruti & Rozza (2015), Math. Probl. Eng. The
# non-uniform ones test the premise of the neighbour estimators (Levina &
# Bickel 2005, NIPS; Facco, d'Errico, Rodriguez & Laio 2017, Sci. Rep.) that
# only local uniformity matters: it fails where the density changes within a
# neighbourhood (the singular faces of Beta(1/2, 1/2), heavy tails).
def _rejection(rng, n, draw, accept_prob):
    """n rows of ``draw(rng, m)`` kept with probability ``accept_prob(rows)``.

    Sampling uniformly in area on a curved surface from a parametrization
    needs the parameters' density proportional to the area element; when the
    element is bounded, rejection is exact and short.
    """
    out, have = [], 0
    while have < n:
        m = max(2 * (n - have), 64)
        rows = draw(rng, m)
        rows = rows[rng.random(m) < accept_prob(rows)]
        out.append(rows)
        have += rows.shape[0]
    return np.concatenate(out)[:n]


def ball(n, d, *, embed_dim=None, noise=0.0, random_state=None):
    """Uniform in the unit d-ball (volume pi^(d/2) / Gamma(d/2 + 1); a curved boundary)."""
    n = _check_n(n)
    rng = check_random_state(random_state)
    g = rng.standard_normal((n, d))
    X = g / np.linalg.norm(g, axis=1, keepdims=True) * rng.random((n, 1)) ** (1.0 / d)
    return _finish(X, d, float(math.pi ** (d / 2) / special.gamma(d / 2 + 1)), f"ball{d}", rng, embed_dim, noise)


def spherical_cap(n, d, *, angle=0.5 * math.pi, embed_dim=None, noise=0.0, random_state=None):
    """Uniform on the cap of S^d in R^(d+1) within polar angle ``angle`` (<= pi/2) of the last axis.

    ``angle=pi/2`` is the closed hemisphere: curved, with a boundary (the
    equator) where the density of neighbours halves. Volume:
    ``|S^d| / 2 * I_{sin^2 angle}(d/2, 1/2)`` (regularized incomplete beta).
    """
    n = _check_n(n)
    if not 0 < angle <= 0.5 * math.pi:
        raise ValueError(f"angle must be in (0, pi/2], got {angle!r}")
    rng = check_random_state(random_state)
    c = math.cos(angle)

    def draw(rng, m):
        g = rng.standard_normal((m, d + 1))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        g[:, -1] = np.abs(g[:, -1])  # fold onto the upper hemisphere: no rejection for angle = pi/2
        return g

    X = _rejection(rng, n, draw, lambda g: (g[:, -1] >= c).astype(float))
    vol = 0.5 * sphere_volume(d) * float(special.betainc(d / 2, 0.5, math.sin(angle) ** 2))
    return _finish(X, d, vol, f"cap{d}", rng, embed_dim, noise)


def torus_of_revolution(n, *, R=1.0, r=0.4, embed_dim=None, noise=0.0, random_state=None):
    """Uniform in area on the 2-torus of revolution in R^3 (radii R > r; area 4 pi^2 R r).

    Unlike the flat torus its Gaussian curvature changes sign (positive
    outside, negative inside), so neighbourhoods are curved at every scale.
    The area element is ``r (R + r cos v)``: v is drawn by rejection.
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    uv = _rejection(rng, n, lambda rng, m: 2 * np.pi * rng.random((m, 2)),
                    lambda uv: (R + r * np.cos(uv[:, 1])) / (R + r))
    u, v = uv[:, 0], uv[:, 1]
    X = np.stack([(R + r * np.cos(v)) * np.cos(u), (R + r * np.cos(v)) * np.sin(u), r * np.sin(v)], axis=1)
    return _finish(X, 2, 4 * math.pi**2 * R * r, "torus_of_revolution", rng, embed_dim, noise)


def gaussian(n, d, *, scales=1.0, embed_dim=None, noise=0.0, random_state=None):
    """Centred Gaussian in R^d with standard deviations ``scales`` (a scalar or d values)."""
    n = _check_n(n)
    rng = check_random_state(random_state)
    X = rng.standard_normal((n, d)) * np.broadcast_to(np.asarray(scales, dtype=float), (d,))
    return _finish(X, d, None, f"gaussian{d}", rng, embed_dim, noise, uniform=False)


def gaussian_mixture(n, d, *, weights, offsets, scales, embed_dim=None, noise=0.0, random_state=None):
    """Mixture of isotropic Gaussians ``N(offset * (1, ..., 1), scale^2 I_d)``.

    Components of different scales have different densities, so the
    neighbour distances of one cluster are a multiple of the other's: an
    estimator must not read the change of scale as a change of dimension.
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    w = np.asarray(weights, dtype=float)
    comp = rng.choice(w.size, size=n, p=w / w.sum())
    X = (np.asarray(offsets, dtype=float)[comp, None]
         + np.asarray(scales, dtype=float)[comp, None] * rng.standard_normal((n, d)))
    return _finish(X, d, None, f"mixture{d}", rng, embed_dim, noise, uniform=False)


def student_t(n, d, *, df=3.0, embed_dim=None, noise=0.0, random_state=None):
    """Multivariate (elliptical) Student t with ``df`` degrees of freedom: ``Z / sqrt(chi2_df / df)``.

    With df = 3 the variance is finite but the fourth moment is not: a few
    points lie very far out, with very large neighbour distances.
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    X = rng.standard_normal((n, d)) / np.sqrt(rng.chisquare(df, (n, 1)) / df)
    return _finish(X, d, None, f"student_t{d}", rng, embed_dim, noise, uniform=False)


def beta_cube(n, d, *, a, b, embed_dim=None, noise=0.0, random_state=None):
    """Product of Beta(a, b) coordinates on [0, 1]^d.

    a, b > 1: the density vanishes at the faces (the points avoid the
    boundary); a, b < 1: it blows up at the faces, where most points pile.
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    return _finish(rng.beta(a, b, (n, d)), d, 1.0, f"beta_cube{d}", rng, embed_dim, noise, uniform=False)


def orthant(n, d, *, law="exponential", embed_dim=None, noise=0.0, random_state=None):
    """Product density on the positive orthant: ``"exponential"`` (Exp(1)) or ``"lognormal"`` (sigma = 1).

    Both have a boundary (the coordinate hyperplanes, with a positive
    density there for the exponential and a vanishing one for the
    log-normal) and an unbounded tail, where distances grow.
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    if law == "exponential":
        X = rng.standard_exponential((n, d))
    elif law == "lognormal":
        X = rng.lognormal(0.0, 1.0, (n, d))
    else:
        raise ValueError(f"law must be 'exponential' or 'lognormal', got {law!r}")
    return _finish(X, d, None, f"{law}{d}", rng, embed_dim, noise, uniform=False)


def product(n, factors, *, embed_dim=None, noise=0.0, random_state=None):
    """The Cartesian product of the factors' samples (each ``factor(n, random_state=rng)``).

    The dimension is the sum of the factors'; the volume is the product
    when all are known; uniform when every factor is.
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    parts = [f(n, random_state=rng) for f in factors]
    vols = [p.volume for p in parts]
    vol = float(np.prod(vols)) if all(v is not None for v in vols) else None
    X = np.concatenate([p.X for p in parts], axis=1)
    return _finish(X, sum(p.d for p in parts), vol, " x ".join(p.name for p in parts), rng, embed_dim, noise,
                   uniform=all(p.uniform for p in parts))


def manifold_union(n, dims, *, separation=10.0, embed_dim=None, noise=0.0, random_state=None):
    """A union of flat tori of different dimensions, far apart: data whose dimension varies by region.

    Piece j is the uniform flat torus of dimension ``dims[j]``
    (:func:`flat_torus`, embedded in R^(2 d_j), no boundary) in its own
    block of coordinates, shifted by ``separation * j`` along one more
    axis, so that no neighbourhood of moderate size mixes two pieces. The
    test set of local estimators (:meth:`repgap.estimators.TwoNN.fit_pointwise`).

    Parameters
    ----------
    n : int or sequence of int
        Points per piece (one number for all, or one per piece).
    dims : sequence of int
        The pieces' dimensions.
    separation : float, default=10.0
        Distance between consecutive pieces (each piece has diameter
        ``sqrt(d) / 2`` or less).
    embed_dim, noise, random_state
        As in the other samplers.

    Returns
    -------
    Manifold
        ``local_d`` holds each point's true dimension; ``d`` the largest;
        rows are ordered piece by piece.
    """
    dims = [int(d) for d in dims]
    if not dims or min(dims) < 1:
        raise ValueError(f"dims must be a non-empty sequence of positive integers, got {dims!r}")
    ns = [_check_n(m) for m in (n if np.ndim(n) else [n] * len(dims))]
    if len(ns) != len(dims):
        raise ValueError(f"n gives {len(ns)} sizes for {len(dims)} pieces")
    rng = check_random_state(random_state)
    width = 2 * sum(dims) + 1
    X = np.zeros((sum(ns), width))
    row, col = 0, 0
    for j, (m, d) in enumerate(zip(ns, dims)):
        X[row : row + m, col : col + 2 * d] = flat_torus(m, d, random_state=rng).X
        X[row : row + m, -1] = separation * j
        row, col = row + m, col + 2 * d
    out = _finish(X, max(dims), None, "union(" + ", ".join(f"torus{d}" for d in dims) + ")", rng, embed_dim, noise)
    out.local_d = np.repeat(dims, ns)
    return out


class ZooFamily(typing.NamedTuple):
    """One family of the validation zoo: ``(generator, d, description)``.

    ``generator(n, *, random_state)`` returns a :class:`Manifold`. The
    description starts with the category (``"curved, boundary: ..."``),
    available as :attr:`category`.
    """

    generator: typing.Callable
    d: int
    description: str

    @property
    def category(self):
        return self.description.split(":", 1)[0]


_P = functools.partial

# Noise levels of the two noisy families. Noise of standard deviation s in R^D
# adds about 2 D s^2 to squared distances; the dimension at the scale of the
# first neighbours stays d while that is small against E[R_1^2], at the
# largest n (1e4) where R_1 is smallest. Torus T^4 in R^8 (side 1): E[R_1] is
# about 0.06 at n = 1e4, against sqrt(16) * 1e-3 = 0.004 (0.4 % of R_1^2);
# cube [0,1]^3 in R^10: E[R_1] about 0.026 against sqrt(20) * 1e-4 = 0.00045.
_TORUS_NOISE = 1e-3
_CUBE_NOISE = 1e-4

#: name -> ZooFamily(generator, d, description); the description begins with the category.
ZOO_FAMILIES = {
    # flat, with a boundary (Hein & Audibert 2005): the boundary biases
    # neighbour-ratio estimators down, more so as d grows
    "cube2": ZooFamily(_P(cube, d=2), 2, "flat, boundary: uniform on [0,1]^2"),
    "cube5": ZooFamily(_P(cube, d=5), 5, "flat, boundary: uniform on [0,1]^5"),
    "cube8": ZooFamily(_P(cube, d=8), 8, "flat, boundary: uniform on [0,1]^8"),
    "cube12": ZooFamily(_P(cube, d=12), 12, "flat, boundary: uniform on [0,1]^12 (most points near a face)"),
    "ball5": ZooFamily(_P(ball, d=5), 5, "flat, boundary: uniform in the unit 5-ball (round boundary)"),
    # flat, no boundary: no boundary bias; the embedding in R^(2d) is curved
    # only at the circles' radius 1/(2 pi), which large-d neighbourhoods reach
    "torus3": ZooFamily(_P(flat_torus, d=3), 3, "flat, no boundary: flat torus T^3 in R^6 (circles of length 1)"),
    "torus6": ZooFamily(_P(flat_torus, d=6), 6,
                        "flat, no boundary: flat torus T^6 in R^12 (circles of length 1; at n = 2000 the "
                        "10th-20th neighbours are ~0.3 away, ~1 rad along each circle: chords shorten)"),
    # curved
    "sphere2": ZooFamily(_P(sphere, d=2), 2, "curved, no boundary: uniform on S^2 in R^3"),
    "sphere5": ZooFamily(_P(sphere, d=5), 5, "curved, no boundary: uniform on S^5 in R^6"),
    "torus_of_revolution": ZooFamily(torus_of_revolution, 2,
                                     "curved, no boundary: 2-torus of revolution in R^3 (R=1, r=0.4), uniform in area"),
    "hemisphere3": ZooFamily(_P(spherical_cap, d=3), 3,
                             "curved, boundary: uniform on the closed upper hemisphere of S^3 in R^4"),
    "cap2": ZooFamily(_P(spherical_cap, d=2, angle=math.pi / 3), 2,
                      "curved, boundary: uniform on the cap of S^2 within 60 degrees of a pole"),
    "swiss_roll": ZooFamily(swiss_roll, 2, "curved, boundary: swiss roll in R^3, uniform in area"),
    "moebius": ZooFamily(moebius, 2, "curved, boundary: Moebius band in R^3, uniform in its parameters"),
    "helix": ZooFamily(helix, 1, "curved, boundary: 1-D helix in R^3 (3 turns), uniform in arc length"),
    # non-uniform densities: local uniformity (the premise of the neighbour estimators) holds to varying degrees
    "gauss3": ZooFamily(_P(gaussian, d=3), 3, "non-uniform: standard Gaussian in R^3"),
    "gauss8": ZooFamily(_P(gaussian, d=8), 8, "non-uniform: standard Gaussian in R^8"),
    "gauss4_aniso": ZooFamily(_P(gaussian, d=4, scales=(1.0, 0.5, 0.25, 0.125)), 4,
                              "non-uniform: Gaussian in R^4 with standard deviations 1, 1/2, 1/4, 1/8 "
                              "(looks lower-dimensional at scales above the thinnest axis)"),
    "beta25_cube4": ZooFamily(_P(beta_cube, d=4, a=2.0, b=5.0), 4,
                              "non-uniform: product of Beta(2,5) on [0,1]^4 (density vanishing at the faces)"),
    "beta_half_cube3": ZooFamily(_P(beta_cube, d=3, a=0.5, b=0.5), 3,
                                 "non-uniform: product of Beta(1/2,1/2) on [0,1]^3 (density infinite at the faces)"),
    "mixture6_equal": ZooFamily(_P(gaussian_mixture, d=6, weights=(0.5, 0.5), offsets=(0.0, 5.0),
                                   scales=(1.0, 0.25)), 6,
                                "non-uniform: 0.5 N(0, I_6) + 0.5 N(5 (1,..,1), 0.25^2 I_6), two scales"),
    "mixture6_unequal": ZooFamily(_P(gaussian_mixture, d=6, weights=(0.9, 0.1), offsets=(0.0, 5.0),
                                     scales=(1.0, 0.1)), 6,
                                  "non-uniform: 0.9 N(0, I_6) + 0.1 N(5 (1,..,1), 0.1^2 I_6), a small dense cluster"),
    "student_t4": ZooFamily(_P(student_t, d=4, df=3.0), 4,
                            "non-uniform: multivariate Student t, 3 degrees of freedom, in R^4 (heavy tails)"),
    "exponential5": ZooFamily(_P(orthant, d=5, law="exponential"), 5,
                              "non-uniform: product of Exp(1) on the positive orthant of R^5"),
    "lognormal3": ZooFamily(_P(orthant, d=3, law="lognormal"), 3,
                            "non-uniform: product of LogNormal(0, 1) on the positive orthant of R^3"),
    # products: the dimension adds; the factors have different geometry
    "circle_x_interval": ZooFamily(_P(product, factors=(_P(flat_torus, d=1), _P(cube, d=1))), 2,
                                   "product: circle of length 1 x [0,1] (a cylinder) in R^3"),
    "sphere2_x_cube2": ZooFamily(_P(product, factors=(_P(sphere, d=2), _P(cube, d=2))), 4,
                                 "product: S^2 x [0,1]^2 in R^5"),
    "gauss2_x_torus2": ZooFamily(_P(product, factors=(_P(gaussian, d=2, scales=0.5), _P(flat_torus, d=2))), 4,
                                 "product: N(0, 0.5^2 I_2) x flat torus T^2 in R^6"),
    # embeddings: random isometries into many dimensions (nothing should
    # change) and smooth non-linear maps (curvature at every scale)
    "cube5_in_R50": ZooFamily(_P(cube, d=5, embed_dim=50), 5,
                              "embedded: [0,1]^5 rotated into R^50 (random isometry)"),
    "gauss6_in_R30": ZooFamily(_P(gaussian, d=6, embed_dim=30), 6,
                               "embedded: standard Gaussian in R^6 rotated into R^30 (random isometry)"),
    "nonlinear4_in_R12": ZooFamily(_P(nonlinear_embedding, d=4, D=12), 4,
                                   "embedded: [0,1]^4 through sin/cos features into R^12 (map redrawn per seed)"),
    "nonlinear8_in_R24": ZooFamily(_P(nonlinear_embedding, d=8, D=24), 8,
                                   "embedded: [0,1]^8 through sin/cos features into R^24 (map redrawn per seed)"),
    # small noise, below the neighbour scale up to n = 1e4 (see _TORUS_NOISE)
    "torus4_in_R8_noisy": ZooFamily(_P(flat_torus, d=4, noise=_TORUS_NOISE), 4,
                                    f"noisy: flat torus T^4 in R^8 (side 1) + N(0, {_TORUS_NOISE:g}^2 I_8); the noise "
                                    "is < 0.1 x the first-neighbour distance for n <= 1e4"),
    "cube3_in_R10_noisy": ZooFamily(_P(cube, d=3, embed_dim=10, noise=_CUBE_NOISE), 3,
                                    f"noisy: [0,1]^3 rotated into R^10 + N(0, {_CUBE_NOISE:g}^2 I_10); the noise "
                                    "is < 0.05 x the first-neighbour distance for n <= 1e4"),
}

#: The categories of :data:`ZOO_FAMILIES`, in order.
ZOO_CATEGORIES = tuple(dict.fromkeys(f.category for f in ZOO_FAMILIES.values()))

ZOO_TUNING_SEEDS = range(0, 25)
"""Seeds on which an estimator's constants may be chosen (tuning seeds).

Any constant of an estimator (a calibration table, a neighbour rank, a
threshold for a warning, a default method) may be chosen by looking at
results on these seeds only. :data:`ZOO_HELDOUT_SEEDS` are for reporting:
a number obtained on them is an honest estimate of the error on new data
only if nothing was changed after looking at it. With an int seed each
family gets its own stream (see :func:`zoo_family`), so the two sets give
independent samples of every family.
"""

ZOO_HELDOUT_SEEDS = range(1000, 1025)
"""Held-out seeds: for reporting only, never for choosing constants (see :data:`ZOO_TUNING_SEEDS`)."""


def _zoo_rng(name, random_state):
    # An int seed is combined with the family's name, so that the families of
    # one seed are independent (cube5 and cube5_in_R50 do not share points)
    # and a family's sample does not depend on which others are drawn.
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be non-negative, got {random_state}")
        return np.random.default_rng([int(random_state), zlib.crc32(name.encode())])
    return check_random_state(random_state)


def zoo_family(name, n, *, random_state=None):
    """Sample one family of the validation zoo (or of the M1..M13 suite).

    Parameters
    ----------
    name : str
        A key of :data:`ZOO_FAMILIES` or of :data:`BENCHMARK_MANIFOLDS`
        (the latter through :func:`benchmark_manifold`).
    n : int
        Number of points (positive).
    random_state : int, Generator or None
        An int seed gives the same sample every time; it is combined with
        ``name``, so different families of the same seed are independent.
        A Generator is used as is.

    Returns
    -------
    Manifold
        ``X`` float64 (n, D), the true ``d``, the ``volume`` of the support
        when known in closed form (else None), ``name`` and whether the law
        is ``uniform`` in the d-volume.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the choices) or a bad ``n``.

    References
    ----------
    Hein & Audibert (2005), "Intrinsic dimensionality estimation of
    submanifolds in R^d", ICML; Campadelli, Casiraghi, Ceruti & Rozza (2015),
    "Intrinsic dimension estimation: relevant techniques and a benchmark
    framework", Math. Probl. Eng.; Facco, d'Errico, Rodriguez & Laio (2017),
    "Estimating the intrinsic dimension of datasets by a minimal neighborhood
    information", Sci. Rep.

    Examples
    --------
    >>> m = zoo_family("cube5_in_R50", 1000, random_state=0)
    >>> m.X.shape, m.d
    ((1000, 50), 5)
    """
    if name in ZOO_FAMILIES:
        fam = ZOO_FAMILIES[name]
        n = _check_n(n)
        man = fam.generator(n, random_state=_zoo_rng(name, random_state))
        if man.d != fam.d:  # a registry entry out of step with its generator
            raise RuntimeError(f"zoo family {name!r}: generator gives d={man.d}, registry says {fam.d}")
        man.name = name
        return man
    if name in BENCHMARK_MANIFOLDS:
        return benchmark_manifold(name, n, random_state=_zoo_rng(name, random_state))
    raise ValueError(f"unknown zoo family {name!r}; choose one of {', '.join(ZOO_FAMILIES)} "
                     f"or of the M1..M13 suite: {', '.join(BENCHMARK_MANIFOLDS)}")


def zoo(n, *, families=None, random_state=None):
    """Sample several zoo families: ``{name: Manifold}``.

    Parameters
    ----------
    n : int
    families : iterable of str, optional
        Names accepted by :func:`zoo_family`; default all of
        :data:`ZOO_FAMILIES` (not the M1..M13 suite, see
        :func:`benchmark_suite`).
    random_state : int, Generator or None
        With an int, ``zoo(n, random_state=s)[name]`` equals
        ``zoo_family(name, n, random_state=s)``.

    Returns
    -------
    dict
    """
    names = list(ZOO_FAMILIES) if families is None else [families] if isinstance(families, str) else list(families)
    return {name: zoo_family(name, n, random_state=random_state) for name in names}
