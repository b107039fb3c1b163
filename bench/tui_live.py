#!/usr/bin/env python3
"""The TUI on a running run of 10,000 targets while another process records 20 attempts a second.

Prints: the time until the run screen lists every target; the TUI process's CPU (% of a core) while it
sits on that screen for 6 s and attempts land (the writer is a separate process, so its CPU is not
counted); the median latency of a cursor key (20 presses) while they land; how many attempts landed and
how many of them the table shows. Targets: CPU < 5 % of a core, key latency < 100 ms.

Usage: python bench/tui_live.py [--targets 10000 --rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from proverctl.store.db import Store  # noqa: E402
from proverctl.tui.app import make_app  # noqa: E402
from proverctl.tui.screens import RunScreen  # noqa: E402
from proverctl.tui.services import make_services  # noqa: E402
from tui_data import build  # noqa: E402

WRITER = """
import random, sys, time
sys.path.insert(0, {root!r})
from proverctl.store.db import AttemptRow, Store
targets, rate, seconds = {targets}, {rate}, {seconds}
with Store({path!r}) as store:
    ids = [t["id"] for t in store.targets(1)]
    end = time.monotonic() + seconds
    sample = 10
    while time.monotonic() < end:
        store.add_attempt(AttemptRow(random.choice(ids), sample, 0, None, "out", None, "rejected", ["x"], []))
        sample += 1
        time.sleep(1 / rate)
    print(sample - 10)
"""


async def until(pilot, predicate, limit: float = 120.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the TUI never got there")
        await pilot.pause(0.01)


async def measure(path: Path, targets: int, rate: float) -> dict[str, float]:
    app = make_app(services=make_services(path), run_id=1)
    out: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        start = time.perf_counter()
        await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.table.row_count == targets)
        out[f"run screen lists {targets} targets (s)"] = time.perf_counter() - start
        screen = app.screen
        seconds = 12.0
        writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), targets=targets, rate=rate, seconds=seconds,
                                                                       path=str(path))], stdout=subprocess.PIPE, text=True)
        await pilot.pause(1.0)  # the writer is running
        cpu, wall = time.process_time(), time.perf_counter()
        await pilot.pause(6.0)
        out[f"CPU while {rate:g} attempts/s land, idle user (% of a core)"] = \
            100 * (time.process_time() - cpu) / (time.perf_counter() - wall)
        latencies = []
        for _ in range(20):
            row = screen.table.cursor_row
            t = time.perf_counter()
            await pilot.press("down")
            await until(pilot, lambda row=row: screen.table.cursor_row == row + 1)
            latencies.append(time.perf_counter() - t)
            await pilot.pause(0.05)
        out["key latency while attempts land (median of 20, s)"] = sorted(latencies)[len(latencies) // 2]
        landed = int(writer.communicate(timeout=60)[0].strip())
        await pilot.pause(2.5)  # one more poll
        out["attempts landed"] = landed
        # Rows off screen are redrawn when they scroll in: compare what is on screen with the store, at the
        # top and after jumping to the end of the table.
        wrong = 0
        for keys in ("", "ctrl+end"):
            if keys:
                await pilot.press(keys)
                await pilot.pause(0.5)
            table = screen.table
            first = int(table.scroll_y)
            with Store(path, readonly=True) as store:
                counts = {str(t["id"]): t["n_attempts"] for t in store.targets(1)}
            for index in range(first, min(table.row_count, first + table.size.height - 1)):
                key = table.coordinate_to_cell_key((index, 0)).row_key.value
                wrong += str(table.get_row_at(index)[3]) != str(counts[key])
        out["rows on screen that disagree with the store (top and end)"] = wrong
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attempts.sqlite3"
        build(path, attempts_per_target=2, targets=args.targets).close()
        with Store(path) as store:
            store.update_run(1, status="running", finished=None)
        for name, value in asyncio.run(measure(path, args.targets, args.rate)).items():
            print(f"{name:60} {value:9.3f}")
    print("targets: CPU < 5 % of a core while attempts land, key latency < 0.1 s")


if __name__ == "__main__":
    main()
