"""One thread count for every backend: Numba's pool, the C++ kernels' pool and the BLAS that Numba's np.dot calls."""
import ctypes
import os
import threading

from ._geometry import _is_int

_lock = threading.Lock()
_num_threads = None
_blas_setters = None
# Why Numba's kernels cannot run in this process, or None: set in a child forked after Numba's GNU OpenMP pool
# started, where any parallel kernel would end the child ("Terminating: fork() called from a process already
# using GNU OpenMP, this is unsafe"), so a forked worker that tuned a new shape was killed.
numba_unusable = None


def _after_fork_in_child():
    global numba_unusable
    import sys
    numba = sys.modules.get("numba")
    if numba is None or numba_unusable is not None:
        return
    try:
        layer = numba.threading_layer()
    except ValueError:   # no parallel kernel ran before the fork: the child starts its own pool
        return
    omppool = sys.modules.get("numba.np.ufunc.omppool")
    if layer == "omp" and getattr(omppool, "openmp_vendor", "GNU") == "GNU":
        numba_unusable = ("this process was forked after Numba's GNU OpenMP threads had started, and GNU OpenMP "
                          "ends a forked child that uses it; use backend='cpp', the 'spawn' or 'forkserver' start "
                          "method, or NUMBA_THREADING_LAYER=workqueue or tbb")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _default_threads():
    for var in ("CNNKERNELS_NUM_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var, "").split(",")[0].strip()
        if raw:
            try:
                n = int(raw)
            except ValueError:
                raise ValueError(f"environment variable {var} must be a positive int, got {raw!r}") from None
            if n < 1:
                raise ValueError(f"environment variable {var} must be a positive int, got {n}")
            return n
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def get_num_threads():
    """Threads the kernels use (default: CNNKERNELS_NUM_THREADS, else OMP_NUM_THREADS, else all usable cores)."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(n):
    """Set the threads used by both backends."""
    global _num_threads
    if not _is_int(n):
        raise TypeError(f"set_num_threads: n must be an int, got {n!r} ({type(n).__name__})")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n}")
    _num_threads = int(n)


def cpp_threads(limit):
    """Threads for a C++ kernel call: the thread count, at most `limit` (what the bindings accept). (The C++
    kernels' pool is fork-safe: a forked child starts its own workers.)"""
    return min(get_num_threads(), limit)


_numba_started = False


def _start_numba_pool():
    """Start Numba's thread pool without leaving the process's OpenMP default changed.

    Numba's OpenMP layer sets the calling thread's OpenMP thread count when its pool starts;
    libraries sharing that OpenMP runtime (PyTorch loads the same libgomp.so.1) would then run
    with more threads than their users asked for. Put the old value back.
    """
    global _numba_started
    from numba.np.ufunc import parallel
    try:
        gomp = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD)
        before = gomp.omp_get_max_threads()
    except (OSError, AttributeError):
        gomp = None
    parallel._launch_threads()
    if gomp is not None and gomp.omp_get_max_threads() != before:
        gomp.omp_set_num_threads(before)
    _numba_started = True


def numba_threads():
    """Apply the thread count to Numba's pool (thread-local there, so call it before each parallel kernel)."""
    import numba
    if not _numba_started:
        with _lock:
            if not _numba_started:
                _start_numba_pool()
    n = min(get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n


def _find_blas_setters(load_scipy=True):
    """``*openblas_set_num_threads*`` of each OpenBLAS loaded in this process (numpy's and, with load_scipy,
    scipy's copies)."""
    if load_scipy:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the copy Numba's np.dot calls)
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "openblas" in path.lower() and ".so" in path:
                    libs.add(path)
    except OSError:
        return []
    setters = []
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_"):
                set_n = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                get_n = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                if set_n is not None and get_n is not None:
                    set_n.argtypes = [ctypes.c_int]
                    set_n.restype = None
                    get_n.argtypes = []
                    get_n.restype = ctypes.c_int
                    setters.append((set_n, get_n))
                    break
            else:
                continue
            break
    return setters


def set_blas_threads(n, setters):
    """Set the thread count of each OpenBLAS in `setters` (_find_blas_setters) to n; returns the (setter, old
    count) pairs that put them back."""
    previous = [(set_n, get_n()) for set_n, get_n in setters]
    for set_n, _ in previous:
        set_n(n)
    return previous


class single_threaded_blas:
    """Context: OpenBLAS runs on the calling thread only, then gets its old thread count back.

    Numba kernels call BLAS from many threads at once and parallelise across calls themselves;
    OpenBLAS's own workers would oversubscribe the cores and keep spinning after each call,
    slowing whatever runs next (measured: up to 2x on the following C++ or PyTorch call).

    The count is process-wide, so sections of several Python threads nest: the first to enter saves the
    counts and the last to leave restores them (each saving and restoring its own had a thread save the 1
    another had set and restore it last, leaving the user's own BLAS calls on one thread for good).
    """
    _depth = 0
    _saved = []
    _depth_lock = threading.Lock()

    def __enter__(self):
        global _blas_setters
        if _blas_setters is None:
            with _lock:
                if _blas_setters is None:
                    _blas_setters = _find_blas_setters()
        cls = single_threaded_blas
        with cls._depth_lock:
            if cls._depth == 0:
                cls._saved = set_blas_threads(1, _blas_setters)
            cls._depth += 1
        return self

    def __exit__(self, *exc):
        cls = single_threaded_blas
        with cls._depth_lock:
            cls._depth -= 1
            if cls._depth == 0:
                for set_n, n in cls._saved:
                    set_n(n)
        return False


def quiet_blas_workers():
    """Put the OpenBLAS worker threads already loaded in this process to sleep, keeping their thread count.

    OpenBLAS starts its workers when numpy is imported and they busy-wait for a while (~70 ms here) before
    sleeping; our kernel worker then waited for a core (measured with OpenMP workers), and each of the first parallel regions of a process took
    7-8 ms instead of 0.15 ms (a first conv2d right after `import numpy, cnnkernels` took 6-16 ms instead of
    ~1 ms). Lowering the count to 1 sends them to sleep; restoring it does not wake them.
    """
    try:
        setters = _find_blas_setters(load_scipy=False)
    except Exception:   # best effort: never fail an import over this
        return
    for set_n, n in set_blas_threads(1, setters):
        set_n(n)
