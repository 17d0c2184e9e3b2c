"""Layers and model builders: PyTorch's shapes, init, state_dict keys, BatchNorm folding and ReLU fusion."""
import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import models
from cnnkernels import nn

from . import naive
from .cases import assert_close


@pytest.fixture
def heuristic_dispatch():
    """Model tests meet many new shapes: skip timing them (the choice does not change results)."""
    before = ck.get_autotune()
    ck.set_autotune("off")
    yield
    ck.set_autotune(before)


def test_conv_layer_matches_functional_and_init_bounds():
    layer = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    assert layer.weight.shape == (6, 2, 3, 3) and layer.bias.shape == (6,)
    assert np.abs(layer.weight).max() <= 1 / np.sqrt(2 * 9)          # PyTorch's U(+-1/sqrt(fan_in))
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 9)).astype(np.float32)
    ref = naive.conv(x, layer.weight, layer.bias, (2, 2), ((1, 1), (1, 1)), (1, 1), 2)
    assert_close(layer(x), ref, np.float32)
    assert set(layer.state_dict()) == {"weight", "bias"}
    assert set(nn.Conv2d(4, 6, 3, bias=False).state_dict()) == {"weight"}


def test_prepare_folds_batchnorm_and_fuses_relu():
    rng = np.random.default_rng(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 4, 1), nn.ReLU6(), nn.Flatten(), nn.Linear(4 * 16, 5))
    bn = model[1]
    bn.weight, bn.bias = rng.uniform(0.5, 1.5, 8).astype(np.float32), rng.uniform(-1, 1, 8).astype(np.float32)
    bn.running_mean, bn.running_var = rng.uniform(-1, 1, 8).astype(np.float32), rng.uniform(0.5, 2, 8).astype(np.float32)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    before = model(x)
    model.prepare()
    assert isinstance(model[1], nn.Identity) and isinstance(model[2], nn.Identity) and isinstance(model[5], nn.Identity)
    assert model[0].activation == "relu" and model[4].activation == "relu6"
    assert_close(model(x), before, np.float32, 1e-5)


def test_load_state_dict_checks_keys_and_shapes():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    state = {k: np.ones_like(v) for k, v in model.state_dict().items()}
    assert sorted(state) == ["0.bias", "0.weight", "1.bias", "1.running_mean", "1.running_var", "1.weight"]
    model.load_state_dict(dict(state, **{"1.num_batches_tracked": np.array(3)}))
    assert (model[0].weight == 1).all()
    with pytest.raises(KeyError, match="missing keys"):
        model.load_state_dict({k: v for k, v in state.items() if k != "0.bias"})
    with pytest.raises(ValueError, match="0.weight has shape"):
        model.load_state_dict(dict(state, **{"0.weight": np.ones((4, 3, 5, 5))}))


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "mobilenet_v2", "alexnet"])
def test_models_match_torch_with_the_same_weights(name, heuristic_dispatch):
    torch = pytest.importorskip("torch")
    builder, shape = models.MODELS[name]
    if name != "lenet5":
        shape = (1, 3, 96, 96) if name != "alexnet" else (1, 3, 127, 127)   # small inputs keep the test fast
    torch.manual_seed(0)
    reference = builder(torch.nn).eval()
    for m in reference.modules():          # non-trivial BatchNorm statistics, so folding is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    model = builder(nn)
    model.load_state_dict(reference.state_dict())
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        ref = reference(torch.from_numpy(x)).numpy()
    assert_close(model(x), ref, np.float32, 1e-4)
    assert_close(model.prepare()(x), ref, np.float32, 1e-4)
    assert_close(model.prepare()(x), ref, np.float32, 1e-4)     # prepare() again changes nothing


def test_from_torch_copies_a_sequential():
    torch = pytest.importorskip("torch")
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 3)).eval()
    model = nn.from_torch(seq)
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = seq(torch.from_numpy(x)).numpy()
    assert_close(model(x), ref, np.float32)
    with pytest.raises(TypeError, match="GELU is not supported"):
        nn.from_torch(torch.nn.GELU())


def test_from_torch_batchnorm_without_affine_or_running_stats():
    torch = pytest.importorskip("torch")
    bn = torch.nn.BatchNorm2d(3, affine=False).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    x = np.random.default_rng(7).standard_normal((1, 3, 4, 4)).astype(np.float32)
    with torch.no_grad():
        assert_close(nn.from_torch(bn)(x), bn(torch.from_numpy(x)).numpy(), np.float32)
    with pytest.raises(TypeError, match="track_running_stats=False"):
        nn.from_torch(torch.nn.BatchNorm2d(3, track_running_stats=False))


def test_max_pool_and_linear_follow_torch_at_the_edges():
    """MaxPool's positional arguments in PyTorch's order (return_indices before ceil_mode), its indices kept by
    from_torch; Linear on no rows or no features; wrong inputs refused by name."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).standard_normal((1, 2, 7, 7)).astype(np.float32)
    for args in ((3, 2, 1, 1, False, True), (2, None, 0, 1, True)):
        theirs = torch.nn.MaxPool2d(*args)
        for ours in (nn.MaxPool2d(*args), nn.from_torch(theirs)):
            got, ref = ours(x), theirs(torch.from_numpy(x))
            if args[4]:
                assert np.array_equal(got[0], ref[0].numpy()) and np.array_equal(got[1], ref[1].numpy())
            else:
                assert np.array_equal(got, ref.numpy())
    with pytest.raises(TypeError, match="at most 6 positional"):
        nn.MaxPool2d(3, 2, 1, 1, False, True, 0)
    layer = nn.Linear(16, 7)
    assert layer(np.zeros((0, 16), np.float32)).shape == (0, 7)
    assert np.array_equal(nn.Linear(0, 3)(np.zeros((2, 0), np.float32)), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="in_features=16"):
        layer(np.zeros((3, 5), np.float32))


def test_relu_inplace_overwrites_its_input_as_torch():
    x = np.array([-1.0, np.nan, 2.0], np.float32)
    y = nn.ReLU(inplace=True)(x)
    assert y is x and np.array_equal(x, [0.0, np.nan, 2.0], equal_nan=True)
    z = np.array([-1.0, 7.0], np.float32)
    assert np.array_equal(nn.ReLU6(inplace=True)(z), [0.0, 6.0]) and z[1] == 6.0
    kept = np.array([-1.0, 1.0], np.float32)
    nn.ReLU()(kept)
    assert kept[0] == -1.0


def test_prepared_conv_freezes_its_weights_and_follows_new_ones():
    """After prepare() a conv's parameters become read-only (so the Winograd weight cache may trust them);
    load_state_dict brings new arrays, which the next call uses."""
    rng = np.random.default_rng(3)
    conv = nn.Conv2d(16, 16, 3, padding=1)
    x = rng.standard_normal((1, 16, 10, 10)).astype(np.float32)
    conv.prepare()
    first = conv(x)
    assert not conv.weight.flags.writeable and not conv.bias.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        conv.weight[0] = 0
    with pytest.raises(ValueError):      # (a view of the layer's own read-only array)
        conv.weight.flags.writeable = True
    assert ck._prepared.is_frozen(conv.weight)
    state = {"weight": conv.weight * 2, "bias": conv.bias * 2}
    conv.load_state_dict(state)
    np.testing.assert_allclose(conv(x), 2 * first, rtol=1e-4, atol=1e-4)
    assert not conv.weight.flags.writeable


def test_prepared_conv_weights_assigned_from_outside_are_copied_when_frozen():
    """A prepared layer freezes its own arrays as they are, but an array (or tensor, or list) assigned from
    outside as a copy: its caller may hold it, or a view of it, writeable, and an edit there must not leave
    the layer on stale prepared weights; the layer computes with what layer.weight shows."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    mine = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    flat = mine.reshape(-1)            # a writeable view made before the layer sees the array
    conv = nn.Conv2d(16, 16, 3, padding=1)
    conv.weight = mine
    conv.prepare()
    conv(x)
    flat *= 2                          # the caller edits its own array: the layer keeps its copy
    ref = naive.conv(x, conv.weight, conv.bias, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert_close(conv(x), ref, np.float32, 1e-4)
    assert not np.shares_memory(conv.weight, mine) and mine.flags.writeable
    for new, dtype in ((rng.standard_normal((16, 16, 3, 3)).tolist(), np.float64),   # (a list: float64, as F's)
                       (rng.standard_normal((16, 16, 3, 3)).astype(np.float32), np.float32)):
        conv.weight = new              # assigned after prepare(), before the next call: used
        ref = naive.conv(x, np.asarray(new), conv.bias, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        assert_close(conv(x), ref, dtype, 1e-4)
    # the layer's own arrays (initialised, folded, loaded) are frozen without a copy
    own = nn.Conv2d(16, 16, 3, padding=1).prepare()
    before = own.weight
    own(x)
    assert np.shares_memory(own.weight, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, 1 << 17])          # one thread / threads sharing the range
def test_add_relu_matches_numpy(dtype, size):
    rng = np.random.default_rng(4)
    out = rng.standard_normal(size).astype(dtype)
    out[3] = np.nan
    res = rng.standard_normal(size).astype(dtype)
    expect = np.maximum(out + res, 0)
    got = nn.add_relu_(out, res)
    assert got is out and np.array_equal(got, expect, equal_nan=True)
    strided = rng.standard_normal(2 * size).astype(dtype)[::2]          # numpy fallback path
    base = strided.copy()
    nn.add_relu_(strided, res)
    assert np.array_equal(strided, np.maximum(base + res, 0))


@pytest.mark.skipif(ck.info()["cpp"] is None, reason="C++ extension not built")
def test_add_clamp_binding_checks_its_buffers():
    from cnnkernels import _cpp_backend
    m = _cpp_backend.module
    y = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        m.add_clamp_(y, np.zeros((3, 2), np.float32), 0.0, np.inf, 1)
    with pytest.raises(TypeError, match="same dtype"):
        m.add_clamp_(y, np.zeros((2, 3)), 0.0, np.inf, 1)
    buf = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="share memory"):
        m.add_clamp_(buf[:6].reshape(2, 3), buf[1:7].reshape(2, 3), 0.0, np.inf, 1)
    with pytest.raises(ValueError, match="act_min <= act_max"):
        m.add_clamp_(y, y.copy(), 1.0, 0.0, 1)
    with pytest.raises(ValueError, match="writeable"):
        ro = np.zeros((2, 3), np.float32)
        ro.flags.writeable = False
        m.add_clamp_(ro, y, 0.0, np.inf, 1)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        m.add_clamp_([1.0], y, 0.0, np.inf, 1)
