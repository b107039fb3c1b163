"""The prove loop, shared by the CLI, the TUI and the benchmarks.

Each target gets `k` samples. A sample is a chain: generate -> extract -> verify -> (error-feedback
round -> generate -> ...). Chains of all targets run at once, bounded on both sides (in-flight
requests; verifications waiting for a REPL), so generation and verification overlap: a candidate is
verified as soon as it arrives. When a target is proved, its chains still generating are cancelled
(early stop) unless `all_samples`. Every attempt is committed to the store when its verdict is known.

The generator and verifier are injected (`Generator`, `Verifier`), so tests and benches can use
controlled latencies; ProveJob (proverctl/proving) gives it the inference client and the verifier factory's verifier.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from proverctl.inference.client import Completion
from proverctl.lean.targets import Target
from proverctl.lean.verdict import Verdict, VerdictKind
from proverctl.prompts.extract import extract
from proverctl.prompts.formats import Prompt, build_prompt, feedback_prompt, fit_to_context
from proverctl.store.db import AttemptRow, Store


class Generator(Protocol):
    async def complete(self, prompt: Prompt, seed: int | None = None) -> Completion: ...


class Verifier(Protocol):
    async def verify(self, target: Target, code: str) -> Verdict: ...


@dataclass
class ProveOptions:
    k: int = 8
    family: str = "deepseek-v2"
    mode: str = "cot"
    rounds: int = 0
    all_samples: bool = False
    seed: int | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    allow_aux: bool = False
    max_inflight: int = 64  # generation requests in flight, all targets together
    max_verify_queue: int = 16  # candidates waiting for a REPL
    context_length: int | None = None  # the model's context window: max_tokens is capped to fit the prompt in it


@dataclass
class TargetState:
    id: int
    target: Target
    done: set[tuple[int, int]]
    proved: bool = False
    attempts: int = 0
    prior_seconds: float = 0.0  # spent on this target by earlier (resumed) runs
    first_start: float | None = None  # when its first sample started in this process
    last_end: float | None = None  # when its last sample (or its proof) finished
    generating: set[asyncio.Task] = field(default_factory=set)

    def seconds(self) -> float:
        """Time spent on this target: earlier runs plus first start to last finish here."""
        if self.first_start is None:
            return self.prior_seconds
        return self.prior_seconds + ((self.last_end or time.monotonic()) - self.first_start)


@dataclass
class Event:
    """What the pipeline reports to its caller (progress display, TUI)."""

    kind: str  # "attempt" | "proved" | "target-done"
    target_id: int
    target: Target
    sample: int = 0
    round: int = 0
    verdict: Verdict | None = None


class Pipeline:
    def __init__(self, store: Store, generator: Generator, verifier: Verifier, options: ProveOptions,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.store = store
        self.generator = generator
        self.verifier = verifier
        self.options = options
        self.on_event = on_event or (lambda event: None)
        self._gen_slots = asyncio.Semaphore(options.max_inflight)
        self._verify_slots = asyncio.Semaphore(options.max_verify_queue)
        self._chains: set[asyncio.Task] = set()
        self.stopped = False
        self.states: dict[int, TargetState] = {}

    def _seed(self, sample: int, round_index: int) -> int | None:
        if self.options.seed is None:
            return None
        return self.options.seed + sample * 1000 + round_index

    async def run(self, items: list[tuple[int, Target]], *, already_proved: set[int] = frozenset(),
                  prior_seconds: dict[int, float] | None = None) -> dict[int, str]:
        """Prove each (target_id, target); returns target_id -> 'proved' | 'not-proved' | 'interrupted'.
        `prior_seconds` is the time earlier runs already spent per target (resume adds to it)."""
        prior_seconds = prior_seconds or {}
        for target_id, target in items:
            state = TargetState(target_id, target, self.store.done_samples(target_id), proved=target_id in already_proved,
                                prior_seconds=prior_seconds.get(target_id, 0.0))
            self.states[target_id] = state
            if state.proved:
                continue
            for sample in range(self.options.k):
                if any(s == sample for s, _ in state.done):
                    continue  # finished before (resume): the budget counts it
                task = asyncio.create_task(self._chain(state, sample))
                self._chains.add(task)
                task.add_done_callback(self._chains.discard)
        failure: BaseException | None = None
        while self._chains:
            done, _ = await asyncio.wait(list(self._chains), return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None and failure is None:
                    failure = task.exception()
                    self.stop()  # the engine or the store failed: stop every chain, keep what is committed
            self._chains -= done
        if failure is not None:
            raise failure
        result = {}
        for target_id, state in self.states.items():
            status = "proved" if state.proved else ("interrupted" if self.stopped else "not-proved")
            self.store.set_target(target_id, status=status, seconds=round(state.seconds(), 3))
            result[target_id] = status
            self.on_event(Event("target-done", target_id, state.target))
        return result

    def stop(self) -> None:
        """Ctrl-C: stop sampling; chains in flight are cancelled (nothing half-written is stored)."""
        self.stopped = True
        for task in list(self._chains):
            task.cancel()

    async def _generate(self, state: TargetState, prompt: Prompt, seed: int | None) -> Completion | None:
        """One completion, or None when the target got proved meanwhile (the request is cancelled)."""
        async with self._gen_slots:
            if state.proved and not self.options.all_samples:
                return None
            if state.first_start is None:
                state.first_start = time.monotonic()
            request = asyncio.ensure_future(self.generator.complete(prompt, seed))
            state.generating.add(request)
            try:
                return await request
            except asyncio.CancelledError:
                if state.proved and not self.stopped:
                    return None  # early stop cancelled this request, not Ctrl-C
                raise
            finally:
                state.generating.discard(request)

    def _record(self, state: TargetState, sample: int, round_index: int, prompt: Prompt, completion: Completion | None,
                code: str | None, verdict: Verdict, gen_seconds: float | None = None) -> None:
        """Commit one attempt (and the target's proof, the first time) and tell the caller."""
        self.store.add_attempt(
            AttemptRow(
                target_id=state.id, sample=sample, round=round_index, prompt=prompt.as_dict(),
                raw_output=completion.text if completion else None, code=code, verdict=verdict.kind.value, reasons=verdict.reasons,
                messages=[m.as_dict() for m in verdict.messages], prompt_tokens=completion.prompt_tokens if completion else None,
                completion_tokens=completion.completion_tokens if completion else None,
                gen_seconds=round(gen_seconds, 3) if gen_seconds is not None else None, verify_seconds=round(verdict.seconds, 3),
                finish_reason=completion.finish_reason if completion else None, seed=completion.seed if completion else None,
                judge=verdict.judge,
            ),
            proved=verdict.proved and not state.proved,
        )
        state.attempts += 1
        state.last_end = time.monotonic()
        self.on_event(Event("attempt", state.id, state.target, sample, round_index, verdict))

    async def _chain(self, state: TargetState, sample: int) -> None:
        options = self.options
        target = state.target
        prompt = build_prompt(target, options.family, options.mode, options.sampling)
        for round_index in range(options.rounds + 1):
            if state.proved and not options.all_samples:
                return
            prompt, room = fit_to_context(prompt, options.context_length)
            if room is not None:
                self._record(state, sample, round_index, prompt, None, None, Verdict(VerdictKind.rejected, [room]))
                return
            started = time.monotonic()
            seed = self._seed(sample, round_index)
            completion = await self._generate(state, prompt, seed)
            if completion is None:
                return
            gen_seconds = time.monotonic() - started
            extraction = extract(completion.text, target, options.family, allow_aux=options.allow_aux)
            if not extraction.ok and completion.finish_reason == "length":
                limit = prompt.sampling.get("max_tokens")
                extraction = type(extraction)(None, f"the output was cut at max_tokens ({limit}) before a usable proof: "
                                                    f"{extraction.reason} (raise --max-tokens)", extraction.block)
            if extraction.ok:
                async with self._verify_slots:
                    if state.proved and not options.all_samples:
                        return  # proved while this candidate waited for a REPL: early stop skips it
                    verdict = await self.verifier.verify(target, extraction.code)
            else:
                verdict = Verdict(VerdictKind.rejected, [extraction.reason])
            proved = verdict.proved
            self._record(state, sample, round_index, prompt, completion, extraction.code, verdict, gen_seconds)
            if proved:
                if not state.proved:
                    state.proved = True
                    self.on_event(Event("proved", state.id, target, sample, round_index, verdict))
                if not options.all_samples:
                    for request in list(state.generating):
                        request.cancel()
                return
            errors = [m for m in verdict.messages if m.severity == "error"]
            if verdict.kind is not VerdictKind.rejected or not errors or round_index >= options.rounds:
                return
            nxt = feedback_prompt(prompt, completion.text, extraction.code or "", errors, round_index + 1)
            if nxt is None:
                return
            prompt = nxt
