"""The exact k-NN engine: plan -> candidate search -> float64 recomputation -> certificate.

Every answer repgap gives (the gap, its curve, the law, the point-process
estimators, memorization, the same modulo a group) rests on one question:
which k rows of a reference set are nearest to each query, and at what
distance, exactly. This package answers it once, for every backend and
every array type.

Design
------
::

    knn / knn_checkpoints / gap / _blocks / _dask / orbit
                          |
                          v
        plan.knn_prefix(Q, R, k, order, checkpoints, backend, ...)
          | decides, once per problem:
          |   algorithm (kd_tree / brute kernels, _backends.choose_algorithm)
          |   rotation to principal axes (data of low linear rank)
          |   search copies: float32 for float64 data on the brute-force
          |   paths; centred and rescaled by a power of two where the range
          |   demands it (certify.safe_range)
          |   the error model of those choices (certify.SearchModel)
          v
        engine.certified(Q, R, k, order, checkpoints, run, model)
          | round 1: run(kk = k + 4 + k // 2) on the kernel of the backend
          |          (k = 1 on the compiled sweep: kk = 2, the second entry a
          |          bound on every row not returned, its lanes' runner-ups)
          | recompute: exact.sqdist_rows (one primitive, one order)
          | certify: model.lower_bound(b_max) > k-th distance ?
          | round r: the rest with 4x the candidates (numpy GEMM tiles for
          |          a few queries); prefixes mostly covered: exhaustive
          v
        (squared distances, indices), sorted by (distance, index)

* **One kernel interface.** ``repgap._kernels_numpy``, the compiled
  ``repgap._kernels_cython`` and ``repgap._kernels_torch`` each expose
  ``knn_prefix(queries, reference, k, order, checkpoints, *, n_threads,
  algorithm, tile_queries, tile_reference, spare, leafsize, progress,
  options)`` with the same defaults; backend settings (the k-d tree's box
  dimensions, torch's device, memory budget and matmul precision) travel in
  ``options``. ``tests/test_engine.py`` checks the signatures. A kernel
  only has to return, per query and prefix, ``kk`` rows chosen by its own
  search values with their float64 distances: it need not be exact, the
  engine makes it so. So the engine asks the kernels that follow its error
  model for no spare candidates of their own (the ``certified_spare``
  capability, 0 for the compiled and numpy kernels): a kernel's spare
  candidates change which rows it returns, never the certified answer.
* **One exact primitive.** :func:`repgap._search.exact.sqdist_rows` sums the
  squared float64 differences in four interleaved lanes, the order of the
  compiled kernels' ``sqdist_strided`` (built without FMA contraction), so
  the compiled brute-force kernels' distances are already its bits and
  every other path is recomputed by it. Every algorithm, backend, thread
  count, tile size and block size then returns the same bits.
* **A certificate, not a heuristic.** :mod:`repgap._search.certify` bounds
  the error of each kind of search a priori (precision, D, centred norms,
  rounding of the copies); a query is answered only when no row outside
  its candidates can beat or tie its k-th neighbour. Near-ties beyond any
  fixed number of spare candidates, exact duplicates and data at the ends
  of the floating-point range are re-searched until they are certified.
* **One decision for every path.** The streamed and dask paths
  (``repgap._blocks``, ``repgap._dask``) search block by block through the
  same ``plan.knn_prefix``, and fix the rotation once for all blocks by the
  same predicate (``plan.rotates``) on the same rows (``plan.rank_sample_rows``)
  as the in-memory plan. They return (squared distances, rows) only:
  :mod:`repgap.neighbors` and :mod:`repgap.gap` alone build results. Which
  path an input takes is asked of one leaf module, ``repgap._arrays``
  (tensor, dask array, memory map or path), which imports neither torch
  nor dask.
* **Tensors too.** Torch tensors stay on their device
  (``tensors.tensor_search``) and run the same loop,
  ``engine.certified``, with the same methods over tensors
  (``tensors.TensorOps``, beside the arrays' ``engine.HostOps``): the torch
  kernel returns ``kk`` candidates with their exact float64 distances (the
  primitive's bits, by ``_kernels_torch.lanes_sum``), and the certificate,
  with the torch kernels' error model (``tensors.tensor_model``), decides
  which queries are answered and which are searched again; only (m,)
  vectors of bounds cross to the host. Tensors near the ends of the
  floating-point range are searched on rescaled copies and recomputed on
  their stored rows, as arrays are. The square root of a CPU tensor is
  numpy's (``neighbors._tensor_sqrt``: torch's is not correctly rounded
  there), so tensors give the arrays' distances and indices bit for bit,
  ties by row.
* **Speed is a plan decision, never a correctness one.** float64 data take
  the float32 candidate search; the rotated k-d tree, the choice of the
  tree and of the kernel only change how fast the certificate is reached.
  So does the first round's width (``plan.first_candidates``): ``k + 1``
  on the k-d tree, whose float64 sums of differences are exact to a few
  float64 roundings, more where a float32 expansion is the search.
* **Tiles for the caches, polls for latency.** The compiled brute-force
  kernels pack the reference once per call into panels that every query
  tile reads (``BruteProblem.gP``; within a 1 GiB budget), so a query tile
  is sized to stay in L2 rather than to amortise re-packing; the calling
  thread looks for Ctrl-C every 20 ms inside its tile (``TilePoll``), so
  the size of a tile never decides how long an interrupt waits. Neither
  changes a bit of the answer (``tests/test_engine.py``).

Adding a backend: one entry in :data:`repgap._backends.REGISTRY` and one
kernel module implementing ``knn_prefix`` (the interface above), which
declares what it can do (``CAPABILITIES``, ``ALGORITHMS``,
``brute_algorithm``, ``available``/``UNAVAILABLE``, ``describe``); the
plan, the engine, the certificate and the tests (which run every available
backend against the numpy reference) need no change.
``tests/test_engine.py::test_a_new_backend_is_one_registry_entry`` adds one.
"""
from .engine import certified
from .exact import sort_pairs, sqdist_rows

__all__ = ["certified", "sort_pairs", "sqdist_rows"]
