"""Between targets and the store: the rows a run records, and the report it gives back."""

from __future__ import annotations

from proverctl.inputs import InputFile, header_hash
from proverctl.lean.targets import Target
from proverctl.store.db import Store


def target_rows(inputs: list[InputFile]) -> tuple[list[dict], list[Target]]:
    rows, targets = [], []
    for file in inputs:
        for t in file.targets:
            rows.append({"file": file.label, "name": t.name, "kind": t.kind, "line": t.line, "statement": t.statement,
                         "doc": t.doc, "header": t.header, "header_hash": header_hash(t.header), "hint": t.hint})
            targets.append(t)
    return rows, targets


def stored_target(row: dict) -> Target:
    return Target(row["name"], row["kind"], row["header"], row["doc"], row["statement"], "", row["line"] or 1, row["file"],
                  row.get("hint"))


def proof_of(store: Store, target_row: dict) -> str | None:
    """The checked code of a target's proving attempt (doc + original statement + proof)."""
    attempt = proving_attempt(store, target_row)
    return attempt["code"] if attempt else None


def proving_attempt(store: Store, target_row: dict) -> dict | None:
    if not target_row.get("proved_attempt"):
        return None
    return store.attempt(target_row["proved_attempt"])


def report_rows(store: Store, run_id: int) -> list[dict]:
    """One row per top-level target: name, file, line, status, checked (kernel-checked / REPL-checked
    for a proof), judge, attempts, proof, seconds, run."""
    from proverctl.lean.verdict import checked_label

    out = []
    for t in store.targets(run_id):
        if t.get("parent_id") is not None:
            continue  # subgoal lemmas of --decompose are reported through their parent
        attempt = proving_attempt(store, t)
        judge = attempt.get("judge") if attempt else None
        out.append({"name": t["name"] or f"example@{t['line']}", "file": t["file"], "line": t["line"], "status": t["status"],
                    "checked": checked_label(t["status"], judge), "judge": judge, "attempts": t["n_attempts"],
                    "proof": attempt["code"] if attempt else None, "seconds": t["seconds"], "run": run_id})
    return out


def proofs_by_file(rows: list[dict]) -> dict[str, dict[str, str]]:
    """file label -> target name -> proved code, from report rows."""
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["status"] == "proved" and row["proof"]:
            out.setdefault(row["file"], {})[row["name"]] = row["proof"]
    return out
