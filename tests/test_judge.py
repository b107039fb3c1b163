"""The kernel judge, proverctl's side: what it is given (a challenge from the ORIGINAL statement, the
solution on its own), how its verdict is read (exit status and its own success line), and that it
decides over the REPL pre-filter. The judge's programs are stand-ins speaking SafeVerify's and
`lean -o`'s real command lines and outputs (tests/standin_judge.py); `lean`-marked tests run the real
SafeVerify where a workspace with it exists."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from proverctl.errors import ExitCode
from proverctl.lean.targets import from_row, targets_in_text
from proverctl.lean.verdict import Policy, Verdict, VerdictKind
from proverctl.verify.judge import (
    Judge,
    JudgedVerifier,
    JudgeSpec,
    _Run,
    challenge_text,
    file_challenge,
    judge_header,
    solution_text,
)

TESTS = Path(__file__).parent
FIX = TESTS / "fixtures"
SCRIPT = TESTS / "standin_judge.py"
G2 = {json.loads(l)["name"]: json.loads(l) for l in (FIX / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()}
NAME = "amc12b_2020_p2"


def solution(name: str = NAME) -> str:
    with zipfile.ZipFile(FIX / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        return z.read(f"test/{name}.lean").decode("utf-8")


def spec(tmp_path, *judge_args, lean_args=(), dialect="v1", timeout=60.0) -> JudgeSpec:
    return JudgeSpec(command=(sys.executable, str(SCRIPT), "safe_verify", *judge_args),
                     lean_command=(sys.executable, str(SCRIPT), "lean", *lean_args), workspace=None, label="safeverify@test",
                     dialect=dialect, compile_timeout=timeout, judge_timeout=timeout, cache_dir=tmp_path / "judge-cache")


TARGET = from_row({"name": "t", "header": "import Mathlib\n\n", "formal_statement": "theorem t (x : ℕ) : x + 0 = x := by"})
GOOD = TARGET.statement + " by\n  simp\n"


# ---------------------------------------------------------------------------------------------
# The two files


def test_the_challenge_is_the_original_statement_with_sorry():
    assert challenge_text(TARGET) == "import Mathlib\n\ntheorem t (x : ℕ) : x + 0 = x := by\n  sorry\n"
    assert solution_text(TARGET, GOOD) == "import Mathlib\n\ntheorem t (x : ℕ) : x + 0 = x := by\n  simp\n"
    example = targets_in_text("import Mathlib\n\nexample : (2 : ℕ) + 2 = 4 := by\n  sorry\n")[0]
    assert "theorem proverctl_example_3 : (2 : ℕ) + 2 = 4 := by\n  sorry" in challenge_text(example)


def test_earlier_unproved_declarations_become_axioms_in_both_files():
    text = ("import Mathlib\n\n/-- helper -/\n@[simp] private theorem helper (n : ℕ) : n ≤ n + 1 := by\n  sorry\n\n"
            "def f : ℕ := 3\n\ninstance foo : Inhabited ℕ := sorry\n\nexample : True := by sorry\n\n"
            "theorem main_goal : f = 3 := by\n  sorry\n")
    target = next(t for t in targets_in_text(text) if t.name == "main_goal")
    header = judge_header(target.header)
    assert "private axiom helper (n : ℕ) : n ≤ n + 1\n" in header and "sorry" not in header
    assert "def f : ℕ := 3" in header and "@[instance] axiom foo : Inhabited ℕ" in header
    assert "example" not in header
    assert challenge_text(target).startswith(header)


def test_every_dataset_statement_makes_a_challenge_with_its_statement():
    rows = [json.loads(line) for line in (FIX / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()]
    for row in rows:
        target = from_row(row)
        text = challenge_text(target)
        statement = target.statement.rstrip().removesuffix(":=").rstrip()
        assert statement in text and text.rstrip().endswith("sorry"), row["name"]


# ---------------------------------------------------------------------------------------------
# Reading the judge


def read(tmp_path, code, stdout="", stderr="", dialect="v1"):
    return Judge(spec(tmp_path, dialect=dialect))._read(_Run(code, stdout, stderr), 1.0)


def test_only_exit_0_with_the_judges_own_success_line_is_proved(tmp_path):
    assert read(tmp_path, 0, "Replaying x\nFinished with no errors.\n").kind is VerdictKind.proved
    assert read(tmp_path, 0, stderr="SafeVerify check passed.\n", dialect="v2").kind is VerdictKind.proved
    assert read(tmp_path, 0, "Replaying x\n").kind is VerdictKind.error  # no success line: never proved
    rejected = read(tmp_path, 1, "Finished with no errors.\n", "found a problem in s.olean\nuncaught exception: sorryAx is not in the "
                                                                "allowed set of standard axioms\n")
    assert rejected.kind is VerdictKind.rejected and "sorryAx is not in the allowed set" in rejected.reasons[0]
    assert read(tmp_path, -11, "Finished with no errors.\n").kind is VerdictKind.error  # a crash is never a proof
    assert read(tmp_path, None).kind is VerdictKind.timeout
    v2 = read(tmp_path, 1, stderr="Found a problem in s.olean with declaration t: thmType\nuncaught exception: SafeVerify check failed.\n",
              dialect="v2")
    assert v2.kind is VerdictKind.rejected and v2.reasons == ["judge (safeverify@test): t: thmType"]


def judge_once(judge: Judge, challenge: str, sol: str):
    return asyncio.run(judge.judge(challenge, sol))


def test_a_good_proof_is_kernel_checked_and_the_challenge_is_compiled_once(tmp_path):
    log = tmp_path / "runs.jsonl"
    judge = Judge(spec(tmp_path, "--log", str(log), lean_args=("--log", str(log))))
    for _ in range(2):
        assert asyncio.run(judge.judge_target(TARGET, GOOD)).kind is VerdictKind.proved
    programs = [json.loads(l)["program"] for l in log.read_text().splitlines()]
    assert programs.count("lean") == 3 and programs.count("safe_verify") == 2  # challenge once, solution twice
    (cached,) = (tmp_path / "judge-cache").glob("*/Proof.lean")
    assert cached.read_text() == challenge_text(TARGET)


def test_what_the_solution_prints_never_reaches_the_verdict(tmp_path):
    judge = Judge(spec(tmp_path, lean_args=("--hidden-axiom", "simp")))
    forged = GOOD + '#eval IO.println "Finished with no errors."\n'
    outcome = judge_once(judge, challenge_text(TARGET), forged)
    assert outcome.kind is VerdictKind.rejected and "forged is not in the allowed set" in outcome.reasons[0]


def test_a_solution_that_does_not_compile_alone_is_rejected(tmp_path):
    outcome = judge_once(Judge(spec(tmp_path, lean_args=("--reject", "simp"))), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert outcome.kind is VerdictKind.rejected and "does not compile on its own" in outcome.reasons[0]


def test_a_challenge_that_does_not_compile_is_an_error_not_a_rejection(tmp_path):
    outcome = judge_once(Judge(spec(tmp_path, lean_args=("--reject", "sorry"))), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert outcome.kind is VerdictKind.error and "the challenge (the original statement) does not compile" in outcome.reasons[0]


def test_a_crashing_or_hanging_judge_is_never_proved(tmp_path):
    crashed = judge_once(Judge(spec(tmp_path, "--crash")), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert crashed.kind is VerdictKind.error and "failed (exit -11)" in crashed.reasons[0]
    hung = judge_once(Judge(spec(tmp_path, "--hang", timeout=3.0)), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert hung.kind is VerdictKind.timeout


@pytest.mark.skipif(not __import__("proverctl.lean.sandbox", fromlist=["bwrap_works"]).bwrap_works(),
                    reason="bubblewrap is not installed or cannot create namespaces here")
def test_in_the_sandbox_a_solution_compile_cannot_touch_the_cached_challenge(tmp_path):
    cache = tmp_path / "judge-cache"
    poison = cache / "poison.txt"
    base = spec(tmp_path, lean_args=("--also-write", str(poison)))
    sandboxed = Judge(JudgeSpec(**{**base.__dict__, "sandbox": "bwrap"}))
    assert asyncio.run(sandboxed.judge_target(TARGET, GOOD)).kind is VerdictKind.proved
    assert not poison.exists()
    unsandboxed = Judge(base)  # control: without the sandbox the same compile writes there
    asyncio.run(unsandboxed.judge_target(TARGET, GOOD.replace("simp", "simp_all")))
    assert poison.exists()


class AcceptAll:
    """A pre-filter that accepts everything (as a REPL that an attack fooled would)."""

    async def verify(self, target, code):
        return Verdict(VerdictKind.proved, [], [], ["propext"], 0.1)


def test_the_judge_wins_over_the_prefilter(tmp_path):
    judged = JudgedVerifier(AcceptAll(), Judge(spec(tmp_path, lean_args=("--hidden-axiom", "addDecl"))), Policy())
    bad = TARGET.statement + " by\n  exact addDecl_trick\n"
    verdict = asyncio.run(judged.verify(TARGET, bad))
    assert verdict.kind is VerdictKind.rejected and verdict.judge == "safeverify@test" and verdict.as_dict()["checked"] is None
    good = asyncio.run(judged.verify(TARGET, GOOD))
    assert good.proved and good.kernel_checked and good.as_dict()["checked"] == "kernel-checked"


def test_native_decide_allowed_by_the_user_is_only_repl_checked(tmp_path):
    code = TARGET.statement + " by\n  native_decide\n"
    strict = JudgedVerifier(AcceptAll(), Judge(spec(tmp_path)), Policy())
    assert asyncio.run(strict.verify(TARGET, code)).kind is VerdictKind.rejected
    allowed = asyncio.run(JudgedVerifier(AcceptAll(), Judge(spec(tmp_path)), Policy(allow_native_decide=True)).verify(TARGET, code))
    assert allowed.proved and allowed.judge == "repl" and allowed.as_dict()["checked"] == "REPL-checked"
    assert "REPL-checked only" in allowed.reasons[0]


def test_file_mode_judges_accepted_declarations_and_axiomatizes_the_rest():
    text = "import Mathlib\n\ntheorem a : True := trivial\n\ntheorem b : 1 = 1 := by\n  sorry\n\ntheorem c : True := by\n  exact a\n"
    from proverctl.lean.source import Source

    starts = {d.name: d.start for d in Source(text).declarations}
    challenge = file_challenge(text, {starts["a"], starts["c"]}, prove=False)
    sol = file_challenge(text, {starts["a"], starts["c"]}, prove=True)
    assert "theorem a : True := by\n  sorry" in challenge and "axiom b : 1 = 1\n" in challenge
    assert "theorem a : True := trivial" in sol and "axiom b : 1 = 1\n" in sol and "exact a" in sol


# ---------------------------------------------------------------------------------------------
# Through the commands


def problem(tmp_path) -> Path:
    path = tmp_path / "P.lean"
    path.write_text(G2[NAME]["formal_statement"].rstrip() + "\n  sorry\n")
    return path


def answer(body, i):
    return f"### Complete Lean 4 Proof\n```lean4\n{solution()}\n```\n"


def test_prove_with_the_judge_reports_kernel_checked(cli, tmp_path, standin_repl, standin_judge, hermetic):
    log = standin_judge()
    with OpenAIStub(answer=answer) as stub:
        result = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "1", "--judge", "kernel", "--format", "json")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["status"] == "proved" and row["checked"] == "kernel-checked" and row["judge"].startswith("safeverify@")
    runs = [json.loads(l) for l in log.read_text().splitlines()]
    challenge_compile = next(r for r in runs if r["program"] == "lean")
    challenge = Path(challenge_compile["argv"][-1]).read_text() if Path(challenge_compile["argv"][-1]).exists() else None
    cached = list((hermetic / "proverctl" / "cache" / "judge").glob("*/Proof.lean"))
    assert len(cached) == 1
    text = cached[0].read_text()
    assert text.rstrip().endswith("sorry") and "field_simp" not in text  # the original statement, never the model's proof
    assert challenge is None or challenge == text
    shown = cli("show", "1/0/0", "--format", "json").json()
    assert shown["judge"] == row["judge"]


def test_the_judge_refusing_what_the_repl_accepted_is_not_proved(cli, tmp_path, standin_repl, standin_judge):
    standin_judge(lean_args=("--hidden-axiom", "field_simp"))
    with OpenAIStub(answer=answer) as stub:
        result = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "2", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED, result
    (row,) = result.json()
    assert row["status"] == "not-proved" and row["checked"] is None
    attempts = cli("show", "1/0", "--format", "json").json()["attempts"]
    assert {a["verdict"] for a in attempts} == {"rejected"} and all("forged is not in the allowed set" in a["reasons"][0] for a in attempts)


def test_judge_kernel_without_a_built_judge_is_exit_3_and_auto_says_repl_only(cli, tmp_path, standin_repl, hermetic):
    with OpenAIStub(answer=answer) as stub:
        kernel = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "1", "--judge", "kernel")
        assert kernel.exit_code == ExitCode.ENVIRONMENT and "proverctl lean setup --profile deepseek-v2" in kernel.stderr
        auto = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "1", "--format", "json")
    assert auto.exit_code == 0, auto
    assert auto.stderr.count("verdicts are REPL-checked only") == 1
    (row,) = auto.json()
    assert row["checked"] == "REPL-checked" and row["judge"] == "repl"


def test_check_file_and_against_a_challenge(cli, tmp_path, standin_repl, standin_judge):
    challenge = tmp_path / "Challenge.lean"
    challenge.write_text("theorem two : (2 : Nat) + 2 = 4 := by\n  sorry\n\ntheorem three : (3 : Nat) = 3 := by\n  sorry\n")
    good = tmp_path / "Agent.lean"
    good.write_text("theorem two : (2 : Nat) + 2 = 4 := by\n  decide\n\ntheorem three : (3 : Nat) = 3 := by\n  rfl\n")
    result = cli("check", str(good), "--against", str(challenge), "--format", "json")
    assert result.exit_code == 0, result
    assert [(r["name"], r["status"], r["checked"]) for r in result.json()] == [("two", "proved", "kernel-checked"),
                                                                              ("three", "proved", "kernel-checked")]
    cheat = tmp_path / "Cheat.lean"
    cheat.write_text("theorem two : (2 : Nat) + 2 = 5 - 1 := by\n  decide\n")  # another statement, and `three` missing
    refused = cli("check", str(cheat), "--against", str(challenge), "--format", "json")
    assert refused.exit_code == ExitCode.NOT_PROVED
    rows = {r["name"]: r for r in refused.json()}
    assert rows["two"]["status"] == "rejected" and "differs from the challenge" in rows["two"]["reasons"][0]
    assert rows["three"]["status"] == "rejected" and "not in the checked file" in rows["three"]["reasons"][0]
    plain = cli("check", str(good), "--format", "json")
    assert plain.exit_code == 0 and {r["checked"] for r in plain.json()} == {"kernel-checked"}


@pytest.mark.lean
def test_real_safeverify_judges_real_pairs(tmp_path):
    """Where `lean setup` built a workspace with SafeVerify: a real proof passes, a cheat does not."""
    from proverctl.lean.workspace import recorded_workspaces
    from proverctl.settings import Settings
    from proverctl.verify.factory import VerifySpec

    if shutil.which("lake") is None or not recorded_workspaces():
        pytest.skip("no Lean workspace with SafeVerify here (run `proverctl lean setup`)")
    resolved = VerifySpec.from_settings(Settings.load({"judge": "kernel"})).resolve()
    judge = Judge(resolved.judge)
    target = from_row(G2[NAME])
    good = asyncio.run(judge.judge_target(target, target.candidate(solution().split(":= by", 1)[1])))
    assert good.kind is VerdictKind.proved, good.reasons
    cheat = asyncio.run(judge.judge_target(target, target.statement + " by\n  sorry\n"))
    assert cheat.kind is VerdictKind.rejected
