#!/usr/bin/env python3
"""Soak the REPL pool: N checks against the stand-in REPL with random faults injected, then count.

Each check is one of: a clean proof (must be `proved`), a Lean error (`rejected`), a `sorry`
(`rejected` by the policy), a hang (`timeout`), a crash, garbage on stdout, or runaway memory under the
address-space cap (`error`). Prints checks done, faults injected, wrong verdicts (must be 0), processes
leaked after the pool closes (must be 0), peak RSS of the REPL processes and of this process.

Usage: python bench/soak.py [--checks 2000 --workers 4 --fault-rate 0.1 --seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import resource
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proverctl.lean.checker import check_candidate  # noqa: E402
from proverctl.lean.pool import ReplPool  # noqa: E402

STANDIN = [sys.executable, str(ROOT / "tests" / "standin_repl.py"), "--reject", "REJECTME", "--hang-on", "HANGME",
           "--crash-on", "CRASHME", "--garbage-on", "GARBAGEME", "--grow-on", "GROWME"]
HEADER = "import Mathlib\n\nopen Real\n"
EXPECTED = {"ok": "proved", "lean-error": "rejected", "sorry": "rejected", "hang": "timeout", "crash": "error",
            "garbage": "error", "memory": "error"}
BODY = {"ok": "simp", "lean-error": "exact REJECTME", "sorry": "sorry", "hang": "exact HANGME", "crash": "exact CRASHME",
        "garbage": "exact GARBAGEME", "memory": "exact GROWME"}


def pick(rng: random.Random, fault_rate: float) -> str:
    if rng.random() >= fault_rate:
        return rng.choice(["ok", "ok", "ok", "lean-error", "sorry"])
    return rng.choice(["hang", "crash", "garbage", "memory"])


async def soak(checks: int, workers: int, fault_rate: float, seed: int, timeout: float) -> dict:
    rng = random.Random(seed)
    kinds = [pick(rng, fault_rate) for _ in range(checks)]
    wrong = []
    counts = collections.Counter()
    me = psutil.Process()
    async with ReplPool(STANDIN, workers=workers, memory_mb=300, max_uses=50) as pool:
        async def one(i: int, kind: str) -> None:
            code = f"theorem t{i} (x : ℕ) : x + 0 = x := by\n  {BODY[kind]}\n"
            verdict = await check_candidate(pool, header=HEADER, code=code, target_name=f"t{i}",
                                            timeout=timeout if kind == "hang" else 30)
            counts[kind] += 1
            if verdict.kind.value != EXPECTED[kind]:
                wrong.append((i, kind, verdict.kind.value, verdict.reasons[:1]))

        await asyncio.gather(*(one(i, kind) for i, kind in enumerate(kinds)))
        started, crashes = pool.started, pool.crashes
    await asyncio.sleep(0.2)
    leaked = [p.pid for p in me.children(recursive=True) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return {"counts": counts, "wrong": wrong, "leaked": leaked, "started": started, "crashes": crashes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--hang-timeout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    result = asyncio.run(soak(args.checks, args.workers, args.fault_rate, args.seed, args.hang_timeout))
    wall = time.perf_counter() - start
    faults = sum(result["counts"][k] for k in ("hang", "crash", "garbage", "memory"))
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"checks done:        {sum(result['counts'].values())} in {wall:.1f} s")
    print(f"by kind:            {dict(sorted(result['counts'].items()))}")
    print(f"faults injected:    {faults}")
    print(f"REPLs started:      {result['started']} (crashes handled: {result['crashes']})")
    print(f"wrong verdicts:     {len(result['wrong'])}")
    for row in result["wrong"][:10]:
        print(f"  {row}")
    print(f"processes leaked:   {len(result['leaked'])}")
    print(f"peak RSS:           REPL processes {children_peak:.0f} MiB, this process {self_peak:.0f} MiB")
    if result["wrong"] or result["leaked"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
