"""Lean on Ray workers: `--verify-on ray...` puts the REPL pre-filter on actors (each holds a REPL
pool on its node), `--judge-on ray...` the kernel judge. A check whose actor dies is retried on a
fresh one, so no candidate is lost.

The judge's trust base travels with it: the driver ships the judge spec its own trust manifest vouches
for (command lines, the sha256 of every file they name, the workspace and its context digest), and
each judge actor, before any verdict of it counts, checks on its own node that every recorded file is
there and hashes to the record, that every program the command lines run resolves to a recorded file,
that the workspace is the same build (toolchain and lake manifest) and proverctl the same version, and
that its own sandbox canary holds. A node that fails is one line naming it (exit 3: the judge is
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
from proverctl.verify.judge import Judge, JudgeBase, JudgeOutcome, JudgeSpec

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
        joined = _JOINED.get("address", address)
        if joined != address:  # a long-lived process (the MCP server) asked for another cluster
            raise UsageError(f"this process already works with Ray at {joined or 'a local instance'}, not {address or 'a local one'}",
                             hint="use the same Ray address in every run of this server, or start another")
        return False
    _JOINED["address"] = address
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
        _JOINED.clear()


_JOINED: dict[str, str | None] = {}  # the address this process joined Ray at (connect)


def weakest_sandbox(labels: set[str]) -> str:
    """The weakest of several workers' sandboxes: "none" if any ran unsandboxed, else the one `auto`
    would try last (bubblewrap before Landlock on Linux); a label this platform does not rank is none."""
    from proverctl.lean.sandbox import auto_order

    order = auto_order()
    if not labels or "none" in labels or not labels <= set(order):
        return "none"
    return max(labels, key=order.index)


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
    data (the node's own cache, index and sandbox replace this machine's), and the proverctl version
    that reads the judge's output (a node running another must not judge)."""
    from proverctl import __version__

    return {"command": list(spec.command), "lean_command": list(spec.lean_command),
            "workspace": str(spec.workspace) if spec.workspace is not None else None, "label": spec.label, "dialect": spec.dialect,
            "sandbox": sandbox_mode, "memory_mb": spec.memory_mb, "compile_timeout": spec.compile_timeout,
            "judge_timeout": spec.judge_timeout, "files": dict(spec.files),
            "leanchecker": list(spec.leanchecker) if spec.leanchecker else None, "lean_path": spec.lean_path, "context": spec.context,
            "proverctl": __version__}


def node_judge(shipped: dict, *, kernel: bool, paths=None):
    """On a worker node: the judge `shipped` describes, once this node has shown it holds that judge
    bit for bit (every recorded file, and every file its command lines run resolving to a recorded
    one), in the same workspace, read by the same proverctl, behind a sandbox whose canary holds here.
    Raises EnvironmentMissing (not built here) or VerifierError (here, but not the recorded judge; or
    no sandbox under --judge kernel), each naming the node."""
    from proverctl import __version__
    from proverctl.lean import trust
    from proverctl.lean.sandbox import resolve
    from proverctl.paths import Paths

    node = socket.gethostname()
    if shipped.get("proverctl") != __version__:
        raise EnvironmentMissing(f"Ray node {node} runs proverctl {__version__}, this machine {shipped.get('proverctl')}",
                                 hint="install the same proverctl on every node")
    files: dict[str, str] = shipped["files"]
    if not files:
        raise VerifierError(f"the judge shipped to Ray node {node} names no recorded file: nothing to check it against",
                            hint="`proverctl lean setup` (or `lean trust`) records the judge's files on this machine")
    missing = [path for path in files if not os.path.isfile(path)]
    if missing:
        raise EnvironmentMissing(f"Ray node {node} has no kernel judge built: {missing[0]} is missing there",
                                 hint="build the workspace once and put the same files on every node (a shared filesystem or image), "
                                      "or leave out --judge-on")
    commands = [shipped["command"], shipped["lean_command"], shipped["leanchecker"]]
    problem = trust.unrecorded_program(commands, files)
    if problem:
        raise VerifierError(f"Ray node {node}: {problem}", hint="give every node the judge build `proverctl lean setup` recorded here")
    changed = trust.changed_files(files)
    if changed:
        raise VerifierError(f"Ray node {node}: {changed[0]} is not the file this machine's trust manifest records (another sha256)",
                            hint="give every node the bit-identical judge build `proverctl lean setup` recorded here")
    workspace = Path(shipped["workspace"]) if shipped["workspace"] else None
    if trust.workspace_context(workspace) != shipped["context"]:
        raise EnvironmentMissing(f"Ray node {node}: the Lean workspace {workspace} is not the one here (another toolchain or lake manifest)",
                                 hint="give every node the same workspace as this machine")
    paths = paths or Paths.resolve()
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

            self.node_judge = None
            self.problem: dict | None = None
            try:
                self.node_judge = Judge(node_judge(shipped, kernel=kernel))
            except ProverctlError as exc:
                self.problem = {"verifier": isinstance(exc, VerifierError), "message": str(exc).splitlines()[0], "hint": exc.hint}

        def ready(self) -> dict:
            """What this actor's checks found (`problem`), else its sandbox as its canary confirmed it."""
            if self.problem is not None:
                return {"problem": self.problem}
            return {"sandbox": self.node_judge.sandbox_label, "node": socket.gethostname()}

        async def judge(self, challenge: str, solution: str) -> dict:
            if self.node_judge is None:  # fail closed: this node never passed its checks
                return JudgeOutcome(VerdictKind.error, [f"judge on Ray: {self.problem['message']}"], 0.0, sandbox="none").as_dict()
            outcome = await self.node_judge.judge(challenge, solution)
            outcome.sandbox = self.node_judge.sandbox_label
            return outcome.as_dict()

    return JudgeActor


READY_TIMEOUT = 300.0  # seconds a judge actor may take to start and pass its checks (a canary, hashing the judge)


@dataclass
class _Worker:
    actor: object
    checked: asyncio.Task  # its checks' answer: None when they passed, else the problem ({verifier, message, hint})
    busy: int = 0


class RayJudge(JudgeBase):
    """The kernel judge on Ray actors, for proverctl.verify.judge.JudgedVerifier. No judgement goes to
    an actor before its node's checks passed: `start()` raises when any first actor fails them; an
    actor started to replace a dead one is used once it passes, and dropped when it does not. Each
    outcome carries the sandbox of the actor that gave it."""

    def __init__(self, address: str | None, actors: int, spec, *, sandbox_mode: str, kernel: bool) -> None:
        self.address = address
        self.n_actors = max(1, actors)
        self.spec = spec  # this machine's JudgeSpec (its label and dialect; its files are what every node must hold)
        self.shipped = shipped_judge(spec, sandbox_mode)
        self.kernel = kernel
        self.workers: list[_Worker] = []
        self.sandbox_labels: set[str] = set()
        self.retried = 0
        self._started_local = False

    @property
    def sandbox_label(self) -> str:
        """The weakest sandbox among the workers that passed their checks (a verdict carries its own)."""
        return weakest_sandbox(self.sandbox_labels)

    @property
    def actors(self) -> list:
        return [w.actor for w in self.workers]

    def _start_one(self) -> _Worker:
        actor = self._actor.remote(self.shipped, self.kernel)
        return _Worker(actor, asyncio.ensure_future(self._check(actor)))

    async def _check(self, actor) -> dict | None:
        """None when the actor's node passed its checks, else the problem (as the actor reports one)."""
        hint = "`ray status` shows the cluster's free CPUs; `proverctl doctor` on the node says what is missing"
        try:
            answer = await asyncio.wait_for(actor.ready.remote(), READY_TIMEOUT)
        except asyncio.TimeoutError:
            return {"verifier": False, "hint": hint, "message": f"a Ray judge worker did not start within {READY_TIMEOUT:g} s "
                                                               f"(does the cluster have a free CPU for each of {self.n_actors} workers?)"}
        except Exception as exc:  # an actor that could not start at all
            return {"verifier": False, "hint": hint,
                    "message": f"a Ray judge worker could not start: {str(exc).strip().splitlines()[-1][:300]}"}
        if "problem" in answer:
            return answer["problem"]
        self.sandbox_labels.add(answer["sandbox"])
        return None

    async def start(self) -> None:
        self._started_local = connect(self.address, self.n_actors)
        try:
            self._actor = _judge_actor_class()
            self.workers = [self._start_one() for _ in range(self.n_actors)]
            problems = [p for p in await asyncio.gather(*(w.checked for w in self.workers)) if p is not None]
        except BaseException:
            await self.close()
            raise
        if problems:
            await self.close()
            first = next((p for p in problems if p["verifier"]), problems[0])  # a judge that is not the recorded one first
            raise (VerifierError if first["verifier"] else EnvironmentMissing)(f"--judge-on: {first['message']}", hint=first["hint"])

    async def _worker(self) -> _Worker | None:
        """The least busy worker that passed its checks (waiting for one being checked), or None."""
        while True:
            for failed in [w for w in self.workers if w.checked.done() and w.checked.result() is not None]:
                self._drop(failed)  # its node did not pass: it never judges
            ready = [w for w in self.workers if w.checked.done()]
            if ready:
                return min(ready, key=lambda w: w.busy)
            if not self.workers:
                return None
            await asyncio.wait([w.checked for w in self.workers], return_when=asyncio.FIRST_COMPLETED)

    def _drop(self, worker: _Worker) -> None:
        import ray

        if worker in self.workers:
            self.workers.remove(worker)
            try:
                ray.kill(worker.actor)
            except Exception:  # already gone
                pass

    async def judge(self, challenge: str, solution: str) -> JudgeOutcome:
        import ray

        last = ""
        for _ in range(RETRIES + 1):
            worker = await self._worker()
            if worker is None:
                return JudgeOutcome(VerdictKind.error, ["judge on Ray: no worker passed its node's checks"], 0.0, sandbox="none")
            worker.busy += 1
            try:
                return JudgeOutcome.from_dict(await worker.actor.judge.remote(challenge, solution))
            except ray.exceptions.RayActorError as exc:
                # The worker died (node lost, killed, OOM): a fresh one, checked before it is used, and the same judgement again.
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.retried += 1
                if worker in self.workers:
                    self._drop(worker)
                    self.workers.append(self._start_one())
            finally:
                worker.busy -= 1
        return JudgeOutcome(VerdictKind.error, [f"judge on Ray: its workers kept dying ({last})"], 0.0, sandbox="none")

    async def close(self) -> None:
        for worker in list(self.workers):
            worker.checked.cancel()
            self._drop(worker)
        self.workers = []
        await disconnect(self._started_local)
        self._started_local = False
