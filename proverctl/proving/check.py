"""`CheckJob`: the check use-case, one request in, one result out, every front end the same.

    result = CheckJob(CheckRequest(input="Solved.lean", judge="kernel")).run()

A CheckRequest names what to check — a .lean file or text, a folder of .lean files, an OUTPUTS.jsonl of
generations made elsewhere, or candidates already extracted (the TUI's re-verify) — with the policy and
where Lean runs (the same knobs `prove` declares, proverctl.proving.request.KNOBS). `prepare()` reads and
validates the input (every usage error before any Lean starts); `run` gets a verifier from its
*provider* (by default it opens one for the job; the MCP server passes its shared ones, keyed by the
spec), checks, records the check as a run (kind `check`, with its request and the verifier that really
ran) and returns a CheckResult with the exit code. Nothing here prints.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, AsyncIterator, Callable

from proverctl.errors import ExitCode, UsageError
from proverctl.lean.verdict import Policy
from proverctl.proving.request import CHECK_KNOBS

CHECK_VERSION = 1
# The prove knobs a check takes (same flags, same settings).


@dataclass(frozen=True)
class CheckRequest:
    input: str | None = None  # a .lean file, a folder, "-" (with `text`), or OUTPUTS.jsonl
    text: str | None = None  # the code itself (stdin, an agent's code)
    label: str | None = None  # how reports name `text`
    against: str | None = None  # a trusted challenge file: FILE must prove its sorried statements
    against_text: str | None = None
    candidates: tuple[dict, ...] = ()  # already extracted: {name, kind, line, file, header, doc, statement, code}
    extract_only: bool = False  # OUTPUTS.jsonl: only say what would be checked
    family: str | None = None
    allow_native_decide: bool = False
    allow_aux_lemmas: bool = False
    judge: str | None = None
    lean_profile: str | None = None
    lean_project: str | None = None
    repl_command: str | None = None
    timeout: float | None = None
    workers: int | None = None
    sandbox: str | None = None

    @property
    def policy(self) -> Policy:
        return Policy(allow_native_decide=self.allow_native_decide, allow_aux_lemmas=self.allow_aux_lemmas)

    def to_json(self) -> str:
        data = asdict(self)
        data["candidates"] = list(self.candidates)
        return json.dumps({"version": CHECK_VERSION, "check": data}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CheckRequest":
        try:
            data = dict(json.loads(text)["check"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"the check's stored request cannot be read ({exc})", hint="check again") from None
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["candidates"] = tuple(data.get("candidates") or ())
        return cls(**data)


@dataclass
class CheckResult:
    rows: list[dict]  # one per declaration / row / candidate, as Verdict.as_dict plus name, line (file)
    exit_code: int
    run_id: int | None = None
    summary: str | None = None  # a folder's one-line tally
    notes: list[str] = field(default_factory=list)
    verifier: dict | None = None  # what really checked (VerifySpec.describe)


@dataclass
class _Input:
    kind: str  # file | dir | outputs | candidates
    label: str
    text: str | None = None
    files: list[tuple[str, str]] = field(default_factory=list)
    rows: list = field(default_factory=list)  # OutputRow for outputs; (Target, code) for candidates
    against: str | None = None


Provider = Callable[[Any, int], Any]  # (resolved VerifySpec, jobs) -> async context manager yielding a Verification


@asynccontextmanager
async def open_for_job(spec, jobs: int) -> AsyncIterator[Any]:
    """The default provider: a verifier opened for this job and closed after it."""
    from proverctl.verify.factory import open_verifier

    async with open_verifier(spec, jobs=jobs) as verification:
        yield verification


class CheckJob:
    def __init__(self, request: CheckRequest, *, command: str | None = None, provider: Provider | None = None, settings=None,
                 record: bool = True) -> None:
        self.request = request
        self.command = command or shlex.join(["proverctl"] + sys.argv[1:])
        self.provider = provider or open_for_job
        self._settings = settings
        self.record = record
        self._input: _Input | None = None

    @property
    def settings(self):
        if self._settings is None:
            from proverctl.proving.request import settings_flags
            from proverctl.settings import Settings

            self._settings = Settings.load(settings_flags(self.request))
        return self._settings

    # -----------------------------------------------------------------------------------------
    # Preparation: the input, read and validated before any Lean

    def prepare(self) -> _Input:
        if self._input is not None:
            return self._input
        from pathlib import Path

        from proverctl.inputs import lean_files, read_text
        from proverctl.lean.source import Source

        r = self.request
        if r.family is not None:
            from proverctl.prompts import families

            families.get(r.family)
        if r.candidates:
            from proverctl.lean.targets import Target

            rows = [(Target(c["name"], c.get("kind", "theorem"), c.get("header", ""), c.get("doc"), c["statement"], "", c.get("line") or 1,
                            c.get("file", "")), c["code"]) for c in r.candidates]
            self._input = _Input("candidates", r.label or "candidates", rows=rows)
            return self._input
        against = r.against_text
        if r.against is not None and against is None:
            if Path(r.against).is_file():
                against, _ = read_text(r.against)
            else:
                raise UsageError(f"the challenge {r.against} is not a readable file",
                                 hint="give the trusted statements as a .lean file (or, over MCP, as text)")
        if against is not None and not Source(against).declarations:
            raise UsageError("no declarations in the challenge", hint="give the trusted statements, each proved by `sorry`")
        if r.text is None and r.input is not None and Path(r.input).is_dir():
            if against is not None:
                raise UsageError("--against judges one file", hint="give the solution file, not a folder")
            files = [(label, text) for label, text in lean_files(r.input) if Source(text).declarations]
            if not files:
                raise UsageError(f"no declarations to check under {r.input}", hint="give a folder of Lean files with theorems")
            self._input = _Input("dir", r.input, files=files)
            return self._input
        if r.text is not None:
            text, label = r.text, r.label or "<code>"
        else:
            if r.input is None:
                raise UsageError("name what to check: a .lean file, a folder, - or an OUTPUTS.jsonl", hint="see `proverctl check --help`")
            text, label = read_text(r.input)
        if (r.input or "").endswith(".jsonl"):
            if against is not None:
                raise UsageError("--against judges a .lean file", hint="give the solution file, not an outputs .jsonl")
            from proverctl.verify.outputs import parse_outputs

            self._input = _Input("outputs", label, text=text, rows=parse_outputs(text, label, default_family=r.family))
            return self._input
        if not Source(text).declarations:
            raise UsageError(f"no declarations to check in {label}", hint="give a Lean file with theorems or definitions")
        self._input = _Input("file", label, text=text, against=against)
        return self._input

    def extract(self) -> CheckResult:
        """OUTPUTS.jsonl with extract_only: the code that would be checked, no Lean."""
        from proverctl.verify.outputs import extract_rows

        prepared = self.prepare()
        if prepared.kind != "outputs":
            raise UsageError("--extract-only reads an OUTPUTS.jsonl", hint="give the outputs file")
        rows = extract_rows(prepared.rows, allow_aux=self.request.allow_aux_lemmas)
        return CheckResult(rows, int(ExitCode.NOT_PROVED if any(r["code"] is None for r in rows) else ExitCode.OK))

    # -----------------------------------------------------------------------------------------
    # Running

    def spec(self):
        """The verifier this check asks for (resolved: every environment error before Lean starts)."""
        from proverctl.verify.factory import VerifySpec

        r = self.request
        return VerifySpec.from_settings(self.settings, policy=r.policy, lean_profile=r.lean_profile).resolve()

    def jobs(self) -> int:
        prepared = self.prepare()
        return max(1, len(prepared.rows) if prepared.kind in ("outputs", "candidates") else len(prepared.files) or 1)

    def run(self, notify: Callable[[str], None] = lambda text: None) -> CheckResult:
        self.prepare()
        if self.request.extract_only:
            return self.extract()
        spec = self.spec()
        for note in spec.notes:
            notify(note)
        return asyncio.run(self.run_async(spec, notify))

    async def run_async(self, spec=None, notify: Callable[[str], None] = lambda text: None) -> CheckResult:
        prepared = self.prepare()
        if spec is None:
            spec = await asyncio.to_thread(self.spec)
        async with self.provider(spec, self.jobs()) as verification:
            rows, entries = await self._check(verification, prepared)
            used = verification.spec.describe()
            notes = list(getattr(verification.pool, "reader_notes", []) or [])
        for note in notes:
            notify(note)
        run_id = self._record(prepared, entries, used) if self.record else None
        for row in rows:
            row["run"] = run_id  # where this check is recorded (None: not recorded)
        statuses = {r["status"] for r in rows}
        code = ExitCode.VERIFIER if "error" in statuses else (ExitCode.OK if statuses == {"proved"} else ExitCode.NOT_PROVED)
        summary = _summary(prepared, rows, run_id) if prepared.kind == "dir" else None
        return CheckResult(rows, int(code), run_id, summary, notes, used)

    async def _check(self, verification, prepared: _Input) -> tuple[list[dict], list[dict]]:
        from proverctl.verify.files import check_file_judged

        policy, timeout = self.request.policy, verification.spec.check_timeout
        if prepared.kind == "outputs":
            from proverctl.verify.outputs import check_rows

            rows = await check_rows(verification.verifier, prepared.rows, allow_aux=self.request.allow_aux_lemmas)
            return rows, [dict(r.pop("_record"), verdict=r) for r in rows]
        if prepared.kind == "candidates":
            async def one(target, code):
                verdict = await verification.verifier.verify(target, code)
                data = {"name": target.display_name, "line": target.line, **verdict.as_dict()}
                return data, {"file": target.source_label, "name": target.name, "kind": target.kind, "line": target.line,
                              "statement": target.statement, "header": target.header, "doc": target.doc, "code": code, "verdict": data}

            pairs = await asyncio.gather(*(one(t, c) for t, c in prepared.rows))
            return [p[0] for p in pairs], [p[1] for p in pairs]
        files = [(prepared.label, prepared.text)] if prepared.kind == "file" else prepared.files
        slots = asyncio.Semaphore(max(1, verification.pool.size if verification.pool else 1))

        async def whole(text: str):
            async with slots:
                return await check_file_judged(verification, text, policy=policy, timeout=timeout, against=prepared.against)

        per_file = await asyncio.gather(*(whole(text) for _, text in files))
        rows, entries = [], []
        for (label, _), results in zip(files, per_file):
            for result in results:
                row = result.as_dict()
                if prepared.kind == "dir":
                    row = {"file": label, **row}
                rows.append(row)
                decl = result.declaration
                entries.append({"file": label, "name": decl.full_name, "kind": decl.kind, "line": decl.line, "statement": decl.statement,
                                "doc": decl.doc, "header": decl.header, "code": decl.text[decl.full_start:decl.end],
                                "verdict": row})
        return rows, entries

    def _record(self, prepared: _Input, entries: list[dict], used: dict) -> int | None:
        """The check as a run (kind `check`): its request, the verifier that really ran, one target and
        one attempt per declaration / row. A store that cannot be written does not fail the check."""
        from proverctl.errors import ProverctlError
        from proverctl.inputs import header_hash
        from proverctl.paths import Paths
        from proverctl.store.db import AttemptRow, Store

        try:
            with Store(Paths.resolve().store_db) as store:
                run_id = store.create_run(kind="check", command=self.command, input=prepared.label, model=None, revision=None, engine=None,
                                          endpoint=None, lean_profile=used.get("lean_profile"), settings={"verifier": used},
                                          request=self.request.to_json())
                ids = store.add_targets(run_id, [{"file": e.get("file") or prepared.label, "name": e["name"], "kind": e["kind"],
                                                  "line": e["line"], "statement": e["statement"], "doc": e.get("doc"),
                                                  "header": e.get("header", ""), "header_hash": header_hash(e.get("header", ""))}
                                                 for e in entries])
                for target_id, e in zip(ids, entries):
                    verdict = e["verdict"]
                    proved = verdict["status"] == "proved"
                    store.add_attempt(AttemptRow(target_id, 0, 0, None, e.get("raw_output"), e.get("code"), verdict["status"],
                                                 verdict["reasons"], verdict["messages"], verify_seconds=verdict["seconds"],
                                                 judge=verdict.get("judge"), sandbox=verdict.get("sandbox"), axioms=verdict.get("axioms")),
                                      proved=proved)
                    store.set_target(target_id, status="proved" if proved else "not-proved", seconds=verdict["seconds"])
                store.finish_run(run_id, "finished")
                return run_id
        except (ProverctlError, OSError):
            return None


def _summary(prepared: _Input, rows: list[dict], run_id: int | None) -> str:
    counts = {status: sum(1 for r in rows if r["status"] == status) for status in ("proved", "rejected", "timeout", "error")}
    kernel = sum(1 for r in rows if r.get("kernel_checked"))
    return (f"{len(prepared.files)} file(s), {len(rows)} declaration(s): {counts['proved']} proved ({kernel} kernel-checked), "
            f"{counts['rejected']} rejected, {counts['timeout']} timeout, {counts['error']} error" + (f"; run {run_id}" if run_id else ""))


def check_request(values: dict[str, Any], **extra) -> CheckRequest:
    """A CheckRequest from the knob values a front end parsed (only the check knobs are taken)."""
    return replace(CheckRequest(**extra), **{k: v for k, v in values.items() if k in CHECK_KNOBS})
