"""The trust manifest: what `lean setup` built (or `lean trust` was told to vouch for), recorded outside
the workspace, where no sandboxed process can reach it (the state dir).

For each workspace it records the toolchain, the REPL's and the judge's command lines with the sha256
of every file they name, the judge's label (SafeVerify's revision as the workspace's lake manifest
resolved it) and output dialect, and `leanchecker` where the toolchain ships one (Lean >= 4.28). The
verifier runs a judge only while its files still hash to the record, and labels verdicts with the
record's label, never with a name taken from the workspace it runs in.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from proverctl.errors import UsageError
from proverctl.paths import Paths

MANIFEST_VERSION = 1
JUDGE_BINARY = Path(".lake/packages/SafeVerify/.lake/build/bin/safe_verify")
REPL_BINARY = Path(".lake/packages/REPL/.lake/build/bin/repl")
# The judge pinned per profile (lean_template/<profile>/lakefile.lean requires it; JUDGE.md says why):
# revision -> (profile, output dialect). v1: the 4.9 / 4.15 branches; v2: main.
PINNED_JUDGES = {
    "0c0f7dcf6cb66333a944d062ec4c431986da1ca6": ("deepseek-v2", "v1"),  # branch minif2f-deepseek-check
    "577e95319a2bb1bb8df541f0c645811f6577a0ae": ("kimina", "v1"),  # branch minif2f-kimina-check
    "b291b588a53999a7e837dda61c7dbfe8c550c814": ("modern", "v2"),  # main (Lean v4.27.0)
}
DIALECTS = ("v1", "v2")
LEANCHECKER_SINCE = (4, 28)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def named_files(*commands: tuple[str, ...] | list[str] | None) -> dict[str, str]:
    """sha256 of every existing file a command line names by absolute path (the binaries, scripts and
    interpreters it runs; programs found on PATH, such as elan's `lake` proxy, are the toolchain's)."""
    out: dict[str, str] = {}
    for command in commands:
        for arg in command or ():
            if os.path.isabs(arg) and os.path.isfile(arg):
                real = os.path.realpath(arg)
                out[real] = sha256_file(Path(real))
    return out


def unrecorded_program(commands, files: dict[str, str]) -> str | None:
    """Why a command line would run a file the record does not vouch for: its program (an absolute
    path), or any absolute path in it that goes through a symlink, resolving to no recorded file.
    `named_files` records resolved paths, so a symlink turned elsewhere after recording would otherwise
    pass the hash check while another file runs. (A plain path that did not exist when the command was
    recorded, such as a log file it writes, is data, not checked here.)"""
    for command in commands:
        for index, arg in enumerate(command or ()):
            if not (os.path.isabs(arg) and os.path.isfile(arg)):
                continue
            real = os.path.realpath(arg)
            if (index == 0 or real != os.path.abspath(arg)) and real not in files:
                return f"{arg} now resolves to {real}, which the trust manifest does not record"
    return None


def changed_files(files: dict[str, str]) -> list[str]:
    """The recorded files that are gone or no longer hash to their record."""
    bad = []
    for path, digest in files.items():
        try:
            if sha256_file(Path(path)) != digest:
                bad.append(path)
        except OSError:
            bad.append(path)
    return bad


@dataclass(frozen=True)
class JudgeRecord:
    command: tuple[str, ...]  # SafeVerify's command line (the two olean paths are appended)
    lean_command: tuple[str, ...]  # compiles one file (`-o OUT FILE` appended)
    label: str  # what verdicts say decided: "safeverify@0c0f7dc"
    dialect: str  # v1 | v2
    revision: str | None = None
    leanchecker: tuple[str, ...] | None = None  # `leanchecker` (Lean >= 4.28): a second kernel replay of each solution
    lean_path: str | None = None  # LEAN_PATH of the workspace (`lake env`), for leanchecker
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 of every file the commands name


@dataclass(frozen=True)
class Manifest:
    workspace: str | None
    profile: str
    toolchain: str | None
    repl_command: tuple[str, ...] | None
    repl_files: dict[str, str]
    judge: JudgeRecord | None
    recorded: float
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        data = json.loads(text)
        judge = data.get("judge")
        if judge is not None:
            judge = JudgeRecord(**{**judge, "command": tuple(judge["command"]), "lean_command": tuple(judge["lean_command"]),
                                   "leanchecker": tuple(judge["leanchecker"]) if judge.get("leanchecker") else None})
        return cls(workspace=data["workspace"], profile=data["profile"], toolchain=data.get("toolchain"),
                   repl_command=tuple(data["repl_command"]) if data.get("repl_command") else None, repl_files=data.get("repl_files") or {},
                   judge=judge, recorded=data["recorded"], version=data.get("version", 1))


def manifest_path(workspace: Path | None, paths: Paths | None = None) -> Path:
    paths = paths or Paths.resolve()
    key = str(Path(workspace).resolve()) if workspace is not None else "-"
    return paths.state_dir / "trust" / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:20] + ".json")


def load(workspace: Path | None, paths: Paths | None = None) -> Manifest | None:
    try:
        return Manifest.from_json(manifest_path(workspace, paths).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def toolchain_of(workspace: Path | None) -> str | None:
    try:
        return (Path(workspace) / "lean-toolchain").read_text(encoding="utf-8").strip() if workspace else None
    except OSError:
        return None


def lean_version(toolchain: str | None) -> tuple[int, int] | None:
    """(major, minor) from a toolchain name such as leanprover/lean4:v4.28.0-rc1."""
    import re

    match = re.search(r"v(\d+)\.(\d+)", toolchain or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def safeverify_revision(workspace: Path | None) -> str | None:
    """SafeVerify's revision as the workspace's lake-manifest.json resolved it."""
    try:
        data = json.loads((Path(workspace) / "lake-manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    for package in data.get("packages", []):
        if str(package.get("name", "")).lower() == "safeverify":
            return package.get("rev")
    return None


def workspace_context(workspace: Path | None) -> str:
    """A digest of what decides a compiled challenge besides its text: the workspace, its toolchain and
    the revisions its lake manifest resolved (a new `lean setup`, another Mathlib, another cache entry)."""
    digest = hashlib.sha256(str(Path(workspace).resolve() if workspace else "-").encode())
    for name in ("lean-toolchain", "lake-manifest.json"):
        try:
            digest.update((Path(workspace) / name).read_bytes() if workspace else b"")
        except OSError:
            digest.update(b"-")
    return digest.hexdigest()[:16]


def default_judge_command(workspace: Path) -> tuple[str, ...]:
    return ("lake", "env", str(workspace / JUDGE_BINARY))


def judge_record(workspace: Path | None, *, command: tuple[str, ...] | None, lean_command: tuple[str, ...], dialect: str | None,
                 leanchecker: tuple[str, ...] | None = None) -> JudgeRecord | None:
    """The judge of a workspace as it is now: the one `lean setup` built (its SafeVerify revision names
    it), or the given command line (a judge the user built: label `safeverify@custom:<sha>`)."""
    if command is None:
        if workspace is None or not (Path(workspace) / JUDGE_BINARY).is_file():
            return None
        command = default_judge_command(Path(workspace))
        revision = safeverify_revision(workspace)
        pinned = PINNED_JUDGES.get(revision or "")
        if dialect is None and pinned is None:
            raise UsageError(f"the SafeVerify at {workspace} is revision {revision or 'unknown'}, which proverctl does not pin",
                             hint="say how its output reads with --dialect v1 (the 4.9/4.15 branches) or v2 (main)")
        label = f"safeverify@{(revision or 'unknown')[:7]}"
        dialect = dialect or pinned[1]
    else:
        revision = None
        files = named_files(command)
        last = next((files[os.path.realpath(a)] for a in reversed(command) if os.path.realpath(a) in files), None)
        label = f"safeverify@custom:{(last or hashlib.sha256(' '.join(command).encode()).hexdigest())[:7]}"
        dialect = dialect or "v1"
    if dialect not in DIALECTS:
        raise UsageError(f"unknown judge dialect {dialect!r}", hint="v1 (SafeVerify's 4.9/4.15 branches) or v2 (its main)")
    lean_path = None
    if leanchecker is None and workspace is not None and (lean_version(toolchain_of(workspace)) or (0, 0)) >= LEANCHECKER_SINCE:
        leanchecker, lean_path = _find_leanchecker(Path(workspace))
    elif leanchecker is not None and workspace is not None:
        lean_path = _lean_path(Path(workspace))
    return JudgeRecord(command=tuple(command), lean_command=tuple(lean_command), label=label, dialect=dialect, revision=revision,
                       leanchecker=leanchecker, lean_path=lean_path, files=named_files(command, lean_command, leanchecker))


def _run(command: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _lean_path(workspace: Path) -> str | None:
    return _run(["lake", "env", "printenv", "LEAN_PATH"], workspace)


def _find_leanchecker(workspace: Path) -> tuple[tuple[str, ...] | None, str | None]:
    """`leanchecker` of the workspace's toolchain (`elan which`, as lean-action finds it) and the
    workspace's LEAN_PATH; (None, None) where the toolchain has none."""
    found = _run(["elan", "which", "leanchecker"], workspace)
    if not found or not os.path.isfile(found):
        return None, None
    return (found,), _lean_path(workspace)


def record(profile: str, workspace: Path | None, *, repl_command: list[str] | None, judge: JudgeRecord | None,
           paths: Paths | None = None) -> Manifest:
    """Write the manifest of `workspace` (replacing an older one) and return it."""
    repl_files = named_files(repl_command)
    manifest = Manifest(workspace=str(Path(workspace).resolve()) if workspace is not None else None, profile=profile,
                        toolchain=toolchain_of(workspace), repl_command=tuple(repl_command) if repl_command else None,
                        repl_files=repl_files, judge=judge, recorded=time.time())
    target = manifest_path(workspace, paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, target)
    return manifest


# ---------------------------------------------------------------------------------------------
# Using the manifest: which judge may run, and what no sandboxed process may touch


@dataclass(frozen=True)
class TrustedJudge:
    """The judge a verifier may run (its record), or why none may (`why`, and whether that is an
    integrity failure, `broken`, rather than a judge that is simply not built)."""

    record: JudgeRecord | None
    why: str | None = None
    hint: str | None = None
    broken: bool = False


def trusted_judge(profile: str, workspace: Path | None, *, judge_command: str | None, judge_lean_command: str,
                  paths: Paths | None = None) -> TrustedJudge:
    """The judge of `workspace` if the trust manifest records it and every file it names still hashes
    to the record; otherwise why not."""
    import shlex
    import shutil

    custom = tuple(shlex.split(judge_command)) if judge_command else None
    lean_command = tuple(shlex.split(judge_lean_command))
    setup_hint = f"run `proverctl lean setup --profile {profile}` (it builds SafeVerify and records it)"
    trust_hint = "`proverctl lean setup` records the judge it builds; `proverctl lean trust` records one you built yourself"
    if custom is None:
        if workspace is None or not (Path(workspace) / JUDGE_BINARY).is_file():
            return TrustedJudge(None, f"no kernel judge is built for the Lean profile {profile}", setup_hint)
        if shutil.which("lake") is None:
            return TrustedJudge(None, "Lean is not installed: `lake` is not on PATH", setup_hint)
    manifest = load(workspace, paths)
    record = manifest.judge if manifest is not None else None
    if record is None:
        return TrustedJudge(None, f"the judge at {custom[-1] if custom else Path(workspace) / JUDGE_BINARY} is not recorded in "
                                  "proverctl's trust manifest", trust_hint, broken=True)
    wanted = custom if custom is not None else default_judge_command(Path(workspace))
    if record.command != wanted or record.lean_command != lean_command:
        return TrustedJudge(None, "the judge's command line is not the one the trust manifest records", trust_hint, broken=True)
    changed = changed_files(record.files)
    if changed:
        return TrustedJudge(None, f"{changed[0]} no longer matches its sha256 in the trust manifest (changed since it was recorded)",
                            f"{setup_hint}; if you rebuilt it yourself, `proverctl lean trust` records it again", broken=True)
    moved = unrecorded_program([record.command, record.lean_command, record.leanchecker], record.files)
    if moved:
        return TrustedJudge(None, moved, f"{setup_hint}; if you rebuilt it yourself, `proverctl lean trust` records it again", broken=True)
    return TrustedJudge(record)


def repl_problem(workspace: Path | None, repl_command: list[str], paths: Paths | None = None) -> str | None:
    """Why the REPL must not run: a REPL the manifest records whose files changed since."""
    manifest = load(workspace, paths)
    if manifest is None or manifest.repl_command != tuple(repl_command):
        return None
    changed = changed_files(manifest.repl_files)
    return f"{changed[0]} no longer matches its sha256 in the trust manifest (changed since it was recorded)" if changed else None


def trust_base(workspace: Path | None, commands: list[tuple[str, ...] | list[str] | None], paths: Paths | None = None):
    """What no sandboxed process may change or see (proverctl.lean.sandbox.TrustBase): the workspace,
    the judge's cache, the files of every command Lean processes run, a secret in the state dir."""
    from proverctl.lean.sandbox import TrustBase, program_paths

    paths = paths or Paths.resolve()
    cache = paths.cache_dir / "judge"
    cache.mkdir(parents=True, exist_ok=True)
    used = tuple(tuple(c) for c in commands if c)
    binaries = tuple(p for command in used for p in program_paths(command) if p.is_file())
    return TrustBase(workspace=Path(workspace) if workspace is not None else None, cache_dir=cache, binaries=binaries,
                     secret=paths.state_dir / "sandbox-canary.secret", readable=(cache,), commands=used)


def record_workspace_trust(profile: str, workspace: Path | None, *, repl_command: list[str], judge_command: str | None = None,
                           judge_lean_command: str = "lake env lean", dialect: str | None = None,
                           leanchecker: tuple[str, ...] | None = None, paths: Paths | None = None) -> Manifest:
    """`lean setup`'s last step and `proverctl lean trust`: record the workspace's REPL and judge as
    they are now (the judge may be absent: then only the REPL is recorded)."""
    import shlex

    judge = judge_record(workspace, command=tuple(shlex.split(judge_command)) if judge_command else None,
                         lean_command=tuple(shlex.split(judge_lean_command)), dialect=dialect, leanchecker=leanchecker)
    return record(profile, workspace, repl_command=repl_command, judge=judge, paths=paths)
