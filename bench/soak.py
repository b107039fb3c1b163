#!/usr/bin/env python3
"""Soak the REPL pool: N checks against the stand-in REPL with random faults injected, then count.

Each check is one of: a clean proof (must be `proved`), a Lean error (`rejected`), a `sorry`
(`rejected` by the policy), a hang (`timeout`), a crash, garbage on stdout, or runaway memory under the
address-space cap (`error`). Prints checks done, faults injected, wrong verdicts (must be 0), processes
leaked after the pool closes (must be 0; every REPL process carries a tag in its environment, so one
re-parented to init after its parent died is found too), the peak total RSS of all REPL processes
together (sampled while the soak runs) and the largest single one, and this process's peak RSS.

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


def tagged(tag: str) -> list[psutil.Process]:
    """Every live process whose environment carries the soak's tag (children, grandchildren, re-parented)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PROVERCTL_SOAK_TAG") == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


async def sample_rss(tag: str, peaks: dict, stop: asyncio.Event) -> None:
    while not stop.is_set():
        rss = []
        for proc in tagged(tag):
            try:
                rss.append(proc.memory_info().rss)
            except psutil.Error:
                continue
        peaks["total"] = max(peaks["total"], sum(rss))
        peaks["single"] = max(peaks["single"], max(rss, default=0))
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass


async def soak(checks: int, workers: int, fault_rate: float, seed: int, timeout: float) -> dict:
    import os
    import uuid

    from proverctl.lean.sandbox import sandbox_env

    rng = random.Random(seed)
    kinds = [pick(rng, fault_rate) for _ in range(checks)]
    wrong = []
    counts = collections.Counter()
    tag = uuid.uuid4().hex
    env = {**sandbox_env(Path(os.environ.get("TMPDIR", "/tmp"))), "PROVERCTL_SOAK_TAG": tag}
    peaks = {"total": 0, "single": 0}
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample_rss(tag, peaks, stop))
    async with ReplPool(STANDIN, workers=workers, memory_mb=300, max_uses=50, env=env) as pool:
        async def one(i: int, kind: str) -> None:
            code = f"theorem t{i} (x : ℕ) : x + 0 = x := by\n  {BODY[kind]}\n"
            verdict = await check_candidate(pool, header=HEADER, code=code, target_name=f"t{i}",
                                            timeout=timeout if kind == "hang" else 30)
            counts[kind] += 1
            if verdict.kind.value != EXPECTED[kind]:
                wrong.append((i, kind, verdict.kind.value, verdict.reasons[:1]))

        await asyncio.gather(*(one(i, kind) for i, kind in enumerate(kinds)))
        started, crashes = pool.started, pool.crashes
    stop.set()
    await sampler
    await asyncio.sleep(0.2)
    leaked = [p.pid for p in tagged(tag)]
    return {"counts": counts, "wrong": wrong, "leaked": leaked, "started": started, "crashes": crashes,
            "rss_total_mib": peaks["total"] / 2**20, "rss_single_mib": peaks["single"] / 2**20}


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
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"checks done:        {sum(result['counts'].values())} in {wall:.1f} s")
    print(f"by kind:            {dict(sorted(result['counts'].items()))}")
    print(f"faults injected:    {faults}")
    print(f"REPLs started:      {result['started']} (crashes handled: {result['crashes']})")
    print(f"wrong verdicts:     {len(result['wrong'])}")
    for row in result["wrong"][:10]:
        print(f"  {row}")
    print(f"processes leaked:   {len(result['leaked'])}")
    print(f"peak RSS:           all REPL processes together {result['rss_total_mib']:.0f} MiB (sampled every 0.2 s), "
          f"the largest one {result['rss_single_mib']:.0f} MiB, this process {self_peak:.0f} MiB")
    if result["wrong"] or result["leaked"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
