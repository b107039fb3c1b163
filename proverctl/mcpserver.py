"""`proverctl mcp`: the core (checks with the judge's verdict, goals, targets, prove jobs, the attempt
store, the catalog) as an MCP server for coding agents, built on the official `mcp` SDK (2.x, MCPServer).

Tools call the core, not the CLI: `lean_check` runs the same CheckJob as `proverctl check` (recorded as a
run), `prove` / `prove_start` run a ProveJob with one recorded ProveRequest, `run_show` / `run_attempts`
read the store. Every tool has described parameters, annotations (read-only, idempotent, open-world) and
a structured result with its output schema. Runs and attempts are also resources
(`proverctl://runs`, `proverctl://runs/{run}`, `proverctl://attempts/{attempt}`).

Proving takes minutes, longer than the 60 s most clients wait for one request. So a prove is also a job:
`prove_start` answers at once with a job id, `prove_status` waits at most `wait` seconds (50 at most) and
answers the progress or the result, `prove_cancel` stops it (what is proved is kept). The blocking
`prove` stays for clients that reset their timeout on progress notifications. The verifiers (REPL pool +
judge) are opened on first use, one per verifier spec, and shared by every call; prove jobs run at most
`max_jobs` at a time (more wait, `queued`). A call the client cancels (or a client that goes away) stops
its job the way Ctrl-C does.

Transports: stdio (what Claude Code, Codex and VS Code start), and streamable HTTP on loopback behind a
bearer token (`--http`). Settings the client's environment does not carry (`PROVERCTL_*` is often
dropped) come as `proverctl mcp` options (`defaults`, request field -> value).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import time
from pathlib import Path
from typing import Annotated, Any, Optional

from typing_extensions import TypedDict  # pydantic reads nested TypedDicts only from here before Python 3.12

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from proverctl import __version__
from proverctl.errors import ProverctlError, UsageError

INSTRUCTIONS = """proverctl proves and checks Lean 4 theorems. `lean_check` gives a verdict per declaration;
only `status: proved` is a proof, and `checked: kernel-checked` means the kernel judge confirmed it in a
sandbox (`REPL-checked` means the REPL pre-filter alone). `lean_goals` gives the goal left at each
`sorry`. `lean_targets` lists the sorried theorems. To prove: `prove_start` (answers at once with a job id),
then `prove_status` with `wait` up to 50 s until `status` is finished, then read `result`; `prove_cancel`
stops a job. `prove` does the same in one call but blocks for minutes (only for clients that keep a call
alive on progress notifications). `run_show` / `run_attempts` read every recorded attempt; `models_list`
the known, pulled and served provers. Lines are 1-based and columns 0-based, as Lean reports them."""

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
# Checks record a run in proverctl's store (not the user's files): not read-only, not destructive.
CHECKS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)
# Proving calls the model server and records a run; it never modifies the file.
PROVES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True)

MAX_WAIT = 50.0  # seconds prove_status may block: under the 60 s request timeout of most clients
KEEP_FINISHED = 100  # finished jobs remembered for prove_status

Code = Annotated[Optional[str], Field(description="Lean 4 source text (imports included). Give this or `file`.")]
File = Annotated[Optional[str], Field(description="Path of a .lean file the server can read. Give this or `code`.")]
Against = Annotated[Optional[str], Field(description=(
    "A trusted challenge: the path of a .lean file, or its text, whose statements end in `sorry`; the code "
    "must prove exactly those statements (compared as kernel terms by the judge)."))]
Line = Annotated[Optional[int], Field(description="Only the goals at `sorry`s on this line (1-based).", ge=1)]
JobId = Annotated[str, Field(description="The id prove_start answered, e.g. `p1`.")]
Statement = Annotated[Optional[str], Field(description="Lean code with `sorry` to prove (instead of `file`).")]
K = Annotated[int, Field(description="Samples per target (the pass@k budget).", ge=1)]
Rounds = Annotated[int, Field(description="Error-feedback rounds per failed sample.", ge=0)]
Model = Annotated[Optional[str], Field(description=(
    "Catalog alias, hub repo or local directory (default: the server's `model` setting); a running "
    "session for it is used (`proverctl serve`)."))]
Endpoint = Annotated[Optional[str], Field(description="An OpenAI-compatible URL to sample from instead of a session.")]


# Structured results (their output schemas are what clients see) -----------------------------------

class CheckAnswer(TypedDict):
    proved: bool  # every declaration proved
    checked: Optional[str]  # how: kernel-checked, REPL-checked, ... (the weakest declaration's); null when not proved
    kernel_checked: bool
    source: str
    run: Optional[int]  # the run this check is recorded as
    declarations: list[dict[str, Any]]  # name, line, status, checked, judge, reasons, messages, goals, axioms, seconds


class Goal(TypedDict):
    declaration: Optional[str]
    line: Optional[int]
    column: Optional[int]
    goal: str


class GoalsAnswer(TypedDict):
    source: str
    goals: list[Goal]
    errors: list[dict[str, Any]]  # Lean's error messages (severity, data, line, column, end_line, end_column)


class TargetsAnswer(TypedDict):
    targets: list[dict[str, Any]]  # name, kind, line, statement


class ProveAnswer(TypedDict):
    run: Optional[int]
    proved: int
    targets: int
    results: list[dict[str, Any]]  # per target: name, line, status, checked, proof, attempts, seconds


class JobAnswer(TypedDict, total=False):
    job: str
    status: str  # queued | running | finished | failed | cancelled
    run: Optional[int]
    elapsed: float
    progress: dict[str, Any]  # targets, proved, samples_done, in_flight, budget_left
    result: ProveAnswer  # when finished (or cancelled after recording)
    error: str  # when failed


class AttemptsAnswer(TypedDict):
    attempts: list[dict[str, Any]]


class ModelsAnswer(TypedDict):
    catalog: list[dict[str, Any]]
    pulled: list[dict[str, Any]]
    served: list[dict[str, Any]]


# The shared core ---------------------------------------------------------------------------------

class _Job:
    def __init__(self, job_id: str, job, task: asyncio.Task) -> None:
        self.id, self.job, self.task = job_id, job, task
        self.started = time.monotonic()
        self.running = False
        self.cancelled = False
        self.finished_at: float | None = None


class Core:
    """What the tools share: the server's defaults (request fields from `proverctl mcp`'s options), the
    verifiers opened so far (one per verifier spec: a check or a prove job gets the one its own plan asks
    for, and records what really ran), the prove jobs and their slots."""

    def __init__(self, *, max_jobs: int = 1, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = dict(defaults or {})
        self.slots = asyncio.Semaphore(max_jobs)
        self._stack = contextlib.AsyncExitStack()
        self._verifications: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self.jobs: dict[str, _Job] = {}
        self._ids = itertools.count(1)

    @contextlib.asynccontextmanager
    async def provider(self, spec, jobs: int):
        """A verification provider (proverctl.proving.check.Provider): the shared verifier for `spec`,
        opened on first use and kept for the session (tools that need no Lean work where Lean is missing)."""
        import json

        key = json.dumps(spec.describe(), sort_keys=True, default=str)
        async with self._lock:
            if key not in self._verifications:
                from proverctl.verify.factory import open_verifier

                self._verifications[key] = await self._stack.enter_async_context(open_verifier(spec, jobs=spec.pool_size(8)))
            verification = self._verifications[key]
        yield verification

    def check_request(self, **fields):
        from proverctl.proving.check import check_request

        return check_request(self.defaults, **fields)

    def prove_request(self, **fields):
        from dataclasses import fields as dataclass_fields

        from proverctl.proving import ProveRequest

        known = {f.name for f in dataclass_fields(ProveRequest)}
        values = {k: v for k, v in self.defaults.items() if k in known}
        values.update({k: v for k, v in fields.items() if v is not None})
        return ProveRequest(**values)

    async def start(self, request) -> _Job:
        """Prepare the prove job (every usage and environment error here, before an id is given), then run
        it in the background when a slot is free."""
        from proverctl.proving import ProveJob

        job = ProveJob(request, command="proverctl mcp: prove", provider=self.provider)
        await _guarded(asyncio.to_thread(job.prepare))
        job_id = f"p{next(self._ids)}"

        async def run():
            async with self.slots:
                entry.running = True
                if entry.cancelled:
                    job.stop()
                try:
                    return await job.run_async()
                finally:
                    entry.finished_at = time.monotonic()

        entry = _Job(job_id, job, asyncio.ensure_future(run()))
        self.jobs[job_id] = entry
        self._forget_old()
        return entry

    def _forget_old(self) -> None:
        finished = sorted((j for j in self.jobs.values() if j.finished_at is not None), key=lambda j: j.finished_at)
        for old in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            self.jobs.pop(old.id, None)

    def get(self, job_id: str) -> _Job:
        entry = self.jobs.get(job_id)
        if entry is None:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise _error(UsageError(f"no prove job {job_id!r} in this server", hint=f"prove_start gives one (known: {known})"))
        return entry

    async def close(self) -> None:
        """Stop the running jobs (what they proved is recorded) and close the verifiers: the end of a stdio
        session, or of one HTTP session (the next reopens them)."""
        for entry in self.jobs.values():
            if not entry.task.done():
                entry.job.stop()
        pending = [e.task for e in self.jobs.values() if not e.task.done()]
        if pending:
            await asyncio.wait(pending, timeout=30)
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        self._verifications = {}
        await stack.aclose()


def status_of(entry: _Job) -> JobAnswer:
    task, job = entry.task, entry.job
    answer: JobAnswer = {"job": entry.id, "run": job.run_id, "elapsed": round(time.monotonic() - entry.started, 1)}
    if not task.done():
        answer["status"] = "running" if entry.running else "queued"
        progress = job.snapshot()
        if progress is not None:
            answer["progress"] = {k: progress[k] for k in ("targets", "proved", "samples_done", "in_flight", "budget_left")}
        return answer
    if task.cancelled():
        answer["status"] = "cancelled"
        return answer
    exc = task.exception()
    if exc is not None:
        answer["status"] = "failed"
        answer["error"] = f"{exc}" + (f" (hint: {exc.hint})" if getattr(exc, "hint", None) else "")
        return answer
    result = task.result()
    answer["status"] = "cancelled" if entry.cancelled else "finished"
    answer["result"] = prove_answer(result)
    return answer


def prove_answer(result) -> ProveAnswer:
    proved = sum(1 for r in result.rows if r["status"] == "proved")
    return {"run": result.run_id, "proved": proved, "targets": len(result.rows), "results": result.rows}


def _text(code: str | None, file: str | None, what: str) -> tuple[str, str]:
    if (code is None) == (file is None):
        raise UsageError(f"{what}: give either `code` or `file`", hint="code is Lean text; file is a path the server can read")
    if code is not None:
        return code, "<code>"
    path = Path(file).expanduser()
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file}: {exc}", hint="give a readable UTF-8 .lean file, or pass `code`") from None


def _challenge(against: str | None) -> dict[str, str]:
    """`against` as the CheckRequest takes it: a readable file's path, or the challenge's own text. A
    one-line value that names no readable file is a path that cannot be read (an error), not a challenge."""
    if against is None:
        return {}
    path = Path(against).expanduser()
    if "\n" not in against.strip():
        if path.is_file():
            return {"against": str(path)}
        if against.strip().endswith(".lean") or ":=" not in against:
            raise UsageError(f"against: cannot read {against}",
                             hint="give the path of a readable .lean challenge file, or the challenge's text itself")
    return {"against_text": against}


def build_server(*, max_jobs: int = 1, defaults: dict[str, Any] | None = None) -> MCPServer:
    core = Core(max_jobs=max_jobs, defaults=defaults)

    @contextlib.asynccontextmanager
    async def lifespan(server: MCPServer):
        try:
            yield core
        finally:
            await core.close()

    server = MCPServer("proverctl", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING")

    @server.tool(title="Sorried theorems", annotations=READ_ONLY)
    async def lean_targets(code: Code = None, file: File = None) -> TargetsAnswer:
        """The theorems whose proof contains `sorry` (what `prove` works on): name, kind, line, statement.
        Reads the text only; runs no Lean."""
        from proverctl.inputs import load_text
        from proverctl.lean.source import Source

        text, label = _guard(lambda: _text(code, file, "lean_targets"))
        _guard(lambda: load_text(text, label))  # a `sorry` that is no target is an error, not an empty list
        return {"targets": [t.as_dict() for t in Source(text).targets]}

    @server.tool(title="Check with Lean", annotations=CHECKS)
    async def lean_check(code: Code = None, file: File = None, against: Against = None) -> CheckAnswer:
        """Verify Lean code (or a file) with Lean: one verdict per declaration, with `checked` (how a proof
        was established: kernel-checked, REPL-checked, ...), Lean's messages, and the goal left at each
        `sorry`. `proved` is true only when every declaration is proved. With `against`, the code must
        prove exactly the challenge's statements. Recorded as a run (`run`)."""
        from proverctl.proving.check import CheckJob

        text, label = _guard(lambda: _text(code, file, "lean_check"))
        challenge = _guard(lambda: _challenge(against))
        job = CheckJob(core.check_request(text=text, label=label, **challenge), command="proverctl mcp: lean_check",
                       provider=core.provider)
        _guard(job.prepare)
        result = await _guarded(job.run_async())
        rows = result.rows
        proved = bool(rows) and all(r["status"] == "proved" for r in rows)
        labels = {r["checked"] for r in rows}
        # The whole answer is only as checked as its weakest declaration.
        checked = (labels.pop() if len(labels) == 1 else "mixed: " + ", ".join(sorted(labels))) if proved else None
        return {"proved": proved, "checked": checked, "kernel_checked": proved and all(r["kernel_checked"] for r in rows),
                "source": label, "run": result.run_id, "declarations": rows}

    @server.tool(title="Goals at sorry", annotations=READ_ONLY)
    async def lean_goals(code: Code = None, file: File = None, line: Line = None) -> GoalsAnswer:
        """The goal Lean reports at each `sorry` of the code (hypotheses and the target after `⊢`), and
        Lean's errors: what is left to prove, as lean-lsp-mcp's lean_goal shows it. Runs the REPL only
        (no judge, nothing recorded)."""
        from proverctl.lean.checker import check_file
        from proverctl.proving.check import CheckJob

        text, label = _guard(lambda: _text(code, file, "lean_goals"))
        job = CheckJob(core.check_request(text=text, label=label), record=False, provider=core.provider)
        _guard(job.prepare)
        spec = await _guarded(asyncio.to_thread(job.spec))
        async with core.provider(spec, 1) as verification:
            if verification.pool is None:
                raise _error(UsageError("lean_goals needs the local REPL pool", hint="leave out verify_on / a LeanDojo repository"))
            results = await _guarded(check_file(verification.pool, text, policy=job.request.policy, timeout=spec.check_timeout))
        goals: list[Goal] = []
        errors: list[dict[str, Any]] = []
        for result in results:
            name = result.declaration.full_name
            goals.extend({"declaration": name, **g.as_dict()} for g in result.verdict.goals
                         if line is None or (g.pos is not None and g.pos.line == line))
            errors.extend(m.as_dict() for m in result.verdict.messages if m.severity == "error")
        return {"source": label, "goals": goals, "errors": errors}

    @server.tool(title="Prove (blocking)", annotations=PROVES)
    async def prove(ctx: Context, file: File = None, statement: Statement = None, k: K = 8, rounds: Rounds = 0,
                    model: Model = None, endpoint: Endpoint = None) -> ProveAnswer:
        """Prove every `sorry` of a Lean file (or of `statement`) and wait for the end: BLOCKS FOR MINUTES.
        Use it only if your client keeps a call alive while progress notifications arrive; otherwise use
        prove_start + prove_status. Up to `k` samples per target, each checked by Lean; the file is not
        modified. Cancelling the call stops the job (what is proved is kept)."""
        entry = await core.start(_guard(lambda: _prove_request(core, file, statement, k, rounds, model, endpoint)))
        try:
            while not entry.task.done():
                await asyncio.wait({entry.task}, timeout=1.0)
                progress = entry.job.snapshot()
                if progress is not None and not entry.task.done():
                    await ctx.report_progress(progress["proved"], progress["targets"],
                                              f"{progress['proved']}/{progress['targets']} proved, "
                                              f"{progress['samples_done']} samples checked, {progress['in_flight']} generating")
        except BaseException:
            entry.cancelled = True
            entry.job.stop()  # the client cancelled or went away: stop sampling, keep what is recorded
            with contextlib.suppress(BaseException):
                await asyncio.shield(entry.task)
            raise
        return prove_answer(await _guarded(entry.task))

    @server.tool(title="Start proving", annotations=PROVES)
    async def prove_start(file: File = None, statement: Statement = None, k: K = 8, rounds: Rounds = 0, model: Model = None,
                          endpoint: Endpoint = None) -> JobAnswer:
        """Start proving every `sorry` of a Lean file (or of `statement`) and answer at once with a job id.
        Then call prove_status(job, wait=50) until `status` is `finished` (or failed / cancelled) and read
        its `result`: each target's status, proof and how it was checked. The file is not modified; every
        attempt is recorded (run_show). Bad input and a missing model or Lean are reported here."""
        entry = await core.start(_guard(lambda: _prove_request(core, file, statement, k, rounds, model, endpoint)))
        return status_of(entry)

    @server.tool(title="Prove job status", annotations=READ_ONLY)
    async def prove_status(job: JobId, wait: Annotated[float, Field(
            description=f"Seconds to wait for the job to end before answering (0 to {MAX_WAIT:g}).", ge=0)] = 0.0) -> JobAnswer:
        """Where a prove job stands: queued / running with its progress, or finished with its `result`,
        failed with its `error`, cancelled. With `wait`, answers as soon as the job ends or after `wait`
        seconds (at most 50, inside any client's request timeout)."""
        entry = core.get(job)
        if not entry.task.done() and wait > 0:
            await asyncio.wait({entry.task}, timeout=min(wait, MAX_WAIT))
        return status_of(entry)

    @server.tool(title="Cancel a prove job", annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False,
                                                                        idempotentHint=True, openWorldHint=False))
    async def prove_cancel(job: JobId) -> JobAnswer:
        """Stop a prove job as Ctrl-C does: sampling stops, what is proved stays recorded (its `result`)."""
        entry = core.get(job)
        if not entry.task.done():
            entry.cancelled = True
            entry.job.stop()
            await asyncio.wait({entry.task}, timeout=MAX_WAIT)
        return status_of(entry)

    @server.tool(title="Show a recorded run", annotations=READ_ONLY)
    async def run_show(ref: Annotated[str, Field(description=(
            "`3`: run 3 and its targets; `3/NAME`: a target's attempts; `a42` or `3/NAME/SAMPLE`: one attempt "
            "(prompt, raw output, checked code, verdict, judge, Lean messages, turns)."))]) -> dict[str, Any]:
        """A recorded run, target or attempt from proverctl's store (every prove and check is recorded)."""
        return _guard(lambda: _read(ref))

    @server.tool(title="Attempts of a target", annotations=READ_ONLY)
    async def run_attempts(run: Annotated[int, Field(description="The run id.")],
                           target: Annotated[str, Field(description="The target's name in that run.")],
                           verdict: Annotated[Optional[str], Field(description="Only this verdict: proved, rejected, timeout or error.")] = None,
                           limit: Annotated[int, Field(description="At most this many attempts.", ge=1, le=1000)] = 50) -> AttemptsAnswer:
        """The attempts of one target of a run (each with its code, verdict, reasons and Lean's messages)."""
        def read():
            from proverctl.store.db import recorded_store

            with recorded_store() as store:
                found = store.find_target(run, target)
                if found is None:
                    raise UsageError(f"no target {target!r} in run {run}", hint=f"run_show {run} lists them")
                return store.attempts(found["id"], verdict=verdict, limit=limit)

        return {"attempts": _guard(read)}

    @server.tool(title="Provers", annotations=READ_ONLY)
    async def models_list() -> ModelsAnswer:
        """Known provers (the catalog: alias, hub repository, prompt family, Lean profile, size), the ones
        pulled into the local cache, and the sessions serving one."""
        from proverctl.inference.sessions import live_sessions
        from proverctl.models.catalog import load_catalog
        from proverctl.models.hub import list_local

        return {
            "catalog": [{"alias": e.alias, "repo_id": e.repo_id, "family": e.family, "lean_profile": e.lean_profile,
                         "parameters_b": e.parameters_b, "context_length": e.context_length} for e in load_catalog()],
            "pulled": [m.as_dict() for m in list_local()],
            "served": [{"name": r.name, "model": r.model, "endpoint": r.url, "status": status} for r, status in live_sessions()],
        }

    # Resources: the store, for clients that browse instead of calling tools.
    @server.resource("proverctl://runs", name="runs", title="Recorded runs", mime_type="application/json",
                     description="The 50 newest runs (prove, bench, check): id, kind, input, model, status, proved counts.")
    def runs_resource() -> list[dict[str, Any]]:
        return _guard(lambda: _with_store(lambda store: store.runs(limit=50)))

    @server.resource("proverctl://runs/{run}", name="run", title="A recorded run", mime_type="application/json",
                     description="One run: its request, settings and targets with their status.")
    def run_resource(run: str) -> dict[str, Any]:
        return _guard(lambda: _read(run))

    @server.resource("proverctl://attempts/{attempt}", name="attempt", title="One attempt", mime_type="application/json",
                     description="One attempt: prompt, raw output, checked code, verdict, judge, Lean messages.")
    def attempt_resource(attempt: str) -> dict[str, Any]:
        return _guard(lambda: _read(f"a{attempt.removeprefix('a')}"))

    @server.prompt(title="Prove the sorries of a file")
    def prove_file(file: str) -> str:
        """How to prove every `sorry` of a file with proverctl's tools."""
        return (f"Prove the `sorry`s of {file} with proverctl. First call lean_targets(file={file!r}) to see them. "
                f"Then call prove_start(file={file!r}) and poll prove_status(job, wait=50) until its status is finished. "
                "For each target that is not proved, call lean_goals on the file to see what is left, and try a proof "
                "yourself with lean_check. Report each theorem's status and how it was checked (only `kernel-checked` "
                "is confirmed by the kernel judge).")

    return server


def _prove_request(core: Core, file, statement, k, rounds, model, endpoint):
    if (file is None) == (statement is None):
        raise UsageError("prove: give either `file` or `statement`", hint="statement is Lean code with `sorry`")
    if k < 1:
        raise UsageError(f"k must be at least 1, not {k}", hint="k is the number of samples per target")
    return core.prove_request(input="-" if statement is not None else str(Path(file).expanduser()), input_text=statement,
                              k=k, rounds=rounds, format="quiet", model=model, endpoint=endpoint)


def _with_store(read):
    from proverctl.store.db import recorded_store

    with recorded_store() as store:
        return read(store)


def _read(ref: str) -> dict:
    from proverctl.proving.records import parse_reference, read_reference

    kind, key = parse_reference(ref)
    return _with_store(lambda store: read_reference(store, kind, key))


def _error(exc: ProverctlError) -> Exception:
    from mcp.server.mcpserver.exceptions import ToolError

    hint = f"\nhint: {exc.hint}" if getattr(exc, "hint", None) else ""
    return ToolError(f"error: {exc}{hint}")


def _guard(fn):
    try:
        return fn()
    except ProverctlError as exc:
        raise _error(exc) from None


async def _guarded(awaitable):
    try:
        return await awaitable
    except ProverctlError as exc:
        raise _error(exc) from None


# ---------------------------------------------------------------------------------------------
# Streamable HTTP on loopback, behind a bearer token


class BearerAuth:
    """ASGI middleware: every request must carry `Authorization: Bearer TOKEN` (401 otherwise)."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = b'{"error": "missing or wrong bearer token (PROVERCTL_MCP_TOKEN)"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, token: str):
    return BearerAuth(server.streamable_http_app(), token)


def serve_http(server: MCPServer, *, host: str, port: int, token: str) -> None:
    import uvicorn

    uvicorn.run(http_app(server, token), host=host, port=port, log_level="warning", lifespan="on")


def new_token(settings=None) -> tuple[str, bool]:
    """(the bearer token, whether proverctl made it): the `mcp_token` setting (PROVERCTL_MCP_TOKEN or
    config.toml), else a fresh random one (which is the only kind ever printed)."""
    import secrets

    from proverctl.settings import Settings

    given = (settings or Settings.load()).mcp_token
    return (given, False) if given else (secrets.token_urlsafe(24), True)
