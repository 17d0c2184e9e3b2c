"""Thin inference layers over the functional API, with PyTorch's names, shapes, init and state_dict keys.

    model = Sequential(Conv2d(3, 16, 3, padding=1), BatchNorm2d(16), ReLU(), MaxPool2d(2))
    model.load_state_dict(torch_model.state_dict())      # arrays or tensors, PyTorch's key names
    model.prepare()                                       # fold BatchNorm, fuse ReLU into the conv
    y = model(x)
"""
import math

import numpy as np

from . import functional as F
from ._arrays import as_array, result_dtype
from ._prepared import freeze, is_frozen


class Module:
    """Parameters and buffers are numpy arrays held in ``_params``; children are attributes that are Modules."""

    def __init__(self):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_children", {})
        # Names of parameters whose array the module made itself (no one else holds it writeable), which
        # freezing may take as they are; arrays assigned from outside are copied when frozen.
        object.__setattr__(self, "_own", set())

    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._children[name] = value
        elif isinstance(value, np.ndarray) or name in self._params:   # (a tensor or list assigned to one too)
            self._params[name] = value
            self._own.discard(name)
        object.__setattr__(self, name, value)

    def _set_own(self, name, value):
        """Set a parameter to an array this module made and holds alone."""
        setattr(self, name, value)
        self._own.add(name)

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def children(self):
        return list(self._children.values())

    def state_dict(self, prefix=""):
        """Arrays by PyTorch's dotted key names."""
        out = {}
        for name, value in self._params.items():
            if value is not None:
                out[prefix + name] = value
        for name, child in self._children.items():
            out.update(child.state_dict(prefix + name + "."))
        return out

    def load_state_dict(self, state, strict=True):
        """Copy arrays (or CPU tensors) into the parameters; shapes must match. Ignores num_batches_tracked."""
        own = self.state_dict()
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key in own:
            if key not in state:
                continue
            value = state[key]
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            if value.shape != own[key].shape:
                raise ValueError(f"load_state_dict: {key} has shape {own[key].shape}, got {value.shape}")
            self._set(key, np.array(value, dtype=own[key].dtype))
        return self

    def _set(self, key, value):
        head, _, rest = key.partition(".")
        if rest:
            self._children[head]._set(rest, value)
        else:
            self._set_own(head, value)   # (load_state_dict's own copy)

    def prepare(self):
        """Inference preparation: fold BatchNorm into convolutions and fuse ReLUs (children first)."""
        for child in self.children():
            child.prepare()
        return self

    def eval(self):
        return self


def _uniform(rng, bound, shape):
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


_rng = np.random.default_rng()


class _ConvNd(Module):
    nd = 2
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, output_padding=0):
        super().__init__()
        k = (kernel_size,) * self.nd if isinstance(kernel_size, int) else tuple(kernel_size)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        shape = (in_channels, out_channels // groups) + k if self.transposed else \
            (out_channels, in_channels // groups) + k
        fan_in = shape[1] * math.prod(k)
        bound = 1 / math.sqrt(fan_in) if fan_in else 0.0   # PyTorch: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
        self._set_own("weight", _uniform(_rng, bound, shape))
        self._set_own("bias", _uniform(_rng, bound, (out_channels,)) if bias else None)
        if not bias:
            self._params["bias"] = None
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.output_padding = output_padding
        self.activation = None    # set by prepare() when a ReLU follows
        self.frozen = False       # set by prepare(): parameters are made read-only when used

    def prepare(self):
        """Inference: at the next call the parameters become read-only views of arrays the layer keeps to
        itself (assign new arrays or use load_state_dict to change them), which lets the kernels trust their
        prepared (transformed, packed) weights without comparing the weights on every call."""
        self.frozen = True
        return super().prepare()

    def forward(self, x):
        if self.frozen:
            for name in ("weight", "bias"):
                p = self._params[name]
                if p is not None and not (isinstance(p, np.ndarray) and is_frozen(p)):
                    # The layer's own array is frozen as it is; one assigned from outside (its caller may hold
                    # it or a view of it writeable) or a tensor is frozen as a copy.
                    own = name in self._own and isinstance(p, np.ndarray)
                    self._set_own(name, freeze(p if own else as_array(p, name), copy=not own))
        if self.transposed:
            fn = getattr(F, f"conv_transpose{self.nd}d")
            return fn(x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups,
                      self.dilation, activation=self.activation)
        fn = getattr(F, f"conv{self.nd}d")
        return fn(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                  activation=self.activation)

    def fold_batchnorm(self, bn):
        """Absorb a following inference BatchNorm: w' = w * g / s, b' = (b - mean) * g / s + beta."""
        scale = bn.weight.astype(np.float64) / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
        bias = self.bias.astype(np.float64) if self.bias is not None else np.zeros(len(scale))
        shape = (1, -1) + (1,) * self.nd if self.transposed else (-1,) + (1,) * (self.nd + 1)
        if self.transposed:   # weight (in, out/groups, *k): scale the output channels of each group
            w = self.weight.astype(np.float64).reshape((self.groups, -1) + self.weight.shape[1:])
            w = w * scale.reshape(self.groups, 1, -1, *(1,) * self.nd)
            self._set_own("weight", w.reshape(self.weight.shape).astype(np.float32))
        else:
            self._set_own("weight", (self.weight * scale.reshape(shape)).astype(np.float32))
        self._set_own("bias", ((bias - bn.running_mean) * scale + bn.bias).astype(np.float32))


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2


class Conv3d(_ConvNd):
    nd = 3


class ConvTranspose2d(_ConvNd):
    nd = 2
    transposed = True


class BatchNorm2d(Module):
    """Inference batch norm with running statistics."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.weight = np.ones(num_features, np.float32)
        self.bias = np.zeros(num_features, np.float32)
        self.running_mean = np.zeros(num_features, np.float32)
        self.running_var = np.ones(num_features, np.float32)
        self.eps = eps

    def forward(self, x):
        scale = self.weight / np.sqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(-1, 1, 1) + shift.reshape(-1, 1, 1)


class ReLU(Module):
    activation = "relu"   # what prepare() fuses into a preceding convolution

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        # NaN stays NaN, as torch.relu; inplace=True overwrites x, as torch.nn.ReLU(inplace=True)
        if self.inplace and isinstance(x, np.ndarray) and x.flags.writeable:
            return np.maximum(x, 0, out=x)
        return np.maximum(x, 0)


def add_relu_(out, residual):
    """out = relu(out + residual), in place in ``out`` (a residual block's sum and activation in one pass,
    threads sharing it, with the C++ backend; numpy's in-place add and maximum otherwise)."""
    from . import _cpp_backend
    if (_cpp_backend.module is not None and type(out) is np.ndarray and type(residual) is np.ndarray
            and out.dtype == residual.dtype and out.dtype in (np.float32, np.float64) and out.shape == residual.shape
            and out.flags.c_contiguous and residual.flags.c_contiguous and out.flags.writeable
            and out.flags.aligned and residual.flags.aligned
            and (out is residual or not np.shares_memory(out, residual))):
        _cpp_backend.module.add_clamp_(out, residual, 0.0, np.inf, _cpp_backend.kernel_threads())
        return out
    np.add(out, residual, out=out)
    return np.maximum(out, 0, out=out)


class ReLU6(Module):
    activation = "relu6"

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        if self.inplace and isinstance(x, np.ndarray) and x.flags.writeable:
            return np.minimum(np.maximum(x, 0, out=x), 6, out=x)
        return np.minimum(np.maximum(x, 0), 6)


class Identity(Module):
    def forward(self, x):
        return x


class Dropout(Identity):
    """Inference: the identity."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()


class Flatten(Module):
    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return x.reshape(x.shape[:self.start_dim] + (-1,))


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        self.weight = _uniform(_rng, bound, (out_features, in_features))
        self.bias = _uniform(_rng, bound, (out_features,)) if bias else None
        if not bias:
            self._params["bias"] = None

    def forward(self, x):
        # As a 1x1 convolution over (1, in, rows, 1): our GEMM, not numpy's BLAS, whose worker threads keep
        # spinning after each call and slow the next convolution down (measured 2-3x at 2 threads).
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.weight.shape[1]:
            raise ValueError(f"Linear: input's last dimension must be in_features={self.weight.shape[1]}, "
                             f"got input of shape {x.shape}")
        out_shape = x.shape[:-1] + (self.weight.shape[0],)
        if x.size == 0 or self.weight.size == 0:   # (no rows, or no features: as PyTorch, zeros plus bias)
            y = np.zeros(out_shape, result_dtype(x, self.weight))
            return y + self.bias if self.bias is not None else y
        rows = x.reshape(-1, x.shape[-1])
        y = F.conv2d(np.ascontiguousarray(rows.T)[None, :, :, None], self.weight[:, :, None, None], self.bias)
        return y[0, :, :, 0].T.reshape(out_shape)


class _Pool(Module):
    def __init__(self, fn, **kwargs):
        super().__init__()
        self.fn = fn
        self.kwargs = kwargs

    def forward(self, x):
        return self.fn(x, **self.kwargs)


def _pool_class(name, fn_name, params):
    def __init__(self, *args, **kwargs):
        if len(args) > len(params):
            raise TypeError(f"{name} takes at most {len(params)} positional arguments ({', '.join(params)}), "
                            f"got {len(args)}")
        bound = dict(zip(params, args))
        bound.update(kwargs)
        _Pool.__init__(self, getattr(F, fn_name), **bound)
    return type(name, (_Pool,), {"__init__": __init__, "__doc__": f"As torch.nn.{name}."})


_MAX = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")   # (PyTorch's order)
_AVG = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
MaxPool1d = _pool_class("MaxPool1d", "max_pool1d", _MAX)
MaxPool2d = _pool_class("MaxPool2d", "max_pool2d", _MAX)
MaxPool3d = _pool_class("MaxPool3d", "max_pool3d", _MAX)
AvgPool1d = _pool_class("AvgPool1d", "avg_pool1d", _AVG)
AvgPool2d = _pool_class("AvgPool2d", "avg_pool2d", _AVG + ("divisor_override",))
AvgPool3d = _pool_class("AvgPool3d", "avg_pool3d", _AVG + ("divisor_override",))
AdaptiveAvgPool2d = _pool_class("AdaptiveAvgPool2d", "adaptive_avg_pool2d", ("output_size",))


class Sequential(Module):
    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def __iter__(self):
        return iter(self.children())

    def __getitem__(self, i):
        return self.children()[i]

    def __len__(self):
        return len(self._children)

    def forward(self, x):
        for layer in self._children.values():
            x = layer(x)
        return x

    def prepare(self):
        """Fold Conv -> BatchNorm2d pairs and fuse Conv -> ReLU, replacing the absorbed layers by Identity."""
        super().prepare()
        names = list(self._children)
        for i, name in enumerate(names):
            layer = self._children[name]
            if not isinstance(layer, _ConvNd):
                continue
            j = i + 1
            if j < len(names) and isinstance(self._children[names[j]], BatchNorm2d) and layer.nd == 2:
                layer.fold_batchnorm(self._children[names[j]])
                setattr(self, names[j], Identity())
                j += 1
            if j < len(names) and isinstance(self._children[names[j]], (ReLU, ReLU6)) and layer.activation is None:
                layer.activation = self._children[names[j]].activation
                setattr(self, names[j], Identity())
        return self

    def state_dict(self, prefix=""):
        # Identity layers left by prepare() hold nothing; folded BatchNorm keys disappear as in a fused model.
        return super().state_dict(prefix)


def from_torch(module):
    """A cnnkernels copy of a torch.nn module built from supported layers (Sequential, Conv, BatchNorm2d,
    ReLU, pooling, Linear, Flatten), with the same weights."""
    import torch.nn as tnn
    kind = type(module)
    if kind is tnn.Sequential:
        return Sequential(*(from_torch(m) for m in module))
    if kind in (tnn.Conv1d, tnn.Conv2d, tnn.Conv3d, tnn.ConvTranspose2d):
        if module.padding_mode != "zeros":
            raise TypeError(f"from_torch: padding_mode={module.padding_mode!r} is not supported")
        cls = {tnn.Conv1d: Conv1d, tnn.Conv2d: Conv2d, tnn.Conv3d: Conv3d, tnn.ConvTranspose2d: ConvTranspose2d}[kind]
        extra = {"output_padding": module.output_padding} if kind is tnn.ConvTranspose2d else {}
        layer = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                    module.dilation, module.groups, module.bias is not None, **extra)
    elif kind is tnn.BatchNorm2d:
        if not module.track_running_stats:   # (it normalises by each batch's own statistics)
            raise TypeError("from_torch: BatchNorm2d(track_running_stats=False) is not supported")
        layer = BatchNorm2d(module.num_features, module.eps)
        if not module.affine:   # (weight 1 and bias 0, as BatchNorm2d starts)
            return layer.load_state_dict(module.state_dict(), strict=False)
    elif kind is tnn.ReLU:
        return ReLU()
    elif kind is tnn.ReLU6:
        return ReLU6()
    elif kind in (tnn.Dropout, tnn.Identity):
        return Identity()
    elif kind is tnn.Flatten:
        return Flatten(module.start_dim)
    elif kind is tnn.Linear:
        layer = Linear(module.in_features, module.out_features, module.bias is not None)
    elif kind is tnn.MaxPool2d:
        return MaxPool2d(module.kernel_size, module.stride, module.padding, module.dilation, module.return_indices,
                         module.ceil_mode)
    elif kind is tnn.AvgPool2d:
        return AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode, module.count_include_pad,
                         module.divisor_override)
    elif kind is tnn.AdaptiveAvgPool2d:
        return AdaptiveAvgPool2d(module.output_size)
    else:
        raise TypeError(f"from_torch: {kind.__name__} is not supported")
    return layer.load_state_dict(module.state_dict())
