"""What the TUI needs from the core, injected through the app's constructor (one factory, used by the
CLI and the tests). Nothing here imports textual."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

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
        self.output_dir.mkdir(parents=True, exist_ok=True)
        target = self.output_dir / f"{name or 'proof'}.lean"
        target.write_text(code, encoding="utf-8")
        return target


def make_services(store_path: Path | None = None) -> TuiServices:
    """The real services: the store from settings, re-verification on the configured Lean REPL."""
    from proverctl.paths import Paths
    from proverctl.settings import Settings

    paths = Paths.resolve()
    path = store_path or paths.store_db

    async def reverify(target: dict, attempt: dict) -> Verdict:
        from proverctl.lean.checker import check_candidate
        from proverctl.lean.pool import ReplPool
        from proverctl.lean.workspace import resolve_repl

        settings = Settings.load()
        repl = resolve_repl(settings.repl_command, settings.lean_project, settings.lean_profile)
        from proverctl.lean.sandbox import resolve

        async with ReplPool(repl.command, cwd=repl.cwd, workers=1, memory_mb=settings.repl_memory_mb,
                            sandbox=resolve(settings.sandbox)) as pool:
            return await check_candidate(pool, header=target["header"], code=attempt["code"], target_name=target["name"],
                                         original_statement=target["statement"], policy=Policy(), timeout=settings.check_timeout)

    return TuiServices(
        open_store=lambda: Store(path, readonly=True),
        reverify=reverify,
        output_dir=paths.data_dir / "tui",
        editor=os.environ.get("VISUAL") or os.environ.get("EDITOR"),
        store_path=path,
    )
