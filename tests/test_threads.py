"""The C++ kernels' thread pool (src/cnnkernels/thread_pool.h): right answers whatever the threads do.

Each job is split into one part per thread; a thread takes pieces of its own part, then of the others', and
the caller returns once every piece is done, so a worker that wakes late (or never) finds nothing left. These
tests run the threaded kernels where that matters: several callers at once (one gets the pool, the others run
alone), more threads than cores, workers asleep after an idle pause, and thread counts changing between calls.
"""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import cnnkernels as ck

from . import naive
from .cases import assert_close

pytestmark = pytest.mark.skipif(ck.info()["cpp"] is None, reason="C++ backend not built")

# (algorithm, input shape, weight shape, padding, stride, groups): every C++ conv driver and its split of work.
_CONVS = [
    ("direct", (2, 3, 11, 13), (5, 3, 3, 3), 1, 1, 1),
    ("im2col", (2, 8, 17, 15), (12, 8, 3, 3), 1, 2, 1),
    ("igemm", (1, 32, 20, 22), (40, 32, 3, 3), 1, 1, 1),
    ("igemm", (3, 16, 9, 9), (24, 8, 1, 1), 0, 1, 2),
    ("winograd_f4", (1, 24, 30, 26), (20, 24, 3, 3), 1, 1, 1),
    ("winograd_f2", (2, 16, 12, 40), (16, 16, 3, 3), 1, 1, 1),
    ("depthwise", (2, 24, 19, 21), (24, 1, 3, 3), 1, 1, 24),
]


def _case(i, rng):
    algorithm, xs, ws, padding, stride, groups = _CONVS[i]
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    ref = naive.conv(x.astype(np.float64), w.astype(np.float64), None, (stride, stride),
                     ((padding, padding), (padding, padding)), (1, 1), groups)
    run = lambda: ck.conv2d(x, w, stride=stride, padding=padding, groups=groups, algorithm=algorithm,  # noqa: E731
                            backend="cpp")
    return run, ref


@pytest.fixture
def threads():
    before = ck.get_num_threads()
    yield ck.set_num_threads
    ck.set_num_threads(before)


def _pool_ref(x):
    return naive.max_pool(x.astype(np.float64), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), False)[0]


@pytest.mark.parametrize("n", [2, 3, 5])
def test_every_driver_at_more_threads_than_cores(threads, n):
    threads(n)
    rng = np.random.default_rng(n)
    for i in range(len(_CONVS)):
        run, ref = _case(i, rng)
        for _ in range(3):
            assert_close(run(), ref, np.float32, rtol32=1e-4)
    x = rng.standard_normal((2, 8, 33, 35)).astype(np.float32)
    assert_close(ck.max_pool2d(x, 3, stride=2, padding=1), _pool_ref(x), np.float32)


def test_callers_on_several_python_threads_at_once(threads):
    """The GIL is released in the kernels: while one caller's job holds the pool, the others run alone."""
    threads(2)
    rng = np.random.default_rng(7)
    cases = [_case(i, rng) for i in range(len(_CONVS))]
    errors = []

    def work(k):
        try:
            for r in range(6):
                run, ref = cases[(k + r) % len(cases)]
                assert_close(run(), ref, np.float32, rtol32=1e-4)
        except Exception as exc:   # surfaced below
            errors.append(exc)
    workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors


def test_calls_after_the_workers_went_to_sleep(threads):
    """A worker sleeps after a few ms without work; the next call wakes it (or finishes without it)."""
    threads(2)
    rng = np.random.default_rng(3)
    for i in range(len(_CONVS)):
        run, ref = _case(i, rng)
        time.sleep(0.02)
        assert_close(run(), ref, np.float32, rtol32=1e-4)


def test_thread_count_changing_between_calls(threads):
    rng = np.random.default_rng(11)
    cases = [_case(i, rng) for i in range(len(_CONVS))]
    for n in (2, 1, 4, 3, 2, 1):
        threads(n)
        for run, ref in cases:
            assert_close(run(), ref, np.float32, rtol32=1e-4)


def test_parallel_probe_waits_for_every_thread():
    """The contention probe's job is the one that waits for each thread to run its own item (no stealing):
    it must come back (not hang) at any thread count, and report a time."""
    from cnnkernels import _cpp_backend
    for n in (1, 2, 3):
        s = _cpp_backend.module.parallel_region_seconds(n, 3)
        assert 0 <= s < 5


_TASKS = """
import os, numpy
before = len(os.listdir("/proc/self/task"))
import cnnkernels
print(len(os.listdir("/proc/self/task")) - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
@pytest.mark.parametrize("threads,started", [("1", 0), ("2", 1), ("3", 2)])
def test_import_starts_the_kernel_threads(threads, started):
    """At import, so that a first call finds them awake (a thread started at the call ran late)."""
    out = subprocess.run([sys.executable, "-c", _TASKS], capture_output=True, text=True, check=True,
                         env={**os.environ, "CNNKERNELS_NUM_THREADS": threads})
    assert int(out.stdout) == started, out.stderr


def test_worker_doze_setting_is_validated():
    for bad in ("abc", "-1", "3601", "nan"):
        out = subprocess.run([sys.executable, "-c", "import cnnkernels"], capture_output=True, text=True,
                             env={**os.environ, "CNNKERNELS_WORKER_DOZE": bad})
        assert out.returncode != 0 and "CNNKERNELS_WORKER_DOZE must be seconds in [0, 3600]" in out.stderr, bad
    out = subprocess.run([sys.executable, "-c", "import cnnkernels"], capture_output=True, text=True,
                         env={**os.environ, "CNNKERNELS_WORKER_DOZE": "0"})
    assert out.returncode == 0, out.stderr
    from cnnkernels import _cpp_backend
    with pytest.raises(ValueError, match="seconds must be in"):
        _cpp_backend.module.set_worker_doze(-1.0)


def test_kernels_right_when_workers_sleep_at_once(threads):
    """CNNKERNELS_WORKER_DOZE=0's path: workers sleep right after their spin, and each call wakes them."""
    from cnnkernels import _cpp_backend
    threads(2)
    rng = np.random.default_rng(5)
    _cpp_backend.module.set_worker_doze(0.0)
    try:
        for i in range(len(_CONVS)):
            run, ref = _case(i, rng)
            time.sleep(0.005)
            assert_close(run(), ref, np.float32, rtol32=1e-4)
    finally:
        _cpp_backend.module.set_worker_doze(_cpp_backend._worker_doze_seconds())


@pytest.mark.parametrize("n_threads", [2, 3])
def test_every_item_runs_once_and_a_throwing_item_stops_the_job(n_threads):
    """The pool's own check: the indices of the items run sum to n(n-1)/2 (each once, none lost), also with
    items long enough for every thread to take part; an exception in any item (the caller's or a worker's)
    reaches the caller and leaves the pool working."""
    from cnnkernels import _cpp_backend
    test = _cpp_backend.module._pool_selftest
    for n, item_us in ((1, 0), (7, 0), (1000, 0), (64, 50), (3, 2000)):
        assert test(n_threads, n, -1, item_us) == n * (n - 1) // 2
    for throw_at in (0, 63, 40):          # the caller's part first, then a worker's
        with pytest.raises(RuntimeError, match=f"item {throw_at} threw"):
            test(n_threads, 64, throw_at, 50)
        assert test(n_threads, 64, -1, 20) == 64 * 63 // 2
    run, ref = _case(4, np.random.default_rng(1))
    assert_close(run(), ref, np.float32, rtol32=1e-4)
