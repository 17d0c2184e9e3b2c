"""The same random cases against torch.nn.functional, where torch is installed (CI installs it)."""
import numpy as np
import pytest
from hypothesis import assume, given

import cnnkernels as ck
from cnnkernels import _registry

from .cases import assert_close, conv_case, pool_case

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(a):
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


def _unbatch(case, a):
    return a[0] if case["unbatched"] else a


def _close_to_torch(got, ref, dtype, algorithm="direct", backend="numba"):
    rtol = _registry.ACCURACY_BOUND[_registry.find("conv", algorithm, backend).accuracy]
    assert_close(got, ref.astype(np.float64), dtype, rtol)


def _supported(run):
    """run() or None when the forced algorithm does not support the geometry (Winograd on non-3x3)."""
    try:
        return run()
    except ValueError as exc:
        if "does not support this geometry" in str(exc):
            return None
        raise


@given(conv_case(2))
def test_conv2d_matches_torch(case):
    x = _t(case["x"])
    padding = case["padding"]
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        # torch has no per-side padding: pad the input explicitly
        flat = [p for pair in reversed(padding) for p in pair]
        x = F.pad(x, flat)
        padding = 0
    ref = F.conv2d(x, _t(case["w"]), _t(case["b"]), case["stride"], padding, case["dilation"], case["groups"])
    for algorithm, backend in ck.available_kernels("conv2d"):
        got = _supported(lambda: ck.conv2d(_unbatch(case, case["x"]), case["w"], case["b"], case["stride"],
                                           case["padding"], case["dilation"], case["groups"],
                                           algorithm=algorithm, backend=backend))
        if got is not None:
            _close_to_torch(got, _unbatch(case, ref.numpy()), case["dtype"], algorithm, backend)


@pytest.mark.parametrize("nd", [1, 3])
def test_conv_nd_matches_torch(nd):
    @given(conv_case(nd))
    def check(case):
        assume(not (isinstance(case["padding"], tuple) and isinstance(case["padding"][0], tuple)))
        fn = {1: F.conv1d, 3: F.conv3d}[nd]
        ref = fn(_t(case["x"]), _t(case["w"]), _t(case["b"]), case["stride"], case["padding"], case["dilation"],
                 case["groups"]).numpy()
        mine = {1: ck.conv1d, 3: ck.conv3d}[nd]
        for algorithm, backend in ck.available_kernels(f"conv{nd}d"):
            got = _supported(lambda: mine(case["x"], case["w"], case["b"], case["stride"], case["padding"],
                                          case["dilation"], case["groups"], algorithm=algorithm, backend=backend))
            if got is not None:
                _close_to_torch(got, ref, case["dtype"], algorithm, backend)
    check()


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_matches_torch(nd):
    @given(conv_case(nd, transposed=True))
    def check(case):
        assume(all(a == b for a, b in case["pads"]))
        fn = getattr(F, f"conv_transpose{nd}d")
        padding = tuple(a for a, _ in case["pads"])
        ref = fn(_t(case["x"]), _t(case["w"]), _t(case["b"]), case["stride"], padding, case["output_padding"],
                 case["groups"], case["dilation"]).numpy()
        mine = getattr(ck, f"conv_transpose{nd}d")
        for algorithm, backend in ck.available_kernels(f"conv_transpose{nd}d"):
            got = _supported(lambda: mine(case["x"], case["w"], case["b"], case["stride"], padding,
                                          case["output_padding"], case["groups"], case["dilation"],
                                          algorithm=algorithm, backend=backend))
            if got is not None:
                _close_to_torch(got, ref, case["dtype"], algorithm, backend)
    check()


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_matches_torch(nd):
    @given(pool_case(nd, "max"))
    def check(case):
        assume(all(a == b for a, b in case["pads"]))
        padding = tuple(a for a, _ in case["pads"])
        fn = getattr(F, f"max_pool{nd}d")
        ref, ref_idx = fn(_t(case["x"]), case["kernel"], case["stride"], padding, case["dilation"],
                          case["ceil_mode"], return_indices=True)
        for _, backend in ck.available_kernels(f"max_pool{nd}d"):
            y, idx = getattr(ck, f"max_pool{nd}d")(case["x"], case["kernel"], case["stride"], padding,
                                                   case["dilation"], case["ceil_mode"], True, backend=backend)
            assert_close(y, ref.numpy(), case["dtype"])
            np.testing.assert_array_equal(idx, ref_idx.numpy())
    check()


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_pool_matches_torch(nd):
    @given(pool_case(nd, "avg"))
    def check(case):
        assume(all(a == b for a, b in case["pads"]))
        padding = tuple(a for a, _ in case["pads"])
        extra = {} if nd == 1 else {"divisor_override": case["divisor_override"]}
        try:
            ref = getattr(F, f"avg_pool{nd}d")(_t(case["x"]), case["kernel"], case["stride"], padding,
                                               case["ceil_mode"], case["count_include_pad"], **extra)
        except RuntimeError:  # avg_pool3d also rejects inputs smaller than the kernel; we accept them
            assume(False)
        for _, backend in ck.available_kernels(f"avg_pool{nd}d"):
            y = getattr(ck, f"avg_pool{nd}d")(case["x"], case["kernel"], case["stride"], padding,
                                              case["ceil_mode"], case["count_include_pad"], backend=backend, **extra)
            assert_close(y, ref.numpy(), case["dtype"])
    check()


@pytest.mark.parametrize("out", [(1, 1), (3, 5), (7, 2), (None, 4)])
def test_adaptive_pools_match_torch(out):
    x = np.random.default_rng(3).standard_normal((2, 3, 11, 9)).astype(np.float32)
    for _, backend in ck.available_kernels("adaptive_avg_pool2d"):
        assert_close(ck.adaptive_avg_pool2d(x, out, backend=backend), F.adaptive_avg_pool2d(_t(x), out).numpy(),
                     np.float32)
        y, idx = ck.adaptive_max_pool2d(x, out, return_indices=True, backend=backend)
        ref, ref_idx = F.adaptive_max_pool2d(_t(x), out, return_indices=True)
        assert_close(y, ref.numpy(), np.float32)
        np.testing.assert_array_equal(idx, ref_idx.numpy())
