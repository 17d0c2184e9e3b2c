"""The C++ implicit-GEMM kernel at sizes where its fast paths engage (full 8-pixel x 32-channel tiles with the
transposing store, pixel and channel edge tiles, padded copy vs in-place input, channel-sliced workspace),
against the float64 reference; plus its weight cache and binding checks."""
import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import _cpp_backend, _registry

from . import naive
from .cases import assert_close

pytestmark = pytest.mark.skipif(_cpp_backend.module is None, reason="C++ backend not built")
CONV = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}

# (x shape, w shape, stride, pads as (before, after) per dim, dilation, groups)
LAYERS = {
    "alexnet_c1_small": ((1, 3, 64, 64), (64, 3, 11, 11), (4, 4), ((2, 2), (2, 2)), (1, 1), 1),
    "resnet_c1_small": ((1, 3, 40, 36), (64, 3, 7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1), 1),
    "3x3s2": ((1, 128, 28, 28), (128, 128, 3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 1),
    "dilated": ((1, 64, 14, 14), (64, 64, 3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2), 1),
    "7x7_map_49_pixels": ((1, 96, 7, 7), (64, 96, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    "partial_panel_groups": ((2, 20, 11, 9), (80, 10, 3, 2), (1, 2), ((0, 2), (1, 0)), (1, 1), 2),
    "plane_1kib_apart": ((1, 40, 14, 14), (24, 40, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    "in_place_1x1": ((1, 40, 12, 12), (72, 40, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    "in_place_strided_unpadded": ((1, 16, 19, 17), (32, 16, 3, 3), (2, 3), ((0, 0), (0, 0)), (1, 1), 1),
    # filters 2-8 KiB apart: packed a filter's run of weights at a time (a partial last panel, groups)
    "1x1_filters_2kib_apart": ((1, 512, 5, 5), (40, 512, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    "1x1_grouped_filters_2kib_apart": ((1, 1024, 3, 3), (96, 512, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 2),
    "1x1_filters_8kib_apart": ((1, 2048, 2, 3), (33, 2048, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    "conv1d": ((2, 24, 50), (40, 24, 5), (2,), ((3, 1),), (2,), 1),
    "conv3d": ((1, 8, 6, 7, 9), (33, 8, 2, 3, 3), (1, 2, 1), ((1, 0), (1, 1), (0, 2)), (1, 1, 2), 1),
}


def _case(name, dtype, seed=0):
    xs, ws, stride, pads, dilation, groups = LAYERS[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    return x, w, b, stride, pads, dilation, groups


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("activation", [None, "relu"])
def test_igemm_layers_match_reference(name, dtype, activation):
    x, w, b, stride, pads, dilation, groups = _case(name, dtype)
    nd = x.ndim - 2
    got = CONV[nd](x, w, b, stride, pads, dilation, groups, algorithm="igemm", backend="cpp", activation=activation)
    ref = naive.conv(x, w, b, stride, pads, dilation, groups)
    if activation == "relu":
        ref = np.maximum(ref, 0)
    assert_close(got, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("workspace", [1, 7 * 30 * 30 * 8, 10**9])
def test_igemm_sliced_workspace_accumulates_exactly(dtype, workspace):
    """workspace_bytes 1: one channel plane per slice (bias on the first slice, clamp on the last, partial sums
    through y); a few planes: several channel slices; large: several (image, group) units per slab."""
    rng = np.random.default_rng(1)
    groups = 2
    x = rng.standard_normal((3, 14, 28, 28)).astype(dtype)
    w = rng.standard_normal((64, 7, 3, 3)).astype(dtype)
    b = rng.standard_normal(64).astype(dtype)
    stride, pad, dil = (1, 2, 2), (0, 1, 1), (1, 1, 1)
    x5, w5 = x[:, :, None], w[:, :, None]
    y = np.full((3, 64, 1, 14, 14), np.nan, dtype)
    mod = _cpp_backend.module
    packed = np.empty(mod.igemm_weights_shape(w5, groups), dtype)
    mod.igemm_pack_weights(w5, packed, groups)
    mod.igemm_conv(x5, w5, packed, b, y, stride, pad, dil, groups, 2, workspace, 0.0, 1.5)
    ref = np.clip(naive.conv(x, w, b, stride[1:], ((1, 1), (1, 1)), dil[1:], groups), 0.0, 1.5)
    assert_close(y[:, :, 0], ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_igemm_reduction_chunks_inside_workspace_slices(dtype):
    """160 channels 3x3 in slices of 130 and 30 planes: each slice's reduction is split into chunks (at most
    1152 products, 128 channels, and the kernel's chunk bytes: 28 channels for the AVX2 tile), the tiles'
    running sums carried between chunks and through y between slices."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 160, 10, 10)).astype(dtype)
    w = rng.standard_normal((24, 160, 3, 3)).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    x5, w5 = x[:, :, None], w[:, :, None]
    y = np.full((1, 24, 1, 10, 10), np.nan, dtype)
    mod = _cpp_backend.module
    packed = np.empty(mod.igemm_weights_shape(w5, 1), dtype)
    mod.igemm_pack_weights(w5, packed, 1)
    plane_bytes = 12 * 12 * np.dtype(dtype).itemsize
    mod.igemm_conv(x5, w5, packed, b, y, (1, 1, 1), (0, 1, 1), (1, 1, 1), 1, 1, 130 * plane_bytes, -0.5, 2.0)
    sums = naive.conv(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    # Rounding scales with the sums before the clamp (|sums| up to ~30), not with the clamped output.
    assert_close(y[:, :, 0], np.clip(sums, -0.5, 2.0), dtype, terms=4 * np.abs(sums).max())


def test_igemm_threads_give_identical_results():
    """Every output sums its products in the same order whatever the split."""
    x, w, b, stride, pads, dilation, groups = _case("3x3s2", np.float32)
    old = ck.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            ck.set_num_threads(threads)
            outs.append(ck.conv2d(x, w, b, stride, pads, dilation, groups, algorithm="igemm", backend="cpp"))
    finally:
        ck.set_num_threads(old)
    assert np.array_equal(outs[0], outs[1])


def test_igemm_nan_propagates_to_its_window_only_and_through_relu():
    x, w, b, stride, pads, dilation, groups = _case("7x7_map_49_pixels", np.float32)
    x[0, 5, 3, 3] = np.nan
    got = ck.conv2d(x, w, b, stride, pads, dilation, groups, algorithm="igemm", backend="cpp", activation="relu")
    ref = np.maximum(naive.conv(x, w, b, stride, pads, dilation, groups), 0)
    assert np.isnan(got[0, :, 2:5, 2:5]).all()
    assert_close(got, ref, np.float32)


def test_igemm_weight_cache_sees_in_place_edits():
    x, w, b, stride, pads, dilation, groups = _case("3x3s2", np.float32)
    first = ck.conv2d(x, w, b, stride, pads, dilation, groups, algorithm="igemm", backend="cpp")
    w *= -1
    second = ck.conv2d(x, w, None, stride, pads, dilation, groups, algorithm="igemm", backend="cpp")
    assert_close(second, naive.conv(x, w, None, stride, pads, dilation, groups), np.float32)
    assert not np.allclose(first, second)


def test_igemm_binding_rejects_bad_packed_weights():
    mod = _cpp_backend.module
    x = np.zeros((1, 4, 1, 8, 8), np.float32)
    w = np.zeros((8, 4, 1, 3, 3), np.float32)
    y = np.zeros((1, 8, 1, 6, 6), np.float32)
    shape = mod.igemm_weights_shape(w, 1)
    assert shape[0] == 1 and shape[2] == 36 and shape[3] in (8, 16, 32) and shape[1] == -(-8 // shape[3])
    good = np.zeros(shape, np.float32)
    args = ((1, 1, 1), (0, 0, 0), (1, 1, 1), 1, 1, 1 << 20)
    with pytest.raises(ValueError, match="packed must have shape"):
        mod.igemm_conv(x, w, good[:, :, :-1], None, y, *args)
    with pytest.raises(TypeError, match="packed must have the same dtype"):
        mod.igemm_conv(x, w, good.astype(np.float64), None, y, *args)
    with pytest.raises(ValueError, match="must be divisible by groups"):
        mod.igemm_weights_shape(w, 3)
    with pytest.raises(ValueError, match="y must not share memory with packed"):
        buf = np.zeros(good.size + y.size, np.float32)
        mod.igemm_conv(x, w, buf[: good.size].reshape(shape), None, buf[good.size - 1: -1].reshape(y.shape), *args)
    mod.igemm_conv(x, w, good, None, y, *args)   # the valid call runs
    assert not y.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_igemm_packed_weights_are_each_panels_filters_transposed(dtype):
    """packed[g, p, r, j] = filter p * NR + j of group g at reduction index r (zero past the group's filters),
    for reductions that are and are not whole 16-weight runs (the AVX-512 packer's blocks), partial panels and
    groups."""
    mod = _cpp_backend.module
    rng = np.random.default_rng(5)
    for K, Cg, taps, groups in [(32, 16, (1, 1), 1), (33, 1, (1, 1), 1), (5, 3, (3, 3), 1), (70, 3, (7, 7), 2),
                                (64, 17, (1, 1), 2), (40, 256, (3, 3), 1), (8, 1024, (1, 1), 1)]:
        w = rng.standard_normal((K, Cg, 1) + taps).astype(dtype)
        packed = np.full(mod.igemm_weights_shape(w, groups), np.nan, dtype)
        mod.igemm_pack_weights(w, packed, groups)
        _, panels, R, NR = packed.shape
        Kg = K // groups
        ref = np.zeros(packed.shape, dtype)
        for g in range(groups):
            for p in range(panels):
                block = w[g * Kg + p * NR: g * Kg + min((p + 1) * NR, Kg)].reshape(-1, R)
                ref[g, p, :, :block.shape[0]] = block.T
        assert np.array_equal(packed, ref), (K, Cg, taps, groups)


def test_igemm_is_registered_exact():
    assert ("igemm", "cpp") in ck.available_kernels("conv2d")
    assert _registry.find("conv", "igemm", "cpp").accuracy == "exact"


def test_igemm_long_reductions_are_summed_in_blocks():
    """18432 products per output: one serial float32 sum measured 3.9e-6 x max output; the blocked sum
    (partial sums restarted every 1152 products or fewer, as im2col's kc-blocked GEMM) stays below 1e-6."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2048, 7, 7)).astype(np.float32)
    w = rng.standard_normal((64, 2048, 3, 3)).astype(np.float32)
    got = ck.conv2d(x, w, None, 1, 1, algorithm="igemm", backend="cpp")
    ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()


def test_heuristic_prefers_igemm_on_strided_stems_and_im2col_on_pointwise():
    from cnnkernels._geometry import ConvGeometry
    stem = ConvGeometry(1, 3, 64, 1, (1, 224, 224), (1, 55, 55), (1, 11, 11), (1, 4, 4), (0, 2, 2), (1, 1, 1))
    pointwise = ConvGeometry(1, 64, 256, 1, (1, 56, 56), (1, 56, 56), (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1))
    for g, want in ((stem, "igemm"), (pointwise, "im2col")):
        kernels = _registry.candidates("conv2d", "auto", "auto", g)
        assert _registry.heuristic("conv", kernels, g).algorithm == want


def test_heuristic_runs_channels_last_pointwise_natively():
    from cnnkernels._geometry import ConvGeometry
    pointwise = ConvGeometry(1, 64, 256, 1, (1, 56, 56), (1, 56, 56), (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1))
    kernels = _registry.candidates("conv2d", "auto", "auto", pointwise, _registry.CHANNELS_LAST, 4)
    pick = _registry.heuristic("conv", kernels, pointwise)
    assert pick.algorithm == "pointwise" and pick.via == ""
    assert pick.backend == ("cpp" if ck.info()["cpp"] is not None else "numba")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_igemm_private_slabs(dtype):
    """With fewer images x groups than threads every thread reads all of the padded slab, and a slab of up to
    2 MiB that fits the workspace twice is then padded by each thread into its own copy: results equal one
    thread's bit for bit at 2 and 3 threads, and match the reference, for one image (private copies), two
    images (shared at 2 threads: each thread pads the image it reads; private at 3) and a slab over 2 MiB
    (shared); the workspace the binding reports counts the copies."""
    rng = np.random.default_rng(7)
    mod = _cpp_backend.module
    itemsize = np.dtype(dtype).itemsize
    cases = [((1, 24, 20, 18), (40, 24, 3, 3)), ((2, 24, 20, 18), (40, 24, 3, 3)),
             ((1, 24, 130, 130 if itemsize == 4 else 70), (8, 24, 3, 3))]
    for xs, ws in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        ref = naive.conv(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        plane = (xs[2] + 2) * (xs[3] + 2)
        plane += 64 // itemsize if plane * itemsize % 1024 == 0 else 0   # (a line of slack, see make_plan)
        slab = xs[0] * xs[1] * plane * itemsize
        outs = []
        old = ck.get_num_threads()
        try:
            for threads in (1, 2, 3):
                ck.set_num_threads(threads)
                outs.append(ck.conv2d(x, w, b, 1, 1, algorithm="igemm", backend="cpp"))
                reported = mod.conv_workspace_bytes("igemm", xs[0], xs[1], ws[0], 1, (1,) + xs[2:], (1,) + xs[2:],
                                                    (1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), itemsize, threads,
                                                    64 << 20)
                private = xs[0] < threads and slab <= 2 << 20
                assert reported == slab * (threads if private else 1), (xs, threads)
        finally:
            ck.set_num_threads(old)
        assert_close(outs[0], ref, dtype)
        assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
