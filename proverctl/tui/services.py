"""What the TUI needs from the core, injected through the app's constructor (one factory, used by the
CLI and the tests). Nothing here imports textual."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

from proverctl.lean.verdict import Verdict
from proverctl.store.db import Store

if TYPE_CHECKING:
    from proverctl.proving.check import CheckRequest


@dataclass
class TuiServices:
    open_store: Callable[[], Store]  # a read-only connection; raises UsageError / StoreError
    reverify: Callable[[dict, dict], Awaitable[Verdict]] | None  # (target row, attempt row) -> new verdict
    output_dir: Path  # where copied proofs and exports go when there is no clipboard
    editor: str | None = None
    store_path: Path | None = None

    def export_run(self, run_id: int) -> Path:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        target = self.output_dir / f"run-{run_id}.jsonl"
        with self.open_store() as store, target.open("w", encoding="utf-8") as handle:
            for row in store.iter_attempts(run_id):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return target

    def save_proof(self, name: str, code: str) -> Path:
        """Save a proof as OUTPUT_DIR/NAME.lean, the name made safe for a file name (a declaration may be
        called `«/tmp/x»` or `«../../x»`: nothing outside the folder, no link followed)."""
        from proverctl.proving.outputs import atomic_write

        self.output_dir.mkdir(parents=True, exist_ok=True)
        target = self.output_dir / f"{safe_file_name(name)}.lean"
        if target.is_symlink():
            target.unlink()
        atomic_write(target, code)
        return target


def safe_file_name(name: str | None) -> str:
    """A declaration name as a file name: letters, digits, `_`, `-` and `.` kept, everything else `_`,
    never starting with a dot, at most 120 characters."""
    import re

    cleaned = re.sub(r"[^\w.-]", "_", name or "", flags=re.ASCII).lstrip(".")[:120]
    return cleaned or "proof"


def check_request_for(target: dict, attempt: dict, run) -> "CheckRequest":
    """The check that re-verifies one attempt the way its run was judged: the run's policy and Lean
    profile (from its recorded request; a check run recorded before requests were keeps its policy in
    its settings), over the current settings for where Lean runs."""
    from proverctl.proving.check import CheckRequest

    candidate = {"name": target["name"], "kind": target["kind"], "line": target["line"] or 1, "file": target["file"],
                 "header": target["header"], "doc": target["doc"], "statement": target["statement"], "code": attempt["code"]}
    policy, profile = {}, run["lean_profile"] if run is not None else None
    if run is not None and run["request"]:
        if run["kind"] == "check":
            stored = CheckRequest.from_json(run["request"])
            policy = {"allow_native_decide": stored.allow_native_decide, "allow_aux_lemmas": stored.allow_aux_lemmas}
            profile = stored.lean_profile or profile
        else:
            from proverctl.proving.request import ProveRequest

            request = ProveRequest.from_json(run["request"])
            policy = {"allow_native_decide": request.allow_native_decide, "allow_aux_lemmas": request.allow_aux_lemmas}
            profile = request.lean_profile or profile
    elif run is not None:
        saved = json.loads(run["settings"] or "{}").get("policy") or {}
        policy = {"allow_native_decide": bool(saved.get("allow_native_decide")), "allow_aux_lemmas": bool(saved.get("allow_aux_lemmas"))}
    return CheckRequest(candidates=(candidate,), label=f"re-verify {target['name'] or 'example'}", lean_profile=profile, **policy)


def make_services(store_path: Path | None = None) -> TuiServices:
    """The real services: the store from settings, re-verification on the configured Lean REPL."""
    from proverctl.paths import Paths

    paths = Paths.resolve()
    path = store_path or paths.store_db

    async def reverify(target: dict, attempt: dict) -> Verdict:
        """Check the attempt again the way its run did (check_request_for), as a recorded check run."""
        from proverctl.proving.check import CheckJob

        with Store(path, readonly=True) as store:
            run = store.run(target["run_id"])
        result = await CheckJob(check_request_for(target, attempt, run), command="proverctl tui: re-verify").run_async()
        return Verdict.from_dict(result.rows[0])

    return TuiServices(
        open_store=lambda: Store(path, readonly=True),
        reverify=reverify,
        output_dir=paths.data_dir / "tui",
        editor=os.environ.get("VISUAL") or os.environ.get("EDITOR"),
        store_path=path,
    )
