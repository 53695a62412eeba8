"""Pair-distance histogram, correlation integral, Ripley K/L, and G, F, J."""
import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

import repgap
from repgap import pointprocess as pp
from repgap._backends import kernels


def _edges_off_data(d2, n_edges, rng):
    # edges placed between distances, so that no pair lies within rounding of
    # an edge: the float64 ground truth is then unambiguous
    q = np.quantile(np.sqrt(d2), np.sort(rng.uniform(0.005, 0.995, n_edges)))
    return np.concatenate([[0.0], np.unique(q * (1 + 1e-7)), [np.inf]])


def _truth(d2, edges):
    return np.histogram(d2, bins=edges**2)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0.0, 1e3, 1e6])
def test_within_set_matches_pdist(backend, dtype, offset):
    rng = np.random.default_rng(1)
    X = (rng.random((700, 5)) + offset).astype(dtype)
    d2 = pdist(X.astype(np.float64), "sqeuclidean")
    edges = _edges_off_data(d2, 12, rng)
    got = pp.pair_distance_counts(X, edges=edges, backend=backend)
    np.testing.assert_array_equal(got, _truth(d2, edges))
    assert got.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_between_sets_matches_cdist(backend, dtype):
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((300, 40)) + 1e3).astype(dtype)
    Y = (rng.standard_normal((450, 40)) + 1e3).astype(dtype)
    d2 = cdist(X.astype(np.float64), Y.astype(np.float64), "sqeuclidean").ravel()
    edges = _edges_off_data(d2, 20, rng)
    got = pp.pair_distance_counts(X, Y, edges=edges, backend=backend)
    np.testing.assert_array_equal(got, _truth(d2, edges))


def test_pairs_at_edges_are_decided_exactly(backend):
    # integer points: many pairs sit exactly on the integer-valued edges, where
    # the float32 expansion alone would put them on either side
    rng = np.random.default_rng(3)
    X = (rng.integers(0, 6, size=(400, 3)) + 1e3).astype(np.float32)
    d2 = pdist(X.astype(np.float64), "sqeuclidean")
    edges = np.sqrt(np.arange(0, 40, 1.0))
    got = pp.pair_distance_counts(X, edges=edges, backend=backend)
    np.testing.assert_array_equal(got, _truth(d2, edges))
    assert got.sum() == len(d2) - np.sum(d2 >= edges[-1] ** 2)


def test_compiled_kernel_independent_of_tiles_and_threads():
    if "cython" not in repgap.available_backends():
        pytest.skip("compiled backend not available")
    mod = kernels("cython")
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1000, 24)).astype(np.float32)
    Y = rng.standard_normal((333, 24)).astype(np.float32)
    edges = np.geomspace(2.0, 12.0, 30)
    ref = mod.pair_counts(X, None, edges, n_threads=1, tile=512)
    ref_xy = mod.pair_counts(X, Y, edges, n_threads=1, tile=512)
    for tile in (16, 17, 100, 1000, 4096):
        for threads in (1, 2, 3):
            np.testing.assert_array_equal(mod.pair_counts(X, None, edges, n_threads=threads, tile=tile), ref)
            np.testing.assert_array_equal(mod.pair_counts(X, Y, edges, n_threads=threads, tile=tile), ref_xy)
    # non-contiguous input (a column slice) gives the same counts
    Xw = np.asfortranarray(np.hstack([X, X]))[:, :24]
    np.testing.assert_array_equal(mod.pair_counts(Xw, None, edges, n_threads=2, tile=100), ref)


def test_progress_reports_every_pair(backend):
    rng = np.random.default_rng(5)
    X = rng.random((300, 4))
    seen = []
    kernels(backend).pair_counts(X, None, np.array([0.0, 0.5, np.inf]), n_threads=1, tile=64,
                                 progress=seen.append)
    assert seen and seen[-1] == 300 * 299 // 2
    assert all(b >= a for a, b in zip(seen, seen[1:]))


def test_small_and_bad_inputs():
    assert pp.pair_distance_counts(np.zeros((1, 3)), edges=[0, 1]).tolist() == [0]
    assert pp.pair_distance_counts(np.zeros((2, 3)), edges=[0, 1]).tolist() == [1]
    with pytest.raises(ValueError, match="edges"):
        pp.pair_distance_counts(np.zeros((5, 3)), edges=[1, 0.5])
    with pytest.raises(ValueError, match="edges"):
        pp.pair_distance_counts(np.zeros((5, 3)), edges=[-1, 0.5])
    with pytest.raises(ValueError, match="edges"):
        pp.pair_distance_counts(np.zeros((5, 3)), edges=[0, np.nan])
    with pytest.raises(ValueError, match="NaN|inf"):
        pp.pair_distance_counts(np.array([[0.0, np.nan], [1, 1]]), edges=[0, 1])
    with pytest.raises(ValueError, match="features|columns|shape"):
        pp.pair_distance_counts(np.zeros((5, 3)), np.zeros((5, 4)), edges=[0, 1])
    with pytest.raises(ValueError, match="positive"):
        pp.correlation_integral(np.zeros((5, 3)), [0.0, 1.0])


def test_correlation_integral_and_ripley_on_known_answers(backend):
    rng = np.random.default_rng(6)
    # flat 2-D uniform square: C(r) ~ pi r^2 for r small next to the side
    X = rng.random((3000, 2))
    r = np.array([0.02, 0.01, 0.04])  # any order
    C = pp.correlation_integral(X, r, backend=backend)
    d = pdist(X)
    np.testing.assert_allclose(C, [(d < x).mean() for x in r], rtol=0, atol=0)
    # Ripley's L(r) = r for a Poisson process (edge effects of order r)
    L = pp.ripley_l(X, r, backend=backend)
    np.testing.assert_allclose(L, r, rtol=0.06)


def test_g_f_j_on_poisson():
    rng = np.random.default_rng(7)
    train = rng.random((4000, 2))
    test = rng.random((4000, 2))
    r = np.array([0.003, 0.006, 0.01])
    G = pp.nn_distance_cdf(train, r)
    F = pp.empty_space_cdf(train, test, r)
    expected = 1 - np.exp(-4000 * np.pi * r**2)  # both equal this for Poisson
    np.testing.assert_allclose(G, expected, atol=0.03)
    np.testing.assert_allclose(F, expected, atol=0.03)
    np.testing.assert_allclose(pp.j_function(train, test, r), 1.0, atol=0.15)
