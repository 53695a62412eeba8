"""Samplers with a known intrinsic dimension (and, where known, volume).

Every sampler takes ``n``, the dimension parameters and ``random_state``, and
returns a :class:`Manifold` with the points ``X``, the true intrinsic
dimension ``d``, the ambient dimension, and the d-volume of the support
when it is known (so that :func:`repgap.law.predicted_gap` can be compared
with a measurement). ``embed_dim`` adds a random orthonormal embedding into
a higher-dimensional space and ``noise`` isotropic Gaussian noise.
"""
import dataclasses
import math

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
    """

    X: np.ndarray
    d: int
    volume: object
    name: str
    uniform: bool = True
    task_dims: dict = dataclasses.field(default_factory=dict)

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
    translations and rotations (THEORY.md, section 3).
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
