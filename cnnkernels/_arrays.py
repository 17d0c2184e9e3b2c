"""Turning user inputs into the arrays the kernels take, with clear errors."""
import functools
import math
import mmap
import os

import numpy as np

from . import _cpp_backend

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_array(value, name):
    """Any array-like (ndarray, list, ``__array__``, ``__dlpack__``) as an ndarray, without a copy where possible."""
    if isinstance(value, np.ndarray):
        return value
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    if not hasattr(value, "__array__") and hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (TypeError, ValueError, RuntimeError, BufferError) as exc:
            raise TypeError(f"{name}: cannot read this __dlpack__ object as a CPU array ({exc})") from None
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists, tensors that need grad, ...
        raise TypeError(f"{name} must be array-like, got {type(value).__name__} ({exc})") from None
    return arr


def check_numeric(arr, name):
    """Reject dtypes convolution has no meaning for."""
    kind = arr.dtype.kind
    if kind in "fiub":
        return
    what = {"c": "complex", "O": "object", "U": "string", "S": "bytes", "M": "datetime", "m": "timedelta"}.get(kind, str(arr.dtype))
    raise TypeError(f"{name} must hold real numbers (float32 or float64), got dtype {arr.dtype} ({what})")


def compute_dtype(*arrays):
    """NumPy promotion of the inputs; integers compute in float64 and float16 in float32."""
    dt = np.result_type(*arrays)
    if dt.kind in "iub":
        return np.dtype(np.float64)
    if dt == np.float16:
        return np.dtype(np.float32)
    if dt not in FLOAT_DTYPES:  # longdouble
        return np.dtype(np.float64)
    return dt


_DTYPE_NAMES = {dt: dt.name for dt in FLOAT_DTYPES}


def dtype_name(dt):
    """dt.name ('float32'), looked up: NumPy computes it in Python, ~35 us on a call's first run."""
    return _DTYPE_NAMES.get(dt) or dt.name


def result_dtype(*arrays):
    """The dtype handed back to the user: NumPy promotion, integers becoming float64."""
    dt = np.result_type(*arrays)
    return np.dtype(np.float64) if dt.kind in "iub" else dt


def contiguous(arr, dtype):
    """C-contiguous, aligned array of ``dtype``: the same object when it already is one. (NumPy allows arrays
    whose elements sit off their alignment, e.g. np.frombuffer at an odd offset; the kernels take aligned ones.)"""
    arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr if arr.flags.aligned else arr.copy()


def check_out(out, shape, dtype):
    """Validate a user's ``out=`` array; returns it."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    return out


def check_size(shape, itemsize, name):
    """Refuse absurd outputs before allocating them."""
    nbytes = itemsize
    for s in shape:
        nbytes *= int(s)
    if nbytes > memory_limit():
        raise ValueError(
            f"{name} of shape {tuple(shape)} would need {nbytes / 2**30:.1f} GiB, "
            f"more than this machine's memory ({memory_limit() / 2**30:.1f} GiB)"
        )


@functools.cache
def memory_limit():
    """The machine's physical memory in bytes (read once: two sysconf calls per call cost ~20 us cold)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


# Up to this (or the heap prewarmed at import, if more), np.empty: malloc reuses freed or prewarmed heap.
_OWN_MAPPING_MIN_BYTES = 8 << 20
_MADV_POPULATE_WRITE = 23   # Linux's value; Python's mmap names it from 3.12 on


def large_empty(shape, dtype, warm_bytes=0):
    """np.empty for a large buffer written once, right away, then read by many calls (transformed weights).
    Up to max(8 MiB, warm_bytes) (the heap faulted in at import: a 9.4 MB U of a 256-channel layer comes
    from it) it is np.empty; above, fresh anonymous memory in ordinary 4 KiB pages. Why: NumPy advises
    Linux to back large arrays with 2 MiB transparent huge pages; on the VMs we measure, first writing
    37.7 MB so advised (512->512 7x7 Winograd F(4x4) weights) took either 7 ms or 50-63 ms, unpredictably
    from one allocation to the next (the host backing fresh 2 MiB pages), against a steady 16-18 ms in
    4 KiB pages; the layer's first call went 22 or 76 ms with NumPy's advice, 27-28 ms with this. Without
    MADV_NOHUGEPAGE it is np.empty. The array owns its mapping (its base). Either way it starts on a 64-byte
    line, so that whole lines can be written with streaming stores (winograd_transform_weights)."""
    dtype = np.dtype(dtype)
    count = math.prod(shape)   # (np.prod's first call in a process took ~0.1 ms, a first conv call's share)
    nbytes = count * dtype.itemsize
    if nbytes <= max(_OWN_MAPPING_MIN_BYTES, warm_bytes) or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return _empty_on_a_line(shape, dtype, nbytes)
    try:
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    except (OSError, ValueError):    # no such mapping or advice here: NumPy's memory
        return _empty_on_a_line(shape, dtype, nbytes)
    # Fault the pages in with one call rather than one fault per 4 KiB page at the first write (and the weight
    # transform then writes resident pages with streaming stores): 512->512 7x7 F(4x4)'s first call, 1 thread,
    # processes alternating: 24.2-32.4 ms -> 20.5-25.2 ms. Linux 5.14+; elsewhere the pages fault as before.
    try:
        buf.madvise(getattr(mmap, "MADV_POPULATE_WRITE", _MADV_POPULATE_WRITE))
    except (OSError, ValueError):
        pass
    return np.frombuffer(buf, dtype, count).reshape(shape)


def _empty_on_a_line(shape, dtype, nbytes):
    """np.empty starting on a 64-byte boundary (NumPy's own start 16 bytes past one)."""
    buf = np.empty(nbytes + 64, np.uint8)
    return np.ndarray(shape, dtype, buf, -buf.ctypes.data % 64)


def empty_apart(shape, dtype, near):
    """np.empty for a channels-last output, placed relative to its input `near` so that the kernels' channel
    vectors sit alike in both (np.empty when `near` is not aligned to its elements). Two placements:
    - a pixel stride (last axis, in bytes) of a multiple of 1 KiB: half a pixel stride (at most 2 KiB) past
      `near`'s address modulo 4 KiB. NumPy puts every large array 16 bytes past a page boundary, so the input
      and output vectors of one channel block at such strides all fall in the same few L1 sets, and a kernel
      reading one while writing the other evicts both (channels-last depthwise 3x3, 1 thread, 512x14x14:
      0.055 ms with the output at the input's offset, 0.036 ms at 1 KiB past it; 1024x7x7 0.059 -> 0.047).
    - other strides: at `near`'s offset within its 64-byte cache line, where the heap had placed the two
      arrays independently. The channels-last depthwise 3x3 kernel aligns its vectors to the input only when
      the output shares its offset (dw_strip_cl3); otherwise every load split two lines. 1 thread, ratio to
      our NCHW, input 16 or 48 bytes into a line: 32x112x112 0.94-1.06x -> 1.14-1.16x, 512x14x14 0.97-1.09x
      -> 1.12-1.14x; pooling 2x2 s2 224x224 1.20-1.25x -> 1.25-1.30x."""
    itemsize = np.dtype(dtype).itemsize
    pixel = shape[-1] * itemsize if shape else 0
    if pixel == 0:
        return np.empty(shape, dtype)
    span, shift = (4096, min(pixel, 4096) // 2) if pixel % 1024 == 0 else (64, 0)
    nbytes = math.prod(shape) * itemsize
    buf = np.empty(nbytes + span, np.uint8)
    apart = _cpp_backend.module.byte_offset(near, buf) if _cpp_backend.module is not None else \
        near.ctypes.data - buf.ctypes.data
    if apart % itemsize:   # near not aligned to its elements (buf is): no placement to keep
        return np.empty(shape, dtype)
    start = (apart + shift) % span
    return np.ndarray(shape, dtype, buf, start)
