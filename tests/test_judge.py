"""The kernel judge, proverctl's side: what it is given (a challenge from the ORIGINAL statement in the
user's context, the solution on its own, the same imports), how its verdict is read (exit status and its
own final line, per SafeVerify dialect; a trusted-side failure is an error), the trust base around it
(content-addressed challenge cache, the trust manifest, the sandbox) and that it decides over the REPL
pre-filter. The judge's programs are stand-ins speaking SafeVerify's and `lean -o`'s real command lines
and outputs (tests/standin_judge.py); `lean`-marked tests run the real SafeVerify where it is built."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import working_sandbox
from openai_stub import OpenAIStub
from proverctl.errors import ExitCode
from proverctl.lean.sandbox import Sandbox
from proverctl.lean.targets import from_row, targets_in_text
from proverctl.lean.verdict import Policy, Verdict, VerdictKind
from proverctl.verify.challenge import challenge_text, context_problem, file_challenge, judge_header, solution_text
from proverctl.verify.judge import Judge, JudgedVerifier, JudgeSpec, _Run

TESTS = Path(__file__).parent
FIX = TESTS / "fixtures"
SCRIPT = TESTS / "standin_judge.py"
G2 = {json.loads(l)["name"]: json.loads(l) for l in (FIX / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()}
NAME = "amc12b_2020_p2"


def solution(name: str = NAME) -> str:
    with zipfile.ZipFile(FIX / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        return z.read(f"test/{name}.lean").decode("utf-8")


def spec(tmp_path, *judge_args, lean_args=(), dialect="v1", timeout=60.0, sandbox="none", leanchecker=None) -> JudgeSpec:
    """The stand-in judge, its files recorded as the trust manifest records them (`named_files`)."""
    from proverctl.lean.trust import named_files

    command = (sys.executable, str(SCRIPT), "safe_verify", "--dialect", dialect, *judge_args)
    lean_command = (sys.executable, str(SCRIPT), "lean", *lean_args)
    return JudgeSpec(command=command, lean_command=lean_command, workspace=None, label="safeverify@test",
                     dialect=dialect, compile_timeout=timeout, judge_timeout=timeout, cache_dir=tmp_path / "judge-cache",
                     index_dir=tmp_path / "judge-index", sandbox=Sandbox(sandbox, confirmed=sandbox != "none"),
                     leanchecker=leanchecker, files=named_files(command, lean_command, leanchecker))


TARGET = from_row({"name": "t", "header": "import Mathlib\n\n", "formal_statement": "theorem t (x : ℕ) : x + 0 = x := by"})
GOOD = TARGET.statement + " by\n  simp\n"


# ---------------------------------------------------------------------------------------------
# The two files: the user's context, the same imports


def test_the_challenge_is_the_original_statement_with_sorry():
    assert challenge_text(TARGET) == "import Mathlib\n\ntheorem t (x : ℕ) : x + 0 = x := by\n  sorry\n"
    assert solution_text(TARGET, GOOD) == "import Mathlib\n\ntheorem t (x : ℕ) : x + 0 = x := by\n  simp\n"
    example = targets_in_text("import Mathlib\n\nexample : (2 : ℕ) + 2 = 4 := by\n  sorry\n")[0]
    assert "theorem proverctl_example_3 : (2 : ℕ) + 2 = 4 := by\n  sorry" in challenge_text(example)
    assert "theorem proverctl_example_3 : (2 : ℕ) + 2 = 4 := by\n  decide" in solution_text(example, example.statement + " by\n  decide\n")


def test_earlier_unproved_declarations_become_axioms_that_keep_their_context():
    text = ("import Mathlib\n\n/-- helper -/\n@[simp, reducible] private theorem helper (n : ℕ) : n ≤ n + 1 := by\n  sorry\n\n"
            "def f : ℕ := 3\n\ninstance foo : Inhabited ℕ := sorry\n\ninstance (priority := low) : Inhabited ℤ := sorry\n\n"
            "local instance : Nonempty ℕ := sorry\n\nscoped instance (priority := 100) bar : Nonempty ℤ := sorry\n\n"
            "example : True := by sorry\n\ntheorem main_goal : f = 3 := by\n  sorry\n")
    target = next(t for t in targets_in_text(text) if t.name == "main_goal")
    header = judge_header(target.header)
    assert "@[simp] private axiom helper (n : ℕ) : n ≤ n + 1\n" in header  # `reducible` cannot stand on an axiom
    assert "def f : ℕ := 3" in header and "@[instance] axiom foo : Inhabited ℕ" in header
    assert "@[instance low] axiom proverctl_instance_11 : Inhabited ℤ" in header  # anonymous: named from its line
    assert "@[local instance] axiom proverctl_instance_13 : Nonempty ℕ" in header
    assert "@[scoped instance 100] axiom bar : Nonempty ℤ" in header
    assert "example" not in header and "sorry" not in header
    assert challenge_text(target).startswith(header) and solution_text(target, target.statement + " rfl\n").startswith(header)


def test_every_dataset_statement_makes_a_challenge_with_its_statement():
    rows = [json.loads(line) for line in (FIX / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()]
    for row in rows:
        target = from_row(row)
        text = challenge_text(target)
        statement = target.statement.rstrip().removesuffix(":=").rstrip()
        assert statement in text and text.rstrip().endswith("sorry"), row["name"]
        assert context_problem(text, solution_text(target, target.statement + " by\n  simp\n")) is None


def test_the_solution_must_import_exactly_what_the_challenge_does():
    challenge = "import Mathlib\n\ntheorem p : Nat.Prime 7 := by\n  sorry\n"
    own_prime = "def Nat.Prime (n : ℕ) : Prop := True\n\ntheorem p : Nat.Prime 7 := by\n  trivial\n"
    kind, why = context_problem(challenge, own_prime)
    assert kind == "rejected" and "missing Mathlib" in why
    kind, why = context_problem(challenge, "import Mathlib\nimport Evil\n\n" + own_prime)
    assert kind == "rejected" and "extra Evil" in why
    assert context_problem(challenge, "prelude\nimport Mathlib\n" + own_prime)[0] == "rejected"
    assert context_problem("prelude\n" + challenge, challenge)[0] == "error"
    assert context_problem(challenge, "import Mathlib\n\ntheorem p : Nat.Prime 7 := by\n  norm_num\n") is None


def test_file_mode_names_examples_from_their_line_in_the_file():
    text = ("import Mathlib\n\ntheorem a : True := by\n  have h : True := by\n    trivial\n  exact h\n\n"
            "example : 1 + 1 = 2 := by\n  rfl\n")
    from proverctl.lean.source import Source

    starts = {d.kind: d.start for d in Source(text).declarations}
    judged = {starts["theorem"], starts["example"]}
    challenge, sol = file_challenge(text, judged, prove=False), file_challenge(text, judged, prove=True)
    assert "theorem proverctl_example_8 : 1 + 1 = 2 := by\n  sorry" in challenge
    assert "theorem proverctl_example_8 : 1 + 1 = 2 := by\n  rfl" in sol  # the same name although the lines moved


def test_file_mode_judges_accepted_declarations_and_axiomatizes_the_rest():
    text = "import Mathlib\n\ntheorem a : True := trivial\n\ntheorem b : 1 = 1 := by\n  sorry\n\ntheorem c : True := by\n  exact a\n"
    from proverctl.lean.source import Source

    starts = {d.name: d.start for d in Source(text).declarations}
    challenge = file_challenge(text, {starts["a"], starts["c"]}, prove=False)
    sol = file_challenge(text, {starts["a"], starts["c"]}, prove=True)
    assert "theorem a : True := by\n  sorry" in challenge and "axiom b : 1 = 1\n" in challenge
    assert "theorem a : True := trivial" in sol and "axiom b : 1 = 1\n" in sol and "exact a" in sol


# ---------------------------------------------------------------------------------------------
# Reading SafeVerify (both dialects, their real lines)


def read(tmp_path, code, stdout="", stderr="", dialect="v1", challenge="/c/Proof.olean"):
    return Judge(spec(tmp_path, dialect=dialect)).read(_Run(code, stdout, stderr), 1.0, challenge=challenge)


def test_v1_only_exit_0_with_its_final_line_is_proved(tmp_path):
    assert read(tmp_path, 0, "Replaying x\nFinished with no errors.\n").kind is VerdictKind.proved
    assert read(tmp_path, 0, "Replaying x\n").kind is VerdictKind.error  # no success line: never proved
    forged = "Replaying x\n---\ntheorem\nFinished with no errors.\n#[]\n"  # a declaration's name printed mid-output
    assert read(tmp_path, 0, forged).kind is VerdictKind.error
    assert read(tmp_path, -11, "Finished with no errors.\n").kind is VerdictKind.error  # a crash is never a proof
    assert read(tmp_path, None).kind is VerdictKind.timeout


def test_v1_a_submission_problem_is_rejected_a_target_problem_is_an_error(tmp_path):
    refused = read(tmp_path, 1, "Replaying s\n", "found a problem in s.olean\nuncaught exception: theorem t does not have the same "
                                                  "type as the requirement\n")
    assert refused.kind is VerdictKind.rejected and refused.failures == [("t", "theorem t does not have the same type as the requirement")]
    trusted = read(tmp_path, 1, "Replaying c\n", "uncaught exception: (kernel) declaration has metavariables 't'\n")
    assert trusted.kind is VerdictKind.error and "the trusted statement failed in the judge" in trusted.reasons[0]


def test_v2_reads_every_failure_on_stderr(tmp_path):
    assert read(tmp_path, 0, stderr="Replaying x\nSafeVerify check passed.\n", dialect="v2").kind is VerdictKind.proved
    assert read(tmp_path, 0, stdout="SafeVerify check passed.\n", dialect="v2").kind is VerdictKind.error  # stdout is not its channel
    stderr = ("Replaying /c/Proof.olean\nReplaying /s/Proof.olean\n------------------\n"
              "u used disallowed axioms. #[propext, sorryAx]\n------------------\n"
              "Found a problem in /s/Proof.olean with declaration t: theorem type mismatch\n"
              "Found a problem in /s/Proof.olean with declaration u: uses disallowed axioms\n------------------\n"
              "uncaught exception: SafeVerify check failed. For more diagnostic information about failures, run safe_verify with the -v "
              "(or --verbose) flag.\n")
    outcome = read(tmp_path, 1, stderr=stderr, dialect="v2")
    assert outcome.kind is VerdictKind.rejected
    assert outcome.failures == [("t", "theorem type mismatch"), ("u", "uses disallowed axioms")]
    assert outcome.disallowed == {"u": ["propext", "sorryAx"]}
    target = read(tmp_path, 1, stderr="Replaying /c/Proof.olean\nuncaught exception: (kernel) unknown constant 'x'\n", dialect="v2")
    assert target.kind is VerdictKind.error
    prelude = read(tmp_path, 1, stderr="Replaying /c/Proof.olean\nReplaying /s/Proof.olean\nuncaught exception: '/s/Proof.olean' has no "
                                       "imports (possible prelude file).\n", dialect="v2")
    assert prelude.kind is VerdictKind.rejected


# ---------------------------------------------------------------------------------------------
# Running it


def judge_once(judge: Judge, challenge: str, sol: str):
    return asyncio.run(judge.judge(challenge, sol))


def test_a_good_proof_passes_and_the_challenge_is_compiled_once(tmp_path):
    log = tmp_path / "runs.jsonl"
    judge = Judge(spec(tmp_path, "--log", str(log), lean_args=("--log", str(log))))
    for _ in range(2):
        assert asyncio.run(judge.judge_target(TARGET, GOOD)).kind is VerdictKind.proved
    programs = [json.loads(l)["program"] for l in log.read_text().splitlines()]
    assert programs.count("lean") == 3 and programs.count("safe_verify") == 2  # challenge once, solution twice
    (cached,) = (tmp_path / "judge-cache").glob("*/Proof.lean")
    assert cached.read_text() == challenge_text(TARGET)


def test_a_tampered_challenge_olean_is_an_error_and_is_rebuilt(tmp_path):
    judge = Judge(spec(tmp_path))
    assert asyncio.run(judge.judge_target(TARGET, GOOD)).kind is VerdictKind.proved
    (olean,) = (tmp_path / "judge-cache").glob("*/Proof.olean")
    data = json.loads(olean.read_text())
    data["decls"] = []  # a poisoned challenge: nothing to prove
    olean.write_text(json.dumps(data))
    tampered = asyncio.run(judge.judge_target(TARGET, GOOD))
    assert tampered.kind is VerdictKind.error and "did not match its recorded hash" in tampered.reasons[0]
    assert json.loads(olean.read_text())["decls"]  # rebuilt from the statement
    assert asyncio.run(judge.judge_target(TARGET, GOOD)).kind is VerdictKind.proved
    record = next((tmp_path / "judge-index").glob("*.json"))
    record.unlink()  # an entry without its record is not trusted either
    assert asyncio.run(judge.judge_target(TARGET, GOOD)).kind is VerdictKind.error
    shutil.rmtree(tmp_path / "judge-cache")  # a record whose entry was cleared away (cache cleared) is simply rebuilt
    assert asyncio.run(judge.judge_target(TARGET, GOOD)).kind is VerdictKind.proved


def test_a_judge_that_changed_since_it_was_recorded_never_runs(tmp_path):
    binary = tmp_path / "safe_verify.py"
    shutil.copy(SCRIPT, binary)
    from proverctl.lean.trust import sha256_file

    base = spec(tmp_path)
    judge = Judge(JudgeSpec(**{**base.__dict__, "command": (sys.executable, str(binary), "safe_verify"),
                               "files": {**base.files, str(binary.resolve()): sha256_file(binary)}}))
    assert asyncio.run(judge.judge_target(TARGET, GOOD)).kind is VerdictKind.proved
    binary.write_text(binary.read_text() + "\n# swapped\n")
    outcome = asyncio.run(judge.judge_target(TARGET, GOOD))
    assert outcome.kind is VerdictKind.error and "no longer matches the trust manifest" in outcome.reasons[0]


def test_a_judge_swapped_before_its_first_run_or_behind_a_symlink_never_runs(tmp_path):
    """Nothing is taken as checked before the judge hashes it itself (a file swapped between the trust
    check at start and the first judgement is caught), and a program reached through a symlink must
    resolve to a recorded file (a link turned to another build, the recorded one intact, is refused)."""
    from proverctl.lean.trust import named_files

    binary = tmp_path / "v1" / "safe_verify.py"
    binary.parent.mkdir()
    shutil.copy(SCRIPT, binary)
    link = tmp_path / "current.py"
    link.symlink_to(binary)
    base = spec(tmp_path)
    command = (sys.executable, str(link), "safe_verify")
    judge = Judge(JudgeSpec(**{**base.__dict__, "command": command, "files": named_files(command, base.lean_command)}))
    binary.write_text(binary.read_text() + "\n# swapped before the first run\n")
    outcome = asyncio.run(judge.judge_target(TARGET, GOOD))
    assert outcome.kind is VerdictKind.error and "no longer matches the trust manifest" in outcome.reasons[0]
    shutil.copy(SCRIPT, binary)  # the recorded build again
    judge = Judge(JudgeSpec(**{**base.__dict__, "command": command, "files": named_files(command, base.lean_command)}))
    assert asyncio.run(judge.judge_target(TARGET, GOOD)).kind is VerdictKind.proved
    other = tmp_path / "v2" / "safe_verify.py"
    other.parent.mkdir()
    other.write_text(SCRIPT.read_text().replace("Finished with no errors.", "Finished with no errors. (v2)"))
    link.unlink()
    link.symlink_to(other)
    outcome = asyncio.run(judge.judge_target(TARGET, GOOD))
    assert outcome.kind is VerdictKind.error and "current.py now resolves to" in outcome.reasons[0]


def test_what_the_solution_prints_never_reaches_the_verdict(tmp_path):
    judge = Judge(spec(tmp_path, lean_args=("--hidden-axiom", "simp")))
    forged = solution_text(TARGET, GOOD) + '#eval IO.println "Finished with no errors."\n'
    outcome = judge_once(judge, challenge_text(TARGET), forged)
    assert outcome.kind is VerdictKind.rejected and "forged is not in the allowed set" in outcome.reasons[0]


def test_a_solution_that_does_not_compile_alone_is_rejected(tmp_path):
    outcome = judge_once(Judge(spec(tmp_path, lean_args=("--reject", "simp"))), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert outcome.kind is VerdictKind.rejected and "does not compile on its own" in outcome.reasons[0]


def test_a_failure_on_the_trusted_side_is_an_error_not_a_rejection(tmp_path):
    outcome = judge_once(Judge(spec(tmp_path, lean_args=("--reject", "sorry"))), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert outcome.kind is VerdictKind.error and "the trusted statement does not compile" in outcome.reasons[0]
    for dialect in ("v1", "v2"):
        replay = judge_once(Judge(spec(tmp_path, "--target-fails", dialect=dialect)), challenge_text(TARGET), solution_text(TARGET, GOOD))
        assert replay.kind is VerdictKind.error and "the trusted statement failed in the judge" in replay.reasons[0], dialect


def test_a_crashing_or_hanging_judge_is_never_proved(tmp_path):
    crashed = judge_once(Judge(spec(tmp_path, "--crash")), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert crashed.kind is VerdictKind.error and "failed (exit -11)" in crashed.reasons[0]
    hung = judge_once(Judge(spec(tmp_path, "--hang", timeout=3.0)), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert hung.kind is VerdictKind.timeout


def test_a_solution_with_other_imports_never_reaches_the_judge(tmp_path):
    log = tmp_path / "runs.jsonl"
    judge = Judge(spec(tmp_path, "--log", str(log), lean_args=("--log", str(log))))
    own_prime = "def Nat.Prime (n : ℕ) : Prop := True\n\ntheorem p : Nat.Prime 7 := by\n  trivial\n"
    outcome = judge_once(judge, "import Mathlib\n\ntheorem p : Nat.Prime 7 := by\n  sorry\n", own_prime)
    assert outcome.kind is VerdictKind.rejected and "imports differ" in outcome.reasons[0] and not log.exists()


def test_modern_gets_disallow_partial_and_recursive_definitions_pass_both_dialects(tmp_path):
    recursive = ("import Mathlib\n\ndef fib : ℕ → ℕ\n  | 0 => 0\n  | 1 => 1\n  | n + 2 => fib n + fib (n + 1)\n\n"
                 "theorem fib_two : fib 2 = 1 := by\n  rfl\n")
    challenge = recursive.replace("  rfl\n", "  sorry\n")
    log = tmp_path / "runs.jsonl"
    for dialect in ("v1", "v2"):
        judge = Judge(spec(tmp_path, "--log", str(log), dialect=dialect))
        assert judge_once(judge, challenge, recursive).kind is VerdictKind.proved, dialect  # its `fib._unsafe_rec` shim is fine
    runs = [json.loads(l)["argv"] for l in log.read_text().splitlines()]
    assert "--disallow-partial" not in runs[0] and "--disallow-partial" in runs[1]
    partial = recursive.replace("def fib", "partial def fib")
    refused = judge_once(Judge(spec(tmp_path, dialect="v2")), challenge, partial)
    assert refused.kind is VerdictKind.rejected and "partial constant fib detected" in refused.reasons[0]


def test_leanchecker_replays_the_solution_again_where_the_toolchain_has_it(tmp_path):
    checker = (sys.executable, str(SCRIPT), "leanchecker")
    assert judge_once(Judge(spec(tmp_path, leanchecker=checker)), challenge_text(TARGET), solution_text(TARGET, GOOD)).kind \
        is VerdictKind.proved
    strict = (sys.executable, str(SCRIPT), "leanchecker", "--reject", "simp")
    refused = judge_once(Judge(spec(tmp_path, leanchecker=strict)), challenge_text(TARGET), solution_text(TARGET, GOOD))
    assert refused.kind is VerdictKind.rejected and refused.reasons[0].startswith("leanchecker: (kernel)")


@pytest.mark.skipif(working_sandbox() is None, reason="no sandbox backend works here (bubblewrap or Landlock)")
def test_in_the_sandbox_a_solution_compile_cannot_touch_the_cache(tmp_path):
    cache = tmp_path / "judge-cache"
    poison = cache / "poison.txt"
    sandboxed = Judge(spec(tmp_path, lean_args=("--also-write", str(poison)), sandbox=working_sandbox()))
    assert asyncio.run(sandboxed.judge_target(TARGET, GOOD)).kind is VerdictKind.proved
    assert not poison.exists()
    unsandboxed = Judge(spec(tmp_path, lean_args=("--also-write", str(poison))))  # control
    asyncio.run(unsandboxed.judge_target(TARGET, GOOD.replace("simp", "simp_all")))
    assert poison.exists()


# ---------------------------------------------------------------------------------------------
# Behind the pre-filter


class AcceptAll:
    """A pre-filter that accepts everything (as a REPL that an attack fooled would)."""

    def __init__(self, axioms=("propext",)) -> None:
        self.axioms = list(axioms)

    async def verify(self, target, code):
        return Verdict(VerdictKind.proved, [], [], list(self.axioms), 0.1)


def test_the_judge_wins_over_the_prefilter_and_labels_need_a_sandbox(tmp_path):
    sandboxed = JudgedVerifier(AcceptAll(), Judge(spec(tmp_path, lean_args=("--hidden-axiom", "addDecl"), sandbox="bwrap")), Policy())
    bad = TARGET.statement + " by\n  exact addDecl_trick\n"
    verdict = asyncio.run(sandboxed.verify(TARGET, bad))
    assert verdict.kind is VerdictKind.rejected and verdict.judge == "safeverify@test" and verdict.as_dict()["checked"] is None
    good = asyncio.run(sandboxed.verify(TARGET, GOOD))
    assert good.proved and good.kernel_checked and good.as_dict()["checked"] == "kernel-checked" and good.sandbox == "bwrap"
    unsandboxed = asyncio.run(JudgedVerifier(AcceptAll(), Judge(spec(tmp_path)), Policy()).verify(TARGET, GOOD))
    assert unsandboxed.proved and not unsandboxed.kernel_checked and unsandboxed.as_dict()["checked"] == "REPL-checked (unsandboxed)"


def test_native_decide_allowed_by_the_user_is_only_repl_checked(tmp_path):
    code = TARGET.statement + " by\n  native_decide\n"
    native = ("propext", "Lean.ofReduceBool")
    strict = JudgedVerifier(AcceptAll(native), Judge(spec(tmp_path)), Policy())
    assert asyncio.run(strict.verify(TARGET, code)).kind is VerdictKind.rejected
    for dialect in ("v1", "v2"):
        verifier = JudgedVerifier(AcceptAll(native), Judge(spec(tmp_path, dialect=dialect)), Policy(allow_native_decide=True))
        allowed = asyncio.run(verifier.verify(TARGET, code))
        assert allowed.proved and allowed.judge == "repl" and "REPL-checked only" in allowed.reasons[0], dialect


def test_the_native_decide_exception_needs_every_refusal_to_be_native(tmp_path):
    code = TARGET.statement + " by\n  native_decide\n"
    allow = Policy(allow_native_decide=True)
    # A second bad axiom beside Lean.ofReduceBool: v2 lists every axiom, and is refused.
    v2 = JudgedVerifier(AcceptAll(("propext", "Lean.ofReduceBool")), Judge(spec(tmp_path, dialect="v2", lean_args=("--hidden-axiom",
                                                                                                                   "native"))), allow)
    assert asyncio.run(v2.verify(TARGET, code)).kind is VerdictKind.rejected
    # v1 stops at its first refusal: the pre-filter's own answer must name Lean.ofReduceBool as well.
    v1 = JudgedVerifier(AcceptAll(("propext",)), Judge(spec(tmp_path)), allow)
    assert asyncio.run(v1.verify(TARGET, code)).kind is VerdictKind.rejected


# ---------------------------------------------------------------------------------------------
# Through the commands


def problem(tmp_path) -> Path:
    path = tmp_path / "P.lean"
    path.write_text(G2[NAME]["formal_statement"].rstrip() + "\n  sorry\n")
    return path


def answer(body, i):
    return f"### Complete Lean 4 Proof\n```lean4\n{solution()}\n```\n"


def test_prove_with_the_judge_in_a_sandbox_reports_kernel_checked(cli, tmp_path, standin_repl, standin_judge, sandboxed, hermetic):
    standin_judge(log_runs=False)
    with OpenAIStub(answer=answer) as stub:
        result = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "1", "--judge", "kernel", "--format", "json")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["status"] == "proved" and row["checked"] == "kernel-checked" and row["judge"].startswith("safeverify@")
    assert row["sandbox"] == sandboxed
    cached = list((hermetic / "proverctl" / "cache" / "judge").glob("*/Proof.lean"))
    assert len(cached) == 1 and cached[0].read_text().rstrip().endswith("sorry") and "field_simp" not in cached[0].read_text()
    shown = cli("show", "1/0/0", "--format", "json").json()
    assert shown["judge"] == row["judge"] and shown["sandbox"] == sandboxed


def test_without_a_sandbox_nothing_is_kernel_checked(cli, tmp_path, standin_repl, standin_judge):
    with OpenAIStub(answer=answer) as stub:
        unsandboxed = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "1", "--sandbox", "none", "--format", "json")
        assert unsandboxed.exit_code == 0, unsandboxed
        (row,) = unsandboxed.json()
        assert row["checked"] == "REPL-checked (unsandboxed)" and row["judge"].startswith("safeverify@")
        assert "Lean runs without a sandbox" in unsandboxed.stderr
        kernel = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "1", "--sandbox", "none", "--judge", "kernel")
    assert kernel.exit_code == ExitCode.VERIFIER and "--judge kernel needs a sandbox" in kernel.stderr


def test_the_judge_refusing_what_the_repl_accepted_is_not_proved(cli, tmp_path, standin_repl, standin_judge):
    standin_judge(lean_args=("--hidden-axiom", "field_simp"))
    with OpenAIStub(answer=answer) as stub:
        result = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "2", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED, result
    (row,) = result.json()
    assert row["status"] == "not-proved" and row["checked"] is None
    attempts = cli("show", "1/0", "--format", "json").json()["attempts"]
    assert {a["verdict"] for a in attempts} == {"rejected"} and all("forged is not in the allowed set" in a["reasons"][0] for a in attempts)


def test_judge_kernel_without_a_built_judge_is_exit_3_and_auto_says_repl_only(cli, tmp_path, standin_repl, hermetic, sandboxed):
    with OpenAIStub(answer=answer) as stub:
        kernel = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "1", "--judge", "kernel")
        assert kernel.exit_code == ExitCode.ENVIRONMENT and "proverctl lean setup --profile deepseek-v2" in kernel.stderr
        auto = cli("prove", str(problem(tmp_path)), "--endpoint", stub.url, "--k", "1", "--format", "json")
    assert auto.exit_code == 0, auto
    assert auto.stderr.count("verdicts are REPL-checked only") == 1
    (row,) = auto.json()
    assert row["checked"] == "REPL-checked" and row["judge"] == "repl"


def test_a_judge_not_in_the_trust_manifest_gives_no_verdict(cli, tmp_path, standin_repl, standin_judge, sandboxed, monkeypatch):
    standin_judge(log_runs=False)
    monkeypatch.setenv("PROVERCTL_JUDGE_COMMAND", f"{sys.executable} {SCRIPT} safe_verify --dialect v2")  # not what was recorded
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    auto = cli("check", str(path), "--format", "json")
    assert auto.exit_code == 0 and auto.json()[0]["judge"] == "repl" and "not the one the trust manifest records" in auto.stderr
    kernel = cli("check", str(path), "--judge", "kernel")
    assert kernel.exit_code == ExitCode.VERIFIER and "proverctl lean trust" in kernel.stderr


def test_a_judge_binary_changed_after_it_was_recorded_is_refused(cli, tmp_path, standin_repl, sandboxed, monkeypatch):
    from proverctl.lean.trust import record_workspace_trust

    binary = tmp_path / "judge-build" / "judge.py"  # (beside the home dir, the canary would refuse: its folder becomes readable)
    binary.parent.mkdir()
    shutil.copy(SCRIPT, binary)
    command = f"{sys.executable} {binary} safe_verify"
    lean = f"{sys.executable} {SCRIPT} lean"
    monkeypatch.setenv("PROVERCTL_JUDGE_COMMAND", command)
    monkeypatch.setenv("PROVERCTL_JUDGE_LEAN_COMMAND", lean)
    record_workspace_trust("deepseek-v2", None, repl_command=[], judge_command=command, judge_lean_command=lean)
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    assert cli("check", str(path), "--format", "json").json()[0]["judge"].startswith("safeverify@custom:")
    binary.write_text(binary.read_text() + "\n# replaced by a candidate\n")
    kernel = cli("check", str(path), "--judge", "kernel")
    assert kernel.exit_code == ExitCode.VERIFIER and "no longer matches its sha256" in kernel.stderr


def test_check_file_and_against_a_challenge(cli, tmp_path, standin_repl, standin_judge):
    challenge = tmp_path / "Challenge.lean"
    challenge.write_text("theorem two : (2 : Nat) + 2 = 4 := by\n  sorry\n\ntheorem three : (3 : Nat) = 3 := by\n  sorry\n")
    good = tmp_path / "Agent.lean"
    good.write_text("theorem two : (2 : Nat) + 2 = 4 := by\n  decide\n\ntheorem three : (3 : Nat) = 3 := by\n  rfl\n")
    result = cli("check", str(good), "--against", str(challenge), "--format", "json")
    assert result.exit_code == 0, result
    assert [(r["name"], r["status"], r["judge"][:18]) for r in result.json()] == [("two", "proved", "safeverify@custom:"),
                                                                                 ("three", "proved", "safeverify@custom:")]
    cheat = tmp_path / "Cheat.lean"
    cheat.write_text("theorem two : (2 : Nat) + 2 = 5 - 1 := by\n  decide\n")  # another statement, and `three` missing
    refused = cli("check", str(cheat), "--against", str(challenge), "--format", "json")
    assert refused.exit_code == ExitCode.NOT_PROVED
    rows = {r["name"]: r for r in refused.json()}
    assert rows["two"]["status"] == "rejected" and "differs from the challenge" in rows["two"]["reasons"][0]
    assert rows["three"]["status"] == "rejected" and "not in the checked file" in rows["three"]["reasons"][0]


def test_against_refuses_a_solution_that_drops_the_challenges_imports(cli, tmp_path, standin_repl, standin_judge):
    challenge = tmp_path / "Challenge.lean"
    challenge.write_text("import Mathlib\n\ntheorem p : Nat.Prime 7 := by\n  sorry\n")
    own = tmp_path / "Own.lean"
    own.write_text("def Nat.Prime (n : Nat) : Prop := True\n\ntheorem p : Nat.Prime 7 := by\n  trivial\n")
    result = cli("check", str(own), "--against", str(challenge), "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED
    row = next(r for r in result.json() if r["name"] == "p")
    assert row["status"] == "rejected" and any("imports differ" in reason for reason in row["reasons"])


def test_one_native_decide_declaration_does_not_refuse_the_rest_of_the_file(cli, tmp_path, standin_repl, standin_judge):
    path = tmp_path / "Mixed.lean"
    path.write_text("theorem a : (2 : Nat) + 2 = 4 := by\n  decide\n\ntheorem b : (10 : Nat) < 20 := by\n  native_decide\n\n"
                    "theorem c : True := trivial\n")
    result = cli("check", str(path), "--allow-native-decide", "--format", "json")
    assert result.exit_code == 0, result
    rows = {r["name"]: r for r in result.json()}
    assert rows["a"]["judge"].startswith("safeverify@") and rows["c"]["judge"].startswith("safeverify@")
    assert rows["b"]["status"] == "proved" and rows["b"]["judge"] == "repl"


def test_an_example_after_a_multi_line_proof_is_judged(cli, tmp_path, standin_repl, standin_judge):
    path = tmp_path / "Ex.lean"
    path.write_text("theorem a : True := by\n  have h : True := by\n    trivial\n  exact h\n\nexample : 1 + 1 = 2 := by\n  rfl\n")
    result = cli("check", str(path), "--format", "json")
    assert result.exit_code == 0, result
    assert [(r["status"], r["judge"][:11]) for r in result.json()] == [("proved", "safeverify@")] * 2


@pytest.mark.lean
def test_real_safeverify_judges_real_pairs(tmp_path):
    """Where `lean setup` built a workspace with SafeVerify: a real proof passes, a cheat does not."""
    from proverctl.lean.workspace import recorded_workspaces
    from proverctl.settings import Settings
    from proverctl.verify.factory import VerifySpec

    if shutil.which("lake") is None or not recorded_workspaces():
        pytest.skip("no Lean workspace with SafeVerify here (run `proverctl lean setup`)")
    resolved = VerifySpec.from_settings(Settings.load({"judge": "kernel", "sandbox": "auto"})).resolve()
    judge = Judge(resolved.judge)
    target = from_row(G2[NAME])
    good = asyncio.run(judge.judge_target(target, target.candidate(solution().split(":= by", 1)[1])))
    assert good.kind is VerdictKind.proved, good.reasons
    cheat = asyncio.run(judge.judge_target(target, target.statement + " by\n  sorry\n"))
    assert cheat.kind is VerdictKind.rejected


# ---------------------------------------------------------------------------------------------
# Labels everywhere, and --judge kernel's promise


def test_a_resumed_run_judges_its_old_proofs_again(cli, tmp_path, standin_repl, standin_judge, sandboxed):
    path = problem(tmp_path)
    with OpenAIStub(answer=answer) as stub:
        first = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--judge", "repl", "--sandbox", "none", "--format", "json")
        assert first.json()[0]["checked"] == "REPL-checked (unsandboxed)"
        standin_judge(log_runs=False)
        again = cli("prove", "--resume", "1", "--judge", "kernel", "--sandbox", "auto", "--format", "json")
    assert again.exit_code == 0, again
    (row,) = again.json()
    assert row["checked"] == "kernel-checked" and "judged again: kernel-checked" in again.stderr
    attempts = cli("show", "1/0", "--format", "json").json()["attempts"]
    assert [(a["sample"], a["checked"]) for a in attempts] == [(-1, "kernel-checked"), (0, "REPL-checked (unsandboxed)")]


def test_a_resumed_run_whose_old_proof_the_judge_refuses_is_not_proved(cli, tmp_path, standin_repl, standin_judge, sandboxed):
    path = problem(tmp_path)
    with OpenAIStub(answer=answer) as stub:
        cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--judge", "repl", "--sandbox", "none")
        standin_judge(lean_args=("--hidden-axiom", "field_simp"), log_runs=False)
        again = cli("prove", "--resume", "1", "--judge", "kernel", "--sandbox", "auto", "--format", "json")
    assert again.exit_code == ExitCode.NOT_PROVED and "the judge refuses its earlier proof" in again.stderr
    assert again.json()[0]["status"] == "not-proved"


def test_judge_kernel_exits_non_zero_when_a_proof_is_only_repl_checked(cli, tmp_path, standin_repl, standin_judge, sandboxed):
    standin_judge(log_runs=False)
    path = tmp_path / "N.lean"
    path.write_text("theorem n : (10 : Nat) < 20 := by\n  sorry\n")

    def native(body, i):
        return "```lean4\ntheorem n : (10 : Nat) < 20 := by\n  native_decide\n```"

    with OpenAIStub(answer=native) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--judge", "kernel", "--allow-native-decide", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED
    (row,) = result.json()
    assert row["status"] == "proved" and row["checked"] == "REPL-checked" and "are not kernel-checked: n (REPL-checked)" in result.stderr


def test_runs_show_and_mcp_say_how_each_proof_was_checked(cli, tmp_path, standin_repl, standin_judge, sandboxed):
    standin_judge(log_runs=False)
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n\ntheorem u : (10 : Nat) < 20 := by\n  native_decide\n")
    cli("check", str(path), "--allow-native-decide")
    (run,) = cli("runs", "--format", "json").json()
    assert run["n_proved"] == 2 and run["n_kernel_checked"] == 1
    human = cli("runs", "--format", "human").stdout
    assert "1 / 1" in human
    shown = cli("show", "1", "--format", "json").json()
    assert [(t["name"], t["checked"]) for t in shown["targets"]] == [("t", "kernel-checked"), ("u", "REPL-checked")]
    assert "kernel-checked" in cli("show", "1", "--format", "human").stdout
    target = cli("show", "1/t", "--format", "json").json()
    assert target["checked"] == "kernel-checked" and target["attempts"][0]["checked"] == "kernel-checked"
    assert "(proved, kernel-checked)" in cli("show", "1/t", "--format", "human").stdout

    from mcp.client import Client

    from proverctl.mcpserver import build_server

    async def go():
        async with Client(build_server()) as client:
            result = await client.call_tool("lean_check", {"code": "theorem t : True := trivial\n"})
            return result.structured_content

    answer_ = asyncio.run(go())
    assert answer_["proved"] is True and answer_["kernel_checked"] is True and answer_["checked"] == "kernel-checked"


def test_export_says_unknown_for_attempts_recorded_before_the_judge_was(cli, tmp_path, standin_repl):
    from proverctl.paths import Paths
    from proverctl.store.db import Store

    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    cli("check", str(path))
    with Store(Paths.resolve().store_db) as store:
        store.db.execute("UPDATE attempts SET judge = NULL")
    (line,) = cli("export", "1").stdout.splitlines()
    assert json.loads(line)["judge"] == "unknown"
    assert cli("show", "1/t", "--format", "json").json()["attempts"][0]["judge"] == "unknown"


def test_the_tuis_saved_proof_stays_in_its_folder(tmp_path):
    from proverctl.tui.services import TuiServices, safe_file_name

    services = TuiServices(open_store=None, reverify=None, output_dir=tmp_path / "tui")
    for name in ("«/tmp/x»", "../../escape", ".hidden", "A.b_c"):
        saved = services.save_proof(name, "theorem x : True := trivial\n")
        assert saved.parent == tmp_path / "tui" and saved.read_text().startswith("theorem")
    assert safe_file_name("«/tmp/x»") == "__tmp_x_" and safe_file_name("A.b_c") == "A.b_c" and safe_file_name("") == "proof"


def test_a_header_lemma_the_judge_would_refuse_becomes_an_axiom_so_later_targets_can_pass(tmp_path):
    text = ("import Mathlib\n\ntheorem l1 : 1 = 1 := by\n  sorry\n\ntheorem t1 : 1 = 1 := by\n  exact l1\n\n"
            "theorem n1 : (3 : ℕ) < 5 := by\n  native_decide\n\ntheorem ok : True := trivial\n\ntheorem t2 : 2 = 2 := by\n  sorry\n")
    target = next(t for t in targets_in_text(text) if t.name == "t2")
    header = judge_header(target.header)
    assert "axiom l1 : 1 = 1" in header and "axiom t1 : 1 = 1" in header and "axiom n1 : (3 : ℕ) < 5" in header
    assert "theorem ok : True := trivial" in header
    for dialect in ("v1", "v2"):
        judge = Judge(spec(tmp_path, dialect=dialect))
        assert asyncio.run(judge.judge_target(target, target.statement + " by\n  rfl\n")).kind is VerdictKind.proved, dialect
