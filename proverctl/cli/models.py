"""`proverctl models ...` (catalog, list, show, pull, rm, verify) and the Ollama-style top-level
aliases `proverctl pull`, `proverctl list`, `proverctl rm`."""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Optional

import typer

from proverctl.cli import completion as complete
from proverctl.cli._output import FormatOption, columns, emit, info, resolve_format, stderr_is_tty
from proverctl.errors import ExitCode, UsageError

models_app = typer.Typer(help="The local model store: catalog, pull, list, show, rm, verify.", no_args_is_help=True)

NameArg = typer.Argument(..., metavar="NAME", autocompletion=complete.models, help="Catalog alias, org/repo, org/repo@revision, or a local model directory.")


def _gb(value: Any) -> str:
    return "?" if value is None else f"{value:g}"


def _family_cell(row: dict[str, Any]) -> str:
    if row["family"]:
        return row["family"]
    return "(tactic)" if row["kind"] == "tactic" else "(unknown: --family)"


@models_app.command("catalog")
def catalog(format: FormatOption = None) -> None:
    """List the provers proverctl knows (alias, hub repo, family, size, Lean profile).

    Example: proverctl models catalog --format json | jq '.[].alias'
    """
    from proverctl.models.hub import catalog_rows

    rows = catalog_rows()

    def human(console):
        from proverctl.cli._output import fitted_table

        headers = ("alias", "repo", "family", "params (B)", "context", "disk (GB)", "lean profile", "license")
        cells = [(r["alias"], r["repo_id"] or "(unconfirmed)", _family_cell(r), _gb(r["parameters_b"]), _gb(r["context_length"]),
                  _gb(r["approx_disk_gb"]), r["lean_profile"], r["license"] or "?") for r in rows]
        # On a narrow terminal the least needed columns go first; the alias (what `pull` takes) always stays.
        table, note = fitted_table(console, headers, cells,
                                   drop=("license", "context", "disk (GB)", "repo", "lean profile", "params (B)", "family"))
        console.print(table)
        if note:
            console.print(note, style="dim", highlight=False, soft_wrap=False)

    emit(rows, resolve_format(format), human)


@models_app.command("list")
def list_models(format: FormatOption = None) -> None:
    """List the models in the local Hugging Face cache.

    Example: proverctl list
    """
    from proverctl.models.hub import human_bytes, list_local

    rows = [m.as_dict() for m in list_local()]

    def human(console):
        from rich.table import Table

        if not rows:
            console.print("no models pulled yet; try `proverctl pull deepseek-prover-v2-7b`", highlight=False)
            return
        table = Table(*columns("name", "revision", "refs", "size", "path", keep=("name", "path")))
        for r in rows:
            table.add_row(r["name"], r["revision"][:12], ",".join(r["refs"]), human_bytes(r["size_on_disk"]), r["path"])
        console.print(table)

    emit(rows, resolve_format(format), human)


@models_app.command("show")
def show(
    name: str = NameArg,
    context: Optional[int] = typer.Option(None, "--context", min=1, help="Context (tokens) for the KV-cache estimate."),
    sequences: int = typer.Option(1, "--sequences", min=1, help="Concurrent sequences for the KV-cache estimate."),
    format: FormatOption = None,
) -> None:
    """Show catalog facts, the local config.json and a GPU memory estimate for a model.

    Example: proverctl models show deepseek-prover-v2-7b --context 32768 --sequences 8
    """
    from proverctl.models.catalog import parse_model_ref
    from proverctl.models.hub import find_local
    from proverctl.models import memory

    ref = parse_model_ref(name)
    path = ref.local_dir
    revision = None
    if path is None:
        local = find_local(ref)
        if local is not None:
            path, revision = local.path, local.commit
    config = memory.read_config(path) if path is not None and (path / "config.json").is_file() else None
    entry = ref.entry
    facts: dict[str, Any] | None = None
    if config is not None:
        facts = {
            "architecture": (config.get("architectures") or [None])[0],
            "model_type": config.get("model_type"),
            "num_layers": config.get("num_hidden_layers"),
            "hidden_size": config.get("hidden_size"),
            "num_attention_heads": config.get("num_attention_heads"),
            "num_key_value_heads": config.get("num_key_value_heads"),
            "context_length": config.get("max_position_embeddings"),
            "vocab_size": config.get("vocab_size"),
            "dtype": memory.config_dtype(config),
        }
    ctx = context or (entry.context_length if entry else None) or (facts or {}).get("context_length") or 8192
    estimate = memory.estimate(
        config or (entry.config_hint() if entry else None),
        context=ctx,
        sequences=sequences,
        weights_bytes=memory.weight_bytes_on_disk(path) if path is not None else None,
        parameters_b=entry.parameters_b if entry else None,
        dtype=(facts or {}).get("dtype") or (entry.dtype if entry else None),
    )
    data = {
        "name": ref.display,
        "repo_id": ref.repo_id,
        "pulled": path is not None,
        "revision": revision,
        "path": str(path) if path else None,
        "catalog": entry.as_dict() if entry else None,
        "config": facts,
        "memory": estimate.as_dict(),
    }

    def human(console):
        from rich.table import Table

        table = Table(show_header=False, box=None)
        table.add_row("model", ref.display)
        table.add_row("repo", str(ref.repo_id or "-"))
        if path:
            table.add_row("pulled", f"yes ({path})")
        elif ref.repo_id is None and ref.local_dir is None:
            table.add_row("pulled", "no (no confirmed hub repository: see the notes)")
        else:
            table.add_row("pulled", f"no (run `proverctl pull {name}`)")
        if entry:
            for key in ("kind", "family", "parameters_b", "architecture", "context_length", "dtype", "lean_profile", "license"):
                table.add_row(key, str(getattr(entry, key) if getattr(entry, key) is not None else "unknown"))
            table.add_row("notes", entry.notes)
            if entry.extra.get("serving"):
                table.add_row("serving", entry.extra["serving"])
            for b in entry.benchmarks:  # a percentage, or a count of problems when the figure says of how many
                value = f"{b['value']}/{b['of']}" if "of" in b else f"{b['value']}%"
                mode = f"{b['mode']} mode, " if "mode" in b else ""
                table.add_row("published", f"{b['benchmark']} {b['metric']} {value} ({mode}{b['budget']}; {b['source']})")
        if facts:
            for key, value in facts.items():
                table.add_row(f"config.{key}", str(value))
        mem = estimate.as_dict()
        table.add_row(
            "GPU memory",
            f"weights {mem['weights_gib'] or '?'} GiB + KV {mem['kv_cache_gib'] or '?'} GiB "
            f"({ctx} tokens x {sequences}) + ~{mem['overhead_gib']} GiB = {mem['total_gib'] or '?'} GiB",
        )
        console.print(table)

    emit(data, resolve_format(format, allow_jsonl=False), human)


@models_app.command("pull")
def pull(name: str = NameArg, format: FormatOption = None) -> None:
    """Download a model's weights, configs and tokenizer into the Hugging Face cache (resumable).

    Prints only the local snapshot path on stdout (on a terminal and in `$(...)` alike; `--format json`
    for the details). Honours HF_HOME, HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE.

    Examples: proverctl pull deepseek-prover-v2-7b ; proverctl pull deepseek-ai/DeepSeek-Prover-V2-7B@main
    """
    from proverctl.models.catalog import parse_model_ref
    from proverctl.models.hub import human_bytes, pull as do_pull

    from proverctl.settings import Settings

    # The default output is the path, piped or not, so `$(proverctl pull M)` is the snapshot directory.
    fmt = "human" if format is None and Settings.load().format == "auto" else resolve_format(format, allow_jsonl=False)
    ref = parse_model_ref(name)
    if ref.entry is not None and ref.entry.multi_gpu:
        info(f"note: {ref.entry.alias} needs several GPUs to serve (about {ref.entry.min_gpu_memory_gb} GB of GPU memory)")

    def on_plan(plan):
        todo = sum(1 for f in plan.files if not f["cached"])
        info(
            f"pulling {ref.display} ({plan.commit[:12]}): {len(plan.files)} files, "
            f"{human_bytes(plan.bytes_to_download)} to download of {human_bytes(plan.total_bytes)}"
            + ("" if todo else " (already complete)")
        )

    if stderr_is_tty() and fmt != "quiet":
        from proverctl.cli._progress import download_progress

        bars = download_progress(f"pulling {ref.display}")
    else:
        bars = contextlib.nullcontext(None)
    with bars as tqdm_class:
        result = do_pull(ref, tqdm_class=tqdm_class, on_plan=on_plan)
    if fmt == "human":
        sys.stdout.write(f"{result.path}\n")
    else:
        emit(result.as_dict(), fmt, lambda console: None)


@models_app.command("rm")
def rm(
    name: str = NameArg,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed, remove nothing."),
    format: FormatOption = None,
) -> None:
    """Remove a pulled model revision from the Hugging Face cache.

    Example: proverctl rm deepseek-prover-v2-7b --yes
    """
    from proverctl.models.catalog import parse_model_ref
    from proverctl.models.hub import human_bytes, remove

    fmt = resolve_format(format, allow_jsonl=False)
    ref = parse_model_ref(name)
    model, freed = remove(ref, dry_run=True)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to remove {ref.display} without confirmation", hint="pass --yes (or --dry-run to see what would go)"
            )
        if not typer.confirm(f"remove {model.repo_id} {model.commit[:12]} ({human_bytes(freed)})?", err=True):
            raise typer.Exit(int(ExitCode.OK))
    if not dry_run:
        _, freed = remove(ref)
    data = {"repo_id": model.repo_id, "revision": model.commit, "path": str(model.path), "freed_bytes": freed, "dry_run": dry_run}
    verb = "would free" if dry_run else "removed"
    emit(data, fmt, lambda c: c.print(f"{verb} {model.repo_id} {model.commit[:12]}: {human_bytes(freed)}", highlight=False))


@models_app.command("verify")
def verify(name: str = NameArg, format: FormatOption = None) -> None:
    """Check a pulled model's files against the hub's recorded sizes and sha256; exit 1 on any mismatch.

    Example: proverctl models verify deepseek-prover-v2-7b
    """
    from proverctl.models.catalog import parse_model_ref
    from proverctl.models.hub import verify as do_verify

    fmt = resolve_format(format, allow_jsonl=False)
    ref = parse_model_ref(name)
    if stderr_is_tty():
        info(f"hashing the local files of {ref.display} ...")
    report = do_verify(ref)

    def human(console):
        from rich.table import Table

        table = Table("file", "status", "algorithm")
        for path in report.ok_paths:
            table.add_row(path, "[green]ok[/]", "")
        for m in report.mismatches:
            table.add_row(m["path"], "[red]hash mismatch[/]", m["algorithm"])
        for path in report.not_on_hub:
            table.add_row(path, "[red]not on the hub[/]", "")
        console.print(table)
        console.print("all files match the hub" if report.ok else f"some files do not match: `proverctl rm {name} --yes` then pull again")

    emit(report.as_dict(), fmt, human)
    if not report.ok:
        raise typer.Exit(int(ExitCode.NOT_PROVED))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    # Ollama-style shortcuts.
    app.command("pull", help=pull.__doc__)(pull)
    app.command("list", help=list_models.__doc__)(list_models)
    app.command("rm", help=rm.__doc__)(rm)
