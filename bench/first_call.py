"""The first call of a tuned layer in a new process, against the same process's steady calls.

    python bench/first_call.py [--suite dense] [--threads 2] [--processes 3] [--pause 0.2] [--layers a,b] [--torch]

Per layer: one process tunes it into a fresh cache directory; then each of --processes new processes
times `import cnnkernels`, the first call (fresh arrays, as an application's first inference, after
--pause seconds), the median of 15 further back-to-back calls (steady), and one more call after the same
pause. A layer meets the autotuner's target when first <= 2x steady. The after-pause call shows what any
call pays after the machine sat idle that long (on a shared VM the caches are no longer ours):
first / after-pause is what is due to being the first call. --pause 0: the first call straight after
making the arrays, and no after-pause call. --torch: the same for PyTorch's first call (where installed), its
processes alternating with ours.
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

# Per library: its import, how a call runs, and how the arrays are made ({pre} and {call} of _PROBE).
_LIBRARIES = {
    "cnnkernels": dict(
        imports="import cnnkernels as ck",
        arrays="x, w = case.inputs()\nx = in_layout(case, x)",
        call="case.run_ck(ck, x, w)"),
    # PyTorch on the same arrays (channels-last layers as channels_last tensors), no autograd, its thread count
    # set as run.py sets it; it tunes nothing, so its untimed first process only warms the disk caches.
    "torch": dict(
        imports="import torch",
        arrays="torch.set_num_threads({threads})\ntorch.set_grad_enabled(False)\nF = torch.nn.functional\n"
               "x, w = case.inputs()\nx = torch.from_numpy(x)\n"
               "x = x.contiguous(memory_format=torch.channels_last) if case.layout == 'NHWC' else x\n"
               "w = None if w is None else torch.from_numpy(w)",
        call="case.run_torch(F, x, w)"),
}

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
{imports}
t_import = time.perf_counter() - t0
sys.path.insert(0, {bench!r})
from suites import SUITES, in_layout
case = next(c for c in SUITES[{suite!r}] if c.name == {name!r})
{arrays}
time.sleep({pause})          # as an application between start-up and first inference
t = time.perf_counter(); {call}; first = time.perf_counter() - t
steady = []
for _ in range(15):
    t = time.perf_counter(); {call}; steady.append(time.perf_counter() - t)
steady.sort()
after_pause = float("nan")
if {pause}:
    time.sleep({pause})
    t = time.perf_counter(); {call}; after_pause = time.perf_counter() - t
print(json.dumps(dict(import_s=t_import, first_s=first, steady_s=steady[len(steady) // 2], pause_s=after_pause)))
"""


def _probe(library, threads, **where):
    lib = _LIBRARIES[library]
    return _PROBE.format(imports=lib["imports"], arrays=lib["arrays"].format(threads=threads), call=lib["call"],
                         **where)


def _run(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name, shape, library, med):
    paused = f"{'-':>14} {'-':>17}"   # (--pause 0: no after-pause call)
    if med["pause_s"] == med["pause_s"]:
        paused = f"{med['pause_s'] * 1e3:14.3f} {med['first_s'] / med['pause_s']:16.2f}x"
    return (f"{name:<18} {shape:<30} {library:<10} {med['import_s'] * 1e3:9.1f} {med['first_s'] * 1e3:9.3f} "
            f"{med['steady_s'] * 1e3:9.3f} {med['first_s'] / med['steady_s']:11.2f}x {paused}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="dense", choices=sorted(SUITES))
    parser.add_argument("--threads", type=int, default=None, help="threads of the processes (default: all cores)")
    parser.add_argument("--processes", type=int, default=3, help="measuring processes per layer (median shown)")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds idle before the first call (and before "
                        "the after-pause call; 0: none)")
    parser.add_argument("--layers", default=None, help="comma-separated layer names of the suite (default: all)")
    parser.add_argument("--torch", action="store_true", help="also PyTorch's first call, its processes "
                        "alternating with ours")
    args = parser.parse_args(argv)
    bench = os.path.dirname(os.path.abspath(__file__))
    threads = args.threads or len(os.sched_getaffinity(0))
    libraries = ["cnnkernels"] + (["torch"] if args.torch else [])
    print(f"{threads} thread(s), float32, pause {args.pause:g} s, median of {args.processes} processes")
    print(f"{'layer':<18} {'shape':<30} {'library':<10} {'import ms':>9} {'first ms':>9} {'steady ms':>9} "
          f"{'first/steady':>12} {'after pause ms':>14} {'first/after pause':>17}")
    met = {lib: 0 for lib in libraries}
    cases = SUITES[args.suite]
    if args.layers:
        names = args.layers.split(",")
        unknown = sorted(set(names) - {c.name for c in cases})
        if unknown:
            parser.error(f"--layers: {', '.join(unknown)} not in suite {args.suite!r}")
        cases = [c for c in cases if c.name in names]
    for case in cases:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "CNNKERNELS_CACHE_DIR": cache, "CNNKERNELS_NUM_THREADS": str(threads)}
            probes = {lib: _probe(lib, threads, bench=bench, suite=args.suite, name=case.name, pause=args.pause)
                      for lib in libraries}
            for probe in probes.values():
                _run(probe, env)             # tunes the layer into the cache (PyTorch: warms the disk caches)
            runs = {lib: [] for lib in libraries}
            for _ in range(args.processes):
                for lib, probe in probes.items():
                    runs[lib].append(_run(probe, env))
        for lib in libraries:
            med = {k: float(np.median([r[k] for r in runs[lib]])) for k in runs[lib][0]}
            met[lib] += med["first_s"] / med["steady_s"] <= 2.0
            print(_row(case.name, case.describe(), lib, med), flush=True)
    for lib in libraries:
        print(f"{lib}: first call <= 2x steady on {met[lib]}/{len(cases)} layers")


if __name__ == "__main__":
    main()
