"""The benchmark command: every kernel on a layer suite, checked against float64, timed against PyTorch.

    python bench/run.py                 # quick suite, all threads
    python bench/run.py --suite dense --threads 1 2
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnnkernels as ck  # noqa: E402
from machine import measure  # noqa: E402
from networks import bench_network  # noqa: E402
from suites import NETWORKS, SUITES, in_layout  # noqa: E402
from timing import interleaved_samples  # noqa: E402
import ort  # noqa: E402

# The row of a channels-last layer's channels-first twin: our auto call on the NCHW input, same rounds.
OURS_NCHW = "ours NCHW"


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _reference(case, x, w):
    """float64 result every kernel is checked against before timing (PyTorch's if present, else our direct kernel)."""
    torch = _torch()
    x64 = x.astype(np.float64)
    w64 = None if w is None else w.astype(np.float64)
    if torch is not None:
        return case.run_torch(torch.nn.functional, torch.from_numpy(x64),
                              None if w64 is None else torch.from_numpy(w64)).numpy()
    return replace(case, layout="NCHW").run_ck(ck, x64, w64, algorithm="direct", backend="numba")


def bench_layer(case, threads, repeats):
    x, w = case.inputs()
    ref = _reference(case, x, w)
    nhwc = case.layout == "NHWC"
    xin = in_layout(case, x)
    scale = max(np.abs(ref).max(), 1e-30)
    funcs, errors = {}, {}
    op, args, kwargs = case.ck_call(xin, w)
    for algorithm, backend in ck.available_kernels(op, layout=case.layout) + [("auto", "auto")]:
        name = f"{algorithm}/{backend}"
        try:
            got = case.run_ck(ck, xin, w, algorithm=algorithm, backend=backend)
        except ValueError as exc:   # an algorithm that does not cover this layer (Winograd on 5x5, ...)
            if "does not support this geometry" in str(exc):
                continue
            raise
        if nhwc:
            got = got.transpose(0, 3, 1, 2)
        errors[name] = float(np.abs(got - ref).max() / scale)
        funcs[name] = (lambda a=algorithm, b=backend: case.run_ck(ck, xin, w, algorithm=a, backend=b))
    tuning = ck.explain(op, *args, **kwargs, retune=True, verbose=False)   # fresh tuning: its cost and pick
    # auto's error is that of the kernel it now runs: a tuning call returns whichever candidate ran last
    # (a Winograd F4 pick at 1.5e-05 showed the 3.8e-07 of the implicit GEMM that ran before it)
    got = case.run_ck(ck, xin, w)
    errors["auto/auto"] = float(np.abs((got.transpose(0, 3, 1, 2) if nhwc else got) - ref).max() / scale)
    if nhwc:   # our channels-first auto call on the same layer, timed in the same rounds (the NHWC target)
        ours_nchw = replace(case, layout="NCHW")
        errors[OURS_NCHW] = float(np.abs(ours_nchw.run_ck(ck, x, w) - ref).max() / scale)
        funcs[OURS_NCHW] = lambda: ours_nchw.run_ck(ck, x, w)
    torch = _torch()
    if torch is not None:
        F = torch.nn.functional
        tx = torch.from_numpy(x)
        if nhwc:
            tx = tx.contiguous(memory_format=torch.channels_last)
        tw = None if w is None else torch.from_numpy(w)
        with torch.no_grad():
            errors["torch"] = float(np.abs(case.run_torch(F, tx, tw).numpy() - ref).max() / scale)
        funcs["torch"] = lambda: case.run_torch(F, tx, tw)
    run_ort = ort.session(case, x, w, threads)
    if run_ort is not None:
        errors["onnxruntime"] = float(np.abs(run_ort() - ref).max() / scale)
        funcs["onnxruntime"] = run_ort
    samples = interleaved_samples(funcs, repeats=repeats)
    times = {k: statistics.median(v) for k, v in samples.items()}
    # NHWC against our NCHW: the median of the rounds' ratios (the two are timed one after the other in each
    # round, so a change of the machine's speed between rounds cancels out).
    vs_nchw = statistics.median(a / b for a, b in zip(samples[OURS_NCHW], samples["auto/auto"])) if nhwc else None
    return [{"layer": case.name, "shape": case.describe(), "category": case.category, "threads": threads,
             "dtype": "float32", "layout": case.layout, "kernel": k, "ms": t * 1e3,
             "gflop": case.flops / 1e9 if case.flops else None,
             "gflops": case.flops / t / 1e9 if case.flops else None, "gbps": case.nbytes / t / 1e9,
             "rel_err": errors[k], "vs_torch": (times["torch"] / t) if "torch" in times else None,
             "vs_ort": (times["onnxruntime"] / t) if "onnxruntime" in times else None,
             **({"pick": tuning["choice"], "tune_s": tuning.get("tuning_seconds") or 0.0,
                 "eligible": sorted(tuning["candidates"]), "vs_ours_nchw": vs_nchw,
                 # what the tuner itself measured and decided per candidate (explains a pick that lost)
                 "tuning_ms": {c: None if s is None else s * 1e3 for c, s in tuning["candidates"].items()},
                 "tuning_status": tuning.get("status", {})} if k == "auto/auto" else {})}
            for k, t in times.items()]


def _geomean(values):
    values = [v for v in values if v]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def _geomean_lowest(pairs):
    """'geomean Gx, lowest layer Vx' of (layer, ratio) pairs."""
    low = min(pairs, key=lambda p: p[1])
    return f"geomean {_geomean([v for _, v in pairs]):.2f}x, lowest {low[0]} {low[1]:.2f}x"


def _fastest_vs_torch(rows, layer, keep):
    """The best ratio to torch among the layer's rows whose kernel name passes keep (None if none)."""
    return max((r["vs_torch"] for r in rows if r["layer"] == layer and keep(r["kernel"]) and r["vs_torch"]),
               default=None)


def _off_pick_line(threads, auto, forced, ratio):
    """A pick over 5% slower than the fastest kernel: both kernels' times in the suite's rounds and in the tuning."""
    fastest = min(forced, key=forced.get)
    tuned = auto.get("tuning_ms") or {}

    def tuning(k):
        t = tuned.get(k)
        return (f"{t:.3f} ms" if t is not None else "not timed") + \
            (f" ({auto['tuning_status'][k]})" if k in auto.get("tuning_status", {}) else "")
    return (f"{threads} thr    {auto['layer']}: picked {auto['pick']} {ratio:.2f}x the fastest, {fastest} "
            f"({forced.get(auto['pick'], auto['ms']):.3f} against {forced[fastest]:.3f} ms); in the tuning "
            f"{auto['pick']} {tuning(auto['pick'])}, {fastest} {tuning(fastest)}")


def summarize(rows):
    """Per thread count: geomean ratio to torch per category, and how close the auto pick is to the fastest kernel."""
    lines = []
    for threads in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == threads]
        autos = [r for r in mine if r["kernel"] == "auto/auto"]
        for r in mine:
            if r["kernel"] == "cnnkernels" and r["vs_torch"]:
                lines.append(f"{threads} thr  network {r['layer']:<12} {r['ms']:.1f} ms, {r['vs_torch']:.2f}x torch, "
                             f"max abs error {r['rel_err']:.1e} x max abs output")
        def group(r):   # channels-last rows are compared with torch's channels_last: their own line
            return r["category"] + ("/NHWC" if r.get("layout") == "NHWC" else "")
        for cat in sorted({group(r) for r in autos}):
            ratios = [(r["layer"], r["vs_torch"]) for r in autos if group(r) == cat and r["vs_torch"]]
            if ratios:
                lines.append(f"{threads} thr  {cat:<17} auto vs torch {_geomean_lowest(ratios)}")
            g_ort = _geomean([r.get("vs_ort") for r in autos if group(r) == cat])
            if g_ort:
                lines.append(f"{threads} thr  {cat:<17} auto vs onnxruntime geomean {g_ort:.2f}x")
        # Channels-last against our own channels-first kernels (issue target: at least as fast), timed in the same
        # rounds of the channels-last layer (bench_layer's vs_ours_nchw).
        for cat in sorted({r["category"] for r in autos if r.get("layout") == "NHWC"}):
            pairs = [(r["layer"].removesuffix("_nhwc"), r["vs_ours_nchw"]) for r in autos
                     if r["category"] == cat and r.get("layout") == "NHWC" and r.get("vs_ours_nchw")]
            if pairs:
                lines.append(f"{threads} thr  {cat:<17} auto NHWC vs our NCHW (speed) geomean "
                             f"{_geomean([v for _, v in pairs]):.2f}x: " + ", ".join(f"{n} {v:.2f}x" for n, v in pairs))
        for cat in sorted({r["category"] for r in autos if r.get("layout") != "NHWC"}):
            # Where the tuner picked Winograd: the fastest exact C++ kernel per layer (im2col, implicit GEMM,
            # direct, ...), timed in the same rounds, against PyTorch: how the GEMM core alone stands.
            picks = [a for a in autos if a["category"] == cat and a.get("layout") != "NHWC"]
            if not any(a.get("pick", "").startswith("winograd") for a in picks):
                continue
            exact = [(a["layer"], _fastest_vs_torch(mine, a["layer"], lambda k: k.endswith("/cpp") and
                                                    not k.startswith("winograd"))) for a in picks]
            if all(v for _, v in exact):
                lines.append(f"{threads} thr  {cat:<12} without Winograd (fastest exact C++ kernel per layer) vs torch "
                             f"{_geomean_lowest(exact)}")
        errors = [(a["rel_err"], a["layer"]) for a in autos if a.get("rel_err") is not None]
        if errors:
            worst_err = max(errors)
            lines.append(f"{threads} thr  auto picks' largest error vs float64: {worst_err[0]:.1e} x max abs output "
                         f"({worst_err[1]})")
        for cat in sorted({r["category"] for r in autos}):
            # The Numba backend alone (no C++ build): its fastest kernel per layer, timed in the same rounds.
            best = [_fastest_vs_torch(mine, a["layer"], lambda k: k.endswith("/numba")) for a in autos
                    if a["category"] == cat]
            g = _geomean(best)
            if g and all(best):
                lines.append(f"{threads} thr  {cat:<12} Numba alone (fastest Numba kernel per layer) vs torch "
                             f"geomean {g:.2f}x")
        close, worst, calls_close, costs, off = 0, 1.0, 0, [], []
        for a in autos:
            # The fastest kernel the tuner may pick: its candidates under the precision policy (the
            # default policy excludes Winograd F6, for its error).
            eligible = set(a.get("eligible") or [])
            forced = {r["kernel"]: r["ms"] for r in mine if r["layer"] == a["layer"] and "/" in r["kernel"]
                      and r["kernel"] != "auto/auto" and (not eligible or r["kernel"] in eligible)}
            fastest = min(forced.values())
            # The choice: the picked kernel's forced time (the same timing as every candidate's); the auto
            # call itself (dispatch included, its own timing, so noise too) is reported beside it.
            ratio = forced.get(a.get("pick"), a["ms"]) / fastest
            close += ratio <= 1.05
            if ratio > 1.05:
                off.append(_off_pick_line(threads, a, forced, ratio))
            calls_close += a["ms"] / fastest <= 1.05
            worst = max(worst, ratio)
            if a["tune_s"]:
                costs.append((a["tune_s"], a["tune_s"] <= max(0.3, 30 * a["ms"] / 1e3)))
        if autos:
            lines.append(f"{threads} thr  autotuner: pick within 5% of the fastest allowed by the precision policy on "
                         f"{close}/{len(autos)} layers (auto calls themselves: {calls_close}/{len(autos)}), "
                         f"worst {worst:.2f}x" + (f"; tuning took {min(c for c, _ in costs):.2f}-"
                                                  f"{max(c for c, _ in costs):.2f} s, within max(0.3 s, 30x the pick's "
                                                  f"time) on {sum(ok for _, ok in costs)}/{len(costs)} layers"
                                                  if costs else ""))
            lines.extend(off)
    # Thread scaling of the auto pick on the large layers (over 1 GFLOP, where a second core has work enough):
    # timed in alternate rounds (thread_scaling) where measured, beside the ratio of the two passes' medians.
    counts = sorted({r["threads"] for r in rows})
    if len(counts) > 1:
        auto = {(r["layer"], r["threads"]): r for r in rows if r["kernel"] == "auto/auto"}
        hi = counts[-1]
        big = [(layer, r.get("speedup_interleaved"), auto[(layer, counts[0])]["ms"] / r["ms"])
               for (layer, t), r in auto.items()
               if t == hi and (layer, counts[0]) in auto and (r.get("gflop") or 0) > 1.0]
        if big:
            lines.append(f"{hi} thr / {counts[0]} thr  auto speed-up on layers over 1 GFLOP, alternate rounds "
                         f"(the two passes' medians): " + ", ".join(
                             f"{layer} {inter:.2f}x ({passes:.2f}x)" if inter else f"{layer} - ({passes:.2f}x)"
                             for layer, inter, passes in big))
    return lines


def plot(rows, limits, path):
    """Per-layer GFLOP/s by kernel, and a roofline (FLOP per input byte vs GFLOP/s) with the measured limits."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    threads = max(limits)
    mine = [r for r in rows if r["threads"] == threads and r["gflops"]]
    if not mine:
        return ""   # nothing with FLOPs to plot (pooling, networks)
    layers = list(dict.fromkeys(r["layer"] for r in mine))
    kernels = list(dict.fromkeys(r["kernel"] for r in mine))
    fig, (bars, roof) = plt.subplots(1, 2, figsize=(16, 6))
    width = 0.8 / len(kernels)
    for i, k in enumerate(kernels):
        vals = [next((r["gflops"] for r in mine if r["layer"] == name and r["kernel"] == k), 0) for name in layers]
        bars.bar([j + i * width for j in range(len(layers))], vals, width, label=k)
    bars.axhline(limits[threads]["sgemm_gflops"], color="k", ls="--", label="sgemm (measured)")
    bars.set_xticks([j + 0.4 for j in range(len(layers))], layers, rotation=60, ha="right", fontsize=8)
    bars.set_ylabel("GFLOP/s")
    bars.set_title(f"float32, {threads} thread(s)")
    bars.legend(fontsize=7)
    intensity = [r["gflops"] / r["gbps"] for r in mine if r["gbps"]]
    peak, bw = limits[threads]["sgemm_gflops"], limits[threads]["copy_gbps"]
    xs = np.logspace(-1, 4, 100)
    roof.loglog(xs, np.minimum(peak, bw * xs), "k-", label="min(sgemm, copy bandwidth x intensity)")
    roof.scatter(intensity, [r["gflops"] for r in mine if r["gbps"]], s=12)
    roof.set_xlabel("FLOP per byte of input")
    roof.set_ylabel("GFLOP/s")
    roof.set_title("roofline")
    roof.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def thread_scaling(case, lo, hi, repeats):
    """auto's speed-up from `lo` to `hi` threads on one layer: the two thread counts timed in alternate rounds,
    the median of the rounds' ratios. (The suite's passes at each thread count run minutes apart, so a change of
    the machine's speed between them reads as scaling: a VGG layer 1.79x and a batch-8 one 2.60x in one run.)"""
    x, w = case.inputs()
    xin = in_layout(case, x)

    def at(n):
        def call():
            ck.set_num_threads(n)
            case.run_ck(ck, xin, w)
        return call
    samples = interleaved_samples({lo: at(lo), hi: at(hi)}, repeats=max(repeats, 5))
    return statistics.median(a / b for a, b in zip(samples[lo], samples[hi]))


def _set_threads(n):
    ck.set_num_threads(n)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(n)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="quick", choices=sorted(set(SUITES) | set(NETWORKS)))
    parser.add_argument("--threads", type=int, nargs="+", default=[ck.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=os.path.join("bench", "results", "latest.json"))
    args = parser.parse_args(argv)
    if "CNNKERNELS_CACHE_DIR" not in os.environ:
        # Tune afresh in this run: a pick cached during an earlier, busier moment would misreport the kernels.
        import tempfile
        os.environ["CNNKERNELS_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnkernels-bench-")

    t_start = time.perf_counter()
    print(f"cnnkernels {ck.__version__} | {platform.processor() or platform.machine()} | "
          f"C++: {ck.info()['cpp']['isa'] if ck.info()['cpp'] else 'not built'} | "
          f"torch: {_torch().__version__ if _torch() else 'not installed'} | "
          f"onnxruntime: {'yes' if ort.available() else 'not installed'} | float32, NCHW")
    rows = []
    header = (f"{'layer':<18} {'shape':<32} {'GFLOP':>8} {'thr':>3} {'kernel':<22} {'ms':>9} {'GFLOP/s':>8} {'%peak':>6} "
              f"{'GB/s':>7} {'vs torch':>8} {'vs ort':>7} {'rel err':>8}")
    limits = {}
    for threads in args.threads:
        _set_threads(threads)
        limits[threads] = measure(threads)
        print(f"\nmachine, {threads} thread(s): sgemm {limits[threads]['sgemm_gflops']:.0f} GFLOP/s (numpy BLAS), "
              f"copy {limits[threads]['copy_gbps']:.1f} GB/s")
        print(header + "\n" + "-" * len(header))
        cases = [("layer", c) for c in SUITES.get(args.suite, [])] + \
                [("network", n) for n in NETWORKS.get(args.suite, [])]
        for i, (kind, case) in enumerate(cases):
            # Progress (stderr, overwritten): tuning and timing a layer takes seconds.
            print(f"\r[{i + 1}/{len(cases)}] {case if kind == 'network' else case.name}: tuning and timing...",
                  end="", file=sys.stderr, flush=True)
            rows_here = bench_layer(case, threads, args.repeats) if kind == "layer" else \
                bench_network(case, threads, args.repeats, _torch())
            print("\r\033[K", end="", file=sys.stderr, flush=True)
            for row in rows_here:
                row["pct_peak"] = 100 * row["gflops"] / limits[threads]["sgemm_gflops"] if row["gflops"] else None
                rows.append(row)
                ratio = f"{row['vs_torch']:.2f}x" if row["vs_torch"] is not None else "-"
                ratio_ort = f"{row['vs_ort']:.2f}x" if row.get("vs_ort") is not None else "-"
                pick = f"  pick {row['pick']}, tuned in {row['tune_s']:.2f} s" if "pick" in row else ""
                gflops = f"{row['gflops']:>8.1f}" if row["gflops"] else f"{'-':>8}"
                gbps = f"{row['gbps']:>7.1f}" if row["gbps"] else f"{'-':>7}"
                pct = f"{row['pct_peak']:>6.0f}" if row["pct_peak"] else f"{'-':>6}"
                err = f"{row['rel_err']:>8.1e}" if row["rel_err"] is not None else f"{'-':>8}"
                work = f"{row['gflop']:>8.3g}" if row.get("gflop") else f"{'-':>8}"
                print(f"{row['layer']:<18} {row['shape']:<32} {work} {threads:>3} {row['kernel']:<22} {row['ms']:>9.3f} "
                      f"{gflops} {pct} {gbps} {ratio:>8} {ratio_ort:>7} {err}{pick}", flush=True)
    if len(args.threads) > 1:
        lo, hi = min(args.threads), max(args.threads)
        for case in SUITES.get(args.suite, []):
            if (case.flops or 0) > 1e9:
                print(f"\r[scaling] {case.name}: {lo} and {hi} threads in alternate rounds...", end="",
                      file=sys.stderr, flush=True)
                speedup = thread_scaling(case, lo, hi, args.repeats)
                for row in rows:
                    if row["layer"] == case.name and row["threads"] == hi and row["kernel"] == "auto/auto":
                        row["speedup_interleaved"] = speedup
        print("\r\033[K", end="", file=sys.stderr, flush=True)
        _set_threads(args.threads[-1])
    print()
    for line in summarize(rows):
        print(line)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"suite": args.suite, "info": ck.info(), "machine": list(limits.values()), "rows": rows}, f, indent=1)
    png = plot(rows, limits, os.path.splitext(args.json)[0] + ".png")
    print(f"\n{len(rows)} rows in {time.perf_counter() - t_start:.1f} s; JSON: {args.json}"
          + (f"; plot: {png}" if png else "" if png == "" else " (pip install matplotlib for a PNG plot)"))


if __name__ == "__main__":
    main()
