"""The decomposition of one target, as a tree of sketches and holes proved inside the run's one scheduler.

For a target (and, recursively, for a hole that resists):

1. The planner writes a sketch (proverctl.decompose.sketch). Lean must elaborate it with only `sorry`
   holes; if it does not, up to `sketch_rounds` repair rounds send Lean's errors back to the planner in
   the same conversation, and with `mask_errors` a step whose proof is wrong first becomes a hole.
2. Each hole gets its standalone statement from Lean (`extract_goal *`; the printed goal as a labelled
   fallback), named `<target>_s<sketch>_h<hole>`; every statement must elaborate before a sample is spent.
3. A hole already proved (the same statement under the same header and Lean profile, in this run or any
   run in the store) is answered from the store and checked again by today's verifier: `reused`. A hole
   equal to one still being proved waits for it instead of sampling twice.
4. The others become targets of the run's pipeline (`role="hole"`, `hole_k` samples each, scheduled
   sample-major with every whole-proof sample), each with its negation beside it (`refute_k` samples).
   A proved negation marks the hole `false` and abandons the sketch; a hole whose samples run out is
   decomposed again while `depth` allows, else `exhausted`, and the sketch is abandoned. Abandoning
   cancels the sketch's other samples at once.
5. When every hole is proved, the composed proof (the lemmas, then the theorem with each `sorry`
   replaced by its lemma applied) goes to the composed verifier (the judge behind it): only that check
   can prove the target.

Everything is recorded (store: sketches, holes, the hole targets and their attempts, the composed check),
so `show RUN/TARGET --section tree`, the TUI and `--format json` can draw the tree.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable

from proverctl.decompose.planners import PlannerFamily, planner_messages, repair_messages
from proverctl.decompose.sketch import Hole, SketchCheck, check_sketch, check_statements
from proverctl.decompose.statements import from_goal
from proverctl.inputs import header_hash
from proverctl.lean.targets import Target, proof_body, statement_key
from proverctl.lean.verdict import Verdict
from proverctl.prompts import families
from proverctl.prompts.extract import extract
from proverctl.store.db import AttemptRow, Store

SKETCH_SAMPLE_BASE = 1000  # sample numbers of sketches, apart from the proof samples
COMPOSED_SAMPLE_BASE = 2000
REUSED_SAMPLE_BASE = 3000

Planner = Callable[[list[dict]], Awaitable[Any]]  # chat messages -> a Completion (its .text)


@dataclass(frozen=True)
class Settings:
    sketches: int = 4  # sketches tried per target
    depth: int = 2  # levels: 1 decomposes the target only, 2 also its holes that resist, ...
    sketch_rounds: int = 1  # repair rounds per sketch (Lean's errors back to the planner)
    mask_errors: bool = False
    hole_k: int = 8  # samples per hole
    refute_k: int = 2  # samples per hole's negation (0: no triage)
    timeout: float = 60.0
    lean_profile: str | None = None


@dataclass
class Stats:
    sketches: int = 0  # sketches the planner wrote (repair rounds included)
    repaired: int = 0  # sketches that elaborated after a repair round
    masked: int = 0
    holes: int = 0
    holes_proved: int = 0
    holes_reused: int = 0
    holes_false: int = 0
    lean_calls: int = 0  # the decomposition's own: sketch and statement checks, composed and reused proofs (hole samples are the run's)


class _CountingPool:
    """The REPL pool, counting the checks the decomposition sends it."""

    def __init__(self, pool, stats: Stats) -> None:
        self._pool, self._stats = pool, stats

    async def check(self, job):
        self._stats.lean_calls += 1
        return await self._pool.check(job)

    def __getattr__(self, name: str):
        return getattr(self._pool, name)


class Decomposer:
    def __init__(self, store: Store, run_id: int, pipeline, pool, verifier, composed_verifier, planner: Planner,
                 family: PlannerFamily, settings: Settings, notify: Callable[[str], None] = lambda text: None) -> None:
        self.store, self.run_id, self.pipeline, self.pool = store, run_id, pipeline, pool
        self.verifier, self.composed_verifier, self.planner = verifier, composed_verifier, planner
        self.family, self.settings, self.notify = family, settings, notify
        self.stats = Stats()
        self.pool = _CountingPool(pool, self.stats)
        self._pending: dict[str, asyncio.Future] = {}  # statement key -> the proof of a hole being proved now (or None)
        self._samples: dict[tuple[int, int], int] = {}  # (target id, base) -> the last sketch / composed / reused sample
        self._refutations: dict[int, int] = {}  # hole target id -> its negation's target id

    # -- the target ---------------------------------------------------------------------------------

    def _done(self, target_id: int) -> bool:
        state = self.pipeline.states.get(target_id)
        return state is not None and state.proved

    def _sample(self, target_id: int, base: int) -> int:
        if (target_id, base) not in self._samples:  # a resumed run: after the numbers an earlier run used
            used = [s - base for s, _ in self.store.done_samples(target_id) if base < s < base + 1000]
            self._samples[(target_id, base)] = max(used, default=0)
        n = self._samples[(target_id, base)] + 1
        self._samples[(target_id, base)] = n
        return base + n

    async def solve(self, target_id: int, target: Target, depth: int, ancestors: frozenset[str] = frozenset()) -> str | None:
        """Decompose until a composed proof of `target` checks (returned), the sketches run out, or the
        target is proved some other way (its own samples). `ancestors`: the statement keys of the goals
        this one was split from (a hole equal to one of them is circular, never waited for)."""
        base = (target.name or "example").split(".")[-1]
        ancestors = ancestors | {statement_key(target.statement, header_hash(target.header))}
        for ordinal in range(self.settings.sketches):
            if self._done(target_id) or self.pipeline.stopped:
                return None
            check, sketch_id = await self._sketch(target_id, target, ordinal)
            if check is None:
                continue
            proofs = await self._holes(target_id, target, sketch_id, check, f"{base}_s{ordinal + 1}", depth, ancestors)
            if proofs is None:
                continue
            code = compose(check.code, check.holes, proofs)
            self.stats.lean_calls += 1
            verdict = await self.composed_verifier.verify(target, code)
            attempt = self.store.add_attempt(
                AttemptRow(target_id, self._sample(target_id, COMPOSED_SAMPLE_BASE), 0, None, None, code, verdict.kind.value,
                           verdict.reasons, [m.as_dict() for m in verdict.messages], verify_seconds=round(verdict.seconds, 3),
                           kind="composed", judge=verdict.judge, sandbox=verdict.sandbox, axioms=verdict.axioms),
                proved=verdict.proved and not self._done(target_id))
            self.store.set_sketch(sketch_id, composed_attempt=attempt, status="proved" if verdict.proved else "composed-refused",
                                  reasons=[] if verdict.proved else ["the composed proof did not check: "
                                                                     + (verdict.reasons[0] if verdict.reasons else verdict.kind.value)])
            if verdict.proved:
                self.pipeline.resolve(target_id)
                return code
        return None

    async def _sketch(self, target_id: int, target: Target, ordinal: int) -> tuple[SketchCheck | None, int]:
        """One sketch with its repair rounds: (the check that elaborated, its id) or (None, the last id)."""
        messages = planner_messages(target, self.family)
        sketch_id = 0
        for round_index in range(self.settings.sketch_rounds + 1):
            if self.pipeline.stopped or self._done(target_id):
                break
            completion = await self.planner(messages)
            output = completion.text or ""
            self.stats.sketches += 1
            extraction = extract(output, target, families.DEFAULT)
            if extraction.ok:
                check = await check_sketch(self.pool, target, extraction.code, self.settings.timeout, mask=self.settings.mask_errors)
            else:
                check = SketchCheck(False, reasons=[f"sketch: {extraction.reason}"])
            attempt = self.store.add_attempt(AttemptRow(
                target_id, self._sample(target_id, SKETCH_SAMPLE_BASE), 0, {"family": self.family.name, "messages": messages},
                output, check.code or None, "sketch" if check.ok else "rejected", check.reasons, [], kind="sketch",
                prompt_tokens=getattr(completion, "prompt_tokens", None), completion_tokens=getattr(completion, "completion_tokens", None)))
            status = "elaborated" if check.ok else "failed"
            sketch_id = self.store.add_sketch(target_id, ordinal, round_index, attempt_id=attempt, code=check.code or None,
                                              status=status, reasons=check.reasons, masked=check.masked)
            if check.ok:
                self.stats.repaired += round_index > 0
                self.stats.masked += check.masked
                return check, sketch_id
            if round_index < self.settings.sketch_rounds:
                messages = repair_messages(messages, output, check.reasons)
        return None, sketch_id

    # -- its holes ----------------------------------------------------------------------------------

    async def _holes(self, target_id: int, target: Target, sketch_id: int, check: SketchCheck, prefix: str,
                     depth: int, ancestors: frozenset[str]) -> dict[int, str] | None:
        """Every hole proved: index -> the lemma's proof; None when the sketch is abandoned (recorded why)."""
        for hole in check.holes:
            hole.name = f"{prefix}_h{hole.index + 1}"
            hole.statement = hole.lemma.statement(hole.name)
        problems = await check_statements(self.pool, target, [h.statement for h in check.holes], self.settings.timeout)
        # extract_goal's printing does not always read back (its documented caveat): the printed goal's form
        retry = [h for h, p in zip(check.holes, problems) if p is not None and h.method == "extract_goal"]
        if retry:
            fallbacks = [replace(h, lemma=from_goal(h.goal), method="goal") for h in retry]
            for fallback in fallbacks:
                fallback.statement = fallback.lemma.statement(fallback.name)
            again = await check_statements(self.pool, target, [f.statement for f in fallbacks], self.settings.timeout)
            for fallback, problem in zip(fallbacks, again):
                if problem is None:
                    check.holes[fallback.index] = fallback
                    problems[fallback.index] = None
        bad = [(h, p) for h, p in zip(check.holes, problems) if p is not None]
        hole_ids = {}
        rows = []
        from proverctl.lean.source import parse

        namespace = parse(target.header).namespace_at_end  # a lemma declared inside `namespace Foo` is Foo.NAME
        for hole in check.holes:
            hole_target = Target(".".join(namespace + (hole.name,)), "theorem", target.header, None, hole.statement, " by\n  sorry",
                                 target.line, target.source_label)
            rows.append((hole, hole_target))
        ids = self.store.add_targets(self.run_id, _rows(rows, target), parent_id=target_id)
        for (hole, hole_target), tid in zip(rows, ids):
            hole_ids[hole.index] = self.store.add_hole(sketch_id, hole.index, name=hole.name, statement=hole.statement,
                                                       method=hole.method, target_id=tid)
        self.stats.holes += len(rows)
        if bad:
            hole, problem = bad[0]
            self._abandon(sketch_id, [(hole_ids[h.index], "statement-refused", p) for h, p in bad],
                          f"the statement of {hole.name} does not elaborate: {problem}")
            return None
        tasks = {hole.index: asyncio.ensure_future(self._hole(tid, hole_target, hole, hole_ids[hole.index], depth, ancestors))
                 for (hole, hole_target), tid in zip(rows, ids)}
        parent = self.pipeline.states.get(target_id)
        watch = [parent.outcome] if parent is not None and parent.outcome is not None else []
        proofs: dict[int, str] = {}
        pending = set(tasks.values())
        try:
            return await self._await_holes(target_id, sketch_id, check, rows, ids, hole_ids, tasks, watch, proofs, pending)
        except asyncio.CancelledError:  # this sketch's own caller gave up: so do its holes, to the bottom
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            self.pipeline.cancel(list(ids) + [self._refutations[tid] for tid in ids if tid in self._refutations])
            raise

    async def _await_holes(self, target_id, sketch_id, check, rows, ids, hole_ids, tasks, watch, proofs, pending):
        failure = None
        while pending:
            done, pending = await asyncio.wait(pending | set(watch), return_when=asyncio.FIRST_COMPLETED)
            if watch and watch[0] in done:
                done.discard(watch[0])
                if self._done(target_id):
                    failure = "the target was proved meanwhile"
                watch = []
            for task in done:
                index = next(i for i, t in tasks.items() if t is task)
                outcome = task.result()
                if outcome is None:
                    failure = failure or f"{check.holes[index].name} was not proved"
                elif isinstance(outcome, _Refused):
                    failure = failure or outcome.why
                else:
                    proofs[index] = outcome
            if failure is None and self.pipeline.stopped:
                failure = "the run was interrupted"
            if failure is not None:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                self.pipeline.cancel(list(ids) + [self._refutations[tid] for tid in ids if tid in self._refutations])
                for (hole, _), tid in zip(rows, ids):
                    if hole.index not in proofs:
                        current = self.store.db.execute("SELECT status FROM holes WHERE id = ?", (hole_ids[hole.index],)).fetchone()
                        if current and current[0] == "pending":
                            self.store.set_hole(hole_ids[hole.index], status="cancelled")
                self.store.set_sketch(sketch_id, status="abandoned", reasons=[failure])
                return None
        return proofs

    async def _hole(self, hole_tid: int, hole_target: Target, hole: Hole, hole_id: int, depth: int, ancestors: frozenset[str]):
        """A hole's proof (its theorem's code), None when it is not proved, or _Refused when its negation
        was proved."""
        key = statement_key(hole.statement, header_hash(hole_target.header))
        if key in ancestors:  # `have h : GOAL := sorry; exact h`: the hole is the goal it was split from
            self.store.set_hole(hole_id, status="exhausted", reason="the hole states the goal it was split from (circular)")
            return None
        reused = await self._reuse(hole_tid, hole_target, key, exclude=(hole_tid,))
        if reused is not None:
            attempt_id, code = reused
            self.store.set_hole(hole_id, status="reused", source_attempt=attempt_id)
            self.stats.holes_reused += 1
            return code
        while key in self._pending:  # the same subgoal is being proved now (another sketch, another target)
            proof = await asyncio.shield(self._pending[key])
            if isinstance(proof, str):
                reused = await self._reuse(hole_tid, hole_target, key, exclude=(hole_tid,))
                if reused is not None:
                    self.store.set_hole(hole_id, status="reused", source_attempt=reused[0])
                    self.stats.holes_reused += 1
                    return reused[1]
            if proof is False:  # its samples ran out there: they would here too
                self.store.set_hole(hole_id, status="exhausted", reason="the same subgoal, sampled elsewhere in this run, was not proved")
                return None
            # None: the one proving it gave up (its sketch was abandoned): this hole takes over
        shared = asyncio.get_running_loop().create_future()
        self._pending[key] = shared
        try:
            return await self._prove_hole(hole_tid, hole_target, hole, hole_id, depth, shared, ancestors)
        finally:
            if not shared.done():
                shared.set_result(None)
            if self._pending.get(key) is shared:
                del self._pending[key]

    async def _prove_hole(self, hole_tid: int, hole_target: Target, hole: Hole, hole_id: int, depth: int, shared: asyncio.Future,
                          ancestors: frozenset[str]):
        """`shared` gets the proof (str), False when the samples ran out, None when this gave up first."""
        (outcome,) = self.pipeline.add([(hole_tid, hole_target)], k=self.settings.hole_k, role="hole").values()
        waits = {outcome}
        refutation = None
        if self.settings.refute_k > 0:
            name = f"{hole.name}_false"
            qualified = ".".join(hole_target.name.split(".")[:-1] + [name])  # in the hole's namespace
            negation = Target(qualified, "theorem", hole_target.header, None, hole.lemma.negation(name), " by\n  sorry", hole_target.line,
                              hole_target.source_label)
            (neg_tid,) = self.store.add_targets(self.run_id, _rows([(hole, negation)], hole_target), parent_id=hole_tid)
            self.store.set_hole(hole_id, refutation_target_id=neg_tid)
            self._refutations[hole_tid] = neg_tid
            (refutation,) = self.pipeline.add([(neg_tid, negation)], k=self.settings.refute_k, role="refutation").values()
            waits.add(refutation)
        try:
            while True:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if refutation is not None and refutation in done:
                    waits.discard(refutation)
                    if refutation.result() == "proved":
                        self.pipeline.cancel([hole_tid])
                        self.store.set_hole(hole_id, status="false", reason="its negation was proved")
                        self.stats.holes_false += 1
                        shared.set_result(False)
                        return _Refused(f"{hole.name} is false: its negation was proved")
                if outcome in done:
                    break
            if refutation is not None and not refutation.done():
                self.pipeline.cancel([self._refutations[hole_tid]])
            if outcome.result() == "proved":
                code = _proof(self.store, hole_tid)
                self.store.set_hole(hole_id, status="proved")
                self.stats.holes_proved += 1
                shared.set_result(code)
                return code
            if outcome.result() == "exhausted" and depth > 1:
                code = await self.solve(hole_tid, hole_target, depth - 1, ancestors)
                if code is not None:
                    self.store.set_hole(hole_id, status="proved", reason="decomposed in turn")
                    self.stats.holes_proved += 1
                    shared.set_result(code)
                    return code
            if outcome.result() != "cancelled":
                self.store.set_hole(hole_id, status="exhausted", reason=f"{self.settings.hole_k} samples"
                                    + (" and its own decomposition" if depth > 1 else "") + " did not prove it")
                shared.set_result(False)
            return None
        except asyncio.CancelledError:
            self.pipeline.cancel([hole_tid] + ([self._refutations[hole_tid]] if hole_tid in self._refutations else []))
            raise

    async def _reuse(self, hole_tid: int, hole_target: Target, key: str, exclude: tuple[int, ...]) -> tuple[int, str] | None:
        """A proof of the same statement from the store, re-checked under this hole's name: (its attempt,
        the code) when today's verifier proves it."""
        found = self.store.proved_by_key(key, self.settings.lean_profile, exclude=exclude)
        if found is None or not found.get("code"):
            return None
        body = proof_body(found["code"])  # a proof with lemmas of its own (a hole decomposed in turn) is not carried over
        if body is None:
            return None
        candidate = hole_target.candidate(body)
        self.stats.lean_calls += 1
        verdict: Verdict = await self.verifier.verify(hole_target, candidate)
        self.store.add_attempt(
            AttemptRow(hole_tid, self._sample(hole_tid, REUSED_SAMPLE_BASE), 0, None, None, candidate, verdict.kind.value,
                       verdict.reasons + ([] if verdict.proved else ["a proof found in the store no longer checks"]),
                       [m.as_dict() for m in verdict.messages], verify_seconds=round(verdict.seconds, 3), kind="reused",
                       judge=verdict.judge, sandbox=verdict.sandbox, axioms=verdict.axioms), proved=verdict.proved)
        return (found["id"], candidate) if verdict.proved else None

    def _abandon(self, sketch_id: int, holes: list[tuple[int, str, str]], why: str) -> None:
        for hole_id, status, reason in holes:
            self.store.set_hole(hole_id, status=status, reason=reason)
        self.store.set_sketch(sketch_id, status="abandoned", reasons=[why])


class _Refused:
    def __init__(self, why: str) -> None:
        self.why = why


def _rows(pairs: list[tuple[Hole, Target]], parent: Target) -> list[dict]:
    """Store rows for subgoal targets (and negations), in the file of their parent."""
    return [{"file": t.source_label, "name": t.name, "kind": t.kind, "line": t.line, "statement": t.statement, "doc": None,
             "header": t.header, "header_hash": header_hash(t.header), "hint": None} for _, t in pairs]


def _proof(store: Store, target_id: int) -> str | None:
    row = store.target(target_id)
    attempt = store.attempt(row["proved_attempt"]) if row and row.get("proved_attempt") else None
    return attempt["code"] if attempt else None


def compose(sketch_code: str, holes: list[Hole], proofs: dict[int, str]) -> str:
    """The lemmas with their proofs, then the theorem with each hole's `sorry` replaced by its lemma applied."""
    lemmas = "".join(proofs[h.index].rstrip("\n") + "\n\n" for h in holes)
    out = sketch_code
    for hole in sorted(holes, key=lambda h: h.offset, reverse=True):
        call = hole.lemma.call(hole.name, tactic=tactic_position(sketch_code, hole.offset))
        out = out[: hole.offset] + call + out[hole.offset + len("sorry"):]
    return lemmas + out


_TERM_BEFORE = re.compile(r"(:=|\(|⟨|,|(?<![\w.'])(?:from|exact|refine|(?:fun|λ)\b.*=>))$")
# `by`, a separator, a bullet, a tactic combinator, or `=>` of `case`/`next`/`induction ... with | zero`
_TACTIC_BEFORE = re.compile(r"((?<![\w.'])(?:by|all_goals|any_goals|try|repeat|focus|iterate\s+\d+)|;|<;>|·|=>)$")


def tactic_position(code: str, offset: int) -> bool:
    """Whether the `sorry` at `offset` stands where a tactic does (`by sorry`, a tactic line of its own)
    rather than a term (`:= sorry`, `exact sorry`, `(sorry, ...)`). Comments and strings do not count."""
    from proverctl.lean.source import Source

    mask = Source(code).mask
    before = mask[:offset].rstrip()
    last_line = before[before.rfind("\n") + 1:]
    if _TERM_BEFORE.search(last_line):  # first: `fun x =>` is a term's arrow
        return False
    if _TACTIC_BEFORE.search(before):
        return True
    line_start = mask.rfind("\n", 0, offset) + 1
    return mask[line_start:offset].strip() == ""  # a line of its own in a tactic block


