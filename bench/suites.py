"""Layer suites from ../shared/TARGETS.md: convolution and pooling cases, float32.

Each case knows how to make its inputs, call cnnkernels (any algorithm/backend) and PyTorch,
and its work (FLOPs) or traffic (bytes) for the GFLOP/s and GB/s columns.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ConvLayer:
    name: str
    C: int
    K: int
    H: int
    W: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    batch: int = 1
    layout: str = "NCHW"
    op = "conv2d"

    @property
    def out_hw(self):
        return tuple((s + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) // self.stride + 1
                     for s in (self.H, self.W))

    @property
    def flops(self):
        oh, ow = self.out_hw
        return 2 * self.batch * self.K * (self.C // self.groups) * self.kernel ** 2 * oh * ow

    @property
    def nbytes(self):
        return 4 * self.batch * self.C * self.H * self.W

    @property
    def category(self):
        if self.groups == self.C and self.groups > 1:
            return "depthwise"
        if self.flops < 5e6:
            return "small"
        if self.kernel == 3 and self.stride == 1 and self.dilation == 1:
            return "3x3_s1"
        return "dense_other"

    def describe(self):
        extra = "".join([f" s{self.stride}" if self.stride > 1 else "", f" p{self.padding}" if self.padding else "",
                         f" d{self.dilation}" if self.dilation > 1 else "", f" g{self.groups}" if self.groups > 1 else "",
                         f" b{self.batch}" if self.batch > 1 else "", " NHWC" if self.layout == "NHWC" else ""])
        return f"{self.C}->{self.K} {self.H}x{self.W} {self.kernel}x{self.kernel}{extra}"

    def inputs(self):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.batch, self.C, self.H, self.W)).astype(np.float32)
        w = rng.standard_normal((self.K, self.C // self.groups, self.kernel, self.kernel)).astype(np.float32)
        return x, w

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def ck_call(self, x, w):
        """(op name, positional args, keyword args) of the cnnkernels call; x already in self.layout."""
        return "conv2d", (x, w), dict(self.kwargs(), layout=self.layout)

    def run_ck(self, ck, x, w, **choice):
        op, args, kwargs = self.ck_call(x, w)
        return getattr(ck, op)(*args, **kwargs, **choice)

    def run_torch(self, F, tx, tw):
        return F.conv2d(tx, tw, None, **self.kwargs())


@dataclass(frozen=True)
class PoolLayer:
    name: str
    kind: str            # "max", "avg", "global"
    C: int
    H: int
    W: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    count_include_pad: bool = True
    batch: int = 1
    layout: str = "NCHW"
    category: str = field(default="pooling")
    op = "pool"
    flops = 0

    @property
    def nbytes(self):
        return 4 * self.batch * self.C * self.H * self.W

    def describe(self):
        what = "global avg" if self.kind == "global" else f"{self.kind} {self.kernel}x{self.kernel} s{self.stride}" + (
            f" p{self.padding}" if self.padding else "") + ("" if self.count_include_pad else " excl-pad")
        return f"{what} {self.batch}x{self.C}x{self.H}x{self.W}" + (" NHWC" if self.layout == "NHWC" else "")

    def inputs(self):
        rng = np.random.default_rng(0)
        return rng.standard_normal((self.batch, self.C, self.H, self.W)).astype(np.float32), None

    def ck_call(self, x, w):
        if self.kind == "global":
            return "adaptive_avg_pool2d", (x, 1), dict(layout=self.layout)
        window = dict(kernel_size=self.kernel, stride=self.stride, padding=self.padding, layout=self.layout)
        if self.kind == "max":
            return "max_pool2d", (x,), window
        return "avg_pool2d", (x,), dict(window, count_include_pad=self.count_include_pad)

    def run_ck(self, ck, x, w, **choice):
        op, args, kwargs = self.ck_call(x, w)
        return getattr(ck, op)(*args, **kwargs, **choice)

    def run_torch(self, F, tx, tw):
        if self.kind == "global":
            return F.adaptive_avg_pool2d(tx, 1)
        if self.kind == "max":
            return F.max_pool2d(tx, self.kernel, self.stride, self.padding)
        return F.avg_pool2d(tx, self.kernel, self.stride, self.padding, count_include_pad=self.count_include_pad)



DENSE = [
    ConvLayer("lenet_c1", 1, 6, 32, 32, 5),
    ConvLayer("alexnet_c1", 3, 64, 224, 224, 11, stride=4, padding=2),
    ConvLayer("resnet_c1", 3, 64, 224, 224, 7, stride=2, padding=3),
    ConvLayer("vgg_3x3_112", 128, 128, 112, 112, 3, padding=1),
    ConvLayer("resnet_3x3_56", 64, 64, 56, 56, 3, padding=1),
    ConvLayer("resnet_3x3_28", 128, 128, 28, 28, 3, padding=1),
    ConvLayer("resnet_3x3_14", 256, 256, 14, 14, 3, padding=1),
    ConvLayer("resnet_3x3_7", 512, 512, 7, 7, 3, padding=1),
    ConvLayer("resnet_1x1_56", 64, 256, 56, 56, 1),
    ConvLayer("resnet_1x1_14", 1024, 256, 14, 14, 1),
    ConvLayer("resnet_3x3s2", 128, 128, 56, 56, 3, stride=2, padding=1),
    ConvLayer("dilated_3x3", 256, 256, 28, 28, 3, padding=2, dilation=2),
    ConvLayer("vgg_b8_3x3_28", 256, 256, 28, 28, 3, padding=1, batch=8),
]
DEPTHWISE = [
    ConvLayer("dw_3x3_112", 32, 32, 112, 112, 3, padding=1, groups=32),
    ConvLayer("dw_3x3_14", 512, 512, 14, 14, 3, padding=1, groups=512),
    ConvLayer("dw_3x3s2_56", 144, 144, 56, 56, 3, stride=2, padding=1, groups=144),
    ConvLayer("dw_5x5_28", 240, 240, 28, 28, 5, padding=2, groups=240),
]
POOLING = [
    PoolLayer("max_3x3s2_112", "max", 64, 112, 112, 3, 2, 1),
    PoolLayer("max_2x2s2_224", "max", 64, 224, 224, 2, 2),
    PoolLayer("avg_2x2s2_224", "avg", 64, 224, 224, 2, 2),
    PoolLayer("avg_3x3s1_56", "avg", 64, 56, 56, 3, 1, 1, count_include_pad=False),
    PoolLayer("gap_2048_7", "global", 2048, 7, 7, batch=8),
]


def in_layout(case, x):
    """x (N, C, H, W) as the case's layout takes it, C-contiguous."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if case.layout == "NHWC" else x


def _nhwc(cases):
    from dataclasses import replace
    return [replace(c, name=c.name + "_nhwc", layout="NHWC") for c in cases]


_BY_NAME = {c.name: c for c in DENSE + DEPTHWISE + POOLING}
QUICK = [_BY_NAME[n] for n in ("lenet_c1", "resnet_c1", "resnet_3x3_28", "resnet_1x1_56", "resnet_3x3s2",
                               "dw_3x3_14", "max_3x3s2_112", "gap_2048_7")]
NETWORKS = {"quick": ["lenet5", "resnet18"], "resnet50": ["resnet50"], "vgg16": ["vgg16"],
            "mobilenet": ["mobilenet_v2"], "networks": ["lenet5", "alexnet", "vgg16", "resnet18", "resnet50",
                                                       "mobilenet_v2"]}
# 1x1 layers run natively channels-last too (one GEMM on the input in place): their NHWC rows show it.
_POINTWISE = [_BY_NAME[n] for n in ("resnet_1x1_56", "resnet_1x1_14")]
SUITES = {
    "quick": QUICK,
    "dense": DENSE + _nhwc(_POINTWISE),
    "depthwise": DEPTHWISE + _nhwc(DEPTHWISE),
    "pooling": POOLING + _nhwc(POOLING),
    "all": DENSE + DEPTHWISE + POOLING + _nhwc(_POINTWISE + DEPTHWISE + POOLING),
    "resnet50": [], "vgg16": [], "mobilenet": [], "networks": [],
}
