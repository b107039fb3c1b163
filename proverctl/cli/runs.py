"""`proverctl runs`, `proverctl show`, `proverctl export`: reading the attempt store."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer

from proverctl.cli import completion as complete
from proverctl.cli._output import SCHEMA, FormatOption, columns, emit, info, resolve_format
from proverctl.errors import UsageError


runs_app = typer.Typer()


@runs_app.callback(invoke_without_command=True)
def runs_command(ctx: typer.Context, limit: int = typer.Option(50, "--limit", min=1, help="How many runs, newest first."),
                 format: FormatOption = None) -> None:
    """List runs, newest first: id, started, model, input, proved/targets, status. `runs diff A B`
    compares two runs target by target.

    Examples: proverctl runs --limit 10 ; proverctl runs diff 3 5
    """
    if ctx.invoked_subcommand is not None:
        return
    from proverctl.paths import Paths

    kernel: dict[int, int] = {}
    if not Paths.resolve().store_db.exists():
        rows = []  # nothing recorded yet is an empty list, not an error
    else:
        from proverctl.store.db import recorded_store

        with recorded_store() as store:
            rows = store.runs(limit)
            from proverctl.lean.verdict import KERNEL_CHECKED, checked_label

            for run_id, judge, sandbox in store.proof_judges([r["id"] for r in rows]):
                kernel[run_id] = kernel.get(run_id, 0) + (checked_label("proved", judge, sandbox) == KERNEL_CHECKED)
    for row in rows:
        row.pop("settings", None)
        row.pop("request", None)  # `show RUN` has it whole
        row["n_kernel_checked"] = kernel.get(row["id"], 0)

    def human(console):
        from rich.table import Table

        from proverctl.store.db import local_time

        table = Table(*columns("run", "started", "kind", "model", "input", "proved", "kernel / REPL", "status", keep=("model", "input")))
        for r in rows:
            table.add_row(str(r["id"]), local_time(r["started"]), r["kind"], str(r["model"] or "-"), r["input"],
                          f"{r['n_proved']}/{r['n_targets']}", f"{r['n_kernel_checked']} / {r['n_proved'] - r['n_kernel_checked']}",
                          r["status"])
        console.print(table)

    emit(rows, resolve_format(format), human)


SECTIONS = ("code", "messages", "raw", "prompt", "turns", "tree")


def show_command(
    ref: str = typer.Argument(..., metavar="REF", autocompletion=complete.references, help="RUN, RUN/TARGET, RUN/TARGET/SAMPLE[.ROUND], or aATTEMPT_ID."),
    section: Optional[str] = typer.Option(None, "--section", autocompletion=complete.values(*SECTIONS), help="Of an attempt, only this: code, messages, raw, prompt or turns (a multi-turn sample's conversation); of a target, tree (its decomposition)."),
    format: FormatOption = None,
) -> None:
    """Show a run (its targets), a target (its attempts) or an attempt (prompt, raw output, code, verdict,
    Lean messages, tokens, timings). `--section code` prints just the checked code (for pipes). On a
    terminal, output taller than it goes through $PAGER (default less; PAGER=cat turns it off).

    Examples: proverctl show 3 ; proverctl show 3/mathd_algebra_10 ; proverctl show 3/mathd_algebra_10/5 ; proverctl show a42
    """
    from proverctl.proving.records import parse_reference, read_reference
    from proverctl.store.db import recorded_store

    kind, key = parse_reference(ref)
    fmt = resolve_format(format, allow_jsonl=False)
    if section is not None and section not in SECTIONS:
        raise UsageError(f"unknown section {section!r}", hint=f"choose one of {', '.join(SECTIONS)}")
    if section == "tree" and kind != "target":
        raise UsageError("--section tree shows a target's decomposition", hint="name a target: RUN/TARGET")
    if section not in (None, "tree") and kind not in ("attempt", "sample"):
        raise UsageError("--section shows part of one attempt", hint="name an attempt: aID or RUN/TARGET/SAMPLE")
    if section is not None and format is None:
        from proverctl.settings import Settings

        fmt = "human" if Settings.load().format == "auto" else fmt  # the text itself, piped or not
    with recorded_store() as store:
        data = read_reference(store, kind, key)
    if kind in ("attempt", "sample"):
        if section is not None:
            return _print_section(data, section, fmt)
        return emit(data, fmt, lambda c: _print_attempt(c, data), paged=True)
    if section == "tree":
        return emit(data["tree"], fmt, lambda c: _print_tree(c, data), paged=True)
    printer = _print_run if kind == "run" else _print_target
    emit(data, fmt, lambda c: printer(c, data), paged=True)


def _print_section(attempt: dict, section: str, fmt: str) -> None:
    """One part of an attempt, as it is: the text for people and pipes, the value for --format json."""
    value = {"code": attempt["code"], "messages": attempt["messages"], "raw": attempt["raw_output"], "prompt": attempt["prompt"],
             "turns": attempt.get("turns")}[section]
    if fmt == "quiet":
        return
    if fmt == "json":
        sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
        return
    if section == "messages":
        text = "".join(f"{m['severity']} {m['line']}:{m['column']}: {m['data']}\n" for m in value)
    elif section == "turns":
        from proverctl.inference.interactive import render_turns

        text = render_turns(value) or "(a single-turn sample: no conversation)"
    elif section == "prompt":
        prompt = value or {}
        text = prompt.get("text") or "".join(f"[{m['role']}]\n{m['content']}\n" for m in prompt.get("messages") or [])
    else:
        text = value or ""
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


PLAIN_TABLE_ROWS = 500


def _print_run(console, data: dict) -> None:
    from rich.table import Table

    from proverctl.store.db import local_time

    engine = (f"model {data['model']}  engine {data['engine']}{' ' + data['engine_version'] if data.get('engine_version') else ''}  "
              if data["kind"] != "check" else "")
    console.print(f"run {data['id']} ({data['kind']}, {data['status']}): {data['input']}  {engine}"
                  f"Lean {data['lean_profile']}  started {local_time(data['started'])}", highlight=False)
    if data.get("served_model"):
        console.print(f"served model id: {data['served_model']}", highlight=False)
    if data.get("endpoints"):
        console.print("endpoints: " + "; ".join(f"{e['endpoint']} {e['attempts']} sample(s), {e['tokens']} tokens" for e in data["endpoints"]),
                      highlight=False, markup=False)
    if data.get("request"):
        from proverctl.proving.records import recorded_request
        from proverctl.proving.request import shown

        pairs = shown(recorded_request(data["kind"], json.dumps(data["request"])))
        if pairs:
            console.print("request: " + "; ".join(f"{label} {value}" for label, value in pairs), highlight=False, markup=False)
    columns = ("#", "target", "status", "checked", "attempts", "s", "line")
    rows = [(str(t["ordinal"]), ("  ↳ " if t.get("parent_id") else "") + str(t["name"] or "(example)"), t["status"],
             t.get("checked") or "", str(t["n_attempts"]), f"{t['seconds']:.1f}", str(t["line"])) for t in data["targets"]]
    if len(rows) > PLAIN_TABLE_ROWS:
        # A big run: aligned plain columns (rich's table layout costs ~0.3 ms a row).
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
        console.file.write("\n".join(lines) + "\n")
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _print_target(console, data: dict) -> None:
    from rich.table import Table

    checked = f", {data['checked']}" if data.get("checked") else ""
    console.print(f"{data['name']} ({data['status']}{checked}) in {data['file']}:{data['line']}", highlight=False)
    console.print(data["statement"], highlight=False, markup=False)
    table = Table("attempt", "sample", "round", "verdict", "checked", "first reason", "tokens", "gen s", "check s")
    for a in data["attempts"]:
        first = a["reasons"][0] if a["reasons"] else ""
        table.add_row(f"a{a['id']}", str(a["sample"]), str(a["round"]), a["verdict"], a.get("checked") or "", first[:80],
                      str(a["completion_tokens"] or "-"),
                      f"{a['gen_seconds'] or 0:.1f}", f"{a['verify_seconds'] or 0:.2f}")
    console.print(table)
    if data.get("tree"):
        _print_tree(console, data)


def tree_lines(tree: list[dict], indent: str = "") -> list[str]:
    """A decomposition as indented text: each sketch (its round, status, why), each hole under it (its
    status, how its statement was obtained, the statement), and a hole's own decomposition under it."""
    lines = []
    for s in tree:
        round_ = f" round {s['round']}" if s["round"] else ""
        masked = ", masked" if s["masked"] else ""
        why = f": {s['reasons'][0]}" if s["reasons"] and s["status"] != "proved" else ""
        composed = f" (composed a{s['composed_attempt']})" if s.get("composed_attempt") else ""
        lines.append(f"{indent}sketch {s['sketch']}{round_} [a{s['attempt']}]: {s['status']}{masked}{composed}{why}")
        for h in s["holes"]:
            reason = f" ({h['reason']})" if h.get("reason") else ""
            source = f" from a{h['source_attempt']}" if h.get("source_attempt") else ""
            lines.append(f"{indent}  {h['name']}: {h['status']}{source}{reason}, {h['attempts']} attempt(s), statement by {h['method']}")
            lines.append(f"{indent}    {' '.join(h['statement'].split())}")
            lines.extend(tree_lines(h["tree"], indent + "    "))
    return lines


def _print_tree(console, data: dict) -> None:
    tree = data.get("tree") or []
    console.print(f"── decomposition of {data['name']}" if tree else f"{data['name']} was not decomposed", highlight=False, markup=False)
    for line in tree_lines(tree):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _print_attempt(console, a: dict) -> None:
    from rich.markup import escape
    from rich.syntax import Syntax

    from proverctl.lean.verdict import checked_label

    checked = checked_label(a["verdict"], a.get("judge"), a.get("sandbox"))
    judged = f" ({checked}{', ' + a['judge'] if checked == 'kernel-checked' else ''})" if checked else ""
    console.print(f"attempt a{a['id']}: sample {a['sample']} round {a['round']}: [bold]{a['verdict']}[/]{escape(judged)}  "
                  f"tokens {a['prompt_tokens']}+{a['completion_tokens']}  gen {a['gen_seconds']}s  check {a['verify_seconds']}s")
    for reason in a["reasons"]:
        console.print(f"  - {escape(reason)}")
    if a.get("turns"):
        from proverctl.inference.interactive import render_turns

        calls = sum(1 for t in a["turns"] if t.get("kind") in ("sketch", "tool_call", "error"))
        console.print(f"[bold]── conversation ({calls} Lean call{'s' if calls != 1 else ''})[/]")
        console.print(render_turns(a["turns"]), markup=False, highlight=False)
    console.print("[bold]── checked code[/]")
    code = a["code"] or "(no code extracted)"
    if console.is_terminal:
        # wrapped, never cut: the stdout console soft-wraps text, which would crop a Syntax at the width
        console.print(Syntax(code, "lean", line_numbers=True, word_wrap=True), soft_wrap=False)
    else:  # piped: the code as it is, numbered, without padding every line to the console's width
        console.file.write("".join(f"{n:4} {line}\n" for n, line in enumerate(code.splitlines(), 1)))
    if a["messages"]:
        console.print("[bold]── Lean messages[/]")
        for m in a["messages"]:
            console.print(f"{m['severity']} at {m['line']}:{m['column']}: {escape(m['data'])}")
    console.print("[bold]── raw model output[/]")
    console.print(a["raw_output"] or "", markup=False, highlight=False)


def export_command(
    runs: List[int] = typer.Argument(..., metavar="RUN...", autocompletion=complete.runs, help="Run ids."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write to this file (atomically) instead of stdout."),
    purpose: Optional[str] = typer.Option(None, "--for", autocompletion=complete.values("sft", "dpo", "grpo", "verl"),
                                          help="Training data instead of attempts: sft, dpo, grpo (JSON lines) or verl (parquet, needs -o)."),
    include_repl_checked: bool = typer.Option(False, "--include-repl-checked", help="With --for: REPL-checked proofs too (each row says how it was checked) [default: kernel-checked only]."),
    exclude_benchmark: List[str] = typer.Option([], "--exclude-benchmark", metavar="NAME[-SPLIT]", help="With --for: leave out every statement of this shipped benchmark split, e.g. minif2f-test (repeatable)."),
    format: FormatOption = None,
) -> None:
    """Every attempt of the runs, one JSON object per line (prompt, raw output, code, verdict, judge,
    messages, ...); or, with --for, training rows made from them (docs/json.md).

    JSON lines by default, to a terminal or a pipe; `--format json` writes one JSON array; `--format quiet`
    writes nothing (the exit code says whether the runs exist). Attempt lines are built by SQLite from the
    stored JSON, streamed. Training rows hold kernel-checked proofs only unless --include-repl-checked,
    deduplicated by (statement, proof).

    Examples: proverctl export 3 > run3.jsonl ; proverctl export 3 -o run3.jsonl ;
    proverctl export 3 4 --for sft --exclude-benchmark minif2f-test -o sft.jsonl ; proverctl export 3 --for verl -o train.parquet
    """
    fmt = format.value if format is not None else "jsonl"
    from proverctl.store.db import recorded_store

    if purpose is None and (include_repl_checked or exclude_benchmark):
        raise UsageError("--include-repl-checked and --exclude-benchmark go with --for", hint="add --for sft|dpo|grpo|verl")
    if purpose == "verl" and output is None:
        raise UsageError("--for verl writes parquet, which goes to a file", hint="add -o FILE.parquet")
    with recorded_store() as store:
        for run in runs:
            if store.run(run) is None:
                raise UsageError(f"no run {run}", hint="`proverctl runs` lists them")
        if purpose is not None:
            return _export_training(store, runs, purpose, output, fmt, include_repl_checked, exclude_benchmark)
        if fmt == "quiet":
            return
        if output is None:
            _write_export(store, runs, fmt, sys.stdout)
            return
        from proverctl.proving.outputs import atomic_file

        with atomic_file(output) as handle:  # an interrupted export leaves no half-written file
            _write_export(store, runs, fmt, handle)
    info(f"wrote {output}")


def _export_training(store, runs: list[int], purpose: str, output: Path | None, fmt: str, include_repl_checked: bool,
                     exclude_benchmark: list[str]) -> None:
    from proverctl.cli._progress import counting_progress
    from proverctl.proving.outputs import atomic_file
    from proverctl.proving.training import Counts, benchmark_statements, training_rows, write_parquet

    excluded: set[str] = set()
    for spec in exclude_benchmark:
        excluded |= benchmark_statements(spec)
    counts = Counts()
    total = sum(store.attempt_count(run) for run in runs)
    with counting_progress(f"export --for {purpose}", total) as advance:
        rows = training_rows(store, runs, purpose, include_repl_checked=include_repl_checked, exclude=excluded, counts=counts,
                             on_attempt=advance)
        if fmt == "quiet":
            for _ in rows:
                pass
        elif purpose == "verl":
            collected = list(rows)
            with atomic_file(output, binary=True) as handle:
                write_parquet(collected, handle)
        elif output is None:
            _write_rows(rows, fmt, sys.stdout)
        else:
            with atomic_file(output) as handle:
                _write_rows(rows, fmt, handle)
    left_out = [f"{counts.weaker} not kernel-checked (--include-repl-checked adds them)" if counts.weaker else "",
                f"{counts.duplicates} duplicate(s)" if counts.duplicates else "",
                f"{counts.excluded} of an excluded benchmark" if counts.excluded else ""]
    left = "; ".join(x for x in left_out if x)
    info(f"{counts.written} {purpose} row(s)" + (f" to {output}" if output else "") + (f"; left out: {left}" if left else ""))


def _write_rows(rows, fmt: str, handle) -> None:
    _write_lines((json.dumps(row, ensure_ascii=False) for row in rows), fmt, handle)


def _write_export(store, runs: list[int], fmt: str, handle) -> None:
    """The runs' attempts, one after the other (with --format json: one array for them all)."""
    _write_lines((line for run in runs for line in store.iter_attempt_lines(run, schema=SCHEMA)), fmt, handle)


def _write_lines(lines, fmt: str, handle) -> None:
    """JSON texts streamed as JSON lines, or (`json`) as one array."""
    write = handle.write
    if fmt == "json":
        write("[")
        for index, line in enumerate(lines):
            write(("\n" if not index else ",\n") + line)
        write("\n]\n")
        return
    for line in lines:
        write(line + "\n")


@runs_app.command("diff")
def diff_command(
    a: int = typer.Argument(..., metavar="A", autocompletion=complete.runs, help="A run id."),
    b: int = typer.Argument(..., metavar="B", autocompletion=complete.runs, help="Another run id."),
    all_targets: bool = typer.Option(False, "--all", help="Every target, not only those whose verdict, label, flags or one-sided names differ."),
    format: FormatOption = None,
) -> None:
    """Two runs side by side, per target: status and how it was checked on each side, axioms, the
    constants and tactics one side's proof uses that the other run's proofs never use, and flags
    (apply?, exact?, native_decide, decide := true, sorryAx, waived rules).

    Examples: proverctl runs diff 3 5 ; proverctl runs diff 3 5 --format json | jq '.targets[] | select(.only_a != [])'
    """
    from proverctl.proving.diff import diff_runs, differs
    from proverctl.store.db import recorded_store

    with recorded_store() as store:
        for run in (a, b):
            if store.run(run) is None:
                raise UsageError(f"no run {run}", hint="`proverctl runs` lists them")
        data = diff_runs(store, a, b)
    if not all_targets:
        data["targets"] = [t for t in data["targets"] if differs(t)]
    emit(data, resolve_format(format, allow_jsonl=False), lambda c: _print_diff(c, data))


def _print_diff(console, data: dict) -> None:
    from rich.table import Table

    for side in ("a", "b"):
        s = data[side]
        console.print(f"{side.upper()}: run {s['run']} ({s['kind']}, {s['model'] or '-'}) {s['input']}: {s['proved']}/{s['targets']} proved, "
                      f"{s['kernel_checked']} kernel-checked, {s['flagged']} proof(s) flagged", highlight=False, markup=False)
    console.print(f"proved only in A: {data['proved_only_a']}; proved only in B: {data['proved_only_b']}", highlight=False)
    if not data["targets"]:
        console.print("no target differs (--all lists them all)")
        return

    def cell(side: dict | None) -> str:
        if side is None:
            return "(absent)"
        return side["status"] + (f"\n{side['checked']}" if side.get("checked") else "")

    def names(values: list[str], side: dict | None) -> str:
        flags = (side or {}).get("flags") or []
        shown = ", ".join(values[:8]) + (f" (+{len(values) - 8})" if len(values) > 8 else "")
        return "\n".join(x for x in (shown, "⚑ " + "; ".join(flags) if flags else "") if x)

    table = Table(*columns("target", "A", "B", "only A uses / flags", "only B uses / flags", "change", keep=("target",)))
    for t in data["targets"]:
        table.add_row(t["target"], cell(t["a"]), cell(t["b"]), names(t["only_a"], t["a"]), names(t["only_b"], t["b"]), t["change"])
    console.print(table)


cache_app = typer.Typer(no_args_is_help=True, help="The proof cache: statements proved before are answered from the store, each "
                                                    "judged again (prove --no-cache samples them).")


def _cache_store():
    from proverctl.paths import Paths
    from proverctl.store.db import Store

    return Store(Paths.resolve().store_db)


@cache_app.command("stats")
def cache_stats_command(format: FormatOption = None) -> None:
    """Entries and hits per Lean profile (its toolchain and Mathlib) and judge.

    Example: proverctl cache stats
    """
    from proverctl.paths import Paths

    rows = []
    if Paths.resolve().store_db.exists():
        with _cache_store() as store:
            rows = store.cache_stats()

    def human(console) -> None:
        from rich.table import Table

        from proverctl.store.db import local_time

        if not rows:
            console.print("the proof cache is empty")
            return
        table = Table(*columns("Lean profile", "Lean", "judge", "entries", "hits", "newest", keep=("Lean",)))
        for r in rows:
            table.add_row(str(r["lean_profile"]), r["pins"], r["judge"], str(r["entries"]), str(r["hits"] or 0), local_time(r["newest"]))
        console.print(table)

    emit(rows, resolve_format(format, allow_jsonl=False), human)


@cache_app.command("prune")
def cache_prune_command(
    older_than: Optional[str] = typer.Option(None, "--older-than", metavar="AGE", help="Entries not used (nor made) for this long: 30d, 12h, 90m."),
    unused: bool = typer.Option(False, "--unused", help="Entries never hit."),
) -> None:
    """Remove entries: not used for a while, never used, or both (each condition narrows).

    Examples: proverctl cache prune --older-than 30d ; proverctl cache prune --unused
    """
    import time

    from proverctl.settings import duration_seconds

    if older_than is None and not unused:
        raise UsageError("say what to prune", hint="--older-than 30d, --unused, or both; `proverctl cache clear` removes everything")
    cutoff = None
    if older_than is not None:
        text = older_than.strip().lower()
        seconds = float(text[:-1]) * 86400 if re.fullmatch(r"\d+(\.\d+)?d", text) else duration_seconds(text)
        if seconds is None or seconds < 0:
            raise UsageError(f"--older-than {older_than!r} is not an age", hint="e.g. 30d, 12h, 90m")
        cutoff = time.time() - seconds
    with _cache_store() as store:
        removed = store.cache_prune(cutoff, unused)
    info(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'}")


@cache_app.command("clear")
def cache_clear_command() -> None:
    """Remove every entry (the attempts stay in the store).

    Example: proverctl cache clear
    """
    with _cache_store() as store:
        removed = store.cache_clear()
    info(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'}")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
    app.add_typer(cache_app, name="cache")
    app.command("show")(show_command)
    app.command("export")(export_command)
    app.command("tui")(tui_command)


def tui_command(
    run: int = typer.Option(None, "--run", autocompletion=complete.runs, help="Open this run directly."),
    db: str = typer.Option(None, "--db", metavar="FILE", help="Attempt store to open [default: the data dir's]."),
) -> None:
    """Browse runs, targets and attempts in a terminal UI; re-verify, copy proofs, export, open in $EDITOR.

    Keys: enter open · escape back · / search · 1-5 filter · r re-verify · c copy · n/p next/prev failed ·
    ctrl+p command palette · ? keys · q quit.

    Example: proverctl tui --run 3
    """
    from pathlib import Path

    from proverctl.tui.app import make_app

    make_app(Path(db) if db else None, run).run()

