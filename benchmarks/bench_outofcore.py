"""Out-of-core: the Representation Gap of a 3e6 x 128 float32 training set
(1.5 GB ``.npy``) streamed from disk, with the peak resident memory of the
process as the kernel accounts it.

    PYTHONPATH=. python benchmarks/bench_outofcore.py [--n 3000000] [--D 128] [--m 10000]
        [--file /tmp/repgap_outofcore.npy] [--modes path,mmap] [--block-size ROWS] [--check]

Each measurement runs in a fresh Python process that imports repgap, draws
the queries and then calls ``representation_gap``; it reports the peak
resident set size of that whole process (``VmHWM`` from /proc/self/status and
``ru_maxrss``; the file is created by another process, so the parent's
memory does not leak into ``ru_maxrss``) and the wall time. ``--check`` also
runs the in-memory path (``np.load`` of the whole file) and compares the
distances bit for bit.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import repgap  # the subprocesses import this same repgap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(repgap.__file__)))

_MAKE = """
import sys, numpy as np
path, n, D = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
rng = np.random.default_rng(0)
step = 100_000
for s in range(0, n, step):
    X[s : s + step] = rng.random((min(step, n - s), D), dtype=np.float32)
    X.flush()
"""

_RUN = """
import json, resource, sys, time
import numpy as np
import repgap
mode, path, m, D, block, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
block = None if block == "none" else int(block)
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
test = np.random.default_rng(1).random((m, D), dtype=np.float32)
before = status("VmRSS")
t0 = time.perf_counter()
if mode == "path":
    train = path
elif mode == "mmap":
    train = np.load(path, mmap_mode="r")
else:
    train = np.load(path)   # in memory: the whole file
if mode == "memory":
    res = repgap.representation_gap(train, test)
else:
    res = repgap.representation_gap(train, test, block_size=block)
wall = time.perf_counter() - t0
np.save(out, res.distances)
print(json.dumps({"mode": mode, "wall_s": round(wall, 2), "rss_before_run_mib": round(before, 1),
                  "peak_rss_mib": round(status("VmHWM"), 1),
                  "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "value": res.value, "n_train": res.n_train, "n_test": res.n_test}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3_000_000)
    ap.add_argument("--D", type=int, default=128)
    ap.add_argument("--m", type=int, default=10_000)
    ap.add_argument("--file", default="/tmp/repgap_outofcore.npy")
    ap.add_argument("--modes", default="path,mmap")
    ap.add_argument("--block-size", default="none", help="rows per block (default: about 64 MiB)")
    ap.add_argument("--check", action="store_true", help="also run in memory and compare bit for bit")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    want = 128 + args.n * args.D * 4
    if not (os.path.exists(args.file) and abs(os.path.getsize(args.file) - want) < 4096):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _MAKE, args.file, str(args.n), str(args.D)], check=True, env=env)
        print(json.dumps({"created": args.file, "bytes": os.path.getsize(args.file),
                          "seconds": round(time.perf_counter() - t0, 1)}))
    print(json.dumps({"file": args.file, "bytes": os.path.getsize(args.file), "n": args.n, "D": args.D,
                      "m": args.m, "cores": len(os.sched_getaffinity(0))}))
    modes = args.modes.split(",") + (["memory"] if args.check else [])
    dists = {}
    import numpy as np

    for mode in modes:
        out = f"/tmp/repgap_outofcore_{mode}.npy"
        p = subprocess.run([sys.executable, "-c", _RUN, mode, args.file, str(args.m), str(args.D),
                            str(args.block_size), out], capture_output=True, text=True, env=env)
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            sys.exit(p.returncode)
        print(p.stdout.strip())
        dists[mode] = np.load(out)
    if "memory" in dists:
        ref = dists["memory"]
        print(json.dumps({"bit_for_bit_vs_memory": {m: bool(np.array_equal(d, ref)) for m, d in dists.items()
                                                     if m != "memory"}}))


if __name__ == "__main__":
    main()
