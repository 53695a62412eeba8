"""``repgap evaluate``: the table, the output files, their agreement with
:func:`repgap.evaluate`, groups, and one-line errors."""
import csv
import json

import numpy as np
import pytest

import repgap
from repgap.cli import main

N_TRAIN, N_GEN, N_TEST, D = 300, 200, 200, 6


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("repgap: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    T = rng.standard_normal((N_TRAIN, D))
    copies = T[rng.choice(N_TRAIN, 40, replace=False)] + 1e-4 * rng.standard_normal((40, D))
    G = np.concatenate([copies, rng.standard_normal((N_GEN - 40, D))])
    H = rng.standard_normal((N_TEST, D))
    return G, T, H


@pytest.fixture
def files(tmp_path, arrays):
    G, T, H = arrays
    for name, a in zip(("gen", "train", "test"), (G, T, H)):
        np.save(tmp_path / f"{name}.npy", a)
    return tmp_path


def _argv(files, *extra):
    return ["evaluate", str(files / "gen.npy"), str(files / "train.npy"), "--test", str(files / "test.npy"),
            "--n-boot", "200", "--cells", "4", *extra]


def test_table_prints_without_out(files, capsys):
    code, out, err = run(_argv(files), capsys)
    assert code == 0, err
    for name in ("precision", "recall", "density", "coverage", "authenticity", "memorized", "gap_ratio",
                 "dcr_test_q0.5", "95% interval"):
        assert name in out, name
    assert "C_T = " in out and "Meehan et al. 2020" in out and "Mann-Whitney p = " in out
    assert "data-copying" in out  # 20% of the samples are near-copies
    assert "wrote" not in out
    assert not list(files.glob("*.json")) and not list(files.glob("*.csv"))


def test_without_test_no_copying_lines(files, capsys):
    code, out, err = run(["evaluate", str(files / "gen.npy"), str(files / "train.npy"), "--n-boot", "50"], capsys)
    assert code == 0, err
    assert "precision" in out and "C_T" not in out and "Mann-Whitney" not in out and "gap_ratio" not in out


def test_outputs_match_the_api(files, capsys, arrays):
    G, T, H = arrays
    out_dir = files / "out"
    code, out, err = run(_argv(files, "--out", str(out_dir), "--no-plots", "-k", "4", "--seed", "3",
                               "--ratio", "0.25", "--min-samples", "10", "--confidence", "0.9"), capsys)
    assert code == 0, err
    assert "wrote" in out
    ev = repgap.evaluate(G, T, test=H, k=4, memorization_ratio=0.25, n_boot=200, confidence=0.9, n_cells=4,
                         min_samples=10, random_state=3)
    rep = json.load(open(out_dir / "evaluation.json"))
    want = ev.to_dict()
    for name, m in want["metrics"].items():
        for f in ("value", "low", "high"):
            assert rep["metrics"][name][f] == pytest.approx(m[f], rel=1e-12, nan_ok=True), (name, f)
    assert rep["dcr"] == want["dcr"]
    assert rep["copying"]["statistic"] == pytest.approx(ev.copying.statistic)
    assert rep["copying_p_value"] == pytest.approx(ev.copying_p_value)
    assert rep["k"] == 4 and rep["n_generated"] == N_GEN and rep["n_train"] == N_TRAIN and rep["n_test"] == N_TEST
    assert rep["options"]["k"] == 4 and rep["options"]["seed"] == 3 and rep["options"]["cells"] == 4
    assert rep["input"]["generated"] == str(files / "gen.npy") and rep["input"]["test"] == str(files / "test.npy")
    assert set(rep["files"]) == {"evaluation.json", "evaluation.csv", "per_sample.csv"}

    rows = list(csv.DictReader(open(out_dir / "evaluation.csv")))
    assert [r["metric"] for r in rows] == [r[0] for r in ev.table()]
    for r, t in zip(rows, ev.table()):
        assert float(r["value"]) == pytest.approx(t[1], rel=1e-9, nan_ok=True)
        assert r["over"] == t[4]

    ps = list(csv.DictReader(open(out_dir / "per_sample.csv")))
    assert len(ps) == N_GEN
    assert list(ps[0]) == ["row", "nearest", "distance", "second_distance", "in_support", "ball_count",
                           "authentic", "memorized"]
    col = lambda name, t=float: np.array([t(r[name]) for r in ps])  # noqa: E731
    np.testing.assert_array_equal(col("row", int), np.arange(N_GEN))
    np.testing.assert_array_equal(col("nearest", int), ev.nearest)
    np.testing.assert_allclose(col("distance"), ev.distances, rtol=1e-9)
    np.testing.assert_allclose(col("second_distance"), ev.second_distances, rtol=1e-9)
    np.testing.assert_array_equal(col("ball_count", int), ev.ball_counts)
    assert col("in_support").mean() == pytest.approx(ev.precision.value)
    assert col("authentic").mean() == pytest.approx(ev.authenticity.value)
    assert col("memorized").mean() == pytest.approx(ev.memorized.value)
    assert col("ball_count").mean() / 4 == pytest.approx(ev.density.value)


def test_figures(files, capsys):
    pytest.importorskip("matplotlib")
    out_dir = files / "figs"
    code, out, err = run(_argv(files, "--out", str(out_dir), "--format", "png,svg", "-q"), capsys)
    assert code == 0, err
    for stem in ("evaluation_metrics", "evaluation_distances"):
        assert (out_dir / f"{stem}.png").stat().st_size > 5000
        assert (out_dir / f"{stem}.svg").stat().st_size > 5000
    rep = json.load(open(out_dir / "evaluation.json"))
    assert "evaluation_metrics.png" in rep["files"] and "evaluation_distances.svg" in rep["files"]


def test_plot_functions_without_test_or_intervals(arrays):
    pytest.importorskip("matplotlib")
    from repgap import plot

    G, T, _ = arrays
    G = np.concatenate([T[:10], G])  # exact copies: d1 = 0
    ev = repgap.evaluate(G, T, n_boot=0, random_state=0)
    fig = plot.plot_evaluation(ev)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "precision" and labels[-1].startswith("memorized")
    fig2 = plot.plot_evaluation_distances(ev)
    assert len(fig2.axes) == 2
    assert any("exact copies" in t.get_text() for t in fig2.axes[0].get_legend().get_texts())


def test_group_counts_a_permuted_copy_as_memorized(tmp_path, capsys):
    # rows are 4 points of R^2; the samples are training rows with their points
    # reordered: a copy modulo permutation:4:2, far from every row without it
    rng = np.random.default_rng(1)
    T = rng.standard_normal((N_TRAIN, 8))
    blocks = T[:100].reshape(100, 4, 2)[:, [2, 0, 3, 1]].reshape(100, 8)
    G = np.concatenate([blocks, rng.standard_normal((100, 8))])
    np.save(tmp_path / "gen.npy", G)
    np.save(tmp_path / "train.npy", T)
    res = {}
    for name, extra in (("plain", []), ("group", ["--group", "permutation:4:2"])):
        out_dir = tmp_path / name
        code, out, err = run(["evaluate", str(tmp_path / "gen.npy"), str(tmp_path / "train.npy"), "--n-boot", "0",
                              "--out", str(out_dir), "--no-plots", "-q"] + extra, capsys)
        assert code == 0, err
        res[name] = list(csv.DictReader(open(out_dir / "per_sample.csv")))
        rep = json.load(open(out_dir / "evaluation.json"))
        assert (rep["group"] == "none") == (name == "plain")
        if name == "group":
            assert "modulo" in out
    copies = lambda rows, f: np.array([int(r[f]) for r in rows[:100]])  # noqa: E731
    assert copies(res["group"], "memorized").all() and not copies(res["group"], "authentic").any()
    assert np.array_equal(copies(res["group"], "nearest"), np.arange(100))
    assert copies(res["plain"], "memorized").mean() < 0.1 and copies(res["plain"], "authentic").mean() > 0.5


def test_feature_mismatch_is_one_line(files, capsys, arrays):
    np.save(files / "narrow.npy", arrays[1][:, :4])
    code, _, err = run(["evaluate", str(files / "gen.npy"), str(files / "narrow.npy")], capsys)
    assert_one_line_error(code, err, "features")
    code, _, err = run(["evaluate", str(files / "gen.npy"), str(files / "train.npy"), "--test",
                        str(files / "narrow.npy")], capsys)
    assert_one_line_error(code, err, "narrow.npy", "features")


def test_bad_options_are_one_line(files, capsys):
    for extra, needle in ((["--ratio", "0"], "--ratio"), (["--confidence", "1"], "--confidence"),
                          (["-k", "0"], "-k"), (["--format", "gif"], "--format")):
        code, _, err = run(["evaluate", str(files / "gen.npy"), str(files / "train.npy"), "--out",
                            str(files / "o")] + extra, capsys)
        assert_one_line_error(code, err, needle)
    assert not (files / "o").exists()


def test_out_inside_an_input_image_folder_is_refused(tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    imgs = tmp_path / "gen_imgs"
    imgs.mkdir()
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (4, 4), dtype=np.uint8)).save(imgs / f"im{i:03d}.png")
    np.save(tmp_path / "train.npy", rng.integers(0, 256, (60, 16)).astype(float))
    for out in (imgs, imgs / "report"):
        code, _, err = run(["evaluate", str(imgs), str(tmp_path / "train.npy"), "--out", str(out)], capsys)
        assert_one_line_error(code, err, "input image folder GEN")
    assert sorted(p.name for p in imgs.iterdir()) == [f"im{i:03d}.png" for i in range(30)]
    # and outside it the folder is read as 30 rows
    code, out, err = run(["evaluate", str(imgs), str(tmp_path / "train.npy"), "--n-boot", "0", "-q",
                          "--out", str(tmp_path / "o"), "--no-plots"], capsys)
    assert code == 0, err
    assert json.load(open(tmp_path / "o" / "evaluation.json"))["n_generated"] == 30


def test_quiet_silences_status_messages(files, capsys):
    code, out, err = run(_argv(files), capsys)
    assert code == 0 and "evaluating" in err
    code, out, err = run(_argv(files, "-q"), capsys)
    assert code == 0 and err == "" and "precision" in out  # the results still print


def test_help_shows_defaults_and_sources(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    for s in ("Kynkaanniemi et al. 2019", "Naeem et al. 2020", "Alaa et al. 2022", "Meehan et al. 2020",
              "Gu et al. 2023", "default 5", "default 1000", "default 0.95", "default 20", "default 1/3"):
        assert s in " ".join(out.split()), s
