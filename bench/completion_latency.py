#!/usr/bin/env python3
"""What one TAB costs in the real shells: the median wall time of bash's completion function
(completions/proverctl.bash, called as bash calls it on a TAB) and of fish's `complete -C`, for a few
command lines, beside `python -c pass` (the interpreter's floor) and the bare completion process.

Bytecode is written first (`compileall`), as an installed package has it: a run under
PYTHONDONTWRITEBYTECODE would time Python compiling proverctl, not a TAB. Target: a TAB under 150 ms.
Usage: python bench/completion_latency.py [--runs 15] (with the venv's bin on PATH)
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINES = [["prove", "--f"], ["show", ""], ["models", "pull", ""], [""]]


def timed(cmd: list[str], env: dict, runs: int) -> float:
    values = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        values.append(time.perf_counter() - start)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = shutil.which("proverctl")
    if script is None:
        sys.exit("proverctl is not on PATH (activate the venv)")
    compileall.compile_dir(str(ROOT / "proverctl"), quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PROVERCTL_HOME"] = tempfile.mkdtemp(prefix="proverctl-tab-")
    rows = [("python -c pass", timed([sys.executable, "-c", "pass"], env, args.runs))]
    bash_script = ROOT / "completions" / "proverctl.bash"
    for words in LINES:
        line = "proverctl " + " ".join(words)
        process_env = {**env, "_PROVERCTL_COMPLETE": "bash", "_PROVERCTL_COMPLETE_WORDS": "\n".join(words[:-1]),
                       "_PROVERCTL_COMPLETE_INCOMPLETE": words[-1]}
        rows.append((f"process  {line!r}", timed([script], process_env, args.runs)))
        if shutil.which("bash"):
            quoted = " ".join(f"'{w}'" for w in ["proverctl", *words])
            call = (f"source {bash_script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; "
                    f"_proverctl; echo ${{#COMPREPLY[@]}}")
            rows.append((f"bash TAB {line!r}", timed(["bash", "--norc", "-c", call], {**env, "PATH": os.environ["PATH"]}, args.runs)))
        if shutil.which("fish"):
            fish_script = ROOT / "completions" / "proverctl.fish"
            call = f"source {fish_script}; complete -C '{line}'"
            rows.append((f"fish TAB {line!r}", timed(["fish", "--no-config", "-c", call], env, args.runs)))
    floor = {"bash": timed(["bash", "--norc", "-c", "true"], env, args.runs) if shutil.which("bash") else 0.0,
             "fish": timed(["fish", "--no-config", "-c", "true"], env, args.runs) if shutil.which("fish") else 0.0}
    print(f"{'what':48} {'median':>9}")
    for name, seconds in rows:
        print(f"{name:48} {seconds * 1000:7.0f} ms")
    print(f"{'(bash -c true)':48} {floor['bash'] * 1000:7.0f} ms")
    print(f"{'(fish -c true)':48} {floor['fish'] * 1000:7.0f} ms")
    worst = max(seconds for name, seconds in rows if "TAB" in name or "process" in name)
    print(f"slowest TAB: {worst * 1000:.0f} ms (target < 150 ms): {'ok' if worst < 0.150 else 'OVER'}")


if __name__ == "__main__":
    main()
