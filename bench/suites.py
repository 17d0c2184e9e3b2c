"""Layer suites from ../shared/TARGETS.md: name -> conv geometry (float32, NCHW)."""
from dataclasses import dataclass


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

    @property
    def flops(self):
        oh = (self.H + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) // self.stride + 1
        ow = (self.W + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) // self.stride + 1
        return 2 * self.batch * self.K * (self.C // self.groups) * self.kernel ** 2 * oh * ow

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
                         f" b{self.batch}" if self.batch > 1 else ""])
        return f"{self.C}->{self.K} {self.H}x{self.W} {self.kernel}x{self.kernel}{extra}"


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
]
_BY_NAME = {layer.name: layer for layer in DENSE + DEPTHWISE}
QUICK = [_BY_NAME[n] for n in ("lenet_c1", "resnet_c1", "resnet_3x3_28", "resnet_1x1_56", "resnet_3x3s2",
                               "dw_3x3_14")]
SUITES = {"quick": QUICK, "dense": DENSE, "depthwise": DEPTHWISE, "all": DENSE + DEPTHWISE}
