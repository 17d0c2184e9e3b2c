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


def freeze(weight):
    """A read-only copy of ``weight`` that the kernels trust: its prepared forms (Winograd-transformed, packed)
    are reused without re-reading the weights on every call, as for prepared ``cnnkernels.nn`` layers. Other
    weights, read-only ones included, are compared with their preparation's digest at each call (one read)."""
    from ._arrays import as_array
    from ._prepared import freeze as _freeze
    return _freeze(as_array(weight, "weight"))


def info():
    """What this installation runs on: backends, the C++ build, threads."""
    from . import _cpp_backend
    report = {"version": __version__, "num_threads": get_num_threads(),
              "cpp": _cpp_backend.module.info() if _cpp_backend.module is not None else None}
    if _cpp_backend.module is None:
        report["cpp_missing_reason"] = _cpp_backend.missing_reason
    return report



# What the first kernel call of a tuned shape would otherwise read (the machine fingerprint, the tuning cache
# file, the settings, the registry's tables): at import, like the C++ module's heap prewarm (_cpp_backend).
_autotune.preload()
