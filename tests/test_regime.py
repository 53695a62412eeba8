"""The asymptotic-regime rule of the gap law, the storage-precision check, and
the validity flags of the point-process estimators (issue #13)."""
import json
import warnings

import numpy as np
import pytest

import repgap
from repgap import datasets
from repgap._precision import STORAGE_PRECISION_TOL, StoragePrecisionWarning, storage_resolution
from repgap.estimators import GRIDE, CorrelationDimension, GapLaw, TwoNN, WeibullShape
from repgap.regime import assess_regime


def _standardized(X):
    X = np.asarray(X, dtype=np.float64)
    return (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)


def test_digits_is_flagged_pre_asymptotic_and_the_headline_spans_the_local_slopes(tmp_path):
    sk = pytest.importorskip("sklearn.datasets")
    X = sk.load_digits().data.astype(np.float64)
    with pytest.warns(RuntimeWarning, match="not in the asymptotic regime"):
        a = repgap.analyze(X, repeats=3, n_boot=50, random_state=0, progress=False, test_size=0.15,
                           methods=("twonn", "gride"))
    reg = a.regime
    assert reg is not None and reg.regime == "pre-asymptotic" and not reg.asymptotic
    lo, hi = a.dimension_ci
    # the headline interval holds what the data support: every local slope
    # of the curve and the law's models
    finite = np.isfinite(reg.local_dimensions)
    assert lo <= np.min(reg.local_dimensions[finite]) and hi >= a.law.dimension_ci[1]
    assert lo <= reg.top_ci[0] and reg.top_ci[1] <= hi
    # the table, the report and the prediction say so
    text = a.summary()
    assert "NOT in the asymptotic regime" in text and "[extrapolated from a pre-asymptotic curve]" in text
    assert "[pre-asymptotic]" in text
    d = json.loads(json.dumps(a.to_dict()))
    assert d["regime"]["regime"] == "pre-asymptotic" and d["target"]["extrapolates_unsupported_model"]
    assert d["estimators"]["gap"]["flags"] == {"pre-asymptotic": True}
    with pytest.warns(RuntimeWarning, match="extrapolates"):
        a.law.n_for_gap(0.5 * a.curve.gaps[-1])
    plt = pytest.importorskip("matplotlib")
    from repgap.plot import plot_dimension_vs_scale

    fig = plot_dimension_vs_scale(a)
    assert any("pre-asymptotic" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


@pytest.mark.parametrize("loader", ["load_iris", "load_breast_cancer"])
def test_small_real_tables_are_pre_asymptotic(loader):
    sk = pytest.importorskip("sklearn.datasets")
    X = np.unique(_standardized(getattr(sk, loader)().data), axis=0)
    with pytest.warns(RuntimeWarning, match="not in the asymptotic regime"):
        est = GapLaw(random_state=0, n_boot=50, repeats=3).fit(X)
    assert est.pre_asymptotic_ and est.regime_.regime == "pre-asymptotic"
    assert est.dimension_ci_[0] <= est.models_ci_[0] and est.dimension_ci_[1] >= est.models_ci_[1]
    assert est.law_.regime == "pre-asymptotic"


def test_flat_data_in_the_asymptotic_regime_are_not_flagged():
    for X, d in ((datasets.flat_torus(8000, 3, random_state=0).X, 3), (datasets.sphere(8000, 2, random_state=1).X, 2)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            est = GapLaw(random_state=0, n_boot=50, repeats=3).fit(X)
        assert est.regime_.regime == "asymptotic" and not est.pre_asymptotic_
        assert est.dimension_ci_ == est.models_ci_
        assert abs(est.regime_.top_dimension - d) / d < 0.06
        assert est.regime_.local_dimensions.shape == (len(est.law_.sizes) - 1,)


def test_regime_rule_on_constructed_curves():
    # an exact power law: the top slope equals the law's d
    est = GapLaw(random_state=0, n_boot=30, repeats=2, check_regime=False).fit(
        datasets.flat_torus(4000, 2, random_state=2).X)
    reg = assess_regime(est.curve_, est.law_, n_boot=30, random_state=0)
    assert reg.regime == "asymptotic" and reg.supported_range == tuple(est.law_.dimension_ci)
    # a forced verdict (the scale model's range guard) is pre-asymptotic and widens
    forced = assess_regime(est.curve_, est.law_, n_boot=30, random_state=0, forced_reason="test")
    assert forced.regime == "pre-asymptotic" and forced.reason.startswith("test")
    assert forced.supported_range[0] <= est.law_.dimension_ci[0]
    d = forced.to_dict()
    assert d["regime"] == "pre-asymptotic" and len(d["local_dimensions"]) == len(est.law_.sizes) - 1


def test_storage_precision_warns_on_the_offset_float32_cube_not_on_float64():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((50, 3)))
    X64 = rng.random((6000, 3)) @ Q.T + 1e4
    X32 = X64.astype(np.float32)
    with pytest.warns(StoragePrecisionWarning, match="store them as float64"):
        est = GapLaw(random_state=0, n_boot=0, repeats=2, duplicates="drop", check_regime=False).fit(X32)
    sp = est.storage_precision_
    assert est.storage_limited_ and sp["ratio"] > STORAGE_PRECISION_TOL and sp["dtype"] == "float32"
    # the float32 spacing at 1e4 is 2^-10, over 50 coordinates
    assert sp["resolution"] == pytest.approx(np.sqrt(50 * 2.0**-20 / 6), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoragePrecisionWarning)
        est64 = GapLaw(random_state=0, n_boot=0, repeats=2, check_regime=False).fit(X64)
        tw = TwoNN().fit(X64)
    assert not est64.storage_limited_ and not tw.storage_limited_
    with pytest.warns(StoragePrecisionWarning):
        assert TwoNN(duplicates="drop").fit(X32).storage_limited_
    # centred before storing, float32 is fine again
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoragePrecisionWarning)
        assert not TwoNN().fit((X64 - X64.mean(0)).astype(np.float32)).storage_limited_
    assert storage_resolution(np.arange(12).reshape(4, 3)) == 0.0


def test_gride_at_n1_1_equals_twonn_with_ties():
    rng = np.random.default_rng(3)
    X = np.round(rng.random((3000, 4)) * 12)  # quantised: many exact ties among distances
    t = TwoNN(duplicates="drop").fit(X)
    g = GRIDE(duplicates="drop").fit(X)
    assert t.n_ties_ > 0 and g.n_ties_[0] == t.n_ties_
    assert g.dimension_ == pytest.approx(t.dimension_, rel=1e-12)
    assert g.dimension_ci_ == pytest.approx(t.dimension_ci_, rel=1e-12)
    assert g.sampling_ci_ == pytest.approx(t.sampling_ci_, rel=1e-12)
    assert g.scale_term_ == pytest.approx(t.calibration_term_, rel=1e-12)
    # and on continuous data, at every n1 the estimate is finite with no ties
    g2 = GRIDE().fit(datasets.cube(2000, 3, random_state=0).X)
    assert np.all(g2.n_ties_ == 0) and np.all(np.isfinite(g2.dimensions_))


def test_weibull_flags_a_varying_density():
    with pytest.warns(RuntimeWarning, match="WeibullShape"):
        e = WeibullShape(random_state=0).fit(np.random.default_rng(0).standard_normal((3000, 3)))
    assert not e.valid_ and e.density_spread_ > 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ok = WeibullShape(random_state=0).fit(datasets.flat_torus(3000, 3, random_state=0).X)
    assert ok.valid_ and 0.7 < ok.density_spread_ < 1.4 and ok.dimension_ci_[0] < 3 < ok.dimension_ci_[1]


def test_correlation_dimension_flags_too_few_pairs():
    rng = np.random.default_rng(0)
    V = rng.standard_normal((30, 5))
    V *= (rng.random((30, 1)) ** 0.2) / np.linalg.norm(V, axis=1, keepdims=True)
    with pytest.warns(RuntimeWarning, match="pairs"):
        e = CorrelationDimension(random_state=0, n_boot=5).fit(V)
    assert e.few_pairs_ and e.n_pairs_fit_ < 50
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        big = CorrelationDimension(random_state=0, n_boot=5).fit(datasets.cube(3000, 3, random_state=0).X)
    assert not big.few_pairs_ and big.n_pairs_fit_ >= 50


def test_analysis_reports_every_estimators_parameters():
    X = datasets.flat_torus(3000, 3, random_state=0).X
    a = repgap.analyze(X, repeats=2, n_boot=20, random_state=0, progress=False)
    d = a.to_dict()
    p = d["estimators"]
    assert p["mle"]["params"]["k1"] == 10 and p["mle"]["params"]["k2"] == 20
    assert p["gride"]["params"]["n1"] == 1 and p["corr"]["params"]["c_range"] == [1e-3, 3e-2]
    assert p["gap"]["params"]["sizes"][1] == a.n_train and p["twonn"]["params"]["method"] == "mle"
    assert "k=10..20" in a.summary() and "n1=1, n2=2" in a.summary()
    assert d["storage_precision"]["limited"] is False


def test_regime_of_a_noisy_power_law_in_high_dimension_is_asymptotic():
    # d = 40 with few queries: some bootstrap slopes are flat, so dimension
    # intervals reach +inf; they must stay +inf (not NaN) and overlap the law's
    from repgap.law import fit_law

    X = np.random.default_rng(1).random((600, 40))
    c = repgap.gap_curve(X[:560], X[560:], repeats=3, random_state=0,
                         sizes=np.unique(np.geomspace(20, 560, 8).astype(int)))
    law = fit_law(c, correction=False, random_state=0)
    reg = assess_regime(c, law, random_state=0)
    assert reg.regime == "asymptotic"
    assert not np.isnan(reg.local_cis).any() and not np.isnan(reg.top_ci).any()


def test_storage_check_ignores_exact_duplicates():
    from repgap._precision import check_storage_precision

    X = np.random.default_rng(0).integers(0, 3, (400, 3)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoragePrecisionWarning)
        sp = check_storage_precision(X, np.zeros(400))
    assert not sp["limited"] and np.isnan(sp["ratio"])
