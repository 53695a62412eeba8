"""Variants of the torch kernel on a GPU (tile budget, block size, padding), with a profile.
Used once to choose the defaults; see benchmarks/README.md."""
import time

import numpy as np
import torch

import repgap._kernels_torch as kt

dev = torch.device("cuda")
g = torch.Generator(device=dev).manual_seed(0)
n, m, D = 1_000_000, 100_000, 512
basis = torch.randn(16, D, device=dev, generator=g) / 4
train = torch.rand(n, 16, device=dev, generator=g) @ basis + 3.0
test = torch.rand(m, 16, device=dev, generator=g) @ basis + 3.0
ck = np.array([n])
free = torch.cuda.mem_get_info()[0]


def timeit(**kw):
    kt.knn_prefix(test, train, 1, None, ck, **kw)
    torch.cuda.synchronize()
    ts = []
    for _ in range(2):
        t = time.perf_counter()
        out = kt.knn_prefix(test, train, 1, None, ck, **kw)
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return min(ts), out


ref = None
for blk in (32, 64, 128):
    kt._BLOCK = blk
    for frac in (4, 2):
        for tr in (None, 1 << 17):
            t, out = timeit(options={"max_memory": free // frac}, tile_reference=tr)
            same = ref is None or torch.equal(out[1], ref[1])
            ref = ref or out
            print(f"block {blk:4d} budget free/{frac} tile_reference {tr}: {t:.3f} s "
                  f"({2 * n * m * D / t / 1e12:.1f} TFLOP/s) same={same}", flush=True)
kt._BLOCK = 32
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
    kt.knn_prefix(test, train, 1, None, ck)
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))
