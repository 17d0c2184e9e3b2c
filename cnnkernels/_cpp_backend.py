"""The optional C++ extension: the module, or the reason it is missing."""
try:
    from . import _cpp as module
    missing_reason = None
except ImportError as exc:  # not built (no compiler at install time) or broken
    module = None
    missing_reason = f"the C++ extension cnnkernels._cpp could not be imported ({exc}); reinstall with a C++17 compiler"


from ._threads import cpp_threads


def env_setting(name, default, parse, lo, hi, expected):
    """A number from environment variable `name` (`default` when unset or blank), checked to lie in [lo, hi]."""
    import os
    raw = os.environ.get(name, "").strip() or default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:   # (NaN fails the range too)
        raise ValueError(f"environment variable {name} must be {expected}, got {raw!r}")
    return value


def _worker_doze_seconds():
    return env_setting("CNNKERNELS_WORKER_DOZE", "1", float, 0, 3600, "seconds in [0, 3600]")


def _prewarm_mb():
    return env_setting("CNNKERNELS_PREWARM_MB", "30", int, 0, 30, "an int in [0, 30]")


# The bindings refuse thread counts above this (checks.h).
max_threads = module.info()["max_threads_argument"] if module is not None else 0


def kernel_threads():
    """The thread count a C++ kernel call runs on now."""
    return cpp_threads(max_threads)


prewarmed_bytes = 0    # heap faulted in at import (below), which np.empty of up to this size may reuse
if module is not None:
    # pybind11 sets up its numpy support (importing numpy internals, parsing numpy's version) at the first
    # array it sees: ~1 ms that would otherwise land on the user's first kernel call.
    import numpy as _np
    module.weights_digest(_np.zeros(1), 1)
    from ._threads import quiet_blas_workers
    quiet_blas_workers()
    # Fault in heap memory now, so a process's first kernel call does not pay for it (scratch.h: on this VM
    # fresh memory costs 0.56 ms per MB; a first call was 3-6x a steady one). Resident memory grows by that
    # much; CNNKERNELS_PREWARM_MB=0 turns it off. 30 MB (the most glibc's mmap threshold follows), not 16: the
    # 16.8 MB transformed weights of a 512-channel Winograd F2 layer then come from it, not from fresh pages
    # (1 thread, first call in a warm process, alternating processes: 7.36 -> 4.92 ms; resident memory after
    # import 50 -> 64 MB).
    prewarmed_bytes = _prewarm_mb() << 20
    module.prewarm_heap(prewarmed_bytes)
    # The kernel threads start now, not at the first call: a thread started (or woken from sleep) takes 1.4-4
    # ms to run on these VMs, so a first call at 2 threads ran on one. Idle, they look for work every 50 us for
    # CNNKERNELS_WORKER_DOZE seconds (default 1; 0: sleep at once), ~15% of a core meanwhile, then sleep
    # (thread_pool.cpp). A forked child starts its own.
    module.set_worker_doze(_worker_doze_seconds())
    try:
        module.start_workers(kernel_threads())
    except ValueError:   # a bad thread variable: the first call reports it
        pass
