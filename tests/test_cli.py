"""The ``repgap`` command: formats, outputs, figures and one-line errors."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import repgap
from repgap.cli import main, parse_group

FAST = ["--repeats", "2", "--methods", "twonn,mle", "--quiet"]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns


@pytest.fixture(scope="module")
def torus():
    return repgap.datasets.flat_torus(3000, 3, random_state=1).X


def test_demo_prints_estimate_next_to_truth_and_writes_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, out, err = run(["demo", "--n", "4000", "--dim", "3", "--out", str(tmp_path)] + FAST, capsys)
    assert code == 0, err
    assert "vs true 3" in out and "true dimension" in out
    rep = json.load(open(tmp_path / "report.json"))
    assert abs(rep["dimension"] - 3) / 3 < 0.15
    assert rep["known"]["dimension"] == 3
    for f in ("gap_curve.png", "dimension_vs_scale.png", "nn_distances.png", "gap_curve.csv", "dimension.csv"):
        assert (tmp_path / f).stat().st_size > 1000 or f.endswith(".csv"), f
    assert err == ""  # --quiet


def test_analyze_report_contents(tmp_path, capsys, torus):
    p = tmp_path / "x.npy"
    np.save(p, torus)
    out_dir = tmp_path / "out"
    code, out, err = run(["analyze", str(p), "--out", str(out_dir), "--no-plots", "--target-gap", "1e-3"] + FAST,
                         capsys)
    assert code == 0, err
    rep = json.load(open(out_dir / "report.json"))
    assert set(rep["estimators"]) == {"gap", "twonn", "mle"}
    assert rep["data"]["n_train"] + rep["data"]["n_test"] == 3000
    assert rep["target"]["gap"] == 1e-3 and rep["target"]["n_train"] > 0
    assert rep["duplicates"] == {"train": 0, "test_in_train": 0, "tolerance": pytest.approx(rep["duplicates"]["tolerance"])}
    assert len(rep["gap_curve"]["sizes"]) == len(rep["gap_curve"]["gaps"]) == 12
    assert rep["timings_s"]["command_total"] >= rep["timings_s"]["gap law"]
    lines = open(out_dir / "gap_curve.csv").read().splitlines()
    assert lines[0].startswith("n_train,gap,stderr,law") and len(lines) == 13
    assert "law RG_n" in out and "duplicates:" in out
    assert rep["gap_curve"]["n_train_queries"] == rep["data"]["n_train"]  # all of them by default
    assert rep["law"]["model"] in ("boundary term in the scale", "curvature term")
    code, out, err = run(["analyze", str(p), "--out", str(out_dir), "--no-plots", "--overwrite", "--train-queries",
                          "none"] + FAST,
                         capsys)
    assert code == 0 and json.load(open(out_dir / "report.json"))["gap_curve"]["n_train_queries"] == 0
    code, out, err = run(["analyze", str(p), "--out", str(out_dir), "--no-plots", "--overwrite", "--train-queries", "500"] + FAST,
                         capsys)
    assert code == 0 and json.load(open(out_dir / "report.json"))["gap_curve"]["n_train_queries"] == 500


def test_analyze_counts_duplicates(tmp_path, capsys, torus):
    X = np.concatenate([torus, torus[:50]])
    p = tmp_path / "d.npy"
    np.save(p, X)
    test = tmp_path / "t.npy"
    np.save(test, np.concatenate([torus[:7], repgap.datasets.flat_torus(300, 3, random_state=5).X]))
    code, out, err = run(["analyze", str(p), "--test", str(test), "--out", str(tmp_path / "o"), "--no-plots"] + FAST,
                         capsys)
    assert code == 0, err
    rep = json.load(open(tmp_path / "o" / "report.json"))
    assert rep["duplicates"]["train"] == 50
    assert rep["duplicates"]["test_in_train"] == 7


@pytest.mark.parametrize("fmt", ["npz", "csv", "tsv", "txt", "pt", "npy-mmap"])
def test_input_formats_give_the_same_answer(tmp_path, capsys, torus, fmt, monkeypatch):
    X = torus[:600].astype(np.float64)
    extra = []
    if fmt == "npz":
        p = tmp_path / "x.npz"
        np.savez(p, data=X, labels=np.arange(600))
        extra = ["--key", "data"]
    elif fmt in ("csv", "tsv"):
        p = tmp_path / f"x.{fmt}"
        sep = "," if fmt == "csv" else "\t"
        np.savetxt(p, X, delimiter=sep, header=sep.join(f"c{i}" for i in range(X.shape[1])), comments="",
                   fmt="%.17g")
    elif fmt == "txt":
        p = tmp_path / "x.txt"
        np.savetxt(p, X, fmt="%.17g")
    elif fmt == "pt":
        torch = pytest.importorskip("torch")
        p = tmp_path / "x.pt"
        torch.save({"samples": torch.from_numpy(X)}, p)
        extra = ["--key", "samples"]
    else:
        from repgap import io as rio

        monkeypatch.setattr(rio, "MMAP_THRESHOLD", 0)
        p = tmp_path / "x.npy"
        np.save(p, X)
    before = digest(p)
    code, out, err = run(["id", str(p), "--method", "twonn", "--json", str(tmp_path / "r.json")] + extra, capsys)
    assert code == 0, err
    expected = repgap.intrinsic_dimension(X, method="twonn", duplicates="keep").dimension
    assert json.load(open(tmp_path / "r.json"))["dimension"] == pytest.approx(expected, rel=1e-12)
    assert digest(p) == before


def test_npy_is_memory_mapped_read_only(tmp_path, monkeypatch):
    from repgap import io as rio

    p = tmp_path / "x.npy"
    np.save(p, np.ones((10, 3)))
    monkeypatch.setattr(rio, "MMAP_THRESHOLD", 0)
    raw = rio.read_array(p)
    assert isinstance(raw, np.memmap) and not raw.flags.writeable


def _bad_inputs(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).random((200, 4)))
    nan = np.random.default_rng(0).random((200, 4))
    nan[[3, 17]] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "two.npz", a=np.ones((5, 2)), b=np.ones((5, 2)))
    (tmp_path / "garbage.npy").write_bytes(b"not an npy file at all")
    (tmp_path / "words.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    np.save(tmp_path / "three.npy", np.ones((50, 3)))
    g = str(good)
    return {
        "missing file": (["analyze", str(tmp_path / "nope.npy")], "no such file"),
        "unknown format": (["analyze", str(tmp_path / "x.xlsx")], "unknown format"),
        "unreadable": (["analyze", str(tmp_path / "garbage.npy")], "not a NumPy .npy file"),
        "pickled objects": (["analyze", str(tmp_path / "objects.npy")], "pickle"),
        "wrong shape": (["analyze", str(tmp_path / "flat.npy")], "shape (10,)"),
        "NaN rows": (["analyze", str(tmp_path / "nan.npy")], "2 row(s) hold NaN or inf (first: row 3)"),
        "npz without key": (["analyze", str(tmp_path / "two.npz")], "--key"),
        "npz wrong key": (["analyze", str(tmp_path / "two.npz"), "--key", "c"], "no array named 'c'"),
        "text not numbers": (["id", str(tmp_path / "words.csv")], "not a table of numbers"),
        "feature mismatch": (["gap", g, str(tmp_path / "three.npy")], "3 features per row but"),
        "unknown group": (["analyze", g, "--group", "lorentz:4"], "unknown group 'lorentz'"),
        "bad group argument": (["analyze", g, "--group", "rotation:x"], "cannot read --group"),
        "group not fitting rows": (["gap", g, g, "--group", "rotation:3"], "not clouds of points in R^3"),
        "unknown method": (["id", g, "--method", "magic"], "unknown method 'magic'"),
        "unknown estimator": (["analyze", g, "--methods", "twonn,magic"], "unknown estimator 'magic'"),
        "unknown backend": (["gap", g, g, "--backend", "gpu9"], "backend"),
        "bad option value": (["analyze", g, "--repeats", "many"], "--repeats: 'many' is not a number"),
        "unknown option": (["analyze", g, "--frobnicate"], "unrecognized arguments"),
        "k too large": (["gap", g, g, "-k", "500"], "k"),
        "bad train queries": (["analyze", g, "--train-queries", "some"], "--train-queries must be"),
    }


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    cases = _bad_inputs(tmp_path)
    before = {p: digest(p) for p in tmp_path.iterdir()}
    for name, (argv, needle) in cases.items():
        code, out, err = run(argv + ["--out", str(tmp_path / "out")] if argv[0] == "analyze" else argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2, (name, err)
        assert len(lines) == 1 and lines[0].startswith("repgap: error: "), (name, err)
        assert needle in lines[0], (name, lines[0])
        assert "Traceback" not in err
    # nothing in the inputs was modified
    assert {p: digest(p) for p in before} == before


def test_verbose_shows_the_traceback(tmp_path, capsys):
    code, out, err = run(["analyze", str(tmp_path / "nope.npy"), "--verbose"], capsys)
    assert code == 2 and "Traceback" in err and err.strip().endswith("no such file")


def test_interrupt_exits_130(tmp_path, capsys, monkeypatch):
    from repgap import analysis

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "analyze", boom)
    p = tmp_path / "x.npy"
    np.save(p, np.random.default_rng(0).random((100, 3)))
    code, out, err = run(["analyze", str(p), "--quiet"], capsys)
    assert code == 130 and err.strip() == "repgap: interrupted"


def test_gap_and_curve_commands(tmp_path, capsys, torus):
    tr, te = tmp_path / "tr.npy", tmp_path / "te.npy"
    np.save(tr, torus[:2500])
    np.save(te, torus[2500:])
    code, out, err = run(["gap", str(tr), str(te), "--out", str(tmp_path / "g"), "--quiet"], capsys)
    assert code == 0, err
    ref = repgap.representation_gap(torus[:2500], torus[2500:])
    assert json.load(open(tmp_path / "g" / "gap.json"))["gap"] == pytest.approx(ref.value, rel=1e-12)
    code, out, err = run(["gap", str(tr), str(te), "--curve", "--repeats", "2", "--quiet", "--no-plots"], capsys)
    assert code == 0 and "law: d =" in out


def test_gap_modulo_a_group(tmp_path, capsys):
    X = repgap.datasets.point_clouds(400, 5, p=2, random_state=0).X
    tr, te = tmp_path / "tr.npy", tmp_path / "te.npy"
    np.save(tr, X[:300])
    np.save(te, X[300:])
    code, out, err = run(["gap", str(tr), str(te), "--group", "translation:2", "--group", "rotation:2",
                          "--out", str(tmp_path / "g"), "--quiet"], capsys)
    assert code == 0, err
    from repgap.groups import Product, Rotation, Translation

    ref = repgap.representation_gap(X[:300], X[300:], group=Product(Translation(2), Rotation(2)))
    assert json.load(open(tmp_path / "g" / "gap.json"))["gap"] == pytest.approx(ref.value, rel=1e-9)


def test_memorization_command(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    train = rng.random((2000, 8))
    copies = train[rng.integers(0, 2000, 300)] + 1e-4 * rng.standard_normal((300, 8))
    fresh = rng.random((300, 8))
    for name, arr in (("tr", train), ("s", copies), ("t", fresh)):
        np.save(tmp_path / f"{name}.npy", arr)
    out_dir = tmp_path / "m"
    code, out, err = run(["memorization", str(tmp_path / "s.npy"), str(tmp_path / "tr.npy"), "--test",
                          str(tmp_path / "t.npy"), "--out", str(out_dir), "--quiet"], capsys)
    assert code == 0, err
    rep = json.load(open(out_dir / "memorization.json"))
    assert rep["fraction_memorized"] > 0.95 and rep["p_value"] < 1e-6
    assert (out_dir / "memorization.png").stat().st_size > 1000
    assert "closer to the training set than fresh data" in out


def test_config_command(capsys):
    code, out, err = run(["config"], capsys)
    assert code == 0 and "backends:" in out
    code, out, err = run(["config", "--json"], capsys)
    assert json.loads(out)["version"] == repgap.__version__


def test_no_command_prints_help(capsys):
    code, out, err = run([], capsys)
    assert code == 2 and "analyze" in out


def test_parse_group():
    from repgap import groups as G

    assert isinstance(parse_group(["signflip"]), G.SignFlip)
    g = parse_group(["cyclic"], row_shape=(8, 8))
    assert isinstance(g, G.CyclicShift)
    assert isinstance(parse_group(["translation:3", "rotation:3"]), G.Product)
    assert parse_group(None) is None


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "repgap", "analyze", str(tmp_path / "missing.npy")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    # (a pure-Python installation adds its one PurePythonWarning line above)
    assert r.stderr.strip().splitlines()[-1] == f"repgap: error: {tmp_path / 'missing.npy'}: no such file"
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_a_running_analysis_cleanly(tmp_path):
    import signal
    import time

    p = tmp_path / "big.npy"
    np.save(p, np.random.default_rng(0).random((60000, 24), dtype=np.float32))
    # cwd: the installed repgap, not a source tree that `-m` would put first on sys.path
    proc = subprocess.Popen([sys.executable, "-m", "repgap", "analyze", str(p), "--out", str(tmp_path / "o"),
                             "--repeats", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path,
                            # SIGINT at its default in the child, so that Python installs its
                            # handler even where this test runs with SIGINT ignored (nohup)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # wait until the analysis has started (a pure-Python installation warns first), then interrupt it
    line = proc.stderr.readline()
    while line and not line.startswith("analysing"):
        line = proc.stderr.readline()
    assert line.startswith("analysing"), line
    time.sleep(1.0)
    t = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "repgap: interrupted" and "Traceback" not in err
    assert time.perf_counter() - t < 10
    assert not (tmp_path / "o" / "report.json").exists()


def test_id_says_when_its_interval_is_conservative(tmp_path, capsys):
    # cube12: the ball's correction and the cube's differ by 2-3 sampling
    # errors, the interval holds both and the command says it covers more
    # than the nominal rate; sphere2: the models agree and nothing is said
    from repgap import datasets

    for family, marked in (("cube12", True), ("sphere2", False)):
        p = tmp_path / f"{family}.npy"
        np.save(p, datasets.zoo_family(family, 1000, random_state=0).X)
        code, out, err = run(["id", str(p), "--json", str(tmp_path / f"{family}.json")], capsys)
        assert code == 0, err
        assert ("conservative:" in out) is marked, out
        assert json.load(open(tmp_path / f"{family}.json"))["conservative"] is marked
