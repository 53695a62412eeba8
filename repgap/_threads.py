"""Thread counts: ``n_jobs`` semantics, cgroup-aware core counts, BLAS limits."""
import contextlib
import math
import os

_controller = None

# Fork safety. GNU libgomp keeps its worker threads in a pool that a forked
# child does not inherit, and the child's first parallel region then waits
# for them forever. The parent marks that it may have run a parallel region
# (a thread count above one was handed out); a child forked after that runs
# every kernel on its calling thread, which needs no pool. Threads are a
# speed setting: no result depends on them.
_parallel_used = False
_forked_after_parallel = False


def _after_fork_in_child():
    global _forked_after_parallel
    if _parallel_used:
        _forked_after_parallel = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_child():
    """True in a process forked after this one's parent ran parallel kernels."""
    return _forked_after_parallel


def available_cpus():
    """Cores this process may use: affinity mask and cgroup CPU quota (v1, v2)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = max(1, min(n, quota))
    return n


def _cgroup_quota():
    try:  # cgroup v2
        with open("/sys/fs/cgroup/cpu.max") as fh:
            q, p = fh.read().split()[:2]
        if q != "max":
            return max(1, math.ceil(int(q) / int(p)))
        return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fh:
            q = int(fh.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fh:
            p = int(fh.read())
        if q > 0 and p > 0:
            return max(1, math.ceil(q / p))
    except (OSError, ValueError):
        pass
    return None


#: the largest thread count accepted (a guard against typos such as n_jobs=10**9)
MAX_THREADS = 1 << 16


def check_n_jobs(n_jobs, name="n_jobs"):
    """``n_jobs`` as an int (-1 or 1 .. MAX_THREADS) or None; every other value
    raises an error that names it and says what is allowed."""
    import numbers

    allowed = f"None (the default), -1 (all available cores) or a positive integer (at most {MAX_THREADS})"
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        shown = repr(n_jobs) if isinstance(n_jobs, (int, float, str)) else f"{n_jobs!r} ({type(n_jobs).__name__})"
        raise TypeError(f"{name} must be {allowed}, got {shown}")
    n_jobs = int(n_jobs)
    if n_jobs == 0 or n_jobs < -1 or n_jobs > MAX_THREADS:
        raise ValueError(f"{name}={n_jobs} is not a number of threads: {name} must be {allowed}")
    return n_jobs


def resolve_n_jobs(n_jobs):
    """Number of threads for ``n_jobs``.

    ``None``: the configured default (``set_config(n_jobs=...)``, then
    ``REPGAP_NUM_THREADS``), else all available cores; ``-1``: all available
    cores; a positive number: exactly that many; ``0``, other negative
    numbers, non-integers: an error naming the value (README, "Threads").
    """
    from ._config import get_config

    n_jobs = check_n_jobs(n_jobs)
    if n_jobs is None:
        n_jobs = get_config()["n_jobs"]
    if n_jobs is None:
        env = os.environ.get("REPGAP_NUM_THREADS", "").strip()
        if env:
            try:
                n_jobs = int(env)
            except ValueError:
                raise ValueError(f"REPGAP_NUM_THREADS must be an integer (-1 or a positive number of threads), "
                                 f"got {env!r}") from None
            n_jobs = check_n_jobs(n_jobs, "REPGAP_NUM_THREADS")
    if n_jobs is None:
        return _fork_safe(available_cpus())
    n = available_cpus() if n_jobs == -1 else n_jobs
    return _fork_safe(n)


def _fork_safe(n):
    global _parallel_used
    if _forked_after_parallel:
        return 1
    if n > 1:
        _parallel_used = True
    return n


def _get_controller():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def blas_single_thread():
    """Hold BLAS to one thread (inside OpenMP regions that call BLAS)."""
    try:
        ctl = _get_controller()
    except ImportError:  # threadpoolctl missing: nothing to limit with
        yield
        return
    with ctl.limit(limits=1, user_api="blas"):
        yield


def blas_info():
    """A short description of the BLAS libraries loaded in this process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed"]
    import scipy.linalg  # noqa: F401 - make sure scipy's BLAS is loaded

    out = []
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            out.append(
                f"{info.get('internal_api')} {info.get('version')} "
                f"({info.get('architecture')}, {info.get('num_threads')} threads) "
                f"{os.path.basename(info.get('filepath', ''))}"
            )
    return out
