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
    """

    X: np.ndarray
    d: int
    volume: object
    name: str
    uniform: bool = True

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
