"""The benchmark's onnxruntime peer builds the same layer as the suite describes (when onnx and onnxruntime
are installed): its results equal ours."""
import os
import sys

import numpy as np
import pytest

import cnnkernels as ck

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import ort  # noqa: E402
from suites import ConvLayer, PoolLayer  # noqa: E402


@pytest.mark.parametrize("case", [
    ConvLayer("conv", 6, 8, 13, 11, 3, stride=2, padding=1, dilation=1, groups=2),
    ConvLayer("dilated", 4, 4, 12, 12, 3, padding=2, dilation=2),
    ConvLayer("depthwise", 8, 8, 9, 9, 5, padding=2, groups=8),
    PoolLayer("max", "max", 3, 11, 11, 3, 2, 1),
    PoolLayer("avg", "avg", 3, 11, 11, 3, 1, 1, count_include_pad=False),
    PoolLayer("global", "global", 5, 7, 7),
], ids=lambda c: c.name)
def test_onnxruntime_layer_matches_ours(case):
    x, w = case.inputs()
    got = ort.session(case, x, w, threads=1)()
    np.testing.assert_allclose(got, case.run_ck(ck, x, w), rtol=1e-4, atol=1e-4)


def test_channels_last_rows_have_no_onnxruntime_peer():
    from dataclasses import replace
    case = replace(ConvLayer("c", 4, 4, 8, 8, 3, padding=1), layout="NHWC")
    x, w = case.inputs()
    assert ort.session(case, x, w, threads=1) is None
