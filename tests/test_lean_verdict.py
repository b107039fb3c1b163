"""The verdict rules on real Lean answers and real proofs, and the policy pass on cheats."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from proverctl.lean.protocol import Message, Pos, Response, split_responses
from proverctl.lean.source import Source
from proverctl.lean.verdict import Policy, VerdictKind, check_statement, judge, parse_axioms, policy_violations

FIX = Path(__file__).parent / "fixtures"


def deepseek_solutions():
    with zipfile.ZipFile(FIX / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        for name in z.namelist():
            if name.endswith(".lean"):
                yield Path(name).stem, z.read(name).decode("utf-8")


def kimina_solutions():
    with zipfile.ZipFile(FIX / "model-outputs" / "kimina-prover-preview-minif2f-test.zip") as z:
        for line in z.read(z.namelist()[0]).decode("utf-8").splitlines():
            row = json.loads(line)
            yield row["name"], row["correct_proof"]


def split_target(text: str, name: str) -> tuple[str, str]:
    decl = Source(text).find(name)
    assert decl is not None, name
    return text[: decl.full_start], text[decl.full_start:]


def test_every_real_accepted_proof_passes_the_policy():
    checked = 0
    for source in (deepseek_solutions(), kimina_solutions()):
        for name, text in source:
            _, code = split_target(text, name)
            assert policy_violations(code, name) == [], name
            checked += 1
    assert checked == 217 + 132


def info(data: str, line: int) -> Message:
    return Message("info", data, Pos(line, 0), Pos(line, 13))


AXIOMS_OK = "'t' depends on axioms: [propext, Classical.choice, Quot.sound]"


def test_clean_answer_with_standard_axioms_is_proved():
    verdict = judge(Response(env=1, messages=(info(AXIOMS_OK, 5),)), names=["t"], axiom_lines={5})
    assert verdict.kind is VerdictKind.proved and verdict.axioms == ["propext", "Classical.choice", "Quot.sound"]
    none = judge(Response(env=1, messages=(info("'t' does not depend on any axioms", 5),)), names=["t"], axiom_lines={5})
    assert none.proved and none.axioms == []


@pytest.mark.parametrize("root", ["repl/test", "repl-history/v4.9.0/test", "repl-history/v4.27.0/test"])
def test_real_sorry_answers_are_rejected_in_both_wordings(root):
    first = split_responses((FIX / root / "readme.expected.out").read_text())[0]
    verdict = judge(first, names=[])
    assert verdict.kind is VerdictKind.rejected
    assert any("declaration uses sorry" in r for r in verdict.reasons)
    assert any("sorry goal" in r for r in verdict.reasons)


def test_real_error_with_hidden_sorry_and_no_warning_is_rejected():
    # Lean emits no sorry warning when the declaration also has errors; the sorries list still shows it.
    answer = split_responses((FIX / "repl/test/have_by_sorry.expected.out").read_text())[0]
    assert not any(m.is_sorry_warning for m in answer.messages)
    verdict = judge(answer, names=[])
    assert verdict.kind is VerdictKind.rejected
    assert verdict.reasons[0].startswith("Lean error at line 1: unsolved goals")


def test_failed_warning_native_decide_and_sorry_axiom():
    failed = Response(env=1, messages=(Message("warning", "aesop: failed to prove the goal", Pos(2, 2), None), info(AXIOMS_OK, 4)))
    assert judge(failed, names=["t"], axiom_lines={4}).kind is VerdictKind.rejected
    native = Response(env=1, messages=(info("'t' depends on axioms: [propext, Lean.ofReduceBool]", 4),))
    rejected = judge(native, names=["t"], axiom_lines={4})
    assert rejected.kind is VerdictKind.rejected and "--allow-native-decide" in rejected.reasons[0]
    assert judge(native, names=["t"], axiom_lines={4}, policy=Policy(allow_native_decide=True)).proved
    hidden = Response(env=1, messages=(info("'t' depends on axioms: [sorryAx]", 4),))
    assert "sorryAx" in judge(hidden, names=["t"], axiom_lines={4}).reasons[0]
    missing = judge(Response(env=1), names=["t"], axiom_lines={4})
    assert missing.kind is VerdictKind.rejected and "gave no answer" in missing.reasons[0]


def test_an_info_message_forged_by_the_proof_does_not_count_as_axioms():
    forged = Response(env=1, messages=(info(AXIOMS_OK, 2),))  # not on our `#print axioms` line
    assert judge(forged, names=["t"], axiom_lines={9}).kind is VerdictKind.rejected


def test_parse_axioms_handles_multiline_lists():
    parsed = parse_axioms([info("'a.b' depends on axioms: [propext,\n Classical.choice,\n Quot.sound]", 1)])
    assert parsed == {"a.b": ["propext", "Classical.choice", "Quot.sound"]}


STATEMENT = "theorem t (x : ℕ) : x + 0 = x :="


@pytest.mark.parametrize(
    "body, expected",
    [
        (" by\n  apply?", "uses `apply?`"),
        (" by\n  exact?", "uses `exact?`"),
        (" by\n  first | simp | admit", "uses `admit`"),
        (" by\n  have h : x = x := by sorry\n  simp", "uses `sorry`"),
        (" by\n  simp\n#eval IO.println \"hi\"", "command `#eval`"),
        (" by\n  simp\n#exit", "command `#exit`"),
        (" by\n  set_option debug.skipKernelTC true in simp", "weakens checking"),
        (" by\n  run_tac pure ()", "`run_tac` is not allowed"),
        (" by\n  simp\nelab \"x\" : tactic => pure ()", "`elab` is not allowed"),
        (" by\n  simp\nend", "`end` would change"),
        (" by\n  simp\ntheorem other : True := trivial", "declares `theorem other`"),
        (" by\n  simp\naxiom cheat : False", "declares `axiom cheat`"),
        (" by\n  simp\ninstance : Inhabited ℕ := ⟨1⟩", "declares `instance`"),
        (" by\n  simp\nmacro \"x\" : term => `(0)", "`macro` is not allowed"),
        (" by\n  exact (unsafe_cast 0 : _)\n@[implemented_by foo] def g : ℕ := 0", "`implemented_by`"),
    ],
)
def test_policy_rejects_cheats_before_lean(body, expected):
    reasons = policy_violations(STATEMENT + body, "t")
    assert any(expected in r for r in reasons), reasons


def test_policy_allows_aux_lemmas_only_with_the_flag():
    code = "theorem helper : 1 = 1 := rfl\n\n" + STATEMENT + " by\n  simp"
    assert any("declares `theorem helper`" in r for r in policy_violations(code, "t"))
    assert policy_violations(code, "t", Policy(allow_aux_lemmas=True)) == []
    bad_aux = "def helper : ℕ := 1\n\n" + STATEMENT + " by\n  simp"
    assert policy_violations(bad_aux, "t", Policy(allow_aux_lemmas=True)) != []


def test_statement_must_be_byte_identical():
    assert check_statement(STATEMENT + " by simp", "t", STATEMENT) is None
    assert check_statement("theorem t (x : ℕ) : x = x := by simp", "t", STATEMENT) == "the statement differs from the original target"
    assert "not found" in check_statement(STATEMENT.replace(" t ", " u ") + " by simp", "t", STATEMENT)


def test_whole_file_policy_allows_checks_but_not_code_execution():
    text = "def f := 1\n#check f\ntheorem t : f = 1 := rfl\n"
    assert policy_violations(text, None, whole_file=True) == []
    # A user's own #print is theirs ...
    assert policy_violations(text + "#print axioms t\n", None, whole_file=True) == []
    # ... but #eval runs code (in the judge's compile it could write the very olean the judge reads), and so
    # does code registered with the elaborator; stopping the check early, macros and axioms are refused too.
    assert policy_violations(text + "#eval f\n", None, whole_file=True)
    assert policy_violations(text + "macro \"x\" : term => `(1)\n", None, whole_file=True)
    assert policy_violations(text + "run_cmd pure ()\n", None, whole_file=True)
    assert policy_violations(text + "#exit\n", None, whole_file=True)
    assert policy_violations(text + "@[command_elab foo] def g := 1\n", None, whole_file=True)
    assert policy_violations(text + "axiom bad : False\n", None, whole_file=True)
