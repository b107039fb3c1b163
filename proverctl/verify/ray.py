"""Verification on Ray: each Ray worker (an actor) holds a REPL pool on its node; candidates go to
the actors, and a check whose actor dies is retried on a fresh one, so no candidate is lost.

Generation scales through `--endpoint` (a multi-GPU vLLM or SGLang deployment); this scales the Lean
side. Installed with the `ray` extra; imported only when `--verify-on ray...` is used.
"""

from __future__ import annotations

import asyncio
import itertools
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


def parse_address(value: str) -> str | None:
    """`ray` (a local instance), `ray://HOST:PORT` (a cluster's client server) or `auto` (the cluster
    this node belongs to) -> the address for ray.init (None: start a local one)."""
    if value in ("ray", "local"):
        return None
    if value == "auto" or value.startswith("ray://"):
        return value
    raise UsageError(f"bad --verify-on {value!r}", hint="use ray (local), auto, or ray://HOST:PORT")


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
        try:
            import ray
        except ImportError:
            raise EnvironmentMissing("verification on Ray needs the ray package", hint="pip install 'proverctl[ray]'") from None
        if not ray.is_initialized():
            try:
                if self.address is None:
                    ray.init(num_cpus=max(self.n_actors, 1), include_dashboard=False, log_to_driver=False)
                    self._started_local = True
                else:
                    ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EnvironmentMissing(f"cannot connect to Ray at {self.address}: {exc}",
                                         hint="check the address (`ray status` on the head node)") from exc
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
                # A verdict is only as sandboxed as the weakest actor's sandbox.
                verdict.sandbox = "none" if "none" in self.sandbox_labels or not self.sandbox_labels else sorted(self.sandbox_labels)[0]
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
        if self._started_local:
            await asyncio.get_running_loop().run_in_executor(None, ray.shutdown)
