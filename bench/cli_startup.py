#!/usr/bin/env python3
"""Median wall time of `proverctl --help` and of data subcommands beside `python -c pass` (the
interpreter's own floor), the commands interleaved run by run so machine noise hits them alike.

Targets: `proverctl --help` <= 0.3 s on a 2-core machine; a data subcommand (`runs`, `show`, `paths`)
<= 1.3x `--help`. Usage: python bench/cli_startup.py [--runs 15] (with the venv's bin on PATH)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = shutil.which("proverctl") or ""
    home = tempfile.mkdtemp(prefix="proverctl-startup-")
    env = {**os.environ, "PROVERCTL_HOME": home}
    commands = [("python -c pass", [sys.executable, "-c", "pass"]),
                ("python -m proverctl --help", [sys.executable, "-m", "proverctl", "--help"])]
    if script:
        commands += [("proverctl --help", [script, "--help"]), ("proverctl --version", [script, "--version"]),
                     ("proverctl models --help", [script, "models", "--help"]), ("proverctl paths", [script, "paths"]),
                     ("proverctl runs --format json", [script, "runs", "--format", "json"])]
    times: dict[str, list[float]] = {name: [] for name, _ in commands}
    for _ in range(args.runs):
        for name, cmd in commands:  # interleaved: one run of each, then again
            start = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    floor = medians["python -c pass"]
    print(f"{'command':32} {'median s':>9} {'x floor':>8}")
    for name, value in medians.items():
        print(f"{name:32} {value:9.3f} {value / floor:8.1f}")
    if script:
        helps = medians["proverctl --help"]
        print(f"target --help <= 0.300 s: {'met' if helps <= 0.3 else 'NOT met'} ({helps:.3f} s)")
        worst = max(medians["proverctl paths"], medians["proverctl runs --format json"])
        print(f"target data subcommand <= 1.3x --help: {worst / helps:.2f}x ({'met' if worst <= 1.3 * helps else 'NOT met'})")


if __name__ == "__main__":
    main()
