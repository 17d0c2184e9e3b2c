"""Every convolution kernel against the float64 reference, across random geometry."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkernels as ck
from cnnkernels import _prepared, _registry

from . import naive
from .cases import assert_close, conv_case, conv_terms

KERNELS = ck.available_kernels("conv2d") + [("auto", "auto")]   # auto: whatever the tuner picks
WINOGRAD = [(a, b) for a, b in KERNELS if a.startswith("winograd")]
DEPTHWISE = [(a, b) for a, b in KERNELS if a == "depthwise"]
GENERAL = [(a, b) for a, b in KERNELS if (a, b) not in WINOGRAD + DEPTHWISE]


def _restricted_ok(algorithm, nd, case):
    """Whether a restricted algorithm supports the case's geometry."""
    if algorithm == "depthwise":
        return case["groups"] == case["x_shape"][1]
    if nd == 3:   # a 3-D call that is a 2-D 3x3 convolution: one plane in depth, in and out, stride 1
        return (case["kernel"] == (1, 3, 3) and case["x_shape"][2] == 1 and case["pads"][0] == (0, 0)
                and case["stride"] == (1, 1, 1))
    return nd == 2 and case["kernel"] == (3, 3) and case["stride"] == (1, 1)
CONV = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}
CONV_T = {1: ck.conv_transpose1d, 2: ck.conv_transpose2d, 3: ck.conv_transpose3d}


def _tolerance(algorithm, backend):
    if algorithm == "auto":
        return max(_registry.ACCURACY_BOUND[c] for c in _registry.PRECISION_POLICIES[ck.get_precision()])
    return _registry.ACCURACY_BOUND[_registry.find("conv", algorithm, backend).accuracy]


def _check(case, got, ref, algorithm, backend, terms=None):
    if case["unbatched"]:
        ref = ref[0]
    terms = conv_terms(case, algorithm) if terms is None else terms
    assert_close(got, ref, case["dtype"], _tolerance(algorithm, backend), terms)


def _run_conv(nd, case, algorithm, backend):
    x = case["x"][0] if case["unbatched"] else case["x"]
    return CONV[nd](x, case["w"], case["b"], case["stride"], case["padding"], case["dilation"], case["groups"],
                    algorithm=algorithm, backend=backend)


def _reference(case):
    return naive.conv(case["x"], case["w"], case["b"], case["stride"], case["pads"], case["dilation"], case["groups"])


@pytest.mark.parametrize("algorithm,backend", GENERAL)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_matches_reference(nd, algorithm, backend):
    @given(conv_case(nd))
    def check(case):
        _check(case, _run_conv(nd, case, algorithm, backend), _reference(case), algorithm, backend)
    check()


@pytest.mark.parametrize("algorithm,backend", WINOGRAD + [("auto", "auto")])
def test_winograd_matches_reference(algorithm, backend):
    """3x3 stride-1 geometry, odd sizes and partial edge tiles, every padding form, groups, both dtypes."""
    @given(conv_case(2, winograd=True))
    def check(case):
        _check(case, _run_conv(2, case, algorithm, backend), _reference(case), algorithm, backend)
    check()


@pytest.mark.parametrize("algorithm,backend", DEPTHWISE)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_depthwise_matches_reference(nd, algorithm, backend):
    """groups == channels, channel multiplier >= 1, any kernel/stride/padding/dilation."""
    @given(conv_case(nd, depthwise=True))
    def check(case):
        _check(case, _run_conv(nd, case, algorithm, backend), _reference(case), algorithm, backend)
    check()


@pytest.mark.parametrize("algorithm,backend", DEPTHWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("clamp", [(-1.0, 1.5), None])
def test_depthwise_fast_paths_at_vector_widths(algorithm, backend, dtype, kernel, stride, clamp):
    """The 3x3/5x5 plane kernels at widths around whole vectors (2, 4, 8 and 16 lanes), where the C++ kernel
    switches between aligned-shift, tail, narrow-row, one-vector-row, masked flattened ("same" size) and (stride 2)
    even/odd split rows; every padding
    from none to more than the kernel, with bias, with a clamp and without (the C++ kernels compile the clamp out
    when there is none; the hypothesis cases stay below these widths)."""
    rng = np.random.default_rng(kernel * 10 + stride)
    # (14, 20), (13, 24): 8-, 4- and 1-row blocks of the kernel that broadcasts 5x5 weights from memory (AVX2).
    # (6, 4), (7, 6), (9, 11), (13, 13), and (5, 10)-(5, 14) in float32: "same" planes read in place by masked loads
    # (AVX-512), 4-row blocks and single rows.
    for H, W in [(5, 3), (6, 4), (7, 6), (6, 7), (4, 8), (5, 10), (9, 11), (6, 12), (13, 13), (5, 14), (9, 15), (7, 16),
                 (6, 17), (14, 20), (13, 24), (5, 31), (3, 33), (8, 48), (4, 50), (3, 67)]:
        for pad in (0, 1, kernel // 2, (kernel // 2, kernel - 1), (0, kernel - 1), (kernel - 1, 0)):
            pads = ((pad, pad),) * 2 if isinstance(pad, int) else (pad, pad)
            if any(W + a + b < kernel or H + a + b < kernel for a, b in pads):
                continue
            x = rng.standard_normal((2, 3, H, W)).astype(dtype)
            w = rng.standard_normal((6, 1, kernel, kernel)).astype(dtype)
            b = rng.standard_normal(6).astype(dtype)
            ref = naive.conv(x, w, b, (stride, stride), pads, (1, 1), 3)
            ref = np.clip(ref, *clamp) if clamp else ref
            # into out= followed by sentinels: rows stored as whole vectors must not pass the output's end
            buf = np.full(ref.size + 64, 7.0, dtype)
            got = ck.conv2d(x, w, b, stride, pads, 1, 3, algorithm=algorithm, backend=backend,
                            activation=("clamp", *clamp) if clamp else None, out=buf[:ref.size].reshape(ref.shape))
            assert np.all(buf[ref.size:] == 7.0), (H, W, pad)
            case = dict(x=x, w=w, b=b, stride=(stride, stride), pads=pads, dilation=(1, 1), groups=3,
                        dtype=dtype, unbatched=False)
            _check(case, got, ref, algorithm, backend)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", [3, 5])
def test_depthwise_planes_in_row_bands(dtype, kernel):
    """Planes too large for L1 run in bands of output rows, each copied on its own (whichever row kernel): bands
    that start and end in padding rows (rezeroed for each plane after earlier bands wrote data there), a shorter
    last band, several planes per thread."""
    rng = np.random.default_rng(kernel)
    # 70x100: aligned rows; 600x14 (3x3) and 600x10 (5x5): rows of one padded vector at 16 lanes; 1000x20 stride 2: rows
    # narrower than a vector at 16 lanes
    for (H, W, stride) in [(70, 100, 1), (600, 20 - 2 * kernel, 1), (1000, 20, 2)]:
        for pads in [((0, 0), (0, 0)), ((kernel // 2,) * 2, (kernel // 2,) * 2), ((kernel - 1,) * 2, (1, 1))]:
            x = rng.standard_normal((2, 3, H, W)).astype(dtype)
            w = rng.standard_normal((3, 1, kernel, kernel)).astype(dtype)
            b = rng.standard_normal(3).astype(dtype)
            ref = naive.conv(x, w, b, (stride, stride), pads, (1, 1), 3)
            got = ck.conv2d(x, w, b, stride, pads, 1, 3, algorithm="depthwise", backend="cpp")
            case = dict(x=x, w=w, b=b, stride=(stride, stride), pads=pads, dilation=(1, 1), groups=3, dtype=dtype,
                        unbatched=False)
            _check(case, got, ref, "depthwise", "cpp")


def test_depthwise_planes_over_8_mib_run_in_bands():
    """A plane whose padded copy would pass 8 MiB runs in ~1 MiB bands (bounded workspace), also in the
    scratch-output mode of planes narrower than 16 columns and in the stride-2 even/odd split rows (first padded
    column odd and even)."""
    rng = np.random.default_rng(11)
    for H, W, pad, s in [(2100, 1000, 1, 1), (430000, 5, 0, 1), (2100, 1000, 1, 2), (2101, 999, 2, 2)]:
        x = rng.standard_normal((1, 1, H, W)).astype(np.float32)
        w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(1).astype(np.float32)
        pads = ((pad, pad), (pad, pad))
        got = ck.conv2d(x, w, b, s, pad, 1, 1, algorithm="depthwise", backend="cpp")
        case = dict(x=x, w=w, b=b, stride=(s, s), pads=pads, dilation=(1, 1), groups=1, dtype=np.float32,
                    unbatched=False)
        _check(case, got, naive.conv(x, w, b, (s, s), pads, (1, 1), 1), "depthwise", "cpp")


@pytest.mark.parametrize("x_shape,layout,what", [
    ((1, 1, 200000, 64), "NHWC", "channels-last rows of 200000 pixels copied in column tiles (a whole-row ring was 154 MiB per thread)"),
    ((1, 1, 4000, 4000), "NCHW", "a 64 MiB plane runs in place, not from a whole-plane copy per thread"),
    ((1, 1, 4000, 4000), "NCHW-s2", "the same at stride 2 (even/odd split rows)")])
def test_depthwise_workspace_stays_bounded(x_shape, layout, what):
    """The process's peak memory grows by about the output (15-61 MiB), not by per-thread copies."""
    C = x_shape[-1] if layout == "NHWC" else x_shape[1]
    stride = 2 if layout.endswith("s2") else 1
    layout = layout.split("-")[0]
    code = ("import resource, numpy as np, cnnkernels as ck\n"
            f"x = np.ones({x_shape}, np.float32); w = np.ones(({C}, 1, 3, 3), np.float32)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"y = ck.conv2d(x, w, stride={stride}, padding=1, groups={C}, layout='{layout}', algorithm='depthwise',"
            " backend='cpp')\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, y.flat[0], y.max())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    corner, interior = (2.0, 3.0) if layout == "NHWC" else (4.0, 9.0)   # NHWC: one row, the others padding
    assert float(out[1]) == corner and float(out[2]) == interior, (what, out)
    assert int(out[0]) < 110, f"{what}: peak memory grew by {out[0]} MiB"


@pytest.mark.parametrize("algorithm,backend", DEPTHWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (5, 1), (5, 2), (4, 1)])
def test_depthwise_channels_last_at_vector_widths(algorithm, backend, dtype, kernel, stride):
    """Channels-last depthwise with channel counts around whole vectors and rows long enough for the
    multi-pixel register blocks (8 and 4 pixels) plus their remainders, against the float64 reference; with relu and
    without an activation (the C++ kernels then compile the clamp out)."""
    rng = np.random.default_rng(kernel * 10 + stride + 1)
    for C, H, W in [(16, 5, 30), (24, 4, 21), (40, 3, 37), (8, 6, 13), (33, 4, 12)]:
        for pad in (0, kernel // 2):
            x = rng.standard_normal((1, C, H + 2, W)).astype(dtype)
            w = rng.standard_normal((C, 1, kernel, kernel)).astype(dtype)
            b = rng.standard_normal(C).astype(dtype)
            pads = ((pad, pad), (pad, pad))
            relu = pad > 0
            ref = naive.conv(x, w, b, (stride, stride), pads, (1, 1), C)
            ref = np.maximum(ref, 0.0) if relu else ref
            got = ck.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, b, stride, pad, 1, C,
                            algorithm=algorithm, backend=backend, activation="relu" if relu else None, layout="NHWC")
            case = dict(x=x, w=w, b=b, stride=(stride, stride), pads=pads, dilation=(1, 1), groups=C,
                        dtype=dtype, unbatched=False)
            _check(case, got.transpose(0, 3, 1, 2), ref, algorithm, backend)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise_channels_last_in_place(dtype, threads):
    """The C++ channels-last 3x3 stride-1 "same" path that reads the input in place (AVX-512; other ISAs take the
    padded-row ring, checked by the same cases when the tests run under CNNKERNELS_ISA), in column strips of 1-4
    pixels walking down the rows with zero-padding columns at the left and right strips: planes from 1x1 up,
    odd and even row counts, widths giving every strip width, channel counts at, between and over whole vectors
    (the last vector shifted back), one image (row bands over 2 threads) and two, a NaN reaching only its window,
    the output bounded (sentinels), pixel strides of 1 and 2 KiB, and (3-D, depth kernel 1) whole planes in the
    depth padding."""
    rng = np.random.default_rng(40 + threads)
    lanes = 16 if dtype == np.float32 else 8
    itemsize = np.dtype(dtype).itemsize
    before = ck.get_num_threads()
    ck.set_num_threads(threads)
    try:
        for C, H, W in [(lanes, 1, 1), (lanes, 2, 2), (24, 5, 3), (40, 7, 6), (33, 6, 7), (80, 9, 12),
                        (3 * lanes, 4, 5), (lanes + 1, 3, 10), (lanes, 7, 9), (1024 // itemsize, 5, 6),
                        (2048 // itemsize, 6, 5)]:
            for n, bias in ((2, None), (1, rng.standard_normal(C).astype(dtype))):
                x = rng.standard_normal((n, C, H, W)).astype(dtype)
                x[n - 1, C // 2, H // 2, W - 1] = np.nan
                w = rng.standard_normal((C, 1, 3, 3)).astype(dtype)
                pads = ((1, 1), (1, 1))
                ref = np.clip(naive.conv(x, w, bias, (1, 1), pads, (1, 1), C), -1.0, 1.5)
                ref[np.isnan(naive.conv(x, w, bias, (1, 1), pads, (1, 1), C))] = np.nan
                buf = np.full(ref.size + 64, 7.0, dtype)   # sentinels after the output
                got = ck.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, bias, 1, 1, 1, C,
                                algorithm="depthwise", backend="cpp", activation=("clamp", -1.0, 1.5),
                                layout="NHWC", out=buf[:ref.size].reshape(ref.transpose(0, 2, 3, 1).shape))
                assert np.all(buf[ref.size:] == 7.0), (C, H, W)
                case = dict(x=x, w=w, b=bias, stride=(1, 1), pads=pads, dilation=(1, 1), groups=C,
                            dtype=dtype, unbatched=False)
                _check(case, got.transpose(0, 3, 1, 2), ref, "depthwise", "cpp")
        C = 40
        x = rng.standard_normal((1, C, 3, 5, 8)).astype(dtype)
        w = rng.standard_normal((C, 1, 1, 3, 3)).astype(dtype)
        bias = rng.standard_normal(C).astype(dtype)
        pads = ((1, 1), (1, 1), (1, 1))
        ref = np.maximum(naive.conv(x, w, bias, (1, 1, 1), pads, (1, 1, 1), C), 0.0)
        got = ck.conv3d(np.ascontiguousarray(x.transpose(0, 2, 3, 4, 1)), w, bias, 1, 1, 1, C,
                        algorithm="depthwise", backend="cpp", activation="relu", layout="NDHWC")
        case = dict(x=x, w=w, b=bias, stride=(1, 1, 1), pads=pads, dilation=(1, 1, 1), groups=C, dtype=dtype,
                    unbatched=False)
        _check(case, got.transpose(0, 4, 1, 2, 3), ref, "depthwise", "cpp")
    finally:
        ck.set_num_threads(before)


def _placed(shape, dtype, offset, fill):
    """An array of shape filled with fill, starting offset elements past a 64-byte boundary, inside a buffer
    with 64 more elements (holding fill) before and after it; returns (array, buffer, start)."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    buf = np.full(size + 192, fill, dtype)
    start = (-buf.ctypes.data % 64) // itemsize + 64 + offset
    return buf[start:start + size].reshape(shape), buf, start


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("kernel", [3, 5])
def test_depthwise_channels_last_rotated_vectors(dtype, threads, kernel):
    """The channels-last 3x3 and 5x5 "same" strips with input and output equally misaligned (NumPy's 16-byte
    alignment) and whole vectors per pixel: vectors start on aligned addresses, the first straddling the
    previous pixel's last channels, with masked loads, taps and stores at the plane's left and right columns
    and a last pass for the last pixel's last channels. Every misalignment of the element type, channel counts of 1-5
    vectors, widths giving every strip width, one image (at 2 and 3 threads split by columns over 16 rows, else
    by rows) and two; NaN on the channels a straddling vector shares between pixels (the last of a
    row's last pixel, the first of the next row's first, the last of the pixel before the threads' column
    boundary) stays in its own windows; nothing is written outside the output (sentinels on both sides).
    32 vectors per pixel (2 KiB) take vectors in pairs, in strips of 1-2 columns (3x3; 5x5 there takes the
    padded rows). 5x5 splits one image by columns at 3+ columns per thread whatever its rows, and rotates no
    vectors on 2-column planes."""
    rng = np.random.default_rng(60 + threads + 10 * kernel)
    lanes = 16 if dtype == np.float32 else 8
    before = ck.get_num_threads()
    ck.set_num_threads(threads)
    try:
        for C, H, W in [(lanes, 1, 1), (lanes, 3, 2), (2 * lanes, 5, 3), (2 * lanes, 4, 9), (3 * lanes, 6, 5),
                        (5 * lanes, 2, 7), (lanes, 7, 12), (4 * lanes, 3, 4), (lanes, 17, 9), (2 * lanes, 20, 6),
                        (lanes, 18, 4), (32 * lanes, 3, 5), (32 * lanes, 17, 7)]:
            for offset in sorted({1, lanes // 4, lanes // 2, lanes - 1}):
                n = 1 + (C + H + offset) % 2
                x = rng.standard_normal((n, C, H, W)).astype(dtype)
                x[0, C - 1, 0, W - 1] = np.nan
                if H > 1:
                    x[n - 1, 0, 1, 0] = np.nan
                if W >= 4:
                    x[0, C - 1, H // 2, W // 2 - 1] = np.nan
                w = rng.standard_normal((C, 1, kernel, kernel)).astype(dtype)
                bias = rng.standard_normal(C).astype(dtype) if offset % 2 else None
                p = kernel // 2
                pads = ((p, p), (p, p))
                exact = naive.conv(x, w, bias, (1, 1), pads, (1, 1), C)
                ref = np.clip(exact, -1.0, 1.5)
                ref[np.isnan(exact)] = np.nan
                xl, _, _ = _placed((n, H, W, C), dtype, offset, 0.0)
                xl[...] = x.transpose(0, 2, 3, 1)
                out, buf, start = _placed((n, H, W, C), dtype, offset, 7.0)
                got = ck.conv2d(xl, w, bias, 1, p, 1, C, algorithm="depthwise", backend="cpp",
                                activation=("clamp", -1.0, 1.5), layout="NHWC", out=out)
                assert got is out
                assert np.all(buf[:start] == 7.0) and np.all(buf[start + out.size:] == 7.0), (C, H, W, offset)
                case = dict(x=x, w=w, b=bias, stride=(1, 1), pads=pads, dilation=(1, 1), groups=C,
                            dtype=dtype, unbatched=False)
                _check(case, got.transpose(0, 3, 1, 2), ref, "depthwise", "cpp")
    finally:
        ck.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise_channels_last_aliasing_strides(dtype, threads):
    """Channels-last 3x3 "same" depthwise at pixel strides of 1, 2 and 4 KiB with the input 0-48 bytes past a
    cache line (NumPy aligns to 16): the output cnnkernels allocates sits half a pixel stride (at most 2 KiB)
    past the input modulo 4 KiB, so within a cache line like the input, and the in-place kernel then rotates
    its channel vectors onto aligned addresses; an out= placed elsewhere takes the plain vector order.
    Against the float64 reference, with relu."""
    rng = np.random.default_rng(50 + threads)
    itemsize = np.dtype(dtype).itemsize
    before = ck.get_num_threads()
    ck.set_num_threads(threads)
    try:
        for stride_bytes, H, W in [(1024, 5, 7), (2048, 4, 9), (4096, 3, 4)]:
            C = stride_bytes // itemsize
            w = rng.standard_normal((C, 1, 3, 3)).astype(dtype)
            bias = rng.standard_normal(C).astype(dtype)
            for skew in (0, 16, 32, 48):
                x = rng.standard_normal((1, C, H, W)).astype(dtype)
                buf = np.empty(x.size + 64, dtype)
                start = ((skew - buf.ctypes.data) % 64) // itemsize
                xl = buf[start:start + x.size].reshape(1, H, W, C)
                xl[...] = x.transpose(0, 2, 3, 1)
                assert xl.ctypes.data % 64 == skew
                ref = np.maximum(naive.conv(x, w, bias, (1, 1), ((1, 1), (1, 1)), (1, 1), C), 0.0)
                case = dict(x=x, w=w, b=bias, stride=(1, 1), pads=((1, 1), (1, 1)), dilation=(1, 1), groups=C,
                            dtype=dtype, unbatched=False)
                for out in (None, np.empty((1, H, W, C), dtype)):
                    got = ck.conv2d(xl, w, bias, 1, 1, 1, C, algorithm="depthwise", backend="cpp",
                                    activation="relu", layout="NHWC", out=out)
                    if out is None:
                        gap = (got.ctypes.data - xl.ctypes.data) % 4096
                        assert gap == min(stride_bytes, 4096) // 2, (stride_bytes, skew, gap)
                    _check(case, got.transpose(0, 3, 1, 2), ref, "depthwise", "cpp")
    finally:
        ck.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise_channels_last_padded_rows(dtype, kernel, stride, threads):
    """The C++ channels-last 3x3/5x5 path that copies each input row, zero-padded and one block of channels at a
    time, into a ring: one block and several (the last one wider), bands of output rows split over threads, padding
    from none to past the kernel and different along H and W, rows long enough to run in column tiles (the last
    one narrower), and (3-D, depth kernel 1) whole planes in the depth padding. Stride 2 takes it only at 2 KiB per pixel, so C = 2048 bytes / itemsize is in the list; the others
    check that stride 2 gives the same answers the other way."""
    rng = np.random.default_rng(kernel * 10 + stride + threads)
    lanes = 16 if dtype == np.float32 else 8
    before = ck.get_num_threads()
    ck.set_num_threads(threads)
    try:
        for C, H, W, pads in [(lanes, 9, 11, (1, 1)), (64, 6, 20, (kernel // 2, 0)), (72, 5, 9, (kernel, 1)),
                              (130, 4, 12, (0, kernel // 2)), (2048 // np.dtype(dtype).itemsize, 5, 7, (1, 2)),
                              (64, 4, 101, (kernel // 2, kernel // 2)),
                              (2048 // np.dtype(dtype).itemsize, 3, 45, (1, kernel // 2))]:
            pads = tuple((p, p) for p in pads)
            if any(n + 2 * p[0] < kernel for n, p in zip((H, W), pads)):
                continue
            for bias in (None, rng.standard_normal(C).astype(dtype)):
                x = rng.standard_normal((2, C, H, W)).astype(dtype)
                w = rng.standard_normal((C, 1, kernel, kernel)).astype(dtype)
                clamp = bias is None   # with a clamp, and without (the kernels then compile it out)
                ref = naive.conv(x, w, bias, (stride, stride), pads, (1, 1), C)
                ref = np.clip(ref, -1.0, 1.5) if clamp else ref
                buf = np.full(ref.size + 64, 7.0, dtype)   # sentinels after the output
                got = ck.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, bias, stride,
                                tuple(p[0] for p in pads), 1, C, algorithm="depthwise", backend="cpp",
                                activation=("clamp", -1.0, 1.5) if clamp else None, layout="NHWC",
                                out=buf[:ref.size].reshape(ref.transpose(0, 2, 3, 1).shape))
                assert np.all(buf[ref.size:] == 7.0), (C, H, W)
                case = dict(x=x, w=w, b=bias, stride=(stride, stride), pads=pads, dilation=(1, 1), groups=C,
                            dtype=dtype, unbatched=False)
                _check(case, got.transpose(0, 3, 1, 2), ref, "depthwise", "cpp")
        # 3-D with a depth kernel of 1: output planes at depth padding hold clamp(bias)
        C = 2048 // np.dtype(dtype).itemsize
        x = rng.standard_normal((1, C, 2, 6, 9)).astype(dtype)
        w = rng.standard_normal((C, 1, 1, kernel, kernel)).astype(dtype)
        bias = rng.standard_normal(C).astype(dtype)
        pads = ((1, 1), (kernel // 2, kernel // 2), (1, 1))
        ref = np.maximum(naive.conv(x, w, bias, (1, stride, stride), pads, (1, 1, 1), C), 0.0)
        got = ck.conv3d(np.ascontiguousarray(x.transpose(0, 2, 3, 4, 1)), w, bias, (1, stride, stride),
                        (1, kernel // 2, 1), 1, C, algorithm="depthwise", backend="cpp", activation="relu",
                        layout="NDHWC")
        case = dict(x=x, w=w, b=bias, stride=(1, stride, stride), pads=pads, dilation=(1, 1, 1), groups=C,
                    dtype=dtype, unbatched=False)
        _check(case, got.transpose(0, 4, 1, 2, 3), ref, "depthwise", "cpp")
    finally:
        ck.set_num_threads(before)


TILE_VARIANTS = [k for k in _registry.KERNELS["conv"] if k.variant]


@pytest.mark.parametrize("name", [k.name for k in TILE_VARIANTS])
def test_tile_variants_match_reference(name, only_candidate):
    """Every tile variant the exhaustive mode may pick, run alone on random geometry with up to 40 channels per
    group and maps up to 30x30 (40x40 for Winograd), where reduction chunks and tile blocks split, against the
    float64 reference."""
    kernel = next(k for k in TILE_VARIANTS if k.name == name)
    winograd = kernel.algorithm.startswith("winograd")
    only_candidate(name)

    @settings(max_examples=40, deadline=None)
    @given(conv_case(2, winograd=winograd, wide=True))
    def check(case):
        _check(case, _run_conv(2, case, kernel.algorithm, kernel.backend), _reference(case), kernel.algorithm,
               kernel.backend)
    check()


@pytest.mark.parametrize("name", [k.name for k in TILE_VARIANTS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_variants_split_work_and_match_reference(name, dtype, only_candidate):
    """The variants where they change the work's split: a 160-channel 3x3 reduction (16 KiB chunks: 14 channels
    at a time in float32, 128 KiB ones: 113 on AVX2) and a 48x48 map of 64 channels (F4: 144 tiles, blocks of
    about 52 at 768 KiB), with bias and a clamp, against the float64 reference."""
    kernel = next(k for k in TILE_VARIANTS if k.name == name)
    only_candidate(name)
    rng = np.random.default_rng(3)
    C, K, H = (160, 40, 12) if kernel.algorithm == "igemm" else (64, 64, 48)
    x = rng.standard_normal((1, C, H, H)).astype(dtype)
    w = rng.standard_normal((K, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    args = dict(padding=1, activation=("clamp", -30.0, None), algorithm=kernel.algorithm, backend=kernel.backend)
    assert ck.explain("conv2d", x, w, b, verbose=False, **args)["choice"] == name
    got = ck.conv2d(x, w, b, **args)
    ref = np.maximum(naive.conv(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 1), -30.0)
    case = dict(x=x, w=w, b=b, stride=(1, 1), pads=((1, 1), (1, 1)), dilation=(1, 1), groups=1, dtype=dtype,
                unbatched=False)
    _check(case, got, ref, kernel.algorithm, kernel.backend)


@pytest.mark.parametrize("algorithm,backend", WINOGRAD + DEPTHWISE)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_restricted_algorithms_refuse_other_geometry(nd, algorithm, backend):
    @given(conv_case(nd))
    def check(case):
        if _restricted_ok(algorithm, nd, case):
            _check(case, _run_conv(nd, case, algorithm, backend), _reference(case), algorithm, backend)
            return
        with pytest.raises(ValueError, match=f"algorithm='{algorithm}' does not support this geometry"):
            _run_conv(nd, case, algorithm, backend)
    check()


@pytest.mark.parametrize("algorithm,backend", WINOGRAD)
def test_winograd_refuses_a_depth_stride_and_names_it(algorithm, backend):
    """A 3-D call on one plane with a 1x3x3 kernel and depth stride 3 (one output plane, found by hypothesis)
    is refused, and the reason names the whole stride (it had said "needs stride 1, got stride (1, 1)")."""
    x = np.ones((1, 2, 1, 5, 5))
    w = np.ones((2, 2, 1, 3, 3))
    with pytest.raises(ValueError, match=r"needs stride 1, got stride \(3, 1, 1\)"):
        ck.conv3d(x, w, stride=(3, 1, 1), padding=(0, 1, 1), algorithm=algorithm, backend=backend)


@pytest.mark.parametrize("algorithm,backend", GENERAL)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_matches_reference(nd, algorithm, backend):
    @given(conv_case(nd, transposed=True))
    def check(case):
        x = case["x"][0] if case["unbatched"] else case["x"]
        got = CONV_T[nd](x, case["w"], case["b"], case["stride"], case["padding"], case["output_padding"],
                         case["groups"], case["dilation"], algorithm=algorithm, backend=backend)
        ref = naive.conv_transpose(case["x"], case["w"], case["b"], case["stride"], case["pads"],
                                   case["output_padding"], case["groups"], case["dilation"])
        mag = naive.conv_transpose(np.abs(case["x"]), np.abs(case["w"]), None if case["b"] is None else np.abs(case["b"]),
                                   case["stride"], case["pads"], case["output_padding"], case["groups"],
                                   case["dilation"])
        _check(case, got, ref, algorithm, backend, float(mag.max(initial=0.0)))
    check()


def test_conv_transpose_builds_only_the_window_its_outputs_read():
    """Large strides with large padding on either side: only the part of the zero-inserted input some output
    reads is built (stride 100000, padding 99999 on a 3x3 input once needed 149 GiB for a 3x3 output)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 2, 4, 5))
    w = rng.standard_normal((2, 3, 3, 2))
    for stride, pad, dil, outpad in [((30, 7), (40, 3), (2, 1), (0, 0)), ((9, 4), (0, 7), (1, 3), (5, 2)),
                                     ((5, 5), (9, 2), (3, 3), (0, 0)), ((40, 1), (45, 0), (1, 1), (39, 0))]:
        got = ck.conv_transpose2d(x, w, None, stride, pad, outpad, 1, dil)
        ref = naive.conv_transpose(x, w, None, stride, tuple((p, p) for p in pad), outpad, 1, dil)
        assert got.shape == ref.shape
        assert_close(got, ref, np.float64)
    x1 = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    y = ck.conv_transpose2d(x1, np.full((1, 1, 1, 1), 2.0, np.float32), stride=100000, padding=99999)
    expect = np.zeros((1, 1, 3, 3), np.float32)
    expect[0, 0, 1, 1] = 2 * x1[0, 0, 1, 1]     # only input (1, 1) lands on an output: 100000 - 99999 = 1
    assert np.array_equal(y, expect)


@pytest.mark.parametrize("algorithm,backend", [k for k in KERNELS if k not in DEPTHWISE])
def test_conv_large_channels_and_slicing(algorithm, backend, monkeypatch):
    """Many terms per output, and a workspace so small the kernels must work in many slices. A kernel whose
    floor (one Winograd tile, one padded igemm plane) is over 4 KiB is refused, naming the workspace, and then
    runs with the limit set to exactly the floor it reported."""
    monkeypatch.setattr(_registry, "WORKSPACE_BYTES", 4096)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 13, 11)).astype(np.float32)
    w = rng.standard_normal((40, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    winograd = algorithm.startswith("winograd")
    stride, dilation = ((1, 1), (1, 1)) if winograd else ((1, 2), (2, 1))

    def run():
        return ck.conv2d(x, w, b, stride=stride, padding=((1, 0), (2, 1)), dilation=dilation, groups=2,
                         algorithm=algorithm, backend=backend)
    try:
        got = run()
    except ValueError as exc:
        floor = re.search(r"needs at least (\d+) bytes of workspace, over the limit of 4096 bytes", str(exc))
        assert floor, exc
        monkeypatch.setattr(_registry, "WORKSPACE_BYTES", int(floor.group(1)))
        got = run()
    ref = naive.conv(x, w, b, stride, ((1, 0), (2, 1)), dilation, 2)
    assert_close(got, ref, np.float32, _tolerance(algorithm, backend))


@pytest.mark.skipif(_registry._cpp_backend.module is None, reason="C++ backend not built")
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 70), st.integers(1, 70), st.integers(1, 40),
       st.integers(1, 40), st.sampled_from([2, 4, 6]), st.sampled_from([4, 8]), st.integers(1, 2), st.booleans(),
       st.integers(0, 1 << 22))
def test_cpp_winograd_workspace_within_limit(N, groups, Cg, Kg, OH, OW, m, elem, threads, bias, extra):
    """The C++ Winograd's block plan: never above the limit once the limit covers its floor (the registry refuses
    it below), and the floor is what it uses when the limit is smaller."""
    mod = _registry._cpp_backend.module
    args = (N, groups * Cg, groups * Kg, groups, OH, OW, m, elem, threads)
    floor = mod.winograd_workspace_bytes(*args, 1, bias)
    assert floor > 0
    assert mod.winograd_workspace_bytes(*args, max(1, floor - 1), bias) == floor
    assert mod.winograd_workspace_bytes(*args, floor + extra, bias) <= floor + extra


@pytest.mark.parametrize("algorithm,backend", GENERAL)
def test_pointwise_conv(algorithm, backend):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 12, 7, 5))
    w = rng.standard_normal((8, 12, 1, 1))
    got = ck.conv2d(x, w, algorithm=algorithm, backend=backend)
    assert_close(got, naive.conv(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1), np.float64)


@pytest.mark.parametrize("policy", ["strict", "default", "fast"])
def test_precision_policy_limits_auto(policy):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    before = ck.get_precision()
    try:
        ck.set_precision(policy)
        report = ck.explain("conv2d", x, w, padding=1, verbose=False, retune=True)
        allowed = _registry.PRECISION_POLICIES[policy]
        for name in report["candidates"]:
            algorithm, backend = name.split("/")
            assert _registry.find("conv", algorithm, backend).accuracy in allowed
        if policy == "strict":
            assert not any(n.startswith("winograd") for n in report["candidates"])
        else:
            assert any(n.startswith("winograd") for n in report["candidates"])
    finally:
        ck.set_precision(before)
    with pytest.raises(ValueError, match="policy must be one of"):
        ck.set_precision("sloppy")


@pytest.mark.skipif(not any(b == "cpp" for _, b in KERNELS), reason="C++ extension not built")
@pytest.mark.parametrize("algorithm", [a for a, b in WINOGRAD if b == "cpp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpp_winograd_wide_weight_transform(algorithm, dtype):
    """The C++ weight transform in chunks of 16 input channels per job (the hypothesis cases have 1-3): 37 per
    group (16 + 16 + 5) with 40 filters per group (a full and a partial panel), 2 groups."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 74, 9, 11)).astype(dtype)
    w = rng.standard_normal((80, 37, 3, 3)).astype(dtype)
    b = rng.standard_normal(80).astype(dtype)
    pads = ((1, 1), (1, 1))
    got = ck.conv2d(x, w, b, 1, 1, 1, 2, algorithm=algorithm, backend="cpp")
    case = dict(x=x, w=w, b=b, stride=(1, 1), pads=pads, dilation=(1, 1), groups=2, dtype=dtype, unbatched=False)
    _check(case, got, naive.conv(x, w, b, (1, 1), pads, (1, 1), 2), algorithm, "cpp")


@pytest.mark.skipif(not any(b == "cpp" for _, b in KERNELS), reason="C++ extension not built")
@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_winograd_weight_transform_on_written_and_fresh_memory(m, dtype, threads):
    """U over 1 MiB is written with streaming stores into memory written before and with plain stores into fresh
    pages: every element of U is written (NaN before, none after), the same bits both ways and at 1 and 2
    threads, and a convolution from the weights equals the reference."""
    import mmap
    from cnnkernels import _cpp_backend
    from cnnkernels.winograd import transforms
    mod = _cpp_backend.module
    rng = np.random.default_rng(12)
    w = rng.standard_normal((120, 140, 1, 3, 3)).astype(dtype)   # a partial panel of filters and chunk of channels
    shape = mod.winograd_weights_shape(120, 140, 1, m)
    count, itemsize = int(np.prod(shape)), np.dtype(dtype).itemsize
    assert count * itemsize > 1 << 20
    written = _placed(shape, dtype, 0, np.nan)[0]   # on a 64-byte line, every page written
    fresh = np.frombuffer(mmap.mmap(-1, count * itemsize, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS),
                          dtype, count).reshape(shape)
    G = transforms(m)[1]
    mod.winograd_transform_weights(w, written, G, 1, threads)
    mod.winograd_transform_weights(w, fresh, G, 1, threads)
    assert not np.isnan(written).any()
    np.testing.assert_array_equal(written, fresh)
    x = rng.standard_normal((1, 140, 7, 8)).astype(dtype)
    got = ck.conv2d(x, w[:, :, 0], padding=1, algorithm=f"winograd_f{m}", backend="cpp")
    case = dict(x=x, w=w[:, :, 0], b=None, stride=(1, 1), pads=((1, 1), (1, 1)), dilation=(1, 1), groups=1,
                dtype=dtype, unbatched=False)
    _check(case, got, naive.conv(x, w[:, :, 0], None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1), f"winograd_f{m}", "cpp")


@pytest.mark.skipif(not any(b == "cpp" for _, b in KERNELS), reason="C++ extension not built")
@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpp_winograd_weight_transform_of_any_g_matches_the_baked_one(m, dtype):
    """The weight transform has a path for the G of transforms(m), baked in at compile time (zero terms skipped),
    and one for any other G. Doubling G multiplies every U = G g G^T by exactly 4, so U from 2G by the generic
    path must equal 4 x U from G by the baked one, bit for bit; and both must be finite."""
    from cnnkernels import _cpp_backend
    from cnnkernels.winograd import transforms
    mod = _cpp_backend.module
    w = np.random.default_rng(13).standard_normal((40, 21, 1, 3, 3)).astype(dtype)   # a partial panel and chunk
    shape = mod.winograd_weights_shape(40, 21, 1, m)
    baked, generic = np.full(shape, np.nan, dtype), np.full(shape, np.nan, dtype)
    G = transforms(m)[1]
    mod.winograd_transform_weights(w, baked, G, 1, 1)
    mod.winograd_transform_weights(w, generic, 2 * G, 1, 1)
    assert np.isfinite(baked).all() and np.abs(baked).max() > 0
    np.testing.assert_array_equal(generic, 4 * baked)


def test_winograd_weight_cache_sees_in_place_edits():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4, 10, 10))
    w = rng.standard_normal((4, 4, 3, 3))
    first = ck.conv2d(x, w, padding=1, algorithm="winograd_f4", backend="numba")
    w *= 2
    second = ck.conv2d(x, w, padding=1, algorithm="winograd_f4", backend="numba")
    np.testing.assert_allclose(second, 2 * first, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not any(b == "cpp" for _, b in KERNELS), reason="C++ extension not built")
@pytest.mark.parametrize("algorithm", ["winograd_f2", "igemm"])
def test_prepared_weights_see_a_single_edited_weight(algorithm):
    """Weights over several 256 KiB digest pieces (C++ weights_digest, threaded): editing one weight in the
    last piece, then one in the first, must each give a new result."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 160, 6, 6)).astype(np.float32)
    w = rng.standard_normal((240, 160, 3, 3)).astype(np.float32)      # 1.3 MiB: six pieces
    for index in [(239, 159, 2, 2), (0, 0, 0, 0)]:
        before = ck.conv2d(x, w, padding=1, algorithm=algorithm, backend="cpp")
        w[index] += 1.0
        after = ck.conv2d(x, w, padding=1, algorithm=algorithm, backend="cpp")
        ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        assert np.abs(after - ref).max() < 1e-3 * np.abs(ref).max()
        assert not np.allclose(after[0, index[0]], before[0, index[0]])


@pytest.mark.skipif(not any(b == "cpp" for _, b in KERNELS), reason="C++ extension not built")
def test_depthwise_channels_last_taps_see_edits():
    """The C++ channels-last depthwise remembers its transposed weights per thread (the last 8 weights seen,
    compared in full on every call): one weight edited in place (in the last tap, then in the first), more
    weights than it keeps, four Python threads at once (three weights between them), 3-D weights and weights over
    its 256 KiB limit all give the reference's result."""
    import threading
    rng = np.random.default_rng(6)
    C = 40
    x = rng.standard_normal((1, C, 6, 7)).astype(np.float32)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    pads = ((1, 1), (1, 1))

    def check(w, got, xx=x):
        ref = naive.conv(xx, w, None, (1, 1), pads, (1, 1), w.shape[0])
        assert np.abs(got.transpose(0, 3, 1, 2) - ref).max() < 1e-5 * np.abs(ref).max()

    def run(w, xx=xl):
        return ck.conv2d(xx, w, None, 1, 1, 1, w.shape[0], algorithm="depthwise", backend="cpp", layout="NHWC")

    w = rng.standard_normal((C, 1, 3, 3)).astype(np.float32)
    check(w, run(w))
    for index in [(C - 1, 0, 2, 2), (0, 0, 0, 0)]:
        w[index] += 1.0
        check(w, run(w))
    many = [rng.standard_normal((C, 1, 3, 3)).astype(np.float32) for _ in range(11)]
    for _ in range(2):
        for wi in many:
            check(wi, run(wi))
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, [run(many[i % 3]) for _ in range(20)]))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, outs in results.items():
        for got in outs:
            check(many[i % 3], got)
    w3 = rng.standard_normal((C, 1, 1, 3, 3)).astype(np.float32)
    x3 = rng.standard_normal((1, C, 2, 6, 7)).astype(np.float32)
    ref3 = naive.conv(x3, w3, None, (1, 1, 1), ((0, 0),) + pads, (1, 1, 1), C)
    got3 = ck.conv3d(np.ascontiguousarray(x3.transpose(0, 2, 3, 4, 1)), w3, None, 1, (0, 1, 1), 1, C,
                     algorithm="depthwise", backend="cpp", layout="NDHWC")
    assert np.abs(got3.transpose(0, 4, 1, 2, 3) - ref3).max() < 1e-5 * np.abs(ref3).max()
    big_c = 8000                                            # 8000 x 9 float32: 288 KB, over the limit
    wb = rng.standard_normal((big_c, 1, 3, 3)).astype(np.float32)
    xb = rng.standard_normal((1, big_c, 2, 2)).astype(np.float32)
    check(wb, run(wb, np.ascontiguousarray(xb.transpose(0, 2, 3, 1))), xb)
    wb[0, 0, 1, 1] += 1.0
    check(wb, run(wb, np.ascontiguousarray(xb.transpose(0, 2, 3, 1))), xb)


def test_weights_digest_binding():
    """The edit check of prepared weights: any one changed element (at a piece boundary, in the tail, a
    low mantissa bit of a float64, two neighbours swapped, two words of the same lane one block or four
    blocks apart swapped: the kernel hashes blocks round-robin into 4 states) changes the digest, whatever
    the thread count, with or without the finite check;
    finite is False exactly when some element is inf or NaN (None unchecked)."""
    from cnnkernels import _cpp_backend
    if _cpp_backend.module is None:
        pytest.skip("C++ extension not built")
    digest = _cpp_backend.module.weights_digest
    rng = np.random.default_rng(11)
    for dtype, n in [(np.float32, 3 * 2**18 + 7), (np.float64, 2**17 + 3), (np.float32, 5), (np.float32, 0)]:
        a = rng.standard_normal(n).astype(dtype)
        base = digest(a, 1)
        assert digest(a, 2) == base and digest(a.copy(), 2) == base and base[2]
        assert digest(a, 2, check_finite=False) == base[:2] + (None,)
        for i in sorted({0, n // 2, 2**16 - 1, 2**16, 2**18 - 1, 2**18, n - 1} & set(range(n))):
            b = a.copy()
            b[i] = np.nextafter(b[i], np.inf)                    # the lowest bit of one element
            assert digest(b, 2)[:2] != base[:2], (dtype, n, i)
            assert digest(b, 1, False)[:2] == digest(b, 2)[:2], (dtype, n, i)
            for gap in (1, 16 // a.itemsize * 4, 64 // a.itemsize * 4):   # neighbours; the next block; 4 on
                if i + gap < n:
                    b = a.copy()
                    b[i], b[i + gap] = a[i + gap], a[i]
                    assert digest(b, 1)[:2] != base[:2], (dtype, n, i, gap)
            for bad in (np.nan, np.inf, -np.inf):
                b = a.copy()
                b[i] = bad
                assert digest(b, 2)[2] is False and digest(b, 2, False)[2] is None, (dtype, n, i, bad)
    big = np.array([np.finfo(np.float64).max, -np.finfo(np.float64).max, 5e-324], np.float64)
    assert digest(big, 1)[2] is True
    assert digest(np.array([np.finfo(np.float32).max], np.float32), 1)[2] is True
    with pytest.raises(TypeError, match="float32 or float64"):
        digest(np.zeros(4, np.int32), 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        digest(np.zeros(8)[::2], 1)


@pytest.mark.parametrize("backend", [b for a, b in KERNELS if a == "winograd_f4"])
def test_winograd_f4_error_on_many_channels(backend):
    """F(4x4)'s points (0, +-1, 1/2, -2) keep its float32 error on 256 input channels near 4.5e-06 x max abs
    output; the usual 0, +-1, +-2 gave 1.1-1.3e-05 on this data (over the 1e-5 the dense layers are held to)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 256, 14, 14)).astype(np.float32)
    w = rng.standard_normal((64, 256, 3, 3)).astype(np.float32)
    ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    got = ck.conv2d(x, w, padding=1, algorithm="winograd_f4", backend=backend)
    assert np.abs(got - ref).max() <= 8e-6 * np.abs(ref).max()


def test_winograd_transforms_are_exact():
    from fractions import Fraction

    from cnnkernels.winograd import exact_transforms
    rng = np.random.default_rng(6)
    for m in (2, 4, 6):
        AT, G, BT = exact_transforms(m)
        n = m + 2
        for _ in range(5):
            d = [Fraction(int(v)) for v in rng.integers(-9, 10, n)]
            g = [Fraction(int(v)) for v in rng.integers(-9, 10, 3)]
            gg = [sum(G[i][k] * g[k] for k in range(3)) for i in range(n)]
            bd = [sum(BT[i][k] * d[k] for k in range(n)) for i in range(n)]
            y = [sum(AT[i][j] * gg[j] * bd[j] for j in range(n)) for i in range(m)]
            assert y == [sum(d[i + k] * g[k] for k in range(3)) for i in range(m)]


def test_winograd_float_transforms_are_the_exact_ones_rounded():
    from cnnkernels.winograd import _cache, exact_transforms, transforms
    _cache.clear()
    for m in (2, 4, 6):
        for got, exact in zip(transforms(m), exact_transforms(m)):
            assert got.dtype == np.float64
            assert got.tolist() == [[float(v) for v in row] for row in exact]


@pytest.mark.parametrize("algorithm,backend", KERNELS)
@pytest.mark.parametrize("activation,lo,hi", [("relu", 0.0, np.inf), ("relu6", 0.0, 6.0),
                                              (("clamp", -0.5, None), -0.5, np.inf), (("clamp", -1, 1.5), -1.0, 1.5)])
def test_fused_activation(algorithm, backend, activation, lo, hi):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 6, 11, 9)) * 3
    x[0, 1, 4, 4] = np.nan
    groups = 6 if algorithm == "depthwise" else 2      # depthwise: multiplier 2; else 2 outputs per group
    w = rng.standard_normal((12 if groups == 6 else 4, 6 // groups, 3, 3))
    b = rng.standard_normal(w.shape[0])
    got = ck.conv2d(x, w, b, padding=1, groups=groups, algorithm=algorithm, backend=backend, activation=activation)
    ref = naive.conv(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), groups)
    expect = np.where(np.isnan(ref), np.nan, np.minimum(np.maximum(ref, lo), hi))
    assert np.isnan(got).sum() == 9 * 2   # the NaN reaches a 3x3 window in the 2 outputs fed by its channel
    assert_close(got, expect, np.float64)
    if algorithm not in ("winograd_f2", "winograd_f4", "winograd_f6", "depthwise"):
        wt = rng.standard_normal((6, 2, 3, 3))
        t = ck.conv_transpose2d(x, wt, None, 2, 1, groups=2, algorithm=algorithm, backend=backend,
                                activation=activation)
        ref_t = naive.conv_transpose(x, wt, None, (2, 2), ((1, 1), (1, 1)), (0, 0), 2, (1, 1))
        assert_close(t, np.where(np.isnan(ref_t), np.nan, np.minimum(np.maximum(ref_t, lo), hi)), np.float64)


@pytest.mark.parametrize("activation,exc", [("gelu", ValueError), (("clamp", 2, 1), ValueError),
                                            (("clamp", "a", 1), TypeError), (3, TypeError)])
def test_bad_activation(activation, exc):
    with pytest.raises(exc, match="activation"):
        ck.conv2d(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), activation=activation)


def test_auto_skips_kernels_over_the_workspace_limit(monkeypatch):
    """auto never picks a kernel whose floor is over the limit, and still computes the right answer."""
    monkeypatch.setattr(_registry, "WORKSPACE_BYTES", 8192)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 48, 15, 15)).astype(np.float32)
    w = rng.standard_normal((48, 48, 3, 3)).astype(np.float32)
    report = ck.explain("conv2d", x, w, padding=1, verbose=False, retune=True)
    names = set(report["candidates"])
    assert names and not any(n.startswith("winograd_f4") or n.startswith("winograd_f6") for n in names), names
    assert_close(ck.conv2d(x, w, padding=1), naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1), np.float32,
                 _tolerance("auto", "auto"))


def test_workspace_setting_is_validated(tmp_path):
    for bad in ("abc", "0", "-1", "1048577", "1.5"):
        out = subprocess.run([sys.executable, "-c", "import cnnkernels"], capture_output=True, text=True,
                             env={**os.environ, "CNNKERNELS_WORKSPACE_MB": bad})
        assert out.returncode != 0 and "CNNKERNELS_WORKSPACE_MB must be an int in [1, 1048576] (MiB)" in out.stderr, bad
    # the least setting still computes a layer whose im2col columns are 3.7x it (kernels are sliced or skipped)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 256, 40, 40)).astype(np.float32)
    w = rng.standard_normal((64, 256, 3, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    code = ("import sys, numpy as np, cnnkernels as ck; from cnnkernels import _registry; d = sys.argv[1]; "
            "assert _registry.WORKSPACE_BYTES == 1 << 20; "
            "np.save(d + '/y.npy', ck.conv2d(np.load(d + '/x.npy'), np.load(d + '/w.npy'), padding=1))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "CNNKERNELS_WORKSPACE_MB": "1", "CNNKERNELS_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert_close(np.load(tmp_path / "y.npy"), naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
                 np.float32, _tolerance("auto", "auto"))


@pytest.mark.skipif(_registry._cpp_backend.module is None, reason="C++ backend not built")
@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["im2col", "igemm"]), st.integers(1, 3), st.integers(1, 3), st.integers(1, 40),
       st.integers(1, 40), st.lists(st.integers(1, 30), min_size=2, max_size=2),
       st.lists(st.integers(1, 5), min_size=2, max_size=2), st.lists(st.integers(1, 3), min_size=2, max_size=2),
       st.lists(st.integers(0, 2), min_size=2, max_size=2), st.lists(st.integers(1, 2), min_size=2, max_size=2),
       st.sampled_from([4, 8]), st.integers(1, 2), st.integers(0, 1 << 21))
def test_cpp_gemm_workspace_within_limit(algorithm, N, groups, Cg, Kg, size, kernel, stride, pad, dilation, elem,
                                         threads, extra):
    """The C++ im2col / igemm plans: never above the limit once it covers their floor."""
    out = [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in zip(size, kernel, stride, pad, dilation)]
    if min(out) < 1:
        return
    mod = _registry._cpp_backend.module
    args = (algorithm, N, groups * Cg, groups * Kg, groups, (1, *size), (1, *out), (1, *kernel), (1, *stride),
            (0, *pad), (1, *dilation), elem, threads)
    floor = mod.conv_workspace_bytes(*args, 1)
    assert mod.conv_workspace_bytes(*args, max(1, floor)) <= max(1, floor)
    assert mod.conv_workspace_bytes(*args, floor + extra + 1) <= floor + extra + 1


@pytest.mark.parametrize("backend", [b for a, b in KERNELS if a == "im2col"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 5, 16, 37, 53, 300])
@pytest.mark.parametrize("positions", [1, 2, 3, 4, 5, 8, 14, 16, 17])
def test_few_output_positions(backend, dtype, channels, positions):
    """1x1 outputs of 1-16 positions are narrow products (C++: the GEMV kernel in passes of up to 4 columns, not
    the NR-wide tiles; 17 is the tiles, for contrast): rows in and out of its row blocks, reductions with and
    without whole vectors, every column count of a pass, bias and clamp."""
    rng = np.random.default_rng(channels * 10 + positions)
    for k_out in (1, 3, 13, 70):
        x = rng.standard_normal((1, channels, 1, positions)).astype(dtype)
        w = rng.standard_normal((k_out, channels, 1, 1)).astype(dtype)
        b = rng.standard_normal(k_out).astype(dtype)
        got = ck.conv2d(x, w, b, activation=("clamp", -0.5, 1.0), algorithm="im2col", backend=backend)
        ref = np.clip(naive.conv(x, w, b, (1, 1), ((0, 0), (0, 0)), (1, 1), 1), -0.5, 1.0)
        # rounding follows the summed terms, not the clamped outputs
        terms = (np.abs(w[:, :, 0, 0]).astype(np.float64) @ np.abs(x[0, :, 0, :]) + np.abs(b)[:, None]).max()
        assert_close(got, ref, dtype, terms=terms)


@pytest.mark.skipif(_registry._cpp_backend.module is None, reason="C++ backend not built")
@pytest.mark.parametrize("algorithm", ["winograd_f2", "winograd_f4", "winograd_f6"])
def test_cpp_winograd_one_image_over_threads(algorithm):
    """One image at 1, 2 and 3 threads: each thread runs whole tile blocks at 1 thread, and at more where
    every thread reading U costs less than the plane's V + M (32 channels on 40x40, 24 on 200x200 in several
    blocks; 64 on 30x26 with F2), else the threads share each block phase by phase (64-192 channels): every
    split gives the one-thread result bit for bit, and the reference's, with a NaN reaching only its
    windows."""
    rng = np.random.default_rng(11)
    for C, K, H, W in [(32, 32, 40, 40), (64, 64, 30, 26), (128, 96, 17, 19), (192, 192, 9, 10),
                       (24, 24, 200, 200)]:
        x = rng.standard_normal((1, C, H, W)).astype(np.float32)
        x[0, C // 2, H // 2, W // 3] = np.nan
        w = rng.standard_normal((K, C, 3, 3)).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        exact = naive.conv(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        outs = []
        before = ck.get_num_threads()
        try:
            for threads in (1, 2, 3):
                ck.set_num_threads(threads)
                outs.append(ck.conv2d(x, w, b, padding=1, algorithm=algorithm, backend="cpp"))
        finally:
            ck.set_num_threads(before)
        assert np.array_equal(np.isnan(outs[0]), np.isnan(exact))
        ok = ~np.isnan(exact)
        assert_close(outs[0][ok], exact[ok], np.float32, terms=np.abs(w).sum(axis=(1, 2, 3)).max() * 8)
        for got in outs[1:]:
            np.testing.assert_array_equal(got, outs[0])


@pytest.mark.skipif(_registry._cpp_backend.module is None, reason="C++ backend not built")
@pytest.mark.parametrize("algorithm", ["winograd_f2", "winograd_f4", "winograd_f6"])
@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_winograd_reports_nonfinite_tiles(algorithm, threads):
    """The C++ Winograd kernel checks its transformed input tiles itself (no pass over x) and reports one holding
    a NaN or an infinity, whichever thread met it; the call then computes exactly: NaN, +inf and -inf in three
    images reach only their own windows, also under relu6, which would turn an infinity spread by the transform
    into a plausible 6 or 0."""
    m = int(algorithm[-1])
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 6, 13, 12)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    before = ck.get_num_threads()
    ck.set_num_threads(threads)
    try:
        for image, value in [(0, np.nan), (2, np.inf), (3, -np.inf)]:
            bad = x.copy()
            bad[image, 4, 7, 3] = value
            got = ck.conv2d(bad, w, b, padding=1, groups=2, algorithm=algorithm, backend="cpp", activation="relu6")
            ref = np.clip(naive.conv(bad, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 2), 0, 6)
            ref[np.isnan(naive.conv(bad, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 2))] = np.nan
            assert_close(got, ref, np.float32, terms=np.abs(w).sum() * 4)
        # the kernel's own report, on the transformed weights the call prepared
        mod = _registry._cpp_backend.module
        from cnnkernels.winograd import transforms
        U = _registry.winograd_weights(w.reshape(4, 3, 1, 3, 3), m, 2, "cpp").data
        AT, _, BT = transforms(m)
        BT_other = BT.copy()
        BT_other[0, 0] *= 1 + 1e-12      # not the matrices baked into the unrolled transforms: the general path
        for bt in (BT, BT_other):
            for image, value in [(None, 0.0), (1, np.nan), (3, np.inf)]:
                xx = x.copy()
                if image is not None:
                    xx[image, 5, 12, 11] = value     # the last row and column: the edge tiles
                y = np.empty((4, 4, 1, 13, 12), np.float32)
                ok = mod.winograd_conv(xx.reshape(4, 6, 1, 13, 12), U, None, y, (0, 1, 1), AT, bt, threads, 1 << 26)
                assert ok == (image is None)
    finally:
        ck.set_num_threads(before)


@pytest.mark.parametrize("algorithm,backend", WINOGRAD)
def test_winograd_dilated_with_nan_input(algorithm, backend):
    """A dilated call runs on the input's phases; a NaN there still reaches exactly its 9 outputs per channel
    (the phase call falls back to an exact kernel) and the rest stays right."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 4, 12, 11))
    x[0, 2, 5, 6] = np.nan
    w = rng.standard_normal((3, 4, 3, 3))
    got = ck.conv2d(x, w, padding=2, dilation=2, algorithm=algorithm, backend=backend)
    ref = naive.conv(x, w, None, (1, 1), ((2, 2), (2, 2)), (2, 2), 1)
    assert np.isnan(got).sum() == 9 * 3
    assert_close(got, ref, np.float64)


@pytest.mark.parametrize("algorithm,backend", WINOGRAD)
def test_winograd_overflow_of_finite_inputs_falls_back(algorithm, backend):
    """Finite inputs near the float32 range's end overflow in Winograd's products and transforms where an exact
    kernel's sums do not (x = 1e38 gave NaN in outputs whose window does not hold it): such calls are computed
    exactly, also under an activation's clamp (which could hide an infinity)."""
    x = np.zeros((1, 1, 8, 8), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    rng = np.random.default_rng(14)
    xr = (rng.standard_normal((1, 16, 12, 12)) * 1e18).astype(np.float32)
    wr = (rng.standard_normal((16, 16, 3, 3)) * 1e18).astype(np.float32)
    for value in (1e38, 2e38, 3e38):
        x[0, 0, 4, 4] = value
        got = ck.conv2d(x, w, padding=1, algorithm=algorithm, backend=backend)
        ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        assert np.isfinite(got).all(), value
        assert_close(got, ref, np.float32, _tolerance(algorithm, backend))
    for activation, lo, hi in ((None, -np.inf, np.inf), ("relu6", 0.0, 6.0)):
        got = ck.conv2d(xr, wr, padding=1, algorithm=algorithm, backend=backend, activation=activation)
        ref = np.clip(naive.conv(xr, wr, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1), lo, hi)
        assert np.isfinite(got).all()
        assert_close(got, ref, np.float32, _tolerance(algorithm, backend))


@pytest.mark.parametrize("algorithm,backend", WINOGRAD)
def test_winograd_dilation_beyond_the_output(algorithm, backend):
    """Dilation over the output size: only the phases holding an output are computed (at dilation 300 on a
    5x4 output, 20 of 90000; the phase copy once grew with dilation squared), and the result is right."""
    from cnnkernels._geometry import ConvGeometry
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 3, 5, 4))
    w = rng.standard_normal((2, 3, 3, 3))
    for d, pad in ((300, 300), (7, (7, 6))):
        pads = (pad, pad) if isinstance(pad, int) else pad
        got = ck.conv2d(x, w, padding=pads, dilation=d, algorithm=algorithm, backend=backend)
        ref = naive.conv(x, w, None, (1, 1), ((pads[0], pads[0]), (pads[1], pads[1])), (d, d), 1)
        assert_close(got, ref, np.float64)
    g = ConvGeometry(1, 3, 2, 1, (1, 5, 4), (1, 5, 4), (1, 3, 3), (1, 1, 1), (0, 300, 300), (1, 300, 300))
    assert _registry._phase_geometry(g).N == 20


def test_heuristic_runs_dilated_layers_with_small_phases_on_gemm():
    """Winograd runs a dilated layer on its phases: the heuristic takes it only where they are 12 x 12 or more."""
    from cnnkernels._geometry import ConvGeometry
    for d, winograd in ((2, True), (12, False)):
        g = ConvGeometry(1, 256, 256, 1, (1, 33, 33), (1, 33, 33), (1, 3, 3), (1, 1, 1), (0, d, d), (1, d, d))
        kernels = _registry.candidates("conv2d", "auto", "auto", g)
        pick = _registry.heuristic("conv", kernels, g).algorithm
        assert (pick == "winograd_f4") == winograd and pick != "direct", (d, pick)


@pytest.mark.parametrize("layout", ["NCW", "NWC"])
def test_depthwise_rows_longer_than_a_column_chunk(layout):
    """1-D depthwise rows of up to 140000 outputs run in chunks of 65536 columns with their own window tables
    (padding shifted by the chunk's start): strides 1 and 2, dilation, padding, multiplier 2, against the
    reference."""
    if ck.info()["cpp"] is None:
        pytest.skip("C++ extension not built")
    rng = np.random.default_rng(13)
    x = rng.standard_normal((1, 3, 140000)).astype(np.float32)
    for k, s, d, pad in [(3, 1, 2, 2), (5, 2, 1, 2), (3, 1, 1, 0)]:
        w = rng.standard_normal((6, 1, k)).astype(np.float32)
        b = rng.standard_normal(6).astype(np.float32)
        ref = naive.conv(x, w, b, (s,), ((pad, pad),), (d,), 3)
        xin = np.ascontiguousarray(x.transpose(0, 2, 1)) if layout == "NWC" else x
        got = ck.conv1d(xin, w, b, s, pad, d, 3, algorithm="depthwise", backend="cpp", layout=layout)
        if layout == "NWC":
            got = got.transpose(0, 2, 1)
        case = dict(x=x, w=w, b=b, stride=(s,), pads=((pad, pad),), dilation=(d,), groups=3, dtype=np.float32,
                    unbatched=False)
        _check(case, got, ref, "depthwise", "cpp")


def test_depthwise_2d_rows_over_a_mebibyte():
    """2-D depthwise planes whose padded rows pass 1 MiB take the generic path (column-chunked tables) instead of
    the padded/split-row ones: one row of 300001 samples, 3x3 at strides 1 and 2, 2 channels, against the
    reference (only the kernel's middle row meets data)."""
    if ck.info()["cpp"] is None:
        pytest.skip("C++ extension not built")
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1, 2, 1, 300001)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    for stride in (1, 2):
        got = ck.conv2d(x, w, b, stride, 1, groups=2, algorithm="depthwise", backend="cpp")
        ref = naive.conv(x[:, :, :, :41], w, b, (stride, stride), ((1, 1), (1, 1)), (1, 1), 2)
        xp = np.pad(x[0, :, 0].astype(np.float64), ((0, 0), (1, 1)))
        n = (x.shape[-1] - 1) // stride + 1
        full = b[:, None] + sum(w[:, 0, 1, kw, None].astype(np.float64) * xp[:, kw:kw + stride * (n - 1) + 1:stride]
                                for kw in range(3))
        np.testing.assert_allclose(full[:, :ref.shape[-1] - 1], ref[0, :, 0, :-1], rtol=1e-12)  # the reference's
        assert_close(got[0, :, 0], full, np.float32, terms=np.abs(w).sum() * 4)


def test_prepared_weights_without_the_extension_compare_a_copy(monkeypatch):
    """Without the C++ extension the prepared-weight check is an exact copy: an unchanged array reuses its
    entry, one edited weight gives a new, correct result."""
    from cnnkernels import _cpp_backend
    monkeypatch.setattr(_cpp_backend, "module", None)
    monkeypatch.setattr(_prepared, "CACHE", _prepared.PreparedCache())
    rng = np.random.default_rng(17)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    before = ck.conv2d(x, w, padding=1, algorithm="winograd_f2", backend="numba")
    (entry,) = _prepared.CACHE.values()
    w5 = w.reshape(5, 4, 1, 3, 3)                         # the kernels' 5-D view of the same weights
    assert type(entry.check).__name__ == "_ExactCopy" and entry.valid_for(w5) and entry.finite
    w[4, 3, 2, 2] += 1.0
    assert not entry.valid_for(w5)
    after = ck.conv2d(x, w, padding=1, algorithm="winograd_f2", backend="numba")
    ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert np.abs(after - ref).max() < 1e-4 * np.abs(ref).max()
    assert not np.allclose(after[0, 4], before[0, 4])


@pytest.mark.parametrize("groups", [1, 8])
def test_infinite_weight_over_padding_follows_the_documented_rule(groups):
    """README: direct and depthwise skip taps in the zero padding (finite there), the GEMM and Winograd kernels
    multiply its zeros (NaN, as the float64 reference); away from the border every algorithm agrees."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((1, 8, 6, 7)).astype(np.float32)
    w = rng.standard_normal((8, 8 // groups, 3, 3)).astype(np.float32)
    w[3, 0, 1, 0] = np.inf   # the left tap of filter 3: over the padding for output column 0 only
    ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), groups)
    assert np.isnan(ref[0, 3, :, 0]).all()
    skip = ["direct"] + (["depthwise"] if groups == 8 else [])
    for algorithm, backend in KERNELS:
        if algorithm not in skip + ["im2col", "igemm", "winograd_f2"]:
            continue
        try:
            y = ck.conv2d(x, w, padding=1, groups=groups, algorithm=algorithm, backend=backend)
        except ValueError:   # not this geometry
            continue
        border = y[0, 3, :, 0]
        if algorithm in skip:
            assert np.isfinite(border).all(), (algorithm, backend)
        else:
            assert np.isnan(border).all(), (algorithm, backend)
        np.testing.assert_array_equal(np.isnan(y[0, 3, :, 1:]), np.isnan(ref[0, 3, :, 1:]))
