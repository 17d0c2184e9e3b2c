"""Kernel and network benchmarks for CI performance tracking: `pytest bench --benchmark-only
--benchmark-json run.json`, then `python bench/compare.py baseline.json run.json`."""
import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import models
from cnnkernels import nn as cnn

from suites import DENSE, DEPTHWISE, POOLING

CONV = [c for c in DENSE + DEPTHWISE if c.name in ("resnet_3x3_28", "resnet_1x1_56", "resnet_3x3s2", "dw_3x3_14")]
POOL = [c for c in POOLING if c.name in ("max_3x3s2_112", "gap_2048_7")]


@pytest.mark.parametrize("case", CONV + POOL, ids=lambda c: c.name)
def test_layer(calibrated, case):
    x, w = case.inputs()
    case.run_ck(ck, x, w)      # tune outside the timed region
    calibrated.pedantic(case.run_ck, args=(ck, x, w), rounds=15, iterations=3, warmup_rounds=2)


@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_network(calibrated, name):
    builder, shape = models.MODELS[name]
    model = builder(cnn).prepare()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model(x)
    calibrated.pedantic(model, args=(x,), rounds=7, iterations=1, warmup_rounds=1)
