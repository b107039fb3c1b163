"""Provers that call Lean while they think, end to end through `prove`: a loopback engine plays the
multi-turn exchanges as vLLM sends them (StepFun-Prover's </sketch> stop kept in the output with
`stop_reason`; OpenAI tool calls with `finish_reason: "tool_calls"`), the stand-in REPL answers the
drafts, and the final answers are judged as usual."""

from __future__ import annotations

import json
import time

from openai_stub import OpenAIStub
from proverctl.prompts.families.stepfun_tir import SYSTEM as STEPFUN_SYSTEM
from test_prove import problem_file, solution, store_rows

NAME = "amc12b_2020_p2"


def final_answer() -> str:
    return f"The sketch checks out; here is the whole proof.\n\n```lean4\n{solution(NAME)}\n```"


def sketch_turn(body) -> dict:
    statement = body["messages"][1]["content"].split("```lean4\n", 1)[1].rsplit("\n```", 1)[0]
    draft = statement.split(f"theorem {NAME}", 1)[1]
    return {"content": f"Let me try a first step.\n<sketch>\nimport Mathlib\ntheorem {NAME}{draft}\n  sorry\n</sketch>",
            "finish_reason": "stop", "stop_reason": "</sketch>"}


def test_stepfun_sketches_get_repl_feedback_in_the_same_sample_then_the_answer_is_judged(cli, tmp_path, standin_repl, hermetic):
    log = standin_repl(log=True)
    path = problem_file(tmp_path)

    def engine(body, i):
        continuing = body.get("continue_final_message")
        if not continuing:
            return sketch_turn(body)
        return {"content": "\n" + final_answer(), "finish_reason": "stop", "stop_reason": None}  # the end of the sequence

    with OpenAIStub(answer=engine) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--family", "stepfun-tir", "--k", "1", "--format", "json")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["status"] == "proved"
    first, second = stub.bodies
    # The card's system prompt, sampling and stop; the problem without `sorry`
    assert first["messages"][0] == {"role": "system", "content": STEPFUN_SYSTEM}
    assert first["messages"][1]["content"].startswith("```lean4\n") and "sorry" not in first["messages"][1]["content"]
    assert (first["temperature"], first["top_p"], first["max_tokens"]) == (0.999, 0.95, 16384)
    assert first["stop"] == ["</sketch>"] and first["include_stop_str_in_output"] is True
    # The same assistant message continues, with the REPL's answer appended in the card's format
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
    transcript = second["messages"][-1]
    assert transcript["role"] == "assistant" and transcript["content"].startswith(sketch_turn(first)["content"] + "\n<REPL>\n")
    feedback = json.loads(transcript["content"].split("<REPL>\n", 1)[1].split("\n</REPL>", 1)[0])
    assert "env" not in feedback and feedback["sorries"] and "declaration uses 'sorry'" in feedback["messages"][0]["data"]
    # The sketch reached Lean without its import; the answer went through the normal check
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r.get("cmd", "").startswith(f"theorem {NAME}") and "sorry" in r["cmd"] for r in requests)
    attempt = cli("show", f"{row['run']}/{NAME}/0", "--format", "json").json()
    assert [t["kind"] for t in attempt["turns"]] == ["sketch", "answer", "end"]
    assert attempt["turns"][0]["code"].startswith(f"theorem {NAME}") and "import" not in attempt["turns"][0]["code"]
    shown = cli("show", f"{row['run']}/{NAME}/0", "--section", "turns").stdout
    assert "── turn 1: sketch" in shown and "── Lean:" in shown and "── turn 2: final answer" in shown


def test_a_model_that_never_stops_sketching_is_ended_by_the_turn_budget(cli, tmp_path, standin_repl):
    path = problem_file(tmp_path)
    with OpenAIStub(answer=lambda body, i: sketch_turn(body)) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--family", "stepfun-tir", "--k", "1", "--format", "json")
        assert len(stub.bodies) == 33  # 32 Lean calls, then the budget ends the sample
    assert result.exit_code == 1
    (row,) = result.json()
    attempt = cli("show", f"{row['run']}/{NAME}/0", "--format", "json").json()
    assert attempt["turns"][-1] == {"kind": "end", "reason": "turn budget (32 Lean calls) spent"}
    assert attempt["verdict"] == "rejected"


def tool_call(call_id: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": "lean_check", "arguments": arguments}}


def test_tool_calls_are_answered_by_lean_a_malformed_one_by_one_line_and_the_answer_is_judged(cli, tmp_path, standin_repl):
    path = problem_file(tmp_path)

    def engine(body, i):
        tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_messages:
            draft = f"theorem probe : (2 : ℕ) + 2 = 4 := by\n  sorry"
            return {"content": None, "finish_reason": "tool_calls", "tool_calls": [tool_call("chatcmpl-tool-1", json.dumps({"code": draft}))]}
        if len(tool_messages) == 1:
            return {"content": "Checking again.", "finish_reason": "tool_calls", "tool_calls": [tool_call("chatcmpl-tool-2", "{code: oops")]}
        return {"content": final_answer(), "finish_reason": "stop"}

    with OpenAIStub(answer=engine) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--family", "tool-calls", "--k", "1", "--format", "json")
    assert result.exit_code == 0, result
    first, second, third = stub.bodies
    assert first["tool_choice"] == "auto" and first["tools"][0]["function"]["name"] == "lean_check"
    assert second["messages"][-2]["tool_calls"][0]["id"] == "chatcmpl-tool-1"
    answer = second["messages"][-1]
    assert answer["role"] == "tool" and answer["tool_call_id"] == "chatcmpl-tool-1" and "declaration uses 'sorry'" in answer["content"]
    malformed = third["messages"][-1]
    assert malformed["tool_call_id"] == "chatcmpl-tool-2" and malformed["content"].startswith("error: the arguments of lean_check are not valid JSON")
    (row,) = result.json()
    attempt = cli("show", f"{row['run']}/{NAME}/0", "--format", "json").json()
    assert [t["kind"] for t in attempt["turns"]] == ["tool_call", "error", "answer", "end"]


def test_a_draft_that_runs_code_never_reaches_lean(cli, tmp_path, standin_repl):
    log = standin_repl(log=True)
    path = problem_file(tmp_path)

    def engine(body, i):
        if not any(m["role"] == "tool" for m in body["messages"]):
            evil = json.dumps({"code": '#eval IO.FS.writeFile "/tmp/pwned" "x"\ntheorem x : True := trivial'})
            return {"content": None, "finish_reason": "tool_calls", "tool_calls": [tool_call("t1", evil)]}
        return {"content": final_answer(), "finish_reason": "stop"}

    with OpenAIStub(answer=engine) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--family", "tool-calls", "--k", "1", "--format", "json")
        feedback = stub.bodies[1]["messages"][-1]["content"]
    assert result.exit_code == 0, result
    assert "refused before Lean" in feedback and "#eval" in feedback
    assert not any("pwned" in line for line in log.read_text().splitlines())


def test_early_stop_cancels_a_multi_turn_sample_mid_conversation(cli, tmp_path, standin_repl, hermetic):
    path = problem_file(tmp_path)

    def engine(body, i):
        if body["seed"] == 1000:  # sample 0 answers after a second
            time.sleep(1.0)
            return {"content": final_answer(), "finish_reason": "stop", "stop_reason": None}
        if body.get("continue_final_message"):
            time.sleep(5)  # sample 1 is in its second turn when sample 0 proves the target
        return sketch_turn(body)

    with OpenAIStub(answer=engine) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--family", "stepfun-tir", "--k", "2", "--seed", "1000",
                     "--format", "json")
        assert result.exit_code == 0, result
        assert any(b.get("continue_final_message") for b in stub.bodies)  # sample 1 got to its second turn
    (row,) = result.json()
    assert row["status"] == "proved" and row["attempts"] == 1  # the cancelled conversation recorded nothing
    assert store_rows(hermetic, "SELECT status FROM runs") == [("finished",)]


def test_lean_goals_answers_with_the_goal_at_each_sorry(cli, tmp_path, standin_repl):
    path = problem_file(tmp_path)

    def engine(body, i):
        if not any(m["role"] == "tool" for m in body["messages"]):
            draft = json.dumps({"code": "theorem probe (n : ℕ) : n + 0 = n := by\n  sorry"})
            return {"content": None, "finish_reason": "tool_calls", "tool_calls": [
                {"id": "g1", "type": "function", "function": {"name": "lean_goals", "arguments": draft}}]}
        return {"content": final_answer(), "finish_reason": "stop"}

    with OpenAIStub(answer=engine) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--family", "tool-calls", "--k", "1", "--format", "json")
        names = [t["function"]["name"] for t in stub.bodies[0]["tools"]]
        answer = json.loads(stub.bodies[1]["messages"][-1]["content"])
    assert result.exit_code == 0, result
    assert names == ["lean_check", "lean_goals"]
    assert answer["goals"] and answer["goals"][0]["line"] == 2 and "messages" not in answer


def test_a_draft_that_echoes_the_prompts_imports_gets_its_goals(cli, tmp_path, standin_repl):
    """Models echo the prompt's `import Mathlib ...`: those lines are checked as blank lines (Lean's line
    numbers stay the model's); an import the header lacks gets a one-line error instead of Lean's."""
    path = problem_file(tmp_path)
    drafts = ["import Mathlib\nimport Aesop\n\ntheorem probe (n : ℕ) : n + 0 = n := by\n  sorry",
              "import Mathlib\nimport Std.Data.Foo\n\ntheorem probe (n : ℕ) : n + 0 = n := by\n  sorry"]

    def engine(body, i):
        asked = sum(1 for m in body["messages"] if m["role"] == "tool")
        if asked < len(drafts):
            return {"content": None, "finish_reason": "tool_calls", "tool_calls": [
                {"id": f"g{asked}", "type": "function", "function": {"name": "lean_goals",
                                                                     "arguments": json.dumps({"code": drafts[asked]})}}]}
        return {"content": final_answer(), "finish_reason": "stop"}

    with OpenAIStub(answer=engine) as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--family", "tool-calls", "--k", "1", "--format", "json")
        echoed = json.loads(stub.bodies[1]["messages"][-1]["content"])
        extra = json.loads(stub.bodies[2]["messages"][-1]["content"])
    assert result.exit_code == 0, result
    assert echoed["goals"] and echoed["goals"][0]["line"] == 5 and "errors" not in echoed  # line 5 of the model's draft
    assert "import Std.Data.Foo" in extra["errors"][0]["data"] and "leave out the import lines" in extra["errors"][0]["data"]
