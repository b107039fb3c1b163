"""`prove` end to end: pick the endpoint, record the run, run the pipeline, write proofs back.

The CLI (and later the TUI) call `ProveJob.run()`; everything here raises ProverctlError for the user
and never prints.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from proverctl.errors import EnvironmentMissing, UsageError
from proverctl.inference.client import Completion, GenerationClient
from proverctl.inputs import InputFile, header_hash
from proverctl.lean.checker import check_candidate
from proverctl.lean.pool import ReplPool
from proverctl.lean.source import Source
from proverctl.lean.targets import Target
from proverctl.lean.verdict import Policy, Verdict
from proverctl.pipeline import Event, Pipeline, ProveOptions
from proverctl.prompts.formats import Prompt
from proverctl.store.db import Store


@dataclass
class Endpoint:
    url: str
    model_id: str
    engine: str
    api_key: str | None = None
    session: str | None = None  # a session this run started (stopped at the end unless kept)


def acquire_endpoint(
    ref,
    *,
    endpoint_url: str | None,
    api_key: str | None,
    served_model: str | None,
    engine: str | None,
    session=None,
    on_started: Callable | None = None,
) -> Endpoint:
    """`--endpoint` if given; else `session` (the live session for the model the caller found, or
    None); else start one for this run."""
    from proverctl.inference import sessions

    if endpoint_url:
        async def probe() -> list[str]:
            async with GenerationClient(endpoint_url, served_model or "", api_key=api_key, retries=1, backoff=0.2) as client:
                return await client.models()

        listed = asyncio.run(probe())
        model_id = served_model or (listed[0] if listed else None)
        if model_id is None:
            raise EnvironmentMissing(f"the endpoint {endpoint_url} lists no model", hint="pass --served-model ID")
        if served_model and listed and served_model not in listed:
            raise UsageError(f"the endpoint {endpoint_url} does not serve {served_model!r}", hint=f"it lists: {', '.join(listed)}")
        return Endpoint(endpoint_url, model_id, "remote", api_key)
    if session is not None:
        return Endpoint(session.url, session.model_id, session.engine)
    record, _ = sessions.launch(ref, engine=engine, on_started=on_started)
    return Endpoint(record.url, record.model_id, record.engine, session=record.name)


class ClientGenerator:
    def __init__(self, client: GenerationClient) -> None:
        self.client = client

    async def complete(self, prompt: Prompt, seed: int | None = None) -> Completion:
        return await self.client.complete(prompt, seed)


class PoolVerifier:
    def __init__(self, pool: ReplPool, policy: Policy, timeout: float) -> None:
        self.pool, self.policy, self.timeout = pool, policy, timeout

    async def verify(self, target: Target, code: str) -> Verdict:
        return await check_candidate(self.pool, header=target.header, code=code, target_name=target.name,
                                     original_statement=target.statement, policy=self.policy, timeout=self.timeout)


def target_rows(inputs: list[InputFile]) -> tuple[list[dict], list[Target]]:
    rows, targets = [], []
    for file in inputs:
        for t in file.targets:
            rows.append({"file": file.label, "name": t.name, "kind": t.kind, "line": t.line, "statement": t.statement,
                         "doc": t.doc, "header": t.header, "header_hash": header_hash(t.header)})
            targets.append(t)
    return rows, targets


def stored_target(row: dict) -> Target:
    return Target(row["name"], row["kind"], row["header"], row["doc"], row["statement"], "", row["line"] or 1, row["file"])


@dataclass
class ProveResult:
    run_id: int
    rows: list[dict]  # one per target: name, file, line, status, attempts, proof, seconds, run
    interrupted: bool = False
    written: list[str] = field(default_factory=list)


def run_pipeline(
    store: Store,
    run_id: int,
    items: list[tuple[int, Target]],
    generator,
    verifier,
    options: ProveOptions,
    *,
    already_proved: set[int] = frozenset(),
    on_event: Callable[[Event], None] | None = None,
    on_pipeline: Callable[[Pipeline], None] | None = None,
) -> dict[int, str]:
    async def main() -> dict[int, str]:
        pipeline = Pipeline(store, generator, verifier, options, on_event)
        if on_pipeline:
            on_pipeline(pipeline)
        return await pipeline.run(items, already_proved=already_proved)

    return asyncio.run(main())


def proof_of(store: Store, target_row: dict) -> str | None:
    """The checked code of a target's proving attempt (doc + original statement + proof)."""
    if not target_row.get("proved_attempt"):
        return None
    attempt = store.attempt(target_row["proved_attempt"])
    return attempt["code"] if attempt else None


def report_rows(store: Store, run_id: int) -> list[dict]:
    out = []
    for t in store.targets(run_id):
        if t.get("parent_id") is not None:
            continue  # subgoal lemmas of --decompose are reported through their parent
        out.append({"name": t["name"] or f"example@{t['line']}", "file": t["file"], "line": t["line"], "status": t["status"],
                    "attempts": t["n_attempts"], "proof": proof_of(store, t), "seconds": t["seconds"], "run": run_id})
    return out


def completed_text(text: str, proofs: dict[str, str]) -> str:
    """`text` with the declarations named in `proofs` replaced by their proved code; every other
    character stays as it was. Proofs are keyed by declaration name (or example@line)."""
    source = Source(text)
    pieces, cursor = [], 0
    for decl in source.targets:
        key = decl.full_name or f"example@{decl.line}"
        code = proofs.get(key)
        if code is None:
            continue
        pieces.append(text[cursor:decl.full_start])
        pieces.append(code.rstrip("\n"))
        cursor = decl.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def write_back(inputs: list[InputFile], rows: list[dict], *, in_place: bool, output: Path | None) -> list[str]:
    """Write proved targets into their files (`--in-place` keeps FILE.bak) or into `output`."""
    written = []
    by_file: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["status"] == "proved" and row["proof"]:
            by_file.setdefault(row["file"], {})[row["name"]] = row["proof"]
    for file in inputs:
        if file.text is None:
            continue
        new = completed_text(file.text, by_file.get(file.label, {}))
        if output is not None:
            destination = output / Path(file.label).name if output.is_dir() else output
        elif in_place and file.path is not None:
            if new == file.text:
                continue
            backup = file.path.with_name(file.path.name + ".bak")
            shutil.copy2(file.path, backup)
            destination = file.path
        else:
            continue
        tmp = destination.with_name(destination.name + ".proverctl-tmp")
        tmp.write_bytes(new.encode("utf-8"))
        tmp.replace(destination)
        written.append(str(destination))
    return written


def describe_settings(options: ProveOptions, extra: dict[str, Any]) -> dict[str, Any]:
    data = {"k": options.k, "family": options.family, "mode": options.mode, "rounds": options.rounds, "all": options.all_samples,
            "seed": options.seed, "sampling": options.sampling, "allow_aux": options.allow_aux}
    data.update(extra)
    return data


def record_check(label: str, command: str, entries: list[dict], settings: dict) -> int | None:
    """Record a `check` as a run: one target and one attempt per checked declaration / outputs row.

    `entries`: {name, kind, line, statement, header, doc, code, raw_output, verdict: dict}. A store that
    cannot be written (read-only disk, newer schema) does not fail the check: None is returned.
    """
    from proverctl.errors import ProverctlError
    from proverctl.paths import Paths
    from proverctl.store.db import AttemptRow

    try:
        with Store(Paths.resolve().store_db) as store:
            run_id = store.create_run(kind="check", command=command, input=label, model=None, revision=None, engine=None,
                                      endpoint=None, lean_profile=settings.get("lean_profile"), settings=settings)
            ids = store.add_targets(run_id, [{"file": label, "name": e["name"], "kind": e["kind"], "line": e["line"],
                                              "statement": e["statement"], "doc": e.get("doc"), "header": e.get("header", ""),
                                              "header_hash": header_hash(e.get("header", ""))} for e in entries])
            for target_id, e in zip(ids, entries):
                verdict = e["verdict"]
                proved = verdict["status"] == "proved"
                store.add_attempt(AttemptRow(target_id, 0, 0, None, e.get("raw_output"), e.get("code"), verdict["status"],
                                             verdict["reasons"], verdict["messages"], verify_seconds=verdict["seconds"]), proved=proved)
                store.set_target(target_id, status="proved" if proved else "not-proved", seconds=verdict["seconds"])
            store.finish_run(run_id, "finished")
            return run_id
    except (ProverctlError, OSError):
        return None


async def run_decomposition(store: Store, run_id: int, items: list[tuple[int, Target]], client: GenerationClient, pool: ReplPool,
                            options: ProveOptions, policy: Policy, settings, plan: dict, on_event=None) -> dict[int, str]:
    """`prove --decompose`: each target through proverctl.decompose, its subgoal lemmas recorded as
    targets under it, every sketch, subgoal attempt and composed check recorded as attempts."""
    from proverctl.decompose import composed_policy, decompose
    from proverctl.pipeline import Pipeline
    from proverctl.store.db import AttemptRow

    generator = ClientGenerator(client)
    verifier = PoolVerifier(pool, policy, settings.check_timeout)
    planner_client = None
    if plan.get("url"):
        planner_client = GenerationClient(plan["url"], plan.get("model") or "", concurrency=8, timeout=settings.request_timeout)
        if not plan.get("model"):
            planner_client.model = (await planner_client.models() or [""])[0]
    results: dict[int, str] = {}

    async def solve(target_id: int, target: Target, depth: int) -> str | None:
        counters = {"sketch": 0}

        async def planner(prompt) -> str:
            return (await (planner_client or client).complete(prompt, options.seed)).text

        def on_sketch(output: str, code: str | None, check) -> None:
            counters["sketch"] += 1
            store.add_attempt(AttemptRow(target_id, 1000 + counters["sketch"], 0, None, output, code,
                                         "sketch" if check.ok else "rejected", check.reasons, [], kind="sketch"))

        async def prove_hole(hole: Target, remaining: int) -> str | None:
            (hole_id,) = store.add_targets(run_id, target_rows([InputFile(target.source_label, None, None, [hole])])[0],
                                           parent_id=target_id)
            status = await Pipeline(store, generator, verifier, options, on_event).run([(hole_id, hole)])
            if status[hole_id] == "proved":
                return proof_of(store, store.target(hole_id))
            if remaining > 1:
                return await solve(hole_id, hole, remaining - 1)
            return None

        async def verify_composed(t: Target, code: str) -> Verdict:
            verdict = await check_candidate(pool, header=t.header, code=code, target_name=t.name, original_statement=t.statement,
                                            policy=composed_policy(policy), timeout=settings.check_timeout)
            store.add_attempt(AttemptRow(target_id, 2000 + counters["sketch"], 0, None, None, code, verdict.kind.value, verdict.reasons,
                                         [m.as_dict() for m in verdict.messages], verify_seconds=verdict.seconds, kind="composed"),
                              proved=verdict.proved)
            return verdict

        outcome = await decompose(target, plan=planner, prove_hole=prove_hole, pool=pool, verify_composed=verify_composed,
                                  sketches=plan["sketches"], depth=depth, sampling=options.sampling, timeout=settings.check_timeout,
                                  on_sketch=on_sketch)
        status = "proved" if outcome.verdict.proved else "not-proved"
        store.set_target(target_id, status=status)
        return outcome.code if outcome.verdict.proved else None

    try:
        for target_id, target in items:
            code = await solve(target_id, target, plan["depth"])
            results[target_id] = "proved" if code else "not-proved"
    finally:
        if planner_client is not None:
            await planner_client.close()
    return results
