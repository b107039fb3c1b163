"""Lean on Ray workers: `--verify-on ray...` puts the REPL pre-filter on actors (each holds a REPL
pool on its node), `--judge-on ray...` the kernel judge. A check whose actor dies is retried on a
fresh one, so no candidate is lost.

The judge's trust base travels with it: the driver ships the judge spec its own trust manifest vouches
for (command lines, the sha256 of every file they name, the workspace and its context digest), and
each judge actor, before any verdict of it counts, checks on its own node that every recorded file is
there and hashes to the record, that the workspace is the same build (toolchain and lake manifest),
and that its own sandbox canary holds. A node that fails is one line naming it (exit 3: the judge is
not built there; exit 4: it is there but not the recorded one) and the run does not start. On the
node the judge re-checks its files before every run, as the local one does.

Generation scales through `--endpoint` (a multi-GPU vLLM or SGLang deployment); this scales the Lean
side. Installed with the `ray` extra; imported only when one of those flags names Ray.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from proverctl.errors import EnvironmentMissing, UsageError, VerifierError
from proverctl.lean.targets import Target
from proverctl.lean.verdict import Policy, Verdict, VerdictKind

RETRIES = 3


@dataclass(frozen=True)
class ReplSpec:
    command: list[str]
    cwd: str | None
    memory_mb: int | None
    max_uses: int
    sandbox: str
    workers_per_actor: int = 1
    import_timeout: float = 600.0
    reader_required: bool = True


def parse_address(value: str, flag: str = "--verify-on") -> str | None:
    """`ray` (a local instance), `ray://HOST:PORT` (a cluster's client server) or `auto` (the cluster
    this node belongs to) -> the address for ray.init (None: start a local one)."""
    if value in ("ray", "local"):
        return None
    if value == "auto" or value.startswith("ray://"):
        return value
    raise UsageError(f"bad {flag} {value!r}", hint="use ray (local), auto, or ray://HOST:PORT")


def connect(address: str | None, cpus: int) -> bool:
    """Join Ray at `address` (None: start a local instance with `cpus` CPUs) unless this process is
    already connected; True when this call started the local instance (its caller shuts it down)."""
    try:
        import ray
    except ImportError:
        raise EnvironmentMissing("Lean on Ray workers needs the ray package", hint="pip install 'proverctl[ray]'") from None
    if ray.is_initialized():
        return False
    try:
        if address is None:
            # A private instance: its start-up lines (and the cluster token notice) say nothing to the user.
            ray.init(num_cpus=max(cpus, 1), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            return True
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EnvironmentMissing(f"cannot connect to Ray at {address}: {exc}", hint="check the address (`ray status` on the head node)") from exc
    return False


async def disconnect(started_local: bool) -> None:
    if started_local:
        import ray

        await asyncio.get_running_loop().run_in_executor(None, ray.shutdown)


def weakest_sandbox(labels: set[str]) -> str:
    """A verdict is only as sandboxed as the weakest worker's sandbox."""
    return "none" if "none" in labels or not labels else sorted(labels)[0]


def _actor_class():
    import ray

    @ray.remote(num_cpus=1, max_restarts=0)
    class ReplActor:
        """One node's REPL pool behind a Ray actor."""

        def __init__(self, spec: dict) -> None:
            from proverctl.lean import trust
            from proverctl.lean.pool import ReplPool
            from proverctl.lean.sandbox import resolve

            cwd = Path(spec["cwd"]) if spec["cwd"] else None
            # This node's own sandbox, confirmed by its own canary (a backend that does not hold here fails the actor).
            self.sandbox = resolve(spec["sandbox"], trust.trust_base(cwd, [spec["command"]]))
            self.pool = ReplPool(spec["command"], cwd=cwd, workers=spec["workers_per_actor"], memory_mb=spec["memory_mb"],
                                 max_uses=spec["max_uses"], sandbox=self.sandbox, header_timeout=spec["import_timeout"],
                                 reader_required=spec["reader_required"])

        def sandbox_label(self) -> str:
            return self.sandbox.label

        async def check(self, header: str, code: str, name: str | None, statement: str, policy: dict, timeout: float) -> dict:
            from proverctl.lean.checker import check_candidate

            verdict = await check_candidate(self.pool, header=header, code=code, target_name=name, original_statement=statement,
                                            policy=Policy(**policy), timeout=timeout)
            return verdict.as_dict()

        def pid(self) -> int:
            import os

            return os.getpid()

        async def close(self) -> None:
            await self.pool.close()

    return ReplActor


class RayVerifier:
    """The pipeline's Verifier on Ray actors. Use `await start()` and `await close()`."""

    def __init__(self, address: str | None, actors: int, spec: ReplSpec, policy: Policy, timeout: float) -> None:
        self.address = address
        self.n_actors = actors
        self.spec = spec
        self.policy = policy
        self.timeout = timeout
        self.actors: list = []
        self.retried = 0
        self.capacity = actors * spec.workers_per_actor  # checks the actors run at once
        self._started_local = False
        self._next = itertools.count()
        self.sandbox_labels: set[str] = set()  # what each actor's own canary confirmed

    async def start(self) -> None:
        self._started_local = connect(self.address, self.n_actors)
        self._actor = _actor_class()
        self.actors = [self._new_actor() for _ in range(self.n_actors)]
        try:
            labels = await asyncio.gather(*(actor.sandbox_label.remote() for actor in self.actors))
        except Exception as exc:  # an actor whose sandbox canary got through, or that could not start
            await self.close()
            raise VerifierError(f"a Ray worker cannot check in a sandbox: {str(exc).strip().splitlines()[-1][:300]}",
                                hint="`proverctl doctor` on that node says which sandbox works; or --sandbox none (unsandboxed)") from None
        self.sandbox_labels = set(labels)

    def _new_actor(self):
        return self._actor.remote(asdict(self.spec))

    async def verify(self, target: Target, code: str) -> Verdict:
        import ray

        policy = {"allow_native_decide": self.policy.allow_native_decide, "allow_aux_lemmas": self.policy.allow_aux_lemmas}
        last = ""
        for _ in range(RETRIES + 1):
            index = next(self._next) % len(self.actors)
            actor = self.actors[index]
            try:
                data = await actor.check.remote(target.header, code, target.name, target.statement, policy, self.timeout)
                verdict = Verdict.from_dict(data)
                verdict.sandbox = weakest_sandbox(self.sandbox_labels)
                return verdict
            except ray.exceptions.RayActorError as exc:
                # The worker died (node lost, killed, OOM): replace it and retry the same candidate.
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.retried += 1
                if self.actors[index] is actor:
                    self.actors[index] = self._new_actor()
        return Verdict(VerdictKind.error, [f"verifier error: Ray workers kept dying ({last})"])

    async def close(self) -> None:
        import ray

        for actor in self.actors:
            try:
                await actor.close.remote()
            except Exception:  # already dead
                pass
            ray.kill(actor)
        self.actors = []
        await disconnect(self._started_local)
        self._started_local = False


# ---------------------------------------------------------------------------------------------
# The kernel judge on Ray workers


def shipped_judge(spec, sandbox_mode: str) -> dict:
    """What the driver sends each judge actor: the JudgeSpec its trust manifest vouches for, as plain
    data (the node's own cache, index and sandbox replace this machine's)."""
    return {"command": list(spec.command), "lean_command": list(spec.lean_command),
            "workspace": str(spec.workspace) if spec.workspace is not None else None, "label": spec.label, "dialect": spec.dialect,
            "sandbox": sandbox_mode, "memory_mb": spec.memory_mb, "compile_timeout": spec.compile_timeout,
            "judge_timeout": spec.judge_timeout, "files": dict(spec.files),
            "leanchecker": list(spec.leanchecker) if spec.leanchecker else None, "lean_path": spec.lean_path, "context": spec.context}


def node_judge(shipped: dict, *, kernel: bool, paths=None):
    """On a worker node: the judge `shipped` describes, once this node has shown it holds that judge
    bit for bit, in the same workspace, behind a sandbox whose canary holds here. Raises
    EnvironmentMissing (not built here) or VerifierError (here, but not the recorded judge; or no
    sandbox under --judge kernel), each naming the node."""
    from proverctl.lean import trust
    from proverctl.lean.sandbox import resolve
    from proverctl.paths import Paths
    from proverctl.verify.judge import JudgeSpec

    node = socket.gethostname()
    files: dict[str, str] = shipped["files"]
    if not files:
        raise VerifierError(f"the judge shipped to Ray node {node} names no recorded file: nothing to check it against",
                            hint="`proverctl lean setup` (or `lean trust`) records the judge's files on this machine")
    missing = [path for path in files if not os.path.isfile(path)]
    if missing:
        raise EnvironmentMissing(f"Ray node {node} has no kernel judge built: {missing[0]} is missing there",
                                 hint="build the workspace once and put the same files on every node (a shared filesystem or image), "
                                      "or leave out --judge-on")
    changed = trust.changed_files(files)
    if changed:
        raise VerifierError(f"Ray node {node}: {changed[0]} is not the file this machine's trust manifest records (another sha256)",
                            hint="give every node the bit-identical judge build `proverctl lean setup` recorded here")
    workspace = Path(shipped["workspace"]) if shipped["workspace"] else None
    if trust.workspace_context(workspace) != shipped["context"]:
        raise EnvironmentMissing(f"Ray node {node}: the Lean workspace {workspace} is not the one here (another toolchain or lake manifest)",
                                 hint="give every node the same workspace as this machine")
    paths = paths or Paths.resolve()
    commands = [shipped["command"], shipped["lean_command"], shipped["leanchecker"]]
    sandbox = resolve(shipped["sandbox"], trust.trust_base(workspace, commands, paths), kernel=kernel)
    return JudgeSpec(command=tuple(shipped["command"]), lean_command=tuple(shipped["lean_command"]), workspace=workspace,
                     label=shipped["label"], dialect=shipped["dialect"], sandbox=sandbox, memory_mb=shipped["memory_mb"],
                     compile_timeout=shipped["compile_timeout"], judge_timeout=shipped["judge_timeout"],
                     cache_dir=paths.cache_dir / "judge", index_dir=paths.state_dir / "judge-index", files=dict(files),
                     leanchecker=tuple(shipped["leanchecker"]) if shipped["leanchecker"] else None, lean_path=shipped["lean_path"],
                     context=shipped["context"])


def _judge_actor_class():
    import ray

    @ray.remote(num_cpus=1, max_restarts=0, max_concurrency=1)
    class JudgeActor:
        """One node's kernel judge behind a Ray actor; one judgement at a time (two compiles and a replay)."""

        def __init__(self, shipped: dict, kernel: bool) -> None:
            from proverctl.errors import ProverctlError
            from proverctl.verify.judge import Judge

            self.judge = None
            self.problem: dict | None = None
            try:
                self.judge = Judge(node_judge(shipped, kernel=kernel))
            except ProverctlError as exc:
                self.problem = {"verifier": isinstance(exc, VerifierError), "message": str(exc).splitlines()[0], "hint": exc.hint}

        def ready(self) -> dict:
            """What this actor's checks found (`problem`), else its sandbox as its canary confirmed it."""
            if self.problem is not None:
                return {"problem": self.problem}
            return {"sandbox": self.judge.sandbox_label, "node": socket.gethostname()}

        async def judge(self, challenge: str, solution: str) -> dict:
            from proverctl.verify.judge import JudgeOutcome

            if self.judge is None:  # fail closed: this node never passed its checks
                return {"outcome": JudgeOutcome(VerdictKind.error, [f"judge on Ray: {self.problem['message']}"], 0.0).as_dict(),
                        "sandbox": "none"}
            return {"outcome": (await self.judge.judge(challenge, solution)).as_dict(), "sandbox": self.judge.sandbox_label}

        def pid(self) -> int:
            return os.getpid()

    return JudgeActor


class RayJudge:
    """The kernel judge on Ray actors, for proverctl.verify.judge.JudgedVerifier. No verdict comes from
    an actor whose node checks failed: `start()` raises when any fails; an actor started later to
    replace a dead one must pass the same checks before it is used."""

    def __init__(self, address: str | None, actors: int, spec, *, sandbox_mode: str, kernel: bool) -> None:
        self.address = address
        self.n_actors = max(1, actors)
        self.spec = spec  # this machine's JudgeSpec (its label and dialect; its files are what every node must hold)
        self.shipped = shipped_judge(spec, sandbox_mode)
        self.kernel = kernel
        self.actors: list = []
        self.busy: list[int] = []
        self.sandbox_labels: set[str] = set()
        self.retried = 0
        self._started_local = False

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def dialect(self) -> str:
        return self.spec.dialect

    @property
    def sandbox_label(self) -> str:
        return weakest_sandbox(self.sandbox_labels)

    async def start(self) -> None:
        self._started_local = connect(self.address, self.n_actors)
        self._actor = _judge_actor_class()
        self.actors = [self._actor.remote(self.shipped, self.kernel) for _ in range(self.n_actors)]
        self.busy = [0] * self.n_actors
        try:
            answers = await asyncio.gather(*(actor.ready.remote() for actor in self.actors))
        except Exception as exc:  # an actor that could not start at all
            await self.close()
            raise EnvironmentMissing(f"a Ray judge worker could not start: {str(exc).strip().splitlines()[-1][:300]}",
                                     hint="`ray status` shows the cluster; `proverctl doctor` on the node says what is missing") from None
        problems = [answer["problem"] for answer in answers if "problem" in answer]
        if problems:
            await self.close()
            first = next((p for p in problems if p["verifier"]), problems[0])
            error = VerifierError if first["verifier"] else EnvironmentMissing
            raise error(f"--judge-on: {first['message']}", hint=first["hint"])
        self.sandbox_labels = {answer["sandbox"] for answer in answers}

    async def _replace(self, index: int) -> str | None:
        """A fresh actor in place of a dead one; why it may not judge, when its checks fail."""
        actor = self._actor.remote(self.shipped, self.kernel)
        self.actors[index] = actor
        try:
            answer = await actor.ready.remote()
        except Exception as exc:
            return f"a replacement Ray judge worker could not start ({str(exc).strip().splitlines()[-1][:200]})"
        if "problem" in answer:
            return answer["problem"]["message"]
        self.sandbox_labels.add(answer["sandbox"])
        return None

    async def judge_target(self, target: Target, code: str):
        from proverctl.verify.challenge import challenge_text, solution_text

        return await self.judge(challenge_text(target), solution_text(target, code))

    async def judge(self, challenge: str, solution: str):
        import ray

        from proverctl.verify.judge import JudgeOutcome

        last = ""
        for _ in range(RETRIES + 1):
            index = min(range(len(self.actors)), key=self.busy.__getitem__)  # the least busy worker
            actor = self.actors[index]
            self.busy[index] += 1
            try:
                answer = await actor.judge.remote(challenge, solution)
                self.sandbox_labels.add(answer["sandbox"])  # before the verdict is labelled with the weakest
                return JudgeOutcome.from_dict(answer["outcome"])
            except ray.exceptions.RayActorError as exc:
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.retried += 1
                if self.actors[index] is actor:
                    problem = await self._replace(index)
                    if problem is not None:
                        return JudgeOutcome(VerdictKind.error, [f"judge on Ray: {problem}"], 0.0)
            finally:
                self.busy[index] -= 1
        return JudgeOutcome(VerdictKind.error, [f"judge on Ray: its workers kept dying ({last})"], 0.0)

    async def close(self) -> None:
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # already gone
                pass
        self.actors = []
        await disconnect(self._started_local)
        self._started_local = False
