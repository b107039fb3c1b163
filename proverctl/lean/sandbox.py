"""Running Lean (REPLs, the judge's compiles and the judge) in a sandbox: bubblewrap (`bwrap`).

Inside: no network (a new network namespace), a new PID namespace (when the process tree dies, every
process it started dies with it, even one that left its process group), the caller's RLIMIT caps, and
a filesystem that shows only what Lean needs, read-only: the system directories (/usr, /etc, ...), the
Lean workspace, the toolchain (elan's home) and the directories of the programs on the command line;
the one writable place is a per-process temp dir (also $HOME and $TMPDIR). The user's home, tokens and
caches are not there. The environment is a small allow-list (no tokens), with or without bwrap.

`--sandbox bwrap` fails when bwrap cannot run here, never falls back; `auto` uses bwrap when it works
and otherwise runs with resource limits only, which is said once on stderr and by `proverctl doctor`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from proverctl.errors import EnvironmentMissing, UsageError

MODES = ("auto", "bwrap", "none")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# The only variables a sandboxed process sees (plus HOME and TMPDIR, set to its temp dir).
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "ELAN_HOME", "ELAN_TOOLCHAIN", "LEAN_PATH", "LEAN_SYSROOT",
             "LEAN_SRC_PATH", "LAKE_HOME", "MATHLIB_CACHE_GET_URL")


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


def elan_home() -> Path | None:
    home = os.environ.get("ELAN_HOME") or os.path.expanduser("~/.elan")
    return Path(home) if Path(home).is_dir() else None


def sandbox_env(tmpdir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Lean process: the allow-list from `base` (default: ours), HOME and TMPDIR in
    its temp dir, and ELAN_HOME pointing at the toolchains (HOME moved, so elan must be told)."""
    base = os.environ if base is None else base
    env = {name: base[name] for name in ENV_ALLOW if name in base}
    elan = elan_home()
    if elan is not None:
        env.setdefault("ELAN_HOME", str(elan))
    env["HOME"] = str(tmpdir)
    env["TMPDIR"] = str(tmpdir)
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def readable_paths(command: list[str], cwd: Path | None) -> list[Path]:
    """What a sandboxed command must be able to read besides the system: its working directory (the
    Lean workspace), elan's home, and for each absolute path on the command line its directory (for the
    program itself, its install prefix: `.../bin/lean` -> `...`)."""
    out: list[Path] = []
    if cwd is not None:
        out.append(Path(cwd).resolve())
    elan = elan_home()
    if elan is not None:
        out.append(elan.resolve())
    for index, arg in enumerate(command):
        candidate = shutil.which(arg) if index == 0 and "/" not in arg else arg
        if not candidate or not os.path.isabs(candidate) or not os.path.exists(candidate):
            continue
        real = Path(candidate).resolve()
        for path in {Path(candidate).absolute(), real}:
            if path.is_dir():
                out.append(path)
            elif index == 0 and path.parent.name == "bin":
                out.append(path.parent.parent)
            else:
                out.append(path.parent)
    unique: list[Path] = []
    for path in out:
        if str(path) in ("/", "") or path in unique:
            continue
        unique.append(path)
    return unique


def wrap(command: list[str], *, cwd: Path | None, tmpdir: Path, readable: list[Path] | tuple[Path, ...] = ()) -> list[str]:
    """The bwrap command line that runs `command` sandboxed, with `tmpdir` its only writable place."""
    args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--clearenv", "--dev", "/dev", "--proc", "/proc"]
    for directory in SYSTEM_DIRS:
        if os.path.exists(directory):
            args += ["--ro-bind", directory, directory]
    for path in [*readable_paths(command, cwd), *map(Path, readable)]:
        args += ["--ro-bind-try", str(path), str(path)]
    args += ["--bind", str(tmpdir), str(tmpdir)]
    for name, value in sandbox_env(tmpdir).items():
        args += ["--setenv", name, value]
    if cwd is not None:
        args += ["--chdir", str(cwd)]
    return args + ["--", *command]
