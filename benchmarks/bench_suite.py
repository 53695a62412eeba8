"""repgap's intrinsic-dimension estimators against scikit-dimension and dadapy
on the standard benchmark manifold suite (M1..M13b, 18 manifolds).

Every method sees the SAME samples: for each n and seed the suite is drawn
once with ``repgap.datasets.benchmark_suite(n, random_state=seed)`` and each
manifold's ``X`` (float64) is handed to every method in turn.

Methods
-------
repgap   ``repgap.intrinsic_dimension(X, method=m, random_state=seed)`` for
         m in twonn, mle, gride, corr, gap, weibull; ``duplicates="drop"`` is
         passed to the estimators that accept it (all but ``corr``).
skdim    ``skdim.id.<Est>(...).fit(X).dimension_`` with the package defaults
         (local estimators: their default ``n_neighbors`` = 100 and default
         combination of the pointwise estimates), except:
         ``random_state=seed`` where the constructor takes one, ``lPCA``
         with ``verbose=False``, and ``MiND_ML`` with ``D`` = the ambient
         dimension (its default ``D=10`` is an upper bound on the estimate,
         which would cap it at 10 on M1/M8-M12).
dadapy   ``Data(X).compute_id_2NN()[0]`` (defaults: base algorithm,
         mu_fraction=0.9) and ``Data(X).return_id_scaling_gride()[0][0]``,
         the GRIDE estimate at the smallest scale (n1=1, n2=2). A fresh
         ``Data`` is made for each, so each time includes its own k-NN search.

For each (n, seed, manifold, package, method) the estimate, the true d, the
relative error |d_hat - d| / d and the wall time are written to
``OUT/results_n{n}.csv``; ``OUT/summary.md`` gets, for each n, the mean
relative error over manifolds and seeds and the median time per dataset of
each method (sorted by mean relative error) and a per-manifold table of mean
estimates.

Slow methods: a method whose single call takes more than ``--max-time``
seconds (default 120) is dropped for the remaining datasets of that n (rows
marked ``skipped``); a call is also interrupted (SIGALRM) after
``--hard-timeout`` seconds. ``--exclude PKG:METHOD[@N]`` skips a method
up front (at every n, or only at N). Errors are caught per method and
recorded (estimate NaN, the message in ``error``).

    python benchmarks/bench_suite.py --n 500 --seeds 0                  # smoke run
    python benchmarks/bench_suite.py --n 2500 --seeds 0 1 2
    python benchmarks/bench_suite.py --n 10000 --seeds 0 --exclude skdim:DANCo@10000

Each row also carries ``x_sha1`` (a hash of the sample) so that results of
separate runs can be checked to come from the same samples;
``--merge A.csv B.csv ...`` runs nothing and summarizes several results files
together (e.g. peers from one run, repgap rows re-run after a change to
repgap), a later file's row replacing the same (n, seed, manifold, package,
method) of an earlier one. The summary header records the git commit of the
repgap checkout and whether repgap/ or csrc/ had uncommitted changes.

Timings are wall-clock times of single calls on whatever machine runs this,
with the libraries' default threading; they are indicative only.
"""
import argparse
import contextlib
import csv
import hashlib
import inspect
import io
import math
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np

import repgap
from repgap import datasets
from repgap.estimators import METHODS as REPGAP_CLASSES

# the six of the original comparison, then any other method repgap offers (e.g. "calibrated")
REPGAP_METHODS = ["twonn", "mle", "gride", "corr", "gap", "weibull"]
REPGAP_METHODS += [m for m in REPGAP_CLASSES if m not in REPGAP_METHODS]
SKDIM_METHODS = ["lPCA", "MLE", "TwoNN", "MOM", "TLE", "CorrInt", "DANCo", "ESS", "FisherS",
                 "MiND_ML", "MADA", "KNN", "GRIDE"]
DADAPY_METHODS = ["2NN", "gride_n1"]
FIELDS = ["n", "seed", "manifold", "d", "D", "x_sha1", "package", "method", "estimate", "rel_error",
          "time_s", "status", "error"]


# --------------------------------------------------------------------------- methods

def _repgap(method):
    cls = REPGAP_CLASSES[method]
    params = {}
    if "duplicates" in inspect.signature(cls.__init__).parameters:
        params["duplicates"] = "drop"

    def run(X, seed):
        return repgap.intrinsic_dimension(X, method=method, random_state=seed, **params).dimension
    return run


def _skdim(name):
    import skdim

    cls = getattr(skdim.id, name)
    sig = inspect.signature(cls.__init__).parameters

    def run(X, seed):
        kw = {}
        if "random_state" in sig:
            kw["random_state"] = seed
        if name == "lPCA":
            kw["verbose"] = False
        if name == "MiND_ML":
            kw["D"] = X.shape[1]
        return cls(**kw).fit(X).dimension_
    return run


def _dadapy(name):
    from dadapy import Data

    def run(X, seed):
        data = Data(X, verbose=False)
        if name == "2NN":
            return data.compute_id_2NN()[0]
        ids, _, _ = data.return_id_scaling_gride()
        return ids[0]
    return run


def all_methods():
    out = [("repgap", m, _repgap(m)) for m in REPGAP_METHODS]
    import skdim

    for m in SKDIM_METHODS:
        if hasattr(skdim.id, m):
            out.append(("skdim", m, _skdim(m)))
        else:
            print(f"note: skdim.id has no {m}; skipped", file=sys.stderr)
    out += [("dadapy", m, _dadapy(m)) for m in DADAPY_METHODS]
    return out


# --------------------------------------------------------------------------- running

class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def call(fn, X, seed, hard_timeout):
    """(estimate, seconds, error message or '')."""
    sink = io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm) if hard_timeout else None
    t = time.perf_counter()
    try:
        if hard_timeout:
            signal.alarm(int(math.ceil(hard_timeout)))
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            est = float(np.asarray(fn(X, seed)).ravel()[0])
        err = "" if np.isfinite(est) else f"non-finite estimate ({est})"
    except _Timeout:
        est, err = np.nan, f"timeout after {hard_timeout:g} s"
    except Exception as e:  # noqa: BLE001 -- recorded per method
        est, err = np.nan, f"{type(e).__name__}: {e}".replace("\n", " ")[:300]
    finally:
        if hard_timeout:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    return est, time.perf_counter() - t, err


def _excluded(pkg, method, n, excludes):
    for e in excludes:
        key, _, at = e.partition("@")
        if key.lower() == f"{pkg}:{method}".lower() and (not at or int(at) == n):
            return True
    return False


def run_n(n, seeds, methods, args):
    rows = []
    dropped = {}  # (pkg, method) -> reason
    for pkg, m, _ in methods:
        if _excluded(pkg, m, n, args.exclude):
            dropped[(pkg, m)] = f"excluded at n={n} (--exclude)"
    path = os.path.join(args.out, f"results_n{n}.csv")
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        for seed in seeds:
            t0 = time.perf_counter()
            suite = datasets.benchmark_suite(n, random_state=seed)
            print(f"== n={n} seed={seed}: suite drawn in {time.perf_counter() - t0:.1f} s", flush=True)
            for name, man in suite.items():
                X = np.ascontiguousarray(man.X, dtype=np.float64)
                xh = hashlib.sha1(X.tobytes()).hexdigest()[:12]  # to check that runs saw the same samples
                line = []
                for pkg, m, fn in methods:
                    row = dict(n=n, seed=seed, manifold=name, d=man.d, D=X.shape[1], x_sha1=xh, package=pkg,
                               method=m)
                    if (pkg, m) in dropped:
                        row.update(estimate=np.nan, rel_error=np.nan, time_s=np.nan, status="skipped",
                                   error=dropped[(pkg, m)])
                    else:
                        est, dt, err = call(fn, X, seed, args.hard_timeout)
                        row.update(estimate=est, rel_error=abs(est - man.d) / man.d, time_s=dt,
                                   status="error" if err else "ok", error=err)
                        if dt > args.max_time:
                            dropped[(pkg, m)] = (f"dropped at n={n}: took {dt:.0f} s on {name} "
                                                 f"(seed {seed}) > --max-time {args.max_time:g} s")
                            print(f"   !! {pkg}:{m} {dropped[(pkg, m)]}", flush=True)
                        line.append(f"{pkg[:2]}:{m}={est:.3g}({dt:.1f}s)")
                        if err:
                            print(f"   !! {pkg}:{m} on {name}: {err}", flush=True)
                    w.writerow(row)
                    rows.append(row)
                fh.flush()
                print(f"  {name:<18} d={man.d:<3} " + " ".join(line), flush=True)
    return rows, dropped


# --------------------------------------------------------------------------- summaries

def _version(dist):
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _fmt(x, nd=3):
    if x is None or not np.isfinite(x):
        return "nan"
    return f"{x:.{nd}f}" if abs(x) < 1000 else f"{x:.3g}"


def summarize(n, rows, dropped):
    import pandas as pd

    df = pd.DataFrame(rows)
    df["key"] = df["package"] + ":" + df["method"]
    keys = list(dict.fromkeys(df["key"]))
    run = df[df["status"] != "skipped"]
    out = [f"## n = {n} (seeds {sorted(df['seed'].unique().tolist())}, {df['manifold'].nunique()} manifolds)\n"]

    # accuracy / time table
    recs = []
    for k in keys:
        s = df[df["key"] == k]
        r = run[run["key"] == k]
        ok = r[r["status"] == "ok"]
        recs.append(dict(method=k, mre=ok["rel_error"].mean() if len(ok) else np.nan,
                         med=ok["rel_error"].median() if len(ok) else np.nan,
                         t=r["time_s"].median() if len(r) else np.nan,
                         ok=len(ok), total=len(s), err=int((r["status"] == "error").sum()),
                         skip=int((s["status"] == "skipped").sum())))
    recs.sort(key=lambda r: (not np.isfinite(r["mre"]), r["mre"] if np.isfinite(r["mre"]) else 0))
    out.append("| rank | method | mean rel. error | median rel. error | median time / dataset (s) | ok / total | errors | skipped |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(recs, 1):
        out.append(f"| {i} | {r['method']} | {_fmt(r['mre'])} | {_fmt(r['med'])} | {_fmt(r['t'], 2)} | "
                   f"{r['ok']}/{r['total']} | {r['err']} | {r['skip']} |")
    out.append("")
    out.append("Mean/median relative error over the (manifold, seed) pairs where the method returned a "
               "finite estimate (see ok / total); time = median wall time of one call over all calls made.")
    out.append("")

    # per-manifold mean estimates
    order = [r["method"] for r in recs]
    man = list(dict.fromkeys(df["manifold"]))
    piv = run[run["status"] == "ok"].pivot_table(index="manifold", columns="key", values="estimate", aggfunc="mean")
    dtrue = df.groupby("manifold")["d"].first()
    out.append(f"### n = {n}: mean estimate per manifold (over seeds)\n")
    out.append("| manifold | d | " + " | ".join(order) + " |")
    out.append("|---|---:|" + "---:|" * len(order))
    for mname in man:
        vals = [piv.loc[mname, k] if (mname in piv.index and k in piv.columns) else np.nan for k in order]
        out.append(f"| {mname} | {dtrue[mname]} | " + " | ".join(_fmt(v, 2) for v in vals) + " |")
    out.append("")

    # failures
    errs = run[run["status"] == "error"]
    if len(errs) or dropped:
        out.append(f"### n = {n}: failures and dropped methods\n")
        for (pkg, m), why in dropped.items():
            out.append(f"- {pkg}:{m}: {why}")
        for (k, e), g in errs.groupby(["key", "error"]):
            out.append(f"- {k}: {len(g)} x `{e}` on {', '.join(sorted(set(g['manifold'])))}")
        out.append("")
    return "\n".join(out)


def _git_state():
    """The commit of the repgap checkout, and whether repgap/ or csrc/ differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(repgap.__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "repgap", "csrc"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"git {head}" + (" + uncommitted changes in repgap/ or csrc/" if dirty else " (clean)")


def merge(paths, summary_path):
    import pandas as pd

    frames = []
    for i, p in enumerate(paths):
        f = pd.read_csv(p, keep_default_na=False, na_values=["nan", "NaN", ""])
        f["_file"] = i
        frames.append(f)
    df = pd.concat(frames, ignore_index=True)
    key = ["n", "seed", "manifold", "package", "method"]
    if "x_sha1" in df:  # the same samples in every file?
        h = df.dropna(subset=["x_sha1"]).groupby(["n", "seed", "manifold"])["x_sha1"].nunique()
        if (h > 1).any():
            print(f"WARNING: different samples for {list(h[h > 1].index)}", file=sys.stderr)
    df = df.sort_values("_file").drop_duplicates(key, keep="last").sort_index()
    df["error"] = df["error"].fillna("").astype(str)
    out = [f"# ID benchmark suite, merged from {', '.join(paths)}\n"]
    for n, g in df.groupby("n", sort=True):
        rows = g.drop(columns=["_file"]).to_dict("records")
        dropped = {(r["package"], r["method"]): r["error"] for r in rows if r["status"] == "skipped"}
        out.append(summarize(int(n), rows, dropped))
    md = "\n".join(out)
    print(md)
    with open(summary_path, "w") as fh:
        fh.write(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[2500, 10000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="/tmp/suite")
    ap.add_argument("--max-time", type=float, default=120.0,
                    help="drop a method for the rest of an n after one call takes longer (s)")
    ap.add_argument("--hard-timeout", type=float, default=300.0,
                    help="interrupt a single call after this many seconds (0: never)")
    ap.add_argument("--exclude", nargs="*", default=[], metavar="PKG:METHOD[@N]")
    ap.add_argument("--only", nargs="*", default=None, metavar="PKG:METHOD",
                    help="run only these methods")
    ap.add_argument("--summary", default=None, help="markdown file (default OUT/summary.md; appended per n)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="CSV",
                    help="run nothing: summarize these results files together (a row of a later file "
                         "replaces the same (n, seed, manifold, package, method) of an earlier one) "
                         "into --summary")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.merge:
        return merge(args.merge, args.summary or os.path.join(args.out, "summary_merged.md"))
    methods = all_methods()
    if args.only:
        want = {s.lower() for s in args.only}
        methods = [t for t in methods if f"{t[0]}:{t[1]}".lower() in want]
    summary_path = args.summary or os.path.join(args.out, "summary.md")

    header = (f"# ID benchmark suite: repgap {repgap.__version__}, scikit-dimension "
              f"{_version('scikit-dimension')}, dadapy {_version('dadapy')}\n\n"
              f"Command: `{' '.join(sys.argv)}`; {os.cpu_count()} CPUs; times are approximate "
              f"(shared machine). repgap source: {_git_state()}.\n")
    for n in args.n:
        t = time.perf_counter()
        rows, dropped = run_n(n, args.seeds, methods, args)
        md = summarize(n, rows, dropped)
        print("\n" + md, flush=True)
        new = not os.path.exists(summary_path) or os.path.getsize(summary_path) == 0
        with open(summary_path, "a") as fh:
            fh.write((header + "\n" if new else "\n") + md + f"\n(total wall time for n={n}: "
                     f"{time.perf_counter() - t:.0f} s)\n")
        print(f"total wall time for n={n}: {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
