"""Which kernels exist for each operation family, how to run them, and the 'auto' choice.

Every runner takes already-validated 5-D C-contiguous arrays (see cnnkernels.numba's
preconditions); the C++ bindings check them again, so nothing reaches C++ unchecked.
"""
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import _cpp_backend
from ._threads import blas_threads, get_num_threads, numba_threads

ALGORITHMS = ("auto", "direct", "im2col")
BACKENDS = ("auto", "numba", "cpp")

# Bound on the im2col column buffer (the C++ core issue makes this configurable).
WORKSPACE_BYTES = int(os.environ.get("CNNKERNELS_WORKSPACE_MB", "64")) * 2**20


# Accuracy classes: the max abs error, relative to the max abs output, each is held to on
# standard-normal float32 data (measured for up to 2048 input channels; see README), and the
# classes each precision policy lets algorithm="auto" use.
ACCURACY_BOUND = {"exact": 1e-5, "winograd_f2": 1e-5, "winograd_f4": 1e-4, "winograd_f6": 1e-4}
PRECISION_POLICIES = {
    "strict": ("exact",),
    "default": ("exact", "winograd_f2", "winograd_f4"),
    "fast": ("exact", "winograd_f2", "winograd_f4", "winograd_f6"),
}
_precision = None


def get_precision():
    """Which accuracy classes algorithm='auto' may pick: 'strict', 'default' or 'fast'."""
    global _precision
    if _precision is None:
        value = os.environ.get("CNNKERNELS_PRECISION", "default").strip().lower()
        if value not in PRECISION_POLICIES:
            raise ValueError(f"environment variable CNNKERNELS_PRECISION must be one of {list(PRECISION_POLICIES)}, "
                             f"got {value!r}")
        _precision = value
    return _precision


def set_precision(policy):
    """'strict': exact algorithms only; 'default': also Winograd F(2x2) and F(4x4); 'fast': also F(6x6)."""
    global _precision
    if not isinstance(policy, str) or policy not in PRECISION_POLICIES:
        raise ValueError(f"set_precision: policy must be one of {list(PRECISION_POLICIES)}, got {policy!r}")
    _precision = policy


class BackendUnavailableError(RuntimeError):
    """The requested backend is not built or cannot be loaded on this machine."""


def _cpp_threads():
    return min(get_num_threads(), _cpp_backend.max_threads)


def _numba():
    from . import numba as nb  # imported lazily: Numba's import is the slow part of ours
    return nb


# --- convolution -----------------------------------------------------------

# Conv runners: run(x, w, bias, y, geometry, act) with act = (min, max), the fused clamp (ReLU: (0, inf)).

def _conv_numba_direct(x, w, b, y, g, act):
    numba_threads()
    _numba().conv_direct(x, w, b, y, g.stride, g.pad, g.dilation, g.groups, act[0], act[1])


def _conv_numba_im2col(x, w, b, y, g, act):
    numba_threads()
    blas_threads()
    _numba().conv_im2col(x, w, b, y, g.stride, g.pad, g.dilation, g.groups, WORKSPACE_BYTES, act[0], act[1])


def _conv_cpp(algorithm):
    def run(x, w, b, y, g, act):
        _cpp_backend.module.conv(algorithm, x, w, b if b.shape[0] else None, y, g.stride, g.pad,
                                 g.dilation, g.groups, _cpp_threads(), WORKSPACE_BYTES, act[0], act[1])
    return run


# --- Winograd ------------------------------------------------------------------

_WINOGRAD_CACHE = OrderedDict()   # (pointer, shape, dtype, m, groups) -> (copy of the weights, transformed)
_WINOGRAD_CACHE_SIZE = 32


def winograd_weights(w, m, groups):
    """Transformed weights for F(m x m, 3 x 3), reused while the weight array's contents are unchanged.

    The cache is keyed on the array's memory and checked against a copy of its contents, so
    editing weights in place is safe; the check costs one read of the weights, far less than
    the transform.
    """
    from .winograd import transforms
    key = (w.ctypes.data, w.shape, w.dtype.str, m, groups)
    hit = _WINOGRAD_CACHE.get(key)
    if hit is not None and np.array_equal(hit[0], w):
        _WINOGRAD_CACHE.move_to_end(key)
        return hit[1]
    _, G, _ = transforms(m)
    U = _numba().winograd.transform_weights(w, G, groups).astype(w.dtype)
    _WINOGRAD_CACHE[key] = (w.copy(), U)
    if len(_WINOGRAD_CACHE) > _WINOGRAD_CACHE_SIZE:
        _WINOGRAD_CACHE.popitem(last=False)
    return U


def _winograd_supports(g):
    if g.kernel != (1, 3, 3) or g.inp[0] != 1:
        return f"needs a 2-D 3x3 kernel, got kernel {g.kernel[1:] if g.kernel[0] == 1 else g.kernel}"
    if g.stride != (1, 1, 1) or g.dilation != (1, 1, 1):
        return f"needs stride 1 and dilation 1, got stride {g.stride[1:]} and dilation {g.dilation[1:]}"
    return None


def _conv_numba_winograd(m):
    def run(x, w, b, y, g, act):
        # A transformed tile mixes all its inputs, so one NaN/Inf would spoil outputs that do not
        # depend on it: such inputs go to an exact kernel. (A sum is non-finite iff some term is,
        # barring overflow, which only sends huge inputs to the exact kernel too.)
        if not (np.isfinite(x.sum()) and np.isfinite(w.sum())):
            return _conv_numba_im2col(x, w, b, y, g, act)
        from .winograd import transforms
        AT, _, BT = transforms(m)
        U = winograd_weights(w, m, g.groups)
        numba_threads()
        blas_threads()
        _numba().winograd.conv_winograd(x, U, b, y, g.pad, m, AT.astype(x.dtype), BT.astype(x.dtype),
                                        WORKSPACE_BYTES, act[0], act[1])
    return run


def _winograd_workspace(m):
    def need(g, itemsize):
        n = m + 2
        tiles = -(-g.out[1] // m) * -(-g.out[2] // m)
        return min(WORKSPACE_BYTES, n * n * (g.C // g.groups + g.K // g.groups) * tiles * itemsize)
    return need


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


@dataclass(frozen=True)
class Kernel:
    """One candidate: an algorithm in a backend, what it supports, and how exact it is."""
    algorithm: str
    backend: str
    run: Callable
    # geometry -> None when supported, else the reason it is not (shown to users who force it)
    supports: Callable = staticmethod(lambda geometry: None)
    accuracy: str = "exact"   # "exact": sums the same products as the definition
    # (geometry, itemsize) -> bytes of scratch memory the kernel allocates (never above WORKSPACE_BYTES)
    workspace: Callable = staticmethod(lambda geometry, itemsize: 0)

    @property
    def name(self):
        return f"{self.algorithm}/{self.backend}"


def _kernels(*specs):
    return {(k.algorithm, k.backend): k for k in (Kernel(*spec) for spec in specs)}


def _im2col_workspace(g, itemsize):
    """The column buffer: all patch rows for as many output positions as fit in WORKSPACE_BYTES."""
    rows = (g.C // g.groups) * g.kernel[0] * g.kernel[1] * g.kernel[2]
    npos = g.out[0] * g.out[1] * g.out[2]
    return min(WORKSPACE_BYTES, rows * npos * itemsize)


KERNELS = {
    "conv": _kernels(("direct", "numba", _conv_numba_direct),
                     ("im2col", "numba", _conv_numba_im2col, Kernel.supports, "exact", _im2col_workspace),
                     ("direct", "cpp", _conv_cpp("direct")),
                     ("im2col", "cpp", _conv_cpp("im2col"), Kernel.supports, "exact", _im2col_workspace),
                     *[(f"winograd_f{m}", "numba", _conv_numba_winograd(m), _winograd_supports, f"winograd_f{m}",
                        _winograd_workspace(m)) for m in (2, 4, 6)]),
    "max_pool": _kernels(("direct", "numba", _max_pool_numba), ("direct", "cpp", _max_pool_cpp)),
    "avg_pool": _kernels(("direct", "numba", _avg_pool_numba), ("direct", "cpp", _avg_pool_cpp)),
    "adaptive_avg_pool": _kernels(("direct", "numba", _adaptive_avg_numba), ("direct", "cpp", _adaptive_avg_cpp)),
    "adaptive_max_pool": _kernels(("direct", "numba", _adaptive_max_numba), ("direct", "cpp", _adaptive_max_cpp)),
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


def family(op):
    if not isinstance(op, str):
        raise TypeError(f"op must be an operation name such as 'conv2d', got {op!r}")
    if op in KERNELS:
        return op
    if op not in OPS:
        raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r}")
    return OPS[op]


def _built(kernel):
    return kernel.backend != "cpp" or _cpp_backend.module is not None


def available_kernels(op):
    """The (algorithm, backend) pairs that can be forced for ``op`` on this installation."""
    return [key for key, k in KERNELS[family(op)].items() if _built(k)]


def _check_choice(value, allowed, name, op):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(allowed)}, got {value!r}")
    if value not in allowed:
        raise ValueError(f"{name} for {op} must be one of {list(allowed)}, got {value!r}")


def candidates(op, algorithm, backend, geometry):
    """The kernels a call may run: one when both are forced, several for the autotuner to choose from."""
    fam = family(op)
    algorithms = ("auto",) + tuple(sorted({a for a, _ in KERNELS[fam]}))
    _check_choice(algorithm, algorithms, "algorithm", op)
    _check_choice(backend, BACKENDS, "backend", op)
    if backend == "cpp" and _cpp_backend.module is None:
        raise BackendUnavailableError(f"backend='cpp' is unavailable: {_cpp_backend.missing_reason}")
    if algorithm != "auto" and backend == "auto":
        backend = "cpp" if _cpp_backend.module is not None else "numba"
    chosen = [k for k in KERNELS[fam].values() if _built(k)
              and algorithm in ("auto", k.algorithm) and backend in ("auto", k.backend)]
    supported = [k for k in chosen if k.supports(geometry) is None]
    if algorithm == "auto":   # a forced algorithm is the user's call; auto respects the precision policy
        allowed = PRECISION_POLICIES[get_precision()]
        supported = [k for k in supported if k.accuracy in allowed]
    if not supported:
        reasons = "; ".join(f"{k.name}: {k.supports(geometry)}" for k in chosen)
        raise ValueError(f"{op}: algorithm={algorithm!r} does not support this geometry ({reasons})")
    return supported


def heuristic(fam, kernels, g):
    """The pick without timing (autotune off, or a first guess): C++ when built; GEMM once each output sums enough terms."""
    by_key = {(k.algorithm, k.backend): k for k in kernels}
    backend = "cpp" if any(k.backend == "cpp" for k in kernels) else "numba"
    algorithm = "direct"
    if fam == "conv":
        terms = (g.C // g.groups) * g.kernel[0] * g.kernel[1] * g.kernel[2]
        npos = g.out[0] * g.out[1] * g.out[2]
        if terms >= 16 and g.K // g.groups >= 8 and npos >= 16:
            algorithm = "im2col"
    return by_key.get((algorithm, backend)) or next(k for k in kernels if k.backend == backend)
