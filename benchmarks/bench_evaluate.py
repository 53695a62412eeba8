#!/usr/bin/env python
"""Benchmark of ``repgap.evaluate`` against ``prdc`` (Naeem et al. 2020), and repgap alone at large n.

Every measurement runs in a fresh Python process per tool (this script with
``--_child``), which loads the data from ``.npy`` files, imports the tool and
then calls it: one cold call (not counted: it includes any first-call cost),
then ``--repeats`` timed calls, whose median is reported. A cold call longer
than ``--slow-s`` seconds is not repeated (that single call is reported, runs
= 1), as in ``bench_knn.py``. What is timed:

* repgap  ``repgap.evaluate(generated, train, k=5, n_boot=1000, random_state=0,
          n_jobs=threads)`` (numpy float32 arrays; with ``--device DEV`` torch
          tensors on DEV, synchronised before and after); in section 1 also
          ``n_boot=0`` (interleaved), whose difference is the bootstrap's share
* prdc    ``prdc.compute_prdc(train, generated, nearest_k=5)`` (its print
          silenced): three dense distance matrices from scikit-learn

Memory: the peak resident set growth of the call, i.e. the kernel's high-water
mark ``VmHWM`` after the call (reset just before it by writing ``5`` to
``/proc/self/clear_refs``) minus ``VmRSS`` just before it (the data already
loaded); the largest over all calls of the process is reported. Where
``clear_refs`` cannot be written, ``ru_maxrss`` of the process after its cold
call minus ``VmRSS`` before it. Section 1 also gives tracemalloc's peak over one
extra call (numpy's allocations only: buffers the compiled extension takes with
``malloc`` are not traced, so it is a lower bound for repgap). With
``--device cuda`` also the CUDA allocator's peak above what was allocated
before the call (``torch.cuda.max_memory_allocated``).

Data (float32, seed 0): features that look like a network's: a random ReLU
layer of a 64-d standard normal latent, ``relu(z W + b) + 0.02 e`` with ``W``
(64 x D) standard normal / 8, ``b`` of standard deviation 0.5 and ``e``
standard normal; the generated set is the same map of a slightly shifted and
scaled latent, ``z' = 1.1 z + 0.1``. Training and generated sets have n rows
each.

1. repgap against prdc at n = 1e4, D = 2048, k = 5: times, peak memory, the
   ratio repgap / prdc (target <= 0.2) and both tools' precision, recall,
   density and coverage with their largest absolute difference.
2. repgap alone at n = 1e5 (D = 64 and 8) and n = 1e6 (D = 8 and 64), each
   n = 1e6 row only when its estimate from n = 1e5 at the same D (x 100,
   quadratic in n: an upper bound) is under ``--budget-s`` (default 600 s) or
   with ``--force-large``, with the memory prdc's three n x n float32
   matrices would take (3 * 4 * n^2 bytes).

Usage::

    python benchmarks/bench_evaluate.py --quick                 # smoke run, n scaled by 0.01 (seconds)
    python benchmarks/bench_evaluate.py --scale 0.1             # every section at a tenth of n
    python benchmarks/bench_evaluate.py                         # the benchmark (writes results/evaluate.md)
    python benchmarks/bench_evaluate.py --device cuda           # repgap on torch CUDA tensors (prdc on the CPU)
"""
import argparse
import contextlib
import datetime
import io
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

# Run from the repository root: make `import repgap` pick up ./repgap (here and in the children).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_knn import blas_state, cpu_model  # noqa: E402  (the same machine and BLAS lines)

SEED = 0
K = 5
N_BOOT = 1000
LATENT = 64
NOISE = 0.02
GEN_SCALE, GEN_SHIFT = 1.1, 0.1
CHUNK = 1 << 16
#: (n, D) of section 1 and section 2 at scale 1
VS_PRDC = (10_000, 2048)
ALONE = [(100_000, 64), (100_000, 8), (1_000_000, 8), (1_000_000, 64)]
MiB = float(1 << 20)
GiB = float(1 << 30)


# ----------------------------------------------------------------------------- data
def write_features(path_train, path_gen, n, D, seed=SEED):
    """Training and generated features (float32 .npy files, n rows each), chunk by chunk."""
    mrng = np.random.default_rng([seed, D])  # the map: the same for both sets
    W = mrng.standard_normal((LATENT, D)) / math.sqrt(LATENT)
    b = 0.5 * mrng.standard_normal(D)
    for path, (scale, shift), sub in ((path_train, (1.0, 0.0), 1), (path_gen, (GEN_SCALE, GEN_SHIFT), 2)):
        rng = np.random.default_rng([seed, D, n, sub])
        X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
        for s in range(0, n, CHUNK):
            c = min(CHUNK, n - s)
            z = scale * rng.standard_normal((c, LATENT)) + shift
            X[s : s + c] = np.maximum(z @ W + b, 0.0) + NOISE * rng.standard_normal((c, D))
        X.flush()
        del X


# ----------------------------------------------------------------------------- the child process
def _status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(spec):
    """Load the data, run one tool as the spec says, print one RESULT line of JSON."""
    import resource

    threads = spec["threads"]
    G = np.load(spec["gen"])
    T = np.load(spec["train"])
    tool, device = spec["tool"], spec["device"]
    sync = None
    cuda = False
    if tool == "repgap":
        import repgap

        if device != "numpy":
            import torch

            torch.set_num_threads(threads)
            dev = torch.device(device)
            cuda = dev.type == "cuda"
            G, T = torch.from_numpy(G).to(dev), torch.from_numpy(T).to(dev)
            if cuda:
                sync = torch.cuda.synchronize
                sync()

        def run(n_boot):
            ev = repgap.evaluate(G, T, k=spec["k"], n_boot=n_boot, random_state=0, n_jobs=threads, progress=False)
            return {name: float(getattr(ev, name).value) for name in ("precision", "recall", "density", "coverage")}
    else:
        import prdc

        def run(n_boot):
            with contextlib.redirect_stdout(io.StringIO()):
                out = prdc.compute_prdc(T, G, spec["k"])
            return {name: float(out[name]) for name in ("precision", "recall", "density", "coverage")}

    hwm_ok = _reset_hwm()
    growth = []
    gpu_peak = []

    def call(n_boot):
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        before = _status_mib("VmRSS")
        if hwm_ok:
            _reset_hwm()
        t0 = time.perf_counter()
        res = run(n_boot)
        if sync is not None:
            sync()
        dt = time.perf_counter() - t0
        if hwm_ok:
            growth.append(_status_mib("VmHWM") - before)
        elif not growth:  # fallback: only the cold call, from ru_maxrss
            growth.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 - before)
        if cuda:
            gpu_peak.append((torch.cuda.max_memory_allocated() - base) / MiB)
        return dt, res

    rss_loaded = _status_mib("VmRSS")
    cold, res = call(spec["n_boot"])
    times, times0 = [], []
    if cold <= spec["slow_s"]:
        for _ in range(spec["repeats"]):
            dt, res = call(spec["n_boot"])
            times.append(dt)
            if spec.get("also_no_boot"):
                dt0, _ = call(0)
                times0.append(dt0)
    else:
        times = [cold]
    if spec.get("also_no_boot") and not times0:
        dt0, _ = call(0)
        times0.append(dt0)
    tm_peak = None
    if spec.get("tracemalloc"):
        import tracemalloc

        tracemalloc.start()
        run(spec["n_boot"])
        tm_peak = tracemalloc.get_traced_memory()[1] / MiB
        tracemalloc.stop()
    out = {"tool": tool, "device": device, "cold_s": cold, "times_s": times, "median_s": statistics.median(times),
           "runs": len(times), "times_no_boot_s": times0,
           "median_no_boot_s": statistics.median(times0) if times0 else None,
           "peak_rss_growth_mib": max(growth), "rss_growth_per_call_mib": growth,
           "memory_method": "VmHWM (clear_refs) - VmRSS" if hwm_ok else "ru_maxrss - VmRSS (cold call)",
           "rss_loaded_mib": rss_loaded, "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
           "tracemalloc_peak_mib": tm_peak, "gpu_peak_mib": max(gpu_peak) if gpu_peak else None, "values": res}
    print("RESULT " + json.dumps(out), flush=True)


def run_child(spec):
    env = dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = str(spec["threads"])
    env.update(OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t)
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child", json.dumps(spec)],
                       capture_output=True, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        sys.stderr.write(p.stdout + p.stderr)
        raise RuntimeError(f"{spec['tool']} child failed (rc {p.returncode})")
    if p.stderr.strip():
        # warnings of the child, shortened
        sys.stderr.write("\n".join("    [child] " + ln for ln in p.stderr.strip().splitlines()[-6:]) + "\n")
    return json.loads(lines[-1][len("RESULT "):])


# ----------------------------------------------------------------------------- machine and software
def versions():
    import importlib.metadata as md

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("repgap", "prdc", "scipy", "scikit-learn", "torch", "threadpoolctl"):
        try:
            out[dist] = md.version(dist)
        except Exception:
            out[dist] = "not installed"
    try:
        import repgap

        out["repgap"] = repgap.__version__
    except Exception as exc:  # pragma: no cover
        out["repgap"] = f"unavailable ({exc})"
    return out


def mem_total_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / GiB
    except OSError:
        pass
    return float("nan")


def git_state():
    """The commit of the checkout, and whether repgap/ or csrc/ differ from it (as bench_suite.py)."""
    try:
        head = subprocess.run(["git", "-C", _ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", _ROOT, "status", "--porcelain", "--", "repgap", "csrc"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"git {head}" + (" + uncommitted changes in repgap/ or csrc/" if dirty else " (clean)")


def device_name(device):
    if device == "numpy":
        return "numpy arrays (CPU)"
    import torch

    if device.startswith("cuda"):
        return f"torch tensors on {device} ({torch.cuda.get_device_name(torch.device(device))}), torch {torch.__version__}"
    return f"torch tensors on {device}, torch {torch.__version__}"


# ----------------------------------------------------------------------------- sections
def scaled(n, scale):
    return max(50, int(round(n * scale)))


def prdc_need_gib(n):
    return 3 * 4 * float(n) ** 2 / GiB


def section_vs_prdc(args, tmp, info):
    n, D = scaled(VS_PRDC[0], args.scale), VS_PRDC[1]
    ft, fg = os.path.join(tmp, f"train_{n}_{D}.npy"), os.path.join(tmp, f"gen_{n}_{D}.npy")
    write_features(ft, fg, n, D)
    base = {"train": ft, "gen": fg, "k": K, "threads": args.threads, "repeats": args.repeats, "slow_s": args.slow_s,
            "tracemalloc": True}
    print(f"\n--- 1. repgap.evaluate vs prdc: n = m = {n}, D = {D}, k = {K}", flush=True)
    rg = run_child(dict(base, tool="repgap", device=args.device, n_boot=N_BOOT, also_no_boot=True))
    print(f"  repgap  median {rg['median_s']:.3f} s ({rg['runs']} runs), n_boot=0 {rg['median_no_boot_s']:.3f} s, "
          f"peak RSS +{rg['peak_rss_growth_mib']:.0f} MiB", flush=True)
    pr = run_child(dict(base, tool="prdc", device="numpy", n_boot=0))
    print(f"  prdc    median {pr['median_s']:.3f} s ({pr['runs']} runs), peak RSS +{pr['peak_rss_growth_mib']:.0f} MiB",
          flush=True)
    diff = max(abs(rg["values"][m] - pr["values"][m]) for m in rg["values"])
    return {"n": n, "D": D, "repgap": rg, "prdc": pr, "ratio": rg["median_s"] / pr["median_s"],
            "max_abs_diff": diff, "prdc_matrices_gib": prdc_need_gib(n)}


def section_alone(args, tmp, info):
    rows = []
    done = {}
    for n0, D in ALONE:
        n = scaled(n0, args.scale)
        row = {"n": n, "D": D, "prdc_matrices_gib": prdc_need_gib(n)}
        if n0 == 1_000_000:  # estimated from n = 1e5 at the same D
            from repgap.evaluation import BALL_TREE_MAX_DIM

            ref = done.get((scaled(100_000, args.scale), D))
            # k-d trees (low D): n log n, doubled for safety; brute force: quadratic in n
            tree = D <= BALL_TREE_MAX_DIM
            growth = 2 * (n / ref["n"]) * math.log(n) / math.log(ref["n"]) if ref and tree else \
                (n / ref["n"]) ** 2 if ref else float("inf")
            est = ref["median_s"] * growth if ref else float("inf")
            row["estimate_s"] = est
            if est > args.budget_s and not args.force_large:
                why = ("k-d tree searches and ball queries, 2 x n log n" if D <= BALL_TREE_MAX_DIM else
                       "the searches and the ball pass are brute force, quadratic in n")
                row["skipped"] = (f"estimated {est:.0f} s (the n = {ref['n'] if ref else '?'} x {D} time "
                                  f"{ref['median_s'] if ref else float('nan'):.1f} s x {growth:.3g}; {why}) > "
                                  f"--budget-s {args.budget_s:g} s; --force-large runs it anyway")
                print(f"\n--- 2. n = {n}, D = {D}: skipped: {row['skipped']}", flush=True)
                rows.append(row)
                continue
        print(f"\n--- 2. repgap.evaluate alone: n = m = {n}, D = {D}, k = {K}", flush=True)
        ft, fg = os.path.join(tmp, f"train_{n}_{D}.npy"), os.path.join(tmp, f"gen_{n}_{D}.npy")
        write_features(ft, fg, n, D)
        res = run_child({"train": ft, "gen": fg, "k": K, "threads": args.threads, "repeats": args.repeats,
                         "slow_s": args.slow_s, "tool": "repgap", "device": args.device, "n_boot": N_BOOT})
        for f in (ft, fg):
            os.remove(f)
        row.update(res)
        done[(n, D)] = row
        print(f"  repgap  median {res['median_s']:.3f} s ({res['runs']} runs), cold {res['cold_s']:.3f} s, "
              f"peak RSS +{res['peak_rss_growth_mib']:.0f} MiB; prdc's matrices would take "
              f"{row['prdc_matrices_gib']:.1f} GiB", flush=True)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- report
def fmt_values(v):
    return " | ".join(f"{v[m]:.4f}" for m in ("precision", "recall", "density", "coverage"))


def report(args, info, s1, s2, total):
    L = ["# `repgap.evaluate` against `prdc` (`benchmarks/bench_evaluate.py`)", ""]
    if args.quick or args.scale != 1.0:
        L += [f"**Quick smoke run, not the benchmark** (n scaled by {args.scale:g}, {args.repeats} repeat(s)): "
              "these numbers only show that every section of the script runs end to end.", ""]
    L += [f"Command: `{info['command']}`; {info['date']}; {total:.0f} s in all.",
          f"Machine: {info['cpu']}, {info['threads']} threads used of {info['cores']} available cores, "
          f"{info['ram_gib']:.0f} GiB RAM; repgap on {info['device']}.",
          "Software: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + f"; repgap {info['git']}.",
          f"BLAS (both tools' products): {info['blas']}.", "",
          "Each tool runs in a fresh process that loads the data first; one cold call (not counted), then the median "
          f"of `--repeats` calls (a cold call over {args.slow_s:g} s is reported alone: runs = 1). Peak RSS growth: "
          "the kernel's high-water mark VmHWM after the call (reset before it through /proc/self/clear_refs) minus "
          "VmRSS before it, the largest over the process's calls; tracemalloc: the peak of numpy's allocations over "
          "one extra call (a lower bound for repgap, whose compiled buffers are not traced).",
          f"Data: float32, relu(z W + b) + {NOISE:g} noise of a {LATENT}-d Gaussian latent z; generated: the same map "
          f"of {GEN_SCALE:g} z + {GEN_SHIFT:g}; n training and n generated rows; k = {K}; repgap with "
          f"n_boot = {N_BOOT}, random_state = 0.", ""]
    if s1 is not None:
        rg, pr = s1["repgap"], s1["prdc"]
        L += [f"## 1. Against prdc: n = m = {s1['n']}, D = {s1['D']}, k = {K}", "",
              "| tool | median s | runs | cold s | peak RSS growth MiB | tracemalloc peak MiB | precision | recall "
              "| density | coverage |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in ((f"repgap.evaluate (n_boot={N_BOOT})", rg), ("prdc.compute_prdc", pr)):
            tm = f"{r['tracemalloc_peak_mib']:.0f}" if r.get("tracemalloc_peak_mib") is not None else "-"
            L.append(f"| {name} | {r['median_s']:.3f} | {r['runs']} | {r['cold_s']:.3f} | "
                     f"{r['peak_rss_growth_mib']:.0f} | {tm} | {fmt_values(r['values'])} |")
        boot = rg["median_s"] - rg["median_no_boot_s"]
        L += ["", f"* ratio repgap / prdc: **{s1['ratio']:.3f}** (target <= 0.2: "
                  f"{'met' if s1['ratio'] <= 0.2 else 'not met'}); memory ratio "
                  f"{rg['peak_rss_growth_mib'] / max(pr['peak_rss_growth_mib'], 1e-9):.3f}.",
              f"* the four numbers: largest absolute difference {s1['max_abs_diff']:.3g}.",
              f"* bootstrap: repgap with n_boot = 0 takes {rg['median_no_boot_s']:.3f} s; the {N_BOOT} replicates "
              f"add {boot:.3f} s ({100 * boot / rg['median_s']:.1f} % of the call).",
              f"* prdc's three n x n float32 matrices: {s1['prdc_matrices_gib']:.2f} GiB (3 x 4 x n^2 bytes)."]
        if rg.get("gpu_peak_mib") is not None:
            L.append(f"* repgap's CUDA allocator peak above the data: {rg['gpu_peak_mib']:.0f} MiB.")
        L.append("")
    if s2:
        L += [f"## 2. repgap alone at large n (k = {K}, n_boot = {N_BOOT})", "",
              "| n = m | D | median s | runs | cold s | peak RSS growth MiB | prdc's 3 n x n float32 matrices "
              "| precision | recall | density | coverage |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in s2:
            need = f"{r['prdc_matrices_gib']:,.0f} GiB" if r["prdc_matrices_gib"] >= 10 else \
                f"{r['prdc_matrices_gib']:.2f} GiB"
            if "skipped" in r:
                L.append(f"| {r['n']} | {r['D']} | skipped | - | - | - | {need} | - | - | - | - |")
            else:
                L.append(f"| {r['n']} | {r['D']} | {r['median_s']:.3f} | {r['runs']} | {r['cold_s']:.3f} | "
                         f"{r['peak_rss_growth_mib']:.0f} | {need} | {fmt_values(r['values'])} |")
        for r in s2:
            if "skipped" in r:
                L.append(f"\nn = {r['n']}, D = {r['D']} skipped: {r['skipped']}.")
            if r.get("gpu_peak_mib") is not None:
                L.append(f"\nn = {r['n']}, D = {r['D']}: CUDA allocator peak above the data {r['gpu_peak_mib']:.0f} MiB.")
        big = max(s2, key=lambda r: r["n"])
        small = min(s2, key=lambda r: r["n"])
        L += ["", "prdc holds n x n float32 distance matrices (and, in `get_kth_value`, argpartition's int64 "
                  f"indices of the same size): at n = {small['n']} they would take {small['prdc_matrices_gib']:,.1f} "
                  f"GiB, {small['prdc_matrices_gib'] / info['ram_gib']:.2g} times this machine's "
                  f"{info['ram_gib']:.0f} GiB of RAM, and at n = {big['n']} {big['prdc_matrices_gib']:,.2f} GiB "
                  f"({big['prdc_matrices_gib'] / info['ram_gib']:.2g} times)."]
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------- driver
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="smoke run: --scale 0.01 and 1 repeat unless given (seconds)")
    p.add_argument("--scale", type=float, default=None, help="multiply every n by this (default 1; --quick: 0.01)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls after the cold one (default 3; --quick: 1)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="threads for both tools (BLAS, OpenMP, repgap n_jobs; default: the available cores)")
    p.add_argument("--device", default="numpy",
                   help="what repgap gets: 'numpy' (arrays, default) or a torch device ('cuda', 'cuda:1', 'cpu'); "
                        "prdc always runs on numpy arrays on the CPU")
    p.add_argument("--slow-s", type=float, default=60.0, help="a cold call longer than this is not repeated")
    p.add_argument("--budget-s", type=float, default=600.0,
                   help="run an n = 1e6 row only when its estimate (from n = 1e5 at the same D, x 100) is below this")
    p.add_argument("--force-large", action="store_true", help="run the n = 1e6 rows whatever their estimate")
    p.add_argument("--sections", default="1,2", help="comma-separated sections to run (1: vs prdc, 2: alone)")
    p.add_argument("--out", default=None, help="markdown report (default benchmarks/results/evaluate.md, or "
                                               "evaluate_<device>.md for a torch device)")
    p.add_argument("--json", default=None, help="also write every result, with every single time, as JSON")
    p.add_argument("--tmp", default=None, help="folder for the data files (default: a fresh one in $TMPDIR)")
    args = p.parse_args(argv)
    if args._child:
        child(json.loads(args._child))
        return 0
    args.scale = args.scale if args.scale is not None else (0.01 if args.quick else 1.0)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if args.device != "numpy":
        try:
            import torch
        except ImportError:
            print(f"--device {args.device}: torch is not installed; skipped.")
            return 0
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            print(f"--device {args.device}: CUDA is not available on this machine (torch {torch.__version__}); "
                  "skipped. Run without --device for the CPU benchmark.")
            return 0
    if args.out is None:
        name = "evaluate.md" if args.device == "numpy" else f"evaluate_{args.device.replace(':', '')}.md"
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", name)
    sections = {s.strip() for s in args.sections.split(",")}
    info = {"command": "python benchmarks/bench_evaluate.py" + "".join(" " + a for a in (sys.argv[1:] if argv is None
                                                                                          else argv)),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "threads": args.threads,
            "ram_gib": mem_total_gib(), "versions": versions(), "git": git_state(), "device": device_name(args.device),
            "scale": args.scale, "repeats": args.repeats, "quick": args.quick, "blas": blas_state()}
    print(f"CPU: {info['cpu']} ({info['cores']} cores); threads={args.threads}; repeats={args.repeats}; "
          f"scale={args.scale:g}; repgap on {info['device']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + f"; {info['git']}", flush=True)
    tmp = args.tmp or tempfile.mkdtemp(prefix="bench_evaluate_")
    os.makedirs(tmp, exist_ok=True)
    t_all = time.perf_counter()
    try:
        s1 = section_vs_prdc(args, tmp, info) if "1" in sections else None
        s2 = section_alone(args, tmp, info) if "2" in sections else []
    finally:
        if args.tmp is None:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t_all
    md = report(args, info, s1, s2, total)
    print("\n" + md)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(md)
    print(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "vs_prdc": s1, "alone": s2, "total_s": total}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
