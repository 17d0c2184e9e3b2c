"""bench/first_call.py's probes: each library's process times its import, first, steady and after-pause calls."""
import importlib.util
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import first_call  # noqa: E402

BENCH = os.path.dirname(first_call.__file__)


@pytest.mark.parametrize("library", ["cnnkernels", "torch"])
@pytest.mark.parametrize("layer", ["lenet_c1", "max_3x3s2_112"])   # a convolution and a pooling layer
def test_probe_times_every_stage(library, layer, tmp_path):
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    env = {**os.environ, "CNNKERNELS_CACHE_DIR": str(tmp_path)}
    got = first_call._run(first_call._probe(library, 1, bench=BENCH, suite="quick", name=layer, pause=0.01), env)
    assert set(got) == {"import_s", "first_s", "steady_s", "pause_s"}
    assert all(0 < t < 30 for t in got.values()), got
