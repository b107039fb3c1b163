"""The bubblewrap backend: a new mount namespace showing only read-only binds of what Lean needs and
one writable temp dir, plus new network (nothing but its own loopback), PID (the process tree dies with
its leader), IPC and UTS namespaces; the environment is cleared and set from the allow-list."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

# bwrap's own words for the usual reasons it cannot run, and what each means for the user.
KNOWN_FAILURES = (
    ("setting up uid map: Permission denied",
     "unprivileged user namespaces are restricted (Ubuntu 24.04's AppArmor rule kernel.apparmor_restrict_unprivileged_userns)"),
    ("No permissions to create", "the kernel does not allow unprivileged user namespaces (kernel.unprivileged_userns_clone=0, or a container)"),
    ("Creating new namespace failed", "user namespaces cannot be created here"),
)


@functools.lru_cache(maxsize=1)
def why_not() -> str | None:
    """None when bwrap is installed and can create the namespaces we need, else why not."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        probe = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-pid",
                                "--die-with-parent", "--", "/bin/true"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {exc}"
    if probe.returncode == 0:
        return None
    said = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[0]
    for needle, meaning in KNOWN_FAILURES:
        if needle in said:
            return f"{meaning} ({said})"
    return said


def argv(command: list[str], *, cwd: Path | None, read: list[Path], write: list[Path], env: dict[str, str]) -> list[str]:
    """The bwrap command line that runs `command` confined."""
    args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--clearenv", "--dev", "/dev", "--proc", "/proc"]
    seen: set[str] = set()
    for path in read:
        if str(path) in seen:
            continue
        seen.add(str(path))
        args += ["--ro-bind-try", str(path), str(path)]
    for path in write:  # after the read-only binds, so a writable dir inside a readable one wins
        args += ["--bind", str(path), str(path)]
    for name, value in env.items():
        args += ["--setenv", name, value]
    if cwd is not None:
        args += ["--chdir", str(cwd)]
    return args + ["--", *command]
