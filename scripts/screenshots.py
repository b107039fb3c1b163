#!/usr/bin/env python3
"""Save an SVG screenshot of each TUI screen (made by the app itself) into docs/screens/ for the README.

Usage: python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from proverctl.tui.app import make_app  # noqa: E402
from proverctl.tui.screens import AttemptScreen, AttemptsScreen, RunScreen, RunsScreen  # noqa: E402
from proverctl.tui.services import make_services  # noqa: E402
from tui_data import build  # noqa: E402

OUT = ROOT / "docs" / "screens"


async def wait(pilot, screen_type, predicate):
    for _ in range(100):
        await pilot.pause(0.05)
        if isinstance(pilot.app.screen, screen_type) and predicate(pilot.app.screen):
            return
    raise RuntimeError(f"{screen_type.__name__} did not load")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attempts.sqlite3"
        build(path).close()
        services = make_services(path)
        services.output_dir = Path(tmp)
        app = make_app(services=services)
        async with app.run_test(size=(110, 32)) as pilot:
            await wait(pilot, RunsScreen, lambda s: s.table.row_count == 1)
            app.save_screenshot("runs.svg", str(OUT))
            await pilot.press("enter")
            await wait(pilot, RunScreen, lambda s: s.table.row_count == 2)
            app.save_screenshot("run.svg", str(OUT))
            await pilot.press("enter")
            await wait(pilot, AttemptsScreen, lambda s: s.table.row_count == 4)
            app.save_screenshot("attempts.svg", str(OUT))
            await pilot.press("enter")
            await wait(pilot, AttemptScreen, lambda s: s.attempt is not None)
            await pilot.pause(0.2)
            app.save_screenshot("attempt.svg", str(OUT))
    for name in ("runs", "run", "attempts", "attempt"):
        print(f"wrote docs/screens/{name}.svg")


if __name__ == "__main__":
    asyncio.run(main())
