"""One Lean REPL process, owned by one object: start it in its own session with an address-space
cap, send framed requests, read framed responses with a wall-clock timeout, kill the whole process
group on timeout or close, keep the tail of its stderr for error reports.

The REPL has no timeout and leaks memory, so a check that runs too long kills the process: the
caller (the pool) starts a fresh one. A dead REPL is an exception (`ReplCrashed`), never a verdict.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from pathlib import Path
from typing import Any

from proverctl import processes
from proverctl.lean.protocol import Request, Response, decode_json, encode_request

# The largest response we accept (a whole-file infotree can be large; anything bigger is garbage).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# Where a response can end, at the newline that ends one of its lines: a blank line follows (the REPL's
# framing), or the next line is a `}` at column 0 that may close the top-level object.
_RESPONSE_END = re.compile(rb"\n(?:(?P<blank>[ \t\r\x0b\x0c]*\n)|\}[ \t\r\x0b\x0c]*\n)")
_CONTENT = re.compile(rb"[^ \t\r\n\x0b\x0c]")
# asyncio.timeout (3.11) bounds a read without the task asyncio.wait_for wraps each one in.
_deadline = getattr(asyncio, "timeout", None)


class ReplError(Exception):
    """The REPL process failed (not a verdict about a proof)."""

    def __init__(self, message: str, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.stderr_tail = stderr_tail


class ReplTimeout(ReplError):
    pass


class ReplCrashed(ReplError):
    pass


class ReplProtocolError(ReplError):
    pass


class ReplStartError(ReplError):
    """The REPL command cannot be started at all (not found, not executable)."""


class ReplProcess:
    """A running REPL. Use `await start()`, `await request(...)`, `await close()`."""

    def __init__(
        self,
        command: list[str],
        *,
        cwd: Path | None = None,
        memory_mb: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.cwd = cwd
        self.memory_mb = memory_mb
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.uses = 0
        self.started_at = 0.0
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._stderr_task: asyncio.Task | None = None
        self._pending = b""  # what stdout gave beyond the last response (a REPL answers one request at a time)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    async def start(self) -> None:
        from proverctl.lean.sandbox import Launch

        launch = Launch(list(self.command), self.env or {}, str(self.cwd) if self.cwd else None)
        try:
            # Its own session and process group: one killpg ends lake and the REPL under it.
            self.proc = await processes.start(launch, memory_mb=self.memory_mb, limit=MAX_RESPONSE_BYTES)
            self._pending = b""
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise ReplStartError(f"cannot start the Lean REPL `{' '.join(self.command)}`: {exc}") from exc
        self.started_at = time.monotonic()
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        try:
            while True:
                line = await self.proc.stderr.readline()
                if not line:
                    return
                self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())
        except (asyncio.CancelledError, ConnectionError):
            return

    async def request(self, request: "Request | dict[str, Any]", timeout: float) -> Response:
        """Send one request and wait for its response; kills the process on timeout or garbage."""
        if not self.alive:
            raise ReplCrashed("the REPL is not running", self.stderr_tail())
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.uses += 1
        try:
            self.proc.stdin.write(encode_request(request))
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            await self.kill()
            raise ReplCrashed(f"the REPL closed its input: {exc}", self.stderr_tail()) from exc
        try:
            if _deadline is not None:
                async with _deadline(timeout):
                    raw, data = await self._read_response()
            else:
                raw, data = await asyncio.wait_for(self._read_response(), timeout)
        except asyncio.TimeoutError:
            await self.kill()
            raise ReplTimeout(f"no answer within {timeout:g} s", self.stderr_tail()) from None
        try:
            return Response.parse(decode_json(raw) if data is None else data)
        except ValueError as exc:
            await self.kill()
            raise ReplProtocolError(f"the REPL printed something that is not a response: {raw[:200].decode('utf-8', 'replace')!r}",
                                    self.stderr_tail()) from exc

    async def _read_response(self) -> tuple[bytes, Any]:
        """One response: JSON lines up to the blank line that ends it. A REPL that leaves out the blank
        line (builds without the flush fix, stand-ins) is still answered: a line that closes the top-level
        object (`}` at column 0, or a whole one-line object) ends the response when the text parses.
        Returns the response's bytes and, when it was parsed here, its JSON (None otherwise). stdout is
        read in chunks, and the ends are found in the bytes by one pattern (no line-by-line loop: a
        reading's answer is a few hundred lines). A blank line is one of ASCII blanks only."""
        assert self.proc and self.proc.stdout
        buffer, ended = bytearray(self._pending), False
        self._pending = b""
        begin = -1  # where the response's first line starts, once it is there
        searched = 0  # where the search for its end goes on
        while True:
            if begin < 0:
                content = _CONTENT.search(buffer)
                first_end = buffer.find(b"\n", content.start()) if content else -1
                if first_end >= 0:
                    begin, searched = content.start(), first_end
                    line = bytes(buffer[begin:first_end]).rstrip()
                    if line.startswith(b"{") and line.endswith(b"}"):  # a whole one-line object
                        data = _whole_text(line)
                        if data is not None:
                            self._pending = bytes(buffer[first_end + 1:])
                            return line, data
            if begin >= 0:
                while (end := _RESPONSE_END.search(buffer, searched)) is not None:
                    if end.group("blank") is not None:
                        self._pending = bytes(buffer[end.end():])
                        return bytes(buffer[begin:end.start()]), None
                    raw = bytes(buffer[begin:end.end()])
                    data = _whole_text(raw)
                    if data is not None:
                        self._pending = bytes(buffer[end.end():])
                        return raw, data
                    searched = end.end() - 1  # not the end: the `}` line's newline may come before a blank line
                searched = max(searched, buffer.rfind(b"\n"))  # only an end that starts at the last newline can still come
            if ended:
                await self._reap()
                detail = self.stderr_tail() or "no output on stderr"
                raise ReplCrashed(f"the REPL exited (code {self.proc.returncode}): {detail.splitlines()[-1] if detail else ''}", detail)
            if len(buffer) > MAX_RESPONSE_BYTES:
                await self.kill()
                raise ReplProtocolError(f"the REPL printed over {MAX_RESPONSE_BYTES >> 20} MiB without ending its answer", self.stderr_tail())
            chunk = await self.proc.stdout.read(1 << 16)
            if chunk:
                buffer += chunk
            else:
                ended = True
                if buffer and not buffer.endswith(b"\n"):
                    buffer += b"\n"  # the last line, without its newline, is a line too (an ended one is no blank line)

    async def _reap(self) -> None:
        if self.proc is None:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except asyncio.TimeoutError:
            await self.kill()
        if self._stderr_task:
            try:
                await asyncio.wait_for(self._stderr_task, 1)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass

    async def kill(self) -> None:
        """SIGKILL the whole process group, wait until every member is gone, reap the leader."""
        if self.proc is None:
            return
        # Children of the leader (lake's REPL under `lake exe`) die too; none outlives us.
        await processes.end_process(self.proc)
        if self._stderr_task and not self._stderr_task.done():
            self._stderr_task.cancel()
            try:
                await self._stderr_task
            except (asyncio.CancelledError, Exception):
                pass
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.close()

    async def close(self) -> None:
        await self.kill()


def _whole_text(raw: bytes) -> Any:
    """The JSON value in `raw`, or None while it is not a whole JSON text (the answer goes on)."""
    try:
        return decode_json(raw)
    except ValueError:
        return None

