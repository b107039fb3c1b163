"""`prove --decompose` inside a job: the run's pipeline samples every target as plain `prove` does, and
beside it each target is decomposed (proverctl.decompose.tree); every hole and every negation becomes a
target of the same pipeline, so one sample-major scheduler and one budget serve them all and the engine
stays as full as in a plain run."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from proverctl.decompose.planners import planner_family
from proverctl.decompose.tree import Decomposer, Settings, Stats
from proverctl.lean.pool import ReplPool
from proverctl.lean.targets import Target
from proverctl.pipeline import Pipeline
from proverctl.prompts import families
from proverctl.prompts.formats import Prompt
from proverctl.proving.request import Decompose
from proverctl.store.db import Store


def decomposition_settings(request: Decompose, k: int, timeout: float, lean_profile: str | None) -> Settings:
    return Settings(sketches=request.sketches, depth=request.depth, sketch_rounds=request.sketch_rounds, mask_errors=request.mask_errors,
                    hole_k=request.hole_k or k, refute_k=request.refute_k, timeout=timeout, lean_profile=lean_profile)


def planner_for(generator, sampling: dict, seed: int | None):
    """The planner as the decomposer calls it: chat messages -> a completion from `generator`."""
    counter = iter(range(1, 1 << 30))

    async def plan(messages: list[dict]):
        prompt = Prompt(families.DEFAULT, "cot", messages=messages, sampling=dict(sampling))
        return await generator.complete(prompt, None if seed is None else seed + 100_000 + next(counter))

    return plan


async def run_decomposition(store: Store, run_id: int, items: list[tuple[int, Target]], pipeline: Pipeline, pool: ReplPool, verifier,
                            composed_verifier, request: Decompose, settings: Settings, planner, *,
                            already_proved: set[int] = frozenset(), prior_seconds: dict[int, float] | None = None) -> Stats:
    """Run the pipeline over `items` and decompose each unproved target beside it; returns what the
    decomposition did (also stored in the run's settings under `decomposition`). `verifier` checks hole
    proofs and reused ones, `composed_verifier` (the same judge, allowing the lemmas before the theorem)
    the composed proof: only that verdict can make a target proved by decomposition."""
    decomposer = Decomposer(store, run_id, pipeline, pool, verifier, composed_verifier, planner,
                            planner_family(request.planner_family), settings)
    async with pipeline.holding():
        runner = asyncio.ensure_future(pipeline.run(items, already_proved=already_proved, prior_seconds=prior_seconds))
        await asyncio.sleep(0)  # run() has put the targets into the scheduler: their states exist
        solving = asyncio.ensure_future(asyncio.gather(
            *(decomposer.solve(target_id, target, settings.depth) for target_id, target in items if target_id not in already_proved)))
        try:
            # the pipeline may fail (the engine, the verifier): then nothing the decomposition waits for comes
            await asyncio.wait({solving, runner}, return_when=asyncio.FIRST_COMPLETED)
            if runner.done() and runner.exception() is not None and not solving.done():
                solving.cancel()
            await solving
        except BaseException:
            pipeline.stop()
            solving.cancel()
            await asyncio.gather(solving, return_exceptions=True)
            if not runner.done():
                runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            if runner.done() and not runner.cancelled() and runner.exception() is not None:
                raise runner.exception()
            raise
        finally:
            _record(store, run_id, decomposer.stats)
    await runner
    return decomposer.stats


def _record(store: Store, run_id: int, stats: Stats) -> None:
    import json

    row = store.run(run_id)
    saved = json.loads(row["settings"] or "{}") if row is not None else {}
    saved["decomposition"] = asdict(stats)
    store.update_run(run_id, settings=saved)
