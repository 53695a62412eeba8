"""Out-of-core: a training set on disk (``.npy`` path or memory map) streamed
block by block gives the in-memory result bit for bit, in bounded memory."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import repgap

AVAILABLE = repgap.available_backends()
# the subprocess imports repgap as a user would: the installed one, or PYTHONPATH


def _data(n=4000, m=150, D=16, dtype=np.float32, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    return ((rng.random((m, D)) + offset).astype(dtype), (rng.random((n, D)) + offset).astype(dtype))


def _same(a, b):
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.fixture
def on_disk(tmp_path):
    Q, R = _data(offset=100.0)
    path = tmp_path / "train.npy"
    np.save(path, R)
    return Q, R, path


@pytest.mark.parametrize("backend", [b for b in ("numpy", "cython") if b in AVAILABLE])
def test_knn_path_memmap_blocks(on_disk, backend):
    Q, R, path = on_disk
    ref = repgap.knn(Q, R, k=3, backend=backend)
    _same(repgap.knn(Q, str(path), k=3, backend=backend, block_size=999), ref)
    _same(repgap.knn(Q, path, k=3, backend=backend), ref)
    _same(repgap.knn(Q, np.load(path, mmap_mode="r"), k=3, backend=backend, block_size=1000), ref)
    _same(repgap.knn(Q, R[:300], k=3, backend=backend, block_size=1),
          repgap.knn(Q, R[:300], k=3, backend=backend))  # one row per block
    _same(repgap.knn(Q, R, k=3, backend=backend, max_memory=50_000), ref)


def test_gap_and_curve_from_disk(on_disk):
    Q, R, path = on_disk
    g_ref = repgap.representation_gap(R, Q, k=2)
    g = repgap.representation_gap(str(path), Q, k=2, block_size=700)
    assert g.value == g_ref.value and g.stderr == g_ref.stderr and g.n_train == g_ref.n_train
    assert np.array_equal(g.distances, g_ref.distances) and np.array_equal(g.indices, g_ref.indices)
    c_ref = repgap.gap_curve(R, Q, repeats=3, random_state=11, k=2)
    for train in (str(path), np.load(path, mmap_mode="r")):
        c = repgap.gap_curve(train, Q, repeats=3, random_state=11, k=2, block_size=650)
        assert np.array_equal(c.distances, c_ref.distances)
        assert np.array_equal(c.gaps, c_ref.gaps) and np.array_equal(c.stderr, c_ref.stderr)
        assert np.array_equal(c.n_zero, c_ref.n_zero) and np.array_equal(c.sizes, c_ref.sizes)
    order = np.random.default_rng(1).permutation(R.shape[0])
    ck = [5, 50, 4000]
    _same(repgap.knn_checkpoints(Q, str(path), ck, k=5, order=order, block_size=37),
          repgap.knn_checkpoints(Q, R, ck, k=5, order=order))


def test_fortran_and_int_files(tmp_path):
    Q, R = _data(n=900, D=6)
    np.save(tmp_path / "f.npy", np.asfortranarray(R))
    _same(repgap.knn(Q, str(tmp_path / "f.npy"), k=2, block_size=100), repgap.knn(Q, R, k=2))
    Ri = (R * 100).astype(np.int16)
    np.save(tmp_path / "i.npy", Ri)
    _same(repgap.knn(Q, str(tmp_path / "i.npy"), k=2, block_size=128), repgap.knn(Q, Ri, k=2))


def test_low_rank_on_disk(tmp_path):
    rng = np.random.default_rng(3)
    M = rng.random((4, 20))
    R = (rng.random((25000, 4)) @ M + 100).astype(np.float32)
    Q = (rng.random((200, 4)) @ M + 100).astype(np.float32)
    np.save(tmp_path / "lr.npy", R)
    ref = repgap.knn(Q, R, k=3)
    _same(repgap.knn(Q, str(tmp_path / "lr.npy"), k=3, block_size=4096), ref)
    _same(repgap.knn(Q, np.load(tmp_path / "lr.npy", mmap_mode="r"), k=3, block_size=4096), ref)


def test_errors(tmp_path):
    Q, R = _data(n=500)
    R[[7, 300]] = np.nan
    np.save(tmp_path / "nan.npy", R)
    with pytest.raises(ValueError, match=r"train contains NaN or infinite values .* the first is row 7 \(NaN\)"):
        repgap.representation_gap(str(tmp_path / "nan.npy"), Q, block_size=100)
    with pytest.raises(ValueError, match="the first is row 200"):  # row 300 of the file
        repgap.knn(Q, np.load(tmp_path / "nan.npy", mmap_mode="r")[100:], block_size=100)
    with pytest.raises(FileNotFoundError, match="no such file"):
        repgap.knn(Q, str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match="features"):
        repgap.knn(Q[:, :3], np.load(tmp_path / "nan.npy", mmap_mode="r"))
    with pytest.raises(ValueError, match="block_size"):
        repgap.knn(Q, R, block_size=0)
    with pytest.raises(ValueError, match="larger than"):
        repgap.knn(Q, str(tmp_path / "nan.npy"), k=501)


def test_progress_over_blocks(on_disk, capsys):
    pytest.importorskip("tqdm")
    Q, R, path = on_disk
    repgap.representation_gap(str(path), Q, block_size=500, progress=True)
    assert "blocks" in capsys.readouterr().err


_RSS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import repgap

    def status(field):  # kiB, from the kernel's accounting of this process
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])

    mode, path, block = sys.argv[1], sys.argv[2], int(sys.argv[3])
    test = np.random.default_rng(1).random((1000, 128), dtype=np.float32)
    repgap.knn(test[:8], test[:64])   # load the kernels before the baseline
    # reset the peak (VmHWM) to the current resident size: ru_maxrss would
    # carry the peak of the parent (pytest) across fork and exec
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status("VmRSS")
    if mode == "path":
        train = path
    elif mode == "mmap":
        train = np.load(path, mmap_mode="r")
    else:
        train = np.load(path)
    res = repgap.representation_gap(train, test, block_size=block)
    print(json.dumps({"growth_kib": status("VmHWM") - base, "value": res.value}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_bounded(tmp_path):
    n, D = 200_000, 128  # 100 MiB of float32
    path = tmp_path / "big.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
    rng = np.random.default_rng(0)
    for s in range(0, n, 50_000):
        X[s : s + 50_000] = rng.random((50_000, D), dtype=np.float32)
    X.flush()
    del X
    script = tmp_path / "rss.py"
    script.write_text(_RSS_SCRIPT)
    # the installed repgap (cwd away from a source tree); PYTHONPATH, if set, is inherited
    env = dict(os.environ)
    out = {}
    for mode in ("path", "mmap", "load"):
        p = subprocess.run([sys.executable, str(script), mode, str(path), "16384"], capture_output=True, text=True,
                           env=env, timeout=300, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        out[mode] = json.loads(p.stdout.strip().splitlines()[-1])
    # the file is 100 MiB; blocks of 16384 rows are 8 MiB (two read buffers)
    assert out["load"]["growth_kib"] > 90 * 1024  # the measurement sees a full load
    assert out["path"]["growth_kib"] < 45 * 1024, out
    assert out["mmap"]["growth_kib"] < 45 * 1024, out
    assert out["path"]["value"] == out["mmap"]["value"] == out["load"]["value"]
