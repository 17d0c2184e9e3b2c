"""Every convolution kernel against the float64 reference, across random geometry."""
import numpy as np
import pytest
from hypothesis import given

import cnnkernels as ck

from . import naive
from .cases import assert_close, conv_case

KERNELS = ck.available_kernels("conv2d") + [("auto", "auto")]   # auto: whatever the tuner picks
CONV = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}
CONV_T = {1: ck.conv_transpose1d, 2: ck.conv_transpose2d, 3: ck.conv_transpose3d}


def _unbatch(case, x):
    return x[0] if case["unbatched"] else x


def _check(case, got, ref):
    if case["unbatched"]:
        ref = ref[0]
    assert_close(got, ref, case["dtype"])


@pytest.mark.parametrize("algorithm,backend", KERNELS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_matches_reference(nd, algorithm, backend):
    @given(conv_case(nd))
    def check(case):
        got = CONV[nd](_unbatch(case, case["x"]), case["w"], case["b"], case["stride"], case["padding"],
                       case["dilation"], case["groups"], algorithm=algorithm, backend=backend)
        ref = naive.conv(case["x"], case["w"], case["b"], case["stride"], case["pads"], case["dilation"],
                         case["groups"])
        _check(case, got, ref)
    check()


@pytest.mark.parametrize("algorithm,backend", KERNELS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_matches_reference(nd, algorithm, backend):
    @given(conv_case(nd, transposed=True))
    def check(case):
        got = CONV_T[nd](_unbatch(case, case["x"]), case["w"], case["b"], case["stride"], case["padding"],
                         case["output_padding"], case["groups"], case["dilation"],
                         algorithm=algorithm, backend=backend)
        ref = naive.conv_transpose(case["x"], case["w"], case["b"], case["stride"], case["pads"],
                                   case["output_padding"], case["groups"], case["dilation"])
        _check(case, got, ref)
    check()


@pytest.mark.parametrize("algorithm,backend", KERNELS)
def test_conv_large_channels_and_slicing(algorithm, backend, monkeypatch):
    """Many terms per output, and an im2col workspace so small it must work in many slices."""
    from cnnkernels import _registry
    monkeypatch.setattr(_registry, "WORKSPACE_BYTES", 4096)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 13, 11)).astype(np.float32)
    w = rng.standard_normal((40, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    got = ck.conv2d(x, w, b, stride=(1, 2), padding=((1, 0), (2, 1)), dilation=(2, 1), groups=2,
                    algorithm=algorithm, backend=backend)
    ref = naive.conv(x, w, b, (1, 2), ((1, 0), (2, 1)), (2, 1), 2)
    assert_close(got, ref, np.float32)


@pytest.mark.parametrize("algorithm,backend", KERNELS)
def test_pointwise_conv(algorithm, backend):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 12, 7, 5))
    w = rng.standard_normal((8, 12, 1, 1))
    got = ck.conv2d(x, w, algorithm=algorithm, backend=backend)
    assert_close(got, naive.conv(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1), np.float64)
