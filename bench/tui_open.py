#!/usr/bin/env python3
"""Time to first paint of `proverctl tui` on a store of 100,000 attempts (1,000 targets x 100).

Prints: store build time, then the time from app start until the runs table shows its rows, until a
run's 1,000 targets are listed, and until a target's attempts are listed; the process's CPU while the
run screen sits idle for 3 s (a finished run, and one still running, which polls the store's
fingerprint); the median latency of a cursor key. Targets: first screen and a run's target list < 1 s,
idle CPU < 5 % of a core, key latency < 100 ms.

Usage: python bench/tui_open.py [--targets 1000 --attempts 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from proverctl.tui.app import make_app  # noqa: E402
from proverctl.tui.screens import AttemptsScreen, RunScreen, RunsScreen  # noqa: E402
from proverctl.tui.services import make_services  # noqa: E402
from tui_data import build  # noqa: E402


async def until(pilot, screen_type, predicate) -> None:
    while not (isinstance(pilot.app.screen, screen_type) and predicate(pilot.app.screen)):
        await pilot.pause(0.005)


async def measure(path: Path, targets: int, attempts: int) -> dict[str, float]:
    services = make_services(path)
    app = make_app(services=services)
    start = time.perf_counter()
    out = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, RunsScreen, lambda s: s.table.row_count >= 1)
        out["runs screen (first paint)"] = time.perf_counter() - start
        t = time.perf_counter()
        await pilot.press("enter")
        await until(pilot, RunScreen, lambda s: s.table.row_count == targets)
        out[f"run screen ({targets} targets)"] = time.perf_counter() - t
        t = time.perf_counter()
        await pilot.press("enter")
        await until(pilot, AttemptsScreen, lambda s: s.table.row_count == attempts)
        out[f"attempts screen ({attempts} attempts)"] = time.perf_counter() - t
        await pilot.press("escape")
        await until(pilot, RunScreen, lambda s: True)
        for label, running in (("finished run", False), ("running run (polls)", True)):
            pilot.app.screen.live = running
            cpu, wall = time.process_time(), time.perf_counter()
            await pilot.pause(3.0)
            out[f"idle CPU, run screen, {label} (% of a core)"] = 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)
        latencies = []
        for _ in range(20):
            row = pilot.app.screen.table.cursor_row
            t = time.perf_counter()
            await pilot.press("down")
            await until(pilot, RunScreen, lambda s, row=row: s.table.cursor_row == row + 1)
            latencies.append(time.perf_counter() - t)
        out["key latency, run screen (median of 20, s)"] = sorted(latencies)[len(latencies) // 2]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--attempts", type=int, default=100)
    parser.add_argument("--realistic", action="store_true", help="15 KB outputs and 2.7 KB code per attempt (a ~1.8 GB store)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attempts.sqlite3"
        t = time.perf_counter()
        build(path, attempts_per_target=args.attempts, targets=args.targets, realistic=args.realistic).close()
        print(f"store size {path.stat().st_size / 2**20:.0f} MiB")
        print(f"built a store of {args.targets * args.attempts} attempts in {time.perf_counter() - t:.1f} s")
        import subprocess

        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import proverctl.tui.app, proverctl.tui.screens"], check=True, cwd=ROOT)
        print(f"{'imports in a fresh process (textual and the TUI, s)':52} {time.perf_counter() - start:7.3f}")
        for name, seconds in asyncio.run(measure(path, args.targets, args.attempts)).items():
            print(f"{name:52} {seconds:7.3f}")
    print("targets: runs screen < 1 s, a run's target list < 1 s, idle CPU < 5 %, key latency < 0.1 s")


if __name__ == "__main__":
    main()
