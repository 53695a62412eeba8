"""``repgap.show_config()``: what this installation can do."""
import platform
import sys


def config_info():
    """The facts that :func:`show_config` prints, as a dict."""
    from . import __version__
    from ._backends import _load_cython, backend_status, resolve_backend
    from ._config import get_config
    from ._threads import available_cpus, blas_info, resolve_n_jobs

    import numpy
    import scipy

    mod = _load_cython()
    omp, omp_threads = mod.openmp_info() if mod is not None else (False, 1)
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "backends": {k: {"available": ok, "detail": d} for k, (ok, d) in backend_status().items()},
        "auto_backend": resolve_backend("auto"),
        "default_backend": get_config()["backend"] or "auto",
        "openmp": bool(omp),
        "simd": mod.simd_info() if mod is not None else None,
        "available_cpus": available_cpus(),
        "threads": resolve_n_jobs(None),
        "blas": blas_info(),
    }


def show_config(file=None):
    """Print the version, each backend's status, OpenMP, threads and BLAS."""
    info = config_info()
    out = file or sys.stdout
    w = lambda s="": print(s, file=out)  # noqa: E731
    w(f"repgap {info['version']}  (python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']})")
    w(f"platform: {info['platform']}")
    w("backends:")
    for name, b in info["backends"].items():
        mark = "available" if b["available"] else "NOT available"
        w(f"  {name:<7} {mark:<14} {b['detail']}")
    w(f"auto resolves to: {info['auto_backend']}")
    w(f"OpenMP: {'enabled' if info['openmp'] else 'disabled'}; SIMD: {info['simd']}")
    w(f"threads: {info['threads']} (available cores: {info['available_cpus']})")
    w("BLAS: " + ("; ".join(info["blas"]) or "none found"))
