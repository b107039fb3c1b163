"""A pool of Lean REPL workers with header reuse.

Each worker owns one REPL process. Importing Mathlib takes 10-60 s, so a worker sends a header's
`import` block once (`{"cmd": imports}` -> env A) and the rest of the header once on top of it
(`{"cmd": preamble, "env": A}` -> env B), then every candidate with `"env": B`. Envs are cached per
worker (a few headers each, least recently used dropped). A check that runs past its wall timeout
kills the worker's process group; a crash, EOF, garbage or "uncaught exception" does the same; the
next job starts a fresh process. Workers are recycled after `max_uses` checks (the REPL leaks memory).
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proverctl.lean.protocol import CommandRequest, Response, TacticRequest
from proverctl.lean.repl import ReplError, ReplProcess, ReplStartError, ReplTimeout
from proverctl.lean.sandbox import Sandbox

HEADER_CACHE = 8
# A header that keeps failing this many times in a row means the setup is broken, not the proof.
MAX_CONSECUTIVE_START_FAILURES = 3


@dataclass(frozen=True)
class CheckJob:
    """What to check: `imports` (sent without env), `preamble` (on top of it), then `code`."""

    imports: str
    preamble: str
    code: str
    timeout: float = 60.0
    # Run this tactic on the proof state of each `sorry` the code leaves, on the same REPL (proof states
    # live in one process): decomposition asks `extract_goal *` for each hole's standalone statement.
    goal_tactic: str | None = None

    @property
    def header_key(self) -> tuple[str, str]:
        return (self.imports, self.preamble)


@dataclass
class CheckOutcome:
    """The REPL's response to `code`, or why there is none (`timeout` / `error`)."""

    status: str  # "ok" | "timeout" | "error"
    response: Response | None = None
    detail: str = ""
    seconds: float = 0.0
    header_messages: list = field(default_factory=list)
    worker: int | None = None
    goal_answers: list = field(default_factory=list)  # with `goal_tactic`: one Response (or None) per sorry, in order


def default_workers(memory_mb: int) -> int:
    """min(cores - 1, RAM / cap), at least 1."""
    try:
        import psutil

        ram_mb = psutil.virtual_memory().total // (1024 * 1024)
    except Exception:  # pragma: no cover - psutil is a dependency
        ram_mb = 8192
    cores = os.cpu_count() or 2
    return max(1, min(cores - 1, ram_mb // max(memory_mb, 1)))


class _Worker:
    def __init__(self, pool: "ReplPool", index: int) -> None:
        self.pool = pool
        self.index = index
        self.repl: ReplProcess | None = None
        self.envs: collections.OrderedDict[Any, tuple[int, list]] = collections.OrderedDict()  # header -> (env, its errors)
        self.start_failures = 0
        self.served = 0  # checks served by the current process
        self.tmpdir: Path | None = None  # the sandbox's writable dir

    async def _fresh(self) -> ReplProcess:
        if self.repl is not None:
            await self.repl.close()
        self.envs.clear()
        self.served = 0
        if self.tmpdir is None:
            self.tmpdir = Path(tempfile.mkdtemp(prefix=f"proverctl-repl{self.index}-"))
        # The REPL never sees proverctl's environment (tokens, keys): an allow-list, sandboxed or not; its
        # one writable place is its own temp dir.
        launch = self.pool.sandbox.launch(self.pool.command, cwd=self.pool.cwd, tmpdir=self.tmpdir)
        env = self.pool.env if self.pool.env is not None else launch.env
        self.repl = ReplProcess(launch.argv, cwd=Path(launch.cwd) if launch.cwd else None, memory_mb=self.pool.memory_mb, env=env)
        await self.repl.start()
        self.pool.started += 1
        return self.repl

    async def _env_for(self, job: CheckJob) -> tuple[int, list]:
        """The env holding `job`'s header and the header's errors, building (and caching) it if needed;
        the errors are remembered with the env, so every check on a broken header reports them."""
        assert self.repl is not None
        base_key = ("imports", job.imports)
        if base_key not in self.envs:
            response = await self._header_request(CommandRequest(job.imports))
            self._remember(base_key, response.env, list(response.errors))
        self.envs.move_to_end(base_key)
        base_env, base_errors = self.envs[base_key]
        if not job.preamble.strip():
            return base_env, list(base_errors)
        key = ("preamble", job.header_key)
        if key not in self.envs:
            response = await self._header_request(CommandRequest(job.preamble, base_env))
            self._remember(key, response.env, list(base_errors) + list(response.errors))
        self.envs.move_to_end(key)
        env, errors = self.envs[key]
        return env, list(errors)

    async def _header_request(self, request: CommandRequest) -> Response:
        """An import or preamble step, bounded by the pool's import timeout (Mathlib takes 10-60 s)."""
        assert self.repl is not None
        self.pool.header_requests += 1
        try:
            response = await self.repl.request(request, self.pool.header_timeout)
        except ReplTimeout as exc:
            # Not the candidate's fault: an infrastructure error, never a `timeout` verdict.
            raise ReplError(f"the header (imports) did not load: {exc} (the import timeout; raise PROVERCTL_IMPORT_TIMEOUT)",
                            exc.stderr_tail) from None
        if response.error or response.env is None:
            raise ReplError(f"the REPL refused the header: {response.error or 'no env in its answer'}")
        return response

    def _remember(self, key: Any, env: int | None, errors: list) -> None:
        assert env is not None
        self.envs[key] = (env, errors)
        while len(self.envs) > HEADER_CACHE:
            self.envs.popitem(last=False)

    async def run(self, job: CheckJob) -> CheckOutcome:
        if self.repl is not None and self.repl.owed:
            await self.repl.settle(job.timeout)  # a cancelled check's answer is read off first (or the process ends)
        start = time.monotonic()
        # Every wait is bounded: each header step by the import timeout, the candidate by the job's.
        try:
            if self.repl is None or not self.repl.alive or self.served >= self.pool.max_uses:
                await self._fresh()
            env, header_errors = await self._env_for(job)
            request = CommandRequest(job.code, env, gc=self.pool.gc)
            self.served += 1
            response = await self.repl.request(request, job.timeout)
            self.start_failures = 0
            if response.error:
                await self._drop()
                return CheckOutcome("error", response, f"REPL: {response.error}", time.monotonic() - start, worker=self.index)
            answers = []
            if job.goal_tactic:
                for sorry in response.sorries:
                    answer = None
                    if sorry.proof_state is not None:
                        answer = await self.repl.request(TacticRequest(job.goal_tactic, sorry.proof_state), job.timeout)
                    answers.append(answer)
            return CheckOutcome("ok", response, "", time.monotonic() - start, header_errors, self.index, answers)
        except ReplStartError:
            raise
        except ReplTimeout as exc:
            await self._drop()
            return CheckOutcome("timeout", None, str(exc), time.monotonic() - start, worker=self.index)
        except ReplError as exc:
            await self._drop()
            self.start_failures += 1
            self.pool.crashes += 1
            detail = str(exc)
            tail = exc.stderr_tail.strip().splitlines()
            if tail and tail[-1] not in detail:
                detail += f" | stderr: {tail[-1]}"
            return CheckOutcome("error", None, detail, time.monotonic() - start, worker=self.index)

    async def _drop(self) -> None:
        if self.repl is not None:
            await self.repl.close()
        self.repl = None
        self.envs.clear()

    async def close(self) -> None:
        await self._drop()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


class ReplPool:
    """Run CheckJobs on up to `workers` REPL processes. Use as `async with ReplPool(...) as pool`."""

    def __init__(
        self,
        command: list[str],
        *,
        cwd: Path | None = None,
        workers: int = 1,
        memory_mb: int | None = 8192,
        max_uses: int = 200,
        gc: bool = False,
        header_timeout: float = 300.0,
        env: dict[str, str] | None = None,
        sandbox: "Sandbox | str" = "none",
        reader_required: bool = True,
    ) -> None:
        if not command:
            raise ValueError("empty REPL command")
        self.command = command
        self.cwd = cwd
        self.memory_mb = memory_mb
        self.max_uses = max_uses
        self.gc = gc
        self.header_timeout = header_timeout
        self.env = env
        # proverctl.lean.sandbox.Sandbox (resolved and confirmed by the verifier factory); a backend name is
        # taken as that backend, unconfirmed.
        self.sandbox = sandbox if isinstance(sandbox, Sandbox) else Sandbox(sandbox)
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers = [_Worker(self, i) for i in range(max(1, workers))]
        for worker in self._workers:
            self._idle.put_nowait(worker)
        self.started = 0
        self.crashes = 0
        self.header_requests = 0
        self.checks = 0
        self.retired = 0
        # Where Lean's own reader runs per header (proverctl.lean.checker.lean_reading), and what to tell
        # the user about headers it cannot read.
        self.readers: dict[tuple[str, str], str] = {}
        self.reader_required = reader_required  # a header Lean's reader cannot read refuses its candidates
        self.reader_notes: list[str] = []

    @property
    def size(self) -> int:
        return len(self._workers)

    async def __aenter__(self) -> "ReplPool":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def check(self, job: CheckJob) -> CheckOutcome:
        """Run one job on the next free worker. Raises ReplStartError if the REPL cannot start."""
        worker = await self._idle.get()
        try:
            outcome = await worker.run(job)
            self.checks += 1
            if worker.start_failures >= MAX_CONSECUTIVE_START_FAILURES:
                outcome.detail += f" (worker {worker.index} failed {worker.start_failures} times in a row)"
            return outcome
        finally:
            self._idle.put_nowait(worker)

    def retire(self, index: int) -> None:
        """Never reuse worker `index`'s process: its output was not what the protocol allows (a forged or
        stale answer), so the next job it takes starts a fresh REPL."""
        worker = self._workers[index]
        worker.served = self.max_uses
        self.retired += 1

    def pids(self) -> list[int]:
        return [w.repl.pid for w in self._workers if w.repl is not None and w.repl.pid is not None]

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self._workers), return_exceptions=True)
