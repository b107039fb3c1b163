"""`proverctl lean selftest`: on the user's machine, after `lean setup`, prove that the judge's trust base
holds with the real sandbox, pre-filter and judge of a profile.

Classes, each counted held (or accepted) of total:
- the sandbox canary (every attempt denied, the two that must work allowed);
- the trust manifest (the judge and REPL still hash to what `lean setup` recorded);
- Lean's own reader (available for the corpus's header);
- the attack corpus (data/selftest/attacks.jsonl), one class per rule: no row may be `proved`;
- the must-accept set (data/selftest/accept.jsonl): every row `proved`, kernel-checked where a judge is;
- the sandbox through Lean: a checked file whose `#eval`s try to write the workspace, the judge, the
  cache and to read a secret in the user's state dir; afterwards nothing changed and nothing leaked.

The report is saved in the state dir (`doctor` shows the last one); anything short is exit 1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from proverctl.paths import Paths

DATA = Path(__file__).resolve().parent.parent / "data" / "selftest"


@dataclass
class ClassResult:
    name: str
    held: int
    total: int
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.held == self.total


@dataclass
class SelftestReport:
    profile: str
    workspace: str | None
    sandbox: str | None
    judge: str | None
    classes: list[ClassResult]
    finished: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.classes) and all(c.ok for c in self.classes)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        for row, result in zip(data["classes"], self.classes):
            row["ok"] = result.ok
        return data


def report_path(workspace: str | None, paths: Paths | None = None) -> Path:
    paths = paths or Paths.resolve()
    key = hashlib.sha256((workspace or "-").encode("utf-8")).hexdigest()[:20]
    return paths.state_dir / "selftest" / f"{key}.json"


def last_report(workspace: str | None, paths: Paths | None = None) -> dict | None:
    try:
        return json.loads(report_path(workspace, paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


async def run_selftest(settings, profile: str, *, on_class=lambda result: None) -> SelftestReport:
    """Run every class (see the module docstring) and save the report. Environment errors that stop
    any Lean from running (no sandbox, no REPL) are raised by the verifier factory before anything runs."""
    from dataclasses import replace

    from proverctl.verify.factory import VerifySpec, open_verifier

    started = time.monotonic()
    paths = Paths.resolve()
    spec = VerifySpec.from_settings(settings, lean_profile=profile)
    # This machine's trust base: the judge runs here even where the settings send it to Ray (each Ray
    # worker checks itself against this machine's record when a run starts).
    spec = replace(spec, judge_mode="auto" if spec.judge_mode == "kernel" else spec.judge_mode, judge_on="local").resolve()
    classes: list[ClassResult] = []

    def add(result: ClassResult) -> None:
        classes.append(result)
        on_class(result)

    add(_canary_class(spec))
    add(_trust_class(spec))
    attacks, accept = _rows("attacks.jsonl"), _rows("accept.jsonl")
    async with open_verifier(spec, jobs=max(len(attacks), len(accept))) as verification:
        from proverctl.verify.outputs import check_rows, parse_outputs

        def rows_of(items: list[dict]) -> list:
            text = "".join(json.dumps({k: v for k, v in r.items() if k in ("name", "header", "formal_statement", "output", "family")},
                                      ensure_ascii=False) + "\n" for r in items)
            return parse_outputs(text, "selftest")

        refused = await check_rows(verification.verifier, rows_of(attacks))
        by_rule: dict[str, ClassResult] = {}
        for row, result in zip(attacks, refused):
            entry = by_rule.setdefault(row["rule"], ClassResult(f"attacks: {row['rule']}", 0, 0))
            entry.total += 1
            if result["status"] == "proved":
                entry.failures.append(f"#{row['id']} ({row['note']}) was proved")
            else:
                entry.held += 1
        for entry in by_rule.values():
            add(entry)
        proved = await check_rows(verification.verifier, rows_of(accept))
        accepted = ClassResult("must accept" + (" (kernel-checked)" if spec.judge is not None else " (no judge: REPL-checked)"), 0, len(accept))
        for row, result in zip(accept, proved):
            if result["status"] == "proved" and (spec.judge is None or result["kernel_checked"]):
                accepted.held += 1
            else:
                accepted.failures.append(f"{row['name']} ({row['note']}): {result['checked'] or result['status']}: "
                                         f"{'; '.join(result['reasons'][:2])}")
        add(accepted)
        if verification.pool is not None:
            if spec.sandboxed is not None and spec.sandboxed.confirmed:
                add(await _through_lean(verification, spec, paths))
            else:  # never aim writes at the real trust base without a sandbox in between
                add(ClassResult("sandbox through Lean (#eval writes and reads)", 0, 1, ["not run: no sandbox"]))
            notes = list(verification.pool.reader_notes)
            add(ClassResult("Lean's reader", 0 if notes else 1, 1, notes))
    report = SelftestReport(profile, str(Path(spec.repl.cwd).resolve()) if spec.repl and spec.repl.cwd else None,
                            spec.sandboxed.label if spec.sandboxed else None, spec.judge.label if spec.judge else None, classes,
                            time.time(), time.monotonic() - started)
    target = report_path(report.workspace, paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def _canary_class(spec) -> ClassResult:
    sandbox = spec.sandboxed
    if sandbox is None or not sandbox.confirmed:
        return ClassResult("sandbox canary", 0, 1, ["no sandbox: Lean runs unsandboxed (--sandbox none); nothing can be kernel-checked"])
    results = sandbox.canary.get("results", {})
    return ClassResult(f"sandbox canary ({sandbox.name})", sum(1 for _ in results) - len(sandbox.canary.get("failures", [])),
                       len(results), list(sandbox.canary.get("failures", [])))


def _trust_class(spec) -> ClassResult:
    if spec.judge is None:
        why = next((note for note in spec.notes if "REPL-checked only" in note), "no kernel judge")
        return ClassResult("trust manifest (judge)", 0, 1, [why])
    from proverctl.lean.trust import changed_files

    changed = changed_files(spec.judge.files)
    return ClassResult(f"trust manifest ({spec.judge.label})", 0 if changed else 1, 1, [f"{p} changed" for p in changed])


async def _through_lean(verification, spec, paths: Paths) -> ClassResult:
    """Code that got past every rule (sent straight to a REPL worker, and compiled as the judge compiles
    a solution) tries to write the workspace, the judge and its cache and to read a secret in the state
    dir; afterwards nothing changed and nothing leaked."""
    import secrets
    import shutil
    import tempfile

    from proverctl.lean.pool import CheckJob
    from proverctl.lean.trust import changed_files

    token = secrets.token_hex(6)
    secret = paths.state_dir / "sandbox-canary.secret"
    secret.parent.mkdir(parents=True, exist_ok=True)
    if not secret.is_file():
        secret.write_text(secrets.token_hex(16) + "\n")
    secret_text = secret.read_text().strip()
    targets: list[tuple[str, Path]] = []
    if spec.repl.cwd is not None:
        targets.append(("the workspace", Path(spec.repl.cwd) / f"proverctl-selftest-{token}"))
    targets.append(("the judge's cache", paths.cache_dir / "judge" / f"proverctl-selftest-{token}"))
    files = dict(spec.judge.files) if spec.judge is not None else {}
    for path in list(files)[:2]:
        targets.append((f"the judge file {Path(path).name}", Path(path)))
    attack = "\n".join([f'#eval IO.FS.writeFile "{p}" "{token}"' for _, p in targets] + [f'#eval IO.FS.readFile "{secret}"', ""])
    seen = ""
    outcome = await verification.pool.check(CheckJob("", "", attack, spec.check_timeout))
    if outcome.response is not None:
        seen += " ".join(m.data for m in outcome.response.messages)
    judge = verification.judge
    if judge is not None:  # the same file compiled the way the judge compiles a solution
        work = Path(tempfile.mkdtemp(prefix="proverctl-selftest-"))
        try:
            (work / "Proof.lean").write_text(attack, encoding="utf-8")
            ran = await judge._run([*judge.spec.lean_command, "-o", str(work / "Proof.olean"), str(work / "Proof.lean")],
                                   writable=[work], readable=[], scratch=work, timeout=judge.spec.compile_timeout)
            seen += ran.stdout + ran.stderr
        finally:
            shutil.rmtree(work, ignore_errors=True)
    failures = []
    for what, path in targets:
        if path.exists() and token in path.read_text(errors="replace"):
            failures.append(f"code in a checked file wrote {what} ({path})")
    if files and changed_files(files):
        failures.append("the judge's files no longer match the trust manifest")
    if secret_text and secret_text in seen:
        failures.append(f"code in a checked file read {secret}")
    total = len(targets) + 1 + (1 if files else 0)
    return ClassResult("sandbox through Lean (#eval writes and reads)", total - len(failures), total, failures)


def run(settings, profile: str, on_class=lambda result: None) -> SelftestReport:
    return asyncio.run(run_selftest(settings, profile, on_class=on_class))
