"""The prove loop, shared by the CLI, the TUI and the benchmarks.

Each target gets `k` samples (or its own budget). A sample is a chain: generate -> extract -> verify ->
(error-feedback round -> generate -> ...). Samples are issued *sample-major* (sample 0 of every target,
then sample 1 of every target, ...; a target added while the run goes on, such as a subgoal of
decomposition, gets its sample 0 before anyone's next sample) and lazily: a chain starts only when a generation slot is free, so the engine is
kept full while no target has all its samples in flight before its first one was checked, and a target
proved meanwhile gets no more samples (early stop). Generation and verification overlap: a candidate is
verified as soon as it arrives; verification runs as many checks at once as the verifier has workers,
and a candidate whose target got proved while it waited is dropped before it takes one. Backpressure:
no new sample starts while more candidates wait for a check than twice the checks that can run. Every
attempt is committed to the store when its verdict is known, in batches by a thread of its own
(proverctl.store.writer: within 50 ms, never on the event loop); one that proves its target is
committed before anything else happens to that target, and the run's end waits for the rest.

The generator and verifier are injected (`Generator`, `Verifier`), so tests and benches can use
controlled latencies; ProveJob (proverctl/proving) gives it the inference client and the verifier factory's verifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from proverctl.inference.client import Completion
from proverctl.lean.targets import Target
from proverctl.lean.verdict import Verdict, VerdictKind
from proverctl.prompts import families
from proverctl.prompts.extract import extract
from proverctl.prompts.families import Family
from proverctl.prompts.formats import Prompt, build_prompt, feedback_prompt, fit_to_context
from proverctl.store.db import AttemptRow, Store, StoredPrompt


def _uncancel(task: asyncio.Task | None) -> None:
    """Take back the cancellations a task was sent (Python >= 3.11 counts them, and a timeout scope it
    enters later reads the count): the caller caught the CancelledError and goes on."""
    uncancel = getattr(task, "uncancel", None)
    while uncancel is not None and task.cancelling():
        uncancel()


class Generator(Protocol):
    async def complete(self, prompt: Prompt, seed: int | None = None) -> Completion: ...


class Verifier(Protocol):
    async def verify(self, target: Target, code: str) -> Verdict: ...


@dataclass
class ProveOptions:
    k: int = 8
    family: Family = None  # type: ignore[assignment]  # the run plan's family object (a name is looked up once, below)
    mode: str = "cot"
    rounds: int = 0
    all_samples: bool = False
    seed: int | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    allow_aux: bool = False
    generation_concurrency: int = 64  # generation requests in flight, all targets together
    check_concurrency: int | None = None  # checks at once (None: what the verifier can run, its `capacity`)
    backlog_factor: float = 2.0  # no new sample while more than factor x check_concurrency candidates wait
    context_length: int | None = None  # the model's context window: max_tokens is capped to fit the prompt in it

    def __post_init__(self) -> None:
        if not isinstance(self.family, Family):
            self.family = families.get(self.family or families.DEFAULT, self.mode)


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
    started: int = 0  # samples started in this process
    k: int | None = None  # its own sample budget (None: the pipeline's k)
    role: str = "target"  # "target" (the run's own) or what added it ("hole", "refutation")
    cancelled: bool = False  # no more samples: whoever added it no longer needs it
    running: int = 0  # its chains in flight
    queued: bool = False  # a sample of it waits in the scheduler
    outcome: asyncio.Future | None = None  # "proved" | "exhausted" | "cancelled", once nothing more will come
    committing: bool = False  # its proof is proved but not yet in the store: the outcome waits for it
    first_prompt: "FirstPrompt | None" = None  # what every sample of it sends first (Pipeline._first_prompt)

    def seconds(self) -> float:
        """Time spent on this target: earlier runs plus first start to last finish here."""
        if self.first_start is None:
            return self.prior_seconds
        return self.prior_seconds + ((self.last_end or time.monotonic()) - self.first_start)


@dataclass
class FirstPrompt:
    """A target's first-round prompt, fitted to the context, and its stored form: the same for every
    sample of the target, so built once (a target whose text changes, `_share_proof`, gets a new one).
    Fitting a fitted prompt gives it back as it is, so every sample's round 0 sends this very object."""

    target: Target
    prompt: Prompt
    stored: StoredPrompt


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
        self.check_concurrency = options.check_concurrency or getattr(verifier, "capacity", None) or 16
        self._gen_slots = asyncio.Semaphore(options.generation_concurrency)
        self._verify_slots = asyncio.Semaphore(self.check_concurrency)
        self._chains: set[asyncio.Task] = set()
        self._ended: list[asyncio.Task] = []  # chains that ended since the run loop last looked (their done callback)
        self.stopped = False
        self.states: dict[int, TargetState] = {}
        self.generating = 0  # chains waiting for or in generation
        self.waiting_checks = 0  # candidates waiting for a check slot
        self.max_waiting_checks = 0  # the most that ever waited (benches report it)
        self.dropped_checks = 0  # candidates dropped because their target was proved while they waited
        self.checking = 0  # checks running now
        self.attempts_done = 0  # attempts recorded by this pipeline
        self.feedback_attempts = 0  # of which error-feedback rounds
        self.cancelled = 0  # generations cancelled by early stop
        self.completion_tokens = 0  # tokens the engine reported for this pipeline's completions
        self.started_at = time.monotonic()
        self._wake = asyncio.Event()
        self._queue: list[tuple[int, int, int]] = []  # (next sample, arrival, target id): sample-major order
        self._arrival = itertools.count()
        self._holds = 0  # callers that may still add targets (the run waits for them)
        self._writer = None  # proverctl.store.writer.AttemptWriter while run() runs

    def _seed(self, sample: int, round_index: int) -> int | None:
        if self.options.seed is None:
            return None
        return self.options.seed + sample * 1000 + round_index

    def add(self, items: list[tuple[int, Target]], *, k: int | None = None, role: str = "target",
            already_proved: set[int] = frozenset(), prior_seconds: dict[int, float] | None = None) -> dict[int, asyncio.Future]:
        """Schedule targets, before or while the run goes on; returns each one's outcome future ("proved",
        "exhausted" when its budget is spent, or "cancelled"). A target's first sample comes before any
        target's next one."""
        prior_seconds = prior_seconds or {}
        futures = {}
        for target_id, target in items:
            state = TargetState(target_id, target, self.store.done_samples(target_id), proved=target_id in already_proved,
                                prior_seconds=prior_seconds.get(target_id, 0.0), k=k, role=role,
                                outcome=asyncio.get_running_loop().create_future())
            self.states[target_id] = state
            futures[target_id] = state.outcome
            if self.stopped:  # nothing more is drawn after a stop
                state.cancelled = True
            self._enqueue(state, 0)
            self._settle(state)
        self._wake.set()
        return futures

    def cancel(self, target_ids) -> None:
        """No more samples for these targets (a subgoal whose sketch was abandoned): their generations in
        flight are cancelled; what is recorded stays."""
        for target_id in target_ids:
            state = self.states.get(target_id)
            if state is None or state.cancelled or state.proved:
                continue
            state.cancelled = True
            for request in list(state.generating):
                request.cancel()
            self._settle(state)
        self._wake.set()

    def resolve(self, target_id: int) -> None:
        """The target was proved outside its own samples (a composed proof checked): no more samples; the
        caller recorded the proving attempt."""
        state = self.states.get(target_id)
        if state is None or state.proved:
            return
        state.proved = True
        state.last_end = time.monotonic()
        for request in list(state.generating):
            request.cancel()
        self._settle(state)
        self.on_event(Event("proved", target_id, state.target))
        self._wake.set()

    @contextlib.asynccontextmanager
    async def holding(self):
        """While held, the run does not end when its work runs out: the holder may still add targets."""
        self._holds += 1
        try:
            yield self
        finally:
            self._holds -= 1
            self._wake.set()

    def budget(self, state: TargetState) -> int:
        return self.options.k if state.k is None else state.k

    def _enqueue(self, state: TargetState, sample: int) -> None:
        """Put the target's next sample not yet drawn (a resumed run drew some) into the scheduler."""
        done = {s for s, _ in state.done}
        while sample < self.budget(state) and sample in done:
            sample += 1
        if sample < self.budget(state) and not state.cancelled and not (state.proved and not self.options.all_samples):
            heapq.heappush(self._queue, (sample, next(self._arrival), state.id))
            state.queued = True
        else:
            state.queued = False

    def _next(self) -> tuple[TargetState, int] | None:
        """The next (target, sample) in sample-major order, skipping targets that no longer need it."""
        while self._queue:
            sample, _, target_id = heapq.heappop(self._queue)
            state = self.states[target_id]
            state.queued = False
            if state.cancelled or (state.proved and not self.options.all_samples):
                self._settle(state)
                continue
            self._enqueue(state, sample + 1)
            return state, sample
        return None

    def _settle(self, state: TargetState) -> None:
        """Resolve a target's outcome once nothing more will come of it."""
        if state.outcome is None or state.outcome.done() or state.committing:
            return
        if state.proved:
            state.outcome.set_result("proved")
        elif state.cancelled and not state.running:
            state.outcome.set_result("cancelled")
        elif not state.queued and not state.running and not self.stopped:
            state.outcome.set_result("exhausted")

    async def run(self, items: list[tuple[int, Target]], *, already_proved: set[int] = frozenset(),
                  prior_seconds: dict[int, float] | None = None) -> dict[int, str]:
        """Prove each (target_id, target) and whatever is added meanwhile; returns target_id -> 'proved' |
        'not-proved' | 'interrupted' for every target. `prior_seconds` is the time earlier runs already
        spent per target (resume adds to it)."""
        from proverctl.store.writer import AttemptWriter

        self._writer = AttemptWriter(self.store.path)
        try:
            result = await self._run(items, already_proved, prior_seconds)
        except BaseException:
            writer, self._writer = self._writer, None
            with contextlib.suppress(Exception):  # the run's own failure is the one to report
                await writer.close()
            raise
        writer, self._writer = self._writer, None
        await writer.close()
        return result

    async def _run(self, items, already_proved, prior_seconds) -> dict[int, str]:
        self.add(items, already_proved=already_proved, prior_seconds=prior_seconds)
        for target_id in already_proved:  # a resumed run: what earlier runs proved is in the later targets' headers
            row = self.store.target(target_id) if target_id in self.states else None
            attempt = self.store.attempt(row["proved_attempt"]) if row and row.get("proved_attempt") else None
            if attempt and attempt.get("code"):
                self._share_proof(self.states[target_id], attempt["code"])
        failure: BaseException | None = None
        pending = None
        while True:
            while not self.stopped and self._may_start():
                pending = pending or self._next()
                if pending is None:
                    break
                state, sample = pending
                pending = None
                if state.cancelled or (state.proved and not self.options.all_samples):
                    self._settle(state)
                    continue
                self.generating += 1  # counted from now: the chain's first generation holds it
                state.started += 1
                state.running += 1
                task = asyncio.create_task(self._counted_chain(state, sample))
                self._chains.add(task)
                task.add_done_callback(self._chain_ended)
            # It ends when nothing runs and nothing more can come (a holder may still add targets), or at a stop.
            if not self._chains and (self.stopped or (pending is None and not self._queue and not self._holds)):
                break
            # One wake-up for any change (a chain ended, a slot freed, targets added): not an asyncio.wait over
            # every chain, which adds and removes a callback on each of them at every wake (bench/attempt_cpu.py).
            self._wake.clear()
            if not self._ended:
                await self._wake.wait()
            ended, self._ended = self._ended, []
            for task in ended:
                self._chains.discard(task)
                if not task.cancelled() and task.exception() is not None and failure is None:
                    failure = task.exception()
                    self.stop()  # the engine or the store failed: stop every chain, keep what is committed
        if failure is not None:
            for state in self.states.values():  # whoever waits on a target must not wait for ever
                if state.outcome is not None and not state.outcome.done():
                    state.outcome.set_result("proved" if state.proved else "cancelled")
            raise failure
        await self._writer.flush()  # every attempt is in the store before the targets' final status
        result = {}
        for target_id, state in self.states.items():
            status = "proved" if state.proved else ("interrupted" if self.stopped else "not-proved")
            self.store.set_target(target_id, status=status, seconds=round(state.seconds(), 3))
            result[target_id] = status
            if state.outcome is not None and not state.outcome.done():
                state.outcome.set_result("proved" if state.proved else ("cancelled" if state.cancelled or self.stopped else "exhausted"))
            self.on_event(Event("target-done", target_id, state.target))
        return result

    def _chain_ended(self, task: asyncio.Task) -> None:
        self._ended.append(task)
        self._wake.set()

    def _may_start(self) -> bool:
        return (self.generating < self.options.generation_concurrency
                and self.waiting_checks < self.options.backlog_factor * self.check_concurrency)

    def snapshot(self) -> dict:
        """Where the run stands, for a progress display (read from any thread; numbers only)."""
        states = list(self.states.values())
        unproved = [st for st in states if not st.proved]
        budget_left = sum(max(0, self.budget(st) - len({s for s, _ in st.done}) - st.started) for st in unproved
                          if not st.cancelled) if not self.stopped else 0
        elapsed = time.monotonic() - self.started_at
        busiest = sorted((st for st in states if st.generating or (not st.proved and st.started)), key=lambda st: -len(st.generating))
        return {
            # holes and negations of --decompose are work, not targets: the counts are the run's own targets
            "targets": sum(st.role == "target" for st in states), "proved": sum(st.proved for st in states if st.role == "target"),
            "samples_done": self.attempts_done - self.feedback_attempts,
            "rounds_done": self.feedback_attempts, "in_flight": self.generating, "checking": self.checking,
            "waiting_checks": self.waiting_checks, "cancelled": self.cancelled, "budget_left": budget_left,
            "tokens": self.completion_tokens, "elapsed": elapsed,
            "targets_shown": [(st.target.display_name, len(st.generating), st.attempts, st.proved) for st in busiest[:8]],
            "targets_more": max(0, len(busiest) - 8),
            # several endpoints (proverctl.inference.router.EndpointRouter): each one's figures so far
            "endpoints": self.generator.stats() if hasattr(self.generator, "stats") else [],
        }

    def stop(self) -> None:
        """Ctrl-C: stop sampling; chains in flight are cancelled (nothing half-written is stored)."""
        self.stopped = True
        for task in list(self._chains):
            task.cancel()

    async def _generate(self, state: TargetState, prompt: Prompt, seed: int | None) -> Completion | None:
        """One completion, or None when the target got proved meanwhile (the request is cancelled)."""
        async with self._gen_slots:
            if (state.proved and not self.options.all_samples) or state.cancelled:
                return None
            if state.first_start is None:
                state.first_start = time.monotonic()
            # The request runs in this chain's own task, which is the one an early stop cancels while it
            # waits here (a task of its own per request cost a task and a step more per attempt).
            chain = asyncio.current_task()
            state.generating.add(chain)
            try:
                return await self._sample(state, prompt, seed)
            except asyncio.CancelledError:
                if (state.proved or state.cancelled) and not self.stopped:
                    _uncancel(chain)
                    self.cancelled += 1
                    return None  # early stop (or an abandoned subgoal) cancelled this request, not Ctrl-C
                raise
            finally:
                state.generating.discard(chain)

    def _sample(self, state: TargetState, prompt: Prompt, seed: int | None):
        """One completion; for families that call Lean while they think, the whole conversation."""
        family = self.options.family
        if family.interaction is None:
            return self.generator.complete(prompt, seed)
        from proverctl.inference import interactive

        loop = interactive.sketch_loop if family.interaction == "sketch" else interactive.tool_loop
        window = family.window or self.options.context_length
        return loop(self.generator.complete, prompt, seed, lambda code: self._lean_feedback(state, code), window=window,
                    max_turns=family.max_turns)

    def _share_proof(self, proved: TargetState, code: str) -> None:
        """A lemma proved in a file goes, proof and all, into the header of every later target of that
        file (in place of its `sorry`), so a target that uses it can be proved in the same run; the
        store's copy of their headers follows."""
        from dataclasses import replace

        from proverctl.inputs import header_hash
        from proverctl.lean.targets import completed_text

        label = proved.target.source_label
        if not label or proved.target.name is None or proved.role != "target":
            return
        from proverctl.lean.source import parse

        if len(parse(code).declarations) != 1:
            return  # a proof with auxiliary lemmas would bring their names into every later header
        for state in self.states.values():
            if state is proved or state.proved or state.role != "target" or state.target.source_label != label \
                    or state.target.line <= proved.target.line:
                continue
            header = completed_text(state.target.header, {proved.target.display_name: code})
            if header != state.target.header:
                state.target = replace(state.target, header=header)
                self.store.set_target(state.id, header=header, header_hash=header_hash(header))

    async def _lean_feedback(self, state: TargetState, code: str) -> str:
        """Lean's answer to a sketch or a lean_check call: the REPL pre-filter's, never the judge's (it
        is feedback, not a verdict). Takes a check slot like any check."""
        feedback = getattr(self.verifier, "lean_feedback", None)
        if feedback is None:
            return "error: this verifier cannot answer Lean checks during generation (use the local REPL pool)"
        async with self._verify_slots:
            return await feedback(state.target, code)

    async def _check(self, state: TargetState, code: str) -> Verdict | None:
        """The verdict, or None when the target got proved while this candidate waited (it is dropped)."""
        self.waiting_checks += 1
        self.max_waiting_checks = max(self.max_waiting_checks, self.waiting_checks)
        try:
            await self._verify_slots.acquire()
        finally:
            self.waiting_checks -= 1
            self._wake.set()
        try:
            if state.proved and not self.options.all_samples:
                self.dropped_checks += 1
                return None
            self.checking += 1
            try:
                return await self.verifier.verify(state.target, code)
            finally:
                self.checking -= 1
        finally:
            self._verify_slots.release()

    async def _record(self, state: TargetState, sample: int, round_index: int, prompt: Prompt, completion: Completion | None,
                      code: str | None, verdict: Verdict, gen_seconds: float | None = None, *, proves: bool = False) -> None:
        """Commit one attempt (with `proves`: the first proof of its target, committed before this returns)
        and tell the caller."""
        first = state.first_prompt
        stored = first.stored if first is not None and first.prompt is prompt else prompt.as_dict()
        row = AttemptRow(
            target_id=state.id, sample=sample, round=round_index, prompt=stored,
            raw_output=completion.text if completion else None, code=code, verdict=verdict.kind.value, reasons=verdict.reasons,
            messages=[m.as_dict() for m in verdict.messages], prompt_tokens=completion.prompt_tokens if completion else None,
            completion_tokens=completion.completion_tokens if completion else None,
            gen_seconds=round(gen_seconds, 3) if gen_seconds is not None else None, verify_seconds=round(verdict.seconds, 3),
            finish_reason=completion.finish_reason if completion else None, seed=completion.seed if completion else None,
            judge=verdict.judge, turns=completion.turns if completion else None, sandbox=verdict.sandbox, axioms=verdict.axioms,
            endpoint=completion.endpoint if completion else None,
        )
        committed = self._writer.add(row, proves)  # chains run inside run(), which holds the writer
        if proves:
            await committed  # whoever waits on this target reads its proof next
        state.attempts += 1
        state.last_end = time.monotonic()
        self.attempts_done += 1
        self.feedback_attempts += round_index > 0
        self.completion_tokens += (completion.completion_tokens or 0) if completion else 0
        self.on_event(Event("attempt", state.id, state.target, sample, round_index, verdict))

    def _first_prompt(self, state: TargetState) -> FirstPrompt:
        first = state.first_prompt
        if first is None or first.target is not state.target:
            options = self.options
            built = build_prompt(state.target, options.family, options.mode, options.sampling)
            prompt, _ = fit_to_context(built, options.context_length)
            first = state.first_prompt = FirstPrompt(state.target, prompt, StoredPrompt.of(prompt.as_dict()))
        return first

    async def _counted_chain(self, state: TargetState, sample: int) -> None:
        slot = [True]  # the generation count the scheduler took for this chain, until its first generation ends
        try:
            await self._chain(state, sample, slot)
        finally:
            if slot[0]:
                self._release_generation(slot)
            state.running -= 1
            self._settle(state)

    def _release_generation(self, slot: list[bool]) -> None:
        slot[0] = False
        self.generating -= 1
        self._wake.set()

    async def _chain(self, state: TargetState, sample: int, slot: list[bool] | None = None) -> None:
        options = self.options
        target = state.target
        prompt = self._first_prompt(state).prompt
        for round_index in range(options.rounds + 1):
            if (state.proved and not options.all_samples) or state.cancelled:
                return
            prompt, room = fit_to_context(prompt, options.context_length)
            if room is not None:
                await self._record(state, sample, round_index, prompt, None, None, Verdict(VerdictKind.rejected, [room], judge="extraction"))
                return
            started = time.monotonic()
            seed = self._seed(sample, round_index)
            if round_index:
                self.generating += 1
            try:
                completion = await self._generate(state, prompt, seed)
            finally:
                self._release_generation(slot)
            if completion is None:
                return
            gen_seconds = time.monotonic() - started
            answer = completion.answer if completion.answer is not None else completion.text
            extraction = extract(answer, target, options.family, allow_aux=options.allow_aux)
            if not extraction.ok and completion.finish_reason == "length":
                limit = prompt.sampling.get("max_tokens")
                extraction = type(extraction)(None, f"the output was cut at max_tokens ({limit}) before a usable proof: "
                                                    f"{extraction.reason} (raise --max-tokens)", extraction.block)
            if extraction.ok:
                verdict = await self._check(state, extraction.code)
                if verdict is None:
                    return
            else:
                verdict = Verdict(VerdictKind.rejected, [extraction.reason], judge="extraction")
            proved = verdict.proved
            first = proved and not state.proved
            if first:
                state.proved = state.committing = True  # no sample of it starts while its proof is committed
                self._share_proof(state, extraction.code)  # later targets' next samples see it
            try:
                await self._record(state, sample, round_index, prompt, completion, extraction.code, verdict, gen_seconds, proves=first)
            finally:
                if first:
                    state.committing = False
            if proved:
                if first:
                    self._settle(state)
                    self.on_event(Event("proved", state.id, target, sample, round_index, verdict))
                if not options.all_samples:
                    for request in list(state.generating):
                        request.cancel()
                return
            errors = [m for m in verdict.messages if m.severity == "error"]
            if verdict.kind is not VerdictKind.rejected or not errors or round_index >= options.rounds:
                return
            nxt = feedback_prompt(prompt, completion.text, extraction.code or "", errors, round_index + 1, options.family)
            if nxt is None:
                return
            prompt = nxt
