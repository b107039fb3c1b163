#!/usr/bin/env python3
"""Median wall time of `proverctl --help` beside `python -c pass` (the interpreter's own floor).

Target: proverctl --help <= 0.3 s on a 2-core CI machine. Usage: python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = shutil.which("proverctl")
    floor = median_wall([sys.executable, "-c", "pass"], args.runs)
    rows = [("python -c pass", floor)]
    rows.append(("python -m proverctl --help", median_wall([sys.executable, "-m", "proverctl", "--help"], args.runs)))
    if script:
        rows.append(("proverctl --help", median_wall([script, "--help"], args.runs)))
        rows.append(("proverctl models --help", median_wall([script, "models", "--help"], args.runs)))
    print(f"{'command':32} {'median s':>9} {'x floor':>8}")
    for name, value in rows:
        print(f"{name:32} {value:9.3f} {value / floor:8.1f}")
    target = rows[-2][1] if script else rows[1][1]
    print(f"target <= 0.300 s: {'met' if target <= 0.3 else 'NOT met'} ({target:.3f} s)")


if __name__ == "__main__":
    main()
