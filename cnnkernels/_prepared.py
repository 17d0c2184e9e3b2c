"""Weights prepared for a kernel (Winograd-transformed, packed into GEMM panels), made once and reused.

An entry lives as long as the weights it was made from: it holds a weak reference to the array that owns the
weights' memory and is dropped when that array goes (so dropping a model frees its prepared weights, and no
other array can meet the entry at the same address). Memory NumPy does not own (a PyTorch tensor's, passed as
weights: each call wraps it in new arrays) is held by the entry instead, so that a later call on the same
tensor finds it. All entries together are held to a budget,
CNNKERNELS_PREPARED_MB (default 1024), least recently used dropped first: a count bound of 64 entries made
two ResNet-50s called in turn (43 entries each) prepare their weights again on every call (1.42-1.56x the time).
The autotuner drops what its losing candidates made (notes()).
"""
import threading
import weakref
from collections import OrderedDict, deque
from functools import partial

import numpy as np

from . import _cpp_backend

BUDGET_BYTES = _cpp_backend.env_setting("CNNKERNELS_PREPARED_MB", "1024", int, 0, 1 << 20,
                                        "an int in [0, 1048576]") << 20


def _last_array(w):
    """The last ndarray in w's chain of bases (w itself when it has none)."""
    while isinstance(w.base, np.ndarray):
        w = w.base
    return w


class Prepared:
    """One preparation of weights: the prepared data, a check that the weights still hold the contents it was
    made from (in-place edits), whether every weight is finite, and the weak reference to the weights' owning
    array (or, for memory NumPy does not own, a hold on the weights, counted in the budget)."""
    __slots__ = ("data", "check", "finite", "owner", "held", "nbytes")

    def __init__(self, w, data, on_owner_gone):
        self.data = data
        self.check, self.finite = _contents_check(w)
        self.nbytes = data.nbytes + self.check.nbytes
        array = _last_array(w)
        if array.base is None:
            self.owner, self.held = weakref.ref(array, on_owner_gone), None
        else:
            self.owner, self.held = None, w
            self.nbytes += w.nbytes

    def valid_for(self, w):
        # Frozen weights (freeze()) are trusted; any others are checked again, one read of the weights. A
        # read-only array is no promise: NumPy lets its owner be made writeable, edited and made read-only again.
        return is_frozen(w) or self.check.matches(w)


# id -> weak reference of each array that freeze() made the read-only owner of weights.
_frozen = {}


def freeze(w, copy=True):
    """A read-only view of weights whose owner only cnnkernels holds, so they are trusted unchecked (a view of a
    read-only owner cannot be made writeable). copy=False makes ``w`` itself that owner (cnnkernels.nn: a
    layer's own arrays); the caller must then hold no other reference through which to edit it."""
    owner = np.array(w, order="C") if copy else w
    if owner.base is not None or not owner.flags.c_contiguous:
        owner = np.array(owner, order="C")
    owner.flags.writeable = False
    key = id(owner)
    _frozen[key] = weakref.ref(owner, lambda ref: _frozen.pop(key, None) if _frozen.get(key) is ref else None)
    return owner.view()


def is_frozen(w):
    """Whether w's owning array is one freeze() made and is still read-only."""
    owner = _last_array(w)
    ref = _frozen.get(id(owner))
    return ref is not None and ref() is owner and not owner.flags.writeable


def _contents_check(w):
    """(a check that the weights still hold these contents, whether every weight is finite). With the C++
    extension: a 128-bit digest that any change of one weight changes (elementwise.h: bytes_digest), one
    threaded read and no copy (a copy cost a weight-sized fresh allocation on the first call: 3.8 ms of a
    512->512 layer's 9.6 ms first call). Without it: a copy, compared exactly."""
    if _Digest.applies(w):
        digest, finite = _Digest.of(w)
        return _Digest(digest), finite
    return _ExactCopy(w), bool(np.isfinite(w.sum()))


class _Digest:
    __slots__ = ("digest",)
    nbytes = 0

    def __init__(self, digest):
        self.digest = digest

    @staticmethod
    def applies(w):
        return _cpp_backend.module is not None and w.flags.c_contiguous and w.dtype in (np.float32, np.float64)

    @staticmethod
    def of(w, check_finite=True):
        h0, h1, finite = _cpp_backend.module.weights_digest(w, _cpp_backend.kernel_threads(), check_finite)
        return (h0, h1), finite

    def matches(self, w):
        # Weights with these contents were found finite when prepared: the re-check needs only the digest.
        return self.applies(w) and self.of(w, check_finite=False)[0] == self.digest


class _ExactCopy:
    __slots__ = ("copy", "nbytes")

    def __init__(self, w):
        self.copy = w.copy()
        self.nbytes = self.copy.nbytes

    def matches(self, w):
        return np.array_equal(self.copy, w)


class PreparedCache:
    """(kind, pointer, shape, dtype, *details) -> Prepared, least recently used first, within BUDGET_BYTES."""

    def __init__(self):
        self.entries = OrderedDict()
        self.nbytes = 0
        self.lock = threading.Lock()
        # (key, weak reference) of owners gone, settled under the lock: an owner's end may come at any release
        # of an array, in any thread (or in this one inside the lock), so its callback never waits for the lock.
        self.gone = deque()

    def get(self, key, w):
        with self.lock:
            dropped = self._settle()
            hit = self.entries.get(key)
        del dropped   # (entries are freed outside the lock: a held tensor's release runs PyTorch's code)
        if hit is None or not hit.valid_for(w):   # (the digest, outside the lock)
            return None
        with self.lock:
            if self.entries.get(key) is hit:
                self.entries.move_to_end(key)
        return hit

    def make(self, key, w, data):
        entry = Prepared(w, data, partial(self._owner_gone, key))
        with self.lock:
            dropped = self._settle()
            dropped.append(self._drop(key))
            self.entries[key] = entry
            self.nbytes += entry.nbytes
            while self.nbytes > BUDGET_BYTES and self.entries:
                dropped.append(self._drop(next(iter(self.entries))))
        return entry

    def forget(self, keys):
        with self.lock:
            dropped = self._settle() + [self._drop(key) for key in keys]
        del dropped

    def _owner_gone(self, key, ref):
        self.gone.append((key, ref))
        if self.lock.acquire(blocking=False):   # (else the lock's holder, or the next call, settles it)
            try:
                dropped = self._settle()
            finally:
                self.lock.release()
            del dropped

    def _settle(self):
        dropped = []
        while self.gone:
            key, ref = self.gone.popleft()
            entry = self.entries.get(key)
            if entry is not None and entry.owner is ref:   # (not a later entry under the same key)
                dropped.append(self._drop(key))
        return dropped

    def _drop(self, key):
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.nbytes -= entry.nbytes
        return entry

    def __len__(self):
        with self.lock:
            dropped = self._settle()
            return len(self.entries)

    def values(self):
        with self.lock:
            dropped = self._settle()
            return list(self.entries.values())


CACHE = PreparedCache()
_noting = threading.local()


class notes:
    """Context manager: the keys of prepared weights that the calls inside it (this thread) used and made
    (the autotuner forgets those only its losing candidates made). Nested ones all take note."""

    def __init__(self):
        self.used, self.made = set(), set()

    def __enter__(self):
        self.outer = getattr(_noting, "current", None)
        _noting.current = self
        return self

    def __exit__(self, *exc):
        _noting.current = self.outer
        return False


def prepared_weights(kind, w, details, make):
    """``make()``'s preparation of the weights ``w``, computed once and reused while their contents are
    unchanged and their owner lives (see Prepared)."""
    key = (kind, w.ctypes.data, w.shape, w.dtype.str) + details
    _note("used", key)
    hit = CACHE.get(key, w)
    if hit is not None:
        return hit
    _note("made", key)
    return CACHE.make(key, w, make())


def _note(which, key):
    noted = getattr(_noting, "current", None)
    while noted is not None:
        getattr(noted, which).add(key)
        noted = noted.outer


def forget(keys):
    CACHE.forget(keys)
