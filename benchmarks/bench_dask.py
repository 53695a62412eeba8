"""Dask: the Representation Gap of 1e6 x 32 float32 training data against 1e4
queries on a 4-worker LocalCluster, against the in-memory cython backend on the
same cores. Checks that the distances are equal bit for bit.

    PYTHONPATH=. python benchmarks/bench_dask.py [--n 1000000] [--m 10000] [--D 32] [--workers 4] [--chunk 125000]

Prints one JSON line per measurement and a summary. Times are the best of
``--repeat`` runs (default 3): another process on the machine adds noise.
"""
import argparse
import json
import os
import time
import warnings

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--m", type=int, default=10_000)
    ap.add_argument("--D", type=int, default=32)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=125_000, help="training rows per dask chunk")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--e2e", action="store_true", help="also time from_array of the in-memory set (data sent each run)")
    args = ap.parse_args()

    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import repgap

    rng = np.random.default_rng(0)
    train = rng.random((args.n, args.D), dtype=np.float32)
    test = rng.random((args.m, args.D), dtype=np.float32)
    cores = len(os.sched_getaffinity(0))

    ref = repgap.representation_gap(train, test, backend="cython")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster):
        # the usual cluster set-up: the data already lives on the workers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Sending large graph": the data goes to the workers once
            R = da.from_array(train, chunks=(args.chunk, -1)).persist()
            wait(R)
        repgap.representation_gap(R, test[:100], backend="cython")  # warm the workers
        ts = {"memory": [], "dask": [], "dask_e2e": []}
        res = None
        # interleaved, so that a load from elsewhere hits both alike
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            repgap.representation_gap(train, test, backend="cython")
            ts["memory"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = repgap.representation_gap(R, test, backend="cython")
            ts["dask"].append(time.perf_counter() - t0)
            if args.e2e:
                # end to end: the training set goes from this process to the workers
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "Sending large graph"
                    repgap.representation_gap(da.from_array(train, chunks=(args.chunk, -1)), test, backend="cython")
                ts["dask_e2e"].append(time.perf_counter() - t0)
    same = bool(np.array_equal(res.distances, ref.distances) and np.array_equal(res.indices, ref.indices)
                and res.value == ref.value)
    t_mem, t_dask = min(ts["memory"]), min(ts["dask"])
    print(json.dumps({"n": args.n, "m": args.m, "D": args.D, "cores": cores, "workers": args.workers,
                      "chunk": args.chunk, "load_avg_1min": os.getloadavg()[0]}))
    for key, what in (("memory", "in-memory cython backend (all cores)"),
                      ("dask", f"dask LocalCluster({args.workers} workers x 1 thread), data persisted on the workers"),
                      ("dask_e2e", "dask LocalCluster, end to end from da.from_array(in-memory array)")):
        if ts[key]:
            print(json.dumps({"what": what, "best_s": round(min(ts[key]), 3),
                              "runs_s": [round(t, 3) for t in ts[key]]}))
    out = {"bit_for_bit": same, "value": res.value, "ratio_dask_over_memory": round(t_dask / t_mem, 3)}
    if ts["dask_e2e"]:
        out["ratio_end_to_end"] = round(min(ts["dask_e2e"]) / t_mem, 3)
    print(json.dumps(out))

if __name__ == "__main__":
    main()
