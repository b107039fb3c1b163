"""`proverctl prove`: every `sorry` -> sampled proofs -> checked by Lean -> written back."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

from proverctl.cli._output import Format, emit, info, resolve_format, stderr_is_tty, warn
from proverctl.errors import ExitCode, UsageError


def prove_command(
    input: Optional[str] = typer.Argument(None, help="A .lean file, a folder of them, - (stdin), or a dataset .jsonl (not with --resume)."),
    theorem: Optional[List[str]] = typer.Option(None, "--theorem", "-t", help="Only this target (repeatable)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Alias, org/repo or directory [env: PROVERCTL_MODEL]."),
    k: int = typer.Option(8, "--k", min=1, help="Samples per target (the pass@k budget)."),
    mode: str = typer.Option("cot", "--mode", help="cot or non-cot (DeepSeek-Prover-V2)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="New tokens per sample [default: per family]."),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, help="Sampling temperature [default: catalog or 1.0]."),
    top_p: Optional[float] = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Nucleus sampling [default: catalog or 0.95]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Base seed (sample i, round r uses seed + 1000 i + r)."),
    rounds: int = typer.Option(0, "--rounds", min=0, help="Error-feedback rounds for failed samples."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.1, help="Seconds per Lean check [env: PROVERCTL_CHECK_TIMEOUT]."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Lean REPL workers [env: PROVERCTL_WORKERS]."),
    all_samples: bool = typer.Option(False, "--all", help="Keep sampling after a target is proved."),
    in_place: bool = typer.Option(False, "--in-place", help="Write proofs into the input file (keeps FILE.bak)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the completed file here (a folder for folder input)."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="auto, human, json, jsonl, quiet, or lean (the completed file on stdout)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="Any OpenAI-compatible server (vLLM, SGLang, ...) instead of a local session."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="PROVERCTL_API_KEY", help="Bearer token for --endpoint."),
    served_model: Optional[str] = typer.Option(None, "--served-model", help="Model id at --endpoint [default: the first it lists]."),
    engine: Optional[str] = typer.Option(None, "--engine", help="Engine for a session started for this run: vllm or transformers."),
    keep_session: bool = typer.Option(False, "--keep-session", help="Leave a session started for this run running."),
    resume: Optional[int] = typer.Option(None, "--resume", help="Continue run RUN: finished attempts are kept, proved targets skipped."),
    allow_native_decide: bool = typer.Option(False, "--allow-native-decide", help="Accept proofs using native_decide (Lean.ofReduceBool)."),
    allow_aux: bool = typer.Option(False, "--allow-aux-lemmas", help="Accept auxiliary theorems written before the target."),
    repl_command: Optional[str] = typer.Option(None, "--repl-command", help="Command that starts one Lean REPL."),
    lean_project: Optional[str] = typer.Option(None, "--lean-project", help="Lean project the REPL runs in."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Lean workspace profile [default: the model's]."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="auto (bwrap when it works), bwrap or none [env: PROVERCTL_SANDBOX]."),
    decompose: bool = typer.Option(False, "--decompose", help="Recursive proving: a planner sketches `have ... := by sorry` steps, each is proved as a lemma."),
    planner: Optional[str] = typer.Option(None, "--planner", help="OpenAI-compatible URL of the planner model [default: the prover itself]."),
    planner_model: Optional[str] = typer.Option(None, "--planner-model", help="Model id at --planner [default: the first it lists]."),
    depth: int = typer.Option(2, "--depth", min=1, help="With --decompose: how deep unproved subgoals are decomposed again."),
    sketches: int = typer.Option(4, "--sketches", min=1, help="With --decompose: planner samples per (sub)goal."),
    verify_on: Optional[str] = typer.Option(None, "--verify-on", help="Check on Ray workers: ray (local), auto, or ray://HOST:PORT."),
    repo: Optional[str] = typer.Option(None, "--repo", help="Prove inside this Lean repository (git URL) through LeanDojo."),
    rev: Optional[str] = typer.Option(None, "--rev", help="With --repo: the commit."),
    file: Optional[str] = typer.Option(None, "--file", help="With --repo: the .lean file, a path inside the repository."),
) -> None:
    """Prove every `sorry`: sample proofs from a prover model, check each with Lean, write back the proved ones.

    Uses a live session for the model (`proverctl serve`), or starts one for the run and stops it after.
    Every attempt is recorded (`proverctl runs`, `proverctl show`, `proverctl tui`).
    Exit 0: every target proved (or nothing to do); 1: some not proved; 2: usage; 3: model, Lean or
    endpoint missing; 4: verifier failure; 130: interrupted (resume with --resume RUN).

    Examples: proverctl prove Algebra.lean --in-place ; cat thm.lean | proverctl prove - --format lean ;
    proverctl prove minif2f.jsonl --k 32 --format jsonl > results.jsonl
    """
    from proverctl.inputs import load_inputs, select
    from proverctl.lean.verdict import Policy
    from proverctl.models.catalog import parse_model_ref
    from proverctl.paths import Paths
    from proverctl.pipeline import ProveOptions
    from proverctl.prompts.formats import check_family
    from proverctl.settings import Settings
    from proverctl.store.db import Store

    dojo = None
    if repo or rev or file:
        from proverctl.dojo import DojoSpec

        if not (repo and rev and file) or input is not None:
            raise UsageError("--repo, --rev and --file go together, without an INPUT", hint="e.g. --repo URL --rev COMMIT --file Foo/Bar.lean")
        if decompose or verify_on or resume is not None:
            raise UsageError("--repo does not combine with --decompose, --verify-on or --resume", hint="LeanDojo checks each proof itself")
        dojo = DojoSpec(repo, rev, file)
    elif input is None and resume is None:
        raise UsageError("name what to prove: a .lean file, a folder, - or a .jsonl", hint="see `proverctl prove --help`")
    fmt_flag = (format or "").lower() or None
    if fmt_flag not in (None, "auto", "human", "json", "jsonl", "quiet", "lean"):
        raise UsageError(f"unknown format {format!r}", hint="auto, human, json, jsonl, quiet or lean")
    if output is not None and not output.parent.exists():
        raise UsageError(f"cannot write to {output}: {output.parent} does not exist", hint="create the directory first")
    if in_place and output is not None:
        raise UsageError("--in-place and --output both given", hint="choose one")
    settings = Settings.load({"model": model, "repl_command": repl_command, "lean_project": lean_project,
                              "lean_profile": profile, "check_timeout": timeout, "workers": workers, "sandbox": sandbox})
    paths = Paths.resolve()
    store = Store(paths.store_db)
    if resume is not None:
        run = store.run(resume)
        if run is None:
            raise UsageError(f"no run {resume} in the store", hint="`proverctl runs` lists them")
        saved = json.loads(run["settings"])
        input = run["input"]
        model = run["model"]
        settings = Settings.load({"model": model, "repl_command": repl_command, "lean_project": lean_project,
                                  "lean_profile": profile or run["lean_profile"], "check_timeout": timeout or saved.get("timeout"),
                                  "workers": workers, "sandbox": sandbox})
        k, mode, rounds, all_samples = saved["k"], saved["mode"], saved["rounds"], saved["all"]
        seed, allow_aux = saved.get("seed"), saved.get("allow_aux", False)
        endpoint = endpoint or saved.get("endpoint")
        verify_on = verify_on or saved.get("verify_on")
        served_model = served_model or saved.get("served_model")
    if dojo is not None:
        from proverctl import dojo as dojo_mod
        from proverctl.inputs import InputFile

        dojo_mod.require(dojo)
        text = dojo_mod.read_file(dojo)
        inputs = [InputFile(dojo.label, None, text, dojo_mod.targets(dojo, text, list(theorem or [])))]
        input = dojo.label
    else:
        inputs = load_inputs(input) if (resume is None or input != "<stdin>") else []
        select(inputs, list(theorem or []))
    n_targets = sum(len(f.targets) for f in inputs)
    fmt = "lean" if fmt_flag == "lean" else resolve_format(Format(fmt_flag) if fmt_flag else None)
    if fmt == "lean" and len(inputs) != 1:
        raise UsageError("--format lean needs a single file or stdin", hint="use --in-place or -o for folders")
    if resume is None and n_targets == 0:
        info(f"nothing to prove: no `sorry` in {input}")
        if fmt == "lean" and inputs and inputs[0].text is not None:
            sys.stdout.write(inputs[0].text)
        return

    ref = parse_model_ref(settings.model)
    family = ref.family or "deepseek-v2"
    check_family(family, mode)
    sampling = dict((ref.entry.sampling or {}) if ref.entry else {})
    sampling = {k2: v for k2, v in sampling.items() if k2 in ("temperature", "top_p", "max_tokens")}
    sampling.update({k2: v for k2, v in {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}.items() if v is not None})
    lean_profile = profile or (ref.entry.lean_profile if ref.entry else settings.lean_profile)
    policy = Policy(allow_native_decide=allow_native_decide, allow_aux_lemmas=allow_aux)
    if verify_on is not None:
        from proverctl.lean.ray_verify import parse_address

        parse_address(verify_on)
    options = ProveOptions(k=k, family=family, mode=mode, rounds=rounds, all_samples=all_samples, seed=seed,
                           sampling=sampling, allow_aux=allow_aux, verify_on=verify_on)

    # Environment, cheapest check first: the weights (or an endpoint), then Lean, then the engine.
    from proverctl.inference.sessions import find_session
    from proverctl.lean.workspace import resolve_repl
    from proverctl.models.hub import local_path

    live = find_session(ref) if endpoint is None else None
    if endpoint is None and live is None:
        local_path(ref)
    repl = resolve_repl(settings.repl_command, settings.lean_project, lean_profile) if dojo is None else None
    from proverctl.prove import acquire_endpoint

    ep = acquire_endpoint(ref, endpoint_url=endpoint, api_key=api_key, served_model=served_model, engine=engine, session=live,
                          on_started=lambda record: info(f"starting a {record.engine} session for {ref.display} (log: {record.log})"))
    try:
        plan = None
        if decompose:
            plan = {"url": planner, "model": planner_model, "depth": depth, "sketches": sketches}
        exit_code = _run(store, inputs, ep, repl, settings, options, policy, ref, lean_profile, fmt, resume, in_place, output,
                         endpoint, served_model, input, plan, dojo)
    finally:
        if ep.session and not keep_session:
            from proverctl.inference.sessions import stop_sessions

            stop_sessions(ep.session)
            info(f"stopped session {ep.session}")
        store.close()
    if exit_code:
        raise typer.Exit(exit_code)


def _run(store, inputs, ep, repl, settings, options, policy, ref, lean_profile, fmt, resume, in_place, output, endpoint,
         served_model, input_label, plan=None, dojo=None) -> int:
    import asyncio
    from proverctl.inference.client import GenerationClient
    from proverctl.lean.pool import ReplPool, default_workers
    from proverctl.lean.repl import ReplStartError
    from proverctl.prove import ClientGenerator, PoolVerifier, describe_settings, report_rows, stored_target, target_rows, write_back

    if resume is None:
        rows, targets = target_rows(inputs)
        run_id = store.create_run(
            kind="prove", command=shlex.join(["proverctl"] + sys.argv[1:]), input=input_label, model=ref.text,
            revision=ref.revision, engine=ep.engine, endpoint=endpoint, lean_profile=lean_profile,
            settings=describe_settings(options, {"endpoint": endpoint, "served_model": served_model, "timeout": settings.check_timeout,
                                                 "verify_on": options.verify_on}),
        )
        ids = store.add_targets(run_id, rows)
        items = list(zip(ids, targets))
        proved: set[int] = set()
    else:
        run_id = resume
        stored = store.targets(run_id)
        items = [(t["id"], stored_target(t)) for t in stored]
        proved = {t["id"] for t in stored if t["status"] == "proved"}
        store.update_run(run_id, status="running", finished=None)
        info(f"resuming run {run_id}: {len(proved)} of {len(items)} targets already proved")
    info(f"run {run_id}: {len(items)} target(s), k={options.k}, model {ref.display} via {ep.url}")
    from proverctl.cli.lean import sandbox_mode

    sandbox = sandbox_mode(settings) if dojo is None else "none"
    size = max(1, min(settings.workers or default_workers(settings.repl_memory_mb), len(items) * options.k))
    progress = _Progress(items, options.k, store) if stderr_is_tty() and fmt != "quiet" else None
    interrupted = False

    async def main():
        from proverctl.pipeline import Pipeline

        loop = asyncio.get_running_loop()
        async with GenerationClient(ep.url, ep.model_id, api_key=ep.api_key, concurrency=options.max_inflight,
                                    timeout=settings.request_timeout) as client, \
                ReplPool(repl.command if repl else ["true"], cwd=repl.cwd if repl else None, workers=size,
                         memory_mb=settings.repl_memory_mb, max_uses=settings.repl_max_uses, gc=settings.repl_gc,
                         sandbox=sandbox) as pool:
            verifier = PoolVerifier(pool, policy, settings.check_timeout)
            if dojo is not None:
                from proverctl.dojo import DojoVerifier

                verifier = DojoVerifier(dojo, policy, settings.check_timeout)
            ray_verifier = None
            if options.verify_on:
                from proverctl.lean.ray_verify import RayVerifier, ReplSpec, parse_address

                ray_verifier = RayVerifier(parse_address(options.verify_on), size,
                                           ReplSpec(repl.command, str(repl.cwd) if repl.cwd else None, settings.repl_memory_mb,
                                                    settings.repl_max_uses, sandbox), policy, settings.check_timeout)
                await ray_verifier.start()
                verifier = ray_verifier
            pipeline = Pipeline(store, ClientGenerator(client), verifier, options, progress.event if progress else None)
            presses = 0

            def on_sigint() -> None:
                nonlocal presses, interrupted
                presses += 1
                interrupted = True
                if presses > 1:
                    os._exit(int(ExitCode.INTERRUPTED))  # every committed attempt is already safe on disk
                sys.stderr.write("\ninterrupted: stopping (Ctrl-C again to quit at once)\n")
                pipeline.stop()

            loop.add_signal_handler(signal.SIGINT, on_sigint)
            loop.add_signal_handler(signal.SIGTERM, on_sigint)
            try:
                if plan is not None:
                    from proverctl.prove import run_decomposition

                    return await run_decomposition(store, run_id, items, client, pool, options, policy, settings, plan,
                                                   on_event=progress.event if progress else None)
                return await pipeline.run(items, already_proved=proved)
            finally:
                loop.remove_signal_handler(signal.SIGINT)
                loop.remove_signal_handler(signal.SIGTERM)
                if ray_verifier is not None:
                    await ray_verifier.close()

    try:
        if progress:
            progress.start()
        asyncio.run(main())
    except ReplStartError as exc:
        store.finish_run(run_id, "failed")
        from proverctl.errors import EnvironmentMissing

        raise EnvironmentMissing(str(exc), hint="fix --repl-command / PROVERCTL_REPL_COMMAND, or run `proverctl lean setup`") from None
    except BaseException:
        try:
            store.finish_run(run_id, "failed")
        except Exception:  # the store itself may be what failed (disk full, locked)
            pass
        raise
    finally:
        if progress:
            progress.stop()
    rows = report_rows(store, run_id)
    store.finish_run(run_id, "interrupted" if interrupted else "finished")
    written = [] if interrupted else write_back(inputs, rows, in_place=in_place, output=output)
    for path in written:
        info(f"wrote {path}")
    _report(rows, fmt, inputs)
    if interrupted:
        info(f"run {run_id} interrupted; continue with `proverctl prove --resume {run_id}`")
        return int(ExitCode.INTERRUPTED)
    statuses = [r["status"] for r in rows]
    if all(s == "proved" for s in statuses):
        return 0
    if _only_errors(store, run_id):
        warn(f"every check failed in the verifier itself, nothing was judged (see `proverctl show {run_id}`)")
        return int(ExitCode.VERIFIER)
    return int(ExitCode.NOT_PROVED)


def _only_errors(store, run_id: int) -> bool:
    """True when the run has attempts and every one failed in the verifier (nothing was judged)."""
    verdicts = {r[0] for r in store.db.execute(
        "SELECT DISTINCT a.verdict FROM attempts a JOIN targets t ON t.id = a.target_id WHERE t.run_id = ?", (run_id,))}
    return verdicts == {"error"}


def _report(rows: list[dict], fmt: str, inputs) -> None:
    from proverctl.prove import completed_text

    if fmt == "lean":
        text = inputs[0].text if inputs else None
        if text is not None:
            proofs = {r["name"]: r["proof"] for r in rows if r["status"] == "proved" and r["proof"]}
            sys.stdout.write(completed_text(text, proofs))
        return

    def human(console):
        from rich.table import Table

        table = Table("target", "status", "attempts", "s", "file")
        colors = {"proved": "green", "not-proved": "red", "interrupted": "yellow", "pending": "yellow"}
        for r in rows:
            table.add_row(r["name"], f"[{colors.get(r['status'], 'white')}]{r['status']}[/]", str(r["attempts"]),
                          f"{r['seconds']:.1f}", f"{r['file']}:{r['line']}")
        console.print(table)
        proved = sum(1 for r in rows if r["status"] == "proved")
        console.print(f"{proved}/{len(rows)} proved (run {rows[0]['run'] if rows else '-'})", highlight=False)

    emit(rows, fmt, human)


class _Progress:
    """Rich progress on stderr: one bar per target (up to 12) and an overall bar with ETA."""

    def __init__(self, items, k: int, store) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from proverctl.cli._output import stderr

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                                 TimeRemainingColumn(), console=stderr(), transient=False)
        self.overall = self.progress.add_task("all targets", total=len(items) * k, note="")
        self.tasks = {}
        self.proved = 0
        for target_id, target in items[:12]:
            done = len({s for s, _ in store.done_samples(target_id)})
            self.tasks[target_id] = self.progress.add_task(target.display_name[:40], total=k, completed=done, note="")
            self.progress.advance(self.overall, done)

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def event(self, event) -> None:
        if event.kind == "attempt" and event.round == 0:
            self.progress.advance(self.overall)
            if event.target_id in self.tasks:
                self.progress.advance(self.tasks[event.target_id])
        elif event.kind == "proved":
            self.proved += 1
            if event.target_id in self.tasks:
                self.progress.update(self.tasks[event.target_id], note="[green]proved[/]")
            self.progress.update(self.overall, note=f"{self.proved} proved")


def register(app: typer.Typer) -> None:
    app.command("prove")(prove_command)
