"""Local (per-point) intrinsic dimension: ``fit_pointwise`` of TwoNN, MLE and GRIDE.

Validated on a union of flat tori of dimensions 2, 4 and 7 embedded by a
random rotation in R^40 (``repgap.datasets.manifold_union``). The
thresholds were chosen on seed 0 (the tuning seed) and are checked on
seeds 1 and 2 as well (held out). Measured (n = 2000 per piece,
n_neighbors = 50): the nearest of {2, 4, 7} to each point's estimate is its
own piece's dimension for 96-97 % of points (TwoNN) and 100 % (MLE, GRIDE
at n1 = 4); medians per piece 1.98-2.06, 3.98-4.26, and 7.45-7.68 (TwoNN)
or 8.35-8.45 (MLE, GRIDE: their larger neighbourhoods see the curvature of
the embedded 7-torus, as their global estimates do).
"""
import numpy as np
import pytest

import repgap
from repgap import datasets, local
from repgap.estimators import GRIDE, MLE, CalibratedTwoNN, NeighbourStats, TwoNN

DIMS = (2, 4, 7)
TUNING_SEEDS = (0,)
HELDOUT_SEEDS = (1, 2)


@pytest.fixture(scope="module", params=TUNING_SEEDS + HELDOUT_SEEDS)
def union(request):
    return datasets.manifold_union(2000, DIMS, embed_dim=40, random_state=request.param)


@pytest.mark.parametrize("make, median_tol", [(TwoNN, 0.10), (MLE, 0.25), (lambda: GRIDE(n1=4), 0.25)],
                         ids=["twonn", "mle", "gride4"])
def test_each_point_reads_its_own_pieces_dimension(union, make, median_tol):
    est = make().fit_pointwise(union.X, n_neighbors=50)
    d = est.dimension_pw_
    assert d.shape == (union.X.shape[0],) and est.dimension_pw_ci_.shape == (union.X.shape[0], 2)
    assert np.all(np.isfinite(d))
    assert est.pointwise_ci_covers_ == isinstance(est, TwoNN)
    if est.pointwise_ci_covers_:
        covered = (est.dimension_pw_ci_[:, 0] <= union.local_d) & (union.local_d <= est.dimension_pw_ci_[:, 1])
        assert 0.90 <= covered.mean() <= 0.995
    dims = np.array(DIMS)
    nearest = dims[np.abs(d[:, None] - dims[None]).argmin(axis=1)]
    assert np.mean(nearest == union.local_d) >= 0.93
    for k in DIMS:
        assert abs(np.median(d[union.local_d == k]) / k - 1) < median_tol
    # a single global estimate cannot do this: it sits between the pieces
    g = make().fit(union.X).dimension_
    assert np.mean(np.abs(dims[np.abs(g - dims).argmin()] - union.local_d) == 0) < 0.5


def test_twonn_local_matches_a_direct_computation():
    X = datasets.flat_torus(300, 3, random_state=5).X
    m = 20
    est = TwoNN().fit_pointwise(X, n_neighbors=m)
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(X).query(X, k=m + 1)
    logmu = np.log(dist[:, 2] / dist[:, 1])
    for i in (0, 17, 299):
        nb = np.concatenate([[i], idx[i, 1:m]])
        assert est.dimension_pw_[i] == pytest.approx((m - 1) / logmu[nb].sum(), rel=1e-12)
        lo, hi = est.dimension_pw_ci_[i]
        assert lo < est.dimension_pw_[i] < hi


def test_gride_local_maximises_the_neighbourhood_likelihood():
    from repgap.estimators import _gride_nll

    X = datasets.flat_torus(400, 4, random_state=3).X
    m, n1 = 30, 2
    est = GRIDE(n1=n1).fit_pointwise(X, n_neighbors=m)
    st = NeighbourStats(X, 2 * n1)
    nb = local.neighbourhoods(NeighbourStats(X, m).indices, m)
    for i in (0, 100, 399):
        logmu = np.log(st.distances[nb[i], 2 * n1 - 1] / st.distances[nb[i], n1 - 1])
        d = est.dimension_pw_[i]
        f = lambda t: _gride_nll(t, logmu, n1, 2 * n1)  # noqa: E731
        assert f(d) <= min(f(d * 1.001), f(d / 1.001))
    # at n1 = 1 GRIDE's local estimate is TwoNN's
    np.testing.assert_allclose(GRIDE(n1=1).fit_pointwise(X, n_neighbors=m).dimension_pw_,
                               TwoNN().fit_pointwise(X, n_neighbors=m).dimension_pw_, rtol=1e-12)


def test_mle_local_averages_the_neighbourhoods_inverses():
    from repgap.estimators import _levina_bickel_inverses

    X = datasets.flat_torus(200, 2, random_state=1).X
    k1, k2, m = 3, 6, 25
    est = MLE(k1=k1, k2=k2).fit_pointwise(X, n_neighbors=m)
    st = NeighbourStats(X, m)
    inv = _levina_bickel_inverses(st.distances[:, :k2])[:, k1 - 2 : k2 - 1]
    for i in (0, 50, 199):
        nb = np.concatenate([[i], st.indices[i, : m - 1]])
        assert est.dimension_pw_[i] == pytest.approx(np.mean(1.0 / inv[nb].mean(axis=0)), rel=1e-12)
        lo, hi = est.dimension_pw_ci_[i]
        assert lo < est.dimension_pw_[i] < hi


def test_pointwise_shares_one_neighbour_search_and_checks_its_size():
    X = datasets.flat_torus(500, 2, random_state=0).X
    st = NeighbourStats(X, 64)
    a = TwoNN().fit_pointwise(st, n_neighbors=50).dimension_pw_
    b = TwoNN().fit_pointwise(X, n_neighbors=50).dimension_pw_
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="hold 64 neighbours, 79 are needed"):
        TwoNN().fit_pointwise(st, n_neighbors=80)
    with pytest.raises(ValueError, match="n_neighbors must be an integer >= 3"):
        TwoNN().fit_pointwise(X, n_neighbors=2)
    with pytest.raises(TypeError, match="n_neighbors"):
        TwoNN().fit_pointwise(X, n_neighbors=2.5)


def test_calibrated_pointwise_and_the_scikit_dimension_alias():
    X = datasets.flat_torus(1500, 6, random_state=2).X
    raw = TwoNN().fit_pointwise(X, n_neighbors=50)
    cal = CalibratedTwoNN().fit_pw(X, n_neighbors=50)
    assert np.all(cal.dimension_pw_ >= raw.dimension_pw_ - 1e-9)  # the calibration raises (TwoNN underestimates)
    assert np.all(np.diff(cal.dimension_pw_[np.argsort(raw.dimension_pw_)]) >= -1e-9)  # and is monotone
    assert cal.n_neighbors_ == 50 and cal.n_features_in_ == X.shape[1]


def test_duplicates_kept_get_their_neighbourhoods_estimate():
    X = datasets.flat_torus(300, 2, random_state=4).X
    X = np.vstack([X, X[:5]])
    with pytest.raises(ValueError, match="duplicate"):
        TwoNN().fit_pointwise(X)
    d = TwoNN(duplicates="keep").fit_pointwise(X, n_neighbors=20).dimension_pw_
    assert d.shape == (305,) and np.all(np.isfinite(d))
    assert TwoNN(duplicates="drop").fit_pointwise(X, n_neighbors=20).dimension_pw_.shape == (300,)


def test_top_level_estimators():
    for name in ("TwoNN", "MLE", "GRIDE", "GapLaw", "CorrelationDimension", "CalibratedTwoNN", "WeibullShape"):
        assert getattr(repgap, name) is getattr(repgap.estimators, name)
        assert name in repgap.__all__


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_analyze_reports_the_local_dimension_of_each_training_row(tmp_path):
    ds = datasets.manifold_union(600, (2, 5), random_state=7)
    a = repgap.analyze(ds.X, methods=["twonn", "mle", "gride"], repeats=2, n_boot=0, random_state=1)
    assert set(a.local_dimension) == {"twonn", "mle", "gride"} and a.local_neighbors == 50
    train = ds.X[a.train_rows]
    np.testing.assert_allclose(a.local_dimension["twonn"], TwoNN().fit_pointwise(train).dimension_pw_, rtol=1e-12)
    np.testing.assert_allclose(a.local_dimension["gride"], GRIDE(n1=4).fit_pointwise(train).dimension_pw_,
                               rtol=1e-12)
    rep = a.to_dict()["local_dimension"]
    assert rep["n_neighbors"] == 50 and rep["estimators"]["mle"]["n"] == train.shape[0]
    assert "local dimension per point" in a.summary()
    assert not repgap.analyze(ds.X, methods=["twonn"], repeats=2, n_boot=0, local_neighbors=0).local_dimension
    with pytest.raises(ValueError, match="local_neighbors"):
        repgap.analyze(ds.X, local_neighbors=2)


def test_cli_writes_local_dimension_csv(tmp_path):
    import csv

    from repgap.cli import main

    ds = datasets.manifold_union(400, (1, 4), random_state=3)
    path = tmp_path / "u.npy"
    np.save(path, ds.X)
    out = tmp_path / "rep"
    assert main(["analyze", str(path), "--out", str(out), "--repeats", "2", "--methods", "twonn,mle",
                 "--no-plots", "-q"]) == 0
    rows = list(csv.DictReader(open(out / "local_dimension.csv")))
    assert set(rows[0]) == {"row", "twonn", "mle"}
    got = {int(r["row"]): float(r["mle"]) for r in rows}
    assert len(got) == len(rows) and max(got) < ds.X.shape[0]
    # the row column is the input row: pieces are rows 0-399 (1-d) and 400-799 (4-d)
    low = np.median([v for r, v in got.items() if r < 400])
    high = np.median([v for r, v in got.items() if r >= 400])
    assert abs(low - 1) < 0.3 and abs(high - 4) < 1.0
    out2 = tmp_path / "rep2"
    assert main(["analyze", str(path), "--out", str(out2), "--repeats", "2", "--methods", "twonn",
                 "--no-plots", "--local-neighbors", "0", "-q"]) == 0
    assert not (out2 / "local_dimension.csv").exists()


def test_pointwise_intervals_carry_the_local_models_spread():
    # the global intervals' model terms, per point: MLE's neighbourhoods (k2 =
    # 20 neighbours each) are biased upward by the curvature of the embedded
    # 7-torus, and the sampling part alone covers about half the points;
    # the term (the binned spread between local MLE, local TwoNN and its ball
    # calibration) grows with the local dimension and restores most of it
    union = datasets.manifold_union(2000, DIMS, embed_dim=40, random_state=0)
    est = MLE().fit_pointwise(union.X, n_neighbors=50)
    s, c, b = est.dimension_pw_sampling_ci_, est.dimension_pw_ci_, est.pointwise_term_
    assert b.shape == (union.X.shape[0],) and np.all(b >= 0)
    assert np.all(c[:, 0] <= s[:, 0]) and np.all(c[:, 1] >= s[:, 1])
    cover = lambda ci: np.mean((ci[:, 0] <= union.local_d) & (union.local_d <= ci[:, 1]))  # noqa: E731
    assert cover(s) < 0.6 and cover(c) > 0.7  # 0.50 and 0.72 on this seed
    med = [np.median(b[union.local_d == k]) for k in DIMS]
    assert med[0] < med[1] < med[2] and med[2] > 10 * med[0]
    assert not est.pointwise_ci_covers_
    # TwoNN's term is the ball calibration's correction of each local
    # estimate: the local calibrated estimate is the raw one plus it
    raw = TwoNN().fit_pointwise(union.X, n_neighbors=50)
    cal = CalibratedTwoNN().fit_pointwise(union.X, n_neighbors=50)
    np.testing.assert_allclose(raw.pointwise_term_, cal.pointwise_term_)
    np.testing.assert_allclose(cal.dimension_pw_, raw.dimension_pw_ + raw.pointwise_term_, atol=0.01)
    assert raw.pointwise_ci_covers_ and cal.pointwise_ci_covers_
    st = NeighbourStats(union.X, 49)
    np.testing.assert_allclose(raw.dimension_pw_sampling_ci_,
                               local.local_twonn(st.distances, st.valid, local.neighbourhoods(st.indices, 50),
                                                 inflation=raw.ratio_dependence_)[1])
