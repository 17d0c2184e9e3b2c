"""The exhaustive autotuning mode's tile variants against their default kernels, interleaved A/B per layer.

    python bench/tile_variants.py [--suite dense] [--threads 1] [--reps 40]

Per layer and per C++ kernel with tile variants that supports it (Winograd F2, F4, F6 and the implicit
GEMM): --reps rounds, each running the default kernel and its variants once
in a random order, on the same arrays and prepared weights. Shown: the median times and each variant's
speed-up over its default (> 1: the variant is faster). (The tuner's own timings say the same less cleanly:
they are minima over rounds that a machine speeding up or slowing down during one tuning skews.)
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suites import SUITES, ConvLayer  # noqa: E402
from timing import interleaved_medians  # noqa: E402


def _geometry(case):
    from cnnkernels._geometry import ConvGeometry
    oh, ow = case.out_hw
    return ConvGeometry(case.batch, case.C, case.K, case.groups, (1, case.H, case.W), (1, oh, ow),
                        (1, case.kernel, case.kernel), (1, case.stride, case.stride), (0, case.padding, case.padding),
                        (1, case.dilation, case.dilation))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="dense", choices=sorted(SUITES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=40, help="interleaved rounds per layer and kernel")
    args = parser.parse_args(argv)
    import cnnkernels as ck
    from cnnkernels import _registry
    ck.set_num_threads(args.threads)
    conv = [k for k in _registry.KERNELS["conv"] if k.layout == _registry.CHANNELS_FIRST and k.backend == "cpp"]
    families = {(k.algorithm, k.backend): [d for d in conv if (d.algorithm, d.backend) == (k.algorithm, k.backend)]
                for k in conv if k.variant}
    print(f"{args.threads} thread(s), float32, NCHW, median of {args.reps} interleaved rounds (random order each)")
    print(f"{'layer':<16} {'shape':<30} {'kernel':<30} {'ms':>8} {'variant/default speed-up':>24}")
    best = []
    for case in SUITES[args.suite]:
        if not isinstance(case, ConvLayer) or case.layout != "NCHW":
            continue
        g = _geometry(case)
        x, w = case.inputs()
        x5, w5 = x.reshape(x.shape[:2] + (1,) + x.shape[2:]), w.reshape(w.shape[:2] + (1,) + w.shape[2:])
        y = np.empty((case.batch, case.K, 1) + tuple(case.out_hw), np.float32)
        no_bias, act = np.empty(0, np.float32), (-np.inf, np.inf)
        gains = [1.0]
        for kernels in families.values():
            if kernels[0].supports(g) is not None:
                continue
            # one call per sample (min_time 0); the warm-up call prepares the weights (C++: nothing to compile)
            medians = interleaved_medians({k.name: (lambda k=k: k.run(x5, w5, no_bias, y, g, act)) for k in kernels},
                                          repeats=args.reps, min_time=0.0, shuffle=True)
            base = medians[kernels[0].name]
            for k in kernels:
                med = medians[k.name]
                gain = base / med
                if k.variant:
                    gains.append(gain)
                print(f"{case.name:<16} {case.describe():<30} {k.name:<30} {med * 1e3:8.3f} "
                      f"{f'{gain:.3f}x' if k.variant else '':>24}", flush=True)
        best.append(max(gains))
    print(f"the best tile variant is over 2% faster than its default kernel on {sum(b > 1.02 for b in best)} of "
          f"{len(best)} layers; highest {max(best):.3f}x")


if __name__ == "__main__":
    main()
