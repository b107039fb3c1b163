"""Between targets and the store: the rows a run records, and the report it gives back."""

from __future__ import annotations

import json
import re

from proverctl.errors import UsageError
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
    from proverctl.lean.verdict import KERNEL_CHECKED, checked_label

    out = []
    for t in store.targets(run_id):
        if t.get("parent_id") is not None:
            continue  # subgoal lemmas of --decompose are reported through their parent
        attempt = proving_attempt(store, t)
        judge = attempt.get("judge") if attempt else None
        checked = checked_label(t["status"], judge, attempt.get("sandbox") if attempt else None)
        out.append({"name": t["name"] or f"example@{t['line']}", "file": t["file"], "line": t["line"], "status": t["status"],
                    "checked": checked, "kernel_checked": checked == KERNEL_CHECKED, "judge": judge,
                    "sandbox": attempt.get("sandbox") if attempt else None, "attempts": t["n_attempts"],
                    "proof": attempt["code"] if attempt else None, "statement": t["statement"], "seconds": t["seconds"],
                    "run": run_id})
    return out


def statements_by_file(rows: list[dict]) -> dict[str, dict[str, str]]:
    """file label -> target name -> the statement the run proved, from report rows."""
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["status"] == "proved" and row.get("statement"):
            out.setdefault(row["file"], {})[row["name"]] = row["statement"]
    return out


def proofs_by_file(rows: list[dict]) -> dict[str, dict[str, str]]:
    """file label -> target name -> proved code, from report rows."""
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["status"] == "proved" and row["proof"]:
            out.setdefault(row["file"], {})[row["name"]] = row["proof"]
    return out


def recorded_request(kind: str, text: str):
    """A run's stored request: a CheckRequest for a check run, else a ProveRequest."""
    if kind == "check":
        from proverctl.proving.check import CheckRequest

        return CheckRequest.from_json(text)
    from proverctl.proving.request import ProveRequest

    return ProveRequest.from_json(text)


def parse_reference(ref: str) -> tuple[str, dict]:
    """What `show` (and the MCP `show` tool) names: ("run" | "target" | "sample" | "attempt", its key)."""
    if re.fullmatch(r"a\d+", ref):
        return "attempt", {"id": int(ref[1:])}
    parts = ref.split("/")
    if not parts[0].isdigit():
        raise UsageError(f"bad reference {ref!r}", hint="RUN, RUN/TARGET, RUN/TARGET/SAMPLE[.ROUND] or aATTEMPT_ID")
    if len(parts) == 1:
        return "run", {"run": int(parts[0])}
    if len(parts) == 2:
        return "target", {"run": int(parts[0]), "target": parts[1]}
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?", parts[2])
    if len(parts) != 3 or not match:
        raise UsageError(f"bad reference {ref!r}", hint="RUN/TARGET/SAMPLE or RUN/TARGET/SAMPLE.ROUND")
    return "sample", {"run": int(parts[0]), "target": parts[1], "sample": int(match.group(1)), "round": int(match.group(2) or 0)}


def decomposition_tree(store: Store, target_id: int) -> list[dict]:
    """A target's decomposition as `show --format json` gives it (docs/json.md): its sketches in the order
    they were written, each with its holes; a hole decomposed in turn carries its own `tree`."""
    def sketch(s: dict) -> dict:
        return {"id": s["id"], "sketch": s["ordinal"] + 1, "round": s["round"], "status": s["status"], "masked": s["masked"],
                "reasons": s["reasons"], "attempt": s["attempt_id"], "composed_attempt": s["composed_attempt"], "code": s["code"],
                "holes": [hole(h) for h in s["holes"]]}

    def hole(h: dict) -> dict:
        return {"name": h["name"], "statement": h["statement"], "method": h["method"], "status": h["status"], "reason": h["reason"],
                "target_id": h["target_id"], "refutation_target_id": h["refutation_target_id"], "source_attempt": h["source_attempt"],
                "attempts": h["attempts"], "tree": [sketch(s) for s in h["tree"]]}

    return [sketch(s) for s in store.tree(target_id)]


def read_reference(store: Store, kind: str, key: dict) -> dict:
    """The stored thing a reference names: a run (its settings, request and targets), a target (its
    attempts, summarised) or one attempt; a missing one is a UsageError saying where to look."""
    if kind == "attempt":
        data = store.attempt(key["id"])
        if data is None:
            raise UsageError(f"no attempt {key['id']}", hint="`proverctl show RUN/TARGET` lists attempts with their ids")
        return data
    run = store.run(key["run"])
    if run is None:
        raise UsageError(f"no run {key['run']}", hint="`proverctl runs` lists them")
    from proverctl.lean.verdict import checked_label

    if kind == "run":
        data = dict(run)
        data["settings"] = json.loads(data["settings"])
        data["request"] = json.loads(data["request"]) if data.get("request") else None
        data["targets"] = store.targets(key["run"])
        data["endpoints"] = store.endpoint_counts(key["run"])  # a run over several endpoints: what each answered
        for t in data["targets"]:
            t.pop("header", None)
            t["checked"] = checked_label(t["status"], t.pop("proved_judge"), t.pop("proved_sandbox"))
        return data
    target = store.find_target(key["run"], key["target"])
    if target is None:
        raise UsageError(f"no target {key['target']!r} in run {key['run']}", hint=f"`proverctl show {key['run']}` lists them")
    attempts = store.attempts(target["id"])
    if kind == "target":
        data = dict(target)
        proving = next((a for a in attempts if a["id"] == target.get("proved_attempt")), None)
        data["checked"] = checked_label(target["status"], proving.get("judge") if proving else None,
                                        proving.get("sandbox") if proving else None)
        data["attempts"] = [{**{k: a[k] for k in ("id", "sample", "round", "verdict", "judge", "sandbox", "reasons", "completion_tokens",
                                                "gen_seconds", "verify_seconds")},
                             "checked": checked_label(a["verdict"], a.get("judge"), a.get("sandbox"))} for a in attempts]
        data["tree"] = decomposition_tree(store, target["id"])
        return data
    chosen = [a for a in attempts if a["sample"] == key["sample"] and a["round"] == key["round"]]
    if not chosen:
        raise UsageError(f"no sample {key['sample']}.{key['round']} for {key['target']}", hint=f"`proverctl show {key['run']}/{key['target']}`")
    return chosen[0]
