"""The first call of a tuned layer in a new process, against the same process's steady calls.

    python bench/first_call.py [--suite dense] [--threads 2] [--processes 3] [--pause 0.2]

Per layer: one process tunes it into a fresh cache directory; then each of --processes new processes
times `import cnnkernels`, the first call (fresh arrays, as an application's first inference, after
--pause seconds), the median of 15 further back-to-back calls (steady), and one more call after the same
pause. A layer meets the autotuner's target when first <= 2x steady. The after-pause call shows what any
call pays after the machine sat idle that long (on a shared VM the caches are no longer ours):
first / after-pause is what is due to being the first call. --pause 0: the first call straight after
making the arrays, and no after-pause call.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suites import SUITES  # noqa: E402

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import cnnkernels as ck
t_import = time.perf_counter() - t0
sys.path.insert(0, {bench!r})
from suites import SUITES, in_layout
case = next(c for c in SUITES[{suite!r}] if c.name == {name!r})
x, w = case.inputs()
x = in_layout(case, x)
time.sleep({pause})          # as an application between start-up and first inference
t = time.perf_counter(); case.run_ck(ck, x, w); first = time.perf_counter() - t
steady = []
for _ in range(15):
    t = time.perf_counter(); case.run_ck(ck, x, w); steady.append(time.perf_counter() - t)
steady.sort()
after_pause = float("nan")
if {pause}:
    time.sleep({pause})
    t = time.perf_counter(); case.run_ck(ck, x, w); after_pause = time.perf_counter() - t
print(json.dumps(dict(import_s=t_import, first_s=first, steady_s=steady[len(steady) // 2], pause_s=after_pause)))
"""


def _run(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="dense", choices=sorted(SUITES))
    parser.add_argument("--threads", type=int, default=None, help="CNNKERNELS_NUM_THREADS of the processes")
    parser.add_argument("--processes", type=int, default=3, help="measuring processes per layer (median shown)")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds idle before the first call (and before "
                        "the after-pause call; 0: none)")
    args = parser.parse_args(argv)
    bench = os.path.dirname(os.path.abspath(__file__))
    print(f"{'layer':<16} {'shape':<30} {'import ms':>9} {'first ms':>9} {'steady ms':>9} {'first/steady':>12} "
          f"{'after pause ms':>14} {'first/after pause':>17}")
    met = 0
    cases = SUITES[args.suite]
    for case in cases:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "CNNKERNELS_CACHE_DIR": cache}
            if args.threads:
                env["CNNKERNELS_NUM_THREADS"] = str(args.threads)
            probe = _PROBE.format(bench=bench, suite=args.suite, name=case.name, pause=args.pause)
            _run(probe, env)                                   # tunes the layer into the cache
            runs = [_run(probe, env) for _ in range(args.processes)]
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        ratio = med["first_s"] / med["steady_s"]
        met += ratio <= 2.0
        print(f"{case.name:<16} {case.describe():<30} {med['import_s'] * 1e3:9.1f} {med['first_s'] * 1e3:9.3f} "
              f"{med['steady_s'] * 1e3:9.3f} {ratio:11.2f}x {med['pause_s'] * 1e3:14.3f} "
              f"{med['first_s'] / med['pause_s']:16.2f}x", flush=True)
    print(f"first call <= 2x steady on {met}/{len(cases)} layers (median of {args.processes} processes each)")


if __name__ == "__main__":
    main()
