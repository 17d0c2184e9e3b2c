"""Turning user inputs into the arrays the kernels take, with clear errors."""
import numpy as np

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


def result_dtype(*arrays):
    """The dtype handed back to the user: NumPy promotion, integers becoming float64."""
    dt = np.result_type(*arrays)
    return np.dtype(np.float64) if dt.kind in "iub" else dt


def contiguous(arr, dtype):
    """C-contiguous array of ``dtype``: the same object when it already is one."""
    return np.ascontiguousarray(arr, dtype=dtype)


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
    if nbytes > _memory_limit():
        raise ValueError(
            f"{name} of shape {tuple(shape)} would need {nbytes / 2**30:.1f} GiB, "
            f"more than this machine's memory ({_memory_limit() / 2**30:.1f} GiB)"
        )


def _memory_limit():
    try:
        import os
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40
