"""`proverctl bench`: prove a shipped benchmark split and report pass@k beside the published figure."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer

from proverctl.cli import completion as complete
from proverctl.cli._output import FormatOption, emit, info, resolve_format
from proverctl.errors import UsageError


def _bench(
    name: str = typer.Argument(..., metavar="BENCHMARK", autocompletion=complete.benchmarks, help="minif2f, minif2f-revised, proofnet, putnam or mobench."),
    split: Optional[str] = typer.Option(None, "--split", autocompletion=complete.values("valid", "test", "all"), help="valid, test (or all for putnam) [default: test]."),
    k: int = typer.Option(32, "--k", min=1, help="Report pass@k."),
    samples: Optional[int] = typer.Option(None, "--samples", min=1, help="Samples per problem (default k; more gives the unbiased estimate)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N problems."),
    model: Optional[str] = typer.Option(None, "--model", "-m", autocompletion=complete.models, help="Alias, repo or directory [env: PROVERCTL_MODEL]."),
    mode: str = typer.Option("cot", "--mode", autocompletion=complete.modes, help="cot or non-cot."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="New tokens per sample."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="Any OpenAI-compatible server."),
    served_model: Optional[str] = typer.Option(None, "--served-model", help="Model id at --endpoint."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Lean REPL workers."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.1, help="Seconds per Lean check."),
    judge: Optional[str] = typer.Option(None, "--judge", autocompletion=complete.setting("judge"), help="kernel, auto or repl [env: PROVERCTL_JUDGE]."),
    replay: Optional[Path] = typer.Option(None, "--replay", metavar="PUBLISHED", help="No model: re-judge a published set of proofs (a folder or .zip of NAME.lean files, or a .jsonl of name + proof) with today's pre-filter and judge."),
    format: FormatOption = None,
    knobs: dict | None = None,
) -> None:
    from proverctl.benchmarks import load_rows, pass_at_k, published, published_figures
    from proverctl.paths import Paths
    from proverctl.proving import ProveJob, ProveRequest
    from proverctl.store.db import Store

    fmt = resolve_format(format, allow_jsonl=False)
    bench, rows = load_rows(name, split, limit)
    if replay is not None:
        if endpoint or samples or (knobs or {}).get("decompose"):
            raise UsageError("--replay re-judges published proofs: no model, one proof per problem",
                             hint="leave out --endpoint, --samples and --decompose")
        return _replay(bench, rows, split, limit, replay, model=model, workers=workers, timeout=timeout, judge=judge, fmt=fmt)
    n_samples = samples or k
    if n_samples < k:
        raise UsageError(f"--samples {n_samples} is fewer than k={k}", hint="draw at least k samples per problem")
    paths = Paths.resolve()
    chosen_split, input_file = _bench_input(bench, rows, split, limit)
    info(f"{bench.description}: {len(rows)} problems ({chosen_split}), {n_samples} samples each, pass@{k}")
    request = ProveRequest(input=str(input_file), model=model, k=n_samples, mode=mode, max_tokens=max_tokens, timeout=timeout,
                           workers=workers, all_samples=n_samples > k, format="quiet", endpoint=endpoint, served_model=served_model,
                           judge=judge, **(knobs or {}))
    decompose = request.decompose
    job = ProveJob(request, kind="bench")
    total = len(load_rows(name, split, None)[1])
    subset = f"first {len(rows)} of {total} problems" if len(rows) < total else None
    result = _run_job(job, fmt, subset)
    run_id = result.run_id
    with Store(paths.store_db) as store:
        counts = store.sample_counts(run_id)
        usage = store.usage_per_target(run_id)
        kernel = sum(1 for r in result.rows if r.get("checked") == "kernel-checked")
        decomposition = decomposition_report(store, run_id, result.rows) if decompose is not None else None
    plan = result.plan
    scores = [pass_at_k(n, c, k) for _, n, c in counts]
    solved = sum(1 for _, _, c in counts if c)
    score = 100.0 * sum(scores) / len(scores) if scores else 0.0
    figures = published_figures(plan.model.alias, bench.name, chosen_split, mode)
    others = [{"k": other, "pass_at_k": value} for other, value in sorted(figures.items()) if other != k]
    reference = published(plan.model.alias, bench.name, chosen_split, mode, k)
    data = {
        "benchmark": bench.name, "split": chosen_split, "model": plan.model.label, "mode": mode, "k": k, "samples": n_samples,
        "problems": len(counts), "solved": solved, "pass_at_k": round(score, 2), "published": reference,
        "published_other_k": others,  # the model's figures at another k: shown beside the run, never comparable
        "lean_profile": plan.verifier.lean_profile, "run": run_id, "kernel_checked": kernel,
        "subset": subset,  # a --limit run: not comparable with the published figure (which is over all problems)
        "judge": plan.verifier.describe()["judge"],
        # What each problem cost: generated tokens, and Lean calls made while thinking (multi-turn families)
        "tokens_per_problem": round(sum(u[1] for u in usage) / len(usage), 1) if usage else 0.0,
        "lean_calls_per_problem": round(sum(u[2] for u in usage) / len(usage), 2) if usage else 0.0,
        "decomposition": decomposition,
        "cache_hits": result.cache_hits,  # problems answered from the proof cache (each judged again)
    }

    def human(console) -> None:
        console.print(
            f"{bench.name} {chosen_split}: pass@{k} = {score:.1f}% ({solved}/{len(counts)} solved, {n_samples} samples each)"
            + (f"; published {reference:.1f}% over all {total} problems" + (f" (this is the {subset}: not comparable)" if subset else "")
               if reference is not None else
               ("; published " + ", ".join(f"pass@{o['k']} = {o['pass_at_k']:.1f}%" for o in others)
                + f" (another k than this run's {k}: not comparable)" if others else "; no published figure for this model"))
            + f"; Lean profile {data['lean_profile']}; {kernel}/{solved} solved problems kernel-checked ({data['judge']}); "
            + f"{data['tokens_per_problem']:.0f} tokens and {data['lean_calls_per_problem']:.1f} Lean calls per problem; run {run_id}"
            + (f"; {result.cache_hits} answered from the proof cache (--no-cache samples them)" if result.cache_hits else ""),
            highlight=False)
        if decomposition is not None:
            console.print(decomposition_line(decomposition), highlight=False)

    emit(data, fmt, human)


def _run_job(job, fmt: str, subset: str | None = None):
    """The benchmark's job with its progress view; a run that failed (not just unproved) exits with its code."""
    from proverctl.cli.run_view import ProgressView

    view = ProgressView(fmt, job, subset=subset)
    try:
        result = job.run(view.event, handle_signals=True)
    finally:
        view.stop()
    if result.exit_code not in (0, 1):
        raise typer.Exit(result.exit_code)
    return result


def _bench_input(bench, rows: list[dict], split: str | None, limit: int | None) -> tuple[str, "Path"]:
    """The split's chosen name and the rows written where the run's input lives (a recorded run names a file)."""
    from proverctl.paths import Paths

    chosen_split = split or ("test" if "test" in bench.splits else bench.splits[0])
    input_file = Paths.resolve().cache_dir / "bench" / f"{bench.name}-{chosen_split}{f'-first{limit}' if limit else ''}.jsonl"
    input_file.parent.mkdir(parents=True, exist_ok=True)
    input_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return chosen_split, input_file


def _replay(bench, rows: list[dict], split: str | None, limit: int | None, published_path: Path, *, model, workers, timeout, judge,
            fmt: str) -> None:
    """`bench NAME --replay PUBLISHED`: each problem's published proof as its one sample, judged today."""
    from proverctl.benchmarks import published_figures
    from proverctl.paths import Paths
    from proverctl.proving import ProveJob, ProveRequest
    from proverctl.proving.replay import ReplayGenerator, read_published
    from proverctl.store.db import Store

    proofs = read_published(published_path)
    names = {r.get("name") for r in rows}
    found = sorted(n for n in names if n in proofs)
    if not found:
        raise UsageError(f"{published_path}: none of its {len(proofs)} proofs is named after a problem of {bench.name}",
                         hint=f"its names look like {', '.join(sorted(proofs)[:3])}; choose the benchmark they solve")
    chosen_split, input_file = _bench_input(bench, rows, split, limit)
    info(f"{bench.description}: {len(rows)} problems ({chosen_split}); replaying {len(found)} published proof(s) from {published_path}")
    request = ProveRequest(input=str(input_file), model=model, k=1, timeout=timeout, workers=workers, format="quiet", judge=judge,
                           no_cache=True)  # the published proofs themselves are what is judged
    result = _run_job(ProveJob(request, kind="bench", generator=ReplayGenerator(proofs),
                               command=f"proverctl bench {bench.name} --replay {published_path}"), fmt)
    refusals: dict[str, list[str]] = {}
    with Store(Paths.resolve().store_db) as store:
        for target in store.targets(result.run_id):
            if target.get("parent_id") is not None or target["name"] not in proofs or target["status"] == "proved":
                continue
            attempts = store.attempts(target["id"], limit=1)
            why = (attempts[0]["reasons"] or [attempts[0]["verdict"]])[0] if attempts else "not checked"
            refusals.setdefault(_reason_kind(why), []).append(target["name"])
    accepted = sum(1 for r in result.rows if r["status"] == "proved")
    kernel = sum(1 for r in result.rows if r.get("checked") == "kernel-checked")
    plan = result.plan
    figures = published_figures(plan.model.alias, bench.name, chosen_split, "cot") if model else {}
    data = {"benchmark": bench.name, "split": chosen_split, "replay": str(published_path), "problems": len(rows),
            "published_proofs": len(proofs), "found": len(found), "missing": len(rows) - len(found), "accepted": accepted,
            "kernel_checked": kernel, "refused": len(found) - accepted,
            "refusals": [{"reason": k, "count": len(v), "problems": v} for k, v in sorted(refusals.items(), key=lambda kv: -len(kv[1]))],
            "pass_rate": round(100.0 * accepted / len(rows), 2) if rows else 0.0,
            "published": [{"k": k, "pass_at_k": v} for k, v in sorted(figures.items())],
            "model": plan.model.label if model else None, "judge": plan.verifier.describe()["judge"],
            "lean_profile": plan.verifier.lean_profile, "run": result.run_id}

    def human(console) -> None:
        from rich.table import Table

        console.print(f"{bench.name} {chosen_split}, replayed from {published_path}: {accepted}/{len(rows)} accepted "
                      f"({data['pass_rate']:.1f}%), {kernel} kernel-checked ({data['judge']}), Lean profile {data['lean_profile']}; "
                      f"run {result.run_id}", highlight=False, markup=False)
        table = Table("", "problems")
        table.add_row("problems in the split", str(len(rows)))
        table.add_row("published proofs found", str(len(found)))
        table.add_row("accepted today", str(accepted))
        table.add_row("refused", str(data["refused"]))
        table.add_row("without a published proof", str(data["missing"]))
        for figure in data["published"]:
            table.add_row(f"published pass@{figure['k']} ({data['model']})", f"{figure['pass_at_k']:.1f}%")
        console.print(table)
        for r in data["refusals"]:
            shown = ", ".join(r["problems"][:5]) + (f" (+{r['count'] - 5})" if r["count"] > 5 else "")
            console.print(f"refused {r['count']}: {r['reason']}: {shown}", highlight=False, markup=False)

    emit(data, fmt, human)


def _reason_kind(reason: str) -> str:
    """A refusal's kind, for counting: the reason without what is particular to one problem."""
    first = reason.splitlines()[0] if reason else "refused"
    first = re.sub(r"line \d+(:\d+)?", "line N", first)
    first = re.sub(r"`[^`]*`|'[^']*'", "…", first) if len(first) > 90 else first
    return first[:120]


def decomposition_report(store, run_id: int, rows: list[dict]) -> dict:
    """What `--decompose` did and cost, per problem: solved by any proof (a composed one counts; pass@k
    above counts only whole-proof samples), sketches tried and repaired, holes proved, reused and false,
    tokens and Lean calls of the whole tree (holes, negations, sketches, composed checks)."""
    run = store.run(run_id)
    stats = json.loads(run["settings"] or "{}").get("decomposition") or {}
    tokens, checks = store.run_usage(run_id)
    problems = max(1, len(rows))
    composed = store.proved_by_kind(run_id, "composed")
    return {"solved": sum(1 for r in rows if r["status"] == "proved"), "solved_by_composition": composed,
            "sketches": stats.get("sketches", 0), "repaired": stats.get("repaired", 0), "masked": stats.get("masked", 0),
            "holes": stats.get("holes", 0), "holes_proved": stats.get("holes_proved", 0), "holes_reused": stats.get("holes_reused", 0),
            "holes_false": stats.get("holes_false", 0),
            "tokens_per_problem": round(tokens / problems, 1), "lean_calls_per_problem": round((checks + stats.get("lean_calls", 0)) / problems, 2)}


def decomposition_line(d: dict) -> str:
    return (f"with decomposition: {d['solved']} solved ({d['solved_by_composition']} by a composed proof); {d['sketches']} sketches "
            f"({d['repaired']} repaired), {d['holes']} holes: {d['holes_proved']} proved, {d['holes_reused']} reused, "
            f"{d['holes_false']} false; {d['tokens_per_problem']:.0f} tokens and {d['lean_calls_per_problem']:.1f} Lean calls per "
            "problem, the whole tree counted")


# The run knobs bench takes from the knob table (proverctl.proving.request), beside its own options.
_KNOBS = ("concurrency", "decompose", "decompose.planner", "decompose.planner_model", "decompose.planner_family", "decompose.depth",
          "decompose.sketches", "decompose.sketch_rounds", "decompose.mask_errors", "decompose.hole_k", "decompose.refute_k")


def bench_command(**options) -> None:
    """Run a benchmark split as a recorded run and print pass@k next to the published figure for the model
    (DeepSeek-Prover-V2 paper, Table 1) and the Lean profile it was scored on. With --decompose, also what
    the decomposition did and cost per problem.

    Examples: proverctl bench minif2f --k 32 ; proverctl bench putnam --limit 20 --k 8 --format json ;
    proverctl bench minif2f --limit 20 --k 8 --decompose --planner http://localhost:8001/v1
    """
    from proverctl.cli.knobs import python_name, request_values
    from proverctl.proving.request import KNOBS

    names = {python_name(k) for k in KNOBS if k.name in _KNOBS}
    knobs = request_values({n: options.pop(n) for n in list(options) if n in names})
    _bench(**options, knobs=knobs)


def _bench_signature() -> None:
    import inspect

    from proverctl.cli.knobs import with_knobs

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.name != "name" else p
              for p in inspect.signature(_bench).parameters.values() if p.name != "knobs"]
    with_knobs(bench_command, params[:-1], names=_KNOBS, trailing=params[-1:])


_bench_signature()


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
