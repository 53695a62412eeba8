import numpy as np
import pytest

import repgap

rng = np.random.default_rng(0)
X = rng.random((50, 3))
Y = rng.random((20, 3))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: repgap.knn(X[0], X), ValueError, "2-D array.*1-D"),
        (lambda: repgap.knn(X[None], X), ValueError, "2-D array.*3-D"),
        (lambda: repgap.knn(Y, rng.random((10, 4))), ValueError, "3 features but reference has 4"),
        (lambda: repgap.knn(np.empty((0, 3)), X), ValueError, "queries is empty"),
        (lambda: repgap.knn(Y, np.empty((0, 3))), ValueError, "reference is empty"),
        (lambda: repgap.knn(Y, np.empty((5, 0))), ValueError, r"0 feature\(s\)"),
        (lambda: repgap.knn(Y, X, k=51), ValueError, "k=51 is larger than the reference set, which has 50"),
        (lambda: repgap.knn(Y, X, k=0), ValueError, "k must be >= 1"),
        (lambda: repgap.knn(Y, X, k=1.5), TypeError, "k must be a positive integer"),
        (lambda: repgap.knn(Y, X, backend="faiss"), ValueError, "unknown backend 'faiss'"),
        (lambda: repgap.knn(Y, X, algorithm="ball_tree"), ValueError, "unknown algorithm 'ball_tree'"),
        (lambda: repgap.knn(Y, X, n_jobs=0), ValueError, "n_jobs=0"),
        (lambda: repgap.knn(np.array([["a", "b", "c"]]), X), TypeError, "dtype"),
        (lambda: repgap.knn(None, X), TypeError, "queries is None"),
        (lambda: repgap.knn_checkpoints(Y, X, [10, 5]), ValueError, "strictly increasing"),
        (lambda: repgap.knn_checkpoints(Y, X, [10, 60]), ValueError, "larger than the reference set"),
        (lambda: repgap.knn_checkpoints(Y, X, [1, 10], k=2), ValueError, "smaller than k=2"),
        (lambda: repgap.knn_checkpoints(Y, X, []), ValueError, "non-empty"),
        (lambda: repgap.knn_checkpoints(Y, X, [1.5, 3]), ValueError, "integers"),
        (lambda: repgap.gap_curve(X, Y, sizes=[40, 30]), ValueError, "strictly increasing"),
        (lambda: repgap.gap_curve(X, Y, sizes=[10, 100]), ValueError, "larger than the training set"),
        (lambda: repgap.gap_curve(X, Y, repeats=0), ValueError, "repeats"),
        (lambda: repgap.representation_gap(X, Y, r=-1), ValueError, "r must be a positive"),
        (lambda: repgap.representation_gap(X, Y, k=60), ValueError, "larger than the training set"),
        (lambda: repgap.gap_curve(X, Y, random_state="x"), TypeError, "random_state"),
    ],
)
def test_bad_input_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_counted(bad):
    Z = X.copy()
    Z[7, 1] = bad
    Z[30, 0] = bad
    with pytest.raises(ValueError, match=r"reference contains NaN or infinite values in 2 row\(s\) of 50; the first is row 7"):
        repgap.knn(Y, Z)
    with pytest.raises(ValueError, match=r"test contains NaN or infinite values in 2 row"):
        repgap.representation_gap(X, Z)


@pytest.mark.parametrize("dtype,big", [(np.float32, 3e38), (np.float64, 1.7e308)])
def test_finite_check_when_the_sum_overflows(dtype, big):
    # the fast path (a finite sum) cannot decide here: the row-wise check does
    from repgap._validation import check_array

    Z = np.full((50, 3), big, dtype=dtype)
    assert check_array(Z, "Z") is not None  # finite, accepted, however large its sum
    Z[::7, ::2] *= -1  # partial sums of both signs
    assert check_array(Z, "Z") is not None
    Z[9, 2], Z[20, 0] = np.inf, -np.inf  # the sum is NaN: both rows counted
    with pytest.raises(ValueError, match=r"Z contains NaN or infinite values in 2 row\(s\) of 50; the first is row 9"):
        check_array(Z, "Z")
    W = np.ones((40, 2), dtype=dtype)
    W[33, 1] = np.nan
    with pytest.raises(ValueError, match=r"in 1 row\(s\) of 40; the first is row 33 \(NaN\)"):
        check_array(W[:, ::-1], "W")  # a strided view


def test_sparse_rejected():
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        repgap.knn(sp.csr_matrix(Y), X)


def test_mixed_precision_and_float16():
    d32, i32 = repgap.knn(Y.astype(np.float32), X)
    d16, _ = repgap.knn(Y.astype(np.float16), X.astype(np.float16))
    assert d32.dtype == np.float64 and d16.shape == (20, 1)


def test_order_validation():
    with pytest.raises(ValueError, match="order must not repeat"):
        repgap.knn_checkpoints(Y, X, [5], order=np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match="order has 3 entries"):
        repgap.knn_checkpoints(Y, X, [5], order=np.arange(3))
