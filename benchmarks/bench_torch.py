"""The torch backend: CPU against the compiled backend, and a GPU at scale.

``cpu``: ``repgap.knn`` (k = 1) with the torch backend against the cython
backend on the same float32 data (n = 1e5 reference, 1e4 queries, D = 64,
128, 256 or ``--dims``), medians of the repeats, the two backends
interleaved (so that load from other processes hits both alike).

``gpu`` (needs CUDA): ``repgap.representation_gap`` with 1e6 training and 1e5
query items in 512-D (float32, on the device), against the device's
matrix-multiply throughput measured in the same run (float32 without TF32,
and TF32), and against a chunked ``torch.cdist`` + ``min`` (inexact: it
uses the uncentred expansion); the exactness of both is checked against a
float64 recomputation on a sample of queries.

    python benchmarks/bench_torch.py cpu [--repeats 3] [--dims 64,128,256]
    python benchmarks/bench_torch.py gpu [--n 1000000 --m 100000 --dim 512]
"""
import argparse
import json
import time

import numpy as np

import repgap


def median_time(f, repeats, sync=None):
    ts, out = [], None
    for _ in range(repeats):
        if sync:
            sync()
        t = time.perf_counter()
        out = f()
        if sync:
            sync()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def run_cpu(args):
    import torch

    rng = np.random.default_rng(0)
    print(f"repgap {repgap.__version__}, torch {torch.__version__}; CPU, k = 1, float32")
    print(f"{'D':>5} {'cython (s)':>11} {'torch (s)':>10} {'torch/cython':>13}")
    for D in (int(d) for d in args.dims.split(",")):
        R = rng.standard_normal((100_000, D)).astype(np.float32)
        Q = rng.standard_normal((10_000, D)).astype(np.float32)
        tc, tt = [], []
        for _ in range(args.repeats):  # interleaved
            t, (dc, ic) = median_time(lambda: repgap.knn(Q, R, backend="cython", progress=False), 1)
            tc.append(t)
            t, (dt, it) = median_time(lambda: repgap.knn(Q, R, backend="torch", progress=False), 1)
            tt.append(t)
        assert np.array_equal(ic, it), "torch and cython disagree"
        tc, tt = float(np.median(tc)), float(np.median(tt))
        print(f"{D:>5} {tc:>11.3f} {tt:>10.3f} {tt / tc:>13.2f}", flush=True)


def run_gpu(args):
    import torch

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    res = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__}
    print(f"repgap {repgap.__version__}, torch {torch.__version__}, {res['device']}")
    # matrix-multiply throughput, float32 and TF32
    A = torch.randn(8192 if cuda else 2048, 8192 if cuda else 2048, device=dev)
    for mode in ("float32", "tf32"):
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        A @ A
        t, _ = median_time(lambda: A @ A, 5, sync)
        res[f"peak_{mode}_tflops"] = 2 * A.shape[0] ** 3 / t / 1e12
        print(f"matmul {mode}: {res[f'peak_{mode}_tflops']:.1f} TFLOP/s")
    torch.backends.cuda.matmul.allow_tf32 = False
    del A
    g = torch.Generator(device=dev).manual_seed(0)
    # data on a low-dimensional manifold in 512-D, offset from the origin
    n, m, D = args.n, args.m, args.dim
    basis = torch.randn(16, D, device=dev, generator=g) / 4
    train = torch.rand(n, 16, device=dev, generator=g) @ basis + 3.0
    test = torch.rand(m, 16, device=dev, generator=g) @ basis + 3.0
    flops = 2.0 * n * m * D
    from repgap._kernels_torch import knn_prefix

    for mode in ("float32", "tf32"):
        ck = np.array([n])
        f = lambda: knn_prefix(test, train, 1, None, ck, options={"matmul": mode})  # noqa: E731
        f()
        t, (sq, idx) = median_time(f, args.repeats, sync)
        peak = res[f"peak_{mode}_tflops"]
        res[f"repgap_{mode}_s"] = t
        res[f"repgap_{mode}_tflops"] = flops / t / 1e12
        print(f"repgap knn (k=1, matmul={mode}): {t:.3f} s = {flops / t / 1e12:.1f} TFLOP/s "
              f"= {flops / t / 1e12 / peak:.0%} of the {mode} peak", flush=True)
    t_rg, rg = median_time(lambda: repgap.representation_gap(train, test, progress=False), args.repeats, sync)
    res["representation_gap_s"] = t_rg
    print(f"repgap.representation_gap: {t_rg:.3f} s, value {rg.value:.6g}")

    def cdist_min():
        out = torch.empty(m, device=dev)
        oi = torch.empty(m, dtype=torch.int64, device=dev)
        step = 2048
        for s in range(0, m, step):
            v, i = torch.cdist(test[s : s + step], train).min(dim=1)
            out[s : s + step], oi[s : s + step] = v, i
        return out, oi

    cdist_min()
    t_cd, (cdv, cdi) = median_time(cdist_min, args.repeats, sync)
    res["cdist_s"] = t_cd
    print(f"chunked torch.cdist + min: {t_cd:.3f} s ({t_cd / res['repgap_float32_s']:.2f}x repgap float32)")
    # exactness on 2000 queries: float64 brute force, differences (no expansion)
    sub = torch.arange(0, m, max(1, m // 2000), device=dev)[:2000]
    q64 = test[sub].double()
    best = torch.full((sub.numel(),), float("inf"), dtype=torch.float64, device=dev)
    for s in range(0, n, 65536):
        d = torch.cdist(q64, train[s : s + 65536].double(), compute_mode="donot_use_mm_for_euclid_dist")
        best = torch.minimum(best, d.min(1).values ** 2)
    rel_repgap = ((sq[0, sub, 0] - best).abs() / best).max().item()
    rel_cdist = ((cdv[sub].double() ** 2 - best).abs() / best).max().item()
    res["max_rel_err_repgap"], res["max_rel_err_cdist"] = rel_repgap, rel_cdist
    print(f"max relative error of the squared NN distance vs float64: repgap {rel_repgap:.2e}, "
          f"torch.cdist {rel_cdist:.2e}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["cpu", "gpu"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--m", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--dims", default="64,128,256", help="cpu: comma-separated dimensions")
    ap.add_argument("--json")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    {"cpu": run_cpu, "gpu": run_gpu}[args.part](args)


if __name__ == "__main__":
    main()
