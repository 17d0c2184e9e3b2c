"""What the exhaustive autotuning mode's tile variants win: per layer, its tuning's own interleaved timings.

    python bench/tile_variants.py [--suite dense] [--threads 1] [--repeats 3]

Per layer, --repeats fresh exhaustive tunings (CNNKERNELS_AUTOTUNE=exhaustive, retune=True) in this process:
each times every candidate, tile variants included, in interleaved rounds (a candidate's time is its
minimum). Shown: the fastest default kernel and the fastest tile variant (medians over the tunings), their
ratio (> 1: the variant is faster), and how many of the tunings picked a variant.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suites import SUITES, in_layout  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="dense", choices=sorted(SUITES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="fresh exhaustive tunings per layer")
    args = parser.parse_args(argv)
    os.environ.setdefault("CNNKERNELS_CACHE_DIR", tempfile.mkdtemp())   # the user's cache stays untouched
    import cnnkernels as ck
    ck.set_num_threads(args.threads)
    ck.set_autotune("exhaustive")
    print(f"{args.threads} thread(s), float32, exhaustive tunings per layer: {args.repeats}")
    print(f"{'layer':<18} {'shape':<30} {'best default':<24} {'ms':>8} {'best variant':<30} {'ms':>8} "
          f"{'default/variant':>15} {'variant picked':>14}")
    ratios = []
    for case in SUITES[args.suite]:
        x, w = case.inputs()
        op, call_args, kwargs = case.ck_call(in_layout(case, x), w)
        best = {False: [], True: []}
        picked = 0
        for _ in range(args.repeats):
            report = ck.explain(op, *call_args, **kwargs, retune=True, verbose=False)
            timed = {name: t for name, t in report["candidates"].items() if t is not None}
            for variant in (False, True):
                pool = {n: t for n, t in timed.items() if ("[" in n) == variant}
                best[variant].append(min(pool.items(), key=lambda kv: kv[1]) if pool else (None, np.nan))
            picked += "[" in report["choice"]
        if not any(name for name, _ in best[True]):
            print(f"{case.name:<18} {case.describe():<30} (no tile variant supports this layer)")
            continue
        (d_name, _), (v_name, _) = best[False][-1], best[True][-1]
        d_ms = float(np.median([t for _, t in best[False]])) * 1e3
        v_ms = float(np.median([t for _, t in best[True]])) * 1e3
        ratios.append(d_ms / v_ms)
        print(f"{case.name:<18} {case.describe():<30} {d_name:<24} {d_ms:8.3f} {v_name:<30} {v_ms:8.3f} "
              f"{d_ms / v_ms:14.3f}x {picked:>10}/{args.repeats}", flush=True)
    if ratios:   # what exhaustive gains on a layer: the best default's time over the best of all
        gain = float(np.exp(np.mean(np.log(np.maximum(ratios, 1.0)))))
        print(f"a tile variant faster than every default kernel by over 2% on {sum(r > 1.02 for r in ratios)} of "
              f"{len(ratios)} layers; best default / best of all, geomean {gain:.3f}x, highest {max(ratios):.3f}x")


if __name__ == "__main__":
    main()
