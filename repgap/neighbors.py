"""Exact k-nearest neighbours: the public entry points.

Validation and routing (in memory, streamed from disk, dask) happen here;
the search itself is :func:`repgap._search.plan.knn_prefix` (the plan) and
:func:`repgap._search.engine.certified` (the certified run), described in
:mod:`repgap._search`.
"""
import numpy as np

from ._threads import check_n_jobs, resolve_n_jobs
from ._validation import check_bool, check_checkpoints, check_k, check_order, check_pair
from ._arrays import is_tensor
from . import _blocks
from ._backends import check_algorithm, check_backend_name, check_kd_tree, resolve_backend
from .groups import Identity, check_group
from ._search.plan import knn_prefix  # noqa: F401 - the dispatcher, used across the package


def check_options(*, k=1, backend=None, n_jobs=None, algorithm="auto", progress=None, group=None, block_size=None,
                  max_memory=None):
    """Every parameter of a search that does not depend on the data, checked
    before any work (the data and ``k <= n`` follow): each error names the
    parameter, its value and what is allowed. An explicit backend that is
    not available raises here (:class:`repgap.BackendUnavailableError`)."""
    check_k(k, None)
    if backend is not None:
        check_backend_name(backend)
        if backend != "auto":
            resolve_backend(backend)
    check_n_jobs(n_jobs)
    check_algorithm(algorithm)
    check_kd_tree(algorithm, backend)
    check_bool(progress, "progress", allow_none=True)
    group = check_group(group)
    if group is not None and not isinstance(group, Identity) and algorithm not in ("auto", "brute"):
        raise ValueError(f"algorithm={algorithm!r} cannot be combined with group=; the k-NN modulo a group "
                         "chooses its own kernels (use algorithm='auto')")
    _blocks.check_block_options(block_size, max_memory)


def check_inputs(queries, reference, backend, qname="queries", rname="reference"):
    """(Q, R, backend name): tensors stay tensors on the torch backend (which
    ``auto`` picks for them); everything else becomes validated numpy."""
    tensors = is_tensor(queries) or is_tensor(reference)
    if tensors:
        from ._backends import resolve_backend_for_tensors

        name = resolve_backend_for_tensors(backend)
        if name == "torch":
            from ._kernels_torch import check_tensor_pair

            Q, R = check_tensor_pair(queries, reference, qname, rname)
            return Q, R, name
    else:
        name = resolve_backend(backend)
    Q, R = check_pair(queries, reference, qname, rname)
    return Q, R, name


def knn(queries, reference, k=1, *, group=None, backend=None, n_jobs=None, algorithm="auto", progress=None,
        block_size=None, max_memory=None):
    """Exact k nearest neighbours of each query in a reference set.

    Parameters
    ----------
    queries : array-like of shape (m, D)
        float32 or float64 (kept as they are, C- or F-ordered, read-only or
        memory-mapped); integers are cast to float64.
    reference : array-like of shape (n, D)
    k : int, default=1
        Number of neighbours; at most ``n``.
    group : repgap.groups.Group, optional
        Distances modulo a symmetry group: ``min_g ||q - g.x||`` (exact, by
        filter and refine; see :mod:`repgap.orbit`).
    backend : {"auto", "numpy", "cython", "torch"}, optional
        Overrides ``repgap.set_config(backend=...)`` and ``REPGAP_BACKEND``.
        An explicit backend that is not available raises an error.
    n_jobs : int, optional
        Threads: None uses the configured default (``set_config(n_jobs=...)``,
        ``REPGAP_NUM_THREADS``), else all available cores; -1 all cores; a
        positive number exactly that many (0, other negative numbers and
        non-integers raise). The results do not depend on it.
    algorithm : {"auto", "kd_tree", "brute", "direct", "fused", "gemm"}
        ``auto`` picks the k-d tree in low dimension and brute force
        otherwise (see :mod:`repgap._backends` for the thresholds).
    progress : bool, optional
        Progress bar (needs tqdm); by default only on a terminal.
    block_size, max_memory : int, optional
        Stream the reference in blocks of ``block_size`` rows (or of about
        ``max_memory / 3`` bytes); the default for memory maps and ``.npy``
        paths is about 64 MiB per block. The result does not depend on it.

    Returns
    -------
    distances : ndarray of shape (m, k), float64
        Euclidean distances, ascending. They are exact to float64 rounding:
        candidates found in the input precision are recomputed from the
        original rows as differences in float64 (Representation Gap paper,
        arXiv:2605.21692; docs/theory.md, section 6).
    indices : ndarray of shape (m, k), int64
        Rows of ``reference``; equal distances are ordered by index.

    Notes
    -----
    Torch tensors (on any device) are searched where they are, on the torch
    backend (``auto`` picks it for them), and the results are tensors there.
    ``dask.array`` inputs (chunked along samples) run block by block on the
    active dask scheduler, and a ``reference`` that is an ``np.memmap`` or
    the path of a ``.npy`` file is streamed from disk in blocks; both give
    the in-memory result bit for bit (``docs/dask.md``).

    Examples
    --------
    >>> import numpy as np, repgap
    >>> X = np.random.default_rng(0).random((1000, 8), dtype=np.float32)
    >>> d, i = repgap.knn(X[:10], X, k=2)
    >>> bool((i[:, 0] == np.arange(10)).all() and (d[:, 0] == 0).all())
    True
    """
    check_options(k=k, backend=backend, n_jobs=n_jobs, algorithm=algorithm, progress=progress, group=group,
                  block_size=block_size, max_memory=max_memory)
    mode = _blocks.route(queries, reference, block_size, max_memory)
    if mode is not None:  # dask arrays, memory maps, files: block by block (repgap._blocks)
        kw = dict(block_size=block_size, max_memory=max_memory) if mode == "stream" else {}
        return _blocks.knn(mode, queries, reference, k, group=group, backend=backend, n_jobs=n_jobs,
                           algorithm=algorithm, progress=progress, **kw)
    Q, R, name = check_inputs(queries, reference, backend)
    k = check_k(k, R.shape[0])
    group = check_group(group)
    threads = resolve_n_jobs(n_jobs)
    ck = np.array([R.shape[0]], dtype=np.int64)
    sq, idx, shift = knn_prefix(Q, R, k, None, ck, backend=name, n_threads=threads, algorithm=algorithm,
                                progress=progress, group=group, units=True)
    return _distances(sq[0], shift), idx[0]


def _tensor_sqrt(t):
    """The square root of a float64 tensor, correctly rounded as numpy's.

    On the CPU torch's vectorised ``sqrt`` is not always correctly rounded
    (measured: about 0.75 % of random doubles differ from ``np.sqrt`` in
    the last bit), so host tensors take numpy's (on a zero-copy view); IEEE
    ``sqrt`` on CUDA devices is correctly rounded.
    """
    if t.device.type == "cpu":
        import torch

        return torch.from_numpy(np.sqrt(t.detach().numpy()))
    return t.sqrt()


def _distances(sq, shift):
    # from squared distances in units of 4**shift: the square root first, so
    # that distances whose squares are not representable come out finite
    if is_tensor(sq):
        from ._search.tensors import ldexp

        d = _tensor_sqrt(sq)
        return ldexp(d, shift) if shift else d
    d = np.sqrt(sq)
    if not shift:
        return d
    with np.errstate(under="ignore"):  # a subnormal distance is the true one, rounded
        return np.ldexp(d, shift)


def knn_checkpoints(queries, reference, checkpoints, k=1, *, order=None, group=None, backend=None,
                    n_jobs=None, algorithm="auto", progress=None, block_size=None, max_memory=None):
    """k nearest neighbours within each prefix ``reference[order[:n_j]]``, in one pass.

    Parameters
    ----------
    checkpoints : sequence of int
        Increasing prefix sizes ``n_1 < ... < n_J <= n``.
    order : array-like of int, optional
        An ordering of the reference rows (default: the identity).

    Returns
    -------
    distances : ndarray of shape (J, m, k), float64
    indices : ndarray of shape (J, m, k), int64
        Rows of ``reference`` (not positions in ``order``).

    Notes
    -----
    Dask arrays, memory maps and ``.npy`` paths: as in :func:`knn`.
    """
    check_options(k=k, backend=backend, n_jobs=n_jobs, algorithm=algorithm, progress=progress, group=group,
                  block_size=block_size, max_memory=max_memory)
    mode = _blocks.route(queries, reference, block_size, max_memory)
    if mode is not None:
        kw = dict(block_size=block_size, max_memory=max_memory) if mode == "stream" else {}
        return _blocks.knn_checkpoints(mode, queries, reference, checkpoints, k, order=order, group=group,
                                       backend=backend, n_jobs=n_jobs, algorithm=algorithm, progress=progress, **kw)
    Q, R = check_pair(queries, reference)
    n = R.shape[0]
    k = check_k(k, n)
    ck = check_checkpoints(checkpoints, n, k, "checkpoints", "the reference set")
    od = None if order is None else check_order(order, n)
    if od is not None and od.size < ck[-1]:
        raise ValueError(f"order has {od.size} entries but the largest checkpoint is {ck[-1]}")
    name = resolve_backend(backend)
    sq, idx, shift = knn_prefix(Q, R, k, od, ck, backend=name, n_threads=resolve_n_jobs(n_jobs),
                                algorithm=algorithm, progress=progress, group=check_group(group), units=True)
    return _distances(sq, shift), idx
