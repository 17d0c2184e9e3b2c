"""The functional API's contract: dtypes, array-likes, out=, batching, threads, kernel listing, Numba interop."""
import ctypes
import mmap
import os
import sys

import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import functional as F
from cnnkernels import nn

from . import naive
from .cases import assert_close

rng = np.random.default_rng(42)
X = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
W = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
B = rng.standard_normal(6).astype(np.float32)
REF = naive.conv(X, W, B, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)


def test_functional_module_has_torch_names():
    for name in ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                 "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
                 "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d"]:
        assert callable(getattr(F, name)) and getattr(ck, name) is getattr(F, name)


def test_available_kernels_lists_forceable_pairs():
    pairs = ck.available_kernels("conv2d")
    assert ("direct", "numba") in pairs and ("im2col", "numba") in pairs
    assert ck.available_kernels("conv_transpose3d") == pairs
    # transposed convolutions run on channels-first kernels in either layout: pointwise (channels-last) is not one
    assert ck.available_kernels("conv_transpose2d", "NHWC") == pairs
    assert ("pointwise", "numba") in ck.available_kernels("conv2d", "NHWC") and ("pointwise", "numba") not in pairs
    for call in (lambda: ck.conv2d(X, W[:, :, :1, :1], algorithm="pointwise"),
                 lambda: ck.conv_transpose2d(X.transpose(0, 2, 3, 1), W.transpose(1, 0, 2, 3)[:, :, :1, :1],
                                             layout="NHWC", algorithm="pointwise")):
        with pytest.raises(ValueError, match="algorithm='pointwise' has no channels-first kernel"):
            call()
    assert ck.available_kernels("max_pool2d")[0] == ("direct", "numba")
    info = ck.info()
    if info["cpp"] is not None:
        assert ("direct", "cpp") in pairs and ("im2col", "cpp") in pairs
    else:
        assert all(b == "numba" for _, b in pairs)


def test_cpp_backend_built_when_required():
    """CI sets CNNKERNELS_REQUIRE_CPP=1 so the C++ kernels can't silently drop out of the test run."""
    import os
    if os.environ.get("CNNKERNELS_REQUIRE_CPP") != "1":
        pytest.skip("CNNKERNELS_REQUIRE_CPP not set")
    assert ck.info()["cpp"] is not None, ck.info().get("cpp_missing_reason")


@pytest.mark.parametrize("xdt,wdt,expect", [(np.float32, np.float32, np.float32), (np.float64, np.float64, np.float64),
                                             (np.float32, np.float64, np.float64), (np.float16, np.float16, np.float16),
                                             (np.int64, np.int64, np.float64)])
def test_output_dtype_follows_numpy_promotion(xdt, wdt, expect):
    x = np.round(X * 4).astype(xdt)
    w = np.round(W * 4).astype(wdt)
    y = ck.conv2d(x, w, padding=1)
    assert y.dtype == expect
    ref = naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    tol = 1e-2 if expect == np.float16 else 1e-5
    assert np.abs(y.astype(np.float64) - ref).max() <= tol * np.abs(ref).max()


def _unaligned(a):
    """A writeable copy of a whose elements sit one byte off their alignment (NumPy allows it)."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    u = np.frombuffer(buf, a.dtype, a.size, offset=1).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned and u.flags.writeable
    return u


def test_unaligned_arrays_are_taken():
    """Unaligned input, weights, bias and out= (a first and a memoised call each), conv and pooling, both
    layouts: computed as their aligned copies are (the C++ kernels take aligned arrays only)."""
    for _ in range(2):
        out = _unaligned(np.zeros_like(REF, np.float32))
        assert ck.conv2d(_unaligned(X), _unaligned(W), _unaligned(B), padding=1, out=out) is out
        assert_close(out, REF, np.float32)
        assert_close(ck.conv2d(_unaligned(X), _unaligned(W), _unaligned(B), padding=1), REF, np.float32)
        xl = _unaligned(np.ascontiguousarray(X.transpose(0, 2, 3, 1)))
        assert_close(ck.conv2d(xl, W, B, padding=1, layout="NHWC").transpose(0, 3, 1, 2), REF, np.float32)
        assert np.array_equal(ck.max_pool2d(_unaligned(X), 2), ck.max_pool2d(X, 2))
        # (sums: another kernel's order of adding may differ in the last bit, so close, not equal)
        assert_close(ck.avg_pool2d(xl, 3, 1, 1, layout="NHWC"),
                     ck.avg_pool2d(X.transpose(0, 2, 3, 1).copy(), 3, 1, 1, layout="NHWC").astype(np.float64),
                     np.float32)
        assert_close(ck.adaptive_avg_pool2d(_unaligned(X), 3), ck.adaptive_avg_pool2d(X, 3).astype(np.float64),
                     np.float32)
        tw = np.ascontiguousarray(W.transpose(1, 0, 2, 3))
        assert_close(ck.conv_transpose2d(_unaligned(X), _unaligned(tw), stride=2),
                     ck.conv_transpose2d(X, tw, stride=2).astype(np.float64), np.float32)
        res = _unaligned(np.ones((3, 5), np.float32))
        assert np.array_equal(nn.add_relu_(res, _unaligned(-2 * np.ones((3, 5), np.float32))), np.zeros((3, 5)))


def test_array_likes_lists_readonly_views_dlpack():
    ref = ck.conv2d(X, W, B, padding=1)
    assert_close(ref, REF, np.float32)
    assert_close(ck.conv2d(X.tolist(), W.tolist(), B.tolist(), padding=1), REF, np.float64)
    ro = X.copy()
    ro.flags.writeable = False
    assert_close(ck.conv2d(ro, W, B, padding=1), REF, np.float32)
    big = np.zeros((2, 8, 18, 16), np.float32)
    big[:, ::2, ::2, ::2] = X
    view = big[:, ::2, ::2, ::2]
    assert not view.flags.c_contiguous
    assert_close(ck.conv2d(view, W, B, padding=1), REF, np.float32)

    class HasArray:
        def __array__(self, dtype=None, copy=None):
            return X
    assert_close(ck.conv2d(HasArray(), W, B, padding=1), REF, np.float32)

    class DLPackOnly:
        def __dlpack__(self, **kwargs):
            return X.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return X.__dlpack_device__()
    assert_close(ck.conv2d(DLPackOnly(), W, B, padding=1), REF, np.float32)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    y = ck.conv2d(torch.from_numpy(X), torch.from_numpy(W), torch.from_numpy(B), padding=1)
    assert isinstance(y, np.ndarray)
    assert_close(y, REF, np.float32)


def test_out_is_written_and_returned():
    out = np.empty((2, 6, 9, 8), np.float32)
    y = ck.conv2d(X, W, B, padding=1, out=out)
    assert y is out
    assert_close(out, REF, np.float32)
    # a non-contiguous out still receives the result
    holder = np.zeros((2, 6, 9, 16), np.float32)
    out2 = holder[..., ::2]
    assert ck.conv2d(X, W, B, padding=1, out=out2) is out2
    assert_close(out2, REF, np.float32)
    # pooling with out=
    pooled = np.empty((2, 4, 4, 4), np.float32)
    assert ck.max_pool2d(X, 2, out=pooled) is pooled
    np.testing.assert_array_equal(pooled, naive.max_pool(X, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), False)[0])


def test_out_overlapping_the_input_is_safe():
    x = rng.standard_normal((1, 3, 6, 6))
    expect = ck.avg_pool2d(x, 3, stride=1, padding=1)
    assert ck.avg_pool2d(x, 3, stride=1, padding=1, out=x) is x
    np.testing.assert_allclose(x, expect)


def test_unbatched_and_batch_zero():
    y = ck.conv2d(X[0], W, B, padding=1)
    assert y.shape == (6, 9, 8)
    assert_close(y, REF[0], np.float32)
    empty = ck.conv2d(X[:0], W, B, padding=1)
    assert empty.shape == (0, 6, 9, 8) and empty.dtype == np.float32
    assert ck.max_pool2d(X[:0], 2).shape == (0, 4, 4, 4)
    assert ck.conv_transpose2d(X[:0], W.transpose(1, 0, 2, 3), stride=2).shape == (0, 6, 19, 17)
    assert ck.max_pool1d(X[0, 0], 2).shape == (9, 4)


def test_threads_govern_results_not_correctness():
    before = ck.get_num_threads()
    try:
        ck.set_num_threads(1)
        assert ck.get_num_threads() == 1
        pairs = [p for p in ck.available_kernels("conv2d") if p[0] != "depthwise"]   # X, W are not depthwise
        one = [ck.conv2d(X, W, B, padding=1, algorithm=a, backend=b) for a, b in pairs]
        ck.set_num_threads(2)
        two = [ck.conv2d(X, W, B, padding=1, algorithm=a, backend=b) for a, b in pairs]
        for a, b in zip(one, two):
            assert_close(a, REF, np.float32, 1e-4)
            assert_close(b, REF, np.float32, 1e-4)
    finally:
        ck.set_num_threads(before)


def test_thread_count_environment_variables():
    import subprocess
    import sys
    code = "import cnnkernels as ck; print(ck.get_num_threads())"
    for env, expect in [({"CNNKERNELS_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"}, "1"), ({"OMP_NUM_THREADS": "1"}, "1")]:
        import os
        full = {k: v for k, v in os.environ.items() if k not in ("CNNKERNELS_NUM_THREADS", "OMP_NUM_THREADS")}
        full.update(env)
        got = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True)
        assert got.stdout.strip() == expect


def test_numba_kernels_are_callable_from_user_njit_code():
    from numba import njit

    from cnnkernels.numba import conv2d as nb_conv2d
    from cnnkernels.numba import max_pool

    @njit
    def conv_then_pool(x, w, b):
        y = nb_conv2d(x, w, b, (1, 1), (1, 1), (1, 1), 1)
        N, K, H, W = y.shape
        pooled = np.empty((N, K, 1, H // 2, W // 2), dtype=y.dtype)
        idx = np.empty((0, 0, 0, 0, 0), dtype=np.int64)
        max_pool(y.reshape(N, K, 1, H, W), pooled, idx, (1, 2, 2), (1, 2, 2), (0, 0, 0), (1, 1, 1), False)
        return pooled.reshape(N, K, H // 2, W // 2)

    got = conv_then_pool(X, W, B)
    ref = naive.max_pool(REF, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), False)[0]
    assert_close(got, ref, np.float32)


def test_memoised_calls_still_refuse_bad_arguments():
    """A float that equals an int hashes like it: a repeat must not be served from the memo of the int call."""
    x = np.zeros((1, 3, 8, 8), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    for _ in range(2):
        ck.conv2d(x, w, padding=(1, 1), stride=2)
        ck.max_pool2d(x, (2, 2), stride=(2, 2), ceil_mode=True)
    with pytest.raises(TypeError, match="padding"):
        ck.conv2d(x, w, padding=(1.0, 1), stride=2)
    with pytest.raises(TypeError, match="stride"):
        ck.max_pool2d(x, (2, 2), stride=(2.0, 2), ceil_mode=True)


def test_memoised_calls_tell_bools_and_positions_apart():
    """True == 1 and hashes like it, and a pooling call's keyword pairs must not meet a positional tuple: a
    repeat must be refused or computed exactly as a first call would be."""
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    for _ in range(2):
        ck.conv2d(x, w, stride=1, groups=1, padding=(1, 0))
        ck.max_pool2d(x, 2, ceil_mode=False, return_indices=False)
        ck.avg_pool2d(x, 3, padding=1)
    bad = [lambda: ck.conv2d(x, w, stride=True), lambda: ck.conv2d(x, w, groups=True),
           lambda: ck.conv2d(x, w, padding=(True, False)), lambda: ck.max_pool2d(x, 2, ceil_mode=0),
           lambda: ck.max_pool2d(x, 2, return_indices=0), lambda: ck.avg_pool2d(x, 3, ("padding", 1))]
    for call in bad:
        for _ in range(2):
            with pytest.raises(TypeError):
                call()


def test_calls_with_out_are_memoised(fresh_cache, monkeypatch):
    """out= calls take the memo too (its key holds out's flags, none of them as a bool)."""
    from cnnkernels import _autotune
    monkeypatch.setattr(_autotune, "_provisional", {})   # (picks of earlier tests on a busy machine)
    monkeypatch.setattr(F, "_PLANS", {})
    monkeypatch.setattr(F, "_POOL_PLANS", {})
    y = np.empty_like(REF, np.float32)
    p = np.empty((2, 4, 4, 4), np.float32)
    ck.conv2d(X, W, B, padding=1, out=y)
    ck.max_pool2d(X, 2, out=p)
    assert len(F._PLANS) == 1 and len(F._POOL_PLANS) == 1


def test_one_entry_padding_and_array_output_sizes():
    """As PyTorch: padding=(1,) is padding 1 on every axis; an adaptive pool's output_size may be an integer
    array (and calls with other values are not served from the memo of the first)."""
    assert_close(ck.conv2d(X, W, B, padding=(1,)), REF, np.float32)
    assert np.array_equal(ck.max_pool2d(X, 3, 1, padding=(1,)), ck.max_pool2d(X, 3, 1, padding=1))
    assert_close(ck.avg_pool2d(X, 3, 1, padding=[1]), ck.avg_pool2d(X, 3, 1, padding=1).astype(np.float64),
                 np.float32)
    for _ in range(2):
        for size in ((2, 3), (4, 5), (1, None)):
            got = ck.adaptive_avg_pool2d(X, np.array(size, object if None in size else np.int64))
            assert_close(got, ck.adaptive_avg_pool2d(X, size).astype(np.float64), np.float32)
        assert ck.adaptive_max_pool2d(X, np.array(3)).shape == (2, 4, 3, 3)
    with pytest.raises(TypeError, match="output_size"):
        ck.adaptive_avg_pool2d(X, np.array([2.0, 3.0]))


def test_repeated_calls_use_fresh_data_and_settings():
    """The memo of validated calls must never serve stale data, layouts or kernel choices."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 9, 9))
    w = rng.standard_normal((5, 4, 3, 3))
    for _ in range(3):   # first call validates and tunes; repeats take the memoised path
        x2 = rng.standard_normal(x.shape)
        w2 = rng.standard_normal(w.shape)
        assert_close(ck.conv2d(x2, w2, padding=1), naive.conv(x2, w2, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
                     np.float64)
    w3 = w.copy()
    first = ck.conv2d(x, w3, padding=1)
    w3 *= -1                                            # in place: same array object, new contents
    np.testing.assert_allclose(ck.conv2d(x, w3, padding=1), -first, rtol=1e-10, atol=1e-10)
    strided = np.zeros((2, 4, 18, 9))[:, :, ::2]
    strided[...] = x
    assert_close(ck.conv2d(strided, w, padding=1), first, np.float64)   # same shape, other strides
    assert_close(ck.conv2d(x[0], w, padding=1), first[0], np.float64)     # unbatched
    before = ck.get_precision()
    try:
        ck.set_precision("strict")
        report = ck.explain("conv2d", x, w, padding=1, verbose=False)
        assert not report["choice"].startswith("winograd")
    finally:
        ck.set_precision(before)


def test_numba_pool_start_leaves_openmp_default_alone():
    """Numba's pool start must not raise the OpenMP thread count other libraries in the process (PyTorch) use."""
    import subprocess
    import sys
    code = ("import ctypes, os, numpy as np\n"
            "import cnnkernels as ck\n"
            "gomp = ctypes.CDLL('libgomp.so.1')   # loaded as PyTorch would load it\n"
            "gomp.omp_set_num_threads(1)\n"
            "ck.conv2d(np.ones((1, 2, 5, 5)), np.ones((2, 2, 3, 3)), algorithm='direct', backend='numba')\n"
            "print(gomp.omp_get_max_threads())\n")
    try:
        ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("no libgomp here")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "2"})
    assert out.stdout.strip() == "1"


_BLAS_COUNTS = """
import ctypes
libs = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'openblas' in l.lower() and '.so' in l})
counts = []
for path in libs:
    lib = ctypes.CDLL(path)
    for name in ('openblas_get_num_threads', 'scipy_openblas_get_num_threads', 'openblas_get_num_threads64_',
                 'scipy_openblas_get_num_threads64_'):
        if hasattr(lib, name):
            counts.append(getattr(lib, name)())
            break
print(counts)
"""


def test_import_keeps_the_blas_thread_count():
    """Importing cnnkernels sends OpenBLAS's spinning workers to sleep (they held the second core for ~70 ms
    after `import numpy`, stalling our first parallel regions) by lowering and restoring their count: the count
    numpy's BLAS reports must be unchanged."""
    import subprocess
    import sys
    run = [sys.executable, "-c"]
    before = subprocess.run(run + ["import numpy\n" + _BLAS_COUNTS], capture_output=True, text=True, check=True)
    after = subprocess.run(run + ["import numpy, cnnkernels\n" + _BLAS_COUNTS], capture_output=True, text=True,
                           check=True)
    assert before.stdout == after.stdout and before.stdout.strip() != ""


def test_blas_sections_of_several_threads_restore_the_count():
    """single_threaded_blas from two threads, interleaved A in, B in, A out, B out: BLAS stays on one thread
    until the last leaves, then has its count back (each restoring its own left it at 1 for good)."""
    import threading
    from cnnkernels import _threads
    with _threads.single_threaded_blas():
        pass
    getters = [g for _, g in _threads._blas_setters]
    if not getters:
        pytest.skip("no OpenBLAS loaded")
    before = [g() for g in getters]
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    inside = []

    def a():
        with _threads.single_threaded_blas():
            a_in.set()
            b_in.wait()
        a_out.set()

    def b():
        a_in.wait()
        with _threads.single_threaded_blas():
            b_in.set()
            a_out.wait()
            inside.append([g() for g in getters])
    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside == [[1] * len(getters)] and [g() for g in getters] == before


def test_repeated_out_calls_take_fresh_data_and_stay_safe():
    """Repeats of an out= call are served from the call memo: new input contents must show in out, and an out
    that overlaps the input (same shape and strides as before) must still get the right answer."""
    x = rng.standard_normal((1, 4, 8, 8))
    w = rng.standard_normal((4, 4, 3, 3))
    out = np.empty((1, 4, 8, 8))
    for _ in range(3):
        x = rng.standard_normal((1, 4, 8, 8))
        assert ck.conv2d(x, w, padding=1, out=out) is out
        assert_close(out, naive.conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1), np.float64)
    for _ in range(2):
        y = rng.standard_normal((1, 4, 8, 8))
        expect = naive.conv(y, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        assert ck.conv2d(y, w, padding=1, out=y) is y             # out is the input itself
        assert_close(y, expect, np.float64)


def test_repeated_pool_out_calls_take_fresh_data_and_stay_safe():
    """As for conv: pooling repeats with out= come from the call memo, with new data and with out = input."""
    out = np.empty((1, 3, 6, 6))
    for _ in range(3):
        x = rng.standard_normal((1, 3, 6, 6))
        expect = naive.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), False, True, None)
        assert ck.avg_pool2d(x, 3, stride=1, padding=1, out=out) is out
        np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    for _ in range(2):
        x = rng.standard_normal((1, 3, 6, 6))
        expect = naive.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), False, True, None)
        assert ck.avg_pool2d(x, 3, stride=1, padding=1, out=x) is x
        np.testing.assert_allclose(x, expect, rtol=1e-12, atol=1e-12)


_FAULTS_OF_A_FRESH_ARRAY = """
import resource, numpy as np
import cnnkernels
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(3 << 18, np.float32)   # 3 MiB: under numpy's huge-page threshold, over glibc's initial mmap threshold
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-fault counts and glibc's heap are Linux's")
def test_import_prewarms_the_heap_so_first_arrays_do_not_fault():
    if ck.info()["cpp"] is None:
        pytest.skip("the prewarm is done by the C++ extension")
    if "LD_PRELOAD" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        pytest.skip("another allocator or fixed glibc malloc thresholds: the prewarm has no effect by design")
    import subprocess

    def faults(mb):
        env = {**os.environ, "CNNKERNELS_PREWARM_MB": mb}
        out = subprocess.run([sys.executable, "-c", _FAULTS_OF_A_FRESH_ARRAY], env=env, capture_output=True,
                             text=True, check=True)
        return int(out.stdout)

    # 768 pages of 4 KiB without the prewarm; a handful with it
    assert faults("0") > 500
    assert faults("16") < 100
    assert faults("") < 100   # the default


def test_prewarm_setting_is_validated():
    import subprocess
    for bad in ("abc", "-1", "31"):
        out = subprocess.run([sys.executable, "-c", "import cnnkernels"], capture_output=True, text=True,
                             env={**os.environ, "CNNKERNELS_PREWARM_MB": bad})
        assert out.returncode != 0 and "CNNKERNELS_PREWARM_MB must be an int in [0, 30]" in out.stderr, bad
    if ck.info()["cpp"] is not None:
        from cnnkernels import _cpp
        with pytest.raises(ValueError, match="bytes must be in"):
            _cpp.prewarm_heap(31 << 20)
        _cpp.prewarm_heap(0)


def test_malformed_thread_variable_is_reported_by_the_first_call_not_the_import():
    import subprocess
    code = ("import numpy as np, cnnkernels as ck\n"
            "try:\n"
            "    ck.conv2d(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 3, 3), np.float32))\n"
            "except ValueError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "CNNKERNELS_NUM_THREADS": "abc"})
    assert "CNNKERNELS_NUM_THREADS must be a positive int, got 'abc'" in out.stdout


_FORK = """
import os, sys, time, warnings, numpy as np
import cnnkernels as ck
ck.set_num_threads(2)
x = np.ones((1, 16, 32, 32), np.float32); w = np.ones((16, 16, 3, 3), np.float32)
if sys.argv[1] == "parent-ran-threads":
    ck.conv2d(x, w, algorithm="im2col", backend="cpp")
pid = os.fork()
if pid == 0:
    from cnnkernels import _cpp_backend
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = ck.conv2d(x, w, algorithm="im2col", backend="cpp")
        time.sleep(0.01)
        # a job in which every thread must take part: the child's own worker has to start and run
        _cpp_backend.module.parallel_region_seconds(2, 3)
    ok = y.shape == (1, 16, 30, 30) and float(y[0, 0, 0, 0]) == 144.0
    print("child", ok, len(caught), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="fork")
def test_forked_children_run_threaded_kernels():
    """A child forked after the parent's kernel threads started has none of them: it starts its own (the
    pool resets itself in the child), computes the right result on 2 threads, and neither hangs nor warns."""
    if ck.info()["cpp"] is None:
        pytest.skip("C++ backend not built")
    import subprocess
    for mode in ("import-only", "parent-ran-threads"):
        out = subprocess.run([sys.executable, "-c", _FORK, mode], capture_output=True, text=True, timeout=120,
                             check=True)
        assert out.stdout.split() == ["child", "True", "0"], (mode, out.stdout, out.stderr)


_FORK_AFTER_NUMBA = """
import os, numpy as np, cnnkernels as ck
x = np.random.default_rng(0).standard_normal((1, 16, 24, 24)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((16, 16, 3, 3)).astype(np.float32)
ck.conv2d(x, w, padding=1, algorithm="direct", backend="numba")   # Numba's threading layer starts
pid = os.fork()
if pid == 0:
    y = ck.conv2d(x[:, :, :20, :20], w, padding=1)                 # a new shape: tuned in the child
    np.save("{out}", y)
    try:
        ck.conv2d(x, w, padding=1, backend="numba")
        print("numba ran", flush=True)
    except ck.BackendUnavailableError as exc:
        print("refused", "forked after Numba" in str(exc), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child status", status)
"""


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="fork")
def test_child_forked_after_numba_threads_runs_and_tunes(tmp_path):
    """A child forked after Numba's pool started: with GNU OpenMP, any Numba parallel kernel would end it, so
    the child tunes and runs without the Numba kernels and refuses backend='numba' by name; with a fork-safe
    layer, Numba runs. Either way the child lives and its result is right."""
    import subprocess
    out_file = tmp_path / "y.npy"
    out = subprocess.run([sys.executable, "-c", _FORK_AFTER_NUMBA.replace("{out}", str(out_file))],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "CNNKERNELS_CACHE_DIR": str(tmp_path)})
    lines = out.stdout.split("\n")
    assert "child status 0" in lines and ("refused True" in lines or "numba ran" in lines), (out.stdout, out.stderr)
    x = np.random.default_rng(0).standard_normal((1, 16, 24, 24)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((16, 16, 3, 3)).astype(np.float32)
    ref = naive.conv(x[:, :, :20, :20], w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert_close(np.load(out_file), ref, np.float32, 1e-4)


def test_large_empty_faults_its_pages_in_at_once():
    """Its own mapping is populated when made (one call instead of a fault per page at the first write)."""
    import platform
    release = tuple(int(p) for p in platform.release().split(".")[:2] if p.isdigit())
    if not sys.platform.startswith("linux") or release < (5, 14) or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        pytest.skip("MADV_POPULATE_WRITE needs Linux 5.14+")
    from cnnkernels._arrays import large_empty

    def resident_bytes():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    before = resident_bytes()
    a = large_empty(((40 << 20) // 4,), np.float32)
    assert resident_bytes() - before >= 0.9 * a.nbytes


@pytest.mark.parametrize("shape,dtype,warm", [((3, 5), np.float32, 0), ((2, 36, 256, 160), np.float32, 0),
                                              ((1, 16, 64, 1100), np.float64, 0),
                                              ((2, 36, 256, 160), np.float32, 30 << 20)])
def test_large_empty_is_an_ordinary_writable_array(shape, dtype, warm):
    """Small sizes (or up to the warm heap) come from np.empty, large ones from their own mapping: either way
    a C-contiguous, writable array of the asked shape and dtype, whose memory lives as long as the array."""
    from cnnkernels._arrays import large_empty
    a = large_empty(shape, dtype, warm)
    owner = a
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    if isinstance(owner, memoryview):    # np.frombuffer's view of the mapping
        owner = owner.obj
    assert isinstance(owner, mmap.mmap) == (a.nbytes > max(8 << 20, warm) and hasattr(mmap, "MADV_NOHUGEPAGE"))
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    a[...] = 1.5
    a.flat[-1] = 2.0
    view = a[-1]
    del a
    assert view.flat[-1] == 2.0 and view.flat[0] == 1.5
