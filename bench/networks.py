"""End-to-end network timing: a cnnkernels.nn model (prepared: BatchNorm folded, ReLU fused) against the
same architecture in torch.nn with the same weights, in the same process."""
import numpy as np

import cnnkernels as ck
from cnnkernels import models
from cnnkernels import nn as cnn
from timing import interleaved_medians


def _randomise_batchnorm(torch, model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.8, 1.2)


def bench_network(name, threads, repeats, torch=None):
    builder, shape = models.MODELS[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model = builder(cnn)
    funcs = {}
    ref = None
    if torch is not None:
        torch.manual_seed(0)
        reference = builder(torch.nn).eval()
        _randomise_batchnorm(torch, reference)
        model.load_state_dict(reference.state_dict())
        tx = torch.from_numpy(x)

        def run_torch():
            with torch.no_grad():
                return reference(tx)
        ref = run_torch().numpy()
        funcs["torch"] = run_torch
    model.prepare()
    y = model(x)      # first call: tunes each new layer shape
    err = float(np.abs(y - ref).max() / np.abs(ref).max()) if ref is not None else None
    funcs["cnnkernels"] = lambda: model(x)
    times = interleaved_medians(funcs, repeats=repeats, min_time=0.2)
    return [{"layer": name, "shape": "x".join(map(str, shape)), "category": "network", "threads": threads,
             "dtype": "float32", "layout": "NCHW", "kernel": k, "ms": t * 1e3, "gflops": None, "gbps": None,
             "rel_err": err if k == "cnnkernels" else 0.0,
             "vs_torch": times["torch"] / t if "torch" in times else None} for k, t in times.items()]
