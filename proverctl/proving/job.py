"""`ProveJob`: the prove use-case, one request in, one result out, every front end the same.

    job = ProveJob(ProveRequest(input="Algebra.lean", k=8, in_place=True))
    result = job.run(on_event)          # or: await job.run_async(on_event)

`prepare()` reads the inputs and resolves the request once into a `RunPlan` (proverctl.proving.plan:
the model and what the endpoint really serves, the family object, sampling, budgets, the verifier spec),
raising every ProverctlError before any work starts; `run` then records the run with its resolved
request and the plan's record, hands the pipeline and the verifier provider their parts of the plan, samples and checks through `Pipeline` (or decomposition), writes
what is proved to the requested outputs (also after Ctrl-C or a failure), and returns a `ProveResult`
with the exit code. Nothing here prints: progress and notices go to `on_event`.
`ProveJob.resume(run_id, overrides)` continues a recorded run from its stored request.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from proverctl.errors import ExitCode, UsageError
from proverctl.inputs import InputFile
from proverctl.lean.targets import Target
from proverctl.lean.verdict import VerdictKind
from proverctl.pipeline import Pipeline
from proverctl.proving.endpoint import Endpoint
from proverctl.proving.plan import RunPlan, empty_plan, resolve_plan
from proverctl.proving.request import ProveRequest, settings_flags
from proverctl.store.db import Store


REJUDGE_SAMPLE = -1  # the sample number of attempts that judge an earlier proof again (no sample of the budget)


@dataclass
class Notice:
    """Something a front end should tell the user (never data): level is "info" or "warning"."""

    level: str
    text: str


@dataclass
class RunStarted:
    """The run is recorded and sampling begins: `items` are (target id, target); `done` counts the
    samples each target already has (a resumed run)."""

    run_id: int
    items: list[tuple[int, Target]]
    k: int
    done: dict[int, int]


@dataclass
class ProveResult:
    run_id: int | None
    rows: list[dict]  # one per target: name, file, line, status, attempts, proof, seconds, run
    exit_code: int
    request: ProveRequest
    interrupted: bool = False
    written: list[str] = field(default_factory=list)
    inputs: list[InputFile] = field(default_factory=list)
    nothing_to_do: bool = False
    plan: RunPlan | None = None  # what the run resolved (None: the run never got a plan)
    cache_hits: int = 0  # targets answered from the proof cache (each judged again)

    @property
    def proofs(self) -> dict[str, dict[str, str]]:
        from proverctl.proving.records import proofs_by_file

        return proofs_by_file(self.rows)


class ProveJob:
    def __init__(self, request: ProveRequest, *, settings=None, paths=None, api_key: str | None = None, command: str | None = None,
                 kind: str = "prove", resume_run: int | None = None, generator=None, verifier=None, provider=None) -> None:
        """`generator` / `verifier` replace the inference client / the verifier (tests, benches); `provider`
        gives the verifier for the run's own spec (proverctl.proving.check.Provider: a long-lived front end's
        shared verifiers) instead of one opened for the run."""
        self.request = request
        self.api_key = api_key
        self.command = command or shlex.join(["proverctl"] + sys.argv[1:])
        self.kind = kind
        self.resume_run = resume_run
        self._settings = settings
        self._paths = paths
        self._generator = generator
        self._verifier = verifier
        self._provider = provider
        self._plan: RunPlan | None = None
        self._pipeline: Pipeline | None = None
        self._stopped = False
        self._started_session = False  # the run started its session (so stops it unless kept alive)
        self._reused_keep_alive: float | None = None  # the keep-alive of a kept-alive session this run reuses
        self.run_id: int | None = resume_run
        self.cache_hits = 0

    # -----------------------------------------------------------------------------------------
    # Construction from a stored run

    @classmethod
    def resume(cls, run_id: int, overrides: dict[str, Any] | None = None, **kwargs) -> "ProveJob":
        """The job that continues run `run_id` with its stored request (plus what a resume may change)."""
        from proverctl.paths import Paths

        paths = kwargs.get("paths") or Paths.resolve()
        with Store(paths.store_db) as store:
            run = store.run(run_id)
            if run is None:
                raise UsageError(f"no run {run_id} in the store", hint="`proverctl runs` lists them")
            if run["kind"] not in ("prove", "bench"):
                raise UsageError(f"run {run_id} is a {run['kind']} run; only prove and bench runs can be resumed",
                                 hint="`proverctl runs` lists them")
            request = stored_request(run)
        return cls(request.with_overrides(overrides or {}), resume_run=run_id, kind=run["kind"], **kwargs)

    # -----------------------------------------------------------------------------------------
    # Preparation: every usage and environment error, before any work

    @property
    def settings(self):
        if self._settings is None:
            from proverctl.settings import Settings

            self._settings = Settings.load(settings_flags(self.request), self._paths)
        return self._settings

    @property
    def paths(self):
        if self._paths is None:
            from proverctl.paths import Paths

            self._paths = Paths.resolve()
        return self._paths

    def prepare(self, notify: Callable[[Any], None] = lambda event: None) -> RunPlan:
        """Resolve the request into the run's plan (proverctl.proving.plan): every usage and environment
        error is raised here, before any work."""
        if self._plan is not None:
            return self._plan
        from proverctl.proving.outputs import check_dataset_output, check_output

        request, settings = self.request, self.settings
        # What the request left to the settings (flag > PROVERCTL_* > config.toml > default), and the
        # directory its relative paths mean (a resume started anywhere reads and writes the run's own files).
        request = self.request = replace(request, k=settings.k, endpoint=settings.endpoint, keep_alive=settings.keep_alive,
                                         workdir=request.workdir or (os.getcwd() if self.resume_run is None else None))
        if self.api_key is None:
            self.api_key = settings.api_key
        inputs = self._load_inputs()
        check_output(self._where(request.output), inputs, self._where(request.input))
        check_dataset_output(inputs, in_place=request.in_place, output=self._where(request.output), fmt=request.format)
        if request.format == "lean" and len(inputs) != 1:
            raise UsageError("--format lean needs a single file or stdin", hint="use --in-place or -o for folders")
        if self.resume_run is None and not any(f.targets for f in inputs):
            # Nothing to do needs no model and no Lean.
            self._plan = empty_plan(request, inputs)
            return self._plan
        Store(self.paths.store_db).close()  # a store that cannot be used fails here, before any network or process
        self._plan = resolve_plan(request, settings, inputs, api_key=self.api_key, needs_engine=self._generator is None,
                                  needs_verifier=self._verifier is None, notify=lambda note: notify(Notice("warning", note)))
        self.request = self._plan.request
        return self._plan

    def _load_inputs(self) -> list[InputFile]:
        from proverctl.inputs import load_inputs, load_text, select

        request = self.request
        if request.dojo is not None:
            from proverctl import dojo as dojo_mod

            spec = request.dojo
            dojo_mod.require(spec)
            text = dojo_mod.read_file(spec)
            return [InputFile(spec.label, None, text, dojo_mod.targets(spec, text, list(request.theorems)))]
        if request.input == "-":
            if request.input_text is None:
                raise UsageError("no standard input was recorded for this run", hint="give the file instead of -")
            inputs = [load_text(request.input_text, "<stdin>")]
        elif self.resume_run is not None:
            try:
                inputs = load_inputs(request.input, self._base())
            except UsageError as exc:
                if request.in_place or request.output:
                    where = f" in {request.workdir}" if request.workdir else ""
                    raise UsageError(f"run {self.resume_run} writes its proofs into {request.input}{where}, which cannot be read "
                                     f"now ({exc.message})", hint=f"put it back, or read the proofs with `proverctl show {self.resume_run}`") from None
                return []  # nothing to write back: the stored targets drive the run
        else:
            inputs = load_inputs(request.input, self._base())
        if self.resume_run is None:
            select(inputs, list(request.theorems))
        if request.hint:
            for f in inputs:
                f.targets = [replace(t, hint=request.hint) for t in f.targets]
        return inputs

    def _base(self) -> Path | None:
        """The run's working directory (None for runs recorded before it was: the current one)."""
        return Path(self.request.workdir) if self.request.workdir else None

    def _where(self, name: str | None) -> str | None:
        """A path of the request as this process must open it (relative ones against the run's directory)."""
        if name is None or name == "-" or self._base() is None or os.path.isabs(name):
            return name
        return str(self._base() / name)

    # -----------------------------------------------------------------------------------------
    # Running

    def snapshot(self) -> dict | None:
        """The running pipeline's progress numbers (proverctl.pipeline.Pipeline.snapshot), or None
        before sampling starts; safe to call from another thread."""
        pipeline = self._pipeline
        return pipeline.snapshot() if pipeline is not None else None

    def stop(self) -> None:
        """Stop sampling (Ctrl-C): chains in flight are cancelled; what is committed stays."""
        self._stopped = True
        if self._pipeline is not None:
            self._pipeline.stop()

    def run(self, on_event: Callable[[Any], None] | None = None, *, handle_signals: bool = False) -> ProveResult:
        """Prepare and run to the end. With `handle_signals`, Ctrl-C (or SIGTERM) stops sampling and
        writes what is proved; a second Ctrl-C abandons the attempts in flight at once."""
        notify = on_event or (lambda event: None)
        self.prepare(notify)
        return asyncio.run(self._execute(notify, handle_signals))

    async def run_async(self, on_event: Callable[[Any], None] | None = None) -> ProveResult:
        notify = on_event or (lambda event: None)
        await asyncio.to_thread(self.prepare, notify)
        return await self._execute(notify, False)

    async def _execute(self, notify: Callable[[Any], None], handle_signals: bool) -> ProveResult:
        plan = self._plan
        assert plan is not None
        request = self.request
        n_targets = sum(len(f.targets) for f in plan.inputs)
        if self.resume_run is None and n_targets == 0:
            notify(Notice("info", f"nothing to prove: no `sorry` in {request.input or request.file}"))
            return ProveResult(None, [], int(ExitCode.OK), request, inputs=plan.inputs, nothing_to_do=True, plan=plan)
        endpoint = await self._endpoint(plan, notify)
        if endpoint is not None and endpoint.engine == "transformers":
            if plan.family.interaction == "sketch":
                notify(Notice("warning", f"the {plan.family.name} family continues the model's own message after each "
                                         "Lean answer (vLLM's continue_final_message); transformers serve ignores that "
                                         "field and starts a new turn instead: serve the model with vLLM"))
        try:
            with Store(self.paths.store_db) as store:
                return await self._run_in_store(store, plan, endpoint, notify, handle_signals)
        finally:
            if endpoint is not None and endpoint.session:
                await self._release_session(endpoint.session, notify)

    async def _release_session(self, name: str, notify) -> None:
        """After the run: stop the session (the default for one it started), leave it for good
        (--keep-alive -1), or keep it --keep-alive seconds more for the next run (a reused session that
        had a keep-alive gets its own again)."""
        from proverctl.inference import sessions

        keep = self.request.keep_alive
        if keep is None:
            keep = self._reused_keep_alive
        if keep is None and not self._started_session:
            return  # a session someone else started and nobody asked to expire
        if keep is None or keep == 0:
            await asyncio.to_thread(sessions.stop_sessions, name)
            notify(Notice("info", f"stopped session {name}"))
        elif keep < 0:
            await asyncio.to_thread(sessions.set_expiry, name, None)
            notify(Notice("info", f"session {name} keeps running; `proverctl stop {name}` ends it"))
        else:
            until = await asyncio.to_thread(sessions.set_expiry, name, keep)
            notify(Notice("info", f"session {name} stays up until {time.strftime('%H:%M:%S', time.localtime(until))} "
                                  f"(--keep-alive {keep:g} s): the next run reuses it"))

    async def _endpoint(self, plan: RunPlan, notify) -> Endpoint | None:
        if self._generator is not None:
            return None
        if plan.model.endpoint is not None:
            return plan.model.endpoint
        if plan.model.session is not None:
            s = plan.model.session
            if s.expires is not None:
                # A session kept alive by an earlier run: hold it (no expiry while this run uses it), then
                # give it its keep-alive again at the end.
                from proverctl.inference.sessions import set_expiry

                self._reused_keep_alive = s.keep_alive_s
                set_expiry(s.name, None)
                return Endpoint(s.url, s.model_id, s.engine, session=s.name)
            if self.request.keep_alive is not None:
                return Endpoint(s.url, s.model_id, s.engine, session=s.name)
            return Endpoint(s.url, s.model_id, s.engine)
        from proverctl.inference.sessions import launch

        def started(record) -> None:
            notify(Notice("info", f"starting a {record.engine} session for {plan.model.ref.display} (log: {record.log})"))

        record, _ = await asyncio.to_thread(launch, plan.model.ref, engine=self.request.engine, on_started=started)
        self._started_session = True
        return Endpoint(record.url, record.model_id, record.engine, session=record.name)

    async def _run_in_store(self, store: Store, plan: RunPlan, endpoint: Endpoint | None, notify, handle_signals: bool) -> ProveResult:
        from proverctl.proving.records import report_rows, stored_target, target_rows

        request = self.request
        if endpoint is not None:
            request = replace(request, served_model=endpoint.model_id if request.endpoint else request.served_model)
        resolved = plan.record(endpoint)
        self.request = request = replace(request, resolved=resolved)
        if self.resume_run is None:
            rows, targets = target_rows(plan.inputs)
            self.run_id = store.create_run(
                kind=self.kind, command=self.command, input=request.input or (request.dojo.label if request.dojo else ""),
                model=plan.model.label, revision=plan.model.revision, engine=resolved["engine"], endpoint=request.endpoint,
                lean_profile=plan.verifier.lean_profile, settings=legacy_settings(request), request=request.to_json(),
                served_model=resolved["served_model"], engine_version=resolved["engine_version"])
            ids = store.add_targets(self.run_id, rows)
            items = list(zip(ids, targets))
            proved: set[int] = set()
            prior: dict[int, float] = {}
        else:
            stored = [t for t in store.targets(self.run_id) if t.get("parent_id") is None]
            items = [(t["id"], stored_target(t)) for t in stored]
            proved = {t["id"] for t in stored if t["status"] == "proved"}
            prior = {t["id"]: float(t["seconds"] or 0) for t in stored}
            store.update_run(self.run_id, status="running", finished=None, request=request.to_json(), engine=resolved["engine"],
                             served_model=resolved["served_model"], engine_version=resolved["engine_version"])
            notify(Notice("info", f"resuming run {self.run_id}: {len(proved)} of {len(items)} targets already proved"))
        run_id = self.run_id
        where = endpoint.url if endpoint else "an injected generator"
        notify(Notice("info", f"run {run_id}: {len(items)} target(s), k={request.k}, model {plan.model.label} via {where}"))
        notify(RunStarted(run_id, items, request.k, {target_id: len({s for s, _ in store.done_samples(target_id)})
                                                       for target_id, _ in items}))
        interrupted = False
        failure: BaseException | None = None
        try:
            interrupted = await self._sample(store, run_id, items, proved, prior, plan, endpoint, notify, handle_signals)
        except BaseException as exc:  # written below, then re-raised: nothing already proved is lost
            failure = exc
            interrupted = isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt))
        rows = report_rows(store, run_id) if _store_usable(store) else []
        written = self._write(plan, rows, run_id, notify)
        status = "interrupted" if interrupted else ("failed" if failure is not None else "finished")
        try:
            store.finish_run(run_id, status)
        except Exception:  # the store itself may be what failed (disk full, locked)
            pass
        if failure is not None and not interrupted:
            raise failure
        if interrupted:
            notify(Notice("info", f"run {run_id} interrupted; continue with `proverctl prove --resume {run_id}`"))
            code = ExitCode.INTERRUPTED
        elif request.judge == "kernel" and any(r["status"] == "proved" and not r["kernel_checked"] for r in rows):
            # --judge kernel promises kernel-checked proofs: one that is not (a native_decide proof allowed
            # by --allow-native-decide, say) is reported, and the run does not exit 0.
            weaker = [f"{r['name']} ({r['checked']})" for r in rows if r["status"] == "proved" and not r["kernel_checked"]]
            notify(Notice("warning", f"--judge kernel: {len(weaker)} proof(s) are not kernel-checked: {', '.join(weaker[:5])}"
                                     f"{' ...' if len(weaker) > 5 else ''}"))
            code = ExitCode.NOT_PROVED
        elif all(r["status"] == "proved" for r in rows):
            code = ExitCode.OK
        elif store.verdicts(run_id) == {"error"}:
            notify(Notice("warning", f"every check failed in the verifier itself, nothing was judged (see `proverctl show {run_id}`)"))
            code = ExitCode.VERIFIER
        else:
            code = ExitCode.NOT_PROVED
        return ProveResult(run_id, rows, int(code), request, interrupted, written, plan.inputs, plan=plan, cache_hits=self.cache_hits)

    def _write(self, plan: RunPlan, rows: list[dict], run_id: int, notify) -> list[str]:
        from proverctl.proving.outputs import write_outputs
        from proverctl.proving.records import proofs_by_file, statements_by_file

        request = self.request
        if not (request.in_place or request.output):
            return []
        dataset = next((f for f in plan.inputs if f.is_dataset), None)
        if dataset is not None and request.output:
            from proverctl.proving.outputs import write_dataset

            try:
                written = [write_dataset(dataset, rows, self._where(request.output))]
            except OSError as exc:
                notify(Notice("warning", f"could not write {request.output}: {exc}; the proofs are in the store (`proverctl show {run_id}`)"))
                return []
            notify(Notice("info", f"wrote {written[0]}"))
            return written
        try:
            written, notes = write_outputs(plan.inputs, proofs_by_file(rows),
                                           input_name=None if request.input == "-" else self._where(request.input),
                                           in_place=request.in_place, output=self._where(request.output), run_id=run_id,
                                           statements=statements_by_file(rows))
        except OSError as exc:
            notify(Notice("warning", f"could not write the proofs: {exc}; they are in the store (`proverctl show {run_id}`)"))
            return []
        for note in notes:
            notify(Notice("warning", note))
        for path in written:
            notify(Notice("info", f"wrote {path}"))
        return written

    async def _sample(self, store: Store, run_id: int, items: list[tuple[int, Target]], proved: set[int], prior: dict[int, float],
                      plan: RunPlan, endpoint: Endpoint | None, notify, handle_signals: bool) -> bool:
        """Generate and check until the budget is spent; True when stopped by Ctrl-C."""
        from contextlib import AsyncExitStack

        async with AsyncExitStack() as stack:
            verification = None
            if self._verifier is not None:
                verifier, pool = self._verifier, getattr(self._verifier, "pool", None)
            else:
                from proverctl.proving.check import open_for_job

                provider = self._provider or open_for_job
                verification = await stack.enter_async_context(provider(plan.verifier, len(items) * self.request.k))
                verifier, pool = verification.verifier, verification.pool
            if self.resume_run is not None and proved and getattr(verifier, "judge", None) is not None:
                await self._rejudge(store, items, proved, verifier, notify)
            cache = None
            if not self.request.no_cache:
                from proverctl.proving.cache import ProofCache

                cache = ProofCache(store, plan.verifier.lean_profile, plan.verifier.describe()["judge"])
                stack.callback(cache.remember, run_id)  # when the run ends, interrupted or not
                self.cache_hits = await cache.answer(items, proved, verifier, lambda text: notify(Notice("warning", text)))
                if self.cache_hits:
                    notify(Notice("info", f"proof cache: {self.cache_hits} of {len(items)} target(s) answered from the store, each "
                                          "judged again (--no-cache samples them)"))
            client = None
            generator = self._generator
            options = plan.generation
            if generator is None and endpoint.others:
                generator, options = await self._router(stack, endpoint, plan, notify)
            elif generator is None:
                from proverctl.inference.client import GenerationClient

                client = await stack.enter_async_context(GenerationClient(
                    endpoint.url, endpoint.model_id, api_key=endpoint.api_key, concurrency=plan.generation.generation_concurrency,
                    timeout=self.settings.request_timeout))
                generator = client
            self._pipeline = pipeline = Pipeline(store, generator, verifier, options, notify)
            if self._stopped:
                pipeline.stop()
            if handle_signals:
                self._install_signals(notify)
                settle_collector()  # a CLI run owns its process
            try:
                if self.request.decompose is not None:
                    await self._decompose(stack, store, run_id, items, proved, prior, plan, pipeline, generator, pool, verifier,
                                          verification, notify)
                else:
                    await pipeline.run(items, already_proved=proved, prior_seconds=prior)
            finally:
                if handle_signals:
                    self._remove_signals()
        return self._stopped

    async def _router(self, stack, endpoint: Endpoint, plan: RunPlan, notify):
        """Several endpoints of one model (`--endpoint` repeated): one router over them
        (proverctl.inference.router), the pipeline's requests in flight their capacities summed unless
        --concurrency says otherwise; at the end, what each endpoint did."""
        from proverctl.inference.client import GenerationClient
        from proverctl.inference.router import EndpointRouter, Route

        per = plan.generation.generation_concurrency
        routes = [Route(GenerationClient(url, endpoint.model_id, api_key=endpoint.api_key, concurrency=capacity or per, retries=1,
                                         timeout=self.settings.request_timeout), weight=weight, capacity=capacity or per)
                  for url, weight, capacity in [(endpoint.url, endpoint.weight, endpoint.capacity)]
                  + [(o.url, o.weight, o.capacity) for o in endpoint.others]]
        router = await stack.enter_async_context(EndpointRouter(routes))

        def report() -> None:
            for s in router.stats():
                notify(Notice("info", f"endpoint {s['endpoint']}: {s['requests']} request(s), {s['failed']} failed, "
                                      f"{s['tokens_per_s']} tokens/s{'' if s['up'] else ', down: ' + str(s['last_error'])}"))

        stack.callback(report)
        options = plan.generation
        if self.request.concurrency is None:
            options = replace(options, generation_concurrency=sum(r.capacity for r in routes))
        notify(Notice("info", f"{len(routes)} endpoints of {endpoint.model_id}: up to {options.generation_concurrency} requests in flight, "
                              "a target's samples kept on one endpoint while it has room"))
        return router, options

    async def _decompose(self, stack, store: Store, run_id: int, items, proved: set[int], prior: dict[int, float], plan: RunPlan,
                         pipeline: Pipeline, generator, pool, verifier, verification, notify) -> None:
        """`--decompose`: the pipeline samples every target, and each is decomposed beside it, its holes
        scheduled by the same pipeline (proverctl.proving.decompose_run)."""
        from proverctl.decompose import composed_policy
        from proverctl.proving.decompose_run import decomposition_settings, planner_for, run_decomposition

        if pool is None:
            raise UsageError("--decompose needs the local REPL pool", hint="leave out --verify-on / --repo")
        request = self.request.decompose
        planner_generator = generator
        if request.planner:
            from proverctl.inference.client import GenerationClient

            planner_generator = await stack.enter_async_context(GenerationClient(
                request.planner, request.planner_model or "", concurrency=plan.generation.generation_concurrency,
                timeout=self.settings.request_timeout))
            if not request.planner_model:
                served = await planner_generator.models()
                if not served:
                    raise UsageError(f"the planner at {request.planner} serves no model", hint="name one with --planner-model")
                planner_generator.model = served[0]
        composed = verification.verifier_for(composed_policy(plan.verifier.policy)) if verification else verifier
        settings = decomposition_settings(request, plan.generation.k, plan.verifier.check_timeout, plan.verifier.lean_profile)
        stats = await run_decomposition(store, run_id, items, pipeline, pool, verifier, composed, request, settings,
                                        planner_for(planner_generator, plan.generation.sampling, plan.generation.seed),
                                        already_proved=proved, prior_seconds=prior)
        notify(Notice("info", f"decomposition: {stats.sketches} sketch(es) ({stats.repaired} repaired, {stats.masked} masked), "
                              f"{stats.holes} hole(s): {stats.holes_proved} proved, {stats.holes_reused} reused, {stats.holes_false} false"))

    async def _rejudge(self, store: Store, items: list[tuple[int, Target]], proved: set[int], verifier, notify) -> None:
        """A resumed run whose proofs were not kernel-checked (REPL-checked only, unsandboxed, recorded
        before sandboxes were) puts each through today's verifier and judge first: a kernel-checked one
        is recorded as a `rejudge` attempt and becomes the target's proof; one the judge refuses is no
        longer proved, and the run samples it again."""
        from proverctl.lean.verdict import KERNEL_CHECKED, checked_label
        from proverctl.store.db import AttemptRow

        for target_id, target in items:
            if target_id not in proved:
                continue
            row = store.target(target_id)
            attempt = store.attempt(row["proved_attempt"]) if row and row.get("proved_attempt") else None
            if attempt is None or checked_label("proved", attempt.get("judge"), attempt.get("sandbox")) == KERNEL_CHECKED:
                continue
            verdict = await verifier.verify(target, attempt["code"])
            again = sum(1 for s, _ in store.done_samples(target_id) if s == REJUDGE_SAMPLE)
            new_id = store.add_attempt(AttemptRow(target_id, REJUDGE_SAMPLE, again, None, None, attempt["code"], verdict.kind.value,
                                                  verdict.reasons, [m.as_dict() for m in verdict.messages],
                                                  verify_seconds=round(verdict.seconds, 3), kind="rejudge", judge=verdict.judge,
                                                  sandbox=verdict.sandbox, axioms=verdict.axioms))
            if verdict.proved:
                store.set_target(target_id, proved_attempt=new_id)
                label = checked_label("proved", verdict.judge, verdict.sandbox)
                notify(Notice("info", f"{target.display_name}: its earlier proof judged again: {label}"))
            elif verdict.kind is VerdictKind.rejected:
                store.set_target(target_id, status="pending", proved_attempt=None)
                proved.discard(target_id)
                notify(Notice("warning", f"{target.display_name}: the judge refuses its earlier proof ({verdict.reasons[0] if verdict.reasons else ''}); "
                                         "sampling it again"))

    def _install_signals(self, notify) -> None:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        presses = 0

        def on_signal() -> None:
            nonlocal presses
            presses += 1
            if presses > 1 and main is not None:
                main.cancel()  # abandon what is in flight; committed attempts are safe, proofs are still written
                return
            notify(Notice("warning", "interrupted: stopping (Ctrl-C again to abandon the samples in flight)"))
            self.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


# The young generation is collected every 10,000 new container objects, not every 700. An attempt makes
# hundreds (a reading's columns, a parsed candidate) that its own end frees, and each collection walks
# whatever the attempts in flight still hold: bench/attempt_cpu.py spent 278 ms in collections over a
# run with 700, 31 ms with this. What lives in cycles waits a little longer to be freed (a few MB at most).
GC_YOUNG_THRESHOLD = 10_000


def settle_collector() -> None:
    """For a run that owns its process: what is alive now (modules, the plan, the store) lives to the end,
    so no collection walks it again (bench/attempt_cpu.py: a 45 ms pause of the event loop at 64 requests
    in flight, 10 ms with it frozen), and the young generation is collected less often."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _store_usable(store: Store) -> bool:
    try:
        store.db.execute("SELECT 1").fetchone()
        return True
    except Exception:
        return False


def legacy_settings(request: ProveRequest) -> dict:
    """The runs.settings summary `runs`/`show` have always shown (the request holds everything)."""
    return {"k": request.k, "family": request.family, "mode": request.mode, "rounds": request.rounds, "all": request.all_samples,
            "seed": request.seed, "sampling": (request.resolved or {}).get("sampling"), "allow_aux": request.allow_aux_lemmas,
            "allow_native_decide": request.allow_native_decide, "endpoint": request.endpoint, "served_model": request.served_model,
            "timeout": request.timeout, "verify_on": request.verify_on}


def stored_request(run) -> ProveRequest:
    """A run's request: the stored JSON, or for runs recorded before requests were stored, the
    request their settings summary describes."""
    import json

    if run["request"]:
        return ProveRequest.from_json(run["request"])
    saved = json.loads(run["settings"] or "{}")
    sampling = saved.get("sampling") or {}
    return ProveRequest(input=run["input"], model=run["model"], endpoint=saved.get("endpoint"), served_model=saved.get("served_model"),
                        family=saved.get("family"), mode=saved.get("mode", "cot"), k=saved.get("k", 8), all_samples=saved.get("all", False),
                        rounds=saved.get("rounds", 0), seed=saved.get("seed"), temperature=sampling.get("temperature"),
                        top_p=sampling.get("top_p"), max_tokens=sampling.get("max_tokens"), allow_aux_lemmas=saved.get("allow_aux", False),
                        lean_profile=run["lean_profile"], timeout=saved.get("timeout"), verify_on=saved.get("verify_on"))
