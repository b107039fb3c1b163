"""The sampling loop and the prove job with fake generators and verifiers: early stop, cancellation,
--all, rounds, resume budget, failure propagation, per-target time, finish reasons, context caps,
outputs after a stop. No processes and no sleeps: fakes block on events the test controls."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from proverctl.errors import ExitCode, UsageError
from proverctl.inference.client import Completion, EndpointError
from proverctl.lean.protocol import Message, Pos
from proverctl.lean.targets import from_row
from proverctl.lean.verdict import Verdict, VerdictKind
from proverctl.pipeline import Pipeline, ProveOptions
from proverctl.proving import Notice, ProveJob, ProveRequest, RunStarted
from proverctl.store.db import AttemptRow, Store

A = from_row({"name": "ta", "formal_statement": "theorem ta (x : ℕ) : x + 0 = x := by"})
B = from_row({"name": "tb", "formal_statement": "theorem tb (x : ℕ) : 0 + x = x := by"})


def answer(target, body: str = "simp") -> str:
    return f"### Complete Lean 4 Proof\n```lean4\n{target.statement} by\n  {body}\n```\n"


class FakeGenerator:
    """Answers through `script(prompt, seed) -> str | Completion | awaitable`; records calls and cancellations."""

    def __init__(self, script) -> None:
        self.script = script
        self.calls: list[tuple[object, int | None]] = []
        self.cancelled = 0

    async def complete(self, prompt, seed=None) -> Completion:
        self.calls.append((prompt, seed))
        try:
            await asyncio.sleep(0)  # a request gives the loop a turn before its answer, as a real client's does
            out = self.script(prompt, seed)
            if asyncio.iscoroutine(out) or isinstance(out, asyncio.Future):
                out = await out
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if isinstance(out, Completion):
            return out
        return Completion(out, "stop", 10, 20, 0.0, seed)


class FakeVerifier:
    """`simp` proves; anything else is rejected with one Lean error (so feedback rounds have errors)."""

    def __init__(self) -> None:
        self.checked: list[str] = []

    async def verify(self, target, code: str) -> Verdict:
        self.checked.append(code)
        if "  simp" in code:
            return Verdict(VerdictKind.proved, [], [], ["propext"], 0.01)
        message = Message("error", "unsolved goals", Pos(2, 2), Pos(2, 8))
        return Verdict(VerdictKind.rejected, ["Lean error at line 2: unsolved goals"], [message], None, 0.01)


def never():
    return asyncio.get_running_loop().create_future()  # cancelled by early stop or stop()


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.sqlite3") as s:
        yield s


def add(store: Store, *targets) -> list[tuple[int, object]]:
    from proverctl.proving.records import target_rows
    from proverctl.inputs import InputFile

    run_id = store.create_run(kind="prove", command="test", input="x", model=None, revision=None, engine=None, endpoint=None,
                              lean_profile=None, settings={})
    rows, ts = target_rows([InputFile("x", None, None, list(targets))])
    return list(zip(store.add_targets(run_id, rows), ts))


def run(pipeline: Pipeline, items, **kwargs):
    return asyncio.run(pipeline.run(items, **kwargs))


def test_early_stop_cancels_the_samples_still_generating(store):
    gen = FakeGenerator(lambda prompt, seed: answer(A) if seed == 0 else never())
    items = add(store, A)
    status = run(Pipeline(store, gen, FakeVerifier(), ProveOptions(k=4, seed=0)), items)
    assert status == {items[0][0]: "proved"}
    assert len(gen.calls) == 4 and gen.cancelled == 3
    assert store.verdicts(1) == {"proved"} and len(store.attempts(items[0][0])) == 1


def test_all_keeps_sampling_after_a_proof(store):
    gen = FakeGenerator(lambda prompt, seed: answer(A))
    items = add(store, A)
    run(Pipeline(store, gen, FakeVerifier(), ProveOptions(k=3, all_samples=True)), items)
    attempts = store.attempts(items[0][0])
    assert len(attempts) == 3 and {a["verdict"] for a in attempts} == {"proved"}
    assert store.target(items[0][0])["proved_attempt"] == min(a["id"] for a in attempts)


def test_feedback_rounds_carry_the_failed_attempt(store):
    def script(prompt, seed):
        return answer(A, "simp" if len(prompt.messages) > 1 else "omega")

    gen = FakeGenerator(script)
    items = add(store, A)
    status = run(Pipeline(store, gen, FakeVerifier(), ProveOptions(k=1, rounds=2, family="goedel-v2", seed=5)), items)
    assert status[items[0][0]] == "proved"
    (first, _), (second, _) = gen.calls
    assert len(first.messages) == 1 and len(second.messages) == 3
    assert "<error>" in second.messages[-1]["content"] and "unsolved goals" in second.messages[-1]["content"]
    rows = [(a["sample"], a["round"], a["verdict"], a["seed"]) for a in store.attempts(items[0][0])]
    assert rows == [(0, 0, "rejected", 5), (0, 1, "proved", 6)]


def test_every_sample_of_a_target_sends_one_prompt_built_and_stored_once(store):
    """The first-round prompt is the same for every sample of a target: built (and fitted to the context)
    once, its stored form made once, one prompt row; feedback rounds and a target whose text changed
    (a lemma proved earlier in its file, _share_proof) get their own."""
    from dataclasses import replace

    from proverctl.pipeline import TargetState

    gen = FakeGenerator(lambda prompt, seed: answer(A, "simp" if len(prompt.messages) > 1 else "omega"))
    items = add(store, A)
    pipeline = Pipeline(store, gen, FakeVerifier(), ProveOptions(k=4, rounds=1, all_samples=True, family="goedel-v2",
                                                                 context_length=4096))
    run(pipeline, items)
    firsts = [p for p, _ in gen.calls if len(p.messages) == 1]
    assert len(firsts) == 4 and all(p is firsts[0] for p in firsts) and len(gen.calls) == 8
    assert firsts[0].sampling["max_tokens"] < 4096  # fitted to the context window, once
    assert store.db.execute("SELECT COUNT(DISTINCT prompt_id) FROM attempts WHERE round = 0").fetchone()[0] == 1
    assert store.db.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 2  # and one feedback prompt (the four are one text)

    state = TargetState(items[0][0], A, set())
    first = pipeline._first_prompt(state)
    assert pipeline._first_prompt(state) is first
    state.target = replace(A, header="import Mathlib\n\ntheorem lemma1 : True := trivial\n")
    again = pipeline._first_prompt(state)
    assert again is not first and "lemma1" in again.prompt.messages[0]["content"]


def test_raw_completion_families_get_no_feedback_round(store):
    gen = FakeGenerator(lambda prompt, seed: "  omega\n```")
    items = add(store, A)
    run(Pipeline(store, gen, FakeVerifier(), ProveOptions(k=1, rounds=3, family="deepseek-v1.5")), items)
    assert len(gen.calls) == 1


def test_resume_spends_only_the_rest_of_the_budget(store):
    items = add(store, A)
    target_id = items[0][0]
    for sample in (0, 1):
        store.add_attempt(AttemptRow(target_id, sample, 0, None, "x", None, "rejected", ["no block"], []))
    gen = FakeGenerator(lambda prompt, seed: "no proof here")
    run(Pipeline(store, gen, FakeVerifier(), ProveOptions(k=3, seed=0)), items)
    assert [seed for _, seed in gen.calls] == [2000]  # only sample 2 (seed 0 + 1000 * 2)
    assert sorted(a["sample"] for a in store.attempts(target_id)) == [0, 1, 2]


def test_an_engine_failure_stops_every_chain_and_keeps_what_was_committed(store):
    def script(prompt, seed):
        if seed == 0:
            return "no proof"
        if seed == 1000:
            raise EndpointError("the inference server answered 500")
        return never()

    gen = FakeGenerator(script)
    items = add(store, A, B)
    pipeline = Pipeline(store, gen, FakeVerifier(), ProveOptions(k=3, seed=0))
    with pytest.raises(EndpointError):
        run(pipeline, items)
    assert gen.cancelled >= 1 and len(store.attempts(items[0][0])) == 1


def test_stop_marks_targets_interrupted(store):
    holder = {}

    def on_event(event):
        if event.kind == "attempt":
            holder["pipeline"].stop()

    gen = FakeGenerator(lambda prompt, seed: "no proof" if seed == 0 else never())
    items = add(store, A)
    holder["pipeline"] = pipeline = Pipeline(store, gen, FakeVerifier(), ProveOptions(k=3, seed=0), on_event)
    assert run(pipeline, items) == {items[0][0]: "interrupted"}
    assert store.target(items[0][0])["status"] == "interrupted"


def test_seconds_are_per_target_and_add_up_over_resumes(store, monkeypatch):
    class Clock:
        now = 100.0

        @classmethod
        def monotonic(cls):
            return cls.now

    monkeypatch.setattr("proverctl.pipeline.time", Clock)  # only the pipeline's clock
    b_may_answer = asyncio.Event()

    async def slow_b():
        await b_may_answer.wait()
        Clock.now = 108.0
        return "no proof"

    class Timed(FakeVerifier):
        async def verify(self, target, code):
            if target.name == "ta":
                Clock.now = 101.0
                b_may_answer.set()
            return await super().verify(target, code)

    def script(prompt, seed):
        return answer(A, "omega") if "theorem ta " in prompt.messages[0]["content"] else slow_b()

    items = add(store, A, B)
    run(Pipeline(store, FakeGenerator(script), Timed(), ProveOptions(k=1)), items, prior_seconds={items[0][0]: 5.0})
    seconds = {t["name"]: t["seconds"] for t in store.targets(1)}
    # Both started at t=100; A finished at 101 (+5 s from an earlier run), B at 108: not the run's wall time for both.
    assert seconds == {"ta": 6.0, "tb": 8.0}


def test_finish_reason_and_a_cut_output_say_why(store):
    gen = FakeGenerator(lambda prompt, seed: Completion("Let me think ```lean4\ntheorem ta", "length", 10, 8192, 0.0, seed))
    items = add(store, A)
    run(Pipeline(store, gen, FakeVerifier(), ProveOptions(k=1, seed=3)), items)
    (attempt,) = store.attempts(items[0][0])
    assert attempt["finish_reason"] == "length" and attempt["seed"] == 3
    assert "cut at max_tokens (8192)" in attempt["reasons"][0]


def test_max_tokens_is_capped_by_the_context_window(store):
    gen = FakeGenerator(lambda prompt, seed: "no proof")
    items = add(store, A)
    run(Pipeline(store, gen, FakeVerifier(), ProveOptions(k=1, context_length=4096, sampling={"max_tokens": 32768})), items)
    ((prompt, _),) = gen.calls
    assert 256 <= prompt.sampling["max_tokens"] < 4096
    tiny = FakeGenerator(lambda prompt, seed: "no proof")
    items = add(store, B)
    run(Pipeline(store, tiny, FakeVerifier(), ProveOptions(k=1, context_length=300)), items)
    assert tiny.calls == [] and "no room to answer" in store.attempts(items[0][0])[0]["reasons"][0]


# ---------------------------------------------------------------------------------------------
# The job, with the generator and verifier injected


def problem(tmp_path, name="P.lean", targets=(A, B)):
    path = tmp_path / name
    path.write_text("\n\n".join(t.statement + " by\n  sorry" for t in targets) + "\n", encoding="utf-8")
    return path


def proves(*names):
    def script(prompt, seed):
        content = prompt.messages[0]["content"]  # the target is the last theorem shown (earlier ones are its header)
        target = max((t for t in (A, B) if f"theorem {t.name} " in content), key=lambda t: content.rindex(f"theorem {t.name} "))
        return answer(target) if target.name in names else "no proof"
    return script


def test_job_writes_in_place_atomically_with_one_backup_per_run(tmp_path):
    path = problem(tmp_path)
    original = path.read_text()
    first = ProveJob(ProveRequest(input=str(path), k=1, in_place=True), generator=FakeGenerator(proves("ta")), verifier=FakeVerifier())
    result = first.run()
    assert result.exit_code == ExitCode.NOT_PROVED and result.written == [str(path)]
    second = ProveJob(ProveRequest(input=str(path), k=1, in_place=True), generator=FakeGenerator(proves("tb")), verifier=FakeVerifier())
    assert second.run().exit_code == ExitCode.OK  # only tb was left to prove
    text = path.read_text()
    assert "sorry" not in text and text.count("  simp") == 2
    assert (tmp_path / "P.lean.run1.bak").read_text() == original
    assert "  simp" in (tmp_path / "P.lean.run2.bak").read_text()  # run 2's backup is the file run 1 left
    assert not list(tmp_path.glob("*.proverctl-tmp"))


def test_two_runs_writing_one_file_keep_each_others_proofs(tmp_path):
    path = problem(tmp_path)
    job_a = ProveJob(ProveRequest(input=str(path), k=1, in_place=True), generator=FakeGenerator(proves("ta")), verifier=FakeVerifier())
    job_b = ProveJob(ProveRequest(input=str(path), k=1, in_place=True), generator=FakeGenerator(proves("tb")), verifier=FakeVerifier())
    job_a.prepare()
    job_b.prepare()  # both read the file before either writes
    job_a.run()
    job_b.run()
    assert "sorry" not in path.read_text()


def test_output_dir_mirrors_a_folder_input(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    problem(src / "a", "X.lean", (A,))
    problem(src / "b", "X.lean", (B,))  # the same file name in two folders
    out = tmp_path / "solved"
    result = ProveJob(ProveRequest(input=str(src), k=1, output=str(out)), generator=FakeGenerator(proves("ta", "tb")),
                      verifier=FakeVerifier()).run()
    assert result.exit_code == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.lean")) == ["a/X.lean", "b/X.lean"]
    assert "theorem ta" in (out / "a/X.lean").read_text() and "theorem tb" in (out / "b/X.lean").read_text()
    assert "sorry" in (src / "a/X.lean").read_text()


def stopped_at_first_proof(input: str):
    """An in-place run of `input` (ta provable, tb never answered) stopped when ta is proved."""
    holder = {}

    def on_event(event):
        if getattr(event, "kind", None) == "proved":
            holder["job"].stop()

    def script(prompt, seed):
        return answer(A) if "theorem tb " not in prompt.messages[0]["content"] else never()

    holder["job"] = job = ProveJob(ProveRequest(input=input, k=2, in_place=True), generator=FakeGenerator(script),
                                   verifier=FakeVerifier())
    return job.run(on_event)


def test_stop_writes_what_is_proved_and_resume_writes_the_rest(tmp_path):
    path = problem(tmp_path)
    result = stopped_at_first_proof(str(path))
    assert result.interrupted and result.exit_code == ExitCode.INTERRUPTED
    text = path.read_text()
    assert "theorem ta (x : ℕ) : x + 0 = x := by\n  simp" in text and text.count("sorry") == 1
    resumed = ProveJob.resume(result.run_id, generator=FakeGenerator(proves("ta", "tb")), verifier=FakeVerifier())
    assert resumed.request.in_place  # remembered with the run
    again = resumed.run()
    assert again.exit_code == 0 and again.run_id == result.run_id and "sorry" not in path.read_text()


@pytest.mark.parametrize("relative", ["P.lean", "."])
def test_a_resume_started_anywhere_writes_into_the_runs_own_files(tmp_path, monkeypatch, hermetic, relative):
    """The run remembers where it started: resumed from another directory (where a same-named file
    waits), it reads and writes the run's own file; when that file is gone it refuses in one line."""
    home = tmp_path / "project"
    home.mkdir()
    path = problem(home)
    monkeypatch.chdir(home)
    first = stopped_at_first_proof(relative)
    assert first.interrupted and path.read_text().count("sorry") == 1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    decoy = problem(elsewhere)  # the same name, the same statements: the old code wrote here
    decoy_text = decoy.read_text()
    monkeypatch.chdir(elsewhere)
    again = ProveJob.resume(first.run_id, generator=FakeGenerator(proves("ta", "tb")), verifier=FakeVerifier()).run()
    assert again.exit_code == 0 and "sorry" not in path.read_text()
    assert decoy.read_text() == decoy_text
    assert again.written == [str(path)]
    if relative == ".":
        return  # a folder input: the folder is still there
    path.rename(home / "Moved.lean")
    with pytest.raises(UsageError, match=f"run {first.run_id} writes its proofs into {re.escape(relative)} in .*project"):
        ProveJob.resume(first.run_id, generator=FakeGenerator(proves("ta", "tb")), verifier=FakeVerifier()).prepare()


def test_job_reports_events_and_nothing_to_do(tmp_path):
    events = []
    path = problem(tmp_path, targets=(A,))
    ProveJob(ProveRequest(input=str(path), k=1), generator=FakeGenerator(proves("ta")), verifier=FakeVerifier()).run(events.append)
    kinds = [type(e).__name__ if not hasattr(e, "kind") else e.kind for e in events]
    assert "RunStarted" in kinds and "attempt" in kinds and "proved" in kinds
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.k == 1 and [t.name for _, t in started.items] == ["ta"]
    done = tmp_path / "Done.lean"
    done.write_text("theorem d : True := trivial\n")
    notes = []
    result = ProveJob(ProveRequest(input=str(done))).run(notes.append)  # no model, no Lean needed
    assert result.nothing_to_do and result.exit_code == 0
    assert any(isinstance(n, Notice) and "nothing to prove" in n.text for n in notes)


def test_only_verifier_errors_is_exit_4(tmp_path):
    class Broken:
        async def verify(self, target, code):
            return Verdict(VerdictKind.error, ["verifier error: the REPL exited"], [], None, 0.0)

    result = ProveJob(ProveRequest(input=str(problem(tmp_path, targets=(A,))), k=2), generator=FakeGenerator(proves("ta")),
                      verifier=Broken()).run()
    assert result.exit_code == ExitCode.VERIFIER


def test_the_stored_request_round_trips_and_drives_resume(tmp_path, hermetic):
    path = problem(tmp_path, targets=(A,))
    request = ProveRequest(input=str(path), k=3, rounds=1, allow_native_decide=True, output=str(tmp_path / "out.lean"), seed=9)
    result = ProveJob(request, generator=FakeGenerator(proves()), verifier=FakeVerifier()).run()
    with Store(hermetic / "proverctl" / "data" / "attempts.sqlite3") as store:
        stored = ProveRequest.from_json(store.run(result.run_id)["request"])
    assert stored == result.request
    assert (stored.k, stored.rounds, stored.allow_native_decide, stored.seed, stored.output) == (3, 1, True, 9, str(tmp_path / "out.lean"))
    assert stored.family == "deepseek-v2" and stored.resolved["lean_profile"] == "deepseek-v2"
    assert stored.resolved["verifier"]["kind"] == "repl-pool"
    assert json.loads(stored.to_json())["version"] == 1
    with pytest.raises(UsageError, match="--k cannot change when resuming"):
        ProveJob.resume(result.run_id, {"k": 5})
    with pytest.raises(UsageError, match="--allow-native-decide cannot change"):
        ProveJob.resume(result.run_id, {"allow_native_decide": False, "k": None})
    moved = ProveJob.resume(result.run_id, {"timeout": 5.0, "k": 3, "output": str(tmp_path / "elsewhere.lean")})
    assert moved.request.timeout == 5.0 and moved.request.allow_native_decide and moved.request.output.endswith("elsewhere.lean")


def test_requests_refuse_contradictions():
    with pytest.raises(UsageError, match="--in-place and --output"):
        ProveRequest(input="x.lean", in_place=True, output="y.lean")
    with pytest.raises(UsageError, match="name what to prove"):
        ProveRequest()
    with pytest.raises(UsageError, match="--repo, --rev and --file go together"):
        ProveRequest(repo="https://x", rev="abc")
    with pytest.raises(UsageError, match="--decompose checks sketches"):
        from proverctl.proving import Decompose

        ProveRequest(input="x.lean", decompose=Decompose(), verify_on="ray")


# ---------------------------------------------------------------------------------------------
# Scheduling: sample-major, lazy, bounded on both sides


def test_samples_are_issued_sample_major_and_lazily(store):
    targets = [from_row({"name": f"s{i}", "formal_statement": f"theorem s{i} : {i} = {i} := by"}) for i in range(4)]
    started = []

    class Gate:
        def __init__(self):
            self.open = asyncio.Event()

    gate = Gate()

    async def script_async(prompt, seed):
        started.append(seed)
        await gate.open.wait()
        return "no proof"

    async def go():
        gen = FakeGenerator(lambda prompt, seed: script_async(prompt, seed))
        pipeline = Pipeline(store, gen, FakeVerifier(), ProveOptions(k=3, seed=0, generation_concurrency=5))
        task = asyncio.ensure_future(pipeline.run(add(store, *targets)))
        for _ in range(50):
            await asyncio.sleep(0)
        in_flight = list(started)
        gate.open.set()
        await task
        return in_flight, pipeline

    in_flight, pipeline = asyncio.run(go())
    # Only 5 chains exist while 5 generations are in flight; they are sample 0 of all four targets, then
    # sample 1 of the first (seeds: 1000 * sample).
    assert in_flight == [0, 0, 0, 0, 1000]
    assert sorted(started) == [0] * 4 + [1000] * 4 + [2000] * 4 and pipeline.generating == 0


def test_a_target_proved_early_gets_no_further_samples(store):
    proving = from_row({"name": "easy", "formal_statement": "theorem easy (x : ℕ) : x + 0 = x := by"})
    hard = from_row({"name": "hard", "formal_statement": "theorem hard (x : ℕ) : 0 + x = x := by"})

    def script(prompt, seed):
        return answer(proving) if "theorem easy" in prompt.messages[0]["content"] else "no proof"

    gen = FakeGenerator(script)
    run(Pipeline(store, gen, FakeVerifier(), ProveOptions(k=8, seed=0, generation_concurrency=1)), add(store, proving, hard))
    easy_calls = sum("theorem easy" in p.messages[0]["content"] for p, _ in gen.calls)
    assert easy_calls == 1 and len(gen.calls) == 1 + 8  # one sample for the easy one, the whole budget for the hard one


def test_backpressure_and_checks_follow_the_verifiers_capacity(store):
    targets = [from_row({"name": f"b{i}", "formal_statement": f"theorem b{i} : {i} = {i} := by"}) for i in range(10)]

    class Slow(FakeVerifier):
        capacity = 2

        def __init__(self):
            super().__init__()
            self.running = 0
            self.most = 0

        async def verify(self, target, code):
            self.running += 1
            self.most = max(self.most, self.running)
            for _ in range(20):
                await asyncio.sleep(0)
            self.running -= 1
            return Verdict(VerdictKind.rejected, ["no"], [], None, 0.0)

    verifier = Slow()
    gen = FakeGenerator(lambda prompt, seed: answer(targets[0], "omega"))
    pipeline = Pipeline(store, gen, verifier, ProveOptions(k=4, generation_concurrency=8))
    run(pipeline, add(store, *targets))
    assert verifier.most == 2 and pipeline.check_concurrency == 2
    # Candidates never pile up: new samples wait while 2 x 2 wait for a check (plus what was generating).
    assert pipeline.max_waiting_checks <= 2 * 2 + 8
    assert len(store.attempts(1)) == 4 and pipeline.waiting_checks == 0


def test_checks_waiting_for_a_proved_target_are_dropped(store):
    release = asyncio.Event()

    class FirstSlow(FakeVerifier):
        capacity = 1

        async def verify(self, target, code):
            if not self.checked:
                self.checked.append(code)
                await release.wait()
                return Verdict(VerdictKind.proved, [], [], [], 0.0)
            return await super().verify(target, code)

    async def go():
        verifier = FirstSlow()
        gen = FakeGenerator(lambda prompt, seed: answer(A))
        pipeline = Pipeline(store, gen, verifier, ProveOptions(k=4))
        task = asyncio.ensure_future(pipeline.run(add(store, A)))
        while pipeline.waiting_checks < 3:
            await asyncio.sleep(0)
        release.set()
        await task
        return verifier, pipeline

    verifier, pipeline = asyncio.run(go())
    assert len(verifier.checked) == 1 and pipeline.dropped_checks == 3


# ---------------------------------------------------------------------------------------------
# Write-back that cannot be steered, and work that used to be refused


def test_a_dangling_backup_link_never_leads_the_write_outside(tmp_path):
    path = problem(tmp_path)
    original = path.read_text()
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    (tmp_path / "P.lean.run1.bak").symlink_to(outside)  # dangling: `exists()` is False for it
    notices = []
    job = ProveJob(ProveRequest(input=str(path), k=1, in_place=True), generator=FakeGenerator(proves("ta", "tb")), verifier=FakeVerifier())
    result = job.run(notices.append)
    assert not outside.exists() and path.read_text() == original and result.written == []
    assert any("P.lean.run1.bak exists and is not a plain file" in n.text for n in notices if isinstance(n, Notice))
    assert result.rows[0]["status"] == "proved"  # the proof stays in the store


def test_no_write_through_a_link_that_leaves_the_input_tree(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = problem(elsewhere)
    project = tmp_path / "project"
    project.mkdir()
    (project / "P.lean").symlink_to(real)
    notices = []
    job = ProveJob(ProveRequest(input=str(project), k=1, in_place=True), generator=FakeGenerator(proves("ta", "tb")),
                   verifier=FakeVerifier())
    job.run(notices.append)
    assert "sorry" in real.read_text() and (project / "P.lean").is_symlink()
    assert any("is a link or leads outside" in n.text for n in notices if isinstance(n, Notice))


def test_a_statement_edited_during_the_run_is_not_spliced(tmp_path):
    path = problem(tmp_path)

    def edit_then_prove(prompt, seed):
        if "x + 0 = x + 0" not in path.read_text():
            path.write_text(path.read_text().replace("x + 0 = x", "x + 0 = x + 0"))  # the user edits ta meanwhile
        return proves("ta", "tb")(prompt, seed)

    notices = []
    result = ProveJob(ProveRequest(input=str(path), k=1, in_place=True), generator=FakeGenerator(edit_then_prove),
                      verifier=FakeVerifier()).run(notices.append)
    text = path.read_text()
    assert "x + 0 = x + 0 := by\n  sorry" in text and "0 + x = x := by\n  simp" in text  # tb written, ta left as edited
    assert any("the statement of ta" in n.text and "changed since the run read it" in n.text for n in notices if isinstance(n, Notice))
    assert {r["name"]: r["status"] for r in result.rows} == {"ta": "proved", "tb": "proved"}


class NeedsLemma(FakeVerifier):
    """Refuses tb while ta is still `sorry` in its header (it would depend on that axiom), as Lean and
    the judge do."""

    async def verify(self, target, code: str) -> Verdict:
        if target.name == "tb" and "sorry" in target.header:
            return Verdict(VerdictKind.rejected, ["tb depends on sorryAx"], [], ["sorryAx"], 0.01)
        return await super().verify(target, code)


def test_a_lemma_proved_in_the_run_is_in_the_header_of_the_targets_after_it(tmp_path, store):
    path = problem(tmp_path)
    seen_headers = []

    def script(prompt, seed):
        seen_headers.append(prompt.messages[0]["content"])
        return proves("ta", "tb")(prompt, seed)

    result = ProveJob(ProveRequest(input=str(path), k=2, in_place=True), generator=FakeGenerator(script), verifier=NeedsLemma()).run()
    assert result.exit_code == ExitCode.OK, result.rows
    assert path.read_text().count("  simp") == 2
    with Store(Path(ProveJob(ProveRequest(input=str(path))).paths.store_db)) as db:
        tb = next(t for t in db.targets(result.run_id) if t["name"] == "tb")
        assert "theorem ta (x : ℕ) : x + 0 = x := by\n  simp" in tb["header"]  # the stored header follows


def test_a_trailing_print_axioms_in_the_models_block_is_dropped_not_refused():
    from proverctl.prompts.extract import extract

    output = f"```lean4\n{A.statement} by\n  simp\n\n#print axioms ta\n```"
    extraction = extract(output, A, "deepseek-v2")
    assert extraction.ok and "#print" not in extraction.code


def test_targets_added_while_running_are_scheduled_sample_major_and_can_be_cancelled(store):
    """A target added mid-run (a decomposition subgoal) gets its sample 0 before anyone's next sample;
    its own budget counts; its outcome future says proved / exhausted / cancelled; a hold keeps the run
    open for more; cancelling stops its samples."""
    C = from_row({"name": "tc", "formal_statement": "theorem tc (x : ℕ) : x * 1 = x := by"})
    D = from_row({"name": "td", "formal_statement": "theorem td (x : ℕ) : 1 * x = x := by"})
    order: list[str] = []
    gate = {"D": asyncio.Event()}

    async def script(prompt, seed):
        content = prompt.messages[0]["content"]
        name = next(t.name for t in (A, B, C, D) if f"theorem {t.name} " in content)
        order.append(name)
        if name == "td":
            await gate["D"].wait()  # generates until cancelled
        await asyncio.sleep(0.01)
        return answer(C) if name == "tc" and len([o for o in order if o == "tc"]) == 2 else "no proof"

    items = add(store, A, B)
    (c_id, _), (d_id, _) = add(store, C, D)
    options = ProveOptions(k=3, generation_concurrency=1)

    async def go():
        pipeline = Pipeline(store, FakeGenerator(script), FakeVerifier(), options)
        outcomes = {}

        async def later():
            async with pipeline.holding():
                while len(order) < 2:
                    await asyncio.sleep(0.005)
                outcomes.update(pipeline.add([(c_id, C)], k=2, role="hole"))
                outcomes.update(pipeline.add([(d_id, D)], k=5, role="hole"))
                while not any(o == "td" for o in order):
                    await asyncio.sleep(0.005)
                pipeline.cancel([d_id])
                await asyncio.gather(*outcomes.values())

        status, _ = await asyncio.gather(pipeline.run(items), later())
        return status, {k: f.result() for k, f in outcomes.items()}

    status, outcomes = asyncio.run(go())
    # A and B had their sample 0 when C and D arrived; C and D get theirs before A's and B's sample 1
    assert order[:4] == ["ta", "tb", "tc", "td"], order
    assert outcomes == {c_id: "proved", d_id: "cancelled"}
    assert order.count("tc") == 2 and order.count("td") == 1  # C's budget was 2 and its second sample proved it
    assert order.count("ta") == 3 and order.count("tb") == 3  # the run's own targets spent their k
    assert status[c_id] == "proved" and status[d_id] == "not-proved"


def test_a_target_whose_budget_runs_out_is_exhausted(store):
    items = add(store, A)

    async def go():
        pipeline = Pipeline(store, FakeGenerator(lambda p, s: "no proof"), FakeVerifier(), ProveOptions(k=2))
        outcome = None

        async def watch():
            nonlocal outcome
            while A_id not in pipeline.states:
                await asyncio.sleep(0.001)
            outcome = await pipeline.states[A_id].outcome

        A_id = items[0][0]
        await asyncio.gather(pipeline.run(items), watch())
        return outcome

    assert asyncio.run(go()) == "exhausted"
