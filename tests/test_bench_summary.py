"""The benchmark summary: the autotuner's choice judged by the picked kernel's forced time; NHWC vs our NCHW."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import run  # noqa: E402


def _rows(layer, pick, times, auto_ms):
    rows = [{"layer": layer, "category": "c", "threads": 1, "kernel": k, "ms": ms, "vs_torch": None}
            for k, ms in times.items()]
    rows.append({"layer": layer, "category": "c", "threads": 1, "kernel": "auto/auto", "ms": auto_ms,
                 "vs_torch": None, "pick": pick, "tune_s": 0.0, "eligible": sorted(times)})
    return rows


def test_pick_quality_uses_the_picked_kernels_forced_time():
    rows = (_rows("a", "x/cpp", {"x/cpp": 1.0, "y/cpp": 1.02}, 1.3)     # right pick, noisy auto timing
            + _rows("b", "y/cpp", {"x/cpp": 1.0, "y/cpp": 1.2}, 1.2))   # a pick 1.2x slower than the fastest
    lines = run.summarize(rows)
    line = next(l for l in lines if "autotuner" in l)
    assert "on 1/2 layers (auto calls themselves: 0/2), worst 1.20x" in line, line
    # the pick that lost gets a line with what the tuner had measured
    rows[-1].update(tuning_ms={"x/cpp": 1.4, "y/cpp": 1.1}, tuning_status={"x/cpp": "timed", "y/cpp": "timed"})
    (off,) = [l for l in run.summarize(rows) if "picked" in l]
    assert off == ("1 thr    b: picked y/cpp 1.20x the fastest, x/cpp (1.200 against 1.000 ms); in the tuning "
                   "y/cpp 1.100 ms (timed), x/cpp 1.400 ms (timed)"), off


def test_channels_last_rows_are_compared_with_our_channels_first_ones():
    """The ratio is the channels-last layer's own (vs_ours_nchw on its auto row: the median of its rounds'
    ratios), not one against the channels-first layer's auto row, which was timed at another moment, nor the
    ratio of the two rows' medians."""
    rows = []
    for layer, ratio in [("a", 2.0), ("b", 0.5)]:
        rows += _rows(layer, "x/cpp", {"x/cpp": 1.0}, 5.0)   # timed apart: must not be used
        nhwc = _rows(layer + "_nhwc", "x/cpp", {"x/cpp": 1.0}, 1.0)
        nhwc[-1]["vs_ours_nchw"] = ratio
        nhwc.append({"layer": layer + "_nhwc", "category": "c", "threads": 1, "kernel": run.OURS_NCHW,
                     "ms": 3.0, "vs_torch": None})   # its median: not the ratio either
        rows += nhwc
    for r in rows:
        r["layout"] = "NHWC" if r["layer"].endswith("_nhwc") else "NCHW"
    lines = run.summarize(rows)
    line = next(l for l in lines if "NHWC vs our NCHW" in l)
    assert line.endswith("geomean 1.00x: a 2.00x, b 0.50x"), line
    assert "on 4/4 layers" in next(l for l in lines if "autotuner" in l)   # OURS_NCHW is not a candidate


def test_channels_last_layer_times_our_channels_first_call_beside_it(tmp_path, monkeypatch):
    import cnnkernels as ck
    from suites import ConvLayer
    monkeypatch.setenv("CNNKERNELS_CACHE_DIR", str(tmp_path))
    case = ConvLayer("t_nhwc", 16, 16, 10, 10, 3, padding=1, groups=16, layout="NHWC")
    rows = {r["kernel"]: r for r in run.bench_layer(case, threads=ck.get_num_threads(), repeats=1)}
    assert rows[run.OURS_NCHW]["ms"] > 0 and rows[run.OURS_NCHW]["rel_err"] < 1e-5
    # one round: the median of the rounds' ratios is that round's ratio of the two samples, i.e. of the rows
    assert rows["auto/auto"]["vs_ours_nchw"] == pytest.approx(rows[run.OURS_NCHW]["ms"] / rows["auto/auto"]["ms"])


def test_auto_error_is_the_picked_kernels(tmp_path, monkeypatch):
    """The auto row's error is measured on a call after tuning, i.e. of the kernel auto runs (the tuning call
    returns whichever candidate ran last): it equals the error of the pick's own row."""
    import cnnkernels as ck
    from suites import ConvLayer
    monkeypatch.setenv("CNNKERNELS_CACHE_DIR", str(tmp_path))
    case = ConvLayer("t", 64, 16, 10, 10, 3, padding=1)
    rows = run.bench_layer(case, threads=ck.get_num_threads(), repeats=1)
    auto = next(r for r in rows if r["kernel"] == "auto/auto")
    picked = next(r for r in rows if r["kernel"] == auto["pick"])
    assert auto["rel_err"] == picked["rel_err"], (auto["pick"], auto["rel_err"], picked["rel_err"])


def test_target_lines_lowest_layer_exact_kernels_error_and_scaling():
    """The lines the C++ core's targets are read from: each category's lowest layer beside its geomean; where
    the tuner picked Winograd, the fastest exact C++ kernel per layer against torch (not where it did not); the
    auto picks' largest error; the auto speed-up from 1 to 2 threads on layers over 1 GFLOP (smaller ones left
    out)."""
    rows = []
    for threads, scale in [(1, 1.0), (2, 0.5)]:
        for layer, gflop, exact, wino, err in [("a", 2.0, 0.95, 2.0, 1e-6), ("b", 0.5, 0.85, 1.5, 3e-6)]:
            for kernel, vs in [("igemm/cpp", exact), ("direct/cpp", exact / 10), ("winograd_f4/cpp", wino),
                               ("im2col/numba", 5.0)]:   # a Numba kernel is not the C++ core
                rows.append({"layer": layer, "category": "c", "threads": threads, "kernel": kernel,
                             "ms": scale / vs, "vs_torch": vs, "gflop": gflop, "rel_err": err})
            rows.append({"layer": layer, "category": "c", "threads": threads, "kernel": "auto/auto",
                         "ms": scale / wino, "vs_torch": wino, "gflop": gflop, "rel_err": err,
                         "pick": "winograd_f4/cpp", "tune_s": 0.0, "eligible": []})
    rows += [dict(r, category="d", layer="d" + r["layer"], pick="igemm/cpp", rel_err=1e-7) for r in rows]
    lines = run.summarize(rows)
    assert not any("  d " in line and "without Winograd" in line for line in lines), lines
    assert "1 thr  c                 auto vs torch geomean 1.73x, lowest b 1.50x" in lines, lines
    exact = next(l for l in lines if l.startswith("1 thr") and "without Winograd" in l)
    assert exact.endswith("geomean 0.90x, lowest b 0.85x"), exact
    assert "1 thr  auto picks' largest error vs float64: 3.0e-06 x max abs output (b)" in lines
    assert lines[-1] == ("2 thr / 1 thr  auto speed-up on layers over 1 GFLOP, alternate rounds (the two passes' "
                         "medians): a - (2.00x), da - (2.00x)"), lines[-1]
    next(r for r in rows if r["layer"] == "a" and r["threads"] == 2 and r["kernel"] == "auto/auto")[
        "speedup_interleaved"] = 1.9
    assert run.summarize(rows)[-1].endswith("medians): a 1.90x (2.00x), da - (2.00x)")


def test_thread_scaling_times_both_counts_in_alternate_rounds(monkeypatch):
    """Every round times the layer at both thread counts (the calls switch between them round by round), and
    the speed-up is the median of the rounds' ratios."""
    import cnnkernels as ck
    from suites import ConvLayer
    before, seen = ck.get_num_threads(), []
    real = ck.set_num_threads
    monkeypatch.setattr(run.ck, "set_num_threads", lambda n: (seen.append(n), real(n)))
    try:
        speedup = run.thread_scaling(ConvLayer("t", 4, 4, 8, 8, 3, padding=1), 1, 2, 3)
    finally:
        real(before)
    switches = sum(a != b for a, b in zip(seen, seen[1:]))
    assert speedup > 0 and set(seen) == {1, 2} and switches >= 2 * 5 - 1, (speedup, switches)


def test_machine_limits_set_and_restore_the_blas_threads():
    """The run's first step (its '% of peak' reference) sets the BLAS thread count and puts it back (it broke
    when it reached into single_threaded_blas's internals, which the gating tests did not run)."""
    import machine
    from cnnkernels import _threads
    counts = [g() for _, g in _threads._find_blas_setters()]
    restore = machine._blas_threads(1)
    assert all(g() == 1 for _, g in _threads._find_blas_setters())
    restore()
    assert [g() for _, g in _threads._find_blas_setters()] == counts
