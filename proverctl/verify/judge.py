"""The kernel judge: a verdict given in fresh processes the candidate never ran in.

For each candidate the REPL pre-filter accepted, the judge (SafeVerify, pinned per Lean profile in
lean_template/, built by `lean setup`):

1. compiles the *challenge* on its own: the target's header and its ORIGINAL statement with `sorry`
   (`lake env lean -o Proof.olean Proof.lean`; cached per challenge text, so once per target);
2. compiles the *solution* on its own, in a fresh temp dir: the same header and the candidate;
3. runs `safe_verify challenge.olean solution.olean`, which replays every declaration of the solution
   in the kernel (`Environment.replay`, as lean4checker does), compares each challenge declaration's
   name, kind and type as kernel terms with the solution's, and collects axioms itself (only propext,
   Quot.sound and Classical.choice pass).

Every step runs in the sandbox (proverctl.lean.sandbox) with memory and time limits; the solution's
compile cannot write outside its temp dir, so it can neither touch the cached challenge nor the
workspace. Only exit status 0 together with SafeVerify's own success line counts: text a candidate
prints while it is elaborated goes to the solution compile's output, never to the judge's.

Earlier declarations of the header that still have `sorry` become axioms in both files (their
statement kept): SafeVerify judges every theorem and definition of the challenge, and an unproved
lemma earlier in the file must neither fail the target nor be usable by it (a target that uses one
depends on that axiom and is refused).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from proverctl.lean.source import Source, join_code
from proverctl.lean.workspace import JUDGE_BINARY
from proverctl.lean.targets import Target, with_sorry, without_assign
from proverctl.lean.verdict import Policy, Verdict, VerdictKind

# The judge pinned per profile (lean_template/<profile>/lakefile.lean requires it; LEAN_PINS notes why).
PINNED = {
    "deepseek-v2": ("safeverify", "0c0f7dcf6cb66333a944d062ec4c431986da1ca6", "v1"),  # branch minif2f-deepseek-check
    "kimina": ("safeverify", "577e95319a2bb1bb8df541f0c645811f6577a0ae", "v1"),  # branch minif2f-kimina-check
    "modern": ("safeverify", "b291b588a53999a7e837dda61c7dbfe8c550c814", "v2"),  # main (Lean v4.27.0)
}
SUCCESS = {"v1": "Finished with no errors.", "v2": "SafeVerify check passed."}
_UNCAUGHT = re.compile(r"uncaught exception: (.*)")
_PROBLEM = re.compile(r"Found a problem in .* with declaration (\S+): (.*)")
NATIVE_DECIDE_REFUSAL = "Lean.ofReduceBool is not in the allowed set"
EXAMPLE_PREFIX = "proverctl_example_"
FILE_NAME = "Proof.lean"  # both files get the same module name, so private names agree


@dataclass(frozen=True)
class JudgeSpec:
    """How to run the judge: `command` is SafeVerify's command line (the two olean paths are appended),
    `lean_command` compiles a file (`-o OUT FILE` appended), both run in `workspace`."""

    command: tuple[str, ...]
    lean_command: tuple[str, ...]
    workspace: Path | None
    label: str  # what the store and the reports say decided, e.g. "safeverify@0c0f7dc"
    dialect: str = "v1"  # v1: the 4.9 / 4.15 branches; v2: main (Cli flags, "SafeVerify check passed.")
    sandbox: str = "none"
    memory_mb: int | None = 8192
    compile_timeout: float = 360.0
    judge_timeout: float = 360.0
    cache_dir: Path | None = None


def find_judge(profile: str, workspace: Path | None, *, command: str | None, lean_command: str | None) -> tuple[tuple[str, ...], str, str] | None:
    """(command, label, dialect) of the judge for a profile: the `judge_command` setting when given,
    else the SafeVerify binary `lean setup` built in the workspace; None when there is none."""
    import shlex

    name, revision, dialect = PINNED.get(profile, ("safeverify", "unknown", "v1"))
    if command:
        argv = tuple(shlex.split(command))
        return argv, f"{name}@custom:{Path(argv[-1]).name if argv else '?'}", os.environ.get("PROVERCTL_JUDGE_DIALECT", dialect)
    if workspace is None or not (workspace / JUDGE_BINARY).is_file() or shutil.which("lake") is None:
        return None
    return ("lake", "env", str(workspace / JUDGE_BINARY)), f"{name}@{revision[:7]}", dialect


# ---------------------------------------------------------------------------------------------
# The two files


def _rename_examples(text: str) -> str:
    """`example` -> `theorem proverctl_example_LINE` (SafeVerify compares named constants only)."""
    source = Source(text)
    out = text
    for decl in sorted((d for d in source.declarations if d.kind == "example"), key=lambda d: d.keyword_start, reverse=True):
        out = out[: decl.keyword_start] + f"theorem {EXAMPLE_PREFIX}{decl.line}" + out[decl.keyword_start + len("example"):]
    return out


def judge_header(header: str) -> str:
    """The header as both files get it: each earlier declaration that still has a `sorry` becomes an
    axiom with the same name and statement (examples, which name nothing, are dropped)."""
    source = Source(header)
    pieces, cursor = [], 0
    for decl in source.declarations:
        if not decl.has_sorry:
            continue
        replacement = "" if decl.kind == "example" or decl.name is None else as_axiom(decl)
        pieces.append(header[cursor:decl.full_start])
        pieces.append(replacement)
        cursor = decl.end
    pieces.append(header[cursor:])
    return "".join(pieces)


def as_axiom(decl) -> str:
    """`axiom NAME SIGNATURE`: a declaration's statement without its proof (instances stay instances)."""
    text = decl.source.text
    stop = decl.body_start if decl.body_start is not None else decl.end
    signature = without_assign(text[decl.keyword_start + len(decl.kind):stop])
    kept = " ".join(m for m in decl.modifiers if m in ("private", "protected"))
    prefix = ("@[instance] " if decl.kind == "instance" else "") + (kept + " " if kept else "")
    return f"{prefix}axiom{signature}"


def challenge_text(target: Target) -> str:
    """The trusted file: the header and the ORIGINAL statement with `sorry` (never the model's text)."""
    return _rename_examples(join_code(judge_header(target.header), target.doc or "", with_sorry(target.statement))) + "\n"


def solution_text(target: Target, code: str) -> str:
    """The candidate's file: the same header and the checked code (original statement + proof)."""
    return _rename_examples(join_code(judge_header(target.header), code)).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class JudgeOutcome:
    kind: VerdictKind
    reasons: list[str]
    seconds: float
    output: str = ""


@dataclass
class _Run:
    code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str


class Judge:
    """Judges (challenge, solution) pairs. Challenge oleans are compiled once and cached."""

    def __init__(self, spec: JudgeSpec) -> None:
        self.spec = spec
        self._locks: dict[str, asyncio.Lock] = {}
        self.runs = 0

    async def judge_target(self, target: Target, code: str) -> JudgeOutcome:
        return await self.judge(challenge_text(target), solution_text(target, code))

    async def judge(self, challenge: str, solution: str) -> JudgeOutcome:
        started = time.monotonic()
        challenge_olean = await self._challenge(challenge)
        if isinstance(challenge_olean, JudgeOutcome):
            challenge_olean.seconds = time.monotonic() - started
            return challenge_olean
        work = Path(tempfile.mkdtemp(prefix="proverctl-judge-"))
        try:
            directory = work / "solution"
            directory.mkdir()
            (directory / FILE_NAME).write_text(solution, encoding="utf-8")
            compiled = await self._run([*self.spec.lean_command, "-o", str(directory / "Proof.olean"), str(directory / FILE_NAME)],
                                       writable=directory, scratch=work, timeout=self.spec.compile_timeout)
            if compiled.code is None:
                return JudgeOutcome(VerdictKind.timeout, [f"judge: compiling the solution took over {self.spec.compile_timeout:g} s"],
                                    time.monotonic() - started)
            if compiled.code != 0 or not (directory / "Proof.olean").is_file():
                first = _first_error(compiled.stdout + compiled.stderr)
                return JudgeOutcome(VerdictKind.rejected, [f"judge ({self.spec.label}): the solution does not compile on its own: {first}"],
                                    time.monotonic() - started, compiled.stdout + compiled.stderr)
            ran = await self._run([*self.spec.command, str(challenge_olean), str(directory / "Proof.olean")], writable=None,
                                  scratch=work, timeout=self.spec.judge_timeout)
            self.runs += 1
            return self._read(ran, time.monotonic() - started)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _read(self, ran: _Run, seconds: float) -> JudgeOutcome:
        """The verdict from the judge's exit status and its own output lines."""
        output = ran.stdout + ran.stderr
        if ran.code is None:
            return JudgeOutcome(VerdictKind.timeout, [f"judge: no answer within {self.spec.judge_timeout:g} s"], seconds, output)
        if ran.code == 0:
            if SUCCESS[self.spec.dialect] in output:
                return JudgeOutcome(VerdictKind.proved, [], seconds, output)
            return JudgeOutcome(VerdictKind.error, [f"judge ({self.spec.label}) exited 0 without its success line"], seconds, output)
        problems = [f"{m.group(1)}: {m.group(2)}" for m in _PROBLEM.finditer(ran.stderr)]
        uncaught = _UNCAUGHT.findall(ran.stderr)
        if ran.code == 1 and (problems or uncaught):
            reasons = [f"judge ({self.spec.label}): {text.strip()}" for text in (problems or uncaught)]
            return JudgeOutcome(VerdictKind.rejected, reasons, seconds, output)
        tail = (ran.stderr.strip().splitlines() or ran.stdout.strip().splitlines() or ["no output"])[-1]
        return JudgeOutcome(VerdictKind.error, [f"judge ({self.spec.label}) failed (exit {ran.code}): {tail[:200]}"], seconds, output)

    async def _challenge(self, text: str) -> Path | JudgeOutcome:
        """The compiled challenge, from the cache or compiled now (once per text, even when asked concurrently)."""
        key = hashlib.sha256((self.spec.label + "\0" + text).encode("utf-8")).hexdigest()[:24]
        root = self.spec.cache_dir or Path(tempfile.gettempdir()) / "proverctl-judge-cache"
        directory = root / key
        olean = directory / "Proof.olean"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if olean.is_file() and (directory / FILE_NAME).read_text(encoding="utf-8") == text:
                return olean
            staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=_mkdir(root)))
            try:
                (staging / FILE_NAME).write_text(text, encoding="utf-8")
                compiled = await self._run([*self.spec.lean_command, "-o", str(staging / "Proof.olean"), str(staging / FILE_NAME)],
                                           writable=staging, scratch=staging, timeout=self.spec.compile_timeout)
                if compiled.code != 0 or not (staging / "Proof.olean").is_file():
                    first = _first_error(compiled.stdout + compiled.stderr) if compiled.code is not None else "timed out"
                    return JudgeOutcome(VerdictKind.error, [f"judge: the challenge (the original statement) does not compile: {first}"], 0.0,
                                        compiled.stdout + compiled.stderr)
                shutil.rmtree(directory, ignore_errors=True)
                os.replace(staging, directory)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return olean

    async def _run(self, command: list[str], *, writable: Path | None, scratch: Path, timeout: float) -> _Run:
        """One sandboxed command with the memory cap, killed with its process group at the timeout."""
        from proverctl.lean.repl import _limit_memory
        from proverctl.lean.sandbox import sandbox_env, wrap

        tmp = Path(tempfile.mkdtemp(prefix="tmp.", dir=scratch))
        cwd = self.spec.workspace
        argv = list(command)
        if self.spec.sandbox == "bwrap":
            readable = [p for p in (self.spec.cache_dir, scratch) if p is not None]
            argv = wrap(argv, cwd=cwd, tmpdir=tmp, readable=readable)
            if writable is not None:  # after the read-only binds, so it wins
                argv = argv[:-len(command) - 1] + ["--bind", str(writable), str(writable), "--"] + list(command)
        proc = await asyncio.create_subprocess_exec(*argv, cwd=str(cwd) if cwd else None, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                    env=sandbox_env(tmp), start_new_session=True,
                                                    preexec_fn=_limit_memory(self.spec.memory_mb))
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            return _Run(None, "", "")
        finally:  # at the timeout (or when cancelled): the whole process group goes
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await proc.wait()
        return _Run(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _first_error(output: str) -> str:
    for line in output.splitlines():
        if "error" in line:
            return line.strip()[:300]
    lines = output.strip().splitlines()
    return lines[-1][:300] if lines else "no output"


# ---------------------------------------------------------------------------------------------
# The verifier with a judge behind the pre-filter


class JudgedVerifier:
    """The REPL pre-filter first (fast, rejects most candidates); each candidate it accepts goes to the
    judge, whose verdict is the one that counts. A REPL-only acceptance is never labelled kernel-checked."""

    def __init__(self, prefilter, judge: Judge, policy: Policy) -> None:
        self.prefilter, self.judge, self.policy = prefilter, judge, policy
        self.pool = getattr(prefilter, "pool", None)
        self.capacity = getattr(prefilter, "capacity", None)

    def __getattr__(self, name: str):
        if name == "lean_feedback":  # drafts get the pre-filter's answer, never the judge's: feedback, not a verdict
            return getattr(self.prefilter, name)
        raise AttributeError(name)

    async def verify(self, target: Target, code: str) -> Verdict:
        verdict = await self.prefilter.verify(target, code)
        if not verdict.proved:
            verdict.judge = verdict.judge or "repl"
            return verdict
        outcome = await self.judge.judge_target(target, code)
        return combine(verdict, outcome, self.judge.spec.label, self.policy)


def combine(prefilter: Verdict, outcome: JudgeOutcome, label: str, policy: Policy) -> Verdict:
    """The final verdict for a candidate the pre-filter accepted."""
    seconds = prefilter.seconds + outcome.seconds
    if outcome.kind is VerdictKind.proved:
        return Verdict(VerdictKind.proved, [], prefilter.messages, prefilter.axioms, seconds, judge=label)
    if (outcome.kind is VerdictKind.rejected and policy.allow_native_decide and outcome.reasons
            and all(NATIVE_DECIDE_REFUSAL in r for r in outcome.reasons)):
        # SafeVerify admits only the three standard axioms: an allowed native_decide proof can be no
        # more than REPL-checked, and is labelled so.
        note = f"REPL-checked only: {label} admits only the standard axioms, and this proof uses native_decide"
        return Verdict(VerdictKind.proved, [note], prefilter.messages, prefilter.axioms, seconds, judge="repl")
    return Verdict(outcome.kind, outcome.reasons, prefilter.messages, prefilter.axioms, seconds, judge=label)


# ---------------------------------------------------------------------------------------------
# Whole files: `check FILE` and `check FILE --against CHALLENGE`

_NAMED = re.compile(r"(?:theorem|definition|def|opaque|inductive|constructor|axiom) (\S+) (?:does not|is not the same)|"
                    r"(\S+) not found in submission|unsafe/partial function (\S+)|declaration (\S+):")


def _named_in(reasons: list[str]) -> set[str]:
    names = set()
    for reason in reasons:
        for match in _NAMED.finditer(reason):
            names.update(g for g in match.groups() if g)
    return names


def file_challenge(text: str, judged: set[int], *, prove: bool) -> str:
    """The file as the judge sees it: each declaration in `judged` (by start offset) keeps its
    statement, with `sorry` for its proof when `prove` is False; every other declaration with a proof
    becomes an axiom (it is not being judged, and anything that uses it depends on that axiom)."""
    source = Source(text)
    pieces, cursor = [], 0
    for decl in source.declarations:
        if decl.kind not in ("theorem", "lemma", "def", "abbrev", "instance", "example", "opaque") or decl.body_start is None:
            continue
        if decl.start in judged:
            if prove:
                continue
            pieces += [text[cursor:decl.start], with_sorry(text[decl.start:decl.body_start])]
            cursor = decl.end
        elif decl.kind == "example" or decl.name is None:
            pieces += [text[cursor:decl.full_start], ""]
            cursor = decl.end
        else:
            pieces += [text[cursor:decl.full_start], as_axiom(decl)]
            cursor = decl.end
    pieces.append(text[cursor:])
    return _rename_examples("".join(pieces))


async def judge_declarations(judge: Judge, text: str, results: list, *, challenge: str | None = None) -> None:
    """Put the judge behind the pre-filter's per-declaration verdicts of a whole file (`results`:
    DeclarationResult). The file is judged once with every accepted declaration at stake; a declaration
    the judge names is refused and the rest judged again without it; a refusal that names none refuses
    them all. With `challenge` (a trusted statement file) the solution is the file as written."""
    pending = {r.declaration.start: r for r in results if r.verdict.proved}
    for r in results:
        if not r.verdict.proved:
            r.verdict.judge = r.verdict.judge or "repl"
    while pending:
        trusted = challenge if challenge is not None else file_challenge(text, set(pending), prove=False)
        solution = text if challenge is not None else file_challenge(text, set(pending), prove=True)
        outcome = await judge.judge(trusted, solution)
        if outcome.kind is VerdictKind.proved:
            for r in pending.values():
                r.verdict.judge = judge.spec.label
                r.verdict.seconds += outcome.seconds
            return
        named = _named_in(outcome.reasons)
        hit = [r for r in pending.values() if {r.declaration.name, r.declaration.full_name,
                                              f"{EXAMPLE_PREFIX}{r.declaration.line}"} & named]
        if challenge is not None or not hit or outcome.kind is not VerdictKind.rejected:
            hit = list(pending.values())
        for r in hit:
            r.verdict.kind = outcome.kind
            r.verdict.reasons = r.verdict.reasons + outcome.reasons
            r.verdict.judge = judge.spec.label
            pending.pop(r.declaration.start)
