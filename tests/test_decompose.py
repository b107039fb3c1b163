"""Subgoal decomposition: lemma statements from real goal shapes, composition, and `prove --decompose`
end to end with a planner test double and the stand-in REPL (its `sorries` goals are built by rule)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from proverctl.decompose import Hole, compose, goal_to_lemma
from proverctl.lean.protocol import split_responses
from proverctl.lean.targets import from_row

TESTS = Path(__file__).parent


def test_goal_to_lemma_on_real_repl_goals():
    (answer,) = split_responses((TESTS / "fixtures/repl/test/have_by_sorry.expected.out").read_text())[:1]
    goal = answer.sorries[0].goal  # real: "x : Int\n⊢ x = 1"
    assert goal_to_lemma("step_1", goal) == ("theorem step_1 (x : Int) : x = 1 :=", ["x"])
    readme = split_responses((TESTS / "fixtures/repl/test/readme.expected.out").read_text())[0]
    assert goal_to_lemma("s", readme.sorries[0].goal) == ("theorem s (x : Unit) : Nat :=", ["x"])


def test_goal_to_lemma_renames_inaccessible_names_and_keeps_instances():
    goal = "α : Type u_1\ninst✝ : Fintype α\nx✝ y : ℕ\nh : x✝ +\n  y = 2\n⊢ y + x✝ = 2"
    statement, args = goal_to_lemma("g", goal)
    assert statement == "theorem g (α : Type u_1) [Fintype α] (x_h2 y : ℕ) (h : x_h2 + y = 2) : y + x_h2 = 2 :="
    assert args == ["α", "x_h2", "y", "h"]


def test_compose_puts_lemmas_first_and_applies_them():
    target = from_row({"name": "t", "formal_statement": "theorem t (x : ℕ) (h : x = 2) : x + x = 4 := by"})
    sketch = "theorem t (x : ℕ) (h : x = 2) : x + x = 4 := by\n  have h1 : x = 2 := by sorry\n  omega\n"
    hole = Hole(0, sketch.index("sorry"), "x : ℕ\nh : x = 2\n⊢ x = 2", "t_step_1", "theorem t_step_1 (x : ℕ) (h : x = 2) : x = 2 :=",
                ["x", "h"])
    code = compose(target, sketch, [hole], {0: "theorem t_step_1 (x : ℕ) (h : x = 2) : x = 2 := by\n  exact h\n"})
    assert code == ("theorem t_step_1 (x : ℕ) (h : x = 2) : x = 2 := by\n  exact h\n\n"
                    "theorem t (x : ℕ) (h : x = 2) : x + x = 4 := by\n  have h1 : x = 2 := by (t_step_1 x h)\n  omega\n")


SKETCH = "theorem t (x : ℕ) (h : x = 2) : x + x = 4 := by\n  have h1 : x = 2 := by sorry\n  have h2 : x + x = 2 + 2 := by sorry\n  omega"


def planner_and_prover(fail_holes: bool = False):
    def answer(body, i):
        prompt = body["messages"][-1]["content"]
        if "proof sketch" in prompt:
            return f"Plan: two steps.\n```lean4\n{SKETCH}\n```"
        statement = re.search(r"(theorem \S+ .*?) := by\n  sorry", prompt, re.S).group(1)
        if fail_holes:
            return "no idea"
        return f"```lean4\n{statement} := by\n  omega\n```"

    return answer


@pytest.fixture
def problem(tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text("import Mathlib\n\ntheorem t (x : ℕ) (h : x = 2) : x + x = 4 := by\n  sorry\n")
    return path


def test_prove_decompose_proves_via_subgoals_and_records_the_tree(cli, problem, hermetic):
    with OpenAIStub(answer=planner_and_prover()) as stub:
        result = cli("prove", str(problem), "--decompose", "--endpoint", stub.url, "--k", "2", "--in-place", "--format", "json")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["status"] == "proved"
    text = problem.read_text()
    assert text.index("theorem t_step_1") < text.index("theorem t_step_2") < text.index("theorem t (x")
    assert "(t_step_1 x h)" in text and "(t_step_2 x h h1)" in text and "sorry" not in text
    db = sqlite3.connect(hermetic / "proverctl/data/attempts.sqlite3")
    targets = db.execute("SELECT id, name, parent_id, status FROM targets ORDER BY id").fetchall()
    assert targets == [(1, "t", None, "proved"), (2, "t_step_1", 1, "proved"), (3, "t_step_2", 1, "proved")]
    kinds = db.execute("SELECT target_id, kind, verdict FROM attempts WHERE kind != 'proof' ORDER BY id").fetchall()
    assert kinds == [(1, "sketch", "sketch"), (1, "composed", "proved")]
    shown = cli("show", "1", "--format", "json").json()
    assert [t["parent_id"] for t in shown["targets"]] == [None, 1, 1]


def test_prove_decompose_fails_when_a_subgoal_is_not_proved(cli, problem, hermetic):
    with OpenAIStub(answer=planner_and_prover(fail_holes=True)) as stub:
        result = cli("prove", str(problem), "--decompose", "--depth", "1", "--sketches", "1", "--endpoint", stub.url, "--k", "1",
                     "--format", "json")
    assert result.exit_code == 1, result
    assert result.json()[0]["status"] == "not-proved"
    assert "sorry" in problem.read_text()


@pytest.mark.lean
def test_real_lean_checks_a_sketch_and_reports_goals(tmp_path):
    """Where `proverctl lean setup` was run: real Lean elaborates a sketch and reports each hole's goal."""
    import asyncio
    import shutil

    from proverctl.decompose import check_sketch
    from proverctl.lean.pool import ReplPool
    from proverctl.lean.workspace import recorded_workspaces, resolve_repl
    from proverctl.settings import Settings

    if shutil.which("lake") is None or not recorded_workspaces():
        pytest.skip("no Lean workspace here (run `proverctl lean setup`)")
    settings = Settings.load()
    repl = resolve_repl(None, None, settings.lean_profile)
    target = from_row({"name": "t", "formal_statement": "theorem t (x : Nat) (h : x = 2) : x + x = 4 := by"})
    sketch = "theorem t (x : Nat) (h : x = 2) : x + x = 4 := by\n  have h1 : x + x = 2 + 2 := by sorry\n  simpa using h1\n"

    async def go():
        async with ReplPool(repl.command, cwd=repl.cwd) as pool:
            return await check_sketch(pool, target, sketch, "t_step", 300)

    result = asyncio.run(go())
    assert result.ok and result.holes[0].lemma_statement.startswith("theorem t_step_1 (x : Nat) (h : x = 2)")
