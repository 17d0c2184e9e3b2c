"""Parsing of stride/padding/dilation/kernel arguments and output-size arithmetic.

Everything is normalised to three spatial dims (D, H, W): a 1-D problem is a 3-D
one with D = H = 1, so every kernel has one signature.
"""
import numbers
from dataclasses import dataclass

# Geometry integers beyond this are certainly mistakes, and would overflow int64 index math.
MAX_INT = 2**31 - 1


def _is_int(v):
    # type() first: an isinstance check against the numbers.Integral ABC took ~10 us on a call's first run
    return type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def _check_int(v, name, minimum):
    if not _is_int(v):
        raise TypeError(f"{name} must be an int, got {v!r} ({type(v).__name__})")
    v = int(v)
    if v < minimum:
        kind = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {v}")
    if v > MAX_INT:
        raise ValueError(f"{name} must be at most {MAX_INT}, got {v}")
    return v


def int_tuple(value, n, name, minimum=1):
    """An int or a sequence of ``n`` ints, as a tuple of ``n`` ints >= ``minimum``."""
    if _is_int(value):
        return (_check_int(value, name, minimum),) * n
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and n > 1:
            value = tuple(value) * n
        if len(value) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        return tuple(_check_int(v, name, minimum) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r} ({type(value).__name__})")


def padding_pairs(value, n, name="padding"):
    """Padding as ``n`` (before, after) pairs: an int, one int per dim, or one pair per dim."""
    if _is_int(value):
        p = _check_int(value, name, 0)
        return ((p, p),) * n
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and n > 1 and _is_int(value[0]):   # (1,) as 1, like int_tuple and PyTorch
            value = tuple(value) * n
        if len(value) != n:
            raise ValueError(
                f"{name} must be an int, a sequence of {n} ints or {n} (before, after) pairs, got {value!r}"
            )
        pairs = []
        for v in value:
            if _is_int(v):
                p = _check_int(v, name, 0)
                pairs.append((p, p))
            elif isinstance(v, (tuple, list)) and len(v) == 2:
                pairs.append((_check_int(v[0], name, 0), _check_int(v[1], name, 0)))
            else:
                raise TypeError(f"{name} entries must be ints or (before, after) pairs of ints, got {v!r}")
        return tuple(pairs)
    raise TypeError(
        f"{name} must be an int, a tuple of ints or of (before, after) pairs, got {value!r} ({type(value).__name__})"
    )


def pad3(x, fill):
    """Left-pad an n-tuple to 3 entries (the missing leading spatial dims)."""
    return (fill,) * (3 - len(x)) + tuple(x)


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution on 5-D NCDHW arrays; ``pad`` is padding before, ``out`` encodes padding after."""
    N: int
    C: int
    K: int
    groups: int
    inp: tuple
    out: tuple
    kernel: tuple
    stride: tuple
    pad: tuple
    dilation: tuple

    def __repr__(self):   # the dataclass's own text, without its recursion guard: ~50 us of a first call's cache key
        return (f"ConvGeometry(N={self.N}, C={self.C}, K={self.K}, groups={self.groups}, inp={self.inp}, "
                f"out={self.out}, kernel={self.kernel}, stride={self.stride}, pad={self.pad}, dilation={self.dilation})")

    @property
    def flops(self):
        macs = self.N * self.K * (self.C // self.groups)
        for k, o in zip(self.kernel, self.out):
            macs *= k * o
        return 2 * macs


def conv_out_size(size, k, s, d, before, after):
    return (size + before + after - d * (k - 1) - 1) // s + 1


def same_padding(kernel, dilation):
    """PyTorch's 'same': total d*(k-1), the odd one extra on the right."""
    pairs = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def pool_out_size(size, k, s, d, before, after, ceil_mode):
    """PyTorch's pooling output size, incl. its rule that a ceil-mode window starting in the right padding is dropped."""
    span = size + before + after - d * (k - 1) - 1
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + before:
            out -= 1
    else:
        out = span // s + 1
    return out
