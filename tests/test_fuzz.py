"""Property-based fuzzing of the public API (issue #15, item 7).

Hypothesis draws calls to the public functions, the estimator classes, the
group constructors, the configuration and the diffusion utilities, with
arrays of odd shapes, dtypes and values and with parameters that are valid,
borderline or plainly invalid, on every available backend. Every call must:

- raise nothing but ValueError, TypeError, NotImplementedError or
  repgap.BackendUnavailableError (numpy.linalg.LinAlgError and AxisError
  count as crashes), and on a valid input not even those from inside
  numpy, scipy or torch;
- when a parameter (or an array) is invalid, raise, with a message that
  names the parameter (the argument, or the problem: NaN, shape, dtype...);
- return no NaN or inf without a warning; knn, knn_checkpoints and
  representation_gap agree with a brute-force float64 reference;
- finish within CALL_LIMIT seconds.

The examples are derandomized (the same on every run); the whole file takes
well under a minute. ``benchmarks/fuzz_matrix.py`` is the exhaustive
enumeration of the same kinds of cases, with counts.
"""
import dataclasses
import math
import re
import signal
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import repgap  # noqa: E402
from repgap import BackendUnavailableError  # noqa: E402
from _reference import ref_distances  # noqa: E402  (tests/ is on sys.path under pytest)

try:
    import torch
except ImportError:  # the torch cases are left out of the strategies
    torch = None

AVAILABLE = repgap.available_backends()
ALL_BACKENDS = ("auto", "numpy", "cython", "torch")
CALL_LIMIT = 20  # seconds per call
NAN, INF = float("nan"), float("inf")

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=25)


def backend_param(name):
    """A pytest parameter for a backend, skipped where the installation lacks it."""
    return pytest.param(name, marks=pytest.mark.skipif(
        name != "auto" and name not in AVAILABLE, reason=f"backend {name!r} not available in this installation"))


BACKEND_PARAMS = [backend_param(b) for b in ALL_BACKENDS]
# the backends a drawn case may name: the available ones, 'auto' and bogus names (errors by design)
DRAWN_BACKENDS = ["auto"] + list(AVAILABLE)


# ---------------------------------------------------------------------------
# arrays (the same kinds as benchmarks/fuzz_matrix.py, duplicated on purpose)
# ---------------------------------------------------------------------------
EDGE_KINDS = ["f64", "f32", "f16", "int", "uint8", "bool", "object", "list", "fortran", "noncontig", "readonly",
              "one_row", "two_rows", "dup_one", "dup_half", "const_col", "all_same", "offset1e6", "offset1e6_f32",
              "big1e300", "big1e308", "tiny1e-300", "subnormal", "f32_big", "f32_tiny", "f16_big", "int_big",
              "mixed_scale", "d1"]
BAD_KINDS = ["empty_rows", "empty_cols", "one_d", "three_d", "scalar", "none", "complex", "str", "nan", "inf",
             "ninf", "ragged", "dict"]
if torch is not None:
    EDGE_KINDS += ["torch_f32", "torch_f64", "torch_bf16", "torch_f16", "torch_int", "torch_noncontig"]
    BAD_KINDS += ["torch_complex", "torch_nan", "torch_1d", "torch_empty"]
PROBLEM = {
    "empty_rows": ("empty", "0 samples", "no samples", "shape"), "empty_cols": ("0 feature", "empty", "shape"),
    "one_d": ("2-d", "1-d", "shape", "reshape"), "three_d": ("2-d", "3-d", "shape"), "scalar": ("2-d", "0-d", "shape"),
    "none": ("none",), "complex": ("complex", "dtype", "real"), "str": ("dtype", "str", "real"),
    "nan": ("nan", "finite"), "inf": ("inf", "finite"), "ninf": ("inf", "finite"),
    "ragged": ("ragged", "inhomogeneous", "shape", "sequence"), "dict": ("dict", "array-like", "type"),
    "torch_complex": ("complex", "dtype", "real"), "torch_nan": ("nan", "finite"),
    "torch_1d": ("2-d", "1-d", "shape", "reshape"), "torch_empty": ("empty", "0 samples", "shape"),
}


def make(kind, n, d, seed):
    rng = np.random.default_rng(seed)
    base = lambda n=n, d=d: rng.random((n, d))  # noqa: E731
    simple = {
        "f64": base, "f32": lambda: base().astype(np.float32), "f16": lambda: base().astype(np.float16),
        "int": lambda: rng.integers(-1000, 1000, (n, d)), "uint8": lambda: rng.integers(0, 256, (n, d), dtype=np.uint8),
        "bool": lambda: rng.random((n, d)) < 0.5, "object": lambda: base().astype(object), "list": lambda: base().tolist(),
        "fortran": lambda: np.asfortranarray(base()), "noncontig": lambda: rng.random((n, 2 * d))[:, ::2],
        "one_row": lambda: base(1), "two_rows": lambda: base(2), "all_same": lambda: np.full((n, d), 0.25),
        "offset1e6": lambda: base() + 1e6, "offset1e6_f32": lambda: (base() + 1e6).astype(np.float32),
        "big1e300": lambda: base() * 1e300, "big1e308": lambda: base() * 1.7e308,
        "tiny1e-300": lambda: base() * 1e-300, "subnormal": lambda: base() * 1e-310,
        "f32_big": lambda: (base() * 1e30).astype(np.float32), "f32_tiny": lambda: (base() * 1e-30).astype(np.float32),
        "f16_big": lambda: (base() * 6e4).astype(np.float16), "int_big": lambda: rng.integers(-2**62, 2**62, (n, d)),
        "d1": lambda: base(n, 1), "empty_rows": lambda: np.empty((0, d)), "empty_cols": lambda: np.empty((n, 0)),
        "one_d": lambda: rng.random(n), "three_d": lambda: rng.random((n, d, 2)), "scalar": lambda: 3.0,
        "none": lambda: None, "complex": lambda: base() + 1j * base(), "str": lambda: np.array([["a"] * d] * n),
        "ragged": lambda: [list(r) for r in base()[:-1]] + [[0.5] * (d + 1)], "dict": lambda: {"a": 1.0},
    }
    if kind in simple:
        return simple[kind]()
    a = base()
    if kind == "readonly":
        a.flags.writeable = False
    elif kind == "dup_one":
        a[1] = a[0]
    elif kind == "dup_half":
        a[n // 2: 2 * (n // 2)] = a[: n // 2]
    elif kind == "const_col":
        a[:, 0] = 3.0
    elif kind == "mixed_scale":
        a[:, 0] *= 1e12
    elif kind in ("nan", "torch_nan"):
        a[min(3, n - 1), d - 1] = np.nan
    elif kind == "inf":
        a[0, 0] = np.inf
    elif kind == "ninf":
        a[-1, 0] = -np.inf
    if kind.startswith("torch_"):
        conv = {"torch_f32": lambda: torch.tensor(a, dtype=torch.float32),
                "torch_f64": lambda: torch.tensor(a), "torch_bf16": lambda: torch.tensor(a, dtype=torch.bfloat16),
                "torch_f16": lambda: torch.tensor(a, dtype=torch.float16),
                "torch_int": lambda: torch.tensor(rng.integers(-1000, 1000, (n, d))),
                "torch_noncontig": lambda: torch.tensor(rng.random((n, 2 * d)))[:, ::2],
                "torch_complex": lambda: torch.tensor(a + 1j * a), "torch_nan": lambda: torch.tensor(a),
                "torch_1d": lambda: torch.tensor(rng.random(n)), "torch_empty": lambda: torch.empty((0, d))}
        return conv[kind]()
    return a


def f64(a):
    if torch is not None and isinstance(a, torch.Tensor):
        return a.detach().double().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def host(x):
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def close(a, b, rtol=1e-10):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rtol * np.abs(b) + 1e-320))


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------
class _Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise _Hang()


ALLOWED = (ValueError, TypeError, NotImplementedError, BackendUnavailableError)
IGNORED_WARNINGS = ("PurePythonWarning", "DeprecationWarning", "PendingDeprecationWarning", "ResourceWarning")
DOCUMENTED_NONFINITE = {("Regime", "upper_dimension"), ("Regime", "upper_ci"), ("Regime", "local_dimensions"),
                        ("Regime", "local_cis"),  # repgap.regime.Regime's docstring: NaN / +inf markers
                        # CalibratedTwoNN: NaN where the reference is simulated, not the shipped table
                        ("CalibratedTwoNN", "reference_se_")}
REPGAP_DIR = repgap.__file__.rsplit("/", 1)[0]
AXIS_ERROR = getattr(getattr(np, "exceptions", np), "AxisError", IndexError)


def names_in(message, names):
    names = list(names) + [w[:-1] for w in names if len(w) > 5 and w.endswith("s")]
    for w in names:
        if len(w) <= 2 or (w[0].isupper() and len(w) <= 3):
            if re.search(rf"(?<![A-Za-z0-9_]){re.escape(w)}(?![A-Za-z0-9_])", message):
                return True
        elif w.lower() in message.lower():
            return True
    return False


def nonfinite(obj, path="result", depth=0, seen=None):
    """The path of the first NaN/inf float in a result, or None."""
    seen = set() if seen is None else seen
    if depth > 5 or id(obj) in seen or obj is None or isinstance(obj, (bool, int, str, bytes, type, np.integer)):
        return None
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(obj) else f"{path}={obj!r}"
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and obj.size and not np.all(np.isfinite(obj)):
            return f"{path} (non-finite entries)"
        if obj.dtype == object:
            for j, v in enumerate(obj.ravel()[:200]):
                p = nonfinite(v, f"{path}[{j}]", depth + 1, seen)
                if p:
                    return p
        return None
    if torch is not None and isinstance(obj, torch.Tensor):
        if (obj.is_floating_point() or obj.is_complex()) and obj.numel() and not bool(obj.detach().isfinite().all()):
            return f"{path} (non-finite tensor entries)"
        return None
    seen.add(id(obj))
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))[:1000]
    elif dataclasses.is_dataclass(obj):
        items = [(f.name, getattr(obj, f.name, None)) for f in dataclasses.fields(obj)]
    elif (type(obj).__module__ or "").startswith("repgap") and not type(obj).__module__.startswith("repgap.groups"):
        attrs = vars(obj) if hasattr(obj, "__dict__") else {}
        fitted = [a for a in attrs if a.endswith("_") and not a.startswith("_")]
        items = [(a, attrs[a]) for a in (fitted or [a for a in attrs if not a.startswith("_")])]
    else:
        return None
    for key, v in items:
        if (type(obj).__name__, key) in DOCUMENTED_NONFINITE:
            continue
        p = nonfinite(v, f"{path}.{key}", depth + 1, seen)
        if p:
            return p
    return None


def run(fn, *, bad=False, names=()):
    """Call ``fn()`` under the contract; returns (result, warnings) or (None, None) after an allowed error.

    bad: the call has an invalid parameter or array; ``names`` are the words a clear message may use.
    valid: every input is valid: an allowed error type raised from inside numpy/scipy/torch is a crash.
    """
    old = signal.signal(signal.SIGALRM, _alarm) if hasattr(signal, "SIGALRM") else None
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        if old is not None:
            signal.alarm(CALL_LIMIT)
        try:
            result = fn()
        except _Hang:
            pytest.fail(f"hang: no result within {CALL_LIMIT} s")
        except ALLOWED as exc:
            if isinstance(exc, (np.linalg.LinAlgError, AXIS_ERROR)):
                raise
            msg = str(exc)
            if bad:
                assert names_in(msg, names), \
                    f"unclear message (it names none of {list(names)}): {type(exc).__name__}: {msg}"
            elif not isinstance(exc, BackendUnavailableError):
                tb = exc.__traceback__
                while tb.tb_next is not None:
                    tb = tb.tb_next
                where = tb.tb_frame.f_code.co_filename
                assert where.startswith(REPGAP_DIR) or where == __file__, \
                    f"crash: {type(exc).__name__} raised inside {where}: {msg}"
            return None, None
        finally:
            if old is not None:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old)
    warned = [w for w in wlist if w.category.__name__ not in IGNORED_WARNINGS]
    assert not bad, f"accepted nonsense: returned {str(result)[:200]}"
    p = nonfinite(result)
    assert p is None or warned, f"NaN/inf returned without a warning: {p}"
    return result, warned


def check_knn(Q, R, k, d, i, prefix=None):
    Qf, Rf = f64(Q), f64(R)
    full = ref_distances(Qf, Rf)
    if not np.all(np.isfinite(full)):
        return
    sub = full if prefix is None else full[:, prefix]
    d, i = host(d), host(i).astype(np.int64)
    want = np.sort(sub, axis=1)[:, :k]
    assert close(d, want), f"wrong distances: {d[:2]} != {want[:2]}"
    assert close(np.take_along_axis(full, i, 1), d), "indices inconsistent with the distances"
    if prefix is not None:
        assert np.isin(i, prefix).all(), "an index outside the prefix"


# ---------------------------------------------------------------------------
# strategies of cases
# ---------------------------------------------------------------------------
seeds = st.integers(0, 2**16)
SEARCH_BAD = {
    "n_jobs": [0, -2, 2.5, "2", True, NAN],
    "algorithm": ["bogus", "", 3],
    "progress": ["yes", "no", 2.5],
    "block_size": [0, -1, 2.5, "10", True, NAN],
    # a budget of 2.5 bytes is tiny, not invalid (4e9 must stay accepted): one row per tile
    "max_memory": [0, -1, "1MB", True, NAN],
    "backend": ["bogus", "", 3, ["numpy"]],
    "group": ["rotation", 3],
}
SEARCH_EDGE = {"n_jobs": [1, -1, 2, 64], "algorithm": ["auto", "brute", "kd_tree", "gemm", None],
               "progress": [False, None], "block_size": [None, 1, 7, 10**12], "max_memory": [None, 1, 1 << 20]}


@st.composite
def one_change(draw, bad_table, edge_table):
    """('valid', {}) or ('edge', {p: v}) or ('bad', {p: v}): at most one parameter away from the defaults."""
    mode = draw(st.sampled_from(["valid", "edge", "bad"]))
    if mode == "bad":
        name = draw(st.sampled_from(sorted(bad_table)))
        return "bad", name, {name: draw(st.sampled_from(bad_table[name]))}
    if mode == "edge" and edge_table:
        name = draw(st.sampled_from(sorted(edge_table)))
        return "edge", name, {name: draw(st.sampled_from(edge_table[name]))}
    return "valid", None, {}


@st.composite
def data_kind(draw, p_bad=0.3):
    if draw(st.floats(0, 1)) < p_bad:
        return "bad", draw(st.sampled_from(BAD_KINDS))
    return "edge", draw(st.sampled_from(EDGE_KINDS))


# ---------------------------------------------------------------------------
# knn, knn_checkpoints, representation_gap, gap_curve
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@FUZZ
@given(change=one_change({**SEARCH_BAD, "k": [0, -1, 2.5, "1", True, None, NAN, 10**12, 81]}, SEARCH_EDGE),
       kind=data_kind(), which=st.sampled_from(["queries", "reference"]), k=st.sampled_from([1, 3]), seed=seeds)
def test_knn(backend, change, kind, which, k, seed):
    mode, name, kw = change
    if mode != "bad" and kind[0] == "bad":
        kw = {}  # a bad array with every parameter valid: the message must be about the array
    kw = {"k": k, "backend": backend, **kw}
    arrays = {"queries": make("f64", 15, 3, seed), "reference": make("f64", 80, 3, seed + 1)}
    if mode == "bad":
        names = (name,)
    else:
        kmode, k_arr = kind
        arrays[which] = make(k_arr, 15 if which == "queries" else 80, 3, seed + 2)
        if k_arr == "d1":
            other = "reference" if which == "queries" else "queries"
            arrays[other] = make("f64", 80 if other == "reference" else 15, 1, seed + 3)
        mode = "bad" if kmode == "bad" else mode
        names = (which,) + PROBLEM.get(k_arr, ())
    res, _ = run(lambda: repgap.knn(arrays["queries"], arrays["reference"], **kw), bad=mode == "bad", names=names)
    if res is not None and nonfinite(res) is None:
        check_knn(arrays["queries"], arrays["reference"], kw["k"], *res)


CHECKPOINTS_BAD = [[], [0, 10], [-1, 10], [2.5, 80], [40, 10], [10, 10, 80], [81], [10**12], "abc", None,
                   [True, 80], [[10, 20]], [NAN, 80], 80]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@FEW
@given(mode=st.sampled_from(["valid", "bad_checkpoints", "bad_order", "bad_k", "bad_array"]),
       cps=st.sampled_from([[80], [10, 40, 80], [1, 80], [10.0, 80.0], [5, 50]]), seed=seeds,
       bad_cps=st.sampled_from(CHECKPOINTS_BAD), kind=st.sampled_from(BAD_KINDS),
       order_kind=st.sampled_from(["none", "reversed", "perm", "repeated", "short", "index_n", "index_-1", "float"]),
       k=st.sampled_from([1, 2, 0, 2.5, "1", 11]))
def test_knn_checkpoints(backend, mode, cps, seed, bad_cps, kind, order_kind, k):
    Q, R = make("f64", 12, 3, seed), make("f64", 80, 3, seed + 1)
    orders = {"none": None, "reversed": np.arange(80)[::-1].copy(), "perm": np.random.default_rng(seed).permutation(80),
              "repeated": np.r_[0, 0, np.arange(2, 80)], "short": np.arange(30), "index_n": np.r_[np.arange(1, 80), 80],
              "index_-1": np.r_[np.arange(79), -1], "float": np.arange(80) + 0.5}
    kw = {"backend": backend}
    names = ()
    if mode == "bad_checkpoints":
        cps, names = bad_cps, ("checkpoints",)
    elif mode == "bad_order":
        if order_kind in ("none", "reversed", "perm"):
            order_kind = "repeated"
        kw["order"], names = orders[order_kind], ("order",)
    elif mode == "bad_k":
        if k in (1, 2):
            k = 0
        kw["k"], names = k, ("k", "checkpoint")
    elif mode == "bad_array":
        Q, names = make(kind, 12, 3, seed), ("queries",) + PROBLEM.get(kind, ())
    else:
        kw["order"] = orders[order_kind if order_kind in ("none", "reversed", "perm") else "none"]
    res, _ = run(lambda: repgap.knn_checkpoints(Q, R, cps, **kw), bad=mode != "valid", names=names)
    if res is not None:
        order = kw.get("order")
        base = np.arange(80) if order is None else np.asarray(order)
        for j, c in enumerate(np.asarray(cps).astype(int)):
            check_knn(Q, R, kw.get("k", 1), res[0][j], res[1][j], prefix=base[:c])


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@FUZZ
@given(change=one_change({**SEARCH_BAD, "k": [0, -1, 2.5, "1", True, None, 10**12],
                          "r": [0, -1, NAN, INF, "2", True, None, 1j]},
                         {**SEARCH_EDGE, "r": [1, 0.5, 2.5, 1e-300, 1e300], "k": [2, 80]}),
       kind=data_kind(), which=st.sampled_from(["train", "test"]), seed=seeds)
def test_representation_gap(backend, change, kind, which, seed):
    mode, name, kw = change
    if mode != "bad" and kind[0] == "bad":
        kw = {}
    kw = {"backend": backend, **kw}
    arrays = {"train": make("f64", 80, 3, seed), "test": make("f64", 15, 3, seed + 1)}
    names = (name,)
    if mode != "bad":
        kmode, k_arr = kind
        if k_arr != "d1":
            arrays[which] = make(k_arr, 80 if which == "train" else 15, 3, seed + 2)
            mode = "bad" if kmode == "bad" else mode
            names = (which,) + PROBLEM.get(k_arr, ())
    res, warned = run(lambda: repgap.representation_gap(arrays["train"], arrays["test"], **kw), bad=mode == "bad",
                      names=names)
    if res is not None and not warned and nonfinite(res) is None:
        k, r = kw.get("k", 1), kw.get("r", 2)
        dk = np.sort(ref_distances(f64(arrays["test"]), f64(arrays["train"])), axis=1)[:, k - 1]
        with np.errstate(all="ignore"):
            want = float(np.mean(dk ** r))
        if math.isfinite(want):
            assert close(res.value, want, 1e-8), f"wrong gap: {res.value!r} != {want!r}"


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@FEW
@given(change=one_change({"sizes": [[0], [-1, 10], [2.5, 10], [40, 20], [10, 10], [151], [], "abc", [NAN], 0],
                          "repeats": [0, -1, 2.5, "5", True, None, NAN], "k": [0, -1, 2.5, "1", True, 10**9],
                          "r": [0, -1, NAN, INF, "2", True], "random_state": ["abc", -1, 2.5, NAN, True],
                          "train_queries": ["maybe", -1, 2.5, NAN], "backend": ["bogus", 3]},
                         {"sizes": [[1], [150], [10.0, 20.0], [10, 20, 40, 80]], "repeats": [1, 3], "k": [2, 5],
                          "random_state": [0, 2**32 - 1, np.random.default_rng(1)],
                          "train_queries": [True, 10, 0]}),
       kind=data_kind(0.2), seed=seeds)
def test_gap_curve(backend, change, kind, seed):
    mode, name, kw = change
    if mode != "bad" and kind[0] == "bad":
        kw = {}
    kw = {"backend": backend, "repeats": 2, **kw}
    train, test = make("f64", 150, 3, seed), make("f64", 15, 3, seed + 1)
    names = (name, "checkpoint") if name == "sizes" else (name,)
    if mode != "bad" and kind[1] != "d1":
        train = make(kind[1], 150, 3, seed + 2)
        mode = "bad" if kind[0] == "bad" else mode
        names = ("train",) + PROBLEM.get(kind[1], ())
    run(lambda: repgap.gap_curve(train, test, **kw), bad=mode == "bad", names=names)


# ---------------------------------------------------------------------------
# estimators and intrinsic_dimension
# ---------------------------------------------------------------------------
COMMON_BAD = {"confidence": [0, 1, 1.5, -0.1, NAN, "0.9", True, None], "random_state": ["abc", -1, 2.5, NAN, True],
              "duplicates": ["bogus", None, 1], "duplicate_tol": [-1, NAN, "1e-10", None],
              "n_jobs": [0, -2, 2.5, "2", True], "backend": ["bogus", 3], "group": ["rotation", 3]}
ESTIMATOR_BAD = {
    "TwoNN": {"method": ["bogus", None], "discard_fraction": [-0.1, 1, 2, NAN, "0.1", None],
              "n_boot": [-1, 2.5, "10", True], "calibration": ["bogus", 1], "calibration_size": [0, -1, 2.5, "100"]},
    "CalibratedTwoNN": {"discard_fraction": [-0.1, 1.5, NAN], "calibration_size": [0, -1, 2.5, "100", True]},
    "MLE": {"k1": [0, -1, 1, 2.5, "5", NAN, True, None], "k2": [0, -1, 1, 2.5, "20", None, 10**9],
            "interval": ["bogus", None]},
    "GRIDE": {"n1": [0, -1, 2.5, "1", NAN, True, 10**9], "max_n1": [0, -1, 2.5, "32", NAN, True, 10**9]},
    "CorrelationDimension": {"c_range": [(0.03, 0.001), (0, 0.5), (-0.1, 0.5), (0.1, 1.5), (0.1,), "ab", None,
                                         (NAN, 0.5), 0.1],
                             "n_bins": [0, -1, 1, 2.5, "60", True], "max_points": [0, -1, 1, 2.5, True],
                             "n_boot": [-1, 2.5, "10"]},
    "WeibullShape": {"test_size": [0, -0.1, 1.0, 1.5, NAN, "0.2", True, None, 120]},
    "GapLaw": {"test_size": [0, -0.1, 1.0, 1.5, NAN, "0.1", True, None], "repeats": [0, -1, 2.5, "5", True],
               "sizes": [[0], [-1, 10], [2.5, 10], [20, 10], "abc"], "min_size": [-1, NAN, "10"],
               "correction": ["maybe", 3], "interval": ["bogus", None], "n_boot": [-1, 2.5],
               "train_queries": ["maybe", -1, 2.5], "check_regime": ["yes", 2]},
}
ESTIMATOR_EDGE = {
    "TwoNN": {"method": ["fit"], "discard_fraction": [0.0, 0.99], "n_boot": [0, 1], "calibration": ["ball"],
              "calibration_size": [4, 10]},
    "CalibratedTwoNN": {"calibration_size": [4, 10, 500]},
    "MLE": {"k1": [2, 19], "k2": [119], "interval": ["delta", "bootstrap"], "n_boot": [0, 1]},
    "GRIDE": {"n1": [2, 16], "max_n1": [1, 4]},
    "CorrelationDimension": {"c_range": [(1e-6, 0.999), (0.01, 0.1)], "n_bins": [3, 4], "max_points": [3, 10],
                             "n_boot": [1, 2]},
    "WeibullShape": {"test_size": [1, 10, 0.99]},
    "GapLaw": {"test_size": [1, 0.9, 20], "repeats": [1], "sizes": [[5, 10], [10, 20, 40]], "min_size": [1, 10**9],
               "correction": [True, False, 2], "interval": ["bootstrap"], "train_queries": [True, False, 10],
               "check_regime": [False]},
}
NO_RANDOM_STATE, NO_DUPLICATES = {"GRIDE"}, {"CorrelationDimension"}


@st.composite
def estimator_case(draw):
    cname = draw(st.sampled_from(sorted(ESTIMATOR_BAD)))
    common = {k: v for k, v in COMMON_BAD.items()
              if not (k == "random_state" and cname in NO_RANDOM_STATE)
              and not (k.startswith("duplicate") and cname in NO_DUPLICATES)}
    mode, name, kw = draw(one_change({**common, **ESTIMATOR_BAD[cname]}, ESTIMATOR_EDGE[cname]))
    return cname, mode, name, kw


@FUZZ
@given(case=estimator_case(), kind=data_kind(0.25), backend=st.sampled_from(DRAWN_BACKENDS), seed=seeds)
def test_estimators(case, kind, backend, seed):
    cname, mode, name, kw = case
    if mode != "bad" and kind[0] == "bad":
        kw = {}
    kw = {"backend": backend, **kw}
    if cname in ("CorrelationDimension",) and "n_boot" not in kw:
        kw["n_boot"] = 5
    n = 200 if cname == "GapLaw" else 120
    X = make("f64", n, 3, seed)
    names = (name,) + (("k1",) if name == "k2" else ()) + (("checkpoint",) if name == "sizes" else ())
    if mode != "bad":
        X = make(kind[1], n, 3, seed + 1)
        mode = "bad" if kind[0] == "bad" else mode
        names = ("X",) + PROBLEM.get(kind[1], ())
    cls = getattr(repgap.estimators, cname)
    run(lambda: cls(**kw).fit(X), bad=mode == "bad", names=names)


METHODS = ["calibrated", "gap", "twonn", "mle", "gride", "corr", "weibull"]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@settings(FUZZ, max_examples=15)
@given(method=st.sampled_from(METHODS + ["bogus", "", 3, ["twonn"]]), kind=data_kind(0.3), seed=seeds,
       extra=st.sampled_from([None, "foo", "group"]))
def test_intrinsic_dimension(backend, method, kind, seed, extra):
    kw = {"method": method, "backend": backend}
    if method == "corr":
        kw["n_boot"] = 5
    bad, names = method not in METHODS, ("method",)
    if not bad and extra == "foo":
        kw["foo"], bad, names = 1, True, ("foo",)
    elif not bad and extra == "group":
        kw["group"] = repgap.groups.SignFlip()
    X = make("f64", 200, 3, seed)
    if not bad and kind[1] != "one_row":
        X = make(kind[1], 200, 3, seed + 1)
        bad, names = kind[0] == "bad", ("X",) + PROBLEM.get(kind[1], ())
    run(lambda: repgap.intrinsic_dimension(X, **kw), bad=bad, names=names)


# ---------------------------------------------------------------------------
# groups, configuration, the law, the small functions
# ---------------------------------------------------------------------------
G = repgap.groups
GROUP_CASES = [  # (constructor, args, kwargs, bad, names)
    ("Translation", (3,), {}, False, ()), ("Translation", (2,), {}, False, ()),
    ("Rotation", (3,), {}, False, ()), ("Rotation", (3, True), {}, False, ()), ("CyclicShift", (), {}, False, ()),
    ("Permutation", (2, 3), {}, False, ()), ("Permutation", (6,), {}, False, ()), ("SignFlip", (), {}, False, ()),
    ("Identity", (), {}, False, ()), ("Rotation", (1,), {}, None, ()), ("Rotation", (4,), {}, None, ()),
    ("CyclicShift", ((6,),), {}, None, ()), ("CyclicShift", ((2, 3),), {}, False, ()),
]
for _v in (0, -1, 2.5, "3", None, True, NAN, INF):
    GROUP_CASES += [("Translation", (_v,), {}, True, ("p", "Translation")),
                    ("Rotation", (_v,), {}, True, ("p", "Rotation")),
                    ("Permutation", (_v,), {}, True, ("m", "Permutation"))]
for _v in ((0,), (-1, 6), (2.5,), "ab", (3, "a"), 0, 2.5):
    GROUP_CASES.append(("CyclicShift", (_v,), {}, True, ("shape", "CyclicShift")))
for _v in ("yes", 2, None):
    GROUP_CASES += [("Rotation", (3, _v), {}, True, ("reflections",)),
                    ("CyclicShift", (None, _v), {}, True, ("reflections",))]
GROUP_CASES += [("Translation", (4,), {}, True, ("Translation", "multiple", "length", "group")),
                ("Permutation", (4, 1), {}, True, ("Permutation", "multiple", "length", "group", "m"))]
for _v in (0, -1, 2.5, "4", True, None):
    GROUP_CASES += [("Product", "TR", {"n_starts": _v}, True, ("n_starts",)),
                    ("Product", "TR", {"max_iter": _v}, True, ("max_iter",))]
GROUP_CASES += [("Product", "TR", {}, False, ()), ("Product", "TP", {}, False, ()), ("Product", "RP", {}, False, ()),
                ("Product", "TT", {}, True, ("Product", "twice", "Translation")),
                ("Product", ("a",), {}, True, ("Product", "factor", "group"))]
D6 = np.arange(6)
FINITE_CASES = [  # (label, elements, bad)
    ("cyclic", [np.roll(D6, s) for s in range(6)], False), ("+-I", [np.eye(6), -np.eye(6)], False),
    ("string", "abc", True), ("empty", [], True), ("None", None, True), ("3", 3, True),
    ("not a permutation", [D6, np.r_[0, 0, 2, 3, 4, 5]], True), ("no identity", [np.r_[1, 0, 2, 3, 4, 5]], True),
    ("not closed", [D6, np.roll(D6, 1)], True), ("2I", [np.eye(6), 2 * np.eye(6)], True),
    ("ragged", [D6, np.arange(5)], True), ("NaN", [np.full((6, 6), np.nan)], True),
    ("floats", [D6 + 0.5], True), ("out of range", [D6, np.r_[1, 2, 3, 4, 5, 6]], True),
]


def build_group(cls, args, kw):
    if cls == "Product" and isinstance(args, str):
        parts = {"T": lambda: G.Translation(3), "R": lambda: G.Rotation(3), "P": lambda: G.Permutation(2, 3)}
        args = tuple(parts[c]() for c in args)
    return getattr(G, cls)(*args, **kw)


@FUZZ
@given(case=st.sampled_from(GROUP_CASES + [("FiniteGroup", (e,), {}, b, ("elements", "FiniteGroup", "permutation",
                                                                          "orthogonal", "identity", "closed"))
                                           for _, e, b in FINITE_CASES]),
       backend=st.sampled_from(DRAWN_BACKENDS), seed=seeds)
def test_groups(case, backend, seed):
    cls, args, kw, bad, names = case
    rng = np.random.default_rng(seed)
    X, Q = rng.random((40, 6)), rng.random((6, 6))
    res, warned = run(lambda: repgap.knn(Q, X, k=2, group=build_group(cls, args, kw), backend=backend),
                      bad=bool(bad), names=names)
    if res is not None and not warned:
        d = host(res[0])
        plain = np.sort(ref_distances(Q, X), axis=1)[:, :2]
        assert np.all(d >= 0) and np.all(d <= plain * (1 + 1e-9) + 1e-12), "orbit distances above the Euclidean ones"


CONFIG_BAD = {"backend": ["bogus", "", 3], "n_jobs": [0, -2, 2.5, "2", True, NAN],
              "tile_queries": [0, -1, 2.5, "8", True, NAN, INF], "tile_reference": [0, -1, 2.5, "8", True, NAN, INF],
              "progress": ["yes", 2.5], "foo": [1]}
CONFIG_EDGE = {"backend": DRAWN_BACKENDS + [None], "n_jobs": [1, -1, None, 64], "tile_queries": [None, 1, 64, 10**6],
               "tile_reference": [None, 1, 64, 10**6], "progress": [None, False]}


@FUZZ
@given(change=one_change(CONFIG_BAD, CONFIG_EDGE), context=st.booleans(), seed=seeds)
def test_set_config(change, context, seed):
    mode, name, kw = change
    X = np.random.default_rng(seed).random((60, 3))

    def call():
        if context:
            with repgap.config_context(**kw):
                return repgap.knn(X[:10], X, k=3)
        with repgap.config_context():  # restores what set_config changes
            repgap.set_config(**kw)
            return repgap.knn(X[:10], X, k=3)

    before = repgap.get_config()
    res, _ = run(call, bad=mode == "bad", names=(name,))
    assert repgap.get_config() == before, "the configuration was not restored"
    if res is not None:
        check_knn(X[:10], X, 3, *res)


SIZES = np.array([50, 100, 200, 400, 800, 1600, 3200])
LAW_DATA = {  # name -> (sizes, gaps, bad, names)
    "arrays": (SIZES, 0.7 * SIZES ** (-2 / 3), False, ()),
    "lists": (SIZES.tolist(), (0.7 * SIZES ** (-2 / 3)).tolist(), None, ()),
    "two_points": (SIZES[:2], 0.7 * SIZES[:2] ** (-2 / 3), None, ()),
    "constant": (SIZES, np.full(7, 0.1), None, ()),
    "increasing": (SIZES, 0.7 * SIZES[::-1] ** (-2 / 3), None, ()),
    "huge_gaps": (SIZES, 1e300 * SIZES ** (-2 / 3), None, ()),
    "tiny_gaps": (SIZES, 1e-300 * SIZES ** (-2 / 3), None, ()),
    "nan_gaps": (SIZES, np.r_[0.1, np.nan, 0.05, 0.03, 0.02, 0.01, 0.005], True, ("gaps", "nan", "finite")),
    "neg_gaps": (SIZES, np.r_[0.1, -0.08, 0.05, 0.03, 0.02, 0.01, 0.005], True, ("gaps", "positive", "negative")),
    "zero_size": (np.r_[0, SIZES[1:]], 0.7 * SIZES ** (-2 / 3), True, ("sizes", "positive")),
    "one_point": (SIZES[:1], np.array([0.1]), True, ("sizes", "points", "at least")),
    "mismatch": (SIZES, np.ones(6) * 0.1, True, ("gaps", "sizes", "length", "match")),
    "gaps_none": (SIZES, None, True, ("gaps",)),
    "string": ("abc", np.ones(7), True, ("curve_or_sizes", "sizes")),
    "complex": (SIZES, 0.7 * SIZES ** (-2 / 3) + 1j, True, ("gaps", "complex", "real")),
}
LAW_BAD = {"correction": ["maybe", 3, NAN], "offset": ["yes", 2, NAN], "r": [0, -1, NAN, INF, "2", True],
           "min_size": [-1, NAN, "10", True], "confidence": [0, 1, 1.5, NAN, "0.9", True, None],
           "n_boot": [-1, 2.5, "10", NAN, True, None], "random_state": ["abc", -1, 2.5], "progress": ["yes", 2.5]}
LAW_EDGE = {"correction": [True, False, 2], "offset": [True], "r": [1.0, 2], "min_size": [100, 10**9],
            "confidence": [0.5], "n_boot": [0, 1, 20]}


@FUZZ
@given(data=st.sampled_from(sorted(LAW_DATA)), change=one_change(LAW_BAD, LAW_EDGE))
def test_fit_law(data, change):
    mode, name, kw = change
    kw = {"n_boot": 20, **kw}
    sizes, gaps, bad, names = LAW_DATA[data]
    if bad and mode != "bad":
        kw = {"n_boot": 20}
    if mode == "bad":
        sizes, gaps, bad, names = (*LAW_DATA["arrays"][:2], True, (name,))
    run(lambda: repgap.fit_law(sizes, gaps, **kw), bad=bool(bad), names=names)


SMALL_CASES = [  # (function, args, kwargs, bad, names)
    ("predicted_gap", (1000, 3), {}, False, ()), ("predicted_gap", (np.array([10, 100]), 2.5), {}, False, ()),
    ("predicted_gap", (1000, 1e-3), {}, None, ()), ("predicted_gap", (1e300, 3), {}, None, ()),
    ("default_sizes", (1000,), {}, False, ()), ("default_sizes", (1000,), {"smallest": 5000}, None, ()),
    ("id_vs_scale", ("X",), {"method": "mle", "k_max": 8}, False, ()), ("id_vs_scale", ("X",), {}, False, ()),
]
for _v in (0, -1, NAN, INF, "3", None):
    SMALL_CASES += [("predicted_gap", (1000, _v), {}, True, ("d",)), ("predicted_gap", (_v, 3), {}, True, ("n",))]
for _name, _vals in {"volume": [0, -1, NAN, INF, "1"], "density_integral": [0, -1, NAN, "1"],
                     "group_order": [0, -1, 2.5, NAN, "2", True], "k": [0, -1, 2.5, NAN, "1", True],
                     "r": [0, -1, NAN, INF, "2", True]}.items():
    SMALL_CASES += [("predicted_gap", (1000, 3), {_name: _v}, True, (_name,)) for _v in _vals]
SMALL_CASES += [("default_sizes", (_v,), {}, True, ("n",)) for _v in (0, -1, 2.5, NAN, "100", None, True)]
SMALL_CASES += [("default_sizes", (1000,), {_name: _v}, True, (_name,))
                for _name in ("n_sizes", "smallest") for _v in (0, -1, 2.5, "5", True, None)]
SMALL_CASES += [("id_vs_scale", ("X",), {"method": _v}, True, ("method",)) for _v in ("bogus", None, 3)]
SMALL_CASES += [("id_vs_scale", ("X",), {"method": "mle", "k_max": _v}, True, ("k_max",))
                for _v in (0, 1, -1, 2.5, "8", 10**9)]
SMALL_CASES += [("id_vs_scale", ("X",), {"method": _m, "foo": 1}, True, ("foo",)) for _m in ("mle", "gride")]


@FUZZ
@given(case=st.sampled_from(SMALL_CASES), seed=seeds)
def test_small_functions(case, seed):
    func, args, kw, bad, names = case
    X = np.random.default_rng(seed).random((200, 3))
    args = tuple(X if isinstance(a, str) and a == "X" else a for a in args)
    run(lambda: getattr(repgap, func)(*args, **kw), bad=bool(bad), names=names)


# ---------------------------------------------------------------------------
# diffusion
# ---------------------------------------------------------------------------
SIGMA_BAD = [0, -1, NAN, INF, "0.1", None, [], [0.1, -1], True, 1j]
SIGMA_EDGE = [0.1, 1e-300, 1e300, [0.1, 0.01], 1e-8]
FINITE_GROUPS = [None, "SignFlip", "CyclicShift", "Permutation"]


@FUZZ
@given(func=st.sampled_from(["empirical_denoiser", "denoising_gap", "memorization", "MemorizationMeter"]),
       mode=st.sampled_from(["valid", "edge", "bad_param", "bad_array"]), sigma=st.sampled_from(SIGMA_EDGE),
       bad_sigma=st.sampled_from(SIGMA_BAD), kind=st.sampled_from(EDGE_KINDS), bad_kind=st.sampled_from(BAD_KINDS),
       group=st.sampled_from(FINITE_GROUPS), bad_ratio=st.sampled_from([0, -0.1, 1.5, NAN, INF, "0.3", None, True]),
       bad_int=st.sampled_from([0, -1, 2.5, "4", True, NAN]), backend=st.sampled_from(DRAWN_BACKENDS),
       which=st.sampled_from([0, 1]), seed=seeds)
def test_diffusion(func, mode, sigma, bad_sigma, kind, bad_kind, group, bad_ratio, bad_int, backend, which, seed):
    D = repgap.diffusion
    a, b = make("f64", 80, 3, seed), make("f64", 10, 3, seed + 1)  # train-like, queries-like
    arg_names = {"empirical_denoiser": ("train", "y"), "denoising_gap": ("train", "test"),
                 "memorization": ("train", "samples"), "MemorizationMeter": ("train", "batch")}[func]
    g = None if group is None else (G.Permutation(3) if group == "Permutation" else getattr(G, group)())
    kw, names = {}, ()
    if mode != "edge":
        sigma = 0.1  # borderline noise levels only with valid arrays and parameters
    if mode == "edge" and kind != "d1":
        if which == 0:
            a = make(kind, 80, 3, seed + 2)
        else:
            b = make(kind, 10, 3, seed + 2)
    if mode == "bad_array":
        names = (arg_names[which],) + PROBLEM.get(bad_kind, ())
        if which == 0:
            a = make(bad_kind, 80, 3, seed + 2)
        else:
            b = make(bad_kind, 10, 3, seed + 2)
    if func == "empirical_denoiser":
        s = sigma
        if mode == "bad_param":
            if which == 0:
                s, names = bad_sigma, ("sigma",)
            else:
                kw["max_memory"], names = bad_int, ("max_memory",)
        call = lambda: D.empirical_denoiser(a, b, s, group=g, **kw)  # noqa: E731
    elif func == "denoising_gap":
        s = sigma
        if mode == "bad_param":
            if which == 0:
                s, names = bad_sigma, ("sigmas",)
            else:
                kw["n_noise"], names = bad_int, ("n_noise",)
        call = lambda: D.denoising_gap(a, b, s, group=g, backend=backend, random_state=0, **kw)  # noqa: E731
    else:
        if mode == "bad_param":
            if which == 0:
                kw["ratio"], names = bad_ratio, ("ratio",)
            else:
                kw["group"], names = Rotation_or_str(seed), ("group",)
        kw.setdefault("group", g)
        if func == "memorization":
            call = lambda: D.memorization(b, a, backend=backend, **kw)  # noqa: E731
        else:
            def call():
                m = D.MemorizationMeter(a, backend=backend, **kw)
                m.update(b)
                m.update(b)
                return m.compute()
    res, warned = run(call, bad=mode.startswith("bad"), names=names)
    if res is not None and func == "empirical_denoiser" and g is None and not warned:
        T, out = f64(a), host(res)
        lo, hi = T.min(axis=0), T.max(axis=0)
        tol = np.maximum(hi - lo, np.abs(hi)) * 1e-9
        assert np.all(out >= lo - tol) and np.all(out <= hi + tol), "denoised points outside the training box"
    if res is not None and func in ("memorization", "MemorizationMeter"):
        assert 0 <= res.fraction_memorized <= 1


def Rotation_or_str(seed):
    return "rotation" if seed % 2 else 3
