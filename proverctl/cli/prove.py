"""`proverctl prove`: parse flags into a ProveRequest, run the ProveJob, render its result."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from proverctl.cli import completion as complete
from proverctl.cli._output import Format, columns, emit, resolve_format
from proverctl.cli.run_view import ProgressView


def prove_command(**options) -> None:
    """Prove every `sorry`: sample proofs from a prover model, check each with Lean, write back the proved ones.

    Uses a live session for the model (`proverctl serve`), or starts one for the run and stops it after.
    With --endpoint, the prompt family and Lean profile follow the model the server lists.
    Every attempt is recorded with the run's request (`proverctl runs`, `show`, `tui`); --resume RUN
    continues it with the same request (only where and how it runs may change).
    Exit 0: every target proved (or nothing to do); 1: some not proved (or, with --judge kernel, a proof
    that is not kernel-checked); 2: usage; 3: model, Lean, sandbox or endpoint missing; 4: verifier
    failure; 130: interrupted (what is proved is still written).

    Examples: proverctl prove Algebra.lean --in-place ; cat thm.lean | proverctl prove - --format lean ;
    proverctl prove A.lean --keep-alive 10m && proverctl prove B.lean   # B reuses the loaded model ;
    proverctl prove minif2f.jsonl --k 32 --format jsonl > results.jsonl ; proverctl prove src/ -o solved/
    """
    from proverctl.cli.knobs import request_values
    from proverctl.proving import ProveJob, ProveRequest

    input, resume, api_key = options.pop("input"), options.pop("resume"), options.pop("api_key")
    typed = request_values(options)
    if resume is not None:
        from proverctl.errors import UsageError

        if input is not None:
            raise UsageError("--resume RUN continues the run's own input; leave out INPUT", hint=f"proverctl prove --resume {resume}")
        job = ProveJob.resume(resume, typed, api_key=api_key)
    else:
        input_text = None
        if input == "-":
            from proverctl.inputs import read_text

            input_text, _ = read_text("-")
        job = ProveJob(ProveRequest(input=input, input_text=input_text, **typed), api_key=api_key)
    fmt = "lean" if job.request.format == "lean" else resolve_format(Format(job.request.format))
    view = ProgressView(fmt, job)
    try:
        result = job.run(view.event, handle_signals=True)
    finally:
        view.stop()
    _report(result, fmt)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _prove_signature() -> None:
    import inspect

    from proverctl.cli.knobs import with_knobs

    leading = [inspect.Parameter("input", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str], default=typer.Argument(
        None, metavar="PATH", help="A .lean file, a folder of them, - (stdin), or a dataset .jsonl (not with --resume)."))]
    trailing = [
        inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[int], default=typer.Option(
            None, "--resume", autocompletion=complete.runs, help="Continue run RUN with its recorded request: finished attempts are kept.")),
        inspect.Parameter("api_key", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str], default=typer.Option(
            None, "--api-key", help="Bearer token for --endpoint (never stored) [env: PROVERCTL_API_KEY].")),
    ]
    with_knobs(prove_command, leading, trailing=trailing)


_prove_signature()


def _report(result, fmt: str) -> None:
    from proverctl.proving.outputs import completed_text

    rows = result.rows
    if fmt == "lean":
        text = result.inputs[0].text if result.inputs else None
        if text is not None:
            sys.stdout.write(completed_text(text, result.proofs.get(result.inputs[0].label, {})))
        return
    if result.nothing_to_do:
        return

    def human(console):
        from rich.table import Table

        table = Table(*columns("target", "status", "checked by", "attempts", "s", "file", keep=("target", "file")))
        colors = {"proved": "green", "not-proved": "red", "interrupted": "yellow", "pending": "yellow"}
        for r in rows:
            checked = r.get("checked") or ""
            table.add_row(r["name"], f"[{colors.get(r['status'], 'white')}]{r['status']}[/]",
                          f"{checked} ({r['judge']})" if r.get("checked") == "kernel-checked" else checked, str(r["attempts"]),
                          f"{r['seconds']:.1f}", f"{r['file']}:{r['line']}")
        console.print(table)
        proved = sum(1 for r in rows if r["status"] == "proved")
        kernel = sum(1 for r in rows if r.get("checked") == "kernel-checked")
        console.print(f"{proved}/{len(rows)} proved ({kernel} kernel-checked, {proved - kernel} REPL-checked only; run {result.run_id})",
                      highlight=False)

    emit(rows, fmt, human)


def register(app: typer.Typer) -> None:
    app.command("prove")(prove_command)
