"""The benchmark command: every conv kernel on a layer suite, checked against float64, timed against PyTorch.

    python bench/run.py                 # quick suite, all threads
    python bench/run.py --suite dense --threads 1 2
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnnkernels as ck  # noqa: E402
from suites import SUITES  # noqa: E402
from timing import interleaved_medians  # noqa: E402


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _reference(x, w, layer):
    """float64 result to check every kernel against before timing it (PyTorch's if present, else ours in float64)."""
    torch = _torch()
    if torch is not None:
        return torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                                          None, layer.stride, layer.padding, layer.dilation, layer.groups).numpy()
    return ck.conv2d(x.astype(np.float64), w.astype(np.float64), None, layer.stride, layer.padding, layer.dilation,
                     layer.groups, algorithm="direct")


def bench_layer(layer, threads, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.batch, layer.C, layer.H, layer.W)).astype(np.float32)
    w = rng.standard_normal((layer.K, layer.C // layer.groups, layer.kernel, layer.kernel)).astype(np.float32)
    args = (None, layer.stride, layer.padding, layer.dilation, layer.groups)
    ref = _reference(x, w, layer)
    scale = np.abs(ref).max()
    funcs, errors = {}, {}
    for algorithm, backend in ck.available_kernels("conv2d") + [("auto", "auto")]:
        name = f"{algorithm}/{backend}"
        got = ck.conv2d(x, w, *args, algorithm=algorithm, backend=backend)
        errors[name] = float(np.abs(got - ref).max() / scale)
        funcs[name] = (lambda a=algorithm, b=backend: ck.conv2d(x, w, *args, algorithm=a, backend=b))
    tuning = ck.explain("conv2d", x, w, *args, retune=True, verbose=False)   # fresh tuning: its cost and pick
    torch = _torch()
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        with torch.no_grad():
            errors["torch"] = float(np.abs(torch.nn.functional.conv2d(tx, tw, *args).numpy() - ref).max() / scale)
        funcs["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, *args)
    times = interleaved_medians(funcs, repeats=repeats)
    return [{"layer": layer.name, "shape": layer.describe(), "category": layer.category, "threads": threads,
             "dtype": "float32", "kernel": k, "ms": t * 1e3, "gflops": layer.flops / t / 1e9, "rel_err": errors[k],
             "vs_torch": (times["torch"] / t) if "torch" in times else None,
             **({"pick": tuning["choice"], "tune_s": tuning["tuning_seconds"]} if k == "auto/auto" else {})}
            for k, t in times.items()]


def _geomean(values):
    values = [v for v in values if v]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def summarize(rows):
    """Per thread count: geomean ratio to torch per category, and how close the auto pick is to the fastest kernel."""
    lines = []
    for threads in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == threads]
        autos = [r for r in mine if r["kernel"] == "auto/auto"]
        for cat in sorted({r["category"] for r in autos}):
            g = _geomean([r["vs_torch"] for r in autos if r["category"] == cat])
            if g:
                lines.append(f"{threads} thr  {cat:<12} auto vs torch geomean {g:.2f}x")
        close, worst, costs = 0, 1.0, []
        for a in autos:
            fastest = min(r["ms"] for r in mine if r["layer"] == a["layer"] and "/" in r["kernel"]
                          and r["kernel"] != "auto/auto")
            ratio = a["ms"] / fastest
            close += ratio <= 1.05
            worst = max(worst, ratio)
            costs.append(a["tune_s"] / (a["ms"] / 1e3))
        if autos:
            lines.append(f"{threads} thr  autotuner: pick within 5% of the fastest on {close}/{len(autos)} layers, "
                         f"worst {worst:.2f}x; tuning cost {min(costs):.0f}-{max(costs):.0f}x the pick's time")
    return lines


def _set_threads(n):
    ck.set_num_threads(n)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(n)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="quick", choices=sorted(SUITES))
    parser.add_argument("--threads", type=int, nargs="+", default=[ck.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=os.path.join("bench", "results", "latest.json"))
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    print(f"cnnkernels {ck.__version__} | {platform.processor() or platform.machine()} | "
          f"C++: {ck.info()['cpp']['isa'] if ck.info()['cpp'] else 'not built'} | "
          f"torch: {_torch().__version__ if _torch() else 'not installed'} | float32, NCHW")
    rows = []
    header = f"{'layer':<15} {'shape':<26} {'thr':>3} {'kernel':<14} {'ms':>9} {'GFLOP/s':>8} {'vs torch':>8} {'rel err':>8}"
    for threads in args.threads:
        _set_threads(threads)
        print("\n" + header + "\n" + "-" * len(header))
        for layer in SUITES[args.suite]:
            for row in bench_layer(layer, threads, args.repeats):
                rows.append(row)
                ratio = f"{row['vs_torch']:.2f}x" if row["vs_torch"] is not None else "-"
                pick = f"  pick {row['pick']}, tuned in {row['tune_s']:.2f} s" if "pick" in row else ""
                print(f"{row['layer']:<15} {row['shape']:<26} {threads:>3} {row['kernel']:<14} {row['ms']:>9.3f} "
                      f"{row['gflops']:>8.1f} {ratio:>8} {row['rel_err']:>8.1e}{pick}", flush=True)
    print()
    for line in summarize(rows):
        print(line)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"suite": args.suite, "info": ck.info(), "rows": rows}, f, indent=1)
    print(f"\n{len(rows)} rows in {time.perf_counter() - t_start:.1f} s; JSON: {args.json}")


if __name__ == "__main__":
    main()
