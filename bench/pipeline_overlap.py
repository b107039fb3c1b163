#!/usr/bin/env python3
"""Does the prove pipeline overlap generation and verification?

A generator and a verifier of controlled latency (default: 40 targets x 8 samples, 50 ms per
generation with up to 64 in flight, 80 ms per check on W workers) run through the real Pipeline and
attempt store; the pipeline runs as many checks as the verifier has workers (its `capacity`, as the CLI
does with the REPL pool). Prints the wall time beside max(gen, verify) (each stage alone at its
concurrency) and gen + verify (no overlap), for a verification-bound and a generation-bound setting.
Goal: wall <= 1.1 x max. Then checks/s against workers (8 to 64, 100 ms checks): no hidden cap.

Usage: python bench/pipeline_overlap.py [--targets 40 --k 8 --gen-ms 50 --verify-ms 80 --workers 2 8]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proverctl.inference.client import Completion  # noqa: E402
from proverctl.lean.targets import from_row  # noqa: E402
from proverctl.lean.verdict import Verdict, VerdictKind  # noqa: E402
from proverctl.pipeline import Pipeline, ProveOptions  # noqa: E402
from proverctl.store.db import Store  # noqa: E402

WAITING: dict[int, int] = {}  # workers -> the most candidates that waited for a check in any run
ANSWER = "```lean4\ntheorem t{n} : True := by\n  trivial\n```"


class SlowGenerator:
    """Each sample takes `seconds` on average, spread uniformly over 0.5x-1.5x (seeded): real samples
    do not all finish at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.rng = random.Random(1)

    async def complete(self, prompt, seed=None) -> Completion:
        await asyncio.sleep(self.seconds * (0.5 + self.rng.random()))
        name = prompt.messages[-1]["content"].split("theorem ")[1].split(" ")[0]
        return Completion(ANSWER.replace("t{n}", name), "stop", 10, 10, self.seconds, seed)


class SlowVerifier:
    """Stands in for the REPL pool: `workers` checks at a time, each taking `seconds`."""

    def __init__(self, seconds: float, workers: int) -> None:
        self.seconds = seconds
        self.slots = asyncio.Semaphore(workers)
        self.capacity = workers

    async def verify(self, target, code) -> Verdict:
        async with self.slots:
            await asyncio.sleep(self.seconds)
        return Verdict(VerdictKind.rejected, ["bench"], seconds=self.seconds)


def run_once(targets: int, k: int, gen: float, verify: float, workers: int, inflight: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite3")
        run_id = store.create_run(kind="bench", command="bench", input="bench", model=None, revision=None, engine=None, endpoint=None,
                                  lean_profile=None, settings={})
        items_t = [from_row({"name": f"t{i}", "formal_statement": f"theorem t{i} : True := by"}) for i in range(targets)]
        ids = store.add_targets(run_id, [{"file": "bench", "name": t.name, "kind": t.kind, "line": 1, "statement": t.statement,
                                          "doc": None, "header": "", "header_hash": ""} for t in items_t])
        options = ProveOptions(k=k, all_samples=True, generation_concurrency=inflight)  # checks follow the verifier's capacity

        async def main():
            pipeline = Pipeline(store, SlowGenerator(gen), SlowVerifier(verify, workers), options)
            start = time.perf_counter()
            await pipeline.run(list(zip(ids, items_t)))
            return time.perf_counter() - start, pipeline.max_waiting_checks

        wall, waiting = asyncio.run(main())
        WAITING[workers] = max(WAITING.get(workers, 0), waiting)
        attempts = store.db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        store.close()
    assert attempts == targets * k
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--gen-ms", type=float, default=50)
    parser.add_argument("--verify-ms", type=float, default=80)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 8])
    args = parser.parse_args()
    n = args.targets * args.k
    for gen_ms, verify_ms, label in ((args.gen_ms, args.verify_ms, "verification-bound"), (args.verify_ms * 4, args.gen_ms / 5,
                                                                                         "generation-bound")):
        gen_alone = run_once(args.targets, args.k, gen_ms / 1000, 0.0, 64, args.inflight)  # measured, with instant checks
        print(f"{label}: {n} samples; generation alone {gen_alone:.2f} s measured ({args.inflight} in flight, {gen_ms:g} ms each on average), "
              f"checks {verify_ms:g} ms")
        print(f"{'workers':>7} {'wall s':>8} {'max s':>8} {'sum s':>8} {'wall/max':>9}")
        for workers in args.workers:
            verify_alone = math.ceil(n / workers) * verify_ms / 1000
            wall = run_once(args.targets, args.k, gen_ms / 1000, verify_ms / 1000, workers, args.inflight)
            best = max(gen_alone, verify_alone)
            print(f"{workers:>7} {wall:8.2f} {best:8.2f} {gen_alone + verify_alone:8.2f} {wall / best:9.3f}")
    print("goal: wall/max <= 1.1")
    for workers in args.workers:
        print(f"backpressure, {workers} workers: at most {WAITING[workers]} candidates waited for a check "
              f"(cap {2 * workers} + what was generating when it was reached; {n} candidates in all)")
    print("checks/s against workers (instant generation, 100 ms checks, 640 samples; ideal = workers x 10):")
    for workers in (8, 16, 32, 64):
        wall = run_once(80, 8, 0.0, 0.1, workers, 256)
        print(f"{workers:>7} workers: {640 / wall:6.1f} checks/s ({640 / wall / (workers * 10):.0%} of ideal)")


if __name__ == "__main__":
    main()
