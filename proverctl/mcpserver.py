"""`proverctl mcp`: the core (checks with the judge's verdict, targets, prove jobs, the attempt store,
the catalog) as an MCP server for coding agents, built on the official `mcp` SDK (2.x, MCPServer).

Tools call the core, not the CLI: `check` goes through the same verifier factory and judge as
`proverctl check`, `prove` runs a ProveJob with one recorded ProveRequest, `show`/`attempts` read the
store. One Lean verifier (REPL pool + judge) is opened on the first check and shared by every call;
prove jobs run at most `max_jobs` at a time. A call the client cancels (or a client that goes away)
stops its job the way Ctrl-C does: sampling stops, what is proved is recorded.

Transports: stdio (what Claude Code, Codex and VS Code start), and streamable HTTP on loopback behind a
bearer token (`--http`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from proverctl import __version__
from proverctl.errors import ProverctlError, UsageError

INSTRUCTIONS = """proverctl proves and checks Lean 4 theorems. `check` gives a verdict per declaration
(`judge: kernel` when the kernel judge decided, `repl` when only the REPL pre-filter ran); only
`status: proved` is a proof. `targets` lists the sorried theorems of a file or code; `prove` samples
proofs from the prover model for them and returns each target's status and proof; `show` and `attempts`
read every recorded attempt; `models` lists the known, pulled and served provers."""


class Core:
    """What the tools share: settings, the verifiers opened so far (one per verifier spec: a check or a
    prove job gets the one its own plan asks for, and records what really ran), and the prove-job slots."""

    def __init__(self, *, max_jobs: int = 1, settings=None) -> None:
        from proverctl.settings import Settings

        self.settings = settings or Settings.load()
        self.jobs = asyncio.Semaphore(max_jobs)
        self._stack = contextlib.AsyncExitStack()
        self._verifications: dict[str, Any] = {}
        self._lock = asyncio.Lock()

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

    async def close(self) -> None:
        """Close the verifiers (the end of a stdio session, or of one HTTP session: the next reopens them)."""
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        self._verifications = {}
        await stack.aclose()


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


def build_server(*, max_jobs: int = 1, settings=None) -> MCPServer:
    core = Core(max_jobs=max_jobs, settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(server: MCPServer):
        try:
            yield core
        finally:
            await core.close()

    server = MCPServer("proverctl", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING")

    @server.tool()
    async def targets(code: str | None = None, file: str | None = None) -> list[dict]:
        """The theorems whose proof contains `sorry` (what `prove` works on): name, kind, line, statement."""
        from proverctl.lean.source import Source

        text, _ = _guard(lambda: _text(code, file, "targets"))
        return [t.as_dict() for t in Source(text).targets]

    @server.tool()
    async def check(code: str | None = None, file: str | None = None, against: str | None = None) -> dict:
        """Verify Lean code (or a file) with Lean: one verdict per declaration, with `judge` (kernel or
        repl). With `against` (a trusted challenge: its statements with `sorry`), the code must prove
        exactly those statements. `proved` is true only when every declaration is proved."""
        from proverctl.proving.check import CheckJob, CheckRequest

        text, label = _guard(lambda: _text(code, file, "check"))
        challenge = {}
        if against is not None:  # a path the server can read, or the challenge's text itself
            challenge = {"against": str(Path(against).expanduser())} if Path(against).expanduser().is_file() else {"against_text": against}
        job = CheckJob(CheckRequest(text=text, label=label, **challenge), command="proverctl mcp: check", provider=core.provider,
                       settings=core.settings)
        _guard(job.prepare)
        result = await _guarded(job.run_async())
        rows = result.rows
        proved = bool(rows) and all(r["status"] == "proved" for r in rows)
        labels = {r["checked"] for r in rows}
        # The whole answer is only as checked as its weakest declaration.
        checked = (labels.pop() if len(labels) == 1 else "mixed: " + ", ".join(sorted(labels))) if proved else None
        return {"proved": proved, "checked": checked, "kernel_checked": proved and all(r["kernel_checked"] for r in rows),
                "source": label, "run": result.run_id, "declarations": rows}

    @server.tool()
    async def prove(ctx: Context, file: str | None = None, statement: str | None = None, k: int = 8, rounds: int = 0,
                    model: str | None = None, endpoint: str | None = None) -> dict:
        """Prove every `sorry` of a Lean file (or of `statement`, Lean code with `sorry`) with the prover
        model: up to `k` samples per target, each checked by Lean; `rounds` error-feedback rounds. Uses a
        running session for the model (`proverctl serve`) or `endpoint` (an OpenAI-compatible URL).
        Reports progress while it runs; returns the run id and, per target, its status and proof. The
        file is not modified. Cancelling the call stops the job (what is proved is kept)."""
        from proverctl.proving import ProveJob, ProveRequest

        if (file is None) == (statement is None):
            raise _error(UsageError("prove: give either `file` or `statement`", hint="statement is Lean code with `sorry`"))
        if k < 1:
            raise _error(UsageError(f"k must be at least 1, not {k}", hint="k is the number of samples per target"))
        values: dict[str, Any] = {"k": k, "rounds": rounds, "format": "quiet"}
        if model:
            values["model"] = model
        if endpoint:
            values["endpoint"] = endpoint
        request = ProveRequest(input="-" if statement is not None else str(Path(file).expanduser()), input_text=statement, **values)
        async with core.jobs:
            job = ProveJob(request, command="proverctl mcp: prove", provider=core.provider)
            task = asyncio.ensure_future(job.run_async())
            try:
                while not task.done():
                    await asyncio.wait({task}, timeout=1.0)
                    progress = job.snapshot()
                    if progress is not None and not task.done():
                        await ctx.report_progress(progress["proved"], progress["targets"],
                                                  f"{progress['proved']}/{progress['targets']} proved, "
                                                  f"{progress['samples_done']} samples checked, {progress['in_flight']} generating")
            except BaseException:
                job.stop()  # the client cancelled or went away: stop sampling, keep what is recorded
                with contextlib.suppress(BaseException):
                    await asyncio.shield(task)
                raise
            result = await _guarded(task)
        proved = sum(1 for r in result.rows if r["status"] == "proved")
        return {"run": result.run_id, "proved": proved, "targets": len(result.rows), "results": result.rows}

    @server.tool()
    async def show(ref: str) -> dict:
        """A recorded run (`3`: its targets), target (`3/NAME`: its attempts) or attempt (`a42` or
        `3/NAME/SAMPLE`: prompt, raw output, checked code, verdict, judge, Lean messages, turns)."""
        from proverctl.proving.records import parse_reference, read_reference
        from proverctl.store.db import recorded_store

        def read():
            kind, key = parse_reference(ref)
            with recorded_store() as store:
                return read_reference(store, kind, key)

        return _guard(read)

    @server.tool()
    async def attempts(run: int, target: str, verdict: str | None = None, limit: int = 50) -> list[dict]:
        """The attempts of one target of a run (newest store first), optionally only one verdict
        (proved, rejected, timeout, error)."""
        def read():
            from proverctl.store.db import recorded_store

            with recorded_store() as store:
                found = store.find_target(run, target)
                if found is None:
                    raise UsageError(f"no target {target!r} in run {run}", hint=f"show {run} lists them")
                return store.attempts(found["id"], verdict=verdict, limit=limit)

        return _guard(read)

    @server.tool()
    async def models() -> dict:
        """Known provers (the catalog), the ones pulled into the local cache, and the sessions serving one."""
        from proverctl.inference.sessions import live_sessions
        from proverctl.models.catalog import load_catalog
        from proverctl.models.hub import list_local

        return {
            "catalog": [{"alias": e.alias, "repo_id": e.repo_id, "family": e.family, "lean_profile": e.lean_profile,
                         "parameters_b": e.parameters_b, "context_length": e.context_length} for e in load_catalog()],
            "pulled": [m.as_dict() for m in list_local()],
            "served": [{"name": r.name, "model": r.model, "endpoint": r.url, "status": status} for r, status in live_sessions()],
        }

    return server


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


def new_token(settings=None) -> str:
    """The `mcp_token` setting (PROVERCTL_MCP_TOKEN or config.toml), else a fresh random one."""
    import secrets

    from proverctl.settings import Settings

    return (settings or Settings.load()).mcp_token or secrets.token_urlsafe(24)
