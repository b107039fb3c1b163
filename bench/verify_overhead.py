#!/usr/bin/env python3
"""Verification throughput through proverctl's REPL pool, and the pool's own overhead per check.

Against the stand-in REPL (tests/standin_repl.py, which answers at once) it runs N candidate checks
through `check_candidate` (policy pass, header reuse, judge) with 1, 2 and 8 workers and prints
checks/s. The pool's overhead is the time per check through the pool minus a bare request/response
round trip to the same stand-in with the same text (target: <= 2 ms). Where real Lean is set up
(`proverctl lean setup`), it also times one proof with the header reused against a fresh process
that imports the header again.

Usage: python bench/verify_overhead.py [--checks 400]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proverctl.lean.checker import check_candidate  # noqa: E402
from proverctl.lean.pool import ReplPool  # noqa: E402
from proverctl.lean.repl import ReplProcess  # noqa: E402
from proverctl.lean.protocol import CommandRequest  # noqa: E402

STANDIN = [sys.executable, str(ROOT / "tests" / "standin_repl.py")]
HEADER = "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n\n"
CODE = (
    "theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 := by\n"
    "  norm_num [abs_of_nonneg]\n  <;> linarith\n"
)


async def bare_round_trips(n: int) -> float:
    repl = ReplProcess(STANDIN)
    await repl.start()
    try:
        env = (await repl.request(CommandRequest(HEADER), 30)).env
        body = CODE + "\n#print axioms mathd_algebra_10\n"
        start = time.perf_counter()
        for _ in range(n):
            await repl.request({"cmd": body, "env": env}, 30)
        return (time.perf_counter() - start) / n
    finally:
        await repl.close()


async def through_pool(n: int, workers: int) -> tuple[float, float]:
    async with ReplPool(STANDIN, workers=workers) as pool:
        # Warm every worker (process start + header) before timing.
        await asyncio.gather(*(check_candidate(pool, header=HEADER, code=CODE, target_name="mathd_algebra_10") for _ in range(workers)))
        start = time.perf_counter()
        verdicts = await asyncio.gather(*(check_candidate(pool, header=HEADER, code=CODE, target_name="mathd_algebra_10") for _ in range(n)))
        wall = time.perf_counter() - start
    assert all(v.proved for v in verdicts)
    return n / wall, wall / n


async def real_lean() -> None:
    from proverctl.errors import ProverctlError
    from proverctl.lean.workspace import resolve_repl
    from proverctl.settings import Settings

    settings = Settings.load()
    try:
        target = resolve_repl(settings.repl_command, settings.lean_project, settings.lean_profile)
    except ProverctlError as exc:
        print(f"real Lean: skipped ({exc.message})")
        return
    async with ReplPool(target.command, cwd=target.cwd, workers=1) as pool:
        first = await check_candidate(pool, header=HEADER, code=CODE, target_name="mathd_algebra_10", timeout=300)
        start = time.perf_counter()
        again = await check_candidate(pool, header=HEADER, code=CODE, target_name="mathd_algebra_10", timeout=300)
        reused = time.perf_counter() - start
    start = time.perf_counter()
    async with ReplPool(target.command, cwd=target.cwd, workers=1) as pool:
        await check_candidate(pool, header=HEADER, code=CODE, target_name="mathd_algebra_10", timeout=300)
    fresh = time.perf_counter() - start
    print(f"real Lean ({target.source}): header reused {reused:.2f} s/proof, fresh process {fresh:.2f} s/proof "
          f"({fresh / reused:.0f}x); verdicts {first.kind.value}/{again.kind.value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=400)
    args = parser.parse_args()
    bare = statistics.median(asyncio.run(bare_round_trips(args.checks)) for _ in range(3))
    print(f"bare round trip to the stand-in: {bare * 1000:.2f} ms")
    print(f"{'workers':>7} {'checks/s':>9} {'ms/check':>9} {'overhead ms':>12}")
    for workers in (1, 2, 8):
        rate, per = asyncio.run(through_pool(args.checks, workers))
        overhead = per - bare if workers == 1 else float("nan")
        print(f"{workers:>7} {rate:9.0f} {per * 1000:9.2f} {overhead * 1000:12.2f}")
    print("overhead = ms/check with 1 worker minus the bare round trip (target <= 2 ms)")
    if shutil.which("lake"):
        asyncio.run(real_lean())
    else:
        print("real Lean: skipped (no `lake` on PATH)")


if __name__ == "__main__":
    main()
