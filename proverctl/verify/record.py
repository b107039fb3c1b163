"""`check` runs in the attempt store: one target and one attempt per checked declaration or outputs row."""

from __future__ import annotations

from proverctl.inputs import header_hash
from proverctl.store.db import AttemptRow, Store


def record_check(label: str, command: str, entries: list[dict], settings: dict) -> int | None:
    """Record a `check` as a run. `entries`: {name, kind, line, statement, header, doc, code, raw_output,
    verdict: dict}. A store that cannot be written (read-only disk, newer schema) does not fail the
    check: None is returned."""
    from proverctl.errors import ProverctlError
    from proverctl.paths import Paths

    try:
        with Store(Paths.resolve().store_db) as store:
            run_id = store.create_run(kind="check", command=command, input=label, model=None, revision=None, engine=None,
                                      endpoint=None, lean_profile=settings.get("lean_profile"), settings=settings)
            ids = store.add_targets(run_id, [{"file": e.get("file", label), "name": e["name"], "kind": e["kind"], "line": e["line"],
                                              "statement": e["statement"], "doc": e.get("doc"), "header": e.get("header", ""),
                                              "header_hash": header_hash(e.get("header", ""))} for e in entries])
            for target_id, e in zip(ids, entries):
                verdict = e["verdict"]
                proved = verdict["status"] == "proved"
                store.add_attempt(AttemptRow(target_id, 0, 0, None, e.get("raw_output"), e.get("code"), verdict["status"],
                                             verdict["reasons"], verdict["messages"], verify_seconds=verdict["seconds"],
                                             judge=verdict.get("judge"), sandbox=verdict.get("sandbox")), proved=proved)
                store.set_target(target_id, status="proved" if proved else "not-proved", seconds=verdict["seconds"])
            store.finish_run(run_id, "finished")
            return run_id
    except (ProverctlError, OSError):
        return None
