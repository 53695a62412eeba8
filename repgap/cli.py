"""The ``repgap`` command (also ``python -m repgap``).

Subcommands: ``analyze`` (the main job), ``id``, ``gap``, ``memorization``,
``config`` and ``demo``. Bad input (a missing file, an unreadable format, a
wrong shape, NaN rows, an unknown group or method) prints one line,
``repgap: error: ...``, and exits with status 2; ``--verbose`` adds the
traceback. Ctrl-C stops the computation and exits with status 130. Input
files are opened read-only.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from . import __version__

EXIT_USAGE = 2
EXIT_INTERRUPT = 130


class CLIError(ValueError):
    """A usage problem the command reports in one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``repgap: error: ...``) and exit 2."""

    def error(self, message):
        raise CLIError(f"{self.prog.split()[-1] if ' ' in self.prog else ''} {message}".strip())


# --------------------------------------------------------------------------- input
def _load(path, key=None, what="DATA"):
    from .io import as_rows, check_rows_finite, read_array

    raw = read_array(path, key=key)
    X = as_rows(raw, path)
    check_rows_finite(X, path)
    return X, tuple(raw.shape[1:])


def _same_features(X, Y, px, py):
    if X.shape[1] != Y.shape[1]:
        raise CLIError(f"{py} has {Y.shape[1]} features per row but {px} has {X.shape[1]}")


_GROUP_HELP = ("symmetry group, repeatable (a product): translation:P, rotation:P[:reflections], "
               "permutation:M[:P], cyclic[:HxW][:mirror], signflip")


def parse_group(specs, row_shape=()):
    """A :class:`repgap.groups.Group` from command-line specs such as ``rotation:3``.

    Several specs make a :class:`~repgap.groups.Product`.
    """
    from . import groups as G

    if not specs:
        return None
    out = []
    for spec in specs:
        name, *args = [s.strip() for s in spec.split(":")]
        name = name.lower()
        try:
            if name in ("translation", "translations"):
                (p,) = args
                out.append(G.Translation(int(p)))
            elif name in ("rotation", "rotations"):
                if not args or len(args) > 2 or (len(args) == 2 and args[1] != "reflections"):
                    raise ValueError
                out.append(G.Rotation(int(args[0]), reflections=len(args) == 2))
            elif name in ("permutation", "permutations"):
                if not 1 <= len(args) <= 2:
                    raise ValueError
                out.append(G.Permutation(int(args[0]), int(args[1]) if len(args) == 2 else 1))
            elif name in ("cyclic", "shift", "shifts"):
                mirror = "mirror" in args
                rest = [a for a in args if a != "mirror"]
                if len(rest) > 1:
                    raise ValueError
                shape = tuple(int(v) for v in rest[0].lower().split("x")) if rest else (row_shape or None)
                out.append(G.CyclicShift(shape, reflections=mirror))
            elif name in ("signflip", "sign"):
                if args:
                    raise ValueError
                out.append(G.SignFlip())
            else:
                raise CLIError(f"unknown group {name!r} in --group {spec!r}; use {_GROUP_HELP.split(': ', 1)[1]}")
        except CLIError:
            raise
        except (ValueError, TypeError) as e:
            detail = f" ({e})" if str(e) else ""
            raise CLIError(f"cannot read --group {spec!r}{detail}; use {_GROUP_HELP.split(': ', 1)[1]}") from None
    return out[0] if len(out) == 1 else G.Product(*out)


def _sizes(text):
    if text is None:
        return None
    try:
        return [int(float(v)) for v in text.replace(",", " ").split()]
    except ValueError:
        raise CLIError(f"--sizes must be integers separated by commas, got {text!r}") from None


def _methods(text):
    from .analysis import _KNOWN

    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    ms = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in ms if m not in _KNOWN]
    if bad:
        raise CLIError(f"unknown estimator {bad[0]!r} in --methods; choose from {', '.join(_KNOWN)}")
    return ms


def _formats(text):
    fm = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in fm if f not in ("png", "svg", "pdf")]
    if bad:
        raise CLIError(f"unknown figure format {bad[0]!r}; use png, svg or pdf")
    return fm


# --------------------------------------------------------------------------- output
class _Say:
    def __init__(self, quiet):
        self.quiet = quiet

    def __call__(self, msg):
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)


def _write_json(path, obj):
    from .analysis import _jsonable

    with open(path, "w") as f:
        json.dump(_jsonable(obj), f, indent=2)


def _write_csv(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join("" if v is None else (f"{v:.10g}" if isinstance(v, float) else str(v)) for v in r)
                    + "\n")


def _figures(say, save, *args, **kw):
    try:
        return save(*args, **kw)
    except ImportError as e:
        say(f"repgap: figures skipped: {e}")
        return []


def _write_analysis(a, out, formats, plots, say, extra=None):
    os.makedirs(out, exist_ok=True)
    rep = a.to_dict()
    if extra:
        rep.update(extra)
    c = a.curve
    rows = [[int(n), float(g), float(s), float(p)] + [float(v) for v in c.gaps_per_repeat[:, j]]
            for j, (n, g, s, p) in enumerate(zip(c.sizes, c.gaps, c.stderr, a.law.predict(c.sizes)))]
    _write_csv(os.path.join(out, "gap_curve.csv"),
               ["n_train", "gap", "stderr", "law"] + [f"gap_order{r}" for r in range(c.repeats)], rows)
    _write_csv(os.path.join(out, "dimension.csv"), ["method", "label", "dimension", "ci_low", "ci_high", "seconds"],
               [[k, v["label"], v["dimension"], v["ci"][0], v["ci"][1], v["seconds"]]
                for k, v in a.estimators.items()])
    paths = []
    t = time.perf_counter()
    if plots:
        from .plot import save_report_figures

        paths = _figures(say, save_report_figures, a, out, formats)
    rep.setdefault("timings_s", {})["figures"] = time.perf_counter() - t
    rep["files"] = sorted(os.path.basename(p) for p in paths) + ["dimension.csv", "gap_curve.csv", "report.json"]
    _write_json(os.path.join(out, "report.json"), rep)
    return rep


# --------------------------------------------------------------------------- commands
def _train_queries(text):
    """``--train-queries``: "all", "none" or a count."""
    t = str(text).strip().lower()
    if t == "all":
        return "auto"
    if t == "none":
        return False
    try:
        v = int(t)
    except ValueError:
        v = -1
    if v < 0:
        raise CLIError(f"--train-queries must be 'all', 'none' or a non-negative integer, got {text!r}")
    return v


def cmd_analyze(args, say):
    from .analysis import analyze

    t0 = time.perf_counter()
    X, shape = _load(args.data, args.key)
    T = None
    if args.test is not None:
        T, _ = _load(args.test, args.test_key)
        _same_features(X, T, args.data, args.test)
    group = parse_group(args.group, shape)
    methods = _methods(args.methods)
    sizes = _sizes(args.sizes)
    train_queries = _train_queries(getattr(args, "train_queries", "all"))
    t_load = time.perf_counter() - t0
    say(f"analysing {args.data}: {X.shape[0]} x {X.shape[1]}" + (f", held-out {args.test}" if T is not None else "")
        + (f", modulo {group!r}" if group is not None else ""))
    a = analyze(X, T, group=group, sizes=sizes, repeats=args.repeats, methods=methods, target_gap=args.target_gap,
                test_size=args.test_size, random_state=args.seed, backend=args.backend, n_jobs=args.n_jobs,
                train_queries=train_queries,
                known_dimension=getattr(args, "known_dimension", None),
                known_volume=getattr(args, "known_volume", None))
    print(a.summary())
    t1 = time.perf_counter()
    extra = {"input": {"data": os.path.abspath(args.data), "test": args.test and os.path.abspath(args.test),
                       "key": args.key}, "repgap_version": __version__}
    rep = _write_analysis(a, args.out, _formats(args.format), not args.no_plots, say, extra)
    rep["timings_s"]["load"] = t_load
    rep["timings_s"]["write"] = time.perf_counter() - t1
    rep["timings_s"]["command_total"] = time.perf_counter() - t0
    _write_json(os.path.join(args.out, "report.json"), rep)
    print(f"\nwrote {', '.join(rep['files'])} to {args.out}/")
    return a


def cmd_demo(args, say):
    from . import datasets

    d = args.dim
    say(f"repgap demo: a {d}-dimensional flat torus embedded in R^{2 * d}, {args.n} points (known answer d = {d})")
    m = datasets.flat_torus(args.n, d, random_state=args.seed)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "demo_data.npy")
    np.save(path, m.X.astype(np.float32))
    ns = argparse.Namespace(data=path, key=None, test=None, test_key=None, group=None, methods=args.methods,
                            sizes=None, repeats=args.repeats, target_gap=None, test_size=0.1, seed=args.seed,
                            backend=args.backend, n_jobs=args.n_jobs, out=args.out, format=args.format,
                            no_plots=args.no_plots, known_dimension=d, known_volume=m.volume)
    a = cmd_analyze(ns, say)
    lo, hi = a.dimension_ci
    err = 100 * (a.dimension - d) / d
    inside = "inside" if lo <= d <= hi else "OUTSIDE"
    print(f"\nestimated dimension {a.dimension:.3f} [{lo:.3f}, {hi:.3f}] vs true {d}: off by {err:+.1f}%, "
          f"truth {inside} the interval")
    return a


def cmd_id(args, say):
    from .estimators import METHODS, id_vs_scale, intrinsic_dimension

    X, shape = _load(args.data, args.key)
    group = parse_group(args.group, shape)
    if args.method not in METHODS:
        raise CLIError(f"unknown method {args.method!r}; choose from {', '.join(METHODS)}")
    params = {} if args.method in ("corr", "weibull") else {"duplicates": args.duplicates}
    if args.backend:
        params["backend"] = args.backend
    if args.n_jobs:
        params["n_jobs"] = args.n_jobs
    res = intrinsic_dimension(X, method=args.method, group=group, random_state=args.seed, **params)
    lo, hi = res.ci
    print(f"{args.method}: intrinsic dimension {res.dimension:.4f}  [{lo:.4f}, {hi:.4f}]  ({X.shape[0]} x {X.shape[1]})")
    out = res.to_dict()
    nd = int(getattr(res.estimator, "n_duplicates_", 0) or 0) + int(getattr(res.estimator, "n_train_duplicates_", 0) or 0)
    out["n_duplicates"] = nd
    if nd:
        print(f"duplicates: {nd} points repeat another ({args.duplicates})")
    if args.scale:
        if args.method not in ("gride", "mle", "corr", "gap"):
            raise CLIError("--scale works with --method gride, mle, corr or gap")
        s, dims = id_vs_scale(X, method=args.method, random_state=args.seed)
        print(f"  {'scale':>10}  {'dimension':>9}")
        for a, b in zip(s, dims):
            print(f"  {a:>10.4g}  {b:>9.3f}")
        out["scale"] = {"scales": np.asarray(s).tolist(), "dimensions": np.asarray(dims).tolist()}
    if args.json:
        _write_json(args.json, out)
    return res


def cmd_gap(args, say):
    from .gap import gap_curve, representation_gap

    R, shape = _load(args.train, args.key)
    Q, _ = _load(args.test, args.test_key)
    _same_features(R, Q, args.train, args.test)
    group = parse_group(args.group, shape)
    kw = dict(k=args.k, r=args.r, group=group, backend=args.backend, n_jobs=args.n_jobs)
    res = representation_gap(R, Q, **kw)
    print(f"Representation Gap: {res.value:.6g} +/- {res.stderr:.2g} (s.e.)  "
          f"[{res.n_train} training, {res.n_test} held-out, k = {res.k}, r = {res.r:g}]")
    if res.n_zero:
        print(f"duplicates: {res.n_zero} held-out points coincide with a training point")
    out = {"gap": res.value, "stderr": res.stderr, "n_train": res.n_train, "n_test": res.n_test,
           "n_zero": res.n_zero, "k": res.k, "r": res.r}
    if args.curve:
        from .law import fit_law

        c = gap_curve(R, Q, sizes=_sizes(args.sizes), repeats=args.repeats, random_state=args.seed, **kw)
        f = fit_law(c, random_state=args.seed)
        print(f"  {'n_train':>9}  {'gap':>11}  {'stderr':>9}")
        for n, g, s in zip(c.sizes, c.gaps, c.stderr):
            print(f"  {int(n):>9}  {g:>11.5g}  {s:>9.2g}")
        lo, hi = f.dimension_ci
        print(f"law: d = {f.dimension:.3f} [{lo:.3f}, {hi:.3f}] (no finite-size term; `repgap analyze` fits it)")
        out["curve"] = {"sizes": c.sizes.tolist(), "gaps": c.gaps.tolist(), "stderr": c.stderr.tolist()}
        out["law"] = {"dimension": f.dimension, "dimension_ci": list(f.dimension_ci)}
        if args.out and not args.no_plots:
            os.makedirs(args.out, exist_ok=True)
            from .plot import _save, plot_gap_curve

            _figures(say, lambda: _save({"gap_curve": plot_gap_curve(c, f)}, args.out, _formats(args.format), 130))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        _write_json(os.path.join(args.out, "gap.json"), out)
        np.savetxt(os.path.join(args.out, "nn_distances.csv"), res.distances, header="nn_distance", comments="")
    return res


def cmd_memorization(args, say):
    from .diffusion import memorization

    S, shape = _load(args.samples, args.key)
    R, _ = _load(args.train, args.train_key)
    _same_features(S, R, args.samples, args.train)
    T = None
    if args.test is not None:
        T, _ = _load(args.test, args.test_key)
        _same_features(T, R, args.test, args.train)
    group = parse_group(args.group, shape)
    rep = memorization(S, R, test=T, group=group, ratio=args.ratio, backend=args.backend, n_jobs=args.n_jobs)
    print(f"memorised: {rep.fraction_memorized:.2%} of {rep.n_samples} generated samples "
          f"(d1/d2 < {rep.threshold:.3g}; Gu et al. 2023)")
    print(f"  median distance to the nearest training item: {np.median(rep.distances):.4g}")
    if rep.p_value is not None:
        print(f"  held-out real data: {rep.test_fraction_memorized:.2%} below the threshold, median distance "
              f"{np.median(rep.test_distances):.4g}")
        verdict = "closer to the training set than fresh data" if rep.p_value < 0.05 else \
            "no closer to the training set than fresh data"
        print(f"  one-sided Mann-Whitney p = {rep.p_value:.3g}: generated samples sit {verdict}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        out = {"fraction_memorized": rep.fraction_memorized, "n_samples": rep.n_samples, "threshold": rep.threshold,
               "test_fraction_memorized": rep.test_fraction_memorized, "p_value": rep.p_value,
               "statistic": rep.statistic}
        _write_json(os.path.join(args.out, "memorization.json"), out)
        _write_csv(os.path.join(args.out, "memorization.csv"), ["sample", "d1", "d2", "ratio", "memorized", "nearest"],
                   [[i, float(a), float(b), float(c), int(m), int(j)] for i, (a, b, c, m, j) in
                    enumerate(zip(rep.distances, rep.second_distances, rep.ratios, rep.memorized, rep.indices))])
        if not args.no_plots:
            from .plot import _save, plot_memorization

            _figures(say, lambda: _save({"memorization": plot_memorization(rep)}, args.out, _formats(args.format), 130))
    return rep


def cmd_config(args, say):
    from ._show_config import config_info, show_config

    if args.json:
        print(json.dumps(config_info(), indent=2))
    else:
        show_config()


# --------------------------------------------------------------------------- parser
def build_parser():
    common = _Parser(add_help=False)
    g = common.add_argument_group("common options")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status messages")
    g.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    g.add_argument("--backend", default=None, help="auto (default), cython, numpy or torch")
    g.add_argument("--n-jobs", type=int, default=None, help="threads (default: all available cores)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    p = _Parser(prog="repgap", description="The Representation Gap of a data set: how much data a task needs, "
                "its intrinsic dimension, and what symmetry buys (arXiv:2605.21692).")
    p.add_argument("--version", action="version", version=f"repgap {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def figs(q):
        q.add_argument("--format", default="png", help="figure formats, comma separated: png, svg, pdf")
        q.add_argument("--no-plots", action="store_true", help="write no figures")

    a = sub.add_parser("analyze", parents=[common], help="the main job: gap curve, law, dimension, sample needs",
                       description="Gap curve, fitted law with interval, point-process estimators, dimension "
                       "across scales, the size needed for a target gap, duplicates; a table, report.json, CSVs "
                       "and figures.")
    a.add_argument("data", help=".npy, .npz, .csv, .tsv, .txt or .pt file of shape (n_samples, n_features)")
    a.add_argument("--test", help="held-out points (default: hold out --test-size of DATA)")
    a.add_argument("--key", help="array name inside an .npz or a dict .pt file")
    a.add_argument("--test-key", help="array name inside the --test file")
    a.add_argument("--group", action="append", help=_GROUP_HELP)
    a.add_argument("--sizes", help="training sizes of the curve, comma separated (default: 12 from n/30 to n)")
    a.add_argument("--repeats", type=int, default=5, help="random orders of the training set (default 5)")
    a.add_argument("--train-queries", default="all",
                   help="training points also used as queries of the gap curve: all (default: up to 200,000 when "
                        "the training set is in memory, none when it is a memory-mapped --test run; about 3x less "
                        "noise in the law's fit, at about n/m times the cost of the curve), none, or a number")
    a.add_argument("--methods", help="point-process estimators, comma separated, or 'none' "
                   "(default: calibrated,twonn,mle,gride,corr)")
    a.add_argument("--target-gap", type=float, help="gap for which to predict n (default: half the measured gap)")
    a.add_argument("--test-size", type=float, default=0.1, help="held-out fraction when --test is absent")
    a.add_argument("--out", default="repgap-report", help="output folder (default ./repgap-report)")
    figs(a)
    a.set_defaults(func=cmd_analyze)

    d = sub.add_parser("demo", parents=[common], help="analyze a built-in data set with a known answer (< 1 min)",
                       description="Runs `analyze` on a flat torus of known dimension and says how close the "
                       "estimate came.")
    d.add_argument("--n", type=int, default=22000, help="points (default 22000)")
    d.add_argument("--dim", type=int, default=5, help="intrinsic dimension of the torus (default 5)")
    d.add_argument("--repeats", type=int, default=5)
    d.add_argument("--methods", help="as for analyze")
    d.add_argument("--out", default="repgap-demo", help="output folder (default ./repgap-demo)")
    figs(d)
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("id", parents=[common], help="one intrinsic-dimension estimator")
    i.add_argument("data")
    i.add_argument("--method", default="calibrated", help="calibrated (default), gap, twonn, mle, gride, corr, weibull")
    i.add_argument("--key")
    i.add_argument("--group", action="append", help=_GROUP_HELP)
    i.add_argument("--duplicates", default="keep", choices=("raise", "drop", "keep"),
                   help="policy for repeated points (default keep: left out of distance ratios)")
    i.add_argument("--scale", action="store_true", help="also print the dimension across scales")
    i.add_argument("--json", help="write the result to this JSON file")
    i.set_defaults(func=cmd_id)

    gp = sub.add_parser("gap", parents=[common], help="the Representation Gap of TRAIN measured on TEST")
    gp.add_argument("train")
    gp.add_argument("test")
    gp.add_argument("--key", help="array name in TRAIN (.npz/.pt)")
    gp.add_argument("--test-key", help="array name in TEST (.npz/.pt)")
    gp.add_argument("--group", action="append", help=_GROUP_HELP)
    gp.add_argument("-k", type=int, default=1, help="k-th neighbour (default 1)")
    gp.add_argument("-r", type=float, default=2.0, help="power of the distance (default 2)")
    gp.add_argument("--curve", action="store_true", help="also the gap curve over sizes and the law")
    gp.add_argument("--sizes")
    gp.add_argument("--repeats", type=int, default=5)
    gp.add_argument("--out", help="write gap.json, nn_distances.csv (and a figure with --curve) here")
    figs(gp)
    gp.set_defaults(func=cmd_gap)

    m = sub.add_parser("memorization", parents=[common], help="which generated samples copy training items")
    m.add_argument("samples", help="generated samples")
    m.add_argument("train", help="the model's training set")
    m.add_argument("--test", help="held-out real data (adds the two-sample test)")
    m.add_argument("--key")
    m.add_argument("--train-key")
    m.add_argument("--test-key")
    m.add_argument("--group", action="append", help=_GROUP_HELP)
    m.add_argument("--ratio", type=float, default=1 / 3, help="memorised when d1/d2 < RATIO (default 1/3)")
    m.add_argument("--out", help="write memorization.json, .csv and a figure here")
    figs(m)
    m.set_defaults(func=cmd_memorization)

    c = sub.add_parser("config", parents=[common], help="backends, OpenMP, threads, BLAS (show_config)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config)
    return p


def main(argv=None):
    """Entry point of the ``repgap`` console script; returns the exit status."""
    from ._backends import BackendUnavailableError
    from ._config import config_context
    from .io import DataError

    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in argv or "--verbose" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        say = _Say(args.quiet)
        with config_context(progress=False if args.quiet else None):
            args.func(args, say)
        return 0
    except KeyboardInterrupt:
        print("repgap: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except (CLIError, DataError, BackendUnavailableError, ValueError, TypeError, KeyError, OSError,
            ImportError, MemoryError) as e:
        if verbose:
            import traceback

            traceback.print_exc()
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, MemoryError):
            msg = "out of memory (try a smaller --sizes/--repeats, or the numpy backend with fewer threads)"
        print(f"repgap: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
