"""The certified exact engine (repgap._search): one primitive, bit-identical
results on every path, certificates on adversarial near-ties, the whole
floating-point range, ties by index, fork safety (issue #14)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import repgap
from repgap._backends import kernels
from repgap._search import engine
from repgap._search.exact import _lanes, sqdist_rows, sqdist_rows_numpy

from conftest import AVAILABLE, _backend_algorithms


def _truth(Q, R, k):
    """Plain float64 differences, every pair, sorted by (distance, index)."""
    Q = np.asarray(Q, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    d2 = ((Q[:, None, :] - R[None, :, :]) ** 2).sum(-1)
    idx = np.lexsort((np.broadcast_to(np.arange(R.shape[0]), d2.shape), d2), axis=1)[:, :k]
    return np.sqrt(np.take_along_axis(d2, idx, 1)), idx


def _all_paths():
    """Every (backend, algorithm) pair of this installation."""
    return [(b, a) for b, a in _backend_algorithms() if b in AVAILABLE]


def test_lanes_is_the_documented_order():
    rng = np.random.default_rng(0)
    for D in (1, 3, 4, 7, 9, 64):
        sq = rng.random((5, D)) * 10.0 ** rng.integers(-8, 8, (5, D))
        got = _lanes(sq)
        for r in range(5):
            s = [0.0, 0.0, 0.0, 0.0]
            D4 = D - D % 4
            for g in range(0, D4, 4):
                for l in range(4):
                    s[l] = s[l] + sq[r, g + l]
            for d in range(D4, D):
                s[0] = s[0] + sq[r, d]
            want = (s[0] + s[1]) + (s[2] + s[3])
            assert got[r] == want


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
@pytest.mark.parametrize("D", [3, 5, 17, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_primitive_is_the_numpy_primitive(D, dtype):
    # the compiled kernels' recomputed distances are the primitive's bits
    rng = np.random.default_rng(D)
    R = (rng.standard_normal((800, D)) + 3).astype(dtype)
    Q = rng.standard_normal((50, D)).astype(dtype)
    for algo in ("direct", "gemm") + (("fused",) if dtype == np.float32 else ()):
        d, i = kernels("cython").knn_prefix(Q, R, 4, None, np.array([800]), algorithm=algo, n_threads=2)
        assert np.array_equal(d[0], sqdist_rows_numpy(Q, R, np.arange(50), i[0]))
        assert np.array_equal(d[0], sqdist_rows(Q, R, np.arange(50), i[0], n_threads=2))


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_column_mean_is_the_numpy_mean(tmp_path, dtype):
    # the centre of the copies: the compiled twin and numpy's agree to
    # float64 rounding on contiguous, strided and memory-mapped rows
    from repgap._kernels_cython import column_mean
    from repgap._search.certify import column_mean_numpy

    rng = np.random.default_rng(3)
    X = (rng.standard_normal((3001, 19)) * 1e3 + 1e6).astype(dtype)
    np.save(tmp_path / "x.npy", X)
    for A in (X, X[::3, ::2], np.load(tmp_path / "x.npy", mmap_mode="r"), X[:1]):
        want = np.asarray(A, dtype=np.float64).mean(axis=0)
        np.testing.assert_allclose(column_mean(A), want, rtol=1e-13, atol=0)
        np.testing.assert_allclose(column_mean_numpy(A), want, rtol=1e-13, atol=0)
    assert column_mean(X[:0]).shape == (19,) and not column_mean(X[:0]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform8", "rank3in40", "offset1e6", "dups"])
def test_every_path_gives_the_same_bits(dtype, kind, monkeypatch):
    import repgap._backends as B

    monkeypatch.setattr(B, "ROTATED_KD_TREE_MIN_N", 500)  # the rotated k-d tree too
    rng = np.random.default_rng(3)
    if kind == "uniform8":
        R = rng.random((3000, 8))
    elif kind == "rank3in40":
        R = rng.random((3000, 3)) @ np.linalg.qr(rng.standard_normal((40, 3)))[0].T
    elif kind == "offset1e6":
        R = rng.random((3000, 16)) + 1e6
    else:
        R = np.repeat(rng.random((150, 6)), 20, axis=0)[rng.permutation(3000)]
    R = R.astype(dtype)
    Q = R[:200] + dtype(1e-3) * rng.standard_normal((200, R.shape[1])).astype(dtype)
    td, ti = _truth(Q, R, 5)
    first = None
    for b, a in _all_paths():
        for nj in (1, 2):
            d, i = repgap.knn(Q, R, k=5, backend=b, algorithm=a, n_jobs=nj)
            if first is None:
                first = (d, i)
            assert np.array_equal(i, ti), (b, a, nj, int((i != ti).sum()))
            assert np.array_equal(d, first[0]), (b, a, nj)
            np.testing.assert_allclose(d, td, rtol=1e-12)
    # tiles, blocks and prefixes do not change a bit
    with repgap.config_context(tile_queries=16, tile_reference=64):
        d, i = repgap.knn(Q, R, k=5)
    assert np.array_equal(d, first[0]) and np.array_equal(i, first[1])
    d, i = repgap.knn(Q, R, k=5, block_size=700)
    assert np.array_equal(d, first[0]) and np.array_equal(i, first[1])
    d, i = repgap.knn_checkpoints(Q, R, [1000, 3000], k=5)
    assert np.array_equal(d[1], first[0]) and np.array_equal(i[1], first[1])


def _near_ties(dtype, n_ties=40, D=24, seed=0):
    """A query far from the reference's centre and ``n_ties`` rows at almost
    the same distance from it (relative spacing 1e-6: far below the rounding
    of the float32 expansion there), the nearest one last."""
    rng = np.random.default_rng(seed)
    q = np.zeros(D)
    q[0] = 1000.0
    W = rng.standard_normal((n_ties, D))
    W[:, 0] = 0
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    radii = 1.0 + 1e-6 * np.arange(n_ties)[::-1]  # the nearest is the last tie
    ties = q + W * radii[:, None]
    far = rng.standard_normal((2000, D)) * 3
    far[:, 0] -= 1000.0 * n_ties / 2000  # the mean stays near the origin
    R = np.concatenate([far, ties]).astype(dtype)
    return q[None, :].astype(dtype), R


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_certificate_on_adversarial_near_ties(dtype, backend):
    Q, R = _near_ties(dtype)
    for k in (1, 3):
        td, ti = _truth(Q, R, k)
        assert ti[0, 0] == R.shape[0] - 1
        d, i = repgap.knn(Q, R, k=k, backend=backend, algorithm="brute")
        assert np.array_equal(i, ti), (i, ti)
        assert engine.last_stats.researched > 0  # the first candidates could not be certified


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_certificate_needs_no_spare_candidates(dtype, backend, monkeypatch):
    """The engine asks the compiled and numpy kernels for no spare
    candidates (``certified_spare``): the answers are those of the kernels'
    own k + 8, bit for bit, on near-ties and on plain data, and the queries
    whose first candidates cannot be certified are searched again."""
    mod = kernels(backend)
    if getattr(mod, "CAPABILITIES", {}).get("certified_spare") != 0:
        pytest.skip(f"the {backend} kernels keep their own spare candidates")
    rng = np.random.default_rng(4)
    X = rng.random((3000, 12)).astype(dtype)
    X[2000:2300] = X[:300]  # duplicated rows: ties by index
    cases = [_near_ties(dtype), (X[:400] + dtype(1e-7), X)]
    spares = []
    real = mod.knn_prefix

    def spy(*a, **kw):
        spares.append(kw.get("spare"))
        return real(*a, **kw)

    monkeypatch.setattr(mod, "knn_prefix", spy)
    got = []
    for Q, R in cases:
        got.append([repgap.knn(Q, R, k=k, backend=backend, algorithm="brute") for k in (1, 4)])
        if not got[1:]:
            assert engine.last_stats.researched > 0  # the near-tie: its first candidates are not enough
    assert spares and set(spares) == {0}
    monkeypatch.setitem(mod.CAPABILITIES, "certified_spare", None)  # the kernel's default, 8
    want = [[repgap.knn(Q, R, k=k, backend=backend, algorithm="brute") for k in (1, 4)] for Q, R in cases]
    assert None in spares
    for g, w in zip(got, want):
        for (gd, gi), (wd, wi) in zip(g, w):
            assert np.array_equal(gi, wi) and np.array_equal(gd, wd)
    for k, (d, i) in zip((1, 4), got[0]):
        assert np.array_equal(i, _truth(*cases[0], k)[1])


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
def test_the_old_heuristic_fails_there():
    # the float32 kernel with its k + 8 spare candidates alone picks the wrong row
    Q, R = _near_ties(np.float32)
    _, ti = _truth(Q, R, 1)
    _, i = kernels("cython").knn_prefix(Q, R, 1, None, np.array([R.shape[0]]), algorithm="fused", n_threads=1)
    assert i[0, 0, 0] != ti[0, 0]


def _range_cases():
    rng = np.random.default_rng(7)
    U = rng.random((1500, 10)).astype(np.float32)
    ints = rng.integers(0, 60, (1500, 10))
    return {
        # name: (data, the same data at a safe scale, the power of two between them)
        "float32 x 2**64 (squared norms overflow)": (U * np.float32(2.0**64), U, 64),
        "float32 subnormal integers x 2**-149": ((ints * 2.0**-149).astype(np.float32), ints.astype(np.float32), -149),
        "float64 x 2**532 (about 1e160)": (np.ldexp(U.astype(np.float64), 532), U.astype(np.float64), 532),
        "float64 integers x 2**-1074 (5e-324 apart)": (ints * 2.0**-1074, ints.astype(np.float64), -1074),
    }


@pytest.mark.parametrize("case", list(_range_cases()))
def test_the_whole_floating_point_range(case):
    X, S, e = _range_cases()[case]
    Q, Qs = X[:100], S[:100]
    want_d, want_i = repgap.knn(Qs, S, k=3, backend="numpy")
    with np.errstate(under="ignore"):
        want_d = np.ldexp(want_d, e)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # nothing overflows or underflows on the way
        for b, a in _all_paths():
            d, i = repgap.knn(Q, X, k=3, backend=b, algorithm=a)
            assert np.array_equal(i, want_i), (case, b, a)
            assert np.array_equal(d, want_d), (case, b, a)
            assert np.isfinite(d).all() and (d[:, 1:] > 0).all()


def test_ties_are_broken_by_index_everywhere():
    for b, a in _all_paths():
        d, i = repgap.knn(np.zeros((1, 8)), np.zeros((20, 8)), k=3, backend=b, algorithm=a)
        assert i.tolist() == [[0, 1, 2]] and (d == 0).all(), (b, a)
    rng = np.random.default_rng(0)
    B = rng.integers(0, 2, (400, 3)).astype(np.float32)
    _, ti = _truth(B[:50], B, 12)
    H = np.repeat(rng.random((30, 12)).astype(np.float32), 40, axis=0)[rng.permutation(1200)]
    _, th = _truth(H[:60], H, 25)
    for b, a in _all_paths():
        _, i = repgap.knn(B[:50], B, k=12, backend=b, algorithm=a)
        assert np.array_equal(i, ti), (b, a)
        for nj in (1, 2):
            _, i = repgap.knn(H[:60], H, k=25, backend=b, algorithm=a, n_jobs=nj)
            assert np.array_equal(i, th), (b, a, nj)
    with repgap.config_context(tile_queries=8, tile_reference=32):
        _, i = repgap.knn(H[:60], H, k=25)
    assert np.array_equal(i, th)
    _, i = repgap.knn(H[:60], H, k=25, block_size=128)
    assert np.array_equal(i, th)


def test_float64_searches_float32_copies(monkeypatch):
    # float64 data take the float32 candidate search on the brute-force paths,
    # and still come back exact (the float64 kernels' bits)
    import repgap._search.plan as N

    seen = []
    real = N._run_kernel
    monkeypatch.setattr(N, "_run_kernel", lambda mod, be, Q, R, *a: seen.append(R.dtype) or real(mod, be, Q, R, *a))
    rng = np.random.default_rng(1)
    R = rng.standard_normal((4000, 48))
    Q = rng.standard_normal((300, 48))
    d, i = repgap.knn(Q, R, k=4)
    assert seen and all(dt == np.float32 for dt in seen)
    td, ti = _truth(Q, R, 4)
    assert np.array_equal(i, ti)
    d2, i2 = repgap.knn(Q, R, k=4, algorithm="gemm")  # a named kernel: float64 as given
    assert seen[-1] == np.float64
    assert np.array_equal(d, d2) and np.array_equal(i, i2)


_FORK_SCRIPT = textwrap.dedent("""
    import os, sys, signal, multiprocessing as mp
    import numpy as np, repgap
    X = np.random.default_rng(0).random((20000, 32), dtype=np.float32)
    want = repgap.knn(X[:3000], X, k=2, n_jobs=2)   # the parent runs its parallel kernels

    def work(s):
        d, i = repgap.knn(X[s : s + 500], X, k=2, n_jobs=2)
        return bool((i == want[1][s : s + 500]).all() and (d == want[0][s : s + 500]).all())

    pid = os.fork()
    if pid == 0:
        signal.alarm(60)
        os._exit(0 if work(0) else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    with mp.get_context("fork").Pool(2) as pool:
        assert all(pool.map(work, [0, 500, 1000, 1500]))
    print("ok")
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_after_parallel_kernels(tmp_path):
    script = tmp_path / "fork.py"
    script.write_text(_FORK_SCRIPT)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-2000:]


_SIGINT_SCRIPT = textwrap.dedent("""
    import os, sys, time, signal, threading
    import numpy as np, repgap
    # a harness that started us with SIGINT ignored (nohup, some CI runners)
    # would leave Python without its Ctrl-C handler: install it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    R = rng.random((100000, 128), dtype=np.float32)
    Q = rng.random((20000, 128), dtype=np.float32)
    if sys.argv[1] == "float64":
        R, Q = R.astype(np.float64), Q.astype(np.float64)
    repgap.knn(Q[:10], R[:100], k=1)
    sent = []

    def fire():
        time.sleep(0.5)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=fire, daemon=True).start()
    # "one_tile": every query in one tile, so only the poll inside a tile can answer
    tq = 10**9 if sys.argv[2] == "one_tile" else None
    # "gemm": the BLAS path, whose query tiles are sized for BLAS (over a second each here)
    algo = "gemm" if sys.argv[2] == "gemm" else "auto"
    try:
        with repgap.config_context(tile_queries=tq):
            repgap.knn(Q, R, k=1, n_jobs=2, algorithm=algo)
        print("finished")
    except KeyboardInterrupt:
        print(time.perf_counter() - sent[0])
""")


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
@pytest.mark.parametrize("dtype,tiles", [("float32", "default"), ("float64", "default"), ("float32", "one_tile"),
                                         ("float32", "gemm")])
def test_ctrl_c_within_a_second(tmp_path, dtype, tiles):
    # the search (about 2.6e11 multiply-adds) is interrupted half a second in;
    # with one tile for all queries, the calling thread must poll inside it
    script = tmp_path / "sigint.py"
    script.write_text(_SIGINT_SCRIPT)
    p = subprocess.run([sys.executable, str(script), dtype, tiles], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=dict(os.environ, REPGAP_BACKEND="cython"))
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout.strip().splitlines()[-1]
    assert out != "finished", "the search ended before the interrupt: make it larger"
    assert float(out) < 1.0, f"Ctrl-C took {float(out):.2f} s"


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
def test_blas_path_takes_two_query_tiles_per_thread():
    # each sgemm call packs its operands afresh: the BLAS path's default
    # query tiles are the two-per-thread split (752 of 3000 queries), not
    # the fused kernel's L2-sized ones, and never degenerate
    rng = np.random.default_rng(3)
    R = rng.random((2000, 784), dtype=np.float32)
    Q = rng.random((3000, 784), dtype=np.float32)
    seen = []
    d, i = kernels("cython").knn_prefix(Q, R, 1, None, np.array([2000]), n_threads=2, algorithm="gemm",
                                        progress=seen.append)
    assert seen and seen[0] >= 376 and len(seen) <= 4, seen
    want = kernels("cython").knn_prefix(Q, R, 1, None, np.array([2000]), n_threads=2, algorithm="gemm",
                                        tile_queries=64)
    assert np.array_equal(i, want[1]) and np.array_equal(d, want[0])


def test_one_kernel_interface():
    # every backend's kernel module implements the same signature, same defaults
    import inspect

    from repgap._backends import BACKENDS

    sigs = {}
    for b in BACKENDS:
        if b in AVAILABLE:
            sigs[b] = inspect.signature(kernels(b).knn_prefix)
    ref = sigs["numpy"]
    assert list(ref.parameters) == ["queries", "reference", "k", "order", "checkpoints", "n_threads", "algorithm",
                                    "tile_queries", "tile_reference", "spare", "leafsize", "progress", "options"]
    for b, sig in sigs.items():
        assert list(sig.parameters) == list(ref.parameters), b
        for name, p in ref.parameters.items():
            assert sig.parameters[name].default == p.default, (b, name)
            assert sig.parameters[name].kind == p.kind, (b, name)
    for b in sigs:
        with pytest.raises(TypeError, match="unknown options"):
            kernels(b).knn_prefix(np.zeros((2, 3)), np.zeros((4, 3)), 1, None, np.array([4]),
                                  options={"no_such_option": 1})


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
@pytest.mark.parametrize("D", [2, 7, 16])
def test_two_per_lane_sweep(D):
    # k = 2 at small D takes the two-smallest-per-lane sweep (AVX-512; AVX2
    # takes the panel path): its two candidates are the numpy reference's,
    # and k = 1 through the engine (which asks it for two) is exact
    rng = np.random.default_rng(D)
    R = rng.random((5000, D), dtype=np.float32)
    R[2500:2600] = R[:100]  # duplicates: equal candidates in one lane or two
    Q = rng.random((700, D), dtype=np.float32)
    ck = np.array([1000, 5000])
    d, i = kernels("cython").knn_prefix(Q, R, 2, None, ck, algorithm="fused", n_threads=2)
    rd, ri = kernels("numpy").knn_prefix(Q, R, 2, None, ck)
    assert np.array_equal(i, ri) and np.array_equal(d, rd)
    td, ti = _truth(np.concatenate([Q, R[:50]]), R, 1)
    d1, i1 = repgap.knn(np.concatenate([Q, R[:50]]), R, k=1, backend="cython")
    assert np.array_equal(i1, ti)


def test_a_new_backend_is_one_registry_entry(monkeypatch):
    """A backend is a registry entry and a kernel module: here a module that
    forwards to numpy's brute-force kernel, on tied data, is chosen by name,
    certified by the engine into numpy's exact answer, reported by
    backend_status, refused a k-d tree it does not declare, used by the gap
    and modulo a group, and reported unavailable when it says so."""
    import sys
    import types

    import repgap._backends as B
    from repgap._kernels_numpy import knn_prefix as numpy_knn

    calls = []

    def knn_prefix(queries, reference, k, order, checkpoints, *, n_threads=1, algorithm="brute",
                   tile_queries=None, tile_reference=None, spare=None, leafsize=None, progress=None,
                   options=None):
        calls.append(k)
        return numpy_knn(queries, reference, k, order, checkpoints, n_threads=n_threads, algorithm="brute",
                         progress=progress)

    mod = types.ModuleType("fake_kernels")
    mod.knn_prefix = knn_prefix
    mod.describe = lambda: "a test backend"
    mod.CAPABILITIES = {"kd_tree": False}
    monkeypatch.setitem(sys.modules, "fake_kernels", mod)
    monkeypatch.setitem(B.REGISTRY, "fake", ("fake_kernels", False))
    rng = np.random.default_rng(12)
    R = np.repeat(rng.random((300, 5)), 3, axis=0)  # ties: the certificate must look past the candidates
    Q = rng.random((40, 5))
    want = repgap.knn(Q, R, k=4, backend="numpy")
    got = repgap.knn(Q, R, k=4, backend="fake")
    assert calls and np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert B.backend_status()["fake"] == (True, "a test backend")
    with pytest.raises(ValueError, match="not available on the fake backend"):
        repgap.knn(Q, R, k=4, backend="fake", algorithm="kd_tree")
    g = repgap.representation_gap(R, Q, backend="fake")
    assert g.value == repgap.representation_gap(R, Q, backend="numpy").value
    from repgap.groups import SignFlip

    assert np.array_equal(repgap.knn(Q, R, k=2, group=SignFlip(), backend="fake")[1],
                          repgap.knn(Q, R, k=2, group=SignFlip(), backend="numpy")[1])
    monkeypatch.setattr(mod, "available", lambda: False, raising=False)
    monkeypatch.setattr(mod, "UNAVAILABLE", "its library is missing", raising=False)
    with pytest.raises(repgap.BackendUnavailableError, match="its library is missing"):
        repgap.knn(Q, R, k=1, backend="fake")


def _finishing_time(m, t, T):
    # tiles taken in order by whichever thread is free, equal tiles of t
    # queries (padded to blocks of 8): the busiest thread's queries
    loads = [0] * T
    for s in range(0, m, t):
        loads[loads.index(min(loads))] += -(-min(t, m - s) // 8) * 8
    return max(loads)


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
@pytest.mark.parametrize("m,largest,T", [(3000, 328, 2), (10000, 328, 2), (10000, 360, 2), (1000, 256, 2),
                                         (20000, 4096, 2), (777, 200, 3), (12345, 64, 4), (50, 64, 2)])
def test_query_tiles_keep_the_threads_equally_busy(m, largest, T):
    # 3000 queries in tiles of 328 left one of two threads idle for 9 % of
    # the search (9 full tiles and one of 48); the chosen tile is a multiple
    # of 8 (or the given size), at most the given size, and no other
    # candidate size in [largest / 2, largest] finishes sooner
    bt = kernels("cython")._balanced_tile
    t = bt(m, largest, T)
    assert t <= largest and (t % 8 == 0 or t == largest)
    top = largest // 8 * 8
    sizes = range(top, max(8, top // 2) - 1, -8)
    best = min(_finishing_time(m, c, T) for c in sizes)
    if m > largest:
        # the soonest finish, and of those the largest tile (fewer tiles to pack)
        assert _finishing_time(m, t, T) == best
        assert t == max(c for c in sizes if _finishing_time(m, c, T) == best)
    else:
        assert t == largest
    if (m, largest, T) == (3000, 328, 2):
        assert _finishing_time(m, t, T) <= 1520   # 1500 queries each, to a block of 8
        # every size of a small grid, several thread counts
        for mm in range(1, 400, 7):
            for TT in (2, 3, 4):
                for ll in (8, 64, 100, 136):
                    tt = bt(mm, ll, TT)
                    cand = range(ll // 8 * 8, max(8, ll // 8 * 8 // 2) - 1, -8)
                    if mm > ll:
                        assert _finishing_time(mm, tt, TT) == min(_finishing_time(mm, c, TT) for c in cand)
                    assert tt <= ll


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
@pytest.mark.parametrize("D", [40, 300])
@pytest.mark.parametrize("dtype,algorithm", [(np.float32, "fused"), (np.float32, "gemm"),
                                             (np.float64, "gemm"), (np.float64, "direct")])
def test_shared_panels_match_per_tile_packing(monkeypatch, D, dtype, algorithm):
    # The compiled brute kernels pack the reference once for all query tiles
    # (and, for float32 at D > 256, run the fused kernel over slices of the
    # coordinates). Prefix ends that cut a 32-row panel, an order, several
    # tile shapes and thread counts: the same bits as per-tile packing, and
    # the neighbours of a plain float64 search.
    kc = kernels("cython")
    rng = np.random.default_rng(7)
    R = rng.standard_normal((1100, D)).astype(dtype)
    Q = rng.standard_normal((203, D)).astype(dtype)
    order = rng.permutation(len(R))
    ck = np.array([37, 500, 1001])
    runs = []
    for budget in (1 << 30, 0):   # 0: nothing is shared
        monkeypatch.setattr(kc, "_SHARED_PANEL_BYTES", budget)
        for nt, tq, tr in [(1, None, None), (2, 24, 100), (2, 64, 33), (3, 8, 1024)]:
            runs.append(kc.knn_prefix(Q, R, 3, order, ck, n_threads=nt, algorithm=algorithm,
                                      tile_queries=tq, tile_reference=tr))
    for d, i in runs[1:]:
        np.testing.assert_array_equal(d, runs[0][0])
        np.testing.assert_array_equal(i, runs[0][1])
    Q64, R64 = Q.astype(np.float64), R.astype(np.float64)
    for j, c in enumerate(ck):
        rows = order[:c]
        full = ((Q64[:, None, :] - R64[rows][None]) ** 2).sum(-1)
        best = np.argsort(full, axis=1, kind="stable")[:, :3]
        np.testing.assert_array_equal(runs[0][1][j], rows[best])
        np.testing.assert_allclose(runs[0][0][j], np.take_along_axis(full, best, 1), rtol=1e-12)


_SWEEP_LEVELS = {"avx2": 1, "avx512": 2}


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_runner_up_bound_is_a_lower_bound_on_every_other_row(isa):
    # k = 1 on the compiled sweep: the first round's second distance may be a
    # bound on every row not returned (the least second-smallest value of a
    # lane). It must never exceed, beyond the search's rounding, the distance
    # of any row but the first, in any prefix; and it is never below the first.
    # On an AVX-512 CPU the AVX2 sweep runs too (a forced level), and both
    # give the same bits.
    kc = kernels("cython")
    have = _SWEEP_LEVELS.get(kc.simd_info(), 0)
    if have < _SWEEP_LEVELS[isa]:
        # the capability is declared for every CPU; without AVX2 the kernel
        # takes the panel path, whose second entry is no bound
        pytest.skip(f"the {isa} lane sweep needs {isa} (this CPU: {kc.simd_info()})")
    rng = np.random.default_rng(11)
    R = rng.random((5000, 8), dtype=np.float32)
    Q = rng.random((300, 8), dtype=np.float32)
    ck = np.array([40, 1000, 5000])
    kc._set_simd_level(_SWEEP_LEVELS[isa])
    try:
        # small reference tiles: the lanes start from seeds after the first
        for tr in (None, 256):
            d, i = kc.knn_prefix(Q, R, 2, None, ck, n_threads=2, algorithm="fused",
                                 options={"runner_up_bound": True}, tile_reference=tr)
            full = ((Q.astype(np.float64)[:, None, :] - R.astype(np.float64)[None]) ** 2).sum(-1)
            for j, c in enumerate(ck):
                f = full[:, :c].copy()
                np.testing.assert_array_equal(i[j, :, 0], np.argmin(f, axis=1))
                f[np.arange(len(Q)), i[j, :, 0]] = np.inf
                assert np.all(d[j, :, 1] >= d[j, :, 0])
                assert np.all(d[j, :, 1] <= f.min(axis=1) + 1e-5)
            # and as tight as the exact runner-up, up to rounding
            d2, _ = kc.knn_prefix(Q, R, 2, None, ck, n_threads=2, algorithm="fused")
            np.testing.assert_allclose(d[:, :, 1], d2[:, :, 1], rtol=0, atol=1e-5)
            if have == 2 and isa == "avx2":
                kc._set_simd_level(-1)
                d5, i5 = kc.knn_prefix(Q, R, 2, None, ck, n_threads=2, algorithm="fused",
                                       options={"runner_up_bound": True}, tile_reference=tr)
                kc._set_simd_level(1)
                assert np.array_equal(d5, d) and np.array_equal(i5, i)
    finally:
        kc._set_simd_level(-1)


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
def test_one_neighbour_near_tie_in_the_same_lane_is_certified_exactly():
    # Rows 5 and 37 fall in the same lane of the sweep's 32-row panels, at
    # squared distances 1 and 1 + 2^-22 from every query, closer than the
    # float32 search can tell apart (a far row makes the centred norms large).
    # Only the bound on the rows of the winner's lane can send these queries
    # to the float64 re-search; the answer must be the exact one.
    rng = np.random.default_rng(3)
    D = 8
    Q = rng.random((50, D)).astype(np.float32)
    for swap in (False, True):
        rows = []
        for q in Q:
            R = (q + 20.0 + rng.random((64, D))).astype(np.float32)   # far from q
            a, b = q.copy(), q.copy()
            a[0] += np.float32(1.0)
            b[1] += np.float32(1.0 + 2.0**-23)
            R[5], R[37] = (b, a) if swap else (a, b)
            R[63] = q + 1000.0
            rows.append(R)
        for qi in range(0, len(Q), 10):
            R = rows[qi]
            d, i = repgap.knn(Q[qi : qi + 1], R, k=1, backend="cython")
            exact = ((Q[qi].astype(np.float64) - R.astype(np.float64)) ** 2).sum(-1)
            assert i[0, 0] == np.argmin(exact) == (37 if swap else 5)
            assert d[0, 0] ** 2 == pytest.approx(exact.min(), rel=1e-15)


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kd_tree_built_on_threads_is_the_same_tree(dtype):
    # the two halves of every node of 2^14 points or more are built as
    # OpenMP tasks, numbered in advance from the halves' sizes: the tree, and
    # every (distance, index), is the one of the serial build, also with
    # blocks of equal points (a node of equal points ends early and leaves
    # its numbers unused), several prefixes and boxes on 2 of 3 coordinates
    rng = np.random.default_rng(5)
    R = rng.random((70000, 3)).astype(dtype)
    R[10000:30000] = R[10000]                      # 20000 copies of one point
    R[40000:45000, :2] = np.round(R[40000:45000, :2] * 4) / 4    # ties on a grid
    Q = np.concatenate([rng.random((500, 3)), R[9990:10010].astype(np.float64)]).astype(dtype)
    order = rng.permutation(R.shape[0]).astype(np.int64)
    ck = np.array([40000, 55000, 70000], dtype=np.int64)
    kc = kernels("cython")
    for opts in (None, {"box_dims": 2}):
        ref = kc.knn_prefix(Q, R, 7, order, ck, n_threads=1, algorithm="kd_tree", options=opts)
        for T in (2, 3):
            got = kc.knn_prefix(Q, R, 7, order, ck, n_threads=T, algorithm="kd_tree", options=opts)
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_array_equal(got[1], ref[1])
    # and the certified answer on threads is the exact one, ties by index
    Q = np.concatenate([Q[:500:10], Q[500:]])
    d, i = repgap.knn(Q, R, k=7, algorithm="kd_tree", n_jobs=2)
    ti = np.concatenate([_truth(Q[s:s + 35], R, 7)[1] for s in range(0, Q.shape[0], 35)])
    np.testing.assert_array_equal(i, ti)


def test_kd_tree_plans_ask_for_one_spare_candidate():
    # the k-d tree's float64 sums of differences: the runner-up certifies;
    # the expansion's error model keeps its spares, the k = 1 sweep two
    from types import SimpleNamespace

    from repgap._search.plan import first_candidates

    kd = SimpleNamespace(algo="kd_tree", basis=None, model=SimpleNamespace(expanded=False))
    assert first_candidates(10, kd, False) == 11 and first_candidates(1, kd, False) == 2
    rotated = SimpleNamespace(algo="kd_tree", basis=(None, None, 2), model=SimpleNamespace(expanded=False))
    assert first_candidates(10, rotated, False) is None
    brute = SimpleNamespace(algo="fused", basis=None, model=SimpleNamespace(expanded=True))
    assert first_candidates(10, brute, False) is None and first_candidates(1, brute, True) == 2
    # heavy ties at the k-th distance fail the certificate and are searched again: still exact
    R = np.round(np.random.default_rng(1).random((3000, 3)) * 3) / 3
    Q = R[:50] + 0.0
    d, i = repgap.knn(Q, R, k=12, backend="numpy" if "cython" not in AVAILABLE else "cython", algorithm="kd_tree")
    td, ti = _truth(Q, R, 12)
    np.testing.assert_array_equal(i, ti)
    assert engine.last_stats.rounds >= 2
