"""Compare a pytest-benchmark JSON run with a baseline, on figures normalised by the calibration workload.

    python bench/compare.py BASELINE.json CURRENT.json [--threshold 0.10] [--rerun]

Each benchmark's figure is its fastest round divided by the fastest round of a calibration workload
measured in alternating rounds (bench/conftest.py), so a slower or busier machine does not read as a regression. With --rerun, benchmarks over the
threshold are measured again (pytest -k, up to twice) and fail only if every measurement confirms.
Exits 1 on a confirmed regression.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def load(path):
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if "normalised_min" in info:
            norm = info["normalised_min"]
        elif info.get("calibration_s"):   # runs recorded before the interleaved rounds
            norm = b["stats"]["median"] / info["calibration_s"]
        else:
            continue
        out[b["fullname"]] = {"norm": norm, "name": b["name"]}
    return out


def rerun(fullnames):
    """Measure the given benchmarks again; returns their normalised medians."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rerun.json")
        expr = " or ".join(name.split("::")[-1] for name in fullnames)
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, "-m", "pytest", here, "-q", "--benchmark-only", "-k", expr,
                        f"--benchmark-json={path}", "-p", "no:cacheprovider"], check=True, capture_output=True)
        return {k: v["norm"] for k, v in load(path).items()}


def compare(baseline, current, threshold, allow_rerun, attempts=2):
    """Verdict per benchmark. Over-threshold results are re-measured (up to ``attempts`` times with --rerun)
    and count as regressions only if every measurement stays over: run-to-run noise on a shared machine
    is larger than one run's own spread, while a real slowdown persists."""
    ratios = {name: cur["norm"] / baseline[name]["norm"] for name, cur in current.items() if name in baseline}
    suspects = [name for name, r in ratios.items() if r > 1 + threshold]
    for _ in range(attempts if allow_rerun else 0):
        if not suspects:
            break
        again = rerun(suspects)
        for name in suspects:
            if name in again:
                ratios[name] = min(ratios[name], again[name] / baseline[name]["norm"])
        suspects = [name for name in suspects if ratios[name] > 1 + threshold]
    rows, regressions = [], []
    for name in sorted(current):
        if name not in ratios:
            rows.append((name, None, "new"))
            continue
        over = ratios[name] > 1 + threshold
        rows.append((name, ratios[name], "regression" if over else "ok"))
        if over:
            regressions.append(name)
    return rows, regressions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline")
    parser.add_argument("current")
    parser.add_argument("--threshold", type=float, default=0.10)
    parser.add_argument("--rerun", action="store_true", help="re-measure ambiguous cases before failing")
    args = parser.parse_args(argv)
    rows, regressions = compare(load(args.baseline), load(args.current), args.threshold, args.rerun)
    for name, ratio, verdict in rows:
        shown = f"{ratio:6.2f}x" if ratio is not None else "     -"
        print(f"{shown}  {verdict:<17} {name}")
    print(f"{len(regressions)} regression(s) over {args.threshold:.0%} (normalised figures)")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
