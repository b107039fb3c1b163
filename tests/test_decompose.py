"""Decomposition v2 at the level where it lives: `prove --decompose` with a scripted planner and prover (an
OpenAI-compatible stub) and the stand-in REPL, which answers `extract_goal *` on a sorry's proof state in
the shape Mathlib's tactic gives in the REPL (tests/standin_repl.py says where each shape came from).
Plus the pieces: statements read from Lean's answers, masking, composition, the pipeline's own budget
for holes."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from proverctl.decompose.sketch import mask_errors
from proverctl.decompose.statements import from_goal, parse_extracted
from proverctl.lean.protocol import Message, Pos, split_responses

TESTS = Path(__file__).parent
THEOREM = "theorem t (x : ℕ) (h : x = 2) : x + x = 4"


# -- statements from Lean's answers -------------------------------------------------------------------------


def test_extract_goal_answer_becomes_a_lemma_with_its_call_and_negation():
    # Mathlib's extract_goal prints a signature that may wrap, with instance and universe binders
    text = ("theorem extracted_1.{u_1} {α : Type u_1} [inst : Fintype α] (s : Finset α)\n    (h : s.card = 2) :\n"
            "    s.card + s.card = 4 := sorry")
    lemma = parse_extracted(text)
    assert lemma.statement("t_s1_h1") == ("theorem t_s1_h1.{u_1} {α : Type u_1} [inst : Fintype α] (s : Finset α) (h : s.card = 2) : "
                                          "s.card + s.card = 4 :=")
    assert lemma.negation("t_s1_h1_false") == ("theorem t_s1_h1_false.{u_1} : ¬ (∀ {α : Type u_1} [inst : Fintype α] (s : Finset α) "
                                               "(h : s.card = 2), s.card + s.card = 4) :=")
    # the call passes the explicit arguments; implicit and instance ones are found by Lean
    assert lemma.call("t_s1_h1") == "first | exact t_s1_h1 s h | (apply t_s1_h1 <;> assumption)"
    assert lemma.call("t_s1_h1", tactic=False) == "(by first | exact t_s1_h1 s h | (apply t_s1_h1 <;> assumption))"


@pytest.mark.parametrize("code, tactic", [
    ("have h : P := by sorry", True), ("have h : P := by\n    sorry", True), ("constructor <;> sorry", True),
    ("have h : P := sorry", False), ("exact sorry", False), ("refine ⟨sorry, ?_⟩", False), ("have h : P := by -- sorry?\n  sorry", True),
    ("have h : P :=\n    sorry", False), ("  · sorry", True),
    ("  induction n with\n  | zero => sorry", True), ("  case h => sorry", True), ("  next => sorry", True), ("  all_goals sorry", True),
    ("  try sorry", True), ("  exact fun x => sorry", False), ("  refine fun x =>\n    sorry", False),
])
def test_a_hole_is_replaced_by_a_tactic_or_a_term_as_its_place_needs(code, tactic):
    from proverctl.decompose.tree import tactic_position

    assert tactic_position(code, code.rindex("sorry")) is tactic


def test_the_printed_goal_is_only_the_labelled_fallback_and_renames_inaccessible_names():
    (answer,) = split_responses((TESTS / "fixtures/repl/test/have_by_sorry.expected.out").read_text())[:1]
    lemma = from_goal(answer.sorries[0].goal)  # real: "x : Int\n⊢ x = 1"
    assert lemma.statement("s") == "theorem s (x : Int) : x = 1 :="
    lemma = from_goal("α : Type u_1\ninst✝ : Fintype α\nx✝ y : ℕ\nh : x✝ +\n  y = 2\n⊢ y + x✝ = 2")
    assert "✝" not in lemma.statement("g") and "[Fintype α]" in lemma.statement("g")


def test_mask_errors_turns_a_failing_step_into_a_hole_and_leaves_the_rest():
    code = f"{THEOREM} := by\n  have h1 : x = 2 := by\n    nlinarith [bogus]\n  have h2 : x + x = 2 + 2 := by rw [h1]\n  omega"
    error = Message("error", "unknown identifier 'bogus'", Pos(3, 4))
    masked = mask_errors(code, [error])
    assert masked == f"{THEOREM} := by\n  have h1 : x = 2 := by sorry\n  have h2 : x + x = 2 + 2 := by rw [h1]\n  omega"
    # an error in a statement (before `:=`) is left for the repair round
    assert mask_errors(code, [Message("error", "type mismatch", Pos(2, 12))]) == code


# -- prove --decompose, end to end -------------------------------------------------------------------------

GOOD = f"{THEOREM} := by\n  have h1 : x = 2 := by sorry\n  have h2 : x + x = 2 + 2 := by sorry\n  omega"
FALSE = f"{THEOREM} := by\n  have h1 : x = 3 := by sorry\n  have h2 : x + x = 2 + 2 := by sorry\n  omega"
BROKEN = f"{THEOREM} := by\n  have h1 : x = 2 := by sorry\n  nlinarith_bogus\n  omega"


class Script:
    """The stub's answers: the planner's sketches in order (a repair request gets the next one), the
    prover's proof per statement (by a predicate on it), nothing for the rest. Counts what was asked."""

    def __init__(self, sketches: list[str], prove=lambda statement: "_h" in statement and "_false" not in statement,
                 refute=lambda statement: False) -> None:
        self.sketches, self.prove, self.refute = list(sketches), prove, refute
        self.planned = 0
        self.repairs = 0
        self.asked: list[str] = []  # the statement of every prover request

    def __call__(self, body: dict, i: int) -> str:
        first = body["messages"][0]["content"]
        if "Decompose the proof" in first or "proof sketch" in first:
            self.planned += 1
            self.repairs += "Lean does not accept this sketch" in body["messages"][-1]["content"]
            sketch = self.sketches.pop(0) if self.sketches else GOOD
            return f"### Proof Sketch\nTwo steps.\n```lean4\n{sketch}\n```"
        prompt = body["messages"][-1]["content"]
        statement = re.findall(r"(theorem \S+ .*?) :=\s*by\s*\n?\s*sorry", prompt, re.S)[-1]
        self.asked.append(statement)
        negation = "_false" in statement.split()[1]
        if (negation and self.refute(statement)) or (not negation and self.prove(statement)):
            return f"```lean4\n{statement} := by\n  omega\n```"
        return "I cannot prove this."


@pytest.fixture
def problem(tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text(f"import Mathlib\n\n{THEOREM} := by\n  sorry\n")
    return path


def db_of(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "proverctl/data/attempts.sqlite3")


def test_true_holes_are_proved_as_lemmas_from_extract_goal_and_the_composed_file_proves_the_target(cli, problem, hermetic):
    script = Script([GOOD])
    with OpenAIStub(answer=script) as stub:
        result = cli("prove", str(problem), "--decompose", "--endpoint", stub.url, "--k", "2", "--refute-k", "1", "--in-place",
                     "--format", "json")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["status"] == "proved"
    text = problem.read_text()
    # the lemmas, under their canonical names, before the theorem; each hole's sorry replaced by its lemma applied
    assert text.index("theorem t_s1_h1 (x : ℕ) (h : x = 2) : x = 2") < text.index("theorem t_s1_h2") < text.index("theorem t (x")
    assert "by first | exact t_s1_h1 x h |" in text and "by first | exact t_s1_h2 x h h1 |" in text and "sorry" not in text
    db = db_of(hermetic)
    holes = db.execute("SELECT name, method, status FROM holes ORDER BY id").fetchall()
    assert holes == [("t_s1_h1", "extract_goal", "proved"), ("t_s1_h2", "extract_goal", "proved")]
    assert db.execute("SELECT status, round FROM sketches").fetchall() == [("proved", 0)]
    # the hole and its negation are targets of the run, under the target and the hole
    names = dict(db.execute("SELECT name, parent_id FROM targets").fetchall())
    assert names["t"] is None and names["t_s1_h1"] == 1 and names["t_s1_h1_false"] is not None
    tree = cli("show", "1/t", "--section", "tree", "--format", "json").json()
    assert [h["status"] for h in tree[0]["holes"]] == ["proved", "proved"] and tree[0]["status"] == "proved"
    human = cli("show", "1/t", "--section", "tree", "--format", "human").stdout
    assert "sketch 1" in human and "t_s1_h2: proved" in human and "statement by extract_goal" in human
    settings = cli("show", "1", "--format", "json").json()["settings"]
    assert settings["decomposition"]["holes_proved"] == 2 and settings["decomposition"]["sketches"] == 1


def test_a_false_hole_is_refuted_by_its_negation_and_its_sketch_abandoned(cli, problem, hermetic):
    # the first sketch claims x = 3: the prover cannot prove it, but proves its negation
    script = Script([FALSE, GOOD], prove=lambda s: "_h" in s and "x = 3" not in s, refute=lambda s: "x = 3" in s)
    with OpenAIStub(answer=script) as stub:
        result = cli("prove", str(problem), "--decompose", "--endpoint", stub.url, "--k", "1", "--hole-k", "4", "--refute-k", "1",
                     "--sketches", "2", "--concurrency", "1", "--format", "json")
    assert result.exit_code == 0, result
    assert result.json()[0]["status"] == "proved"
    db = db_of(hermetic)
    sketches = db.execute("SELECT ordinal, status, reasons FROM sketches ORDER BY id").fetchall()
    assert [(o, s) for o, s, _ in sketches] == [(0, "abandoned"), (1, "proved")]
    assert "t_s1_h1 is false" in json.loads(sketches[0][2])[0]
    statuses = dict(db.execute("SELECT name, status FROM holes").fetchall())
    assert statuses["t_s1_h1"] == "false"
    assert statuses["t_s1_h2"] in ("proved", "cancelled")  # proved before the refutation came, or cancelled with the sketch
    # one request at a time, sample-major: the negation's first sample came before the hole's second,
    # and the refuted hole's budget was not spent
    assert sum(s.startswith("theorem t_s1_h1 ") for s in script.asked) < 4


def test_a_sketch_that_does_not_elaborate_is_repaired_in_the_same_conversation(cli, problem, hermetic, standin_repl):
    standin_repl("--reject", "nlinarith_bogus")
    script = Script([BROKEN, GOOD])
    with OpenAIStub(answer=script) as stub:
        result = cli("prove", str(problem), "--decompose", "--endpoint", stub.url, "--k", "1", "--sketch-rounds", "1", "--sketches", "1",
                     "--refute-k", "0", "--format", "json")
    assert result.exit_code == 0, result
    assert script.repairs == 1
    db = db_of(hermetic)
    rows = db.execute("SELECT ordinal, round, status, reasons FROM sketches ORDER BY id").fetchall()
    assert [(o, r, s) for o, r, s, _ in rows] == [(0, 0, "failed"), (0, 1, "proved")]
    assert "does not elaborate" in json.loads(rows[0][3])[0]
    settings = json.loads(db.execute("SELECT settings FROM runs").fetchone()[0])
    assert settings["decomposition"]["repaired"] == 1


def test_mask_errors_keeps_a_sketch_whose_step_proof_fails(cli, problem, hermetic, standin_repl):
    standin_repl("--reject", "nlinarith_bogus")
    masked = f"{THEOREM} := by\n  have h1 : x = 2 := by\n    nlinarith_bogus\n  have h2 : x + x = 2 + 2 := by sorry\n  omega"
    script = Script([masked])
    with OpenAIStub(answer=script) as stub:
        result = cli("prove", str(problem), "--decompose", "--mask-errors", "--endpoint", stub.url, "--k", "1", "--sketch-rounds", "0",
                     "--sketches", "1", "--refute-k", "0", "--format", "json")
    assert result.exit_code == 0, result
    assert script.repairs == 0
    db = db_of(hermetic)
    assert db.execute("SELECT status, masked FROM sketches").fetchall() == [("proved", 1)]
    assert [n for (n,) in db.execute("SELECT name FROM holes ORDER BY ordinal")] == ["t_s1_h1", "t_s1_h2"]


def test_without_extract_goal_the_statement_comes_from_the_printed_goal_labelled(cli, problem, hermetic, standin_repl):
    standin_repl("--no-extract-goal")
    with OpenAIStub(answer=Script([GOOD])) as stub:
        result = cli("prove", str(problem), "--decompose", "--endpoint", stub.url, "--k", "1", "--refute-k", "0", "--format", "json")
    assert result.exit_code == 0, result
    assert db_of(hermetic).execute("SELECT DISTINCT method FROM holes").fetchall() == [("goal",)]


def test_a_hole_shared_by_two_targets_is_proved_once_and_reused_in_a_later_run(cli, tmp_path, hermetic, standin_repl):
    rows = [{"name": name, "header": "import Mathlib\n", "formal_statement": f"theorem {name} (x : ℕ) (h : x = 2) : x + x = 4 := by"}
            for name in ("t", "u")]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    one_hole = "{head} := by\n  have h1 : x + x = 2 + 2 := by sorry\n  omega"

    class Shared(Script):
        def __call__(self, body, i):
            first = body["messages"][0]["content"]
            if "Decompose the proof" in first:
                name = re.search(r"theorem (\w+) \(x", first).group(1)
                self.planned += 1
                return "```lean4\n" + one_hole.format(head=f"theorem {name} (x : ℕ) (h : x = 2) : x + x = 4") + "\n```"
            return super().__call__(body, i)

    script = Shared([], prove=lambda s: "_h1" in s)
    with OpenAIStub(answer=script, delay=0.2) as stub:
        result = cli("prove", str(data), "--decompose", "--endpoint", stub.url, "--k", "1", "--hole-k", "2", "--refute-k", "0",
                     "--concurrency", "1", "--format", "json")
        assert result.exit_code == 0, result
        assert [r["status"] for r in result.json()] == ["proved", "proved"]
        statuses = sorted(s for (s,) in db_of(hermetic).execute("SELECT status FROM holes"))
        assert statuses == ["proved", "reused"]
        # one hole was sampled; the other took its proof, checked again under its own name
        assert len({s.split()[1] for s in script.asked if "_h1" in s}) == 1
        asked = len(script.asked)
        again = cli("prove", str(data), "--decompose", "--endpoint", stub.url, "--k", "1", "--refute-k", "0", "--format", "json")
        assert again.exit_code == 0, again
        # a later run finds both holes in the store: no hole sample was asked for
        assert not any("_h1" in s for s in script.asked[asked:])
    db = db_of(hermetic)
    assert db.execute("SELECT COUNT(*) FROM holes h JOIN sketches s ON s.id = h.sketch_id JOIN targets t ON t.id = s.target_id"
                      " WHERE t.run_id = 2 AND h.status = 'reused'").fetchone()[0] == 2
    reused = db.execute("SELECT kind, verdict FROM attempts WHERE kind = 'reused'").fetchall()
    assert reused and all(v == "proved" for _, v in reused)


def test_decompose_flags_need_decompose_and_a_known_planner_family(cli, problem):
    result = cli("prove", str(problem), "--refute-k", "1")
    assert result.exit_code == 2 and "--refute-k goes with --decompose" in result.stderr
    result = cli("prove", str(problem), "--decompose", "--planner-family", "nope")
    assert result.exit_code == 2 and "unknown planner family 'nope'" in result.stderr and "paper" in result.stderr


@pytest.mark.lean
def test_real_lean_checks_a_sketch_and_extracts_each_hole(tmp_path):
    """Where `proverctl lean setup` was run: real Lean elaborates a sketch and Mathlib's extract_goal
    states each hole."""
    import asyncio
    import shutil

    from proverctl.decompose.sketch import check_sketch
    from proverctl.lean.pool import ReplPool
    from proverctl.lean.targets import from_row
    from proverctl.lean.workspace import recorded_workspaces, resolve_repl
    from proverctl.settings import Settings

    if shutil.which("lake") is None or not recorded_workspaces():
        pytest.skip("no Lean workspace here (run `proverctl lean setup`)")
    settings = Settings.load()
    repl = resolve_repl(None, None, settings.lean_profile)
    target = from_row({"name": "t", "header": "import Mathlib\n", "formal_statement": "theorem t (x : Nat) (h : x = 2) : x + x = 4 := by"})
    sketch = "theorem t (x : Nat) (h : x = 2) : x + x = 4 := by\n  have h1 : x + x = 2 + 2 := by sorry\n  simpa using h1\n"

    async def go():
        async with ReplPool(repl.command, cwd=repl.cwd) as pool:
            return await check_sketch(pool, target, sketch, 300)

    result = asyncio.run(go())
    assert result.ok and result.holes[0].method == "extract_goal"
    assert result.holes[0].lemma.statement("t_s1_h1").startswith("theorem t_s1_h1 (x : ℕ) (h : x = 2)")


def test_a_dotted_extract_goal_name_is_read():
    """extract_goal names its lemma in the current namespace: `_example.extracted_1`, `Foo.extracted_1.{u}`."""
    assert parse_extracted("theorem _example.extracted_1 (x : ℕ) : x = x := sorry").statement("h") == "theorem h (x : ℕ) : x = x :="
    lemma = parse_extracted("theorem Foo.extracted_1.{u_1} {α : Type u_1} (a : α) : a = a := sorry")
    assert lemma is not None and lemma.universes == ".{u_1}"


def test_a_hole_that_restates_its_goal_is_circular_not_a_deadlock(cli, problem, hermetic):
    """`have key : GOAL := by sorry; exact key` at --depth 2: the hole is decomposed again with the same
    sketch, whose hole is the hole itself; it must be called circular, never waited for."""
    circular = f"{THEOREM} := by\n  have key : x + x = 4 := by sorry\n  exact key"
    script = Script([circular] * 8, prove=lambda s: False)
    import subprocess
    import sys

    with OpenAIStub(answer=script) as stub:  # a subprocess: a hang is a timeout, not a stuck suite
        result = subprocess.run([sys.executable, "-m", "proverctl", "prove", str(problem), "--decompose", "--depth", "2", "--sketches", "1",
                                 "--endpoint", stub.url, "--k", "1", "--refute-k", "0", "--format", "json"],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    reasons = [r for (r,) in db_of(hermetic).execute("SELECT reason FROM holes WHERE reason IS NOT NULL")]
    assert any("circular" in r for r in reasons), reasons


def test_a_target_inside_a_namespace_is_decomposed_under_its_names(cli, tmp_path, standin_repl, hermetic):
    path = tmp_path / "N.lean"
    path.write_text(f"import Mathlib\n\nnamespace Foo\n\n{THEOREM} := by\n  sorry\n\nend Foo\n")
    with OpenAIStub(answer=Script([GOOD])) as stub:
        result = cli("prove", str(path), "--decompose", "--endpoint", stub.url, "--k", "1", "--refute-k", "0", "--format", "json")
    assert result.exit_code == 0, result
    names = [n for (n,) in db_of(hermetic).execute("SELECT name FROM targets ORDER BY id")]
    assert names == ["Foo.t", "Foo.t_s1_h1", "Foo.t_s1_h2"]
