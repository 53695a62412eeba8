"""Optional data formats (issue #16, item 4): image folders, .safetensors, HDF5 and
Parquet. For each: a round trip written with the format's own library and read
back exactly, bounded-memory reading (memory maps, chunked reads), hostile or
malformed files refused with one line naming the file, the message when the
optional dependency is missing, and the command line on real folders."""
import json
import os
import struct
import sys
import zlib

import numpy as np
import pytest

from repgap import io as rio
from repgap.cli import main
from repgap.io import DataError, load_array, read_array

rng = np.random.default_rng(16)


def refused(path, *needles, **kw):
    """read_array(path) raises a one-line DataError naming the file and each needle."""
    with pytest.raises(DataError) as e:
        read_array(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    for n in needles:
        assert n in msg, (n, msg)
    return msg


def missing(monkeypatch, module):
    """Make ``import module`` fail, as where the optional extra is not installed."""
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ============================================================== image folders
def save_images(folder, arrays, prefix="im", ext="png", **kw):
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(os.path.join(folder, f"{prefix}{i:03d}.{ext}"), **kw)
    return folder


@pytest.mark.parametrize("shape", [(6, 8), (6, 8, 3), (6, 8, 4)], ids=["L", "RGB", "RGBA"])
def test_image_folder_round_trip_keeps_channels(tmp_path, shape):
    pytest.importorskip("PIL")
    A = rng.integers(0, 256, (7,) + shape, dtype=np.uint8)
    d = save_images(str(tmp_path / "imgs"), A)
    # files that are not images, hidden files and subfolders are ignored
    (tmp_path / "imgs" / "README.txt").write_text("not an image")
    (tmp_path / "imgs" / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "imgs" / "._im000.png").write_bytes(b"AppleDouble junk")
    save_images(str(tmp_path / "imgs" / "sub"), A[:1])
    X = read_array(d)
    assert X.dtype == np.uint8 and X.shape == A.shape and np.array_equal(X, A)
    assert load_array(d).shape == (7, int(np.prod(shape)))
    assert [os.path.basename(f) for f in rio.image_files(d)] == [f"im{i:03d}.png" for i in range(7)]


def test_image_folder_is_in_sorted_name_order_and_other_modes(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    d = tmp_path / "imgs"
    d.mkdir()
    A = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    for name, a in zip(["b.PNG", "a.png", "c.jpeg"], A):
        Image.fromarray(a).save(d / name, **({"quality": 95} if name.endswith("jpeg") else {}))
    X = read_array(d)
    jpeg = np.asarray(Image.open(d / "c.jpeg").convert("RGB"))  # JPEG is lossy: compare with Pillow's decode
    assert np.array_equal(X[0], A[1]) and np.array_equal(X[1], A[0]) and np.array_equal(X[2], jpeg)
    # 16-bit grayscale keeps its values; a palette image becomes RGB
    g16 = rng.integers(0, 65536, (3, 5, 4), dtype=np.uint16)
    e = tmp_path / "g16"
    e.mkdir()
    for i, a in enumerate(g16):
        Image.fromarray(a).save(e / f"{i}.png")
    Y = read_array(e)
    assert Y.dtype == np.uint16 and np.array_equal(Y, g16)
    p = tmp_path / "pal"
    p.mkdir()
    for i, a in enumerate(A[:2]):
        Image.fromarray(a).quantize(8).save(p / f"{i}.png")
    Z = read_array(p)
    assert Z.shape == (2, 4, 5, 3) and np.array_equal(Z[0], np.asarray(Image.open(p / "0.png").convert("RGB")))


def test_image_folder_refusals(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    d = save_images(str(tmp_path / "mixed"), rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8))
    save_images(d, [rng.integers(0, 256, (8, 8), dtype=np.uint8)], prefix="z")
    msg = refused(d, "z000.png", "im000.png", "(8, 8)", "(8, 8, 3)", "same height, width and channels")
    assert msg.startswith(os.path.join(d, "z000.png"))
    save_images(str(tmp_path / "size"), [rng.integers(0, 256, (8, 8), dtype=np.uint8),
                                         rng.integers(0, 256, (9, 8), dtype=np.uint8)])
    refused(tmp_path / "size", "im001.png", "(9, 8)")
    # a truncated image, and a file that is no image at all, each named
    good = save_images(str(tmp_path / "trunc"), rng.integers(0, 256, (3, 16, 16), dtype=np.uint8))
    whole = open(os.path.join(good, "im001.png"), "rb").read()
    open(os.path.join(good, "im001.png"), "wb").write(whole[: len(whole) // 2])
    refused(good, "im001.png", "not a readable PNG or JPEG image")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "a.png").write_bytes(b"#!/bin/sh\necho this is not an image\n")
    refused(fake, "a.png", "not a readable PNG or JPEG")
    # another format under a .png name is never handed to its decoder
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(fake / "a.png", format="GIF")
    refused(fake, "a.png", "not a readable PNG or JPEG")
    # an empty folder says what it looked for; --key makes no sense for a folder
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "data.npy").write_bytes(b"")
    refused(tmp_path / "empty", "is a directory", ".png, .jpg, .jpeg")
    refused(tmp_path / "size", "--key", key="x")


def png_header_only(path, width, height):
    """A PNG whose header claims width x height pixels, with a few bytes of data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_image_decompression_bombs_and_pixel_limit(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    d = tmp_path / "bomb"
    d.mkdir()
    png_header_only(d / "a.png", 50_000, 50_000)  # 2.5e9 pixels claimed in 100 bytes
    refused(d, "a.png", "decompression bomb")
    small = save_images(str(tmp_path / "small"), rng.integers(0, 256, (2, 8, 8), dtype=np.uint8))
    monkeypatch.setattr(rio, "MAX_IMAGE_PIXELS", 63)
    refused(small, "im000.png", "64 pixels", "decompression bomb?")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_image_folder_refuses_a_fifo_named_png(tmp_path):
    pytest.importorskip("PIL")
    d = save_images(str(tmp_path / "f"), rng.integers(0, 256, (2, 4, 4), dtype=np.uint8))
    os.mkfifo(os.path.join(d, "pipe.png"))
    with pytest.raises(DataError, match="named pipe"):
        read_array(d)


def test_image_folder_without_pillow(tmp_path, monkeypatch):
    d = tmp_path / "imgs"
    d.mkdir()
    (d / "a.png").write_bytes(b"\x89PNG")
    missing(monkeypatch, "PIL")
    refused(d, "reading image folders needs Pillow (pip install 'repgap[images]')")


# ============================================================== .safetensors
def write_safetensors(path, header, data=b"", length=None, pad=True):
    """A .safetensors file from a header (dict or raw bytes) and a data buffer, by hand."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h) if length is None else length) + h + data)
    return path


def test_safetensors_matches_the_safetensors_package_bit_for_bit(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    arrays = {"f64": rng.normal(size=(5, 3)), "f32": rng.normal(size=(4, 2, 3)).astype(np.float32),
              "f16": rng.normal(size=(3, 4)).astype(np.float16), "i64": rng.integers(-9, 9, (3, 2)),
              "i32": rng.integers(-9, 9, (3, 2)).astype(np.int32), "i16": np.arange(6, dtype=np.int16).reshape(3, 2),
              "i8": np.arange(-3, 3, dtype=np.int8).reshape(3, 2), "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
              "u16": np.arange(6, dtype=np.uint16).reshape(2, 3), "bool": np.array([[True, False], [False, True]]),
              "empty": np.zeros((0, 3), np.float32)}
    path = str(tmp_path / "t.safetensors")
    st.save_file(arrays, path, metadata={"format": "np", "note": "the metadata is not a tensor"})
    for name, a in arrays.items():
        X = read_array(path, key=name)
        assert X.dtype == a.dtype and X.shape == a.shape, name
        assert X.tobytes() == a.tobytes(), name  # bit for bit
    assert set(rio._safetensors_header(path)[0]) == set(arrays)  # __metadata__ is not a tensor
    refused(path, "holds 11 tensors", "--key")
    refused(path, "no tensor named 'nope'", key="nope")
    one = str(tmp_path / "one.safetensors")
    st.save_file({"x": arrays["f32"]}, one, metadata={"a": "b"})
    assert np.array_equal(load_array(one), arrays["f32"].reshape(4, 6))


def test_safetensors_bf16_and_large_tensors_memory_mapped(tmp_path, monkeypatch):
    bf16 = np.array([0x3F80, 0xC020, 0x0000, 0x4049], dtype="<u2")  # 1, -2.5, 0, 3.140625
    p = write_safetensors(tmp_path / "b.safetensors", {"x": {"dtype": "BF16", "shape": [2, 2],
                                                             "data_offsets": [0, 8]}}, bf16.tobytes())
    X = read_array(p)
    assert X.dtype == np.float32 and X.tolist() == [[1.0, -2.5], [0.0, 3.140625]]
    st = pytest.importorskip("safetensors.numpy")
    big = rng.normal(size=(300, 40)).astype(np.float32)
    path = str(tmp_path / "big.safetensors")
    st.save_file({"a": np.ones(3, np.float32), "big": big}, path)
    monkeypatch.setattr(rio, "MMAP_THRESHOLD", 1000)  # "large" here: more than 1000 bytes
    X = read_array(path, key="big")
    assert isinstance(X, np.memmap) and X.mode == "r" and not X.flags.writeable
    assert np.array_equal(X, big)
    assert not isinstance(read_array(path, key="a"), np.memmap)
    assert isinstance(read_array(path, key="a", mmap=True), np.memmap)


def test_safetensors_hostile_headers(tmp_path, monkeypatch):
    ok = {"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    data = np.arange(4, dtype="<f4").tobytes()
    cases = {
        "too short": (b"\1\0\0", "shorter than the 8-byte header length"),
        "length past the end": (write_safetensors(tmp_path / "a", ok, data, length=10**6), "exceeds the file"),
        "length 2^63": (write_safetensors(tmp_path / "b", ok, data, length=2**63), "exceeds the file"),
        "not JSON": (write_safetensors(tmp_path / "c", b"{nope"), "not valid UTF-8 JSON"),
        "not UTF-8": (write_safetensors(tmp_path / "d", b'{"\xff": 1}'), "not valid UTF-8 JSON"),
        "JSON list": (write_safetensors(tmp_path / "e", [1, 2]), "a JSON list, not an object"),
        "deep JSON": (write_safetensors(tmp_path / "f", b"[" * 100000 + b"]" * 100000), "JSON"),
        "repeated name": (write_safetensors(tmp_path / "g", b'{"x": ' + json.dumps(ok["x"]).encode() + b', "x": '
                                            + json.dumps(ok["x"]).encode() + b"}", data), "appears twice"),
        "unknown dtype": (write_safetensors(tmp_path / "h", {"x": dict(ok["x"], dtype="F8_E4M3")}, data),
                          "dtype 'F8_E4M3'"),
        "object dtype": (write_safetensors(tmp_path / "i", {"x": dict(ok["x"], dtype="O")}, data), "dtype 'O'"),
        "negative shape": (write_safetensors(tmp_path / "j", {"x": dict(ok["x"], shape=[-2, -2])}, data),
                           "not a list of non-negative integers"),
        "boolean shape": (write_safetensors(tmp_path / "k", {"x": dict(ok["x"], shape=[True, 4])}, data),
                          "non-negative integers"),
        "offsets past the data": (write_safetensors(tmp_path / "l", {"x": dict(ok["x"], data_offsets=[0, 10**12])},
                                                    data), "outside the 16 bytes of data"),
        "offsets reversed": (write_safetensors(tmp_path / "m", {"x": dict(ok["x"], data_offsets=[16, 0])}, data),
                             "outside"),
        "size mismatch": (write_safetensors(tmp_path / "n", {"x": dict(ok["x"], shape=[1000, 1000])}, data),
                          "needs 4,000,000"),
        "overlapping tensors": (write_safetensors(tmp_path / "o", {
            "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "y": {"dtype": "F32", "shape": [3], "data_offsets": [4, 16]}}, data), "overlapping"),
        "bytes no tensor describes": (write_safetensors(tmp_path / "p", ok, data + b"#!/bin/sh\n"),
                                      "no tensor describes"),
        "not a tensor entry": (write_safetensors(tmp_path / "q", {"x": [1, 2, 3]}), "not an object with dtype"),
        "bad metadata": (write_safetensors(tmp_path / "r", {"__metadata__": {"a": 1}, **ok}, data),
                         "__metadata__"),
        "no tensors": (write_safetensors(tmp_path / "s", {"__metadata__": {}}), "holds no tensors"),
    }
    for name, (spec, needle) in cases.items():
        path = tmp_path / (name.replace(" ", "_") + ".safetensors")
        if isinstance(spec, bytes):
            path.write_bytes(spec)
        else:
            os.replace(spec, path)
        refused(path, needle)
    monkeypatch.setattr(rio, "SAFETENSORS_MAX_HEADER", 16)
    refused(write_safetensors(tmp_path / "limit.safetensors", ok, data), "the format's limit")


# ============================================================== HDF5
def test_hdf5_round_trip_keys_and_ann_benchmarks_layout(tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    train, test = rng.normal(size=(400, 6)).astype(np.float32), rng.normal(size=(60, 6)).astype(np.float32)
    path = str(tmp_path / "ann.hdf5")
    with h5py.File(path, "w") as f:  # the ann-benchmarks layout
        f["train"], f["test"] = train, test
        f["neighbors"] = rng.integers(0, 400, (60, 10)).astype(np.int32)
        f["distances"] = rng.random((60, 10)).astype(np.float32)
        f.attrs["distance"] = "euclidean"
        f.create_group("extra")["big_endian"] = np.arange(12, dtype=">f8").reshape(4, 3)
    msg = refused(path, "holds 5 datasets", "distances, extra/big_endian, neighbors, test, train", "--key")
    assert read_array(path, key="train").dtype == np.float32
    assert np.array_equal(read_array(path, key="train"), train)
    be = read_array(path, key="/extra/big_endian")
    assert be.dtype == np.float64 and be.dtype.isnative and np.array_equal(be, np.arange(12).reshape(4, 3))
    refused(path, "no dataset named 'validation'", "train", key="validation")
    refused(path, "is a group, not a dataset", key="extra")
    one = str(tmp_path / "one.h5")
    with h5py.File(one, "w") as f:
        f.create_group("g").create_group("h")["x"] = train
    assert np.array_equal(read_array(one), train)  # the only dataset, at any depth
    # the command line: without --key the error lists the datasets, with --key train it runs
    code, _, err = run(["id", path, "--method", "twonn", "-q"], capsys)
    assert code == 2 and "train" in err and "choose one with --key" in err and msg.split(": ", 1)[1] in err
    code, out, err = run(["gap", path, path, "--key", "train", "--test-key", "test", "-q"], capsys)
    assert code == 0 and "400 training, 60 held-out" in out, err


def test_hdf5_chunked_read_equals_whole_read(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    X = rng.normal(size=(103, 5, 2))
    path = str(tmp_path / "c.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=X, chunks=(7, 5, 2), compression="gzip")
    calls = []
    real = h5py.Dataset.read_direct
    monkeypatch.setattr(h5py.Dataset, "read_direct", lambda self, *a, **k: calls.append(a[1]) or real(self, *a, **k))
    monkeypatch.setattr(rio, "READ_CHUNK_BYTES", 10 * 5 * 2 * 8)  # 10 rows per read
    Y = read_array(path)
    assert np.array_equal(Y, X) and len(calls) == 11 and calls[0] == slice(0, 10)


def test_hdf5_hostile_and_non_numeric(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    other = str(tmp_path / "other.h5")
    with h5py.File(other, "w") as f:
        f["secret"] = np.ones((4, 2))
    path = str(tmp_path / "h.h5")
    with h5py.File(path, "w") as f:
        f["x"] = np.ones((4, 2))
        f["soft"] = h5py.SoftLink("/x")
        f["ext"] = h5py.ExternalLink(other, "/secret")
        f["via_soft"] = h5py.SoftLink("/ext")
        f["loop"] = h5py.SoftLink("/loop")
        f["strings"] = np.array([b"ab", b"cd"])
        f["compound"] = np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])
        f["refs"] = np.array([f["x"].ref] * 2, dtype=h5py.ref_dtype)
        layout = h5py.VirtualLayout(shape=(4, 2), dtype="f8")
        layout[:] = h5py.VirtualSource(other, "secret", shape=(4, 2))
        f.create_virtual_dataset("virtual", layout)
        f.create_dataset("external_raw", (4, 2), "f8", external=[(str(tmp_path / "raw.bin"), 0, h5py.h5f.UNLIMITED)])
        f.create_dataset("huge", (10**8, 10**6), "f8", chunks=(64, 64))  # 800 TB claimed, nothing stored
    assert np.array_equal(read_array(path, key="soft"), np.ones((4, 2)))
    for key, needle in [("ext", "external link"), ("via_soft", "external link"), ("loop", "loop of soft links"),
                        ("strings", "string values, not numbers"), ("compound", "compound"),
                        ("refs", "object reference"), ("virtual", "other files"), ("external_raw", "other files"),
                        ("huge", "more than this machine's memory")]:
        refused(path, needle, key=key)
    (tmp_path / "fake.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(200))
    refused(tmp_path / "fake.h5", "not a readable HDF5 file")
    (tmp_path / "text.hdf5").write_text("train,test\n1,2\n")
    refused(tmp_path / "text.hdf5", "not a readable HDF5 file")
    missing(monkeypatch, "h5py")
    refused(path, "reading HDF5 files needs h5py (pip install 'repgap[hdf5]')")


# ============================================================== Parquet
def test_parquet_list_and_numeric_columns(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    E = rng.normal(size=(50, 8)).astype(np.float32)
    fixed = str(tmp_path / "fixed.parquet")
    pq.write_table(pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(E.ravel()), 8)}), fixed)
    X = read_array(fixed)
    assert X.dtype == np.float32 and np.array_equal(X, E)
    var = str(tmp_path / "var.parquet")
    pq.write_table(pa.table({"id": np.arange(50), "emb": pa.array(list(E.astype(np.float64)))}), var,
                   row_group_size=7)
    refused(var, "list column(s) emb", "--key")
    assert np.array_equal(read_array(var, key="emb"), E.astype(np.float64))
    assert np.array_equal(read_array(var, key="id"), np.arange(50)[:, None])
    refused(var, "a list column is read alone", key="emb,id")
    cols = str(tmp_path / "cols.parquet")
    T = {"x": rng.normal(size=50), "n": np.arange(50, dtype=np.int32), "b": rng.random(50) < 0.5}
    pq.write_table(pa.table(T), cols, row_group_size=9)
    Y = read_array(cols)
    assert Y.dtype == np.float64 and np.array_equal(Y, np.column_stack([T["x"], T["n"], T["b"]]))
    assert np.array_equal(read_array(cols, key="n, x"), np.column_stack([T["n"], T["x"]]))
    refused(cols, "no column named 'y'", "x (double)", key="x,y")
    # chunked reading: a tiny chunk gives the same array
    monkeypatch.setattr(rio, "READ_CHUNK_BYTES", 24)
    assert np.array_equal(read_array(cols), Y) and np.array_equal(read_array(var, key="emb"), E)


def test_parquet_refusals(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rag = str(tmp_path / "ragged.parquet")
    pq.write_table(pa.table({"emb": pa.array([[1.0, 2.0]] * 5 + [[1.0, 2.0, 3.0]] + [[1.0, 2.0]] * 3)}), rag,
                   row_group_size=4)
    refused(rag, "column 'emb' is ragged: row 5 holds 3 values but row 0 holds 2")
    nulls = str(tmp_path / "nulls.parquet")
    pq.write_table(pa.table({"a": [1.0, None, 3.0, None], "b": [1.0, 2.0, 3.0, 4.0]}), nulls)
    refused(nulls, "column 'a' holds nulls in 2 row(s)")
    lnull = str(tmp_path / "lnull.parquet")
    pq.write_table(pa.table({"emb": pa.array([[1.0, 2.0], [1.0, None], None, [3.0, 4.0]])}), lnull)
    refused(lnull, "column 'emb' holds nulls in 2 row(s)")
    words = str(tmp_path / "words.parquet")
    pq.write_table(pa.table({"name": ["a", "b"], "when": pa.array([1, 2], pa.timestamp("s")), "x": [1.0, 2.0]}),
                   words)
    refused(words, "columns name, when are not numbers", "--key", "name (string)")
    refused(words, "column 'name' holds string values", key="name")
    assert read_array(words, key="x").tolist() == [[1.0], [2.0]]
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1" + os.urandom(64) + b"PAR1")
    refused(tmp_path / "corrupt.parquet", "not a readable Parquet file")
    good = open(words, "rb").read()
    (tmp_path / "cut.parquet").write_bytes(good[: len(good) - 20])
    refused(tmp_path / "cut.parquet", "not a readable Parquet file")
    monkeypatch.setattr(pa, "__version__", "13.0.0")
    refused(words, "CVE-2023-47248", key="x")
    missing(monkeypatch, "pyarrow")
    refused(words, "reading Parquet files needs pyarrow (pip install 'repgap[parquet]')")


# ============================================================== the command line
@pytest.fixture
def image_folders(tmp_path):
    """30 training images (8x8 RGB), 15 generated: 5 exact copies of training images, 10 new."""
    pytest.importorskip("PIL")
    train = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    gen = np.concatenate([train[[3, 7, 11, 19, 27]], rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)])
    return save_images(str(tmp_path / "train"), train), save_images(str(tmp_path / "gen"), gen, prefix="gen")


def test_cli_memorization_on_two_image_folders(image_folders, tmp_path, capsys):
    train, gen = image_folders
    out = str(tmp_path / "memo")
    code, stdout, err = run(["memorization", gen, train, "--out", out, "--no-plots", "-q"], capsys)
    assert code == 0, err
    assert "memorized: 33.33% of 15 generated samples" in stdout
    rows = np.genfromtxt(os.path.join(out, "memorization.csv"), delimiter=",", names=True)
    assert rows["memorized"].tolist() == [1] * 5 + [0] * 10
    assert rows["nearest"][:5].tolist() == [3, 7, 11, 19, 27] and np.all(rows["d1"][:5] == 0)
    assert json.load(open(os.path.join(out, "memorization.json")))["fraction_memorized"] == pytest.approx(1 / 3)


def test_cli_outputs_never_go_into_an_input_image_folder(image_folders, capsys):
    train, gen = image_folders
    before = sorted(os.listdir(train))
    for out in (train, os.path.join(train, "report")):
        code, _, err = run(["memorization", gen, train, "--out", out, "--overwrite", "-q"], capsys)
        assert code == 2 and "input image folder TRAIN" in err and "outside it" in err, err
        code, _, err = run(["analyze", train, "--out", out, "--overwrite", "-q"], capsys)
        assert code == 2 and "input image folder DATA" in err, err
    code, _, err = run(["id", train, "--json", os.path.join(train, "r.json"), "-q"], capsys)
    assert code == 2 and "input image folder DATA" in err, err
    assert sorted(os.listdir(train)) == before


def test_cli_analyze_id_and_gap_on_image_folders(tmp_path, capsys):
    pytest.importorskip("PIL")
    # images on a 2-D manifold: smooth blobs at random positions
    t = rng.random((260, 2))
    yy, xx = np.mgrid[0:6, 0:6] / 5
    imgs = (255 * np.exp(-((xx[None] - t[:, :1, None]) ** 2 + (yy[None] - t[:, 1:, None]) ** 2) / 0.1)).astype(np.uint8)
    train = save_images(str(tmp_path / "train"), imgs[:220])
    test = save_images(str(tmp_path / "test"), imgs[220:])
    out = str(tmp_path / "report")
    code, stdout, err = run(["analyze", train, "--test", test, "--out", out, "--repeats", "2", "--methods", "twonn",
                             "--no-plots", "--local-neighbors", "0", "--sizes", "60,100,160,220", "-q"], capsys)
    assert code == 0, err
    assert "dimension" in stdout and os.path.exists(os.path.join(out, "report.json"))
    assert json.load(open(os.path.join(out, "report.json")))["input"]["data"] == os.path.abspath(train)
    code, stdout, err = run(["id", train, "--method", "twonn", "-q"], capsys)
    assert code == 0 and "(220 x 36)" in stdout, err
    code, stdout, err = run(["gap", train, test, "-q"], capsys)
    assert code == 0 and "220 training, 40 held-out" in stdout, err
    code, _, err = run(["id", train, "--key", "x", "-q"], capsys)
    assert code == 2 and "--key applies to" in err, err


def test_cli_safetensors_key(tmp_path, capsys):
    st = pytest.importorskip("safetensors.numpy")
    X = rng.normal(size=(300, 4)).astype(np.float32)
    path = str(tmp_path / "emb.safetensors")
    st.save_file({"train": X, "labels": np.arange(300, dtype=np.int64)}, path)
    code, _, err = run(["id", path, "--method", "twonn", "-q"], capsys)
    assert code == 2 and "holds 2 tensors (labels, train); choose one with --key" in err, err
    code, out, err = run(["id", path, "--key", "train", "--method", "twonn", "-q"], capsys)
    assert code == 0 and "(300 x 4)" in out, err


def test_help_lists_the_formats(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for fmt in (".safetensors", ".h5/.hdf5", ".parquet", "folder of .png/.jpg images", "dataset path in HDF5"):
        assert fmt in out, fmt
