"""repgap's intrinsic-dimension estimators on the validation zoo.

The zoo (``repgap.datasets.ZOO_FAMILIES``: 34 families in 8 categories --
flat with and without boundary, curved with and without boundary,
non-uniform densities, products, embeddings, small noise) is made of data
whose dimension is known and which are chosen to break estimators. Each
family is drawn with ``repgap.datasets.zoo_family(name, n, random_state=seed)``
(an int seed is combined with the family's name, so families are
independent) and handed to every method in turn as
``repgap.intrinsic_dimension(X, method=m, random_state=seed)``.

Seeds: ``--seeds tuning`` uses ``ZOO_TUNING_SEEDS`` (0..24), ``heldout``
``ZOO_HELDOUT_SEEDS`` (1000..1024), ``both`` both; ``--n-seeds K`` keeps the
first K of each set. Constants of an estimator may be chosen only on the
tuning seeds; the held-out ones are for reporting, and the two sets are
summarized separately.

Per run (one family, n, seed, method) a row of the CSV ``--out`` records
the estimate, its nominal 95 % interval, whether the interval covers the
true d, the signed relative error, the wall time, the status (``ok``,
``error`` with the exception, ``nonfinite``), the warnings raised (count and
``Category: message``, de-duplicated) and the estimator's flag attributes
(e.g. ``GapLaw.pre_asymptotic_``; empty when the estimator has none). The
summary, for each (seed set, family, n, method): runs, mean estimate,
relative error of the mean ``(mean - d) / d`` (signed), mean relative error
``mean |est - d| / d`` (MRE), mean interval width, coverage (fraction of
runs whose interval contains d), mean time, and how many runs warned, were
flagged, failed; plus MRE and coverage over all families and per category.
It is printed as markdown and written next to the CSV (``.md``).

The CSV is appended to as it goes and rows already in it (same family, n,
seed set, seed and method) are skipped, so an interrupted run resumes;
``--fresh`` starts it over. ``--summarize FILE`` runs nothing and prints the
summary of an existing CSV.

    python benchmarks/bench_zoo.py --n 1000 --n-seeds 2 --methods mle twonn --tag smoke   # a few s
    python benchmarks/bench_zoo.py --n 1000 2500 --n-seeds 5 --methods mle twonn calibrated --tag trial
    python benchmarks/bench_zoo.py --seeds both --n-jobs 8 --tag full          # the full run
    python benchmarks/bench_zoo.py --summarize benchmarks/results/zoo_full.csv

How long (one thread, AMD EPYC, cython backend): one sample of a family
through all 7 methods takes about 0.4 s at n = 1000, 0.5-1 s at n = 2500 and
3-5 s at n = 10000 (``corr`` and ``gap`` are the slowest; ``calibrated``
also computes its uniform-ball references once per n and dimension in each
process, a few seconds). ``mle twonn calibrated`` on all 34 families, n =
1000 and 2500, 5 seeds: about 10 s. The full default run (34 families, n =
1000, 2500, 10000, 7 methods, 25 tuning seeds) is about 1 h of one core,
``--seeds both`` about 2 h; with ``--n-jobs J`` each worker process uses
``--threads`` threads (default 1), so J workers on J cores divide that by
about J.
"""
import argparse
import concurrent.futures
import csv
import hashlib
import math
import os
import re
import sys
import time
import warnings
from collections import OrderedDict, defaultdict

import numpy as np

import repgap
from repgap import datasets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_suite import _git_state  # noqa: E402  (the same checkout state line)

DEFAULT_METHODS = ["calibrated", "twonn", "mle", "gride", "gap", "corr", "weibull"]
SEED_SETS = {"tuning": datasets.ZOO_TUNING_SEEDS, "heldout": datasets.ZOO_HELDOUT_SEEDS}
FIELDS = ["family", "category", "d", "D", "n", "seed_set", "seed", "method", "estimate", "ci_low", "ci_high",
          "covered", "rel_error", "time_s", "status", "error", "n_warnings", "warnings", "flagged", "flags",
          "conservative", "x_sha1", "repgap"]
KEY = ("family", "n", "seed_set", "seed", "method")
# words in the name of an estimator attribute (fitted, trailing "_") that
# mark a flag: GapLaw.pre_asymptotic_ today, anything of the kind later
FLAG_WORDS = ("flag", "pre_asymptotic", "unreliable", "suspect", "warning")


# --------------------------------------------------------------------------- one run

def _flags(est):
    """(has a flag attribute, list of the flags that are set) for a fitted estimator."""
    if hasattr(type(est), "flags_"):  # repgap's estimators: every validity flag in one list
        return True, list(est.flags_)
    has, set_ = False, []
    for k, v in vars(est).items():
        if not k.endswith("_") or not any(w in k.lower() for w in FLAG_WORDS):
            continue
        has = True
        if isinstance(v, (bool, np.bool_)):
            if v:
                set_.append(k)
        elif v is not None and (not hasattr(v, "__len__") or len(v)):
            set_.append(f"{k}={v!r}"[:100])
    return has, set_


def _category(family):
    if family in datasets.ZOO_FAMILIES:
        return datasets.ZOO_FAMILIES[family].category
    return "M1..M13 suite"


def run_dataset(family, n, seed_set, seed, methods):
    """Draw one sample and run every method on it: a list of CSV rows."""
    man = datasets.zoo_family(family, n, random_state=seed)
    X = man.X
    base = dict(family=family, category=_category(family), d=man.d, D=X.shape[1], n=n, seed_set=seed_set,
                seed=seed, x_sha1=hashlib.sha1(X.tobytes()).hexdigest()[:12], repgap=repgap.__version__)
    rows = []
    for m in methods:
        row = dict(base, method=m, estimate=math.nan, ci_low=math.nan, ci_high=math.nan, covered="",
                   rel_error=math.nan, error="", flagged="", flags="", conservative="")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = time.perf_counter()
            try:
                res = repgap.intrinsic_dimension(X, method=m, random_state=seed)
                row["time_s"] = time.perf_counter() - t
                est, (lo, hi) = res.dimension, res.ci
                row.update(estimate=est, ci_low=lo, ci_high=hi, rel_error=(est - man.d) / man.d)
                row["status"] = "ok" if np.isfinite(est) else "nonfinite"
                if np.isfinite(lo) and np.isfinite(hi):
                    row["covered"] = int(lo <= man.d <= hi)
                has, fl = _flags(res.estimator)
                if has:
                    row.update(flagged=int(bool(fl)), flags=";".join(fl))
                if hasattr(type(res.estimator), "conservative_"):
                    row["conservative"] = int(res.estimator.conservative_)
            except Exception as e:  # noqa: BLE001 -- recorded per run
                row["time_s"] = time.perf_counter() - t
                row.update(status="error", error=f"{type(e).__name__}: {e}".replace("\n", " ")[:300])
        msgs = list(OrderedDict.fromkeys(f"{w.category.__name__}: {w.message}".replace("\n", " ")[:200]
                                         for w in caught))
        row.update(n_warnings=len(caught), warnings=" | ".join(msgs)[:600])
        rows.append(row)
    return rows


def _init_worker(threads):
    if threads:
        os.environ["REPGAP_NUM_THREADS"] = str(threads)
        repgap.set_config(n_jobs=threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)
        except ImportError:
            pass


# --------------------------------------------------------------------------- summary

def _f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _stats(rows):
    """Summary statistics of the rows of one (seed set, family, n, method) or any other group."""
    ok = [r for r in rows if r["status"] == "ok"]
    est = np.array([_f(r["estimate"]) for r in ok], dtype=float)
    d = np.array([_f(r["d"]) for r in ok], dtype=float)
    lo = np.array([_f(r["ci_low"]) for r in ok], dtype=float)
    hi = np.array([_f(r["ci_high"]) for r in ok], dtype=float)
    cov = [int(r["covered"]) for r in ok if r["covered"] not in ("", None)]
    # runs whose estimator raised no validity flag: the ones its interval
    # must cover at the nominal rate (a flagged run says it may not)
    cov_u = [int(r["covered"]) for r in ok if r["covered"] not in ("", None) and r["flagged"] in ("", "0", 0)]
    # runs whose interval the models' spread dominates (conservative_: it
    # covers more than the nominal rate where one model holds), and the rest
    cons = [(r.get("conservative") in ("1", 1), int(r["covered"])) for r in ok
            if r["covered"] not in ("", None) and r["flagged"] in ("", "0", 0) and r.get("conservative") not in ("", None)]
    cov_c = [c for m, c in cons if m]
    cov_nc = [c for m, c in cons if not m]
    times = [_f(r["time_s"]) for r in rows if r.get("time_s") not in ("", None)]
    has_flag = [r for r in rows if r["flagged"] not in ("", None)]
    width = hi - lo
    out = dict(runs=len(rows), ok=len(ok),
               mean=float(np.mean(est)) if len(ok) else math.nan,
               mre=float(np.mean(np.abs(est - d) / d)) if len(ok) else math.nan,
               width=float(np.mean(width[np.isfinite(width)])) if np.isfinite(width).any() else math.nan,
               coverage=float(np.mean(cov)) if cov else math.nan,
               coverage_unflagged=float(np.mean(cov_u)) if cov_u else math.nan, n_unflagged=len(cov_u),
               coverage_conservative=float(np.mean(cov_c)) if cov_c else math.nan, n_conservative=len(cov_c),
               coverage_other=float(np.mean(cov_nc)) if cov_nc else math.nan, n_other=len(cov_nc),
               time=float(np.mean(times)) if times else math.nan,
               warned=sum(int(r["n_warnings"] or 0) > 0 for r in rows),
               flagged=sum(int(r["flagged"]) for r in has_flag) if has_flag else None,
               errors=sum(r["status"] != "ok" for r in rows))
    if len(ok) and len(set(d)) == 1:
        out["bias"] = (out["mean"] - d[0]) / d[0]
    else:
        out["bias"] = math.nan
    return out


def _fmt(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(x)
    if not np.isfinite(x):
        return "nan"
    return f"{x:.{nd}f}" if abs(x) < 1000 else f"{x:.3g}"


def _mask(msg):
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", msg)[:140]


def _group(rows, keys):
    g = defaultdict(list)
    for r in rows:
        g[tuple(r[k] for k in keys)].append(r)
    return g


def summarize(rows, title=""):
    """The markdown summary of per-run rows (dicts as in the CSV, values str or numbers)."""
    rows = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]
    fam_order = list(OrderedDict.fromkeys(r["family"] for r in rows))
    meth_order = [m for m in DEFAULT_METHODS if any(r["method"] == m for r in rows)]
    meth_order += [m for m in OrderedDict.fromkeys(r["method"] for r in rows) if m not in meth_order]
    ns = sorted({int(r["n"]) for r in rows})
    cats = list(OrderedDict.fromkeys(r["category"] for r in rows))
    out = [f"# Validation zoo{': ' + title if title else ''}\n"]
    for sset in [s for s in ("tuning", "heldout") if any(r["seed_set"] == s for r in rows)]:
        R = [r for r in rows if r["seed_set"] == sset]
        seeds = sorted({int(r["seed"]) for r in R})
        out.append(f"## {sset} seeds ({len(seeds)}: {seeds[0]}..{seeds[-1]})\n")
        if sset == "heldout":
            out.append("Held-out seeds: for reporting only; no constant may be chosen on these numbers.\n")

        # over all families
        out.append("### All families\n")
        out.append("| n | method | families | runs | MRE | median rel. error | coverage | coverage unflagged | "
                   "families with unflagged coverage >= 0.90 (or all flagged) | "
                   "coverage of the unflagged runs marked conservative (runs) | of the others (runs) | "
                   "mean time (s) | warned | flagged | errors |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        by = _group(R, ("n", "method"))
        byfam = _group(R, ("n", "method", "family"))
        for n in ns:
            for m in meth_order:
                g = by.get((str(n), m), [])
                if not g:
                    continue
                s = _stats(g)
                ok = [r for r in g if r["status"] == "ok"]
                med = float(np.median([abs(_f(r["rel_error"])) for r in ok])) if ok else math.nan
                fams = sorted({r["family"] for r in g})
                good = 0
                for f in fams:
                    sf = _stats(byfam[(str(n), m, f)])
                    cu = sf["coverage_unflagged"]
                    good += int(sf["n_unflagged"] == 0 or cu >= 0.90)
                out.append(f"| {n} | {m} | {len(fams)} | {s['runs']} | {_fmt(s['mre'])} | "
                           f"{_fmt(med)} | {_fmt(s['coverage'], 2)} | {_fmt(s['coverage_unflagged'], 2)} | "
                           f"{good}/{len(fams)} | {_fmt(s['coverage_conservative'], 3)} ({s['n_conservative']}) | "
                           f"{_fmt(s['coverage_other'], 3)} ({s['n_other']}) | {_fmt(s['time'], 2)} | {s['warned']} | "
                           f"{_fmt(s['flagged'])} | {s['errors']} |")
        out.append("")

        # per category: MRE (coverage)
        out.append("### MRE (coverage) per category\n")
        out.append("| category | n | " + " | ".join(meth_order) + " |")
        out.append("|---|---:|" + "---:|" * len(meth_order))
        by = _group(R, ("category", "n", "method"))
        for c in cats:
            for n in ns:
                cells = []
                for m in meth_order:
                    g = by.get((c, str(n), m))
                    s = _stats(g) if g else None
                    cells.append(f"{_fmt(s['mre'])} ({_fmt(s['coverage'], 2)})" if s else "")
                if any(cells):
                    out.append(f"| {c} | {n} | " + " | ".join(cells) + " |")
        out.append("")

        # per family, n, method
        out.append("### Per family\n")
        out.append("rel. err. of mean = (mean - d) / d; MRE = mean |estimate - d| / d; width and coverage of "
                   "the nominal 95 % interval; warned / flagged / errors: numbers of runs (flagged '-': the "
                   "estimator has no flag).\n")
        out.append("| family | d | D | n | method | runs | mean | rel. err. of mean | MRE | CI width | coverage | "
                   "time (s) | warned | flagged | errors |")
        out.append("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        by = _group(R, ("family", "n", "method"))
        for fam in fam_order:
            for n in ns:
                for m in meth_order:
                    g = by.get((fam, str(n), m))
                    if not g:
                        continue
                    s = _stats(g)
                    out.append(f"| {fam} | {g[0]['d']} | {g[0]['D']} | {n} | {m} | {s['runs']} | "
                               f"{_fmt(s['mean'], 2)} | {_fmt(s['bias'])} | {_fmt(s['mre'])} | {_fmt(s['width'], 2)} | "
                               f"{_fmt(s['coverage'], 2)} | {_fmt(s['time'], 2)} | {s['warned']} | "
                               f"{_fmt(s['flagged'])} | {s['errors']} |")
        out.append("")

        # the distinct warnings and errors, numbers masked so that one message is one line
        msgs = defaultdict(set)
        for r in R:
            for w in filter(None, r["warnings"].split(" | ")):
                msgs[(r["method"], "warning", _mask(w))].add(r["family"])
            if r["error"]:
                msgs[(r["method"], "error", _mask(r["error"]))].add(r["family"])
        if msgs:
            out.append("### Warnings and errors\n")
            for (m, kind, w), fams in sorted(msgs.items()):
                out.append(f"- {m} {kind} `{w}` on {len(fams)} famil{'y' if len(fams) == 1 else 'ies'}: "
                           f"{', '.join(sorted(fams))}")
            out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- main

def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=None,
                    help="zoo families (default all of ZOO_FAMILIES); M1..M13 names are accepted too")
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 2500, 10000])
    ap.add_argument("--seeds", choices=["tuning", "heldout", "both"], default="tuning")
    ap.add_argument("--n-seeds", type=int, default=25, help="first K seeds of each seed set (default 25)")
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--n-jobs", type=int, default=1, help="worker processes (default 1: in this process)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads per run (default: repgap's default with --n-jobs 1, else 1)")
    ap.add_argument("--tag", default="run")
    ap.add_argument("--out", default=None, help="per-run CSV (default benchmarks/results/zoo_<tag>.csv)")
    ap.add_argument("--fresh", action="store_true", help="start the CSV over instead of resuming")
    ap.add_argument("--summarize", metavar="FILE", default=None, help="run nothing: summarize this CSV")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"zoo_{args.tag}.csv")
    return args


def main(argv=None):
    args = _parse(argv)
    if args.summarize:
        print(summarize(read_rows(args.summarize), title=os.path.basename(args.summarize)))
        return 0
    families = args.families or list(datasets.ZOO_FAMILIES)
    for f in families:  # fail before running anything
        if f not in datasets.ZOO_FAMILIES and f not in datasets.BENCHMARK_MANIFOLDS:
            datasets.zoo_family(f, 1)
    from repgap.estimators import METHODS

    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        sys.exit(f"unknown method(s) {bad}; choose among {list(METHODS)}")
    if args.n_seeds < 1:
        sys.exit("--n-seeds must be positive")
    sets = ["tuning", "heldout"] if args.seeds == "both" else [args.seeds]

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    done = set()
    if os.path.exists(args.out) and not args.fresh:
        for r in read_rows(args.out):
            done.add(tuple(str(r[k]) for k in KEY))
    tasks = []
    for n in args.n:
        for sset in sets:
            for seed in list(SEED_SETS[sset])[: args.n_seeds]:
                for fam in families:
                    todo = [m for m in args.methods if (fam, str(n), sset, str(seed), m) not in done]
                    if todo:
                        tasks.append((fam, n, sset, seed, todo))
    print(f"bench_zoo: {len(tasks)} samples to run ({sum(len(t[4]) for t in tasks)} runs; "
          f"{len(done)} rows already in {args.out}); repgap {repgap.__version__}, {_git_state()}", flush=True)

    new = args.fresh or not os.path.exists(args.out) or os.path.getsize(args.out) == 0
    t0 = time.perf_counter()
    fields = FIELDS
    if not new:  # append in the file's own columns (a CSV from before a column was added)
        with open(args.out, newline="") as fh:
            fields = next(csv.reader(fh))
    with open(args.out, "w" if new else "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()

        def write(rows):
            w.writerows(rows)
            fh.flush()
            r0 = rows[0]
            print(f"  n={r0['n']:<6} {r0['seed_set']}:{r0['seed']:<5} {r0['family']:<22} d={r0['d']:<3} "
                  + " ".join(f"{r['method']}={r['estimate']:.3g}{'!' if r['n_warnings'] else ''}"
                             f"{'E' if r['status'] != 'ok' else ''}({r['time_s']:.1f}s)" for r in rows),
                  flush=True)

        if args.n_jobs == 1:
            _init_worker(args.threads)
            for t in tasks:
                write(run_dataset(*t))
        else:
            with concurrent.futures.ProcessPoolExecutor(args.n_jobs, initializer=_init_worker,
                                                        initargs=(args.threads or 1,)) as ex:
                for fut in concurrent.futures.as_completed([ex.submit(run_dataset, *t) for t in tasks]):
                    write(fut.result())
    elapsed = time.perf_counter() - t0
    md = summarize(read_rows(args.out), title=f"{os.path.basename(args.out)}")
    md += (f"\nCommand: `{' '.join(sys.argv)}`; repgap {repgap.__version__}, {_git_state()}; "
           f"{os.cpu_count()} CPUs; this invocation ran {len(tasks)} samples in {elapsed:.0f} s.\n")
    print("\n" + md)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as fh:
        fh.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
