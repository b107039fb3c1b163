"""Lean workspaces: the pinned templates (lean_template/), `lean setup`, and finding the REPL to run.

A workspace is a Lake project made from a template profile; `lean setup` copies it into the data
dir, fetches Mathlib's build cache, builds the REPL and records where it is, so `check` and `prove`
find it. Users can instead point `PROVERCTL_LEAN_PROJECT` / `PROVERCTL_REPL_COMMAND` (or the flags) at
their own project and REPL build.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from proverctl.errors import EnvironmentMissing, UsageError
from proverctl.lean.trust import JUDGE_BINARY, REPL_BINARY
from proverctl.paths import Paths

PROFILES = ("deepseek-v2", "kimina", "modern")
ELAN_INSTALL = "curl https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh -sSf | sh"


def profile_pins(profile: str | None) -> str:
    """What a profile's Lean is: `TOOLCHAIN mathlib@REV` from its template (lean-toolchain, lakefile), or
    the profile's name alone when its template cannot be read (a proof cache keys on this)."""
    if profile not in PROFILES:
        return str(profile)
    try:
        folder = template_dir(profile)
        toolchain = (folder / "lean-toolchain").read_text().strip()
        lakefile = next((folder / name for name in ("lakefile.lean", "lakefile.toml") if (folder / name).exists()), None)
        rev = re.search(r'mathlib4?"?\s*@\s*"([0-9a-f]{7,40}|v[\w.\-]+)"', lakefile.read_text()) if lakefile else None
        if rev is None and lakefile is not None:
            rev = re.search(r'rev\s*=\s*"([^"]+)"', lakefile.read_text())
        return f"{toolchain} mathlib@{rev.group(1) if rev else 'unknown'}"
    except (OSError, UsageError):
        return str(profile)


def template_dir(profile: str) -> Path:
    """The template folder of a profile, from the installed package or the source checkout."""
    if profile not in PROFILES:
        raise UsageError(f"unknown Lean profile {profile!r}", hint=f"choose one of {', '.join(PROFILES)}")
    # Installed: lean_template is a top-level (namespace) package beside proverctl.
    import importlib.util

    try:
        spec = importlib.util.find_spec("lean_template")
        locations = list(spec.submodule_search_locations or []) if spec else []
    except (ImportError, ValueError):
        locations = []
    for location in locations:
        candidate = Path(location) / profile
        if (candidate / "lakefile.lean").is_file():
            return candidate
    # A source checkout.
    candidate = Path(__file__).resolve().parents[2] / "lean_template" / profile
    if (candidate / "lakefile.lean").is_file():
        return candidate
    raise EnvironmentMissing(f"the lean_template/{profile} files are not installed", hint="reinstall proverctl")


def _records_file(paths: Paths) -> Path:
    return paths.workspaces_dir / "workspaces.json"


def recorded_workspaces(paths: Paths | None = None) -> dict[str, str]:
    paths = paths or Paths.resolve()
    try:
        return json.loads(_records_file(paths).read_text())
    except (OSError, ValueError):
        return {}


def record_workspace(profile: str, directory: Path, paths: Paths | None = None) -> None:
    paths = paths or Paths.resolve()
    records = recorded_workspaces(paths)
    records[profile] = str(directory)
    target = _records_file(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=2) + "\n")
    tmp.replace(target)


@dataclass(frozen=True)
class ReplTarget:
    """What the pool runs: a REPL command line in a Lean project directory."""

    command: list[str]
    cwd: Path | None
    source: str  # where the choice came from, for messages


def resolve_repl(repl_command: str | None, lean_project: str | None, profile: str, paths: Paths | None = None) -> ReplTarget:
    """Pick the REPL command and project dir: explicit settings first, then the set-up workspace.

    Raises EnvironmentMissing (exit 3) with the `lean setup` hint when there is nothing to run.
    """
    project = Path(lean_project).expanduser() if lean_project else None
    if project is not None and not project.is_dir():
        raise EnvironmentMissing(f"Lean project directory {project} does not exist", hint="fix --lean-project / PROVERCTL_LEAN_PROJECT")
    if repl_command:
        command = shlex.split(repl_command)
        if not command:
            raise UsageError("the REPL command is empty", hint="set PROVERCTL_REPL_COMMAND to e.g. `lake exe repl`")
        if shutil.which(command[0]) is None and not Path(command[0]).exists():
            raise EnvironmentMissing(f"REPL command `{command[0]}` not found", hint="fix --repl-command / PROVERCTL_REPL_COMMAND")
        return ReplTarget(command, project, "repl_command setting")
    if project is None:
        recorded = recorded_workspaces(paths).get(profile)
        if recorded is None or not Path(recorded).is_dir():
            raise EnvironmentMissing(
                f"no Lean workspace for profile {profile}: Lean checks need a Lean toolchain and a built workspace",
                hint=f"install elan, then run `proverctl lean setup --profile {profile}` (or set PROVERCTL_REPL_COMMAND)",
            )
        project = Path(recorded)
    if shutil.which("lake") is None:
        raise EnvironmentMissing(
            "Lean is not installed: `lake` is not on PATH",
            hint=f"install elan ({ELAN_INSTALL}), then `proverctl lean setup`",
        )
    binary = project / REPL_BINARY
    command = ["lake", "env", str(binary)] if binary.exists() else ["lake", "exe", "repl"]
    # The v4.9-era REPL does not flush stdout after an answer; line-buffering it from outside fixes that.
    if shutil.which("stdbuf"):
        command = ["stdbuf", "-oL"] + command
    return ReplTarget(command, project, f"workspace {project}")


# ---------------------------------------------------------------------------------------------
# lean setup


@dataclass
class SetupStep:
    name: str
    command: list[str]
    status: str = "pending"  # ok | failed | skipped
    seconds: float = 0.0
    detail: str = ""
    built: Path | None = None  # for a step that builds then runs: it succeeded when this file exists


def run_subprocess(command: list[str], *, cwd: Path, log: Path, on_line: Callable[[str], None] | None = None) -> int:
    """Run one command, appending its output to `log`; every setup command goes through here."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n$ (cd {cwd} && {shlex.join(command)})\n")
        handle.flush()
        try:
            proc = subprocess.Popen(
                command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, errors="replace",
            )
        except OSError as exc:
            handle.write(f"cannot start: {exc}\n")
            return 127
        assert proc.stdout is not None
        for line in proc.stdout:
            handle.write(line)
            if on_line:
                on_line(line.rstrip())
        code = proc.wait()
        handle.write(f"[exit {code}]\n")
        return code


def copy_template(profile: str, directory: Path, *, force: bool = False) -> list[str]:
    """Copy the profile's files into `directory`; existing identical files are left alone.
    A differing file is kept unless `force` (returned as a note)."""
    notes = []
    directory.mkdir(parents=True, exist_ok=True)
    for source in sorted(template_dir(profile).iterdir()):
        if not source.is_file():
            continue
        target = directory / source.name
        if target.exists() and target.read_bytes() == source.read_bytes():
            continue
        if target.exists() and not force:
            notes.append(f"kept your {target.name} (differs from the template; --force replaces it)")
            continue
        shutil.copyfile(source, target)
    return notes


def tool_version(tool: str) -> str | None:
    path = shutil.which(tool)
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"


def setup(
    profile: str,
    directory: Path | None = None,
    *,
    force: bool = False,
    skip_cache: bool = False,
    on_step: Callable[[SetupStep], None] | None = None,
    on_line: Callable[[str], None] | None = None,
    paths: Paths | None = None,
) -> tuple[Path, list[SetupStep], Path, list[str]]:
    """Make a workspace for `profile` (idempotent). Returns (dir, steps, log file, notes).

    Raises EnvironmentMissing naming the step that failed and the log to read.
    """
    paths = paths or Paths.resolve()
    directory = (directory or paths.workspaces_dir / profile).expanduser().resolve()
    log = paths.log_dir / f"lean-setup-{profile}.log"
    notes = copy_template(profile, directory, force=force)
    missing = [tool for tool in ("elan", "lake", "git") if shutil.which(tool) is None]
    if "git" in missing:
        raise EnvironmentMissing("git is not installed; Lake fetches Mathlib and the REPL with it", hint="install git")
    if "lake" in missing:
        raise EnvironmentMissing(
            "Lean is not installed: `lake` is not on PATH (the template was copied to " + str(directory) + ")",
            hint=f"install elan ({ELAN_INSTALL}), open a new shell, then run `proverctl lean setup --profile {profile}` again",
        )
    steps = []
    if not skip_cache:
        steps.append(SetupStep("fetch Mathlib's build cache", ["lake", "exe", "cache", "get"]))
    # `lake exe repl` builds the REPL executable, then runs it; with no input it exits at once.
    steps.append(SetupStep("build the REPL", ["lake", "exe", "repl"]))
    # The kernel judge (SafeVerify, a dependency of every profile): `lake exe` builds it, then runs it
    # without its two olean arguments, so it exits non-zero; the binary is what counts.
    steps.append(SetupStep("build the kernel judge (SafeVerify)", ["lake", "exe", "safe_verify"], built=JUDGE_BINARY))
    done = []
    for step in steps:
        if on_step:
            on_step(step)
        start = time.monotonic()
        code = run_subprocess(step.command, cwd=directory, log=log, on_line=on_line)
        if code != 0 and (directory / "lake-manifest.json").exists() and step is steps[0]:
            # A manifest Lake cannot read: let Lake resolve the same pinned requires itself.
            manifest = directory / "lake-manifest.json"
            manifest.rename(directory / "lake-manifest.json.rejected")
            notes.append("Lake rejected the shipped manifest; retried with Lake's own resolution of the pinned requires")
            code = run_subprocess(step.command, cwd=directory, log=log, on_line=on_line)
        step.seconds = time.monotonic() - start
        if code != 0 and step.built is not None and (directory / step.built).is_file():
            code = 0
        if code != 0:
            step.status = "failed"
            step.detail = f"exit {code}"
            done.append(step)
            raise EnvironmentMissing(
                f"lean setup failed at step '{step.name}' (`{shlex.join(step.command)}` exited {code})",
                hint=f"read {log}; network access to GitHub and Mathlib's cache is needed, then run setup again",
            )
        step.status = "ok"
        done.append(step)
    record_workspace(profile, directory, paths)
    from proverctl.lean.trust import record_workspace_trust

    # The trust manifest: what was just built, hashed, outside the workspace (no verdict counts without it).
    record_workspace_trust(profile, directory, repl_command=resolve_repl(None, str(directory), profile, paths).command, paths=paths)
    return directory, done, log, notes

