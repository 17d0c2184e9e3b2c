"""NumPy-in, NumPy-out convolution and pooling with the names and semantics of ``torch.nn.functional``.

Each public function validates its arguments (errors name the argument, the
expectation and the value), reduces the problem to 5-D NCDHW arrays, and hands
them to a kernel chosen by ``cnnkernels._registry``.
"""
import functools
import threading

import numpy as np

from . import _autotune, _registry
from ._arrays import (as_array, check_numeric, check_out, check_size, compute_dtype, contiguous, dtype_name,
                      empty_apart, result_dtype)
from ._geometry import (ConvGeometry, _check_int, conv_out_size, int_tuple, pad3, padding_pairs,
                        pool_out_size, same_padding)

__all__ = [f"{name}{d}d" for d in (1, 2, 3) for name in
           ("conv", "conv_transpose", "max_pool", "avg_pool", "adaptive_avg_pool")] + ["adaptive_max_pool2d",
                                                                                       "adaptive_max_pool1d",
                                                                                       "adaptive_max_pool3d"]


# --- shared helpers ----------------------------------------------------------

def _layout(layout, nd, op):
    """True for a channels-last layout ('NWC', 'NHWC', 'NDHWC'), False for channels-first."""
    if layout is None:
        return False
    return _registry.normalize_layout(layout, nd, op) == _registry.CHANNELS_LAST


def _input(value, nd, op, cl=False):
    """The input as a channels-first view (N, C, *spatial), no copy, plus whether the caller gave a batch dim."""
    x = as_array(value, "input")
    check_numeric(x, "input")
    if x.ndim not in (nd + 1, nd + 2):
        spatial = "DHW"[3 - nd:]
        layout = "N" + spatial + "C" if cl else "NC" + spatial
        unbatched = layout[1:]
        raise ValueError(f"{op}: input must be {nd + 2}-D ({layout}) or {nd + 1}-D (unbatched, {unbatched}), "
                         f"got {x.ndim}-D with shape {x.shape}")
    batched = x.ndim == nd + 2
    if not batched:
        x = x[None]
    return (_channels_first_view(x) if cl else x), batched


# (np.moveaxis normalises its arguments in Python: ~60 us of a call's first run, for a transpose)
def _channels_first_view(x):
    """(N, *spatial, C) -> (N, C, *spatial), a view."""
    n = x.ndim
    return x.transpose((0, n - 1) + tuple(range(1, n - 1)))


def _channels_last_view(x):
    """(N, C, *spatial) -> (N, *spatial, C), a view."""
    return x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))


def _kernel_array(x, nd, cdtype, cl=False):
    """The C-contiguous 5-D array a kernel takes: (N, C, D, H, W), or (N, D, H, W, C) channels-last."""
    if cl:
        a = contiguous(_channels_last_view(x), cdtype)   # the caller's own array when it is contiguous
        return a.reshape(a.shape[:1] + pad3(a.shape[1:-1], 1) + a.shape[-1:])
    a = contiguous(x, cdtype)
    return a.reshape(a.shape[:2] + pad3(a.shape[2:], 1))


def _to5d(arr, nd):
    """View an (N, C, *spatial) array as (N, C, D, H, W)."""
    return arr.reshape(arr.shape[:2] + pad3(arr.shape[2:], 1))


def _user_shape(N, C, sizes, cl):
    return (N,) + tuple(sizes) + (C,) if cl else (N, C) + tuple(sizes)


def _finish(y5, shape, batched, rdtype, out):
    """Reshape the kernel's 5-D result to the user's layout, cast, and honour out=."""
    y = y5.reshape(shape)
    if not batched:
        y = y[0]
    if out is not None:
        if not np.shares_memory(out, y):
            out[...] = y
        return out
    return y if y.dtype == rdtype else y.astype(rdtype)


def _output_buffer(shape5, cdtype, out, inputs, cl_input=None):
    """Write straight into out= when it is a C-contiguous array of the compute dtype that overlaps no input;
    a new channels-last output is placed apart from its input cl_input (see empty_apart)."""
    if (out is not None and out.dtype == cdtype and out.flags.c_contiguous and out.flags.aligned
            and not any(np.may_share_memory(out, a) for a in inputs)):
        return out.reshape(shape5)
    return np.empty(shape5, cdtype) if cl_input is None else empty_apart(shape5, cdtype, cl_input)


def _size_msg(op, spatial, out_sizes):
    return f"{op}: output size would be {tuple(out_sizes)} for input spatial size {tuple(spatial)}; it must be positive"


# --- convolution -------------------------------------------------------------

def _conv_args(op, nd, input, weight, bias, stride, dilation, groups, cl=False, weight_layout=None):
    x, batched = _input(input, nd, op, cl)
    w = as_array(weight, "weight")
    check_numeric(w, "weight")
    if w.ndim != nd + 2:
        raise ValueError(f"{op}: weight must be {nd + 2}-D, got {w.ndim}-D with shape {w.shape}")
    if weight_layout is not None:
        spatial = "DHW"[3 - nd:]
        forms = {"OI" + spatial: False, spatial + "IO": True}
        if weight_layout not in forms:
            raise ValueError(f"{op}: weight_layout must be one of {list(forms)}, got {weight_layout!r}")
        if forms[weight_layout]:   # (*kernel, in, out) -> PyTorch's (out, in, *kernel), a view
            w = np.moveaxis(w, (-1, -2), (0, 1))
    b = None
    if bias is not None:
        b = as_array(bias, "bias")
        check_numeric(b, "bias")
    groups = _check_int(groups, "groups", 1)
    stride = int_tuple(stride, nd, "stride")
    dilation = int_tuple(dilation, nd, "dilation")
    if any(k < 1 for k in w.shape[2:]):
        raise ValueError(f"{op}: weight's kernel size must be positive, got weight shape {w.shape}")
    if x.shape[1] % groups:
        raise ValueError(f"{op}: input channels ({x.shape[1]}) must be divisible by groups ({groups})")
    return x, batched, w, b, stride, dilation, groups


def _activation(value, op):
    """The fused epilogue as a clamp range: None, 'relu', 'relu6' or ('clamp', min, max) (None = unbounded)."""
    if value is None:
        return (-np.inf, np.inf)
    if isinstance(value, str):
        ranges = {"relu": (0.0, np.inf), "relu6": (0.0, 6.0)}
        if value not in ranges:
            raise ValueError(f"{op}: activation must be None, 'relu', 'relu6' or ('clamp', min, max), got {value!r}")
        return ranges[value]
    if isinstance(value, (tuple, list)) and len(value) == 3 and value[0] == "clamp":
        bounds = []
        for bound, default in zip(value[1:], (-np.inf, np.inf)):
            if bound is None:
                bounds.append(default)
            elif isinstance(bound, (int, float, np.integer, np.floating)) and not isinstance(bound, bool):
                bounds.append(float(bound))
            else:
                raise TypeError(f"{op}: activation clamp bounds must be numbers or None, got {bound!r}")
        if np.isnan(bounds).any() or bounds[0] > bounds[1]:
            raise ValueError(f"{op}: activation ('clamp', min, max) needs min <= max, got {tuple(value)!r}")
        return tuple(bounds)
    raise TypeError(f"{op}: activation must be None, 'relu', 'relu6' or ('clamp', min, max), got {value!r}")


def _check_bias(op, b, channels):
    if b is not None and b.shape != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},), got {b.shape}")


def _run_conv(op, x, w, b, geometry, out_shape, batched, out, algorithm, backend, rdtype, cdtype, user_inputs, act,
              cl=False):
    layout = _registry.CHANNELS_LAST if cl else _registry.CHANNELS_FIRST
    kernels = _registry.candidates(op, algorithm, backend, geometry, layout, cdtype.itemsize,
                                   variants=_autotune.get_autotune() == "exhaustive")
    shape5 = _user_shape(geometry.N, geometry.K, geometry.out, cl)
    if out is not None:
        check_out(out, out_shape if batched else out_shape[1:], rdtype)
    y5 = _output_buffer(shape5, cdtype, out, user_inputs, x if cl else None)
    if y5.size:
        b1 = contiguous(b, cdtype) if b is not None else np.empty(0, cdtype)
        key = ("conv", layout, dtype_name(cdtype), geometry)
        kernel = _autotune.dispatch(op, kernels, geometry, key, lambda k: k.run(x, w, b1, y5, geometry, act))
    else:
        kernel = None
    return _finish(y5, out_shape, batched, rdtype, out), kernel


# Memo of validated calls: a repeated call with the same array shapes/dtypes/strides and arguments
# skips validation and kernel selection (Python overhead ~25 us -> a few us).
_PLANS = {}
_PLAN_LIMIT = 512


def _out_key(out):
    """What of an out= array a memoised call depends on (its checks ran on the call that made the plan), or
    False when out= cannot be memoised (not an ndarray)."""
    if out is None:
        return None
    if type(out) is not np.ndarray:
        return False
    return ("out", out.shape, out.dtype.str, out.strides, int(out.flags.writeable))   # (no bool: see _key_tuple)


_KEY_SCALARS = frozenset({type(None), bool, int, str})
_TUPLE_SCALARS = frozenset({type(None), int, str})


def _key_tuple(t):
    """Whether a tuple argument may be part of a memo key: nested tuples of ints, strings and None only. (An
    integral float or a bool would hash equal to its int and skip the validation that refuses it.)"""
    for e in t:
        if type(e) is tuple:
            if not _key_tuple(e):
                return False
        elif type(e) not in _TUPLE_SCALARS:
            return False
    return True


def _plan_key(arrays, *parts):
    """A hashable key of the call, or None when the call is not memoisable (array-likes, other argument types).
    The data arrays (or None) are keyed by their layout; the other arguments by value (an array among them, as
    an adaptive pool's output_size, is not memoisable: its values would not be in the key)."""
    if _autotune.recording():
        return None
    key = []
    append = key.append
    for a in arrays:
        if a is None:
            append(None)
        elif type(a) is np.ndarray and a.flags.aligned:   # (the memoised path hands arrays on as they are)
            append((a.shape, a.dtype, a.strides))
        else:
            return None
    for p in parts:
        t = type(p)
        if t is bool:   # (True == 1: stride=True must not meet the plan of stride=1)
            append((bool, p))
        elif t in _KEY_SCALARS or (t is tuple and _key_tuple(p)):
            append(p)
        else:
            return None
    append(_autotune.state())
    return tuple(key)


def _conv_plan(cl, hwio, batched, cdtype, rdtype, geometry, out_shape, kernel, act):
    """A repeat of a validated conv call: only array preparation and the chosen kernel."""
    shape5 = _user_shape(geometry.N, geometry.K, geometry.out, cl)
    x5 = (geometry.N,) + geometry.inp + (geometry.C,) if cl else (geometry.N, geometry.C) + geometry.inp
    w5 = (geometry.K, geometry.C // geometry.groups) + geometry.kernel
    no_bias = np.empty(0, cdtype)
    run_kernel = kernel.run

    def run(input, weight, bias, out=None):
        x = input if batched else input[None]
        w = np.moveaxis(weight, (-1, -2), (0, 1)) if hwio else weight
        # the kernel array: the user's (channels-last: still channels-last) array as 5-D
        xk = np.ascontiguousarray(x, cdtype).reshape(x5)
        # out= (its shape, dtype and flags are part of the memo key, so checked on the first call)
        if out is None:
            y5 = empty_apart(shape5, cdtype, xk) if cl else np.empty(shape5, cdtype)
        else:
            y5 = _output_buffer(shape5, cdtype, out, [a for a in (input, weight, bias) if a is not None])
        if y5.size:
            b1 = np.ascontiguousarray(bias, cdtype) if bias is not None else no_bias
            run_kernel(xk, np.ascontiguousarray(w, cdtype).reshape(w5), b1, y5, geometry, act)
        return _finish(y5, out_shape, batched, rdtype, out)
    return run


def _conv(nd, input, weight, bias, stride, padding, dilation, groups, algorithm, backend, out, activation,
          layout=None, weight_layout=None):
    plan_key = None
    out_key = _out_key(out)
    if out_key is not False and type(input) is np.ndarray and type(weight) is np.ndarray:
        plan_key = _plan_key((input, weight, bias), nd, stride, padding, dilation, groups, algorithm, backend,
                             activation, layout, weight_layout, out_key)
        plan = _PLANS.get(plan_key) if plan_key is not None else None
        if plan is not None:
            return plan(input, weight, bias, out)
    return _conv_checked(nd, input, weight, bias, stride, padding, dilation, groups, algorithm, backend, out,
                         activation, layout, weight_layout, plan_key)


def _conv_checked(nd, input, weight, bias, stride, padding, dilation, groups, algorithm, backend, out, activation,
                  layout, weight_layout, plan_key):
    op = f"conv{nd}d"
    cl = _layout(layout, nd, op)
    x, batched, w, b, stride, dilation, groups = _conv_args(op, nd, input, weight, bias, stride, dilation, groups,
                                                            cl, weight_layout)
    act = _activation(activation, op)
    N, C = x.shape[:2]
    K = w.shape[0]
    kernel = w.shape[2:]
    if w.shape[1] * groups != C:
        raise ValueError(f"{op}: weight of shape {w.shape} with groups={groups} expects "
                         f"{w.shape[1] * groups} input channels, got input with {C} channels")
    if K % groups:
        raise ValueError(f"{op}: out channels (weight.shape[0] = {K}) must be divisible by groups ({groups})")
    _check_bias(op, b, K)
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0),) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")
            pads = same_padding(kernel, dilation)
        else:
            raise ValueError(f"{op}: padding string must be 'same' or 'valid', got {padding!r}")
    else:
        pads = padding_pairs(padding, nd)
    spatial = x.shape[2:]
    out_sizes = [conv_out_size(i, k, s, d, p0, p1)
                 for i, k, s, d, (p0, p1) in zip(spatial, kernel, stride, dilation, pads)]
    if any(o <= 0 for o in out_sizes):
        raise ValueError(_size_msg(op, spatial, out_sizes) + f" (kernel {tuple(kernel)}, stride {stride}, "
                         f"padding {pads}, dilation {dilation})")
    cdtype = compute_dtype(*(a for a in (x, w, b) if a is not None))
    rdtype = result_dtype(*(a for a in (x, w, b) if a is not None))
    out_shape = _user_shape(N, K, out_sizes, cl)
    check_size(out_shape, cdtype.itemsize, "output")
    geometry = ConvGeometry(N, C, K, groups, pad3(spatial, 1), pad3(out_sizes, 1), pad3(kernel, 1),
                            pad3(stride, 1), pad3([p[0] for p in pads], 0), pad3(dilation, 1))
    user = [a for a in (x, w, b) if a is not None]
    result, kernel = _run_conv(op, _kernel_array(x, nd, cdtype, cl), _to5d(contiguous(w, cdtype), nd), b,
                               geometry, out_shape, batched, out, algorithm, backend, rdtype, cdtype, user, act, cl)
    # No memo while a pick is provisional (tuned on a busy machine): its key must reach dispatch to be retuned.
    if plan_key is not None and kernel is not None and (b is None or type(bias) is np.ndarray) \
            and not _autotune.has_provisional():
        if len(_PLANS) >= _PLAN_LIMIT:
            _PLANS.clear()
        _PLANS[plan_key] = _conv_plan(cl, weight_layout is not None and weight_layout[-2:] == "IO", batched, cdtype,
                                      rdtype, geometry, out_shape, kernel, act)
    return result


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", backend="auto", out=None, activation=None, layout=None, weight_layout=None):
    """1-D convolution, as ``torch.nn.functional.conv1d``; padding may also be ``[(before, after)]``."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, algorithm, backend, out, activation,
                 layout, weight_layout)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", backend="auto", out=None, activation=None, layout=None, weight_layout=None):
    """2-D convolution, as ``torch.nn.functional.conv2d``; padding may also be per-dim (before, after) pairs.

    ``activation`` fuses an epilogue: None, ``"relu"``, ``"relu6"`` or ``("clamp", min, max)``
    (either bound may be None); NaN stays NaN, as in torch.relu and torch.clamp.
    """
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, algorithm, backend, out, activation,
                 layout, weight_layout)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", backend="auto", out=None, activation=None, layout=None, weight_layout=None):
    """3-D convolution, as ``torch.nn.functional.conv3d``; padding may also be per-dim (before, after) pairs."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, algorithm, backend, out, activation,
                 layout, weight_layout)


# --- transposed convolution ----------------------------------------------------

def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation,
                    algorithm, backend, out, activation, layout=None):
    """Run as a stride-1 convolution over the input with stride-1 zeros inserted, and flipped, regrouped weights."""
    op = f"conv_transpose{nd}d"
    if _layout(layout, nd, op):
        # Zero insertion builds a channels-first array anyway: convert at the edges.
        x, batched = _input(input, nd, op, cl=True)
        y = _conv_transpose(nd, x if batched else x[0], weight, bias, stride, padding, output_padding, groups,
                            dilation, algorithm, backend, None, activation)
        y = np.ascontiguousarray(np.moveaxis(y, 1 if batched else 0, -1))
        if out is None:
            return y
        check_out(out, y.shape, y.dtype)
        out[...] = y
        return out
    x, batched, w, b, stride, dilation, groups = _conv_args(op, nd, input, weight, bias, stride, dilation, groups)
    act = _activation(activation, op)
    N, C = x.shape[:2]
    if w.shape[0] != C:
        raise ValueError(f"{op}: weight of shape {w.shape} expects {w.shape[0]} input channels "
                         f"(weight.shape[0]), got input with {C} channels")
    K = w.shape[1] * groups
    kernel = w.shape[2:]
    _check_bias(op, b, K)
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int, a tuple of ints or of (before, after) pairs, got {padding!r}")
    pads = padding_pairs(padding, nd)
    output_padding = int_tuple(output_padding, nd, "output_padding", minimum=0)
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ >= s and op_ >= d:
            raise ValueError(f"{op}: output_padding must be smaller than either stride or dilation, got "
                             f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    spatial = x.shape[2:]
    out_sizes = [(i - 1) * s - p0 - p1 + d * (k - 1) + o + 1
                 for i, k, s, d, (p0, p1), o in zip(spatial, kernel, stride, dilation, pads, output_padding)]
    if any(o <= 0 for o in out_sizes):
        raise ValueError(_size_msg(op, spatial, out_sizes) + f" (kernel {tuple(kernel)}, stride {stride}, "
                         f"padding {pads}, dilation {dilation}, output_padding {output_padding})")
    cdtype = compute_dtype(*(a for a in (x, w, b) if a is not None))
    rdtype = result_dtype(*(a for a in (x, w, b) if a is not None))
    out_shape = (N, K) + tuple(out_sizes)
    check_size(out_shape, cdtype.itemsize, "output")

    # Zero insertion: x lands on every stride-th position of the stride-1 convolution's input, padded by
    # b = dilation*(kernel-1) - padding before. Only the window [lo, hi) that some output reads is built: the
    # start is cropped where b < 0 and the end where the padding after is large (stride 100000, padding 99999
    # on a 3x3 input once built 200001 x 200001 positions for 3 x 3 outputs).
    before = [d * (k - 1) - p0 for k, d, (p0, _) in zip(kernel, dilation, pads)]
    lo = [max(0, -b) for b in before]
    hi = [max(min((i - 1) * s + 1, o - b + d * (k - 1)), a + 1)   # (at least one position: zeros are as good)
          for i, s, o, b, d, k, a in zip(spatial, stride, out_sizes, before, dilation, kernel, lo)]
    check_size((N, C) + tuple(h - a for a, h in zip(lo, hi)), cdtype.itemsize, "the zero-inserted input")
    if all(s == 1 for s in stride) and lo == [0] * nd and hi == list(spatial):
        up = contiguous(x, cdtype)
    else:
        up = np.zeros((N, C) + tuple(h - a for a, h in zip(lo, hi)), cdtype)
        first = [-(-a // s) for a, s in zip(lo, stride)]          # the first x index inside the window
        last = [min(-(-h // s), i) for h, s, i in zip(hi, stride, spatial)]   # one past the last
        if all(f < e for f, e in zip(first, last)):
            up[(slice(None), slice(None)) + tuple(slice(f * s - a, (e - 1) * s - a + 1, s)
                                                  for f, e, s, a in zip(first, last, stride, lo))] = \
                x[(slice(None), slice(None)) + tuple(slice(f, e) for f, e in zip(first, last))]
    before = [max(0, b) for b in before]

    # weight (C, K/g, *k) -> (K, C/g, *k): swap in/out within each group, flip the kernel.
    Cg, Kg = C // groups, K // groups
    flipped = w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    wt = flipped.reshape((groups, Cg, Kg) + kernel).swapaxes(1, 2).reshape((K, Cg) + kernel)
    wt = contiguous(wt, cdtype)
    geometry = ConvGeometry(N, C, K, groups, pad3(up.shape[2:], 1), pad3(out_sizes, 1), pad3(kernel, 1),
                            (1, 1, 1), pad3(before, 0), pad3(dilation, 1))
    user = [a for a in (x, w, b) if a is not None]
    return _run_conv(op, _to5d(up, nd), _to5d(wt, nd), b, geometry, out_shape, batched, out,
                     algorithm, backend, rdtype, cdtype, user, act)[0]


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     algorithm="auto", backend="auto", out=None, activation=None, layout=None):
    """1-D transposed convolution, as ``torch.nn.functional.conv_transpose1d``."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation,
                           algorithm, backend, out, activation, layout)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     algorithm="auto", backend="auto", out=None, activation=None, layout=None):
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``."""
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation,
                           algorithm, backend, out, activation, layout)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     algorithm="auto", backend="auto", out=None, activation=None, layout=None):
    """3-D transposed convolution, as ``torch.nn.functional.conv_transpose3d``."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation,
                           algorithm, backend, out, activation, layout)


# --- pooling -------------------------------------------------------------------

def _pool_input(op, nd, input, layout):
    cl = _layout(layout, nd, op)
    x, batched = _input(input, nd, op, cl)
    cdtype = compute_dtype(x)
    return x, batched, cdtype, result_dtype(x), cl


def _run_pool(op, x, batched, cdtype, rdtype, out_sizes, params, return_indices, algorithm, backend, out, cl):
    nd = len(out_sizes)
    layout = _registry.CHANNELS_LAST if cl else _registry.CHANNELS_FIRST
    kernels = _registry.candidates(op, algorithm, backend, None, layout)
    out_shape = _user_shape(x.shape[0], x.shape[1], out_sizes, cl)
    check_size(out_shape, cdtype.itemsize + (8 if return_indices else 0), "output")
    if out is not None:
        check_out(out, out_shape if batched else out_shape[1:], rdtype)
    shape5 = _user_shape(x.shape[0], x.shape[1], pad3(out_sizes, 1), cl)
    y5 = _output_buffer(shape5, cdtype, out, [x])
    idx5 = np.empty(shape5, np.int64) if return_indices else None
    kernel = None
    if y5.size:
        x5 = _kernel_array(x, nd, cdtype, cl)
        key = (_registry.family(op), layout, dtype_name(cdtype), x5.shape, shape5, sorted(params.items()), return_indices)
        kernel = _autotune.dispatch(op, kernels, None, key, lambda k: k.run(x5, y5, idx5, params))
    if getattr(_pool_capture, "on", False) and kernel is not None:
        _pool_capture.plan = _pool_plan(batched, cdtype, rdtype, x5.shape, shape5, out_shape, params, return_indices,
                                        kernel)
    return _pool_result(y5, idx5, out_shape, batched, rdtype, out, return_indices)


def _pool_result(y5, idx5, out_shape, batched, rdtype, out, return_indices):
    y = _finish(y5, out_shape, batched, rdtype, out)
    if return_indices:
        idx = idx5.reshape(out_shape)
        return y, (idx if batched else idx[0])
    return y


# Memo of validated pooling calls, as _PLANS for convolutions: a repeat with the same input
# shape/dtype/strides and arguments runs the chosen kernel directly (Python overhead ~20-30 us ->
# a few us, which matters for kernels that take 40-60 us such as global average pooling).
_POOL_PLANS = {}
_pool_capture = threading.local()


def _pool_plan(batched, cdtype, rdtype, x5, shape5, out_shape, params, return_indices, kernel):
    def run(input, out=None):
        x = input if batched else input[None]
        # out= (its shape, dtype and flags are part of the memo key, so checked on the first call)
        y5 = np.empty(shape5, cdtype) if out is None else _output_buffer(shape5, cdtype, out, [input])
        idx5 = np.empty(shape5, np.int64) if return_indices else None
        # the kernel array: the user's array (channels-last stays channels-last) as 5-D
        kernel.run(np.ascontiguousarray(x, cdtype).reshape(x5), y5, idx5, params)
        return _pool_result(y5, idx5, out_shape, batched, rdtype, out, return_indices)
    return run


def _memoised_pool(fn):
    """Serve repeats of a validated call of the pooling function ``fn`` from _POOL_PLANS."""
    @functools.wraps(fn)
    def wrapper(input, *args, **kwargs):
        key = None
        out = kwargs.get("out")
        out_key = _out_key(out)
        if type(input) is np.ndarray and out_key is not False:
            rest = sorted((k, v) for k, v in kwargs.items() if k != "out")
            # (the count of positional arguments: a tuple ("padding", 1) passed as one is not padding=1)
            key = _plan_key((input,), fn.__name__, len(args), *args, *rest, out_key)
            plan = _POOL_PLANS.get(key) if key is not None else None
            if plan is not None:
                return plan(input, out)
        _pool_capture.on, _pool_capture.plan = key is not None, None
        try:
            result = fn(input, *args, **kwargs)
            plan = _pool_capture.plan
        finally:
            _pool_capture.on, _pool_capture.plan = False, None
        # No memo while a pick is provisional (tuned on a busy machine): it must reach dispatch again.
        if plan is not None and not _autotune.has_provisional():
            if len(_POOL_PLANS) >= _PLAN_LIMIT:
                _POOL_PLANS.clear()
            _POOL_PLANS[key] = plan
        return result
    return wrapper


def _window_args(op, nd, x, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = int_tuple(kernel_size, nd, "kernel_size")
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    stride = int_tuple(stride, nd, "stride")
    dilation = int_tuple(dilation, nd, "dilation")
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int, a tuple of ints or of (before, after) pairs, got {padding!r}")
    pads = padding_pairs(padding, nd)
    for k, (p0, p1) in zip(kernel, pads):
        if max(p0, p1) > k // 2:
            raise ValueError(f"{op}: padding must be at most half the kernel size, got padding={pads}, "
                             f"kernel_size={kernel}")
    ceil_mode = _check_bool(ceil_mode, "ceil_mode", op)
    spatial = x.shape[2:]
    out_sizes = [pool_out_size(i, k, s, d, p0, p1, bool(ceil_mode))
                 for i, k, s, d, (p0, p1) in zip(spatial, kernel, stride, dilation, pads)]
    if any(o <= 0 for o in out_sizes) or any(i <= 0 for i in spatial):
        raise ValueError(_size_msg(op, spatial, out_sizes) + f" (kernel_size {kernel}, stride {stride}, "
                         f"padding {pads}, dilation {dilation}, ceil_mode {bool(ceil_mode)})")
    params = {"kernel": pad3(kernel, 1), "stride": pad3(stride, 1), "dilation": pad3(dilation, 1),
              "pad_before": pad3([p[0] for p in pads], 0), "pad_after": pad3([p[1] for p in pads], 0)}
    return out_sizes, params


def _check_bool(value, name, op):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return bool(value)


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, algorithm, backend, out,
              layout):
    op = f"max_pool{nd}d"
    x, batched, cdtype, rdtype, cl = _pool_input(op, nd, input, layout)
    return_indices = _check_bool(return_indices, "return_indices", op)
    out_sizes, params = _window_args(op, nd, x, kernel_size, stride, padding, dilation, ceil_mode)
    return _run_pool(op, x, batched, cdtype, rdtype, out_sizes, params, return_indices, algorithm, backend, out, cl)


@_memoised_pool
def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               algorithm="auto", backend="auto", out=None, layout=None):
    """1-D max pooling, as ``torch.nn.functional.max_pool1d``."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, algorithm, backend,
                     out, layout)


@_memoised_pool
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               algorithm="auto", backend="auto", out=None, layout=None):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, algorithm, backend,
                     out, layout)


@_memoised_pool
def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               algorithm="auto", backend="auto", out=None, layout=None):
    """3-D max pooling, as ``torch.nn.functional.max_pool3d``."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, algorithm, backend,
                     out, layout)


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
              algorithm, backend, out, layout):
    op = f"avg_pool{nd}d"
    x, batched, cdtype, rdtype, cl = _pool_input(op, nd, input, layout)
    count_include_pad = _check_bool(count_include_pad, "count_include_pad", op)
    if divisor_override is not None:
        if not isinstance(divisor_override, (int, np.integer)) or isinstance(divisor_override, bool):
            raise TypeError(f"{op}: divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must be non-zero, got 0")
    out_sizes, params = _window_args(op, nd, x, kernel_size, stride, padding, 1, ceil_mode)
    params.update(count_include_pad=count_include_pad, divisor_override=int(divisor_override or 0))
    return _run_pool(op, x, batched, cdtype, rdtype, out_sizes, params, False, algorithm, backend, out, cl)


@_memoised_pool
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
               algorithm="auto", backend="auto", out=None, layout=None):
    """1-D average pooling, as ``torch.nn.functional.avg_pool1d`` (which has no divisor_override)."""
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                     algorithm, backend, out, layout)


@_memoised_pool
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, algorithm="auto", backend="auto", out=None, layout=None):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``."""
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                     algorithm, backend, out, layout)


@_memoised_pool
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, algorithm="auto", backend="auto", out=None, layout=None):
    """3-D average pooling, as ``torch.nn.functional.avg_pool3d``."""
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                     algorithm, backend, out, layout)


def _adaptive_sizes(op, nd, output_size, spatial):
    """output_size as PyTorch takes it: an int, or a tuple whose None entries keep the input's size."""
    if isinstance(output_size, np.ndarray) and output_size.ndim <= 1:   # (PyTorch takes these too)
        output_size = output_size.tolist()
    if output_size is None or isinstance(output_size, (tuple, list)):
        if output_size is None or len(output_size) != nd:
            raise ValueError(f"{op}: output_size must be an int or a tuple of {nd} ints/None, got {output_size!r}")
        return [i if o is None else _check_int(o, "output_size", 0) for o, i in zip(output_size, spatial)]
    return [_check_int(output_size, "output_size", 0)] * nd


def _adaptive(kind, nd, input, output_size, return_indices, algorithm, backend, out, layout=None):
    op = f"adaptive_{kind}_pool{nd}d"
    x, batched, cdtype, rdtype, cl = _pool_input(op, nd, input, layout)
    out_sizes = _adaptive_sizes(op, nd, output_size, x.shape[2:])
    if any(i <= 0 for i in x.shape[2:]):
        raise ValueError(f"{op}: input spatial size must be positive, got {x.shape[2:]}")
    return _run_pool(op, x, batched, cdtype, rdtype, out_sizes, {}, return_indices, algorithm, backend, out, cl)


@_memoised_pool
def adaptive_avg_pool1d(input, output_size, *, algorithm="auto", backend="auto", out=None, layout=None):
    """As ``torch.nn.functional.adaptive_avg_pool1d``."""
    return _adaptive("avg", 1, input, output_size, False, algorithm, backend, out, layout)


@_memoised_pool
def adaptive_avg_pool2d(input, output_size, *, algorithm="auto", backend="auto", out=None, layout=None):
    """As ``torch.nn.functional.adaptive_avg_pool2d``; ``output_size=1`` is global average pooling."""
    return _adaptive("avg", 2, input, output_size, False, algorithm, backend, out, layout)


@_memoised_pool
def adaptive_avg_pool3d(input, output_size, *, algorithm="auto", backend="auto", out=None, layout=None):
    """As ``torch.nn.functional.adaptive_avg_pool3d``."""
    return _adaptive("avg", 3, input, output_size, False, algorithm, backend, out, layout)


def _adaptive_max(nd, input, output_size, return_indices, algorithm, backend, out, layout):
    return_indices = _check_bool(return_indices, "return_indices", f"adaptive_max_pool{nd}d")
    return _adaptive("max", nd, input, output_size, return_indices, algorithm, backend, out, layout)


@_memoised_pool
def adaptive_max_pool1d(input, output_size, return_indices=False, *, algorithm="auto", backend="auto", out=None, layout=None):
    """As ``torch.nn.functional.adaptive_max_pool1d``."""
    return _adaptive_max(1, input, output_size, return_indices, algorithm, backend, out, layout)


@_memoised_pool
def adaptive_max_pool2d(input, output_size, return_indices=False, *, algorithm="auto", backend="auto", out=None, layout=None):
    """As ``torch.nn.functional.adaptive_max_pool2d``."""
    return _adaptive_max(2, input, output_size, return_indices, algorithm, backend, out, layout)


@_memoised_pool
def adaptive_max_pool3d(input, output_size, return_indices=False, *, algorithm="auto", backend="auto", out=None, layout=None):
    """As ``torch.nn.functional.adaptive_max_pool3d``."""
    return _adaptive_max(3, input, output_size, return_indices, algorithm, backend, out, layout)
