"""Checks on a kimina-lean-server fleet (`--verify-on kimina://HOST:PORT`).

kimina-lean-server (project-numina) keeps pools of Lean REPLs, one per header, behind a REST API. Its
answers are REPL answers, so its verdicts are REPL-checked as any REPL's are; the kernel judge still runs
where the plan says (here, when this machine has a trusted judge). A KiminaPool stands where the local
ReplPool stands: proverctl's checker (policy, statement check, Lean's own reading, the `#print axioms`
marker, the verdict rules) runs unchanged and sends each REPL job to the server.

Two API generations are spoken, found at start from the server's OpenAPI document:

- 2.x (since 2025-07): `POST /api/check` with `{"snippets": [{"id", "code"}], "timeout", "debug",
  "reuse", "infotree"}` -> `{"results": [{"id", "time", "error"?, "response"?, "diagnostics"?}]}`;
  the document is at `/api/openapi.json` (info.version "2.0.0").
- 1.x: `POST /verify` with `{"codes": [{"custom_id", "proof"}], "timeout", "infotree_type",
  "disable_cache"}` -> `{"results": [{"custom_id", "error", "response"}]}`; FastAPI's default document
  at `/openapi.json` (no `/api/check`).

Anything else is refused at start (an unknown version). The server splits the header (leading import
lines) itself and, in later 2.x builds, reports lines relative to the code after it; so before the
first check under a header, a probe (`theorem ... := sorry` after the imports and one comment line,
the layout of every snippet) measures where that server puts line 1, and every answer's positions are moved to the REPL's own (relative to the
checked code), which the marker rules rely on.

Errors as the server gives them: a snippet that timed out comes back in its result ("... timed out
...": a timeout verdict); 429 (no REPL free) and 5xx are retried with backoff; a 500 from a batch of
several is retried snippet by snippet (one failing snippet fails its whole request there); 401/403 is a
one-line error naming LEAN_SERVER_API_KEY. Concurrent checks are sent together, up to `batch` per request.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from urllib.parse import urlsplit

import aiohttp

from proverctl.errors import EnvironmentMissing, UsageError, VerifierError
from proverctl.lean.pool import CheckJob, CheckOutcome
from proverctl.lean.protocol import Response
from proverctl.lean.source import join_code

# The line after the imports in every snippet: the server's header (its leading blank and import lines)
# then ends at the imports whatever the preamble starts with, and the probe measures the same layout.
SEPARATOR = "-- checked through proverctl\n"
PROBE = "theorem proverctl_kimina_line_probe : True := sorry\n"
RETRY_STATUS = {429, 500, 502, 503, 504}
KNOWN = {"2": "/api/check", "1": "/verify"}


def parse_address(value: str) -> str | None:
    """`kimina://HOST:PORT` (http) or `kiminas://HOST[:PORT]` (https) -> the base URL; None for other
    schemes (Ray's)."""
    if not value.startswith(("kimina://", "kiminas://")):
        return None
    parts = urlsplit(value)
    if not parts.hostname or parts.path not in ("", "/"):
        raise UsageError(f"bad --verify-on {value!r}", hint="use kimina://HOST:PORT (or kiminas://HOST:PORT for https)")
    scheme = "https" if parts.scheme == "kiminas" else "http"
    port = f":{parts.port}" if parts.port else ""
    return f"{scheme}://{parts.hostname}{port}"


class KiminaPool:
    """The ReplPool interface (check, readers, retire, size) over a kimina-lean-server."""

    def __init__(self, url: str, *, concurrency: int = 16, batch: int = 8, api_key: str | None = None,
                 reader_required: bool = True, retries: int = 4, backoff: float = 0.5) -> None:
        self.url = url.rstrip("/")
        self.concurrency = max(1, concurrency)
        self.batch = max(1, batch)
        self.api_key = api_key if api_key is not None else (os.environ.get("LEAN_SERVER_API_KEY") or os.environ.get("LEANSERVER_API_KEY"))
        self.retries, self.backoff = retries, backoff
        self.readers: dict[tuple[str, str], str] = {}
        self.reader_required = reader_required
        self.reader_notes: list[str] = []
        self.version: str | None = None  # the server's API version ("2.0.0", "1.x")
        self.title: str | None = None
        self.checks = 0
        self.requests = 0
        self._route: str | None = None
        self._http: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(self.concurrency)
        self._shift: dict[str, int] = {}  # imports -> lines the server drops from its positions
        self._probing: dict[str, asyncio.Future] = {}
        self._pending: list[tuple[str, str, float, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    @property
    def size(self) -> int:
        return self.concurrency

    async def __aenter__(self) -> "KiminaPool":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> None:
        """Reach the server and find which API it speaks (an unknown one is refused)."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._http = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        for path in ("/api/openapi.json", "/openapi.json"):
            document = await self._get(path)
            if not isinstance(document, dict):
                continue
            paths = document.get("paths") or {}
            info = document.get("info") or {}
            version = str(info.get("version") or "")
            if "/api/check" in paths and version.split(".")[0] in KNOWN:
                self._route, self.version = "/api/check", version
            elif "/verify" in paths and "/api/check" not in paths and path == "/openapi.json":
                self._route, self.version = "/verify", "1.x"
            else:
                continue
            self.title = info.get("title")
            return
        raise EnvironmentMissing(
            f"{self.url} does not speak a kimina-lean-server API proverctl knows (2.x: /api/check, 1.x: /verify)",
            hint="check the address and the server's version (its /api/openapi.json or /openapi.json)")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def retire(self, index: int) -> None:
        """Nothing to retire: the server's REPLs are its own (a check that answered wrongly is refused)."""

    async def check(self, job: CheckJob) -> CheckOutcome:
        if job.goal_tactic is not None:
            raise UsageError("this check needs proof states (the local REPL pool)", hint="leave out --verify-on for it")
        async with self._slots:
            started = time.monotonic()
            shift = await self._line_shift(job.imports, job.timeout)
            before = _before_code(job.imports, job.preamble)
            result = await self._submit(before + job.code, job.timeout)
            self.checks += 1
            return self._outcome(result, before.count("\n") - shift, time.monotonic() - started)

    # -- positions --------------------------------------------------------------------------------

    async def _line_shift(self, imports: str, timeout: float) -> int:
        """How many lines this server drops from the positions it reports under this header (0: none)."""
        if imports in self._shift:
            return self._shift[imports]
        waiting = self._probing.get(imports)
        if waiting is None:
            waiting = self._probing[imports] = asyncio.get_running_loop().create_future()
            try:
                before = _before_code(imports, "")
                result = await self._submit(before + PROBE, max(timeout, 60.0))
                response = result.get("response")
                lines = [m["pos"]["line"] for m in (response or {}).get("messages") or [] if isinstance(m.get("pos"), dict)]
                if result.get("error") or not lines:
                    raise VerifierError(f"the kimina server at {self.url} did not check a probe under this header: "
                                        f"{result.get('error') or 'no message came back'}",
                                        hint="see the server's log; `import` lines it cannot load fail there")
                shift = before.count("\n") + 1 - min(lines)
                if shift < 0:
                    raise VerifierError(f"the kimina server at {self.url} reports positions proverctl cannot place (line {min(lines)})")
                self._shift[imports] = shift
                waiting.set_result(shift)
            except BaseException as exc:
                self._probing.pop(imports, None)
                waiting.set_exception(exc)
                waiting.exception()
                raise
        return await waiting

    def _outcome(self, result: dict, drop: int, seconds: float) -> CheckOutcome:
        """The REPL answer in a result, its positions `drop` lines up (relative to the checked code, as
        the REPL gives them after the header's env); messages above that line are the header's."""
        error = result.get("error")
        if error:
            status = "timeout" if "timed out" in error else "error"
            return CheckOutcome(status, None, f"kimina: {error}", seconds)
        raw = result.get("response")
        if not isinstance(raw, dict):
            return CheckOutcome("error", None, "kimina: the server answered no REPL response", seconds)
        if "message" in raw and "messages" not in raw and "env" not in raw:  # the REPL's own complaint
            return CheckOutcome("error", None, f"kimina: the REPL said {raw['message']}", seconds)
        moved = dict(raw)
        header_messages = []
        kept = []
        for message in raw.get("messages") or []:
            message = _moved(message, drop)
            line = (message.get("pos") or {}).get("line", 1)
            if line < 1:
                if message.get("severity") == "error":
                    header_messages.append(message)
                continue
            kept.append(message)
        moved["messages"] = kept
        moved["sorries"] = [_moved(s, drop) for s in raw.get("sorries") or []]
        moved.pop("time", None)
        try:
            response = Response.parse(moved)
            header = Response.parse({"messages": header_messages}).messages
        except ValueError as exc:
            return CheckOutcome("error", None, f"kimina: {exc}", seconds)
        return CheckOutcome("ok", response, "", seconds, header_messages=list(header))

    # -- requests ---------------------------------------------------------------------------------

    async def _submit(self, code: str, timeout: float) -> dict:
        """One snippet's result, sent in a batch with whatever else is waiting."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((uuid.uuid4().hex, code, timeout, future))
        if len(self._pending) >= self.batch:
            self._send_pending()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_soon())
        return await future

    async def _flush_soon(self) -> None:
        await asyncio.sleep(0.005)  # checks started together go in one request
        self._send_pending()

    def _send_pending(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            asyncio.ensure_future(self._send(batch))

    async def _send(self, batch: list) -> None:
        try:
            results = await self._post(batch)
        except _BatchFailed:
            if len(batch) == 1:
                results = None
            else:  # one bad snippet fails the whole request there: each on its own
                await asyncio.gather(*(self._send([item]) for item in batch))
                return
        except BaseException as exc:  # noqa: BLE001 - every waiting check gets it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for ident, _, _, future in batch:
            if not future.done():
                found = (results or {}).get(ident)
                future.set_result(found if found is not None else {"error": "the server answered 500 for this snippet"})

    async def _post(self, batch: list) -> dict[str, dict]:
        timeout = max(item[2] for item in batch)
        if self._route == "/api/check":
            body = {"snippets": [{"id": ident, "code": code} for ident, code, _, _ in batch], "timeout": int(timeout + 0.999),
                    "debug": False, "reuse": True}
        else:
            body = {"codes": [{"custom_id": ident, "proof": code} for ident, code, _, _ in batch], "timeout": int(timeout + 0.999),
                    "disable_cache": False}
        delay = self.backoff
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                async with self._http.post(self.url + self._route, json=body,
                                           timeout=aiohttp.ClientTimeout(total=timeout * max(1, len(batch)) + 60)) as reply:
                    status, raw = reply.status, await reply.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if attempt == self.retries:
                    raise VerifierError(f"cannot reach the kimina server at {self.url}: {type(exc).__name__}",
                                        hint="is it running? committed attempts are kept") from exc
            else:
                if status in (401, 403):
                    raise VerifierError(f"the kimina server at {self.url} refused the API key ({status})",
                                        hint="set LEAN_SERVER_API_KEY to the server's key")
                if status == 500 and len(batch) > 1:
                    raise _BatchFailed()
                if status < 400:
                    try:
                        data = json.loads(raw)
                        return {str(r.get("id", r.get("custom_id"))): r for r in data["results"]}
                    except (ValueError, KeyError, TypeError, AttributeError):
                        raise VerifierError(f"the kimina server at {self.url} answered something that is not its API") from None
                if status not in RETRY_STATUS:
                    detail = raw.decode("utf-8", "replace").strip()[:200]
                    raise VerifierError(f"the kimina server at {self.url} answered {status}: {detail}",
                                        hint="a bug in proverctl's request or a server version it does not know")
                if attempt == self.retries:
                    if status == 500:
                        raise _BatchFailed()
                    raise VerifierError(f"the kimina server at {self.url} kept answering {status} (no REPL free?)",
                                        hint="raise its LEAN_SERVER_MAX_REPLS or lower --workers")
            await asyncio.sleep(delay * (1 + random.random() * 0.25))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, path: str):
        try:
            async with self._http.get(self.url + path, timeout=aiohttp.ClientTimeout(total=15)) as reply:
                if reply.status in (401, 403):
                    raise VerifierError(f"the kimina server at {self.url} refused the API key ({reply.status})",
                                        hint="set LEAN_SERVER_API_KEY to the server's key")
                if reply.status != 200:
                    return None
                return json.loads(await reply.read())
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise EnvironmentMissing(f"cannot reach the kimina server at {self.url}: {type(exc).__name__}",
                                     hint="start it (kimina-lean-server) or check the address") from exc
        except ValueError:
            return None


class _BatchFailed(Exception):
    """The server answered 500 for a request (one of its snippets failed it)."""


def _before_code(imports: str, preamble: str) -> str:
    """What a snippet holds before the checked code: the imports, the separator line, the preamble, each
    on lines of its own (the local REPL gets them as separate commands; here they are one text)."""
    before = join_code(imports, SEPARATOR, preamble)
    return before if before.endswith("\n") else before + "\n"


def _moved(item: dict, drop: int) -> dict:
    """A message or sorry with its positions `drop` lines up."""
    out = dict(item)
    for key in ("pos", "endPos"):
        if isinstance(out.get(key), dict) and isinstance(out[key].get("line"), int):
            out[key] = {**out[key], "line": out[key]["line"] - drop}
    return out
