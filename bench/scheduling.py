"""How much generation early stop saves in a generation-bound run, against the one-at-a-time ideal.

Simulated (seeded): N targets x k samples, each sample takes a lognormal time to generate and proves
its target with probability p; checks are instant (generation-bound), the engine serves `--inflight`
requests at once. Three schedules are run side by side on the same draws:

- eager: every sample is created up front and queued at the engine in target order (proverctl before
  the sample-major scheduler: all k samples of a target in flight together);
- pipeline: proverctl's Pipeline as it is (samples issued sample-major and lazily);
- ideal: each target sampled one at a time, stopping at its first proof (no parallelism limit).

Generation spent = the time each sample actually generated (a cancelled one counts up to its cancel).
"saved" = 1 - spent / (spent without early stop). Goal: the pipeline within 5 points of the ideal.
Also printed: the mean number of requests in flight while samples remain to be issued (goal: at the cap).

    python bench/scheduling.py [--targets 40] [--k 32] [--inflight 64] [--scale 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proverctl.inference.client import Completion  # noqa: E402
from proverctl.lean.targets import from_row  # noqa: E402
from proverctl.lean.verdict import Verdict, VerdictKind  # noqa: E402
from proverctl.pipeline import Pipeline, ProveOptions  # noqa: E402
from proverctl.store.db import Store  # noqa: E402


class Engine:
    """A fake engine: `inflight` requests generate at once, the rest queue (FIFO); records time spent."""

    def __init__(self, draws, inflight: int, scale: float) -> None:
        self.draws, self.scale = draws, scale
        self.slots = asyncio.Semaphore(inflight)
        self.spent = 0.0
        self.active = 0
        self.samples: list[tuple[float, int]] = []  # (time, active) at every change
        self.starts: list[float] = []

    async def complete(self, prompt, seed=None) -> Completion:
        target = int(re.search(r"theorem b(\d+) ", prompt.messages[0]["content"]).group(1))
        sample = seed // 1000  # the pipeline's seed is base + 1000 * sample + round
        duration, proves = self.draws[target][sample]
        async with self.slots:
            start = time.monotonic()
            self.starts.append(start)
            self.active += 1
            self.samples.append((start, self.active))
            try:
                await asyncio.sleep(duration * self.scale)
            finally:
                self.spent += (time.monotonic() - start) / self.scale
                self.active -= 1
                self.samples.append((time.monotonic(), self.active))
        text = f"```lean4\ntheorem b{target} : True := by\n  {'trivial' if proves else 'skip'}\n```"
        return Completion(text, "stop", 1, 1, duration, seed)


class InstantCheck:
    capacity = 64

    async def verify(self, target, code):
        proved = "trivial" in code
        return Verdict(VerdictKind.proved if proved else VerdictKind.rejected, [] if proved else ["no"], [], [], 0.0)


def draws_for(targets: int, k: int, p: float, rng: random.Random):
    return [[(rng.lognormvariate(0.0, 0.6), rng.random() < p) for _ in range(k)] for _ in range(targets)]


async def run_schedule(draws, k: int, inflight: int, scale: float, eager: bool) -> tuple[float, float]:
    targets = [from_row({"name": f"b{i}", "formal_statement": f"theorem b{i} : True := by"}) for i in range(len(draws))]
    engine = Engine(draws, inflight, scale)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.db") as store:
        run_id = store.create_run(kind="bench", command="bench", input="sim", model=None, revision=None, engine=None, endpoint=None,
                                  lean_profile=None, settings={})
        ids = store.add_targets(run_id, [{"file": "sim", "name": t.name, "kind": "theorem", "line": 1, "statement": t.statement,
                                          "doc": None, "header": "", "header_hash": "h"} for t in targets])
        options = ProveOptions(k=k, seed=0, generation_concurrency=len(draws) * k if eager else inflight, check_concurrency=64)
        pipeline = Pipeline(store, engine, InstantCheck(), options)
        if eager:
            # As before the scheduler: every chain created at once, target by target.
            order: list = []

            def target_major():
                if not order:
                    order.append(iter([(state, s) for state in pipeline.states.values() for s in range(k)]))
                    pipeline._queue.clear()  # the scheduler's own queue is not used
                return next(order[0], None)

            pipeline._next = target_major
        await pipeline.run(list(zip(ids, targets)))
    return engine.spent, mean_in_flight(engine.samples, min(engine.starts), max(engine.starts))


def mean_in_flight(changes: list[tuple[float, int]], begin: float, end: float) -> float:
    """Time-weighted mean of requests in flight between the first and the last request start (while
    samples remained to be issued)."""
    total = weighted = 0.0
    for (t0, active), (t1, _) in zip(changes, changes[1:]):
        lo, hi = max(t0, begin), min(t1, end)
        if hi > lo:
            weighted += active * (hi - lo)
            total += hi - lo
    return weighted / total if total else 0.0


def ideal_spent(draws) -> float:
    spent = 0.0
    for samples in draws:
        for duration, proves in samples:
            spent += duration
            if proves:
                break
    return spent


async def main_async(args) -> None:
    print(f"{args.targets} targets x k={args.k}, {args.inflight} in flight, lognormal sample times, instant checks, seed {args.seed}")
    print(f"{'p':>5} | {'ideal saved':>11} | {'pipeline saved':>14} | {'gap (points)':>12} | {'eager saved':>11} | "
          f"{'mean in flight':>14}")
    for p in (0.05, 0.2, 0.5):
        draws = draws_for(args.targets, args.k, p, random.Random(args.seed))
        total = sum(d for samples in draws for d, _ in samples)
        ideal = 1 - ideal_spent(draws) / total
        spent, mean_inflight = await run_schedule(draws, args.k, args.inflight, args.scale, eager=False)
        eager_spent, _ = await run_schedule(draws, args.k, args.inflight, args.scale, eager=True)
        saved, eager = 1 - spent / total, 1 - eager_spent / total
        print(f"{p:>5} | {ideal:>10.1%} | {saved:>13.1%} | {100 * (ideal - saved):>12.1f} | {eager:>10.1%} | {mean_inflight:>14.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--scale", type=float, default=0.05, help="seconds per unit of simulated generation time")
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
