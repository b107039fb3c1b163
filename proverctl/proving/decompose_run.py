"""`prove --decompose` inside a job: each target through proverctl.decompose, its subgoal lemmas
recorded as targets under it, every sketch, subgoal attempt and composed check recorded as attempts."""

from __future__ import annotations

from proverctl.inputs import InputFile
from proverctl.lean.pool import ReplPool
from proverctl.lean.targets import Target
from proverctl.lean.verdict import Verdict
from proverctl.pipeline import Pipeline, ProveOptions
from proverctl.proving.records import proof_of, target_rows
from proverctl.store.db import AttemptRow, Store

SKETCH_SAMPLE_BASE = 1000  # sample numbers of sketches, apart from the proof samples
COMPOSED_SAMPLE_BASE = 2000


async def run_decomposition(store: Store, run_id: int, items: list[tuple[int, Target]], generator, client, pool: ReplPool, verifier,
                            composed_verifier, options: ProveOptions, spec, plan, on_event=None) -> dict[int, str]:
    """`verifier` checks subgoal proofs, `composed_verifier` (allowing the subgoal lemmas, with the
    same judge behind it) the composed proof: only that verdict can make a target proved."""
    from proverctl.decompose import decompose
    from proverctl.inference.client import GenerationClient

    planner_client = None
    if plan.planner:
        planner_client = GenerationClient(plan.planner, plan.planner_model or "", concurrency=8)
        if not plan.planner_model:
            planner_client.model = (await planner_client.models() or [""])[0]
    results: dict[int, str] = {}

    async def solve(target_id: int, target: Target, depth: int) -> str | None:
        counters = {"sketch": 0}

        async def planner(prompt) -> str:
            return (await (planner_client or generator).complete(prompt, options.seed)).text

        def on_sketch(output: str, code: str | None, check) -> None:
            counters["sketch"] += 1
            store.add_attempt(AttemptRow(target_id, SKETCH_SAMPLE_BASE + counters["sketch"], 0, None, output, code,
                                         "sketch" if check.ok else "rejected", check.reasons, [], kind="sketch"))

        async def prove_hole(hole: Target, remaining: int) -> str | None:
            (hole_id,) = store.add_targets(run_id, target_rows([InputFile(target.source_label, None, None, [hole])])[0],
                                           parent_id=target_id)
            status = await Pipeline(store, generator, verifier, options, on_event).run([(hole_id, hole)])
            if status[hole_id] == "proved":
                return proof_of(store, store.target(hole_id))
            if remaining > 1:
                return await solve(hole_id, hole, remaining - 1)
            return None

        async def verify_composed(t: Target, code: str) -> Verdict:
            verdict = await composed_verifier.verify(t, code)
            store.add_attempt(AttemptRow(target_id, COMPOSED_SAMPLE_BASE + counters["sketch"], 0, None, None, code, verdict.kind.value,
                                         verdict.reasons, [m.as_dict() for m in verdict.messages], verify_seconds=verdict.seconds,
                                         kind="composed", judge=verdict.judge, sandbox=verdict.sandbox), proved=verdict.proved)
            return verdict

        outcome = await decompose(target, plan=planner, prove_hole=prove_hole, pool=pool, verify_composed=verify_composed,
                                  sketches=plan.sketches, depth=depth, sampling=options.sampling, timeout=spec.check_timeout,
                                  on_sketch=on_sketch)
        store.set_target(target_id, status="proved" if outcome.verdict.proved else "not-proved")
        return outcome.code if outcome.verdict.proved else None

    try:
        for target_id, target in items:
            code = await solve(target_id, target, plan.depth)
            results[target_id] = "proved" if code else "not-proved"
    finally:
        if planner_client is not None:
            await planner_client.close()
    return results
