"""The kernel judge: a verdict given in fresh processes the candidate never ran in.

For each candidate the REPL pre-filter accepted, the judge (SafeVerify, pinned per Lean profile in
lean_template/, built by `lean setup` and recorded in the trust manifest, proverctl.lean.trust):

1. compiles the *challenge* on its own (challenge.py: the header and the ORIGINAL statement with
   `sorry`) with `lake env lean -o Proof.olean Proof.lean`; cached per challenge text, content-addressed:
   the olean's sha256 is recorded outside the cache when it is made and checked at every use;
2. compiles the *solution* on its own, in a fresh temp dir: the same header and the candidate;
3. runs SafeVerify on the two oleans, which replays every declaration of the solution in the kernel
   (`Environment.replay`, as lean4checker does), compares each challenge declaration's name, kind and
   type as kernel terms with the solution's, and collects axioms itself (only propext, Quot.sound and
   Classical.choice pass); the `modern` profile's SafeVerify also gets `--disallow-partial`;
4. where the toolchain ships `leanchecker` (Lean >= 4.28), replays the solution module again with it.

Every step runs in the run's sandbox (proverctl.lean.sandbox) with memory and time limits: the solution's
compile can write nothing but its temp dir, so it can touch neither the cache nor the workspace nor the
judge. The judge runs only while its files hash to the trust manifest (checked before each run), and its
label comes from that manifest. Only the judge's exit status together with its own final success line
counts; what a solution prints while it is elaborated goes to its compile's output, never the judge's.
A failure of the trusted side (the challenge does not compile, SafeVerify cannot replay it) is an
`error`, never a `rejected`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from proverctl.lean.sandbox import Sandbox
from proverctl.lean.trust import sha256_file, unrecorded_program
from proverctl.lean.targets import Target
from proverctl.lean.verdict import NATIVE_DECIDE_AXIOM, STANDARD_AXIOMS, Policy, Verdict, VerdictKind
from proverctl.verify.challenge import FILE_NAME, challenge_text, context_problem, solution_text

SUCCESS = {"v1": "Finished with no errors.", "v2": "SafeVerify check passed."}
# v1 (0c0f7dc / 577e953, Main.lean): a submission problem prints "found a problem in SUB" before
# Lean's "uncaught exception: MSG"; a problem replaying the target prints only the exception.
_V1_FOUND = re.compile(r"^found a problem in ", re.M)
_UNCAUGHT = re.compile(r"uncaught exception: (.*)", re.S)
_V1_NAMED = re.compile(r"(?:theorem|definition|def|opaque|inductive|constructor|axiom|recursor|quot) (\S+) (?:does not|is not the same)|"
                       r"^(\S+) not found in submission|unsafe/partial function (\S+) detected")
_V1_NATIVE = f"{NATIVE_DECIDE_AXIOM} is not in the allowed set of standard axioms"
# v2 (b291b58, Main.lean): everything on stderr.
_V2_PROBLEM = re.compile(r"^Found a problem in .* with declaration (\S+): (.*)$", re.M)
_V2_AXIOMS = re.compile(r"^(\S+) used disallowed axioms\. #\[(.*)\]$", re.M)
_V2_REPLAYING = re.compile(r"^Replaying (.*)$", re.M)
V2_FLAGS = ("--disallow-partial",)


@dataclass
class JudgeSpec:
    """How to run the judge: `command` is SafeVerify's command line (the two olean paths are appended),
    `lean_command` compiles a file (`-o OUT FILE` appended); `files` are the sha256 the trust manifest
    recorded for every file they name; `leanchecker` (Lean >= 4.28) replays each solution again."""

    command: tuple[str, ...]
    lean_command: tuple[str, ...]
    workspace: Path | None
    label: str  # what the store and the reports say decided, e.g. "safeverify@0c0f7dc"
    dialect: str = "v1"
    sandbox: Sandbox = field(default_factory=lambda: Sandbox("none"))
    memory_mb: int | None = 8192
    compile_timeout: float = 360.0
    judge_timeout: float = 360.0
    cache_dir: Path | None = None
    index_dir: Path | None = None  # where challenge hashes are recorded (outside anything a sandbox can see)
    files: dict[str, str] = field(default_factory=dict)
    leanchecker: tuple[str, ...] | None = None
    lean_path: str | None = None
    context: str = ""  # what else decides a challenge's olean: the workspace, its toolchain and lake manifest


@dataclass
class JudgeOutcome:
    kind: VerdictKind
    reasons: list[str]
    seconds: float
    output: str = ""
    failures: list[tuple[str | None, str]] = field(default_factory=list)  # (declaration, what the judge said)
    disallowed: dict[str, list[str]] = field(default_factory=dict)  # v2: declaration -> all its axioms, when some are disallowed
    sandbox: str | None = None  # the sandbox it ran in, where that is not the verifier's own (a Ray worker's)

    def as_dict(self) -> dict:
        """Plain data (what a Ray worker sends back)."""
        return {"kind": self.kind.value, "reasons": list(self.reasons), "seconds": self.seconds, "output": self.output,
                "failures": [list(f) for f in self.failures], "disallowed": dict(self.disallowed), "sandbox": self.sandbox}

    @classmethod
    def from_dict(cls, data: dict) -> "JudgeOutcome":
        return cls(VerdictKind(data["kind"]), list(data["reasons"]), float(data["seconds"]), data.get("output", ""),
                   [(d, what) for d, what in data.get("failures", [])], dict(data.get("disallowed", {})), data.get("sandbox") or "none")


@dataclass
class _Run:
    code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str


class JudgeBase:
    """What JudgedVerifier and the file checks ask of a judge, here (Judge) or on Ray workers
    (proverctl.verify.ray.RayJudge): its label and dialect (from `spec`, the recorded judge), the sandbox
    its verdicts ran in, and `judge(challenge, solution)`."""

    spec: JudgeSpec

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def dialect(self) -> str:
        return self.spec.dialect

    @property
    def sandbox_label(self) -> str:
        return self.spec.sandbox.label

    async def judge(self, challenge: str, solution: str) -> JudgeOutcome:
        raise NotImplementedError

    async def judge_target(self, target: Target, code: str) -> JudgeOutcome:
        return await self.judge(challenge_text(target), solution_text(target, code))


class Judge(JudgeBase):
    """Judges (challenge, solution) pairs. Challenge oleans are compiled once and cached."""

    def __init__(self, spec: JudgeSpec) -> None:
        self.spec = spec
        self._locks: dict[str, asyncio.Lock] = {}
        self._stats: dict[str, tuple] = {}
        self.runs = 0  # (no file is taken as checked until trust_problem has hashed it once)

    def trust_problem(self) -> str | None:
        """Why the judge must not run now: a recorded file changed since the trust manifest was checked,
        or a program its command lines run is not a recorded file (a symlink turned elsewhere)."""
        program = unrecorded_program([self.spec.command, self.spec.lean_command, self.spec.leanchecker], self.spec.files)
        if program:
            return f"judge: {program}; no verdict from it counts until `proverctl lean setup` or `proverctl lean trust` records it again"
        for path, digest in self.spec.files.items():
            key = _stat_key(path)
            if key is not None and key == self._stats.get(path):
                continue
            try:
                same = sha256_file(Path(path)) == digest
            except OSError:
                same = False
            if not same:
                return (f"judge: {path} no longer matches the trust manifest (changed since `proverctl lean setup`); "
                        "no verdict from it counts until `proverctl lean setup` or `proverctl lean trust` records it again")
            self._stats[path] = key
        return None

    async def judge(self, challenge: str, solution: str) -> JudgeOutcome:
        started = time.monotonic()
        problem = self.trust_problem()
        if problem:
            return JudgeOutcome(VerdictKind.error, [problem], 0.0)
        context = context_problem(challenge, solution)
        if context is not None:
            kind, why = context
            return JudgeOutcome(VerdictKind(kind), [f"judge ({self.spec.label}): {why}"], 0.0)
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
                                       writable=[directory], readable=[work], scratch=work, timeout=self.spec.compile_timeout)
            if compiled.code is None:
                return JudgeOutcome(VerdictKind.timeout, [f"judge: compiling the solution took over {self.spec.compile_timeout:g} s"],
                                    time.monotonic() - started)
            if compiled.code != 0 or not _regular_file(directory / "Proof.olean"):
                first = _first_error(compiled.stdout + compiled.stderr)
                return JudgeOutcome(VerdictKind.rejected, [f"judge ({self.spec.label}): the solution does not compile on its own: {first}"],
                                    time.monotonic() - started, compiled.stdout + compiled.stderr)
            flags = V2_FLAGS if self.spec.dialect == "v2" else ()
            ran = await self._run([*self.spec.command, *flags, str(challenge_olean), str(directory / "Proof.olean")], writable=[],
                                  readable=[work], scratch=work, timeout=self.spec.judge_timeout)
            self.runs += 1
            outcome = self.read(ran, time.monotonic() - started, challenge=str(challenge_olean))
            if outcome.kind is VerdictKind.proved and self.spec.leanchecker:
                outcome = await self._leanchecker(directory, work, started) or outcome
            return outcome
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def _leanchecker(self, directory: Path, work: Path, started: float) -> JudgeOutcome | None:
        """A second kernel replay of the solution module (`leanchecker Proof`, Lean >= 4.28); None when it passes."""
        lean_path = os.pathsep.join(p for p in (self.spec.lean_path, str(directory)) if p)
        ran = await self._run([*self.spec.leanchecker, "Proof"], writable=[], readable=[work], scratch=work,
                              timeout=self.spec.judge_timeout, env={"LEAN_PATH": lean_path}, cwd=directory)
        if ran.code == 0:
            return None
        if ran.code is None:
            return JudgeOutcome(VerdictKind.timeout, [f"leanchecker: no answer within {self.spec.judge_timeout:g} s"],
                                time.monotonic() - started)
        said = _UNCAUGHT.search(ran.stderr)
        detail = _first_line(said.group(1)) if said else (ran.stderr.strip().splitlines() or [f"exit {ran.code}"])[-1]
        kind = VerdictKind.rejected if ran.code == 1 and said else VerdictKind.error
        return JudgeOutcome(kind, [f"leanchecker: {detail[:300]}"], time.monotonic() - started, ran.stdout + ran.stderr)

    # -----------------------------------------------------------------------------------------
    # Reading SafeVerify

    def read(self, ran: _Run, seconds: float, *, challenge: str = "") -> JudgeOutcome:
        """The verdict from the judge's exit status and its own output lines (see the dialects above)."""
        output = ran.stdout + ran.stderr
        label = self.spec.label
        if ran.code is None:
            return JudgeOutcome(VerdictKind.timeout, [f"judge: no answer within {self.spec.judge_timeout:g} s"], seconds, output)
        stream = ran.stdout if self.spec.dialect == "v1" else ran.stderr
        last = (stream.strip().splitlines() or [""])[-1].strip()
        if ran.code == 0:
            if last == SUCCESS[self.spec.dialect]:
                return JudgeOutcome(VerdictKind.proved, [], seconds, output)
            return JudgeOutcome(VerdictKind.error, [f"judge ({label}) exited 0 without its success line"], seconds, output)
        if ran.code == 1:
            read = self._read_v1 if self.spec.dialect == "v1" else self._read_v2
            outcome = read(ran, challenge)
            if outcome is not None:
                outcome.seconds, outcome.output = seconds, output
                return outcome
        tail = (ran.stderr.strip().splitlines() or ran.stdout.strip().splitlines() or ["no output"])[-1]
        return JudgeOutcome(VerdictKind.error, [f"judge ({label}) failed (exit {ran.code}): {tail[:200]}"], seconds, output)

    def _read_v1(self, ran: _Run, challenge: str) -> JudgeOutcome | None:
        said = _UNCAUGHT.search(ran.stderr)
        if not said:
            return None
        message = said.group(1).strip()
        if not _V1_FOUND.search(ran.stderr):  # the target (our trusted challenge) failed to replay
            return JudgeOutcome(VerdictKind.error, [f"judge ({self.spec.label}): the trusted statement failed in the judge: "
                                                    f"{_first_line(message)}"], 0.0)
        match = _V1_NAMED.search(message)
        name = next((g for g in match.groups() if g), None) if match else None
        return JudgeOutcome(VerdictKind.rejected, [f"judge ({self.spec.label}): {_first_line(message)}"], 0.0,
                            failures=[(name, message)])

    def _read_v2(self, ran: _Run, challenge: str) -> JudgeOutcome | None:
        problems = [(m.group(1), m.group(2).strip()) for m in _V2_PROBLEM.finditer(ran.stderr)]
        disallowed = {m.group(1): [a.strip() for a in m.group(2).split(",") if a.strip()] for m in _V2_AXIOMS.finditer(ran.stderr)}
        if problems:
            reasons = [f"judge ({self.spec.label}): {name}: {what}" for name, what in problems]
            return JudgeOutcome(VerdictKind.rejected, reasons, 0.0, failures=problems, disallowed=disallowed)
        said = _UNCAUGHT.search(ran.stderr)
        if not said:
            return None
        message = said.group(1).strip()
        first = _first_line(message)
        replaying = _V2_REPLAYING.findall(ran.stderr[:said.start()])
        about_target = message.startswith("Target ") or (bool(replaying) and replaying[-1].strip() == challenge and "Submission" not in message
                                                         and "has no imports" not in message)
        if about_target:
            return JudgeOutcome(VerdictKind.error, [f"judge ({self.spec.label}): the trusted statement failed in the judge: {first}"], 0.0)
        return JudgeOutcome(VerdictKind.rejected, [f"judge ({self.spec.label}): {first}"], 0.0, failures=[(None, message)],
                            disallowed=disallowed)

    # -----------------------------------------------------------------------------------------
    # The challenge cache

    async def _challenge(self, text: str) -> Path | JudgeOutcome:
        """The compiled challenge, from the cache (its olean checked against the hash recorded when it was
        made) or compiled now, once per text even when asked concurrently. A cached olean that no longer
        matches its record is an error for this check, and the entry is rebuilt."""
        key = hashlib.sha256(f"{self.spec.label}\0{self.spec.dialect}\0{self.spec.context}\0{text}".encode("utf-8")).hexdigest()[:32]
        root = _mkdir(self.spec.cache_dir or Path(tempfile.gettempdir()) / "proverctl-judge-cache")
        index = _mkdir(self.spec.index_dir or root.parent / (root.name + "-index"))
        entry, record = root / key, index / f"{key}.json"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            with _FileLock(index / f"{key}.lock"):
                tampered = None
                if entry.exists():
                    tampered = _cache_problem(entry, record, text)
                    if tampered is None:
                        return entry / "Proof.olean"
                    shutil.rmtree(entry, ignore_errors=True)
                record.unlink(missing_ok=True)  # (a record whose entry was cleared away is simply rebuilt)
                built = await self._build_challenge(text, root, entry, record)
                if isinstance(built, JudgeOutcome) or tampered is None:
                    return built
                return JudgeOutcome(VerdictKind.error, [f"judge: the cached challenge did not match its recorded hash ({tampered}); "
                                                        "it was rebuilt, and this check counts as an error"], 0.0)

    async def _build_challenge(self, text: str, root: Path, entry: Path, record: Path) -> Path | JudgeOutcome:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        fresh = Path(tempfile.mkdtemp(prefix=".entry-", dir=root))
        try:
            (staging / FILE_NAME).write_text(text, encoding="utf-8")
            compiled = await self._run([*self.spec.lean_command, "-o", str(staging / "Proof.olean"), str(staging / FILE_NAME)],
                                       writable=[staging], readable=[], scratch=staging, timeout=self.spec.compile_timeout)
            if compiled.code != 0 or not _regular_file(staging / "Proof.olean"):
                first = _first_error(compiled.stdout + compiled.stderr) if compiled.code is not None else "timed out"
                return JudgeOutcome(VerdictKind.error, [f"judge: the trusted statement does not compile: {first}"], 0.0,
                                    compiled.stdout + compiled.stderr)
            # Only the olean's bytes leave the staging dir (which the compile could write): copied without
            # following links, hashed on the way, next to our own copy of the text.
            digest = hashlib.sha256()
            fd = os.open(staging / "Proof.olean", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as source, open(fresh / "Proof.olean", "wb") as target:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    digest.update(chunk)
                    target.write(chunk)
            (fresh / FILE_NAME).write_text(text, encoding="utf-8")
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(fresh, entry)
            record.write_text(json.dumps({"olean_sha256": digest.hexdigest(), "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                                          "label": self.spec.label, "created": time.time()}), encoding="utf-8")
            return entry / "Proof.olean"
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(fresh, ignore_errors=True)

    # -----------------------------------------------------------------------------------------
    # Running one sandboxed command

    async def _run(self, command: list[str], *, writable: list[Path], readable: list[Path], scratch: Path, timeout: float,
                   env: dict[str, str] | None = None, cwd: Path | None = None) -> _Run:
        """One sandboxed command with the memory cap, killed with its process group at the timeout."""
        from proverctl.processes import run_confined

        tmp = Path(tempfile.mkdtemp(prefix="tmp.", dir=scratch))
        readable = [p for p in (self.spec.cache_dir, *readable) if p is not None]
        launch = self.spec.sandbox.launch(list(command), cwd=cwd or self.spec.workspace, tmpdir=tmp, readable=readable,
                                          writable=writable, env=env)
        code, out, err = await run_confined(launch, timeout=timeout, memory_mb=self.spec.memory_mb)
        return _Run(code, out, err)


def _stat_key(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _cache_problem(entry: Path, record: Path, text: str) -> str | None:
    """Why a cache entry cannot be used (None: it matches its record)."""
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no record of its hash"
    if data.get("text_sha256") != hashlib.sha256(text.encode()).hexdigest():
        return "the record is for another statement"
    olean = entry / "Proof.olean"
    if not _regular_file(olean) or not _regular_file(entry / FILE_NAME):
        return "its files are missing or not plain files"
    try:
        if (entry / FILE_NAME).read_text(encoding="utf-8") != text:
            return "its statement changed"
        if sha256_file(olean) != data.get("olean_sha256"):
            return "its olean changed"
    except OSError as exc:
        return str(exc)
    return None


class _FileLock:
    """An exclusive lock between proverctl processes building the same challenge (fcntl; a no-op where
    there is none). The lock files live beside the hash records, where no sandboxed process can see them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else "(no message)"


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
    judge (a `Judge` here, or proverctl.verify.ray.RayJudge on Ray workers), whose verdict is the one
    that counts. A REPL-only acceptance is never labelled kernel-checked."""

    def __init__(self, prefilter, judge, policy: Policy) -> None:
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
            verdict.sandbox = self._sandbox(verdict)
            return verdict
        outcome = await self.judge.judge_target(target, code)
        final = combine(verdict, outcome, self.judge.label, self.policy, self.judge.dialect)
        final.sandbox = self._sandbox(verdict, outcome.sandbox)
        return final

    def _sandbox(self, prefilter: Verdict, judged_in: str | None = None) -> str:
        """The verdict's sandbox: "none" when the pre-filter ran unsandboxed (a Ray node), else where the
        judge ran (a Ray worker says for each outcome), else the judge's own."""
        if prefilter.sandbox == "none":
            return "none"
        return judged_in or self.judge.sandbox_label


def native_exception(outcome: JudgeOutcome, prefilter_axioms: list[str] | None, policy: Policy, dialect: str) -> bool:
    """May a refusal stand aside for `--allow-native-decide`? Only when every refusal is about
    Lean.ofReduceBool and nothing else: v2 names each declaration and lists all its axioms; v1 stops at its
    first refusal, so there the pre-filter's own axiom answer (marker-checked) must also list
    Lean.ofReduceBool and nothing beyond the standard axioms."""
    if not policy.allow_native_decide or outcome.kind is not VerdictKind.rejected or not outcome.failures:
        return False
    allowed = STANDARD_AXIOMS | {NATIVE_DECIDE_AXIOM}
    axioms = set(prefilter_axioms or ())
    if dialect == "v2":
        if not outcome.disallowed or any(set(found) - allowed for found in outcome.disallowed.values()):
            return False
        if not any(NATIVE_DECIDE_AXIOM in found for found in outcome.disallowed.values()):
            return False
        return all(what == "uses disallowed axioms" for _, what in outcome.failures)
    return (all(what.strip() == _V1_NATIVE for _, what in outcome.failures) and NATIVE_DECIDE_AXIOM in axioms
            and axioms <= allowed)


def combine(prefilter: Verdict, outcome: JudgeOutcome, label: str, policy: Policy, dialect: str = "v1") -> Verdict:
    """The final verdict for a candidate the pre-filter accepted."""
    seconds = prefilter.seconds + outcome.seconds
    if outcome.kind is VerdictKind.proved:
        return Verdict(VerdictKind.proved, [], prefilter.messages, prefilter.axioms, seconds, judge=label)
    if native_exception(outcome, prefilter.axioms, policy, dialect):
        # SafeVerify admits only the three standard axioms: an allowed native_decide proof can be no
        # more than REPL-checked, and is labelled so.
        note = f"REPL-checked only: {label} admits only the standard axioms, and this proof uses native_decide"
        return Verdict(VerdictKind.proved, [note], prefilter.messages, prefilter.axioms, seconds, judge="repl")
    return Verdict(outcome.kind, outcome.reasons, prefilter.messages, prefilter.axioms, seconds, judge=label)
