"""cnnkernels: fast CPU convolution and pooling kernels for NumPy (Numba and C++ backends).

The functional API mirrors ``torch.nn.functional``: ``from cnnkernels import functional as F``.
"""
from . import functional
from . import _autotune
from ._autotune import get_autotune, set_autotune
from ._explain import explain
from ._registry import BackendUnavailableError, available_kernels, get_precision, set_precision
from ._threads import get_num_threads, set_num_threads
from .functional import *  # noqa: F401,F403

__version__ = "0.1.0"


def info():
    """What this installation runs on: backends, the C++ build, threads."""
    from . import _cpp_backend
    report = {"version": __version__, "num_threads": get_num_threads(),
              "cpp": _cpp_backend.module.info() if _cpp_backend.module is not None else None}
    if _cpp_backend.module is None:
        report["cpp_missing_reason"] = _cpp_backend.missing_reason
    return report



# The machine fingerprint in every tuning-cache key reads /proc/cpuinfo (~0.2 ms), and the tuning cache file
# (~0.2 ms): both paid at import, like the C++ module's heap prewarm (_cpp_backend) and the settings and tables
# of _autotune.preload, rather than by the first kernel call of a tuned shape.
from ._tuning_cache import fingerprint as _fingerprint  # noqa: E402
_fingerprint()
_autotune.preload()
