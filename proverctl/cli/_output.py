"""Output conventions shared by every command: data on stdout, everything else on stderr.

`--format auto` means human on a terminal and json otherwise (so pipes get machine-readable data).
Consoles are made per call, so test runners that swap sys.stdout/sys.stderr capture them.
"""

from __future__ import annotations

import enum
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

from proverctl.errors import ProverctlError

if TYPE_CHECKING:
    from rich.console import Console

# rich is imported inside the functions that draw: `proverctl --help` never pays for it.


class Format(str, enum.Enum):
    auto = "auto"
    human = "human"
    json = "json"
    jsonl = "jsonl"
    quiet = "quiet"


FormatOption = Annotated[
    Optional[Format],
    typer.Option(
        "--format",
        "-f",
        help="auto (human on a terminal, json in a pipe), human, json, jsonl or quiet.",
        case_sensitive=False,
        show_default=False,
    ),
]


def stdout() -> "Console":
    from rich.console import Console

    # Piped human output keeps whole names instead of rich's 80-column ellipsis.
    width = None if sys.stdout.isatty() else 1000
    return Console(file=sys.stdout, soft_wrap=True, width=width)


def stderr() -> "Console":
    from rich.console import Console

    return Console(file=sys.stderr, soft_wrap=True)


def columns(*names: str, keep: tuple[str, ...] = ()):
    """Table columns; those in `keep` (names, ids, paths) fold onto a second line instead of being cut
    with an ellipsis on a narrow terminal."""
    from rich.table import Column

    return [Column(name, overflow="fold") if name in keep else Column(name) for name in names]


def fitted_table(console: "Console", headers: tuple[str, ...], rows: list[tuple], *, drop: tuple[str, ...] = ()):
    """A table that fits the terminal: while the columns' natural widths (their longest cell) do not fit,
    the columns in `drop` are left out, in that order, and a note names them; what stays is printed whole,
    never folded mid-word. Returns (table, note or None)."""
    from rich.table import Table

    def width(index: int) -> int:
        return max([len(headers[index])] + [len(str(r[index])) for r in rows]) + 3  # padding and border

    shown = list(range(len(headers)))
    hidden = []
    for name in drop:
        if sum(width(i) for i in shown) + 1 <= console.width:
            break
        index = headers.index(name)
        shown.remove(index)
        hidden.append(name)
    table = Table(*[headers[i] for i in shown])
    for row in rows:
        table.add_row(*[row[i] for i in shown])
    note = f"({', '.join(hidden)} left out at {console.width} columns: a wider terminal, or --format json, shows them)" if hidden else None
    return table, note


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def resolve_format(flag: Format | None, *, allow_jsonl: bool = True) -> str:
    """The format to use: the flag, else PROVERCTL_FORMAT / config, else auto."""
    if flag is not None:
        chosen = flag.value
    else:
        from proverctl.settings import Settings

        chosen = Settings.load().format
    if chosen == "auto":
        chosen = "human" if sys.stdout.isatty() else "json"
    if chosen == "jsonl" and not allow_jsonl:
        chosen = "json"
    return chosen


def emit(data: Any, fmt: str, human: Callable[["Console"], None], *, paged: bool = False) -> None:
    """Print `data` in the chosen format; `human` renders it for people. With `paged`, human output taller
    than the terminal goes through the pager (see `page`)."""
    if fmt == "quiet":
        return
    if fmt in ("json", "jsonl"):
        data = with_schema(data)
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    elif fmt == "jsonl":
        rows = data if isinstance(data, list) else [data]
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    elif paged:
        page(human)
    else:
        human(stdout())
    sys.stdout.flush()


# The version of every JSON object proverctl prints (docs/json.md): it goes up when a field is removed,
# renamed or changes type; new fields may appear without a change.
SCHEMA = 1


def with_schema(data: Any) -> Any:
    """`data` with "schema" as the first field of the object, or of each object of a list."""
    if isinstance(data, dict):
        return {"schema": SCHEMA, **data}
    if isinstance(data, list):
        return [{"schema": SCHEMA, **row} if isinstance(row, dict) else row for row in data]
    return data


def page(human: Callable[["Console"], None]) -> None:
    """Human output through `$PAGER` (else `less`) when stdout is a terminal and the output is taller
    than it, as git does: LESS defaults to FRX (keep colours, quit at the end of a short text, leave it
    on the screen). `PAGER=cat` turns paging off. In a pipe, or when it fits, it is printed as is."""
    console = stdout()
    if not sys.stdout.isatty():
        human(console)
        return
    with console.capture() as captured:
        human(console)
    text = captured.get()
    if text.count("\n") < console.size.height - 1:
        sys.stdout.write(text)
        return
    # Not pydoc.pager: it prefers $MANPAGER (often set up for man pages only) over $PAGER.
    import os
    import shutil
    import subprocess

    command = os.environ.get("PAGER") or ("less" if shutil.which("less") else "")
    if not command or command == "cat":
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    env = {**os.environ, "LESS": os.environ.get("LESS", "FRX")}
    try:
        subprocess.run(command, shell=True, input=text.encode("utf-8"), env=env, check=False)
    except OSError:
        sys.stdout.write(text)


def info(message: str) -> None:
    """A progress or status line for people, on stderr."""
    stderr().print(message, highlight=False, markup=False)


def warn(message: str) -> None:
    from rich.markup import escape

    stderr().print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def report_error(exc: ProverctlError) -> None:
    """The one-line error (plus hint) every known failure ends with."""
    from rich.markup import escape

    console = stderr()
    console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
    if exc.hint:
        console.print(f"[dim]hint:[/] {escape(exc.hint)}", highlight=False)
