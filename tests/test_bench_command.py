"""`proverctl bench` on a shipped split, with a stand-in engine answering real DeepSeek-Prover-V2 solutions."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from proverctl.benchmarks import load_rows, pass_at_k
from proverctl.errors import ExitCode

TESTS = Path(__file__).parent

with zipfile.ZipFile(TESTS / "fixtures" / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as _z:
    SOLUTIONS = {Path(n).stem: _z.read(n).decode("utf-8") for n in _z.namelist() if n.endswith(".lean")}


def answer(body, i):
    """Stands in for the model: DeepSeek-Prover-V2's real solution when it has one, else no proof."""
    name = re.search(r"theorem (\S+)", body["messages"][-1]["content"]).group(1)
    if name in SOLUTIONS:
        return f"```lean4\n{SOLUTIONS[name]}\n```"
    return "I could not find a proof."


def test_pass_at_k_estimator():
    assert pass_at_k(32, 0, 32) == 0.0 and pass_at_k(3, 1, 32) == 1.0  # early stop: solved within k
    assert pass_at_k(64, 1, 32) == pytest.approx(0.5)
    assert pass_at_k(10, 2, 1) == pytest.approx(0.2)


def test_bench_minif2f_revised_reports_pass_at_k(cli, standin_repl):
    _, rows = load_rows("minif2f-revised", "test", 6)
    expected_solved = sum(1 for r in rows if r["name"] in SOLUTIONS)
    with OpenAIStub(model="deepseek-ai/DeepSeek-Prover-V2-7B", answer=answer) as stub:  # what vLLM lists for the hub id
        result = cli("bench", "minif2f-revised", "--limit", "6", "--k", "2", "--endpoint", stub.url, "--format", "json")
    assert result.exit_code == 0, result
    data = result.json()
    assert data["problems"] == 6 and data["solved"] == expected_solved
    assert data["pass_at_k"] == pytest.approx(100 * expected_solved / 6, abs=0.01)
    assert data["k"] == 2 and data["published"] is None  # the paper reports pass@32, not pass@2
    assert data["published_other_k"] == [{"k": 32, "pass_at_k": 75.6}]  # the paper's CoT pass@32, beside it
    total = len(load_rows("minif2f-revised", "test", None)[1])
    assert data["subset"] == f"first 6 of {total} problems"  # --limit: labelled, not comparable with a published figure
    assert data["model"] == "deepseek-prover-v2-7b" and data["lean_profile"] == "deepseek-v2"
    runs = cli("runs", "--format", "json").json()
    assert runs[0]["kind"] == "bench" and runs[0]["n_targets"] == 6
    with OpenAIStub(model="deepseek-ai/DeepSeek-Prover-V2-7B", answer=answer) as stub:
        human = cli("bench", "minif2f-revised", "--limit", "2", "--k", "2", "--endpoint", stub.url, "--format", "human")
    assert "published pass@32 = 75.6% (another k than this run's 2: not comparable)" in " ".join(human.stdout.split())


def test_bench_published_figure_for_k32(cli, monkeypatch):
    from proverctl.benchmarks import published

    assert published("deepseek-prover-v2-7b", "minif2f", "test", "cot", 32) == 75.6
    assert published("deepseek-prover-v2-7b", "minif2f-revised", "test", "non-cot", 32) == 68.0
    assert published("goedel-prover-v2-8b", "minif2f", "test", "cot", 32) == 84.6
    assert published("kimina-prover-preview-distill-7b", "minif2f", "test", "cot", 32) == 63.1
    assert published("deepseek-prover-v2-7b", "putnam", "all", "cot", 32) is None
    assert published("deepseek-prover-v2-7b", "minif2f", "valid", "cot", 32) is None  # the figures are for the test split


@pytest.mark.parametrize("args, message", [
    (["bench", "imo"], "unknown benchmark 'imo'"),
    (["bench", "putnam", "--split", "test"], "putnam has no split 'test'"),
    (["bench", "minif2f", "--limit", "0"], "--limit must be at least 1"),
    (["bench", "minif2f", "--k", "8", "--samples", "4"], "--samples 4 is fewer than k=8"),
])
def test_bench_bad_inputs(cli, args, message):
    result = cli(*args)
    assert result.exit_code == ExitCode.USAGE and message in result.stderr


def test_shipped_datasets_have_their_sizes():
    sizes = [len(load_rows(name, split, None)[1]) for name, split in
             [("minif2f", "test"), ("minif2f", "valid"), ("minif2f-revised", "test"), ("proofnet", "test"), ("putnam", "all"),
              ("mobench", "test")]]
    assert sizes == [244, 244, 244, 186, 644, 360]


def test_bench_of_a_model_that_calls_lean_counts_its_calls_and_tokens(cli, standin_repl):
    """The catalog maps the served StepFun model to the stepfun-tir family: each problem gets one sketch
    checked by the REPL, then the answer; bench reports Lean calls and tokens per problem."""
    def engine(body, i):
        problem = body["messages"][1]["content"]
        name = re.search(r"theorem (\S+)", problem).group(1)
        if not body.get("continue_final_message"):
            return {"content": f"<sketch>\ntheorem {name} : True := by\n  sorry\n</sketch>", "finish_reason": "stop",
                    "stop_reason": "</sketch>"}
        return {"content": answer({"messages": [{"content": problem}]}, i), "finish_reason": "stop", "stop_reason": None}

    with OpenAIStub(model="stepfun-ai/StepFun-Prover-Preview-7B", answer=engine) as stub:
        result = cli("bench", "minif2f-revised", "--limit", "3", "--k", "1", "--endpoint", stub.url, "--format", "json")
    assert result.exit_code == 0, result
    data = result.json()
    assert data["model"] == "stepfun-prover-preview-7b" and data["lean_calls_per_problem"] == 1.0
    assert len(stub.bodies) == 6, [b.get("continue_final_message") for b in stub.bodies]
    assert data["tokens_per_problem"] == 10.0  # the stub counts 5 completion tokens per request: two turns


def test_bench_with_decompose_reports_what_the_tree_did_and_cost(cli, standin_repl):
    """A planner sketch with two holes per problem: `1 = 1` (proved) and the rest of the goal (never):
    each sketch is abandoned, and bench says so per problem beside pass@k."""
    def engine(body, i):
        first = body["messages"][0]["content"]
        if "Decompose the proof" in first:
            code = re.search(r"```lean4\n(.*?)```", first, re.S).group(1)
            head, _, _ = code.rpartition("sorry")
            return f"```lean4\n{head}have h0 : 1 = 1 := by sorry\n  sorry\n```"
        statement = re.findall(r"(theorem \S+ .*?) :=\s*by\s*\n?\s*sorry", body["messages"][-1]["content"], re.S)[-1]
        if statement.split()[1].endswith("_h1"):
            return f"```lean4\n{statement} := by\n  rfl\n```"
        return "I could not find a proof."

    with OpenAIStub(model="deepseek-ai/DeepSeek-Prover-V2-7B", answer=engine) as stub:
        # one request at a time: each sketch's first hole is proved before its second is found unprovable
        result = cli("bench", "minif2f-revised", "--limit", "2", "--k", "1", "--decompose", "--sketches", "1", "--depth", "1",
                     "--refute-k", "0", "--concurrency", "1", "--endpoint", stub.url, "--format", "json")
    assert result.exit_code == 0, result
    data = result.json()
    d = data["decomposition"]
    assert data["solved"] == 0 and d["solved"] == 0 and d["solved_by_composition"] == 0
    assert d["sketches"] == 2 and d["holes"] == 4 and d["holes_proved"] == 2 and d["holes_reused"] == 0
    assert d["tokens_per_problem"] > data["tokens_per_problem"]  # the tree's tokens: sketches and holes too
    assert d["lean_calls_per_problem"] >= 4  # per problem: its own sample, its sketch, the statements, two holes


def test_bench_decompose_flags_need_decompose(cli):
    result = cli("bench", "minif2f-revised", "--limit", "1", "--hole-k", "2")
    assert result.exit_code == 2 and "--hole-k goes with --decompose" in result.stderr
