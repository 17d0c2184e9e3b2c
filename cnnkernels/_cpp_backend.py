"""The optional C++ extension: the module, or the reason it is missing."""
try:
    from . import _cpp as module
    missing_reason = None
except ImportError as exc:  # not built (no compiler at install time) or broken
    module = None
    missing_reason = f"the C++ extension cnnkernels._cpp could not be imported ({exc}); reinstall with a C++17 compiler and OpenMP"

# The bindings refuse thread counts above this (OpenMP aborts the process when it cannot create threads).
max_threads = module.info()["max_threads_argument"] if module is not None else 0
