"""`proverctl prove` end to end: a deterministic success through a stand-in engine that answers with
real prover output, a real `transformers serve`, kill -9 and resume, two runs on one store, bad inputs."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from terminal import run_on_terminal
from proverctl.errors import ExitCode
from proverctl.lean.targets import from_row

TESTS = Path(__file__).parent
FIX = TESTS / "fixtures"
G2 = {json.loads(l)["name"]: json.loads(l) for l in (FIX / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()}
NAMES = ["amc12b_2020_p2", "mathd_algebra_478", "mathd_numbertheory_1124"]


def solution(name: str) -> str:
    with zipfile.ZipFile(FIX / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        return z.read(f"test/{name}.lean").decode("utf-8")


def problem_file(tmp_path: Path, names=NAMES[:1]) -> Path:
    """A Lean file with the dataset's statements, each proof `sorry`, plus a proved lemma to leave alone."""
    parts = []
    for i, name in enumerate(names):
        text = G2[name]["formal_statement"]
        if i:
            text = text[text.index("/--"):]  # one header per file
        parts.append(text.rstrip() + ("\n  sorry\n" if text.rstrip().endswith("by") else "\n"))
    parts.append("\ntheorem already_done : (2 : ℕ) + 2 = 4 := by\n  norm_num\n")
    path = tmp_path / "Problems.lean"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def real_answer(body: dict, index: int) -> str:
    """Stands in for the model: answers with DeepSeek-Prover-V2's real solution for the prompt's theorem."""
    prompt = body["messages"][-1]["content"]
    name = next(n for n in NAMES if f"theorem {n}" in prompt)
    return f"### Proof plan\nUse norm_num.\n\n### Complete Lean 4 Proof\n\n```lean4\n{solution(name)}\n```\n"


def store_rows(home: Path, query: str, params=()) -> list[tuple]:
    db = sqlite3.connect(home / "proverctl" / "data" / "attempts.sqlite3")
    try:
        return db.execute(query, params).fetchall()
    finally:
        db.close()


def test_deterministic_success_writes_back_and_stops_early(cli, tmp_path, standin_repl, hermetic):
    path = problem_file(tmp_path)
    original = path.read_text()
    calls = []

    def first_fast(body, i):
        calls.append(i)
        if len(calls) > 1:
            time.sleep(2.0)  # the other samples are still generating when the first one proves the target
        return real_answer(body, i)

    with OpenAIStub(answer=first_fast) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "8", "--in-place", "--format", "json")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["name"] == "amc12b_2020_p2" and row["status"] == "proved" and row["run"] == 1
    # Other samples were already generating when the first proved the target; the early stop
    # cancelled them (some may have been cancelled before their request went out).
    assert len(calls) >= 2 and row["attempts"] == 1
    assert (tmp_path / "Problems.lean.run1.bak").read_text() == original
    new = path.read_text()
    sol = solution("amc12b_2020_p2")
    proof_body = sol[sol.index("theorem amc12b_2020_p2"):].split(":= by", 1)[1].rstrip()
    assert new == original.replace(" := by\n  sorry", " := by" + proof_body, 1)
    assert new.endswith("theorem already_done : (2 : ℕ) + 2 = 4 := by\n  norm_num\n")
    verdicts = store_rows(hermetic, "SELECT verdict FROM attempts")
    assert ("proved",) in verdicts and len(verdicts) == row["attempts"]
    assert store_rows(hermetic, "SELECT status FROM runs") == [("finished",)]


def test_stdin_format_lean_and_output_file(cli, tmp_path, standin_repl):
    path = problem_file(tmp_path)
    with OpenAIStub(answer=real_answer) as stub:
        piped = cli("prove", "-", "--endpoint", stub.url, "--k", "1", "--format", "lean", input=path.read_text())
        assert piped.exit_code == 0, piped
        assert "sorry" not in piped.stdout and "field_simp" in piped.stdout
        out = tmp_path / "Done.lean"
        written = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "-o", str(out), "--format", "quiet")
    assert written.exit_code == 0 and written.stdout == ""
    assert out.read_text() == piped.stdout and "sorry" in path.read_text()


def test_not_proved_leaves_the_file_untouched(cli, tmp_path, standin_repl, hermetic):
    path = problem_file(tmp_path, NAMES)
    original = path.read_bytes()
    with OpenAIStub(answer=lambda body, i: "I cannot prove this.") as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "3", "--in-place", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED
    assert [r["status"] for r in result.json()] == ["not-proved"] * 3 and all(r["attempts"] == 3 for r in result.json())
    assert path.read_bytes() == original and not list(tmp_path.glob("*.bak"))
    reasons = store_rows(hermetic, "SELECT DISTINCT reasons FROM attempts")
    assert reasons == [('["no ```lean4 block in the output"]',)]


def test_theorem_filter_dataset_input_and_feedback_rounds(cli, tmp_path, standin_repl, hermetic, monkeypatch):
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(G2[n]) + "\n" for n in NAMES))
    calls = []

    def answer(body, i):
        calls.append(len(body["messages"]))
        if len(body["messages"]) == 1:  # first round: a proof Lean rejects
            statement = from_row(G2["mathd_algebra_478"]).statement
            return f"```lean4\n{statement} by\n  bogus_tactic\n```"
        return real_answer(body, i)

    standin_repl("--reject", "bogus_tactic")
    with OpenAIStub(answer=answer) as stub:
        result = cli("prove", str(dataset), "--theorem", "mathd_algebra_478", "--endpoint", stub.url, "--k", "1", "--rounds", "1",
                     "--format", "json", "--model", "goedel-prover-v2-8b")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["name"] == "mathd_algebra_478" and row["status"] == "proved" and row["attempts"] == 2
    assert calls == [1, 3]  # the second request carried the failed attempt and the error feedback
    rounds = store_rows(hermetic, "SELECT sample, round, verdict FROM attempts ORDER BY round")
    assert rounds == [(0, 0, "rejected"), (0, 1, "proved")]


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except sqlite3.OperationalError:  # the other process is still creating the store
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_kill_9_then_resume_loses_and_redoes_nothing(cli, tmp_path, standin_repl, hermetic):
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(G2[n]) + "\n" for n in NAMES))
    slow = {"n": 0}

    def answer(body, i):
        slow["n"] += 1
        time.sleep(0.15 * slow["n"])  # answers trickle in, so some are committed before the kill
        return "no proof"

    with OpenAIStub(answer=answer) as stub:
        proc = subprocess.Popen([sys.executable, "-m", "proverctl", "prove", str(dataset), "--endpoint", stub.url, "--k", "4",
                                 "--format", "quiet"], env=dict(os.environ), stderr=subprocess.PIPE, text=True)
        db = hermetic / "proverctl" / "data" / "attempts.sqlite3"
        wait_for(lambda: db.exists() and len(store_rows(hermetic, "SELECT id FROM attempts")) >= 3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = store_rows(hermetic, "SELECT id, target_id, sample, round, raw_output, created FROM attempts ORDER BY id")
        assert 3 <= len(before) < 12
        assert store_rows(hermetic, "SELECT status FROM runs") == [("running",)]
        resumed = cli("prove", "--resume", "1", "--format", "json")
    assert resumed.exit_code == ExitCode.NOT_PROVED, resumed
    after = store_rows(hermetic, "SELECT id, target_id, sample, round, raw_output, created FROM attempts ORDER BY id")
    assert after[: len(before)] == before  # nothing committed was lost or rewritten
    per_target = store_rows(hermetic, "SELECT target_id, COUNT(*), COUNT(DISTINCT sample) FROM attempts GROUP BY target_id")
    assert per_target == [(1, 4, 4), (2, 4, 4), (3, 4, 4)]  # the budget counts what was spent; nothing redone
    assert store_rows(hermetic, "SELECT status FROM runs") == [("finished",)]


def test_two_concurrent_runs_share_one_store(tmp_path, standin_repl, hermetic):
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(G2[n]) + "\n" for n in NAMES))
    with OpenAIStub(answer=lambda body, i: "no proof", delay=0.05) as stub:
        procs = [subprocess.Popen([sys.executable, "-m", "proverctl", "prove", str(dataset), "--endpoint", stub.url, "--k", "5",
                                   "--format", "json"], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [1, 1], outs
    assert sorted(json.loads(o)[0]["run"] for o, _ in outs) == [1, 2]
    assert store_rows(hermetic, "SELECT run_id, COUNT(*) FROM attempts JOIN targets t ON t.id = target_id GROUP BY run_id") == [(1, 15), (2, 15)]


# ---------------------------------------------------------------------------------------------
# Bad inputs


@pytest.mark.parametrize(
    "make, args, code, message",
    [
        (lambda p: p / "missing.lean", [], ExitCode.USAGE, "missing.lean: no such file"),
        (lambda p: _write(p / "bin.lean", b"theorem t : True := by\n  -- \xff\n  sorry\n"), [], ExitCode.USAGE, "is not UTF-8 text"),
        (lambda p: _mkdir(p / "empty"), [], ExitCode.USAGE, "has no .lean files"),
        (lambda p: _write(p / "bad.jsonl", b'{"name": "x", "formal_statement": "theorem x : True := by"}\n{oops\n'), [], ExitCode.USAGE,
         "bad.jsonl:2: not a JSON object"),
        (lambda p: problem_file(p), ["--model", "deepseek-prover-v9"], ExitCode.USAGE, "unknown model 'deepseek-prover-v9'"),
        (lambda p: problem_file(p), ["--model", "deepseek-prover-v2-7b"], ExitCode.ENVIRONMENT, "is not pulled"),
        (lambda p: problem_file(p), ["--endpoint", "http://127.0.0.1:9"], ExitCode.ENVIRONMENT, "cannot reach the inference server"),
        (lambda p: problem_file(p), ["--k", "0"], ExitCode.USAGE, "--k"),
        (lambda p: problem_file(p), ["-o", "/nonexistent/dir/out.lean"], ExitCode.USAGE, "/nonexistent/dir does not exist"),
        (lambda p: problem_file(p), ["--theorem", "nope"], ExitCode.USAGE, "no target named 'nope'"),
        (lambda p: problem_file(p), ["--format", "yaml"], ExitCode.USAGE, "unknown format 'yaml'"),
        (lambda p: problem_file(p), ["--mode", "fast"], ExitCode.USAGE, "unknown mode 'fast'"),
    ],
)
def test_bad_inputs(cli, tmp_path, standin_repl, make, args, code, message):
    path = make(tmp_path)
    result = cli("prove", str(path), *args)
    assert result.exit_code == code, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_no_targets_is_nothing_to_do(cli, tmp_path, standin_repl):
    path = tmp_path / "Done.lean"
    path.write_text("theorem t : True := trivial\n")
    result = cli("prove", str(path))
    assert result.exit_code == 0 and "nothing to prove" in result.stderr


def test_lean_missing_is_exit_3(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with OpenAIStub() as stub:
        result = cli("prove", str(problem_file(tmp_path)), "--endpoint", stub.url)
    assert result.exit_code == ExitCode.ENVIRONMENT and "proverctl lean setup" in result.stderr


def test_resume_unknown_run(cli, standin_repl):
    result = cli("prove", "--resume", "7")
    assert result.exit_code == ExitCode.USAGE and "no run 7" in result.stderr


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


# ---------------------------------------------------------------------------------------------
# A real engine


@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("torch", "transformers", "fastapi", "uvicorn")),
                    reason="needs torch and transformers[serving]")
def test_end_to_end_through_a_real_transformers_serve(cli, tmp_path, standin_repl, hermetic):
    from tinymodel import build_tiny_model

    model = tmp_path / "tiny-prover"
    model.mkdir()
    build_tiny_model(model)
    path = problem_file(tmp_path, NAMES[:2])
    original = path.read_bytes()
    result = cli("prove", str(path), "--model", str(model), "--engine", "transformers", "--k", "2", "--max-tokens", "8",
                 "--in-place", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED, result
    rows = result.json()
    assert [(r["name"], r["status"], r["attempts"]) for r in rows] == [("amc12b_2020_p2", "not-proved", 2), ("mathd_algebra_478", "not-proved", 2)]
    attempts = store_rows(hermetic, "SELECT verdict, raw_output, completion_tokens FROM attempts")
    assert len(attempts) == 4 and all(v == "rejected" and out and tokens for v, out, tokens in attempts)
    assert path.read_bytes() == original
    assert cli("ps", "--format", "json").json() == []  # the session started for the run was stopped


@pytest.mark.lean
def test_real_lean_and_engine_prove_a_core_theorem(cli, tmp_path):
    """Where Lean (lean setup) and an engine exist: a core-Lean theorem the tiny model will not prove,
    but the whole path (session, Lean check, store) runs for real."""
    import shutil

    from proverctl.lean.workspace import recorded_workspaces

    if shutil.which("lake") is None or not recorded_workspaces():
        pytest.skip("no Lean workspace here (run `proverctl lean setup`)")
    path = tmp_path / "Core.lean"
    path.write_text("theorem core_add : (1 : Nat) + 1 = 2 := by\n  sorry\n")
    result = cli("prove", str(path), "--k", "1", "--format", "json")
    assert result.exit_code in (0, 1)


def test_ctrl_c_marks_the_run_interrupted_and_resume_finishes_it(tmp_path, standin_repl, hermetic):
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(G2[n]) + "\n" for n in NAMES))
    count = {"n": 0}

    def answer(body, i):
        count["n"] += 1
        if count["n"] > 2:
            time.sleep(30)  # the rest are still generating when Ctrl-C comes
        return "no proof"

    with OpenAIStub(answer=answer) as stub:
        proc = subprocess.Popen([sys.executable, "-m", "proverctl", "prove", str(dataset), "--endpoint", stub.url, "--k", "2",
                                 "--format", "json"], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: (hermetic / "proverctl/data/attempts.sqlite3").exists()
                 and len(store_rows(hermetic, "SELECT id FROM attempts")) >= 2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "continue with `proverctl prove --resume 1`" in err
    assert store_rows(hermetic, "SELECT status FROM runs") == [("interrupted",)]
    assert {r["status"] for r in json.loads(out)} <= {"interrupted", "not-proved"}
    kept = store_rows(hermetic, "SELECT id, sample FROM attempts ORDER BY id")
    with OpenAIStub(answer=lambda body, i: "no proof") as stub:
        env = dict(os.environ)
        done = subprocess.run([sys.executable, "-m", "proverctl", "prove", "--resume", "1", "--endpoint", stub.url, "--format", "json"],
                              env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == ExitCode.NOT_PROVED, done.stderr
    assert store_rows(hermetic, "SELECT id, sample FROM attempts ORDER BY id")[: len(kept)] == kept
    assert store_rows(hermetic, "SELECT COUNT(*) FROM attempts") == [(6,)]
    assert store_rows(hermetic, "SELECT status FROM runs") == [("finished",)]


# ---------------------------------------------------------------------------------------------
# What the endpoint really serves


def kimina_answer(body, i):
    name = next(n for n in NAMES if f"theorem {n}" in body["messages"][-1]["content"])
    return f"<think>plan</think>\n```lean4\n{solution(name)}\n```"


def test_endpoint_serving_kimina_gets_kimina_prompts_and_profile(cli, tmp_path, standin_repl, hermetic):
    path = problem_file(tmp_path)
    with OpenAIStub(model="AI-MO/Kimina-Prover-Preview-Distill-7B", answer=kimina_answer, version="0.10.1") as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--format", "json")
        assert result.exit_code == 0, result
        assert stub.bodies[0]["messages"][0] == {"role": "system", "content": "You are an expert in mathematics and Lean 4."}
        assert stub.bodies[0]["model"] == "AI-MO/Kimina-Prover-Preview-Distill-7B"
        run = cli("show", "1", "--format", "json").json()
        assert (run["model"], run["lean_profile"], run["served_model"]) == ("kimina-prover-preview-distill-7b", "kimina",
                                                                           "AI-MO/Kimina-Prover-Preview-Distill-7B")
        assert run["engine_version"] == "0.10.1"
        attempt = cli("show", "1/0/0", "--format", "json").json()
        assert attempt["finish_reason"] == "stop" and attempt["completion_tokens"] == 5
        request = json.loads(store_rows(hermetic, "SELECT request FROM runs")[0][0])["request"]
        assert request["family"] == "kimina" and request["resolved"]["served_model"] == "AI-MO/Kimina-Prover-Preview-Distill-7B"
        mismatch = cli("prove", str(path), "--endpoint", stub.url, "--model", "deepseek-prover-v2-7b", "--k", "1")
        assert mismatch.exit_code == ExitCode.USAGE and "serves kimina-prover-preview-distill-7b, not deepseek-prover-v2-7b" in mismatch.stderr
        family = cli("prove", str(path), "--endpoint", stub.url, "--family", "deepseek-v2", "--k", "1")
        assert family.exit_code == ExitCode.USAGE and "--force" in family.stderr
        forced = cli("prove", str(path), "--endpoint", stub.url, "--family", "deepseek-v2", "--force", "--k", "1", "--no-cache",
                         "--format", "json")
        assert forced.exit_code == 0, forced
        assert stub.bodies[-1]["messages"][0]["role"] == "user" and "--force" in forced.stderr


def test_endpoint_with_several_models_needs_served_model(cli, tmp_path, standin_repl):
    from proverctl.proving.endpoint import catalog_entry_for

    assert catalog_entry_for("deepseek-prover-v2-7b").alias == "deepseek-prover-v2-7b"
    assert catalog_entry_for("deepseek-ai/deepseek-prover-v2-7b").alias == "deepseek-prover-v2-7b"
    snapshot = "/hf/hub/models--Goedel-LM--Goedel-Prover-V2-8B/snapshots/0123abcd"
    assert catalog_entry_for(snapshot).alias == "goedel-prover-v2-8b"
    assert catalog_entry_for("/models/Kimina-Prover-Preview-Distill-7B").family == "kimina"
    assert catalog_entry_for("/models/leanabell-prover-v2-ds").family == "deepseek-v2"  # a row with no hub repository
    assert catalog_entry_for("my-finetune") is None
    unknown = problem_file(tmp_path)
    with OpenAIStub(model="my-finetune") as stub:
        result = cli("prove", str(unknown), "--endpoint", stub.url, "--k", "1", "--served-model", "other")
        assert result.exit_code == ExitCode.USAGE and "does not serve 'other'" in result.stderr
        served = cli("prove", str(unknown), "--endpoint", stub.url, "--k", "1", "--format", "json")
        assert "unknown to the catalog" in served.stderr
        run = cli("show", "1", "--format", "json").json()
    assert (run["model"], run["served_model"]) == ("my-finetune", "my-finetune")  # never the `model` setting's name


def test_a_repl_that_cannot_check_anything_ends_the_run_with_exit_4(cli, tmp_path, standin_repl, hermetic):
    standin_repl("--crash-on", "theorem")
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(G2[n]) + "\n" for n in NAMES))
    with OpenAIStub(answer=real_answer) as stub:
        result = cli("prove", str(dataset), "--endpoint", stub.url, "--k", "4", "--workers", "1", "--format", "json")
    assert result.exit_code == ExitCode.VERIFIER, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no Lean check can run" in errors[0]
    assert 3 <= store_rows(hermetic, "SELECT COUNT(*) FROM attempts")[0][0] < 12  # stopped early, what ran is kept
    assert store_rows(hermetic, "SELECT status FROM runs") == [("failed",)]


def test_a_target_inside_a_namespace_is_proved_and_written_back(cli, tmp_path, standin_repl):
    path = tmp_path / "Ns.lean"
    path.write_text("import Mathlib\n\nnamespace Foo.Bar\n\ntheorem add_zero' (x : ℕ) : x + 0 = x := by\n  sorry\n\nend Foo.Bar\n")

    def answer(body, i):
        return "```lean4\nnamespace Foo.Bar\n\ntheorem add_zero' (x : ℕ) : x + 0 = x := by\n  simp\n\nend Foo.Bar\n```"

    with OpenAIStub(answer=answer) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--in-place", "--format", "json")
    assert result.exit_code == 0, result
    assert result.json()[0]["name"] == "Foo.Bar.add_zero'"
    assert "  simp\n\nend Foo.Bar" in path.read_text() and "sorry" not in path.read_text()


def test_ctrl_c_during_in_place_writes_what_is_proved(tmp_path, standin_repl, hermetic):
    path = problem_file(tmp_path, NAMES[:2])

    def answer(body, i):
        if "theorem mathd_algebra_478" in body["messages"][-1]["content"]:
            time.sleep(30)  # still generating when Ctrl-C comes
        return real_answer(body, i)

    with OpenAIStub(answer=answer) as stub:
        proc = subprocess.Popen([sys.executable, "-m", "proverctl", "prove", str(path), "--endpoint", stub.url, "--k", "1",
                                 "--in-place", "--format", "json"], env=dict(os.environ), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_for(lambda: (hermetic / "proverctl/data/attempts.sqlite3").exists()
                 and store_rows(hermetic, "SELECT COUNT(*) FROM attempts WHERE verdict = 'proved'")[0][0] == 1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    text = path.read_text()
    assert "field_simp" in text and text.count("sorry") == 1  # the proved target is written, the other left as it was
    assert f"wrote {path}" in err and (tmp_path / "Problems.lean.run1.bak").exists()


# ---------------------------------------------------------------------------------------------
# Watching a run


def test_summary_line_says_what_is_known_and_no_eta_before_a_rate():
    from proverctl.cli.run_view import summary_line

    snapshot = {"targets": 40, "proved": 3, "samples_done": 5, "rounds_done": 0, "in_flight": 64, "checking": 2, "waiting_checks": 1,
                "cancelled": 4, "budget_left": 1200, "tokens": 0, "elapsed": 12.0, "targets_shown": [], "targets_more": 0}
    early = summary_line(snapshot)
    assert "3/40 targets proved" in early and "64 in flight" in early and "4 cancelled" in early and "ETA" not in early
    later = summary_line({**snapshot, "samples_done": 100, "tokens": 450_000, "elapsed": 100.0, "rounds_done": 7})
    assert "ETA about 21m04s" in later and "4,500 tok/s" in later and "7 feedback rounds" in later
    assert "<=" not in later  # an estimate at the current rate is never promised as a bound
    final = summary_line({**snapshot, "samples_done": 100, "tokens": 450_000, "elapsed": 100.0}, final=True)
    assert "ETA" not in final and "in flight" not in final and "100 samples" in final and "450,000 tokens" in final


def test_a_plain_progress_line_when_stderr_is_not_a_terminal(cli, tmp_path, standin_repl, monkeypatch):
    monkeypatch.setenv("PROVERCTL_PROGRESS_INTERVAL", "0.2")
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(G2[n]) + "\n" for n in NAMES))
    with OpenAIStub(answer=lambda body, i: "no proof", delay=0.4) as stub:
        result = cli("prove", str(dataset), "--endpoint", stub.url, "--k", "2", "--format", "json")
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert lines and "targets proved" in lines[-1] and "samples" in lines[-1]
    last = result.stderr.splitlines()[-1]  # a log ends with the tally, not with a progress line from before the end
    assert last.startswith("finished: 0/3 targets proved") and "6 samples" in last, result.stderr


def test_progress_gives_each_endpoints_figures_while_the_run_goes_on(cli, tmp_path, standin_repl, monkeypatch):
    from proverctl.cli.run_view import endpoint_lines

    monkeypatch.setenv("PROVERCTL_PROGRESS_INTERVAL", "0.2")
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(G2[n]) + "\n" for n in NAMES))
    with OpenAIStub(answer=lambda body, i: "no proof", delay=0.4) as a, OpenAIStub(answer=lambda body, i: "no proof", delay=0.4) as b:
        result = cli("prove", str(dataset), "--endpoint", a.url, "--endpoint", b.url, "--k", "2", "--format", "json")
    assert result.exit_code == 1, result
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress:   ")]
    assert any(line.startswith(f"progress:   {a.url}/v1: ") for line in lines)
    assert any(line.startswith(f"progress:   {b.url}/v1: ") for line in lines)
    assert all("in flight" in line and "requests" in line and "tok/s" in line for line in lines)
    down = {"endpoint": "http://gpu1:8000/v1", "up": False, "requests": 3, "failed": 3, "in_flight": 0, "tokens": 0, "tokens_per_s": 0.0,
            "last_error": "connection refused"}
    up = {**down, "endpoint": "http://gpu0:8000/v1", "up": True, "failed": 0, "in_flight": 5, "tokens_per_s": 1234.4}
    assert endpoint_lines({"endpoints": [up]}) == []  # one endpoint: the summary line says it all
    assert endpoint_lines({"endpoints": [up, down]}) == [
        "http://gpu0:8000/v1: 5 in flight, 3 requests, 0 failed, 1,234 tok/s",
        "http://gpu1:8000/v1: 0 in flight, 3 requests, 3 failed, 0 tok/s, down (connection refused)"]


def test_the_live_display_on_a_real_terminal(tmp_path, standin_repl, hermetic):
    """In a pseudo-terminal the summary line is drawn (and redrawn) while the run goes on."""
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(G2[n]) + "\n" for n in NAMES))
    with OpenAIStub(answer=lambda body, i: "no proof", delay=0.3) as stub:
        text = run_on_terminal("prove", str(dataset), "--endpoint", stub.url, "--k", "3", "--format", "human")
    assert "targets proved" in text and "in flight" in text and "elapsed" in text
    assert "0/3 proved" in text or "not-proved" in text  # the final table follows


def test_every_missing_piece_is_named_at_once(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no lake, no engine on PATH
    from proverctl.inference import engines

    for name in engines.names():
        monkeypatch.setattr(engines.get(name), "executable", lambda: None)
    result = cli("prove", str(problem_file(tmp_path)), "--model", "deepseek-prover-v2-7b")
    assert result.exit_code == ExitCode.ENVIRONMENT
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert "is not pulled" in line and "engine is not installed" in line and "Lean workspace" in line
    assert "proverctl doctor" in result.stderr


def test_a_hint_reaches_the_prompt_is_stored_and_refused_where_the_format_has_no_place(cli, tmp_path, standin_repl, hermetic):
    path = problem_file(tmp_path)
    hint_file = tmp_path / "hint.md"
    hint_file.write_text("Multiply out and compare the two sides.\n")
    with OpenAIStub(answer=real_answer) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--hint", str(hint_file), "--format", "json")
        assert result.exit_code == 0, result
        assert "Multiply out and compare the two sides." in stub.bodies[0]["messages"][-1]["content"]
        run = result.json()[0]["run"]
        shown = cli("show", str(run), "--format", "json").json()
        assert shown["request"]["request"]["hint"] == "Multiply out and compare the two sides."
        assert store_rows(hermetic, "SELECT hint FROM targets") == [("Multiply out and compare the two sides.",)]
        literal = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--hint", "Use norm_num.", "--no-cache",
                          "--format", "json")
        assert literal.exit_code == 0 and "Use norm_num." in stub.bodies[-1]["messages"][-1]["content"]
        raw = cli("prove", str(path), "--endpoint", stub.url, "--family", "deepseek-v1.5", "--force", "--hint", "x")
        assert raw.exit_code == 2 and "no place for an informal proof" in raw.stderr
        empty = cli("prove", str(path), "--endpoint", stub.url, "--hint", " ")
        assert empty.exit_code == 2 and "--hint is empty" in empty.stderr


def test_a_dataset_is_written_out_as_a_dataset(cli, tmp_path, standin_repl, hermetic):
    """`prove rows.jsonl -o OUT.jsonl` writes each row with its proof, status and how it was checked;
    --in-place, --format lean and a non-.jsonl -o are refused in one line; reports name the row."""
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("\n" + "".join(json.dumps(G2[n]) + "\n" for n in NAMES[:2]))  # rows on lines 2 and 3
    out = tmp_path / "solved.jsonl"
    for flags, message in ((["--in-place"], "--in-place cannot rewrite the dataset"),
                           (["--format", "lean"], "--format lean prints a Lean file"),
                           (["-o", str(tmp_path / "x.lean")], "a dataset is written as a .jsonl file"),
                           (["-o", str(dataset)], "is the dataset itself")):
        refused = cli("prove", str(dataset), "--endpoint", "http://127.0.0.1:9", *flags)
        assert refused.exit_code == ExitCode.USAGE and message in refused.stderr, (flags, refused.stderr)
    assert dataset.read_text().count("\n") == 3
    with OpenAIStub(answer=real_answer) as stub:
        result = cli("prove", str(dataset), "--endpoint", stub.url, "--k", "1", "-o", str(out), "--format", "json",
                     "--model", "goedel-prover-v2-8b")
    assert result.exit_code == 0, result
    assert sorted((r["file"], r["line"]) for r in result.json()) == [(str(dataset), 2), (str(dataset), 3)]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["name"] for r in rows] == NAMES[:2]
    for row in rows:
        assert row["formal_statement"] == G2[row["name"]]["formal_statement"]  # the original row, kept whole
        assert row["status"] == "proved" and row["proof"] and row["checked"] and row["run"] == 1
