"""`proverctl check OUTPUTS.jsonl`: real prover outputs extracted, re-spliced and checked."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from proverctl.errors import ExitCode

TESTS = Path(__file__).parent
FIX = TESTS / "fixtures"
G2 = {json.loads(l)["name"]: json.loads(l) for l in (FIX / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()}


def solution(name: str) -> str:
    with zipfile.ZipFile(FIX / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        return z.read(f"test/{name}.lean").decode("utf-8")


def kimina(name: str) -> dict:
    with zipfile.ZipFile(FIX / "model-outputs" / "kimina-prover-preview-minif2f-test.zip") as z:
        rows = [json.loads(l) for l in z.read(z.namelist()[0]).decode("utf-8").splitlines()]
    return next(r for r in rows if r["name"] == name)


@pytest.fixture
def outputs(tmp_path, standin_repl):
    log = standin_repl(log=True)
    ok = solution("amc12b_2020_p2")
    sketch_last = "```lean4\n" + ok + "\n```\nNow a sketch:\n```lean4\n" + G2["amc12b_2020_p2"]["formal_statement"] + "  sorry\n```"
    k = kimina("mathd_algebra_114")
    rows = [
        {"name": "amc12b_2020_p2", "formal_statement": G2["amc12b_2020_p2"]["formal_statement"], "output": f"plan\n```lean4\n{ok}\n```"},
        {"name": "amc12b_2020_p2", "formal_statement": G2["amc12b_2020_p2"]["formal_statement"], "output": sketch_last},
        {"name": "mathd_algebra_114", "header": "", "formal_statement": k["correct_proof"].split(":= by")[0] + ":= by", "output": k["cot"],
         "family": "kimina"},
        {"name": "amc12b_2020_p2", "formal_statement": G2["amc12b_2020_p2"]["formal_statement"], "output": "I could not do it."},
    ]
    path = tmp_path / "outputs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path, log


def test_check_outputs_runs_extract_resplice_verdict(cli, outputs):
    path, log = outputs
    result = cli("check", str(path), "--format", "json", "--workers", "2")
    assert result.exit_code == ExitCode.NOT_PROVED, result
    rows = result.json()
    assert [(r["name"], r["line"], r["status"]) for r in rows] == [
        ("amc12b_2020_p2", 1, "proved"), ("amc12b_2020_p2", 2, "rejected"), ("mathd_algebra_114", 3, "proved"),
        ("amc12b_2020_p2", 4, "rejected"),
    ]
    assert rows[1]["reasons"] == ["uses `sorry` (line 9)"]  # the sorry skeleton came last (line 9 of doc + statement + body)
    assert rows[3]["reasons"] == ["no ```lean4 block in the output"]
    for row in rows:
        assert {"name", "status", "reasons", "messages", "seconds"} <= set(row)
    checked = [json.loads(l)["cmd"] for l in log.read_text().splitlines() if "env" in json.loads(l)]
    assert any(cmd.startswith("/-- What is the value of the following expression?") for cmd in checked)


def test_extract_only_prints_code_without_lean(cli, outputs):
    path, log = outputs
    result = cli("check", str(path), "--extract-only", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED  # row 4 has no code
    rows = result.json()
    assert rows[0]["code"] == solution("amc12b_2020_p2")  # the accepted file, byte for byte
    assert rows[2]["code"] == kimina("mathd_algebra_114")["correct_proof"] + "\n"
    assert rows[3]["code"] is None and rows[3]["reason"] == "no ```lean4 block in the output"
    assert not log.exists()


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "outputs.jsonl:2: not a JSON object"),
        ('{"name": "x", "formal_statement": "theorem x : True := by"}', "outputs.jsonl:2: no `output` string"),
        ('{"name": "x", "output": "y"}', "outputs.jsonl:2: the row has no formal_statement"),
        ('{"name": "x", "formal_statement": "theorem x : True := by", "output": "y", "family": "gpt"}', "unknown prompt family 'gpt'"),
        ('{"formal_statement": "-- nothing", "output": "y"}', "no theorem found in formal_statement"),
    ],
)
def test_bad_rows_stop_before_any_check(cli, tmp_path, standin_repl, line, message):
    log = standin_repl(log=True)
    path = tmp_path / "outputs.jsonl"
    good = {"name": "t", "formal_statement": "theorem t : True := by", "output": "```lean4\ntheorem t : True := by\n  trivial\n```"}
    path.write_text(json.dumps(good) + "\n" + line + "\n")
    result = cli("check", str(path))
    assert result.exit_code == ExitCode.USAGE, result
    assert message in result.stderr
    assert not log.exists()


def test_empty_outputs_and_bad_family_flag(cli, tmp_path):
    path = tmp_path / "outputs.jsonl"
    path.write_text("\n")
    assert "has no rows" in cli("check", str(path), "--extract-only").stderr
    path.write_text('{"name": "t", "formal_statement": "theorem t : True := by", "output": "x"}\n')
    assert cli("check", str(path), "--extract-only", "--family", "gpt").exit_code == ExitCode.USAGE


def test_checks_are_recorded_as_runs(cli, outputs):
    path, _ = outputs
    cli("check", str(path), "--format", "json")
    runs = cli("runs", "--format", "json").json()
    assert [(r["kind"], r["n_targets"], r["n_proved"], r["status"]) for r in runs] == [("check", 4, 2, "finished")]
    shown = cli("show", f"{runs[0]['id']}/amc12b_2020_p2", "--format", "json").json()
    assert shown["attempts"][0]["verdict"] == "proved"
    attempt = cli("show", f"a{shown['attempts'][0]['id']}", "--format", "json").json()
    assert attempt["raw_output"].startswith("plan\n```lean4") and attempt["code"].startswith("/-- What is the value")
