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
CORPUS = TESTS.parent / "proverctl" / "data" / "selftest" / "attacks.jsonl"


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


def test_elaborator_attributes_are_refused_even_when_aux_lemmas_are_allowed(cli, permissive_lean, tmp_path):
    rows = [json.loads(l) for l in CORPUS.read_text().splitlines() if '"no elaborator code"' in l and "attribute" in l]
    assert len(rows) >= 4
    path = tmp_path / "attrs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out = cli("check", str(path), "--allow-aux-lemmas", "--format", "json").json()
    assert [r["status"] for r in out] == ["rejected"] * len(rows)
    # Defs are never auxiliary lemmas; the theorem that carries @[csimp] is refused for its attribute.
    csimp = next(o for r, o in zip(rows, out) if "csimp" in r["note"])
    assert any("attribute `csimp` is not allowed" in reason for reason in csimp["reasons"]), csimp


HEADER = "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n"
MUST_ACCEPT_PATTERNS = [
    # (note, header, formal_statement, the model's final block)
    ("target inside a namespace", HEADER + "\nnamespace Foo\n", "theorem bar (x : ℕ) : x + 0 = x := by",
     "namespace Foo\n\ntheorem bar (x : ℕ) : x + 0 = x := by\n  simp\n\nend Foo"),
    ("target inside a dotted namespace, block without it", HEADER + "\nnamespace Foo.Baz\n", "theorem bar (x : ℕ) : x + 0 = x := by",
     "theorem bar (x : ℕ) : x + 0 = x := by\n  simp"),
    ("a name with primes", HEADER, "theorem bar' (x : ℕ) : x + 0 = x := by", "theorem bar' (x : ℕ) : x + 0 = x := by\n  simp"),
    ("explicit universe parameters", HEADER, "theorem bar.{u} (α : Type u) (a : α) : a = a := by",
     "theorem bar.{u} (α : Type u) (a : α) : a = a := by\n  rfl"),
    ("Mathlib's #s notation", HEADER, "theorem card_le (s : Finset ℕ) : #s ≤ #s := by", "theorem card_le (s : Finset ℕ) : #s ≤ #s := by\n  le_refl _"),
    ("a statement with a let", HEADER, "theorem lets : let S := (2 : ℕ); S + S = 4 := by",
     "theorem lets : let S := (2 : ℕ); S + S = 4 := by\n  norm_num"),
]


def test_must_accept_patterns(cli, permissive_lean, tmp_path):
    rows = [{"name": None, "header": header, "formal_statement": statement, "output": f"```lean4\n{block}\n```", "note": note}
            for note, header, statement, block in MUST_ACCEPT_PATTERNS]
    path = tmp_path / "patterns.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=False) + "\n" for r in rows))
    out = cli("check", str(path), "--format", "json").json()
    assert [(r["note"], o["status"], o["reasons"]) for r, o in zip(rows, out)] == [(r["note"], "proved", []) for r in rows]


def test_must_accept_files_with_scopes(cli, permissive_lean, tmp_path):
    path = tmp_path / "Scopes.lean"
    path.write_text("import Mathlib\n\nnamespace A.B\n\ntheorem x' : True := trivial\n\nend B\n\nmutual\n"
                    "theorem m1 : True := trivial\ntheorem m2 : True := trivial\nend\n\n"
                    "private theorem p : True := trivial\n\ninstance : Inhabited ℕ := ⟨0⟩\n\n"
                    "theorem u.{v} (α : Sort v) : True := trivial\n\nend A\n\n#print axioms A.u\n#check (1 : ℕ)\n")
    out = cli("check", str(path), "--format", "json").json()
    assert [(r["name"], r["status"]) for r in out] == [("A.B.x'", "proved"), ("A.m1", "proved"), ("A.m2", "proved"),
                                                      ("A.p", "proved"), ("instance@16", "proved"), ("A.u", "proved")]


def test_an_instance_with_a_priority_is_named_after_its_priority(cli, permissive_lean, tmp_path):
    path = tmp_path / "Prio.lean"
    path.write_text("instance (priority := low) : Inhabited Nat := ⟨0⟩\n\ninstance (priority := 100) named : Inhabited Int := ⟨0⟩\n")
    out = cli("check", str(path), "--format", "json").json()
    assert [(r["name"], r["status"]) for r in out] == [("instance@1", "proved"), ("named", "proved")]


def test_drafts_that_read_files_never_reach_lean():
    from proverctl.lean.verdict import sketch_violations

    assert any("include_str" in r for r in sketch_violations('theorem x : True := by\n  have := include_str "/root/.config/proverctl/config.toml"\n  trivial'))
