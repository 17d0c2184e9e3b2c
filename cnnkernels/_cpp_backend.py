"""The optional C++ extension: the module, or the reason it is missing."""
try:
    from . import _cpp as module
    missing_reason = None
except ImportError as exc:  # not built (no compiler at install time) or broken
    module = None
    missing_reason = f"the C++ extension cnnkernels._cpp could not be imported ({exc}); reinstall with a C++17 compiler and OpenMP"

if module is not None:
    # pybind11 sets up its numpy support (importing numpy internals, parsing numpy's version) at the first
    # array it sees: ~1 ms that would otherwise land on the user's first kernel call.
    import numpy as _np
    module.same_bytes(_np.zeros(1), _np.zeros(1), 1)
    from ._threads import quiet_blas_workers
    quiet_blas_workers()

# The bindings refuse thread counts above this (OpenMP aborts the process when it cannot create threads).
max_threads = module.info()["max_threads_argument"] if module is not None else 0
