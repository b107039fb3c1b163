"""`proverctl prove`: parse flags into a ProveRequest, run the ProveJob, render its result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from proverctl.cli import completion as complete
from proverctl.cli._output import Format, columns, emit, info, resolve_format, stderr_is_tty, warn


def prove_command(
    input: Optional[str] = typer.Argument(None, metavar="PATH", help="A .lean file, a folder of them, - (stdin), or a dataset .jsonl (not with --resume)."),
    theorem: Optional[List[str]] = typer.Option(None, "--theorem", "-t", autocompletion=complete.theorems, help="Only this target (repeatable)."),
    hint: Optional[str] = typer.Option(None, "--hint", metavar="FILE|TEXT", help="An informal proof for the prompt (a file, or the text itself): Kimina's problem slot, a paragraph for DeepSeek/Goedel. Every target gets it; pick one with -t."),
    model: Optional[str] = typer.Option(None, "--model", "-m", autocompletion=complete.models, help="Alias, org/repo or directory [env: PROVERCTL_MODEL]."),
    k: Optional[int] = typer.Option(None, "--k", min=1, help="Samples per target (the pass@k budget) [default: 8; env: PROVERCTL_K]."),
    mode: Optional[str] = typer.Option(None, "--mode", autocompletion=complete.modes, help="cot or non-cot (DeepSeek-Prover-V2) [default: cot]."),
    family: Optional[str] = typer.Option(None, "--family", autocompletion=complete.families, help="Prompt family [default: the model's]: deepseek-v2, goedel-v2, deepseek-v1.5, kimina."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="New tokens per sample [default: per family, capped by the model's context]."),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, help="Sampling temperature [default: catalog or 1.0]."),
    top_p: Optional[float] = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Nucleus sampling [default: catalog or 0.95]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Base seed (sample i, round r uses seed + 1000 i + r)."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=0, help="Error-feedback rounds for failed samples [default: 0]."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.1, help="Seconds per Lean check [env: PROVERCTL_CHECK_TIMEOUT]."),
    import_timeout: Optional[float] = typer.Option(None, "--import-timeout", min=0.1, help="Seconds per REPL header step, e.g. `import Mathlib` [env: PROVERCTL_IMPORT_TIMEOUT]."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Lean REPL workers [env: PROVERCTL_WORKERS]."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Generation requests in flight [default: 64; env: PROVERCTL_GENERATION_CONCURRENCY]."),
    check_concurrency: Optional[int] = typer.Option(None, "--check-concurrency", min=1, help="Lean checks at once [default: the workers; env: PROVERCTL_CHECK_CONCURRENCY]."),
    all_samples: bool = typer.Option(False, "--all", help="Keep sampling after a target is proved."),
    in_place: bool = typer.Option(False, "--in-place", help="Write proofs into the input file(s) (keeps FILE.run<N>.bak)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="PATH", help="Write the completed file here (a folder mirrors a folder input)."),
    format: Optional[str] = typer.Option(None, "--format", "-f", autocompletion=complete.prove_formats, help="auto, human, json, jsonl, quiet, or lean (the completed file on stdout)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="Any OpenAI-compatible server (vLLM, SGLang, ...) instead of a local session [env: PROVERCTL_ENDPOINT]."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Bearer token for --endpoint (never stored) [env: PROVERCTL_API_KEY]."),
    served_model: Optional[str] = typer.Option(None, "--served-model", help="Model id at --endpoint [default: the one it lists]."),
    force: bool = typer.Option(False, "--force", help="Use --model/--family even when the endpoint serves another model."),
    engine: Optional[str] = typer.Option(None, "--engine", autocompletion=complete.engines, help="Engine for a session started for this run: vllm or transformers."),
    keep_alive: Optional[str] = typer.Option(None, "--keep-alive", metavar="DURATION", help="Keep the session up this long after the run (5m, 90s, 1h; 0 stops it; -1 keeps it for good), so the next run does not load the weights again [default: a session started for the run is stopped]."),
    resume: Optional[int] = typer.Option(None, "--resume", autocompletion=complete.runs, help="Continue run RUN with its recorded request: finished attempts are kept."),
    allow_native_decide: bool = typer.Option(False, "--allow-native-decide", help="Accept proofs using native_decide (Lean.ofReduceBool)."),
    allow_aux: bool = typer.Option(False, "--allow-aux-lemmas", help="Accept auxiliary theorems written before the target."),
    judge: Optional[str] = typer.Option(None, "--judge", autocompletion=complete.setting("judge"), help="Who gives `proved`: kernel (the pinned judge, required), auto (when built), repl [env: PROVERCTL_JUDGE]."),
    repl_command: Optional[str] = typer.Option(None, "--repl-command", help="Command that starts one Lean REPL."),
    lean_project: Optional[str] = typer.Option(None, "--lean-project", metavar="DIR", help="Lean project the REPL runs in."),
    profile: Optional[str] = typer.Option(None, "--profile", autocompletion=complete.profiles, help="Lean workspace profile [default: the model's]."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", autocompletion=complete.setting("sandbox"), help="auto (bwrap when it works), bwrap or none [env: PROVERCTL_SANDBOX]."),
    decompose: bool = typer.Option(False, "--decompose", help="Recursive proving: a planner sketches `have ... := by sorry` steps, each is proved as a lemma."),
    planner: Optional[str] = typer.Option(None, "--planner", help="OpenAI-compatible URL of the planner model [default: the prover itself]."),
    planner_model: Optional[str] = typer.Option(None, "--planner-model", help="Model id at --planner [default: the first it lists]."),
    depth: int = typer.Option(2, "--depth", min=1, help="With --decompose: how deep unproved subgoals are decomposed again."),
    sketches: int = typer.Option(4, "--sketches", min=1, help="With --decompose: planner samples per (sub)goal."),
    verify_on: Optional[str] = typer.Option(None, "--verify-on", autocompletion=complete.values("ray", "auto"), help="Check on Ray workers: ray (local), auto, or ray://HOST:PORT."),
    repo: Optional[str] = typer.Option(None, "--repo", help="Prove inside this Lean repository (git URL) through LeanDojo."),
    rev: Optional[str] = typer.Option(None, "--rev", help="With --repo: the commit."),
    file: Optional[str] = typer.Option(None, "--file", help="With --repo: the .lean file, a path inside the repository."),
) -> None:
    """Prove every `sorry`: sample proofs from a prover model, check each with Lean, write back the proved ones.

    Uses a live session for the model (`proverctl serve`), or starts one for the run and stops it after.
    With --endpoint, the prompt family and Lean profile follow the model the server lists.
    Every attempt is recorded with the run's request (`proverctl runs`, `show`, `tui`); --resume RUN
    continues it with the same request (only where and how it runs may change).
    Exit 0: every target proved (or nothing to do); 1: some not proved; 2: usage; 3: model, Lean or
    endpoint missing; 4: verifier failure; 130: interrupted (what is proved is still written).

    Examples: proverctl prove Algebra.lean --in-place ; cat thm.lean | proverctl prove - --format lean ;
    proverctl prove A.lean --keep-alive 10m && proverctl prove B.lean   # B reuses the loaded model ;
    proverctl prove minif2f.jsonl --k 32 --format jsonl > results.jsonl ; proverctl prove src/ -o solved/
    """
    from proverctl.proving import Decompose, ProveJob, ProveRequest

    fmt_flag = (format or "").lower() or None
    typed = {
        "model": model, "k": k, "mode": mode, "family": family, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
        "seed": seed, "rounds": rounds, "timeout": timeout, "import_timeout": import_timeout, "workers": workers,
        "concurrency": concurrency, "check_concurrency": check_concurrency,
        "all_samples": all_samples or None, "in_place": in_place or None, "output": str(output) if output else None, "format": fmt_flag,
        "endpoint": endpoint, "served_model": served_model, "force": force or None, "engine": engine, "keep_alive": parse_duration(keep_alive, "--keep-alive") if keep_alive is not None else None,
        "allow_native_decide": allow_native_decide or None, "allow_aux_lemmas": allow_aux or None, "judge": judge,
        "repl_command": repl_command,
        "lean_project": lean_project, "lean_profile": profile, "sandbox": sandbox, "verify_on": verify_on,
        "theorems": tuple(theorem) if theorem else None, "repo": repo, "rev": rev, "file": file,
        "decompose": Decompose(planner, planner_model, depth, sketches) if decompose else None,
        "hint": read_hint(hint) if hint is not None else None,
    }
    if resume is not None:
        from proverctl.errors import UsageError

        if input is not None:
            raise UsageError("--resume RUN continues the run's own input; leave out INPUT", hint=f"proverctl prove --resume {resume}")
        job = ProveJob.resume(resume, typed, api_key=api_key)
    else:
        values = {key: value for key, value in typed.items() if value is not None}
        input_text = None
        if input == "-":
            from proverctl.inputs import read_text

            input_text, _ = read_text("-")
        job = ProveJob(ProveRequest(input=input, input_text=input_text, **values), api_key=api_key)
    fmt = "lean" if job.request.format == "lean" else resolve_format(Format(job.request.format))
    view = _View(fmt, job)
    try:
        result = job.run(view.event, handle_signals=True)
    finally:
        view.stop()
    _report(result, fmt)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


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


class _View:
    """What the user sees on stderr while a job runs: notices as lines; on a terminal a live display
    (a summary line always visible, the busiest targets below it); elsewhere (CI, nohup) the summary as
    a plain line every `progress_interval` seconds."""

    def __init__(self, fmt: str, job=None, *, subset: str | None = None) -> None:
        self.fmt = fmt
        self.job = job
        self.subset = subset
        self.live = None
        self._ticker = None

    def event(self, event) -> None:
        from proverctl.proving import Notice, RunStarted

        if isinstance(event, Notice):
            (warn if event.level == "warning" else info)(event.text)
        elif isinstance(event, RunStarted) and self.job is not None and self.fmt != "quiet":
            if stderr_is_tty():
                self._start_live()
            else:
                self._start_ticker()

    def _start_live(self) -> None:
        from rich.live import Live

        from proverctl.cli._output import stderr

        view = self

        class Renderable:
            def __rich__(self):
                return view.render()

        self.live = Live(Renderable(), console=stderr(), refresh_per_second=4, transient=False)
        self.live.start()

    def _start_ticker(self) -> None:
        import threading

        from proverctl.settings import Settings

        interval = Settings.load().progress_interval
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(interval):
                snapshot = self.job.snapshot()
                if snapshot is not None:
                    info("progress: " + summary_line(snapshot))

        thread = threading.Thread(target=tick, name="progress", daemon=True)
        thread.start()
        self._ticker = stop

    def render(self):
        from rich.console import Group
        from rich.text import Text

        snapshot = self.job.snapshot() if self.job is not None else None
        if snapshot is None:
            return Text("starting ...")
        width = self.live.console.width if self.live is not None else 100
        parts = summary_parts(snapshot) + ([f"[{self.subset}]"] if self.subset else [])
        lines = [Text(line, style="bold") for line in pack(parts, width)]
        for name, in_flight, attempts, proved in snapshot["targets_shown"]:
            mark = Text("  ✓ proved", style="green") if proved else Text(f"  {in_flight} generating")
            lines.append(Text(f"  {name[:48]:48} {attempts:4} attempts") + mark)
        if snapshot["targets_more"]:
            lines.append(Text(f"  +{snapshot['targets_more']} more", style="dim"))
        return Group(*lines)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self._ticker is not None:
            self._ticker.set()
            self._ticker = None


def summary_line(s: dict) -> str:
    """targets proved/total, samples done / in flight / cancelled, rounds, tokens/s, elapsed, and an ETA
    only once the rate is known (an upper bound: proved targets stop early)."""
    return " · ".join(summary_parts(s))


def pack(parts: list[str], width: int) -> list[str]:
    """The summary's parts on as few lines of `width` as they fit (a live display crops long lines)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return lines


def summary_parts(s: dict) -> list[str]:
    elapsed = s["elapsed"]
    rate = s["samples_done"] / elapsed if elapsed > 0 else 0.0
    tokens = s["tokens"] / elapsed if elapsed > 0 else 0.0
    parts = [f"{s['proved']}/{s['targets']} targets proved",
             f"samples {s['samples_done']} done, {s['in_flight']} in flight, {s['cancelled']} cancelled",
             f"checks {s['checking']} running, {s['waiting_checks']} waiting"]
    if s["rounds_done"]:
        parts.append(f"{s['rounds_done']} feedback rounds")
    parts.append(f"{tokens:,.0f} tok/s" if s["tokens"] else "tok/s -")
    parts.append(f"elapsed {_duration(elapsed)}")
    if s["samples_done"] >= 8 and rate > 0 and s["budget_left"]:
        parts.append(f"ETA <= {_duration((s['budget_left'] + s['in_flight']) / rate)}")
    return parts


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def register(app: typer.Typer) -> None:
    app.command("prove")(prove_command)


def parse_duration(text: str, flag: str) -> float:
    """Seconds from '90', '90s', '5m', '1h', '1h30m'; '-1' (or 'forever') is -1: for good."""
    import re

    from proverctl.errors import UsageError

    value = text.strip().lower()
    if value in ("-1", "forever", "inf"):
        return -1.0
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", value)
    if not value or parts is None:
        raise UsageError(f"{flag} {text!r} is not a duration", hint="write it like 90s, 5m, 1h30m; 0 stops at once, -1 keeps it for good")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def read_hint(value: str) -> str:
    """--hint: the text of FILE when it names one, else the value itself (never empty)."""
    from proverctl.errors import UsageError
    from proverctl.inputs import read_text

    text = read_text(value)[0] if value != "-" and Path(value).is_file() else value
    if not text.strip():
        raise UsageError("--hint is empty", hint="give the informal proof, or a file holding it")
    return text.strip()
