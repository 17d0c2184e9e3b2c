"""The autotuner: cache hits and misses, key separation, persistence, corruption, concurrency, modes."""
import json
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import _autotune
from cnnkernels.__main__ import main as cli

from . import naive

rng = np.random.default_rng(5)
X = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
W = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)


def test_miss_then_hit(fresh_cache):
    first = ck.explain("conv2d", X, W, padding=1, verbose=False)
    assert first["source"] == "tuned"
    assert first["choice"] in [f"{a}/{b}" for a, b in ck.available_kernels("conv2d")]
    timed = [t for t in first["candidates"].values() if t is not None]
    assert len(timed) >= 2 and all(t > 0 for t in timed)
    second = ck.explain("conv2d", X, W, padding=1, verbose=False)
    assert second["source"] == "cache" and second["choice"] == first["choice"]
    assert os.path.exists(fresh_cache / "tuning.json")


def test_keys_separate_dtype_threads_shapes(fresh_cache):
    base = ck.explain("conv2d", X, W, padding=1, verbose=False)
    assert ck.explain("conv2d", X.astype(np.float64), W, padding=1, verbose=False)["source"] == "tuned"
    assert ck.explain("conv2d", X[:, :, :10], W, padding=1, verbose=False)["source"] == "tuned"
    assert ck.explain("conv2d", X, W, padding=1, stride=2, verbose=False)["source"] == "tuned"
    before = ck.get_num_threads()
    try:
        ck.set_num_threads(1 if before != 1 else 2)
        assert ck.explain("conv2d", X, W, padding=1, verbose=False)["source"] == "tuned"
    finally:
        ck.set_num_threads(before)
    assert ck.explain("conv2d", X, W, padding=1, verbose=False)["key"] == base["key"]


def test_persisted_across_processes(fresh_cache):
    ck.explain("conv2d", X, W, padding=1, verbose=False)
    code = ("import numpy as np, cnnkernels as ck\n"
            "rng = np.random.default_rng(5)\n"
            "x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)\n"
            "w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)\n"
            f"ck.set_num_threads({ck.get_num_threads()})\n"
            "print(ck.explain('conv2d', x, w, padding=1, verbose=False)['source'])\n")
    env = dict(os.environ, CNNKERNELS_CACHE_DIR=str(fresh_cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "cache"
    # the file is read at import: the first call of the tuned shape finds its pick without reading it
    code = code.replace("print(", "ck._tuning_cache.TuningCache._read_file = None\nprint(", 1)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "cache"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": 99, "entries": {}}),
                                     json.dumps({"format": 1, "version": "0.0.0-other", "entries": {}})])
def test_corrupt_or_foreign_cache_is_ignored_and_rebuilt(fresh_cache, content):
    (fresh_cache / "tuning.json").write_text(content)
    with pytest.warns(RuntimeWarning, match="ignoring"):
        report = ck.explain("conv2d", X, W, padding=1, verbose=False)
    assert report["source"] == "tuned"
    data = json.loads((fresh_cache / "tuning.json").read_text())
    assert data["version"] == ck.__version__ and len(data["entries"]) == 1


def test_malformed_cache_entries_are_dropped(fresh_cache, tmp_path, capsys):
    """Entries of the right format whose fields have other types (edited by hand, or an imported profile) are
    left out with a warning and tuned again; explain() then reports a fresh tuning (it failed formatting them)."""
    ck.explain("conv2d", X, W, padding=1, verbose=False)
    path = fresh_cache / "tuning.json"
    data = json.loads(path.read_text())
    (key, entry), = data["entries"].items()
    bad = [dict(entry, timings=[1]), dict(entry, timings={"x": "1"}), dict(entry, status=[]),
           dict(entry, tuning_seconds="1"), dict(entry, when=[0])]
    for broken in bad:
        path.write_text(json.dumps(dict(data, entries={key: broken})))
        _autotune.reset_cache()
        with pytest.warns(RuntimeWarning, match="malformed"):
            report = ck.explain("conv2d", X, W, padding=1, verbose=False)
        assert report["source"] == "tuned" and str(report)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"entries": {key: bad[0], "k2": entry}}))
    assert cli(["import", str(profile)]) == 0
    assert "imported 1 entries" in capsys.readouterr().out
    assert set(_autotune.cache().entries()) == {key, "k2"} and isinstance(_autotune.cache().get(key)["timings"], dict)


def test_unwritable_cache_still_computes(tmp_path, monkeypatch):
    target = tmp_path / "file-not-dir"
    target.write_text("")
    monkeypatch.setenv("CNNKERNELS_CACHE_DIR", str(target / "sub"))
    # A pick tuned while the machine is busy is not written at all (so no warning): pin "not busy", as fresh_cache.
    monkeypatch.setattr(_autotune, "_contended", lambda: False)
    _autotune.reset_cache()
    try:
        with pytest.warns(RuntimeWarning, match="could not write"):
            y = ck.conv2d(X, W, padding=1)
        assert y.shape == (1, 16, 12, 12)
    finally:
        _autotune.reset_cache()


def test_threads_tuning_one_key_do_it_once(fresh_cache, monkeypatch):
    calls = []
    real = _autotune._tune

    def counting(*args):
        calls.append(1)
        return real(*args)
    monkeypatch.setattr(_autotune, "_tune", counting)
    results = [None] * 4
    errors = []

    def work(i):
        try:
            results[i] = ck.conv2d(X, W, padding=1)
        except Exception as exc:   # surfaced below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(calls) == 1
    # Each result is correct to the precision policy (the tuning thread's holds its last candidate's: a
    # Winograd F6 result differs from the pick's by up to ~1e-5 x max |y|, so they are not compared with
    # each other).
    ref = naive.conv(X.astype(np.float64), W.astype(np.float64), None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    for r in results:
        assert np.abs(r - ref).max() <= 1e-4 * np.abs(ref).max()


def test_two_processes_tuning_concurrently(fresh_cache):
    code = ("import sys, numpy as np, cnnkernels as ck\n"
            "n = int(sys.argv[1])\n"
            "x = np.ones((1, 4, 8 + n, 8), np.float32)\n"
            "for k in range(1, 6):\n"
            "    ck.conv2d(x, np.ones((4, 4, k, k), np.float32))\n")
    # One thread each: two 2-thread processes on a 2-core machine would rightly count as a busy machine
    # and keep their picks out of the file (test_busy_machine_pick_is_provisional).
    env = dict(os.environ, CNNKERNELS_CACHE_DIR=str(fresh_cache), CNNKERNELS_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], env=env) for i in range(2)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    data = json.loads((fresh_cache / "tuning.json").read_text())
    assert len(data["entries"]) == 10      # both processes' keys survived the interleaved writes


def test_modes(fresh_cache, monkeypatch):
    try:
        ck.set_autotune("off")
        report = ck.explain("conv2d", X, W, padding=1, verbose=False)
        assert report["source"] == "heuristic"
        assert not os.path.exists(fresh_cache / "tuning.json")
        ck.set_autotune("on")
        on = ck.explain("conv2d", X, W, padding=1, verbose=False)
        assert not any("[" in name for name in on["candidates"])
        ck.set_autotune("exhaustive")
        report = ck.explain("conv2d", X, W, padding=1, verbose=False)
        assert report["source"] == "tuned"
        assert all(t is not None for t in report["candidates"].values())   # nothing skipped by prediction
        if "cpp" in {b for _, b in ck.available_kernels("conv2d")}:   # and the C++ kernels' tile variants
            variants = {name for name in report["candidates"] if "[" in name}
            assert {"winograd_f4/cpp[block=768k]", "winograd_f4/cpp[block=3072k]"} <= variants
            assert any(name.startswith("igemm/cpp[chunk=") for name in variants)
            assert report["key"] != on["key"]   # kept apart: the candidates are part of the key
            # a forced algorithm and backend: its own variants tuned
            forced = ck.explain("conv2d", X, W, padding=1, algorithm="igemm", backend="cpp", verbose=False)
            assert forced["source"] == "tuned" and set(forced["candidates"]) == {
                "igemm/cpp", *(n for n in variants if n.startswith("igemm/"))}
    finally:
        ck.set_autotune("on")
    with pytest.raises(ValueError, match="mode must be one of"):
        ck.set_autotune("fast")
    out = subprocess.run([sys.executable, "-c", "import cnnkernels as ck; print(ck.get_autotune())"],
                         env=dict(os.environ, CNNKERNELS_AUTOTUNE="off"), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "off"


def test_rounds_visit_candidates_in_varied_orders(monkeypatch):
    """Candidates sharing prepared state (Winograd F4 and its tile variants share U) are timed fairly: in a fixed
    order, one that always ran after a kernel evicting that state never found it warm. Simulated on a fake
    clock: a and b cost 1.0 ms right after either of them (the state warm), 1.2 ms otherwise and right after a's
    first call (which prepares the state, leaving it cold); c costs 1.1 ms. a and b must time alike."""
    from cnnkernels._registry import Kernel
    clock, prev, calls = [0.0], [None], set()

    class FakeTime:
        perf_counter = staticmethod(lambda: clock[0])
        time = staticmethod(lambda: 0.0)
        monotonic = staticmethod(lambda: clock[0])

    def call(kernel):
        v = kernel.variant
        warm = prev[0] in ("a", "b") and prev[0] != "a-first"
        clock[0] += 1.1e-3 if v == "c" else (1.0e-3 if warm and v in ("a", "b") else 1.2e-3)
        prev[0] = "a-first" if v == "a" and v not in calls else v
        calls.add(v)

    monkeypatch.setattr(_autotune, "time", FakeTime)
    kernels = [Kernel("direct", "cpp", None, variant=v) for v in "abc"]
    entry = _autotune._tune("max_pool", kernels, None, call)
    t = entry["timings"]
    assert t["direct/cpp[a]"] == pytest.approx(1.0e-3) and t["direct/cpp[b]"] == pytest.approx(1.0e-3)
    assert t["direct/cpp[c]"] == pytest.approx(1.1e-3)
    assert entry["choice"] in ("direct/cpp[a]", "direct/cpp[b]")


def test_forced_kernels_are_not_tuned(fresh_cache):
    report = ck.explain("conv2d", X, W, padding=1, algorithm="direct", backend="numba", verbose=False)
    assert report["source"] == "forced" and report["choice"] == "direct/numba"


def test_explain_prints_a_table(fresh_cache, capsys):
    ck.explain("max_pool2d", X, 2)
    printed = capsys.readouterr().out
    assert printed.startswith("max_pool2d: runs direct/")
    with pytest.raises(ValueError, match="op must be"):
        ck.explain("conv9d", X, W)


def test_cli_tune_show_export_import(fresh_cache, tmp_path, capsys):
    assert cli(["tune", "conv2d:input=1x8x10x10,weight=8x8x3x3,padding=1"]) == 0
    assert "conv2d: runs" in capsys.readouterr().out
    exported = tmp_path / "profile.json"
    assert cli(["export", str(exported)]) == 0
    assert cli(["clear"]) == 0
    assert _autotune.cache().entries() == {}
    assert cli(["import", str(exported)]) == 0
    capsys.readouterr()
    assert cli(["show"]) == 0
    assert "conv|NCDHW|float32" in capsys.readouterr().out
    x = np.zeros((1, 8, 10, 10), np.float32)
    assert ck.explain("conv2d", x, np.zeros((8, 8, 3, 3), np.float32), padding=1, verbose=False)["source"] == "cache"


def test_cli_reports_bad_specs_and_files_in_one_line(fresh_cache, tmp_path, capsys):
    """Exit status 2 and one line naming the problem, no traceback; a huge shape is refused before any data."""
    not_json = tmp_path / "x.txt"
    not_json.write_text("hello")
    dict_file = tmp_path / "calls.json"
    dict_file.write_text('{"op": "conv2d"}')
    cases = [(["tune", "conv2d:input=1xax3"], "a shape must be ints"),
             (["tune", "conv2d:weight=3x3"], "must name its op and input"),
             (["tune", "conv2d:input=100000x100000x100x100,weight=1x100000x1x1"], "more than this machine's memory"),
             (["tune", "conv2d:input=1x3x8x8,weight=4x3x3x3,padding=9x9x9"], "padding must be"),
             (["tune", "--file", str(tmp_path / "missing.json")], "No such file"),
             (["tune", "--file", str(dict_file)], "must hold a JSON list"),
             (["import", str(not_json)], "is not JSON")]
    for argv, message in cases:
        assert cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("python -m cnnkernels: error: ") and message in err and err.count("\n") == 1, err


def test_busy_machine_pick_is_provisional(fresh_cache, monkeypatch):
    """A pick tuned while the threads lacked cores is used, kept out of the file, and tuned again later
    (persisted once the machine is quiet); the functional memo never freezes it."""
    busy = [True]
    monkeypatch.setattr(_autotune, "_contended", lambda: busy[0])
    monkeypatch.setattr(_autotune, "_provisional", {})
    first = ck.explain("conv2d", X, W, padding=1, verbose=False)
    assert first["source"] == "tuned" and "machine busy" in first["status"]["(tuning)"]
    assert not os.path.exists(fresh_cache / "tuning.json")
    expected = ck.conv2d(X, W, padding=1, algorithm="im2col", backend="numba")
    np.testing.assert_allclose(ck.conv2d(X, W, padding=1), expected, rtol=1e-4, atol=1e-4)   # provisional pick
    assert ck.explain("conv2d", X, W, padding=1, verbose=False)["source"] == "cache"
    assert _autotune.has_provisional()
    key = first["key"]
    entry, _, delay = _autotune._provisional[key]
    busy[0] = False
    _autotune._provisional[key] = (entry, 0.0, delay)   # its retune time has come
    again = ck.explain("conv2d", X, W, padding=1, verbose=False)
    assert again["source"] == "tuned" and "(tuning)" not in again["status"]
    assert not _autotune.has_provisional()
    with open(fresh_cache / "tuning.json") as f:
        assert key in json.load(f)["entries"]


@pytest.mark.skipif(ck.info()["cpp"] is None, reason="the probe is part of the C++ extension")
def test_parallel_region_probe_is_quick_on_an_idle_thread_pool():
    from cnnkernels import _cpp_backend
    t = _cpp_backend.module.parallel_region_seconds(2, 9)
    assert 0 < t < 1.0
    with pytest.raises(ValueError, match="rounds must be in"):
        _cpp_backend.module.parallel_region_seconds(2, 0)


def _fast_and_slow(monkeypatch, slow_seconds, min_budget):
    """Two candidates for _tune: fast (10 ms, the heuristic's pick) and slow (slow_seconds per call, predicted
    by the speed table to be 5x slower), a budget of max(min_budget, 2x the best); returns them, the list of
    calls made, and the call function."""
    import time
    from types import SimpleNamespace
    fast = SimpleNamespace(name="fast/x", algorithm="fast", backend="x")
    slow = SimpleNamespace(name="slow/x", algorithm="slow", backend="x")
    ran = []

    def call(kernel):
        ran.append(kernel.name)
        time.sleep(0.01 if kernel is fast else slow_seconds)
    monkeypatch.setattr(_autotune._registry, "heuristic", lambda fam, kernels, g: fast)
    monkeypatch.setattr(_autotune, "_kernel_class", lambda fam, g: "test")
    monkeypatch.setitem(_autotune._RELATIVE_SPEED, "test", {"fast/x": 1.0, "slow/x": 0.2})   # predicted 5x slower
    monkeypatch.setattr(_autotune, "MIN_BUDGET", min_budget)
    monkeypatch.setattr(_autotune, "BUDGET_FACTOR", 2.0)
    return fast, slow, ran, call


def test_tuning_skips_a_candidate_whose_predicted_cost_exceeds_the_budget(monkeypatch):
    """A slow candidate whose predicted time (best so far x the speed table's ratio) would take the tuning
    past its budget is not run at all; the fast one is picked."""
    fast, slow, ran, call = _fast_and_slow(monkeypatch, 0.2, 0.05)
    entry = _autotune._tune("conv", [fast, slow], None, call)
    assert entry["choice"] == "fast/x"
    assert "slow/x" not in ran
    assert entry["status"]["slow/x"] == "skipped: budget (predicted cost)"
    assert entry["tuning_seconds"] < 0.2


def test_tuning_keeps_a_margin_on_predicted_costs(monkeypatch):
    """A candidate predicted to take 0.10 s (two calls at 5x the best's 10 ms) with about 0.13 s of budget left
    is not timed: its prediction is trusted only with a 1.5x margin (predictions had run short and taken
    suite tunings past their budget)."""
    fast, slow, ran, call = _fast_and_slow(monkeypatch, 0.05, 0.14)
    entry = _autotune._tune("conv", [fast, slow], None, call)
    assert "slow/x" not in ran
    assert entry["status"]["slow/x"] == "skipped: budget (predicted cost)"
    monkeypatch.setattr(_autotune, "_PREDICTION_MARGIN", 1.0)   # without the margin it fits, and is timed
    ran.clear()
    entry = _autotune._tune("conv", [fast, slow], None, call)
    assert "slow/x" in ran and entry["status"]["slow/x"] != "skipped: budget (predicted cost)"


def test_tuning_rounds_outlast_a_short_burst_of_load(monkeypatch):
    """The faster candidate is slowed (1.6x the other's time) during the first 60 ms of tuning, as by a burst of
    load on the machine: the rounds of these sub-millisecond candidates go on until their samples span
    MIN_SPREAD_S, so the fast one still gets clean samples and is picked (20 quick rounds all fell inside it)."""
    import time
    from types import SimpleNamespace
    fast = SimpleNamespace(name="fast/x", algorithm="fast", backend="x")
    slow = SimpleNamespace(name="slow/x", algorithm="slow", backend="x")
    start = []

    def call(kernel):
        now = time.perf_counter()
        start.append(now)
        busy = now - start[0] < 0.06
        duration = 0.0005 if kernel is slow else (0.0008 if busy else 0.0002)   # busy: within the 2x pruning
        while time.perf_counter() - now < duration:
            pass
    monkeypatch.setattr(_autotune._registry, "heuristic", lambda fam, kernels, g: slow)
    monkeypatch.setattr(_autotune, "_kernel_class", lambda fam, g: "test")
    monkeypatch.setitem(_autotune._RELATIVE_SPEED, "test", {"fast/x": 1.0, "slow/x": 1.0})
    monkeypatch.setattr(_autotune, "MIN_SPREAD_S", 0.1)
    entry = _autotune._tune("conv", [fast, slow], None, call)
    assert entry["choice"] == "fast/x", entry["timings"]
    assert entry["timings"]["fast/x"] < 0.0004
    assert entry["tuning_seconds"] < 0.3


def _race(monkeypatch, slow_calls, slow_s, first):
    """Tune "fast/x" (1 ms a call) against "other/x" (2.5 ms), fast's calls numbered slow_calls (its first call,
    the warm-up, is 1) taking slow_s instead, `first` timed first; the cache entry."""
    import time
    from types import SimpleNamespace
    fast = SimpleNamespace(name="fast/x", algorithm="fast", backend="x")
    other = SimpleNamespace(name="other/x", algorithm="other", backend="x")
    calls = []

    def call(kernel):
        calls.append(kernel.name)
        slowed = kernel is fast and calls.count("fast/x") in slow_calls
        duration = slow_s if slowed else (0.001 if kernel is fast else 0.0025)
        now = time.perf_counter()
        while time.perf_counter() - now < duration:
            pass
    monkeypatch.setattr(_autotune._registry, "heuristic", lambda fam, kernels, g: fast if first == "fast" else other)
    monkeypatch.setattr(_autotune, "_kernel_class", lambda fam, g: "test")
    monkeypatch.setitem(_autotune._RELATIVE_SPEED, "test", {"fast/x": 1.0, "other/x": 1.0})
    return _autotune._tune("conv", [fast, other], None, call)


def test_one_slow_first_sample_does_not_prune_the_winner(monkeypatch):
    """The fastest candidate's first two calls (warm-up and first timed) are slowed 8x (a burst of load): it
    would be pruned as over 2x the other's time, but within _CONFIRM x it is timed once more, stays in the race
    and is picked."""
    entry = _race(monkeypatch, {1, 2}, 0.008, "fast")
    assert entry["choice"] == "fast/x", entry
    assert entry["timings"]["fast/x"] < 0.002


def test_a_spike_beyond_confirm_on_the_first_timed_call_does_not_prune_the_winner(monkeypatch):
    """The fastest candidate's first timed call waits 12 ms (a thread descheduled on a VM: 4-10 ms), 4.8x the
    other's time and 12x its own, beyond _CONFIRM: its first (warm-up) call, 1 ms, counts as a sample,
    so it is not pruned and is picked."""
    monkeypatch.setattr(_autotune, "_CONFIRM", 4.0)   # (so the spike is beyond it with room to spare)
    entry = _race(monkeypatch, {2}, 0.012, "other")
    assert entry["choice"] == "fast/x", entry
    assert entry["timings"]["fast/x"] < 0.002 and entry["status"]["fast/x"] == "timed"


def test_cache_file_keeps_the_most_recently_tuned(fresh_cache, monkeypatch):
    """The file is bounded (every write rewrites it): past MAX_ENTRIES the oldest tuned go, never the one
    being written; a lookup of a dropped key is a miss (tuned again)."""
    from cnnkernels import _tuning_cache
    monkeypatch.setattr(_tuning_cache, "MAX_ENTRIES", 5)
    cache = _tuning_cache.TuningCache(str(fresh_cache))
    for i in range(8):
        cache.put(f"k{i}", {"choice": "direct/cpp", "when": 100.0 + i})
    with open(fresh_cache / "tuning.json") as f:
        assert sorted(json.load(f)["entries"]) == ["k3", "k4", "k5", "k6", "k7"]
    cache.put("old", {"choice": "direct/cpp", "when": 1.0})   # written now, though tuned long ago (an import)
    fresh = _tuning_cache.TuningCache(str(fresh_cache))
    assert sorted(fresh.entries()) == ["k4", "k5", "k6", "k7", "old"]
    assert fresh.get("k3") is None and fresh.get("k7")["when"] == 107.0
