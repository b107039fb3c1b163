"""`proverctl targets`, `proverctl check`, `proverctl lean setup`, `proverctl doctor`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from proverctl.cli import completion as complete
from proverctl.cli._output import FormatOption, columns, emit, info, resolve_format, stderr_is_tty, warn
from proverctl.errors import ExitCode, UsageError

lean_app = typer.Typer(help="Lean workspaces: set up a pinned Lean + Mathlib + REPL.", no_args_is_help=True)

InputArg = typer.Argument(..., metavar="FILE", help="A .lean file, or - for standard input.")


def targets_command(file: str = InputArg, format: FormatOption = None) -> None:
    """List the theorems whose proof contains `sorry` (the targets `prove` would work on).

    Examples: proverctl targets Algebra.lean ; cat thm.lean | proverctl targets - --format json
    """
    from proverctl.inputs import load_text, read_text
    from proverctl.lean.source import Source

    text, label = read_text(file)
    load_text(text, label)  # a `sorry` proverctl cannot attribute to a target is an error, never "no targets"
    rows = [t.as_dict() for t in Source(text).targets]

    def human(console):
        from rich.table import Table

        if not rows:
            console.print(f"no targets in {label}: no declaration has `sorry` in its proof", highlight=False)
            return
        table = Table(*columns("name", "kind", "line", "statement", keep=("name",)))
        for r in rows:
            first = r["statement"].splitlines()[0] if r["statement"] else ""
            table.add_row(str(r["name"] or "(example)"), r["kind"], str(r["line"]), first)
        console.print(table)

    emit(rows, resolve_format(format), human)


ReplCommandOpt = typer.Option(None, "--repl-command", help="Command that starts one Lean REPL [env: PROVERCTL_REPL_COMMAND].")
LeanProjectOpt = typer.Option(None, "--lean-project", metavar="DIR", help="Lean project the REPL runs in [env: PROVERCTL_LEAN_PROJECT].")
ProfileOpt = typer.Option(None, "--profile", autocompletion=complete.profiles, help="Lean workspace profile: deepseek-v2, kimina, modern [env: PROVERCTL_LEAN_PROFILE].")
SandboxOpt = typer.Option(None, "--sandbox", autocompletion=complete.setting("sandbox"), help="Where Lean runs: auto, bwrap, landlock, sandbox-exec or none [env: PROVERCTL_SANDBOX].")


def check_command(**options) -> None:
    """Verify with Lean: every declaration of a .lean file or of every .lean file under a folder (a `sorry`
    means not proved), or every row of an OUTPUTS.jsonl of generations made elsewhere (`{name, header?,
    formal_statement, output, family?}`: the proof is extracted, spliced onto the original statement and
    checked). The REPL pre-filter rejects what is certainly wrong; the kernel judge (SafeVerify, built by
    `lean setup`) gives every `proved`. With --against CHALLENGE.lean, FILE must prove that file's sorried
    statements, compared as kernel terms. Every check is recorded as a run (`proverctl show RUN`).

    Exit 0 only when everything is proved; 1 when something is not; 3 when Lean (or, with --judge kernel,
    the judge) is missing; 4 when the REPL itself failed or the trust base fails its checks.

    Examples: proverctl check Solved.lean --format json ; proverctl check outputs.jsonl --extract-only ;
    proverctl check agent_output.lean --against Challenge.lean --judge kernel
    """
    from proverctl.cli.knobs import request_values
    from proverctl.inputs import read_text
    from proverctl.proving.check import CheckJob, check_request

    fmt = resolve_format(options.pop("format"))
    file, against, extract_only = options.pop("file"), options.pop("against"), options.pop("extract_only")
    text = label = None
    if file == "-":
        text, label = read_text("-")
    request = check_request(request_values(options), input=None if file == "-" else file, text=text, label=label, against=against,
                            extract_only=extract_only)
    job = CheckJob(request)
    prepared = job.prepare()
    if not extract_only and stderr_is_tty():
        info(f"checking {prepared.label} ...")
    result = job.run(warn)
    if extract_only:
        rows = result.rows
        emit(rows, fmt, lambda c: [c.print(f"-- {r['name']}: {r['reason'] or 'ok'}\n{r['code'] or ''}", highlight=False, markup=False)
                                   for r in rows])
        if result.exit_code:
            raise typer.Exit(result.exit_code)
        return
    if result.run_id is not None and stderr_is_tty():
        info(f"recorded as run {result.run_id} (`proverctl show {result.run_id}`)")
    rows = result.rows
    colors = {"proved": "green", "rejected": "red", "timeout": "yellow", "error": "magenta"}

    def human(console):
        from rich.markup import escape
        from rich.table import Table

        if result.summary is not None:  # a folder: one line per declaration, then the tally
            for r in rows:
                reason = f"  {escape(r['reasons'][0])}" if r["reasons"] else ""
                checked = f" ({r['checked']})" if r.get("checked") else ""
                console.print(f"{escape(r['file'])}:{r['line']}  {escape(r['name'])}  [{colors[r['status']]}]{r['status']}[/]{checked}{reason}",
                              highlight=False)
            console.print(result.summary, highlight=False)
            return
        table = Table(*columns("declaration", "line", "status", "checked by", "reasons", "s", keep=("declaration",)))
        for r in rows:
            table.add_row(r["name"], str(r["line"]), f"[{colors[r['status']]}]{r['status']}[/]", r.get("checked") or "",
                          "; ".join(r["reasons"]), f"{r['seconds']:.1f}")
        console.print(table)
        # Lean's messages as Lean prints them (FILE:LINE:COL, column 0-based): editors and CI annotate these.
        for line in lean_lines(prepared.label, rows):
            console.print(escape(line), highlight=False, soft_wrap=True)

    emit(rows, fmt, human)
    if result.summary is not None and fmt != "human":
        info(result.summary)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def lean_lines(label: str, rows: list[dict]) -> list[str]:
    """The errors, `sorry` warnings and goals of rows that are not proved, one `FILE:LINE:COL: severity: text`
    line each as `lean FILE` prints them (continuation lines indented)."""
    out = []
    for r in rows:
        if r["status"] == "proved":
            continue
        for m in r.get("messages") or []:
            if m["severity"] == "info" or m["line"] is None:
                continue
            first, *more = (m["data"].rstrip() or "(no text)").split("\n")
            out.append(f"{r.get('file') or label}:{m['line']}:{m['column']}: {m['severity']}: {first}")
            out.extend("  " + extra for extra in more[:20])
        for g in r.get("goals") or []:
            if g["line"] is not None:
                goal = g["goal"].replace("\n", "\n  ")
                out.append(f"{r.get('file') or label}:{g['line']}:{g['column']}: goal at sorry:\n  {goal}")
    return out


def _check_signature() -> None:
    import inspect

    from proverctl.cli.knobs import with_knobs
    from proverctl.proving.request import CHECK_KNOBS

    P = inspect.Parameter
    leading = [P("file", P.POSITIONAL_OR_KEYWORD, annotation=str, default=typer.Argument(
        ..., metavar="PATH", help="A .lean file, a folder of them (a Lake project), - for standard input, or OUTPUTS.jsonl of model outputs."))]
    trailing = [
        P("extract_only", P.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            False, "--extract-only", help="For a .jsonl: print the code that would be checked, run no Lean.")),
        P("against", P.KEYWORD_ONLY, annotation=Optional[str], default=typer.Option(
            None, "--against", metavar="FILE", help="A trusted challenge file: judge FILE's proofs of its sorried statements.")),
        P("format", P.KEYWORD_ONLY, annotation=FormatOption, default=None),
    ]
    with_knobs(check_command, leading, CHECK_KNOBS, trailing)


_check_signature()


@lean_app.command("setup")
def setup_command(
    profile: Optional[str] = typer.Option(None, "--profile", autocompletion=complete.profiles, help="deepseek-v2 (default), kimina or modern [env: PROVERCTL_LEAN_PROFILE]."),
    directory: Optional[Path] = typer.Option(None, "--dir", metavar="DIR", help="Where to make the workspace (default: the data dir)."),
    force: bool = typer.Option(False, "--force", help="Overwrite workspace files that differ from the template."),
    skip_cache: bool = typer.Option(False, "--skip-cache", help="Do not run `lake exe cache get` (build Mathlib yourself)."),
    format: FormatOption = None,
) -> None:
    """Make a pinned Lean + Mathlib + REPL workspace: copy the template, fetch Mathlib's cache, build the REPL.

    Idempotent: run it again to finish or repair a workspace. Needs elan, git and network access.

    Example: proverctl lean setup --profile deepseek-v2
    """
    from proverctl.lean.workspace import setup
    from proverctl.settings import Settings

    fmt = resolve_format(format, allow_jsonl=False)
    chosen = Settings.load({"lean_profile": profile}).lean_profile
    tty = stderr_is_tty()
    status = None
    if tty:
        from rich.console import Console

        status = Console(stderr=True).status("setting up")
        status.start()

    def on_step(step):
        if status is not None:
            status.update(f"{step.name}: {' '.join(step.command)}")
        else:
            info(f"{step.name}: {' '.join(step.command)}")

    def on_line(line: str):
        if status is not None and line.strip():
            status.update(line.strip()[:100])

    try:
        path, steps, log, notes = setup(chosen, directory, force=force, skip_cache=skip_cache, on_step=on_step, on_line=on_line)
    finally:
        if status is not None:
            status.stop()
    for note in notes:
        info(f"note: {note}")
    data: dict[str, Any] = {
        "profile": chosen,
        "path": str(path),
        "log": str(log),
        "steps": [{"name": s.name, "command": s.command, "status": s.status, "seconds": round(s.seconds, 1)} for s in steps],
    }
    emit(data, fmt, lambda c: c.print(f"workspace {chosen} ready at {path} (log: {log})", highlight=False))


@lean_app.command("trust")
def trust_command(
    profile: Optional[str] = ProfileOpt,
    lean_project: Optional[str] = LeanProjectOpt,
    repl_command: Optional[str] = ReplCommandOpt,
    judge_command: Optional[str] = typer.Option(None, "--judge-command", help="SafeVerify's command line, for a judge you built yourself [env: PROVERCTL_JUDGE_COMMAND]."),
    judge_lean_command: Optional[str] = typer.Option(None, "--judge-lean-command", help="The command that compiles one file for it [env: PROVERCTL_JUDGE_LEAN_COMMAND]."),
    dialect: Optional[str] = typer.Option(None, "--dialect", autocompletion=complete.values("v1", "v2"), help="How its output reads: v1 (SafeVerify's 4.9/4.15 branches) or v2 (main); needed for a revision proverctl does not pin."),
    format: FormatOption = None,
) -> None:
    """Record the REPL and kernel judge of a Lean project as they are now (sha256 of their files, the judge's
    SafeVerify revision and dialect) in proverctl's trust manifest. Verdicts count only from a judge the
    manifest records; `lean setup` records what it builds, this command a judge you built yourself. Run it
    only on a build you trust: from then on a changed file stops the judge until it is recorded again.

    Example: proverctl lean trust --lean-project ~/proj --dialect v2
    """
    from proverctl.lean import trust
    from proverctl.lean.workspace import resolve_repl
    from proverctl.settings import Settings

    if dialect is not None and dialect not in trust.DIALECTS:
        raise UsageError(f"unknown judge dialect {dialect!r}", hint="v1 (SafeVerify's 4.9/4.15 branches) or v2 (its main)")
    settings = Settings.load({"lean_profile": profile, "lean_project": lean_project, "repl_command": repl_command,
                              "judge_command": judge_command, "judge_lean_command": judge_lean_command})
    repl = resolve_repl(settings.repl_command, settings.lean_project, settings.lean_profile)
    manifest = trust.record_workspace_trust(settings.lean_profile, repl.cwd, repl_command=repl.command,
                                            judge_command=settings.judge_command, judge_lean_command=settings.judge_lean_command,
                                            dialect=dialect)
    data = json.loads(manifest.to_json())
    data["manifest"] = str(trust.manifest_path(repl.cwd))

    def human(console):
        judge = manifest.judge
        where = manifest.workspace or "(no project)"
        console.print(f"recorded {where}: judge {judge.label + ' (' + judge.dialect + ')' if judge else 'none (not built)'}", highlight=False)
        for path, digest in {**manifest.repl_files, **(judge.files if judge else {})}.items():
            console.print(f"  {digest[:16]}  {path}", highlight=False)

    emit(data, resolve_format(format, allow_jsonl=False), human)


@lean_app.command("selftest")
def selftest_command(
    profile: Optional[str] = ProfileOpt,
    lean_project: Optional[str] = LeanProjectOpt,
    repl_command: Optional[str] = ReplCommandOpt,
    sandbox: Optional[str] = SandboxOpt,
    format: FormatOption = None,
) -> None:
    """Prove the judge's trust base on this machine, with the real sandbox, pre-filter and judge of a
    profile: the sandbox canary, the trust manifest, Lean's own reader, the attack corpus (nothing may be
    proved), the must-accept set (everything kernel-checked) and a checked file that tries to write the
    workspace, judge and cache and to read your secrets. Run it once after `lean setup`; `doctor` shows the
    last result.

    Exit 0 when every class holds; 1 when anything falls short; 3 when Lean or a sandbox is missing.

    Example: proverctl lean selftest --profile deepseek-v2
    """
    from proverctl.settings import Settings
    from proverctl.verify.selftest import run

    fmt = resolve_format(format, allow_jsonl=False)
    settings = Settings.load({"lean_profile": profile, "lean_project": lean_project, "repl_command": repl_command, "sandbox": sandbox})

    def progress(result):
        if stderr_is_tty() or fmt != "human":
            info(f"{result.name}: {result.held}/{result.total}{'' if result.ok else ' FALLS SHORT'}")

    report = run(settings, settings.lean_profile, on_class=progress)

    def human(console):
        from rich.markup import escape
        from rich.table import Table

        table = Table(*columns("class", "held", "of", "", keep=("class",)))
        for c in report.classes:
            table.add_row(escape(c.name), str(c.held), str(c.total), "[green]ok[/]" if c.ok else "[red]FAILS[/]")
        console.print(table)
        for c in report.classes:
            for failure in c.failures[:5]:
                console.print(f"[red]{escape(c.name)}[/]: {escape(failure)}")
        console.print(f"selftest {'passed' if report.ok else 'FAILED'}: profile {report.profile}, sandbox {report.sandbox}, "
                      f"judge {report.judge or 'none'} ({report.seconds:.0f} s)", highlight=False)

    emit(report.as_dict(), fmt, human)
    if not report.ok:
        raise typer.Exit(int(ExitCode.NOT_PROVED))


def doctor_command(
    no_smoke: bool = typer.Option(False, "--no-smoke", help="Skip starting a REPL."),
    format: FormatOption = None,
) -> None:
    """Check Python packages, GPU, Lean, the workspace, a REPL, disk and the HF cache; print each fix.

    Exit 0 when nothing fails (warnings allowed), 3 otherwise.

    Example: proverctl doctor --format json
    """
    from proverctl.doctor import run_doctor

    checks = run_doctor(smoke=not no_smoke)
    rows = [c.as_dict() for c in checks]

    def human(console):
        from rich.markup import escape

        marks = {"ok": "[green]ok[/]  ", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
        for c in checks:
            console.print(f"{marks[c.status]} {escape(c.name)}: {escape(c.detail)}", highlight=False)
            if c.fix and c.status != "ok":
                console.print(f"      fix: {escape(c.fix)}", highlight=False)

    emit(rows, resolve_format(format), human)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(int(ExitCode.ENVIRONMENT))


def register(app: typer.Typer) -> None:
    app.command("targets")(targets_command)
    app.command("check")(check_command)
    app.command("doctor")(doctor_command)
    app.add_typer(lean_app, name="lean")
