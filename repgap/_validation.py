"""Input checks shared by every public function.

Arrays are never modified and never copied when they are already usable:
float32 and float64 stay as they are (C- or F-ordered, read-only or memory
mapped); integers and booleans become float64, float16 becomes float32.
"""
import numbers

import numpy as np

from ._arrays import is_dask_array, is_tensor

_FINITE_CHUNK = 1 << 16  # rows checked at a time: bounded temporary memory


class ComplexDataError(TypeError, ValueError):
    """Complex input: a TypeError (the wrong kind of number) that is also the
    ValueError scikit-learn's estimator checks expect."""


def _complex_error(name, dtype):
    return ComplexDataError(f"{name} has dtype {dtype}: Complex data not supported; expected real numbers "
                            "(float32, float64 or integers)")


def _to_numpy(X, name):
    if is_tensor(X) and hasattr(X, "detach"):
        X = X.detach()
        if X.is_complex():
            raise _complex_error(name, X.dtype)
        if str(X.dtype) in ("torch.bfloat16", "torch.float16"):
            # numpy has no bfloat16: both half types widen to float32 exactly
            import torch

            X = X.to(torch.float32)
        X = X.cpu().numpy()
    elif hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError(f"{name}: sparse matrices are not supported; pass a dense array")
    elif is_dask_array(X):
        raise TypeError(f"{name}: dask arrays are not supported yet; call .compute() first")
    try:
        return np.asarray(X)
    except (TypeError, ValueError) as exc:  # ragged nested sequences, objects numpy cannot read
        raise ValueError(f"{name} cannot be read as an array of numbers ({exc}); pass a rectangular "
                         "array-like") from None


def check_array(X, name="X"):
    """Validate a 2-D data array; returns a float32 or float64 ndarray view."""
    if X is None:
        raise TypeError(f"{name} is None; expected a 2-D array of shape (n_samples, n_features)")
    X = _to_numpy(X, name)
    if X.dtype == object:
        # an object array of numbers (what pandas gives for mixed columns) is
        # read as float64, as scikit-learn does; anything else is refused
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} has dtype object and not every entry is a number: {exc}") from None
    if X.dtype.kind == "c":
        raise _complex_error(name, X.dtype)
    if X.dtype.kind in "USVMmO":
        raise TypeError(f"{name} has dtype {X.dtype}; expected real numbers (float32, float64 or integers)")
    if X.ndim != 2:
        hint = " (use X.reshape(-1, 1) for one feature)" if X.ndim == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got {X.ndim}-D with shape {X.shape}{hint}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {X.shape})")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.dtype.kind in "iub":
        X = X.astype(np.float64)
    elif X.dtype == np.float16:
        X = X.astype(np.float32)
    elif X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    check_finite(X, name)
    return X


def check_finite(X, name):
    """Raise a ValueError that counts the rows holding NaN or inf and names the first."""
    n = X.shape[0]
    # fast path: a sum is finite only if every term is (NaN and inf
    # propagate); a finite sum proves the array clean in one read, without
    # the row-wise boolean temporaries. A sum that overflows (or hides
    # nothing) is not finite: the exact row-wise check below decides.
    with np.errstate(over="ignore", invalid="ignore"):
        if X.size == 0 or np.isfinite(np.add.reduce(X, axis=None)):
            return
    bad_rows = 0
    first = None
    for start in range(0, n, _FINITE_CHUNK):
        block = X[start : start + _FINITE_CHUNK]
        ok = np.isfinite(block).all(axis=1)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            bad_rows += bad.size
            if first is None:
                first = start + int(bad[0])
    if bad_rows:
        row = X[first]
        kind = "NaN" if np.isnan(row).any() else "infinite"
        raise ValueError(
            f"{name} contains NaN or infinite values in {bad_rows} row(s) of {n}; "
            f"the first is row {first} ({kind}). Remove or impute them first."
        )


def check_pair(queries, reference, qname="queries", rname="reference"):
    """Validate two data sets with the same features and a common dtype."""
    Q = check_array(queries, qname)
    R = check_array(reference, rname)
    if Q.shape[1] != R.shape[1]:
        raise ValueError(
            f"{qname} has {Q.shape[1]} features but {rname} has {R.shape[1]}; they must match"
        )
    if Q.dtype != R.dtype:
        # Mixed precision: compute in float64 (the smaller set is the one upcast
        # in the usual case of few queries; both are needed in float64 anyway).
        Q = Q.astype(np.float64, copy=False)
        R = R.astype(np.float64, copy=False)
    return Q, R


def check_k(k, n_reference, name="k", what="the reference set"):
    """The number of neighbours: an integer in [1, n_reference] (``n_reference``
    None: only its type and ``k >= 1``, before the data are read)."""
    rng = f" (1 <= {name} <= {n_reference})" if n_reference is not None else ""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer{rng}, got {_describe(k)}")
    k = int(k)
    if k < 1:
        raise ValueError(f"{name} must be >= 1{rng}, got {k}")
    if n_reference is not None and k > n_reference:
        raise ValueError(f"{name}={k} is larger than {what}, which has {n_reference} samples; "
                         f"use 1 <= {name} <= {n_reference}")
    return k


def check_power(r, name="r"):
    """The exponent of a gap: a positive finite real number."""
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, numbers.Real):
        raise TypeError(f"{name} must be a positive finite number, got {_describe(r)}")
    r = float(r)
    if not np.isfinite(r) or r <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {r!r}")
    return r


def check_checkpoints(checkpoints, n, k, name="checkpoint sizes", what="the training set"):
    """Increasing prefix sizes between k and n (integers; floats only with integral values)."""
    if isinstance(checkpoints, (str, bytes, dict, set)) or checkpoints is None:
        raise TypeError(f"{name} must be a non-empty increasing sequence of integers in [{k}, {n}], "
                        f"got {_describe(checkpoints)}")
    if isinstance(checkpoints, (list, tuple)) and any(isinstance(c, (bool, np.bool_)) for c in checkpoints):
        raise TypeError(f"{name} must be integers, got booleans in {list(checkpoints)!r}")
    try:
        c = np.asarray(checkpoints)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a non-empty increasing sequence of integers in [{k}, {n}], "
                        f"got {_describe(checkpoints)} ({exc})") from None
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of integers in [{k}, {n}], "
                         f"got {_short(c)} of shape {c.shape}")
    if c.dtype == object and c.ndim == 1 and all(isinstance(v, numbers.Integral) for v in c):
        if max(c) > n:  # Python integers beyond int64
            raise ValueError(f"the largest of {name} ({max(c)}) is larger than {what} ({n} samples); "
                             f"use sizes in [{k}, {n}]")
        if min(c) < k:
            raise ValueError(f"the smallest of {name} ({min(c)}) is smaller than k={k}; use sizes in [{k}, {n}]")
        c = c.astype(np.int64)
    if c.dtype.kind == "f":
        if not np.all(np.isfinite(c)):
            raise ValueError(f"{name} must be finite integers in [{k}, {n}], got {_short(c)}")
        if np.any(c != np.round(c)):
            raise ValueError(f"{name} must be integers in [{k}, {n}], got the non-integral {_short(c)}")
    elif c.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers in [{k}, {n}], got dtype {c.dtype} ({_short(c)})")
    # the range first, in the given dtype: a huge value must not wrap around in int64
    if c.max() > n:
        raise ValueError(f"the largest of {name} ({_num(c.max())}) is larger than {what} ({n} samples); "
                         f"use sizes in [{k}, {n}]")
    if c.min() < k:
        raise ValueError(f"the smallest of {name} ({_num(c.min())}) is smaller than k={k}; use sizes in [{k}, {n}]")
    c = c.astype(np.int64)
    if np.any(np.diff(c) <= 0):
        raise ValueError(f"{name} must be strictly increasing, got {_short(c)}")
    return c


def _num(x):
    x = x.item() if hasattr(x, "item") else x
    return int(x) if float(x).is_integer() else x


def _short(a, limit=10):
    """A list for a message, shortened when long."""
    v = np.asarray(a).ravel().tolist()
    return repr(v) if len(v) <= limit else repr(v[:limit])[:-1] + f", ... ({len(v)} values)]"


def check_order(order, n):
    """An ordering of (some of) the n reference rows: distinct integers in [0, n)."""
    try:
        o = np.asarray(order)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"order must be a 1-D array of distinct integers in [0, {n - 1}], got {_describe(order)} "
                        f"({exc})") from None
    if o.dtype.kind not in "iu":
        raise TypeError(f"order must be a 1-D array of distinct integers in [0, {n - 1}], got dtype {o.dtype}")
    if o.ndim != 1:
        raise ValueError(f"order must be a 1-D array of distinct integers in [0, {n - 1}], got shape {o.shape}")
    if o.size > n or (o.size and (o.min() < 0 or o.max() >= n)):
        bad = o.min() if o.size and o.min() < 0 else (o.max() if o.size else None)
        detail = f"it holds {int(bad)}" if o.size <= n else f"it has {o.size} entries"
        raise ValueError(f"order must index the {n} reference rows (distinct integers in [0, {n - 1}]); {detail}")
    o = o.astype(np.int64, copy=False)
    if np.unique(o).size != o.size:
        raise ValueError("order must not repeat a reference row")
    return o


def check_random_state(seed, name="random_state"):
    """A numpy Generator from None, a non-negative int, a SeedSequence, a RandomState or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"{name} must be None, a non-negative integer or a numpy Generator, got {int(seed)}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"{name} must be None, a non-negative integer or a numpy Generator, got {_describe(seed)}")


def check_seed(seed, name="random_state"):
    """:func:`check_random_state`'s checks, without drawing from ``seed``: returns it unchanged."""
    if not isinstance(seed, (np.random.Generator, np.random.RandomState, np.random.SeedSequence, type(None))):
        check_random_state(seed, name)
    return seed


def as_float64(x, name):
    """An array-like (numpy, torch, nested lists) as a float64 ndarray: real
    numbers only (complex, strings and objects are refused with a message)."""
    x = _to_numpy(x, name)
    if x.dtype == object or x.dtype.kind in "USVMmOc":
        raise TypeError(f"{name} has dtype {x.dtype}; expected real numbers")
    return np.asarray(x, dtype=np.float64)


def check_bool(value, name, allow_none=False):
    """A boolean flag (numpy booleans too); 0, 1 and strings are refused."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        allowed = "True, False or None" if allow_none else "True or False"
        raise TypeError(f"{name} must be {allowed}, got {_describe(value)}")
    return bool(value)


# --------------------------------------------------------------------------- parameters
# One wording for every constructor and option: the message names the
# parameter, shows the value it got and says what is allowed, so that a user
# never has to read a traceback to find which argument was wrong.
def _describe(value):
    return f"{value!r} ({type(value).__name__})" if not isinstance(value, (int, float, str)) else repr(value)


def check_int(value, name, low=None, high=None, allow_none=False):
    """An integer parameter in ``[low, high]``; floats with an integral value are refused too.

    ``2.5`` is not silently truncated to 2: a non-integral value is an error
    that names the parameter.
    """
    if value is None and allow_none:
        return None
    rng = _range_text(low, high)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer{rng}, got {_describe(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{rng}, got {value}")
    return value


def check_real(value, name, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    """A finite real parameter in the interval given (open or closed at each end)."""
    if value is None and allow_none:
        return None
    rng = _range_text(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number{rng}, got {_describe(value)}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name} must be a finite number{rng}, got an integer of {len(str(value))} digits") from None
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number{rng}, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be a finite number{rng}, got {value:g}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be a finite number{rng}, got {value:g}")
    return value


def check_choice(value, name, choices):
    """One of a fixed set of strings."""
    try:
        known = any(value is c or (isinstance(value, type(c)) and isinstance(value, bool) == isinstance(c, bool)
                                   and bool(value == c)) for c in choices)
    except (TypeError, ValueError):  # arrays and other values without a plain ==
        known = False
    if not known:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {_describe(value)}")
    return value


def _fmt(x):
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _range_text(low, high, low_open=False, high_open=False):
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {_fmt(low)}"
    if low is None:
        return f" {'<' if high_open else '<='} {_fmt(high)}"
    return f" in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"


def real_values(value, name, allowed):
    """``value`` as a float64 array of real numbers, or a TypeError naming ``name``:
    strings and booleans are refused, as are ragged sequences and non-real dtypes.
    Range and shape checks are the caller's (``allowed`` words the whole rule)."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged or otherwise unreadable
        raise TypeError(f"{name} must be {allowed}, got {value!r}") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be {allowed}, got {value!r} (dtype {arr.dtype})")
    return arr.astype(np.float64)
