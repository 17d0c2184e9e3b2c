import os
import tempfile

# Tests tune into a private cache, never the user's (set before cnnkernels creates its cache).
os.environ["CNNKERNELS_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnkernels-test-cache-")

from hypothesis import HealthCheck, settings

# Numba compiles on first use (then caches), so the first example of a test can be slow.
settings.register_profile("default", deadline=None, max_examples=int(os.environ.get("CNNKERNELS_EXAMPLES", "25")),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")
