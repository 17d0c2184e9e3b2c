"""Numba kernels, callable from your own ``@njit`` code.

The core kernels take 5-D NCDHW arrays (a 2-D problem has D = 1) and write into
a preallocated output; ``conv2d`` is a convenience for 4-D NCHW arrays.
"""
import numpy as np
from numba import njit

from .conv import conv_direct, conv_im2col
from .pool import adaptive_avg_pool, adaptive_max_pool, avg_pool, max_pool

__all__ = ["conv_direct", "conv_im2col", "max_pool", "avg_pool", "adaptive_avg_pool",
           "adaptive_max_pool", "conv2d"]


@njit(cache=True)
def conv2d(x, w, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """NCHW convolution with symmetric padding; bias may be an empty array. Returns a new array.

    Preconditions (not checked here, for speed in jitted loops): x (N, C, H, W),
    w (K, C // groups, KH, KW), C and K divisible by groups, positive output size.
    """
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    OH = (H + 2 * padding[0] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W + 2 * padding[1] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    y = np.empty((N, K, 1, OH, OW), dtype=x.dtype)
    conv_direct(np.ascontiguousarray(x).reshape(N, C, 1, H, W),
                np.ascontiguousarray(w).reshape(K, Cg, 1, KH, KW), bias, y,
                (1, stride[0], stride[1]), (0, padding[0], padding[1]), (1, dilation[0], dilation[1]), groups)
    return y.reshape(N, K, OH, OW)

from . import winograd  # noqa: E402  (Winograd kernels: winograd.conv_winograd, winograd.transform_weights)
from . import depthwise, pool_nhwc  # noqa: E402,F401  (depthwise conv; channels-last pooling)
