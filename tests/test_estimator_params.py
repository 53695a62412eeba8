"""Parameter checks of the estimators, the law and the diffusion tools (issue #15, items 2 and 3).

Every parameter is checked at the start of ``fit`` (or of the function),
before any work: the data passed here raise AssertionError the moment
anything reads them, so a check made after the work has started fails the
test instead of raising the expected error. ``__init__`` stores its
arguments unchanged (scikit-learn's convention).
"""
import math
import re
import warnings

import numpy as np
import pytest

import repgap
from repgap import diffusion, pointprocess
from repgap.estimators import (MLE, GRIDE, CalibratedTwoNN, CorrelationDimension, GapLaw, NeighbourStats, TwoNN,
                               WeibullShape)
from repgap.law import NonDecayingCurveWarning, _dimension_of_exponent


class Untouchable:
    """Data that must not be read: any conversion to an array fails loudly."""

    shape = (100, 3)
    ndim = 2
    dtype = np.dtype(np.float64)

    def __array__(self, *args, **kwargs):
        raise AssertionError("the data were read before the parameters were checked")

    def __len__(self):
        raise AssertionError("the data were read before the parameters were checked")

    def __getitem__(self, item):
        raise AssertionError("the data were read before the parameters were checked")


DATA = Untouchable()
NAN, INF = float("nan"), float("inf")

# parameters every estimator that has them shares: (kwargs, exception, parameter name)
COMMON = [
    (dict(confidence=0.0), ValueError, "confidence"),
    (dict(confidence=1.0), ValueError, "confidence"),
    (dict(confidence=NAN), ValueError, "confidence"),
    (dict(confidence=INF), ValueError, "confidence"),
    (dict(confidence="0.9"), TypeError, "confidence"),
    (dict(duplicates="ignore"), ValueError, "duplicates"),
    (dict(duplicate_tol=-1.0), ValueError, "duplicate_tol"),
    (dict(duplicate_tol=NAN), ValueError, "duplicate_tol"),
    (dict(duplicate_tol="small"), TypeError, "duplicate_tol"),
    (dict(random_state=-1), ValueError, "random_state"),
    (dict(random_state=1.5), TypeError, "random_state"),
    (dict(random_state="seed"), TypeError, "random_state"),
    (dict(random_state=True), TypeError, "random_state"),
    (dict(group="rotation"), TypeError, "group"),
    (dict(backend="gpu"), ValueError, "backend"),
    (dict(backend=3), TypeError, "backend"),
    (dict(n_jobs=0), ValueError, "n_jobs"),
    (dict(n_jobs=1.5), TypeError, "n_jobs"),
]

SPECIFIC = {
    TwoNN: [
        (dict(method="lsq"), ValueError, "method"),
        (dict(method=None), ValueError, "method"),
        (dict(discard_fraction=1.0), ValueError, "discard_fraction"),
        (dict(discard_fraction=2.0), ValueError, "discard_fraction"),
        (dict(discard_fraction=-0.1), ValueError, "discard_fraction"),
        (dict(discard_fraction=NAN), ValueError, "discard_fraction"),
        (dict(discard_fraction="0.1"), TypeError, "discard_fraction"),
        (dict(method="fit", n_boot=0), ValueError, "n_boot"),
        (dict(method="fit", n_boot=-1), ValueError, "n_boot"),
        (dict(n_boot=2.5), TypeError, "n_boot"),
        (dict(n_boot=200.0), TypeError, "n_boot"),
        (dict(calibration="cube"), ValueError, "calibration"),
        (dict(calibration_size=2.5), TypeError, "calibration_size"),
        (dict(calibration_size=0), ValueError, "calibration_size"),
    ],
    CalibratedTwoNN: [
        (dict(method="lsq"), ValueError, "method"),
        (dict(calibration_size=-5), ValueError, "calibration_size"),
        (dict(discard_fraction=INF), ValueError, "discard_fraction"),
    ],
    MLE: [
        (dict(k1=1), ValueError, "k1"),
        (dict(k1=2.5), TypeError, "k1"),
        (dict(k1=NAN), TypeError, "k1"),
        (dict(k2=20.0), TypeError, "k2"),
        (dict(k1=10, k2=5), ValueError, "k2"),
        (dict(interval="exact"), ValueError, "interval"),
        (dict(n_boot=0), ValueError, "n_boot"),
        (dict(n_boot=0, interval="bootstrap"), ValueError, "n_boot"),
        (dict(n_boot=1.5), TypeError, "n_boot"),
        (dict(n_boot=-1, interval="delta"), ValueError, "n_boot"),
    ],
    GRIDE: [
        (dict(n1=0), ValueError, "n1"),
        (dict(n1=-1), ValueError, "n1"),
        (dict(n1=1.5), TypeError, "n1"),
        (dict(n1=NAN), TypeError, "n1"),
        (dict(n1="1"), TypeError, "n1"),
        (dict(max_n1=0), ValueError, "max_n1"),
        (dict(max_n1=32.0), TypeError, "max_n1"),
    ],
    CorrelationDimension: [
        (dict(c_range=(0.1,)), TypeError, "c_range"),
        (dict(c_range="ab"), TypeError, "c_range"),
        (dict(c_range=0.1), TypeError, "c_range"),
        (dict(c_range=(0.3, 0.1)), ValueError, "c_range"),
        (dict(c_range=(0.0, 0.1)), ValueError, "c_range"),
        (dict(c_range=(0.1, 1.5)), ValueError, "c_range"),
        (dict(c_range=(NAN, 0.1)), ValueError, "c_range"),
        (dict(n_bins=1), ValueError, "n_bins"),
        (dict(n_bins=2.5), TypeError, "n_bins"),
        (dict(max_points=1), ValueError, "max_points"),
        (dict(max_points=1e4), TypeError, "max_points"),
        (dict(max_points_group=0), ValueError, "max_points_group"),
        (dict(n_boot=0), ValueError, "n_boot"),
        (dict(n_boot=INF), TypeError, "n_boot"),
    ],
    WeibullShape: [
        (dict(test_size=NAN), ValueError, "test_size"),
        (dict(test_size=0.0), ValueError, "test_size"),
        (dict(test_size=1.0), ValueError, "test_size"),
        (dict(test_size=1.5), ValueError, "test_size"),
        (dict(test_size=-3), ValueError, "test_size"),
        (dict(test_size=0), ValueError, "test_size"),
        (dict(test_size=True), TypeError, "test_size"),
        (dict(test_size="0.2"), TypeError, "test_size"),
    ],
    GapLaw: [
        (dict(test_size=NAN), ValueError, "test_size"),
        (dict(test_size=INF), ValueError, "test_size"),
        (dict(test_size=None), TypeError, "test_size"),
        (dict(sizes=[100, 50]), ValueError, "sizes"),
        (dict(sizes=[10.5, 20]), ValueError, "sizes"),
        (dict(sizes=[0, 20]), ValueError, "sizes"),
        (dict(sizes=[]), ValueError, "sizes"),
        (dict(sizes="abc"), TypeError, "sizes"),
        (dict(sizes=[[10, 20]]), TypeError, "sizes"),
        (dict(min_size=1), ValueError, "min_size"),
        (dict(min_size=2.5), TypeError, "min_size"),
        (dict(repeats=0), ValueError, "repeats"),
        (dict(repeats=2.5), TypeError, "repeats"),
        (dict(correction="quadratic"), ValueError, "correction"),
        (dict(correction=1.5), TypeError, "correction"),
        (dict(correction=None), TypeError, "correction"),
        (dict(interval="exact"), ValueError, "interval"),
        (dict(n_boot=-1), ValueError, "n_boot"),
        (dict(n_boot=1.5), TypeError, "n_boot"),
        (dict(train_queries="all"), ValueError, "train_queries"),
        (dict(train_queries=-1), ValueError, "train_queries"),
        (dict(train_queries=1.5), TypeError, "train_queries"),
        (dict(check_regime="yes"), TypeError, "check_regime"),
    ],
}


def _cases():
    for cls, specific in SPECIFIC.items():
        names = set(cls().get_params())
        for kwargs, exc, name in COMMON + specific:
            if set(kwargs) <= names:
                yield pytest.param(cls, kwargs, exc, name, id=f"{cls.__name__}-{kwargs}")


def _pattern(name):
    # the message names the parameter and says what is allowed
    return rf"(^|\W){re.escape(name)}(\W|$).*must"


@pytest.mark.parametrize("cls, kwargs, exc, name", list(_cases()))
def test_fit_checks_every_parameter_before_any_work(cls, kwargs, exc, name):
    est = cls(**kwargs)
    # __init__ stores the arguments as given (scikit-learn's convention)
    for k, v in kwargs.items():
        assert getattr(est, k) is v
    with pytest.raises(exc, match=_pattern(name)):
        est.fit(DATA)


def test_the_message_shows_the_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"^n1 must be an integer >= 1, got 0$"):
        GRIDE(n1=0).fit(DATA)
    with pytest.raises(TypeError, match=r"n1 must be an integer >= 1, got 1\.5"):
        GRIDE(n1=1.5).fit(DATA)
    with pytest.raises(ValueError, match=r"discard_fraction must be a finite number in \[0, 1\), got 2"):
        TwoNN(method="fit", discard_fraction=2.0).fit(DATA)
    with pytest.raises(ValueError, match=r"n_boot must be an integer >= 1.*interval='delta'"):
        MLE(n_boot=0).fit(DATA)
    with pytest.raises(ValueError, match=r"test_size must be a fraction in \(0, 1\).*got nan"):
        GapLaw(test_size=NAN).fit(DATA)
    with pytest.raises(ValueError, match=r"n_bins must be an integer >= 4, got 1"):
        CorrelationDimension(n_bins=1).fit(DATA)


def test_neighbour_stats_checks_its_parameters_first():
    with pytest.raises(TypeError, match="^k must"):
        NeighbourStats(DATA, 2.5)
    with pytest.raises(ValueError, match="^duplicates must"):
        NeighbourStats(DATA, 2, duplicates="nope")
    with pytest.raises(ValueError, match="^duplicate_tol must"):
        NeighbourStats(DATA, 2, duplicate_tol=NAN)


def test_valid_parameters_still_fit():
    X = np.random.default_rng(0).random((400, 3))
    assert 2 < GRIDE(n1=2, max_n1=np.int64(4)).fit(X).dimension_ < 4
    assert 2 < TwoNN(method="fit", discard_fraction=0.0, n_boot=20, random_state=np.int64(3)).fit(X).dimension_ < 4
    assert 2 < MLE(n_boot=0, interval="delta").fit(X).dimension_ < 4
    assert 2 < TwoNN(n_boot=0).fit(X).dimension_ < 4  # the MLE interval is no bootstrap


# --------------------------------------------------------------------------- fit_law
FIT_LAW = [
    (dict(confidence=1.5), ValueError, "confidence"),
    (dict(confidence=NAN), ValueError, "confidence"),
    (dict(n_boot=-1), ValueError, "n_boot"),
    (dict(n_boot=2.5), TypeError, "n_boot"),
    (dict(r=0.0), ValueError, "r"),
    (dict(r=NAN), ValueError, "r"),
    (dict(r="2"), TypeError, "r"),
    (dict(min_size=-1), ValueError, "min_size"),
    (dict(min_size=NAN), ValueError, "min_size"),
    (dict(offset="yes"), TypeError, "offset"),
    (dict(correction=1.5), TypeError, "correction"),
    (dict(correction="quadratic"), ValueError, "correction"),
    (dict(random_state="seed"), TypeError, "random_state"),
    (dict(progress="yes"), TypeError, "progress"),
]


@pytest.mark.parametrize("kwargs, exc, name", FIT_LAW, ids=[str(c[0]) for c in FIT_LAW])
def test_fit_law_checks_its_parameters_before_reading_the_curve(kwargs, exc, name):
    with pytest.raises(exc, match=_pattern(name)):
        repgap.fit_law(DATA, DATA, **kwargs)


# --------------------------------------------------------------------------- diffusion and point processes
DIFFUSION = [
    (lambda: diffusion.empirical_denoiser(DATA, DATA, "0.1"), TypeError, "sigma"),
    (lambda: diffusion.empirical_denoiser(DATA, DATA, NAN), ValueError, "sigma"),
    (lambda: diffusion.empirical_denoiser(DATA, DATA, 0.0), ValueError, "sigma"),
    (lambda: diffusion.empirical_denoiser(DATA, DATA, [[0.1, 0.2]]), ValueError, "sigma"),
    (lambda: diffusion.empirical_denoiser(DATA, DATA, 0.1, max_memory=0), ValueError, "max_memory"),
    (lambda: diffusion.empirical_denoiser(DATA, DATA, 0.1, max_memory="1MB"), TypeError, "max_memory"),
    (lambda: diffusion.empirical_denoiser(DATA, DATA, 0.1, group="sign"), TypeError, "group"),
    (lambda: diffusion.denoising_gap(DATA, DATA, [-1.0]), ValueError, "sigmas"),
    (lambda: diffusion.denoising_gap(DATA, DATA, [0.1], n_noise=0), ValueError, "n_noise"),
    (lambda: diffusion.denoising_gap(DATA, DATA, [0.1], n_noise=2.5), TypeError, "n_noise"),
    (lambda: diffusion.denoising_gap(DATA, DATA, [0.1], n_noise=True), TypeError, "n_noise"),
    (lambda: diffusion.denoising_gap(DATA, DATA, [0.1], random_state=-1), ValueError, "random_state"),
    (lambda: diffusion.denoising_gap(DATA, DATA, [0.1], backend="gpu"), ValueError, "backend"),
    (lambda: diffusion.memorization(DATA, DATA, ratio=1.5), ValueError, "ratio"),
    (lambda: diffusion.memorization(DATA, DATA, ratio=NAN), ValueError, "ratio"),
    (lambda: diffusion.memorization(DATA, DATA, ratio="1/3"), TypeError, "ratio"),
    (lambda: diffusion.memorization(DATA, DATA, n_jobs=0), ValueError, "n_jobs"),
    (lambda: diffusion.MemorizationMeter(DATA, ratio=0.0), ValueError, "ratio"),
    (lambda: diffusion.MemorizationMeter(DATA, backend="gpu"), ValueError, "backend"),
    (lambda: pointprocess.pair_distance_counts(DATA, edges=[1.0, 0.5]), ValueError, "edges"),
    (lambda: pointprocess.pair_distance_counts(DATA, edges=[0.0, 1.0], n_jobs=0), ValueError, "n_jobs"),
    (lambda: pointprocess.correlation_integral(DATA, [0.0, 1.0]), ValueError, "r"),
    (lambda: pointprocess.nn_distance_cdf(DATA, [NAN]), ValueError, "r"),
    (lambda: pointprocess.empty_space_cdf(DATA, DATA, "r"), TypeError, "r"),
    (lambda: pointprocess.ripley_k(DATA, [0.1], volume=0.0), ValueError, "volume"),
    (lambda: pointprocess.ripley_l(DATA, [0.1], dim=NAN), ValueError, "dim"),
]


@pytest.mark.parametrize("call, exc, name", DIFFUSION, ids=[f"{i}-{c[2]}" for i, c in enumerate(DIFFUSION)])
def test_diffusion_and_point_process_functions_check_parameters_first(call, exc, name):
    with pytest.raises(exc, match=_pattern(name)):
        call()


# --------------------------------------------------------------------------- the denoiser's limits
def _points():
    rng = np.random.default_rng(0)
    X = rng.random((300, 3))
    Y = X[:7] + 1e-3 * rng.standard_normal((7, 3))
    _, idx = repgap.knn(Y, X, k=1)
    return X, Y, idx[:, 0]


def test_denoiser_at_a_vanishing_sigma_is_the_nearest_training_point_exactly():
    X, Y, nearest = _points()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = diffusion.empirical_denoiser(X, Y, 1e-300)
        many = diffusion.empirical_denoiser(X, Y, [1e-300, 1e-3, 1e300])
    np.testing.assert_array_equal(out, X[nearest])
    np.testing.assert_array_equal(many[0], X[nearest])
    assert np.all(np.isfinite(many))
    np.testing.assert_allclose(many[2], np.broadcast_to(X.mean(0), Y.shape), rtol=1e-12)
    # tiles: the running sums reset exactly when a nearer point comes later
    np.testing.assert_array_equal(diffusion.empirical_denoiser(X, Y, 1e-300, max_memory=1), X[nearest])


def test_denoiser_averages_exact_ties_in_the_limit():
    T = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 4.0], [0.0, -4.0]])
    out = diffusion.empirical_denoiser(T, np.array([[0.0, 0.5]]), 1e-300)
    np.testing.assert_array_equal(out, [[0.0, 0.0]])


def test_denoiser_is_finite_and_scale_equivariant_for_huge_and_tiny_data():
    X, Y, nearest = _points()
    for c in (1e200, 1e-200):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            snap = diffusion.empirical_denoiser(X * c, Y * c, 1.0 if c > 1 else 1e-300)
            soft = diffusion.empirical_denoiser(X * c, Y * c, 0.05 * c)
        assert np.all(np.isfinite(snap)) and np.all(np.isfinite(soft))
        np.testing.assert_array_equal(snap, (X * c)[nearest])
        np.testing.assert_allclose(soft / c, diffusion.empirical_denoiser(X, Y, 0.05), rtol=1e-12, atol=1e-15)


def test_denoiser_limits_on_the_torch_path():
    torch = pytest.importorskip("torch")
    X, Y, nearest = _points()
    out = diffusion.empirical_denoiser(torch.from_numpy(X), torch.from_numpy(Y), [1e-300, 0.05]).cpu().numpy()
    np.testing.assert_array_equal(out[0], X[nearest])
    np.testing.assert_allclose(out[1], diffusion.empirical_denoiser(X, Y, 0.05), rtol=1e-12)
    big = diffusion.empirical_denoiser(torch.from_numpy(X * 1e200), torch.from_numpy(Y * 1e200), 1.0).numpy()
    np.testing.assert_array_equal(big, (X * 1e200)[nearest])


def test_denoising_gap_ratio_survives_huge_data():
    X, _, _ = _points()
    tr, te = X[:250], X[250:]
    ref = diffusion.denoising_gap(tr, te, [1e-4, 0.05], n_noise=2, random_state=0)
    with pytest.warns(RuntimeWarning, match="outside the range of float64"):
        big = diffusion.denoising_gap(tr * 1e200, te * 1e200, [1e196, 0.05e200], n_noise=2, random_state=0)
    np.testing.assert_allclose(big.ratio, ref.ratio, rtol=1e-9)
    assert np.all(np.isinf(big.errors))
    # duplicates of the training set: a zero gap, the ratio is NaN and a warning says why
    with pytest.warns(RuntimeWarning, match="Representation Gap is 0"):
        dup = diffusion.denoising_gap(tr, tr[:20], [0.05], n_noise=1, random_state=0)
    assert np.all(np.isnan(dup.ratio))


# --------------------------------------------------------------------------- the law on curves that do not decay
def test_fit_law_on_a_rising_curve_warns_and_flags():
    n = np.geomspace(100, 5000, 8)
    for correction in (False, "scale", "auto", "curvature"):
        with pytest.warns(NonDecayingCurveWarning, match="rises with n.*not identified"):
            fit = repgap.fit_law(n, 0.1 * n**0.3, correction=correction)
        assert fit.flags == ("not decaying",)
        assert fit.dimension == math.inf and fit.dimension_ci[1] == math.inf
    assert issubclass(NonDecayingCurveWarning, RuntimeWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = repgap.fit_law(n, 2 * n**-0.5)
    assert ok.flags == () and ok.dimension == pytest.approx(4)


def test_an_exponent_without_decay_leaves_the_upper_end_unbounded():
    assert _dimension_of_exponent(-0.1, 2.0) == math.inf
    assert _dimension_of_exponent(0.0, 2.0) == math.inf
    assert _dimension_of_exponent(1e-6, 2.0) == math.inf  # the fit's lower bound: no decay
    assert _dimension_of_exponent(0.5, 2.0) == 4.0
    # a weak decay whose interval reaches alpha <= 0: the data do not bound d from above
    n = np.geomspace(100, 1e4, 6)
    g = n**-0.01 * np.array([1.0, 1.05, 0.95, 1.04, 0.96, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = repgap.fit_law(n, g)
    assert fit.flags == () and math.isfinite(fit.dimension)
    assert fit.exponent_ci[0] <= 0 and fit.dimension_ci[1] == math.inf


def test_gap_law_flags_a_flat_gap_curve():
    # three distinct training positions, repeated: every size holds them all,
    # so the gap of the held-out points is the same at every size
    rng = np.random.default_rng(0)
    train = np.repeat(rng.random((3, 2)), 200, axis=0)[rng.permutation(600)]
    test = rng.random((60, 2)) + 2.0
    est = GapLaw(sizes=[100, 200, 300, 400, 600], repeats=2, n_boot=20, random_state=0, train_queries=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(train, test=test)
    # one warning, that says what is wrong (not one per model fitted, nor a pre-asymptotic one beside it)
    assert [w.category for w in caught] == [NonDecayingCurveWarning]
    assert "does not decay" in str(caught[0].message)
    assert est.not_decaying_ and "not decaying" in est.flags_
    assert est.dimension_ == math.inf and est.dimension_ci_ == (math.inf, math.inf)
    assert "not decaying" in est.law_.flags


# --------------------------------------------------------------------------- repeated points
def test_repeated_points_get_a_message_that_says_so():
    X = np.random.default_rng(0).random((300, 3))
    Xr = np.repeat(X, 5, axis=0)
    with pytest.raises(ValueError, match=r"nearest neighbour is an exact duplicate.*300 distinct rows.*np\.unique"):
        CorrelationDimension(random_state=0).fit(Xr)
    with pytest.raises(ValueError, match="all 10 points coincide"):
        CorrelationDimension(random_state=0).fit(np.ones((10, 2)))
    with pytest.raises(ValueError, match=r"1200 duplicate points.*duplicates='drop'"):
        TwoNN().fit(Xr)
    for est in (TwoNN(duplicates="keep"), MLE(duplicates="keep"), GRIDE(duplicates="keep")):
        with pytest.raises(ValueError, match=r"only 0 of the 1500 points.*duplicates='drop'"):
            est.fit(Xr)
    with pytest.raises(ValueError, match=r"held-out points are not duplicates.*np\.unique"):
        WeibullShape(duplicates="keep", random_state=0).fit(Xr)
    assert 2.5 < TwoNN(duplicates="drop").fit(Xr).dimension_ < 3.5
