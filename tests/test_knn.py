import numpy as np
import pytest

import repgap
from conftest import AVAILABLE, assert_knn_equal, reference_knn


def _data(D, dtype, n=700, m=150, seed=0):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((n, D)).astype(dtype)
    Q = rng.standard_normal((m, D)).astype(dtype)
    return Q, R


@pytest.mark.parametrize("D", [2, 16, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 5])
def test_knn_matches_cdist(backend_algorithm, D, dtype, k):
    backend, algorithm = backend_algorithm
    Q, R = _data(D, dtype)
    d, i = repgap.knn(Q, R, k=k, backend=backend, algorithm=algorithm)
    assert d.shape == (Q.shape[0], k) and i.shape == (Q.shape[0], k)
    assert d.dtype == np.float64 and i.dtype == np.int64
    assert np.all(np.diff(d, axis=1) >= 0)
    rd, ri = reference_knn(Q, R, k)
    assert_knn_equal(d, i, rd, ri)


def test_ties_are_broken_by_index(backend_algorithm):
    backend, algorithm = backend_algorithm
    # integer grid: many exactly equal distances
    g = np.stack(np.meshgrid(np.arange(6), np.arange(6), np.arange(4)), -1).reshape(-1, 3).astype(np.float64)
    R = np.concatenate([g, g[:20]])  # exact duplicates too
    Q = g[::3] + 0.5
    d, i = repgap.knn(Q, R, k=4, backend=backend, algorithm=algorithm)
    rd, ri = reference_knn(Q, R, 4)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(d, rd, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_size_independence(backend_algorithm, dtype):
    backend, algorithm = backend_algorithm
    Q, R = _data(24, dtype, n=1500, m=301)
    d0, i0 = repgap.knn(Q, R, k=3, backend=backend, algorithm=algorithm)
    for tq, tr in [(1, 7), (8, 40), (33, 1000), (512, 5000)]:
        with repgap.config_context(tile_queries=tq, tile_reference=tr):
            d, i = repgap.knn(Q, R, k=3, backend=backend, algorithm=algorithm)
        np.testing.assert_array_equal(d, d0)
        np.testing.assert_array_equal(i, i0)


def test_thread_count_independence(backend_algorithm):
    backend, algorithm = backend_algorithm
    Q, R = _data(12, np.float32, n=3000, m=1000)
    d1, i1 = repgap.knn(Q, R, k=4, backend=backend, algorithm=algorithm, n_jobs=1)
    for nj in (2, 3, -1):
        d, i = repgap.knn(Q, R, k=4, backend=backend, algorithm=algorithm, n_jobs=nj)
        np.testing.assert_array_equal(d, d1)
        np.testing.assert_array_equal(i, i1)


@pytest.mark.parametrize("offset", [1e3, 1e6])
def test_large_offset_float32_is_exact(backend_algorithm, offset):
    backend, algorithm = backend_algorithm
    rng = np.random.default_rng(1)
    base = rng.random((4000, 8)) * 0.5
    X = (offset + base).astype(np.float32)
    R, Q = X[:3500], X[3500:]
    d, i = repgap.knn(Q, R, k=2, backend=backend, algorithm=algorithm)
    rd, ri = reference_knn(Q, R, 2)
    assert_knn_equal(d, i, rd, ri)
    gap = repgap.representation_gap(R, Q, backend=backend, algorithm=algorithm).value
    exact = np.mean(rd[:, 0] ** 2)
    assert abs(gap - exact) <= 1e-6 * exact


def test_layouts_memmap_readonly_int(backend, tmp_path):
    Q, R = _data(10, np.float32, n=900, m=120)
    rd, ri = reference_knn(Q, R, 3)
    np.save(tmp_path / "r.npy", R)
    Rm = np.load(tmp_path / "r.npy", mmap_mode="r")
    Rf = np.asfortranarray(R)
    Rro = R.copy()
    Rro.flags.writeable = False
    Qs = np.repeat(Q, 2, axis=1)[:, ::2]  # non-contiguous view
    for Rx in (Rm, Rf, Rro):
        d, i = repgap.knn(Qs, Rx, k=3, backend=backend)
        assert_knn_equal(d, i, rd, ri)
    Ri = (R * 100).astype(np.int32)
    Qi = (Q * 100).astype(np.int64)
    d, i = repgap.knn(Qi, Ri, k=3, backend=backend)
    rd2, ri2 = reference_knn(Qi, Ri, 3)
    assert_knn_equal(d, i, rd2, ri2)


def test_inputs_not_modified(backend):
    Q, R = _data(5, np.float32)
    Q0, R0 = Q.copy(), R.copy()
    repgap.knn(Q, R, k=2, backend=backend)
    repgap.gap_curve(R, Q, repeats=2, random_state=0, backend=backend)
    np.testing.assert_array_equal(Q, Q0)
    np.testing.assert_array_equal(R, R0)


@pytest.mark.parametrize("D", [3, 40])
def test_checkpoints_equal_separate_prefixes(backend_algorithm, D):
    backend, algorithm = backend_algorithm
    Q, R = _data(D, np.float32, n=2000, m=200, seed=3)
    order = np.random.default_rng(5).permutation(R.shape[0])
    sizes = [3, 17, 100, 640, 1999]
    d, i = repgap.knn_checkpoints(Q, R, sizes, k=3, order=order, backend=backend, algorithm=algorithm)
    assert d.shape == (len(sizes), Q.shape[0], 3)
    for j, s in enumerate(sizes):
        sub = order[:s]
        rd, ri = reference_knn(Q, R[sub], 3)
        assert_knn_equal(d[j], i[j], rd, sub[ri])


def test_checkpoints_identity_order(backend):
    Q, R = _data(6, np.float64, n=500, m=50)
    d, i = repgap.knn_checkpoints(Q, R, [10, 500], k=2, backend=backend)
    rd, ri = reference_knn(Q, R[:10], 2)
    assert_knn_equal(d[0], i[0], rd, ri)


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled extension not available")
@pytest.mark.parametrize("level", [0, 1])
def test_every_simd_level(level):
    from repgap import _kernels_cython as kc

    Q, R = _data(37, np.float32, n=1000, m=101)
    rd, ri = reference_knn(Q, R, 4)
    kc._set_simd_level(level)
    try:
        for algo in ("direct", "fused"):
            for dt in (np.float32, np.float64):
                d, i = repgap.knn(Q.astype(dt), R.astype(dt), k=4, backend="cython", algorithm=algo)
                assert_knn_equal(d, i, rd, ri)
    finally:
        kc._set_simd_level(-1)


def test_auto_algorithm_choice():
    from repgap._backends import choose_algorithm

    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    if "cython" in AVAILABLE:  # the compiled module declares its brute-force variants
        assert choose_algorithm("auto", "cython", f32, 3, 10000, 1) == "kd_tree"
        assert choose_algorithm("auto", "cython", f32, 64, 10000, 1) == "fused"
        assert choose_algorithm("auto", "cython", f64, 64, 10000, 1) == "gemm"
        # large D, float32: the sliced fused kernel where AVX-512 has it, BLAS
        # tiles elsewhere (measured faster on AVX2), whatever level is forced
        from repgap import _kernels_cython as kc

        for level in (-1, 1, 0):
            kc._set_simd_level(level)
            try:
                want = "fused" if kc.simd_info() == "avx512" and level == -1 else "gemm"
                assert choose_algorithm("auto", "cython", f32, 784, 10000, 1) == want, level
                assert choose_algorithm("auto", "cython", f32, 255, 10000, 1) == "fused", level
            finally:
                kc._set_simd_level(-1)
    assert choose_algorithm("auto", "numpy", f32, 64, 10000, 1) == "brute"
    assert choose_algorithm("auto", "torch", f32, 3, 10000, 1) == "brute"
    with pytest.raises(ValueError, match="unknown algorithm"):
        choose_algorithm("ball_tree", "cython", f32, 3, 100, 1)


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled extension not available")
@pytest.mark.parametrize("algorithm", ["fused", "kd_tree"])
def test_compiled_kernels_stop_on_ctrl_c(algorithm):
    import signal

    from repgap import _kernels_cython as kc

    D = 3 if algorithm == "kd_tree" else 16
    Q, R = _data(D, np.float32, n=2000, m=40000)
    calls = []

    def progress(done):
        calls.append(done)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)  # as if Ctrl-C were pressed now

    # Python's own Ctrl-C handler, even where the test process was started
    # with SIGINT ignored (nohup, some CI runners)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            kc.knn_prefix(Q, R, 1, None, np.array([2000]), n_threads=2, algorithm=algorithm,
                          tile_queries=64, progress=progress)
    finally:
        signal.signal(signal.SIGINT, previous)
    # the callback was not called again once the interrupt was seen
    assert len(calls) == 1

    def failing(done):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        kc.knn_prefix(Q, R, 1, None, np.array([2000]), n_threads=2, algorithm=algorithm,
                      tile_queries=64, progress=failing)
    # the kernels still work afterwards (no exception left set)
    d, i = repgap.knn(Q[:50], R, algorithm=algorithm)
    rd, ri = reference_knn(Q[:50], R, 1)
    assert_knn_equal(d, i, rd, ri)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rotated_kd_tree_on_low_rank_data(backend, dtype, monkeypatch):
    # a 4-D cube linearly embedded in R^24 far from the origin: auto takes the
    # k-d tree on principal axes; results equal the float64 ground truth
    import repgap._backends as B
    import repgap._search.plan as N

    if backend == "torch":
        pytest.skip("the torch backend has no k-d tree")
    monkeypatch.setattr(B, "ROTATED_KD_TREE_MIN_N", 1000)
    calls = []
    real = N._plan

    def spy(*a, **kw):
        plan = real(*a, **kw)
        if plan.basis is not None:
            calls.append(1)
        return plan

    monkeypatch.setattr(N, "_plan", spy)
    rng = np.random.default_rng(11)
    A = np.linalg.qr(rng.standard_normal((24, 4)))[0]
    R = (rng.random((3000, 4)) @ A.T + 1e3).astype(dtype)
    Q = (rng.random((200, 4)) @ A.T + 1e3).astype(dtype)
    for k in (1, 5):
        d, i = repgap.knn(Q, R, k=k, backend=backend)
        rd, ri = reference_knn(Q, R, k)
        assert_knn_equal(d, i, rd, ri)
    # prefixes in a random order, self-queries
    order = rng.permutation(3000)
    ck = [1200, 3000]
    d, i = repgap.knn_checkpoints(R[:300], R, ck, k=2, order=order, backend=backend)
    for j, c in enumerate(ck):
        rd, ri = reference_knn(R[:300], R[order[:c]], 2)
        assert_knn_equal(d[j], i[j], rd, order[:c][ri])
    assert len(calls) == 3
    # full-rank data does not take that path
    repgap.knn(Q, rng.random((3000, 24)).astype(dtype), k=1, backend=backend)
    assert len(calls) == 3
