"""`proverctl bench`: prove a shipped benchmark split and report pass@k beside the published figure."""

from __future__ import annotations

import json
from typing import Optional

import typer

from proverctl.cli import completion as complete
from proverctl.cli._output import FormatOption, emit, info, resolve_format
from proverctl.errors import UsageError


def bench_command(
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
    format: FormatOption = None,
) -> None:
    """Run a benchmark split as a recorded run and print pass@k next to the published figure for the model
    (DeepSeek-Prover-V2 paper, Table 1) and the Lean profile it was scored on.

    Examples: proverctl bench minif2f --k 32 ; proverctl bench putnam --limit 20 --k 8 --format json
    """
    from proverctl.benchmarks import load_rows, pass_at_k, published, published_figures
    from proverctl.cli.run_view import ProgressView
    from proverctl.paths import Paths
    from proverctl.proving import ProveJob, ProveRequest
    from proverctl.store.db import Store

    fmt = resolve_format(format, allow_jsonl=False)
    bench, rows = load_rows(name, split, limit)
    n_samples = samples or k
    if n_samples < k:
        raise UsageError(f"--samples {n_samples} is fewer than k={k}", hint="draw at least k samples per problem")
    paths = Paths.resolve()
    chosen_split = split or ("test" if "test" in bench.splits else bench.splits[0])
    input_file = paths.cache_dir / "bench" / f"{bench.name}-{chosen_split}{f'-first{limit}' if limit else ''}.jsonl"
    input_file.parent.mkdir(parents=True, exist_ok=True)
    input_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    info(f"{bench.description}: {len(rows)} problems ({chosen_split}), {n_samples} samples each, pass@{k}")
    request = ProveRequest(input=str(input_file), model=model, k=n_samples, mode=mode, max_tokens=max_tokens, timeout=timeout,
                           workers=workers, all_samples=n_samples > k, format="quiet", endpoint=endpoint, served_model=served_model,
                           judge=judge)
    job = ProveJob(request, kind="bench")
    total = len(load_rows(name, split, None)[1])
    subset = f"first {len(rows)} of {total} problems" if len(rows) < total else None
    view = ProgressView(fmt, job, subset=subset)
    try:
        result = job.run(view.event, handle_signals=True)
    finally:
        view.stop()
    if result.exit_code not in (0, 1):
        raise typer.Exit(result.exit_code)
    run_id = result.run_id
    with Store(paths.store_db) as store:
        counts = store.sample_counts(run_id)
        usage = store.usage_per_target(run_id)
        kernel = sum(1 for r in result.rows if r.get("checked") == "kernel-checked")
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
    }
    emit(data, fmt, lambda c: c.print(
        f"{bench.name} {chosen_split}: pass@{k} = {score:.1f}% ({solved}/{len(counts)} solved, {n_samples} samples each)"
        + (f"; published {reference:.1f}% over all {total} problems" + (f" (this is the {subset}: not comparable)" if subset else "")
           if reference is not None else
           ("; published " + ", ".join(f"pass@{o['k']} = {o['pass_at_k']:.1f}%" for o in others)
            + f" (another k than this run's {k}: not comparable)" if others else "; no published figure for this model"))
        + f"; Lean profile {data['lean_profile']}; {kernel}/{solved} solved problems kernel-checked ({data['judge']}); "
        + f"{data['tokens_per_problem']:.0f} tokens and {data['lean_calls_per_problem']:.1f} Lean calls per problem; run {run_id}",
        highlight=False))


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
