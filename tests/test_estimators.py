import numpy as np
import pytest

import repgap
from repgap import datasets
from repgap.estimators import GRIDE, MLE, CorrelationDimension, GapLaw, NeighbourStats, TwoNN, WeibullShape
from repgap.law import fit_law


@pytest.mark.parametrize("d", [2, 5])
def test_point_process_estimators_on_the_torus(d):
    X = datasets.flat_torus(8000, d, random_state=d).X
    st = NeighbourStats(X, 8)
    for est, tol in [(TwoNN(), 0.1), (TwoNN(method="fit", random_state=0), 0.12), (MLE(k1=5, k2=8), 0.1),
                     (GRIDE(max_n1=4), 0.1)]:
        est.fit(st)
        assert abs(est.dimension_ - d) / d < tol, (type(est).__name__, est.dimension_)
        lo, hi = est.dimension_ci_
        assert lo < est.dimension_ < hi


def test_twonn_interval_covers_truth_often():
    hits = 0
    for seed in range(20):
        X = datasets.flat_torus(2000, 3, random_state=seed).X
        lo, hi = TwoNN().fit(X).dimension_ci_
        hits += lo <= 3 <= hi
    assert hits >= 16


def test_weibull_and_correlation_dimension():
    X = datasets.flat_torus(20000, 3, random_state=0).X
    w = WeibullShape(random_state=0).fit(X)
    assert abs(w.dimension_ - 3) < 0.4
    c = CorrelationDimension(max_points=4000, n_boot=5, random_state=0).fit(X)
    assert abs(c.dimension_ - 3) < 0.5
    assert c.scales_.shape == c.local_dimensions_.shape


def test_gap_law_estimator_torus_and_cube():
    X = datasets.flat_torus(30000, 4, random_state=0).X
    est = GapLaw(repeats=3, correction=False, n_boot=50, random_state=0, train_queries=False).fit(X)
    assert abs(est.dimension_ - 4) / 4 < 0.05
    assert est.dimension_ci_[0] < est.dimension_ < est.dimension_ci_[1]
    C = datasets.cube(30000, 4, random_state=0).X
    est = GapLaw(repeats=3, n_boot=50, random_state=0).fit(C)
    assert abs(est.dimension_ - 4) / 4 < 0.03


def test_intrinsic_dimension_front_end():
    X = datasets.sphere(5000, 2, random_state=0).X
    res = repgap.intrinsic_dimension(X, method="twonn")
    assert abs(res.dimension - 2) < 0.2 and res.method == "twonn"
    assert "IDResult" in repr(res) and res.to_dict()["method"] == "twonn"
    with pytest.raises(ValueError, match="method must be one of"):
        repgap.intrinsic_dimension(X, method="pca")


def test_id_vs_scale():
    X = datasets.flat_torus(5000, 3, random_state=1).X
    for method in ("gride", "mle"):
        s, dims = repgap.id_vs_scale(X, method=method)
        assert s.shape == dims.shape and np.all(np.diff(s) > 0)
        assert abs(np.median(dims) - 3) < 0.6


def test_duplicate_policies():
    X = datasets.cube(2000, 3, random_state=0).X
    Xd = np.concatenate([X, X[:50]])
    with pytest.raises(ValueError, match="50 duplicate points"):
        TwoNN().fit(Xd)
    a = TwoNN(duplicates="drop").fit(Xd)
    b = TwoNN(duplicates="keep").fit(Xd)
    for est in (a, b):
        assert np.isfinite(est.dimension_) and est.n_duplicates_ == 50
    assert a.n_samples_ == 2000
    m = MLE(duplicates="keep").fit(Xd)
    assert np.isfinite(m.dimension_)
    # rows equal up to the order of their arithmetic are duplicates too
    Xr = np.concatenate([X, X[:5] * (1 + 1e-15)])
    assert TwoNN(duplicates="keep").fit(Xr).n_duplicates_ == 5


def test_distinct_close_points_on_a_curve_are_not_duplicates():
    # 1e5 points on a helix: two pairs of distinct points lie 4.9e-11 and
    # 5.9e-11 of the data scale apart, by chance (about n^2 t pairs within t
    # of the length): the former tolerance 1e-10 refused the sample; such
    # ratios are legitimate draws of the Pareto law (mu ~ 1e5 here)
    from repgap.estimators import _data_scale

    X = datasets.zoo_family("helix", 100000, random_state=1001).X
    st = NeighbourStats(X, 2, duplicates="keep")
    r = np.sort(st.distances[:, 0]) / _data_scale(X)
    assert 1e-11 < r[0] < 1e-10 and st.n_duplicates == 0
    e = TwoNN().fit(st)
    assert e.n_duplicates_ == 0 and abs(e.dimension_ - 1) < 0.05


def test_datasets_report_truth():
    for ds in (datasets.cube(100, 3, random_state=0), datasets.sphere(100, 4, random_state=0),
               datasets.swiss_roll(100, random_state=0), datasets.helix(100, random_state=0),
               datasets.moebius(100, random_state=0), datasets.nonlinear_embedding(100, 3, 10, random_state=0),
               datasets.flat_torus(100, 2, embed_dim=7, noise=0.01, random_state=0)):
        X, d = ds
        assert X.shape[0] == 100 and d == ds.d and "Manifold(" in repr(ds)
    s = datasets.sphere(500, 2, radius=2.0, random_state=1).X
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 2.0)
    np.testing.assert_array_equal(datasets.cube(10, 2, random_state=3).X, datasets.cube(10, 2, random_state=3).X)


def test_pair_counts_match_pdist():
    from scipy.spatial.distance import pdist, cdist

    rng = np.random.default_rng(0)
    X = rng.random((700, 4)) + 1e3
    Y = rng.random((300, 4)) + 1e3
    edges = np.array([0, 0.1, 0.2, 0.4, 0.8, np.inf])
    ref = np.histogram(pdist(X), bins=edges)[0]
    np.testing.assert_array_equal(repgap.pointprocess.pair_distance_counts(X, edges=edges), ref)
    ref2 = np.histogram(cdist(X, Y).ravel(), bins=edges)[0]
    np.testing.assert_array_equal(repgap.pointprocess.pair_distance_counts(X, Y, edges=edges), ref2)


def test_j_function_is_one_for_poisson():
    tr = datasets.flat_torus(20000, 2, random_state=0).X
    te = datasets.flat_torus(5000, 2, random_state=1).X
    r = np.array([0.002, 0.004])
    J = repgap.pointprocess.j_function(tr, te, r)
    np.testing.assert_allclose(J, 1.0, atol=0.08)


def test_bootstrap_means_equal_explicit_resampling():
    from repgap.estimators import bootstrap_means

    rng = np.random.default_rng(0)
    V = rng.random((500, 3))
    got = bootstrap_means(V, 7, np.random.default_rng(5))
    r2 = np.random.default_rng(5)
    want = np.array([V[r2.integers(0, 500, 500)].mean(axis=0) for _ in range(7)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_gap_law_default_on_the_cube_with_boundaries():
    # the default finite-size term: the boundary term in the scale on a cube
    C = datasets.cube(40000, 6, random_state=3).X.astype(np.float32)
    est = GapLaw(repeats=3, n_boot=50, random_state=0).fit(C)
    plain = GapLaw(repeats=3, n_boot=0, correction=False, random_state=0).fit(C)
    assert abs(est.dimension_ - 6) / 6 < 0.025
    assert abs(plain.dimension_ - 6) / 6 > 0.04
    assert est.law_.correction_model == "scale" and est.law_.correction[0] > 0
    assert est.law_alternative_.correction_powers == (2,)
    lo, hi = est.dimension_ci_
    # the union of the two fits' intervals, wider than the chosen one's (the curvature fit lies lower)
    assert est.law_alternative_.dimension < est.law_.dimension
    assert lo == est.law_alternative_.dimension_ci[0] < est.law_.dimension_ci[0] and hi == est.law_.dimension_ci[1]
    assert lo < 6 < hi
    boot = GapLaw(repeats=3, n_boot=50, random_state=0, interval="bootstrap").fit(C)
    assert boot.dimension_ci_ == boot.law_.dimension_ci and boot.dimension_ == est.dimension_
    # the training points as extra queries: same answer within noise, narrower interval
    held = GapLaw(repeats=3, n_boot=50, random_state=0, train_queries=False).fit(C)
    assert held.curve_.n_train_queries == 0 and est.curve_.n_train_queries == est.curve_.distances.shape[2] - 4000
    assert hi - lo < held.dimension_ci_[1] - held.dimension_ci_[0]


def test_gap_law_default_on_the_curved_torus():
    # curvature lowers the gap: the scale coefficient is negative, the curvature term is kept
    T = datasets.flat_torus(25000, 6, random_state=3).X.astype(np.float32)
    est = GapLaw(repeats=3, n_boot=50, random_state=0).fit(T)
    assert est.law_.correction_powers == (2,) and est.law_alternative_.correction_powers == (1,)
    assert fit_law(est.curve_, correction="scale", n_boot=0).correction[0] < 0
    assert abs(est.dimension_ - 6) / 6 < 0.025
    lo, hi = est.dimension_ci_
    assert lo == min(est.law_.dimension_ci[0], est.law_alternative_.dimension_ci[0]) and lo < 6 < hi


def test_gap_law_training_duplicates():
    X = datasets.cube(3000, 3, random_state=0).X
    X[10] = X[20]  # two training rows (or a held-out and a training row) coincide
    with pytest.raises(ValueError, match="duplicate"):
        GapLaw(repeats=2, n_boot=0, random_state=0).fit(X)
    est = GapLaw(repeats=2, n_boot=0, random_state=0, duplicates="drop").fit(X)
    assert est.n_duplicates_ + est.n_train_duplicates_ in (1, 2)
    assert est.curve_.distances.shape[2] == 3000 - (est.n_duplicates_ + est.n_train_duplicates_)
    assert np.all(est.curve_.distances[:, -1] > 0)


def test_benchmark_manifolds():
    from repgap.datasets import BENCHMARK_MANIFOLDS, benchmark_manifold, benchmark_suite

    suite = benchmark_suite(400, random_state=0)
    assert list(suite) == list(BENCHMARK_MANIFOLDS)
    for name, m in suite.items():
        _, d, D, _ = BENCHMARK_MANIFOLDS[name]
        assert m.X.shape == (400, D) and m.d == d and np.all(np.isfinite(m.X)), name
    np.testing.assert_allclose(np.linalg.norm(suite["M1_Sphere"].X, axis=1), 1.0)
    cube = suite["M10a_Cubic"].X[:, :11]
    on_face = np.any((cube == 0) | (cube == 1), axis=1)
    assert on_face.all() and np.all((cube >= 0) & (cube <= 1))
    # the linear ones have the stated rank; the nonlinear M6 spans more than d
    assert np.linalg.matrix_rank(suite["M2_Affine_3to5"].X - suite["M2_Affine_3to5"].X.mean(0)) == 3
    assert np.linalg.matrix_rank(suite["M9_Affine"].X) == 20
    a = benchmark_manifold("M7_Roll", 50, random_state=1).X
    np.testing.assert_array_equal(a, benchmark_manifold("M7_Roll", 50, random_state=1).X)
    with pytest.raises(ValueError, match="unknown benchmark manifold"):
        benchmark_manifold("M99", 10)
    # TwoNN on an easy member: the 2-D swiss roll
    est = repgap.intrinsic_dimension(benchmark_manifold("M7_Roll", 4000, random_state=0).X, method="twonn")
    assert abs(est.dimension - 2) < 0.25


def test_calibrated_twonn_removes_the_high_dimensional_bias():
    from repgap.estimators import CalibratedTwoNN, TwoNN, calibrate_twonn, reference_twonn

    X = datasets.benchmark_manifold("M10b_Cubic", 2500, random_state=0).X  # a 17-D cube boundary
    raw = TwoNN().fit(X).dimension_
    cal = CalibratedTwoNN().fit(X)
    assert raw < 15.5                                  # the known underestimate
    assert abs(cal.dimension_ - 17) / 17 < 0.1
    assert cal.dimension_ci_[0] < cal.dimension_ < cal.dimension_ci_[1]
    assert cal.raw_dimension_ == pytest.approx(raw)
    # the calibration inverts the reference curve at integers and is monotone
    g5 = reference_twonn(2500, 5)
    assert calibrate_twonn(g5, 2500) == pytest.approx(5.0)
    assert calibrate_twonn(0.9 * g5, 2500) < 5 < calibrate_twonn(1.1 * g5, 2500)
    # the default method of intrinsic_dimension
    res = repgap.intrinsic_dimension(X)
    assert res.method == "calibrated" and res.dimension == pytest.approx(cal.dimension_)
    # low dimension: calibration changes little
    Y = datasets.benchmark_manifold("M7_Roll", 2500, random_state=0).X
    assert abs(CalibratedTwoNN().fit(Y).dimension_ - 2) < 0.15


def test_gap_law_far_from_the_asymptotic_regime_warns():
    # a 30-cube with 3000 points: the boundary factor is far beyond the range
    # the scale model was checked on, so the curvature term is kept, the
    # interval spans both models, and a warning says so
    X = datasets.cube(3000, 30, random_state=0).X
    with pytest.warns(RuntimeWarning, match="not in the asymptotic regime.*finite-size term is large"):
        est = GapLaw(repeats=2, n_boot=30, random_state=0).fit(X)
    assert est.pre_asymptotic_ and est.law_.correction_powers == (2,)
    assert est.law_alternative_.correction_model == "scale" and est.law_alternative_.correction[0] > 0
    lo, hi = est.dimension_ci_
    assert lo <= est.law_.dimension_ci[0] and hi >= est.law_alternative_.dimension_ci[1] > est.law_.dimension_ci[1]
    assert not GapLaw(repeats=2, n_boot=0, random_state=0).fit(datasets.cube(3000, 3, random_state=0).X).pre_asymptotic_


def test_gap_law_caps_the_automatic_training_queries(monkeypatch):
    import repgap.estimators as E

    monkeypatch.setattr(E, "AUTO_TRAIN_QUERIES", 500)
    est = GapLaw(repeats=2, n_boot=0, random_state=0).fit(datasets.cube(3000, 3, random_state=0).X)
    assert est.curve_.n_train_queries == 500 and est.curve_.distances.shape[2] == 300 + 500


def test_interval_parts_reach_the_result_and_report():
    # the reported interval is the sampling one widened by the models'
    # spread; both parts travel with the result (IDResult.to_dict, the
    # analysis report), so a reader can tell which part dominates
    import math

    from repgap import analyze, intrinsic_dimension
    from repgap.estimators import interval_parts

    X = np.random.default_rng(0).random((1500, 6))
    res = intrinsic_dimension(X, random_state=0)
    d = res.to_dict()
    assert d["model_term_name"] == "calibration_term_"
    lo, hi = d["ci"]
    slo, shi = d["sampling_ci"]
    assert lo <= slo < shi <= hi
    z = 1.959963984540054
    assert hi - res.dimension == pytest.approx(math.hypot(shi - res.dimension, z * d["model_term"]), rel=1e-9)
    assert d["rule"] == "quadrature" and "reference_ci" not in d
    # conservative: the models' term dominates (the interval at least
    # CONSERVATIVE_RATIO times the sampling one)
    from repgap.estimators import CONSERVATIVE_RATIO

    assert d["conservative"] is ((hi - lo) >= CONSERVATIVE_RATIO * (shi - slo)) is res.estimator.conservative_
    # the other estimators report the union of their sampling interval and
    # the default's interval on the same neighbours
    for est in (MLE().fit(X), TwoNN().fit(X), GRIDE(n1=4).fit(X)):
        p = interval_parts(est)
        assert p["rule"] == "union"
        assert p["model_term_name"] == ("calibration_term_" if isinstance(est, TwoNN) else "scale_term_")
        (slo, shi), (rlo, rhi) = p["sampling_ci"], p["reference_ci"]
        assert est.dimension_ci_ == pytest.approx((min(slo, rlo), max(shi, rhi)), rel=1e-12)
        assert p["reference_ci"] == pytest.approx(res.ci, rel=1e-12)  # the default's interval, same points
    gl = GapLaw(random_state=0, n_boot=0, repeats=1).fit(X[:600])
    assert interval_parts(gl) == {} and gl.conservative_ is False
    a = analyze(X[:1000], random_state=0, methods=("twonn", "mle"))
    rep = a.to_dict()["estimators"]
    assert rep["twonn"]["model_term_name"] == "calibration_term_" and len(rep["mle"]["sampling_ci"]) == 2
    assert "models' spread" in a.summary()
    # a 12-cube: the ball's correction is many sampling errors, the
    # interval is marked in the table, the report and the figure's legend
    cube = datasets.zoo_family("cube12", 1000, random_state=0).X
    a = analyze(cube, random_state=0, methods=("calibrated",))
    assert a.to_dict()["estimators"]["calibrated"]["conservative"] is True
    assert "(conservative)" in a.summary() and "covers more than the nominal rate" in a.summary()
