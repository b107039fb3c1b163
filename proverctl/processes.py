"""The one place proverctl starts and ends the processes it owns: Lean's (REPLs, the judge's compiles,
the judge) and the model servers of its sessions.

Every such process starts in its own session (so one `killpg` ends it and whatever it started in its
group), Lean's under an address-space cap; ending one kills the whole group with SIGKILL, waits for every
descendant psutil could see (children of `lake` that left the group), and reaps the leader. One-shot
commands (`run_confined`) are bounded by a wall-clock timeout; a server is asked to stop first
(`terminate_group`: SIGTERM, a grace period, then SIGKILL). Standard library only at import time
(`inference/supervise.py` loads this file by path), psutil where it helps.
"""

from __future__ import annotations

import asyncio
import os
import signal


def limit_memory(memory_mb: int | None):
    """A preexec function capping the child's address space (RLIMIT_AS) at `memory_mb` MiB."""
    def apply() -> None:
        import resource

        if memory_mb:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def descendants(pid: int) -> list:
    """The process's descendants (psutil.Process objects); [] when it is already gone."""
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:
        return []


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate_group(pid: int, grace: float = 10.0) -> bool:
    """Stop the process group `pid` belongs to: SIGTERM, up to `grace` seconds for it to go, then SIGKILL;
    reap the leader when it is our child. True if something was running."""
    import time

    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        # The leader is gone, its group may not be (a server whose supervisor was killed): a process that
        # started its own session leads a group with its own pid, which no new process takes while it lives.
        if not group_alive(pid):
            return False
        pgid = pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.1)
    kill_group(pgid)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return True


def kill_group(pid: int) -> None:
    """SIGKILL the process group `pid` leads (nothing if it is gone)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def end_process(proc: asyncio.subprocess.Process, *, members: list | None = None, wait: float = 10.0) -> None:
    """Kill `proc`'s process group, wait until the leader and `members` (its descendants, taken before
    the kill; default: taken now) are gone."""
    members = descendants(proc.pid) if members is None else members
    kill_group(proc.pid)
    if proc.returncode is None:
        try:
            await asyncio.wait_for(proc.wait(), wait)
        except asyncio.TimeoutError:  # pragma: no cover - a process that survives SIGKILL
            pass
    if members:
        import psutil

        await asyncio.get_running_loop().run_in_executor(None, lambda: psutil.wait_procs(members, timeout=5))


async def start(launch, *, memory_mb: int | None, stdin=asyncio.subprocess.PIPE, limit: int = 2 ** 16) -> asyncio.subprocess.Process:
    """Start a proverctl.lean.sandbox.Launch in its own session under the memory cap."""
    return await asyncio.create_subprocess_exec(*launch.argv, cwd=launch.cwd, env=launch.env or None, stdin=stdin,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True, preexec_fn=limit_memory(memory_mb), limit=limit)


async def run_confined(launch, *, timeout: float, memory_mb: int | None) -> tuple[int | None, str, str]:
    """Run one command to its end: (exit code, stdout, stderr), the code None when it was killed at the
    timeout. Cancelling the caller kills it too."""
    proc = await start(launch, memory_mb=memory_mb, stdin=asyncio.subprocess.DEVNULL)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        return None, "", ""
    finally:
        if proc.returncode is None:
            await end_process(proc)
        else:
            kill_group(proc.pid)  # whatever it left running in its group goes with it
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
