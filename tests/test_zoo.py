"""The validation zoo (repgap.datasets.ZOO_FAMILIES, zoo_family, zoo): fast checks."""
import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from repgap import datasets
from repgap.estimators import MLE, TwoNN

FAMILIES = list(datasets.ZOO_FAMILIES)


def test_registry():
    assert len(FAMILIES) >= 32
    for name, fam in datasets.ZOO_FAMILIES.items():
        gen, d, desc = fam  # a plain 3-tuple too
        assert callable(gen) and isinstance(d, int) and d >= 1
        assert fam.category in datasets.ZOO_CATEGORIES and desc.startswith(fam.category + ":")
    # the M1..M13 suite is kept apart
    assert not set(FAMILIES) & set(datasets.BENCHMARK_MANIFOLDS)
    assert len(datasets.ZOO_CATEGORIES) >= 8


def test_seed_sets():
    tuning, heldout = set(datasets.ZOO_TUNING_SEEDS), set(datasets.ZOO_HELDOUT_SEEDS)
    assert len(tuning) >= 25 and len(heldout) >= 25 and not tuning & heldout


@pytest.mark.parametrize("name", FAMILIES)
def test_family_sample(name):
    n = 300
    m = datasets.zoo_family(name, n, random_state=3)
    assert isinstance(m, datasets.Manifold) and m.name == name
    assert m.X.dtype == np.float64 and m.X.ndim == 2 and m.X.shape[0] == n
    assert np.isfinite(m.X).all()
    assert isinstance(m.d, int) and m.d == datasets.ZOO_FAMILIES[name].d and 1 <= m.d <= m.X.shape[1]
    assert m.volume is None or (np.isfinite(m.volume) and m.volume > 0)
    # no two points coincide (every estimator here takes log-ratios of distances)
    assert np.unique(m.X, axis=0).shape[0] == n
    again = datasets.zoo_family(name, n, random_state=3)
    np.testing.assert_array_equal(m.X, again.X)
    other = datasets.zoo_family(name, n, random_state=4)
    assert other.X.shape == m.X.shape and not np.array_equal(m.X, other.X)


def test_zoo_dict_matches_zoo_family():
    some = ["cube2", "gauss3", "cube5_in_R50", "M7_Roll"]
    z = datasets.zoo(50, families=some, random_state=7)
    assert list(z) == some
    for name in some:
        np.testing.assert_array_equal(z[name].X, datasets.zoo_family(name, 50, random_state=7).X)
    assert list(datasets.zoo(20, random_state=0)) == FAMILIES  # default: the zoo, not the suite


def test_families_of_one_seed_are_independent():
    # cube5 and cube5_in_R50 embed the same cube: with one seed they must not share points
    # (an isometric embedding of the same points would keep every distance)
    a = datasets.zoo_family("cube5", 100, random_state=0).X
    b = datasets.zoo_family("cube5_in_R50", 100, random_state=0).X
    assert not np.allclose(pdist(a), pdist(b), rtol=0.1)
    # ... while a seed's embedding is an isometry of a cube sample
    c = datasets.cube(100, 5, embed_dim=50, random_state=0)
    np.testing.assert_allclose(pdist(c.X), pdist(datasets.cube(100, 5, random_state=0).X), rtol=1e-10)


def test_generator_random_state():
    a = datasets.zoo_family("sphere5", 40, random_state=np.random.default_rng(1))
    b = datasets.zoo_family("sphere5", 40, random_state=np.random.default_rng(1))
    np.testing.assert_array_equal(a.X, b.X)


def test_suite_names_accepted():
    m = datasets.zoo_family("M10a_Cubic", 200, random_state=0)
    assert m.X.shape == (200, 11) and m.d == 10


def test_errors():
    with pytest.raises(ValueError, match="unknown zoo family 'nope'.*cube2.*M1_Sphere"):
        datasets.zoo_family("nope", 10)
    with pytest.raises(ValueError, match="unknown zoo family"):
        datasets.zoo(10, families=["cube2", "nope"])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            datasets.zoo_family("cube2", bad)
    with pytest.raises(ValueError, match="non-negative"):
        datasets.zoo_family("cube2", 10, random_state=-1)


def test_uniform_in_area():
    # torus of revolution (R=1, r=0.4): the outer half (cos v > 0) holds 1/2 + r/(pi R) of the area
    m = datasets.zoo_family("torus_of_revolution", 20000, random_state=0)
    outer = np.mean(np.hypot(m.X[:, 0], m.X[:, 1]) > 1.0)
    assert abs(outer - (0.5 + 0.4 / math.pi)) < 0.015
    # unit 5-ball: half the mass within radius 0.5^(1/5)
    r = np.linalg.norm(datasets.zoo_family("ball5", 20000, random_state=0).X, axis=1)
    assert r.max() <= 1 and abs(np.mean(r < 0.5 ** 0.2) - 0.5) < 0.015
    # cap of S^2 within 60 degrees: z = cos(angle) uniform on [1/2, 1] (Archimedes)
    z = datasets.zoo_family("cap2", 20000, random_state=0).X[:, 2]
    assert z.min() >= 0.5 and abs(np.mean(z < 0.75) - 0.5) < 0.015


@pytest.mark.parametrize("name", ["torus4_in_R8_noisy", "cube3_in_R10_noisy"])
def test_noise_below_neighbour_scale(name):
    # the same points without the noise give the same estimate: the noise is
    # below the scale of the neighbours (the descriptions claim it up to n = 1e4)
    gen = datasets.ZOO_FAMILIES[name].generator
    noisy = datasets.zoo_family(name, 2000, random_state=np.random.default_rng(11)).X
    clean = gen.func(2000, **{**gen.keywords, "noise": 0.0}, random_state=np.random.default_rng(11)).X
    assert 0 < np.abs(noisy - clean).max() < 0.01
    assert MLE().fit(noisy).dimension_ == pytest.approx(MLE().fit(clean).dimension_, rel=0.01)


# Families on which MLE (k = 10..20) and TwoNN are known to be within a few
# per cent at n = 2000 (checked over seeds); not the hard ones (cube12,
# nonlinear8_in_R24, beta_half_cube3, torus6 are 10-20 % off by design).
SANE = ["cube2", "torus3", "sphere2", "hemisphere3", "swiss_roll", "helix", "gauss3", "beta25_cube4",
        "circle_x_interval", "gauss6_in_R30", "torus4_in_R8_noisy"]


@pytest.mark.parametrize("name", SANE)
def test_dimension_sanity(name):
    m = datasets.zoo_family(name, 2000, random_state=0)
    for est in (MLE(), TwoNN()):
        assert est.fit(m.X).dimension_ == pytest.approx(m.d, rel=0.25), type(est).__name__
