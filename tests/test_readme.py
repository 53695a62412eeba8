"""Every command line the README shows runs as shown, and does what the README
says of it (issue #15). Data files named in the README are made here, small;
``repgap demo`` runs on fewer points than its default to keep the suite short."""
import os
import re
import shlex

import numpy as np
import pytest

import repgap
from repgap.cli import main

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def readme_command_lines():
    text = open(README, encoding="utf-8").read()
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("repgap ") or part == "repgap":
                    lines.append(part)
                elif part.startswith("python -m repgap"):
                    lines.append("repgap" + part[len("python -m repgap"):])
    return lines


COMMANDS = readme_command_lines()


def test_readme_shows_every_subcommand():
    shown = {shlex.split(c)[1] for c in COMMANDS}
    assert shown >= {"analyze", "id", "gap", "memorization", "evaluate", "config", "demo"}, shown


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    torus = repgap.datasets.flat_torus(3000, 3, random_state=0).X
    np.save(d / "data.npy", torus)
    clouds = rng.normal(size=(2400, 6))  # two points in R^3 per row (translation:3, rotation:3)
    np.save(d / "train.npy", clouds[:2000])
    np.save(d / "test.npy", clouds[2000:])
    train = rng.random((1500, 8))
    np.save(d / "samples.npy", np.concatenate([train[:20] + 1e-4, rng.random((180, 8))]))
    np.save(d / "heldout.npy", rng.random((200, 8)))
    # memorization's train.npy must match the samples' features: its own folder
    (d / "memo_in").mkdir()
    np.save(d / "memo_in" / "train.npy", train)
    return d


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, files, monkeypatch, capsys):
    argv = shlex.split(command)[1:]
    cwd = files
    if argv[0] in ("memorization", "evaluate"):
        cwd = files / "memo_in"
        for name in ("samples.npy", "heldout.npy"):
            if not (cwd / name).exists():
                os.symlink(files / name, cwd / name)
    if argv[0] == "demo":
        argv += ["--n", "4000"]
    if argv[0] in ("analyze", "demo", "memorization", "evaluate", "gap"):
        argv += ["--overwrite"]  # the module's tmp folder is shared by the parametrised runs
    monkeypatch.chdir(cwd)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, (command, err)
    if argv[0] == "analyze":
        assert "law" in out and "dimension" in out
        folder = argv[argv.index("--out") + 1] if "--out" in argv else "repgap-report"
        assert {"report.json", "gap_curve.csv", "dimension.csv"} <= set(os.listdir(cwd / folder))
    if argv[0] == "gap" and "--curve" in argv:
        header = next(ln for ln in out.splitlines() if "n_train" in ln)
        assert header.split()[-1] == "law"  # the law beside the curve, as the README says
    if argv[0] == "demo":
        assert "estimated dimension" in out and "vs true 5" in out


@pytest.mark.parametrize("method", ["calibrated", "gap", "twonn", "mle", "gride", "corr", "weibull"])
def test_id_methods_the_readme_lists(method, files, capsys):
    code = main(["id", str(files / "data.npy"), "--method", method, "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{method}: intrinsic dimension" in out


def test_analyze_accepts_weibull(files, capsys):
    code = main(["analyze", str(files / "data.npy"), "--methods", "twonn,weibull", "--repeats", "2", "--no-plots",
                 "-q", "--out", str(files / "w")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Weibull" in out
