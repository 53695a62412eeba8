"""The tabulated TwoNN reference on uniform d-balls and its monotone interpolant."""
import math

import numpy as np
import pytest

from repgap import _twonn_reference as ref
from repgap import _twonn_reference_table as table
from repgap._twonn_reference import calibrate_twonn_table, reference_twonn_table
from repgap.estimators import TwoNN

N_FINE = np.geomspace(20, 20000, 50)
D_FINE = np.geomspace(1, 256, 500)


def test_table_shape_and_quality():
    nn, nd = len(table.N_GRID), len(table.D_GRID)
    assert table.N_GRID[0] == 20 and table.N_GRID[-1] == 20000 and table.D_GRID[0] == 1 and table.D_GRID[-1] == 256
    assert list(table.N_GRID) == sorted(table.N_GRID) and list(table.D_GRID) == sorted(table.D_GRID)
    for name in ("MEAN", "SE", "SAMPLES"):
        rows = getattr(table, name)
        assert len(rows) == nn and all(len(r) == nd for r in rows)
    mean, se, S = np.array(table.MEAN), np.array(table.SE), np.array(table.SAMPLES)
    assert np.all(mean > 0) and np.all(se > 0) and np.all(S >= 8)
    assert np.max(se / mean) < 0.003
    assert "20261201" in table.__doc__


def test_reproduces_table_at_grid_points():
    for i, n in enumerate(table.N_GRID):
        row = ref._rows()[i]
        g, se = reference_twonn_table(n, np.array(table.D_GRID, dtype=float))
        adjust = np.abs(row.log_mean - row.raw)  # the isotonic step's change (0 on monotone rows)
        np.testing.assert_array_less(np.abs(np.log(g) - np.log(table.MEAN[i])), adjust + 1e-12)
        np.testing.assert_allclose(se, np.array(table.SE[i]) * g / np.array(table.MEAN[i]), rtol=1e-12)
        # the isotonic step stays within the noise
        assert np.all(adjust <= 3 * row.rel_se)
        # scalars in, floats out
        m0, s0 = reference_twonn_table(n, table.D_GRID[3])
        assert isinstance(m0, float) and isinstance(s0, float)


def test_strictly_increasing_in_d():
    for n in N_FINE:
        g, se = reference_twonn_table(n, D_FINE)
        assert np.all(np.diff(g) > 0), n
        assert np.all(se > 0)
    # also through the proportional extrapolation on both sides
    d = np.geomspace(0.05, 2000, 400)
    for n in (20, 137, 2500, 20000, 1e6):
        assert np.all(np.diff(reference_twonn_table(n, d)[0]) > 0)


def test_extrapolation_and_sizes():
    for n in (20, 2500, 20000):
        g1, s1 = reference_twonn_table(n, 1.0)
        g256, s256 = reference_twonn_table(n, 256.0)
        assert reference_twonn_table(n, 0.5) == pytest.approx((0.5 * g1, 0.5 * s1), rel=1e-12)
        assert reference_twonn_table(n, 512.0) == pytest.approx((2 * g256, 2 * s256), rel=1e-12)
    # above the largest size: the n = 20000 row
    assert reference_twonn_table(5e4, 37.0) == reference_twonn_table(20000, 37.0)
    # between rows: between the rows (linear in log n of log g)
    a, b, c = (reference_twonn_table(n, 10.0)[0] for n in (2000, 2500, 3000))
    assert min(a, c) <= b <= max(a, c)
    with pytest.raises(ValueError, match="n >= 20"):
        reference_twonn_table(19, 5.0)
    with pytest.raises(ValueError):
        reference_twonn_table(float("nan"), 5.0)
    with pytest.raises(ValueError):
        reference_twonn_table(100, 0.0)
    with pytest.raises(ValueError, match="n >= 20"):
        calibrate_twonn_table(3.0, 10)


def test_calibration_inverts_the_reference():
    for n in (20, 75, 500, 2500, 20000, 40000):
        for d in (0.4, 1.0, 2.5, 10.0, 37.3, 100.0, 256.0, 400.0):
            t = reference_twonn_table(n, d)[0]
            d_hat, se_d = calibrate_twonn_table(t, n)
            assert d_hat == pytest.approx(d, rel=1e-9), (n, d)
            assert 0 < se_d < 0.05 * d


def test_calibration_monotone_in_t_and_its_error():
    for n in (30, 100, 2500, 20000):
        ts = np.geomspace(0.3, 400, 150)
        out = np.array([calibrate_twonn_table(t, n) for t in ts])
        assert np.all(np.diff(out[:, 0]) > 0)
        assert np.all(np.isfinite(out[:, 1])) and np.all(out[:, 1] > 0)
    # se_d = se_g / g'(d), g' by a central difference
    n, d = 2500, 20.0
    t, se_g = reference_twonn_table(n, d)
    h = 1e-4
    gp = (reference_twonn_table(n, d + h)[0] - reference_twonn_table(n, d - h)[0]) / (2 * h)
    assert calibrate_twonn_table(t, n)[1] == pytest.approx(se_g / gp, rel=1e-5)
    # non-finite or non-positive estimates pass through, as calibrate_twonn does
    assert calibrate_twonn_table(math.inf, 100)[0] == math.inf
    d0, s0 = calibrate_twonn_table(-1.0, 100)
    assert d0 == -1.0 and math.isnan(s0)


def test_fresh_simulation_agrees():
    n, d, S = 500, 10, 48
    vals = []
    for s in range(S):
        rng = np.random.default_rng([4242, s])  # not the table's seeds
        V = rng.standard_normal((n, d))
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        V *= rng.random((n, 1)) ** (1.0 / d)
        vals.append(TwoNN(method="mle", duplicates="drop").fit(V).dimension_)
    m, se = np.mean(vals), np.std(vals, ddof=1) / math.sqrt(S)
    g, se_g = reference_twonn_table(n, d)
    assert se_g < se
    assert abs(m - g) < 3 * se, (m, se, g)
