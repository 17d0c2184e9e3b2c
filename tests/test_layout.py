"""Channels-last layouts (NWC, NHWC, NDHWC): every kernel, native or converting, against the reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkernels as ck
from cnnkernels import _registry

from . import naive
from .cases import assert_close, conv_case, conv_terms, pool_case

LAYOUT = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def _last(a):
    """(N, C, *spatial) -> (N, *spatial, C), C-contiguous."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _supported(run):
    try:
        return run()
    except ValueError as exc:
        if "does not support this geometry" in str(exc):
            return None
        raise


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_channels_last(nd):
    fn = getattr(ck, f"conv{nd}d")
    kernels = ck.available_kernels(f"conv{nd}d", layout=LAYOUT[nd])

    @given(conv_case(nd))
    def check(case):
        ref = naive.conv(case["x"], case["w"], case["b"], case["stride"], case["pads"], case["dilation"],
                         case["groups"])
        x = _last(case["x"])
        for algorithm, backend in kernels:
            got = _supported(lambda: fn(x[0] if case["unbatched"] else x, case["w"], case["b"], case["stride"],
                                        case["padding"], case["dilation"], case["groups"], algorithm=algorithm,
                                        backend=backend, layout=LAYOUT[nd]))
            if got is not None:
                want = _last(ref)
                assert_close(got, want[0] if case["unbatched"] else want, case["dtype"],
                             _registry.ACCURACY_BOUND[_registry.find("conv", algorithm, backend).accuracy],
                             conv_terms(case, algorithm))
    check()


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_depthwise_and_pointwise_channels_last(nd):
    fn = getattr(ck, f"conv{nd}d")

    @given(conv_case(nd, depthwise=True))
    def check(case):
        ref = _last(naive.conv(case["x"], case["w"], case["b"], case["stride"], case["pads"], case["dilation"],
                               case["groups"]))
        got = fn(_last(case["x"]), case["w"], case["b"], case["stride"], case["padding"], case["dilation"],
                 case["groups"], algorithm="depthwise", backend="numba", layout=LAYOUT[nd], activation="relu")
        assert_close(got, np.maximum(ref, 0), case["dtype"])
    check()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5) + (4,) * nd)
    w = rng.standard_normal((7, 5) + (1,) * nd)
    got = fn(_last(x), w, np.arange(7.0), algorithm="pointwise", backend="numba", layout=LAYOUT[nd])
    assert_close(got, _last(naive.conv(x, w, np.arange(7.0), (1,) * nd, ((0, 0),) * nd, (1,) * nd, 1)), np.float64)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_pooling_channels_last(nd):
    kinds = {"max": getattr(ck, f"max_pool{nd}d"), "avg": getattr(ck, f"avg_pool{nd}d")}

    @given(pool_case(nd, "max"))
    def check_max(case):
        ref, ref_idx = naive.max_pool(case["x"], case["kernel"], case["stride"], case["pads"], case["dilation"],
                                      case["ceil_mode"])
        for _, backend in ck.available_kernels(f"max_pool{nd}d", layout=LAYOUT[nd]):
            y, idx = kinds["max"](_last(case["x"]), case["kernel"], case["stride"], case["padding"],
                                  case["dilation"], case["ceil_mode"], True, backend=backend, layout=LAYOUT[nd])
            assert_close(y, _last(ref), case["dtype"])
            np.testing.assert_array_equal(idx, _last(ref_idx))

    @given(pool_case(nd, "avg"))
    def check_avg(case):
        extra = {} if nd == 1 else {"divisor_override": case["divisor_override"]}
        ref = naive.avg_pool(case["x"], case["kernel"], case["stride"], case["pads"], case["ceil_mode"],
                             case["count_include_pad"], case["divisor_override"])
        for _, backend in ck.available_kernels(f"avg_pool{nd}d", layout=LAYOUT[nd]):
            y = kinds["avg"](_last(case["x"]), case["kernel"], case["stride"], case["padding"], case["ceil_mode"],
                             case["count_include_pad"], backend=backend, layout=LAYOUT[nd], **extra)
            assert_close(y, _last(ref), case["dtype"])
    check_max()
    check_avg()


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_and_transpose_channels_last(nd):
    rng = np.random.default_rng(nd)
    x = rng.standard_normal((2, 3) + (7,) * nd)
    out = (3,) * nd
    for kind in ("avg", "max"):
        fn = getattr(ck, f"adaptive_{kind}_pool{nd}d")
        ref, ref_idx = naive.adaptive_pool(x, out, kind)
        for _, backend in ck.available_kernels(f"adaptive_{kind}_pool{nd}d", layout=LAYOUT[nd]):
            got = fn(_last(x), out, backend=backend, layout=LAYOUT[nd])
            assert_close(got, _last(ref), np.float64)
    w = rng.standard_normal((3, 2) + (3,) * nd)
    got = getattr(ck, f"conv_transpose{nd}d")(_last(x)[0], w, None, 2, 1, 1, layout=LAYOUT[nd])
    ref = naive.conv_transpose(x, w, None, (2,) * nd, ((1, 1),) * nd, (1,) * nd, 1, (1,) * nd)
    assert_close(got, _last(ref)[0], np.float64)


def test_weight_layout_hwio():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 4, 8, 8))
    w = rng.standard_normal((6, 4, 3, 3))
    hwio = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert_close(ck.conv2d(_last(x), hwio, padding=1, layout="NHWC", weight_layout="HWIO"), _last(ref), np.float64)
    assert_close(ck.conv2d(x, hwio, padding=1, weight_layout="HWIO"), ref, np.float64)


def test_matches_torch_channels_last():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 16, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    tx = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    ref = torch.nn.functional.conv2d(tx, torch.from_numpy(w), padding=1, groups=16)
    got = ck.conv2d(_last(x), w, padding=1, groups=16, layout="NHWC")
    assert_close(got, ref.permute(0, 2, 3, 1).numpy(), np.float32)
    ref = torch.nn.functional.max_pool2d(tx, 3, 2, 1)
    assert_close(ck.max_pool2d(_last(x), 3, 2, 1, layout="NHWC"), ref.permute(0, 2, 3, 1).numpy(), np.float32)


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: ck.conv2d(np.zeros((1, 5, 5, 2)), np.zeros((2, 2, 3, 3)), layout="NCW"), ValueError, "2-D operation"),
    (lambda: ck.conv2d(np.zeros((1, 5, 5, 2)), np.zeros((2, 2, 3, 3)), layout="HWNC"), ValueError, "layout must be"),
    (lambda: ck.conv2d(np.zeros((1, 5, 5, 3)), np.zeros((2, 2, 3, 3)), layout="NHWC"), ValueError, "3 channels"),
    (lambda: ck.max_pool2d(np.zeros((5, 5)), 2, layout="NHWC"), ValueError, "(NHWC)"),
    (lambda: ck.conv2d(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), weight_layout="IOHW"), ValueError,
     "weight_layout"),
])
def test_layout_errors(call, exc, fragment):
    with pytest.raises(exc, match=None) as info:
        call()
    assert fragment in str(info.value)


def test_channels_last_repeats_use_fresh_data():
    """Memoised channels-last calls (batched and unbatched, depthwise and dense) see each call's data."""
    rng = np.random.default_rng(21)
    for groups, unbatched in ((1, False), (4, False), (4, True)):
        w = rng.standard_normal((8, 4 // groups, 3, 3))
        for _ in range(3):   # the first call validates; the repeats take the memoised path
            x = rng.standard_normal((1, 4, 6, 5))
            xin = x.transpose(0, 2, 3, 1)[0] if unbatched else x.transpose(0, 2, 3, 1)
            got = ck.conv2d(np.ascontiguousarray(xin), w, padding=1, groups=groups, layout="NHWC")
            ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), groups).transpose(0, 2, 3, 1)
            assert_close(got, ref[0] if unbatched else ref, np.float64)


def test_channels_last_pooling_repeats_use_fresh_data():
    rng = np.random.default_rng(22)
    for _ in range(3):
        x = rng.standard_normal((2, 5, 6, 7))
        got = ck.max_pool2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 2, 2, layout="NHWC")
        ref = naive.max_pool(x, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), False)[0].transpose(0, 2, 3, 1)
        assert_close(got, ref, np.float64)


@pytest.mark.parametrize("backend", ["numba", "cpp"])
@settings(max_examples=60, deadline=None)
@given(nd=st.integers(1, 3), n=st.integers(1, 2), size=st.integers(1, 9), c=st.integers(1, 40),
       k=st.integers(1, 70), bias=st.booleans(), act=st.sampled_from([None, "relu", ("clamp", -0.5, 0.7)]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_pointwise_channels_last_against_reference(backend, nd, n, size, c, k, bias, act, dtype, seed):
    """The native channels-last 1x1 kernels: output channel counts below, at and past the GEMM's narrow
    (<= 16 columns) and tile (32 columns) paths, bias per output channel, fused activations."""
    if backend == "cpp" and ck.info()["cpp"] is None:
        pytest.skip("C++ backend not built")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + (size,) * nd).astype(dtype)
    w = rng.standard_normal((k, c) + (1,) * nd).astype(dtype)
    b = rng.standard_normal(k).astype(dtype) if bias else None
    ref = naive.conv(x, w, b, (1,) * nd, ((0, 0),) * nd, (1,) * nd, 1)
    lo, hi = (-np.inf, np.inf) if act is None else (0, np.inf) if act == "relu" else act[1:]
    got = getattr(ck, f"conv{nd}d")(_last(x), w, b, algorithm="pointwise", backend=backend, layout=LAYOUT[nd],
                                    activation=act)
    # rounding error follows the sum of |terms|, not a result that cancels (23 channels to 0.0045 happened)
    terms = naive.conv(np.abs(x), np.abs(w), None if b is None else np.abs(b), (1,) * nd, ((0, 0),) * nd, (1,) * nd,
                       1).max()
    assert_close(got, np.clip(_last(ref), lo, hi), dtype, terms=terms)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_cpp_deep_and_empty_reductions(threads, dtype):
    """Channel counts past the GEMM's depth block (the column bias must be added once, not per block), a
    1-byte workspace (the smallest blocks), and no input channels (bias and clamp only)."""
    if ck.info()["cpp"] is None:
        pytest.skip("C++ backend not built")
    from cnnkernels import _cpp
    rng = np.random.default_rng(7)
    for P, C, K in ((37, 600, 40), (50, 300, 9), (5, 0, 33)):
        x = rng.standard_normal((1, 1, 1, P, C)).astype(dtype)
        w = rng.standard_normal((K, C)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype)
        y = np.empty((1, 1, 1, P, K), dtype)
        _cpp.pointwise_ndhwc(x, w, b, y, threads, 1, -0.5, 2.0)
        ref = np.clip(x.reshape(P, C).astype(np.float64) @ w.T.astype(np.float64) + b, -0.5, 2.0)
        assert_close(y.reshape(P, K), ref, dtype)


def test_pointwise_binding_checks_its_buffers():
    if ck.info()["cpp"] is None:
        pytest.skip("C++ backend not built")
    from cnnkernels import _cpp
    x = np.ones((1, 2, 3, 4, 5), np.float32)
    w = np.ones((6, 5), np.float32)   # (K, C)
    y = np.empty((1, 2, 3, 4, 6), np.float32)
    with pytest.raises(ValueError, match=r"w must have shape \(K, C\) with C = 5"):
        _cpp.pointwise_ndhwc(x, w[:, :4].copy(), None, y, 1, 1 << 20)
    with pytest.raises(ValueError, match="y must have shape"):
        _cpp.pointwise_ndhwc(x, w, None, y[:, :1], 1, 1 << 20)
    with pytest.raises(ValueError, match="y must have K = 6 channels"):
        _cpp.pointwise_ndhwc(x, w, None, y[..., :5].copy(), 1, 1 << 20)
    with pytest.raises(ValueError, match=r"bias must have shape \(K,\) = \(6,\)"):
        _cpp.pointwise_ndhwc(x, w, np.ones(5, np.float32), y, 1, 1 << 20)
    with pytest.raises(TypeError, match="same dtype"):
        _cpp.pointwise_ndhwc(x, w.astype(np.float64), None, y, 1, 1 << 20)
    with pytest.raises(ValueError, match="act_min <= act_max"):
        _cpp.pointwise_ndhwc(x, w, None, y, 1, 1 << 20, 1.0, 0.0)
    with pytest.raises(ValueError, match="workspace_bytes"):
        _cpp.pointwise_ndhwc(x, w, None, y, 1, 0)
    buf = np.ones(x.size + y.size, np.float32)
    with pytest.raises(ValueError, match="must not share memory"):
        _cpp.pointwise_ndhwc(buf[: x.size].reshape(x.shape), w, None, buf[x.size - 1: -1].reshape(y.shape), 1,
                             1 << 20)
    _cpp.pointwise_ndhwc(x, w, np.zeros(6, np.float32), y, 1, 1 << 20)   # the valid call runs
    assert np.all(y == 5)


@pytest.mark.parametrize("cpp", [True, False])
def test_layout_swaps_around_kernels_of_the_other_layout(cpp, monkeypatch):
    """The conversion a call of one layout makes to run a kernel of the other: C++ swap where built, NumPy
    otherwise, into a new array or an output buffer, for float32/float64 values and int64 indices."""
    from cnnkernels import _cpp_backend
    if cpp and _cpp_backend.module is None:
        pytest.skip("the C++ backend is not built")
    if not cpp:
        monkeypatch.setattr(_cpp_backend, "module", None)
    rng = np.random.default_rng(9)
    for dtype in (np.float32, np.float64, np.int64):
        first = (rng.standard_normal((2, 5, 3, 4, 7)) * 100).astype(dtype)
        last = _registry._swap_channels(first, True)
        np.testing.assert_array_equal(last, np.moveaxis(first, 1, 4))
        out = np.empty_like(first)
        assert _registry._swap_channels(last, False, out) is out
        np.testing.assert_array_equal(out, first)


@pytest.mark.parametrize("cpp", [True, False])
def test_channels_last_output_placement(cpp, monkeypatch):
    """empty_apart: an output whose pixel stride is a multiple of 1 KiB starts half that stride (at most 2 KiB)
    past its input modulo 4 KiB, one of another stride at its input's offset within a 64-byte line, with and
    without the C++ backend's address helper; inputs not aligned to their elements get plain np.empty."""
    from cnnkernels import _arrays, _cpp_backend
    if cpp and _cpp_backend.module is None:
        pytest.skip("the C++ backend is not built")
    if not cpp:
        monkeypatch.setattr(_cpp_backend, "module", None)
    for channels, dtype in [(256, np.float32), (512, np.float32), (1024, np.float32), (256, np.float64)]:
        x = np.empty((1, 1, 3, 5, channels), dtype)
        y = _arrays.empty_apart(x.shape, dtype, x)
        assert y.shape == x.shape and y.dtype == dtype and y.flags.c_contiguous and y.flags.writeable
        pixel = channels * np.dtype(dtype).itemsize
        assert (y.ctypes.data - x.ctypes.data) % 4096 == min(pixel, 4096) // 2
        y[...] = 1.0   # the whole array is inside its buffer
    for channels, dtype in [(100, np.float32), (32, np.float32), (3, np.float64), (1, np.float32)]:
        buf = np.empty(4 * 3 * 5 * channels * np.dtype(dtype).itemsize + 64, np.uint8)
        for offset in range(0, 64, np.dtype(dtype).itemsize):   # every element-aligned offset in a line
            start = (offset - buf.ctypes.data) % 64
            x = np.ndarray((1, 1, 3, 5, channels), dtype, buf, start)
            y = _arrays.empty_apart(x.shape, dtype, x)
            assert y.shape == x.shape and y.dtype == dtype and y.flags.c_contiguous and y.flags.writeable
            assert y.ctypes.data % 64 == offset
            y[...] = 1.0
    odd = np.empty(4 * 256 * 4 + 4, np.uint8)[1:4097].view(np.float32).reshape(1, 1, 1, 4, 256)
    assert _arrays.empty_apart(odd.shape, np.float32, odd).shape == odd.shape
