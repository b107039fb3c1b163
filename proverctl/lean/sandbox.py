"""Running REPLs in a sandbox: bubblewrap (`bwrap`) when present.

Inside: no network (a new network namespace), the whole filesystem read-only except a per-worker
temp dir (also $TMPDIR), a new PID namespace (when the REPL's process tree dies, every
process it started dies with it, even one that left its process group), and the caller's RLIMIT caps.
`--sandbox auto` uses bwrap when it works here and otherwise runs with resource limits only, which is
said once on stderr and by `proverctl doctor`.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from proverctl.errors import EnvironmentMissing, UsageError

MODES = ("auto", "bwrap", "none")


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """bwrap is installed and can create the namespaces we need (some containers forbid them)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        probe = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-pid",
                                "--die-with-parent", "--", "/bin/true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def resolve(mode: str) -> str:
    """'bwrap' or 'none' for a requested mode; `bwrap` that cannot work is an error, `auto` falls back."""
    if mode not in MODES:
        raise UsageError(f"unknown sandbox mode {mode!r}", hint="choose auto, bwrap or none")
    if mode == "none":
        return "none"
    if bwrap_works():
        return "bwrap"
    if mode == "bwrap":
        raise EnvironmentMissing("--sandbox bwrap: bubblewrap is not installed or cannot create namespaces here",
                                 hint="install it (Debian: apt-get install bubblewrap) or use --sandbox auto")
    return "none"


def wrap(command: list[str], *, cwd: Path | None, tmpdir: Path) -> list[str]:
    """The bwrap command line that runs `command` sandboxed, with `tmpdir` its only writable place."""
    args = [
        shutil.which("bwrap") or "bwrap",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--bind", str(tmpdir), str(tmpdir),
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--setenv", "TMPDIR", str(tmpdir),
    ]
    if cwd is not None:
        args += ["--chdir", str(cwd)]
    return args + ["--", *command]
