"""No false proofs: an adversarial corpus of model outputs that must never be `proved`, checked through
`proverctl check OUTPUTS.jsonl` with a permissive stand-in REPL (it reports no errors), so only
proverctl's own rules can catch them; and a must-accept corpus of real accepted proofs beside it, so
the rules stay precise."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from proverctl.lean.source import Source

TESTS = Path(__file__).parent
FIX = TESTS / "fixtures"
CORPUS = TESTS / "adversarial" / "corpus.jsonl"


@pytest.fixture
def permissive_lean(monkeypatch, standin_repl):
    # No --reject: the stand-in reports no Lean errors at all; it only answers `#print axioms` the way
    # Lean would (native_decide -> Lean.ofReduceBool).
    monkeypatch.setenv("PROVERCTL_WORKERS", "1")


def test_corpus_covers_every_rule():
    rows = [json.loads(l) for l in CORPUS.read_text().splitlines()]
    assert len(rows) >= 40
    rules = {r["rule"] for r in rows}
    assert rules >= {"no sorry", "no apply?/exact?", "no new axioms", "only the target", "no code execution", "no weakening options",
                     "original statement", "no native_decide without --allow-native-decide", "a final Lean block",
                     "no unterminated comment", "no unterminated string", "no scope escape", "bounded output"}


def test_adversarial_corpus_gives_zero_proved(cli, permissive_lean):
    result = cli("check", str(CORPUS), "--format", "json")
    rows = result.json()
    corpus = [json.loads(l) for l in CORPUS.read_text().splitlines()]
    assert len(rows) == len(corpus)
    proved = [(c["id"], c["note"]) for c, r in zip(corpus, rows) if r["status"] == "proved"]
    assert proved == []
    assert all(r["status"] == "rejected" and r["reasons"] for r in rows)
    assert result.exit_code == 1


def must_accept_rows() -> list[dict]:
    rows = []
    with zipfile.ZipFile(FIX / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".lean")):
            solution = z.read(name).decode("utf-8")
            stem = Path(name).stem
            decl = Source(solution).find(stem)
            problem = solution[: decl.body_start] + " by"
            rows.append({"name": stem, "formal_statement": problem, "output": f"### Complete Lean 4 Proof\n\n```lean4\n{solution}\n```\n"})
    with zipfile.ZipFile(FIX / "model-outputs" / "kimina-prover-preview-minif2f-test.zip") as z:
        for line in z.read(z.namelist()[0]).decode("utf-8").splitlines():
            row = json.loads(line)
            decl = Source(row["correct_proof"]).find(row["name"])
            rows.append({"name": row["name"], "formal_statement": row["correct_proof"][: decl.body_start] + " by", "output": row["cot"],
                         "family": "kimina"})
    return rows


def test_must_accept_corpus_gives_zero_rejections(cli, permissive_lean, tmp_path):
    path = tmp_path / "accept.jsonl"
    rows = must_accept_rows()
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    result = cli("check", str(path), "--allow-native-decide", "--format", "json")
    out = result.json()
    rejected = [(r["name"], r["reasons"]) for r in out if r["status"] != "proved"]
    assert rejected == [] and len(out) == 217 + 132
    assert result.exit_code == 0
