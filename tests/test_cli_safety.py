"""The command line never loses data: outputs never touch inputs, existing
outputs are kept without --overwrite, writes are atomic, FIFOs never block,
and every option is checked before any work (issue #15)."""
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import repgap
from repgap import cli
from repgap.cli import main

FAST = ["--repeats", "2", "--methods", "twonn", "--quiet", "--no-plots", "--sizes", "150,250,400,650,1000"]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def fingerprint(folder):
    """Bytes and mtimes of every file below ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[p] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def data():
    return repgap.datasets.flat_torus(1200, 3, random_state=2).X


@pytest.fixture
def folder(tmp_path, data):
    np.save(tmp_path / "x.npy", data)
    np.save(tmp_path / "test.npy", data[:100] + 1e-3)
    return tmp_path


def assert_one_line_error(code, err, *needles):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("repgap: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ----------------------------------------------------------------- outputs vs inputs
def test_analyze_refuses_to_overwrite_its_input(folder, capsys):
    code, _, err = run(["analyze", str(folder / "x.npy"), "--out", str(folder)] + FAST, capsys)
    assert code == 0, err  # x.npy is not an output name: fine
    # now the input is one of the outputs
    before = fingerprint(folder)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(["analyze", str(folder / "gap_curve.csv"), "--out", str(folder)] + FAST + extra, capsys)
        assert_one_line_error(code, err, "gap_curve.csv", "is the input DATA")
    assert fingerprint(folder) == before


def test_gap_refuses_to_overwrite_training_file(folder, capsys):
    out = folder / "o"
    code, _, err = run(["gap", str(folder / "x.npy"), str(folder / "test.npy"), "--out", str(out), "-q"], capsys)
    assert code == 0, err
    before = fingerprint(folder)
    code, _, err = run(["gap", str(out / "nn_distances.csv"), str(folder / "test.npy"), "--out", str(out),
                        "--overwrite", "-q"], capsys)
    assert_one_line_error(code, err, "nn_distances.csv", "is the input TRAIN")
    assert fingerprint(folder) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_outputs_that_are_links_to_an_input_are_refused(folder, capsys, link):
    out = folder / "o"
    out.mkdir()
    (os.symlink if link == "symlink" else os.link)(folder / "x.npy", out / "report.json")
    before = fingerprint(folder)
    code, _, err = run(["analyze", str(folder / "x.npy"), "--out", str(out), "--overwrite"] + FAST, capsys)
    assert_one_line_error(code, err, "report.json", "is the input DATA")
    assert fingerprint(folder) == before


def test_existing_outputs_need_overwrite(folder, capsys):
    out = folder / "o"
    out.mkdir()
    (out / "report.json").write_text("precious")
    t = time.perf_counter()
    code, _, err = run(["analyze", str(folder / "x.npy"), "--out", str(out)] + FAST, capsys)
    assert_one_line_error(code, err, "report.json", "--overwrite")
    assert time.perf_counter() - t < 5  # refused before the analysis
    assert (out / "report.json").read_text() == "precious"
    assert os.listdir(out) == ["report.json"]
    code, _, err = run(["analyze", str(folder / "x.npy"), "--out", str(out), "--overwrite"] + FAST, capsys)
    assert code == 0, err
    assert json.loads((out / "report.json").read_text())["data"]["n_train"] > 0
    assert not [f for f in os.listdir(out) if f.startswith(".repgap-partial")]


def test_demo_keeps_existing_demo_data(tmp_path, capsys):
    (tmp_path / "demo_data.npy").write_bytes(b"mine")
    code, _, err = run(["demo", "--out", str(tmp_path), "--n", "2000", "-q"], capsys)
    assert_one_line_error(code, err, "demo_data.npy", "--overwrite")
    assert (tmp_path / "demo_data.npy").read_bytes() == b"mine"


def test_id_json_refuses_input_and_existing_file(folder, capsys):
    code, _, err = run(["id", str(folder / "x.npy"), "--method", "twonn", "--json", str(folder / "x.npy"),
                        "--overwrite", "-q"], capsys)
    assert_one_line_error(code, err, "is the input DATA")
    (folder / "r.json").write_text("{}")
    code, _, err = run(["id", str(folder / "x.npy"), "--method", "twonn", "--json", str(folder / "r.json"), "-q"],
                       capsys)
    assert_one_line_error(code, err, "r.json", "--overwrite")
    code, _, err = run(["id", str(folder / "x.npy"), "--method", "twonn", "--json", str(folder / "r.json"), "-q",
                        "--overwrite"], capsys)
    assert code == 0 and "dimension" in json.loads((folder / "r.json").read_text())


def test_interrupted_write_leaves_old_outputs_whole(folder, capsys, monkeypatch):
    out = folder / "o"
    code, _, err = run(["analyze", str(folder / "x.npy"), "--out", str(out)] + FAST, capsys)
    assert code == 0, err
    before = fingerprint(out)
    real = cli._write_csv

    def write_then_interrupt(path, header, rows):
        real(path, header, rows[: len(rows) // 2])  # half a file, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_write_csv", write_then_interrupt)
    code, _, err = run(["analyze", str(folder / "x.npy"), "--out", str(out), "--overwrite", "--seed", "5"] + FAST,
                       capsys)
    assert code == 130 and "interrupted" in err
    assert fingerprint(out) == before  # every file as it was, no staging folder left


# ----------------------------------------------------------------- inputs
def test_fifo_input_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.npy"
    os.mkfifo(fifo)
    p = subprocess.run([sys.executable, "-m", "repgap", "id", str(fifo)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "named pipe" in p.stderr, p.stderr


def test_directory_input_and_file_as_out(folder, capsys):
    code, _, err = run(["analyze", str(folder), "--out", str(folder / "o")] + FAST, capsys)
    assert_one_line_error(code, err, "is a directory")
    code, _, err = run(["analyze", str(folder / "x.npy"), "--out", str(folder / "x.npy" / "sub")] + FAST, capsys)
    assert_one_line_error(code, err, "--out", "is a file, not a folder")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_fails_before_work(folder, capsys):
    ro = folder / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        code, _, err = run(["analyze", str(folder / "x.npy"), "--out", str(ro / "o")] + FAST, capsys)
        assert_one_line_error(code, err, "--out", "not writable")
    finally:
        os.chmod(ro, 0o700)


def test_standard_input(data, tmp_path):
    import io

    buf = io.BytesIO()
    np.save(buf, data[:300])
    p = subprocess.run([sys.executable, "-m", "repgap", "id", "-", "--method", "twonn", "-q"], input=buf.getvalue(),
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    text = "\n".join(",".join(f"{v:.8f}" for v in r) for r in data[:300]).encode()
    p2 = subprocess.run([sys.executable, "-m", "repgap", "id", "-", "--method", "twonn", "-q"], input=text,
                        capture_output=True, timeout=120)
    assert p2.returncode == 0, p2.stderr
    assert p.stdout.split(b"[")[0] == p2.stdout.split(b"[")[0]


def test_forged_npy_header(tmp_path, capsys):
    p = tmp_path / "big.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 8)})
        f.write(b"\0" * 64)
    code, _, err = run(["id", str(p)], capsys)
    assert_one_line_error(code, err, "big.npy", "truncated or corrupt")


def test_semicolon_csv_names_the_delimiter(tmp_path, capsys):
    p = tmp_path / "eu.csv"
    p.write_text("a;b;c\n" + "\n".join(f"{i};{i * 2};{i % 7}" for i in range(50)) + "\n")
    code, _, err = run(["id", str(p)], capsys)
    assert_one_line_error(code, err, "semicolons", "comma separated")


# ----------------------------------------------------------------- options, before any work
def _bad_options(folder):
    x = str(folder / "x.npy")
    t = str(folder / "test.npy")
    return {
        "jpg": (["analyze", x, "--format", "jpg"], "--format", "jpg"),
        "n-jobs 0": (["analyze", x, "--n-jobs", "0"], "--n-jobs", "-1 for all"),
        "n-jobs -3": (["id", x, "--n-jobs", "-3"], "--n-jobs"),
        "sizes inf": (["gap", x, t, "--curve", "--sizes", "inf"], "--sizes", "'inf'"),
        "sizes 2.5": (["analyze", x, "--sizes", "100,2.5"], "--sizes", "'2.5'"),
        "repeats 0": (["analyze", x, "--repeats", "0"], "--repeats"),
        "test-size 2": (["analyze", x, "--test-size", "2"], "--test-size"),
        "test-size nan": (["analyze", x, "--test-size", "nan"], "--test-size"),
        "target-gap -1": (["analyze", x, "--target-gap", "-1"], "--target-gap"),
        "ratio 0": (["memorization", t, x, "--ratio", "0"], "--ratio"),
        "k 0": (["gap", x, t, "-k", "0"], "-k"),
        "r nan": (["gap", x, t, "-r", "nan"], "-r"),
        "seed -1": (["analyze", x, "--seed", "-1"], "--seed"),
        "backend": (["analyze", x, "--backend", "gpu9"], "--backend", "gpu9"),
        "demo dim": (["demo", "--dim", "0"], "--dim"),
    }


@pytest.mark.parametrize("case", list(_bad_options(__import__("pathlib").Path("."))))
def test_bad_options_fail_fast_and_name_the_option(folder, capsys, case):
    argv, *needles = _bad_options(folder)[case]
    out = folder / "out"
    t = time.perf_counter()
    code, _, err = run(argv + ["--out", str(out)] if argv[0] in ("analyze", "demo", "gap") else argv, capsys)
    assert_one_line_error(code, err, *needles)
    assert time.perf_counter() - t < 5
    assert not out.exists()


def test_messages_name_the_cause(folder, capsys, data):
    five = folder / "five.npy"
    np.save(five, data[:5])
    code, _, err = run(["analyze", str(five), "--out", str(folder / "o")] + FAST, capsys)
    assert_one_line_error(code, err, "--test-size", "--test FILE")
    const = folder / "const.npy"
    np.save(const, np.ones((300, 4)))
    code, _, err = run(["analyze", str(const), "--out", str(folder / "o")] + FAST, capsys)
    assert_one_line_error(code, err, "identical")


def test_warnings_are_one_line_and_quiet_silences_them(tmp_path, capsys):
    rng = np.random.default_rng(0)
    cube = rng.random((2000, 3)) @ np.linalg.qr(rng.normal(size=(50, 50)))[0][:3]
    p = tmp_path / "cube32.npy"
    np.save(p, (cube + 1e4).astype(np.float32))
    code, out, err = run(["id", str(p), "--method", "twonn"], capsys)
    assert code == 0, err
    warn = [ln for ln in err.splitlines() if "warning" in ln.lower()]
    assert warn and all(ln.startswith("repgap: warning: ") for ln in warn), err
    assert "return f(" not in err and ".py:" not in err
    code, out, err = run(["id", str(p), "--method", "twonn", "-q"], capsys)
    assert code == 0 and "warning" not in err.lower(), err


# ----------------------------------------------------------------- help
def test_every_option_has_help_with_its_default():
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        assert sp.description, f"{name} has no description"
        for act in sp._actions:
            if isinstance(act, argparse._HelpAction):
                continue
            assert act.help, f"{name} {act.option_strings or act.dest} has no help"
            if act.option_strings and act.default not in (None, False):
                assert "default" in act.help, f"{name} {act.option_strings} does not show its default"
