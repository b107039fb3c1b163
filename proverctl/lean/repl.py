"""One Lean REPL process, owned by one object: start it in its own session with an address-space
cap, send framed requests, read framed responses with a wall-clock timeout, kill the whole process
group on timeout or close, keep the tail of its stderr for error reports.

The REPL has no timeout and leaks memory, so a check that runs too long kills the process: the
caller (the pool) starts a fresh one. A dead REPL is an exception (`ReplCrashed`), never a verdict.
"""

from __future__ import annotations

import asyncio
import collections
import os
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


class ResponseFramer:
    """Cuts a REPL's stdout into its responses, whatever pieces the bytes come in: JSON lines up to the
    blank line that ends each. A REPL that leaves out the blank line (builds without the flush fix,
    stand-ins) is still answered: a line that closes the top-level object (`}` at column 0, or a whole
    one-line object) ends the response when the text parses. A blank line is one of ASCII blanks only.
    The ends are found in the bytes by one pattern (no line-by-line loop: a reading's answer is a few
    hundred lines). Each response is its bytes and, when it was parsed here, its JSON (None otherwise)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._begin = -1  # where the current response's first line starts, once it is there
        self._searched = 0  # where the search for its end goes on

    def feed(self, chunk: bytes) -> list[tuple[bytes, Any]]:
        """The responses `chunk` completes (usually none or one). What stays buffered after them may have
        passed MAX_RESPONSE_BYTES without ending: `overflow` says so, and the output is garbage from there."""
        self.buffer += chunk
        out = []
        while (response := self._next()) is not None:
            out.append(response)
        return out

    @property
    def overflow(self) -> ReplProtocolError | None:
        """The error when the answer being read has passed MAX_RESPONSE_BYTES, else None."""
        if len(self.buffer) > MAX_RESPONSE_BYTES:
            return ReplProtocolError(f"the REPL printed over {MAX_RESPONSE_BYTES >> 20} MiB without ending its answer")
        return None

    def finish(self) -> list[tuple[bytes, Any]]:
        """The output ended: the responses its last bytes complete (its last line needs no newline; an
        ended one is no blank line). Anything left after them is an answer cut short."""
        if self.buffer and not self.buffer.endswith(b"\n"):
            self.buffer += b"\n"
        out = []
        while (response := self._next()) is not None:
            out.append(response)
        return out

    def _next(self) -> tuple[bytes, Any] | None:
        buffer = self.buffer
        if self._begin < 0:
            content = _CONTENT.search(buffer)
            first_end = buffer.find(b"\n", content.start()) if content else -1
            if first_end < 0:
                return None
            self._begin, self._searched = content.start(), first_end
            if buffer[self._begin] == 0x7B and first_end - self._begin > 1:  # "{" and more: a whole one-line object?
                line = bytes(buffer[self._begin:first_end]).rstrip()
                if line.endswith(b"}"):
                    data = _whole_text(line)
                    if data is not None:
                        return self._cut(first_end + 1, line, data)
        # An end starts at a newline: each is found by `find` (memchr), and the pattern is tried there only
        # (its search went through every byte of an answer's long lines, a reading's payload is one).
        at = buffer.find(b"\n", self._searched)
        while at >= 0:
            end = _RESPONSE_END.match(buffer, at)
            if end is None:
                at = buffer.find(b"\n", at + 1)
                continue
            if end.group("blank") is not None:
                return self._cut(end.end(), bytes(buffer[self._begin:end.start()]), None)
            raw = bytes(buffer[self._begin:end.end()])
            data = _whole_text(raw)
            if data is not None:
                return self._cut(end.end(), raw, data)
            self._searched = at = end.end() - 1  # not the end: the `}` line's newline may come before a blank line
        self._searched = max(self._searched, buffer.rfind(b"\n"))  # only an end that starts at the last newline can still come
        return None

    def _cut(self, after: int, raw: bytes, data: Any) -> tuple[bytes, Any]:
        del self.buffer[:after]
        self._begin, self._searched = -1, 0
        return raw, data


class _Stdout(asyncio.Protocol):
    """The REPL's stdout, read by the event loop straight into a ResponseFramer: a response is handed to
    the waiting request in the step that reads its last bytes (asyncio's subprocess transport calls its
    protocol in a step of its own, and a stream reader buffers, wakes its reader and is read from).

    A REPL answers one request at a time, so an answer that no request waits for is one too many (a
    candidate's thread printing, a forged answer): reading pauses while one is queued, the REPL blocks on
    a full pipe, and the next request takes it (where the pool's marker check sees it for what it is).
    Memory stays bounded by the one answer being read (MAX_RESPONSE_BYTES) and the answers one read cut."""

    def __init__(self) -> None:
        self.framer = ResponseFramer()
        self.answers: collections.deque[tuple[bytes, Any]] = collections.deque()
        self.ended = False
        self.garbage: ReplProtocolError | None = None
        self.waiter: asyncio.Future | None = None
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.garbage is not None:
            return
        self.answers.extend(self.framer.feed(data))
        self.garbage = self.framer.overflow
        waiting = self.waiter is not None and not self.waiter.done()
        if len(self.answers) > waiting and self.transport is not None:
            self.transport.pause_reading()  # an answer nobody asked for yet: no more until it is taken
        if self.answers or self.garbage is not None:
            self._wake()

    def take(self) -> tuple[bytes, Any]:
        """The oldest queued answer; reading goes on once none is left."""
        answer = self.answers.popleft()
        if not self.answers and self.transport is not None:
            self.transport.resume_reading()  # a no-op unless paused (or closing)
        return answer

    def eof_received(self) -> None:
        self._end()

    def connection_lost(self, exc) -> None:
        self._end()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            if self.garbage is None:
                self.answers.extend(self.framer.finish())
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


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
        self.owed = 0  # answers still to come for requests whose callers gave up (cancelled): see settle()
        self.started_at = 0.0
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._stderr_task: asyncio.Task | None = None
        self._stdout = _Stdout()  # what stdout gave beyond the last response waits there (a REPL answers one request at a time)

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
        read_end, write_end = os.pipe()  # stdout: read by our own protocol (_Stdout), not asyncio's stream
        try:
            # Its own session and process group: one killpg ends lake and the REPL under it.
            self.proc = await processes.start(launch, memory_mb=self.memory_mb, stdout=write_end, limit=MAX_RESPONSE_BYTES)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            os.close(read_end)
            raise ReplStartError(f"cannot start the Lean REPL `{' '.join(self.command)}`: {exc}") from exc
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the child's copy is the only one: its exit is our end of file
        self._stdout = _Stdout()
        pipe = os.fdopen(read_end, "rb", buffering=0)
        try:
            await asyncio.get_running_loop().connect_read_pipe(lambda: self._stdout, pipe)
        except BaseException:  # cancelled or refused after the spawn: no half-started REPL stays behind
            pipe.close()  # (closed already when asyncio made its transport)
            await asyncio.shield(processes.end_process(self.proc))
            raise
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
        assert self.proc and self.proc.stdin
        self.uses += 1
        try:
            self.proc.stdin.write(encode_request(request))  # whole in the transport's buffer: it goes out even if we are cancelled
            await self.proc.stdin.drain()
            raw, data = await self._next_response(timeout)
        except (BrokenPipeError, ConnectionResetError) as exc:
            await self.kill()
            raise ReplCrashed(f"the REPL closed its input: {exc}", self.stderr_tail()) from exc
        except asyncio.TimeoutError:
            await self.kill()
            raise ReplTimeout(f"no answer within {timeout:g} s", self.stderr_tail()) from None
        except asyncio.CancelledError:
            self.owed += 1  # the REPL will still answer it: the next request must not take that answer for its own
            raise
        try:
            return Response.parse(decode_json(raw) if data is None else data)
        except ValueError as exc:
            await self.kill()
            raise ReplProtocolError(f"the REPL printed something that is not a response: {raw[:200].decode('utf-8', 'replace')!r}",
                                    self.stderr_tail()) from exc

    async def settle(self, timeout: float) -> bool:
        """Read and drop the answers owed to requests whose callers were cancelled (an early stop, Ctrl-C),
        each within `timeout`, so the next request reads its own answer and the process (with its imported
        headers) is kept. False when the process was ended instead: it did not answer in time, its output
        was not answers, or it died."""
        while self.owed:
            try:
                await self._next_response(timeout)
            except asyncio.TimeoutError:
                await self.kill()
                return False
            except ReplError:
                return False
            self.owed -= 1
        return True

    async def _next_response(self, timeout: float) -> tuple[bytes, Any]:
        """The next response on stdout (see ResponseFramer), waiting up to `timeout` seconds for it (one
        timer, no task or timeout scope around the wait)."""
        stdout = self._stdout
        if not stdout.answers and stdout.garbage is None and not stdout.ended:
            loop = asyncio.get_running_loop()
            waiter = stdout.waiter = loop.create_future()
            timer = loop.call_at(loop.time() + timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                stdout.waiter = None
        if stdout.answers:
            return stdout.take()
        if stdout.garbage is not None:
            await self.kill()
            raise ReplProtocolError(str(stdout.garbage), self.stderr_tail())
        await self._reap()
        detail = self.stderr_tail() or "no output on stderr"
        raise ReplCrashed(f"the REPL exited (code {self.proc.returncode if self.proc else None}): {detail.splitlines()[-1] if detail else ''}",
                          detail)

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
        if self._stdout.transport is not None:
            self._stdout.transport.close()

    async def close(self) -> None:
        await self.kill()


def _whole_text(raw: bytes) -> Any:
    """The JSON value in `raw`, or None while it is not a whole JSON text (the answer goes on)."""
    try:
        return decode_json(raw)
    except ValueError:
        return None

