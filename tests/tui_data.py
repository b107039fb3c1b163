"""A small attempt store with every kind of verdict, built through the Store API (shared by the TUI
tests, the screenshot script and bench/tui_open.py)."""

from __future__ import annotations

import json
from pathlib import Path

from proverctl.store.db import Store

HEADER = "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n\n"
STATEMENT = "theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 :="
GOOD = STATEMENT + " by\n  norm_num [abs_of_nonneg]\n"
BAD = STATEMENT + " by\n  simp\n  linarith\n"
ERROR = {"severity": "error", "line": 3, "column": 2, "end_line": 3, "end_column": 10, "data": "linarith failed to find a contradiction"}
RAW = "### Proof plan\nCompute both sides.\n\n### Complete Lean 4 Proof\n\n```lean4\n{code}```\n"
FIXED_TIME = 1795800000.0


def build(path: Path, *, attempts_per_target: int = 4, targets: int = 2, extra_runs: int = 0, realistic: bool = False) -> Store:
    """With `realistic`, each attempt carries a 15 KB raw output and 2.7 KB of code (what a CoT prover's
    attempts weigh), for benches; the tests use the short rows."""
    store = Store(path)
    padding = ("We expand both sides and compare. " * 500)[:15000] if realistic else ""
    code_padding = "".join(f"  -- step {i}\n" for i in range(200))[:2600] if realistic else ""
    run_id = store.create_run(kind="prove", command="proverctl prove examples/Algebra.lean", input="examples/Algebra.lean",
                              model="deepseek-prover-v2-7b", revision=None, engine="vllm", endpoint=None, lean_profile="deepseek-v2",
                              settings={"k": attempts_per_target})
    rows = [{"file": "examples/Algebra.lean", "name": "mathd_algebra_10" if i == 0 else f"lemma_{i}", "kind": "theorem", "line": 9 + 4 * i,
             "statement": STATEMENT if i == 0 else STATEMENT.replace("mathd_algebra_10", f"lemma_{i}"), "doc": None,
             "header": HEADER, "header_hash": "h"} for i in range(targets)]
    ids = store.add_targets(run_id, rows)
    verdicts = ["rejected", "timeout", "error", "proved"]
    with store.transaction() as db:
        for target_id, row in zip(ids, rows):
            for sample in range(attempts_per_target):
                verdict = verdicts[sample % 4] if row["name"] == "mathd_algebra_10" else "rejected"
                code = (GOOD if verdict == "proved" else BAD) + code_padding
                messages = [ERROR] if verdict == "rejected" else []
                reasons = {"rejected": ["Lean error at line 3: linarith failed to find a contradiction"], "timeout": ["Lean did not finish: no answer within 60 s"],
                           "error": ["verifier error: the REPL exited (code 1): uncaught exception"], "proved": []}[verdict]
                db.execute(
                    "INSERT INTO attempts (target_id, sample, round, prompt, raw_output, code, verdict, reasons, messages, prompt_tokens,"
                    " completion_tokens, gen_seconds, verify_seconds, created) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, 120, 480, 3.5, 1.25, ?)",
                    (target_id, sample, '{"family": "deepseek-v2", "mode": "cot", "sampling": {"temperature": 1.0, "top_p": 0.95}}',
                     padding + RAW.format(code=code), code, verdict, json.dumps(reasons), json.dumps(messages), FIXED_TIME))
        for target_id, row in zip(ids, rows):
            proved = db.execute("SELECT id FROM attempts WHERE target_id = ? AND verdict = 'proved' ORDER BY id LIMIT 1", (target_id,)).fetchone()
            db.execute("UPDATE targets SET status = ?, proved_attempt = ?, seconds = 12.5 WHERE id = ?",
                       ("proved" if proved else "not-proved", proved[0] if proved else None, target_id))
        db.execute("UPDATE runs SET started = ?, finished = ?, status = 'finished'", (FIXED_TIME, FIXED_TIME + 60))
    for i in range(extra_runs):
        store.create_run(kind="check", command="proverctl check x.lean", input=f"x{i}.lean", model=None, revision=None, engine=None,
                         endpoint=None, lean_profile=None, settings={})
    return store


def empty_run(store: Store) -> int:
    return store.create_run(kind="prove", command="proverctl prove Empty.lean", input="Empty.lean", model="m", revision=None, engine=None,
                            endpoint=None, lean_profile=None, settings={})
