import math

import numpy as np
import pytest

import repgap
from repgap import datasets, law


def test_unit_ball_volume_and_constants():
    assert law.unit_ball_volume(1) == pytest.approx(2.0)
    assert law.unit_ball_volume(2) == pytest.approx(math.pi)
    assert law.unit_ball_volume(3) == pytest.approx(4 * math.pi / 3)
    # Gamma(1 + 2/d) V_d^(-2/d)
    assert law.random_quantization_constant(2) == pytest.approx(1 / math.pi)
    assert law.random_quantization_constant(1, k=1, r=2) == pytest.approx(0.5)
    # k-th neighbour: Gamma(k + r/d)/Gamma(k)
    assert law.random_quantization_constant(1, k=3, r=1) == pytest.approx(math.gamma(4) / math.gamma(3) / 2)


def test_random_to_optimal_ratio_matches_theory():
    # docs/theory.md, section 3: 6.0x (d=1), 1.98x (d=2), 1.47x (d=3); at d=8 the
    # formula with G_8 = 0.0716821 (E8) gives 1.114 (docs/theory.md rounds to 1.14)
    assert law.random_to_optimal_ratio(1) == pytest.approx(6.0, rel=1e-3)
    assert law.random_to_optimal_ratio(2) == pytest.approx(1.98, rel=5e-3)
    assert law.random_to_optimal_ratio(3) == pytest.approx(1.47, rel=5e-3)
    g = math.gamma(1.25) * law.unit_ball_volume(8) ** (-0.25) / (8 * 0.0716821)
    assert law.random_to_optimal_ratio(8) == pytest.approx(g, rel=1e-9)
    assert 1.10 < g < 1.15
    assert law.sphere_bound_second_moment(2) < law.best_known_second_moment(2)[0]
    with pytest.raises(KeyError, match="no tabulated"):
        law.best_known_second_moment(9)


def test_predicted_gap_forms():
    assert law.predicted_gap(1000, 2) == pytest.approx(1 / (1000 * math.pi))
    # a finite group multiplies n by its order
    assert law.predicted_gap(1000, 3, group_order=4) == pytest.approx(law.predicted_gap(4000, 3))
    # volume V: (V / (n V_d))^(2/d) Gamma(1+2/d)
    v = law.predicted_gap(500, 3, volume=8.0)
    assert v == pytest.approx(math.gamma(1 + 2 / 3) * (8.0 / (500 * law.unit_ball_volume(3))) ** (2 / 3))
    with pytest.raises(ValueError):
        law.predicted_gap(10, -1)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_law_on_the_flat_torus(d):
    # periodic distance: chordal candidates in the embedding, periodic recomputation
    n, m = 20000, 3000
    tr = datasets.flat_torus(n, d, random_state=d)
    te = datasets.flat_torus(m, d, random_state=100 + d)
    _, idx = repgap.knn(te.X, tr.X, k=4)
    ta, tt = datasets.torus_angles(tr.X), datasets.torus_angles(te.X)
    per = datasets.torus_sqdist(tt[:, None, :], ta[idx]).min(axis=1)
    ratio = per.mean() / law.predicted_gap(n, d)
    assert abs(ratio - 1) < 0.05, ratio


def test_fit_law_recovers_exact_power_law():
    n = np.geomspace(100, 1e5, 12)
    g = 3.0 * n ** (-2 / 7)
    fit = repgap.fit_law(n, g)
    assert fit.dimension == pytest.approx(7, rel=1e-6)
    assert fit.constant == pytest.approx(3.0, rel=1e-6)
    assert fit.predict(1000) == pytest.approx(3.0 * 1000 ** (-2 / 7), rel=1e-6)
    assert fit.n_for_gap(3.0 * 5e5 ** (-2 / 7)) == pytest.approx(5e5, rel=1e-5)
    assert "LawFit(dimension=" in repr(fit) and fit.to_dict()["dimension"] == pytest.approx(7, rel=1e-6)


def test_fit_law_with_correction_and_offset():
    n = np.geomspace(100, 1e6, 15)
    g = 2.0 * n ** (-2 / 8) * (1 + 0.8 * n ** (-1 / 8))
    plain = repgap.fit_law(n, g)
    corr = repgap.fit_law(n, g, correction=True)
    assert abs(plain.dimension - 8) > 0.3          # biased without the term
    assert corr.dimension == pytest.approx(8, rel=1e-3)
    assert corr.correction[0] == pytest.approx(0.8, rel=1e-2)
    assert corr.n_for_gap(corr.predict(2e5)) == pytest.approx(2e5, rel=1e-4)
    lc = 0.05 + 4.0 * n ** -0.5
    off = repgap.fit_law(n, lc, offset=True)
    assert off.offset == pytest.approx(0.05, rel=1e-3) and off.exponent == pytest.approx(0.5, rel=1e-3)
    with pytest.raises(ValueError, match="not above the fitted floor"):
        off.n_for_gap(0.01)


def test_fit_law_on_a_gap_curve_has_bootstrap_interval():
    tr = datasets.flat_torus(20000, 3, random_state=0)
    te = datasets.flat_torus(2000, 3, random_state=1)
    curve = repgap.gap_curve(tr.X, te.X, repeats=3, random_state=0, sizes=np.geomspace(300, 20000, 10).astype(int))
    fit = repgap.fit_law(curve, n_boot=100, random_state=0)
    assert fit.ci_method.startswith("bootstrap")
    lo, hi = fit.dimension_ci
    assert lo < fit.dimension < hi
    assert abs(fit.dimension - 3) < 0.3


def test_fit_law_errors():
    with pytest.raises(ValueError, match="gaps is required"):
        repgap.fit_law([1, 2, 3])
    with pytest.raises(ValueError, match="positive"):
        repgap.fit_law([1, 2, 3, 4], [1, 0, 1, 1])
    with pytest.raises(ValueError, match="at least"):
        repgap.fit_law([1, 2], [1, 0.5])


def test_fit_law_curvature_and_auto_corrections():
    n = np.geomspace(300, 1e6, 15)
    g = 1.5 * n ** (-2 / 6) * (1 - 0.6 * n ** (-2 / 6))  # curvature-like term
    curv = repgap.fit_law(n, g, correction="curvature")
    assert curv.dimension == pytest.approx(6, rel=1e-4)
    assert curv.correction_powers == (2,) and curv.correction[0] == pytest.approx(-0.6, rel=1e-3)
    assert curv.predict(5e4) == pytest.approx(1.5 * 5e4 ** (-1 / 3) * (1 - 0.6 * 5e4 ** (-1 / 3)), rel=1e-6)
    auto = repgap.fit_law(n, g, correction="auto")
    assert auto.correction_powers == (2,) and auto.dimension == pytest.approx(6, rel=1e-4)
    gb = 1.5 * n ** (-2 / 6) * (1 + 0.9 * n ** (-1 / 6))  # boundary-like term
    bnd = repgap.fit_law(n, gb, correction="boundary")
    assert bnd.correction_powers == (1,) and bnd.dimension == pytest.approx(6, rel=1e-4)
    # a boundary raises the gap: "auto" keeps the boundary term in the scale
    auto_b = repgap.fit_law(n, gb, correction="auto")
    assert auto_b.correction_model == "scale" and auto_b.correction[0] > 0
    assert auto_b.dimension == pytest.approx(6, rel=0.03)  # another boundary model than the data's
    # on data that follow the scale law, the fit is exact and predict / n_for_gap invert each other
    from repgap.law import _solve_scale_law
    gs = _solve_scale_law(1.5 * n ** (-2 / 6), 0.7, 2)
    assert np.all(gs > 1.5 * n ** (-2 / 6))
    sc = repgap.fit_law(n, gs, correction="auto")
    assert sc.correction_model == "scale" and sc.correction[0] == pytest.approx(0.7, rel=1e-6)
    assert sc.dimension == pytest.approx(6, rel=1e-8) and sc.constant == pytest.approx(1.5, rel=1e-8)
    assert sc.predict(n) == pytest.approx(gs, rel=1e-8)
    assert sc.n_for_gap(gs[4]) == pytest.approx(n[4], rel=1e-6)
    with pytest.raises(ValueError, match="offset"):
        repgap.fit_law(n, gs, correction="scale", offset=True)
    both = repgap.fit_law(n, g, correction="both")
    assert both.correction_powers == (1, 2)
    with pytest.raises(ValueError, match="correction must be"):
        repgap.fit_law(n, g, correction="quadratic")


def test_predict_band_and_n_for_gap_inverts_the_corrected_law():
    import dataclasses

    X = repgap.datasets.flat_torus(6000, 4, random_state=3).X
    curve = repgap.gap_curve(X[:5000], X[5000:], repeats=2, random_state=0)
    fit = repgap.fit_law(curve, correction="curvature", n_boot=50, random_state=0)
    lo, hi = fit.predict_band(curve.sizes)
    pred = fit.predict(curve.sizes)
    assert np.all(lo <= pred * (1 + 1e-9)) and np.all(pred <= hi * (1 + 1e-9)) and np.all(lo < hi)
    # a strongly negative finite-size term: the factor is negative far below the
    # fitted sizes, which must not break the inversion
    neg = dataclasses.replace(fit, correction=(-1.5,))
    for target in (curve.gaps[-1] / 3, curve.gaps[-1]):
        n = neg.n_for_gap(target)
        assert neg.predict(n) == pytest.approx(target, rel=1e-8)
    plain = repgap.fit_law(curve.sizes, curve.gaps)
    assert plain.predict_band(curve.sizes) is None


def test_scale_law_on_a_cube_curve():
    # the boundary term in the scale: bootstrap band, NaN (not an error) far
    # below the fitted sizes, the target's n, and the formula in words
    X = repgap.datasets.cube(9000, 5, random_state=1).X
    curve = repgap.gap_curve(X[:8000], X[8000:], sizes=np.geomspace(250, 8000, 8).astype(int), repeats=2,
                             random_state=0, train_queries=True)
    fit = repgap.fit_law(curve, correction="scale", n_boot=40, random_state=0)
    assert fit.correction_model == "scale" and fit.correction[0] > 0 and fit.correction_powers == ()
    assert fit.formula == "C n^(-2/d) exp(a L^(1/2))" and fit.model_name == "boundary term in the scale"
    assert abs(fit.dimension - 5) / 5 < 0.05
    lo, hi = fit.predict_band(curve.sizes)
    pred = fit.predict(curve.sizes)
    assert np.all(np.isfinite(lo)) and np.all(lo <= pred * (1 + 1e-9)) and np.all(pred <= hi * (1 + 1e-9))
    np.testing.assert_allclose(pred, curve.gaps, rtol=0.01)
    assert np.isnan(fit.predict(1e-3))  # beyond the range of the scale term: no solution
    t = fit.predict(5e5)
    assert fit.n_for_gap(t) == pytest.approx(5e5, rel=1e-9)
    a = fit.correction[0]
    with pytest.raises(ValueError, match="above the range"):
        fit.n_for_gap(2 * (2 / a) ** 2)
    curv = repgap.fit_law(curve, correction="curvature", n_boot=0)
    assert curv.formula == "C n^(-2/d) (1 + b n^(-2/d))" and curv.model_name == "curvature term"


def test_bootstrap_resamples_test_points_and_repeats():
    # the replicate curves are the means over resampled repeats and test
    # points, drawn as rng.integers(0, R, R) then rng.integers(0, m, m)
    X = repgap.datasets.cube(2200, 3, random_state=0).X
    curve = repgap.gap_curve(X[:2000], X[2000:], sizes=[50, 200, 800, 2000], repeats=3, random_state=0)
    fit = repgap.fit_law(curve, correction="scale", n_boot=5, random_state=7)
    rng = np.random.default_rng(7)
    from repgap.law import _fit_scale

    vals = curve.distances**2
    rel = curve.stderr / curve.gaps
    w = 1.0 / np.maximum(rel, 1e-3 * np.median(rel))
    w = w / w.mean()
    assert len(fit.bootstrap_params) == 5
    for p in fit.bootstrap_params:
        ri, ti = rng.integers(0, 3, 3), rng.integers(0, 200, 200)
        g = vals[ri][:, :, ti].mean(axis=(0, 2))
        want, _, _ = _fit_scale(np.log(curve.sizes), np.log(g), w, 2.0)
        np.testing.assert_allclose(p, want, rtol=1e-9)
