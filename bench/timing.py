"""Noise-aware timing: warm up, then interleave the candidates round-robin and keep medians."""
import random
import statistics
import time


def interleaved_medians(funcs, **options):
    """Median seconds per call of each function in ``funcs`` (a dict): interleaved_samples' medians."""
    return {name: statistics.median(s) for name, s in interleaved_samples(funcs, **options).items()}


def interleaved_samples(funcs, repeats=7, min_time=0.05, warmup=1, hopeless=20.0, shuffle=False):
    """Seconds per call of each function in ``funcs`` (a dict), one sample per round, measured interleaved
    (sample i of two functions comes from the same round, in the order of ``funcs``, or with ``shuffle`` in a
    new seeded order each round: functions sharing cached state, such as kernels reading the same prepared
    weights, then do not always find it warm or always cold; a hopeless function, see below, has one sample).

    Each sample calls a function enough times to last about ``min_time`` so timer
    resolution does not matter; interleaving spreads machine noise over all candidates.
    A function over ``hopeless`` times slower than the fastest on its first timing keeps
    that timing (it cannot be the fastest, and repeating a 1-3 s scalar kernel would
    make a suite take many minutes).
    """
    for f in funcs.values():
        for _ in range(warmup):
            f()
    loops, once_s = {}, {}
    for name, f in funcs.items():
        t0 = time.perf_counter()
        f()
        once_s[name] = max(time.perf_counter() - t0, 1e-7)
        loops[name] = max(1, int(min_time / once_s[name]))
    fastest = min(once_s.values())
    slow = {name for name, t in once_s.items() if t > hopeless * fastest}
    samples = {name: ([once_s[name]] if name in slow else []) for name in funcs}
    order, rng = list(funcs), random.Random(len(funcs))
    for _ in range(repeats):
        if shuffle:
            rng.shuffle(order)
        for name in order:
            f = funcs[name]
            if name in slow:
                continue
            n = loops[name]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            samples[name].append((time.perf_counter() - t0) / n)
    return samples
