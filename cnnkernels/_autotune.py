"""The autotuner: time the candidate kernels on a call's actual shapes once, remember the fastest.

A choice is keyed on everything that changes which kernel is fastest (operation, shapes,
stride/padding/dilation/groups, dtype, layout, threads, CPU, ISA, package version) and
kept in memory and in a JSON file shared by processes (``_tuning_cache``).
"""
import os
import random
import threading
import time
from collections import defaultdict

from . import _prepared, _registry
from ._arrays import memory_limit
from ._threads import get_num_threads
from ._tuning_cache import TuningCache, fingerprint

MODES = ("off", "on", "exhaustive")
_mode = None
_cache = None
_cache_lock = threading.Lock()
_key_locks = defaultdict(threading.Lock)
_warmed = set()          # kernels already run once in this process (compiled, loaded, caches warm)
class _Local(threading.local):
    recorder = None   # a class default: reading it unset raises no AttributeError internally (0.4 -> 0.05 us)


_local = _Local()

# Rough speed of each candidate relative to the best kernel of its class, used only to order
# candidates and to skip ones that would almost surely lose by far (saving their run time).
_RELATIVE_SPEED = {
    # direct/cpp took 6-16x the best kernel's time on every gemm-class suite layer (Zen 1, 2026-11-27): at 0.1
    # it is skipped once a kernel of speed 1.0 has been timed (it ran two calls of up to 60 ms before).
    # Numba's Winograd and the C++ im2col as measured on Zen 4 (2026-12-07, suite medians against igemm/cpp,
    # 1 and 2 threads: 0.31-0.59, 0.27-0.62, 0.71-0.88): at 0.8 / 0.6 the predicted cost of the Numba ones ran
    # short by 2x at 2 threads and a VGG 128x112x112 tuning ended at its budget's limit.
    "gemm": {"winograd_f4/cpp": 1.8, "winograd_f6/cpp": 1.8, "winograd_f2/cpp": 1.3, "im2col/cpp": 0.8,
             "igemm/cpp": 1.0, "pointwise/cpp": 1.0, "winograd_f4/numba": 0.45, "winograd_f2/numba": 0.4,
             "winograd_f6/numba": 0.45, "im2col/numba": 0.4, "pointwise/numba": 0.4, "direct/cpp": 0.1,
             "direct/numba": 0.05},
    "few_terms": {"depthwise/cpp": 2.0, "direct/cpp": 1.0, "depthwise/numba": 0.8, "direct/numba": 0.4, "im2col/cpp": 0.3,
                  "im2col/numba": 0.08, "winograd_f2/numba": 0.03, "winograd_f4/numba": 0.03,
                  "winograd_f6/numba": 0.03, "winograd_f2/cpp": 0.1, "winograd_f4/cpp": 0.1, "winograd_f6/cpp": 0.1},
}
_PREDICTED_LOSS = 8.0    # skip a candidate predicted to be this many times slower than the best so far
_PRUNE = 2.0             # after its first timing, drop a candidate this many times slower than the best
# ... unless it was within this many times: it is timed once more first. One slow sample (a burst of load, a
# page-fault storm) had pruned the true winner for good: a 1 thread suite run picked a kernel 1.71x slower.
_CONFIRM = 5.0
_CLOSE = 0.05            # candidates within 5% of the best get a second round
# A candidate is timed only if its predicted cost, times this, fits in what is left of the budget: the untimed
# first call on new weights (their preparation) and load on a shared machine made the predictions short, and
# suite runs went past the budget (batch 8 256x28x28, 1 thread: 0.82 s against 0.67; VGG 128x112x112, 2 threads:
# 0.34 s against 0.25).
_PREDICTION_MARGIN = 1.5
MIN_BUDGET = 0.25        # seconds per key; the budget is max(MIN_BUDGET, BUDGET_FACTOR x best time)
BUDGET_FACTOR = 25.0
# Rounds of short candidates go on (within the budget) until their samples span this long: 20 rounds of
# two 0.05 ms kernels took 2 ms, so one burst of load on the other core could slow every sample of one
# candidate (a 2-thread suite run picked a Numba kernel 1.63x slower than the C++ one it had timed).
MIN_SPREAD_S = 0.05
_MAX_ROUNDS = 2000

# A busy machine: when another process holds a core, multi-threaded kernels wait for their descheduled
# threads and time 2-100x slower, so a tuning then picks at random (seen: a 0.24 ms kernel timed at 30 ms,
# and a kernel 9x slower than it cached for good). Such a pick is used but kept out of the file, and the
# key is tuned again after a delay that doubles each time.
CONTENDED_REGION_S = 200e-6  # an empty parallel region slower than this (median of 9): threads lack cores
RETUNE_DELAY_S = 5.0
_provisional = {}            # key -> (entry, retune at, delay)


def get_autotune():
    """The autotuning mode: 'off' (shape heuristic), 'on' (default) or 'exhaustive'."""
    global _mode
    if _mode is None:
        value = os.environ.get("CNNKERNELS_AUTOTUNE", "on").strip().lower()
        if value not in MODES:
            raise ValueError(f"environment variable CNNKERNELS_AUTOTUNE must be one of {list(MODES)}, got {value!r}")
        _mode = value
    return _mode


def set_autotune(mode):
    """Set the autotuning mode for this process ('off', 'on' or 'exhaustive')."""
    global _mode
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"set_autotune: mode must be one of {list(MODES)}, got {mode!r}")
    _mode = mode


def cache():
    """The process's tuning cache (created on first use, at CNNKERNELS_CACHE_DIR or the user cache dir)."""
    global _cache
    if _cache is None:
        with _cache_lock:
            if _cache is None:
                _cache = TuningCache()
    return _cache


def preload():
    """Read the machine fingerprint of every key (/proc/cpuinfo, ~0.2 ms), the tuning cache file (~0.2 ms) and the
    settings from the environment now (at import), and build the registry's tables, so that the first call of a
    tuned shape does not (cold, the settings and tables cost it ~0.5 ms)."""
    fingerprint()
    cache().load()
    for read in (get_autotune, _registry.get_precision, get_num_threads):
        try:
            read()
        except ValueError:   # a bad environment variable: the first call reports it, as it would have
            pass
    _registry.preload()
    memory_limit()   # (read by every call's output size check)


def reset_cache():
    """Forget the in-memory cache; the next use reloads from CNNKERNELS_CACHE_DIR (tests, CLI)."""
    global _cache
    with _cache_lock:
        _cache = None
    bump_generation()


_generation = 0


def bump_generation():
    """Invalidate the functional API's memo of per-signature plans (their kernel choice may be stale)."""
    global _generation
    _generation += 1


def state():
    """What a memoised kernel choice depends on besides the call itself."""
    return (get_autotune(), _registry.get_precision(), get_num_threads(), _generation)


def recording():
    return _local.recorder is not None


def _key(parts):
    return f"{fingerprint()}|threads={get_num_threads()}|" + "|".join(str(p) for p in parts)


def dispatch(op, kernels, geometry, key_parts, call):
    """Run ``call(kernel)`` with the one of ``kernels`` this call should use, tuning first when the key is new."""
    recorder = _local.recorder
    fam = _registry.family(op)
    if len(kernels) == 1 or get_autotune() == "off":
        kernel = kernels[0] if len(kernels) == 1 else _registry.heuristic(fam, kernels, geometry)
        call(kernel)
        if recorder is not None:
            recorder.update(op=op, choice=kernel.name, source="forced" if len(kernels) == 1 else "heuristic",
                            candidates={k.name: None for k in kernels})
        return kernel
    key = _key(key_parts + (f"cands={','.join(k.name for k in kernels)}",))
    tuned = cache()
    retune = recorder is not None and recorder.get("retune")
    entry = None if retune else _lookup(tuned, key)
    source = "cache"
    if entry is None:
        with _cache_lock:
            lock = _key_locks[key]
        with lock:   # several threads meeting a new key tune it once
            entry = None if retune else _lookup(tuned, key)
            if entry is None:
                contended = _contended()
                entry = _tune(fam, kernels, geometry, call)
                contended = contended or _contended()
                if contended:
                    delay = 2 * _provisional[key][2] if key in _provisional else RETUNE_DELAY_S
                    entry["status"]["(tuning)"] = f"machine busy: kept for this process only, tuned again in {delay:g} s"
                    _provisional[key] = (entry, time.monotonic() + delay, delay)
                else:
                    _provisional.pop(key, None)
                    tuned.put(key, entry)
                bump_generation()
                source = "tuned"
                if recorder is not None:
                    recorder.update(op=op, key=key, choice=entry["choice"], source=source,
                                    candidates=entry["timings"], status=entry["status"],
                                    tuning_seconds=entry["tuning_seconds"])
                # every candidate leaves a correct result in the output; the winner runs from now on
                return next(k for k in kernels if k.name == entry["choice"])
    by_name = {k.name: k for k in kernels}
    kernel = by_name.get(entry["choice"]) or _registry.heuristic(fam, kernels, geometry)
    call(kernel)
    if recorder is not None:
        recorder.update(op=op, key=key, choice=kernel.name, source=source, candidates=entry.get("timings", {}),
                        status=entry.get("status", {}), tuning_seconds=entry.get("tuning_seconds"))
    return kernel


def has_provisional():
    """Whether some pick of this process awaits a retune (see CONTENDED_REGION_S)."""
    return bool(_provisional)


def _lookup(tuned, key):
    """The entry for a key: a provisional one (tuned while the machine was busy) until its retune time,
    else the cache's."""
    hit = _provisional.get(key)
    if hit is not None:
        return hit[0] if time.monotonic() < hit[1] else None
    return tuned.get(key)


def _contended():
    """Whether this process's threads lack cores right now (another process holds one)."""
    from . import _cpp_backend
    threads = _cpp_backend.kernel_threads()
    if threads < 2 or _cpp_backend.module is None:
        return False   # one thread: other processes slow every candidate alike
    return _cpp_backend.module.parallel_region_seconds(threads, 9) > CONTENDED_REGION_S


def _kernel_class(fam, g):
    if fam != "conv":
        return None
    terms = (g.C // g.groups) * g.kernel[0] * g.kernel[1] * g.kernel[2]
    return "gemm" if terms >= 16 and g.K // g.groups >= 8 else "few_terms"


def _tune(fam, kernels, geometry, call):
    """Time each candidate on the real arguments and return the cache entry of the fastest.

    A first pass times each candidate once (after a warm-up call the first time a kernel runs
    in this process), skipping ones predicted to lose by far; rounds follow, interleaved, for
    those within 2x of the best; those within 5% get a second round. Every candidate computes
    the right answer, so the output holds a correct result whichever ran last.
    """
    exhaustive = get_autotune() == "exhaustive"
    speed = _RELATIVE_SPEED.get(_kernel_class(fam, geometry), {})
    first = _registry.heuristic(fam, kernels, geometry)
    def rel_speed(k):   # a converting kernel (name suffix "+nchw") is judged by the kernel it wraps
        return speed.get(f"{k.algorithm}/{k.backend}", 0.5)
    order = [first] + sorted((k for k in kernels if k is not first), key=lambda k: -rel_speed(k))
    start = time.perf_counter()
    samples = {}
    status = {}
    best = float("inf")
    best_speed = 1.0

    def budget():
        limit = max(MIN_BUDGET, BUDGET_FACTOR * best)
        return limit * (4 if exhaustive else 1)

    warm_excluded = 0.0
    warmed_here = set()
    prepared = defaultdict(_prepared.notes)   # per candidate: the prepared weights it used and made

    def spent():   # tuning time so far, first-in-process warm-up calls excluded
        return time.perf_counter() - start - warm_excluded

    def timed(kernel):
        """One timed call, after a first call for this key: that one pays for compiling (the first time in the
        process, excluded from the budget) and for per-weights preparation such as Winograd's weight transform
        (counted), neither of which later calls repeat. Adds the samples to `samples` and returns their least:
        the timed call's, and the first call's too where there was one (it can only be slower than a later
        call, but on these VMs a call at 2 threads now and then waits 4-10 ms for a descheduled thread: the
        first pass's one timed sample of a 0.6 ms kernel came out at 4.5 ms, over _CONFIRM x the best, and the
        fastest candidate was pruned)."""
        nonlocal warm_excluded
        first = []
        with prepared[kernel.name]:
            if kernel.name not in warmed_here:
                t0 = time.perf_counter()
                call(kernel)
                first.append(time.perf_counter() - t0)
                if kernel.name not in _warmed:
                    warm_excluded += first[0]
                    _warmed.add(kernel.name)
                warmed_here.add(kernel.name)
            t0 = time.perf_counter()
            call(kernel)
            new = [time.perf_counter() - t0] + first
        samples.setdefault(kernel.name, []).extend(new)
        return min(new)

    for kernel in order:
        rel = rel_speed(kernel)
        if samples and not exhaustive and best_speed / rel > _PREDICTED_LOSS:
            status[kernel.name] = "skipped: predicted slower"
            continue
        # Its predicted cost (an untimed first call and a timed one, at the speed the table predicts)
        # must fit in what is left of the budget: a big layer's slow candidates would otherwise take
        # the tuning past it by themselves.
        if samples and not exhaustive and spent() + _PREDICTION_MARGIN * 2 * best * best_speed / rel > budget():
            status[kernel.name] = "skipped: budget (predicted cost)"
            continue
        if samples and spent() > budget():
            status[kernel.name] = "skipped: budget"
            continue
        t = timed(kernel)
        if t < best:
            best, best_speed = t, rel
    for k in order:
        t = min(samples[k.name]) if k.name in samples else None
        if t is not None and _PRUNE * best < t <= _CONFIRM * best and spent() + _PREDICTION_MARGIN * t <= budget():
            best = min(best, timed(k))
    alive = [k for k in order if k.name in samples and min(samples[k.name]) <= _PRUNE * best]
    for k in order:
        if k.name in samples and k not in alive:
            status[k.name] = "pruned: over 2x the best"

    # Each round in its own order: in a fixed one, a candidate that always ran right after another sharing its
    # prepared weights (Winograd F4 and its tile variants share U) always found them in cache, and one that
    # always ran after a kernel evicting them never did (exhaustive, 256->256 14x14: two tile variants that
    # plan the same work 0.86 against 0.95 ms). Seeded: the same candidates are visited in the same orders.
    shuffle = random.Random(len(kernels)).shuffle

    def rounds(group, max_rounds, budget_share):
        """Interleaved rounds over ``group``, each in a new order: max_rounds, and more until they span
        MIN_SPREAD_S, unless this share of the budget is spent first."""
        nonlocal best
        began = time.perf_counter()
        group = list(group)
        for r in range(_MAX_ROUNDS):
            if r >= max_rounds and time.perf_counter() - began >= MIN_SPREAD_S:
                return
            # Stop before a round that would end past this share (a round costs about its minima).
            round_s = sum(min(samples[k.name]) for k in group)
            if spent() + round_s > budget_share * budget():
                return
            shuffle(group)
            for k in group:
                best = min(best, timed(k))

    # Noise only ever adds time, so each candidate's minimum is its estimate.
    rounds(alive, 40 if exhaustive else 20, 0.5)
    fastest = min(alive, key=lambda k: min(samples[k.name]))
    close = [k for k in alive if min(samples[k.name]) <= (1 + _CLOSE) * min(samples[fastest.name])]
    if len(close) > 1:
        rounds(close, 40 if exhaustive else 20, 0.9)
        fastest = min(close, key=lambda k: min(samples[k.name]))
    # The losers' prepared weights (a Winograd U is 1.8-4x the weights) would otherwise stay while the weights do.
    _prepared.forget(set().union(*(n.made for n in prepared.values())) - prepared[fastest.name].used)
    timings = {k.name: (min(samples[k.name]) if k.name in samples else None) for k in kernels}
    for name in timings:
        status.setdefault(name, "timed")
    return {"choice": fastest.name, "timings": timings, "status": status,
            "tuning_seconds": spent(), "when": time.time()}


class _Recorder(dict):
    pass


def record(retune=False):
    """Context manager collecting what dispatch decides for the calls inside it (used by explain)."""
    class _Ctx:
        def __enter__(self):
            self.rec = _Recorder(retune=retune)
            self.prev = _local.recorder
            _local.recorder = self.rec
            return self.rec

        def __exit__(self, *exc):
            _local.recorder = self.prev
            return False
    return _Ctx()
