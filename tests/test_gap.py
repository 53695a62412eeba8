import math

import numpy as np
import pytest

import repgap
from conftest import reference_knn


def _uniform(n, m, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), rng.random((m, d))


def test_representation_gap_definition(backend):
    train, test = _uniform(3000, 400, 4)
    res = repgap.representation_gap(train, test, backend=backend)
    rd, ri = reference_knn(test, train, 3)
    assert res.value == pytest.approx(np.mean(rd[:, 0] ** 2), rel=1e-12)
    assert res.stderr == pytest.approx(np.std(rd[:, 0] ** 2, ddof=1) / math.sqrt(400), rel=1e-10)
    np.testing.assert_array_equal(res.indices, ri[:, 0])
    assert (res.n_train, res.n_test, res.n_zero, res.k, res.r) == (3000, 400, 0, 1, 2.0)
    # k-th neighbour, power r
    res3 = repgap.representation_gap(train, test, k=3, r=1, backend=backend)
    assert res3.value == pytest.approx(np.mean(rd[:, 2]), rel=1e-12)
    np.testing.assert_allclose(res3.distances, rd[:, 2], rtol=1e-12)


def test_duplicates_are_counted_not_dropped(backend):
    train, test = _uniform(1000, 100, 3)
    test = np.concatenate([test, train[:7]])
    res = repgap.representation_gap(train, test, backend=backend)
    assert res.n_zero == 7
    assert res.n_test == 107
    assert np.count_nonzero(res.distances == 0) == 7


def test_gap_matches_random_quantization_law():
    # flat-torus-free check on a large square: RG ~ Gamma(2) / (n * pi) for d=2,
    # up to the boundary correction of order n^(-1/2)
    train, test = _uniform(40000, 4000, 2, seed=3)
    res = repgap.representation_gap(train, test)
    law = 1.0 / (40000 * math.pi)
    assert 0.97 < res.value / law < 1.12


def test_result_repr_and_dict():
    train, test = _uniform(300, 50, 2)
    res = repgap.representation_gap(train, test)
    assert "GapResult(value=" in repr(res)
    d = res.to_dict()
    assert d["n_train"] == 300 and isinstance(d["distances"], list)
    curve = repgap.gap_curve(train, test, repeats=2, random_state=0)
    assert "GapCurve(sizes=" in repr(curve)
    assert curve.to_dict()["repeats"] == 2


def test_gap_curve_shapes_and_consistency(backend):
    train, test = _uniform(2000, 300, 3, seed=1)
    curve = repgap.gap_curve(train, test, repeats=3, random_state=42, backend=backend)
    J = len(curve.sizes)
    assert 10 <= J <= 12 and curve.sizes[0] == 100 and curve.sizes[-1] == 2000
    assert curve.gaps_per_repeat.shape == (3, J)
    assert curve.distances.shape == (3, J, 300)
    np.testing.assert_allclose(curve.gaps, curve.gaps_per_repeat.mean(0))
    assert np.all(curve.stderr > 0)
    # the full size does not depend on the order
    full = repgap.representation_gap(train, test, backend=backend).value
    np.testing.assert_allclose(curve.gaps_per_repeat[:, -1], full, rtol=1e-12)
    # decreasing on average
    assert np.all(np.diff(curve.gaps) < 0)


def test_gap_curve_prefixes_are_the_random_orders(backend):
    train, test = _uniform(800, 60, 5, seed=2)
    sizes = [50, 200, 800]
    curve = repgap.gap_curve(train, test, sizes=sizes, repeats=2, random_state=7, backend=backend)
    rng = np.random.default_rng(7)
    for rep in range(2):
        order = rng.permutation(800)
        for j, s in enumerate(sizes):
            rd, _ = reference_knn(test, train[order[:s]], 1)
            assert curve.gaps_per_repeat[rep, j] == pytest.approx(np.mean(rd[:, 0] ** 2), rel=1e-12)


def test_gap_curve_reproducible_and_backend_independent():
    train, test = _uniform(1500, 200, 4, seed=4)
    curves = [repgap.gap_curve(train, test, repeats=2, random_state=11, backend=b) for b in repgap.available_backends()]
    for c in curves[1:]:
        np.testing.assert_allclose(c.gaps_per_repeat, curves[0].gaps_per_repeat, rtol=1e-12)
    again = repgap.gap_curve(train, test, repeats=2, random_state=11)
    np.testing.assert_array_equal(again.gaps_per_repeat, repgap.gap_curve(train, test, repeats=2, random_state=11).gaps_per_repeat)
    other = repgap.gap_curve(train, test, repeats=2, random_state=12)
    assert not np.array_equal(other.gaps_per_repeat[:, 0], again.gaps_per_repeat[:, 0])


def test_gap_curve_small_training_set():
    train, test = _uniform(60, 10, 2)
    curve = repgap.gap_curve(train, test, repeats=1, random_state=0)
    np.testing.assert_array_equal(curve.sizes, [60])


def test_default_sizes():
    s = repgap.default_sizes(100000)
    assert s[0] == 100 and s[-1] == 100000 and len(s) == 12
    assert np.all(np.diff(s) > 0)
    np.testing.assert_array_equal(repgap.default_sizes(50), [50])


def _brute_loo(train, test, order, sizes, own):
    """Each query's nearest distance within each prefix, its own training row excluded."""
    Q = np.concatenate([test, train[own[len(test):]]])
    out = np.empty((len(sizes), len(Q)))
    for j, nj in enumerate(sizes):
        P = order[:nj]
        D = ((Q[:, None, :] - train[P][None]) ** 2).sum(-1)
        D[own[:, None] == P[None, :]] = np.inf
        out[j] = np.sqrt(D.min(axis=1))
    return out


def test_gap_curve_train_queries(backend):
    train, test = _uniform(1500, 200, 3, seed=4)
    train[7] = train[900]  # a duplicate pair: its leave-one-out distance is 0
    sizes = [5, 60, 700, 1500]
    c = repgap.gap_curve(train, test, sizes=sizes, repeats=2, random_state=3, train_queries=True, backend=backend)
    assert c.distances.shape == (2, 4, 1700) and (c.n_test, c.n_train_queries) == (200, 1500)
    rng = np.random.default_rng(3)
    own = np.r_[np.full(200, -1), np.arange(1500)]
    for rep in range(2):
        want = _brute_loo(train, test, rng.permutation(1500), sizes, own)
        np.testing.assert_allclose(c.distances[rep], want, rtol=1e-12, atol=1e-15)
    assert c.distances[0, -1, 200 + 7] == 0 and c.distances[0, -1, 200 + 900] == 0
    # the held-out columns are those of the plain curve (same random orders)
    plain = repgap.gap_curve(train, test, sizes=sizes, repeats=2, random_state=3, backend=backend)
    np.testing.assert_array_equal(c.distances[:, :, :200], plain.distances)
    # a random subset of the training points, drawn before the orders
    sub = repgap.gap_curve(train, test, sizes=sizes, repeats=1, random_state=5, train_queries=300, backend=backend)
    rng = np.random.default_rng(5)
    rows = np.sort(rng.choice(1500, 300, replace=False))
    want = _brute_loo(train, test, rng.permutation(1500), sizes, np.r_[np.full(200, -1), rows])
    np.testing.assert_allclose(sub.distances[0], want, rtol=1e-12, atol=1e-15)


def test_gap_curve_train_queries_cut_the_noise_not_the_mean():
    # the same law: the mean agrees with the held-out curve, the stderr falls
    rng = np.random.default_rng(0)
    train, test = rng.random((20000, 4)), rng.random((1000, 4))
    a = repgap.gap_curve(train, test, sizes=[500, 2000, 20000], repeats=3, random_state=0)
    b = repgap.gap_curve(train, test, sizes=[500, 2000, 20000], repeats=3, random_state=0, train_queries=True)
    assert np.all(np.abs(b.gaps / a.gaps - 1) < 4 * a.stderr / a.gaps)
    assert np.all(b.stderr < 0.5 * a.stderr)


def test_gap_curve_train_queries_errors():
    train, test = _uniform(300, 20, 2)
    with pytest.raises(ValueError, match="k \\+ 1"):
        repgap.gap_curve(train, test, sizes=[1, 300], train_queries=True)
    with pytest.raises(ValueError, match="train_queries must be"):
        repgap.gap_curve(train, test, train_queries=-3)
    with pytest.raises(ValueError, match="train_queries is not available"):
        repgap.gap_curve(train, test, train_queries=True, block_size=100)


def test_gap_curve_train_queries_modulo_a_group():
    from repgap.groups import CyclicShift

    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(400, 8)), rng.normal(size=(50, 8))
    g = CyclicShift()
    c = repgap.gap_curve(train, test, sizes=[50, 400], repeats=1, random_state=1, group=g, train_queries=True)
    # at the full size every training query is leave-one-out: its nearest other row modulo shifts
    d, i = repgap.knn(train, train, k=2, group=g)
    np.testing.assert_allclose(c.distances[0, -1, 50:], d[:, 1], rtol=1e-10)
    np.testing.assert_array_equal(i[:, 0], np.arange(400))


@pytest.mark.parametrize("k, train_queries", [(1, False), (1, True), (3, True)])
def test_pooled_curve_equals_the_per_repeat_search(monkeypatch, k, train_queries):
    # one pooled search serves every repeat; prefixes whose pool is short are
    # searched again: the distances must be the per-repeat prefix kernel's,
    # bit for bit, including the smallest sizes (where the pool runs short)
    from repgap import gap as G

    rng = np.random.default_rng(7)
    X = np.round(rng.random((3000, 5)) * 40) / 40  # ties among distances as well
    tr, te = X[:2600], X[2600:]
    sizes = [20, 45, 100, 400, 1300, 2600]
    for backend in repgap.available_backends():
        if backend == "torch":
            continue
        a = repgap.gap_curve(tr, te, sizes=sizes, repeats=3, k=k, random_state=0, train_queries=train_queries,
                             backend=backend)
        assert G._reuse_neighbours(te, tr, k + bool(train_queries), 3, None, backend, "auto", 2600) is not None
        with monkeypatch.context() as mp:
            mp.setattr(G, "_reuse_neighbours", lambda *a: None)
            b = repgap.gap_curve(tr, te, sizes=sizes, repeats=3, k=k, random_state=0,
                                 train_queries=train_queries, backend=backend)
        assert np.array_equal(a.distances, b.distances), backend
        assert np.array_equal(a.n_zero, b.n_zero) and np.array_equal(a.gaps, b.gaps)
