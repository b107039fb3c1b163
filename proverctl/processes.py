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
import errno
import os
import shutil
import signal


# The cap is set by `sh` just before it execs the command (`ulimit -v`: RLIMIT_AS, soft and hard, in KiB),
# not by a preexec_fn. To run a preexec_fn Python has to fork() this whole process, page tables and all (9 ms
# of this process's CPU per start at 150 MB resident, against 0.8 ms with the vfork it uses otherwise: a
# REPL pool restarts a worker every `max_uses` checks), and a preexec_fn is not safe in a process that runs
# threads (the store's writer is one). The command replaces `sh` (same pid, same process group).
_CAP = 'ulimit -v "$1" && shift && exec "$@"'


def capped(argv: list[str], memory_mb: int | None, *, cwd: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """`argv` run with its address space capped at `memory_mb` MiB (as it is without a cap). The program
    is looked up here, as exec would (PATH from `env`, a relative path from `cwd`), so a missing one is
    still a FileNotFoundError from the start, not an exit code of `sh`'s."""
    if not memory_mb or memory_mb >= 1 << 40:
        return list(argv)  # no cap, or one past any address space (`sh` would overflow it to 0)
    program = argv[0]
    if os.sep in program:
        path = program if os.path.isabs(program) or not cwd else os.path.join(cwd, program)
        found = program if os.path.isfile(path) and os.access(path, os.X_OK) else None
    else:
        found = path = shutil.which(program, path=os.pathsep.join(os.get_exec_path(env)))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "no such executable", program)
    interpreter = _interpreter(path)
    if interpreter is not None and not (os.path.isfile(interpreter) and os.access(interpreter, os.X_OK)):
        raise FileNotFoundError(errno.ENOENT, f"no such interpreter {interpreter} (the #! line of {program})", program)
    return ["/bin/sh", "-c", _CAP, "sh", str(memory_mb * 1024), found, *argv[1:]]


def _interpreter(path: str) -> str | None:
    """The program a script's `#!` line names (exec fails with ENOENT when it is missing), else None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return os.fsdecode(words[0]) if words else None


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


async def start(launch, *, memory_mb: int | None, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit: int = 2 ** 16) -> asyncio.subprocess.Process:
    """Start a proverctl.lean.sandbox.Launch in its own session under the memory cap (`stdout`: a pipe of
    asyncio's, or a file descriptor of the caller's)."""
    env = launch.env or None
    return await asyncio.create_subprocess_exec(*capped(launch.argv, memory_mb, cwd=launch.cwd, env=env), cwd=launch.cwd, env=env,
                                                stdin=stdin, stdout=stdout, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True, limit=limit)


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
