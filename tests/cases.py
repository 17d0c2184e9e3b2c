"""Hypothesis strategies for random convolution and pooling geometry, shared by the kernel and oracle tests."""
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from . import naive


def _padding(draw, nd, kernel, dilation, stride, allow_strings=True):
    """Padding in every accepted form; returns (argument, per-dim (before, after) pairs)."""
    modes = ["int", "tuple", "pairs"] + (["valid"] + (["same"] if all(s == 1 for s in stride) else [])
                                         if allow_strings else [])
    mode = draw(st.sampled_from(modes))
    if mode == "int":
        p = draw(st.integers(0, 2))
        return p, ((p, p),) * nd
    if mode == "tuple":
        ps = tuple(draw(st.integers(0, 2)) for _ in range(nd))
        return ps, tuple((p, p) for p in ps)
    if mode == "pairs":
        pairs = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
        return pairs, pairs
    if mode == "valid":
        return "valid", ((0, 0),) * nd
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return "same", tuple((t // 2, t - t // 2) for t in total)


@st.composite
def conv_case(draw, nd, transposed=False, winograd=False, depthwise=False, wide=False):
    """Random conv geometry; winograd=True draws what Winograd supports: 2-D 3x3, stride 1, dilation 1-3;
    depthwise=True draws groups == channels (multiplier 1-3); wide=True draws up to 40 channels per group and
    larger maps (where the tile variants split their reductions and tile blocks)."""
    groups = draw(st.sampled_from([1, 2, 3, 5])) if depthwise else draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = depthwise or (draw(st.booleans()) and groups > 1)
    Cg = 1 if depthwise else draw(st.integers(1, 40 if wide else 3))
    Kg = draw(st.integers(1, 40 if wide else 3))
    kmax = 3 if nd == 3 else 4
    kernel = tuple(draw(st.integers(1, kmax)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    smax = 6 if nd == 3 else (30 if wide else 11)
    if winograd:   # dilated calls run as dilation-1 calls on the input's phases
        kernel, stride, smax = (3,) * nd, (1,) * nd, (40 if wide else 23)
        dilation = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(nd))
    spatial = tuple(draw(st.integers(1, smax)) for _ in range(nd))
    N = draw(st.sampled_from([1, 1, 2, 0]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    case = dict(nd=nd, groups=groups, kernel=kernel, stride=stride, dilation=dilation, dtype=dtype,
                bias=draw(st.booleans()), unbatched=draw(st.booleans()) and N == 1)
    if transposed:
        pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
        symmetric = draw(st.booleans())
        if symmetric:
            pads = tuple((a, a) for a, _ in pads)
        outpad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        out = [(i - 1) * s - a - b + d * (k - 1) + o + 1
               for i, s, (a, b), d, k, o in zip(spatial, stride, pads, dilation, kernel, outpad)]
        assume(all(o > 0 for o in out))
        case.update(padding=tuple(a for a, _ in pads) if symmetric else pads, pads=pads, output_padding=outpad,
                    x_shape=(N, Cg * groups) + spatial, w_shape=(Cg * groups, Kg) + kernel)
    else:
        arg, pads = _padding(draw, nd, kernel, dilation, stride)
        out = [(i + a + b - d * (k - 1) - 1) // s + 1 for i, (a, b), d, k, s in zip(spatial, pads, dilation, kernel, stride)]
        assume(all(o > 0 for o in out))
        case.update(padding=arg, pads=pads, x_shape=(N, Cg * groups) + spatial, w_shape=(Kg * groups, Cg) + kernel)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    case["x"] = rng.standard_normal(case["x_shape"]).astype(dtype)
    case["w"] = rng.standard_normal(case["w_shape"]).astype(dtype)
    K = case["w_shape"][1] * groups if transposed else case["w_shape"][0]
    case["b"] = rng.standard_normal(K).astype(dtype) if case["bias"] else None
    return case


@st.composite
def pool_case(draw, nd, kind):
    kernel = tuple(draw(st.integers(1, 3 if nd == 3 else 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if kind == "max" else (1,) * nd
    pads = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in kernel)
    symmetric = draw(st.booleans())
    if symmetric:
        pads = tuple((a, a) for a, _ in pads)
    ceil_mode = draw(st.booleans())
    smax = 6 if nd == 3 else 12
    spatial = tuple(draw(st.integers(1, smax)) for _ in range(nd))
    from .naive import pool_out
    out = [pool_out(i, k, s, d, a, b, ceil_mode) for i, k, s, d, (a, b) in zip(spatial, kernel, stride, dilation, pads)]
    assume(all(o > 0 for o in out))
    N = draw(st.sampled_from([1, 2, 0]))
    C = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal((N, C) + spatial).astype(dtype)
    if kind == "max" and draw(st.booleans()):
        x[rng.random(x.shape) < 0.1] = np.nan
    if kind == "max" and draw(st.booleans()):   # ties: the first maximum must be reported
        x = np.round(x).astype(dtype)
    return dict(nd=nd, x=x, kernel=kernel, stride=stride, dilation=dilation, pads=pads,
                padding=tuple(a for a, _ in pads) if symmetric else pads, ceil_mode=ceil_mode,
                count_include_pad=draw(st.booleans()),
                divisor_override=draw(st.sampled_from([None, None, 3, -2])) if nd > 1 else None,
                unbatched=draw(st.booleans()) and N == 1, dtype=dtype)


def conv_terms(case, algorithm):
    """The largest sum of |terms| over a conv_case's outputs (see assert_close). A Winograd tile mixes every
    input of the tile with every weight of the filter before its output transform cancels them, so there the
    terms are those of the whole filter on the largest input."""
    b = None if case["b"] is None else np.abs(case["b"])
    mag = naive.conv(np.abs(case["x"]), np.abs(case["w"]), b, case["stride"], case["pads"], case["dilation"],
                     case["groups"])
    terms = float(mag.max(initial=0.0))
    if algorithm.startswith("winograd") or algorithm == "auto":
        w = np.abs(case["w"]).reshape(case["w"].shape[0], -1).sum(axis=1)
        terms = max(terms, float(np.abs(case["x"]).max(initial=0.0) * w.max(initial=0.0)))
    return terms


def assert_close(got, ref, dtype, rtol32=1e-5, terms=None):
    """Max abs error <= rtol32 x max abs output for float32 (1e-12 for float64); NaNs must match.

    terms: optional max over outputs of the sum of |terms| each output adds up. Rounding error grows with
    the terms, not with the result, so when a tiny random case cancels to an output far below its terms
    the scale is floored at a quarter of that (random standard-normal cases never reach the floor).
    """
    got = np.asarray(got)
    ref = np.asarray(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert got.dtype == dtype, (got.dtype, dtype)
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(got), nan), "NaN positions differ"
    if ref.size == 0 or nan.all():
        return
    finite = ~nan
    scale = max(np.abs(ref[finite][np.isfinite(ref[finite])]).max(initial=0.0), 1e-30)
    if terms is not None and np.isfinite(terms):
        scale = max(scale, terms / 4)
    same_inf = np.isinf(ref[finite])
    assert np.array_equal(got[finite][same_inf], ref[finite][same_inf]), "infinities differ"
    err = np.abs(got[finite][~same_inf].astype(np.float64) - ref[finite][~same_inf]).max(initial=0.0)
    rtol = rtol32 if dtype == np.float32 else 1e-12
    assert err <= rtol * scale, f"max abs error {err:.3g} > {rtol:g} x max abs output {scale:.3g}"
