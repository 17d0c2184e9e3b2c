"""Which kernels exist for each operation family, how to run them, and the 'auto' choice.

Every runner takes already-validated 5-D C-contiguous arrays (see cnnkernels.numba's
preconditions); the C++ bindings check them again, so nothing reaches C++ unchecked.
"""
import os

import numpy as np

from . import _cpp_backend
from ._threads import blas_threads, get_num_threads, numba_threads

ALGORITHMS = ("auto", "direct", "im2col")
BACKENDS = ("auto", "numba", "cpp")

# Bound on the im2col column buffer (the C++ core issue makes this configurable).
WORKSPACE_BYTES = int(os.environ.get("CNNKERNELS_WORKSPACE_MB", "64")) * 2**20


class BackendUnavailableError(RuntimeError):
    """The requested backend is not built or cannot be loaded on this machine."""


def _cpp_threads():
    return min(get_num_threads(), _cpp_backend.max_threads)


def _numba():
    from . import numba as nb  # imported lazily: Numba's import is the slow part of ours
    return nb


# --- convolution -----------------------------------------------------------

def _conv_numba_direct(x, w, b, y, g):
    numba_threads()
    _numba().conv_direct(x, w, b, y, g.stride, g.pad, g.dilation, g.groups)


def _conv_numba_im2col(x, w, b, y, g):
    numba_threads()
    blas_threads()
    _numba().conv_im2col(x, w, b, y, g.stride, g.pad, g.dilation, g.groups, WORKSPACE_BYTES)


def _conv_cpp(algorithm):
    def run(x, w, b, y, g):
        _cpp_backend.module.conv(algorithm, x, w, b if b.shape[0] else None, y, g.stride, g.pad,
                                 g.dilation, g.groups, _cpp_threads(), WORKSPACE_BYTES)
    return run


# --- pooling (args: x, y, indices or None, geometry dict) --------------------

def _max_pool_numba(x, y, idx, p):
    numba_threads()
    want = idx is not None
    _numba().max_pool(x, y, idx if want else np.empty((0,) * 5, np.int64), p["kernel"], p["stride"],
                      p["pad_before"], p["dilation"], want)


def _max_pool_cpp(x, y, idx, p):
    _cpp_backend.module.max_pool(x, y, idx, p["kernel"], p["stride"], p["pad_before"], p["dilation"],
                                 _cpp_threads())


def _avg_pool_numba(x, y, idx, p):
    numba_threads()
    _numba().avg_pool(x, y, p["kernel"], p["stride"], p["pad_before"], p["pad_after"],
                      p["count_include_pad"], p["divisor_override"])


def _avg_pool_cpp(x, y, idx, p):
    _cpp_backend.module.avg_pool(x, y, p["kernel"], p["stride"], p["pad_before"], p["pad_after"],
                                 p["count_include_pad"], p["divisor_override"], _cpp_threads())


def _adaptive_avg_numba(x, y, idx, p):
    numba_threads()
    _numba().adaptive_avg_pool(x, y)


def _adaptive_avg_cpp(x, y, idx, p):
    _cpp_backend.module.adaptive_avg_pool(x, y, _cpp_threads())


def _adaptive_max_numba(x, y, idx, p):
    numba_threads()
    want = idx is not None
    _numba().adaptive_max_pool(x, y, idx if want else np.empty((0,) * 5, np.int64), want)


def _adaptive_max_cpp(x, y, idx, p):
    _cpp_backend.module.adaptive_max_pool(x, y, idx, _cpp_threads())


KERNELS = {
    "conv": {
        ("direct", "numba"): _conv_numba_direct,
        ("im2col", "numba"): _conv_numba_im2col,
        ("direct", "cpp"): _conv_cpp("direct"),
        ("im2col", "cpp"): _conv_cpp("im2col"),
    },
    "max_pool": {("direct", "numba"): _max_pool_numba, ("direct", "cpp"): _max_pool_cpp},
    "avg_pool": {("direct", "numba"): _avg_pool_numba, ("direct", "cpp"): _avg_pool_cpp},
    "adaptive_avg_pool": {("direct", "numba"): _adaptive_avg_numba, ("direct", "cpp"): _adaptive_avg_cpp},
    "adaptive_max_pool": {("direct", "numba"): _adaptive_max_numba, ("direct", "cpp"): _adaptive_max_cpp},
}

# Public function names -> kernel family.
OPS = {}
for _d in (1, 2, 3):
    OPS[f"conv{_d}d"] = "conv"
    OPS[f"conv_transpose{_d}d"] = "conv"
    OPS[f"max_pool{_d}d"] = "max_pool"
    OPS[f"avg_pool{_d}d"] = "avg_pool"
    OPS[f"adaptive_avg_pool{_d}d"] = "adaptive_avg_pool"
    OPS[f"adaptive_max_pool{_d}d"] = "adaptive_max_pool"


def _family(op):
    if not isinstance(op, str):
        raise TypeError(f"op must be an operation name such as 'conv2d', got {op!r}")
    if op in KERNELS:
        return op
    if op not in OPS:
        raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r}")
    return OPS[op]


def available_kernels(op):
    """The (algorithm, backend) pairs that can be forced for ``op`` on this installation."""
    family = _family(op)
    return [key for key in KERNELS[family] if key[1] != "cpp" or _cpp_backend.module is not None]


def _check_choice(value, allowed, name, op):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(allowed)}, got {value!r}")
    if value not in allowed:
        raise ValueError(f"{name} for {op} must be one of {list(allowed)}, got {value!r}")


def select(op, algorithm, backend, geometry=None):
    """The runner for a validated call, honouring forced choices and explaining refusals."""
    family = _family(op)
    algorithms = ("auto",) + tuple(sorted({a for a, _ in KERNELS[family]}))
    _check_choice(algorithm, algorithms, "algorithm", op)
    _check_choice(backend, BACKENDS, "backend", op)
    if backend == "cpp" and _cpp_backend.module is None:
        raise BackendUnavailableError(f"backend='cpp' is unavailable: {_cpp_backend.missing_reason}")
    if backend == "auto":
        backend = "cpp" if _cpp_backend.module is not None else "numba"
    if algorithm == "auto":
        algorithm = _auto_algorithm(family, geometry)
    return KERNELS[family][(algorithm, backend)]


def _auto_algorithm(family, g):
    """Shape heuristic until the autotuner lands: GEMM pays off once each output sums enough terms."""
    if family != "conv":
        return "direct"
    terms = (g.C // g.groups) * g.kernel[0] * g.kernel[1] * g.kernel[2]
    npos = g.out[0] * g.out[1] * g.out[2]
    return "im2col" if terms >= 16 and g.K // g.groups >= 8 and npos >= 16 else "direct"
