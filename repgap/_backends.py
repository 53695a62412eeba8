"""Backend registry, resolution and the choice of algorithm.

Resolution order of the backend: the ``backend=`` argument, then
``config_context``/``set_config``, then the ``REPGAP_BACKEND`` environment
variable, then ``"auto"``. An explicit request for a backend that is not
available raises :class:`BackendUnavailableError` naming what is missing; only
``"auto"`` falls back (cython, then numpy).

Choice of algorithm (``algorithm="auto"``), from the measurements in
``benchmarks/README.md`` (2 cores, AVX-512):

* ``kd_tree`` when ``n_features <= KD_TREE_MAX_DIM`` (6): a k-d tree query is
  O(log n) there, while brute force is O(n); at D = 16 the tree is already
  15x slower than brute force (uniform data, n = 1e5).
* ``kd_tree`` on principal-axis coordinates when ``n_features`` is larger
  but the data have a low *linear* rank (at most ``KD_TREE_MAX_DIM``
  directions carry them: a low-dimensional manifold linearly embedded in
  R^D): the tree then splits along those directions. Measured on a 5-D
  cube embedded in R^20, n = 1e5: 0.55 s rotated, 0.96 s on the raw
  coordinates, 2.8 s brute force. The rank test (an SVD of at most 4096
  evenly spaced rows) only decides the speed, never the result.
* otherwise brute force: ``fused`` (the register-blocked expansion kernel with
  the selection fused in) for float32, and ``gemm`` (BLAS dgemm tiles) for
  float64 from ``GEMM_MIN_DIM_F64`` features on, ``direct`` below. float32
  from ``GEMM_MIN_DIM_F32`` features on takes ``gemm`` too where the CPU
  lacks AVX-512 (the fused kernel's sliced form for large D): on an AVX2
  EPYC (Zen 3), 3e4 x 3e3, k = 1, 2 threads, medians of 3, fused / gemm:
  0.246 / 0.307 s at D = 128, 0.695 / 0.591 at 256, 0.994 / 0.883 at 512,
  1.996 / 1.501 at 784 (benchmarks/README.md, session 15).
"""
import importlib
import os
import warnings

#: The backend registry: name -> (kernel module, compiled?). Adding a backend
#: is one entry here and one kernel module implementing ``knn_prefix`` (the
#: interface of :mod:`repgap._kernels_numpy`) and, optionally, ``available()``
#: (False where its dependency is missing), ``UNAVAILABLE`` (why),
#: ``describe()`` (a line for :func:`repgap.show_config`), ``ALGORITHMS``,
#: ``brute_algorithm(dtype, n_features)``, ``CAPABILITIES`` (see
#: :func:`capability`) and ``TENSORS`` (its arrays, which ``auto`` sends to it).
#: ``auto`` takes the compiled backend when it is available, else the first
#: other one that is not for tensors only (``TENSORS``): numpy.
REGISTRY = {
    "numpy": ("repgap._kernels_numpy", False),
    "cython": ("repgap._kernels_cython", True),
    "torch": ("repgap._kernels_torch", False),
}
BACKENDS = tuple(REGISTRY)  # the names, at import (the registry itself is what is read)
ALGORITHMS = ("auto", "kd_tree", "brute", "direct", "fused", "gemm")
KD_TREE_MAX_DIM = 6
GEMM_MIN_DIM_F64 = 32
GEMM_MIN_DIM_F32 = 256  # without the sliced fused kernel (AVX-512)

_cython_module = None
_cython_error = None


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot be used here."""


class PurePythonWarning(UserWarning):
    """The compiled extension is missing: repgap runs on its pure-Python (numpy) backend."""


def force_pure_python():
    """True when REPGAP_PURE_PYTHON=1: the compiled kernels are never imported."""
    return os.environ.get("REPGAP_PURE_PYTHON", "0").strip() == "1"


def _load_cython():
    global _cython_module, _cython_error
    if _cython_module is None and _cython_error is None:
        if force_pure_python():
            _cython_error = "disabled by REPGAP_PURE_PYTHON=1"
        else:
            try:
                _cython_module = importlib.import_module("repgap._kernels_cython")
            except ImportError as exc:
                _cython_error = (
                    f"the compiled extension repgap._kernels_cython is not installed ({exc}); "
                    "reinstall with a C++ compiler (pip install --force-reinstall --no-binary repgap repgap)"
                )
                # once per process (the result is cached); not when pure Python was asked for
                warnings.warn(f"repgap runs on its pure-Python backend (numpy): {_cython_error}. "
                              "Set REPGAP_PURE_PYTHON=1 to choose this and silence the warning.",
                              PurePythonWarning, stacklevel=3)
    return _cython_module


def _load(name):
    """(module, None) for an available backend, else (None, why)."""
    modname, compiled = REGISTRY[name]
    if compiled:  # the one compiled extension (its loader honours REPGAP_PURE_PYTHON)
        mod = _load_cython()
        return (mod, None) if mod is not None else (None, _cython_error)
    try:
        mod = importlib.import_module(modname)
    except ImportError as exc:
        return None, f"{modname} cannot be imported ({exc})"
    if not getattr(mod, "available", lambda: True)():
        return None, getattr(mod, "UNAVAILABLE", f"{name} is not available")
    return mod, None


def backend_status():
    """{name: (available, detail)} for every backend."""
    out = {}
    for name in REGISTRY:
        mod, why = _load(name)
        out[name] = (True, getattr(mod, "describe", lambda: name)()) if mod is not None else (False, why)
    return out


def available_backends():
    """Names of the backends that work in this installation."""
    return [name for name, (ok, _) in backend_status().items() if ok]


def check_backend_name(name):
    choices = ", ".join(map(repr, ("auto",) + tuple(REGISTRY)))
    if not isinstance(name, str):
        raise TypeError(f"backend must be one of {choices} or None, got {name!r} ({type(name).__name__})")
    if name != "auto" and name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}: backend must be one of {choices} (or None for the configured default)")
    return name


def check_algorithm(algorithm):
    """One of :data:`ALGORITHMS`, or an error naming the value."""
    choices = ", ".join(map(repr, ALGORITHMS))
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be one of {choices}, got {algorithm!r} ({type(algorithm).__name__})")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {choices}")
    return algorithm


def resolve_backend(backend=None):
    """The backend name to use, following the documented resolution order."""
    from ._config import get_config

    source = "argument"
    if backend is None:
        backend, source = get_config()["backend"], "set_config"
    if backend is None:
        env = os.environ.get("REPGAP_BACKEND", "").strip()
        backend, source = (env, "REPGAP_BACKEND") if env else ("auto", "default")
    try:
        check_backend_name(backend)
    except ValueError as exc:
        raise ValueError(f"{exc} (from {source})") from None
    if backend == "auto":
        # the compiled backend if available, else the first that takes arrays
        for name in sorted(REGISTRY, key=lambda b: not REGISTRY[b][1]):
            mod = _load(name)[0]
            if mod is not None and not getattr(mod, "TENSORS", False):
                return name
        return "numpy"
    mod, why = _load(backend)
    if mod is None:
        raise BackendUnavailableError(f"backend {backend!r} was requested ({source}) but is not available: {why}")
    return backend


def resolve_backend_for_tensors(backend=None):
    """As :func:`resolve_backend`, for torch-tensor inputs: ``auto`` means torch
    (an explicit ``backend="auto"`` argument too: the argument wins over the
    configuration)."""
    if backend == "auto":
        return "torch"
    name = resolve_backend(backend) if backend is not None else None
    if name is None:
        from ._config import get_config

        cfg = get_config()["backend"]
        env = os.environ.get("REPGAP_BACKEND", "").strip()
        explicit = cfg if cfg not in (None, "auto") else (env if env not in ("", "auto") else None)
        name = resolve_backend(explicit) if explicit else "torch"
    return name


def kernels(backend):
    """The module that implements ``knn_prefix`` for a resolved backend."""
    if backend == "cython":
        return _load_cython()
    return importlib.import_module(REGISTRY[backend][0])


#: what a kernel module may declare in ``CAPABILITIES``, and the default
CAPABILITY_DEFAULTS = {
    "kd_tree": True,               # implements algorithm="kd_tree"
    "kd_tree_box_dims": False,     # its k-d tree takes options={"box_dims": r} (principal axes)
    "kd_tree_canonical": False,    # its k-d tree's distances are the exact primitive's bits (else recomputed)
    "nn1_sweep_max_dim": 0,        # k = 1 float32 up to this many features: a sweep that wants 2 candidates
    "runner_up_bound": False,      # ... and may return a bound on every other row as the second distance
    "orbit_refine": False,         # implements orbit_refine(Q, R, cand, spec) for Group.kernel_spec
    # the spare candidates the certified engine asks of the kernel (None: the
    # kernel's default). The certificate checks every answer against the
    # returned candidates' bound and searches again where it fails, so a
    # kernel whose candidate values follow the engine's error model needs
    # none: each spare candidate is kept, recomputed in float64 and sorted for
    # every query (repgap._search.plan._runner)
    "certified_spare": None,
}
def capability(backend, name):
    """A resolved backend's declared capability ``name`` (:data:`CAPABILITY_DEFAULTS`)."""
    mod = kernels(backend)
    return getattr(mod, "CAPABILITIES", {}).get(name, CAPABILITY_DEFAULTS[name])


def use_kd_tree(n_features, n_reference, k):
    """Pure predicate: is the k-d tree the faster exact path for this problem?"""
    return n_features <= KD_TREE_MAX_DIM and k <= 64 and n_reference >= 64


ROTATED_KD_TREE_MAX_DIM = 128
ROTATED_KD_TREE_MIN_N = 20000
_RANK_SAMPLE = 4096
_RANK_RTOL = 1e-5  # singular values below this fraction of the largest: noise of float32 storage


def use_rotated_kd_tree(n_features, n_reference, k):
    """Pure predicate: is it worth testing the data for a low linear rank?"""
    return (KD_TREE_MAX_DIM < n_features <= ROTATED_KD_TREE_MAX_DIM and k <= 64
            and n_reference >= ROTATED_KD_TREE_MIN_N)


def low_rank_rotation(R):
    """``(center, V, r)`` with V the principal axes (rows, by decreasing
    variance) of an evenly spaced sample of R and r the number of them that
    carry the data, when r <= KD_TREE_MAX_DIM, else None."""
    import numpy as np

    step = max(1, R.shape[0] // _RANK_SAMPLE)
    S = np.asarray(R[::step][:_RANK_SAMPLE], dtype=np.float64)
    center = S.mean(axis=0)
    S = S - center
    w, V = np.linalg.eigh(S.T @ S)  # D x D: cheap next to an SVD of the sample
    w, V = w[::-1], V[:, ::-1]
    sv = np.sqrt(np.maximum(w, 0.0))
    # the noise floor: a fraction of the largest singular value, or the
    # rounding of the stored values (float32 far from the origin)
    eps = np.finfo(R.dtype).eps if R.dtype.kind == "f" else 0.0
    floor = max(_RANK_RTOL * sv[0] if sv.size else 0.0,
                16 * eps * float(np.max(np.abs(center))) * np.sqrt(S.shape[0]))
    r = int(np.sum(sv > floor))
    if sv.size == 0 or sv[0] == 0 or r > KD_TREE_MAX_DIM:
        return None
    return center, np.ascontiguousarray(V.T), max(r, 1)


def check_kd_tree(algorithm, backend):
    """An explicit k-d tree request on a backend without one: an error naming it."""
    if algorithm == "kd_tree" and backend in REGISTRY and not capability(backend, "kd_tree"):
        raise ValueError(f"algorithm 'kd_tree' is not available on the {backend} backend; use algorithm='auto' or "
                         "'brute', or another backend")


def choose_algorithm(algorithm, backend, dtype, n_features, n_reference, k):
    check_algorithm(algorithm)
    check_kd_tree(algorithm, backend)
    if algorithm == "auto":
        if capability(backend, "kd_tree") and use_kd_tree(n_features, n_reference, k):
            return "kd_tree"
        algorithm = "brute"
    if algorithm == "brute":
        pick = getattr(kernels(backend), "brute_algorithm", None)
        return pick(dtype, n_features) if pick is not None else "brute"
    return algorithm
