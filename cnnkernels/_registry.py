"""Which kernels exist for each operation family, how to run them, and the 'auto' choice.

Every runner takes already-validated 5-D C-contiguous arrays (see cnnkernels.numba's
preconditions); the C++ bindings check them again, so nothing reaches C++ unchecked.
"""
import os
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from . import _cpp_backend, _threads
from ._arrays import large_empty
from ._geometry import ConvGeometry
from ._prepared import prepared_weights
from ._threads import get_num_threads, numba_threads, single_threaded_blas
from .winograd import transforms  # at import: lazily, its import was ~0.3 ms of a Winograd layer's first call

BACKENDS = ("auto", "numba", "cpp")

# Bound on every kernel's scratch memory (README "Workspace"), checked at import: unchecked, a non-number failed
# the import with int()'s message and 0 or a negative number failed every later call in the bindings.
WORKSPACE_BYTES = _cpp_backend.env_setting("CNNKERNELS_WORKSPACE_MB", "64", int, 1, 1 << 20,
                                           "an int in [1, 1048576] (MiB)") << 20


# Accuracy classes: the max abs error, relative to the max abs output, each is held to on
# standard-normal float32 data (measured for up to 2048 input channels; see README), and the
# classes each precision policy lets algorithm="auto" use.
ACCURACY_BOUND = {"exact": 1e-5, "winograd_f2": 1e-5, "winograd_f4": 1e-4, "winograd_f6": 1e-4}
PRECISION_POLICIES = {
    "strict": ("exact",),
    "default": ("exact", "winograd_f2", "winograd_f4"),
    "fast": ("exact", "winograd_f2", "winograd_f4", "winograd_f6"),
}
_precision = None


def get_precision():
    """Which accuracy classes algorithm='auto' may pick: 'strict', 'default' or 'fast'."""
    global _precision
    if _precision is None:
        value = os.environ.get("CNNKERNELS_PRECISION", "default").strip().lower()
        if value not in PRECISION_POLICIES:
            raise ValueError(f"environment variable CNNKERNELS_PRECISION must be one of {list(PRECISION_POLICIES)}, "
                             f"got {value!r}")
        _precision = value
    return _precision


def set_precision(policy):
    """'strict': exact algorithms only; 'default': also Winograd F(2x2) and F(4x4); 'fast': also F(6x6)."""
    global _precision
    if not isinstance(policy, str) or policy not in PRECISION_POLICIES:
        raise ValueError(f"set_precision: policy must be one of {list(PRECISION_POLICIES)}, got {policy!r}")
    _precision = policy


class BackendUnavailableError(RuntimeError):
    """The requested backend is not built or cannot be loaded on this machine."""


_cpp_threads = _cpp_backend.kernel_threads


def _numba():
    from . import numba as nb  # imported lazily: Numba's import is the slow part of ours
    return nb


# --- convolution -----------------------------------------------------------

# Conv runners: run(x, w, bias, y, geometry, act) with act = (min, max), the fused clamp (ReLU: (0, inf)).

def _conv_numba_direct(x, w, b, y, g, act):
    numba_threads()
    _numba().conv_direct(x, w, b, y, g.stride, g.pad, g.dilation, g.groups, act[0], act[1])


def _conv_numba_im2col(x, w, b, y, g, act):
    numba_threads()
    with single_threaded_blas():
        _numba().conv_im2col(x, w, b, y, g.stride, g.pad, g.dilation, g.groups, WORKSPACE_BYTES // get_num_threads(),
                             act[0], act[1])


def _im2col_numba_min_workspace(g, itemsize):
    """One output position's patch column and products per thread (see numba.conv.conv_im2col)."""
    return get_num_threads() * ((g.C // g.groups) * g.kernel[0] * g.kernel[1] * g.kernel[2] + g.K // g.groups) * itemsize


def _conv_cpp(algorithm):
    def run(x, w, b, y, g, act):
        _cpp_backend.module.conv(algorithm, x, w, b if b.shape[0] else None, y, g.stride, g.pad,
                                 g.dilation, g.groups, _cpp_threads(), WORKSPACE_BYTES, act[0], act[1])
    return run


# --- Winograd ------------------------------------------------------------------

def winograd_weights(w, m, groups, backend="numba"):
    """Transformed weights for F(m x m, 3 x 3) (a _prepared.Prepared; .data is U). The C++ backend's U is packed
    for its GEMM micro-kernel, hence its own entry."""
    def make():
        _, G, _ = transforms(m)
        if backend == "cpp":
            mod = _cpp_backend.module
            U = large_empty(mod.winograd_weights_shape(w.shape[0], w.shape[1] * groups, groups, m), w.dtype,
                            _cpp_backend.prewarmed_bytes)
            mod.winograd_transform_weights(w, U, G, groups, _cpp_threads())
            return U
        return _numba().winograd.transform_weights(w, G, groups).astype(w.dtype)
    return prepared_weights(f"winograd/{backend}", w, (m, groups), make)


def _winograd_supports(g):
    if g.kernel != (1, 3, 3) or g.inp[0] != 1 or g.out[0] != 1:
        return f"needs a 2-D 3x3 kernel, got kernel {g.kernel[1:] if g.kernel[0] == 1 else g.kernel}" + (
            "" if g.kernel != (1, 3, 3) else f" on {g.inp[0]} input and {g.out[0]} output planes in depth")
    if g.stride != (1, 1, 1):   # (a 3-D call's depth stride shown only when it is the one that is not 1)
        return f"needs stride 1, got stride {g.stride[1:] if g.stride[0] == 1 else g.stride}"
    return None


def _phases(g):
    """The phases a dilated call computes, rows x columns: min(dilation, output size) per axis (a phase past the
    output's last row or column would be computed for nothing: at dilation 1000 on a 10x10 output, 10^6 of them)."""
    return min(g.dilation[1], g.out[1]), min(g.dilation[2], g.out[2])


def _phase_outputs_fill_tiles(g):
    """Whether a dilated call's phases have outputs of at least 12 x 12, for the heuristic: smaller phases waste
    much of each tile and pay the per-image costs per phase. C++, 2 threads, ms, igemm / F4 / F2, by phase
    output: 256x33x33 d2 (17) 7.2 / 5.2 / 5.6, 256x28x28 d2 (14) 4.3 / 2.3 / 2.9, 128x64x64 d4 (16) 6.0 / 3.7 /
    4.6; 256x33x33 d4 (9) 8.4 / 9.4 / 8.9, 128x64x64 d8 (8) 6.1 / 6.4 / 5.6, 256x33x33 d12 (3) 6.3 / 30 / 16."""
    dh, dw = g.dilation[1:]
    return -(-g.out[1] // dh) >= 12 and -(-g.out[2] // dw) >= 12


def _phase_geometry(g):
    """A dilated stride-1 3x3 convolution as a dilation-1 one: output rows a, a + d, a + 2d, ... read only the
    padded input rows of phase a (a, a + d, ...), so each phase of the zero-padded input (rows/columns a::d,
    padded to whole phases) is a plain 3x3 'valid' convolution. The phases (_phases) become the batch of one
    call, whose geometry this returns (its input planes: rows x columns per phase)."""
    dh, dw = g.dilation[1:]
    Hs, Ws = -(-(g.out[1] + 2 * dh) // dh), -(-(g.out[2] + 2 * dw) // dw)
    nh, nw = _phases(g)
    return ConvGeometry(nh * nw * g.N, g.C, g.K, g.groups, (1, Hs, Ws), (1, Hs - 2, Ws - 2), g.kernel, g.stride,
                        (0, 0, 0), (1, 1, 1))


def _dilated_by_phases(run):
    """A dilation-1 Winograd runner that also runs dilated calls, through _phase_geometry (one strided copy of
    the input into its phases, one of the results out)."""
    def phased(x, w, b, y, g, act):
        if g.dilation == (1, 1, 1):
            return run(x, w, b, y, g, act)
        dh, dw = g.dilation[1:]
        nh, nw = _phases(g)
        inner = _phase_geometry(g)
        Hs, Ws = inner.inp[1:]
        N, C, _, H, W = x.shape
        ph, pw = g.pad[1:]
        phases = np.zeros((nh, nw, N, C, 1, Hs, Ws), x.dtype)
        for a in range(nh):   # phase rows i hold padded rows a + dh * i, i.e. input rows a + dh * i - ph
            i0, i1 = max(0, -(-(ph - a) // dh)), min(Hs, -(-(H + ph - a) // dh))
            for c in range(nw):
                j0, j1 = max(0, -(-(pw - c) // dw)), min(Ws, -(-(W + pw - c) // dw))
                if i1 > i0 and j1 > j0:
                    phases[a, c, :, :, 0, i0:i1, j0:j1] = x[:, :, 0, a + dh * i0 - ph::dh, c + dw * j0 - pw::dw][
                        :, :, :i1 - i0, :j1 - j0]
        out = np.empty((nh, nw, N, g.K, 1, Hs - 2, Ws - 2), x.dtype)
        run(phases.reshape(nh * nw * N, C, 1, Hs, Ws), w, b, out.reshape(nh * nw * N, g.K, 1, Hs - 2, Ws - 2),
            inner, act)
        for a in range(nh):   # output rows a, a + dh, ... come from phase row a
            for c in range(nw):
                ya = y[:, :, 0, a::dh, c::dw]
                ya[...] = out[a, c, :, :, 0, :ya.shape[2], :ya.shape[3]]
    return phased


def _finite_input(x, weights):
    """Whether Winograd may run: a transformed tile mixes all its inputs, so one NaN/Inf would spoil
    outputs that do not depend on it. (A sum is non-finite iff some term is, barring overflow, which
    only sends huge inputs to an exact kernel too.) The C++ kernel checks its transformed tiles itself."""
    return weights.finite and bool(np.isfinite(x.sum()))


def _conv_numba_winograd(m):
    def run(x, w, b, y, g, act):
        weights = winograd_weights(w, m, g.groups)
        if not _finite_input(x, weights):
            return _conv_numba_im2col(x, w, b, y, g, act)
        AT, _, BT = transforms(m)
        numba_threads()
        with single_threaded_blas():
            _numba().winograd.conv_winograd(x, weights.data, b, y, g.pad, m, AT.astype(x.dtype), BT.astype(x.dtype),
                                            WORKSPACE_BYTES, -np.inf, np.inf)
        # Finite inputs near the float range's end can overflow in the products or transforms where an exact
        # kernel's sums would not (x = 1e38: NaN in outputs whose window does not hold it); checked before the
        # activation's clamp, which could hide it.
        if not np.isfinite(y).all():
            return _conv_numba_im2col(x, w, b, y, g, act)
        if act != (-np.inf, np.inf):
            np.clip(y, act[0], act[1], out=y)
    return run


def _conv_cpp_winograd(m, block_bytes=0):
    def run(x, w, b, y, g, act):
        weights = winograd_weights(w, m, g.groups, "cpp")
        AT, _, BT = transforms(m)
        # (a False return: some transformed input tile was not finite, and y is not the convolution)
        if not (weights.finite and _cpp_backend.module.winograd_conv(
                x, weights.data, b if b.shape[0] else None, y, g.pad, AT, BT, _cpp_threads(), WORKSPACE_BYTES,
                act[0], act[1], block_bytes)):
            _conv_cpp("im2col")(x, w, b, y, g, act)
    return run


def _winograd_min_workspace(m, backend):
    """Scratch for one tile per block (the transformed input and products; in C++ also the per-thread input
    bands and padded bias): the least either Winograd kernel can run in (dilated: that of its phase call)."""
    def need(g, itemsize):
        if g.dilation != (1, 1, 1):
            g = _phase_geometry(g)
        if backend == "cpp":
            return _cpp_backend.module.winograd_workspace_bytes(g.N, g.C, g.K, g.groups, g.out[1], g.out[2], m,
                                                                itemsize, _cpp_threads(), 1, True)
        return (m + 2) ** 2 * (g.C // g.groups + g.K // g.groups) * itemsize
    return need


# --- implicit GEMM ------------------------------------------------------------

def igemm_weights(w, groups):
    """Weights packed into the C++ igemm micro-kernel's channel panels, prepared once (prepared_weights)."""
    def make():
        mod = _cpp_backend.module
        packed = np.empty(mod.igemm_weights_shape(w, groups), w.dtype)
        mod.igemm_pack_weights(w, packed, groups)
        return packed
    return prepared_weights("igemm", w, (groups,), make).data


def _conv_cpp_igemm(chunk_bytes=0):
    def run(x, w, b, y, g, act):
        _cpp_backend.module.igemm_conv(x, w, igemm_weights(w, g.groups), b if b.shape[0] else None, y, g.stride,
                                       g.pad, g.dilation, g.groups, _cpp_threads(), WORKSPACE_BYTES, act[0], act[1],
                                       chunk_bytes)
    return run


def _gemm_min_workspace(algorithm):
    """The C++ im2col's / igemm's floor: one patch column plus packing per worker / one zero-padded plane."""
    def need(g, itemsize):
        return _cpp_backend.module.conv_workspace_bytes(algorithm, g.N, g.C, g.K, g.groups, g.inp, g.out, g.kernel,
                                                        g.stride, g.pad, g.dilation, itemsize, _cpp_threads(), 1)
    return need


# --- pooling (args: x, y, indices or None, geometry dict) --------------------

def _max_pool_numba(x, y, idx, p):
    numba_threads()
    want = idx is not None
    _numba().max_pool(x, y, idx if want else np.empty((0,) * 5, np.int64), p["kernel"], p["stride"],
                      p["pad_before"], p["dilation"], want)


def _max_pool_cpp(x, y, idx, p):
    _cpp_backend.module.max_pool(x, y, idx, p["kernel"], p["stride"], p["pad_before"], p["dilation"],
                                 _cpp_threads())


def _avg_pool_numba(x, y, idx, p):
    numba_threads()
    _numba().avg_pool(x, y, p["kernel"], p["stride"], p["pad_before"], p["pad_after"],
                      p["count_include_pad"], p["divisor_override"])


def _avg_pool_cpp(x, y, idx, p):
    _cpp_backend.module.avg_pool(x, y, p["kernel"], p["stride"], p["pad_before"], p["pad_after"],
                                 p["count_include_pad"], p["divisor_override"], _cpp_threads())


def _adaptive_avg_numba(x, y, idx, p):
    numba_threads()
    _numba().adaptive_avg_pool(x, y)


def _adaptive_avg_cpp(x, y, idx, p):
    _cpp_backend.module.adaptive_avg_pool(x, y, _cpp_threads())


def _adaptive_max_numba(x, y, idx, p):
    numba_threads()
    want = idx is not None
    _numba().adaptive_max_pool(x, y, idx if want else np.empty((0,) * 5, np.int64), want)


def _adaptive_max_cpp(x, y, idx, p):
    _cpp_backend.module.adaptive_max_pool(x, y, idx, _cpp_threads())


# --- layout-native kernels -----------------------------------------------------

def _depthwise_supports(g):
    if g.groups != g.C or g.C == 0:
        return f"needs groups == input channels (depthwise), got groups={g.groups} with {g.C} channels"
    return None


def _conv_numba_depthwise(x, w, b, y, g, act):
    numba_threads()
    _numba().depthwise.depthwise_ncdhw(x, w, b, y, g.stride, g.pad, g.dilation, act[0], act[1])


def _conv_numba_depthwise_ndhwc(x, w, b, y, g, act):
    numba_threads()
    _numba().depthwise.depthwise_ndhwc(x, w, b, y, g.stride, g.pad, g.dilation, act[0], act[1])


def _conv_cpp_depthwise(layout):
    def run(x, w, b, y, g, act):
        fn = _cpp_backend.module.depthwise_ndhwc if layout == CHANNELS_LAST else _cpp_backend.module.depthwise_ncdhw
        fn(x, w, b if b.shape[0] else None, y, g.stride, g.pad, g.dilation, _cpp_threads(), act[0], act[1])
    return run


def _max_pool_cpp_ndhwc(x, y, idx, p):
    _cpp_backend.module.max_pool_ndhwc(x, y, idx, p["kernel"], p["stride"], p["pad_before"], p["dilation"],
                                       _cpp_threads())


def _avg_pool_cpp_ndhwc(x, y, idx, p):
    _cpp_backend.module.avg_pool_ndhwc(x, y, p["kernel"], p["stride"], p["pad_before"], p["pad_after"],
                                       p["count_include_pad"], p["divisor_override"], _cpp_threads())


def _adaptive_avg_cpp_ndhwc(x, y, idx, p):
    _cpp_backend.module.adaptive_avg_pool_ndhwc(x, y, _cpp_threads())


def _pointwise_supports(g):
    if g.kernel != (1, 1, 1) or g.stride != (1, 1, 1) or g.pad != (0, 0, 0) or g.groups != 1 or g.out != g.inp:
        return "needs a 1x1 kernel, stride 1, no padding and groups 1"
    return None


def _conv_cpp_pointwise_ndhwc(x, w, b, y, g, act):
    # One GEMM: x's rows of C channels read in place, the weights (K, C) used as its transposed B.
    _cpp_backend.module.pointwise_ndhwc(x, w.reshape(g.K, g.C), b if b.shape[0] else None, y, _cpp_threads(),
                                        WORKSPACE_BYTES, act[0], act[1])


def _conv_numba_pointwise_ndhwc(x, w, b, y, g, act):
    numba_threads()
    with single_threaded_blas():
        _numba().depthwise.pointwise_ndhwc(x, w, b, y, act[0], act[1])


def _max_pool_numba_ndhwc(x, y, idx, p):
    numba_threads()
    want = idx is not None
    _numba().pool_nhwc.max_pool_ndhwc(x, y, idx if want else np.empty((0,) * 5, np.int64), p["kernel"],
                                      p["stride"], p["pad_before"], p["dilation"], want)


def _avg_pool_numba_ndhwc(x, y, idx, p):
    numba_threads()
    _numba().pool_nhwc.avg_pool_ndhwc(x, y, p["kernel"], p["stride"], p["pad_before"], p["pad_after"],
                                      p["count_include_pad"], p["divisor_override"])


def _adaptive_avg_numba_ndhwc(x, y, idx, p):
    numba_threads()
    _numba().pool_nhwc.adaptive_avg_pool_ndhwc(x, y)


# --- the table -------------------------------------------------------------------

CHANNELS_FIRST, CHANNELS_LAST = "NCDHW", "NDHWC"
_LAYOUTS = {"NCW": (1, CHANNELS_FIRST), "NCHW": (2, CHANNELS_FIRST), "NCDHW": (3, CHANNELS_FIRST),
            "NWC": (1, CHANNELS_LAST), "NHWC": (2, CHANNELS_LAST), "NDHWC": (3, CHANNELS_LAST)}


def normalize_layout(layout, nd, op):
    """'NCHW'-family names -> CHANNELS_FIRST, 'NHWC'-family -> CHANNELS_LAST; nd (1-3) checks the rank."""
    if not isinstance(layout, str) or layout.upper() not in _LAYOUTS:
        raise ValueError(f"{op}: layout must be one of {list(_LAYOUTS)}, got {layout!r}")
    rank, kind = _LAYOUTS[layout.upper()]
    if nd is not None and rank != nd:
        wanted = [name for name, (r, _) in _LAYOUTS.items() if r == nd]
        raise ValueError(f"{op}: layout for a {nd}-D operation must be one of {wanted}, got {layout!r}")
    return kind


@dataclass(frozen=True)
class Kernel:
    """One candidate: an algorithm in a backend and layout, what it supports, and how exact it is."""
    algorithm: str
    backend: str
    run: Callable
    # geometry -> None when supported, else the reason it is not (shown to users who force it)
    supports: Callable = staticmethod(lambda geometry: None)
    accuracy: str = "exact"   # "exact": sums the same products as the definition
    # (geometry, itemsize) -> the fewest bytes of scratch the kernel can run in: it slices its work to stay
    # within WORKSPACE_BYTES when that is at least this much, and is refused (auto skips it) when it is less
    min_workspace: Callable = staticmethod(lambda geometry, itemsize: 0)
    layout: str = CHANNELS_FIRST
    via: str = ""             # "+nchw": a channels-first kernel run on a channels-last call by converting
    variant: str = ""         # a tile variant ("chunk=16k"), timed only by the exhaustive mode (_tile_variants)

    @property
    def name(self):
        return f"{self.algorithm}/{self.backend}{self.via}" + (f"[{self.variant}]" if self.variant else "")


def _tile_variants(kernels):
    """The C++ kernels of `kernels` with other tile sizes, which CNNKERNELS_AUTOTUNE=exhaustive times beside
    them (the defaults were measured best on most layers; these won on some: README): the implicit GEMM with
    the other reduction chunk (16 KiB of weights, from L1, or 128 KiB, from L2; AVX-512's own is 128 KiB,
    AVX2's 16 KiB), and Winograd with tile blocks of half and twice the default 1.5 MiB of V + M per thread.
    Each is its default kernel in all but its run and name."""
    if _cpp_backend.module is None:
        return []
    own = _cpp_backend.module.igemm_chunk_bytes(4)
    variants = []
    for k in kernels:
        if (k.algorithm, k.backend) == ("igemm", "cpp"):
            variants += [replace(k, run=_conv_cpp_igemm(kib << 10), variant=f"chunk={kib}k")
                         for kib in (16, 128) if kib << 10 != own]
        elif k.backend == "cpp" and k.algorithm.startswith("winograd_f"):
            m = int(k.algorithm[len("winograd_f"):])
            variants += [replace(k, run=_dilated_by_phases(_conv_cpp_winograd(m, kib << 10)), variant=f"block={kib}k")
                         for kib in (768, 3072)]
    return variants


def _pool(numba_run, cpp_run, numba_ndhwc=None, cpp_ndhwc=None):
    kernels = [Kernel("direct", "numba", numba_run), Kernel("direct", "cpp", cpp_run)]
    if numba_ndhwc is not None:
        kernels.append(Kernel("direct", "numba", numba_ndhwc, layout=CHANNELS_LAST))
    if cpp_ndhwc is not None:
        kernels.append(Kernel("direct", "cpp", cpp_ndhwc, layout=CHANNELS_LAST))
    return kernels


KERNELS = {
    "conv": [
        Kernel("direct", "numba", _conv_numba_direct),
        Kernel("im2col", "numba", _conv_numba_im2col, min_workspace=_im2col_numba_min_workspace),
        Kernel("direct", "cpp", _conv_cpp("direct")),
        Kernel("im2col", "cpp", _conv_cpp("im2col"), min_workspace=_gemm_min_workspace("im2col")),
        Kernel("igemm", "cpp", _conv_cpp_igemm(), min_workspace=_gemm_min_workspace("igemm")),
        *[Kernel(f"winograd_f{m}", backend, _dilated_by_phases(run(m)), _winograd_supports, f"winograd_f{m}",
                 _winograd_min_workspace(m, backend))
          for m in (2, 4, 6) for backend, run in (("numba", _conv_numba_winograd), ("cpp", _conv_cpp_winograd))],
        Kernel("depthwise", "numba", _conv_numba_depthwise, _depthwise_supports),
        Kernel("depthwise", "numba", _conv_numba_depthwise_ndhwc, _depthwise_supports, layout=CHANNELS_LAST),
        Kernel("depthwise", "cpp", _conv_cpp_depthwise(CHANNELS_FIRST), _depthwise_supports),
        Kernel("depthwise", "cpp", _conv_cpp_depthwise(CHANNELS_LAST), _depthwise_supports, layout=CHANNELS_LAST),
        Kernel("pointwise", "numba", _conv_numba_pointwise_ndhwc, _pointwise_supports, layout=CHANNELS_LAST),
        Kernel("pointwise", "cpp", _conv_cpp_pointwise_ndhwc, _pointwise_supports, layout=CHANNELS_LAST,
               min_workspace=_gemm_min_workspace("im2col")),  # a 1x1 im2col is the same GEMM: the same packing floor
    ],
    "max_pool": _pool(_max_pool_numba, _max_pool_cpp, _max_pool_numba_ndhwc, _max_pool_cpp_ndhwc),
    "avg_pool": _pool(_avg_pool_numba, _avg_pool_cpp, _avg_pool_numba_ndhwc, _avg_pool_cpp_ndhwc),
    "adaptive_avg_pool": _pool(_adaptive_avg_numba, _adaptive_avg_cpp, _adaptive_avg_numba_ndhwc,
                               _adaptive_avg_cpp_ndhwc),
    "adaptive_max_pool": _pool(_adaptive_max_numba, _adaptive_max_cpp),
}


KERNELS["conv"] += _tile_variants(KERNELS["conv"])
_ALGORITHMS = {fam: ("auto",) + tuple(sorted({k.algorithm for k in kernels})) for fam, kernels in KERNELS.items()}


def _other_layout(shape, to_last):
    """A 5-D shape in the other layout: (N, C, D, H, W) -> (N, D, H, W, C) when to_last, else back."""
    return (shape[0],) + tuple(shape[2:]) + (shape[1],) if to_last else (shape[0], shape[4]) + tuple(shape[1:4])


def _swap_channels(a, to_last, out=None):
    """a (5-D, C-contiguous) in the other layout, (N, C, D, H, W) <-> (N, D, H, W, C), into out (C-contiguous) or a
    new array: one C++ pass where the C++ backend is built (NumPy's strided copy was 2-8x slower), else NumPy."""
    if out is None:
        out = np.empty(_other_layout(a.shape, to_last), a.dtype)
    if _cpp_backend.module is None:
        out[...] = np.moveaxis(a, 1, 4) if to_last else np.moveaxis(a, 4, 1)
        return out
    n, c = a.shape[0], (a.shape[1] if to_last else a.shape[4])
    npix = a.size // (n * c) if a.size else 0
    _cpp_backend.module.swap_last_axes(a.reshape(n, c, npix) if to_last else a.reshape(n, npix, c),
                                       out.reshape(n, npix, c) if to_last else out.reshape(n, c, npix),
                                       _cpp_threads())
    return out


def _conv_converted(run):
    """A channels-first conv runner on channels-last arrays: transpose in, run, transpose out (cost included)."""
    def converted(x, w, b, y, g, act):
        yc = np.empty((g.N, g.K) + g.out, x.dtype)
        run(_swap_channels(x, False), w, b, yc, g, act)
        _swap_channels(yc, True, y)
    return converted


def _pool_converted(run, kernel_last):
    """A pooling runner on arrays of the other layout than its kernel's (kernel_last: a channels-last kernel on
    channels-first arrays, else the reverse): transpose in, run, transpose out (cost included). Why the
    channels-last one on channels-first calls: the channels-first kernels vectorise along rows, and rows narrower
    than a vector (7 or 14 columns) take their bounds-checked path, while channels last vectorises over channels
    whatever the row length (max 3x3 stride 1, 512x14x14, 1 thread: 1.30 ms in place, 0.16 ms so)."""
    def converted(x, y, idx, p):
        shape = _other_layout(y.shape, kernel_last)
        yk = np.empty(shape, y.dtype)
        ik = np.empty(shape, np.int64) if idx is not None else None
        run(_swap_channels(x, kernel_last), yk, ik, p)
        _swap_channels(yk, not kernel_last, y)
        if idx is not None:
            _swap_channels(ik, not kernel_last, idx)
    return converted


_CONVERTED = {}


def _for_layout(fam, layout):
    """Kernels for a layout: its native ones, then the other layout's ones wrapped in conversions (channels-first
    calls: only C++ pooling kernels; convolutions have no channels-last kernel that wins on channels-first data)."""
    if (fam, layout) in _CONVERTED:
        return _CONVERTED[fam, layout]
    native = [k for k in KERNELS[fam] if k.layout == layout]
    if layout == CHANNELS_FIRST:
        sources = [] if fam == "conv" else [k for k in KERNELS[fam] if k.layout == CHANNELS_LAST and k.backend == "cpp"]
        wrap, via = (lambda run: _pool_converted(run, True)), "+nhwc"
    else:
        have = {(k.algorithm, k.backend) for k in native}
        sources = [k for k in KERNELS[fam] if k.layout == CHANNELS_FIRST and (k.algorithm, k.backend) not in have]
        wrap, via = (_conv_converted if fam == "conv" else (lambda run: _pool_converted(run, False))), "+nchw"
    wrapped = [replace(k, run=wrap(k.run), layout=layout, via=via) for k in sources]
    _CONVERTED[fam, layout] = native + wrapped
    return _CONVERTED[fam, layout]


# Public function names -> kernel family.
OPS = {}
for _d in (1, 2, 3):
    OPS[f"conv{_d}d"] = "conv"
    OPS[f"conv_transpose{_d}d"] = "conv"
    OPS[f"max_pool{_d}d"] = "max_pool"
    OPS[f"avg_pool{_d}d"] = "avg_pool"
    OPS[f"adaptive_avg_pool{_d}d"] = "adaptive_avg_pool"
    OPS[f"adaptive_max_pool{_d}d"] = "adaptive_max_pool"


def family(op):
    if not isinstance(op, str):
        raise TypeError(f"op must be an operation name such as 'conv2d', got {op!r}")
    if op in KERNELS:
        return op
    if op not in OPS:
        raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r}")
    return OPS[op]


def preload():
    """Build at import what a family's first call would (each layout's kernel list, the Winograd matrices):
    on a call's first, cache-cold run they took ~0.2 ms of it."""
    for fam in KERNELS:
        for layout in (CHANNELS_FIRST, CHANNELS_LAST):
            _for_layout(fam, layout)
    for m in (2, 4, 6):
        transforms(m)


def _built(kernel):
    """Whether the kernel can run in this process (its extension built; Numba's usable: _threads.numba_unusable)."""
    if kernel.backend == "numba":
        return _threads.numba_unusable is None
    return _cpp_backend.module is not None


def find(fam, algorithm, backend):
    """The first kernel of a family with this algorithm and backend (for its declared properties)."""
    return next(k for k in KERNELS[fam] if k.algorithm == algorithm and k.backend == backend)


def available_kernels(op, layout=None):
    """The (algorithm, backend) pairs that can be forced for ``op`` on this installation (in ``layout``)."""
    channels_last = layout is not None and normalize_layout(layout, None, "layout") == CHANNELS_LAST
    if op.startswith("conv_transpose"):   # (its zero-inserted input is channels-first in either layout)
        channels_last = False
    pairs = []
    for k in _for_layout(family(op), CHANNELS_LAST if channels_last else CHANNELS_FIRST):
        if _built(k) and (k.algorithm, k.backend) not in pairs:
            pairs.append((k.algorithm, k.backend))
    return pairs


def _check_choice(value, allowed, name, op):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(allowed)}, got {value!r}")
    if value not in allowed:
        raise ValueError(f"{name} for {op} must be one of {list(allowed)}, got {value!r}")


def _refusal(kernel, geometry, itemsize):
    """Why a kernel cannot run a call (None when it can): the geometry, or a workspace floor over the limit."""
    reason = kernel.supports(geometry)
    if reason is None and itemsize is not None:
        need = kernel.min_workspace(geometry, itemsize)
        if need > WORKSPACE_BYTES:
            reason = (f"needs at least {need} bytes of workspace, over the limit of {WORKSPACE_BYTES} bytes "
                      f"(CNNKERNELS_WORKSPACE_MB)")
    return reason


def candidates(op, algorithm, backend, geometry, layout=CHANNELS_FIRST, itemsize=None, variants=False):
    """The kernels a call may run: one when both are forced, several for the autotuner to choose from (a forced
    algorithm or backend leaves out the channels-first pooling calls' conversion to channels last, so forcing names
    the kernel that runs). itemsize (conv) enables the workspace check. variants: with the tile variants
    (the exhaustive mode's; a forced algorithm and backend then leaves the kernel and its variants)."""
    fam = family(op)
    _check_choice(algorithm, _ALGORITHMS[fam], "algorithm", op)
    _check_choice(backend, BACKENDS, "backend", op)
    if backend == "cpp" and _cpp_backend.module is None:
        raise BackendUnavailableError(f"backend='cpp' is unavailable: {_cpp_backend.missing_reason}")
    if backend == "numba" and _threads.numba_unusable is not None:
        raise BackendUnavailableError(f"backend='numba' is unavailable: {_threads.numba_unusable}")
    pool = [k for k in _for_layout(fam, layout) if _built(k) and (variants or not k.variant)]
    if algorithm != "auto" and backend == "auto":   # a forced algorithm runs in C++ where it exists there
        backends = {k.backend for k in pool if k.algorithm == algorithm}
        backend = "cpp" if "cpp" in backends else "numba"
    chosen = [k for k in pool if algorithm in ("auto", k.algorithm) and backend in ("auto", k.backend)]
    if algorithm != "auto" or backend != "auto":   # forced: the native kernel where there is one, not a conversion
        chosen = [k for k in chosen if k.via != "+nhwc"] or chosen
    supported = [k for k in chosen if _refusal(k, geometry, itemsize) is None]
    if algorithm == "auto":   # a forced algorithm is the user's call; auto respects the precision policy
        allowed = PRECISION_POLICIES[get_precision()]
        supported = [k for k in supported if k.accuracy in allowed]
    if not chosen and _threads.numba_unusable is not None and _cpp_backend.module is None:
        raise BackendUnavailableError(f"no backend can run here: the Numba kernels cannot ({_threads.numba_unusable})"
                                      f" and {_cpp_backend.missing_reason}")
    if not chosen:   # (pointwise: its kernels are channels-last only)
        names = {CHANNELS_FIRST: "channels-first", CHANNELS_LAST: "channels-last"}
        raise ValueError(f"{op}: algorithm={algorithm!r} has no {names[layout]} kernel, which this call runs on" +
                         (" (transposed convolutions run on channels-first kernels in either layout)"
                          if op.startswith("conv_transpose") else ""))
    if not supported:
        reasons = "; ".join(f"{k.name}: {_refusal(k, geometry, itemsize)}" for k in chosen)
        raise ValueError(f"{op}: algorithm={algorithm!r} does not support this geometry ({reasons})")
    return supported


def heuristic(fam, kernels, g):
    """The pick without timing (autotune off, and the tuner's first guess), from tuning runs on Zen 4 (see README):
    C++ when built; depthwise kernels for depthwise layers; Winograd F(4x4) for 3x3 stride-1 layers with
    16+ channels in and out per group (where the precision policy allows it); once each output sums 16+
    products, the implicit GEMM for 16+ output channels per group on maps of 64+ positions (measured faster
    than im2col on the stride-2, 7x7/11x11 stem, dilated and non-Winograd 3x3 layers), im2col + GEMM for
    1x1 stride-1 layers (x is its column matrix; channels last: the pointwise GEMM) and small maps; the direct
    kernel otherwise."""
    by_key = {}
    for k in kernels:
        by_key.setdefault((k.algorithm, k.backend), k)
    backend = "cpp" if any(k.backend == "cpp" for k in kernels) else "numba"
    order = ["direct"]
    if fam == "conv":
        Cg, Kg = g.C // g.groups, g.K // g.groups
        terms = Cg * g.kernel[0] * g.kernel[1] * g.kernel[2]
        npos = g.out[0] * g.out[1] * g.out[2]
        pointwise = g.kernel == (1, 1, 1) and g.stride == (1, 1, 1) and g.pad == (0, 0, 0)
        gemm = ["igemm", "im2col"] if Kg >= 16 and npos >= 64 and not pointwise else ["im2col", "igemm"]
        if g.groups == g.C and Cg == 1:
            order = ["depthwise", "direct"]
        elif _winograd_supports(g) is None and Cg >= 16 and Kg >= 16 and _phase_outputs_fill_tiles(g):
            order = ["winograd_f4", *gemm, "direct"]
        elif terms >= 16 and Kg >= 8 and npos >= 16:
            order = [*gemm, "direct"]
        if pointwise and g.groups == 1:
            order = ["pointwise", *order]   # channels last: one GEMM on x in place, no layout conversion
    for algorithm in order:
        for b in (backend, "numba"):
            if (algorithm, b) in by_key:
                return by_key[(algorithm, b)]
    return next((k for k in kernels if k.backend == backend), kernels[0])
