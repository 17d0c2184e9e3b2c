import os
import tempfile

import pytest

# Tests tune into a private cache, never the user's (set before cnnkernels creates its cache).
os.environ["CNNKERNELS_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnkernels-test-cache-")

from hypothesis import HealthCheck, settings

# Numba compiles on first use (then caches), so the first example of a test can be slow.
settings.register_profile("default", deadline=None, max_examples=int(os.environ.get("CNNKERNELS_EXAMPLES", "25")),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")


@pytest.fixture
def only_candidate(monkeypatch):
    """only_candidate(name): calls from here on run the candidate called `name` alone (no tuning between
    candidates; tile variants included), with the functional API's memo of earlier picks set aside."""
    from cnnkernels import _registry, functional
    candidates = _registry.candidates

    def only(name):
        monkeypatch.setattr(_registry, "candidates",
                            lambda *a, **k: [c for c in candidates(*a, **{**k, "variants": True}) if c.name == name])
        monkeypatch.setattr(functional, "_PLANS", {})
        monkeypatch.setattr(functional, "_POOL_PLANS", {})
    return only


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty tuning cache in tmp_path for the test."""
    from cnnkernels import _autotune
    monkeypatch.setenv("CNNKERNELS_CACHE_DIR", str(tmp_path))
    # This process's picks persist even on a busy machine (other tests run beside these ones);
    # test_busy_machine_pick_is_provisional covers the busy case.
    monkeypatch.setattr(_autotune, "_contended", lambda: False)
    _autotune.reset_cache()
    yield tmp_path
    _autotune.reset_cache()
