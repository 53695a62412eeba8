#!/usr/bin/env python
"""The fuzz matrix of repgap's public API (issue #15, item 7).

A deterministic enumeration (no randomness outside fixed seeds) of calls to
the public functions, the estimator classes, the group constructors, the
configuration and the diffusion utilities, across the backends ("auto",
"numpy", "cython", "torch" and bogus names), with arrays of odd shapes,
dtypes and values and with parameters that are valid, borderline or plainly
invalid. The whole matrix runs twice: on this installation and, in a
subprocess with ``REPGAP_PURE_PYTHON=1``, on the pure-Python one.

Each case runs in a forked worker process with a time limit and lands in
one category:

``ok``                   returned; every float output finite (or a warning was issued)
``rejected``             an allowed error (ValueError, TypeError, NotImplementedError,
                         repgap.BackendUnavailableError) raised by repgap, with a message
                         that names the bad parameter / argument / problem
``rejected_valid``       (informational) a valid input refused with an allowed error
``wrong_answer``         returned a finite result that disagrees with a brute-force
                         float64 reference (knn, knn_checkpoints, representation_gap,
                         group distances above the Euclidean ones, denoiser outside the
                         data's box, memorised fraction outside [0, 1])
``nan_without_warning``  returned NaN or inf without any warning
``crash``                any other exception (IndexError, ZeroDivisionError, KeyError,
                         RuntimeError, MemoryError, numpy.linalg.LinAlgError, ...), an
                         allowed type raised from inside numpy/scipy/torch on a valid
                         input, or the worker process died
``hang``                 no result within the time limit
``unclear``              an allowed error for a bad parameter (or array) whose message
                         names neither the parameter (argument) nor the problem
``accepted_nonsense``    a clearly invalid parameter or array that returned a result
``skipped``              the function, class or torch is not in this installation
``harness_error``        a bug of this script (should stay 0)

Writes ``benchmarks/results/fuzz_matrix_<label>.csv`` (one row per case and
installation) and ``.md`` (the counts per category and per function, and
examples of every failure). Nothing is downloaded.

Usage::

    python benchmarks/fuzz_matrix.py --label now            # ~2 x 1100 cases
    python benchmarks/fuzz_matrix.py --label q --quick      # a quarter of them
    PYTHONPATH=/tmp/fuzz_before python benchmarks/fuzz_matrix.py --label before
    python benchmarks/fuzz_matrix.py --only 'knn|groups' --no-pure --label dev
"""
import argparse
import csv
import dataclasses
import datetime
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path

# OpenMP reads its thread limit when it is loaded: a huge n_jobs must not
# start thousands of threads on a shared machine.
os.environ.setdefault("OMP_THREAD_LIMIT", "4")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "results"
# the reference distances are the fuzz test's (tests/_reference.py)
sys.path.insert(0, str(HERE.parent.parent / "tests"))
from _reference import ref_distances  # noqa: E402

CATEGORIES = ("ok", "rejected", "rejected_valid", "wrong_answer", "nan_without_warning", "crash", "hang",
              "unclear", "accepted_nonsense", "skipped", "harness_error")
FAILURES = ("wrong_answer", "nan_without_warning", "crash", "hang", "unclear", "accepted_nonsense",
            "harness_error")
BACKENDS = ("auto", "numpy", "cython", "torch")
NAN, INF = float("nan"), float("inf")


# ---------------------------------------------------------------------------
# the pieces of a case
# ---------------------------------------------------------------------------
class Missing(Exception):
    """The function, class or optional dependency is not in this installation."""


class Timeout(BaseException):
    """Raised by SIGALRM inside a case (a BaseException: ``except Exception`` in the library must not eat it)."""


def api(path):
    """``api("estimators.TwoNN")``: the object, or Missing."""
    import importlib

    import repgap

    obj = repgap
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            except Exception:
                raise Missing(f"repgap.{path} does not exist here") from None
    return obj


def torch_mod():
    try:
        import torch
    except ImportError:
        raise Missing("torch is not installed") from None
    return torch


class Dep:
    """A parameter value built when the case runs (from the data sizes, or an object such as a group)."""

    def __init__(self, label, fn):
        self.label, self.fn = label, fn

    def __repr__(self):
        return self.label


class Kw:
    """Several keyword arguments as one value (for pairs that must change together)."""

    def __init__(self, label, **kw):
        self.label, self.kw = label, kw

    def __repr__(self):
        return self.label


def resolve(v, ctx):
    if isinstance(v, Dep):
        return v.fn(ctx)
    return v


@dataclasses.dataclass
class P:
    """A parameter: values that are valid, borderline (any clean outcome is fine) and clearly invalid."""

    name: str
    valid: list = dataclasses.field(default_factory=list)
    edge: list = dataclasses.field(default_factory=list)
    bad: list = dataclasses.field(default_factory=list)
    names: tuple = ()  # words a message about this parameter may use instead of its name


@dataclasses.dataclass
class Case:
    id: int
    func: str
    backend: str
    kind: str  # valid, edge, bad_param, bad_array
    target: str  # the parameter or argument varied
    desc: str
    thunk: object  # thunk(rng) -> (result, verifier or None)
    names: tuple = ()  # for bad_param / bad_array: the words a clear message contains
    seed: int = 0


# ---------------------------------------------------------------------------
# arrays
# ---------------------------------------------------------------------------
VALID_KINDS = ("f64", "f32")
EDGE_KINDS = ("f16", "int", "uint8", "bool", "object", "list", "fortran", "noncontig", "readonly", "one_row",
              "two_rows", "dup_one", "dup_half", "const_col", "all_same", "zeros", "offset1e6", "offset1e6_f32",
              "big1e300", "big1e308", "tiny1e-300", "subnormal", "f32_big", "f32_tiny", "f16_big", "int_big",
              "mixed_scale", "d1", "high_d", "torch_f32", "torch_f64", "torch_bf16", "torch_f16", "torch_int",
              "torch_noncontig", "torch_grad")
BAD_KINDS = ("empty_rows", "empty_cols", "one_d", "three_d", "scalar", "none", "complex", "str", "str_num",
             "nan", "all_nan", "inf", "ninf", "ragged", "dict", "mismatch_d", "torch_complex", "torch_nan",
             "torch_1d", "torch_empty", "torch_inf")
# the kinds that set the number of features of every array of the case
KIND_DIMS = {"d1": 1, "high_d": 256}
# words that name the problem of a bad array (case-insensitive)
PROBLEM_WORDS = {
    "empty_rows": ("empty", "0 samples", "no samples", "0 rows", "no rows", "shape"),
    "empty_cols": ("0 features", "no features", "empty", "shape"),
    "one_d": ("2-d", "1-d", "shape", "ndim", "dimensional", "reshape"),
    "three_d": ("2-d", "3-d", "shape", "ndim", "dimensional"),
    "scalar": ("2-d", "0-d", "shape", "ndim", "scalar", "dimensional"),
    "none": ("none",),
    "complex": ("complex", "dtype", "real"),
    "str": ("dtype", "str", "real", "numeric", "<u"),
    "str_num": ("dtype", "str", "real", "numeric", "<u"),
    "nan": ("nan", "finite"),
    "all_nan": ("nan", "finite"),
    "inf": ("inf", "finite"),
    "ninf": ("inf", "finite"),
    "ragged": ("ragged", "inhomogeneous", "shape", "sequence", "length"),
    "dict": ("dict", "array-like", "type"),
    "mismatch_d": ("features", "columns", "dimension", "shape", "match"),
    "torch_complex": ("complex", "dtype", "real"),
    "torch_nan": ("nan", "finite"),
    "torch_inf": ("inf", "finite"),
    "torch_1d": ("2-d", "1-d", "shape", "ndim", "dimensional", "reshape"),
    "torch_empty": ("empty", "0 samples", "no samples", "0 rows", "shape"),
}


def make_array(kind, n, d, rng):
    """The array of a kind: n rows of d features (kinds may change n or d)."""
    base = lambda n=n, d=d: rng.random((n, d))  # noqa: E731
    if kind == "f64":
        return base()
    if kind == "f32":
        return base().astype(np.float32)
    if kind == "f16":
        return base().astype(np.float16)
    if kind == "int":
        return rng.integers(-1000, 1000, (n, d))
    if kind == "uint8":
        return rng.integers(0, 256, (n, d), dtype=np.uint8)
    if kind == "bool":
        return rng.random((n, d)) < 0.5
    if kind == "object":
        return base().astype(object)
    if kind == "list":
        return base().tolist()
    if kind == "fortran":
        return np.asfortranarray(base())
    if kind == "noncontig":
        return rng.random((n, 2 * d))[:, ::2]
    if kind == "readonly":
        a = base()
        a.flags.writeable = False
        return a
    if kind == "one_row":
        return base(1)
    if kind == "two_rows":
        return base(2)
    if kind == "dup_one":
        a = base()
        if n > 1:
            a[1] = a[0]
        return a
    if kind == "dup_half":
        a = base()
        h = n // 2
        a[h: 2 * h] = a[:h]
        return a
    if kind == "const_col":
        a = base()
        a[:, 0] = 3.0
        return a
    if kind == "all_same":
        return np.full((n, d), 0.25)
    if kind == "zeros":
        return np.zeros((n, d))
    if kind == "offset1e6":
        return base() + 1e6
    if kind == "offset1e6_f32":
        return (base() + 1e6).astype(np.float32)
    if kind == "big1e300":
        return base() * 1e300
    if kind == "big1e308":
        return base() * 1.7e308
    if kind == "tiny1e-300":
        return base() * 1e-300
    if kind == "subnormal":
        return base() * 1e-310
    if kind == "f32_big":
        return (base() * 1e30).astype(np.float32)
    if kind == "f32_tiny":
        return (base() * 1e-30).astype(np.float32)
    if kind == "f16_big":
        return (base() * 6e4).astype(np.float16)
    if kind == "int_big":
        return rng.integers(-2**62, 2**62, (n, d))
    if kind == "mixed_scale":
        a = base()
        a[:, 0] *= 1e12
        return a
    if kind in KIND_DIMS:
        return base(n, KIND_DIMS[kind])
    if kind.startswith("torch_"):
        torch = torch_mod()
        if kind == "torch_f32":
            return torch.tensor(base(), dtype=torch.float32)
        if kind == "torch_f64":
            return torch.tensor(base(), dtype=torch.float64)
        if kind == "torch_bf16":
            return torch.tensor(base(), dtype=torch.bfloat16)
        if kind == "torch_f16":
            return torch.tensor(base(), dtype=torch.float16)
        if kind == "torch_int":
            return torch.tensor(rng.integers(-1000, 1000, (n, d)))
        if kind == "torch_noncontig":
            return torch.tensor(rng.random((n, 2 * d)))[:, ::2]
        if kind == "torch_grad":
            return torch.tensor(base(), dtype=torch.float32, requires_grad=True)
        if kind == "torch_complex":
            return torch.tensor(base() + 1j * base())
        if kind == "torch_nan":
            a = base()
            a[min(3, n - 1), d - 1] = np.nan
            return torch.tensor(a)
        if kind == "torch_inf":
            a = base()
            a[0, 0] = np.inf
            return torch.tensor(a)
        if kind == "torch_1d":
            return torch.tensor(rng.random(n))
        if kind == "torch_empty":
            return torch.empty((0, d))
    if kind == "empty_rows":
        return np.empty((0, d))
    if kind == "empty_cols":
        return np.empty((n, 0))
    if kind == "one_d":
        return rng.random(n)
    if kind == "three_d":
        return rng.random((n, d, 2))
    if kind == "scalar":
        return 3.0
    if kind == "none":
        return None
    if kind == "complex":
        return base() + 1j * base()
    if kind == "str":
        return np.array([["a"] * d] * n)
    if kind == "str_num":
        return base().astype(str)
    if kind == "nan":
        a = base()
        a[min(3, n - 1), d - 1] = np.nan
        return a
    if kind == "all_nan":
        return np.full((n, d), np.nan)
    if kind == "inf":
        a = base()
        a[0, 0] = np.inf
        return a
    if kind == "ninf":
        a = base()
        a[n - 1, 0] = -np.inf
        return a
    if kind == "ragged":
        return [list(r) for r in base()[:-1]] + [[0.5] * (d + 1)]
    if kind == "dict":
        return {"a": 1.0}
    if kind == "mismatch_d":
        return base(n, d + 1)
    raise AssertionError(f"unknown array kind {kind!r}")


def as_f64(a):
    """The float64 values the library sees for an array-like (None when not an array)."""
    if a is None:
        return None
    if hasattr(a, "detach") and type(a).__module__.startswith("torch"):
        return a.detach().double().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def host(x):
    if hasattr(x, "detach") and type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------------------
# verifiers: the result against a brute-force reference
# ---------------------------------------------------------------------------
def _close(a, b, rtol=1e-10):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rtol * np.abs(b) + 1e-320))


def verify_knn_arrays(Qraw, Rraw, k, res, prefix_order=None, checkpoints=None):
    Q, R = as_f64(Qraw), as_f64(Rraw)
    if Q.size * R.shape[0] > 4_000_000:
        return None
    d, i = host(res[0]), host(res[1]).astype(np.int64)
    full = ref_distances(Q, R)
    if not np.all(np.isfinite(full)):
        return None
    if checkpoints is None:
        sets = [(None, d, i)]
    else:
        sets = [(c, d[j], i[j]) for j, c in enumerate(checkpoints)]
    for c, dj, ij in sets:
        if dj.shape != (Q.shape[0], k) or ij.shape != (Q.shape[0], k):
            return f"shape {dj.shape}/{ij.shape}, expected {(Q.shape[0], k)}"
        if c is None:
            sub, allowed = full, np.arange(R.shape[0])
        else:
            allowed = (np.arange(R.shape[0]) if prefix_order is None else np.asarray(prefix_order))[:c]
            sub = full[:, allowed]
        want = np.sort(sub, axis=1)[:, :k]
        if not _close(dj, want):
            bad = np.argmax(np.abs(dj - want).max(axis=1))
            return f"distances of query {bad}{'' if c is None else f' at prefix {c}'}: {dj[bad]} != {want[bad]}"
        if ij.min() < 0 or ij.max() >= R.shape[0] or not np.isin(ij, allowed).all():
            return "an index outside the reference set (or the prefix)"
        if not _close(np.take_along_axis(full, ij, 1), dj):
            return "indices inconsistent with the distances"
    return None


def verify_gap(train, test, k, r, res):
    Q, R = as_f64(test), as_f64(train)
    if Q.size * R.shape[0] > 4_000_000:
        return None
    full = ref_distances(Q, R)
    dk = np.sort(full, axis=1)[:, k - 1]
    with np.errstate(all="ignore"):
        want = float(np.mean(dk ** r))
    if not np.isfinite(want):
        return None
    got = float(res.value)
    if not _close(got, want, 1e-8):
        return f"value {got!r} != reference {want!r}"
    return None


# ---------------------------------------------------------------------------
# finding non-finite floats in a result
#
# Fields whose docstring promises NaN or inf as a marker (not a number):
# repgap.regime.Regime, "upper_dimension, upper_ci: NaN when the regime is
# decided by step 1", "local_dimensions, local_cis: +inf where the curve is
# flat or rises".
# CalibratedTwoNN.reference_se_: NaN where the reference is simulated, not
# the shipped table; LawFit.dimension_ci: +inf upper end where the data do not
# bound d from above (fit_law's Notes).
DOCUMENTED_NONFINITE = {("CalibratedTwoNN", "reference_se_"), ("LawFit", "dimension_ci"), ("Regime", "upper_dimension"), ("Regime", "upper_ci"), ("Regime", "local_dimensions"),
                        ("Regime", "local_cis")}
# ---------------------------------------------------------------------------
def find_nonfinite(obj, path="result", depth=0, seen=None):
    """The path of the first NaN/inf float in a result, or None."""
    if seen is None:
        seen = set()
    if depth > 5 or id(obj) in seen:
        return None
    if obj is None or isinstance(obj, (bool, int, str, bytes, np.bool_, np.integer, type)):
        return None
    if isinstance(obj, (float, np.floating, complex, np.complexfloating)):
        return None if np.isfinite(obj) else f"{path}={obj!r}"
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc":
            if obj.size and not np.all(np.isfinite(obj)):
                bad = np.flatnonzero(~np.isfinite(obj.ravel()))
                return f"{path}[{bad.size} of {obj.size} non-finite, e.g. {obj.ravel()[bad[0]]!r}]"
            return None
        if obj.dtype == object:
            for j, v in enumerate(obj.ravel()[:200]):
                p = find_nonfinite(v, f"{path}[{j}]", depth + 1, seen)
                if p:
                    return p
        return None
    mod = type(obj).__module__ or ""
    if mod.startswith("torch"):
        if hasattr(obj, "is_floating_point") and (obj.is_floating_point() or obj.is_complex()):
            t = obj.detach()
            if t.numel() and not bool(t.isfinite().all()):
                return f"{path}[non-finite tensor values]"
        return None
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k, v in list(obj.items())[:200]:
            p = find_nonfinite(v, f"{path}[{k!r}]", depth + 1, seen)
            if p:
                return p
        return None
    if isinstance(obj, (list, tuple)):
        names = getattr(obj, "_fields", None)
        for j, v in enumerate(list(obj)[:1000]):
            p = find_nonfinite(v, f"{path}.{names[j]}" if names else f"{path}[{j}]", depth + 1, seen)
            if p:
                return p
        return None
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if (type(obj).__name__, f.name) in DOCUMENTED_NONFINITE:
                continue
            p = find_nonfinite(getattr(obj, f.name, None), f"{path}.{f.name}", depth + 1, seen)
            if p:
                return p
        return None
    if mod.startswith("repgap"):
        if mod.startswith("repgap.groups"):
            return None
        attrs = vars(obj) if hasattr(obj, "__dict__") else {}
        fitted = [a for a in attrs if a.endswith("_") and not a.startswith("_")]
        keys = fitted if fitted else [a for a in attrs if not a.startswith("_")]
        for a in keys:
            if (type(obj).__name__, a) in DOCUMENTED_NONFINITE:
                continue
            p = find_nonfinite(attrs[a], f"{path}.{a}", depth + 1, seen)
            if p:
                return p
    return None


# ---------------------------------------------------------------------------
# running one case
# ---------------------------------------------------------------------------
IGNORED_WARNINGS = ("PurePythonWarning", "DeprecationWarning", "PendingDeprecationWarning", "ResourceWarning",
                    "ImportWarning")


def _allowed_types():
    allowed = [ValueError, TypeError, NotImplementedError]
    try:
        allowed.append(api("BackendUnavailableError"))
    except Missing:
        pass
    return tuple(allowed)


def _innermost_file(tb):
    f = None
    while tb is not None:
        f = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return f or ""


def _repgap_dir():
    import repgap

    return str(Path(repgap.__file__).resolve().parent)


def _names_in(message, names):
    # a plural name is also named by its singular ("checkpoint sizes" for checkpoints, "sigma" for sigmas)
    names = list(names) + [w[:-1] for w in names if len(w) > 5 and w.endswith("s")]
    for w in names:
        if len(w) <= 2 or w[0].isupper() and len(w) <= 3:
            # short names (k, p, X, n1, ...): as a whole word, case-sensitive
            if re.search(rf"(?<![A-Za-z0-9_]){re.escape(w)}(?![A-Za-z0-9_])", message):
                return True
        elif w.lower() in message.lower():
            return True
    return False


def classify_exception(case, exc, tb):
    import numpy.linalg

    allowed = _allowed_types()
    name = type(exc).__name__
    msg = str(exc)
    try:
        axis_error = np.exceptions.AxisError
    except AttributeError:
        axis_error = np.AxisError
    bad_types = (numpy.linalg.LinAlgError, axis_error)
    if isinstance(exc, bad_types) or not isinstance(exc, allowed):
        return "crash", name, msg
    unavailable = allowed[-1] if len(allowed) > 3 else None
    if unavailable is not None and isinstance(exc, unavailable) and "backend" in msg:
        return "rejected", name, msg  # an explicit backend this installation lacks: the documented error
    origin = _innermost_file(tb)
    ours = origin.startswith(_repgap_dir()) or origin == str(HERE) or origin.startswith("<")
    if case.kind in ("bad_param", "bad_array"):
        return ("rejected" if _names_in(msg, case.names) else "unclear"), name, msg
    if not ours:
        where = origin.split("site-packages/")[-1]
        return "crash", name, f"{msg} [raised inside {where}]"
    return ("rejected_valid" if case.kind == "valid" else "rejected"), name, msg


def run_case(case, timeout):
    rng = np.random.default_rng(case.seed)
    t0 = time.perf_counter()
    result = verifier = exc = tb = None
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        signal.alarm(max(1, int(timeout)))
        try:
            result, verifier = case.thunk(rng)
        except Missing as e:
            signal.alarm(0)
            return dict(category="skipped", error="Missing", message=str(e), seconds=time.perf_counter() - t0)
        except Timeout:
            signal.alarm(0)
            return dict(category="hang", error="Timeout", message=f"no result within {timeout} s",
                        seconds=time.perf_counter() - t0)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: B902 - everything else is a finding
            exc, tb = e, e.__traceback__
        finally:
            signal.alarm(0)
    seconds = time.perf_counter() - t0
    warned = [w for w in wlist if w.category.__name__ not in IGNORED_WARNINGS]
    wtext = "; ".join(f"{w.category.__name__}: {str(w.message)[:160]}" for w in warned[:3])
    row = dict(seconds=seconds, warnings=wtext)
    if exc is not None:
        cat, ename, msg = classify_exception(case, exc, tb)
        if cat == "crash":
            fr = traceback.extract_tb(tb)[-1] if tb is not None else None
            if fr is not None:
                msg = f"{msg} (at {Path(fr.filename).name}:{fr.lineno} in {fr.name})"
        row.update(category=cat, error=ename, message=msg)
        return row
    if case.kind in ("bad_param", "bad_array"):
        row.update(category="accepted_nonsense", error="", message=f"returned {_short(result)}")
        return row
    try:
        bad = find_nonfinite(result)
    except Exception as e:  # a bug of the walker
        row.update(category="harness_error", error=type(e).__name__, message=f"find_nonfinite: {e}")
        return row
    if bad is not None:
        if not warned:
            row.update(category="nan_without_warning", error="", message=bad)
        else:
            row.update(category="ok", error="", message=f"non-finite with a warning: {bad}")
        return row
    if verifier is not None:
        try:
            wrong = verifier(result)
        except Exception as e:
            row.update(category="harness_error", error=type(e).__name__,
                       message=f"verifier: {e} {traceback.format_exc(limit=-2)}"[:600])
            return row
        if wrong:
            row.update(category="wrong_answer", error="", message=wrong)
            return row
    row.update(category="ok", error="", message="")
    return row


def _short(obj):
    try:
        s = repr(obj)
    except Exception:
        s = f"<{type(obj).__name__}>"
    s = " ".join(s.split())
    return s if len(s) <= 160 else s[:157] + "..."


# ---------------------------------------------------------------------------
# the worker pool (forked processes, one case at a time, killed on a hang)
# ---------------------------------------------------------------------------
_CASES = []


def _on_alarm(signum, frame):
    raise Timeout()


def _worker(conn, timeout, mem_gb):
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import resource

        with open("/proc/self/status") as f:
            vm = int(re.search(r"VmSize:\s+(\d+)", f.read()).group(1)) * 1024
        lim = vm + int(mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    except Exception:
        pass
    while True:
        try:
            idx = conn.recv()
        except EOFError:
            return
        if idx is None:
            return
        try:
            row = run_case(_CASES[idx], timeout)
        except BaseException as e:  # noqa: B902
            row = dict(category="harness_error", error=type(e).__name__, message=f"run_case: {e}"[:600], seconds=0)
        for key in ("message", "warnings"):
            row[key] = " ".join(str(row.get(key, "")).split())[:400]
        try:
            conn.send((idx, row))
        except Exception as e:
            conn.send((idx, dict(category="harness_error", error=type(e).__name__,
                                 message=f"unpicklable row: {e}", seconds=0)))


def run_all(cases, jobs, timeout, mem_gb, progress=True):
    import multiprocessing as mp
    from multiprocessing.connection import wait

    global _CASES
    _CASES = cases
    ctx = mp.get_context("fork")
    hard = timeout + 15
    results = {}

    def start():
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, timeout, mem_gb), daemon=True)
        p.start()
        child.close()
        return [p, parent, None, 0.0]  # process, pipe, case index, start time

    todo = list(range(len(cases)))[::-1]
    workers = [start() for _ in range(max(1, jobs))]
    t_start, done, shown = time.time(), 0, 0
    while todo or any(w[2] is not None for w in workers):
        for w in workers:
            if w[2] is None and todo:
                w[2], w[3] = todo.pop(), time.time()
                w[1].send(w[2])
        busy = [w for w in workers if w[2] is not None]
        ready = wait([w[1] for w in busy], timeout=0.5)
        for w in busy:
            if w[1] in ready:
                try:
                    idx, row = w[1].recv()
                    results[idx] = row
                except (EOFError, OSError):
                    w[0].join(5)
                    code = w[0].exitcode
                    sig = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    results[w[2]] = dict(category="crash", error="WorkerDied",
                                         message=f"the worker process died ({sig})", seconds=time.time() - w[3])
                    w[:] = start()
                    done += 1
                    continue
                w[2] = None
                done += 1
            elif time.time() - w[3] > hard:
                w[0].kill()
                w[0].join(5)
                results[w[2]] = dict(category="hang", error="Timeout",
                                     message=f"no result within {hard} s (worker killed)", seconds=hard)
                w[:] = start()
                done += 1
        if progress and done >= shown + 100:
            shown = done
            el = time.time() - t_start
            print(f"  {done}/{len(cases)} cases, {el:.0f} s", file=sys.stderr, flush=True)
    for w in workers:
        try:
            w[1].send(None)
        except Exception:
            pass
        w[0].join(5)
        if w[0].is_alive():
            w[0].kill()
    return [results[i] for i in range(len(cases))]


# ---------------------------------------------------------------------------
# the enumeration
# ---------------------------------------------------------------------------
class Builder:
    def __init__(self, seed=20260515):
        self.cases = []
        self.rnd = random.Random(seed)
        self.seed = seed

    def add(self, func, backend, kind, target, desc, thunk, names=()):
        self.cases.append(Case(len(self.cases), func, backend, kind, target, desc, thunk, tuple(names),
                               self.seed + 7919 * len(self.cases)))


def _desc(kinds, kw):
    parts = [f"{a}={k}" for a, k in kinds.items()]
    parts += [f"{k}={v!r}" for k, v in kw.items()]
    return ", ".join(parts)


def _thunk(call, data, kinds, d, kw, verify):
    """The case's function of the seeded generator: builds the arrays and the values, then calls."""

    def thunk(rng):
        dd = d
        for a, k in kinds.items():
            if k in KIND_DIMS:
                dd = KIND_DIMS[k]
        arrays = {}
        for a, (default, n) in data.items():
            k = kinds.get(a, default)
            arrays[a] = None if k == "absent" else make_array(k, n, dd, rng)
        first = next(iter(data.values()))
        ctx = {"n": first[1], "d": dd, "arrays": arrays, "data": data}
        ctx.update({f"n_{a}": n for a, (_, n) in data.items()})
        real = {}
        for key, v in kw.items():
            v = resolve(v, ctx)
            if isinstance(v, Kw):
                real.update({kk: resolve(vv, ctx) for kk, vv in v.kw.items()})
            else:
                real[key] = v
        ctx["kw"] = real
        res = call(arrays, real)
        ver = None if verify is None else (lambda r: verify(arrays, real, r))
        return res, ver

    return thunk


def gen_function(B, func, call, data, params, *, backend=True, verify=None, fixed=None, d=3,
                 edge_kinds=EDGE_KINDS, bad_kinds=BAD_KINDS, all_backends=(), n_combos=8, bad_array_names=None,
                 valid_kinds=VALID_KINDS, optional=(), reduced=()):
    """The cases of one function: baselines on every backend, each array kind on each data argument, each
    bad and borderline value of each parameter, bogus backends, and random valid/borderline combinations."""
    fixed = dict(fixed or {})
    cyc = [0]

    def next_backend():
        cyc[0] += 1
        return BACKENDS[cyc[0] % len(BACKENDS)]

    def add(kind, target, kinds, kw, names=(), be=None):
        kw = {**fixed, **kw}
        if backend:
            be = be if be is not None else next_backend()
            kw.setdefault("backend", be)
            be_label = str(kw["backend"])
        else:
            be_label = "-"
        desc = _desc(kinds, {k: v for k, v in kw.items() if k != "backend"})
        B.add(func, be_label, kind, target, desc, _thunk(call, data, kinds, d, kw, verify), names)

    first = next(iter(data))
    # baselines
    for be in (BACKENDS if backend else ("-",)):
        for vk in valid_kinds:
            add("valid", "baseline", {first: vk}, {}, be=be if backend else None)
    # array kinds on each data argument
    for a in data:
        for k in (edge_kinds[::3] if a in reduced else edge_kinds):
            if a in all_backends and backend:
                for be in BACKENDS:
                    add("edge", a, {a: k}, {}, be=be)
            else:
                add("edge", a, {a: k}, {})
        for k in (bad_kinds[::2] if a in reduced else bad_kinds):
            if k == "mismatch_d" and len(data) < 2 or k == "none" and a in optional:
                continue
            names = (a,) + tuple((bad_array_names or {}).get(a, ())) + PROBLEM_WORDS.get(k, ())
            add("bad_array", a, {a: k}, {}, names=names)
    # parameters
    for p in params:
        names = (p.name,) + tuple(p.names)
        for v in p.valid:
            add("valid", p.name, {}, {p.name: v})
        for v in p.edge:
            add("edge", p.name, {}, {p.name: v})
        for v in p.bad:
            add("bad_param", p.name, {}, {p.name: v}, names=names)
    if backend:
        for v in ("bogus", "", 3, "NUMPY", ["numpy"]):
            kind = "edge" if v == "NUMPY" else "bad_param"
            add(kind, "backend", {}, {"backend": v}, names=("backend",), be=v)
    # random combinations of valid and borderline values on valid or borderline arrays
    pool = [(p.name, v) for p in params for v in p.valid + p.edge]
    for _ in range(n_combos):
        kw = {}
        if pool:
            for name, v in B.rnd.sample(pool, min(len(pool), B.rnd.randint(1, 3))):
                kw[name] = v
        kinds = {}
        if B.rnd.random() < 0.6:
            a = B.rnd.choice(list(data))
            kinds[a] = B.rnd.choice(edge_kinds + valid_kinds)
        add("edge", "combo", kinds, kw, be=B.rnd.choice(BACKENDS) if backend else None)


# --- common parameter tables ------------------------------------------------
def G(label, path, *args, **kw):
    """A group, built when the case runs."""
    return Dep(label, lambda ctx: api(f"groups.{path}")(*args, **kw))


GROUP_CLASS = Dep("Rotation (the class)", lambda ctx: api("groups.Rotation"))


def search_params(k_max_valid=3):
    return [
        P("n_jobs", valid=[1, -1, 2], edge=[64, np.int64(2), 10**9], bad=[0, -2, 2.5, "2", True, NAN, -10**9]),
        P("algorithm", valid=["auto", "brute"], edge=["kd_tree", "direct", "fused", "gemm", None, "KD_TREE"],
          bad=["bogus", "", 3]),
        P("progress", valid=[False, True, None], edge=[0, 1], bad=["yes", "no", 2.5]),
        P("block_size", valid=[None, 7], edge=[1, 10**12, np.int64(5), 5.0], bad=[0, -1, 2.5, "10", True, NAN]),
        P("max_memory", valid=[None, 1 << 20], edge=[1, 2.5, 100, 10**15], bad=[0, -1, "1MB", True, NAN]),
    ]


def group_param(d=3, finite_only=False):
    cont = [G("Rotation(3)", "Rotation", 3)] if d % 3 == 0 else [G("Rotation(2)", "Rotation", 2)]
    valid = [None, G("SignFlip()", "SignFlip"), G("CyclicShift()", "CyclicShift"), G("Identity()", "Identity")]
    edge = [G("Permutation(3)", "Permutation", 3)] if d == 3 else []
    bad = ["rotation", 3, GROUP_CLASS, G("Translation(4) on D=3", "Translation", 4)]
    names = ("Translation", "Rotation", "multiple", "length", "group")
    if finite_only:
        bad += cont
        names += ("finite", "continuous")
    else:
        edge += cont + [G("Translation(3)", "Translation", 3)]
    return P("group", valid=valid, edge=edge, bad=bad, names=names)


def random_state_param():
    return P("random_state", valid=[None, 0, 12345],
             edge=[2**32 - 1, 2**63, Dep("default_rng(1)", lambda c: np.random.default_rng(1)),
                   Dep("RandomState(1)", lambda c: np.random.RandomState(1)), np.int64(3)],
             bad=["abc", -1, 2.5, NAN, True, [1, -1]])


def confidence_param():
    return P("confidence", valid=[0.9, 0.5], edge=[0.999999, 1e-6], bad=[0, 1, 1.5, -0.1, NAN, "0.9", True, None])


N = Dep("n", lambda c: c["n"])
N1 = Dep("n+1", lambda c: c["n"] + 1)
N_REF = Dep("n_reference", lambda c: c["n_reference"])
N_REF1 = Dep("n_reference+1", lambda c: c["n_reference"] + 1)


# --- the functions -----------------------------------------------------------
def gen_knn(B):
    def call(A, kw):
        return api("knn")(A["queries"], A["reference"], **kw)

    def verify(A, kw, res):
        if kw.get("group") is not None:
            return None
        return verify_knn_arrays(A["queries"], A["reference"], kw.get("k", 1), res)

    params = [P("k", valid=[1, 3, np.int64(2)], edge=[N_REF, 2.0, np.int32(1)],
                bad=[0, -1, 2.5, "1", True, None, NAN, INF, 10**12, N_REF1, 2**70])] + search_params() + \
        [group_param()]
    gen_function(B, "knn", call, {"queries": ("f64", 20), "reference": ("f64", 80)}, params, verify=verify,
                 all_backends=("queries",), n_combos=30)


def gen_knn_checkpoints(B):
    def call(A, kw):
        kw = dict(kw)
        cps = kw.pop("checkpoints", [10, 40, 80])
        return api("knn_checkpoints")(A["queries"], A["reference"], cps, **kw)

    def verify(A, kw, res):
        if kw.get("group") is not None:
            return None
        cps = [int(c) for c in np.asarray(list(kw.get("checkpoints", [10, 40, 80])))]
        return verify_knn_arrays(A["queries"], A["reference"], kw.get("k", 1), res, prefix_order=kw.get("order"),
                                 checkpoints=cps)

    rev = Dep("reversed order", lambda c: np.arange(c["n_reference"])[::-1].copy())
    perm = Dep("a permutation", lambda c: np.random.default_rng(5).permutation(c["n_reference"]))
    params = [
        P("checkpoints", valid=[[80], (10, 20, 80), np.array([5, 50, 80])],
          edge=[[1, 80], [10.0, 80.0], range(10, 81, 10), np.array([20, 80], dtype=np.int32)],
          bad=[[], [0, 10], [-1, 10], [2.5, 80], [40, 10], [10, 10, 80], [81], [10**12], "abc", None,
               [True, 80], [[10, 20]], [NAN, 80], 80]),
        P("k", valid=[1, 3], edge=[10], bad=[0, -1, 2.5, "1", True, None, 11, 10**9],
          names=("checkpoint",)),
        P("order", valid=[None, rev, perm],
          edge=[Dep("order of 80 of 80, as a list", lambda c: list(range(80)))],
          bad=[Dep("order with a repeated row", lambda c: np.r_[np.zeros(2, int), np.arange(2, c["n_reference"])]),
               Dep("order too short", lambda c: np.arange(30)),
               Dep("order with index n", lambda c: np.r_[np.arange(1, c["n_reference"]), c["n_reference"]]),
               Dep("order with index -1", lambda c: np.r_[np.arange(c["n_reference"] - 1), -1]),
               Dep("float order 2.5", lambda c: np.arange(c["n_reference"]) + 0.5), "abc",
               Dep("2-D order", lambda c: np.arange(c["n_reference"]).reshape(-1, 1))]),
    ] + search_params()[:2] + [group_param()]
    gen_function(B, "knn_checkpoints", call, {"queries": ("f64", 15), "reference": ("f64", 80)}, params,
                 verify=verify, n_combos=15, edge_kinds=tuple(k for k in EDGE_KINDS if k not in ("one_row", "two_rows")))


def gen_representation_gap(B):
    def call(A, kw):
        return api("representation_gap")(A["train"], A["test"], **kw)

    def verify(A, kw, res):
        if kw.get("group") is not None:
            return None
        return verify_gap(A["train"], A["test"], kw.get("k", 1), kw.get("r", 2), res)

    params = [P("k", valid=[1, 2], edge=[Dep("n_train", lambda c: c["n_train"])],
                bad=[0, -1, 2.5, "1", True, None, NAN, 10**12]),
              P("r", valid=[2, 1, 0.5, 2.5], edge=[1e-300, 1e300, 300, np.float32(2)],
                bad=[0, -1, NAN, INF, -INF, "2", True, None, 1j])] + search_params() + [group_param()]
    gen_function(B, "representation_gap", call, {"train": ("f64", 80), "test": ("f64", 20)}, params,
                 verify=verify, all_backends=("train",), n_combos=25)


def gen_gap_curve(B):
    def call(A, kw):
        return api("gap_curve")(A["train"], A["test"], **kw)

    params = [
        P("sizes", valid=[None, [10, 20, 40, 80], np.array([5, 50, 150])],
          edge=[[1], [150], [10.0, 20.0], range(10, 151, 35)],
          bad=[[0], [-1, 10], [2.5, 10], [40, 20], [10, 10], [151], [], "abc", [NAN], [10**12], 0],
          names=("sizes", "checkpoint")),
        P("repeats", valid=[1, 3], edge=[np.int64(2), 2.0], bad=[0, -1, 2.5, "5", True, None, NAN]),
        P("k", valid=[1, 2], edge=[5], bad=[0, -1, 2.5, "1", True, None, 10**9]),
        P("r", valid=[2, 1], edge=[1e300, 1e-300], bad=[0, -1, NAN, INF, "2", True]),
        random_state_param(),
        P("train_queries", valid=[False, True], edge=[10, 0, "auto", 10**9], bad=["maybe", -1, 2.5, NAN]),
        group_param(),
    ] + search_params()[:2]
    gen_function(B, "gap_curve", call, {"train": ("f64", 150), "test": ("f64", 20)}, params, n_combos=15,
                 edge_kinds=EDGE_KINDS[::2], bad_kinds=BAD_KINDS)


def law_data(kind, rng):
    """(curve_or_sizes, gaps) for fit_law."""
    sizes = np.array([50, 100, 200, 400, 800, 1600, 3200])
    g = 0.7 * sizes ** (-2 / 3.0) * (1 + 0.02 * rng.standard_normal(sizes.size))
    if kind == "curve":
        X = rng.random((300, 3))
        return api("gap_curve")(X[:250], X[250:], repeats=2, random_state=0), None
    if kind == "arrays":
        return sizes, g
    if kind == "lists":
        return sizes.tolist(), g.tolist()
    if kind == "float32":
        return sizes.astype(np.float32), g.astype(np.float32)
    if kind == "two_points":
        return sizes[:2], g[:2]
    if kind == "three_points":
        return sizes[:3], g[:3]
    if kind == "unsorted":
        p = rng.permutation(sizes.size)
        return sizes[p], g[p]
    if kind == "dup_sizes":
        s = sizes.copy()
        s[1] = s[0]
        return s, g
    if kind == "constant_gaps":
        return sizes, np.full(sizes.size, 0.1)
    if kind == "increasing_gaps":
        return sizes, g[::-1].copy()
    if kind == "big_gaps":
        return sizes, g * 1e300
    if kind == "tiny_gaps":
        return sizes, g * 1e-300
    if kind == "huge_sizes":
        return sizes * 10**12, g
    if kind == "frac_sizes":
        return sizes + 0.5, g
    if kind == "exact_law":
        return sizes, 0.7 * sizes ** (-2 / 3.0)
    # bad
    if kind == "nan_gaps":
        g[2] = np.nan
        return sizes, g
    if kind == "inf_gaps":
        g[2] = np.inf
        return sizes, g
    if kind == "neg_gaps":
        g[2] = -g[2]
        return sizes, g
    if kind == "zero_gaps":
        g[2] = 0
        return sizes, g
    if kind == "zero_size":
        s = sizes.copy()
        s[0] = 0
        return s, g
    if kind == "neg_size":
        s = sizes.copy()
        s[0] = -50
        return s, g
    if kind == "one_point":
        return sizes[:1], g[:1]
    if kind == "mismatch":
        return sizes, g[:-1]
    if kind == "gaps_none":
        return sizes, None
    if kind == "gaps_2d":
        return sizes, np.vstack([g, g])
    if kind == "str":
        return "abc", g
    if kind == "none":
        return None, None
    if kind == "curve_and_gaps":
        c, _ = law_data("curve", rng)
        return c, g
    if kind == "empty":
        return np.array([]), np.array([])
    if kind == "complex_gaps":
        return sizes, g + 1j
    raise AssertionError(kind)


def gen_fit_law(B):
    edge_kinds = ("curve", "lists", "float32", "two_points", "three_points", "unsorted", "dup_sizes",
                  "constant_gaps", "increasing_gaps", "big_gaps", "tiny_gaps", "huge_sizes", "frac_sizes",
                  "exact_law")
    bad_kinds = {"nan_gaps": ("gaps", "nan", "finite"), "inf_gaps": ("gaps", "inf", "finite"),
                 "neg_gaps": ("gaps", "positive", "negative"), "zero_gaps": ("gaps", "positive", "zero"),
                 "zero_size": ("sizes", "positive"), "neg_size": ("sizes", "positive", "negative"),
                 "one_point": ("sizes", "points", "at least"), "mismatch": ("gaps", "sizes", "length", "match"),
                 "gaps_none": ("gaps",), "gaps_2d": ("gaps", "1-d", "shape"), "str": ("curve_or_sizes", "sizes"),
                 "none": ("curve_or_sizes", "sizes", "none"), "curve_and_gaps": ("gaps",),
                 "empty": ("sizes", "empty", "points"), "complex_gaps": ("gaps", "complex", "real")}

    def mk(kind, kw, ekind, names=()):
        def thunk(rng):
            cs, g = law_data(kind, rng)
            real = {k: resolve(v, {}) for k, v in kw.items()}
            if g is None and kind not in ("gaps_none", "none"):
                return api("fit_law")(cs, **real), None
            return api("fit_law")(cs, g, **real), None

        B.add("fit_law", "-", ekind, "data" if kind != "arrays" else next(iter(kw), "baseline"),
              _desc({"data": kind}, kw), thunk, names)

    for kind in ("arrays", "curve"):
        mk(kind, {}, "valid")
    for kind in edge_kinds:
        mk(kind, {}, "edge")
    for kind, names in bad_kinds.items():
        mk(kind, {}, "bad_array", names)
    params = [
        P("correction", valid=[True, False], edge=["auto", 0, 1, 2], bad=["maybe", 3, NAN, "yes"]),
        P("offset", valid=[True, False], edge=[0, 1], bad=["yes", 2, NAN]),
        P("r", valid=[None, 2, 1.0], edge=[1e-300, 1e300], bad=[0, -1, NAN, INF, "2", True]),
        P("min_size", valid=[None, 100, 400], edge=[0, 10**9, 1], bad=[-1, NAN, "10", True]),
        confidence_param(),
        P("n_boot", valid=[0, 50], edge=[1, 2, np.int64(10)], bad=[-1, 2.5, "10", NAN, True, None]),
        random_state_param(),
        P("progress", valid=[False, None], edge=[True, 0], bad=["yes", 2.5]),
    ]
    for p in params:
        for v in p.valid:
            mk("arrays", {p.name: v}, "valid")
        for v in p.edge:
            mk("arrays", {p.name: v}, "edge")
        for v in p.bad:
            mk("arrays", {p.name: v}, "bad_param", (p.name,) + p.names)
    pool = [(p.name, v) for p in params for v in p.valid + p.edge]
    for _ in range(20):
        kw = dict(B.rnd.sample(pool, B.rnd.randint(1, 3)))
        mk(B.rnd.choice(edge_kinds + ("arrays",)), kw, "edge")


def gen_small_functions(B):
    """predicted_gap, default_sizes: scalars in, arrays out."""
    def mk(func, args, kw, kind, target, names=()):
        def thunk(rng):
            return api(func)(*args, **kw), None

        B.add(func, "-", kind, target, _desc({}, {**{f"arg{j}": a for j, a in enumerate(args)}, **kw}), thunk, names)

    mk("predicted_gap", (1000, 3), {}, "valid", "baseline")
    pg = [("n", [100, np.array([10, 100, 1000])], [1, 1e300, 10**30, np.array([1.5, 2])],
           [0, -1, NAN, INF, "a", None, np.array([10, -1])]),
          ("d", [3, 2.5], [1e-3, 1e4, 1e-300], [0, -1, NAN, INF, "3", None]),
          ("volume", [1.0, 2.0], [1e-300, 1e300], [0, -1, NAN, INF, "1"]),
          ("density_integral", [None, 0.5], [1e-300, 1e300], [0, -1, NAN, INF, "1"]),
          ("group_order", [1, 2], [10**9, 2.0], [0, -1, 2.5, NAN, "2", True]),
          ("k", [1, 3], [100], [0, -1, 2.5, NAN, "1", True]),
          ("r", [2, 1], [1e-300, 300], [0, -1, NAN, INF, "2", True])]
    for name, valid, edge, bad in pg:
        for kind, vals in (("valid", valid), ("edge", edge), ("bad_param", bad)):
            for v in vals:
                if name in ("n", "d"):
                    args = (v, 3) if name == "n" else (1000, v)
                    mk("predicted_gap", args, {}, kind, name, (name,))
                else:
                    mk("predicted_gap", (1000, 3), {name: v}, kind, name, (name,))
    mk("default_sizes", (1000,), {}, "valid", "baseline")
    ds = [("n", [500, 100], [1, 2, 10**9, np.int64(300)], [0, -1, 2.5, NAN, "100", None, True]),
          ("n_sizes", [5, 1], [2, 1000], [0, -1, 2.5, "5", True, None]),
          ("smallest", [10, 1], [999, 1000, 5000], [0, -1, 2.5, "10", True, None])]
    for name, valid, edge, bad in ds:
        for kind, vals in (("valid", valid), ("edge", edge), ("bad_param", bad)):
            for v in vals:
                if name == "n":
                    mk("default_sizes", (v,), {}, kind, name, (name,))
                else:
                    mk("default_sizes", (1000,), {name: v}, kind, name, (name,))


ESTIMATORS = {
    "TwoNN": [P("method", valid=["mle", "fit"], bad=["bogus", None, 1]),
              P("discard_fraction", valid=[0.0, 0.5], edge=[0.99, np.float32(0.2)],
                bad=[-0.1, 1, 1.0, 2, NAN, "0.1", None, True]),
              P("n_boot", valid=[0, 20], edge=[1, 2], bad=[-1, 2.5, "10", NAN, True, None]),
              P("calibration", valid=[None, "ball"], bad=["bogus", 1, True]),
              P("calibration_size", valid=[1000], edge=[4, 10, 3], bad=[0, -1, 2.5, "100", NAN, True, None])],
    "CalibratedTwoNN": [P("discard_fraction", valid=[0.0], edge=[0.9], bad=[-0.1, 1.5, NAN]),
                        P("calibration", valid=["ball", None], bad=["bogus", 2]),
                        P("calibration_size", valid=[500, 5000], edge=[4, 10],
                          bad=[0, -1, 2.5, "100", NAN, True])],
    "MLE": [P("k1", valid=[2, 5], edge=[19], bad=[0, -1, 1, 2.5, "5", NAN, True, None]),
            P("k2", valid=[10, 30], edge=[Dep("n-1", lambda c: c["n"] - 1)],
              bad=[0, -1, 1, 2.5, "20", NAN, None, 10**9, N1, Kw("k1=10, k2=5", k1=10, k2=5)],
              names=("k1",)),
            P("interval", valid=["auto", "bootstrap", "delta"], bad=["bogus", None, 1]),
            P("n_boot", valid=[20], edge=[0, 1], bad=[-1, 2.5, "10", True])],
    "GRIDE": [P("n1", valid=[1, 2], edge=[16, 20], bad=[0, -1, 2.5, "1", NAN, True, None, 10**9]),
              P("max_n1", valid=[4, 32], edge=[1, 2], bad=[0, -1, 2.5, "32", NAN, True, None, 10**9])],
    "CorrelationDimension": [
        P("c_range", valid=[(0.01, 0.1), [0.001, 0.05]], edge=[(1e-6, 0.999), np.array([0.05, 0.2])],
          bad=[(0.03, 0.001), (0, 0.5), (-0.1, 0.5), (0.1, 1.5), (0.1,), "ab", None, (NAN, 0.5), (0.1, 0.1),
               (0.1, 0.2, 0.3), 0.1]),
        P("n_bins", valid=[10, 60], edge=[3, 4, 10**5], bad=[0, -1, 1, 2.5, "60", True, None]),
        P("max_points", valid=[100, 20000], edge=[3, 10], bad=[0, -1, 1, 2.5, "100", True]),
        P("max_points_group", valid=[100], edge=[3, 10], bad=[0, -1, 2.5, True]),
        P("n_boot", valid=[5, 20], edge=[1, 2], bad=[-1, 2.5, "10", True])],
    "WeibullShape": [P("test_size", valid=[0.2, 0.5, 10], edge=[0.99, 1, 0.01],
                       bad=[0, 0.0, -0.1, 1.0, 1.5, NAN, "0.2", True, None, N, 10**9])],
    "GapLaw": [P("test_size", valid=[0.1, 0.3, 20], edge=[1, 0.9],
                 bad=[0, -0.1, 1.0, 1.5, NAN, "0.1", True, None, N, 10**9]),
               P("sizes", valid=[[10, 20, 40, 80]], edge=[[5, 10], [1, 2, 3]],
                 bad=[[0], [-1, 10], [2.5, 10], [20, 10], "abc", [10**9], []], names=("checkpoint",)),
               P("min_size", valid=[None, 20], edge=[1, 10**9], bad=[-1, NAN, "10", 2.5, True]),
               P("repeats", valid=[1, 3], edge=[20], bad=[0, -1, 2.5, "5", True, NAN, None]),
               P("correction", valid=["auto", True, False, 2], bad=["maybe", 3, None]),
               P("interval", valid=["models", "bootstrap"], bad=["bogus", None, 1]),
               P("n_boot", valid=[0, 20], edge=[1], bad=[-1, 2.5, "10", True]),
               P("train_queries", valid=["auto", False, True], edge=[10, 0], bad=["maybe", -1, 2.5, NAN]),
               P("check_regime", valid=[True, False], edge=[0, 1], bad=["yes", 2, None])],
}
COMMON_EST = [confidence_param(),
              P("duplicates", valid=["raise", "drop", "keep"], bad=["bogus", None, 1, True]),
              P("duplicate_tol", valid=[1e-10, 0.0], edge=[1e-300, 1.0, 1e300, INF], bad=[-1, NAN, "1e-10", None, True])]
EST_NO_RANDOM = {"GRIDE"}
EST_NO_DUP = {"CorrelationDimension"}
EST_N = {"GapLaw": 200, "CorrelationDimension": 150}


def gen_estimators(B):
    for cname, own in ESTIMATORS.items():
        def call(A, kw, cname=cname):
            return api(f"estimators.{cname}")(**kw).fit(A["X"])

        params = list(own)
        params += [p for p in COMMON_EST if not (cname in EST_NO_DUP and p.name.startswith("duplicate"))
                   and p.name not in {q.name for q in own}]
        if cname not in EST_NO_RANDOM:
            params.append(random_state_param())
        params += [group_param(), search_params()[0]]
        n = EST_N.get(cname, 120)
        gen_function(B, f"estimators.{cname}", call, {"X": ("f64", n)}, params, n_combos=10,
                     edge_kinds=EDGE_KINDS if cname in ("TwoNN", "MLE") else EDGE_KINDS[1::2],
                     bad_kinds=BAD_KINDS if cname in ("TwoNN", "MLE") else BAD_KINDS[::2])


def gen_intrinsic_dimension(B):
    methods = ("calibrated", "gap", "twonn", "mle", "gride", "corr", "weibull")

    def call(A, kw):
        return api("intrinsic_dimension")(A["X"], **kw)

    for m in methods:
        for be in BACKENDS:
            gen_thunk = _thunk(call, {"X": ("f64", 200)}, {}, 3, {"method": m, "backend": be}, None)
            B.add("intrinsic_dimension", be, "valid", "method", f"method={m!r}", gen_thunk)
    one_bad = {"calibrated": ("calibration_size", 0), "gap": ("repeats", 0), "twonn": ("discard_fraction", 2),
               "mle": ("k1", 2.5), "gride": ("n1", 0), "corr": ("n_bins", -1), "weibull": ("test_size", 1.5)}
    for j, m in enumerate(methods):
        name, v = one_bad[m]
        B.add("intrinsic_dimension", BACKENDS[j % 4], "bad_param", name, f"method={m!r}, {name}={v!r}",
              _thunk(call, {"X": ("f64", 200)}, {}, 3, {"method": m, name: v, "backend": BACKENDS[j % 4]}, None),
              (name,))
        B.add("intrinsic_dimension", BACKENDS[j % 4], "bad_param", "foo", f"method={m!r}, foo=1",
              _thunk(call, {"X": ("f64", 200)}, {}, 3, {"method": m, "foo": 1, "backend": BACKENDS[j % 4]}, None),
              ("foo",))
        B.add("intrinsic_dimension", BACKENDS[j % 4], "edge", "group", f"method={m!r}, group=SignFlip()",
              _thunk(call, {"X": ("f64", 200)}, {}, 3, {"method": m, "group": G("SignFlip()", "SignFlip"),
                                                          "backend": BACKENDS[j % 4]}, None))
    for v in ("bogus", "", 3, "TWONN", ["twonn"]):
        kind = "edge" if v == "TWONN" else "bad_param"
        B.add("intrinsic_dimension", "auto", kind, "method", f"method={v!r}",
              _thunk(call, {"X": ("f64", 200)}, {}, 3, {"method": v}, None), ("method",))
    for v in ["abc", -1, 2.5]:
        B.add("intrinsic_dimension", "auto", "bad_param", "random_state", f"method='twonn', random_state={v!r}",
              _thunk(call, {"X": ("f64", 200)}, {}, 3, {"method": "twonn", "random_state": v}, None),
              ("random_state",))
    B.add("intrinsic_dimension", "auto", "bad_param", "group", "group='rotation'",
          _thunk(call, {"X": ("f64", 200)}, {}, 3, {"group": "rotation"}, None), ("group",))
    # array kinds, the methods in turn
    for j, k in enumerate(EDGE_KINDS + BAD_KINDS):
        if k == "mismatch_d":
            continue
        m, be = methods[j % len(methods)], BACKENDS[(j // len(methods)) % 4]
        kind = "bad_array" if k in BAD_KINDS else "edge"
        B.add("intrinsic_dimension", be, kind, "X", f"X={k}, method={m!r}",
              _thunk(call, {"X": ("f64", 200)}, {"X": k}, 3, {"method": m, "backend": be}, None),
              ("X",) + PROBLEM_WORDS.get(k, ()))


def gen_id_vs_scale(B):
    def call(A, kw):
        return api("id_vs_scale")(A["X"], **kw)

    cases = [("valid", {"method": m}) for m in ("gride", "mle", "corr", "gap")]
    cases += [("valid", {"method": "mle", "k_max": 8}), ("valid", {"method": "gride", "n1": 2}),
              ("edge", {"method": "mle", "k_max": 199}), ("edge", {"method": "mle", "k_max": 2}),
              ("edge", {"method": "twonn"}), ("edge", {"method": "weibull"})]
    bad = [({"method": "bogus"}, "method"), ({"method": None}, "method"), ({"method": 3}, "method"),
           ({"method": "mle", "k_max": 0}, "k_max"), ({"method": "mle", "k_max": 1}, "k_max"),
           ({"method": "mle", "k_max": -1}, "k_max"), ({"method": "mle", "k_max": 2.5}, "k_max"),
           ({"method": "mle", "k_max": 10**9}, "k_max"), ({"method": "mle", "k_max": "8"}, "k_max"),
           ({"method": "gride", "n1": 0}, "n1"), ({"method": "corr", "n_bins": 0}, "n_bins"),
           ({"method": "gap", "repeats": 0}, "repeats"), ({"method": "mle", "foo": 1}, "foo"),
           ({"method": "gride", "foo": 1}, "foo"), ({"method": "corr", "random_state": "abc"}, "random_state")]
    for kind, kw in cases:
        B.add("id_vs_scale", "-", kind, "method", _desc({}, kw), _thunk(call, {"X": ("f64", 200)}, {}, 3, kw, None))
    for kw, name in bad:
        B.add("id_vs_scale", "-", "bad_param", name, _desc({}, kw),
              _thunk(call, {"X": ("f64", 200)}, {}, 3, kw, None), (name,))
    for j, k in enumerate(EDGE_KINDS[::3] + tuple(b for b in BAD_KINDS if b != "mismatch_d")[::3]):
        m = ("gride", "mle", "corr", "gap")[j % 4]
        kind = "bad_array" if k in BAD_KINDS else "edge"
        B.add("id_vs_scale", "-", kind, "X", f"X={k}, method={m!r}",
              _thunk(call, {"X": ("f64", 200)}, {"X": k}, 3, {"method": m}, None), ("X",) + PROBLEM_WORDS.get(k, ()))


def gen_groups(B):
    """Each constructor with valid, borderline and bad arguments; a constructed group then used by knn."""
    D = 6

    def mk(label, kind, target, make, names=(), be="auto", use=True):
        def thunk(rng):
            g = make()
            if not use:
                return g, None
            X = rng.random((40, D))
            Q = rng.random((8, D))
            res = api("knn")(Q, X, k=2, group=g, backend=be)

            def verify(r):
                d = host(r[0])
                plain = np.sort(ref_distances(Q, X), axis=1)[:, :2]
                if d.shape != (8, 2):
                    return f"shape {d.shape}"
                if np.any(d < 0) or np.any(d > plain * (1 + 1e-9) + 1e-12):
                    return f"orbit distances above the Euclidean ones: {d[0]} vs {plain[0]}"
                return None

            return res, verify

        B.add(f"groups.{label.split('(')[0]}", be, kind, target, label, thunk, names)

    g = lambda name: api(f"groups.{name}")  # noqa: E731
    j = 0
    table = [
        ("Translation", [(3,), (2,), (1,), (np.int64(3),)], [(6,), (3.0,), (10**9,)],
         [(0,), (-1,), (2.5,), ("3",), (None,), (True,), (NAN,), (INF,), (4,)], ("p", "Translation")),
        ("Rotation", [(3,), (2,), (3, True), (2, False)], [(1,), (4,), (6,), (3, 1), (3.0,)],
         [(0,), (-1,), (2.5,), ("3",), (None,), (True,), (NAN,), (3, "yes"), (3, 2), (3, None), (5,)],
         ("p", "reflections", "Rotation")),
        ("CyclicShift", [(), ((2, 3),), (None, True)], [((6,),), (6,), ((1, 6),), ((6, 1),), ((3,),)],
         [((0,),), ((-1, 6),), ((2.5,),), ("ab",), ((3, "a"),), ((4,),), (None, "yes"), (0,), (-3,), (2.5,)],
         ("shape", "reflections", "CyclicShift", "multiple", "length")),
        ("Permutation", [(2, 3), (6,), (3, 2), (6, 1)], [(1, 6), (np.int64(2), 3), (2, 3.0)],
         [(0,), (-1,), (2.5,), ("3",), (None,), (True,), (2, 0), (2, -1), (2, 2.5), (4, 1), (10**6, 1)],
         ("m", "p", "Permutation", "multiple", "length")),
        ("SignFlip", [()], [], [(1,)], ("SignFlip", "argument")),
        ("Identity", [()], [], [(1,)], ("Identity", "argument")),
    ]
    for cls, valid, edge, bad, names in table:
        for kind, arglist in (("valid", valid), ("edge", edge), ("bad_param", bad)):
            for args in arglist:
                j += 1
                label = f"{cls}({', '.join(map(repr, args))})"
                mk(label, kind, cls, (lambda cls=cls, args=args: g(cls)(*args)), names, be=BACKENDS[j % 4])
    # FiniteGroup
    perm = [np.arange(D), np.r_[np.arange(D)[1:], 0]]  # not closed
    cyc = [np.roll(np.arange(D), s) for s in range(D)]
    fg_valid = [("cyclic permutations", lambda: cyc), ("identity and swap", lambda: [np.arange(D), np.r_[1, 0, np.arange(2, D)]]),
                ("+-I", lambda: [np.eye(D), -np.eye(D)])]
    fg_edge = [("identity only", lambda: [np.arange(D)]), ("lists", lambda: [list(range(D))]),
               ("I as float32", lambda: [np.eye(D, dtype=np.float32)])]
    fg_bad = [("a string", lambda: "abc"), ("empty", lambda: []), ("None", lambda: None), ("3", lambda: 3),
              ("not a permutation", lambda: [np.arange(D), np.r_[0, 0, np.arange(2, D)]]),
              ("no identity", lambda: [np.r_[1, 0, np.arange(2, D)]]),
              ("not closed", lambda: perm), ("2I (not orthogonal)", lambda: [np.eye(D), 2 * np.eye(D)]),
              ("ragged", lambda: [np.arange(D), np.arange(D - 1)]), ("NaN matrix", lambda: [np.full((D, D), np.nan)]),
              ("wrong size", lambda: [np.arange(4), np.r_[1, 0, 2, 3]]), ("floats 2.5", lambda: [np.arange(D) + 0.5]),
              ("index out of range", lambda: [np.arange(D), np.r_[np.arange(1, D), D]])]
    for kind, lst in (("valid", fg_valid), ("edge", fg_edge), ("bad_param", fg_bad)):
        for label, make in lst:
            j += 1
            mk(f"FiniteGroup({label})", kind, "elements", (lambda make=make: g("FiniteGroup")(make())),
               ("elements", "FiniteGroup", "permutation", "orthogonal", "identity", "closed", "length"),
               be=BACKENDS[j % 4])
    # Product
    prods = [
        ("valid", "Product(Translation(3), Rotation(3))", lambda: g("Product")(g("Translation")(3), g("Rotation")(3))),
        ("valid", "Product(Translation(3), Permutation(2, 3))",
         lambda: g("Product")(g("Translation")(3), g("Permutation")(2, 3))),
        ("valid", "Product(Rotation(3), Permutation(2, 3))", lambda: g("Product")(g("Rotation")(3), g("Permutation")(2, 3))),
        ("edge", "Product()", lambda: g("Product")()),
        ("edge", "Product(Identity())", lambda: g("Product")(g("Identity")())),
        ("edge", "Product(Translation(3))", lambda: g("Product")(g("Translation")(3))),
        ("edge", "Product(Translation(3), Rotation(3), n_starts=1, max_iter=1)",
         lambda: g("Product")(g("Translation")(3), g("Rotation")(3), n_starts=1, max_iter=1)),
        ("edge", "Product(Rotation(3), Permutation(2, 3), n_starts=1000)",
         lambda: g("Product")(g("Rotation")(3), g("Permutation")(2, 3), n_starts=1000)),
    ]
    pbad = [
        ("Product('a')", lambda: g("Product")("a"), ("Product", "factor", "group")),
        ("Product(Translation(3), Translation(3))", lambda: g("Product")(g("Translation")(3), g("Translation")(3)),
         ("Product", "twice", "Translation")),
        ("Product(Translation(3), Rotation(2))", lambda: g("Product")(g("Translation")(3), g("Rotation")(2)),
         ("Product", "p", "dimension", "Rotation", "Translation")),
        ("Product(SignFlip(), Rotation(3))", lambda: g("Product")(g("SignFlip")(), g("Rotation")(3)),
         ("Product", "SignFlip", "product")),
    ]
    for name, vals in (("n_starts", [0, -1, 2.5, "4", True, NAN, None]), ("max_iter", [0, -1, 2.5, "50", True, None])):
        for v in vals:
            pbad.append((f"Product(Translation(3), Rotation(3), {name}={v!r})",
                         (lambda name=name, v=v: g("Product")(g("Translation")(3), g("Rotation")(3), **{name: v})),
                         (name,)))
    for kind, label, make in prods:
        j += 1
        mk(label, kind, "Product", make, (), be=BACKENDS[j % 4])
    for label, make, names in pbad:
        j += 1
        mk(label, "bad_param", "Product", make, names, be=BACKENDS[j % 4])
    # check_group through a public function: wrong objects for group=
    for v in ("rotation", 3, GROUP_CLASS, [G("Rotation(3)", "Rotation", 3)]):
        j += 1

        def thunk(rng, v=v):
            X = rng.random((40, D))
            return api("knn")(X[:5], X, group=resolve(v, {})), None

        B.add("groups.check_group", "auto", "bad_param", "group", f"knn(group={v!r})", thunk, ("group",))


def gen_config(B):
    def mk(kind, target, kw, names=(), use_context=False, be_for_knn=None):
        def thunk(rng):
            import repgap

            X = rng.random((60, 3))
            real = {k: resolve(v, {}) for k, v in kw.items()}
            old = repgap.get_config()
            try:
                if use_context:
                    with repgap.config_context(**real):
                        res = repgap.knn(X[:10], X, k=3)
                else:
                    repgap.set_config(**real)
                    res = repgap.knn(X[:10], X, k=3)
            finally:
                try:
                    import repgap._config as cfg

                    cfg._global.clear()
                    cfg._global.update(old)
                    cfg._current().clear()
                    cfg._current().update(old)
                except Exception:
                    repgap.set_config(**old)
            return res, (lambda r: verify_knn_arrays(X[:10], X, 3, r))

        B.add("config_context" if use_context else "set_config", str(kw.get("backend", "-")), kind, target,
              _desc({}, kw), thunk, names)

    table = [
        ("backend", list(BACKENDS) + [None], ["NUMPY"], ["bogus", "", 3, ["numpy"]]),
        ("n_jobs", [1, -1, None, 2], [64, 10**9], [0, -2, 2.5, "2", True, NAN]),
        ("tile_queries", [None, 1, 64], [10**9, np.int64(8), 8.0], [0, -1, 2.5, "8", True, NAN, INF]),
        ("tile_reference", [None, 1, 64], [10**9, 8.0], [0, -1, 2.5, "8", True, NAN, INF]),
        ("progress", [None, False, True], [0, 1], ["yes", 2.5]),
    ]
    for ctx in (False, True):
        for name, valid, edge, bad in table:
            for kind, vals in (("valid", valid), ("edge", edge), ("bad_param", bad)):
                for v in (vals if not ctx else vals[:2]):
                    mk(kind, name, {name: v}, (name,), use_context=ctx)
        mk("bad_param", "foo", {"foo": 1}, ("foo",), use_context=ctx)
        mk("bad_param", "Backend", {"Backend": "numpy"}, ("Backend",), use_context=ctx)
    mk("valid", "combo", {"backend": "numpy", "n_jobs": 1, "tile_queries": 3, "tile_reference": 5})
    mk("valid", "combo", {"backend": "cython", "tile_queries": 1, "tile_reference": 1})
    mk("valid", "combo", {"backend": "torch", "tile_queries": 7})


def gen_diffusion(B):
    finite = group_param(finite_only=True)
    finite.bad = [v for v in finite.bad if "Translation(4)" not in repr(v)]
    sigma_bad = [0, -1, NAN, INF, "0.1", None, [], [0.1, -1], True, [[0.1]], 1j]
    sigma_edge = [1e-300, 1e300, [0.1, 0.01], np.array([1e-3]), 1e-8, np.float32(0.1), (0.5,)]

    def den_call(A, kw):
        return api("diffusion.empirical_denoiser")(A["train"], A["y"], kw.pop("sigma", 0.1), **kw)

    def den_verify(A, kw, res):
        if kw.get("group") is not None:
            return None
        T, Y = as_f64(A["train"]), as_f64(A["y"])
        out = host(res)
        if out.shape[-2:] != Y.shape:
            return f"shape {out.shape} for y of shape {Y.shape}"
        lo, hi = T.min(axis=0), T.max(axis=0)
        span = np.maximum(hi - lo, np.abs(hi)) * 1e-9
        if np.any(out < lo - span) or np.any(out > hi + span):
            return "denoised points outside the bounding box of the training set"
        return None

    gen_function(B, "diffusion.empirical_denoiser", den_call, {"train": ("f64", 80), "y": ("f64", 10)},
                 [P("sigma", valid=[0.1, 1.0], edge=sigma_edge, bad=sigma_bad, names=("sigmas",)), finite,
                  P("max_memory", valid=[None, 1 << 20], edge=[1, 2.5, 100, 10**15], bad=[0, -1, "1MB", True, NAN])],
                 backend=False, verify=den_verify, n_combos=10)

    def dg_call(A, kw):
        return api("diffusion.denoising_gap")(A["train"], A["test"], kw.pop("sigmas", [0.1, 0.01]), **kw)

    gen_function(B, "diffusion.denoising_gap", dg_call, {"train": ("f64", 80), "test": ("f64", 10)},
                 [P("sigmas", valid=[[0.1], [1.0, 0.1, 0.01]], edge=sigma_edge, bad=sigma_bad, names=("sigma",)),
                  P("n_noise", valid=[1, 4], edge=[50, np.int64(2)], bad=[0, -1, 2.5, "4", True, NAN, None]),
                  finite, random_state_param(),
                  P("max_memory", valid=[None], edge=[1, 2.5, 100], bad=[0, -1, "1MB"])],
                 n_combos=10, edge_kinds=EDGE_KINDS[::2], bad_kinds=BAD_KINDS[::2], reduced=("test",))

    ratio = P("ratio", valid=[1 / 3, 0.5], edge=[1, 1e-9, np.float32(0.3)],
              bad=[0, -0.1, 1.5, NAN, INF, "0.3", None, True])

    def mem_call(A, kw):
        return api("diffusion.memorization")(A["samples"], A["train"], test=A.get("test"), **kw)

    def mem_verify(A, kw, res):
        f = float(res.fraction_memorized)
        return None if 0 <= f <= 1 else f"fraction_memorized={f}"

    gen_function(B, "diffusion.memorization", mem_call,
                 {"samples": ("f64", 20), "train": ("f64", 80), "test": ("absent", 20)},
                 [ratio, group_param(), search_params()[0]], verify=mem_verify, n_combos=10, optional=("test",),
                 reduced=("test",))

    def meter_call(A, kw):
        kw = dict(kw)
        nb = kw.pop("n_batches", 2)
        m = api("diffusion.MemorizationMeter")(A["train"], test=A.get("test"), **kw)
        for _ in range(nb):
            m.update(A["batch"])
        return m.compute()

    gen_function(B, "diffusion.MemorizationMeter", meter_call,
                 {"train": ("f64", 80), "batch": ("f64", 10), "test": ("absent", 20)},
                 [ratio, group_param(), search_params()[0],
                  P("n_batches", valid=[1, 3], edge=[0])], verify=mem_verify, n_combos=6,
                 edge_kinds=EDGE_KINDS[::2], bad_kinds=BAD_KINDS[::2], optional=("test",), reduced=("test",))


def gen_analyze(B):
    def call(A, kw):
        return api("analyze")(A["X"], **kw)

    params = [P("repeats", valid=[2], bad=[0, 2.5]), P("test_size", valid=[0.2, 5], bad=[-0.1, 1.5, NAN]),
              P("methods", valid=[["twonn", "mle"]], edge=["twonn", []], bad=[["bogus"], 3]),
              P("target_gap", valid=[0.01], edge=[1e-300], bad=[-1, NAN, 0, "0.1"]),
              P("known_dimension", valid=[3], edge=[2.5], bad=[0, -1, NAN, "3"]),
              P("known_volume", valid=[1.0], bad=[0, -1, NAN]),
              P("confidence", valid=[0.9], bad=[1.5, 0]),
              P("n_boot", valid=[10], bad=[-1, 2.5]),
              P("train_queries", valid=["auto", False], bad=["maybe"])]
    gen_function(B, "analyze", call, {"X": ("f64", 200)}, params, n_combos=3, fixed={"n_boot": 20, "repeats": 2},
                 edge_kinds=("f32", "dup_one", "big1e300", "torch_f32", "one_row"),
                 bad_kinds=("nan", "one_d", "complex"))


def enumerate_cases(only=None, quick=False):
    B = Builder()
    for gen in (gen_knn, gen_knn_checkpoints, gen_representation_gap, gen_gap_curve, gen_fit_law,
                gen_small_functions, gen_estimators, gen_intrinsic_dimension, gen_id_vs_scale, gen_groups,
                gen_config, gen_diffusion, gen_analyze):
        gen(B)
    cases = B.cases
    if only:
        rx = re.compile(only)
        cases = [c for c in cases if rx.search(c.func)]
    if quick:
        cases = [c for c in cases if c.target == "baseline" or c.id % 4 == 0]
    return cases


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------
FIELDS = ("id", "install", "func", "backend", "kind", "target", "desc", "category", "error", "message", "warnings",
          "seconds")


def describe_install():
    info = {}
    try:
        import repgap

        info["repgap"] = f"{getattr(repgap, '__version__', '?')} from {Path(repgap.__file__).parent}"
        info["backends"] = ", ".join(repgap.available_backends())
        try:
            rev = subprocess.run(["git", "-C", str(Path(repgap.__file__).parent), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(Path(repgap.__file__).parent), "status", "--porcelain",
                                    "--", "."], capture_output=True, text=True, timeout=10).stdout.strip()
            info["commit"] = rev + (" (with uncommitted changes)" if dirty else "")
        except Exception:
            pass
    except Exception as e:
        info["repgap"] = f"import failed: {e}"
    info["python"] = platform.python_version()
    info["numpy"] = np.__version__
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed"
    return info


def rows_for(cases, results, install):
    out = []
    for c, r in zip(cases, results):
        out.append(dict(id=c.id, install=install, func=c.func, backend=c.backend, kind=c.kind, target=c.target,
                        desc=c.desc, category=r.get("category"), error=r.get("error", ""),
                        message=r.get("message", ""), warnings=r.get("warnings", ""),
                        seconds=f"{float(r.get('seconds', 0)):.3f}"))
    return out


def write_reports(rows, label, infos, wall, quick):
    RESULTS.mkdir(parents=True, exist_ok=True)
    csv_path = RESULTS / f"fuzz_matrix_{label}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    installs = sorted({r["install"] for r in rows}, key=lambda s: s != "compiled")
    lines = [f"# Fuzz matrix: {label}", "",
             f"`python benchmarks/fuzz_matrix.py --label {label}{' --quick' if quick else ''}` "
             f"({datetime.date.today().isoformat()}, {wall:.0f} s wall). Categories: see the docstring of "
             "`benchmarks/fuzz_matrix.py`; failures are " + ", ".join(f"`{c}`" for c in FAILURES) + ".", ""]
    for inst, info in infos.items():
        lines.append(f"- {inst}: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    lines += ["", "## Counts per category", "", "| category | " + " | ".join(installs) + " | total |",
              "|---|" + "---:|" * (len(installs) + 1)]
    by = Counter((r["install"], r["category"]) for r in rows)
    for cat in CATEGORIES:
        vals = [by[(i, cat)] for i in installs]
        lines.append(f"| {cat} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    lines.append("| **cases** | " + " | ".join(str(sum(by[(i, c)] for c in CATEGORIES)) for i in installs)
                 + f" | {len(rows)} |")
    lines.append("| **failures** | " + " | ".join(str(sum(by[(i, c)] for c in FAILURES)) for i in installs)
                 + f" | {sum(by[(i, c)] for i in installs for c in FAILURES)} |")
    lines += ["", "Notes: the NaN/inf markers documented by `repgap.regime.Regime` (" +
              ", ".join(f"`{f}`" for _, f in sorted(DOCUMENTED_NONFINITE)) + ") are not counted; a `hang` is a "
              "case past the time limit on this machine, so slow cases near it can move between `ok` and `hang` "
              "with the load; `rejected_valid` (a valid input refused) is listed for review, not counted as a failure."]
    lines += ["", "## Per function (both installations)", "",
              "| function | cases | ok | rejected | rejected_valid | wrong | nan w/o warning | crash | hang | unclear "
              "| accepted nonsense | skipped |", "|---|" + "---:|" * 11]
    per = defaultdict(Counter)
    for r in rows:
        per[r["func"]][r["category"]] += 1
    for func in sorted(per, key=lambda f: (-sum(per[f][c] for c in FAILURES), f)):
        c = per[func]
        cols = ["ok", "rejected", "rejected_valid", "wrong_answer", "nan_without_warning", "crash", "hang",
                "unclear", "accepted_nonsense", "skipped"]
        lines.append(f"| {func} | {sum(c.values())} | " + " | ".join(str(c[k]) for k in cols) + " |")
    lines += ["", "## Examples of each failure", ""]
    for cat in FAILURES + ("rejected_valid",):
        sel = [r for r in rows if r["category"] == cat]
        if not sel:
            continue
        lines += [f"### {cat} ({len(sel)})", ""]
        shown = Counter()
        for r in sel:
            key = (r["func"], r["target"])
            if shown[key] >= 2 or sum(shown.values()) >= 40:
                continue
            shown[key] += 1
            msg = (r["error"] + ": " if r["error"] else "") + r["message"]
            msg = msg.replace("|", "\\|")
            if len(msg) > 300:
                msg = msg[:297] + "..."
            lines.append(f"- `{r['func']}` [{r['install']}, backend {r['backend']}] {r['desc'][:150]} -> {msg}")
        if len(sel) > sum(shown.values()):
            lines.append(f"- ... {len(sel) - sum(shown.values())} more in the CSV")
        lines.append("")
    md_path = RESULTS / f"fuzz_matrix_{label}.md"
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="now", help="the name of the outputs: results/fuzz_matrix_<label>.{csv,md}")
    ap.add_argument("--quick", action="store_true", help="a quarter of the cases (and every baseline)")
    ap.add_argument("--only", default=None, help="a regular expression on the function names")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--timeout", type=int, default=20, help="seconds per case before it counts as a hang")
    ap.add_argument("--mem-gb", type=float, default=3.0, help="address space per worker above its start, GiB")
    ap.add_argument("--no-pure", action="store_true", help="skip the second run with REPGAP_PURE_PYTHON=1")
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import repgap  # noqa: F401 - before forking the workers: each starts with it imported
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    cases = enumerate_cases(args.only, args.quick)
    install = "pure-python" if os.environ.get("REPGAP_PURE_PYTHON", "0").strip() == "1" else "compiled"
    t0 = time.time()
    print(f"[{install}] {len(cases)} cases, {args.jobs} workers", file=sys.stderr, flush=True)
    results = run_all(cases, args.jobs, args.timeout, args.mem_gb)
    rows = rows_for(cases, results, install)
    infos = {install: describe_install()}
    if args.child_out:
        Path(args.child_out).write_text(json.dumps({"rows": rows, "info": infos[install]}))
        return 0
    if not args.no_pure:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "pure.json"
            cmd = [sys.executable, str(HERE), "--child-out", str(out), "--jobs", str(args.jobs), "--timeout",
                   str(args.timeout), "--mem-gb", str(args.mem_gb)]
            if args.quick:
                cmd.append("--quick")
            if args.only:
                cmd += ["--only", args.only]
            env = dict(os.environ, REPGAP_PURE_PYTHON="1")
            proc = subprocess.run(cmd, env=env)
            if proc.returncode == 0 and out.exists():
                data = json.loads(out.read_text())
                rows += data["rows"]
                infos["pure-python"] = data["info"]
            else:
                print(f"the pure-Python run failed (exit code {proc.returncode})", file=sys.stderr)
                infos["pure-python"] = {"run": f"failed, exit code {proc.returncode}"}
    wall = time.time() - t0
    csv_path, md_path = write_reports(rows, args.label, infos, wall, args.quick)
    counts = Counter(r["category"] for r in rows)
    print(f"{len(rows)} cases in {wall:.0f} s: " + ", ".join(f"{c} {counts[c]}" for c in CATEGORIES if counts[c]))
    print(f"wrote {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
