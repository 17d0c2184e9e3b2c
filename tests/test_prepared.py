"""Prepared weights (Winograd-transformed, GEMM-packed): reused while the weights live, within a byte budget,
dropped with the weights, and only the autotuner's pick keeps its own."""
import gc
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import _cpp_backend, _prepared

from . import naive

needs_cpp = pytest.mark.skipif(_cpp_backend.module is None, reason="C++ backend not built")
rng = np.random.default_rng(23)
X = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)


@pytest.fixture
def cache(monkeypatch):
    fresh = _prepared.PreparedCache()
    monkeypatch.setattr(_prepared, "CACHE", fresh)
    return fresh


def _weights(n):
    return [rng.standard_normal((8, 8, 3, 3)).astype(np.float32) for _ in range(n)]


def _check(y, w):
    ref = naive.conv(X, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert np.abs(y - ref).max() < 1e-4 * np.abs(ref).max()


def test_many_live_weights_are_prepared_once(cache):
    """100 layers (more than the 64 entries the cache once held) called twice: the second pass makes nothing."""
    weights = _weights(100)
    for w in weights:
        ck.conv2d(X, w, padding=1, algorithm="winograd_f4", backend="cpp" if _cpp_backend.module else "numba")
    assert len(cache) == 100
    with _prepared.notes() as noted:
        for w in weights:
            _check(ck.conv2d(X, w, padding=1, algorithm="winograd_f4",
                             backend="cpp" if _cpp_backend.module else "numba"), w)
    assert len(noted.used) == 100 and not noted.made


def test_entries_go_with_their_weights(cache):
    weights = _weights(3)
    for w in weights:
        ck.conv2d(X, w, padding=1, algorithm="winograd_f2", backend="numba")
    assert len(cache) == 3 and cache.nbytes > 0
    del w
    weights.pop()
    gc.collect()
    assert len(cache) == 2
    # an entry belongs to the array owning the memory: the (temporary) view passed may go, the entry stays
    stacked = rng.standard_normal((2, 8, 8, 3, 3)).astype(np.float32)
    ck.conv2d(X, stacked[1], padding=1, algorithm="winograd_f2", backend="numba")
    gc.collect()
    assert len(cache) == 3
    weights.clear()
    gc.collect()
    assert len(cache) == 1
    del stacked
    gc.collect()
    assert len(cache) == 0 and cache.nbytes == 0


def test_owner_gone_while_the_cache_is_locked_is_settled_later(cache):
    """An owner may go at any release of an array, also while some thread holds the cache's lock: its callback
    does not wait for the lock; the next use of the cache drops the entry."""
    w = _weights(1)[0]
    ck.conv2d(X, w, padding=1, algorithm="winograd_f2", backend="numba")
    with cache.lock:
        del w
        gc.collect()
        assert len(cache.entries) == 1 and len(cache.gone) == 1
    assert len(cache) == 0 and cache.nbytes == 0 and not cache.gone


def test_memory_numpy_does_not_own_is_held(cache):
    """Weights in memory NumPy does not own (a PyTorch tensor's; here a bytearray's), wrapped in new arrays at
    every call: the entry holds them, so the next call finds it."""
    w = _weights(1)[0]
    buf = bytearray(w.tobytes())

    def wrapped():
        return np.frombuffer(buf, np.float32).reshape(w.shape)
    ck.conv2d(X, wrapped(), padding=1, algorithm="winograd_f4", backend="numba")
    gc.collect()
    assert len(cache) == 1
    with _prepared.notes() as noted:
        _check(ck.conv2d(X, wrapped(), padding=1, algorithm="winograd_f4", backend="numba"), w)
    assert noted.used and not noted.made
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(w.copy())
    ck.conv2d(X, t, padding=1, algorithm="winograd_f4", backend="numba")
    with _prepared.notes() as noted:
        _check(ck.conv2d(X, t, padding=1, algorithm="winograd_f4", backend="numba"), w)
    assert noted.used and not noted.made


def test_budget_drops_the_least_recently_used(cache, monkeypatch):
    weights = _weights(4)
    ck.conv2d(X, weights[0], padding=1, algorithm="winograd_f2", backend="numba")
    one = cache.nbytes
    monkeypatch.setattr(_prepared, "BUDGET_BYTES", 2 * one)
    for w in weights[1:]:
        ck.conv2d(X, w, padding=1, algorithm="winograd_f2", backend="numba")
    assert len(cache) == 2 and cache.nbytes == 2 * one    # weights 2 and 3
    with _prepared.notes() as noted:
        for w in weights[2], weights[0]:   # 2 is used, so 3 is now the least recently used and goes
            _check(ck.conv2d(X, w, padding=1, algorithm="winograd_f2", backend="numba"), w)
    assert len(noted.made) == 1
    with _prepared.notes() as noted:
        _check(ck.conv2d(X, weights[2], padding=1, algorithm="winograd_f2", backend="numba"), weights[2])
        assert not noted.made
        _check(ck.conv2d(X, weights[3], padding=1, algorithm="winograd_f2", backend="numba"), weights[3])
        assert len(noted.made) == 1
    monkeypatch.setattr(_prepared, "BUDGET_BYTES", 0)   # nothing kept, every call still right
    for w in _weights(1) * 2:
        _check(ck.conv2d(X, w, padding=1, algorithm="winograd_f2", backend="numba"), w)
        assert len(cache) == 0 and cache.nbytes == 0


def _kind(choice):
    """The prepared-weights kind (and Winograd m) a kernel name uses, or None."""
    algorithm, backend = choice.split("[")[0].split("/")
    if algorithm == "igemm":
        return ("igemm",)
    if algorithm.startswith("winograd_f"):
        return (f"winograd/{backend}", int(algorithm[len("winograd_f"):]))
    return None


@needs_cpp
@pytest.mark.parametrize("mode", ["on", "exhaustive"])
def test_tuning_keeps_only_the_picks_preparation(cache, fresh_cache, monkeypatch, mode):
    from cnnkernels import _autotune
    monkeypatch.setattr(_autotune, "_mode", mode)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    with _prepared.notes() as noted:
        info = ck.explain("conv2d", X, w, padding=1, verbose=False)
    assert info["source"] == "tuned"
    assert len(noted.made) >= 2, noted.made    # (so there were losers' preparations to drop)
    left = {key[:1] + key[4:5] if key[0].startswith("winograd") else key[:1] for key in cache.entries}
    want = _kind(info["choice"])
    assert left == ({want} if want else set()), (info["choice"], left)


def test_in_place_edit_is_noticed(cache):
    w = _weights(1)[0]
    ck.conv2d(X, w, padding=1, algorithm="winograd_f4", backend="numba")
    w[3, 2, 1, 1] += 2.0
    _check(ck.conv2d(X, w, padding=1, algorithm="winograd_f4", backend="numba"), w)
    # a read-only view of writeable weights: edits through the owner are noticed too
    view = w.view()
    view.flags.writeable = False
    ck.conv2d(X, view, padding=1, algorithm="winograd_f4", backend="numba")
    w[1, 0, 0, 2] -= 3.0
    _check(ck.conv2d(X, view, padding=1, algorithm="winograd_f4", backend="numba"), w)
    # read-only weights are checked too: NumPy lets their owner be made writeable, edited and read-only again
    w.flags.writeable = False
    ck.conv2d(X, w, padding=1, algorithm="winograd_f4", backend="numba")
    w.flags.writeable = True
    w[0, 5, 2, 0] *= -4.0
    w.flags.writeable = False
    _check(ck.conv2d(X, w, padding=1, algorithm="winograd_f4", backend="numba"), w)


@pytest.mark.parametrize("backend", ["numba", pytest.param("cpp", marks=needs_cpp)])
@pytest.mark.parametrize("algorithm", ["winograd_f4", "igemm"])
def test_frozen_weights_are_trusted_and_cannot_be_edited(cache, backend, algorithm):
    if algorithm == "igemm" and backend == "numba":
        pytest.skip("the Numba implicit GEMM prepares nothing")
    w = _weights(1)[0]
    frozen = ck.freeze(w)
    assert not frozen.flags.writeable and np.array_equal(frozen, w) and not np.shares_memory(frozen, w)
    with pytest.raises(ValueError):
        frozen.flags.writeable = True
    w[0, 0, 0, 0] += 1.0    # the original stays the user's, apart from the frozen copy
    _check(ck.conv2d(X, frozen, padding=1, algorithm=algorithm, backend=backend), frozen)
    (key,) = cache.entries
    entry = cache.entries[key]

    class Unchecked:
        nbytes = 0

        def matches(self, w):
            raise AssertionError("frozen weights were checked")
    entry.check = Unchecked()
    with _prepared.notes() as noted:
        _check(ck.conv2d(X, frozen, padding=1, algorithm=algorithm, backend=backend), frozen)
    assert noted.used == {key} and not noted.made
    # through the private owner (deliberately) made writeable: checked again
    frozen.base.flags.writeable = True
    with pytest.raises(AssertionError, match="were checked"):
        ck.conv2d(X, frozen, padding=1, algorithm=algorithm, backend=backend)


def test_budget_setting_is_validated():
    for bad in ("abc", "-1", "1048577", "1.5"):
        out = subprocess.run([sys.executable, "-c", "import cnnkernels"], capture_output=True, text=True,
                             env={**os.environ, "CNNKERNELS_PREPARED_MB": bad})
        assert out.returncode != 0 and "CNNKERNELS_PREPARED_MB must be an int in [0, 1048576]" in out.stderr, bad
    out = subprocess.run([sys.executable, "-c", "from cnnkernels import _prepared; print(_prepared.BUDGET_BYTES)"],
                         capture_output=True, text=True, env={**os.environ, "CNNKERNELS_PREPARED_MB": "3"})
    assert out.returncode == 0 and int(out.stdout) == 3 << 20, out.stderr
