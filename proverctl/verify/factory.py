"""One way to build a verifier, from settings + what the request asks (policy, Ray, LeanDojo).

`prove`, `check`, `bench`, decompose and the TUI's re-verify all get their verifier here, so a policy
or a Lean profile means the same thing everywhere. Use it in two steps: `VerifySpec.resolve()` finds
the REPL and the sandbox (cheap; raises the environment errors before any model is started), then
`async with open_verifier(spec, jobs=N) as verification:` starts what checks candidates.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Protocol

from proverctl.errors import EnvironmentMissing, ProverctlError, UsageError, VerifierError
from proverctl.lean.checker import check_candidate
from proverctl.lean.pool import ReplPool, default_workers
from proverctl.lean.repl import ReplStartError
from proverctl.lean.sandbox import Sandbox
from proverctl.lean.targets import Target
from proverctl.lean.verdict import Policy, Verdict, VerdictKind
from proverctl.lean.workspace import ReplTarget

JUDGE_MODES = ("auto", "kernel", "repl")
SETUP_HINT = "fix --repl-command / PROVERCTL_REPL_COMMAND, or run `proverctl lean setup` (`proverctl doctor` lists what is missing)"


class Verifier(Protocol):
    async def verify(self, target: Target, code: str) -> Verdict: ...


@dataclass(frozen=True)
class VerifySpec:
    """Everything that decides how a candidate is checked. Built from Settings (which already merged
    flags, environment and config) plus the request's policy, Ray address and LeanDojo repository."""

    policy: Policy = Policy()
    lean_profile: str = "deepseek-v2"
    repl_command: str | None = None
    lean_project: str | None = None
    check_timeout: float = 60.0
    import_timeout: float = 600.0
    workers: int | None = None
    memory_mb: int = 8192
    max_uses: int = 200
    gc: bool = False
    sandbox: str = "auto"
    verify_on: str | None = None
    dojo: object | None = None  # proverctl.dojo.DojoSpec
    judge_mode: str = "auto"  # auto | kernel | repl
    judge_command: str | None = None
    judge_lean_command: str = "lake env lean"
    judge_on: str = "local"  # local | a Ray address: where the kernel judge runs
    lean_reader: str = "required"  # required | off (the lean_reader setting)
    # Filled by resolve():
    repl: ReplTarget | None = None
    sandboxed: Sandbox | None = None  # the sandbox every Lean process runs in (confirmed by its canary, or "none")
    judge: object | None = None  # proverctl.verify.judge.JudgeSpec, when a kernel judge decides
    notes: tuple[str, ...] = field(default=())
    resolved: bool = False  # resolve() has run (with a kimina server and no local workspace, repl stays None)

    @classmethod
    def from_settings(cls, settings, *, policy: Policy = Policy(), lean_profile: str | None = None, verify_on: str | None = None,
                      dojo=None) -> "VerifySpec":
        return cls(policy=policy, lean_profile=lean_profile or settings.lean_profile, repl_command=settings.repl_command,
                   lean_project=settings.lean_project, check_timeout=settings.check_timeout, import_timeout=settings.import_timeout,
                   workers=settings.workers, memory_mb=settings.repl_memory_mb, max_uses=settings.repl_max_uses, gc=settings.repl_gc,
                   sandbox=settings.sandbox, verify_on=verify_on, dojo=dojo, judge_mode=settings.judge,
                   judge_command=settings.judge_command, judge_lean_command=settings.judge_lean_command,
                   judge_on=settings.judge_on, lean_reader=settings.lean_reader)

    def resolve(self) -> "VerifySpec":
        """Find the REPL, the judge the trust manifest vouches for, and a sandbox its canary confirmed;
        every missing piece is a ProverctlError (exit 2, 3, or 4 for a trust base that fails its check)."""
        return replace(self._resolve(), resolved=True)

    def _resolve(self) -> "VerifySpec":
        if self.dojo is not None:
            if self.judge_mode == "kernel":
                raise UsageError("--judge kernel: LeanDojo runs are checked by LeanDojo, not by the kernel judge",
                                 hint="use --judge auto or repl with --repo")
            if self.judge_on != "local":
                raise UsageError("--judge-on: LeanDojo runs are checked by LeanDojo, not by the kernel judge", hint="leave out --judge-on")
            return replace(self, sandboxed=None)
        if self.judge_mode not in JUDGE_MODES:
            raise UsageError(f"unknown judge {self.judge_mode!r}", hint=f"choose {', '.join(JUDGE_MODES)}")
        self._check_ray_places()
        if self.verify_on is not None and kimina_address(self.verify_on):
            return self._resolve_kimina()
        from proverctl.lean import trust
        from proverctl.lean.sandbox import resolve as resolve_sandbox
        from proverctl.lean.workspace import resolve_repl
        from proverctl.paths import Paths

        paths = Paths.resolve()
        repl = resolve_repl(self.repl_command, self.lean_project, self.lean_profile)
        broken_repl = trust.repl_problem(repl.cwd, repl.command, paths)
        if broken_repl:
            raise VerifierError(f"the Lean REPL cannot be trusted: {broken_repl}",
                                hint=f"run `proverctl lean setup --profile {self.lean_profile}` again")
        found = None if self.judge_mode == "repl" else trust.trusted_judge(
            self.lean_profile, repl.cwd, judge_command=self.judge_command, judge_lean_command=self.judge_lean_command, paths=paths)
        record = found.record if found is not None else None
        commands = [repl.command] + ([record.command, record.lean_command, record.leanchecker] if record else [])
        # The sandbox first: without one nothing is kernel-checked, whatever judge there is (exit 4 for --judge kernel).
        sandbox = resolve_sandbox(self.sandbox, trust.trust_base(repl.cwd, commands, paths), kernel=self.judge_mode == "kernel")
        notes = self._judge_notes(found)
        if not sandbox.confirmed:
            notes += ("Lean runs without a sandbox (--sandbox none): every verdict is labelled REPL-checked (unsandboxed)",)
        judge = None
        if record is not None:
            from proverctl.verify.judge import JudgeSpec

            judge = JudgeSpec(command=record.command, lean_command=record.lean_command, workspace=repl.cwd, label=record.label,
                              dialect=record.dialect, sandbox=sandbox, memory_mb=self.memory_mb,
                              compile_timeout=self.import_timeout + self.check_timeout,
                              judge_timeout=self.import_timeout + self.check_timeout, cache_dir=paths.cache_dir / "judge",
                              index_dir=paths.state_dir / "judge-index", files=dict(record.files), leanchecker=record.leanchecker,
                              lean_path=record.lean_path, context=trust.workspace_context(repl.cwd))
        return replace(self, repl=repl, sandboxed=sandbox, judge=judge, notes=self.notes + notes)

    def _check_ray_places(self) -> None:
        """--verify-on and --judge-on name Ray the way ray.init takes it, and at most one cluster."""
        from proverctl.verify.ray import parse_address

        verify_ray = self.verify_on is not None and not kimina_address(self.verify_on)
        if verify_ray:
            parse_address(self.verify_on)
        if self.judge_on == "local":
            return
        judge_address = parse_address(self.judge_on, "--judge-on")
        if self.judge_mode == "repl":
            raise UsageError(f"--judge repl with --judge-on {self.judge_on}: there is no kernel judge to run on Ray",
                             hint="use --judge auto or kernel, or leave out --judge-on")
        if verify_ray and parse_address(self.verify_on) != judge_address:
            raise UsageError(f"--verify-on {self.verify_on} and --judge-on {self.judge_on} name two Ray clusters; a run joins one",
                             hint="give both the same address")

    def _resolve_kimina(self) -> "VerifySpec":
        """A kimina server checks; the kernel judge runs here when this machine has a trusted one (under
        --judge kernel it must), else verdicts are REPL-checked by the server alone."""
        try:
            local = replace(self, verify_on=None).resolve()
        except ProverctlError as exc:
            if self.judge_mode == "kernel" or self.judge_on != "local":
                raise
            why = str(exc).splitlines()[0]
            return replace(self, notes=self.notes + (f"verdicts are REPL-checked by the kimina server only: no kernel judge here ({why})",))
        return replace(local, verify_on=self.verify_on)

    def _judge_notes(self, found) -> tuple[str, ...]:
        """Why there is no judge, as a note under --judge auto; under --judge kernel an error (exit 3 when
        it is not built, exit 4 when it is not the judge the trust manifest recorded)."""
        if found is None or found.record is not None:
            return ()
        if self.judge_mode == "kernel":
            error = VerifierError if found.broken else EnvironmentMissing
            raise error(f"--judge kernel: {found.why}", hint=f"{found.hint}, or use --judge auto / repl")
        if self.judge_on != "local":  # the Ray workers are checked against this machine's record: there must be one
            error = VerifierError if found.broken else EnvironmentMissing
            raise error(f"--judge-on {self.judge_on}: {found.why} (the workers' judge is checked against this machine's record)",
                        hint=f"{found.hint}, or leave out --judge-on")
        return (f"verdicts are REPL-checked only: {found.why} ({found.hint})",)

    def pool_size(self, jobs: int) -> int:
        return max(1, min(jobs, self.workers or default_workers(self.memory_mb)))

    def describe(self) -> dict:
        """What a run records about its verifier."""
        remote = ("kimina" if kimina_address(self.verify_on) else "ray") if self.verify_on else "repl-pool"
        return {"kind": "dojo" if self.dojo is not None else remote,
                "verify_on": self.verify_on, "lean_profile": self.lean_profile,
                "sandbox": self.sandboxed.name if self.sandboxed else None,
                "sandbox_confirmed": bool(self.sandboxed and self.sandboxed.confirmed),
                "repl": self.repl.source if self.repl else None, "check_timeout": self.check_timeout,
                "import_timeout": self.import_timeout, "policy": policy_dict(self.policy), "lean_reader": self.lean_reader,
                "judge": self.judge.label if self.judge is not None else ("leandojo" if self.dojo is not None else "repl"),
                "judge_on": self.judge_on if self.judge is not None else None}


def policy_dict(policy: Policy) -> dict:
    return {"allow_native_decide": policy.allow_native_decide, "allow_aux_lemmas": policy.allow_aux_lemmas}


class PoolVerifier:
    """Candidates on the local REPL pool. When checks keep failing in the verifier itself (the REPL
    cannot start, crashes, or breaks the protocol) with no judged check between them, the run cannot
    get any verdict: past `give_up_after` such failures a check raises VerifierError (exit 4) instead of
    failing every sample; the failures up to the limit are recorded as `error` attempts."""

    def __init__(self, pool: ReplPool, policy: Policy, timeout: float, *, give_up_after: int | None = None) -> None:
        self.pool, self.policy, self.timeout = pool, policy, timeout
        self.give_up_after = give_up_after or max(3, 2 * pool.size)
        self.consecutive_errors = 0
        self.capacity = pool.size  # checks it can run at once
        self.last_error = ""

    async def verify(self, target: Target, code: str) -> Verdict:
        self._give_up_if_broken()
        try:
            verdict = await check_candidate(self.pool, header=target.header, code=code, target_name=target.name,
                                            original_statement=target.statement, policy=self.policy, timeout=self.timeout)
        except ReplStartError as exc:
            raise EnvironmentMissing(str(exc), hint=SETUP_HINT) from None
        if verdict.kind is VerdictKind.error:
            self._give_up_if_broken()  # checks that queued meanwhile stop here
            self.consecutive_errors += 1
            self.last_error = verdict.reasons[0] if verdict.reasons else "verifier error"
        else:
            self.consecutive_errors = 0
        return verdict

    async def lean_feedback(self, target: Target, code: str) -> str:
        """The REPL's answer to a model's draft as the model sees it (the JSON answer without `env`, as
        StepFun-Prover's demo sends it), run after the target's header; a draft with code-running commands
        never reaches Lean (the reasons come back instead). Feedback, not a verdict."""
        import json

        from proverctl.lean.checker import lean_reading, split_header
        from proverctl.lean.pool import CheckJob
        from proverctl.lean.verdict import sketch_violations

        imports, preamble = split_header(target.header)
        code, echoed = without_echoed_imports(code, imports)
        if echoed:
            return json.dumps({"messages": [{"severity": "error", "data": echoed}]}, ensure_ascii=False)
        reasons = sketch_violations(code)
        if reasons:
            return json.dumps({"messages": [{"severity": "error", "data": f"refused before Lean: {r}"} for r in reasons]},
                              ensure_ascii=False)
        body = code if code.endswith("\n") else code + "\n"
        try:
            disagree = await lean_reading(self.pool, imports, preamble, body, mode="draft", timeout=self.timeout)
            if isinstance(disagree, Verdict) or disagree:
                why = disagree.reasons if isinstance(disagree, Verdict) else disagree
                return json.dumps({"messages": [{"severity": "error", "data": f"refused before Lean: {r}"} for r in why]},
                                  ensure_ascii=False)
            outcome = await self.pool.check(CheckJob(imports, preamble, body, self.timeout))
        except ReplStartError as exc:
            raise EnvironmentMissing(str(exc), hint=SETUP_HINT) from None
        if outcome.status == "timeout":
            return f"repl cannot return status in {outcome.seconds:.0f} seconds!"
        if outcome.status != "ok" or outcome.response is None:
            return json.dumps({"repl_err": outcome.detail or "the REPL failed"}, ensure_ascii=False)
        answer = {k: v for k, v in outcome.response.raw.items() if k != "env"}
        return json.dumps(answer, ensure_ascii=False)

    def _give_up_if_broken(self) -> None:
        if self.consecutive_errors >= self.give_up_after:
            raise VerifierError(f"no Lean check can run: {self.consecutive_errors} checks in a row failed in the verifier "
                                f"({self.last_error})", hint="`proverctl doctor` checks the REPL; committed attempts are kept")


def without_echoed_imports(code: str, imports: str) -> tuple[str, str | None]:
    """A draft that begins with the imports the prompt gave (a model echoing `import Mathlib ...`) is
    checked without them, their lines left blank so Lean's line numbers are still the model's; an import
    the header does not have cannot be added after it: (code, None) or (code, why, for the model)."""
    from proverctl.lean.source import parse
    from proverctl.verify.challenge import imports_of

    cut = parse(code).imports_end
    if not code[:cut].strip():
        return code, None
    have = imports_of(imports)
    extra = [module for module in imports_of(code) if module not in have]
    if extra:
        return code, (f"`import {extra[0]}`: the code is checked after the problem's header, which imports "
                      f"{', '.join(have) or 'nothing'}; leave out the import lines")
    return "\n" * code[:cut].count("\n") + code[cut:], None


@dataclass
class Verification:
    """What `open_verifier` yields: the verifier, and the local pool where there is one (whole-file
    checks and decompose's sketches talk to the REPL directly)."""

    verifier: Verifier
    pool: ReplPool | None
    spec: VerifySpec

    @property
    def judge(self):
        """The kernel judge behind the pre-filter (proverctl.verify.judge.Judge, or RayJudge), or None (REPL-only)."""
        return getattr(self.verifier, "judge", None)

    def verifier_for(self, policy: Policy) -> Verifier:
        """The same pre-filter pool and judge under another policy (decompose's composed proofs)."""
        pool = require_pool(self, "this check")
        spec = replace(self.spec, policy=policy)
        return _judged(PoolVerifier(pool, policy, spec.check_timeout), spec, self.judge)


@contextlib.asynccontextmanager
async def open_verifier(spec: VerifySpec, *, jobs: int = 1) -> AsyncIterator[Verification]:
    """Start the verifier `spec` describes (resolved first if it is not yet), sized for `jobs` checks:
    the REPL pre-filter (local pool, Ray or a kimina server), with the kernel judge behind it (here or
    on Ray) when there is one."""
    if not spec.resolved and spec.repl is None and spec.dojo is None:
        spec = spec.resolve()
    if spec.dojo is not None:
        from proverctl.dojo import DojoVerifier

        yield Verification(DojoVerifier(spec.dojo, spec.policy, spec.check_timeout), None, spec)
        return
    size = spec.pool_size(jobs)
    async with _local_ray(spec, size), _open_judge(spec, size) as judge:
        if spec.verify_on is not None and kimina_address(spec.verify_on):
            from proverctl.verify.kimina import KiminaPool

            async with KiminaPool(kimina_address(spec.verify_on), concurrency=spec.workers or 16,
                                  reader_required=spec.lean_reader == "required") as pool:
                yield Verification(_judged(PoolVerifier(pool, spec.policy, spec.check_timeout), spec, judge, label=KIMINA_LABEL),
                                   None, spec)
            return
        if spec.verify_on is not None:
            from proverctl.verify.ray import RayVerifier, ReplSpec, parse_address

            ray_verifier = RayVerifier(parse_address(spec.verify_on), size,
                                       ReplSpec(spec.repl.command, str(spec.repl.cwd) if spec.repl.cwd else None, spec.memory_mb,
                                                spec.max_uses, spec.sandboxed.name if spec.sandboxed else "none",
                                                import_timeout=spec.import_timeout, reader_required=spec.lean_reader == "required"),
                                       spec.policy, spec.check_timeout)
            await ray_verifier.start()
            try:
                yield Verification(_judged(ray_verifier, spec, judge), None, spec)
            finally:
                await ray_verifier.close()
            return
        async with ReplPool(spec.repl.command, cwd=spec.repl.cwd, workers=size, memory_mb=spec.memory_mb, max_uses=spec.max_uses,
                            gc=spec.gc, sandbox=spec.sandboxed or Sandbox("none"), header_timeout=spec.import_timeout,
                            reader_required=spec.lean_reader == "required") as pool:
            try:
                yield Verification(_judged(PoolVerifier(pool, spec.policy, spec.check_timeout), spec, judge), pool, spec)
            except ReplStartError as exc:  # whole-file checks and sketches talk to the pool directly
                raise EnvironmentMissing(str(exc), hint=SETUP_HINT) from None


@contextlib.asynccontextmanager
async def _local_ray(spec: VerifySpec, size: int) -> AsyncIterator[None]:
    """One local Ray instance with CPUs for every actor this run starts on it (pre-filter and judge)."""
    from proverctl.verify.ray import connect, disconnect

    verify_local = spec.verify_on in ("ray", "local")
    judge_local = spec.judge is not None and spec.judge_on == "ray"
    if not (verify_local or judge_local):
        yield
        return
    started = connect(None, size * (int(verify_local) + int(judge_local)))
    try:
        yield
    finally:
        await disconnect(started)


@contextlib.asynccontextmanager
async def _open_judge(spec: VerifySpec, size: int) -> AsyncIterator[object | None]:
    """The kernel judge the plan names: none, this machine's, or `size` Ray workers that each passed
    their node's checks (proverctl.verify.ray.RayJudge)."""
    if spec.judge is None:
        yield None
        return
    from proverctl.verify.judge import Judge

    if spec.judge_on == "local":
        yield Judge(spec.judge)
        return
    from proverctl.verify.ray import RayJudge, parse_address

    judge = RayJudge(parse_address(spec.judge_on, "--judge-on"), size, spec.judge, sandbox_mode=spec.sandbox,
                     kernel=spec.judge_mode == "kernel")
    await judge.start()
    try:
        yield judge
    finally:
        await judge.close()


KIMINA_LABEL = "kimina-lean-server (remote: its sandbox is the server's)"


def kimina_address(value: str | None) -> str | None:
    from proverctl.verify.kimina import parse_address

    return parse_address(value) if value else None


def _judged(prefilter, spec: VerifySpec, judge, *, label: str | None = None):
    """The pre-filter alone (its verdicts labelled REPL-checked), or with the kernel judge behind it."""
    if judge is None:
        return ReplOnly(prefilter, label or (spec.sandboxed.label if spec.sandboxed is not None else None))
    from proverctl.verify.judge import JudgedVerifier

    return JudgedVerifier(prefilter, judge, spec.policy)


class ReplOnly:
    """The pre-filter's verdicts, each labelled as given by the REPL alone."""

    def __init__(self, prefilter, sandbox: str | None = None) -> None:
        self.prefilter = prefilter
        self.sandbox = sandbox  # the sandbox label the verdicts carry ("none": unsandboxed)
        self.pool = getattr(prefilter, "pool", None)
        self.capacity = getattr(prefilter, "capacity", None)

    async def verify(self, target: Target, code: str) -> Verdict:
        verdict = await self.prefilter.verify(target, code)
        verdict.judge = verdict.judge or "repl"
        verdict.sandbox = verdict.sandbox or self.sandbox
        return verdict

    def __getattr__(self, name: str):
        if name == "lean_feedback":  # drafts are answered by the pre-filter (absent on Ray / LeanDojo)
            return getattr(self.prefilter, name)
        raise AttributeError(name)


def require_pool(verification: Verification, what: str) -> ReplPool:
    if verification.pool is None:
        raise UsageError(f"{what} needs the local REPL pool", hint="leave out --verify-on / --repo for it")
    return verification.pool
