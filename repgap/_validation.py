"""Input checks shared by every public function.

Arrays are never modified and never copied when they are already usable:
float32 and float64 stay as they are (C- or F-ordered, read-only or memory
mapped); integers and booleans become float64, float16 becomes float32.
"""
import numbers

import numpy as np

_FINITE_CHUNK = 1 << 16  # rows checked at a time: bounded temporary memory


def _to_numpy(X, name):
    if hasattr(X, "detach") and hasattr(X, "cpu") and type(X).__module__.startswith("torch"):
        X = X.detach().cpu().numpy()
    elif hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError(f"{name}: sparse matrices are not supported; pass a dense array")
    elif hasattr(X, "compute") and hasattr(X, "chunks") and type(X).__module__.startswith("dask"):
        raise TypeError(f"{name}: dask arrays are not supported yet; call .compute() first")
    return np.asarray(X)


def check_array(X, name="X"):
    """Validate a 2-D data array; returns a float32 or float64 ndarray view."""
    if X is None:
        raise TypeError(f"{name} is None; expected a 2-D array of shape (n_samples, n_features)")
    X = _to_numpy(X, name)
    if X.dtype == object or X.dtype.kind in "USVMmOc":
        raise TypeError(f"{name} has dtype {X.dtype}; expected real numbers (float32, float64 or integers)")
    if X.ndim != 2:
        hint = " (use X.reshape(-1, 1) for one feature)" if X.ndim == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got {X.ndim}-D with shape {X.shape}{hint}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {X.shape})")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has 0 features (shape {X.shape})")
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
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    if k > n_reference:
        raise ValueError(f"{name}={k} is larger than {what}, which has {n_reference} samples")
    return k


def check_power(r):
    if isinstance(r, bool) or not isinstance(r, numbers.Real) or not np.isfinite(r) or r <= 0:
        raise ValueError(f"r must be a positive finite number, got {r!r}")
    return float(r)


def check_checkpoints(checkpoints, n, k):
    """Increasing prefix sizes between k and n."""
    c = np.asarray(checkpoints)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"checkpoint sizes must be a non-empty 1-D sequence, got shape {c.shape}")
    if c.dtype.kind == "f":
        if not np.all(np.isfinite(c)) or np.any(c != np.round(c)):
            raise ValueError(f"checkpoint sizes must be integers, got {c.tolist()}")
    elif c.dtype.kind not in "iu":
        raise TypeError(f"checkpoint sizes must be integers, got dtype {c.dtype}")
    c = c.astype(np.int64)
    if np.any(np.diff(c) <= 0):
        raise ValueError(f"checkpoint sizes must be strictly increasing, got {c.tolist()}")
    if c[0] < k:
        raise ValueError(f"the smallest checkpoint size ({c[0]}) is smaller than k={k}")
    if c[-1] > n:
        raise ValueError(f"the largest checkpoint size ({c[-1]}) is larger than the training set ({n} samples)")
    return c


def check_order(order, n):
    o = np.asarray(order)
    if o.ndim != 1 or o.dtype.kind not in "iu":
        raise ValueError(f"order must be a 1-D integer array, got dtype {o.dtype} and shape {o.shape}")
    o = o.astype(np.int64, copy=False)
    if o.size > n or (o.size and (o.min() < 0 or o.max() >= n)):
        raise ValueError(f"order must index the {n} reference rows")
    if np.unique(o).size != o.size:
        raise ValueError("order must not repeat a reference row")
    return o


def check_random_state(seed):
    """A numpy Generator from None, an int, a SeedSequence or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    raise TypeError(f"random_state must be None, an int or a numpy Generator, got {seed!r}")


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
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number{rng}, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be a finite number{rng}, got {value:g}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be a finite number{rng}, got {value:g}")
    return value


def check_choice(value, name, choices):
    """One of a fixed set of strings."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {_describe(value)}")
    return value


def _range_text(low, high, low_open=False, high_open=False):
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
