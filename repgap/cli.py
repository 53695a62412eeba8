"""The ``repgap`` command (also ``python -m repgap``).

Subcommands: ``analyze`` (the main job), ``id``, ``gap``, ``memorization``,
``evaluate`` (every nearest-neighbour metric of generated samples), ``config``
and ``demo``. Bad input (a missing file, an unreadable format, a
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
        if message.startswith("argument "):  # "argument --repeats: ..." -> "--repeats: ..."
            message = message[len("argument "):]
        raise CLIError(f"{self.prog.split()[-1] if ' ' in self.prog else ''} {message}".strip())


# --------------------------------------------------------------------------- input
def _load(path, key=None, what="DATA"):
    from .io import as_rows, check_rows_finite, read_array

    raw = read_array(path, key=key)
    X = as_rows(raw, path)
    check_rows_finite(X, path)
    return X, tuple(raw.shape[1:])


def _load_samples_train_test(args, samples):
    """The generated samples, the training set, the held-out set (or None) and
    the group of ``memorization`` and ``evaluate``, every shape checked."""
    S, shape = _load(samples, args.key)
    R, _ = _load(args.train, args.train_key)
    _same_features(S, R, samples, args.train)
    T = None
    if args.test is not None:
        T, _ = _load(args.test, args.test_key)
        _same_features(R, T, args.train, args.test)
    return S, R, T, parse_group(args.group, shape)


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
    """``--sizes``: positive integers separated by commas or spaces (``1e4`` is allowed)."""
    if text is None:
        return None
    out = []
    for v in text.replace(",", " ").split():
        try:
            f = float(v)
        except ValueError:
            f = float("nan")
        if not (np.isfinite(f) and f == int(f) and f >= 1):
            raise CLIError(f"--sizes: {v!r} is not a positive integer; give training sizes separated by commas, "
                           "e.g. --sizes 1000,2000,4000")
        out.append(int(f))
    if not out:
        raise CLIError("--sizes is empty; give training sizes separated by commas, e.g. --sizes 1000,2000,4000")
    return out


def _methods(text):
    from .analysis import _KNOWN

    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    ms = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in ms if m not in _KNOWN]
    if bad:
        raise CLIError(f"unknown estimator {bad[0]!r} in --methods; choose from {', '.join(_KNOWN)} (or 'none')")
    return ms


_FORMATS = ("png", "svg", "pdf")


def _formats(text):
    fm = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    bad = [f for f in fm if f not in _FORMATS]
    if bad or not fm:
        raise CLIError(f"--format: unknown figure format {(bad or [text])[0]!r}; use {', '.join(_FORMATS)} "
                       "(comma separated)")
    return list(dict.fromkeys(fm))


# argparse ``type=`` functions: they run while the options are parsed, before
# any file is read, and their message names the option (argparse prefixes it).
def _number(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def _integer(low, allowed=""):
    def parse(text):
        v = _number(text)
        if v != int(v) or v < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {low}{allowed}")
        return int(v)
    return parse


def _n_jobs(text):
    v = _number(text)
    if v != int(v) or not (v >= 1 or v == -1):
        raise argparse.ArgumentTypeError(f"{text!r}: use a positive number of threads, or -1 for all cores")
    return int(v)


def _real(low=None, high=None, low_open=True, high_open=True):
    def parse(text):
        v = _number(text)
        if (low is not None and (v < low or (low_open and v == low))) or \
                (high is not None and (v > high or (high_open and v == high))):
            lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
            raise argparse.ArgumentTypeError(f"{text!r} must be {' and '.join(x for x in (lo, hi) if x)}")
        return v
    return parse


def _backend(text):
    from ._backends import check_backend_name

    try:
        check_backend_name(text)
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _check_backend_available(name):
    """An explicit ``--backend`` that is not installed fails before any work."""
    if name in (None, "auto"):
        return
    from ._backends import resolve_backend

    resolve_backend(name)


# --------------------------------------------------------------------------- output
class _Say:
    def __init__(self, quiet):
        self.quiet = quiet

    def __call__(self, msg):
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for the command line: ``repgap: warning: ...`` on one line,
    without the source line that Python's default format prints."""
    text = " ".join(str(message).split())
    print(f"repgap: warning: {text}", file=sys.stderr if file is None else file, flush=True)


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


def _figure_names(stems, formats, plots):
    return [f"{s}.{f}" for s in stems for f in formats] if plots else []


_ANALYSIS_FIGURES = ("gap_curve", "dimension_vs_scale", "nn_distances", "local_dimension")
_ANALYSIS_FILES = ("gap_curve.csv", "dimension.csv", "report.json", "local_dimension.csv")


def _plan(args, folder, names, inputs, option="--out"):
    """The outputs of a command, checked before any work (see :mod:`repgap._outputs`)."""
    from ._outputs import OutputPlan

    plan = OutputPlan(folder, names, inputs, overwrite=getattr(args, "overwrite", False), option=option)
    plan.check()
    return plan


def _check_inputs(*paths):
    """Inputs must be regular files, folders of images, or ``-``: a FIFO would block."""
    from .io import _check_input

    for p in paths:
        if p is not None:
            _check_input(p)


def _write_analysis(a, out, formats, plots, say, extra=None, timings=None):
    """Write the analysis files into ``out`` (a staging folder); returns report.json's dict."""
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
    if a.local_dimension:
        names = list(a.local_dimension)
        cols = [a.local_dimension[k] for k in names]
        _write_csv(os.path.join(out, "local_dimension.csv"), ["row"] + names,
                   [[int(r)] + [float(c[i]) for c in cols] for i, r in enumerate(a.train_rows)])
    paths = []
    t = time.perf_counter()
    if plots:
        from .plot import save_report_figures

        paths = _figures(say, save_report_figures, a, out, formats)
    rep.setdefault("timings_s", {})["figures"] = time.perf_counter() - t
    rep["timings_s"].update(timings or {})
    rep["files"] = (sorted(os.path.basename(p) for p in paths) + list(_ANALYSIS_FILES[:2])
                    + (["local_dimension.csv"] if a.local_dimension else []) + ["report.json"])
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


def _check_split(n, test_size, path):
    """``--test-size`` must leave at least one held-out and two training rows (as ``analyze``)."""
    n_test = int(round(test_size * n))
    if not 1 <= n_test < n - 1:
        raise CLIError(f"--test-size {test_size:g} holds out {n_test} of the {n} rows of {path}; at least 1 "
                       f"held-out and 2 training rows are needed: give --test FILE, or a --test-size between "
                       f"{1.5 / n:.2g} and {(n - 2.5) / n:.2g}")


def _analysis_job(args, say, X, T, shape, inputs, data_name, extra_files=(), before_write=None, **known):
    """The common part of ``analyze`` and ``demo``: check, run, write."""
    from .analysis import analyze

    t0 = time.perf_counter()
    formats = _formats(args.format)
    plots = not args.no_plots
    plan = _plan(args, args.out, list(extra_files) + list(_ANALYSIS_FILES)
                 + _figure_names(_ANALYSIS_FIGURES, formats, plots), inputs)
    group = parse_group(args.group, shape)
    methods = _methods(args.methods)
    sizes = _sizes(args.sizes)
    train_queries = _train_queries(getattr(args, "train_queries", "all"))
    _check_backend_available(args.backend)
    if T is None:
        _check_split(X.shape[0], args.test_size, data_name)
    say(f"analysing {data_name}: {X.shape[0]} x {X.shape[1]}" + (f", held-out {args.test}" if T is not None else "")
        + (f", modulo {group!r}" if group is not None else ""))
    a = analyze(X, T, group=group, sizes=sizes, repeats=args.repeats, methods=methods, target_gap=args.target_gap,
                test_size=args.test_size, random_state=args.seed, backend=args.backend, n_jobs=args.n_jobs,
                train_queries=train_queries, local_neighbors=getattr(args, "local_neighbors", 50), **known)
    print(a.summary())
    t1 = time.perf_counter()
    extra = {"input": inputs_report(inputs, args), "repgap_version": __version__}
    with plan.staging() as stage:
        if before_write is not None:
            before_write(stage)
        rep = _write_analysis(a, stage, formats, plots, say, extra)
        rep["timings_s"]["write"] = time.perf_counter() - t1
        rep["timings_s"]["command_total"] = time.perf_counter() - t0
        _write_json(os.path.join(stage, "report.json"), rep)
        files = sorted(os.listdir(stage))
    print(f"\nwrote {', '.join(files)} to {args.out}/")
    return a


def inputs_report(inputs, args):
    out = {"key": getattr(args, "key", None)}
    for what, p in inputs.items():
        out[{"DATA": "data", "--test": "test"}.get(what, what)] = p if p in (None, "-") else os.path.abspath(p)
    return out


def cmd_analyze(args, say):
    _check_inputs(args.data, args.test)
    inputs = {"DATA": args.data, "--test": args.test}
    # the plan is checked again with the results' names, but an existing
    # output or an unwritable folder must fail before the data are read
    _plan(args, args.out, list(_ANALYSIS_FILES), inputs)
    _formats(args.format), _methods(args.methods), _sizes(args.sizes), _train_queries(args.train_queries)
    _check_backend_available(args.backend)
    X, shape = _load(args.data, args.key)
    T = None
    if args.test is not None:
        T, _ = _load(args.test, args.test_key)
        _same_features(X, T, args.data, args.test)
    return _analysis_job(args, say, X, T, shape, inputs, args.data,
                         known_dimension=getattr(args, "known_dimension", None),
                         known_volume=getattr(args, "known_volume", None))


def cmd_demo(args, say):
    from . import datasets

    d = args.dim
    args.test, args.sizes, args.target_gap, args.test_size, args.group = None, None, None, 0.1, None
    args.key = None
    # every check before the data are drawn
    _formats(args.format)
    _plan(args, args.out, ["demo_data.npy"] + list(_ANALYSIS_FILES), {})
    say(f"repgap demo: a {d}-dimensional flat torus embedded in R^{2 * d}, {args.n} points (known answer d = {d})")
    m = datasets.flat_torus(args.n, d, random_state=args.seed)
    X = m.X.astype(np.float32)
    a = _analysis_job(args, say, X, None, (), {}, "the demo data", extra_files=["demo_data.npy"],
                      before_write=lambda stage: np.save(os.path.join(stage, "demo_data.npy"), X),
                      known_dimension=d, known_volume=m.volume)
    lo, hi = a.dimension_ci
    err = 100 * (a.dimension - d) / d
    inside = "inside" if lo <= d <= hi else "OUTSIDE"
    print(f"\nestimated dimension {a.dimension:.3f} [{lo:.3f}, {hi:.3f}] vs true {d}: off by {err:+.1f}%, "
          f"truth {inside} the interval")
    return a


def cmd_id(args, say):
    from .estimators import METHODS, id_vs_scale, intrinsic_dimension

    _check_inputs(args.data)
    if args.method not in METHODS:
        raise CLIError(f"unknown method {args.method!r}; choose from {', '.join(METHODS)}")
    if args.scale and args.method not in ("gride", "mle", "corr", "gap"):
        raise CLIError("--scale works with --method gride, mle, corr or gap")
    plan = None
    if args.json:
        plan = _plan(args, os.path.dirname(args.json) or ".", [os.path.basename(args.json)], {"DATA": args.data},
                     option="--json")
    _check_backend_available(args.backend)
    X, shape = _load(args.data, args.key)
    group = parse_group(args.group, shape)
    params = {} if args.method in ("corr", "weibull") else {"duplicates": args.duplicates}
    if args.backend:
        params["backend"] = args.backend
    if args.n_jobs:
        params["n_jobs"] = args.n_jobs
    res = intrinsic_dimension(X, method=args.method, group=group, random_state=args.seed, **params)
    lo, hi = res.ci
    print(f"{args.method}: intrinsic dimension {res.dimension:.4f}  [{lo:.4f}, {hi:.4f}]  ({X.shape[0]} x {X.shape[1]})")
    out = res.to_dict()
    if "model_term" in out:
        slo, shi = out["sampling_ci"]
        if out.get("rule") == "union":
            rlo, rhi = out["reference_ci"]
            print(f"  the union of the sampling interval [{slo:.4f}, {shi:.4f}] and the calibrated TwoNN interval on "
                  f"the same neighbours [{rlo:.4f}, {rhi:.4f}]; models' spread b = {out['model_term']:.4f} "
                  f"({out['model_term_name']})")
        else:
            print(f"  sampling interval [{slo:.4f}, {shi:.4f}], each half-width h widened to sqrt(h^2 + z^2 b^2) by "
                  f"the models' spread b = {out['model_term']:.4f} ({out['model_term_name']})")
        if out.get("conservative"):
            print("  conservative: the models' spread dominates the interval; where one model holds it covers more "
                  "than the nominal rate")
    nd = int(getattr(res.estimator, "n_duplicates_", 0) or 0) + int(getattr(res.estimator, "n_train_duplicates_", 0) or 0)
    out["n_duplicates"] = nd
    if nd:
        print(f"duplicates: {nd} points repeat another ({args.duplicates})")
    if args.scale:
        s, dims = id_vs_scale(X, method=args.method, random_state=args.seed)
        print(f"  {'scale':>10}  {'dimension':>9}")
        for a, b in zip(s, dims):
            print(f"  {a:>10.4g}  {b:>9.3f}")
        out["scale"] = {"scales": np.asarray(s).tolist(), "dimensions": np.asarray(dims).tolist()}
    if plan is not None:
        with plan.staging() as stage:
            _write_json(os.path.join(stage, os.path.basename(args.json)), out)
    return res


def cmd_gap(args, say):
    from .gap import gap_curve, representation_gap

    _check_inputs(args.train, args.test)
    inputs = {"TRAIN": args.train, "TEST": args.test}
    plan = None
    if args.out:
        formats = _formats(args.format)
        plan = _plan(args, args.out, ["gap.json", "nn_distances.csv"]
                     + _figure_names(("gap_curve",), formats, args.curve and not args.no_plots), inputs)
    sizes = _sizes(args.sizes)
    _check_backend_available(args.backend)
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
    c = f = None
    if args.curve:
        from .law import fit_law

        c = gap_curve(R, Q, sizes=sizes, repeats=args.repeats, random_state=args.seed, **kw)
        f = fit_law(c, random_state=args.seed)
        law = f.predict(c.sizes)
        print(f"  {'n_train':>9}  {'gap':>11}  {'stderr':>9}  {'law':>11}")
        for n, g, s, p in zip(c.sizes, c.gaps, c.stderr, law):
            print(f"  {int(n):>9}  {g:>11.5g}  {s:>9.2g}  {p:>11.5g}")
        lo, hi = f.dimension_ci
        print(f"law: d = {f.dimension:.3f} [{lo:.3f}, {hi:.3f}] (no finite-size term; `repgap analyze` fits it)")
        out["curve"] = {"sizes": c.sizes.tolist(), "gaps": c.gaps.tolist(), "stderr": c.stderr.tolist(),
                        "law": np.asarray(law).tolist()}
        out["law"] = {"dimension": f.dimension, "dimension_ci": list(f.dimension_ci)}
    if plan is not None:
        with plan.staging() as stage:
            if c is not None and not args.no_plots:
                from .plot import _save, plot_gap_curve

                _figures(say, lambda: _save({"gap_curve": plot_gap_curve(c, f)}, stage, _formats(args.format), 130))
            _write_json(os.path.join(stage, "gap.json"), out)
            np.savetxt(os.path.join(stage, "nn_distances.csv"), res.distances, header="nn_distance", comments="")
    return res


def cmd_memorization(args, say):
    from .diffusion import memorization

    _check_inputs(args.samples, args.train, args.test)
    inputs = {"SAMPLES": args.samples, "TRAIN": args.train, "--test": args.test}
    plan = None
    if args.out:
        formats = _formats(args.format)
        plan = _plan(args, args.out, ["memorization.json", "memorization.csv"]
                     + _figure_names(("memorization",), formats, not args.no_plots), inputs)
    _check_backend_available(args.backend)
    S, R, T, group = _load_samples_train_test(args, args.samples)
    rep = memorization(S, R, test=T, group=group, ratio=args.ratio, backend=args.backend, n_jobs=args.n_jobs)
    print(f"memorized: {rep.fraction_memorized:.2%} of {rep.n_samples} generated samples "
          f"(d1/d2 < {rep.threshold:.3g}; Gu et al. 2023)")
    print(f"  median distance to the nearest training item: {np.median(rep.distances):.4g}")
    if rep.p_value is not None:
        print(f"  held-out real data: {rep.test_fraction_memorized:.2%} below the threshold, median distance "
              f"{np.median(rep.test_distances):.4g}")
        verdict = "closer to the training set than fresh data" if rep.p_value < 0.05 else \
            "no closer to the training set than fresh data"
        print(f"  one-sided Mann-Whitney p = {rep.p_value:.3g}: generated samples sit {verdict}")
    if plan is not None:
        out = {"fraction_memorized": rep.fraction_memorized, "n_samples": rep.n_samples, "threshold": rep.threshold,
               "test_fraction_memorized": rep.test_fraction_memorized, "p_value": rep.p_value,
               "statistic": rep.statistic}
        with plan.staging() as stage:
            _write_json(os.path.join(stage, "memorization.json"), out)
            _write_csv(os.path.join(stage, "memorization.csv"),
                       ["sample", "d1", "d2", "ratio", "memorized", "nearest"],
                       [[i, float(a), float(b), float(c), int(m), int(j)] for i, (a, b, c, m, j) in
                        enumerate(zip(rep.distances, rep.second_distances, rep.ratios, rep.memorized, rep.indices))])
            if not args.no_plots:
                from .plot import _save, plot_memorization

                _figures(say, lambda: _save({"memorization": plot_memorization(rep)}, stage,
                                            _formats(args.format), 130))
    return rep


_EVALUATE_FILES = ("evaluation.json", "evaluation.csv", "per_sample.csv")
_EVALUATE_FIGURES = ("evaluation_metrics", "evaluation_distances")


def _interval(m, fmt="{:#.4g}"):
    if not (np.isfinite(m.low) or np.isfinite(m.high)):
        return "(none)"
    return "[" + ", ".join("-" if not np.isfinite(v) else fmt.format(v) for v in (m.low, m.high)) + "]"


def _copying_reading(ct, alpha=0.05):
    """One line on the data-copying test C_T (Meehan et al. 2020)."""
    used = int(np.sum(ct.used))
    if not np.isfinite(ct.statistic):
        return (f"data-copying test C_T: undefined (no cell of {ct.n_cells} holds --min-samples {ct.min_samples} "
                f"generated samples and a held-out point)")
    p = ct.p_value
    if p < alpha:
        verdict = "C_T << 0: data-copying, the samples sit closer to their cells' training items than fresh data"
    elif 1 - p < alpha:
        verdict = "C_T >> 0: underfitting, the samples sit farther from the training items than fresh data"
    else:
        verdict = "neither data-copying nor underfitting detected"
    return (f"data-copying test C_T = {ct.statistic:.3g} (one-sided p = {p:.3g}, {used} of {ct.n_cells} cells "
            f"used; Meehan et al. 2020): {verdict}")


def cmd_evaluate(args, say):
    from .diffusion import _ratios
    from .evaluation import evaluate

    _check_inputs(args.generated, args.train, args.test)
    inputs = {"GEN": args.generated, "TRAIN": args.train, "--test": args.test}
    plan = None
    formats = _formats(args.format)
    plots = not args.no_plots
    if args.out:
        plan = _plan(args, args.out, list(_EVALUATE_FILES) + _figure_names(_EVALUATE_FIGURES, formats, plots),
                     inputs)
    _check_backend_available(args.backend)
    G, R, T, group = _load_samples_train_test(args, args.generated)
    say(f"evaluating {args.generated}: {G.shape[0]} generated samples against {R.shape[0]} training items"
        + (f" and {T.shape[0]} held-out" if T is not None else "") + f", {G.shape[1]} features, k = {args.k}"
        + (f", modulo {group!r}" if group is not None else ""))
    ev = evaluate(G, R, test=T, k=args.k, group=group, memorization_ratio=args.ratio, n_boot=args.n_boot,
                  confidence=args.confidence, n_cells=args.cells, min_samples=args.min_samples,
                  random_state=args.seed, backend=args.backend, n_jobs=args.n_jobs)
    level = f"{100 * ev.level:g}%"
    print(f"evaluation: {ev.n_generated} generated samples, {ev.n_train} training items"
          + (f", {ev.n_test} held-out" if ev.n_test else "") + f"; k = {ev.k}"
          + (f"; modulo {ev.group}" if ev.group != "none" else ""))
    rows = [r for r in ev.table() if r[0] != "C_T"]
    width = max(len(r[0]) for r in rows)
    print(f"  {'metric':<{width}}  {'value':>10}  {level + ' interval':<24}  over")
    for name, value, _lo, _hi, over in rows:
        m = ev.metrics().get(name)
        if m is None:  # a distance quantile
            who, q = name[len("dcr_"):].rsplit("_q", 1)
            m = ev.dcr[who][float(q)]
        print(f"  {name:<{width}}  {value:>#10.4g}  {_interval(m):<24}  {over}")
    print(f"  (memorized: d1/d2 < {ev.memorization_ratio:.3g}; dcr_*_qQ: the Q-quantile of the distance to the "
          f"closest training record; gap_*: mean squared distance to it)")
    if ev.copying is not None:
        print(_copying_reading(ev.copying))
    if ev.copying_p_value is not None:
        verdict = "closer to the training set than held-out data" if ev.copying_p_value < 0.05 else \
            "no closer to the training set than held-out data"
        print(f"one-sided Mann-Whitney p = {ev.copying_p_value:.3g}: the generated samples sit {verdict}")
    if plan is None:
        return ev
    rep = ev.to_dict()
    path = lambda p: p if p in (None, "-") else os.path.abspath(p)  # noqa: E731
    rep["input"] = {"generated": path(args.generated), "train": path(args.train), "test": path(args.test),
                    "key": args.key, "train_key": args.train_key, "test_key": args.test_key}
    rep["options"] = {"k": args.k, "ratio": args.ratio, "n_boot": args.n_boot, "confidence": args.confidence,
                      "cells": args.cells, "min_samples": args.min_samples, "seed": args.seed,
                      "group": args.group, "backend": args.backend, "n_jobs": args.n_jobs}
    rep["repgap_version"] = __version__
    memorized = _ratios(np.column_stack([ev.distances, ev.second_distances])) < ev.memorization_ratio
    with plan.staging() as stage:
        paths = []
        if plots:
            from .plot import save_evaluation_figures

            paths = _figures(say, save_evaluation_figures, ev, stage, formats)
        rep["files"] = sorted([os.path.basename(p) for p in paths] + list(_EVALUATE_FILES))
        _write_json(os.path.join(stage, "evaluation.json"), rep)
        _write_csv(os.path.join(stage, "evaluation.csv"), ["metric", "value", "low", "high", "over"],
                   [[name, float(v), float(lo), float(hi), over] for name, v, lo, hi, over in ev.table()])
        _write_csv(os.path.join(stage, "per_sample.csv"),
                   ["row", "nearest", "distance", "second_distance", "in_support", "ball_count", "authentic",
                    "memorized"],
                   [[i, int(j), float(a), float(b), int(s), int(c), int(au), int(mm)] for i, (j, a, b, s, c, au, mm)
                    in enumerate(zip(ev.nearest, ev.distances, ev.second_distances, ev.in_support, ev.ball_counts,
                                     ev.authentic, memorized))])
        files = sorted(os.listdir(stage))
    print(f"\nwrote {', '.join(files)} to {args.out}/")
    return ev


def cmd_config(args, say):
    from ._show_config import config_info, show_config

    if args.json:
        print(json.dumps(config_info(), indent=2))
    else:
        show_config()


# --------------------------------------------------------------------------- parser
_DATA_HELP = (".npy, .npz, .csv, .tsv, .txt, .pt, .safetensors, .h5/.hdf5 or .parquet file of shape "
              "(n_samples, n_features), a folder of .png/.jpg images (one row each, in name order), "
              "or - (standard input: .npy or text)")
_KEY_HELP = ("array name in {0} (.npz, dict .pt, .safetensors), dataset path in HDF5 (group/name), "
             "in Parquet a list column or numeric columns separated by commas (default: its only array)")


def build_parser():
    common = _Parser(add_help=False)
    g = common.add_argument_group("common options")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars, status messages or warnings")
    g.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    g.add_argument("--backend", default=None, type=_backend,
                   help="auto, cython, numpy or torch (default: auto, or REPGAP_BACKEND)")
    g.add_argument("--n-jobs", type=_n_jobs, default=None,
                   help="threads: a positive number, or -1 for all (default: REPGAP_NUM_THREADS, else all cores)")
    g.add_argument("--seed", type=_integer(0), default=0, help="random seed (default 0)")

    writes = _Parser(add_help=False)
    writes.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (default: refuse; an input is never replaced)")

    p = _Parser(prog="repgap", description="The Representation Gap of a data set: how much data a task needs, "
                "its intrinsic dimension, and what symmetry buys (arXiv:2605.21692).")
    p.add_argument("--version", action="version", version=f"repgap {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def figs(q):
        q.add_argument("--format", default="png", help="figure formats, comma separated: png, svg, pdf (default png)")
        q.add_argument("--no-plots", action="store_true", help="write no figures (default: write them)")

    a = sub.add_parser("analyze", parents=[common, writes],
                       help="the main job: gap curve, law, dimension, sample needs",
                       description="Gap curve, fitted law with interval, point-process estimators, dimension "
                       "across scales, the size needed for a target gap, duplicates; a table, report.json, CSVs "
                       "and figures. Outputs never replace an input, nor an existing file without --overwrite.")
    a.add_argument("data", help=_DATA_HELP)
    a.add_argument("--test", help="held-out points, a file or image folder as DATA (default: hold out --test-size of DATA)")
    a.add_argument("--key", help=_KEY_HELP.format("DATA"))
    a.add_argument("--test-key", help=_KEY_HELP.format("the --test file"))
    a.add_argument("--group", action="append", help=_GROUP_HELP + " (default: none)")
    a.add_argument("--sizes", help="training sizes of the curve, comma separated (default: 12 from n/30 to n)")
    a.add_argument("--repeats", type=_integer(1), default=5, help="random orders of the training set (default 5)")
    a.add_argument("--train-queries", default="all",
                   help="training points also used as queries of the gap curve: all (default: up to 200,000 when "
                        "the training set is in memory, none when it is a memory-mapped --test run; about 3x less "
                        "noise in the law's fit, at about n/m times the cost of the curve), none, or a number")
    a.add_argument("--methods", help="point-process estimators, comma separated, or 'none' "
                   "(default: calibrated,twonn,mle,gride,corr; also weibull)")
    a.add_argument("--target-gap", type=_real(0), help="gap for which to predict n (default: half the measured gap)")
    a.add_argument("--local-neighbors", type=_integer(0), default=50,
                   help="neighbourhood size of the local (per-point) dimension written to local_dimension.csv "
                        "and local_dimension.png; 0 skips it (default 50)")
    a.add_argument("--test-size", type=_real(0, 1), default=0.1,
                   help="held-out fraction of DATA when --test is absent (default 0.1)")
    a.add_argument("--out", default="repgap-report", help="output folder (default ./repgap-report)")
    figs(a)
    a.set_defaults(func=cmd_analyze)

    d = sub.add_parser("demo", parents=[common, writes], help="analyze a built-in data set with a known answer",
                       description="Runs `analyze` on a flat torus of known dimension and says how close the "
                       "estimate came; writes the data (demo_data.npy) and the report to --out.")
    d.add_argument("--n", type=_integer(100), default=22000, help="points (default 22000)")
    d.add_argument("--dim", type=_integer(1), default=5, help="intrinsic dimension of the torus (default 5)")
    d.add_argument("--repeats", type=_integer(1), default=5, help="random orders of the training set (default 5)")
    d.add_argument("--methods", help="as for analyze (default: calibrated,twonn,mle,gride,corr)")
    d.add_argument("--out", default="repgap-demo", help="output folder (default ./repgap-demo)")
    figs(d)
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("id", parents=[common, writes], help="one intrinsic-dimension estimator",
                       description="Estimate the intrinsic dimension of DATA with one estimator, with its "
                       "interval; --scale adds the dimension across scales.")
    i.add_argument("data", help=_DATA_HELP)
    i.add_argument("--method", default="calibrated",
                   help="calibrated (default), gap, twonn, mle, gride, corr or weibull")
    i.add_argument("--key", help=_KEY_HELP.format("DATA"))
    i.add_argument("--group", action="append", help=_GROUP_HELP + " (default: none)")
    i.add_argument("--duplicates", default="keep", choices=("raise", "drop", "keep"),
                   help="policy for repeated points (default keep: left out of distance ratios)")
    i.add_argument("--scale", action="store_true", help="also print the dimension across scales (default: no)")
    i.add_argument("--json", help="write the result to this JSON file (default: none)")
    i.set_defaults(func=cmd_id)

    gp = sub.add_parser("gap", parents=[common, writes], help="the Representation Gap of TRAIN measured on TEST",
                        description="The mean k-th-neighbour distance (to the power r) from each TEST point to "
                        "TRAIN, modulo --group; --curve adds the curve over training-set sizes and the law fitted "
                        "to it.")
    gp.add_argument("train", help="the training set; " + _DATA_HELP)
    gp.add_argument("test", help="held-out points, a file or image folder as TRAIN")
    gp.add_argument("--key", help=_KEY_HELP.format("TRAIN"))
    gp.add_argument("--test-key", help=_KEY_HELP.format("TEST"))
    gp.add_argument("--group", action="append", help=_GROUP_HELP + " (default: none)")
    gp.add_argument("-k", type=_integer(1), default=1, help="k-th neighbour (default 1)")
    gp.add_argument("-r", type=_real(0), default=2.0, help="power of the distance (default 2)")
    gp.add_argument("--curve", action="store_true", help="also the gap curve over sizes and the law (default: no)")
    gp.add_argument("--sizes", help="training sizes of the curve, comma separated (default: 12 from n/30 to n)")
    gp.add_argument("--repeats", type=_integer(1), default=5,
                    help="random orders of the training set for the curve (default 5)")
    gp.add_argument("--out", help="write gap.json, nn_distances.csv (and a figure with --curve) here "
                    "(default: write nothing)")
    figs(gp)
    gp.set_defaults(func=cmd_gap)

    m = sub.add_parser("memorization", parents=[common, writes], help="which generated samples copy training items",
                       description="A generated sample is memorized when its nearest training item is much "
                       "closer than the second nearest (d1/d2 < RATIO, Gu et al. 2023); with --test, a two-sample "
                       "test of whether the samples sit closer to the training set than fresh data.")
    m.add_argument("samples", help="generated samples; " + _DATA_HELP + " (GEN_DIR TRAIN_DIR: two image folders, "
                   "as pytorch-fid reads them)")
    m.add_argument("train", help="the model's training set, a file or image folder as SAMPLES")
    m.add_argument("--test", help="held-out real data (adds the two-sample test; default: none)")
    m.add_argument("--key", help=_KEY_HELP.format("SAMPLES"))
    m.add_argument("--train-key", help=_KEY_HELP.format("TRAIN"))
    m.add_argument("--test-key", help=_KEY_HELP.format("the --test file"))
    m.add_argument("--group", action="append", help=_GROUP_HELP + " (default: none)")
    m.add_argument("--ratio", type=_real(0, 1, high_open=False), default=1 / 3,
                   help="memorized when d1/d2 < RATIO (default 1/3)")
    m.add_argument("--out", help="write memorization.json, .csv and a figure here (default: write nothing)")
    figs(m)
    m.set_defaults(func=cmd_memorization)

    e = sub.add_parser("evaluate", parents=[common, writes],
                       help="precision, recall, density, coverage, authenticity, copying of generated samples",
                       description="Every nearest-neighbour metric of generated samples GEN against the training "
                       "set TRAIN, from one set of exact searches, modulo --group: precision and recall "
                       "(Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020), authenticity "
                       "(Alaa et al. 2022), memorization d1/d2 < RATIO (Gu et al. 2023), the distance to the "
                       "closest record and the Representation Gap; with --test, the data-copying test C_T "
                       "(Meehan et al. 2020) and a Mann-Whitney test against fresh data. Intervals are "
                       "bootstraps (--n-boot) over the set named in the table's last column.")
    e.add_argument("generated", metavar="GEN", help="generated samples; " + _DATA_HELP)
    e.add_argument("train", metavar="TRAIN", help="the model's training set, a file or image folder as GEN")
    e.add_argument("--test", help="held-out real data, a file or image folder as GEN (adds C_T, the held-out "
                   "distances and a Mann-Whitney test; default: none)")
    e.add_argument("--key", help=_KEY_HELP.format("GEN"))
    e.add_argument("--train-key", help=_KEY_HELP.format("TRAIN"))
    e.add_argument("--test-key", help=_KEY_HELP.format("the --test file"))
    e.add_argument("--group", action="append", help=_GROUP_HELP + " (default: none)")
    e.add_argument("-k", "--k", dest="k", type=_integer(1), default=5,
                   help="neighbours of the k-NN balls (prdc's nearest_k; default 5)")
    e.add_argument("--ratio", type=_real(0, 1), default=1 / 3,
                   help="memorized when d1/d2 < RATIO (default 1/3)")
    e.add_argument("--n-boot", type=_integer(0), default=1000,
                   help="bootstrap replicates of the intervals, 0 for none (default 1000)")
    e.add_argument("--confidence", type=_real(0, 1), default=0.95, help="level of the intervals (default 0.95)")
    e.add_argument("--cells", type=_integer(1), default=None,
                   help="k-means cells of C_T's partition of TRAIN (default: automatic, about 50 held-out points "
                   "a cell, at most 50)")
    e.add_argument("--min-samples", type=_integer(1), default=20,
                   help="generated samples a cell needs to enter C_T (default 20)")
    e.add_argument("--out", help="write evaluation.json, evaluation.csv, per_sample.csv and figures here "
                   "(default: write nothing)")
    figs(e)
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("config", parents=[common], help="backends, OpenMP, threads, BLAS (show_config)",
                       description="The version, each backend's status, OpenMP, the SIMD level, threads and BLAS.")
    c.add_argument("--json", action="store_true", help="print the configuration as JSON (default: a table)")
    c.set_defaults(func=cmd_config)
    return p


def main(argv=None):
    """Entry point of the ``repgap`` console script; returns the exit status."""
    import warnings

    from ._backends import BackendUnavailableError
    from ._config import config_context
    from .io import DataError

    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in argv or "--verbose" in argv
    parser = build_parser()
    with warnings.catch_warnings():
        try:
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help()
                return EXIT_USAGE
            say = _Say(args.quiet)
            if args.quiet:
                warnings.simplefilter("ignore")
            else:
                warnings.showwarning = _one_line_warning
            with config_context(progress=False if args.quiet else None):
                args.func(args, say)
            return 0
        except KeyboardInterrupt:
            print("repgap: interrupted", file=sys.stderr)
            return EXIT_INTERRUPT
        except (CLIError, DataError, BackendUnavailableError, ValueError, TypeError, KeyError, OSError,
                ImportError, MemoryError, OverflowError) as e:
            if verbose:
                import traceback

                traceback.print_exc()
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if isinstance(e, MemoryError):
                msg = "out of memory (try a smaller --sizes/--repeats, or the numpy backend with fewer threads)"
            elif isinstance(e, OSError) and getattr(e, "filename", None):
                msg = f"{e.filename}: {e.strerror or msg}"
            print(f"repgap: error: {msg}", file=sys.stderr)
            return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
