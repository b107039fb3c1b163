"""Many engines under one budget: 4 loopback engines against 1, one killed mid-run, and affinity.

Each engine is a loopback OpenAI-compatible HTTP server (tests/openai_stub.py) that serves `--capacity`
requests at once, each taking `--seconds`; proverctl's Pipeline samples `--targets` x `--k` (no sample
proves: a generation-bound run) through the EndpointRouter (proverctl.inference.router) and real HTTP
clients, with instant checks. Printed, from one run of each:

- 4 engines / 1 engine wall time (goal <= 0.30; ideal 0.25);
- one of the 4 killed a third of the way in: samples lost (goal 0) and its wall time / the 4-engine
  run's (goal <= 1.35);
- affinity: the share of samples that went to their target's most used engine (goal >= 0.90).

    python bench/multi_endpoint.py [--targets 40] [--k 8] [--capacity 8] [--seconds 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from openai_stub import OpenAIStub  # noqa: E402
from proverctl.inference.client import GenerationClient  # noqa: E402
from proverctl.inference.router import EndpointRouter, Route  # noqa: E402
from proverctl.lean.targets import from_row  # noqa: E402
from proverctl.lean.verdict import Verdict, VerdictKind  # noqa: E402
from proverctl.pipeline import Pipeline, ProveOptions  # noqa: E402
from proverctl.store.db import Store  # noqa: E402


class Engine:
    def __init__(self, capacity: int, seconds: float) -> None:
        self.gate = threading.Semaphore(capacity)
        self.seconds = seconds

    def __call__(self, body, i):
        with self.gate:
            time.sleep(self.seconds)
        return "no proof here"


class InstantCheck:
    capacity = 64

    async def verify(self, target, code):
        return Verdict(VerdictKind.rejected, ["no"], [], [], 0.0)


async def one_run(stubs, args, kill: OpenAIStub | None = None, kill_after: float = 0.0) -> tuple[float, int, EndpointRouter]:
    targets = [from_row({"name": f"b{i}", "formal_statement": f"theorem b{i} : {i} = {i} := by"}) for i in range(args.targets)]
    routes = [Route(GenerationClient(s.url, "stub-model", retries=0, concurrency=args.capacity), capacity=args.capacity) for s in stubs]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.db") as store:
        run_id = store.create_run(kind="bench", command="bench", input="sim", model=None, revision=None, engine=None, endpoint=None,
                                  lean_profile=None, settings={})
        ids = store.add_targets(run_id, [{"file": "sim", "name": t.name, "kind": "theorem", "line": 1, "statement": t.statement,
                                          "doc": None, "header": "", "header_hash": "h"} for t in targets])
        async with EndpointRouter(routes, first_backoff=60.0) as router:
            options = ProveOptions(k=args.k, seed=0, generation_concurrency=args.capacity * len(stubs), check_concurrency=64)
            pipeline = Pipeline(store, router, InstantCheck(), options)
            killer = None
            if kill is not None:
                async def later():
                    await asyncio.sleep(kill_after)
                    await asyncio.to_thread(kill.__exit__, None, None, None)

                killer = asyncio.ensure_future(later())
            started = time.monotonic()
            await pipeline.run(list(zip(ids, targets)))
            wall = time.monotonic() - started
            if killer is not None:
                await killer
            samples = sum(len({s for s, _ in store.done_samples(i)}) for i in ids)
            return wall, samples, router


async def main_async(args) -> None:
    expected = args.targets * args.k
    print(f"{args.targets} targets x k={args.k} (no sample proves), engines serving {args.capacity} at once, {args.seconds} s each")
    stubs = [OpenAIStub(answer=Engine(args.capacity, args.seconds)) for _ in range(4)]
    for s in stubs:
        s.__enter__()
    try:
        one, n1, _ = await one_run(stubs[:1], args)
        four, n4, router = await one_run(stubs, args)
        killed, nk, router_k = await one_run(stubs, args, kill=stubs[3], kill_after=four / 3)
    finally:
        for s in stubs[:3]:
            s.__exit__(None, None, None)
    print(f"1 engine : {one:6.2f} s, {n1}/{expected} samples")
    print(f"4 engines: {four:6.2f} s, {n4}/{expected} samples, affinity {router.affinity():.2f} (goal >= 0.90)")
    print(f"4 engines, one killed at {four / 3:.2f} s: {killed:6.2f} s, {nk}/{expected} samples (goal: none lost), "
          f"{router_k.reissued} request(s) re-issued")
    print(f"ratio 4 / 1: {four / one:.3f} (goal <= 0.30); killed / 4: {killed / four:.3f} (goal <= 1.35)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.2)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
