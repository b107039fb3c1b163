"""Every process that runs candidate or user code (the REPL pre-filter, the judge's compiles, the judge)
runs in a sandbox whose guarantees a canary confirmed on this machine before any verdict counts.

A sandboxed process gets: no network; read-only system directories, Lean workspace, toolchain (elan's
home) and the programs on its command line; one writable temp dir (also its HOME and TMPDIR); nothing of
the user's home, tokens or caches; an environment allow-list. Backends:

- `bwrap` (bubblewrap): read-only bind mounts, new network, PID, IPC and UTS namespaces (when the
  process tree dies, everything it started dies with it);
- `landlock`: Linux's unprivileged access control plus a seccomp filter on sockets, for hosts where user
  namespaces are forbidden (see landlock.py); no PID namespace;
- `sandbox-exec`: macOS's seatbelt with a deny-by-default profile (see seatbelt.py; untested here);
- `none`: resource limits and the environment allow-list only. Only an explicit `--sandbox none` runs
  code like this, and every verdict it gives is labelled "REPL-checked (unsandboxed)".

`resolve(mode, base)` picks the backend (`auto`: the first that works here) and runs the canary
(canary.py): a process in that sandbox tries to write the workspace, the judge's cache and the judge and
REPL binaries, to open TCP and UDP sockets to a listener here, and to read a secret file in the user's
state dir; every attempt must fail (and its temp dir must be writable, the workspace readable). A
backend whose canary gets through is never used. Fail closed: no confirmed sandbox, no kernel-checked.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from proverctl.errors import EnvironmentMissing, UsageError, VerifierError

MODES = ("auto", "bwrap", "landlock", "sandbox-exec", "none")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# The only variables a sandboxed process sees (plus HOME and TMPDIR, set to its temp dir).
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "ELAN_HOME", "ELAN_TOOLCHAIN", "LEAN_PATH", "LEAN_SYSROOT",
             "LEAN_SRC_PATH", "LAKE_HOME", "MATHLIB_CACHE_GET_URL")
NONE_HINT = "pass --sandbox none to run Lean unsandboxed (its verdicts are then labelled REPL-checked (unsandboxed))"


def auto_order() -> tuple[str, ...]:
    """The backends `auto` tries, in order, on this platform."""
    if sys.platform == "darwin":
        return ("sandbox-exec",)
    if sys.platform.startswith("linux"):
        return ("bwrap", "landlock")
    return ()


def elan_home() -> Path | None:
    home = os.environ.get("ELAN_HOME") or os.path.expanduser("~/.elan")
    try:
        return Path(home) if Path(home).is_dir() else None
    except OSError:  # a home this user may not look into
        return None


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


def program_paths(command: list[str] | tuple[str, ...]) -> list[Path]:
    """The files a command line names (the program, found on PATH, and every absolute path that exists),
    each as written and resolved: what must be readable for it to run, and unwritable to be trusted."""
    out: list[Path] = []
    for index, arg in enumerate(command):
        candidate = shutil.which(arg) if index == 0 and "/" not in arg else arg
        if not candidate or not os.path.isabs(candidate) or not os.path.exists(candidate):
            continue
        for path in (Path(candidate).absolute(), Path(candidate).resolve()):
            if path not in out:
                out.append(path)
    return out


def readable_paths(command: list[str] | tuple[str, ...], cwd: Path | None) -> list[Path]:
    """What a sandboxed command must be able to read besides the system: its working directory (the
    Lean workspace), elan's home, and for each path on the command line its directory (for the program
    itself, its install prefix: `.../bin/lean` -> `...`)."""
    out: list[Path] = []
    if cwd is not None:
        out.append(Path(cwd).resolve())
    elan = elan_home()
    if elan is not None:
        out.append(elan.resolve())
    program = set(program_paths(command[:1]))
    for path in program_paths(command):
        if path.is_dir():
            out.append(path)
        elif path in program and path.parent.name == "bin":
            out.append(path.parent.parent)
        else:
            out.append(path.parent)
    unique: list[Path] = []
    for path in out:
        if str(path) in ("/", "") or path in unique:
            continue
        unique.append(path)
    return unique


def outermost(paths: list[Path]) -> list[Path]:
    """The paths without those inside another one of them (a bind mount of a folder already covers them)."""
    unique = sorted({Path(p) for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return kept


@dataclass(frozen=True)
class Launch:
    """How to start one sandboxed process: its argv, environment and working directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None


@dataclass(frozen=True)
class Sandbox:
    """A backend, and whether a canary confirmed its guarantees on this machine (`confirmed`)."""

    name: str
    confirmed: bool = False
    canary: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def label(self) -> str:
        """What the store records for verdicts given under it: the backend, or "none"."""
        return self.name if self.confirmed else "none"

    def launch(self, command: list[str], *, cwd: Path | None, tmpdir: Path, readable=(), writable=(),
               env: dict[str, str] | None = None) -> Launch:
        """`command` confined: read-only access to the system, `cwd`, the toolchain, its own programs and
        `readable`; write access to `tmpdir` and `writable` only; no network. `env` adds variables to the
        allow-listed environment."""
        env = {**sandbox_env(tmpdir), **(env or {})}
        where = str(cwd) if cwd is not None else None
        if self.name == "none":
            return Launch(list(command), env, where)
        read = outermost([Path(p) for p in SYSTEM_DIRS if os.path.exists(p)] + readable_paths(command, cwd) + [Path(p) for p in readable])
        write = [Path(tmpdir)] + [Path(p) for p in writable]
        if self.name == "bwrap":
            from proverctl.lean.sandbox import bwrap

            return Launch(bwrap.argv(command, cwd=cwd, read=read, write=write, env=env), env, None)
        if self.name == "landlock":
            from proverctl.lean.sandbox import landlock

            config = {"readable": [str(p) for p in read] + ["/dev", "/proc", "/sys"], "writable": [str(p) for p in write] + ["/dev/null"]}
            return Launch([sys.executable, "-I", "-S", "-B", landlock.__file__, json.dumps(config), "--", *command], env, where)
        if self.name == "sandbox-exec":
            from proverctl.lean.sandbox import seatbelt

            return Launch(seatbelt.argv(command, read=read, write=write), env, where)
        raise UsageError(f"unknown sandbox {self.name!r}", hint=f"choose one of {', '.join(MODES)}")


def why_not(name: str) -> str | None:
    """None when backend `name` can run here, else why not (one line)."""
    if name == "bwrap":
        from proverctl.lean.sandbox import bwrap

        return bwrap.why_not()
    if name == "landlock":
        from proverctl.lean.sandbox import landlock

        return landlock.why_not()
    if name == "sandbox-exec":
        from proverctl.lean.sandbox import seatbelt

        return seatbelt.why_not()
    return None


@dataclass(frozen=True)
class TrustBase:
    """What no sandboxed process may change or see: the workspace, the judge's challenge cache and the
    trusted binaries (judge, REPL, their interpreters), and a secret file in the user's own state dir.
    `readable` is what Lean processes are given to read besides the workspace (the cache, programs)."""

    workspace: Path | None = None
    cache_dir: Path | None = None
    binaries: tuple[Path, ...] = ()
    secret: Path | None = None
    readable: tuple[Path, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()  # every command line sandboxed processes run (their programs must stay readable)


def resolve(mode: str, base: TrustBase, *, kernel: bool = False) -> Sandbox:
    """The sandbox `mode` asks for, confirmed by its canary. `auto` takes the first backend that works
    here; an explicit backend that cannot work is an error (never a fallback); `none` is unconfirmed.
    With `kernel` (`--judge kernel`), anything but a confirmed sandbox is a VerifierError (exit 4)."""
    if mode not in MODES:
        raise UsageError(f"unknown sandbox mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    if mode == "none":
        if kernel:
            raise VerifierError("--judge kernel needs a sandbox, and --sandbox none runs Lean without one",
                                hint="use --sandbox auto (bubblewrap, Landlock or sandbox-exec), or --judge auto for REPL-checked verdicts")
        return Sandbox("none")
    from proverctl.lean.sandbox.canary import run_canary

    failures: list[str] = []
    for name in (auto_order() if mode == "auto" else (mode,)):
        why = why_not(name)
        if why is not None:
            failures.append(f"{name}: {why}")
            continue
        report = run_canary(Sandbox(name), base)
        if report["held"]:
            return Sandbox(name, confirmed=True, canary=report)
        failures.append(f"{name}: its canary got through ({'; '.join(report['failures'])})")
    what = "no sandbox works here" if mode == "auto" else f"--sandbox {mode} does not work here"
    detail = "; ".join(failures) or f"no sandbox backend for {sys.platform}"
    hint = ("install bubblewrap (Debian: apt-get install bubblewrap) or allow unprivileged user namespaces, "
            "or use a kernel with Landlock (5.13+); `proverctl doctor` says which failed")
    if kernel:
        raise VerifierError(f"--judge kernel needs a confirmed sandbox: {what} ({detail})", hint=hint)
    raise EnvironmentMissing(f"{what} ({detail})", hint=f"{hint}; or {NONE_HINT}")
