"""The benchmark summary judges the autotuner's choice by the picked kernel's forced time."""
import os
import sys

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
    line = next(l for l in run.summarize(rows) if "autotuner" in l)
    assert "on 1/2 layers (auto calls themselves: 0/2), worst 1.20x" in line, line
