"""Global and context-local configuration (backend, threads, tile sizes)."""
import contextlib
import threading

_DEFAULTS = {
    "backend": None,          # None: REPGAP_BACKEND, then "auto"
    "n_jobs": None,           # None: REPGAP_NUM_THREADS, then all available cores
    "tile_queries": None,     # None: chosen per problem
    "tile_reference": None,
    "progress": None,         # None: a bar when tqdm is installed and stderr is a terminal
}
_global = dict(_DEFAULTS)
_local = threading.local()


def _current():
    if not hasattr(_local, "config"):
        _local.config = dict(_global)
    return _local.config


def get_config():
    """The current configuration, as a new dict."""
    return dict(_current())


def set_config(**params):
    """Set configuration values for this thread and the new ones.

    Parameters
    ----------
    backend : {"auto", "numpy", "cython", "torch"} or None
        Default backend (an explicit ``backend=`` argument wins).
    n_jobs : int or None
        Default thread count (see :func:`repgap.knn`).
    tile_queries, tile_reference : int or None
        Tile sizes of the brute-force kernels; results do not depend on them.
    progress : bool or None
        Show progress bars.
    """
    unknown = set(params) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown configuration key(s): {sorted(unknown)}; known: {sorted(_DEFAULTS)}")
    if params.get("backend") is not None:
        from ._backends import check_backend_name

        check_backend_name(params["backend"])
    if params.get("n_jobs") is not None:
        from ._threads import resolve_n_jobs

        resolve_n_jobs(params["n_jobs"])
    for key in ("tile_queries", "tile_reference"):
        v = params.get(key)
        if v is not None and (int(v) != v or v < 1):
            raise ValueError(f"{key} must be a positive integer or None, got {v!r}")
    _global.update(params)
    _current().update(params)


@contextlib.contextmanager
def config_context(**params):
    """Temporarily change the configuration (as :func:`set_config`)."""
    old = get_config()
    set_config(**params)
    try:
        yield
    finally:
        _global.update(old)
        _current().clear()
        _current().update(old)
