"""Noise-aware timing: warm up, then interleave the candidates round-robin and keep medians."""
import statistics
import time


def interleaved_medians(funcs, repeats=7, min_time=0.05, warmup=1):
    """Median seconds per call of each function in ``funcs`` (a dict), measured interleaved.

    Each sample calls a function enough times to last about ``min_time`` so timer
    resolution does not matter; interleaving spreads machine noise over all candidates.
    """
    for f in funcs.values():
        for _ in range(warmup):
            f()
    loops = {}
    for name, f in funcs.items():
        t0 = time.perf_counter()
        f()
        once = max(time.perf_counter() - t0, 1e-7)
        loops[name] = max(1, int(min_time / once))
    samples = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, f in funcs.items():
            n = loops[name]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(s) for name, s in samples.items()}
