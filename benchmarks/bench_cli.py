"""``repgap analyze`` against the library calls it makes (issue #6).

Writes a 1e5 x 64 float32 ``.npy`` (a 6-dimensional flat torus, randomly
rotated into R^64), then, alternately ``--repeats`` times:

* runs the command ``python -m repgap analyze FILE --out DIR --quiet`` in a
  fresh process (wall time: interpreter start, imports, reading the file,
  the analysis, the table, report.json, the CSVs and three PNG figures);
* calls the same library functions in this process, timed around the calls
  only (``repgap.io.load_array`` and ``repgap.analysis.analyze``, which runs
  ``GapLaw.fit`` (gap curve + law fits), one ``NeighbourStats`` search
  shared by TwoNN, MLE and GRIDE, ``CalibratedTwoNN`` and
  ``CorrelationDimension``).

It prints the medians and their ratio (target: the command within 1.5x).

    python benchmarks/bench_cli.py [--n 100000 --dim 64 --repeats 3]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import repgap
from repgap.analysis import analyze
from repgap.io import load_array


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--d", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="repgap-bench-cli-")
    path = os.path.join(work, "data.npy")
    X = repgap.datasets.flat_torus(args.n, args.d, embed_dim=args.dim, random_state=0).X.astype(np.float32)
    np.save(path, X)
    del X
    print(f"repgap {repgap.__version__}; data {args.n} x {args.dim} float32, true d = {args.d}; "
          f"{os.cpu_count()} cpus", flush=True)
    t_cmd, t_lib, breakdown = [], [], None
    for rep in range(args.repeats):
        out = os.path.join(work, f"out{rep}")
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "repgap", "analyze", path, "--out", out, "--quiet"],
                           capture_output=True, text=True)
        t_cmd.append(time.perf_counter() - t)
        if r.returncode:
            raise SystemExit(r.stderr)
        rep_json = json.load(open(os.path.join(out, "report.json")))
        breakdown = rep_json["timings_s"]
        t = time.perf_counter()
        Y = load_array(path)
        a = analyze(Y, random_state=0, progress=False)
        t_lib.append(time.perf_counter() - t)
        assert abs(a.dimension - rep_json["dimension"]) < 1e-9, "command and library disagree"
        print(f"  repeat {rep}: command {t_cmd[-1]:.2f} s, library calls {t_lib[-1]:.2f} s "
              f"(d = {a.dimension:.3f})", flush=True)
    mc, ml = float(np.median(t_cmd)), float(np.median(t_lib))
    print(f"median: command {mc:.2f} s, library calls {ml:.2f} s, ratio {mc / ml:.3f} (target <= 1.5)")
    print("last command's breakdown (s): " + ", ".join(f"{k} {v:.2f}" for k, v in breakdown.items()))


if __name__ == "__main__":
    main()
