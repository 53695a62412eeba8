"""Exact k-NN on ``dask.array`` inputs, on whatever dask scheduler is active.

The reference (and the queries, if they are a dask array) are taken in their
row chunks (chunks along features are joined). The graph has one task per
(query block, reference block) pair, each running the in-memory kernel
(:func:`repgap._blocks.block_knn`) with the algorithm decided once for the
whole reference, and per query block a tree reduction that merges the
partial k-smallest lists by (distance, global index)
(:func:`repgap._blocks.merge`). The result equals the in-memory one bit for
bit (see :mod:`repgap._blocks`). The graph runs on the scheduler dask would
use for ``dask.compute``: the threaded or process scheduler, or a
``dask.distributed`` client.

Threads: a task uses one thread (``n_jobs=None``), dask runs tasks in
parallel; with the synchronous scheduler a task uses every core. ``n_jobs``
sets the threads of each task.
"""
import uuid

import numpy as np

from . import _blocks
from ._arrays import is_dask_array
from ._progress import Progress, progress_enabled
from ._threads import resolve_n_jobs
from ._validation import check_array, check_k

#: queries per block when the queries are an in-memory array
QUERY_BLOCK = 65536
#: partial lists merged per reduction task
FAN_IN = 8


def _active_scheduler():
    """("distributed", client), ("sync", None) or ("local", None)."""
    import dask
    import dask.base
    import dask.local

    sched = dask.base.get_scheduler()
    owner = getattr(sched, "__self__", None)
    if owner is not None and type(owner).__name__ == "Client":
        return "distributed", owner
    if sched is dask.local.get_sync:
        return "sync", None
    return "local", None


def _row_blocks(X):
    """(delayed row blocks, row offsets) of a dask array, features in one chunk."""
    if any(c != c for c in X.chunks[0]):
        raise ValueError("a dask array with unknown chunk sizes; call .compute_chunk_sizes() first")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    blocks = list(X.to_delayed().ravel())
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(np.int64)
    return blocks, offsets, X


def _check_block(block, offset):
    return _blocks.bad_rows(np.asarray(block), offset)


def dask_prefix(queries, reference, k, checkpoints=None, orders=None, *, group=None, backend=None, n_jobs=None,
                algorithm="auto", progress=None, qname="queries", rname="reference", desc="k-NN",
                k_what="the reference set"):
    """k-NN over dask arrays: ``(sq, idx, n, Q)`` with sq, idx (passes, J, m, k) numpy arrays."""
    import dask
    import dask.array as da
    from dask import delayed

    from .groups import check_group

    R = reference if is_dask_array(reference) else None
    if R is None:
        Rn = check_array(reference, rname)
        rows = max(1, _blocks.DEFAULT_BLOCK_BYTES // (Rn.shape[1] * Rn.dtype.itemsize))
        R = da.from_array(Rn, chunks=(min(Rn.shape[0], rows), -1))
    _blocks.check_shape(R.shape, rname)
    dt_r = _blocks.data_dtype(R.dtype, rname)
    if is_dask_array(queries):
        _blocks.check_shape(queries.shape, qname)
        dt_q = _blocks.data_dtype(queries.dtype, qname)
        q_blocks, q_offsets, Qd = _row_blocks(queries)
        m, Dq = int(Qd.shape[0]), int(Qd.shape[1])
        q_check = [delayed(_check_block, pure=True)(b, o) for b, o in zip(q_blocks, q_offsets)]
    else:
        Qn = check_array(queries, qname)
        dt_q, (m, Dq) = Qn.dtype, Qn.shape
        q_offsets = np.arange(0, m, QUERY_BLOCK, dtype=np.int64)
        q_blocks = [delayed(Qn[s : s + QUERY_BLOCK], pure=True) for s in q_offsets]
        q_check = []
    r_blocks, r_offsets, R = _row_blocks(R)
    n, D = int(R.shape[0]), int(R.shape[1])
    if Dq != D:
        raise ValueError(f"{qname} has {Dq} features but {rname} has {D}; they must match")
    dtype = _blocks.common_dtype(dt_q, dt_r)
    k = check_k(k, n, what=k_what)
    ck, n_used, ranks_all, plan_orders = _blocks.prefix_ranks(orders, checkpoints, n, k)
    kind, client = _active_scheduler()
    threads = resolve_n_jobs(n_jobs) if (n_jobs is not None or kind == "sync") else 1

    def take_rows(rows):
        return R[np.asarray(rows, dtype=np.int64)].compute()

    plan = _blocks.make_plan(backend=backend, algorithm=algorithm, group=check_group(group), dtype=dtype, D=D,
                             n=n, k=k, n_used=n_used, orders=plan_orders, take_rows=take_rows, n_threads=threads)
    plan_d = delayed(plan, pure=True)
    r_check = [delayed(_check_block, pure=True)(b, o) for b, o in zip(r_blocks, r_offsets)]
    token = uuid.uuid4().hex
    block_tasks = []
    finals = []
    for qi, qb in enumerate(q_blocks):
        parts = []
        for rj, (rb, off) in enumerate(zip(r_blocks, r_offsets)):
            if orders is None:
                rk = None
            else:
                nb = R.chunks[0][rj]
                rk = ranks_all[:, off : off + nb]
            t = delayed(_guarded_block, pure=True)(qb, rb, int(off), plan_d, rk, ck,
                                                   dask_key_name=f"repgap-block-{token}-{qi}-{rj}")
            parts.append(t)
        block_tasks += parts
        while len(parts) > 1:
            parts = [delayed(_merge_parts, pure=True)(k, *parts[s : s + FAN_IN]) for s in range(0, len(parts), FAN_IN)]
        finals.append(parts[0])
    nblocks = len(block_tasks)
    with Progress(nblocks, f"{desc} (blocks)", progress) as bar:
        if not progress_enabled(progress):
            checks, results = dask.compute(r_check + q_check, finals)
        elif kind == "distributed":
            from distributed import as_completed

            futs = client.compute(block_tasks)
            fin = client.compute(r_check + q_check + finals)
            for f in as_completed(futs):
                bar.update(1)
            del futs, f
            out = client.gather(fin)
            checks, results = out[: len(r_check) + len(q_check)], out[len(r_check) + len(q_check):]
        else:
            from dask.callbacks import Callback

            class _Bar(Callback):
                def _posttask(self, key, result, dsk, state, id):
                    name = key[0] if isinstance(key, tuple) else key
                    if isinstance(name, str) and name.startswith("repgap-block-"):
                        bar.update(1)

            with _Bar():
                checks, results = dask.compute(r_check + q_check, finals)
    _blocks.raise_bad(rname, n, checks[: len(r_check)])
    _blocks.raise_bad(qname, m, checks[len(r_check):])
    sq = np.concatenate([r[0] for r in results], axis=2)
    idx = np.concatenate([r[1] for r in results], axis=2)
    return sq, idx, n, None


def _guarded_block(qb, rb, off, plan, rk, ck):
    """One (query block, reference block) task; a block with NaN/inf rows is
    skipped here (the check tasks report it with the in-memory message)."""
    qb = np.asarray(qb)
    rb = np.asarray(rb)
    if _blocks.bad_rows(rb, off) is not None or _blocks.bad_rows(qb, 0) is not None:
        return None
    return _blocks.block_knn(qb, rb, off, plan, rk, ck)


def _merge_parts(k, *parts):
    if any(p is None for p in parts):
        return None
    return _blocks.merge(k, *parts)
