"""Every malformed call raises ValueError/TypeError naming the argument, the expectation and the value."""
import numpy as np
import pytest

import cnnkernels as ck

X = np.zeros((1, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)
BACKENDS = sorted({b for _, b in ck.available_kernels("conv2d")})

CASES = [
    # (call, exception, fragments that must all appear in the message)
    (lambda: ck.conv2d(X[0, 0], W), ValueError, ["input", "4-D", "2-D", "(8, 8)"]),
    (lambda: ck.conv2d(X[None], W), ValueError, ["input", "5-D"]),
    (lambda: ck.conv2d(X, W[0]), ValueError, ["weight", "4-D", "3-D"]),
    (lambda: ck.conv2d(X, np.zeros((6, 3, 3, 3))), ValueError, ["weight", "expects 3 input channels", "4 channels"]),
    (lambda: ck.conv2d(X, np.zeros((6, 4, 3, 3)), groups=3), ValueError, ["groups", "divisible", "3"]),
    (lambda: ck.conv2d(X, np.zeros((5, 2, 3, 3)), groups=2), ValueError, ["out channels", "divisible", "5"]),
    (lambda: ck.conv2d(X, W, groups=0), ValueError, ["groups", "positive", "0"]),
    (lambda: ck.conv2d(X, W, groups=1.5), TypeError, ["groups", "int", "1.5"]),
    (lambda: ck.conv2d(X, W, stride=0), ValueError, ["stride", "positive", "0"]),
    (lambda: ck.conv2d(X, W, stride=(1, -1)), ValueError, ["stride", "positive", "-1"]),
    (lambda: ck.conv2d(X, W, stride=(1, 1, 1)), ValueError, ["stride", "2 ints", "(1, 1, 1)"]),
    (lambda: ck.conv2d(X, W, stride="2"), TypeError, ["stride", "'2'"]),
    (lambda: ck.conv2d(X, W, dilation=0), ValueError, ["dilation", "positive", "0"]),
    (lambda: ck.conv2d(X, W, padding=-1), ValueError, ["padding", ">= 0", "-1"]),
    (lambda: ck.conv2d(X, W, padding=((0, -1), (0, 0))), ValueError, ["padding", ">= 0", "-1"]),
    (lambda: ck.conv2d(X, W, padding=((0, 1, 2), (0, 0))), TypeError, ["padding", "pairs", "(0, 1, 2)"]),
    (lambda: ck.conv2d(X, W, padding="full"), ValueError, ["padding", "'same' or 'valid'", "'full'"]),
    (lambda: ck.conv2d(X, W, padding=1.0), TypeError, ["padding", "1.0"]),
    (lambda: ck.conv2d(X, W, stride=2, padding="same"), ValueError, ["same", "stride", "(2, 2)"]),
    (lambda: ck.conv2d(X, np.zeros((6, 4, 9, 9))), ValueError, ["output size", "(0, 0)", "positive"]),
    (lambda: ck.conv2d(X, np.zeros((6, 4, 0, 3))), ValueError, ["kernel size", "positive", "(6, 4, 0, 3)"]),
    (lambda: ck.conv2d(X, W, bias=np.zeros(5)), ValueError, ["bias", "(6,)", "(5,)"]),
    (lambda: ck.conv2d(X, W, bias=np.zeros((6, 1))), ValueError, ["bias", "(6,)", "(6, 1)"]),
    (lambda: ck.conv2d(X.astype(np.complex64), W), TypeError, ["input", "complex"]),
    (lambda: ck.conv2d(X, W.astype(object)), TypeError, ["weight", "object"]),
    (lambda: ck.conv2d([[["a"]]], W), TypeError, ["input", "string"]),
    (lambda: ck.conv2d(None, W), TypeError, ["input", "None"]),
    (lambda: ck.conv2d(X, W, algorithm="fft"), ValueError, ["algorithm", "'fft'", "direct"]),
    (lambda: ck.conv2d(X, W, algorithm=3), TypeError, ["algorithm", "3"]),
    (lambda: ck.conv2d(X, W, backend="cuda"), ValueError, ["backend", "'cuda'", "numba"]),
    (lambda: ck.max_pool2d(X, 2, algorithm="im2col"), ValueError, ["algorithm", "'im2col'", "direct"]),
    (lambda: ck.conv2d(X, W, out=np.zeros((1, 6, 6, 5), np.float32)), ValueError, ["out", "(1, 6, 6, 6)", "(1, 6, 6, 5)"]),
    (lambda: ck.conv2d(X, W, out=np.zeros((1, 6, 6, 6), np.float64)), TypeError, ["out", "float32", "float64"]),
    (lambda: ck.conv2d(X, W, out=[0]), TypeError, ["out", "ndarray", "list"]),
    (lambda: ck.conv_transpose2d(X, np.zeros((3, 2, 3, 3))), ValueError, ["weight", "expects 3 input channels", "4 channels"]),
    (lambda: ck.conv_transpose2d(X, np.zeros((4, 2, 3, 3)), stride=2, output_padding=2), ValueError,
     ["output_padding", "smaller than either stride or dilation", "(2, 2)"]),
    (lambda: ck.conv_transpose2d(X, np.zeros((4, 2, 3, 3)), padding=9), ValueError, ["output size", "positive"]),
    (lambda: ck.conv_transpose2d(X, np.zeros((4, 2, 3, 3)), padding="same"), TypeError, ["padding", "'same'"]),
    (lambda: ck.conv_transpose2d(X, np.zeros((4, 2, 3, 3)), stride=10**9), ValueError, ["GiB", "memory"]),
    (lambda: ck.conv2d(X, W, padding=10**12), ValueError, ["padding", "at most", str(10**12)]),
    (lambda: ck.max_pool2d(X, 0), ValueError, ["kernel_size", "positive", "0"]),
    (lambda: ck.max_pool2d(X, 2, stride=0), ValueError, ["stride", "positive", "0"]),
    (lambda: ck.max_pool2d(X, 2, dilation=0), ValueError, ["dilation", "positive", "0"]),
    (lambda: ck.max_pool2d(X, 3, padding=2), ValueError, ["padding", "half the kernel size", "((2, 2), (2, 2))"]),
    (lambda: ck.max_pool2d(X, 3, padding=((0, 2), (0, 0))), ValueError, ["padding", "half the kernel size"]),
    (lambda: ck.max_pool2d(X, 3, padding=-1), ValueError, ["padding", ">= 0", "-1"]),
    (lambda: ck.max_pool2d(X, 9), ValueError, ["output size", "positive", "(8, 8)"]),
    (lambda: ck.max_pool2d(X, 2, ceil_mode="yes"), TypeError, ["ceil_mode", "bool", "'yes'"]),
    (lambda: ck.max_pool2d(X, 2, return_indices=None), TypeError, ["return_indices", "bool", "None"]),
    (lambda: ck.max_pool2d(X, 10**10), ValueError, ["kernel_size", "at most"]),
    (lambda: ck.max_pool2d(X.astype(np.complex128), 2), TypeError, ["input", "complex"]),
    (lambda: ck.max_pool2d(X[0, 0, 0], 2), ValueError, ["input", "4-D", "1-D"]),
    (lambda: ck.avg_pool2d(X, 2, divisor_override=0), ValueError, ["divisor_override", "non-zero", "0"]),
    (lambda: ck.avg_pool2d(X, 2, divisor_override=1.5), TypeError, ["divisor_override", "1.5"]),
    (lambda: ck.avg_pool2d(X, 2, count_include_pad=1.0), TypeError, ["count_include_pad", "bool"]),
    (lambda: ck.avg_pool2d(X, 3, padding=2), ValueError, ["padding", "half the kernel size"]),
    (lambda: ck.adaptive_avg_pool2d(X, -1), ValueError, ["output_size", ">= 0", "-1"]),
    (lambda: ck.adaptive_avg_pool2d(X, (2, 2, 2)), ValueError, ["output_size", "2 ints", "(2, 2, 2)"]),
    (lambda: ck.adaptive_max_pool2d(X, "big"), TypeError, ["output_size", "'big'"]),
    (lambda: ck.set_num_threads(0), ValueError, ["n", "positive", "0"]),
    (lambda: ck.set_num_threads(-3), ValueError, ["n", "positive", "-3"]),
    (lambda: ck.set_num_threads(2.0), TypeError, ["n", "int", "2.0"]),
    (lambda: ck.available_kernels("conv4d"), ValueError, ["op", "'conv4d'", "conv2d"]),
]


@pytest.mark.parametrize("call,exc,fragments", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_input_raises_clear_error(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"


def test_unavailable_cpp_backend_is_explained(monkeypatch):
    from cnnkernels import _cpp_backend
    monkeypatch.setattr(_cpp_backend, "module", None)
    monkeypatch.setattr(_cpp_backend, "missing_reason", "not built in this test")
    with pytest.raises(ck.BackendUnavailableError, match="backend='cpp' is unavailable: not built in this test"):
        ck.conv2d(X, W, backend="cpp")
    assert all(b == "numba" for _, b in ck.available_kernels("conv2d"))
    assert ck.conv2d(X, W).shape == (1, 6, 6, 6)  # auto falls back to Numba


@pytest.mark.parametrize("backend", BACKENDS)
def test_fuzzed_geometry_never_crashes(backend):
    """Random (often invalid) arguments give a result or a ValueError/TypeError, never a crash or another error."""
    rng = np.random.default_rng(7)
    choices = [-1, 0, 1, 2, 3, (1, 2), ((1, 0), (0, 2)), "same", "valid", 1.5, None]
    for _ in range(300):
        x = np.zeros(tuple(rng.integers(0, 5, size=rng.integers(2, 6))), np.float32)
        w = np.zeros(tuple(rng.integers(0, 4, size=rng.integers(2, 6))), np.float32)
        kwargs = {k: choices[rng.integers(len(choices))] for k in ("stride", "padding", "dilation", "groups")
                  if rng.random() < 0.5}
        try:
            ck.conv2d(x, w, backend=backend, **kwargs)
        except (ValueError, TypeError):
            pass
        try:
            ck.max_pool2d(x, choices[rng.integers(len(choices))], backend=backend,
                          **{k: v for k, v in kwargs.items() if k != "groups"})
        except (ValueError, TypeError):
            pass
