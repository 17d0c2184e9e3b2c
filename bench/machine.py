"""The machine's own limits, measured at the start of a benchmark run so '% of peak' is honest anywhere:
fp32 GEMM throughput (numpy's BLAS, a proxy for peak) and memory copy bandwidth, at a given thread count."""
import statistics
import time

import numpy as np


def _blas_threads(n):
    """Set the thread count of every OpenBLAS in the process; returns a function restoring the old ones."""
    from cnnkernels import _threads
    previous = _threads.set_blas_threads(n, _threads._find_blas_setters())
    return lambda: [set_n(old) for set_n, old in previous]


def measure(threads, repeats=5):
    restore = _blas_threads(threads)
    try:
        n = 2048
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        a @ a
        t = min(_time(lambda: a @ a) for _ in range(repeats))
        gflops = 2 * n ** 3 / t / 1e9
        src = np.ones(32 << 20, np.float32)      # 128 MiB: far past the caches
        dst = np.empty_like(src)
        np.copyto(dst, src)
        t = statistics.median(_time(lambda: np.copyto(dst, src)) for _ in range(repeats))
        gbps = 2 * src.nbytes / t / 1e9           # read + write
    finally:
        restore()
    return {"threads": threads, "sgemm_gflops": gflops, "copy_gbps": gbps}


def _time(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0
