"""Every pooling kernel against the float64 reference, across random geometry."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnnkernels as ck

from . import naive
from .cases import assert_close, pool_case

BACKENDS = [b for _, b in ck.available_kernels("max_pool2d")]
MAX = {1: ck.max_pool1d, 2: ck.max_pool2d, 3: ck.max_pool3d}
AVG = {1: ck.avg_pool1d, 2: ck.avg_pool2d, 3: ck.avg_pool3d}
ADAPTIVE_AVG = {1: ck.adaptive_avg_pool1d, 2: ck.adaptive_avg_pool2d, 3: ck.adaptive_avg_pool3d}
ADAPTIVE_MAX = {1: ck.adaptive_max_pool1d, 2: ck.adaptive_max_pool2d, 3: ck.adaptive_max_pool3d}


def _x(case):
    return case["x"][0] if case["unbatched"] else case["x"]


def _ref(case, ref):
    return ref[0] if case["unbatched"] else ref


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_matches_reference(nd, backend):
    @given(pool_case(nd, "max"))
    def check(case):
        y, idx = MAX[nd](_x(case), case["kernel"], case["stride"], case["padding"], case["dilation"],
                         case["ceil_mode"], return_indices=True, backend=backend)
        ref, ref_idx = naive.max_pool(case["x"], case["kernel"], case["stride"], case["pads"], case["dilation"],
                                      case["ceil_mode"])
        assert_close(y, _ref(case, ref), case["dtype"])
        assert idx.dtype == np.int64
        np.testing.assert_array_equal(idx, _ref(case, ref_idx))
        plain = MAX[nd](_x(case), case["kernel"], case["stride"], case["padding"], case["dilation"],
                        case["ceil_mode"], backend=backend)
        assert_close(plain, _ref(case, ref), case["dtype"])
    check()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_pool_matches_reference(nd, backend):
    @given(pool_case(nd, "avg"))
    def check(case):
        extra = {} if nd == 1 else {"divisor_override": case["divisor_override"]}
        y = AVG[nd](_x(case), case["kernel"], case["stride"], case["padding"], case["ceil_mode"],
                    case["count_include_pad"], backend=backend, **extra)
        ref = naive.avg_pool(case["x"], case["kernel"], case["stride"], case["pads"], case["ceil_mode"],
                             case["count_include_pad"], case["divisor_override"])
        assert_close(y, _ref(case, ref), case["dtype"])
    check()


@st.composite
def adaptive_case(draw, nd):
    spatial = tuple(draw(st.integers(1, 6 if nd == 3 else 13)) for _ in range(nd))
    out = tuple(draw(st.integers(1, 7)) for _ in range(nd))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal((draw(st.sampled_from([1, 2, 0])), draw(st.integers(1, 3))) + spatial).astype(dtype)
    if draw(st.booleans()):
        x[rng.random(x.shape) < 0.1] = np.nan
    return x, out, dtype


def _avg_terms(x, out):
    """The largest mean of |x| over an adaptive window (assert_close's terms): with NaNs in every other window,
    the one finite output can cancel far below its terms (a 13x2 window of standard-normal values averaging
    -4.8e-04, its float32 rounding 1.3e-08, failed a bound of 1e-5 x that output)."""
    mag, _ = naive.adaptive_pool(np.abs(np.nan_to_num(x)), out, "avg")
    return float(mag.max(initial=0.0))


def test_adaptive_avg_window_cancelling_far_below_its_terms():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 13, 8)).astype(np.float32)
    x[..., :4] = np.nan                                   # of the 6 windows over 8 columns, only window 3
    x[..., 6:] = np.nan                                   # (columns 4-5) holds no NaN
    window = x[..., 4:6].astype(np.float64)
    x[..., 4:6] = (window - window.mean() + 1e-4).astype(np.float32)   # its average cancels to ~1e-4
    ref, _ = naive.adaptive_pool(x, (1, 6), "avg")
    for backend in BACKENDS:
        got = ck.adaptive_avg_pool2d(x, (1, 6), backend=backend)
        assert np.isfinite(got).sum() == 1 and abs(got[0, 0, 0, 3] - 1e-4) < 1e-6
        assert_close(got, ref, np.float32, terms=_avg_terms(x, (1, 6)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_pools_match_reference(nd, backend):
    @given(adaptive_case(nd))
    def check(case):
        x, out, dtype = case
        ref, _ = naive.adaptive_pool(x, out, "avg")
        assert_close(ADAPTIVE_AVG[nd](x, out, backend=backend), ref, dtype, terms=_avg_terms(x, out))
        ref, ref_idx = naive.adaptive_pool(x, out, "max")
        y, idx = ADAPTIVE_MAX[nd](x, out, return_indices=True, backend=backend)
        assert_close(y, ref, dtype)
        np.testing.assert_array_equal(idx, ref_idx)
    check()


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_average_pool(backend):
    x = np.random.default_rng(2).standard_normal((3, 5, 7, 7)).astype(np.float32)
    y = ck.adaptive_avg_pool2d(x, 1, backend=backend)
    assert_close(y, x.astype(np.float64).mean(axis=(2, 3), keepdims=True), np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_nan_propagates(backend):
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 0.5, 2.0]]])
    y, idx = ck.max_pool1d(x, 3, return_indices=True, backend=backend)
    assert np.isnan(y[0, 0, 0]) and idx[0, 0, 0] == 1
    assert np.isnan(y[0, 0, 1]) and idx[0, 0, 1] == 3


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("window", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (5, 3, 2)])
def test_common_windows_on_larger_maps(window, layout):
    """Fast paths engage on real map sizes (hypothesis draws small ones): check them at 47-64 pixels."""
    k, s, p = window
    rng = np.random.default_rng(k * 10 + s)
    for shape in [(1, 3, 48, 48), (2, 2, 47, 61), (1, 17, 9, 64)]:
        x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)    # after a ReLU: many ties at 0
        x[0, 0, 5, 7] = np.nan
        ref, ref_idx = naive.max_pool(x, (k, k), (s, s), ((p, p), (p, p)), (1, 1), False)
        ref_avg = naive.avg_pool(x, (k, k), (s, s), ((p, p), (p, p)), False, False, None)
        xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
        back = (lambda a: a.transpose(0, 3, 1, 2)) if layout == "NHWC" else (lambda a: a)
        for _, backend in ck.available_kernels("max_pool2d", layout=layout):
            y, idx = ck.max_pool2d(xin, k, s, p, return_indices=True, backend=backend, layout=layout)
            assert_close(back(y), ref, np.float32)
            np.testing.assert_array_equal(back(idx), ref_idx)
            avg = ck.avg_pool2d(xin, k, s, p, count_include_pad=False, backend=backend, layout=layout)
            assert_close(back(avg), ref_avg, np.float32)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("shape", [(2, 37, 7, 7), (1, 70, 4, 4), (1, 40, 5, 3), (3, 33, 9, 9), (1, 300, 3, 5),
                                   (2, 5, 7, 7), (1, 161, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_pool_many_channels(shape, layout, dtype):
    """Global average fast paths: groups of 16 planes (NCHW, partial last vector per plane) and
    channel blocks of 8 / 1 vectors plus a shifted last vector (NHWC); a NaN stays in its channel."""
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    x[0, min(3, shape[1] - 1), 0, 0] = np.nan
    ref = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
    for _, backend in ck.available_kernels("adaptive_avg_pool2d", layout=layout):
        y = ck.adaptive_avg_pool2d(xin, 1, backend=backend, layout=layout)
        assert_close(y.transpose(0, 3, 1, 2) if layout == "NHWC" else y, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [(2, 2, 0, False), (3, 2, 1, False), (3, 2, 1, True), (3, 1, 1, False),
                                    (3, 1, 0, False), (2, 1, 1, True), (4, 2, 2, False), (5, 1, 2, True),
                                    (7, 2, 3, False)])
def test_separable_planes_on_wide_maps(window, dtype):
    """The separable NCHW plane path (no indices, horizontal stride 1 or 2, >= 16 outputs per row):
    odd widths (partial last vector), ceil_mode, every divisor rule, NaN, -inf and all -inf windows.
    3x3 stride 1 on planes up to 16 KB takes the column-walk kernel: (100, 32) walks two bands, 16 columns
    are one pair of AVX2 vectors with both edges."""
    k, s, p, ceil = window
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    extra = [(1, 2, 100, 32), (1, 2, 20, 16)] if (k, s) == (3, 1) else []
    for shape in [(2, 3, 37, 50), (1, 4, 21, 35), (1, 2, 12, 67)] + extra:
        x = rng.standard_normal(shape).astype(dtype)
        x[0, 0, 3, 9] = np.nan
        x[0, 0, 3, 20 % shape[3]] = np.nan
        x[0, 1, :5, :7] = -np.inf
        x[-1, -1, 2, -1] = np.inf
        pads = ((p, p), (p, p))
        ref, _ = naive.max_pool(x, (k, k), (s, s), pads, (1, 1), ceil)
        for _, backend in ck.available_kernels("max_pool2d"):
            assert_close(ck.max_pool2d(x, k, s, p, 1, ceil, backend=backend), ref, dtype)
        for incl in (False, True):
            for div in (None, 3, -2):
                ref = naive.avg_pool(x, (k, k), (s, s), pads, ceil, incl, div)
                for _, backend in ck.available_kernels("avg_pool2d"):
                    got = ck.avg_pool2d(x, k, s, p, ceil, incl, div, backend=backend)
                    assert_close(got, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 1, False), (3, 1, 0, 1, False),
                                    (3, 1, 1, 2, False), (4, 3, 2, 1, True)])
def test_channels_last_vector_path(window, dtype):
    """NHWC max (no indices) and avg with >= one vector of channels: blocks of 4 vectors, single and
    shifted last vectors (C = 70, 17, 16), dilation, ceil_mode, every divisor rule, NaN / -inf windows;
    3-wide stride-1 windows slide along the row (blocks of 2 vectors, then single / shifted ones)."""
    k, s, p, d, ceil = window
    rng = np.random.default_rng(k * 1000 + s * 100 + p * 10 + d)
    for shape in [(1, 70, 9, 13), (2, 17, 6, 7), (1, 16, 5, 11)]:
        x = rng.standard_normal(shape).astype(dtype)
        x[0, 3, 2, 4] = np.nan
        x[0, -1, 1, 1] = np.nan
        x[0, 5, :4, :5] = -np.inf
        pads = ((p, p), (p, p))
        xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        ref, _ = naive.max_pool(x, (k, k), (s, s), pads, (d, d), ceil)
        for _, backend in ck.available_kernels("max_pool2d", layout="NHWC"):
            got = ck.max_pool2d(xin, k, s, p, d, ceil, backend=backend, layout="NHWC")
            assert_close(got.transpose(0, 3, 1, 2), ref, dtype)
        for incl in (False, True):
            for div in (None, 3, -2):
                ref = naive.avg_pool(x, (k, k), (s, s), pads, ceil, incl, div)
                for _, backend in ck.available_kernels("avg_pool2d", layout="NHWC"):
                    got = ck.avg_pool2d(xin, k, s, p, ceil, incl, div, backend=backend, layout="NHWC")
                    assert_close(got.transpose(0, 3, 1, 2), ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_max_pool_keeps_the_sign_of_the_earliest_zero(layout, dtype):
    """Equal maxima are the earliest in scan order, as PyTorch's `val > max` rule: over windows of -0 and +0
    the result's sign is the first zero's. Planes of zeros of random sign and -1, through the separable plane
    kernels (wide rows; 3-wide stride 2 with one column of padding reads rows in place and shifts a broadcast
    in: a broadcast that turned -0 into +0 was caught here), the 3x3 stride-1 column walk, the row kernels
    (narrow rows) and the channels-last ones, 1 and 2 threads. The one documented exception: the C++
    channels-last 3x3 stride-1 kernel (over whole vectors of channels) reduces column by column (README), so
    there only the values are checked."""
    rng = np.random.default_rng(7)
    for shape, (k, s, p) in [((2, 3, 9, 34), (3, 2, 1)), ((1, 2, 7, 48), (3, 2, 1)), ((1, 2, 6, 40), (2, 2, 0)),
                             ((1, 2, 12, 40), (3, 1, 1)), ((1, 2, 5, 9), (3, 2, 1)), ((1, 35, 5, 9), (3, 2, 1)),
                             ((1, 35, 6, 9), (3, 1, 1)), ((1, 70, 5, 8), (3, 1, 0))]:
        x = np.where(rng.random(shape) < 0.5, -0.0, 0.0) - (rng.random(shape) < 0.3)
        x = x.astype(dtype)
        ref, _ = naive.max_pool(x, (k, k), (s, s), ((p, p), (p, p)), (1, 1), False)
        xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
        before = ck.get_num_threads()
        try:
            for threads in (1, 2):
                ck.set_num_threads(threads)
                for _, backend in ck.available_kernels("max_pool2d", layout=layout):
                    got = ck.max_pool2d(xin, k, s, p, backend=backend, layout=layout)
                    got = got.transpose(0, 3, 1, 2) if layout == "NHWC" else got
                    column_first = layout == "NHWC" and backend == "cpp" and (k, s) == (3, 1)
                    assert np.array_equal(got, ref), (shape, k, s, p, backend, threads)
                    assert column_first or np.array_equal(np.signbit(got), np.signbit(ref)), \
                        (shape, k, s, p, backend, threads)
        finally:
            ck.set_num_threads(before)


def _windows_1d(x, k, s, d, pad, fill):
    """(N, C, OW, k) window values of a 1-D pooling with symmetric padding `pad` filled with `fill`, and the
    input position of each tap."""
    W = x.shape[-1]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad)), constant_values=fill)
    OW = (W + 2 * pad - d * (k - 1) - 1) // s + 1
    pos = np.arange(OW)[:, None] * s + np.arange(k)[None, :] * d
    return xp[..., pos], pos - pad


def _max_pool_1d(x, k, s, d, pad):
    win, pos = _windows_1d(x, k, s, d, pad, -np.inf)
    arg = win.argmax(axis=-1)                                    # the first maximum, as PyTorch
    return win.max(axis=-1), pos[np.arange(pos.shape[0]), arg]


def _avg_pool_1d(x, k, s, pad, count_include_pad):
    win, pos = _windows_1d(x, k, s, 1, pad, 0.0)
    count = k if count_include_pad else ((pos >= 0) & (pos < x.shape[-1])).sum(axis=-1)
    return win.sum(axis=-1) / count


@pytest.mark.parametrize("backend", ["cpp", "numba"])
def test_pooling_rows_longer_than_a_column_chunk(backend):
    """Rows of 140000 outputs run in chunks of 65536 columns, each with its own window table (padding shifted by
    the chunk's start): max (values and indices, dilation, stride 1 and 2) and average (count_include_pad either
    way) against vectorised references, themselves checked against tests/naive.py on a short signal."""
    if backend == "cpp" and ck.info()["cpp"] is None:
        pytest.skip("C++ backend not built")
    rng = np.random.default_rng(12)
    short = rng.standard_normal((1, 2, 40))
    assert np.array_equal(_max_pool_1d(short, 3, 2, 2, 1)[0], naive.max_pool(short, (3,), (2,), ((1, 1),), (2,),
                                                                                False)[0])
    np.testing.assert_allclose(_avg_pool_1d(short, 5, 2, 2, False),
                               naive.avg_pool(short, (5,), (2,), ((2, 2),), False, False, None), rtol=1e-12)
    x = rng.standard_normal((1, 2, 140000)).astype(np.float32)
    for k, s, d, pad in [(3, 1, 2, 1), (5, 2, 1, 2), (3, 1, 1, 0)]:
        ref, ref_idx = _max_pool_1d(x, k, s, d, pad)
        got, idx = ck.max_pool1d(x, k, s, pad, d, return_indices=True, backend=backend)
        assert np.array_equal(got, ref.astype(np.float32)), (k, s, d, pad)
        assert np.array_equal(idx, np.broadcast_to(ref_idx, idx.shape) if ref_idx.ndim == 1 else ref_idx)
    for count_include_pad in (True, False):
        got = ck.avg_pool1d(x, 5, 2, 2, count_include_pad=count_include_pad, backend=backend)
        assert_close(got, _avg_pool_1d(x, 5, 2, 2, count_include_pad), np.float32)


def _adaptive_1d(x, out, reduce):
    """PyTorch's adaptive windows [floor(o*W/out), ceil((o+1)*W/out)) reduced along the last axis, vectorised
    (windows of a row have at most two lengths): values, and for max the first maximum's position."""
    W = x.shape[-1]
    o = np.arange(out)
    start, end = o * W // out, ((o + 1) * W + out - 1) // out
    span = int((end - start).max())
    pos = start[:, None] + np.arange(span)
    valid = pos < end[:, None]
    win = x[..., np.minimum(pos, W - 1)]
    if reduce == "avg":
        return np.where(valid, win, 0.0).sum(axis=-1) / valid.sum(axis=-1), None
    win = np.where(valid, win, -np.inf)
    arg = win.argmax(axis=-1)
    return win.max(axis=-1), np.take_along_axis(np.broadcast_to(pos, win.shape), arg[..., None], -1)[..., 0]


@pytest.mark.parametrize("layout", ["NCW", "NWC"])
def test_adaptive_pooling_rows_longer_than_a_column_chunk(layout):
    """Adaptive pooling's window tables also go by chunks of 65536 output columns (absolute window positions per
    chunk): 200003 samples to 140001 outputs (windows of 1 and 2 samples) against a vectorised reference,
    itself checked against tests/naive.py on a short signal; max with indices."""
    if ck.info()["cpp"] is None:
        pytest.skip("C++ backend not built")
    rng = np.random.default_rng(14)
    short = rng.standard_normal((1, 2, 23))
    np.testing.assert_allclose(_adaptive_1d(short, 9, "avg")[0], naive.adaptive_pool(short, (9,), "avg")[0],
                               rtol=1e-12)
    ref_max, ref_idx = naive.adaptive_pool(short, (9,), "max")
    assert np.array_equal(_adaptive_1d(short, 9, "max")[0], ref_max)
    assert np.array_equal(_adaptive_1d(short, 9, "max")[1], ref_idx)
    x = rng.standard_normal((1, 3, 200003)).astype(np.float32)
    xin = np.ascontiguousarray(x.transpose(0, 2, 1)) if layout == "NWC" else x
    back = (lambda a: a.transpose(0, 2, 1)) if layout == "NWC" else (lambda a: a)
    avg = back(ck.adaptive_avg_pool1d(xin, 140001, backend="cpp", layout=layout))
    assert_close(avg, _adaptive_1d(x.astype(np.float64), 140001, "avg")[0], np.float32)
    if layout == "NCW":
        got, idx = ck.adaptive_max_pool1d(x, 140001, return_indices=True, backend="cpp")
        ref, ref_idx = _adaptive_1d(x, 140001, "max")
        assert np.array_equal(got, ref) and np.array_equal(idx, ref_idx)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("op", ["max", "avg", "depthwise", "depthwise_nwc", "adaptive_avg", "adaptive_avg_nwc",
                                "adaptive_max", "depthwise_2d_one_row_s2"])
def test_long_rows_keep_the_window_table_small(op, threads):
    """A 10-million-sample 1-D signal: the per-column window tables (25-40 bytes per output column; adaptive
    pooling's too) are built per 65536-column chunk, (1 thread) pooling does not take the separable path, whose
    per-thread scratch grows with the row (~400 MB here), and a 2-D depthwise plane of one such row at stride 2
    does not take the split-row path (whole rows): peak memory grows by about the output (20-40 MB)."""
    if ck.info()["cpp"] is None:
        pytest.skip("C++ extension not built")
    call = {"max": "ck.max_pool1d(x, 3, 1, 1, backend='cpp')",
            "avg": "ck.avg_pool1d(x, 3, 1, 1, backend='cpp')",
            "depthwise": "ck.conv1d(x, w, padding=1, groups=1, algorithm='depthwise', backend='cpp')",
            "depthwise_nwc": "ck.conv1d(x.reshape(1, -1, 1), w, padding=1, groups=1, algorithm='depthwise', "
                             "backend='cpp', layout='NWC')",
            "adaptive_avg": "ck.adaptive_avg_pool1d(x, 7_000_001, backend='cpp')",
            "adaptive_avg_nwc": "ck.adaptive_avg_pool1d(x.reshape(1, -1, 1), 7_000_001, backend='cpp', layout='NWC')",
            "adaptive_max": "ck.adaptive_max_pool1d(x, 7_000_001, backend='cpp')",
            "depthwise_2d_one_row_s2": "ck.conv2d(x.reshape(1, 1, 1, -1), np.ones((1, 1, 3, 3), np.float32), "
                                       "stride=2, padding=1, algorithm='depthwise', backend='cpp')"}[op]
    code = ("import resource, numpy as np, cnnkernels as ck\n"
            "x = np.ones((1, 1, 10_000_000), np.float32); w = np.ones((1, 1, 3), np.float32)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"y = {call}\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, float(y.max()))\n")
    import subprocess
    import sys
    import os
    env = {**os.environ, "CNNKERNELS_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    assert int(out[0]) < 75, f"{op}, {threads} threads: peak memory grew by {out[0]} MiB"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_last_average_3x3_stride_1_row_pairs(dtype, threads):
    """Channels-last 3x3 stride-1 averages run two output rows per pass (sharing two input rows): channel
    counts of 1-4 vectors and tails, odd and even heights (the last row alone), 3-D inputs, all divisors."""
    rng = np.random.default_rng(7)
    shapes = [(1, 64, 9, 8), (2, 80, 6, 5), (1, 33, 7, 4), (1, 130, 4, 6), (1, 16, 3, 3), (1, 48, 2, 7)]
    before = ck.get_num_threads()
    ck.set_num_threads(threads)
    try:
        for shape in shapes:
            x = rng.standard_normal(shape).astype(dtype)
            x[0, shape[1] - 1, 1, 2] = np.inf          # spreads to its 3x3 neighbourhood only, in both rows
            xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            for p, include, override in [(1, False, None), (1, True, None), (0, True, None), (1, False, 5)]:
                if min(shape[2:]) + 2 * p < 3:
                    continue
                ref = naive.avg_pool(x, (3, 3), (1, 1), ((p, p), (p, p)), False, include, override)
                for _, backend in ck.available_kernels("avg_pool2d", layout="NHWC"):
                    y = ck.avg_pool2d(xin, 3, 1, p, count_include_pad=include, divisor_override=override,
                                      backend=backend, layout="NHWC")
                    assert_close(y.transpose(0, 3, 1, 2), ref, dtype)
            x3 = rng.standard_normal((1, shape[1], 2) + shape[2:]).astype(dtype)
            ref = naive.avg_pool(x3, (1, 3, 3), (1, 1, 1), ((0, 0), (1, 1), (1, 1)), False, False, None)
            y = ck.avg_pool3d(np.ascontiguousarray(x3.transpose(0, 2, 3, 4, 1)), (1, 3, 3), 1, (0, 1, 1),
                              count_include_pad=False, layout="NDHWC")
            assert_close(y.transpose(0, 4, 1, 2, 3), ref, dtype)
    finally:
        ck.set_num_threads(before)


@pytest.mark.skipif("cpp" not in BACKENDS, reason="the C++ backend is not built")
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_channels_first_pooling_through_channels_last(nd, only_candidate):
    """The candidate that runs a channels-first pooling call with the C++ channels-last kernel between two
    layout swaps (direct/cpp+nhwc, picked for rows narrower than a vector), forced on random geometry against
    the float64 reference: max with PyTorch's flat indices (dilation, ceil_mode, NaN), average
    (count_include_pad, divisor_override), adaptive average."""
    only_candidate("direct/cpp+nhwc")

    @given(pool_case(nd, "max"), pool_case(nd, "avg"), adaptive_case(nd))
    def check(mcase, acase, adaptive):
        y, idx = MAX[nd](_x(mcase), mcase["kernel"], mcase["stride"], mcase["padding"], mcase["dilation"],
                         mcase["ceil_mode"], return_indices=True)
        ref, ref_idx = naive.max_pool(mcase["x"], mcase["kernel"], mcase["stride"], mcase["pads"],
                                      mcase["dilation"], mcase["ceil_mode"])
        assert_close(y, _ref(mcase, ref), mcase["dtype"])
        np.testing.assert_array_equal(idx, _ref(mcase, ref_idx))
        extra = {} if nd == 1 else {"divisor_override": acase["divisor_override"]}
        y = AVG[nd](_x(acase), acase["kernel"], acase["stride"], acase["padding"], acase["ceil_mode"],
                    acase["count_include_pad"], **extra)
        ref = naive.avg_pool(acase["x"], acase["kernel"], acase["stride"], acase["pads"], acase["ceil_mode"],
                             acase["count_include_pad"], acase["divisor_override"])
        assert_close(y, _ref(acase, ref), acase["dtype"])
        x, out, dtype = adaptive
        ref, _ = naive.adaptive_pool(x, out, "avg")
        assert_close(ADAPTIVE_AVG[nd](x, out), ref, dtype)
    check()


@pytest.mark.skipif("cpp" not in BACKENDS, reason="the C++ backend is not built")
def test_channels_first_small_maps_pick_the_channels_last_kernel():
    """Where channels-first rows are narrower than a vector, the tuner has the converted candidate to pick, and
    the answer matches the reference either way (512 planes of 7x7, max 3x3 stride 1 with indices)."""
    x = np.random.default_rng(3).standard_normal((1, 512, 7, 7)).astype(np.float32)
    report = ck.explain("max_pool2d", x, 3, 1, 1, return_indices=True)
    assert "direct/cpp+nhwc" in report["candidates"]
    y, idx = ck.max_pool2d(x, 3, 1, 1, return_indices=True)
    ref, ref_idx = naive.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), False)
    assert_close(y, ref, np.float32)
    np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.skipif("cpp" not in BACKENDS, reason="the C++ backend is not built")
def test_swap_last_axes_checks_and_swaps():
    from cnnkernels import _cpp_backend
    swap = _cpp_backend.module.swap_last_axes
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64, np.int64):
        for shape in [(1, 512, 196), (2, 3, 5), (1, 17, 33), (3, 1, 9), (2, 35, 4), (1, 0, 3)]:
            a = (rng.standard_normal(shape) * 1000).astype(dtype)
            b = np.full((shape[0], shape[2], shape[1]), 7, dtype)
            swap(a, b, 2)
            np.testing.assert_array_equal(b, a.transpose(0, 2, 1))
    a = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="dst must have shape"):
        swap(a, np.zeros((2, 3, 4), np.float32), 1)
    with pytest.raises(TypeError, match="dtype of src"):
        swap(a, np.zeros((2, 4, 3), np.float64), 1)
    with pytest.raises(TypeError, match="4- or 8-byte"):
        swap(a.astype(np.float16), np.zeros((2, 4, 3), np.float16), 1)
    with pytest.raises(ValueError, match="3-D"):
        swap(a.reshape(6, 4), np.zeros((4, 6), np.float32), 1)
    with pytest.raises(ValueError, match="share memory"):
        buf = np.zeros(24, np.float32)
        swap(buf.reshape(2, 3, 4), buf.reshape(2, 4, 3), 1)
