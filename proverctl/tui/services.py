"""What the TUI needs from the core, injected through the app's constructor (one factory, used by the
CLI and the tests). Nothing here imports textual."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from proverctl.lean.targets import Target
from proverctl.lean.verdict import Policy, Verdict
from proverctl.store.db import Store


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


def verify_spec_for_run(store: Store, run_id: int):
    """The VerifySpec a run's attempts were judged with: its request's policy and Lean profile (Ray and
    LeanDojo runs are re-checked on the local pool), over the current settings for where Lean runs."""
    from proverctl.settings import Settings
    from proverctl.verify.factory import VerifySpec

    run = store.run(run_id)
    settings = Settings.load()
    if run is None:
        return VerifySpec.from_settings(settings)
    policy, profile = Policy(), run["lean_profile"]
    if run["request"]:
        from proverctl.proving.request import ProveRequest

        request = ProveRequest.from_json(run["request"])
        policy = Policy(allow_native_decide=request.allow_native_decide, allow_aux_lemmas=request.allow_aux_lemmas)
        profile = request.lean_profile or profile
    else:
        saved = json.loads(run["settings"] or "{}").get("policy") or {}
        policy = Policy(allow_native_decide=bool(saved.get("allow_native_decide")), allow_aux_lemmas=bool(saved.get("allow_aux_lemmas")))
    return VerifySpec.from_settings(settings, policy=policy, lean_profile=profile or settings.lean_profile)


def make_services(store_path: Path | None = None) -> TuiServices:
    """The real services: the store from settings, re-verification on the configured Lean REPL."""
    from proverctl.paths import Paths

    paths = Paths.resolve()
    path = store_path or paths.store_db

    async def reverify(target: dict, attempt: dict) -> Verdict:
        """Check the attempt again the way its run did: the run's policy and Lean profile, from its
        recorded request (a `check` run keeps its policy in its settings)."""
        from proverctl.verify.factory import open_verifier

        with Store(path, readonly=True) as store:
            spec = verify_spec_for_run(store, target["run_id"])
        async with open_verifier(spec, jobs=1) as verification:
            stored = Target(target["name"], target["kind"], target["header"], target["doc"], target["statement"], "",
                            target["line"] or 1, target["file"])
            return await verification.verifier.verify(stored, attempt["code"])

    return TuiServices(
        open_store=lambda: Store(path, readonly=True),
        reverify=reverify,
        output_dir=paths.data_dir / "tui",
        editor=os.environ.get("VISUAL") or os.environ.get("EDITOR"),
        store_path=path,
    )
