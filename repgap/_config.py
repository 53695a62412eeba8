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
#: the largest tile size accepted (the compiled kernels count in C ints)
MAX_TILE = 2**31 - 1
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
    # every value is checked before any is set: a bad call changes nothing
    params = dict(params)
    if params.get("backend") is not None:
        from ._backends import check_backend_name

        check_backend_name(params["backend"])
    if "n_jobs" in params:
        from ._threads import check_n_jobs

        params["n_jobs"] = check_n_jobs(params["n_jobs"])
    from ._validation import check_bool, check_int

    for key in ("tile_queries", "tile_reference"):
        if key in params:
            params[key] = check_int(params[key], key, low=1, high=MAX_TILE, allow_none=True)
    if "progress" in params:
        params["progress"] = check_bool(params["progress"], "progress", allow_none=True)
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
