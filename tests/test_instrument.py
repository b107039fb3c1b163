"""The attempt store as an instrument (issue 24): `runs diff` on runs built from real prover outputs
(tests/fixtures/model-outputs: DeepSeek-Prover-V2's and Kimina-Prover-Preview's published miniF2F
solutions, checked here through the stand-in REPL and judge)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
OUTPUTS = TESTS / "fixtures" / "model-outputs"


def deepseek_solutions() -> dict[str, str]:
    with zipfile.ZipFile(OUTPUTS / "deepseek-prover-v2-minif2f-test.zip") as z:
        return {Path(n).stem: z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".lean")}


def kimina_solutions() -> dict[str, str]:
    with zipfile.ZipFile(OUTPUTS / "kimina-prover-preview-minif2f-test.zip") as z:
        rows = [json.loads(line) for line in z.read("kimina-prover-preview-minif2f-test.jsonl").decode("utf-8").splitlines() if line.strip()]
    return {r["name"]: r["correct_proof"] for r in rows}


@pytest.fixture
def two_runs(cli, tmp_path, standin_repl, standin_judge, sandboxed):
    """Run 1 checks DeepSeek-Prover-V2's proofs of two problems, run 2 Kimina's of the same two (in the
    sandbox, with the stand-in kernel judge)."""
    standin_judge(log_runs=False)
    names = ("mathd_numbertheory_127", "mathd_algebra_304")
    for run, solutions in (("a", deepseek_solutions()), ("b", kimina_solutions())):
        folder = tmp_path / run
        folder.mkdir()
        for name in names:
            (folder / f"{name}.lean").write_text(solutions[name])
        result = cli("check", str(folder), "--allow-native-decide", "--format", "json")
        assert result.exit_code == 0, result
    return names


def test_runs_diff_shows_one_sided_constants_and_flags_on_real_outputs(cli, two_runs):
    data = cli("runs", "diff", "1", "2", "--format", "json").json()
    rows = {t["target"]: t for t in data["targets"]}
    # Kimina proved mathd_numbertheory_127 by native_decide, which DeepSeek's proofs never use
    kimina = rows["mathd_numbertheory_127"]
    assert "native_decide" in kimina["only_b"] and "native_decide" in kimina["b"]["flags"]
    # the judge refuses native_decide: that proof is REPL-checked only, DeepSeek's kernel-checked
    assert kimina["b"]["checked"] == "REPL-checked" and kimina["a"]["checked"] == "kernel-checked"
    assert kimina["change"] == "checked differently"
    assert "Lean.ofReduceBool" in kimina["b"]["axioms"] and "axiom Lean.ofReduceBool" in kimina["b"]["flags"]
    assert kimina["a"]["flags"] == [] and "Lean.ofReduceBool" not in kimina["a"]["axioms"]
    # DeepSeek's proof of mathd_algebra_304 rewrites with Nat lemmas Kimina's proofs never name
    assert "Nat.add_mul" in rows["mathd_algebra_304"]["only_a"] and rows["mathd_algebra_304"]["only_b"] == []
    assert data["a"]["proved"] == data["b"]["proved"] == 2 and data["b"]["flagged"] == 1
    assert data["a"]["kernel_checked"] == 2 and data["b"]["kernel_checked"] == 1
    human = cli("runs", "diff", "1", "2", "--format", "human").stdout
    assert "native_decide" in human and "mathd_numbertheory_127" in human and "proved only in A: 0" in human


def test_runs_diff_bad_inputs(cli, two_runs):
    result = cli("runs", "diff", "1", "9")
    assert result.exit_code == 2 and "no run 9" in result.stderr
    result = cli("runs", "diff", "1")
    assert result.exit_code == 2
    assert cli("runs", "--format", "json").json()[0]["id"] == 2  # the list is still `proverctl runs`


# -- export --for: training data ----------------------------------------------------------------------------


@pytest.fixture
def proved_run(cli, tmp_path, standin_repl, standin_judge, sandboxed):
    """A prove run over 3 miniF2F problems, each with one refused and one proved sample from the same
    prompt (the proved one is DeepSeek-Prover-V2's published proof), kernel-checked by the stand-in judge."""
    import re

    from openai_stub import OpenAIStub
    from proverctl.benchmarks import load_rows

    standin_repl("--reject", "nlinarith_bogus")
    standin_judge(log_runs=False)
    solutions = deepseek_solutions()
    rows = [r for r in load_rows("minif2f-revised", "test", None)[1] if r["name"] in solutions][:3]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def answer(body, i):
        name = re.search(r"theorem (\S+)", body["messages"][-1]["content"]).group(1)
        if body.get("seed", 0) % 1000 == 0 and body.get("seed") is not None and (body["seed"] // 1000) % 2 == 0:
            return f"```lean4\ntheorem {name} : False := by\n  nlinarith_bogus\n```"
        return f"```lean4\n{solutions[name]}\n```"

    with OpenAIStub(model="deepseek-ai/DeepSeek-Prover-V2-7B", answer=answer) as stub:
        result = cli("prove", str(data), "--endpoint", stub.url, "--k", "2", "--all", "--seed", "0", "--format", "json")
    assert result.exit_code == 0, result
    return rows


def test_export_for_sft_and_dpo_rows_come_from_kernel_checked_proofs(cli, proved_run, tmp_path):
    sft = [json.loads(line) for line in cli("export", "1", "--for", "sft").stdout.splitlines()]
    assert len(sft) == 3 and all(r["checked"] == "kernel-checked" for r in sft)
    first = sft[0]
    assert first["messages"][-1]["role"] == "assistant" and "theorem " + first["target"] in first["messages"][-1]["content"]
    assert first["messages"][0]["role"] == "user" and first["target"] in first["messages"][0]["content"]
    dpo = [json.loads(line) for line in cli("export", "1", "--for", "dpo").stdout.splitlines()]
    assert len(dpo) == 3
    assert all("nlinarith_bogus" in r["rejected"][0]["content"] and "nlinarith_bogus" not in r["chosen"][0]["content"] for r in dpo)
    # the same run twice: each (statement, proof) once
    twice = cli("export", "1", "1", "--for", "sft")
    assert len(twice.stdout.splitlines()) == 3 and "3 duplicate(s)" in twice.stderr


def test_export_leaves_a_benchmarks_statements_out(cli, proved_run):
    result = cli("export", "1", "--for", "sft", "--exclude-benchmark", "minif2f-revised-test")
    assert result.stdout == "" and "3 of an excluded benchmark" in result.stderr
    kept = cli("export", "1", "--for", "sft", "--exclude-benchmark", "proofnet")
    assert len(kept.stdout.splitlines()) == 3
    bad = cli("export", "1", "--for", "sft", "--exclude-benchmark", "minif2f-nope")
    assert bad.exit_code == 2 and "unknown benchmark split 'minif2f-nope'" in bad.stderr


def test_export_for_verl_writes_its_parquet_layout(cli, proved_run, tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    result = cli("export", "1", "--for", "verl", "-o", str(path))
    assert result.exit_code == 0, result
    table = pq.read_table(path)
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    rows = table.to_pylist()
    assert len(rows) == 3 and rows[0]["reward_model"]["style"] == "rule"
    assert rows[0]["reward_model"]["ground_truth"].startswith("import Mathlib") and rows[0]["prompt"][0]["role"] == "user"
    grpo = [json.loads(line) for line in cli("export", "1", "--for", "grpo").stdout.splitlines()]
    assert len(grpo) == 3 and all("theorem" in r["ground_truth"] for r in grpo)
    refused = cli("export", "1", "--for", "verl")
    assert refused.exit_code == 2 and "-o FILE.parquet" in refused.stderr


def test_export_of_repl_checked_proofs_needs_the_flag(cli, tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    # a check run has no prompt: nothing to train on, whatever the label
    cli("check", str(path))
    result = cli("export", "1", "--for", "sft", "--include-repl-checked")
    assert result.exit_code == 0 and result.stdout == ""
    result = cli("export", "1", "--include-repl-checked")
    assert result.exit_code == 2 and "go with --for" in result.stderr


# -- bench --replay: published proofs through today's judge ------------------------------------------------


def test_bench_replay_of_deepseeks_published_solutions_prints_the_table(cli, standin_repl):
    """DeepSeek-Prover-V2's minif2f-solutions (217 files) against the revised miniF2F statements: every
    file it has for the first 12 problems is found and checked; no model is asked anything."""
    from proverctl.benchmarks import load_rows

    rows = load_rows("minif2f-revised", "test", 12)[1]
    expected = sum(1 for r in rows if r["name"] in deepseek_solutions())
    zip_path = OUTPUTS / "deepseek-prover-v2-minif2f-test.zip"
    result = cli("bench", "minif2f-revised", "--limit", "12", "--replay", str(zip_path), "--format", "json")
    assert result.exit_code == 0, result
    data = result.json()
    assert data["published_proofs"] == 217 and data["found"] == expected and data["missing"] == 12 - expected
    assert data["accepted"] + data["refused"] == expected and data["accepted"] > 0
    # a normal run: its targets and the published proof as each one's attempt
    shown = cli("show", str(data["run"]), "--format", "json").json()
    assert len(shown["targets"]) == 12 and shown["kind"] == "bench"
    human = cli("bench", "minif2f-revised", "--limit", "12", "--replay", str(zip_path), "--format", "human").stdout
    assert "published proofs found" in human and "accepted today" in human


def test_bench_replay_refuses_a_proof_of_another_statement_and_says_why(cli, standin_repl, tmp_path):
    """Kimina's published rows (jsonl in a zip); one proof is edited to prove a weaker statement."""
    solutions = kimina_solutions()
    name = "mathd_algebra_304"
    weakened = solutions[name].replace("91 ^ 2 = 8281", "91 ^ 2 = 91 ^ 2", 1)
    assert weakened != solutions[name]
    rows = [{"name": n, "correct_proof": weakened if n == name else p} for n, p in solutions.items()]
    path = tmp_path / "published.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("bench", "minif2f", "--replay", str(path), "--format", "json")
    assert result.exit_code == 0, result
    data = result.json()
    refused = [p for r in data["refusals"] for p in r["problems"]]
    assert name in refused
    assert any("statement" in r["reason"] for r in data["refusals"] if name in r["problems"])


@pytest.mark.parametrize("content, message", [
    (None, "no such file or folder"),
    ("not json\n", "not a JSON line"),
    ('{"proof": "x"}\n', "has no `name`"),
    ('{"name": "x", "other": 1}\n', "no proof in the row"),
    ('{"name": "nothing_like_minif2f", "proof": "theorem nothing_like_minif2f : True := trivial"}\n', "none of its 1 proofs"),
])
def test_bench_replay_bad_inputs(cli, tmp_path, content, message):
    path = tmp_path / "published.jsonl"
    if content is not None:
        path.write_text(content)
    result = cli("bench", "minif2f", "--replay", str(path))
    assert result.exit_code == 2 and message in result.stderr, result


# -- the proof cache ---------------------------------------------------------------------------------------

PROBLEM = "import Mathlib\n\ntheorem mathd_algebra_304 : 91 ^ 2 = 8281 := by\n  sorry\n\ntheorem t2 (x : ℕ) : x + 0 = x := by\n  sorry\n"


def proving_stub():
    from openai_stub import OpenAIStub

    def answer(body, i):
        import re

        statement = re.findall(r"(theorem \S+ .*?) :=\s*by\s*\n?\s*sorry", body["messages"][-1]["content"], re.S)[-1]
        return f"```lean4\n{statement} := by\n  norm_num\n```"

    return OpenAIStub(answer=answer)


def failing_stub():
    from openai_stub import OpenAIStub

    return OpenAIStub(answer=lambda body, i: "I cannot prove this.")


def test_a_second_prove_is_answered_from_the_cache_and_judged_again(cli, tmp_path, standin_repl, hermetic):
    import sqlite3

    path = tmp_path / "A.lean"
    path.write_text(PROBLEM)
    with proving_stub() as stub:
        assert cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--format", "json").exit_code == 0
    log = standin_repl(log=True)
    with failing_stub() as stub:
        again = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--format", "json")
        assert again.exit_code == 0, again
        assert stub.bodies == []  # no engine request at all
    assert [r["status"] for r in again.json()] == ["proved", "proved"]
    assert "proof cache: 2 of 2 target(s) answered" in again.stderr
    db = sqlite3.connect(hermetic / "proverctl/data/attempts.sqlite3")
    cached = db.execute("SELECT a.kind, a.sample, a.reasons FROM attempts a JOIN targets t ON t.id = a.target_id WHERE t.run_id = 2").fetchall()
    assert [(k, s) for k, s, _ in cached] == [("cached", -2), ("cached", -2)] and "from the proof cache" in cached[0][2]
    assert log.read_text().count("norm_num") >= 2  # each cached proof went through Lean again
    stats = cli("cache", "stats", "--format", "json").json()
    assert stats[0]["entries"] == 2 and stats[0]["hits"] == 2 and stats[0]["pins"].startswith("leanprover/lean4:")


def test_another_header_or_profile_never_shares_an_entry(cli, tmp_path, standin_repl):
    path = tmp_path / "A.lean"
    path.write_text(PROBLEM)
    with proving_stub() as stub:
        assert cli("prove", str(path), "--endpoint", stub.url, "--k", "1").exit_code == 0
    other = tmp_path / "B.lean"
    other.write_text(PROBLEM.replace("import Mathlib\n", "import Mathlib\nopen Nat\n"))  # the same statements, another header
    with failing_stub() as stub:
        result = cli("prove", str(other), "--endpoint", stub.url, "--k", "1", "--format", "json")
        assert result.exit_code == 1 and len(stub.bodies) == 2  # both sampled: no hit
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--profile", "kimina", "--format", "json")
        assert result.exit_code == 1 and len(stub.bodies) == 4  # another Lean profile: no hit
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--no-cache", "--format", "json")
        assert result.exit_code == 1 and len(stub.bodies) == 6  # --no-cache: sampled


def test_a_cached_proof_that_no_longer_checks_is_dropped_and_the_target_sampled(cli, tmp_path, standin_repl):
    path = tmp_path / "A.lean"
    path.write_text(PROBLEM)
    with proving_stub() as stub:
        assert cli("prove", str(path), "--endpoint", stub.url, "--k", "1").exit_code == 0
    standin_repl("--reject", "norm_num")  # today's Lean refuses what was proved then
    with failing_stub() as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--format", "json")
        assert result.exit_code == 1 and len(stub.bodies) == 2
    assert "cached proof no longer checks" in result.stderr
    assert cli("cache", "stats", "--format", "json").json() == []  # both entries dropped


def test_cache_clear_and_prune(cli, tmp_path, standin_repl):
    path = tmp_path / "A.lean"
    path.write_text(PROBLEM)
    with proving_stub() as stub:
        assert cli("prove", str(path), "--endpoint", stub.url, "--k", "1").exit_code == 0
    assert "removed 0" in cli("cache", "prune", "--older-than", "30d").stderr
    assert "removed 2" in cli("cache", "prune", "--unused").stderr
    assert cli("cache", "stats", "--format", "json").json() == []
    with proving_stub() as stub:
        assert cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--no-cache").exit_code == 0
    assert cli("cache", "stats", "--format", "json").json() == []  # --no-cache: nothing learnt either
    with proving_stub() as stub:
        cli("prove", str(path), "--endpoint", stub.url, "--k", "1")
    assert "removed 2" in cli("cache", "clear").stderr
    bad = cli("cache", "prune", "--older-than", "soon")
    assert bad.exit_code == 2 and "--older-than" in bad.stderr


def test_export_of_several_runs_as_json_is_one_array(cli, tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    cli("check", str(path))
    cli("check", str(path))
    rows = json.loads(cli("export", "1", "2", "--format", "json").stdout)
    assert len(rows) == 2 and all(r["verdict"] == "proved" for r in rows)
    assert len(cli("export", "1", "2").stdout.splitlines()) == 2
